/*
 * catalog.h - the single list of kernel types jetprof can measure.
 *
 * Each entry names a fused kernel, its integer parameters with their valid
 * ranges, and how to compute its features (FLOPs, bytes moved, arithmetic
 * intensity) and the device memory a configuration needs. The HTTP API
 * validates against it, sweeps draw from it, predictors take their features
 * from it and graph fusion maps onto it. Nothing else keeps a list of kernels.
 *
 * Tensor conventions shared by every executor (row-major), inputs in this order
 * (kernel_data.c generates them in this order):
 *   linear*:      x[batch][in], W[out][in], bias[out]   -> y[batch][out] = act(x W^T + bias)
 *   linear_bn*:   x, W, bias as linear, then BatchNorm gamma[out], beta[out], mean[out],
 *                 var[out] (var > 0), eps = 1e-5; at inference BatchNorm is folded into
 *                 W'[o][i] = W[o][i] * s[o], b'[o] = (bias[o] - mean[o]) * s[o] + beta[o],
 *                 s[o] = gamma[o] / sqrt(var[o] + eps), during prepare (not timed);
 *                 y = act(x W'^T + b')
 *   layernorm:    x[rows][cols], gamma[cols], beta[cols] -> y[rows][cols], eps = 1e-5
 *   softmax:      x[rows][cols]                        -> y[r][c] = exp(x[r][c] - max_r) / sum_r
 *   add, add_relu: a[rows][cols], b[rows][cols]        -> y = a + b (relu for add_relu)
 *   attention:    q, k, v each [batch][heads][tokens][head_dim]
 *                 -> y[b][h][t][:] = softmax_j(q[b][h][t] . k[b][h][j] / sqrt(head_dim)) v[b][h][j]
 *                 (the scaled dot-product core; projections are linear kernels)
 *   tokenizer:    x[batch][features] (numerical features), W[features][d], bias[features][d]
 *                 -> y[b][f][k] = x[b][f] * W[f][k] + bias[f][k] (FT-Transformer's
 *                 numerical feature tokenizer, without the CLS token)
 *   concat:       a[rows][cols_a], b[rows][cols_b]    -> y[rows][cols_a + cols_b]
 * fp16 configurations hold every tensor in binary16; arithmetic accumulates in fp32.
 */
#ifndef JETPROF_CATALOG_H
#define JETPROF_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATALOG_MAX_PARAMS 6

enum dtype {
    DTYPE_FP32 = 0,
    DTYPE_FP16 = 1,
};
#define DTYPE_COUNT 2

const char *dtype_name(enum dtype d);             /* "fp32", "fp16" */
int dtype_parse(const char *name, enum dtype *out); /* 0 or -1 */
size_t dtype_size(enum dtype d);                  /* bytes per element */

enum kernel_op {
    KOP_LINEAR,      /* y = x W^T + b */
    KOP_LINEAR_RELU, /* y = relu(x W^T + b) */
    KOP_LINEAR_GELU, /* y = gelu(x W^T + b), tanh approximation */
    KOP_LAYERNORM,   /* y = (x - mean) / sqrt(var + eps) * gamma + beta, per row */
    KOP_LINEAR_BN,       /* linear with BatchNorm folded in */
    KOP_LINEAR_BN_RELU,  /* the same, then relu */
    KOP_SOFTMAX,         /* per row */
    KOP_ADD,             /* elementwise a + b */
    KOP_ADD_RELU,        /* relu(a + b) */
    KOP_ATTENTION,       /* scaled dot-product attention core */
    KOP_TOKENIZER,       /* FT-Transformer numerical feature tokenizer */
    KOP_CONCAT,          /* along columns */
};

struct catalog_param {
    const char *name;
    int64_t min, max; /* inclusive */
    bool log_scale;   /* random sweeps draw log-uniformly */
    const char *doc;
};

struct catalog_kernel {
    const char *name;
    enum kernel_op op;
    const char *doc;
    unsigned param_count;
    struct catalog_param params[CATALOG_MAX_PARAMS];
};

/* A concrete configuration: a kernel, a dtype and one value per parameter,
 * in the order of kernel->params. */
struct kernel_config {
    const struct catalog_kernel *kernel;
    enum dtype dtype;
    int64_t params[CATALOG_MAX_PARAMS];
};

/*
 * Workspace the CUDA executor hands cuBLASLt for the linear kernels (the
 * heuristic may pick split-K or stream-K algorithms that need it). It is part
 * of a linear configuration's memory_bytes, so the memory check before a job
 * and the allocation in exec_cuda.cu use one number. 32 MiB is NVIDIA's
 * recommendation for Hopper and more than any Orin algorithm asks for.
 */
#define CATALOG_LINEAR_WORKSPACE_BYTES (32ull * 1024 * 1024)

struct kernel_features {
    double flops;                /* floating-point operations per invocation */
    double bytes;                /* bytes read + written per invocation (ideal) */
    double arithmetic_intensity; /* flops / bytes */
    /* The configuration's own buffers (inputs, output, cuBLASLt workspace for
     * linear*) in its dtype: a feature and a lower bound. What an executor
     * really allocates, transient copies included, is exec_memory_needed(). */
    uint64_t memory_bytes;
};

size_t catalog_count(void);
const struct catalog_kernel *catalog_at(size_t i);
const struct catalog_kernel *catalog_find(const char *name); /* NULL if unknown */
/* "linear, linear_relu, ...": every kernel's name, for messages that list what
 * is accepted; cut at the last name that fits buflen. */
void catalog_kernel_names(char *buf, size_t buflen);
/* Index of the parameter called name in k, or -1. */
int catalog_param_index(const struct catalog_kernel *k, const char *name);

/*
 * Checks every parameter against its range and the whole config against
 * max_memory_bytes (0 = no limit). On failure returns -1 and writes a message
 * that names the parameter and the range, e.g.
 * "parameter 'batch' = 0 is outside linear_relu's range [1, 65536]".
 */
int catalog_validate(const struct kernel_config *cfg, uint64_t max_memory_bytes, char *err,
                     size_t errlen);

void catalog_features(const struct kernel_config *cfg, struct kernel_features *out);

/* Element counts of the output tensor, for oracle comparisons. */
size_t catalog_output_elements(const struct kernel_config *cfg);

/*
 * Element counts of the input tensors, in the order kernel_data_generate()
 * makes them (the order of the tensor conventions above), saturating at
 * UINT64_MAX. Returns how many tensors were written (0 for no kernel). The
 * executors' memory_needed is built on these.
 */
#define CATALOG_MAX_INPUTS 8 /* linear_bn* has 7: x, weight, bias, gamma, beta, mean, var */
unsigned catalog_input_elements(const struct kernel_config *cfg,
                                uint64_t elements[CATALOG_MAX_INPUTS]);

/*
 * Canonical text key of a configuration, identical for identical configs:
 * "linear_relu:fp32:batch=64,in=256,out=512". Returns the length, or -1 if it
 * does not fit.
 */
int catalog_config_key(const struct kernel_config *cfg, char *buf, size_t buflen);

#endif
