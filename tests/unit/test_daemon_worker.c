/*
 * test_daemon_worker.c - the executor in a worker process (daemon/worker.c),
 * with the CPU executor in the child. The child is this test binary started
 * again in worker mode (main() below dispatches like jetprofd's does).
 *
 * Covered: prepare/run/read_output through the proxy give exactly the direct
 * CPU executor's output, and memory_needed is the CPU executor's figure; a run
 * past the deadline is killed with the time-limit reason while memory figures
 * keep answering from another thread; a crash (SIGSEGV) and a poisoned context
 * fail with how the child ended; every failure starts a fresh worker that
 * measures again; a child killed while idle is replaced without failing the
 * next prepare; a deadline already passed refuses the request without killing;
 * faults are refused when off, unknown, or not on a proxy; a program that
 * cannot be executed is an open error. Whole-graph plans (prepare_plan) give
 * the direct CPU executor's output and plan_streams through the worker, keep
 * the channel in step after refusals, and are forgotten by a fresh worker
 * after a crash or a poisoned context. After every test no child of this
 * process is left, running or zombie.
 *
 * Deadlines here are seconds long and waits are bounded, never asserted short:
 * a loaded machine is slow, not wrong. One informational line reports the
 * round trip a run costs through the worker (not asserted).
 *
 * Under a user-mode emulator (make test-aarch64 runs this aarch64 binary with
 * qemu-aarch64-static on an x86-64 host, with no binfmt_misc) the kernel cannot
 * execute this program again: execv fails with ENOEXEC. The worker is then
 * started through a shell script that runs $TEST_WRAPPER (the emulator's command
 * line) on this program, so the worker and its protocol still run on the
 * emulated CPU; without TEST_WRAPPER the tests skip and say why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/worker.h"

#define NS_PER_S 1000000000LL
#define HANG_DEADLINE_S 2 /* the hang test's job limit */

static int64_t deadline_ns; /* what the runner's measure_ctx.deadline_ns would be */

#define EXEC_PROBE_ARG "--exec-probe" /* main() exits 0 at once: can we run ourselves? */

/* What the worker is started as: NULL (this program via /proc/self/exe, as in
 * jetprofd) natively, the emulator wrapper script under emulation. */
static const char *worker_program;
static char wrapper_dir[PATH_MAX], wrapper_path[PATH_MAX + 16]; /* dir + "/worker" */
static const char *skip_reason; /* non-NULL: the worker cannot be started here */

/* Runs this program again; 0 when it ran, ENOEXEC when the kernel cannot execute
 * it (another CPU architecture, emulated), another errno or -1 otherwise. */
static int probe_exec_self(const char *self)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        execl(self, self, EXEC_PROBE_ARG, (char *)NULL);
        _exit(errno == ENOEXEC ? 126 : 127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 126 ? ENOEXEC : -1;
}

/* Group setup: decide how the worker is started (see the header comment). */
static int setup_worker_program(void **state)
{
    (void)state;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    int rc = probe_exec_self(self);
    if (rc != ENOEXEC)
        return 0; /* natively: any other failure shows in the tests themselves */
    const char *wrapper = getenv("TEST_WRAPPER");
    if (!wrapper || !wrapper[0]) {
        skip_reason = "this program cannot execute itself (ENOEXEC: emulated CPU without "
                      "binfmt_misc) and TEST_WRAPPER does not name the emulator";
        return 0;
    }
    if (strchr(self, '\'') || strchr(wrapper, '\''))
        return -1; /* the script below quotes with single quotes */
    snprintf(wrapper_dir, sizeof wrapper_dir, "%s/jetprof-worker-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(wrapper_dir))
        return -1;
    snprintf(wrapper_path, sizeof wrapper_path, "%s/worker", wrapper_dir);
    FILE *f = fopen(wrapper_path, "w");
    if (!f)
        return -1;
    /* The emulator command line is split into words on purpose. */
    int w = fprintf(f, "#!/bin/sh\nexec %s '%s' \"$@\"\n", wrapper, self);
    if (fclose(f) != 0 || w < 0 || chmod(wrapper_path, 0700) != 0)
        return -1;
    worker_program = wrapper_path;
    print_message("worker started as %s '%s' (this program cannot execute itself here)\n",
                  wrapper, self);
    return 0;
}

static int teardown_worker_program(void **state)
{
    (void)state;
    if (wrapper_path[0])
        unlink(wrapper_path);
    if (wrapper_dir[0])
        rmdir(wrapper_dir);
    return 0;
}

/* First thing in every test: skip, with the reason, where no worker can start. */
#define SKIP_IF_NO_WORKER()                                                                        \
    do {                                                                                           \
        if (skip_reason) {                                                                         \
            print_message("SKIP: %s\n", skip_reason);                                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static struct executor *open_worker(bool test_faults)
{
    struct worker_options opt = {
        .program = worker_program,
        .deadline_ns = &deadline_ns,
        .job_timeout_s = HANG_DEADLINE_S,
        .test_faults = test_faults,
    };
    struct executor *ex = NULL;
    char why[256] = "", err[512] = "";
    deadline_ns = 0;
    if (worker_executor_open("cpu", "", &opt, &ex, why, sizeof why, err, sizeof err) != 0)
        fail_msg("worker_executor_open: %s", err);
    assert_non_null(ex);
    assert_true(worker_is_proxy(ex));
    assert_non_null(strstr(why, "cpu"));
    assert_true(worker_pid(ex) > 0);
    return ex;
}

static struct kernel_config small_config(void)
{
    struct kernel_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kernel = catalog_find("linear_relu");
    assert_non_null(cfg.kernel);
    cfg.dtype = DTYPE_FP32;
    cfg.params[0] = 4;  /* batch */
    cfg.params[1] = 16; /* in */
    cfg.params[2] = 8;  /* out */
    return cfg;
}

/* No child of this process is left: none running, none a zombie. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* prepare + run + read_output through ex; 0 or -1 with err. */
static int measure_once(struct executor *ex, float *out, size_t count, char *err, size_t errlen)
{
    struct kernel_config cfg = small_config();
    double elapsed_us = -1.0;
    if (exec_prepare(ex, &cfg, 42, err, errlen) != 0)
        return -1;
    if (exec_run(ex, 3, &elapsed_us, err, errlen) != 0)
        return -1;
    if (!(elapsed_us >= 0.0)) {
        snprintf(err, errlen, "elapsed_us %g", elapsed_us);
        return -1;
    }
    return exec_read_output(ex, out, count, err, errlen);
}

static void test_matches_direct_cpu(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct kernel_config cfg = small_config();
    size_t n = catalog_output_elements(&cfg);
    assert_true(n == 32);
    float direct_out[32], proxy_out[32];
    char err[512] = "";

    struct executor *direct = NULL;
    assert_int_equal(exec_cpu_open(&direct, err, sizeof err), 0);
    double us;
    assert_int_equal(exec_prepare(direct, &cfg, 42, err, sizeof err), 0);
    assert_int_equal(exec_run(direct, 3, &us, err, sizeof err), 0);
    assert_int_equal(exec_read_output(direct, direct_out, n, err, sizeof err), 0);

    struct executor *ex = open_worker(false);
    struct exec_info info;
    exec_info(ex, &info);
    assert_string_equal(info.name, "cpu");
    assert_false(info.is_gpu);
    assert_true(info.mem_total_bytes > 0);

    memset(proxy_out, 0, sizeof proxy_out);
    if (measure_once(ex, proxy_out, n, err, sizeof err) != 0)
        fail_msg("through the worker: %s", err);
    assert_memory_equal(direct_out, proxy_out, sizeof direct_out);

    /* The same memory figure as the CPU executor's own; free memory answers. */
    assert_true(exec_memory_needed(ex, &cfg) == exec_memory_needed(direct, &cfg));
    uint64_t free_bytes = 0;
    assert_int_equal(exec_memory_free(ex, &free_bytes), 0);
    assert_true(free_bytes > 0);

    /* The child's errors come back as errors, and the child stays. */
    pid_t pid = worker_pid(ex);
    float one;
    assert_int_equal(exec_read_output(ex, &one, 1, err, sizeof err), 0);
    exec_release(ex);
    assert_int_not_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    assert_true(err[0] != '\0');
    assert_int_equal(worker_pid(ex), pid);
    assert_int_equal(worker_starts(ex), 1);
    assert_int_not_equal(exec_read_output(ex, direct_out, (size_t)1 << 30, err, sizeof err), 0);
    assert_non_null(strstr(err, "elements"));

    /* Round trip of a one-launch run through the worker against a direct one. */
    assert_int_equal(exec_prepare(ex, &cfg, 42, err, sizeof err), 0);
    enum { ROUNDS = 200 };
    int64_t best_direct = INT64_MAX, best_proxy = INT64_MAX;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t t0 = clock_mono_ns();
        assert_int_equal(exec_run(direct, 1, &us, err, sizeof err), 0);
        int64_t t1 = clock_mono_ns();
        assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
        int64_t t2 = clock_mono_ns();
        if (t1 - t0 < best_direct)
            best_direct = t1 - t0;
        if (t2 - t1 < best_proxy)
            best_proxy = t2 - t1;
    }
    print_message("worker round trip: a one-launch run takes %.1f us through the worker, "
                  "%.1f us direct (best of %d)\n",
                  best_proxy / 1e3, best_direct / 1e3, ROUNDS);

    exec_close(direct);
    exec_close(ex);
    assert_no_children();
}

/* Runs one launch with the armed fault, on a thread, so the test can ask for
 * memory figures meanwhile. */
struct run_call {
    struct executor *ex;
    int rc;
    char err[512];
};

static void *run_thread(void *arg)
{
    struct run_call *c = arg;
    double us;
    c->rc = exec_run(c->ex, 1, &us, c->err, sizeof c->err);
    return NULL;
}

static void test_hang_killed_at_deadline(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct executor *ex = open_worker(true);
    char err[512] = "";
    struct kernel_config cfg = small_config();
    pid_t first = worker_pid(ex);

    assert_int_equal(worker_set_test_fault(ex, "hang", err, sizeof err), 0);
    deadline_ns = clock_mono_ns() + HANG_DEADLINE_S * NS_PER_S;
    assert_int_equal(exec_prepare(ex, &cfg, 42, err, sizeof err), 0);
    struct run_call call = {.ex = ex, .rc = 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, &call), 0);
    /* While the run hangs, the memory figures still answer (the query thread). */
    clock_sleep_until_ns(clock_mono_ns() + NS_PER_S / 5);
    uint64_t free_bytes = 0;
    assert_int_equal(exec_memory_free(ex, &free_bytes), 0);
    assert_true(free_bytes > 0);
    assert_true(exec_memory_needed(ex, &cfg) > 0);
    pthread_join(t, NULL);
    int64_t ended = clock_mono_ns();

    assert_int_equal(call.rc, -1);
    assert_non_null(strstr(call.err, "worker killed"));
    assert_non_null(strstr(call.err, "exceeded the job's time limit of 2 s"));
    assert_true(ended >= deadline_ns); /* not before the deadline */
    /* The hung child is gone and reaped; a fresh one runs. */
    assert_int_equal(kill(first, 0), -1);
    assert_true(worker_pid(ex) > 0);
    assert_int_not_equal(worker_pid(ex), first);
    assert_int_equal(worker_starts(ex), 2);

    assert_int_equal(worker_set_test_fault(ex, NULL, err, sizeof err), 0);
    deadline_ns = 0;
    float out[32];
    if (measure_once(ex, out, 32, err, sizeof err) != 0)
        fail_msg("after the kill: %s", err);
    exec_close(ex);
    assert_no_children();
}

static void test_crash_and_poison(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct executor *ex = open_worker(true);
    char err[512] = "";
    float out[32];

    pid_t first = worker_pid(ex);
    assert_int_equal(worker_set_test_fault(ex, "crash", err, sizeof err), 0);
    assert_int_equal(measure_once(ex, out, 32, err, sizeof err), -1);
    assert_non_null(strstr(err, "worker died during the run: signal 11 (SIGSEGV)"));
    assert_int_not_equal(worker_pid(ex), first);
    assert_int_equal(worker_starts(ex), 2);

    pid_t second = worker_pid(ex);
    assert_int_equal(worker_set_test_fault(ex, "poison", err, sizeof err), 0);
    assert_int_equal(measure_once(ex, out, 32, err, sizeof err), -1);
    assert_non_null(strstr(err, "context is poisoned"));
    assert_non_null(strstr(err, "exit status 3"));
    assert_int_not_equal(worker_pid(ex), second);
    assert_int_equal(worker_starts(ex), 3);

    assert_int_equal(worker_set_test_fault(ex, "", err, sizeof err), 0);
    if (measure_once(ex, out, 32, err, sizeof err) != 0)
        fail_msg("after crash and poison: %s", err);
    exec_close(ex);
    assert_no_children();
}

static void test_idle_death_and_passed_deadline(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct executor *ex = open_worker(false);
    char err[512] = "";
    float out[32];

    /* Killed between jobs: the next prepare starts a fresh worker and succeeds. */
    pid_t first = worker_pid(ex);
    assert_int_equal(kill(first, SIGKILL), 0);
    int64_t until = clock_mono_ns() + 10 * NS_PER_S;
    while (kill(first, 0) == 0 && clock_mono_ns() < until) {
        /* a zombie still answers kill(0): wait until waitpid could see it */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)first, &info, WEXITED | WNOWAIT | WNOHANG) == 0 && info.si_pid)
            break;
        clock_sleep_until_ns(clock_mono_ns() + 10000000LL);
    }
    if (measure_once(ex, out, 32, err, sizeof err) != 0)
        fail_msg("after the idle child was killed: %s", err);
    assert_int_not_equal(worker_pid(ex), first);
    assert_int_equal(worker_starts(ex), 2);

    /* A deadline already passed: refused without sending, the child kept. */
    pid_t pid = worker_pid(ex);
    deadline_ns = clock_mono_ns() - 1;
    double us;
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    assert_non_null(strstr(err, "time limit"));
    assert_int_equal(worker_pid(ex), pid);
    deadline_ns = 0;
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    exec_close(ex);
    assert_no_children();
}

static void test_fault_switch_and_errors(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    char err[512] = "", why[256] = "";
    struct executor *ex = open_worker(false);
    assert_int_equal(worker_set_test_fault(ex, "hang", err, sizeof err), -1);
    assert_non_null(strstr(err, "executor.test_faults"));
    exec_close(ex);

    ex = open_worker(true);
    assert_int_equal(worker_set_test_fault(ex, "melt", err, sizeof err), -1);
    assert_non_null(strstr(err, "melt"));
    assert_true(worker_test_fault_known("poison"));
    assert_false(worker_test_fault_known("melt"));
    assert_false(worker_test_fault_known(NULL));
    exec_close(ex);

    struct executor *direct = NULL;
    assert_int_equal(exec_cpu_open(&direct, err, sizeof err), 0);
    assert_false(worker_is_proxy(direct));
    assert_int_equal(worker_set_test_fault(direct, "hang", err, sizeof err), -1);
    assert_int_equal(worker_pid(direct), 0);
    exec_close(direct);

    struct worker_options opt = {.program = "/nonexistent/jetprofd", .job_timeout_s = 1};
    ex = (struct executor *)&opt; /* must be overwritten */
    assert_int_equal(worker_executor_open("cpu", "", &opt, &ex, why, sizeof why, err, sizeof err),
                     -1);
    assert_null(ex);
    assert_non_null(strstr(err, "could not execute"));
    assert_int_equal(worker_executor_open("gpu", "", &opt, &ex, why, sizeof why, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "unknown executor 'gpu'"));

    /* cuda on a machine without a usable plugin: the child's own error. */
    struct worker_options self = {.program = worker_program, .job_timeout_s = 1};
    assert_int_equal(worker_executor_open("cuda", "/nonexistent/libjetprof_cuda.so", &self, &ex,
                                          why, sizeof why, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "executor cuda"));
    assert_no_children();
}

/* ---- whole-graph plans through the worker ---- */

/* Four kernels on two levels: three independent ones, then one more. */
static void worker_plan(struct exec_plan_kernel k[4])
{
    memset(k, 0, 4 * sizeof k[0]);
    k[0].cfg = small_config(); /* linear_relu 4x16 -> 8 */
    k[0].level = 1;
    k[1].cfg.kernel = catalog_find("layernorm");
    k[1].cfg.params[0] = 4;
    k[1].cfg.params[1] = 16;
    k[1].level = 1;
    k[2].cfg.kernel = catalog_find("softmax");
    k[2].cfg.params[0] = 4;
    k[2].cfg.params[1] = 8;
    k[2].level = 1;
    k[3].cfg.kernel = catalog_find("linear_gelu");
    k[3].cfg.params[0] = 4;
    k[3].cfg.params[1] = 8;
    k[3].cfg.params[2] = 12;
    k[3].level = 2;
    for (int i = 0; i < 4; i++) {
        assert_non_null(k[i].cfg.kernel);
        k[i].cfg.dtype = DTYPE_FP32;
    }
}

#define PLAN_OUT 48 /* linear_gelu 4 x 12 */

/* prepare_plan + run + read_output of the last kernel's PLAN_OUT floats. */
static int measure_plan(struct executor *ex, const struct exec_plan *plan, float *out, char *err,
                        size_t errlen)
{
    double elapsed_us = -1.0;
    if (exec_prepare_plan(ex, plan, 7, err, errlen) != 0)
        return -1;
    if (exec_run(ex, 2, &elapsed_us, err, errlen) != 0)
        return -1;
    if (!(elapsed_us >= 0.0)) {
        snprintf(err, errlen, "elapsed_us %g", elapsed_us);
        return -1;
    }
    return exec_read_output(ex, out, PLAN_OUT, err, errlen);
}

/* The direct CPU executor's answer for the plan. */
static void direct_plan_output(const struct exec_plan *plan, float *out)
{
    char err[512] = "";
    struct executor *direct = NULL;
    assert_int_equal(exec_cpu_open(&direct, err, sizeof err), 0);
    if (measure_plan(direct, plan, out, err, sizeof err) != 0)
        fail_msg("direct plan: %s", err);
    exec_close(direct);
}

static bool all_zero(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0.0f)
            return false;
    return true;
}

static void test_plan_matches_direct_cpu(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct exec_plan_kernel k[4];
    worker_plan(k);
    struct exec_plan plan = {.count = 4, .kernels = k};
    assert_int_equal(catalog_output_elements(&k[3].cfg), PLAN_OUT);
    float direct_out[PLAN_OUT], proxy_out[PLAN_OUT];
    direct_plan_output(&plan, direct_out);
    assert_false(all_zero(direct_out, PLAN_OUT));

    struct executor *ex = open_worker(false);
    char err[512] = "";
    assert_int_equal(exec_plan_streams(ex), 0);
    memset(proxy_out, 0, sizeof proxy_out);
    if (measure_plan(ex, &plan, proxy_out, err, sizeof err) != 0)
        fail_msg("plan through the worker: %s", err);
    assert_memory_equal(direct_out, proxy_out, sizeof direct_out);
    assert_int_equal(exec_plan_streams(ex), 1); /* the child's CPU executor's answer */

    /* The plan's memory figure is the CPU executor's own, asked kernel by kernel. */
    struct executor *direct = NULL;
    assert_int_equal(exec_cpu_open(&direct, err, sizeof err), 0);
    assert_true(exec_plan_memory_needed(ex, &plan) == exec_plan_memory_needed(direct, &plan));
    exec_close(direct);

    /* read_output is bounded by the last kernel's output (the child says so). */
    float more[PLAN_OUT + 1];
    assert_int_equal(exec_read_output(ex, more, PLAN_OUT + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "linear_gelu"));

    /* Release forgets the plan on both sides; a plain prepare is no plan. */
    exec_release(ex);
    assert_int_equal(exec_plan_streams(ex), 0);
    double us;
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    assert_int_equal(exec_prepare_plan(ex, &plan, 7, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 1);
    struct kernel_config cfg = small_config();
    assert_int_equal(exec_prepare(ex, &cfg, 42, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 0);

    /* A plan the check refuses never reaches the child, which stays. */
    pid_t pid = worker_pid(ex);
    k[3].level = 0;
    assert_int_equal(exec_prepare_plan(ex, &plan, 7, err, sizeof err), -1);
    assert_non_null(strstr(err, "plan kernel 3 (linear_gelu)"));
    k[3].level = 2;
    assert_int_equal(worker_pid(ex), pid);
    assert_int_equal(worker_starts(ex), 1);

    /* A deadline already passed: refused without sending, the child kept. */
    deadline_ns = clock_mono_ns() - 1;
    assert_int_equal(exec_prepare_plan(ex, &plan, 7, err, sizeof err), -1);
    assert_non_null(strstr(err, "time limit"));
    assert_int_equal(worker_pid(ex), pid);
    deadline_ns = 0;

    /* After all that the channel is still in step: the plan measures again. */
    memset(proxy_out, 0, sizeof proxy_out);
    if (measure_plan(ex, &plan, proxy_out, err, sizeof err) != 0)
        fail_msg("plan again: %s", err);
    assert_memory_equal(direct_out, proxy_out, sizeof direct_out);
    assert_int_equal(worker_starts(ex), 1);
    exec_close(ex);
    assert_no_children();
}

static void test_plan_crash_and_poison(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct exec_plan_kernel k[4];
    worker_plan(k);
    struct exec_plan plan = {.count = 4, .kernels = k};
    float direct_out[PLAN_OUT], out[PLAN_OUT];
    direct_plan_output(&plan, direct_out);
    struct executor *ex = open_worker(true);
    char err[512] = "";
    double us;

    /* A fault set before prepare_plan strikes at the run. */
    pid_t first = worker_pid(ex);
    assert_int_equal(worker_set_test_fault(ex, "crash", err, sizeof err), 0);
    assert_int_equal(exec_prepare_plan(ex, &plan, 7, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 1);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    assert_non_null(strstr(err, "worker died during the run: signal 11 (SIGSEGV)"));
    assert_int_not_equal(worker_pid(ex), first);
    assert_int_equal(worker_starts(ex), 2);
    /* The fresh worker has no plan: the proxy forgot it too. */
    assert_int_equal(exec_plan_streams(ex), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    assert_non_null(strstr(err, "no configuration prepared"));

    pid_t second = worker_pid(ex);
    assert_int_equal(worker_set_test_fault(ex, "poison", err, sizeof err), 0);
    assert_int_equal(measure_plan(ex, &plan, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "context is poisoned"));
    assert_int_not_equal(worker_pid(ex), second);
    assert_int_equal(worker_starts(ex), 3);
    assert_int_equal(exec_plan_streams(ex), 0);

    /* The next prepare_plan works, and measures what the direct executor does. */
    assert_int_equal(worker_set_test_fault(ex, NULL, err, sizeof err), 0);
    memset(out, 0, sizeof out);
    if (measure_plan(ex, &plan, out, err, sizeof err) != 0)
        fail_msg("plan after crash and poison: %s", err);
    assert_memory_equal(direct_out, out, sizeof out);
    assert_int_equal(exec_plan_streams(ex), 1);
    assert_int_equal(worker_starts(ex), 3);
    exec_close(ex);
    assert_no_children();
}

/* The largest plan: every record crosses the channel (tens of KiB after the
 * request) and the last kernel's output is still the direct executor's. */
static void test_plan_largest(void **state)
{
    (void)state;
    SKIP_IF_NO_WORKER();
    struct exec_plan_kernel *k = calloc(EXEC_PLAN_MAX_KERNELS, sizeof *k);
    assert_non_null(k);
    for (unsigned i = 0; i < EXEC_PLAN_MAX_KERNELS; i++) {
        k[i].cfg.kernel = catalog_find(i % 2 ? "add_relu" : "softmax");
        assert_non_null(k[i].cfg.kernel);
        k[i].cfg.dtype = i % 3 ? DTYPE_FP32 : DTYPE_FP16;
        k[i].cfg.params[0] = 1 + i % 4;
        k[i].cfg.params[1] = 2 + i % 6;
        k[i].level = 1 + i / 32;
    }
    struct exec_plan plan = {.count = EXEC_PLAN_MAX_KERNELS, .kernels = k};
    size_t n = catalog_output_elements(&k[EXEC_PLAN_MAX_KERNELS - 1].cfg);
    float direct_out[32], proxy_out[32];
    assert_true(n > 0 && n <= 32);
    char err[512] = "";
    double us;
    struct executor *direct = NULL;
    assert_int_equal(exec_cpu_open(&direct, err, sizeof err), 0);
    assert_int_equal(exec_prepare_plan(direct, &plan, 11, err, sizeof err), 0);
    assert_int_equal(exec_run(direct, 1, &us, err, sizeof err), 0);
    assert_int_equal(exec_read_output(direct, direct_out, n, err, sizeof err), 0);
    exec_close(direct);

    struct executor *ex = open_worker(false);
    if (exec_prepare_plan(ex, &plan, 11, err, sizeof err) != 0)
        fail_msg("prepare_plan of %u kernels: %s", EXEC_PLAN_MAX_KERNELS, err);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    assert_int_equal(exec_read_output(ex, proxy_out, n, err, sizeof err), 0);
    assert_memory_equal(direct_out, proxy_out, n * sizeof(float));
    assert_int_equal(worker_starts(ex), 1);
    free(k);
    exec_close(ex);
    assert_no_children();
}

int main(int argc, char **argv)
{
    if (worker_mode_requested(argc, argv))
        return worker_child_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], EXEC_PROBE_ARG) == 0)
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_direct_cpu),
        cmocka_unit_test(test_hang_killed_at_deadline),
        cmocka_unit_test(test_crash_and_poison),
        cmocka_unit_test(test_idle_death_and_passed_deadline),
        cmocka_unit_test(test_fault_switch_and_errors),
        cmocka_unit_test(test_plan_matches_direct_cpu),
        cmocka_unit_test(test_plan_crash_and_poison),
        cmocka_unit_test(test_plan_largest),
    };
    return cmocka_run_group_tests(tests, setup_worker_program, teardown_worker_program);
}
