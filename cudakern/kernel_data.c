/*
 * kernel_data.c - deterministic kernel inputs and the IEEE binary16 codec.
 *
 * Both executors take their inputs from here, so the CPU oracle and the CUDA
 * kernels can be compared bit for bit on the same seed. Each tensor draws from
 * its own splitmix64 stream (seeded from the run seed and the tensor's slot),
 * so a tensor's values do not depend on the sizes of the tensors before it:
 * x of linear batch=64,in=256 is the same whatever `out` is.
 *
 * The binary16 conversions are done on the bits (no _Float16, which neither
 * the Debian 12 compiler on every architecture nor nvcc's host pass guarantees),
 * rounding to nearest even, with subnormals, infinities and NaNs. This file is
 * linked into libjetprof_cuda.so too, so it uses nothing but libc.
 */
#include "kernel_data.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- splitmix64 (Steele, Lea, Flood 2014) ---- */

static uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1): 24 random bits, exactly representable in a float. */
static double uniform_pm1(uint64_t *state)
{
    uint64_t r = splitmix64_next(state) >> 40;
    return (double)r * (2.0 / 16777216.0) - 1.0;
}

/* ---- which tensors each kernel has, and how they are distributed ---- */

enum fill_kind {
    FILL_UNIT,   /* uniform [-1, 1) */
    FILL_WEIGHT, /* uniform [-1, 1) / sqrt(in): keeps dot products of order 1 */
    FILL_SMALL,  /* uniform [-0.1, 0.1): bias, beta */
    FILL_GAMMA,  /* uniform [0.5, 1.5): a scale near one, never near zero */
};

struct tensor_spec {
    const char *name;
    enum fill_kind fill;
};

/* Per kernel, its inputs in the order of catalog.h's conventions (the element
 * counts come from catalog_input_elements, which lists the same tensors). */
static const struct tensor_spec linear_tensors[] = {
    {"x", FILL_UNIT},
    {"weight", FILL_WEIGHT},
    {"bias", FILL_SMALL},
};
/* BatchNorm running statistics as a trained network has them: var in
 * [0.5, 1.5) (never near zero, so the folded scale stays of order one), mean
 * in [-0.1, 0.1). */
static const struct tensor_spec linear_bn_tensors[] = {
    {"x", FILL_UNIT},       {"weight", FILL_WEIGHT}, {"bias", FILL_SMALL}, {"gamma", FILL_GAMMA},
    {"beta", FILL_SMALL},   {"mean", FILL_SMALL},    {"var", FILL_GAMMA},
};
static const struct tensor_spec layernorm_tensors[] = {
    {"x", FILL_UNIT},
    {"gamma", FILL_GAMMA},
    {"beta", FILL_SMALL},
};
static const struct tensor_spec softmax_tensors[] = {
    {"x", FILL_UNIT},
};
static const struct tensor_spec binary_tensors[] = { /* add, add_relu, concat */
    {"a", FILL_UNIT},
    {"b", FILL_UNIT},
};
/* Unscaled q and k: scores q.k / sqrt(head_dim) stay of order one. */
static const struct tensor_spec attention_tensors[] = {
    {"q", FILL_UNIT},
    {"k", FILL_UNIT},
    {"v", FILL_UNIT},
};
/* Each output element is one multiply-add, so W needs no 1/sqrt(in) scaling. */
static const struct tensor_spec tokenizer_tensors[] = {
    {"x", FILL_UNIT},
    {"weight", FILL_UNIT},
    {"bias", FILL_SMALL},
};

static const struct tensor_spec *tensor_specs(enum kernel_op op, unsigned *count)
{
    const struct tensor_spec *specs = NULL;
    size_t n = 0;
    switch (op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
        specs = linear_tensors;
        n = sizeof(linear_tensors) / sizeof(linear_tensors[0]);
        break;
    case KOP_LINEAR_BN:
    case KOP_LINEAR_BN_RELU:
        specs = linear_bn_tensors;
        n = sizeof(linear_bn_tensors) / sizeof(linear_bn_tensors[0]);
        break;
    case KOP_LAYERNORM:
        specs = layernorm_tensors;
        n = sizeof(layernorm_tensors) / sizeof(layernorm_tensors[0]);
        break;
    case KOP_SOFTMAX:
        specs = softmax_tensors;
        n = sizeof(softmax_tensors) / sizeof(softmax_tensors[0]);
        break;
    case KOP_ADD:
    case KOP_ADD_RELU:
    case KOP_CONCAT:
        specs = binary_tensors;
        n = sizeof(binary_tensors) / sizeof(binary_tensors[0]);
        break;
    case KOP_ATTENTION:
        specs = attention_tensors;
        n = sizeof(attention_tensors) / sizeof(attention_tensors[0]);
        break;
    case KOP_TOKENIZER:
        specs = tokenizer_tensors;
        n = sizeof(tokenizer_tensors) / sizeof(tokenizer_tensors[0]);
        break;
    }
    *count = (unsigned)n;
    return specs;
}

static int fill_tensor(struct kernel_tensor *t, const struct tensor_spec *spec, size_t elements,
                       uint64_t seed, unsigned slot, double in_features, char *err,
                       size_t errlen)
{
    t->name = spec->name;
    t->elements = elements;
    t->data = NULL;
    if (elements > SIZE_MAX / sizeof(float)) {
        snprintf(err, errlen, "input '%s' of %zu elements does not fit in memory", spec->name,
                 elements);
        return -1;
    }
    t->data = malloc(elements ? elements * sizeof(float) : 1); /* malloc(0) may be NULL */
    if (!t->data) {
        snprintf(err, errlen, "cannot allocate %zu bytes for input '%s' (%zu elements)",
                 elements * sizeof(float), spec->name, elements);
        return -1;
    }
    /* A distinct, well-mixed starting point per (seed, slot). */
    uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (slot + 1));
    state = splitmix64_next(&state);
    double weight_scale = in_features > 0 ? 1.0 / sqrt(in_features) : 1.0;
    for (size_t i = 0; i < elements; i++) {
        double u = uniform_pm1(&state);
        double v = 0;
        switch (spec->fill) {
        case FILL_UNIT: v = u; break;
        case FILL_WEIGHT: v = u * weight_scale; break;
        case FILL_SMALL: v = 0.1 * u; break;
        case FILL_GAMMA: v = 1.0 + 0.5 * u; break;
        }
        t->data[i] = (float)v;
    }
    return 0;
}

int kernel_data_generate(const struct kernel_config *cfg, uint64_t seed, struct kernel_data *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!cfg || !cfg->kernel) {
        snprintf(err, errlen, "no kernel given");
        return -1;
    }
    unsigned count = 0;
    const struct tensor_spec *specs = tensor_specs(cfg->kernel->op, &count);
    uint64_t sizes[CATALOG_MAX_INPUTS];
    unsigned listed = catalog_input_elements(cfg, sizes);
    if (!specs || count == 0 || listed != count || count > KERNEL_DATA_MAX_TENSORS) {
        snprintf(err, errlen, "kernel %s has no input generator", cfg->kernel->name);
        return -1;
    }
    /* The GEMM's k for the 1/sqrt(in) weight scaling. */
    bool linear = specs == linear_tensors || specs == linear_bn_tensors;
    double in_features = linear && cfg->params[1] > 0 ? (double)cfg->params[1] : 0;

    for (unsigned i = 0; i < count; i++) {
        out->input_count = i + 1;
        size_t elements = sizes[i] > SIZE_MAX ? SIZE_MAX : (size_t)sizes[i];
        if (fill_tensor(&out->inputs[i], &specs[i], elements, seed, i, in_features, err,
                        errlen) < 0) {
            kernel_data_free(out);
            return -1;
        }
    }
    out->output_elements = catalog_output_elements(cfg);
    return 0;
}

int kernel_data_fold_batchnorm(const struct kernel_config *cfg, struct kernel_data *d, char *err,
                               size_t errlen)
{
    if (!cfg || !cfg->kernel || !d) {
        snprintf(err, errlen, "no kernel or data given");
        return -1;
    }
    if (cfg->kernel->op != KOP_LINEAR_BN && cfg->kernel->op != KOP_LINEAR_BN_RELU)
        return 0;
    if (d->input_count != 7 || cfg->params[1] <= 0 || cfg->params[2] <= 0) {
        snprintf(err, errlen, "%s needs 7 inputs (x, weight, bias, gamma, beta, mean, var), got %u",
                 cfg->kernel->name, d->input_count);
        return -1;
    }
    size_t in = (size_t)cfg->params[1], out_features = (size_t)cfg->params[2];
    float *w = d->inputs[1].data, *bias = d->inputs[2].data;
    const float *gamma = d->inputs[3].data, *beta = d->inputs[4].data,
                *mean = d->inputs[5].data, *var = d->inputs[6].data;
    if (d->inputs[1].elements / in != out_features || d->inputs[2].elements != out_features ||
        d->inputs[6].elements != out_features) {
        snprintf(err, errlen, "%s inputs do not match out=%zu, in=%zu", cfg->kernel->name,
                 out_features, in);
        return -1;
    }
    for (size_t o = 0; o < out_features; o++) {
        if (!(var[o] + KERNEL_DATA_BN_EPS > 0)) {
            snprintf(err, errlen, "%s: BatchNorm var[%zu] = %g leaves var + eps not positive",
                     cfg->kernel->name, o, (double)var[o]);
            return -1;
        }
    }
    for (size_t o = 0; o < out_features; o++) {
        double scale = (double)gamma[o] / sqrt((double)var[o] + KERNEL_DATA_BN_EPS);
        float *wo = w + o * in;
        for (size_t i = 0; i < in; i++)
            wo[i] = (float)((double)wo[i] * scale);
        bias[o] = (float)(((double)bias[o] - (double)mean[o]) * scale + (double)beta[o]);
    }
    for (unsigned t = 3; t < 7; t++) {
        free(d->inputs[t].data);
        d->inputs[t].data = NULL;
        d->inputs[t].elements = 0;
    }
    d->input_count = 3;
    return 0;
}

void kernel_data_free(struct kernel_data *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->input_count && i < KERNEL_DATA_MAX_TENSORS; i++) {
        free(d->inputs[i].data);
        d->inputs[i].data = NULL;
    }
    d->input_count = 0;
}

/* ---- IEEE 754 binary16 ---- */

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Rounds m >> shift to nearest, ties to even (1 <= shift <= 31). */
static uint32_t shift_round_even(uint32_t m, unsigned shift)
{
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return q;
}

uint16_t half_from_float(float f)
{
    uint32_t x = float_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffff;

    if (a >= 0x7f800000) {
        if (a == 0x7f800000)
            return sign | 0x7c00;
        /* NaN: keep the top payload bits, force quiet so it stays a NaN. */
        return (uint16_t)(sign | 0x7e00 | ((a & 0x7fffff) >> 13));
    }
    /* 65520 is halfway between 65504 (the largest half) and 2^16; the tie goes to
     * the even neighbour, 2^16, which is out of range: infinity. */
    if (a >= 0x477ff000)
        return sign | 0x7c00;
    if (a >= 0x38800000) { /* normal half: 2^-14 <= |f| */
        /* Rebias the exponent (127 -> 15), then round the 13 dropped bits to
         * nearest even without a branch (the oracle converts millions of values
         * per launch): adding 0xfff plus the kept lsb carries exactly when the
         * dropped part is above half, or at half with an odd lsb. A carry into
         * the exponent is the correct result. */
        uint32_t r = a - (112u << 23);
        r += 0xfff + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    /* Subnormal half (m * 2^-24) or zero. With the implicit bit, |f| =
     * mant * 2^(e - 150), so m = mant >> (126 - e). Below 2^-25 it rounds to 0. */
    uint32_t e = a >> 23;
    if (e < 102) /* |f| < 2^-25: rounds to zero (2^-25 itself is caught below) */
        return sign;
    uint32_t mant = (a & 0x7fffff) | 0x800000;
    uint32_t m = shift_round_even(mant, 126 - e); /* may round up to 0x400: min normal */
    return (uint16_t)(sign | m);
}

float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;

    if (exp == 0x1f)
        return bits_float(sign | 0x7f800000 | (mant << 13));
    if (exp != 0)
        return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0)
        return bits_float(sign);
    /* Subnormal: normalise so the leading one becomes the implicit bit. */
    uint32_t e = 113;
    while (!(mant & 0x400)) {
        mant <<= 1;
        e--;
    }
    return bits_float(sign | (e << 23) | ((mant & 0x3ff) << 13));
}
