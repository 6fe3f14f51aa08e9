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

#define KERNEL_DATA_MAX_TENSORS 4

struct kernel_tensor {
    const char *name; /* "x", "weight", "bias", "gamma", "beta" */
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

/* IEEE 754 binary16 <-> binary32, round to nearest even; no _Float16 needed. */
uint16_t half_from_float(float f);
float half_to_float(uint16_t h);

#endif
