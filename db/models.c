/*
 * models.c - predictors and their training data: storing a training run's models
 * in one transaction (and, in it, deleting the models each new one supersedes
 * beyond a kept history, so the table stays bounded however often a board
 * retrains), the newest model per (kernel, target) for a device, the
 * usable measurements of a kernel type as training rows (configuration, latency,
 * per-rail power), how many each kernel type has (the API's 409s), and the newest
 * measurement of a configuration (POST /v1/predict's "measured").
 *
 * Everything here works on "devices like" a device (db.h): the same board_model,
 * gpu_name, executor, sensor_backend and simulated flag. Sampling is part of a
 * device's fingerprint, so changing it makes a new devices row; its
 * measurements and models belong to the same board and stay in use. The set is
 * one SQL fragment, DB_LIKE_DEVICES (db_internal.h: graphs.c uses it too),
 * shared by every query, so they cannot disagree about which rows count.
 * Whole-graph measurements (kernel DB_GRAPH_KERNEL) are never training data.
 *
 * Training rows come back ordered by uid (globally unique, stable across
 * databases), so the same rows always reach the trainer in the same order and
 * the trainer's seeded split gives the same models; the training hash upstream
 * is over the sorted uids for the same reason.
 */
#include "db/db_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

/* What "usable" means for a measurement as training data, whatever set of
 * measurements is asked for (db_training_rows, db_training_rows_batch and
 * db_training_counts agree through it): ?2 quality or NULL = any. A whole-graph
 * measurement is never a kernel type's training row. */
#define USABLE_ROW                                                                         \
    "(?2 IS NULL OR m.quality = ?2) AND m.latency_us > 0"                                 \
    " AND m.kernel <> '" DB_GRAPH_KERNEL "'"

/* Usable and on devices like the device at ?1. */
#define USABLE_MEASUREMENT "m.device_id IN " DB_LIKE_DEVICES("?1") " AND " USABLE_ROW

#define HASH_HEX_CHARS 64

/* ---- insert ---- */

static bool field_set(const char *field, size_t size)
{
    return strnlen(field, size) > 0;
}

/* Is text[0..len) a JSON object? (The blob is read back as one by the daemon and
 * spliced verbatim into the export bundle, so it must be.) */
static bool is_json_object(const char *text, size_t len, json_error_t *jerr)
{
    json_t *v = json_loadb(text, len, 0, jerr);
    bool ok = v != NULL && json_is_object(v);
    if (v != NULL && !ok)
        snprintf(jerr->text, sizeof jerr->text, "not an object");
    json_decref(v);
    return ok;
}

static bool is_hex_hash(const char *s, size_t size)
{
    if (strnlen(s, size) != HASH_HEX_CHARS)
        return false;
    for (size_t i = 0; i < HASH_HEX_CHARS; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int validate_model(struct db *db, size_t i, const struct db_model *m, char *err,
                          size_t errlen)
{
    if (!field_set(m->kernel, sizeof m->kernel) || !field_set(m->target, sizeof m->target)) {
        db_err(db, err, errlen, "model %zu: kernel and target are required", i);
        return -1;
    }
    int kl = (int)strnlen(m->kernel, sizeof m->kernel),
        tl = (int)strnlen(m->target, sizeof m->target);
    if (m->device_id < 0) {
        db_err(db, err, errlen, "model %.*s %.*s: device_id %lld is negative", kl, m->kernel, tl,
               m->target, (long long)m->device_id);
        return -1;
    }
    if (!is_hex_hash(m->training_hash, sizeof m->training_hash)) {
        db_err(db, err, errlen, "model %.*s %.*s: training_hash is not %d lowercase hex digits",
               kl, m->kernel, tl, m->target, HASH_HEX_CHARS);
        return -1;
    }
    json_error_t jerr;
    size_t ml = strnlen(m->metrics_json, sizeof m->metrics_json);
    if (ml == sizeof m->metrics_json || !is_json_object(m->metrics_json, ml, &jerr)) {
        db_err(db, err, errlen, "model %.*s %.*s: metrics_json is not a JSON object%s%s", kl,
               m->kernel, tl, m->target, ml == sizeof m->metrics_json ? "" : ": ",
               ml == sizeof m->metrics_json ? " (unterminated)" : jerr.text);
        return -1;
    }
    if (m->blob == NULL || m->blob_len == 0 || m->blob_len > (size_t)INT32_MAX) {
        db_err(db, err, errlen, "model %.*s %.*s: the blob is empty or larger than 2 GiB", kl,
               m->kernel, tl, m->target);
        return -1;
    }
    if (!is_json_object(m->blob, m->blob_len, &jerr)) {
        db_err(db, err, errlen, "model %.*s %.*s: the blob is not a JSON object: %s", kl,
               m->kernel, tl, m->target, jerr.text);
        return -1;
    }
    return 0;
}

/* Deletes the models of models[i]'s (kernel, target) on its group of devices
 * beyond the newest keep, adding the count to *pruned. Inside the caller's
 * transaction. */
static int prune_history(struct db *db, sqlite3_stmt *del, const struct db_model *m,
                         unsigned keep, size_t *pruned, char *err, size_t errlen)
{
    int bind = sqlite3_reset(del) | DB_BIND_FIELD(del, 1, m->kernel) |
               DB_BIND_FIELD(del, 2, m->target) |
               (m->device_id > 0 ? sqlite3_bind_int64(del, 3, m->device_id)
                                 : sqlite3_bind_null(del, 3)) |
               sqlite3_bind_int64(del, 4, (sqlite3_int64)keep);
    if (bind != SQLITE_OK || sqlite3_step(del) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "deleting the older models of %.*s %.*s",
                      (int)strnlen(m->kernel, sizeof m->kernel), m->kernel,
                      (int)strnlen(m->target, sizeof m->target), m->target);
        return -1;
    }
    *pruned += (size_t)sqlite3_changes(db->conn);
    return 0;
}

/* The models of one (kernel, target) on one group of devices: ?1 kernel, ?2
 * target, ?3 device (NULL: the models without one). */
#define SAME_HISTORY                                                                       \
    "kernel = ?1 AND target = ?2 AND (device_id IN " DB_LIKE_DEVICES("?3")                \
    " OR (?3 IS NULL AND device_id IS NULL))"

int db_models_insert(struct db *db, struct db_model *models, size_t n, char *err,
                     size_t errlen)
{
    return db_models_insert_pruned(db, models, n, 0, NULL, err, errlen);
}

int db_models_insert_pruned(struct db *db, struct db_model *models, size_t n, unsigned keep,
                            size_t *pruned, char *err, size_t errlen)
{
    size_t deleted = 0;
    if (pruned)
        *pruned = 0;
    if (n == 0 || models == NULL) {
        db_err(db, err, errlen, "storing models: none given");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (validate_model(db, i, &models[i], err, errlen) != 0)
            return -1;
    char now[32];
    clock_utc_iso8601(now, sizeof now);

    sqlite3_stmt *ins = NULL, *del = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (db_prepare(db,
                   "INSERT INTO models (kernel, target, device_id, metrics_json, training_hash,"
                   " created_at, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                   &ins, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct db_model *m = &models[i];
        int bind = sqlite3_reset(ins) | DB_BIND_FIELD(ins, 1, m->kernel) |
                   DB_BIND_FIELD(ins, 2, m->target) |
                   (m->device_id > 0 ? sqlite3_bind_int64(ins, 3, m->device_id)
                                     : sqlite3_bind_null(ins, 3)) |
                   DB_BIND_FIELD(ins, 4, m->metrics_json) |
                   DB_BIND_FIELD(ins, 5, m->training_hash) |
                   sqlite3_bind_text(ins, 6, now, -1, SQLITE_TRANSIENT) |
                   sqlite3_bind_blob(ins, 7, m->blob, (int)m->blob_len, SQLITE_STATIC);
        if (bind != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
            db_err_sqlite(db, err, errlen, "storing model %.*s %.*s",
                          (int)strnlen(m->kernel, sizeof m->kernel), m->kernel,
                          (int)strnlen(m->target, sizeof m->target), m->target);
            goto fail;
        }
        m->id = sqlite3_last_insert_rowid(db->conn);
    }
    /* After every insert, so the run's own models count among the newest. */
    if (keep > 0) {
        if (db_prepare(db,
                       "DELETE FROM models WHERE " SAME_HISTORY " AND id NOT IN (SELECT id"
                       " FROM models WHERE " SAME_HISTORY " ORDER BY id DESC LIMIT ?4)",
                       &del, err, errlen) != 0)
            goto fail;
        for (size_t i = 0; i < n; i++)
            if (prune_history(db, del, &models[i], keep, &deleted, err, errlen) != 0)
                goto fail;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    ins = del = NULL;
    if (db_commit(db, err, errlen) != 0)
        goto undo_ids;
    for (size_t i = 0; i < n; i++)
        memcpy(models[i].created_at, now, sizeof models[i].created_at);
    if (pruned)
        *pruned = deleted;
    return 0;

fail:
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    db_rollback(db);
undo_ids:
    for (size_t i = 0; i < n; i++)
        models[i].id = 0; /* nothing was written */
    return -1;
}

/* ---- newest models ---- */

void db_models_free(struct db_model *models, size_t count)
{
    if (models == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(models[i].blob);
    free(models);
}

/* Grows *arr (of elem_size items, *cap of them) so that index `need` fits.
 * 0, or -1 when out of memory (the array is unchanged). */
int db_bind_id_quality(sqlite3_stmt *st, int64_t id, const char *quality)
{
    return sqlite3_bind_int64(st, 1, id) |
           (quality ? sqlite3_bind_text(st, 2, quality, -1, SQLITE_TRANSIENT)
                    : sqlite3_bind_null(st, 2));
}

int db_grow(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    if (need < *cap)
        return 0;
    size_t cap2 = *cap ? *cap * 2 : 16;
    while (cap2 <= need)
        cap2 *= 2;
    if (cap2 > SIZE_MAX / elem_size)
        return -1;
    void *p = realloc(*arr, cap2 * elem_size);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = cap2;
    return 0;
}

int db_models_newest(struct db *db, int64_t device_id, bool with_blob, struct db_model **out,
                     size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    /* The blob column is read only when asked: a model's trees can be megabytes. */
    static const char sql[] =
        "WITH newest AS (SELECT MAX(id) AS id FROM models WHERE device_id IN "
        DB_LIKE_DEVICES("?1")
        " GROUP BY kernel, target)"
        " SELECT m.id, m.kernel, m.target, m.device_id, d.fingerprint,"
        " (d.simulated OR d.executor = 'cpu'), m.metrics_json, m.training_hash, m.created_at,"
        " CASE WHEN ?2 THEN m.blob END"
        " FROM models m JOIN newest USING (id) LEFT JOIN devices d ON d.id = m.device_id"
        " ORDER BY m.kernel, m.target";
    sqlite3_stmt *st = NULL;
    struct db_model *arr = NULL;
    size_t n = 0, cap = 0;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    if ((sqlite3_bind_int64(st, 1, device_id) | sqlite3_bind_int(st, 2, with_blob ? 1 : 0)) !=
        SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the model query");
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, n, sizeof *arr) != 0) {
            db_err(db, err, errlen, "reading models: out of memory");
            goto fail;
        }
        struct db_model *m = &arr[n];
        memset(m, 0, sizeof *m);
        n++;
        m->id = sqlite3_column_int64(st, 0);
        db_column_copy(st, 1, m->kernel, sizeof m->kernel);
        db_column_copy(st, 2, m->target, sizeof m->target);
        m->device_id = sqlite3_column_int64(st, 3);
        db_column_copy(st, 4, m->fingerprint, sizeof m->fingerprint);
        m->simulated = sqlite3_column_int(st, 5) != 0;
        db_column_copy(st, 6, m->metrics_json, sizeof m->metrics_json);
        db_column_copy(st, 7, m->training_hash, sizeof m->training_hash);
        db_column_copy(st, 8, m->created_at, sizeof m->created_at);
        if (with_blob) {
            const void *blob = sqlite3_column_blob(st, 9);
            int len = sqlite3_column_bytes(st, 9);
            if (blob == NULL || len <= 0) {
                db_err(db, err, errlen, "model %lld (%s %s) has an empty blob",
                       (long long)m->id, m->kernel, m->target);
                goto fail;
            }
            m->blob = malloc((size_t)len + 1);
            if (m->blob == NULL) {
                db_err(db, err, errlen, "reading model %lld: out of memory for %d bytes",
                       (long long)m->id, len);
                goto fail;
            }
            memcpy(m->blob, blob, (size_t)len);
            m->blob[len] = '\0';
            m->blob_len = (size_t)len;
        }
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading models");
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    db_models_free(arr, n);
    return -1;
}

/* ---- training data ---- */

int db_training_rows_scoped(struct db *db, const char *kernel, enum db_training_scope scope,
                            int64_t scope_id, const char *quality,
                            struct db_training_row **out, size_t *count, char *err,
                            size_t errlen)
{
    *out = NULL;
    *count = 0;
    if (kernel == NULL || kernel[0] == '\0') {
        db_err(db, err, errlen, "training rows: no kernel type given");
        return -1;
    }
    /* One pass: each measurement's rail rows follow it (rowid = the order the
     * measurement stored its rails); a measurement without rails has one row of
     * NULLs. A batch's rows are its jobs' measurements, whatever the device:
     * the runner measured them all on its one board. */
#define TRAINING_SELECT                                                                    \
    "SELECT m.id, m.uid, m.dtype, m.params_json, m.latency_us, r.rail, r.power_mw"        \
    " FROM measurements m LEFT JOIN rail_readings r ON r.measurement_id = m.id WHERE "
    static const char like_device_sql[] =
        TRAINING_SELECT USABLE_MEASUREMENT " AND m.kernel = ?3 ORDER BY m.uid, r.rowid";
    static const char batch_sql[] =
        TRAINING_SELECT "m.job_id IN (SELECT id FROM jobs WHERE batch_id = ?1) AND " USABLE_ROW
        " AND m.kernel = ?3 ORDER BY m.uid, r.rowid";
#undef TRAINING_SELECT
    sqlite3_stmt *st = NULL;
    struct db_training_row *arr = NULL;
    size_t n = 0, cap = 0;
    if (db_prepare(db, scope == DB_TRAINING_BATCH ? batch_sql : like_device_sql, &st, err,
                   errlen) != 0)
        return -1;
    int bind = db_bind_id_quality(st, scope_id, quality) |
               sqlite3_bind_text(st, 3, kernel, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the training query for %s", kernel);
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        struct db_training_row *row = n > 0 && arr[n - 1].measurement_id == id ? &arr[n - 1]
                                                                                : NULL;
        if (row == NULL) {
            if (db_grow((void **)&arr, &cap, n, sizeof *arr) != 0) {
                db_err(db, err, errlen, "reading %s training rows: out of memory", kernel);
                goto fail;
            }
            row = &arr[n++];
            memset(row, 0, sizeof *row);
            row->measurement_id = id;
            db_column_copy(st, 1, row->uid, sizeof row->uid);
            db_column_copy(st, 2, row->dtype, sizeof row->dtype);
            db_column_copy(st, 3, row->params_json, sizeof row->params_json);
            row->latency_us = sqlite3_column_double(st, 4);
        }
        if (sqlite3_column_type(st, 5) == SQLITE_NULL)
            continue; /* no rails */
        if (row->rail_count >= DB_MAX_RAILS) {
            db_err(db, err, errlen, "measurement %lld has more than %d rails", (long long)id,
                   DB_MAX_RAILS);
            goto fail;
        }
        struct db_training_rail *r = &row->rails[row->rail_count++];
        db_column_copy(st, 5, r->rail, sizeof r->rail);
        r->power_mw = sqlite3_column_double(st, 6);
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading %s training rows", kernel);
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    free(arr);
    return -1;
}

int db_training_rows(struct db *db, const char *kernel, int64_t device_id, const char *quality,
                     struct db_training_row **out, size_t *count, char *err, size_t errlen)
{
    return db_training_rows_scoped(db, kernel, DB_TRAINING_LIKE_DEVICE, device_id, quality, out,
                                   count, err, errlen);
}

int db_training_counts(struct db *db, int64_t device_id, const char *quality,
                       struct db_training_count **out, size_t *count, char *err,
                       size_t errlen)
{
    *out = NULL;
    *count = 0;
    static const char sql[] = "SELECT m.kernel, COUNT(*) FROM measurements m"
                              " WHERE " USABLE_MEASUREMENT " GROUP BY m.kernel ORDER BY m.kernel";
    sqlite3_stmt *st = NULL;
    struct db_training_count *arr = NULL;
    size_t n = 0, cap = 0;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    int bind = db_bind_id_quality(st, device_id, quality);
    if (bind != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the training count query");
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, n, sizeof *arr) != 0) {
            db_err(db, err, errlen, "counting training rows: out of memory");
            goto fail;
        }
        struct db_training_count *c = &arr[n++];
        memset(c, 0, sizeof *c);
        db_column_copy(st, 0, c->kernel, sizeof c->kernel);
        c->rows = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "counting training rows");
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    free(arr);
    return -1;
}

/* ---- the newest measurement of a configuration ---- */

int db_measurement_find_latest(struct db *db, const char *config_key, int64_t device_id,
                               int64_t *measurement_id, char *err, size_t errlen)
{
    *measurement_id = 0;
    if (config_key == NULL || config_key[0] == '\0') {
        db_err(db, err, errlen, "finding a measurement: no config_key given");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    if (db_prepare(db,
                   "SELECT id FROM measurements WHERE config_key = ?2 AND device_id IN "
                   DB_LIKE_DEVICES("?1") " ORDER BY id DESC LIMIT 1",
                   &st, err, errlen) != 0)
        return -1;
    if ((sqlite3_bind_int64(st, 1, device_id) |
         sqlite3_bind_text(st, 2, config_key, -1, SQLITE_TRANSIENT)) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the measurement lookup of %s", config_key);
        sqlite3_finalize(st);
        return -1;
    }
    int rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        *measurement_id = sqlite3_column_int64(st, 0);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "finding the newest measurement of %s", config_key);
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}
