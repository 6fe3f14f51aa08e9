/*
 * batches.c - batches of jobs: a list of configurations or a sweep that
 * POST /v1/jobs queues at once, their progress (jobs per state) and their
 * holistic cost (board-input energy and wall time, added by the runner through
 * db_batch_account).
 *
 * A batch and all its jobs are inserted in one transaction, so a crash never
 * leaves half a sweep queued. Duplicates are found by config_key against
 * measurements and against jobs queued, running or done - the jobs inserted
 * earlier in the same transaction included, so a sweep that names one
 * configuration twice queues it once. The insert and the duplicate check are
 * shared (db_internal.h) with whole-graph batches (graphs.c) and adaptive
 * rounds (rounds.c), so every way of queueing agrees on what a duplicate is.
 * A batch of kind "adaptive" is open for rounds from its insert until its last
 * round or its cancel.
 */
#include "db/db_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"

/* Is config_key measured already, or on its way (queued or running)? 1, 0, -1. */
static int config_known(struct db *db, sqlite3_stmt *st, const struct db_job *job, char *err,
                        size_t errlen)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (DB_BIND_FIELD(st, 1, job->config_key) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding config_key %s", job->config_key);
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "looking for config %s", job->config_key);
        return -1;
    }
    return sqlite3_column_int(st, 0) != 0;
}

int db_batch_queue_jobs(struct db *db, int64_t batch_id, struct db_job *jobs, size_t n,
                        bool repeat_existing, size_t *inserted, size_t *duplicates, char *err,
                        size_t errlen)
{
    sqlite3_stmt *known = NULL;
    size_t n_inserted = 0, n_dup = 0;
    if (!repeat_existing &&
        db_prepare(db,
                   "SELECT EXISTS (SELECT 1 FROM jobs WHERE config_key = ?1"
                   "   AND state IN ('queued', 'running', 'done'))"
                   " OR EXISTS (SELECT 1 FROM measurements WHERE config_key = ?1)",
                   &known, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (known != NULL) {
            int k = config_known(db, known, &jobs[i], err, errlen);
            if (k < 0)
                goto fail;
            if (k == 1) {
                n_dup++;
                jobs[i].id = 0;
                continue;
            }
        }
        jobs[i].batch_id = batch_id;
        if (db_job_insert(db, &jobs[i], err, errlen) != 0)
            goto fail;
        n_inserted++;
    }
    sqlite3_finalize(known);
    *inserted = n_inserted;
    *duplicates = n_dup;
    return 0;

fail:
    sqlite3_finalize(known);
    return -1;
}

int db_batch_insert_locked(struct db *db, const char *kind, const char *spec_json,
                           const char *dtype, int repeats, int64_t device_id,
                           struct db_job *jobs, size_t n, bool repeat_existing,
                           int64_t *batch_id, size_t *inserted, size_t *duplicates, char *err,
                           size_t errlen)
{
    if (kind == NULL || kind[0] == '\0' || dtype == NULL || dtype[0] == '\0' ||
        spec_json == NULL) {
        db_err(db, err, errlen, "batch: kind, dtype and spec_json are required");
        return -1;
    }
    if (repeats < 0 || device_id < 0) {
        db_err(db, err, errlen, "batch: repeats (%d) and device_id (%lld) must not be negative",
               repeats, (long long)device_id);
        return -1;
    }
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *ins = NULL;
    size_t n_inserted = 0, n_dup = 0;

    /* An adaptive batch stays open for rounds after its initial sample (rounds.c). */
    if (db_prepare(db,
                   "INSERT INTO batches (created_at, kind, spec_json, dtype, repeats, device_id,"
                   " adaptive_open) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                   &ins, err, errlen) != 0)
        goto fail;
    int bind = sqlite3_bind_text(ins, 1, now, -1, SQLITE_TRANSIENT) |
               sqlite3_bind_text(ins, 2, kind, -1, SQLITE_TRANSIENT) |
               sqlite3_bind_text(ins, 3, spec_json, -1, SQLITE_TRANSIENT) |
               sqlite3_bind_text(ins, 4, dtype, -1, SQLITE_TRANSIENT) |
               sqlite3_bind_int(ins, 5, repeats) |
               (device_id > 0 ? sqlite3_bind_int64(ins, 6, device_id) : sqlite3_bind_null(ins, 6)) |
               sqlite3_bind_int(ins, 7, strcmp(kind, "adaptive") == 0 ? 1 : 0);
    if (bind != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "inserting a %s batch", kind);
        goto fail;
    }
    sqlite3_finalize(ins);
    ins = NULL;
    int64_t id = sqlite3_last_insert_rowid(db->conn);

    if (db_batch_queue_jobs(db, id, jobs, n, repeat_existing, &n_inserted, &n_dup, err,
                            errlen) != 0)
        goto fail;

    if (db_prepare(db, "UPDATE batches SET duplicates = ?2 WHERE id = ?1", &ins, err, errlen) != 0)
        goto fail;
    if ((sqlite3_bind_int64(ins, 1, id) | sqlite3_bind_int64(ins, 2, (sqlite3_int64)n_dup)) !=
            SQLITE_OK ||
        sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "recording duplicates of batch %lld", (long long)id);
        goto fail;
    }
    sqlite3_finalize(ins);
    *batch_id = id;
    if (inserted != NULL)
        *inserted = n_inserted;
    if (duplicates != NULL)
        *duplicates = n_dup;
    return 0;

fail:
    sqlite3_finalize(ins);
    return -1;
}

int db_batch_insert(struct db *db, const char *kind, const char *spec_json, const char *dtype,
                    int repeats, int64_t device_id, struct db_job *jobs, size_t n,
                    bool repeat_existing, int64_t *batch_id, size_t *inserted,
                    size_t *duplicates, char *err, size_t errlen)
{
    int64_t id = 0;
    size_t n_inserted = 0, n_dup = 0;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (db_batch_insert_locked(db, kind, spec_json, dtype, repeats, device_id, jobs, n,
                               repeat_existing, &id, &n_inserted, &n_dup, err, errlen) != 0) {
        db_rollback(db);
        return -1;
    }
    if (db_commit(db, err, errlen) != 0)
        return -1;
    *batch_id = id;
    if (inserted != NULL)
        *inserted = n_inserted;
    if (duplicates != NULL)
        *duplicates = n_dup;
    return 0;
}

/* Reads the batch row and its per-state counts, inside whatever transaction
 * the caller holds. 1, 0, -1. */
static int batch_load(struct db *db, int64_t id, struct db_batch *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = -1;
    memset(out, 0, sizeof *out);
    if (db_prepare(db,
                   "SELECT id, created_at, kind, dtype, repeats, device_id, duplicates,"
                   " started_at, finished_at, energy_j, wall_s,"
                   " (SELECT (julianday(max(finished_at)) - julianday(min(started_at))) * 86400.0"
                   "    FROM jobs WHERE batch_id = ?1 AND state IN ('done', 'failed')"
                   "    AND started_at IS NOT NULL AND finished_at IS NOT NULL),"
                   " adaptive_open"
                   " FROM batches WHERE id = ?1",
                   &st, err, errlen) != 0)
        return -1;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading batch %lld", (long long)id);
        goto done;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = 0;
        goto done;
    }
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading batch %lld", (long long)id);
        goto done;
    }
    out->id = sqlite3_column_int64(st, 0);
    db_column_copy(st, 1, out->created_at, sizeof out->created_at);
    db_column_copy(st, 2, out->kind, sizeof out->kind);
    db_column_copy(st, 3, out->dtype, sizeof out->dtype);
    out->repeats = sqlite3_column_int(st, 4);
    out->device_id = sqlite3_column_int64(st, 5);
    out->duplicates = sqlite3_column_int64(st, 6);
    db_column_copy(st, 7, out->started_at, sizeof out->started_at);
    db_column_copy(st, 8, out->finished_at, sizeof out->finished_at);
    out->accounted = sqlite3_column_type(st, 9) != SQLITE_NULL;
    out->energy_j = sqlite3_column_double(st, 9);
    out->wall_s = sqlite3_column_double(st, 10);
    out->jobs_span_s = sqlite3_column_double(st, 11); /* NULL reads as 0 */
    if (out->jobs_span_s < 0)
        out->jobs_span_s = 0;
    out->adaptive_open = sqlite3_column_int(st, 12) != 0;
    sqlite3_finalize(st);

    if (db_prepare(db, "SELECT state, count(*) FROM jobs WHERE batch_id = ?1 GROUP BY state", &st,
                   err, errlen) != 0)
        return -1;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "counting the jobs of batch %lld", (long long)id);
        goto done;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum db_job_state s;
        const unsigned char *name = sqlite3_column_text(st, 0);
        if (name != NULL && db_job_state_parse((const char *)name, &s) == 0 && (int)s < 5)
            out->counts[s] = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "counting the jobs of batch %lld", (long long)id);
        goto done;
    }
    result = 1;
done:
    sqlite3_finalize(st);
    return result;
}

int db_batch_get(struct db *db, int64_t id, struct db_batch *out, char *err, size_t errlen)
{
    /* One read transaction: the row and the counts come from one snapshot. */
    if (db_exec(db, "BEGIN", err, errlen) != 0)
        return -1;
    int found = batch_load(db, id, out, err, errlen);
    if (found < 0) {
        db_rollback(db);
        return -1;
    }
    if (db_commit(db, err, errlen) != 0)
        return -1;
    return found;
}

/* Sets finished_at when the batch was started and nothing of it is left to run. */
static int mark_finished_if_done(struct db *db, int64_t id, const char *now, char *err,
                                 size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "UPDATE batches SET finished_at = ?2 WHERE id = ?1 AND finished_at IS NULL"
                   " AND started_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs"
                   "   WHERE batch_id = ?1 AND state IN ('queued', 'running'))",
                   &st, err, errlen) != 0)
        return -1;
    int bind = sqlite3_bind_int64(st, 1, id) | sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "marking batch %lld finished", (long long)id);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int db_batch_cancel(struct db *db, int64_t id, int64_t *canceled, char *err, size_t errlen)
{
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *st = NULL;
    struct db_batch b;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    int found = batch_load(db, id, &b, err, errlen);
    if (found <= 0) {
        db_rollback(db);
        return found;
    }
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'canceled', finished_at = ?2,"
                   " error = 'canceled with its batch'"
                   " WHERE batch_id = ?1 AND state = 'queued'",
                   &st, err, errlen) != 0)
        goto fail;
    int bind = sqlite3_bind_int64(st, 1, id) | sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "canceling batch %lld", (long long)id);
        goto fail;
    }
    int64_t n = sqlite3_changes(db->conn);
    sqlite3_finalize(st);
    st = NULL;
    /* A canceled adaptive batch gets no more rounds. */
    if (db_prepare(db, "UPDATE batches SET adaptive_open = 0 WHERE id = ?1", &st, err,
                   errlen) != 0)
        goto fail;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "closing batch %lld", (long long)id);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (mark_finished_if_done(db, id, now, err, errlen) != 0)
        goto fail;
    if (db_commit(db, err, errlen) != 0)
        return -1;
    if (canceled != NULL)
        *canceled = n;
    return 1;

fail:
    sqlite3_finalize(st);
    db_rollback(db);
    return -1;
}

int db_batch_account(struct db *db, int64_t batch_id, double energy_j_delta,
                     double wall_s_delta, char *err, size_t errlen)
{
    /* NaN or infinity would poison the sums for good. */
    if (!(energy_j_delta == energy_j_delta) || !(wall_s_delta == wall_s_delta) ||
        energy_j_delta > 1e300 || energy_j_delta < -1e300 || wall_s_delta > 1e300 ||
        wall_s_delta < -1e300) {
        db_err(db, err, errlen, "batch %lld: energy and wall time deltas must be finite",
               (long long)batch_id);
        return -1;
    }
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *st = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (db_prepare(db,
                   "UPDATE batches SET energy_j = coalesce(energy_j, 0) + ?2,"
                   " wall_s = coalesce(wall_s, 0) + ?3, started_at = coalesce(started_at, ?4)"
                   " WHERE id = ?1",
                   &st, err, errlen) != 0)
        goto fail;
    int bind = sqlite3_bind_int64(st, 1, batch_id) | sqlite3_bind_double(st, 2, energy_j_delta) |
               sqlite3_bind_double(st, 3, wall_s_delta) |
               sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "accounting batch %lld", (long long)batch_id);
        goto fail;
    }
    if (sqlite3_changes(db->conn) != 1) {
        db_err(db, err, errlen, "cannot account batch %lld: no such batch", (long long)batch_id);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (mark_finished_if_done(db, batch_id, now, err, errlen) != 0)
        goto fail;
    return db_commit(db, err, errlen);

fail:
    sqlite3_finalize(st);
    db_rollback(db);
    return -1;
}
