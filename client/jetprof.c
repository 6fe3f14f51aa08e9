/*
 * jetprof.c - the jetprof command-line client: curl-like ad-hoc use of a
 * jetprofd daemon (health, device, kernel catalogue, one measurement, the
 * dataset, any GET), its predictors (train, list, export, predict) and graph
 * estimates, online (POST /v1/estimate) or offline from an exported bundle.
 *
 * It is deliberately thin: every check about kernels, ranges and memory is the
 * daemon's (it owns the catalogue and the executor), so the client only makes
 * sure it sends well-formed JSON (integers are integers) and turns the answer
 * into readable output: JSON pretty-printed on stdout (tables for train, models
 * and estimate), errors as one line on stderr built from the daemon's
 * problem+json (title and detail). HTTP transport lives in http_client.c.
 *
 * The one exception is `estimate --offline --models FILE`: it loads the bundle
 * GET /v1/models/export wrote (model_set_load_bundle) and runs the daemon's own
 * estimate code (estimate_graph with estimate_predict_with_set, predict/), so a
 * workstation gets the daemon's numbers, digit for digit, without the board.
 * Only the trees' evaluation is linked in: training (XGBoost) stays in jetprofd.
 *
 * Exit status: 0 success; 1 the daemon answered with an error or could not be
 * reached, or (offline) the models or the graph were refused; 2 usage error,
 * including a file named on the command line that cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../cudakern/catalog.h"
#include "../predict/estimate.h"
#include "../predict/graph.h"
#include "../predict/models.h"
#include "http_client.h"

#define JETPROF_CLIENT_VERSION "0.1.0"
#define DEFAULT_URL "http://127.0.0.1:9740"
/* measure and train are answered when the runner has done them, which may be
 * minutes behind a queue; everything else is answered at once. */
#define DEFAULT_TIMEOUT_S 60.0
#define CONNECT_TIMEOUT_S 10.0
#define TOKEN_MAX_BYTES 4096
/* Reals printed with 15 significant digits: all a measured value carries,
 * without the binary noise of 17 ("8712.2999999999993"). */
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))
/* Estimates are printed with the daemon's own precision (12 significant
 * digits, daemon/http.c), so an offline estimate and the daemon's answer for
 * the same models carry the same digits. */
#define ESTIMATE_OUT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(12))
/* Graph files and model bundles larger than this are refused (a 10000-graph
 * batch of large graphs is tens of MiB). */
#define INPUT_FILE_MAX_BYTES ((size_t)1024 * 1024 * 1024)
/* The daemon's limit on graphs in one POST /v1/estimate batch, kept offline. */
#define ESTIMATE_MAX_GRAPHS 10000

enum exit_code {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
};

struct cli {
    char *base_url;      /* normalised, malloc'd */
    char *token;         /* malloc'd, NULL = none */
    double timeout_s;    /* -1 = command default */
};

/* ---- messages ---- */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("jetprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'jetprof --help' for more information.\n", stderr);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("jetprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void print_help(FILE *out)
{
    fputs(
        "Usage: jetprof [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Command-line client for jetprofd, the kernel latency and power profiling daemon.\n"
        "Answers are printed as indented JSON on stdout (tables for train, models and\n"
        "estimate); errors go to stderr. 'jetprof COMMAND --help' describes one command.\n"
        "\n"
        "Options (before or after the command):\n"
        "  --url URL          jetprofd's address (default $JETPROF_URL, else " DEFAULT_URL ")\n"
        "  --token-file PATH  file holding the bearer token for mutating requests\n"
        "                     (default $JETPROF_TOKEN_FILE; none = no Authorization header)\n"
        "  --timeout S        give up after S seconds (default: no limit for measure and\n"
        "                     train, 60 for the other commands; 0 = no limit)\n"
        "  -h, --help         show this help (or the command's) and exit\n"
        "  -V, --version      print the version and exit\n"
        "\n"
        "Commands:\n"
        "  health             liveness, version, uptime, job counts, sampler state\n"
        "  device             board, executor, sensor backend, rails, sampling asked and got\n"
        "  kernels            the kernel catalogue with each parameter's valid range\n"
        "  measure KERNEL NAME=VALUE... [--dtype fp32|fp16] [--repeats N]\n"
        "                     measure one kernel configuration; answered when the job is\n"
        "                     done; prints the Measurement and a one-line summary on stderr\n"
        "  measurements [--kernel K] [--dtype D] [--quality ok|suspect] [--limit N]\n"
        "               [--after ID] [--csv]\n"
        "                     the stored dataset, oldest first; --csv prints CSV as served\n"
        "  train [KERNEL...] [--quality ok|any] [--json]\n"
        "                     train the predictors of these kernel types (default: every\n"
        "                     type with enough measurements); prints the models' accuracy\n"
        "  models [--json]    the current predictors and their accuracy\n"
        "  models export [-o FILE]\n"
        "                     the predictors as one JSON bundle, for estimate --offline\n"
        "  predict KERNEL [dtype=fp16] NAME=VALUE... [--json]\n"
        "                     predicted latency, power and energy of one configuration\n"
        "  estimate [--no-merge] [--json] GRAPH.json\n"
        "                     a network graph's kernels after fusion and merging, each\n"
        "                     kernel's prediction and the totals\n"
        "  estimate --offline --models FILE [--no-merge] [--json] GRAPH.json\n"
        "                     the same computed here from an exported bundle (no daemon)\n"
        "  get PATH           any GET request, the body printed as received\n"
        "\n"
        "Examples:\n"
        "  jetprof health\n"
        "  jetprof kernels\n"
        "  jetprof measure linear_relu batch=64 in=256 out=512\n"
        "  jetprof measure layernorm rows=128 cols=768 --dtype fp16 --repeats 5\n"
        "  jetprof measurements --kernel linear_relu --limit 10\n"
        "  jetprof measurements --csv > dataset.csv\n"
        "  jetprof train linear_relu layernorm --quality any\n"
        "  jetprof predict linear_relu batch=64 in=256 out=512\n"
        "  jetprof estimate mlp.json\n"
        "  jetprof models export -o board.models.json\n"
        "  jetprof estimate --offline --models board.models.json --json mlp.json\n"
        "  jetprof get /v1/measurements/12\n"
        "  jetprof --url http://jetson.local:9740 --token-file ~/.jetprof/token device\n"
        "\n"
        "Exit status: 0 success; 1 jetprofd answered with an error or could not be\n"
        "reached, or an offline estimate was refused; 2 usage error (a file named on\n"
        "the command line that cannot be read included).\n",
        out);
}

/* ---- argument helpers ---- */

/*
 * Matches argv[*i] against option `name` ("--url URL" or "--url=URL").
 * Returns 1 with *val set (and *i advanced past a separate value), 0 when
 * argv[*i] is not this option, -1 (message printed) when the value is missing.
 */
static int take_option(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        usage_error("option %s needs a value", name);
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

/* Strict base-10 integer: the whole string, no blanks, within int64. */
static bool parse_int64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* ---- set-up: URL and token ---- */

static char *normalise_url(const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    bool has_scheme = strstr(url, "://") != NULL;
    const char *prefix = has_scheme ? "" : "http://";
    size_t len = strlen(prefix) + n + 1;
    char *out = malloc(len);
    if (!out)
        return NULL;
    snprintf(out, len, "%s%.*s", prefix, (int)n, url);
    return out;
}

/* Reads the token: the file's content without trailing blanks and newlines.
 * Returns 0, or -1 with the reason printed. */
static int read_token(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fail("cannot read token file %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(TOKEN_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        fail("out of memory");
        return -1;
    }
    size_t n = fread(buf, 1, TOKEN_MAX_BYTES + 1, f);
    int read_error = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (read_error) {
        fail("cannot read token file %s: %s", path, strerror(saved_errno));
        free(buf);
        return -1;
    }
    if (n > TOKEN_MAX_BYTES) {
        fail("token file %s is larger than %d bytes", path, TOKEN_MAX_BYTES);
        free(buf);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        fail("token file %s is empty", path);
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x21 || c > 0x7e) {
            fail("token file %s: the token must be one line of printable characters "
                 "without blanks (byte %zu is 0x%02x)",
                 path, i + 1, c);
            free(buf);
            return -1;
        }
    }
    *out = buf;
    return 0;
}

/* ---- answers ---- */

static const char *reason_phrase(long status)
{
    static const struct {
        long status;
        const char *phrase;
    } phrases[] = {
        {400, "Bad Request"},          {401, "Unauthorized"},
        {403, "Forbidden"},            {404, "Not Found"},
        {405, "Method Not Allowed"},   {408, "Request Timeout"},
        {409, "Conflict"},             {413, "Content Too Large"},
        {415, "Unsupported Media Type"}, {422, "Unprocessable Content"},
        {429, "Too Many Requests"},    {500, "Internal Server Error"},
        {502, "Bad Gateway"},          {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
        if (phrases[i].status == status)
            return phrases[i].phrase;
    return "HTTP error";
}

/* Prints "jetprof: <status> <title>: <detail>" from a problem+json answer, or
 * the status and the start of the body when the answer is not one. */
static void report_http_error(const struct http_response *resp)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *title = NULL, *detail = NULL;
    if (json_is_object(root)) {
        title = json_string_value(json_object_get(root, "title"));
        detail = json_string_value(json_object_get(root, "detail"));
    }
    if (!title || !*title)
        title = reason_phrase(resp->status);
    if (detail && *detail) {
        json_t *job = json_is_object(root) ? json_object_get(root, "job_id") : NULL;
        if (json_is_integer(job))
            fail("%ld %s: %s (job %" JSON_INTEGER_FORMAT ")", resp->status, title, detail,
                 json_integer_value(job));
        else
            fail("%ld %s: %s", resp->status, title, detail);
    } else if (!json_is_object(root) && resp->body_len > 0) {
        /* not a problem document: show the first line of what came back */
        size_t n = strcspn(resp->body, "\r\n");
        if (n > 200)
            n = 200;
        fail("%ld %s: %.*s", resp->status, title, (int)n, resp->body);
    } else {
        fail("%ld %s", resp->status, title);
    }
    if (resp->status == 401)
        fputs("jetprof: this daemon wants a bearer token: pass --token-file PATH or set "
              "JETPROF_TOKEN_FILE\n",
              stderr);
    json_decref(root);
}

/* Writes the body as received, with a final newline if it lacks one. */
static int print_raw(const struct http_response *resp)
{
    if (resp->body_len > 0 && fwrite(resp->body, 1, resp->body_len, stdout) != resp->body_len)
        return -1;
    if (resp->body_len > 0 && resp->body[resp->body_len - 1] != '\n' && fputc('\n', stdout) == EOF)
        return -1;
    return 0;
}

/* Pretty-prints a JSON answer; anything that is not JSON is printed as received. */
static int print_json(const struct http_response *resp)
{
    json_t *root = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    if (!root)
        return print_raw(resp);
    int rc = json_dumpf(root, stdout, JSON_OUT_FLAGS | JSON_ENCODE_ANY);
    json_decref(root);
    if (rc != 0 || fputc('\n', stdout) == EOF)
        return -1;
    return 0;
}

/*
 * Sends one request and handles everything but a success: transport failures
 * and HTTP errors are printed. Returns EXIT_OK with *resp filled for a 2xx
 * answer, EXIT_FAIL otherwise (resp freed).
 */
static int call(const struct cli *cli, double default_timeout_s, const char *method,
                const char *path, const char *body, size_t body_len, struct http_response *resp)
{
    struct http_client_opts opts = {
        .base_url = cli->base_url,
        .token = cli->token,
        .timeout_s = cli->timeout_s >= 0 ? cli->timeout_s : default_timeout_s,
        .connect_timeout_s = CONNECT_TIMEOUT_S,
    };
    if (opts.timeout_s > 0 && opts.timeout_s < opts.connect_timeout_s)
        opts.connect_timeout_s = opts.timeout_s;
    char err[512];
    int rc = http_client_request(&opts, method, path, body, body_len, resp, err, sizeof err);
    switch (rc) {
    case HTTP_CLIENT_OK:
        break;
    case HTTP_CLIENT_UNREACHABLE:
        fail("cannot reach jetprofd at %s: %s", cli->base_url, err);
        return EXIT_FAIL;
    case HTTP_CLIENT_FAILED:
        fail("%s %s%s failed: %s", method, cli->base_url, path, err);
        return EXIT_FAIL;
    default:
        fail("%s", err);
        return EXIT_FAIL;
    }
    if (resp->status < 200 || resp->status > 299) {
        report_http_error(resp);
        http_response_free(resp);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int output_done(int rc)
{
    if (rc != 0) {
        fail("writing the output failed: %s", strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- commands ---- */

/* health, device, kernels: one GET, pretty-printed. */
static int cmd_simple_get(const struct cli *cli, const char *name, const char *path, int argc,
                          char **argv)
{
    if (argc > 0) {
        usage_error("%s takes no arguments (got '%s')", name, argv[0]);
        return EXIT_USAGE;
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(print_json(&resp));
    http_response_free(&resp);
    return rc;
}

static int cmd_health(const struct cli *cli, int argc, char **argv)
{
    return cmd_simple_get(cli, "health", "/v1/health", argc, argv);
}

static int cmd_device(const struct cli *cli, int argc, char **argv)
{
    return cmd_simple_get(cli, "device", "/v1/device", argc, argv);
}

static int cmd_kernels(const struct cli *cli, int argc, char **argv)
{
    return cmd_simple_get(cli, "kernels", "/v1/kernels", argc, argv);
}

static void format_quantity(char *buf, size_t len, double v)
{
    if (fabs(v) >= 100.0)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.3g", v);
}

/* One line on stderr: what was measured and its cost. */
static void print_measure_summary(const struct http_response *resp)
{
    json_t *m = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return;
    }
    const char *what = json_string_value(json_object_get(m, "config_key"));
    if (!what)
        what = json_string_value(json_object_get(m, "kernel"));
    char latency[32], power[32], energy[32];
    format_quantity(latency, sizeof latency, json_number_value(json_object_get(m, "latency_us")));
    format_quantity(power, sizeof power, json_number_value(json_object_get(m, "power_mw")));
    format_quantity(energy, sizeof energy, json_number_value(json_object_get(m, "energy_uj")));
    const char *rail = json_string_value(json_object_get(m, "energy_rail"));
    const char *quality = json_string_value(json_object_get(m, "quality"));
    fprintf(stderr, "%s: latency %s us, power %s mW, energy %s uJ per call", what ? what : "?",
            latency, power, energy);
    if (rail && *rail)
        fprintf(stderr, " (%s)", rail);
    fprintf(stderr, ", quality %s", quality ? quality : "?");
    json_t *reasons = json_object_get(m, "quality_reasons");
    if (json_is_array(reasons) && json_array_size(reasons) > 0) {
        size_t i;
        json_t *r;
        fputs(" (", stderr);
        json_array_foreach(reasons, i, r)
        {
            const char *reason = json_string_value(r);
            fprintf(stderr, "%s%s", i ? "; " : "", reason ? reason : "?");
        }
        fputc(')', stderr);
    }
    if (json_is_true(json_object_get(m, "simulated")))
        fputs(", simulated", stderr);
    json_t *id = json_object_get(m, "id");
    if (json_is_integer(id))
        fprintf(stderr, ", id %" JSON_INTEGER_FORMAT, json_integer_value(id));
    fputc('\n', stderr);
    json_decref(m);
}

/* What build_config_body accepts besides KERNEL NAME=VALUE...: measure has
 * --repeats; predict also takes the dtype as "dtype=fp16", the way a
 * configuration reads in the API. */
struct config_syntax {
    const char *cmd;     /* in messages */
    bool repeats_option; /* --repeats N */
    bool dtype_param;    /* dtype=fp16 besides --dtype */
};

/* Builds one configuration object ({"kernel": ..., params..., "dtype", "repeats"})
 * from the arguments. EXIT_OK or EXIT_USAGE/EXIT_FAIL (message printed). */
static int build_config_body(const struct config_syntax *syn, int argc, char **argv, json_t **out)
{
    json_t *body = json_object();
    if (!body) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    const char *cmd = syn->cmd;
    const char *kernel = NULL, *dtype = NULL, *repeats = NULL;
    int rc = EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int t;
        if ((t = take_option(argc, argv, &i, "--dtype", &dtype)) != 0) {
            if (t < 0)
                goto out;
            continue;
        }
        if (syn->repeats_option && (t = take_option(argc, argv, &i, "--repeats", &repeats)) != 0) {
            if (t < 0)
                goto out;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            usage_error("%s: unknown option '%s'", cmd, a);
            goto out;
        }
        if (!kernel) {
            if (strchr(a, '=')) {
                usage_error("%s: the kernel name comes first (got '%s')", cmd, a);
                goto out;
            }
            kernel = a;
            /* first, so the body reads like the API's examples */
            if (json_object_set_new(body, "kernel", json_string(kernel)) != 0) {
                fail("the kernel name is not valid UTF-8");
                goto out;
            }
            continue;
        }
        const char *eq = strchr(a, '=');
        if (!eq) {
            usage_error("%s: expected NAME=VALUE, got '%s'", cmd, a);
            goto out;
        }
        size_t name_len = (size_t)(eq - a);
        if (!valid_param_name(a, name_len)) {
            usage_error("%s: '%.*s' in '%s' is not a parameter name", cmd, (int)name_len, a, a);
            goto out;
        }
        char name[64];
        if (name_len >= sizeof name) {
            usage_error("%s: parameter name in '%s' is too long", cmd, a);
            goto out;
        }
        memcpy(name, a, name_len);
        name[name_len] = '\0';
        if (syn->dtype_param && strcmp(name, "dtype") == 0) {
            if (dtype) {
                usage_error("%s: the dtype is given twice", cmd);
                goto out;
            }
            dtype = eq + 1;
            continue;
        }
        if (strcmp(name, "kernel") == 0 || strcmp(name, "dtype") == 0 ||
            strcmp(name, "repeats") == 0) {
            usage_error("%s: '%s' is not a kernel parameter; use %s", cmd, name,
                        strcmp(name, "kernel") == 0 ? "the first argument"
                                                    : "the option of that name");
            goto out;
        }
        int64_t v;
        if (!parse_int64(eq + 1, &v)) {
            usage_error("%s: parameter '%s' must be a 64-bit integer, got '%s'", cmd, name,
                        eq + 1);
            goto out;
        }
        if (json_object_get(body, name)) {
            usage_error("%s: parameter '%s' is given twice", cmd, name);
            goto out;
        }
        if (json_object_set_new(body, name, json_integer((json_int_t)v)) != 0) {
            fail("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    if (!kernel) {
        usage_error("%s: which kernel? e.g. 'jetprof %s linear batch=8 in=16 out=32' "
                    "('jetprof kernels' lists them)",
                    cmd, cmd);
        goto out;
    }
    int64_t repeats_v = 0;
    if (repeats && !parse_int64(repeats, &repeats_v)) {
        usage_error("%s: --repeats must be a 64-bit integer, got '%s'", cmd, repeats);
        goto out;
    }
    if ((dtype && json_object_set_new(body, "dtype", json_string(dtype)) != 0) ||
        (repeats &&
         json_object_set_new(body, "repeats", json_integer((json_int_t)repeats_v)) != 0)) {
        fail("out of memory or a name that is not UTF-8");
        rc = EXIT_FAIL;
        goto out;
    }
    *out = body;
    return EXIT_OK;
out:
    json_decref(body);
    return rc;
}

static int cmd_measure(const struct cli *cli, int argc, char **argv)
{
    static const struct config_syntax syntax = {.cmd = "measure", .repeats_option = true};
    json_t *body = NULL;
    int rc = build_config_body(&syntax, argc, argv, &body);
    if (rc != EXIT_OK)
        return rc;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    struct http_response resp;
    rc = call(cli, 0, "POST", "/v1/measure", text, strlen(text), &resp);
    free(text);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(print_json(&resp));
    if (rc == EXIT_OK) {
        fflush(stdout); /* the JSON before the summary when both go to a terminal */
        print_measure_summary(&resp);
    }
    http_response_free(&resp);
    return rc;
}

/* Appends "&name=escaped(value)" (or "?..." first) to *query. 0 or -1 (no memory). */
static int query_add(char **query, size_t *len, const char *name, const char *value)
{
    char *escaped = http_client_escape(value);
    if (!escaped)
        return -1;
    size_t add = 1 + strlen(name) + 1 + strlen(escaped);
    char *q = realloc(*query, *len + add + 1);
    if (!q) {
        free(escaped);
        return -1;
    }
    snprintf(q + *len, add + 1, "%c%s=%s", *len ? '&' : '?', name, escaped);
    *len += add;
    *query = q;
    free(escaped);
    return 0;
}

static int cmd_measurements(const struct cli *cli, int argc, char **argv)
{
    static const char *const filters[][2] = {
        {"--kernel", "kernel"}, {"--dtype", "dtype"}, {"--quality", "quality"},
        {"--limit", "limit"},   {"--after", "after"},
    };
    enum { NFILTERS = sizeof filters / sizeof filters[0] };
    const char *values[NFILTERS] = {0};
    bool csv = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0) {
            csv = true;
            continue;
        }
        int matched = 0;
        for (size_t f = 0; f < NFILTERS && !matched; f++) {
            matched = take_option(argc, argv, &i, filters[f][0], &values[f]);
            if (matched < 0)
                return EXIT_USAGE;
        }
        if (!matched) {
            if (argv[i][0] == '-')
                usage_error("measurements: unknown option '%s'", argv[i]);
            else
                usage_error("measurements takes options only (got '%s')", argv[i]);
            return EXIT_USAGE;
        }
    }
    for (size_t f = 3; f < NFILTERS; f++) { /* --limit, --after */
        int64_t v;
        if (values[f] && !parse_int64(values[f], &v)) {
            usage_error("measurements: %s must be a 64-bit integer, got '%s'", filters[f][0],
                        values[f]);
            return EXIT_USAGE;
        }
    }
    char *query = NULL;
    size_t len = 0;
    int rc = EXIT_OK;
    for (size_t f = 0; f < NFILTERS && rc == EXIT_OK; f++)
        if (values[f] && query_add(&query, &len, filters[f][1], values[f]) != 0)
            rc = EXIT_FAIL;
    if (rc == EXIT_OK && csv && query_add(&query, &len, "format", "csv") != 0)
        rc = EXIT_FAIL;
    char *path = NULL;
    if (rc == EXIT_OK) {
        size_t plen = strlen("/v1/measurements") + len + 1;
        path = malloc(plen);
        if (path)
            snprintf(path, plen, "/v1/measurements%s", query ? query : "");
        else
            rc = EXIT_FAIL;
    }
    free(query);
    if (rc != EXIT_OK) {
        free(path);
        fail("out of memory");
        return rc;
    }
    struct http_response resp;
    rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(csv ? print_raw(&resp) : print_json(&resp));
    http_response_free(&resp);
    return rc;
}

static int cmd_get(const struct cli *cli, int argc, char **argv)
{
    if (argc != 1) {
        usage_error("get takes exactly one PATH, e.g. 'jetprof get /v1/health'");
        return EXIT_USAGE;
    }
    const char *path = argv[0];
    if (path[0] != '/') {
        usage_error("get: PATH must start with '/' (got '%s')", path);
        return EXIT_USAGE;
    }
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            usage_error("get: PATH must be URL-encoded (no blanks or control characters)");
            return EXIT_USAGE;
        }
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(print_raw(&resp));
    http_response_free(&resp);
    return rc;
}

/* ---- files ---- */

/* Reads PATH ("-" = stdin) whole, NUL-terminated (the NUL not counted).
 * 0, or -1 with the reason printed. */
static int read_whole_file(const char *path, char **out, size_t *out_len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *shown = is_stdin ? "standard input" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fail("cannot read %s: %s", shown, strerror(errno));
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        fail("out of memory");
        goto out;
    }
    for (;;) {
        if (cap - len < 2) {
            if (cap >= INPUT_FILE_MAX_BYTES) {
                fail("%s is larger than %zu MiB", shown, INPUT_FILE_MAX_BYTES >> 20);
                goto out;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                fail("out of memory reading %s", shown);
                goto out;
            }
            buf = p;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fail("cannot read %s: %s", shown, strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return rc;
}

/* Writes all of data to fd. 0 or -1 (errno set). */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes data to path: a regular file through a temporary file in the same
 * directory and a rename, so an interrupted export never leaves half a bundle
 * under the name; anything else (a FIFO, /dev/stdout) directly.
 * 0, or -1 with the reason printed. */
static int write_file_replace(const char *path, const char *data, size_t len)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all(fd, data, len) != 0) {
            fail("cannot write %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        if (close(fd) != 0) {
            fail("cannot write %s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        fail("out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        fail("cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = -1;
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        fail("cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    if (close(fd) != 0) {
        fail("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        fail("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- predictors: train, models, models export, predict ---- */

/* "12.3", or "-" when v is not a number (a metric the daemon left null). */
static const char *cell_number(char *buf, size_t len, const json_t *v, double scale,
                               const char *fmt)
{
    if (!json_is_number(v)) {
        snprintf(buf, len, "-");
        return buf;
    }
    double x = json_number_value(v) * scale;
    if (fmt)
        snprintf(buf, len, fmt, x);
    else
        format_quantity(buf, len, x);
    return buf;
}

static const char *str_or(const json_t *v, const char *fallback)
{
    const char *s = json_string_value(v);
    return s ? s : fallback;
}

/* One row per model: what it predicts and its accuracy on the held-out split. */
static int print_models_table(const json_t *models)
{
    printf("%-16s %-26s %6s %5s %10s %7s %9s %6s  %s\n", "KERNEL", "TARGET", "TRAIN", "TEST",
           "RMSE", "MAPE%", "WITHIN10%", "TAU", "CREATED");
    size_t i;
    const json_t *m;
    json_array_foreach(models, i, m)
    {
        const json_t *metrics = json_object_get(m, "metrics");
        char train[24], test[24], rmse[24], mape[24], within[24], tau[24];
        printf("%-16s %-26s %6s %5s %10s %7s %9s %6s  %s\n",
               str_or(json_object_get(m, "kernel"), "?"),
               str_or(json_object_get(m, "target"), "?"),
               cell_number(train, sizeof train, json_object_get(metrics, "train_rows"), 1, "%.0f"),
               cell_number(test, sizeof test, json_object_get(metrics, "test_rows"), 1, "%.0f"),
               cell_number(rmse, sizeof rmse, json_object_get(metrics, "rmse"), 1, NULL),
               cell_number(mape, sizeof mape, json_object_get(metrics, "mape"), 1, "%.2f"),
               cell_number(within, sizeof within, json_object_get(metrics, "within_10pct"), 100,
                           "%.1f"),
               cell_number(tau, sizeof tau, json_object_get(metrics, "kendall_tau"), 1, "%.3f"),
               str_or(json_object_get(m, "created_at"), "-"));
    }
    return ferror(stdout) ? -1 : 0;
}

/* Kernel types among the models, for the summary line. */
static size_t count_kernel_types(const json_t *models)
{
    size_t n = 0, i, j;
    const json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *k = json_string_value(json_object_get(m, "kernel"));
        bool seen = false;
        for (j = 0; j < i && !seen && k; j++) {
            const char *o = json_string_value(json_object_get(json_array_get(models, j), "kernel"));
            seen = o && strcmp(o, k) == 0;
        }
        if (k && !seen)
            n++;
    }
    return n;
}

static const char *const simulated_note =
    " (simulated: trained on sim-sensor or CPU-executor data, not a board's)";

/* --json: the answer pretty-printed; else the table and a summary on stderr. */
static int print_models_answer(const struct http_response *resp, bool json_out, bool trained)
{
    if (json_out)
        return output_done(print_json(resp));
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *models = json_object_get(root, "models");
    if (!json_is_array(models)) {
        json_decref(root);
        fail("jetprofd's answer has no \"models\" list; printing it as received");
        int raw = output_done(print_raw(resp));
        return raw == EXIT_OK ? EXIT_FAIL : raw;
    }
    int rc = output_done(print_models_table(models));
    fflush(stdout);
    bool simulated = json_is_true(json_object_get(root, "simulated"));
    size_t count = json_array_size(models);
    if (trained) {
        json_t *ms = json_object_get(root, "duration_ms");
        fprintf(stderr, "trained %zu model%s for %zu kernel type%s", count, count == 1 ? "" : "s",
                count_kernel_types(models), count_kernel_types(models) == 1 ? "" : "s");
        if (json_is_number(ms))
            fprintf(stderr, " in %.0f ms", json_number_value(ms));
        fprintf(stderr, "%s\n", simulated ? simulated_note : "");
    } else if (count == 0) {
        fputs("no models yet: measure at least 20 configurations of a kernel type (jetprof "
              "measure, or a sweep with POST /v1/jobs), then run 'jetprof train'\n",
              stderr);
    } else {
        fprintf(stderr, "%zu model%s for %zu kernel type%s%s\n", count, count == 1 ? "" : "s",
                count_kernel_types(models), count_kernel_types(models) == 1 ? "" : "s",
                simulated ? simulated_note : "");
    }
    json_decref(root);
    return rc;
}

static int cmd_train(const struct cli *cli, int argc, char **argv)
{
    const char *quality = NULL;
    bool json_out = false;
    json_t *body = json_object();
    json_t *kernels = json_array();
    int rc = EXIT_USAGE;
    if (!body || !kernels) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        int t;
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        if ((t = take_option(argc, argv, &i, "--quality", &quality)) != 0) {
            if (t < 0)
                goto out;
            continue;
        }
        if (argv[i][0] == '-') {
            usage_error("train: unknown option '%s'", argv[i]);
            goto out;
        }
        if (json_array_append_new(kernels, json_string(argv[i])) != 0) {
            fail("the kernel name '%s' is not valid UTF-8", argv[i]);
            rc = EXIT_FAIL;
            goto out;
        }
    }
    if ((json_array_size(kernels) > 0 && json_object_set(body, "kernels", kernels) != 0) ||
        (quality && json_object_set_new(body, "quality", json_string(quality)) != 0)) {
        fail("out of memory or a quality that is not UTF-8");
        rc = EXIT_FAIL;
        goto out;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    struct http_response resp;
    /* no default limit: training waits for the running job, then takes seconds
     * to minutes per kernel type */
    rc = call(cli, 0, "POST", "/v1/models/train", text, strlen(text), &resp);
    free(text);
    if (rc == EXIT_OK) {
        rc = print_models_answer(&resp, json_out, true);
        http_response_free(&resp);
    }
out:
    json_decref(kernels);
    json_decref(body);
    return rc;
}

static int cmd_models_export(const struct cli *cli, int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        int t;
        if ((t = take_option(argc, argv, &i, "-o", &path)) != 0 ||
            (t = take_option(argc, argv, &i, "--output", &path)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-')
            usage_error("models export: unknown option '%s'", argv[i]);
        else
            usage_error("models export takes only -o FILE (got '%s')", argv[i]);
        return EXIT_USAGE;
    }
    if (path && !*path) {
        usage_error("models export: -o needs a file name");
        return EXIT_USAGE;
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", "/v1/models/export", NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    if (!path || strcmp(path, "-") == 0) {
        rc = output_done(print_raw(&resp));
    } else if (write_file_replace(path, resp.body, resp.body_len) != 0) {
        rc = EXIT_FAIL;
    } else {
        json_t *root = json_loadb(resp.body, resp.body_len, 0, NULL);
        const json_t *models = json_object_get(root, "models");
        if (json_is_array(models))
            fprintf(stderr, "wrote %s: %zu models, %zu bytes%s\n", path, json_array_size(models),
                    resp.body_len,
                    json_is_true(json_object_get(root, "simulated")) ? simulated_note : "");
        else
            fprintf(stderr, "wrote %s: %zu bytes\n", path, resp.body_len);
        json_decref(root);
    }
    http_response_free(&resp);
    return rc;
}

static int cmd_models(const struct cli *cli, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "export") == 0)
        return cmd_models_export(cli, argc - 1, argv + 1);
    bool json_out = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        if (argv[i][0] == '-')
            usage_error("models: unknown option '%s'", argv[i]);
        else
            usage_error("models: unknown argument '%s' (models [--json] | models export "
                        "[-o FILE])",
                        argv[i]);
        return EXIT_USAGE;
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", "/v1/models", NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    rc = print_models_answer(&resp, json_out, false);
    http_response_free(&resp);
    return rc;
}

/* " VDD_IN 5400 mW 664 uJ, ..." from a prediction's power_mw and energy_uj. */
static void print_rails_summary(const json_t *p)
{
    const json_t *power = json_object_get(p, "power_mw");
    const json_t *energy = json_object_get(p, "energy_uj");
    const char *rail;
    const json_t *v;
    bool first = true;
    json_object_foreach((json_t *)power, rail, v)
    {
        char pw[32], en[32];
        format_quantity(pw, sizeof pw, json_number_value(v));
        format_quantity(en, sizeof en, json_number_value(json_object_get(energy, rail)));
        fprintf(stderr, "%s %s %s mW, %s uJ", first ? ";" : ",", rail, pw, en);
        first = false;
    }
}

/* One line on stderr: the configuration, its predicted cost, and the
 * measurement when the dataset has one. */
static void print_predict_summary(const struct http_response *resp)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    const json_t *p = json_array_get(json_object_get(root, "predictions"), 0);
    if (!json_is_object(p)) {
        json_decref(root);
        return;
    }
    char latency[32], spread[32];
    format_quantity(latency, sizeof latency, json_number_value(json_object_get(p, "latency_us")));
    format_quantity(spread, sizeof spread,
                    json_number_value(json_object_get(p, "latency_us_spread")));
    fprintf(stderr, "%s: predicted latency %s us (spread %s)",
            str_or(json_object_get(p, "config_key"), str_or(json_object_get(p, "kernel"), "?")),
            latency, spread);
    print_rails_summary(p);
    const json_t *measured = json_object_get(p, "measured");
    if (json_is_object(measured)) {
        char m[32];
        format_quantity(m, sizeof m, json_number_value(json_object_get(measured, "latency_us")));
        fprintf(stderr, "; measured %s us", m);
        const json_t *id = json_object_get(measured, "measurement_id");
        if (json_is_integer(id))
            fprintf(stderr, " (measurement %" JSON_INTEGER_FORMAT ")", json_integer_value(id));
    }
    if (json_is_true(json_object_get(root, "simulated")))
        fputs(", simulated", stderr);
    fputc('\n', stderr);
    json_decref(root);
}

static int cmd_predict(const struct cli *cli, int argc, char **argv)
{
    static const struct config_syntax syntax = {.cmd = "predict", .dtype_param = true};
    json_t *config = NULL;
    int rc = build_config_body(&syntax, argc, argv, &config);
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:[o]}", "configs", config);
    if (!body) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    struct http_response resp;
    rc = call(cli, DEFAULT_TIMEOUT_S, "POST", "/v1/predict", text, strlen(text), &resp);
    free(text);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(print_json(&resp));
    if (rc == EXIT_OK) {
        fflush(stdout); /* the JSON before the summary when both go to a terminal */
        print_predict_summary(&resp);
    }
    http_response_free(&resp);
    return rc;
}

/* ---- estimate ---- */

/* "batch=64,in=256,out=512" from a params object, in its order. */
static void params_text(const json_t *params, char *buf, size_t len)
{
    size_t used = 0;
    const char *name;
    const json_t *v;
    buf[0] = '\0';
    json_object_foreach((json_t *)params, name, v)
    {
        int n = snprintf(buf + used, len - used, "%s%s=%" JSON_INTEGER_FORMAT, used ? "," : "",
                         name, json_integer_value(v));
        if (n < 0 || (size_t)n >= len - used) {
            buf[used] = '\0';
            return;
        }
        used += (size_t)n;
    }
}

/* "fc1,bn1,r1", shortened with "..." past len. */
static void nodes_text(const json_t *nodes, char *buf, size_t len)
{
    size_t used = 0, i;
    const json_t *v;
    buf[0] = '\0';
    json_array_foreach(nodes, i, v)
    {
        int n = snprintf(buf + used, len - used, "%s%s", i ? "," : "", str_or(v, "?"));
        if (n < 0 || (size_t)n >= len - used) {
            if (len >= 4)
                memcpy(buf + len - 4, "...", 4);
            return;
        }
        used += (size_t)n;
    }
}

/* A rail's value from a {rail: x} object, or the sum of all rails for "sum". */
static double rail_value(const json_t *by_rail, const char *rail)
{
    if (strcmp(rail, "sum") != 0)
        return json_number_value(json_object_get(by_rail, rail));
    double sum = 0;
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)by_rail, name, v)
        sum += json_number_value(v);
    return sum;
}

/* The kernels table and the totals of one Estimate. */
static void print_estimate_table(const json_t *est)
{
    const json_t *kernels = json_object_get(est, "kernels");
    const json_t *totals = json_object_get(est, "totals");
    const char *rail = str_or(json_object_get(totals, "board_input_rail"), "sum");
    const json_t *gnodes = json_object_get(est, "graph_nodes");
    printf("graph: %s, %" JSON_INTEGER_FORMAT " nodes -> %zu kernels (merge %s), batch %"
           JSON_INTEGER_FORMAT ", %s%s\n",
           str_or(json_object_get(est, "format"), "?"),
           json_is_integer(gnodes) ? json_integer_value(gnodes) : 0, json_array_size(kernels),
           json_is_false(json_object_get(est, "merge")) ? "off" : "on",
           json_integer_value(json_object_get(est, "batch")),
           str_or(json_object_get(est, "dtype"), "?"),
           json_is_true(json_object_get(est, "simulated")) ? ", simulated" : "");
    char power_head[48], energy_head[48];
    snprintf(power_head, sizeof power_head, "POWER_MW(%s)", rail);
    snprintf(energy_head, sizeof energy_head, "ENERGY_UJ(%s)", rail);
    printf("%3s  %-15s %-5s %-30s %5s %6s %11s %9s %16s %16s  %s\n", "#", "KERNEL", "DTYPE",
           "PARAMS", "DEPTH", "MERGED", "LATENCY_US", "SPREAD", power_head, energy_head, "NODES");
    size_t i;
    const json_t *k;
    json_array_foreach(kernels, i, k)
    {
        char params[128], nodes[64], lat[32], spread[32], pw[32], en[32];
        params_text(json_object_get(k, "params"), params, sizeof params);
        nodes_text(json_object_get(k, "nodes"), nodes, sizeof nodes);
        format_quantity(lat, sizeof lat, json_number_value(json_object_get(k, "latency_us")));
        format_quantity(spread, sizeof spread,
                        json_number_value(json_object_get(k, "latency_us_spread")));
        format_quantity(pw, sizeof pw, rail_value(json_object_get(k, "power_mw"), rail));
        format_quantity(en, sizeof en, rail_value(json_object_get(k, "energy_uj"), rail));
        printf("%3zu  %-15s %-5s %-30s %5" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT
               " %11s %9s %16s %16s  %s\n",
               i + 1, str_or(json_object_get(k, "kernel"), "?"),
               str_or(json_object_get(k, "dtype"), "?"), params,
               json_integer_value(json_object_get(k, "depth")),
               json_integer_value(json_object_get(k, "merged")), lat, spread, pw, en, nodes);
    }
    const json_t *energy = json_object_get(totals, "energy_uj");
    char lat[32], spread[32], board[32], gpu[32];
    format_quantity(lat, sizeof lat, json_number_value(json_object_get(totals, "latency_us")));
    format_quantity(spread, sizeof spread,
                    json_number_value(json_object_get(totals, "latency_us_spread")));
    format_quantity(board, sizeof board, json_number_value(json_object_get(energy, "board_input")));
    printf("total: %zu kernels, latency %s us (spread %s), energy %s uJ board input (%s)",
           json_array_size(kernels), lat, spread, board,
           strcmp(rail, "sum") == 0 ? "sum of the rails" : rail);
    const json_t *gpu_e = json_object_get(energy, "gpu");
    if (json_is_number(gpu_e)) {
        format_quantity(gpu, sizeof gpu, json_number_value(gpu_e));
        printf(", %s uJ GPU (%s)", gpu, str_or(json_object_get(totals, "gpu_rail"), "?"));
    }
    fputc('\n', stdout);
}

/* --json: the answer as the daemon would print it; else one table per graph. */
static int print_estimate_answer(const json_t *answer, bool json_out)
{
    if (json_out) {
        if (json_dumpf(answer, stdout, ESTIMATE_OUT_FLAGS) != 0 || fputc('\n', stdout) == EOF)
            return output_done(-1);
        return EXIT_OK;
    }
    const json_t *estimates = json_object_get(answer, "estimates");
    if (json_is_array(estimates)) {
        size_t i;
        const json_t *e;
        json_array_foreach(estimates, i, e)
        {
            printf("%s== graphs[%zu]\n", i ? "\n" : "", i);
            print_estimate_table(e);
        }
    } else {
        print_estimate_table(answer);
    }
    bool simulated = json_is_true(json_object_get(answer, "simulated")) ||
                     json_is_true(json_object_get(json_array_get(estimates, 0), "simulated"));
    fflush(stdout);
    if (simulated)
        fprintf(stderr, "predictions from models%s\n", simulated_note);
    return output_done(ferror(stdout) ? -1 : 0);
}

/* A graph error as the daemon words it; prefix names the graph (its file, or
 * "FILE: graphs[3]" in a batch). */
static void report_graph_error(const char *prefix, const struct graph_error *gerr)
{
    if (gerr->status == 500 || !gerr->detail[0])
        fail("%s: out of memory while estimating", prefix);
    else
        fail("%s: %s", prefix, gerr->detail);
}

/* A batch's estimate_predict_fn: the bundle's models (estimate_predict_with_set),
 * noting every kernel type without a model, so that one message names all of
 * them, as the daemon's 409 does. */
struct offline_batch_ctx {
    struct model_set *set;
    const char **missing; /* catalog_count() slots */
    size_t missing_count, missing_max;
};

static int offline_batch_predict(void *ctx, const struct kernel_config *cfg,
                                 struct kernel_prediction *out, char *err, size_t errlen)
{
    struct offline_batch_ctx *bc = ctx;
    if (estimate_predict_with_set(bc->set, cfg, out, err, errlen) == 0)
        return 0;
    for (size_t i = 0; i < bc->missing_count; i++)
        if (strcmp(bc->missing[i], cfg->kernel->name) == 0)
            return -1;
    if (bc->missing_count < bc->missing_max)
        bc->missing[bc->missing_count++] = cfg->kernel->name;
    return -1;
}

/* {"graphs": [...]} offline, with the daemon's rules: nothing beside "graphs",
 * 1 to ESTIMATE_MAX_GRAPHS graphs, the first bad graph ends it, missing models
 * are named across the whole batch. The answer {"simulated", "estimates"}, or
 * NULL with the reason printed. */
static json_t *estimate_offline_batch(const char *graph_path, const json_t *doc,
                                      const json_t *graphs, const struct estimate_options *opt,
                                      struct model_set *set)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        if (strcmp(key, "graphs") != 0) {
            fail("%s: unknown member '%s' beside 'graphs'; a batch is {\"graphs\": [graph, "
                 "...]} and each graph carries its own settings",
                 graph_path, key);
            return NULL;
        }
    }
    size_t n = json_array_size(graphs);
    if (n == 0 || n > ESTIMATE_MAX_GRAPHS) {
        fail("%s: member 'graphs' holds %zu graphs: send 1 to %d", graph_path, n,
             ESTIMATE_MAX_GRAPHS);
        return NULL;
    }
    struct offline_batch_ctx bc = {.set = set, .missing_max = catalog_count()};
    bc.missing = calloc(bc.missing_max ? bc.missing_max : 1, sizeof *bc.missing);
    json_t *estimates = json_array();
    json_t *answer = NULL;
    if (!bc.missing || !estimates) {
        fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct graph_error gerr;
        memset(&gerr, 0, sizeof gerr);
        json_t *est = estimate_graph(json_array_get(graphs, i), opt, offline_batch_predict, &bc,
                                     &gerr);
        if (est) {
            if (bc.missing_count == 0 && json_array_append_new(estimates, est) != 0) {
                fail("out of memory");
                goto out;
            }
            if (bc.missing_count > 0)
                json_decref(est);
            continue;
        }
        if (gerr.status == 409 && bc.missing_count > 0)
            continue;
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%.64s: graphs[%zu]", graph_path, i);
        report_graph_error(prefix, &gerr);
        goto out;
    }
    if (bc.missing_count > 0) {
        char detail[640];
        estimate_missing_models_detail(bc.missing, bc.missing_count, detail, sizeof detail);
        fail("%s: %s", graph_path, detail);
        goto out;
    }
    answer = json_object();
    if (!answer || json_object_set_new(answer, "simulated", json_boolean(opt->info.simulated)) ||
        json_object_set(answer, "estimates", estimates)) {
        json_decref(answer);
        answer = NULL;
        fail("out of memory");
    }
out:
    json_decref(estimates);
    free(bc.missing);
    return answer;
}

/*
 * estimate --offline: loads the bundle and estimates the graph (or every graph
 * of {"graphs": [...]}, answered as {"simulated", "estimates": [...]} like the
 * daemon) with the daemon's code. EXIT_OK with *answer, or EXIT_USAGE (the
 * bundle cannot be read) / EXIT_FAIL (message printed).
 */
static int estimate_offline(const char *graph_path, const json_t *doc, const char *models_path,
                            bool merge, json_t **answer)
{
    char *text = NULL;
    size_t len = 0;
    if (read_whole_file(models_path, &text, &len) != 0)
        return EXIT_USAGE;
    struct model_set *set = NULL;
    char err[512];
    if (model_set_load_bundle(text, len, &set, err, sizeof err) != 0) {
        free(text);
        fail("%s: not a usable model bundle (from 'jetprof models export'): %s", models_path, err);
        return EXIT_FAIL;
    }
    free(text);
    /* the daemon's options: api_estimate.c */
    struct estimate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.graph.merge = merge;
    opt.graph.max_nodes = GRAPH_DEFAULT_MAX_NODES;
    model_set_get_info(set, &opt.info);

    const json_t *graphs = json_is_object(doc) ? json_object_get(doc, "graphs") : NULL;
    if (json_is_array(graphs)) {
        *answer = estimate_offline_batch(graph_path, doc, graphs, &opt, set);
    } else {
        struct graph_error gerr;
        memset(&gerr, 0, sizeof gerr);
        *answer = estimate_graph(doc, &opt, estimate_predict_with_set, set, &gerr);
        if (!*answer)
            report_graph_error(graph_path, &gerr);
    }
    model_set_free(set);
    return *answer ? EXIT_OK : EXIT_FAIL;
}

static int cmd_estimate(const struct cli *cli, int argc, char **argv)
{
    bool merge = true, json_out = false, offline = false;
    const char *models_path = NULL, *graph_path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int t;
        if (strcmp(a, "--no-merge") == 0) {
            merge = false;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            json_out = true;
            continue;
        }
        if (strcmp(a, "--offline") == 0) {
            offline = true;
            continue;
        }
        if ((t = take_option(argc, argv, &i, "--models", &models_path)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            usage_error("estimate: unknown option '%s'", a);
            return EXIT_USAGE;
        }
        if (graph_path) {
            usage_error("estimate takes one GRAPH.json (got '%s' and '%s'); several graphs go "
                        "in one file as {\"graphs\": [...]}",
                        graph_path, a);
            return EXIT_USAGE;
        }
        graph_path = a;
    }
    if (!graph_path) {
        usage_error("estimate: which graph? e.g. 'jetprof estimate mlp.json' (- reads "
                    "standard input)");
        return EXIT_USAGE;
    }
    if (offline && (!models_path || !*models_path)) {
        usage_error("estimate --offline needs --models FILE (written by 'jetprof models "
                    "export -o FILE')");
        return EXIT_USAGE;
    }
    if (!offline && models_path) {
        usage_error("estimate: --models is for --offline (online estimates use the daemon's "
                    "current models)");
        return EXIT_USAGE;
    }

    char *text = NULL;
    size_t len = 0;
    if (read_whole_file(graph_path, &text, &len) != 0)
        return EXIT_USAGE;
    const char *shown = strcmp(graph_path, "-") == 0 ? "standard input" : graph_path;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc) {
        fail("%s:%d:%d: not valid JSON: %s", shown, jerr.line, jerr.column, jerr.text);
        free(text);
        return EXIT_FAIL;
    }

    json_t *answer = NULL;
    int rc;
    if (offline) {
        rc = estimate_offline(shown, doc, models_path, merge, &answer);
    } else {
        struct http_response resp;
        const char *path = merge ? "/v1/estimate" : "/v1/estimate?merge=false";
        rc = call(cli, DEFAULT_TIMEOUT_S, "POST", path, text, len, &resp);
        if (rc == EXIT_OK) {
            answer = json_loadb(resp.body, resp.body_len, 0, NULL);
            if (!json_is_object(answer)) {
                json_decref(answer);
                answer = NULL;
                fail("jetprofd's answer is not a JSON object; printing it as received");
                rc = output_done(print_raw(&resp));
                if (rc == EXIT_OK)
                    rc = EXIT_FAIL;
            }
            http_response_free(&resp);
        }
    }
    free(text);
    json_decref(doc);
    if (answer)
        rc = print_estimate_answer(answer, json_out);
    json_decref(answer);
    return rc;
}

/* ---- per-command help ---- */

static const char help_health[] = "Usage: jetprof health\n"
                                  "Liveness, version, uptime, job counts and the sampler's "
                                  "state (GET /v1/health).\n";
static const char help_device[] = "Usage: jetprof device\n"
                                  "Board, GPU, executor, sensor backend, rails and the "
                                  "sampling asked and got (GET /v1/device).\n";
static const char help_kernels[] = "Usage: jetprof kernels\n"
                                   "The kernel catalogue with each parameter's valid range "
                                   "(GET /v1/kernels).\n";
static const char help_measure[] =
    "Usage: jetprof measure KERNEL NAME=VALUE... [--dtype fp32|fp16] [--repeats N]\n"
    "Measures one kernel configuration (POST /v1/measure, needs the token when the\n"
    "daemon has one); answered when the job is done, which may be behind a queue.\n"
    "Prints the Measurement as JSON and a one-line summary on stderr.\n"
    "Example: jetprof measure linear_relu batch=64 in=256 out=512\n";
static const char help_measurements[] =
    "Usage: jetprof measurements [--kernel K] [--dtype D] [--quality ok|suspect]\n"
    "                            [--limit N] [--after ID] [--csv]\n"
    "The stored dataset, oldest first (GET /v1/measurements); --csv prints CSV as served.\n";
static const char help_train[] =
    "Usage: jetprof train [KERNEL...] [--quality ok|any] [--json]\n"
    "Trains the predictors (POST /v1/models/train, needs the token when the daemon has\n"
    "one): a latency model and one power model per rail for each kernel type named,\n"
    "or for every kernel type with at least 20 usable measurements when none is.\n"
    "--quality any also learns from measurements marked suspect. Answered when the\n"
    "runner has trained them (between jobs; no default time limit).\n"
    "Prints one line per model with its accuracy on the held-out split (RMSE in the\n"
    "target's unit, MAPE, share within +-10 %, Kendall tau); --json prints the answer.\n"
    "Example: jetprof train linear_relu layernorm --quality any\n";
static const char help_models[] =
    "Usage: jetprof models [--json]\n"
    "       jetprof models export [-o FILE]\n"
    "The current predictors of this board and their accuracy (GET /v1/models): a\n"
    "table, or the answer with --json.\n"
    "export writes them as one JSON bundle (GET /v1/models/export) to FILE (replaced\n"
    "whole, never half-written) or to stdout; 'jetprof estimate --offline --models\n"
    "FILE' computes estimates from it without the daemon.\n";
static const char help_predict[] =
    "Usage: jetprof predict KERNEL [dtype=fp32|fp16] NAME=VALUE...\n"
    "Predicted latency, power and energy per call of one kernel configuration\n"
    "(POST /v1/predict), with the measurement when the dataset has the same one.\n"
    "Prints the answer as JSON and a one-line summary on stderr.\n"
    "Example: jetprof predict linear_relu batch=64 in=256 out=512\n";
static const char help_estimate[] =
    "Usage: jetprof estimate [--no-merge] [--json] GRAPH.json\n"
    "       jetprof estimate --offline --models FILE [--no-merge] [--json] GRAPH.json\n"
    "A network graph's latency and energy: its nodes fused into the kernels the GPU\n"
    "runs, kernels at the same depth merged (unless --no-merge), each predicted, then\n"
    "summed (POST /v1/estimate). GRAPH.json is a native graph (docs/graphs.md), an\n"
    "nn-Meter IR graph, or {\"graphs\": [...]} for several; - reads standard input.\n"
    "Prints the kernels table and the totals; --json prints the Estimate as the\n"
    "daemon answers it (12 significant digits).\n"
    "--offline --models FILE runs the same code here on the models of a bundle from\n"
    "'jetprof models export -o FILE': the same models give the same numbers.\n"
    "Example: jetprof estimate --offline --models board.models.json mlp.json\n";
static const char help_get[] = "Usage: jetprof get PATH\n"
                               "Any GET request; the body printed as received.\n"
                               "Example: jetprof get /v1/measurements/12\n";

static const struct command {
    const char *name;
    int (*run)(const struct cli *cli, int argc, char **argv);
    const char *help; /* jetprof COMMAND --help */
} commands[] = {
    {"health", cmd_health, help_health},
    {"device", cmd_device, help_device},
    {"kernels", cmd_kernels, help_kernels},
    {"measure", cmd_measure, help_measure},
    {"measurements", cmd_measurements, help_measurements},
    {"train", cmd_train, help_train},
    {"models", cmd_models, help_models},
    {"predict", cmd_predict, help_predict},
    {"estimate", cmd_estimate, help_estimate},
    {"get", cmd_get, help_get},
};

/* ---- main ---- */

int main(int argc, char **argv)
{
    const char *url = NULL, *token_file = NULL, *timeout = NULL;
    const struct command *command = NULL;
    int rc = EXIT_USAGE;
    /* the command's own arguments, global options taken out */
    char **cmd_argv = calloc((size_t)argc + 1, sizeof *cmd_argv);
    int cmd_argc = 0;
    bool options_done = false;
    struct cli cli = {.timeout_s = -1};

    if (!cmd_argv) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done) {
            int t;
            if (strcmp(a, "--") == 0) {
                options_done = true;
                continue;
            }
            if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                if (command)
                    fputs(command->help, stdout);
                else
                    print_help(stdout);
                rc = output_done(fflush(stdout));
                goto out;
            }
            if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
                printf("jetprof %s\n", JETPROF_CLIENT_VERSION);
                rc = output_done(fflush(stdout));
                goto out;
            }
            if ((t = take_option(argc, argv, &i, "--url", &url)) != 0 ||
                (t = take_option(argc, argv, &i, "--token-file", &token_file)) != 0 ||
                (t = take_option(argc, argv, &i, "--timeout", &timeout)) != 0) {
                if (t < 0)
                    goto out;
                continue;
            }
            if (!command && a[0] == '-' && a[1] != '\0') {
                usage_error("unknown option '%s'", a);
                goto out;
            }
        }
        if (!command) {
            for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
                if (strcmp(a, commands[c].name) == 0)
                    command = &commands[c];
            if (!command) {
                usage_error("unknown command '%s' (commands: health, device, kernels, measure, "
                            "measurements, train, models, predict, estimate, get)",
                            a);
                goto out;
            }
            continue;
        }
        cmd_argv[cmd_argc++] = argv[i];
    }
    if (!command) {
        usage_error("no command given");
        goto out;
    }

    if (timeout) {
        char *end = NULL;
        errno = 0;
        double t = strtod(timeout, &end);
        if (errno != 0 || end == timeout || *end != '\0' || !isfinite(t) || t < 0 ||
            t > 86400.0 * 365) {
            usage_error("--timeout must be a number of seconds >= 0, got '%s'", timeout);
            goto out;
        }
        cli.timeout_s = t;
    }
    if (!url || !*url) {
        url = getenv("JETPROF_URL");
        if (!url || !*url)
            url = DEFAULT_URL;
    }
    cli.base_url = normalise_url(url);
    if (!cli.base_url) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    if (!token_file || !*token_file) {
        token_file = getenv("JETPROF_TOKEN_FILE");
        if (token_file && !*token_file)
            token_file = NULL;
    }
    if (token_file && read_token(token_file, &cli.token) != 0) {
        rc = EXIT_USAGE;
        goto out;
    }

    char err[256];
    if (http_client_global_init(err, sizeof err) != 0) {
        fail("%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    rc = command->run(&cli, cmd_argc, cmd_argv);
    http_client_global_cleanup();
    if (fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
    }

out:
    free(cmd_argv);
    free(cli.base_url);
    free(cli.token);
    return rc;
}
