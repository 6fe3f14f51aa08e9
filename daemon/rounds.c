/*
 * rounds.c - one round of an adaptive sampling batch, from the batch's stored
 * spec and measurements to the committed round (see rounds.h).
 *
 * The spec is expanded again (cheap: the initial sample's draws) rather than
 * stored parsed, so the batch row stays the request as the client sent it and
 * every check the spec passed at POST /v1/jobs is the one used here. Rows of
 * any quality are trained on: a round judges the predictor where the data is,
 * and on a loaded board "suspect" is common; the models POST /v1/models/train
 * stores are trained separately, with its own quality filter.
 */
#include "rounds.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../cudakern/sweep.h"
#include "../predict/adaptive.h"
#include "../predict/trainset.h"
#include "api.h"

#define LOG_MODULE "rounds"
/* The spec was checked against measure.max_batch_jobs when it was queued;
 * here it only has to expand again. */
#define ROUNDS_SPEC_MAX_CONFIGS (1u << 24)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The batch's spec as the adaptive sweep it was queued as. 0, or -1 with why
 * (a spec that no longer expands: the catalogue changed under it). */
static int load_spec(struct db *db, int64_t batch_id, struct sweep_spec *s, char *why,
                     size_t whylen, bool *db_failed)
{
    char *text = NULL;
    char e[256];
    *db_failed = false;
    int found = db_batch_spec(db, batch_id, &text, e, sizeof e);
    if (found < 0) {
        *db_failed = true;
        set_err(why, whylen, "reading the batch's spec: %s", e);
        return -1;
    }
    if (found == 0) {
        set_err(why, whylen, "no batch %" PRId64, batch_id);
        return -1;
    }
    json_error_t jerr;
    json_t *body = json_loads(text, 0, &jerr);
    free(text);
    if (!body) {
        set_err(why, whylen, "the batch's spec is not JSON: %s", jerr.text);
        return -1;
    }
    struct sweep_spec_options opt = {.max_configs = ROUNDS_SPEC_MAX_CONFIGS};
    struct sweep_spec_error serr;
    int rc = sweep_spec_expand(body, &opt, s, &serr);
    json_decref(body);
    if (rc != 0) {
        set_err(why, whylen, "the batch's spec no longer expands: %s", serr.detail);
        return -1;
    }
    if (!s->is_adaptive || !s->adaptive.kernel) {
        sweep_spec_free(s);
        set_err(why, whylen, "the batch is not an adaptive sweep");
        return -1;
    }
    return 0;
}

/* The proposals as jobs of the batch. NULL when out of memory or when one does
 * not fit a job record (why says so). */
static struct db_job *proposal_jobs(const struct adaptive_result *res, const struct sweep_spec *s,
                                    int max_attempts, char *why, size_t whylen)
{
    struct db_job *jobs = calloc(res->proposed_count ? res->proposed_count : 1, sizeof *jobs);
    if (!jobs) {
        set_err(why, whylen, "out of memory for %zu proposals", res->proposed_count);
        return NULL;
    }
    for (size_t i = 0; i < res->proposed_count; i++) {
        const struct kernel_config *kc = &res->proposed[i];
        struct db_job *job = &jobs[i];
        snprintf(job->kernel, sizeof job->kernel, "%s", kc->kernel->name);
        snprintf(job->dtype, sizeof job->dtype, "%s", dtype_name(kc->dtype));
        if (api_params_json(kc, job->params_json, sizeof job->params_json) < 0 ||
            catalog_config_key(kc, job->config_key, sizeof job->config_key) < 0) {
            set_err(why, whylen, "proposal %zu (%s) does not fit a job record", i,
                    kc->kernel->name);
            free(jobs);
            return NULL;
        }
        job->priority = DB_PRIORITY_SWEEP;
        job->repeats = (int)s->repeats;
        job->max_attempts = max_attempts > 0 ? max_attempts : 1;
    }
    return jobs;
}

/* The round's metrics, labelled simulated when the device's data is. */
static void metrics_text(const struct adaptive_result *res, bool simulated, char *buf,
                         size_t buflen)
{
    json_t *m = adaptive_result_json(res);
    if (m && json_object_set_new(m, "simulated", json_boolean(simulated)) != 0) {
        json_decref(m);
        m = NULL;
    }
    char *text = m ? json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(m);
    if (text && strlen(text) < buflen)
        snprintf(buf, buflen, "%s", text);
    else
        snprintf(buf, buflen, "{\"rows\":%zu}", res->rows);
    free(text);
}

int rounds_run_next(struct db *db, int64_t batch_id, const struct rounds_config *cfg,
                    size_t *queued, char *err, size_t errlen)
{
    if (queued)
        *queued = 0;
    char e[512];
    int count = 0;
    if (db_batch_rounds_count(db, batch_id, &count, e, sizeof e) != 0) {
        set_err(err, errlen, "counting the rounds of batch %" PRId64 ": %s", batch_id, e);
        return -1;
    }
    struct db_batch_round round = {.round = count};
    struct sweep_spec s = {0};
    bool db_failed = false;
    if (load_spec(db, batch_id, &s, round.note, sizeof round.note, &db_failed) != 0) {
        if (db_failed) {
            set_err(err, errlen, "%s", round.note);
            return -1;
        }
        snprintf(round.metrics_json, sizeof round.metrics_json, "{}");
        log_warn(LOG_MODULE, "batch %" PRId64 ": closing it: %s", batch_id, round.note);
        if (db_batch_round_commit(db, batch_id, &round, NULL, 0, true, e, sizeof e) != 0) {
            set_err(err, errlen, "committing round %d of batch %" PRId64 ": %s", round.round,
                    batch_id, e);
            return -1;
        }
        return 0;
    }
    const struct sweep_adaptive *a = &s.adaptive;

    struct db_training_row *rows = NULL;
    size_t n = 0;
    if (db_training_rows_batch(db, a->kernel->name, batch_id, NULL, &rows, &n, e, sizeof e) !=
        0) {
        sweep_spec_free(&s);
        set_err(err, errlen, "reading the measurements of batch %" PRId64 ": %s", batch_id, e);
        return -1;
    }
    struct trainset_row *trows = calloc(n ? n : 1, sizeof *trows);
    if (!trows) {
        free(rows);
        sweep_spec_free(&s);
        set_err(err, errlen, "out of memory for %zu rows", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        api_training_row(&rows[i], &trows[i]);
    free(rows);

    struct adaptive_options opt = {
        .dtype = s.dtype,
        .threshold = a->threshold,
        .radius_log2 = a->radius_log2,
        .per_round = a->per_round,
        .holdout = cfg->train.holdout_fraction,
        .seed = a->seed,
        .round = (unsigned)count,
        .train = {.options = cfg->train,
                  .quality = NULL,
                  .simulated = cfg->simulated,
                  .should_stop = cfg->should_stop,
                  .ctx = cfg->ctx},
    };
    memcpy(opt.low, a->low, sizeof opt.low);
    memcpy(opt.high, a->high, sizeof opt.high);

    struct adaptive_result res = {0};
    enum adaptive_status st = adaptive_round(a->kernel, trows, n, &opt, &res);
    free(trows);
    if (st == ADAPTIVE_FAILED && cfg->should_stop && cfg->should_stop(cfg->ctx)) {
        adaptive_result_free(&res);
        sweep_spec_free(&s);
        return 1;
    }

    bool last = true;
    struct db_job *jobs = NULL;
    size_t job_count = 0;
    round.rows = (int64_t)n;
    bool final_round = (unsigned)count >= a->rounds;
    if (final_round) {
        /* the last planned round is scored, never refined: nothing proposed */
        free(res.proposed);
        res.proposed = NULL;
        res.proposed_count = 0;
    }
    metrics_text(&res, cfg->simulated, round.metrics_json, sizeof round.metrics_json);
    if (st == ADAPTIVE_OK) {
        if (final_round) {
            /* its metrics only */
        } else if (res.proposed_count == 0) {
            snprintf(round.note, sizeof round.note,
                     res.above_threshold == 0
                         ? "every held-out configuration is predicted within the threshold: "
                           "nothing left to refine"
                         : "no new configuration could be drawn around the poorly predicted "
                           "ones");
        } else {
            jobs = proposal_jobs(&res, &s, cfg->max_attempts, round.note, sizeof round.note);
            if (jobs) {
                job_count = res.proposed_count;
                last = false;
            }
        }
    } else {
        snprintf(round.note, sizeof round.note, "%.*s", (int)sizeof round.note - 1, res.detail);
    }

    int rc = db_batch_round_commit(db, batch_id, &round, jobs, job_count, last, e, sizeof e);
    free(jobs);
    if (rc != 0) {
        set_err(err, errlen, "committing round %d of batch %" PRId64 ": %s", round.round,
                batch_id, e);
        adaptive_result_free(&res);
        sweep_spec_free(&s);
        return -1;
    }
    if (queued)
        *queued = (size_t)round.added;
    log_info(LOG_MODULE,
             "batch %" PRId64 " (%s): round %d on %zu measurements: %.1f%% of %zu held-out "
             "within +-10%%, MAPE %.1f%%, %zu above %.0f%%; %" PRId64 " queued, %" PRId64
             " already known%s%s%s",
             batch_id, a->kernel->name, round.round, n, res.latency.within_10pct * 100,
             res.test_rows, res.latency.mape, res.above_threshold, a->threshold * 100,
             round.added, round.duplicates, last ? "; batch closed" : "",
             round.note[0] ? ": " : "", round.note);
    adaptive_result_free(&res);
    sweep_spec_free(&s);
    return 0;
}
