/*
 * bench_queue.c - what the persistent job queue costs around the measurements
 * (issue 5): the overhead per job, the database size per 10,000 measurements,
 * and the export rate.
 *
 * In-process, on the parts the daemon uses: the sim sensor with the sampler
 * thread, the CPU executor, measure_run with a minimal protocol (warm-up 1
 * launch / 1 ms, one 5 ms window of >= 5 samples, idle baseline 5 ms, settle
 * 0 ms, 1 repeat), the real runner thread and the real SQLite store (WAL,
 * synchronous=FULL) in a mkdtemp directory under /tmp.
 *
 * 1. Queue overhead per job: --jobs tiny linear jobs (default 200) are queued
 *    with db_job_insert and run by the runner; the overhead is the time from
 *    one job's end (its finished_at, written in the commit of db_job_finish)
 *    to the next job's start (started_at, written by db_job_claim_next), read
 *    back from the job rows (millisecond resolution, so the mean of the gaps is
 *    the figure to quote below ~2 ms). It includes the commit of the finished
 *    job (fsync), the runner's bookkeeping and the claim transaction.
 * 2. The database layer alone: --measurements jobs (default 10,000) inserted,
 *    then claimed and finished one by one through db_job_claim_next and
 *    db_job_finish with a realistic measurement (a real one from measure_run,
 *    its latency varied): median time of each call, and the file size (after
 *    db_close, which checkpoints the WAL) of the empty database, with the
 *    queued jobs, and with the measurements; scaled per 10,000 measurements.
 * 3. Export rate over those rows: db_measurements_each in pages of 10,000 and
 *    of 500 (as a streaming export pages), each row's JSON serialized, and
 *    db_measurements_csv; rows per second, the median of three runs.
 *
 * The store's fsync cost dominates 1 and 2: on a board's eMMC or SD card it is
 * larger than on this VM's disk. Options: --jobs N, --measurements N.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_machine.h"
#include "common/clock.h"
#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/config.h"
#include "daemon/measure.h"
#include "daemon/runner.h"
#include "db/db.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

#define EXPORT_RUNS 3
#define QUEUE_TIMEOUT_S 900

struct rig {
    struct sensor *sensor;
    struct sampler *sampler;
    struct executor *exec;
    struct measure_ctx mctx;
    char dir[64];
};

/* Sorts v; the value at fraction q (0..1) of the way through. */
static double quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, bench_compare_doubles);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static double ms_since(int64_t t0_ns)
{
    return (double)(clock_mono_ns() - t0_ns) / 1e6;
}

/* "2026-11-23T01:02:03.456Z" -> ms since the epoch; -1 when not that form. */
static int iso_to_ms(const char *s, double *out_ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out_ms = (double)t * 1000.0 + ms;
    return 0;
}

/* Bytes of the database file plus its WAL (none after a clean db_close). */
static long long db_bytes(const char *path)
{
    char wal[128];
    struct stat st;
    long long total = 0;
    if (stat(path, &st) == 0)
        total += (long long)st.st_size;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &st) == 0)
        total += (long long)st.st_size;
    return total;
}

static void remove_db(const char *path)
{
    char side[128];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static int open_with_device(struct rig *r, const char *path, struct db **out, int64_t *device_id)
{
    char err[512];
    if (db_open(path, out, err, sizeof err) != 0) {
        fprintf(stderr, "db_open: %s\n", err);
        return -1;
    }
    struct exec_info xi;
    exec_info(r->exec, &xi);
    struct db_device dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "bench_queue (not a Jetson)");
    snprintf(dev.gpu_name, sizeof dev.gpu_name, "%s", xi.device);
    snprintf(dev.executor, sizeof dev.executor, "%s", xi.name);
    snprintf(dev.sensor_backend, sizeof dev.sensor_backend, "%s", r->sensor->backend->name);
    snprintf(dev.sampling_json, sizeof dev.sampling_json, "{}");
    snprintf(dev.hostname, sizeof dev.hostname, "bench");
    dev.simulated = true;
    if (db_device_upsert(*out, &dev, device_id, err, sizeof err) != 0) {
        fprintf(stderr, "db_device_upsert: %s\n", err);
        db_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* A tiny linear job; i picks one of 8 x 4 x 4 shapes. */
static int insert_job(struct db *db, unsigned i, int64_t *id)
{
    int batch = 1 + (int)(i % 8), in = 8 * (1 + (int)(i / 8 % 4)),
        out = 8 * (1 + (int)(i / 32 % 4));
    struct db_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "linear");
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":%d,\"in\":%d,\"out\":%d}",
             batch, in, out);
    snprintf(job.config_key, sizeof job.config_key, "linear:fp32:batch=%d,in=%d,out=%d", batch,
             in, out);
    job.priority = DB_PRIORITY_SWEEP;
    job.max_attempts = 3;
    char err[512];
    if (db_job_insert(db, &job, err, sizeof err) != 0) {
        fprintf(stderr, "db_job_insert: %s\n", err);
        return -1;
    }
    *id = job.id;
    return 0;
}

/* ---- 1. queue overhead through the runner ---- */

static int bench_runner(struct rig *r, unsigned njobs)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/queue.db", r->dir);
    struct db *db = NULL;
    int64_t device_id = 0;
    int rc = -1;
    int64_t *ids = calloc(njobs, sizeof *ids);
    double *start_ms = calloc(njobs, sizeof *start_ms), *end_ms = calloc(njobs, sizeof *end_ms);
    double *v = calloc(njobs, sizeof *v);
    struct runner *runner = NULL;
    if (!ids || !start_ms || !end_ms || !v) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (open_with_device(r, path, &db, &device_id) != 0)
        goto out;
    r->mctx.device_id = device_id;
    for (unsigned i = 0; i < njobs; i++)
        if (insert_job(db, i, &ids[i]) != 0)
            goto out;
    if (runner_create(path, &r->mctx, 0, &runner, err, sizeof err) != 0) {
        fprintf(stderr, "runner_create: %s\n", err);
        goto out;
    }
    int64_t t0 = clock_mono_ns();
    if (runner_start(runner, err, sizeof err) != 0) {
        fprintf(stderr, "runner_start: %s\n", err);
        goto out;
    }
    int64_t counts[5] = {0};
    for (;;) {
        if (db_job_counts(db, counts, err, sizeof err) != 0) {
            fprintf(stderr, "db_job_counts: %s\n", err);
            goto out;
        }
        if (counts[DB_JOB_DONE] + counts[DB_JOB_FAILED] >= (int64_t)njobs)
            break;
        if (ms_since(t0) > QUEUE_TIMEOUT_S * 1000.0) {
            fprintf(stderr, "the runner did not finish %u jobs in %d s\n", njobs,
                    QUEUE_TIMEOUT_S);
            goto out;
        }
        struct timespec nap = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
        nanosleep(&nap, NULL);
    }
    double wall_s = ms_since(t0) / 1000.0;
    runner_stop(runner);
    runner_destroy(runner);
    runner = NULL;
    if (counts[DB_JOB_FAILED] > 0)
        printf("note: %lld of %u jobs failed\n", (long long)counts[DB_JOB_FAILED], njobs);

    for (unsigned i = 0; i < njobs; i++) {
        struct db_job job;
        if (db_job_get(db, ids[i], &job, err, sizeof err) != 1) {
            fprintf(stderr, "db_job_get %lld: %s\n", (long long)ids[i], err);
            goto out;
        }
        if (iso_to_ms(job.started_at, &start_ms[i]) != 0 ||
            iso_to_ms(job.finished_at, &end_ms[i]) != 0) {
            fprintf(stderr, "job %lld: timestamps '%s' / '%s' not understood\n",
                    (long long)ids[i], job.started_at, job.finished_at);
            goto out;
        }
    }
    /* Same priority: the runner claims in id order, so job i+1 follows job i. */
    double gap_sum = 0.0, job_sum = 0.0;
    size_t ngaps = njobs > 1 ? njobs - 1 : 0;
    for (size_t i = 0; i < ngaps; i++) {
        v[i] = start_ms[i + 1] - end_ms[i];
        gap_sum += v[i];
    }
    double gap_mean = ngaps ? gap_sum / (double)ngaps : 0.0;
    double gap_med = quantile(v, ngaps, 0.5), gap_p90 = quantile(v, ngaps, 0.9),
           gap_max = ngaps ? v[ngaps - 1] : 0.0;
    for (unsigned i = 0; i < njobs; i++) {
        v[i] = end_ms[i] - start_ms[i];
        job_sum += v[i];
    }
    double job_med = quantile(v, njobs, 0.5);
    printf("\n== queue overhead through the runner: %u tiny linear jobs (fp32, batch 1-8, in/out "
           "8-32)\n",
           njobs);
    printf("%u jobs in %.2f s (%.0f jobs/hour); job start to end: median %.1f ms\n", njobs,
           wall_s, (double)njobs / wall_s * 3600.0, job_med);
    printf("one job's end to the next job's start (job rows, ms resolution): median %.1f ms, "
           "mean %.2f ms, p90 %.1f ms, max %.1f ms\n",
           gap_med, gap_mean, gap_p90, gap_max);
    printf("share of the runner's time between jobs: %.2f %%\n",
           gap_sum / (gap_sum + job_sum) * 100.0);
    rc = 0;
out:
    if (runner) {
        runner_stop(runner);
        runner_destroy(runner);
    }
    db_close(db);
    remove_db(path);
    free(ids);
    free(start_ms);
    free(end_ms);
    free(v);
    return rc;
}

/* ---- 2. the database layer: size and per-call cost ---- */

static int bench_store(struct rig *r, unsigned count, const struct db_measurement *tmpl,
                       const char *path)
{
    char err[512];
    struct db *db = NULL;
    int64_t device_id = 0, first_id = 0, id;
    double *claim_us = calloc(count, sizeof *claim_us),
           *finish_us = calloc(count, sizeof *finish_us);
    struct db_measurement *m = malloc(sizeof *m);
    int rc = -1;
    if (!claim_us || !finish_us || !m) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (open_with_device(r, path, &db, &device_id) != 0)
        goto out;
    db_close(db);
    db = NULL;
    long long empty_bytes = db_bytes(path);

    if (db_open(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "db_open: %s\n", err);
        goto out;
    }
    int64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < count; i++) {
        if (insert_job(db, i, &id) != 0)
            goto out;
        if (i == 0)
            first_id = id;
    }
    double insert_s = ms_since(t0) / 1000.0;
    db_close(db);
    db = NULL;
    long long jobs_bytes = db_bytes(path);

    if (db_open(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "db_open: %s\n", err);
        goto out;
    }
    t0 = clock_mono_ns();
    for (unsigned i = 0; i < count; i++) {
        struct db_job job;
        int64_t t = clock_mono_ns();
        if (db_job_claim_next(db, &job, err, sizeof err) != 1) {
            fprintf(stderr, "db_job_claim_next (%u of %u): %s\n", i, count,
                    err[0] ? err : "no queued job");
            goto out;
        }
        claim_us[i] = (double)(clock_mono_ns() - t) / 1e3;
        *m = *tmpl;
        m->uid[0] = '\0';
        m->created_at[0] = '\0';
        m->job_id = job.id;
        m->device_id = device_id;
        /* a realistic spread, so the rows do not compress into copies */
        double scale = 1.0 + (double)(i % 97) / 100.0;
        m->latency_us *= scale;
        m->latency_us_min *= scale;
        m->latency_us_max *= scale;
        m->energy_uj *= scale;
        m->dynamic_energy_uj *= scale;
        int64_t measurement_id;
        t = clock_mono_ns();
        if (db_job_finish(db, job.id, m, &measurement_id, err, sizeof err) != 0) {
            fprintf(stderr, "db_job_finish %lld: %s\n", (long long)job.id, err);
            goto out;
        }
        finish_us[i] = (double)(clock_mono_ns() - t) / 1e3;
    }
    double finish_s = ms_since(t0) / 1000.0;
    db_close(db);
    db = NULL;
    long long done_bytes = db_bytes(path);
    (void)first_id;

    double per10k = 10000.0 / (double)count;
    printf("\n== database layer: %u jobs, then %u claimed and finished with a measurement of "
           "%u rails\n",
           count, count, tmpl->rail_count);
    printf("db_job_insert: %.0f jobs/s (one transaction each)\n", (double)count / insert_s);
    printf("db_job_claim_next: median %.0f us, p90 %.0f us; db_job_finish: median %.0f us, p90 "
           "%.0f us; both: %.0f jobs/s\n",
           quantile(claim_us, count, 0.5), quantile(claim_us, count, 0.9),
           quantile(finish_us, count, 0.5), quantile(finish_us, count, 0.9),
           (double)count / finish_s);
    printf("file size: empty %lld B, with %u queued jobs %lld B, with %u measurements %lld B\n",
           empty_bytes, count, jobs_bytes, count, done_bytes);
    printf("per 10,000 measurements: %.2f MB with their jobs (%.0f B per measurement), %.2f MB "
           "for the measurement and rail rows alone\n",
           (double)(done_bytes - empty_bytes) * per10k / 1e6,
           (double)(done_bytes - empty_bytes) / (double)count,
           (double)(done_bytes - jobs_bytes) * per10k / 1e6);
    rc = 0;
out:
    db_close(db);
    free(claim_us);
    free(finish_us);
    free(m);
    return rc;
}

/* ---- 3. export ---- */

struct walk {
    size_t rows, bytes;
    int64_t last_id;
    char *buf;
    size_t buflen;
};

static int walk_row(json_t *m, void *ctx)
{
    struct walk *w = ctx;
    size_t n = json_dumpb(m, w->buf, w->buflen, JSON_COMPACT);
    if (n == 0 || n > w->buflen)
        return 1; /* a row larger than the buffer: stop, reported as a short walk */
    w->rows++;
    w->bytes += n + 1;
    json_t *id = json_object_get(m, "id");
    w->last_id = json_is_integer(id) ? (int64_t)json_integer_value(id) : w->last_id;
    return 0;
}

/* Walks every row in pages of `page`; rows/s, or -1. */
static double export_walk(struct db *db, int64_t page, unsigned expect, size_t *bytes)
{
    static char buf[1 << 16];
    struct walk w = {.buf = buf, .buflen = sizeof buf};
    char err[512];
    int64_t t0 = clock_mono_ns();
    for (;;) {
        struct db_measurement_filter f = {.after_id = w.last_id, .limit = page};
        size_t before = w.rows;
        int n = db_measurements_each(db, &f, walk_row, &w, err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "db_measurements_each: %s\n", err);
            return -1.0;
        }
        if (w.rows - before < (size_t)page)
            break;
    }
    double s = ms_since(t0) / 1000.0;
    if (w.rows != expect) {
        fprintf(stderr, "export walked %zu rows, %u expected\n", w.rows, expect);
        return -1.0;
    }
    *bytes = w.bytes;
    return (double)w.rows / s;
}

static int bench_export(const char *path, unsigned count)
{
    char err[512];
    struct db *db = NULL;
    if (db_open(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "db_open: %s\n", err);
        return -1;
    }
    int rc = -1;
    double big[EXPORT_RUNS], small[EXPORT_RUNS], csv[EXPORT_RUNS];
    size_t json_bytes = 0, csv_bytes = 0;
    for (int k = 0; k < EXPORT_RUNS; k++) {
        big[k] = export_walk(db, 10000, count, &json_bytes);
        small[k] = export_walk(db, 500, count, &json_bytes);
        if (big[k] < 0 || small[k] < 0)
            goto out;
        size_t rows = 0, len = 0;
        int64_t after = 0;
        int64_t t0 = clock_mono_ns();
        csv_bytes = 0;
        while (rows < count) {
            struct db_measurement_filter f = {.after_id = after, .limit = 10000};
            char *text = db_measurements_csv(db, &f, &len, err, sizeof err);
            if (!text) {
                fprintf(stderr, "db_measurements_csv: %s\n", err);
                goto out;
            }
            /* lines after the header; the last id is the first field of the last line */
            size_t lines = 0;
            for (size_t i = 0; i < len; i++)
                lines += text[i] == '\n';
            size_t got = lines > 0 ? lines - 1 : 0;
            csv_bytes += len;
            if (got == 0) {
                free(text);
                break;
            }
            rows += got;
            size_t end = len;
            while (end > 0 && text[end - 1] == '\n')
                end--;
            size_t start = end;
            while (start > 0 && text[start - 1] != '\n')
                start--;
            after = strtoll(text + start, NULL, 10);
            free(text);
        }
        double s = ms_since(t0) / 1000.0;
        if (rows != count) {
            fprintf(stderr, "CSV export gave %zu rows, %u expected\n", rows, count);
            goto out;
        }
        csv[k] = (double)rows / s;
    }
    printf("\n== export of %u measurements (median of %d runs)\n", count, EXPORT_RUNS);
    printf("db_measurements_each, pages of 10000, JSON serialized: %.0f rows/s (%.0f B per row)\n",
           quantile(big, EXPORT_RUNS, 0.5), (double)json_bytes / count);
    printf("db_measurements_each, pages of 500, JSON serialized:   %.0f rows/s\n",
           quantile(small, EXPORT_RUNS, 0.5));
    printf("db_measurements_csv, pages of 10000:                   %.0f rows/s (%.0f B per row)\n",
           quantile(csv, EXPORT_RUNS, 0.5), (double)csv_bytes / count);
    rc = 0;
out:
    db_close(db);
    return rc;
}

/* ---- set-up ---- */

static int parse_count(const char *flag, const char *text, unsigned min, unsigned max,
                       unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s '%s': an integer in [%u, %u]\n", flag, text, min, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_args(int argc, char **argv, unsigned *jobs, unsigned *measurements)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            if (parse_count("--jobs", argv[++i], 2, 100000, jobs) != 0)
                return -1;
        } else if (strcmp(argv[i], "--measurements") == 0 && i + 1 < argc) {
            if (parse_count("--measurements", argv[++i], 1, 10000000, measurements) != 0)
                return -1;
        } else {
            fprintf(stderr, "usage: %s [--jobs N] [--measurements N]\n", argv[0]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned njobs = 200, nmeas = 10000;
    if (parse_args(argc, argv, &njobs, &nmeas) != 0)
        return 2;
    jp_log_set_level(JP_LOG_WARN);

    bench_print_machine();
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");

    static struct config cfg;
    char err[512];
    char *cfg_argv[] = {argv[0], "--config", "none", NULL};
    if (config_load(&cfg, 3, cfg_argv, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "config_load: %s\n", err);
        return 1;
    }
    struct rig r;
    memset(&r, 0, sizeof r);
    struct db_measurement *tmpl = calloc(1, sizeof *tmpl);
    int rc = 1;
    snprintf(r.dir, sizeof r.dir, "/tmp/bench_queue.XXXXXX");
    bool have_dir = false;
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
    if (!tmpl) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (!mkdtemp(r.dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", r.dir, strerror(errno));
        goto out;
    }
    have_dir = true;
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
    r.mctx.exec = r.exec;
    r.mctx.sensor = r.sensor;
    r.mctx.sampler = r.sampler;
    r.mctx.sysfs_root = "/sys";
    r.mctx.settings = (struct measure_settings){
        .warmup_launches = 1,
        .warmup_ms = 1,
        .min_window_ms = 5,
        .min_samples = 5,
        .idle_ms = 5,
        .idle_refresh_s = cfg.idle_refresh_s,
        .settle_ms = 0,
        .repeats = 1,
        .max_cv = cfg.max_cv,
        .min_sample_ratio = cfg.min_sample_ratio,
        .max_launches = cfg.max_launches,
    };
    printf("sensor: %s; executor: cpu; protocol: warm-up 1 launch / 1 ms, one 5 ms window of >= 5 "
           "samples, idle 5 ms, settle 0 ms; store in %s\n",
           r.sensor->description, r.dir);

    /* A real measurement is the template for the database layer's rows. */
    struct kernel_config kc;
    memset(&kc, 0, sizeof kc);
    kc.kernel = catalog_find("linear");
    kc.dtype = DTYPE_FP32;
    if (!kc.kernel || catalog_param_index(kc.kernel, "batch") < 0 ||
        catalog_param_index(kc.kernel, "in") < 0 || catalog_param_index(kc.kernel, "out") < 0) {
        fprintf(stderr, "the catalogue has no linear kernel with batch, in, out\n");
        goto out;
    }
    kc.params[catalog_param_index(kc.kernel, "batch")] = 8;
    kc.params[catalog_param_index(kc.kernel, "in")] = 32;
    kc.params[catalog_param_index(kc.kernel, "out")] = 32;
    r.mctx.device_id = 1;
    if (measure_run(&r.mctx, &kc, 3, tmpl, err, sizeof err) != 0) {
        fprintf(stderr, "measure_run (template): %s\n", err);
        goto out;
    }

    if (bench_runner(&r, njobs) != 0)
        goto out;
    char store[128];
    snprintf(store, sizeof store, "%s/store.db", r.dir);
    int s = bench_store(&r, nmeas, tmpl, store);
    if (s == 0)
        s = bench_export(store, nmeas);
    remove_db(store);
    rc = s == 0 ? 0 : 1;
out:
    if (r.sampler)
        sampler_stop(r.sampler);
    sensor_close(r.sensor);
    exec_close(r.exec);
    free(tmpl);
    if (have_dir && rmdir(r.dir) != 0)
        fprintf(stderr, "rmdir %s: %s\n", r.dir, strerror(errno));
    return rc;
}
