/*
 * worker.h - the executor in a worker process: a struct executor whose
 * operations are carried out by a child process that hosts the real one.
 *
 * The CUDA context lives only in the child, so a kernel that hangs, crashes or
 * poisons its context takes the child down, never the daemon: a run past the
 * job's deadline gets the child SIGKILLed, a child that dies (a signal, an exit)
 * or reports its context poisoned fails the job with the reason, and a fresh
 * child starts (logged). The child is this same program started again
 * (/proc/self/exe, fork + exec, never a bare fork of the threaded daemon) in
 * worker mode: `<program> --worker CTL_FD QUERY_FD --executor NAME --cuda-lib
 * PATH --log-level LEVEL [--test-faults]`. Every main() that may be the
 * program (jetprofd, the unit test) starts with:
 *
 *     if (worker_mode_requested(argc, argv))
 *         return worker_child_main(argc, argv);
 *
 * Two socketpairs connect parent and child. The control channel carries the
 * runner's operations (prepare, run, read_output, release) and is only used
 * by the thread that drives the executor; the parent measures t0/t1 around the
 * run message as it would around a direct call. The query channel is served by
 * a second thread in the child, so memory_needed and memory_free answer from
 * any thread while a run is in progress (exec.h's thread-safe pair).
 */
#ifndef JETPROF_WORKER_H
#define JETPROF_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../cudakern/exec.h"

/* The params_json member that carries a test fault from POST /v1/measure to
 * the runner (executor.test_faults only): "hang", "crash", "poison" or
 * "illegal_access". */
#define WORKER_TEST_FAULT_MEMBER "test_fault"

struct worker_options {
    /* The program started in worker mode; NULL = /proc/self/exe. */
    const char *program;
    /* Where the job's deadline is read before every request (CLOCK_MONOTONIC
     * ns, 0 = none): &measure_ctx.deadline_ns, which the runner sets per job.
     * NULL = no deadline. Read on the thread that drives the executor only. */
    const int64_t *deadline_ns;
    /* The job's time limit, for the message when a run passes the deadline. */
    unsigned job_timeout_s;
    /* The child honours test faults (executor.test_faults, test-only). */
    bool test_faults;
};

/*
 * Starts a worker that opens executor exec_name ("auto", "cpu", "cuda") with
 * cuda_lib (see exec_open) and returns the proxy in *out; why receives the
 * child's sentence on the choice. A fresh worker later opens the executor the
 * first one chose (never falls back from cuda to cpu behind the device row's
 * back). 0, or -1 with err.
 */
int worker_executor_open(const char *exec_name, const char *cuda_lib,
                         const struct worker_options *opt, struct executor **out, char *why,
                         size_t whylen, char *err, size_t errlen);

/* True when ex is a worker proxy. */
bool worker_is_proxy(const struct executor *ex);

/*
 * The test fault the next prepare hands the child (fault = "hang", "crash",
 * "poison", "illegal_access"; NULL or "" clears it). The child acts on it at
 * the next run: it sleeps forever, dies of SIGSEGV, reports its context
 * poisoned, or (illegal_access, CUDA executor only) calls the plugin's
 * optional export
 *     int jetprof_cuda_test_illegal_access(struct executor *ex, char *err,
 *                                          size_t errlen);
 * (dlsym on the executor's dl_handle), which launches a kernel that writes
 * through an invalid device pointer on the executor's stream, synchronises and
 * returns -1 with CUDA's error and "CUDA context is poisoned": a real sticky
 * error, after which the child reports poisoned and exits like any poisoned
 * context. 0, or -1 with err (not a worker proxy, faults not enabled, unknown
 * fault, "illegal_access needs the CUDA executor" when the worker runs cpu).
 */
int worker_set_test_fault(struct executor *ex, const char *fault, char *err, size_t errlen);
/* "hang", "crash", "poison", "illegal_access" -> true. */
bool worker_test_fault_known(const char *fault);

/* The child's pid, 0 when none is running (tests, diagnostics). */
pid_t worker_pid(struct executor *ex);
/* Children started since open (1 = the first is still the one). */
unsigned worker_starts(struct executor *ex);

/* Worker mode: argv[1] is "--worker". */
bool worker_mode_requested(int argc, char **argv);
/* The child's main: opens the executor, answers the parent until told to quit
 * or the control channel closes. Returns the process exit status. */
int worker_child_main(int argc, char **argv);

#endif
