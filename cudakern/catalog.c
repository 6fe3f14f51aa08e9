/*
 * catalog.c - the kernel catalogue: one static table of kernel types, and the
 * arithmetic every other module derives from it (validation, FLOPs, bytes,
 * device memory, canonical keys).
 *
 * Adding a kernel means adding a row to kernel_table, a case to
 * tensor_shapes_of() (its tensors, in kernel_data.c's order) and to
 * catalog_features() (FLOPs and bytes, with the counting written out), and the
 * kernel itself to both executors. This file is also linked into libjetprof_cuda.so, so it uses
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
#define PARAM_ROWS(what) {"rows", 1, 1048576, true, what}

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
                PARAM_ROWS("rows normalised independently (batch x tokens)"),
                {"cols", 2, 65536, true, "elements per row (the normalised dimension)"},
            },
    },
    {
        .name = "linear_bn",
        .op = KOP_LINEAR_BN,
        .doc = "Fully connected layer followed by BatchNorm (eps 1e-5), as inference runs it: "
               "the BatchNorm is folded into W and b when the config is prepared, so the timed "
               "kernel is the linear GEMM with a BIAS epilogue.",
        .param_count = 3,
        .params = {PARAM_BATCH, PARAM_IN, PARAM_OUT},
    },
    {
        .name = "linear_bn_relu",
        .op = KOP_LINEAR_BN_RELU,
        .doc = "Fully connected layer, BatchNorm (folded into W and b at prepare) and ReLU: "
               "the linear GEMM with a RELU_BIAS epilogue.",
        .param_count = 3,
        .params = {PARAM_BATCH, PARAM_IN, PARAM_OUT},
    },
    {
        .name = "softmax",
        .op = KOP_SOFTMAX,
        .doc = "Softmax over the last dimension, y[r][c] = exp(x[r][c] - max_r) / sum_r, per "
               "row; x[rows][cols].",
        .param_count = 2,
        .params =
            {
                PARAM_ROWS("rows normalised independently (batch x tokens)"),
                {"cols", 2, 65536, true, "elements per row (the softmax dimension)"},
            },
    },
    {
        .name = "add",
        .op = KOP_ADD,
        .doc = "Elementwise sum y = a + b (a residual connection); a, b, y [rows][cols].",
        .param_count = 2,
        .params =
            {
                PARAM_ROWS("rows (batch x tokens)"),
                {"cols", 1, 65536, true, "elements per row"},
            },
    },
    {
        .name = "add_relu",
        .op = KOP_ADD_RELU,
        .doc = "Elementwise sum followed by ReLU, y = max(a + b, 0), fused (the end of a "
               "ResNet block); a, b, y [rows][cols].",
        .param_count = 2,
        .params =
            {
                PARAM_ROWS("rows (batch x tokens)"),
                {"cols", 1, 65536, true, "elements per row"},
            },
    },
    {
        .name = "attention",
        .op = KOP_ATTENTION,
        .doc = "Scaled dot-product attention core, y = softmax(q k^T / sqrt(head_dim)) v per "
               "batch and head; q, k, v, y [batch][heads][tokens][head_dim] (the Q, K, V and "
               "output projections are linear kernels).",
        .param_count = 4,
        .params =
            {
                {"batch", 1, 4096, true, "sequences per invocation"},
                {"tokens", 1, 4096, true, "sequence length (FT-Transformer: features + 1)"},
                {"heads", 1, 64, true, "attention heads"},
                {"head_dim", 1, 256, true, "elements per head (model width / heads)"},
            },
    },
    {
        .name = "tokenizer",
        .op = KOP_TOKENIZER,
        .doc = "FT-Transformer numerical feature tokenizer, y[b][f][k] = x[b][f] * W[f][k] + "
               "bias[f][k]; x[batch][features], W and bias [features][d], y[batch][features][d] "
               "(no CLS token).",
        .param_count = 3,
        .params =
            {
                {"batch", 1, 65536, true, "samples per invocation"},
                {"features", 1, 4096, true, "numerical features, one token each"},
                {"d", 1, 1024, true, "token width (the model dimension)"},
            },
    },
    {
        .name = "concat",
        .op = KOP_CONCAT,
        .doc = "Concatenation along columns, y[r] = [a[r], b[r]]; a[rows][cols_a], "
               "b[rows][cols_b], y[rows][cols_a + cols_b].",
        .param_count = 3,
        .params =
            {
                PARAM_ROWS("rows (batch)"),
                {"cols_a", 1, 65536, true, "columns of the first input"},
                {"cols_b", 1, 65536, true, "columns of the second input"},
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

void catalog_kernel_names(char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < catalog_count(); i++) {
        int n = snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "", catalog_at(i)->name);
        if (n < 0 || (size_t)n >= buflen - used)
            return;
        used += (size_t)n;
    }
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

/*
 * The tensors of a configuration, in the order of the conventions in catalog.h:
 * names and element counts (saturating) of every input and of the output, and
 * how many of the inputs the timed kernel itself reads (linear_bn*'s BatchNorm
 * vectors are consumed when prepare folds them into W and bias).
 */
struct tensor_shapes {
    unsigned input_count;
    unsigned run_inputs;
    const char *input_names[CATALOG_MAX_INPUTS];
    uint64_t inputs[CATALOG_MAX_INPUTS];
    uint64_t output;
};

static bool tensor_shapes_of(const struct kernel_config *cfg, struct tensor_shapes *s)
{
    memset(s, 0, sizeof(*s));
    if (!cfg || !cfg->kernel)
        return false;
    const int64_t *p = cfg->params;
    uint64_t a = u64_param(p[0]), b = u64_param(p[1]), c = u64_param(p[2]),
             d = u64_param(p[3]);
#define INPUT(n, e) (s->input_names[s->input_count] = (n), s->inputs[s->input_count++] = (e))
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
    case KOP_LINEAR_BN:
    case KOP_LINEAR_BN_RELU: /* a = batch, b = in, c = out */
        INPUT("x", mul_sat(a, b));
        INPUT("weight", mul_sat(c, b));
        INPUT("bias", c);
        s->run_inputs = 3;
        if (cfg->kernel->op == KOP_LINEAR_BN || cfg->kernel->op == KOP_LINEAR_BN_RELU) {
            INPUT("gamma", c);
            INPUT("beta", c);
            INPUT("mean", c);
            INPUT("var", c);
        }
        s->output = mul_sat(a, c);
        return true;
    case KOP_LAYERNORM: /* a = rows, b = cols */
        INPUT("x", mul_sat(a, b));
        INPUT("gamma", b);
        INPUT("beta", b);
        s->run_inputs = 3;
        s->output = mul_sat(a, b);
        return true;
    case KOP_SOFTMAX:
        INPUT("x", mul_sat(a, b));
        s->run_inputs = 1;
        s->output = mul_sat(a, b);
        return true;
    case KOP_ADD:
    case KOP_ADD_RELU:
        INPUT("a", mul_sat(a, b));
        INPUT("b", mul_sat(a, b));
        s->run_inputs = 2;
        s->output = mul_sat(a, b);
        return true;
    case KOP_ATTENTION: { /* a = batch, b = tokens, c = heads, d = head_dim */
        uint64_t n = mul_sat(mul_sat(a, c), mul_sat(b, d));
        INPUT("q", n);
        INPUT("k", n);
        INPUT("v", n);
        s->run_inputs = 3;
        s->output = n;
        return true;
    }
    case KOP_TOKENIZER: /* a = batch, b = features, c = d */
        INPUT("x", mul_sat(a, b));
        INPUT("weight", mul_sat(b, c));
        INPUT("bias", mul_sat(b, c));
        s->run_inputs = 3;
        s->output = mul_sat(mul_sat(a, b), c);
        return true;
    case KOP_CONCAT: /* a = rows, b = cols_a, c = cols_b */
        INPUT("a", mul_sat(a, b));
        INPUT("b", mul_sat(a, c));
        s->run_inputs = 2;
        s->output = mul_sat(a, add_sat(b, c));
        return true;
    }
#undef INPUT
    return false;
}

static bool op_is_linear(enum kernel_op op)
{
    return op == KOP_LINEAR || op == KOP_LINEAR_RELU || op == KOP_LINEAR_GELU ||
           op == KOP_LINEAR_BN || op == KOP_LINEAR_BN_RELU;
}

/*
 * FLOPs are counted per invocation of the timed kernel, one per add, multiply,
 * compare or max, and one per exp/tanh (a special-function unit op, as a roofline
 * model counts it); per-row scalars (a sqrt, a reciprocal) are ignored. Bytes are
 * the ideal traffic: every input the timed kernel reads, read once, and the
 * output written once; intermediates that a fused kernel keeps on chip (the
 * attention scores) are not counted.
 */
void catalog_features(const struct kernel_config *cfg, struct kernel_features *out)
{
    memset(out, 0, sizeof(*out));
    struct tensor_shapes shapes;
    if (!tensor_shapes_of(cfg, &shapes))
        return;
    const int64_t *p = cfg->params;
    double size = (double)dtype_size(cfg->dtype);
    double a = (double)u64_param(p[0]), b = (double)u64_param(p[1]),
           c = (double)u64_param(p[2]), d = (double)u64_param(p[3]);

    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
    case KOP_LINEAR_BN:
    case KOP_LINEAR_BN_RELU:
        /* batch a, in b, out c. One multiply and one add per MAC, one add per
         * output for the bias, and one more per output for the activation (ReLU's
         * max; GELU counted as one op). The _bn variants run the same GEMM on the
         * folded W' and b' (the fold happens at prepare, untimed), so they count
         * exactly as linear / linear_relu. */
        out->flops = 2.0 * a * b * c + a * c;
        if (cfg->kernel->op != KOP_LINEAR && cfg->kernel->op != KOP_LINEAR_BN)
            out->flops += a * c;
        out->bytes = size * (a * b + b * c + c + a * c);
        break;
    case KOP_LAYERNORM:
        /* rows a, cols b. Per element: 1 add for the mean; subtract, square, add
         * for the variance (two-pass); subtract mean, multiply by 1/stddev,
         * multiply by gamma, add beta for the output: 8. */
        out->flops = 8.0 * a * b;
        out->bytes = size * (2.0 * a * b + 2.0 * b);
        break;
    case KOP_SOFTMAX:
        /* rows a, cols b. Per element: 1 compare for the row max, 1 subtract and
         * 1 exp, 1 add for the row sum, 1 multiply by the reciprocal: 5. */
        out->flops = 5.0 * a * b;
        out->bytes = size * 2.0 * a * b;
        break;
    case KOP_ADD:
    case KOP_ADD_RELU:
        /* rows a, cols b. 1 add per element, and 1 max for add_relu. */
        out->flops = (cfg->kernel->op == KOP_ADD ? 1.0 : 2.0) * a * b;
        out->bytes = size * 3.0 * a * b;
        break;
    case KOP_ATTENTION: {
        /* batch a, tokens b, heads c, head_dim d; per (batch, head), with
         * t = tokens: q k^T 2 t^2 d; the 1/sqrt(d) scale t^2; the softmax 5 t^2
         * (as the softmax kernel); P v 2 t^2 d. Total a c t^2 (4 d + 6). */
        double pairs = a * c * b * b;
        out->flops = pairs * (4.0 * d + 6.0);
        out->bytes = size * 4.0 * a * c * b * d; /* q, k, v read, y written */
        break;
    }
    case KOP_TOKENIZER:
        /* batch a, features b, d c. 1 multiply and 1 add per output element. */
        out->flops = 2.0 * a * b * c;
        out->bytes = size * (a * b + 2.0 * b * c + a * b * c);
        break;
    case KOP_CONCAT:
        /* rows a, cols_a b, cols_b c. Pure data movement: no FLOPs. */
        out->flops = 0.0;
        out->bytes = size * 2.0 * a * (b + c);
        break;
    }
    out->arithmetic_intensity = out->bytes > 0 ? out->flops / out->bytes : 0.0;

    /* The timed kernel's own buffers: the inputs it reads and its output (for the
     * _bn variants W' and b' replace W and bias; the BatchNorm vectors are gone
     * after prepare), plus the cuBLASLt workspace of the linear kernels. */
    uint64_t elements = shapes.output;
    for (unsigned t = 0; t < shapes.run_inputs; t++)
        elements = add_sat(elements, shapes.inputs[t]);
    out->memory_bytes = mul_sat(elements, dtype_size(cfg->dtype));
    if (op_is_linear(cfg->kernel->op))
        out->memory_bytes = add_sat(out->memory_bytes, CATALOG_LINEAR_WORKSPACE_BYTES);
}

size_t catalog_output_elements(const struct kernel_config *cfg)
{
    struct tensor_shapes shapes;
    if (!tensor_shapes_of(cfg, &shapes))
        return 0;
    return shapes.output > SIZE_MAX ? SIZE_MAX : (size_t)shapes.output;
}

unsigned catalog_input_elements(const struct kernel_config *cfg,
                                uint64_t elements[CATALOG_MAX_INPUTS])
{
    struct tensor_shapes shapes;
    if (!elements || !tensor_shapes_of(cfg, &shapes))
        return 0;
    for (unsigned t = 0; t < shapes.input_count; t++)
        elements[t] = shapes.inputs[t];
    return shapes.input_count;
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
    /* Every tensor must be addressable as fp32 (the executors' master copy):
     * sizes saturate rather than wrap, so a saturated count means "too large". */
    struct tensor_shapes shapes;
    if (tensor_shapes_of(cfg, &shapes)) {
        const uint64_t limit = (uint64_t)(SIZE_MAX / sizeof(float)) < UINT64_MAX / 4
                                   ? (uint64_t)(SIZE_MAX / sizeof(float))
                                   : UINT64_MAX / 4;
        const char *name = NULL;
        uint64_t count = 0;
        for (unsigned t = 0; t < shapes.input_count && !name; t++)
            if (shapes.inputs[t] > limit) {
                name = shapes.input_names[t];
                count = shapes.inputs[t];
            }
        if (!name && shapes.output > limit) {
            name = "y";
            count = shapes.output;
        }
        if (name) {
            char params[256];
            if (format_params(cfg, params, sizeof(params)) < 0)
                snprintf(params, sizeof(params), "(parameters)");
            char elements[32];
            if (count == UINT64_MAX) /* saturated: the product did not fit */
                snprintf(elements, sizeof(elements), "more than 2^64");
            else
                snprintf(elements, sizeof(elements), "%" PRIu64, count);
            snprintf(err, errlen,
                     "%s %s %s is too large: tensor '%s' would have %s elements, more than "
                     "the %" PRIu64 " this host can address",
                     k->name, dtype_name(cfg->dtype), params, name, elements, limit);
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
