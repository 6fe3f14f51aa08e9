/*
 * jetprof.c - the jetprof command-line client: curl-like ad-hoc use of a
 * jetprofd daemon (status, health, device, kernel catalogue, power now and as
 * a live stream, one measurement, the dataset, any GET), its queue (submit a
 * sweep and follow it with a progress bar, list and cancel jobs), exports of
 * the dataset (CSV, JSON lines, SQLite, streamed to a file), its predictors
 * (train, list, export, predict), graph estimates, online
 * (POST /v1/estimate) or offline from an exported bundle, and the validation
 * of those estimates against whole-graph measurements (client/validate.c).
 *
 * It is deliberately thin: every check about kernels, ranges and memory is the
 * daemon's (it owns the catalogue and the executor), so the client only makes
 * sure it sends well-formed JSON (integers are integers) and turns the answer
 * into readable output: JSON pretty-printed on stdout (tables for train, models
 * and estimate), errors as one line on stderr built from the daemon's
 * problem+json (title and detail). HTTP transport lives in http_client.c;
 * what every jetprof command shares (messages, the address rules, the token
 * file, reading files and numbers) in cli_common.c.
 *
 * The one exception is `estimate --offline --models FILE`: it loads the bundle
 * GET /v1/models/export wrote (model_set_load_bundle) and runs the daemon's own
 * estimate code (estimate_graph with estimate_predict_with_set, predict/), so a
 * workstation gets the daemon's numbers, digit for digit, without the board.
 * `train --offline` (client/offline_train.c) trains such a bundle here, with the
 * daemon's training pipeline (predict/trainset.c, XGBoost), from a fleet file.
 *
 * The daemon's address comes from --host (alias --url), else $JETPROF_HOST,
 * else $JETPROF_URL, else 127.0.0.1:9740: "host", "host:port", "[v6]:port" or
 * an http(s) URL with an optional path prefix; port 9740 when none is given
 * (as client/python/jetprof_client.py does).
 *
 * Exit status: 0 success; 1 the daemon answered with an error or could not be
 * reached (both 1 since the first release: scripts and tests rely on it; the
 * message on stderr tells them apart), a sweep waited for ended with failed
 * or canceled jobs, or (offline) the models or the graph were refused; 2 usage
 * error, including a file named on the command line that cannot be read and
 * an address that cannot be parsed; 128+N when signal N (SIGINT: 130) stopped
 * a command that runs until stopped (power --watch, submit --wait, validate, export).
 * docs/jetprof.1 documents all of it; keep the two in step.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../cudakern/catalog.h"
#include "../predict/estimate.h"
#include "../predict/graph.h"
#include "../predict/models.h"
#include "cli_common.h"
#include "fleet.h"
#include "fleet_hosts.h"
#include "http_client.h"
#include "validate.h"

#define JETPROF_CLIENT_VERSION "0.1.0"
#define DEFAULT_URL "http://127.0.0.1:9740"
/* measure and train are answered when the runner has done them, which may be
 * minutes behind a queue; everything else is answered at once. */
#define DEFAULT_TIMEOUT_S 60.0
#define CONNECT_TIMEOUT_S 10.0
/* Streams (power --watch, export) have no end to time: they are given up only
 * after this long without a byte. The power stream sends a heartbeat every
 * second; an export's first byte waits for the daemon's snapshot. */
#define STREAM_IDLE_TIMEOUT_S 60.0
/* submit --wait: one GET /v1/batches/{id} per poll; without a terminal, one
 * progress line at most every PROGRESS_LINE_MIN_S (when something changed),
 * and one at least every PROGRESS_LINE_MAX_S (so a log shows it is alive). */
#define PROGRESS_POLL_MS 1000
#define PROGRESS_LINE_MIN_S 5.0
#define PROGRESS_LINE_MAX_S 60.0
/* An SSE line longer than this is not jetprofd's (an event is a few hundred bytes). */
#define SSE_LINE_MAX_BYTES ((size_t)1024 * 1024)
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
    EXIT_SIGNAL_BASE = 128, /* + the signal's number, as a shell reports it */
};

/* Set by the SIGINT/SIGTERM handler that the commands which run until stopped
 * install (catch_stop_signals): the signal's number. Every request passes it
 * to libcurl, which stops the transfer within a second of it being set. */
static volatile sig_atomic_t stop_signal;

struct cli {
    char *base_url;      /* normalised, malloc'd */
    char *token;         /* malloc'd, NULL = none */
    double timeout_s;    /* -1 = command default */
};

/* ---- messages (cli_common.c) ---- */

/* "jetprof: ..." on stderr; a usage error adds "Try 'jetprof --help' ...". */
#define fail(...) cli_fail("jetprof", __VA_ARGS__)
#define usage_error(...) cli_usage_error("jetprof", "jetprof --help", __VA_ARGS__)

static void print_help(FILE *out)
{
    fputs(
        "Usage: jetprof [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Command-line client for jetprofd, the kernel latency and power profiling daemon.\n"
        "Answers are printed as indented JSON on stdout, or as tables and summaries\n"
        "where a command says so (--json then prints the JSON); errors go to stderr.\n"
        "'jetprof COMMAND --help' describes one command; man jetprof describes all.\n"
        "\n"
        "Options (before or after the command):\n"
        "  --host HOST[:PORT]  jetprofd's address: host, host:port, [v6]:port or an\n"
        "                      http(s) URL with an optional path prefix; port 9740 when\n"
        "                      none is given. Default $JETPROF_HOST, else $JETPROF_URL,\n"
        "                      else 127.0.0.1:9740. A flag beats the environment.\n"
        "  --url URL           the same as --host (given both, the last one counts)\n"
        "  --token-file PATH   file holding the bearer token, sent with every request\n"
        "                      (default $JETPROF_TOKEN_FILE; none = no Authorization header)\n"
        "  --timeout S         give up a request after S seconds (default: no limit for\n"
        "                      measure and train, 60 for the others; 0 = no limit); for\n"
        "                      power --watch and export the longest silence (default 60)\n"
        "  -h, --help          show this help (or the command's) and exit\n"
        "  -V, --version       print the version and exit\n"
        "\n"
        "Commands:\n"
        "  status [--json]     one summary: health, board, executor, sensor and its rate,\n"
        "                      queue counts, models; says SIMULATED when it is\n"
        "  health              liveness, version, uptime, job counts, sampler state\n"
        "  device              board, executor, sensor backend, rails, sampling asked and got\n"
        "  kernels             the kernel catalogue with each parameter's valid range\n"
        "  power [--json]      the latest sample of every rail as a table\n"
        "  power --watch [--interval MS] [--count N] [--json]\n"
        "                      one line per sample from the live stream until Ctrl-C\n"
        "  measure KERNEL NAME=VALUE... [--dtype fp32|fp16] [--repeats N]\n"
        "                      measure one kernel configuration; answered when the job is\n"
        "                      done; prints the Measurement and a one-line summary on stderr\n"
        "  submit SWEEP.json|- [--wait] [--json]\n"
        "                      queue a batch (configs, or a grid, random or list sweep);\n"
        "                      --wait follows it with a progress bar until it ends\n"
        "  jobs [--state S] [--batch ID] [--limit N] [--after ID] [--json]\n"
        "                      the queue's jobs, oldest first, as a table\n"
        "  cancel JOB_ID | --batch ID [--json]\n"
        "                      cancel a queued job, or every queued job of a batch\n"
        "  measurements [--kernel K] [--dtype D] [--quality ok|suspect] [--limit N]\n"
        "               [--after ID] [--csv]\n"
        "                      one page of the stored dataset, oldest first\n"
        "  export [--format csv|json|sqlite] [-o FILE] [--kernel K] [--batch ID]\n"
        "         [--since TIME] [--dtype D] [--quality Q]\n"
        "                      the whole dataset streamed: CSV, JSON lines, or the SQLite\n"
        "                      database; FILE is written as FILE.part, then renamed\n"
        "  train [KERNEL...] [--quality ok|any] [--json]\n"
        "                      train the predictors of these kernel types (default: every\n"
        "                      type with enough measurements); prints the models' accuracy\n"
        "  models [--json]     the current predictors and their accuracy\n"
        "  models export [-o FILE]\n"
        "                      the predictors as one JSON bundle, for estimate --offline\n"
        "  predict KERNEL [dtype=fp16] NAME=VALUE... [--json]\n"
        "                      predicted latency, power and energy of one configuration\n"
        "  estimate [--no-merge] [--json] GRAPH.json\n"
        "                      a network graph's kernels after fusion and merging, each\n"
        "                      kernel's prediction and the totals\n"
        "  estimate --offline --models FILE [--no-merge] [--json] GRAPH.json\n"
        "                      the same computed here from an exported bundle (no daemon)\n"
        "  validate [--family tiny|small|medium|none] [--graph FILE]... [--adaptive] [--json]\n"
        "                      measure graphs whole (fixtures and generated MLP and\n"
        "                      FT-Transformer families) after training what they need, and\n"
        "                      compare with the estimates, merging on and off: per graph\n"
        "                      errors, MAPE, within +-10 %, Kendall tau; 'validate --help'\n"
        "  get PATH            any GET request, the body printed as received\n"
        "  fleet status|submit|progress|cancel|pull ...\n"
        "                      one command over a shelf of boards listed in a hosts file\n"
        "                      (--hosts FILE or $JETPROF_HOSTS); 'jetprof fleet --help'\n"
        "\n"
        "Environment:\n"
        "  JETPROF_HOST        the daemon's address when --host/--url is not given\n"
        "  JETPROF_URL         the same, when JETPROF_HOST is not set (older name)\n"
        "  JETPROF_TOKEN_FILE  the token file when --token-file is not given\n"
        "  JETPROF_HOSTS       the fleet's hosts file when --hosts is not given\n"
        "\n"
        "Examples:\n"
        "  jetprof status\n"
        "  jetprof --host jetson.local power --watch --interval 500\n"
        "  jetprof measure linear_relu batch=64 in=256 out=512\n"
        "  jetprof --token-file ~/.jetprof/token submit sweep.json --wait\n"
        "  jetprof jobs --state failed\n"
        "  jetprof cancel --batch 7\n"
        "  jetprof export --format sqlite -o board.sqlite\n"
        "  jetprof export --kernel linear_relu --since 2026-11-22 -o linear_relu.csv\n"
        "  jetprof train linear_relu layernorm --quality any\n"
        "  jetprof estimate mlp.json\n"
        "  jetprof models export -o board.models.json\n"
        "  jetprof estimate --offline --models board.models.json --json mlp.json\n"
        "  jetprof validate --family small --samples 60\n"
        "  jetprof get /v1/measurements/12\n"
        "\n"
        "Exit status:\n"
        "  0    success\n"
        "  1    jetprofd answered with an error (the status, title and detail of its\n"
        "       problem document are printed), or could not be reached or did not answer\n"
        "       in time (the message says which); a sweep followed with submit --wait\n"
        "       ended with failed or canceled jobs; an offline estimate was refused; a\n"
        "       file could not be written\n"
        "  2    usage error: unknown command or option, bad value, unreadable file named\n"
        "       on the command line or token file, address that cannot be parsed\n"
        "  130  stopped by Ctrl-C (SIGINT; 143 for SIGTERM) while running until stopped:\n"
        "       power --watch, submit --wait and validate (the jobs keep running), export\n",
        out);
}

/* ---- argument helpers ---- */

static int take_option(int argc, char **argv, int *i, const char *name, const char **val)
{
    return cli_take_option(argc, argv, i, name, val, "jetprof", "jetprof --help");
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

/* ---- set-up: signals ---- */

static void on_stop_signal(int sig) { stop_signal = sig; }

/* SIGINT and SIGTERM set stop_signal instead of ending the process, so a
 * command that runs until stopped ends cleanly: the terminal line finished,
 * a partial export removed, the reason said. No SA_RESTART: a sleep returns
 * at once. Installed even where the shell left SIGINT ignored (a background
 * job), so `kill -INT` works there too. 0, or -1 with the reason printed. */
static int catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        fail("cannot install the signal handlers: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int interrupted_exit(void) { return EXIT_SIGNAL_BASE + (int)stop_signal; }

/* ---- answers ---- */

/* Prints "jetprof: <status> <title>: <detail>" from a problem+json answer, or
 * the status and the start of the body when the answer is not one. */
static void report_http_error(const struct http_response *resp)
{
    cli_report_http_error("jetprof", NULL, resp->status, resp->body, resp->body_len);
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
/* The exit status for a request that got no HTTP answer, the reason printed
 * (nothing for an interruption: the caller says what it means). */
static int transport_failure(const struct cli *cli, int rc, const char *method, const char *path,
                             const char *err)
{
    switch (rc) {
    case HTTP_CLIENT_INTERRUPTED:
        return interrupted_exit();
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
}

static int call(const struct cli *cli, double default_timeout_s, const char *method,
                const char *path, const char *body, size_t body_len, struct http_response *resp)
{
    struct http_client_opts opts = {
        .base_url = cli->base_url,
        .token = cli->token,
        .timeout_s = cli->timeout_s >= 0 ? cli->timeout_s : default_timeout_s,
        .connect_timeout_s = CONNECT_TIMEOUT_S,
        .interrupted = &stop_signal,
    };
    if (opts.timeout_s > 0 && opts.timeout_s < opts.connect_timeout_s)
        opts.connect_timeout_s = opts.timeout_s;
    char err[512];
    int rc = http_client_request(&opts, method, path, body, body_len, resp, err, sizeof err);
    if (rc != HTTP_CLIENT_OK)
        return transport_failure(cli, rc, method, path, err);
    if (resp->status < 200 || resp->status > 299) {
        report_http_error(resp);
        http_response_free(resp);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/*
 * A GET whose 2xx body goes to on_data as it arrives (http_client_stream),
 * with no limit on the whole transfer but --timeout (default
 * STREAM_IDLE_TIMEOUT_S) on silence. EXIT_OK when the body arrived whole;
 * EXIT_FAIL with *stopped set when on_data stopped it (the caller knows why);
 * otherwise as call().
 */
static int call_stream(const struct cli *cli, const char *path, http_body_fn on_data, void *ctx,
                       bool *stopped)
{
    struct http_client_opts opts = {
        .base_url = cli->base_url,
        .token = cli->token,
        .timeout_s = 0,
        .connect_timeout_s = CONNECT_TIMEOUT_S,
        .idle_timeout_s = cli->timeout_s >= 0 ? cli->timeout_s : STREAM_IDLE_TIMEOUT_S,
        .interrupted = &stop_signal,
    };
    if (opts.idle_timeout_s > 0 && opts.idle_timeout_s < opts.connect_timeout_s)
        opts.connect_timeout_s = opts.idle_timeout_s;
    *stopped = false;
    struct http_response resp;
    char err[512];
    int rc = http_client_stream(&opts, "GET", path, NULL, 0, on_data, ctx, &resp, err, sizeof err);
    if (rc == HTTP_CLIENT_STOPPED) {
        *stopped = true;
        http_response_free(&resp);
        return EXIT_FAIL;
    }
    if (rc != HTTP_CLIENT_OK) {
        http_response_free(&resp);
        return transport_failure(cli, rc, "GET", path, err);
    }
    if (resp.status < 200 || resp.status > 299) {
        report_http_error(&resp);
        rc = EXIT_FAIL;
    } else {
        rc = EXIT_OK;
    }
    http_response_free(&resp);
    return rc;
}

static int output_done(int rc)
{
    if (rc != 0) {
        fail("writing the output failed: %s", strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Prints the answer, as received (raw) or as indented JSON, and frees it.
 * EXIT_OK, or EXIT_FAIL when the output cannot be written. */
static int print_answer(struct http_response *resp, bool raw)
{
    int rc = output_done(raw ? print_raw(resp) : print_json(resp));
    http_response_free(resp);
    return rc;
}

/* A 2xx answer that is not what the command expected (what: "has no \"jobs\"
 * list"): says so and prints it as received. EXIT_FAIL, or the output's error. */
static int print_unexpected(const struct http_response *resp, const char *what)
{
    fail("jetprofd's answer %s; printing it as received", what);
    int rc = output_done(print_raw(resp));
    return rc == EXIT_OK ? EXIT_FAIL : rc;
}

/* POSTs body (consumed) as compact JSON, prints the answer, then summary's one
 * line on stderr (measure, predict). EXIT_OK, or as call(). */
static int post_with_summary(const struct cli *cli, double default_timeout_s, const char *path,
                             json_t *body, void (*summary)(const struct http_response *))
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    struct http_response resp;
    int rc = call(cli, default_timeout_s, "POST", path, text, strlen(text), &resp);
    free(text);
    if (rc != EXIT_OK)
        return rc;
    rc = output_done(print_json(&resp));
    if (rc == EXIT_OK) {
        fflush(stdout); /* the JSON before the summary when both go to a terminal */
        summary(&resp);
    }
    http_response_free(&resp);
    return rc;
}

/* The JSON file named on the command line ("-" = standard input): its text,
 * kept to be sent as written, and the document; a sweep must be an object.
 * EXIT_OK with both; EXIT_USAGE when it cannot be read, EXIT_FAIL when it is
 * not JSON (or not a sweep), the reason printed. */
static int read_json_arg(const char *path, bool sweep, char **text, size_t *len, json_t **doc)
{
    char err[CLI_ERR_MAX];
    int rc = sweep ? cli_read_sweep(path, INPUT_FILE_MAX_BYTES, text, len, doc, err, sizeof err)
                   : cli_read_json(path, INPUT_FILE_MAX_BYTES, text, len, doc, err, sizeof err);
    if (rc == 0)
        return EXIT_OK;
    fail("%s", err);
    return rc == -1 ? EXIT_USAGE : EXIT_FAIL;
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
    return print_answer(&resp, false);
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
        if (!cli_parse_int64(eq + 1, &v)) {
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
    if (repeats && !cli_parse_int64(repeats, &repeats_v)) {
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
    return post_with_summary(cli, 0, "/v1/measure", body, print_measure_summary);
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

/*
 * argv[*i] as one of the filter options of filters[n] ({"--option", "query
 * name"}): 1 with values[f] set (and *i advanced past a separate value), 0
 * when it is none of them, -1 when its value is missing (usage error printed).
 */
static int take_filter(int argc, char **argv, int *i, const char *const (*filters)[2], size_t n,
                       const char **values)
{
    for (size_t f = 0; f < n; f++) {
        int t = take_option(argc, argv, i, filters[f][0], &values[f]);
        if (t != 0)
            return t;
    }
    return 0;
}

/* Appends the filters given (values[f] not NULL) to *query, as their query
 * names, in filters' order. 0 or -1 (no memory). */
static int query_add_filters(char **query, size_t *len, const char *const (*filters)[2],
                             const char *const *values, size_t n)
{
    for (size_t f = 0; f < n; f++)
        if (values[f] && query_add(query, len, filters[f][1], values[f]) != 0)
            return -1;
    return 0;
}

/* base followed by query (may be NULL), malloc'd; NULL when out of memory. */
static char *path_with_query(const char *base, const char *query)
{
    size_t n = strlen(base) + (query ? strlen(query) : 0) + 1;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s", base, query ? query : "");
    return path;
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
        int matched = take_filter(argc, argv, &i, filters, NFILTERS, values);
        if (matched < 0)
            return EXIT_USAGE;
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
        if (values[f] && !cli_parse_int64(values[f], &v)) {
            usage_error("measurements: %s must be a 64-bit integer, got '%s'", filters[f][0],
                        values[f]);
            return EXIT_USAGE;
        }
    }
    char *query = NULL;
    size_t len = 0;
    bool ok = query_add_filters(&query, &len, filters, values, NFILTERS) == 0 &&
              (!csv || query_add(&query, &len, "format", "csv") == 0);
    char *path = ok ? path_with_query("/v1/measurements", query) : NULL;
    free(query);
    if (!path) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    return print_answer(&resp, csv);
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
    return print_answer(&resp, true);
}

/* ---- files ---- */

/* Writes data to path: a regular file through a temporary file in the same
 * directory and a rename, so an interrupted export never leaves half a bundle
 * under the name; anything else (a FIFO, /dev/stdout) directly.
 * 0, or -1 with the reason printed. */
static int write_file_replace(const char *path, const char *data, size_t len)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || cli_write_all(fd, data, len) != 0) {
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
    if (cli_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
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
        return print_unexpected(resp, "has no \"models\" list");
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
    /* --offline: trained here from a database (client/offline_train.c), no daemon */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--offline") != 0)
            continue;
        static char train_word[] = "train";
        char **targv = calloc((size_t)argc + 2, sizeof *targv);
        if (!targv) {
            fail("out of memory");
            return EXIT_FAIL;
        }
        targv[0] = train_word;
        for (int j = 0; j < argc; j++)
            targv[j + 1] = argv[j];
        int rc = offline_train_main(argc + 1, targv);
        free(targv);
        return rc;
    }
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
    return post_with_summary(cli, DEFAULT_TIMEOUT_S, "/v1/predict", body, print_predict_summary);
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
    char err[CLI_ERR_MAX];
    if (cli_read_file(models_path, INPUT_FILE_MAX_BYTES, &text, &len, err, sizeof err) != 0) {
        fail("%s", err);
        return EXIT_USAGE;
    }
    struct model_set *set = NULL;
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
    json_t *doc = NULL;
    int rc = read_json_arg(graph_path, false, &text, &len, &doc);
    if (rc != EXIT_OK)
        return rc;
    const char *shown = cli_input_name(graph_path);

    json_t *answer = NULL;
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
                rc = print_unexpected(&resp, "is not a JSON object");
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

/* ---- the service: status, power, submit, jobs, cancel, export ---- */

/* GET path, the answer parsed: a JSON object in *out. EXIT_OK, or as call();
 * a 2xx answer that is not a JSON object is EXIT_FAIL (message printed). */
static int get_object(const struct cli *cli, const char *path, json_t **out)
{
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    json_error_t jerr;
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, &jerr);
    http_response_free(&resp);
    if (!json_is_object(doc)) {
        fail("GET %s: jetprofd's answer is not a JSON object%s%s", path, doc ? "" : ": ",
             doc ? "" : jerr.text);
        json_decref(doc);
        return EXIT_FAIL;
    }
    *out = doc;
    return EXIT_OK;
}

/* Strict integer option value in [lo, hi]; usage error (message printed) when not. */
static bool option_int(const char *cmd, const char *name, const char *value, int64_t lo,
                       int64_t hi, int64_t *out)
{
    if (!cli_parse_int64(value, out) || *out < lo || *out > hi) {
        usage_error("%s: %s must be an integer in [%" PRId64 ", %" PRId64 "], got '%s'", cmd,
                    name, lo, hi, value);
        return false;
    }
    return true;
}

/* ---- status ---- */

static void print_status(const struct cli *cli, const json_t *health, const json_t *device,
                         const json_t *models_doc)
{
    const json_t *jobs = json_object_get(health, "jobs");
    const json_t *runner = json_object_get(health, "runner");
    const json_t *sampler = json_object_get(health, "sampler");
    const json_t *sensor = json_object_get(device, "sensor");
    const json_t *executor = json_object_get(device, "executor");
    const json_t *board = json_object_get(device, "board");
    bool simulated = json_is_true(json_object_get(health, "simulated")) ||
                     json_is_true(json_object_get(device, "simulated"));
    char up[32];
    printf("jetprofd %s at %s: %s, up %s (started %s)%s\n",
           str_or(json_object_get(health, "version"), "?"), cli->base_url,
           str_or(json_object_get(health, "status"), "?"),
           cli_format_duration(up, sizeof up,
                               json_number_value(json_object_get(health, "uptime_s"))),
           str_or(json_object_get(health, "started_at"), "?"), simulated ? "  SIMULATED" : "");
    if (simulated)
        printf("SIMULATED: power from the sim sensor and/or kernels on the CPU executor; "
               "no number here is a board's\n");
    printf("board:     %s", str_or(json_object_get(board, "model"), "?"));
    const char *l4t = str_or(json_object_get(board, "l4t"), "");
    if (*l4t)
        printf(", L4T %s", l4t);
    printf(", host %s\n", str_or(json_object_get(device, "hostname"), "?"));
    printf("executor:  %s (%s)\n", str_or(json_object_get(executor, "name"), "?"),
           str_or(json_object_get(executor, "device"), "?"));
    if (json_is_object(sensor)) {
        const json_t *rails = json_object_get(sensor, "rails");
        const json_t *input = json_object_get(sensor, "board_input_rail");
        printf("sensor:    %s, %zu rail%s, board input %s", str_or(json_object_get(sensor, "backend"), "?"),
               json_array_size(rails), json_array_size(rails) == 1 ? "" : "s",
               json_is_string(input) ? json_string_value(input)
               : json_is_true(json_object_get(sensor, "board_input_is_sum")) ? "= sum of the rails"
                                                                              : "unknown");
    } else {
        printf("sensor:    none");
    }
    if (json_is_object(sampler)) {
        char got[32], want[32];
        format_quantity(got, sizeof got, json_number_value(json_object_get(sampler, "achieved_rate_hz")));
        const json_t *expected = json_object_get(sensor, "expected_rate_hz");
        if (json_is_number(expected)) {
            format_quantity(want, sizeof want, json_number_value(expected));
            printf("; sampling at %s Hz of %s Hz expected", got, want);
        } else {
            printf("; sampling at %s Hz", got);
        }
        printf(", %" JSON_INTEGER_FORMAT " read errors", cli_int_member(sampler, "read_errors"));
        const char *last = str_or(json_object_get(sampler, "last_error"), "");
        if (*last)
            printf(" (last: %s)", last);
    }
    fputc('\n', stdout);
    if (json_is_object(jobs))
        printf("queue:     %" JSON_INTEGER_FORMAT " queued, %" JSON_INTEGER_FORMAT
               " running, %" JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT
               " failed, %" JSON_INTEGER_FORMAT " canceled",
               cli_int_member(jobs, "queued"), cli_int_member(jobs, "running"),
               cli_int_member(jobs, "done"), cli_int_member(jobs, "failed"),
               cli_int_member(jobs, "canceled"));
    else
        printf("queue:     unknown (jetprofd could not count the jobs)");
    if (json_is_object(runner)) {
        const json_t *current = json_object_get(runner, "current_job_id");
        if (json_is_true(json_object_get(runner, "busy")) && json_is_integer(current))
            printf("; runner busy with job %" JSON_INTEGER_FORMAT, json_integer_value(current));
        else
            printf("; runner idle");
        if (json_is_false(json_object_get(runner, "storage_ok")))
            printf("; STORAGE FAILING");
        const char *last = str_or(json_object_get(runner, "last_error"), "");
        if (*last)
            printf(" (last error: %s)", last);
    }
    fputc('\n', stdout);
    const json_t *models = json_object_get(models_doc, "models");
    size_t count = json_array_size(models), types = count_kernel_types(models);
    printf("models:    %zu model%s for %zu kernel type%s\n", count, count == 1 ? "" : "s", types,
           types == 1 ? "" : "s");
}

static int cmd_status(const struct cli *cli, int argc, char **argv)
{
    bool json_out = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        usage_error("status: unknown %s '%s' (status [--json])",
                    argv[i][0] == '-' ? "option" : "argument", argv[i]);
        return EXIT_USAGE;
    }
    json_t *health = NULL, *device = NULL, *models = NULL;
    int rc = get_object(cli, "/v1/health", &health);
    if (rc == EXIT_OK)
        rc = get_object(cli, "/v1/device", &device);
    if (rc == EXIT_OK)
        rc = get_object(cli, "/v1/models", &models);
    if (rc == EXIT_OK) {
        if (json_out) {
            json_t *all = json_pack("{s:O,s:O,s:O}", "health", health, "device", device,
                                    "models", models);
            if (!all) {
                fail("out of memory");
                rc = EXIT_FAIL;
            } else {
                rc = output_done(json_dumpf(all, stdout, JSON_OUT_FLAGS) != 0 ||
                                         fputc('\n', stdout) == EOF
                                     ? -1
                                     : 0);
                json_decref(all);
            }
        } else {
            print_status(cli, health, device, models);
            rc = output_done(ferror(stdout) ? -1 : 0);
        }
    }
    json_decref(health);
    json_decref(device);
    json_decref(models);
    return rc;
}

/* ---- power ---- */

/* The latest sample as a table, and how it was sampled. */
static void print_power_table(const json_t *doc)
{
    const json_t *rails = json_object_get(doc, "rails");
    char age[32], got[32], want[32];
    format_quantity(age, sizeof age, json_number_value(json_object_get(doc, "age_ms")));
    format_quantity(got, sizeof got, json_number_value(json_object_get(doc, "achieved_rate_hz")));
    printf("sensor %s%s, sample %s ms old, sampling at %s Hz",
           str_or(json_object_get(doc, "backend"), "?"),
           json_is_true(json_object_get(doc, "simulated")) ? " (SIMULATED)" : "", age, got);
    const json_t *expected = json_object_get(doc, "expected_rate_hz");
    if (json_is_number(expected)) {
        format_quantity(want, sizeof want, json_number_value(expected));
        printf(" of %s Hz expected", want);
    }
    fputc('\n', stdout);
    printf("%-20s %11s %11s %11s\n", "RAIL", "VOLTAGE_MV", "CURRENT_MA", "POWER_MW");
    size_t i;
    const json_t *r;
    double sum_mw = 0;
    json_array_foreach(rails, i, r)
    {
        double mw = json_number_value(json_object_get(r, "power_mw"));
        sum_mw += mw;
        printf("%-20s %11.1f %11.1f %11.1f%s\n", str_or(json_object_get(r, "name"), "?"),
               json_number_value(json_object_get(r, "voltage_mv")),
               json_number_value(json_object_get(r, "current_ma")), mw,
               json_is_true(json_object_get(r, "board_input")) ? "  board input" : "");
    }
    if (json_is_true(json_object_get(doc, "board_input_is_sum")))
        printf("%-20s %11s %11s %11.1f  board input (no input rail: sum of the rails)\n", "sum",
               "", "", sum_mw);
}

/* The state of one Server-Sent Events stream being read (power --watch). */
struct sse_reader {
    char *line;              /* the line being assembled */
    size_t line_len, line_cap;
    char *data;              /* the "data:" lines of the event being assembled */
    size_t data_len, data_cap;
    bool json_out;           /* print each event's data as received */
    bool have_first;
    int64_t first_t_ns;      /* sample time of the first event: lines show time since */
    uint64_t events;
    bool said_simulated;
    int write_errno;         /* a failed write to stdout (EPIPE: the reader went away) */
    bool bad_stream;         /* not jetprofd's events: message printed */
};

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 1024;
    while (cap2 < need)
        cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p)
        return -1;
    *buf = p;
    *cap = cap2;
    return 0;
}

/* One event: a line on stdout, flushed at once (a pipe reader sees it now). */
static int sse_event(struct sse_reader *r)
{
    if (r->data_len > 0 && r->data[r->data_len - 1] == '\n')
        r->data_len--; /* the last data line's separator */
    r->data[r->data_len] = '\0';
    r->events++;
    if (r->json_out) {
        if (fwrite(r->data, 1, r->data_len, stdout) != r->data_len || fputc('\n', stdout) == EOF)
            goto write_failed;
    } else {
        json_error_t jerr;
        json_t *ev = json_loadb(r->data, r->data_len, 0, &jerr);
        const json_t *rails = json_object_get(ev, "rails");
        const json_t *t = json_object_get(ev, "t_ns");
        if (!json_is_array(rails) || !json_is_integer(t)) {
            fail("event %" PRIu64 " of the power stream is not a power sample%s%s", r->events,
                 ev ? "" : ": ", ev ? "" : jerr.text);
            json_decref(ev);
            r->bad_stream = true;
            return -1;
        }
        int64_t t_ns = (int64_t)json_integer_value(t);
        if (!r->have_first) {
            r->have_first = true;
            r->first_t_ns = t_ns;
        }
        if (json_is_true(json_object_get(ev, "simulated")) && !r->said_simulated) {
            fputs("jetprof: SIMULATED power (sim sensor), not a board's\n", stderr);
            r->said_simulated = true;
        }
        printf("%+10.3f s", (double)(t_ns - r->first_t_ns) / 1e9);
        size_t i;
        const json_t *rail;
        json_array_foreach(rails, i, rail)
        printf("  %s %.1f mW", str_or(json_object_get(rail, "name"), "?"),
               json_number_value(json_object_get(rail, "power_mw")));
        json_decref(ev);
        if (fputc('\n', stdout) == EOF)
            goto write_failed;
    }
    if (fflush(stdout) != 0)
        goto write_failed;
    return 0;
write_failed:
    r->write_errno = errno ? errno : EIO;
    return -1;
}

/* One line of the stream (without its end of line): a field, a comment (the
 * daemon's heartbeat), or the blank line that ends an event. */
static int sse_line(struct sse_reader *r)
{
    const char *line = r->line;
    size_t n = r->line_len;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 0) {
        int rc = r->data_len > 0 ? sse_event(r) : 0;
        r->data_len = 0;
        return rc;
    }
    if (line[0] == ':')
        return 0;
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    if (name_len != 4 || memcmp(line, "data", 4) != 0)
        return 0; /* id, event, retry: nothing to do with them here */
    const char *value = colon ? colon + 1 : line + n;
    if (value < line + n && *value == ' ')
        value++;
    size_t vlen = (size_t)(line + n - value);
    if (grow(&r->data, &r->data_cap, r->data_len + vlen + 2) != 0) {
        fail("out of memory reading the power stream");
        r->bad_stream = true;
        return -1;
    }
    memcpy(r->data + r->data_len, value, vlen);
    r->data_len += vlen;
    r->data[r->data_len++] = '\n';
    return 0;
}

static int sse_chunk(void *ctx, const char *data, size_t len)
{
    struct sse_reader *r = ctx;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            if (sse_line(r) != 0)
                return -1;
            r->line_len = 0;
            continue;
        }
        if (r->line_len + 1 >= SSE_LINE_MAX_BYTES) {
            fail("the power stream sent a line longer than %zu bytes: not jetprofd's events",
                 SSE_LINE_MAX_BYTES);
            r->bad_stream = true;
            return -1;
        }
        if (grow(&r->line, &r->line_cap, r->line_len + 2) != 0) {
            fail("out of memory reading the power stream");
            r->bad_stream = true;
            return -1;
        }
        r->line[r->line_len++] = data[i];
    }
    return 0;
}

static int power_watch(const struct cli *cli, const char *interval, const char *count,
                       bool json_out)
{
    /* both values were checked to be short integers (cmd_power) */
    char path[128];
    int n = snprintf(path, sizeof path, "/v1/power/stream");
    if (interval)
        n += snprintf(path + n, sizeof path - (size_t)n, "?interval_ms=%s", interval);
    if (count)
        snprintf(path + n, sizeof path - (size_t)n, "%ccount=%s", interval ? '&' : '?', count);
    if (catch_stop_signals() != 0)
        return EXIT_FAIL;
    /* a reader that goes away (| head) is a normal end: see EPIPE, not die */
    signal(SIGPIPE, SIG_IGN);
    struct sse_reader r = {.json_out = json_out};
    bool stopped = false;
    int rc = call_stream(cli, path, sse_chunk, &r, &stopped);
    if (stopped) {
        if (r.write_errno == EPIPE) {
            rc = EXIT_OK;
        } else if (r.write_errno) {
            fail("writing the output failed: %s", strerror(r.write_errno));
            rc = EXIT_FAIL;
        } else {
            rc = EXIT_FAIL; /* bad_stream: said */
        }
    } else if (rc == EXIT_OK && !count) {
        fail("jetprofd ended the power stream after %" PRIu64 " events (is it stopping?)",
             r.events);
        rc = EXIT_FAIL;
    }
    free(r.line);
    free(r.data);
    return rc;
}

static int cmd_power(const struct cli *cli, int argc, char **argv)
{
    bool watch = false, json_out = false;
    const char *interval = NULL, *count = NULL;
    for (int i = 0; i < argc; i++) {
        int t;
        if (strcmp(argv[i], "--watch") == 0 || strcmp(argv[i], "-w") == 0) {
            watch = true;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        if ((t = take_option(argc, argv, &i, "--interval", &interval)) != 0 ||
            (t = take_option(argc, argv, &i, "--count", &count)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            continue;
        }
        usage_error("power: unknown %s '%s'", argv[i][0] == '-' ? "option" : "argument", argv[i]);
        return EXIT_USAGE;
    }
    int64_t v;
    /* ranges as the daemon's (api_power.c), so a mistake is a usage error */
    if (interval && !option_int("power", "--interval", interval, 0, 60000, &v))
        return EXIT_USAGE;
    if (count && !option_int("power", "--count", count, 1, 1000000, &v))
        return EXIT_USAGE;
    if (!watch && (interval || count)) {
        usage_error("power: --interval and --count go with --watch");
        return EXIT_USAGE;
    }
    if (watch)
        return power_watch(cli, interval, count, json_out);
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", "/v1/power", NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    if (json_out) {
        rc = output_done(print_json(&resp));
    } else {
        json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!json_is_array(json_object_get(doc, "rails"))) {
            rc = print_unexpected(&resp, "has no \"rails\" list");
        } else {
            print_power_table(doc);
            rc = output_done(ferror(stdout) ? -1 : 0);
        }
        json_decref(doc);
    }
    http_response_free(&resp);
    return rc;
}

/* ---- submit ---- */

struct batch_progress {
    json_int_t total, queued, running, done, failed, canceled;
};

static void batch_counts(const json_t *b, struct batch_progress *p)
{
    const json_t *c = json_object_get(b, "counts");
    p->queued = cli_int_member(c, "queued");
    p->running = cli_int_member(c, "running");
    p->done = cli_int_member(c, "done");
    p->failed = cli_int_member(c, "failed");
    p->canceled = cli_int_member(c, "canceled");
    p->total = p->queued + p->running + p->done + p->failed + p->canceled;
}

/* "12/40 done (30%), 8.1/min, ETA 3m27s, 1 failed": the batch's own rate and ETA. */
static void progress_text(char *buf, size_t len, const json_t *b, const struct batch_progress *p)
{
    char rate[32], eta[32];
    const json_t *r = json_object_get(b, "measured_per_minute");
    if (json_is_number(r))
        format_quantity(rate, sizeof rate, json_number_value(r));
    else
        snprintf(rate, sizeof rate, "-");
    const json_t *e = json_object_get(b, "eta_s");
    cli_format_duration(eta, sizeof eta, json_is_number(e) ? json_number_value(e) : -1);
    int pct = p->total > 0 ? (int)((p->done + p->failed + p->canceled) * 100 / p->total) : 100;
    int n = snprintf(buf, len,
                     "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " done (%d%%), %s/min, ETA %s",
                     p->done, p->total, pct, rate, eta);
    if (n < 0 || (size_t)n >= len)
        return;
    if (p->failed)
        n += snprintf(buf + n, len - (size_t)n, ", %" JSON_INTEGER_FORMAT " failed", p->failed);
    if (n >= 0 && (size_t)n < len && p->canceled)
        snprintf(buf + n, len - (size_t)n, ", %" JSON_INTEGER_FORMAT " canceled", p->canceled);
}

/* The bar redrawn in place: "\r[#####.....] text", the rest of the line erased. */
static void draw_bar(FILE *f, const char *text, const struct batch_progress *p)
{
    int cols = cli_terminal_columns(fileno(f));
    int width = cols - (int)strlen(text) - 4;
    if (width > 40)
        width = 40;
    char bar[48];
    if (width >= 10) {
        json_int_t ended = p->done + p->failed + p->canceled;
        int fill = p->total > 0 ? (int)(ended * width / p->total) : width;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(f, "\r[%s] %s\033[K", bar, text);
    } else {
        fprintf(f, "\r%s\033[K", text);
    }
    fflush(f);
}

/*
 * Follows GET /v1/batches/{id} until no job of it is queued or running. The
 * progress goes to stdout (stderr with --json, whose stdout is the final
 * Batch document): a bar redrawn in place on a terminal, else plain lines.
 * Exit 0 when every job is done, 1 when any failed or was canceled,
 * 128+signal when stopped (the jobs keep running).
 */
static int wait_batch(const struct cli *cli, json_int_t batch_id, bool json_out)
{
    if (catch_stop_signals() != 0)
        return EXIT_FAIL;
    FILE *out = json_out ? stderr : stdout;
    bool tty = isatty(fileno(out)) == 1;
    char path[64], text[256];
    snprintf(path, sizeof path, "/v1/batches/%" JSON_INTEGER_FORMAT, batch_id);
    double last_line_s = 0;
    bool printed = false, drew = false;
    struct batch_progress last = {0}, p;
    json_t *b = NULL;
    int rc;
    for (;;) {
        json_decref(b);
        b = NULL;
        rc = get_object(cli, path, &b);
        if (rc != EXIT_OK)
            break;
        batch_counts(b, &p);
        /* An adaptive batch between rounds has no job queued yet: it is done
         * only once its last round has run ("adaptive": {"open": false}). */
        bool rounds_open = json_is_true(json_object_get(json_object_get(b, "adaptive"), "open"));
        bool finished = p.queued + p.running == 0 && !rounds_open;
        progress_text(text, sizeof text, b, &p);
        if (tty) {
            draw_bar(out, text, &p);
            drew = true;
        } else {
            double now = cli_monotonic_s();
            bool changed = memcmp(&p, &last, sizeof p) != 0;
            if (!printed || (!finished && ((changed && now - last_line_s >= PROGRESS_LINE_MIN_S) ||
                                           now - last_line_s >= PROGRESS_LINE_MAX_S))) {
                fprintf(out, "batch %" JSON_INTEGER_FORMAT ": %s\n", batch_id, text);
                fflush(out);
                printed = true;
                last_line_s = now;
                last = p;
            }
        }
        if (finished)
            break;
        cli_sleep_ms(PROGRESS_POLL_MS, &stop_signal);
        if (stop_signal) {
            rc = interrupted_exit();
            break;
        }
    }
    if (drew)
        fputc('\n', out);
    if (rc >= EXIT_SIGNAL_BASE) {
        fflush(out);
        fail("stopped waiting; the jobs of batch %" JSON_INTEGER_FORMAT
             " keep running on jetprofd ('jetprof cancel --batch %" JSON_INTEGER_FORMAT
             "' cancels those still queued)",
             batch_id, batch_id);
    } else if (rc == EXIT_OK) {
        char wall[32];
        const json_t *w = json_object_get(b, "wall_s");
        const json_t *e = json_object_get(b, "energy_j");
        fprintf(out,
                "batch %" JSON_INTEGER_FORMAT " finished: %" JSON_INTEGER_FORMAT
                " done, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
                " canceled of %" JSON_INTEGER_FORMAT " jobs",
                batch_id, p.done, p.failed, p.canceled, p.total);
        if (json_is_number(w))
            fprintf(out, " in %s",
                    cli_format_duration(wall, sizeof wall, json_number_value(w)));
        if (json_is_number(e))
            fprintf(out, ", %.1f J", json_number_value(e));
        fputc('\n', out);
        if (json_out &&
            (json_dumpf(b, stdout, JSON_OUT_FLAGS) != 0 || fputc('\n', stdout) == EOF))
            rc = output_done(-1);
        if (rc == EXIT_OK && p.failed + p.canceled > 0) {
            fflush(out);
            fail("batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT " failed, %"
                 JSON_INTEGER_FORMAT " canceled ('jetprof jobs --batch %" JSON_INTEGER_FORMAT
                 " --state failed' shows why)",
                 batch_id, p.failed, p.canceled, batch_id);
            rc = EXIT_FAIL;
        }
    }
    json_decref(b);
    return rc;
}

static int cmd_submit(const struct cli *cli, int argc, char **argv)
{
    bool wait = false, json_out = false;
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--wait") == 0) {
            wait = true;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            json_out = true;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            usage_error("submit: unknown option '%s'", a);
            return EXIT_USAGE;
        }
        if (file) {
            usage_error("submit takes one SWEEP.json (got '%s' and '%s')", file, a);
            return EXIT_USAGE;
        }
        file = a;
    }
    if (!file) {
        usage_error("submit: which sweep? e.g. 'jetprof submit sweep.json' (- reads standard "
                    "input; 'jetprof submit --help' shows the forms)");
        return EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    int rc = read_json_arg(file, true, &text, &len, &doc);
    if (rc != EXIT_OK)
        return rc;
    json_decref(doc); /* checked; the text is sent as written */
    struct http_response resp;
    rc = call(cli, DEFAULT_TIMEOUT_S, "POST", "/v1/jobs", text, len, &resp);
    free(text);
    if (rc != EXIT_OK)
        return rc;
    json_t *ans = json_loadb(resp.body, resp.body_len, 0, NULL);
    const json_t *id = json_object_get(ans, "batch_id");
    if (!json_is_integer(id)) {
        rc = print_unexpected(&resp, "has no batch_id");
        json_decref(ans);
        http_response_free(&resp);
        return rc;
    }
    json_int_t batch_id = json_integer_value(id);
    if (json_out && !wait) {
        rc = output_done(print_json(&resp));
    } else {
        FILE *out = json_out ? stderr : stdout;
        fprintf(out,
                "batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
                " jobs queued, %" JSON_INTEGER_FORMAT " duplicates skipped\n",
                batch_id, cli_int_member(ans, "jobs"), cli_int_member(ans, "duplicates"));
        rc = output_done(fflush(out));
    }
    json_decref(ans);
    http_response_free(&resp);
    if (rc == EXIT_OK && wait)
        rc = wait_batch(cli, batch_id, json_out);
    return rc;
}

/* ---- jobs, cancel ---- */

/* One line per job; the configuration last (its length varies), the error after it. */
static void print_jobs_table(const json_t *jobs)
{
    printf("%8s %6s %-8s %5s %11s  %-24s %s\n", "ID", "BATCH", "STATE", "TRIES", "MEASUREMENT",
           "FINISHED", "CONFIG");
    size_t i;
    const json_t *j;
    json_array_foreach(jobs, i, j)
    {
        char batch[24], meas[24], tries[32];
        const json_t *b = json_object_get(j, "batch_id");
        const json_t *m = json_object_get(j, "measurement_id");
        snprintf(batch, sizeof batch, json_is_integer(b) ? "%" JSON_INTEGER_FORMAT : "-",
                 json_integer_value(b));
        snprintf(meas, sizeof meas, json_is_integer(m) ? "%" JSON_INTEGER_FORMAT : "-",
                 json_integer_value(m));
        snprintf(tries, sizeof tries, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 cli_int_member(j, "attempts"), cli_int_member(j, "max_attempts"));
        printf("%8" JSON_INTEGER_FORMAT " %6s %-8s %5s %11s  %-24s %s", cli_int_member(j, "id"),
               batch, str_or(json_object_get(j, "state"), "?"), tries, meas,
               str_or(json_object_get(j, "finished_at"), "-"),
               str_or(json_object_get(j, "config_key"), "?"));
        const char *error = str_or(json_object_get(j, "error"), "");
        if (*error)
            printf("  error: %s", error);
        fputc('\n', stdout);
    }
}

static int cmd_jobs(const struct cli *cli, int argc, char **argv)
{
    static const char *const filters[][2] = {
        {"--state", "state"}, {"--batch", "batch"}, {"--limit", "limit"}, {"--after", "after"}};
    enum { NFILTERS = sizeof filters / sizeof filters[0] };
    const char *values[NFILTERS] = {0};
    bool json_out = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        int matched = take_filter(argc, argv, &i, filters, NFILTERS, values);
        if (matched < 0)
            return EXIT_USAGE;
        if (!matched) {
            usage_error("jobs: unknown %s '%s'", argv[i][0] == '-' ? "option" : "argument",
                        argv[i]);
            return EXIT_USAGE;
        }
    }
    int64_t v;
    if ((values[1] && !option_int("jobs", "--batch", values[1], 1, INT64_MAX, &v)) ||
        (values[2] && !option_int("jobs", "--limit", values[2], 1, 10000, &v)) ||
        (values[3] && !option_int("jobs", "--after", values[3], 0, INT64_MAX, &v)))
        return EXIT_USAGE;
    char *query = NULL;
    size_t qlen = 0;
    char *path = query_add_filters(&query, &qlen, filters, values, NFILTERS) == 0
                     ? path_with_query("/v1/jobs", query)
                     : NULL;
    free(query);
    if (!path) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "GET", path, NULL, 0, &resp);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        return print_answer(&resp, false);
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    const json_t *jobs = json_object_get(doc, "jobs");
    if (!json_is_array(jobs)) {
        rc = print_unexpected(&resp, "has no \"jobs\" list");
    } else {
        print_jobs_table(jobs);
        rc = output_done(ferror(stdout) ? -1 : 0);
        fflush(stdout);
        const json_t *next = json_object_get(doc, "next_after");
        fprintf(stderr, "%zu job%s", json_array_size(jobs), json_array_size(jobs) == 1 ? "" : "s");
        if (json_is_integer(next))
            fprintf(stderr, "; more with --after %" JSON_INTEGER_FORMAT, json_integer_value(next));
        fputc('\n', stderr);
    }
    json_decref(doc);
    http_response_free(&resp);
    return rc;
}

static int cmd_cancel(const struct cli *cli, int argc, char **argv)
{
    const char *job = NULL, *batch = NULL;
    bool json_out = false;
    for (int i = 0; i < argc; i++) {
        int t;
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        if ((t = take_option(argc, argv, &i, "--batch", &batch)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            usage_error("cancel: unknown option '%s'", argv[i]);
            return EXIT_USAGE;
        }
        if (job) {
            usage_error("cancel takes one JOB_ID (got '%s' and '%s'); a whole batch: cancel "
                        "--batch ID",
                        job, argv[i]);
            return EXIT_USAGE;
        }
        job = argv[i];
    }
    if (!job == !batch) {
        usage_error("cancel: give either a JOB_ID or --batch ID");
        return EXIT_USAGE;
    }
    int64_t id;
    if (!option_int("cancel", job ? "JOB_ID" : "--batch", job ? job : batch, 1, INT64_MAX, &id))
        return EXIT_USAGE;
    char path[64];
    snprintf(path, sizeof path, "/v1/%s/%" PRId64, job ? "jobs" : "batches", id);
    struct http_response resp;
    int rc = call(cli, DEFAULT_TIMEOUT_S, "DELETE", path, NULL, 0, &resp);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        return print_answer(&resp, false);
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (job) {
        printf("canceled job %" PRId64 " (%s)\n", id,
               str_or(json_object_get(doc, "config_key"), "?"));
    } else {
        struct batch_progress p;
        batch_counts(doc, &p);
        printf("batch %" PRId64 ": %" JSON_INTEGER_FORMAT " queued job%s canceled; now %"
               JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT " running, %" JSON_INTEGER_FORMAT
               " failed, %" JSON_INTEGER_FORMAT " canceled of %" JSON_INTEGER_FORMAT "\n",
               id, cli_int_member(doc, "canceled"), cli_int_member(doc, "canceled") == 1 ? "" : "s",
               p.done, p.running, p.failed, p.canceled, p.total);
        if (p.running > 0) {
            fflush(stdout);
            fputs("jetprof: a running job is not stopped: it finishes and is stored\n", stderr);
        }
    }
    rc = output_done(ferror(stdout) ? -1 : 0);
    json_decref(doc);
    http_response_free(&resp);
    return rc;
}

/* ---- export ---- */

struct export_sink {
    FILE *f;
    uint64_t bytes, newlines;
    int write_errno;
};

static int export_chunk(void *ctx, const char *data, size_t len)
{
    struct export_sink *x = ctx;
    if (fwrite(data, 1, len, x->f) != len) {
        x->write_errno = errno ? errno : EIO;
        return -1;
    }
    x->bytes += len;
    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p++)
        x->newlines++;
    return 0;
}

static int cmd_export(const struct cli *cli, int argc, char **argv)
{
    static const char *const filters[][2] = {{"--kernel", "kernel"}, {"--batch", "batch"},
                                             {"--since", "since"},   {"--dtype", "dtype"},
                                             {"--quality", "quality"}};
    enum { NFILTERS = sizeof filters / sizeof filters[0] };
    const char *values[NFILTERS] = {0};
    const char *format = "csv", *output = NULL;
    bool any_filter = false;
    for (int i = 0; i < argc; i++) {
        int t;
        if ((t = take_option(argc, argv, &i, "--format", &format)) != 0 ||
            (t = take_option(argc, argv, &i, "-o", &output)) != 0 ||
            (t = take_option(argc, argv, &i, "--output", &output)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            continue;
        }
        int matched = take_filter(argc, argv, &i, filters, NFILTERS, values);
        if (matched < 0)
            return EXIT_USAGE;
        if (!matched) {
            usage_error("export: unknown %s '%s'", argv[i][0] == '-' ? "option" : "argument",
                        argv[i]);
            return EXIT_USAGE;
        }
        any_filter = true;
    }
    bool sqlite = strcmp(format, "sqlite") == 0;
    const char *api_format = strcmp(format, "csv") == 0 ? "csv"
                             : strcmp(format, "json") == 0 || strcmp(format, "jsonl") == 0
                                 ? "jsonl"
                                 : NULL;
    if (!sqlite && !api_format) {
        usage_error("export: --format must be csv, json or sqlite, got '%s'", format);
        return EXIT_USAGE;
    }
    if (sqlite && any_filter) {
        usage_error("export: the sqlite export is the whole database; --kernel, --batch, "
                    "--since, --dtype and --quality go with --format csv or json");
        return EXIT_USAGE;
    }
    if (output && !*output) {
        usage_error("export: -o needs a file name");
        return EXIT_USAGE;
    }
    int64_t v;
    if (values[1] && !option_int("export", "--batch", values[1], 1, INT64_MAX, &v))
        return EXIT_USAGE;
    bool to_stdout = !output || strcmp(output, "-") == 0;
    if (sqlite && to_stdout && isatty(STDOUT_FILENO)) {
        usage_error("export: not writing a binary SQLite file to a terminal; use -o FILE or "
                    "redirect standard output");
        return EXIT_USAGE;
    }

    char *path = NULL;
    if (sqlite) {
        path = strdup("/v1/export.sqlite");
    } else {
        char *query = NULL;
        size_t qlen = 0;
        bool ok = query_add(&query, &qlen, "format", api_format) == 0 &&
                  query_add_filters(&query, &qlen, filters, values, NFILTERS) == 0;
        path = ok ? path_with_query("/v1/measurements", query) : NULL;
        free(query);
    }
    if (!path) {
        fail("out of memory");
        return EXIT_FAIL;
    }

    /* A regular file (or a new one) is written as FILE.part and renamed when
     * whole, so FILE is never half an export; anything else (/dev/null, a
     * FIFO, standard output) is written directly. */
    char *part = NULL;
    struct export_sink x = {.f = stdout};
    struct stat st;
    int rc = EXIT_FAIL;
    /* before FILE.part exists, so a Ctrl-C always finds it to remove */
    if (catch_stop_signals() != 0)
        goto out;
    if (!to_stdout) {
        if (stat(output, &st) == 0 && !S_ISREG(st.st_mode)) {
            x.f = fopen(output, "wb");
            if (!x.f) {
                fail("cannot write %s: %s", output, strerror(errno));
                goto out;
            }
        } else {
            size_t n = strlen(output) + sizeof ".part";
            part = malloc(n);
            if (!part) {
                fail("out of memory");
                goto out;
            }
            snprintf(part, n, "%s.part", output);
            x.f = fopen(part, "wb");
            if (!x.f) {
                fail("cannot write %s: %s", part, strerror(errno));
                free(part);
                part = NULL;
                goto out;
            }
        }
    }
    bool stopped = false;
    rc = call_stream(cli, path, export_chunk, &x, &stopped);
    if (stopped) {
        fail("cannot write %s: %s", to_stdout ? "standard output" : part ? part : output,
             strerror(x.write_errno));
        rc = EXIT_FAIL;
    } else if (rc >= EXIT_SIGNAL_BASE) {
        fail("export interrupted%s", part ? "; the partial file is removed" : "");
    }
    if (fflush(x.f) != 0 && rc == EXIT_OK) {
        fail("cannot write %s: %s", to_stdout ? "standard output" : part ? part : output,
             strerror(errno));
        rc = EXIT_FAIL;
    }
    if (part && rc == EXIT_OK && fsync(fileno(x.f)) != 0) {
        fail("cannot write %s: %s", part, strerror(errno));
        rc = EXIT_FAIL;
    }
out:
    if (x.f && x.f != stdout && fclose(x.f) != 0 && rc == EXIT_OK) {
        fail("cannot write %s: %s", part ? part : output, strerror(errno));
        rc = EXIT_FAIL;
    }
    if (part) {
        if (rc == EXIT_OK && rename(part, output) != 0) {
            fail("cannot rename %s to %s: %s", part, output, strerror(errno));
            rc = EXIT_FAIL;
        }
        if (rc != EXIT_OK)
            unlink(part);
    }
    if (rc == EXIT_OK && !to_stdout) {
        if (sqlite)
            fprintf(stderr, "wrote %s: %" PRIu64 " bytes (SQLite database)\n", output, x.bytes);
        else
            fprintf(stderr, "wrote %s: %" PRIu64 " measurements, %" PRIu64 " bytes\n", output,
                    strcmp(api_format, "csv") == 0 && x.newlines > 0 ? x.newlines - 1
                                                                   : x.newlines,
                    x.bytes);
    }
    free(part);
    free(path);
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
    "Example: jetprof train linear_relu layernorm --quality any\n"
    "\n"
    "Usage: jetprof train --offline DB --device FINGERPRINT -o FILE [KERNEL...]\n"
    "           [--quality ok|any] [--seed N] [--rounds N] [--max-depth N] [--eta X]\n"
    "           [--ensemble N] [--holdout X] [--json]\n"
    "Trains here, with the daemon's training code, from DB: a fleet file ('jetprof\n"
    "fleet pull') or a board's database ('jetprof export --format sqlite'). The rows\n"
    "of the device with that fingerprint (or a unique prefix of 8+ characters; the\n"
    "identical boards that share it train one model), sorted by uid: the same rows\n"
    "and options make the models a board makes. FILE (- = stdout) is the bundle for\n"
    "'estimate --offline --models FILE'. Options default to the daemon's\n"
    "predict.train_* defaults (seed 42, rounds 200, max-depth 6, eta 0.1, ensemble 5,\n"
    "holdout 0.2). Exit 1 when the device is not in DB (its devices are listed) or a\n"
    "kernel type has too few rows.\n"
    "Example: jetprof train --offline fleet.sqlite --device 3f2a9c01 -o orin.json\n";
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
static const char help_status[] =
    "Usage: jetprof status [--json]\n"
    "One summary of the daemon: version, health and uptime, board, executor, sensor\n"
    "with its achieved and expected sample rate, the queue's job counts, the runner,\n"
    "and how many models there are. Says SIMULATED when the sim sensor or the CPU\n"
    "executor makes the numbers. --json prints {\"health\", \"device\", \"models\"}:\n"
    "the answers of GET /v1/health, /v1/device and /v1/models.\n";
static const char help_power[] =
    "Usage: jetprof power [--json]\n"
    "       jetprof power --watch [--interval MS] [--count N] [--json]\n"
    "The latest sample of every rail (GET /v1/power) as a table: voltage, current\n"
    "and power, the board-input rail marked, with the sensor and its sample rate.\n"
    "--watch follows GET /v1/power/stream (Server-Sent Events) and prints one line\n"
    "per event, its sample time from the first event and each rail's power, until\n"
    "Ctrl-C (exit 130), the reader of a pipe goes away (exit 0), or N events\n"
    "(--count, exit 0). --interval MS: one event per MS of sample time (0 = every\n"
    "sample; default the daemon's sensor.stream_interval_ms, 100). --json prints\n"
    "the answer, or with --watch each event's data as one JSON line.\n"
    "Example: jetprof power --watch --interval 500\n";
static const char help_submit[] =
    "Usage: jetprof submit SWEEP.json|- [--wait] [--json]\n"
    "Queues a batch (POST /v1/jobs, needs the token when the daemon has one) and\n"
    "prints its id and how many jobs were queued and skipped as duplicates. The\n"
    "file (- reads standard input) is one of:\n"
    "  {\"configs\": [{\"kernel\": \"linear\", \"batch\": 8, \"in\": 64, \"out\": 64}, ...]}\n"
    "  {\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear_relu\",\n"
    "             \"params\": {\"batch\": [8, 16], \"in\": [64, 128], \"out\": [64]}}}\n"
    "  {\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 500, \"seed\": 1,\n"
    "             \"params\": {\"batch\": [1, 512], \"in\": [8, 4096], \"out\": 64}}}\n"
    "  {\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\",\n"
    "             \"points\": [{\"rows\": 8, \"cols\": 64}, {\"rows\": 16, \"cols\": 64}]}}\n"
    "with, at the top level, \"dtype\", \"repeats\" (1..20) and \"repeat_existing\".\n"
    "--wait then follows GET /v1/batches/{id} until no job is queued or running:\n"
    "a progress bar (done/total, measured per minute, ETA) redrawn in place when\n"
    "stdout is a terminal, else a plain line at most every 5 s, and a final line.\n"
    "Exit 0 when every job is done, 1 when any failed or was canceled, 130 on\n"
    "Ctrl-C (the jobs keep running: 'jetprof cancel --batch ID' stops the rest).\n"
    "--json prints the answer; with --wait the progress goes to stderr and the\n"
    "final Batch document to stdout.\n"
    "Example: jetprof submit sweep.json --wait\n";
static const char help_jobs[] =
    "Usage: jetprof jobs [--state S] [--batch ID] [--limit N] [--after ID] [--json]\n"
    "The queue's jobs, oldest first (GET /v1/jobs): id, batch, state, attempts,\n"
    "measurement, when it ended, configuration and error. S is queued, running,\n"
    "done, failed or canceled; at most N jobs (1..10000, default 100) with an id\n"
    "above --after; the count and the --after for the next page go to stderr.\n"
    "--json prints the answer.\n"
    "Example: jetprof jobs --batch 7 --state failed\n";
static const char help_cancel[] =
    "Usage: jetprof cancel JOB_ID [--json]\n"
    "       jetprof cancel --batch ID [--json]\n"
    "Cancels one queued job (DELETE /v1/jobs/{id}; a job that is running or ended\n"
    "cannot be: 409, exit 1), or every queued job of a batch (DELETE\n"
    "/v1/batches/{id}; the running one finishes). Needs the token when the daemon\n"
    "has one. --json prints the answer (the Job, or the Batch with \"canceled\").\n";
static const char help_export[] =
    "Usage: jetprof export [--format csv|json|sqlite] [-o FILE] [--kernel K]\n"
    "                      [--batch ID] [--since TIME] [--dtype D] [--quality Q]\n"
    "The dataset, streamed (never held in memory): csv (the default) and json\n"
    "(JSON lines, one Measurement a line) from GET /v1/measurements with\n"
    "format=csv|jsonl, every matching row; sqlite is the whole database as one\n"
    "consistent SQLite file (GET /v1/export.sqlite; filters do not apply).\n"
    "-o FILE is written as FILE.part and renamed when complete (removed on an\n"
    "error or Ctrl-C); without -o (or -o -) the export goes to stdout, for sqlite\n"
    "only when stdout is not a terminal. --since takes YYYY-MM-DD or\n"
    "YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or +HH:MM. --timeout is the longest silence.\n"
    "Example: jetprof export --format sqlite -o board.sqlite\n";
static const char help_get[] = "Usage: jetprof get PATH\n"
                               "Any GET request; the body printed as received.\n"
                               "Example: jetprof get /v1/measurements/12\n";

/* ---- fleet (client/fleet.c) ---- */

/* --hosts FILE: set by main, read by cmd_fleet (the command table's signature
 * has no room for it). */
static const char *fleet_hosts_flag;

/* `jetprof fleet ...`: fleet_main with the global options it uses; --timeout
 * 0 there means each command's default (a fleet request never waits forever). */
static int cmd_fleet(const struct cli *cli, int argc, char **argv)
{
    static char fleet_word[] = "fleet";
    if (catch_stop_signals() != 0)
        return EXIT_FAIL;
    char **fargv = calloc((size_t)argc + 2, sizeof *fargv);
    if (!fargv) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    fargv[0] = fleet_word;
    for (int i = 0; i < argc; i++)
        fargv[i + 1] = argv[i];
    struct fleet_globals g = {
        .hosts_file = fleet_hosts_flag,
        .timeout_s = cli->timeout_s > 0 ? cli->timeout_s : 0,
        .interrupted = &stop_signal,
    };
    int rc = fleet_main(&g, argc + 1, fargv);
    free(fargv);
    return rc;
}

/* ---- validate (client/validate.c) ---- */

/* `jetprof validate ...`: validate_main with the global options; it follows
 * batches until they end, so Ctrl-C stops the wait (the jobs keep running). */
static int cmd_validate(const struct cli *cli, int argc, char **argv)
{
    if (catch_stop_signals() != 0)
        return EXIT_FAIL;
    struct validate_globals g = {
        .base_url = cli->base_url,
        .token = cli->token,
        .timeout_s = cli->timeout_s,
        .interrupted = &stop_signal,
    };
    return validate_main(&g, argc, argv);
}

static const struct command {
    const char *name;
    int (*run)(const struct cli *cli, int argc, char **argv);
    const char *help; /* jetprof COMMAND --help */
} commands[] = {
    {"status", cmd_status, help_status},
    {"health", cmd_health, help_health},
    {"device", cmd_device, help_device},
    {"kernels", cmd_kernels, help_kernels},
    {"power", cmd_power, help_power},
    {"measure", cmd_measure, help_measure},
    {"submit", cmd_submit, help_submit},
    {"jobs", cmd_jobs, help_jobs},
    {"cancel", cmd_cancel, help_cancel},
    {"measurements", cmd_measurements, help_measurements},
    {"export", cmd_export, help_export},
    {"train", cmd_train, help_train},
    {"models", cmd_models, help_models},
    {"predict", cmd_predict, help_predict},
    {"estimate", cmd_estimate, help_estimate},
    {"validate", cmd_validate, validate_help_text},
    {"get", cmd_get, help_get},
    {"fleet", cmd_fleet, fleet_help_text},
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
                (t = take_option(argc, argv, &i, "--host", &url)) != 0 ||
                (t = take_option(argc, argv, &i, "--token-file", &token_file)) != 0 ||
                (t = take_option(argc, argv, &i, "--timeout", &timeout)) != 0 ||
                (t = take_option(argc, argv, &i, "--hosts", &fleet_hosts_flag)) != 0) {
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
                usage_error("unknown command '%s' (commands: status, health, device, kernels, "
                            "power, measure, submit, jobs, cancel, measurements, export, train, "
                            "models, predict, estimate, validate, get, fleet)",
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
        double t;
        if (!cli_parse_real(timeout, &t) || t < 0 || t > 86400.0 * 365) {
            usage_error("--timeout must be a number of seconds >= 0, got '%s'", timeout);
            goto out;
        }
        cli.timeout_s = t;
    }
    /* a flag beats the environment; JETPROF_HOST beats the older JETPROF_URL */
    const char *url_from = "--host/--url";
    if (!url || !*url) {
        url_from = "JETPROF_HOST";
        url = getenv("JETPROF_HOST");
        if (!url || !*url) {
            url_from = "JETPROF_URL";
            url = getenv("JETPROF_URL");
        }
        if (!url || !*url) {
            url_from = "the default";
            url = DEFAULT_URL;
        }
    }
    char addr_err[160];
    int addr_rc = cli_parse_address(url, "--token-file", &cli.base_url, addr_err, sizeof addr_err);
    if (addr_rc == -2) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    if (addr_rc != 0) {
        usage_error("jetprofd address '%.200s' (%s): %s", url, url_from, addr_err);
        goto out;
    }
    if (!token_file || !*token_file) {
        token_file = getenv("JETPROF_TOKEN_FILE");
        if (token_file && !*token_file)
            token_file = NULL;
    }
    char err[CLI_ERR_MAX];
    if (token_file && cli_read_token(token_file, &cli.token, err, sizeof err) != 0) {
        fail("%s", err);
        rc = EXIT_USAGE;
        goto out;
    }

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
