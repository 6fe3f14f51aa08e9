/*
 * test_predict_trees.c - the C evaluation of XGBoost models against XGBoost
 * itself, and the loader's refusal of everything else.
 *
 * Boosters are trained here with the XGBoost C API (exact, approx and hist tree
 * methods, data with missing values, pruned trees with deleted nodes), saved as
 * JSON and loaded with trees_load_xgboost_json (or, parsed, with
 * trees_load_xgboost_value); trees_predict must agree with XGBoosterPredict on
 * random rows, rows with NaN features and rows whose values sit exactly on a
 * split threshold (where "<" versus "<=" would show). A small
 * hand-written model pins the semantics without XGBoost, and mutated copies of it
 * (missing keys, children out of range, loops, other objectives, categorical or
 * multi-target trees, truncated and bit-flipped text) must be refused with a
 * message, never crash.
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

#include "predict/trees.h"

/* ---- helpers: XGBoost boosters ---- */

struct booster {
    BoosterHandle handle;
    char *json; /* the saved model, NUL-terminated */
    size_t json_len;
    unsigned cols;
};

static void xgb_ok(int rc)
{
    if (rc != 0)
        fail_msg("XGBoost: %s", XGBGetLastError());
}

/* Deterministic pseudo-random numbers (xorshift), so failures reproduce. */
static uint64_t rng_state = 88172645463325252ull;
static void rng_seed(uint64_t s)
{
    rng_state = s ? s : 88172645463325252ull;
}
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

/* Training data: a mix of integer-valued and continuous features, with a share
 * of missing values so that default_left goes both ways. */
static void make_rows(float *x, float *y, size_t rows, unsigned cols, double missing_share)
{
    for (size_t r = 0; r < rows; r++) {
        double t = 0.0;
        for (unsigned c = 0; c < cols; c++) {
            float v = (c % 2 == 0) ? (float)(rng_next() % 16) : (float)(rng_unit() * 10.0 - 3.0);
            if (rng_unit() < missing_share)
                v = NAN;
            x[r * cols + c] = v;
            if (!isnan(v))
                t += (c + 1) * (double)v * (c == 1 ? v : 1.0);
            else
                t -= 5.0 * c;
        }
        y[r] = (float)(t + rng_unit());
    }
}

/* Trains a booster; params is a NULL-terminated list of name, value pairs. */
static void train_booster(struct booster *b, size_t rows, unsigned cols, unsigned rounds,
                          double missing_share, const char *const *params)
{
    float *x = malloc(rows * cols * sizeof *x);
    float *y = malloc(rows * sizeof *y);
    DMatrixHandle d;
    bst_ulong len;
    const char *buf;
    assert_non_null(x);
    assert_non_null(y);
    make_rows(x, y, rows, cols, missing_share);
    xgb_ok(XGDMatrixCreateFromMat(x, (bst_ulong)rows, cols, NAN, &d));
    xgb_ok(XGDMatrixSetFloatInfo(d, "label", y, (bst_ulong)rows));
    xgb_ok(XGBoosterCreate(&d, 1, &b->handle));
    xgb_ok(XGBoosterSetParam(b->handle, "objective", "reg:squarederror"));
    xgb_ok(XGBoosterSetParam(b->handle, "verbosity", "0"));
    xgb_ok(XGBoosterSetParam(b->handle, "nthread", "1"));
    for (size_t i = 0; params != NULL && params[i] != NULL; i += 2)
        xgb_ok(XGBoosterSetParam(b->handle, params[i], params[i + 1]));
    for (unsigned i = 0; i < rounds; i++)
        xgb_ok(XGBoosterUpdateOneIter(b->handle, (int)i, d));
    xgb_ok(XGBoosterSaveModelToBuffer(b->handle, "{\"format\": \"json\"}", &len, &buf));
    b->json = malloc(len + 1);
    assert_non_null(b->json);
    memcpy(b->json, buf, len);
    b->json[len] = '\0';
    b->json_len = len;
    b->cols = cols;
    xgb_ok(XGDMatrixFree(d));
    free(x);
    free(y);
}

static void booster_free(struct booster *b)
{
    XGBoosterFree(b->handle);
    free(b->json);
}

/* XGBoost's own predictions for rows (NaN = missing). */
static float *xgb_predict(const struct booster *b, const float *x, size_t rows)
{
    DMatrixHandle d;
    bst_ulong len;
    const float *res;
    xgb_ok(XGDMatrixCreateFromMat(x, (bst_ulong)rows, b->cols, NAN, &d));
    xgb_ok(XGBoosterPredict(b->handle, d, 0, 0, 0, &len, &res));
    assert_int_equal(len, rows);
    float *out = malloc(rows * sizeof *out);
    assert_non_null(out);
    memcpy(out, res, rows * sizeof *out);
    xgb_ok(XGDMatrixFree(d));
    return out;
}

static void assert_close(double got, double want, size_t row)
{
    double tol = 1e-5 * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
        fail_msg("row %zu: trees_predict %.9g, XGBoost %.9g", row, got, want);
}

/* Every (feature, threshold) of the model's splits, read from its JSON. */
static size_t collect_thresholds(const char *json, unsigned *features, float *thresholds,
                                 size_t max)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    size_t n = 0;
    assert_non_null(root);
    json_t *trees = json_object_get(
        json_object_get(json_object_get(json_object_get(root, "learner"), "gradient_booster"),
                        "model"),
        "trees");
    assert_true(json_is_array(trees));
    for (size_t t = 0; t < json_array_size(trees); t++) {
        json_t *tree = json_array_get(trees, t);
        json_t *left = json_object_get(tree, "left_children");
        json_t *idx = json_object_get(tree, "split_indices");
        json_t *cond = json_object_get(tree, "split_conditions");
        for (size_t i = 0; i < json_array_size(left) && n < max; i++) {
            if (json_integer_value(json_array_get(left, i)) == -1)
                continue;
            features[n] = (unsigned)json_integer_value(json_array_get(idx, i));
            thresholds[n] = (float)json_number_value(json_array_get(cond, i));
            n++;
        }
    }
    json_decref(root);
    return n;
}

/* Evaluation rows: random values, NaNs, and every split threshold exactly. */
static float *evaluation_rows(const struct booster *b, size_t *rows_out)
{
    enum { RANDOM_ROWS = 400, MAX_THRESHOLDS = 4000 };
    unsigned *features = malloc(MAX_THRESHOLDS * sizeof *features);
    float *thresholds = malloc(MAX_THRESHOLDS * sizeof *thresholds);
    assert_non_null(features);
    assert_non_null(thresholds);
    size_t nt = collect_thresholds(b->json, features, thresholds, MAX_THRESHOLDS);
    assert_true(nt > 0);
    size_t rows = RANDOM_ROWS + nt + 2;
    float *x = malloc(rows * b->cols * sizeof *x);
    float *y = malloc(rows * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    make_rows(x, y, rows, b->cols, 0.15);
    for (size_t i = 0; i < nt; i++)
        x[(RANDOM_ROWS + i) * b->cols + features[i]] = thresholds[i];
    for (unsigned c = 0; c < b->cols; c++) {
        x[(rows - 2) * b->cols + c] = NAN; /* all missing */
        x[(rows - 1) * b->cols + c] = -1e6f; /* far left of everything */
    }
    free(features);
    free(thresholds);
    free(y);
    *rows_out = rows;
    return x;
}

static void check_against_xgboost(const char *const *params, unsigned rounds, unsigned cols)
{
    struct booster b;
    struct tree_ensemble *t = NULL;
    char err[512] = "";
    size_t rows;
    train_booster(&b, 300, cols, rounds, 0.1, params);
    if (trees_load_xgboost_json(b.json, b.json_len, &t, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(trees_count(t), rounds);
    assert_int_equal(trees_feature_count(t), cols);
    float *x = evaluation_rows(&b, &rows);
    float *want = xgb_predict(&b, x, rows);
    for (size_t r = 0; r < rows; r++)
        assert_close(trees_predict(t, &x[r * cols], cols), want[r], r);
    free(want);
    free(x);
    trees_free(t);
    booster_free(&b);
}

static void test_matches_xgboost_exact(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "exact", "max_depth", "4", "eta", "0.3",
                                         NULL};
    rng_seed(1);
    check_against_xgboost(params, 25, 5);
}

static void test_matches_xgboost_hist(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "hist", "max_depth", "6", "eta", "0.1",
                                         "max_bin", "16", NULL};
    rng_seed(2);
    check_against_xgboost(params, 40, 6);
}

static void test_matches_xgboost_approx(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "approx", "max_depth", "3", "eta", "0.5",
                                         NULL};
    rng_seed(3);
    check_against_xgboost(params, 15, 3);
}

/* A large gamma makes the pruner delete nodes: they stay in the arrays with a
 * split index of 2^31 - 1 and must be skipped, not refused. */
static void test_matches_xgboost_pruned(void **state)
{
    (void)state;
    static const char *const params[] = {"tree_method", "exact", "max_depth", "6", "gamma", "40",
                                         NULL};
    rng_seed(4);
    struct booster b;
    train_booster(&b, 300, 4, 5, 0.0, params);
    int deleted = 0;
    for (const char *p = b.json; (p = strstr(p, "\"num_deleted\":\"")) != NULL; p++)
        deleted |= p[strlen("\"num_deleted\":\"")] != '0';
    booster_free(&b);
    assert_true(deleted); /* the scenario really has deleted nodes */
    rng_seed(4);
    check_against_xgboost(params, 5, 4);
}

/* A model with more features than given treats the rest as missing; extra
 * features past the model's are ignored. */
static void test_feature_count_mismatch(void **state)
{
    (void)state;
    static const char *const params[] = {"max_depth", "4", NULL};
    struct booster b;
    struct tree_ensemble *t = NULL;
    char err[512] = "";
    enum { COLS = 5, ROWS = 200, GIVEN = 3 };
    rng_seed(5);
    train_booster(&b, 300, COLS, 20, 0.05, params);
    assert_int_equal(trees_load_xgboost_json(b.json, b.json_len, &t, err, sizeof err), 0);
    float x[ROWS * COLS], wide[COLS + 4];
    float y[ROWS];
    make_rows(x, y, ROWS, COLS, 0.0);
    for (size_t r = 0; r < ROWS; r++)
        for (unsigned c = GIVEN; c < COLS; c++)
            x[r * COLS + c] = NAN;
    float *want = xgb_predict(&b, x, ROWS);
    for (size_t r = 0; r < ROWS; r++) {
        assert_close(trees_predict(t, &x[r * COLS], GIVEN), want[r], r);
        memcpy(wide, &x[r * COLS], COLS * sizeof *wide);
        for (unsigned c = COLS; c < COLS + 4; c++)
            wide[c] = 1e9f;
        assert_close(trees_predict(t, wide, COLS + 4), want[r], r);
    }
    free(want);
    trees_free(t);
    booster_free(&b);
}

/* ---- a hand-written model: the semantics without XGBoost ---- */

/* One tree: node 0 splits feature 1 at 0.5 (missing goes left), leaves 1 and 2
 * hold 1.0 and 2.0; node 3 is a deleted node, unreachable, with junk in it. */
static const char HAND_MODEL[] =
    "{\"learner\":{\"attributes\":{},\"feature_names\":[],\"feature_types\":[],"
    "\"gradient_booster\":{\"model\":{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\","
    "\"num_trees\":\"1\",\"size_leaf_vector\":\"0\"},\"tree_info\":[0],\"trees\":[{"
    "\"base_weights\":[0,1,2,0],\"categories\":[],\"categories_nodes\":[],"
    "\"categories_segments\":[],\"categories_sizes\":[],\"default_left\":[1,0,0,0],\"id\":0,"
    "\"left_children\":[1,-1,-1,-1],\"loss_changes\":[1,0,0,0],\"parents\":[2147483647,0,0,0],"
    "\"right_children\":[2,-1,-1,-1],\"split_conditions\":[5E-1,1E0,2E0,0],"
    "\"split_indices\":[1,0,0,2147483647],\"split_type\":[0,0,0,0],"
    "\"sum_hessian\":[4,2,2,0],\"tree_param\":{\"num_deleted\":\"1\",\"num_feature\":\"2\","
    "\"num_nodes\":\"4\",\"size_leaf_vector\":\"0\"}}]},\"name\":\"gbtree\"},"
    "\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\","
    "\"num_class\":\"0\",\"num_feature\":\"2\",\"num_target\":\"1\"},"
    "\"objective\":{\"name\":\"reg:squarederror\",\"reg_loss_param\":{\"scale_pos_weight\":"
    "\"1\"}}},\"version\":[1,7,4]}";

static struct tree_ensemble *load_text(const char *text)
{
    struct tree_ensemble *t = NULL;
    char err[512] = "";
    if (trees_load_xgboost_json(text, strlen(text), &t, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    return t;
}

static void test_hand_model_semantics(void **state)
{
    (void)state;
    struct tree_ensemble *t = load_text(HAND_MODEL);
    assert_int_equal(trees_count(t), 1);
    assert_int_equal(trees_feature_count(t), 2);
    float below[] = {9.0f, 0.25f}, at[] = {9.0f, 0.5f}, above[] = {9.0f, 7.0f};
    float missing[] = {9.0f, NAN}, neg[] = {9.0f, -INFINITY}, inf[] = {9.0f, INFINITY};
    assert_true(trees_predict(t, below, 2) == 1.5);
    assert_true(trees_predict(t, at, 2) == 2.5); /* on the threshold: right */
    assert_true(trees_predict(t, above, 2) == 2.5);
    assert_true(trees_predict(t, missing, 2) == 1.5); /* default left */
    assert_true(trees_predict(t, neg, 2) == 1.5);
    assert_true(trees_predict(t, inf, 2) == 2.5);
    assert_true(trees_predict(t, below, 1) == 1.5); /* feature 1 not given: missing */
    trees_free(t);

    /* default right */
    char *text = strdup(HAND_MODEL);
    assert_non_null(text);
    char *dl = strstr(text, "\"default_left\":[1");
    assert_non_null(dl);
    dl[strlen("\"default_left\":[")] = '0';
    t = load_text(text);
    assert_true(trees_predict(t, missing, 2) == 2.5);
    assert_true(trees_predict(t, below, 2) == 1.5);
    trees_free(t);
    free(text);
}

/* Loads HAND_MODEL, applies edit to its JSON, serialises it back. */
static char *edited(void (*edit)(json_t *root))
{
    json_error_t jerr;
    json_t *root = json_loads(HAND_MODEL, 0, &jerr);
    assert_non_null(root);
    edit(root);
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(text);
    json_decref(root);
    return text;
}

static json_t *learner(json_t *root)
{
    return json_object_get(root, "learner");
}
static json_t *lparam(json_t *root)
{
    return json_object_get(learner(root), "learner_model_param");
}
static json_t *gbooster(json_t *root)
{
    return json_object_get(learner(root), "gradient_booster");
}
static json_t *gmodel(json_t *root)
{
    return json_object_get(gbooster(root), "model");
}
static json_t *tree0(json_t *root)
{
    return json_array_get(json_object_get(gmodel(root), "trees"), 0);
}
static void set_node(json_t *root, const char *array, size_t i, json_t *v)
{
    assert_int_equal(json_array_set_new(json_object_get(tree0(root), array), i, v), 0);
}

static void e_no_learner(json_t *r) { json_object_del(r, "learner"); }
static void e_no_base_score(json_t *r) { json_object_del(lparam(r), "base_score"); }
static void e_bad_base_score(json_t *r)
{
    json_object_set_new(lparam(r), "base_score", json_string("abc"));
}
static void e_inf_base_score(json_t *r)
{
    json_object_set_new(lparam(r), "base_score", json_string("1e999"));
}
static void e_bad_num_feature(json_t *r)
{
    json_object_set_new(lparam(r), "num_feature", json_string("-3"));
}
static void e_num_target(json_t *r) { json_object_set_new(lparam(r), "num_target", json_string("2")); }
static void e_num_class(json_t *r) { json_object_set_new(lparam(r), "num_class", json_string("3")); }
static void e_objective(json_t *r)
{
    json_object_set_new(json_object_get(learner(r), "objective"), "name",
                        json_string("binary:logistic"));
}
static void e_no_objective(json_t *r) { json_object_del(learner(r), "objective"); }
static void e_dart(json_t *r) { json_object_set_new(gbooster(r), "name", json_string("dart")); }
static void e_gblinear(json_t *r)
{
    json_object_set_new(gbooster(r), "name", json_string("gblinear"));
}
static void e_no_trees(json_t *r) { json_object_del(gmodel(r), "trees"); }
static void e_tree_info(json_t *r)
{
    json_array_set_new(json_object_get(gmodel(r), "tree_info"), 0, json_integer(1));
}
static void e_num_trees(json_t *r)
{
    json_object_set_new(json_object_get(gmodel(r), "gbtree_model_param"), "num_trees",
                        json_string("2"));
}
static void e_leaf_vector(json_t *r)
{
    json_object_set_new(json_object_get(tree0(r), "tree_param"), "size_leaf_vector",
                        json_string("3"));
}
static void e_categorical(json_t *r) { set_node(r, "split_type", 0, json_integer(1)); }
static void e_categories_nodes(json_t *r)
{
    json_array_append_new(json_object_get(tree0(r), "categories_nodes"), json_integer(0));
}
static void e_child_out_of_range(json_t *r) { set_node(r, "left_children", 0, json_integer(7)); }
static void e_self_loop(json_t *r) { set_node(r, "left_children", 0, json_integer(0)); }
static void e_back_edge(json_t *r)
{
    /* node 1 becomes a split whose children point back at the root */
    set_node(r, "left_children", 1, json_integer(0));
    set_node(r, "right_children", 1, json_integer(2));
}
static void e_same_children(json_t *r) { set_node(r, "right_children", 0, json_integer(1)); }
static void e_one_child(json_t *r) { set_node(r, "right_children", 0, json_integer(-1)); }
static void e_child_huge(json_t *r)
{
    set_node(r, "right_children", 0, json_integer(INT64_C(1) << 40));
}
static void e_feature_range(json_t *r) { set_node(r, "split_indices", 0, json_integer(5)); }
static void e_feature_negative(json_t *r) { set_node(r, "split_indices", 0, json_integer(-1)); }
static void e_condition_string(json_t *r) { set_node(r, "split_conditions", 0, json_string("x")); }
static void e_condition_huge(json_t *r) { set_node(r, "split_conditions", 2, json_real(1e300)); }
static void e_default_left(json_t *r) { set_node(r, "default_left", 0, json_integer(2)); }
static void e_short_array(json_t *r)
{
    json_array_remove(json_object_get(tree0(r), "split_conditions"), 3);
}
static void e_num_nodes(json_t *r)
{
    json_object_set_new(json_object_get(tree0(r), "tree_param"), "num_nodes", json_string("5"));
}
static void e_tree_not_object(json_t *r)
{
    json_array_set_new(json_object_get(gmodel(r), "trees"), 0, json_integer(5));
}
static void e_empty_tree(json_t *r)
{
    static const char *const arrays[] = {"left_children", "right_children", "split_indices",
                                         "split_conditions", "default_left", "split_type"};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        json_array_clear(json_object_get(tree0(r), arrays[i]));
    json_object_del(json_object_get(tree0(r), "tree_param"), "num_nodes");
}
static void e_index_real(json_t *r) { set_node(r, "left_children", 0, json_real(1.5)); }

static void test_refuses_bad_models(void **state)
{
    (void)state;
    static const struct {
        void (*edit)(json_t *root);
        const char *expect; /* in the error message */
    } cases[] = {
        {e_no_learner, "\"learner\""},
        {e_no_base_score, "base_score"},
        {e_bad_base_score, "base_score \"abc\""},
        {e_inf_base_score, "base_score"},
        {e_bad_num_feature, "num_feature"},
        {e_num_target, "num_target = 2"},
        {e_num_class, "num_class = 3"},
        {e_objective, "objective 'binary:logistic' is not supported"},
        {e_no_objective, "objective"},
        {e_dart, "booster 'dart' is not supported"},
        {e_gblinear, "booster 'gblinear'"},
        {e_no_trees, "\"trees\""},
        {e_tree_info, "tree_info[0]"},
        {e_num_trees, "num_trees = 2"},
        {e_leaf_vector, "multi-target"},
        {e_categorical, "categorical"},
        {e_categories_nodes, "categorical"},
        {e_child_out_of_range, "tree 0 node 0: children 7 and 2"},
        {e_self_loop, "tree 0 node 0: children 0 and 2"},
        {e_back_edge, "tree 0 node 1: children 0 and 2"},
        {e_same_children, "tree 0 node 0: children 1 and 1"},
        {e_one_child, "tree 0 node 0 has one child"},
        {e_child_huge, "right_children"},
        {e_feature_range, "splits on feature 5 but the model has 2 features"},
        {e_feature_negative, "split_indices = -1"},
        {e_condition_string, "split_conditions is not a number"},
        {e_condition_huge, "tree 0 node 2: split_conditions"},
        {e_default_left, "default_left"},
        {e_short_array, "\"split_conditions\" has 3 entries"},
        {e_num_nodes, "num_nodes = 5"},
        {e_tree_not_object, "tree 0 is not an object"},
        {e_empty_tree, "tree 0 has no nodes"},
        {e_index_real, "left_children is not an integer"},
    };
    struct tree_ensemble *keep = load_text(HAND_MODEL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = edited(cases[i].edit);
        struct tree_ensemble *t = keep; /* a failed load must reset it to NULL */
        char err[512] = "";
        int rc = trees_load_xgboost_json(text, strlen(text), &t, err, sizeof err);
        if (rc != -1 || t != NULL || strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\", expected \"%s\"", i, rc, err,
                     cases[i].expect);
        free(text);
    }
    trees_free(keep);
}

static void test_refuses_bad_text(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"", "empty"},
        {"{", "not valid JSON"},
        {"not json", "not valid JSON"},
        {"[1,2]", "top level is not an object"},
        {"{}", "\"learner\""},
        {"{\"learner\":[]}", "\"learner\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tree_ensemble *t = NULL;
        char err[512] = "";
        int rc = trees_load_xgboost_json(cases[i].text, strlen(cases[i].text), &t, err,
                                         sizeof err);
        if (rc != -1 || t != NULL || strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\"", i, rc, err);
    }
    /* a NULL or tiny error buffer is fine */
    struct tree_ensemble *t = NULL;
    char tiny[4];
    assert_int_equal(trees_load_xgboost_json("{", 1, &t, NULL, 0), -1);
    assert_int_equal(trees_load_xgboost_json("{", 1, &t, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), 3);
    /* len, not the NUL, bounds the text */
    assert_int_equal(trees_load_xgboost_json(HAND_MODEL, strlen(HAND_MODEL) - 1, &t, NULL, 0),
                     -1);
}

/* Every prefix of a real model is refused; random byte changes never crash,
 * and what still loads still predicts. */
static void test_truncated_and_mutated(void **state)
{
    (void)state;
    static const char *const params[] = {"max_depth", "3", NULL};
    struct booster b;
    char err[512];
    rng_seed(6);
    train_booster(&b, 100, 3, 4, 0.1, params);
    for (size_t len = 1; len < b.json_len; len += 7) {
        struct tree_ensemble *t = NULL;
        err[0] = '\0';
        assert_int_equal(trees_load_xgboost_json(b.json, len, &t, err, sizeof err), -1);
        assert_null(t);
        assert_true(err[0] != '\0');
    }
    char *copy = malloc(b.json_len);
    assert_non_null(copy);
    static const char replacements[] = "0123456789-.,:[]{}\"e ";
    unsigned loaded = 0;
    for (unsigned trial = 0; trial < 600; trial++) {
        memcpy(copy, b.json, b.json_len);
        for (unsigned k = 0; k < 1 + trial % 3; k++)
            copy[rng_next() % b.json_len] =
                replacements[rng_next() % (sizeof replacements - 1)];
        struct tree_ensemble *t = NULL;
        if (trees_load_xgboost_json(copy, b.json_len, &t, err, sizeof err) == 0) {
            float row[3] = {1.0f, NAN, 5.0f};
            double p = trees_predict(t, row, 3);
            (void)p;
            trees_free(t);
            loaded++;
        }
    }
    /* most single-character changes inside numbers still load */
    assert_true(loaded > 0);
    free(copy);
    booster_free(&b);
}

static void test_zero_trees_and_bracketed_base_score(void **state)
{
    (void)state;
    char *text = strdup(HAND_MODEL);
    assert_non_null(text);
    char *p = strstr(text, "\"base_score\":\"5E-1\"");
    assert_non_null(p);
    /* same length: "5E-1" -> "[2.]" */
    memcpy(p + strlen("\"base_score\":\""), "[2.]", 4);
    struct tree_ensemble *t = load_text(text);
    float row[] = {0.0f, 0.0f};
    assert_true(trees_predict(t, row, 2) == 3.0);
    trees_free(t);
    free(text);

    static const char empty_model[] =
        "{\"learner\":{\"gradient_booster\":{\"model\":{\"tree_info\":[],\"trees\":[]},"
        "\"name\":\"gbtree\"},\"learner_model_param\":{\"base_score\":\"1.25E0\","
        "\"num_feature\":\"3\"},\"objective\":{\"name\":\"reg:squarederror\"}}}";
    t = load_text(empty_model);
    assert_int_equal(trees_count(t), 0);
    assert_int_equal(trees_feature_count(t), 3);
    assert_true(trees_predict(t, row, 2) == 1.25);
    trees_free(t);
    trees_free(NULL);
}

/* The parsed-value entry point: same model, same answers, same refusals. */
static void test_load_value(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *root = json_loads(HAND_MODEL, 0, &jerr);
    struct tree_ensemble *t = NULL;
    char err[256] = "";
    assert_non_null(root);
    assert_int_equal(trees_load_xgboost_value(root, &t, err, sizeof err), 0);
    float row[] = {0.0f, 3.0f};
    assert_true(trees_predict(t, row, 2) == 2.5);
    trees_free(t);
    json_object_set_new(json_object_get(json_object_get(root, "learner"), "objective"), "name",
                        json_string("count:poisson"));
    assert_int_equal(trees_load_xgboost_value(root, &t, err, sizeof err), -1);
    assert_null(t);
    assert_non_null(strstr(err, "objective 'count:poisson' is not supported"));
    json_decref(root);
    json_t *arr = json_array();
    assert_int_equal(trees_load_xgboost_value(arr, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "top level is not an object"));
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_xgboost_exact),
        cmocka_unit_test(test_matches_xgboost_hist),
        cmocka_unit_test(test_matches_xgboost_approx),
        cmocka_unit_test(test_matches_xgboost_pruned),
        cmocka_unit_test(test_feature_count_mismatch),
        cmocka_unit_test(test_hand_model_semantics),
        cmocka_unit_test(test_refuses_bad_models),
        cmocka_unit_test(test_refuses_bad_text),
        cmocka_unit_test(test_truncated_and_mutated),
        cmocka_unit_test(test_zero_trees_and_bracketed_base_score),
        cmocka_unit_test(test_load_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
