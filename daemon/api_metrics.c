/*
 * api_metrics.c - GET /metrics: the daemon's state for Prometheus, in the text
 * exposition format 0.0.4 with base units (watts, volts, amperes, joules,
 * seconds, hertz), every family with # HELP and # TYPE.
 *
 *   jetprof_up, jetprof_uptime_seconds, jetprof_simulated (1/0),
 *   jetprof_sensor_info{backend}                             the process and sensor
 *   jetprof_rail_power_watts / _voltage_volts / _current_amperes{rail}
 *                                                            the latest sample (gauges)
 *   jetprof_rail_energy_joules_total{rail}                   energy integrated by the
 *                                                            sampler since start (counter)
 *   jetprof_sampler_samples_total, _read_errors_total, _overruns_total (counters),
 *   jetprof_sampler_achieved_rate_hertz, _expected_rate_hertz (gauges)
 *   jetprof_jobs{state}                                      jobs per state (gauge)
 *   jetprof_prediction_cache_hits_total, _misses_total (counters),
 *   jetprof_prediction_cache_entries, jetprof_prediction_cache_capacity,
 *   jetprof_models, jetprof_model_generation (gauges)        the predictors and their
 *                                                            cache (models_state.h)
 *
 * Rail series appear once the first sample is in; jetprof_jobs is left out when
 * the database cannot be read (and the failure logged), rather than reported as
 * zeros. Label values are escaped as the format requires.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "api.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

void api_prom_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    for (const char *c = in ? in : ""; *c; c++) {
        const char *rep = NULL;
        if (*c == '\\')
            rep = "\\\\";
        else if (*c == '"')
            rep = "\\\"";
        else if (*c == '\n')
            rep = "\\n";
        size_t need = rep ? 2 : 1;
        if (o + need + 1 > outlen)
            break;
        if (rep) {
            out[o++] = rep[0];
            out[o++] = rep[1];
        } else {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One gauge per rail of the latest sample: value = field[r] * scale. */
static void rail_family(FILE *f, const struct sensor *s, const char *name, const char *help,
                        const double *values, double scale)
{
    family(f, name, "gauge", help);
    for (unsigned r = 0; r < s->rail_count && r < SENSOR_MAX_RAILS; r++) {
        char label[SENSOR_RAIL_NAME_MAX * 2 + 1];
        api_prom_escape(s->rails[r].name, label, sizeof(label));
        fprintf(f, "%s{rail=\"%s\"} %.9g\n", name, label, values[r] * scale);
    }
}

static void sensor_metrics(FILE *f, struct app *app)
{
    const struct sensor *s = app->sensor;
    char backend[64];
    api_prom_escape(s->backend->name, backend, sizeof(backend));
    family(f, "jetprof_simulated", "gauge",
           "1 when the power values come from a simulated sensor, not a physical one.");
    fprintf(f, "jetprof_simulated %d\n", s->simulated ? 1 : 0);
    family(f, "jetprof_sensor_info", "gauge", "The power sensor backend in use (always 1).");
    fprintf(f, "jetprof_sensor_info{backend=\"%s\"} 1\n", backend);
    if (!app->sampler)
        return;

    struct sensor_sample smp;
    if (sampler_latest(app->sampler, &smp) == 0) {
        rail_family(f, s, "jetprof_rail_power_watts", "Latest power sample per rail.",
                    smp.power_mw, 1e-3);
        rail_family(f, s, "jetprof_rail_voltage_volts", "Latest bus voltage sample per rail.",
                    smp.voltage_mv, 1e-3);
        rail_family(f, s, "jetprof_rail_current_amperes", "Latest current sample per rail.",
                    smp.current_ma, 1e-3);
    }
    double energy_j[SENSOR_MAX_RAILS];
    unsigned rails = 0;
    if (sampler_energy_totals(app->sampler, energy_j, &rails) == 0) {
        family(f, "jetprof_rail_energy_joules_total", "counter",
               "Energy per rail since jetprofd started: trapezoidal integral over every pair "
               "of consecutive samples.");
        for (unsigned r = 0; r < rails && r < s->rail_count; r++) {
            char label[SENSOR_RAIL_NAME_MAX * 2 + 1];
            api_prom_escape(s->rails[r].name, label, sizeof(label));
            fprintf(f, "jetprof_rail_energy_joules_total{rail=\"%s\"} %.15g\n", label,
                    energy_j[r]);
        }
    }

    struct sampler_status st;
    sampler_get_status(app->sampler, &st);
    struct sensor_sampling got;
    sampler_sampling(app->sampler, NULL, &got);
    family(f, "jetprof_sampler_samples_total", "counter", "Sensor samples taken since start.");
    fprintf(f, "jetprof_sampler_samples_total %" PRIu64 "\n", st.samples_total);
    family(f, "jetprof_sampler_read_errors_total", "counter",
           "Failed sensor reads since start.");
    fprintf(f, "jetprof_sampler_read_errors_total %" PRIu64 "\n", st.read_errors);
    family(f, "jetprof_sampler_overruns_total", "counter",
           "Times the sampler fell a whole sampling period or more behind.");
    fprintf(f, "jetprof_sampler_overruns_total %" PRIu64 "\n", st.overruns);
    family(f, "jetprof_sampler_achieved_rate_hertz", "gauge",
           "Samples per second over the last second.");
    fprintf(f, "jetprof_sampler_achieved_rate_hertz %.9g\n", st.achieved_rate_hz);
    if (got.period_us > 0) {
        family(f, "jetprof_sampler_expected_rate_hertz", "gauge",
               "Samples per second the sampling in force should deliver (1 / period).");
        fprintf(f, "jetprof_sampler_expected_rate_hertz %.9g\n", 1e6 / (double)got.period_us);
    }
}

static void job_metrics(FILE *f, struct app *app)
{
    if (!app->pool)
        return;
    int64_t counts[5] = {0};
    char err[256] = "";
    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        log_warn("http", "metrics: no database connection to count jobs");
        return;
    }
    int rc = db_job_counts(db, counts, err, sizeof(err));
    db_pool_release(app->pool, db);
    if (rc != 0) {
        log_warn("http", "metrics: cannot count jobs: %s", err);
        return;
    }
    static const enum db_job_state states[] = {DB_JOB_QUEUED, DB_JOB_RUNNING, DB_JOB_DONE,
                                               DB_JOB_FAILED, DB_JOB_CANCELED};
    family(f, "jetprof_jobs", "gauge", "Jobs in the database per state.");
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        fprintf(f, "jetprof_jobs{state=\"%s\"} %" PRId64 "\n", db_job_state_name(states[i]),
                counts[states[i]]);
}

static void model_metrics(FILE *f, struct app *app)
{
    if (!app->models)
        return;
    struct models_state_stats st;
    models_state_get_stats(app->models, &st);
    family(f, "jetprof_prediction_cache_hits_total", "counter",
           "Predictions answered from the prediction cache since start.");
    fprintf(f, "jetprof_prediction_cache_hits_total %" PRIu64 "\n", st.cache_hits);
    family(f, "jetprof_prediction_cache_misses_total", "counter",
           "Predictions computed by the models because the cache did not hold them.");
    fprintf(f, "jetprof_prediction_cache_misses_total %" PRIu64 "\n", st.cache_misses);
    family(f, "jetprof_prediction_cache_entries", "gauge",
           "Kernel configurations in the prediction cache now.");
    fprintf(f, "jetprof_prediction_cache_entries %zu\n", st.cache_entries);
    family(f, "jetprof_prediction_cache_capacity", "gauge",
           "Most kernel configurations the prediction cache holds (0 = no cache).");
    fprintf(f, "jetprof_prediction_cache_capacity %zu\n", st.cache_capacity);
    family(f, "jetprof_models", "gauge",
           "Predictors (kernel type and target pairs) in use for this device.");
    fprintf(f, "jetprof_models %zu\n", st.models);
    family(f, "jetprof_model_generation", "gauge",
           "Times the predictors in use were replaced (loaded at start or trained) since start.");
    fprintf(f, "jetprof_model_generation %" PRIu64 "\n", st.generation);
}

void api_metrics_get(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        api_respond_json(res, 500, NULL);
        return;
    }
    family(f, "jetprof_up", "gauge", "1 while jetprofd is serving.");
    fprintf(f, "jetprof_up 1\n");
    family(f, "jetprof_uptime_seconds", "gauge", "Seconds since jetprofd started.");
    fprintf(f, "jetprof_uptime_seconds %.3f\n",
            (double)(clock_mono_ns() - app->started_mono_ns) / 1e9);
    if (app->sensor)
        sensor_metrics(f, app);
    job_metrics(f, app);
    model_metrics(f, app);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed || !text) {
        free(text);
        api_respond_json(res, 500, NULL);
        return;
    }
    res->status = 200;
    res->content_type = PROM_CONTENT_TYPE;
    res->text = text;
    res->text_len = len;
}
