/*
 * test_daemon_rounds.c - the rounds of an adaptive sampling batch
 * (daemon/rounds.c) against a real SQLite database in a temp directory and no
 * executor: the batch is queued as POST /v1/jobs queues it (the spec expanded
 * by sweep_spec_expand, one job per configuration, built as daemon/api_jobs.c
 * builds them), and "measuring" a job is claiming it and finishing it with a
 * measurement whose latency is a known function of the parameters: smooth
 * over most of the space, eight times slower in one corner (batch >= 64 and
 * in >= 256), so a model trained on part of the rows gets held-out rows wrong.
 *
 * Checked: the full life of a batch (round 0 after the initial sample, round 1
 * after its proposals, round 2 the last planned: metrics only, batch closed),
 * each round's metrics and proposals equal to one adaptive_round on the
 * batch's rows with the options the spec names (so the spec, the round number
 * and the holdout reach it), the proposals queued in the same batch as jobs
 * like the initial ones, the batch not ready while they are queued; the same
 * scenario in a second database gives the same rounds and jobs; early stops
 * (every held-out row within the threshold, too few usable rows, a spec that
 * is not an adaptive sweep, not JSON or no longer expands) commit a closing
 * round with a note; should_stop abandons the round without committing; a
 * database that fails (an unknown batch, a closed batch, a write refused by a
 * trigger, an unreadable spec, an unreadable round count) returns -1 with the
 * batch left as it was.
 *
 * Boosters are kept small (30 rounds, depth 4) so the binary stays fast under
 * the sanitizers; nothing depends on how long training takes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/sweep.h"
#include "daemon/api.h"
#include "daemon/rounds.h"
#include "db/db.h"
#include "predict/adaptive.h"
#include "predict/trainset.h"

#define KERNEL "linear_relu"
#define INITIAL 30
#define PER_ROUND 6
#define ROUNDS 2
#define SEED 3
#define REPEATS 2
#define MAX_ATTEMPTS 2
/* The sweep's range per catalogue parameter (batch, in, out), as in spec_text. */
static const int64_t range_low[3] = {1, 8, 8};
static const int64_t range_high[3] = {256, 1024, 1024};

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
    int64_t device_id;
};

/* What the rounds_config's should_stop saw and answers. */
struct stop_ctx {
    int calls;
    bool stop;
};

static bool stop_cb(void *ctx)
{
    struct stop_ctx *s = ctx;
    s->calls++;
    return s->stop;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int fixture_open(struct fixture *fx)
{
    char err[512];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/jetprof-daemon-rounds-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
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
        return -1;
    }
    return 0;
}

static void fixture_close(struct fixture *fx)
{
    db_close(fx->db);
    fx->db = NULL;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    if (fixture_open(fx) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fixture_close(fx);
    free(fx);
    return 0;
}

/* Two databases (test_deterministic), closed by teardown_pair even when the
 * test fails halfway. */
static int setup_pair(void **state)
{
    struct fixture *fx = calloc(2, sizeof *fx);
    if (fx == NULL)
        return -1;
    if (fixture_open(&fx[0]) != 0) {
        free(fx);
        return -1;
    }
    if (fixture_open(&fx[1]) != 0) {
        fixture_close(&fx[0]);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown_pair(void **state)
{
    struct fixture *fx = *state;
    fixture_close(&fx[0]);
    fixture_close(&fx[1]);
    free(fx);
    return 0;
}

/* The runner's configuration, small boosters; should_stop reports to stop. */
static void make_config(struct rounds_config *cfg, struct stop_ctx *stop)
{
    memset(cfg, 0, sizeof *cfg);
    train_options_default(&cfg->train);
    cfg->train.rounds = 30;
    cfg->train.max_depth = 4;
    cfg->max_attempts = MAX_ATTEMPTS;
    cfg->simulated = true;
    cfg->should_stop = stop_cb;
    cfg->ctx = stop;
}

/* The request body of the adaptive sweep, threshold as JSON text. */
static void spec_text(char *buf, size_t len, const char *threshold)
{
    int n = snprintf(buf, len,
                     "{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"" KERNEL "\","
                     " \"seed\": %d, \"params\": {\"batch\": [%" PRId64 ", %" PRId64 "],"
                     " \"in\": [%" PRId64 ", %" PRId64 "], \"out\": [%" PRId64 ", %" PRId64 "]},"
                     " \"initial\": %d, \"per_round\": %d, \"rounds\": %d, \"threshold\": %s},"
                     " \"repeats\": %d}",
                     SEED, range_low[0], range_high[0], range_low[1], range_high[1], range_low[2],
                     range_high[2], INITIAL, PER_ROUND, ROUNDS, threshold, REPEATS);
    assert_true(n > 0 && (size_t)n < len);
}

/* Queues body as POST /v1/jobs does (daemon/api_jobs.c): every configuration
 * the spec expands to as a job; the batch's id. */
static int64_t queue_spec(struct fixture *fx, const char *body_text, size_t *inserted)
{
    json_error_t jerr;
    json_t *body = json_loads(body_text, 0, &jerr);
    if (body == NULL)
        fail_msg("spec: %s", jerr.text);
    struct sweep_spec s;
    memset(&s, 0, sizeof s);
    struct sweep_spec_options opt = {.max_configs = 10000};
    struct sweep_spec_error serr;
    if (sweep_spec_expand(body, &opt, &s, &serr) != 0)
        fail_msg("expand: %s", serr.detail);
    struct db_job *jobs = calloc(s.count ? s.count : 1, sizeof *jobs);
    char *spec = json_dumps(body, JSON_COMPACT);
    assert_non_null(jobs);
    assert_non_null(spec);
    for (size_t i = 0; i < s.count; i++) {
        const struct kernel_config *kc = &s.configs[i];
        struct db_job *job = &jobs[i];
        snprintf(job->kernel, sizeof job->kernel, "%s", kc->kernel->name);
        snprintf(job->dtype, sizeof job->dtype, "%s", dtype_name(kc->dtype));
        assert_true(api_params_json(kc, job->params_json, sizeof job->params_json) > 0);
        assert_true(catalog_config_key(kc, job->config_key, sizeof job->config_key) > 0);
        job->priority = DB_PRIORITY_SWEEP;
        job->repeats = (int)s.repeats;
        job->max_attempts = MAX_ATTEMPTS;
    }
    char err[512] = "";
    int64_t id = 0;
    size_t ins = 0, dup = 0;
    if (db_batch_insert(fx->db, s.kind, spec, dtype_name(s.dtype), (int)s.repeats,
                        fx->device_id, jobs, s.count, s.repeat_existing, &id, &ins, &dup, err,
                        sizeof err) != 0)
        fail_msg("batch: %s", err);
    assert_int_equal(ins + dup, s.count);
    *inserted = ins;
    free(jobs);
    free(spec);
    sweep_spec_free(&s);
    json_decref(body);
    return id;
}

/* A batch of kind "adaptive" with spec_json as given and no jobs. */
static int64_t queue_raw(struct fixture *fx, const char *spec_json)
{
    char err[512] = "";
    int64_t id = 0;
    if (db_batch_insert(fx->db, "adaptive", spec_json, "fp32", 0, fx->device_id, NULL, 0, false,
                        &id, NULL, NULL, err, sizeof err) != 0)
        fail_msg("batch: %s", err);
    return id;
}

/* The corner regime: what the rounds are meant to find. */
static double latency_us_of(const char *params_json)
{
    json_error_t jerr;
    json_t *p = json_loads(params_json, 0, &jerr);
    assert_non_null(p);
    json_t *b = json_object_get(p, "batch"), *i = json_object_get(p, "in"),
           *o = json_object_get(p, "out");
    assert_true(json_is_integer(b) && json_is_integer(i) && json_is_integer(o));
    double batch = (double)json_integer_value(b), in = (double)json_integer_value(i),
           out = (double)json_integer_value(o);
    json_decref(p);
    double us = 2.0 + 2e-5 * batch * in * out / 8.0;
    return batch >= 64 && in >= 256 ? 8.0 * us : us;
}

/* FNV-1a: a uid from the configuration, so two databases holding the same
 * measurements hold the same uids (db_training_rows orders by uid). */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Claims every queued job and finishes it with a measurement, except the first
 * `fail` of them, which fail. The number finished. */
static size_t measure_all(struct fixture *fx, size_t fail)
{
    char err[512];
    size_t finished = 0, failed = 0;
    for (;;) {
        struct db_job job;
        int rc = db_job_claim_next(fx->db, &job, err, sizeof err);
        if (rc == 0)
            break;
        if (rc != 1)
            fail_msg("claim: %s", err);
        if (failed < fail) {
            if (db_job_fail(fx->db, job.id, "test: the kernel crashed", err, sizeof err) != 0)
                fail_msg("fail: %s", err);
            failed++;
            continue;
        }
        struct db_measurement m;
        memset(&m, 0, sizeof m);
        snprintf(m.uid, sizeof m.uid, "t-%016" PRIx64, fnv1a(job.config_key));
        m.device_id = fx->device_id;
        snprintf(m.kernel, sizeof m.kernel, "%s", job.kernel);
        snprintf(m.dtype, sizeof m.dtype, "%s", job.dtype);
        snprintf(m.params_json, sizeof m.params_json, "%s", job.params_json);
        snprintf(m.config_key, sizeof m.config_key, "%s", job.config_key);
        snprintf(m.executor, sizeof m.executor, "cpu");
        snprintf(m.sensor, sizeof m.sensor, "sim");
        m.simulated = true;
        m.launches = 4;
        m.repeats = job.repeats > 0 ? job.repeats : 1;
        double us = latency_us_of(job.params_json);
        m.latency_us = m.latency_us_min = m.latency_us_max = us;
        snprintf(m.energy_rail, sizeof m.energy_rail, "VDD_IN");
        snprintf(m.quality, sizeof m.quality, "ok");
        snprintf(m.quality_reasons, sizeof m.quality_reasons, "[]");
        snprintf(m.device_state_json, sizeof m.device_state_json, "{}");
        struct db_rail_reading *r = &m.rails[m.rail_count++];
        snprintf(r->rail, sizeof r->rail, "VDD_IN");
        r->is_board_input = true;
        r->power_mw = 5000.0 + us;
        r->energy_uj = us * r->power_mw / 1e6;
        m.power_mw = r->power_mw;
        m.energy_uj = r->energy_uj;
        int64_t id = 0;
        if (db_job_finish(fx->db, job.id, &m, &id, err, sizeof err) != 0)
            fail_msg("finish: %s", err);
        finished++;
    }
    return finished;
}

/* The ready list, which must be exactly want[0..n). */
static void assert_ready(struct fixture *fx, const int64_t *want, size_t n)
{
    char err[512];
    int64_t *ids = NULL;
    size_t got = 99;
    if (db_adaptive_batches_ready(fx->db, &ids, &got, err, sizeof err) != 0)
        fail_msg("ready: %s", err);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
}

static int rounds_count(struct fixture *fx, int64_t batch)
{
    char err[512];
    int count = -1;
    if (db_batch_rounds_count(fx->db, batch, &count, err, sizeof err) != 0)
        fail_msg("count: %s", err);
    return count;
}

static json_t *rounds_json(struct fixture *fx, int64_t batch)
{
    char err[512] = "";
    json_t *arr = db_batch_rounds_json(fx->db, batch, err, sizeof err);
    if (arr == NULL)
        fail_msg("rounds: %s", err);
    return arr;
}

static struct db_batch batch_get(struct fixture *fx, int64_t id)
{
    char err[512];
    struct db_batch b;
    if (db_batch_get(fx->db, id, &b, err, sizeof err) != 1)
        fail_msg("batch %" PRId64 ": %s", id, err);
    return b;
}

/* The batch's jobs in id order (caller frees). */
static struct db_job *batch_jobs(struct fixture *fx, int64_t batch, int state, size_t *n)
{
    char err[512];
    struct db_job_filter f = {.state = state, .batch_id = batch, .after_id = 0, .limit = 10000};
    struct db_job *jobs = NULL;
    if (db_jobs_list(fx->db, &f, &jobs, n, err, sizeof err) != 0)
        fail_msg("jobs: %s", err);
    return jobs;
}

static int64_t int_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return (int64_t)json_integer_value(v);
}

static const char *note_of(json_t *round)
{
    const char *note = json_string_value(json_object_get(round, "note"));
    assert_non_null(note);
    return note;
}

static void assert_contains(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("'%s' does not say '%s'", text ? text : "(null)", want);
}

/* A stored real (9 significant digits) against the value computed here. */
static void assert_real_member(json_t *o, const char *key, double want)
{
    json_t *v = json_object_get(o, key);
    if (!isfinite(want)) {
        assert_true(json_is_null(v));
        return;
    }
    if (!json_is_number(v))
        fail_msg("'%s' is not a number", key);
    double got = json_number_value(v);
    if (fabs(got - want) > 1e-7 * fmax(1.0, fabs(want)))
        fail_msg("'%s' = %.12g, expected %.12g", key, got, want);
}

/*
 * Round `round` of batch as stored (round_obj) against one adaptive_round on
 * the batch's rows now (the rows it trained on: its proposals are still
 * queued) with the options the spec names: the metrics agree, and the jobs
 * queued are its proposals, in order, as jobs like the initial sample's. A
 * last round stores the metrics and queues nothing.
 */
static void check_round(struct fixture *fx, int64_t batch, unsigned round, json_t *round_obj,
                        const struct rounds_config *cfg, double threshold, bool last)
{
    char err[512];
    struct db_training_row *rows = NULL;
    size_t n = 0;
    if (db_training_rows_batch(fx->db, KERNEL, batch, NULL, &rows, &n, err, sizeof err) != 0)
        fail_msg("rows: %s", err);
    struct trainset_row *trows = calloc(n ? n : 1, sizeof *trows);
    assert_non_null(trows);
    for (size_t i = 0; i < n; i++)
        api_training_row(&rows[i], &trows[i]);
    free(rows);

    const struct catalog_kernel *k = catalog_find(KERNEL);
    assert_non_null(k);
    struct adaptive_options opt;
    memset(&opt, 0, sizeof opt);
    opt.dtype = DTYPE_FP32;
    for (unsigned i = 0; i < 3; i++) {
        opt.low[i] = range_low[i];
        opt.high[i] = range_high[i];
    }
    opt.threshold = threshold;
    opt.radius_log2 = ADAPTIVE_DEFAULT_RADIUS_LOG2; /* the spec gives none */
    opt.per_round = PER_ROUND;
    opt.holdout = cfg->train.holdout_fraction;
    opt.seed = SEED;
    opt.round = round;
    opt.train.options = cfg->train;
    opt.train.simulated = cfg->simulated;
    struct adaptive_result res;
    assert_int_equal(adaptive_round(k, trows, n, &opt, &res), ADAPTIVE_OK);
    free(trows);

    assert_int_equal(int_member(round_obj, "round"), round);
    assert_int_equal(int_member(round_obj, "rows"), n);
    json_t *m = json_object_get(round_obj, "metrics");
    assert_true(json_is_object(m));
    assert_int_equal(int_member(m, "rows"), res.rows);
    assert_int_equal(int_member(m, "train_rows"), res.train_rows);
    assert_int_equal(int_member(m, "test_rows"), res.test_rows);
    assert_int_equal(int_member(m, "above_threshold"), res.above_threshold);
    /* The last planned round proposes nothing (rounds.h), whatever the round
     * itself would have drawn; every round's metrics carry the simulated label. */
    assert_int_equal(int_member(m, "proposed"), last ? 0 : res.proposed_count);
    assert_true(json_is_true(json_object_get(m, "simulated")));
    assert_real_member(m, "worst_error", res.worst_error);
    json_t *lat = json_object_get(m, "latency");
    assert_true(json_is_object(lat));
    assert_real_member(lat, "mape", res.latency.mape);
    assert_real_member(lat, "within_10pct", res.latency.within_10pct);
    assert_real_member(lat, "kendall_tau", res.latency.kendall_tau);
    assert_real_member(lat, "rmse", res.latency.rmse);
    double within = json_number_value(json_object_get(lat, "within_10pct"));
    assert_true(within >= 0.0 && within <= 1.0);

    size_t queued = 0;
    struct db_job *jobs = batch_jobs(fx, batch, DB_JOB_QUEUED, &queued);
    if (last) {
        assert_int_equal(int_member(round_obj, "added"), 0);
        assert_int_equal(queued, 0);
    } else {
        /* One batch in the database: no proposal is known elsewhere. */
        assert_int_equal(int_member(round_obj, "duplicates"), 0);
        assert_int_equal(int_member(round_obj, "added"), res.proposed_count);
        assert_int_equal(queued, res.proposed_count);
        for (size_t i = 0; i < queued; i++) {
            char key[160], params[256];
            assert_true(catalog_config_key(&res.proposed[i], key, sizeof key) > 0);
            assert_true(api_params_json(&res.proposed[i], params, sizeof params) > 0);
            assert_string_equal(jobs[i].config_key, key);
            assert_string_equal(jobs[i].params_json, params);
            assert_string_equal(jobs[i].kernel, KERNEL);
            assert_string_equal(jobs[i].dtype, "fp32");
            assert_int_equal(jobs[i].batch_id, batch);
            assert_int_equal(jobs[i].priority, DB_PRIORITY_SWEEP);
            assert_int_equal(jobs[i].repeats, REPEATS);
            assert_int_equal(jobs[i].max_attempts, cfg->max_attempts);
            assert_int_equal(jobs[i].attempts, 0);
            for (unsigned p = 0; p < 3; p++) {
                assert_true(res.proposed[i].params[p] >= range_low[p]);
                assert_true(res.proposed[i].params[p] <= range_high[p]);
            }
        }
    }
    free(jobs);
    adaptive_result_free(&res);
}

/* Runs the next round, which must commit; the jobs it queued. */
static size_t run_round(struct fixture *fx, int64_t batch, const struct rounds_config *cfg)
{
    char err[512] = "";
    size_t queued = 99;
    if (rounds_run_next(fx->db, batch, cfg, &queued, err, sizeof err) != 0)
        fail_msg("round: %s", err);
    return queued;
}

/* ---- the life of a batch ---- */

static void test_lifecycle(void **state)
{
    struct fixture *fx = *state;
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    char spec[512];
    spec_text(spec, sizeof spec, "0.05");
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    assert_int_equal(inserted, INITIAL);
    assert_true(batch_get(fx, id).adaptive_open);

    /* The initial sample queued: not ready. */
    assert_ready(fx, NULL, 0);
    assert_int_equal(measure_all(fx, 0), INITIAL);
    assert_ready(fx, &id, 1);

    /* Round 0: trained on the initial sample, proposals queued in the batch. */
    size_t q0 = run_round(fx, id, &cfg);
    assert_true(stop.calls > 0); /* asked while training */
    assert_true(q0 >= 1 && q0 <= PER_ROUND);
    assert_int_equal(rounds_count(fx, id), 1);
    json_t *arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 1);
    json_t *r0 = json_array_get(arr, 0);
    assert_int_equal(int_member(r0, "rows"), INITIAL);
    assert_int_equal(int_member(r0, "added"), q0);
    assert_string_equal(note_of(r0), "");
    json_t *m0 = json_object_get(r0, "metrics");
    assert_true(int_member(m0, "above_threshold") >= 1);
    check_round(fx, id, 0, r0, &cfg, 0.05, false);
    json_decref(arr);
    struct db_batch b = batch_get(fx, id);
    assert_true(b.adaptive_open);
    assert_int_equal(b.counts[DB_JOB_QUEUED], q0);
    assert_int_equal(b.counts[DB_JOB_DONE], INITIAL);
    assert_ready(fx, NULL, 0); /* its proposals are queued */

    /* Round 1, on the initial sample and round 0's proposals. */
    assert_int_equal(measure_all(fx, 0), q0);
    assert_ready(fx, &id, 1);
    size_t q1 = run_round(fx, id, &cfg);
    assert_true(q1 >= 1 && q1 <= PER_ROUND);
    arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 2);
    json_t *r1 = json_array_get(arr, 1);
    assert_int_equal(int_member(r1, "rows"), INITIAL + q0);
    assert_string_equal(note_of(r1), "");
    check_round(fx, id, 1, r1, &cfg, 0.05, false);
    json_decref(arr);
    assert_true(batch_get(fx, id).adaptive_open);
    assert_ready(fx, NULL, 0);

    /* Round 2 = rounds: the last planned, metrics only, the batch closed. */
    assert_int_equal(measure_all(fx, 0), q1);
    assert_ready(fx, &id, 1);
    size_t q2 = run_round(fx, id, &cfg);
    assert_int_equal(q2, 0);
    arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 3);
    json_t *r2 = json_array_get(arr, 2);
    assert_int_equal(int_member(r2, "rows"), INITIAL + q0 + q1);
    assert_int_equal(int_member(r2, "added"), 0);
    check_round(fx, id, 2, r2, &cfg, 0.05, true);
    json_decref(arr);
    b = batch_get(fx, id);
    assert_false(b.adaptive_open);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
    assert_int_equal(b.counts[DB_JOB_DONE], INITIAL + q0 + q1);
    assert_ready(fx, NULL, 0);

    /* A closed batch has no next round: the commit is refused, nothing written. */
    char err[512] = "";
    size_t queued = 99;
    assert_int_equal(rounds_run_next(fx->db, id, &cfg, &queued, err, sizeof err), -1);
    assert_int_equal(queued, 0);
    assert_contains(err, "not an open adaptive batch");
    assert_int_equal(rounds_count(fx, id), 3);
}

/* Runs the batch to its close, as the runner would; the rounds (without
 * created_at) and the config_keys of the batch's jobs, in id order. */
static json_t *run_to_close(struct fixture *fx, const char *spec, const struct rounds_config *cfg,
                            json_t **keys)
{
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    for (int i = 0; i <= ROUNDS; i++) {
        measure_all(fx, 0);
        assert_ready(fx, &id, 1);
        run_round(fx, id, cfg);
    }
    assert_ready(fx, NULL, 0);
    assert_false(batch_get(fx, id).adaptive_open);
    json_t *arr = rounds_json(fx, id);
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r) assert_int_equal(json_object_del(r, "created_at"), 0);
    size_t n = 0;
    struct db_job *jobs = batch_jobs(fx, id, -1, &n);
    *keys = json_array();
    assert_non_null(*keys);
    for (size_t j = 0; j < n; j++)
        assert_int_equal(json_array_append_new(*keys, json_string(jobs[j].config_key)), 0);
    free(jobs);
    return arr;
}

static void test_deterministic(void **state)
{
    struct fixture *fx = *state, *other = &fx[1];
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    char spec[512];
    spec_text(spec, sizeof spec, "0.05");

    json_t *keys_a = NULL, *keys_b = NULL;
    json_t *a = run_to_close(fx, spec, &cfg, &keys_a);
    json_t *b = run_to_close(other, spec, &cfg, &keys_b);
    assert_int_equal(json_array_size(a), ROUNDS + 1);
    /* Proposals were made, so the comparison covers them. */
    assert_true(json_array_size(keys_a) > INITIAL);
    if (!json_equal(a, b)) {
        char *ta = json_dumps(a, JSON_COMPACT), *tb = json_dumps(b, JSON_COMPACT);
        char msg[4096];
        snprintf(msg, sizeof msg, "rounds differ:\n%s\n%s", ta ? ta : "?", tb ? tb : "?");
        free(ta);
        free(tb);
        fail_msg("%s", msg);
    }
    assert_true(json_equal(keys_a, keys_b));
    json_decref(a);
    json_decref(b);
    json_decref(keys_a);
    json_decref(keys_b);
}

/* ---- rounds that close the batch early ---- */

static void test_within_threshold(void **state)
{
    struct fixture *fx = *state;
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    char spec[512];
    spec_text(spec, sizeof spec, "10"); /* 1000 %: every held-out row is within it */
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    assert_int_equal(measure_all(fx, 0), INITIAL);
    assert_int_equal(run_round(fx, id, &cfg), 0);
    json_t *arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 1);
    json_t *r0 = json_array_get(arr, 0);
    assert_int_equal(int_member(r0, "rows"), INITIAL);
    assert_int_equal(int_member(r0, "added"), 0);
    assert_contains(note_of(r0), "every held-out configuration is predicted within the threshold");
    json_t *m = json_object_get(r0, "metrics");
    assert_int_equal(int_member(m, "above_threshold"), 0);
    assert_int_equal(int_member(m, "proposed"), 0);
    assert_true(int_member(m, "test_rows") > 0);
    json_decref(arr);
    struct db_batch b = batch_get(fx, id);
    assert_false(b.adaptive_open);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
    assert_ready(fx, NULL, 0);
}

static void test_too_few_rows(void **state)
{
    struct fixture *fx = *state;
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    char spec[512];
    spec_text(spec, sizeof spec, "0.05");
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    /* 12 of 30 fail: 18 usable, fewer than 20 even before a row is held out. */
    assert_int_equal(measure_all(fx, 12), INITIAL - 12);
    assert_ready(fx, &id, 1);
    assert_int_equal(run_round(fx, id, &cfg), 0);
    json_t *arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 1);
    json_t *r0 = json_array_get(arr, 0);
    assert_int_equal(int_member(r0, "round"), 0);
    assert_int_equal(int_member(r0, "rows"), INITIAL - 12);
    assert_int_equal(int_member(r0, "added"), 0);
    assert_contains(note_of(r0), "'" KERNEL "' has 18 usable measurements");
    assert_int_equal(int_member(json_object_get(r0, "metrics"), "rows"), INITIAL - 12);
    assert_int_equal(int_member(json_object_get(r0, "metrics"), "proposed"), 0);
    json_decref(arr);
    struct db_batch b = batch_get(fx, id);
    assert_false(b.adaptive_open);
    assert_int_equal(b.counts[DB_JOB_FAILED], 12);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
    assert_ready(fx, NULL, 0);
}

/* A batch of kind "adaptive" whose spec is body: round 0 closes it with a note
 * saying want, and empty metrics. */
static void assert_spec_closes(struct fixture *fx, const char *body, const char *want)
{
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    int64_t id = queue_raw(fx, body);
    assert_ready(fx, &id, 1);
    assert_int_equal(run_round(fx, id, &cfg), 0);
    assert_int_equal(stop.calls, 0); /* nothing trained */
    json_t *arr = rounds_json(fx, id);
    assert_int_equal(json_array_size(arr), 1);
    json_t *r0 = json_array_get(arr, 0);
    assert_int_equal(int_member(r0, "round"), 0);
    assert_int_equal(int_member(r0, "rows"), 0);
    assert_int_equal(int_member(r0, "added"), 0);
    assert_contains(note_of(r0), want);
    json_t *m = json_object_get(r0, "metrics");
    assert_true(json_is_object(m));
    assert_int_equal(json_object_size(m), 0);
    json_decref(arr);
    assert_false(batch_get(fx, id).adaptive_open);
    assert_ready(fx, NULL, 0);
}

static void test_bad_specs(void **state)
{
    struct fixture *fx = *state;
    assert_spec_closes(fx,
                       "{\"sweep\":{\"type\":\"random\",\"kernel\":\"" KERNEL "\",\"count\":25,"
                       "\"seed\":1,\"params\":{\"batch\":[1,64],\"in\":[8,512],\"out\":64}}}",
                       "the batch is not an adaptive sweep");
    assert_spec_closes(fx,
                       "{\"sweep\":{\"type\":\"adaptive\",\"kernel\":\"no_such_kernel\","
                       "\"params\":{\"batch\":[1,64]},\"initial\":30,\"per_round\":6,"
                       "\"rounds\":2}}",
                       "the batch's spec no longer expands: ");
    assert_spec_closes(fx, "{\"sweep\":", "the batch's spec is not JSON: ");
}

/* ---- abandoned and failed rounds ---- */

static void test_should_stop(void **state)
{
    struct fixture *fx = *state;
    struct stop_ctx stop = {.stop = true};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    char spec[512];
    spec_text(spec, sizeof spec, "0.05");
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    assert_int_equal(measure_all(fx, 0), INITIAL);

    char err[512] = "";
    size_t queued = 99;
    assert_int_equal(rounds_run_next(fx->db, id, &cfg, &queued, err, sizeof err), 1);
    assert_true(stop.calls > 0);
    assert_int_equal(queued, 0);
    assert_int_equal(rounds_count(fx, id), 0);
    struct db_batch b = batch_get(fx, id);
    assert_true(b.adaptive_open);
    assert_int_equal(b.counts[DB_JOB_QUEUED], 0);
    assert_int_equal(b.counts[DB_JOB_DONE], INITIAL);
    assert_ready(fx, &id, 1);

    /* Started again, the same round runs and commits. */
    stop.stop = false;
    size_t q0 = run_round(fx, id, &cfg);
    assert_true(q0 >= 1);
    assert_int_equal(rounds_count(fx, id), 1);
}

/* Runs SQL on a connection of the test's own to the database file (schema
 * changes reach the db's connection at its next statement). */
static void exec_sql(struct fixture *fx, const char *sql)
{
    sqlite3 *conn = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &conn, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(conn, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(sqlite3_close(conn), SQLITE_OK);
}

/* rounds_run_next fails with err saying want; nothing committed, the batch
 * still open and ready, its jobs unchanged. */
static void assert_round_fails(struct fixture *fx, int64_t id, const char *want)
{
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);
    size_t jobs_before = 0;
    free(batch_jobs(fx, id, -1, &jobs_before));
    char err[512] = "";
    size_t queued = 99;
    assert_int_equal(rounds_run_next(fx->db, id, &cfg, &queued, err, sizeof err), -1);
    assert_int_equal(queued, 0);
    assert_contains(err, want);
    size_t jobs_after = 0;
    free(batch_jobs(fx, id, -1, &jobs_after));
    assert_int_equal(jobs_after, jobs_before);
    assert_true(batch_get(fx, id).adaptive_open);
    assert_ready(fx, &id, 1);
}

static void test_database_errors(void **state)
{
    struct fixture *fx = *state;
    struct stop_ctx stop = {0};
    struct rounds_config cfg;
    make_config(&cfg, &stop);

    /* No such batch: nothing to commit a round to. */
    char err[512] = "";
    size_t queued = 99;
    assert_int_equal(rounds_run_next(fx->db, 4242, &cfg, &queued, err, sizeof err), -1);
    assert_int_equal(queued, 0);
    assert_contains(err, "committing round 0 of batch 4242");

    char spec[512];
    spec_text(spec, sizeof spec, "0.05");
    size_t inserted = 0;
    int64_t id = queue_spec(fx, spec, &inserted);
    assert_int_equal(measure_all(fx, 0), INITIAL);

    /* The round's write refused after training: rolled back, proposals included. */
    exec_sql(fx, "CREATE TRIGGER test_refuse_round BEFORE INSERT ON batch_rounds"
                 " BEGIN SELECT RAISE(ABORT, 'test: the disk is full'); END");
    assert_round_fails(fx, id, "committing round 0 of batch");
    assert_round_fails(fx, id, "test: the disk is full");
    assert_int_equal(rounds_count(fx, id), 0);
    exec_sql(fx, "DROP TRIGGER test_refuse_round");

    /* The spec cannot be read: a database failure, not a reason to close. */
    exec_sql(fx, "ALTER TABLE batches RENAME COLUMN spec_json TO spec_json_moved");
    assert_round_fails(fx, id, "reading the batch's spec");
    exec_sql(fx, "ALTER TABLE batches RENAME COLUMN spec_json_moved TO spec_json");

    /* The rounds cannot be counted. */
    exec_sql(fx, "ALTER TABLE batch_rounds RENAME TO batch_rounds_moved");
    assert_round_fails(fx, id, "counting the rounds of batch");
    exec_sql(fx, "ALTER TABLE batch_rounds_moved RENAME TO batch_rounds");
    assert_int_equal(rounds_count(fx, id), 0);

    /* Repaired, the same round commits. */
    assert_true(run_round(fx, id, &cfg) >= 1);
    assert_int_equal(rounds_count(fx, id), 1);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_within_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_few_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_should_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
