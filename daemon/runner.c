/*
 * runner.c - the single queue worker (see runner.h).
 *
 * One thread, one database connection of its own, one measurement at a time:
 * claim the next queued job, turn its row into a kernel_config, run the
 * measurement protocol (measure.c), and commit the measurement together with
 * the job's state change (db_job_finish) - or fail the job with the reason.
 *
 * Storage failures (disk full, I/O errors) never lose a job: the runner puts
 * the job back in the queue (db_jobs_recover), marks storage as failing for
 * /v1/health, backs off and tries again later.
 *
 * Waiters are how an HTTP handler answers when its job is done. They live in a
 * list under the mutex; on a job's end they are unlinked under the lock and
 * called outside it, so a callback may take its own locks (or free its waiter)
 * without deadlocking against runner_add_waiter. A small ring of recently ended
 * jobs closes the race between inserting a job and registering its waiter.
 *
 * Holistic cost: a batch is charged the board's energy (the board-input rail's
 * energy counter of the sampler, or the sum of rails where the board has no
 * input rail) and the wall time from its first job's start to its last job's
 * end, idle between its jobs included (the settle, the queue overhead: what the
 * board really spent on the dataset). The runner keeps one mark (time, energy)
 * for the batch whose job ran last; at each job end the span since the mark is
 * added (db_batch_account) and the mark moves to now. A job of another batch
 * (or an ad-hoc measurement) in between starts a new mark, so nothing is
 * charged twice. Each batch also gets a progress line at info level at most
 * every PROGRESS_INTERVAL_NS and when it finishes; single batch jobs log at
 * debug only (an overnight sweep would otherwise fill the journal).
 *
 * A job row whose params_json carries "test_fault" (only POST /v1/measure with
 * executor.test_faults on writes one) arms that fault in the worker process
 * for the job (worker_set_test_fault); the fault is cleared when it ends.
 */
#include "runner.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../predict/graph.h"
#include "rounds.h"
#include "worker.h"

#define LOG_MODULE "runner"
#define RECENT_JOBS 256          /* ended jobs remembered for late waiters */
#define IDLE_POLL_MS 1000        /* the queue is looked at this often without a wake */
#define STORAGE_BACKOFF_MS 5000  /* pause after a failed write */
#define PROGRESS_INTERVAL_NS (60LL * 1000000000LL) /* progress line per batch */
#define PROGRESS_BATCHES 8       /* batches whose last progress line is remembered */

/* The point the next db_batch_account of `batch_id` counts from. */
struct cost_mark {
    int64_t batch_id; /* 0: no mark */
    int64_t t_ns;     /* CLOCK_MONOTONIC */
    double energy_j;  /* the sampler's board-input (or sum) total then */
};

struct progress_slot {
    int64_t batch_id;
    int64_t logged_ns; /* when the last progress line went out (0 = never) */
};

struct recent_job {
    int64_t job_id;
    enum db_job_state state;
};

struct runner {
    struct db *db;
    struct measure_ctx *mctx;
    unsigned job_timeout_s;

    pthread_t thread;
    bool thread_started;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond;
    bool wake_pending;
    bool stopping;
    bool stopped;
    struct runner_waiter *waiters;
    struct runner_task *tasks, *tasks_tail; /* FIFO, run between jobs */
    struct recent_job recent[RECENT_JOBS];
    unsigned recent_next, recent_count;
    /* Set after a failed write left a job running in the database; cleared when
     * db_jobs_recover succeeds. Only the runner thread touches them. */
    bool recover_pending;
    int64_t recover_job_id; /* the job whose write failed */
    struct runner_status status;
    /* Holistic cost and progress; only the runner thread touches them. */
    struct cost_mark mark;
    struct progress_slot progress[PROGRESS_BATCHES];
    unsigned progress_next;
    bool energy_warned;
    /* Adaptive sampling rounds (rounds.h); only the runner thread reads it
     * after runner_start. */
    struct rounds_config rounds;
    int64_t rounds_retry_ns; /* after a failed round: not before then */
};

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

static struct timespec mono_deadline_in_ms(int64_t ms)
{
    int64_t t = clock_mono_ns() + ms * 1000000LL;
    struct timespec ts = {.tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL};
    return ts;
}

static bool runner_stopping(void *ctx);

int runner_create(const char *db_path, struct measure_ctx *mctx, unsigned job_timeout_s,
                  struct runner **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!db_path || !mctx) {
        set_err(err, errlen, "runner: no database path or measurement context");
        return -1;
    }
    struct runner *r = calloc(1, sizeof *r);
    if (!r) {
        set_err(err, errlen, "runner: out of memory");
        return -1;
    }
    r->mctx = mctx;
    r->job_timeout_s = job_timeout_s;
    r->status.storage_ok = true;
    struct rounds_config rounds = {.max_attempts = 3};
    train_options_default(&rounds.train);
    runner_set_rounds_config(r, &rounds);

    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (rc == 0)
            rc = pthread_cond_init(&r->cond, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc != 0) {
        set_err(err, errlen, "runner: condition variable: %s", strerror(rc));
        free(r);
        return -1;
    }
    rc = pthread_mutex_init(&r->lock, NULL);
    if (rc != 0) {
        set_err(err, errlen, "runner: mutex: %s", strerror(rc));
        pthread_cond_destroy(&r->cond);
        free(r);
        return -1;
    }
    char e[256];
    if (db_open(db_path, &r->db, e, sizeof e) != 0) {
        set_err(err, errlen, "runner: %s", e);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

/* ---- waiters ---- */

static void remember_ended(struct runner *r, int64_t job_id, enum db_job_state state)
{
    r->recent[r->recent_next].job_id = job_id;
    r->recent[r->recent_next].state = state;
    r->recent_next = (r->recent_next + 1) % RECENT_JOBS;
    if (r->recent_count < RECENT_JOBS)
        r->recent_count++;
}

static bool find_ended(const struct runner *r, int64_t job_id, enum db_job_state *state)
{
    for (unsigned i = 0; i < r->recent_count; i++) {
        unsigned at = (r->recent_next + RECENT_JOBS - 1 - i) % RECENT_JOBS;
        if (r->recent[at].job_id == job_id) {
            *state = r->recent[at].state;
            return true;
        }
    }
    return false;
}

/* Calls each waiter of a detached list. The next pointer is read first: once
 * called, a waiter belongs to its owner again, who may free it. */
static void call_waiters(struct runner_waiter *list, enum db_job_state state)
{
    while (list) {
        struct runner_waiter *next = list->next;
        list->next = NULL;
        list->done(list->job_id, state, list->ctx);
        list = next;
    }
}

/* Records that job_id ended in state and calls its waiters. */
static void job_ended(struct runner *r, int64_t job_id, enum db_job_state state)
{
    struct runner_waiter *matched = NULL, **tail = &matched;
    pthread_mutex_lock(&r->lock);
    remember_ended(r, job_id, state);
    struct runner_waiter **pp = &r->waiters;
    while (*pp) {
        struct runner_waiter *w = *pp;
        if (w->job_id == job_id) {
            *pp = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&r->lock);
    call_waiters(matched, state);
}

void runner_add_waiter(struct runner *r, struct runner_waiter *w)
{
    if (!r || !w || !w->done)
        return;
    enum db_job_state state = DB_JOB_QUEUED;
    bool call_now;
    pthread_mutex_lock(&r->lock);
    if (r->stopped) {
        call_now = true; /* nothing will run it in this process: still queued */
    } else if (find_ended(r, w->job_id, &state)) {
        call_now = true;
    } else {
        call_now = false;
        w->next = r->waiters;
        r->waiters = w;
    }
    pthread_mutex_unlock(&r->lock);
    if (call_now) {
        w->next = NULL;
        w->done(w->job_id, state, w->ctx);
    }
}

bool runner_remove_waiter(struct runner *r, struct runner_waiter *w)
{
    if (!r || !w)
        return false;
    bool found = false;
    pthread_mutex_lock(&r->lock);
    for (struct runner_waiter **pp = &r->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* ---- status ---- */

static void note_error(struct runner *r, bool storage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(struct runner *r, bool storage, const char *fmt, ...)
{
    char text[sizeof r->status.last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->lock);
    memcpy(r->status.last_error, text, sizeof text);
    if (storage)
        r->status.storage_ok = false;
    pthread_mutex_unlock(&r->lock);
}

static void set_current_job(struct runner *r, int64_t job_id)
{
    pthread_mutex_lock(&r->lock);
    r->status.running_job = job_id != 0;
    r->status.current_job_id = job_id;
    pthread_mutex_unlock(&r->lock);
}

/* A write succeeded: storage works again; count the job. */
static void note_written(struct runner *r, enum db_job_state state)
{
    pthread_mutex_lock(&r->lock);
    r->status.storage_ok = true;
    if (state == DB_JOB_DONE)
        r->status.jobs_done++;
    else if (state == DB_JOB_FAILED)
        r->status.jobs_failed++;
    pthread_mutex_unlock(&r->lock);
}

void runner_get_status(struct runner *r, struct runner_status *out)
{
    if (!r) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&r->lock);
    *out = r->status;
    pthread_mutex_unlock(&r->lock);
}

/* ---- the thread ---- */

/* Sleeps ms unless stop is asked; wakes for new jobs only when wakeable. */
static void pause_ms(struct runner *r, int64_t ms, bool wakeable)
{
    struct timespec until = mono_deadline_in_ms(ms);
    pthread_mutex_lock(&r->lock);
    while (!r->stopping && !(wakeable && r->wake_pending)) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->lock);
}

/*
 * The job's row as a kernel_config. params_json must hold exactly the
 * catalogue's parameters, each an integer. 0, or -1 with the reason.
 */
static int job_config(const struct db_job *job, struct kernel_config *cfg, char *fault,
                      size_t faultlen, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    fault[0] = '\0';
    cfg->kernel = catalog_find(job->kernel);
    if (!cfg->kernel) {
        set_err(err, errlen, "unknown kernel '%s'", job->kernel);
        return -1;
    }
    if (dtype_parse(job->dtype, &cfg->dtype) != 0) {
        set_err(err, errlen, "unknown dtype '%s' (fp32 or fp16)", job->dtype);
        return -1;
    }
    json_error_t jerr;
    json_t *params = json_loads(job->params_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!params) {
        set_err(err, errlen, "params_json is not valid JSON (line %d, column %d): %s",
                jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(params)) {
        set_err(err, errlen, "params_json is not a JSON object");
        goto out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(params, key, value) {
        /* A test fault for the worker (executor.test_faults; api_measure.c put it there). */
        if (strcmp(key, WORKER_TEST_FAULT_MEMBER) == 0) {
            if (!json_is_string(value)) {
                set_err(err, errlen, "params_json member '%s' is not a string", key);
                goto out;
            }
            snprintf(fault, faultlen, "%s", json_string_value(value));
            continue;
        }
        if (catalog_param_index(cfg->kernel, key) < 0) {
            set_err(err, errlen, "params_json has '%s', which is not a parameter of %s", key,
                    cfg->kernel->name);
            goto out;
        }
    }
    for (unsigned i = 0; i < cfg->kernel->param_count; i++) {
        const char *name = cfg->kernel->params[i].name;
        value = json_object_get(params, name);
        if (!value) {
            set_err(err, errlen, "params_json lacks parameter '%s' of %s", name,
                    cfg->kernel->name);
            goto out;
        }
        if (!json_is_integer(value)) {
            set_err(err, errlen, "parameter '%s' of %s is not an integer", name,
                    cfg->kernel->name);
            goto out;
        }
        cfg->params[i] = (int64_t)json_integer_value(value);
    }
    rc = 0;
out:
    json_decref(params);
    return rc;
}

/* A failed write: requeue what is running, report, back off. */
static void storage_failed(struct runner *r, int64_t job_id, const char *what, const char *why)
{
    log_error(LOG_MODULE, "job %lld: %s failed: %s; the job goes back to the queue",
              (long long)job_id, what, why);
    note_error(r, true, "job %lld: %s failed: %s", (long long)job_id, what, why);
    r->recover_pending = true;
    r->recover_job_id = job_id;
}

/* Puts the job left running by a failed write back in the queue. A job that has
 * used up its attempts is failed by db_jobs_recover instead: tell its waiters. */
static void recover_jobs(struct runner *r)
{
    int64_t job_id = r->recover_job_id;
    char e[256];
    int requeued = 0, failed = 0;
    if (db_jobs_recover(r->db, &requeued, &failed, e, sizeof e) != 0) {
        log_error(LOG_MODULE, "requeueing running jobs failed: %s", e);
        note_error(r, true, "requeueing running jobs failed: %s", e);
        return;
    }
    r->recover_pending = false;
    r->recover_job_id = 0;
    log_info(LOG_MODULE, "requeued %d job(s), failed %d that used up their attempts", requeued,
             failed);
    struct db_job job;
    if (job_id != 0 && db_job_get(r->db, job_id, &job, e, sizeof e) == 1 &&
        job.state == DB_JOB_FAILED) {
        note_written(r, DB_JOB_FAILED);
        job_ended(r, job_id, DB_JOB_FAILED);
    }
}

/*
 * A write refused because the job is no longer running (canceled meanwhile) is
 * not a storage failure: the result is dropped, the job keeps the state it was
 * given, and its waiters learn it. true in that case.
 */
static bool job_changed_underneath(struct runner *r, int64_t job_id, const char *why)
{
    struct db_job now;
    char e[256];
    if (db_job_get(r->db, job_id, &now, e, sizeof e) != 1 || now.state == DB_JOB_RUNNING)
        return false;
    log_warn(LOG_MODULE, "job %lld is %s, no longer running: its result is dropped (%s)",
             (long long)job_id, db_job_state_name(now.state), why);
    if (now.state != DB_JOB_QUEUED)
        job_ended(r, job_id, now.state);
    return true;
}

/* ---- holistic cost and progress ---- */

/* The board's energy total now: the board-input rail's counter, or the sum of
 * all rails where the board has none. false when the sampler cannot say. */
static bool board_energy_j(struct runner *r, double *out)
{
    double totals[SENSOR_MAX_RAILS] = {0};
    unsigned rails = 0;
    if (!r->mctx->sampler || sampler_energy_totals(r->mctx->sampler, totals, &rails) != 0 ||
        rails == 0 || rails > SENSOR_MAX_RAILS)
        return false;
    int input = r->mctx->sensor ? r->mctx->sensor->board_input_rail : -1;
    if (input >= 0 && (unsigned)input < rails) {
        *out = totals[input];
        return true;
    }
    double sum = 0;
    for (unsigned i = 0; i < rails; i++)
        sum += totals[i];
    *out = sum;
    return true;
}

/* A job of batch_id starts: unless the mark already follows this batch (its
 * previous job ended last, so the gap since is the batch's idle time), the
 * batch's cost starts counting now. */
static void cost_job_start(struct runner *r, int64_t batch_id)
{
    if (batch_id <= 0) {
        r->mark.batch_id = 0; /* an ad-hoc job is nobody's batch cost */
        return;
    }
    if (r->mark.batch_id == batch_id)
        return;
    double e;
    if (!board_energy_j(r, &e)) {
        r->mark.batch_id = 0;
        if (!r->energy_warned)
            log_warn(LOG_MODULE, "no energy counter from the sampler: batch energy and wall "
                     "time are not recorded");
        r->energy_warned = true;
        return;
    }
    r->mark = (struct cost_mark){.batch_id = batch_id, .t_ns = clock_mono_ns(), .energy_j = e};
    /* Nothing to add yet, but started_at becomes the first job's start (set
     * once, on the first call) rather than its end. */
    char err[256];
    if (db_batch_account(r->db, batch_id, 0, 0, err, sizeof err) != 0)
        log_warn(LOG_MODULE, "batch %lld: recording its start failed: %s", (long long)batch_id,
                 err);
}

static void format_duration(double s, char *buf, size_t buflen)
{
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, buflen, "unknown");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, buflen, "%lldh%02lldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, buflen, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(buf, buflen, "%llds", t);
}

/* The progress line of a batch: at most one per PROGRESS_INTERVAL_NS while it
 * runs, and one when it has finished. */
static void batch_progress(struct runner *r, int64_t batch_id)
{
    int64_t now = clock_mono_ns();
    struct progress_slot *slot = NULL;
    for (unsigned i = 0; i < PROGRESS_BATCHES; i++)
        if (r->progress[i].batch_id == batch_id)
            slot = &r->progress[i];
    if (!slot) {
        slot = &r->progress[r->progress_next];
        r->progress_next = (r->progress_next + 1) % PROGRESS_BATCHES;
        /* The first job of a batch starts its interval: a line a minute in. */
        *slot = (struct progress_slot){.batch_id = batch_id, .logged_ns = now};
    }
    struct db_batch b;
    char e[256];
    if (db_batch_get(r->db, batch_id, &b, e, sizeof e) != 1) {
        log_debug(LOG_MODULE, "batch %lld: no progress figures: %s", (long long)batch_id, e);
        return;
    }
    int64_t done = b.counts[DB_JOB_DONE], failed = b.counts[DB_JOB_FAILED],
            canceled = b.counts[DB_JOB_CANCELED];
    int64_t left = b.counts[DB_JOB_QUEUED] + b.counts[DB_JOB_RUNNING];
    int64_t total = done + failed + canceled + left;
    bool finished = left == 0;
    if (!finished && now - slot->logged_ns < PROGRESS_INTERVAL_NS)
        return;
    slot->logged_ns = now;
    double per_min = b.wall_s > 0 ? (double)(done + failed) * 60.0 / b.wall_s : 0;
    if (finished) {
        char took[32];
        format_duration(b.wall_s, took, sizeof took);
        log_info(LOG_MODULE,
                 "batch %lld finished: %lld/%lld done, %lld failed, %lld canceled in %s"
                 " (%.1f/min), %.1f J",
                 (long long)batch_id, (long long)done, (long long)total, (long long)failed,
                 (long long)canceled, took, per_min, b.energy_j);
        slot->batch_id = 0;
        return;
    }
    char eta[32];
    format_duration(per_min > 0 ? (double)left / per_min * 60.0 : -1, eta, sizeof eta);
    log_info(LOG_MODULE,
             "batch %lld: %lld/%lld done, %lld failed, %.1f/min, ETA %s, %.1f J so far",
             (long long)batch_id, (long long)done, (long long)total, (long long)failed, per_min,
             eta, b.energy_j);
}

/* A job of batch_id ended (its state written): the span since the mark -
 * this job and the idle before it - is added to the batch, then progress. */
static void cost_job_end(struct runner *r, int64_t batch_id)
{
    if (batch_id <= 0)
        return;
    double e;
    if (r->mark.batch_id == batch_id && board_energy_j(r, &e)) {
        int64_t now = clock_mono_ns();
        double energy_j = e - r->mark.energy_j, wall_s = (double)(now - r->mark.t_ns) / 1e9;
        char err[256];
        if (energy_j < 0)
            energy_j = 0; /* the counter only grows; guard against a restarted sampler */
        if (db_batch_account(r->db, batch_id, energy_j, wall_s, err, sizeof err) == 0) {
            r->mark.t_ns = now;
            r->mark.energy_j = e;
        } else {
            /* The mark stays: the next job end of the batch adds this span too. */
            log_warn(LOG_MODULE, "batch %lld: recording %.3f J over %.3f s failed: %s",
                     (long long)batch_id, energy_j, wall_s, err);
        }
    }
    batch_progress(r, batch_id);
}

/* Runs one claimed job to its end. false when its result could not be written
 * (the job is back in the queue and the caller backs off). */
/* A graph job's plan: the stored graph's fused kernels, unmerged (what the
 * network runs), in dependency order with their levels. *out is malloc'd. */
static int job_plan(struct runner *r, const struct db_job *job, struct exec_plan_kernel **out,
                    size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    struct db_graph g = {0};
    char e[256];
    int found = db_graph_get(r->db, job->graph_id, &g, e, sizeof e);
    if (found < 0) {
        set_err(err, errlen, "reading graph %lld: %s", (long long)job->graph_id, e);
        return -1;
    }
    if (found == 0) {
        set_err(err, errlen, "graph %lld is not stored", (long long)job->graph_id);
        return -1;
    }
    json_error_t jerr;
    json_t *body = json_loads(g.graph_json, JSON_REJECT_DUPLICATES, &jerr);
    db_graph_clear(&g);
    if (!body) {
        set_err(err, errlen, "graph %lld is not valid JSON: %s", (long long)job->graph_id,
                jerr.text);
        return -1;
    }
    struct graph_options gopt = {.merge = false, .max_nodes = UINT32_MAX};
    struct graph_plan plan;
    struct graph_error gerr;
    int rc = graph_plan_build(body, &gopt, &plan, &gerr);
    json_decref(body);
    if (rc != 0) {
        set_err(err, errlen, "graph %lld: %s", (long long)job->graph_id, gerr.detail);
        return -1;
    }
    if (plan.count == 0) {
        set_err(err, errlen, "graph %lld has no kernels to run", (long long)job->graph_id);
        graph_plan_free(&plan);
        return -1;
    }
    if (graph_plan_exec_kernels(&plan, out, NULL) != 0) {
        set_err(err, errlen, "out of memory for the graph's %zu kernels", plan.count);
        graph_plan_free(&plan);
        return -1;
    }
    *count = plan.count;
    graph_plan_free(&plan);
    return 0;
}

/* Measures the job into m: a kernel configuration, or a whole graph. */
static bool measure_job(struct runner *r, const struct db_job *job, struct db_measurement *m,
                        char *reason, size_t reasonlen)
{
    unsigned repeats = job->repeats > 0 ? (unsigned)job->repeats : 0;
    if (job->graph_id <= 0) {
        struct kernel_config cfg;
        char fault[16];
        if (job_config(job, &cfg, fault, sizeof fault, reason, reasonlen) != 0)
            return false;
        if (fault[0] && worker_set_test_fault(r->mctx->exec, fault, reason, reasonlen) != 0)
            return false;
        bool ok = measure_run(r->mctx, &cfg, repeats, m, reason, reasonlen) == 0;
        if (fault[0])
            worker_set_test_fault(r->mctx->exec, NULL, NULL, 0);
        return ok;
    }
    struct exec_plan_kernel *kernels = NULL;
    size_t count = 0;
    if (job_plan(r, job, &kernels, &count, reason, reasonlen) != 0)
        return false;
    struct exec_plan plan = {.count = count, .kernels = kernels};
    bool ok = measure_run_plan(r->mctx, &plan, job->graph_id, job->config_key, job->params_json,
                               repeats, m, reason, reasonlen) == 0;
    free(kernels);
    return ok;
}

static bool run_job(struct runner *r, const struct db_job *job)
{
    char reason[256], e[256];
    struct db_measurement *m = NULL;
    bool ok = false;

    set_current_job(r, job->id);
    cost_job_start(r, job->batch_id);
    /* Batch jobs at debug: the batch's progress line says how it goes. */
    enum jp_log_level job_level = job->batch_id > 0 ? JP_LOG_DEBUG : JP_LOG_INFO;
    jp_log(job_level, LOG_MODULE, "job %lld: %s (attempt %d)", (long long)job->id,
           job->config_key, job->attempts);
    m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(reason, sizeof reason, "out of memory for the measurement");
    } else {
        r->mctx->deadline_ns =
            r->job_timeout_s ? clock_mono_ns() + (int64_t)r->job_timeout_s * 1000000000LL : 0;
        m->job_id = job->id;
        ok = measure_job(r, job, m, reason, sizeof reason);
        r->mctx->deadline_ns = 0;
        m->job_id = job->id;
    }

    enum db_job_state state;
    bool wrote;
    if (ok) {
        int64_t measurement_id = 0;
        wrote = db_job_finish(r->db, job->id, m, &measurement_id, e, sizeof e) == 0;
        state = DB_JOB_DONE;
        if (wrote)
            jp_log(job_level, LOG_MODULE, "job %lld: done, measurement %lld",
                   (long long)job->id, (long long)measurement_id);
    } else {
        wrote = db_job_fail(r->db, job->id, reason, e, sizeof e) == 0;
        state = DB_JOB_FAILED;
        if (wrote) {
            log_warn(LOG_MODULE, "job %lld failed: %s", (long long)job->id, reason);
            note_error(r, false, "job %lld failed: %s", (long long)job->id, reason);
        }
    }
    set_current_job(r, 0);
    if (wrote) {
        note_written(r, state);
        cost_job_end(r, job->batch_id);
        job_ended(r, job->id, state);
    } else if (!job_changed_underneath(r, job->id, e)) {
        storage_failed(r, job->id, ok ? "storing the measurement" : "recording the failure", e);
        recover_jobs(r);
        free(m);
        return false;
    }
    free(m);
    return true;
}

static bool runner_stopping(void *ctx)
{
    struct runner *r = ctx;
    pthread_mutex_lock(&r->lock);
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return stopping;
}

void runner_set_rounds_config(struct runner *r, const struct rounds_config *cfg)
{
    if (cfg)
        r->rounds = *cfg;
    r->rounds.should_stop = runner_stopping;
    r->rounds.ctx = r;
}

/* The next round of an adaptive batch whose jobs have all ended, if any:
 * true when one ran (committed or not), so the loop looks at the queue again. */
static bool run_ready_round(struct runner *r)
{
    if (r->rounds_retry_ns && clock_mono_ns() < r->rounds_retry_ns)
        return false;
    char e[512];
    int64_t *ids = NULL;
    size_t n = 0;
    if (db_adaptive_batches_ready(r->db, &ids, &n, e, sizeof e) != 0) {
        log_error(LOG_MODULE, "looking for adaptive batches to refine failed: %s", e);
        note_error(r, true, "looking for adaptive batches to refine failed: %s", e);
        r->rounds_retry_ns = clock_mono_ns() + STORAGE_BACKOFF_MS * 1000000LL;
        return false;
    }
    if (n == 0) {
        free(ids);
        return false;
    }
    int64_t batch_id = ids[0];
    free(ids);
    size_t queued = 0;
    int rc = rounds_run_next(r->db, batch_id, &r->rounds, &queued, e, sizeof e);
    if (rc < 0) {
        log_error(LOG_MODULE, "adaptive batch %lld: %s; trying again in %d s",
                  (long long)batch_id, e, STORAGE_BACKOFF_MS / 1000);
        note_error(r, true, "adaptive batch %lld: %s", (long long)batch_id, e);
        r->rounds_retry_ns = clock_mono_ns() + STORAGE_BACKOFF_MS * 1000000LL;
        return false;
    }
    r->rounds_retry_ns = 0;
    return rc == 0;
}

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    char e[256];
    log_info(LOG_MODULE, "runner started");
    for (;;) {
        pthread_mutex_lock(&r->lock);
        bool stopping = r->stopping;
        r->wake_pending = false; /* a wake from now on is seen by the wait below */
        pthread_mutex_unlock(&r->lock);
        if (stopping)
            break;

        if (r->recover_pending) {
            recover_jobs(r);
            if (r->recover_pending) {
                pause_ms(r, STORAGE_BACKOFF_MS, false);
                continue;
            }
        }

        /* Tasks (training) between jobs: never during a window. */
        pthread_mutex_lock(&r->lock);
        struct runner_task *task = r->tasks;
        if (task) {
            r->tasks = task->next;
            if (!r->tasks)
                r->tasks_tail = NULL;
            task->next = NULL;
        }
        pthread_mutex_unlock(&r->lock);
        if (task) {
            task->run(r->db, task->ctx);
            continue;
        }
        /* An adaptive batch's round, as soon as its jobs have ended: before
         * other batches' jobs, so its proposals queue behind what is there. */
        if (run_ready_round(r))
            continue;

        struct db_job job;
        int got = db_job_claim_next(r->db, &job, e, sizeof e);
        if (got < 0) {
            log_error(LOG_MODULE, "claiming the next job failed: %s", e);
            note_error(r, true, "claiming the next job failed: %s", e);
            pause_ms(r, STORAGE_BACKOFF_MS, false);
            continue;
        }
        if (got == 0) {
            pause_ms(r, IDLE_POLL_MS, true);
            continue;
        }
        if (!run_job(r, &job))
            pause_ms(r, STORAGE_BACKOFF_MS, false);
    }
    log_info(LOG_MODULE, "runner stopped");
    return NULL;
}

int runner_start(struct runner *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->lock);
    bool refused = r->thread_started || r->stopped;
    pthread_mutex_unlock(&r->lock);
    if (refused) {
        set_err(err, errlen, "runner: already started or stopped");
        return -1;
    }
    /* Jobs a previous run left running (a crash mid-measurement) go back to the
     * queue before anything is claimed. */
    char e[256];
    int requeued = 0, failed = 0;
    if (db_jobs_recover(r->db, &requeued, &failed, e, sizeof e) != 0) {
        set_err(err, errlen, "runner: requeueing interrupted jobs: %s", e);
        return -1;
    }
    if (requeued || failed)
        log_info(LOG_MODULE, "%d interrupted job(s) requeued, %d failed after too many attempts",
                 requeued, failed);
    int rc = pthread_create(&r->thread, NULL, runner_main, r);
    if (rc != 0) {
        set_err(err, errlen, "runner: starting the thread: %s", strerror(rc));
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    r->thread_started = true;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void runner_wake(struct runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->wake_pending = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void runner_stop(struct runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    bool join = r->thread_started;
    r->thread_started = false;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (join)
        pthread_join(r->thread, NULL);

    pthread_mutex_lock(&r->lock);
    r->stopped = true;
    struct runner_waiter *pending = r->waiters;
    r->waiters = NULL;
    struct runner_task *tasks = r->tasks;
    r->tasks = r->tasks_tail = NULL;
    pthread_mutex_unlock(&r->lock);
    call_waiters(pending, DB_JOB_QUEUED);
    while (tasks) {
        struct runner_task *next = tasks->next;
        tasks->next = NULL;
        tasks->run(NULL, tasks->ctx); /* canceled */
        tasks = next;
    }
}

int runner_submit_task(struct runner *r, struct runner_task *t)
{
    assert(t && t->run);
    pthread_mutex_lock(&r->lock);
    if (r->stopping || r->stopped) {
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    t->next = NULL;
    if (r->tasks_tail)
        r->tasks_tail->next = t;
    else
        r->tasks = t;
    r->tasks_tail = t;
    r->wake_pending = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void runner_destroy(struct runner *r)
{
    if (!r)
        return;
    runner_stop(r);
    db_close(r->db);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
