/*
 * features.c - the feature vector of a kernel configuration, the one input of
 * every predictor (layout in features.h).
 *
 * Everything derives from cudakern/catalog: the parameters in catalogue order,
 * and catalog_features() for FLOPs, bytes moved and arithmetic intensity. The
 * same function builds the rows a model is trained on and the rows it later
 * predicts, so the float values (and therefore the trees' float comparisons)
 * agree bit for bit between training and prediction.
 *
 * Raw parameters are kept next to their log2: the two are monotone in each other,
 * so either separates the same training rows, but an exact-greedy tree puts its
 * threshold midway between two seen values, and midway in log scale is the better
 * guess for the log-uniformly drawn sweep values (a config between two measured
 * ones). Which column wins is left to the booster. The FLOPs and bytes columns
 * are log2(x + 1) so a zero (concat has no FLOPs) is 0 rather than -inf.
 */
#include "features.h"

#include <math.h>
#include <stdio.h>

/* Parameters of k that take part in the vector (the catalogue never has more than
 * CATALOG_MAX_PARAMS, the clamp only keeps a corrupt entry from overrunning out[]). */
static unsigned param_count_of(const struct catalog_kernel *k)
{
    return k->param_count < CATALOG_MAX_PARAMS ? k->param_count : CATALOG_MAX_PARAMS;
}

unsigned predict_feature_count(const struct catalog_kernel *k)
{
    return k ? 2 * param_count_of(k) + 4 : 0;
}

/* log2 of a parameter. Catalogue minimums are all >= 1, so a validated config
 * never gets here with v <= 0; an unvalidated one gets NaN (XGBoost's "missing")
 * rather than a fake number, and training refuses NaN rows. */
static float log2_param(int64_t v)
{
    return v > 0 ? (float)log2((double)v) : NAN;
}

unsigned predict_features(const struct kernel_config *cfg, float out[PREDICT_MAX_FEATURES])
{
    if (!cfg || !cfg->kernel)
        return 0;
    unsigned p = param_count_of(cfg->kernel);
    struct kernel_features kf;
    catalog_features(cfg, &kf);

    out[0] = (float)cfg->dtype;
    for (unsigned i = 0; i < p; i++) {
        out[1 + i] = (float)cfg->params[i];
        out[1 + p + i] = log2_param(cfg->params[i]);
    }
    out[2 * p + 1] = (float)log2(kf.flops + 1.0);
    out[2 * p + 2] = (float)log2(kf.bytes + 1.0);
    out[2 * p + 3] = (float)kf.arithmetic_intensity;
    return 2 * p + 4;
}

/* The three derived columns after the per-parameter ones, in layout order. */
static const char *const derived_names[] = {"log2_flops", "log2_bytes", "arithmetic_intensity"};

const char *predict_feature_name(const struct catalog_kernel *k, unsigned i, char *buf,
                                 size_t buflen)
{
    if (!k || !buf || buflen == 0 || i >= predict_feature_count(k))
        return NULL;
    unsigned p = param_count_of(k);
    int n;
    if (i == 0)
        n = snprintf(buf, buflen, "dtype");
    else if (i <= p)
        n = snprintf(buf, buflen, "%s", k->params[i - 1].name);
    else if (i <= 2 * p)
        n = snprintf(buf, buflen, "log2_%s", k->params[i - 1 - p].name);
    else
        n = snprintf(buf, buflen, "%s", derived_names[i - 2 * p - 1]);
    /* A truncated name would be a different name: refuse it. */
    if (n < 0 || (size_t)n >= buflen)
        return NULL;
    return buf;
}
