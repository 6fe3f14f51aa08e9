/*
 * api_predict.c - POST /v1/predict: kernel configurations in, predicted latency,
 * power per rail and energy per rail out, each next to the newest measurement
 * of the same configuration on a device like this one when there is one.
 *
 * Body: {"configs": [{"kernel": "linear_relu", "dtype": "fp32", "batch": 64,
 * "in": 256, "out": 512}, ...]} with 1..PREDICT_CONFIGS_MAX configurations, each
 * checked exactly as POST /v1/measure checks its body (api_parse_kernel_config,
 * no memory limit: nothing is allocated), an error naming "configs[i]".
 * Every configuration is checked before anything is predicted, and every
 * kernel type without a model is collected before the 409, so one answer tells
 * the user everything to measure. Predictions go through the models_state
 * cache (a search revisits the same layers); "measured" is read from the
 * database (db_measurement_find_latest) so a user sees the model's error where
 * ground truth exists. Needs no auth: it changes nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../predict/estimate.h"
#include "api.h"

#define PREDICT_CONFIGS_MAX 10000

/* {"batch": 64, "in": 256, "out": 512} in catalogue order. */
static json_t *params_json(const struct kernel_config *cfg)
{
    json_t *o = json_object();
    for (unsigned i = 0; o && i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        if (json_object_set_new(o, cfg->kernel->params[i].name,
                                json_integer((json_int_t)cfg->params[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* The problem for kernel types without a model, with member "kernels". */
static void respond_missing(struct api_request *req, struct api_response *res,
                            const char **missing, size_t count)
{
    struct api_error e;
    char detail[API_DETAIL_MAX];
    estimate_missing_models_detail(missing, count, detail, sizeof detail);
    api_error_set(&e, 409, "%s", detail);
    api_respond_error(res, &e, req->path);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(list, json_string(missing[i]));
    /* the problem is complete without the list; a failed add only loses it */
    if (res->json)
        json_object_set_new(res->json, "kernels", list);
    else
        json_decref(list);
}

static void add_missing(const char **missing, size_t *count, size_t max, const char *name)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp(missing[i], name) == 0)
            return;
    if (*count < max)
        missing[(*count)++] = name;
}

/* A new reference to obj[key], or null when absent. */
static json_t *member_or_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v ? json_incref(v) : json_null();
}

/* {"measurement_id","latency_us","power_mw":{rail: mW},"energy_uj","energy_rail",
 * "quality","created_at"} from a Measurement object; NULL when out of memory. */
static json_t *measured_json(json_t *m)
{
    json_t *power = json_object();
    json_t *rails = json_object_get(m, "rails");
    size_t i;
    json_t *r;
    json_array_foreach(rails, i, r)
    {
        json_t *name = json_object_get(r, "rail"), *mw = json_object_get(r, "power_mw");
        if (json_is_string(name) && mw &&
            json_object_set(power, json_string_value(name), mw) != 0) {
            json_decref(power);
            return NULL;
        }
    }
    json_t *out = json_object();
    int rc = json_object_set_new(out, "measurement_id", member_or_null(m, "id"));
    rc |= json_object_set_new(out, "latency_us", member_or_null(m, "latency_us"));
    rc |= json_object_set_new(out, "power_mw", power);
    rc |= json_object_set_new(out, "energy_uj", member_or_null(m, "energy_uj"));
    rc |= json_object_set_new(out, "energy_rail", member_or_null(m, "energy_rail"));
    rc |= json_object_set_new(out, "quality", member_or_null(m, "quality"));
    rc |= json_object_set_new(out, "created_at", member_or_null(m, "created_at"));
    if (rc != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The "measured" member for key: the newest measurement on a device like this
 * one, or null. A database failure is logged and answered as null: the
 * prediction itself does not depend on it. */
static json_t *measured_member(struct db *db, const char *key, int64_t device_id)
{
    if (!db || device_id <= 0)
        return json_null();
    char err[256] = "";
    int64_t mid = 0;
    int found = db_measurement_find_latest(db, key, device_id, &mid, err, sizeof err);
    if (found < 0)
        log_warn("http", "predict: cannot look up measurements of %s: %s", key, err);
    if (found != 1)
        return json_null();
    json_t *m = db_measurement_json(db, mid, err, sizeof err);
    if (!m) {
        if (err[0])
            log_warn("http", "predict: cannot read measurement %" PRId64 ": %s", mid, err);
        return json_null();
    }
    json_t *out = measured_json(m);
    json_decref(m);
    return out;
}

/* Reads body into cfgs (count entries); 0 or -1 with e. */
static int parse_configs(json_t *body, struct kernel_config **cfgs, size_t *count,
                         struct api_error *e)
{
    *cfgs = NULL;
    *count = 0;
    if (!json_is_object(body)) {
        api_error_set(e, 422,
                      "the request body must be a JSON object {\"configs\": [{\"kernel\": "
                      "\"linear_relu\", \"batch\": 64, \"in\": 256, \"out\": 512}, ...]}");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "configs") != 0) {
            char q[64];
            text_quote(key, q, sizeof q);
            api_error_set(e, 422, "unknown member '%s'; the body has one member, 'configs'", q);
            api_error_param(e, q);
            return -1;
        }
    }
    json_t *list = json_object_get(body, "configs");
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > PREDICT_CONFIGS_MAX) {
        if (json_is_array(list))
            api_error_set(e, 422, "member 'configs' holds %zu configurations: send 1 to %d",
                          json_array_size(list), PREDICT_CONFIGS_MAX);
        else
            api_error_set(e, 422,
                          "member 'configs' is required: an array of 1 to %d kernel "
                          "configurations such as {\"kernel\": \"linear_relu\", \"batch\": 64, "
                          "\"in\": 256, \"out\": 512}",
                          PREDICT_CONFIGS_MAX);
        api_error_param(e, "configs");
        return -1;
    }
    size_t n = json_array_size(list);
    struct kernel_config *out = calloc(n, sizeof *out);
    if (!out) {
        api_error_set(e, 500, "out of memory reading %zu configurations", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct api_error ce;
        unsigned repeats;
        if (api_parse_kernel_config(json_array_get(list, i), 0, &out[i], &repeats, &ce) != 0) {
            char where[64];
            snprintf(where, sizeof where, "configs[%zu]", i);
            api_error_set(e, ce.status ? ce.status : 422, "%s: %s", where, ce.detail);
            if (ce.parameter[0]) {
                char param[128];
                snprintf(param, sizeof param, "%s.%s", where, ce.parameter);
                api_error_param(e, param);
            } else {
                api_error_param(e, where);
            }
            free(out);
            return -1;
        }
    }
    *cfgs = out;
    *count = n;
    return 0;
}

void api_predict_post(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    struct kernel_config *cfgs;
    size_t n;
    if (parse_configs(req->body, &cfgs, &n, &e) != 0) {
        api_respond_error(res, &e, req->path);
        return;
    }

    /* Every kernel type without a model, before predicting anything. */
    size_t kinds = catalog_count();
    const char **missing = calloc(kinds ? kinds : 1, sizeof *missing);
    struct kernel_prediction *preds = calloc(n, sizeof *preds);
    if (!missing || !preds) {
        free(missing);
        free(preds);
        free(cfgs);
        api_error_set(&e, 500, "out of memory predicting %zu configurations", n);
        api_respond_error(res, &e, req->path);
        return;
    }
    size_t missing_count = 0;
    for (size_t i = 0; i < n; i++)
        if (!app->models || !models_state_has_kernel(app->models, cfgs[i].kernel->name))
            add_missing(missing, &missing_count, kinds, cfgs[i].kernel->name);
    /* A training finishing between the check and here may swap in models that
     * lack a kernel type: that is a 409 as well, never a half answer. */
    for (size_t i = 0; missing_count == 0 && i < n; i++) {
        char why[256];
        if (models_state_predict(app->models, &cfgs[i], &preds[i], why, sizeof why) != 0)
            add_missing(missing, &missing_count, kinds, cfgs[i].kernel->name);
    }
    if (missing_count > 0) {
        respond_missing(req, res, missing, missing_count);
        free(missing);
        free(preds);
        free(cfgs);
        return;
    }
    free(missing);

    struct model_set_info info;
    models_state_info(app->models, &info);
    pthread_mutex_lock(&api_device_lock);
    int64_t device_id = app->device_id;
    pthread_mutex_unlock(&api_device_lock);
    struct db *db = app->pool ? db_pool_acquire(app->pool) : NULL;

    json_t *list = json_array();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char key[256];
        if (catalog_config_key(&cfgs[i], key, sizeof key) < 0) {
            ok = false;
            break;
        }
        json_t *p = json_object();
        int rc = p ? 0 : -1;
        rc |= json_object_set_new(p, "kernel", json_string(cfgs[i].kernel->name));
        rc |= json_object_set_new(p, "dtype", json_string(dtype_name(cfgs[i].dtype)));
        rc |= json_object_set_new(p, "params", params_json(&cfgs[i]));
        rc |= json_object_set_new(p, "config_key", json_string(key));
        if (rc == 0)
            rc = estimate_prediction_fields(p, &preds[i]);
        rc |= json_object_set_new(p, "measured", measured_member(db, key, device_id));
        ok = rc == 0 && json_array_append_new(list, p) == 0;
        if (rc != 0)
            json_decref(p);
    }
    if (db)
        db_pool_release(app->pool, db);
    free(preds);
    free(cfgs);

    json_t *answer = json_object();
    int rc = ok ? 0 : -1;
    rc |= json_object_set_new(answer, "simulated", json_boolean(info.simulated));
    rc |= json_object_set_new(answer, "predictions", list);
    if (rc != 0) {
        json_decref(answer);
        api_error_set(&e, 500, "out of memory building %zu predictions", n);
        api_respond_error(res, &e, req->path);
        return;
    }
    api_respond_json(res, 200, answer);
}
