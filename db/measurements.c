/*
 * measurements.c - storing a finished job's measurement and reading the dataset
 * back: the Measurement JSON object shared by POST /v1/measure and
 * GET /v1/measurements, filtered walks over the table, and the CSV export.
 *
 * db_job_finish is the "nothing lost" invariant of db.h: the measurement row, its
 * rail readings and the job's change to done commit in one transaction, or none
 * of it does and the job stays running (db_jobs_recover requeues it at start).
 *
 * The JSON object is built from two column tables (measurement_columns,
 * rail_columns): the SELECT list and the JSON members come from the same rows,
 * so they cannot drift apart. The CSV export is built from that JSON, so both
 * formats always agree. A whole-graph measurement (schema 3) is a row like any
 * other, written with its graph_measurements link in the same transaction; its
 * JSON gains a "graph" member (the CSV needs nothing: its params, kernels and
 * levels, are integers like any kernel's).
 */
#include "db/db_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"

#define LIMIT_MAX 10000

/* ---- the column tables ---- */

enum col_kind {
    COL_INT,      /* INTEGER -> JSON integer */
    COL_INT_NULL, /* INTEGER or NULL -> integer or null */
    COL_REAL,     /* REAL -> JSON real (null if SQLite holds NULL) */
    COL_TEXT,     /* TEXT -> JSON string */
    COL_TEXT_NULL,/* TEXT or NULL -> string or null */
    COL_BOOL,     /* 0/1 -> JSON boolean */
    COL_OBJECT,   /* TEXT holding a JSON object -> that object */
    COL_ARRAY,    /* TEXT holding a JSON array -> that array */
    COL_RAILS,    /* not a column: the rail_readings rows go here */
};

struct col {
    const char *column; /* NULL for COL_RAILS */
    const char *member; /* JSON member name */
    enum col_kind kind;
};

/* In the member order of the Measurement object (team brief). */
static const struct col measurement_columns[] = {
    {"id", "id", COL_INT},
    {"uid", "uid", COL_TEXT},
    {"job_id", "job_id", COL_INT_NULL},
    {"device_id", "device_id", COL_INT_NULL},
    /* The device's identity travels with every row, so datasets from many
     * boards merge without confusion (device ids are per database). */
    {"(SELECT fingerprint FROM devices WHERE devices.id = measurements.device_id)",
     "fingerprint", COL_TEXT_NULL},
    {"created_at", "created_at", COL_TEXT},
    {"kernel", "kernel", COL_TEXT},
    {"dtype", "dtype", COL_TEXT},
    {"params_json", "params", COL_OBJECT},
    {"config_key", "config_key", COL_TEXT},
    {"executor", "executor", COL_TEXT},
    {"sensor", "sensor", COL_TEXT},
    {"simulated", "simulated", COL_BOOL},
    {"launches", "launches", COL_INT},
    {"repeats", "repeats", COL_INT},
    {"window_ms", "window_ms", COL_REAL},
    {"settle_ms", "settle_ms", COL_REAL},
    {"latency_us", "latency_us", COL_REAL},
    {"latency_us_min", "latency_us_min", COL_REAL},
    {"latency_us_max", "latency_us_max", COL_REAL},
    {"latency_cv", "latency_cv", COL_REAL},
    {"power_mw", "power_mw", COL_REAL},
    {"energy_rail", "energy_rail", COL_TEXT},
    {"energy_uj", "energy_uj", COL_REAL},
    {"dynamic_energy_uj", "dynamic_energy_uj", COL_REAL},
    {"quality", "quality", COL_TEXT},
    {"quality_reasons", "quality_reasons", COL_ARRAY},
    {"remeasured", "remeasured", COL_BOOL},
    {NULL, "rails", COL_RAILS},
    {"device_state_json", "device_state", COL_OBJECT},
};
#define MEASUREMENT_COLUMN_COUNT (sizeof measurement_columns / sizeof measurement_columns[0])

static const struct col rail_columns[] = {
    {"rail", "rail", COL_TEXT},
    {"is_board_input", "board_input", COL_BOOL},
    {"power_mw", "power_mw", COL_REAL},
    {"idle_power_mw", "idle_power_mw", COL_REAL},
    {"dynamic_power_mw", "dynamic_power_mw", COL_REAL},
    {"energy_uj", "energy_uj", COL_REAL},
    {"dynamic_energy_uj", "dynamic_energy_uj", COL_REAL},
    {"power_cv", "power_cv", COL_REAL},
    {"samples", "samples", COL_INT},
    {"expected_samples", "expected_samples", COL_REAL},
    {"sample_ratio", "sample_ratio", COL_REAL},
};
#define RAIL_COLUMN_COUNT (sizeof rail_columns / sizeof rail_columns[0])

/* "a, b, c" from a column table into buf. */
static void column_list(const struct col *cols, size_t n, char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (cols[i].column == NULL)
            continue;
        int w = snprintf(buf + used, buflen - used, "%s%s", used ? ", " : "", cols[i].column);
        if (w < 0 || (size_t)w >= buflen - used)
            abort(); /* the tables are static: a too-small buffer is a build bug */
        used += (size_t)w;
    }
}

/* ---- validation ---- */

static int check_json_text(struct db *db, const char *text, size_t size, bool want_object,
                           const char *what, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, strnlen(text, size), JSON_REJECT_DUPLICATES, &jerr);
    bool ok = v != NULL && (want_object ? json_is_object(v) : json_is_array(v));
    if (ok && !want_object) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (!json_is_string(item))
                ok = false;
        }
    }
    json_decref(v);
    if (!ok) {
        db_err(db, err, errlen, "measurement: %s is not a JSON %s%s%s", what,
               want_object ? "object" : "array of strings", v == NULL ? ": " : "",
               v == NULL ? jerr.text : "");
        return -1;
    }
    return 0;
}

static bool field_empty(const char *field)
{
    return field[0] == '\0';
}

static int check_finite(struct db *db, const char *name, double v, char *err, size_t errlen)
{
    if (!isfinite(v)) {
        db_err(db, err, errlen, "measurement: %s is not a finite number", name);
        return -1;
    }
    return 0;
}

static int validate_measurement(struct db *db, int64_t job_id, const struct db_measurement *m,
                                char *err, size_t errlen)
{
    if (m->job_id != 0 && m->job_id != job_id) {
        db_err(db, err, errlen, "measurement says job %lld but is being stored for job %lld",
               (long long)m->job_id, (long long)job_id);
        return -1;
    }
    if (field_empty(m->kernel) || field_empty(m->dtype) || field_empty(m->config_key) ||
        field_empty(m->executor) || field_empty(m->sensor) || field_empty(m->energy_rail)) {
        db_err(db, err, errlen, "measurement for job %lld: kernel, dtype, config_key, executor,"
               " sensor and energy_rail are required", (long long)job_id);
        return -1;
    }
    if (strcmp(m->quality, "ok") != 0 && strcmp(m->quality, "suspect") != 0) {
        db_err(db, err, errlen, "measurement for job %lld: quality '%.*s' is not ok or suspect",
               (long long)job_id, (int)strnlen(m->quality, sizeof m->quality), m->quality);
        return -1;
    }
    if (m->launches < 1 || m->repeats < 1) {
        db_err(db, err, errlen, "measurement for job %lld: launches (%" PRId64 ") and repeats"
               " (%d) must be at least 1", (long long)job_id, m->launches, m->repeats);
        return -1;
    }
    if (m->device_id < 0) {
        db_err(db, err, errlen, "measurement for job %lld: device_id %" PRId64 " is negative",
               (long long)job_id, m->device_id);
        return -1;
    }
    /* A whole-graph measurement, and only one, names its graph: its JSON and
     * the validation read the graph through the link row. */
    bool graph_kernel = strncmp(m->kernel, DB_GRAPH_KERNEL, sizeof m->kernel) == 0;
    if (m->graph_id < 0 || graph_kernel != (m->graph_id > 0)) {
        db_err(db, err, errlen, "measurement for job %lld: %s", (long long)job_id,
               graph_kernel ? "a " DB_GRAPH_KERNEL " measurement needs a graph_id"
                            : "only a " DB_GRAPH_KERNEL " measurement has a graph_id");
        return -1;
    }
    if (graph_kernel && m->graph_streams < 1) {
        db_err(db, err, errlen, "measurement for job %lld: graph_streams must be at least 1",
               (long long)job_id);
        return -1;
    }
    if (check_json_text(db, m->params_json, sizeof m->params_json, true, "params_json", err,
                        errlen) != 0)
        return -1;
    if (!field_empty(m->quality_reasons) &&
        check_json_text(db, m->quality_reasons, sizeof m->quality_reasons, false,
                        "quality_reasons", err, errlen) != 0)
        return -1;
    if (!field_empty(m->device_state_json) &&
        check_json_text(db, m->device_state_json, sizeof m->device_state_json, true,
                        "device_state_json", err, errlen) != 0)
        return -1;

    const struct {
        const char *name;
        double v;
    } numbers[] = {
        {"latency_us", m->latency_us},       {"latency_us_min", m->latency_us_min},
        {"latency_us_max", m->latency_us_max}, {"latency_cv", m->latency_cv},
        {"window_ms", m->window_ms},         {"settle_ms", m->settle_ms},
        {"energy_uj", m->energy_uj},         {"dynamic_energy_uj", m->dynamic_energy_uj},
        {"power_mw", m->power_mw},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (check_finite(db, numbers[i].name, numbers[i].v, err, errlen) != 0)
            return -1;

    if (m->rail_count > DB_MAX_RAILS) {
        db_err(db, err, errlen, "measurement for job %lld: %u rails, at most %d",
               (long long)job_id, m->rail_count, DB_MAX_RAILS);
        return -1;
    }
    for (unsigned r = 0; r < m->rail_count; r++) {
        const struct db_rail_reading *rr = &m->rails[r];
        if (field_empty(rr->rail)) {
            db_err(db, err, errlen, "measurement for job %lld: rail %u has no name",
                   (long long)job_id, r);
            return -1;
        }
        for (unsigned q = 0; q < r; q++) {
            if (strncmp(m->rails[q].rail, rr->rail, DB_RAIL_NAME_MAX) == 0) {
                db_err(db, err, errlen, "measurement for job %lld: rail '%.*s' appears twice",
                       (long long)job_id, DB_RAIL_NAME_MAX, rr->rail);
                return -1;
            }
        }
        const double values[] = {rr->power_mw,          rr->idle_power_mw, rr->dynamic_power_mw,
                                 rr->energy_uj,         rr->dynamic_energy_uj, rr->power_cv,
                                 rr->expected_samples,  rr->sample_ratio};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            if (!isfinite(values[i])) {
                db_err(db, err, errlen, "measurement for job %lld: rail '%.*s' has a value that"
                       " is not a finite number", (long long)job_id, DB_RAIL_NAME_MAX, rr->rail);
                return -1;
            }
        }
        if (rr->samples < 0) {
            db_err(db, err, errlen, "measurement for job %lld: rail '%.*s' has %" PRId64
                   " samples", (long long)job_id, DB_RAIL_NAME_MAX, rr->rail, rr->samples);
            return -1;
        }
    }
    return 0;
}

/* ---- uid ---- */

/* RFC 4122 version 4: 122 random bits from the kernel's CSPRNG. */
static int uuid_v4(char out[40])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    snprintf(out, 40,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

/* ---- finish ---- */

static const char insert_measurement_sql[] =
    "INSERT INTO measurements (uid, job_id, device_id, kernel, dtype, params_json, config_key,"
    " executor, sensor, simulated, launches, repeats, latency_us, latency_us_min,"
    " latency_us_max, latency_cv, window_ms, settle_ms, energy_rail, energy_uj,"
    " dynamic_energy_uj, power_mw, quality, quality_reasons, remeasured, device_state_json,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)";

static const char insert_rail_sql[] =
    "INSERT INTO rail_readings (measurement_id, rail, is_board_input, power_mw, idle_power_mw,"
    " dynamic_power_mw, energy_uj, dynamic_energy_uj, power_cv, samples, expected_samples,"
    " sample_ratio) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

static int bind_measurement(sqlite3_stmt *st, int64_t job_id, const struct db_measurement *m)
{
    const char *reasons = field_empty(m->quality_reasons) ? "[]" : m->quality_reasons;
    const char *state = field_empty(m->device_state_json) ? "{}" : m->device_state_json;
    return DB_BIND_FIELD(st, 1, m->uid) | sqlite3_bind_int64(st, 2, job_id) |
           (m->device_id > 0 ? sqlite3_bind_int64(st, 3, m->device_id)
                             : sqlite3_bind_null(st, 3)) |
           DB_BIND_FIELD(st, 4, m->kernel) | DB_BIND_FIELD(st, 5, m->dtype) |
           DB_BIND_FIELD(st, 6, m->params_json) | DB_BIND_FIELD(st, 7, m->config_key) |
           DB_BIND_FIELD(st, 8, m->executor) | DB_BIND_FIELD(st, 9, m->sensor) |
           sqlite3_bind_int(st, 10, m->simulated ? 1 : 0) |
           sqlite3_bind_int64(st, 11, m->launches) | sqlite3_bind_int(st, 12, m->repeats) |
           sqlite3_bind_double(st, 13, m->latency_us) |
           sqlite3_bind_double(st, 14, m->latency_us_min) |
           sqlite3_bind_double(st, 15, m->latency_us_max) |
           sqlite3_bind_double(st, 16, m->latency_cv) |
           sqlite3_bind_double(st, 17, m->window_ms) |
           sqlite3_bind_double(st, 18, m->settle_ms) | DB_BIND_FIELD(st, 19, m->energy_rail) |
           sqlite3_bind_double(st, 20, m->energy_uj) |
           sqlite3_bind_double(st, 21, m->dynamic_energy_uj) |
           sqlite3_bind_double(st, 22, m->power_mw) | DB_BIND_FIELD(st, 23, m->quality) |
           db_bind_field(st, 24, reasons, sizeof m->quality_reasons) |
           sqlite3_bind_int(st, 25, m->remeasured ? 1 : 0) |
           db_bind_field(st, 26, state, sizeof m->device_state_json) |
           DB_BIND_FIELD(st, 27, m->created_at);
}

static int bind_rail(sqlite3_stmt *st, int64_t measurement_id, const struct db_rail_reading *r)
{
    return sqlite3_bind_int64(st, 1, measurement_id) | DB_BIND_FIELD(st, 2, r->rail) |
           sqlite3_bind_int(st, 3, r->is_board_input ? 1 : 0) |
           sqlite3_bind_double(st, 4, r->power_mw) |
           sqlite3_bind_double(st, 5, r->idle_power_mw) |
           sqlite3_bind_double(st, 6, r->dynamic_power_mw) |
           sqlite3_bind_double(st, 7, r->energy_uj) |
           sqlite3_bind_double(st, 8, r->dynamic_energy_uj) |
           sqlite3_bind_double(st, 9, r->power_cv) | sqlite3_bind_int64(st, 10, r->samples) |
           sqlite3_bind_double(st, 11, r->expected_samples) |
           sqlite3_bind_double(st, 12, r->sample_ratio);
}

int db_job_finish(struct db *db, int64_t job_id, struct db_measurement *m,
                  int64_t *measurement_id, char *err, size_t errlen)
{
    if (validate_measurement(db, job_id, m, err, errlen) != 0)
        return -1;
    if (field_empty(m->uid) && uuid_v4(m->uid) != 0) {
        db_err(db, err, errlen, "job %lld: getrandom for the measurement uid: %s",
               (long long)job_id, strerror(errno));
        return -1;
    }
    if (field_empty(m->created_at))
        clock_utc_iso8601(m->created_at, sizeof m->created_at);
    char now[32];
    clock_utc_iso8601(now, sizeof now);

    sqlite3_stmt *check = NULL, *ins = NULL, *rail = NULL, *done = NULL, *link = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;

    if (db_prepare(db, "SELECT state, graph_id FROM jobs WHERE id = ?1", &check, err,
                   errlen) != 0)
        goto fail;
    if (sqlite3_bind_int64(check, 1, job_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "finishing job %lld", (long long)job_id);
        goto fail;
    }
    int rc = sqlite3_step(check);
    if (rc == SQLITE_DONE) {
        db_err(db, err, errlen, "cannot store a measurement for job %lld: no such job",
               (long long)job_id);
        goto fail;
    }
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading job %lld", (long long)job_id);
        goto fail;
    }
    const unsigned char *state = sqlite3_column_text(check, 0);
    if (state == NULL || strcmp((const char *)state, "running") != 0) {
        db_err(db, err, errlen, "cannot store a measurement for job %lld: it is %s, not running",
               (long long)job_id, state ? (const char *)state : "NULL");
        goto fail;
    }
    int64_t job_graph = sqlite3_column_int64(check, 1); /* NULL: a kernel job, 0 */
    if (job_graph != m->graph_id) {
        db_err(db, err, errlen, "cannot store a measurement of graph %lld for job %lld: the job"
               " measures graph %lld", (long long)m->graph_id, (long long)job_id,
               (long long)job_graph);
        goto fail;
    }

    if (db_prepare(db, insert_measurement_sql, &ins, err, errlen) != 0)
        goto fail;
    if (bind_measurement(ins, job_id, m) != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "storing the measurement of job %lld", (long long)job_id);
        goto fail;
    }
    int64_t id = sqlite3_last_insert_rowid(db->conn);

    if (m->rail_count > 0 && db_prepare(db, insert_rail_sql, &rail, err, errlen) != 0)
        goto fail;
    for (unsigned r = 0; r < m->rail_count; r++) {
        if (sqlite3_reset(rail) != SQLITE_OK || bind_rail(rail, id, &m->rails[r]) != SQLITE_OK ||
            sqlite3_step(rail) != SQLITE_DONE) {
            db_err_sqlite(db, err, errlen, "storing rail '%.*s' of job %lld", DB_RAIL_NAME_MAX,
                          m->rails[r].rail, (long long)job_id);
            goto fail;
        }
    }

    if (m->graph_id > 0) {
        if (db_prepare(db,
                       "INSERT INTO graph_measurements (measurement_id, graph_id, streams)"
                       " VALUES (?1, ?2, ?3)",
                       &link, err, errlen) != 0)
            goto fail;
        if ((sqlite3_bind_int64(link, 1, id) | sqlite3_bind_int64(link, 2, m->graph_id) |
             sqlite3_bind_int64(link, 3, (sqlite3_int64)m->graph_streams)) != SQLITE_OK ||
            sqlite3_step(link) != SQLITE_DONE) {
            db_err_sqlite(db, err, errlen, "linking the measurement of job %lld to graph %lld",
                          (long long)job_id, (long long)m->graph_id);
            goto fail;
        }
    }

    if (db_prepare(db,
                   "UPDATE jobs SET state = 'done', measurement_id = ?2, finished_at = ?3,"
                   " error = '' WHERE id = ?1 AND state = 'running'",
                   &done, err, errlen) != 0)
        goto fail;
    if ((sqlite3_bind_int64(done, 1, job_id) | sqlite3_bind_int64(done, 2, id) |
         sqlite3_bind_text(done, 3, now, -1, SQLITE_TRANSIENT)) != SQLITE_OK ||
        sqlite3_step(done) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "marking job %lld done", (long long)job_id);
        goto fail;
    }
    if (sqlite3_changes(db->conn) != 1) {
        db_err(db, err, errlen, "job %lld stopped running while its measurement was stored",
               (long long)job_id);
        goto fail;
    }
    sqlite3_finalize(check);
    sqlite3_finalize(ins);
    sqlite3_finalize(rail);
    sqlite3_finalize(done);
    sqlite3_finalize(link);
    if (db_commit(db, err, errlen) != 0)
        return -1;
    m->job_id = job_id;
    if (measurement_id != NULL)
        *measurement_id = id;
    return 0;

fail:
    sqlite3_finalize(check);
    sqlite3_finalize(ins);
    sqlite3_finalize(rail);
    sqlite3_finalize(done);
    sqlite3_finalize(link);
    db_rollback(db);
    return -1;
}

/* ---- JSON ---- */

/* Adds column idx of st to obj as cols->member. 0, or -1 with err. */
static int put_column(struct db *db, json_t *obj, const struct col *c, sqlite3_stmt *st, int idx,
                      int64_t measurement_id, char *err, size_t errlen)
{
    json_t *v = NULL;
    bool is_null = sqlite3_column_type(st, idx) == SQLITE_NULL;
    switch (c->kind) {
    case COL_INT:
    case COL_INT_NULL:
        v = is_null ? json_null() : json_integer(sqlite3_column_int64(st, idx));
        break;
    case COL_REAL:
        /* json_real refuses non-finite values; SQLite cannot hold NaN anyway (NULL). */
        v = is_null ? NULL : json_real(sqlite3_column_double(st, idx));
        if (v == NULL)
            v = json_null();
        break;
    case COL_TEXT: {
        const unsigned char *text = sqlite3_column_text(st, idx);
        v = json_string(text ? (const char *)text : "");
        break;
    }
    case COL_TEXT_NULL: {
        const unsigned char *text = sqlite3_column_text(st, idx);
        v = text ? json_string((const char *)text) : json_null();
        break;
    }
    case COL_BOOL:
        v = json_boolean(sqlite3_column_int(st, idx) != 0);
        break;
    case COL_OBJECT:
    case COL_ARRAY: {
        const char *text = (const char *)sqlite3_column_text(st, idx);
        json_error_t jerr;
        v = json_loads(text ? text : "", 0, &jerr);
        bool ok = v != NULL && (c->kind == COL_OBJECT ? json_is_object(v) : json_is_array(v));
        if (!ok) {
            db_err(db, err, errlen, "measurement %lld: column %s does not hold a JSON %s%s%s",
                   (long long)measurement_id, c->column,
                   c->kind == COL_OBJECT ? "object" : "array", v == NULL ? ": " : "",
                   v == NULL ? jerr.text : "");
            json_decref(v);
            return -1;
        }
        break;
    }
    case COL_RAILS:
        return 0; /* filled by the caller */
    }
    if (v == NULL || json_object_set_new(obj, c->member, v) != 0) {
        db_err(db, err, errlen, "measurement %lld: out of memory building JSON",
               (long long)measurement_id);
        return -1;
    }
    return 0;
}

static json_t *rails_json(struct db *db, sqlite3_stmt *rails, int64_t measurement_id,
                          char *err, size_t errlen)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        db_err(db, err, errlen, "out of memory building JSON");
        return NULL;
    }
    if (sqlite3_reset(rails) != SQLITE_OK ||
        sqlite3_bind_int64(rails, 1, measurement_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading rails of measurement %lld",
                      (long long)measurement_id);
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(rails)) == SQLITE_ROW) {
        json_t *r = json_object();
        if (r == NULL || json_array_append_new(arr, r) != 0) {
            db_err(db, err, errlen, "out of memory building JSON");
            goto fail;
        }
        for (size_t i = 0; i < RAIL_COLUMN_COUNT; i++)
            if (put_column(db, r, &rail_columns[i], rails, (int)i, measurement_id, err,
                           errlen) != 0)
                goto fail;
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading rails of measurement %lld",
                      (long long)measurement_id);
        goto fail;
    }
    return arr;

fail:
    json_decref(arr);
    return NULL;
}

/* What row_json reads besides the row itself: the rails, prepared up front,
 * and a whole-graph measurement's link to its graph, prepared at the first
 * such row only, so a walk over kernel measurements never touches it. */
struct row_reader {
    sqlite3_stmt *rails;
    sqlite3_stmt *graph;
};

static int prepare_rails(struct db *db, sqlite3_stmt **st, char *err, size_t errlen)
{
    char cols[512], sql[768];
    column_list(rail_columns, RAIL_COLUMN_COUNT, cols, sizeof cols);
    /* rowid order is insertion order: rails come back as the measurement listed them. */
    snprintf(sql, sizeof sql,
             "SELECT %s FROM rail_readings WHERE measurement_id = ?1 ORDER BY rowid", cols);
    return db_prepare(db, sql, st, err, errlen);
}

static void row_reader_close(struct row_reader *r)
{
    sqlite3_finalize(r->rails);
    sqlite3_finalize(r->graph);
    r->rails = r->graph = NULL;
}

/* Adds "graph": {"id", "hash", "name", "streams"} to a whole-graph
 * measurement's object (kernel DB_GRAPH_KERNEL with a graph_measurements row);
 * other objects are left as they are. 0, or -1 with err. */
static int put_graph(struct db *db, struct row_reader *r, json_t *obj, int64_t measurement_id,
                     char *err, size_t errlen)
{
    const char *kernel = json_string_value(json_object_get(obj, "kernel"));
    if (kernel == NULL || strcmp(kernel, DB_GRAPH_KERNEL) != 0)
        return 0;
    if (r->graph == NULL &&
        db_prepare(db,
                   "SELECT g.id, g.hash, g.name, gm.streams FROM graph_measurements gm"
                   " JOIN graphs g ON g.id = gm.graph_id WHERE gm.measurement_id = ?1",
                   &r->graph, err, errlen) != 0)
        return -1;
    if (sqlite3_reset(r->graph) != SQLITE_OK ||
        sqlite3_bind_int64(r->graph, 1, measurement_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading the graph of measurement %lld",
                      (long long)measurement_id);
        return -1;
    }
    int rc = sqlite3_step(r->graph);
    if (rc == SQLITE_DONE)
        return 0; /* db_job_finish links every graph measurement; nothing to show */
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading the graph of measurement %lld",
                      (long long)measurement_id);
        return -1;
    }
    const unsigned char *hash = sqlite3_column_text(r->graph, 1);
    const unsigned char *name = sqlite3_column_text(r->graph, 2);
    json_t *g = json_pack("{s:I, s:s, s:s, s:I}", "id",
                          (json_int_t)sqlite3_column_int64(r->graph, 0), "hash",
                          hash ? (const char *)hash : "", "name",
                          name ? (const char *)name : "", "streams",
                          (json_int_t)sqlite3_column_int64(r->graph, 3));
    if (g == NULL || json_object_set_new(obj, "graph", g) != 0) {
        db_err(db, err, errlen, "measurement %lld: out of memory building JSON",
               (long long)measurement_id);
        return -1;
    }
    return 0;
}

/* The Measurement object from the current row of a measurement_columns SELECT. */
static json_t *row_json(struct db *db, sqlite3_stmt *row, struct row_reader *r, char *err,
                        size_t errlen)
{
    int64_t id = sqlite3_column_int64(row, 0); /* measurement_columns[0] is id */
    json_t *obj = json_object();
    if (obj == NULL) {
        db_err(db, err, errlen, "out of memory building JSON");
        return NULL;
    }
    int idx = 0;
    for (size_t i = 0; i < MEASUREMENT_COLUMN_COUNT; i++) {
        const struct col *c = &measurement_columns[i];
        if (c->kind == COL_RAILS) {
            json_t *arr = rails_json(db, r->rails, id, err, errlen);
            if (arr == NULL)
                goto fail;
            if (json_object_set_new(obj, c->member, arr) != 0) {
                db_err(db, err, errlen, "out of memory building JSON");
                goto fail;
            }
            continue;
        }
        if (put_column(db, obj, c, row, idx++, id, err, errlen) != 0)
            goto fail;
    }
    if (put_graph(db, r, obj, id, err, errlen) != 0)
        goto fail;
    return obj;

fail:
    json_decref(obj);
    return NULL;
}

json_t *db_measurement_json(struct db *db, int64_t measurement_id, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0'; /* stays empty when the measurement does not exist */
    char cols[1024], sql[1280];
    column_list(measurement_columns, MEASUREMENT_COLUMN_COUNT, cols, sizeof cols);
    snprintf(sql, sizeof sql, "SELECT %s FROM measurements WHERE id = ?1", cols);

    sqlite3_stmt *row = NULL;
    struct row_reader reader = {0};
    json_t *result = NULL;
    if (db_prepare(db, sql, &row, err, errlen) != 0 ||
        prepare_rails(db, &reader.rails, err, errlen) != 0)
        goto done;
    if (sqlite3_bind_int64(row, 1, measurement_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading measurement %lld", (long long)measurement_id);
        goto done;
    }
    int rc = sqlite3_step(row);
    if (rc == SQLITE_ROW)
        result = row_json(db, row, &reader, err, errlen);
    else if (rc != SQLITE_DONE)
        db_err_sqlite(db, err, errlen, "reading measurement %lld", (long long)measurement_id);
done:
    sqlite3_finalize(row);
    row_reader_close(&reader);
    return result;
}

/* ---- filtered walk ---- */

/* The filter's conditions as " AND ..." with fixed parameter numbers (?2 kernel,
 * ?3 dtype, ?4 quality, ?6 batch, ?7 since; ?1 and ?5 belong to the caller).
 * Only fixed fragments are pasted; the values are bound by filter_bind. */
static void filter_where(const struct db_measurement_filter *f, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s%s%s%s%s", f->kernel ? " AND kernel = ?2" : "",
             f->dtype ? " AND dtype = ?3" : "", f->quality ? " AND quality = ?4" : "",
             f->batch_id > 0 ? " AND job_id IN (SELECT id FROM jobs WHERE batch_id = ?6)" : "",
             f->since ? " AND created_at >= ?7" : "");
}

static int filter_bind(sqlite3_stmt *st, const struct db_measurement_filter *f)
{
    int bind = SQLITE_OK;
    if (f->kernel)
        bind |= sqlite3_bind_text(st, 2, f->kernel, -1, SQLITE_TRANSIENT);
    if (f->dtype)
        bind |= sqlite3_bind_text(st, 3, f->dtype, -1, SQLITE_TRANSIENT);
    if (f->quality)
        bind |= sqlite3_bind_text(st, 4, f->quality, -1, SQLITE_TRANSIENT);
    if (f->batch_id > 0)
        bind |= sqlite3_bind_int64(st, 6, f->batch_id);
    if (f->since)
        bind |= sqlite3_bind_text(st, 7, f->since, -1, SQLITE_TRANSIENT);
    return bind;
}

int db_measurements_each(struct db *db, const struct db_measurement_filter *f,
                         int (*row)(json_t *m, void *ctx), void *ctx, char *err,
                         size_t errlen)
{
    /* The HTTP layer validates limit and after; out-of-range here is a caller bug,
     * answered with an error rather than a crash. */
    if (f == NULL) {
        db_err(db, err, errlen, "measurement query without a filter");
        return -1;
    }
    if (f->limit < 1 || f->limit > LIMIT_MAX) {
        db_err(db, err, errlen, "measurement query: limit %lld is outside [1, %d]",
               (long long)f->limit, LIMIT_MAX);
        return -1;
    }
    if (f->after_id < 0) {
        db_err(db, err, errlen, "measurement query: after %lld is negative",
               (long long)f->after_id);
        return -1;
    }
    char cols[1024], where[512], sql[2048];
    column_list(measurement_columns, MEASUREMENT_COLUMN_COUNT, cols, sizeof cols);
    filter_where(f, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT %s FROM measurements WHERE id > ?1%s ORDER BY id LIMIT ?5",
             cols, where);

    sqlite3_stmt *st = NULL;
    struct row_reader reader = {0};
    int count = -1;
    if (db_prepare(db, sql, &st, err, errlen) != 0 ||
        prepare_rails(db, &reader.rails, err, errlen) != 0)
        goto done;
    if ((sqlite3_bind_int64(st, 1, f->after_id) | sqlite3_bind_int64(st, 5, f->limit) |
         filter_bind(st, f)) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the measurement filter");
        goto done;
    }
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *m = row_json(db, st, &reader, err, errlen);
        if (m == NULL)
            goto done;
        n++;
        int stop = row != NULL ? row(m, ctx) : 0;
        json_decref(m);
        if (stop != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading measurements");
        goto done;
    }
    count = n;
done:
    sqlite3_finalize(st);
    row_reader_close(&reader);
    return count;
}

/* ---- CSV ---- */

struct sbuf {
    char *data;
    size_t len, cap;
    bool oom;
};

static void sb_append(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

/* RFC 4180: a field with a comma, a double quote, CR or LF is quoted, quotes doubled. */
static void csv_field(struct sbuf *b, const char *s, bool first)
{
    if (!first)
        sb_append(b, ",", 1);
    if (strpbrk(s, ",\"\r\n") == NULL) {
        sb_puts(b, s);
        return;
    }
    sb_append(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sb_append(b, "\"\"", 2);
        else
            sb_append(b, p, 1);
    }
    sb_append(b, "\"", 1);
}

/* The shortest %g text that reads back as the same double. */
static void format_double(double v, char *buf, size_t buflen)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, buflen, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void csv_value(struct sbuf *b, const json_t *v, bool first)
{
    char num[64];
    if (v == NULL || json_is_null(v)) {
        csv_field(b, "", first);
    } else if (json_is_string(v)) {
        csv_field(b, json_string_value(v), first);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        csv_field(b, num, first);
    } else if (json_is_real(v)) {
        format_double(json_real_value(v), num, sizeof num);
        csv_field(b, num, first);
    } else if (json_is_boolean(v)) {
        csv_field(b, json_is_true(v) ? "true" : "false", first);
    } else {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            b->oom = true;
            return;
        }
        csv_field(b, text, first);
        free(text);
    }
}

static const char *const csv_head_columns[] = {"id",         "uid",    "fingerprint",
                                                "created_at", "kernel", "dtype"};
static const char *const csv_tail_columns[] = {
    "executor", "sensor", "simulated", "launches", "repeats", "latency_us", "latency_us_min",
    "latency_us_max", "latency_cv", "energy_rail", "energy_uj", "dynamic_energy_uj",
    "power_mw", "quality",
};
static const char *const csv_rail_columns[] = {"power_mw", "idle_power_mw", "energy_uj",
                                               "sample_ratio"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int collect_row(json_t *m, void *ctx)
{
    return json_array_append((json_t *)ctx, m) != 0; /* stop on out of memory */
}

/* Adds each key (of the objects found at member `field` of every row) to `keys`
 * once, in first-seen order. `name_member` NULL: field is an object whose keys
 * are collected; otherwise field is an array of objects named by name_member. */
static int union_keys(json_t *rows, const char *field, const char *name_member, json_t *keys)
{
    size_t i;
    json_t *m;
    json_array_foreach(rows, i, m) {
        json_t *container = json_object_get(m, field);
        if (name_member == NULL) {
            const char *key;
            json_t *v;
            json_object_foreach(container, key, v) {
                if (json_object_set_new(keys, key, json_true()) != 0)
                    return -1;
            }
        } else {
            size_t j;
            json_t *item;
            json_array_foreach(container, j, item) {
                const char *name = json_string_value(json_object_get(item, name_member));
                if (name != NULL && json_object_set_new(keys, name, json_true()) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

static json_t *rail_of(json_t *m, const char *rail)
{
    size_t j;
    json_t *item;
    json_array_foreach(json_object_get(m, "rails"), j, item) {
        const char *name = json_string_value(json_object_get(item, "rail"));
        if (name != NULL && strcmp(name, rail) == 0)
            return item;
    }
    return NULL;
}

/* The header line: fixed columns, then one per parameter name in params, then
 * csv_rail_columns per rail name in rails (both objects used as ordered sets). */
static void csv_header(struct sbuf *b, json_t *params, json_t *rails)
{
    bool first = true;
    for (size_t i = 0; i < COUNT(csv_head_columns); i++, first = false)
        csv_field(b, csv_head_columns[i], first);
    const char *key;
    json_t *unused;
    json_object_foreach(params, key, unused)
        csv_field(b, key, false);
    for (size_t i = 0; i < COUNT(csv_tail_columns); i++)
        csv_field(b, csv_tail_columns[i], false);
    json_object_foreach(rails, key, unused) {
        for (size_t i = 0; i < COUNT(csv_rail_columns); i++) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", csv_rail_columns[i], key);
            csv_field(b, name, false);
        }
    }
    sb_append(b, "\r\n", 2);
}

/* One row under csv_header(params, rails); absent values are empty fields. */
static void csv_row(struct sbuf *b, json_t *m, json_t *params, json_t *rails)
{
    bool first = true;
    for (size_t c = 0; c < COUNT(csv_head_columns); c++, first = false)
        csv_value(b, json_object_get(m, csv_head_columns[c]), first);
    json_t *mp = json_object_get(m, "params");
    const char *key;
    json_t *unused;
    json_object_foreach(params, key, unused)
        csv_value(b, json_object_get(mp, key), false);
    for (size_t c = 0; c < COUNT(csv_tail_columns); c++)
        csv_value(b, json_object_get(m, csv_tail_columns[c]), false);
    json_object_foreach(rails, key, unused) {
        json_t *r = rail_of(m, key);
        for (size_t c = 0; c < COUNT(csv_rail_columns); c++)
            csv_value(b, r ? json_object_get(r, csv_rail_columns[c]) : NULL, false);
    }
    sb_append(b, "\r\n", 2);
}

char *db_measurements_csv(struct db *db, const struct db_measurement_filter *f, size_t *len,
                          char *err, size_t errlen)
{
    json_t *rows = json_array(), *params = json_object(), *rails = json_object();
    struct sbuf b = {0};
    char *result = NULL;
    if (rows == NULL || params == NULL || rails == NULL) {
        db_err(db, err, errlen, "out of memory building CSV");
        goto done;
    }
    int n = db_measurements_each(db, f, collect_row, rows, err, errlen);
    if (n < 0)
        goto done;
    if ((size_t)n != json_array_size(rows) || union_keys(rows, "params", NULL, params) != 0 ||
        union_keys(rows, "rails", "rail", rails) != 0) {
        db_err(db, err, errlen, "out of memory building CSV");
        goto done;
    }

    csv_header(&b, params, rails);
    size_t i;
    json_t *m;
    json_array_foreach(rows, i, m)
        csv_row(&b, m, params, rails);
    if (b.oom) {
        db_err(db, err, errlen, "out of memory building CSV");
        goto done;
    }
    result = b.data;
    b.data = NULL;
    if (len != NULL)
        *len = b.len;

done:
    free(b.data);
    json_decref(rows);
    json_decref(params);
    json_decref(rails);
    return result;
}

/* ---- streamed CSV: the columns are fixed before the first row ---- */

struct db_csv_layout {
    json_t *params; /* ordered sets: name -> true */
    json_t *rails;
    int64_t last_id; /* the highest measurement id before the names were read */
};

/* Adds the first column of every row of sql (bound with f) to set. */
static int layout_names(struct db *db, const char *sql, const struct db_measurement_filter *f,
                        json_t *set, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    int rc = SQLITE_OK;
    if (filter_bind(st, f) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the measurement filter");
        sqlite3_finalize(st);
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 0);
        if (name != NULL && json_object_set_new(set, (const char *)name, json_true()) != 0) {
            db_err(db, err, errlen, "out of memory building the CSV columns");
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading the CSV columns");
        return -1;
    }
    return 0;
}

int db_csv_layout_make(struct db *db, const struct db_measurement_filter *f,
                       struct db_csv_layout **out, char *err, size_t errlen)
{
    *out = NULL;
    if (f == NULL) {
        db_err(db, err, errlen, "measurement query without a filter");
        return -1;
    }
    struct db_csv_layout *l = calloc(1, sizeof *l);
    if (l == NULL || (l->params = json_object()) == NULL || (l->rails = json_object()) == NULL) {
        db_csv_layout_free(l);
        db_err(db, err, errlen, "out of memory building the CSV columns");
        return -1;
    }
    /* The highest id first: rows committed after it may only add names, so the
     * columns cover every row up to it. */
    sqlite3_stmt *max = NULL;
    if (db_prepare(db, "SELECT COALESCE(MAX(id), 0) FROM measurements", &max, err, errlen) != 0) {
        db_csv_layout_free(l);
        return -1;
    }
    if (sqlite3_step(max) != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading the highest measurement id");
        sqlite3_finalize(max);
        db_csv_layout_free(l);
        return -1;
    }
    l->last_id = sqlite3_column_int64(max, 0);
    sqlite3_finalize(max);

    char where[512], sql[1024];
    filter_where(f, where, sizeof where);
    /* One aggregate query each: every name the matching rows use, in the order
     * of first use (lowest measurement id, then position within it), so the
     * header can go out before the first row without reading the rows twice. */
    snprintf(sql, sizeof sql,
             "SELECT p.key FROM measurements, json_each(measurements.params_json) AS p"
             " WHERE 1%s GROUP BY p.key ORDER BY MIN(measurements.id), MIN(p.id)",
             where);
    int rc = layout_names(db, sql, f, l->params, err, errlen);
    if (rc == 0) {
        snprintf(sql, sizeof sql,
                 "SELECT r.rail FROM measurements JOIN rail_readings AS r"
                 " ON r.measurement_id = measurements.id WHERE 1%s GROUP BY r.rail"
                 " ORDER BY MIN(measurements.id), MIN(r.rowid)",
                 where);
        rc = layout_names(db, sql, f, l->rails, err, errlen);
    }
    if (rc != 0) {
        db_csv_layout_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

int64_t db_csv_layout_last_id(const struct db_csv_layout *l)
{
    return l->last_id;
}

void db_csv_layout_free(struct db_csv_layout *l)
{
    if (l == NULL)
        return;
    json_decref(l->params);
    json_decref(l->rails);
    free(l);
}

/* The sbuf's text handed to the caller, or NULL when it ran out of memory. */
static char *sb_take(struct sbuf *b, size_t *len)
{
    if (b->oom || b->data == NULL) {
        free(b->data);
        return NULL;
    }
    *len = b->len;
    return b->data;
}

char *db_csv_layout_header(const struct db_csv_layout *l, size_t *len)
{
    struct sbuf b = {0};
    csv_header(&b, l->params, l->rails);
    return sb_take(&b, len);
}

char *db_csv_layout_row(const struct db_csv_layout *l, json_t *m, size_t *len)
{
    struct sbuf b = {0};
    csv_row(&b, m, l->params, l->rails);
    return sb_take(&b, len);
}
