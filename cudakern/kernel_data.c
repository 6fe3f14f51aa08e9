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

static const struct tensor_spec linear_tensors[] = {
    {"x", FILL_UNIT},
    {"weight", FILL_WEIGHT},
    {"bias", FILL_SMALL},
};
static const struct tensor_spec layernorm_tensors[] = {
    {"x", FILL_UNIT},
    {"gamma", FILL_GAMMA},
    {"beta", FILL_SMALL},
};

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

static size_t mul_size(int64_t a, int64_t b)
{
    size_t r;
    if (a < 0 || b < 0)
        return 0;
    return __builtin_mul_overflow((size_t)a, (size_t)b, &r) ? SIZE_MAX : r;
}

int kernel_data_generate(const struct kernel_config *cfg, uint64_t seed, struct kernel_data *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!cfg || !cfg->kernel) {
        snprintf(err, errlen, "no kernel given");
        return -1;
    }
    const int64_t *p = cfg->params;
    const struct tensor_spec *specs;
    size_t sizes[KERNEL_DATA_MAX_TENSORS];
    unsigned count;
    double in_features = 0;

    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
        specs = linear_tensors;
        count = 3;
        sizes[0] = mul_size(p[0], p[1]); /* x[batch][in] */
        sizes[1] = mul_size(p[2], p[1]); /* W[out][in] */
        sizes[2] = mul_size(p[2], 1);    /* bias[out] */
        in_features = (double)p[1];
        break;
    case KOP_LAYERNORM:
        specs = layernorm_tensors;
        count = 3;
        sizes[0] = mul_size(p[0], p[1]); /* x[rows][cols] */
        sizes[1] = mul_size(p[1], 1);    /* gamma[cols] */
        sizes[2] = mul_size(p[1], 1);    /* beta[cols] */
        break;
    default:
        snprintf(err, errlen, "kernel %s has no input generator", cfg->kernel->name);
        return -1;
    }

    for (unsigned i = 0; i < count; i++) {
        out->input_count = i + 1;
        if (fill_tensor(&out->inputs[i], &specs[i], sizes[i], seed, i, in_features, err,
                        errlen) < 0) {
            kernel_data_free(out);
            return -1;
        }
    }
    out->output_elements = catalog_output_elements(cfg);
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
