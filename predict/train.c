/*
 * train.c - trains one predictor: a small bagged ensemble of XGBoost boosters,
 * scored on a held-out split (procedure and contract in train.h).
 *
 * This is the only file in jetprof that calls XGBoost. It hands back each
 * member as XGBoost's own JSON model text, cut down to what predict/trees.c
 * reads (train_compact_member: about a third of the text, the same predictions
 * bit for bit), which trees.c evaluates in C, so nothing outside training ever
 * needs the library. The held-out metrics are computed here with XGBoost's
 * predictions (the mean of the members' in target units), before the handles
 * are gone.
 *
 * Booster settings, chosen for reproducibility (the training hash upstream
 * promises that the same rows and options mean the same models):
 *   - tree_method "exact": greedy over every distinct value, no sketching or
 *     sampling, single-threaded by default (nthread = opt->threads), so the trees
 *     and therefore the JSON text are byte-identical from run to run;
 *   - base_score = the mean of the member's own (transformed) training labels,
 *     so the first tree starts from the centre of the data rather than from
 *     XGBoost's default 0.5 (far off for ln(latency_us)), and fewer rounds
 *     reach the same fit;
 *   - no row or column subsampling, so seed only matters through the split and
 *     the bootstrap resamples drawn here with splitmix64 (never rand(): global
 *     state another thread could advance).
 */
#include "train.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>

#include "trees.h"

/* ---- limits on the options: each with the message's wording ---- */

#define TRAIN_MAX_ENSEMBLE 16
#define TRAIN_MAX_ROUNDS 10000
#define TRAIN_MAX_DEPTH 32
#define TRAIN_MAX_THREADS 256

void train_options_default(struct train_options *opt)
{
    *opt = (struct train_options){
        .seed = 42,
        .holdout_fraction = 0.2,
        .ensemble_size = 5,
        .rounds = 200,
        .max_depth = 6,
        .eta = 0.1,
        .log_target = false, /* the caller opts in for latency */
        .threads = 1,
    };
}

/* ---- the seeded generator: splitmix64 (Steele, Lea, Flood 2014) ---- */

struct rng {
    uint64_t state;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1: draws at or above the largest multiple of n are
 * redrawn so no index is favoured (a plain % would be, by a hair). */
static size_t rng_below(struct rng *r, size_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return (size_t)(x % (uint64_t)n);
}

/* ---- metrics ---- */

/* A total order on doubles (NaN after every number, NaNs equal) so qsort and the
 * merge sort below get a consistent comparison whatever they are given. */
static int cmp_double(double a, double b)
{
    if (isnan(a))
        return isnan(b) ? 0 : 1;
    if (isnan(b))
        return -1;
    return (a > b) - (a < b);
}

struct score_pair {
    double truth, predicted;
};

static int cmp_pair(const void *pa, const void *pb)
{
    const struct score_pair *a = pa, *b = pb;
    int c = cmp_double(a->truth, b->truth);
    return c ? c : cmp_double(a->predicted, b->predicted);
}

/* Sorts v[0..n) ascending (stable) and returns how many pairs i < j had
 * v[i] > v[j] before: the discordant pairs once the rows are in truth order. */
static uint64_t sort_count_inversions(double *v, double *tmp, size_t n)
{
    if (n < 2)
        return 0;
    size_t half = n / 2;
    uint64_t inversions =
        sort_count_inversions(v, tmp, half) + sort_count_inversions(v + half, tmp, n - half);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) {
        if (cmp_double(v[j], v[i]) < 0) {
            inversions += half - i; /* v[j] is below every left element still waiting */
            tmp[k++] = v[j++];
        } else {
            tmp[k++] = v[i++];
        }
    }
    while (i < half)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
    return inversions;
}

/* Pairs within runs of equal values of a sorted array: sum of t (t - 1) / 2. */
static uint64_t tied_pairs(const double *v, size_t n)
{
    uint64_t pairs = 0;
    size_t run = 1;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && cmp_double(v[i], v[i - 1]) == 0) {
            run++;
        } else {
            pairs += (uint64_t)run * (run - 1) / 2;
            run = 1;
        }
    }
    return pairs;
}

/* tau-b from the pair counts: (concordant - discordant) over the geometric mean of
 * the pairs not tied in truth and not tied in prediction; 0 when either side is
 * all ties (no ranking to compare). */
static double tau_b(uint64_t pairs, uint64_t truth_ties, uint64_t pred_ties, double con_minus_dis)
{
    if (truth_ties >= pairs || pred_ties >= pairs)
        return 0.0;
    double tau = con_minus_dis / sqrt((double)(pairs - truth_ties) * (double)(pairs - pred_ties));
    return tau > 1.0 ? 1.0 : tau < -1.0 ? -1.0 : tau;
}

/* The O(n^2) definition, used only when the O(n log n) one cannot get memory. */
static double kendall_tau_pairwise(const double *truth, const double *predicted, size_t n)
{
    uint64_t pairs = (uint64_t)n * (n - 1) / 2, truth_ties = 0, pred_ties = 0;
    double con_minus_dis = 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            int a = cmp_double(truth[i], truth[j]), b = cmp_double(predicted[i], predicted[j]);
            truth_ties += a == 0;
            pred_ties += b == 0;
            con_minus_dis += (double)(a * b);
        }
    }
    return tau_b(pairs, truth_ties, pred_ties, con_minus_dis);
}

/* Knight's O(n log n) tau-b: sort by (truth, prediction), count ties in truth and
 * joint ties, then count the discordant pairs as the inversions left in the
 * predictions, and the ties in prediction once those are sorted. */
static double kendall_tau(const double *truth, const double *predicted, size_t n)
{
    if (n < 2)
        return 0.0;
    struct score_pair *pairs = malloc(n * sizeof(*pairs));
    double *pred = malloc(n * sizeof(*pred)), *tmp = malloc(n * sizeof(*tmp));
    if (!pairs || !pred || !tmp) {
        free(pairs);
        free(pred);
        free(tmp);
        return kendall_tau_pairwise(truth, predicted, n);
    }
    for (size_t i = 0; i < n; i++)
        pairs[i] = (struct score_pair){truth[i], predicted[i]};
    qsort(pairs, n, sizeof(*pairs), cmp_pair);

    uint64_t truth_ties = 0, joint_ties = 0;
    size_t truth_run = 1, joint_run = 1;
    for (size_t i = 1; i <= n; i++) {
        bool same_truth = i < n && cmp_double(pairs[i].truth, pairs[i - 1].truth) == 0;
        bool same_both =
            same_truth && cmp_double(pairs[i].predicted, pairs[i - 1].predicted) == 0;
        if (same_truth) {
            truth_run++;
        } else {
            truth_ties += (uint64_t)truth_run * (truth_run - 1) / 2;
            truth_run = 1;
        }
        if (same_both) {
            joint_run++;
        } else {
            joint_ties += (uint64_t)joint_run * (joint_run - 1) / 2;
            joint_run = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        pred[i] = pairs[i].predicted;
    uint64_t discordant = sort_count_inversions(pred, tmp, n);
    uint64_t pred_ties = tied_pairs(pred, n);
    uint64_t all = (uint64_t)n * (n - 1) / 2;
    double con_minus_dis =
        (double)all - (double)truth_ties - (double)pred_ties + (double)joint_ties -
        2.0 * (double)discordant;
    free(pairs);
    free(pred);
    free(tmp);
    return tau_b(all, truth_ties, pred_ties, con_minus_dis);
}

/*
 * MAPE leaves out rows whose truth is 0 (a percentage of nothing is undefined;
 * a power rail can read 0 mW) and is 0 when no row is left. "Within 10 %" is
 * |p - t| <= 0.1 |t|, which needs no division, so a zero truth counts as within
 * only when predicted exactly.
 */
void train_score(const double *truth, const double *predicted, size_t n,
                 struct train_metrics *out)
{
    memset(out, 0, sizeof(*out));
    out->test_rows = n;
    if (n == 0 || !truth || !predicted)
        return;
    double squared = 0.0, percent = 0.0;
    size_t percent_rows = 0, within = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = predicted[i] - truth[i];
        squared += diff * diff;
        if (truth[i] != 0.0) {
            percent += fabs(diff) / fabs(truth[i]) * 100.0;
            percent_rows++;
        }
        if (fabs(diff) <= 0.1 * fabs(truth[i]))
            within++;
    }
    out->rmse = sqrt(squared / (double)n);
    out->mape = percent_rows ? percent / (double)percent_rows : 0.0;
    out->within_10pct = (double)within / (double)n;
    out->kendall_tau = kendall_tau(truth, predicted, n);
}

/* ---- input checks ---- */

static int check_options(const struct train_options *opt, char *err, size_t errlen)
{
    if (opt->ensemble_size < 1 || opt->ensemble_size > TRAIN_MAX_ENSEMBLE) {
        snprintf(err, errlen, "ensemble_size %u is outside 1..%d", opt->ensemble_size,
                 TRAIN_MAX_ENSEMBLE);
        return -1;
    }
    if (opt->rounds < 1 || opt->rounds > TRAIN_MAX_ROUNDS) {
        snprintf(err, errlen, "rounds %u is outside 1..%d", opt->rounds, TRAIN_MAX_ROUNDS);
        return -1;
    }
    if (opt->max_depth < 1 || opt->max_depth > TRAIN_MAX_DEPTH) {
        snprintf(err, errlen, "max_depth %u is outside 1..%d", opt->max_depth,
                 TRAIN_MAX_DEPTH);
        return -1;
    }
    if (!(opt->eta > 0.0 && opt->eta <= 1.0)) {
        snprintf(err, errlen, "eta %g is outside (0, 1]", opt->eta);
        return -1;
    }
    if (!(opt->holdout_fraction > 0.0 && opt->holdout_fraction < 1.0)) {
        snprintf(err, errlen, "holdout_fraction %g is outside (0, 1)", opt->holdout_fraction);
        return -1;
    }
    if (opt->threads < 1 || opt->threads > TRAIN_MAX_THREADS) {
        snprintf(err, errlen, "threads %u is outside 1..%d", opt->threads, TRAIN_MAX_THREADS);
        return -1;
    }
    return 0;
}

static int check_rows(const struct train_row *rows, size_t row_count, unsigned feature_count,
                      bool log_target, char *err, size_t errlen)
{
    if (row_count < TRAIN_MIN_ROWS) {
        snprintf(err, errlen, "training needs at least %d rows, got %zu", TRAIN_MIN_ROWS,
                 row_count);
        return -1;
    }
    if (feature_count < 1 || feature_count > PREDICT_MAX_FEATURES) {
        snprintf(err, errlen, "feature_count %u is outside 1..%d", feature_count,
                 PREDICT_MAX_FEATURES);
        return -1;
    }
    for (size_t r = 0; r < row_count; r++) {
        for (unsigned f = 0; f < feature_count; f++) {
            if (!isfinite(rows[r].features[f])) {
                snprintf(err, errlen, "row %zu: feature %u is %g, not a finite number", r, f,
                         (double)rows[r].features[f]);
                return -1;
            }
        }
        if (!isfinite(rows[r].target)) {
            snprintf(err, errlen, "row %zu: target is %g, not a finite number", r,
                     rows[r].target);
            return -1;
        }
        if (log_target && rows[r].target <= 0.0) {
            snprintf(err, errlen,
                     "row %zu: target %g is not positive (the target is learnt as its "
                     "logarithm)",
                     r, rows[r].target);
            return -1;
        }
    }
    return 0;
}

/* ---- compact members ---- */

/*
 * XGBoost's JSON keeps, per tree, the statistics it trained with (base_weights,
 * loss_changes, sum_hessian, parents, split_type, empty category lists) and, per
 * learner, attributes, feature names and loss parameters: two thirds of the
 * text, none of it read by trees.c. A member keeps only what trees.c reads, in
 * XGBoost's own layout (so trees_load_xgboost_json reads both forms with the
 * same code and the same checks), written by jansson with MEMBER_REAL_DIGITS
 * significant digits. That is enough for every float (FLT_DECIMAL_DIG), and
 * XGBoost writes each float in its shortest round-trip form (never more than 9
 * digits), so those come back character for character and parse to the same
 * doubles: the evaluator sees the very same floats. A number that would not
 * (not XGBoost's writing) is replaced by its float's 9-digit form.
 */
#define MEMBER_REAL_DIGITS 9
#define MEMBER_DUMP_FLAGS \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(MEMBER_REAL_DIGITS))
_Static_assert(MEMBER_REAL_DIGITS >= FLT_DECIMAL_DIG, "a float needs FLT_DECIMAL_DIG digits");

/* The node arrays a compact tree keeps: what trees.c reads (its
 * REQUIRED_TREE_ARRAYS), in that order. */
static const char *const MEMBER_TREE_ARRAYS[] = {
    "left_children", "right_children", "split_indices", "split_conditions", "default_left",
};
#define MEMBER_TREE_ARRAY_COUNT (sizeof MEMBER_TREE_ARRAYS / sizeof MEMBER_TREE_ARRAYS[0])

/* learner_model_param keys kept: trees.c reads or checks each. */
static const char *const MEMBER_LEARNER_PARAMS[] = {
    "base_score", "num_feature", "num_target", "num_class",
};
#define MEMBER_LEARNER_PARAM_COUNT                                                         \
    (sizeof MEMBER_LEARNER_PARAMS / sizeof MEMBER_LEARNER_PARAMS[0])

static bool same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0; /* tells -0 from 0 */
}

/* value into obj under key (a new reference, or NULL from a failed allocation:
 * false). */
static bool put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0;
}

/* src's key into dst, when src has it. */
static bool copy_key(json_t *dst, json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);
    return v == NULL || put(dst, key, json_incref(v));
}

/* Does v, written with MEMBER_REAL_DIGITS digits and read back, give the
 * evaluator the same float? Non-numbers and numbers beyond float range (only
 * possible in nodes no walk reaches: the loader refused them elsewhere) are
 * copied as they are. */
static bool real_survives(json_t *v)
{
    if (!json_is_real(v))
        return true;
    double d = json_real_value(v);
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return true;
    char text[40];
    snprintf(text, sizeof text, "%.*g", MEMBER_REAL_DIGITS, d);
    return same_float((float)strtod(text, NULL), (float)d);
}

/* split_conditions as written: the array itself when every value survives,
 * else a copy with the others replaced by their float's 9-digit form. */
static json_t *exact_conditions(json_t *arr)
{
    size_t n = json_array_size(arr);
    size_t i = 0;
    while (i < n && real_survives(json_array_get(arr, i)))
        i++;
    if (i == n)
        return json_incref(arr);
    json_t *copy = json_array();
    for (i = 0; copy != NULL && i < n; i++) {
        json_t *v = json_array_get(arr, i);
        json_t *w;
        if (real_survives(v)) {
            w = json_incref(v);
        } else {
            char text[40];
            snprintf(text, sizeof text, "%.*g", MEMBER_REAL_DIGITS,
                     (double)(float)json_real_value(v));
            w = json_real(strtod(text, NULL));
        }
        if (json_array_append_new(copy, w) != 0) {
            json_decref(copy);
            copy = NULL;
        }
    }
    return copy;
}

static json_t *compact_tree(json_t *tree)
{
    json_t *out = json_object(), *param = json_object();
    bool ok = out != NULL && param != NULL &&
              copy_key(param, json_object_get(tree, "tree_param"), "num_nodes") &&
              put(out, "tree_param", json_incref(param));
    for (size_t a = 0; ok && a < MEMBER_TREE_ARRAY_COUNT; a++) {
        json_t *arr = json_object_get(tree, MEMBER_TREE_ARRAYS[a]);
        ok = put(out, MEMBER_TREE_ARRAYS[a],
                 strcmp(MEMBER_TREE_ARRAYS[a], "split_conditions") == 0 ? exact_conditions(arr)
                                                                         : json_incref(arr));
    }
    json_decref(param);
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The compact object of a model trees.c has accepted (so every object on the
 * way exists); NULL when out of memory. */
static json_t *compact_model(json_t *full)
{
    json_t *learner = json_object_get(full, "learner");
    json_t *lparam = json_object_get(learner, "learner_model_param");
    json_t *booster = json_object_get(learner, "gradient_booster");
    json_t *model = json_object_get(booster, "model");
    json_t *trees = json_object_get(model, "trees");

    json_t *out = json_object(), *l = json_object(), *lp = json_object(), *obj = json_object(),
           *gb = json_object(), *m = json_object(), *gp = json_object(), *ts = json_array();
    bool ok = out && l && lp && obj && gb && m && gp && ts && copy_key(out, full, "version");
    for (size_t i = 0; ok && i < MEMBER_LEARNER_PARAM_COUNT; i++)
        ok = copy_key(lp, lparam, MEMBER_LEARNER_PARAMS[i]);
    ok = ok && copy_key(obj, json_object_get(learner, "objective"), "name") &&
         copy_key(gb, booster, "name") &&
         copy_key(gp, json_object_get(model, "gbtree_model_param"), "num_trees");
    for (size_t t = 0; ok && t < json_array_size(trees); t++)
        ok = json_array_append_new(ts, compact_tree(json_array_get(trees, t))) == 0;
    ok = ok && put(m, "gbtree_model_param", json_incref(gp)) &&
         copy_key(m, model, "tree_info") && put(m, "trees", json_incref(ts)) &&
         put(gb, "model", json_incref(m)) && put(l, "learner_model_param", json_incref(lp)) &&
         put(l, "objective", json_incref(obj)) && put(l, "gradient_booster", json_incref(gb)) &&
         put(out, "learner", json_incref(l));
    json_decref(l);
    json_decref(lp);
    json_decref(obj);
    json_decref(gb);
    json_decref(m);
    json_decref(gp);
    json_decref(ts);
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

char *train_compact_member(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    if (json == NULL || len == 0) {
        snprintf(err, errlen, "XGBoost model: empty text");
        return NULL;
    }
    json_t *full = json_loadb(json, len, 0, &jerr);
    if (full == NULL) {
        snprintf(err, errlen, "XGBoost model: not valid JSON (line %d, column %d: %s)",
                 jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    /* Only a model the evaluator accepts is cut down: what is dropped is then
     * exactly what it would have ignored. */
    struct tree_ensemble *ens = NULL;
    if (trees_load_xgboost_value(full, &ens, err, errlen) != 0) {
        json_decref(full);
        return NULL;
    }
    trees_free(ens);
    json_t *compact = compact_model(full);
    char *text = compact ? json_dumps(compact, MEMBER_DUMP_FLAGS) : NULL;
    json_decref(compact);
    json_decref(full);
    if (text == NULL)
        snprintf(err, errlen, "out of memory compacting a %zu-byte model", len);
    return text;
}

/* ---- XGBoost ---- */

/* "XGBoost <what> failed: <its message>", first line only (the rest is a stack
 * trace of XGBoost's own source). */
static void xgb_error(const char *what, char *err, size_t errlen)
{
    const char *msg = XGBGetLastError();
    if (!msg || !*msg)
        msg = "(no message)";
    int len = (int)strcspn(msg, "\n");
    snprintf(err, errlen, "XGBoost %s failed: %.*s", what, len, msg);
}

/* A dense DMatrix over the rows idx[0..count) of matrix (row_count x
 * feature_count, row-major), with their labels when labels is non-NULL. */
static int make_dmatrix(const float *matrix, const float *labels, const size_t *idx,
                        size_t count, unsigned feature_count, DMatrixHandle *out, char *err,
                        size_t errlen)
{
    *out = NULL;
    float *data = malloc(count * feature_count * sizeof(*data));
    float *y = labels ? malloc(count * sizeof(*y)) : NULL;
    if (!data || (labels && !y)) {
        snprintf(err, errlen, "out of memory for a %zu x %u training matrix", count,
                 feature_count);
        free(data);
        free(y);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        memcpy(data + i * feature_count, matrix + idx[i] * feature_count,
               feature_count * sizeof(*data));
        if (y)
            y[i] = labels[idx[i]];
    }
    int rc = -1;
    /* missing = NaN: no row has one (check_rows), and a 0 stays a real 0. */
    if (XGDMatrixCreateFromMat(data, (bst_ulong)count, feature_count, NAN, out) != 0) {
        xgb_error("DMatrix creation", err, errlen);
        *out = NULL;
        goto done;
    }
    if (y && XGDMatrixSetFloatInfo(*out, "label", y, (bst_ulong)count) != 0) {
        xgb_error("setting the labels", err, errlen);
        XGDMatrixFree(*out);
        *out = NULL;
        goto done;
    }
    rc = 0;
done:
    free(data);
    free(y);
    return rc;
}

/* The booster's parameters, in the order they are set (verbosity first, so
 * nothing after it prints). */
#define BOOSTER_PARAM_COUNT 9

static void booster_params(const struct train_options *opt, double base_score,
                           char values[BOOSTER_PARAM_COUNT][40],
                           const char *names[BOOSTER_PARAM_COUNT])
{
    static const char *const fixed[][2] = {
        {"verbosity", "0"},
        {"objective", "reg:squarederror"},
        {"booster", "gbtree"},
        {"tree_method", "exact"},
    };
    size_t i = 0;
    for (; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        names[i] = fixed[i][0];
        snprintf(values[i], sizeof(values[i]), "%s", fixed[i][1]);
    }
    names[i] = "max_depth";
    snprintf(values[i++], sizeof(values[0]), "%u", opt->max_depth);
    names[i] = "eta";
    snprintf(values[i++], sizeof(values[0]), "%.17g", opt->eta);
    names[i] = "seed";
    snprintf(values[i++], sizeof(values[0]), "%u", opt->seed);
    names[i] = "nthread";
    snprintf(values[i++], sizeof(values[0]), "%u", opt->threads);
    names[i] = "base_score";
    snprintf(values[i++], sizeof(values[0]), "%.9g", (double)(float)base_score);
}

/*
 * One member: a booster trained on rows idx[0..count) of the training data,
 * saved as JSON into *json_out, its predictions on dtest (test_count rows) added
 * to pred_sum in target units.
 */
static int train_member(const float *matrix, const float *labels, const size_t *idx,
                        size_t count, unsigned feature_count, const struct train_options *opt,
                        DMatrixHandle dtest, size_t test_count, double *pred_sum,
                        char **json_out, char *err, size_t errlen)
{
    *json_out = NULL;
    DMatrixHandle dtrain = NULL;
    BoosterHandle booster = NULL;
    int rc = -1;

    if (make_dmatrix(matrix, labels, idx, count, feature_count, &dtrain, err, errlen) != 0)
        return -1;
    double label_sum = 0.0;
    for (size_t i = 0; i < count; i++)
        label_sum += labels[idx[i]];

    if (XGBoosterCreate(&dtrain, 1, &booster) != 0) {
        xgb_error("booster creation", err, errlen);
        booster = NULL;
        goto done;
    }
    char values[BOOSTER_PARAM_COUNT][40];
    const char *names[BOOSTER_PARAM_COUNT];
    booster_params(opt, label_sum / (double)count, values, names);
    for (size_t p = 0; p < BOOSTER_PARAM_COUNT; p++) {
        if (XGBoosterSetParam(booster, names[p], values[p]) != 0) {
            char what[64];
            snprintf(what, sizeof(what), "setting %s", names[p]);
            xgb_error(what, err, errlen);
            goto done;
        }
    }
    for (unsigned round = 0; round < opt->rounds; round++) {
        if (XGBoosterUpdateOneIter(booster, (int)round, dtrain) != 0) {
            xgb_error("boosting round", err, errlen);
            goto done;
        }
    }

    bst_ulong json_len = 0;
    const char *json = NULL;
    if (XGBoosterSaveModelToBuffer(booster, "{\"format\": \"json\"}", &json_len, &json) != 0) {
        xgb_error("saving the model", err, errlen);
        goto done;
    }
    /* The buffer belongs to the booster: the compact copy is made before the
     * booster goes. */
    *json_out = train_compact_member(json, (size_t)json_len, err, errlen);
    if (*json_out == NULL)
        goto done;

    static const char predict_config[] =
        "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
        "\"strict_shape\": false}";
    const bst_ulong *shape = NULL;
    bst_ulong dims = 0;
    const float *pred = NULL;
    if (XGBoosterPredictFromDMatrix(booster, dtest, predict_config, &shape, &dims, &pred) != 0) {
        xgb_error("prediction on the held-out rows", err, errlen);
        goto done;
    }
    if (dims != 1 || shape[0] != (bst_ulong)test_count) {
        snprintf(err, errlen,
                 "XGBoost returned %llu-dimensional predictions (%llu values) for %zu "
                 "held-out rows",
                 (unsigned long long)dims, (unsigned long long)(dims ? shape[0] : 0),
                 test_count);
        goto done;
    }
    for (size_t i = 0; i < test_count; i++)
        pred_sum[i] += opt->log_target ? exp((double)pred[i]) : (double)pred[i];
    rc = 0;
done:
    if (rc != 0) {
        free(*json_out);
        *json_out = NULL;
    }
    if (booster)
        XGBoosterFree(booster);
    XGDMatrixFree(dtrain);
    return rc;
}

/* ---- the ensemble ---- */

void train_free_members(char **members, size_t member_count)
{
    if (!members)
        return;
    for (size_t i = 0; i < member_count; i++)
        free(members[i]);
    free(members);
}

int train_ensemble(const struct train_row *rows, size_t row_count, unsigned feature_count,
                   const struct train_options *opt, char ***members, size_t *member_count,
                   struct train_metrics *metrics, char *err, size_t errlen)
{
    *members = NULL;
    *member_count = 0;
    if (!rows || !opt) {
        snprintf(err, errlen, "no %s given", rows ? "options" : "rows");
        return -1;
    }
    if (check_options(opt, err, errlen) != 0 ||
        check_rows(rows, row_count, feature_count, opt->log_target, err, errlen) != 0)
        return -1;

    /* The split: shuffle the indices (Fisher-Yates), the first test_count are
     * held out. At least one row on each side. */
    size_t test_count = (size_t)llround(opt->holdout_fraction * (double)row_count);
    if (test_count < 1)
        test_count = 1;
    if (test_count > row_count - 1)
        test_count = row_count - 1;
    size_t train_count = row_count - test_count;

    int rc = -1;
    DMatrixHandle dtest = NULL;
    char **out = calloc(opt->ensemble_size, sizeof(*out));
    float *matrix = malloc(row_count * feature_count * sizeof(*matrix));
    float *labels = malloc(row_count * sizeof(*labels));
    size_t *order = malloc(row_count * sizeof(*order));
    size_t *sample = malloc(train_count * sizeof(*sample));
    double *pred_sum = calloc(test_count, sizeof(*pred_sum));
    double *truth = malloc(test_count * sizeof(*truth));
    if (!out || !matrix || !labels || !order || !sample || !pred_sum || !truth) {
        snprintf(err, errlen, "out of memory for %zu training rows", row_count);
        goto done;
    }
    for (size_t r = 0; r < row_count; r++) {
        memcpy(matrix + r * feature_count, rows[r].features, feature_count * sizeof(*matrix));
        labels[r] = (float)(opt->log_target ? log(rows[r].target) : rows[r].target);
        order[r] = r;
    }
    struct rng rng = {opt->seed};
    for (size_t i = row_count - 1; i > 0; i--) {
        size_t j = rng_below(&rng, i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    const size_t *test_idx = order, *train_idx = order + test_count;
    if (make_dmatrix(matrix, NULL, test_idx, test_count, feature_count, &dtest, err, errlen) !=
        0)
        goto done;

    /* Member 0 on the training set itself, the others on bootstrap resamples of
     * it (train_count draws with replacement), drawn in member order from the
     * same stream so each member's sample depends only on the seed. */
    for (unsigned m = 0; m < opt->ensemble_size; m++) {
        const size_t *idx = train_idx;
        if (m > 0) {
            for (size_t i = 0; i < train_count; i++)
                sample[i] = train_idx[rng_below(&rng, train_count)];
            idx = sample;
        }
        if (train_member(matrix, labels, idx, train_count, feature_count, opt, dtest,
                         test_count, pred_sum, &out[m], err, errlen) != 0)
            goto done;
    }

    for (size_t i = 0; i < test_count; i++) {
        truth[i] = rows[test_idx[i]].target;
        pred_sum[i] /= (double)opt->ensemble_size;
    }
    train_score(truth, pred_sum, test_count, metrics);
    metrics->train_rows = train_count;
    *members = out;
    *member_count = opt->ensemble_size;
    out = NULL;
    rc = 0;
done:
    if (dtest)
        XGDMatrixFree(dtest);
    train_free_members(out, opt->ensemble_size);
    free(matrix);
    free(labels);
    free(order);
    free(sample);
    free(pred_sum);
    free(truth);
    return rc;
}
