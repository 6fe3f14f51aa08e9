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
 * connection: reads the rows (db_training_rows) and hands them to
 * predict/trainset.c, the pipeline `jetprof train --offline` runs too (each row
 * back into a kernel_config and its feature vector, the latency model with a log
 * target and one mean-power model per rail, blobs, metrics and training
 * hashes), stores every model of the run in one
 * transaction (deleting, in it, the models they supersede beyond the newest
 * predict.keep_models), reloads app->models from the database and resumes the
 * request, which answers from the run's outcome. The run is shared by the request and
 * the task (a reference each), so either may finish first: a client that goes
 * away, or a daemon that stops, never leaves the other with a dangling pointer.
 *
 * A model's blob is the jetprof-model/1 object of predict/models.h, its members
 * the XGBoost JSON boosters as objects, in train.c's compact form. The training
 * hash (predict/trainset.h) identifies what a model was trained from: SHA-256
 * over the kernel, the target, the uids of the rows used (the database returns
 * them sorted) and every training option, so the same data and options give the
 * same hash - and, the trainer being seeded, the same model, here or offline.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../predict/features.h"
#include "../predict/models.h"
#include "../predict/train.h"
#include "../predict/trainset.h"
#include "api.h"

#define LOG_MODULE "models"
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

    /* Only the newest model of each (kernel, target) is read: the kept history
     * (predict.keep_models) stays on disk. */
    int64_t t0 = clock_mono_ns();
    struct db_model *models = NULL;
    size_t n = 0;
    if (db_models_newest(db, device_id, true, &models, &n, err, errlen) != 0)
        return -1;
    int64_t t_read = clock_mono_ns();
    struct model_set *set = model_set_new();
    if (!set) {
        db_models_free(models, n);
        snprintf(err, errlen, "loading models: out of memory");
        return -1;
    }
    size_t blob_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char why[512];
        blob_bytes += models[i].blob_len;
        if (model_set_add_blob(set, models[i].blob, models[i].blob_len, why, sizeof why) != 0)
            log_warn(LOG_MODULE, "model %" PRId64 " (%s %s) is not used: %s", models[i].id,
                     models[i].kernel, models[i].target, why);
    }
    db_models_free(models, n);
    log_debug(LOG_MODULE, "%zu models (%zu bytes) read in %.1f ms, loaded in %.1f ms", n,
              blob_bytes, (double)(t_read - t0) / 1e6, (double)(clock_mono_ns() - t_read) / 1e6);

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

void api_train_options(const struct config *cfg, struct train_options *opt)
{
    train_options_default(opt);
    opt->seed = cfg->train_seed;
    opt->holdout_fraction = cfg->train_holdout;
    opt->ensemble_size = cfg->train_ensemble;
    opt->rounds = cfg->train_rounds;
    opt->max_depth = cfg->train_max_depth;
    opt->eta = cfg->train_eta;
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

static bool stopping(struct train_run *run)
{
    if (!atomic_load(&run->app->stopping))
        return false;
    api_error_set(&run->error, 503, "jetprofd is stopping; the training was abandoned and no "
                  "model was stored");
    return true;
}

/* The trainset's notes in the daemon's log. */
static void train_note(void *ctx, enum trainset_note_level level, const char *message)
{
    (void)ctx;
    if (level == TRAINSET_NOTE_WARN)
        log_warn(LOG_MODULE, "%s", message);
    else
        log_info(LOG_MODULE, "%s", message);
}

static bool train_should_stop(void *ctx)
{
    const struct train_run *run = ctx;
    return atomic_load(&run->app->stopping);
}

/* The database's training rows as the trainset's (the same fields, sizes checked
 * at compile time). */
_Static_assert(sizeof(((struct db_training_row *)0)->uid) == TRAINSET_UID_MAX, "uid size");
_Static_assert(sizeof(((struct db_training_row *)0)->dtype) == TRAINSET_DTYPE_MAX, "dtype size");
_Static_assert(sizeof(((struct db_training_row *)0)->params_json) == TRAINSET_PARAMS_MAX,
               "params size");
_Static_assert(DB_MAX_RAILS == PREDICT_MAX_RAILS && DB_RAIL_NAME_MAX == PREDICT_RAIL_NAME_MAX,
               "rail limits");
_Static_assert(sizeof(((struct db_model *)0)->metrics_json) == TRAINSET_METRICS_MAX,
               "metrics size");
_Static_assert(sizeof(((struct db_model *)0)->kernel) == TRAINSET_KERNEL_MAX, "kernel size");
_Static_assert(sizeof(((struct db_model *)0)->target) == TRAINSET_TARGET_MAX, "target size");

void api_training_row(const struct db_training_row *in, struct trainset_row *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->uid, in->uid, sizeof out->uid);
    memcpy(out->dtype, in->dtype, sizeof out->dtype);
    memcpy(out->params_json, in->params_json, sizeof out->params_json);
    out->latency_us = in->latency_us;
    out->rail_count = in->rail_count < PREDICT_MAX_RAILS ? in->rail_count : PREDICT_MAX_RAILS;
    for (unsigned r = 0; r < out->rail_count; r++) {
        memcpy(out->rails[r].name, in->rails[r].rail, sizeof out->rails[r].name);
        out->rails[r].power_mw = in->rails[r].power_mw;
    }
}

/* Every model of one kernel type (predict/trainset.c: latency, then each rail's
 * power), appended to out as models rows of this device. */
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
    struct trainset_models made = {0};
    struct trainset_row *trows = n ? calloc(n, sizeof *trows) : NULL;
    if (n && !trows) {
        api_error_set(&run->error, 500, "out of memory for %zu %s rows", n, k->name);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        api_training_row(&rows[i], &trows[i]);

    struct trainset_params params = {.quality = run->quality,
                                     .simulated = device_simulated(&run->device),
                                     .should_stop = train_should_stop,
                                     .note = train_note,
                                     .ctx = run};
    api_train_options(run->app->cfg, &params.options);
    struct trainset_result result;
    switch (trainset_train_kernel(k, trows, n, &params, &made, &result)) {
    case TRAINSET_OK:
        break;
    case TRAINSET_TOO_FEW_ROWS:
        too_few_rows(&run->error, &run->error_members, k->name, (int64_t)result.usable,
                     run->quality);
        goto out;
    case TRAINSET_STOPPED:
        (void)stopping(run); /* sets the 503 */
        goto out;
    case TRAINSET_BAD_INPUT:
    case TRAINSET_FAILED:
    default:
        api_error_set(&run->error, 500, "%s", result.detail);
        goto out;
    }
    for (size_t i = 0; i < made.count; i++) {
        struct trainset_model *t = &made.items[i];
        struct db_model *m = model_list_add(out);
        if (!m) {
            api_error_set(&run->error, 500, "out of memory collecting the models");
            goto out;
        }
        m->blob = t->blob; /* moved: the list frees it from here on */
        m->blob_len = t->blob_len;
        t->blob = NULL;
        memcpy(m->kernel, t->kernel, sizeof m->kernel);
        memcpy(m->target, t->target, sizeof m->target);
        memcpy(m->training_hash, t->training_hash, sizeof m->training_hash);
        memcpy(m->metrics_json, t->metrics_json, sizeof m->metrics_json);
        m->device_id = run->device_id;
        snprintf(m->fingerprint, sizeof m->fingerprint, "%s", run->device.fingerprint);
        m->simulated = params.simulated;
    }
    rc = 0;
out:
    trainset_models_free(&made);
    free(rows);
    free(trows);
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
    /* Superseded models beyond predict.keep_models go in the same transaction:
     * a history to compare with, bounded however often the board retrains. */
    size_t pruned = 0;
    if (db_models_insert_pruned(db, models.items, models.count, run->app->cfg->keep_models,
                                &pruned, err, sizeof err) != 0) {
        api_error_set(&run->error, 500, "storing %zu models failed (none was stored): %s",
                      models.count, err);
        goto out;
    }
    if (pruned > 0)
        log_info(LOG_MODULE, "training: %zu superseded model%s deleted (predict.keep_models = "
                 "%u per kernel type and target)", pruned, pruned == 1 ? "" : "s",
                 run->app->cfg->keep_models);
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
    catalog_kernel_names(names, sizeof names);
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
            text_quote(key, q, sizeof q);
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
                text_quote(json_string_value(v), q, sizeof q);
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
