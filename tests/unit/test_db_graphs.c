/*
 * test_db_graphs.c - whole graphs in the store (schema 3): a graph batch
 * inserts its graphs once per hash (also across batches, the stored row kept),
 * a batch of kind "graphs" and one graph job each, in one transaction (a job
 * refused halfway leaves nothing, not even the new graphs); duplicates by
 * config_key unless repeat_existing; validation (hash = SHA-256 of the text,
 * format, counts, JSON object); graph jobs claimed with their graph_id;
 * db_job_finish writing the graph_measurements link with the measurement, and
 * refusing (writing nothing) a measurement of another graph; the measurement's
 * "graph" member in JSON and the CSV's kernels/levels columns; GET /v1/graphs'
 * listing; the validation's newest measurement per graph on devices like a
 * device, with the quality filter; and graph measurements kept out of the
 * training data.
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
#include "common/sha256.h"
#include "db/db.h"
#include "db/db_internal.h"

#define TEXT_MAX 256

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
    int64_t dev_a;  /* board X, sim */
    int64_t dev_a2; /* board X with other sampling: like dev_a */
    int64_t dev_b;  /* board Y */
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int add_device(struct db *db, const char *board, const char *sampling, int64_t *id)
{
    struct db_device dev;
    char err[512];
    memset(&dev, 0, sizeof dev);
    snprintf(dev.board_model, sizeof dev.board_model, "%s", board);
    snprintf(dev.gpu_name, sizeof dev.gpu_name, "cpu");
    snprintf(dev.executor, sizeof dev.executor, "cpu");
    snprintf(dev.sensor_backend, sizeof dev.sensor_backend, "sim");
    snprintf(dev.sampling_json, sizeof dev.sampling_json, "%s", sampling);
    dev.simulated = true;
    if (db_device_upsert(db, &dev, id, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-db-graphs-XXXXXX");
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
    if (add_device(fx->db, "board X", "{\"period_us\":1000}", &fx->dev_a) != 0 ||
        add_device(fx->db, "board X", "{\"period_us\":500}", &fx->dev_a2) != 0 ||
        add_device(fx->db, "board Y", "{\"period_us\":1000}", &fx->dev_b) != 0) {
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

/* A graph whose canonical text is in text (which g borrows), hashed as the
 * contract says. `width` makes graphs of the same name differ. */
static void make_graph(struct db_graph *g, char text[TEXT_MAX], const char *name, int width,
                       int kernels, int levels)
{
    memset(g, 0, sizeof *g);
    snprintf(text, TEXT_MAX,
             "{\"batch\":4,\"dtype\":\"fp32\",\"name\":\"%s\",\"nodes\":[{\"name\":\"fc\","
             "\"op\":\"linear\",\"out\":%d}]}",
             name, width);
    sha256_hex(text, strlen(text), g->hash);
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->format, sizeof g->format, "native");
    snprintf(g->dtype, sizeof g->dtype, "fp32");
    g->batch = 4;
    g->graph_nodes = kernels + 1;
    g->kernels = kernels;
    g->levels = levels;
    g->graph_json = text;
}

static int64_t insert_graphs(struct fixture *fx, struct db_graph *gs, size_t n,
                             bool repeat_existing, int64_t *job_ids, size_t *ins, size_t *dup)
{
    char err[512] = "";
    int64_t batch = 0;
    if (db_graph_batch_insert(fx->db, "{\"graphs\":[]}", 2, 3, fx->dev_a, gs, n, repeat_existing,
                              &batch, job_ids, ins, dup, err, sizeof err) != 0)
        fail_msg("graph batch: %s", err);
    assert_true(batch > 0);
    return batch;
}

/* A graph measurement as the runner makes it for job `job`. */
static void graph_measurement(struct db_measurement *m, const struct db_job *job,
                              int64_t device, const char *quality, double latency_us,
                              unsigned streams)
{
    memset(m, 0, sizeof *m);
    m->device_id = device;
    snprintf(m->kernel, sizeof m->kernel, "%s", job->kernel);
    snprintf(m->dtype, sizeof m->dtype, "%s", job->dtype);
    snprintf(m->params_json, sizeof m->params_json, "%s", job->params_json);
    snprintf(m->config_key, sizeof m->config_key, "%s", job->config_key);
    snprintf(m->executor, sizeof m->executor, "cpu");
    snprintf(m->sensor, sizeof m->sensor, "sim");
    m->simulated = true;
    m->launches = 4;
    m->repeats = 2;
    m->latency_us = latency_us;
    m->latency_us_min = m->latency_us_max = latency_us;
    m->window_ms = 50;
    snprintf(m->energy_rail, sizeof m->energy_rail, "VDD_IN");
    m->power_mw = 6000;
    m->energy_uj = latency_us * 6.0;
    snprintf(m->quality, sizeof m->quality, "%s", quality);
    struct db_rail_reading *r = &m->rails[m->rail_count++];
    snprintf(r->rail, sizeof r->rail, "VDD_IN");
    r->is_board_input = true;
    r->power_mw = 6000;
    r->energy_uj = m->energy_uj;
    r->sample_ratio = 1;
    m->graph_id = job->graph_id;
    m->graph_streams = streams;
}

/* Claims the next job, which must be a graph job, and finishes it. */
static int64_t measure_next(struct fixture *fx, int64_t device, const char *quality,
                            double latency_us, unsigned streams)
{
    char err[512];
    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_true(job.graph_id > 0);
    struct db_measurement m;
    graph_measurement(&m, &job, device, quality, latency_us, streams);
    int64_t id = 0;
    if (db_job_finish(fx->db, job.id, &m, &id, err, sizeof err) != 0)
        fail_msg("finish: %s", err);
    return id;
}

/* ---- insert ---- */

static void test_batch_insert(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[2][TEXT_MAX];
    struct db_graph gs[2];
    make_graph(&gs[0], text[0], "mlp", 64, 3, 2);
    make_graph(&gs[1], text[1], "attention", 64, 7, 4);
    snprintf(gs[1].dtype, sizeof gs[1].dtype, "fp16");
    snprintf(gs[1].format, sizeof gs[1].format, "nn-meter");
    int64_t job_ids[2] = {-1, -1};
    size_t ins = 0, dup = 9;
    int64_t batch = insert_graphs(fx, gs, 2, false, job_ids, &ins, &dup);
    assert_int_equal(ins, 2);
    assert_int_equal(dup, 0);
    assert_true(gs[0].id > 0 && gs[1].id > gs[0].id);
    assert_true(job_ids[0] > 0 && job_ids[1] > job_ids[0]);

    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, batch, &b, err, sizeof err), 1);
    assert_string_equal(b.kind, "graphs");
    assert_string_equal(b.dtype, "fp32"); /* the first graph's */
    assert_int_equal(b.repeats, 2);
    assert_int_equal(b.device_id, fx->dev_a);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 2);
    char *spec = NULL;
    assert_int_equal(db_batch_spec(fx->db, batch, &spec, err, sizeof err), 1);
    assert_string_equal(spec, "{\"graphs\":[]}");
    free(spec);

    struct db_job job;
    assert_int_equal(db_job_get(fx->db, job_ids[1], &job, err, sizeof err), 1);
    assert_string_equal(job.kernel, DB_GRAPH_KERNEL);
    assert_string_equal(job.dtype, "fp16");
    assert_string_equal(job.params_json, "{\"kernels\":7,\"levels\":4}");
    char key[160];
    snprintf(key, sizeof key, "graph:%s", gs[1].hash);
    assert_string_equal(job.config_key, key);
    assert_int_equal(job.priority, DB_PRIORITY_SWEEP);
    assert_int_equal(job.repeats, 2);
    assert_int_equal(job.max_attempts, 3);
    assert_int_equal(job.batch_id, batch);
    assert_int_equal(job.graph_id, gs[1].id);

    /* The stored graph, text included. */
    struct db_graph got;
    assert_int_equal(db_graph_get(fx->db, gs[1].id, &got, err, sizeof err), 1);
    assert_int_equal(got.id, gs[1].id);
    assert_string_equal(got.hash, gs[1].hash);
    assert_string_equal(got.name, "attention");
    assert_string_equal(got.format, "nn-meter");
    assert_string_equal(got.dtype, "fp16");
    assert_int_equal(got.batch, 4);
    assert_int_equal(got.graph_nodes, 8);
    assert_int_equal(got.kernels, 7);
    assert_int_equal(got.levels, 4);
    assert_non_null(got.graph_json);
    assert_string_equal(got.graph_json, text[1]);
    assert_int_equal(strlen(got.created_at), 24);
    db_graph_clear(&got);
    assert_null(got.graph_json);
    db_graph_clear(&got); /* twice is harmless */
    db_graph_clear(NULL);

    assert_int_equal(db_graph_get(fx->db, gs[1].id + 100, &got, err, sizeof err), 0);
    assert_null(got.graph_json);

    /* job_ids may be NULL. */
    make_graph(&gs[0], text[0], "other", 32, 1, 1);
    insert_graphs(fx, gs, 1, false, NULL, &ins, &dup);
    assert_int_equal(ins, 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graphs"), 3);
}

static void test_dedup_and_duplicates(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[3][TEXT_MAX], a_text[TEXT_MAX];
    struct db_graph a[1], later[3];
    make_graph(&a[0], a_text, "mlp", 64, 3, 2);
    size_t ins, dup;
    int64_t first_jobs[1];
    insert_graphs(fx, a, 1, false, first_jobs, &ins, &dup);
    int64_t a_id = a[0].id;

    /* The same graph again (same text and hash; its name field says otherwise,
     * but the stored row is kept), a new one twice. */
    make_graph(&later[0], text[0], "mlp", 64, 3, 2);
    snprintf(later[0].name, sizeof later[0].name, "renamed");
    make_graph(&later[1], text[1], "wide", 128, 3, 2);
    make_graph(&later[2], text[2], "wide", 128, 3, 2);
    int64_t job_ids[3] = {-1, -1, -1};
    int64_t batch = insert_graphs(fx, later, 3, false, job_ids, &ins, &dup);
    assert_int_equal(ins, 1);
    assert_int_equal(dup, 2);
    assert_int_equal(later[0].id, a_id); /* stored once */
    assert_int_equal(later[1].id, later[2].id);
    assert_int_equal(job_ids[0], 0);     /* queued already by the first batch */
    assert_true(job_ids[1] > 0);
    assert_int_equal(job_ids[2], 0);     /* earlier in the same list */
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graphs"), 2);
    struct db_batch b;
    assert_int_equal(db_batch_get(fx->db, batch, &b, err, sizeof err), 1);
    assert_int_equal(b.duplicates, 2);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 1);

    /* Once measured (its jobs gone), still a duplicate: a measurement exists. */
    measure_next(fx, fx->dev_a, "ok", 100, 1);
    assert_int_equal(sqlite3_exec(fx->db->conn, "UPDATE jobs SET state = 'canceled'"
                                  " WHERE state = 'queued'", NULL, NULL, NULL),
                     SQLITE_OK);
    insert_graphs(fx, a, 1, false, job_ids, &ins, &dup);
    assert_int_equal(ins, 0);
    assert_int_equal(dup, 1);
    assert_int_equal(job_ids[0], 0);

    /* repeat_existing queues every one, the same graph row still. */
    insert_graphs(fx, later, 3, true, job_ids, &ins, &dup);
    assert_int_equal(ins, 3);
    assert_int_equal(dup, 0);
    assert_true(job_ids[0] > 0 && job_ids[2] > job_ids[1]);
    assert_int_equal(later[0].id, a_id);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graphs"), 2);

    /* The stored row is the first one: the later name did not replace it. */
    struct db_graph got;
    assert_int_equal(db_graph_get(fx->db, a_id, &got, err, sizeof err), 1);
    assert_string_equal(got.name, "mlp");
    db_graph_clear(&got);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graphs WHERE name = 'renamed'"), 0);
}

static void assert_nothing_written(struct fixture *fx, int64_t graphs)
{
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graphs"), graphs);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM batches"), graphs > 0 ? 1 : 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM jobs"), graphs);
}

static void refuse(struct fixture *fx, struct db_graph *gs, size_t n, const char *want)
{
    char err[512] = "";
    int64_t batch = 0;
    size_t ins = 0, dup = 0;
    if (db_graph_batch_insert(fx->db, "{}", 0, 3, 0, gs, n, false, &batch, NULL, &ins, &dup, err,
                              sizeof err) != -1)
        fail_msg("a graph batch that should fail with '%s' was stored", want);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want);
}

static void test_validation(void **state)
{
    struct fixture *fx = *state;
    char text[2][TEXT_MAX];
    struct db_graph gs[2];

    refuse(fx, gs, 0, "no graphs");
    refuse(fx, NULL, 1, "no graphs");

    make_graph(&gs[0], text[0], "ok", 8, 2, 1);
    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    gs[1].hash[3] = 'G';
    refuse(fx, gs, 2, "graphs[1]: hash");

    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    gs[1].hash[0] = gs[1].hash[0] == '0' ? '1' : '0'; /* well-formed, but not the text's */
    refuse(fx, gs, 2, "not the SHA-256");

    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    snprintf(gs[1].format, sizeof gs[1].format, "onnx");
    refuse(fx, gs, 2, "format 'onnx'");

    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    gs[1].dtype[0] = '\0';
    refuse(fx, gs, 2, "dtype");

    make_graph(&gs[1], text[1], "bad", 8, 0, 0);
    refuse(fx, gs, 2, "at least 1");
    make_graph(&gs[1], text[1], "bad", 8, 2, 3);
    refuse(fx, gs, 2, "levels at most kernels");
    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    gs[1].batch = 0;
    refuse(fx, gs, 2, "at least 1");

    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    gs[1].graph_json = NULL;
    refuse(fx, gs, 2, "graph_json is empty");

    /* Hashed right but not a JSON object. */
    make_graph(&gs[1], text[1], "bad", 8, 2, 1);
    snprintf(text[1], TEXT_MAX, "[1, 2]");
    sha256_hex(text[1], strlen(text[1]), gs[1].hash);
    refuse(fx, gs, 2, "not a JSON object");
    snprintf(text[1], TEXT_MAX, "{\"a\":");
    sha256_hex(text[1], strlen(text[1]), gs[1].hash);
    refuse(fx, gs, 2, "not a JSON object");

    assert_nothing_written(fx, 0);
}

static void test_insert_rolls_back(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[3][TEXT_MAX];
    struct db_graph gs[3];
    make_graph(&gs[0], text[0], "kept", 8, 2, 1);
    size_t ins, dup;
    insert_graphs(fx, gs, 1, false, NULL, &ins, &dup);
    assert_nothing_written(fx, 1);

    /* The jobs' insert fails after the new graphs are in: none of it stays.
     * max_attempts 0 is refused by db_job_insert (and the schema's CHECK). */
    make_graph(&gs[0], text[0], "new-1", 16, 2, 1);
    make_graph(&gs[1], text[1], "kept", 8, 2, 1);
    make_graph(&gs[2], text[2], "new-2", 32, 2, 1);
    int64_t batch = 0, job_ids[3] = {0, 0, 0};
    assert_int_equal(db_graph_batch_insert(fx->db, "{}", 0, 0, 0, gs, 3, false, &batch, job_ids,
                                           &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "max_attempts"));
    assert_nothing_written(fx, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gs[i].id, 0); /* nothing was written */
        assert_int_equal(job_ids[i], 0);
    }

    /* A device that does not exist breaks the batch's foreign key, after the
     * graphs and before the jobs: nothing stays either. */
    err[0] = '\0';
    assert_int_equal(db_graph_batch_insert(fx->db, "{}", 0, 3, 4242, gs, 3, false, &batch,
                                           job_ids, &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, fx->path));
    assert_nothing_written(fx, 1);

    /* A negative repeats count is the batch's to refuse. */
    err[0] = '\0';
    assert_int_equal(db_graph_batch_insert(fx->db, "{}", -1, 3, 0, gs, 3, false, &batch, NULL,
                                           &ins, &dup, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "negative"));
    assert_nothing_written(fx, 1);

    /* The same call, fixed, goes through. */
    assert_int_equal(db_graph_batch_insert(fx->db, "{}", 0, 3, 0, gs, 3, false, &batch, job_ids,
                                           &ins, &dup, err, sizeof err),
                     0);
    assert_int_equal(ins, 2);
    assert_int_equal(dup, 1);
}

/* ---- jobs ---- */

static void test_job_insert_rules(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[TEXT_MAX];
    struct db_graph g;
    make_graph(&g, text, "mlp", 8, 2, 1);
    size_t ins, dup;
    insert_graphs(fx, &g, 1, false, NULL, &ins, &dup);

    struct db_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, DB_GRAPH_KERNEL);
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"kernels\":2,\"levels\":1}");
    snprintf(job.config_key, sizeof job.config_key, "graph:x");
    job.max_attempts = 1;
    /* A graph job without its graph. */
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a graph_id"));
    /* A graph that does not exist: the foreign key. */
    job.graph_id = g.id + 50;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    job.graph_id = -1;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "negative"));
    /* A kernel job naming a graph. */
    snprintf(job.kernel, sizeof job.kernel, "linear");
    job.graph_id = g.id;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), -1);
    assert_non_null(strstr(err, "only a graph job"));
    assert_int_equal(count(fx->db, "SELECT count(*) FROM jobs"), 1);

    /* An ad-hoc graph job is fine, and every reader returns its graph_id. */
    snprintf(job.kernel, sizeof job.kernel, DB_GRAPH_KERNEL);
    job.priority = DB_PRIORITY_ADHOC;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), 0);
    struct db_job claimed;
    assert_int_equal(db_job_claim_next(fx->db, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.id, job.id); /* ad-hoc first */
    assert_int_equal(claimed.graph_id, g.id);
    assert_int_equal(claimed.batch_id, 0);
    struct db_job_filter f = {.state = -1, .limit = 10};
    struct db_job *list = NULL;
    size_t n = 0;
    assert_int_equal(db_jobs_list(fx->db, &f, &list, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].graph_id, g.id);
    assert_int_equal(list[1].graph_id, g.id);
    free(list);

    /* A kernel job reads graph_id 0. */
    memset(&job, 0, sizeof job);
    snprintf(job.kernel, sizeof job.kernel, "linear");
    snprintf(job.dtype, sizeof job.dtype, "fp32");
    snprintf(job.params_json, sizeof job.params_json, "{\"batch\":1,\"in\":2,\"out\":3}");
    snprintf(job.config_key, sizeof job.config_key, "linear:fp32:1,2,3");
    job.max_attempts = 1;
    assert_int_equal(db_job_insert(fx->db, &job, err, sizeof err), 0);
    assert_int_equal(db_job_get(fx->db, job.id, &claimed, err, sizeof err), 1);
    assert_int_equal(claimed.graph_id, 0);
}

/* ---- finish ---- */

static void test_finish_links_graph(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[TEXT_MAX];
    struct db_graph g;
    make_graph(&g, text, "mlp", 8, 5, 3);
    size_t ins, dup;
    int64_t job_id;
    insert_graphs(fx, &g, 1, false, &job_id, &ins, &dup);

    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.id, job_id);
    assert_int_equal(job.graph_id, g.id);
    struct db_measurement m;
    graph_measurement(&m, &job, fx->dev_a, "ok", 1234.5, 3);
    int64_t mid = 0;
    assert_int_equal(db_job_finish(fx->db, job.id, &m, &mid, err, sizeof err), 0);
    assert_true(mid > 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graph_measurements"), 1);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT streams FROM graph_measurements WHERE measurement_id = %lld"
             " AND graph_id = %lld", (long long)mid, (long long)g.id);
    assert_int_equal(count(fx->db, sql), 3);
    assert_int_equal(db_job_get(fx->db, job.id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_DONE);
    assert_int_equal(job.measurement_id, mid);

    /* The JSON: a measurement like any other, plus "graph". */
    json_t *j = db_measurement_json(fx->db, mid, err, sizeof err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kernel")), DB_GRAPH_KERNEL);
    json_t *params = json_object_get(j, "params");
    assert_int_equal(json_integer_value(json_object_get(params, "kernels")), 5);
    assert_int_equal(json_integer_value(json_object_get(params, "levels")), 3);
    assert_non_null(json_object_get(j, "rails"));
    json_t *gj = json_object_get(j, "graph");
    assert_true(json_is_object(gj));
    assert_int_equal(json_object_size(gj), 4);
    assert_int_equal(json_integer_value(json_object_get(gj, "id")), g.id);
    assert_string_equal(json_string_value(json_object_get(gj, "hash")), g.hash);
    assert_string_equal(json_string_value(json_object_get(gj, "name")), "mlp");
    assert_int_equal(json_integer_value(json_object_get(gj, "streams")), 3);
    json_decref(j);

    /* A kernel measurement has no "graph" member; the walk gives both forms. */
    struct db_job kj;
    memset(&kj, 0, sizeof kj);
    snprintf(kj.kernel, sizeof kj.kernel, "linear");
    snprintf(kj.dtype, sizeof kj.dtype, "fp32");
    snprintf(kj.params_json, sizeof kj.params_json, "{\"batch\":1,\"in\":2,\"out\":3}");
    snprintf(kj.config_key, sizeof kj.config_key, "linear:fp32:1,2,3");
    kj.max_attempts = 1;
    assert_int_equal(db_job_insert(fx->db, &kj, err, sizeof err), 0);
    assert_int_equal(db_job_claim_next(fx->db, &kj, err, sizeof err), 1);
    graph_measurement(&m, &kj, fx->dev_a, "ok", 10, 0);
    int64_t kid = 0;
    assert_int_equal(db_job_finish(fx->db, kj.id, &m, &kid, err, sizeof err), 0);
    j = db_measurement_json(fx->db, kid, err, sizeof err);
    assert_non_null(j);
    assert_null(json_object_get(j, "graph"));
    json_decref(j);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graph_measurements"), 1);

    struct db_measurement_filter f = {.limit = 10};
    assert_int_equal(db_measurements_each(fx->db, &f, NULL, NULL, err, sizeof err), 2);
    f.kernel = DB_GRAPH_KERNEL;
    char *csv = db_measurements_csv(fx->db, &f, NULL, err, sizeof err);
    assert_non_null(csv);
    /* kernels and levels are columns like any parameter, integers in the row. */
    assert_non_null(strstr(csv, ",kernel,dtype,kernels,levels,executor,"));
    assert_non_null(strstr(csv, ",graph,fp32,5,3,cpu,"));
    free(csv);
}

static int keep_graph_members(json_t *m, void *ctx)
{
    json_t *seen = ctx;
    json_t *g = json_object_get(m, "graph");
    return json_array_append_new(seen, g != NULL ? json_incref(g) : json_null()) != 0;
}

static void test_walk_shows_graph(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[2][TEXT_MAX];
    struct db_graph gs[2];
    make_graph(&gs[0], text[0], "one", 8, 2, 1);
    make_graph(&gs[1], text[1], "two", 16, 2, 2);
    size_t ins, dup;
    insert_graphs(fx, gs, 2, false, NULL, &ins, &dup);
    measure_next(fx, fx->dev_a, "ok", 10, 1);
    measure_next(fx, fx->dev_a, "ok", 20, 2);
    json_t *seen = json_array();
    struct db_measurement_filter f = {.limit = 10};
    assert_int_equal(db_measurements_each(fx->db, &f, keep_graph_members, seen, err, sizeof err),
                     2);
    assert_int_equal(json_array_size(seen), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 0), "name")),
                        "one");
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen, 1), "name")),
                        "two");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(seen, 1), "streams")), 2);
    json_decref(seen);
}

static void assert_finish_refused(struct fixture *fx, int64_t job_id, struct db_measurement *m,
                                  const char *want)
{
    char err[512] = "";
    int64_t mid = 0;
    assert_int_equal(db_job_finish(fx->db, job_id, m, &mid, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM measurements"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM rail_readings"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graph_measurements"), 0);
    struct db_job job;
    assert_int_equal(db_job_get(fx->db, job_id, &job, err, sizeof err), 1);
    assert_int_equal(job.state, DB_JOB_RUNNING);
}

static void test_finish_refuses_other_graph(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[2][TEXT_MAX];
    struct db_graph gs[2];
    make_graph(&gs[0], text[0], "one", 8, 2, 1);
    make_graph(&gs[1], text[1], "two", 16, 2, 2);
    size_t ins, dup;
    insert_graphs(fx, gs, 2, false, NULL, &ins, &dup);
    struct db_job job;
    assert_int_equal(db_job_claim_next(fx->db, &job, err, sizeof err), 1);
    assert_int_equal(job.graph_id, gs[0].id);

    struct db_measurement m;
    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 1);
    m.graph_id = gs[1].id; /* the other graph */
    assert_finish_refused(fx, job.id, &m, "the job measures graph");

    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 1);
    m.graph_id = 0; /* a graph measurement without its graph */
    assert_finish_refused(fx, job.id, &m, "needs a graph_id");

    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 0); /* no streams */
    assert_finish_refused(fx, job.id, &m, "graph_streams");

    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 1);
    snprintf(m.kernel, sizeof m.kernel, "linear"); /* a kernel measurement naming a graph */
    assert_finish_refused(fx, job.id, &m, "only a graph measurement");

    /* A kernel job's measurement dressed as a graph one. */
    struct db_job kj;
    memset(&kj, 0, sizeof kj);
    snprintf(kj.kernel, sizeof kj.kernel, "linear");
    snprintf(kj.dtype, sizeof kj.dtype, "fp32");
    snprintf(kj.params_json, sizeof kj.params_json, "{}");
    snprintf(kj.config_key, sizeof kj.config_key, "linear:x");
    kj.max_attempts = 1;
    kj.priority = DB_PRIORITY_ADHOC;
    assert_int_equal(db_job_insert(fx->db, &kj, err, sizeof err), 0);
    assert_int_equal(db_job_claim_next(fx->db, &kj, err, sizeof err), 1);
    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 1);
    assert_finish_refused(fx, kj.id, &m, "the job measures graph 0");

    /* The right one goes through. */
    graph_measurement(&m, &job, fx->dev_a, "ok", 10, 1);
    int64_t mid = 0;
    assert_int_equal(db_job_finish(fx->db, job.id, &m, &mid, err, sizeof err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM graph_measurements"), 1);
}

/* ---- GET /v1/graphs ---- */

static void test_graphs_json(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[3][TEXT_MAX];
    json_t *arr = db_graphs_json(fx->db, 0, 10, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);

    struct db_graph gs[3];
    make_graph(&gs[0], text[0], "one", 8, 2, 1);
    make_graph(&gs[1], text[1], "two", 16, 4, 2);
    make_graph(&gs[2], text[2], "three", 32, 6, 3);
    size_t ins, dup;
    insert_graphs(fx, gs, 3, false, NULL, &ins, &dup);
    measure_next(fx, fx->dev_a, "ok", 100, 1);       /* one */
    measure_next(fx, fx->dev_a, "suspect", 200, 2);  /* two */
    measure_next(fx, fx->dev_a, "ok", 300, 3);       /* three */
    insert_graphs(fx, gs, 1, true, NULL, &ins, &dup);
    int64_t newest = measure_next(fx, fx->dev_b, "suspect", 150, 4); /* one again */

    arr = db_graphs_json(fx->db, 0, 10, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 3);
    json_t *one = json_array_get(arr, 0);
    static const char *const members[] = {"id", "hash", "name", "format", "dtype", "batch",
                                          "graph_nodes", "kernels", "levels", "created_at",
                                          "measurements", "latest"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (json_object_get(one, members[i]) == NULL)
            fail_msg("graph member %s missing", members[i]);
    assert_int_equal(json_object_size(one), sizeof members / sizeof members[0]);
    assert_int_equal(json_integer_value(json_object_get(one, "id")), gs[0].id);
    assert_string_equal(json_string_value(json_object_get(one, "hash")), gs[0].hash);
    assert_string_equal(json_string_value(json_object_get(one, "format")), "native");
    assert_int_equal(json_integer_value(json_object_get(one, "graph_nodes")), 3);
    assert_int_equal(json_integer_value(json_object_get(one, "measurements")), 2);
    json_t *latest = json_object_get(one, "latest");
    assert_int_equal(json_integer_value(json_object_get(latest, "measurement_id")), newest);
    assert_float_equal(json_number_value(json_object_get(latest, "latency_us")), 150, 1e-9);
    assert_float_equal(json_number_value(json_object_get(latest, "energy_uj")), 900, 1e-9);
    assert_string_equal(json_string_value(json_object_get(latest, "energy_rail")), "VDD_IN");
    assert_string_equal(json_string_value(json_object_get(latest, "quality")), "suspect");
    assert_string_equal(json_string_value(json_object_get(latest, "executor")), "cpu");
    assert_true(json_is_true(json_object_get(latest, "simulated")));
    assert_int_equal(json_integer_value(json_object_get(latest, "streams")), 4);
    assert_int_equal(json_string_length(json_object_get(latest, "uid")), 36);
    assert_int_equal(json_string_length(json_object_get(latest, "created_at")), 24);
    assert_int_equal(json_object_size(latest), 10);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 2), "measurements")),
                     1);
    json_decref(arr);

    /* A graph never measured: latest null. */
    struct db_graph fresh;
    char fresh_text[TEXT_MAX];
    make_graph(&fresh, fresh_text, "fresh", 64, 1, 1);
    insert_graphs(fx, &fresh, 1, false, NULL, &ins, &dup);
    arr = db_graphs_json(fx->db, gs[2].id, 10, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 1);
    assert_true(json_is_null(json_object_get(json_array_get(arr, 0), "latest")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "measurements")),
                     0);
    json_decref(arr);

    /* Paging: after_id and limit. */
    arr = db_graphs_json(fx->db, gs[0].id, 2, err, sizeof err);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), gs[1].id);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 1), "id")), gs[2].id);
    json_decref(arr);

    err[0] = '\0';
    assert_null(db_graphs_json(fx->db, 0, 0, err, sizeof err));
    assert_non_null(strstr(err, "limit"));
    assert_null(db_graphs_json(fx->db, 0, 10001, err, sizeof err));
    err[0] = '\0';
    assert_null(db_graphs_json(fx->db, -1, 10, err, sizeof err));
    assert_non_null(strstr(err, "negative"));
}

/* ---- GET /v1/validation ---- */

static void test_graphs_measured(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[2][TEXT_MAX];
    struct db_graph gs[2];
    make_graph(&gs[0], text[0], "one", 8, 2, 1);
    make_graph(&gs[1], text[1], "two", 16, 4, 2);
    size_t ins, dup;

    struct db_graph_measured *rows = NULL;
    size_t n = 9;
    assert_int_equal(db_graphs_measured(fx->db, fx->dev_a, NULL, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(rows);

    /* Graph one: ok on dev_a, then suspect on dev_a2 (same board), then on
     * another board. Graph two: only on the other board. */
    insert_graphs(fx, gs, 1, true, NULL, &ins, &dup);
    int64_t one_ok = measure_next(fx, fx->dev_a, "ok", 100, 1);
    insert_graphs(fx, gs, 1, true, NULL, &ins, &dup);
    int64_t one_suspect = measure_next(fx, fx->dev_a2, "suspect", 110, 2);
    insert_graphs(fx, gs, 2, true, NULL, &ins, &dup);
    int64_t one_b = measure_next(fx, fx->dev_b, "ok", 90, 3);
    int64_t two_b = measure_next(fx, fx->dev_b, "ok", 400, 2);
    assert_true(one_ok < one_suspect && one_suspect < one_b && one_b < two_b);

    /* Any quality: the newest on a board-X device. */
    assert_int_equal(db_graphs_measured(fx->db, fx->dev_a, NULL, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].graph.id, gs[0].id);
    assert_string_equal(rows[0].graph.hash, gs[0].hash);
    assert_string_equal(rows[0].graph.name, "one");
    assert_int_equal(rows[0].graph.kernels, 2);
    assert_string_equal(rows[0].graph.graph_json, text[0]);
    assert_int_equal(rows[0].measurement_id, one_suspect);
    assert_float_equal(rows[0].latency_us, 110, 1e-9);
    assert_float_equal(rows[0].energy_uj, 660, 1e-9);
    assert_float_equal(rows[0].power_mw, 6000, 1e-9);
    assert_string_equal(rows[0].energy_rail, "VDD_IN");
    assert_string_equal(rows[0].quality, "suspect");
    assert_string_equal(rows[0].executor, "cpu");
    assert_true(rows[0].simulated);
    assert_int_equal(rows[0].streams, 2);
    assert_int_equal(strlen(rows[0].uid), 36);
    assert_int_equal(strlen(rows[0].created_at), 24);
    db_graphs_measured_free(rows, n);

    /* Only ok: the older dev_a measurement; asked from dev_a2, the same. */
    assert_int_equal(db_graphs_measured(fx->db, fx->dev_a2, "ok", &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].measurement_id, one_ok);
    assert_string_equal(rows[0].quality, "ok");
    assert_int_equal(rows[0].streams, 1);
    db_graphs_measured_free(rows, n);

    /* Board Y: both graphs, in graph id order, its own measurements only. */
    assert_int_equal(db_graphs_measured(fx->db, fx->dev_b, NULL, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].graph.id, gs[0].id);
    assert_int_equal(rows[0].measurement_id, one_b);
    assert_int_equal(rows[1].graph.id, gs[1].id);
    assert_int_equal(rows[1].measurement_id, two_b);
    assert_string_equal(rows[1].graph.graph_json, text[1]);
    db_graphs_measured_free(rows, n);

    assert_int_equal(db_graphs_measured(fx->db, fx->dev_b, "suspect", &rows, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 0);
    db_graphs_measured_free(rows, n);
    /* An unknown device is like no device. */
    assert_int_equal(db_graphs_measured(fx->db, 999, NULL, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    db_graphs_measured_free(NULL, 0);
}

/* ---- training ---- */

static void test_training_excludes_graphs(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "", text[TEXT_MAX];
    struct db_graph g;
    make_graph(&g, text, "one", 8, 2, 1);
    size_t ins, dup;
    insert_graphs(fx, &g, 1, false, NULL, &ins, &dup);
    measure_next(fx, fx->dev_a, "ok", 100, 1);

    struct db_job kj;
    memset(&kj, 0, sizeof kj);
    snprintf(kj.kernel, sizeof kj.kernel, "linear");
    snprintf(kj.dtype, sizeof kj.dtype, "fp32");
    snprintf(kj.params_json, sizeof kj.params_json, "{\"batch\":1,\"in\":2,\"out\":3}");
    snprintf(kj.config_key, sizeof kj.config_key, "linear:fp32:1,2,3");
    kj.max_attempts = 1;
    assert_int_equal(db_job_insert(fx->db, &kj, err, sizeof err), 0);
    assert_int_equal(db_job_claim_next(fx->db, &kj, err, sizeof err), 1);
    struct db_measurement m;
    graph_measurement(&m, &kj, fx->dev_a, "ok", 10, 0);
    assert_int_equal(db_job_finish(fx->db, kj.id, &m, NULL, err, sizeof err), 0);

    struct db_training_count *counts = NULL;
    size_t n = 0;
    assert_int_equal(db_training_counts(fx->db, fx->dev_a, NULL, &counts, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(counts[0].kernel, "linear");
    assert_int_equal(counts[0].rows, 1);
    free(counts);

    struct db_training_row *rows = NULL;
    assert_int_equal(db_training_rows(fx->db, DB_GRAPH_KERNEL, fx->dev_a, NULL, &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(db_training_rows(fx->db, "linear", fx->dev_a, "ok", &rows, &n, err,
                                      sizeof err),
                     0);
    assert_int_equal(n, 1);
    free(rows);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_insert_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_links_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_shows_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_refuses_other_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graphs_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graphs_measured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_excludes_graphs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
