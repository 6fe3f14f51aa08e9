/*
 * test_db_schema.c - db_open and what it promises: parent directory, WAL,
 * synchronous=FULL, foreign keys, migrations to the newest schema (a version-2
 * database upgrades to 3 keeping its rows; a failed migration 3 leaves version
 * 2 intact), refusal of a newer schema and of unusable paths, data surviving a
 * reopen, the connection pool and device rows keyed by fingerprint.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "db/db_internal.h"
#include "common/log.h"

struct fixture {
    char dir[64];
    char path[128]; /* <dir>/sub/jetprof.db: the parent does not exist yet */
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
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-schema-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/sub/jetprof.db", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* One integer answer of a query on the db's own connection. */
static int64_t query_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void query_text(struct db *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static void test_fresh_open(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    char sub[128];
    struct stat st;
    snprintf(sub, sizeof sub, "%s/sub", fx->dir);
    assert_int_not_equal(stat(sub, &st), 0);

    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);
    assert_non_null(db);
    /* parent directory created, mode 0755 */
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0755 & ~mask);

    assert_true(db_schema_latest() >= 1);
    assert_int_equal(db_schema_version(db), db_schema_latest());

    char mode[32];
    query_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), 5000);

    static const char *const tables[] = {"devices",      "batches",      "jobs",
                                         "measurements", "rail_readings", "models",
                                         "graphs",       "graph_measurements",
                                         "batch_rounds"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_prepare_v2(db->conn,
                                            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                                            -1, &q, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(q, 1, tables[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        if (sqlite3_column_int(q, 0) != 1)
            fail_msg("table %s missing", tables[i]);
        sqlite3_finalize(q);
    }
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                   " AND name IN ('jobs_claim', 'measurements_kernel_dtype',"
                                   " 'measurements_config_key', 'graph_measurements_graph')"),
                     4);
    /* The job state machine is enforced by the schema too. */
    assert_int_not_equal(sqlite3_exec(db->conn,
                                      "INSERT INTO jobs (kernel, dtype, params_json, config_key,"
                                      " state, max_attempts, created_at) VALUES ('k', 'fp32',"
                                      " '{}', 'k', 'lost', 1, 'now')",
                                      NULL, NULL, NULL),
                     SQLITE_OK);
    db_close(db);
}

static void fill_device(struct db_device *d, const char *hostname)
{
    memset(d, 0, sizeof *d);
    snprintf(d->board_model, sizeof d->board_model, "NVIDIA Jetson AGX Orin Developer Kit");
    snprintf(d->l4t_version, sizeof d->l4t_version, "R35.4.1");
    snprintf(d->gpu_name, sizeof d->gpu_name, "cpu");
    snprintf(d->executor, sizeof d->executor, "cpu");
    snprintf(d->sensor_backend, sizeof d->sensor_backend, "sim");
    snprintf(d->sampling_json, sizeof d->sampling_json, "{\"period_us\":1000}");
    snprintf(d->hostname, sizeof d->hostname, "%s", hostname);
    d->simulated = true;
}

static void test_reopen_keeps_data(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    struct db_device dev;
    int64_t id1 = 0, id2 = 0;

    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);
    fill_device(&dev, "board-a");
    assert_int_equal(db_device_upsert(db, &dev, &id1, err, sizeof err), 0);
    assert_true(id1 > 0);
    db_close(db);

    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), db_schema_latest());
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 1);
    fill_device(&dev, "board-a");
    assert_int_equal(db_device_upsert(db, &dev, &id2, err, sizeof err), 0);
    assert_int_equal(id1, id2);
    db_close(db);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);
    db_close(db);

    int newer = db_schema_latest() + 5;
    sqlite3 *raw;
    char sql[64];
    assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", newer);
    assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    db = NULL;
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), -1);
    assert_null(db);
    char want_newer[32], want_latest[32];
    snprintf(want_newer, sizeof want_newer, "version %d", newer);
    snprintf(want_latest, sizeof want_latest, "(%d)", db_schema_latest());
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, want_newer));
    assert_non_null(strstr(err, want_latest));
}

static void test_unusable_paths(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";

    /* Parent cannot be created (even root cannot mkdir in /proc). */
    const char *no_parent = "/proc/jetprof-no-such-dir/jetprof.db";
    assert_int_equal(db_open(no_parent, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, no_parent));
    assert_non_null(strstr(err, "/proc/jetprof-no-such-dir"));

    /* Parent exists but the file cannot be created: SQLite's message names it. */
    const char *no_file = "/proc/jetprof-unit-test.db";
    err[0] = '\0';
    assert_int_equal(db_open(no_file, &db, err, sizeof err), -1);
    assert_non_null(strstr(err, no_file));
    assert_non_null(strstr(err, "unable to open"));

    /* Parent is a regular file. */
    char file[128], under_file[160];
    snprintf(file, sizeof file, "%s/plain", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(under_file, sizeof under_file, "%s/jetprof.db", file);
    err[0] = '\0';
    assert_int_equal(db_open(under_file, &db, err, sizeof err), -1);
    assert_non_null(strstr(err, under_file));
    assert_non_null(strstr(err, "not a directory"));

    /* A file that is not a database. */
    char junk[128];
    snprintf(junk, sizeof junk, "%s/junk.db", fx->dir);
    f = fopen(junk, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database\n", f);
    fclose(f);
    err[0] = '\0';
    assert_int_equal(db_open(junk, &db, err, sizeof err), -1);
    assert_non_null(strstr(err, junk));
    assert_non_null(strstr(err, "not a database"));

    err[0] = '\0';
    assert_int_equal(db_open("", &db, err, sizeof err), -1);
    assert_true(err[0] != '\0');
}

static void test_failed_migration_changes_nothing(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", fx->dir);
    assert_int_equal(mkdir(sub, 0755), 0);

    /* A version-0 file that already has a 'models' table: migration 1 fails late,
     * after it created devices, batches, jobs... all of which must roll back. */
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TABLE models (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    struct db *db = NULL;
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, "migration 0 -> 1"));
    assert_non_null(strstr(err, "models"));

    assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*) FROM sqlite_master WHERE type ="
                                             " 'table'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1); /* only the pre-existing table */
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

/* A version-2 database (as the jetprof before whole graphs left it) with a
 * device, a batch, a job and its measurement migrates to the newest schema:
 * the rows stay, the job reads as a kernel job, the batch is not an open
 * adaptive one, and the new tables are there and empty. */
static void test_v2_database_upgrades(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    assert_int_equal(db_schema_latest(), 3);
    assert_int_equal(db_open_version(fx->path, 2, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'graphs'"),
                     0);
    struct db_device dev;
    int64_t device_id = 0;
    fill_device(&dev, "old");
    assert_int_equal(db_device_upsert(db, &dev, &device_id, err, sizeof err), 0);
    assert_int_equal(device_id, 1); /* the measurement below names it */
    assert_int_equal(sqlite3_exec(db->conn,
                                  "INSERT INTO batches (id, created_at, kind, spec_json, dtype)"
                                  " VALUES (3, '2026-01-01T00:00:00.000Z', 'grid', '{}', 'fp32');"
                                  "INSERT INTO jobs (id, batch_id, kernel, dtype, params_json,"
                                  " config_key, state, max_attempts, created_at) VALUES (5, 3,"
                                  " 'linear', 'fp32', '{\"batch\":1}', 'linear:fp32:x', 'done',"
                                  " 3, '2026-01-01T00:00:00.000Z');"
                                  "INSERT INTO measurements (id, uid, job_id, device_id, kernel,"
                                  " dtype, params_json, config_key, executor, sensor, simulated,"
                                  " launches, repeats, latency_us, latency_us_min, latency_us_max,"
                                  " latency_cv, window_ms, settle_ms, energy_rail, energy_uj,"
                                  " dynamic_energy_uj, power_mw, quality, created_at) VALUES (9,"
                                  " 'u-9', 5, 1, 'linear', 'fp32', '{\"batch\":1}',"
                                  " 'linear:fp32:x', 'cpu', 'sim', 1, 1, 1, 5, 5, 5, 0, 1, 0,"
                                  " 'VDD_IN', 1, 1, 1, 'ok', '2026-01-01T00:00:00.000Z');"
                                  "UPDATE jobs SET measurement_id = 9 WHERE id = 5;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    db_close(db);

    db = NULL;
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), 3);
    struct db_job job;
    assert_int_equal(db_job_get(db, 5, &job, err, sizeof err), 1);
    assert_int_equal(job.graph_id, 0);
    assert_int_equal(job.measurement_id, 9);
    assert_int_equal(job.state, DB_JOB_DONE);
    json_t *m = db_measurement_json(db, 9, err, sizeof err);
    assert_non_null(m);
    assert_null(json_object_get(m, "graph"));
    json_decref(m);
    assert_int_equal(query_int(db, "SELECT adaptive_open FROM batches WHERE id = 3"), 0);
    int64_t *ready = NULL;
    size_t n = 9;
    assert_int_equal(db_adaptive_batches_ready(db, &ready, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    json_t *graphs = db_graphs_json(db, 0, 10, err, sizeof err);
    assert_non_null(graphs);
    assert_int_equal(json_array_size(graphs), 0);
    json_decref(graphs);
    assert_int_equal(query_int(db, "SELECT count(*) FROM graph_measurements"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM batch_rounds"), 0);
    db_close(db);

    /* Out-of-range versions are refused. */
    assert_int_equal(db_open_version(fx->path, db_schema_latest() + 1, &db, err, sizeof err),
                     -1);
    assert_null(db);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(db_open_version(fx->path, -1, &db, err, sizeof err), -1);
}

/* Migration 3 fails late (a table it creates exists already): everything it did
 * rolls back, the database stays at version 2 and usable as such. */
static void test_failed_migration_3_changes_nothing(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    assert_int_equal(db_open_version(fx->path, 2, &db, err, sizeof err), 0);
    assert_int_equal(sqlite3_exec(db->conn, "CREATE TABLE batch_rounds (x)", NULL, NULL, NULL),
                     SQLITE_OK);
    db_close(db);

    db = NULL;
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), -1);
    assert_null(db);
    assert_non_null(strstr(err, "migration 2 -> 3"));
    assert_non_null(strstr(err, "batch_rounds"));

    assert_int_equal(db_open_version(fx->path, 2, &db, err, sizeof err), 0);
    assert_int_equal(db_schema_version(db), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                   " ('graphs', 'graph_measurements', 'graph_measurements_graph')"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_table_info('jobs')"
                                   " WHERE name = 'graph_id'"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_table_info('batches')"
                                   " WHERE name = 'adaptive_open'"),
                     0);
    db_close(db);
}

/* ---- pool ---- */

struct borrower {
    struct db_pool *pool;
    struct db *got;
    pthread_mutex_t mutex;
    int done;
};

static void *borrow(void *arg)
{
    struct borrower *b = arg;
    struct db *db = db_pool_acquire(b->pool);
    pthread_mutex_lock(&b->mutex);
    b->got = db;
    b->done = 1;
    pthread_mutex_unlock(&b->mutex);
    return NULL;
}

static void test_pool(void **state)
{
    struct fixture *fx = *state;
    struct db_pool *pool = NULL;
    char err[512] = "";

    assert_int_equal(db_pool_open(fx->path, 0, &pool, err, sizeof err), -1);
    assert_null(pool);
    assert_non_null(strstr(err, "pool size"));

    assert_int_equal(db_pool_open(fx->path, 2, &pool, err, sizeof err), 0);
    struct db *a = db_pool_acquire(pool);
    struct db *b = db_pool_acquire(pool);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(db_schema_version(a), db_schema_latest());

    /* Both borrowed: a third acquire blocks until one comes back. */
    struct borrower br = {.pool = pool};
    pthread_mutex_init(&br.mutex, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, borrow, &br), 0);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&br.mutex);
    int early = br.done;
    pthread_mutex_unlock(&br.mutex);
    assert_int_equal(early, 0);

    db_pool_release(pool, b);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(br.done, 1);
    assert_ptr_equal(br.got, b);
    pthread_mutex_destroy(&br.mutex);

    /* Connections of one pool see each other's writes. */
    struct db_device dev;
    int64_t id_a = 0, id_b = 0;
    fill_device(&dev, "pooled");
    assert_int_equal(db_device_upsert(a, &dev, &id_a, err, sizeof err), 0);
    assert_int_equal(db_device_upsert(br.got, &dev, &id_b, err, sizeof err), 0);
    assert_int_equal(id_a, id_b);

    db_pool_release(pool, a);
    db_pool_release(pool, br.got);
    db_pool_close(pool);

    /* A pool on an unusable path fails with the path in the message. */
    pool = NULL;
    assert_int_equal(db_pool_open("/proc/jetprof-no-such-dir/x.db", 3, &pool, err, sizeof err),
                     -1);
    assert_null(pool);
    assert_non_null(strstr(err, "/proc/jetprof-no-such-dir/x.db"));
}

/* ---- devices ---- */

static void test_device_fingerprint(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    char err[512] = "";
    assert_int_equal(db_open(fx->path, &db, err, sizeof err), 0);

    struct db_device a, b;
    int64_t id_a = 0, id_b = 0, id_c = 0;
    fill_device(&a, "host-1");
    assert_int_equal(db_device_upsert(db, &a, &id_a, err, sizeof err), 0);
    assert_int_equal(strlen(a.fingerprint), 64);
    assert_int_equal(strspn(a.fingerprint, "0123456789abcdef"), 64);

    /* Same setup, renamed host: same device, hostname and last_seen updated. */
    fill_device(&b, "host-2");
    assert_int_equal(db_device_upsert(db, &b, &id_b, err, sizeof err), 0);
    assert_string_equal(a.fingerprint, b.fingerprint);
    assert_int_equal(id_a, id_b);
    char host[64];
    query_text(db, "SELECT hostname FROM devices", host, sizeof host);
    assert_string_equal(host, "host-2");

    /* Any fingerprint field changes the device. */
    fill_device(&b, "host-2");
    snprintf(b.sensor_backend, sizeof b.sensor_backend, "ina3221-hwmon");
    b.simulated = false;
    assert_int_equal(db_device_upsert(db, &b, &id_c, err, sizeof err), 0);
    assert_string_not_equal(a.fingerprint, b.fingerprint);
    assert_int_not_equal(id_a, id_c);

    /* Fields are joined unambiguously: moving a character between fields matters. */
    struct db_device c, d;
    fill_device(&c, "h");
    fill_device(&d, "h");
    snprintf(c.l4t_version, sizeof c.l4t_version, "R35");
    snprintf(c.cuda_version, sizeof c.cuda_version, "11.4");
    snprintf(d.l4t_version, sizeof d.l4t_version, "R351");
    snprintf(d.cuda_version, sizeof d.cuda_version, "1.4");
    assert_int_equal(db_device_upsert(db, &c, NULL, err, sizeof err), 0);
    assert_int_equal(db_device_upsert(db, &d, NULL, err, sizeof err), 0);
    assert_string_not_equal(c.fingerprint, d.fingerprint);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 4);

    /* Missing required fields are refused, naming them. */
    fill_device(&b, "x");
    b.board_model[0] = '\0';
    assert_int_equal(db_device_upsert(db, &b, &id_c, err, sizeof err), -1);
    assert_non_null(strstr(err, "board_model"));
    db_close(db);
}

int main(void)
{
    jp_log_set_level(JP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_database_upgrades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_3_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_fingerprint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
