/*
 * catalog.c - the kernel catalogue: one static table of kernel types, and the
 * arithmetic every other module derives from it (validation, FLOPs, bytes,
 * device memory, canonical keys).
 *
 * Adding a kernel means adding a row to kernel_table, a case to
 * catalog_features() and catalog_output_elements(), and the kernel itself to
 * both executors. This file is also linked into libjetprof_cuda.so, so it uses
 * nothing but libc (no logging, no clock).
 *
 * Sizes are computed with saturating 64-bit arithmetic: a configuration that has
 * not been validated yet (a sweep candidate, an API request on its way to
 * catalog_validate) must never wrap around into a small, plausible number.
 */
#include "catalog.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- dtypes ---- */

static const struct {
    const char *name;
    size_t size;
} dtype_table[DTYPE_COUNT] = {
    [DTYPE_FP32] = {"fp32", 4},
    [DTYPE_FP16] = {"fp16", 2},
};

static bool dtype_valid(enum dtype d) { return (int)d >= 0 && (int)d < DTYPE_COUNT; }

const char *dtype_name(enum dtype d) { return dtype_valid(d) ? dtype_table[d].name : "?"; }

int dtype_parse(const char *name, enum dtype *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (enum dtype)i;
            return 0;
        }
    }
    return -1;
}

size_t dtype_size(enum dtype d) { return dtype_valid(d) ? dtype_table[d].size : 0; }

/* ---- the catalogue ---- */

#define PARAM_BATCH                                                                          \
    {"batch", 1, 65536, true, "rows of the input, i.e. samples per invocation"}
#define PARAM_IN {"in", 1, 65536, true, "input features (the GEMM's k)"}
#define PARAM_OUT {"out", 1, 65536, true, "output features (the GEMM's m)"}

static const struct catalog_kernel kernel_table[] = {
    {
        .name = "linear",
        .op = KOP_LINEAR,
        .doc = "Fully connected layer y = x W^T + b (cuBLASLt GEMM with a BIAS epilogue); "
               "x[batch][in], W[out][in], b[out], y[batch][out].",
        .param_count = 3,
        .params = {PARAM_BATCH, PARAM_IN, PARAM_OUT},
    },
    {
        .name = "linear_relu",
        .op = KOP_LINEAR_RELU,
        .doc = "Fully connected layer followed by ReLU, y = max(x W^T + b, 0), fused "
               "(cuBLASLt RELU_BIAS epilogue).",
        .param_count = 3,
        .params = {PARAM_BATCH, PARAM_IN, PARAM_OUT},
    },
    {
        .name = "linear_gelu",
        .op = KOP_LINEAR_GELU,
        .doc = "Fully connected layer followed by GELU (tanh approximation), fused "
               "(cuBLASLt GELU_BIAS epilogue).",
        .param_count = 3,
        .params = {PARAM_BATCH, PARAM_IN, PARAM_OUT},
    },
    {
        .name = "layernorm",
        .op = KOP_LAYERNORM,
        .doc = "Layer normalisation over the last dimension, y = (x - mean) / sqrt(var + 1e-5) "
               "* gamma + beta, per row; x[rows][cols], gamma[cols], beta[cols].",
        .param_count = 2,
        .params =
            {
                {"rows", 1, 1048576, true, "rows normalised independently (batch x tokens)"},
                {"cols", 2, 65536, true, "elements per row (the normalised dimension)"},
            },
    },
};

#define KERNEL_COUNT (sizeof(kernel_table) / sizeof(kernel_table[0]))

size_t catalog_count(void) { return KERNEL_COUNT; }

const struct catalog_kernel *catalog_at(size_t i)
{
    return i < KERNEL_COUNT ? &kernel_table[i] : NULL;
}

const struct catalog_kernel *catalog_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < KERNEL_COUNT; i++)
        if (strcmp(kernel_table[i].name, name) == 0)
            return &kernel_table[i];
    return NULL;
}

int catalog_param_index(const struct catalog_kernel *k, const char *name)
{
    if (!k || !name)
        return -1;
    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++)
        if (strcmp(k->params[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- saturating size arithmetic ---- */

static uint64_t u64_param(int64_t v) { return v > 0 ? (uint64_t)v : 0; }

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

/* Elements of every buffer a configuration allocates, inputs and output. */
static uint64_t buffer_elements(const struct kernel_config *cfg)
{
    const int64_t *p = cfg->params;
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU: {
        uint64_t b = u64_param(p[0]), in = u64_param(p[1]), out = u64_param(p[2]);
        /* x[b][in] + W[out][in] + bias[out] + y[b][out] */
        return add_sat(add_sat(mul_sat(b, in), mul_sat(in, out)), add_sat(out, mul_sat(b, out)));
    }
    case KOP_LAYERNORM: {
        uint64_t rows = u64_param(p[0]), cols = u64_param(p[1]);
        /* x and y [rows][cols], gamma and beta [cols] */
        return add_sat(mul_sat(2, mul_sat(rows, cols)), mul_sat(2, cols));
    }
    }
    return 0;
}

static bool op_is_linear(enum kernel_op op)
{
    return op == KOP_LINEAR || op == KOP_LINEAR_RELU || op == KOP_LINEAR_GELU;
}

void catalog_features(const struct kernel_config *cfg, struct kernel_features *out)
{
    memset(out, 0, sizeof(*out));
    if (!cfg || !cfg->kernel)
        return;
    const int64_t *p = cfg->params;
    double size = (double)dtype_size(cfg->dtype);

    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU: {
        double b = (double)u64_param(p[0]), in = (double)u64_param(p[1]),
               o = (double)u64_param(p[2]);
        /* One multiply and one add per MAC, one add per output for the bias, and
         * one more per output for the activation (ReLU's max, GELU counted as one
         * op as a roofline model would; its tanh is a special-function unit op). */
        out->flops = 2.0 * b * in * o + b * o;
        if (cfg->kernel->op != KOP_LINEAR)
            out->flops += b * o;
        out->bytes = size * (b * in + in * o + o + b * o);
        break;
    }
    case KOP_LAYERNORM: {
        double rows = (double)u64_param(p[0]), cols = (double)u64_param(p[1]);
        /* Per element: 1 add for the mean; subtract, square, add for the variance
         * (two-pass); subtract mean, multiply by 1/stddev, multiply by gamma, add
         * beta for the output: 8. The per-row sqrt and divisions are ignored. */
        out->flops = 8.0 * rows * cols;
        out->bytes = size * (2.0 * rows * cols + 2.0 * cols);
        break;
    }
    }
    out->arithmetic_intensity = out->bytes > 0 ? out->flops / out->bytes : 0.0;
    out->memory_bytes = mul_sat(buffer_elements(cfg), dtype_size(cfg->dtype));
    if (op_is_linear(cfg->kernel->op))
        out->memory_bytes = add_sat(out->memory_bytes, CATALOG_LINEAR_WORKSPACE_BYTES);
}

size_t catalog_output_elements(const struct kernel_config *cfg)
{
    if (!cfg || !cfg->kernel)
        return 0;
    const int64_t *p = cfg->params;
    uint64_t n = 0;
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
        n = mul_sat(u64_param(p[0]), u64_param(p[2]));
        break;
    case KOP_LAYERNORM:
        n = mul_sat(u64_param(p[0]), u64_param(p[1]));
        break;
    }
    return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

unsigned catalog_input_elements(const struct kernel_config *cfg,
                                uint64_t elements[CATALOG_MAX_INPUTS])
{
    if (!cfg || !cfg->kernel || !elements)
        return 0;
    const int64_t *p = cfg->params;
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
        elements[0] = mul_sat(u64_param(p[0]), u64_param(p[1])); /* x[batch][in] */
        elements[1] = mul_sat(u64_param(p[2]), u64_param(p[1])); /* W[out][in] */
        elements[2] = u64_param(p[2]);                           /* bias[out] */
        return 3;
    case KOP_LAYERNORM:
        elements[0] = mul_sat(u64_param(p[0]), u64_param(p[1])); /* x[rows][cols] */
        elements[1] = u64_param(p[1]);                           /* gamma[cols] */
        elements[2] = u64_param(p[1]);                           /* beta[cols] */
        return 3;
    }
    return 0;
}

/* "batch=64,in=256,out=512" */
static int format_params(const struct kernel_config *cfg, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0)
        return -1;
    buf[0] = '\0';
    for (unsigned i = 0; i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        int n = snprintf(buf + used, buflen - used, "%s%s=%" PRId64, i ? "," : "",
                         cfg->kernel->params[i].name, cfg->params[i]);
        if (n < 0 || (size_t)n >= buflen - used)
            return -1;
        used += (size_t)n;
    }
    return (int)used;
}

int catalog_config_key(const struct kernel_config *cfg, char *buf, size_t buflen)
{
    if (!cfg || !cfg->kernel || !dtype_valid(cfg->dtype) || !buf || buflen == 0)
        return -1;
    int n = snprintf(buf, buflen, "%s:%s:", cfg->kernel->name, dtype_name(cfg->dtype));
    if (n < 0 || (size_t)n >= buflen)
        return -1;
    int m = format_params(cfg, buf + n, buflen - (size_t)n);
    if (m < 0)
        return -1;
    return n + m;
}

int catalog_validate(const struct kernel_config *cfg, uint64_t max_memory_bytes, char *err,
                     size_t errlen)
{
    if (!cfg || !cfg->kernel) {
        snprintf(err, errlen, "no kernel given");
        return -1;
    }
    const struct catalog_kernel *k = cfg->kernel;
    if (!dtype_valid(cfg->dtype)) {
        snprintf(err, errlen, "dtype %d is not one of fp32, fp16 (kernel %s)", (int)cfg->dtype,
                 k->name);
        return -1;
    }
    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const struct catalog_param *p = &k->params[i];
        if (cfg->params[i] < p->min || cfg->params[i] > p->max) {
            snprintf(err, errlen,
                     "parameter '%s' = %" PRId64 " is outside %s's range [%" PRId64
                     ", %" PRId64 "]",
                     p->name, cfg->params[i], k->name, p->min, p->max);
            return -1;
        }
    }
    if (max_memory_bytes > 0) {
        struct kernel_features f;
        catalog_features(cfg, &f);
        if (f.memory_bytes > max_memory_bytes) {
            char params[256];
            if (format_params(cfg, params, sizeof(params)) < 0)
                snprintf(params, sizeof(params), "(parameters)");
            snprintf(err, errlen,
                     "%s %s %s needs %" PRIu64 " bytes (%.1f MiB) but the executor has %" PRIu64
                     " bytes (%.1f MiB) free",
                     k->name, dtype_name(cfg->dtype), params, f.memory_bytes,
                     (double)f.memory_bytes / 1048576.0, max_memory_bytes,
                     (double)max_memory_bytes / 1048576.0);
            return -1;
        }
    }
    return 0;
}
