/*
 * export.c - the dataset as one file: a consistent snapshot of the database
 * made with SQLite's online backup API (GET /v1/export.sqlite).
 *
 * The snapshot uses a connection of its own, not one of the pool's, so the
 * backup's read transaction never entangles a connection that HTTP threads
 * share. sqlite3_backup_step(-1) copies every page inside one read
 * transaction: in WAL mode writers (the runner) go on committing meanwhile,
 * and the copy is the database as of the moment the step began, never a mix.
 */
#include "db/db_internal.h"

#include <stdio.h>
#include <string.h>

#include "db/db.h"

#define EXPORT_BUSY_TIMEOUT_MS 5000
#define EXPORT_BUSY_RETRIES 50 /* step refused because the source was locked */

static void export_err(char *err, size_t errlen, const char *what, const char *path,
                       sqlite3 *conn)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "export: %s %s: %s", what, path,
                 conn ? sqlite3_errmsg(conn) : "out of memory");
}

int db_export_snapshot(const char *src_path, const char *dest_path, int *pages, char *err,
                       size_t errlen)
{
    sqlite3 *src = NULL, *dest = NULL;
    int result = -1;
    if (src_path == NULL || dest_path == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "export: no source or destination path");
        return -1;
    }
    /* Read-write without create: an absent database is an error, not a new file,
     * and a WAL reader may need to write the -shm index. Nothing is written. */
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        export_err(err, errlen, "opening", src_path, src);
        goto done;
    }
    sqlite3_busy_timeout(src, EXPORT_BUSY_TIMEOUT_MS);
    if (sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        export_err(err, errlen, "creating", dest_path, dest);
        goto done;
    }
    sqlite3_backup *b = sqlite3_backup_init(dest, "main", src, "main");
    if (b == NULL) {
        export_err(err, errlen, "starting the backup into", dest_path, dest);
        goto done;
    }
    int rc, tries = 0;
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (++tries > EXPORT_BUSY_RETRIES)
            break;
        sqlite3_sleep(100);
    }
    int page_count = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "export: copying %s into %s: %s", src_path, dest_path,
                     sqlite3_errstr(rc));
        goto done;
    }
    /* The copy carries the source's WAL flag; a downloaded file should open on
     * its own, without -wal and -shm companions. */
    char *msg = NULL;
    if (sqlite3_exec(dest, "PRAGMA journal_mode=DELETE", NULL, NULL, &msg) != SQLITE_OK) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "export: switching %s to rollback journal: %s", dest_path,
                     msg ? msg : sqlite3_errmsg(dest));
        sqlite3_free(msg);
        goto done;
    }
    if (pages != NULL)
        *pages = page_count;
    result = 0;
done:
    if (dest != NULL && sqlite3_close(dest) != SQLITE_OK && result == 0) {
        export_err(err, errlen, "closing", dest_path, dest);
        result = -1;
    }
    sqlite3_close(src);
    return result;
}
