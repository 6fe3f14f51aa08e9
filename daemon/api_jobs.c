/*
 * api_jobs.c - the queue over HTTP: POST /v1/jobs queues a batch (a list of
 * configurations or a sweep, expanded by sweep.c), GET /v1/jobs lists jobs
 * (filters, paging), GET/DELETE /v1/jobs/{id} reads or cancels one queued job,
 * GET/DELETE /v1/batches/{id} shows a batch's progress and cost or cancels the
 * rest of it.
 *
 * A batch is queued in one transaction with duplicates skipped (db_batch_insert)
 * and the runner is woken; the request returns at once with the batch id - an
 * overnight sweep is followed with GET /v1/batches/{id}. Progress figures are
 * derived here from the database: measured per minute over the wall time the
 * runner accounted to the batch (or, before it has, the span of its finished
 * jobs), and the ETA from that rate.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "api.h"
#include "sweep.h"

#define JOBS_LIMIT_DEFAULT 100
#define JOBS_LIMIT_MAX 10000

static json_t *text_or_null(const char *s) { return s && s[0] ? json_string(s) : json_null(); }
static json_t *id_or_null(int64_t id) { return id > 0 ? json_integer(id) : json_null(); }

static json_t *job_json(const struct db_job *job)
{
    json_t *params = json_loadb(job->params_json, strnlen(job->params_json,
                                sizeof job->params_json), 0, NULL);
    if (!params)
        params = json_object(); /* db_job_insert refuses what would not parse */
    return json_pack("{s:I,s:o,s:s,s:s,s:o,s:s,s:i,s:i,s:s,s:i,s:i,s:s,s:o,s:s,s:o,s:o}", "id",
                     (json_int_t)job->id, "batch_id", id_or_null(job->batch_id), "kernel",
                     job->kernel, "dtype", job->dtype, "params", params, "config_key",
                     job->config_key, "priority", job->priority, "repeats", job->repeats, "state",
                     db_job_state_name(job->state), "attempts", job->attempts, "max_attempts",
                     job->max_attempts, "error", job->error, "measurement_id",
                     id_or_null(job->measurement_id), "created_at", job->created_at,
                     "started_at", text_or_null(job->started_at), "finished_at",
                     text_or_null(job->finished_at));
}

static json_t *batch_json(const struct db_batch *b)
{
    int64_t total = 0;
    for (int s = 0; s < 5; s++)
        total += b->counts[s];
    int64_t done = b->counts[DB_JOB_DONE];
    int64_t left = b->counts[DB_JOB_QUEUED] + b->counts[DB_JOB_RUNNING];
    double seconds = b->accounted && b->wall_s > 0 ? b->wall_s : b->jobs_span_s;
    json_t *rate = json_null(), *eta = json_null();
    if (seconds > 0 && done > 0) {
        double per_minute = (double)done * 60.0 / seconds;
        json_decref(rate);
        rate = json_real(per_minute);
        if (left > 0) {
            json_decref(eta);
            eta = json_real((double)left * 60.0 / per_minute);
        }
    }
    if (left == 0) {
        json_decref(eta);
        eta = json_real(0.0);
    }
    json_t *counts = json_object();
    for (int s = 0; counts && s < 5; s++) {
        if (json_object_set_new(counts, db_job_state_name((enum db_job_state)s),
                                json_integer(b->counts[s])) != 0) {
            json_decref(counts);
            counts = NULL;
        }
    }
    if (!counts) {
        json_decref(rate);
        json_decref(eta);
        return NULL;
    }
    return json_pack("{s:I,s:s,s:s,s:s,s:i,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)b->id, "created_at", b->created_at, "kind", b->kind, "dtype",
                     b->dtype, "repeats", b->repeats, "device_id", id_or_null(b->device_id),
                     "jobs", (json_int_t)total, "duplicates", (json_int_t)b->duplicates, "counts",
                     counts, "measured_per_minute", rate, "eta_s", eta, "energy_j",
                     b->accounted ? json_real(b->energy_j) : json_null(), "wall_s",
                     b->accounted ? json_real(b->wall_s) : json_null(), "started_at",
                     text_or_null(b->started_at), "finished_at", text_or_null(b->finished_at));
}

/* An adaptive batch's "adaptive" ({"rounds": planned, "open": bool}) and
 * "rounds" (the committed ones, db_batch_rounds_json). 0, or -1 with err. */
static int adaptive_members(struct db *db, const struct db_batch *b, json_t **adaptive,
                            json_t **rounds, char *err, size_t errlen)
{
    char *spec_text = NULL;
    if (db_batch_spec(db, b->id, &spec_text, err, errlen) < 0)
        return -1;
    json_t *spec = spec_text ? json_loads(spec_text, 0, NULL) : NULL;
    free(spec_text);
    json_t *planned = json_object_get(json_object_get(spec, "sweep"), "rounds");
    *adaptive = json_pack("{s:O,s:b}", "rounds", json_is_integer(planned) ? planned : json_null(),
                          "open", b->adaptive_open);
    json_decref(spec);
    *rounds = db_batch_rounds_json(db, b->id, err, errlen);
    if (!*adaptive || !*rounds) {
        if (!*rounds)
            json_decref(*adaptive);
        else
            snprintf(err, errlen, "out of memory");
        json_decref(*rounds);
        *adaptive = *rounds = NULL;
        return -1;
    }
    return 0;
}

/* The {id} segment: 0 with *id, or -1 with a 400 already answered. */
static int path_id(struct api_request *req, struct api_response *res, const char *what,
                   int64_t *id)
{
    if (api_parse_int64(req->id, id) == 0)
        return 0;
    struct api_error e;
    char q[64];
    text_quote(req->id ? req->id : "", q, sizeof q);
    api_error_set(&e, 400, "%s id '%s' is not an integer", what, q);
    api_error_param(&e, "id");
    api_respond_error(res, &e, req->path);
    return -1;
}

static struct db *acquire(struct api_request *req, struct api_response *res)
{
    struct db *db = db_pool_acquire(req->app->pool);
    if (!db) {
        struct api_error e;
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
    }
    return db;
}

static void db_failure(struct api_request *req, struct api_response *res, const char *what,
                       const char *err)
{
    struct api_error e;
    api_error_set(&e, 500, "%s: %s", what, err);
    api_respond_error(res, &e, req->path);
}

/* ---- POST /v1/jobs ---- */

void api_jobs_post(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    struct sweep s;

    /* One free-memory figure for the whole batch; the runner checks each job
     * again before it prepares it. */
    uint64_t free_bytes = app->exec_info.mem_free_bytes;
    if (app->exec && exec_memory_free(app->exec, &free_bytes) != 0)
        free_bytes = app->exec_info.mem_free_bytes;
    if (sweep_expand(req->body, app->cfg->max_batch_jobs, free_bytes, &s, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }

    struct db_job *jobs = calloc(s.count, sizeof *jobs);
    char *spec = json_dumps(req->body, JSON_COMPACT);
    if (!jobs || !spec) {
        free(jobs);
        free(spec);
        sweep_free(&s);
        api_error_set(&e, 500, "out of memory queuing %zu configurations", s.count);
        api_respond_error(res, &e, req->path);
        return;
    }
    for (size_t i = 0; i < s.count; i++) {
        const struct kernel_config *kc = &s.configs[i];
        struct db_job *job = &jobs[i];
        snprintf(job->kernel, sizeof job->kernel, "%s", kc->kernel->name);
        snprintf(job->dtype, sizeof job->dtype, "%s", dtype_name(kc->dtype));
        if (api_params_json(kc, job->params_json, sizeof job->params_json) < 0 ||
            catalog_config_key(kc, job->config_key, sizeof job->config_key) < 0) {
            api_error_set(&e, 500, "configuration %zu (%s) does not fit a job record", i,
                          kc->kernel->name);
            free(jobs);
            free(spec);
            sweep_free(&s);
            api_respond_error(res, &e, req->path);
            return;
        }
        job->priority = DB_PRIORITY_SWEEP;
        job->repeats = (int)s.repeats;
        job->max_attempts = (int)app->cfg->max_attempts;
    }

    pthread_mutex_lock(&api_device_lock);
    int64_t device_id = app->device_id;
    pthread_mutex_unlock(&api_device_lock);

    char err[512] = "";
    int64_t batch_id = 0;
    size_t inserted = 0, duplicates = 0;
    struct db *db = acquire(req, res);
    if (!db) {
        free(jobs);
        free(spec);
        sweep_free(&s);
        return;
    }
    int rc = db_batch_insert(db, s.kind, spec, dtype_name(s.dtype), (int)s.repeats, device_id,
                             jobs, s.count, s.repeat_existing, &batch_id, &inserted, &duplicates,
                             err, sizeof err);
    db_pool_release(app->pool, db);
    free(jobs);
    free(spec);
    char kind[16];
    snprintf(kind, sizeof kind, "%s", s.kind);
    sweep_free(&s);
    if (rc != 0) {
        db_failure(req, res, "cannot queue the batch", err);
        return;
    }
    log_info("http", "batch %" PRId64 " queued: %zu %s jobs, %zu duplicates skipped", batch_id,
             inserted, kind, duplicates);
    if (app->runner && inserted > 0)
        runner_wake(app->runner);
    api_respond_json(res, 201, json_pack("{s:I,s:I,s:I}", "batch_id", (json_int_t)batch_id,
                                         "jobs", (json_int_t)inserted, "duplicates",
                                         (json_int_t)duplicates));
    snprintf(res->location, sizeof res->location, "/v1/batches/%" PRId64, batch_id);
}

/* ---- GET /v1/jobs ---- */

static void bad_query(struct api_error *e, const char *name, const char *value,
                      const char *expected)
{
    char k[64], v[64];
    text_quote(name, k, sizeof k);
    text_quote(value, v, sizeof v);
    api_error_set(e, 400, "query parameter '%s' = '%s': expected %s", k, v, expected);
    api_error_param(e, k);
}

static int parse_jobs_query(const struct api_request *req, struct db_job_filter *f,
                            struct api_error *e)
{
    static const char *const names[] = {"state", "batch", "after", "limit"};
    bool seen[4] = {false};
    memset(f, 0, sizeof *f);
    f->state = -1;
    f->limit = JOBS_LIMIT_DEFAULT;
    if (req->query_overflow) {
        api_error_set(e, 400, "too many query parameters (at most %d)", API_MAX_QUERY_PARAMS);
        return -1;
    }
    for (size_t i = 0; i < req->query_count; i++) {
        const char *key = req->query[i].key ? req->query[i].key : "";
        const char *val = req->query[i].value ? req->query[i].value : "";
        size_t which = 4;
        for (size_t j = 0; j < 4; j++)
            if (strcmp(key, names[j]) == 0)
                which = j;
        char k[64];
        text_quote(key, k, sizeof k);
        if (which == 4) {
            api_error_set(e, 400, "unknown query parameter '%s'; accepted: state, batch, after, "
                                  "limit",
                          k);
            api_error_param(e, k);
            return -1;
        }
        if (seen[which]) {
            api_error_set(e, 400, "query parameter '%s' is given more than once", k);
            api_error_param(e, k);
            return -1;
        }
        seen[which] = true;
        int64_t v;
        if (which == 0) {
            enum db_job_state st;
            if (db_job_state_parse(val, &st) != 0) {
                bad_query(e, key, val, "one of queued, running, done, failed, canceled");
                return -1;
            }
            f->state = (int)st;
        } else if (which == 1) {
            if (api_parse_int64(val, &v) != 0 || v < 1) {
                bad_query(e, key, val, "an integer >= 1 (a batch id)");
                return -1;
            }
            f->batch_id = v;
        } else if (which == 2) {
            if (api_parse_int64(val, &v) != 0 || v < 0) {
                bad_query(e, key, val, "an integer >= 0 (a job id)");
                return -1;
            }
            f->after_id = v;
        } else {
            if (api_parse_int64(val, &v) != 0 || v < 1 || v > JOBS_LIMIT_MAX) {
                bad_query(e, key, val, "an integer in [1, 10000]");
                return -1;
            }
            f->limit = v;
        }
    }
    return 0;
}

void api_jobs_list(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    struct db_job_filter f;
    if (parse_jobs_query(req, &f, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }
    struct db *db = acquire(req, res);
    if (!db)
        return;
    char err[512] = "";
    struct db_job *jobs = NULL;
    size_t n = 0;
    int rc = db_jobs_list(db, &f, &jobs, &n, err, sizeof err);
    db_pool_release(req->app->pool, db);
    if (rc != 0) {
        db_failure(req, res, "cannot list the jobs", err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        if (json_array_append_new(list, job_json(&jobs[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    json_t *next = n > 0 && (int64_t)n >= f.limit ? json_integer(jobs[n - 1].id) : json_null();
    free(jobs);
    if (!list) {
        json_decref(next);
        api_respond_json(res, 500, NULL);
        return;
    }
    api_respond_json(res, 200, json_pack("{s:o,s:o}", "jobs", list, "next_after", next));
}

/* ---- /v1/jobs/{id} ---- */

void api_jobs_get(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    int64_t id;
    if (path_id(req, res, "job", &id) != 0)
        return;
    struct db *db = acquire(req, res);
    if (!db)
        return;
    char err[512] = "";
    struct db_job job;
    int found = db_job_get(db, id, &job, err, sizeof err);
    db_pool_release(req->app->pool, db);
    if (found < 0) {
        db_failure(req, res, "cannot read the job", err);
    } else if (found == 0) {
        api_error_set(&e, 404, "no job with id %" PRId64, id);
        api_respond_error(res, &e, req->path);
    } else {
        api_respond_json(res, 200, job_json(&job));
    }
}

void api_jobs_delete(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    int64_t id;
    if (path_id(req, res, "job", &id) != 0)
        return;
    struct db *db = acquire(req, res);
    if (!db)
        return;
    char err[512] = "";
    struct db_job job;
    int rc = db_job_cancel(db, id, &job, err, sizeof err);
    db_pool_release(req->app->pool, db);
    if (rc < 0) {
        db_failure(req, res, "cannot cancel the job", err);
    } else if (rc == 0) {
        api_error_set(&e, 404, "no job with id %" PRId64, id);
        api_respond_error(res, &e, req->path);
    } else if (rc == 2) {
        api_error_set(&e, 409, "job %" PRId64 " is %s; only a queued job can be canceled", id,
                      db_job_state_name(job.state));
        api_respond_error_with_id(res, &e, req->path, "job_id", id);
    } else {
        log_info("http", "job %" PRId64 " canceled (%s)", id, job.config_key);
        api_respond_json(res, 200, job_json(&job));
    }
}

/* ---- /v1/batches/{id} ---- */

void api_batches_get(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    int64_t id;
    if (path_id(req, res, "batch", &id) != 0)
        return;
    struct db *db = acquire(req, res);
    if (!db)
        return;
    char err[512] = "";
    struct db_batch b;
    json_t *adaptive = NULL, *rounds = NULL;
    int found = db_batch_get(db, id, &b, err, sizeof err);
    if (found == 1 && strcmp(b.kind, "adaptive") == 0 &&
        adaptive_members(db, &b, &adaptive, &rounds, err, sizeof err) != 0)
        found = -1;
    db_pool_release(req->app->pool, db);
    if (found < 0) {
        db_failure(req, res, "cannot read the batch", err);
    } else if (found == 0) {
        api_error_set(&e, 404, "no batch with id %" PRId64, id);
        api_respond_error(res, &e, req->path);
    } else {
        json_t *out = batch_json(&b);
        if (out && adaptive) {
            json_object_set_new(out, "adaptive", adaptive);
            json_object_set_new(out, "rounds", rounds);
            adaptive = rounds = NULL;
        }
        api_respond_json(res, 200, out);
    }
    json_decref(adaptive);
    json_decref(rounds);
}

void api_batches_delete(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    int64_t id;
    if (path_id(req, res, "batch", &id) != 0)
        return;
    struct db *db = acquire(req, res);
    if (!db)
        return;
    char err[512] = "";
    struct db_batch b;
    int64_t canceled = 0;
    int found = db_batch_cancel(db, id, &canceled, err, sizeof err);
    if (found == 1)
        found = db_batch_get(db, id, &b, err, sizeof err);
    db_pool_release(req->app->pool, db);
    if (found < 0) {
        db_failure(req, res, "cannot cancel the batch", err);
        return;
    }
    if (found == 0) {
        api_error_set(&e, 404, "no batch with id %" PRId64, id);
        api_respond_error(res, &e, req->path);
        return;
    }
    log_info("http", "batch %" PRId64 ": %" PRId64 " queued jobs canceled", id, canceled);
    json_t *j = batch_json(&b);
    if (j && json_object_set_new(j, "canceled", json_integer(canceled)) != 0) {
        json_decref(j);
        j = NULL;
    }
    api_respond_json(res, 200, j);
}
