/*
 * trainset.c - the training pipeline of one kernel type (contract in trainset.h):
 * rows -> configurations and features -> the latency model and one power model
 * per rail (train_ensemble) -> jetprof-model/1 blobs, metrics JSON and training
 * hashes. jetprofd (daemon/api_models.c) and `jetprof train --offline`
 * (client/offline_train.c) both call it, so a board and a workstation make the
 * same bytes from the same rows: everything that goes into a blob, a hash or
 * the metrics is decided here and nowhere else.
 */
#include "trainset.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/sha256.h"
#include "features.h"

#define TRAINING_HASH_TAG "jetprof-training-v1"

_Static_assert(TRAINSET_HASH_HEX_CHARS == SHA256_HEX_CHARS, "training hash is SHA-256 hex");

static void set_detail(struct trainset_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_detail(struct trainset_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

static void note(const struct trainset_params *p, enum trainset_note_level level,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(const struct trainset_params *p, enum trainset_note_level level,
                 const char *fmt, ...)
{
    if (!p->note)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->note(p->ctx, level, msg);
}

static const char *quality_name(const char *quality) { return quality ? quality : "any"; }

/* A real, or null where JSON has no number for it. */
static json_t *real_or_null(double v)
{
    json_t *r = isfinite(v) ? json_real(v) : NULL;
    return r ? r : json_null();
}

/* ---- the model list ---- */

void trainset_models_free(struct trainset_models *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].blob);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Drops the models past count (a failed kernel type's partial work). */
static void models_truncate(struct trainset_models *l, size_t count)
{
    while (l->count > count)
        free(l->items[--l->count].blob);
}

static struct trainset_model *models_add(struct trainset_models *l)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct trainset_model *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return NULL;
        l->items = p;
        l->cap = cap;
    }
    struct trainset_model *m = &l->items[l->count++];
    memset(m, 0, sizeof *m);
    return m;
}

/* ---- rows ---- */

int trainset_row_config(const struct catalog_kernel *k, const struct trainset_row *row,
                        struct kernel_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kernel = k;
    char dtype[TRAINSET_DTYPE_MAX];
    snprintf(dtype, sizeof dtype, "%.*s", (int)sizeof row->dtype - 1, row->dtype);
    if (dtype_parse(dtype, &cfg->dtype) != 0)
        return -1;
    json_t *params = json_loadb(row->params_json, strnlen(row->params_json, sizeof row->params_json),
                                0, NULL);
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

/* Sorted by uid, each non-empty and unique: the order the seeded split and the
 * hash depend on. 0, or -1 with the first offence in r->detail. */
static int rows_ordered(const struct trainset_row *rows, size_t n, struct trainset_result *r)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(rows[i].uid, sizeof rows[i].uid);
        if (len == 0) {
            set_detail(r, "training row %zu has no uid (every measurement carries the uid "
                       "its board gave it)", i);
            return -1;
        }
        if (len == sizeof rows[i].uid) {
            set_detail(r, "training row %zu: the uid is not terminated within %zu bytes", i,
                       sizeof rows[i].uid);
            return -1;
        }
        if (i == 0)
            continue;
        int c = strcmp(rows[i - 1].uid, rows[i].uid);
        if (c == 0) {
            set_detail(r, "training rows %zu and %zu have the same uid '%s': a measurement "
                       "must appear once", i - 1, i, rows[i].uid);
            return -1;
        }
        if (c > 0) {
            set_detail(r, "training rows are not sorted by uid: row %zu '%s' follows '%s' "
                       "(the order fixes the seeded split, so it must be the uid order)",
                       i, rows[i].uid, rows[i - 1].uid);
            return -1;
        }
    }
    return 0;
}

/* ---- hash, blob, options ---- */

void trainset_training_hash(const char *kernel, const char *target,
                            const struct trainset_row *rows, const size_t *used, size_t n,
                            const struct train_options *opt,
                            char out[TRAINSET_HASH_HEX_CHARS + 1])
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
    /* 9 significant digits: every float of the members (train.c's compact form)
     * comes back character for character; jansson's default of 17 would print
     * each as the double it parsed to, tripling the numbers' text. */
    char *text = blob ? json_dumps(blob, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                             JSON_REAL_PRECISION(9))
                      : NULL;
    json_decref(blob);
    if (!text)
        snprintf(err, errlen, "out of memory building the model of %s %s", k->name, target);
    return text;
}

int trainset_options_check(const struct train_options *opt, char *err, size_t errlen)
{
    if (opt->rounds < TRAINSET_ROUNDS_MIN || opt->rounds > TRAINSET_ROUNDS_MAX)
        snprintf(err, errlen, "rounds must be %u..%u, got %u", TRAINSET_ROUNDS_MIN,
                 TRAINSET_ROUNDS_MAX, opt->rounds);
    else if (opt->max_depth < TRAINSET_DEPTH_MIN || opt->max_depth > TRAINSET_DEPTH_MAX)
        snprintf(err, errlen, "max_depth must be %u..%u, got %u", TRAINSET_DEPTH_MIN,
                 TRAINSET_DEPTH_MAX, opt->max_depth);
    else if (!(opt->eta >= TRAINSET_ETA_MIN && opt->eta <= TRAINSET_ETA_MAX))
        snprintf(err, errlen, "eta must be %g..%g, got %g", TRAINSET_ETA_MIN, TRAINSET_ETA_MAX,
                 opt->eta);
    else if (opt->ensemble_size < TRAINSET_ENSEMBLE_MIN ||
             opt->ensemble_size > TRAINSET_ENSEMBLE_MAX)
        snprintf(err, errlen, "ensemble must be %u..%u, got %u", TRAINSET_ENSEMBLE_MIN,
                 TRAINSET_ENSEMBLE_MAX, opt->ensemble_size);
    else if (!(opt->holdout_fraction >= TRAINSET_HOLDOUT_MIN &&
               opt->holdout_fraction <= TRAINSET_HOLDOUT_MAX))
        snprintf(err, errlen, "holdout must be %g..%g, got %g", TRAINSET_HOLDOUT_MIN,
                 TRAINSET_HOLDOUT_MAX, opt->holdout_fraction);
    else
        return 0;
    return -1;
}

/* ---- training ---- */

/*
 * Trains one target from rows[used[0..n)] (features already in trows, targets
 * set) and appends the model to out. TRAINSET_OK, or TRAINSET_FAILED with
 * r->detail.
 */
static enum trainset_status train_target(const struct trainset_params *p,
                                         const struct catalog_kernel *k, const char *target,
                                         bool log_target, const struct train_row *trows,
                                         const struct trainset_row *rows, const size_t *used,
                                         size_t n, struct trainset_models *out,
                                         struct trainset_result *r)
{
    struct train_options opt = p->options;
    opt.log_target = log_target;
    char **members = NULL;
    size_t member_count = 0;
    struct train_metrics metrics;
    char why[512];
    int64_t t0 = clock_mono_ns();
    if (train_ensemble(trows, n, predict_feature_count(k), &opt, &members, &member_count,
                       &metrics, why, sizeof why) != 0) {
        set_detail(r, "training %s %s on %zu rows failed: %s", k->name, target, n, why);
        return TRAINSET_FAILED;
    }
    char *blob = model_blob(k, target, log_target, members, member_count, why, sizeof why);
    train_free_members(members, member_count);
    if (!blob) {
        set_detail(r, "%s", why);
        return TRAINSET_FAILED;
    }
    struct trainset_model *m = models_add(out);
    if (!m) {
        free(blob);
        set_detail(r, "out of memory collecting the models");
        return TRAINSET_FAILED;
    }
    m->blob = blob;
    m->blob_len = strlen(blob);
    m->metrics = metrics;
    snprintf(m->kernel, sizeof m->kernel, "%s", k->name);
    snprintf(m->target, sizeof m->target, "%s", target);
    trainset_training_hash(k->name, target, rows, used, n, &opt, m->training_hash);

    json_t *mj = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:f,s:I,s:f,s:s,s:b,s:i}",
                           "train_rows", (json_int_t)metrics.train_rows, "test_rows",
                           (json_int_t)metrics.test_rows, "rmse", real_or_null(metrics.rmse),
                           "mape", real_or_null(metrics.mape), "within_10pct",
                           real_or_null(metrics.within_10pct), "kendall_tau",
                           real_or_null(metrics.kendall_tau), "ensemble_size",
                           (json_int_t)opt.ensemble_size, "rounds", (json_int_t)opt.rounds,
                           "max_depth", (json_int_t)opt.max_depth, "eta", opt.eta, "seed",
                           (json_int_t)opt.seed, "holdout", opt.holdout_fraction, "quality",
                           quality_name(p->quality), "simulated", p->simulated,
                           "feature_version", PREDICT_FEATURE_VERSION);
    char *mtext = mj ? json_dumps(mj, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                          JSON_REAL_PRECISION(10))
                     : NULL;
    json_decref(mj);
    if (!mtext || strlen(mtext) >= sizeof m->metrics_json) {
        free(mtext);
        set_detail(r, "the metrics of %s %s do not fit a model record", k->name, target);
        return TRAINSET_FAILED; /* the caller drops the model with the kernel type's others */
    }
    memcpy(m->metrics_json, mtext, strlen(mtext) + 1);
    free(mtext);
    note(p, TRAINSET_NOTE_INFO,
         "%s %s: %zu rows (%zu held out), MAPE %.1f %%, within 10 %% %.0f %%, tau %.2f, %.0f ms",
         k->name, target, n, metrics.test_rows, metrics.mape, metrics.within_10pct * 100,
         metrics.kendall_tau, (double)(clock_mono_ns() - t0) / 1e6);
    return TRAINSET_OK;
}

static bool stop_now(const struct trainset_params *p)
{
    return p->should_stop && p->should_stop(p->ctx);
}

enum trainset_status trainset_train_kernel(const struct catalog_kernel *k,
                                           const struct trainset_row *rows, size_t n,
                                           const struct trainset_params *params,
                                           struct trainset_models *out,
                                           struct trainset_result *result)
{
    memset(result, 0, sizeof *result);
    if (!k || !params || !out || (n > 0 && !rows)) {
        set_detail(result, "trainset: no kernel type, parameters, rows or model list");
        return TRAINSET_BAD_INPUT;
    }
    if (rows_ordered(rows, n, result) != 0)
        return TRAINSET_BAD_INPUT;

    const size_t first = out->count;
    enum trainset_status st = TRAINSET_FAILED;
    struct train_row *trows = n ? calloc(n, sizeof *trows) : NULL;
    struct train_row *subset = n ? calloc(n, sizeof *subset) : NULL;
    size_t *used = n ? calloc(n, sizeof *used) : NULL;
    size_t *rail_used = n ? calloc(n, sizeof *rail_used) : NULL;
    if (n && (!trows || !subset || !used || !rail_used)) {
        set_detail(result, "out of memory for %zu %s rows", n, k->name);
        goto out;
    }

    /* Rows whose configuration no longer fits the catalogue are left out. */
    size_t usable = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        struct kernel_config cfg;
        if (trainset_row_config(k, &rows[i], &cfg) != 0) {
            skipped++;
            continue;
        }
        predict_features(&cfg, trows[usable].features);
        trows[usable].target = rows[i].latency_us;
        used[usable++] = i;
    }
    result->usable = usable;
    result->skipped = skipped;
    if (skipped)
        note(params, TRAINSET_NOTE_WARN, "%s: %zu measurement%s left out: params or dtype do "
             "not make a configuration of the catalogue", k->name, skipped,
             skipped == 1 ? "" : "s");
    if (usable < TRAIN_MIN_ROWS) {
        set_detail(result, "kernel type '%s' has %zu usable measurement%s; training needs at "
                   "least %d", k->name, usable, usable == 1 ? "" : "s", TRAIN_MIN_ROWS);
        st = TRAINSET_TOO_FEW_ROWS;
        goto out;
    }
    if (stop_now(params)) {
        st = TRAINSET_STOPPED;
        goto out;
    }
    st = train_target(params, k, PREDICT_TARGET_LATENCY, true, trows, rows, used, usable, out,
                      result);
    if (st != TRAINSET_OK)
        goto out;

    /* The rails, in the order the measurements reported them first. */
    char rails[PREDICT_MAX_RAILS][PREDICT_RAIL_NAME_MAX];
    unsigned rail_count = 0;
    for (size_t u = 0; u < usable; u++) {
        const struct trainset_row *row = &rows[used[u]];
        unsigned count = row->rail_count < PREDICT_MAX_RAILS ? row->rail_count : PREDICT_MAX_RAILS;
        for (unsigned r = 0; r < count; r++) {
            bool known = false;
            for (unsigned q = 0; q < rail_count && !known; q++)
                known = strncmp(rails[q], row->rails[r].name, PREDICT_RAIL_NAME_MAX) == 0;
            if (!known && rail_count < PREDICT_MAX_RAILS)
                snprintf(rails[rail_count++], PREDICT_RAIL_NAME_MAX, "%.*s",
                         PREDICT_RAIL_NAME_MAX - 1, row->rails[r].name);
        }
    }
    for (unsigned q = 0; q < rail_count; q++) {
        size_t m = 0;
        for (size_t u = 0; u < usable; u++) {
            const struct trainset_row *row = &rows[used[u]];
            unsigned count = row->rail_count < PREDICT_MAX_RAILS ? row->rail_count
                                                                 : PREDICT_MAX_RAILS;
            for (unsigned r = 0; r < count; r++) {
                if (strncmp(row->rails[r].name, rails[q], PREDICT_RAIL_NAME_MAX) != 0 ||
                    !isfinite(row->rails[r].power_mw))
                    continue;
                subset[m] = trows[u];
                subset[m].target = row->rails[r].power_mw;
                rail_used[m++] = used[u];
                break;
            }
        }
        char target[64];
        snprintf(target, sizeof target, PREDICT_TARGET_POWER_PREFIX "%.*s",
                 PREDICT_RAIL_NAME_MAX - 1, rails[q]);
        if (m < TRAIN_MIN_ROWS) {
            note(params, TRAINSET_NOTE_WARN, "%s %s: only %zu of %zu rows report the rail; no "
                 "power model for it", k->name, target, m, usable);
            continue;
        }
        if (stop_now(params)) {
            st = TRAINSET_STOPPED;
            goto out;
        }
        st = train_target(params, k, target, false, subset, rows, rail_used, m, out, result);
        if (st != TRAINSET_OK)
            goto out;
    }
    st = TRAINSET_OK;
out:
    if (st != TRAINSET_OK)
        models_truncate(out, first);
    free(trows);
    free(subset);
    free(used);
    free(rail_used);
    return st;
}
