/*
 * train.h - training one predictor (a small bagged ensemble of XGBoost boosters)
 * and scoring it on a held-out split.
 *
 * Pure computation: rows in, model JSON and metrics out; the caller (the daemon's
 * runner, between jobs) reads the rows from the database and stores the result.
 * Determinism: the split and the bootstrap resamples come from opt->seed with a
 * fixed generator, and XGBoost runs with that seed and nthread = opt->threads, so
 * the same rows and options give the same models (and the same training hash
 * upstream identifies them).
 *
 * Procedure: shuffle the row indices with the seed; the first
 * round(holdout_fraction * n) (at least 1 when n >= 2) are the held-out test set, the
 * rest the training set. Each of ensemble_size members is a booster
 * (reg:squarederror, gbtree, max_depth, eta, rounds boosting rounds) trained on
 * a bootstrap resample of the training set (member 0 on the training set
 * itself). With log_target the boosters learn ln(target) and predictions are
 * exp()'d back. The ensemble's prediction is the mean of the members' (in
 * target units); the metrics compare it with the held-out targets.
 */
#ifndef JETPROF_PREDICT_TRAIN_H
#define JETPROF_PREDICT_TRAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "features.h"

struct train_row {
    float features[PREDICT_MAX_FEATURES];
    double target; /* > 0 when log_target */
};

struct train_options {
    unsigned seed;            /* default 42 */
    double holdout_fraction;  /* default 0.2 */
    unsigned ensemble_size;   /* default 5; 1..16 */
    unsigned rounds;          /* default 200 */
    unsigned max_depth;       /* default 6 */
    double eta;               /* default 0.1 */
    bool log_target;          /* latency: true; power: false */
    unsigned threads;         /* XGBoost nthread; default 1 (the runner's thread) */
};
void train_options_default(struct train_options *opt);

/* Fewest rows train_ensemble accepts: below this a kernel type has too little
 * data for a held-out split to mean anything (the API's 409 says so). */
#define TRAIN_MIN_ROWS 20

struct train_metrics {
    size_t train_rows, test_rows;
    double rmse;          /* target units, on the held-out split */
    double mape;          /* mean absolute percentage error, percent */
    double within_10pct;  /* share of held-out rows predicted within +-10 %, 0..1 */
    double kendall_tau;   /* rank correlation (tau-b) of prediction vs truth */
};

/*
 * Trains the ensemble. On success *members is a malloc'd array of *member_count
 * malloc'd NUL-terminated XGBoost JSON models in the compact form of
 * train_compact_member (free with train_free_members) and
 * *metrics is filled. -1 with err on bad input (fewer than TRAIN_MIN_ROWS rows,
 * feature_count 0 or > PREDICT_MAX_FEATURES, a non-positive target with
 * log_target, non-finite values) or an XGBoost error (its message quoted).
 */
int train_ensemble(const struct train_row *rows, size_t row_count, unsigned feature_count,
                   const struct train_options *opt, char ***members, size_t *member_count,
                   struct train_metrics *metrics, char *err, size_t errlen);
void train_free_members(char **members, size_t member_count);

/*
 * One XGBoost JSON model (XGBoosterSaveModelToBuffer, {"format": "json"}) cut
 * down to what predict/trees.c reads to evaluate and validate it, as
 * train_ensemble returns its members: a subset of XGBoost's JSON schema
 * ("version"; learner_model_param's base_score, num_feature, num_target,
 * num_class; the objective's name; the booster's name, num_trees, tree_info;
 * per tree num_nodes and the five node arrays left_children, right_children,
 * split_indices, split_conditions, default_left). Per-tree statistics
 * (base_weights, loss_changes, sum_hessian, parents), all-numerical split_type,
 * empty categories and learner attributes go, which leaves about a third of the
 * text; numbers keep their shortest float round-trip form, so trees_predict()
 * gives bit-identical results for the compact and the full text. The model must
 * load with trees_load_xgboost_json (anything else is refused with its reason).
 * Returns malloc'd NUL-terminated text, or NULL with err.
 */
char *train_compact_member(const char *json, size_t len, char *err, size_t errlen);

/* Metrics of predictions against truth (exposed for tests and for the
 * validation of whole-graph estimates). n >= 1; tau is 0 for n < 2. */
void train_score(const double *truth, const double *predicted, size_t n,
                 struct train_metrics *out);

#endif
