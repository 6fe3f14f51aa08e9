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

/* What the kernel sees: the fp32 master value, or its binary16 rounding. */
static double input_value(const struct kernel_config *cfg, float v)
{
    return cfg->dtype == DTYPE_FP16 ? (double)half_to_float(half_from_float(v)) : (double)v;
}

/* The kernel's output computed in double from the same inputs. */
static double *reference_output(const struct kernel_config *cfg, uint64_t seed, size_t *count)
{
    char err[256];
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(cfg, seed, &kd, err, sizeof(err)), 0);
    double *ref = calloc(kd.output_elements, sizeof(double));
    assert_non_null(ref);
    const float *x = kd.inputs[0].data, *p1 = kd.inputs[1].data, *p2 = kd.inputs[2].data;
    if (cfg->kernel->op == KOP_LAYERNORM) {
        size_t rows = (size_t)cfg->params[0], cols = (size_t)cfg->params[1];
        for (size_t r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (size_t c = 0; c < cols; c++)
                mean += input_value(cfg, x[r * cols + c]);
            mean /= (double)cols;
            for (size_t c = 0; c < cols; c++) {
                double d = input_value(cfg, x[r * cols + c]) - mean;
                var += d * d;
            }
            var /= (double)cols;
            for (size_t c = 0; c < cols; c++)
                ref[r * cols + c] = (input_value(cfg, x[r * cols + c]) - mean) /
                                        sqrt(var + 1e-5) * input_value(cfg, p1[c]) +
                                    input_value(cfg, p2[c]);
        }
    } else {
        size_t batch = (size_t)cfg->params[0], in = (size_t)cfg->params[1],
               out = (size_t)cfg->params[2];
        for (size_t b = 0; b < batch; b++) {
            for (size_t o = 0; o < out; o++) {
                double v = input_value(cfg, p2[o]);
                for (size_t i = 0; i < in; i++)
                    v += input_value(cfg, x[b * in + i]) * input_value(cfg, p1[o * in + i]);
                if (cfg->kernel->op == KOP_LINEAR_RELU)
                    v = v > 0 ? v : 0;
                else if (cfg->kernel->op == KOP_LINEAR_GELU)
                    v = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
                ref[b * out + o] = v;
            }
        }
    }
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
    if (gpu && cfg->kernel->op == KOP_LINEAR_GELU) {
        rel = 3e-3;
        abs_tol = 1e-3;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > abs_tol + rel * fabs(ref[i]))
            fail_msg("%s %s element %zu: got %.9g, reference %.9g", cfg->kernel->name,
                     dtype_name(cfg->dtype), i, (double)got[i], ref[i]);
        if (cfg->kernel->op == KOP_LINEAR_RELU)
            assert_true(got[i] >= 0.0f);
        assert_true(isfinite(got[i]));
    }
    free(got);
    free(ref);
}

static const struct {
    const char *kernel;
    int64_t a, b, c;
} oracle_cases[] = {
    {"linear", 5, 37, 19},      {"linear", 1, 1, 1},        {"linear_relu", 7, 64, 33},
    {"linear_relu", 3, 5, 2},   {"linear_gelu", 9, 48, 17}, {"linear_gelu", 2, 129, 3},
    {"layernorm", 7, 33, 0},    {"layernorm", 3, 1000, 0},  {"layernorm", 4, 2, 0},
};

static void test_cpu_matches_reference(void **state)
{
    (void)state;
    char err[256];
    struct executor *ex;
    assert_int_equal(exec_cpu_open(&ex, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(oracle_cases) / sizeof(oracle_cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg = make_cfg(oracle_cases[i].kernel, (enum dtype)d,
                                                oracle_cases[i].a, oracle_cases[i].b,
                                                oracle_cases[i].c);
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
 * the tensors kernel_data_generate really makes: the fp32 master copy of every
 * input, for fp16 also its binary16 copy and the fp32 scratch it is widened
 * into (all alive together), and the output in fp32 plus binary16 for fp16. */
static uint64_t cpu_peak_bytes(const struct kernel_config *cfg)
{
    char err[256];
    struct kernel_data kd;
    assert_int_equal(kernel_data_generate(cfg, 1, &kd, err, sizeof(err)), 0);
    uint64_t inputs = 0;
    for (unsigned t = 0; t < kd.input_count; t++)
        inputs += kd.inputs[t].elements;
    uint64_t out = kd.output_elements;
    kernel_data_free(&kd);
    if (cfg->dtype == DTYPE_FP16)
        return inputs * (4 + 2 + 4) + out * (4 + 2);
    return inputs * 4 + out * 4;
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
        if (cases[i].kernel->op != KOP_LAYERNORM)
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
            struct kernel_config cfg = make_cfg(oracle_cases[i].kernel, (enum dtype)d,
                                                oracle_cases[i].a, oracle_cases[i].b,
                                                oracle_cases[i].c);
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
