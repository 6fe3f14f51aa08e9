/*
 * test_predict_train.c - training predictors: the metrics on hand-computed
 * cases (tau-b with ties, perfect and reversed rankings, MAPE with a zero truth,
 * within 10 %) and against a brute-force tau-b; the XGBoost ensemble on
 * synthetic linear-kernel latencies (held-out accuracy, member JSON, base_score
 * centring, determinism per seed, bootstrap members differing), the split's
 * edges, and every bad input refused with a message that names it. Compact
 * members: XGBoost's full JSON and its compact form (train_compact_member) give
 * bit-identical trees_predict results on random, missing and on-threshold rows
 * (exact trees as trained here; hist trees with missing values; pruned trees
 * with deleted nodes), the compact text is under half the size and lacks the
 * statistics, numbers XGBoost did not write survive as their float, and models
 * the evaluator refuses are refused.
 *
 * Rounds are kept small (50) so the binary stays fast under the sanitizers.
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

#include <xgboost/c_api.h>

#include "predict/train.h"
#include "predict/trees.h"

#define SYNTH_ROWS 200

/* ---- helpers ---- */

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unit(uint64_t *state) { return (double)(splitmix(state) >> 11) / 9007199254740992.0; }

/* Log-uniform integer in [lo, hi]. */
static int64_t log_uniform(uint64_t *state, double lo, double hi)
{
    return (int64_t)llround(exp(log(lo) + unit(state) * (log(hi) - log(lo))));
}

/*
 * SYNTH_ROWS linear kernel configs, latency_us = 0.002 * flops^0.8 with +-1 %
 * deterministic noise: a smooth law over six decades the trees must learn
 * from the features alone.
 */
static struct train_row *synthetic_rows(size_t n, unsigned *feature_count)
{
    struct train_row *rows = calloc(n, sizeof(*rows));
    assert_non_null(rows);
    const struct catalog_kernel *k = catalog_find("linear");
    assert_non_null(k);
    uint64_t state = 7;
    for (size_t i = 0; i < n; i++) {
        struct kernel_config cfg = {.kernel = k, .dtype = (enum dtype)(i % 2)};
        cfg.params[0] = log_uniform(&state, 1, 1024);
        cfg.params[1] = log_uniform(&state, 16, 4096);
        cfg.params[2] = log_uniform(&state, 16, 4096);
        *feature_count = predict_features(&cfg, rows[i].features);
        struct kernel_features kf;
        catalog_features(&cfg, &kf);
        double noise = 1.0 + 0.02 * (unit(&state) - 0.5);
        rows[i].target = 0.002 * pow(kf.flops, 0.8) * noise;
    }
    assert_int_equal(*feature_count, 10);
    return rows;
}

static struct train_options small_options(void)
{
    struct train_options opt;
    train_options_default(&opt);
    opt.rounds = 50;
    opt.log_target = true;
    return opt;
}

/* learner.learner_model_param.<field> of a member, as a number. */
static double model_param(const char *json, const char *field)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    if (!root)
        fail_msg("member is not JSON: %s", jerr.text);
    json_t *v = json_object_get(json_object_get(json_object_get(root, "learner"),
                                                "learner_model_param"),
                                field);
    assert_true(json_is_string(v));
    double out = strtod(json_string_value(v), NULL);
    json_decref(root);
    return out;
}

/* ---- train_score ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct train_options opt;
    memset(&opt, 0xff, sizeof(opt));
    train_options_default(&opt);
    assert_int_equal(opt.seed, 42);
    assert_true(opt.holdout_fraction == 0.2);
    assert_int_equal(opt.ensemble_size, 5);
    assert_int_equal(opt.rounds, 200);
    assert_int_equal(opt.max_depth, 6);
    assert_true(opt.eta == 0.1);
    assert_false(opt.log_target);
    assert_int_equal(opt.threads, 1);
}

static void test_score_perfect_and_reversed(void **state)
{
    (void)state;
    const double truth[] = {1, 2, 3, 4};
    const double reversed[] = {4, 3, 2, 1};
    struct train_metrics m;

    train_score(truth, truth, 4, &m);
    assert_int_equal(m.test_rows, 4);
    assert_int_equal(m.train_rows, 0);
    assert_float_equal(m.rmse, 0.0, 1e-12);
    assert_float_equal(m.mape, 0.0, 1e-12);
    assert_float_equal(m.within_10pct, 1.0, 1e-12);
    assert_float_equal(m.kendall_tau, 1.0, 1e-12);

    /* errors 3, 1, 1, 3: rmse sqrt(20 / 4); percentages 300, 50, 33.3, 75 */
    train_score(truth, reversed, 4, &m);
    assert_float_equal(m.rmse, sqrt(5.0), 1e-12);
    assert_float_equal(m.mape, (300.0 + 50.0 + 100.0 / 3.0 + 75.0) / 4.0, 1e-9);
    assert_float_equal(m.within_10pct, 0.0, 1e-12);
    assert_float_equal(m.kendall_tau, -1.0, 1e-12);
}

static void test_score_ties(void **state)
{
    (void)state;
    struct train_metrics m;

    /* pairs: 4 concordant, (1,2) tied in truth, (2,3) tied in prediction:
     * tau-b = 4 / sqrt((6 - 1) (6 - 1)) = 0.8 (tau-a would say 4/6) */
    const double t1[] = {1, 2, 2, 3}, p1[] = {1, 2, 3, 3};
    train_score(t1, p1, 4, &m);
    assert_float_equal(m.kendall_tau, 0.8, 1e-12);

    /* 2 concordant, 6 discordant; truth ties (0,1) (3,4); prediction ties (0,1)
     * (a joint tie, counted on both sides): (2 - 6) / sqrt((10 - 2) (10 - 1)) */
    const double t2[] = {1, 1, 2, 3, 3}, p2[] = {5, 5, 1, 4, 2};
    train_score(t2, p2, 5, &m);
    assert_float_equal(m.kendall_tau, -4.0 / sqrt(72.0), 1e-12);

    /* No ranking on one side: tau 0, not NaN. */
    const double same[] = {7, 7, 7};
    const double ranked[] = {1, 2, 3};
    train_score(same, ranked, 3, &m);
    assert_float_equal(m.kendall_tau, 0.0, 0.0);
    train_score(ranked, same, 3, &m);
    assert_float_equal(m.kendall_tau, 0.0, 0.0);

    /* n = 1: tau 0 by definition, the rest still computed. */
    const double one_t[] = {10}, one_p[] = {12};
    train_score(one_t, one_p, 1, &m);
    assert_int_equal(m.test_rows, 1);
    assert_float_equal(m.kendall_tau, 0.0, 0.0);
    assert_float_equal(m.rmse, 2.0, 1e-12);
    assert_float_equal(m.mape, 20.0, 1e-9);
    assert_float_equal(m.within_10pct, 0.0, 0.0);
}

/* MAPE skips a zero truth (undefined); within 10 % counts it only when exact. */
static void test_score_mape_within(void **state)
{
    (void)state;
    struct train_metrics m;
    const double truth[] = {100, 200, 50, 0, 0};
    const double pred[] = {105, 260, 50, 0, 1};
    train_score(truth, pred, 5, &m);
    assert_float_equal(m.mape, (5.0 + 30.0 + 0.0) / 3.0, 1e-9);
    assert_float_equal(m.within_10pct, 3.0 / 5.0, 1e-12); /* 105, 50, 0 */
    assert_float_equal(m.rmse, sqrt((25.0 + 3600.0 + 1.0) / 5.0), 1e-9);
    assert_true(isfinite(m.mape));

    const double zeros[] = {0, 0};
    train_score(zeros, zeros, 2, &m);
    assert_float_equal(m.mape, 0.0, 0.0);
    assert_float_equal(m.within_10pct, 1.0, 0.0);
}

/* tau-b straight from its definition, O(n^2): the oracle for the fast one. */
static double brute_tau_b(const double *x, const double *y, size_t n)
{
    double c_minus_d = 0, pairs = 0, x_ties = 0, y_ties = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            pairs++;
            x_ties += dx == 0;
            y_ties += dy == 0;
            if (dx != 0 && dy != 0)
                c_minus_d += (dx > 0) == (dy > 0) ? 1 : -1;
        }
    }
    if (pairs == x_ties || pairs == y_ties)
        return 0.0;
    return c_minus_d / sqrt((pairs - x_ties) * (pairs - y_ties));
}

static void test_score_tau_against_brute_force(void **state)
{
    (void)state;
    uint64_t s = 99;
    double x[300], y[300];
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 2 + splitmix(&s) % 299;
        /* few distinct values so ties of every kind are common */
        unsigned levels = 2 + (unsigned)(splitmix(&s) % 12);
        for (size_t i = 0; i < n; i++) {
            x[i] = (double)(splitmix(&s) % levels);
            /* every third trial correlated, the others independent */
            y[i] = trial % 3 == 0 ? x[i] + (double)(splitmix(&s) % 2)
                                  : (double)(splitmix(&s) % levels);
        }
        struct train_metrics m;
        train_score(x, y, n, &m);
        double want = brute_tau_b(x, y, n);
        if (fabs(m.kendall_tau - want) > 1e-12)
            fail_msg("trial %d, n %zu: tau %.15g, brute force %.15g", trial, n, m.kendall_tau,
                     want);
    }
}

/* ---- train_ensemble ---- */

static void test_train_synthetic(void **state)
{
    (void)state;
    unsigned fc;
    struct train_row *rows = synthetic_rows(SYNTH_ROWS, &fc);
    struct train_options opt = small_options();
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";
    int rc = train_ensemble(rows, SYNTH_ROWS, fc, &opt, &members, &count, &m, err, sizeof err);
    if (rc != 0)
        fail_msg("train_ensemble: %s", err);
    assert_int_equal(count, 5);
    assert_int_equal(m.test_rows, 40); /* round(0.2 * 200) */
    assert_int_equal(m.train_rows, 160);
    /* A smooth law with 1 % noise: the held-out error is small and the order right. */
    assert_true(m.mape < 10.0);
    assert_true(m.within_10pct > 0.6);
    assert_true(m.kendall_tau > 0.9);
    assert_true(m.rmse > 0.0 && isfinite(m.rmse));

    /* Each member is XGBoost JSON for reg:squarederror with 50 trees and a
     * base_score inside the range of ln(latency). */
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < SYNTH_ROWS; i++) {
        lo = fmin(lo, log(rows[i].target));
        hi = fmax(hi, log(rows[i].target));
    }
    for (size_t i = 0; i < count; i++) {
        json_error_t jerr;
        json_t *root = json_loads(members[i], 0, &jerr);
        if (!root)
            fail_msg("member %zu: %s", i, jerr.text);
        json_t *learner = json_object_get(root, "learner");
        json_t *obj = json_object_get(json_object_get(learner, "objective"), "name");
        assert_string_equal(json_string_value(obj), "reg:squarederror");
        json_t *gb = json_object_get(learner, "gradient_booster");
        assert_string_equal(json_string_value(json_object_get(gb, "name")), "gbtree");
        json_t *trees = json_object_get(json_object_get(gb, "model"), "trees");
        assert_int_equal(json_array_size(trees), 50);
        json_decref(root);
        assert_int_equal((int)model_param(members[i], "num_feature"), 10);
        double base = model_param(members[i], "base_score");
        assert_true(base > lo && base < hi);
    }
    /* Bootstrap members learn from other samples than member 0. */
    assert_string_not_equal(members[0], members[1]);
    assert_string_not_equal(members[1], members[2]);
    train_free_members(members, count);
    free(rows);
}

static void test_train_deterministic(void **state)
{
    (void)state;
    unsigned fc;
    struct train_row *rows = synthetic_rows(SYNTH_ROWS, &fc);
    struct train_options opt = small_options();
    opt.ensemble_size = 3;
    char **a = NULL, **b = NULL, **c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    struct train_metrics ma, mb, mc;
    char err[256] = "";
    assert_int_equal(train_ensemble(rows, SYNTH_ROWS, fc, &opt, &a, &na, &ma, err, sizeof err), 0);
    assert_int_equal(train_ensemble(rows, SYNTH_ROWS, fc, &opt, &b, &nb, &mb, err, sizeof err), 0);
    assert_int_equal(na, 3);
    assert_int_equal(nb, 3);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
    assert_memory_equal(&ma, &mb, sizeof(ma));

    /* Another seed: another split, so member 0 (on the training split itself)
     * starts from another training mean and the held-out metrics move. */
    opt.seed = 43;
    assert_int_equal(train_ensemble(rows, SYNTH_ROWS, fc, &opt, &c, &nc, &mc, err, sizeof err), 0);
    assert_int_equal(nc, 3);
    assert_string_not_equal(a[0], c[0]);
    assert_true(model_param(a[0], "base_score") != model_param(c[0], "base_score"));
    assert_true(ma.rmse != mc.rmse);
    train_free_members(a, na);
    train_free_members(b, nb);
    train_free_members(c, nc);
    free(rows);
}

/* A constant target: base_score is exactly its (float) log, every tree is a zero
 * leaf, and the held-out prediction is the constant. */
static void test_train_centred(void **state)
{
    (void)state;
    struct train_row rows[TRAIN_MIN_ROWS];
    memset(rows, 0, sizeof(rows));
    for (size_t i = 0; i < TRAIN_MIN_ROWS; i++) {
        rows[i].features[0] = (float)i;
        rows[i].features[1] = (float)(i % 3);
        rows[i].target = 50.0;
    }
    struct train_options opt = small_options();
    opt.rounds = 5;
    opt.ensemble_size = 2;
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";
    assert_int_equal(train_ensemble(rows, TRAIN_MIN_ROWS, 2, &opt, &members, &count, &m, err,
                                    sizeof err),
                     0);
    assert_int_equal(count, 2);
    assert_true((float)model_param(members[0], "base_score") == (float)log(50.0));
    assert_true(m.mape < 1e-4);
    assert_float_equal(m.within_10pct, 1.0, 0.0);
    assert_int_equal(m.test_rows, 4);
    train_free_members(members, count);
}

/* Power-like target without the log: zero and negative values are fine. */
static void test_train_linear_target(void **state)
{
    (void)state;
    struct train_row rows[60];
    memset(rows, 0, sizeof(rows));
    for (size_t i = 0; i < 60; i++) {
        rows[i].features[0] = (float)i;
        rows[i].target = i < 30 ? -5.0 + (double)i : 1000.0;
    }
    rows[3].target = 0.0;
    struct train_options opt = small_options();
    opt.log_target = false;
    opt.ensemble_size = 2;
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";
    int rc = train_ensemble(rows, 60, 1, &opt, &members, &count, &m, err, sizeof err);
    if (rc != 0)
        fail_msg("train_ensemble: %s", err);
    assert_int_equal(count, 2);
    assert_int_equal(m.test_rows, 12);
    assert_int_equal(m.train_rows, 48);
    assert_true(isfinite(m.rmse) && isfinite(m.mape));
    assert_true(m.rmse < 100.0); /* a step of 1000 learnt, not the mean */
    train_free_members(members, count);
}

/* The split keeps at least one row on each side whatever the fraction. */
static void test_train_split_edges(void **state)
{
    (void)state;
    unsigned fc;
    struct train_row *rows = synthetic_rows(SYNTH_ROWS, &fc);
    struct train_options opt = small_options();
    opt.rounds = 3;
    opt.ensemble_size = 2;
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";

    opt.holdout_fraction = 0.01; /* round(0.2) = 0 -> 1 */
    assert_int_equal(train_ensemble(rows, TRAIN_MIN_ROWS, fc, &opt, &members, &count, &m, err,
                                    sizeof err),
                     0);
    assert_int_equal(m.test_rows, 1);
    assert_int_equal(m.train_rows, 19);
    assert_float_equal(m.kendall_tau, 0.0, 0.0);
    train_free_members(members, count);

    opt.holdout_fraction = 0.99; /* round(19.8) = 20 -> 19, one training row */
    assert_int_equal(train_ensemble(rows, TRAIN_MIN_ROWS, fc, &opt, &members, &count, &m, err,
                                    sizeof err),
                     0);
    assert_int_equal(m.test_rows, 19);
    assert_int_equal(m.train_rows, 1);
    train_free_members(members, count);
    free(rows);
}

/* Runs train_ensemble expecting -1 with err containing want, and no members. */
static void expect_refused(const struct train_row *rows, size_t n, unsigned fc,
                           const struct train_options *opt, const char *want)
{
    char **members = (char **)&members; /* must be reset, not left as is */
    size_t count = 99;
    struct train_metrics m;
    char err[256] = "";
    assert_int_equal(train_ensemble(rows, n, fc, opt, &members, &count, &m, err, sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(members);
    assert_int_equal(count, 0);
}

static void test_train_bad_inputs(void **state)
{
    (void)state;
    unsigned fc;
    struct train_row *rows = synthetic_rows(SYNTH_ROWS, &fc);
    struct train_options opt = small_options();

    expect_refused(rows, TRAIN_MIN_ROWS - 1, fc, &opt, "at least 20 rows, got 19");
    expect_refused(rows, 0, fc, &opt, "at least 20 rows, got 0");
    expect_refused(NULL, SYNTH_ROWS, fc, &opt, "no rows given");
    expect_refused(rows, SYNTH_ROWS, fc, NULL, "no options given");
    expect_refused(rows, SYNTH_ROWS, 0, &opt, "feature_count 0 is outside 1..16");
    expect_refused(rows, SYNTH_ROWS, PREDICT_MAX_FEATURES + 1, &opt,
                   "feature_count 17 is outside 1..16");

    struct train_options bad = opt;
    bad.ensemble_size = 0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "ensemble_size 0 is outside 1..16");
    bad.ensemble_size = 17;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "ensemble_size 17");
    bad = opt;
    bad.rounds = 0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "rounds 0");
    bad = opt;
    bad.max_depth = 0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "max_depth 0");
    bad = opt;
    bad.eta = 0.0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "eta 0 is outside (0, 1]");
    bad.eta = NAN;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "eta nan");
    bad = opt;
    bad.holdout_fraction = 0.0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "holdout_fraction 0 is outside (0, 1)");
    bad.holdout_fraction = 1.0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "holdout_fraction 1");
    bad = opt;
    bad.threads = 0;
    expect_refused(rows, SYNTH_ROWS, fc, &bad, "threads 0");

    /* Row errors name the row (and the feature). */
    struct train_row saved = rows[7];
    rows[7].features[2] = NAN;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 7: feature 2 is nan, not a finite number");
    rows[7].features[2] = INFINITY;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 7: feature 2 is inf");
    rows[7] = saved;
    rows[3].target = 0.0;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 3: target 0 is not positive");
    rows[3].target = -2.5;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 3: target -2.5 is not positive");
    rows[3].target = NAN;
    opt.log_target = false;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 3: target is nan, not a finite number");
    rows[3].target = INFINITY;
    expect_refused(rows, SYNTH_ROWS, fc, &opt, "row 3: target is inf");
    rows[3] = saved;

    /* Only the first feature_count features count: NaN past them is fine. */
    rows[5].features[fc] = NAN;
    opt.rounds = 2;
    opt.ensemble_size = 1;
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";
    assert_int_equal(train_ensemble(rows, SYNTH_ROWS, fc, &opt, &members, &count, &m, err,
                                    sizeof err),
                     0);
    assert_int_equal(count, 1);
    train_free_members(members, count);
    train_free_members(NULL, 3); /* harmless */
    free(rows);
}

/* ---- compact members ---- */

static void xgb_ok(int rc)
{
    if (rc != 0)
        fail_msg("XGBoost: %s", XGBGetLastError());
}

/* Rows for the boosters below: integer and continuous features, a share of
 * them missing (NaN) so default_left goes both ways. */
static void compact_rows(uint64_t *state, float *x, float *y, size_t rows, unsigned cols,
                         double missing_share)
{
    for (size_t r = 0; r < rows; r++) {
        double t = 0.0;
        for (unsigned c = 0; c < cols; c++) {
            float v = c % 2 ? (float)(unit(state) * 10.0 - 3.0) : (float)(splitmix(state) % 16);
            if (unit(state) < missing_share)
                v = NAN;
            x[r * cols + c] = v;
            t += isnan(v) ? -5.0 * c : (c + 1) * (double)v * (c == 1 ? v : 1.0);
        }
        if (y)
            y[r] = (float)(t + unit(state));
    }
}

/* XGBoost's full JSON text of a booster trained on rows x, y; params is a
 * NULL-terminated list of name, value pairs. */
static char *full_booster_json(const float *x, const float *y, size_t rows, unsigned cols,
                               unsigned rounds, const char *const *params, size_t *len)
{
    DMatrixHandle d;
    BoosterHandle b;
    bst_ulong n;
    const char *buf;
    xgb_ok(XGDMatrixCreateFromMat(x, (bst_ulong)rows, cols, NAN, &d));
    xgb_ok(XGDMatrixSetFloatInfo(d, "label", y, (bst_ulong)rows));
    xgb_ok(XGBoosterCreate(&d, 1, &b));
    xgb_ok(XGBoosterSetParam(b, "verbosity", "0"));
    xgb_ok(XGBoosterSetParam(b, "objective", "reg:squarederror"));
    xgb_ok(XGBoosterSetParam(b, "nthread", "1"));
    for (size_t i = 0; params[i] != NULL; i += 2)
        xgb_ok(XGBoosterSetParam(b, params[i], params[i + 1]));
    for (unsigned i = 0; i < rounds; i++)
        xgb_ok(XGBoosterUpdateOneIter(b, (int)i, d));
    xgb_ok(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &n, &buf));
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    memcpy(text, buf, (size_t)n);
    text[n] = '\0';
    *len = (size_t)n;
    xgb_ok(XGBoosterFree(b));
    xgb_ok(XGDMatrixFree(d));
    return text;
}

static struct tree_ensemble *load_model(const char *text)
{
    struct tree_ensemble *t = NULL;
    char err[512] = "";
    if (trees_load_xgboost_json(text, strlen(text), &t, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    return t;
}

/* Both models' predictions on row x, bit for bit. */
static void assert_same_prediction(const struct tree_ensemble *a, const struct tree_ensemble *b,
                                   const float *x, unsigned cols, size_t row)
{
    double pa = trees_predict(a, x, cols), pb = trees_predict(b, x, cols);
    if (memcmp(&pa, &pb, sizeof pa) != 0)
        fail_msg("row %zu: full JSON predicts %.17g, compact %.17g", row, pa, pb);
}

/* Every row kind on both: random rows with missing values, each split threshold
 * of the full model exactly (where "<" and "<=" part), all missing, far left. */
static void assert_same_everywhere(const char *full, const char *compact, unsigned cols)
{
    enum { RANDOM_ROWS = 1000 };
    struct tree_ensemble *a = load_model(full), *b = load_model(compact);
    assert_int_equal(trees_count(a), trees_count(b));
    assert_int_equal(trees_feature_count(a), trees_feature_count(b));
    uint64_t state = 99;
    float *x = malloc(RANDOM_ROWS * cols * sizeof *x);
    assert_non_null(x);
    compact_rows(&state, x, NULL, RANDOM_ROWS, cols, 0.1);
    for (size_t r = 0; r < RANDOM_ROWS; r++)
        assert_same_prediction(a, b, &x[r * cols], cols, r);

    json_t *root = json_loads(full, 0, NULL);
    assert_non_null(root);
    json_t *trees = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "learner"), "gradient_booster"),
                        "model"),
        "trees");
    size_t checked = 0;
    for (size_t t = 0; t < json_array_size(trees); t++) {
        json_t *tree = json_array_get(trees, t);
        json_t *left = json_object_get(tree, "left_children");
        json_t *idx = json_object_get(tree, "split_indices");
        json_t *cond = json_object_get(tree, "split_conditions");
        for (size_t i = 0; i < json_array_size(left); i++) {
            json_int_t f = json_integer_value(json_array_get(idx, i));
            if (json_integer_value(json_array_get(left, i)) == -1 || f < 0 || f >= (json_int_t)cols)
                continue; /* leaves and deleted nodes */
            float *row = &x[(checked % RANDOM_ROWS) * cols];
            row[f] = (float)json_number_value(json_array_get(cond, i));
            assert_same_prediction(a, b, row, cols, RANDOM_ROWS + checked++);
        }
    }
    assert_true(checked > 0);
    json_decref(root);
    for (unsigned c = 0; c < cols; c++)
        x[c] = NAN;
    assert_same_prediction(a, b, x, cols, SIZE_MAX - 1);
    for (unsigned c = 0; c < cols; c++)
        x[c] = -1e30f;
    assert_same_prediction(a, b, x, cols, SIZE_MAX);
    free(x);
    trees_free(a);
    trees_free(b);
}

/* What the evaluator never reads is gone from a compact member. */
static void assert_compact_keys(const char *compact)
{
    static const char *const dropped[] = {
        "base_weights", "loss_changes", "sum_hessian", "\"parents\"", "split_type",
        "categories", "attributes", "feature_names", "feature_types", "reg_loss_param",
        "boost_from_average", "num_parallel_tree", "num_deleted", "\"id\"",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        if (strstr(compact, dropped[i]) != NULL)
            fail_msg("the compact member still has %s", dropped[i]);
    static const char *const kept[] = {
        "\"base_score\"", "\"num_feature\"", "\"reg:squarederror\"", "\"gbtree\"",
        "\"tree_info\"", "\"num_nodes\"", "\"left_children\"", "\"right_children\"",
        "\"split_indices\"", "\"split_conditions\"", "\"default_left\"",
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (strstr(compact, kept[i]) == NULL)
            fail_msg("the compact member lost %s", kept[i]);
}

static void check_compaction(const char *const *params, unsigned rounds, unsigned cols,
                             double missing_share, bool want_deleted)
{
    enum { ROWS = 300 };
    uint64_t state = 5;
    float *x = malloc(ROWS * cols * sizeof *x), *y = malloc(ROWS * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    compact_rows(&state, x, y, ROWS, cols, missing_share);
    size_t full_len = 0;
    char *full = full_booster_json(x, y, ROWS, cols, rounds, params, &full_len);
    if (want_deleted) {
        /* The scenario really has deleted nodes. */
        static const char key[] = "\"num_deleted\":\"";
        bool deleted = false;
        for (const char *p = full; (p = strstr(p, key)) != NULL; p++)
            deleted |= p[strlen(key)] != '0';
        assert_true(deleted);
    }
    char err[512] = "";
    char *compact = train_compact_member(full, full_len, err, sizeof err);
    if (compact == NULL)
        fail_msg("train_compact_member: %s", err);
    size_t compact_len = strlen(compact);
    if (!(compact_len * 2 < full_len))
        fail_msg("compact member %zu bytes, full %zu: not under half", compact_len, full_len);
    assert_compact_keys(compact);
    assert_same_everywhere(full, compact, cols);

    /* Compacting again changes nothing: the numbers are already in their
     * final form. */
    char *again = train_compact_member(compact, compact_len, err, sizeof err);
    if (again == NULL)
        fail_msg("compacting a compact member: %s", err);
    assert_string_equal(again, compact);
    free(again);
    free(compact);
    free(full);
    free(x);
    free(y);
}

/* The boosters train_ensemble makes: exact trees, depth 6, eta 0.1. */
static void test_compact_exact_identical(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "exact", "max_depth", "6", "eta", "0.1",
                                         "seed", "42", NULL};
    check_compaction(params, 60, 10, 0.0, false);
}

/* Missing values (default_left both ways) and hist splits. */
static void test_compact_hist_missing_identical(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "hist", "max_depth", "6", "eta", "0.3",
                                         "max_bin", "32", NULL};
    check_compaction(params, 30, 6, 0.15, false);
}

/* A large gamma makes the pruner delete nodes: they stay in the arrays with a
 * split index of 2^31 - 1. */
static void test_compact_pruned_identical(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "exact", "max_depth", "6", "gamma", "40",
                                         NULL};
    check_compaction(params, 20, 4, 0.0, true);
}

/* The members train_ensemble returns are compact, and load. */
static void test_train_members_compact(void **state)
{
    (void)state;
    unsigned fc;
    struct train_row *rows = synthetic_rows(SYNTH_ROWS, &fc);
    struct train_options opt = small_options();
    opt.ensemble_size = 2;
    char **members = NULL;
    size_t count = 0;
    struct train_metrics m;
    char err[256] = "";
    assert_int_equal(train_ensemble(rows, SYNTH_ROWS, fc, &opt, &members, &count, &m, err,
                                    sizeof err),
                     0);
    for (size_t i = 0; i < count; i++) {
        assert_compact_keys(members[i]);
        struct tree_ensemble *t = load_model(members[i]);
        assert_int_equal(trees_count(t), opt.rounds);
        assert_int_equal(trees_feature_count(t), fc);
        trees_free(t);
    }
    train_free_members(members, count);
    free(rows);
}

/* A number XGBoost would not write: 1 + 2^-24, halfway between the floats 1 and
 * its successor, is the float 1 (ties to even). Printed with 9 digits it would
 * read back as 1.00000006, the successor; the compact form writes 1.0. */
#define ONE_LEAF_MODEL(leaf)                                                                \
    "{\"learner\":{\"learner_model_param\":{\"base_score\":\"0\",\"num_feature\":\"1\"},"       \
    "\"objective\":{\"name\":\"reg:squarederror\"},\"gradient_booster\":{\"name\":\"gbtree\","  \
    "\"model\":{\"tree_info\":[0],\"trees\":[{\"left_children\":[-1],\"right_children\":[-1],"   \
    "\"split_indices\":[0],\"split_conditions\":[" leaf "],\"default_left\":[0]}]}}}}"

static void test_compact_float_midpoint(void **state)
{
    (void)state;
    static const char full[] = ONE_LEAF_MODEL("1.0000000596046448");
    char err[256] = "";
    char *compact = train_compact_member(full, strlen(full), err, sizeof err);
    if (compact == NULL)
        fail_msg("train_compact_member: %s", err);
    assert_non_null(strstr(compact, "\"split_conditions\":[1.0]"));
    struct tree_ensemble *a = load_model(full), *b = load_model(compact);
    float x = 0.0f;
    assert_true(trees_predict(a, &x, 1) == 1.0);
    assert_same_prediction(a, b, &x, 1, 0);
    trees_free(a);
    trees_free(b);
    free(compact);

    /* -0 stays -0. */
    static const char negative_zero[] = ONE_LEAF_MODEL("-0E0");
    compact = train_compact_member(negative_zero, strlen(negative_zero), err, sizeof err);
    assert_non_null(compact);
    assert_non_null(strstr(compact, "[-0.0]"));
    free(compact);
}

static void expect_compact_refused(const char *text, size_t len, const char *want)
{
    char err[256] = "";
    char *compact = train_compact_member(text, len, err, sizeof err);
    if (compact != NULL) {
        free(compact);
        fail_msg("compacted what should be refused (%s)", want);
    }
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_compact_refuses(void **state)
{
    (void)state;
    static const char model[] = ONE_LEAF_MODEL("0.5");
    expect_compact_refused(NULL, 0, "empty text");
    expect_compact_refused(model, 0, "empty text");
    expect_compact_refused(model, strlen(model) - 3, "not valid JSON");
    expect_compact_refused("[1]", 3, "the top level is not an object");
    /* Whatever the evaluator refuses is refused here, with its reason. */
    char *other = strdup(model);
    assert_non_null(other);
    memcpy(strstr(other, "reg:squarederror"), "reg:logisticxxx ", 16);
    expect_compact_refused(other, strlen(other), "objective 'reg:logisticxxx ' is not supported");
    free(other);
    static const char categorical[] =
        "{\"learner\":{\"learner_model_param\":{\"base_score\":\"0\",\"num_feature\":\"1\"},"
        "\"objective\":{\"name\":\"reg:squarederror\"},\"gradient_booster\":{\"name\":\"gbtree\","
        "\"model\":{\"tree_info\":[0],\"trees\":[{\"left_children\":[-1],\"right_children\":[-1],"
        "\"split_indices\":[0],\"split_conditions\":[1],\"default_left\":[0],"
        "\"split_type\":[1]}]}}}}";
    expect_compact_refused(categorical, strlen(categorical), "categorical");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_score_perfect_and_reversed),
        cmocka_unit_test(test_score_ties),
        cmocka_unit_test(test_score_mape_within),
        cmocka_unit_test(test_score_tau_against_brute_force),
        cmocka_unit_test(test_train_synthetic),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_train_centred),
        cmocka_unit_test(test_train_linear_target),
        cmocka_unit_test(test_train_split_edges),
        cmocka_unit_test(test_train_bad_inputs),
        cmocka_unit_test(test_compact_exact_identical),
        cmocka_unit_test(test_compact_hist_missing_identical),
        cmocka_unit_test(test_compact_pruned_identical),
        cmocka_unit_test(test_train_members_compact),
        cmocka_unit_test(test_compact_float_midpoint),
        cmocka_unit_test(test_compact_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
