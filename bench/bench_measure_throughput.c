/*
 * bench_measure_throughput.c - how many kernel configurations the measurement
 * protocol gets through per hour, and where each measurement's time goes.
 *
 * In-process, on the real parts the daemon uses: the sim sensor (driven by
 * this machine's /proc/stat) with the sampler thread, the CPU executor, and
 * measure_run with the daemon's default protocol settings (config_load with
 * --config none: warm-up >= 20 launches and 50 ms, windows >= 200 ms and 100
 * samples, settle 5 ms, 3 repeats, CV <= 5 %, sample ratio >= 0.9, idle
 * baseline 200 ms reused for 300 s). It cycles through a fixed list of small
 * configurations of every kernel type the catalogue and the CPU executor have
 * (entries either lacks are skipped with a note) for --seconds, then reports:
 * configurations measured per hour, with quality "ok" and in total; the median
 * share of each phase of one measurement (set-up, idle baseline, warm-up,
 * windows, re-measurement, record, from measure_ctx.last_phases); per kernel
 * type the count, ok count and median time per measurement.
 *
 * A second run repeats this with windows of 50 ms (min_window_ms 50 and
 * min_samples 50, since 100 samples at the sim's 1 kHz would hold the window
 * at 100 ms) to show how the rate scales with the window. The device state is
 * read as the daemon would (sysfs, nvpmodel under /, NVML where it loads), so
 * its cost is part of "record".
 *
 * The sensor is simulated and the executor is the CPU: the figures say what
 * the protocol costs around the kernels, not what a GPU run takes. On a loaded
 * machine the sim's power follows the load and CVs grow, so the ok share is
 * part of the result. Options: --seconds S per run (default 60), --only-default
 * (skip the 50 ms run), --verbose (measure.c's info log: why a pass was suspect).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_machine.h"
#include "common/clock.h"
#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/config.h"
#include "daemon/device_state.h"
#include "daemon/measure.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

#define MAX_RECORDS 100000
#define BENCH_SEED 1

/* A configuration by parameter name, so the list does not depend on the
 * catalogue's parameter order. */
struct bench_config {
    const char *kernel;
    enum dtype dtype;
    struct {
        const char *name;
        int64_t value;
    } params[CATALOG_MAX_PARAMS];
};

static const struct bench_config bench_configs[] = {
    {"linear", DTYPE_FP32, {{"batch", 32}, {"in", 256}, {"out", 256}}},
    {"linear_relu", DTYPE_FP32, {{"batch", 64}, {"in", 256}, {"out", 512}}},
    {"linear_gelu", DTYPE_FP16, {{"batch", 16}, {"in", 512}, {"out", 512}}},
    {"linear_bn", DTYPE_FP32, {{"batch", 32}, {"in", 128}, {"out", 256}}},
    {"linear_bn_relu", DTYPE_FP16, {{"batch", 32}, {"in", 256}, {"out", 128}}},
    {"layernorm", DTYPE_FP32, {{"rows", 128}, {"cols", 768}}},
    {"softmax", DTYPE_FP32, {{"rows", 64}, {"cols", 512}}},
    {"add", DTYPE_FP32, {{"rows", 256}, {"cols", 1024}}},
    {"add_relu", DTYPE_FP16, {{"rows", 128}, {"cols", 1024}}},
    {"attention", DTYPE_FP32, {{"batch", 2}, {"tokens", 64}, {"heads", 4}, {"head_dim", 32}}},
    {"tokenizer", DTYPE_FP32, {{"batch", 64}, {"features", 16}, {"d", 64}}},
    {"concat", DTYPE_FP32, {{"rows", 256}, {"cols_a", 256}, {"cols_b", 128}}},
};
#define BENCH_CONFIG_COUNT (sizeof bench_configs / sizeof bench_configs[0])

enum phase { PH_SETUP, PH_IDLE, PH_WARMUP, PH_WINDOWS, PH_REMEASURE, PH_RECORD, PH_OTHER,
             PH_COUNT };
static const char *const phase_names[PH_COUNT] = {
    "set-up", "idle baseline", "warm-up", "windows", "re-measurement", "record", "other",
};

struct record {
    unsigned config; /* index into the usable list */
    bool ok, failed, remeasured;
    double total_ms;
    double share[PH_COUNT];
};

struct rig {
    struct sensor *sensor;
    struct sampler *sampler;
    struct executor *exec;
    struct device_state *state;
    struct kernel_config usable[BENCH_CONFIG_COUNT];
    char usable_key[BENCH_CONFIG_COUNT][160];
    unsigned usable_count;
};

/* Builds a kernel_config from the table entry; -1 with why when the catalogue
 * lacks the kernel or a parameter, or the values are out of range. */
static int build_config(const struct bench_config *bc, struct kernel_config *cfg, char *why,
                        size_t whylen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kernel = catalog_find(bc->kernel);
    if (!cfg->kernel) {
        snprintf(why, whylen, "not in the catalogue");
        return -1;
    }
    cfg->dtype = bc->dtype;
    unsigned given = 0;
    for (unsigned i = 0; i < CATALOG_MAX_PARAMS && bc->params[i].name; i++, given++) {
        int idx = catalog_param_index(cfg->kernel, bc->params[i].name);
        if (idx < 0) {
            snprintf(why, whylen, "the catalogue's %s has no parameter '%s'", bc->kernel,
                     bc->params[i].name);
            return -1;
        }
        cfg->params[idx] = bc->params[i].value;
    }
    if (given != cfg->kernel->param_count) {
        snprintf(why, whylen, "the catalogue's %s has %u parameters, the bench gives %u",
                 bc->kernel, cfg->kernel->param_count, given);
        return -1;
    }
    return catalog_validate(cfg, 0, why, whylen);
}

/* Keeps the configurations the catalogue has and the CPU executor runs. */
static void choose_configs(struct rig *r)
{
    for (size_t i = 0; i < BENCH_CONFIG_COUNT; i++) {
        struct kernel_config cfg;
        char why[256], key[160];
        double us;
        if (build_config(&bench_configs[i], &cfg, why, sizeof why) != 0) {
            printf("skipped %s: %s\n", bench_configs[i].kernel, why);
            continue;
        }
        if (catalog_config_key(&cfg, key, sizeof key) < 0)
            snprintf(key, sizeof key, "%s", cfg.kernel->name);
        if (exec_prepare(r->exec, &cfg, BENCH_SEED, why, sizeof why) != 0) {
            printf("skipped %s: the CPU executor cannot prepare it: %s\n", key, why);
            continue;
        }
        int rc = exec_run(r->exec, 1, &us, why, sizeof why);
        exec_release(r->exec);
        if (rc != 0) {
            printf("skipped %s: the CPU executor cannot run it: %s\n", key, why);
            continue;
        }
        r->usable[r->usable_count] = cfg;
        snprintf(r->usable_key[r->usable_count], sizeof r->usable_key[0], "%s", key);
        r->usable_count++;
    }
}

static void settings_from(const struct config *c, struct measure_settings *s)
{
    *s = (struct measure_settings){
        .warmup_launches = c->warmup_launches,
        .warmup_ms = c->warmup_ms,
        .min_window_ms = c->min_window_ms,
        .min_samples = c->min_samples,
        .idle_ms = c->idle_ms,
        .idle_refresh_s = c->idle_refresh_s,
        .settle_ms = c->settle_ms,
        .repeats = c->repeats,
        .max_cv = c->max_cv,
        .min_sample_ratio = c->min_sample_ratio,
        .max_launches = c->max_launches,
    };
}

/* Measures the usable configurations round-robin for `seconds`, then prints the
 * figures. 0, or -1 when the phase timings do not add up (a measure.c bug). */
static int run_series(struct rig *r, const char *title, const struct measure_settings *st,
                      double seconds, struct record *recs)
{
    struct measure_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.exec = r->exec;
    ctx.sensor = r->sensor;
    ctx.sampler = r->sampler;
    ctx.settings = *st;
    ctx.device_id = 1;
    ctx.sysfs_root = "/sys";
    ctx.device_state = r->state;

    printf("\n== %s: min_window_ms %u, min_samples %u, settle_ms %u, repeats %u, warm-up >= %u "
           "launches and %u ms, idle %u ms (reused %u s), max_cv %.2f, min_sample_ratio %.2f\n",
           title, st->min_window_ms, st->min_samples, st->settle_ms, st->repeats,
           st->warmup_launches, st->warmup_ms, st->idle_ms, st->idle_refresh_s, st->max_cv,
           st->min_sample_ratio);
    printf("load average (1 min) at the start: %.2f\n", bench_load_1min());
    fflush(stdout);

    struct db_measurement *m = calloc(1, sizeof *m);
    if (!m) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    size_t n = 0;
    int rc = 0;
    int64_t t0 = clock_mono_ns();
    int64_t end = t0 + (int64_t)(seconds * 1e9);
    char err[512];
    while (clock_mono_ns() < end && n < MAX_RECORDS) {
        unsigned ci = (unsigned)(n % r->usable_count);
        struct record *rec = &recs[n];
        memset(rec, 0, sizeof *rec);
        rec->config = ci;
        memset(m, 0, sizeof *m);
        if (measure_run(&ctx, &r->usable[ci], 0, m, err, sizeof err) != 0) {
            rec->failed = true;
            fprintf(stderr, "%s: measurement failed: %s\n", r->usable_key[ci], err);
        } else {
            rec->ok = strcmp(m->quality, "ok") == 0;
            rec->remeasured = m->remeasured;
        }
        const struct measure_phases *p = &ctx.last_phases;
        double parts[PH_COUNT - 1] = {p->setup_ms,   p->idle_ms,      p->warmup_ms,
                                      p->windows_ms, p->remeasure_ms, p->record_ms};
        double sum = 0.0;
        for (int k = 0; k < PH_COUNT - 1; k++) {
            if (parts[k] < 0.0)
                rc = -1;
            sum += parts[k];
        }
        /* The phases are laps of one clock inside the total: never more. */
        if (sum > p->total_ms + 1e-6 || !(p->total_ms > 0.0)) {
            fprintf(stderr, "%s: phases add up to %.3f ms, more than the total %.3f ms\n",
                    r->usable_key[ci], sum, p->total_ms);
            rc = -1;
        }
        rec->total_ms = p->total_ms;
        for (int k = 0; k < PH_COUNT - 1; k++)
            rec->share[k] = p->total_ms > 0.0 ? parts[k] / p->total_ms : 0.0;
        rec->share[PH_OTHER] = p->total_ms > 0.0 ? (p->total_ms - sum) / p->total_ms : 0.0;
        n++;
    }
    double elapsed_s = (double)(clock_mono_ns() - t0) / 1e9;
    free(m);
    printf("load average (1 min) at the end: %.2f\n", bench_load_1min());

    size_t ok = 0, failed = 0, remeasured = 0;
    for (size_t i = 0; i < n; i++) {
        ok += recs[i].ok;
        failed += recs[i].failed;
        remeasured += recs[i].remeasured;
    }
    double *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    printf("%zu measurements in %.1f s (%zu ok, %zu suspect, %zu failed; %zu re-measured)\n", n,
           elapsed_s, ok, n - ok - failed, failed, remeasured);
    printf("configurations per hour: %.0f with quality ok, %.0f in total\n",
           (double)ok / elapsed_s * 3600.0, (double)(n - failed) / elapsed_s * 3600.0);
    for (size_t i = 0; i < n; i++)
        v[i] = recs[i].total_ms;
    qsort(v, n, sizeof *v, bench_compare_doubles);
    if (n)
        printf("time per measurement: median %.0f ms, min %.0f ms, max %.0f ms\n", v[n / 2],
               v[0], v[n - 1]);
    printf("share of one measurement per phase: median, (mean), median ms\n");
    for (int k = 0; k < PH_COUNT; k++) {
        double mean = 0.0, median_ms;
        for (size_t i = 0; i < n; i++)
            v[i] = recs[i].share[k] * recs[i].total_ms;
        qsort(v, n, sizeof *v, bench_compare_doubles);
        median_ms = n ? v[n / 2] : 0.0;
        for (size_t i = 0; i < n; i++) {
            v[i] = recs[i].share[k];
            mean += v[i];
        }
        qsort(v, n, sizeof *v, bench_compare_doubles);
        printf("  %-15s %6.2f %%  (%6.2f %%)  %8.2f ms\n", phase_names[k],
               n ? v[n / 2] * 100.0 : 0.0, n ? mean / (double)n * 100.0 : 0.0, median_ms);
    }
    printf("per kernel type: measured, ok, median ms per measurement\n");
    for (unsigned c = 0; c < r->usable_count; c++) {
        size_t count = 0, c_ok = 0;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].config != c)
                continue;
            v[count++] = recs[i].total_ms;
            c_ok += recs[i].ok;
        }
        qsort(v, count, sizeof *v, bench_compare_doubles);
        printf("  %-52s %4zu %4zu %7.0f\n", r->usable_key[c], count, c_ok,
               count ? v[count / 2] : 0.0);
    }
    free(v);
    fflush(stdout);
    return rc;
}

static int parse_args(int argc, char **argv, double *seconds, bool *only_default, bool *verbose)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            *seconds = strtod(argv[++i], &end);
            if (errno != 0 || *end != '\0' || !(*seconds > 0.0) || *seconds > 86400.0) {
                fprintf(stderr, "--seconds '%s': a number of seconds in (0, 86400]\n", argv[i]);
                return -1;
            }
        } else if (strcmp(argv[i], "--only-default") == 0) {
            *only_default = true;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            *verbose = true;
        } else {
            fprintf(stderr, "usage: %s [--seconds S] [--only-default] [--verbose]\n", argv[0]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 60.0;
    bool only_default = false, verbose = false;
    if (parse_args(argc, argv, &seconds, &only_default, &verbose) != 0)
        return 2;
    jp_log_set_level(verbose ? JP_LOG_INFO : JP_LOG_WARN);

    bench_print_machine();
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");

    /* The daemon's defaults, exactly as config_load makes them. */
    static struct config cfg;
    char err[512];
    char *cfg_argv[] = {argv[0], "--config", "none", NULL};
    if (config_load(&cfg, 3, cfg_argv, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "config_load: %s\n", err);
        return 1;
    }

    struct rig r;
    memset(&r, 0, sizeof r);
    struct record *recs = calloc(MAX_RECORDS, sizeof *recs);
    int rc = 1;
    struct sensor_options opt = {
        .sysfs_root = "/sys",
        .dev_root = "/dev",
        .proc_root = "/proc",
        .request = {.averaging = cfg.averaging,
                    .bus_conv_us = cfg.conversion_us,
                    .shunt_conv_us = cfg.conversion_us,
                    .period_us = cfg.period_us},
        .sim_idle_mw = cfg.sim_idle_mw,
        .sim_dynamic_mw = cfg.sim_dynamic_mw,
        .sim_noise_mw = cfg.sim_noise_mw,
        .sim_tau_us = cfg.sim_tau_us,
        .sim_seed = cfg.sim_seed,
    };
    struct device_state_sources src = {.sysfs_root = "/sys", .state_root = "/", .nvml = true};
    if (!recs) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (sensor_open("sim", &opt, &r.sensor, err, sizeof err) != 0) {
        fprintf(stderr, "sensor_open sim: %s\n", err);
        goto out;
    }
    if (sampler_start(r.sensor, SAMPLER_DEFAULT_RING_CAPACITY, &r.sampler, err, sizeof err) != 0) {
        fprintf(stderr, "sampler_start: %s\n", err);
        goto out;
    }
    if (exec_cpu_open(&r.exec, err, sizeof err) != 0) {
        fprintf(stderr, "exec_cpu_open: %s\n", err);
        goto out;
    }
    if (device_state_open(&src, &r.state, err, sizeof err) != 0) {
        fprintf(stderr, "device_state_open: %s\n", err);
        goto out;
    }
    struct exec_info info;
    exec_info(r.exec, &info);
    printf("sensor: %s (simulated: power follows /proc/stat); executor: %s (%s); %.0f s per "
           "run\n",
           r.sensor->description, info.name, info.device, seconds);
    choose_configs(&r);
    if (r.usable_count == 0) {
        fprintf(stderr, "no configuration of the list can be measured\n");
        goto out;
    }
    printf("%u configurations, measured round-robin\n", r.usable_count);

    struct measure_settings st;
    settings_from(&cfg, &st);
    rc = run_series(&r, "default protocol", &st, seconds, recs) != 0 ? 1 : 0;
    if (!only_default) {
        st.min_window_ms = 50;
        st.min_samples = 50;
        if (run_series(&r, "50 ms windows", &st, seconds, recs) != 0)
            rc = 1;
    }
out:
    device_state_close(r.state);
    if (r.sampler)
        sampler_stop(r.sampler);
    sensor_close(r.sensor);
    exec_close(r.exec);
    free(recs);
    return rc;
}
