/*
 * trees.h - gradient-boosted regression trees, evaluated without XGBoost.
 *
 * Training uses the XGBoost C API (train.h); prediction does not. A trained
 * booster is saved in XGBoost's own JSON model format and loaded here into flat
 * node arrays, so one prediction is a few hundred array reads (microseconds,
 * no DMatrix, no locks, safe from any number of threads once loaded), the daemon
 * and the offline CLI evaluate identical code, and a search loop can call it
 * thousands of times a second. Only what jetprof's boosters use is accepted:
 * objective reg:squarederror, booster gbtree, numerical splits; anything else is
 * refused with an error that says what was found.
 *
 * Semantics follow XGBoost: a node goes left when feature < split_condition
 * (float comparison), a missing (NaN) feature follows default_left, the
 * prediction is base_score + the sum of the leaf values, accumulated in float
 * as XGBoost does, so results agree with XGBoosterPredict to float rounding.
 */
#ifndef JETPROF_PREDICT_TREES_H
#define JETPROF_PREDICT_TREES_H

#include <stddef.h>

struct tree_ensemble;

/* Parses an XGBoost JSON model (XGBoosterSaveModelToBuffer with
 * {"format": "json"}). Returns 0 and *out, or -1 with the reason in err. */
int trees_load_xgboost_json(const char *json, size_t len, struct tree_ensemble **out,
                            char *err, size_t errlen);

/* The same from an already parsed model (a jansson json_t), for callers that
 * hold it inside a larger document (models.c: a blob's "members"): printing it
 * back to text only to parse it again would double the load time of a set. */
struct json_t;
int trees_load_xgboost_value(const struct json_t *model, struct tree_ensemble **out, char *err,
                             size_t errlen);

/* The model's prediction for one row of feature_count features. Features past
 * the model's num_feature are ignored; a model needing more than given reads NaN. */
double trees_predict(const struct tree_ensemble *t, const float *features,
                     unsigned feature_count);

unsigned trees_count(const struct tree_ensemble *t);        /* boosted trees */
unsigned trees_feature_count(const struct tree_ensemble *t); /* learner's num_feature */
void trees_free(struct tree_ensemble *t);

#endif
