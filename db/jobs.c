/*
 * jobs.c - the job queue in SQLite: every measurement, ad-hoc or from a sweep, is a
 * row here that moves queued -> running -> done | failed | canceled.
 *
 * The runner thread is the only consumer (db_job_claim_next); HTTP threads insert.
 * Claiming is one BEGIN IMMEDIATE transaction so two claimers can never take the
 * same job. A job is marked done only by db_job_finish (measurements.c), together
 * with its measurement. HTTP threads also list jobs and cancel queued ones
 * (db_jobs_list, db_job_cancel). After a crash, db_jobs_recover at start puts interrupted
 * jobs back in the queue, or fails them when they keep getting interrupted.
 * A whole-graph job (schema 3) carries the id of the graph it measures: kernel
 * DB_GRAPH_KERNEL and a graph_id go together, or neither (db_job_insert).
 */
#include "db/db_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

static const char *const state_names[] = {
    [DB_JOB_QUEUED] = "queued",   [DB_JOB_RUNNING] = "running",
    [DB_JOB_DONE] = "done",       [DB_JOB_FAILED] = "failed",
    [DB_JOB_CANCELED] = "canceled",
};
#define STATE_COUNT ((int)(sizeof state_names / sizeof state_names[0]))

const char *db_job_state_name(enum db_job_state s)
{
    if ((int)s < 0 || (int)s >= STATE_COUNT)
        return "unknown";
    return state_names[s];
}

int db_job_state_parse(const char *name, enum db_job_state *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum db_job_state)i;
            return 0;
        }
    }
    return -1;
}

#define JOB_COLUMNS                                                                       \
    "id, batch_id, kernel, dtype, params_json, config_key, priority, repeats, state,"     \
    " attempts, max_attempts, error, measurement_id, created_at, started_at, finished_at,"   \
    " graph_id"

static int job_from_row(struct db *db, sqlite3_stmt *st, struct db_job *job, char *err,
                        size_t errlen)
{
    memset(job, 0, sizeof *job);
    job->id = sqlite3_column_int64(st, 0);
    job->batch_id = sqlite3_column_int64(st, 1); /* NULL reads as 0 */
    db_column_copy(st, 2, job->kernel, sizeof job->kernel);
    db_column_copy(st, 3, job->dtype, sizeof job->dtype);
    db_column_copy(st, 4, job->params_json, sizeof job->params_json);
    db_column_copy(st, 5, job->config_key, sizeof job->config_key);
    job->priority = sqlite3_column_int(st, 6);
    job->repeats = sqlite3_column_int(st, 7);
    const unsigned char *state = sqlite3_column_text(st, 8);
    if (state == NULL || db_job_state_parse((const char *)state, &job->state) != 0) {
        db_err(db, err, errlen, "job %lld has an unknown state '%s'", (long long)job->id,
               state ? (const char *)state : "NULL");
        return -1;
    }
    job->attempts = sqlite3_column_int(st, 9);
    job->max_attempts = sqlite3_column_int(st, 10);
    db_column_copy(st, 11, job->error, sizeof job->error);
    job->measurement_id = sqlite3_column_int64(st, 12);
    db_column_copy(st, 13, job->created_at, sizeof job->created_at);
    db_column_copy(st, 14, job->started_at, sizeof job->started_at);
    db_column_copy(st, 15, job->finished_at, sizeof job->finished_at);
    job->graph_id = sqlite3_column_int64(st, 16); /* NULL (a kernel job) reads as 0 */
    return 0;
}

/* Reads job `id` with an already-open connection. 1 found, 0 none, -1 error. */
static int job_load(struct db *db, int64_t id, struct db_job *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &st, err, errlen) != 0)
        return -1;
    int result = -1;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading job %lld", (long long)id);
        goto done;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = 0;
    } else if (rc == SQLITE_ROW) {
        result = job_from_row(db, st, out, err, errlen) == 0 ? 1 : -1;
    } else {
        db_err_sqlite(db, err, errlen, "reading job %lld", (long long)id);
    }
done:
    sqlite3_finalize(st);
    return result;
}

int db_job_insert(struct db *db, struct db_job *job, char *err, size_t errlen)
{
    if (job->kernel[0] == '\0' || job->dtype[0] == '\0' || job->config_key[0] == '\0') {
        db_err(db, err, errlen, "job: kernel, dtype and config_key are required");
        return -1;
    }
    if (job->max_attempts < 1) {
        db_err(db, err, errlen, "job %s: max_attempts must be at least 1 (got %d)",
               job->config_key, job->max_attempts);
        return -1;
    }
    if (job->repeats < 0 || job->batch_id < 0 || job->graph_id < 0) {
        db_err(db, err, errlen, "job %s: repeats (%d), batch_id (%lld) and graph_id (%lld) must"
               " not be negative", job->config_key, job->repeats, (long long)job->batch_id,
               (long long)job->graph_id);
        return -1;
    }
    /* A graph job and only a graph job names a graph: the runner picks how to
     * measure a job by its kernel, and the graph's link row needs the id. */
    bool graph_kernel = strncmp(job->kernel, DB_GRAPH_KERNEL, sizeof job->kernel) == 0;
    if (graph_kernel != (job->graph_id > 0)) {
        db_err(db, err, errlen, "job %s: %s", job->config_key,
               graph_kernel ? "a " DB_GRAPH_KERNEL " job needs a graph_id"
                            : "only a " DB_GRAPH_KERNEL " job has a graph_id");
        return -1;
    }
    /* Stored text is parsed back for every API answer: refuse what would not parse. */
    json_error_t jerr;
    json_t *params = json_loadb(job->params_json, strnlen(job->params_json,
                                sizeof job->params_json), JSON_REJECT_DUPLICATES, &jerr);
    if (params == NULL || !json_is_object(params)) {
        db_err(db, err, errlen, "job %s: params_json is not a JSON object%s%s",
               job->config_key, params == NULL ? ": " : "", params == NULL ? jerr.text : "");
        json_decref(params);
        return -1;
    }
    json_decref(params);

    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "INSERT INTO jobs (batch_id, kernel, dtype, params_json, config_key, priority,"
                   " repeats, state, attempts, max_attempts, created_at, graph_id)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', 0, ?8, ?9, ?10)",
                   &st, err, errlen) != 0)
        return -1;
    int bind = (job->batch_id > 0 ? sqlite3_bind_int64(st, 1, job->batch_id)
                                  : sqlite3_bind_null(st, 1)) |
               DB_BIND_FIELD(st, 2, job->kernel) | DB_BIND_FIELD(st, 3, job->dtype) |
               DB_BIND_FIELD(st, 4, job->params_json) | DB_BIND_FIELD(st, 5, job->config_key) |
               sqlite3_bind_int(st, 6, job->priority) | sqlite3_bind_int(st, 7, job->repeats) |
               sqlite3_bind_int(st, 8, job->max_attempts) |
               sqlite3_bind_text(st, 9, now, -1, SQLITE_TRANSIENT) |
               (job->graph_id > 0 ? sqlite3_bind_int64(st, 10, job->graph_id)
                                  : sqlite3_bind_null(st, 10));
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "inserting job %s", job->config_key);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    job->id = sqlite3_last_insert_rowid(db->conn);
    job->state = DB_JOB_QUEUED;
    job->attempts = 0;
    job->measurement_id = 0;
    job->error[0] = '\0';
    snprintf(job->created_at, sizeof job->created_at, "%s", now);
    job->started_at[0] = job->finished_at[0] = '\0';
    return 0;
}

int db_job_claim_next(struct db *db, struct db_job *out, char *err, size_t errlen)
{
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *pick = NULL, *mark = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (db_prepare(db,
                   "SELECT id FROM jobs WHERE state = 'queued'"
                   " ORDER BY priority DESC, id LIMIT 1",
                   &pick, err, errlen) != 0)
        goto fail;
    int rc = sqlite3_step(pick);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(pick);
        db_rollback(db);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "looking for a queued job");
        goto fail;
    }
    int64_t id = sqlite3_column_int64(pick, 0);
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                   " started_at = ?2, finished_at = NULL WHERE id = ?1 AND state = 'queued'",
                   &mark, err, errlen) != 0)
        goto fail;
    if ((sqlite3_bind_int64(mark, 1, id) | sqlite3_bind_text(mark, 2, now, -1,
                                                             SQLITE_TRANSIENT)) != SQLITE_OK ||
        sqlite3_step(mark) != SQLITE_DONE || sqlite3_changes(db->conn) != 1) {
        db_err_sqlite(db, err, errlen, "marking job %lld running", (long long)id);
        goto fail;
    }
    sqlite3_finalize(pick);
    sqlite3_finalize(mark);
    pick = mark = NULL;
    int found = job_load(db, id, out, err, errlen);
    if (found == 0)
        db_err(db, err, errlen, "job %lld vanished while being claimed", (long long)id);
    if (found != 1)
        goto fail;
    if (db_commit(db, err, errlen) != 0)
        return -1;
    return 1;

fail:
    sqlite3_finalize(pick);
    sqlite3_finalize(mark);
    db_rollback(db);
    return -1;
}

int db_job_get(struct db *db, int64_t id, struct db_job *out, char *err, size_t errlen)
{
    return job_load(db, id, out, err, errlen);
}

int db_job_fail(struct db *db, int64_t job_id, const char *reason, char *err, size_t errlen)
{
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'failed', error = ?2, finished_at = ?3"
                   " WHERE id = ?1 AND state = 'running'",
                   &st, err, errlen) != 0)
        return -1;
    int bind = sqlite3_bind_int64(st, 1, job_id) |
               sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_TRANSIENT) |
               sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "failing job %lld", (long long)job_id);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (sqlite3_changes(db->conn) == 1)
        return 0;

    /* Nothing changed: say why. */
    struct db_job job;
    int found = job_load(db, job_id, &job, err, errlen);
    if (found == 0)
        db_err(db, err, errlen, "cannot fail job %lld: no such job", (long long)job_id);
    else if (found == 1)
        db_err(db, err, errlen, "cannot fail job %lld: it is %s, not running",
               (long long)job_id, db_job_state_name(job.state));
    return -1;
}

int db_jobs_recover(struct db *db, int *requeued, int *failed, char *err, size_t errlen)
{
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    sqlite3_stmt *fail_st = NULL, *requeue_st = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    /* printf() here formats a column value inside SQLite; nothing is pasted into SQL. */
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'failed', finished_at = ?1,"
                   " error = printf('interrupted %d times (the daemon stopped during the"
                   " measurement)', attempts)"
                   " WHERE state = 'running' AND attempts >= max_attempts",
                   &fail_st, err, errlen) != 0)
        goto fail;
    if (sqlite3_bind_text(fail_st, 1, now, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(fail_st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "failing repeatedly interrupted jobs");
        goto fail;
    }
    int n_failed = sqlite3_changes(db->conn);
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'",
                   &requeue_st, err, errlen) != 0)
        goto fail;
    if (sqlite3_step(requeue_st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "requeueing interrupted jobs");
        goto fail;
    }
    int n_requeued = sqlite3_changes(db->conn);
    sqlite3_finalize(fail_st);
    sqlite3_finalize(requeue_st);
    if (db_commit(db, err, errlen) != 0)
        return -1;
    if (n_failed > 0 || n_requeued > 0)
        log_warn("db", "%s: recovered interrupted jobs: %d queued again, %d failed "
                 "(too many attempts)", db->path, n_requeued, n_failed);
    if (requeued != NULL)
        *requeued = n_requeued;
    if (failed != NULL)
        *failed = n_failed;
    return 0;

fail:
    sqlite3_finalize(fail_st);
    sqlite3_finalize(requeue_st);
    db_rollback(db);
    return -1;
}

int db_job_counts(struct db *db, int64_t counts[5], char *err, size_t errlen)
{
    for (int i = 0; i < 5; i++)
        counts[i] = 0;
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT state, count(*) FROM jobs GROUP BY state", &st, err, errlen) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        enum db_job_state s;
        const unsigned char *name = sqlite3_column_text(st, 0);
        if (name != NULL && db_job_state_parse((const char *)name, &s) == 0 && (int)s < 5)
            counts[s] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "counting jobs");
        return -1;
    }
    return 0;
}

int db_jobs_list(struct db *db, const struct db_job_filter *f, struct db_job **out,
                 size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    if (f->limit < 1 || f->limit > 10000) {
        db_err(db, err, errlen, "job list limit %lld is outside [1, 10000]", (long long)f->limit);
        return -1;
    }
    if (f->state >= STATE_COUNT) {
        db_err(db, err, errlen, "job list: state %d is not a job state", f->state);
        return -1;
    }
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "SELECT " JOB_COLUMNS " FROM jobs WHERE id > ?1"
                   " AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR batch_id = ?3)"
                   " ORDER BY id LIMIT ?4",
                   &st, err, errlen) != 0)
        return -1;
    int bind = sqlite3_bind_int64(st, 1, f->after_id) |
               (f->state >= 0 ? sqlite3_bind_text(st, 2, state_names[f->state], -1, SQLITE_STATIC)
                              : sqlite3_bind_null(st, 2)) |
               (f->batch_id > 0 ? sqlite3_bind_int64(st, 3, f->batch_id)
                                : sqlite3_bind_null(st, 3)) |
               sqlite3_bind_int64(st, 4, f->limit);
    if (bind != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "binding the job list filter");
        sqlite3_finalize(st);
        return -1;
    }
    struct db_job *jobs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&jobs, &cap, n, sizeof *jobs) != 0) {
            db_err(db, err, errlen, "listing jobs: out of memory");
            goto fail;
        }
        if (job_from_row(db, st, &jobs[n], err, errlen) != 0)
            goto fail;
        n++;
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "listing jobs");
        goto fail;
    }
    sqlite3_finalize(st);
    *out = jobs;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    free(jobs);
    return -1;
}

int db_job_cancel(struct db *db, int64_t id, struct db_job *out, char *err, size_t errlen)
{
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    struct db_job job;
    sqlite3_stmt *st = NULL;
    if (db_begin(db, err, errlen) != 0)
        return -1;
    int found = job_load(db, id, &job, err, errlen);
    if (found < 0)
        goto fail;
    if (found == 0 || job.state != DB_JOB_QUEUED) {
        db_rollback(db);
        if (found == 1 && out != NULL)
            *out = job;
        return found == 0 ? 0 : 2;
    }
    if (db_prepare(db,
                   "UPDATE jobs SET state = 'canceled', finished_at = ?2, error = 'canceled'"
                   " WHERE id = ?1 AND state = 'queued'",
                   &st, err, errlen) != 0)
        goto fail;
    int bind = sqlite3_bind_int64(st, 1, id) | sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db->conn) != 1) {
        db_err_sqlite(db, err, errlen, "canceling job %lld", (long long)id);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* The batch's last outstanding job canceled: the batch is finished. */
    if (job.batch_id > 0) {
        if (db_prepare(db,
                       "UPDATE batches SET finished_at = ?2 WHERE id = ?1 AND finished_at IS NULL"
                       " AND started_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs"
                       "   WHERE batch_id = ?1 AND state IN ('queued', 'running'))",
                       &st, err, errlen) != 0)
            goto fail;
        bind = sqlite3_bind_int64(st, 1, job.batch_id) |
               sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
        if (bind != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
            db_err_sqlite(db, err, errlen, "marking batch %lld finished", (long long)job.batch_id);
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (out != NULL && job_load(db, id, out, err, errlen) != 1)
        goto fail;
    if (db_commit(db, err, errlen) != 0)
        return -1;
    return 1;

fail:
    sqlite3_finalize(st);
    db_rollback(db);
    return -1;
}
