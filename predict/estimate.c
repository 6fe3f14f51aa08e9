/*
 * estimate.c - a graph's latency and energy from per-kernel predictions
 * (contract: estimate.h).
 *
 * graph_plan_build turns the graph into the fused (and, when asked, merged)
 * kernels; each is predicted once through the caller's estimate_predict_fn (the
 * daemon's cached models_state, or a model_set read from an export file for
 * `jetprof estimate --offline`); the answer lists every kernel with its
 * prediction and the totals: latency summed (its spread as the root of the
 * summed squares, the members' errors taken as independent), energy per rail
 * summed, and the board-input and GPU figures the user asks about first.
 *
 * Kernel types without a model are all collected before failing, so a 409
 * names every one of them and a user queues the missing measurements at once
 * instead of discovering them one retrain at a time.
 *
 * Pure computation, no I/O; the JSON built here is the HTTP answer and the
 * offline CLI's output alike, so both print identical bytes for identical models.
 *
 * Two writers of the one answer. estimate_graph builds a jansson tree (the CLI
 * prints it indented); estimate_graph_text appends the same document as compact
 * text, byte for byte what jansson would print with JSON_COMPACT and
 * JSON_REAL_PRECISION(12): the daemon's hot path, where building a tree of ~500
 * values per graph and printing every real through snprintf("%.12g") cost about
 * four fifths of a cached estimate. Both walk the same plan, predictions and
 * totals (plan_and_predict, totals_sum), so they cannot disagree on content;
 * the unit tests compare their bytes. The text writer prints reals with an exact
 * integer conversion (format_real) that gives snprintf's correctly rounded
 * digits, falling back to snprintf outside the range it handles.
 */
#include "estimate.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* Distinct rail names a graph's totals can carry: every kernel predicts the
 * same device's rails, so PREDICT_MAX_RAILS in practice; room for more. */
#define TOTAL_RAILS_MAX (2 * PREDICT_MAX_RAILS)

struct rail_total {
    const char *name; /* borrowed from a prediction */
    double energy_uj;
};

/* json_real refuses NaN and infinities: a model that produced one yields null
 * rather than an answer that cannot be encoded. */
static json_t *real_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Adds value to obj, consuming it whatever happens (jansson releases a value
 * it could not add, also to a NULL obj), so a chain of puts needs no cleanup
 * beyond the object itself. -1 when value is NULL (out of memory) or the add fails. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

void estimate_missing_models_detail(const char *const *kernels, size_t count, char *buf,
                                    size_t buflen)
{
    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (count == 0)
        return;
    if (count == 1) {
        snprintf(buf, buflen,
                 "no model for kernel type '%s' on this device: measure at least %d %s "
                 "configurations (POST /v1/jobs) and train (POST /v1/models/train)",
                 kernels[0], TRAIN_MIN_ROWS, kernels[0]);
        return;
    }
    size_t used = 0;
    int n = snprintf(buf, buflen, "no model for kernel types ");
    if (n < 0 || (size_t)n >= buflen)
        return;
    used = (size_t)n;
    for (size_t i = 0; i < count; i++) {
        const char *sep = i == 0 ? "" : i + 1 == count ? " and " : ", ";
        n = snprintf(buf + used, buflen - used, "%s'%s'", sep, kernels[i]);
        if (n < 0 || (size_t)n >= buflen - used)
            return;
        used += (size_t)n;
    }
    snprintf(buf + used, buflen - used,
             " on this device: measure at least %d configurations of each (POST /v1/jobs) and "
             "train (POST /v1/models/train)",
             TRAIN_MIN_ROWS);
}

int estimate_prediction_fields(json_t *obj, const struct kernel_prediction *p)
{
    json_t *power = json_object(), *spread = json_object(), *energy = json_object();
    bool ok = true;
    for (unsigned r = 0; r < p->rail_count && r < PREDICT_MAX_RAILS; r++) {
        const struct rail_prediction *rp = &p->rails[r];
        ok = put(power, rp->name, real_or_null(rp->power_mw)) == 0 && ok;
        ok = put(spread, rp->name, real_or_null(rp->power_mw_spread)) == 0 && ok;
        ok = put(energy, rp->name, real_or_null(rp->energy_uj)) == 0 && ok;
    }
    ok = put(obj, "latency_us", real_or_null(p->latency_us)) == 0 && ok;
    ok = put(obj, "latency_us_spread", real_or_null(p->latency_us_spread)) == 0 && ok;
    ok = put(obj, "power_mw", power) == 0 && ok;
    ok = put(obj, "power_mw_spread", spread) == 0 && ok;
    ok = put(obj, "energy_uj", energy) == 0 && ok;
    return ok ? 0 : -1;
}

int estimate_predict_with_set(void *ctx, const struct kernel_config *cfg,
                              struct kernel_prediction *out, char *err, size_t errlen)
{
    return model_set_predict(ctx, cfg, out, err, errlen);
}

/* {"batch": 64, "in": 256, "out": 512} in catalogue order. */
static json_t *params_json(const struct kernel_config *cfg)
{
    json_t *o = json_object();
    for (unsigned i = 0; o && i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        if (put(o, cfg->kernel->params[i].name, json_integer((json_int_t)cfg->params[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *kernel_json(const struct graph_kernel *gk, const struct kernel_prediction *p)
{
    char key[256];
    if (catalog_config_key(&gk->cfg, key, sizeof key) < 0)
        return NULL;
    json_t *k = json_object(), *nodes = json_array();
    bool ok = true;
    for (size_t i = 0; i < gk->node_count; i++)
        ok = json_array_append_new(nodes, json_string(gk->nodes[i])) == 0 && ok;
    ok = put(k, "kernel", json_string(gk->cfg.kernel->name)) == 0 && ok;
    ok = put(k, "dtype", json_string(dtype_name(gk->cfg.dtype))) == 0 && ok;
    ok = put(k, "params", params_json(&gk->cfg)) == 0 && ok;
    ok = put(k, "config_key", json_string(key)) == 0 && ok;
    ok = put(k, "nodes", nodes) == 0 && ok;
    ok = put(k, "depth", json_integer(gk->depth)) == 0 && ok;
    ok = put(k, "merged", json_integer(gk->merged_count)) == 0 && ok;
    ok = ok && estimate_prediction_fields(k, p) == 0;
    if (!ok) {
        json_decref(k);
        return NULL;
    }
    return k;
}

/* Adds each rail's energy of p to the totals, by name, in order of first sight. */
static void add_rails(struct rail_total *totals, unsigned *count,
                      const struct kernel_prediction *p)
{
    for (unsigned r = 0; r < p->rail_count && r < PREDICT_MAX_RAILS; r++) {
        const struct rail_prediction *rp = &p->rails[r];
        unsigned t = 0;
        while (t < *count && strcmp(totals[t].name, rp->name) != 0)
            t++;
        if (t == *count) {
            if (*count == TOTAL_RAILS_MAX)
                continue;
            totals[t].name = rp->name;
            totals[t].energy_uj = 0;
            (*count)++;
        }
        totals[t].energy_uj += rp->energy_uj;
    }
}

/* A named rail's total: its sum, 0 for a graph without kernels (nothing runs),
 * null when no kernel predicted that rail. */
static json_t *named_rail_total(const struct rail_total *totals, unsigned count,
                                const char *name, size_t kernels)
{
    for (unsigned t = 0; t < count; t++)
        if (strcmp(totals[t].name, name) == 0)
            return real_or_null(totals[t].energy_uj);
    return kernels == 0 ? json_real(0.0) : json_null();
}

/* The graph's sums, shared by both writers. */
struct totals {
    double latency_us, spread_sq;
    struct rail_total rails[TOTAL_RAILS_MAX];
    unsigned rail_count;
    double sum_uj; /* over the rails, in their order */
};

static void totals_sum(const struct graph_plan *plan, const struct kernel_prediction *preds,
                       struct totals *t)
{
    t->latency_us = 0;
    t->spread_sq = 0;
    t->rail_count = 0;
    for (size_t i = 0; i < plan->count; i++) {
        t->latency_us += preds[i].latency_us;
        t->spread_sq += preds[i].latency_us_spread * preds[i].latency_us_spread;
        add_rails(t->rails, &t->rail_count, &preds[i]);
    }
    t->sum_uj = 0;
    for (unsigned r = 0; r < t->rail_count; r++)
        t->sum_uj += t->rails[r].energy_uj;
}

static json_t *totals_json(const struct graph_plan *plan, const struct kernel_prediction *preds,
                           const struct model_set_info *info)
{
    struct totals sums;
    totals_sum(plan, preds, &sums);
    const struct rail_total *rails = sums.rails;
    unsigned rail_count = sums.rail_count;

    json_t *rails_obj = json_object();
    bool ok = true;
    for (unsigned t = 0; t < rail_count; t++)
        ok = put(rails_obj, rails[t].name, real_or_null(rails[t].energy_uj)) == 0 && ok;

    bool input_is_sum = info->board_input_rail[0] == '\0';
    json_t *energy = json_object();
    ok = put(energy, "board_input",
             input_is_sum ? real_or_null(sums.sum_uj)
                          : named_rail_total(rails, rail_count, info->board_input_rail,
                                             plan->count)) == 0 && ok;
    ok = put(energy, "gpu",
             info->gpu_rail[0] ? named_rail_total(rails, rail_count, info->gpu_rail, plan->count)
                               : json_null()) == 0 && ok;
    ok = put(energy, "rails", rails_obj) == 0 && ok;

    json_t *t = json_object();
    ok = put(t, "kernels", json_integer((json_int_t)plan->count)) == 0 && ok;
    ok = put(t, "latency_us", real_or_null(sums.latency_us)) == 0 && ok;
    ok = put(t, "latency_us_spread", real_or_null(sqrt(sums.spread_sq))) == 0 && ok;
    ok = put(t, "energy_uj", energy) == 0 && ok;
    ok = put(t, "board_input_rail", json_string(input_is_sum ? "sum" : info->board_input_rail)) ==
             0 && ok;
    ok = put(t, "gpu_rail", info->gpu_rail[0] ? json_string(info->gpu_rail) : json_null()) == 0 &&
         ok;
    if (!ok) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static void set_error(struct graph_error *err, unsigned status, const char *detail)
{
    err->status = status;
    err->node[0] = '\0';
    snprintf(err->detail, sizeof err->detail, "%s", detail);
}

/* graph_plan_build, then every kernel predicted (all of them, so a 409 names
 * every kernel type without a model). 0 with *plan and *preds (the caller
 * frees both), or -1 with *err. */
static int plan_and_predict(const json_t *graph, const struct estimate_options *opt,
                            estimate_predict_fn predict, void *ctx, struct graph_plan *plan,
                            struct kernel_prediction **preds_out, struct graph_error *err)
{
    memset(err, 0, sizeof *err);
    memset(plan, 0, sizeof *plan);
    *preds_out = NULL;
    if (graph_plan_build(graph, &opt->graph, plan, err) != 0) {
        if (err->status == 0) /* the contract sets it; never answer 0 */
            err->status = 422;
        return -1;
    }

    size_t kinds = catalog_count();
    struct kernel_prediction *preds = calloc(plan->count ? plan->count : 1, sizeof *preds);
    const char **missing = NULL;
    if (!preds) {
        graph_plan_free(plan);
        set_error(err, 500, "out of memory predicting the graph's kernels");
        return -1;
    }

    size_t missing_count = 0;
    for (size_t i = 0; i < plan->count; i++) {
        char why[256];
        if (predict(ctx, &plan->kernels[i].cfg, &preds[i], why, sizeof why) == 0)
            continue;
        /* the list is only needed once something is missing: no allocation on
         * the path every answered graph takes */
        if (!missing && !(missing = calloc(kinds ? kinds : 1, sizeof *missing))) {
            free(preds);
            graph_plan_free(plan);
            set_error(err, 500, "out of memory predicting the graph's kernels");
            return -1;
        }
        const char *name = plan->kernels[i].cfg.kernel->name;
        size_t m = 0;
        while (m < missing_count && strcmp(missing[m], name) != 0)
            m++;
        if (m == missing_count && missing_count < kinds)
            missing[missing_count++] = name;
    }
    if (missing_count > 0) {
        char detail[sizeof err->detail];
        estimate_missing_models_detail(missing, missing_count, detail, sizeof detail);
        set_error(err, 409, detail);
        free(preds);
        free(missing);
        graph_plan_free(plan);
        return -1;
    }
    free(missing);
    *preds_out = preds;
    return 0;
}

json_t *estimate_graph(const json_t *graph, const struct estimate_options *opt,
                       estimate_predict_fn predict, void *ctx, struct graph_error *err)
{
    struct graph_plan plan;
    struct kernel_prediction *preds;
    if (plan_and_predict(graph, opt, predict, ctx, &plan, &preds, err) != 0)
        return NULL;

    json_t *answer = json_object(), *kernels = json_array();
    bool ok = true;
    for (size_t i = 0; i < plan.count; i++)
        ok = json_array_append_new(kernels, kernel_json(&plan.kernels[i], &preds[i])) == 0 && ok;
    const struct model_set_info *info = &opt->info;
    ok = put(answer, "format", json_string(plan.format)) == 0 && ok;
    ok = put(answer, "dtype", json_string(dtype_name(plan.dtype))) == 0 && ok;
    ok = put(answer, "batch", json_integer((json_int_t)plan.batch)) == 0 && ok;
    ok = put(answer, "merge", json_boolean(opt->graph.merge)) == 0 && ok;
    ok = put(answer, "simulated", json_boolean(info->simulated)) == 0 && ok;
    ok = put(answer, "graph_nodes", json_integer((json_int_t)plan.graph_nodes)) == 0 && ok;
    ok = put(answer, "kernels", kernels) == 0 && ok;
    ok = put(answer, "totals", totals_json(&plan, preds, info)) == 0 && ok;
    free(preds);
    graph_plan_free(&plan);
    if (!ok) {
        json_decref(answer);
        set_error(err, 500, "out of memory building the estimate");
        return NULL;
    }
    return answer;
}

/* ---- the answer as compact text ---- */

/* Room for n more bytes and the terminator. */
static bool text_reserve(struct estimate_text *t, size_t n)
{
    if (t->failed)
        return false;
    if (t->cap - t->len > n)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap - t->len <= n) {
        if (cap > SIZE_MAX / 2) {
            t->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *d = realloc(t->data, cap);
    if (!d) {
        t->failed = true;
        return false;
    }
    t->data = d;
    t->cap = cap;
    return true;
}

int estimate_text_append(struct estimate_text *t, const char *s, size_t n)
{
    if (!text_reserve(t, n))
        return -1;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
    return 0;
}

void estimate_text_free(struct estimate_text *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* Appends a C string literal. */
#define TEXT_LIT(t, lit) estimate_text_append((t), (lit), sizeof(lit) - 1)

/* The length of the valid UTF-8 sequence at s (at most avail bytes) as jansson
 * accepts it (no overlong forms, no surrogates, at most U+10FFFF), with its
 * code point; 0 when invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* A JSON string as jansson's dump_string writes it without JSON_ENSURE_ASCII or
 * JSON_ESCAPE_SLASH: '"' and '\\' escaped, control characters as \b \f \n
 * \r \t or \u00XX, everything else (UTF-8 included) as is. -1 for text that
 * is not UTF-8, which json_string would have refused. */
static int text_string(struct estimate_text *t, const char *str)
{
    size_t len = strlen(str);
    /* the worst case: every byte a 6-byte escape, and the quotes */
    if (len > (SIZE_MAX - 2) / 6 || !text_reserve(t, len * 6 + 2))
        return -1;
    char *o = t->data + t->len;
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    *o++ = '"';
    while (s < end) {
        unsigned char c = *s;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            s++;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t n = utf8_sequence(s, (size_t)(end - s), &cp);
            if (n == 0)
                return -1; /* t->len unchanged: nothing of this string counted */
            memcpy(o, s, n);
            o += n;
            s += n;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        }
        s++;
    }
    *o++ = '"';
    t->len = (size_t)(o - t->data);
    t->data[t->len] = '\0';
    return 0;
}

/* "key": a string and the colon. */
static int text_key(struct estimate_text *t, const char *key)
{
    return text_string(t, key) == 0 && TEXT_LIT(t, ":") == 0 ? 0 : -1;
}

static int text_int(struct estimate_text *t, int64_t v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return estimate_text_append(t, p, (size_t)(buf + sizeof buf - p));
}

#define REAL_DIGITS 12 /* JSON_REAL_PRECISION(12), as http.c prints jansson trees */
#define REAL_TEXT_MAX 40

/* What jansson prints for a finite x with JSON_REAL_PRECISION(12): snprintf's
 * "%.12g" text, with ".0" added when it has neither '.' nor 'e', and the
 * exponent's '+' and leading zeros dropped ("1e+20" -> "1e20", "1e-05" ->
 * "1e-5"). The length written to buf (REAL_TEXT_MAX bytes). */
static size_t real_text_from_printf(double x, char *buf)
{
    int n = snprintf(buf, REAL_TEXT_MAX, "%.*g", REAL_DIGITS, x);
    if (n < 0 || n >= REAL_TEXT_MAX - 3)
        return 0;
    size_t len = (size_t)n;
    /* jansson prints '.' whatever the locale's decimal point (its from_locale) */
    const struct lconv *lc = localeconv();
    if (lc && lc->decimal_point && lc->decimal_point[0] && lc->decimal_point[0] != '.') {
        char *point = strchr(buf, lc->decimal_point[0]);
        if (point)
            *point = '.';
    }
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        buf[len++] = '.';
        buf[len++] = '0';
        buf[len] = '\0';
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf) + 1);
            len -= (size_t)(end - start);
        }
    }
    return len;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

/* Bits needed to write v. */
static unsigned bit_length(u128 v)
{
    uint64_t high = (uint64_t)(v >> 64), low = (uint64_t)v;
    return high ? 128u - (unsigned)__builtin_clzll(high)
                : low ? 64u - (unsigned)__builtin_clzll(low) : 0u;
}

static u128 pow10_u128(unsigned n) /* n <= 38 */
{
    static const uint64_t pow10_u64[20] = {
        1ull,           10ull,           100ull,           1000ull,           10000ull,
        100000ull,      1000000ull,      10000000ull,      100000000ull,      1000000000ull,
        10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull, 100000000000000ull,
        1000000000000000ull,     10000000000000000ull,     100000000000000000ull,
        1000000000000000000ull,  10000000000000000000ull};
    return n < 20 ? (u128)pow10_u64[n] : (u128)pow10_u64[19] * pow10_u64[n - 19];
}

/* floor(x * 10^p) of x = m * 2^k (m < 2^53) exactly, with how the remainder
 * compares with one half (-1 below, 0 exactly, 1 above). false when a term
 * would not fit in 126 bits (magnitudes beyond about 1e-19 .. 1e37: the caller
 * uses snprintf). */
static bool scaled_digits(uint64_t m, int k, int p, uint64_t *q_out, int *half_cmp)
{
    if (k > 62 || k < -125 || p > 38 || p < -38)
        return false;
    /* x * 10^p = num / den */
    u128 num = m, den = 1;
    if (k >= 0)
        num <<= k; /* < 2^115 */
    else
        den <<= -k;
    u128 scale = pow10_u128((unsigned)(p >= 0 ? p : -p));
    u128 *side = p >= 0 ? &num : &den;
    if (bit_length(*side) + bit_length(scale) > 126) /* the product below 2^126 */
        return false;
    *side *= scale;
    u128 q, r;
    if (p >= 0) { /* den is 2^-k: shifts, no 128-bit division */
        unsigned shift = k < 0 ? (unsigned)-k : 0u;
        q = num >> shift;
        r = num - (q << shift);
    } else {
        q = num / den;
        r = num % den;
    }
    if (q >> 64)
        return false;
    *q_out = (uint64_t)q;
    u128 twice = r << 1; /* r < den < 2^126 */
    *half_cmp = twice < den ? -1 : twice > den ? 1 : 0;
    return true;
}

/* The 12 significant digits of a positive finite x, correctly rounded (ties to
 * even, as glibc's printf rounds), and the decimal exponent of the first:
 * x ~ digits * 10^(exp10 - 11). false when outside scaled_digits' range. */
static bool real_digits(double x, uint64_t *digits, int *exp10)
{
    static const uint64_t lo = 100000000000ull, hi = 1000000000000ull; /* 10^11, 10^12 */
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t m = bits & ((1ull << 52) - 1);
    int k;
    if (biased == 0) {
        k = -1074; /* subnormal */
    } else {
        m |= 1ull << 52;
        k = biased - 1075;
    }
    if (m == 0)
        return false;
    /* floor(log10(x)) is e10 or e10 + 1, x lying in [2^e2, 2^(e2+1)) */
    int e2 = k + 63 - __builtin_clzll(m);
    /* 315653 / 2^20 ~ log10(2); rounded toward minus infinity for e2 < 0 */
    int e10 = e2 >= 0 ? (int)(((int64_t)e2 * 315653) >> 20)
                      : -(int)((((int64_t)-e2 * 315653) + (1 << 20) - 1) >> 20);
    for (int tries = 0; tries < 3; tries++) {
        uint64_t q;
        int half;
        if (!scaled_digits(m, k, REAL_DIGITS - 1 - e10, &q, &half))
            return false;
        if (q >= hi) {
            e10++;
            continue;
        }
        if (q < lo) {
            e10--;
            continue;
        }
        if (half > 0 || (half == 0 && (q & 1)))
            q++;
        if (q == hi) {
            q = lo;
            e10++;
        }
        *digits = q;
        *exp10 = e10;
        return true;
    }
    return false;
}

/* "%.12g" of a positive x from its digits, as jansson prints it. */
static size_t real_text_from_digits(uint64_t q, int e10, char *buf)
{
    /* two 6-digit halves, two digits at a time (q < 10^12) */
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                                "34353637383940414243444546474849505152535455565758596061626364656667"
                                "6869707172737475767778798081828384858687888990919293949596979899";
    char d[REAL_DIGITS];
    uint32_t half[2] = {(uint32_t)(q / 1000000u), (uint32_t)(q % 1000000u)};
    for (int h = 0; h < 2; h++) {
        uint32_t v = half[h];
        for (int i = 4; i >= 0; i -= 2) {
            memcpy(d + 6 * h + i, pairs + 2 * (v % 100), 2);
            v /= 100;
        }
    }
    int nd = REAL_DIGITS; /* significant digits left once trailing zeros go */
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (e10 < -4 || e10 >= REAL_DIGITS) {
        buf[o++] = d[0];
        if (nd > 1) {
            buf[o++] = '.';
            memcpy(buf + o, d + 1, (size_t)nd - 1);
            o += (size_t)nd - 1;
        }
        buf[o++] = 'e';
        unsigned ue = (unsigned)(e10 < 0 ? -e10 : e10);
        if (e10 < 0)
            buf[o++] = '-';
        char eb[8];
        int en = 0;
        do {
            eb[en++] = (char)('0' + ue % 10);
            ue /= 10;
        } while (ue);
        while (en)
            buf[o++] = eb[--en];
    } else if (e10 >= 0) {
        int int_digits = e10 + 1;
        memcpy(buf + o, d, (size_t)int_digits);
        o += (size_t)int_digits;
        buf[o++] = '.';
        if (nd > int_digits) {
            memcpy(buf + o, d + int_digits, (size_t)(nd - int_digits));
            o += (size_t)(nd - int_digits);
        } else {
            buf[o++] = '0'; /* jansson's ".0" */
        }
    } else {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int z = 0; z < -e10 - 1; z++)
            buf[o++] = '0';
        memcpy(buf + o, d, (size_t)nd);
        o += (size_t)nd;
    }
    buf[o] = '\0';
    return o;
}
#endif

/* jansson's text of a finite x at 12 digits (REAL_TEXT_MAX bytes in buf). */
static size_t format_real(double x, char *buf)
{
#ifdef __SIZEOF_INT128__
    if (x == 0) {
        memcpy(buf, signbit(x) ? "-0.0" : "0.0", signbit(x) ? 5 : 4);
        return signbit(x) ? 4 : 3;
    }
    uint64_t digits;
    int e10;
    if (real_digits(fabs(x), &digits, &e10)) {
        size_t o = 0;
        if (x < 0)
            buf[o++] = '-';
        return o + real_text_from_digits(digits, e10, buf + o);
    }
#endif
    return real_text_from_printf(x, buf);
}

/* A real as real_or_null gives it: null for NaN and infinities. */
static int text_real(struct estimate_text *t, double x)
{
    if (!isfinite(x))
        return TEXT_LIT(t, "null");
    if (!text_reserve(t, REAL_TEXT_MAX))
        return -1;
    size_t n = format_real(x, t->data + t->len);
    if (n == 0) {
        t->failed = true;
        return -1;
    }
    t->len += n;
    t->data[t->len] = '\0';
    return 0;
}

/* A rail's object of one field: {"VDD_IN": x, ...}. A name seen twice is one
 * member at the first one's place holding the last one's value, as
 * json_object_set_new leaves it. */
enum rail_field { RAIL_POWER, RAIL_POWER_SPREAD, RAIL_ENERGY };

static double rail_field_value(const struct rail_prediction *rp, enum rail_field f)
{
    return f == RAIL_POWER ? rp->power_mw : f == RAIL_POWER_SPREAD ? rp->power_mw_spread
                                                                   : rp->energy_uj;
}

static int text_rail_object(struct estimate_text *t, const struct kernel_prediction *p,
                            enum rail_field field)
{
    unsigned count = p->rail_count < PREDICT_MAX_RAILS ? p->rail_count : PREDICT_MAX_RAILS;
    int rc = TEXT_LIT(t, "{");
    bool first = true;
    for (unsigned r = 0; r < count && rc == 0; r++) {
        bool earlier = false;
        for (unsigned e = 0; e < r && !earlier; e++)
            earlier = strcmp(p->rails[e].name, p->rails[r].name) == 0;
        if (earlier)
            continue;
        unsigned last = r;
        for (unsigned l = r + 1; l < count; l++)
            if (strcmp(p->rails[l].name, p->rails[r].name) == 0)
                last = l;
        if (!first)
            rc = TEXT_LIT(t, ",");
        first = false;
        if (rc == 0)
            rc = text_key(t, p->rails[r].name);
        if (rc == 0)
            rc = text_real(t, rail_field_value(&p->rails[last], field));
    }
    return rc == 0 ? TEXT_LIT(t, "}") : -1;
}

/* estimate_prediction_fields as text, after a comma. */
static int text_prediction_fields(struct estimate_text *t, const struct kernel_prediction *p)
{
    int rc = TEXT_LIT(t, ",\"latency_us\":");
    rc = rc ? rc : text_real(t, p->latency_us);
    rc = rc ? rc : TEXT_LIT(t, ",\"latency_us_spread\":");
    rc = rc ? rc : text_real(t, p->latency_us_spread);
    rc = rc ? rc : TEXT_LIT(t, ",\"power_mw\":");
    rc = rc ? rc : text_rail_object(t, p, RAIL_POWER);
    rc = rc ? rc : TEXT_LIT(t, ",\"power_mw_spread\":");
    rc = rc ? rc : text_rail_object(t, p, RAIL_POWER_SPREAD);
    rc = rc ? rc : TEXT_LIT(t, ",\"energy_uj\":");
    rc = rc ? rc : text_rail_object(t, p, RAIL_ENERGY);
    return rc;
}

/* Appends the decimal text of v at buf + *at (24 bytes of room). */
static void put_int(char *buf, size_t *at, int64_t v)
{
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[(*at)++] = '-';
    while (n)
        buf[(*at)++] = digits[--n];
}

/* catalog_config_key's text ("linear_relu:fp32:batch=64,in=256,out=512") and
 * its failures (no kernel, an invalid dtype, 256 bytes or more), without the
 * snprintf per part that made it a tenth of a cached estimate; the unit tests
 * compare the two through estimate_graph. The length, or -1. */
static int config_key_text(const struct kernel_config *cfg, char key[256])
{
    if (!cfg->kernel || (unsigned)cfg->dtype >= DTYPE_COUNT)
        return -1;
    char buf[256 + 64]; /* room to overshoot by one part before the check */
    size_t at = 0;
    const char *parts[2] = {cfg->kernel->name, dtype_name(cfg->dtype)};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(parts[i]);
        if (at + n + 1 >= 256)
            return -1;
        memcpy(buf + at, parts[i], n);
        at += n;
        buf[at++] = ':';
    }
    for (unsigned i = 0; i < cfg->kernel->param_count && i < CATALOG_MAX_PARAMS; i++) {
        const char *name = cfg->kernel->params[i].name;
        size_t n = strlen(name);
        if (at + n + 2 + 20 >= sizeof buf)
            return -1;
        if (i > 0)
            buf[at++] = ',';
        memcpy(buf + at, name, n);
        at += n;
        buf[at++] = '=';
        put_int(buf, &at, cfg->params[i]);
        if (at >= 256)
            return -1;
    }
    memcpy(key, buf, at);
    key[at] = '\0';
    return (int)at;
}

/* kernel_json as text. */
static int text_kernel(struct estimate_text *t, const struct graph_kernel *gk,
                       const struct kernel_prediction *p)
{
    char key[256];
    if (config_key_text(&gk->cfg, key) < 0)
        return -1;
    int rc = TEXT_LIT(t, "{\"kernel\":");
    rc = rc ? rc : text_string(t, gk->cfg.kernel->name);
    rc = rc ? rc : TEXT_LIT(t, ",\"dtype\":");
    rc = rc ? rc : text_string(t, dtype_name(gk->cfg.dtype));
    rc = rc ? rc : TEXT_LIT(t, ",\"params\":{");
    for (unsigned i = 0; rc == 0 && i < gk->cfg.kernel->param_count && i < CATALOG_MAX_PARAMS;
         i++) {
        if (i > 0)
            rc = TEXT_LIT(t, ",");
        rc = rc ? rc : text_key(t, gk->cfg.kernel->params[i].name);
        rc = rc ? rc : text_int(t, gk->cfg.params[i]);
    }
    rc = rc ? rc : TEXT_LIT(t, "},\"config_key\":");
    rc = rc ? rc : text_string(t, key);
    rc = rc ? rc : TEXT_LIT(t, ",\"nodes\":[");
    for (size_t i = 0; rc == 0 && i < gk->node_count; i++) {
        if (i > 0)
            rc = TEXT_LIT(t, ",");
        rc = rc ? rc : text_string(t, gk->nodes[i]);
    }
    rc = rc ? rc : TEXT_LIT(t, "],\"depth\":");
    rc = rc ? rc : text_int(t, gk->depth);
    rc = rc ? rc : TEXT_LIT(t, ",\"merged\":");
    rc = rc ? rc : text_int(t, gk->merged_count);
    rc = rc ? rc : text_prediction_fields(t, p);
    return rc ? rc : TEXT_LIT(t, "}");
}

/* named_rail_total as text. */
static int text_named_rail_total(struct estimate_text *t, const struct totals *sums,
                                 const char *name, size_t kernels)
{
    for (unsigned r = 0; r < sums->rail_count; r++)
        if (strcmp(sums->rails[r].name, name) == 0)
            return text_real(t, sums->rails[r].energy_uj);
    return kernels == 0 ? text_real(t, 0.0) : TEXT_LIT(t, "null");
}

/* totals_json as text. */
static int text_totals(struct estimate_text *t, const struct graph_plan *plan,
                       const struct kernel_prediction *preds, const struct model_set_info *info)
{
    struct totals sums;
    totals_sum(plan, preds, &sums);
    bool input_is_sum = info->board_input_rail[0] == '\0';
    int rc = TEXT_LIT(t, "{\"kernels\":");
    rc = rc ? rc : text_int(t, (int64_t)plan->count);
    rc = rc ? rc : TEXT_LIT(t, ",\"latency_us\":");
    rc = rc ? rc : text_real(t, sums.latency_us);
    rc = rc ? rc : TEXT_LIT(t, ",\"latency_us_spread\":");
    rc = rc ? rc : text_real(t, sqrt(sums.spread_sq));
    rc = rc ? rc : TEXT_LIT(t, ",\"energy_uj\":{\"board_input\":");
    if (rc == 0)
        rc = input_is_sum ? text_real(t, sums.sum_uj)
                          : text_named_rail_total(t, &sums, info->board_input_rail, plan->count);
    rc = rc ? rc : TEXT_LIT(t, ",\"gpu\":");
    if (rc == 0)
        rc = info->gpu_rail[0] ? text_named_rail_total(t, &sums, info->gpu_rail, plan->count)
                               : TEXT_LIT(t, "null");
    rc = rc ? rc : TEXT_LIT(t, ",\"rails\":{");
    for (unsigned r = 0; rc == 0 && r < sums.rail_count; r++) {
        if (r > 0)
            rc = TEXT_LIT(t, ",");
        rc = rc ? rc : text_key(t, sums.rails[r].name);
        rc = rc ? rc : text_real(t, sums.rails[r].energy_uj);
    }
    rc = rc ? rc : TEXT_LIT(t, "}},\"board_input_rail\":");
    rc = rc ? rc : text_string(t, input_is_sum ? "sum" : info->board_input_rail);
    rc = rc ? rc : TEXT_LIT(t, ",\"gpu_rail\":");
    if (rc == 0)
        rc = info->gpu_rail[0] ? text_string(t, info->gpu_rail) : TEXT_LIT(t, "null");
    return rc ? rc : TEXT_LIT(t, "}");
}

int estimate_graph_text(const json_t *graph, const struct estimate_options *opt,
                        estimate_predict_fn predict, void *ctx, struct estimate_text *out,
                        struct graph_error *err)
{
    struct graph_plan plan;
    struct kernel_prediction *preds;
    if (plan_and_predict(graph, opt, predict, ctx, &plan, &preds, err) != 0)
        return -1;

    size_t start = out->len;
    /* about 550 bytes per kernel: one reservation instead of a few doublings */
    (void)text_reserve(out, 256 + plan.count * 640);
    const struct model_set_info *info = &opt->info;
    int rc = TEXT_LIT(out, "{\"format\":");
    rc = rc ? rc : text_string(out, plan.format);
    rc = rc ? rc : TEXT_LIT(out, ",\"dtype\":");
    rc = rc ? rc : text_string(out, dtype_name(plan.dtype));
    rc = rc ? rc : TEXT_LIT(out, ",\"batch\":");
    rc = rc ? rc : text_int(out, plan.batch);
    rc = rc ? rc : (opt->graph.merge ? TEXT_LIT(out, ",\"merge\":true")
                                     : TEXT_LIT(out, ",\"merge\":false"));
    rc = rc ? rc : (info->simulated ? TEXT_LIT(out, ",\"simulated\":true")
                                    : TEXT_LIT(out, ",\"simulated\":false"));
    rc = rc ? rc : TEXT_LIT(out, ",\"graph_nodes\":");
    rc = rc ? rc : text_int(out, (int64_t)plan.graph_nodes);
    rc = rc ? rc : TEXT_LIT(out, ",\"kernels\":[");
    for (size_t i = 0; rc == 0 && i < plan.count; i++) {
        if (i > 0)
            rc = TEXT_LIT(out, ",");
        rc = rc ? rc : text_kernel(out, &plan.kernels[i], &preds[i]);
    }
    rc = rc ? rc : TEXT_LIT(out, "],\"totals\":");
    rc = rc ? rc : text_totals(out, &plan, preds, info);
    rc = rc ? rc : TEXT_LIT(out, "}");
    free(preds);
    graph_plan_free(&plan);
    if (rc != 0) {
        /* what was written of this answer goes; the buffer is as it was */
        bool oom = out->failed;
        out->failed = false;
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        set_error(err, 500, oom ? "out of memory building the estimate"
                                : "the estimate holds text that is not UTF-8");
        return -1;
    }
    return 0;
}
