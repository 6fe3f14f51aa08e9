/*
 * adaptive.h - one round of nn-Meter's adaptive data sampling for one kernel
 * type: train on part of what has been measured, find the held-out
 * configurations the predictor gets wrong by more than a threshold, and propose
 * new configurations around them to measure next.
 *
 * The round, from rows (sorted by uid, as trainset wants them):
 *   1. split: a seeded shuffle (splitmix64 from seed ^ round) puts
 *      round(holdout x n) rows (at least 1) aside as the held-out set;
 *   2. train the latency model (trainset_train_kernel on the rest, options from
 *      opt->train, a single-member ensemble is enough) and predict every
 *      held-out row with it (model_set_predict);
 *   3. score: the held-out metrics (train_score: MAPE, share within +-10 %,
 *      Kendall tau) and, per held-out row, the relative error
 *      |predicted - measured| / measured;
 *   4. propose: for the held-out rows above threshold, worst first, draw
 *      per_round configurations in turn (row 1, row 2, ..., wrapping): each
 *      parameter is the row's value scaled by 2^u, u uniform in
 *      [-radius_log2, +radius_log2] (integer parameters rounded, at least 1),
 *      clamped to the sweep's [low, high] for that parameter and to the
 *      catalogue range; a draw that catalog_validate refuses, or equals a row
 *      or an earlier proposal, is drawn again (at most 32 tries per proposal,
 *      then skipped). No row above threshold: nothing is proposed.
 * The same rows and options always give the same result.
 * Pure computation: no database, no executor.
 */
#ifndef JETPROF_PREDICT_ADAPTIVE_H
#define JETPROF_PREDICT_ADAPTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "../cudakern/catalog.h"
#include "train.h"
#include "trainset.h"

#define ADAPTIVE_DEFAULT_THRESHOLD 0.10
#define ADAPTIVE_DEFAULT_RADIUS_LOG2 0.5
#define ADAPTIVE_MAX_TRIES 32

struct adaptive_options {
    enum dtype dtype;                   /* of the proposals */
    int64_t low[CATALOG_MAX_PARAMS];    /* the sweep's range per catalogue parameter */
    int64_t high[CATALOG_MAX_PARAMS];
    double threshold;                   /* relative error; > 0 */
    double radius_log2;                 /* neighbourhood radius, > 0 */
    size_t per_round;                   /* proposals wanted */
    double holdout;                     /* share held out, in (0, 0.5] */
    uint64_t seed;
    unsigned round;                     /* mixed into the seed */
    struct trainset_params train;       /* training options (its holdout is used inside trainset) */
};

struct adaptive_result {
    size_t rows, train_rows, test_rows;
    struct train_metrics latency;       /* held-out scores of the latency model */
    size_t above_threshold;             /* held-out rows with relative error > threshold */
    double worst_error;                 /* the largest held-out relative error */
    size_t proposed_count;
    struct kernel_config *proposed;     /* malloc'd, proposed_count entries */
    char detail[640];                   /* why it failed */
};

enum adaptive_status {
    ADAPTIVE_OK = 0,
    ADAPTIVE_TOO_FEW_ROWS, /* fewer than TRAIN_MIN_ROWS usable rows left to train on */
    ADAPTIVE_FAILED,       /* bad options, training or prediction failed, out of memory */
};

enum adaptive_status adaptive_round(const struct catalog_kernel *k,
                                    const struct trainset_row *rows, size_t n,
                                    const struct adaptive_options *opt,
                                    struct adaptive_result *out);
void adaptive_result_free(struct adaptive_result *r);

/* The JSON object a round's metrics are stored and shown as (GET
 * /v1/batches/{id} "rounds"): {"rows", "train_rows", "test_rows",
 * "latency": {"mape", "within_10pct", "kendall_tau", "rmse"},
 * "above_threshold", "worst_error", "proposed"}. NULL when out of memory. */
#include <jansson.h>
json_t *adaptive_result_json(const struct adaptive_result *r);

#endif
