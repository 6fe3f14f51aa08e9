/*
 * main.c - jetprofd's start-up and shutdown.
 *
 * Start-up builds struct app (app.h) one step at a time, logging one line per
 * step: configuration, signals, database (recovering jobs a crash left
 * running), sensor, sampler, executor, the device fingerprint, the runner, the
 * predictors (the newest models of this device, from the database), the HTTP
 * server, then READY=1 to systemd. Every step that fails logs what failed
 * and why and unwinds what was started, so the sensor always gets its original
 * configuration back. Shutdown (SIGINT/SIGTERM) runs the same unwinding in the
 * order that loses nothing: the runner finishes the job in progress and answers
 * its waiters before the HTTP server stops.
 *
 * Signals are blocked in every thread (the mask is set before the first thread
 * exists) and taken synchronously with sigtimedwait, which also paces the
 * systemd watchdog. At shutdown app.stopping is raised first, so open
 * GET /v1/power/stream responses end cleanly before the HTTP server stops.
 *
 * SIGHUP reloads: the same file and the same command line are read again (flags
 * still win) and validated; a configuration that does not load or validate, or
 * whose token file cannot be read, is refused with the reason in the log and
 * the daemon goes on with what it runs. What can change safely applies:
 * log.level at once (an atomic), the token and server.auth_reads at once (the
 * HTTP server swaps them under its lock), the measurement protocol and the
 * training options from the next job (a runner task writes them on the runner
 * thread, between jobs, so no window sees half of a change). Every other key
 * keeps its running value and the log says that a restart applies it. The
 * main thread keeps its own copy of the effective configuration (d->current)
 * to compare against, because the runner thread owns the live copy's
 * measurement and training fields. systemd hears RELOADING=1 and READY=1.
 *
 * The executor runs in a worker process (worker.h), started with fork + exec
 * of this same binary in worker mode (`jetprofd --worker ...`, dispatched at
 * the top of main before any configuration is read); it ends at teardown.
 *
 * The GPIO marker (sensor.gpio_chip) is opened after the sampler: a chip or
 * line that is not there is a start-up error naming both. It is kept in
 * app.marker for the measurement to drive.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 configuration error (the token file
 * included: a restart cannot fix it, so systemd's RestartPreventExitStatus=2
 * stops retrying).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "app.h"
#include "board.h"
#include "common/clock.h"
#include "common/log.h"
#include "config.h"
#include "device_state.h"
#include "http.h"
#include "measure.h"
#include "models_state.h"
#include "rounds.h"
#include "runner.h"
#include "sensors/gpio_marker.h"
#include "worker.h"

#define EXIT_RUNTIME 1
#define EXIT_CONFIG 2
#define MIN_RING_SAMPLES 16u
#define STREAM_DRAIN_NS (2LL * 1000000000LL) /* open streams get this long to end */

/* Everything start-up creates, so one function can unwind any prefix of it. */
struct daemon {
    /* The configuration the daemon runs with: app.cfg points here. HTTP threads
     * read its restart-only keys; the runner thread owns the measurement and
     * training keys after start (a reload writes them there, see reload_config). */
    struct config cfg;
    /* The main thread's copy of the effective configuration, what a reload
     * compares against; and the command line a reload parses again. */
    struct config current;
    int argc;
    char **argv;
    char token[HTTP_TOKEN_MAX]; /* the token in force (main thread's copy) */
    char status[CONFIG_STR_MAX + 64]; /* STATUS= for systemd: "serving on ..." */
    struct app app;
    struct db_pool *pool;
    struct sensor *sensor;
    struct sampler *sampler;
    struct gpio_marker *marker;
    struct executor *exec;
    struct device_state *device_state;
    struct measure_ctx mctx;
    struct runner *runner;
    bool runner_started;
    struct models_state *models;
    struct http_server *http;
    unsigned port; /* bound */
    bool port_file_written;
    char address[CONFIG_STR_MAX + 8]; /* "127.0.0.1:9740" with the bound port */
};

/* ---- small helpers ---- */

/* "" = libjetprof_cuda.so in ../lib/jetprof/ next to this binary (bin/ in the
 * tree, $PREFIX/bin when installed, build/san/bin under SAN=1). */
static void resolve_cuda_lib(const char *configured, char *out, size_t outlen)
{
    if (configured[0]) {
        snprintf(out, outlen, "%s", configured);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = NULL;
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
    }
    if (!slash) {
        snprintf(out, outlen, "libjetprof_cuda.so"); /* the dynamic loader's search path */
        return;
    }
    *slash = '\0';
    snprintf(out, outlen, "%s/../lib/jetprof/libjetprof_cuda.so", exe);
}

/* One sentence on why this sensor backend runs. */
static void describe_sensor_choice(const struct config *cfg, const struct sensor *s, char *out,
                                   size_t outlen)
{
    const char *sim = s->simulated ? "simulated; " : "";
    if (strcmp(cfg->sensor, "auto") != 0) {
        snprintf(out, outlen, "%sconfigured", sim);
        return;
    }
    const char *const *names = sensor_backend_names();
    bool hardware_built = false;
    char skipped[160] = "";
    size_t used = 0;
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(names[i], "sim") != 0)
            hardware_built = true;
        if (strcmp(names[i], s->backend->name) == 0)
            break;
        int n = snprintf(skipped + used, sizeof skipped - used, "%s%s", used ? ", " : "",
                         names[i]);
        if (n > 0 && (size_t)n < sizeof skipped - used)
            used += (size_t)n;
    }
    if (!hardware_built)
        snprintf(out, outlen, "%schosen by auto: no hardware backend in this build", sim);
    else if (skipped[0])
        snprintf(out, outlen, "%schosen by auto: %s did not work (see the log)", sim, skipped);
    else
        snprintf(out, outlen, "%schosen by auto: the first backend that works", sim);
}

static void format_sampling(const struct sensor_sampling *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "averaging %u, conversion %u/%u us, period %u us", s->averaging,
             s->bus_conv_us, s->shunt_conv_us, s->period_us);
}

/* Writes "PORT\n" atomically (temporary file + rename), so a reader never sees
 * half of it. */
static int write_port_file(const char *path, unsigned port, char *err, size_t errlen)
{
    char tmp[CONFIG_STR_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write port file %s: %s", path, strerror(errno));
        return -1;
    }
    int wrote = fprintf(f, "%u\n", port);
    int werr = ferror(f) ? errno : 0;
    if (fclose(f) != 0 && !werr)
        werr = errno;
    if (wrote < 0 || werr) {
        snprintf(err, errlen, "cannot write port file %s: %s", path, strerror(werr ? werr : EIO));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write port file %s (rename): %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* "HOST:PORT" of the configured listen address with the bound port. */
static void bound_address(const char *listen, unsigned port, char *out, size_t outlen)
{
    const char *colon = strrchr(listen, ':'); /* config_validate checked the form */
    int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);
    snprintf(out, outlen, "%.*s:%u", host_len, listen, port);
}

/* ---- start-up steps: each 0, or -1 with err ---- */

static int open_storage(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    unsigned connections = cfg->threads + 1;
    if (db_pool_open(cfg->db, connections, &d->pool, err, errlen) != 0)
        return -1;
    d->app.pool = d->pool;
    struct db *db = db_pool_acquire(d->pool);
    if (!db) {
        snprintf(err, errlen, "no database connection available from the pool");
        return -1;
    }
    log_info("main", "database: %s (schema version %d, %u connections for HTTP)", cfg->db,
             db_schema_version(db), connections);
    int requeued = 0, failed = 0;
    int rc = db_jobs_recover(db, &requeued, &failed, err, errlen);
    db_pool_release(d->pool, db);
    if (rc != 0)
        return -1;
    if (requeued || failed)
        log_info("main", "jobs: %d interrupted job(s) queued again, %d failed after %s",
                 requeued, failed, "too many attempts");
    else
        log_info("main", "jobs: none left running by a previous run");
    return 0;
}

static int open_sensor(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    struct sensor_options opt = {
        .sysfs_root = cfg->sysfs_root,
        .dev_root = cfg->dev_root,
        .proc_root = cfg->proc_root,
        .request = {.averaging = cfg->averaging,
                    .bus_conv_us = cfg->conversion_us,
                    .shunt_conv_us = cfg->conversion_us,
                    .period_us = cfg->period_us},
        .sim_idle_mw = cfg->sim_idle_mw,
        .sim_dynamic_mw = cfg->sim_dynamic_mw,
        .sim_noise_mw = cfg->sim_noise_mw,
        .sim_tau_us = cfg->sim_tau_us,
        .sim_seed = cfg->sim_seed,
        .i2c_bus = cfg->i2c_bus,
        .i2c_addr = cfg->i2c_addr,
        .force = cfg->force,
        .i2c_emulated = cfg->i2c_emulated,
        .nvml_lib = cfg->nvml_lib[0] ? cfg->nvml_lib : NULL,
        .nvml_device = cfg->nvml_device,
    };
    for (unsigned i = 0; i < 3; i++) {
        opt.shunt_uohm[i] = cfg->shunt_uohm[i];
        opt.rail_names[i] = cfg->rails[i][0] ? cfg->rails[i] : NULL;
    }
    if (sensor_open(cfg->sensor, &opt, &d->sensor, err, errlen) != 0)
        return -1;
    struct sensor *s = d->sensor;
    d->app.sensor = s;
    describe_sensor_choice(cfg, s, d->app.sensor_why, sizeof d->app.sensor_why);
    char asked[128], got[128];
    format_sampling(&s->asked, asked, sizeof asked);
    format_sampling(&s->got, got, sizeof got);
    log_info("main", "sensor: %s (%s)", s->backend->name, d->app.sensor_why);
    log_info("main", "sensor: %s; %u rails, board input %s%s; sampling asked %s, got %s",
             s->description, s->rail_count,
             s->board_input_rail >= 0 ? s->rails[s->board_input_rail].name : "none",
             s->board_input_is_sum ? " (sum of rails)" : "", asked, got);
    return 0;
}

static int start_sampler(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    unsigned period_us = d->sensor->got.period_us;
    if (period_us == 0) /* a self-pacing backend may not report one */
        period_us = d->sensor->asked.period_us ? d->sensor->asked.period_us : cfg->period_us;
    uint64_t ring = (uint64_t)cfg->ring_seconds * 1000000u / period_us;
    if (ring < MIN_RING_SAMPLES)
        ring = MIN_RING_SAMPLES;
    if (sampler_start(d->sensor, (size_t)ring, &d->sampler, err, errlen) != 0)
        return -1;
    d->app.sampler = d->sampler;
    log_info("main", "sampler: started, ring of %llu samples (%u s at %u us)",
             (unsigned long long)ring, cfg->ring_seconds, period_us);
    if (cfg->realtime_priority > 0) {
        char why[256];
        if (sampler_set_realtime(d->sampler, (int)cfg->realtime_priority, why, sizeof why) == 0)
            log_info("main", "sampler: SCHED_FIFO priority %u", cfg->realtime_priority);
        else
            log_warn("main", "sampler: keeps normal scheduling, so a busy machine can delay "
                             "reads and lower the sample ratio: %s", why);
    }
    return 0;
}

static int open_marker(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    if (cfg->gpio_chip[0] == '\0') {
        log_info("main", "gpio marker: none (sensor.gpio_chip is empty)");
        return 0;
    }
    char why[512];
    if (gpio_marker_open(cfg->gpio_chip, cfg->gpio_line, &d->marker, why, sizeof why) != 0) {
        snprintf(err, errlen, "GPIO marker on chip '%.200s' line %u (sensor.gpio_chip, "
                 "sensor.gpio_line): %.600s", cfg->gpio_chip, cfg->gpio_line, why);
        return -1;
    }
    d->app.marker = d->marker;
    log_info("main", "gpio marker: chip %s line %u, held high during measurement windows",
             cfg->gpio_chip, cfg->gpio_line);
    return 0;
}

static int open_executor(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    char lib[PATH_MAX + 64];
    resolve_cuda_lib(cfg->cuda_lib, lib, sizeof lib);
    /* The executor lives in a worker process (worker.h): a kernel that hangs,
     * crashes or poisons its CUDA context ends the worker, not the daemon. The
     * worker reads the job's deadline from the measurement context. */
    struct worker_options opt = {
        .program = NULL,
        .deadline_ns = &d->mctx.deadline_ns,
        .job_timeout_s = cfg->job_timeout_s,
        .test_faults = cfg->test_faults,
    };
    if (worker_executor_open(cfg->executor, lib, &opt, &d->exec, d->app.executor_why,
                             sizeof d->app.executor_why, err, errlen) != 0)
        return -1;
    if (cfg->test_faults)
        log_warn("main", "executor.test_faults is on: POST /v1/measure accepts \"test_fault\" "
                 "(hang, crash, poison, illegal_access) - for tests only, never in production");
    exec_info(d->exec, &d->app.exec_info);
    d->app.exec = d->exec; /* HTTP threads ask it for memory figures (thread-safe ops) */
    const struct exec_info *xi = &d->app.exec_info;
    /* the worker's exec_open has logged why it chose this one (d->app.executor_why) */
    log_info("main", "executor: %s on %s%s%s, in worker process %ld", xi->name, xi->device,
             xi->runtime_version[0] ? ", CUDA runtime " : "", xi->runtime_version,
             (long)worker_pid(d->exec));
    return 0;
}

static int register_device(struct daemon *d, char *err, size_t errlen)
{
    struct board_identity board;
    board_identify(d->cfg.sysfs_root, BOARD_NV_TEGRA_RELEASE, &board);
    log_info("main", "board: %s%s%s", board.model, board.l4t[0] ? ", L4T " : "", board.l4t);

    struct db_device *dev = &d->app.device;
    memset(dev, 0, sizeof *dev);
    const struct exec_info *xi = &d->app.exec_info;
    const struct sensor_sampling *got = &d->sensor->got;
    snprintf(dev->board_model, sizeof dev->board_model, "%s", board.model);
    snprintf(dev->l4t_version, sizeof dev->l4t_version, "%s", board.l4t);
    snprintf(dev->cuda_version, sizeof dev->cuda_version, "%s", xi->runtime_version);
    snprintf(dev->gpu_name, sizeof dev->gpu_name, "%s", xi->device);
    snprintf(dev->executor, sizeof dev->executor, "%s", xi->name);
    snprintf(dev->sensor_backend, sizeof dev->sensor_backend, "%s", d->sensor->backend->name);
    snprintf(dev->sampling_json, sizeof dev->sampling_json,
             "{\"averaging\":%u,\"bus_conv_us\":%u,\"shunt_conv_us\":%u,\"period_us\":%u}",
             got->averaging, got->bus_conv_us, got->shunt_conv_us, got->period_us);
    if (gethostname(dev->hostname, sizeof dev->hostname) != 0)
        snprintf(dev->hostname, sizeof dev->hostname, "unknown");
    dev->hostname[sizeof dev->hostname - 1] = '\0';
    dev->simulated = d->sensor->simulated;

    struct db *db = db_pool_acquire(d->pool);
    if (!db) {
        snprintf(err, errlen, "no database connection available from the pool");
        return -1;
    }
    int rc = db_device_upsert(db, dev, &d->app.device_id, err, errlen);
    db_pool_release(d->pool, db);
    if (rc != 0)
        return -1;
    log_info("main", "device: id %lld, fingerprint %.16s..., host %s%s",
             (long long)d->app.device_id, dev->fingerprint, dev->hostname,
             dev->simulated ? ", simulated sensor" : "");
    return 0;
}

/* The measurement protocol's settings (measure.h) from the [measure] keys. */
static struct measure_settings settings_from_config(const struct config *cfg)
{
    return (struct measure_settings){
        .warmup_launches = cfg->warmup_launches,
        .warmup_ms = cfg->warmup_ms,
        .min_window_ms = cfg->min_window_ms,
        .min_samples = cfg->min_samples,
        .idle_ms = cfg->idle_ms,
        .idle_refresh_s = cfg->idle_refresh_s,
        .settle_ms = cfg->settle_ms,
        .repeats = cfg->repeats,
        .max_cv = cfg->max_cv,
        .min_sample_ratio = cfg->min_sample_ratio,
        .max_launches = cfg->max_launches,
    };
}

static int start_runner(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    struct measure_ctx *m = &d->mctx;
    memset(m, 0, sizeof *m);
    m->exec = d->exec;
    m->sensor = d->sensor;
    m->sampler = d->sampler;
    m->settings = settings_from_config(cfg);
    m->device_id = d->app.device_id;
    m->marker = d->marker;
    d->app.mctx = m;
    m->sysfs_root = cfg->sysfs_root;
    /* Opened once, so NVML (desktop GPUs) stays loaded between measurements. The
     * nvpmodel files are read below "/" (tests of device_state use fixtures). */
    struct device_state_sources src = {.sysfs_root = cfg->sysfs_root, .state_root = "/",
                                       .nvml = true, .nvml_lib = cfg->nvml_lib,
                                       .nvml_device = cfg->nvml_device};
    char why[256];
    if (device_state_open(&src, &d->device_state, why, sizeof why) != 0) {
        log_warn("main", "device state: %s; measurements record what sysfs shows", why);
        d->device_state = NULL;
    }
    m->device_state = d->device_state;
    if (runner_create(cfg->db, m, cfg->job_timeout_s, &d->runner, err, errlen) != 0)
        return -1;
    d->app.runner = d->runner;
    struct rounds_config rounds = {.max_attempts = (int)cfg->max_attempts,
                                   .simulated = d->app.device.simulated};
    api_train_options(cfg, &rounds.train);
    runner_set_rounds_config(d->runner, &rounds);
    if (runner_start(d->runner, err, errlen) != 0)
        return -1;
    d->runner_started = true;
    log_info("main", "runner: started (%u repeats, window >= %u ms, job time limit %u s)",
             cfg->repeats, cfg->min_window_ms, cfg->job_timeout_s);
    return 0;
}

/* The predictors and their cache; training replaces the set later (api_models.c). */
static int load_models(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    if (models_state_create(cfg->cache_entries, &d->models, err, errlen) != 0)
        return -1;
    d->app.models = d->models;
    struct db *db = db_pool_acquire(d->pool);
    if (!db) {
        snprintf(err, errlen, "no database connection available from the pool");
        return -1;
    }
    size_t loaded = 0;
    int rc = api_models_load(&d->app, db, &loaded, err, errlen);
    db_pool_release(d->pool, db);
    if (rc != 0)
        return -1;
    if (loaded)
        log_info("main", "models: %zu loaded for this device (prediction cache of %u entries)",
                 loaded, cfg->cache_entries);
    else
        log_info("main", "models: none yet for this device (measure with POST /v1/jobs, then "
                 "POST /v1/models/train)");
    return 0;
}

static int start_http(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    uint16_t port = 0;
    if (http_start(&d->app, &d->http, &port, err, errlen) != 0)
        return -1;
    bound_address(cfg->listen, port, d->address, sizeof d->address);
    d->port = port;
    log_info("main", "http: serving on http://%s (%u threads, auth %s)", d->address,
             cfg->threads, d->app.token[0] ? "by bearer token" : "off");
    return 0;
}

/* ---- shutdown ---- */

/* Gives open power streams (which see app.stopping) a moment to end cleanly. */
static void drain_streams(struct daemon *d)
{
    int64_t deadline = clock_mono_ns() + STREAM_DRAIN_NS;
    unsigned open = atomic_load(&d->app.streams_active);
    if (open == 0)
        return;
    while (atomic_load(&d->app.streams_active) > 0 && clock_mono_ns() < deadline)
        clock_sleep_until_ns(clock_mono_ns() + 10000000LL);
    unsigned left = atomic_load(&d->app.streams_active);
    if (left)
        log_warn("main", "http: %u power stream%s still open after %.0f s; closing anyway",
                 left, left == 1 ? "" : "s", (double)STREAM_DRAIN_NS / 1e9);
    else
        log_info("main", "http: %u power stream%s ended", open, open == 1 ? "" : "s");
}

/* Unwinds whatever start-up created, in the order that loses nothing. */
static void teardown(struct daemon *d)
{
    atomic_store(&d->app.stopping, true);
    if (d->runner && d->runner_started) {
        struct runner_status st;
        runner_get_status(d->runner, &st);
        if (st.running_job)
            log_info("main", "runner: letting job %lld finish", (long long)st.current_job_id);
        runner_stop(d->runner);
        log_info("main", "runner: stopped");
    }
    if (d->http) {
        drain_streams(d);
        http_stop(d->http);
        d->http = NULL;
        log_info("main", "http: stopped");
    }
    if (d->runner) {
        runner_destroy(d->runner);
        d->runner = d->app.runner = NULL;
    }
    if (d->models) {
        /* After the runner: a training task may still have been replacing the set. */
        models_state_destroy(d->models);
        d->models = d->app.models = NULL;
    }
    if (d->device_state) {
        device_state_close(d->device_state);
        d->device_state = d->mctx.device_state = NULL;
    }
    if (d->marker) {
        gpio_marker_close(d->marker);
        d->marker = d->app.marker = NULL;
        log_info("main", "gpio marker: released");
    }
    if (d->sampler) {
        sampler_stop(d->sampler);
        d->sampler = d->app.sampler = NULL;
        log_info("main", "sampler: stopped");
    }
    if (d->sensor) {
        sensor_close(d->sensor);
        d->sensor = d->app.sensor = NULL;
        log_info("main", "sensor: closed, its configuration restored");
    }
    if (d->exec) {
        exec_close(d->exec);
        d->exec = NULL;
    }
    if (d->pool) {
        db_pool_close(d->pool);
        d->pool = d->app.pool = NULL;
    }
    if (d->port_file_written && unlink(d->cfg.port_file) != 0 && errno != ENOENT)
        log_warn("main", "cannot remove port file %s: %s", d->cfg.port_file, strerror(errno));
    d->port_file_written = false;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "signal";
    }
}

/* ---- reload (SIGHUP) ---- */

/* Keys a reload applies without a restart. Every other key is used once at start
 * (the socket, the database, the sensor and its sampler, the executor, pool and
 * cache sizes) or is read by HTTP threads without a lock, so it keeps its running
 * value until a restart. */
static const char *const live_keys[] = {
    "log.level",
    "server.token_file",
    "server.allow_unauthenticated",
    "server.auth_reads",
    "measure.warmup_launches",
    "measure.warmup_ms",
    "measure.min_window_ms",
    "measure.min_samples",
    "measure.idle_ms",
    "measure.idle_refresh_s",
    "measure.settle_ms",
    "measure.repeats",
    "measure.max_cv",
    "measure.min_sample_ratio",
    "measure.max_launches",
    "predict.train_seed",
    "predict.train_rounds",
    "predict.train_max_depth",
    "predict.train_eta",
    "predict.train_ensemble",
    "predict.train_holdout",
    "predict.keep_models",
};

static bool key_is_live(const char *key)
{
    for (size_t i = 0; i < sizeof live_keys / sizeof live_keys[0]; i++)
        if (strcmp(live_keys[i], key) == 0)
            return true;
    return false;
}

struct key_change {
    char key[96];
    char old_value[CONFIG_STR_MAX];
    char new_value[CONFIG_STR_MAX];
    bool live;
};

struct change_list {
    struct key_change items[CONFIG_MAX_KEYS];
    size_t count;
};

static void collect_change(const char *key, const char *old_value, const char *new_value,
                           void *ctx)
{
    struct change_list *l = ctx;
    if (l->count >= CONFIG_MAX_KEYS)
        return;
    struct key_change *c = &l->items[l->count++];
    snprintf(c->key, sizeof c->key, "%s", key);
    snprintf(c->old_value, sizeof c->old_value, "%s", old_value);
    snprintf(c->new_value, sizeof c->new_value, "%s", new_value);
    c->live = key_is_live(key);
}

/* The measurement and training settings of a reload, applied on the runner
 * thread between jobs: measure_run reads mctx->settings there, and training
 * (api_models.c) reads the predict.train_* keys and predict.keep_models of
 * app.cfg there, and nowhere else. */
struct settings_task {
    struct runner_task task;
    struct measure_ctx *mctx;
    struct config *live; /* d->cfg */
    struct measure_settings settings;
    unsigned train_seed, train_rounds, train_max_depth, train_ensemble, keep_models;
    double train_eta, train_holdout;
};

static void apply_settings_task(struct db *db, void *ctx)
{
    struct settings_task *t = ctx;
    if (db) { /* NULL: the runner stopped first, nothing more will run */
        t->mctx->settings = t->settings;
        t->live->train_seed = t->train_seed;
        t->live->train_rounds = t->train_rounds;
        t->live->train_max_depth = t->train_max_depth;
        t->live->train_ensemble = t->train_ensemble;
        t->live->train_eta = t->train_eta;
        t->live->train_holdout = t->train_holdout;
        t->live->keep_models = t->keep_models;
        log_info("main", "reload: measurement and training settings in effect from the next "
                 "job (repeats %u, window >= %u ms)", t->settings.repeats,
                 t->settings.min_window_ms);
    }
    free(t);
}

/* Appends "text" to buf, separated by sep when buf is not empty. */
static void append_item(char *buf, size_t buflen, const char *sep, const char *text)
{
    size_t used = strlen(buf);
    if (used + 1 >= buflen)
        return;
    snprintf(buf + used, buflen - used, "%s%s", used ? sep : "", text);
}

static void reload_refused(struct daemon *d, const char *why)
{
    log_error("main", "reload refused, still running with the previous configuration: %s", why);
    sd_notifyf(0, "READY=1\nSTATUS=%s; last reload refused: %s", d->status, why);
}

/*
 * SIGHUP: loads the configuration again as start-up did, validates it, keeps
 * the running value of every key that needs a restart (logging each), reads the
 * token file, and applies the rest. Nothing is applied unless all of it is valid.
 */
static void reload_config(struct daemon *d)
{
    char err[1024];
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
               (unsigned long long)(clock_mono_ns() / 1000));
    log_info("main", "SIGHUP: reloading the configuration (%s and the command line)",
             d->current.config_path[0] ? d->current.config_path : "no config file");
    struct config *next = calloc(1, sizeof *next);
    struct change_list *changes = calloc(1, sizeof *changes);
    if (!next || !changes) {
        reload_refused(d, "out of memory");
        goto out;
    }
    enum config_parse_result parsed = config_load(next, d->argc, d->argv, err, sizeof err);
    if (parsed != CONFIG_OK) {
        reload_refused(d, parsed == CONFIG_ERROR ? err : "the command line asks to exit");
        goto out;
    }
    if (config_validate(next, err, sizeof err) != 0) {
        reload_refused(d, err);
        goto out;
    }
    config_diff(&d->current, next, collect_change, changes);
    /* Restart-only keys keep their running values; what is left must still be
     * valid together (e.g. a longer measure.min_window_ms against the running
     * sensor.ring_seconds). */
    for (size_t i = 0; i < changes->count; i++)
        if (!changes->items[i].live && config_copy_key(next, &d->current, changes->items[i].key))
            log_error("main", "reload: unknown key %s", changes->items[i].key);
    if (config_validate(next, err, sizeof err) != 0) {
        char why[1200];
        snprintf(why, sizeof why, "%s (with the keys that need a restart at their running "
                 "values)", err);
        reload_refused(d, why);
        goto out;
    }
    char token[HTTP_TOKEN_MAX] = "";
    if (next->token_file[0]) {
        char warn[512];
        if (http_token_read(next->token_file, token, sizeof token, warn, sizeof warn, err,
                            sizeof err) != 0) {
            reload_refused(d, err);
            goto out;
        }
        if (warn[0])
            log_warn("main", "auth: %s", warn);
    }

    /* Valid: apply. */
    char applied[2048] = "", kept[1024] = "";
    bool measure = false, train = false, level = false;
    for (size_t i = 0; i < changes->count; i++) {
        const struct key_change *c = &changes->items[i];
        if (!c->live) {
            log_warn("main", "%s changed: restart jetprofd to apply (running with '%.200s', "
                     "configured '%.200s')", c->key, c->old_value, c->new_value);
            append_item(kept, sizeof kept, ", ", c->key);
            continue;
        }
        char item[1200];
        snprintf(item, sizeof item, "%s: %.500s -> %.500s", c->key, c->old_value, c->new_value);
        append_item(applied, sizeof applied, "; ", item);
        if (strncmp(c->key, "measure.", 8) == 0)
            measure = true;
        else if (strncmp(c->key, "predict.", 8) == 0)
            train = true;
        else if (strcmp(c->key, "log.level") == 0)
            level = true;
    }
    bool token_changed = strcmp(token, d->token) != 0;
    bool auth_changed = token_changed || next->auth_reads != d->current.auth_reads;
    if (auth_changed)
        http_set_auth(d->http, token, next->auth_reads && token[0]);
    if (measure || train) {
        struct settings_task *t = calloc(1, sizeof *t);
        if (!t) {
            /* Nothing else is applied yet but the auth swap: undo it. */
            if (auth_changed)
                http_set_auth(d->http, d->token, d->current.auth_reads && d->token[0]);
            explicit_bzero(token, sizeof token);
            reload_refused(d, "out of memory");
            goto out;
        }
        *t = (struct settings_task){
            .task = {.run = apply_settings_task, .ctx = t},
            .mctx = &d->mctx,
            .live = &d->cfg,
            .settings = settings_from_config(next),
            .train_seed = next->train_seed,
            .train_rounds = next->train_rounds,
            .train_max_depth = next->train_max_depth,
            .train_ensemble = next->train_ensemble,
            .train_eta = next->train_eta,
            .train_holdout = next->train_holdout,
            .keep_models = next->keep_models,
        };
        t->task.ctx = t;
        if (runner_submit_task(d->runner, &t->task) != 0) {
            free(t); /* stopping: no job will run again anyway */
            log_warn("main", "reload: the runner is stopping; measurement settings not applied");
        }
    }
    const char *token_note = !token_changed ? "bearer token unchanged"
                             : !token[0]    ? "auth now off (no token file)"
                             : !d->token[0] ? "auth now on"
                                            : "bearer token replaced";
    if (!token[0] && !config_listen_is_loopback(next))
        log_warn("main", "auth: off on non-loopback address %s (server.allow_unauthenticated "
                 "= true): anyone who can reach it can queue jobs and change the sampling",
                 next->listen);
    log_info("main", "reload done: %s%s%s; %s%s%s", applied[0] ? "applied " : "no change applied",
             applied, (measure || train) ? " (measurement and training from the next job)" : "",
             token_note, kept[0] ? "; needs a restart: " : "", kept);
    if (level) {
        /* after the summary, so the line shows even when the new level hides info */
        enum jp_log_level lv = JP_LOG_INFO;
        jp_log_level_parse(next->log_level, &lv);
        jp_log_set_level(lv);
    }
    snprintf(d->token, sizeof d->token, "%s", token);
    explicit_bzero(token, sizeof token);
    d->current = *next;
    sd_notifyf(0, "READY=1\nSTATUS=%s; configuration reloaded%s", d->status,
               kept[0] ? " (some changes need a restart, see the log)" : "");
out:
    free(next);
    free(changes);
}

/* Serves until SIGINT or SIGTERM, keeping the systemd watchdog fed and
 * reloading the configuration on SIGHUP. */
static void wait_for_stop(struct daemon *d, const sigset_t *stop_set)
{
    uint64_t watchdog_us = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0;
    uint64_t wait_us = watchdog ? watchdog_us / 2 : 1000000u;
    struct timespec timeout = {.tv_sec = (time_t)(wait_us / 1000000u),
                               .tv_nsec = (long)(wait_us % 1000000u) * 1000L};
    if (watchdog)
        log_info("main", "systemd watchdog: %llu ms, pinging every %llu ms",
                 (unsigned long long)(watchdog_us / 1000), (unsigned long long)(wait_us / 1000));
    for (;;) {
        if (watchdog)
            sd_notify(0, "WATCHDOG=1");
        siginfo_t info;
        int sig = sigtimedwait(stop_set, &info, &timeout);
        if (sig < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            log_error("main", "sigtimedwait failed: %s; stopping", strerror(errno));
            return;
        }
        if (sig == SIGHUP) {
            reload_config(d);
            continue;
        }
        log_info("main", "%s received: stopping", signal_name(sig));
        return;
    }
}

/* ---- main ---- */

static int fail_start(struct daemon *d, const char *step, const char *err)
{
    log_error("main", "%s failed: %s", step, err);
    sd_notifyf(0, "STATUS=start-up failed: %s: %s", step, err);
    teardown(d);
    return EXIT_RUNTIME;
}

static int run(struct daemon *d, const sigset_t *stop_set)
{
    char err[1024];
    struct config *cfg = &d->cfg;

    if (cfg->token_file[0]) {
        char warn[512];
        if (http_token_read(cfg->token_file, d->app.token, sizeof d->app.token, warn,
                            sizeof warn, err, sizeof err) != 0) {
            /* A configuration error: restarting cannot fix it (exit status 2). */
            log_error("main", "auth failed: %s", err);
            sd_notifyf(0, "STATUS=start-up failed: auth: %s", err);
            return EXIT_CONFIG;
        }
        if (warn[0])
            log_warn("main", "auth: %s", warn);
        snprintf(d->token, sizeof d->token, "%s", d->app.token);
        if (cfg->auth_reads)
            log_info("main", "auth: every endpoint but GET /v1/health needs the bearer token "
                     "from %s (server.auth_reads)", cfg->token_file);
        else
            log_info("main", "auth: mutating endpoints need the bearer token from %s",
                     cfg->token_file);
    } else if (config_listen_is_loopback(cfg)) {
        log_info("main", "auth: off (no server.token_file; listening on loopback only)");
    } else {
        log_warn("main", "auth: off on non-loopback address %s (server.allow_unauthenticated "
                 "= true): anyone who can reach it can queue jobs and change the sampling",
                 cfg->listen);
    }
    if (open_storage(d, err, sizeof err) != 0)
        return fail_start(d, "database", err);
    if (open_sensor(d, err, sizeof err) != 0)
        return fail_start(d, "sensor", err);
    if (start_sampler(d, err, sizeof err) != 0)
        return fail_start(d, "sampler", err);
    if (open_marker(d, err, sizeof err) != 0)
        return fail_start(d, "gpio marker", err);
    if (open_executor(d, err, sizeof err) != 0)
        return fail_start(d, "executor", err);
    if (register_device(d, err, sizeof err) != 0)
        return fail_start(d, "device registration", err);
    if (start_runner(d, err, sizeof err) != 0)
        return fail_start(d, "runner", err);
    if (load_models(d, err, sizeof err) != 0)
        return fail_start(d, "models", err);
    if (start_http(d, err, sizeof err) != 0)
        return fail_start(d, "http", err);
    if (cfg->port_file[0]) {
        if (write_port_file(cfg->port_file, d->port, err, sizeof err) != 0)
            return fail_start(d, "port file", err);
        d->port_file_written = true;
        log_info("main", "port file: wrote %u to %s", d->port, cfg->port_file);
    }

    snprintf(d->status, sizeof d->status, "serving on http://%s", d->address);
    sd_notifyf(0, "READY=1\nSTATUS=%s", d->status);
    log_info("main", "ready: serving on http://%s", d->address);

    wait_for_stop(d, stop_set);

    sd_notify(0, "STOPPING=1");
    teardown(d);
    log_info("main", "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    /* The executor's worker process is this program started again (worker.h). */
    if (worker_mode_requested(argc, argv))
        return worker_child_main(argc, argv);
    struct daemon *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "jetprofd: out of memory\n");
        return EXIT_RUNTIME;
    }
    char err[1024];
    enum config_parse_result parsed = config_load(&d->cfg, argc, argv, err, sizeof err);
    if (parsed != CONFIG_OK) {
        free(d);
        if (parsed == CONFIG_EXIT_SUCCESS)
            return 0;
        fprintf(stderr, "jetprofd: %s\n", err);
        return EXIT_CONFIG;
    }
    struct config *cfg = &d->cfg;
    enum jp_log_level level = JP_LOG_INFO;
    jp_log_level_parse(cfg->log_level, &level); /* the config table allows only valid names */
    jp_log_set_level(level);
    if (config_validate(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "jetprofd: %s\n", err);
        free(d);
        return EXIT_CONFIG;
    }
    if (cfg->check_config) {
        config_print(cfg, stdout);
        free(d);
        return 0;
    }

    /* Before any thread exists, so every thread inherits the mask and only
     * sigtimedwait below sees these signals. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGHUP);
    int rc = pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    if (rc != 0) {
        fprintf(stderr, "jetprofd: cannot block signals: %s\n", strerror(rc));
        free(d);
        return EXIT_RUNTIME;
    }
    /* A client that hangs up must cost an EPIPE, not the daemon. */
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, NULL);

    d->app.cfg = cfg;
    /* what SIGHUP compares against and parses again (argv lives as long as we do) */
    d->current = *cfg;
    d->argc = argc;
    d->argv = argv;
    d->app.started_mono_ns = clock_mono_ns();
    clock_utc_iso8601(d->app.started_at, sizeof d->app.started_at);
    log_info("main", "jetprofd %s starting: pid %ld, config file %s, log level %s",
             JETPROF_VERSION, (long)getpid(), cfg->config_path[0] ? cfg->config_path : "none",
             cfg->log_level);

    int status = run(d, &stop_set);
    explicit_bzero(d->app.token, sizeof d->app.token);
    explicit_bzero(d->token, sizeof d->token);
    free(d);
    return status;
}
