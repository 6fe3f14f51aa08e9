/*
 * test_db_export.c - the dataset leaving the board: db_export_snapshot (online
 * backup: a consistent copy while another connection keeps writing, a
 * standalone file, clear errors for bad paths) and the streamed CSV layout
 * (db_csv_layout_*: columns fixed up front from the rows a filter selects,
 * batch and since filters, the fingerprint column).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "db/db.h"
#include "db/db_internal.h"

struct fixture {
    char dir[64];
    char path[128];
    char copy[128];
    struct db *db;
    int64_t device_id;
    char fingerprint[65];
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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-export-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/jetprof.db", fx->dir);
    snprintf(fx->copy, sizeof fx->copy, "%s/copy.db", fx->dir);
    struct db_device dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "not a Jetson (x86_64)");
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
    memcpy(fx->fingerprint, dev.fingerprint, sizeof fx->fingerprint);
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

static void fill_job(struct db_job *job, const char *kernel, const char *params)
{
    memset(job, 0, sizeof *job);
    snprintf(job->kernel, sizeof job->kernel, "%s", kernel);
    snprintf(job->dtype, sizeof job->dtype, "fp32");
    snprintf(job->params_json, sizeof job->params_json, "%s", params);
    snprintf(job->config_key, sizeof job->config_key, "%s:fp32:%s", kernel, params);
    job->max_attempts = 3;
}

/* SELECT of one integer on a raw connection. */
static int64_t scalar(sqlite3 *conn, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void text_of(sqlite3 *conn, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
}

/* ---- snapshot while writes go on ---- */

struct writer {
    const char *path;
    atomic_bool stop;
    atomic_int pairs;  /* transactions committed */
    char err[512];
    bool failed;
};

/* Commits pairs of jobs, each pair in one transaction: a snapshot that caught
 * a transaction halfway would hold an odd number of jobs. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct db *db = NULL;
    if (db_open(w->path, &db, w->err, sizeof w->err) != 0) {
        w->failed = true;
        return NULL;
    }
    while (!atomic_load(&w->stop) || atomic_load(&w->pairs) < 20) {
        struct db_job a, b;
        fill_job(&a, "linear", "{\"batch\":1,\"in\":2,\"out\":3}");
        fill_job(&b, "layernorm", "{\"rows\":1,\"cols\":2}");
        if (db_begin(db, w->err, sizeof w->err) != 0 ||
            db_job_insert(db, &a, w->err, sizeof w->err) != 0 ||
            db_job_insert(db, &b, w->err, sizeof w->err) != 0 ||
            db_commit(db, w->err, sizeof w->err) != 0) {
            w->failed = true;
            break;
        }
        atomic_fetch_add(&w->pairs, 1);
    }
    db_close(db);
    return NULL;
}

static void test_snapshot_while_writing(void **state)
{
    struct fixture *fx = *state;
    struct writer w = {.path = fx->path};
    atomic_init(&w.stop, false);
    atomic_init(&w.pairs, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    while (atomic_load(&w.pairs) < 5 && !w.failed)
        usleep(1000);

    char err[512];
    for (int round = 0; round < 5; round++) {
        int before = atomic_load(&w.pairs);
        unlink(fx->copy);
        int pages = 0;
        if (db_export_snapshot(fx->path, fx->copy, &pages, err, sizeof err) != 0)
            fail_msg("snapshot: %s", err);
        int after = atomic_load(&w.pairs);
        assert_true(pages > 0);

        sqlite3 *copy = NULL;
        assert_int_equal(sqlite3_open_v2(fx->copy, &copy, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        char text[64];
        text_of(copy, "PRAGMA integrity_check", text, sizeof text);
        assert_string_equal(text, "ok");
        text_of(copy, "PRAGMA journal_mode", text, sizeof text);
        assert_string_equal(text, "delete"); /* standalone: no -wal needed */
        assert_int_equal(scalar(copy, "PRAGMA user_version"), db_schema_latest());
        int64_t jobs = scalar(copy, "SELECT count(*) FROM jobs");
        assert_int_equal(jobs % 2, 0); /* never half a transaction */
        assert_true(jobs >= 2 * (int64_t)before);
        assert_true(jobs <= 2 * (int64_t)after + 2); /* a pair may commit as the copy starts */
        assert_int_equal(scalar(copy, "SELECT count(*) FROM devices"), 1);
        sqlite3_close(copy);
    }
    atomic_store(&w.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (w.failed)
        fail_msg("writer: %s", w.err);
    assert_true(atomic_load(&w.pairs) >= 20);

    /* After the writer: the copy holds everything. */
    unlink(fx->copy);
    assert_int_equal(db_export_snapshot(fx->path, fx->copy, NULL, err, sizeof err), 0);
    sqlite3 *copy = NULL;
    assert_int_equal(sqlite3_open_v2(fx->copy, &copy, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(scalar(copy, "SELECT count(*) FROM jobs"), 2 * (int64_t)atomic_load(&w.pairs));
    sqlite3_close(copy);
}

static void test_snapshot_errors(void **state)
{
    struct fixture *fx = *state;
    char err[512], src[192], dest[192];
    snprintf(src, sizeof src, "%s/absent.db", fx->dir);
    assert_int_equal(db_export_snapshot(src, fx->copy, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "absent.db"));
    assert_int_equal(access(src, F_OK), -1); /* not created */

    snprintf(dest, sizeof dest, "%s/no/such/dir/copy.db", fx->dir);
    assert_int_equal(db_export_snapshot(fx->path, dest, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no/such/dir"));

    assert_int_equal(db_export_snapshot(NULL, fx->copy, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "path"));
}

/* ---- streamed CSV layout and the batch/since filters ---- */

static int64_t measured_job(struct fixture *fx, int64_t batch_id, const char *kernel,
                            const char *params, const char *rail2, const char *created_at)
{
    char err[512];
    struct db_job job;
    fill_job(&job, kernel, params);
    job.batch_id = batch_id;
    job.priority = DB_PRIORITY_ADHOC;
    if (db_job_insert(fx->db, &job, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(fx->db, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.id, job.id);

    struct db_measurement *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->device_id = fx->device_id;
    snprintf(m->kernel, sizeof m->kernel, "%s", kernel);
    snprintf(m->dtype, sizeof m->dtype, "fp32");
    snprintf(m->params_json, sizeof m->params_json, "%s", params);
    snprintf(m->config_key, sizeof m->config_key, "%s", job.config_key);
    snprintf(m->executor, sizeof m->executor, "cpu");
    snprintf(m->sensor, sizeof m->sensor, "sim");
    snprintf(m->energy_rail, sizeof m->energy_rail, "VDD_IN");
    snprintf(m->quality, sizeof m->quality, "ok");
    snprintf(m->created_at, sizeof m->created_at, "%s", created_at);
    m->launches = 10;
    m->repeats = 1;
    m->latency_us = 12.5;
    m->power_mw = 5000;
    m->rail_count = 2;
    snprintf(m->rails[0].rail, sizeof m->rails[0].rail, "VDD_IN");
    m->rails[0].is_board_input = true;
    m->rails[0].power_mw = 5000;
    snprintf(m->rails[1].rail, sizeof m->rails[1].rail, "%s", rail2);
    m->rails[1].power_mw = 1000;
    int64_t id = 0;
    if (db_job_finish(fx->db, job.id, m, &id, err, sizeof err) != 0)
        fail_msg("finish: %s", err);
    free(m);
    return id;
}

static int64_t make_batch(struct fixture *fx)
{
    char err[512];
    assert_int_equal(db_exec(fx->db,
                             "INSERT INTO batches (created_at, kind, spec_json, dtype) VALUES"
                             " ('2026-01-01T00:00:00.000Z', 'list', '{}', 'fp32')",
                             err, sizeof err),
                     0);
    return sqlite3_last_insert_rowid(fx->db->conn);
}

struct rows {
    int n;
    int64_t ids[16];
};

static int collect(json_t *m, void *ctx)
{
    struct rows *r = ctx;
    if (r->n < 16)
        r->ids[r->n++] = (int64_t)json_integer_value(json_object_get(m, "id"));
    return 0;
}

static void test_filters_batch_since(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t b1 = make_batch(fx), b2 = make_batch(fx);
    int64_t m1 = measured_job(fx, b1, "linear", "{\"batch\":1,\"in\":2,\"out\":3}", "GPU",
                              "2026-11-01T10:00:00.000Z");
    int64_t m2 = measured_job(fx, b2, "layernorm", "{\"rows\":4,\"cols\":8}", "SOC",
                              "2026-11-02T10:00:00.000Z");
    int64_t m3 = measured_job(fx, b1, "linear", "{\"batch\":2,\"in\":2,\"out\":3}", "GPU",
                              "2026-11-03T10:00:00.000Z");
    int64_t m4 = measured_job(fx, 0, "linear", "{\"batch\":3,\"in\":2,\"out\":3}", "GPU",
                              "2026-11-04T10:00:00.000Z");

    struct db_measurement_filter f = {.limit = 100, .batch_id = b1};
    struct rows r = {0};
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &r, err, sizeof err), 2);
    assert_int_equal(r.ids[0], m1);
    assert_int_equal(r.ids[1], m3);

    f = (struct db_measurement_filter){.limit = 100, .since = "2026-11-02T10:00:00.000Z"};
    r.n = 0;
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &r, err, sizeof err), 3);
    assert_int_equal(r.ids[0], m2);
    assert_int_equal(r.ids[2], m4);

    f = (struct db_measurement_filter){.limit = 100, .batch_id = b1,
                                       .since = "2026-11-02T00:00:00.000Z", .kernel = "linear"};
    r.n = 0;
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &r, err, sizeof err), 1);
    assert_int_equal(r.ids[0], m3);

    /* The CSV layout of batch b2: layernorm's parameters and the SOC rail only. */
    f = (struct db_measurement_filter){.limit = 100, .batch_id = b2};
    struct db_csv_layout *l = NULL;
    assert_int_equal(db_csv_layout_make(fx->db, &f, &l, err, sizeof err), 0);
    assert_int_equal(db_csv_layout_last_id(l), m4);
    size_t len = 0;
    char *header = db_csv_layout_header(l, &len);
    assert_non_null(header);
    assert_int_equal(len, strlen(header));
    assert_non_null(strstr(header, "id,uid,fingerprint,created_at,kernel,dtype,rows,cols,executor"));
    assert_non_null(strstr(header, "power_mw.VDD_IN,idle_power_mw.VDD_IN,energy_uj.VDD_IN,"
                                   "sample_ratio.VDD_IN,power_mw.SOC,"));
    assert_null(strstr(header, "GPU"));
    assert_null(strstr(header, "batch"));
    assert_string_equal(header + len - 2, "\r\n");
    free(header);

    json_t *m = db_measurement_json(fx->db, m2, err, sizeof err);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "fingerprint")), fx->fingerprint);
    char *row = db_csv_layout_row(l, m, &len);
    assert_non_null(row);
    char want[160];
    snprintf(want, sizeof want, ",%s,2026-11-02T10:00:00.000Z,layernorm,fp32,4,8,cpu,",
             fx->fingerprint);
    assert_non_null(strstr(row, want));
    assert_string_equal(row + len - 2, "\r\n");
    free(row);
    json_decref(m);
    db_csv_layout_free(l);

    /* Parameters and rails in order of first use over all rows. */
    f = (struct db_measurement_filter){.limit = 100};
    assert_int_equal(db_csv_layout_make(fx->db, &f, &l, err, sizeof err), 0);
    header = db_csv_layout_header(l, &len);
    assert_non_null(header);
    assert_non_null(strstr(header, ",dtype,batch,in,out,rows,cols,executor,"));
    assert_non_null(strstr(header, "sample_ratio.VDD_IN,power_mw.GPU,"));
    assert_non_null(strstr(header, "sample_ratio.GPU,power_mw.SOC,"));
    free(header);
    db_csv_layout_free(l);
    db_csv_layout_free(NULL);

    /* A filter matching nothing: fixed columns only. */
    f = (struct db_measurement_filter){.limit = 100, .batch_id = b2 + 50};
    assert_int_equal(db_csv_layout_make(fx->db, &f, &l, err, sizeof err), 0);
    header = db_csv_layout_header(l, &len);
    assert_non_null(header);
    assert_non_null(strstr(header, ",dtype,executor,"));
    assert_null(strstr(header, "power_mw."));
    free(header);
    db_csv_layout_free(l);

    assert_int_equal(db_csv_layout_make(fx->db, NULL, &l, err, sizeof err), -1);
    assert_null(l);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters_batch_since, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
