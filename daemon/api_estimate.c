/*
 * api_estimate.c - POST /v1/estimate: a network graph (native JSON or nn-Meter
 * IR, docs/graphs.md) in, its fused and merged kernels with predicted latency,
 * power and energy out (the Estimate of predict/estimate.h); or a batch
 * {"graphs": [g0, g1, ...]} answered as {"estimates": [...]} in one round trip,
 * which is what a search loop scoring a population wants.
 *
 * ?merge=true|false (default true) switches the merge of parallel kernels.
 * Every kernel goes through the models_state cache: candidates in a search
 * share most of their layers, so a batch mostly costs hash lookups.
 *
 * Errors: a bad graph is the graph module's 422 (or 400 when it is not a graph
 * at all) with member "node" naming the node at fault; in a batch the detail
 * starts "graphs[i]: " and member "graph" is i. Kernel types without a model
 * are a 409 with member "kernels" listing all of them - across the whole batch,
 * so one answer says everything to measure (a bad graph still wins over a
 * missing model: it has to be fixed either way, and first).
 * Needs no auth: it changes nothing.
 *
 * Answers are written as text by estimate_graph_text - the bytes http.c would
 * print from estimate_graph's tree, without building it (a 20-kernel graph is
 * ~500 jansson values and ~250 reals through snprintf) - and a batch's answers
 * are appended into one buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../predict/estimate.h"
#include "api.h"

#define ESTIMATE_GRAPHS_MAX 10000

/* The estimate_predict_fn given to estimate_graph: models_state_predict, also
 * noting each kernel type that had no model, for the 409's "kernels" member. */
struct predict_ctx {
    struct models_state *models; /* NULL: no models at all */
    const char **missing;        /* catalog_count() slots */
    size_t missing_count, missing_max;
};

static int predict_noting_missing(void *ctx, const struct kernel_config *cfg,
                                  struct kernel_prediction *out, char *err, size_t errlen)
{
    struct predict_ctx *pc = ctx;
    if (pc->models && models_state_predict(pc->models, cfg, out, err, errlen) == 0)
        return 0;
    if (!pc->models)
        snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
    for (size_t i = 0; i < pc->missing_count; i++)
        if (strcmp(pc->missing[i], cfg->kernel->name) == 0)
            return -1;
    if (pc->missing_count < pc->missing_max)
        pc->missing[pc->missing_count++] = cfg->kernel->name;
    return -1;
}

/* ?merge=: 0 with *merge, or -1 with e (400 naming the parameter). */
static int parse_query(const struct api_request *req, bool *merge, struct api_error *e)
{
    *merge = true;
    if (req->query_overflow) {
        api_error_set(e, 400, "too many query parameters (at most %d)", API_MAX_QUERY_PARAMS);
        return -1;
    }
    bool seen = false;
    for (size_t i = 0; i < req->query_count; i++) {
        const char *key = req->query[i].key ? req->query[i].key : "";
        const char *val = req->query[i].value ? req->query[i].value : "";
        char k[64], v[64];
        text_quote(key, k, sizeof k);
        if (strcmp(key, "merge") != 0) {
            api_error_set(e, 400, "unknown query parameter '%s'; accepted: merge", k);
            api_error_param(e, k);
            return -1;
        }
        if (seen) {
            api_error_set(e, 400, "query parameter 'merge' is given more than once");
            api_error_param(e, "merge");
            return -1;
        }
        seen = true;
        if (strcmp(val, "true") == 0) {
            *merge = true;
        } else if (strcmp(val, "false") == 0) {
            *merge = false;
        } else {
            text_quote(val, v, sizeof v);
            api_error_set(e, 400, "query parameter 'merge' = '%s': expected true or false", v);
            api_error_param(e, "merge");
            return -1;
        }
    }
    return 0;
}

/* The graph error as a problem: detail (prefixed "graphs[i]: " in a batch),
 * members "node" (when the graph module named one) and "graph" (in a batch). */
void api_respond_graph_error(struct api_request *req, struct api_response *res,
                             const struct graph_error *ge, long graph_index)
{
    struct api_error e;
    unsigned status = ge->status ? ge->status : 422;
    if (graph_index >= 0)
        api_error_set(&e, status, "graphs[%ld]: %s", graph_index, ge->detail);
    else
        api_error_set(&e, status, "%s", ge->detail);
    api_respond_error(res, &e, req->path);
    if (!res->json)
        return;
    if (ge->node[0])
        json_object_set_new(res->json, "node", json_string(ge->node));
    if (graph_index >= 0)
        json_object_set_new(res->json, "graph", json_integer(graph_index));
}

static void respond_missing(struct api_request *req, struct api_response *res,
                            const struct predict_ctx *pc)
{
    struct api_error e;
    char detail[API_DETAIL_MAX];
    estimate_missing_models_detail(pc->missing, pc->missing_count, detail, sizeof detail);
    api_error_set(&e, 409, "%s", detail);
    api_respond_error(res, &e, req->path);
    json_t *list = json_array();
    for (size_t i = 0; i < pc->missing_count; i++)
        json_array_append_new(list, json_string(pc->missing[i]));
    if (res->json)
        json_object_set_new(res->json, "kernels", list);
    else
        json_decref(list);
}

#define TEXT_LIT(t, lit) estimate_text_append((t), (lit), sizeof(lit) - 1)

/* 200 with the text as the body, ending in a newline as http.c ends the JSON
 * it prints; the buffer moves into the response (t is left empty). */
static void respond_text(struct api_request *req, struct api_response *res,
                         struct estimate_text *t)
{
    if (TEXT_LIT(t, "\n") != 0) {
        struct api_error e;
        api_error_set(&e, 500, "out of memory building the estimate");
        api_respond_error(res, &e, req->path);
        return;
    }
    res->status = 200;
    res->content_type = "application/json";
    res->text = t->data;
    res->text_len = t->len;
    memset(t, 0, sizeof *t);
}

/* predict.max_graph_nodes; the graph module's default without a configuration
 * (unit tests). */
unsigned api_max_graph_nodes(const struct app *app)
{
    return app->cfg && app->cfg->max_graph_nodes > 0 ? app->cfg->max_graph_nodes
                                                      : GRAPH_DEFAULT_MAX_NODES;
}

void api_estimate_post(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    bool merge;
    if (parse_query(req, &merge, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }

    json_t *body = req->body;
    json_t *graphs = json_is_object(body) ? json_object_get(body, "graphs") : NULL;
    /* An nn-Meter IR graph is an object keyed by node names whose values are
     * objects, so only an array under "graphs" makes a batch. */
    bool batch = json_is_array(graphs);
    if (batch) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            if (strcmp(key, "graphs") != 0) {
                char q[64];
                text_quote(key, q, sizeof q);
                api_error_set(&e, 422,
                              "unknown member '%s' beside 'graphs'; a batch is {\"graphs\": "
                              "[graph, ...]} and each graph carries its own settings",
                              q);
                api_error_param(&e, q);
                api_respond_error(res, &e, req->path);
                return;
            }
        }
        size_t n = json_array_size(graphs);
        if (n == 0 || n > ESTIMATE_GRAPHS_MAX) {
            api_error_set(&e, 422, "member 'graphs' holds %zu graphs: send 1 to %d", n,
                          ESTIMATE_GRAPHS_MAX);
            api_error_param(&e, "graphs");
            api_respond_error(res, &e, req->path);
            return;
        }
    }

    struct estimate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.graph.merge = merge;
    opt.graph.max_nodes = api_max_graph_nodes(app);
    if (!app->models || !models_state_info(app->models, &opt.info)) {
        /* No models: only a graph without kernels can be answered; label it
         * as the device's data would be. */
        pthread_mutex_lock(&api_device_lock);
        opt.info.simulated = app->device.simulated;
        pthread_mutex_unlock(&api_device_lock);
    }

    struct predict_ctx pc = {.models = app->models, .missing_max = catalog_count()};
    pc.missing = calloc(pc.missing_max ? pc.missing_max : 1, sizeof *pc.missing);
    if (!pc.missing) {
        api_error_set(&e, 500, "out of memory estimating");
        api_respond_error(res, &e, req->path);
        return;
    }

    /* The answer is written as text (estimate_graph_text): the same bytes http.c
     * would print from estimate_graph's tree, at a fraction of the cost. */
    struct estimate_text text = {0};
    struct graph_error ge;
    if (!batch) {
        if (estimate_graph_text(body, &opt, predict_noting_missing, &pc, &text, &ge) == 0)
            respond_text(req, res, &text);
        else if (ge.status == 409 && pc.missing_count > 0)
            respond_missing(req, res, &pc);
        else
            api_respond_graph_error(req, res, &ge, -1);
        estimate_text_free(&text);
        free(pc.missing);
        return;
    }

    /* A batch: every graph is estimated even after a 409, to name every missing
     * kernel type; the first bad graph ends it. Once a kernel type is missing
     * the answers are not kept (the text is cut back after each). */
    size_t n = json_array_size(graphs);
    /* {"simulated": ..., "estimates": [...]}, the members in the order the tree had them */
    const char *head = opt.info.simulated ? "{\"simulated\":true,\"estimates\":["
                                          : "{\"simulated\":false,\"estimates\":[";
    bool out_of_memory = estimate_text_append(&text, head, strlen(head)) != 0;
    for (size_t i = 0; i < n && !out_of_memory; i++) {
        size_t mark = text.len;
        if (i > 0 && pc.missing_count == 0 && TEXT_LIT(&text, ",") != 0) {
            out_of_memory = true;
            break;
        }
        if (estimate_graph_text(json_array_get(graphs, i), &opt, predict_noting_missing, &pc,
                                &text, &ge) == 0) {
            if (pc.missing_count > 0) {
                text.len = mark;
                text.data[mark] = '\0';
            }
            continue;
        }
        text.len = mark;
        if (text.data)
            text.data[mark] = '\0';
        if (ge.status == 409 && pc.missing_count > 0)
            continue;
        estimate_text_free(&text);
        api_respond_graph_error(req, res, &ge, (long)i);
        free(pc.missing);
        return;
    }
    if (!out_of_memory && pc.missing_count > 0) {
        estimate_text_free(&text);
        respond_missing(req, res, &pc);
        free(pc.missing);
        return;
    }
    free(pc.missing);
    if (out_of_memory || TEXT_LIT(&text, "]}") != 0) {
        estimate_text_free(&text);
        api_error_set(&e, 500, "out of memory building %zu estimates", n);
        api_respond_error(res, &e, req->path);
        return;
    }
    respond_text(req, res, &text);
    estimate_text_free(&text);
}
