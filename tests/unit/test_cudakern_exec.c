/*
 * test_cudakern_exec.c - the executors and exec_open().
 *
 * The CPU executor is checked against a double-precision reference computed
 * here from the same kernel_data inputs, for every kernel in fp32 (tight) and
 * fp16 (loose: one binary16 rounding of the output). exec_open() is checked for
 * "cpu", the "auto" fallback and the "cuda" failure with a missing plugin, a
 * file that is not a shared object, and a shared object that is not the plugin.
 * When lib/jetprof/libjetprof_cuda.so has been built (make cuda), it is loaded
 * too: without a GPU (this CI) "auto" must fall back with the plugin's reason
 * (never an ABI mismatch: the plugin is built from the same exec.h) and "cuda"
 * must fail; with a GPU the CUDA executor is checked against the same
 * reference, graph replay included, and its memory figures.
 *
 * Memory: the CPU executor's memory_needed must be what prepare really
 * allocates at its peak (counted here independently from kernel_data's
 * tensors), and memory_free must answer from another thread while the runner's
 * thread prepares and releases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cudakern/exec.h"
#include "cudakern/kernel_data.h"

#define PLUGIN_PATH "lib/jetprof/libjetprof_cuda.so"
#define SEED 20260101u

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

static struct kernel_config make_cfg4(const char *kernel, enum dtype d, int64_t a, int64_t b,
                                      int64_t c, int64_t e)
{
    struct kernel_config cfg = make_cfg(kernel, d, a, b, c);
    cfg.params[3] = e;
    return cfg;
}

/* What the kernel sees: the fp32 master value, or its binary16 rounding. */
static double input_value(const struct kernel_config *cfg, float v)
{
    return cfg->dtype == DTYPE_FP16 ? (double)half_to_float(half_from_float(v)) : (double)v;
}

/* softmax of n scores in double, max subtracted. */
static void softmax_double(double *v, size_t n)
{
    double max = v[0], sum = 0;
    for (size_t j = 1; j < n; j++)
        max = v[j] > max ? v[j] : max;
    for (size_t j = 0; j < n; j++) {
        v[j] = exp(v[j] - max);
        sum += v[j];
    }
    for (size_t j = 0; j < n; j++)
        v[j] /= sum;
}

/*
 * The kernel's output computed in double from the same inputs, written from
 * catalog.h's conventions independently of exec_cpu.c. linear_bn*: in fp32 the
 * BatchNorm is applied after the linear layer, unfolded, so the fold itself is
 * checked; in fp16 the kernel can only see the folded weights rounded to
 * binary16, so the reference folds (in double) and rounds the same way.
 */
static double *reference_output(const struct kernel_config *cfg, uint64_t seed, size_t *count)
{
    char err[256];
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(cfg, seed, &kd, err, sizeof(err)), 0);
    double *ref = calloc(kd.output_elements ? kd.output_elements : 1, sizeof(double));
    assert_non_null(ref);
    const float *x = kd.inputs[0].data, *p1 = kd.inputs[1].data;
    const float *p2 = kd.input_count > 2 ? kd.inputs[2].data : NULL;
    const int64_t *p = cfg->params;
    enum kernel_op op = cfg->kernel->op;
#define IN(ptr, i) input_value(cfg, (ptr)[i])
    switch (op) {
    case KOP_LAYERNORM: {
        size_t rows = (size_t)p[0], cols = (size_t)p[1];
        for (size_t r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (size_t c = 0; c < cols; c++)
                mean += IN(x, r * cols + c);
            mean /= (double)cols;
            for (size_t c = 0; c < cols; c++) {
                double d = IN(x, r * cols + c) - mean;
                var += d * d;
            }
            var /= (double)cols;
            for (size_t c = 0; c < cols; c++)
                ref[r * cols + c] =
                    (IN(x, r * cols + c) - mean) / sqrt(var + 1e-5) * IN(p1, c) + IN(p2, c);
        }
        break;
    }
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
    case KOP_LINEAR_BN:
    case KOP_LINEAR_BN_RELU: {
        size_t batch = (size_t)p[0], in = (size_t)p[1], out = (size_t)p[2];
        bool bn = op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU;
        bool half = cfg->dtype == DTYPE_FP16;
        for (size_t b = 0; b < batch; b++) {
            for (size_t o = 0; o < out; o++) {
                double s = 1, v;
                if (bn)
                    s = kd.inputs[3].data[o] / sqrt((double)kd.inputs[6].data[o] + 1e-5);
                if (bn && half) { /* folded, then rounded like the executor's inputs */
                    v = input_value(cfg, (float)(((double)p2[o] - kd.inputs[5].data[o]) * s +
                                                 kd.inputs[4].data[o]));
                    for (size_t i = 0; i < in; i++)
                        v += IN(x, b * in + i) *
                             input_value(cfg, (float)((double)p1[o * in + i] * s));
                } else {
                    v = IN(p2, o);
                    for (size_t i = 0; i < in; i++)
                        v += IN(x, b * in + i) * IN(p1, o * in + i);
                    if (bn) /* BatchNorm after the layer, as the network defines it */
                        v = (v - kd.inputs[5].data[o]) * s + kd.inputs[4].data[o];
                }
                if (op == KOP_LINEAR_RELU || op == KOP_LINEAR_BN_RELU)
                    v = v > 0 ? v : 0;
                else if (op == KOP_LINEAR_GELU)
                    v = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
                ref[b * out + o] = v;
            }
        }
        break;
    }
    case KOP_SOFTMAX: {
        size_t rows = (size_t)p[0], cols = (size_t)p[1];
        for (size_t i = 0; i < rows * cols; i++)
            ref[i] = IN(x, i);
        for (size_t r = 0; r < rows; r++)
            softmax_double(ref + r * cols, cols);
        break;
    }
    case KOP_ADD:
    case KOP_ADD_RELU:
        for (size_t i = 0; i < kd.output_elements; i++) {
            double v = IN(x, i) + IN(p1, i);
            ref[i] = op == KOP_ADD_RELU && v < 0 ? 0 : v;
        }
        break;
    case KOP_ATTENTION: {
        size_t batch = (size_t)p[0], tokens = (size_t)p[1], heads = (size_t)p[2],
               dim = (size_t)p[3];
        double *scores = calloc(tokens, sizeof(double));
        assert_non_null(scores);
        for (size_t b = 0; b < batch; b++) {
            for (size_t h = 0; h < heads; h++) {
                size_t base = (b * heads + h) * tokens * dim; /* [batch][heads][tokens][dim] */
                for (size_t t = 0; t < tokens; t++) {
                    for (size_t j = 0; j < tokens; j++) {
                        double dotp = 0;
                        for (size_t e = 0; e < dim; e++)
                            dotp += IN(x, base + t * dim + e) * IN(p1, base + j * dim + e);
                        scores[j] = dotp / sqrt((double)dim);
                    }
                    softmax_double(scores, tokens);
                    for (size_t e = 0; e < dim; e++) {
                        double v = 0;
                        for (size_t j = 0; j < tokens; j++)
                            v += scores[j] * IN(p2, base + j * dim + e);
                        ref[base + t * dim + e] = v;
                    }
                }
            }
        }
        free(scores);
        break;
    }
    case KOP_TOKENIZER: {
        size_t batch = (size_t)p[0], features = (size_t)p[1], d = (size_t)p[2];
        for (size_t b = 0; b < batch; b++)
            for (size_t f = 0; f < features; f++)
                for (size_t k = 0; k < d; k++)
                    ref[(b * features + f) * d + k] =
                        IN(x, b * features + f) * IN(p1, f * d + k) + IN(p2, f * d + k);
        break;
    }
    case KOP_CONCAT: {
        size_t rows = (size_t)p[0], ca = (size_t)p[1], cb = (size_t)p[2];
        for (size_t r = 0; r < rows; r++) {
            for (size_t c = 0; c < ca; c++)
                ref[r * (ca + cb) + c] = IN(x, r * ca + c);
            for (size_t c = 0; c < cb; c++)
                ref[r * (ca + cb) + ca + c] = IN(p1, r * cb + c);
        }
        break;
    }
    }
#undef IN
    *count = kd.output_elements;
    kernel_data_free(&kd);
    return ref;
}

/* Prepares cfg on ex, runs it, compares with the reference. `gpu` loosens the
 * GELU tolerance: cuBLASLt may evaluate its tanh with the hardware
 * approximation (relative error about 2^-11), which the CPU oracle does not. */
static void check_against_reference(struct executor *ex, const struct kernel_config *cfg,
                                    unsigned launches, bool gpu)
{
    char err[512] = "";
    size_t n;
    double *ref = reference_output(cfg, SEED, &n);
    assert_int_equal(catalog_output_elements(cfg), n);
    if (exec_prepare(ex, cfg, SEED, err, sizeof(err)) != 0)
        fail_msg("prepare %s: %s", cfg->kernel->name, err);
    double elapsed_us = -1;
    if (exec_run(ex, launches, &elapsed_us, err, sizeof(err)) != 0)
        fail_msg("run %s: %s", cfg->kernel->name, err);
    assert_true(elapsed_us > 0);
    float *got = malloc(n * sizeof(float));
    assert_non_null(got);
    if (exec_read_output(ex, got, n, err, sizeof(err)) != 0)
        fail_msg("read_output %s: %s", cfg->kernel->name, err);

    /* fp32: float accumulation of order-1 terms. fp16: one binary16 rounding of
     * the output (relative 2^-11) dominates. */
    double rel = cfg->dtype == DTYPE_FP16 ? 2e-3 : 2e-5;
    double abs_tol = cfg->dtype == DTYPE_FP16 ? 2e-4 : 2e-5;
    /* GPU: cuBLASLt's GELU and fast exp (__expf) in softmax and attention carry
     * about 2^-11 relative error, which the CPU oracle does not. */
    enum kernel_op op = cfg->kernel->op;
    if (gpu && (op == KOP_LINEAR_GELU || op == KOP_SOFTMAX || op == KOP_ATTENTION)) {
        rel = 3e-3;
        abs_tol = 1e-3;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > abs_tol + rel * fabs(ref[i]))
            fail_msg("%s %s element %zu: got %.9g, reference %.9g", cfg->kernel->name,
                     dtype_name(cfg->dtype), i, (double)got[i], ref[i]);
        if (op == KOP_LINEAR_RELU || op == KOP_LINEAR_BN_RELU || op == KOP_ADD_RELU)
            assert_true(got[i] >= 0.0f);
        assert_true(isfinite(got[i]));
    }
    free(got);
    free(ref);
}

static const struct {
    const char *kernel;
    int64_t p[4];
} oracle_cases[] = {
    {"linear", {5, 37, 19}},
    {"linear", {1, 1, 1}},
    {"linear_relu", {7, 64, 33}},
    {"linear_relu", {3, 5, 2}},
    {"linear_gelu", {9, 48, 17}},
    {"linear_gelu", {2, 129, 3}},
    {"layernorm", {7, 33}},
    {"layernorm", {3, 1000}},
    {"layernorm", {4, 2}},
    {"linear_bn", {5, 37, 19}},
    {"linear_bn", {1, 1, 1}},
    {"linear_bn_relu", {7, 64, 33}},
    {"softmax", {7, 33}},
    {"softmax", {3, 1000}},
    {"softmax", {4, 2}},
    {"add", {7, 33}},
    {"add", {1, 1}},
    {"add_relu", {5, 130}},
    {"attention", {2, 7, 3, 16}},  /* batch, tokens, heads, head_dim */
    {"attention", {1, 1, 1, 1}},
    {"attention", {1, 33, 2, 64}},
    {"tokenizer", {5, 7, 16}},
    {"tokenizer", {1, 1, 1}},
    {"concat", {5, 7, 3}},
    {"concat", {1, 1, 1}},
};

static struct kernel_config oracle_cfg(size_t i, enum dtype d)
{
    return make_cfg4(oracle_cases[i].kernel, d, oracle_cases[i].p[0], oracle_cases[i].p[1],
                     oracle_cases[i].p[2], oracle_cases[i].p[3]);
}

static void test_cpu_matches_reference(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(oracle_cases) / sizeof(oracle_cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg = oracle_cfg(i, (enum dtype)d);
            check_against_reference(ex, &cfg, 2, false);
        }
    }
    exec_close(ex);
}

/* The default measurement shape: correct at full size too (and fast enough for
 * the measurement loop; no timing assertion, the machine may be loaded). */
static void test_cpu_reference_shape(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 64, 256, 512);
    check_against_reference(ex, &cfg, 1, false);
    cfg = make_cfg("linear_gelu", DTYPE_FP16, 64, 256, 512);
    check_against_reference(ex, &cfg, 1, false);
    exec_close(ex);
}

static void test_relu_clamps(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    static float out[16 * 64];
    double us;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP16, 16, 32, 64);
    assert_int_equal(exec_prepare(ex, &cfg, 3, err, sizeof(err)), 0);
    /* Before the first run the output is defined: zeros. */
    assert_int_equal(exec_read_output(ex, out, 16 * 64, err, sizeof(err)), 0);
    for (size_t i = 0; i < 16 * 64; i++)
        assert_true(out[i] == 0.0f);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof(err)), 0);
    assert_int_equal(exec_read_output(ex, out, 16 * 64, err, sizeof(err)), 0);
    size_t zeros = 0, positive = 0;
    for (size_t i = 0; i < 16 * 64; i++) {
        assert_true(out[i] >= 0.0f);
        zeros += out[i] == 0.0f;
        positive += out[i] > 0.0f;
    }
    /* Symmetric inputs: about half the pre-activations are negative. */
    assert_true(zeros > 16 * 64 / 4 && positive > 16 * 64 / 4);
    exec_close(ex);
}

static void test_cpu_errors_and_lifecycle(void **state)
{
    (void)state;
    char err[512];
    struct executor *ex;
    double us = 0;
    float out[64];
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    assert_null(ex->dl_handle);

    /* Nothing prepared yet. */
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no configuration prepared"));
    assert_int_equal(exec_read_output(ex, out, 1, err, sizeof(err)), -1);

    /* Invalid configuration: the catalogue's message, nothing prepared. */
    struct kernel_config bad = make_cfg("linear", DTYPE_FP32, 0, 4, 4);
    assert_int_equal(exec_prepare(ex, &bad, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'batch' = 0 is outside linear's range [1, 65536]");
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof(err)), -1);

    struct kernel_config lin = make_cfg("linear_relu", DTYPE_FP32, 4, 8, 16);
    assert_int_equal(exec_prepare(ex, &lin, 1, err, sizeof(err)), 0);
    assert_int_equal(exec_run(ex, 0, &us, err, sizeof(err)), -1);
    assert_string_equal(err, "launches must be at least 1");
    assert_int_equal(exec_run(ex, 50, &us, err, sizeof(err)), 0);
    assert_true(us > 0);
    assert_int_equal(exec_read_output(ex, out, 65, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "asked for 65 output elements but linear_relu has 64"));
    assert_int_equal(exec_read_output(ex, NULL, 4, err, sizeof(err)), -1);
    assert_int_equal(exec_read_output(ex, out, 0, err, sizeof(err)), 0);
    assert_int_equal(exec_read_output(ex, out, 64, err, sizeof(err)), 0);
    for (int i = 0; i < 64; i++)
        assert_true(out[i] >= 0.0f);

    /* Prepare again replaces: a layernorm of another size, checked in full. */
    struct kernel_config ln = make_cfg("layernorm", DTYPE_FP16, 3, 10, 0);
    check_against_reference(ex, &ln, 3, false);
    assert_int_equal(exec_read_output(ex, out, 31, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "but layernorm has 30"));

    /* A failed prepare leaves nothing prepared. */
    assert_int_equal(exec_prepare(ex, &bad, 1, err, sizeof(err)), -1);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof(err)), -1);

    /* Release, then prepare works again; close with a prepared config frees it. */
    assert_int_equal(exec_prepare(ex, &lin, 1, err, sizeof(err)), 0);
    exec_release(ex);
    assert_int_equal(exec_read_output(ex, out, 1, err, sizeof(err)), -1);
    assert_int_equal(exec_prepare(ex, &lin, 1, err, sizeof(err)), 0);
    exec_close(ex);
    exec_close(NULL);
}

/* Small random configurations of every kernel in both dtypes against the
 * double reference. The generator is seeded, so a failure reproduces. */
static void test_cpu_random_configs(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    uint64_t lcg = 0x243F6A8885A308D3ull;
    for (size_t k = 0; k < catalog_count(); k++) {
        const struct catalog_kernel *kernel = catalog_at(k);
        for (int round = 0; round < 6; round++) {
            struct kernel_config cfg;
            memset(&cfg, 0, sizeof(cfg));
            cfg.kernel = kernel;
            cfg.dtype = (enum dtype)(round % DTYPE_COUNT);
            for (unsigned i = 0; i < kernel->param_count; i++) {
                lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
                /* up to 24 above the minimum: small, but past every edge case */
                int64_t span = kernel->params[i].max - kernel->params[i].min + 1;
                if (span > 24)
                    span = 24;
                cfg.params[i] = kernel->params[i].min + (int64_t)((lcg >> 33) % (uint64_t)span);
            }
            check_against_reference(ex, &cfg, 1, false);
        }
    }
    exec_close(ex);
}

/* Runs cfg through exec_cpu_compute on the given inputs; fails on error. */
static void compute(const struct kernel_config *cfg, unsigned n, const float *const in[],
                    float *out)
{
    char err[256];
    if (exec_cpu_compute(cfg, n, in, out, err, sizeof(err)) != 0)
        fail_msg("exec_cpu_compute %s: %s", cfg->kernel->name, err);
}

static void expect_floats(const char *what, const float *got, const float *want, size_t n,
                          double tol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= tol))
            fail_msg("%s element %zu: got %.9g, want %.9g", what, i, (double)got[i],
                     (double)want[i]);
}

/* Every kernel on tiny inputs chosen so the answer can be written out by hand. */
static void test_cpu_hand_computed(void **state)
{
    (void)state;
    float out[32];

    /* softmax, rows = 3, cols = 3:
     *   [0, ln 2, ln 3]    -> e^x = [1, 2, 3], sum 6    -> [1/6, 2/6, 3/6]
     *   [1000, 1000, 1000] -> equal                     -> [1/3, 1/3, 1/3]
     *                         (exp(1000) overflows: only with the max subtracted)
     *   [-1000, 0, -1000]  -> e^(x - 0) = [0, 1, 0]     -> [0, 1, 0] */
    {
        struct kernel_config cfg = make_cfg("softmax", DTYPE_FP32, 3, 3, 0);
        const float x[9] = {0, (float)log(2.0), (float)log(3.0), 1000, 1000, 1000, -1000, 0,
                            -1000};
        const float want[9] = {1 / 6.0f, 2 / 6.0f, 3 / 6.0f, 1 / 3.0f, 1 / 3.0f,
                               1 / 3.0f, 0,        1,        0};
        const float *in[] = {x};
        compute(&cfg, 1, in, out);
        expect_floats("softmax", out, want, 9, 1e-6);
    }

    /* add and add_relu, 2 x 2: a = [1, -2, 0.5, 3], b = [2, 1, -0.5, -4]
     *   a + b = [3, -1, 0, -1]; relu -> [3, 0, 0, 0] */
    {
        const float a[4] = {1, -2, 0.5f, 3}, b[4] = {2, 1, -0.5f, -4};
        const float *in[] = {a, b};
        const float want_add[4] = {3, -1, 0, -1}, want_relu[4] = {3, 0, 0, 0};
        struct kernel_config cfg = make_cfg("add", DTYPE_FP32, 2, 2, 0);
        compute(&cfg, 2, in, out);
        expect_floats("add", out, want_add, 4, 0);
        cfg = make_cfg("add_relu", DTYPE_FP32, 2, 2, 0);
        compute(&cfg, 2, in, out);
        expect_floats("add_relu", out, want_relu, 4, 0);
    }

    /* add in fp16: binary16(0.1) = 1638 * 2^-14 = 0.0999755859375, binary16(0.2) =
     * 1638 * 2^-13 = 0.199951171875; their sum 4914 * 2^-14 = 1228.5 * 2^-12 lies
     * exactly between two halves of [0.25, 0.5) (spacing 2^-12): ties to even,
     * 1228 * 2^-12 = 0.2998046875. */
    {
        const float a[1] = {0.1f}, b[1] = {0.2f};
        const float *in[] = {a, b};
        struct kernel_config cfg = make_cfg("add", DTYPE_FP16, 1, 1, 0);
        compute(&cfg, 2, in, out);
        assert_true(out[0] == 0.2998046875f);
    }

    /* concat, rows = 2, cols_a = 1, cols_b = 2: a = [1; 2], b = [3, 4; 5, 6]
     *   -> [1, 3, 4; 2, 5, 6] */
    {
        const float a[2] = {1, 2}, b[4] = {3, 4, 5, 6};
        const float *in[] = {a, b};
        const float want[6] = {1, 3, 4, 2, 5, 6};
        struct kernel_config cfg = make_cfg("concat", DTYPE_FP32, 2, 1, 2);
        compute(&cfg, 2, in, out);
        expect_floats("concat", out, want, 6, 0);
    }

    /* tokenizer, batch = 2, features = 2, d = 2:
     *   x = [[1, 2], [-1, 0.5]], W = [[1, 2], [3, 4]], bias = [[0.1, 0.2], [0.3, 0.4]]
     *   y[0][0] =  1 * [1, 2] + [0.1, 0.2] = [1.1, 2.2]
     *   y[0][1] =  2 * [3, 4] + [0.3, 0.4] = [6.3, 8.4]
     *   y[1][0] = -1 * [1, 2] + [0.1, 0.2] = [-0.9, -1.8]
     *   y[1][1] = .5 * [3, 4] + [0.3, 0.4] = [1.8, 2.4] */
    {
        const float x[4] = {1, 2, -1, 0.5f}, w[4] = {1, 2, 3, 4},
                    bias[4] = {0.1f, 0.2f, 0.3f, 0.4f};
        const float *in[] = {x, w, bias};
        const float want[8] = {1.1f, 2.2f, 6.3f, 8.4f, -0.9f, -1.8f, 1.8f, 2.4f};
        struct kernel_config cfg = make_cfg("tokenizer", DTYPE_FP32, 2, 2, 2);
        compute(&cfg, 3, in, out);
        expect_floats("tokenizer", out, want, 8, 1e-6);
    }

    /* attention with one token: softmax over one score is 1, so y = v exactly,
     * whatever q and k are (batch 1, tokens 1, heads 2, head_dim 3). */
    {
        const float q[6] = {5, -3, 2, 0.5f, 7, -1}, k[6] = {1, 2, 3, -4, 5, -6},
                    v[6] = {0.25f, -1.5f, 3, 4, -0.125f, 9};
        const float *in[] = {q, k, v};
        struct kernel_config cfg = make_cfg4("attention", DTYPE_FP32, 1, 1, 2, 3);
        compute(&cfg, 3, in, out);
        expect_floats("attention (1 token)", out, v, 6, 0);
    }

    /* attention, batch 1, tokens 2, heads 1, head_dim 4 (scale 1/sqrt(4) = 1/2):
     *   q0 = [1, 1, 0, 0], q1 = [0, 0, 0, 0], k0 = [0, 0, 0, 0], k1 = [ln 3, ln 3, 0, 0]
     *   v0 = [10, 0, 1, 1], v1 = [2, 4, 1, -1]
     *   t = 0: scores [0, 2 ln 3 / 2] = [0, ln 3] -> p = [1/4, 3/4]
     *          y0 = [10/4 + 6/4, 0 + 3, 1/4 + 3/4, 1/4 - 3/4] = [4, 3, 1, -0.5]
     *   t = 1: scores [0, 0] -> p = [1/2, 1/2]
     *          y1 = [6, 2, 1, 0] */
    {
        const float l3 = (float)log(3.0);
        const float q[8] = {1, 1, 0, 0, 0, 0, 0, 0}, k[8] = {0, 0, 0, 0, l3, l3, 0, 0},
                    v[8] = {10, 0, 1, 1, 2, 4, 1, -1};
        const float *in[] = {q, k, v};
        const float want[8] = {4, 3, 1, -0.5f, 6, 2, 1, 0};
        struct kernel_config cfg = make_cfg4("attention", DTYPE_FP32, 1, 2, 1, 4);
        compute(&cfg, 3, in, out);
        expect_floats("attention (2 tokens)", out, want, 8, 1e-5);
    }

    /* linear_bn, batch 1, in 2, out 2, eps 1e-5:
     *   x = [1, -1], W = [[1, 2], [3, -4]], bias = [0.5, -1]
     *   gamma = [3, 0.5], beta = [1, 0], mean = [0.5, 1], var + eps = [4, 0.25]
     *   s = gamma / sqrt(var + eps) = [3/2, 0.5/0.5] = [1.5, 1]
     *   folded: W' = [[1.5, 3], [3, -4]], b' = [(0.5 - 0.5) 1.5 + 1, (-1 - 1) 1 + 0] = [1, -2]
     *   y = x W'^T + b' = [1.5 - 3 + 1, 3 + 4 - 2] = [-0.5, 5]
     *   (unfolded: x W^T + bias = [-0.5, 6]; BN: [(-0.5 - 0.5) 1.5 + 1, (6 - 1) 1 + 0])
     *   linear_bn_relu: [0, 5] */
    {
        const float x[2] = {1, -1}, w[4] = {1, 2, 3, -4}, bias[2] = {0.5f, -1};
        const float gamma[2] = {3, 0.5f}, beta[2] = {1, 0}, mean[2] = {0.5f, 1};
        const float var[2] = {(float)(4.0 - 1e-5), (float)(0.25 - 1e-5)};
        const float *in[] = {x, w, bias, gamma, beta, mean, var};
        const float want[2] = {-0.5f, 5}, want_relu[2] = {0, 5};
        struct kernel_config cfg = make_cfg("linear_bn", DTYPE_FP32, 1, 2, 2);
        compute(&cfg, 7, in, out);
        expect_floats("linear_bn", out, want, 2, 1e-5);
        cfg = make_cfg("linear_bn_relu", DTYPE_FP32, 1, 2, 2);
        compute(&cfg, 7, in, out);
        expect_floats("linear_bn_relu", out, want_relu, 2, 1e-5);
        /* fp16: every value above is exact in binary16 */
        cfg = make_cfg("linear_bn_relu", DTYPE_FP16, 1, 2, 2);
        compute(&cfg, 7, in, out);
        expect_floats("linear_bn_relu fp16", out, want_relu, 2, 1e-3);
    }

    /* layernorm, 1 x 4: x = [1, 2, 3, 4], mean 2.5, var (2.25 + 0.25) * 2 / 4 = 1.25
     *   (x - mean) / sqrt(1.25 + 1e-5) = [-1.5, -0.5, 0.5, 1.5] / 1.118038...
     *   gamma = [1, 2, 1, 1], beta = [0, 0, 1, 0] */
    {
        const float x[4] = {1, 2, 3, 4}, gamma[4] = {1, 2, 1, 1}, beta[4] = {0, 0, 1, 0};
        const float *in[] = {x, gamma, beta};
        double sd = sqrt(1.25 + 1e-5);
        const float want[4] = {(float)(-1.5 / sd), (float)(2 * -0.5 / sd),
                               (float)(0.5 / sd + 1), (float)(1.5 / sd)};
        struct kernel_config cfg = make_cfg("layernorm", DTYPE_FP32, 1, 4, 0);
        compute(&cfg, 3, in, out);
        expect_floats("layernorm", out, want, 4, 1e-6);
    }

    /* linear_relu, batch 1, in 2, out 2: x = [1, 2], W = [[1, 1], [-1, -1]],
     * bias = [0.5, 0.5] -> [3.5, relu(-2.5)] = [3.5, 0] */
    {
        const float x[2] = {1, 2}, w[4] = {1, 1, -1, -1}, bias[2] = {0.5f, 0.5f};
        const float *in[] = {x, w, bias};
        const float want[2] = {3.5f, 0};
        struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 1, 2, 2);
        compute(&cfg, 3, in, out);
        expect_floats("linear_relu", out, want, 2, 0);
    }
}

/* The executor's launches and exec_cpu_compute are one computation: equal bit
 * for bit on the generated inputs, every kernel and dtype. So the hand-computed
 * checks above hold for what the daemon measures. */
static void test_cpu_compute_matches_executor(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(oracle_cases) / sizeof(oracle_cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg = oracle_cfg(i, (enum dtype)d);
            struct kernel_data kd;
            assert_int_equal(kernel_data_generate(&cfg, SEED, &kd, err, sizeof(err)), 0);
            const float *in[KERNEL_DATA_MAX_TENSORS];
            for (unsigned t = 0; t < kd.input_count; t++)
                in[t] = kd.inputs[t].data;
            size_t n = kd.output_elements;
            float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
            assert_non_null(want);
            assert_non_null(got);
            compute(&cfg, kd.input_count, in, want);
            double us;
            assert_int_equal(exec_prepare(ex, &cfg, SEED, err, sizeof(err)), 0);
            assert_int_equal(exec_run(ex, 1, &us, err, sizeof(err)), 0);
            assert_int_equal(exec_read_output(ex, got, n, err, sizeof(err)), 0);
            assert_memory_equal(got, want, n * sizeof(float));
            free(want);
            free(got);
            kernel_data_free(&kd);
        }
    }
    exec_close(ex);

    /* Errors: an invalid config, the wrong number of tensors, missing buffers. */
    float out[4];
    const float a[4] = {0};
    const float *in[] = {a, a, a};
    struct kernel_config bad = make_cfg("softmax", DTYPE_FP32, 2, 1, 0);
    assert_int_equal(exec_cpu_compute(&bad, 1, in, out, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'cols' = 1 is outside softmax's range [2, 65536]");
    struct kernel_config sm = make_cfg("softmax", DTYPE_FP32, 2, 2, 0);
    assert_int_equal(exec_cpu_compute(&sm, 2, in, out, err, sizeof(err)), -1);
    assert_string_equal(err, "softmax takes 1 input tensors, got 2");
    assert_int_equal(exec_cpu_compute(&sm, 1, in, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no input/output buffers"));
    const float *holes[] = {a, NULL};
    struct kernel_config add = make_cfg("add", DTYPE_FP32, 2, 2, 0);
    assert_int_equal(exec_cpu_compute(&add, 2, holes, out, err, sizeof(err)), -1);
    assert_string_equal(err, "add input 1 is NULL");
    assert_int_equal(exec_cpu_compute(NULL, 0, in, out, err, sizeof(err)), -1);
}

static void test_cpu_info(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    struct exec_info info;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    exec_info(ex, &info);
    assert_string_equal(info.name, "cpu");
    assert_false(info.is_gpu);
    assert_true(strncmp(info.device, "CPU: ", 5) == 0);
    assert_non_null(strstr(info.device, " cores)"));
    assert_true(info.mem_total_bytes > 0);
    assert_true(info.mem_free_bytes > 0 && info.mem_free_bytes <= info.mem_total_bytes);
    assert_string_equal(info.runtime_version, "");
    exec_close(ex);
}


/* Bytes the CPU executor allocates for cfg at the peak of prepare, counted from
 * the tensors kernel_data_generate really makes. First every input's fp32 master
 * copy exists (linear_bn*: all seven, before the fold frees gamma, beta, mean and
 * var); then, with the masters of the tensors the kernel reads (x, weight, bias
 * for linear_bn*) still alive, for fp16 their binary16 copy and the fp32 scratch
 * they are widened into, the output in fp32 (plus binary16 for fp16) and the
 * kernel's scratch (attention: one row of `tokens` scores). The larger stage. */
static uint64_t cpu_peak_bytes(const struct kernel_config *cfg)
{
    char err[256];
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(cfg, 1, &kd, err, sizeof(err)), 0);
    uint64_t all = 0, run = 0;
    enum kernel_op op = cfg->kernel->op;
    unsigned run_count = op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU ? 3 : kd.input_count;
    for (unsigned t = 0; t < kd.input_count; t++) {
        all += kd.inputs[t].elements;
        if (t < run_count)
            run += kd.inputs[t].elements;
    }
    uint64_t out = kd.output_elements;
    kernel_data_free(&kd);
    uint64_t scratch = op == KOP_ATTENTION ? (uint64_t)cfg->params[1] * 4 : 0;
    uint64_t stage2 = cfg->dtype == DTYPE_FP16 ? run * (4 + 2 + 4) + out * (4 + 2) + scratch
                                               : run * 4 + out * 4 + scratch;
    return all * 4 > stage2 ? all * 4 : stage2;
}

static void test_cpu_memory_needed(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    const struct kernel_config cases[] = {
        make_cfg("linear", DTYPE_FP32, 64, 256, 512),
        make_cfg("linear_gelu", DTYPE_FP16, 64, 256, 512),
        make_cfg("layernorm", DTYPE_FP32, 100, 768, 0),
        make_cfg("layernorm", DTYPE_FP16, 100, 768, 0),
        make_cfg("linear_bn", DTYPE_FP32, 64, 256, 512),
        make_cfg("linear_bn_relu", DTYPE_FP16, 64, 256, 512),
        make_cfg("softmax", DTYPE_FP16, 100, 768, 0),
        make_cfg("add", DTYPE_FP32, 100, 768, 0),
        make_cfg("add_relu", DTYPE_FP16, 100, 768, 0),
        make_cfg4("attention", DTYPE_FP32, 4, 65, 8, 64),
        make_cfg4("attention", DTYPE_FP16, 4, 65, 8, 64),
        make_cfg("tokenizer", DTYPE_FP16, 256, 16, 192),
        make_cfg("concat", DTYPE_FP32, 64, 128, 32),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t needed = exec_memory_needed(ex, &cases[i]);
        assert_int_equal(needed, cpu_peak_bytes(&cases[i]));
        /* At least the catalogue's buffers in the dtype (without the GPU's
         * cuBLASLt workspace), which is what admission used to compare; for
         * fp16 far more. */
        struct kernel_features f;
        catalog_features(&cases[i], &f);
        uint64_t buffers = f.memory_bytes;
        enum kernel_op op = cases[i].kernel->op;
        if (op == KOP_LINEAR || op == KOP_LINEAR_RELU || op == KOP_LINEAR_GELU ||
            op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU)
            buffers -= CATALOG_LINEAR_WORKSPACE_BYTES;
        assert_true(needed >= buffers);
        if (cases[i].dtype == DTYPE_FP16)
            assert_true(needed >= 3 * buffers); /* at least 10 bytes per 2-byte input element */
    }
    /* linear fp16 batch 4096, 4096 -> 8192: about 4 times the 160 MiB its fp16
     * buffers take. */
    struct kernel_config big = make_cfg("linear", DTYPE_FP16, 4096, 4096, 8192);
    uint64_t in = 4096ull * 4096 + 8192ull * 4096 + 8192, out = 4096ull * 8192;
    assert_int_equal(exec_memory_needed(ex, &big), in * 10 + out * 6);
    /* The largest configurations do not wrap around to something small. */
    struct kernel_config huge = make_cfg("linear", DTYPE_FP16, 65536, 65536, 65536);
    uint64_t sq = 65536ull * 65536ull;
    assert_int_equal(exec_memory_needed(ex, &huge), (2 * sq + 65536) * 10 + sq * 6);
    /* Written out: linear_bn fp32 batch 2, in 3, out 4: stage 1 = 4 * (x 6 + W 12
     * + bias 4 + 4 BatchNorm vectors of 4) = 152 > stage 2 = 4 * (6 + 12 + 4) + 4 * 8
     * = 120. attention fp16 batch 1, tokens 8, heads 1, head_dim 2: stage 2 =
     * 10 * 3 * 16 (q, k, v) + 6 * 16 (y) + 4 * 8 (scores) = 608. */
    struct kernel_config bn = make_cfg("linear_bn", DTYPE_FP32, 2, 3, 4);
    assert_int_equal(exec_memory_needed(ex, &bn), 152);
    struct kernel_config att = make_cfg4("attention", DTYPE_FP16, 1, 8, 1, 2);
    assert_int_equal(exec_memory_needed(ex, &att), 608);
    /* The largest attention does not wrap: 3 * 2^38 inputs, 2^38 outputs. */
    struct kernel_config att_max = make_cfg4("attention", DTYPE_FP16, 4096, 4096, 64, 256);
    uint64_t n38 = 1ull << 38;
    assert_int_equal(exec_memory_needed(ex, &att_max), 3 * n38 * 10 + n38 * 6 + 4096 * 4);
    struct kernel_config none = {0};
    assert_true(exec_memory_needed(ex, &none) == UINT64_MAX);
    exec_close(ex);
}

struct free_reader {
    struct executor *ex;
    int calls, failures;
    uint64_t total;
};

static void *read_free(void *arg)
{
    struct free_reader *r = arg;
    for (r->calls = 0; r->calls < 300; r->calls++) {
        uint64_t free_bytes = 0;
        if (exec_memory_free(r->ex, &free_bytes) != 0 || free_bytes == 0 ||
            free_bytes > r->total)
            r->failures++;
    }
    return NULL;
}

/* memory_free from another thread while this one prepares and releases, as an
 * HTTP thread does while the runner measures (the SAN build checks the memory
 * accesses). */
static void test_cpu_memory_free(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    struct exec_info info;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    exec_info(ex, &info);
    uint64_t free_bytes = 0;
    assert_int_equal(exec_memory_free(ex, &free_bytes), 0);
    assert_true(free_bytes > 0 && free_bytes <= info.mem_total_bytes);

    struct free_reader r = {.ex = ex, .total = info.mem_total_bytes};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_free, &r), 0);
    struct kernel_config cfg = make_cfg("linear", DTYPE_FP16, 32, 128, 256);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(exec_prepare(ex, &cfg, (uint64_t)i, err, sizeof(err)), 0);
        exec_release(ex);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.calls, 300);
    assert_int_equal(r.failures, 0);
    exec_close(ex);
}

static void test_open_cpu_and_bad_names(void **state)
{
    (void)state;
    char why[512], err[512];
    struct executor *ex = (struct executor *)1;
    assert_int_equal(exec_open("cpu", "/nonexistent/x.so", &ex, why, sizeof(why), err,
                               sizeof(err)),
                     0);
    assert_non_null(ex);
    assert_string_equal(why, "executor cpu: chosen by configuration");
    struct exec_info info;
    exec_info(ex, &info);
    assert_string_equal(info.name, "cpu");
    exec_close(ex);

    assert_int_equal(exec_open("gpu", NULL, &ex, why, sizeof(why), err, sizeof(err)), -1);
    assert_null(ex);
    assert_string_equal(err, "unknown executor 'gpu' (expected auto, cpu or cuda)");
    assert_int_equal(exec_open(NULL, NULL, &ex, why, sizeof(why), err, sizeof(err)), -1);
}

static void test_open_missing_plugin(void **state)
{
    (void)state;
    char why[1024], err[1024];
    struct executor *ex;
    const char *path = "/nonexistent/jetprof/libjetprof_cuda.so";
    assert_int_equal(exec_open("auto", path, &ex, why, sizeof(why), err, sizeof(err)), 0);
    assert_non_null(ex);
    struct exec_info info;
    exec_info(ex, &info);
    assert_string_equal(info.name, "cpu");
    assert_null(ex->dl_handle);
    assert_true(strncmp(why, "executor auto: CUDA executor unavailable (", 42) == 0);
    assert_non_null(strstr(why, path));
    assert_non_null(strstr(why, "); using the CPU executor"));
    exec_close(ex);

    assert_int_equal(exec_open("cuda", path, &ex, why, sizeof(why), err, sizeof(err)), -1);
    assert_null(ex);
    assert_non_null(strstr(err, path));
    assert_true(strncmp(err, "executor cuda: ", 15) == 0);

    /* Empty path: the default next to the executable (build/<tree>/lib/jetprof/). */
    assert_int_equal(exec_open("auto", "", &ex, why, sizeof(why), err, sizeof(err)), 0);
    assert_non_null(strstr(why, "lib/jetprof/libjetprof_cuda.so"));
    exec_info(ex, &info);
    if (!info.is_gpu)
        assert_non_null(strstr(why, "CUDA executor unavailable"));
    exec_close(ex);
}

static void test_open_not_a_plugin(void **state)
{
    (void)state;
    char why[1024], err[1024];
    struct executor *ex;
    char dir[] = "/tmp/jetprof-exec-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/libjetprof_cuda.so", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    assert_int_equal(exec_open("cuda", path, &ex, why, sizeof(why), err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(exec_open("auto", path, &ex, why, sizeof(why), err, sizeof(err)), 0);
    assert_non_null(strstr(why, "CUDA executor unavailable"));
    exec_close(ex);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);

    /* A real shared object that is not the plugin. */
    assert_int_equal(exec_open("cuda", "libm.so.6", &ex, why, sizeof(why), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "libm.so.6 has no jetprof_cuda_abi_version"));
}

static void test_cuda_plugin(void **state)
{
    (void)state;
    if (access(PLUGIN_PATH, F_OK) != 0) {
        print_message("(skipped: %s not built; run make cuda)\n", PLUGIN_PATH);
        skip();
    }
    char why[1024], err[1024];
    struct executor *ex = NULL;
    struct exec_info info;
    assert_int_equal(exec_open("auto", PLUGIN_PATH, &ex, why, sizeof(why), err, sizeof(err)), 0);
    assert_non_null(ex);
    exec_info(ex, &info);
    if (!info.is_gpu) {
        /* No usable GPU here: a fallback with the plugin's own reason. */
        print_message("auto: %s\n", why);
        assert_string_equal(info.name, "cpu");
        /* The plugin was built against this exec.h: never an ABI mismatch. */
        assert_null(strstr(why, "executor ABI"));
        assert_true(strncmp(why, "executor auto: CUDA executor unavailable (" PLUGIN_PATH ": ",
                            42 + strlen(PLUGIN_PATH) + 2) == 0);
        exec_close(ex);
        ex = NULL;
        assert_int_equal(exec_open("cuda", PLUGIN_PATH, &ex, why, sizeof(why), err, sizeof(err)),
                         -1);
        assert_null(ex);
        print_message("cuda: %s\n", err);
        assert_true(strncmp(err, "executor cuda: " PLUGIN_PATH ": ", 15 + strlen(PLUGIN_PATH) + 2) ==
                    0);
        return;
    }

    /* A GPU: the CUDA executor against the same double-precision reference. */
    print_message("auto: %s\n", why);
    assert_string_equal(info.name, "cuda");
    assert_non_null(ex->dl_handle);
    assert_true(info.mem_total_bytes > 0);
    assert_true(info.runtime_version[0] != '\0');
    for (size_t i = 0; i < sizeof(oracle_cases) / sizeof(oracle_cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg = oracle_cfg(i, (enum dtype)d);
            check_against_reference(ex, &cfg, 1, true);
            /* A whole graph chunk plus a tail, then a different tail. */
            check_against_reference(ex, &cfg, 300, true);
            check_against_reference(ex, &cfg, 7, true);
        }
    }
    struct kernel_config big = make_cfg("linear_gelu", DTYPE_FP16, 64, 256, 512);
    check_against_reference(ex, &big, 600, true);

    /* Memory: at least the configuration's own device buffers; free memory
     * readable from another thread too, at most the device's total. */
    struct kernel_features f;
    catalog_features(&big, &f);
    assert_true(exec_memory_needed(ex, &big) >= f.memory_bytes);
    uint64_t free_bytes = 0;
    assert_int_equal(exec_memory_free(ex, &free_bytes), 0);
    assert_true(free_bytes > 0 && free_bytes <= info.mem_total_bytes);
    struct free_reader r = {.ex = ex, .total = info.mem_total_bytes};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_free, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.failures, 0);
    double us = 0;
    assert_int_equal(exec_run(ex, 0, &us, err, sizeof(err)), -1);
    exec_close(ex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_matches_reference),
        cmocka_unit_test(test_cpu_reference_shape),
        cmocka_unit_test(test_cpu_random_configs),
        cmocka_unit_test(test_cpu_hand_computed),
        cmocka_unit_test(test_cpu_compute_matches_executor),
        cmocka_unit_test(test_relu_clamps),
        cmocka_unit_test(test_cpu_errors_and_lifecycle),
        cmocka_unit_test(test_cpu_info),
        cmocka_unit_test(test_cpu_memory_needed),
        cmocka_unit_test(test_cpu_memory_free),
        cmocka_unit_test(test_open_cpu_and_bad_names),
        cmocka_unit_test(test_open_missing_plugin),
        cmocka_unit_test(test_open_not_a_plugin),
        cmocka_unit_test(test_cuda_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
