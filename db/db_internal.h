/*
 * db_internal.h - what the files of the db module share and nobody else sees:
 * the connection struct, error formatting that always names the database path and
 * SQLite's message, small statement helpers, and the few queries more than one
 * file needs (the "devices like" set, queueing a batch's jobs with its
 * duplicate check, training rows), kept in one place so they cannot drift.
 *
 * Unit tests of the db module may include it to reach the raw connection (e.g. to
 * install a TEMP trigger that makes a write fail halfway).
 */
#ifndef JETPROF_DB_INTERNAL_H
#define JETPROF_DB_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "db/db.h"

struct db {
    sqlite3 *conn;
    char path[PATH_MAX];
};

/* db_open that migrates no further than schema `version` (a database already
 * past it is left as it is): for tests of the migrations, which need a
 * database exactly as an older jetprof left it. */
int db_open_version(const char *path, int version, struct db **out, char *err, size_t errlen);

/* err = "<path>: <what>: <sqlite3_errmsg>" (what is printf-style). */
void db_err_sqlite(struct db *db, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* err = "<path>: <what>" for errors that are not SQLite's. */
void db_err(struct db *db, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs SQL without parameters (schema, BEGIN/COMMIT). 0 or -1 with err. */
int db_exec(struct db *db, const char *sql, char *err, size_t errlen);
/* Prepares one statement. 0 or -1 with err naming the statement's purpose. */
int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);

/* BEGIN IMMEDIATE: takes the write lock now, so a read-then-write sequence cannot
 * be overtaken by another connection (busy timeout applies). */
int db_begin(struct db *db, char *err, size_t errlen);
int db_commit(struct db *db, char *err, size_t errlen);
/* Best effort; used on error paths, never overwrites the first error. */
void db_rollback(struct db *db);

/* Binds the text of a fixed-size char array field, never reading past it even if a
 * caller left it unterminated. Bind results are OR-ed together at call sites:
 * SQLITE_OK is 0, so the result is non-zero when any bind failed. */
int db_bind_field(sqlite3_stmt *st, int idx, const char *field, size_t field_size);
#define DB_BIND_FIELD(st, idx, field) db_bind_field((st), (idx), (field), sizeof(field))

/* Copies a text column into dst (truncating, always terminated; NULL -> ""). */
void db_column_copy(sqlite3_stmt *st, int col, char *dst, size_t dstlen);

/* "Devices like" a device (db.h, models section): the ids of the devices rows
 * with the same board_model, gpu_name, executor, sensor_backend and simulated
 * flag as the device whose id is bound at SQL parameter `p` (e.g. "?1"). */
#define DB_LIKE_DEVICES(p)                                                                 \
    "(SELECT o.id FROM devices o JOIN devices d ON o.board_model = d.board_model"          \
    " AND o.gpu_name = d.gpu_name AND o.executor = d.executor"                             \
    " AND o.sensor_backend = d.sensor_backend AND o.simulated = d.simulated"               \
    " WHERE d.id = " p ")"

/* ---- batches.c, inside the caller's transaction (db_begin ... db_commit) ---- */

/* Queues jobs[0..n) in batch_id (fields as db_job_insert; batch_id set here).
 * Unless repeat_existing, a job whose config_key is measured, queued, running
 * or done - also earlier in the same list - is skipped (its id set to 0) and
 * counted in *duplicates. 0, or -1 with err (the caller rolls back). */
int db_batch_queue_jobs(struct db *db, int64_t batch_id, struct db_job *jobs, size_t n,
                        bool repeat_existing, size_t *inserted, size_t *duplicates, char *err,
                        size_t errlen);
/* db_batch_insert without its BEGIN and COMMIT: the batch row (a kind
 * "adaptive" one open) and db_batch_queue_jobs. 0, or -1 with err (the caller
 * rolls back). */
int db_batch_insert_locked(struct db *db, const char *kind, const char *spec_json,
                           const char *dtype, int repeats, int64_t device_id,
                           struct db_job *jobs, size_t n, bool repeat_existing,
                           int64_t *batch_id, size_t *inserted, size_t *duplicates, char *err,
                           size_t errlen);

/* ---- models.c ---- */

/* Which measurements db_training_rows_scoped reads: those on devices like a
 * device, or those of one batch's jobs. */
enum db_training_scope {
    DB_TRAINING_LIKE_DEVICE,
    DB_TRAINING_BATCH,
};
/* db_training_rows with the scope's id (a device id or a batch id): the same
 * usable rows (latency_us > 0, quality, never DB_GRAPH_KERNEL), same order. */
int db_training_rows_scoped(struct db *db, const char *kernel, enum db_training_scope scope,
                            int64_t scope_id, const char *quality,
                            struct db_training_row **out, size_t *count, char *err,
                            size_t errlen);

/* Makes room for element index `need` in the malloc'd array *arr of *cap
 * elements (doubling, at least 16): 0, or -1 when out of memory (the array as
 * it was). Defined in models.c. */
int db_grow(void **arr, size_t *cap, size_t need, size_t elem_size);

/* Binds ?1 = id and ?2 = quality (NULL: SQL NULL, "any quality"): the
 * parameters of every "devices like / usable rows" query. SQLITE_OK or an
 * error code. Defined in models.c. */
int db_bind_id_quality(sqlite3_stmt *st, int64_t id, const char *quality);

#endif
