/*
 * runner.h - the single queue worker: the only path to the executor.
 *
 * One thread claims the next queued job from the database, runs the measurement
 * protocol, and commits the measurement with the job's state change in one
 * transaction. One measurement at a time, ever. HTTP handlers enqueue through the
 * database and call runner_wake(); a handler that wants to answer when its job
 * is done registers a waiter and is called back from the runner thread.
 */
#ifndef JETPROF_RUNNER_H
#define JETPROF_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "../db/db.h"
#include "measure.h"

struct runner;

/* Called on the runner thread when job_id reaches done or failed (or with
 * state DB_JOB_QUEUED when the runner stops before running it). Must not block. */
typedef void (*runner_done_fn)(int64_t job_id, enum db_job_state state, void *ctx);

struct runner_waiter {
    int64_t job_id;
    runner_done_fn done;
    void *ctx;
    struct runner_waiter *next; /* owned by the runner's list */
};

/* Opens its own database connection at db_path. Does not start the thread. */
int runner_create(const char *db_path, struct measure_ctx *mctx, unsigned job_timeout_s,
                  struct runner **out, char *err, size_t errlen);
int runner_start(struct runner *r, char *err, size_t errlen);
/* Wake the thread: a job was queued. */
void runner_wake(struct runner *r);
/* Register a waiter (caller keeps the struct alive until it is called or removed).
 * If the job is already finished, done() is called before this returns. */
void runner_add_waiter(struct runner *r, struct runner_waiter *w);
/* Remove a waiter that has not been called; returns true if it was still pending. */
bool runner_remove_waiter(struct runner *r, struct runner_waiter *w);
/* Finish the job in progress (its window cannot be abandoned half-way without
 * losing it; a job past job_timeout_s is failed), call every pending waiter with
 * DB_JOB_QUEUED, stop and join. */
void runner_stop(struct runner *r);
void runner_destroy(struct runner *r);

/*
 * Work that must not overlap a measurement window (training): run() is called
 * on the runner thread, with the runner's own database connection, after the
 * job in progress ends and before the next one is claimed, tasks in the order
 * submitted. When the runner stops first, run() is called from runner_stop
 * with db NULL (canceled). The caller keeps the struct alive until run() has
 * been called; run() must not call back into the runner.
 */
struct runner_task {
    void (*run)(struct db *db, void *ctx);
    void *ctx;
    struct runner_task *next; /* owned by the runner's list */
};
/* 0, or -1 when the runner is stopping or stopped (nothing will run it). */
int runner_submit_task(struct runner *r, struct runner_task *t);

/*
 * Adaptive sampling batches (rounds.h): between jobs, the runner runs the next
 * round of every open adaptive batch whose jobs have all ended. cfg's training
 * options and max_attempts are copied (its should_stop is replaced by the
 * runner's own); without this call the defaults of a zeroed rounds_config are
 * used. Call before runner_start.
 */
struct rounds_config;
void runner_set_rounds_config(struct runner *r, const struct rounds_config *cfg);

struct runner_status {
    bool running_job;
    int64_t current_job_id;
    uint64_t jobs_done, jobs_failed;
    bool storage_ok;         /* false after a write failed; cleared when one succeeds */
    char last_error[256];
};
void runner_get_status(struct runner *r, struct runner_status *out);

#endif
