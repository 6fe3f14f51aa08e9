/*
 * test_gpu.c - `make test-gpu`: the CUDA executor checked against the CPU oracle.
 *
 * Loads lib/jetprof/libjetprof_cuda.so through exec_open("cuda") (the plugin
 * path may be given as argv[1]); where that fails (no driver, no GPU, no
 * plugin) it prints "SKIP: no usable GPU: <reason>" and exits 0, so the target
 * runs everywhere and `make test` never needs a GPU.
 *
 * With a GPU, for every catalogue kernel, both dtypes and the configurations
 * of test_configs (three small ones with odd sizes that hit every tail and
 * launch-shape branch, and one medium one), it
 *   - checks the CUDA executor's memory_needed against the catalogue's lower
 *     bound and against memory_free,
 *   - prepares the CPU and the CUDA executor with the same seed (so both see
 *     bit-identical inputs), checks that the prepared CUDA output reads as
 *     zeros, runs one launch on each and compares,
 *   - runs REPLAY_LAUNCHES launches on CUDA (more than one captured chunk of
 *     256, plus a tail graph: graph replay) and compares again (every kernel
 *     writes its output from its inputs only, so repeated launches must give
 *     the same result),
 * and prints one table row per case. Then whole-graph plans (prepare_plan,
 * check_plan): two 5-kernel plans over three levels with a 3-wide level of
 * linear_relu (three matmuls on three branch streams, forked from and joined
 * back into the captured origin stream), once ending on the origin and once
 * ending in the 3-wide level, in both dtypes: plan_streams must be 3, the
 * output must read as zeros after prepare_plan and, after 1, 5 and
 * REPLAY_LAUNCHES passes, equal the CPU executor's output of the same plan
 * (its last kernel's) within that kernel's tolerance; plan_streams is 0 after
 * release. check_plan_errors calls the plugin's prepare_plan directly with a
 * decreasing level and with an invalid configuration: both refused naming the
 * plan kernel, nothing left prepared, and the next plan and a single prepare
 * (plan_streams 1) succeed. Last, the configuration of the catalogue
 * that needs the most memory must be refused by memory_needed > memory_free
 * before anything is prepared (the daemon's admission check).
 *
 * Then the worker process's failure paths on the CUDA executor (daemon/worker.c,
 * the executor proxy jetprofd uses; here the worker program is this binary,
 * started again through /proc/self/exe, hence the worker-mode dispatch at the
 * top of main), with test faults on and a WORKER_LIMIT_S job deadline:
 *   - a run in the worker matches the oracle;
 *   - "hang": the run is killed at the deadline and fails with the time-limit
 *     reason; the hung child is gone and a fresh one runs the next job;
 *   - "illegal_access": the child's CUDA plugin launches a kernel that writes
 *     through an invalid device pointer (a real cudaErrorIllegalAddress, not
 *     the simulated "poison"); the run fails with "CUDA context is poisoned",
 *     the child exits (status 3), and a fresh child's next prepare and run
 *     succeed and match the oracle;
 *   - out of memory: the largest configuration is refused by the proxy's
 *     memory_needed > memory_free, the figures the daemon's 422 gives, equal
 *     to the plugin's own.
 * The daemon-level checks (jetprofd, NVML power, the same faults over HTTP)
 * are tests/gpu/test_daemon_gpu.sh, run by `make test-gpu` after this.
 *
 * Comparison: element i passes when |gpu_i - cpu_i| <= atol * scale + rtol *
 * |cpu_i|, scale = max(1, max_i |cpu_i|); NaN or infinity fails. The table
 * gives max_abs = max |gpu - cpu|, max_rel = max |gpu - cpu| / |cpu| over the
 * elements with |cpu| >= 1e-3 * scale, and used = the largest share of its
 * tolerance any element used (PASS iff <= 1). The tolerances and why they are
 * what they are: the tolerance table below. Exit status 1 on any failure.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/clock.h"
#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/worker.h"

#define DEFAULT_PLUGIN "lib/jetprof/libjetprof_cuda.so"
#define SEED 20260401u
#define CONFIGS 4
#define REPLAY_LAUNCHES 300u /* > 256: one replayed chunk graph plus a 44-launch tail */
/* The worker checks: the job's time limit for the hang, and the configuration
 * each worker run measures (small, odd sizes; checked against the oracle). */
#define WORKER_LIMIT_S 3u
#define WORKER_KERNEL "linear_relu"
#define WORKER_CONFIG "batch=17,in=64,out=33"
#define WORKER_LAUNCHES 10u

/*
 * Tolerances per kernel and dtype: {atol (times scale), rtol}.
 *
 * fp32 (1e-4, 1e-4): both executors accumulate in fp32 over the same inputs and
 * differ only in summation order and in library math (expf, rsqrtf); for the
 * sizes tested (dot products up to 512 terms, rows up to 8192) that is well
 * under 1e-5 of the output's scale, so 1e-4 catches any indexing or epilogue
 * error while leaving an order of magnitude of headroom. cuBLASLt is asked for
 * CUBLAS_COMPUTE_32F (true fp32, never TF32).
 * fp32 linear_gelu (2e-3, 2e-3): cuBLASLt's GELU epilogue may evaluate tanh
 * with the hardware approximation (tanh.approx.f32, relative error about
 * 2^-11), i.e. up to ~5e-4 * |x| for the outputs here; the oracle uses tanhf.
 *
 * fp16 matmul kernels (linear*, attention: 2e-2, 2e-2): inputs are the same
 * binary16 values on both sides and accumulation is fp32 on both, but the GPU
 * output is rounded to binary16 (2^-11 relative) after a different summation
 * order, which can put the two results on either side of a rounding boundary,
 * and several steps round intermediates the oracle keeps in fp32: the
 * attention probabilities are stored in binary16 before P V, and the GELU
 * epilogue's approximate tanh adds its 2^-11. 2e-2 is the conventional fp16
 * GEMM bound and still an order of magnitude below what a wrong epilogue or a
 * transposed operand produces.
 * fp16 own kernels (layernorm, softmax, add, add_relu, tokenizer, concat:
 * 2e-3, 2e-3): one fp32 computation rounded once to binary16 on both sides,
 * so results differ by at most one binary16 ulp (<= 2^-10 relative) where the
 * fp32 values straddle a rounding boundary; 2e-3 is two ulps. concat copies
 * and must match exactly, but shares the bound.
 */
struct tolerance {
    enum kernel_op op;
    double atol[DTYPE_COUNT], rtol[DTYPE_COUNT];
};

static const struct tolerance tolerances[] = {
    {KOP_LINEAR, {1e-4, 2e-2}, {1e-4, 2e-2}},
    {KOP_LINEAR_RELU, {1e-4, 2e-2}, {1e-4, 2e-2}},
    {KOP_LINEAR_GELU, {2e-3, 2e-2}, {2e-3, 2e-2}},
    {KOP_LINEAR_BN, {1e-4, 2e-2}, {1e-4, 2e-2}},
    {KOP_LINEAR_BN_RELU, {1e-4, 2e-2}, {1e-4, 2e-2}},
    {KOP_ATTENTION, {1e-4, 2e-2}, {1e-4, 2e-2}},
    {KOP_LAYERNORM, {1e-4, 2e-3}, {1e-4, 2e-3}},
    {KOP_SOFTMAX, {1e-4, 2e-3}, {1e-4, 2e-3}},
    {KOP_ADD, {1e-4, 2e-3}, {1e-4, 2e-3}},
    {KOP_ADD_RELU, {1e-4, 2e-3}, {1e-4, 2e-3}},
    {KOP_TOKENIZER, {1e-4, 2e-3}, {1e-4, 2e-3}},
    {KOP_CONCAT, {1e-4, 2e-3}, {1e-4, 2e-3}},
};

/*
 * Configurations per kernel, "name=value,..." in any order. Small ones use
 * sizes that are not multiples of 4, 8 or 32 (vector tails, partial warps,
 * matmul edge tiles) and the minimum of each range; softmax's cols cover the
 * warp-per-row path (<= 1024) and both block sizes; the medium one is large
 * enough for multi-block grids and real cuBLASLt tiles while the CPU oracle
 * stays well under a second. A catalogue kernel missing here is a failure:
 * every kernel is checked.
 */
static const struct {
    const char *kernel;
    const char *configs[CONFIGS];
} test_configs[] = {
    {"linear", {"batch=1,in=1,out=1", "batch=3,in=7,out=5", "batch=17,in=64,out=33",
                "batch=128,in=512,out=768"}},
    {"linear_relu", {"batch=1,in=1,out=1", "batch=3,in=7,out=5", "batch=17,in=64,out=33",
                     "batch=128,in=512,out=768"}},
    {"linear_gelu", {"batch=1,in=1,out=1", "batch=3,in=7,out=5", "batch=17,in=64,out=33",
                     "batch=128,in=512,out=768"}},
    {"linear_bn", {"batch=1,in=1,out=1", "batch=3,in=7,out=5", "batch=17,in=64,out=33",
                   "batch=128,in=512,out=768"}},
    {"linear_bn_relu", {"batch=1,in=1,out=1", "batch=3,in=7,out=5", "batch=17,in=64,out=33",
                        "batch=128,in=512,out=768"}},
    {"layernorm", {"rows=1,cols=2", "rows=3,cols=7", "rows=37,cols=1500",
                   "rows=256,cols=4096"}},
    {"softmax", {"rows=1,cols=2", "rows=5,cols=37", "rows=37,cols=1500",
                 "rows=128,cols=8192"}},
    {"add", {"rows=1,cols=1", "rows=3,cols=7", "rows=37,cols=101", "rows=256,cols=4096"}},
    {"add_relu", {"rows=1,cols=1", "rows=3,cols=7", "rows=37,cols=101", "rows=256,cols=4096"}},
    {"attention", {"batch=1,tokens=1,heads=1,head_dim=1", "batch=1,tokens=5,heads=2,head_dim=8",
                   "batch=2,tokens=17,heads=3,head_dim=24",
                   "batch=2,tokens=128,heads=8,head_dim=64"}},
    {"tokenizer", {"batch=1,features=1,d=1", "batch=3,features=5,d=8",
                   "batch=17,features=13,d=24", "batch=256,features=64,d=192"}},
    {"concat", {"rows=1,cols_a=1,cols_b=1", "rows=3,cols_a=5,cols_b=2",
                "rows=37,cols_a=50,cols_b=77", "rows=512,cols_a=1000,cols_b=1024"}},
};

static const char *const config_labels[CONFIGS] = {"small-1", "small-2", "small-3", "medium"};

static unsigned failures, cases;

static void fail_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

static const struct tolerance *tolerance_for(enum kernel_op op)
{
    for (size_t i = 0; i < sizeof(tolerances) / sizeof(tolerances[0]); i++)
        if (tolerances[i].op == op)
            return &tolerances[i];
    return NULL;
}

static const char *const *configs_for(const char *kernel)
{
    for (size_t i = 0; i < sizeof(test_configs) / sizeof(test_configs[0]); i++)
        if (strcmp(test_configs[i].kernel, kernel) == 0)
            return test_configs[i].configs;
    return NULL;
}

/* Fills cfg from "name=value,...": every parameter of k exactly once. */
static int parse_config(const struct catalog_kernel *k, enum dtype d, const char *text,
                        struct kernel_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kernel = k;
    cfg->dtype = d;
    bool seen[CATALOG_MAX_PARAMS] = {false};
    const char *p = text;
    while (*p) {
        char name[64];
        long long value;
        int used = 0;
        if (sscanf(p, "%63[^=]=%lld%n", name, &value, &used) != 2) {
            snprintf(err, errlen, "cannot parse '%s'", p);
            return -1;
        }
        int i = catalog_param_index(k, name);
        if (i < 0 || seen[i]) {
            snprintf(err, errlen, "%s has no parameter '%s' (or it is given twice)", k->name,
                     name);
            return -1;
        }
        seen[i] = true;
        cfg->params[i] = value;
        p += used;
        if (*p == ',')
            p++;
    }
    for (unsigned i = 0; i < k->param_count; i++)
        if (!seen[i]) {
            snprintf(err, errlen, "no value for %s's parameter '%s'", k->name, k->params[i].name);
            return -1;
        }
    return 0;
}

struct comparison {
    double max_abs, max_rel, used;
    size_t worst; /* index of the element that used most of its tolerance */
    bool ok;
};

static void compare(const float *gpu, const float *cpu, size_t n, double atol, double rtol,
                    struct comparison *out)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(cpu[i]) && fabs(cpu[i]) > scale)
            scale = fabs(cpu[i]);
    memset(out, 0, sizeof(*out));
    out->ok = true;
    for (size_t i = 0; i < n; i++) {
        double c = cpu[i], g = gpu[i];
        double d = fabs(g - c);
        double tol = atol * scale + rtol * fabs(c);
        if (!isfinite(g) || !isfinite(c) || !(d <= tol)) {
            if (out->ok)
                out->worst = i;
            out->ok = false;
        }
        if (isfinite(d) && d > out->max_abs)
            out->max_abs = d;
        if (fabs(c) >= 1e-3 * scale && isfinite(d) && d / fabs(c) > out->max_rel)
            out->max_rel = d / fabs(c);
        double share = tol > 0 ? d / tol : (d > 0 ? INFINITY : 0);
        if (!isfinite(d))
            share = INFINITY;
        if (share > out->used) {
            out->used = share;
            if (out->ok)
                out->worst = i;
        }
    }
}

/* Run `launches` of the prepared configuration, then read n outputs. 0 or -1 with err. */
static int run_on(struct executor *ex, unsigned launches, float *out, size_t n,
                  double *elapsed_us, char *err, size_t errlen)
{
    if (exec_run(ex, launches, elapsed_us, err, errlen) < 0)
        return -1;
    return exec_read_output(ex, out, n, err, errlen);
}

/* The params part of a config key: "batch=64,in=256,out=512". */
static const char *params_of(const char *key)
{
    const char *p = strchr(key, ':');
    p = p ? strchr(p + 1, ':') : NULL;
    return p ? p + 1 : key;
}

/* One kernel, dtype and configuration. */
static void check_case(struct executor *cpu, struct executor *gpu, const struct kernel_config *cfg,
                       const char *label, const struct tolerance *tol)
{
    char key[256], err[512] = "";
    if (catalog_config_key(cfg, key, sizeof(key)) < 0)
        snprintf(key, sizeof(key), "%s", cfg->kernel->name);
    cases++;
    const size_t n = catalog_output_elements(cfg);
    if (catalog_validate(cfg, 0, err, sizeof(err)) < 0) {
        fail_line("%s (%s): the test configuration is invalid: %s", key, label, err);
        return;
    }

    /* Memory: the executor's figure covers at least the catalogue's buffers,
     * and a small configuration fits. */
    struct kernel_features features;
    catalog_features(cfg, &features);
    uint64_t needed = exec_memory_needed(gpu, cfg), free_bytes = 0;
    if (needed < features.memory_bytes) {
        fail_line("%s (%s): memory_needed %llu is below the catalogue's lower bound %llu", key,
                  label, (unsigned long long)needed,
                  (unsigned long long)features.memory_bytes);
        return;
    }
    if (exec_memory_free(gpu, &free_bytes) < 0) {
        fail_line("%s (%s): memory_free cannot be read", key, label);
        return;
    }
    if (needed > free_bytes) {
        fail_line("%s (%s): needs %llu bytes but only %llu are free", key, label,
                  (unsigned long long)needed, (unsigned long long)free_bytes);
        return;
    }

    float *ref = calloc(n ? n : 1, sizeof(float));
    float *got = calloc(n ? n : 1, sizeof(float));
    if (!ref || !got) {
        fail_line("%s (%s): cannot allocate 2 x %zu floats", key, label, n);
        free(ref);
        free(got);
        return;
    }
    double cpu_us = 0, gpu_us = 0, replay_us = 0;
    struct comparison one, replay;
    if (exec_prepare(cpu, cfg, SEED, err, sizeof(err)) < 0 ||
        run_on(cpu, 1, ref, n, &cpu_us, err, sizeof(err)) < 0) {
        fail_line("%s (%s): CPU oracle: %s", key, label, err);
        goto out;
    }
    exec_release(cpu);
    if (exec_prepare(gpu, cfg, SEED, err, sizeof(err)) < 0) {
        fail_line("%s (%s): CUDA prepare: %s", key, label, err);
        goto out;
    }
    /* Prepared but not run: the output reads as zeros on both executors. */
    for (size_t i = 0; i < n; i++)
        got[i] = 1.0f;
    if (exec_read_output(gpu, got, n, err, sizeof(err)) < 0) {
        fail_line("%s (%s): CUDA read_output after prepare: %s", key, label, err);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (got[i] != 0.0f) {
            fail_line("%s (%s): output[%zu] = %g after prepare, expected 0 until the first run",
                      key, label, i, (double)got[i]);
            goto out;
        }
    if (run_on(gpu, 1, got, n, &gpu_us, err, sizeof(err)) < 0) {
        fail_line("%s (%s): CUDA, 1 launch: %s", key, label, err);
        goto out;
    }
    compare(got, ref, n, tol->atol[cfg->dtype], tol->rtol[cfg->dtype], &one);
    if (!one.ok)
        fail_line("%s (%s): 1 launch: element %zu is %.9g, oracle %.9g", key, label, one.worst,
                  (double)got[one.worst], (double)ref[one.worst]);
    memset(got, 0, n * sizeof(float));
    if (run_on(gpu, REPLAY_LAUNCHES, got, n, &replay_us, err, sizeof(err)) < 0) {
        fail_line("%s (%s): CUDA, %u launches (graph replay): %s", key, label, REPLAY_LAUNCHES,
                  err);
        goto out;
    }
    compare(got, ref, n, tol->atol[cfg->dtype], tol->rtol[cfg->dtype], &replay);
    if (!replay.ok)
        fail_line("%s (%s): %u launches: element %zu is %.9g, oracle %.9g", key, label,
                  REPLAY_LAUNCHES, replay.worst, (double)got[replay.worst],
                  (double)ref[replay.worst]);
    if (replay_us <= 0)
        fail_line("%s (%s): %u launches took %.3f us by the CUDA events", key, label,
                  REPLAY_LAUNCHES, replay_us);
    {
        double max_abs = one.max_abs > replay.max_abs ? one.max_abs : replay.max_abs;
        double max_rel = one.max_rel > replay.max_rel ? one.max_rel : replay.max_rel;
        double used = one.used > replay.used ? one.used : replay.used;
        bool ok = one.ok && replay.ok && replay_us > 0;
        printf("%-15s %-5s %-8s %-46s %10.3e %10.3e %6.3f %10.2f %-4s\n", cfg->kernel->name,
               dtype_name(cfg->dtype), label, params_of(key), max_abs, max_rel, used,
               replay_us / REPLAY_LAUNCHES, ok ? "PASS" : "FAIL");
    }
out:
    exec_release(cpu);
    exec_release(gpu);
    free(ref);
    free(got);
}

/* ---- whole-graph plans (prepare_plan, plan_streams) ---- */

/*
 * Two plans of PLAN_KERNELS kernels over three levels with one 3-wide level
 * (three linear_relu of different widths: three matmuls at once on three
 * branch streams, each with its own cuBLASLt workspace). "fan-out" ends in a
 * one-kernel level on the origin stream; in "wide-end" the 3-wide level is
 * the last, so the output read_output returns (the last kernel's) is written
 * by a matmul on the third branch stream and must be complete when the
 * graph's launch on the origin is.
 */
#define PLAN_KERNELS 5
#define PLAN_STREAMS 3u /* the widest level */
static const unsigned plan_passes[] = {1, 5, REPLAY_LAUNCHES};

struct plan_spec {
    const char *label;
    struct {
        const char *kernel, *config;
        unsigned level;
    } kernels[PLAN_KERNELS];
};

static const struct plan_spec plan_specs[] = {
    {"fan-out",
     {{"linear_relu", "batch=17,in=64,out=33", 1},
      {"linear_relu", "batch=17,in=48,out=40", 1},
      {"linear_relu", "batch=17,in=96,out=24", 1},
      {"concat", "rows=17,cols_a=33,cols_b=40", 2},
      {"softmax", "rows=17,cols=73", 3}}},
    {"wide-end",
     {{"softmax", "rows=17,cols=73", 1},
      {"concat", "rows=17,cols_a=33,cols_b=40", 2},
      {"linear_relu", "batch=17,in=64,out=33", 3},
      {"linear_relu", "batch=17,in=48,out=40", 3},
      {"linear_relu", "batch=17,in=96,out=24", 3}}},
};

/* Fills kernels[] from spec in dtype d; 0 or -1 with err. */
static int plan_from_spec(const struct plan_spec *spec, enum dtype d,
                          struct exec_plan_kernel kernels[PLAN_KERNELS], char *err, size_t errlen)
{
    for (unsigned i = 0; i < PLAN_KERNELS; i++) {
        const struct catalog_kernel *k = catalog_find(spec->kernels[i].kernel);
        if (!k) {
            snprintf(err, errlen, "no kernel %s in the catalogue", spec->kernels[i].kernel);
            return -1;
        }
        if (parse_config(k, d, spec->kernels[i].config, &kernels[i].cfg, err, errlen) < 0)
            return -1;
        kernels[i].level = spec->kernels[i].level;
    }
    return 0;
}

/*
 * One plan in one dtype: the CPU executor's prepare_plan, run(1), read_output
 * is the oracle; the CUDA executor's plan must report PLAN_STREAMS streams,
 * read zeros after prepare_plan, and after run(n) for every n of plan_passes
 * (one pass, a 5-pass tail graph, chunk graphs of several passes plus a tail)
 * give the oracle's output within the last kernel's tolerance. After release
 * plan_streams is 0.
 */
static void check_plan(struct executor *cpu, struct executor *gpu, const struct plan_spec *spec,
                       enum dtype d)
{
    char err[1024] = "";
    struct exec_plan_kernel kernels[PLAN_KERNELS];
    memset(kernels, 0, sizeof(kernels));
    cases++;
    if (plan_from_spec(spec, d, kernels, err, sizeof(err)) < 0) {
        fail_line("plan %s %s: the test plan is invalid: %s", spec->label, dtype_name(d), err);
        return;
    }
    const struct exec_plan plan = {PLAN_KERNELS, kernels};
    const struct kernel_config *last = &kernels[PLAN_KERNELS - 1].cfg;
    const struct tolerance *tol = tolerance_for(last->kernel->op);
    if (!tol) {
        fail_line("plan %s %s: no tolerance for %s", spec->label, dtype_name(d),
                  last->kernel->name);
        return;
    }
    if (exec_plan_check(&plan, err, sizeof(err)) < 0) {
        fail_line("plan %s %s: exec_plan_check: %s", spec->label, dtype_name(d), err);
        return;
    }
    uint64_t needed = exec_plan_memory_needed(gpu, &plan), free_bytes = 0;
    if (exec_memory_free(gpu, &free_bytes) < 0 || needed > free_bytes) {
        fail_line("plan %s %s: needs %llu bytes, %llu free (or memory_free failed)", spec->label,
                  dtype_name(d), (unsigned long long)needed, (unsigned long long)free_bytes);
        return;
    }

    const size_t n = catalog_output_elements(last);
    float *ref = calloc(n ? n : 1, sizeof(float));
    float *got = calloc(n ? n : 1, sizeof(float));
    if (!ref || !got) {
        fail_line("plan %s %s: cannot allocate 2 x %zu floats", spec->label, dtype_name(d), n);
        free(ref);
        free(got);
        return;
    }
    double us = 0, max_abs = 0, max_rel = 0, used = 0, last_us = 0;
    bool ok = true;
    if (exec_prepare_plan(cpu, &plan, SEED, err, sizeof(err)) < 0 ||
        run_on(cpu, 1, ref, n, &us, err, sizeof(err)) < 0) {
        fail_line("plan %s %s: CPU oracle: %s", spec->label, dtype_name(d), err);
        ok = false;
        goto out;
    }
    exec_release(cpu);
    if (exec_prepare_plan(gpu, &plan, SEED, err, sizeof(err)) < 0) {
        fail_line("plan %s %s: CUDA prepare_plan: %s", spec->label, dtype_name(d), err);
        ok = false;
        goto out;
    }
    unsigned streams = exec_plan_streams(gpu);
    if (streams != PLAN_STREAMS) {
        fail_line("plan %s %s: plan_streams is %u, the widest level has %u kernels", spec->label,
                  dtype_name(d), streams, PLAN_STREAMS);
        ok = false;
    }
    for (size_t i = 0; i < n; i++)
        got[i] = 1.0f;
    if (exec_read_output(gpu, got, n, err, sizeof(err)) < 0) {
        fail_line("plan %s %s: CUDA read_output after prepare_plan: %s", spec->label,
                  dtype_name(d), err);
        ok = false;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (got[i] != 0.0f) {
            fail_line("plan %s %s: output[%zu] = %g after prepare_plan, expected 0 until the "
                      "first run",
                      spec->label, dtype_name(d), i, (double)got[i]);
            ok = false;
            goto out;
        }
    for (size_t r = 0; r < sizeof(plan_passes) / sizeof(plan_passes[0]); r++) {
        const unsigned passes = plan_passes[r];
        struct comparison cmp;
        memset(got, 0, n * sizeof(float));
        if (run_on(gpu, passes, got, n, &last_us, err, sizeof(err)) < 0) {
            fail_line("plan %s %s: CUDA, %u passes: %s", spec->label, dtype_name(d), passes, err);
            ok = false;
            goto out;
        }
        compare(got, ref, n, tol->atol[d], tol->rtol[d], &cmp);
        if (!cmp.ok) {
            fail_line("plan %s %s: %u passes: element %zu is %.9g, oracle %.9g", spec->label,
                      dtype_name(d), passes, cmp.worst, (double)got[cmp.worst],
                      (double)ref[cmp.worst]);
            ok = false;
        }
        if (last_us <= 0) {
            fail_line("plan %s %s: %u passes took %.3f us by the CUDA events", spec->label,
                      dtype_name(d), passes, last_us);
            ok = false;
        }
        max_abs = cmp.max_abs > max_abs ? cmp.max_abs : max_abs;
        max_rel = cmp.max_rel > max_rel ? cmp.max_rel : max_rel;
        used = cmp.used > used ? cmp.used : used;
    }
    exec_release(gpu);
    streams = exec_plan_streams(gpu);
    if (streams != 0) {
        fail_line("plan %s %s: plan_streams is %u after release, expected 0", spec->label,
                  dtype_name(d), streams);
        ok = false;
    }
out:
    {
        char params[64];
        snprintf(params, sizeof(params), "%u kernels, 3 levels, %u streams", PLAN_KERNELS,
                 PLAN_STREAMS);
        printf("%-15s %-5s %-8s %-46s %10.3e %10.3e %6.3f %10.2f %-4s\n", "plan",
               dtype_name(d), spec->label, params, max_abs, max_rel, used,
               last_us / REPLAY_LAUNCHES, ok ? "PASS" : "FAIL");
    }
    exec_release(cpu);
    exec_release(gpu);
    free(ref);
    free(got);
}

/*
 * The plugin's own plan checks, called through its ops (exec_prepare_plan
 * would stop a bad plan in exec_plan_check first): a decreasing level and an
 * invalid configuration are refused with the plan kernel named, nothing stays
 * prepared (plan_streams 0), and the executor still prepares and runs the next
 * plan. A single prepare is a one-stream plan.
 */
static void check_plan_errors(struct executor *gpu)
{
    char err[1024] = "";
    struct exec_plan_kernel kernels[PLAN_KERNELS];
    memset(kernels, 0, sizeof(kernels));
    cases++;
    if (!gpu->ops->prepare_plan || !gpu->ops->plan_streams) {
        fail_line("plan errors: the CUDA plugin has no prepare_plan or plan_streams");
        return;
    }
    if (plan_from_spec(&plan_specs[0], DTYPE_FP32, kernels, err, sizeof(err)) < 0) {
        fail_line("plan errors: the test plan is invalid: %s", err);
        return;
    }
    const struct exec_plan plan = {PLAN_KERNELS, kernels};
    bool ok = true;

    /* The softmax at level 1 after the concat at level 2. */
    kernels[4].level = 1;
    err[0] = '\0';
    int rc = gpu->ops->prepare_plan(gpu, &plan, SEED, err, sizeof(err));
    if (rc == 0 || !strstr(err, "plan kernel 4 (softmax)") || exec_plan_streams(gpu) != 0) {
        fail_line("plan errors: a decreasing level: rc %d, plan_streams %u, error '%s' "
                  "(expected -1, 0 and 'plan kernel 4 (softmax)')",
                  rc, exec_plan_streams(gpu), err);
        ok = false;
    }
    kernels[4].level = 3;

    /* An invalid configuration in the 3-wide level, after the first kernel
     * was prepared: prepare_plan must release what it made. */
    const int batch = catalog_param_index(kernels[1].cfg.kernel, "batch");
    const int64_t saved = batch >= 0 ? kernels[1].cfg.params[batch] : 0;
    if (batch >= 0)
        kernels[1].cfg.params[batch] = 0;
    err[0] = '\0';
    rc = gpu->ops->prepare_plan(gpu, &plan, SEED, err, sizeof(err));
    if (batch < 0 || rc == 0 || !strstr(err, "plan kernel 1 (linear_relu)") ||
        exec_plan_streams(gpu) != 0) {
        fail_line("plan errors: an invalid configuration: rc %d, plan_streams %u, error '%s' "
                  "(expected -1, 0 and 'plan kernel 1 (linear_relu)')",
                  rc, exec_plan_streams(gpu), err);
        ok = false;
    }
    if (batch >= 0)
        kernels[1].cfg.params[batch] = saved;

    /* The executor is still usable: the valid plan prepares and runs. */
    double us = 0;
    err[0] = '\0';
    if (exec_prepare_plan(gpu, &plan, SEED, err, sizeof(err)) < 0 ||
        exec_run(gpu, 1, &us, err, sizeof(err)) < 0 || exec_plan_streams(gpu) != PLAN_STREAMS) {
        fail_line("plan errors: the valid plan after the refused ones: %s (plan_streams %u)",
                  err[0] ? err : "no error text", exec_plan_streams(gpu));
        ok = false;
    }
    /* A single prepare replaces the plan: no plan is prepared any more. */
    err[0] = '\0';
    if (exec_prepare(gpu, &kernels[0].cfg, SEED, err, sizeof(err)) < 0 ||
        exec_plan_streams(gpu) != 0) {
        fail_line("plan errors: a single prepare after a plan: %s (plan_streams %u, expected 0)",
                  err[0] ? err : "no error text", exec_plan_streams(gpu));
        ok = false;
    }
    exec_release(gpu);
    printf("plan errors: decreasing level and invalid configuration refused, executor usable "
           "after  %s\n",
           ok ? "PASS" : "FAIL");
}

/*
 * The admission check: the configuration of the catalogue needing the most
 * CUDA memory (every parameter at its maximum) must be refused by
 * memory_needed > memory_free, without being prepared. *worst_out and
 * *needed_out receive it and its figure (worst_out->kernel NULL when none).
 */
static void check_out_of_memory(struct executor *gpu, struct kernel_config *worst_out,
                                uint64_t *needed_out)
{
    cases++;
    struct kernel_config worst;
    uint64_t worst_needed = 0;
    memset(&worst, 0, sizeof(worst));
    memset(worst_out, 0, sizeof(*worst_out));
    *needed_out = 0;
    for (size_t i = 0; i < catalog_count(); i++) {
        const struct catalog_kernel *k = catalog_at(i);
        struct kernel_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.kernel = k;
        cfg.dtype = DTYPE_FP32;
        for (unsigned p = 0; p < k->param_count; p++)
            cfg.params[p] = k->params[p].max;
        uint64_t needed = exec_memory_needed(gpu, &cfg);
        if (!worst.kernel || needed > worst_needed) {
            worst = cfg;
            worst_needed = needed;
        }
    }
    char key[256];
    if (!worst.kernel || catalog_config_key(&worst, key, sizeof(key)) < 0) {
        fail_line("out-of-memory check: no catalogue configuration to try");
        return;
    }
    *worst_out = worst;
    *needed_out = worst_needed;
    uint64_t free_bytes = 0;
    if (exec_memory_free(gpu, &free_bytes) < 0) {
        fail_line("out-of-memory check: memory_free cannot be read");
        return;
    }
    if (worst_needed <= free_bytes) {
        fail_line("out-of-memory check: %s needs %llu bytes and %llu are free: the largest "
                  "configuration would be admitted",
                  key, (unsigned long long)worst_needed, (unsigned long long)free_bytes);
        return;
    }
    printf("out-of-memory: %s needs %llu bytes, %llu free: refused before prepare  PASS\n", key,
           (unsigned long long)worst_needed, (unsigned long long)free_bytes);
}


/* ---- the worker process's failure paths (daemon/worker.c) ---- */

/* One named worker check: PASS, or FAIL with the reason (fmt). */
static bool worker_check(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool worker_check(bool ok, const char *name, const char *fmt, ...)
{
    cases++;
    if (ok) {
        printf("worker: %-68s PASS\n", name);
        return true;
    }
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("worker: %-68s FAIL\n", name);
    printf("FAIL: worker: %s: %s\n", name, why);
    failures++;
    return false;
}

/* prepare, WORKER_LAUNCHES launches and read_output on ex; 0 or -1 with err. */
static int worker_job(struct executor *ex, const struct kernel_config *cfg, float *out, size_t n,
                      char *err, size_t errlen)
{
    double us = 0;
    int rc = exec_prepare(ex, cfg, SEED, err, errlen);
    if (rc == 0)
        rc = run_on(ex, WORKER_LAUNCHES, out, n, &us, err, errlen);
    exec_release(ex);
    return rc;
}

/* A process with this pid exists (a reaped child does not). */
static bool process_exists(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/*
 * Runs an armed fault through the proxy with the job deadline set as the
 * runner sets it: prepare must succeed, the run must fail. err receives the
 * run's error; *past_deadline whether the failure came after the deadline.
 */
static int worker_faulted_run(struct executor *wx, int64_t *deadline_ns,
                              const struct kernel_config *cfg, bool *past_deadline, char *err,
                              size_t errlen)
{
    double us = 0;
    *deadline_ns = clock_mono_ns() + (int64_t)WORKER_LIMIT_S * 1000000000LL;
    int rc = exec_prepare(wx, cfg, SEED, err, errlen);
    if (rc < 0) {
        *deadline_ns = 0;
        return -1; /* prepare failed: err says why */
    }
    rc = exec_run(wx, WORKER_LAUNCHES, &us, err, errlen);
    *past_deadline = clock_mono_ns() >= *deadline_ns;
    *deadline_ns = 0;
    exec_release(wx);
    return rc < 0 ? 1 : 0; /* 1: the run failed, as it must */
}

static void check_worker(const char *plugin, struct executor *cpu,
                         const struct kernel_config *worst, uint64_t worst_needed)
{
    char err[1024] = "", why[512] = "";
    const struct catalog_kernel *k = catalog_find(WORKER_KERNEL);
    const struct tolerance *tol = k ? tolerance_for(k->op) : NULL;
    struct kernel_config cfg;
    if (!k || !tol || parse_config(k, DTYPE_FP32, WORKER_CONFIG, &cfg, err, sizeof(err)) < 0) {
        worker_check(false, "test configuration", "%s %s: %s", WORKER_KERNEL, WORKER_CONFIG,
                     err[0] ? err : "kernel or tolerance missing");
        return;
    }
    const size_t n = catalog_output_elements(&cfg);
    float *ref = calloc(n, sizeof(float));
    float *got = calloc(n, sizeof(float));
    struct executor *wx = NULL;
    int64_t deadline_ns = 0;
    if (!ref || !got) {
        worker_check(false, "allocation", "cannot allocate 2 x %zu floats", n);
        goto out;
    }
    double us = 0;
    if (exec_prepare(cpu, &cfg, SEED, err, sizeof(err)) < 0 ||
        run_on(cpu, 1, ref, n, &us, err, sizeof(err)) < 0) {
        exec_release(cpu);
        worker_check(false, "CPU oracle for the worker runs", "%s", err);
        goto out;
    }
    exec_release(cpu);

    /* The proxy as jetprofd opens it: the worker program is this binary. */
    struct worker_options opt = {.program = NULL,
                                 .deadline_ns = &deadline_ns,
                                 .job_timeout_s = WORKER_LIMIT_S,
                                 .test_faults = true};
    if (!worker_check(worker_executor_open("cuda", plugin, &opt, &wx, why, sizeof(why), err,
                                           sizeof(err)) == 0,
                      "opens the CUDA executor in a worker process", "%s", err))
        goto out;
    struct exec_info info;
    exec_info(wx, &info);
    if (!worker_check(strcmp(info.name, "cuda") == 0 && worker_pid(wx) > 0,
                      "the worker runs the cuda executor", "executor '%s', pid %ld", info.name,
                      (long)worker_pid(wx)))
        goto out;

    struct comparison cmp;
    memset(&cmp, 0, sizeof(cmp));
    memset(got, 0, n * sizeof(float));
    int rc = worker_job(wx, &cfg, got, n, err, sizeof(err));
    if (rc == 0)
        compare(got, ref, n, tol->atol[DTYPE_FP32], tol->rtol[DTYPE_FP32], &cmp);
    worker_check(rc == 0 && cmp.ok, "a run in the worker matches the oracle", "%s",
                 rc < 0 ? err : "output differs from the CPU oracle");

    /* hang: killed at the job's deadline. */
    pid_t before = worker_pid(wx);
    unsigned starts = worker_starts(wx);
    bool late = false;
    err[0] = '\0';
    rc = worker_set_test_fault(wx, "hang", err, sizeof(err));
    if (rc == 0)
        rc = worker_faulted_run(wx, &deadline_ns, &cfg, &late, err, sizeof(err));
    else
        rc = -1;
    worker_set_test_fault(wx, NULL, NULL, 0);
    char limit_text[64];
    snprintf(limit_text, sizeof(limit_text), "exceeded the job's time limit of %u s",
             WORKER_LIMIT_S);
    worker_check(rc == 1 && strstr(err, "worker killed") && strstr(err, limit_text) && late,
                 "hang: the run is killed at the job's time limit",
                 "rc %d (1 = the run failed), after the deadline: %s, error: %s", rc,
                 late ? "yes" : "no", err);
    worker_check(!process_exists(before) && worker_pid(wx) > 0 && worker_pid(wx) != before &&
                     worker_starts(wx) == starts + 1,
                 "hang: the hung worker is gone, a fresh one runs",
                 "old pid %ld %s, current pid %ld, starts %u -> %u", (long)before,
                 process_exists(before) ? "still exists" : "gone", (long)worker_pid(wx), starts,
                 worker_starts(wx));
    memset(got, 0, n * sizeof(float));
    rc = worker_job(wx, &cfg, got, n, err, sizeof(err));
    if (rc == 0)
        compare(got, ref, n, tol->atol[DTYPE_FP32], tol->rtol[DTYPE_FP32], &cmp);
    worker_check(rc == 0 && cmp.ok, "hang: the next run in the fresh worker succeeds", "%s",
                 rc < 0 ? err : "output differs from the CPU oracle");

    /* illegal_access: a real sticky CUDA error poisons the child's context. */
    before = worker_pid(wx);
    starts = worker_starts(wx);
    err[0] = '\0';
    rc = worker_set_test_fault(wx, "illegal_access", err, sizeof(err));
    if (rc == 0)
        rc = worker_faulted_run(wx, &deadline_ns, &cfg, &late, err, sizeof(err));
    else
        rc = -1;
    worker_set_test_fault(wx, NULL, NULL, 0);
    worker_check(rc == 1 && strstr(err, "CUDA context is poisoned") && strstr(err, "cudaError") &&
                     !strstr(err, "simulated") && strstr(err, "exit status 3") && !late,
                 "illegal_access: a real CUDA fault poisons the worker",
                 "rc %d (1 = the run failed), error: %s", rc, err);
    if (rc == 1)
        printf("worker:   (%s)\n", err);
    worker_check(!process_exists(before) && worker_pid(wx) > 0 && worker_pid(wx) != before &&
                     worker_starts(wx) == starts + 1,
                 "illegal_access: the poisoned worker exited, a fresh one runs",
                 "old pid %ld %s, current pid %ld, starts %u -> %u", (long)before,
                 process_exists(before) ? "still exists" : "gone", (long)worker_pid(wx), starts,
                 worker_starts(wx));
    memset(got, 0, n * sizeof(float));
    rc = worker_job(wx, &cfg, got, n, err, sizeof(err));
    if (rc == 0)
        compare(got, ref, n, tol->atol[DTYPE_FP32], tol->rtol[DTYPE_FP32], &cmp);
    worker_check(rc == 0 && cmp.ok,
                 "illegal_access: the next prepare and run on CUDA succeed", "%s",
                 rc < 0 ? err : "output differs from the CPU oracle");

    /* Out of memory: refused by the proxy's figures before anything runs. */
    if (worst->kernel) {
        uint64_t free_bytes = 0;
        int free_rc = exec_memory_free(wx, &free_bytes);
        uint64_t needed = exec_memory_needed(wx, worst);
        worker_check(free_rc == 0 && needed == worst_needed && needed > free_bytes &&
                         free_bytes > 0,
                     "out of memory: the largest configuration is refused via the worker",
                     "memory_free rc %d, %llu bytes free; memory_needed %llu (the plugin "
                     "says %llu)",
                     free_rc, (unsigned long long)free_bytes, (unsigned long long)needed,
                     (unsigned long long)worst_needed);
    }

out:
    exec_close(wx);
    free(ref);
    free(got);
}

int main(int argc, char **argv)
{
    /* This program is also the worker process of check_worker's proxy. */
    if (worker_mode_requested(argc, argv))
        return worker_child_main(argc, argv);

    const char *plugin = argc > 1 ? argv[1] : DEFAULT_PLUGIN;
    jp_log_set_level(JP_LOG_WARN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct executor *gpu = NULL, *cpu = NULL;
    char why[1024] = "", err[1024] = "";
    if (exec_open("cuda", plugin, &gpu, why, sizeof(why), err, sizeof(err)) < 0) {
        printf("SKIP: no usable GPU: %s\n", err[0] ? err : "exec_open(\"cuda\") failed");
        return 0;
    }
    if (exec_cpu_open(&cpu, err, sizeof(err)) < 0) {
        printf("FAIL: cannot open the CPU executor (the oracle): %s\n", err);
        exec_close(gpu);
        return 1;
    }
    struct exec_info info;
    exec_info(gpu, &info);
    printf("CUDA executor: %s, CUDA runtime %s, %.1f GiB free of %.1f GiB (%s)\n", info.device,
           info.runtime_version, (double)info.mem_free_bytes / 1073741824.0,
           (double)info.mem_total_bytes / 1073741824.0, plugin);
    printf("%-15s %-5s %-8s %-46s %10s %10s %6s %10s %-4s\n", "kernel", "dtype", "config",
           "params", "max_abs", "max_rel", "used", "us/launch", "");

    for (size_t i = 0; i < catalog_count(); i++) {
        const struct catalog_kernel *k = catalog_at(i);
        const struct tolerance *tol = tolerance_for(k->op);
        const char *const *configs = configs_for(k->name);
        if (!tol || !configs) {
            cases++;
            fail_line("kernel %s has no %s in tests/gpu/test_gpu.c", k->name,
                      !tol ? "tolerance" : "test configurations");
            continue;
        }
        for (int d = 0; d < DTYPE_COUNT; d++)
            for (unsigned j = 0; j < CONFIGS; j++) {
                struct kernel_config cfg;
                if (parse_config(k, (enum dtype)d, configs[j], &cfg, err, sizeof(err)) < 0) {
                    cases++;
                    fail_line("%s %s: %s", k->name, config_labels[j], err);
                    continue;
                }
                check_case(cpu, gpu, &cfg, config_labels[j], tol);
            }
    }
    for (size_t i = 0; i < sizeof(plan_specs) / sizeof(plan_specs[0]); i++)
        for (int d = 0; d < DTYPE_COUNT; d++)
            check_plan(cpu, gpu, &plan_specs[i], (enum dtype)d);
    check_plan_errors(gpu);
    struct kernel_config worst;
    uint64_t worst_needed = 0;
    check_out_of_memory(gpu, &worst, &worst_needed);
    /* The parent's own context is not needed for the worker checks. */
    exec_close(gpu);

    /* The worker child opens the plugin by this path from its own start. */
    char plugin_abs[PATH_MAX];
    if (!realpath(plugin, plugin_abs))
        snprintf(plugin_abs, sizeof(plugin_abs), "%s", plugin);
    check_worker(plugin_abs, cpu, &worst, worst_needed);

    exec_close(cpu);
    printf("%u cases, %u failed: %s\n", cases, failures, failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
