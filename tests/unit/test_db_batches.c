/*
 * test_db_batches.c - batches and the job operations behind /v1/jobs: schema
 * migration 2 (a version-1 database upgrades to the newest and keeps its rows), a batch and
 * its jobs inserted in one transaction (nothing left behind when one job is
 * refused), duplicates skipped by config_key against queued, running, done and
 * measured configurations unless repeat_existing, counts per state, canceling
 * the rest of a batch and one queued job, the job list's filters and paging,
 * and db_batch_account's sums, started_at and finished_at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"

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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-batches-XXXXXX");
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

static void make_job(struct db_job *job, int batch)
{
    memset(job, 0, sizeof *job);
    snprintf(job->kernel, sizeof job->kernel, "linear");
    snprintf(job->dtype, sizeof job->dtype, "fp32");
    snprintf(job->params_json, sizeof job->params_json, "{\"batch\":%d,\"in\":8,\"out\":8}",
             batch);
    snprintf(job->config_key, sizeof job->config_key, "linear:fp32:batch=%d,in=8,out=8", batch);
    job->priority = DB_PRIORITY_SWEEP;
    job->max_attempts = 3;
}

static int64_t query_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Inserts a batch of jobs for batch sizes values[0..n). */
static int64_t insert_batch(struct db *db, const int *values, size_t n, bool repeat_existing,
                            size_t *inserted, size_t *dups)
{
    struct db_job jobs[16];
    char err[512] = "";
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        make_job(&jobs[i], values[i]);
    int64_t id = 0;
    assert_int_equal(db_batch_insert(db, "grid", "{}", "fp32", 2, 0, jobs, n, repeat_existing,
                                     &id, inserted, dups, err, sizeof err),
                     0);
    assert_true(id > 0);
    return id;
}

/* ---- migration ---- */

static void test_v1_database_upgrades(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    assert_true(db_schema_latest() >= 2);
    assert_int_equal(db_schema_version(fx->db), db_schema_latest());
    db_close(fx->db);
    fx->db = NULL;

    /* A version-1 database, as the first jetprof left it, with a batch and a job in it. */
    snprintf(fx->path, sizeof fx->path, "%s/v1.db", fx->dir);
    assert_int_equal(db_open_version(fx->path, 1, &fx->db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(fx->db), 1);
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "INSERT INTO batches (id, created_at, kind, spec_json, dtype)"
                                  " VALUES (7, '2026-01-01T00:00:00.000Z', 'grid', '{}', 'fp32');"
                                  "INSERT INTO jobs (batch_id, kernel, dtype, params_json,"
                                  " config_key, max_attempts, created_at) VALUES (7, 'linear',"
                                  " 'fp32', '{}', 'linear:fp32:x', 3, '2026-01-01T00:00:00Z');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    db_close(fx->db);
    fx->db = NULL;

    assert_int_equal(db_open(fx->path, &fx->db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(fx->db), db_schema_latest());
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, 7, &b, err, sizeof err), 1);
    assert_string_equal(b.kind, "grid");
    assert_int_equal(b.duplicates, 0);
    assert_false(b.accounted);
    assert_string_equal(b.started_at, "");
    assert_string_equal(b.finished_at, "");
    assert_int_equal(b.counts[DB_JOB_QUEUED], 1);
    assert_int_equal(query_int(fx->db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                       " AND name = 'jobs_config_key'"),
                     1);
}

/* ---- insert, duplicates ---- */

static void test_insert_and_counts(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    size_t ins = 0, dup = 99;
    int v[] = {1, 2, 3};
    int64_t id = insert_batch(fx->db, v, 3, false, &ins, &dup);
    assert_int_equal(ins, 3);
    assert_int_equal(dup, 0);

    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_int_equal(b.id, id);
    assert_string_equal(b.kind, "grid");
    assert_string_equal(b.dtype, "fp32");
    assert_int_equal(b.repeats, 2);
    assert_int_equal(b.device_id, 0);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 3);
    assert_int_equal(b.counts[DB_JOB_DONE], 0);
    assert_true(b.created_at[0] != '\0');

    /* The jobs carry the batch and the priority of a sweep. */
    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.batch_id, id);
    assert_int_equal(job.priority, DB_PRIORITY_SWEEP);
    assert_int_equal(db_job_fail(fx->db, job.id, "test", err, sizeof err), 0);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 2);
    assert_int_equal(b.counts[DB_JOB_FAILED], 1);

    assert_int_equal(db_batch_get(fx->db, id + 100, &b, err, sizeof err), 0);
}

static void test_duplicates_skipped(void **state)
{
    struct fixture *fx = *state;
    size_t ins = 0, dup = 0;
    int first[] = {1, 2};
    insert_batch(fx->db, first, 2, false, &ins, &dup);
    assert_int_equal(ins, 2);

    /* 2 is queued already, 5 appears twice in the same list: one of each is a duplicate. */
    int second[] = {2, 5, 5, 6};
    int64_t id = insert_batch(fx->db, second, 4, false, &ins, &dup);
    assert_int_equal(ins, 2);
    assert_int_equal(dup, 2);
    struct db_batch b;
    char err[512] = "";
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_int_equal(b.duplicates, 2);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 2);

    /* repeat_existing queues every one. */
    insert_batch(fx->db, second, 4, true, &ins, &dup);
    assert_int_equal(ins, 4);
    assert_int_equal(dup, 0);

    /* A failed or canceled config is not a duplicate: it was never measured. */
    assert_int_equal(sqlite3_exec(fx->db->conn, "UPDATE jobs SET state = 'canceled'", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    int again[] = {1, 2};
    insert_batch(fx->db, again, 2, false, &ins, &dup);
    assert_int_equal(ins, 2);
    assert_int_equal(dup, 0);

    /* A measured config (a measurements row, e.g. from an ad-hoc measurement) is. */
    assert_int_equal(sqlite3_exec(fx->db->conn, "UPDATE jobs SET state = 'canceled'", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(fx->db->conn,
                     "INSERT INTO measurements (uid, kernel, dtype, params_json, config_key,"
                     " executor, sensor, simulated, launches, repeats, latency_us, latency_us_min,"
                     " latency_us_max, latency_cv, window_ms, settle_ms, energy_rail, energy_uj,"
                     " dynamic_energy_uj, power_mw, quality, created_at) VALUES ('u1', 'linear',"
                     " 'fp32', '{}', 'linear:fp32:batch=1,in=8,out=8', 'cpu', 'sim', 1, 1, 1, 1,"
                     " 1, 1, 0, 1, 1, 'VDD_IN', 1, 1, 1, 'ok', 'now')",
                     NULL, NULL, NULL),
        SQLITE_OK);
    insert_batch(fx->db, again, 2, false, &ins, &dup);
    assert_int_equal(ins, 1);
    assert_int_equal(dup, 1);

    /* Everything a duplicate: the batch exists with no jobs. */
    int only[] = {2};
    id = insert_batch(fx->db, only, 1, false, &ins, &dup);
    assert_int_equal(ins, 0);
    assert_int_equal(dup, 1);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
}

static void test_insert_is_one_transaction(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    struct db_job jobs[3];
    make_job(&jobs[0], 1);
    make_job(&jobs[1], 2);
    make_job(&jobs[2], 3);
    jobs[2].max_attempts = 0; /* refused by db_job_insert */
    int64_t id = 0;
    size_t ins = 0, dup = 0;
    assert_int_equal(db_batch_insert(fx->db, "configs", "{}", "fp32", 0, 0, jobs, 3, false, &id,
                                     &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "max_attempts"));
    assert_int_equal(query_int(fx->db, "SELECT count(*) FROM batches"), 0);
    assert_int_equal(query_int(fx->db, "SELECT count(*) FROM jobs"), 0);

    err[0] = '\0';
    assert_int_equal(db_batch_insert(fx->db, "", "{}", "fp32", 0, 0, jobs, 0, false, &id, &ins,
                                     &dup, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_int_equal(db_batch_insert(fx->db, "grid", "{}", "fp32", -1, 0, jobs, 0, false, &id,
                                     &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "negative"));
    /* A device id that does not exist breaks the foreign key: nothing written. */
    err[0] = '\0';
    make_job(&jobs[2], 3);
    assert_int_equal(db_batch_insert(fx->db, "grid", "{}", "fp32", 0, 4242, jobs, 3, false, &id,
                                     &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(query_int(fx->db, "SELECT count(*) FROM jobs"), 0);
}

/* ---- cancel ---- */

static void test_cancel_batch_and_job(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    size_t ins, dup;
    int v[] = {1, 2, 3, 4};
    int64_t id = insert_batch(fx->db, v, 4, false, &ins, &dup);

    struct db_job running, job;
    assert_int_equal(db_job_claim_next(fx->db, &running, err, sizeof err), 1);

    /* One queued job. */
    struct db_job list_first;
    struct db_job_filter f = {.state = DB_JOB_QUEUED, .batch_id = id, .limit = 1};
    struct db_job *jobs = NULL;
    size_t n = 0;
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    list_first = jobs[0];
    free(jobs);
    assert_int_equal(db_job_cancel(fx->db, list_first.id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_CANCELED);
    assert_true(job.finished_at[0] != '\0');
    /* Again: not queued any more. */
    assert_int_equal(db_job_cancel(fx->db, list_first.id, &job, err, sizeof err), 2);
    assert_int_equal(job.state, DB_JOB_CANCELED);
    /* The running one cannot be canceled; an unknown one does not exist. */
    assert_int_equal(db_job_cancel(fx->db, running.id, &job, err, sizeof err), 2);
    assert_int_equal(job.state, DB_JOB_RUNNING);
    assert_int_equal(db_job_cancel(fx->db, 99999, NULL, err, sizeof err), 0);

    /* The rest of the batch: two queued ones, the running one stays. */
    int64_t canceled = -1;
    assert_int_equal(db_batch_cancel(fx->db, id, &canceled, err, sizeof err), 1);
    assert_int_equal(canceled, 2);
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
    assert_int_equal(b.counts[DB_JOB_RUNNING], 1);
    assert_int_equal(b.counts[DB_JOB_CANCELED], 3);
    assert_int_equal(db_batch_cancel(fx->db, id, &canceled, err, sizeof err), 1);
    assert_int_equal(canceled, 0);
    assert_int_equal(db_batch_cancel(fx->db, id + 50, &canceled, err, sizeof err), 0);
    /* Nothing queued: the runner finds no job. */
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 0);
}

/* ---- list ---- */

static void test_list_filters_and_paging(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    size_t ins, dup;
    int a[] = {1, 2, 3};
    int b[] = {4, 5};
    int64_t ida = insert_batch(fx->db, a, 3, false, &ins, &dup);
    int64_t idb = insert_batch(fx->db, b, 2, false, &ins, &dup);
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(fx->db, &claimed, err, sizeof err), 1);

    struct db_job *jobs = NULL;
    size_t n = 0;
    struct db_job_filter f = {.state = -1, .limit = 100};
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 5);
    for (size_t i = 1; i < n; i++)
        assert_true(jobs[i].id > jobs[i - 1].id);
    free(jobs);

    f.batch_id = idb;
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].batch_id, idb);
    assert_string_equal(jobs[0].config_key, "linear:fp32:batch=4,in=8,out=8");
    free(jobs);

    f.batch_id = ida;
    f.state = DB_JOB_RUNNING;
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].id, claimed.id);
    free(jobs);

    /* Pages of two. */
    f = (struct db_job_filter){.state = -1, .limit = 2};
    int64_t seen = 0;
    size_t total = 0;
    for (;;) {
        f.after_id = seen;
        assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
        total += n;
        if (n > 0)
            seen = jobs[n - 1].id;
        free(jobs);
        if (n < 2)
            break;
    }
    assert_int_equal(total, 5);

    /* No match: an empty list, not an error. */
    f = (struct db_job_filter){.state = DB_JOB_DONE, .limit = 10};
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(jobs);

    f.limit = 0;
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    f.limit = 1;
    f.state = 9;
    assert_int_equal(db_jobs_list(fx->db, &f, &jobs, &n, err, sizeof err), -1);
}

/* ---- accounting ---- */

static void test_account(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    size_t ins, dup;
    int v[] = {1, 2};
    int64_t id = insert_batch(fx->db, v, 2, false, &ins, &dup);

    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(db_batch_account(fx->db, id, 1.5, 0.25, err, sizeof err), 0);
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_true(b.accounted);
    assert_float_equal(b.energy_j, 1.5, 1e-9);
    assert_float_equal(b.wall_s, 0.25, 1e-9);
    assert_true(b.started_at[0] != '\0');
    assert_string_equal(b.finished_at, ""); /* jobs still queued and running */
    char started[32];
    snprintf(started, sizeof started, "%s", b.started_at);

    assert_int_equal(db_job_fail(fx->db, job.id, "x", err, sizeof err), 0);
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(db_job_fail(fx->db, job.id, "y", err, sizeof err), 0);
    assert_int_equal(db_batch_account(fx->db, id, 2.0, 0.5, err, sizeof err), 0);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_float_equal(b.energy_j, 3.5, 1e-9);
    assert_float_equal(b.wall_s, 0.75, 1e-9);
    assert_string_equal(b.started_at, started); /* set once */
    assert_true(b.finished_at[0] != '\0');
    assert_true(b.jobs_span_s >= 0);

    err[0] = '\0';
    assert_int_equal(db_batch_account(fx->db, id + 9, 1.0, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "no such batch"));
    err[0] = '\0';
    assert_int_equal(db_batch_account(fx->db, id, NAN, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "finite"));
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_float_equal(b.energy_j, 3.5, 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_database_upgrades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_is_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_batch_and_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
