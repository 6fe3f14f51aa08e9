/*
 * test_predict_train.c - training predictors: the metrics on hand-computed
 * cases (tau-b with ties, perfect and reversed rankings, MAPE with a zero truth,
 * within 10 %) and against a brute-force tau-b; the XGBoost ensemble on
 * synthetic linear-kernel latencies (held-out accuracy, member JSON, base_score
 * centring, determinism per seed, bootstrap members differing), the split's
 * edges, and every bad input refused with a message that names it.
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

#include "predict/train.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
