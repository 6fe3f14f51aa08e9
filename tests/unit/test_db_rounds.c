/*
 * test_db_rounds.c - adaptive sampling rounds in the store (schema 3): a batch
 * of kind "adaptive" is open from its insert (other kinds never are), listed as
 * ready only while none of its jobs is queued or running; a round commits its
 * row and its proposals' jobs in one transaction (duplicates skipped and
 * counted, finished_at cleared when jobs were queued, the batch closed by the
 * last round), and refuses an unknown, closed or non-adaptive batch, a round
 * number stored already and bad metrics - writing nothing, also when a job
 * fails halfway; canceling closes the batch; the rounds as JSON and their
 * count; the batch's spec; and the training rows of one batch.
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

#include "common/log.h"
#include "db/db.h"
#include "db/db_internal.h"

#define METRICS "{\"rows\":12,\"latency\":{\"mape\":8.5}}"

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
    int64_t device_id;
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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-rounds-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/jetprof.db", fx->dir);
    struct db_device dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "board X");
    snprintf(dev.gpu_name, sizeof dev.gpu_name, "cpu");
    snprintf(dev.executor, sizeof dev.executor, "cpu");
    snprintf(dev.sensor_backend, sizeof dev.sensor_backend, "sim");
    snprintf(dev.sampling_json, sizeof dev.sampling_json, "{}");
    dev.simulated = true;
    if (db_open(fx->path, &fx->db, err, sizeof err) != 0 ||
        db_device_upsert(fx->db, &dev, &fx->device_id, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        db_close(fx->db);
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

static int64_t count(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void make_job(struct db_job *job, const char *kernel, int batch)
{
    memset(job, 0, sizeof *job);
    snprintf(job->kernel, sizeof job->kernel, "%s", kernel);
    snprintf(job->dtype, sizeof job->dtype, "fp32");
    snprintf(job->params_json, sizeof job->params_json, "{\"batch\":%d,\"in\":8,\"out\":8}",
             batch);
    snprintf(job->config_key, sizeof job->config_key, "%s:fp32:batch=%d,in=8,out=8", kernel,
             batch);
    job->priority = DB_PRIORITY_SWEEP;
    job->max_attempts = 3;
}

static int64_t insert_batch(struct fixture *fx, const char *kind, const int *values, size_t n)
{
    struct db_job jobs[8];
    char err[512] = "";
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        make_job(&jobs[i], "linear", values[i]);
    int64_t id = 0;
    size_t ins, dup;
    if (db_batch_insert(fx->db, kind, "{\"sweep\":{\"type\":\"adaptive\"}}", "fp32", 0,
                        fx->device_id, jobs, n, false, &id, &ins, &dup, err, sizeof err) != 0)
        fail_msg("batch: %s", err);
    return id;
}

/* The ready list, which must be exactly want[0..n). */
static void assert_ready(struct fixture *fx, const int64_t *want, size_t n)
{
    char err[512];
    int64_t *ids = (int64_t *)1;
    size_t got = 99;
    assert_int_equal(db_adaptive_batches_ready(fx->db, &ids, &got, err, sizeof err), 0);
    assert_int_equal(got, n);
    if (n == 0)
        assert_null(ids);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
}

/* Claims the next job and finishes it with a measurement of latency_us. */
static int64_t run_next(struct fixture *fx, const char *quality, double latency_us)
{
    char err[512];
    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    struct db_measurement m;
    memset(&m, 0, sizeof m);
    m.device_id = fx->device_id;
    snprintf(m.kernel, sizeof m.kernel, "%s", job.kernel);
    snprintf(m.dtype, sizeof m.dtype, "%s", job.dtype);
    snprintf(m.params_json, sizeof m.params_json, "%s", job.params_json);
    snprintf(m.config_key, sizeof m.config_key, "%s", job.config_key);
    snprintf(m.executor, sizeof m.executor, "cpu");
    snprintf(m.sensor, sizeof m.sensor, "sim");
    m.simulated = true;
    m.launches = 2;
    m.repeats = 1;
    m.latency_us = m.latency_us_min = m.latency_us_max = latency_us;
    snprintf(m.energy_rail, sizeof m.energy_rail, "VDD_IN");
    snprintf(m.quality, sizeof m.quality, "%s", quality);
    struct db_rail_reading *r = &m.rails[m.rail_count++];
    snprintf(r->rail, sizeof r->rail, "VDD_IN");
    r->is_board_input = true;
    r->power_mw = 5000 + latency_us;
    int64_t id = 0;
    if (db_job_finish(fx->db, job.id, &m, &id, err, sizeof err) != 0)
        fail_msg("finish: %s", err);
    return id;
}

static void make_round(struct db_batch_round *r, int round, int64_t rows, const char *note)
{
    memset(r, 0, sizeof *r);
    r->round = round;
    r->rows = rows;
    snprintf(r->metrics_json, sizeof r->metrics_json, "%s", METRICS);
    snprintf(r->note, sizeof r->note, "%s", note);
    r->added = r->duplicates = 99; /* set by commit */
}

/* ---- lifecycle ---- */

static void test_lifecycle(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int v[] = {1, 2};
    int64_t id = insert_batch(fx, "adaptive", v, 2);
    int64_t grid = insert_batch(fx, "grid", (int[]){7}, 1);
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_true(b.adaptive_open);
    assert_int_equal(db_batch_get(fx->db, grid, &b, err, sizeof err), 1);
    assert_false(b.adaptive_open);

    /* Initial sample queued or running: not ready. */
    assert_ready(fx, NULL, 0);
    run_next(fx, "ok", 10);
    struct db_job running;
    assert_int_equal(db_job_claim_next(fx->db, &running, err, sizeof err), 1);
    assert_ready(fx, NULL, 0);
    assert_int_equal(db_job_fail(fx->db, running.id, "test", err, sizeof err), 0);
    /* All done (the grid batch's job is still queued, but it is not adaptive). */
    assert_ready(fx, &id, 1);
    assert_int_equal(db_batch_account(fx->db, id, 1.0, 1.0, err, sizeof err), 0);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_true(b.finished_at[0] != '\0');
    assert_true(b.adaptive_open);

    /* Round 0 proposes three: one measured already (batch 1), one queued in the
     * grid batch (7), one new. */
    struct db_job jobs[3];
    make_job(&jobs[0], "linear", 1);
    make_job(&jobs[1], "linear", 7);
    make_job(&jobs[2], "linear", 3);
    struct db_batch_round r;
    make_round(&r, 0, 1, "");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, jobs, 3, false, err, sizeof err), 0);
    assert_int_equal(r.added, 1);
    assert_int_equal(r.duplicates, 2);
    assert_int_equal(strlen(r.created_at), 24);
    assert_int_equal(jobs[0].id, 0);
    assert_int_equal(jobs[1].id, 0);
    assert_true(jobs[2].id > 0);
    assert_int_equal(jobs[2].batch_id, id);
    int rounds = -1;
    assert_int_equal(db_batch_rounds_count(fx->db, id, &rounds, err, sizeof err), 0);
    assert_int_equal(rounds, 1);
    /* Running again: finished_at cleared, not ready while its job is queued. */
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_string_equal(b.finished_at, "");
    assert_int_equal(b.counts[DB_JOB_QUEUED], 1);
    assert_ready(fx, NULL, 0);

    /* The grid job (7) is claimed first (lower id), then the proposal. */
    run_next(fx, "ok", 70);
    assert_ready(fx, NULL, 0);
    run_next(fx, "ok", 30);
    assert_ready(fx, &id, 1);
    assert_int_equal(db_batch_account(fx->db, id, 1.0, 1.0, err, sizeof err), 0);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    char finished[32];
    snprintf(finished, sizeof finished, "%s", b.finished_at);
    assert_true(finished[0] != '\0');

    /* Round 1 proposes only duplicates: nothing queued, finished_at kept; the
     * batch stays open and ready. */
    make_job(&jobs[0], "linear", 3);
    make_round(&r, 1, 3, "");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, jobs, 1, false, err, sizeof err), 0);
    assert_int_equal(r.added, 0);
    assert_int_equal(r.duplicates, 1);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_string_equal(b.finished_at, finished);
    assert_ready(fx, &id, 1);

    /* The last round closes it. */
    make_round(&r, 2, 3, "converged: no held-out row above the threshold");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, NULL, 0, true, err, sizeof err), 0);
    assert_ready(fx, NULL, 0);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_false(b.adaptive_open);
    assert_int_equal(db_batch_rounds_count(fx->db, id, &rounds, err, sizeof err), 0);
    assert_int_equal(rounds, 3);
    make_round(&r, 3, 3, "");
    err[0] = '\0';
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, NULL, 0, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an open adaptive batch"));
}

static void test_cancel_closes(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int64_t id = insert_batch(fx, "adaptive", (int[]){1, 2}, 2);
    int64_t other = insert_batch(fx, "adaptive", (int[]){5}, 1);
    int64_t canceled = 0;
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_true(b.adaptive_open);
    assert_int_equal(db_batch_cancel(fx->db, id, &canceled, err, sizeof err), 1);
    assert_int_equal(canceled, 2);
    assert_int_equal(db_batch_get(fx->db, id, &b, err, sizeof err), 1);
    assert_false(b.adaptive_open);
    /* Nothing queued or running, yet no more rounds: not ready, refused. */
    assert_ready(fx, NULL, 0);
    struct db_batch_round r;
    make_round(&r, 0, 0, "");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, NULL, 0, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an open adaptive batch"));
    /* The other adaptive batch is untouched. */
    run_next(fx, "ok", 5);
    assert_ready(fx, &other, 1);
    /* Canceling a batch with nothing queued closes it too. */
    assert_int_equal(db_batch_cancel(fx->db, other, &canceled, err, sizeof err), 1);
    assert_int_equal(canceled, 0);
    assert_ready(fx, NULL, 0);
}

/* ---- errors ---- */

static void assert_commit_refused(struct fixture *fx, int64_t batch, struct db_batch_round *r,
                                  struct db_job *jobs, size_t n, bool last, const char *want)
{
    char err[512] = "";
    int64_t jobs_before = count(fx->db, "SELECT count(*) FROM jobs");
    int64_t rounds_before = count(fx->db, "SELECT count(*) FROM batch_rounds");
    r->added = r->duplicates = 99;
    assert_int_equal(db_batch_round_commit(fx->db, batch, r, jobs, n, last, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM jobs"), jobs_before);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM batch_rounds"), rounds_before);
    assert_int_equal(r->added, 99); /* untouched: nothing was committed */
}

static void test_commit_errors(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int64_t id = insert_batch(fx, "adaptive", (int[]){1}, 1);
    int64_t grid = insert_batch(fx, "grid", (int[]){2}, 1);
    run_next(fx, "ok", 10);
    run_next(fx, "ok", 20);
    struct db_batch_round r;
    struct db_job jobs[2];

    make_round(&r, 0, 2, "");
    assert_commit_refused(fx, id + 100, &r, NULL, 0, false, "no such batch");
    assert_commit_refused(fx, grid, &r, NULL, 0, false, "not an open adaptive batch");

    make_round(&r, -1, 2, "");
    assert_commit_refused(fx, id, &r, NULL, 0, false, "must not be negative");
    make_round(&r, 0, -2, "");
    assert_commit_refused(fx, id, &r, NULL, 0, false, "must not be negative");
    make_round(&r, 0, 2, "");
    snprintf(r.metrics_json, sizeof r.metrics_json, "[1]");
    assert_commit_refused(fx, id, &r, NULL, 0, false, "metrics_json is not a JSON object");
    snprintf(r.metrics_json, sizeof r.metrics_json, "{\"a\":");
    assert_commit_refused(fx, id, &r, NULL, 0, false, "metrics_json is not a JSON object");
    memset(r.metrics_json, 'x', sizeof r.metrics_json);
    assert_commit_refused(fx, id, &r, NULL, 0, false, "unterminated");
    make_round(&r, 0, 2, "");
    memset(r.note, 'x', sizeof r.note);
    assert_commit_refused(fx, id, &r, NULL, 0, false, "note");
    make_round(&r, 0, 2, "");
    assert_commit_refused(fx, id, &r, NULL, 1, false, "needs its row");
    err[0] = '\0';
    assert_int_equal(db_batch_round_commit(fx->db, id, NULL, NULL, 0, false, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "needs its row"));

    /* A job refused halfway: the round, the first job and the close all undone. */
    make_round(&r, 0, 2, "");
    make_job(&jobs[0], "linear", 40);
    make_job(&jobs[1], "linear", 41);
    jobs[1].max_attempts = 0;
    assert_commit_refused(fx, id, &r, jobs, 2, true, "max_attempts");
    assert_ready(fx, &id, 1); /* still open */

    /* The same round, fixed, goes through; then its number is taken. */
    make_job(&jobs[1], "linear", 41);
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, jobs, 2, false, err, sizeof err), 0);
    assert_int_equal(r.added, 2);
    make_job(&jobs[0], "linear", 50);
    make_round(&r, 0, 5, "");
    assert_commit_refused(fx, id, &r, jobs, 1, false, "stored already");
    assert_int_equal(count(fx->db, "SELECT rows FROM batch_rounds"), 2); /* the first kept */
}

/* ---- reads ---- */

static void test_rounds_json(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int64_t id = insert_batch(fx, "adaptive", (int[]){1}, 1);
    json_t *arr = db_batch_rounds_json(fx->db, id, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    int rounds = -1;
    assert_int_equal(db_batch_rounds_count(fx->db, id, &rounds, err, sizeof err), 0);
    assert_int_equal(rounds, 0);

    run_next(fx, "ok", 10);
    struct db_batch_round r;
    struct db_job jobs[2];
    make_job(&jobs[0], "linear", 1); /* measured: a duplicate */
    make_job(&jobs[1], "linear", 2);
    make_round(&r, 0, 1, "");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, jobs, 2, false, err, sizeof err), 0);
    run_next(fx, "ok", 20);
    make_round(&r, 1, 2, "too few rows");
    snprintf(r.metrics_json, sizeof r.metrics_json, "{\"rows\":2}");
    assert_int_equal(db_batch_round_commit(fx->db, id, &r, NULL, 0, true, err, sizeof err), 0);

    arr = db_batch_rounds_json(fx->db, id, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    json_t *r0 = json_array_get(arr, 0), *r1 = json_array_get(arr, 1);
    assert_int_equal(json_object_size(r0), 7);
    assert_int_equal(json_integer_value(json_object_get(r0, "round")), 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "rows")), 1);
    assert_int_equal(json_integer_value(json_object_get(r0, "added")), 1);
    assert_int_equal(json_integer_value(json_object_get(r0, "duplicates")), 1);
    assert_string_equal(json_string_value(json_object_get(r0, "note")), "");
    assert_int_equal(json_string_length(json_object_get(r0, "created_at")), 24);
    json_t *metrics = json_object_get(r0, "metrics");
    assert_true(json_is_object(metrics));
    assert_float_equal(json_number_value(json_object_get(json_object_get(metrics, "latency"),
                                                         "mape")),
                       8.5, 1e-12);
    assert_int_equal(json_integer_value(json_object_get(r1, "round")), 1);
    assert_int_equal(json_integer_value(json_object_get(r1, "added")), 0);
    assert_string_equal(json_string_value(json_object_get(r1, "note")), "too few rows");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r1, "metrics"), "rows")),
                     2);
    json_decref(arr);

    /* An unknown batch has no rounds. */
    arr = db_batch_rounds_json(fx->db, id + 10, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    assert_int_equal(db_batch_rounds_count(fx->db, id + 10, &rounds, err, sizeof err), 0);
    assert_int_equal(rounds, 0);

    /* A corrupted row is an error, not a crash. */
    assert_int_equal(sqlite3_exec(fx->db->conn, "UPDATE batch_rounds SET metrics_json = 'x'"
                                  " WHERE round = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    err[0] = '\0';
    assert_null(db_batch_rounds_json(fx->db, id, err, sizeof err));
    assert_non_null(strstr(err, "round 1"));
}

static void test_batch_spec(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int64_t id = insert_batch(fx, "adaptive", (int[]){1}, 1);
    char *spec = (char *)1;
    assert_int_equal(db_batch_spec(fx->db, id, &spec, err, sizeof err), 1);
    assert_string_equal(spec, "{\"sweep\":{\"type\":\"adaptive\"}}");
    free(spec);
    assert_int_equal(db_batch_spec(fx->db, id + 1, &spec, err, sizeof err), 0);
    assert_null(spec);
}

static void test_training_rows_batch(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    int64_t id = insert_batch(fx, "adaptive", (int[]){1, 2, 3, 4}, 4);
    int64_t other = insert_batch(fx, "grid", (int[]){5}, 1);
    run_next(fx, "ok", 10);
    run_next(fx, "suspect", 20);
    run_next(fx, "ok", 0); /* not usable: no latency */
    run_next(fx, "ok", 40);
    run_next(fx, "ok", 50); /* the other batch's */
    /* An ad-hoc measurement of another kernel. */
    struct db_job adhoc;
    make_job(&adhoc, "layernorm", 6);
    assert_int_equal(db_job_insert(fx->db, &adhoc, err, sizeof err), 0);
    run_next(fx, "ok", 60);

    struct db_training_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(db_training_rows_batch(fx->db, "linear", id, NULL, &rows, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 3);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += rows[i].latency_us;
        assert_string_equal(rows[i].dtype, "fp32");
        assert_int_equal(rows[i].rail_count, 1);
        assert_string_equal(rows[i].rails[0].rail, "VDD_IN");
        assert_float_equal(rows[i].rails[0].power_mw, 5000 + rows[i].latency_us, 1e-9);
        if (i > 0)
            assert_true(strcmp(rows[i - 1].uid, rows[i].uid) < 0);
    }
    assert_float_equal(sum, 70, 1e-9);
    free(rows);

    assert_int_equal(db_training_rows_batch(fx->db, "linear", id, "ok", &rows, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 2);
    free(rows);
    assert_int_equal(db_training_rows_batch(fx->db, "linear", other, NULL, &rows, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 1);
    assert_float_equal(rows[0].latency_us, 50, 1e-9);
    free(rows);
    assert_int_equal(db_training_rows_batch(fx->db, "layernorm", id, NULL, &rows, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(db_training_rows_batch(fx->db, "linear", id + 10, NULL, &rows, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 0);
    err[0] = '\0';
    assert_int_equal(db_training_rows_batch(fx->db, "", id, NULL, &rows, &n, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rounds_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_rows_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
