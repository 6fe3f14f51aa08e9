/*
 * fleet.c - `jetprof fleet status | submit | progress | cancel` (and the
 * dispatch of `pull`, fleet_pull.c): one workstation command over a shelf of
 * Jetson boards, each running its own jetprofd.
 *
 * Every board stays the source of truth for its own data: the workstation
 * only fans requests out (fleet_hosts.c, libcurl multi: all boards at once,
 * each request with time-outs, so a dead board is a row that says so and
 * never a hang) and keeps one small local file, the manifest, that says
 * which batch lives on which board. Losing the manifest loses nothing but
 * the convenience: the batches run on, and `jetprof --host BOARD jobs`
 * still finds them.
 *
 * submit sends the sweep to every board (each device type needs its own
 * dataset). With --shard, boards that report the same device fingerprint
 * (GET /v1/device: board, L4T, CUDA, GPU, executor, sensor and its
 * sampling) share one sweep: the workstation expands it into its explicit
 * configurations with the daemon's rules (grid order, the random sweep's
 * seeded splitmix64 draws, duplicates dropped) and deals them round-robin,
 * each board getting {"configs": [its share]}; a board alone with its
 * fingerprint gets the sweep as written. The expansion is cudakern/sweep.c's,
 * the one the daemon's POST /v1/jobs uses (the client does not link daemon
 * code); the integration test checks that the shards of a random sweep add up
 * to exactly what a board expands from the same body.
 *
 * The manifest (--manifest FILE, else $JETPROF_FLEET_MANIFEST, else
 * ./jetprof-fleet.json) is written whole, atomically (a temporary file in the
 * same directory, fsync, rename), and names each board's URL, name, token
 * file (the path, never the token), fingerprint, batch id and configuration
 * count, so progress and cancel work from any shell, without the hosts file.
 *
 * Exit status, as jetprof's: 0 success; 1 a board unreachable or refusing,
 * a job failed or canceled (progress), a board said it is degraded (status);
 * 2 usage (arguments, hosts file, manifest, unreadable sweep file); 128+N
 * when signal N stopped a command (130 for Ctrl-C).
 */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/clock.h"
#include "../cudakern/catalog.h"
#include "../cudakern/sweep.h"
#include "cli_common.h"
#include "fleet_hosts.h"
#include "fleet_pull.h"
#include "http_client.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_SIGNAL_BASE = 128 };

/* Reads are answered at once; 10 s is a board that is not well. A batch of
 * 100000 configurations is queued in one transaction on the board: a minute. */
#define READ_TIMEOUT_S 10.0
#define SUBMIT_TIMEOUT_S 60.0
#define CONNECT_TIMEOUT_S 5.0
/* progress --wait: one round of GET /v1/batches/{id} per poll; without a
 * terminal one block of lines at most every PROGRESS_LINE_MIN_S (when
 * something changed) and at least every PROGRESS_LINE_MAX_S. */
#define PROGRESS_POLL_MS 1000
#define PROGRESS_LINE_MIN_S 5.0
#define PROGRESS_LINE_MAX_S 60.0
#define DEFAULT_MANIFEST "jetprof-fleet.json"
#define MANIFEST_VERSION 1
#define INPUT_FILE_MAX_BYTES ((size_t)64 * 1024 * 1024)
/* The workstation expands a sharded sweep in memory (a JSON object per
 * configuration, ~300 bytes): a million is ~300 MiB, more than any night. */
#define SHARD_MAX_CONFIGS ((size_t)1000000)
/* A board sampling below this share of its expected rate is flagged. */
#define SAMPLING_LOW_RATIO 0.9
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

const char fleet_help_text[] =
    "Usage: jetprof fleet COMMAND [ARGS]   (with jetprof's --hosts FILE, --timeout S)\n"
    "\n"
    "One command over a shelf of boards, each running jetprofd. Every board keeps\n"
    "its own data (its SQLite database); the workstation asks all boards at once\n"
    "and keeps only a manifest of which batch lives on which board.\n"
    "\n"
    "Commands:\n"
    "  status [--json]     one row per board: name, board model, L4T (JetPack), GPU,\n"
    "                      executor, sensor and its achieved/expected sampling rate,\n"
    "                      fingerprint, queue counts (queued/running/done/failed/\n"
    "                      canceled), the running batch with its progress, problems;\n"
    "                      an unreachable board is a row that says so\n"
    "  submit SWEEP.json|- [--shard] [--wait] [--manifest FILE] [--force]\n"
    "                      queue the sweep (the body of POST /v1/jobs, as for\n"
    "                      'jetprof submit') on every board: each device type needs\n"
    "                      its own dataset. --shard: boards with the same device\n"
    "                      fingerprint split the sweep's configurations round-robin\n"
    "                      (a board alone with its fingerprint measures all of it).\n"
    "                      Writes the manifest; an existing one is kept unless\n"
    "                      --force. --wait then follows it as progress --wait does\n"
    "  progress [--wait] [--json] [--manifest FILE]\n"
    "                      the manifest's batches: one aggregate line (done/total,\n"
    "                      measured per minute, ETA of the slowest board) and one\n"
    "                      line per board; --wait follows them until no reachable\n"
    "                      board has work left (a bar on a terminal, else a block of\n"
    "                      lines at most every 5 s)\n"
    "  cancel [--manifest FILE]\n"
    "                      cancel the queued jobs of the manifest's batches on every\n"
    "                      board (running ones finish)\n"
    "  pull -o FLEET.sqlite [--board NAME]...\n"
    "                      every board's measurements merged into one SQLite file\n"
    "\n"
    "Hosts file (--hosts FILE, else $JETPROF_HOSTS): one board per line,\n"
    "  URL [NAME [TOKEN_FILE]]\n"
    "URL as --host takes it (port 9740 by default); NAME of A-Z a-z 0-9 . _ : -\n"
    "('-' or none: host:port); TOKEN_FILE relative to the hosts file's directory.\n"
    "'#' starts a comment. Example:\n"
    "  jetson-a.lab      orin-a   tokens/orin-a\n"
    "  jetson-b.lab      orin-b   tokens/orin-b\n"
    "  10.0.0.31:9740    nano-1\n"
    "\n"
    "Manifest: --manifest FILE, else $JETPROF_FLEET_MANIFEST, else ./jetprof-fleet.json.\n"
    "--timeout S limits each request to a board (default 10 s, 60 s for submit).\n"
    "\n"
    "Exit status: 0 success; 1 a board unreachable or refusing, a job failed or\n"
    "canceled, a board degraded (status); 2 usage error (arguments, hosts file,\n"
    "manifest, unreadable sweep file); 130 stopped by Ctrl-C (the batches keep\n"
    "running on the boards).\n";

/* ---- messages and small helpers ---- */

/* "jetprof fleet: ..." on stderr (cli_common.c); a usage error adds the line
 * "Try 'jetprof fleet --help' ...". */
#define fail(...) cli_fail("jetprof fleet", __VA_ARGS__)
#define usage_error(...) cli_usage_error("jetprof fleet", "jetprof fleet --help", __VA_ARGS__)

static bool interrupted(const struct fleet_globals *g)
{
    return g->interrupted && *g->interrupted;
}

static int interrupted_exit(const struct fleet_globals *g)
{
    int sig = g->interrupted ? (int)*g->interrupted : 0;
    return EXIT_SIGNAL_BASE + (sig > 0 ? sig : 2);
}

static double read_timeout(const struct fleet_globals *g, double def)
{
    return g->timeout_s > 0 ? g->timeout_s : def;
}

static double connect_timeout(double timeout_s)
{
    return timeout_s < CONNECT_TIMEOUT_S ? timeout_s : CONNECT_TIMEOUT_S;
}

static const char *str_or(const json_t *v, const char *fallback)
{
    return json_is_string(v) && json_string_value(v)[0] ? json_string_value(v) : fallback;
}

/* A rate or a count with the digits that matter: "8.1", "120", "0.25". */
static const char *format_quantity(char *buf, size_t len, double v)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else if (fabs(v) >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2g", v);
    return buf;
}

/* Appends "; text" (or "text" to an empty buf). */
static void add_problem(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 3 >= len)
        return;
    if (used) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Writes doc to path atomically: a temporary file beside it, fsync'd, renamed
 * over path, the directory fsync'd. 0; -1 with the reason printed. */
static int write_json_atomically(const char *path, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!text || !tmp) {
        free(text);
        free(tmp);
        fail("out of memory");
        return -1;
    }
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fail("cannot create a temporary file beside %s: %s", path, strerror(errno));
        free(text);
        free(tmp);
        return -1;
    }
    int rc = -1;
    size_t len = strlen(text);
    /* readable by the others in the lab who follow the night from their shell */
    if (fchmod(fd, 0644) != 0 || cli_write_all(fd, text, len) != 0 ||
        cli_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
        fail("cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fail("cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        fail("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* the rename itself survives a power cut once the directory is synced */
    char *slash = strrchr(tmp, '/');
    if (slash)
        *(slash == tmp ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? tmp : ".", O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd); /* best effort: some file systems refuse it on directories */
        close(dfd);
    }
    rc = 0;
out:
    free(text);
    free(tmp);
    return rc;
}

static const char *manifest_path(const char *flag)
{
    if (flag && *flag)
        return flag;
    const char *env = getenv("JETPROF_FLEET_MANIFEST");
    if (env && *env)
        return env;
    return DEFAULT_MANIFEST;
}

/* An absolute form of path for the manifest (so it works from any directory):
 * realpath when the file exists, else path as given. malloc'd or NULL. */
static char *absolute_path(const char *path)
{
    char *r = realpath(path, NULL);
    return r ? r : strdup(path);
}

/* Loads the hosts file named by --hosts / $JETPROF_HOSTS. EXIT_OK or
 * EXIT_USAGE/EXIT_FAIL with the reason printed. */
static int load_hosts(const struct fleet_globals *g, struct fleet_hosts *hosts)
{
    char err[1200];
    const char *path = fleet_hosts_path(g->hosts_file, err, sizeof err);
    if (!path) {
        usage_error("%s", err);
        return EXIT_USAGE;
    }
    int rc = fleet_hosts_load(path, hosts, err, sizeof err);
    if (rc == -2) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    if (rc != 0) {
        fail("%s", err);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Runs one round of requests; EXIT_OK, EXIT_FAIL (local failure, printed) or
 * 128+signal when interrupted (results then partly filled). */
static int run_round(const struct fleet_globals *g, const struct fleet_request *reqs, size_t n,
                     struct fleet_result *results)
{
    char err[256];
    int rc = fleet_request_all(reqs, n, results, g->interrupted, err, sizeof err);
    if (rc == HTTP_CLIENT_INTERRUPTED)
        return interrupted_exit(g);
    if (rc != 0) {
        fail("%s", err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static size_t max_name_width(const struct fleet_host *hosts, size_t n)
{
    size_t w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(hosts[i].name) > w)
            w = strlen(hosts[i].name);
    return w;
}

/* ---- status ---- */

/* L4T release -> JetPack, for the releases NVIDIA published both numbers of. */
static const char *jetpack_of(const char *l4t)
{
    static const struct {
        const char *l4t, *jetpack;
    } known[] = {
        {"R32.5.0", "4.5"},   {"R32.5.1", "4.5.1"}, {"R32.6.1", "4.6"},   {"R32.7.1", "4.6.1"},
        {"R32.7.2", "4.6.2"}, {"R32.7.3", "4.6.3"}, {"R32.7.4", "4.6.4"}, {"R32.7.5", "4.6.5"},
        {"R35.1.0", "5.0.2"}, {"R35.2.1", "5.1"},   {"R35.3.1", "5.1.1"}, {"R35.4.1", "5.1.2"},
        {"R35.5.0", "5.1.3"}, {"R35.6.0", "5.1.4"}, {"R36.3.0", "6.0"},   {"R36.4.0", "6.1"},
        {"R36.4.3", "6.2"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(l4t, known[i].l4t) == 0)
            return known[i].jetpack;
    return NULL;
}

enum { ST_HEALTH, ST_DEVICE, ST_RUNNING, ST_PER_BOARD };

struct status_row {
    const struct fleet_host *h;
    bool reachable;      /* at least one request was answered */
    bool failing;        /* unreachable, an error answer, or degraded: exit 1 */
    char error[400];     /* why the board could not be read (unreachable) */
    json_t *health, *device, *running_job, *batch;
    char problems[1024];
};

static void status_collect(struct status_row *row, struct fleet_result *res)
{
    static const char *const what[] = {"health", "device", "jobs"};
    json_t **docs[] = {&row->health, &row->device, NULL};
    for (int k = 0; k < ST_PER_BOARD; k++) {
        struct fleet_result *r = &res[k];
        char why[400];
        if (r->rc == HTTP_CLIENT_OK)
            row->reachable = true;
        json_t *doc = fleet_result_object(r);
        if (!doc) {
            fleet_result_problem(r, why, sizeof why);
            if (r->rc == HTTP_CLIENT_OK) {
                add_problem(row->problems, sizeof row->problems, "%s: %s", what[k], why);
            } else if (!row->error[0]) {
                snprintf(row->error, sizeof row->error, "%s", why);
            }
            row->failing = true;
            continue;
        }
        if (docs[k]) {
            *docs[k] = doc;
        } else {
            json_t *jobs = json_object_get(doc, "jobs");
            json_t *first = json_array_get(jobs, 0);
            if (json_is_object(first))
                row->running_job = json_incref(first);
            json_decref(doc);
        }
    }
    if (!row->reachable)
        return;
    row->error[0] = '\0'; /* answered: what failed is in problems */
    const json_t *health = row->health, *device = row->device;
    if (health) {
        if (strcmp(str_or(json_object_get(health, "status"), "?"), "ok") != 0) {
            add_problem(row->problems, sizeof row->problems, "DEGRADED");
            row->failing = true;
        }
        const json_t *runner = json_object_get(health, "runner");
        if (json_is_false(json_object_get(runner, "storage_ok")))
            add_problem(row->problems, sizeof row->problems, "storage failing");
        const char *last = str_or(json_object_get(runner, "last_error"), "");
        if (*last)
            add_problem(row->problems, sizeof row->problems, "last runner error: %.200s", last);
        const json_t *sampler = json_object_get(health, "sampler");
        json_int_t errors = cli_int_member(sampler, "read_errors");
        if (errors > 0)
            add_problem(row->problems, sizeof row->problems,
                        "%" JSON_INTEGER_FORMAT " sensor read errors", errors);
        const json_t *got = json_object_get(sampler, "achieved_rate_hz");
        const json_t *want = json_object_get(json_object_get(device, "sensor"), "expected_rate_hz");
        if (json_is_number(got) && json_is_number(want) && json_number_value(want) > 0 &&
            json_number_value(got) < SAMPLING_LOW_RATIO * json_number_value(want))
            add_problem(row->problems, sizeof row->problems,
                        "sampling at %.0f%% of the expected rate",
                        100.0 * json_number_value(got) / json_number_value(want));
    }
    if (json_is_true(json_object_get(health, "simulated")) ||
        json_is_true(json_object_get(device, "simulated")))
        add_problem(row->problems, sizeof row->problems, "SIMULATED");
}

enum {
    COL_NAME,
    COL_BOARD,
    COL_L4T,
    COL_GPU,
    COL_EXEC,
    COL_SENSOR,
    COL_RATE,
    COL_FP,
    COL_QUEUE,
    COL_BATCH,
    COL_PROBLEMS,
    COL_COUNT
};
#define CELL_MAX 160

static void status_cells(const struct status_row *row, char cells[COL_COUNT][CELL_MAX])
{
    for (int c = 0; c < COL_COUNT; c++)
        snprintf(cells[c], CELL_MAX, "-");
    snprintf(cells[COL_NAME], CELL_MAX, "%s", row->h->name);
    if (!row->reachable) {
        snprintf(cells[COL_BOARD], CELL_MAX, "UNREACHABLE");
        snprintf(cells[COL_PROBLEMS], CELL_MAX, "%.*s", CELL_MAX - 1, row->error);
        return;
    }
    const json_t *dev = row->device, *health = row->health;
    const json_t *board = json_object_get(dev, "board");
    const json_t *exec = json_object_get(dev, "executor");
    const json_t *sensor = json_object_get(dev, "sensor");
    if (dev) {
        snprintf(cells[COL_BOARD], CELL_MAX, "%.40s", str_or(json_object_get(board, "model"), "?"));
        const char *l4t = str_or(json_object_get(board, "l4t"), "");
        const char *jp = *l4t ? jetpack_of(l4t) : NULL;
        if (jp)
            snprintf(cells[COL_L4T], CELL_MAX, "%s (JetPack %s)", l4t, jp);
        else if (*l4t)
            snprintf(cells[COL_L4T], CELL_MAX, "%.60s", l4t);
        snprintf(cells[COL_GPU], CELL_MAX, "%.40s", str_or(json_object_get(exec, "device"), "?"));
        snprintf(cells[COL_EXEC], CELL_MAX, "%.20s", str_or(json_object_get(exec, "name"), "?"));
        snprintf(cells[COL_SENSOR], CELL_MAX, "%.30s",
                 json_is_object(sensor) ? str_or(json_object_get(sensor, "backend"), "?")
                                        : "none");
        snprintf(cells[COL_FP], CELL_MAX, "%.8s", str_or(json_object_get(dev, "fingerprint"), "-"));
    }
    const json_t *sampler = json_object_get(health, "sampler");
    const json_t *got = json_object_get(sampler, "achieved_rate_hz");
    const json_t *want = json_object_get(sensor, "expected_rate_hz");
    if (json_is_number(got)) {
        char a[32], b[32];
        format_quantity(a, sizeof a, json_number_value(got));
        if (json_is_number(want))
            snprintf(cells[COL_RATE], CELL_MAX, "%s/%s Hz", a,
                     format_quantity(b, sizeof b, json_number_value(want)));
        else
            snprintf(cells[COL_RATE], CELL_MAX, "%s Hz", a);
    }
    const json_t *jobs = json_object_get(health, "jobs");
    if (json_is_object(jobs))
        snprintf(cells[COL_QUEUE], CELL_MAX,
                 "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                 "/%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 cli_int_member(jobs, "queued"), cli_int_member(jobs, "running"),
                 cli_int_member(jobs, "done"), cli_int_member(jobs, "failed"),
                 cli_int_member(jobs, "canceled"));
    if (row->batch) {
        const json_t *c = json_object_get(row->batch, "counts");
        json_int_t done = cli_int_member(c, "done"), failed = cli_int_member(c, "failed"),
                   canceled = cli_int_member(c, "canceled");
        json_int_t total = done + failed + canceled + cli_int_member(c, "queued") +
                           cli_int_member(c, "running");
        json_int_t pct = total > 0 ? (done + failed + canceled) * 100 / total : 100;
        char eta[32];
        const json_t *e = json_object_get(row->batch, "eta_s");
        snprintf(cells[COL_BATCH], CELL_MAX,
                 "#%" JSON_INTEGER_FORMAT " %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                 " (%" JSON_INTEGER_FORMAT "%%) ETA %s",
                 cli_int_member(row->batch, "id"), done, total, pct,
                 cli_format_duration(eta, sizeof eta,
                                     json_is_number(e) ? json_number_value(e) : -1));
    } else if (row->running_job) {
        const json_t *b = json_object_get(row->running_job, "batch_id");
        if (json_is_integer(b))
            snprintf(cells[COL_BATCH], CELL_MAX, "#%" JSON_INTEGER_FORMAT, json_integer_value(b));
        else
            snprintf(cells[COL_BATCH], CELL_MAX, "ad-hoc job %" JSON_INTEGER_FORMAT,
                     cli_int_member(row->running_job, "id"));
    } else if (json_is_object(jobs)) {
        snprintf(cells[COL_BATCH], CELL_MAX, "idle");
    }
    if (row->problems[0])
        snprintf(cells[COL_PROBLEMS], CELL_MAX, "%.*s", CELL_MAX - 1, row->problems);
}

static void print_status_table(const struct status_row *rows, size_t n)
{
    static const char *const heads[COL_COUNT] = {
        "NAME",   "BOARD",   "L4T",  "GPU", "EXECUTOR", "SENSOR", "RATE", "FINGERPRINT",
        "QUEUE q/r/d/f/c", "RUNNING BATCH", "PROBLEMS"};
    char(*cells)[COL_COUNT][CELL_MAX] = calloc(n ? n : 1, sizeof *cells);
    if (!cells) {
        fail("out of memory");
        return;
    }
    size_t width[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++)
        width[c] = strlen(heads[c]);
    for (size_t i = 0; i < n; i++) {
        status_cells(&rows[i], cells[i]);
        for (int c = 0; c < COL_COUNT; c++)
            if (strlen(cells[i][c]) > width[c])
                width[c] = strlen(cells[i][c]);
    }
    /* the last column unpadded: no trailing blanks */
    for (int c = 0; c < COL_COUNT; c++)
        printf("%-*s%s", c + 1 < COL_COUNT ? (int)width[c] : 0, heads[c],
               c + 1 < COL_COUNT ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < COL_COUNT; c++)
            printf("%-*s%s", c + 1 < COL_COUNT ? (int)width[c] : 0, cells[i][c],
                   c + 1 < COL_COUNT ? "  " : "\n");
    free(cells);
}

static json_t *status_json(const struct status_row *rows, size_t n)
{
    json_t *boards = json_array();
    for (size_t i = 0; boards && i < n; i++) {
        const struct status_row *r = &rows[i];
        json_t *o = json_pack("{s:s,s:s,s:b,s:o,s:O?,s:O?,s:O?,s:O?,s:o}", "name", r->h->name,
                              "url", r->h->url, "reachable", r->reachable, "error",
                              r->reachable ? json_null() : json_string(r->error), "health",
                              r->health, "device", r->device, "running_job", r->running_job,
                              "running_batch", r->batch, "problems",
                              r->problems[0] ? json_string(r->problems) : json_null());
        if (!o || json_array_append_new(boards, o) != 0) {
            json_decref(boards);
            return NULL;
        }
    }
    return boards ? json_pack("{s:o}", "boards", boards) : NULL;
}

static int cmd_status(const struct fleet_globals *g, int argc, char **argv)
{
    bool json_out = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
            continue;
        }
        usage_error("status: unknown %s '%s' (status [--json])",
                    argv[i][0] == '-' ? "option" : "argument", argv[i]);
        return EXIT_USAGE;
    }
    struct fleet_hosts hosts;
    int rc = load_hosts(g, &hosts);
    if (rc != EXIT_OK)
        return rc;
    size_t n = hosts.count;
    double timeout = read_timeout(g, READ_TIMEOUT_S);
    struct status_row *rows = calloc(n, sizeof *rows);
    struct fleet_request *reqs = calloc(n * ST_PER_BOARD, sizeof *reqs);
    struct fleet_result *res = calloc(n * ST_PER_BOARD, sizeof *res);
    char (*paths)[64] = calloc(n, sizeof *paths);
    if (!rows || !reqs || !res || !paths) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    static const char *const round1[ST_PER_BOARD] = {
        "/v1/health", "/v1/device", "/v1/jobs?state=running&limit=1"};
    for (size_t i = 0; i < n; i++) {
        rows[i].h = &hosts.hosts[i];
        for (int k = 0; k < ST_PER_BOARD; k++)
            reqs[i * ST_PER_BOARD + k] = (struct fleet_request){
                .base_url = hosts.hosts[i].url,
                .token = hosts.hosts[i].token,
                .method = "GET",
                .path = round1[k],
                .timeout_s = timeout,
                .connect_timeout_s = connect_timeout(timeout),
            };
    }
    rc = run_round(g, reqs, n * ST_PER_BOARD, res);
    if (rc != EXIT_OK) {
        if (rc >= EXIT_SIGNAL_BASE)
            fail("interrupted");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        status_collect(&rows[i], &res[i * ST_PER_BOARD]);
    fleet_results_free(res, n * ST_PER_BOARD);

    /* the running job's batch, where there is one */
    size_t asked = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *b = json_object_get(rows[i].running_job, "batch_id");
        reqs[i] = (struct fleet_request){0};
        if (!json_is_integer(b))
            continue;
        snprintf(paths[i], sizeof paths[i], "/v1/batches/%" JSON_INTEGER_FORMAT,
                 json_integer_value(b));
        reqs[i] = (struct fleet_request){
            .base_url = hosts.hosts[i].url,
            .token = hosts.hosts[i].token,
            .method = "GET",
            .path = paths[i],
            .timeout_s = timeout,
            .connect_timeout_s = connect_timeout(timeout),
        };
        asked++;
    }
    if (asked) {
        rc = run_round(g, reqs, n, res);
        if (rc != EXIT_OK) {
            if (rc >= EXIT_SIGNAL_BASE)
                fail("interrupted");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (!reqs[i].base_url)
                continue;
            rows[i].batch = fleet_result_object(&res[i]);
            /* the batch may have ended between the two rounds: the job's id says enough */
        }
        fleet_results_free(res, n);
    }

    size_t up = 0, failing = 0;
    for (size_t i = 0; i < n; i++) {
        up += rows[i].reachable;
        failing += rows[i].failing;
    }
    if (json_out) {
        json_t *doc = status_json(rows, n);
        if (!doc || json_dumpf(doc, stdout, JSON_OUT_FLAGS) != 0 || fputc('\n', stdout) == EOF) {
            fail("cannot print the answer");
            rc = EXIT_FAIL;
        }
        json_decref(doc);
    } else {
        print_status_table(rows, n);
        printf("%zu board%s: %zu answering, %zu unreachable\n", n, n == 1 ? "" : "s", up, n - up);
    }
    if (rc == EXIT_OK && failing > 0)
        rc = EXIT_FAIL;
    if (fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
    }
out:
    if (rows) {
        for (size_t i = 0; i < n; i++) {
            json_decref(rows[i].health);
            json_decref(rows[i].device);
            json_decref(rows[i].running_job);
            json_decref(rows[i].batch);
        }
    }
    if (res)
        fleet_results_free(res, n * ST_PER_BOARD);
    free(rows);
    free(reqs);
    free(res);
    free(paths);
    fleet_hosts_free(&hosts);
    return rc;
}

/* ---- the sweep expanded on the workstation (submit --shard) ---- */

struct expansion {
    json_t *configs; /* the configurations, each an object POST /v1/jobs takes, repeated ones
                        dropped (the first kept) */
    json_t *top;     /* members every shard body carries: dtype, repeats, repeat_existing */
};

static void expansion_free(struct expansion *x)
{
    json_decref(x->configs);
    json_decref(x->top);
    memset(x, 0, sizeof *x);
}

/* The sweep file's body -> its explicit configurations, expanded and checked
 * by cudakern/sweep.c exactly as a board expands them (the message names the
 * member), repeated ones dropped: a board queues a configuration once per
 * batch, and two boards must never share one. 0; -1 with err. */
static int expand_sweep(json_t *body, struct expansion *x, char *err, size_t errlen)
{
    const struct sweep_spec_options opt = {.max_configs = SHARD_MAX_CONFIGS,
                                           .limit_name = "the workstation's shard limit"};
    json_t *sweep = json_object_get(body, "sweep");
    struct sweep_spec spec;
    struct sweep_spec_error serr;
    memset(x, 0, sizeof *x);
    if (sweep_spec_expand(body, &opt, &spec, &serr) != 0) {
        snprintf(err, errlen, "%s", serr.detail);
        return -1;
    }
    /* An adaptive sweep's rounds train on the batch's own measurements: split
     * over boards, each shard would be a plain list of part of the initial
     * sample and the rounds would be lost. */
    if (spec.is_adaptive) {
        sweep_spec_free(&spec);
        snprintf(err, errlen,
                 "an adaptive sweep cannot be sharded: its rounds train on one board's own "
                 "measurements; submit it to each board without --shard");
        return -1;
    }
    int rc = -1;
    x->configs = json_array();
    x->top = json_object();
    if (sweep_spec_unique(&spec, NULL) != 0 || !x->configs || !x->top)
        goto out;
    for (size_t i = 0; i < spec.count; i++)
        if (json_array_append_new(x->configs, sweep_config_json(&spec.configs[i])) != 0)
            goto out;
    /* the batch records its dtype: keep the spec's for every shard */
    if ((json_object_get(body, "dtype") || json_object_get(sweep, "dtype")) &&
        json_object_set_new(x->top, "dtype", json_string(dtype_name(spec.dtype))) != 0)
        goto out;
    if (spec.repeats && json_object_set_new(x->top, "repeats", json_integer(spec.repeats)) != 0)
        goto out;
    if (json_object_get(body, "repeat_existing") &&
        json_object_set_new(x->top, "repeat_existing", json_boolean(spec.repeat_existing)) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    sweep_spec_free(&spec);
    return rc;
}

/* {"configs": [configs i with i % of == index], + top} as text (malloc'd);
 * *count the number of configurations in it. NULL on no memory. */
static char *shard_body(const struct expansion *x, size_t index, size_t of, size_t *count)
{
    json_t *list = json_array();
    json_t *body = json_deep_copy(x->top);
    char *text = NULL;
    *count = 0;
    if (!list || !body)
        goto out;
    for (size_t i = index; i < json_array_size(x->configs); i += of) {
        if (json_array_append(list, json_array_get(x->configs, i)) != 0)
            goto out;
        (*count)++;
    }
    if (json_object_set(body, "configs", list) != 0)
        goto out;
    text = json_dumps(body, JSON_COMPACT);
out:
    json_decref(list);
    json_decref(body);
    return text;
}

/* ---- submit ---- */

static int progress_wait_manifest(const struct fleet_globals *g, const char *mpath, json_t *m,
                                  bool json_out);

struct submit_board {
    const struct fleet_host *h;
    json_t *device;          /* GET /v1/device */
    const char *fingerprint; /* within device */
    char *body;              /* what is posted (malloc'd), NULL: nothing */
    const char *body_ref;    /* or the sweep file's text as is */
    size_t configs;          /* in the body (0: not known here, the whole sweep) */
    long shard_index, shard_of; /* -1: the whole sweep */
    char error[512];         /* not submitted: why */
    json_int_t batch_id, jobs, duplicates;
};

static int cmd_submit(const struct fleet_globals *g, int argc, char **argv)
{
    bool shard = false, wait = false, force = false;
    const char *file = NULL, *manifest_flag = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--shard") == 0) {
            shard = true;
        } else if (strcmp(a, "--wait") == 0) {
            wait = true;
        } else if (strcmp(a, "--force") == 0) {
            force = true;
        } else if (strcmp(a, "--manifest") == 0 || strncmp(a, "--manifest=", 11) == 0) {
            if (a[10] == '=') {
                manifest_flag = a + 11;
            } else if (i + 1 < argc) {
                manifest_flag = argv[++i];
            } else {
                usage_error("submit: --manifest needs a file name");
                return EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            usage_error("submit: unknown option '%s'", a);
            return EXIT_USAGE;
        } else if (file) {
            usage_error("submit takes one SWEEP.json (got '%s' and '%s')", file, a);
            return EXIT_USAGE;
        } else {
            file = a;
        }
    }
    if (!file) {
        usage_error("submit: which sweep? e.g. 'jetprof fleet submit sweep.json' (- reads "
                    "standard input)");
        return EXIT_USAGE;
    }
    const char *mpath = manifest_path(manifest_flag);
    if (*mpath == '\0') {
        usage_error("submit: --manifest needs a file name");
        return EXIT_USAGE;
    }
    struct stat st;
    if (!force && stat(mpath, &st) == 0) {
        fail("the manifest %s exists (an earlier submit): pass --force to replace it, or "
             "--manifest FILE for another",
             mpath);
        return EXIT_USAGE;
    }

    struct fleet_hosts hosts = {0};
    struct submit_board *boards = NULL;
    struct fleet_request *reqs = NULL;
    struct fleet_result *res = NULL;
    struct expansion x = {0};
    json_t *doc = NULL, *manifest = NULL;
    char *text = NULL;
    size_t text_len = 0, n = 0;
    int rc = load_hosts(g, &hosts);
    if (rc != EXIT_OK)
        return rc;
    n = hosts.count;
    char read_err[CLI_ERR_MAX];
    int read_rc = cli_read_sweep(file, INPUT_FILE_MAX_BYTES, &text, &text_len, &doc, read_err,
                                 sizeof read_err);
    if (read_rc != 0) {
        fail("%s", read_err);
        rc = read_rc == -1 ? EXIT_USAGE : EXIT_FAIL;
        goto out;
    }
    const char *shown = cli_input_name(file);
    if (shard) {
        char err[SWEEP_DETAIL_MAX];
        if (expand_sweep(doc, &x, err, sizeof err) != 0) {
            fail("%s: %s", shown, err);
            rc = EXIT_FAIL;
            goto out;
        }
    }

    boards = calloc(n, sizeof *boards);
    reqs = calloc(n, sizeof *reqs);
    res = calloc(n, sizeof *res);
    if (!boards || !reqs || !res) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    /* 1. who is there, and which device each is */
    double rtimeout = read_timeout(g, READ_TIMEOUT_S);
    for (size_t i = 0; i < n; i++) {
        boards[i].h = &hosts.hosts[i];
        boards[i].shard_index = boards[i].shard_of = -1;
        reqs[i] = (struct fleet_request){.base_url = hosts.hosts[i].url,
                                         .token = hosts.hosts[i].token,
                                         .method = "GET",
                                         .path = "/v1/device",
                                         .timeout_s = rtimeout,
                                         .connect_timeout_s = connect_timeout(rtimeout)};
    }
    rc = run_round(g, reqs, n, res);
    if (rc != EXIT_OK) {
        if (rc >= EXIT_SIGNAL_BASE)
            fail("interrupted before anything was submitted");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        boards[i].device = fleet_result_object(&res[i]);
        boards[i].fingerprint = str_or(json_object_get(boards[i].device, "fingerprint"), NULL);
        if (!boards[i].device || !boards[i].fingerprint) {
            char why[400];
            fleet_result_problem(&res[i], why, sizeof why);
            snprintf(boards[i].error, sizeof boards[i].error, "GET /v1/device: %s",
                     fleet_result_ok(&res[i]) ? "no fingerprint in the answer" : why);
        }
    }
    fleet_results_free(res, n);

    /* 2. what each board gets */
    for (size_t i = 0; i < n; i++) {
        struct submit_board *b = &boards[i];
        if (b->error[0])
            continue;
        if (!shard) {
            b->body_ref = text;
            continue;
        }
        size_t of = 0, index = 0;
        for (size_t j = 0; j < n; j++) {
            if (boards[j].error[0] || strcmp(boards[j].fingerprint, b->fingerprint) != 0)
                continue;
            if (j < i)
                index++;
            of++;
        }
        if (of == 1) {
            b->body_ref = text; /* alone with its fingerprint: the sweep as written */
            b->configs = json_array_size(x.configs);
            continue;
        }
        b->shard_index = (long)index;
        b->shard_of = (long)of;
        b->body = shard_body(&x, index, of, &b->configs);
        if (!b->body) {
            fail("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    /* 3. queue it */
    double ptimeout = read_timeout(g, SUBMIT_TIMEOUT_S);
    for (size_t i = 0; i < n; i++) {
        struct submit_board *b = &boards[i];
        const char *body = b->body ? b->body : b->body_ref;
        reqs[i] = (struct fleet_request){0};
        if (!body || (b->shard_of > 0 && b->configs == 0))
            continue; /* unreachable, or an empty shard (more boards than configurations) */
        reqs[i] = (struct fleet_request){.base_url = b->h->url,
                                         .token = b->h->token,
                                         .method = "POST",
                                         .path = "/v1/jobs",
                                         .body = body,
                                         .body_len = strlen(body),
                                         .timeout_s = ptimeout,
                                         .connect_timeout_s = connect_timeout(ptimeout)};
    }
    rc = run_round(g, reqs, n, res);
    bool stopped = rc >= EXIT_SIGNAL_BASE;
    if (rc != EXIT_OK && !stopped)
        goto out;
    size_t submitted = 0, failed = 0;
    size_t name_w = max_name_width(hosts.hosts, n);
    for (size_t i = 0; i < n; i++) {
        struct submit_board *b = &boards[i];
        if (!reqs[i].base_url) {
            if (b->error[0]) {
                failed++;
                printf("%-*s  NOT SUBMITTED: %s\n", (int)name_w, b->h->name, b->error);
            } else {
                printf("%-*s  nothing to measure: its shard (%ld of %ld) is empty\n", (int)name_w,
                       b->h->name, b->shard_index + 1, b->shard_of);
            }
            continue;
        }
        json_t *ans = fleet_result_object(&res[i]);
        const json_t *id = json_object_get(ans, "batch_id");
        if (!json_is_integer(id)) {
            char why[400];
            fleet_result_problem(&res[i], why, sizeof why);
            snprintf(b->error, sizeof b->error, "POST /v1/jobs: %s",
                     fleet_result_ok(&res[i]) ? "the answer has no batch_id" : why);
            if (res[i].rc == HTTP_CLIENT_INTERRUPTED || res[i].rc == HTTP_CLIENT_FAILED)
                add_problem(b->error, sizeof b->error,
                            "the board may have queued it: 'jetprof --host %s jobs' tells",
                            b->h->url);
            failed++;
            printf("%-*s  NOT SUBMITTED: %s\n", (int)name_w, b->h->name, b->error);
            json_decref(ans);
            continue;
        }
        b->batch_id = json_integer_value(id);
        b->jobs = cli_int_member(ans, "jobs");
        b->duplicates = cli_int_member(ans, "duplicates");
        json_decref(ans);
        if (b->shard_of < 0 && !shard)
            b->configs = (size_t)(b->jobs + b->duplicates);
        submitted++;
        printf("%-*s  batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
               " jobs queued, %" JSON_INTEGER_FORMAT " duplicates skipped",
               (int)name_w, b->h->name, b->batch_id, b->jobs, b->duplicates);
        if (b->shard_of > 0)
            printf(" (shard %ld of %ld: %zu of %zu configurations)\n", b->shard_index + 1,
                   b->shard_of, b->configs, json_array_size(x.configs));
        else
            printf(" (the whole sweep)\n");
    }
    fflush(stdout);

    /* 4. the manifest: which batch lives where */
    if (submitted > 0) {
        char now[40];
        clock_utc_iso8601(now, sizeof now);
        char *sweep_abs = strcmp(file, "-") == 0 ? NULL : absolute_path(file);
        char *hosts_abs = absolute_path(hosts.path);
        json_t *list = json_array();
        manifest = json_pack("{s:s,s:i,s:s,s:o,s:s,s:o,s:b,s:o}", "manifest", "jetprof-fleet",
                             "version", MANIFEST_VERSION, "sweep_file", shown, "sweep_path",
                             sweep_abs ? json_string(sweep_abs) : json_null(), "submitted_at", now,
                             "hosts_file", hosts_abs ? json_string(hosts_abs) : json_null(),
                             "sharded", shard, "boards", list ? json_incref(list) : NULL);
        free(sweep_abs);
        free(hosts_abs);
        for (size_t i = 0; manifest && i < n; i++) {
            struct submit_board *b = &boards[i];
            char *tf = b->h->token_file ? absolute_path(b->h->token_file) : NULL;
            json_t *o = json_pack(
                "{s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:I,s:o,s:o}", "name", b->h->name, "url", b->h->url,
                "token_file", tf ? json_string(tf) : json_null(), "fingerprint",
                b->fingerprint ? json_string(b->fingerprint) : json_null(), "batch_id",
                b->batch_id > 0 ? json_integer(b->batch_id) : json_null(), "configs",
                (json_int_t)b->configs, "jobs", b->jobs, "duplicates", b->duplicates, "shard",
                b->shard_of > 0 ? json_pack("{s:i,s:i}", "index", (int)b->shard_index + 1, "of",
                                            (int)b->shard_of)
                                : json_null(),
                "error", b->error[0] ? json_string(b->error) : json_null());
            free(tf);
            if (!o || json_array_append_new(list, o) != 0) {
                json_decref(manifest);
                manifest = NULL;
            }
        }
        json_decref(list);
        if (!manifest || write_json_atomically(mpath, manifest) != 0) {
            if (!manifest)
                fail("out of memory");
            fail("the batches are queued but the manifest was not written; each board's "
                 "batch id is printed above");
            rc = EXIT_FAIL;
            goto out;
        }
        printf("manifest %s: %zu batch%s on %zu of %zu boards%s\n", mpath, submitted,
               submitted == 1 ? "" : "es", submitted, n,
               shard ? " (sharded by device fingerprint)" : "");
    } else {
        fail("no board queued the sweep; no manifest written");
    }
    if (fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
        goto out;
    }
    if (stopped) {
        fail("interrupted: boards without an answer may have queued the sweep");
        rc = interrupted_exit(g);
        goto out;
    }
    rc = failed > 0 || submitted == 0 ? EXIT_FAIL : EXIT_OK;
    if (wait && submitted > 0) {
        /* progress --wait on what was just written */
        int wrc = progress_wait_manifest(g, mpath, manifest, false);
        if (wrc != EXIT_OK)
            rc = wrc;
    }
out:
    if (boards) {
        for (size_t i = 0; i < n; i++) {
            json_decref(boards[i].device);
            free(boards[i].body);
        }
    }
    if (res)
        fleet_results_free(res, n);
    free(boards);
    free(reqs);
    free(res);
    free(text);
    json_decref(doc);
    json_decref(manifest);
    expansion_free(&x);
    fleet_hosts_free(&hosts);
    return rc;
}

/* ---- the manifest read back ---- */

struct manifest_board {
    struct fleet_host host;  /* url, name, token_file, token */
    json_int_t batch_id;     /* 0: none on this board */
    const char *note;        /* the manifest's error, or NULL */
    bool empty_shard;        /* nothing was sent: not a failure */
    /* the latest poll */
    bool seen, answered, gone; /* gone: the board says the batch does not exist */
    char problem[400];
    json_int_t queued, running, done, failed, canceled;
    double rate_per_min, eta_s, energy_j, wall_s; /* < 0: not known */
};

/* Reads the manifest's boards. 0; -1 with the reason printed (a usage error). */
static int manifest_boards(const char *path, json_t *m, struct manifest_board **out, size_t *count)
{
    const json_t *list = json_object_get(m, "boards");
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_integer_value(json_object_get(m, "version")) != MANIFEST_VERSION) {
        fail("%s: not a fleet manifest (version %d with a \"boards\" list)", path,
             MANIFEST_VERSION);
        return -1;
    }
    size_t n = json_array_size(list);
    struct manifest_board *b = calloc(n, sizeof *b);
    if (!b) {
        fail("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(list, i);
        const json_t *url = json_object_get(o, "url"), *name = json_object_get(o, "name");
        const json_t *tf = json_object_get(o, "token_file"), *id = json_object_get(o, "batch_id");
        if (!json_is_string(url) || !json_is_string(name) || (tf && !json_is_null(tf) &&
                                                             !json_is_string(tf)) ||
            (id && !json_is_null(id) && !json_is_integer(id))) {
            fail("%s: boards[%zu]: needs \"url\" and \"name\" strings, \"token_file\" a string "
                 "or null, \"batch_id\" an integer or null",
                 path, i);
            goto fail;
        }
        b[i].host.url = strdup(json_string_value(url));
        b[i].host.name = strdup(json_string_value(name));
        if (!b[i].host.url || !b[i].host.name) {
            fail("out of memory");
            goto fail;
        }
        if (json_is_string(tf)) {
            char err[600];
            b[i].host.token_file = strdup(json_string_value(tf));
            if (!b[i].host.token_file ||
                cli_read_token(b[i].host.token_file, &b[i].host.token, err, sizeof err) != 0) {
                fail("%s: board %s: %s", path, b[i].host.name,
                     b[i].host.token_file ? err : "out of memory");
                goto fail;
            }
        }
        b[i].batch_id = json_is_integer(id) ? json_integer_value(id) : 0;
        b[i].note = str_or(json_object_get(o, "error"), NULL);
        b[i].empty_shard = b[i].batch_id == 0 && !b[i].note;
        b[i].rate_per_min = b[i].eta_s = b[i].energy_j = b[i].wall_s = -1;
    }
    *out = b;
    *count = n;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        fleet_host_free(&b[i].host);
    free(b);
    return -1;
}

static void manifest_boards_free(struct manifest_board *b, size_t n)
{
    if (!b)
        return;
    for (size_t i = 0; i < n; i++)
        fleet_host_free(&b[i].host);
    free(b);
}

/* Loads the manifest file. EXIT_OK with *out, or EXIT_USAGE with the reason printed. */
static int load_manifest(const char *path, json_t **out)
{
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) {
        struct stat st;
        if (stat(path, &st) != 0)
            fail("no manifest at %s (%s): 'jetprof fleet submit' writes it; --manifest FILE or "
                 "JETPROF_FLEET_MANIFEST names another",
                 path, strerror(errno));
        else
            fail("%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, jerr.text);
        return EXIT_USAGE;
    }
    if (!json_is_object(m)) {
        fail("%s: not a fleet manifest", path);
        json_decref(m);
        return EXIT_USAGE;
    }
    *out = m;
    return EXIT_OK;
}

/* ---- progress ---- */

static json_int_t board_total(const struct manifest_board *b)
{
    return b->queued + b->running + b->done + b->failed + b->canceled;
}

static json_int_t board_left(const struct manifest_board *b) { return b->queued + b->running; }

/* One poll of every board's batch; updates b[]. EXIT_OK, or EXIT_FAIL / 128+sig. */
static int poll_batches(const struct fleet_globals *g, struct manifest_board *b, size_t n)
{
    struct fleet_request *reqs = calloc(n, sizeof *reqs);
    struct fleet_result *res = calloc(n, sizeof *res);
    char (*paths)[64] = calloc(n, sizeof *paths);
    int rc = EXIT_FAIL;
    if (!reqs || !res || !paths) {
        fail("out of memory");
        goto out;
    }
    double timeout = read_timeout(g, READ_TIMEOUT_S);
    for (size_t i = 0; i < n; i++) {
        if (b[i].batch_id <= 0 || b[i].gone)
            continue;
        snprintf(paths[i], sizeof paths[i], "/v1/batches/%" JSON_INTEGER_FORMAT, b[i].batch_id);
        reqs[i] = (struct fleet_request){.base_url = b[i].host.url,
                                         .token = b[i].host.token,
                                         .method = "GET",
                                         .path = paths[i],
                                         .timeout_s = timeout,
                                         .connect_timeout_s = connect_timeout(timeout)};
    }
    rc = run_round(g, reqs, n, res);
    if (rc != EXIT_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].base_url)
            continue;
        json_t *doc = fleet_result_object(&res[i]);
        if (!doc) {
            b[i].answered = false;
            fleet_result_problem(&res[i], b[i].problem, sizeof b[i].problem);
            if (res[i].rc == HTTP_CLIENT_OK && res[i].status == 404) {
                b[i].gone = true; /* another database behind that address: it will not come back */
                snprintf(b[i].problem, sizeof b[i].problem,
                         "the board has no batch %" JSON_INTEGER_FORMAT
                         " (another database behind that address?)",
                         b[i].batch_id);
            }
            continue;
        }
        const json_t *c = json_object_get(doc, "counts");
        b[i].queued = cli_int_member(c, "queued");
        b[i].running = cli_int_member(c, "running");
        b[i].done = cli_int_member(c, "done");
        b[i].failed = cli_int_member(c, "failed");
        b[i].canceled = cli_int_member(c, "canceled");
        const json_t *v;
        b[i].rate_per_min = json_is_number(v = json_object_get(doc, "measured_per_minute"))
                                ? json_number_value(v)
                                : -1;
        b[i].eta_s = json_is_number(v = json_object_get(doc, "eta_s")) ? json_number_value(v) : -1;
        b[i].energy_j = json_is_number(v = json_object_get(doc, "energy_j")) ? json_number_value(v)
                                                                             : -1;
        b[i].wall_s = json_is_number(v = json_object_get(doc, "wall_s")) ? json_number_value(v)
                                                                         : -1;
        b[i].seen = b[i].answered = true;
        b[i].problem[0] = '\0';
        json_decref(doc);
    }
out:
    if (res)
        fleet_results_free(res, n);
    free(reqs);
    free(res);
    free(paths);
    return rc;
}

struct aggregate {
    json_int_t total, ended, done, failed, canceled, left;
    double rate_per_min; /* sum over boards still measuring (or all, when none is) */
    double eta_s;        /* the slowest board's; < 0 unknown */
    double energy_j, wall_s;
    size_t unreachable, broken; /* broken: not submitted or batch gone */
    bool finished;       /* no reachable board has work left */
};

static void aggregate(const struct manifest_board *b, size_t n, struct aggregate *a)
{
    memset(a, 0, sizeof *a);
    double rate_working = 0, rate_all = 0;
    bool eta_known = true;
    size_t working = 0;
    a->finished = true;
    for (size_t i = 0; i < n; i++) {
        if (b[i].batch_id <= 0) {
            if (!b[i].empty_shard)
                a->broken++;
            continue;
        }
        if (b[i].gone) {
            a->broken++;
            continue;
        }
        if (!b[i].answered)
            a->unreachable++;
        a->total += board_total(&b[i]);
        a->done += b[i].done;
        a->failed += b[i].failed;
        a->canceled += b[i].canceled;
        a->left += board_left(&b[i]);
        if (b[i].rate_per_min > 0)
            rate_all += b[i].rate_per_min;
        if (b[i].energy_j >= 0)
            a->energy_j += b[i].energy_j;
        if (b[i].wall_s > a->wall_s)
            a->wall_s = b[i].wall_s;
        bool has_work = !b[i].seen || board_left(&b[i]) > 0;
        if (has_work) {
            working++;
            if (b[i].rate_per_min > 0)
                rate_working += b[i].rate_per_min;
            if (b[i].eta_s >= 0 && b[i].seen) {
                if (b[i].eta_s > a->eta_s)
                    a->eta_s = b[i].eta_s;
            } else {
                eta_known = false;
            }
            if (b[i].answered)
                a->finished = false;
        }
    }
    a->ended = a->done + a->failed + a->canceled;
    a->rate_per_min = working ? rate_working : rate_all;
    if (!eta_known)
        a->eta_s = -1;
    else if (working == 0)
        a->eta_s = 0;
}

static void aggregate_text(char *buf, size_t len, const struct aggregate *a, size_t boards)
{
    char rate[32], eta[32];
    if (a->rate_per_min > 0)
        format_quantity(rate, sizeof rate, a->rate_per_min);
    else
        snprintf(rate, sizeof rate, "-");
    cli_format_duration(eta, sizeof eta, a->eta_s);
    int pct = a->total > 0 ? (int)(a->ended * 100 / a->total) : 100;
    int w = snprintf(buf, len,
                     "fleet: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                     " done (%d%%), %s/min, ETA %s, %zu board%s",
                     a->done, a->total, pct, rate, eta, boards, boards == 1 ? "" : "s");
    if (w < 0 || (size_t)w >= len)
        return;
    size_t used = (size_t)w;
    if (a->failed)
        used += (size_t)snprintf(buf + used, len - used, ", %" JSON_INTEGER_FORMAT " failed",
                                 a->failed);
    if (used < len && a->canceled)
        used += (size_t)snprintf(buf + used, len - used, ", %" JSON_INTEGER_FORMAT " canceled",
                                 a->canceled);
    if (used < len && a->unreachable)
        used += (size_t)snprintf(buf + used, len - used, ", %zu unreachable", a->unreachable);
    if (used < len && a->broken)
        snprintf(buf + used, len - used, ", %zu without a batch", a->broken);
}

static void board_text(char *buf, size_t len, const struct manifest_board *b, size_t name_w)
{
    int w = snprintf(buf, len, "  %-*s  ", (int)name_w, b->host.name);
    if (w < 0 || (size_t)w >= len)
        return;
    size_t used = (size_t)w;
    if (b->batch_id <= 0) {
        if (b->empty_shard)
            snprintf(buf + used, len - used, "nothing to measure (an empty shard)");
        else
            snprintf(buf + used, len - used, "not submitted: %s", b->note ? b->note : "?");
        return;
    }
    used += (size_t)snprintf(buf + used, len - used, "batch %" JSON_INTEGER_FORMAT ": ",
                             b->batch_id);
    if (used >= len)
        return;
    if (b->gone) {
        snprintf(buf + used, len - used, "%s", b->problem);
        return;
    }
    if (!b->seen) {
        snprintf(buf + used, len - used, "%s", b->problem[0] ? b->problem : "not read yet");
        return;
    }
    char rate[32], eta[32];
    if (b->rate_per_min > 0)
        format_quantity(rate, sizeof rate, b->rate_per_min);
    else
        snprintf(rate, sizeof rate, "-");
    cli_format_duration(eta, sizeof eta, b->eta_s);
    json_int_t total = board_total(b), ended = b->done + b->failed + b->canceled;
    int pct = total > 0 ? (int)(ended * 100 / total) : 100;
    used += (size_t)snprintf(buf + used, len - used,
                             "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                             " done (%d%%), %s/min, ETA %s",
                             b->done, total, pct, rate, eta);
    if (used < len && b->failed)
        used += (size_t)snprintf(buf + used, len - used, ", %" JSON_INTEGER_FORMAT " failed",
                                 b->failed);
    if (used < len && b->canceled)
        used += (size_t)snprintf(buf + used, len - used, ", %" JSON_INTEGER_FORMAT " canceled",
                                 b->canceled);
    if (used < len && board_left(b) == 0)
        used += (size_t)snprintf(buf + used, len - used, ", finished");
    if (used < len && !b->answered && b->problem[0])
        snprintf(buf + used, len - used, "; now %s", b->problem);
}

/* One block: the aggregate line and a line per board. On a terminal the
 * block is redrawn in place (cursor moved up over the previous one), the
 * aggregate line with a bar; lines are cut to the terminal's width so the
 * cursor arithmetic holds. */
static void draw_block(FILE *out, bool tty, size_t *drawn_lines, const struct aggregate *a,
                       const struct manifest_board *b, size_t n)
{
    char text[512], line[600];
    size_t name_w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(b[i].host.name) > name_w)
            name_w = strlen(b[i].host.name);
    aggregate_text(text, sizeof text, a, n);
    int cols = tty ? cli_terminal_columns(fileno(out)) : 0;
    if (tty && *drawn_lines > 0)
        fprintf(out, "\033[%zuA", *drawn_lines);
    if (tty) {
        int width = cols - (int)strlen(text) - 4;
        if (width > 30)
            width = 30;
        if (width >= 10) {
            char bar[32];
            int fill = a->total > 0 ? (int)(a->ended * width / a->total) : width;
            for (int i = 0; i < width; i++)
                bar[i] = i < fill ? '#' : '.';
            bar[width] = '\0';
            snprintf(line, sizeof line, "[%s] %s", bar, text);
        } else {
            snprintf(line, sizeof line, "%s", text);
        }
        fprintf(out, "\r%.*s\033[K\n", cols > 1 ? cols - 1 : 1, line);
    } else {
        fprintf(out, "%s\n", text);
    }
    for (size_t i = 0; i < n; i++) {
        board_text(line, sizeof line, &b[i], name_w);
        if (tty)
            fprintf(out, "\r%.*s\033[K\n", cols > 1 ? cols - 1 : 1, line);
        else
            fprintf(out, "%s\n", line);
    }
    fflush(out);
    *drawn_lines = n + 1;
}

static json_t *progress_json(const char *mpath, const struct manifest_board *b, size_t n,
                             const struct aggregate *a)
{
    json_t *boards = json_array();
    for (size_t i = 0; boards && i < n; i++) {
        json_t *o = json_pack(
            "{s:s,s:s,s:o,s:b,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:o,s:o}", "name", b[i].host.name,
            "url", b[i].host.url, "batch_id",
            b[i].batch_id > 0 ? json_integer(b[i].batch_id) : json_null(), "answered",
            b[i].answered, "problem",
            b[i].problem[0] ? json_string(b[i].problem)
            : b[i].note     ? json_string(b[i].note)
                            : json_null(),
            "counts", "queued", b[i].queued, "running", b[i].running, "done", b[i].done, "failed",
            b[i].failed, "canceled", b[i].canceled, "measured_per_minute",
            b[i].rate_per_min >= 0 ? json_real(b[i].rate_per_min) : json_null(), "eta_s",
            b[i].eta_s >= 0 ? json_real(b[i].eta_s) : json_null(), "energy_j",
            b[i].energy_j >= 0 ? json_real(b[i].energy_j) : json_null());
        if (!o || json_array_append_new(boards, o) != 0) {
            json_decref(boards);
            return NULL;
        }
    }
    if (!boards)
        return NULL;
    return json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "manifest", mpath, "finished",
                     a->finished, "jobs", a->total, "done", a->done, "failed", a->failed,
                     "canceled", a->canceled, "left", a->left, "measured_per_minute",
                     a->rate_per_min > 0 ? json_real(a->rate_per_min) : json_null(), "eta_s",
                     a->eta_s >= 0 ? json_real(a->eta_s) : json_null(), "boards", boards);
}

/*
 * Follows (wait) or reads once the batches of manifest m. Exit 0 when every
 * board answered and nothing failed or was canceled; 1 otherwise; 128+signal
 * when stopped.
 */
static int progress_run(const struct fleet_globals *g, const char *mpath, json_t *m, bool wait,
                        bool json_out)
{
    struct manifest_board *b = NULL;
    size_t n = 0;
    if (manifest_boards(mpath, m, &b, &n) != 0)
        return EXIT_USAGE;
    FILE *out = json_out ? stderr : stdout;
    bool tty = wait && isatty(fileno(out)) == 1;
    size_t drawn = 0;
    double last_line_s = 0;
    struct aggregate a = {0}, last = {0};
    bool printed = false;
    int rc;
    for (;;) {
        rc = poll_batches(g, b, n);
        if (rc != EXIT_OK)
            break;
        aggregate(b, n, &a);
        if (!wait) {
            if (!json_out)
                draw_block(out, false, &drawn, &a, b, n);
            break;
        }
        double now = cli_monotonic_s();
        bool changed = a.ended != last.ended || a.left != last.left ||
                       a.unreachable != last.unreachable || a.total != last.total;
        if (tty || !printed || a.finished ||
            (changed && now - last_line_s >= PROGRESS_LINE_MIN_S) ||
            now - last_line_s >= PROGRESS_LINE_MAX_S) {
            draw_block(out, tty, &drawn, &a, b, n);
            printed = true;
            last_line_s = now;
            last = a;
        }
        if (a.finished)
            break;
        cli_sleep_ms(PROGRESS_POLL_MS, g->interrupted);
        if (interrupted(g)) {
            rc = interrupted_exit(g);
            break;
        }
    }
    if (rc >= EXIT_SIGNAL_BASE) {
        fflush(out);
        fail("stopped waiting; the batches keep running on the boards ('jetprof fleet cancel' "
             "cancels what is still queued)");
    } else if (rc == EXIT_OK) {
        if (json_out) {
            json_t *doc = progress_json(mpath, b, n, &a);
            if (!doc || json_dumpf(doc, stdout, JSON_OUT_FLAGS) != 0 ||
                fputc('\n', stdout) == EOF) {
                fail("cannot print the answer");
                rc = EXIT_FAIL;
            }
            json_decref(doc);
        }
        if (wait) {
            char wall[32];
            fprintf(out,
                    "fleet finished: %" JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT
                    " failed, %" JSON_INTEGER_FORMAT " canceled of %" JSON_INTEGER_FORMAT
                    " jobs on %zu boards",
                    a.done, a.failed, a.canceled, a.total, n);
            if (a.wall_s > 0)
                fprintf(out, " in %s (the longest board)",
                        cli_format_duration(wall, sizeof wall, a.wall_s));
            if (a.energy_j > 0)
                fprintf(out, ", %.1f J", a.energy_j);
            fputc('\n', out);
            fflush(out);
        }
        for (size_t i = 0; i < n; i++) {
            if (b[i].batch_id <= 0) {
                if (!b[i].empty_shard) {
                    fail("%s: no batch (not submitted: %s)", b[i].host.name,
                         b[i].note ? b[i].note : "?");
                    rc = EXIT_FAIL;
                }
                continue;
            }
            if (!b[i].answered) {
                fail("%s: %s", b[i].host.name, b[i].problem);
                rc = EXIT_FAIL;
            } else if (b[i].failed + b[i].canceled > 0) {
                fail("%s: batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
                     " failed, %" JSON_INTEGER_FORMAT " canceled ('jetprof --host %s jobs "
                     "--batch %" JSON_INTEGER_FORMAT " --state failed' shows why)",
                     b[i].host.name, b[i].batch_id, b[i].failed, b[i].canceled, b[i].host.url,
                     b[i].batch_id);
                rc = EXIT_FAIL;
            }
        }
        if (fflush(stdout) != 0) {
            fail("writing the output failed: %s", strerror(errno));
            rc = EXIT_FAIL;
        }
    }
    manifest_boards_free(b, n);
    return rc;
}

/* submit --wait: the manifest just written. */
static int progress_wait_manifest(const struct fleet_globals *g, const char *mpath, json_t *m,
                                  bool json_out)
{
    return progress_run(g, mpath, m, true, json_out);
}

static int manifest_option(const char *cmd, int argc, char **argv, int *i, const char **out)
{
    const char *a = argv[*i];
    if (strncmp(a, "--manifest=", 11) == 0) {
        *out = a + 11;
        return 1;
    }
    if (strcmp(a, "--manifest") != 0)
        return 0;
    if (*i + 1 >= argc) {
        usage_error("%s: --manifest needs a file name", cmd);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

static int cmd_progress(const struct fleet_globals *g, int argc, char **argv)
{
    bool wait = false, json_out = false;
    const char *flag = NULL;
    for (int i = 1; i < argc; i++) {
        int t = manifest_option("progress", argc, argv, &i, &flag);
        if (t < 0)
            return EXIT_USAGE;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else {
            usage_error("progress: unknown %s '%s' (progress [--wait] [--json] [--manifest FILE])",
                        argv[i][0] == '-' ? "option" : "argument", argv[i]);
            return EXIT_USAGE;
        }
    }
    const char *mpath = manifest_path(flag);
    json_t *m = NULL;
    int rc = load_manifest(mpath, &m);
    if (rc != EXIT_OK)
        return rc;
    rc = progress_run(g, mpath, m, wait, json_out);
    json_decref(m);
    return rc;
}

/* ---- cancel ---- */

static int cmd_cancel(const struct fleet_globals *g, int argc, char **argv)
{
    const char *flag = NULL;
    for (int i = 1; i < argc; i++) {
        int t = manifest_option("cancel", argc, argv, &i, &flag);
        if (t < 0)
            return EXIT_USAGE;
        if (t > 0)
            continue;
        usage_error("cancel: unknown %s '%s' (cancel [--manifest FILE])",
                    argv[i][0] == '-' ? "option" : "argument", argv[i]);
        return EXIT_USAGE;
    }
    const char *mpath = manifest_path(flag);
    json_t *m = NULL;
    int rc = load_manifest(mpath, &m);
    if (rc != EXIT_OK)
        return rc;
    struct manifest_board *b = NULL;
    size_t n = 0;
    if (manifest_boards(mpath, m, &b, &n) != 0) {
        json_decref(m);
        return EXIT_USAGE;
    }
    struct fleet_request *reqs = calloc(n, sizeof *reqs);
    struct fleet_result *res = calloc(n, sizeof *res);
    char (*paths)[64] = calloc(n, sizeof *paths);
    if (!reqs || !res || !paths) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    double timeout = read_timeout(g, READ_TIMEOUT_S);
    for (size_t i = 0; i < n; i++) {
        if (b[i].batch_id <= 0)
            continue;
        snprintf(paths[i], sizeof paths[i], "/v1/batches/%" JSON_INTEGER_FORMAT, b[i].batch_id);
        reqs[i] = (struct fleet_request){.base_url = b[i].host.url,
                                         .token = b[i].host.token,
                                         .method = "DELETE",
                                         .path = paths[i],
                                         .timeout_s = timeout,
                                         .connect_timeout_s = connect_timeout(timeout)};
    }
    rc = run_round(g, reqs, n, res);
    bool stopped = rc >= EXIT_SIGNAL_BASE;
    if (rc != EXIT_OK && !stopped)
        goto out;
    rc = EXIT_OK;
    size_t name_w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(b[i].host.name) > name_w)
            name_w = strlen(b[i].host.name);
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].base_url) {
            printf("%-*s  nothing to cancel (%s)\n", (int)name_w, b[i].host.name,
                   b[i].empty_shard ? "an empty shard" : "not submitted");
            continue;
        }
        json_t *doc = fleet_result_object(&res[i]);
        if (!doc) {
            char why[400];
            fleet_result_problem(&res[i], why, sizeof why);
            printf("%-*s  batch %" JSON_INTEGER_FORMAT ": NOT CANCELED: %s\n", (int)name_w,
                   b[i].host.name, b[i].batch_id, why);
            rc = EXIT_FAIL;
            continue;
        }
        const json_t *c = json_object_get(doc, "counts");
        printf("%-*s  batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
               " queued jobs canceled; %" JSON_INTEGER_FORMAT " running (it finishes), %"
               JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT " failed\n",
               (int)name_w, b[i].host.name, b[i].batch_id, cli_int_member(doc, "canceled"),
               cli_int_member(c, "running"), cli_int_member(c, "done"),
               cli_int_member(c, "failed"));
        json_decref(doc);
    }
    if (fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
    }
    if (stopped) {
        fail("interrupted: boards without an answer may or may not have canceled");
        rc = interrupted_exit(g);
    }
out:
    if (res)
        fleet_results_free(res, n);
    free(reqs);
    free(res);
    free(paths);
    manifest_boards_free(b, n);
    json_decref(m);
    return rc;
}

/* ---- dispatch ---- */

int fleet_main(const struct fleet_globals *g, int argc, char **argv)
{
    if (argc < 2) {
        usage_error("which fleet command? status, submit, progress, cancel or pull");
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(fleet_help_text, stdout);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
    }
    if (strcmp(cmd, "status") == 0)
        return cmd_status(g, argc - 1, argv + 1);
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(g, argc - 1, argv + 1);
    if (strcmp(cmd, "progress") == 0)
        return cmd_progress(g, argc - 1, argv + 1);
    if (strcmp(cmd, "cancel") == 0)
        return cmd_cancel(g, argc - 1, argv + 1);
    if (strcmp(cmd, "pull") == 0) /* fleet_pull.c: argv[0] == "pull" */
        return fleet_pull_main(g, argc - 1, argv + 1);
    usage_error("unknown fleet command '%s' (status, submit, progress, cancel, pull)", cmd);
    return EXIT_USAGE;
}
