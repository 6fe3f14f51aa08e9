/*
 * test_db_measurements.c - db_job_finish's one-transaction promise (measurement,
 * rail readings and job done together, or nothing and the job still running),
 * input validation, the Measurement JSON object of the team brief, filtered walks
 * with after/limit paging, and the RFC 4180 CSV export.
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

struct fixture {
    char dir[64];
    char path[128];
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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-meas-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/jetprof.db", fx->dir);
    struct db_device dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "not a Jetson (x86_64)");
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

static int64_t count(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Inserts and claims a job; returns its id (running). */
static int64_t running_job(struct db *db, const char *kernel, const char *params)
{
    struct db_job job;
    char err[512];
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "%s", kernel);
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "%s", params);
    snprintf(job.config_key, sizeof job.config_key, "%s:fp32:%s", kernel, params);
    job.max_attempts = 3;
    job.priority = DB_PRIORITY_ADHOC;
    if (db_job_insert(db, &job, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(db, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.id, job.id);
    return job.id;
}

static void add_rail(struct db_measurement *m, const char *name, bool board_input,
                     double power_mw)
{
    struct db_rail_reading *r = &m->rails[m->rail_count++];
    memset(r, 0, sizeof *r);
    snprintf(r->rail, sizeof r->rail, "%s", name);
    r->is_board_input = board_input;
    r->power_mw = power_mw;
    r->idle_power_mw = 4500.1;
    r->dynamic_power_mw = power_mw - 4500.1;
    r->energy_uj = m->latency_us * power_mw / 1000.0;
    r->dynamic_energy_uj = m->latency_us * r->dynamic_power_mw / 1000.0;
    r->power_cv = 0.01;
    r->samples = 197;
    r->expected_samples = 196.7;
    r->sample_ratio = 1.0;
}

static void fill_measurement(struct db_measurement *m, int64_t device_id, const char *kernel,
                             const char *dtype, const char *params, const char *quality)
{
    memset(m, 0, sizeof *m);
    m->device_id = device_id;
    snprintf(m->kernel, sizeof m->kernel, "%s", kernel);
    snprintf(m->dtype, sizeof m->dtype, "%s", dtype);
    snprintf(m->params_json, sizeof m->params_json, "%s", params);
    snprintf(m->config_key, sizeof m->config_key, "%s:%s:%s", kernel, dtype, params);
    snprintf(m->executor, sizeof m->executor, "cpu");
    snprintf(m->sensor, sizeof m->sensor, "sim");
    m->simulated = true;
    m->launches = 23;
    m->repeats = 3;
    m->latency_us = 8712.3;
    m->latency_us_min = 8650.1;
    m->latency_us_max = 8790.0;
    m->latency_cv = 0.006;
    m->window_ms = 201.7;
    m->settle_ms = 5;
    snprintf(m->energy_rail, sizeof m->energy_rail, "VDD_IN");
    m->power_mw = 7310.2;
    m->energy_uj = m->latency_us * m->power_mw / 1000.0;
    m->dynamic_energy_uj = 24480.9;
    snprintf(m->quality, sizeof m->quality, "%s", quality);
    if (strcmp(quality, "suspect") == 0)
        snprintf(m->quality_reasons, sizeof m->quality_reasons,
                 "[\"sample ratio 0.85 on VDD_IN is below 0.90\"]");
    snprintf(m->device_state_json, sizeof m->device_state_json,
             "{\"gpu_clock_mhz\":1300,\"power_mode\":\"MAXN\"}");
    add_rail(m, "VDD_IN", true, 7310.2);
    add_rail(m, "VDD_GPU_SOC", false, 3100.5);
}

static int64_t store(struct fixture *fx, const char *kernel, const char *dtype,
                     const char *params, const char *quality)
{
    struct db_measurement m;
    char err[512];
    int64_t job = running_job(fx->db, kernel, params);
    fill_measurement(&m, fx->device_id, kernel, dtype, params, quality);
    int64_t id = 0;
    if (db_job_finish(fx->db, job, &m, &id, err, sizeof err) != 0)
        fail_msg("finish: %s", err);
    return id;
}

/* ---- finish ---- */

static void test_finish_writes_all(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t job_id = running_job(fx->db, "linear_relu", "{\"batch\":64,\"in\":256,\"out\":512}");
    struct db_measurement m;
    fill_measurement(&m, fx->device_id, "linear_relu", "fp32",
                     "{\"batch\":64,\"in\":256,\"out\":512}", "ok");
    int64_t id = 0;
    assert_int_equal(db_job_finish(fx->db, job_id, &m, &id, err, sizeof err), 0);
    assert_true(id > 0);
    assert_int_equal(m.job_id, job_id);

    /* uid: RFC 4122 version 4 */
    assert_int_equal(strlen(m.uid), 36);
    assert_int_equal(m.uid[8], '-');
    assert_int_equal(m.uid[14], '4');
    assert_non_null(strchr("89ab", m.uid[19]));
    assert_int_equal(strspn(m.uid, "0123456789abcdef-"), 36);
    assert_int_equal(strlen(m.created_at), 24);

    assert_int_equal(count(fx->db, "SELECT count(*) FROM measurements"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM rail_readings"), 2);
    struct db_job job;
    assert_int_equal(db_job_get(fx->db, job_id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_DONE);
    assert_int_equal(job.measurement_id, id);
    assert_true(job.finished_at[0] != '\0');

    /* A second finish of the same job is refused and writes nothing. */
    struct db_measurement again;
    fill_measurement(&again, fx->device_id, "linear_relu", "fp32",
                     "{\"batch\":64,\"in\":256,\"out\":512}", "ok");
    assert_int_equal(db_job_finish(fx->db, job_id, &again, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "done, not running"));
    assert_int_equal(count(fx->db, "SELECT count(*) FROM measurements"), 1);

    /* Two measurements get different uids; a caller's uid is kept. */
    int64_t job2 = running_job(fx->db, "linear_relu", "{\"batch\":1,\"in\":2,\"out\":3}");
    fill_measurement(&again, fx->device_id, "linear_relu", "fp32",
                     "{\"batch\":1,\"in\":2,\"out\":3}", "ok");
    snprintf(again.uid, sizeof again.uid, "imported-0001");
    assert_int_equal(db_job_finish(fx->db, job2, &again, NULL, err, sizeof err), 0);
    assert_string_equal(again.uid, "imported-0001");
    assert_int_equal(count(fx->db, "SELECT count(DISTINCT uid) FROM measurements"), 2);
}

static void test_finish_refuses_job_not_running(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "layernorm");
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"rows\":8,\"cols\":64}");
    snprintf(job.config_key, sizeof job.config_key, "layernorm:fp32:rows=8,cols=64");
    job.max_attempts = 3;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), 0);

    struct db_measurement m;
    fill_measurement(&m, fx->device_id, "layernorm", "fp32", "{\"rows\":8,\"cols\":64}", "ok");
    int64_t id = -7;
    assert_int_equal(db_job_finish(fx->db, job.id, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "queued, not running"));
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(id, -7);

    assert_int_equal(db_job_finish(fx->db, 9999, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "no such job"));

    /* failed jobs stay failed */
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(fx->db, &claimed, err, sizeof err), 1);
    assert_int_equal(db_job_fail(fx->db, claimed.id, "timeout", err, sizeof err), 0);
    assert_int_equal(db_job_finish(fx->db, claimed.id, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "failed, not running"));

    assert_int_equal(count(fx->db, "SELECT count(*) FROM measurements"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM rail_readings"), 0);
    assert_int_equal(db_job_get(fx->db, claimed.id, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.state, DB_JOB_FAILED);
    assert_int_equal(claimed.measurement_id, 0);
}

static void assert_nothing_written_and_running(struct fixture *fx, int64_t job_id)
{
    char err[512];
    struct db_job job;
    assert_int_equal(count(fx->db, "SELECT count(*) FROM measurements"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM rail_readings"), 0);
    assert_int_equal(db_job_get(fx->db, job_id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_RUNNING);
    assert_int_equal(job.measurement_id, 0);
    assert_string_equal(job.finished_at, "");
    /* and the connection is usable again: no transaction left open */
    assert_true(sqlite3_get_autocommit(fx->db->conn));
}

static void test_finish_failure_rolls_back(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t job_id = running_job(fx->db, "linear", "{\"batch\":2,\"in\":4,\"out\":8}");
    struct db_measurement m;
    fill_measurement(&m, fx->device_id, "linear", "fp32", "{\"batch\":2,\"in\":4,\"out\":8}",
                     "ok");

    /* The second rail insert fails, after the measurement row and first rail exist. */
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "CREATE TEMP TRIGGER fail_second_rail BEFORE INSERT ON"
                                  " main.rail_readings WHEN NEW.rail = 'VDD_GPU_SOC' BEGIN"
                                  " SELECT RAISE(ABORT, 'injected disk failure'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    int64_t id = 0;
    assert_int_equal(db_job_finish(fx->db, job_id, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "injected disk failure"));
    assert_non_null(strstr(err, "VDD_GPU_SOC"));
    assert_nothing_written_and_running(fx, job_id);

    /* The job-done update fails last: still all or nothing. */
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "DROP TRIGGER temp.fail_second_rail;"
                                  "CREATE TEMP TRIGGER fail_done BEFORE UPDATE OF state ON"
                                  " main.jobs WHEN NEW.state = 'done' BEGIN"
                                  " SELECT RAISE(ABORT, 'injected late failure'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(db_job_finish(fx->db, job_id, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "injected late failure"));
    assert_nothing_written_and_running(fx, job_id);

    /* A device that does not exist violates a foreign key at the first insert. */
    assert_int_equal(sqlite3_exec(fx->db->conn, "DROP TRIGGER temp.fail_done", NULL, NULL, NULL),
                     SQLITE_OK);
    m.device_id = 777;
    assert_int_equal(db_job_finish(fx->db, job_id, &m, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    assert_nothing_written_and_running(fx, job_id);

    /* With the fault gone the same job finishes normally. */
    m.device_id = fx->device_id;
    assert_int_equal(db_job_finish(fx->db, job_id, &m, &id, err, sizeof err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM rail_readings"), 2);
}

static void test_finish_validation(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t job_id = running_job(fx->db, "linear", "{\"batch\":2,\"in\":4,\"out\":8}");
    struct db_measurement m;
    const char *p = "{\"batch\":2,\"in\":4,\"out\":8}";

#define REFUSED(mutation, needle)                                                          \
    do {                                                                                   \
        fill_measurement(&m, fx->device_id, "linear", "fp32", p, "ok");                    \
        mutation;                                                                          \
        err[0] = '\0';                                                                     \
        assert_int_equal(db_job_finish(fx->db, job_id, &m, NULL, err, sizeof err), -1);    \
        if (strstr(err, needle) == NULL)                                                   \
            fail_msg("expected '%s' in: %s", needle, err);                                 \
    } while (0)

    REFUSED(snprintf(m.quality, sizeof m.quality, "great"), "quality 'great'");
    REFUSED(m.latency_us = NAN, "latency_us");
    REFUSED(m.power_mw = INFINITY, "power_mw");
    REFUSED(snprintf(m.params_json, sizeof m.params_json, "{\"batch\":"), "params_json");
    REFUSED(snprintf(m.quality_reasons, sizeof m.quality_reasons, "[1]"), "quality_reasons");
    REFUSED(snprintf(m.device_state_json, sizeof m.device_state_json, "[]"),
            "device_state_json");
    REFUSED(snprintf(m.rails[1].rail, sizeof m.rails[1].rail, "VDD_IN"), "appears twice");
    REFUSED(m.rails[1].sample_ratio = NAN, "VDD_GPU_SOC");
    REFUSED(m.rail_count = DB_MAX_RAILS + 1, "rails");
    REFUSED(m.launches = 0, "launches");
    REFUSED(m.kernel[0] = '\0', "kernel");
    REFUSED(m.job_id = job_id + 1, "job");
#undef REFUSED
    assert_nothing_written_and_running(fx, job_id);
}

/* ---- JSON ---- */

enum jtype { J_INT, J_INT_OR_NULL, J_NUM, J_STR, J_BOOL, J_OBJ, J_ARR };

static void check_member(json_t *obj, const char *name, enum jtype t)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        fail_msg("member '%s' missing", name);
    bool ok = false;
    switch (t) {
    case J_INT: ok = json_is_integer(v); break;
    case J_INT_OR_NULL: ok = json_is_integer(v) || json_is_null(v); break;
    case J_NUM: ok = json_is_number(v); break;
    case J_STR: ok = json_is_string(v); break;
    case J_BOOL: ok = json_is_boolean(v); break;
    case J_OBJ: ok = json_is_object(v); break;
    case J_ARR: ok = json_is_array(v); break;
    }
    if (!ok)
        fail_msg("member '%s' has the wrong JSON type", name);
}

static void test_measurement_json(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    int64_t id = store(fx, "linear_relu", "fp32", "{\"batch\":64,\"in\":256,\"out\":512}", "ok");
    int64_t sus = store(fx, "linear_relu", "fp16", "{\"batch\":1,\"in\":2,\"out\":3}", "suspect");

    json_t *m = db_measurement_json(fx->db, id, err, sizeof err);
    assert_non_null(m);
    static const struct {
        const char *name;
        enum jtype type;
    } members[] = {
        {"id", J_INT}, {"uid", J_STR}, {"job_id", J_INT}, {"device_id", J_INT},
        {"fingerprint", J_STR}, {"created_at", J_STR}, {"kernel", J_STR}, {"dtype", J_STR}, {"params", J_OBJ},
        {"config_key", J_STR}, {"executor", J_STR}, {"sensor", J_STR}, {"simulated", J_BOOL},
        {"launches", J_INT}, {"repeats", J_INT}, {"window_ms", J_NUM}, {"settle_ms", J_NUM},
        {"latency_us", J_NUM}, {"latency_us_min", J_NUM}, {"latency_us_max", J_NUM},
        {"latency_cv", J_NUM}, {"power_mw", J_NUM}, {"energy_rail", J_STR},
        {"energy_uj", J_NUM}, {"dynamic_energy_uj", J_NUM}, {"quality", J_STR},
        {"quality_reasons", J_ARR}, {"remeasured", J_BOOL}, {"rails", J_ARR},
        {"device_state", J_OBJ},
    };
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        check_member(m, members[i].name, members[i].type);
    assert_int_equal(json_object_size(m), sizeof members / sizeof members[0]);

    assert_int_equal(json_integer_value(json_object_get(m, "id")), id);
    assert_int_equal(json_integer_value(json_object_get(m, "device_id")), fx->device_id);
    assert_int_equal(strlen(fx->fingerprint), 64);
    assert_string_equal(json_string_value(json_object_get(m, "fingerprint")), fx->fingerprint);
    assert_true(json_is_true(json_object_get(m, "simulated")));
    assert_true(json_is_false(json_object_get(m, "remeasured")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "params"), "batch")),
                     64);
    assert_int_equal(json_array_size(json_object_get(m, "quality_reasons")), 0);
    assert_string_equal(json_string_value(json_object_get(m, "quality")), "ok");
    assert_true(fabs(json_number_value(json_object_get(m, "latency_us")) - 8712.3) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "device_state"),
                                                          "power_mode")),
                        "MAXN");

    json_t *rails = json_object_get(m, "rails");
    assert_int_equal(json_array_size(rails), 2);
    static const struct {
        const char *name;
        enum jtype type;
    } rail_members[] = {
        {"rail", J_STR}, {"board_input", J_BOOL}, {"power_mw", J_NUM},
        {"idle_power_mw", J_NUM}, {"dynamic_power_mw", J_NUM}, {"energy_uj", J_NUM},
        {"dynamic_energy_uj", J_NUM}, {"power_cv", J_NUM}, {"samples", J_INT},
        {"expected_samples", J_NUM}, {"sample_ratio", J_NUM},
    };
    for (size_t r = 0; r < 2; r++) {
        json_t *rail = json_array_get(rails, r);
        for (size_t i = 0; i < sizeof rail_members / sizeof rail_members[0]; i++)
            check_member(rail, rail_members[i].name, rail_members[i].type);
        assert_int_equal(json_object_size(rail), sizeof rail_members / sizeof rail_members[0]);
    }
    /* in the order the measurement listed them */
    assert_string_equal(json_string_value(json_object_get(json_array_get(rails, 0), "rail")),
                        "VDD_IN");
    assert_true(json_is_true(json_object_get(json_array_get(rails, 0), "board_input")));
    assert_true(json_is_false(json_object_get(json_array_get(rails, 1), "board_input")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rails, 1), "samples")),
                     197);
    json_decref(m);

    m = db_measurement_json(fx->db, sus, err, sizeof err);
    assert_non_null(m);
    json_t *reasons = json_object_get(m, "quality_reasons");
    assert_int_equal(json_array_size(reasons), 1);
    assert_string_equal(json_string_value(json_array_get(reasons, 0)),
                        "sample ratio 0.85 on VDD_IN is below 0.90");
    json_decref(m);

    /* absent: NULL with an empty err (so callers can tell 404 from 500) */
    snprintf(err, sizeof err, "stale");
    assert_null(db_measurement_json(fx->db, 424242, err, sizeof err));
    assert_string_equal(err, "");

    /* a corrupted row is an error that names the measurement and column */
    assert_int_equal(sqlite3_exec(fx->db->conn,
                                  "UPDATE measurements SET params_json = 'nope' WHERE id = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_null(db_measurement_json(fx->db, 1, err, sizeof err));
    assert_non_null(strstr(err, "measurement 1"));
    assert_non_null(strstr(err, "params_json"));
}

/* ---- each ---- */

struct collected {
    int64_t ids[64];
    int n;
    int stop_after; /* 0 = never */
};

static int collect(json_t *m, void *ctx)
{
    struct collected *c = ctx;
    assert_true(json_is_object(m));
    if (c->n < 64)
        c->ids[c->n++] = json_integer_value(json_object_get(m, "id"));
    return c->stop_after > 0 && c->n >= c->stop_after;
}

static void test_each_filters(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    const char *lin = "{\"batch\":64,\"in\":256,\"out\":512}";
    const char *ln = "{\"rows\":64,\"cols\":768}";
    int64_t m1 = store(fx, "linear", "fp32", lin, "ok");
    int64_t m2 = store(fx, "layernorm", "fp32", ln, "ok");
    int64_t m3 = store(fx, "linear", "fp16", lin, "suspect");
    int64_t m4 = store(fx, "linear", "fp32", lin, "suspect");
    int64_t m5 = store(fx, "layernorm", "fp16", ln, "ok");

    struct db_measurement_filter f = {.limit = 100};
    struct collected c = {0};
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 5);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.ids[0], m1);
    assert_int_equal(c.ids[4], m5);

    f.kernel = "linear";
    memset(&c, 0, sizeof c);
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 3);
    assert_int_equal(c.ids[0], m1);
    assert_int_equal(c.ids[1], m3);
    assert_int_equal(c.ids[2], m4);

    f.dtype = "fp32";
    memset(&c, 0, sizeof c);
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 2);
    assert_int_equal(c.ids[1], m4);

    f.quality = "suspect";
    memset(&c, 0, sizeof c);
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 1);
    assert_int_equal(c.ids[0], m4);

    /* A value that looks like SQL is just a value. */
    f = (struct db_measurement_filter){.kernel = "linear' OR '1'='1", .limit = 100};
    memset(&c, 0, sizeof c);
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 0);

    /* Paging: after + limit walk the whole set in id order. */
    f = (struct db_measurement_filter){.limit = 2};
    int64_t seen[8];
    int total = 0;
    for (;;) {
        memset(&c, 0, sizeof c);
        int n = db_measurements_each(fx->db, &f, collect, &c, err, sizeof err);
        assert_true(n >= 0 && n <= 2);
        for (int i = 0; i < n; i++)
            seen[total++] = c.ids[i];
        if (n < 2)
            break;
        f.after_id = c.ids[n - 1];
    }
    assert_int_equal(total, 5);
    const int64_t want[] = {m1, m2, m3, m4, m5};
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], want[i]);

    f = (struct db_measurement_filter){.after_id = m2, .kernel = "layernorm", .limit = 10};
    memset(&c, 0, sizeof c);
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 1);
    assert_int_equal(c.ids[0], m5);

    /* The callback stops the walk. */
    f = (struct db_measurement_filter){.limit = 100};
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), 2);

    /* Out-of-range limits are refused, not a crash. */
    f.limit = 0;
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    f.limit = 10001;
    assert_int_equal(db_measurements_each(fx->db, &f, collect, &c, err, sizeof err), -1);
    f.limit = 10000;
    assert_int_equal(db_measurements_each(fx->db, &f, NULL, NULL, err, sizeof err), 5);
}

/* ---- CSV ---- */

static const char fixed_header[] =
    "id,uid,fingerprint,created_at,kernel,dtype,executor,sensor,simulated,launches,repeats,latency_us,"
    "latency_us_min,latency_us_max,latency_cv,energy_rail,energy_uj,dynamic_energy_uj,"
    "power_mw,quality\r\n";

static void test_csv_empty(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    struct db_measurement_filter f = {.limit = 100};
    size_t len = 0;
    char *csv = db_measurements_csv(fx->db, &f, &len, err, sizeof err);
    assert_non_null(csv);
    assert_string_equal(csv, fixed_header);
    assert_int_equal(len, strlen(fixed_header));
    free(csv);

    f.limit = -1;
    assert_null(db_measurements_csv(fx->db, &f, &len, err, sizeof err));
    assert_non_null(strstr(err, "limit"));
}

/* Splits one CSV line (no embedded CRLF) into RFC 4180 fields. */
static int split_csv_line(const char *line, char fields[][128], int max)
{
    int n = 0;
    const char *p = line;
    for (;;) {
        assert_true(n < max);
        char *out = fields[n];
        size_t k = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                assert_true(*p != '\0');
                if (*p == '"' && p[1] == '"') {
                    out[k++] = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    out[k++] = *p++;
                }
            }
        } else {
            while (*p != ',' && *p != '\r' && *p != '\0')
                out[k++] = *p++;
        }
        out[k] = '\0';
        n++;
        if (*p == ',') {
            p++;
            continue;
        }
        return n;
    }
}

static void test_csv_columns_and_quoting(void **state)
{
    struct fixture *fx = *state;
    char err[512];

    /* linear with a uid that needs quoting and a rail name with a quote and comma */
    int64_t job = running_job(fx->db, "linear", "{\"batch\":64,\"in\":256,\"out\":512}");
    struct db_measurement m;
    fill_measurement(&m, fx->device_id, "linear", "fp32", "{\"batch\":64,\"in\":256,\"out\":512}",
                     "ok");
    snprintf(m.uid, sizeof m.uid, "a,\"b\"");
    snprintf(m.rails[1].rail, sizeof m.rails[1].rail, "GPU \"x\",y");
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(db_job_finish(fx->db, job, &m, &id1, err, sizeof err), 0);

    /* layernorm: other parameters, other second rail */
    job = running_job(fx->db, "layernorm", "{\"rows\":8,\"cols\":64}");
    fill_measurement(&m, fx->device_id, "layernorm", "fp16", "{\"rows\":8,\"cols\":64}",
                     "suspect");
    snprintf(m.rails[1].rail, sizeof m.rails[1].rail, "VDD_SOC");
    m.rails[1].sample_ratio = 0.85;
    assert_int_equal(db_job_finish(fx->db, job, &m, &id2, err, sizeof err), 0);

    struct db_measurement_filter f = {.limit = 100};
    size_t len = 0;
    char *csv = db_measurements_csv(fx->db, &f, &len, err, sizeof err);
    assert_non_null(csv);
    assert_int_equal(len, strlen(csv));

    char *line2 = strstr(csv, "\r\n");
    assert_non_null(line2);
    *line2 = '\0';
    assert_string_equal(csv,
                        "id,uid,fingerprint,created_at,kernel,dtype,batch,in,out,rows,cols,executor,sensor,"
                        "simulated,launches,repeats,latency_us,latency_us_min,latency_us_max,"
                        "latency_cv,energy_rail,energy_uj,dynamic_energy_uj,power_mw,quality,"
                        "power_mw.VDD_IN,idle_power_mw.VDD_IN,energy_uj.VDD_IN,"
                        "sample_ratio.VDD_IN,"
                        "\"power_mw.GPU \"\"x\"\",y\",\"idle_power_mw.GPU \"\"x\"\",y\","
                        "\"energy_uj.GPU \"\"x\"\",y\",\"sample_ratio.GPU \"\"x\"\",y\","
                        "power_mw.VDD_SOC,idle_power_mw.VDD_SOC,energy_uj.VDD_SOC,"
                        "sample_ratio.VDD_SOC");
    line2 += 2;
    char *line3 = strstr(line2, "\r\n");
    assert_non_null(line3);
    *line3 = '\0';
    line3 += 2;
    char *end = strstr(line3, "\r\n");
    assert_non_null(end);
    *end = '\0';
    assert_string_equal(end + 2, ""); /* exactly two data rows */

    enum { NCOLS = 25 + 12 };
    static char fields[49][128];
    assert_int_equal(split_csv_line(line2, fields, 48), NCOLS);
    char want_id[32];
    snprintf(want_id, sizeof want_id, "%lld", (long long)id1);
    assert_string_equal(fields[0], want_id);
    assert_string_equal(fields[1], "a,\"b\"");
    assert_string_equal(fields[2], fx->fingerprint);
    assert_string_equal(fields[4], "linear");
    assert_string_equal(fields[6], "64");   /* batch */
    assert_string_equal(fields[8], "512");  /* out */
    assert_string_equal(fields[9], "");     /* rows: not a linear parameter */
    assert_string_equal(fields[13], "true"); /* simulated */
    assert_string_equal(fields[16], "8712.3");
    assert_string_equal(fields[24], "ok");
    assert_string_equal(fields[25], "7310.2"); /* power_mw.VDD_IN */
    assert_string_equal(fields[29], "3100.5"); /* power_mw.GPU "x",y */
    assert_string_equal(fields[33], "");       /* no VDD_SOC on this one */
    assert_string_equal(fields[36], "");

    assert_int_equal(split_csv_line(line3, fields, 48), NCOLS);
    assert_string_equal(fields[4], "layernorm");
    assert_string_equal(fields[5], "fp16");
    assert_string_equal(fields[6], "");
    assert_string_equal(fields[9], "8");
    assert_string_equal(fields[10], "64");
    assert_string_equal(fields[24], "suspect");
    assert_string_equal(fields[29], "");
    assert_string_equal(fields[36], "0.85"); /* sample_ratio.VDD_SOC */
    free(csv);

    /* Filtered to layernorm: only its parameters and rails. */
    f.kernel = "layernorm";
    csv = db_measurements_csv(fx->db, &f, NULL, err, sizeof err);
    assert_non_null(csv);
    assert_non_null(strstr(csv, "dtype,rows,cols,executor"));
    assert_null(strstr(csv, "batch"));
    assert_null(strstr(csv, "GPU"));
    free(csv);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_finish_writes_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_refuses_job_not_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measurement_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_columns_and_quoting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
