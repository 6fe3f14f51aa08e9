/*
 * test_db_models.c - predictors and training data in the store: a training run's
 * models insert in one transaction (a failure halfway - a foreign key, an
 * injected disk error - leaves nothing), validation, the newest model per
 * (kernel, target) on devices "like" a device (same board, GPU, executor, sensor
 * backend and simulated flag; sampling may differ), blobs only when asked, the
 * history bound (db_models_insert_pruned keeps the newest N per kernel, target
 * and board, leaves other boards, kernels and targets alone, and a failed run -
 * in its inserts or in its deletes - deletes nothing), the
 * training rows of a kernel type (params, dtype, uid order, latency, per-rail
 * power) with the quality filter, the per-kernel counts behind the API's 409s,
 * and the newest measurement of a configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"

#define HASH_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HASH_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define METRICS "{\"train_rows\":16,\"test_rows\":4,\"rmse\":1.5}"

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
    int64_t dev_a;       /* sim, CPU, "board X" */
    int64_t dev_a2;      /* the same board with other sampling: like dev_a */
    int64_t dev_b;       /* another board */
    int64_t dev_c;       /* board X with a real sensor: not like dev_a */
    char fp_a[65];
    int next_job;        /* makes every job's config_key unique */
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int add_device(struct db *db, const char *board, const char *sampling, bool simulated,
                      const char *sensor, int64_t *id, char fp[65])
{
    struct db_device dev;
    char err[512];
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "%s", board);
    snprintf(dev.gpu_name, sizeof dev.gpu_name, "cpu");
    snprintf(dev.executor, sizeof dev.executor, "cpu");
    snprintf(dev.sensor_backend, sizeof dev.sensor_backend, "%s", sensor);
    snprintf(dev.sampling_json, sizeof dev.sampling_json, "%s", sampling);
    dev.simulated = simulated;
    if (db_device_upsert(db, &dev, id, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (fp)
        memcpy(fp, dev.fingerprint, 65);
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-models-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/jetprof.db", fx->dir);
    if (db_open(fx->path, &fx->db, err, sizeof err) != 0 ||
        add_device(fx->db, "board X", "{\"period_us\":1000}", true, "sim", &fx->dev_a,
                   fx->fp_a) != 0 ||
        add_device(fx->db, "board X", "{\"period_us\":500}", true, "sim", &fx->dev_a2, NULL) !=
            0 ||
        add_device(fx->db, "board Y", "{\"period_us\":1000}", true, "sim", &fx->dev_b, NULL) !=
            0 ||
        add_device(fx->db, "board X", "{\"period_us\":1000}", false, "ina3221-hwmon", &fx->dev_c,
                   NULL) != 0) {
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

/* ---- models ---- */

static void fill_model(struct db_model *m, const char *kernel, const char *target,
                       int64_t device_id, const char *hash, const char *blob)
{
    memset(m, 0, sizeof *m);
    snprintf(m->kernel, sizeof m->kernel, "%s", kernel);
    snprintf(m->target, sizeof m->target, "%s", target);
    m->device_id = device_id;
    snprintf(m->metrics_json, sizeof m->metrics_json, "%s", METRICS);
    snprintf(m->training_hash, sizeof m->training_hash, "%s", hash);
    m->blob = (char *)blob;
    m->blob_len = strlen(blob);
}

static const char blob1[] = "{\"format\":\"jetprof-model/1\",\"run\":1}";
static const char blob2[] = "{\"format\":\"jetprof-model/1\",\"run\":2}";

static void insert_ok(struct fixture *fx, struct db_model *m, size_t n)
{
    char err[512];
    if (db_models_insert(fx->db, m, n, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    for (size_t i = 0; i < n; i++) {
        assert_true(m[i].id > 0);
        assert_int_equal(strlen(m[i].created_at), 24);
        assert_string_equal(m[i].created_at, m[0].created_at); /* one run, one time */
    }
}

static void test_insert_and_newest(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_model run1[3], run2[1];
    fill_model(&run1[0], "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    fill_model(&run1[1], "linear", "power_mw:VDD_IN", fx->dev_a, HASH_A, blob1);
    fill_model(&run1[2], "layernorm", "latency_us", fx->dev_a, HASH_A, blob1);
    insert_ok(fx, run1, 3);
    /* A later run retrains linear's latency only, on the same board with other sampling. */
    fill_model(&run2[0], "linear", "latency_us", fx->dev_a2, HASH_B, blob2);
    insert_ok(fx, run2, 1);
    assert_true(run2[0].id > run1[2].id);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 4);

    struct db_model *got;
    size_t n;
    assert_int_equal(db_models_newest(fx->db, fx->dev_a, false, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    /* ordered by kernel, then target */
    assert_string_equal(got[0].kernel, "layernorm");
    assert_string_equal(got[1].kernel, "linear");
    assert_string_equal(got[1].target, "latency_us");
    assert_string_equal(got[2].target, "power_mw:VDD_IN");
    assert_int_equal(got[1].id, run2[0].id); /* the newest latency model */
    assert_int_equal(got[1].device_id, fx->dev_a2);
    assert_string_equal(got[1].training_hash, HASH_B);
    assert_int_equal(got[2].id, run1[1].id); /* power from the first run */
    assert_int_equal(got[2].device_id, fx->dev_a);
    assert_string_equal(got[2].fingerprint, fx->fp_a);
    assert_true(got[2].simulated);
    assert_string_equal(got[2].metrics_json, METRICS);
    assert_string_equal(got[2].created_at, run1[1].created_at);
    for (size_t i = 0; i < n; i++)
        assert_null(got[i].blob); /* not asked for */
    db_models_free(got, n);

    /* From the other device row of the same board: the same set, blobs this time. */
    assert_int_equal(db_models_newest(fx->db, fx->dev_a2, true, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_non_null(got[1].blob);
    assert_int_equal(got[1].blob_len, strlen(blob2));
    assert_string_equal(got[1].blob, blob2);
    assert_string_equal(got[2].blob, blob1);
    db_models_free(got, n);

    /* Another board, and the same board with a real sensor, have none. */
    assert_int_equal(db_models_newest(fx->db, fx->dev_b, true, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(got);
    assert_int_equal(db_models_newest(fx->db, fx->dev_c, false, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    /* An unknown device is like nothing. */
    assert_int_equal(db_models_newest(fx->db, 999, false, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    db_models_free(NULL, 0);
}

static void test_insert_validation(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_model m;

    assert_int_equal(db_models_insert(fx->db, &m, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "none"));

    fill_model(&m, "", "latency_us", fx->dev_a, HASH_A, blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "kernel and target"));

    fill_model(&m, "linear", "latency_us", fx->dev_a, "abc", blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "training_hash"));
    assert_non_null(strstr(err, "linear latency_us"));
    fill_model(&m, "linear", "latency_us", fx->dev_a,
               "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "training_hash"));

    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    snprintf(m.metrics_json, sizeof m.metrics_json, "[1,2]");
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "metrics_json"));
    snprintf(m.metrics_json, sizeof m.metrics_json, "{\"rmse\":");
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "metrics_json"));

    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, "");
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "blob"));
    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, "not json");
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "blob is not a JSON object"));
    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, "[1]");
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an object"));

    fill_model(&m, "linear", "latency_us", -4, HASH_A, blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "negative"));

    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 0);

    /* device_id 0 stores NULL; such a model belongs to no device. */
    fill_model(&m, "linear", "latency_us", 0, HASH_A, blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models WHERE device_id IS NULL"), 1);
    struct db_model *got;
    size_t n;
    assert_int_equal(db_models_newest(fx->db, fx->dev_a, false, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

/* A run fails halfway: nothing of it is stored, and no id is reported. */
static void test_insert_all_or_nothing(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_model run[3];
    fill_model(&run[0], "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    fill_model(&run[1], "linear", "power_mw:VDD_IN", fx->dev_a, HASH_A, blob1);
    fill_model(&run[2], "linear", "power_mw:VDD_GPU", 999, HASH_A, blob1); /* no such device */
    assert_int_equal(db_models_insert(fx->db, run, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    assert_non_null(strstr(err, "power_mw:VDD_GPU"));
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(run[i].id, 0);

    /* A disk failure on the second row. */
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "CREATE TEMP TRIGGER fail_power BEFORE INSERT ON models"
                                  " WHEN NEW.target LIKE 'power_mw:%' BEGIN"
                                  " SELECT RAISE(ABORT, 'injected disk failure'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    run[2].device_id = fx->dev_a;
    assert_int_equal(db_models_insert(fx->db, run, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "injected disk failure"));
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 0);
    assert_int_equal(sqlite3_exec(fx->db->conn, "DROP TRIGGER fail_power", NULL, NULL, NULL),
                     SQLITE_OK);

    /* The connection is usable afterwards (no transaction left open). */
    assert_int_equal(sqlite3_get_autocommit(fx->db->conn), 1);
    assert_int_equal(db_models_insert(fx->db, run, 3, err, sizeof err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 3);
}

/* A read-only database refuses the write with SQLite's reason. */
static void test_insert_read_only(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_model m;
    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    assert_int_equal(sqlite3_exec(fx->db->conn, "PRAGMA query_only = ON", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(m.id, 0);
    assert_int_equal(sqlite3_exec(fx->db->conn, "PRAGMA query_only = OFF", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 0);
}

/* ---- the history bound ---- */

/* Stores one model through db_models_insert_pruned; its id. */
static int64_t insert_pruned(struct fixture *fx, const char *kernel, const char *target,
                             int64_t device, unsigned keep, size_t want_pruned)
{
    char err[512];
    struct db_model m;
    size_t pruned = 99;
    fill_model(&m, kernel, target, device, HASH_A, blob1);
    if (db_models_insert_pruned(fx->db, &m, 1, keep, &pruned, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_int_equal(pruned, want_pruned);
    assert_true(m.id > 0);
    return m.id;
}

/* Ids of kernel/target models on devices like `device`, newest first, in ids[]. */
static size_t history(struct fixture *fx, const char *kernel, const char *target,
                      int64_t device, int64_t *ids, size_t max)
{
    sqlite3_stmt *st;
    size_t n = 0;
    assert_int_equal(sqlite3_prepare_v2(fx->db->conn,
                                        "SELECT m.id FROM models m JOIN devices o ON o.id ="
                                        " m.device_id JOIN devices d ON d.id = ?3 AND"
                                        " o.board_model = d.board_model AND o.sensor_backend ="
                                        " d.sensor_backend WHERE m.kernel = ?1 AND m.target = ?2"
                                        " ORDER BY m.id DESC",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, device);
    while (sqlite3_step(st) == SQLITE_ROW && n < max)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_prune_keeps_newest(void **state)
{
    struct fixture *fx = *state;
    int64_t latency[5], ids[8];

    /* Other boards' and other kernels' models, stored first (oldest ids). */
    int64_t other_board[3], real_sensor[3];
    for (int i = 0; i < 3; i++) {
        other_board[i] = insert_pruned(fx, "linear", "latency_us", fx->dev_b, 0, 0);
        real_sensor[i] = insert_pruned(fx, "linear", "latency_us", fx->dev_c, 0, 0);
    }
    int64_t layernorm = insert_pruned(fx, "layernorm", "latency_us", fx->dev_a, 3, 0);
    int64_t power = insert_pruned(fx, "linear", "power_mw:VDD_IN", fx->dev_a, 3, 0);

    /* Five trainings of linear latency on board X, the sampling changing in
     * between (dev_a2 is like dev_a): the newest 3 stay. */
    for (int i = 0; i < 5; i++)
        latency[i] = insert_pruned(fx, "linear", "latency_us", i % 2 ? fx->dev_a2 : fx->dev_a,
                                   3, i < 3 ? 0 : 1);
    assert_int_equal(history(fx, "linear", "latency_us", fx->dev_a, ids, 8), 3);
    assert_int_equal(ids[0], latency[4]);
    assert_int_equal(ids[1], latency[3]);
    assert_int_equal(ids[2], latency[2]);

    /* Untouched: the other boards' models of the same kernel and target, the
     * other kernel, the other target of the same kernel. */
    assert_int_equal(history(fx, "linear", "latency_us", fx->dev_b, ids, 8), 3);
    assert_int_equal(ids[2], other_board[0]);
    assert_int_equal(history(fx, "linear", "latency_us", fx->dev_c, ids, 8), 3);
    assert_int_equal(ids[2], real_sensor[0]);
    assert_int_equal(history(fx, "layernorm", "latency_us", fx->dev_a, ids, 8), 1);
    assert_int_equal(ids[0], layernorm);
    assert_int_equal(history(fx, "linear", "power_mw:VDD_IN", fx->dev_a, ids, 8), 1);
    assert_int_equal(ids[0], power);

    /* A smaller bound applies at the next training; the newest is what
     * db_models_newest reads. */
    int64_t last = insert_pruned(fx, "linear", "latency_us", fx->dev_a, 1, 3);
    assert_int_equal(history(fx, "linear", "latency_us", fx->dev_a, ids, 8), 1);
    assert_int_equal(ids[0], last);
    struct db_model *got;
    size_t n;
    char err[512];
    assert_int_equal(db_models_newest(fx->db, fx->dev_a2, false, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(got[1].id, last);
    db_models_free(got, n);

    /* keep 0 (db_models_insert) keeps everything. */
    insert_pruned(fx, "linear", "latency_us", fx->dev_a, 0, 0);
    struct db_model m;
    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    assert_int_equal(db_models_insert(fx->db, &m, 1, err, sizeof err), 0);
    assert_int_equal(history(fx, "linear", "latency_us", fx->dev_a, ids, 8), 3);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 3 + 3 + 1 + 1 + 3);
}

/* Several targets in one run: each keeps its own newest; device-less models form
 * their own history. */
static void test_prune_run_and_no_device(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    for (int r = 0; r < 4; r++) {
        struct db_model run[2];
        size_t pruned = 99;
        fill_model(&run[0], "linear", "latency_us", fx->dev_a, HASH_A, blob1);
        fill_model(&run[1], "linear", "power_mw:VDD_IN", fx->dev_a, HASH_A, blob2);
        assert_int_equal(db_models_insert_pruned(fx->db, run, 2, 2, &pruned, err, sizeof err), 0);
        assert_int_equal(pruned, r < 2 ? 0 : 2);
    }
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models WHERE target = 'latency_us'"), 2);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models WHERE target LIKE 'power%'"), 2);

    for (int r = 0; r < 3; r++)
        insert_pruned(fx, "linear", "latency_us", 0, 2, r < 2 ? 0 : 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models WHERE device_id IS NULL"), 2);
    assert_int_equal(
        count(fx->db, "SELECT count(*) FROM models WHERE device_id IS NOT NULL"), 4);
    /* pruned may be NULL */
    struct db_model m;
    fill_model(&m, "linear", "latency_us", fx->dev_a, HASH_A, blob1);
    assert_int_equal(db_models_insert_pruned(fx->db, &m, 1, 2, NULL, err, sizeof err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models WHERE target = 'latency_us'"
                                   " AND device_id IS NOT NULL"),
                     2);
}

/* A failed run deletes nothing: neither when an insert fails nor when the
 * deletion itself does. */
static void test_prune_failed_run_deletes_nothing(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    for (int i = 0; i < 3; i++) {
        insert_pruned(fx, "linear", "latency_us", fx->dev_a, 3, 0);
        insert_pruned(fx, "linear", "power_mw:VDD_IN", fx->dev_a, 3, 0);
    }
    int64_t before = count(fx->db, "SELECT count(*) FROM models");
    int64_t max_id = count(fx->db, "SELECT max(id) FROM models");
    assert_int_equal(before, 6);

    struct db_model run[3];
    size_t pruned = 99;
    fill_model(&run[0], "linear", "latency_us", fx->dev_a, HASH_B, blob2);
    fill_model(&run[1], "linear", "power_mw:VDD_IN", fx->dev_a, HASH_B, blob2);
    fill_model(&run[2], "linear", "power_mw:VDD_GPU", 999, HASH_B, blob2); /* no such device */
    assert_int_equal(db_models_insert_pruned(fx->db, run, 3, 1, &pruned, err, sizeof err), -1);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    assert_int_equal(pruned, 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), before);
    assert_int_equal(count(fx->db, "SELECT max(id) FROM models"), max_id);
    for (int i = 0; i < 3; i++)
        assert_int_equal(run[i].id, 0);

    /* The deletion fails (an injected disk error): the new models go too. */
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "CREATE TEMP TRIGGER fail_delete BEFORE DELETE ON models"
                                  " BEGIN SELECT RAISE(ABORT, 'injected delete failure'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    run[2].device_id = fx->dev_a;
    assert_int_equal(db_models_insert_pruned(fx->db, run, 3, 1, &pruned, err, sizeof err), -1);
    assert_non_null(strstr(err, "injected delete failure"));
    assert_non_null(strstr(err, "deleting the older models of linear latency_us"));
    assert_int_equal(pruned, 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), before);
    assert_int_equal(count(fx->db, "SELECT max(id) FROM models"), max_id);
    assert_int_equal(sqlite3_exec(fx->db->conn, "DROP TRIGGER fail_delete", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_get_autocommit(fx->db->conn), 1);

    /* The same run succeeds now, keeping the newest of each pair. */
    assert_int_equal(db_models_insert_pruned(fx->db, run, 3, 1, &pruned, err, sizeof err), 0);
    assert_int_equal(pruned, 3 + 3 + 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM models"), 3);
    assert_int_equal(count(fx->db, "SELECT min(id) FROM models"), run[0].id);
}

/* ---- training data ---- */

/* Stores one measurement of kernel on device (through a job, as the runner does). */
static int64_t store(struct fixture *fx, int64_t device, const char *kernel, const char *dtype,
                     const char *quality, double latency_us, unsigned rails)
{
    char err[512], params[128], key[160];
    int k = ++fx->next_job;
    if (strcmp(kernel, "layernorm") == 0)
        snprintf(params, sizeof params, "{\"rows\":%d,\"cols\":64}", k);
    else
        snprintf(params, sizeof params, "{\"batch\":%d,\"in\":16,\"out\":32}", k);
    snprintf(key, sizeof key, "%s:%s:%s", kernel, dtype, params);

    struct db_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "%s", kernel);
    snprintf(job.dtype, sizeof job.dtype, "%s", dtype);
    snprintf(job.params_json, sizeof job.params_json, "%s", params);
    snprintf(job.config_key, sizeof job.config_key, "%s", key);
    job.max_attempts = 3;
    if (db_job_insert(fx->db, &job, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(fx->db, &claimed, err, sizeof err), 1);

    struct db_measurement m;
    memset(&m, 0, sizeof m);
    m.device_id = device;
    snprintf(m.kernel, sizeof m.kernel, "%s", kernel);
    snprintf(m.dtype, sizeof m.dtype, "%s", dtype);
    snprintf(m.params_json, sizeof m.params_json, "%s", params);
    snprintf(m.config_key, sizeof m.config_key, "%s", key);
    snprintf(m.executor, sizeof m.executor, "cpu");
    snprintf(m.sensor, sizeof m.sensor, "sim");
    m.simulated = true;
    m.launches = 10;
    m.repeats = 2;
    m.latency_us = latency_us;
    m.latency_us_min = m.latency_us_max = latency_us;
    m.window_ms = 20;
    snprintf(m.energy_rail, sizeof m.energy_rail, "VDD_IN");
    m.power_mw = 5000 + k;
    snprintf(m.quality, sizeof m.quality, "%s", quality);
    static const char *const names[] = {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"};
    for (unsigned r = 0; r < rails && r < 3; r++) {
        struct db_rail_reading *rr = &m.rails[m.rail_count++];
        snprintf(rr->rail, sizeof rr->rail, "%s", names[r]);
        rr->is_board_input = r == 0;
        rr->power_mw = 1000.0 * (r + 1) + k;
        rr->sample_ratio = 1;
    }
    int64_t id = 0;
    if (db_job_finish(fx->db, claimed.id, &m, &id, err, sizeof err) != 0)
        fail_msg("finish: %s", err);
    return id;
}

static void test_training_rows(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    /* Board X: 5 ok linear (one fp16, one on the other sampling row), 2 suspect,
     * one with no latency (unusable), one without rails; board Y and the real
     * sensor have their own; layernorm has 2. */
    for (int i = 0; i < 3; i++)
        store(fx, fx->dev_a, "linear", "fp32", "ok", 100.0 + i, 3);
    store(fx, fx->dev_a, "linear", "fp16", "ok", 50.0, 3);
    int64_t other_sampling = store(fx, fx->dev_a2, "linear", "fp32", "ok", 70.0, 3);
    store(fx, fx->dev_a, "linear", "fp32", "suspect", 200.0, 3);
    store(fx, fx->dev_a, "linear", "fp32", "suspect", 201.0, 3);
    store(fx, fx->dev_a, "linear", "fp32", "ok", 0.0, 3);
    int64_t no_rails = store(fx, fx->dev_a, "linear", "fp32", "suspect", 300.0, 0);
    store(fx, fx->dev_b, "linear", "fp32", "ok", 10.0, 3);
    store(fx, fx->dev_c, "linear", "fp32", "ok", 10.0, 3);
    store(fx, fx->dev_a, "layernorm", "fp32", "ok", 5.0, 2);
    store(fx, fx->dev_a, "layernorm", "fp32", "suspect", 6.0, 2);

    struct db_training_row *rows;
    size_t n;
    assert_int_equal(db_training_rows(fx->db, "linear", fx->dev_a, "ok", &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 5);
    bool saw_fp16 = false, saw_other = false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(rows[i - 1].uid, rows[i].uid) < 0); /* uid order */
        assert_int_equal(strlen(rows[i].uid), 36);
        assert_true(rows[i].latency_us > 0 && rows[i].latency_us < 200);
        assert_int_equal(rows[i].rail_count, 3);
        assert_string_equal(rows[i].rails[0].rail, "VDD_IN");
        assert_string_equal(rows[i].rails[1].rail, "VDD_CPU_GPU_CV");
        assert_string_equal(rows[i].rails[2].rail, "VDD_SOC");
        assert_true(rows[i].rails[1].power_mw > 2000 && rows[i].rails[1].power_mw < 3000);
        assert_non_null(strstr(rows[i].params_json, "\"in\":16"));
        saw_fp16 |= strcmp(rows[i].dtype, "fp16") == 0;
        saw_other |= rows[i].measurement_id == other_sampling;
    }
    assert_true(saw_fp16);
    assert_true(saw_other);
    free(rows);

    /* quality any: the suspect ones too, the rail-less one with no rails. */
    assert_int_equal(db_training_rows(fx->db, "linear", fx->dev_a2, NULL, &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 8);
    bool saw_no_rails = false;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].measurement_id == no_rails) {
            saw_no_rails = true;
            assert_int_equal(rows[i].rail_count, 0);
            assert_true(rows[i].latency_us == 300.0);
        } else {
            assert_int_equal(rows[i].rail_count, 3);
        }
    }
    assert_true(saw_no_rails);
    free(rows);

    assert_int_equal(db_training_rows(fx->db, "layernorm", fx->dev_a, "ok", &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].rail_count, 2);
    assert_string_equal(rows[0].params_json, "{\"rows\":12,\"cols\":64}");
    free(rows);

    /* Other boards see only their own. */
    assert_int_equal(db_training_rows(fx->db, "linear", fx->dev_b, NULL, &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 1);
    assert_true(rows[0].latency_us == 10.0);
    free(rows);
    assert_int_equal(db_training_rows(fx->db, "softmax", fx->dev_a, NULL, &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(db_training_rows(fx->db, "", fx->dev_a, NULL, &rows, &n, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "kernel"));

    /* Counts agree with the rows. */
    struct db_training_count *c;
    assert_int_equal(db_training_counts(fx->db, fx->dev_a, "ok", &c, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].kernel, "layernorm");
    assert_int_equal(c[0].rows, 1);
    assert_string_equal(c[1].kernel, "linear");
    assert_int_equal(c[1].rows, 5);
    free(c);
    assert_int_equal(db_training_counts(fx->db, fx->dev_a, NULL, &c, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].rows, 2);
    assert_int_equal(c[1].rows, 8);
    free(c);
    assert_int_equal(db_training_counts(fx->db, fx->dev_c, "suspect", &c, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 0);
    assert_null(c);
}

static void test_find_latest(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t first = store(fx, fx->dev_a, "linear", "fp32", "ok", 100.0, 1);
    char key[160];
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(fx->db->conn,
                                        "SELECT config_key FROM measurements WHERE id = ?1", -1,
                                        &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, first);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(key, sizeof key, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);

    int64_t id = -1;
    assert_int_equal(db_measurement_find_latest(fx->db, key, fx->dev_a, &id, err, sizeof err), 1);
    assert_int_equal(id, first);

    /* The same configuration again, measured on the other sampling row: the newest wins. */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO measurements (uid, device_id, kernel, dtype, params_json, config_key,"
             " executor, sensor, simulated, launches, repeats, latency_us, latency_us_min,"
             " latency_us_max, latency_cv, window_ms, settle_ms, energy_rail, energy_uj,"
             " dynamic_energy_uj, power_mw, quality, created_at) SELECT 'again', %lld, kernel,"
             " dtype, params_json, config_key, executor, sensor, simulated, launches, repeats,"
             " 90, 90, 90, 0, 20, 0, 'VDD_IN', 1, 0, 1, 'suspect', created_at FROM"
             " measurements WHERE id = %lld",
             (long long)fx->dev_a2, (long long)first);
    assert_int_equal(sqlite3_exec(fx->db->conn, sql, NULL, NULL, NULL), SQLITE_OK);
    int64_t second = sqlite3_last_insert_rowid(fx->db->conn);
    assert_int_equal(db_measurement_find_latest(fx->db, key, fx->dev_a, &id, err, sizeof err), 1);
    assert_int_equal(id, second);

    /* Not on another board, not for another configuration. */
    assert_int_equal(db_measurement_find_latest(fx->db, key, fx->dev_b, &id, err, sizeof err), 0);
    assert_int_equal(id, 0);
    assert_int_equal(db_measurement_find_latest(fx->db, "linear:fp32:batch=9999,in=1,out=1",
                                                fx->dev_a, &id, err, sizeof err),
                     0);
    assert_int_equal(db_measurement_find_latest(fx->db, "", fx->dev_a, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "config_key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_and_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_run_and_no_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_failed_run_deletes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_latest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
