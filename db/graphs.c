/*
 * graphs.c - whole graphs in the store (schema 3): a graph is stored once per
 * hash and queued for measurement as a batch of kind "graphs" (one job per
 * graph, kernel DB_GRAPH_KERNEL); what GET /v1/graphs lists; and, for
 * GET /v1/validation, the newest measurement of every graph on devices like a
 * device.
 *
 * The hash is the SHA-256 of the canonical text and is checked against it on
 * insert: a graph is deduplicated by hash across batches (the stored row is
 * kept), so a hash that did not name its text would silently swap one graph for
 * another. Queueing goes through db_batch_insert_locked (batches.c), so a graph
 * job is a duplicate exactly when a kernel job would be: its config_key
 * ("graph:<hash>") measured, queued, running or done. The graph measurement's
 * link row is written by db_job_finish (measurements.c) with the measurement.
 */
#include "db/db_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/sha256.h"

#define LIMIT_MAX 10000
#define CONFIG_KEY_PREFIX DB_GRAPH_KERNEL ":"

void db_graph_clear(struct db_graph *g)
{
    if (g == NULL)
        return;
    free(g->graph_json);
    g->graph_json = NULL;
}

/* ---- insert ---- */

static bool is_hex_hash(const char *s, size_t size)
{
    if (strnlen(s, size) != SHA256_HEX_CHARS)
        return false;
    for (size_t i = 0; i < SHA256_HEX_CHARS; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool field_terminated(const char *field, size_t size)
{
    return strnlen(field, size) < size;
}

static int validate_graph(struct db *db, size_t i, const struct db_graph *g, char *err,
                          size_t errlen)
{
    if (!is_hex_hash(g->hash, sizeof g->hash)) {
        db_err(db, err, errlen, "graphs[%zu]: hash is not %d lowercase hex digits", i,
               SHA256_HEX_CHARS);
        return -1;
    }
    if (!field_terminated(g->name, sizeof g->name) ||
        !field_terminated(g->format, sizeof g->format) ||
        !field_terminated(g->dtype, sizeof g->dtype)) {
        db_err(db, err, errlen, "graph %s: name, format or dtype is not terminated", g->hash);
        return -1;
    }
    if (strcmp(g->format, "native") != 0 && strcmp(g->format, "nn-meter") != 0) {
        db_err(db, err, errlen, "graph %s: format '%s' is not native or nn-meter", g->hash,
               g->format);
        return -1;
    }
    if (g->dtype[0] == '\0') {
        db_err(db, err, errlen, "graph %s: dtype is required", g->hash);
        return -1;
    }
    if (g->batch < 1 || g->graph_nodes < 1 || g->kernels < 1 || g->levels < 1 ||
        g->levels > g->kernels) {
        db_err(db, err, errlen, "graph %s: batch (%lld), graph_nodes (%lld), kernels (%lld) and"
               " levels (%lld) must be at least 1, levels at most kernels", g->hash,
               (long long)g->batch, (long long)g->graph_nodes, (long long)g->kernels,
               (long long)g->levels);
        return -1;
    }
    if (g->graph_json == NULL || g->graph_json[0] == '\0') {
        db_err(db, err, errlen, "graph %s: graph_json is empty", g->hash);
        return -1;
    }
    char digest[SHA256_HEX_CHARS + 1];
    sha256_hex(g->graph_json, strlen(g->graph_json), digest);
    if (strcmp(digest, g->hash) != 0) {
        db_err(db, err, errlen, "graph %s: the hash is not the SHA-256 of graph_json (%s)",
               g->hash, digest);
        return -1;
    }
    /* Readers parse it back (the validation re-estimates every graph). */
    json_error_t jerr;
    json_t *v = json_loads(g->graph_json, JSON_REJECT_DUPLICATES, &jerr);
    bool parsed = v != NULL, object = parsed && json_is_object(v);
    json_decref(v);
    if (!object) {
        db_err(db, err, errlen, "graph %s: graph_json is not a JSON object%s%s", g->hash,
               parsed ? "" : ": ", parsed ? "" : jerr.text);
        return -1;
    }
    return 0;
}

/* Stores g unless its hash is stored already, and sets g->id either way.
 * Inside the caller's transaction. */
static int graph_store(struct db *db, sqlite3_stmt *ins, sqlite3_stmt *sel, struct db_graph *g,
                       const char *now, char *err, size_t errlen)
{
    int bind = sqlite3_reset(ins) | DB_BIND_FIELD(ins, 1, g->hash) |
               DB_BIND_FIELD(ins, 2, g->name) | DB_BIND_FIELD(ins, 3, g->format) |
               DB_BIND_FIELD(ins, 4, g->dtype) | sqlite3_bind_int64(ins, 5, g->batch) |
               sqlite3_bind_int64(ins, 6, g->graph_nodes) |
               sqlite3_bind_int64(ins, 7, g->kernels) | sqlite3_bind_int64(ins, 8, g->levels) |
               sqlite3_bind_text(ins, 9, g->graph_json, -1, SQLITE_STATIC) |
               sqlite3_bind_text(ins, 10, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "storing graph %s", g->hash);
        return -1;
    }
    if (sqlite3_reset(sel) != SQLITE_OK || DB_BIND_FIELD(sel, 1, g->hash) != SQLITE_OK ||
        sqlite3_step(sel) != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading back graph %s", g->hash);
        return -1;
    }
    g->id = sqlite3_column_int64(sel, 0);
    return 0;
}

/* The measurement job of graphs[i] (see db_graph_batch_insert). */
static void graph_job(struct db_job *job, const struct db_graph *g, int repeats,
                      int max_attempts)
{
    memset(job, 0, sizeof *job);
    snprintf(job->kernel, sizeof job->kernel, "%s", DB_GRAPH_KERNEL);
    snprintf(job->dtype, sizeof job->dtype, "%s", g->dtype);
    snprintf(job->params_json, sizeof job->params_json, "{\"kernels\":%lld,\"levels\":%lld}",
             (long long)g->kernels, (long long)g->levels);
    snprintf(job->config_key, sizeof job->config_key, CONFIG_KEY_PREFIX "%s", g->hash);
    job->priority = DB_PRIORITY_SWEEP;
    job->repeats = repeats;
    job->max_attempts = max_attempts;
    job->graph_id = g->id;
}

int db_graph_batch_insert(struct db *db, const char *spec_json, int repeats, int max_attempts,
                          int64_t device_id, struct db_graph *graphs, size_t n,
                          bool repeat_existing, int64_t *batch_id, int64_t *job_ids,
                          size_t *inserted, size_t *duplicates, char *err, size_t errlen)
{
    if (graphs == NULL || n == 0) {
        db_err(db, err, errlen, "graph batch: no graphs given");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (validate_graph(db, i, &graphs[i], err, errlen) != 0)
            return -1;
    struct db_job *jobs = calloc(n, sizeof *jobs);
    if (jobs == NULL) {
        db_err(db, err, errlen, "graph batch: out of memory for %zu jobs", n);
        return -1;
    }
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *ins = NULL, *sel = NULL;
    int64_t id = 0;
    size_t n_inserted = 0, n_dup = 0;

    if (db_begin(db, err, errlen) != 0) {
        free(jobs);
        return -1;
    }
    if (db_prepare(db,
                   "INSERT INTO graphs (hash, name, format, dtype, batch, graph_nodes, kernels,"
                   " levels, graph_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                   " ?10) ON CONFLICT (hash) DO NOTHING",
                   &ins, err, errlen) != 0 ||
        db_prepare(db, "SELECT id FROM graphs WHERE hash = ?1", &sel, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (graph_store(db, ins, sel, &graphs[i], now, err, errlen) != 0)
            goto fail;
        graph_job(&jobs[i], &graphs[i], repeats, max_attempts);
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    ins = sel = NULL;
    if (db_batch_insert_locked(db, "graphs", spec_json, graphs[0].dtype, repeats, device_id,
                               jobs, n, repeat_existing, &id, &n_inserted, &n_dup, err,
                               errlen) != 0)
        goto fail;
    if (db_commit(db, err, errlen) != 0)
        goto undo_ids;
    *batch_id = id;
    if (job_ids != NULL)
        for (size_t i = 0; i < n; i++)
            job_ids[i] = jobs[i].id;
    if (inserted != NULL)
        *inserted = n_inserted;
    if (duplicates != NULL)
        *duplicates = n_dup;
    free(jobs);
    return 0;

fail:
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    db_rollback(db);
undo_ids:
    for (size_t i = 0; i < n; i++)
        graphs[i].id = 0; /* nothing was written */
    free(jobs);
    return -1;
}

/* ---- read ---- */

/* The graphs columns graph_from_row reads, in its order. */
#define GRAPH_COLUMNS(t)                                                                   \
    t ".id, " t ".hash, " t ".name, " t ".format, " t ".dtype, " t ".batch, "             \
    t ".graph_nodes, " t ".kernels, " t ".levels, " t ".graph_json, " t ".created_at"
#define GRAPH_COLUMN_COUNT 11

/* Fills g from GRAPH_COLUMNS at column `first` of st; graph_json malloc'd. */
static int graph_from_row(struct db *db, sqlite3_stmt *st, int first, struct db_graph *g,
                          char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->id = sqlite3_column_int64(st, first);
    db_column_copy(st, first + 1, g->hash, sizeof g->hash);
    db_column_copy(st, first + 2, g->name, sizeof g->name);
    db_column_copy(st, first + 3, g->format, sizeof g->format);
    db_column_copy(st, first + 4, g->dtype, sizeof g->dtype);
    g->batch = sqlite3_column_int64(st, first + 5);
    g->graph_nodes = sqlite3_column_int64(st, first + 6);
    g->kernels = sqlite3_column_int64(st, first + 7);
    g->levels = sqlite3_column_int64(st, first + 8);
    const unsigned char *text = sqlite3_column_text(st, first + 9);
    g->graph_json = strdup(text != NULL ? (const char *)text : "");
    if (g->graph_json == NULL) {
        db_err(db, err, errlen, "reading graph %lld: out of memory", (long long)g->id);
        return -1;
    }
    db_column_copy(st, first + 10, g->created_at, sizeof g->created_at);
    return 0;
}

int db_graph_get(struct db *db, int64_t id, struct db_graph *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (db_prepare(db, "SELECT " GRAPH_COLUMNS("g") " FROM graphs g WHERE g.id = ?1", &st, err,
                   errlen) != 0)
        return -1;
    int result = -1;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading graph %lld", (long long)id);
        goto done;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        result = 0;
    else if (rc == SQLITE_ROW)
        result = graph_from_row(db, st, 0, out, err, errlen) == 0 ? 1 : -1;
    else
        db_err_sqlite(db, err, errlen, "reading graph %lld", (long long)id);
done:
    sqlite3_finalize(st);
    return result;
}

/* Text column col of st as a JSON string ("" for NULL). */
static json_t *text_json(sqlite3_stmt *st, int col)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    return json_string(text != NULL ? (const char *)text : "");
}

/* The "latest" object of db_graphs_json from columns first.. of st, or JSON
 * null when the graph has no measurement (the LEFT JOIN gave NULLs). */
static json_t *latest_json(sqlite3_stmt *st, int first)
{
    if (sqlite3_column_type(st, first) == SQLITE_NULL)
        return json_null();
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int c = first;
    int bad = json_object_set_new(o, "measurement_id", json_integer(sqlite3_column_int64(st, c))) |
              json_object_set_new(o, "uid", text_json(st, c + 1)) |
              json_object_set_new(o, "latency_us", json_real(sqlite3_column_double(st, c + 2))) |
              json_object_set_new(o, "energy_uj", json_real(sqlite3_column_double(st, c + 3))) |
              json_object_set_new(o, "energy_rail", text_json(st, c + 4)) |
              json_object_set_new(o, "quality", text_json(st, c + 5)) |
              json_object_set_new(o, "simulated", json_boolean(sqlite3_column_int(st, c + 6))) |
              json_object_set_new(o, "executor", text_json(st, c + 7)) |
              json_object_set_new(o, "streams", json_integer(sqlite3_column_int64(st, c + 8))) |
              json_object_set_new(o, "created_at", text_json(st, c + 9));
    if (bad != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *db_graphs_json(struct db *db, int64_t after_id, int64_t limit, char *err,
                       size_t errlen)
{
    if (limit < 1 || limit > LIMIT_MAX) {
        db_err(db, err, errlen, "graph list: limit %lld is outside [1, %d]", (long long)limit,
               LIMIT_MAX);
        return NULL;
    }
    if (after_id < 0) {
        db_err(db, err, errlen, "graph list: after_id %lld is negative", (long long)after_id);
        return NULL;
    }
    /* The graph text is left out: a listing names graphs, GET of one shows it.
     * Newest = the highest measurement id linked to the graph. */
    static const char sql[] =
        "SELECT g.id, g.hash, g.name, g.format, g.dtype, g.batch, g.graph_nodes, g.kernels,"
        " g.levels, g.created_at,"
        " (SELECT count(*) FROM graph_measurements c WHERE c.graph_id = g.id),"
        " m.id, m.uid, m.latency_us, m.energy_uj, m.energy_rail, m.quality, m.simulated,"
        " m.executor, gm.streams, m.created_at"
        " FROM graphs g"
        " LEFT JOIN graph_measurements gm ON gm.measurement_id ="
        "   (SELECT max(x.measurement_id) FROM graph_measurements x WHERE x.graph_id = g.id)"
        " LEFT JOIN measurements m ON m.id = gm.measurement_id"
        " WHERE g.id > ?1 ORDER BY g.id LIMIT ?2";
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (arr == NULL) {
        db_err(db, err, errlen, "graph list: out of memory");
        return NULL;
    }
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        goto fail;
    if ((sqlite3_bind_int64(st, 1, after_id) | sqlite3_bind_int64(st, 2, limit)) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the graph list");
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *latest = latest_json(st, 11);
        json_t *o = latest == NULL ? NULL : json_object();
        /* json_array_append_new takes o even when it fails. */
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(latest);
            db_err(db, err, errlen, "graph list: out of memory");
            goto fail;
        }
        int bad = json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0))) |
                  json_object_set_new(o, "hash", text_json(st, 1)) |
                  json_object_set_new(o, "name", text_json(st, 2)) |
                  json_object_set_new(o, "format", text_json(st, 3)) |
                  json_object_set_new(o, "dtype", text_json(st, 4)) |
                  json_object_set_new(o, "batch", json_integer(sqlite3_column_int64(st, 5))) |
                  json_object_set_new(o, "graph_nodes",
                                      json_integer(sqlite3_column_int64(st, 6))) |
                  json_object_set_new(o, "kernels", json_integer(sqlite3_column_int64(st, 7))) |
                  json_object_set_new(o, "levels", json_integer(sqlite3_column_int64(st, 8))) |
                  json_object_set_new(o, "created_at", text_json(st, 9)) |
                  json_object_set_new(o, "measurements",
                                      json_integer(sqlite3_column_int64(st, 10))) |
                  json_object_set_new(o, "latest", latest);
        if (bad != 0) {
            db_err(db, err, errlen, "graph list: out of memory");
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "listing graphs");
        goto fail;
    }
    sqlite3_finalize(st);
    return arr;

fail:
    sqlite3_finalize(st);
    json_decref(arr);
    return NULL;
}

/* ---- the validation's rows ---- */

void db_graphs_measured_free(struct db_graph_measured *rows, size_t count)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        db_graph_clear(&rows[i].graph);
    free(rows);
}

int db_graphs_measured(struct db *db, int64_t device_id, const char *quality,
                       struct db_graph_measured **out, size_t *count, char *err,
                       size_t errlen)
{
    *out = NULL;
    *count = 0;
    /* Per graph, the highest measurement id among its measurements on devices
     * like ?1 (of quality ?2 unless NULL); then that measurement's values. */
    static const char sql[] =
        "WITH newest AS (SELECT gm.graph_id AS graph_id, max(gm.measurement_id) AS mid"
        "   FROM graph_measurements gm JOIN measurements m ON m.id = gm.measurement_id"
        "   WHERE m.device_id IN " DB_LIKE_DEVICES("?1")
        "   AND (?2 IS NULL OR m.quality = ?2) GROUP BY gm.graph_id)"
        " SELECT " GRAPH_COLUMNS("g") ","
        " m.id, m.uid, m.latency_us, m.energy_uj, m.power_mw, m.energy_rail, m.quality,"
        " m.executor, m.simulated, gm.streams, m.created_at"
        " FROM newest n JOIN graphs g ON g.id = n.graph_id"
        " JOIN measurements m ON m.id = n.mid"
        " JOIN graph_measurements gm ON gm.measurement_id = n.mid"
        " ORDER BY g.id";
    sqlite3_stmt *st = NULL;
    struct db_graph_measured *arr = NULL;
    size_t n = 0, cap = 0;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    int bind = db_bind_id_quality(st, device_id, quality);
    if (bind != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the measured graph query");
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, n, sizeof *arr) != 0) {
            db_err(db, err, errlen, "reading measured graphs: out of memory");
            goto fail;
        }
        struct db_graph_measured *r = &arr[n];
        memset(r, 0, sizeof *r);
        n++; /* counted before graph_json is filled, so the free below covers it */
        if (graph_from_row(db, st, 0, &r->graph, err, errlen) != 0)
            goto fail;
        int c = GRAPH_COLUMN_COUNT;
        r->measurement_id = sqlite3_column_int64(st, c);
        db_column_copy(st, c + 1, r->uid, sizeof r->uid);
        r->latency_us = sqlite3_column_double(st, c + 2);
        r->energy_uj = sqlite3_column_double(st, c + 3);
        r->power_mw = sqlite3_column_double(st, c + 4);
        db_column_copy(st, c + 5, r->energy_rail, sizeof r->energy_rail);
        db_column_copy(st, c + 6, r->quality, sizeof r->quality);
        db_column_copy(st, c + 7, r->executor, sizeof r->executor);
        r->simulated = sqlite3_column_int(st, c + 8) != 0;
        r->streams = (unsigned)sqlite3_column_int64(st, c + 9);
        db_column_copy(st, c + 10, r->created_at, sizeof r->created_at);
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading measured graphs");
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    db_graphs_measured_free(arr, n);
    return -1;
}
