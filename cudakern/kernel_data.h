/*
 * kernel_data.h - deterministic host-side inputs and the fp16 codec.
 *
 * Every executor fills its buffers from kernel_data_generate(), so the CPU
 * oracle and the CUDA executor see bit-identical inputs for the same config and
 * seed. Values are small (|v| <= 1, weights scaled by 1/sqrt(in)) so fp16 neither
 * overflows nor loses the comparison to rounding.
 */
#ifndef JETPROF_KERNEL_DATA_H
#define JETPROF_KERNEL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

#define KERNEL_DATA_MAX_TENSORS 8

struct kernel_tensor {
    const char *name; /* "x", "weight", "bias", "gamma", "beta", "mean", "var", "a", "b",
                       * "q", "k", "v" */
    size_t elements;
    float *data;      /* heap, fp32 master copy */
};

struct kernel_data {
    unsigned input_count;
    struct kernel_tensor inputs[KERNEL_DATA_MAX_TENSORS];
    size_t output_elements;
};

/* Allocates and fills every input of cfg. 0, or -1 with err (allocation failure). */
int kernel_data_generate(const struct kernel_config *cfg, uint64_t seed, struct kernel_data *out,
                         char *err, size_t errlen);
void kernel_data_free(struct kernel_data *d);

/*
 * BatchNorm folding for linear_bn / linear_bn_relu, as inference runs them:
 * with s[o] = gamma[o] / sqrt(var[o] + eps) (in double), the weight becomes
 * W'[o][i] = (float)(W[o][i] * s[o]) and the bias b'[o] = (float)((bias[o] -
 * mean[o]) * s[o] + beta[o]), in place; gamma, beta, mean and var are freed and
 * input_count becomes 3, so the data is a linear layer's (x, weight, bias).
 * Both executors call it at prepare, on the fp32 master copy, before any fp16
 * conversion. A no-op (0) for every other kernel; -1 with err when d is not
 * what kernel_data_generate made for cfg or var + eps is not positive.
 */
#define KERNEL_DATA_BN_EPS 1e-5
int kernel_data_fold_batchnorm(const struct kernel_config *cfg, struct kernel_data *d, char *err,
                               size_t errlen);

/* IEEE 754 binary16 <-> binary32, round to nearest even; no _Float16 needed. */
uint16_t half_from_float(float f);
float half_to_float(uint16_t h);

#endif
