/*
 * features.h - the predictors' input: one feature vector per kernel configuration.
 *
 * Pure computation from cudakern/catalog (DESIGN.md: predict -> catalog, features
 * only). The vector is the same for training (db rows turned back into configs)
 * and for prediction (API configs, graph kernels), so a model trained on one
 * board predicts from exactly what it learnt from. The layout, per kernel type:
 *   [0]                 dtype (0 fp32, 1 fp16)
 *   [1 .. P]            each catalogue parameter, raw, in catalogue order
 *   [P+1 .. 2P]         log2 of each parameter
 *   [2P+1 .. 2P+3]      log2(FLOPs + 1), log2(bytes + 1), arithmetic intensity
 * so a kernel type with P parameters has 2P + 4 features (at most PREDICT_MAX_FEATURES).
 * PREDICT_FEATURE_VERSION changes whenever this layout does; models record it and
 * a model made for another layout is refused rather than fed the wrong columns.
 */
#ifndef JETPROF_PREDICT_FEATURES_H
#define JETPROF_PREDICT_FEATURES_H

#include "../cudakern/catalog.h"

#define PREDICT_MAX_FEATURES (2 * CATALOG_MAX_PARAMS + 4)
#define PREDICT_FEATURE_VERSION 1

/* Number of features for a kernel type (2P + 4). */
unsigned predict_feature_count(const struct catalog_kernel *k);

/* Fills out[0 .. count-1] for cfg and returns the count. */
unsigned predict_features(const struct kernel_config *cfg, float out[PREDICT_MAX_FEATURES]);

/* "dtype", "batch", ..., "log2_batch", ..., "log2_flops", "log2_bytes",
 * "arithmetic_intensity": the name of feature i of kernel type k (NULL past the end),
 * written into buf. */
const char *predict_feature_name(const struct catalog_kernel *k, unsigned i, char *buf,
                                 size_t buflen);

#endif
