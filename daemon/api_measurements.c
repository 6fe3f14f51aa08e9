/*
 * api_measurements.c - the dataset: GET /v1/measurements (filters, keyset
 * pagination by id, JSON or CSV) and GET /v1/measurements/{id}.
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

#include "../common/log.h"
#include "api.h"

#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 10000

static const char *const query_names[] = {"kernel", "dtype", "quality", "after", "limit", "format"};
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
    api_quote(value, q, sizeof(q));
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
            api_quote(key, k, sizeof(k));
            api_error_set(e, 400,
                          "unknown query parameter '%s'; accepted: kernel, dtype, quality, "
                          "after, limit, format",
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
            if (!catalog_find(val)) {
                char names[256];
                api_kernel_names(names, sizeof(names));
                snprintf(expected, sizeof(expected), "one of %s", names);
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
        } else { /* format */
            if (strcmp(val, "json") == 0) {
                out->csv = false;
            } else if (strcmp(val, "csv") == 0) {
                out->csv = true;
            } else {
                bad_value(e, key, val, "one of json, csv");
                return -1;
            }
        }
    }
    return 0;
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

    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
        return;
    }
    if (mq.csv) {
        size_t len = 0;
        char *csv = db_measurements_csv(db, &mq.filter, &len, err, sizeof(err));
        db_pool_release(app->pool, db);
        if (!csv) {
            api_error_set(&e, 500, "cannot export the measurements: %s", err);
            api_respond_error(res, &e, req->path);
            return;
        }
        res->status = 200;
        res->text = csv;
        res->text_len = len;
        res->content_type = "text/csv";
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
        api_quote(req->id ? req->id : "", q, sizeof(q));
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
