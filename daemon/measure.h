/*
 * measure.h - the measurement protocol of DESIGN.md for one job.
 *
 * validate (catalogue, executor memory) -> idle baseline (cached; taken before
 * any kernel work of the job) -> prepare -> warm up -> calibrate launch count ->
 * `repeats` windows [t0 + settle, t1] -> medians, CV -> quality -> at most one
 * re-measurement with a doubled window -> a db_measurement ready for
 * db_job_finish. Runs on the runner thread only; it never touches the database.
 */
#ifndef JETPROF_MEASURE_H
#define JETPROF_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cudakern/catalog.h"
#include "../cudakern/exec.h"
#include "../db/db.h"
#include "../sensors/gpio_marker.h"
#include "../sensors/sampler.h"

struct measure_settings {
    unsigned warmup_launches, warmup_ms;
    unsigned min_window_ms, min_samples;
    unsigned idle_ms, idle_refresh_s;
    unsigned settle_ms;
    unsigned repeats;
    double max_cv, min_sample_ratio;
    unsigned max_launches;
};

/*
 * Where one measure_run spent its wall-clock time (CLOCK_MONOTONIC, ms), for
 * the throughput bench and the debug log; not stored in the database.
 * total_ms minus the parts is the calibration and bookkeeping.
 */
struct measure_phases {
    double setup_ms;     /* validate + memory check + prepare + release */
    double idle_ms;      /* idle baseline with its quiet lead-in; 0 when cached */
    double warmup_ms;
    double windows_ms;   /* the first pass's windows (restarts after recalibration included) */
    double remeasure_ms; /* the re-measurement's windows; 0 when none */
    double record_ms;    /* device-state snapshot and the db_measurement */
    double total_ms;     /* measure_run from entry to return */
};

struct device_state;

struct measure_ctx {
    struct executor *exec;
    struct sensor *sensor;
    struct sampler *sampler;
    struct measure_settings settings;
    /* The device row measurements are stored under; replaced (from an HTTP
     * thread) when PUT /v1/sensor/sampling changes the device's fingerprint. */
    _Atomic int64_t device_id;
    struct gpio_marker *marker; /* held high during every window; NULL = none */
    const char *sysfs_root; /* device state (GPU clock, temperatures) read below it */
    /* Set by the runner per job, just before measure_run: the CLOCK_MONOTONIC
     * time the job must end by (0 = none). measure_run starts no launch batch
     * that its per-launch estimate says ends later (but at least one launch),
     * checks the time after every batch ("job exceeded its time limit of N s
     * (at <step>)"), shortens windows to fit, and fails at once ("job would
     * exceed its time limit ...: <what> needs about X s, Y s are left") when
     * even the shortest protocol left cannot fit. A single launch that runs
     * long is preempted by the worker process (worker.c), which reads this
     * deadline and kills a run that passes it. */
    int64_t deadline_ns;
    /* When set, the device state is read through it (nvpmodel power mode,
     * jetson_clocks, NVML clocks; see device_state.h) instead of from
     * sysfs_root alone. Owned by the caller. */
    struct device_state *device_state;
    /* Filled by every measure_run that got past its argument checks, also when
     * it failed (phases not reached stay 0). */
    struct measure_phases last_phases;
    /* idle baseline cache */
    bool idle_valid;
    int64_t idle_taken_ns;
    double idle_power_mw[SENSOR_MAX_RAILS];
};

/*
 * Runs the protocol for cfg with `repeats` (0 = settings.repeats) and fills m
 * (everything but uid, job_id and created_at). 0, or -1 with err saying which
 * step failed.
 */
int measure_run(struct measure_ctx *ctx, const struct kernel_config *cfg, unsigned repeats,
                struct db_measurement *m, char *err, size_t errlen);

/*
 * The same protocol for a whole graph (POST /v1/graphs/measure): plan (its
 * kernels in dependency order, exec.h) is checked, its summed memory compared
 * with what the executor has free, prepared with exec_prepare_plan, and every
 * launch is one pass of the whole graph. m gets kernel DB_GRAPH_KERNEL, the
 * first kernel's dtype, config_key and params as given ("graph:<hash>",
 * {"kernels": n, "levels": n}), graph_id, and graph_streams from
 * exec_plan_streams. 0, or -1 with err.
 */
int measure_run_plan(struct measure_ctx *ctx, const struct exec_plan *plan, int64_t graph_id,
                     const char *config_key, const char *params, unsigned repeats,
                     struct db_measurement *m, char *err, size_t errlen);

/* Median and coefficient of variation (stddev / mean, population) of n values;
 * exposed for tests. values is reordered. */
double measure_median(double *values, size_t n);
double measure_cv(const double *values, size_t n);

#endif
