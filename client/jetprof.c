/*
 * jetprof.c - the jetprof command-line client: curl-like ad-hoc use of a
 * jetprofd daemon (health, device, kernel catalogue, one measurement, the
 * dataset, any GET).
 *
 * It is deliberately thin: every check about kernels, ranges and memory is the
 * daemon's (it owns the catalogue and the executor), so the client only makes
 * sure it sends well-formed JSON (integers are integers) and turns the answer
 * into readable output: JSON pretty-printed on stdout, errors as one line on
 * stderr built from the daemon's problem+json (title and detail).
 * HTTP transport lives in http_client.c.
 *
 * Exit status: 0 success; 1 the daemon answered with an error or could not be
 * reached; 2 usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_client.h"

#define JETPROF_CLIENT_VERSION "0.1.0"
#define DEFAULT_URL "http://127.0.0.1:9740"
/* measure is answered when the job is done, which may be minutes behind a
 * queue; everything else is answered at once. */
#define DEFAULT_TIMEOUT_S 60.0
#define CONNECT_TIMEOUT_S 10.0
#define TOKEN_MAX_BYTES 4096
/* Reals printed with 15 significant digits: all a measured value carries,
 * without the binary noise of 17 ("8712.2999999999993"). */
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

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
        "Answers are printed as indented JSON on stdout; errors go to stderr.\n"
        "\n"
        "Options (before or after the command):\n"
        "  --url URL          jetprofd's address (default $JETPROF_URL, else " DEFAULT_URL ")\n"
        "  --token-file PATH  file holding the bearer token for mutating requests\n"
        "                     (default $JETPROF_TOKEN_FILE; none = no Authorization header)\n"
        "  --timeout S        give up after S seconds (default: no limit for measure,\n"
        "                     60 for the other commands; 0 = no limit)\n"
        "  -h, --help         show this help and exit\n"
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
        "  get PATH           any GET request, the body printed as received\n"
        "\n"
        "Examples:\n"
        "  jetprof health\n"
        "  jetprof kernels\n"
        "  jetprof measure linear_relu batch=64 in=256 out=512\n"
        "  jetprof measure layernorm rows=128 cols=768 --dtype fp16 --repeats 5\n"
        "  jetprof measurements --kernel linear_relu --limit 10\n"
        "  jetprof measurements --csv > dataset.csv\n"
        "  jetprof get /v1/measurements/12\n"
        "  jetprof --url http://jetson.local:9740 --token-file ~/.jetprof/token device\n"
        "\n"
        "Exit status: 0 success; 1 jetprofd answered with an error or could not be\n"
        "reached; 2 usage error.\n",
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

/* Builds the POST /v1/measure body from the arguments. EXIT_OK or EXIT_USAGE/EXIT_FAIL. */
static int build_measure_body(int argc, char **argv, json_t **out)
{
    json_t *body = json_object();
    if (!body) {
        fail("out of memory");
        return EXIT_FAIL;
    }
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
        if ((t = take_option(argc, argv, &i, "--repeats", &repeats)) != 0) {
            if (t < 0)
                goto out;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            usage_error("measure: unknown option '%s'", a);
            goto out;
        }
        if (!kernel) {
            if (strchr(a, '=')) {
                usage_error("measure: the kernel name comes first (got '%s')", a);
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
            usage_error("measure: expected NAME=VALUE, got '%s'", a);
            goto out;
        }
        size_t name_len = (size_t)(eq - a);
        if (!valid_param_name(a, name_len)) {
            usage_error("measure: '%.*s' in '%s' is not a parameter name", (int)name_len, a, a);
            goto out;
        }
        char name[64];
        if (name_len >= sizeof name) {
            usage_error("measure: parameter name in '%s' is too long", a);
            goto out;
        }
        memcpy(name, a, name_len);
        name[name_len] = '\0';
        if (strcmp(name, "kernel") == 0 || strcmp(name, "dtype") == 0 ||
            strcmp(name, "repeats") == 0) {
            usage_error("measure: '%s' is not a kernel parameter; use %s", name,
                        strcmp(name, "kernel") == 0 ? "the first argument"
                                                    : "the option of that name");
            goto out;
        }
        int64_t v;
        if (!parse_int64(eq + 1, &v)) {
            usage_error("measure: parameter '%s' must be a 64-bit integer, got '%s'", name, eq + 1);
            goto out;
        }
        if (json_object_get(body, name)) {
            usage_error("measure: parameter '%s' is given twice", name);
            goto out;
        }
        if (json_object_set_new(body, name, json_integer((json_int_t)v)) != 0) {
            fail("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    if (!kernel) {
        usage_error("measure: which kernel? e.g. 'jetprof measure linear batch=8 in=16 out=32' "
                    "('jetprof kernels' lists them)");
        goto out;
    }
    int64_t repeats_v = 0;
    if (repeats && !parse_int64(repeats, &repeats_v)) {
        usage_error("measure: --repeats must be a 64-bit integer, got '%s'", repeats);
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
    json_t *body = NULL;
    int rc = build_measure_body(argc, argv, &body);
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

static const struct command {
    const char *name;
    int (*run)(const struct cli *cli, int argc, char **argv);
} commands[] = {
    {"health", cmd_health},
    {"device", cmd_device},
    {"kernels", cmd_kernels},
    {"measure", cmd_measure},
    {"measurements", cmd_measurements},
    {"get", cmd_get},
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
                            "measurements, get)",
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
