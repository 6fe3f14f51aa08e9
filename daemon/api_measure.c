/*
 * api_measure.c - POST /v1/measure: one ad-hoc measurement, answered when done.
 *
 * The body names a catalogue kernel and every one of its parameters; it is
 * checked strictly against the catalogue (no unknown members, integers only,
 * ranges) and against the memory the executor really allocates for it and has
 * free at this moment, so a mistake comes back as a 422 naming the member, or
 * giving both memory figures, instead of a job that fails later. A valid request becomes a job
 * like any other (every measurement is a job), the runner is woken, and the
 * connection waits suspended - other requests keep being served - until the
 * runner reports the job done (201 + the Measurement), failed (500) or left
 * queued because the daemon is stopping (503).
 *
 * Test faults: with executor.test_faults on (test-only), the body may carry
 * "test_fault": "hang" | "crash" | "poison" | "illegal_access" (the last on the
 * CUDA executor only: the runner's worker_set_test_fault refuses it on cpu,
 * failing the job with that reason). It is checked here, taken out of
 * the body before the catalogue check, and stored in the job's params_json
 * under the same name, where the runner finds it and arms it in the worker
 * process (worker.h). With the switch off it is an unknown member like any.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "api.h"
#include "worker.h"

#define API_REPEATS_MIN 1
#define API_REPEATS_MAX 20
/* A job left queued at shutdown runs after a restart: a client may retry then. */
#define API_STOPPING_RETRY_AFTER_S 30u

/* Members every kernel accepts besides its catalogue parameters. */
static const char *const common_members[] = {"kernel", "dtype", "repeats"};
#define COMMON_MEMBER_COUNT (sizeof(common_members) / sizeof(common_members[0]))

static void dtype_names(char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int d = 0; d < DTYPE_COUNT; d++) {
        int n =
            snprintf(buf + used, buflen - used, "%s%s", d ? ", " : "", dtype_name((enum dtype)d));
        if (n < 0 || (size_t)n >= buflen - used)
            return;
        used += (size_t)n;
    }
}

/* "kernel, dtype, repeats, batch, in, out" */
static void accepted_members(const struct catalog_kernel *k, char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < COMMON_MEMBER_COUNT + k->param_count; i++) {
        const char *name =
            i < COMMON_MEMBER_COUNT ? common_members[i] : k->params[i - COMMON_MEMBER_COUNT].name;
        int n = snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "", name);
        if (n < 0 || (size_t)n >= buflen - used)
            return;
        used += (size_t)n;
    }
}

/* A JSON value as the client wrote it, shortened for a message. */
static void value_text(json_t *v, char *buf, size_t buflen)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, buflen, "(a value)");
        return;
    }
    size_t n = strlen(s);
    if (n < buflen) {
        memcpy(buf, s, n + 1);
    } else if (buflen > 4) {
        /* Cut on a UTF-8 character boundary so the message stays valid JSON text. */
        size_t keep = buflen - 4;
        while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
            keep--;
        memcpy(buf, s, keep);
        memcpy(buf + keep, "...", 4);
    } else if (buflen) {
        buf[0] = '\0';
    }
    free(s);
}

static bool is_common_member(const char *key)
{
    for (size_t i = 0; i < COMMON_MEMBER_COUNT; i++)
        if (strcmp(key, common_members[i]) == 0)
            return true;
    return false;
}

static const char *json_type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

int api_parse_kernel_config(json_t *body, uint64_t mem_free_bytes, struct kernel_config *cfg,
                            unsigned *repeats, struct api_error *e)
{
    char kernels[256], list[256], val[80];
    memset(cfg, 0, sizeof(*cfg));
    memset(e, 0, sizeof(*e));
    *repeats = 0;
    catalog_kernel_names(kernels, sizeof(kernels));

    if (!body || !json_is_object(body)) {
        api_error_set(e, 422,
                      "the request body must be a JSON object such as "
                      "{\"kernel\":\"linear_relu\",\"batch\":64,\"in\":256,\"out\":512}, not %s",
                      body ? json_type_name(body) : "nothing");
        return -1;
    }

    json_t *kv = json_object_get(body, "kernel");
    if (!kv) {
        api_error_set(e, 422, "member 'kernel' is required: one of %s", kernels);
        api_error_param(e, "kernel");
        return -1;
    }
    if (!json_is_string(kv)) {
        value_text(kv, val, sizeof(val));
        api_error_set(e, 422, "member 'kernel' = %s: expected a string, one of %s", val, kernels);
        api_error_param(e, "kernel");
        return -1;
    }
    const struct catalog_kernel *k = catalog_find(json_string_value(kv));
    if (!k) {
        value_text(kv, val, sizeof(val));
        api_error_set(e, 422, "unknown kernel %s; the catalogue has %s", val, kernels);
        api_error_param(e, "kernel");
        return -1;
    }
    cfg->kernel = k;
    cfg->dtype = DTYPE_FP32;

    /* Unknown members first: a misspelt parameter is then reported as what it
     * is rather than as the correct one missing. */
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (is_common_member(key) || catalog_param_index(k, key) >= 0)
            continue;
        accepted_members(k, list, sizeof(list));
        api_error_set(e, 422, "unknown member '%s' for kernel %s; accepted members: %s", key,
                      k->name, list);
        api_error_param(e, key);
        return -1;
    }

    json_t *dv = json_object_get(body, "dtype");
    if (dv) {
        enum dtype d;
        if (!json_is_string(dv) || dtype_parse(json_string_value(dv), &d) != 0) {
            dtype_names(list, sizeof(list));
            value_text(dv, val, sizeof(val));
            api_error_set(e, 422, "member 'dtype' = %s: expected one of %s", val, list);
            api_error_param(e, "dtype");
            return -1;
        }
        cfg->dtype = d;
    }

    json_t *rv = json_object_get(body, "repeats");
    if (rv) {
        json_int_t r = json_is_integer(rv) ? json_integer_value(rv) : 0;
        if (!json_is_integer(rv) || r < API_REPEATS_MIN || r > API_REPEATS_MAX) {
            value_text(rv, val, sizeof(val));
            api_error_set(e, 422, "member 'repeats' = %s: expected an integer in [%d, %d]", val,
                          API_REPEATS_MIN, API_REPEATS_MAX);
            api_error_param(e, "repeats");
            return -1;
        }
        *repeats = (unsigned)r;
    }

    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const struct catalog_param *p = &k->params[i];
        json_t *pv = json_object_get(body, p->name);
        if (!pv) {
            api_error_set(e, 422,
                          "member '%s' is required for kernel %s: an integer in [%" PRId64
                          ", %" PRId64 "]",
                          p->name, k->name, p->min, p->max);
            api_error_param(e, p->name);
            return -1;
        }
        if (!json_is_integer(pv)) {
            value_text(pv, val, sizeof(val));
            api_error_set(e, 422,
                          "member '%s' = %s: expected an integer in [%" PRId64 ", %" PRId64 "]",
                          p->name, val, p->min, p->max);
            api_error_param(e, p->name);
            return -1;
        }
        cfg->params[i] = (int64_t)json_integer_value(pv);
    }

    char msg[API_DETAIL_MAX];
    if (catalog_validate(cfg, 0, msg, sizeof(msg)) != 0) {
        api_error_set(e, 422, "%s", msg);
        for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
            if (cfg->params[i] < k->params[i].min || cfg->params[i] > k->params[i].max) {
                api_error_param(e, k->params[i].name);
                break;
            }
        }
        return -1;
    }
    if (catalog_validate(cfg, mem_free_bytes, msg, sizeof(msg)) != 0) {
        api_error_set(e, 422, "%s", msg);
        return -1;
    }
    return 0;
}

int api_check_memory(struct executor *ex, const char *executor_name,
                     const struct kernel_config *cfg, struct api_error *e)
{
    if (!ex || !cfg || !cfg->kernel)
        return 0;
    uint64_t free_bytes = 0;
    if (exec_memory_free(ex, &free_bytes) != 0) {
        log_warn("http", "the %s executor cannot tell its free memory; %s is checked by the "
                 "runner before it prepares", executor_name, cfg->kernel->name);
        return 0;
    }
    uint64_t needed = exec_memory_needed(ex, cfg);
    if (needed <= free_bytes)
        return 0;
    char key[160];
    if (catalog_config_key(cfg, key, sizeof(key)) < 0)
        snprintf(key, sizeof(key), "%s %s", cfg->kernel->name, dtype_name(cfg->dtype));
    api_error_set(e, 422,
                  "%s needs %" PRIu64 " bytes (%.1f MiB) on the %s executor, which has %" PRIu64
                  " bytes (%.1f MiB) free now",
                  key, needed, (double)needed / 1048576.0, executor_name, free_bytes,
                  (double)free_bytes / 1048576.0);
    return -1;
}

int api_params_json(const struct kernel_config *cfg, char *buf, size_t buflen)
{
    size_t used = 0;
    if (!cfg || !cfg->kernel || buflen < 3)
        return -1;
    buf[used++] = '{';
    for (unsigned i = 0; i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        int n = snprintf(buf + used, buflen - used, "%s\"%s\":%" PRId64, i ? "," : "",
                         cfg->kernel->params[i].name, cfg->params[i]);
        if (n < 0 || (size_t)n >= buflen - used)
            return -1;
        used += (size_t)n;
    }
    if (used + 2 > buflen)
        return -1;
    buf[used++] = '}';
    buf[used] = '\0';
    return (int)used;
}

/* The answer once the runner is done with job_id (or the daemon stops first). */
static void answer_job(struct api_request *req, struct api_response *res, int64_t job_id,
                       enum db_job_state state)
{
    struct app *app = req->app;
    struct api_error e;
    char err[256] = "";

    if (state == DB_JOB_QUEUED) {
        api_error_set(&e, 503,
                      "jetprofd is stopping; measurement job %" PRId64
                      " stays queued and runs when the daemon starts again",
                      job_id);
        api_respond_error_with_id(res, &e, req->path, "job_id", job_id);
        res->retry_after_s = API_STOPPING_RETRY_AFTER_S;
        return;
    }
    if (state == DB_JOB_CANCELED) {
        api_error_set(&e, 409, "measurement job %" PRId64 " was canceled before it ran", job_id);
        api_respond_error_with_id(res, &e, req->path, "job_id", job_id);
        return;
    }

    struct db_job job;
    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        api_error_set(&e, 500, "job %" PRId64 " finished but no database connection is free",
                      job_id);
        api_respond_error_with_id(res, &e, req->path, "job_id", job_id);
        return;
    }
    int found = db_job_get(db, job_id, &job, err, sizeof(err));
    json_t *m = NULL;
    if (found == 1 && state == DB_JOB_DONE && job.measurement_id > 0)
        m = db_measurement_json(db, job.measurement_id, err, sizeof(err));
    db_pool_release(app->pool, db);

    if (found != 1) {
        api_error_set(&e, 500, "measurement job %" PRId64 " cannot be read back: %s", job_id,
                      found == 0 ? "it is not in the database" : err);
    } else if (state == DB_JOB_FAILED) {
        api_error_set(&e, 500, "measurement job %" PRId64 " failed: %s", job_id,
                      job.error[0] ? job.error : "(no reason recorded)");
    } else if (state != DB_JOB_DONE) {
        api_error_set(&e, 500, "measurement job %" PRId64 " ended in state %s", job_id,
                      db_job_state_name(state));
    } else if (!m) {
        api_error_set(&e, 500,
                      "measurement job %" PRId64 " is done but measurement %" PRId64
                      " cannot be read: %s",
                      job_id, job.measurement_id, err[0] ? err : "not found");
    } else {
        api_respond_json(res, 201, m);
        snprintf(res->location, sizeof(res->location), "/v1/measurements/%" PRId64,
                 job.measurement_id);
        return;
    }
    api_respond_error_with_id(res, &e, req->path, "job_id", job_id);
}

void api_measure_post(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;

    if (req->resumed) {
        answer_job(req, res, req->wait_job_id, req->wait_state);
        return;
    }

    struct kernel_config kc;
    unsigned repeats;
    char fault[16] = "";
    json_t *body = req->body, *without_fault = NULL;
    json_t *fv = app->cfg && app->cfg->test_faults && json_is_object(body)
                     ? json_object_get(body, WORKER_TEST_FAULT_MEMBER)
                     : NULL;
    if (fv) {
        if (!json_is_string(fv) || !worker_test_fault_known(json_string_value(fv))) {
            char val[80];
            value_text(fv, val, sizeof(val));
            api_error_set(&e, 422,
                          "member '%s' = %s: expected \"hang\", \"crash\", \"poison\" or "
                          "\"illegal_access\" (executor.test_faults is on)",
                          WORKER_TEST_FAULT_MEMBER, val);
            api_error_param(&e, WORKER_TEST_FAULT_MEMBER);
            api_respond_error(res, &e, req->path);
            return;
        }
        snprintf(fault, sizeof(fault), "%s", json_string_value(fv));
        without_fault = json_copy(body);
        if (!without_fault || json_object_del(without_fault, WORKER_TEST_FAULT_MEMBER) != 0) {
            json_decref(without_fault);
            api_error_set(&e, 500, "out of memory reading the request");
            api_respond_error(res, &e, req->path);
            return;
        }
        body = without_fault;
    }
    /* Without the executor itself (app->exec unset) the start-up snapshot and
     * the catalogue's buffer sizes are all there is; the runner checks again. */
    uint64_t snapshot_free = app->exec ? 0 : app->exec_info.mem_free_bytes;
    int parsed = api_parse_kernel_config(body, snapshot_free, &kc, &repeats, &e);
    json_decref(without_fault);
    if (parsed != 0 || api_check_memory(app->exec, app->exec_info.name, &kc, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }

    struct db_job job;
    memset(&job, 0, sizeof(job));
    snprintf(job.kernel, sizeof(job.kernel), "%s", kc.kernel->name);
    snprintf(job.dtype, sizeof(job.dtype), "%s", dtype_name(kc.dtype));
    int params_len = api_params_json(&kc, job.params_json, sizeof(job.params_json));
    if (params_len > 0 && fault[0]) {
        /* {"batch":64} -> {"batch":64,"test_fault":"hang"} */
        size_t room = sizeof(job.params_json) - (size_t)params_len + 1;
        int n = snprintf(job.params_json + params_len - 1, room, ",\"%s\":\"%s\"}",
                         WORKER_TEST_FAULT_MEMBER, fault);
        if (n < 0 || (size_t)n >= room)
            params_len = -1;
    }
    if (params_len < 0 ||
        catalog_config_key(&kc, job.config_key, sizeof(job.config_key)) < 0) {
        api_error_set(&e, 500, "the configuration of %s does not fit a job record",
                      kc.kernel->name);
        api_respond_error(res, &e, req->path);
        return;
    }
    job.priority = DB_PRIORITY_ADHOC;
    job.repeats = (int)repeats;
    job.max_attempts = (int)app->cfg->max_attempts;

    char err[256] = "";
    struct db *db = db_pool_acquire(app->pool);
    int rc = db ? db_job_insert(db, &job, err, sizeof(err)) : -1;
    if (db)
        db_pool_release(app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "cannot queue the measurement of %s: %s", job.config_key,
                      db ? err : "no database connection");
        api_respond_error(res, &e, req->path);
        return;
    }
    log_info("http", "measurement job %" PRId64 " queued: %s%s%s", job.id, job.config_key,
             fault[0] ? " with test fault " : "", fault);
    if (app->runner)
        runner_wake(app->runner);

    if (api_wait_for_job(req, res, job.id) == API_WAIT_SUSPENDED)
        return;
    answer_job(req, res, job.id, req->wait_state);
}
