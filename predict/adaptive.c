/*
 * adaptive.c - one round of nn-Meter's adaptive data sampling for one kernel
 * type (contract in adaptive.h): split the rows, train the latency model on
 * one part, score it on the other, and propose configurations around the
 * held-out ones it predicts worst.
 *
 * Everything random comes from one splitmix64 stream (cudakern/sweep.h's, the
 * generator random sweeps draw with) seeded with seed ^ round, in this order:
 *   1. the split, a Fisher-Yates shuffle of the usable rows' positions: for
 *      i = u-1 down to 1, j = next % (i + 1), swap; the first
 *      max(1, round(holdout x u)) positions are held out;
 *   2. the proposals: per draw, one value per parameter in catalogue order,
 *      u = (2 x (next >> 11) x 2^-53 - 1) x radius_log2.
 * Training is trainset_train_kernel's, seeded by opt->train, with XGBoost on
 * one thread, so the round is a pure function of its rows and options.
 *
 * Rows that make no configuration of the kernel type (trainset_row_config) are
 * left out; rows whose latency is not a positive number are left out of the
 * split (the latency model's log target has no value for them) but still
 * count as measured when proposals are checked for duplicates. "rows" is what
 * the caller gave; train_rows + test_rows are the rows split.
 */
#include "adaptive.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cudakern/sweep.h"
#include "models.h"

static void set_detail(struct adaptive_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_detail(struct adaptive_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* 0, or -1 with r->detail naming the option at fault and its range. */
static int check_options(const struct catalog_kernel *k, const struct adaptive_options *opt,
                         struct adaptive_result *r)
{
    if (dtype_size(opt->dtype) == 0) {
        set_detail(r, "adaptive: dtype %d is not one of fp32, fp16", (int)opt->dtype);
        return -1;
    }
    if (!(opt->threshold > 0.0 && isfinite(opt->threshold))) {
        set_detail(r, "adaptive: threshold %g is not a relative error > 0", opt->threshold);
        return -1;
    }
    if (!(opt->radius_log2 > 0.0 && isfinite(opt->radius_log2))) {
        set_detail(r, "adaptive: radius_log2 %g is not a neighbourhood radius > 0",
                   opt->radius_log2);
        return -1;
    }
    if (!(opt->holdout > 0.0 && opt->holdout <= 0.5)) {
        set_detail(r, "adaptive: holdout %g is outside (0, 0.5]", opt->holdout);
        return -1;
    }
    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const struct catalog_param *p = &k->params[i];
        if (opt->low[i] > opt->high[i] || opt->low[i] < p->min || opt->high[i] > p->max) {
            set_detail(r, "adaptive: the range [%" PRId64 ", %" PRId64 "] of parameter '%s' is "
                       "not low <= high within %s's range [%" PRId64 ", %" PRId64 "]",
                       opt->low[i], opt->high[i], p->name, k->name, p->min, p->max);
            return -1;
        }
    }
    return 0;
}

static bool same_config(const struct kernel_config *a, const struct kernel_config *b)
{
    if (a->dtype != b->dtype)
        return false;
    for (unsigned i = 0; i < a->kernel->param_count && i < CATALOG_MAX_PARAMS; i++)
        if (a->params[i] != b->params[i])
            return false;
    return true;
}

static bool known(const struct kernel_config *c, const struct kernel_config *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (same_config(c, &list[i]))
            return true;
    return false;
}

/* A held-out row above the threshold, for the worst-first order. */
struct bad_row {
    double error;
    size_t position; /* in the held-out set: the tie-break, so the order is total */
    size_t usable;   /* index into the usable rows */
};

static int compare_bad(const void *a, const void *b)
{
    const struct bad_row *x = a, *y = b;
    if (x->error != y->error)
        return x->error > y->error ? -1 : 1;
    return (x->position > y->position) - (x->position < y->position);
}

/* One candidate around centre: each parameter scaled by 2^u, u uniform in
 * [-radius, +radius], rounded, clamped to the sweep's and the catalogue's
 * range (both at least 1). */
static void draw_around(const struct catalog_kernel *k, const struct kernel_config *centre,
                        const struct adaptive_options *opt, uint64_t *state,
                        struct kernel_config *out)
{
    memset(out, 0, sizeof *out);
    out->kernel = k;
    out->dtype = opt->dtype;
    for (unsigned i = 0; i < k->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const struct catalog_param *p = &k->params[i];
        double unit = (double)(sweep_splitmix64(state) >> 11) * 0x1.0p-53;
        double u = (2.0 * unit - 1.0) * opt->radius_log2;
        int64_t lo = opt->low[i] > p->min ? opt->low[i] : p->min;
        int64_t hi = opt->high[i] < p->max ? opt->high[i] : p->max;
        if (lo < 1)
            lo = 1;
        /* Clamped as a double first: a row's value need not be in range, and
         * only an in-range double converts to int64 safely (NaN goes low). */
        double v = round((double)centre->params[i] * exp2(u));
        if (!(v >= (double)lo))
            v = (double)lo;
        if (v > (double)hi)
            v = (double)hi;
        out->params[i] = (int64_t)v;
    }
}

/* Up to opt->per_round proposals around bad[0..nbad) in turn into r. 0, or -1
 * when out of memory. */
static int propose(const struct catalog_kernel *k, const struct adaptive_options *opt,
                   const struct bad_row *bad, size_t nbad, const struct kernel_config *configs,
                   const struct kernel_config *measured, size_t nmeasured, uint64_t *state,
                   struct adaptive_result *r)
{
    if (nbad == 0 || opt->per_round == 0)
        return 0;
    r->proposed = calloc(opt->per_round, sizeof *r->proposed);
    if (!r->proposed) {
        set_detail(r, "out of memory for %zu proposals", opt->per_round);
        return -1;
    }
    for (size_t slot = 0; slot < opt->per_round; slot++) {
        const struct kernel_config *centre = &configs[bad[slot % nbad].usable];
        for (unsigned t = 0; t < ADAPTIVE_MAX_TRIES; t++) {
            struct kernel_config c;
            char why[256];
            draw_around(k, centre, opt, state, &c);
            if (catalog_validate(&c, 0, why, sizeof why) != 0 || known(&c, measured, nmeasured) ||
                known(&c, r->proposed, r->proposed_count))
                continue;
            r->proposed[r->proposed_count++] = c;
            break;
        }
    }
    if (r->proposed_count == 0) {
        free(r->proposed);
        r->proposed = NULL;
    }
    return 0;
}

enum adaptive_status adaptive_round(const struct catalog_kernel *k,
                                    const struct trainset_row *rows, size_t n,
                                    const struct adaptive_options *opt,
                                    struct adaptive_result *out)
{
    memset(out, 0, sizeof *out);
    if (!k || !opt || (n > 0 && !rows)) {
        set_detail(out, "adaptive: no kernel type, options or rows");
        return ADAPTIVE_FAILED;
    }
    if (check_options(k, opt, out) != 0)
        return ADAPTIVE_FAILED;
    out->rows = n;

    enum adaptive_status st = ADAPTIVE_FAILED;
    struct kernel_config *measured = calloc(n ? n : 1, sizeof *measured);
    struct kernel_config *configs = calloc(n ? n : 1, sizeof *configs);
    size_t *usable = calloc(n ? n : 1, sizeof *usable);
    size_t *order = calloc(n ? n : 1, sizeof *order);
    bool *held = calloc(n ? n : 1, sizeof *held);
    struct trainset_row *train = calloc(n ? n : 1, sizeof *train);
    double *truth = calloc(n ? n : 1, sizeof *truth);
    double *predicted = calloc(n ? n : 1, sizeof *predicted);
    struct bad_row *bad = calloc(n ? n : 1, sizeof *bad);
    struct trainset_models models = {0};
    struct model_set *set = NULL;
    if (!measured || !configs || !usable || !order || !held || !train || !truth || !predicted ||
        !bad) {
        set_detail(out, "out of memory for %zu %s rows", n, k->name);
        goto done;
    }

    /* Configurations measured (for duplicates) and rows usable for the split. */
    size_t nmeasured = 0, u = 0;
    for (size_t i = 0; i < n; i++) {
        struct kernel_config c;
        if (trainset_row_config(k, &rows[i], &c) != 0)
            continue;
        measured[nmeasured++] = c;
        if (!(rows[i].latency_us > 0.0 && isfinite(rows[i].latency_us)))
            continue;
        configs[u] = c;
        usable[u++] = i;
    }

    /* 1. the split */
    size_t test_count = (size_t)llround(opt->holdout * (double)u);
    if (test_count < 1)
        test_count = 1;
    if (u < test_count + TRAIN_MIN_ROWS) {
        set_detail(out, "kernel type '%s' has %zu usable measurement%s; with %zu held out, "
                   "training needs at least %d more", k->name, u, u == 1 ? "" : "s",
                   test_count, TRAIN_MIN_ROWS);
        st = ADAPTIVE_TOO_FEW_ROWS;
        goto done;
    }
    size_t train_count = u - test_count;
    uint64_t state = opt->seed ^ (uint64_t)opt->round;
    for (size_t i = 0; i < u; i++)
        order[i] = i;
    for (size_t i = u - 1; i > 0; i--) {
        size_t j = (size_t)(sweep_splitmix64(&state) % (uint64_t)(i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < test_count; i++)
        held[order[i]] = true;
    /* The training part in the rows' own (uid) order, which trainset requires;
     * without rails, so only the latency model is trained. */
    size_t m = 0;
    for (size_t i = 0; i < u; i++) {
        if (held[i])
            continue;
        train[m] = rows[usable[i]];
        train[m].rail_count = 0;
        m++;
    }
    out->train_rows = train_count;
    out->test_rows = test_count;

    /* 2. train and predict */
    struct trainset_params params = opt->train;
    params.options.ensemble_size = 1; /* one booster ranks the held-out rows well enough */
    struct trainset_result tres;
    enum trainset_status ts = trainset_train_kernel(k, train, train_count, &params, &models,
                                                    &tres);
    if (ts == TRAINSET_TOO_FEW_ROWS) {
        set_detail(out, "%s", tres.detail);
        st = ADAPTIVE_TOO_FEW_ROWS;
        goto done;
    }
    if (ts != TRAINSET_OK) {
        set_detail(out, "training the %s latency model on %zu rows: %s", k->name, train_count,
                   ts == TRAINSET_STOPPED ? "stopped" : tres.detail);
        goto done;
    }
    if (models.count == 0 || strcmp(models.items[0].target, PREDICT_TARGET_LATENCY) != 0) {
        set_detail(out, "training %s gave no latency model", k->name);
        goto done;
    }
    char why[512];
    set = model_set_new();
    if (!set) {
        set_detail(out, "out of memory for the %s model", k->name);
        goto done;
    }
    if (model_set_add_blob(set, models.items[0].blob, models.items[0].blob_len, why,
                           sizeof why) != 0) {
        set_detail(out, "loading the %s latency model: %s", k->name, why);
        goto done;
    }
    size_t nbad = 0;
    for (size_t t = 0; t < test_count; t++) {
        size_t idx = order[t];
        struct kernel_prediction pred;
        if (model_set_predict(set, &configs[idx], &pred, why, sizeof why) != 0) {
            set_detail(out, "predicting held-out row %zu: %s", usable[idx], why);
            goto done;
        }
        truth[t] = rows[usable[idx]].latency_us;
        predicted[t] = pred.latency_us;

        /* 3. score */
        double error = fabs(predicted[t] - truth[t]) / truth[t];
        if (t == 0 || error > out->worst_error)
            out->worst_error = error;
        if (error > opt->threshold)
            bad[nbad++] = (struct bad_row){.error = error, .position = t, .usable = idx};
    }
    train_score(truth, predicted, test_count, &out->latency);
    out->latency.train_rows = train_count;
    out->above_threshold = nbad;

    /* 4. propose, worst first */
    qsort(bad, nbad, sizeof *bad, compare_bad);
    if (propose(k, opt, bad, nbad, configs, measured, nmeasured, &state, out) != 0)
        goto done;
    st = ADAPTIVE_OK;
done:
    if (st != ADAPTIVE_OK) {
        /* Only the counts and why: no half-made metrics or proposals. */
        struct adaptive_result keep = *out;
        free(out->proposed);
        memset(out, 0, sizeof *out);
        out->rows = keep.rows;
        out->train_rows = keep.train_rows;
        out->test_rows = keep.test_rows;
        memcpy(out->detail, keep.detail, sizeof out->detail);
    }
    model_set_free(set);
    trainset_models_free(&models);
    free(measured);
    free(configs);
    free(usable);
    free(order);
    free(held);
    free(train);
    free(truth);
    free(predicted);
    free(bad);
    return st;
}

void adaptive_result_free(struct adaptive_result *r)
{
    if (!r)
        return;
    free(r->proposed);
    r->proposed = NULL;
    r->proposed_count = 0;
}

/* A real, or null where JSON has no number for it. */
static json_t *real_or_null(double v)
{
    json_t *r = isfinite(v) ? json_real(v) : NULL;
    return r ? r : json_null();
}

json_t *adaptive_result_json(const struct adaptive_result *r)
{
    if (!r)
        return NULL;
    return json_pack("{s:I,s:I,s:I,s:{s:o,s:o,s:o,s:o},s:I,s:o,s:I}", "rows",
                     (json_int_t)r->rows, "train_rows", (json_int_t)r->train_rows, "test_rows",
                     (json_int_t)r->test_rows, "latency", "mape", real_or_null(r->latency.mape),
                     "within_10pct", real_or_null(r->latency.within_10pct), "kendall_tau",
                     real_or_null(r->latency.kendall_tau), "rmse",
                     real_or_null(r->latency.rmse), "above_threshold",
                     (json_int_t)r->above_threshold, "worst_error",
                     real_or_null(r->worst_error), "proposed", (json_int_t)r->proposed_count);
}
