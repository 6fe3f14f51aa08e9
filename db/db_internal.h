/*
 * db_internal.h - what db.c, jobs.c and measurements.c share and nobody else sees:
 * the connection struct, error formatting that always names the database path and
 * SQLite's message, and small statement helpers.
 *
 * Unit tests of the db module may include it to reach the raw connection (e.g. to
 * install a TEMP trigger that makes a write fail halfway).
 */
#ifndef JETPROF_DB_INTERNAL_H
#define JETPROF_DB_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>

#include "db/db.h"

struct db {
    sqlite3 *conn;
    char path[PATH_MAX];
};

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

#endif
