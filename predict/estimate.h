/*
 * estimate.h - a graph's latency and energy: graph_plan_build, then one
 * prediction per kernel, summed. The answer object is built here so that
 * POST /v1/estimate and `jetprof estimate --offline` print identical JSON for
 * identical models.
 *
 * Answer (docs/api/openapi.yaml, schema Estimate):
 *   {"format": "native", "dtype": "fp32", "batch": 64, "merge": true,
 *    "simulated": bool, "graph_nodes": 12,
 *    "kernels": [{"kernel": "linear_relu", "dtype": "fp32",
 *                 "params": {"batch": 64, "in": 256, "out": 512},
 *                 "config_key": "...", "nodes": ["fc1", "relu1"], "depth": 1,
 *                 "merged": 1, "latency_us": x, "latency_us_spread": x,
 *                 "power_mw": {"VDD_IN": x, ...}, "energy_uj": {"VDD_IN": x, ...}}, ...],
 *    "totals": {"kernels": n, "latency_us": sum, "latency_us_spread": sqrt(sum of squares),
 *               "energy_uj": {"board_input": x, "gpu": x or null, "rails": {"VDD_IN": x, ...}},
 *               "board_input_rail": "VDD_IN" | "sum", "gpu_rail": "..." | null}}
 * board_input energy is the board-input rail's, or the sum of all rails when the
 * board has none ("board_input_rail": "sum").
 */
#ifndef JETPROF_PREDICT_ESTIMATE_H
#define JETPROF_PREDICT_ESTIMATE_H

#include <jansson.h>

#include "graph.h"
#include "models.h"

/* Predicts one configuration: 0, or -1 with err (no model for its kernel type). */
typedef int (*estimate_predict_fn)(void *ctx, const struct kernel_config *cfg,
                                   struct kernel_prediction *out, char *err, size_t errlen);

struct estimate_options {
    struct graph_options graph;
    struct model_set_info info; /* rails and the simulated label */
};

/* The answer for one graph, or NULL with *err: the graph's own errors (422/400),
 * 409 naming the kernel types without a model (all of them, in one sentence, with
 * the measurements to collect), 500 when out of memory. */
json_t *estimate_graph(const json_t *graph, const struct estimate_options *opt,
                       estimate_predict_fn predict, void *ctx, struct graph_error *err);

/* estimate_graph's answer as compact JSON text, byte for byte what
 * json_dumpb(estimate_graph(...), JSON_COMPACT | JSON_REAL_PRECISION(12))
 * prints, without building the tree: the daemon's path (POST /v1/estimate). */
struct estimate_text {
    char *data;    /* malloc'd, NUL-terminated once anything is appended */
    size_t len, cap;
    bool failed;   /* an append ran out of memory; later appends fail too */
};

/* Appends the answer for one graph to out: 0, or -1 with *err as estimate_graph
 * (out as it was before the call). */
int estimate_graph_text(const json_t *graph, const struct estimate_options *opt,
                        estimate_predict_fn predict, void *ctx, struct estimate_text *out,
                        struct graph_error *err);
/* Appends n bytes (a batch's framing): 0, or -1 when out of memory. */
int estimate_text_append(struct estimate_text *t, const char *s, size_t n);
void estimate_text_free(struct estimate_text *t); /* and zeroes *t */

/* The JSON of one kernel prediction as /v1/predict and the kernels above use:
 * latency_us, latency_us_spread, power_mw {}, power_mw_spread {}, energy_uj {}. Adds the fields to obj. */
int estimate_prediction_fields(json_t *obj, const struct kernel_prediction *p);

/* A model_set as an estimate_predict_fn (ctx is the set). */
int estimate_predict_with_set(void *ctx, const struct kernel_config *cfg,
                              struct kernel_prediction *out, char *err, size_t errlen);

/* The 409 sentence for kernel types without a model (count >= 1), worded once
 * for estimate_graph, POST /v1/predict and a batch of estimates: "no model for
 * kernel type 'softmax' on this device: measure at least 20 softmax
 * configurations (POST /v1/jobs) and train (POST /v1/models/train)". */
void estimate_missing_models_detail(const char *const *kernels, size_t count, char *buf,
                                    size_t buflen);

#endif
