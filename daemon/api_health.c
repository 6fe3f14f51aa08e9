/*
 * api_health.c - GET /v1/health: liveness, version, uptime, the job queue, the
 * runner and the sampler in one small document, for systemd checks, load
 * balancers and a human with curl.
 *
 * "status" is "degraded" (still 200: the daemon answers) when the runner's last
 * database write failed, when the job counts cannot be read, or when the
 * sampler reports read errors and no samples in its last second: measurements
 * taken then would be wrong or lost.
 */
#include <stdbool.h>
#include <stdint.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "api.h"

static json_t *jobs_json(struct app *app, bool *ok)
{
    int64_t counts[5] = {0};
    char err[256] = "";
    *ok = false;
    if (!app->pool)
        return json_null();
    struct db *db = db_pool_acquire(app->pool);
    if (!db)
        return json_null();
    int rc = db_job_counts(db, counts, err, sizeof(err));
    db_pool_release(app->pool, db);
    if (rc != 0) {
        log_warn("http", "health: cannot count jobs: %s", err);
        return json_null();
    }
    *ok = true;
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", db_job_state_name(DB_JOB_QUEUED),
                     (json_int_t)counts[DB_JOB_QUEUED], db_job_state_name(DB_JOB_RUNNING),
                     (json_int_t)counts[DB_JOB_RUNNING], db_job_state_name(DB_JOB_DONE),
                     (json_int_t)counts[DB_JOB_DONE], db_job_state_name(DB_JOB_FAILED),
                     (json_int_t)counts[DB_JOB_FAILED], db_job_state_name(DB_JOB_CANCELED),
                     (json_int_t)counts[DB_JOB_CANCELED]);
}

static json_t *runner_json(struct app *app, bool *storage_ok)
{
    struct runner_status st = {0};
    *storage_ok = true;
    if (!app->runner)
        return json_null();
    runner_get_status(app->runner, &st);
    *storage_ok = st.storage_ok;
    return json_pack("{s:b,s:o,s:b,s:I,s:I,s:s}", "busy", st.running_job, "current_job_id",
                     st.running_job ? json_integer(st.current_job_id) : json_null(), "storage_ok",
                     st.storage_ok, "jobs_done", (json_int_t)st.jobs_done, "jobs_failed",
                     (json_int_t)st.jobs_failed, "last_error", st.last_error);
}

static json_t *sampler_json(struct app *app, bool *sampling_ok)
{
    struct sampler_status st = {0};
    *sampling_ok = true;
    if (!app->sampler)
        return json_null();
    sampler_get_status(app->sampler, &st);
    *sampling_ok = !(st.read_errors > 0 && st.achieved_rate_hz <= 0.0);
    return json_pack("{s:I,s:I,s:f,s:s}", "samples_total", (json_int_t)st.samples_total,
                     "read_errors", (json_int_t)st.read_errors, "achieved_rate_hz",
                     st.achieved_rate_hz, "last_error", st.last_error);
}

void api_health_get(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    bool jobs_ok, storage_ok, sampling_ok;
    json_t *jobs = jobs_json(app, &jobs_ok);
    json_t *runner = runner_json(app, &storage_ok);
    json_t *sampler = sampler_json(app, &sampling_ok);
    bool healthy = jobs_ok && storage_ok && sampling_ok;
    double uptime_s = (double)(clock_mono_ns() - app->started_mono_ns) / 1e9;
    /* One decimal is what a human reads; keep the JSON free of float noise. */
    uptime_s = (double)(int64_t)(uptime_s * 10.0) / 10.0;
    bool simulated = app->device.simulated || (app->sensor && app->sensor->simulated);

    json_t *doc =
        json_pack("{s:s,s:s,s:f,s:s,s:o*,s:o*,s:o*,s:b}", "status", healthy ? "ok" : "degraded",
                  "version", JETPROF_VERSION, "uptime_s", uptime_s, "started_at", app->started_at,
                  "jobs", jobs, "runner", runner, "sampler", sampler, "simulated", simulated);
    api_respond_json(res, 200, doc);
}
