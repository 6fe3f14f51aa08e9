/*
 * test_db_jobs.c - the job queue: insert and validation, claim order (priority,
 * then id), failing, counts, concurrent claimers never sharing a job, and crash
 * safety: a process that dies holding a running job leaves it for db_jobs_recover,
 * which requeues it or fails it once it has been interrupted max_attempts times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "db/db.h"

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-jobs-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/jetprof.db", fx->dir);
    if (db_open(fx->path, &fx->db, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    db_close(fx->db);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static int64_t insert(struct db *db, int priority, int max_attempts, int batch)
{
    struct db_job job;
    char err[512];
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "linear_relu");
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":%d,\"in\":256,\"out\":512}",
             batch);
    snprintf(job.config_key, sizeof job.config_key, "linear_relu:fp32:batch=%d,in=256,out=512",
             batch);
    job.priority = priority;
    job.max_attempts = max_attempts;
    if (db_job_insert(db, &job, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_true(job.id > 0);
    assert_int_equal(job.state, DB_JOB_QUEUED);
    return job.id;
}

static void test_state_names(void **state)
{
    (void)state;
    for (int s = DB_JOB_QUEUED; s <= DB_JOB_CANCELED; s++) {
        enum db_job_state back;
        assert_int_equal(db_job_state_parse(db_job_state_name((enum db_job_state)s), &back), 0);
        assert_int_equal(back, s);
    }
    enum db_job_state out;
    assert_int_equal(db_job_state_parse("finished", &out), -1);
    assert_int_equal(db_job_state_parse(NULL, &out), -1);
    assert_string_equal(db_job_state_name(DB_JOB_RUNNING), "running");
}

static void test_insert_validation(void **state)
{
    struct fixture *fx = *state;
    struct db_job job;
    char err[512];

    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "linear");
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":1,\"in\":1,\"out\":1}");
    snprintf(job.config_key, sizeof job.config_key, "linear:fp32:batch=1,in=1,out=1");
    job.max_attempts = 0;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_attempts"));

    job.max_attempts = 3;
    snprintf(job.params_json, sizeof job.params_json, "[1,2]");
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "params_json"));
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":");
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "params_json"));

    /* A batch that does not exist is refused by the foreign key. */
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":1,\"in\":1,\"out\":1}");
    job.batch_id = 999;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    assert_non_null(strstr(err, fx->path));

    job.batch_id = 0;
    job.kernel[0] = '\0';
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "kernel"));

    int64_t counts[5];
    assert_int_equal(db_job_counts(fx->db, counts, err, sizeof err), 0);
    assert_int_equal(counts[DB_JOB_QUEUED], 0);

    /* ad-hoc: batch_id 0 is stored as NULL and read back as 0 */
    int64_t id = insert(fx->db, DB_PRIORITY_ADHOC, 3, 7);
    struct db_job got;
    assert_int_equal(db_job_get(fx->db, id, &got, err, sizeof err), 1);
    assert_int_equal(got.batch_id, 0);
    assert_int_equal(got.priority, DB_PRIORITY_ADHOC);
    assert_int_equal(got.max_attempts, 3);
    assert_int_equal(got.attempts, 0);
    assert_int_equal(got.state, DB_JOB_QUEUED);
    assert_string_equal(got.params_json, "{\"batch\":7,\"in\":256,\"out\":512}");
    assert_string_equal(got.config_key, "linear_relu:fp32:batch=7,in=256,out=512");
    assert_true(strlen(got.created_at) == 24 && got.created_at[23] == 'Z');
    assert_string_equal(got.started_at, "");
    assert_int_equal(db_job_get(fx->db, id + 100, &got, err, sizeof err), 0);
}

static void test_claim_order(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_job job;

    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 0);

    int64_t a = insert(fx->db, DB_PRIORITY_SWEEP, 3, 1);
    int64_t b = insert(fx->db, DB_PRIORITY_ADHOC, 3, 2);
    int64_t c = insert(fx->db, DB_PRIORITY_SWEEP, 3, 3);
    int64_t d = insert(fx->db, DB_PRIORITY_ADHOC, 3, 4);
    int64_t e = insert(fx->db, -5, 3, 5);
    const int64_t want[] = {b, d, a, c, e};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
        assert_int_equal(job.id, want[i]);
        assert_int_equal(job.state, DB_JOB_RUNNING);
        assert_int_equal(job.attempts, 1);
        assert_true(job.started_at[0] != '\0');
    }
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 0);

    int64_t counts[5];
    assert_int_equal(db_job_counts(fx->db, counts, err, sizeof err), 0);
    assert_int_equal(counts[DB_JOB_QUEUED], 0);
    assert_int_equal(counts[DB_JOB_RUNNING], 5);
}

static void test_fail_and_counts(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_job job;
    int64_t first = insert(fx->db, 0, 3, 1);
    int64_t second = insert(fx->db, 0, 3, 2);
    insert(fx->db, 0, 3, 3);

    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.id, first);
    assert_int_equal(db_job_fail(fx->db, first, "worker died: CUDA error 700", err, sizeof err),
                     0);
    assert_int_equal(db_job_get(fx->db, first, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_FAILED);
    assert_string_equal(job.error, "worker died: CUDA error 700");
    assert_true(job.finished_at[0] != '\0');

    /* Only a running job can fail. */
    assert_int_equal(db_job_fail(fx->db, first, "again", err, sizeof err), -1);
    assert_non_null(strstr(err, "failed, not running"));
    assert_int_equal(db_job_fail(fx->db, second, "queued", err, sizeof err), -1);
    assert_non_null(strstr(err, "queued, not running"));
    assert_int_equal(db_job_fail(fx->db, 4242, "nope", err, sizeof err), -1);
    assert_non_null(strstr(err, "no such job"));
    assert_int_equal(db_job_get(fx->db, first, &job, err, sizeof err), 1);
    assert_string_equal(job.error, "worker died: CUDA error 700");

    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.id, second);

    int64_t counts[5];
    assert_int_equal(db_job_counts(fx->db, counts, err, sizeof err), 0);
    assert_int_equal(counts[DB_JOB_QUEUED], 1);
    assert_int_equal(counts[DB_JOB_RUNNING], 1);
    assert_int_equal(counts[DB_JOB_DONE], 0);
    assert_int_equal(counts[DB_JOB_FAILED], 1);
    assert_int_equal(counts[DB_JOB_CANCELED], 0);
}

/* ---- concurrent claimers on separate connections ---- */

#define RACE_JOBS 60

struct claimer {
    const char *path;
    int64_t ids[RACE_JOBS];
    int count;
    int errors;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct db *db;
    char err[512];
    if (db_open(c->path, &db, err, sizeof err) != 0) {
        c->errors++;
        return NULL;
    }
    for (;;) {
        struct db_job job;
        int r = db_job_claim_next(db, &job, err, sizeof err);
        if (r == 0)
            break;
        if (r < 0 || c->count >= RACE_JOBS) {
            c->errors++;
            break;
        }
        c->ids[c->count++] = job.id;
    }
    db_close(db);
    return NULL;
}

static void test_concurrent_claims(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < RACE_JOBS; i++)
        insert(fx->db, i % 3, 3, i + 1);

    struct claimer a = {.path = fx->path}, b = {.path = fx->path};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, claim_all, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, claim_all, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.errors, 0);
    assert_int_equal(b.errors, 0);
    assert_int_equal(a.count + b.count, RACE_JOBS);

    /* Every job claimed exactly once. */
    int seen[RACE_JOBS + 1] = {0};
    for (int i = 0; i < a.count; i++)
        seen[a.ids[i]]++;
    for (int i = 0; i < b.count; i++)
        seen[b.ids[i]]++;
    for (int id = 1; id <= RACE_JOBS; id++)
        assert_int_equal(seen[id], 1);
}

/* ---- crash safety ---- */

/* A child process opens its own connection, claims one job and dies without
 * finishing it, as a daemon killed mid-measurement would. Returns the claimed id. */
static int64_t claim_in_dying_child(const char *path)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        struct db *db;
        struct db_job job;
        char err[512];
        int64_t id = -1;
        if (db_open(path, &db, err, sizeof err) == 0 &&
            db_job_claim_next(db, &job, err, sizeof err) == 1)
            id = job.id;
        if (write(pipefd[1], &id, sizeof id) != (ssize_t)sizeof id)
            _exit(2);
        _exit(id > 0 ? 0 : 1); /* no db_close, no finish: the process just dies */
    }
    close(pipefd[1]);
    int64_t id = -1;
    assert_int_equal(read(pipefd[0], &id, sizeof id), (ssize_t)sizeof id);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return id;
}

static void test_crash_recovery(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t id = insert(fx->db, 0, 3, 1);
    int64_t other = insert(fx->db, 0, 3, 2);

    /* SQLite connections must not cross fork(): close ours around it. */
    db_close(fx->db);
    fx->db = NULL;
    assert_int_equal(claim_in_dying_child(fx->path), id);
    assert_int_equal(db_open(fx->path, &fx->db, err, sizeof err), 0);

    struct db_job job;
    assert_int_equal(db_job_get(fx->db, id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_RUNNING); /* the claim was durable */
    assert_int_equal(job.attempts, 1);

    int requeued = -1, failed = -1;
    assert_int_equal(db_jobs_recover(fx->db, &requeued, &failed, err, sizeof err), 0);
    assert_int_equal(requeued, 1);
    assert_int_equal(failed, 0);
    assert_int_equal(db_job_get(fx->db, id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_QUEUED);
    assert_int_equal(job.attempts, 1); /* kept */
    assert_string_equal(job.started_at, "");
    assert_int_equal(db_job_get(fx->db, other, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_QUEUED);
    assert_int_equal(job.attempts, 0);

    /* Nothing left running: recovery is a no-op, and NULL outputs are fine. */
    assert_int_equal(db_jobs_recover(fx->db, NULL, NULL, err, sizeof err), 0);

    /* The requeued job keeps its place at the front (same priority, lower id). */
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.id, id);
    assert_int_equal(job.attempts, 2);
}

static void test_recover_gives_up(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_job job;
    int64_t once = insert(fx->db, 10, 1, 1);
    int64_t twice = insert(fx->db, 5, 2, 2);

    /* once: a single interrupted attempt exhausts max_attempts = 1 */
    db_close(fx->db);
    fx->db = NULL;
    assert_int_equal(claim_in_dying_child(fx->path), once);
    assert_int_equal(claim_in_dying_child(fx->path), twice);
    assert_int_equal(db_open(fx->path, &fx->db, err, sizeof err), 0);

    int requeued = -1, failed = -1;
    assert_int_equal(db_jobs_recover(fx->db, &requeued, &failed, err, sizeof err), 0);
    assert_int_equal(requeued, 1);
    assert_int_equal(failed, 1);
    assert_int_equal(db_job_get(fx->db, once, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_FAILED);
    assert_string_equal(job.error,
                        "interrupted 1 times (the daemon stopped during the measurement)");
    assert_true(job.finished_at[0] != '\0');

    /* twice: second interruption reaches max_attempts = 2 */
    db_close(fx->db);
    fx->db = NULL;
    assert_int_equal(claim_in_dying_child(fx->path), twice);
    assert_int_equal(db_open(fx->path, &fx->db, err, sizeof err), 0);
    assert_int_equal(db_jobs_recover(fx->db, &requeued, &failed, err, sizeof err), 0);
    assert_int_equal(requeued, 0);
    assert_int_equal(failed, 1);
    assert_int_equal(db_job_get(fx->db, twice, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_FAILED);
    assert_int_equal(job.attempts, 2);
    assert_string_equal(job.error,
                        "interrupted 2 times (the daemon stopped during the measurement)");

    int64_t counts[5];
    assert_int_equal(db_job_counts(fx->db, counts, err, sizeof err), 0);
    assert_int_equal(counts[DB_JOB_FAILED], 2);
    assert_int_equal(counts[DB_JOB_RUNNING], 0);
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 0);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test_setup_teardown(test_insert_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_gives_up, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
