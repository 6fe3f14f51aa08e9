/*
 * test_predict_estimate.c - a graph's estimate (predict/estimate.c): the answer's
 * JSON shape (format, dtype, batch, merge, simulated, graph_nodes, kernels with
 * params, config key, nodes, depth, merged count and prediction fields); totals
 * as sums (latency, energy per rail; spread as the root of summed squares);
 * energy = latency x power; board-input energy from the named rail or the sum of
 * all rails ("sum"), GPU energy from the GPU rail or null; merge on and off;
 * a 409 naming every kernel type without a model after predicting them all; the
 * graph module's own errors passed through; the missing-models sentence; and a
 * real model_set (XGBoost boosters trained here) as the predictor.
 *
 * Most tests use a fake estimate_predict_fn with fixed numbers per kernel type,
 * so every expected total is exact arithmetic.
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

#include "common/log.h"
#include "predict/estimate.h"
#include "predict/features.h"

/* ---- a fake predictor ---- */

struct fake_row {
    const char *kernel;
    double latency_us, spread;
};
/* Fixed latencies per kernel type; rails VDD_IN at 5000 mW and VDD_CPU_GPU_CV at
 * 2000 mW for every kernel (energy = latency x power / 1000). */
static const struct fake_row fake_rows[] = {
    {"linear", 40.0, 3.0},   {"linear_relu", 100.0, 4.0}, {"layernorm", 10.0, 1.0},
    {"softmax", 5.0, 0.5},   {"add", 2.0, 0.25},           {"linear_bn_relu", 60.0, 2.0},
};
static const struct {
    const char *name;
    double power_mw;
} fake_rails[] = {{"VDD_IN", 5000.0}, {"VDD_CPU_GPU_CV", 2000.0}};

struct fake_ctx {
    const char *fail[4]; /* kernel types "without a model" */
    unsigned calls;
};

static int fake_predict(void *ctx, const struct kernel_config *cfg, struct kernel_prediction *out,
                        char *err, size_t errlen)
{
    struct fake_ctx *fc = ctx;
    fc->calls++;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < 4 && fc->fail[i]; i++) {
        if (strcmp(fc->fail[i], cfg->kernel->name) == 0) {
            snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof fake_rows / sizeof fake_rows[0]; i++) {
        if (strcmp(fake_rows[i].kernel, cfg->kernel->name) != 0)
            continue;
        out->latency_us = fake_rows[i].latency_us;
        out->latency_us_spread = fake_rows[i].spread;
        for (unsigned r = 0; r < 2; r++) {
            snprintf(out->rails[r].name, sizeof out->rails[r].name, "%s", fake_rails[r].name);
            out->rails[r].power_mw = fake_rails[r].power_mw;
            out->rails[r].power_mw_spread = 10.0 * (r + 1);
            out->rails[r].energy_uj = out->latency_us * fake_rails[r].power_mw / 1000.0;
        }
        out->rail_count = 2;
        return 0;
    }
    snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
    return -1;
}

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("test JSON at line %d: %s", jerr.line, jerr.text);
    return j;
}

static void options(struct estimate_options *opt, bool merge, const char *input_rail,
                    const char *gpu_rail)
{
    memset(opt, 0, sizeof *opt);
    opt->graph.merge = merge;
    opt->graph.max_nodes = GRAPH_DEFAULT_MAX_NODES;
    snprintf(opt->info.board_input_rail, sizeof opt->info.board_input_rail, "%s", input_rail);
    snprintf(opt->info.gpu_rail, sizeof opt->info.gpu_rail, "%s", gpu_rail);
    opt->info.simulated = true;
}

static double num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("member '%s' is not a number", key);
    return json_number_value(v);
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-9 * (fabs(want) + 1.0))
        fail_msg("got %.17g, wanted %.17g", got, want);
}

/* x[32] -> fc1 linear 64 -> r1 relu -> fc2 linear 10 */
static const char MLP[] =
    "{\"name\": \"mlp\", \"batch\": 64, \"dtype\": \"fp32\","
    " \"inputs\": [{\"name\": \"x\", \"shape\": [32]}],"
    " \"nodes\": [{\"name\": \"fc1\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 64},"
    "            {\"name\": \"r1\", \"op\": \"relu\", \"inputs\": [\"fc1\"]},"
    "            {\"name\": \"fc2\", \"op\": \"linear\", \"inputs\": [\"r1\"], \"out\": 10}],"
    " \"outputs\": [\"fc2\"]}";

/* ---- tests ---- */

static void test_answer_shape_and_totals(void **state)
{
    (void)state;
    json_t *g = load(MLP);
    struct estimate_options opt;
    options(&opt, true, "VDD_IN", "VDD_CPU_GPU_CV");
    struct fake_ctx fc = {{NULL}, 0};
    struct graph_error err;
    json_t *a = estimate_graph(g, &opt, fake_predict, &fc, &err);
    if (!a)
        fail_msg("estimate_graph: %u %s", err.status, err.detail);
    assert_int_equal(fc.calls, 2);

    assert_string_equal(json_string_value(json_object_get(a, "format")), "native");
    assert_string_equal(json_string_value(json_object_get(a, "dtype")), "fp32");
    assert_int_equal(json_integer_value(json_object_get(a, "batch")), 64);
    assert_true(json_is_true(json_object_get(a, "merge")));
    assert_true(json_is_true(json_object_get(a, "simulated")));
    assert_int_equal(json_integer_value(json_object_get(a, "graph_nodes")), 3);

    json_t *ks = json_object_get(a, "kernels");
    assert_int_equal(json_array_size(ks), 2);
    json_t *k0 = json_array_get(ks, 0), *k1 = json_array_get(ks, 1);
    assert_string_equal(json_string_value(json_object_get(k0, "kernel")), "linear_relu");
    assert_string_equal(json_string_value(json_object_get(k0, "dtype")), "fp32");
    json_t *want_params = load("{\"batch\": 64, \"in\": 32, \"out\": 64}");
    assert_true(json_equal(json_object_get(k0, "params"), want_params));
    json_decref(want_params);
    assert_string_equal(json_string_value(json_object_get(k0, "config_key")),
                        "linear_relu:fp32:batch=64,in=32,out=64");
    json_t *want_nodes = load("[\"fc1\", \"r1\"]");
    assert_true(json_equal(json_object_get(k0, "nodes"), want_nodes));
    json_decref(want_nodes);
    assert_int_equal(json_integer_value(json_object_get(k0, "depth")), 1);
    assert_int_equal(json_integer_value(json_object_get(k0, "merged")), 1);
    assert_close(num(k0, "latency_us"), 100.0);
    assert_close(num(k0, "latency_us_spread"), 4.0);
    assert_close(num(json_object_get(k0, "power_mw"), "VDD_IN"), 5000.0);
    assert_close(num(json_object_get(k0, "power_mw_spread"), "VDD_CPU_GPU_CV"), 20.0);
    assert_close(num(json_object_get(k0, "energy_uj"), "VDD_IN"), 500.0);
    assert_string_equal(json_string_value(json_object_get(k1, "kernel")), "linear");
    assert_string_equal(json_string_value(json_object_get(k1, "config_key")),
                        "linear:fp32:batch=64,in=64,out=10");
    assert_int_equal(json_integer_value(json_object_get(k1, "depth")), 2);

    json_t *t = json_object_get(a, "totals");
    assert_int_equal(json_integer_value(json_object_get(t, "kernels")), 2);
    assert_close(num(t, "latency_us"), 140.0);
    assert_close(num(t, "latency_us_spread"), 5.0); /* sqrt(4^2 + 3^2) */
    json_t *e = json_object_get(t, "energy_uj");
    assert_close(num(json_object_get(e, "rails"), "VDD_IN"), 140.0 * 5.0);
    assert_close(num(json_object_get(e, "rails"), "VDD_CPU_GPU_CV"), 140.0 * 2.0);
    assert_close(num(e, "board_input"), 700.0);
    assert_close(num(e, "gpu"), 280.0);
    assert_string_equal(json_string_value(json_object_get(t, "board_input_rail")), "VDD_IN");
    assert_string_equal(json_string_value(json_object_get(t, "gpu_rail")), "VDD_CPU_GPU_CV");

    /* the same inputs give the same bytes (the offline CLI relies on it) */
    json_t *b = estimate_graph(g, &opt, fake_predict, &fc, &err);
    assert_non_null(b);
    char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);
    json_decref(b);
    json_decref(a);
    json_decref(g);
}

static void test_board_input_sum_and_no_gpu(void **state)
{
    (void)state;
    json_t *g = load(MLP);
    struct estimate_options opt;
    options(&opt, true, "", "");
    opt.info.simulated = false;
    struct fake_ctx fc = {{NULL}, 0};
    struct graph_error err;
    json_t *a = estimate_graph(g, &opt, fake_predict, &fc, &err);
    assert_non_null(a);
    assert_true(json_is_false(json_object_get(a, "simulated")));
    json_t *t = json_object_get(a, "totals");
    json_t *e = json_object_get(t, "energy_uj");
    assert_close(num(e, "board_input"), 700.0 + 280.0);
    assert_true(json_is_null(json_object_get(e, "gpu")));
    assert_string_equal(json_string_value(json_object_get(t, "board_input_rail")), "sum");
    assert_true(json_is_null(json_object_get(t, "gpu_rail")));

    /* a named rail no kernel predicts: null, not a made-up zero */
    options(&opt, true, "POM_5V_IN", "GPU");
    json_t *b = estimate_graph(g, &opt, fake_predict, &fc, &err);
    assert_non_null(b);
    e = json_object_get(json_object_get(b, "totals"), "energy_uj");
    assert_true(json_is_null(json_object_get(e, "board_input")));
    assert_true(json_is_null(json_object_get(e, "gpu")));
    json_decref(b);
    json_decref(a);
    json_decref(g);
}

static void test_merge_on_and_off(void **state)
{
    (void)state;
    /* q and k read the same input at the same depth: one linear when merged */
    json_t *g = load("{\"batch\": 8, \"dtype\": \"fp32\","
                     " \"inputs\": [{\"name\": \"x\", \"shape\": [16]}],"
                     " \"nodes\": [{\"name\": \"q\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 32},"
                     "            {\"name\": \"k\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 32}]}");
    struct estimate_options opt;
    struct graph_error err;
    struct fake_ctx fc = {{NULL}, 0};
    options(&opt, true, "VDD_IN", "");
    json_t *merged = estimate_graph(g, &opt, fake_predict, &fc, &err);
    if (!merged)
        fail_msg("estimate_graph: %u %s", err.status, err.detail);
    options(&opt, false, "VDD_IN", "");
    json_t *apart = estimate_graph(g, &opt, fake_predict, &fc, &err);
    assert_non_null(apart);

    assert_true(json_is_true(json_object_get(merged, "merge")));
    assert_true(json_is_false(json_object_get(apart, "merge")));
    json_t *mk = json_object_get(merged, "kernels");
    assert_int_equal(json_array_size(mk), 1);
    json_t *k = json_array_get(mk, 0);
    assert_int_equal(json_integer_value(json_object_get(k, "merged")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(k, "params"), "out")), 64);
    assert_int_equal(json_array_size(json_object_get(k, "nodes")), 2);
    assert_int_equal(json_array_size(json_object_get(apart, "kernels")), 2);
    assert_close(num(json_object_get(merged, "totals"), "latency_us"), 40.0);
    assert_close(num(json_object_get(apart, "totals"), "latency_us"), 80.0);
    json_decref(merged);
    json_decref(apart);
    json_decref(g);
}

static void test_missing_models_all_named(void **state)
{
    (void)state;
    json_t *g = load("{\"batch\": 4, \"dtype\": \"fp32\","
                     " \"inputs\": [{\"name\": \"x\", \"shape\": [16]}],"
                     " \"nodes\": [{\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 16},"
                     "            {\"name\": \"ln\", \"op\": \"layernorm\", \"inputs\": [\"fc\"]},"
                     "            {\"name\": \"sm\", \"op\": \"softmax\", \"inputs\": [\"ln\"]}]}");
    struct estimate_options opt;
    options(&opt, true, "VDD_IN", "");
    struct fake_ctx fc = {{"softmax", "layernorm", NULL}, 0};
    struct graph_error err;
    json_t *a = estimate_graph(g, &opt, fake_predict, &fc, &err);
    assert_null(a);
    assert_int_equal(err.status, 409);
    assert_int_equal(fc.calls, 3); /* every kernel was tried before failing */
    assert_string_equal(err.detail,
                        "no model for kernel types 'layernorm' and 'softmax' on this device: "
                        "measure at least 20 configurations of each (POST /v1/jobs) and train "
                        "(POST /v1/models/train)");
    assert_string_equal(err.node, "");

    struct fake_ctx one = {{"layernorm", NULL}, 0};
    assert_null(estimate_graph(g, &opt, fake_predict, &one, &err));
    assert_int_equal(err.status, 409);
    assert_string_equal(err.detail,
                        "no model for kernel type 'layernorm' on this device: measure at least "
                        "20 layernorm configurations (POST /v1/jobs) and train "
                        "(POST /v1/models/train)");
    json_decref(g);
}

static void test_missing_detail_wording(void **state)
{
    (void)state;
    const char *k3[] = {"add", "concat", "softmax"};
    char buf[512];
    estimate_missing_models_detail(k3, 3, buf, sizeof buf);
    assert_string_equal(buf, "no model for kernel types 'add', 'concat' and 'softmax' on this "
                             "device: measure at least 20 configurations of each (POST "
                             "/v1/jobs) and train (POST /v1/models/train)");
    estimate_missing_models_detail(k3, 0, buf, sizeof buf);
    assert_string_equal(buf, "");
    char tiny[16];
    estimate_missing_models_detail(k3, 3, tiny, sizeof tiny); /* cut, terminated */
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_graph_errors_pass_through(void **state)
{
    (void)state;
    struct estimate_options opt;
    options(&opt, true, "VDD_IN", "");
    struct fake_ctx fc = {{NULL}, 0};
    struct graph_error err;

    json_t *dangling = load("{\"batch\": 4, \"dtype\": \"fp32\","
                            " \"inputs\": [{\"name\": \"x\", \"shape\": [16]}],"
                            " \"nodes\": [{\"name\": \"fc1\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 8},"
                            "            {\"name\": \"fc2\", \"op\": \"linear\", \"inputs\": [\"fc9\"], \"out\": 8}]}");
    assert_null(estimate_graph(dangling, &opt, fake_predict, &fc, &err));
    assert_int_equal(err.status, 422);
    assert_string_equal(err.node, "fc2");
    assert_non_null(strstr(err.detail, "fc9"));
    assert_int_equal(fc.calls, 0); /* nothing predicted for a bad graph */
    json_decref(dangling);

    json_t *not_graph = load("[1, 2, 3]");
    assert_null(estimate_graph(not_graph, &opt, fake_predict, &fc, &err));
    assert_true(err.status == 400 || err.status == 422);
    assert_true(err.detail[0] != '\0');
    json_decref(not_graph);

    /* too many nodes for max_nodes */
    json_t *g = load(MLP);
    opt.graph.max_nodes = 2;
    assert_null(estimate_graph(g, &opt, fake_predict, &fc, &err));
    assert_int_equal(err.status, 422);
    json_decref(g);
}

static void test_prediction_fields(void **state)
{
    (void)state;
    struct kernel_prediction p;
    memset(&p, 0, sizeof p);
    p.latency_us = 12.5;
    p.latency_us_spread = 0.5;
    p.rail_count = 1;
    snprintf(p.rails[0].name, sizeof p.rails[0].name, "VDD_GPU_SOC");
    p.rails[0].power_mw = 3000.0;
    p.rails[0].power_mw_spread = 25.0;
    p.rails[0].energy_uj = 37.5;
    json_t *o = json_object();
    assert_int_equal(estimate_prediction_fields(o, &p), 0);
    json_t *want = load("{\"latency_us\": 12.5, \"latency_us_spread\": 0.5,"
                        " \"power_mw\": {\"VDD_GPU_SOC\": 3000.0},"
                        " \"power_mw_spread\": {\"VDD_GPU_SOC\": 25.0},"
                        " \"energy_uj\": {\"VDD_GPU_SOC\": 37.5}}");
    assert_true(json_equal(o, want));
    json_decref(want);
    json_decref(o);

    /* a non-finite number cannot be JSON: it is null */
    p.latency_us_spread = NAN;
    o = json_object();
    assert_int_equal(estimate_prediction_fields(o, &p), 0);
    assert_true(json_is_null(json_object_get(o, "latency_us_spread")));
    json_decref(o);
}

/* ---- with a real model_set ---- */

/* A jetprof-model/1 blob for "linear": one XGBoost booster fitted to
 * scale * (batch + in + out) (its log with log_target). malloc'd text. */
static char *make_blob(const char *target, double scale, bool log_target)
{
    enum { ROWS = 24 };
    const struct catalog_kernel *k = catalog_find("linear");
    unsigned nf = predict_feature_count(k);
    float *x = calloc(ROWS * (size_t)nf, sizeof *x);
    float y[ROWS];
    assert_non_null(x);
    for (int i = 0; i < ROWS; i++) {
        struct kernel_config c = {.kernel = k, .dtype = DTYPE_FP32,
                                  .params = {1 + i % 6 * 8, 16 + i % 4 * 16, 8 + i * 4}};
        float f[PREDICT_MAX_FEATURES];
        assert_int_equal(predict_features(&c, f), nf);
        memcpy(&x[(size_t)i * nf], f, nf * sizeof *f);
        double v = scale * (double)(c.params[0] + c.params[1] + c.params[2]);
        y[i] = (float)(log_target ? log(v) : v);
    }
    DMatrixHandle dm;
    BoosterHandle b;
    assert_int_equal(XGDMatrixCreateFromMat(x, ROWS, nf, NAN, &dm), 0);
    assert_int_equal(XGDMatrixSetFloatInfo(dm, "label", y, ROWS), 0);
    assert_int_equal(XGBoosterCreate(&dm, 1, &b), 0);
    static const char *const params[][2] = {
        {"objective", "reg:squarederror"}, {"max_depth", "3"}, {"eta", "0.5"},
        {"nthread", "1"}, {"seed", "1"}, {"verbosity", "0"},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        assert_int_equal(XGBoosterSetParam(b, params[i][0], params[i][1]), 0);
    for (int it = 0; it < 4; it++)
        assert_int_equal(XGBoosterUpdateOneIter(b, it, dm), 0);
    bst_ulong len = 0;
    const char *buf = NULL;
    assert_int_equal(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &len, &buf), 0);
    json_error_t jerr;
    json_t *member = json_loadb(buf, (size_t)len, 0, &jerr);
    assert_non_null(member);
    XGBoosterFree(b);
    XGDMatrixFree(dm);
    free(x);
    json_t *blob = json_pack("{s:s,s:s,s:s,s:b,s:i,s:i,s:[o]}", "format", PREDICT_MODEL_FORMAT,
                             "kernel", "linear", "target", target, "log_target", log_target,
                             "feature_version", PREDICT_FEATURE_VERSION, "feature_count", (int)nf,
                             "members", member);
    assert_non_null(blob);
    char *text = json_dumps(blob, JSON_COMPACT);
    json_decref(blob);
    assert_non_null(text);
    return text;
}

static void test_with_model_set(void **state)
{
    (void)state;
    char err[512] = "";
    struct model_set *set = model_set_new();
    assert_non_null(set);
    char *lat = make_blob(PREDICT_TARGET_LATENCY, 0.5, true);
    char *pow = make_blob(PREDICT_TARGET_POWER_PREFIX "VDD_IN", 20.0, false);
    if (model_set_add_blob(set, lat, strlen(lat), err, sizeof err) != 0 ||
        model_set_add_blob(set, pow, strlen(pow), err, sizeof err) != 0)
        fail_msg("model_set_add_blob: %s", err);
    free(lat);
    free(pow);

    struct kernel_config c = {.kernel = catalog_find("linear"), .dtype = DTYPE_FP32,
                              .params = {16, 32, 40}};
    struct kernel_prediction via_fn, direct;
    assert_int_equal(estimate_predict_with_set(set, &c, &via_fn, err, sizeof err), 0);
    assert_int_equal(model_set_predict(set, &c, &direct, err, sizeof err), 0);
    assert_memory_equal(&via_fn, &direct, sizeof via_fn);
    assert_true(via_fn.latency_us > 0);
    assert_int_equal(via_fn.rail_count, 1);

    struct kernel_config sm = {.kernel = catalog_find("softmax"), .dtype = DTYPE_FP32,
                               .params = {4, 8}};
    assert_int_equal(estimate_predict_with_set(set, &sm, &via_fn, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'softmax'");

    /* x[32] -> one linear of 40 with batch 16: exactly the config above */
    json_t *g = load("{\"batch\": 16, \"dtype\": \"fp32\","
                     " \"inputs\": [{\"name\": \"x\", \"shape\": [32]}],"
                     " \"nodes\": [{\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 40}]}");
    struct estimate_options opt;
    options(&opt, true, "", "");
    struct graph_error ge;
    json_t *a = estimate_graph(g, &opt, estimate_predict_with_set, set, &ge);
    if (!a)
        fail_msg("estimate_graph: %u %s", ge.status, ge.detail);
    json_t *t = json_object_get(a, "totals");
    assert_true(num(t, "latency_us") == direct.latency_us);
    json_t *e = json_object_get(t, "energy_uj");
    assert_true(num(json_object_get(e, "rails"), "VDD_IN") == direct.rails[0].energy_uj);
    assert_true(num(e, "board_input") == direct.rails[0].energy_uj);
    assert_close(direct.rails[0].energy_uj,
                 direct.latency_us * direct.rails[0].power_mw / 1000.0);
    json_decref(a);

    /* a graph needing a kernel type the set lacks: 409 naming it */
    json_t *g2 = load("{\"batch\": 16, \"dtype\": \"fp32\","
                      " \"inputs\": [{\"name\": \"x\", \"shape\": [32]}],"
                      " \"nodes\": [{\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\"], \"out\": 40},"
                      "            {\"name\": \"sm\", \"op\": \"softmax\", \"inputs\": [\"fc\"]}]}");
    assert_null(estimate_graph(g2, &opt, estimate_predict_with_set, set, &ge));
    assert_int_equal(ge.status, 409);
    assert_non_null(strstr(ge.detail, "'softmax'"));
    json_decref(g2);
    json_decref(g);
    model_set_free(set);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_shape_and_totals),
        cmocka_unit_test(test_board_input_sum_and_no_gpu),
        cmocka_unit_test(test_merge_on_and_off),
        cmocka_unit_test(test_missing_models_all_named),
        cmocka_unit_test(test_missing_detail_wording),
        cmocka_unit_test(test_graph_errors_pass_through),
        cmocka_unit_test(test_prediction_fields),
        cmocka_unit_test(test_with_model_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
