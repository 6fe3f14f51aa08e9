/*
 * models.h - a board's predictors as one object: per kernel type, a latency model
 * and one mean-power model per reported rail, each a small bagged ensemble of
 * boosted trees (trees.h), and what a prediction of a kernel configuration is.
 *
 * Pure computation, shared by jetprofd (models read from its database) and the
 * offline `jetprof estimate --offline --models FILE` (models read from the file
 * GET /v1/models/export wrote), so both give the same numbers.
 *
 * One model's blob (models.blob in the database, "model" in the export file):
 *   {"format": "jetprof-model/1", "kernel": "linear_relu",
 *    "target": "latency_us" | "power_mw:<rail>", "log_target": true,
 *    "feature_version": PREDICT_FEATURE_VERSION, "feature_count": 10,
 *    "members": [<XGBoost JSON model object>, ...]}
 * The export file (a bundle):
 *   {"format": "jetprof-models/1", "exported_at": "...Z",
 *    "device": {<the devices row: fingerprint, board_model, executor, sensor_backend,
 *               simulated, ...>},
 *    "simulated": bool, "board_input_rail": "VDD_IN" | "" (no input rail: sum of rails),
 *    "gpu_rail": "VDD_CPU_GPU_CV" | "" (none), 
 *    "models": [{"id": 7, "kernel": "...", "target": "...", "metrics": {...},
 *                "training_hash": "<sha256 hex>", "created_at": "...Z",
 *                "model": <blob object>}, ...]}
 * The GPU rail is the first reported rail whose name contains "GPU"
 * (predict_gpu_rail); the board-input rail is the sensor's.
 */
#ifndef JETPROF_PREDICT_MODELS_H
#define JETPROF_PREDICT_MODELS_H

#include <stdbool.h>
#include <stddef.h>

#include "../cudakern/catalog.h"

#define PREDICT_MAX_RAILS 8
#define PREDICT_RAIL_NAME_MAX 32
#define PREDICT_TARGET_LATENCY "latency_us"
#define PREDICT_TARGET_POWER_PREFIX "power_mw:"
#define PREDICT_MODEL_FORMAT "jetprof-model/1"
#define PREDICT_BUNDLE_FORMAT "jetprof-models/1"

struct model_set_info {
    char board_input_rail[PREDICT_RAIL_NAME_MAX]; /* "" = sum of the rails */
    char gpu_rail[PREDICT_RAIL_NAME_MAX];         /* "" = none reported */
    bool simulated;                               /* trained on sim sensor / CPU executor data */
    char fingerprint[72];                         /* the device's, "" when unknown */
};

struct rail_prediction {
    char name[PREDICT_RAIL_NAME_MAX];
    double power_mw, power_mw_spread; /* ensemble mean and standard deviation */
    double energy_uj;                 /* latency_us x power_mw / 1000 */
};

struct kernel_prediction {
    double latency_us;        /* ensemble mean */
    double latency_us_spread; /* ensemble standard deviation */
    unsigned rail_count;      /* rails with a power model, in the order they were added */
    struct rail_prediction rails[PREDICT_MAX_RAILS];
};

struct model_set;

struct model_set *model_set_new(void); /* NULL when out of memory */
void model_set_free(struct model_set *set);
void model_set_set_info(struct model_set *set, const struct model_set_info *info);
void model_set_get_info(const struct model_set *set, struct model_set_info *out);

/* Adds one model from its blob. A later model for the same kernel and target
 * replaces the earlier one. -1 with err for a blob that is not jetprof-model/1,
 * an unknown kernel, a feature layout of another version, a bad member. */
int model_set_add_blob(struct model_set *set, const char *blob, size_t len, char *err,
                       size_t errlen);

/* Reads an export file (jetprof-models/1) into a new set, info included. */
int model_set_load_bundle(const char *text, size_t len, struct model_set **out, char *err,
                          size_t errlen);

size_t model_set_count(const struct model_set *set); /* models (kernel, target pairs) */
/* true when the kernel type has a latency model (the minimum to predict). */
bool model_set_has_kernel(const struct model_set *set, const char *kernel);

/* Predicts cfg. -1 with err "no model for kernel type 'softmax'" when it has no
 * latency model. Thread-safe for concurrent readers. */
int model_set_predict(const struct model_set *set, const struct kernel_config *cfg,
                      struct kernel_prediction *out, char *err, size_t errlen);

/* The GPU rail among names: the first containing "GPU" (case-insensitive), or NULL. */
const char *predict_gpu_rail(const char *const *names, unsigned count);

#endif
