/*
 * api_measurements.c - the dataset: GET /v1/measurements (filters, keyset
 * pagination by id, JSON, or streamed JSON lines / CSV) and
 * GET /v1/measurements/{id}.
 *
 * format=jsonl and format=csv stream every matching row (or at most `limit`):
 * the body is produced page by page (STREAM_PAGE_ROWS rows, walked by id with a
 * pool connection taken and released per page), so memory stays flat whatever
 * the table's size and no connection is held while the client reads. A CSV
 * header must come before the first row, so its parameter and rail columns are
 * fixed up front (db_csv_layout_make: one aggregate query over the matching
 * rows) and the stream ends at the highest id that existed then: a row
 * committed later could use a rail the header does not have.
 *
 * Pagination is by id, not offset: a client passes the previous page's
 * next_after as `after`, so rows inserted while it pages (measurements keep
 * arriving) neither repeat nor go missing. Query parameters are strict: an
 * unknown one or a bad value is a 400 naming it, because a typo in a filter
 * would otherwise return the wrong dataset without a word.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "api.h"

#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 10000
#define STREAM_PAGE_ROWS 500

static const char *const query_names[] = {"kernel", "dtype",  "quality", "after",
                                          "limit",  "format", "batch",   "since"};
#define QUERY_NAME_COUNT (sizeof(query_names) / sizeof(query_names[0]))

int api_parse_int64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    const char *d = s[0] == '-' ? s + 1 : s;
    if (!*d)
        return -1;
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static void bad_value(struct api_error *e, const char *name, const char *value,
                      const char *expected)
{
    char q[64];
    text_quote(value, q, sizeof(q));
    api_error_set(e, 400, "query parameter '%s' = '%s': expected %s", name, q, expected);
    api_error_param(e, name);
}

int api_parse_measurement_query(const struct api_query_param *q, size_t n,
                                struct api_measurement_query *out, struct api_error *e)
{
    bool seen[QUERY_NAME_COUNT] = {false};
    char expected[300];
    memset(out, 0, sizeof(*out));
    memset(e, 0, sizeof(*e));
    out->filter.after_id = 0;
    out->filter.limit = API_LIMIT_DEFAULT;

    for (size_t i = 0; i < n; i++) {
        const char *key = q[i].key ? q[i].key : "";
        const char *val = q[i].value ? q[i].value : "";
        size_t which = QUERY_NAME_COUNT;
        for (size_t j = 0; j < QUERY_NAME_COUNT; j++)
            if (strcmp(key, query_names[j]) == 0)
                which = j;
        if (which == QUERY_NAME_COUNT) {
            char k[64];
            text_quote(key, k, sizeof(k));
            api_error_set(e, 400,
                          "unknown query parameter '%s'; accepted: kernel, dtype, quality, "
                          "after, limit, format, batch, since",
                          k);
            api_error_param(e, k);
            return -1;
        }
        if (seen[which]) {
            api_error_set(e, 400, "query parameter '%s' is given more than once", key);
            api_error_param(e, key);
            return -1;
        }
        seen[which] = true;

        if (strcmp(key, "kernel") == 0) {
            /* "graph": the whole-graph measurements (POST /v1/graphs/measure) */
            if (!catalog_find(val) && strcmp(val, DB_GRAPH_KERNEL) != 0) {
                char names[256];
                catalog_kernel_names(names, sizeof(names));
                snprintf(expected, sizeof(expected), "one of %s or %s", names, DB_GRAPH_KERNEL);
                bad_value(e, key, val, expected);
                return -1;
            }
            out->filter.kernel = val;
        } else if (strcmp(key, "dtype") == 0) {
            enum dtype d;
            if (dtype_parse(val, &d) != 0) {
                bad_value(e, key, val, "one of fp32, fp16");
                return -1;
            }
            out->filter.dtype = val;
        } else if (strcmp(key, "quality") == 0) {
            if (strcmp(val, "ok") != 0 && strcmp(val, "suspect") != 0) {
                bad_value(e, key, val, "one of ok, suspect");
                return -1;
            }
            out->filter.quality = val;
        } else if (strcmp(key, "after") == 0) {
            int64_t v;
            if (api_parse_int64(val, &v) != 0 || v < 0) {
                bad_value(e, key, val, "an integer >= 0 (a measurement id)");
                return -1;
            }
            out->filter.after_id = v;
        } else if (strcmp(key, "limit") == 0) {
            int64_t v;
            if (api_parse_int64(val, &v) != 0 || v < 1 || v > API_LIMIT_MAX) {
                snprintf(expected, sizeof(expected), "an integer in [1, %d]", API_LIMIT_MAX);
                bad_value(e, key, val, expected);
                return -1;
            }
            out->filter.limit = v;
            out->limit_given = true;
        } else if (strcmp(key, "batch") == 0) {
            int64_t v;
            if (api_parse_int64(val, &v) != 0 || v < 1) {
                bad_value(e, key, val, "an integer >= 1 (a batch id)");
                return -1;
            }
            out->filter.batch_id = v;
        } else if (strcmp(key, "since") == 0) {
            if (api_parse_iso8601(val, out->since, sizeof(out->since)) != 0) {
                bad_value(e, key, val,
                          "an ISO-8601 time: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]] "
                          "with Z or +HH:MM");
                return -1;
            }
            out->filter.since = out->since;
        } else { /* format */
            out->csv = strcmp(val, "csv") == 0;
            out->jsonl = strcmp(val, "jsonl") == 0;
            if (!out->csv && !out->jsonl && strcmp(val, "json") != 0) {
                bad_value(e, key, val, "one of json, jsonl, csv");
                return -1;
            }
        }
    }
    return 0;
}

/* n decimal digits at *p -> *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int api_parse_iso8601(const char *s, char *out, size_t outlen)
{
    if (!s)
        return -1;
    const char *p = s;
    int year, mon, day, hour = 0, min = 0, sec = 0, ms = 0, zone_min = 0;
    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
        !digits(&p, 2, &day))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min))
            return -1;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return -1;
            if (*p == '.') {
                p++;
                int ndig = 0;
                bool beyond = false; /* a non-zero digit past milliseconds */
                for (; *p >= '0' && *p <= '9'; p++, ndig++) {
                    if (ndig < 3)
                        ms = ms * 10 + (*p - '0');
                    else if (*p != '0')
                        beyond = true;
                }
                if (ndig == 0)
                    return -1;
                for (int i = ndig; i < 3; i++)
                    ms *= 10;
                ms += beyond;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, zh, zm;
            if (!digits(&p, 2, &zh) || *p++ != ':' || !digits(&p, 2, &zm) || zh > 23 || zm > 59)
                return -1;
            zone_min = sign * (zh * 60 + zm);
        }
    }
    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 59)
        return -1;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != day || tm.tm_mon != mon - 1) /* e.g. 02-30 */
        return -1;
    t -= (time_t)zone_min * 60;
    if (ms >= 1000) { /* 59.9995 rounded up */
        t += 1;
        ms -= 1000;
    }
    struct tm utc;
    if (!gmtime_r(&t, &utc) || utc.tm_year + 1900 < 0 || utc.tm_year + 1900 > 9999)
        return -1;
    int w = snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms);
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}

/* ---- streamed formats ---- */

struct mstream {
    struct db_pool *pool;
    struct db_measurement_filter filter; /* strings point to the copies below */
    char kernel[32], dtype[8], quality[16], since[32];
    char path[96];          /* for log lines */
    struct db_csv_layout *layout; /* CSV only */
    int64_t last_id;        /* CSV: no row past the highest id of the layout's time */
    int64_t remaining;      /* rows still to send */
    char *text;             /* the current page, rendered */
    size_t len, cap, off;
    bool end;               /* no further page */
    bool oom;
    int64_t page_rows;      /* rows rendered into the page being filled */
};

static void ms_append(struct mstream *m, const char *s, size_t n)
{
    if (m->oom)
        return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + n)
            cap *= 2;
        char *t = realloc(m->text, cap);
        if (!t) {
            m->oom = true;
            return;
        }
        m->text = t;
        m->cap = cap;
    }
    memcpy(m->text + m->len, s, n);
    m->len += n;
}

static int stream_row(json_t *row, void *ctx)
{
    struct mstream *m = ctx;
    int64_t id = (int64_t)json_integer_value(json_object_get(row, "id"));
    if (m->layout && id > m->last_id) {
        m->end = true;
        return 1;
    }
    char *line;
    size_t n = 0;
    if (m->layout) {
        line = db_csv_layout_row(m->layout, row, &n);
    } else {
        line = json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(12));
        n = line ? strlen(line) : 0;
    }
    if (!line) {
        m->oom = true;
        return 1;
    }
    ms_append(m, line, n);
    if (!m->layout)
        ms_append(m, "\n", 1);
    free(line);
    m->filter.after_id = id;
    m->page_rows++;
    return m->oom ? 1 : 0;
}

/* Renders the next page into m->text. 0, or -1 (logged) to abort the stream. */
static int stream_fill(struct mstream *m)
{
    m->len = m->off = 0;
    m->page_rows = 0;
    m->filter.limit = m->remaining < STREAM_PAGE_ROWS ? m->remaining : STREAM_PAGE_ROWS;
    char err[256] = "";
    struct db *db = db_pool_acquire(m->pool);
    if (!db) {
        log_error("api", "GET %s: no database connection for the next page", m->path);
        return -1;
    }
    int n = db_measurements_each(db, &m->filter, stream_row, m, err, sizeof(err));
    db_pool_release(m->pool, db);
    if (n < 0 || m->oom) {
        log_error("api", "GET %s: streaming stopped after id %" PRId64 ": %s", m->path,
                  m->filter.after_id, n < 0 ? err : "out of memory");
        return -1;
    }
    m->remaining -= m->page_rows;
    if (n < m->filter.limit || m->remaining <= 0)
        m->end = true;
    return 0;
}

static ssize_t stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct mstream *m = ctx;
    while (m->off >= m->len) {
        if (m->end)
            return API_STREAM_END;
        if (stream_fill(m) != 0)
            return API_STREAM_ERROR;
    }
    size_t n = m->len - m->off < max ? m->len - m->off : max;
    memcpy(buf, m->text + m->off, n);
    m->off += n;
    return (ssize_t)n;
}

static void stream_free(void *ctx)
{
    struct mstream *m = ctx;
    if (!m)
        return;
    db_csv_layout_free(m->layout);
    free(m->text);
    free(m);
}

static void copy_opt(const char **dst, char *buf, size_t buflen, const char *src)
{
    if (src) {
        snprintf(buf, buflen, "%s", src);
        *dst = buf;
    }
}

/* format=jsonl|csv: sets up the stream; on failure a problem in res. */
static void measurements_stream(struct api_request *req, struct api_response *res,
                                const struct api_measurement_query *mq)
{
    struct api_error e;
    char err[256] = "";
    struct mstream *m = calloc(1, sizeof(*m));
    if (!m) {
        api_error_set(&e, 500, "out of memory");
        api_respond_error(res, &e, req->path);
        return;
    }
    m->pool = req->app->pool;
    m->filter = mq->filter;
    m->filter.kernel = m->filter.dtype = m->filter.quality = m->filter.since = NULL;
    copy_opt(&m->filter.kernel, m->kernel, sizeof(m->kernel), mq->filter.kernel);
    copy_opt(&m->filter.dtype, m->dtype, sizeof(m->dtype), mq->filter.dtype);
    copy_opt(&m->filter.quality, m->quality, sizeof(m->quality), mq->filter.quality);
    copy_opt(&m->filter.since, m->since, sizeof(m->since), mq->filter.since);
    snprintf(m->path, sizeof(m->path), "%s", req->path);
    m->remaining = mq->limit_given ? mq->filter.limit : INT64_MAX;

    if (mq->csv) {
        struct db *db = db_pool_acquire(m->pool);
        int rc = db ? db_csv_layout_make(db, &m->filter, &m->layout, err, sizeof(err)) : -1;
        if (db)
            db_pool_release(m->pool, db);
        size_t n = 0;
        char *header = rc == 0 ? db_csv_layout_header(m->layout, &n) : NULL;
        if (header)
            ms_append(m, header, n);
        free(header);
        if (rc != 0 || !header || m->oom) {
            stream_free(m);
            api_error_set(&e, 500, "cannot export the measurements: %s",
                          err[0] ? err : db ? "out of memory" : "no database connection is free");
            api_respond_error(res, &e, req->path);
            return;
        }
        m->last_id = db_csv_layout_last_id(m->layout);
    }
    res->status = 200;
    res->content_type = mq->csv ? "text/csv" : "application/x-ndjson";
    res->stream_read = stream_read;
    res->stream_free = stream_free;
    res->stream_ctx = m;
}

struct page {
    json_t *rows;
    int64_t last_id;
    bool oom;
};

static int collect_row(json_t *m, void *ctx)
{
    struct page *p = ctx;
    if (json_array_append(p->rows, m) != 0) {
        p->oom = true;
        return 1;
    }
    p->last_id = (int64_t)json_integer_value(json_object_get(m, "id"));
    return 0;
}

void api_measurements_list(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_measurement_query mq;
    struct api_error e;
    char err[256] = "";

    if (req->query_overflow) {
        api_error_set(&e, 400, "more than %d query parameters", API_MAX_QUERY_PARAMS);
        api_respond_error(res, &e, req->path);
        return;
    }
    if (api_parse_measurement_query(req->query, req->query_count, &mq, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }

    if (mq.csv || mq.jsonl) {
        measurements_stream(req, res, &mq);
        return;
    }
    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
        return;
    }

    struct page page = {json_array(), 0, false};
    int n =
        page.rows ? db_measurements_each(db, &mq.filter, collect_row, &page, err, sizeof(err)) : -1;
    db_pool_release(app->pool, db);
    if (n < 0 || page.oom || !page.rows) {
        json_decref(page.rows);
        api_error_set(&e, 500, "cannot read the measurements: %s", err[0] ? err : "out of memory");
        api_respond_error(res, &e, req->path);
        return;
    }
    size_t count = json_array_size(page.rows);
    json_t *next =
        count > 0 && (int64_t)count >= mq.filter.limit ? json_integer(page.last_id) : json_null();
    api_respond_json(res, 200,
                     json_pack("{s:o,s:o}", "measurements", page.rows, "next_after", next));
}

static int take_first(json_t *m, void *ctx)
{
    json_t **out = ctx;
    *out = json_incref(m);
    return 1;
}

void api_measurements_get(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    char err[256] = "";
    int64_t id;

    if (api_parse_int64(req->id, &id) != 0) {
        char q[64];
        text_quote(req->id ? req->id : "", q, sizeof(q));
        api_error_set(&e, 400, "measurement id '%s' is not an integer", q);
        api_error_param(&e, "id");
        api_respond_error(res, &e, req->path);
        return;
    }
    json_t *m = NULL;
    if (id > 0) {
        /* The first row after id - 1 is id itself when it exists; this tells
         * "absent" (no row) from a database error (-1). */
        struct db_measurement_filter f = {.after_id = id - 1, .limit = 1};
        struct db *db = db_pool_acquire(app->pool);
        if (!db) {
            api_error_set(&e, 500, "no database connection is free");
            api_respond_error(res, &e, req->path);
            return;
        }
        int n = db_measurements_each(db, &f, take_first, &m, err, sizeof(err));
        db_pool_release(app->pool, db);
        if (n < 0) {
            json_decref(m);
            api_error_set(&e, 500, "cannot read measurement %" PRId64 ": %s", id, err);
            api_respond_error(res, &e, req->path);
            return;
        }
        if (m && (int64_t)json_integer_value(json_object_get(m, "id")) != id) {
            json_decref(m);
            m = NULL;
        }
    }
    if (!m) {
        api_error_set(&e, 404, "no measurement with id %" PRId64, id);
        api_respond_error(res, &e, req->path);
        return;
    }
    api_respond_json(res, 200, m);
}
