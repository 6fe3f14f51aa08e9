/*
 * api_models.c - the predictors over HTTP: POST /v1/models/train trains XGBoost
 * models per kernel type from this board's measurements, GET /v1/models lists the
 * current ones with their accuracy, GET /v1/models/export writes them as one
 * jetprof-models/1 file for `jetprof estimate --offline`. Also the loading of
 * the newest models from the database into app->models (at start and after each
 * training).
 *
 * Training never overlaps a measurement window (DESIGN.md): the handler checks
 * the request and the row counts with a pool connection (422 for a bad body or
 * an unknown kernel, 409 when a kernel type has fewer than TRAIN_MIN_ROWS usable
 * measurements), then hands a train_run to the runner as a task and suspends
 * the connection (api_defer). The runner runs it between jobs with its own
 * connection: reads the rows (db_training_rows), turns each back into a
 * kernel_config and its feature vector, trains the latency model (log target)
 * and one mean-power model per rail, stores every model of the run in one
 * transaction, reloads app->models from the database and resumes the request,
 * which answers from the run's outcome. The run is shared by the request and
 * the task (a reference each), so either may finish first: a client that goes
 * away, or a daemon that stops, never leaves the other with a dangling pointer.
 *
 * A model's blob is the jetprof-model/1 object of predict/models.h, its members
 * the XGBoost JSON boosters as objects. The training hash identifies what a
 * model was trained from: SHA-256 over the kernel, the target, the uids of the
 * rows used (the database returns them sorted) and every training option, so
 * the same data and options give the same hash - and, the trainer being seeded,
 * the same model.
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/sha256.h"
#include "../predict/features.h"
#include "../predict/models.h"
#include "../predict/train.h"
#include "api.h"

#define LOG_MODULE "models"
#define TRAINING_HASH_TAG "jetprof-training-v1"
/* A stopped daemon runs a queued training after its next start only if asked
 * again; a client may retry then. */
#define STOPPING_RETRY_AFTER_S 30u

/* Body members of POST /v1/models/train. */
static const char *const train_members[] = {"kernels", "quality"};
#define TRAIN_MEMBER_COUNT (sizeof(train_members) / sizeof(train_members[0]))

/* Sim sensor or CPU executor: the numbers describe no real GPU (db.h's
 * measurement flag, applied to the device). */
static bool device_simulated(const struct db_device *d)
{
    return d->simulated || strcmp(d->executor, "cpu") == 0;
}

/* The current device row, copied under the lock PUT /v1/sensor/sampling takes. */
static void device_snapshot(struct app *app, struct db_device *dev, int64_t *device_id)
{
    pthread_mutex_lock(&api_device_lock);
    *dev = app->device;
    *device_id = app->device_id;
    pthread_mutex_unlock(&api_device_lock);
}

/* A real, or null where JSON has no number for it. */
static json_t *real_or_null(double v)
{
    json_t *r = isfinite(v) ? json_real(v) : NULL;
    return r ? r : json_null();
}

/* ---- loading models into app->models ---- */

int api_models_load(struct app *app, struct db *db, size_t *loaded, char *err, size_t errlen)
{
    if (loaded)
        *loaded = 0;
    if (!app || !app->models || !db) {
        snprintf(err, errlen, "loading models: no model state or database connection");
        return -1;
    }
    struct db_device dev;
    int64_t device_id;
    device_snapshot(app, &dev, &device_id);

    struct db_model *models = NULL;
    size_t n = 0;
    if (db_models_newest(db, device_id, true, &models, &n, err, errlen) != 0)
        return -1;
    struct model_set *set = model_set_new();
    if (!set) {
        db_models_free(models, n);
        snprintf(err, errlen, "loading models: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char why[512];
        if (model_set_add_blob(set, models[i].blob, models[i].blob_len, why, sizeof why) != 0)
            log_warn(LOG_MODULE, "model %" PRId64 " (%s %s) is not used: %s", models[i].id,
                     models[i].kernel, models[i].target, why);
    }
    db_models_free(models, n);

    struct model_set_info info;
    memset(&info, 0, sizeof info);
    const struct sensor *s = app->sensor;
    if (s) {
        const char *names[SENSOR_MAX_RAILS];
        unsigned count = s->rail_count < SENSOR_MAX_RAILS ? s->rail_count : SENSOR_MAX_RAILS;
        for (unsigned i = 0; i < count; i++)
            names[i] = s->rails[i].name;
        if (s->board_input_rail >= 0 && (unsigned)s->board_input_rail < count)
            snprintf(info.board_input_rail, sizeof info.board_input_rail, "%s",
                     s->rails[s->board_input_rail].name);
        const char *gpu = predict_gpu_rail(names, count);
        if (gpu)
            snprintf(info.gpu_rail, sizeof info.gpu_rail, "%s", gpu);
    }
    info.simulated = device_simulated(&dev);
    snprintf(info.fingerprint, sizeof info.fingerprint, "%s", dev.fingerprint);
    model_set_set_info(set, &info);

    size_t count = model_set_count(set);
    if (count == 0) {
        model_set_free(set);
        set = NULL; /* no models: predictions answer 409 */
    }
    models_state_replace(app->models, set);
    if (loaded)
        *loaded = count;
    return 0;
}

/* ---- the Model object ---- */

/* {"id","kernel","target","created_at","training_hash","device_id","fingerprint",
 *  "simulated","metrics"}; NULL when out of memory. */
static json_t *model_json(const struct db_model *m)
{
    json_t *metrics = json_loads(m->metrics_json, 0, NULL);
    if (!metrics || !json_is_object(metrics)) {
        json_decref(metrics);
        metrics = json_object(); /* db_models_insert refuses what would not parse */
    }
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:o,s:o,s:b,s:o}", "id", (json_int_t)m->id,
                     "kernel", m->kernel, "target", m->target, "created_at", m->created_at,
                     "training_hash", m->training_hash, "device_id",
                     m->device_id > 0 ? json_integer(m->device_id) : json_null(), "fingerprint",
                     m->fingerprint[0] ? json_string(m->fingerprint) : json_null(), "simulated",
                     m->simulated, "metrics", metrics);
}

static json_t *models_array(const struct db_model *models, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *m = model_json(&models[i]);
        if (!m || json_array_append_new(arr, m) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- GET /v1/models ---- */

void api_models_list(struct api_request *req, struct api_response *res)
{
    struct api_error e;
    struct db_device dev;
    int64_t device_id;
    device_snapshot(req->app, &dev, &device_id);

    char err[512] = "";
    struct db_model *models = NULL;
    size_t n = 0;
    struct db *db = db_pool_acquire(req->app->pool);
    int rc = db ? db_models_newest(db, device_id, false, &models, &n, err, sizeof err) : -1;
    if (db)
        db_pool_release(req->app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "cannot read the models: %s", db ? err : "no database connection");
        api_respond_error(res, &e, req->path);
        return;
    }
    json_t *arr = models_array(models, n);
    db_models_free(models, n);
    api_respond_json(res, 200,
                     arr ? json_pack("{s:o,s:b}", "models", arr, "simulated",
                                     device_simulated(&dev))
                         : NULL);
}

/* ---- GET /v1/models/export ---- */

struct text_buf {
    char *data;
    size_t len, cap;
    bool oom;
};

static void tb_append(struct text_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void tb_puts(struct text_buf *b, const char *s) { tb_append(b, s, strlen(s)); }

/* Appends obj's compact JSON without its closing '}', so members can follow.
 * obj must have at least one member. Takes the reference. */
static void tb_open_object(struct text_buf *b, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    size_t len = text ? strlen(text) : 0;
    if (len < 2 || text[len - 1] != '}') {
        b->oom = true;
        free(text);
        return;
    }
    tb_append(b, text, len - 1);
    free(text);
}

static json_t *device_json(const struct db_device *d, int64_t device_id)
{
    json_t *sampling = json_loads(d->sampling_json, 0, NULL);
    if (!sampling)
        sampling = json_string(d->sampling_json);
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:b}", "id",
                     (json_int_t)device_id, "fingerprint", d->fingerprint, "board_model",
                     d->board_model, "l4t_version", d->l4t_version, "cuda_version",
                     d->cuda_version, "gpu_name", d->gpu_name, "executor", d->executor,
                     "sensor_backend", d->sensor_backend, "sampling", sampling, "hostname",
                     d->hostname, "simulated", d->simulated);
}

/*
 * The bundle's text. The model blobs are spliced in verbatim: they are the
 * trees exactly as stored (no float re-rounding) and can be megabytes each, too
 * big to parse all at once just to print them again. Each is checked to be a
 * JSON object first (db_models_insert also refused anything else), so the
 * bundle is valid JSON. NULL with e set.
 */
static char *bundle_text(struct app *app, const struct db_device *dev, int64_t device_id,
                         const struct db_model *models, size_t n, size_t *len,
                         struct api_error *e)
{
    struct model_set_info info;
    memset(&info, 0, sizeof info);
    if (!app->models || !models_state_info(app->models, &info)) {
        /* No loaded set (e.g. every stored blob was refused): the sensor says. */
        const struct sensor *s = app->sensor;
        if (s && s->board_input_rail >= 0 && (unsigned)s->board_input_rail < s->rail_count)
            snprintf(info.board_input_rail, sizeof info.board_input_rail, "%s",
                     s->rails[s->board_input_rail].name);
    }
    char stamp[32];
    clock_utc_iso8601(stamp, sizeof stamp);
    struct text_buf b = {0};
    tb_open_object(&b, json_pack("{s:s,s:s,s:o,s:b,s:s,s:s}", "format", PREDICT_BUNDLE_FORMAT,
                                 "exported_at", stamp, "device", device_json(dev, device_id),
                                 "simulated", device_simulated(dev), "board_input_rail",
                                 info.board_input_rail, "gpu_rail", info.gpu_rail));
    tb_puts(&b, ",\"models\":[");
    for (size_t i = 0; i < n && !b.oom; i++) {
        const struct db_model *m = &models[i];
        json_error_t jerr;
        json_t *blob = json_loadb(m->blob, m->blob_len, 0, &jerr);
        bool object = blob && json_is_object(blob);
        json_decref(blob);
        if (!object) {
            free(b.data);
            api_error_set(e, 500, "model %" PRId64 " (%s %s) in the database is not a JSON "
                          "object: %s", m->id, m->kernel, m->target,
                          blob ? "another JSON value" : jerr.text);
            return NULL;
        }
        json_t *metrics = json_loads(m->metrics_json, 0, NULL);
        if (!metrics)
            metrics = json_object();
        if (i > 0)
            tb_puts(&b, ",");
        tb_open_object(&b, json_pack("{s:I,s:s,s:s,s:o,s:s,s:s}", "id", (json_int_t)m->id,
                                     "kernel", m->kernel, "target", m->target, "metrics",
                                     metrics, "training_hash", m->training_hash, "created_at",
                                     m->created_at));
        tb_puts(&b, ",\"model\":");
        tb_append(&b, m->blob, m->blob_len);
        tb_puts(&b, "}");
    }
    tb_puts(&b, "]}\n");
    if (b.oom) {
        free(b.data);
        api_error_set(e, 500, "out of memory writing the models file");
        return NULL;
    }
    *len = b.len;
    return b.data;
}

void api_models_export(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e;
    struct db_device dev;
    int64_t device_id;
    device_snapshot(app, &dev, &device_id);

    char err[512] = "";
    struct db_model *models = NULL;
    size_t n = 0;
    struct db *db = db_pool_acquire(app->pool);
    int rc = db ? db_models_newest(db, device_id, true, &models, &n, err, sizeof err) : -1;
    if (db)
        db_pool_release(app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "cannot read the models: %s", db ? err : "no database connection");
        api_respond_error(res, &e, req->path);
        return;
    }
    if (n == 0) {
        api_error_set(&e, 404,
                      "no models for this device yet: measure at least %d configurations of a "
                      "kernel type (POST /v1/jobs) and train (POST /v1/models/train)",
                      TRAIN_MIN_ROWS);
        api_respond_error(res, &e, req->path);
        return;
    }
    size_t len = 0;
    char *text = bundle_text(app, &dev, device_id, models, n, &len, &e);
    db_models_free(models, n);
    if (!text) {
        api_respond_error(res, &e, req->path);
        return;
    }
    res->status = 200;
    res->text = text;
    res->text_len = len;
    res->content_type = "application/json";
    snprintf(res->content_disposition, sizeof res->content_disposition,
             "attachment; filename=\"jetprof-models.json\"");
}

/* ---- training: the run shared by the request and the runner task ---- */

struct train_run {
    atomic_uint refs; /* the request's and the task's */
    struct runner_task task;
    struct app *app;
    struct api_deferred *deferred;
    /* what to train */
    const struct catalog_kernel **kernels;
    size_t kernel_count;
    const char *quality; /* "ok", or NULL = any */
    struct db_device device;
    int64_t device_id;
    int64_t start_ns;
    /* the outcome, written by the task before it resumes the request */
    unsigned status;       /* 200, or the problem's */
    json_t *answer;        /* 200's body */
    struct api_error error;
    json_t *error_members; /* extra problem members (409: kernel, measurements, ...) */
};

static void run_unref(struct train_run *run)
{
    if (atomic_fetch_sub(&run->refs, 1) != 1)
        return;
    json_decref(run->answer);
    json_decref(run->error_members);
    free(run->kernels);
    free(run);
}

static void run_release(void *ctx) { run_unref(ctx); }

static const char *quality_name(const char *quality) { return quality ? quality : "any"; }

/* The 409 of a kernel type with too few rows (the request and the task say the same). */
static void too_few_rows(struct api_error *e, json_t **members, const char *kernel,
                         int64_t rows, const char *quality)
{
    api_error_set(e, 409,
                  "kernel type '%s' has %" PRId64 " usable measurement%s (quality %s) on this "
                  "device; training needs at least %d: queue more with POST /v1/jobs",
                  kernel, rows, rows == 1 ? "" : "s", quality_name(quality), TRAIN_MIN_ROWS);
    json_decref(*members);
    *members = json_pack("{s:s,s:I,s:i}", "kernel", kernel, "measurements", (json_int_t)rows,
                         "needed", TRAIN_MIN_ROWS);
}

/* A training row's params_json and dtype as a kernel_config of k. -1 when they
 * do not make one (a parameter missing or not an integer, an unknown dtype). */
static int row_config(const struct catalog_kernel *k, const struct db_training_row *row,
                      struct kernel_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kernel = k;
    if (dtype_parse(row->dtype, &cfg->dtype) != 0)
        return -1;
    json_t *params = json_loads(row->params_json, 0, NULL);
    int rc = json_is_object(params) ? 0 : -1;
    for (unsigned i = 0; rc == 0 && i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        json_t *v = json_object_get(params, k->params[i].name);
        if (!json_is_integer(v))
            rc = -1;
        else
            cfg->params[i] = (int64_t)json_integer_value(v);
    }
    json_decref(params);
    return rc;
}

static void options_from_config(const struct config *cfg, struct train_options *opt)
{
    train_options_default(opt);
    opt->seed = cfg->train_seed;
    opt->holdout_fraction = cfg->train_holdout;
    opt->ensemble_size = cfg->train_ensemble;
    opt->rounds = cfg->train_rounds;
    opt->max_depth = cfg->train_max_depth;
    opt->eta = cfg->train_eta;
}

/* SHA-256 hex over what the model is trained from: kernel, target, the uids of
 * the rows used (in the database's uid order), every option, the feature layout. */
static void training_hash(const char *kernel, const char *target,
                          const struct db_training_row *rows, const size_t *used, size_t n,
                          const struct train_options *opt, char out[SHA256_HEX_CHARS + 1])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_BYTES];
    char head[512];
    int len = snprintf(head, sizeof head,
                       TRAINING_HASH_TAG "\nkernel=%s\ntarget=%s\nseed=%u\nholdout=%.17g\n"
                       "ensemble=%u\nrounds=%u\nmax_depth=%u\neta=%.17g\nlog_target=%d\n"
                       "feature_version=%d\nrows=%zu\n",
                       kernel, target, opt->seed, opt->holdout_fraction, opt->ensemble_size,
                       opt->rounds, opt->max_depth, opt->eta, opt->log_target ? 1 : 0,
                       PREDICT_FEATURE_VERSION, n);
    sha256_init(&ctx);
    sha256_update(&ctx, head, len > 0 && (size_t)len < sizeof head ? (size_t)len : 0);
    for (size_t i = 0; i < n; i++) {
        const char *uid = rows[used[i]].uid;
        sha256_update(&ctx, uid, strnlen(uid, sizeof rows[used[i]].uid));
        sha256_update(&ctx, "\n", 1);
    }
    sha256_final(&ctx, digest);
    sha256_digest_hex(digest, out);
}

/* {"format":"jetprof-model/1",...,"members":[<booster>,...]} as compact text
 * (malloc'd), or NULL with err. */
static char *model_blob(const struct catalog_kernel *k, const char *target, bool log_target,
                        char **members, size_t member_count, char *err, size_t errlen)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < member_count; i++) {
        json_error_t jerr;
        json_t *m = json_loads(members[i], 0, &jerr);
        if (!m || !json_is_object(m)) {
            snprintf(err, errlen, "booster %zu of %s %s is not a JSON object: %s", i, k->name,
                     target, m ? "another JSON value" : jerr.text);
            json_decref(m);
            json_decref(arr);
            return NULL;
        }
        if (json_array_append_new(arr, m) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *blob = arr ? json_pack("{s:s,s:s,s:s,s:b,s:i,s:i,s:o}", "format",
                                   PREDICT_MODEL_FORMAT, "kernel", k->name, "target", target,
                                   "log_target", log_target, "feature_version",
                                   PREDICT_FEATURE_VERSION, "feature_count",
                                   (int)predict_feature_count(k), "members", arr)
                       : NULL;
    char *text = blob ? json_dumps(blob, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(blob);
    if (!text)
        snprintf(err, errlen, "out of memory building the model of %s %s", k->name, target);
    return text;
}

/* The models being made by one run (blobs owned here until stored). */
struct model_list {
    struct db_model *items;
    size_t count, cap;
};

static void model_list_free(struct model_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].blob);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static struct db_model *model_list_add(struct model_list *l)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct db_model *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return NULL;
        l->items = p;
        l->cap = cap;
    }
    struct db_model *m = &l->items[l->count++];
    memset(m, 0, sizeof *m);
    return m;
}

/*
 * Trains one target from rows[used[0..n)] (features already in trows, targets
 * set) and appends the model to out. 0, or -1 with run->error set.
 */
static int train_target(struct train_run *run, const struct catalog_kernel *k,
                        const char *target, bool log_target, const struct train_row *trows,
                        const struct db_training_row *rows, const size_t *used, size_t n,
                        struct model_list *out)
{
    struct train_options opt;
    options_from_config(run->app->cfg, &opt);
    opt.log_target = log_target;
    char **members = NULL;
    size_t member_count = 0;
    struct train_metrics metrics;
    char why[512];
    int64_t t0 = clock_mono_ns();
    if (train_ensemble(trows, n, predict_feature_count(k), &opt, &members, &member_count,
                       &metrics, why, sizeof why) != 0) {
        api_error_set(&run->error, 500, "training %s %s on %zu rows failed: %s", k->name, target,
                      n, why);
        return -1;
    }
    char *blob = model_blob(k, target, log_target, members, member_count, why, sizeof why);
    train_free_members(members, member_count);
    if (!blob) {
        api_error_set(&run->error, 500, "%s", why);
        return -1;
    }
    struct db_model *m = model_list_add(out);
    if (!m) {
        free(blob);
        api_error_set(&run->error, 500, "out of memory collecting the models");
        return -1;
    }
    m->blob = blob;
    m->blob_len = strlen(blob);
    snprintf(m->kernel, sizeof m->kernel, "%s", k->name);
    snprintf(m->target, sizeof m->target, "%s", target);
    m->device_id = run->device_id;
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", run->device.fingerprint);
    m->simulated = device_simulated(&run->device);
    training_hash(k->name, target, rows, used, n, &opt, m->training_hash);

    json_t *mj = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:f,s:I,s:f,s:s,s:b,s:i}",
                           "train_rows", (json_int_t)metrics.train_rows, "test_rows",
                           (json_int_t)metrics.test_rows, "rmse", real_or_null(metrics.rmse),
                           "mape", real_or_null(metrics.mape), "within_10pct",
                           real_or_null(metrics.within_10pct), "kendall_tau",
                           real_or_null(metrics.kendall_tau), "ensemble_size",
                           (json_int_t)opt.ensemble_size, "rounds", (json_int_t)opt.rounds,
                           "max_depth", (json_int_t)opt.max_depth, "eta", opt.eta, "seed",
                           (json_int_t)opt.seed, "holdout", opt.holdout_fraction, "quality",
                           quality_name(run->quality), "simulated", m->simulated,
                           "feature_version", PREDICT_FEATURE_VERSION);
    char *mtext = mj ? json_dumps(mj, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                          JSON_REAL_PRECISION(10))
                     : NULL;
    json_decref(mj);
    if (!mtext || strlen(mtext) >= sizeof m->metrics_json) {
        free(mtext);
        api_error_set(&run->error, 500, "the metrics of %s %s do not fit a model record",
                      k->name, target);
        return -1;
    }
    memcpy(m->metrics_json, mtext, strlen(mtext) + 1);
    free(mtext);
    log_info(LOG_MODULE, "%s %s: %zu rows (%zu held out), MAPE %.1f %%, within 10 %% %.0f %%, "
             "tau %.2f, %.0f ms", k->name, target, n, metrics.test_rows, metrics.mape,
             metrics.within_10pct * 100, metrics.kendall_tau,
             (double)(clock_mono_ns() - t0) / 1e6);
    return 0;
}

static bool stopping(struct train_run *run)
{
    if (!atomic_load(&run->app->stopping))
        return false;
    api_error_set(&run->error, 503, "jetprofd is stopping; the training was abandoned and no "
                  "model was stored");
    return true;
}

/* Every model of one kernel type: latency, then each rail's power. */
static int train_kernel(struct train_run *run, struct db *db, const struct catalog_kernel *k,
                        struct model_list *out)
{
    char err[512];
    struct db_training_row *rows = NULL;
    size_t n = 0;
    if (db_training_rows(db, k->name, run->device_id, run->quality, &rows, &n, err,
                         sizeof err) != 0) {
        api_error_set(&run->error, 500, "reading the %s measurements: %s", k->name, err);
        return -1;
    }
    int rc = -1;
    struct train_row *trows = n ? calloc(n, sizeof *trows) : NULL;
    struct train_row *subset = n ? calloc(n, sizeof *subset) : NULL;
    size_t *used = n ? calloc(n, sizeof *used) : NULL;
    size_t *rail_used = n ? calloc(n, sizeof *rail_used) : NULL;
    if (n && (!trows || !subset || !used || !rail_used)) {
        api_error_set(&run->error, 500, "out of memory for %zu %s rows", n, k->name);
        goto out;
    }

    /* Rows whose configuration no longer fits the catalogue are left out. */
    size_t usable = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        struct kernel_config cfg;
        if (row_config(k, &rows[i], &cfg) != 0) {
            skipped++;
            continue;
        }
        predict_features(&cfg, trows[usable].features);
        trows[usable].target = rows[i].latency_us;
        used[usable++] = i;
    }
    if (skipped)
        log_warn(LOG_MODULE, "%s: %zu measurement%s left out: params or dtype do not make a "
                 "configuration of the catalogue", k->name, skipped, skipped == 1 ? "" : "s");
    if (usable < TRAIN_MIN_ROWS) {
        too_few_rows(&run->error, &run->error_members, k->name, (int64_t)usable, run->quality);
        goto out;
    }
    if (stopping(run) || train_target(run, k, PREDICT_TARGET_LATENCY, true, trows, rows, used,
                                      usable, out) != 0)
        goto out;

    /* The rails, in the order the measurements reported them first. */
    char rails[DB_MAX_RAILS][DB_RAIL_NAME_MAX];
    unsigned rail_count = 0;
    for (size_t u = 0; u < usable; u++) {
        const struct db_training_row *row = &rows[used[u]];
        for (unsigned r = 0; r < row->rail_count; r++) {
            bool known = false;
            for (unsigned q = 0; q < rail_count && !known; q++)
                known = strcmp(rails[q], row->rails[r].rail) == 0;
            if (!known && rail_count < DB_MAX_RAILS)
                snprintf(rails[rail_count++], DB_RAIL_NAME_MAX, "%s", row->rails[r].rail);
        }
    }
    for (unsigned q = 0; q < rail_count; q++) {
        size_t m = 0;
        for (size_t u = 0; u < usable; u++) {
            const struct db_training_row *row = &rows[used[u]];
            for (unsigned r = 0; r < row->rail_count; r++) {
                if (strcmp(row->rails[r].rail, rails[q]) != 0 || !isfinite(row->rails[r].power_mw))
                    continue;
                subset[m] = trows[u];
                subset[m].target = row->rails[r].power_mw;
                rail_used[m++] = used[u];
                break;
            }
        }
        char target[64];
        snprintf(target, sizeof target, PREDICT_TARGET_POWER_PREFIX "%.*s",
                 DB_RAIL_NAME_MAX - 1, rails[q]);
        if (m < TRAIN_MIN_ROWS) {
            log_warn(LOG_MODULE, "%s %s: only %zu of %zu rows report the rail; no power model "
                     "for it", k->name, target, m, usable);
            continue;
        }
        if (stopping(run) ||
            train_target(run, k, target, false, subset, rows, rail_used, m, out) != 0)
            goto out;
    }
    rc = 0;
out:
    free(rows);
    free(trows);
    free(subset);
    free(used);
    free(rail_used);
    return rc;
}

/* The whole run on the runner's connection; fills run->status and answer or error. */
static void train_all(struct train_run *run, struct db *db)
{
    struct model_list models = {0};
    char err[512];
    for (size_t i = 0; i < run->kernel_count; i++)
        if (train_kernel(run, db, run->kernels[i], &models) != 0)
            goto out;
    if (models.count == 0) {
        api_error_set(&run->error, 500, "the training made no model");
        goto out;
    }
    if (db_models_insert(db, models.items, models.count, err, sizeof err) != 0) {
        api_error_set(&run->error, 500, "storing %zu models failed (none was stored): %s",
                      models.count, err);
        goto out;
    }
    size_t loaded = 0;
    if (api_models_load(run->app, db, &loaded, err, sizeof err) != 0) {
        api_error_set(&run->error, 500, "the %zu new models are stored but could not be "
                      "loaded: %s", models.count, err);
        goto out;
    }
    double duration_ms = (double)(clock_mono_ns() - run->start_ns) / 1e6;
    log_info(LOG_MODULE, "training: %zu models of %zu kernel type%s trained and stored in "
             "%.0f ms; %zu models in use", models.count, run->kernel_count,
             run->kernel_count == 1 ? "" : "s", duration_ms, loaded);
    json_t *arr = models_array(models.items, models.count);
    run->answer = arr ? json_pack("{s:o,s:f,s:b}", "models", arr, "duration_ms", duration_ms,
                                  "simulated", device_simulated(&run->device))
                      : NULL;
    if (!run->answer) {
        api_error_set(&run->error, 500, "the models are stored, but the answer ran out of "
                      "memory");
        goto out;
    }
    run->status = 200;
out:
    model_list_free(&models);
    if (run->status != 200 && run->error.status == 0)
        api_error_set(&run->error, 500, "the training failed");
    if (run->status != 200)
        log_warn(LOG_MODULE, "training failed (%u): %s", run->error.status, run->error.detail);
}

/* The runner task: between jobs, or from runner_stop with db NULL (canceled). */
static void train_task(struct db *db, void *ctx)
{
    struct train_run *run = ctx;
    if (!db) {
        api_error_set(&run->error, 503, "jetprofd is stopping; the training did not run and "
                      "no model was stored");
        log_warn(LOG_MODULE, "training of %zu kernel type%s canceled: the daemon is stopping",
                 run->kernel_count, run->kernel_count == 1 ? "" : "s");
    } else {
        train_all(run, db);
    }
    api_deferred_resume(run->deferred);
    run_unref(run);
}

/* ---- POST /v1/models/train ---- */

static void answer_run(struct api_request *req, struct api_response *res, struct train_run *run)
{
    struct api_error e;
    if (req->wait_state != DB_JOB_DONE) {
        api_error_set(&e, 503, "jetprofd is stopping; the training did not finish and no model "
                      "was stored");
        api_respond_error(res, &e, req->path);
        res->retry_after_s = STOPPING_RETRY_AFTER_S;
        return;
    }
    if (run->status == 200) {
        api_respond_json(res, 200, run->answer);
        run->answer = NULL;
        return;
    }
    api_respond_error(res, &run->error, req->path);
    if (run->error.status == 503)
        res->retry_after_s = STOPPING_RETRY_AFTER_S;
    if (res->json && run->error_members)
        json_object_update(res->json, run->error_members);
}

/* The request body -> which kernels (NULL kernels: all with enough rows) and
 * the quality. 0, or -1 with e (422 naming the member). */
static int parse_train_body(json_t *body, const struct catalog_kernel **kernels, size_t *count,
                            bool *all, const char **quality, struct api_error *e)
{
    char names[512];
    api_kernel_names(names, sizeof names);
    *count = 0;
    *all = true;
    *quality = "ok";
    if (!body)
        return 0;
    if (!json_is_object(body)) {
        api_error_set(e, 422, "the request body must be a JSON object such as "
                      "{\"kernels\":[\"linear_relu\"],\"quality\":\"ok\"} (both optional)");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        bool known = false;
        for (size_t i = 0; i < TRAIN_MEMBER_COUNT && !known; i++)
            known = strcmp(key, train_members[i]) == 0;
        if (!known) {
            char q[80];
            api_quote(key, q, sizeof q);
            api_error_set(e, 422, "unknown member '%s'; accepted members: kernels, quality", q);
            api_error_param(e, key);
            return -1;
        }
    }
    json_t *qv = json_object_get(body, "quality");
    if (qv) {
        const char *s = json_is_string(qv) ? json_string_value(qv) : NULL;
        if (!s || (strcmp(s, "ok") != 0 && strcmp(s, "any") != 0)) {
            api_error_set(e, 422, "member 'quality' must be \"ok\" (measurements that passed "
                          "the quality checks, the default) or \"any\" (suspect ones too)");
            api_error_param(e, "quality");
            return -1;
        }
        *quality = strcmp(s, "any") == 0 ? NULL : "ok";
    }
    json_t *kv = json_object_get(body, "kernels");
    if (!kv)
        return 0;
    if (!json_is_array(kv) || json_array_size(kv) == 0) {
        api_error_set(e, 422, "member 'kernels' must be a non-empty array of kernel type names "
                      "from: %s", names);
        api_error_param(e, "kernels");
        return -1;
    }
    *all = false;
    size_t i;
    json_array_foreach(kv, i, v) {
        const struct catalog_kernel *k = json_is_string(v) ? catalog_find(json_string_value(v))
                                                           : NULL;
        if (!k) {
            char q[80], param[32];
            if (json_is_string(v))
                api_quote(json_string_value(v), q, sizeof q);
            api_error_set(e, 422, "kernels[%zu]: %s%s%s is not a kernel type; the catalogue has "
                          "%s", i, json_is_string(v) ? "'" : "", json_is_string(v) ? q : "a "
                          "non-string value", json_is_string(v) ? "'" : "", names);
            snprintf(param, sizeof param, "kernels[%zu]", i);
            api_error_param(e, param);
            return -1;
        }
        bool dup = false;
        for (size_t j = 0; j < *count && !dup; j++)
            dup = kernels[j] == k;
        if (!dup && *count < catalog_count())
            kernels[(*count)++] = k;
    }
    return 0;
}

/* {"linear": 25, "layernorm": 3, ...} for every kernel type with a row. */
static json_t *counts_json(const struct db_training_count *c, size_t n)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < n; i++)
        if (json_object_set_new(obj, c[i].kernel, json_integer(c[i].rows)) != 0) {
            json_decref(obj);
            return NULL;
        }
    return obj;
}

static int64_t rows_of(const struct db_training_count *c, size_t n, const char *kernel)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].kernel, kernel) == 0)
            return c[i].rows;
    return 0;
}

void api_models_train(struct api_request *req, struct api_response *res)
{
    struct app *app = req->app;
    struct api_error e = {0};
    if (req->resumed) {
        if (req->deferred_ctx) {
            answer_run(req, res, req->deferred_ctx);
        } else {
            api_error_set(&e, 503, "jetprofd is stopping; the training did not run");
            api_respond_error(res, &e, req->path);
        }
        return;
    }

    size_t catalog_n = catalog_count();
    struct train_run *run = calloc(1, sizeof *run);
    if (run)
        run->kernels = calloc(catalog_n ? catalog_n : 1, sizeof *run->kernels);
    if (!run || !run->kernels) {
        free(run);
        api_error_set(&e, 500, "out of memory reading the request");
        api_respond_error(res, &e, req->path);
        return;
    }
    atomic_init(&run->refs, 1);
    run->app = app;
    bool all;
    if (parse_train_body(req->body, run->kernels, &run->kernel_count, &all, &run->quality,
                         &e) != 0) {
        api_respond_error(res, &e, req->path);
        run_unref(run);
        return;
    }
    device_snapshot(app, &run->device, &run->device_id);

    /* Enough rows? Checked here so the client hears it at once; the task checks
     * again with what it really reads. */
    char err[512] = "";
    struct db_training_count *counts = NULL;
    size_t count_n = 0;
    struct db *db = db_pool_acquire(app->pool);
    int rc = db ? db_training_counts(db, run->device_id, run->quality, &counts, &count_n, err,
                                     sizeof err)
                : -1;
    if (db)
        db_pool_release(app->pool, db);
    if (rc != 0) {
        api_error_set(&e, 500, "cannot count the measurements: %s",
                      db ? err : "no database connection");
        api_respond_error(res, &e, req->path);
        run_unref(run);
        return;
    }
    json_t *members = NULL;
    if (all) {
        for (size_t i = 0; i < catalog_n; i++)
            if (rows_of(counts, count_n, catalog_at(i)->name) >= TRAIN_MIN_ROWS)
                run->kernels[run->kernel_count++] = catalog_at(i);
        if (run->kernel_count == 0)
            api_error_set(&e, 409, "no kernel type has %d usable measurements (quality %s) on "
                          "this device yet: queue more with POST /v1/jobs",
                          TRAIN_MIN_ROWS, quality_name(run->quality));
    } else {
        for (size_t i = 0; i < run->kernel_count; i++) {
            int64_t rows = rows_of(counts, count_n, run->kernels[i]->name);
            if (rows < TRAIN_MIN_ROWS) {
                too_few_rows(&e, &members, run->kernels[i]->name, rows, run->quality);
                break;
            }
        }
    }
    if (e.status == 409 || (all && run->kernel_count == 0)) {
        api_respond_error(res, &e, req->path);
        if (res->json) {
            if (members)
                json_object_update(res->json, members);
            json_object_set_new(res->json, "counts", counts_json(counts, count_n));
            json_object_set_new(res->json, "quality", json_string(quality_name(run->quality)));
        }
        json_decref(members);
        free(counts);
        run_unref(run);
        return;
    }
    json_decref(members);
    free(counts);

    if (!app->runner) {
        api_error_set(&e, 503, "no runner: this jetprofd cannot train");
        api_respond_error(res, &e, req->path);
        run_unref(run);
        return;
    }
    run->start_ns = clock_mono_ns();
    atomic_store(&run->refs, 2); /* the request's (released by http.c) and the task's */
    run->deferred = api_defer(req, res, run, run_release);
    if (!run->deferred) {
        atomic_store(&run->refs, 1);
        api_error_set(&e, 503, "jetprofd is stopping; the training did not run");
        api_respond_error(res, &e, req->path);
        res->retry_after_s = STOPPING_RETRY_AFTER_S;
        run_unref(run);
        return;
    }
    run->task = (struct runner_task){.run = train_task, .ctx = run};
    log_info(LOG_MODULE, "training %zu kernel type%s (quality %s) queued for the runner",
             run->kernel_count, run->kernel_count == 1 ? "" : "s", quality_name(run->quality));
    if (runner_submit_task(app->runner, &run->task) != 0)
        train_task(NULL, run); /* the runner is stopping: answer 503 through the request */
}
