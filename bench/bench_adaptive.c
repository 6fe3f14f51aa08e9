/*
 * bench_adaptive.c - does nn-Meter's adaptive sampling (predict/adaptive.c)
 * give a better latency predictor than the same number of random samples?
 * The figure of the issue: the share of a fixed test set predicted within
 * +-10 %, per kernel type, after each adaptive round, against random sampling
 * with as many measured configurations.
 *
 * Per kernel type (linear_relu, layernorm, softmax, over modest ranges so each
 * configuration runs in milliseconds on a CPU):
 *   - a fixed test set: --test configurations drawn as a random sweep with
 *     seed 1000 would draw them (log-uniform per parameter), measured once;
 *   - per seed s (--seeds, 1..): the initial sample, --initial configurations
 *     drawn by the random sweep with seed s (duplicates drawn again);
 *     adaptive: --rounds calls of adaptive_round (round r, seed s, the
 *     daemon's defaults: threshold 0.1, radius_log2 0.5, holdout 0.2) each
 *     proposing --per-round configurations that are measured and added;
 *     random: the same random stream continued until it has as many distinct
 *     configurations as the adaptive rows after each round;
 *   - after the initial sample and after each round, a latency model is
 *     trained on all rows so far for each strategy (trainset_train_kernel with
 *     the daemon's default training options: 5 boosters, 200 rounds, 20 %
 *     held out inside) and scored on the test set: share within +-10 % and MAPE.
 * The table gives the medians over the seeds.
 *
 * Latency only, measured with the CPU executor directly (no sensor, no
 * daemon): each configuration is prepared, run once to size a run of about
 * 2 ms (at least one launch), then timed in 5 such runs; its latency is the
 * median per-launch time. Power is not benchmarked here: the simulated
 * sensor's power is synthetic. These are CPU figures, not a Jetson's.
 *
 * The test set is measured twice: the share of its configurations whose two
 * measurements agree within +-10 % is the ceiling noise puts on "within 10".
 *
 * Options: --seeds N (default 3), --test N (80), --initial N (100), --rounds N
 * (5), --per-round N (40).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_machine.h"
#include "common/clock.h"
#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "cudakern/sweep.h"
#include "predict/adaptive.h"
#include "predict/models.h"
#include "predict/trainset.h"

#define TEST_SEED 1000
#define DATA_SEED 1 /* kernel_data_generate's: the same inputs for every run */
#define RUN_TARGET_US 2000.0
#define RUNS 5
#define MAX_LAUNCHES 100000u
#define MAX_SEEDS 9
#define MAX_ROUNDS 10

struct range {
    const char *name;
    int64_t low, high;
};

struct bench_kernel {
    const char *kernel;
    struct range params[CATALOG_MAX_PARAMS];
};

/* Modest ranges: the largest configuration runs in tens of milliseconds. */
static const struct bench_kernel bench_kernels[] = {
    {"linear_relu", {{"batch", 1, 64}, {"in", 16, 512}, {"out", 16, 512}}},
    {"layernorm", {{"rows", 1, 2048}, {"cols", 16, 2048}}},
    {"softmax", {{"rows", 1, 2048}, {"cols", 16, 2048}}},
};
#define BENCH_KERNEL_COUNT (sizeof bench_kernels / sizeof bench_kernels[0])

struct settings {
    unsigned seeds, test, initial, rounds, per_round;
};

/* Measured rows of one strategy. */
struct rowset {
    struct trainset_row *rows;
    struct kernel_config *configs;
    size_t count, cap;
};

/* One evaluation: share within +-10 % and MAPE on the test set. */
struct score {
    size_t samples;
    double within, mape;
};

static struct executor *exec;
static unsigned long uid_counter;
static size_t measured_total;

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The per-launch latency of cfg in us: median of RUNS runs of ~2 ms. 0, or -1 with err. */
static int measure(const struct kernel_config *cfg, double *latency_us, char *err, size_t errlen)
{
    if (exec_prepare(exec, cfg, DATA_SEED, err, errlen) != 0)
        return -1;
    double first_us, per_launch[RUNS];
    int rc = exec_run(exec, 1, &first_us, err, errlen);
    unsigned launches = 1;
    if (rc == 0 && first_us > 0.0 && first_us < RUN_TARGET_US) {
        double want = ceil(RUN_TARGET_US / first_us);
        launches = want > MAX_LAUNCHES ? MAX_LAUNCHES : (unsigned)want;
    }
    for (unsigned r = 0; rc == 0 && r < RUNS; r++) {
        double us;
        rc = exec_run(exec, launches, &us, err, errlen);
        per_launch[r] = us / launches;
    }
    exec_release(exec);
    if (rc != 0)
        return -1;
    *latency_us = median(per_launch, RUNS);
    measured_total++;
    return 0;
}

static bool same_config(const struct kernel_config *a, const struct kernel_config *b)
{
    return a->kernel == b->kernel && a->dtype == b->dtype &&
           memcmp(a->params, b->params, sizeof a->params) == 0;
}

static bool rowset_has(const struct rowset *s, const struct kernel_config *c)
{
    for (size_t i = 0; i < s->count; i++)
        if (same_config(&s->configs[i], c))
            return true;
    return false;
}

static int rowset_reserve(struct rowset *s, size_t more)
{
    if (s->count + more <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->count + more)
        cap *= 2;
    struct trainset_row *r = realloc(s->rows, cap * sizeof *r);
    if (!r)
        return -1;
    s->rows = r;
    struct kernel_config *c = realloc(s->configs, cap * sizeof *c);
    if (!c)
        return -1;
    s->configs = c;
    s->cap = cap;
    return 0;
}

/* Appends a measured row (uids rise with every row, so each set stays sorted). */
static int rowset_add(struct rowset *s, const struct kernel_config *cfg, double latency_us)
{
    if (rowset_reserve(s, 1) != 0)
        return -1;
    struct trainset_row *r = &s->rows[s->count];
    memset(r, 0, sizeof *r);
    snprintf(r->uid, sizeof r->uid, "bench-%08lu", uid_counter++);
    snprintf(r->dtype, sizeof r->dtype, "%s", dtype_name(cfg->dtype));
    size_t used = 0;
    used += (size_t)snprintf(r->params_json, sizeof r->params_json, "{");
    for (unsigned i = 0; i < cfg->kernel->param_count; i++)
        used += (size_t)snprintf(r->params_json + used, sizeof r->params_json - used,
                                 "%s\"%s\": %lld", i ? ", " : "", cfg->kernel->params[i].name,
                                 (long long)cfg->params[i]);
    snprintf(r->params_json + used, sizeof r->params_json - used, "}");
    r->latency_us = latency_us;
    s->configs[s->count++] = *cfg;
    return 0;
}

static int rowset_copy(struct rowset *dst, const struct rowset *src)
{
    if (rowset_reserve(dst, src->count) != 0)
        return -1;
    memcpy(dst->rows, src->rows, src->count * sizeof *src->rows);
    memcpy(dst->configs, src->configs, src->count * sizeof *src->configs);
    dst->count = src->count;
    return 0;
}

static void rowset_free(struct rowset *s)
{
    free(s->rows);
    free(s->configs);
    memset(s, 0, sizeof *s);
}

/* One random-sweep draw from state over the kernel's ranges, catalogue order. */
static void draw(const struct catalog_kernel *k, const int64_t *low, const int64_t *high,
                 uint64_t *state, struct kernel_config *c)
{
    memset(c, 0, sizeof *c);
    c->kernel = k;
    c->dtype = DTYPE_FP32;
    for (unsigned i = 0; i < k->param_count; i++)
        c->params[i] = sweep_draw(state, low[i], high[i], k->params[i].log_scale);
}

/* Draws from state until s holds `target` distinct configurations, measuring each. */
static int fill_random(const struct catalog_kernel *k, const int64_t *low, const int64_t *high,
                       uint64_t *state, struct rowset *s, size_t target)
{
    while (s->count < target) {
        struct kernel_config c;
        char err[256];
        double us;
        draw(k, low, high, state, &c);
        if (rowset_has(s, &c))
            continue;
        if (measure(&c, &us, err, sizeof err) != 0) {
            fprintf(stderr, "measuring %s: %s\n", k->name, err);
            return -1;
        }
        if (rowset_add(s, &c, us) != 0)
            return -1;
    }
    return 0;
}

static void training_options(struct trainset_params *p)
{
    memset(p, 0, sizeof *p);
    train_options_default(&p->options); /* the daemon's predict.train_* defaults */
    p->simulated = true;
}

/* Trains a latency model on s and scores it on the test set. */
static int evaluate(const struct catalog_kernel *k, const struct rowset *s,
                    const struct rowset *test, struct score *out)
{
    struct trainset_params p;
    training_options(&p);
    struct trainset_models models = {0};
    struct trainset_result res;
    if (trainset_train_kernel(k, s->rows, s->count, &p, &models, &res) != TRAINSET_OK) {
        fprintf(stderr, "training %s on %zu rows: %s\n", k->name, s->count, res.detail);
        return -1;
    }
    struct model_set *set = model_set_new();
    char err[512];
    int rc = -1;
    double *truth = calloc(test->count, sizeof *truth);
    double *pred = calloc(test->count, sizeof *pred);
    if (!set || !truth || !pred) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    if (model_set_add_blob(set, models.items[0].blob, models.items[0].blob_len, err,
                           sizeof err) != 0) {
        fprintf(stderr, "loading the %s model: %s\n", k->name, err);
        goto done;
    }
    for (size_t i = 0; i < test->count; i++) {
        struct kernel_prediction kp;
        if (model_set_predict(set, &test->configs[i], &kp, err, sizeof err) != 0) {
            fprintf(stderr, "predicting %s: %s\n", k->name, err);
            goto done;
        }
        truth[i] = test->rows[i].latency_us;
        pred[i] = kp.latency_us;
    }
    struct train_metrics m;
    train_score(truth, pred, test->count, &m);
    out->samples = s->count;
    out->within = m.within_10pct;
    out->mape = m.mape;
    rc = 0;
done:
    model_set_free(set);
    trainset_models_free(&models);
    free(truth);
    free(pred);
    return rc;
}

/* scores[seed][stage] for one kernel and strategy */
struct series {
    struct score s[MAX_SEEDS][MAX_ROUNDS + 1];
};

/* One seed of one kernel: both strategies, every stage. */
static int run_seed(const struct catalog_kernel *k, const int64_t *low, const int64_t *high,
                    const struct settings *st, unsigned seed, const struct rowset *test,
                    struct series *adaptive, struct series *random, size_t *above_first)
{
    struct rowset a = {0}, r = {0};
    int rc = -1;
    uint64_t state = seed;
    if (fill_random(k, low, high, &state, &a, st->initial) != 0 || rowset_copy(&r, &a) != 0)
        goto done;
    unsigned si = seed - 1;
    if (evaluate(k, &a, test, &adaptive->s[si][0]) != 0)
        goto done;
    random->s[si][0] = adaptive->s[si][0]; /* the same rows */
    for (unsigned round = 0; round < st->rounds; round++) {
        struct adaptive_options o;
        memset(&o, 0, sizeof o);
        o.dtype = DTYPE_FP32;
        memcpy(o.low, low, sizeof o.low);
        memcpy(o.high, high, sizeof o.high);
        o.threshold = ADAPTIVE_DEFAULT_THRESHOLD;
        o.radius_log2 = ADAPTIVE_DEFAULT_RADIUS_LOG2;
        o.per_round = st->per_round;
        o.holdout = 0.2;
        o.seed = seed;
        o.round = round;
        training_options(&o.train);
        struct adaptive_result res;
        enum adaptive_status as = adaptive_round(k, a.rows, a.count, &o, &res);
        if (as != ADAPTIVE_OK) {
            fprintf(stderr, "adaptive round %u of %s: %s\n", round, k->name, res.detail);
            adaptive_result_free(&res);
            goto done;
        }
        if (round == 0)
            *above_first += res.above_threshold;
        for (size_t i = 0; i < res.proposed_count; i++) {
            char err[256];
            double us;
            if (measure(&res.proposed[i], &us, err, sizeof err) != 0 ||
                rowset_add(&a, &res.proposed[i], us) != 0) {
                fprintf(stderr, "measuring a proposal of %s: %s\n", k->name, err);
                adaptive_result_free(&res);
                goto done;
            }
        }
        adaptive_result_free(&res);
        if (fill_random(k, low, high, &state, &r, a.count) != 0 ||
            evaluate(k, &a, test, &adaptive->s[si][round + 1]) != 0 ||
            evaluate(k, &r, test, &random->s[si][round + 1]) != 0)
            goto done;
    }
    rc = 0;
done:
    rowset_free(&a);
    rowset_free(&r);
    return rc;
}

static int parse_unsigned(const char *name, const char *text, unsigned min, unsigned max,
                          unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || end == text || v < min || v > max) {
        fprintf(stderr, "%s: expected an integer in [%u, %u], got '%s'\n", name, min, max, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct settings *st)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc;
        if (!v) {
            rc = -1;
        } else if (strcmp(a, "--seeds") == 0) {
            rc = parse_unsigned(a, v, 1, MAX_SEEDS, &st->seeds);
        } else if (strcmp(a, "--test") == 0) {
            rc = parse_unsigned(a, v, 10, 10000, &st->test);
        } else if (strcmp(a, "--initial") == 0) {
            rc = parse_unsigned(a, v, SWEEP_ADAPTIVE_MIN_INITIAL + 5, 10000, &st->initial);
        } else if (strcmp(a, "--rounds") == 0) {
            rc = parse_unsigned(a, v, 1, MAX_ROUNDS, &st->rounds);
        } else if (strcmp(a, "--per-round") == 0) {
            rc = parse_unsigned(a, v, 1, 10000, &st->per_round);
        } else {
            rc = -1;
        }
        if (rc != 0) {
            fprintf(stderr, "usage: %s [--seeds N] [--test N] [--initial N] [--rounds N] "
                            "[--per-round N]\n",
                    argv[0]);
            return -1;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct settings st = {.seeds = 3, .test = 80, .initial = 100, .rounds = 5, .per_round = 40};
    if (parse_args(argc, argv, &st) != 0)
        return 2;
    jp_log_set_level(JP_LOG_WARN);
    bench_print_machine();
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    printf("CPU executor, latency only (no sensor; power is not benchmarked: the simulated "
           "sensor's is synthetic)\n");
    printf("test set %u configurations (seed %d); initial %u, %u rounds of %u proposals; "
           "medians over %u seed%s\n",
           st.test, TEST_SEED, st.initial, st.rounds, st.per_round, st.seeds,
           st.seeds == 1 ? " (single seed)" : "s");

    char err[256];
    if (exec_cpu_open(&exec, err, sizeof err) != 0) {
        fprintf(stderr, "exec_cpu_open: %s\n", err);
        return 1;
    }
    int64_t t0 = clock_mono_ns();
    double load_start = bench_load_1min();
    int rc = 1;
    static struct series adaptive[BENCH_KERNEL_COUNT], random[BENCH_KERNEL_COUNT];
    size_t above_first[BENCH_KERNEL_COUNT] = {0};
    for (size_t kk = 0; kk < BENCH_KERNEL_COUNT; kk++) {
        const struct bench_kernel *bk = &bench_kernels[kk];
        const struct catalog_kernel *k = catalog_find(bk->kernel);
        if (!k) {
            fprintf(stderr, "%s: not in the catalogue\n", bk->kernel);
            goto out;
        }
        int64_t low[CATALOG_MAX_PARAMS] = {0}, high[CATALOG_MAX_PARAMS] = {0};
        for (unsigned i = 0; i < CATALOG_MAX_PARAMS && bk->params[i].name; i++) {
            int idx = catalog_param_index(k, bk->params[i].name);
            if (idx < 0) {
                fprintf(stderr, "%s has no parameter %s\n", k->name, bk->params[i].name);
                goto out;
            }
            low[idx] = bk->params[i].low;
            high[idx] = bk->params[i].high;
        }
        struct rowset test = {0};
        uint64_t state = TEST_SEED;
        int64_t tk = clock_mono_ns();
        if (fill_random(k, low, high, &state, &test, st.test) != 0) {
            rowset_free(&test);
            goto out;
        }
        double lat[10000];
        for (size_t i = 0; i < test.count; i++)
            lat[i] = test.rows[i].latency_us;
        double lo = lat[0], hi = lat[0];
        for (size_t i = 1; i < test.count; i++) {
            lo = lat[i] < lo ? lat[i] : lo;
            hi = lat[i] > hi ? lat[i] : hi;
        }
        /* The noise ceiling: the test set once more. */
        size_t repeatable = 0;
        for (size_t i = 0; i < test.count; i++) {
            double again;
            if (measure(&test.configs[i], &again, err, sizeof err) != 0) {
                fprintf(stderr, "measuring %s: %s\n", k->name, err);
                rowset_free(&test);
                goto out;
            }
            repeatable += fabs(again - test.rows[i].latency_us) <= 0.1 * test.rows[i].latency_us;
        }
        printf("%s: test set latency %.2f .. %.0f us (median %.1f us); measured again, %.1f %% "
               "within +-10 %% of the first\n",
               k->name, lo, hi, median(lat, test.count),
               100.0 * (double)repeatable / (double)test.count);
        fflush(stdout);
        for (unsigned s = 1; s <= st.seeds; s++) {
            if (run_seed(k, low, high, &st, s, &test, &adaptive[kk], &random[kk],
                         &above_first[kk]) != 0) {
                rowset_free(&test);
                goto out;
            }
        }
        printf("%s: done in %.0f s\n", k->name, (double)(clock_mono_ns() - tk) / 1e9);
        fflush(stdout);
        rowset_free(&test);
    }

    printf("\n%-12s %5s %7s  %18s %18s  %12s %12s\n", "kernel", "round", "samples",
           "adaptive within10", "random within10", "adaptive MAPE", "random MAPE");
    for (size_t kk = 0; kk < BENCH_KERNEL_COUNT; kk++) {
        for (unsigned stage = 0; stage <= st.rounds; stage++) {
            double aw[MAX_SEEDS], rw[MAX_SEEDS], am[MAX_SEEDS], rm[MAX_SEEDS], n[MAX_SEEDS];
            for (unsigned s = 0; s < st.seeds; s++) {
                aw[s] = adaptive[kk].s[s][stage].within * 100;
                rw[s] = random[kk].s[s][stage].within * 100;
                am[s] = adaptive[kk].s[s][stage].mape;
                rm[s] = random[kk].s[s][stage].mape;
                n[s] = (double)adaptive[kk].s[s][stage].samples;
            }
            char round_name[16];
            snprintf(round_name, sizeof round_name, stage ? "%u" : "init", stage);
            printf("%-12s %5s %7.0f  %17.1f%% %17.1f%%  %11.1f%% %11.1f%%\n",
                   bench_kernels[kk].kernel, round_name, median(n, st.seeds),
                   median(aw, st.seeds), median(rw, st.seeds), median(am, st.seeds),
                   median(rm, st.seeds));
        }
    }
    printf("\nwithin10: share of the %u test configurations predicted within +-10 %%; samples: "
           "measured configurations trained on (median over seeds; random has the same "
           "count)\n",
           st.test);
    for (size_t kk = 0; kk < BENCH_KERNEL_COUNT; kk++)
        printf("%s: held-out rows above the 10 %% threshold in round 0, summed over seeds: %zu\n",
               bench_kernels[kk].kernel, above_first[kk]);
    printf("%zu configurations measured, %.0f s in all; load average %.2f at the start, %.2f "
           "at the end\n",
           measured_total, (double)(clock_mono_ns() - t0) / 1e9, load_start, bench_load_1min());
    rc = 0;
out:
    exec_close(exec);
    return rc;
}
