/*
 * test_predict_models.c - model sets: jetprof-model/1 blobs in, predictions out,
 * jetprof-models/1 bundles, and the refusals.
 *
 * Ensemble members are real XGBoost boosters trained here with the C API on the
 * feature vectors of random kernel configurations (predict_features), so a blob
 * is exactly what training stores. Each expected prediction is worked out by hand
 * from XGBoosterPredict on the same feature row: exp() of every member for a log
 * target, then the mean and the population standard deviation; energy is
 * latency x power / 1000 per rail. Errors must name what was wrong and leave the
 * set as it was; concurrent readers must see the same numbers as a single one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "cudakern/catalog.h"
#include "predict/features.h"
#include "predict/models.h"

/* ---- boosters ---- */

struct member {
    BoosterHandle handle;
    char *json;
    unsigned cols;
};

static void xgb_ok(int rc)
{
    if (rc != 0)
        fail_msg("XGBoost: %s", XGBGetLastError());
}

static uint64_t rng_state = 88172645463325252ull;
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

/* A random valid configuration, parameters log-uniform up to 4096. */
static void random_config(const struct catalog_kernel *k, struct kernel_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kernel = k;
    cfg->dtype = (rng_next() & 1) ? DTYPE_FP16 : DTYPE_FP32;
    for (unsigned i = 0; i < k->param_count; i++) {
        double lo = (double)k->params[i].min;
        double hi = fmin((double)k->params[i].max, 4096.0);
        cfg->params[i] = (int64_t)llround(exp(log(lo) + rng_unit() * (log(hi) - log(lo))));
    }
}

/* A latency-like (log_target: ln of it) or power-like target of a config;
 * offset makes members differ. */
static double synthetic_target(const struct kernel_config *cfg, bool log_target, double offset)
{
    struct kernel_features kf;
    catalog_features(cfg, &kf);
    if (log_target)
        return log(5.0 + 1e-3 * pow(kf.flops + kf.bytes, 0.8)) + offset * 0.05 +
               0.01 * rng_unit();
    return 2000.0 + 150.0 * log2(kf.flops + 2.0) + 80.0 * offset + 5.0 * rng_unit();
}

/* Trains one member on 200 random configs of k; cols > the kernel's feature
 * count pads the rows with constant columns (a model made for another layout). */
static void train_member(struct member *m, const struct catalog_kernel *k, bool log_target,
                         double offset, unsigned cols)
{
    enum { ROWS = 200 };
    unsigned nf = predict_feature_count(k);
    float *x = calloc((size_t)ROWS * cols, sizeof *x);
    float y[ROWS], f[PREDICT_MAX_FEATURES];
    DMatrixHandle d;
    bst_ulong len;
    const char *buf;
    assert_non_null(x);
    assert_true(cols >= nf);
    for (size_t r = 0; r < ROWS; r++) {
        struct kernel_config cfg;
        random_config(k, &cfg);
        assert_int_equal(predict_features(&cfg, f), nf);
        memcpy(&x[r * cols], f, nf * sizeof *f);
        for (unsigned c = nf; c < cols; c++)
            x[r * cols + c] = (float)(rng_next() % 3);
        y[r] = (float)synthetic_target(&cfg, log_target, offset);
    }
    xgb_ok(XGDMatrixCreateFromMat(x, ROWS, cols, NAN, &d));
    xgb_ok(XGDMatrixSetFloatInfo(d, "label", y, ROWS));
    xgb_ok(XGBoosterCreate(&d, 1, &m->handle));
    xgb_ok(XGBoosterSetParam(m->handle, "objective", "reg:squarederror"));
    xgb_ok(XGBoosterSetParam(m->handle, "max_depth", "4"));
    xgb_ok(XGBoosterSetParam(m->handle, "eta", "0.3"));
    xgb_ok(XGBoosterSetParam(m->handle, "verbosity", "0"));
    xgb_ok(XGBoosterSetParam(m->handle, "nthread", "1"));
    for (int i = 0; i < 15; i++)
        xgb_ok(XGBoosterUpdateOneIter(m->handle, i, d));
    xgb_ok(XGBoosterSaveModelToBuffer(m->handle, "{\"format\": \"json\"}", &len, &buf));
    m->json = malloc(len + 1);
    assert_non_null(m->json);
    memcpy(m->json, buf, len);
    m->json[len] = '\0';
    m->cols = cols;
    xgb_ok(XGDMatrixFree(d));
    free(x);
}

static double member_predict(const struct member *m, const float *f)
{
    DMatrixHandle d;
    bst_ulong len;
    const float *res;
    xgb_ok(XGDMatrixCreateFromMat(f, 1, m->cols, NAN, &d));
    xgb_ok(XGBoosterPredict(m->handle, d, 0, 0, 0, &len, &res));
    assert_int_equal(len, 1);
    double p = res[0];
    xgb_ok(XGDMatrixFree(d));
    return p;
}

/* The ensemble's mean and population standard deviation, by hand. */
static void expected(struct member *ms, size_t n, bool log_target, const float *f,
                     double *mean, double *sd)
{
    double v[16], sum = 0.0, sq = 0.0;
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        v[i] = member_predict(&ms[i], f);
        if (log_target)
            v[i] = exp(v[i]);
        sum += v[i];
    }
    *mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        sq += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(sq / (double)n);
}

static void assert_rel(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-6 * fmax(1e-9, fabs(want))))
        fail_msg("%s: got %.12g, expected %.12g", what, got, want);
}

/* ---- blobs ---- */

static json_t *member_object(const struct member *m)
{
    json_error_t jerr;
    json_t *o = json_loads(m->json, 0, &jerr);
    assert_non_null(o);
    return o;
}

static json_t *blob_object(const char *kernel, const char *target, bool log_target,
                           struct member *ms, size_t n)
{
    json_t *members = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(members, member_object(&ms[i]));
    const struct catalog_kernel *k = catalog_find(kernel);
    json_t *b = json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:o}", "format", PREDICT_MODEL_FORMAT,
                          "kernel", kernel, "target", target, "log_target", log_target,
                          "feature_version", PREDICT_FEATURE_VERSION, "feature_count",
                          k ? (int)predict_feature_count(k) : 10, "members", members);
    assert_non_null(b);
    return b;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static void add_ok(struct model_set *set, json_t *blob)
{
    char err[1024] = "";
    char *text = dump(blob);
    if (model_set_add_blob(set, text, strlen(text), err, sizeof err) != 0)
        fail_msg("add_blob: %s", err);
    free(text);
}

/* ---- fixture: trained once for the whole file ---- */

#define LAT_MEMBERS 3
#define GPU_MEMBERS 3
#define CPU_MEMBERS 2
static struct {
    const struct catalog_kernel *linear_relu, *softmax;
    struct member lat[LAT_MEMBERS];     /* linear_relu latency, log target */
    struct member lat_new[2];           /* a replacement latency model */
    struct member gpu[GPU_MEMBERS];     /* linear_relu power on VDD_GPU_SOC */
    struct member cpu[CPU_MEMBERS];     /* linear_relu power on VDD_CPU_CV */
    struct member softmax_power[1];     /* softmax power only: no latency model */
    struct member wide[1];              /* linear_relu with 12 columns */
} fx;

static int group_setup(void **state)
{
    (void)state;
    fx.linear_relu = catalog_find("linear_relu");
    fx.softmax = catalog_find("softmax");
    if (fx.linear_relu == NULL || fx.softmax == NULL)
        return -1;
    unsigned nf = predict_feature_count(fx.linear_relu);
    for (int i = 0; i < LAT_MEMBERS; i++)
        train_member(&fx.lat[i], fx.linear_relu, true, i, nf);
    for (int i = 0; i < 2; i++)
        train_member(&fx.lat_new[i], fx.linear_relu, true, 10 + i, nf);
    for (int i = 0; i < GPU_MEMBERS; i++)
        train_member(&fx.gpu[i], fx.linear_relu, false, i, nf);
    for (int i = 0; i < CPU_MEMBERS; i++)
        train_member(&fx.cpu[i], fx.linear_relu, false, 3 + i, nf);
    train_member(&fx.softmax_power[0], fx.softmax, false, 0, predict_feature_count(fx.softmax));
    train_member(&fx.wide[0], fx.linear_relu, true, 0, nf + 2);
    return 0;
}

static void members_free(struct member *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        XGBoosterFree(ms[i].handle);
        free(ms[i].json);
    }
}

static int group_teardown(void **state)
{
    (void)state;
    members_free(fx.lat, LAT_MEMBERS);
    members_free(fx.lat_new, 2);
    members_free(fx.gpu, GPU_MEMBERS);
    members_free(fx.cpu, CPU_MEMBERS);
    members_free(fx.softmax_power, 1);
    members_free(fx.wide, 1);
    return 0;
}

/* A set with linear_relu latency + two rails, GPU first. */
static struct model_set *full_set(void)
{
    struct model_set *set = model_set_new();
    assert_non_null(set);
    json_t *b = blob_object("linear_relu", "latency_us", true, fx.lat, LAT_MEMBERS);
    add_ok(set, b);
    json_decref(b);
    b = blob_object("linear_relu", "power_mw:VDD_GPU_SOC", false, fx.gpu, GPU_MEMBERS);
    add_ok(set, b);
    json_decref(b);
    b = blob_object("linear_relu", "power_mw:VDD_CPU_CV", false, fx.cpu, CPU_MEMBERS);
    add_ok(set, b);
    json_decref(b);
    return set;
}

/* Checks set's prediction for cfg against the hand computation. */
static void check_prediction(const struct model_set *set, const struct kernel_config *cfg,
                             struct member *lat, size_t lat_n)
{
    struct kernel_prediction p;
    float f[PREDICT_MAX_FEATURES];
    char err[512] = "";
    double mean, sd;
    predict_features(cfg, f);
    if (model_set_predict(set, cfg, &p, err, sizeof err) != 0)
        fail_msg("predict: %s", err);
    expected(lat, lat_n, true, f, &mean, &sd);
    assert_rel(p.latency_us, mean, "latency_us");
    assert_rel(p.latency_us_spread, sd, "latency_us_spread");
    assert_true(p.latency_us > 0.0);
    assert_int_equal(p.rail_count, 2);
    assert_string_equal(p.rails[0].name, "VDD_GPU_SOC");
    assert_string_equal(p.rails[1].name, "VDD_CPU_CV");
    expected(fx.gpu, GPU_MEMBERS, false, f, &mean, &sd);
    assert_rel(p.rails[0].power_mw, mean, "gpu power_mw");
    assert_rel(p.rails[0].power_mw_spread, sd, "gpu power_mw_spread");
    expected(fx.cpu, CPU_MEMBERS, false, f, &mean, &sd);
    assert_rel(p.rails[1].power_mw, mean, "cpu power_mw");
    assert_rel(p.rails[1].power_mw_spread, sd, "cpu power_mw_spread");
    for (unsigned r = 0; r < 2; r++)
        assert_rel(p.rails[r].energy_uj, p.latency_us * p.rails[r].power_mw / 1000.0,
                   "energy_uj");
}

static void test_blob_round_trip_and_predict(void **state)
{
    (void)state;
    struct model_set *set = full_set();
    assert_int_equal(model_set_count(set), 3);
    assert_true(model_set_has_kernel(set, "linear_relu"));
    assert_false(model_set_has_kernel(set, "softmax"));
    assert_false(model_set_has_kernel(set, "nope"));
    assert_false(model_set_has_kernel(set, NULL));
    bool spread_seen = false;
    for (int i = 0; i < 60; i++) {
        struct kernel_config cfg;
        struct kernel_prediction p;
        random_config(fx.linear_relu, &cfg);
        check_prediction(set, &cfg, fx.lat, LAT_MEMBERS);
        assert_int_equal(model_set_predict(set, &cfg, &p, NULL, 0), 0);
        spread_seen |= p.latency_us_spread > 0.0;
    }
    assert_true(spread_seen); /* the members differ, so the spread is not trivially 0 */
    model_set_free(set);
    model_set_free(NULL);
}

/* A later model for the same kernel and target replaces the earlier one, and a
 * replaced rail keeps its place. */
static void test_replace(void **state)
{
    (void)state;
    struct model_set *set = full_set();
    json_t *b = blob_object("linear_relu", "latency_us", true, fx.lat_new, 2);
    add_ok(set, b);
    json_decref(b);
    b = blob_object("linear_relu", "power_mw:VDD_GPU_SOC", false, fx.gpu, GPU_MEMBERS);
    add_ok(set, b);
    json_decref(b);
    assert_int_equal(model_set_count(set), 3);
    for (int i = 0; i < 20; i++) {
        struct kernel_config cfg;
        random_config(fx.linear_relu, &cfg);
        check_prediction(set, &cfg, fx.lat_new, 2);
    }
    model_set_free(set);
}

static void test_no_latency_model(void **state)
{
    (void)state;
    struct model_set *set = model_set_new();
    struct kernel_prediction p;
    struct kernel_config cfg;
    char err[256] = "";
    assert_non_null(set);
    assert_int_equal(model_set_count(set), 0);
    json_t *b = blob_object("softmax", "power_mw:VDD_GPU", false, fx.softmax_power, 1);
    add_ok(set, b);
    json_decref(b);
    assert_int_equal(model_set_count(set), 1);
    assert_false(model_set_has_kernel(set, "softmax"));
    random_config(fx.softmax, &cfg);
    assert_int_equal(model_set_predict(set, &cfg, &p, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'softmax'");
    random_config(fx.linear_relu, &cfg);
    assert_int_equal(model_set_predict(set, &cfg, &p, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'linear_relu'");
    cfg.kernel = NULL;
    assert_int_equal(model_set_predict(set, &cfg, &p, err, sizeof err), -1);
    model_set_free(set);
}

/* ---- refusals ---- */

static void e_format(json_t *b) { json_object_set_new(b, "format", json_string("jetprof-model/2")); }
static void e_no_format(json_t *b) { json_object_del(b, "format"); }
static void e_kernel(json_t *b) { json_object_set_new(b, "kernel", json_string("nope")); }
static void e_no_kernel(json_t *b) { json_object_del(b, "kernel"); }
static void e_target(json_t *b) { json_object_set_new(b, "target", json_string("energy_uj")); }
static void e_empty_rail(json_t *b) { json_object_set_new(b, "target", json_string("power_mw:")); }
static void e_long_rail(json_t *b)
{
    json_object_set_new(b, "target",
                        json_string("power_mw:AN_EXTREMELY_LONG_RAIL_NAME_PAST_31"));
}
static void e_log_target(json_t *b) { json_object_set_new(b, "log_target", json_integer(1)); }
static void e_version(json_t *b)
{
    json_object_set_new(b, "feature_version", json_integer(PREDICT_FEATURE_VERSION + 1));
}
static void e_version_string(json_t *b) { json_object_set_new(b, "feature_version", json_string("1")); }
static void e_count(json_t *b) { json_object_set_new(b, "feature_count", json_integer(9)); }
static void e_members_empty(json_t *b) { json_object_set_new(b, "members", json_array()); }
static void e_members_object(json_t *b) { json_object_set_new(b, "members", json_object()); }
static void e_member_string(json_t *b)
{
    json_array_set_new(json_object_get(b, "members"), 1, json_string("{}"));
}
static void e_member_objective(json_t *b)
{
    json_t *m = json_array_get(json_object_get(b, "members"), 2);
    json_object_set_new(json_object_get(json_object_get(m, "learner"), "objective"), "name",
                        json_string("reg:pseudohubererror"));
}
static void e_member_child(json_t *b)
{
    json_t *m = json_array_get(json_object_get(b, "members"), 0);
    json_t *trees = json_object_get(
        json_object_get(json_object_get(json_object_get(m, "learner"), "gradient_booster"),
                        "model"),
        "trees");
    json_array_set_new(json_object_get(json_array_get(trees, 3), "left_children"), 0,
                       json_integer(100000));
}
static void e_too_many_members(json_t *b)
{
    json_t *members = json_object_get(b, "members");
    json_t *first = json_array_get(members, 0);
    while (json_array_size(members) <= 64)
        json_array_append(members, first);
}

static void test_blob_errors(void **state)
{
    (void)state;
    static const struct {
        void (*edit)(json_t *blob);
        const char *expect;
    } cases[] = {
        {e_format, "model blob format is 'jetprof-model/2', expected 'jetprof-model/1'"},
        {e_no_format, "no \"format\""},
        {e_kernel, "unknown kernel type 'nope'"},
        {e_no_kernel, "no \"kernel\""},
        {e_target, "target 'energy_uj' is neither"},
        {e_empty_rail, "names no rail"},
        {e_long_rail, "rail name longer than 31"},
        {e_log_target, "\"log_target\" is not a boolean"},
        {e_version, "feature_version 2 but this build computes features version 1"},
        {e_version_string, "\"feature_version\" is not an integer"},
        {e_count, "feature_count 9 but linear_relu has 10 features"},
        {e_members_empty, "\"members\" is not a non-empty array"},
        {e_members_object, "\"members\" is not a non-empty array"},
        {e_member_string, "members[1]: is not an XGBoost model object"},
        {e_member_objective, "members[2]: XGBoost model: objective 'reg:pseudohubererror'"},
        {e_member_child, "members[0]: XGBoost model: tree 3 node 0: children 100000"},
        {e_too_many_members, "more than the 64 supported"},
    };
    struct model_set *set = full_set();
    struct kernel_config cfg;
    struct kernel_prediction before, after;
    random_config(fx.linear_relu, &cfg);
    assert_int_equal(model_set_predict(set, &cfg, &before, NULL, 0), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *b = blob_object("linear_relu", "latency_us", true, fx.lat_new, 2);
        json_array_append_new(json_object_get(b, "members"), member_object(&fx.lat[0]));
        cases[i].edit(b);
        char *text = dump(b);
        char err[1024] = "";
        int rc = model_set_add_blob(set, text, strlen(text), err, sizeof err);
        if (rc != -1 || strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\", expected \"%s\"", i, rc, err,
                     cases[i].expect);
        free(text);
        json_decref(b);
    }
    /* member trained on 12 columns */
    json_t *b = blob_object("linear_relu", "latency_us", true, fx.wide, 1);
    char *text = dump(b);
    char err[1024] = "";
    assert_int_equal(model_set_add_blob(set, text, strlen(text), err, sizeof err), -1);
    assert_non_null(strstr(err, "members[0] reads 12 features but linear_relu has 10"));
    free(text);
    json_decref(b);

    static const struct {
        const char *text;
        const char *expect;
    } texts[] = {
        {"", "empty"},
        {"{\"format\":", "not valid JSON (line 1"},
        {"[]", "not a JSON object"},
        {"\"jetprof-model/1\"", "not valid JSON"}, /* jansson wants an object or array */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        err[0] = '\0';
        if (model_set_add_blob(set, texts[i].text, strlen(texts[i].text), err, sizeof err) !=
                -1 ||
            strstr(err, texts[i].expect) == NULL)
            fail_msg("text %zu: err \"%s\"", i, err);
    }

    /* nothing changed */
    assert_int_equal(model_set_count(set), 3);
    assert_int_equal(model_set_predict(set, &cfg, &after, NULL, 0), 0);
    assert_memory_equal(&before, &after, sizeof before);
    model_set_free(set);
}

static void test_rail_limit(void **state)
{
    (void)state;
    struct model_set *set = model_set_new();
    char err[512] = "";
    assert_non_null(set);
    for (int r = 0; r <= PREDICT_MAX_RAILS; r++) {
        char target[64];
        snprintf(target, sizeof target, "power_mw:RAIL_%d", r);
        json_t *b = blob_object("linear_relu", target, false, fx.gpu, 1);
        char *text = dump(b);
        int rc = model_set_add_blob(set, text, strlen(text), err, sizeof err);
        if (r < PREDICT_MAX_RAILS)
            assert_int_equal(rc, 0);
        else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "already has power models for 8 rails"));
        }
        free(text);
        json_decref(b);
    }
    json_t *b = blob_object("linear_relu", "latency_us", true, fx.lat, 1);
    add_ok(set, b);
    json_decref(b);
    assert_int_equal(model_set_count(set), PREDICT_MAX_RAILS + 1);
    struct kernel_config cfg;
    struct kernel_prediction p;
    random_config(fx.linear_relu, &cfg);
    assert_int_equal(model_set_predict(set, &cfg, &p, err, sizeof err), 0);
    assert_int_equal(p.rail_count, PREDICT_MAX_RAILS);
    for (int r = 0; r < PREDICT_MAX_RAILS; r++) {
        char name[32];
        snprintf(name, sizeof name, "RAIL_%d", r);
        assert_string_equal(p.rails[r].name, name);
        assert_true(p.rails[r].power_mw_spread == 0.0); /* one member */
    }
    model_set_free(set);
}

/* ---- bundles ---- */

static json_t *bundle_object(void)
{
    json_t *models = json_array();
    struct {
        const char *target;
        bool log_target;
        struct member *ms;
        size_t n;
    } entries[] = {
        {"latency_us", true, fx.lat, LAT_MEMBERS},
        {"power_mw:VDD_GPU_SOC", false, fx.gpu, GPU_MEMBERS},
        {"power_mw:VDD_CPU_CV", false, fx.cpu, CPU_MEMBERS},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *blob =
            blob_object("linear_relu", entries[i].target, entries[i].log_target, entries[i].ms,
                        entries[i].n);
        json_array_append_new(
            models, json_pack("{s:i, s:s, s:s, s:{s:i}, s:s, s:s, s:o}", "id", (int)i + 7,
                              "kernel", "linear_relu", "target", entries[i].target, "metrics",
                              "train_rows", 160, "training_hash", "ab12", "created_at",
                              "2025-01-01T00:00:00Z", "model", blob));
    }
    json_t *bundle = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:i}, s:b, s:s, s:s, s:o}", "format", PREDICT_BUNDLE_FORMAT,
        "exported_at", "2025-01-02T00:00:00Z", "device", "fingerprint",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "board_model",
        "orin-nano", "simulated", 1, "simulated", true, "board_input_rail", "VDD_IN",
        "gpu_rail", "VDD_GPU_SOC", "models", models);
    assert_non_null(bundle);
    return bundle;
}

static void test_bundle(void **state)
{
    (void)state;
    json_t *bundle = bundle_object();
    char *text = dump(bundle);
    struct model_set *set = NULL;
    struct model_set_info info;
    char err[1024] = "";
    if (model_set_load_bundle(text, strlen(text), &set, err, sizeof err) != 0)
        fail_msg("load_bundle: %s", err);
    model_set_get_info(set, &info);
    assert_string_equal(info.board_input_rail, "VDD_IN");
    assert_string_equal(info.gpu_rail, "VDD_GPU_SOC");
    assert_true(info.simulated);
    assert_string_equal(info.fingerprint,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(model_set_count(set), 3);
    for (int i = 0; i < 20; i++) {
        struct kernel_config cfg;
        random_config(fx.linear_relu, &cfg);
        check_prediction(set, &cfg, fx.lat, LAT_MEMBERS);
    }
    model_set_free(set);
    free(text);

    /* without "simulated", the device row's flag; no rails: empty strings */
    json_object_del(bundle, "simulated");
    json_object_del(bundle, "board_input_rail");
    json_object_del(bundle, "gpu_rail");
    text = dump(bundle);
    assert_int_equal(model_set_load_bundle(text, strlen(text), &set, err, sizeof err), 0);
    model_set_get_info(set, &info);
    assert_true(info.simulated);
    assert_string_equal(info.board_input_rail, "");
    assert_string_equal(info.gpu_rail, "");
    model_set_free(set);
    free(text);
    json_decref(bundle);
}

static void b_not_object(json_t *b) { json_array_append_new(json_object_get(b, "models"), json_integer(3)); }
static void b_format(json_t *b) { json_object_set_new(b, "format", json_string("jetprof-model/1")); }
static void b_no_format(json_t *b) { json_object_del(b, "format"); }
static void b_no_models(json_t *b) { json_object_del(b, "models"); }
static void b_empty_models(json_t *b) { json_object_set_new(b, "models", json_array()); }
static void b_no_model(json_t *b)
{
    json_object_del(json_array_get(json_object_get(b, "models"), 1), "model");
}
static void b_bad_kernel(json_t *b)
{
    json_t *e = json_array_get(json_object_get(b, "models"), 2);
    json_object_set_new(json_object_get(e, "model"), "kernel", json_string("nope"));
    json_object_del(e, "kernel");
}
static void b_mismatch(json_t *b)
{
    json_t *e = json_array_get(json_object_get(b, "models"), 1);
    json_object_set_new(e, "target", json_string("power_mw:OTHER"));
}
static void b_version(json_t *b)
{
    json_t *e = json_array_get(json_object_get(b, "models"), 0);
    json_object_set_new(json_object_get(e, "model"), "feature_version", json_integer(0));
}
static void b_fingerprint(json_t *b)
{
    char long_fp[100];
    memset(long_fp, 'a', sizeof long_fp - 1);
    long_fp[sizeof long_fp - 1] = '\0';
    json_object_set_new(json_object_get(b, "device"), "fingerprint", json_string(long_fp));
}
static void b_simulated(json_t *b) { json_object_set_new(b, "simulated", json_string("yes")); }
static void b_rail(json_t *b) { json_object_set_new(b, "gpu_rail", json_integer(3)); }
static void b_device(json_t *b) { json_object_set_new(b, "device", json_string("x")); }

static void test_bundle_errors(void **state)
{
    (void)state;
    static const struct {
        void (*edit)(json_t *bundle);
        const char *expect;
    } cases[] = {
        {b_not_object, "models[3] is not an object"},
        {b_format, "models file format is 'jetprof-model/1', expected 'jetprof-models/1'"},
        {b_no_format, "no \"format\""},
        {b_no_models, "has no models"},
        {b_empty_models, "has no models"},
        {b_no_model, "models[1] has no \"model\" object"},
        {b_bad_kernel, "models[2]: model blob: unknown kernel type 'nope'"},
        {b_mismatch, "models[1]: \"target\" differs"},
        {b_version, "models[0]: model for linear_relu latency_us has feature_version 0"},
        {b_fingerprint, "\"fingerprint\" is longer than 71"},
        {b_simulated, "\"simulated\" is not a boolean"},
        {b_rail, "\"gpu_rail\" is not a string"},
        {b_device, "\"device\" is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *bundle = bundle_object();
        cases[i].edit(bundle);
        char *text = dump(bundle);
        struct model_set *set = NULL;
        char err[1024] = "";
        int rc = model_set_load_bundle(text, strlen(text), &set, err, sizeof err);
        if (rc != -1 || set != NULL || strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\", expected \"%s\"", i, rc, err,
                     cases[i].expect);
        free(text);
        json_decref(bundle);
    }
    struct model_set *set = NULL;
    char err[256] = "";
    assert_int_equal(model_set_load_bundle("", 0, &set, err, sizeof err), -1);
    assert_int_equal(model_set_load_bundle("{\"a\"", 4, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(model_set_load_bundle("[1]", 3, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a JSON object"));
    assert_null(set);
}

/* ---- info, GPU rail, readers ---- */

static void test_info_and_gpu_rail(void **state)
{
    (void)state;
    struct model_set *set = model_set_new();
    struct model_set_info in, out;
    assert_non_null(set);
    model_set_get_info(set, &out);
    assert_string_equal(out.board_input_rail, "");
    assert_false(out.simulated);
    memset(&in, 0, sizeof in);
    snprintf(in.board_input_rail, sizeof in.board_input_rail, "VDD_IN");
    snprintf(in.gpu_rail, sizeof in.gpu_rail, "VDD_CPU_GPU_CV");
    snprintf(in.fingerprint, sizeof in.fingerprint, "fp");
    in.simulated = true;
    model_set_set_info(set, &in);
    model_set_get_info(set, &out);
    assert_string_equal(out.board_input_rail, "VDD_IN");
    assert_string_equal(out.gpu_rail, "VDD_CPU_GPU_CV");
    assert_string_equal(out.fingerprint, "fp");
    assert_true(out.simulated);
    model_set_free(set);

    const char *const orin[] = {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"};
    const char *const lower[] = {"vdd_in", NULL, "vdd_gpu_soc", "gpu2"};
    const char *const none[] = {"VDD_IN", "VDD_SOC"};
    assert_string_equal(predict_gpu_rail(orin, 3), "VDD_CPU_GPU_CV");
    assert_string_equal(predict_gpu_rail(lower, 4), "vdd_gpu_soc");
    assert_null(predict_gpu_rail(none, 2));
    assert_null(predict_gpu_rail(orin, 0));
    assert_null(predict_gpu_rail(NULL, 3));
}

#define READERS 4
#define READER_CONFIGS 150
struct reader {
    const struct model_set *set;
    const struct kernel_config *cfgs;
    const struct kernel_prediction *want;
    int mismatches;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < READER_CONFIGS; i++) {
            struct kernel_prediction p;
            if (model_set_predict(r->set, &r->cfgs[i], &p, NULL, 0) != 0 ||
                memcmp(&p, &r->want[i], sizeof p) != 0)
                r->mismatches++;
        }
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    struct model_set *set = full_set();
    static struct kernel_config cfgs[READER_CONFIGS];
    static struct kernel_prediction want[READER_CONFIGS];
    for (int i = 0; i < READER_CONFIGS; i++) {
        random_config(fx.linear_relu, &cfgs[i]);
        assert_int_equal(model_set_predict(set, &cfgs[i], &want[i], NULL, 0), 0);
    }
    pthread_t th[READERS];
    struct reader rd[READERS];
    for (int t = 0; t < READERS; t++) {
        rd[t] = (struct reader){set, cfgs, want, 0};
        assert_int_equal(pthread_create(&th[t], NULL, reader_main, &rd[t]), 0);
    }
    for (int t = 0; t < READERS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(rd[t].mismatches, 0);
    }
    model_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_round_trip_and_predict),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_no_latency_model),
        cmocka_unit_test(test_blob_errors),
        cmocka_unit_test(test_rail_limit),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_bundle_errors),
        cmocka_unit_test(test_info_and_gpu_rail),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
