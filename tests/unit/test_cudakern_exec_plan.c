/*
 * test_cudakern_exec_plan.c - whole-graph plans (exec.h ABI 3): exec_plan_check,
 * exec_plan_memory_needed, exec_prepare_plan / exec_plan_streams, and the CPU
 * executor's prepare_plan.
 *
 * Covered: every check error names what is wrong (and the kernel, by index and
 * name); the plan's memory is the sum of its kernels' figures and saturates;
 * a CPU plan's output is its last kernel's, bit for bit what that kernel gives
 * prepared alone with the same seed (fp32 and fp16, and a plan of the maximum
 * size); plan_streams is 1 with a plan prepared and 0 otherwise; release,
 * a later prepare and a later plan replace a plan cleanly; an executor without
 * prepare_plan says so, after the plan check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudakern/exec.h"

#define SEED 20260107u

static struct kernel_config make_cfg(const char *kernel, enum dtype d, int64_t a, int64_t b,
                                     int64_t c, int64_t e)
{
    struct kernel_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kernel = catalog_find(kernel);
    assert_non_null(cfg.kernel);
    cfg.dtype = d;
    cfg.params[0] = a;
    cfg.params[1] = b;
    cfg.params[2] = c;
    cfg.params[3] = e;
    return cfg;
}

/* A small graph in the shape of a transformer block: two independent kernels
 * at level 1, then one per level; the last is the one read_output reads. */
static void block_plan(struct exec_plan_kernel k[4], enum dtype d)
{
    k[0] = (struct exec_plan_kernel){make_cfg("linear", d, 8, 32, 16, 0), 1};
    k[1] = (struct exec_plan_kernel){make_cfg("layernorm", d, 8, 32, 0, 0), 1};
    k[2] = (struct exec_plan_kernel){make_cfg("add_relu", d, 8, 16, 0, 0), 2};
    k[3] = d == DTYPE_FP16 ? (struct exec_plan_kernel){make_cfg("attention", d, 1, 8, 2, 4), 3}
                           : (struct exec_plan_kernel){make_cfg("linear_gelu", d, 8, 16, 24, 0), 3};
}

static struct executor *open_cpu(void)
{
    char err[256] = "";
    struct executor *ex = NULL;
    if (exec_cpu_open(&ex, err, sizeof err) != 0)
        fail_msg("exec_cpu_open: %s", err);
    return ex;
}

/* cfg prepared alone with seed, run once: its output in a fresh buffer. */
static float *single_output(const struct kernel_config *cfg, uint64_t seed, size_t *count)
{
    struct executor *ex = open_cpu();
    char err[256] = "";
    double us = 0;
    *count = catalog_output_elements(cfg);
    float *out = calloc(*count, sizeof *out);
    assert_non_null(out);
    if (exec_prepare(ex, cfg, seed, err, sizeof err) != 0 ||
        exec_run(ex, 1, &us, err, sizeof err) != 0 ||
        exec_read_output(ex, out, *count, err, sizeof err) != 0)
        fail_msg("%s alone: %s", cfg->kernel->name, err);
    exec_close(ex);
    return out;
}

static bool any_nonzero(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0.0f)
            return true;
    return false;
}

/* exec_plan_check fails and err contains every one of the expected pieces. */
static void expect_check_error(const struct exec_plan *plan, const char *want1, const char *want2)
{
    char err[512] = "";
    assert_int_equal(exec_plan_check(plan, err, sizeof err), -1);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("check error '%s' lacks '%s'%s%s", err, want1, want2 ? " or " : "",
                 want2 ? want2 : "");
}

static void test_plan_check(void **state)
{
    (void)state;
    struct exec_plan_kernel k[4];
    block_plan(k, DTYPE_FP32);
    char err[512] = "";
    struct exec_plan plan = {.count = 4, .kernels = k};
    assert_int_equal(exec_plan_check(&plan, err, sizeof err), 0);

    expect_check_error(NULL, "no plan", NULL);
    plan.count = 0;
    expect_check_error(&plan, "at least one kernel", NULL);
    plan.count = EXEC_PLAN_MAX_KERNELS + 1;
    expect_check_error(&plan, "513 kernels", "512");
    plan.count = 4;
    plan.kernels = NULL;
    expect_check_error(&plan, "no kernel array", NULL);
    plan.kernels = k;

    /* Level 0 names the kernel; so does a level lower than the one before. */
    k[0].level = 0;
    expect_check_error(&plan, "plan kernel 0 (linear): ", "level 0");
    k[0].level = 1;
    k[3].level = 1; /* after level 2 */
    expect_check_error(&plan, "plan kernel 3 (linear_gelu): ", "level 1 after level 2");
    k[3].level = 3;

    /* An invalid configuration: the catalogue's reason, with the index. */
    k[1].cfg.params[1] = 1; /* layernorm cols >= 2 */
    expect_check_error(&plan, "plan kernel 1 (layernorm): ", "parameter 'cols' = 1");
    k[1].cfg.params[1] = 32;
    k[2].cfg.dtype = (enum dtype)7;
    expect_check_error(&plan, "plan kernel 2 (add_relu): ", "dtype 7");
    k[2].cfg.dtype = DTYPE_FP32;
    k[2].cfg.kernel = NULL;
    expect_check_error(&plan, "plan kernel 2 (no kernel): ", "no kernel given");
    k[2].cfg.kernel = catalog_find("add_relu");

    /* Equal levels are fine; the largest plan passes. */
    k[3].level = 2;
    assert_int_equal(exec_plan_check(&plan, err, sizeof err), 0);
    struct exec_plan_kernel *many = calloc(EXEC_PLAN_MAX_KERNELS, sizeof *many);
    assert_non_null(many);
    for (unsigned i = 0; i < EXEC_PLAN_MAX_KERNELS; i++)
        many[i] = (struct exec_plan_kernel){make_cfg("add", DTYPE_FP32, 1, 1, 0, 0), 1 + i / 7};
    struct exec_plan big = {.count = EXEC_PLAN_MAX_KERNELS, .kernels = many};
    assert_int_equal(exec_plan_check(&big, err, sizeof err), 0);
    free(many);
}

static void test_plan_memory_needed(void **state)
{
    (void)state;
    struct executor *ex = open_cpu();
    for (int d = 0; d < DTYPE_COUNT; d++) {
        struct exec_plan_kernel k[4];
        block_plan(k, (enum dtype)d);
        struct exec_plan plan = {.count = 4, .kernels = k};
        uint64_t sum = 0;
        for (int i = 0; i < 4; i++) {
            uint64_t one = exec_memory_needed(ex, &k[i].cfg);
            assert_true(one > 0 && one < UINT64_MAX);
            sum += one;
        }
        assert_true(exec_plan_memory_needed(ex, &plan) == sum);
        plan.count = 1;
        assert_true(exec_plan_memory_needed(ex, &plan) == exec_memory_needed(ex, &k[0].cfg));
    }
    /* A kernel that cannot exist makes the whole plan's figure saturate, as do
     * plans that cannot exist. */
    struct exec_plan_kernel k[2] = {{make_cfg("linear", DTYPE_FP32, 8, 32, 16, 0), 1},
                                    {make_cfg("add", DTYPE_FP32, 8, 8, 0, 0), 1}};
    k[1].cfg.kernel = NULL;
    struct exec_plan plan = {.count = 2, .kernels = k};
    assert_true(exec_plan_memory_needed(ex, &plan) == UINT64_MAX);
    /* Two of the largest fp16 linears: no wrap-around either. */
    struct exec_plan_kernel huge[2] = {{make_cfg("linear", DTYPE_FP16, 65536, 65536, 65536, 0), 1},
                                       {make_cfg("linear", DTYPE_FP16, 65536, 65536, 65536, 0), 2}};
    plan.kernels = huge;
    assert_true(exec_plan_memory_needed(ex, &plan) == 2 * exec_memory_needed(ex, &huge[0].cfg));
    assert_true(exec_plan_memory_needed(ex, NULL) == UINT64_MAX);
    plan.count = 0;
    assert_true(exec_plan_memory_needed(ex, &plan) == UINT64_MAX);
    plan.count = EXEC_PLAN_MAX_KERNELS + 1;
    assert_true(exec_plan_memory_needed(ex, &plan) == UINT64_MAX);
    exec_close(ex);
}

/* The plan's output is its last kernel's, exactly as that kernel alone gives. */
static void check_plan_matches_single(enum dtype d)
{
    struct exec_plan_kernel k[4];
    block_plan(k, d);
    struct exec_plan plan = {.count = 4, .kernels = k};
    size_t n = 0;
    float *alone = single_output(&k[3].cfg, SEED, &n);
    assert_true(any_nonzero(alone, n));

    struct executor *ex = open_cpu();
    char err[512] = "";
    if (exec_prepare_plan(ex, &plan, SEED, err, sizeof err) != 0)
        fail_msg("prepare_plan: %s", err);
    assert_int_equal(exec_plan_streams(ex), 1);
    float *out = calloc(n, sizeof *out);
    assert_non_null(out);
    /* Before the first run the output is zeros, as after a single prepare. */
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_false(any_nonzero(out, n));
    double us = -1.0;
    assert_int_equal(exec_run(ex, 3, &us, err, sizeof err), 0);
    assert_true(us > 0.0);
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_memory_equal(out, alone, n * sizeof *out);
    /* read_output is bounded by the last kernel's output, and says whose. */
    float *more = calloc(n + 1, sizeof *more);
    assert_non_null(more);
    assert_int_equal(exec_read_output(ex, more, n + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, k[3].cfg.kernel->name));
    free(more);
    free(out);
    free(alone);
    exec_close(ex);
}

static void test_cpu_plan_fp32(void **state)
{
    (void)state;
    check_plan_matches_single(DTYPE_FP32);
}

static void test_cpu_plan_fp16(void **state)
{
    (void)state;
    check_plan_matches_single(DTYPE_FP16);
}

/* One launch of a plan is one pass over all its kernels: every kernel's output
 * is there after it. The largest plan, each kernel different: the one that
 * ends it gives what it gives alone. */
static void test_cpu_plan_largest(void **state)
{
    (void)state;
    struct exec_plan_kernel *k = calloc(EXEC_PLAN_MAX_KERNELS, sizeof *k);
    assert_non_null(k);
    for (unsigned i = 0; i < EXEC_PLAN_MAX_KERNELS; i++)
        k[i] = (struct exec_plan_kernel){
            make_cfg(i % 2 ? "add" : "softmax", DTYPE_FP32, 1 + i % 3, 2 + i % 5, 0, 0),
            1 + i / 16};
    struct exec_plan plan = {.count = EXEC_PLAN_MAX_KERNELS, .kernels = k};
    const struct kernel_config *last = &k[EXEC_PLAN_MAX_KERNELS - 1].cfg;
    size_t n = 0;
    float *alone = single_output(last, SEED + 1, &n);

    struct executor *ex = open_cpu();
    char err[512] = "";
    if (exec_prepare_plan(ex, &plan, SEED + 1, err, sizeof err) != 0)
        fail_msg("prepare_plan: %s", err);
    double us = 0;
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    float out[16];
    assert_true(n <= 16);
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_memory_equal(out, alone, n * sizeof *out);
    free(alone);
    free(k);
    exec_close(ex);
}

static void test_cpu_plan_lifecycle(void **state)
{
    (void)state;
    struct executor *ex = open_cpu();
    char err[512] = "";
    double us = 0;
    struct exec_plan_kernel k[4];
    block_plan(k, DTYPE_FP32);
    struct exec_plan plan = {.count = 4, .kernels = k};

    /* No plan: nothing prepared, or a single kernel. */
    assert_int_equal(exec_plan_streams(ex), 0);
    assert_int_equal(exec_prepare(ex, &k[0].cfg, SEED, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 0);

    /* A plan replaces the single kernel; release frees it all. */
    assert_int_equal(exec_prepare_plan(ex, &plan, SEED, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 1);
    assert_int_equal(exec_run(ex, 2, &us, err, sizeof err), 0);
    assert_int_equal(exec_run(ex, 0, &us, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 1"));
    exec_release(ex);
    assert_int_equal(exec_plan_streams(ex), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    assert_non_null(strstr(err, "no configuration prepared"));
    float one;
    assert_int_equal(exec_read_output(ex, &one, 1, err, sizeof err), -1);

    /* A plain prepare after a plan: the single kernel, and its own output. */
    assert_int_equal(exec_prepare_plan(ex, &plan, SEED, err, sizeof err), 0);
    assert_int_equal(exec_prepare(ex, &k[1].cfg, SEED, err, sizeof err), 0);
    assert_int_equal(exec_plan_streams(ex), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    size_t n = 0;
    float *alone = single_output(&k[1].cfg, SEED, &n);
    float *out = calloc(n, sizeof *out);
    assert_non_null(out);
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_memory_equal(out, alone, n * sizeof *out);
    free(out);
    free(alone);

    /* A plan after a plan: a shorter one, so the last kernel changes. */
    assert_int_equal(exec_prepare_plan(ex, &plan, SEED, err, sizeof err), 0);
    struct exec_plan shorter = {.count = 3, .kernels = k};
    assert_int_equal(exec_prepare_plan(ex, &shorter, SEED, err, sizeof err), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    alone = single_output(&k[2].cfg, SEED, &n);
    out = calloc(n, sizeof *out);
    assert_non_null(out);
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_memory_equal(out, alone, n * sizeof *out);
    free(out);
    free(alone);

    /* The CPU executor checks a plan itself when called through its ops, and
     * a refused plan leaves nothing prepared. */
    k[2].level = 0;
    assert_int_equal(ex->ops->prepare_plan(ex, &plan, SEED, err, sizeof err), -1);
    assert_non_null(strstr(err, "plan kernel 2 (add_relu)"));
    assert_int_equal(exec_plan_streams(ex), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), -1);
    k[2].level = 2;

    /* A different seed gives different inputs, so a different output: the
     * comparisons above could fail. */
    assert_int_equal(exec_prepare_plan(ex, &plan, SEED + 9, err, sizeof err), 0);
    assert_int_equal(exec_run(ex, 1, &us, err, sizeof err), 0);
    alone = single_output(&k[3].cfg, SEED, &n);
    out = calloc(n, sizeof *out);
    assert_non_null(out);
    assert_int_equal(exec_read_output(ex, out, n, err, sizeof err), 0);
    assert_memory_not_equal(out, alone, n * sizeof *out);
    free(out);
    free(alone);
    exec_close(ex);
}

/* An executor whose ops predate plans (prepare_plan and plan_streams NULL). */
static void test_executor_without_plans(void **state)
{
    (void)state;
    struct executor *cpu = open_cpu();
    struct executor_ops ops = *cpu->ops;
    ops.prepare_plan = NULL;
    ops.plan_streams = NULL;
    struct executor old = {.ops = &ops, .impl = cpu->impl, .dl_handle = NULL};
    struct exec_plan_kernel k[4];
    block_plan(k, DTYPE_FP32);
    struct exec_plan plan = {.count = 4, .kernels = k};
    char err[512] = "";
    assert_int_equal(exec_prepare_plan(&old, &plan, SEED, err, sizeof err), -1);
    assert_string_equal(err, "the cpu executor cannot run whole-graph plans");
    assert_int_equal(exec_plan_streams(&old), 1);
    /* The plan is checked first: its own error wins. */
    plan.count = 0;
    assert_int_equal(exec_prepare_plan(&old, &plan, SEED, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least one kernel"));
    /* Single kernels still work on it. */
    double us = 0;
    assert_int_equal(exec_prepare(&old, &k[0].cfg, SEED, err, sizeof err), 0);
    assert_int_equal(exec_run(&old, 1, &us, err, sizeof err), 0);
    exec_close(cpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_check),
        cmocka_unit_test(test_plan_memory_needed),
        cmocka_unit_test(test_cpu_plan_fp32),
        cmocka_unit_test(test_cpu_plan_fp16),
        cmocka_unit_test(test_cpu_plan_largest),
        cmocka_unit_test(test_cpu_plan_lifecycle),
        cmocka_unit_test(test_executor_without_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
