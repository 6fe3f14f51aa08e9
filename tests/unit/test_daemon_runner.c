/*
 * test_daemon_runner.c - the queue worker against a real database in a temp
 * directory, the sim sensor, the sampler and the CPU executor: jobs run to done
 * with their measurements stored, bad job rows fail with a reason, waiters are
 * called (at once when the job already ended, with "queued" when the runner
 * stops first), a restarted runner picks up queued and interrupted jobs, a
 * failed write puts the job back in the queue, and a job canceled while it ran
 * keeps its state.
 *
 * Waits are bounded by generous timeouts (a loaded machine is slow, never
 * wrong), so no assertion depends on how long a measurement takes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/measure.h"
#include "daemon/runner.h"
#include "db/db.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

#define WAIT_S 60 /* a bound for a loaded machine, not an expectation */

struct fixture {
    char dir[64];
    char db_path[PATH_MAX];
    char proc_root[PATH_MAX];
    struct sensor *sensor;
    struct sampler *sampler;
    struct executor *exec;
    struct measure_ctx ctx;
    struct db *db; /* the test's own connection, as an HTTP thread would have */
};

/* Records the calls of a waiter. */
struct record {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int64_t job_id;
    enum db_job_state state;
};

static void record_init(struct record *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->state = (enum db_job_state)-1;
}

static void record_destroy(struct record *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void on_done(int64_t job_id, enum db_job_state state, void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->job_id = job_id;
    r->state = state;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int record_calls(struct record *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until the waiter has been called; its number of calls. */
static int record_wait(struct record *r)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    char err[256], path[PATH_MAX + 16];
    snprintf(f->dir, sizeof f->dir, "/tmp/jetprof-runner.XXXXXX");
    if (!mkdtemp(f->dir))
        goto fail;
    snprintf(f->db_path, sizeof f->db_path, "%s/jetprof.db", f->dir);
    snprintf(f->proc_root, sizeof f->proc_root, "%s/proc", f->dir);
    if (mkdir(f->proc_root, 0755) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/stat", f->proc_root);
    if (write_file(path, "cpu  1000 0 500 8000 100 0 50 0 0 0\n") != 0)
        goto fail;

    struct sensor_options opt = {
        .sysfs_root = f->dir,
        .dev_root = "/dev",
        .proc_root = f->proc_root,
        .request = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140, .period_us = 1000},
        .sim_idle_mw = 4500,
        .sim_dynamic_mw = 6000,
        .sim_noise_mw = 20,
        .sim_tau_us = 5000,
        .sim_seed = 7,
    };
    if (sensor_open("sim", &opt, &f->sensor, err, sizeof err) != 0 ||
        sampler_start(f->sensor, SAMPLER_DEFAULT_RING_CAPACITY, &f->sampler, err, sizeof err) !=
            0 ||
        exec_cpu_open(&f->exec, err, sizeof err) != 0 ||
        db_open(f->db_path, &f->db, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        goto fail;
    }
    f->ctx = (struct measure_ctx){
        .exec = f->exec,
        .sensor = f->sensor,
        .sampler = f->sampler,
        .settings = {.warmup_launches = 5, .warmup_ms = 5, .min_window_ms = 20,
                     .min_samples = 10, .idle_ms = 20, .idle_refresh_s = 300, .settle_ms = 2,
                     .repeats = 2, .max_cv = 0.5, .min_sample_ratio = 0.3,
                     .max_launches = 1000000},
        .device_id = 0,
        .sysfs_root = f->dir,
    };
    *state = f;
    return 0;
fail:
    db_close(f->db);
    exec_close(f->exec);
    if (f->sampler)
        sampler_stop(f->sampler);
    sensor_close(f->sensor);
    if (f->dir[0])
        nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    exec_close(f->exec);
    sampler_stop(f->sampler);
    sensor_close(f->sensor);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int64_t insert_job(struct fixture *f, const char *kernel, const char *dtype,
                          const char *params_json, int max_attempts)
{
    struct db_job job = {0};
    snprintf(job.kernel, sizeof job.kernel, "%s", kernel);
    snprintf(job.dtype, sizeof job.dtype, "%s", dtype);
    snprintf(job.params_json, sizeof job.params_json, "%s", params_json);
    snprintf(job.config_key, sizeof job.config_key, "%s:%s:%s", kernel, dtype, params_json);
    job.priority = DB_PRIORITY_ADHOC;
    job.max_attempts = max_attempts;
    char err[256];
    if (db_job_insert(f->db, &job, err, sizeof err) != 0)
        fail_msg("db_job_insert: %s", err);
    return job.id;
}

static struct db_job get_job(struct fixture *f, int64_t id)
{
    struct db_job job;
    char err[256];
    if (db_job_get(f->db, id, &job, err, sizeof err) != 1)
        fail_msg("db_job_get %lld: %s", (long long)id, err);
    return job;
}

static struct runner *new_runner(struct fixture *f, bool start)
{
    struct runner *r = NULL;
    char err[256];
    if (runner_create(f->db_path, &f->ctx, 60, &r, err, sizeof err) != 0)
        fail_msg("runner_create: %s", err);
    if (start && runner_start(r, err, sizeof err) != 0)
        fail_msg("runner_start: %s", err);
    return r;
}

/* Polls the runner's status until pred holds (bounded). */
static bool wait_status(struct runner *r, bool (*pred)(const struct runner_status *, int64_t),
                        int64_t arg)
{
    int64_t until = clock_mono_ns() + (int64_t)WAIT_S * 1000000000LL;
    while (clock_mono_ns() < until) {
        struct runner_status st;
        runner_get_status(r, &st);
        if (pred(&st, arg))
            return true;
        usleep(2000);
    }
    return false;
}

static bool is_running(const struct runner_status *st, int64_t job_id)
{
    return st->running_job && st->current_job_id == job_id;
}

static bool storage_failing(const struct runner_status *st, int64_t unused)
{
    (void)unused;
    return !st->storage_ok;
}

static void check_measurement(struct fixture *f, const struct db_job *job, const char *kernel)
{
    assert_int_equal(job->state, DB_JOB_DONE);
    assert_true(job->measurement_id > 0);
    char err[256];
    json_t *m = db_measurement_json(f->db, job->measurement_id, err, sizeof err);
    if (!m)
        fail_msg("db_measurement_json: %s", err);
    assert_string_equal(json_string_value(json_object_get(m, "kernel")), kernel);
    assert_int_equal(json_integer_value(json_object_get(m, "job_id")), job->id);
    assert_string_equal(json_string_value(json_object_get(m, "executor")), "cpu");
    assert_true(json_is_true(json_object_get(m, "simulated")));
    assert_true(json_real_value(json_object_get(m, "latency_us")) > 0);
    json_t *rails = json_object_get(m, "rails");
    assert_int_equal(json_array_size(rails), f->sensor->rail_count);
    json_decref(m);
}

static void test_jobs_run_to_done(void **state)
{
    struct fixture *f = *state;
    int64_t a = insert_job(f, "linear_relu", "fp32", "{\"batch\":8,\"in\":32,\"out\":16}", 3);
    int64_t b = insert_job(f, "layernorm", "fp16", "{\"rows\":16,\"cols\":64}", 3);
    struct runner *r = new_runner(f, false);
    struct record ra, rb;
    record_init(&ra);
    record_init(&rb);
    struct runner_waiter wa = {.job_id = a, .done = on_done, .ctx = &ra};
    struct runner_waiter wb = {.job_id = b, .done = on_done, .ctx = &rb};
    runner_add_waiter(r, &wa);
    runner_add_waiter(r, &wb);
    char err[256];
    assert_int_equal(runner_start(r, err, sizeof err), 0);
    assert_int_equal(runner_start(r, err, sizeof err), -1); /* once */
    runner_wake(r);

    assert_int_equal(record_wait(&ra), 1);
    assert_int_equal(record_wait(&rb), 1);
    assert_int_equal(ra.job_id, a);
    assert_int_equal(ra.state, DB_JOB_DONE);
    assert_int_equal(rb.job_id, b);
    assert_int_equal(rb.state, DB_JOB_DONE);
    struct db_job ja = get_job(f, a), jb = get_job(f, b);
    check_measurement(f, &ja, "linear_relu");
    check_measurement(f, &jb, "layernorm");
    assert_int_equal(ja.attempts, 1);

    struct runner_status st;
    runner_get_status(r, &st);
    assert_int_equal(st.jobs_done, 2);
    assert_int_equal(st.jobs_failed, 0);
    assert_true(st.storage_ok);
    assert_string_equal(st.last_error, "");

    /* a job queued while the runner idles is picked up after a wake */
    int64_t c = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    struct record rc;
    record_init(&rc);
    struct runner_waiter wc = {.job_id = c, .done = on_done, .ctx = &rc};
    runner_add_waiter(r, &wc);
    runner_wake(r);
    assert_int_equal(record_wait(&rc), 1);
    assert_int_equal(rc.state, DB_JOB_DONE);

    runner_stop(r);
    runner_get_status(r, &st);
    assert_false(st.running_job);
    assert_int_equal(st.jobs_done, 3);
    /* each waiter was called exactly once, stop called none again */
    assert_int_equal(record_calls(&ra), 1);
    assert_int_equal(record_calls(&rc), 1);
    runner_destroy(r);
    record_destroy(&ra);
    record_destroy(&rb);
    record_destroy(&rc);
}

static void test_bad_jobs_fail_with_reason(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *kernel, *dtype, *params, *reason;
    } bad[] = {
        {"nope", "fp32", "{\"batch\":8}", "unknown kernel 'nope'"},
        {"linear", "fp64", "{\"batch\":8,\"in\":32,\"out\":16}", "unknown dtype 'fp64'"},
        {"linear", "fp32", "{\"batch\":8,\"in\":32}", "lacks parameter 'out'"},
        {"linear", "fp32", "{\"batch\":8,\"in\":32,\"out\":16,\"heads\":2}", "'heads'"},
        {"linear", "fp32", "{\"batch\":8.5,\"in\":32,\"out\":16}", "'batch' of linear is not an integer"},
        {"linear", "fp32", "{\"batch\":0,\"in\":32,\"out\":16}", "parameter 'batch' = 0"},
        {"layernorm", "fp32", "{\"rows\":true,\"cols\":4}", "'rows' of layernorm is not an integer"},
    };
    size_t n = sizeof bad / sizeof bad[0];
    int64_t ids[sizeof bad / sizeof bad[0]];
    struct record rec[sizeof bad / sizeof bad[0]];
    struct runner_waiter w[sizeof bad / sizeof bad[0]];
    struct runner *r = new_runner(f, false);
    for (size_t i = 0; i < n; i++) {
        ids[i] = insert_job(f, bad[i].kernel, bad[i].dtype, bad[i].params, 3);
        record_init(&rec[i]);
        w[i] = (struct runner_waiter){.job_id = ids[i], .done = on_done, .ctx = &rec[i]};
        runner_add_waiter(r, &w[i]);
    }
    /* and one good job after them: a failure does not stop the queue */
    int64_t good = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    struct record rg;
    record_init(&rg);
    struct runner_waiter wg = {.job_id = good, .done = on_done, .ctx = &rg};
    runner_add_waiter(r, &wg);
    char err[256];
    assert_int_equal(runner_start(r, err, sizeof err), 0);

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(record_wait(&rec[i]), 1);
        assert_int_equal(rec[i].state, DB_JOB_FAILED);
        struct db_job job = get_job(f, ids[i]);
        assert_int_equal(job.state, DB_JOB_FAILED);
        if (!strstr(job.error, bad[i].reason))
            fail_msg("job %zu failed with \"%s\", expected \"%s\"", i, job.error, bad[i].reason);
    }
    assert_int_equal(record_wait(&rg), 1);
    assert_int_equal(rg.state, DB_JOB_DONE);

    struct runner_status st;
    runner_get_status(r, &st);
    assert_int_equal(st.jobs_failed, n);
    assert_int_equal(st.jobs_done, 1);
    assert_true(st.storage_ok);
    assert_non_null(strstr(st.last_error, "failed"));
    runner_destroy(r); /* stops it */
    for (size_t i = 0; i < n; i++)
        record_destroy(&rec[i]);
    record_destroy(&rg);
}

static void test_waiters_after_end_and_removed(void **state)
{
    struct fixture *f = *state;
    int64_t a = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    struct runner *r = new_runner(f, true);
    struct record first, late, removed;
    record_init(&first);
    record_init(&late);
    record_init(&removed);
    struct runner_waiter w1 = {.job_id = a, .done = on_done, .ctx = &first};
    runner_add_waiter(r, &w1);
    runner_wake(r);
    assert_int_equal(record_wait(&first), 1);
    assert_int_equal(first.state, DB_JOB_DONE);

    /* the job already ended: called before runner_add_waiter returns */
    struct runner_waiter w2 = {.job_id = a, .done = on_done, .ctx = &late};
    runner_add_waiter(r, &w2);
    assert_int_equal(record_calls(&late), 1);
    assert_int_equal(late.state, DB_JOB_DONE);
    assert_false(runner_remove_waiter(r, &w2));

    /* a waiter removed before its job ends is never called */
    struct runner_waiter w3 = {.job_id = 999999, .done = on_done, .ctx = &removed};
    runner_add_waiter(r, &w3);
    assert_true(runner_remove_waiter(r, &w3));
    assert_false(runner_remove_waiter(r, &w3));
    runner_stop(r);
    assert_int_equal(record_calls(&removed), 0);
    assert_int_equal(record_calls(&first), 1);
    runner_destroy(r);
    record_destroy(&first);
    record_destroy(&late);
    record_destroy(&removed);
}

static void test_stop_calls_pending_with_queued(void **state)
{
    struct fixture *f = *state;
    int64_t a = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    /* never started: the job cannot run before the stop */
    struct runner *r = new_runner(f, false);
    struct record pending, never, after;
    record_init(&pending);
    record_init(&never);
    record_init(&after);
    struct runner_waiter w1 = {.job_id = a, .done = on_done, .ctx = &pending};
    struct runner_waiter w2 = {.job_id = 424242, .done = on_done, .ctx = &never};
    runner_add_waiter(r, &w1);
    runner_add_waiter(r, &w2);
    runner_stop(r);
    assert_int_equal(record_calls(&pending), 1);
    assert_int_equal(pending.state, DB_JOB_QUEUED);
    assert_int_equal(record_calls(&never), 1);
    assert_int_equal(never.state, DB_JOB_QUEUED);
    assert_int_equal(get_job(f, a).state, DB_JOB_QUEUED);

    /* after the stop: answered at once, still queued */
    struct runner_waiter w3 = {.job_id = a, .done = on_done, .ctx = &after};
    runner_add_waiter(r, &w3);
    assert_int_equal(record_calls(&after), 1);
    assert_int_equal(after.state, DB_JOB_QUEUED);
    char err[256];
    assert_int_equal(runner_start(r, err, sizeof err), -1);
    runner_stop(r); /* twice is harmless */
    runner_destroy(r);

    /* a running runner with a waiter for a job that never comes */
    r = new_runner(f, true);
    struct record idle;
    record_init(&idle);
    struct runner_waiter w4 = {.job_id = 515151, .done = on_done, .ctx = &idle};
    runner_add_waiter(r, &w4);
    struct record done_a;
    record_init(&done_a);
    struct runner_waiter w5 = {.job_id = a, .done = on_done, .ctx = &done_a};
    runner_add_waiter(r, &w5);
    assert_int_equal(record_wait(&done_a), 1); /* the queued job runs now */
    assert_int_equal(done_a.state, DB_JOB_DONE);
    assert_int_equal(record_calls(&idle), 0);
    runner_destroy(r);
    assert_int_equal(record_calls(&idle), 1);
    assert_int_equal(idle.state, DB_JOB_QUEUED);
    record_destroy(&pending);
    record_destroy(&never);
    record_destroy(&after);
    record_destroy(&idle);
    record_destroy(&done_a);
}

static void test_restart_picks_up_queued_and_interrupted(void **state)
{
    struct fixture *f = *state;
    /* a first runner comes and goes with nothing to do */
    struct runner *r = new_runner(f, true);
    runner_destroy(r);

    int64_t interrupted = insert_job(f, "linear_gelu", "fp32", "{\"batch\":4,\"in\":16,\"out\":8}", 3);
    int64_t queued = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    /* a previous daemon claimed the first and died mid-measurement */
    struct db_job claimed;
    char err[256];
    assert_int_equal(db_job_claim_next(f->db, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.id, interrupted);

    r = new_runner(f, false);
    struct record rq, ri;
    record_init(&rq);
    record_init(&ri);
    struct runner_waiter wq = {.job_id = queued, .done = on_done, .ctx = &rq};
    struct runner_waiter wi = {.job_id = interrupted, .done = on_done, .ctx = &ri};
    runner_add_waiter(r, &wq);
    runner_add_waiter(r, &wi);
    assert_int_equal(runner_start(r, err, sizeof err), 0);
    assert_int_equal(record_wait(&rq), 1);
    assert_int_equal(record_wait(&ri), 1);
    assert_int_equal(rq.state, DB_JOB_DONE);
    assert_int_equal(ri.state, DB_JOB_DONE);
    struct db_job jq = get_job(f, queued), ji = get_job(f, interrupted);
    check_measurement(f, &jq, "linear");
    check_measurement(f, &ji, "linear_gelu");
    assert_int_equal(jq.attempts, 1);
    assert_int_equal(ji.attempts, 2); /* the interrupted attempt counts */
    runner_destroy(r);
    record_destroy(&rq);
    record_destroy(&ri);
}

/* Runs SQL on a connection of its own, as another process would. */
static void raw_sql(struct fixture *f, const char *sql)
{
    sqlite3 *conn;
    assert_int_equal(sqlite3_open(f->db_path, &conn), SQLITE_OK);
    sqlite3_busy_timeout(conn, 5000);
    char *msg = NULL;
    if (sqlite3_exec(conn, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(conn);
}

/* A write that fails (a trigger stands in for a full disk): the job goes back to
 * the queue, storage is reported failing, nothing is lost; the next runner
 * stores it once the disk is fine again. */
static void test_storage_failure_requeues(void **state)
{
    struct fixture *f = *state;
    raw_sql(f, "CREATE TRIGGER disk_full BEFORE INSERT ON measurements "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;");
    int64_t a = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    struct runner *r = new_runner(f, false);
    struct record rec;
    record_init(&rec);
    struct runner_waiter w = {.job_id = a, .done = on_done, .ctx = &rec};
    runner_add_waiter(r, &w);
    char err[256];
    assert_int_equal(runner_start(r, err, sizeof err), 0);
    assert_true(wait_status(r, storage_failing, 0));
    /* requeued right after the failed write */
    int64_t until = clock_mono_ns() + (int64_t)WAIT_S * 1000000000LL;
    while (get_job(f, a).state != DB_JOB_QUEUED && clock_mono_ns() < until)
        usleep(2000);
    struct db_job job = get_job(f, a);
    assert_int_equal(job.state, DB_JOB_QUEUED);
    assert_int_equal(job.attempts, 1);
    struct runner_status st;
    runner_get_status(r, &st);
    assert_false(st.storage_ok);
    assert_non_null(strstr(st.last_error, "disk is full"));
    assert_int_equal(st.jobs_done, 0);
    assert_int_equal(record_calls(&rec), 0); /* not ended: it will run again */
    runner_stop(r); /* interrupts the back-off */
    assert_int_equal(rec.state, DB_JOB_QUEUED);
    runner_destroy(r);

    raw_sql(f, "DROP TRIGGER disk_full;");
    r = new_runner(f, false);
    struct record again;
    record_init(&again);
    struct runner_waiter w2 = {.job_id = a, .done = on_done, .ctx = &again};
    runner_add_waiter(r, &w2);
    assert_int_equal(runner_start(r, err, sizeof err), 0);
    assert_int_equal(record_wait(&again), 1);
    assert_int_equal(again.state, DB_JOB_DONE);
    job = get_job(f, a);
    check_measurement(f, &job, "linear");
    assert_int_equal(job.attempts, 2);
    runner_get_status(r, &st);
    assert_true(st.storage_ok);
    runner_destroy(r);
    record_destroy(&rec);
    record_destroy(&again);
}

/*
 * A gate around the CPU executor: the first launch of a job waits until the
 * test opens the gate, so the test can act while the job is surely in the
 * middle of its measurement, however slow or fast the machine. Static: a
 * failed assertion leaves the runner thread inside gate_run, and the wait
 * there is bounded (WAIT_S) rather than forever.
 */
struct gate {
    struct executor ex;
    struct executor *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
};

static struct gate *gate_of(struct executor *ex) { return ex->impl; }

static void gate_info(struct executor *ex, struct exec_info *out)
{
    exec_info(gate_of(ex)->inner, out);
}

static int gate_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                        char *err, size_t errlen)
{
    return exec_prepare(gate_of(ex)->inner, cfg, seed, err, errlen);
}

static int gate_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
                    size_t errlen)
{
    struct gate *g = gate_of(ex);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g->mu);
    return exec_run(g->inner, launches, elapsed_us, err, errlen);
}

static int gate_read_output(struct executor *ex, float *dst, size_t count, char *err,
                            size_t errlen)
{
    return exec_read_output(gate_of(ex)->inner, dst, count, err, errlen);
}

static void gate_release(struct executor *ex) { exec_release(gate_of(ex)->inner); }

static void gate_close(struct executor *ex) { exec_release(gate_of(ex)->inner); }

static uint64_t gate_memory_needed(struct executor *ex, const struct kernel_config *cfg)
{
    return exec_memory_needed(gate_of(ex)->inner, cfg);
}

static int gate_memory_free(struct executor *ex, uint64_t *free_bytes)
{
    return exec_memory_free(gate_of(ex)->inner, free_bytes);
}

static const struct executor_ops gate_ops = {
    .info = gate_info,
    .prepare = gate_prepare,
    .run = gate_run,
    .read_output = gate_read_output,
    .release = gate_release,
    .close = gate_close,
    .memory_needed = gate_memory_needed,
    .memory_free = gate_memory_free,
};

static struct gate the_gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Puts the (closed) gate around the fixture's executor into the ctx. */
static struct gate *use_gate(struct fixture *f)
{
    struct gate *g = &the_gate;
    pthread_mutex_lock(&g->mu);
    g->ex = (struct executor){.ops = &gate_ops, .impl = g};
    g->inner = f->exec;
    g->entered = false;
    g->open = false;
    pthread_mutex_unlock(&g->mu);
    f->ctx.exec = &g->ex;
    return g;
}

/* Waits (bounded) until a launch is held at the gate. */
static bool gate_wait_entered(struct gate *g)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
            break;
    bool entered = g->entered;
    pthread_mutex_unlock(&g->mu);
    return entered;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A job canceled while it runs keeps its state; its result is dropped, its
 * waiters hear "canceled", and storage is fine. The cancel lands while the
 * job's first launch is held at the gate: with a plain executor a test slowed
 * down between seeing the job run and canceling it could find it done. */
static void test_canceled_while_running(void **state)
{
    struct fixture *f = *state;
    struct gate *g = use_gate(f);
    f->ctx.settings.min_window_ms = 100;
    f->ctx.settings.repeats = 2;
    int64_t a = insert_job(f, "linear", "fp32", "{\"batch\":4,\"in\":16,\"out\":16}", 3);
    struct runner *r = new_runner(f, false);
    struct record rec;
    record_init(&rec);
    struct runner_waiter w = {.job_id = a, .done = on_done, .ctx = &rec};
    runner_add_waiter(r, &w);
    char err[256];
    assert_int_equal(runner_start(r, err, sizeof err), 0);
    assert_true(wait_status(r, is_running, a));
    assert_true(gate_wait_entered(g)); /* its first launch waits: mid-measurement */
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE jobs SET state = 'canceled' WHERE id = %lld", (long long)a);
    raw_sql(f, sql);
    assert_int_equal(record_calls(&rec), 0); /* still held: nothing ended yet */
    gate_open(g);
    assert_int_equal(record_wait(&rec), 1);
    assert_int_equal(rec.state, DB_JOB_CANCELED);
    struct db_job job = get_job(f, a);
    assert_int_equal(job.state, DB_JOB_CANCELED);
    assert_int_equal(job.measurement_id, 0);
    struct runner_status st;
    runner_get_status(r, &st);
    assert_true(st.storage_ok);
    assert_int_equal(st.jobs_done, 0);
    runner_destroy(r);
    record_destroy(&rec);
}

static void test_create_errors(void **state)
{
    struct fixture *f = *state;
    struct runner *r = (struct runner *)f; /* must be overwritten */
    char err[256] = "";
    char bad[PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s/proc/stat/jetprof.db", f->dir); /* under a file */
    assert_int_equal(runner_create(bad, &f->ctx, 60, &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, "runner: "));
    assert_int_equal(runner_create(f->db_path, NULL, 60, &r, err, sizeof err), -1);
    runner_destroy(NULL);
    runner_stop(NULL);
    runner_wake(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jobs_run_to_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_jobs_fail_with_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiters_after_end_and_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_calls_pending_with_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_picks_up_queued_and_interrupted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_storage_failure_requeues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canceled_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
