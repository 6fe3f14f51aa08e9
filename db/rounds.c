/*
 * rounds.c - adaptive sampling in the store (schema 3): a batch of kind
 * "adaptive" is open (batches.adaptive_open) from its insert until its last
 * round is committed or it is canceled; between rounds the runner trains on the
 * batch's measurements (db_training_rows_batch), proposes configurations and
 * commits the round: its row and the proposals' jobs in one transaction, so a
 * crash never leaves a round recorded without its jobs or jobs without their
 * round.
 *
 * The proposals are queued through db_batch_queue_jobs (batches.c): a proposal
 * is a duplicate exactly when a configuration of any batch would be. A round
 * that queues jobs clears the batch's finished_at (db_batch_account set it when
 * the previous round's jobs ran out); db_adaptive_batches_ready lists the open
 * batches with nothing left to run, i.e. waiting for their next round.
 */
#include "db/db_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

static int validate_round(struct db *db, int64_t batch_id, const struct db_batch_round *r,
                          char *err, size_t errlen)
{
    if (r->round < 0 || r->rows < 0) {
        db_err(db, err, errlen, "batch %lld: round (%d) and rows (%lld) must not be negative",
               (long long)batch_id, r->round, (long long)r->rows);
        return -1;
    }
    if (strnlen(r->note, sizeof r->note) == sizeof r->note) {
        db_err(db, err, errlen, "batch %lld round %d: the note is not terminated",
               (long long)batch_id, r->round);
        return -1;
    }
    /* Read back and shown as an object (db_batch_rounds_json). */
    size_t len = strnlen(r->metrics_json, sizeof r->metrics_json);
    json_error_t jerr;
    json_t *v = len < sizeof r->metrics_json
                    ? json_loadb(r->metrics_json, len, JSON_REJECT_DUPLICATES, &jerr)
                    : NULL;
    bool terminated = len < sizeof r->metrics_json;
    bool parse_error = terminated && v == NULL, object = v != NULL && json_is_object(v);
    json_decref(v);
    if (!object) {
        db_err(db, err, errlen, "batch %lld round %d: metrics_json is not a JSON object%s%s",
               (long long)batch_id, r->round, parse_error ? ": " : "",
               !terminated ? " (unterminated)" : parse_error ? jerr.text : "");
        return -1;
    }
    return 0;
}

/* Runs a one-row UPDATE of batch `id` (bound at ?1) inside the caller's
 * transaction. */
static int update_batch(struct db *db, const char *sql, int64_t id, const char *what,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, sql, &st, err, errlen) != 0)
        return -1;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "%s batch %lld", what, (long long)id);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* Is batch_id an open adaptive batch without round `round`? 0 yes, -1 with
 * err saying why not. Inside the caller's transaction. */
static int check_open(struct db *db, int64_t batch_id, int round, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "SELECT adaptive_open, EXISTS (SELECT 1 FROM batch_rounds"
                   "   WHERE batch_id = ?1 AND round = ?2) FROM batches WHERE id = ?1",
                   &st, err, errlen) != 0)
        return -1;
    int result = -1;
    if ((sqlite3_bind_int64(st, 1, batch_id) | sqlite3_bind_int(st, 2, round)) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading batch %lld", (long long)batch_id);
        goto done;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        db_err(db, err, errlen, "cannot commit round %d: no such batch %lld", round,
               (long long)batch_id);
    } else if (rc != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "reading batch %lld", (long long)batch_id);
    } else if (sqlite3_column_int(st, 0) == 0) {
        db_err(db, err, errlen, "cannot commit round %d: batch %lld is not an open adaptive"
               " batch", round, (long long)batch_id);
    } else if (sqlite3_column_int(st, 1) != 0) {
        db_err(db, err, errlen, "cannot commit round %d of batch %lld: that round is stored"
               " already", round, (long long)batch_id);
    } else {
        result = 0;
    }
done:
    sqlite3_finalize(st);
    return result;
}

int db_batch_round_commit(struct db *db, int64_t batch_id, struct db_batch_round *round,
                          struct db_job *jobs, size_t n, bool last, char *err,
                          size_t errlen)
{
    if (round == NULL || (n > 0 && jobs == NULL)) {
        db_err(db, err, errlen, "batch %lld: a round needs its row (and its jobs when any)",
               (long long)batch_id);
        return -1;
    }
    if (validate_round(db, batch_id, round, err, errlen) != 0)
        return -1;
    char now[32];
    clock_utc_iso8601(now, sizeof now);
    size_t added = 0, dups = 0;
    sqlite3_stmt *ins = NULL;

    if (db_begin(db, err, errlen) != 0)
        return -1;
    if (check_open(db, batch_id, round->round, err, errlen) != 0)
        goto fail;
    /* Proposals are new configurations by definition: never repeat_existing. */
    if (db_batch_queue_jobs(db, batch_id, jobs, n, false, &added, &dups, err, errlen) != 0)
        goto fail;
    if (db_prepare(db,
                   "INSERT INTO batch_rounds (batch_id, round, rows, metrics_json, added,"
                   " duplicates, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                   &ins, err, errlen) != 0)
        goto fail;
    int bind = sqlite3_bind_int64(ins, 1, batch_id) | sqlite3_bind_int(ins, 2, round->round) |
               sqlite3_bind_int64(ins, 3, round->rows) |
               DB_BIND_FIELD(ins, 4, round->metrics_json) |
               sqlite3_bind_int64(ins, 5, (sqlite3_int64)added) |
               sqlite3_bind_int64(ins, 6, (sqlite3_int64)dups) |
               DB_BIND_FIELD(ins, 7, round->note) |
               sqlite3_bind_text(ins, 8, now, -1, SQLITE_TRANSIENT);
    if (bind != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "storing round %d of batch %lld", round->round,
                      (long long)batch_id);
        goto fail;
    }
    sqlite3_finalize(ins);
    ins = NULL;
    /* New jobs: the batch is running again until they are done. */
    if (added > 0 &&
        update_batch(db, "UPDATE batches SET finished_at = NULL WHERE id = ?1", batch_id,
                     "reopening", err, errlen) != 0)
        goto fail;
    if (last && update_batch(db, "UPDATE batches SET adaptive_open = 0 WHERE id = ?1",
                             batch_id, "closing", err, errlen) != 0)
        goto fail;
    if (db_commit(db, err, errlen) != 0)
        return -1;
    round->added = (int64_t)added;
    round->duplicates = (int64_t)dups;
    snprintf(round->created_at, sizeof round->created_at, "%s", now);
    return 0;

fail:
    sqlite3_finalize(ins);
    db_rollback(db);
    return -1;
}

json_t *db_batch_rounds_json(struct db *db, int64_t batch_id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (arr == NULL) {
        db_err(db, err, errlen, "rounds of batch %lld: out of memory", (long long)batch_id);
        return NULL;
    }
    if (db_prepare(db,
                   "SELECT round, rows, metrics_json, added, duplicates, note, created_at"
                   " FROM batch_rounds WHERE batch_id = ?1 ORDER BY round",
                   &st, err, errlen) != 0)
        goto fail;
    if (sqlite3_bind_int64(st, 1, batch_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading the rounds of batch %lld", (long long)batch_id);
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int round = sqlite3_column_int(st, 0);
        const char *metrics_text = (const char *)sqlite3_column_text(st, 2);
        json_error_t jerr;
        json_t *metrics = json_loads(metrics_text ? metrics_text : "", 0, &jerr);
        if (metrics == NULL || !json_is_object(metrics)) {
            db_err(db, err, errlen, "batch %lld round %d: metrics_json is not a JSON object",
                   (long long)batch_id, round);
            json_decref(metrics);
            goto fail;
        }
        json_t *o = json_object();
        /* json_array_append_new and json_object_set_new take their value even
         * when they fail. */
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(metrics);
            db_err(db, err, errlen, "rounds of batch %lld: out of memory", (long long)batch_id);
            goto fail;
        }
        const char *note = (const char *)sqlite3_column_text(st, 5);
        const char *created = (const char *)sqlite3_column_text(st, 6);
        int bad = json_object_set_new(o, "round", json_integer(round)) |
                  json_object_set_new(o, "rows", json_integer(sqlite3_column_int64(st, 1))) |
                  json_object_set_new(o, "metrics", metrics) |
                  json_object_set_new(o, "added", json_integer(sqlite3_column_int64(st, 3))) |
                  json_object_set_new(o, "duplicates",
                                      json_integer(sqlite3_column_int64(st, 4))) |
                  json_object_set_new(o, "note", json_string(note ? note : "")) |
                  json_object_set_new(o, "created_at", json_string(created ? created : ""));
        if (bad != 0) {
            db_err(db, err, errlen, "rounds of batch %lld: out of memory", (long long)batch_id);
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "reading the rounds of batch %lld", (long long)batch_id);
        goto fail;
    }
    sqlite3_finalize(st);
    return arr;

fail:
    sqlite3_finalize(st);
    json_decref(arr);
    return NULL;
}

int db_batch_rounds_count(struct db *db, int64_t batch_id, int *count, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT count(*) FROM batch_rounds WHERE batch_id = ?1", &st, err,
                   errlen) != 0)
        return -1;
    if (sqlite3_bind_int64(st, 1, batch_id) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        db_err_sqlite(db, err, errlen, "counting the rounds of batch %lld", (long long)batch_id);
        sqlite3_finalize(st);
        return -1;
    }
    *count = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int db_adaptive_batches_ready(struct db *db, int64_t **ids, size_t *count, char *err,
                              size_t errlen)
{
    *ids = NULL;
    *count = 0;
    sqlite3_stmt *st;
    if (db_prepare(db,
                   "SELECT b.id FROM batches b WHERE b.adaptive_open = 1 AND NOT EXISTS"
                   " (SELECT 1 FROM jobs j WHERE j.batch_id = b.id"
                   "   AND j.state IN ('queued', 'running')) ORDER BY b.id",
                   &st, err, errlen) != 0)
        return -1;
    int64_t *arr = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, n, sizeof *arr) != 0) {
            db_err(db, err, errlen, "listing adaptive batches: out of memory");
            goto fail;
        }
        arr[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        db_err_sqlite(db, err, errlen, "listing adaptive batches");
        goto fail;
    }
    sqlite3_finalize(st);
    *ids = arr;
    *count = n;
    return 0;

fail:
    sqlite3_finalize(st);
    free(arr);
    return -1;
}

int db_batch_spec(struct db *db, int64_t batch_id, char **spec_json, char *err, size_t errlen)
{
    *spec_json = NULL;
    sqlite3_stmt *st;
    if (db_prepare(db, "SELECT spec_json FROM batches WHERE id = ?1", &st, err, errlen) != 0)
        return -1;
    int result = -1;
    if (sqlite3_bind_int64(st, 1, batch_id) != SQLITE_OK) {
        db_err_sqlite(db, err, errlen, "reading the spec of batch %lld", (long long)batch_id);
        goto done;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = 0;
    } else if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 0);
        *spec_json = strdup(text != NULL ? (const char *)text : "");
        if (*spec_json == NULL)
            db_err(db, err, errlen, "reading the spec of batch %lld: out of memory",
                   (long long)batch_id);
        else
            result = 1;
    } else {
        db_err_sqlite(db, err, errlen, "reading the spec of batch %lld", (long long)batch_id);
    }
done:
    sqlite3_finalize(st);
    return result;
}

int db_training_rows_batch(struct db *db, const char *kernel, int64_t batch_id,
                           const char *quality, struct db_training_row **out, size_t *count,
                           char *err, size_t errlen)
{
    return db_training_rows_scoped(db, kernel, DB_TRAINING_BATCH, batch_id, quality, out, count,
                                   err, errlen);
}
