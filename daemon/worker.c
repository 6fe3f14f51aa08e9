/*
 * worker.c - the executor in a worker process (see worker.h).
 *
 * Parent side: a struct executor whose ops send fixed-size binary messages
 * over a socketpair to the child and wait for the answer with poll(), bounded
 * by the job's deadline. Child side: worker_child_main, the same program
 * started again in worker mode, which opens the real executor with exec_open
 * and answers.
 *
 * Why fork + exec and not fork alone: the daemon is multi-threaded (HTTP pool,
 * sampler, runner), and a forked copy of it may only call async-signal-safe
 * functions until it execs - a CUDA runtime, malloc or a log line there could
 * deadlock on a lock some other thread held at the fork. So argv is built
 * before fork(), and the child only moves its two sockets to fds 3 and 4,
 * closes every other descriptor and execs. A child must not outlive a daemon
 * that was SIGKILLed, even one hung in a kernel that never reads the control
 * channel again: its query thread sees the EOF and ends the process
 * (PR_SET_PDEATHSIG would fire when the forking thread - the runner - ends,
 * not the daemon). The child keeps the daemon's signal mask (SIGINT, SIGTERM
 * and SIGHUP blocked, inherited across exec): a Ctrl-C or systemd's SIGTERM to
 * the whole group stops the daemon, which lets the job in progress finish and
 * then tells its worker to quit. Messages are plain C structs: both ends are the same binary, and
 * a version number in the hello catches a binary replaced on disk between two
 * starts.
 *
 * Messages (parent -> child request, child -> parent reply, one at a time per
 * channel; a sequence number pairs them):
 *   hello      child -> parent once at start: open status, exec_info, why
 *   prepare    kernel (by name), dtype, params, seed, test fault -> status
 *   prepare_plan  kernel count (1..EXEC_PLAN_MAX_KERNELS), seed, test fault, then
 *              that many wire_plan_kernel records {config, level}
 *              -> status, the plan's streams (exec_plan_streams)
 *   run        launches -> status, elapsed_us (the executor's own timing)
 *   read_output  count -> status, then count floats
 *   release    -> status
 *   quit       -> status; the child closes the executor and exits 0
 *   memory_needed (query channel)  kernel config -> bytes
 *   memory_free   (query channel)  -> rc, bytes
 * Every control reply but run's carries the child's free memory, cached by the
 * parent as the answer while no child is running.
 *
 * Failures (each ends the child, fails the request with the reason, and a
 * fresh child is started at once so the memory figures and the next job find
 * one; if that start fails, the next prepare tries again):
 *   the deadline passes while waiting: SIGKILL, "worker killed: ...";
 *   EOF or a failed write: the child died; waitpid says how;
 *   a reply with status poisoned (the executor's error says "context is
 *   poisoned", exec_cuda.cu's wording, or the poison test fault, or the real
 *   fault the illegal_access test fault provokes): the child exits by itself
 *   with WORKER_EXIT_POISONED.
 * Every child is reaped with waitpid: no zombies.
 *
 * Locks: `lock` guards pid, the fds and the cached figures; `query_lock`
 * serialises the query channel and is held by the driving thread while it
 * replaces the child, so an HTTP thread never polls a descriptor that is being
 * closed. Order: query_lock, then lock. The control channel is used by the
 * driving thread (the runner) alone.
 */
#include "worker.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/log.h"

#define LOG_MODULE "worker"

#define WORKER_ARG "--worker"
#define WORKER_MAGIC 0x4a505752u /* "JPWR" */
#define WORKER_PROTOCOL_VERSION 2u /* 2: prepare_plan */
/* The child's descriptors after exec. */
#define CHILD_CTL_FD 3
#define CHILD_QUERY_FD 4
/* Exit status of a child whose executor's context is poisoned. */
#define WORKER_EXIT_POISONED 3
/* Opening the CUDA executor (driver, context, cuBLASLt) takes seconds on a
 * cold Jetson; a child silent for this long is killed. */
#define START_TIMEOUT_MS 120000
/* An HTTP thread waits this long for a memory figure, then does without. */
#define QUERY_TIMEOUT_MS 2000
/* release and quit are not bounded by the job's deadline (they run after it
 * has failed), but by this. */
#define RELEASE_TIMEOUT_MS 10000
/* After EOF, a dying child gets this long to be reaped before SIGKILL. */
#define REAP_TIMEOUT_MS 2000
/* read_output larger than this is a caller's mistake (1 GiB of floats). */
#define MAX_OUTPUT_ELEMENTS (1u << 28)
/* How an executor says its context can no longer be used (exec_cuda.cu). */
#define POISON_MARK "context is poisoned"
#define ERR_MAX 512

#define NS_PER_MS 1000000LL

/* ---- test faults (executor.test_faults only) ---- */

enum fault { FAULT_NONE = 0, FAULT_HANG, FAULT_CRASH, FAULT_POISON, FAULT_ILLEGAL_ACCESS };

/* The CUDA plugin's optional test entry point behind "illegal_access" (see
 * worker.h); looked up with dlsym on the executor's dl_handle, so a plugin
 * without it still loads and only this fault is unavailable. */
#define ILLEGAL_ACCESS_SYMBOL "jetprof_cuda_test_illegal_access"
typedef int (*illegal_access_fn)(struct executor *ex, char *err, size_t errlen);

static const struct {
    const char *name;
    enum fault fault;
} fault_table[] = {
    {"hang", FAULT_HANG},     /* run never returns: the deadline kill */
    {"crash", FAULT_CRASH},   /* run dies of SIGSEGV: a crashing kernel */
    {"poison", FAULT_POISON}, /* run reports a poisoned context: a sticky CUDA error */
    /* run makes a real kernel write through an invalid device pointer: the
     * sticky cudaErrorIllegalAddress itself (CUDA executor only) */
    {"illegal_access", FAULT_ILLEGAL_ACCESS},
};
#define FAULT_COUNT (sizeof fault_table / sizeof fault_table[0])

static enum fault fault_parse(const char *name)
{
    for (size_t i = 0; name && i < FAULT_COUNT; i++)
        if (strcmp(name, fault_table[i].name) == 0)
            return fault_table[i].fault;
    return FAULT_NONE;
}

bool worker_test_fault_known(const char *fault) { return fault_parse(fault) != FAULT_NONE; }

/* ---- the wire ---- */

enum wire_op {
    OP_PREPARE = 1,
    OP_RUN,
    OP_READ_OUTPUT,
    OP_RELEASE,
    OP_QUIT,
    OP_MEMORY_NEEDED,
    OP_MEMORY_FREE,
    OP_PREPARE_PLAN,
};

enum wire_status {
    STATUS_OK = 0,
    STATUS_ERROR = 1,
    STATUS_POISONED = 2,
};

struct wire_config {
    char kernel[64];
    int32_t dtype;
    uint32_t param_count;
    int64_t params[CATALOG_MAX_PARAMS];
};

struct wire_request {
    uint32_t magic;
    uint32_t op;
    uint64_t seq;
    struct wire_config cfg;
    uint64_t seed;
    uint64_t count; /* launches, output elements, or a plan's kernels */
    char fault[16];
};

/* One plan kernel; prepare_plan's request is followed by `count` of these. */
struct wire_plan_kernel {
    struct wire_config cfg;
    uint32_t level;
    uint32_t reserved; /* 0: keeps the record's size free of padding */
};

struct wire_reply {
    uint32_t magic;
    int32_t status;
    uint64_t seq;
    int32_t mem_free_rc; /* 0: mem_free_bytes is a fresh figure; -1: none */
    uint64_t mem_free_bytes;
    double elapsed_us;
    uint64_t value; /* memory_needed's bytes; read_output's element count; a plan's streams */
    char err[ERR_MAX];
};

struct wire_hello {
    uint32_t magic;
    uint32_t version;
    int32_t status;
    struct exec_info info;
    char why[256];
    char err[ERR_MAX];
};

/* ---- helpers shared by both sides ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies a NUL-terminated string received from the other end, terminating it. */
static void copy_text(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t n = strnlen(src, srclen);
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        /* MSG_NOSIGNAL: a dead peer is an EPIPE to handle, whatever SIGPIPE's disposition. */
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

enum io_result { IO_OK, IO_TIMEOUT, IO_EOF, IO_ERROR };

/* Reads exactly len bytes, waiting until deadline_ns (CLOCK_MONOTONIC, 0 = no limit). */
static enum io_result read_all(int fd, void *buf, size_t len, int64_t deadline_ns)
{
    char *p = buf;
    while (len > 0) {
        int timeout_ms = -1;
        if (deadline_ns != 0) {
            int64_t left = deadline_ns - clock_mono_ns();
            if (left <= 0)
                return IO_TIMEOUT;
            int64_t ms = (left + NS_PER_MS - 1) / NS_PER_MS;
            timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, timeout_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return IO_ERROR;
        if (rc == 0)
            continue; /* the loop head decides whether the deadline has passed */
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? IO_EOF : IO_ERROR;
        if (n == 0)
            return IO_EOF;
        p += n;
        len -= (size_t)n;
    }
    return IO_OK;
}

static void config_to_wire(const struct kernel_config *cfg, struct wire_config *w)
{
    memset(w, 0, sizeof *w);
    if (!cfg || !cfg->kernel)
        return;
    snprintf(w->kernel, sizeof w->kernel, "%s", cfg->kernel->name);
    w->dtype = (int32_t)cfg->dtype;
    w->param_count = cfg->kernel->param_count;
    for (unsigned i = 0; i < CATALOG_MAX_PARAMS; i++)
        w->params[i] = cfg->params[i];
}

static int config_from_wire(const struct wire_config *w, struct kernel_config *cfg, char *err,
                            size_t errlen)
{
    char name[sizeof w->kernel];
    copy_text(name, sizeof name, w->kernel, sizeof w->kernel);
    memset(cfg, 0, sizeof *cfg);
    cfg->kernel = catalog_find(name);
    if (!cfg->kernel) {
        set_err(err, errlen, "worker: unknown kernel '%s'", name);
        return -1;
    }
    if (w->dtype < 0 || w->dtype >= DTYPE_COUNT) {
        set_err(err, errlen, "worker: unknown dtype %d", (int)w->dtype);
        return -1;
    }
    if (w->param_count != cfg->kernel->param_count) {
        set_err(err, errlen, "worker: %s has %u parameters, the request %u", name,
                cfg->kernel->param_count, (unsigned)w->param_count);
        return -1;
    }
    cfg->dtype = (enum dtype)w->dtype;
    for (unsigned i = 0; i < CATALOG_MAX_PARAMS; i++)
        cfg->params[i] = w->params[i];
    return 0;
}

/* "signal 11 (SIGSEGV)" or "exit status 3". */
static void describe_status(int status, char *out, size_t outlen)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
            snprintf(out, outlen, "signal %d (SIG%s)", sig, abbrev);
        else
            snprintf(out, outlen, "signal %d", sig);
    } else if (WIFEXITED(status)) {
        snprintf(out, outlen, "exit status %d", WEXITSTATUS(status));
    } else {
        snprintf(out, outlen, "wait status 0x%x", (unsigned)status);
    }
}

/* ======================================================================
 * Parent side: the proxy
 * ====================================================================== */

struct worker {
    struct executor ex;
    char program[PATH_MAX];
    char exec_name[16];  /* what a child opens: as configured, then the first child's choice */
    char cuda_lib[PATH_MAX];
    char log_level[16];
    const int64_t *deadline_ns;
    unsigned job_timeout_s;
    bool test_faults;
    char fault[16]; /* handed to the child with every prepare; "" = none */
    /* The prepared plan's streams as the child reported them; 0 when no plan
     * is prepared (a plain prepare, a release, a fresh child). The driving
     * thread's, like the control channel. */
    unsigned plan_streams;
    struct exec_info info; /* as the first child reported it */

    pthread_mutex_t lock;       /* pid, fds, starts, cached figures */
    pthread_mutex_t query_lock; /* the query channel; held while the child is replaced */
    pid_t pid;                  /* 0 = no child */
    int ctl_fd, query_fd;       /* -1 = none */
    unsigned starts;
    uint64_t seq;       /* control channel; the driving thread's */
    uint64_t query_seq; /* under query_lock */
    bool free_known;
    uint64_t free_bytes;
};

static const struct executor_ops worker_ops;

static struct worker *worker_of(struct executor *ex) { return (struct worker *)ex->impl; }

bool worker_is_proxy(const struct executor *ex) { return ex && ex->ops == &worker_ops; }

static void note_free(struct worker *w, int32_t rc, uint64_t bytes)
{
    if (rc != 0)
        return;
    pthread_mutex_lock(&w->lock);
    w->free_known = true;
    w->free_bytes = bytes;
    pthread_mutex_unlock(&w->lock);
}

/* Waits for pid: up to REAP_TIMEOUT_MS for one that is ending by itself, then
 * SIGKILL. The wait status. */
static int reap(pid_t pid)
{
    int status = 0;
    int64_t until = clock_mono_ns() + REAP_TIMEOUT_MS * NS_PER_MS;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR) {
            log_error(LOG_MODULE, "waitpid(%ld): %s", (long)pid, strerror(errno));
            return 0;
        }
        if (clock_mono_ns() >= until)
            break;
        clock_sleep_until_ns(clock_mono_ns() + 5 * NS_PER_MS);
    }
    log_warn(LOG_MODULE, "worker %ld has not ended %d ms after closing its channel; killing it",
             (long)pid, REAP_TIMEOUT_MS);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            log_error(LOG_MODULE, "waitpid(%ld): %s", (long)pid, strerror(errno));
            return 0;
        }
    }
    return status;
}

/* Closes the current child's channels and forgets it (pid 0); its pid. */
static pid_t detach_child(struct worker *w)
{
    pid_t pid = w->pid;
    /* A query in flight ends quickly now (the child is gone or going). */
    pthread_mutex_lock(&w->query_lock);
    pthread_mutex_lock(&w->lock);
    if (w->ctl_fd >= 0)
        close(w->ctl_fd);
    if (w->query_fd >= 0)
        close(w->query_fd);
    w->ctl_fd = w->query_fd = -1;
    w->pid = 0;
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_unlock(&w->query_lock);
    return pid;
}

/* Ends the current child (SIGKILL first when kill_it), closes its channels and
 * reaps it; describes how it ended. */
static void end_child(struct worker *w, bool kill_it, char *how, size_t howlen)
{
    pid_t pid = w->pid;
    if (pid > 0 && kill_it)
        kill(pid, SIGKILL);
    detach_child(w);
    if (pid <= 0) {
        set_err(how, howlen, "no worker was running");
        return;
    }
    int status = reap(pid);
    describe_status(status, how, howlen);
}

/*
 * Starts a child that opens w->exec_name and reads its hello. 0, or -1 with err
 * (the child, if any, reaped).
 */
static int start_child(struct worker *w, char *why, size_t whylen, char *err, size_t errlen)
{
    int ctl[2], query[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) {
        set_err(err, errlen, "worker: socketpair: %s", strerror(errno));
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, query) != 0) {
        set_err(err, errlen, "worker: socketpair: %s", strerror(errno));
        close(ctl[0]);
        close(ctl[1]);
        return -1;
    }
    /* Everything the child needs is built here: after fork it may not allocate. */
    char ctl_arg[16], query_arg[16];
    snprintf(ctl_arg, sizeof ctl_arg, "%d", CHILD_CTL_FD);
    snprintf(query_arg, sizeof query_arg, "%d", CHILD_QUERY_FD);
    char *argv[] = {w->program, WORKER_ARG, ctl_arg, query_arg,
                    "--executor", w->exec_name, "--cuda-lib", w->cuda_lib,
                    "--log-level", w->log_level, w->test_faults ? "--test-faults" : NULL,
                    NULL};
    int child_ctl = ctl[1], child_query = query[1];

    pid_t pid = fork();
    if (pid < 0) {
        set_err(err, errlen, "worker: fork: %s", strerror(errno));
        close(ctl[0]);
        close(ctl[1]);
        close(query[0]);
        close(query[1]);
        return -1;
    }
    if (pid == 0) {
        /* Async-signal-safe calls only from here to execv. */
        int a = fcntl(child_ctl, F_DUPFD, 10);
        int b = fcntl(child_query, F_DUPFD, 10);
        if (a < 0 || b < 0 || dup2(a, CHILD_CTL_FD) < 0 || dup2(b, CHILD_QUERY_FD) < 0)
            _exit(127);
        close_range(CHILD_QUERY_FD + 1, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(ctl[1]);
    close(query[1]);

    pthread_mutex_lock(&w->query_lock);
    pthread_mutex_lock(&w->lock);
    w->pid = pid;
    w->ctl_fd = ctl[0];
    w->query_fd = query[0];
    w->free_known = false;
    w->plan_streams = 0; /* a fresh child has nothing prepared */
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_unlock(&w->query_lock);

    struct wire_hello hello;
    memset(&hello, 0, sizeof hello);
    enum io_result io =
        read_all(w->ctl_fd, &hello, sizeof hello, clock_mono_ns() + START_TIMEOUT_MS * NS_PER_MS);
    char how[64];
    if (io != IO_OK) {
        end_child(w, io == IO_TIMEOUT, how, sizeof how);
        if (io == IO_TIMEOUT)
            set_err(err, errlen, "worker %ld did not answer within %d s; killed", (long)pid,
                    START_TIMEOUT_MS / 1000);
        else
            set_err(err, errlen, "worker %ld ended before it answered: %s%s", (long)pid, how,
                    strcmp(how, "exit status 127") == 0 ? " (could not execute the program)"
                                                        : "");
        return -1;
    }
    if (hello.magic != WORKER_MAGIC || hello.version != WORKER_PROTOCOL_VERSION) {
        end_child(w, true, how, sizeof how);
        set_err(err, errlen,
                "worker %ld speaks protocol version %u, this daemon %u (was %s replaced on "
                "disk? restart jetprofd)",
                (long)pid, hello.version, WORKER_PROTOCOL_VERSION, w->program);
        return -1;
    }
    char text[ERR_MAX];
    if (hello.status != STATUS_OK) {
        copy_text(text, sizeof text, hello.err, sizeof hello.err);
        end_child(w, false, how, sizeof how);
        set_err(err, errlen, "%s", text);
        return -1;
    }
    hello.info.name[sizeof hello.info.name - 1] = '\0';
    hello.info.device[sizeof hello.info.device - 1] = '\0';
    hello.info.runtime_version[sizeof hello.info.runtime_version - 1] = '\0';
    copy_text(text, sizeof text, hello.why, sizeof hello.why);
    set_err(why, whylen, "%s", text);
    pthread_mutex_lock(&w->lock);
    w->starts++;
    if (w->starts == 1)
        w->info = hello.info;
    w->free_known = true;
    w->free_bytes = hello.info.mem_free_bytes;
    pthread_mutex_unlock(&w->lock);
    if (w->starts == 1)
        snprintf(w->exec_name, sizeof w->exec_name, "%s", hello.info.name);
    log_info(LOG_MODULE, "worker %ld: executor %s on %s", (long)pid, hello.info.name,
             hello.info.device);
    return 0;
}

/* A fresh child after one ended; failures are logged (the next prepare tries again). */
static void restart_child(struct worker *w, const char *after)
{
    char why[256], err[ERR_MAX];
    if (start_child(w, why, sizeof why, err, sizeof err) == 0)
        log_info(LOG_MODULE, "fresh worker %ld started after %s", (long)w->pid, after);
    else
        log_error(LOG_MODULE, "starting a fresh worker after %s failed: %s; the next job tries "
                  "again", after, err);
}

static const char *op_name(uint32_t op)
{
    switch (op) {
    case OP_PREPARE: return "prepare";
    case OP_RUN: return "run";
    case OP_READ_OUTPUT: return "read_output";
    case OP_RELEASE: return "release";
    case OP_QUIT: return "quit";
    case OP_MEMORY_NEEDED: return "memory_needed";
    case OP_MEMORY_FREE: return "memory_free";
    case OP_PREPARE_PLAN: return "prepare_plan";
    }
    return "request";
}

/* The job's deadline for op; 0 = none. release and quit come after a job has
 * failed, so they get a fixed bound instead. */
static int64_t op_deadline(const struct worker *w, uint32_t op)
{
    if (op == OP_RELEASE || op == OP_QUIT)
        return clock_mono_ns() + RELEASE_TIMEOUT_MS * NS_PER_MS;
    return w->deadline_ns ? *w->deadline_ns : 0;
}

/*
 * One request on the control channel (plus `payload_len` bytes sent right
 * after it: prepare_plan's records) and its reply (plus `extra` bytes that
 * follow an OK reply, into extra_buf). On a dead, killed or poisoned child:
 * err says what happened, the child is reaped and a fresh one started.
 * 0, or -1 with err.
 */
static int control_payload(struct worker *w, struct wire_request *req, const void *payload,
                           size_t payload_len, struct wire_reply *rep, void *extra_buf,
                           size_t extra, char *err, size_t errlen)
{
    const char *what = op_name(req->op);
    if (w->pid <= 0) {
        set_err(err, errlen, "no worker process is running (starting one failed; see the log)");
        return -1;
    }
    int64_t deadline = op_deadline(w, req->op);
    if (deadline != 0 && req->op != OP_RELEASE && req->op != OP_QUIT &&
        clock_mono_ns() >= deadline) {
        set_err(err, errlen, "the job's time limit of %u s passed before the %s", w->job_timeout_s,
                what);
        return -1;
    }
    req->magic = WORKER_MAGIC;
    req->seq = ++w->seq;
    memset(rep, 0, sizeof *rep);

    pid_t pid = w->pid;
    enum io_result io = IO_ERROR;
    if (write_all(w->ctl_fd, req, sizeof *req) == 0 &&
        (payload_len == 0 || write_all(w->ctl_fd, payload, payload_len) == 0)) {
        io = read_all(w->ctl_fd, rep, sizeof *rep, deadline);
        if (io == IO_OK && (rep->magic != WORKER_MAGIC || rep->seq != req->seq))
            io = IO_ERROR;
        if (io == IO_OK && rep->status == STATUS_OK && extra > 0)
            io = read_all(w->ctl_fd, extra_buf, extra, deadline);
    }
    if (io == IO_OK && rep->status != STATUS_POISONED) {
        note_free(w, rep->mem_free_rc, rep->mem_free_bytes);
        if (rep->status == STATUS_OK)
            return 0;
        char text[ERR_MAX];
        copy_text(text, sizeof text, rep->err, sizeof rep->err);
        set_err(err, errlen, "%s", text);
        return -1;
    }

    char how[64], after[128];
    if (io == IO_OK) { /* poisoned: the child exits by itself */
        char text[ERR_MAX];
        copy_text(text, sizeof text, rep->err, sizeof rep->err);
        end_child(w, false, how, sizeof how);
        set_err(err, errlen, "%s; the worker process ended (%s) and a fresh one starts", text,
                how);
        log_warn(LOG_MODULE, "worker %ld: %s poisoned its context; it ended (%s)", (long)pid,
                 what, how);
        snprintf(after, sizeof after, "a poisoned context");
    } else if (io == IO_TIMEOUT) {
        end_child(w, true, how, sizeof how);
        if (req->op == OP_RELEASE || req->op == OP_QUIT)
            set_err(err, errlen, "worker killed: the %s took longer than %d s", what,
                    RELEASE_TIMEOUT_MS / 1000);
        else
            set_err(err, errlen, "worker killed: the %s exceeded the job's time limit of %u s",
                    what, w->job_timeout_s);
        log_warn(LOG_MODULE, "worker %ld killed: the %s passed the deadline (%s)", (long)pid,
                 what, how);
        snprintf(after, sizeof after, "a %s past the deadline", what);
    } else {
        end_child(w, false, how, sizeof how);
        if (io == IO_ERROR && rep->magic != 0 && rep->magic != WORKER_MAGIC)
            set_err(err, errlen, "worker sent a malformed reply to the %s; it ended (%s)", what,
                    how);
        else
            set_err(err, errlen, "worker died during the %s: %s", what, how);
        log_warn(LOG_MODULE, "worker %ld died during the %s: %s", (long)pid, what, how);
        snprintf(after, sizeof after, "a worker that died (%s)", how);
    }
    if (req->op != OP_QUIT)
        restart_child(w, after);
    return -1;
}

static int control(struct worker *w, struct wire_request *req, struct wire_reply *rep,
                   void *extra_buf, size_t extra, char *err, size_t errlen)
{
    return control_payload(w, req, NULL, 0, rep, extra_buf, extra, err, errlen);
}

/* One request on the query channel: any thread, never waits for a run. */
static int query(struct worker *w, uint32_t op, const struct kernel_config *cfg,
                 struct wire_reply *rep)
{
    struct wire_request req;
    memset(&req, 0, sizeof req);
    req.magic = WORKER_MAGIC;
    req.op = op;
    config_to_wire(cfg, &req.cfg);
    int rc = -1;
    pthread_mutex_lock(&w->query_lock);
    pthread_mutex_lock(&w->lock);
    int fd = w->query_fd;
    pthread_mutex_unlock(&w->lock);
    if (fd >= 0) {
        req.seq = ++w->query_seq;
        int64_t deadline = clock_mono_ns() + QUERY_TIMEOUT_MS * NS_PER_MS;
        if (write_all(fd, &req, sizeof req) == 0) {
            /* A reply to an earlier query that timed out may come first. */
            for (;;) {
                if (read_all(fd, rep, sizeof *rep, deadline) != IO_OK ||
                    rep->magic != WORKER_MAGIC)
                    break;
                if (rep->seq == req.seq) {
                    rc = rep->status == STATUS_OK ? 0 : -1;
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&w->query_lock);
    return rc;
}

static void worker_info(struct executor *ex, struct exec_info *out)
{
    struct worker *w = worker_of(ex);
    pthread_mutex_lock(&w->lock);
    *out = w->info;
    if (w->free_known)
        out->mem_free_bytes = w->free_bytes;
    pthread_mutex_unlock(&w->lock);
}

/* Before a prepare: a child that died while idle is reaped, and a child is
 * started when none runs. 0, or -1 with err. */
static int ensure_child(struct worker *w, char *err, size_t errlen)
{
    int status;
    if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == w->pid) {
        /* Died between jobs (the OOM killer, an operator): not this job's fault. */
        char how[64];
        describe_status(status, how, sizeof how);
        log_warn(LOG_MODULE, "worker %ld ended while idle (%s)", (long)detach_child(w), how);
    }
    if (w->pid <= 0) {
        char why[256], e[ERR_MAX];
        log_info(LOG_MODULE, "no worker running: starting a fresh one");
        if (start_child(w, why, sizeof why, e, sizeof e) != 0) {
            set_err(err, errlen, "starting a worker process failed: %s", e);
            return -1;
        }
    }
    return 0;
}

static int worker_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                          char *err, size_t errlen)
{
    struct worker *w = worker_of(ex);
    w->plan_streams = 0; /* this prepare replaces any plan */
    if (!cfg || !cfg->kernel) {
        set_err(err, errlen, "prepare: no kernel configuration");
        return -1;
    }
    if (ensure_child(w, err, errlen) != 0)
        return -1;
    struct wire_request req;
    struct wire_reply rep;
    memset(&req, 0, sizeof req);
    req.op = OP_PREPARE;
    config_to_wire(cfg, &req.cfg);
    req.seed = seed;
    snprintf(req.fault, sizeof req.fault, "%s", w->fault);
    return control(w, &req, &rep, NULL, 0, err, errlen);
}

static int worker_prepare_plan(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                               char *err, size_t errlen)
{
    struct worker *w = worker_of(ex);
    w->plan_streams = 0;
    /* Checked here too (the count bounds what is sent); the child checks again. */
    if (exec_plan_check(plan, err, errlen) != 0)
        return -1;
    if (ensure_child(w, err, errlen) != 0)
        return -1;
    struct wire_plan_kernel *recs = calloc(plan->count, sizeof *recs);
    if (!recs) {
        set_err(err, errlen, "prepare_plan: out of memory for %zu kernels", plan->count);
        return -1;
    }
    for (size_t i = 0; i < plan->count; i++) {
        config_to_wire(&plan->kernels[i].cfg, &recs[i].cfg);
        recs[i].level = plan->kernels[i].level;
    }
    struct wire_request req;
    struct wire_reply rep;
    memset(&req, 0, sizeof req);
    req.op = OP_PREPARE_PLAN;
    req.count = plan->count;
    req.seed = seed;
    snprintf(req.fault, sizeof req.fault, "%s", w->fault);
    int rc = control_payload(w, &req, recs, plan->count * sizeof *recs, &rep, NULL, 0, err,
                             errlen);
    free(recs);
    if (rc != 0)
        return -1;
    /* The child's own figure, never more than the plan's kernels. */
    w->plan_streams = rep.value > plan->count ? (unsigned)plan->count : (unsigned)rep.value;
    return 0;
}

static unsigned worker_plan_streams(struct executor *ex) { return worker_of(ex)->plan_streams; }

static int worker_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
                      size_t errlen)
{
    struct worker *w = worker_of(ex);
    struct wire_request req;
    struct wire_reply rep;
    memset(&req, 0, sizeof req);
    req.op = OP_RUN;
    req.count = launches;
    if (control(w, &req, &rep, NULL, 0, err, errlen) != 0)
        return -1;
    *elapsed_us = rep.elapsed_us;
    return 0;
}

static int worker_read_output(struct executor *ex, float *dst, size_t count, char *err,
                              size_t errlen)
{
    struct worker *w = worker_of(ex);
    if (count > MAX_OUTPUT_ELEMENTS) {
        set_err(err, errlen, "read_output: %zu elements is more than the worker sends (%u)",
                count, MAX_OUTPUT_ELEMENTS);
        return -1;
    }
    struct wire_request req;
    struct wire_reply rep;
    memset(&req, 0, sizeof req);
    req.op = OP_READ_OUTPUT;
    req.count = count;
    return control(w, &req, &rep, dst, count * sizeof(float), err, errlen);
}

static void worker_release(struct executor *ex)
{
    struct worker *w = worker_of(ex);
    w->plan_streams = 0;
    if (w->pid <= 0)
        return; /* a child that ended took its buffers with it */
    struct wire_request req;
    struct wire_reply rep;
    char err[ERR_MAX];
    memset(&req, 0, sizeof req);
    req.op = OP_RELEASE;
    if (control(w, &req, &rep, NULL, 0, err, sizeof err) != 0)
        log_warn(LOG_MODULE, "release: %s", err);
}

static void worker_close(struct executor *ex)
{
    struct worker *w = worker_of(ex);
    if (w->pid > 0) {
        pid_t pid = w->pid;
        struct wire_request req;
        struct wire_reply rep;
        char err[ERR_MAX], how[64];
        memset(&req, 0, sizeof req);
        req.op = OP_QUIT;
        if (control(w, &req, &rep, NULL, 0, err, sizeof err) != 0) {
            log_warn(LOG_MODULE, "worker %ld at close: %s", (long)pid, err);
        } else {
            end_child(w, false, how, sizeof how);
            log_info(LOG_MODULE, "worker %ld stopped (%s)", (long)pid, how);
        }
    }
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->query_lock);
    free(w);
}

static uint64_t worker_memory_needed(struct executor *ex, const struct kernel_config *cfg)
{
    struct worker *w = worker_of(ex);
    struct wire_reply rep;
    if (query(w, OP_MEMORY_NEEDED, cfg, &rep) != 0) {
        /* Callers ask memory_free first, which fails the same way: the check
         * is skipped and the child's prepare is the judge. */
        log_debug(LOG_MODULE, "memory_needed: no answer from a worker");
        return 0;
    }
    return rep.value;
}

static int worker_memory_free(struct executor *ex, uint64_t *free_bytes)
{
    struct worker *w = worker_of(ex);
    struct wire_reply rep;
    if (query(w, OP_MEMORY_FREE, NULL, &rep) == 0 && rep.mem_free_rc == 0) {
        note_free(w, 0, rep.mem_free_bytes);
        *free_bytes = rep.mem_free_bytes;
        return 0;
    }
    return -1;
}

static const struct executor_ops worker_ops = {
    .info = worker_info,
    .prepare = worker_prepare,
    .run = worker_run,
    .read_output = worker_read_output,
    .release = worker_release,
    .close = worker_close,
    .memory_needed = worker_memory_needed,
    .memory_free = worker_memory_free,
    .prepare_plan = worker_prepare_plan,
    .plan_streams = worker_plan_streams,
};

int worker_executor_open(const char *exec_name, const char *cuda_lib,
                         const struct worker_options *opt, struct executor **out, char *why,
                         size_t whylen, char *err, size_t errlen)
{
    *out = NULL;
    if (!exec_name || (strcmp(exec_name, "auto") != 0 && strcmp(exec_name, "cpu") != 0 &&
                       strcmp(exec_name, "cuda") != 0)) {
        set_err(err, errlen, "unknown executor '%s' (expected auto, cpu or cuda)",
                exec_name ? exec_name : "(null)");
        return -1;
    }
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        set_err(err, errlen, "worker: out of memory");
        return -1;
    }
    w->ctl_fd = w->query_fd = -1;
    if (opt && opt->program && opt->program[0]) {
        snprintf(w->program, sizeof w->program, "%s", opt->program);
    } else {
        ssize_t n = readlink("/proc/self/exe", w->program, sizeof w->program - 1);
        if (n <= 0 || (size_t)n >= sizeof w->program - 1) {
            set_err(err, errlen, "worker: cannot find the running program (/proc/self/exe): %s",
                    n < 0 ? strerror(errno) : "path too long");
            free(w);
            return -1;
        }
        w->program[n] = '\0';
    }
    snprintf(w->exec_name, sizeof w->exec_name, "%s", exec_name);
    snprintf(w->cuda_lib, sizeof w->cuda_lib, "%s", cuda_lib ? cuda_lib : "");
    snprintf(w->log_level, sizeof w->log_level, "%s", jp_log_level_name(jp_log_get_level()));
    if (opt) {
        w->deadline_ns = opt->deadline_ns;
        w->job_timeout_s = opt->job_timeout_s;
        w->test_faults = opt->test_faults;
    }
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        set_err(err, errlen, "worker: mutex");
        free(w);
        return -1;
    }
    if (pthread_mutex_init(&w->query_lock, NULL) != 0) {
        set_err(err, errlen, "worker: mutex");
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -1;
    }
    w->ex.ops = &worker_ops;
    w->ex.impl = w;
    w->ex.dl_handle = NULL;
    if (start_child(w, why, whylen, err, errlen) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->query_lock);
        free(w);
        return -1;
    }
    *out = &w->ex;
    return 0;
}

int worker_set_test_fault(struct executor *ex, const char *fault, char *err, size_t errlen)
{
    if (!worker_is_proxy(ex)) {
        set_err(err, errlen, "test faults need the executor in a worker process");
        return -1;
    }
    struct worker *w = worker_of(ex);
    if (!fault || !fault[0]) {
        w->fault[0] = '\0';
        return 0;
    }
    if (!w->test_faults) {
        set_err(err, errlen, "test faults are off (executor.test_faults = false)");
        return -1;
    }
    if (!worker_test_fault_known(fault)) {
        set_err(err, errlen, "unknown test fault '%s' (hang, crash, poison or illegal_access)",
                fault);
        return -1;
    }
    if (fault_parse(fault) == FAULT_ILLEGAL_ACCESS && strcmp(w->exec_name, "cuda") != 0) {
        /* w->exec_name is the first child's choice: what every child opens. */
        set_err(err, errlen,
                "test fault 'illegal_access' refused: illegal_access needs the CUDA executor "
                "(this worker runs the %s executor)",
                w->exec_name);
        return -1;
    }
    snprintf(w->fault, sizeof w->fault, "%s", fault);
    return 0;
}

pid_t worker_pid(struct executor *ex)
{
    if (!worker_is_proxy(ex))
        return 0;
    struct worker *w = worker_of(ex);
    pthread_mutex_lock(&w->lock);
    pid_t pid = w->pid;
    pthread_mutex_unlock(&w->lock);
    return pid;
}

unsigned worker_starts(struct executor *ex)
{
    if (!worker_is_proxy(ex))
        return 0;
    struct worker *w = worker_of(ex);
    pthread_mutex_lock(&w->lock);
    unsigned n = w->starts;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* ======================================================================
 * Child side
 * ====================================================================== */

struct child {
    struct executor *ex;
    int ctl_fd, query_fd;
    bool test_faults;
    enum fault fault; /* from the last prepare */
    atomic_bool quitting; /* the main thread is ending the process in order */
};

bool worker_mode_requested(int argc, char **argv)
{
    return argc > 1 && argv && argv[1] && strcmp(argv[1], WORKER_ARG) == 0;
}

static void fill_free(struct child *c, struct wire_reply *rep)
{
    uint64_t free_bytes = 0;
    rep->mem_free_rc = exec_memory_free(c->ex, &free_bytes) == 0 ? 0 : -1;
    rep->mem_free_bytes = free_bytes;
}

/* The query thread: memory figures while the main thread may be in a run. */
static void *query_main(void *arg)
{
    struct child *c = arg;
    struct wire_request req;
    struct wire_reply rep;
    while (read_all(c->query_fd, &req, sizeof req, 0) == IO_OK) {
        memset(&rep, 0, sizeof rep);
        rep.magic = WORKER_MAGIC;
        rep.seq = req.seq;
        rep.status = STATUS_ERROR;
        rep.mem_free_rc = -1;
        struct kernel_config cfg;
        if (req.magic != WORKER_MAGIC) {
            set_err(rep.err, sizeof rep.err, "worker: bad query");
        } else if (req.op == OP_MEMORY_NEEDED) {
            if (config_from_wire(&req.cfg, &cfg, rep.err, sizeof rep.err) == 0) {
                rep.value = exec_memory_needed(c->ex, &cfg);
                rep.status = STATUS_OK;
            }
        } else if (req.op == OP_MEMORY_FREE) {
            fill_free(c, &rep);
            rep.status = rep.mem_free_rc == 0 ? STATUS_OK : STATUS_ERROR;
        } else {
            set_err(rep.err, sizeof rep.err, "worker: op %u is not a query", (unsigned)req.op);
        }
        if (write_all(c->query_fd, &rep, sizeof rep) != 0)
            break;
    }
    if (!atomic_load(&c->quitting)) {
        /* The daemon closed the channel or died, maybe while the main thread
         * is stuck in a kernel: nobody is left to serve. */
        log_warn(LOG_MODULE, "worker %ld: the daemon is gone; exiting", (long)getpid());
        _exit(0);
    }
    return NULL;
}

/*
 * Carries out the test fault armed at prepare, at the run. hang and crash do
 * not return. true when the fault took the run's place: rep then holds the
 * outcome (poison: status poisoned; illegal_access: the plugin's error in
 * rep->err, which marks the context poisoned when the fault was real).
 */
static bool act_on_fault(struct child *c, struct wire_reply *rep)
{
    switch (c->fault) {
    case FAULT_HANG:
        log_warn(LOG_MODULE, "worker %ld: test fault 'hang': the run never returns",
                 (long)getpid());
        for (;;)
            pause();
    case FAULT_CRASH: {
        log_warn(LOG_MODULE, "worker %ld: test fault 'crash': SIGSEGV", (long)getpid());
        /* The default action, so the parent sees death by SIGSEGV in every
         * build (a sanitizer's handler would turn it into exit status 1). */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGSEGV, &dfl, NULL);
        sigset_t segv;
        sigemptyset(&segv);
        sigaddset(&segv, SIGSEGV);
        pthread_sigmask(SIG_UNBLOCK, &segv, NULL);
        raise(SIGSEGV);
        _exit(139); /* not reached */
    }
    case FAULT_POISON:
        log_warn(LOG_MODULE, "worker %ld: test fault 'poison': reporting a poisoned context",
                 (long)getpid());
        rep->status = STATUS_POISONED;
        set_err(rep->err, sizeof rep->err,
                "run: test fault 'poison': the CUDA context is poisoned (simulated sticky error)");
        return true;
    case FAULT_ILLEGAL_ACCESS: {
        /* prepare refused this fault on an executor without a plugin handle. */
        void *sym = c->ex->dl_handle ? dlsym(c->ex->dl_handle, ILLEGAL_ACCESS_SYMBOL) : NULL;
        if (!sym) {
            set_err(rep->err, sizeof rep->err,
                    "run: test fault 'illegal_access': the CUDA plugin has no %s (built "
                    "before it was added?)",
                    ILLEGAL_ACCESS_SYMBOL);
            return true;
        }
        illegal_access_fn provoke;
        memcpy(&provoke, &sym, sizeof provoke); /* object pointer -> function pointer */
        log_warn(LOG_MODULE, "worker %ld: test fault 'illegal_access': a kernel writes through "
                 "an invalid device pointer", (long)getpid());
        char text[ERR_MAX] = "";
        if (provoke(c->ex, text, sizeof text) == 0)
            set_err(rep->err, sizeof rep->err,
                    "run: test fault 'illegal_access': the invalid write did not fault");
        else
            set_err(rep->err, sizeof rep->err, "run: test fault 'illegal_access': %s",
                    text[0] ? text : "failed without a reason");
        return true;
    }
    case FAULT_NONE:
        return false;
    }
    return false;
}

/* Arms the test fault a prepare carries (acted on at the next run). 0, or -1
 * with rep->err when it is refused. */
static int arm_fault(struct child *c, const struct wire_request *req, struct wire_reply *rep)
{
    char fault[sizeof req->fault];
    copy_text(fault, sizeof fault, req->fault, sizeof req->fault);
    c->fault = FAULT_NONE;
    if (fault[0] && !c->test_faults) {
        set_err(rep->err, sizeof rep->err,
                "test fault '%s' refused: this worker was started without test faults", fault);
        return -1;
    }
    if (fault[0] && (c->fault = fault_parse(fault)) == FAULT_NONE) {
        set_err(rep->err, sizeof rep->err, "unknown test fault '%s'", fault);
        return -1;
    }
    if (c->fault == FAULT_ILLEGAL_ACCESS && !c->ex->dl_handle) {
        struct exec_info info;
        exec_info(c->ex, &info);
        c->fault = FAULT_NONE;
        set_err(rep->err, sizeof rep->err,
                "test fault 'illegal_access' refused: illegal_access needs the CUDA "
                "executor (this worker runs the %s executor)",
                info.name);
        return -1;
    }
    return 0;
}

/*
 * prepare_plan: reads the req->count records (1..EXEC_PLAN_MAX_KERNELS,
 * checked by the caller) that follow the request, always all of them so the
 * channel stays in step whatever is refused, then prepares the plan. 0 (with
 * the plan's streams in rep->value), -1 with rep->err, or -2 when the records
 * could not be read.
 */
static int serve_prepare_plan(struct child *c, const struct wire_request *req,
                              struct wire_reply *rep)
{
    size_t count = (size_t)req->count;
    struct wire_plan_kernel *recs = malloc(count * sizeof *recs);
    struct exec_plan_kernel *kernels = calloc(count, sizeof *kernels);
    int rc = -1;
    if (!recs || !kernels) {
        /* Without a buffer the records cannot be consumed: give up the channel. */
        log_error(LOG_MODULE, "worker %ld: out of memory for a plan of %zu kernels",
                  (long)getpid(), count);
        rc = -2;
        goto out;
    }
    enum io_result io = read_all(c->ctl_fd, recs, count * sizeof *recs, 0);
    if (io != IO_OK) {
        log_warn(LOG_MODULE, "worker %ld: the plan's %zu kernels did not arrive", (long)getpid(),
                 count);
        rc = -2;
        goto out;
    }
    /* A plan replaces what was prepared, refused or not: the proxy forgets
     * its plan_streams on any failure, and so does the child its plan. */
    exec_release(c->ex);
    if (arm_fault(c, req, rep) != 0)
        goto out;
    for (size_t i = 0; i < count; i++) {
        char why[ERR_MAX - 64];
        if (config_from_wire(&recs[i].cfg, &kernels[i].cfg, why, sizeof why) != 0) {
            set_err(rep->err, sizeof rep->err, "plan kernel %zu: %s", i, why);
            goto out;
        }
        kernels[i].level = recs[i].level;
    }
    /* Levels and parameters are checked by exec_prepare_plan (exec_plan_check). */
    struct exec_plan plan = {.count = count, .kernels = kernels};
    rc = exec_prepare_plan(c->ex, &plan, req->seed, rep->err, sizeof rep->err);
    if (rc == 0)
        rep->value = exec_plan_streams(c->ex);
out:
    free(recs);
    free(kernels);
    return rc;
}

/* Serves one control request; false when the child should end (quit, poisoned,
 * or the channel is gone). *exit_status is set when it should. */
static bool serve_one(struct child *c, const struct wire_request *req, int *exit_status)
{
    struct wire_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.magic = WORKER_MAGIC;
    rep.seq = req->seq;
    rep.mem_free_rc = -1;
    int rc = -1;
    float *out = NULL;
    size_t out_bytes = 0;
    bool keep_going = true;
    struct kernel_config cfg;

    if (req->magic != WORKER_MAGIC) {
        set_err(rep.err, sizeof rep.err, "worker: malformed request");
        rep.status = STATUS_ERROR;
        write_all(c->ctl_fd, &rep, sizeof rep);
        *exit_status = 1;
        return false;
    }
    switch (req->op) {
    case OP_PREPARE:
        if (arm_fault(c, req, &rep) != 0)
            break;
        if (config_from_wire(&req->cfg, &cfg, rep.err, sizeof rep.err) != 0)
            break;
        rc = exec_prepare(c->ex, &cfg, req->seed, rep.err, sizeof rep.err);
        fill_free(c, &rep);
        break;
    case OP_PREPARE_PLAN:
        if (req->count == 0 || req->count > EXEC_PLAN_MAX_KERNELS) {
            /* The records that follow cannot be skipped: the channel is out of
             * step, so this child ends like one sent a malformed request. */
            set_err(rep.err, sizeof rep.err, "worker: a plan of %" PRIu64 " kernels (1 to %u)",
                    req->count, EXEC_PLAN_MAX_KERNELS);
            rep.status = STATUS_ERROR;
            write_all(c->ctl_fd, &rep, sizeof rep);
            *exit_status = 1;
            return false;
        }
        rc = serve_prepare_plan(c, req, &rep);
        if (rc == -2) { /* the records never came: the daemon is gone */
            *exit_status = 0;
            return false;
        }
        fill_free(c, &rep);
        break;
    case OP_RUN: {
        if (act_on_fault(c, &rep))
            break;
        if (req->count > UINT_MAX) {
            set_err(rep.err, sizeof rep.err, "run: %" PRIu64 " launches is too many",
                    req->count);
            break;
        }
        double elapsed_us = 0.0;
        rc = exec_run(c->ex, (unsigned)req->count, &elapsed_us, rep.err, sizeof rep.err);
        rep.elapsed_us = elapsed_us;
        break;
    }
    case OP_READ_OUTPUT:
        if (req->count > MAX_OUTPUT_ELEMENTS) {
            set_err(rep.err, sizeof rep.err, "read_output: %" PRIu64 " elements is too many",
                    req->count);
            break;
        }
        out_bytes = (size_t)req->count * sizeof(float);
        out = malloc(out_bytes ? out_bytes : 1);
        if (!out) {
            set_err(rep.err, sizeof rep.err, "read_output: out of memory for %" PRIu64 " floats",
                    req->count);
            break;
        }
        rc = exec_read_output(c->ex, out, (size_t)req->count, rep.err, sizeof rep.err);
        rep.value = req->count;
        fill_free(c, &rep);
        break;
    case OP_RELEASE:
        exec_release(c->ex);
        rc = 0;
        fill_free(c, &rep);
        break;
    case OP_QUIT:
        rc = 0;
        keep_going = false;
        *exit_status = 0;
        break;
    default:
        set_err(rep.err, sizeof rep.err, "worker: unknown op %u", (unsigned)req->op);
        break;
    }

    if (rep.status != STATUS_POISONED)
        rep.status = rc == 0 ? STATUS_OK : STATUS_ERROR;
    if (rep.status == STATUS_ERROR && strstr(rep.err, POISON_MARK))
        rep.status = STATUS_POISONED;
    if (rep.status == STATUS_POISONED) {
        log_error(LOG_MODULE, "worker %ld: %s; exiting so a fresh worker gets a fresh context",
                  (long)getpid(), rep.err);
        keep_going = false;
        *exit_status = WORKER_EXIT_POISONED;
    }
    if (!keep_going) /* before the reply: the parent closes the channels on reading it */
        atomic_store(&c->quitting, true);
    bool sent = write_all(c->ctl_fd, &rep, sizeof rep) == 0;
    if (sent && rep.status == STATUS_OK && out && out_bytes > 0)
        sent = write_all(c->ctl_fd, out, out_bytes) == 0;
    free(out);
    if (!sent) {
        log_warn(LOG_MODULE, "worker %ld: the daemon is gone; exiting", (long)getpid());
        *exit_status = 0;
        return false;
    }
    return keep_going;
}

static int parse_fd(const char *text)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : -1;
    if (!text || errno != 0 || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

int worker_child_main(int argc, char **argv)
{
    struct child c = {.ctl_fd = -1, .query_fd = -1};
    atomic_init(&c.quitting, false);
    const char *exec_name = "auto", *cuda_lib = "";
    if (argc < 4) {
        fprintf(stderr, "worker mode: %s CTL_FD QUERY_FD [--executor NAME] [--cuda-lib PATH] "
                "[--log-level LEVEL] [--test-faults]\n", WORKER_ARG);
        return 2;
    }
    c.ctl_fd = parse_fd(argv[2]);
    c.query_fd = parse_fd(argv[3]);
    for (int i = 4; i < argc; i++) {
        enum jp_log_level level;
        if (strcmp(argv[i], "--executor") == 0 && i + 1 < argc) {
            exec_name = argv[++i];
        } else if (strcmp(argv[i], "--cuda-lib") == 0 && i + 1 < argc) {
            cuda_lib = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc &&
                   jp_log_level_parse(argv[i + 1], &level) == 0) {
            jp_log_set_level(level);
            i++;
        } else if (strcmp(argv[i], "--test-faults") == 0) {
            c.test_faults = true;
        } else {
            fprintf(stderr, "worker mode: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (c.ctl_fd < 0 || c.query_fd < 0) {
        fprintf(stderr, "worker mode: bad descriptors '%s' '%s'\n", argv[2], argv[3]);
        return 2;
    }
    /* A parent gone is an EPIPE here, not a signal. */
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, NULL);

    struct wire_hello hello;
    memset(&hello, 0, sizeof hello);
    hello.magic = WORKER_MAGIC;
    hello.version = WORKER_PROTOCOL_VERSION;
    if (exec_open(exec_name, cuda_lib[0] ? cuda_lib : NULL, &c.ex, hello.why, sizeof hello.why,
                  hello.err, sizeof hello.err) != 0) {
        hello.status = STATUS_ERROR;
        write_all(c.ctl_fd, &hello, sizeof hello);
        close(c.ctl_fd);
        close(c.query_fd);
        return 1;
    }
    exec_info(c.ex, &hello.info);
    hello.status = STATUS_OK;
    if (write_all(c.ctl_fd, &hello, sizeof hello) != 0) {
        exec_close(c.ex);
        close(c.ctl_fd);
        close(c.query_fd);
        return 0;
    }

    pthread_t query_thread;
    int prc = pthread_create(&query_thread, NULL, query_main, &c);
    if (prc != 0)
        log_error(LOG_MODULE, "worker %ld: no query thread (%s): memory figures come from the "
                  "control replies only", (long)getpid(), strerror(prc));

    int exit_status = 0;
    struct wire_request req;
    for (;;) {
        enum io_result io = read_all(c.ctl_fd, &req, sizeof req, 0);
        if (io != IO_OK) {
            if (io != IO_EOF)
                log_warn(LOG_MODULE, "worker %ld: control channel: %s; exiting", (long)getpid(),
                         strerror(errno));
            break;
        }
        if (!serve_one(&c, &req, &exit_status))
            break;
    }
    /* The query thread ends on EOF; shutdown gives it one now. */
    atomic_store(&c.quitting, true);
    shutdown(c.query_fd, SHUT_RDWR);
    if (prc == 0)
        pthread_join(query_thread, NULL);
    exec_close(c.ex);
    close(c.ctl_fd);
    close(c.query_fd);
    return exit_status;
}
