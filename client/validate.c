/*
 * validate.c - `jetprof validate`: how good are this board's graph estimates?
 * The estimator (POST /v1/estimate) sums per-kernel predictions; this command
 * measures whole graphs on the board (POST /v1/graphs/measure) and has the
 * daemon compare the two (GET /v1/validation), with merging on and off.
 *
 * The steps, each one request or a poll of one, so a user can follow them
 * with curl (docs/validation.md lists the sequence):
 *   a. collect the graphs: the fixture graphs (every *.json of --graphs-dir,
 *      default tests/fixtures/graphs), any --graph FILE, and the generated
 *      families (graph_family.c); every graph is built here with the daemon's
 *      own graph code (graph_plan_build, merge on and off), so a graph the
 *      estimator would refuse is refused before anything is queued, and the
 *      kernel configurations the graphs need are known;
 *   b. models: for each kernel type (and dtype) the graphs use that has no
 *      model yet (GET /v1/models), a sweep around the configurations the
 *      graphs use - random (--samples per kernel type), or adaptive with
 *      --adaptive - queued with POST /v1/jobs and followed with GET
 *      /v1/batches/{id}; then POST /v1/models/train for those kernel types;
 *   c. POST /v1/graphs/measure with the graphs (at most 100 per request, one
 *      batch each), followed the same way;
 *   d. GET /v1/validation: printed as a table (per graph: kernels merged and
 *      unmerged, levels, streams, measured latency and energy, both estimates
 *      and their relative errors) and summary lines (MAPE, share within
 *      +-10 %, Kendall tau; energy and latency; merge on and off), labelled
 *      "(simulated)" when the daemon says its numbers are; or, with --json,
 *      the answer as received.
 * The validation covers every graph measured on this device, earlier runs'
 * included: it is the board's record, not this run's.
 *
 * Progress goes to stderr, the table (or the JSON) to stdout. Requests,
 * problem reports and the exit status follow jetprof.c's conventions (0, 1 the
 * daemon refused or is unreachable or a job failed, 2 usage, 128+N stopped by
 * signal N while waiting - the daemon's jobs keep running).
 */
#include "validate.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../cudakern/catalog.h"
#include "../cudakern/exec.h"
#include "../predict/graph.h"
#include "cli_common.h"
#include "graph_family.h"
#include "http_client.h"

#define PREFIX "jetprof validate"
#define fail(...) cli_fail(PREFIX, __VA_ARGS__)
#define usage_error(...) cli_usage_error(PREFIX, "jetprof validate --help", __VA_ARGS__)

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_SIGNAL_BASE = 128,
};

/* Requests are answered at once (training is the exception: no limit). */
#define DEFAULT_TIMEOUT_S 60.0
#define CONNECT_TIMEOUT_S 10.0
#define DEFAULT_SAMPLES 40
#define DEFAULT_ROUNDS 2
#define DEFAULT_SEED 1
/* POST /v1/graphs/measure takes 1 to 100 graphs. */
#define MEASURE_MAX_GRAPHS 100
/* Sweeps: the daemon's limits (cudakern/sweep.h, SWEEP_ADAPTIVE_*). */
#define SAMPLES_MAX 100000
/* An adaptive batch's round 0 trains on its initial sample minus the held-out
 * share (predict.train_holdout, default 0.2), and training needs 20 rows
 * (SWEEP_ADAPTIVE_MIN_INITIAL = TRAIN_MIN_ROWS): 25 leaves 20 to train on. */
#define ADAPTIVE_MIN_INITIAL 25
#define ADAPTIVE_ROUNDS_MAX 20
#define REPEATS_MAX 20
/* One GET /v1/batches/{id} per poll; a progress line when something changed
 * and PROGRESS_MIN_S passed, and one at least every PROGRESS_MAX_S. */
#define POLL_MS 1000
#define PROGRESS_MIN_S 5.0
#define PROGRESS_MAX_S 60.0
#define GRAPH_FILE_MAX_BYTES ((size_t)64 * 1024 * 1024)
#define FIXTURES_DIR "tests/fixtures/graphs"
/* Reals of --json / --print-graphs output: what a measured value carries. */
#define JSON_OUT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

const char validate_help_text[] =
    "Usage: jetprof validate [--graphs-dir DIR | --no-fixtures] [--graph FILE]...\n"
    "           [--family none|tiny|small|medium] [--families mlp,ftt]\n"
    "           [--samples N] [--adaptive [--rounds N] [--per-round N]] [--seed N]\n"
    "           [--repeats N] [--remeasure] [--quality ok|any]\n"
    "           [--skip-train] [--skip-measure] [--json] [--print-graphs]\n"
    "Measures whole graphs on the board and compares the measurements with the\n"
    "graph estimates, merging on and off (docs/validation.md). The steps:\n"
    "  1. collect the graphs: every *.json of DIR (default tests/fixtures/graphs,\n"
    "     looked up in the current directory, then beside the jetprof binary), each\n"
    "     --graph FILE (a graph, or {\"graphs\": [...]}), and the generated families;\n"
    "     each is checked with the estimator's graph code first;\n"
    "  2. for each kernel type the graphs use without a model (GET /v1/models): a\n"
    "     sweep around the configurations the graphs use (POST /v1/jobs: random, N\n"
    "     configurations per kernel type and dtype; --adaptive: nn-Meter's adaptive\n"
    "     sampling, N initial ones, then --rounds rounds of --per-round more around\n"
    "     the worst-predicted), then training (POST /v1/models/train);\n"
    "  3. the graphs measured whole (POST /v1/graphs/measure; a graph measured\n"
    "     before is not measured again unless --remeasure);\n"
    "  4. the validation (GET /v1/validation): one row per measured graph, then\n"
    "     MAPE, the share within +-10 % and Kendall tau of energy and latency, with\n"
    "     merging on and off. Every graph measured on this device counts, earlier\n"
    "     runs' too. \"(simulated)\" marks numbers from the sim sensor or the CPU\n"
    "     executor.\n"
    "Batches are followed until done, progress on stderr (Ctrl-C stops waiting;\n"
    "the jobs keep running).\n"
    "\n"
    "Options:\n"
    "  --graphs-dir DIR   fixture graphs: every *.json file of DIR, by name\n"
    "  --no-fixtures      no fixture directory (only --graph files and families)\n"
    "  --graph FILE       one more graph file (repeatable; - reads standard input)\n"
    "  --family SIZE      generated MLPs (width x depth) and FT-Transformers (d_token\n"
    "                     x blocks): none, tiny (2 + 2, batch 32), small (default;\n"
    "                     4 + 4, batch 64 and 32), medium (12 + 9, batch 128 and 64)\n"
    "  --families LIST    which generated families: mlp, ftt or all (default all)\n"
    "  --samples N        configurations per kernel type and dtype to train on\n"
    "                     (default 40; adaptive: the initial sample, at least 25)\n"
    "  --adaptive         adaptive sampling sweeps instead of random ones\n"
    "  --rounds N         adaptive rounds (default 2, at most 20)\n"
    "  --per-round N      configurations each adaptive round adds (default N/2)\n"
    "  --seed N           the sweeps' seed (default 1)\n"
    "  --repeats N        measurement repeats of every job queued (1..20; default\n"
    "                     the daemon's measure.repeats)\n"
    "  --remeasure        measure graphs again even when measured before\n"
    "  --quality Q        ok: train on and validate with measurements marked ok only;\n"
    "                     any (default): suspect ones too\n"
    "  --skip-train       no sweeps and no training: use the models there are\n"
    "  --skip-measure     measure nothing: validate what is measured already\n"
    "  --json             print the validation as jetprofd answers it\n"
    "  --print-graphs     print the collected graphs as {\"graphs\": [...]} (the body\n"
    "                     of POST /v1/graphs/measure) and exit; no daemon needed\n"
    "Exit status: 0 done; 1 jetprofd refused or could not be reached, a graph was\n"
    "refused, a measurement failed, or no graph could be validated; 2 usage error;\n"
    "130 Ctrl-C while waiting.\n"
    "Example: jetprof validate --family small --samples 60\n";

struct options {
    const char *graphs_dir; /* NULL: the default search */
    bool no_fixtures;
    const char **graph_files;
    size_t graph_file_count;
    enum graph_family_size family;
    unsigned kinds;
    int64_t samples;
    bool adaptive;
    int64_t rounds, per_round; /* per_round 0: samples / 2 */
    int64_t seed;
    int64_t repeats;           /* 0: the daemon's */
    const char *quality;
    bool skip_train, skip_measure, remeasure, json_out, print_graphs;
};

/* One graph to validate. */
struct vgraph {
    json_t *doc;                /* as sent */
    char label[GRAPH_NAME_MAX]; /* its name, else the file's */
    char source[256];           /* a path, "FILE: graphs[i]" or "generated" */
    size_t kernels, merged_kernels;
    unsigned levels;
    char hash[65];              /* from POST /v1/graphs/measure; "" before */
};

/* The configurations the graphs need of one kernel type and dtype. */
struct kernel_range {
    const struct catalog_kernel *kernel;
    enum dtype dtype;
    int64_t low[CATALOG_MAX_PARAMS], high[CATALOG_MAX_PARAMS];
    size_t configs;
};

struct collection {
    struct vgraph *graphs;
    size_t count, cap;
    size_t generated;            /* graphs from graph_family.c (the last ones) */
    struct kernel_range *ranges; /* catalog_count() x DTYPE_COUNT slots */
    size_t range_count, range_cap;
};

struct vctx {
    const struct validate_globals *g;
    const struct options *o;
    struct collection *c;
    bool job_failed; /* some job failed or was canceled: exit 1 at the end */
};

static const char *str_or(const json_t *v, const char *fallback)
{
    const char *s = json_string_value(v);
    return s ? s : fallback;
}

/* ---- requests ---- */

static int interrupted_exit(const struct vctx *v)
{
    return EXIT_SIGNAL_BASE + (int)*v->g->interrupted;
}

/* "jetprof validate: WHAT: 409 Conflict: detail" from a problem+json answer,
 * and what a 404 on the routes of issue 7 means. */
static void report_http_error(const char *what, const char *path,
                              const struct http_response *resp)
{
    cli_report_http_error(PREFIX, what, resp->status, resp->body, resp->body_len);
    if (resp->status == 404 &&
        (strncmp(path, "/v1/graphs", 10) == 0 || strncmp(path, "/v1/validation", 14) == 0))
        fputs(PREFIX ": this jetprofd has no whole-graph measurement; it needs a newer "
                     "version\n",
              stderr);
}

/*
 * METHOD path with body (may be NULL; sent as compact JSON). EXIT_OK with
 * *resp filled for a 2xx answer; otherwise the reason printed, naming what,
 * and EXIT_FAIL (128+N when interrupted).
 */
static int request(struct vctx *v, double default_timeout_s, const char *method, const char *path,
                   const json_t *body, const char *what, struct http_response *resp)
{
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text) {
            fail("out of memory");
            return EXIT_FAIL;
        }
    }
    struct http_client_opts opts = {
        .base_url = v->g->base_url,
        .token = v->g->token,
        .timeout_s = v->g->timeout_s >= 0 ? v->g->timeout_s : default_timeout_s,
        .connect_timeout_s = CONNECT_TIMEOUT_S,
        .interrupted = v->g->interrupted,
    };
    if (opts.timeout_s > 0 && opts.timeout_s < opts.connect_timeout_s)
        opts.connect_timeout_s = opts.timeout_s;
    char err[512];
    int rc = http_client_request(&opts, method, path, text, text ? strlen(text) : 0, resp, err,
                                 sizeof err);
    free(text);
    switch (rc) {
    case HTTP_CLIENT_OK:
        break;
    case HTTP_CLIENT_INTERRUPTED:
        fail("stopped while %s; what is queued keeps running on jetprofd", what);
        http_response_free(resp);
        return interrupted_exit(v);
    case HTTP_CLIENT_UNREACHABLE:
        fail("cannot reach jetprofd at %s: %s", v->g->base_url, err);
        http_response_free(resp);
        return EXIT_FAIL;
    case HTTP_CLIENT_FAILED:
        fail("%s: %s %s%s failed: %s", what, method, v->g->base_url, path, err);
        http_response_free(resp);
        return EXIT_FAIL;
    default:
        fail("%s: %s", what, err);
        http_response_free(resp);
        return EXIT_FAIL;
    }
    if (resp->status < 200 || resp->status > 299) {
        report_http_error(what, path, resp);
        http_response_free(resp);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* request(), the answer parsed: a JSON object in *out. */
static int request_json(struct vctx *v, double default_timeout_s, const char *method,
                        const char *path, const json_t *body, const char *what, json_t **out)
{
    struct http_response resp;
    int rc = request(v, default_timeout_s, method, path, body, what, &resp);
    if (rc != EXIT_OK)
        return rc;
    json_error_t jerr;
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, &jerr);
    http_response_free(&resp);
    if (!json_is_object(doc)) {
        fail("%s: jetprofd's answer is not a JSON object%s%s", what, doc ? "" : ": ",
             doc ? "" : jerr.text);
        json_decref(doc);
        return EXIT_FAIL;
    }
    *out = doc;
    return EXIT_OK;
}

/* ---- a. the graphs ---- */

static void collection_free(struct collection *c)
{
    for (size_t i = 0; i < c->count; i++)
        json_decref(c->graphs[i].doc);
    free(c->graphs);
    free(c->ranges);
    memset(c, 0, sizeof *c);
}

/* Widens the range of cfg's kernel type and dtype to cover cfg. 0 or -1 (a
 * kernel type outside the catalogue: cannot happen for a built plan). */
static int record_config(struct collection *c, const struct kernel_config *cfg)
{
    struct kernel_range *r = NULL;
    for (size_t i = 0; i < c->range_count && !r; i++)
        if (c->ranges[i].kernel == cfg->kernel && c->ranges[i].dtype == cfg->dtype)
            r = &c->ranges[i];
    if (!r) {
        if (c->range_count >= c->range_cap)
            return -1;
        r = &c->ranges[c->range_count++];
        memset(r, 0, sizeof *r);
        r->kernel = cfg->kernel;
        r->dtype = cfg->dtype;
        for (unsigned p = 0; p < cfg->kernel->param_count; p++)
            r->low[p] = r->high[p] = cfg->params[p];
    }
    for (unsigned p = 0; p < cfg->kernel->param_count; p++) {
        if (cfg->params[p] < r->low[p])
            r->low[p] = cfg->params[p];
        if (cfg->params[p] > r->high[p])
            r->high[p] = cfg->params[p];
    }
    r->configs++;
    return 0;
}

/* The graph's name, or fallback (the file's), at most GRAPH_NAME_MAX - 1 bytes. */
static void graph_label(const json_t *doc, const char *fallback, char *out, size_t len)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    snprintf(out, len, "%s", name && *name ? name : fallback);
}

/*
 * Adds doc (the reference is taken over) after building it with merge off and
 * on. A native graph without a name is given fallback_name, so the daemon
 * stores and shows one. EXIT_OK, or EXIT_FAIL with the reason printed.
 */
static int add_graph(struct collection *c, json_t *doc, const char *fallback_name,
                     const char *source)
{
    if (json_is_object(doc) && json_is_array(json_object_get(doc, "nodes"))) {
        const char *name = json_string_value(json_object_get(doc, "name"));
        if ((!name || !*name) && json_object_set_new(doc, "name", json_string(fallback_name))) {
            fail("out of memory");
            json_decref(doc);
            return EXIT_FAIL;
        }
    }
    struct graph_options go = {.merge = false, .max_nodes = GRAPH_DEFAULT_MAX_NODES};
    struct graph_plan plans[2];
    memset(plans, 0, sizeof plans);
    for (int m = 0; m < 2; m++) {
        struct graph_error gerr;
        memset(&gerr, 0, sizeof gerr);
        go.merge = m == 1;
        if (graph_plan_build(doc, &go, &plans[m], &gerr) != 0) {
            if (gerr.status == 500 || !gerr.detail[0])
                fail("%s: out of memory while building the graph", source);
            else
                fail("%s: the estimator refuses this graph: %s", source, gerr.detail);
            if (m == 1)
                graph_plan_free(&plans[0]);
            json_decref(doc);
            return EXIT_FAIL;
        }
    }
    int rc = EXIT_OK;
    /* what POST /v1/graphs/measure refuses besides the estimator's checks */
    if (plans[0].count == 0) {
        fail("%s: the graph has no kernel to run (only inputs, dropout or identity nodes)",
             source);
        rc = EXIT_FAIL;
    } else if (plans[0].count > EXEC_PLAN_MAX_KERNELS) {
        fail("%s: the graph runs %zu kernels after fusion; a whole-graph measurement runs at "
             "most %u",
             source, plans[0].count, EXEC_PLAN_MAX_KERNELS);
        rc = EXIT_FAIL;
    }
    struct vgraph g;
    memset(&g, 0, sizeof g);
    g.doc = doc;
    graph_label(doc, fallback_name, g.label, sizeof g.label);
    snprintf(g.source, sizeof g.source, "%s", source);
    g.kernels = plans[0].count;
    g.merged_kernels = plans[1].count;
    for (size_t k = 0; k < plans[0].count; k++)
        if (plans[0].kernels[k].depth > g.levels)
            g.levels = plans[0].kernels[k].depth;
    for (int m = 0; m < 2 && rc == EXIT_OK; m++)
        for (size_t k = 0; k < plans[m].count && rc == EXIT_OK; k++)
            if (record_config(c, &plans[m].kernels[k].cfg) != 0) {
                fail("%s: a kernel type outside the catalogue", source);
                rc = EXIT_FAIL;
            }
    graph_plan_free(&plans[0]);
    graph_plan_free(&plans[1]);
    if (rc == EXIT_OK && c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 32;
        struct vgraph *n = realloc(c->graphs, cap * sizeof *n);
        if (!n) {
            fail("out of memory");
            rc = EXIT_FAIL;
        } else {
            c->graphs = n;
            c->cap = cap;
        }
    }
    if (rc != EXIT_OK) {
        json_decref(doc);
        return rc;
    }
    c->graphs[c->count++] = g;
    return EXIT_OK;
}

/* "mlp" from ".../mlp.json". */
static void file_stem(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(path, "-") == 0)
        base = "stdin";
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".json") == 0)
        n -= 5;
    if (n >= len)
        n = len - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* A graph file: one graph, or {"graphs": [...]}. EXIT_OK; EXIT_USAGE when a
 * file named on the command line cannot be read; EXIT_FAIL otherwise. */
static int add_file(struct collection *c, const char *path, bool named_by_user)
{
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    char err[CLI_ERR_MAX];
    int rc = cli_read_json(path, GRAPH_FILE_MAX_BYTES, &text, &len, &doc, err, sizeof err);
    if (rc != 0) {
        fail("%s", err);
        return rc == -1 && named_by_user ? EXIT_USAGE : EXIT_FAIL;
    }
    free(text);
    const char *shown = cli_input_name(path);
    char stem[GRAPH_NAME_MAX - 8];
    file_stem(path, stem, sizeof stem);
    json_t *list = json_is_object(doc) ? json_object_get(doc, "graphs") : NULL;
    if (!json_is_array(list))
        return add_graph(c, doc, stem, shown);
    if (json_array_size(list) == 0) {
        fail("%s: 'graphs' is empty", shown);
        json_decref(doc);
        return EXIT_FAIL;
    }
    size_t i;
    json_t *g;
    rc = EXIT_OK;
    json_array_foreach(list, i, g)
    {
        char name[GRAPH_NAME_MAX], source[256];
        snprintf(name, sizeof name, "%.40s_%zu", stem, i);
        snprintf(source, sizeof source, "%.200s: graphs[%zu]", shown, i);
        rc = add_graph(c, json_incref(g), name, source);
        if (rc != EXIT_OK)
            break;
    }
    json_decref(doc);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every *.json file of dir, in name order. EXIT_USAGE when dir cannot be read. */
static int add_dir(struct collection *c, const char *dir, size_t *added)
{
    DIR *d = opendir(dir);
    if (!d) {
        fail("cannot read the graph directory %s: %s", dir, strerror(errno));
        return EXIT_USAGE;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = EXIT_OK;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = EXIT_FAIL;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[count] = strdup(e->d_name);
        if (!names[count]) {
            rc = EXIT_FAIL;
            break;
        }
        count++;
        errno = 0;
    }
    if (rc == EXIT_OK && errno != 0) {
        fail("cannot read the graph directory %s: %s", dir, strerror(errno));
        rc = EXIT_USAGE;
    } else if (rc != EXIT_OK) {
        fail("out of memory");
    }
    closedir(d);
    if (rc == EXIT_OK && count > 0)
        qsort(names, count, sizeof *names, compare_names);
    *added = 0;
    for (size_t i = 0; i < count && rc == EXIT_OK; i++) {
        size_t n = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(n);
        if (!path) {
            fail("out of memory");
            rc = EXIT_FAIL;
            break;
        }
        snprintf(path, n, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t before = c->count;
            rc = add_file(c, path, false);
            *added += c->count - before;
        }
        free(path);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The fixture directory when none is named: FIXTURES_DIR under the current
 * directory (a source tree), else beside the binary (bin/../tests/fixtures/
 * graphs, or an installed share/jetprof/graphs). false when none exists. */
static bool default_graphs_dir(char *out, size_t len)
{
    if (is_dir(FIXTURES_DIR)) {
        snprintf(out, len, "%s", FIXTURES_DIR);
        return true;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    static const char *const rel[] = {"/../" FIXTURES_DIR, "/../share/jetprof/graphs"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        int w = snprintf(out, len, "%s%s", exe, rel[i]);
        if (w > 0 && (size_t)w < len && is_dir(out))
            return true;
    }
    return false;
}

/* Step a. EXIT_OK with at least one graph in c. */
static int collect_graphs(const struct options *o, struct collection *c)
{
    c->range_cap = catalog_count() * DTYPE_COUNT;
    c->ranges = calloc(c->range_cap ? c->range_cap : 1, sizeof *c->ranges);
    if (!c->ranges) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    int rc;
    if (!o->no_fixtures) {
        char dir[PATH_MAX + 64];
        const char *use = o->graphs_dir;
        if (!use && default_graphs_dir(dir, sizeof dir))
            use = dir;
        if (use) {
            size_t added = 0;
            rc = add_dir(c, use, &added);
            if (rc != EXIT_OK)
                return rc;
            if (added == 0)
                fprintf(stderr, "validate: no *.json graph in %s\n", use);
        } else {
            fprintf(stderr, "validate: no fixture graph directory found (%s here or beside "
                            "the jetprof binary); --graphs-dir DIR names one\n",
                    FIXTURES_DIR);
        }
    }
    for (size_t i = 0; i < o->graph_file_count; i++) {
        rc = add_file(c, o->graph_files[i], true);
        if (rc != EXIT_OK)
            return rc;
    }
    json_t *generated = json_array();
    if (!generated || graph_family_generate(o->family, o->kinds, generated) != 0) {
        json_decref(generated);
        fail("out of memory");
        return EXIT_FAIL;
    }
    size_t i;
    json_t *g;
    rc = EXIT_OK;
    json_array_foreach(generated, i, g)
    {
        char source[256];
        snprintf(source, sizeof source, "generated graph %s",
                 json_string_value(json_object_get(g, "name")));
        rc = add_graph(c, json_incref(g), "generated", source);
        if (rc != EXIT_OK)
            break;
        c->generated++;
    }
    json_decref(generated);
    if (rc != EXIT_OK)
        return rc;
    if (c->count == 0) {
        fail("no graphs to validate: name a --graphs-dir with *.json graphs, --graph FILE, "
             "or a --family other than none");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* --print-graphs: {"graphs": [...]} on stdout, one line per graph on stderr. */
static int print_graphs(const struct collection *c)
{
    json_t *list = json_array();
    json_t *body = json_object();
    int rc = EXIT_OK;
    if (!list || !body || json_object_set(body, "graphs", list) != 0) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < c->count; i++) {
        const struct vgraph *g = &c->graphs[i];
        if (json_array_append(list, g->doc) != 0) {
            fail("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
        fprintf(stderr, "%-24s %3zu kernels (%zu merged), %u levels  %s\n", g->label, g->kernels,
                g->merged_kernels, g->levels, g->source);
    }
    if (json_dumpf(body, stdout, JSON_OUT_FLAGS) != 0 || fputc('\n', stdout) == EOF ||
        fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
    }
out:
    json_decref(list);
    json_decref(body);
    return rc;
}

/* ---- following a batch ---- */

/* One line per adaptive round the batch has committed since *seen. */
static void print_rounds(const json_t *batch, json_int_t id, size_t *seen)
{
    const json_t *rounds = json_object_get(batch, "rounds");
    const json_t *planned = json_object_get(json_object_get(batch, "adaptive"), "rounds");
    for (size_t i = *seen; i < json_array_size(rounds); i++) {
        const json_t *r = json_array_get(rounds, i);
        const json_t *m = json_object_get(r, "metrics");
        const json_t *mape = json_object_get(json_object_get(m, "latency"), "mape");
        const char *note = json_string_value(json_object_get(r, "note"));
        fprintf(stderr, "validate: batch %" JSON_INTEGER_FORMAT " round %" JSON_INTEGER_FORMAT
                        ": trained on %" JSON_INTEGER_FORMAT " rows",
                id, cli_int_member(r, "round"), cli_int_member(r, "rows"));
        if (json_is_number(mape))
            fprintf(stderr, ", held-out latency MAPE %.1f %%", json_number_value(mape));
        if (json_is_integer(json_object_get(m, "above_threshold")))
            fprintf(stderr, ", %" JSON_INTEGER_FORMAT " above the threshold",
                    cli_int_member(m, "above_threshold"));
        fprintf(stderr, ", %" JSON_INTEGER_FORMAT " configurations added",
                cli_int_member(r, "added"));
        if (note && *note)
            fprintf(stderr, " (%s)", note);
        else if (json_is_integer(planned) &&
                 cli_int_member(r, "round") == json_integer_value(planned))
            fputs(" (the last round)", stderr);
        fputc('\n', stderr);
    }
    *seen = json_array_size(rounds);
}

/*
 * Polls GET /v1/batches/{id} until no job of it is queued or running and,
 * for an adaptive batch, its last round is in. Progress lines on stderr name
 * it as what. EXIT_OK (v->job_failed set when a job failed or was canceled),
 * or as request(); 128+N when interrupted (the jobs keep running).
 */
static int wait_batch(struct vctx *v, json_int_t id, const char *what)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/batches/%" JSON_INTEGER_FORMAT, id);
    char step[96];
    snprintf(step, sizeof step, "following batch %" JSON_INTEGER_FORMAT, id);
    double last_line_s = -1;
    json_int_t last_ended = -1;
    size_t rounds_seen = 0;
    for (;;) {
        json_t *b = NULL;
        int rc = request_json(v, DEFAULT_TIMEOUT_S, "GET", path, NULL, step, &b);
        if (rc != EXIT_OK)
            return rc;
        const json_t *counts = json_object_get(b, "counts");
        json_int_t queued = cli_int_member(counts, "queued");
        json_int_t running = cli_int_member(counts, "running");
        json_int_t done = cli_int_member(counts, "done");
        json_int_t failed = cli_int_member(counts, "failed");
        json_int_t canceled = cli_int_member(counts, "canceled");
        json_int_t total = queued + running + done + failed + canceled;
        bool open = json_is_true(json_object_get(json_object_get(b, "adaptive"), "open"));
        print_rounds(b, id, &rounds_seen);
        double now = cli_monotonic_s();
        if (queued + running == 0 && !open) {
            char wall[32];
            const json_t *w = json_object_get(b, "wall_s");
            fprintf(stderr,
                    "validate: batch %" JSON_INTEGER_FORMAT " (%s) finished: %" JSON_INTEGER_FORMAT
                    " done, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
                    " canceled of %" JSON_INTEGER_FORMAT " jobs%s%s\n",
                    id, what, done, failed, canceled, total, json_is_number(w) ? " in " : "",
                    json_is_number(w) ? cli_format_duration(wall, sizeof wall,
                                                            json_number_value(w))
                                      : "");
            if (failed + canceled > 0) {
                fail("batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT " failed, %"
                     JSON_INTEGER_FORMAT " canceled ('jetprof jobs --batch %" JSON_INTEGER_FORMAT
                     " --state failed' shows why)",
                     id, failed, canceled, id);
                v->job_failed = true;
            }
            json_decref(b);
            return EXIT_OK;
        }
        json_int_t ended = done + failed + canceled;
        if (last_line_s < 0 || now - last_line_s >= PROGRESS_MAX_S ||
            (ended != last_ended && now - last_line_s >= PROGRESS_MIN_S)) {
            char eta[32];
            const json_t *e = json_object_get(b, "eta_s");
            fprintf(stderr,
                    "validate: batch %" JSON_INTEGER_FORMAT " (%s): %" JSON_INTEGER_FORMAT
                    "/%" JSON_INTEGER_FORMAT " done%s, ETA %s\n",
                    id, what, ended, total, open ? ", adaptive rounds to come" : "",
                    cli_format_duration(eta, sizeof eta,
                                        json_is_number(e) ? json_number_value(e) : -1));
            last_line_s = now;
            last_ended = ended;
        }
        json_decref(b);
        cli_sleep_ms(POLL_MS, v->g->interrupted);
        if (*v->g->interrupted) {
            fail("stopped waiting; the jobs of batch %" JSON_INTEGER_FORMAT
                 " keep running on jetprofd ('jetprof cancel --batch %" JSON_INTEGER_FORMAT
                 "' cancels those still queued)",
                 id, id);
            return interrupted_exit(v);
        }
    }
}

/*
 * A configuration or graph a batch skipped as a duplicate may still be queued
 * or running in another batch (an earlier run stopped with Ctrl-C, someone
 * else's sweep): what this run needs is measured only once those jobs end.
 * Does a queued or running job matter? For the sweeps, one of a kernel type in
 * swept (indexed like the catalogue); for the graphs (swept NULL), a "graph"
 * job of one of the collection's hashes.
 */
static bool job_matters(const struct vctx *v, const json_t *job, const bool *swept)
{
    const char *kernel = str_or(json_object_get(job, "kernel"), "");
    if (swept) {
        const struct catalog_kernel *k = catalog_find(kernel);
        for (size_t i = 0; k && i < catalog_count(); i++)
            if (catalog_at(i) == k)
                return swept[i];
        return false;
    }
    const char *key = str_or(json_object_get(job, "config_key"), "");
    if (strcmp(kernel, "graph") != 0 || strncmp(key, "graph:", 6) != 0)
        return false;
    for (size_t i = 0; i < v->c->count; i++)
        if (v->c->graphs[i].hash[0] && strcmp(v->c->graphs[i].hash, key + 6) == 0)
            return true;
    return false;
}

/* Queued and running jobs that matter (job_matters), over every page of GET /v1/jobs. */
static int count_pending(struct vctx *v, const bool *swept, json_int_t *pending)
{
    static const char *const states[] = {"queued", "running"};
    *pending = 0;
    for (size_t s = 0; s < 2; s++) {
        json_int_t after = 0;
        for (;;) {
            char path[128];
            snprintf(path, sizeof path, "/v1/jobs?state=%s&limit=10000&after=%" JSON_INTEGER_FORMAT,
                     states[s], after);
            json_t *page = NULL;
            int rc = request_json(v, DEFAULT_TIMEOUT_S, "GET", path, NULL,
                                  "listing the queue (GET /v1/jobs)", &page);
            if (rc != EXIT_OK)
                return rc;
            size_t i;
            const json_t *job;
            json_array_foreach(json_object_get(page, "jobs"), i, job)
                *pending += job_matters(v, job, swept);
            const json_t *next = json_object_get(page, "next_after");
            bool more = json_is_integer(next) && json_integer_value(next) > after;
            if (more)
                after = json_integer_value(next);
            json_decref(page);
            if (!more)
                break;
        }
    }
    return EXIT_OK;
}

/* Waits until no job that matters is queued or running (what: for the progress line). */
static int wait_pending(struct vctx *v, const bool *swept, const char *what)
{
    double last_line_s = -1;
    for (;;) {
        json_int_t pending = 0;
        int rc = count_pending(v, swept, &pending);
        if (rc != EXIT_OK || pending == 0)
            return rc;
        double now = cli_monotonic_s();
        if (last_line_s < 0 || now - last_line_s >= PROGRESS_MAX_S) {
            fprintf(stderr,
                    "validate: waiting for %" JSON_INTEGER_FORMAT " %s queued or running in "
                    "other batches\n",
                    pending, what);
            last_line_s = now;
        }
        cli_sleep_ms(POLL_MS, v->g->interrupted);
        if (*v->g->interrupted) {
            fail("stopped waiting for the jobs of other batches (they keep running on jetprofd)");
            return interrupted_exit(v);
        }
    }
}

/* ---- b. models ---- */

/*
 * The sweep around r's configurations: each parameter from half the smallest
 * value the graphs use to twice the largest (within the catalogue), so the
 * predictor learns the neighbourhood, not only the points. Random: count
 * --samples; adaptive: --samples initial, --rounds of --per-round.
 */
static json_t *sweep_body(const struct options *o, const struct kernel_range *r)
{
    json_t *params = json_object();
    json_t *sweep = NULL, *body = NULL;
    if (!params)
        return NULL;
    for (unsigned p = 0; p < r->kernel->param_count; p++) {
        const struct catalog_param *cp = &r->kernel->params[p];
        int64_t lo = r->low[p] / 2, hi = r->high[p] > INT64_MAX / 2 ? INT64_MAX : 2 * r->high[p];
        if (lo < cp->min)
            lo = cp->min;
        if (hi > cp->max)
            hi = cp->max;
        json_t *v = lo == hi && !o->adaptive
                        ? json_integer((json_int_t)lo)
                        : json_pack("[I,I]", (json_int_t)lo, (json_int_t)hi);
        if (json_object_set_new(params, cp->name, v) != 0)
            goto fail;
    }
    if (o->adaptive) {
        int64_t initial = o->samples < ADAPTIVE_MIN_INITIAL ? ADAPTIVE_MIN_INITIAL : o->samples;
        int64_t per_round = o->per_round > 0 ? o->per_round : (initial / 2 > 0 ? initial / 2 : 1);
        sweep = json_pack("{s:s, s:s, s:I, s:O, s:I, s:I, s:I}", "type", "adaptive", "kernel",
                          r->kernel->name, "seed", (json_int_t)o->seed, "params", params,
                          "initial", (json_int_t)initial, "per_round", (json_int_t)per_round,
                          "rounds", (json_int_t)o->rounds);
    } else {
        sweep = json_pack("{s:s, s:s, s:I, s:I, s:O}", "type", "random", "kernel",
                          r->kernel->name, "count", (json_int_t)o->samples, "seed",
                          (json_int_t)o->seed, "params", params);
    }
    if (!sweep)
        goto fail;
    body = json_pack("{s:O, s:s}", "sweep", sweep, "dtype", dtype_name(r->dtype));
    if (body && o->repeats > 0 &&
        json_object_set_new(body, "repeats", json_integer((json_int_t)o->repeats)) != 0) {
        json_decref(body);
        body = NULL;
    }
fail:
    json_decref(sweep);
    json_decref(params);
    return body;
}

/* "batch [32, 128], in [16, 64], out 10" of a sweep's params, for the progress line. */
static void params_text(const json_t *params, char *buf, size_t len)
{
    size_t used = 0;
    const char *name;
    const json_t *v;
    buf[0] = '\0';
    json_object_foreach((json_t *)params, name, v)
    {
        int n = json_is_array(v)
                    ? snprintf(buf + used, len - used,
                               "%s%s [%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT "]",
                               used ? ", " : "", name,
                               json_integer_value(json_array_get(v, 0)),
                               json_integer_value(json_array_get(v, 1)))
                    : snprintf(buf + used, len - used, "%s%s %" JSON_INTEGER_FORMAT,
                               used ? ", " : "", name, json_integer_value(v));
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

static size_t kernel_index(const struct catalog_kernel *k)
{
    for (size_t i = 0; i < catalog_count(); i++)
        if (catalog_at(i) == k)
            return i;
    return catalog_count();
}

/* Step b: a sweep per kernel type (and dtype) without a model, then training. */
static int ensure_models(struct vctx *v)
{
    struct collection *c = v->c;
    json_t *models = NULL;
    int rc = request_json(v, DEFAULT_TIMEOUT_S, "GET", "/v1/models", NULL,
                          "listing the models (GET /v1/models)", &models);
    if (rc != EXIT_OK)
        return rc;
    size_t nk = catalog_count();
    bool *have = calloc(nk ? nk : 1, sizeof *have);
    bool *swept = calloc(nk ? nk : 1, sizeof *swept);
    json_int_t *batches = calloc(c->range_count ? c->range_count : 1, sizeof *batches);
    char (*labels)[96] = calloc(c->range_count ? c->range_count : 1, sizeof *labels);
    json_t *train = json_object();
    json_t *kernels = json_array();
    size_t batch_count = 0;
    bool duplicates = false;
    if (!have || !swept || !batches || !labels || !train || !kernels) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(models, "models"), i, m)
    {
        const struct catalog_kernel *k =
            catalog_find(str_or(json_object_get(m, "kernel"), ""));
        if (k && strcmp(str_or(json_object_get(m, "target"), ""), "latency_us") == 0)
            have[kernel_index(k)] = true;
    }
    size_t needed = 0, missing = 0;
    for (size_t r = 0; r < c->range_count; r++) {
        size_t ki = kernel_index(c->ranges[r].kernel);
        bool first = true;
        for (size_t q = 0; q < r; q++)
            first = first && c->ranges[q].kernel != c->ranges[r].kernel;
        needed += first;
        missing += first && !have[ki];
    }
    if (missing == 0) {
        fprintf(stderr, "validate: every kernel type the graphs use (%zu) has a model\n", needed);
        goto out;
    }
    fprintf(stderr,
            "validate: %zu of the %zu kernel types the graphs use have no model: queueing %s "
            "sweeps of %" PRId64 " configurations around the graphs' configurations\n",
            missing, needed, v->o->adaptive ? "adaptive" : "random", v->o->samples);
    for (size_t r = 0; r < c->range_count; r++) {
        const struct kernel_range *kr = &c->ranges[r];
        size_t ki = kernel_index(kr->kernel);
        if (have[ki])
            continue;
        json_t *body = sweep_body(v->o, kr);
        if (!body) {
            fail("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
        char what[128], ptext[256];
        snprintf(what, sizeof what, "queueing the %s %s sweep (POST /v1/jobs)", kr->kernel->name,
                 dtype_name(kr->dtype));
        params_text(json_object_get(json_object_get(body, "sweep"), "params"), ptext,
                    sizeof ptext);
        json_t *ans = NULL;
        rc = request_json(v, DEFAULT_TIMEOUT_S, "POST", "/v1/jobs", body, what, &ans);
        json_decref(body);
        if (rc != EXIT_OK)
            goto out;
        const json_t *id = json_object_get(ans, "batch_id");
        if (!json_is_integer(id)) {
            fail("%s: jetprofd's answer has no batch_id", what);
            json_decref(ans);
            rc = EXIT_FAIL;
            goto out;
        }
        batches[batch_count] = json_integer_value(id);
        snprintf(labels[batch_count], sizeof labels[batch_count], "%s %s sweep",
                 kr->kernel->name, dtype_name(kr->dtype));
        fprintf(stderr,
                "validate: batch %" JSON_INTEGER_FORMAT ": %s %s, %" JSON_INTEGER_FORMAT
                " jobs queued, %" JSON_INTEGER_FORMAT " duplicates skipped (%s)\n",
                batches[batch_count], kr->kernel->name, dtype_name(kr->dtype),
                cli_int_member(ans, "jobs"), cli_int_member(ans, "duplicates"), ptext);
        batch_count++;
        duplicates = duplicates || cli_int_member(ans, "duplicates") > 0;
        json_decref(ans);
        if (!swept[ki]) {
            swept[ki] = true;
            if (json_array_append_new(kernels, json_string(kr->kernel->name)) != 0) {
                fail("out of memory");
                rc = EXIT_FAIL;
                goto out;
            }
        }
    }
    for (size_t b = 0; b < batch_count; b++) {
        rc = wait_batch(v, batches[b], labels[b]);
        if (rc != EXIT_OK)
            goto out;
    }
    if (duplicates) {
        rc = wait_pending(v, swept, "sweep jobs of these kernel types");
        if (rc != EXIT_OK)
            goto out;
    }
    if (json_object_set(train, "kernels", kernels) != 0 ||
        json_object_set_new(train, "quality", json_string(v->o->quality)) != 0) {
        fail("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    fprintf(stderr, "validate: training the models of %zu kernel types (quality %s)\n",
            json_array_size(kernels), v->o->quality);
    json_t *trained = NULL;
    rc = request_json(v, 0, "POST", "/v1/models/train", train,
                      "training (POST /v1/models/train)", &trained);
    if (rc != EXIT_OK)
        goto out;
    const json_t *ms = json_object_get(trained, "duration_ms");
    fprintf(stderr, "validate: trained %zu models", json_array_size(json_object_get(trained,
                                                                                     "models")));
    if (json_is_number(ms))
        fprintf(stderr, " in %.0f ms", json_number_value(ms));
    fputc('\n', stderr);
    json_decref(trained);
out:
    json_decref(models);
    json_decref(train);
    json_decref(kernels);
    free(have);
    free(swept);
    free(batches);
    free(labels);
    return rc;
}

/* ---- c. whole-graph measurements ---- */

/* Notes each graph's hash from the answer's "graphs" list (index i of the
 * request is graph first + i). */
static void note_hashes(struct collection *c, size_t first, size_t n, const json_t *ans)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(ans, "graphs"), i, e)
    {
        const json_t *index = json_object_get(e, "index");
        const char *hash = json_string_value(json_object_get(e, "hash"));
        size_t at = json_is_integer(index) ? (size_t)json_integer_value(index) : i;
        if (hash && at < n)
            snprintf(c->graphs[first + at].hash, sizeof c->graphs[first + at].hash, "%s", hash);
    }
}

/* Step c: POST /v1/graphs/measure, MEASURE_MAX_GRAPHS at a time, then each batch followed. */
static int measure_graphs(struct vctx *v)
{
    struct collection *c = v->c;
    size_t chunks = (c->count + MEASURE_MAX_GRAPHS - 1) / MEASURE_MAX_GRAPHS;
    json_int_t *batches = calloc(chunks ? chunks : 1, sizeof *batches);
    if (!batches) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    bool duplicates = false;
    for (size_t ch = 0; ch < chunks && rc == EXIT_OK; ch++) {
        size_t first = ch * MEASURE_MAX_GRAPHS;
        size_t n = c->count - first < MEASURE_MAX_GRAPHS ? c->count - first : MEASURE_MAX_GRAPHS;
        json_t *list = json_array();
        json_t *body = json_object();
        bool ok = list && body && json_object_set(body, "graphs", list) == 0;
        for (size_t i = 0; ok && i < n; i++)
            ok = json_array_append(list, c->graphs[first + i].doc) == 0;
        if (ok && v->o->repeats > 0)
            ok = json_object_set_new(body, "repeats", json_integer((json_int_t)v->o->repeats)) ==
                 0;
        if (ok && v->o->remeasure)
            ok = json_object_set_new(body, "repeat_existing", json_true()) == 0;
        json_decref(list);
        if (!ok) {
            json_decref(body);
            fail("out of memory");
            rc = EXIT_FAIL;
            break;
        }
        json_t *ans = NULL;
        rc = request_json(v, DEFAULT_TIMEOUT_S, "POST", "/v1/graphs/measure", body,
                          "queueing the graph measurements (POST /v1/graphs/measure)", &ans);
        json_decref(body);
        if (rc != EXIT_OK)
            break;
        const json_t *id = json_object_get(ans, "batch_id");
        if (!json_is_integer(id)) {
            fail("POST /v1/graphs/measure: jetprofd's answer has no batch_id");
            json_decref(ans);
            rc = EXIT_FAIL;
            break;
        }
        batches[ch] = json_integer_value(id);
        note_hashes(c, first, n, ans);
        duplicates = duplicates || cli_int_member(ans, "duplicates") > 0;
        fprintf(stderr,
                "validate: batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
                " graphs queued for measurement, %" JSON_INTEGER_FORMAT
                " measured or queued before\n",
                batches[ch], cli_int_member(ans, "inserted"), cli_int_member(ans, "duplicates"));
        json_decref(ans);
    }
    for (size_t ch = 0; ch < chunks && rc == EXIT_OK; ch++)
        rc = wait_batch(v, batches[ch], "whole-graph measurements");
    if (rc == EXIT_OK && duplicates)
        rc = wait_pending(v, NULL, "measurements of these graphs");
    free(batches);
    return rc;
}

/* ---- d. the validation ---- */

/* The name shown for a validated graph: ours when we sent it (an nn-Meter
 * graph carries no name), else the daemon's, else its hash's start. */
static const char *validated_label(const struct collection *c, const json_t *graph, char *buf,
                                   size_t len)
{
    const char *hash = json_string_value(json_object_get(graph, "hash"));
    const char *name = json_string_value(json_object_get(graph, "name"));
    if (name && *name)
        return name;
    for (size_t i = 0; hash && i < c->count; i++)
        if (strcmp(c->graphs[i].hash, hash) == 0)
            return c->graphs[i].label;
    snprintf(buf, len, "(graph %.12s)", hash ? hash : "?");
    return buf;
}

/* A quantity: 1 decimal from 100 up, else 3 significant digits; "-" for null. */
static const char *quantity(char *buf, size_t len, const json_t *v)
{
    if (!json_is_number(v)) {
        snprintf(buf, len, "-");
        return buf;
    }
    double x = json_number_value(v);
    if (fabs(x) >= 100.0)
        snprintf(buf, len, "%.1f", x);
    else
        snprintf(buf, len, "%.3g", x);
    return buf;
}

/* A relative error as a signed percentage; "-" for null. */
static const char *percent(char *buf, size_t len, const json_t *v)
{
    if (!json_is_number(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%+.1f", 100.0 * json_number_value(v));
    return buf;
}

static void print_metric_line(const char *what, const json_t *m, const char *label)
{
    char mape[32] = "-", within[32] = "-", tau[32] = "-";
    const json_t *x = json_object_get(m, "mape");
    const json_t *w = json_object_get(m, "within_10pct");
    const json_t *t = json_object_get(m, "kendall_tau");
    if (json_is_number(x))
        snprintf(mape, sizeof mape, "%.2f %%", json_number_value(x));
    if (json_is_number(w))
        snprintf(within, sizeof within, "%.1f %%", 100.0 * json_number_value(w));
    if (json_is_number(t))
        snprintf(tau, sizeof tau, "%.3f", json_number_value(t));
    printf("%-19s MAPE %9s, within +-10 %% %7s of graphs, Kendall tau %6s%s\n", what, mape,
           within, tau, label);
}

static int print_validation(const struct collection *c, const json_t *val)
{
    const json_t *graphs = json_object_get(val, "graphs");
    const json_t *summary = json_object_get(val, "summary");
    const json_t *skipped = json_object_get(val, "skipped");
    bool simulated = json_is_true(json_object_get(val, "simulated"));
    const char *label = simulated ? " (simulated)" : "";
    const char *fp = json_string_value(json_object_get(json_object_get(val, "device"),
                                                       "fingerprint"));
    const char *executor =
        json_string_value(json_object_get(json_object_get(json_array_get(graphs, 0), "measured"),
                                          "executor"));
    printf("validation on device %.12s: %zu graphs measured, %zu skipped, quality %s%s%s%s\n",
           fp && *fp ? fp : "?", json_array_size(graphs), json_array_size(skipped),
           str_or(json_object_get(val, "quality"), "?"),
           executor ? ", executor " : "", executor ? executor : "", label);
    printf("%-24s %7s %6s %7s %11s %12s %12s %7s %12s %7s %8s %8s\n", "GRAPH", "KERNELS",
           "LEVELS", "STREAMS", "MEASURED_US", "MEASURED_UJ", "MERGED_UJ", "ERR%", "UNMERGED_UJ",
           "ERR%", "LAT_M%", "LAT_U%");
    size_t i;
    const json_t *e;
    json_array_foreach(graphs, i, e)
    {
        const json_t *g = json_object_get(e, "graph");
        const json_t *meas = json_object_get(e, "measured");
        const json_t *em = json_object_get(e, "estimate_merged");
        const json_t *eu = json_object_get(e, "estimate_unmerged");
        char name[GRAPH_NAME_MAX], kernels[32], lat[32], energy[32], merged[32], merr[16],
            unmerged[32], uerr[16], lm[16], lu[16];
        snprintf(kernels, sizeof kernels, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 cli_int_member(em, "kernels"), cli_int_member(eu, "kernels"));
        printf("%-24s %7s %6" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT
               " %11s %12s %12s %7s %12s %7s %8s %8s\n",
               validated_label(c, g, name, sizeof name), kernels, cli_int_member(g, "levels"),
               cli_int_member(meas, "streams"),
               quantity(lat, sizeof lat, json_object_get(meas, "latency_us")),
               quantity(energy, sizeof energy, json_object_get(meas, "energy_uj")),
               quantity(merged, sizeof merged, json_object_get(em, "energy_uj")),
               percent(merr, sizeof merr, json_object_get(em, "energy_error")),
               quantity(unmerged, sizeof unmerged, json_object_get(eu, "energy_uj")),
               percent(uerr, sizeof uerr, json_object_get(eu, "energy_error")),
               percent(lm, sizeof lm, json_object_get(em, "latency_error")),
               percent(lu, sizeof lu, json_object_get(eu, "latency_error")));
    }
    json_array_foreach(skipped, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *hash = json_string_value(json_object_get(e, "graph"));
        printf("skipped %s: %s\n", name && *name ? name : hash ? hash : "?",
               str_or(json_object_get(e, "reason"), "?"));
    }
    const json_t *sm = json_object_get(summary, "merged");
    const json_t *su = json_object_get(summary, "unmerged");
    printf("summary over %" JSON_INTEGER_FORMAT " graphs (KERNELS merged/unmerged; ERR%% "
           "energy, LAT_M%%/LAT_U%% latency: (estimate - measured) / measured):\n",
           cli_int_member(summary, "graphs"));
    print_metric_line("energy, merge on:", json_object_get(sm, "energy"), label);
    print_metric_line("energy, merge off:", json_object_get(su, "energy"), label);
    print_metric_line("latency, merge on:", json_object_get(sm, "latency"), label);
    print_metric_line("latency, merge off:", json_object_get(su, "latency"), label);
    return ferror(stdout) ? -1 : 0;
}

/* Step d. */
static int show_validation(struct vctx *v)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/validation?quality=%s", v->o->quality);
    struct http_response resp;
    int rc = request(v, DEFAULT_TIMEOUT_S, "GET", path, NULL,
                     "the validation (GET /v1/validation)", &resp);
    if (rc != EXIT_OK)
        return rc;
    json_t *val = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (!json_is_object(val) || !json_is_array(json_object_get(val, "graphs"))) {
        fail("GET /v1/validation: jetprofd's answer is not a validation document");
        json_decref(val);
        http_response_free(&resp);
        return EXIT_FAIL;
    }
    int out;
    if (v->o->json_out) {
        out = resp.body_len > 0 && fwrite(resp.body, 1, resp.body_len, stdout) != resp.body_len
                  ? -1
                  : 0;
        if (out == 0 && resp.body_len > 0 && resp.body[resp.body_len - 1] != '\n' &&
            fputc('\n', stdout) == EOF)
            out = -1;
    } else {
        out = print_validation(v->c, val);
    }
    if (out != 0 || fflush(stdout) != 0) {
        fail("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAIL;
    } else if (json_array_size(json_object_get(val, "graphs")) == 0) {
        if (json_array_size(json_object_get(val, "skipped")) > 0)
            fail("no measured graph could be validated: every one lacks a model (see "
                 "'skipped'; run without --skip-train)");
        else
            fail("no graph is measured on this device yet (run without --skip-measure)");
        rc = EXIT_FAIL;
    }
    json_decref(val);
    http_response_free(&resp);
    return rc;
}

/* ---- arguments ---- */

static int take_option(int argc, char **argv, int *i, const char *name, const char **val)
{
    return cli_take_option(argc, argv, i, name, val, PREFIX, "jetprof validate --help");
}

static bool int_option(const char *name, const char *value, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cli_parse_int64(value, out) || *out < lo || *out > hi) {
        usage_error("%s must be an integer in [%" PRId64 ", %" PRId64 "], got '%s'", name, lo, hi,
                    value);
        return false;
    }
    return true;
}

/* EXIT_OK with *o filled, else EXIT_USAGE (message printed) or EXIT_FAIL (no memory). */
static int parse_args(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->family = GRAPH_FAMILY_SMALL;
    o->kinds = GRAPH_FAMILY_KIND_ALL;
    o->samples = DEFAULT_SAMPLES;
    o->rounds = DEFAULT_ROUNDS;
    o->seed = DEFAULT_SEED;
    o->quality = "any";
    o->graph_files = calloc((size_t)argc + 1, sizeof *o->graph_files);
    if (!o->graph_files) {
        fail("out of memory");
        return EXIT_FAIL;
    }
    bool rounds_given = false, per_round_given = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        static const struct {
            const char *name;
            size_t offset;
        } flags[] = {
            {"--no-fixtures", offsetof(struct options, no_fixtures)},
            {"--adaptive", offsetof(struct options, adaptive)},
            {"--remeasure", offsetof(struct options, remeasure)},
            {"--skip-train", offsetof(struct options, skip_train)},
            {"--skip-measure", offsetof(struct options, skip_measure)},
            {"--json", offsetof(struct options, json_out)},
            {"--print-graphs", offsetof(struct options, print_graphs)},
        };
        bool matched = false;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0] && !matched; f++) {
            if (strcmp(a, flags[f].name) == 0) {
                *(bool *)((char *)o + flags[f].offset) = true;
                matched = true;
            }
        }
        if (matched)
            continue;
        int t;
        if ((t = take_option(argc, argv, &i, "--graphs-dir", &val)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            o->graphs_dir = val;
        } else if ((t = take_option(argc, argv, &i, "--graph", &val)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            o->graph_files[o->graph_file_count++] = val;
        } else if ((t = take_option(argc, argv, &i, "--family", &val)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            if (graph_family_parse_size(val, &o->family) != 0) {
                usage_error("--family must be none, tiny, small or medium, got '%s'", val);
                return EXIT_USAGE;
            }
        } else if ((t = take_option(argc, argv, &i, "--families", &val)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            if (graph_family_parse_kinds(val, &o->kinds) != 0) {
                usage_error("--families must be mlp, ftt, all or a comma-separated list of "
                            "them, got '%s'",
                            val);
                return EXIT_USAGE;
            }
        } else if ((t = take_option(argc, argv, &i, "--samples", &val)) != 0) {
            if (t < 0 || !int_option("--samples", val, 1, SAMPLES_MAX, &o->samples))
                return EXIT_USAGE;
        } else if ((t = take_option(argc, argv, &i, "--rounds", &val)) != 0) {
            if (t < 0 || !int_option("--rounds", val, 1, ADAPTIVE_ROUNDS_MAX, &o->rounds))
                return EXIT_USAGE;
            rounds_given = true;
        } else if ((t = take_option(argc, argv, &i, "--per-round", &val)) != 0) {
            if (t < 0 || !int_option("--per-round", val, 1, SAMPLES_MAX, &o->per_round))
                return EXIT_USAGE;
            per_round_given = true;
        } else if ((t = take_option(argc, argv, &i, "--seed", &val)) != 0) {
            if (t < 0 || !int_option("--seed", val, 0, INT64_MAX, &o->seed))
                return EXIT_USAGE;
        } else if ((t = take_option(argc, argv, &i, "--repeats", &val)) != 0) {
            if (t < 0 || !int_option("--repeats", val, 1, REPEATS_MAX, &o->repeats))
                return EXIT_USAGE;
        } else if ((t = take_option(argc, argv, &i, "--quality", &val)) != 0) {
            if (t < 0)
                return EXIT_USAGE;
            if (strcmp(val, "ok") != 0 && strcmp(val, "any") != 0) {
                usage_error("--quality must be ok or any, got '%s'", val);
                return EXIT_USAGE;
            }
            o->quality = val;
        } else if (a[0] == '-' && a[1] != '\0') {
            usage_error("unknown option '%s'", a);
            return EXIT_USAGE;
        } else {
            usage_error("validate takes options only (got '%s'; a graph file goes after "
                        "--graph)",
                        a);
            return EXIT_USAGE;
        }
    }
    if (o->graphs_dir && o->no_fixtures) {
        usage_error("--graphs-dir and --no-fixtures contradict each other");
        return EXIT_USAGE;
    }
    if ((rounds_given || per_round_given) && !o->adaptive) {
        usage_error("--rounds and --per-round are for --adaptive sweeps");
        return EXIT_USAGE;
    }
    if (o->adaptive && o->skip_train) {
        usage_error("--adaptive chooses how to sample for training; --skip-train trains "
                    "nothing");
        return EXIT_USAGE;
    }
    if (o->print_graphs && o->json_out) {
        usage_error("--print-graphs prints graphs, not the validation: drop --json");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int validate_main(const struct validate_globals *g, int argc, char **argv)
{
    struct options o;
    struct collection c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(argc, argv, &o);
    if (rc == EXIT_OK)
        rc = collect_graphs(&o, &c);
    if (rc == EXIT_OK && o.print_graphs) {
        rc = print_graphs(&c);
        goto out;
    }
    if (rc != EXIT_OK)
        goto out;
    fprintf(stderr, "validate: %zu graphs (%zu from files, %zu generated) for jetprofd at %s\n",
            c.count, c.count - c.generated, c.generated, g->base_url);
    struct vctx v = {.g = g, .o = &o, .c = &c};
    if (!o.skip_train)
        rc = ensure_models(&v);
    if (rc == EXIT_OK && !o.skip_measure)
        rc = measure_graphs(&v);
    if (rc == EXIT_OK)
        rc = show_validation(&v);
    if (rc == EXIT_OK && v.job_failed)
        rc = EXIT_FAIL;
out:
    collection_free(&c);
    free(o.graph_files);
    return rc;
}
