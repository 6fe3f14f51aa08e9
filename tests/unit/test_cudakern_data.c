/*
 * test_cudakern_data.c - deterministic kernel inputs and the binary16 codec:
 * same seed same bytes, distributions within their documented bounds, exact
 * conversions at the edges (zeros, the largest half, overflow, subnormals,
 * NaN, ties to even), an exhaustive round trip of all 65536 halves and an
 * exhaustive check of the rounding boundaries between neighbouring halves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "cudakern/kernel_data.h"

static struct kernel_config make_cfg(const char *kernel, enum dtype d, int64_t a, int64_t b,
                                     int64_t c)
{
    struct kernel_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.kernel = catalog_find(kernel);
    assert_non_null(cfg.kernel);
    cfg.dtype = d;
    cfg.params[0] = a;
    cfg.params[1] = b;
    cfg.params[2] = c;
    return cfg;
}

static bool same_data(const struct kernel_data *a, const struct kernel_data *b)
{
    if (a->input_count != b->input_count)
        return false;
    for (unsigned i = 0; i < a->input_count; i++) {
        if (a->inputs[i].elements != b->inputs[i].elements ||
            memcmp(a->inputs[i].data, b->inputs[i].data, a->inputs[i].elements * sizeof(float)))
            return false;
    }
    return true;
}

static void test_determinism(void **state)
{
    (void)state;
    char err[256];
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 8, 16, 32);
    struct kernel_data a, b, c;
    assert_int_equal(kernel_data_generate(&cfg, 42, &a, err, sizeof(err)), 0);
    assert_int_equal(kernel_data_generate(&cfg, 42, &b, err, sizeof(err)), 0);
    assert_int_equal(kernel_data_generate(&cfg, 43, &c, err, sizeof(err)), 0);
    assert_true(same_data(&a, &b));
    assert_false(same_data(&a, &c));
    for (unsigned i = 0; i < a.input_count; i++) /* every tensor differs, not just one */
        assert_true(memcmp(a.inputs[i].data, c.inputs[i].data,
                           a.inputs[i].elements * sizeof(float)) != 0);
    /* x does not depend on the other tensors' sizes. */
    struct kernel_config wider = make_cfg("linear", DTYPE_FP16, 8, 16, 64);
    struct kernel_data d;
    assert_int_equal(kernel_data_generate(&wider, 42, &d, err, sizeof(err)), 0);
    assert_int_equal(d.inputs[0].elements, a.inputs[0].elements);
    assert_memory_equal(d.inputs[0].data, a.inputs[0].data, a.inputs[0].elements * sizeof(float));
    kernel_data_free(&a);
    kernel_data_free(&b);
    kernel_data_free(&c);
    kernel_data_free(&d);
    kernel_data_free(&d); /* idempotent */
    kernel_data_free(NULL);
}

static void test_linear_inputs(void **state)
{
    (void)state;
    char err[256];
    struct kernel_config cfg = make_cfg("linear_gelu", DTYPE_FP32, 32, 100, 48);
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(&cfg, 7, &kd, err, sizeof(err)), 0);
    assert_int_equal(kd.input_count, 3);
    assert_int_equal(kd.output_elements, 32 * 48);
    assert_string_equal(kd.inputs[0].name, "x");
    assert_int_equal(kd.inputs[0].elements, 32 * 100);
    assert_string_equal(kd.inputs[1].name, "weight");
    assert_int_equal(kd.inputs[1].elements, 48 * 100);
    assert_string_equal(kd.inputs[2].name, "bias");
    assert_int_equal(kd.inputs[2].elements, 48);

    double lim_w = 1.0 / sqrt(100.0) + 1e-7, sum = 0, wmax = 0;
    for (size_t i = 0; i < kd.inputs[0].elements; i++) {
        float v = kd.inputs[0].data[i];
        assert_true(v >= -1.0f && v <= 1.0f);
        sum += v;
    }
    /* uniform on [-1, 1): mean near 0 (3200 samples, sd of the mean ~0.01) */
    assert_true(fabs(sum / (double)kd.inputs[0].elements) < 0.1);
    for (size_t i = 0; i < kd.inputs[1].elements; i++) {
        double v = fabs(kd.inputs[1].data[i]);
        assert_true(v <= lim_w);
        if (v > wmax)
            wmax = v;
    }
    assert_true(wmax > 0.05); /* scaled, not collapsed to zero */
    for (size_t i = 0; i < kd.inputs[2].elements; i++)
        assert_true(fabsf(kd.inputs[2].data[i]) <= 0.1f);
    kernel_data_free(&kd);
}

static void test_layernorm_inputs(void **state)
{
    (void)state;
    char err[256];
    struct kernel_config cfg = make_cfg("layernorm", DTYPE_FP16, 10, 64, 0);
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(&cfg, 1, &kd, err, sizeof(err)), 0);
    assert_int_equal(kd.input_count, 3);
    assert_int_equal(kd.output_elements, 640);
    assert_string_equal(kd.inputs[0].name, "x");
    assert_string_equal(kd.inputs[1].name, "gamma");
    assert_string_equal(kd.inputs[2].name, "beta");
    assert_int_equal(kd.inputs[1].elements, 64);
    for (size_t i = 0; i < 64; i++) {
        assert_true(kd.inputs[1].data[i] >= 0.5f && kd.inputs[1].data[i] <= 1.5f);
        assert_true(fabsf(kd.inputs[2].data[i]) <= 0.1f);
    }
    kernel_data_free(&kd);

    struct kernel_config none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(kernel_data_generate(&none, 1, &kd, err, sizeof(err)), -1);
    assert_string_equal(err, "no kernel given");
}

static void test_generate_too_large(void **state)
{
    (void)state;
    char err[256];
    /* 2^62 elements: cannot even be sized in bytes, let alone allocated. */
    struct kernel_config cfg = make_cfg("layernorm", DTYPE_FP32, INT64_C(1) << 31,
                                        INT64_C(1) << 31, 0);
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(&cfg, 1, &kd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'x'"));
    assert_int_equal(kd.input_count, 0); /* nothing left to free */
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Every new kernel's tensors: names, sizes, bounds of their distributions,
 * determinism, and independence of each tensor from the others' sizes. */
static void test_new_kernel_inputs(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *kernel;
        int64_t p[4];
        unsigned count;
        struct {
            const char *name;
            size_t elements;
            float lo, hi; /* inclusive bounds of the distribution */
        } t[7];
        size_t output;
    } cases[] = {
        {"linear_bn",
         {6, 25, 10, 0},
         7,
         {{"x", 150, -1, 1},
          {"weight", 250, -0.2f, 0.2f}, /* 1/sqrt(25) */
          {"bias", 10, -0.1f, 0.1f},
          {"gamma", 10, 0.5f, 1.5f},
          {"beta", 10, -0.1f, 0.1f},
          {"mean", 10, -0.1f, 0.1f},
          {"var", 10, 0.5f, 1.5f}},
         60},
        {"softmax", {5, 40, 0, 0}, 1, {{"x", 200, -1, 1}}, 200},
        {"add", {5, 40, 0, 0}, 2, {{"a", 200, -1, 1}, {"b", 200, -1, 1}}, 200},
        {"add_relu", {2, 3, 0, 0}, 2, {{"a", 6, -1, 1}, {"b", 6, -1, 1}}, 6},
        {"attention",
         {2, 5, 3, 4}, /* batch, tokens, heads, head_dim */
         3,
         {{"q", 120, -1, 1}, {"k", 120, -1, 1}, {"v", 120, -1, 1}},
         120},
        {"tokenizer",
         {7, 9, 16, 0},
         3,
         {{"x", 63, -1, 1}, {"weight", 144, -1, 1}, {"bias", 144, -0.1f, 0.1f}},
         1008},
        {"concat", {4, 30, 50, 0}, 2, {{"a", 120, -1, 1}, {"b", 200, -1, 1}}, 320},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg =
                make_cfg(cases[i].kernel, (enum dtype)d, cases[i].p[0], cases[i].p[1],
                         cases[i].p[2]);
            cfg.params[3] = cases[i].p[3];
            struct kernel_data a, b, c;
            assert_int_equal(kernel_data_generate(&cfg, 99, &a, err, sizeof(err)), 0);
            assert_int_equal(kernel_data_generate(&cfg, 99, &b, err, sizeof(err)), 0);
            assert_int_equal(kernel_data_generate(&cfg, 100, &c, err, sizeof(err)), 0);
            assert_true(same_data(&a, &b));
            assert_int_equal(a.input_count, cases[i].count);
            assert_int_equal(a.output_elements, cases[i].output);
            for (unsigned t = 0; t < a.input_count; t++) {
                const struct kernel_tensor *kt = &a.inputs[t];
                assert_string_equal(kt->name, cases[i].t[t].name);
                assert_int_equal(kt->elements, cases[i].t[t].elements);
                float lo = 1e9f, hi = -1e9f;
                for (size_t e = 0; e < kt->elements; e++) {
                    lo = fminf(lo, kt->data[e]);
                    hi = fmaxf(hi, kt->data[e]);
                }
                if (lo < cases[i].t[t].lo - 1e-6f || hi > cases[i].t[t].hi + 1e-6f)
                    fail_msg("%s tensor %s spans [%g, %g], outside [%g, %g]", cases[i].kernel,
                             kt->name, (double)lo, (double)hi, (double)cases[i].t[t].lo,
                             (double)cases[i].t[t].hi);
                /* Spread over most of the range, not collapsed (>= 6 samples). */
                if (kt->elements >= 6)
                    assert_true(hi - lo > 0.3f * (cases[i].t[t].hi - cases[i].t[t].lo));
                /* Another seed changes every tensor. */
                assert_true(memcmp(kt->data, c.inputs[t].data, kt->elements * sizeof(float)) !=
                            0);
            }
            kernel_data_free(&a);
            kernel_data_free(&b);
            kernel_data_free(&c);
        }
    }

    /* linear_bn's x, weight and bias are linear's: folding compares like with like. */
    struct kernel_config lin = make_cfg("linear", DTYPE_FP32, 6, 25, 10);
    struct kernel_config bn = make_cfg("linear_bn_relu", DTYPE_FP32, 6, 25, 10);
    struct kernel_data l, n;
    assert_int_equal(kernel_data_generate(&lin, 5, &l, err, sizeof(err)), 0);
    assert_int_equal(kernel_data_generate(&bn, 5, &n, err, sizeof(err)), 0);
    for (unsigned t = 0; t < 3; t++)
        assert_memory_equal(l.inputs[t].data, n.inputs[t].data,
                            l.inputs[t].elements * sizeof(float));
    kernel_data_free(&l);
    kernel_data_free(&n);

    /* concat's b does not depend on cols_a. */
    struct kernel_config c1 = make_cfg("concat", DTYPE_FP32, 4, 3, 50);
    struct kernel_config c2 = make_cfg("concat", DTYPE_FP32, 4, 70, 50);
    assert_int_equal(kernel_data_generate(&c1, 5, &l, err, sizeof(err)), 0);
    assert_int_equal(kernel_data_generate(&c2, 5, &n, err, sizeof(err)), 0);
    assert_memory_equal(l.inputs[1].data, n.inputs[1].data, 200 * sizeof(float));
    kernel_data_free(&l);
    kernel_data_free(&n);
}

/* BatchNorm folding with chosen statistics, checked against the arithmetic
 * written out by hand. */
static void test_fold_batchnorm(void **state)
{
    (void)state;
    char err[256];
    struct kernel_config cfg = make_cfg("linear_bn", DTYPE_FP32, 1, 2, 2);
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(&cfg, 1, &kd, err, sizeof(err)), 0);
    assert_int_equal(kd.input_count, 7);
    /* W = [[1, 2], [3, -4]], bias = [0.5, -1] */
    const float w[4] = {1, 2, 3, -4}, bias[2] = {0.5f, -1};
    /* gamma = [3, 0.5], beta = [1, 0], mean = [0.5, 1], var chosen so that
     * var + eps = [4, 0.25] (up to float rounding of var) */
    const float gamma[2] = {3, 0.5f}, beta[2] = {1, 0}, mean[2] = {0.5f, 1};
    const float var[2] = {(float)(4.0 - 1e-5), (float)(0.25 - 1e-5)};
    memcpy(kd.inputs[1].data, w, sizeof(w));
    memcpy(kd.inputs[2].data, bias, sizeof(bias));
    memcpy(kd.inputs[3].data, gamma, sizeof(gamma));
    memcpy(kd.inputs[4].data, beta, sizeof(beta));
    memcpy(kd.inputs[5].data, mean, sizeof(mean));
    memcpy(kd.inputs[6].data, var, sizeof(var));
    assert_int_equal(kernel_data_fold_batchnorm(&cfg, &kd, err, sizeof(err)), 0);
    assert_int_equal(kd.input_count, 3);
    /* s = [3 / 2, 0.5 / 0.5] = [1.5, 1]
     * W' = [[1 * 1.5, 2 * 1.5], [3 * 1, -4 * 1]] = [[1.5, 3], [3, -4]]
     * b' = [(0.5 - 0.5) * 1.5 + 1, (-1 - 1) * 1 + 0] = [1, -2] */
    const float want_w[4] = {1.5f, 3, 3, -4}, want_b[2] = {1, -2};
    for (int i = 0; i < 4; i++)
        assert_float_equal(kd.inputs[1].data[i], want_w[i], 1e-6);
    for (int i = 0; i < 2; i++)
        assert_float_equal(kd.inputs[2].data[i], want_b[i], 1e-6);
    kernel_data_free(&kd);

    /* A var that makes var + eps non-positive is refused, naming it. */
    assert_int_equal(kernel_data_generate(&cfg, 1, &kd, err, sizeof(err)), 0);
    kd.inputs[6].data[1] = -1.0f;
    assert_int_equal(kernel_data_fold_batchnorm(&cfg, &kd, err, sizeof(err)), -1);
    assert_string_equal(err, "linear_bn: BatchNorm var[1] = -1 leaves var + eps not positive");
    kernel_data_free(&kd);

    /* Other kernels: untouched. Data that is not linear_bn's: refused. */
    struct kernel_config lin = make_cfg("linear", DTYPE_FP32, 2, 3, 4);
    assert_int_equal(kernel_data_generate(&lin, 1, &kd, err, sizeof(err)), 0);
    float before = kd.inputs[1].data[0];
    assert_int_equal(kernel_data_fold_batchnorm(&lin, &kd, err, sizeof(err)), 0);
    assert_true(kd.inputs[1].data[0] == before && kd.input_count == 3);
    struct kernel_config bn = make_cfg("linear_bn_relu", DTYPE_FP32, 2, 3, 4);
    assert_int_equal(kernel_data_fold_batchnorm(&bn, &kd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs 7 inputs"));
    kernel_data_free(&kd);
    assert_int_equal(kernel_data_fold_batchnorm(NULL, &kd, err, sizeof(err)), -1);
}

static void test_half_exact_cases(void **state)
{
    (void)state;
    assert_int_equal(half_from_float(0.0f), 0x0000);
    assert_int_equal(half_from_float(-0.0f), 0x8000);
    assert_int_equal(half_from_float(1.0f), 0x3c00);
    assert_int_equal(half_from_float(-2.0f), 0xc000);
    assert_int_equal(half_from_float(0.5f), 0x3800);
    assert_int_equal(half_from_float(65504.0f), 0x7bff);
    assert_int_equal(half_from_float(nextafterf(65520.0f, 0.0f)), 0x7bff);
    assert_int_equal(half_from_float(65520.0f), 0x7c00); /* tie goes to "even" 2^16: inf */
    assert_int_equal(half_from_float(-65520.0f), 0xfc00);
    assert_int_equal(half_from_float(1e6f), 0x7c00);
    assert_int_equal(half_from_float(INFINITY), 0x7c00);
    assert_int_equal(half_from_float(-INFINITY), 0xfc00);
    uint16_t nan = half_from_float(NAN);
    assert_int_equal(nan & 0x7c00, 0x7c00);
    assert_true((nan & 0x03ff) != 0);
    /* A signalling NaN whose payload sits in the low bits must stay a NaN. */
    float snan;
    uint32_t snan_bits = 0x7f800001u;
    memcpy(&snan, &snan_bits, sizeof(snan));
    assert_true((half_from_float(snan) & 0x03ff) != 0);

    /* Subnormals: m * 2^-24. */
    assert_int_equal(half_from_float(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(half_from_float(ldexpf(1.0f, -25)), 0x0000); /* tie to even: 0 */
    assert_int_equal(half_from_float(nextafterf(ldexpf(1.0f, -25), 1.0f)), 0x0001);
    assert_int_equal(half_from_float(-ldexpf(1.0f, -25)), 0x8000);
    assert_int_equal(half_from_float(ldexpf(1.5f, -24)), 0x0002); /* tie 1|2 -> 2 */
    assert_int_equal(half_from_float(ldexpf(2.5f, -24)), 0x0002); /* tie 2|3 -> 2 */
    assert_int_equal(half_from_float(1e-8f), 0x0000);
    assert_int_equal(half_from_float(1e-7f), 0x0002); /* 1.68 * 2^-24 */
    assert_int_equal(half_from_float(1e-30f), 0x0000);
    assert_int_equal(half_from_float(ldexpf(1023.0f, -24)), 0x03ff);
    assert_int_equal(half_from_float(ldexpf(1023.5f, -24)), 0x0400); /* into the normals */
    assert_int_equal(half_from_float(ldexpf(1.0f, -14)), 0x0400);

    /* Ties to even among normals (spacing 2^-10 at 1, 2 at 2048). */
    assert_int_equal(half_from_float(1.0f + ldexpf(1.0f, -11)), 0x3c00);
    assert_int_equal(half_from_float(1.0f + ldexpf(3.0f, -11)), 0x3c02);
    assert_int_equal(half_from_float(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
    assert_int_equal(half_from_float(2049.0f), 0x6800);
    assert_int_equal(half_from_float(2051.0f), 0x6802);
    assert_int_equal(half_from_float(2050.0f), 0x6801);
    assert_int_equal(half_from_float(ldexpf(2047.0f, -11)), 0x3bff); /* 1 - 2^-11 exact */
    assert_int_equal(half_from_float(1.0f - ldexpf(1.0f, -12)), 0x3c00); /* tie up to 1 */

    /* And back. */
    assert_true(half_to_float(0x0001) == ldexpf(1.0f, -24));
    assert_true(half_to_float(0x03ff) == ldexpf(1023.0f, -24));
    assert_true(half_to_float(0x0400) == ldexpf(1.0f, -14));
    assert_true(half_to_float(0x3c00) == 1.0f);
    assert_true(half_to_float(0x3555) == 0x155p-12f + 0.25f);
    assert_true(half_to_float(0x7bff) == 65504.0f);
    assert_true(half_to_float(0xc000) == -2.0f);
    assert_true(isinf(half_to_float(0x7c00)) && half_to_float(0x7c00) > 0);
    assert_true(isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0);
    assert_true(isnan(half_to_float(0x7e00)));
    assert_true(isnan(half_to_float(0xfc01)));
    assert_int_equal(bits(half_to_float(0x8000)), 0x80000000u);
    assert_int_equal(bits(half_to_float(0x0000)), 0x00000000u);
}

static void test_half_round_trip_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        float f = half_to_float((uint16_t)h);
        uint16_t back = half_from_float(f);
        bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0;
        if (is_nan) {
            assert_true(isnan(f));
            assert_int_equal(back & 0x8000, h & 0x8000);
            assert_int_equal(back & 0x7c00, 0x7c00);
            assert_true((back & 0x03ff) != 0);
        } else {
            if (back != h)
                fail_msg("half 0x%04x -> %a -> 0x%04x", h, (double)f, back);
        }
    }
}

/* Between every two neighbouring finite halves a < b of either sign: the exact
 * midpoint rounds to the one with the even significand, anything just inside
 * rounds to the nearer one. Covers every exponent, subnormals included. */
static void test_half_rounding_boundaries(void **state)
{
    (void)state;
    for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
        for (uint32_t h = 0; h < 0x7bff; h++) {
            uint16_t a = (uint16_t)(sign | h), b = (uint16_t)(sign | (h + 1));
            float fa = half_to_float(a), fb = half_to_float(b);
            float mid = (fa + fb) / 2; /* exact: 12 significant bits fit a float */
            uint16_t even = (h & 1) ? b : a;
            if (half_from_float(mid) != even)
                fail_msg("midpoint %a of 0x%04x/0x%04x -> 0x%04x", (double)mid, a, b,
                         half_from_float(mid));
            if (half_from_float(nextafterf(mid, fa)) != a ||
                half_from_float(nextafterf(mid, fb)) != b)
                fail_msg("neighbours of midpoint %a of 0x%04x/0x%04x misround", (double)mid, a,
                         b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_linear_inputs),
        cmocka_unit_test(test_layernorm_inputs),
        cmocka_unit_test(test_generate_too_large),
        cmocka_unit_test(test_new_kernel_inputs),
        cmocka_unit_test(test_fold_batchnorm),
        cmocka_unit_test(test_half_exact_cases),
        cmocka_unit_test(test_half_round_trip_all),
        cmocka_unit_test(test_half_rounding_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
