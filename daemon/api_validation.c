/*
 * api_validation.c - GET /v1/validation: every measured graph beside its
 * current estimate, with and without merging, and how well the estimates track
 * the measurements over all graphs.
 *
 * For each graph measured on this board type (db_graphs_measured: the newest
 * measurement per graph, ?quality=ok to use only measurements that passed the
 * protocol's checks) the stored graph is estimated twice with the models in
 * use now (POST /v1/estimate's estimate_graph, merge on and off) and compared
 * with the measured per-invocation latency and board-input energy: the
 * relative error (estimate - measured) / measured per graph; over the graphs
 * MAPE (percent), the share within +-10 % and Kendall's tau-b of the ranking
 * (train_score, the metrics the predictors report). A graph that needs a
 * kernel type without a model, or whose stored text no longer plans (a changed
 * catalogue), is listed under "skipped" with the reason instead of failing the
 * whole answer. Merging assumes parallel kernels run at once: on a GPU, where
 * a graph's independent branches run on separate streams, it should help; on
 * the CPU executor, which runs them one after the other, it should not - the
 * table shows which holds on this board.
 * Needs no auth: it changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../predict/estimate.h"
#include "../predict/train.h"
#include "api.h"

/* The estimate_predict_fn: the models in use, noting the first kernel type
 * without a model for the skipped graph's reason. */
struct validation_predict {
    struct models_state *models;
    const char *missing;
};

static int predict_with_models(void *ctx, const struct kernel_config *cfg,
                               struct kernel_prediction *out, char *err, size_t errlen)
{
    struct validation_predict *vp = ctx;
    if (vp->models && models_state_predict(vp->models, cfg, out, err, errlen) == 0)
        return 0;
    if (!vp->models)
        snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
    if (!vp->missing)
        vp->missing = cfg->kernel->name;
    return -1;
}

/* One estimate's totals. */
struct graph_totals {
    double latency_us, energy_uj;
    json_int_t kernels;
};

static int read_totals(const json_t *estimate, struct graph_totals *t)
{
    json_t *totals = json_object_get(estimate, "totals");
    json_t *lat = json_object_get(totals, "latency_us");
    json_t *energy = json_object_get(json_object_get(totals, "energy_uj"), "board_input");
    json_t *kernels = json_object_get(totals, "kernels");
    if (!json_is_number(lat) || !json_is_number(energy) || !json_is_integer(kernels))
        return -1;
    t->latency_us = json_number_value(lat);
    t->energy_uj = json_number_value(energy);
    t->kernels = json_integer_value(kernels);
    return 0;
}

static double relative_error(double estimate, double measured)
{
    return measured != 0.0 ? (estimate - measured) / measured : 0.0;
}

/* The graph estimated with merge on or off: 0, or -1 with the reason. */
static int estimate_totals(json_t *graph, bool merge, const struct estimate_options *base,
                           struct models_state *models, struct graph_totals *t, char *why,
                           size_t whylen)
{
    struct estimate_options opt = *base;
    opt.graph.merge = merge;
    struct validation_predict vp = {.models = models};
    struct graph_error ge;
    json_t *est = estimate_graph(graph, &opt, predict_with_models, &vp, &ge);
    if (!est) {
        if (ge.status == 409 && vp.missing) {
            const char *kernels[1] = {vp.missing};
            estimate_missing_models_detail(kernels, 1, why, whylen);
        } else {
            snprintf(why, whylen, "%s", ge.detail);
        }
        return -1;
    }
    int rc = read_totals(est, t);
    json_decref(est);
    if (rc != 0)
        snprintf(why, whylen, "the estimate has no totals");
    return rc;
}

static json_t *estimate_json(const struct graph_totals *t, double measured_latency_us,
                             double measured_energy_uj)
{
    return json_pack("{s:f,s:f,s:I,s:f,s:f}", "latency_us", t->latency_us, "energy_uj",
                     t->energy_uj, "kernels", t->kernels, "latency_error",
                     relative_error(t->latency_us, measured_latency_us), "energy_error",
                     relative_error(t->energy_uj, measured_energy_uj));
}

static json_t *metrics_json(const double *truth, const double *estimate, size_t n)
{
    if (n == 0)
        return json_pack("{s:n,s:n,s:n}", "mape", "within_10pct", "kendall_tau");
    struct train_metrics m;
    train_score(truth, estimate, n, &m);
    json_t *tau = n >= 2 ? json_real(m.kendall_tau) : json_null();
    return json_pack("{s:f,s:f,s:o}", "mape", m.mape, "within_10pct", m.within_10pct,
                     "kendall_tau", tau);
}

/* Per mode: [0] energy, [1] latency; columns of the graphs compared. */
struct columns {
    double *measured_energy, *measured_latency;
    double *energy[2], *latency[2]; /* [0] merged, [1] unmerged */
};

static json_t *summary_json(const struct columns *c, size_t n)
{
    json_t *s = json_pack("{s:I}", "graphs", (json_int_t)n);
    static const char *const names[2] = {"merged", "unmerged"};
    for (int mode = 0; s && mode < 2; mode++) {
        json_t *m = json_pack("{s:o,s:o}", "energy",
                              metrics_json(c->measured_energy, c->energy[mode], n), "latency",
                              metrics_json(c->measured_latency, c->latency[mode], n));
        if (!m || json_object_set_new(s, names[mode], m) != 0) {
            json_decref(s);
            return NULL;
        }
    }
    return s;
}

static int parse_quality(const struct api_request *req, const char **quality,
                         struct api_error *e)
{
    *quality = NULL;
    if (req->query_overflow) {
        api_error_set(e, 400, "too many query parameters (at most %d)", API_MAX_QUERY_PARAMS);
        return -1;
    }
    for (size_t i = 0; i < req->query_count; i++) {
        const char *key = req->query[i].key ? req->query[i].key : "";
        const char *val = req->query[i].value ? req->query[i].value : "";
        char k[64], v[64];
        text_quote(key, k, sizeof k);
        if (strcmp(key, "quality") != 0) {
            api_error_set(e, 400, "unknown query parameter '%s'; accepted: quality", k);
            api_error_param(e, k);
            return -1;
        }
        if (strcmp(val, "ok") == 0) {
            *quality = "ok";
        } else if (strcmp(val, "any") == 0) {
            *quality = NULL;
        } else {
            text_quote(val, v, sizeof v);
            api_error_set(e, 400, "query parameter 'quality' = '%s': expected ok or any", v);
            api_error_param(e, "quality");
            return -1;
        }
    }
    return 0;
}

static json_t *graph_entry(const struct db_graph_measured *r, const struct graph_totals *t)
{
    const struct db_graph *g = &r->graph;
    json_t *graph = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I}", "id", (json_int_t)g->id, "hash",
                              g->hash, "name", g->name, "dtype", g->dtype, "batch",
                              (json_int_t)g->batch, "kernels", (json_int_t)g->kernels, "levels",
                              (json_int_t)g->levels);
    json_t *measured = json_pack(
        "{s:I,s:s,s:f,s:f,s:s,s:s,s:s,s:I,s:b}", "measurement_id", (json_int_t)r->measurement_id,
        "uid", r->uid, "latency_us", r->latency_us, "energy_uj", r->energy_uj, "energy_rail",
        r->energy_rail, "quality", r->quality, "executor", r->executor, "streams",
        (json_int_t)r->streams, "simulated", r->simulated);
    return json_pack("{s:o,s:o,s:o,s:o}", "graph", graph, "measured", measured,
                     "estimate_merged", estimate_json(&t[0], r->latency_us, r->energy_uj),
                     "estimate_unmerged", estimate_json(&t[1], r->latency_us, r->energy_uj));
}

void api_validation_get(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    const char *quality;
    if (parse_quality(req, &quality, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }
    pthread_mutex_lock(&api_device_lock);
    int64_t device_id = app->device_id;
    char fingerprint[sizeof app->device.fingerprint];
    memcpy(fingerprint, app->device.fingerprint, sizeof fingerprint);
    bool device_simulated = app->device.simulated;
    pthread_mutex_unlock(&api_device_lock);

    struct db *db = db_pool_acquire(app->pool);
    if (!db) {
        api_error_set(&e, 500, "no database connection is free");
        api_respond_error(res, &e, req->path);
        return;
    }
    char err[512] = "";
    struct db_graph_measured *rows = NULL;
    size_t n = 0;
    int rc = db_graphs_measured(db, device_id, quality, &rows, &n, err, sizeof err);
    db_pool_release(app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "reading the measured graphs: %s", err);
        api_respond_error(res, &e, req->path);
        return;
    }

    struct estimate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.graph.max_nodes = api_max_graph_nodes(app);
    bool have_models = app->models && models_state_info(app->models, &opt.info);
    if (!have_models)
        opt.info.simulated = device_simulated;

    struct columns c = {0};
    double *all = calloc(6 * (n ? n : 1), sizeof *all);
    json_t *graphs = json_array(), *skipped = json_array();
    if (!all || !graphs || !skipped)
        goto oom;
    c.measured_energy = all;
    c.measured_latency = all + n;
    c.energy[0] = all + 2 * n;
    c.energy[1] = all + 3 * n;
    c.latency[0] = all + 4 * n;
    c.latency[1] = all + 5 * n;

    size_t used = 0;
    bool simulated = opt.info.simulated;
    for (size_t i = 0; i < n; i++) {
        struct db_graph_measured *r = &rows[i];
        simulated = simulated || r->simulated;
        char why[API_DETAIL_MAX] = "";
        struct graph_totals t[2];
        json_error_t jerr;
        json_t *graph = json_loads(r->graph.graph_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!graph)
            snprintf(why, sizeof why, "the stored graph is not JSON: %s", jerr.text);
        else if (estimate_totals(graph, true, &opt, app->models, &t[0], why, sizeof why) == 0)
            estimate_totals(graph, false, &opt, app->models, &t[1], why, sizeof why);
        json_decref(graph);
        if (why[0]) {
            json_t *s = json_pack("{s:s,s:s,s:s}", "graph", r->graph.hash, "name", r->graph.name,
                                  "reason", why);
            if (!s || json_array_append_new(skipped, s) != 0)
                goto oom;
            continue;
        }
        json_t *entry = graph_entry(r, t);
        if (!entry || json_array_append_new(graphs, entry) != 0)
            goto oom;
        c.measured_energy[used] = r->energy_uj;
        c.measured_latency[used] = r->latency_us;
        for (int mode = 0; mode < 2; mode++) {
            c.energy[mode][used] = t[mode].energy_uj;
            c.latency[mode][used] = t[mode].latency_us;
        }
        used++;
    }
    json_t *summary = summary_json(&c, used);
    if (!summary)
        goto oom;
    json_t *answer = json_pack("{s:b,s:{s:s},s:s,s:o,s:o,s:o}", "simulated", simulated, "device",
                               "fingerprint", fingerprint, "quality", quality ? quality : "any",
                               "graphs", graphs, "summary", summary, "skipped", skipped);
    free(all);
    db_graphs_measured_free(rows, n);
    api_respond_json(res, 200, answer);
    return;
oom:
    json_decref(graphs);
    json_decref(skipped);
    free(all);
    db_graphs_measured_free(rows, n);
    api_error_set(&e, 500, "out of memory comparing %zu graphs", n);
    api_respond_error(res, &e, req->path);
}
