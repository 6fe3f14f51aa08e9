/*
 * test_predict_adaptive.c - one round of adaptive sampling (predict/adaptive.c)
 * on synthetic "linear" rows whose latency is a known function of the
 * parameters: smooth over most of the space, eight times slower in one corner
 * (batch >= 64 and in >= 256), so a model trained on part of the rows gets
 * held-out rows wrong.
 *
 * The round is checked against an independent recomputation of the documented
 * procedure (the seeded split replayed here, the same model trained with
 * trainset_train_kernel, train_score on its held-out predictions): the
 * metrics, the count above threshold and the worst error agree exactly, and
 * every proposal lies within 2^radius_log2 (plus rounding) of a held-out row
 * above the threshold, the first one around the worst. Proposals stay within
 * the sweep's range, are valid for the catalogue, repeat neither a row nor
 * each other (the 32-try limit skipping what cannot be drawn); the round is
 * deterministic. Edges: no row above threshold proposes nothing, too few rows
 * (counting only usable ones) is TOO_FEW_ROWS, every bad option and a failed
 * training is FAILED naming the cause, and the JSON form.
 *
 * Boosters are kept small so the binary stays fast under the sanitizers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudakern/sweep.h"
#include "predict/adaptive.h"
#include "predict/models.h"

#define ROWS 80

static const struct catalog_kernel *kernel(const char *name)
{
    const struct catalog_kernel *k = catalog_find(name);
    assert_non_null(k);
    return k;
}

/* The corner regime: what the rounds are meant to find. */
static bool in_corner(int64_t batch, int64_t in) { return batch >= 64 && in >= 256; }

static double linear_latency_us(int64_t batch, int64_t in, int64_t out)
{
    double us = 2.0 + 2e-5 * (double)batch * (double)in * (double)out / 8.0;
    return in_corner(batch, in) ? 8.0 * us : us;
}

/* n linear fp32 rows drawn log-uniformly over batch [1, 256], in and out
 * [8, 1024]; uids "row-0000".. (sorted). */
static struct trainset_row *linear_rows(size_t n)
{
    struct trainset_row *rows = calloc(n ? n : 1, sizeof *rows);
    assert_non_null(rows);
    uint64_t state = 99;
    for (size_t i = 0; i < n; i++) {
        int64_t batch = sweep_draw(&state, 1, 256, true);
        int64_t in = sweep_draw(&state, 8, 1024, true);
        int64_t out = sweep_draw(&state, 8, 1024, true);
        struct trainset_row *r = &rows[i];
        snprintf(r->uid, sizeof r->uid, "row-%04zu", i);
        snprintf(r->dtype, sizeof r->dtype, "fp32");
        snprintf(r->params_json, sizeof r->params_json,
                 "{\"batch\": %lld, \"in\": %lld, \"out\": %lld}", (long long)batch,
                 (long long)in, (long long)out);
        r->latency_us = linear_latency_us(batch, in, out);
        r->rail_count = 1; /* a rail the round must not spend a model on */
        snprintf(r->rails[0].name, sizeof r->rails[0].name, "VDD_IN");
        r->rails[0].power_mw = 4000.0 + (double)batch;
    }
    return rows;
}

static struct adaptive_options linear_options(void)
{
    struct adaptive_options o;
    memset(&o, 0, sizeof o);
    o.dtype = DTYPE_FP32;
    o.low[0] = 1;
    o.high[0] = 256;
    o.low[1] = 8;
    o.high[1] = 1024;
    o.low[2] = 8;
    o.high[2] = 1024;
    o.threshold = ADAPTIVE_DEFAULT_THRESHOLD;
    o.radius_log2 = ADAPTIVE_DEFAULT_RADIUS_LOG2;
    o.per_round = 12;
    o.holdout = 0.2;
    o.seed = 5;
    o.round = 2;
    train_options_default(&o.train.options);
    o.train.options.rounds = 40;
    o.train.options.max_depth = 4;
    o.train.options.eta = 0.3;
    o.train.options.ensemble_size = 3; /* the round trains one booster whatever this says */
    o.train.simulated = true;
    return o;
}

static bool same_params(const struct kernel_config *a, const struct kernel_config *b)
{
    for (unsigned i = 0; i < a->kernel->param_count; i++)
        if (a->params[i] != b->params[i])
            return false;
    return true;
}

/* Is value within a factor 2^radius of centre (one either side for rounding)? */
static bool near(int64_t value, int64_t centre, double radius)
{
    double lo = floor((double)centre * exp2(-radius)) - 1.0;
    double hi = ceil((double)centre * exp2(radius)) + 1.0;
    return (double)value >= lo && (double)value <= hi;
}

static bool near_config(const struct kernel_config *p, const struct kernel_config *centre,
                        double radius)
{
    for (unsigned i = 0; i < p->kernel->param_count; i++)
        if (!near(p->params[i], centre->params[i], radius))
            return false;
    return true;
}

/* Proposals in range, valid, new, distinct, of the kernel and dtype. */
static void check_proposals(const struct catalog_kernel *k, const struct trainset_row *rows,
                            size_t n, const struct adaptive_options *o,
                            const struct adaptive_result *r)
{
    assert_true(r->proposed_count <= o->per_round);
    assert_true((r->proposed_count == 0) == (r->proposed == NULL));
    for (size_t i = 0; i < r->proposed_count; i++) {
        const struct kernel_config *p = &r->proposed[i];
        char why[256];
        assert_ptr_equal(p->kernel, k);
        assert_int_equal(p->dtype, o->dtype);
        if (catalog_validate(p, 0, why, sizeof why) != 0)
            fail_msg("proposal %zu is invalid: %s", i, why);
        for (unsigned j = 0; j < k->param_count; j++)
            assert_in_range(p->params[j], o->low[j], o->high[j]);
        for (size_t q = 0; q < i; q++)
            if (same_params(p, &r->proposed[q]))
                fail_msg("proposals %zu and %zu are the same configuration", q, i);
        for (size_t row = 0; row < n; row++) {
            struct kernel_config c;
            if (trainset_row_config(k, &rows[row], &c) != 0 || c.dtype != p->dtype)
                continue;
            if (same_params(p, &c))
                fail_msg("proposal %zu repeats row %zu (%s)", i, row, rows[row].uid);
        }
    }
}

/* ---- the round against an independent recomputation ---- */

static void test_round_matches_recomputation(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(ROWS);
    struct adaptive_options o = linear_options();
    struct adaptive_result r;
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &r), ADAPTIVE_OK);
    assert_int_equal(r.rows, ROWS);
    assert_int_equal(r.test_rows, 16); /* round(0.2 x 80) */
    assert_int_equal(r.train_rows, 64);
    assert_int_equal(r.latency.test_rows, 16);
    assert_int_equal(r.latency.train_rows, 64);

    /* The split as documented: Fisher-Yates over the row positions with
     * splitmix64 seeded by seed ^ round; the first 16 positions held out. */
    size_t order[ROWS];
    bool held[ROWS] = {false};
    uint64_t st = o.seed ^ (uint64_t)o.round;
    for (size_t i = 0; i < ROWS; i++)
        order[i] = i;
    for (size_t i = ROWS - 1; i > 0; i--) {
        size_t j = (size_t)(sweep_splitmix64(&st) % (uint64_t)(i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < 16; i++)
        held[order[i]] = true;
    struct trainset_row train[ROWS];
    size_t m = 0;
    for (size_t i = 0; i < ROWS; i++)
        if (!held[i])
            train[m++] = rows[i];
    assert_int_equal(m, 64);

    /* The same model: trainset with a single booster (rails or not, the
     * latency model is trained first and alone from the same rows). */
    struct trainset_params p = o.train;
    p.options.ensemble_size = 1;
    struct trainset_models models = {0};
    struct trainset_result tres;
    assert_int_equal(trainset_train_kernel(k, train, m, &p, &models, &tres), TRAINSET_OK);
    assert_string_equal(models.items[0].target, PREDICT_TARGET_LATENCY);
    struct model_set *set = model_set_new();
    assert_non_null(set);
    char err[256];
    assert_int_equal(model_set_add_blob(set, models.items[0].blob, models.items[0].blob_len, err,
                                        sizeof err),
                     0);
    double truth[16], pred[16], worst = 0.0;
    size_t above = 0;
    struct kernel_config held_cfg[16];
    double held_err[16];
    for (size_t t = 0; t < 16; t++) {
        struct kernel_prediction kp;
        assert_int_equal(trainset_row_config(k, &rows[order[t]], &held_cfg[t]), 0);
        assert_int_equal(model_set_predict(set, &held_cfg[t], &kp, err, sizeof err), 0);
        truth[t] = rows[order[t]].latency_us;
        pred[t] = kp.latency_us;
        held_err[t] = fabs(pred[t] - truth[t]) / truth[t];
        if (held_err[t] > worst)
            worst = held_err[t];
        above += held_err[t] > o.threshold;
    }
    struct train_metrics want;
    train_score(truth, pred, 16, &want);
    assert_true(r.latency.mape == want.mape);
    assert_true(r.latency.within_10pct == want.within_10pct);
    assert_true(r.latency.kendall_tau == want.kendall_tau);
    assert_true(r.latency.rmse == want.rmse);
    assert_int_equal(r.above_threshold, above);
    assert_true(r.worst_error == worst);
    /* Internal consistency of what the runner stores. */
    assert_true(r.above_threshold <= r.test_rows);
    assert_true((r.worst_error > o.threshold) == (r.above_threshold > 0));
    assert_true(fabs(r.latency.within_10pct * 16 - round(r.latency.within_10pct * 16)) < 1e-9);

    /* The corner regime makes some held-out rows miss. */
    assert_true(r.above_threshold > 0);
    assert_true(r.proposed_count > 0);
    check_proposals(k, rows, ROWS, &o, &r);
    /* Every proposal is around some held-out row above the threshold ... */
    size_t worst_t = 16;
    for (size_t t = 0; t < 16; t++)
        if (held_err[t] == worst)
            worst_t = t;
    for (size_t i = 0; i < r.proposed_count; i++) {
        bool found = false;
        for (size_t t = 0; t < 16 && !found; t++)
            found = held_err[t] > o.threshold &&
                    near_config(&r.proposed[i], &held_cfg[t], o.radius_log2);
        if (!found)
            fail_msg("proposal %zu is near no held-out row above the threshold", i);
    }
    /* ... and the first, unless its draw was skipped, around the worst one. */
    if (r.proposed_count == o.per_round)
        assert_true(near_config(&r.proposed[0], &held_cfg[worst_t], o.radius_log2));

    model_set_free(set);
    trainset_models_free(&models);
    adaptive_result_free(&r);
    assert_null(r.proposed);
    assert_int_equal(r.proposed_count, 0);
    free(rows);
}

static void test_deterministic(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(ROWS);
    struct adaptive_options o = linear_options();
    struct adaptive_result a, b, c;
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &a), ADAPTIVE_OK);
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &b), ADAPTIVE_OK);
    assert_int_equal(a.proposed_count, b.proposed_count);
    assert_true(a.proposed_count > 0);
    assert_memory_equal(a.proposed, b.proposed, a.proposed_count * sizeof *a.proposed);
    assert_memory_equal(&a.latency, &b.latency, sizeof a.latency);
    assert_true(a.worst_error == b.worst_error);
    assert_int_equal(a.above_threshold, b.above_threshold);

    /* Another round number is another split and other draws. */
    o.round = 3;
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &c), ADAPTIVE_OK);
    bool differs = c.proposed_count != a.proposed_count ||
                   memcmp(&c.latency, &a.latency, sizeof a.latency) != 0 ||
                   memcmp(c.proposed, a.proposed, a.proposed_count * sizeof *a.proposed) != 0;
    assert_true(differs);
    check_proposals(k, rows, ROWS, &o, &c);

    /* per_round 0: scores only. */
    o.per_round = 0;
    adaptive_result_free(&c);
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &c), ADAPTIVE_OK);
    assert_int_equal(c.proposed_count, 0);
    assert_null(c.proposed);
    assert_true(c.above_threshold > 0);

    adaptive_result_free(&a);
    adaptive_result_free(&b);
    adaptive_result_free(&c);
    free(rows);
}

static void test_nothing_above_threshold(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(ROWS);
    struct adaptive_options o = linear_options();
    o.threshold = 1e9;
    struct adaptive_result r;
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &r), ADAPTIVE_OK);
    assert_int_equal(r.above_threshold, 0);
    assert_int_equal(r.proposed_count, 0);
    assert_null(r.proposed);
    assert_true(r.worst_error > 0.0 && r.worst_error <= o.threshold);
    assert_int_equal(r.test_rows, 16);
    assert_true(r.latency.mape > 0.0); /* scored all the same */
    adaptive_result_free(&r);
    free(rows);
}

/* ---- proposals: ranges, fixed parameters, duplicates ---- */

static void test_fixed_and_clamped(void **state)
{
    (void)state;
    /* out fixed at 64 by the sweep (low = high), a wide radius: every
     * proposal keeps out = 64 and is clamped into the sweep's other ranges. */
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(ROWS);
    for (size_t i = 0; i < ROWS; i++) {
        struct kernel_config c;
        assert_int_equal(trainset_row_config(k, &rows[i], &c), 0);
        snprintf(rows[i].params_json, sizeof rows[i].params_json,
                 "{\"batch\": %lld, \"in\": %lld, \"out\": 64}", (long long)c.params[0],
                 (long long)c.params[1]);
        rows[i].latency_us = linear_latency_us(c.params[0], c.params[1], 64);
    }
    struct adaptive_options o = linear_options();
    o.low[2] = o.high[2] = 64;
    o.radius_log2 = 4.0;
    o.per_round = 30;
    o.dtype = DTYPE_FP16; /* no row is fp16: nothing is a duplicate of a row by dtype alone */
    struct adaptive_result r;
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &r), ADAPTIVE_OK);
    assert_true(r.above_threshold > 0);
    assert_true(r.proposed_count > 0);
    check_proposals(k, rows, ROWS, &o, &r);
    bool at_bound = false;
    for (size_t i = 0; i < r.proposed_count; i++) {
        assert_int_equal(r.proposed[i].params[2], 64);
        at_bound = at_bound || r.proposed[i].params[0] == 256 || r.proposed[i].params[0] == 1 ||
                   r.proposed[i].params[1] == 1024 || r.proposed[i].params[1] == 8;
    }
    /* 16x either way from rows spread over the whole range: some hit a bound */
    assert_true(at_bound);
    adaptive_result_free(&r);
    free(rows);
}

/* n layernorm rows, rows = 8, cols cycling over 2, 3, 4, latencies scattered so
 * that no model predicts them within 10 %. */
static struct trainset_row *layernorm_rows(size_t n)
{
    struct trainset_row *rows = calloc(n, sizeof *rows);
    assert_non_null(rows);
    for (size_t i = 0; i < n; i++) {
        snprintf(rows[i].uid, sizeof rows[i].uid, "ln-%04zu", i);
        snprintf(rows[i].dtype, sizeof rows[i].dtype, "fp32");
        snprintf(rows[i].params_json, sizeof rows[i].params_json,
                 "{\"rows\": 8, \"cols\": %zu}", 2 + i % 3);
        rows[i].latency_us = 1.0 + (double)((i * 37) % 23) * 5.0;
    }
    return rows;
}

static void test_duplicates_never_proposed(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("layernorm");
    struct trainset_row *rows = layernorm_rows(40);
    struct adaptive_options o = linear_options();
    memset(o.low, 0, sizeof o.low);
    memset(o.high, 0, sizeof o.high);
    o.low[0] = o.high[0] = 8;
    o.low[1] = 2;
    o.high[1] = 4;
    o.per_round = 10;

    /* Every configuration of the range is measured in fp32: nothing is new. */
    struct adaptive_result r;
    assert_int_equal(adaptive_round(k, rows, 40, &o, &r), ADAPTIVE_OK);
    assert_true(r.above_threshold > 0);
    assert_int_equal(r.proposed_count, 0);
    assert_null(r.proposed);
    adaptive_result_free(&r);

    /* In fp16 all three are new, but only three exist: each once, the other
     * slots skipped after their tries. */
    o.dtype = DTYPE_FP16;
    assert_int_equal(adaptive_round(k, rows, 40, &o, &r), ADAPTIVE_OK);
    assert_true(r.proposed_count >= 1 && r.proposed_count <= 3);
    check_proposals(k, rows, 40, &o, &r);
    adaptive_result_free(&r);

    /* Measured in fp16 too (uids still sorted): nothing is new again. */
    struct trainset_row *both = calloc(80, sizeof *both);
    assert_non_null(both);
    memcpy(both, rows, 40 * sizeof *rows);
    memcpy(both + 40, rows, 40 * sizeof *rows);
    for (size_t i = 40; i < 80; i++) {
        snprintf(both[i].uid, sizeof both[i].uid, "lo-%04zu", i);
        snprintf(both[i].dtype, sizeof both[i].dtype, "fp16");
    }
    assert_int_equal(adaptive_round(k, both, 80, &o, &r), ADAPTIVE_OK);
    assert_int_equal(r.proposed_count, 0);
    adaptive_result_free(&r);
    free(both);
    free(rows);
}

/* ---- errors ---- */

static void test_too_few_rows(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(30);
    struct adaptive_options o = linear_options();
    struct adaptive_result r;

    /* 24 rows: 5 held out leave 19 to train on. */
    assert_int_equal(adaptive_round(k, rows, 24, &o, &r), ADAPTIVE_TOO_FEW_ROWS);
    assert_non_null(strstr(r.detail, "24 usable measurements"));
    assert_non_null(strstr(r.detail, "at least 20"));
    assert_int_equal(r.proposed_count, 0);
    assert_null(r.proposed);
    adaptive_result_free(&r);
    /* 25: 5 held out, 20 to train on: enough. */
    assert_int_equal(adaptive_round(k, rows, 25, &o, &r), ADAPTIVE_OK);
    assert_int_equal(r.test_rows, 5);
    assert_int_equal(r.train_rows, 20);
    adaptive_result_free(&r);
    /* none at all */
    assert_int_equal(adaptive_round(k, NULL, 0, &o, &r), ADAPTIVE_TOO_FEW_ROWS);
    assert_non_null(strstr(r.detail, "0 usable"));
    adaptive_result_free(&r);

    /* Only usable rows count: 30 rows, 5 of which make no configuration and 2
     * with no positive latency, leave 23. */
    strcpy(rows[3].params_json, "{\"batch\": 1}");
    strcpy(rows[4].params_json, "[]");
    strcpy(rows[5].dtype, "fp64");
    strcpy(rows[6].params_json, "{\"batch\": 1, \"in\": \"8\", \"out\": 8}");
    strcpy(rows[7].params_json, "not json");
    rows[8].latency_us = 0.0;
    rows[9].latency_us = NAN;
    assert_int_equal(adaptive_round(k, rows, 30, &o, &r), ADAPTIVE_TOO_FEW_ROWS);
    assert_int_equal(r.rows, 30);
    assert_non_null(strstr(r.detail, "23 usable"));
    adaptive_result_free(&r);
    free(rows);
}

struct bad_option {
    void (*apply)(struct adaptive_options *o);
    const char *needle;
};

static void zero_threshold(struct adaptive_options *o) { o->threshold = 0.0; }
static void nan_threshold(struct adaptive_options *o) { o->threshold = NAN; }
static void negative_radius(struct adaptive_options *o) { o->radius_log2 = -1.0; }
static void inf_radius(struct adaptive_options *o) { o->radius_log2 = INFINITY; }
static void zero_holdout(struct adaptive_options *o) { o->holdout = 0.0; }
static void big_holdout(struct adaptive_options *o) { o->holdout = 0.51; }
static void inverted(struct adaptive_options *o)
{
    o->low[1] = 600;
    o->high[1] = 500;
}
static void above_catalogue(struct adaptive_options *o) { o->high[2] = 65537; }
static void below_catalogue(struct adaptive_options *o) { o->low[0] = 0; }
static void bad_dtype(struct adaptive_options *o) { o->dtype = (enum dtype)7; }
static void no_threads(struct adaptive_options *o) { o->train.options.threads = 0; }

static void test_bad_options(void **state)
{
    (void)state;
    const struct catalog_kernel *k = kernel("linear");
    struct trainset_row *rows = linear_rows(ROWS);
    static const struct bad_option cases[] = {
        {zero_threshold, "threshold 0 is not a relative error > 0"},
        {nan_threshold, "threshold"},
        {negative_radius, "radius_log2 -1 is not"},
        {inf_radius, "radius_log2 inf"},
        {zero_holdout, "holdout 0 is outside (0, 0.5]"},
        {big_holdout, "holdout 0.51"},
        {inverted, "[600, 500] of parameter 'in'"},
        {above_catalogue, "'out' is not low <= high within linear's range [1, 65536]"},
        {below_catalogue, "[0, 256] of parameter 'batch'"},
        {bad_dtype, "dtype 7"},
        {no_threads, "training the linear latency model on 64 rows: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct adaptive_options o = linear_options();
        cases[i].apply(&o);
        struct adaptive_result r;
        assert_int_equal(adaptive_round(k, rows, ROWS, &o, &r), ADAPTIVE_FAILED);
        if (!strstr(r.detail, cases[i].needle))
            fail_msg("case %zu: detail lacks '%s': %s", i, cases[i].needle, r.detail);
        assert_null(r.proposed);
        assert_int_equal(r.proposed_count, 0);
        assert_true(r.latency.mape == 0.0 && r.above_threshold == 0);
        adaptive_result_free(&r);
    }

    /* No kernel; rows out of uid order (trainset's check, quoted). */
    struct adaptive_options o = linear_options();
    struct adaptive_result r;
    assert_int_equal(adaptive_round(NULL, rows, ROWS, &o, &r), ADAPTIVE_FAILED);
    assert_non_null(strstr(r.detail, "no kernel type"));
    assert_int_equal(adaptive_round(k, rows, ROWS, NULL, &r), ADAPTIVE_FAILED);
    for (size_t i = 0; i < ROWS / 2; i++) {
        struct trainset_row t = rows[i];
        rows[i] = rows[ROWS - 1 - i];
        rows[ROWS - 1 - i] = t;
    }
    assert_int_equal(adaptive_round(k, rows, ROWS, &o, &r), ADAPTIVE_FAILED);
    assert_non_null(strstr(r.detail, "training the linear latency model"));
    assert_non_null(strstr(r.detail, "not sorted by uid"));
    free(rows);
}

/* ---- JSON ---- */

static void test_json(void **state)
{
    (void)state;
    struct adaptive_result r;
    memset(&r, 0, sizeof r);
    r.rows = 50;
    r.train_rows = 40;
    r.test_rows = 10;
    r.latency.mape = 12.5;
    r.latency.within_10pct = 0.6;
    r.latency.kendall_tau = 0.75;
    r.latency.rmse = NAN;
    r.above_threshold = 4;
    r.worst_error = 0.9;
    r.proposed_count = 7;
    json_t *j = adaptive_result_json(&r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), 50);
    assert_int_equal(json_integer_value(json_object_get(j, "train_rows")), 40);
    assert_int_equal(json_integer_value(json_object_get(j, "test_rows")), 10);
    json_t *lat = json_object_get(j, "latency");
    assert_true(json_is_object(lat));
    assert_int_equal(json_object_size(lat), 4);
    assert_true(json_real_value(json_object_get(lat, "mape")) == 12.5);
    assert_true(json_real_value(json_object_get(lat, "within_10pct")) == 0.6);
    assert_true(json_real_value(json_object_get(lat, "kendall_tau")) == 0.75);
    assert_true(json_is_null(json_object_get(lat, "rmse"))); /* no number for NaN */
    assert_int_equal(json_integer_value(json_object_get(j, "above_threshold")), 4);
    assert_true(json_real_value(json_object_get(j, "worst_error")) == 0.9);
    assert_int_equal(json_integer_value(json_object_get(j, "proposed")), 7);
    assert_int_equal(json_object_size(j), 7);
    /* fits the round record the database keeps */
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_true(strlen(text) < 1024);
    free(text);
    json_decref(j);
    assert_null(adaptive_result_json(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_matches_recomputation),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_nothing_above_threshold),
        cmocka_unit_test(test_fixed_and_clamped),
        cmocka_unit_test(test_duplicates_never_proposed),
        cmocka_unit_test(test_too_few_rows),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
