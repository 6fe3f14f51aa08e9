/*
 * trainset.h - the training pipeline of one kernel type, from measurement rows
 * to stored-ready models: shared by jetprofd (POST /v1/models/train, rows from
 * its own database) and the client (`jetprof train --offline`, rows from a
 * merged fleet file or a board's export), so both make byte-identical model
 * blobs and training hashes from the same rows and options.
 *
 * Pure computation (no database, no files): the caller reads the rows and
 * stores or writes what comes back. For one kernel type it
 *   1. turns each row (dtype + params_json) back into a kernel_config of the
 *      catalogue and its feature vector (features.h); rows that no longer make
 *      a configuration are left out (and said so through the note callback);
 *   2. trains the latency model (log target) with train_ensemble;
 *   3. trains one mean-power model per rail, the rails in the order the rows
 *      reported them first, each on the rows that report that rail (a rail
 *      that fewer than TRAIN_MIN_ROWS rows report gets no model, and a note);
 *   4. makes each model's jetprof-model/1 blob (models.h), its metrics JSON
 *      and its training hash: SHA-256 over the kernel, the target, the uids of
 *      the rows used and every training option, so the same data and options
 *      give the same hash and, the trainer being seeded, the same model.
 * Rows must come sorted by uid (globally unique): that fixes the order the
 * seeded split sees, whichever database they were read from.
 */
#ifndef JETPROF_PREDICT_TRAINSET_H
#define JETPROF_PREDICT_TRAINSET_H

#include <stdbool.h>
#include <stddef.h>

#include "../cudakern/catalog.h"
#include "models.h"
#include "train.h"

#define TRAINSET_UID_MAX 40          /* with the NUL, as db.h's measurement uid */
#define TRAINSET_DTYPE_MAX 8
#define TRAINSET_PARAMS_MAX 256
#define TRAINSET_KERNEL_MAX 32
#define TRAINSET_TARGET_MAX 48       /* "latency_us" or "power_mw:<rail>" */
#define TRAINSET_HASH_HEX_CHARS 64
#define TRAINSET_METRICS_MAX 1024    /* the metrics JSON, NUL included (db.h's field) */

/* The ranges the daemon's predict.train_* keys accept (daemon/config.c), which
 * `jetprof train --offline` enforces too, so an offline option is one the
 * daemon could have been configured with. */
#define TRAINSET_ROUNDS_MIN 1u
#define TRAINSET_ROUNDS_MAX 10000u
#define TRAINSET_DEPTH_MIN 1u
#define TRAINSET_DEPTH_MAX 16u
#define TRAINSET_ETA_MIN 0.001
#define TRAINSET_ETA_MAX 1.0
#define TRAINSET_ENSEMBLE_MIN 1u
#define TRAINSET_ENSEMBLE_MAX 16u
#define TRAINSET_HOLDOUT_MIN 0.05
#define TRAINSET_HOLDOUT_MAX 0.5

/* One measurement as training data. */
struct trainset_rail {
    char name[PREDICT_RAIL_NAME_MAX];
    double power_mw; /* the window-mean power of the rail; non-finite = not reported */
};
struct trainset_row {
    char uid[TRAINSET_UID_MAX];
    char dtype[TRAINSET_DTYPE_MAX];      /* "fp32", "fp16" */
    char params_json[TRAINSET_PARAMS_MAX]; /* {"batch": 8, "in": 64, ...} */
    double latency_us;
    unsigned rail_count;
    struct trainset_rail rails[PREDICT_MAX_RAILS]; /* in the order the measurement stored them */
};

/* One trained model, ready to store (daemon) or to write into a bundle (client). */
struct trainset_model {
    char kernel[TRAINSET_KERNEL_MAX];
    char target[TRAINSET_TARGET_MAX];
    char training_hash[TRAINSET_HASH_HEX_CHARS + 1];
    char metrics_json[TRAINSET_METRICS_MAX]; /* compact JSON object */
    char *blob;                              /* jetprof-model/1 compact JSON text, malloc'd */
    size_t blob_len;
    struct train_metrics metrics;
};

struct trainset_models {
    struct trainset_model *items;
    size_t count, cap;
};
/* Frees every blob and the array; the list is empty afterwards. */
void trainset_models_free(struct trainset_models *list);

enum trainset_note_level { TRAINSET_NOTE_INFO, TRAINSET_NOTE_WARN };

struct trainset_params {
    /* seed, holdout_fraction, ensemble_size, rounds, max_depth, eta, threads;
     * log_target is set per target (latency true, power false). */
    struct train_options options;
    const char *quality;   /* "ok", or NULL = any: recorded in the metrics */
    bool simulated;        /* the rows describe no real GPU: recorded in the metrics */
    /* Asked before each model is trained; true abandons the kernel type with
     * TRAINSET_STOPPED (the daemon stopping). NULL = never. */
    bool (*should_stop)(void *ctx);
    /* What happened, one line each (rows left out, a rail without a model, a
     * trained model's scores). NULL = silent. */
    void (*note)(void *ctx, enum trainset_note_level level, const char *message);
    void *ctx;
};

enum trainset_status {
    TRAINSET_OK = 0,
    TRAINSET_TOO_FEW_ROWS, /* fewer than TRAIN_MIN_ROWS usable rows: result->usable says how many */
    TRAINSET_BAD_INPUT,    /* rows not sorted by uid, an empty or duplicate uid: result->detail */
    TRAINSET_FAILED,       /* training or building a model failed: result->detail */
    TRAINSET_STOPPED,      /* should_stop said so */
};

struct trainset_result {
    size_t usable;   /* rows that made a configuration of the kernel type */
    size_t skipped;  /* rows left out */
    char detail[640];
};

/*
 * Trains every model of kernel type k from rows[0..n) (sorted by uid) and
 * appends them to out (latency first, then each rail's power). On anything but
 * TRAINSET_OK, out keeps what it held before the call (models of this kernel
 * type already appended are removed again) and result says why.
 */
enum trainset_status trainset_train_kernel(const struct catalog_kernel *k,
                                           const struct trainset_row *rows, size_t n,
                                           const struct trainset_params *params,
                                           struct trainset_models *out,
                                           struct trainset_result *result);

/* A row's params_json and dtype as a kernel_config of k. -1 when they do not
 * make one (not a JSON object, a parameter missing or not an integer, an
 * unknown dtype). Catalogue ranges are not checked: a model may learn from
 * configurations the catalogue has since narrowed. */
int trainset_row_config(const struct catalog_kernel *k, const struct trainset_row *row,
                        struct kernel_config *cfg);

/* SHA-256 hex of what a model is trained from: kernel, target, the uids of
 * rows[used[0..n)] in that order, every option, the feature layout. */
void trainset_training_hash(const char *kernel, const char *target,
                            const struct trainset_row *rows, const size_t *used, size_t n,
                            const struct train_options *opt,
                            char out[TRAINSET_HASH_HEX_CHARS + 1]);

/* 0 when opt is within the TRAINSET_* ranges above, else -1 with err naming
 * the option and its range. */
int trainset_options_check(const struct train_options *opt, char *err, size_t errlen);

#endif
