/*
 * exec_cpu.c - the CPU executor: every catalogue kernel in plain C.
 *
 * It has two jobs. On hosts without a GPU it is the executor the daemon
 * measures with; everywhere it is the numerical oracle the CUDA kernels are
 * checked against. So the code says what each kernel computes in the most
 * direct way, with only two concessions to speed (a dot product with four
 * partial sums, fp16 inputs decoded once per launch rather than once per
 * multiply), which keep linear batch=64,in=256,out=512 at a few milliseconds.
 *
 * fp16 follows what the GPU does with CUBLAS_COMPUTE_32F: the buffers hold
 * binary16 values rounded from the fp32 master data, every launch widens them
 * to float, accumulates in float, applies bias and activation in float and
 * rounds the result to binary16.
 *
 * linear_bn* fold their BatchNorm into weight and bias at prepare
 * (kernel_data_fold_batchnorm, shared with the CUDA executor) and then run the
 * linear path, as inference does. Softmax and attention subtract the row max
 * before exp and sum in double. exec_cpu_compute runs the same launch code on
 * caller-chosen inputs, for hand-computed tests and for oracle comparisons.
 *
 * Memory: cpu_bytes_per_element below is the one description of what prepare
 * allocates; memory_needed (admission, before a job) and held_bytes (what
 * memory_free gives back while a configuration is prepared) both come from it,
 * so the check and the allocation cannot drift apart. memory_needed and
 * memory_free are called from HTTP threads: they read nothing but cfg, the
 * table, /proc/meminfo and the atomic held_bytes.
 *
 * Whole-graph plans (prepare_plan): every kernel gets a slot of its own,
 * prepared by the same code as a single prepare (so a plan kernel's inputs and
 * output are exactly that kernel's alone); a launch is one pass over the slots
 * in array order, one kernel at a time (plan_streams 1); read_output reads the
 * last slot; held_bytes is the sum over the slots. A single prepare is the
 * one-slot case.
 */
#include "exec.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/clock.h"
#include "kernel_data.h"

#define LAYERNORM_EPS 1e-5

/* One prepared kernel: its buffers and what a launch of it needs. */
struct cpu_slot {
    struct kernel_config cfg;
    unsigned input_count;
    size_t input_elements[KERNEL_DATA_MAX_TENSORS];
    /* What the kernel reads each launch: the fp32 inputs themselves, or for fp16
     * the scratch the half inputs are widened into. */
    float *inputs_f[KERNEL_DATA_MAX_TENSORS];
    uint16_t *inputs_h[KERNEL_DATA_MAX_TENSORS]; /* fp16 only: the stored tensors */
    size_t output_elements;
    float *output_f;    /* fp32 output, or fp16's float result before rounding */
    uint16_t *output_h; /* fp16 only: the stored output */
    float *scratch;     /* per-kernel working memory (attention: one row of scores) */
};

/*
 * The prepared kernels, launched in array order: prepare fills `single` and
 * points slots at it (no allocation beyond the kernel's own buffers, as before
 * plans existed), prepare_plan a heap array with one slot per plan kernel.
 * Nothing is prepared while slot_count is 0.
 */
struct cpu_exec {
    struct executor ex;
    struct cpu_slot *slots;
    size_t slot_count;
    bool is_plan; /* prepared by prepare_plan (plan_streams answers 1) */
    struct cpu_slot single;
    /* What the prepared kernels hold together; written by the runner, read by
     * memory_free on any thread. */
    _Atomic uint64_t held_bytes;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct cpu_exec *cpu_of(struct executor *ex) { return (struct cpu_exec *)ex->impl; }

/*
 * Bytes per tensor element prepare allocates, by dtype. prepare goes:
 * kernel_data_generate makes the fp32 master copy of every input; linear_bn*
 * folds its BatchNorm into weight and bias and frees gamma, beta, mean and var
 * (stage 1 ends: every master copy alive); then, while the masters of the
 * inputs the kernel reads ("run inputs") still exist, it makes for fp16 the
 * binary16 copy and the fp32 scratch each launch widens it into (fp32 adopts
 * the master copy as the kernel's buffer), the output and the kernel's scratch
 * (stage 2); for fp16 it then frees the masters. So
 *   peak = max(stage 1, stage 2), stage 1 = 4 bytes x every input element,
 *   stage 2 = run_peak x run input elements + output x output elements
 *             + 4 x scratch elements;
 *   held = run_held x run input elements + output x output elements
 *          + 4 x scratch elements.
 */
static const struct {
    unsigned run_peak, run_held, output;
} cpu_bytes_per_element[DTYPE_COUNT] = {
    [DTYPE_FP32] = {4, 4, 4},
    [DTYPE_FP16] = {4 + 2 + 4, 2 + 4, 4 + 2},
};
#define MASTER_BYTES_PER_ELEMENT 4u

/* Inputs the timed kernel reads: linear_bn* keeps x, weight and bias. */
static unsigned run_input_count(const struct kernel_config *cfg, unsigned inputs)
{
    enum kernel_op op = cfg->kernel->op;
    return (op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU) && inputs > 3 ? 3 : inputs;
}

/* Scratch floats a launch needs: attention keeps one row of scores. */
static uint64_t scratch_elements(const struct kernel_config *cfg)
{
    return cfg->kernel->op == KOP_ATTENTION && cfg->params[1] > 0 ? (uint64_t)cfg->params[1]
                                                                   : 0;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Stage-2 / held bytes of cfg at `per_run_input` bytes per run input element. */
static uint64_t config_bytes(const struct kernel_config *cfg, unsigned per_run_input,
                             unsigned per_output)
{
    uint64_t elements[CATALOG_MAX_INPUTS];
    unsigned n = run_input_count(cfg, catalog_input_elements(cfg, elements));
    uint64_t bytes = 0;
    for (unsigned t = 0; t < n; t++)
        bytes = add_sat(bytes, mul_sat(elements[t], per_run_input));
    bytes = add_sat(bytes, mul_sat(scratch_elements(cfg), sizeof(float)));
    return add_sat(bytes, mul_sat((uint64_t)catalog_output_elements(cfg), per_output));
}

/* Stage 1: the fp32 master copy of every input. */
static uint64_t master_bytes(const struct kernel_config *cfg)
{
    uint64_t elements[CATALOG_MAX_INPUTS];
    unsigned n = catalog_input_elements(cfg, elements);
    uint64_t bytes = 0;
    for (unsigned t = 0; t < n; t++)
        bytes = add_sat(bytes, mul_sat(elements[t], MASTER_BYTES_PER_ELEMENT));
    return bytes;
}

static bool dtype_known(enum dtype d) { return (int)d >= 0 && (int)d < DTYPE_COUNT; }

/* ---- the kernels, fp32 in and out ---- */

/* Four independent partial sums: a single running sum serialises on the
 * floating-point add latency and makes the oracle several times slower. */
static float dot(const float *a, const float *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* GELU, tanh approximation (Hendrycks & Gimpel), as cuBLASLt's GELU epilogue. */
static float gelu(float v)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

/* y[b][o] = act(dot(x[b], W[o]) + bias[o]); both operands are contiguous rows. */
static void linear_f32(enum kernel_op op, const float *x, const float *w, const float *bias,
                       float *y, size_t batch, size_t in, size_t out)
{
    for (size_t b = 0; b < batch; b++) {
        const float *xb = x + b * in;
        float *yb = y + b * out;
        for (size_t o = 0; o < out; o++) {
            float v = dot(xb, w + o * in, in) + bias[o];
            if (op == KOP_LINEAR_RELU)
                v = v > 0.0f ? v : 0.0f;
            else if (op == KOP_LINEAR_GELU)
                v = gelu(v);
            yb[o] = v;
        }
    }
}

/* Per row: mean and variance in double, two passes (no E[x^2] - E[x]^2
 * cancellation), then y = (x - mean) / sqrt(var + eps) * gamma + beta. */
static void layernorm_f32(const float *x, const float *gamma, const float *beta, float *y,
                          size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double sum = 0;
        for (size_t c = 0; c < cols; c++)
            sum += xr[c];
        double mean = sum / (double)cols;
        double sq = 0;
        for (size_t c = 0; c < cols; c++) {
            double d = xr[c] - mean;
            sq += d * d;
        }
        double rstd = 1.0 / sqrt(sq / (double)cols + LAYERNORM_EPS);
        for (size_t c = 0; c < cols; c++)
            yr[c] = (float)((xr[c] - mean) * rstd * gamma[c] + beta[c]);
    }
}

/* Per row: y = exp(x - max) / sum, the max subtracted so exp never overflows;
 * the sum in double. */
static void softmax_f32(const float *x, float *y, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float max = xr[0];
        for (size_t c = 1; c < cols; c++)
            max = xr[c] > max ? xr[c] : max;
        double sum = 0;
        for (size_t c = 0; c < cols; c++) {
            yr[c] = expf(xr[c] - max);
            sum += yr[c];
        }
        float inv = (float)(1.0 / sum); /* sum >= 1: the max contributes exp(0) */
        for (size_t c = 0; c < cols; c++)
            yr[c] *= inv;
    }
}

static void add_f32(bool relu, const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

/* y[r] = [a[r], b[r]] */
static void concat_f32(const float *a, const float *b, float *y, size_t rows, size_t cols_a,
                       size_t cols_b)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * (cols_a + cols_b);
        memcpy(yr, a + r * cols_a, cols_a * sizeof(float));
        memcpy(yr + cols_a, b + r * cols_b, cols_b * sizeof(float));
    }
}

/* y[b][f][k] = x[b][f] * W[f][k] + bias[f][k] */
static void tokenizer_f32(const float *x, const float *w, const float *bias, float *y,
                          size_t batch, size_t features, size_t d)
{
    for (size_t b = 0; b < batch; b++) {
        for (size_t f = 0; f < features; f++) {
            float xv = x[b * features + f];
            const float *wf = w + f * d, *bf = bias + f * d;
            float *yf = y + (b * features + f) * d;
            for (size_t k = 0; k < d; k++)
                yf[k] = xv * wf[k] + bf[k];
        }
    }
}

/*
 * Per batch, head and query row t: scores s[j] = q[t] . k[j] / sqrt(head_dim),
 * the row's softmax as softmax_f32 (max subtracted, sum in double), then
 * y[t] = sum_j p[j] v[j]. `scores` holds one row of `tokens` floats.
 */
static void attention_f32(const float *q, const float *k, const float *v, float *y,
                          float *scores, size_t batch, size_t tokens, size_t heads,
                          size_t head_dim)
{
    const float scale = (float)(1.0 / sqrt((double)head_dim));
    for (size_t bh = 0; bh < batch * heads; bh++) {
        size_t base = bh * tokens * head_dim;
        const float *qh = q + base, *kh = k + base, *vh = v + base;
        float *yh = y + base;
        for (size_t t = 0; t < tokens; t++) {
            const float *qt = qh + t * head_dim;
            float max = 0;
            for (size_t j = 0; j < tokens; j++) {
                scores[j] = dot(qt, kh + j * head_dim, head_dim) * scale;
                max = j == 0 || scores[j] > max ? scores[j] : max;
            }
            double sum = 0;
            for (size_t j = 0; j < tokens; j++) {
                scores[j] = expf(scores[j] - max);
                sum += scores[j];
            }
            float inv = (float)(1.0 / sum);
            float *yt = yh + t * head_dim;
            for (size_t e = 0; e < head_dim; e++)
                yt[e] = 0.0f;
            for (size_t j = 0; j < tokens; j++) {
                float p = scores[j] * inv;
                const float *vj = vh + j * head_dim;
                for (size_t e = 0; e < head_dim; e++)
                    yt[e] += p * vj[e];
            }
        }
    }
}

/* cfg's kernel on fp32 inputs (linear_bn*: already folded) into out. */
static void compute_f32(const struct kernel_config *cfg, float *const *in, float *out,
                        size_t output_elements, float *scratch)
{
    const int64_t *p = cfg->params;
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
        linear_f32(cfg->kernel->op, in[0], in[1], in[2], out, (size_t)p[0], (size_t)p[1],
                   (size_t)p[2]);
        break;
    case KOP_LINEAR_BN: /* BatchNorm was folded into weight and bias at prepare */
        linear_f32(KOP_LINEAR, in[0], in[1], in[2], out, (size_t)p[0], (size_t)p[1],
                   (size_t)p[2]);
        break;
    case KOP_LINEAR_BN_RELU:
        linear_f32(KOP_LINEAR_RELU, in[0], in[1], in[2], out, (size_t)p[0], (size_t)p[1],
                   (size_t)p[2]);
        break;
    case KOP_LAYERNORM:
        layernorm_f32(in[0], in[1], in[2], out, (size_t)p[0], (size_t)p[1]);
        break;
    case KOP_SOFTMAX:
        softmax_f32(in[0], out, (size_t)p[0], (size_t)p[1]);
        break;
    case KOP_ADD:
    case KOP_ADD_RELU:
        add_f32(cfg->kernel->op == KOP_ADD_RELU, in[0], in[1], out, output_elements);
        break;
    case KOP_ATTENTION:
        attention_f32(in[0], in[1], in[2], out, scratch, (size_t)p[0], (size_t)p[1],
                      (size_t)p[2], (size_t)p[3]);
        break;
    case KOP_TOKENIZER:
        tokenizer_f32(in[0], in[1], in[2], out, (size_t)p[0], (size_t)p[1], (size_t)p[2]);
        break;
    case KOP_CONCAT:
        concat_f32(in[0], in[1], out, (size_t)p[0], (size_t)p[1], (size_t)p[2]);
        break;
    }
}

/* One launch of a prepared kernel. */
static void launch_once(struct cpu_slot *s)
{
    if (s->cfg.dtype == DTYPE_FP16) {
        for (unsigned t = 0; t < s->input_count; t++)
            for (size_t i = 0; i < s->input_elements[t]; i++)
                s->inputs_f[t][i] = half_to_float(s->inputs_h[t][i]);
    }
    compute_f32(&s->cfg, s->inputs_f, s->output_f, s->output_elements, s->scratch);
    if (s->cfg.dtype == DTYPE_FP16) {
        for (size_t i = 0; i < s->output_elements; i++)
            s->output_h[i] = half_from_float(s->output_f[i]);
    }
}

/* ---- executor_ops ---- */

static void read_cpu_model(char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            const char *v = strchr(line, ':');
            if (!v)
                continue;
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= len)
                n = len - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            break;
        }
        fclose(f);
    }
    if (buf[0] == '\0') { /* aarch64 kernels print no "model name" */
        struct utsname u;
        if (uname(&u) == 0)
            snprintf(buf, len, "%s", u.machine);
        else
            snprintf(buf, len, "unknown");
    }
}

/* MemAvailable / MemTotal from /proc/meminfo in bytes; 0 when absent. */
static uint64_t meminfo_bytes(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    size_t keylen = strlen(key);
    uint64_t bytes = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kib;
        if (strncmp(line, key, keylen) == 0 && line[keylen] == ':' &&
            sscanf(line + keylen + 1, "%llu", &kib) == 1) {
            bytes = (uint64_t)kib * 1024u;
            break;
        }
    }
    fclose(f);
    return bytes;
}

/* Physical memory in bytes: MemTotal, else the page count. */
static uint64_t total_memory_bytes(void)
{
    uint64_t total = meminfo_bytes("MemTotal");
    long page = sysconf(_SC_PAGESIZE);
    long total_pages = sysconf(_SC_PHYS_PAGES);
    if (total == 0 && page > 0 && total_pages > 0)
        total = (uint64_t)total_pages * (uint64_t)page;
    return total;
}

/*
 * Free for a new configuration: MemAvailable (the kernel's estimate of what can
 * be allocated without swapping, page cache included), read fresh, plus what
 * the prepared configuration holds, because prepare frees that first; at most
 * MemTotal. Between jobs nothing is held (measure_run releases its
 * configuration), so there this is MemAvailable alone.
 */
static int cpu_memory_free(struct executor *ex, uint64_t *free_bytes)
{
    struct cpu_exec *c = cpu_of(ex);
    uint64_t avail = meminfo_bytes("MemAvailable");
    if (avail == 0) {
        long page = sysconf(_SC_PAGESIZE);
        long avail_pages = sysconf(_SC_AVPHYS_PAGES);
        if (page <= 0 || avail_pages <= 0)
            return -1;
        avail = (uint64_t)avail_pages * (uint64_t)page; /* MemFree: an underestimate */
    }
    avail = add_sat(avail, atomic_load(&c->held_bytes));
    uint64_t total = total_memory_bytes();
    if (total > 0 && avail > total)
        avail = total;
    *free_bytes = avail;
    return 0;
}

static uint64_t cpu_memory_needed(struct executor *ex, const struct kernel_config *cfg)
{
    (void)ex;
    if (!cfg || !cfg->kernel || !dtype_known(cfg->dtype))
        return UINT64_MAX;
    uint64_t stage2 = config_bytes(cfg, cpu_bytes_per_element[cfg->dtype].run_peak,
                                   cpu_bytes_per_element[cfg->dtype].output);
    uint64_t stage1 = master_bytes(cfg);
    return stage1 > stage2 ? stage1 : stage2;
}

static void cpu_info(struct executor *ex, struct exec_info *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "cpu");
    char model[96];
    read_cpu_model(model, sizeof(model));
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = online > 0 && online < 1000000 ? (int)online : 1;
    snprintf(out->device, sizeof(out->device), "CPU: %s (%d cores)", model, cores);
    out->is_gpu = false;
    out->mem_total_bytes = total_memory_bytes();
    if (cpu_memory_free(ex, &out->mem_free_bytes) != 0)
        out->mem_free_bytes = 0;
    out->runtime_version[0] = '\0';
}

/* Frees one kernel's buffers and empties the slot. */
static void slot_free(struct cpu_slot *s)
{
    for (unsigned t = 0; t < KERNEL_DATA_MAX_TENSORS; t++) {
        free(s->inputs_f[t]);
        free(s->inputs_h[t]);
    }
    free(s->output_f);
    free(s->output_h);
    free(s->scratch);
    memset(s, 0, sizeof(*s));
}

static void cpu_release(struct executor *ex)
{
    struct cpu_exec *c = cpu_of(ex);
    for (size_t i = 0; i < c->slot_count; i++)
        slot_free(&c->slots[i]);
    if (c->slots != &c->single)
        free(c->slots);
    c->slots = NULL;
    c->slot_count = 0;
    c->is_plan = false;
    atomic_store(&c->held_bytes, 0);
}

/* What a prepared cfg holds until release (see cpu_bytes_per_element). */
static uint64_t held_bytes_of(const struct kernel_config *cfg)
{
    return config_bytes(cfg, cpu_bytes_per_element[cfg->dtype].run_held,
                        cpu_bytes_per_element[cfg->dtype].output);
}

static void *alloc_elements(size_t elements, size_t size, const char *what, char *err,
                            size_t errlen)
{
    if (elements > SIZE_MAX / size) {
        set_err(err, errlen, "%s of %zu elements does not fit in memory", what, elements);
        return NULL;
    }
    void *p = malloc(elements ? elements * size : 1);
    if (!p)
        set_err(err, errlen, "cannot allocate %zu bytes for %s (%zu elements)", elements * size,
                what, elements);
    return p;
}

/*
 * Fills the empty slot s for cfg: inputs from kernel_data_generate(cfg, seed),
 * BatchNorm folded, fp16 copies, output and scratch. 0, or -1 with err and s
 * left empty.
 */
static int slot_prepare(struct cpu_slot *s, const struct kernel_config *cfg, uint64_t seed,
                        char *err, size_t errlen)
{
    if (catalog_validate(cfg, 0, err, errlen) < 0)
        return -1;

    struct kernel_data data;
    if (kernel_data_generate(cfg, seed, &data, err, errlen) < 0)
        return -1;
    /* linear_bn*: inference folds BatchNorm into weight and bias; the timed
     * kernel is then the plain linear one (a no-op for other kernels). */
    if (kernel_data_fold_batchnorm(cfg, &data, err, errlen) < 0) {
        kernel_data_free(&data);
        return -1;
    }

    s->cfg = *cfg;
    s->input_count = data.input_count;
    s->output_elements = data.output_elements;
    char what[64];
    for (unsigned t = 0; t < data.input_count; t++) {
        s->input_elements[t] = data.inputs[t].elements;
        if (cfg->dtype == DTYPE_FP32) {
            /* The master copy is exactly what an fp32 kernel reads: adopt it. */
            s->inputs_f[t] = data.inputs[t].data;
            data.inputs[t].data = NULL;
            continue;
        }
        snprintf(what, sizeof(what), "the fp16 copy of '%s'", data.inputs[t].name);
        s->inputs_h[t] = alloc_elements(data.inputs[t].elements, sizeof(uint16_t), what, err,
                                        errlen);
        snprintf(what, sizeof(what), "the widened fp16 '%s'", data.inputs[t].name);
        s->inputs_f[t] = alloc_elements(data.inputs[t].elements, sizeof(float), what, err,
                                        errlen);
        if (!s->inputs_h[t] || !s->inputs_f[t])
            goto fail;
        for (size_t i = 0; i < data.inputs[t].elements; i++)
            s->inputs_h[t][i] = half_from_float(data.inputs[t].data[i]);
    }
    /* Outputs start as zeros, as on the GPU executor, until the first run. */
    s->output_f = alloc_elements(s->output_elements, sizeof(float), "the output", err, errlen);
    if (!s->output_f)
        goto fail;
    memset(s->output_f, 0, s->output_elements * sizeof(float));
    if (cfg->dtype == DTYPE_FP16) {
        s->output_h =
            alloc_elements(s->output_elements, sizeof(uint16_t), "the fp16 output", err, errlen);
        if (!s->output_h)
            goto fail;
        memset(s->output_h, 0, s->output_elements * sizeof(uint16_t));
    }
    uint64_t scratch = scratch_elements(cfg);
    if (scratch > 0) {
        s->scratch = alloc_elements((size_t)scratch, sizeof(float), "the kernel's scratch", err,
                                    errlen);
        if (!s->scratch)
            goto fail;
    }
    kernel_data_free(&data);
    return 0;

fail:
    kernel_data_free(&data);
    slot_free(s);
    return -1;
}

static int cpu_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                       char *err, size_t errlen)
{
    struct cpu_exec *c = cpu_of(ex);
    cpu_release(ex);
    if (slot_prepare(&c->single, cfg, seed, err, errlen) < 0)
        return -1;
    c->slots = &c->single;
    c->slot_count = 1;
    atomic_store(&c->held_bytes, held_bytes_of(cfg));
    return 0;
}

/*
 * Every kernel of the plan in a slot of its own, each prepared exactly as
 * prepare would prepare it alone (the same seed), so a plan kernel computes
 * what that kernel computes by itself. held_bytes grows with every slot: what
 * memory_free adds back is what this executor really holds at that moment.
 */
static int cpu_prepare_plan(struct executor *ex, const struct exec_plan *plan, uint64_t seed,
                            char *err, size_t errlen)
{
    struct cpu_exec *c = cpu_of(ex);
    cpu_release(ex);
    if (exec_plan_check(plan, err, errlen) < 0)
        return -1;
    c->slots = calloc(plan->count, sizeof(*c->slots));
    if (!c->slots) {
        set_err(err, errlen, "cannot allocate %zu bytes for a plan of %zu kernels",
                plan->count * sizeof(*c->slots), plan->count);
        return -1;
    }
    uint64_t held = 0;
    for (size_t i = 0; i < plan->count; i++) {
        const struct kernel_config *cfg = &plan->kernels[i].cfg;
        char why[384];
        if (slot_prepare(&c->slots[i], cfg, seed, why, sizeof(why)) < 0) {
            set_err(err, errlen, "plan kernel %zu (%s): %s", i, cfg->kernel->name, why);
            cpu_release(ex);
            return -1;
        }
        c->slot_count = i + 1;
        held = add_sat(held, held_bytes_of(cfg));
        atomic_store(&c->held_bytes, held);
    }
    c->is_plan = true;
    return 0;
}

static unsigned cpu_plan_streams(struct executor *ex)
{
    struct cpu_exec *c = cpu_of(ex);
    /* One kernel at a time, in array order. */
    return c->is_plan && c->slot_count > 0 ? 1 : 0;
}

static int cpu_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
                   size_t errlen)
{
    struct cpu_exec *c = cpu_of(ex);
    if (c->slot_count == 0) {
        set_err(err, errlen, "no configuration prepared on the CPU executor");
        return -1;
    }
    if (launches == 0) {
        set_err(err, errlen, "launches must be at least 1");
        return -1;
    }
    int64_t t0 = clock_mono_ns();
    for (unsigned i = 0; i < launches; i++)
        for (size_t k = 0; k < c->slot_count; k++) /* a plan: one pass per launch */
            launch_once(&c->slots[k]);
    int64_t t1 = clock_mono_ns();
    if (elapsed_us)
        *elapsed_us = (double)(t1 - t0) / 1000.0;
    return 0;
}

static int cpu_read_output(struct executor *ex, float *dst, size_t count, char *err,
                           size_t errlen)
{
    struct cpu_exec *c = cpu_of(ex);
    if (c->slot_count == 0) {
        set_err(err, errlen, "no configuration prepared on the CPU executor");
        return -1;
    }
    const struct cpu_slot *s = &c->slots[c->slot_count - 1]; /* a plan's last kernel */
    if (count > s->output_elements) {
        set_err(err, errlen, "asked for %zu output elements but %s has %zu", count,
                s->cfg.kernel->name, s->output_elements);
        return -1;
    }
    if (count > 0 && !dst) {
        set_err(err, errlen, "no destination buffer for %zu output elements", count);
        return -1;
    }
    if (s->cfg.dtype == DTYPE_FP16) {
        for (size_t i = 0; i < count; i++)
            dst[i] = half_to_float(s->output_h[i]);
    } else if (count > 0) {
        memcpy(dst, s->output_f, count * sizeof(float));
    }
    return 0;
}

static void cpu_close(struct executor *ex)
{
    if (!ex)
        return;
    cpu_release(ex);
    free(cpu_of(ex));
}

static const struct executor_ops cpu_ops = {
    .info = cpu_info,
    .prepare = cpu_prepare,
    .run = cpu_run,
    .read_output = cpu_read_output,
    .release = cpu_release,
    .close = cpu_close,
    .memory_needed = cpu_memory_needed,
    .memory_free = cpu_memory_free,
    .prepare_plan = cpu_prepare_plan,
    .plan_streams = cpu_plan_streams,
};

int exec_cpu_compute(const struct kernel_config *cfg, unsigned input_count,
                     const float *const inputs[], float *output, char *err, size_t errlen)
{
    if (catalog_validate(cfg, 0, err, errlen) < 0)
        return -1;
    uint64_t sizes[CATALOG_MAX_INPUTS];
    unsigned expected = catalog_input_elements(cfg, sizes);
    if (input_count != expected || expected > KERNEL_DATA_MAX_TENSORS || !inputs || !output) {
        set_err(err, errlen, "%s takes %u input tensors, got %u%s", cfg->kernel->name, expected,
                input_count, inputs && output ? "" : " (or no input/output buffers)");
        return -1;
    }
    /* A private copy shaped like kernel_data_generate's, so the fold and the
     * rounding are the ones prepare applies. */
    struct kernel_data data;
    memset(&data, 0, sizeof(data));
    int rc = -1;
    float *scratch = NULL;
    char what[64];
    for (unsigned t = 0; t < expected; t++) {
        if (!inputs[t]) {
            set_err(err, errlen, "%s input %u is NULL", cfg->kernel->name, t);
            goto out;
        }
        snprintf(what, sizeof(what), "a copy of input %u", t);
        data.inputs[t].data = alloc_elements((size_t)sizes[t], sizeof(float), what, err, errlen);
        data.input_count = t + 1;
        if (!data.inputs[t].data)
            goto out;
        data.inputs[t].elements = (size_t)sizes[t];
        memcpy(data.inputs[t].data, inputs[t], (size_t)sizes[t] * sizeof(float));
    }
    data.output_elements = catalog_output_elements(cfg);
    if (kernel_data_fold_batchnorm(cfg, &data, err, errlen) < 0)
        goto out;
    if (cfg->dtype == DTYPE_FP16)
        for (unsigned t = 0; t < data.input_count; t++)
            for (size_t i = 0; i < data.inputs[t].elements; i++)
                data.inputs[t].data[i] = half_to_float(half_from_float(data.inputs[t].data[i]));
    uint64_t scratch_n = scratch_elements(cfg);
    if (scratch_n > 0) {
        scratch = alloc_elements((size_t)scratch_n, sizeof(float), "the kernel's scratch", err,
                                 errlen);
        if (!scratch)
            goto out;
    }
    float *in[KERNEL_DATA_MAX_TENSORS] = {0};
    for (unsigned t = 0; t < data.input_count; t++)
        in[t] = data.inputs[t].data;
    compute_f32(cfg, in, output, data.output_elements, scratch);
    if (cfg->dtype == DTYPE_FP16)
        for (size_t i = 0; i < data.output_elements; i++)
            output[i] = half_to_float(half_from_float(output[i]));
    rc = 0;
out:
    free(scratch);
    kernel_data_free(&data);
    return rc;
}

int exec_cpu_open(struct executor **out, char *err, size_t errlen)
{
    *out = NULL;
    struct cpu_exec *c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, errlen, "cannot allocate %zu bytes for the CPU executor", sizeof(*c));
        return -1;
    }
    atomic_init(&c->held_bytes, 0);
    c->ex.ops = &cpu_ops;
    c->ex.impl = c;
    c->ex.dl_handle = NULL;
    *out = &c->ex;
    return 0;
}
