/*
 * api_export.c - GET /v1/export.sqlite: the whole dataset as one SQLite file,
 * a consistent snapshot taken with the online backup API (db_export_snapshot)
 * while the runner goes on writing.
 *
 * The snapshot goes to a temporary file next to the database (same disk, which
 * has room for a copy more often than a RAM-backed /tmp on a Jetson), or in
 * $TMPDIR / /tmp when that directory refuses. The file is unlinked as soon as it
 * is open for reading, so it disappears when the response ends or the client
 * goes away, and only the open descriptor keeps it while it streams.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "api.h"

struct export_stream {
    int fd;
};

static ssize_t export_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct export_stream *x = ctx;
    for (;;) {
        ssize_t n = read(x->fd, buf, max);
        if (n > 0)
            return n;
        if (n == 0)
            return API_STREAM_END;
        if (errno != EINTR) {
            log_error("api", "GET /v1/export.sqlite: reading the snapshot: %s", strerror(errno));
            return API_STREAM_ERROR;
        }
    }
}

static void export_free(void *ctx)
{
    struct export_stream *x = ctx;
    if (!x)
        return;
    close(x->fd);
    free(x);
}

/* A fresh empty file from template dir/.jetprof-export-XXXXXX; 0 or -1 (errno). */
static int temp_in(const char *dir, char *path, size_t pathlen)
{
    int w = snprintf(path, pathlen, "%s/.jetprof-export-XXXXXX", dir);
    if (w < 0 || (size_t)w >= pathlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

void api_export_sqlite(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    const char *db_path = req->app->cfg->db;
    if (req->query_count > 0 || req->query_overflow) {
        char k[64];
        text_quote(req->query_count > 0 && req->query[0].key ? req->query[0].key : "", k,
                  sizeof(k));
        api_error_set(&e, 400, "unknown query parameter '%s'; this endpoint takes none", k);
        api_error_param(&e, k);
        api_respond_error(res, &e, req->path);
        return;
    }

    char dir[sizeof(req->app->cfg->db)], path[sizeof(dir) + 32];
    snprintf(dir, sizeof(dir), "%s", db_path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int first_errno = 0;
    if (temp_in(dir, path, sizeof(path)) != 0) {
        first_errno = errno;
        const char *tmp = getenv("TMPDIR");
        if (temp_in(tmp && *tmp ? tmp : "/tmp", path, sizeof(path)) != 0) {
            api_error_set(&e, 500, "cannot create a file for the snapshot in %s (%s) or %s: %s",
                          dir, strerror(first_errno), tmp && *tmp ? tmp : "/tmp",
                          strerror(errno));
            api_respond_error(res, &e, req->path);
            return;
        }
    }

    char err[512] = "";
    int pages = 0;
    int64_t t0 = clock_mono_ns();
    if (db_export_snapshot(db_path, path, &pages, err, sizeof(err)) != 0) {
        unlink(path);
        log_error("api", "GET /v1/export.sqlite: %s", err);
        api_error_set(&e, 500, "cannot take the snapshot: %s", err);
        api_respond_error(res, &e, req->path);
        return;
    }
    struct export_stream *x = malloc(sizeof(*x));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int open_errno = errno;
    unlink(path); /* the descriptor keeps it until the response is done */
    if (!x || fd < 0) {
        if (fd >= 0)
            close(fd);
        free(x);
        api_error_set(&e, 500, "cannot read the snapshot back: %s",
                      x ? strerror(open_errno) : "out of memory");
        api_respond_error(res, &e, req->path);
        return;
    }
    x->fd = fd;
    log_info("api", "export snapshot: %d pages in %.1f ms", pages,
             (double)(clock_mono_ns() - t0) / 1e6);

    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    else
        snprintf(stamp, sizeof(stamp), "snapshot");
    snprintf(res->content_disposition, sizeof(res->content_disposition),
             "attachment; filename=\"jetprof-%s.sqlite\"", stamp);
    res->status = 200;
    res->content_type = "application/vnd.sqlite3";
    res->stream_read = export_read;
    res->stream_free = export_free;
    res->stream_ctx = x;
}
