/*
 * test_predict_features.c - the predictors' feature vector: the layout of
 * features.h on hand-computed kernels (linear, attention, concat with its zero
 * FLOPs), the names, counts for every catalogue kernel, and the edges (no
 * kernel, unvalidated parameters, short name buffers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "predict/features.h"

static struct kernel_config make_cfg(const char *kernel, enum dtype d, const int64_t *params,
                                     unsigned count)
{
    struct kernel_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.kernel = catalog_find(kernel);
    assert_non_null(cfg.kernel);
    assert_int_equal(cfg.kernel->param_count, count);
    cfg.dtype = d;
    for (unsigned i = 0; i < count; i++)
        cfg.params[i] = params[i];
    return cfg;
}

/* Relative comparison: the vector is float, the hand values double. */
static void assert_close(float got, double want)
{
    double tol = 1e-6 * fabs(want) + 1e-6;
    if (fabs((double)got - want) > tol)
        fail_msg("feature %.9g, expected %.9g", (double)got, want);
}

static void test_linear_layout(void **state)
{
    (void)state;
    const int64_t p[] = {64, 256, 512};
    struct kernel_config cfg = make_cfg("linear", DTYPE_FP32, p, 3);
    float f[PREDICT_MAX_FEATURES];
    assert_int_equal(predict_feature_count(cfg.kernel), 10);
    assert_int_equal(predict_features(&cfg, f), 10);
    /* flops = 2*64*256*512 + 64*512 (bias); bytes = 4 * (x + W + bias + y) */
    double flops = 2.0 * 64 * 256 * 512 + 64.0 * 512;
    double bytes = 4.0 * (64.0 * 256 + 256.0 * 512 + 512 + 64.0 * 512);
    assert_true(flops == 16809984.0 && bytes == 722944.0);
    const double want[] = {0, 64, 256, 512, 6, 8, 9, log2(flops + 1), log2(bytes + 1),
                           flops / bytes};
    for (unsigned i = 0; i < 10; i++)
        assert_close(f[i], want[i]);
    assert_close(f[9], 23.2521246); /* by hand: 16809984 / 722944 */
}

/* linear_relu counts the activation: one more op per output than linear. */
static void test_linear_relu_fp16(void **state)
{
    (void)state;
    const int64_t p[] = {1, 1024, 1000};
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP16, p, 3);
    float f[PREDICT_MAX_FEATURES];
    assert_int_equal(predict_features(&cfg, f), 10);
    double flops = 2.0 * 1024 * 1000 + 2.0 * 1000;
    double bytes = 2.0 * (1024.0 + 1024.0 * 1000 + 1000 + 1000);
    assert_close(f[0], 1.0);
    assert_close(f[1], 1);
    assert_close(f[4], 0.0); /* log2(1) */
    assert_close(f[5], 10.0);
    assert_close(f[6], log2(1000.0));
    assert_close(f[7], log2(flops + 1));
    assert_close(f[8], log2(bytes + 1));
    assert_close(f[9], flops / bytes);
}

static void test_attention_layout(void **state)
{
    (void)state;
    const int64_t p[] = {2, 128, 8, 64};
    struct kernel_config cfg = make_cfg("attention", DTYPE_FP16, p, 4);
    float f[PREDICT_MAX_FEATURES];
    assert_int_equal(predict_feature_count(cfg.kernel), 12);
    assert_int_equal(predict_features(&cfg, f), 12);
    /* batch*heads*tokens^2 * (4 head_dim + 6); bytes = 2 * 4 * batch*heads*tokens*head_dim */
    double flops = 2.0 * 8 * 128 * 128 * (4.0 * 64 + 6);
    double bytes = 2.0 * 4.0 * 2 * 8 * 128 * 64;
    const double want[] = {1, 2, 128, 8, 64, 1, 7, 3, 6, log2(flops + 1), log2(bytes + 1),
                           flops / bytes};
    for (unsigned i = 0; i < 12; i++)
        assert_close(f[i], want[i]);
}

/* concat moves data only: log2(0 + 1) = 0 and intensity 0, not -inf or NaN. */
static void test_concat_zero_flops(void **state)
{
    (void)state;
    const int64_t p[] = {32, 100, 28};
    struct kernel_config cfg = make_cfg("concat", DTYPE_FP32, p, 3);
    float f[PREDICT_MAX_FEATURES];
    assert_int_equal(predict_features(&cfg, f), 10);
    assert_close(f[7], 0.0);
    assert_close(f[8], log2(4.0 * 2 * 32 * 128 + 1));
    assert_close(f[9], 0.0);
}

static void test_softmax_and_names(void **state)
{
    (void)state;
    const struct catalog_kernel *k = catalog_find("softmax");
    assert_non_null(k);
    assert_int_equal(predict_feature_count(k), 8);
    const char *want[] = {"dtype",     "rows",       "cols",       "log2_rows",
                          "log2_cols", "log2_flops", "log2_bytes", "arithmetic_intensity"};
    char buf[64];
    for (unsigned i = 0; i < 8; i++) {
        const char *name = predict_feature_name(k, i, buf, sizeof buf);
        assert_non_null(name);
        assert_ptr_equal(name, buf);
        assert_string_equal(name, want[i]);
    }
    assert_null(predict_feature_name(k, 8, buf, sizeof buf));
    assert_null(predict_feature_name(k, 1000, buf, sizeof buf));

    const struct catalog_kernel *lin = catalog_find("linear");
    assert_string_equal(predict_feature_name(lin, 3, buf, sizeof buf), "out");
    assert_string_equal(predict_feature_name(lin, 5, buf, sizeof buf), "log2_in");
    /* A name that does not fit is refused rather than cut into another name. */
    char small[8];
    assert_null(predict_feature_name(lin, 9, small, sizeof small)); /* arithmetic_intensity */
    assert_string_equal(predict_feature_name(lin, 0, small, sizeof small), "dtype");
    assert_null(predict_feature_name(lin, 0, small, 5)); /* "dtype" needs 6 */
    assert_null(predict_feature_name(NULL, 0, buf, sizeof buf));
    assert_null(predict_feature_name(lin, 0, NULL, 10));
}

/* Every catalogue kernel: 2P + 4 features, within the maximum, all finite for a
 * mid-range config, and distinct names. */
static void test_every_kernel(void **state)
{
    (void)state;
    for (size_t i = 0; i < catalog_count(); i++) {
        const struct catalog_kernel *k = catalog_at(i);
        unsigned count = predict_feature_count(k);
        assert_int_equal(count, 2 * k->param_count + 4);
        assert_true(count <= PREDICT_MAX_FEATURES);

        struct kernel_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.kernel = k;
        cfg.dtype = DTYPE_FP16;
        for (unsigned p = 0; p < k->param_count; p++)
            cfg.params[p] = k->params[p].min + 1;
        assert_int_equal(catalog_validate(&cfg, 0, NULL, 0), 0);
        float f[PREDICT_MAX_FEATURES];
        assert_int_equal(predict_features(&cfg, f), count);
        for (unsigned j = 0; j < count; j++)
            assert_true(isfinite(f[j]));

        char names[PREDICT_MAX_FEATURES][64];
        for (unsigned j = 0; j < count; j++) {
            assert_non_null(predict_feature_name(k, j, names[j], sizeof names[j]));
            for (unsigned prev = 0; prev < j; prev++)
                assert_string_not_equal(names[prev], names[j]);
        }
        assert_null(predict_feature_name(k, count, names[0], sizeof names[0]));
    }
}

static void test_edges(void **state)
{
    (void)state;
    float f[PREDICT_MAX_FEATURES];
    assert_int_equal(predict_feature_count(NULL), 0);
    assert_int_equal(predict_features(NULL, f), 0);
    struct kernel_config none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(predict_features(&none, f), 0);

    /* An unvalidated non-positive parameter has no log: NaN (missing), never -inf. */
    const int64_t p[] = {0, 256, 512};
    struct kernel_config cfg = make_cfg("linear", DTYPE_FP32, p, 3);
    assert_int_equal(predict_features(&cfg, f), 10);
    assert_true(isnan(f[4]));
    assert_close(f[5], 8.0);
    assert_close(f[1], 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_layout),   cmocka_unit_test(test_linear_relu_fp16),
        cmocka_unit_test(test_attention_layout), cmocka_unit_test(test_concat_zero_flops),
        cmocka_unit_test(test_softmax_and_names), cmocka_unit_test(test_every_kernel),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
