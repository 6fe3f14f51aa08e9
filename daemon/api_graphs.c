/*
 * api_graphs.c - whole-graph measurement: POST /v1/graphs/measure queues one
 * job per graph, GET /v1/graphs lists the stored graphs and their newest
 * measurement.
 *
 * A graph is checked here exactly as POST /v1/estimate checks it (the graph
 * module's 422 naming the node, or 400 when it is not a graph at all), then
 * planned without merging - the kernels a real run executes - and checked
 * against the executor: at most EXEC_PLAN_MAX_KERNELS kernels, and the memory
 * of all of them at once against what the executor has free now. It is stored
 * once per hash (SHA-256 of its canonical text: compact, keys sorted), so the
 * same network sent twice is one graph, and - unless repeat_existing - one
 * measurement: a graph already measured, queued or running is answered with
 * job_id null. The batch row stores the hashes, not the graphs (they are in
 * the graphs table). The runner measures each job with measure_run_plan.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/sha256.h"
#include "../cudakern/sweep.h"
#include "../predict/graph.h"
#include "api.h"

#define GRAPHS_MEASURE_MAX 100
#define GRAPHS_LIST_DEFAULT 100
#define GRAPHS_LIST_MAX 1000

static const char measure_members[] = "graph, graphs, repeats, repeat_existing";

/* The request's graphs, checked and ready to store: each graph_json is the
 * canonical text, malloc'd here (db_graph_batch_insert borrows it). */
static void rows_free(struct db_graph *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        db_graph_clear(&rows[i]);
    free(rows);
}

/* "graphs[3]" or "graph", for messages. */
static void graph_where(char *buf, size_t len, bool batch, size_t i)
{
    if (batch)
        snprintf(buf, len, "graphs[%zu]", i);
    else
        snprintf(buf, len, "graph");
}

/* The memory all of the plan's kernels need at once against what the executor
 * has free now: 0, or -1 with e (422). The runner checks again before it
 * prepares; a figure that cannot be read is left to it. */
static int check_plan_memory(struct app *app, const struct exec_plan *plan, const char *where,
                             struct api_error *e)
{
    if (!app->exec)
        return 0;
    uint64_t free_bytes = 0;
    if (exec_memory_free(app->exec, &free_bytes) != 0)
        return 0;
    uint64_t needed = exec_plan_memory_needed(app->exec, plan);
    if (needed <= free_bytes)
        return 0;
    api_error_set(e, 422,
                  "%s: its %zu kernels need %" PRIu64 " bytes (%.1f MiB) at once on the %s "
                  "executor, which has %" PRIu64 " bytes (%.1f MiB) free now",
                  where, plan->count, needed, (double)needed / 1048576.0, app->exec_info.name,
                  free_bytes, (double)free_bytes / 1048576.0);
    api_error_param(e, where);
    return -1;
}

/* graph -> row: planned, checked, hashed. 0, or -1 having responded. */
static int check_graph(struct api_request *req, struct api_response *res, json_t *graph,
                       bool batch, size_t index, struct db_graph *row)
{
    struct app *app = req->app;
    struct api_error e;
    char where[32];
    graph_where(where, sizeof where, batch, index);

    struct graph_options gopt = {.merge = false, .max_nodes = api_max_graph_nodes(app)};
    struct graph_plan plan;
    struct graph_error ge;
    if (graph_plan_build(graph, &gopt, &plan, &ge) != 0) {
        api_respond_graph_error(req, res, &ge, batch ? (long)index : -1);
        return -1;
    }
    int rc = -1;
    struct exec_plan_kernel *kernels = NULL;
    if (plan.count == 0) {
        api_error_set(&e, 422, "%s: the graph has no kernels to run (only inputs, dropout or "
                               "identity nodes)", where);
        api_error_param(&e, where);
        goto fail;
    }
    if (plan.count > EXEC_PLAN_MAX_KERNELS) {
        api_error_set(&e, 422,
                      "%s: the graph runs %zu kernels after fusion; a measurement runs at most "
                      "%u",
                      where, plan.count, EXEC_PLAN_MAX_KERNELS);
        api_error_param(&e, where);
        goto fail;
    }
    unsigned levels = 0;
    if (graph_plan_exec_kernels(&plan, &kernels, &levels) != 0) {
        api_error_set(&e, 500, "out of memory planning %s", where);
        goto fail;
    }
    struct exec_plan ep = {.count = plan.count, .kernels = kernels};
    char why[256];
    if (exec_plan_check(&ep, why, sizeof why) != 0) {
        api_error_set(&e, 422, "%s: %s", where, why);
        api_error_param(&e, where);
        goto fail;
    }
    if (check_plan_memory(app, &ep, where, &e) != 0)
        goto fail;

    row->graph_json = json_dumps(graph, JSON_COMPACT | JSON_SORT_KEYS);
    if (!row->graph_json) {
        api_error_set(&e, 500, "out of memory storing %s", where);
        goto fail;
    }
    sha256_hex(row->graph_json, strlen(row->graph_json), row->hash);
    json_t *name = json_is_object(graph) ? json_object_get(graph, "name") : NULL;
    if (json_is_string(name))
        text_quote(json_string_value(name), row->name, sizeof row->name);
    snprintf(row->format, sizeof row->format, "%s", plan.format);
    snprintf(row->dtype, sizeof row->dtype, "%s", dtype_name(plan.dtype));
    row->batch = plan.batch;
    row->graph_nodes = (int64_t)plan.graph_nodes;
    row->kernels = (int64_t)plan.count;
    row->levels = levels;
    rc = 0;
fail:
    free(kernels);
    graph_plan_free(&plan);
    if (rc != 0)
        api_respond_error(res, &e, req->path);
    return rc;
}

/* The request's members: 0 with the graphs array (a new reference) and the
 * options, or -1 with e. */
static int parse_body(json_t *body, json_t **graphs, bool *batch, int *repeats,
                      bool *repeat_existing, struct api_error *e)
{
    *graphs = NULL;
    *repeats = 0;
    *repeat_existing = false;
    if (!json_is_object(body)) {
        api_error_set(e, 400, "the body must be a JSON object: {\"graph\": {...}} or "
                              "{\"graphs\": [...]}");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "graph") && strcmp(key, "graphs") && strcmp(key, "repeats") &&
            strcmp(key, "repeat_existing")) {
            char q[64];
            text_quote(key, q, sizeof q);
            api_error_set(e, 422, "unknown member '%s'; accepted: %s", q, measure_members);
            api_error_param(e, q);
            return -1;
        }
    }
    json_t *one = json_object_get(body, "graph");
    json_t *many = json_object_get(body, "graphs");
    if ((one != NULL) == (many != NULL)) {
        api_error_set(e, 422, one ? "give either 'graph' or 'graphs', not both"
                                  : "missing 'graph' (one graph) or 'graphs' (a list of graphs)");
        api_error_param(e, one ? "graphs" : "graph");
        return -1;
    }
    if (many) {
        size_t n = json_is_array(many) ? json_array_size(many) : 0;
        if (!json_is_array(many) || n == 0 || n > GRAPHS_MEASURE_MAX) {
            api_error_set(e, 422, "member 'graphs' must be an array of 1 to %d graphs%s",
                          GRAPHS_MEASURE_MAX, json_is_array(many) ? "" : " (it is not an array)");
            api_error_param(e, "graphs");
            return -1;
        }
        *graphs = json_incref(many);
        *batch = true;
    } else {
        if (!json_is_object(one)) {
            api_error_set(e, 422, "member 'graph' must be a graph object (native or nn-Meter IR)");
            api_error_param(e, "graph");
            return -1;
        }
        *graphs = json_array();
        if (!*graphs || json_array_append(*graphs, one) != 0) {
            json_decref(*graphs);
            *graphs = NULL;
            api_error_set(e, 500, "out of memory");
            return -1;
        }
        *batch = false;
    }
    json_t *rep = json_object_get(body, "repeats");
    if (rep) {
        json_int_t r = json_is_integer(rep) ? json_integer_value(rep) : 0;
        if (!json_is_integer(rep) || r < SWEEP_REPEATS_MIN || r > SWEEP_REPEATS_MAX) {
            api_error_set(e, 422, "member 'repeats' must be an integer in [%d, %d]",
                          SWEEP_REPEATS_MIN, SWEEP_REPEATS_MAX);
            api_error_param(e, "repeats");
            goto fail;
        }
        *repeats = (int)r;
    }
    json_t *again = json_object_get(body, "repeat_existing");
    if (again) {
        if (!json_is_boolean(again)) {
            api_error_set(e, 422, "member 'repeat_existing' must be true or false");
            api_error_param(e, "repeat_existing");
            goto fail;
        }
        *repeat_existing = json_is_true(again);
    }
    return 0;
fail:
    json_decref(*graphs);
    *graphs = NULL;
    return -1;
}

/* What the batch row keeps of the request: the hashes and the options. */
static char *batch_spec(const struct db_graph *rows, size_t n, int repeats,
                        bool repeat_existing)
{
    json_t *spec = json_object();
    json_t *hashes = json_array();
    if (!spec || !hashes) {
        json_decref(spec);
        json_decref(hashes);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hashes, json_string(rows[i].hash));
    json_object_set_new(spec, "graphs", hashes);
    if (repeats > 0)
        json_object_set_new(spec, "repeats", json_integer(repeats));
    json_object_set_new(spec, "repeat_existing", json_boolean(repeat_existing));
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    return text;
}

void api_graphs_measure(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    json_t *graphs;
    bool batch, repeat_existing;
    int repeats;
    if (parse_body(req->body, &graphs, &batch, &repeats, &repeat_existing, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }
    size_t n = json_array_size(graphs);
    struct db_graph *rows = calloc(n, sizeof *rows);
    int64_t *job_ids = calloc(n, sizeof *job_ids);
    char *spec = NULL;
    if (!rows || !job_ids) {
        api_error_set(&e, 500, "out of memory for %zu graphs", n);
        api_respond_error(res, &e, req->path);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (check_graph(req, res, json_array_get(graphs, i), batch, i, &rows[i]) != 0)
            goto out;

    spec = batch_spec(rows, n, repeats, repeat_existing);
    if (!spec) {
        api_error_set(&e, 500, "out of memory queuing %zu graphs", n);
        api_respond_error(res, &e, req->path);
        goto out;
    }

    pthread_mutex_lock(&api_device_lock);
    int64_t device_id = app->device_id;
    pthread_mutex_unlock(&api_device_lock);
    int max_attempts = app->cfg ? (int)app->cfg->max_attempts : 3;

    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
        goto out;
    }
    char err[512] = "";
    int64_t batch_id = 0;
    size_t inserted = 0, duplicates = 0;
    int rc = db_graph_batch_insert(db, spec, repeats, max_attempts > 0 ? max_attempts : 1,
                                   device_id, rows, n, repeat_existing, &batch_id, job_ids,
                                   &inserted, &duplicates, err, sizeof err);
    db_pool_release(app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "cannot queue the graphs: %s", err);
        api_respond_error(res, &e, req->path);
        goto out;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        const struct db_graph *g = &rows[i];
        json_t *entry = json_pack("{s:I,s:s,s:s,s:I,s:I,s:o}", "index", (json_int_t)i, "hash",
                                  g->hash, "name", g->name, "kernels", (json_int_t)g->kernels,
                                  "levels", (json_int_t)g->levels, "job_id",
                                  job_ids[i] > 0 ? json_integer(job_ids[i]) : json_null());
        if (!entry || json_array_append_new(list, entry) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    log_info("http", "batch %" PRId64 " queued: %zu whole-graph jobs, %zu duplicates skipped",
             batch_id, inserted, duplicates);
    if (app->runner && inserted > 0)
        runner_wake(app->runner);
    api_respond_json(res, 202,
                     list ? json_pack("{s:I,s:I,s:I,s:o}", "batch_id", (json_int_t)batch_id,
                                      "inserted", (json_int_t)inserted, "duplicates",
                                      (json_int_t)duplicates, "graphs", list)
                          : NULL);
    snprintf(res->location, sizeof res->location, "/v1/batches/%" PRId64, batch_id);
out:
    json_decref(graphs);
    rows_free(rows, n);
    free(job_ids);
    free(spec);
}

/* ---- GET /v1/graphs ---- */

void api_graphs_list(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    int64_t after_id = 0, limit = GRAPHS_LIST_DEFAULT;
    if (req->query_overflow) {
        api_error_set(&e, 400, "too many query parameters (at most %d)", API_MAX_QUERY_PARAMS);
        api_respond_error(res, &e, req->path);
        return;
    }
    for (size_t i = 0; i < req->query_count; i++) {
        const char *key = req->query[i].key ? req->query[i].key : "";
        const char *val = req->query[i].value ? req->query[i].value : "";
        char k[64], v[64];
        text_quote(key, k, sizeof k);
        text_quote(val, v, sizeof v);
        int64_t x;
        if (strcmp(key, "after_id") == 0) {
            if (api_parse_int64(val, &x) != 0 || x < 0) {
                api_error_set(&e, 400, "query parameter 'after_id' = '%s': expected an integer "
                                       ">= 0", v);
                api_error_param(&e, "after_id");
                api_respond_error(res, &e, req->path);
                return;
            }
            after_id = x;
        } else if (strcmp(key, "limit") == 0) {
            if (api_parse_int64(val, &x) != 0 || x < 1 || x > GRAPHS_LIST_MAX) {
                api_error_set(&e, 400, "query parameter 'limit' = '%s': expected an integer in "
                                       "[1, %d]", v, GRAPHS_LIST_MAX);
                api_error_param(&e, "limit");
                api_respond_error(res, &e, req->path);
                return;
            }
            limit = x;
        } else {
            api_error_set(&e, 400, "unknown query parameter '%s'; accepted: after_id, limit", k);
            api_error_param(&e, k);
            api_respond_error(res, &e, req->path);
            return;
        }
    }
    struct db *db = db_pool_acquire(req->app->pool);
    if (!db) {
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
        return;
    }
    char err[512] = "";
    json_t *list = db_graphs_json(db, after_id, limit, err, sizeof err);
    db_pool_release(req->app->pool, db);
    if (!list) {
        api_error_set(&e, 500, "reading the graphs: %s", err);
        api_respond_error(res, &e, req->path);
        return;
    }
    api_respond_json(res, 200, json_pack("{s:o}", "graphs", list));
}
