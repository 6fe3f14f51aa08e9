/*
 * models.c - a board's predictors (struct model_set) and predictions from them.
 *
 * The set is a table indexed like the catalogue: per kernel type an optional
 * latency model and up to PREDICT_MAX_RAILS mean-power models, one per rail, in
 * the order they were added. Each model is a bagged ensemble of XGBoost boosters
 * loaded through trees.h, so predicting is pure array reads: once built, a set is
 * never changed by model_set_predict() and any number of threads may predict from
 * it at once (the daemon swaps whole sets after training instead of editing one).
 *
 * Models arrive as jetprof-model/1 blobs (the models table, or "model" inside a
 * jetprof-models/1 export file). Everything in them is checked before the set
 * changes: the kernel must be in this build's catalogue and the feature layout
 * (version and count) must be this build's, because a model fed columns it was
 * not trained on predicts nonsense without any error. A model that fails leaves
 * the set as it was.
 *
 * An ensemble's prediction is the mean of its members' in target units and its
 * spread their population standard deviation: with log_target each member's
 * output is exp()'d first (the boosters learnt ln(latency)), matching how
 * train.c scores an ensemble.
 */
#include "predict/models.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict/features.h"
#include "predict/trees.h"

/* Members per ensemble at most: train.h makes 1..16; the bound keeps a
 * prediction free of allocation. */
#define MAX_MEMBERS 64

/* One target's ensemble. */
struct target_model {
    bool log_target;
    unsigned feature_count;
    size_t member_count;
    struct tree_ensemble **members;
};

/* Everything the set knows about one kernel type. */
struct kernel_models {
    struct target_model *latency; /* NULL: none, the kernel cannot be predicted */
    unsigned rail_count;
    char rail_names[PREDICT_MAX_RAILS][PREDICT_RAIL_NAME_MAX];
    struct target_model *power[PREDICT_MAX_RAILS];
};

struct model_set {
    struct model_set_info info;
    size_t kernel_count; /* catalog_count() */
    struct kernel_models *kernels; /* indexed like the catalogue */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void target_model_free(struct target_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->member_count; i++)
        trees_free(m->members[i]);
    free(m->members);
    free(m);
}

/* Position of kernel type name in the catalogue, or -1. */
static long kernel_index(const struct model_set *set, const char *name)
{
    for (size_t i = 0; i < set->kernel_count; i++) {
        if (strcmp(catalog_at(i)->name, name) == 0)
            return (long)i;
    }
    return -1;
}

struct model_set *model_set_new(void)
{
    struct model_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    set->kernel_count = catalog_count();
    set->kernels = calloc(set->kernel_count > 0 ? set->kernel_count : 1, sizeof *set->kernels);
    if (set->kernels == NULL) {
        free(set);
        return NULL;
    }
    return set;
}

void model_set_free(struct model_set *set)
{
    if (set == NULL)
        return;
    for (size_t k = 0; k < set->kernel_count; k++) {
        struct kernel_models *km = &set->kernels[k];
        target_model_free(km->latency);
        for (unsigned r = 0; r < km->rail_count; r++)
            target_model_free(km->power[r]);
    }
    free(set->kernels);
    free(set);
}

/* Copies src into a fixed buffer, always terminated. */
static void copy_name(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

void model_set_set_info(struct model_set *set, const struct model_set_info *info)
{
    set->info = *info;
    set->info.board_input_rail[sizeof set->info.board_input_rail - 1] = '\0';
    set->info.gpu_rail[sizeof set->info.gpu_rail - 1] = '\0';
    set->info.fingerprint[sizeof set->info.fingerprint - 1] = '\0';
}

void model_set_get_info(const struct model_set *set, struct model_set_info *out)
{
    *out = set->info;
}

/* ---- adding models ---- */

static int load_member(json_t *member, struct tree_ensemble **out, char *err, size_t errlen)
{
    if (!json_is_object(member)) {
        *out = NULL;
        set_err(err, errlen, "is not an XGBoost model object");
        return -1;
    }
    return trees_load_xgboost_value(member, out, err, errlen);
}

/* The parts of a blob, checked; the target string is "latency_us" or
 * "power_mw:<rail>", rail empty for latency. */
struct parsed_blob {
    const struct catalog_kernel *kernel;
    const char *target;
    char rail[PREDICT_RAIL_NAME_MAX];
    struct target_model *model;
};

static int parse_target(const char *target, char rail[PREDICT_RAIL_NAME_MAX], char *err,
                        size_t errlen)
{
    size_t prefix = strlen(PREDICT_TARGET_POWER_PREFIX);
    rail[0] = '\0';
    if (strcmp(target, PREDICT_TARGET_LATENCY) == 0)
        return 0;
    if (strncmp(target, PREDICT_TARGET_POWER_PREFIX, prefix) == 0) {
        const char *name = target + prefix;
        size_t n = strlen(name);
        if (n == 0) {
            set_err(err, errlen, "target '%s' names no rail", target);
            return -1;
        }
        if (n >= PREDICT_RAIL_NAME_MAX) {
            set_err(err, errlen, "target '%.80s': rail name longer than %d characters", target,
                    PREDICT_RAIL_NAME_MAX - 1);
            return -1;
        }
        memcpy(rail, name, n + 1);
        return 0;
    }
    set_err(err, errlen, "target '%.80s' is neither '%s' nor '%s<rail>'", target,
            PREDICT_TARGET_LATENCY, PREDICT_TARGET_POWER_PREFIX);
    return -1;
}

/* Checks a jetprof-model/1 object and loads its members into out->model. */
static int parse_blob(json_t *blob, struct parsed_blob *out, char *err, size_t errlen)
{
    char why[512];
    memset(out, 0, sizeof *out);
    if (!json_is_object(blob)) {
        set_err(err, errlen, "model blob is not a JSON object");
        return -1;
    }
    json_t *format = json_object_get(blob, "format");
    if (!json_is_string(format)) {
        set_err(err, errlen, "model blob has no \"format\" string (expected '%s')",
                PREDICT_MODEL_FORMAT);
        return -1;
    }
    if (strcmp(json_string_value(format), PREDICT_MODEL_FORMAT) != 0) {
        set_err(err, errlen, "model blob format is '%.64s', expected '%s'",
                json_string_value(format), PREDICT_MODEL_FORMAT);
        return -1;
    }
    json_t *kernel = json_object_get(blob, "kernel");
    if (!json_is_string(kernel)) {
        set_err(err, errlen, "model blob has no \"kernel\" string");
        return -1;
    }
    out->kernel = catalog_find(json_string_value(kernel));
    if (out->kernel == NULL) {
        set_err(err, errlen, "model blob: unknown kernel type '%.64s'",
                json_string_value(kernel));
        return -1;
    }
    const char *kname = out->kernel->name;
    json_t *target = json_object_get(blob, "target");
    if (!json_is_string(target)) {
        set_err(err, errlen, "model blob for %s has no \"target\" string", kname);
        return -1;
    }
    out->target = json_string_value(target);
    if (parse_target(out->target, out->rail, why, sizeof why) != 0) {
        set_err(err, errlen, "model blob for %s: %s", kname, why);
        return -1;
    }
    json_t *log_target = json_object_get(blob, "log_target");
    if (!json_is_boolean(log_target)) {
        set_err(err, errlen, "model for %s %s: \"log_target\" is not a boolean", kname,
                out->target);
        return -1;
    }
    json_t *version = json_object_get(blob, "feature_version");
    if (!json_is_integer(version)) {
        set_err(err, errlen, "model for %s %s: \"feature_version\" is not an integer", kname,
                out->target);
        return -1;
    }
    if (json_integer_value(version) != PREDICT_FEATURE_VERSION) {
        set_err(err, errlen,
                "model for %s %s has feature_version %lld but this build computes features "
                "version %d: retrain it (POST /v1/models/train)",
                kname, out->target, (long long)json_integer_value(version),
                PREDICT_FEATURE_VERSION);
        return -1;
    }
    unsigned expected = predict_feature_count(out->kernel);
    json_t *count = json_object_get(blob, "feature_count");
    if (!json_is_integer(count)) {
        set_err(err, errlen, "model for %s %s: \"feature_count\" is not an integer", kname,
                out->target);
        return -1;
    }
    if (json_integer_value(count) != (json_int_t)expected) {
        set_err(err, errlen,
                "model for %s %s has feature_count %lld but %s has %u features in this build",
                kname, out->target, (long long)json_integer_value(count), kname, expected);
        return -1;
    }
    json_t *members = json_object_get(blob, "members");
    if (!json_is_array(members) || json_array_size(members) == 0) {
        set_err(err, errlen, "model for %s %s: \"members\" is not a non-empty array", kname,
                out->target);
        return -1;
    }
    if (json_array_size(members) > MAX_MEMBERS) {
        set_err(err, errlen, "model for %s %s has %zu members, more than the %d supported",
                kname, out->target, json_array_size(members), MAX_MEMBERS);
        return -1;
    }

    struct target_model *m = calloc(1, sizeof *m);
    size_t n = json_array_size(members);
    if (m == NULL || (m->members = calloc(n, sizeof *m->members)) == NULL) {
        free(m);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    m->log_target = json_is_true(log_target);
    m->feature_count = expected;
    for (size_t i = 0; i < n; i++) {
        if (load_member(json_array_get(members, i), &m->members[i], why, sizeof why) != 0) {
            set_err(err, errlen, "model for %s %s: members[%zu]: %s", kname, out->target, i,
                    why);
            target_model_free(m);
            return -1;
        }
        m->member_count = i + 1;
        /* Fewer columns than given is harmless (trees_predict ignores the rest);
         * more means it was trained on another layout. */
        if (trees_feature_count(m->members[i]) > expected) {
            set_err(err, errlen,
                    "model for %s %s: members[%zu] reads %u features but %s has %u", kname,
                    out->target, i, trees_feature_count(m->members[i]), kname, expected);
            target_model_free(m);
            return -1;
        }
    }
    out->model = m;
    return 0;
}

/* Puts a parsed model into the set (taking it), replacing one for the same
 * kernel and target. */
static int insert_model(struct model_set *set, struct parsed_blob *pb, char *err, size_t errlen)
{
    long k = kernel_index(set, pb->kernel->name);
    if (k < 0) { /* catalog_find found it, so this cannot happen with one catalogue */
        set_err(err, errlen, "kernel type '%s' is not in the catalogue", pb->kernel->name);
        return -1;
    }
    struct kernel_models *km = &set->kernels[k];
    if (pb->rail[0] == '\0') {
        target_model_free(km->latency);
        km->latency = pb->model;
        pb->model = NULL;
        return 0;
    }
    for (unsigned r = 0; r < km->rail_count; r++) {
        if (strcmp(km->rail_names[r], pb->rail) == 0) {
            target_model_free(km->power[r]);
            km->power[r] = pb->model;
            pb->model = NULL;
            return 0;
        }
    }
    if (km->rail_count >= PREDICT_MAX_RAILS) {
        set_err(err, errlen,
                "model for %s %s: %s already has power models for %d rails, the most a set "
                "holds",
                pb->kernel->name, pb->target, pb->kernel->name, PREDICT_MAX_RAILS);
        return -1;
    }
    copy_name(km->rail_names[km->rail_count], sizeof km->rail_names[0], pb->rail);
    km->power[km->rail_count++] = pb->model;
    pb->model = NULL;
    return 0;
}

static int add_blob_json(struct model_set *set, json_t *blob, char *err, size_t errlen)
{
    struct parsed_blob pb;
    if (parse_blob(blob, &pb, err, errlen) != 0)
        return -1;
    if (insert_model(set, &pb, err, errlen) != 0) {
        target_model_free(pb.model);
        return -1;
    }
    return 0;
}

int model_set_add_blob(struct model_set *set, const char *blob, size_t len, char *err,
                       size_t errlen)
{
    json_error_t jerr;
    if (blob == NULL || len == 0) {
        set_err(err, errlen, "model blob is empty");
        return -1;
    }
    json_t *root = json_loadb(blob, len, 0, &jerr);
    if (root == NULL) {
        set_err(err, errlen, "model blob is not valid JSON (line %d, column %d: %s)", jerr.line,
                jerr.column, jerr.text);
        return -1;
    }
    int rc = add_blob_json(set, root, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- bundles ---- */

/* An optional string member of obj copied into dst; absent leaves dst as is. */
static int optional_string(json_t *obj, const char *key, const char *where, char *dst,
                           size_t size, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        set_err(err, errlen, "%s\"%s\" is not a string", where, key);
        return -1;
    }
    if (strlen(json_string_value(v)) >= size) {
        set_err(err, errlen, "%s\"%s\" is longer than %zu characters", where, key, size - 1);
        return -1;
    }
    copy_name(dst, size, json_string_value(v));
    return 0;
}

static int bundle_info(json_t *root, struct model_set_info *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    if (optional_string(root, "board_input_rail", "", info->board_input_rail,
                        sizeof info->board_input_rail, err, errlen) != 0 ||
        optional_string(root, "gpu_rail", "", info->gpu_rail, sizeof info->gpu_rail, err,
                        errlen) != 0)
        return -1;
    json_t *device = json_object_get(root, "device");
    if (device != NULL && !json_is_null(device)) {
        if (!json_is_object(device)) {
            set_err(err, errlen, "\"device\" is not an object");
            return -1;
        }
        if (optional_string(device, "fingerprint", "device.", info->fingerprint,
                            sizeof info->fingerprint, err, errlen) != 0)
            return -1;
    }
    /* "simulated" labels every answer made from these models; without it, the
     * device row's own flag (a boolean or SQLite's 0/1) says the same. */
    json_t *sim = json_object_get(root, "simulated");
    json_t *dev_sim = json_is_object(device) ? json_object_get(device, "simulated") : NULL;
    if (sim != NULL) {
        if (!json_is_boolean(sim)) {
            set_err(err, errlen, "\"simulated\" is not a boolean");
            return -1;
        }
        info->simulated = json_is_true(sim);
    } else if (json_is_boolean(dev_sim)) {
        info->simulated = json_is_true(dev_sim);
    } else if (json_is_integer(dev_sim)) {
        info->simulated = json_integer_value(dev_sim) != 0;
    }
    return 0;
}

/* The blob inside models[i], checked against the entry's own kernel/target. */
static int bundle_model(struct model_set *set, json_t *entry, size_t i, char *err,
                        size_t errlen)
{
    char why[768];
    if (!json_is_object(entry)) {
        set_err(err, errlen, "models[%zu] is not an object", i);
        return -1;
    }
    json_t *blob = json_object_get(entry, "model");
    if (!json_is_object(blob)) {
        set_err(err, errlen, "models[%zu] has no \"model\" object", i);
        return -1;
    }
    static const char *const same_keys[] = {"kernel", "target"};
    for (size_t k = 0; k < sizeof same_keys / sizeof same_keys[0]; k++) {
        json_t *outer = json_object_get(entry, same_keys[k]);
        json_t *inner = json_object_get(blob, same_keys[k]);
        if (outer != NULL && inner != NULL && !json_equal(outer, inner)) {
            set_err(err, errlen, "models[%zu]: \"%s\" differs from the one in its \"model\"", i,
                    same_keys[k]);
            return -1;
        }
    }
    if (add_blob_json(set, blob, why, sizeof why) != 0) {
        set_err(err, errlen, "models[%zu]: %s", i, why);
        return -1;
    }
    return 0;
}

int model_set_load_bundle(const char *text, size_t len, struct model_set **out, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    struct model_set_info info;
    *out = NULL;
    if (text == NULL || len == 0) {
        set_err(err, errlen, "models file is empty");
        return -1;
    }
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        set_err(err, errlen, "models file is not valid JSON (line %d, column %d: %s)", jerr.line,
                jerr.column, jerr.text);
        return -1;
    }
    struct model_set *set = NULL;
    json_t *format = json_object_get(root, "format");
    json_t *models = json_object_get(root, "models");
    if (!json_is_object(root)) {
        set_err(err, errlen, "models file is not a JSON object");
        goto fail;
    }
    if (!json_is_string(format)) {
        set_err(err, errlen, "models file has no \"format\" string (expected '%s')",
                PREDICT_BUNDLE_FORMAT);
        goto fail;
    }
    if (strcmp(json_string_value(format), PREDICT_BUNDLE_FORMAT) != 0) {
        set_err(err, errlen, "models file format is '%.64s', expected '%s'",
                json_string_value(format), PREDICT_BUNDLE_FORMAT);
        goto fail;
    }
    if (!json_is_array(models) || json_array_size(models) == 0) {
        set_err(err, errlen, "models file has no models (\"models\" is not a non-empty array)");
        goto fail;
    }
    if (bundle_info(root, &info, err, errlen) != 0)
        goto fail;
    set = model_set_new();
    if (set == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    model_set_set_info(set, &info);
    for (size_t i = 0; i < json_array_size(models); i++) {
        if (bundle_model(set, json_array_get(models, i), i, err, errlen) != 0)
            goto fail;
    }
    json_decref(root);
    *out = set;
    return 0;
fail:
    model_set_free(set);
    json_decref(root);
    return -1;
}

/* ---- queries and predictions ---- */

size_t model_set_count(const struct model_set *set)
{
    size_t n = 0;
    for (size_t k = 0; k < set->kernel_count; k++)
        n += (set->kernels[k].latency != NULL) + set->kernels[k].rail_count;
    return n;
}

bool model_set_has_kernel(const struct model_set *set, const char *kernel)
{
    long k = kernel == NULL ? -1 : kernel_index(set, kernel);
    return k >= 0 && set->kernels[k].latency != NULL;
}

/* Mean and population standard deviation of the members' predictions, in
 * target units. -1 when they are not finite numbers (exp() of a huge margin). */
static int ensemble_predict(const struct target_model *m, const float *features,
                            unsigned feature_count, double *mean_out, double *spread_out)
{
    double values[MAX_MEMBERS];
    double sum = 0.0, squares = 0.0;
    for (size_t i = 0; i < m->member_count; i++) {
        values[i] = trees_predict(m->members[i], features, feature_count);
        if (m->log_target)
            values[i] = exp(values[i]);
        sum += values[i];
    }
    double mean = sum / (double)m->member_count;
    for (size_t i = 0; i < m->member_count; i++)
        squares += (values[i] - mean) * (values[i] - mean);
    double spread = sqrt(squares / (double)m->member_count);
    if (!isfinite(mean) || !isfinite(spread))
        return -1;
    *mean_out = mean;
    *spread_out = spread;
    return 0;
}

int model_set_predict(const struct model_set *set, const struct kernel_config *cfg,
                      struct kernel_prediction *out, char *err, size_t errlen)
{
    float features[PREDICT_MAX_FEATURES];
    memset(out, 0, sizeof *out);
    if (cfg == NULL || cfg->kernel == NULL) {
        set_err(err, errlen, "no kernel type given");
        return -1;
    }
    const char *kname = cfg->kernel->name;
    long k = kernel_index(set, kname);
    if (k < 0 || set->kernels[k].latency == NULL) {
        set_err(err, errlen, "no model for kernel type '%s'", kname);
        return -1;
    }
    const struct kernel_models *km = &set->kernels[k];
    unsigned n = predict_features(cfg, features);
    if (n != km->latency->feature_count) {
        set_err(err, errlen, "%s: %u features computed, the model expects %u", kname, n,
                km->latency->feature_count);
        return -1;
    }
    if (ensemble_predict(km->latency, features, n, &out->latency_us, &out->latency_us_spread) !=
        0) {
        set_err(err, errlen, "the %s latency model gave no finite prediction", kname);
        return -1;
    }
    for (unsigned r = 0; r < km->rail_count; r++) {
        struct rail_prediction *rp = &out->rails[r];
        copy_name(rp->name, sizeof rp->name, km->rail_names[r]);
        if (ensemble_predict(km->power[r], features, n, &rp->power_mw, &rp->power_mw_spread) !=
            0) {
            set_err(err, errlen, "the %s power model for rail %s gave no finite prediction",
                    kname, km->rail_names[r]);
            memset(out, 0, sizeof *out);
            return -1;
        }
        /* us x mW = nJ; / 1000 = uJ */
        rp->energy_uj = out->latency_us * rp->power_mw / 1000.0;
    }
    out->rail_count = km->rail_count;
    return 0;
}

const char *predict_gpu_rail(const char *const *names, unsigned count)
{
    if (names == NULL)
        return NULL;
    for (unsigned i = 0; i < count; i++) {
        if (names[i] != NULL && strcasestr(names[i], "GPU") != NULL)
            return names[i];
    }
    return NULL;
}
