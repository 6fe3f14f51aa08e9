/*
 * estimate.c - a graph's latency and energy from per-kernel predictions
 * (contract: estimate.h).
 *
 * graph_plan_build turns the graph into the fused (and, when asked, merged)
 * kernels; each is predicted once through the caller's estimate_predict_fn (the
 * daemon's cached models_state, or a model_set read from an export file for
 * `jetprof estimate --offline`); the answer lists every kernel with its
 * prediction and the totals: latency summed (its spread as the root of the
 * summed squares, the members' errors taken as independent), energy per rail
 * summed, and the board-input and GPU figures the user asks about first.
 *
 * Kernel types without a model are all collected before failing, so a 409
 * names every one of them and a user queues the missing measurements at once
 * instead of discovering them one retrain at a time.
 *
 * Pure computation, no I/O; the JSON built here is the HTTP answer and the
 * offline CLI's output alike, so both print identical bytes for identical models.
 */
#include "estimate.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* Distinct rail names a graph's totals can carry: every kernel predicts the
 * same device's rails, so PREDICT_MAX_RAILS in practice; room for more. */
#define TOTAL_RAILS_MAX (2 * PREDICT_MAX_RAILS)

struct rail_total {
    const char *name; /* borrowed from a prediction */
    double energy_uj;
};

/* json_real refuses NaN and infinities: a model that produced one yields null
 * rather than an answer that cannot be encoded. */
static json_t *real_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Adds value to obj, consuming it whatever happens (jansson releases a value
 * it could not add, also to a NULL obj), so a chain of puts needs no cleanup
 * beyond the object itself. -1 when value is NULL (out of memory) or the add fails. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

void estimate_missing_models_detail(const char *const *kernels, size_t count, char *buf,
                                    size_t buflen)
{
    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (count == 0)
        return;
    if (count == 1) {
        snprintf(buf, buflen,
                 "no model for kernel type '%s' on this device: measure at least %d %s "
                 "configurations (POST /v1/jobs) and train (POST /v1/models/train)",
                 kernels[0], TRAIN_MIN_ROWS, kernels[0]);
        return;
    }
    size_t used = 0;
    int n = snprintf(buf, buflen, "no model for kernel types ");
    if (n < 0 || (size_t)n >= buflen)
        return;
    used = (size_t)n;
    for (size_t i = 0; i < count; i++) {
        const char *sep = i == 0 ? "" : i + 1 == count ? " and " : ", ";
        n = snprintf(buf + used, buflen - used, "%s'%s'", sep, kernels[i]);
        if (n < 0 || (size_t)n >= buflen - used)
            return;
        used += (size_t)n;
    }
    snprintf(buf + used, buflen - used,
             " on this device: measure at least %d configurations of each (POST /v1/jobs) and "
             "train (POST /v1/models/train)",
             TRAIN_MIN_ROWS);
}

int estimate_prediction_fields(json_t *obj, const struct kernel_prediction *p)
{
    json_t *power = json_object(), *spread = json_object(), *energy = json_object();
    bool ok = true;
    for (unsigned r = 0; r < p->rail_count && r < PREDICT_MAX_RAILS; r++) {
        const struct rail_prediction *rp = &p->rails[r];
        ok = put(power, rp->name, real_or_null(rp->power_mw)) == 0 && ok;
        ok = put(spread, rp->name, real_or_null(rp->power_mw_spread)) == 0 && ok;
        ok = put(energy, rp->name, real_or_null(rp->energy_uj)) == 0 && ok;
    }
    ok = put(obj, "latency_us", real_or_null(p->latency_us)) == 0 && ok;
    ok = put(obj, "latency_us_spread", real_or_null(p->latency_us_spread)) == 0 && ok;
    ok = put(obj, "power_mw", power) == 0 && ok;
    ok = put(obj, "power_mw_spread", spread) == 0 && ok;
    ok = put(obj, "energy_uj", energy) == 0 && ok;
    return ok ? 0 : -1;
}

int estimate_predict_with_set(void *ctx, const struct kernel_config *cfg,
                              struct kernel_prediction *out, char *err, size_t errlen)
{
    return model_set_predict(ctx, cfg, out, err, errlen);
}

/* {"batch": 64, "in": 256, "out": 512} in catalogue order. */
static json_t *params_json(const struct kernel_config *cfg)
{
    json_t *o = json_object();
    for (unsigned i = 0; o && i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        if (put(o, cfg->kernel->params[i].name, json_integer((json_int_t)cfg->params[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *kernel_json(const struct graph_kernel *gk, const struct kernel_prediction *p)
{
    char key[256];
    if (catalog_config_key(&gk->cfg, key, sizeof key) < 0)
        return NULL;
    json_t *k = json_object(), *nodes = json_array();
    bool ok = true;
    for (size_t i = 0; i < gk->node_count; i++)
        ok = json_array_append_new(nodes, json_string(gk->nodes[i])) == 0 && ok;
    ok = put(k, "kernel", json_string(gk->cfg.kernel->name)) == 0 && ok;
    ok = put(k, "dtype", json_string(dtype_name(gk->cfg.dtype))) == 0 && ok;
    ok = put(k, "params", params_json(&gk->cfg)) == 0 && ok;
    ok = put(k, "config_key", json_string(key)) == 0 && ok;
    ok = put(k, "nodes", nodes) == 0 && ok;
    ok = put(k, "depth", json_integer(gk->depth)) == 0 && ok;
    ok = put(k, "merged", json_integer(gk->merged_count)) == 0 && ok;
    ok = ok && estimate_prediction_fields(k, p) == 0;
    if (!ok) {
        json_decref(k);
        return NULL;
    }
    return k;
}

/* Adds each rail's energy of p to the totals, by name, in order of first sight. */
static void add_rails(struct rail_total *totals, unsigned *count,
                      const struct kernel_prediction *p)
{
    for (unsigned r = 0; r < p->rail_count && r < PREDICT_MAX_RAILS; r++) {
        const struct rail_prediction *rp = &p->rails[r];
        unsigned t = 0;
        while (t < *count && strcmp(totals[t].name, rp->name) != 0)
            t++;
        if (t == *count) {
            if (*count == TOTAL_RAILS_MAX)
                continue;
            totals[t].name = rp->name;
            totals[t].energy_uj = 0;
            (*count)++;
        }
        totals[t].energy_uj += rp->energy_uj;
    }
}

/* A named rail's total: its sum, 0 for a graph without kernels (nothing runs),
 * null when no kernel predicted that rail. */
static json_t *named_rail_total(const struct rail_total *totals, unsigned count,
                                const char *name, size_t kernels)
{
    for (unsigned t = 0; t < count; t++)
        if (strcmp(totals[t].name, name) == 0)
            return real_or_null(totals[t].energy_uj);
    return kernels == 0 ? json_real(0.0) : json_null();
}

static json_t *totals_json(const struct graph_plan *plan, const struct kernel_prediction *preds,
                           const struct model_set_info *info)
{
    struct rail_total rails[TOTAL_RAILS_MAX];
    unsigned rail_count = 0;
    double latency_us = 0, spread_sq = 0;
    for (size_t i = 0; i < plan->count; i++) {
        latency_us += preds[i].latency_us;
        spread_sq += preds[i].latency_us_spread * preds[i].latency_us_spread;
        add_rails(rails, &rail_count, &preds[i]);
    }

    json_t *rails_obj = json_object();
    double sum_uj = 0;
    bool ok = true;
    for (unsigned t = 0; t < rail_count; t++) {
        sum_uj += rails[t].energy_uj;
        ok = put(rails_obj, rails[t].name, real_or_null(rails[t].energy_uj)) == 0 && ok;
    }

    bool input_is_sum = info->board_input_rail[0] == '\0';
    json_t *energy = json_object();
    ok = put(energy, "board_input",
             input_is_sum ? real_or_null(sum_uj)
                          : named_rail_total(rails, rail_count, info->board_input_rail,
                                             plan->count)) == 0 && ok;
    ok = put(energy, "gpu",
             info->gpu_rail[0] ? named_rail_total(rails, rail_count, info->gpu_rail, plan->count)
                               : json_null()) == 0 && ok;
    ok = put(energy, "rails", rails_obj) == 0 && ok;

    json_t *t = json_object();
    ok = put(t, "kernels", json_integer((json_int_t)plan->count)) == 0 && ok;
    ok = put(t, "latency_us", real_or_null(latency_us)) == 0 && ok;
    ok = put(t, "latency_us_spread", real_or_null(sqrt(spread_sq))) == 0 && ok;
    ok = put(t, "energy_uj", energy) == 0 && ok;
    ok = put(t, "board_input_rail", json_string(input_is_sum ? "sum" : info->board_input_rail)) ==
             0 && ok;
    ok = put(t, "gpu_rail", info->gpu_rail[0] ? json_string(info->gpu_rail) : json_null()) == 0 &&
         ok;
    if (!ok) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static void set_error(struct graph_error *err, unsigned status, const char *detail)
{
    err->status = status;
    err->node[0] = '\0';
    snprintf(err->detail, sizeof err->detail, "%s", detail);
}

json_t *estimate_graph(const json_t *graph, const struct estimate_options *opt,
                       estimate_predict_fn predict, void *ctx, struct graph_error *err)
{
    memset(err, 0, sizeof *err);
    struct graph_plan plan;
    memset(&plan, 0, sizeof plan);
    if (graph_plan_build(graph, &opt->graph, &plan, err) != 0) {
        if (err->status == 0) /* the contract sets it; never answer 0 */
            err->status = 422;
        return NULL;
    }

    size_t kinds = catalog_count();
    struct kernel_prediction *preds = calloc(plan.count ? plan.count : 1, sizeof *preds);
    const char **missing = calloc(kinds ? kinds : 1, sizeof *missing);
    if (!preds || !missing) {
        free(preds);
        free(missing);
        graph_plan_free(&plan);
        set_error(err, 500, "out of memory predicting the graph's kernels");
        return NULL;
    }

    size_t missing_count = 0;
    for (size_t i = 0; i < plan.count; i++) {
        char why[256];
        if (predict(ctx, &plan.kernels[i].cfg, &preds[i], why, sizeof why) == 0)
            continue;
        const char *name = plan.kernels[i].cfg.kernel->name;
        size_t m = 0;
        while (m < missing_count && strcmp(missing[m], name) != 0)
            m++;
        if (m == missing_count && missing_count < kinds)
            missing[missing_count++] = name;
    }
    if (missing_count > 0) {
        char detail[sizeof err->detail];
        estimate_missing_models_detail(missing, missing_count, detail, sizeof detail);
        set_error(err, 409, detail);
        free(preds);
        free(missing);
        graph_plan_free(&plan);
        return NULL;
    }
    free(missing);

    json_t *answer = json_object(), *kernels = json_array();
    bool ok = true;
    for (size_t i = 0; i < plan.count; i++)
        ok = json_array_append_new(kernels, kernel_json(&plan.kernels[i], &preds[i])) == 0 && ok;
    const struct model_set_info *info = &opt->info;
    ok = put(answer, "format", json_string(plan.format)) == 0 && ok;
    ok = put(answer, "dtype", json_string(dtype_name(plan.dtype))) == 0 && ok;
    ok = put(answer, "batch", json_integer((json_int_t)plan.batch)) == 0 && ok;
    ok = put(answer, "merge", json_boolean(opt->graph.merge)) == 0 && ok;
    ok = put(answer, "simulated", json_boolean(info->simulated)) == 0 && ok;
    ok = put(answer, "graph_nodes", json_integer((json_int_t)plan.graph_nodes)) == 0 && ok;
    ok = put(answer, "kernels", kernels) == 0 && ok;
    ok = put(answer, "totals", totals_json(&plan, preds, info)) == 0 && ok;
    free(preds);
    graph_plan_free(&plan);
    if (!ok) {
        json_decref(answer);
        set_error(err, 500, "out of memory building the estimate");
        return NULL;
    }
    return answer;
}
