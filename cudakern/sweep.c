/*
 * sweep.c - sweep specs expanded into kernel configurations (see sweep.h for
 * the forms and the order).
 *
 * The sweep members are checked first and on their own (unknown members and
 * parameters, empty or inverted ranges, values outside the catalogue's range,
 * sizes over the limit) so that the message names the sweep member at fault
 * rather than one expanded point; then every configuration goes through the
 * caller's parser (the daemon's is the strict check of POST /v1/measure, with
 * the memory check), so a sweep can never give what an ad-hoc measurement
 * would refuse. Messages quote what the client wrote with non-printable and
 * non-ASCII bytes escaped: they are ASCII, and cutting one short never splits
 * a character.
 */
#include "sweep.h"

#include "../common/text.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members accepted at each level, per form: an unknown one is refused, listing these. */
static const char top_members[] = "configs, sweep, dtype, repeats, repeat_existing";
static const char grid_members[] = "type, kernel, dtype, params";
static const char random_members[] = "type, kernel, dtype, params, count, seed";
static const char list_members[] = "type, kernel, dtype, points";
static const char adaptive_members[] =
    "type, kernel, dtype, params, initial, per_round, rounds, threshold, radius_log2, seed";

/* An adaptive sweep's defaults: predict/adaptive.h's ADAPTIVE_DEFAULT_THRESHOLD
 * and ADAPTIVE_DEFAULT_RADIUS_LOG2 (cudakern cannot include predict). */
#define ADAPTIVE_THRESHOLD_DEFAULT 0.1
#define ADAPTIVE_RADIUS_LOG2_DEFAULT 0.5

/* One expansion: what it was asked, where it writes. */
struct expander {
    const struct sweep_spec_options *opt;
    const char *limit; /* opt->limit_name or "the limit" */
    struct sweep_spec *s;
    struct sweep_spec_error *err;
};

/* ---- messages ---- */

/* Is name one of the ", "-separated words of list? */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* A JSON value as the client wrote it, shortened and safe for a message. */
static void value_text(json_t *v, char *buf, size_t buflen)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, buflen, "(a value)");
        return;
    }
    text_quote(s, buf, buflen);
    free(s);
}

/* "batch, in, out": k's parameters. */
static void param_names(const struct catalog_kernel *k, char *buf, size_t buflen)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < k->param_count; i++) {
        int n = snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "", k->params[i].name);
        if (n > 0 && (size_t)n < buflen - used)
            used += (size_t)n;
    }
}

static void set_error(struct sweep_spec_error *err, enum sweep_spec_status status,
                      const char *member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(struct sweep_spec_error *err, enum sweep_spec_status status,
                      const char *member, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    snprintf(err->member, sizeof err->member, "%s", member ? member : "");
}

static void oom(struct sweep_spec_error *err)
{
    set_error(err, SWEEP_SPEC_NO_MEMORY, NULL, "out of memory expanding the sweep");
}

/* Member path (e.g. "sweep.params.batch") at fault: "member 'PATH': DETAIL". */
static void member_error(struct sweep_spec_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void member_error(struct sweep_spec_error *err, const char *path, const char *fmt, ...)
{
    char detail[SWEEP_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    set_error(err, SWEEP_SPEC_INVALID, path, "member '%s': %s", path, detail);
}

static int parse_dtype(json_t *v, const char *path, enum dtype *out, struct sweep_spec_error *err)
{
    if (!json_is_string(v) || dtype_parse(json_string_value(v), out) != 0) {
        char val[80];
        value_text(v, val, sizeof val);
        member_error(err, path, "%s is not a dtype; expected \"fp32\" or \"fp16\"", val);
        return -1;
    }
    return 0;
}

/* Checks obj's members against the accepted list (where: "sweep", "" for the top level). */
static int check_members(json_t *obj, const char *accepted, const char *where,
                         struct sweep_spec_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (listed(accepted, key))
            continue;
        char q[80], path[160];
        text_quote(key, q, sizeof q);
        snprintf(path, sizeof path, "%s%s%s", where, where[0] ? "." : "", q);
        member_error(err, path, "unknown member; accepted members%s%s: %s", where[0] ? " of " : "",
                     where, accepted);
        return -1;
    }
    return 0;
}

/* The kernel named by kv (at member path), or NULL with err naming the catalogue. */
static const struct catalog_kernel *find_kernel(json_t *kv, const char *path,
                                                struct sweep_spec_error *err)
{
    const struct catalog_kernel *k =
        json_is_string(kv) ? catalog_find(json_string_value(kv)) : NULL;
    if (!k) {
        char val[80], kernels[256];
        catalog_kernel_names(kernels, sizeof kernels);
        if (kv)
            value_text(kv, val, sizeof val);
        member_error(err, path, "%s%s; the catalogue has %s", kv ? "unknown kernel " : "missing",
                     kv ? val : "", kernels);
    }
    return k;
}

/* A value of parameter p at member path: an integer within the catalogue's range. */
static int check_value(const struct catalog_kernel *k, const struct catalog_param *p, json_t *v,
                       const char *path, int64_t *out, struct sweep_spec_error *err)
{
    char val[80];
    if (!json_is_integer(v)) {
        value_text(v, val, sizeof val);
        member_error(err, path, "%s is not an integer; parameter '%s' of %s takes integers in "
                                "[%" PRId64 ", %" PRId64 "]",
                     val, p->name, k->name, p->min, p->max);
        return -1;
    }
    int64_t x = (int64_t)json_integer_value(v);
    if (x < p->min || x > p->max) {
        member_error(err, path, "parameter '%s' = %" PRId64 " is outside %s's range [%" PRId64
                                ", %" PRId64 "]",
                     p->name, x, k->name, p->min, p->max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Every key of params is a parameter of k, and every parameter of k is there. */
static int check_param_names(const struct catalog_kernel *k, json_t *params, const char *where,
                             struct sweep_spec_error *err)
{
    char names[160];
    param_names(k, names, sizeof names);
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        if (catalog_param_index(k, key) >= 0)
            continue;
        char q[80], path[160];
        text_quote(key, q, sizeof q);
        snprintf(path, sizeof path, "%s.%s", where, q);
        member_error(err, path, "unknown parameter '%s' for kernel %s; its parameters are %s", q,
                     k->name, names);
        return -1;
    }
    for (unsigned i = 0; i < k->param_count; i++) {
        if (json_object_get(params, k->params[i].name))
            continue;
        char path[160];
        snprintf(path, sizeof path, "%s.%s", where, k->params[i].name);
        member_error(err, path, "parameter '%s' of %s is missing: every parameter (%s) needs "
                                "values",
                     k->params[i].name, k->name, names);
        return -1;
    }
    return 0;
}

/* ---- one configuration ---- */

json_t *sweep_config_json(const struct kernel_config *kc)
{
    const struct catalog_kernel *k = kc->kernel;
    json_t *o = json_pack("{s:s,s:s}", "kernel", k->name, "dtype", dtype_name(kc->dtype));
    if (!o)
        return NULL;
    for (unsigned i = 0; i < k->param_count; i++) {
        if (json_object_set_new(o, k->params[i].name, json_integer((json_int_t)kc->params[i])) !=
            0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* kc as a whole (cross-parameter sizes), with no memory limit. */
static int validate(const struct kernel_config *kc, const char *where, struct sweep_spec_error *err)
{
    char msg[SWEEP_DETAIL_MAX - 64];
    if (catalog_validate(kc, 0, msg, sizeof msg) != 0) {
        set_error(err, SWEEP_SPEC_INVALID, where, "%s: %s", where, msg);
        return -1;
    }
    return 0;
}

int sweep_parse_config(json_t *config, const char *where, struct kernel_config *kc,
                       struct sweep_spec_error *err)
{
    char path[160];
    memset(kc, 0, sizeof *kc);
    if (!json_is_object(config)) {
        member_error(err, where, "expected an object such as "
                                 "{\"kernel\":\"linear\",\"batch\":8,\"in\":64,\"out\":64}");
        return -1;
    }
    snprintf(path, sizeof path, "%s.kernel", where);
    const struct catalog_kernel *k = find_kernel(json_object_get(config, "kernel"), path, err);
    if (!k)
        return -1;
    kc->kernel = k;
    kc->dtype = DTYPE_FP32;
    /* Unknown members first: a misspelt parameter is then reported as what it
     * is rather than as the correct one missing. */
    const char *key;
    json_t *v;
    json_object_foreach(config, key, v)
    {
        if (strcmp(key, "kernel") == 0 || strcmp(key, "dtype") == 0 ||
            catalog_param_index(k, key) >= 0)
            continue;
        char q[80], names[160];
        text_quote(key, q, sizeof q);
        param_names(k, names, sizeof names);
        snprintf(path, sizeof path, "%s.%s", where, q);
        member_error(err, path, "unknown member for kernel %s; accepted members: kernel, dtype, %s",
                     k->name, names);
        return -1;
    }
    json_t *dv = json_object_get(config, "dtype");
    snprintf(path, sizeof path, "%s.dtype", where);
    if (dv && parse_dtype(dv, path, &kc->dtype, err) != 0)
        return -1;
    for (unsigned i = 0; i < k->param_count; i++) {
        const struct catalog_param *p = &k->params[i];
        snprintf(path, sizeof path, "%s.%s", where, p->name);
        json_t *pv = json_object_get(config, p->name);
        if (!pv) {
            member_error(err, path, "parameter '%s' of %s is missing: an integer in [%" PRId64
                                    ", %" PRId64 "]",
                         p->name, k->name, p->min, p->max);
            return -1;
        }
        if (check_value(k, p, pv, path, &kc->params[i], err) != 0)
            return -1;
    }
    return validate(kc, where, err);
}

/* Room for capacity configurations. */
static int grow(struct expander *x, size_t capacity)
{
    x->s->configs = calloc(capacity ? capacity : 1, sizeof *x->s->configs);
    if (!x->s->configs) {
        oom(x->err);
        return -1;
    }
    return 0;
}

/* Parses config (a full kernel-config object) and appends it. */
static int add_config(struct expander *x, json_t *config, const char *where)
{
    struct kernel_config kc;
    if (x->opt->parse) {
        if (x->opt->parse(x->opt->parse_ctx, config, where, &kc) != 0) {
            set_error(x->err, SWEEP_SPEC_REFUSED, where, "%s: refused", where);
            return -1;
        }
    } else if (sweep_parse_config(config, where, &kc, x->err) != 0) {
        return -1;
    }
    x->s->configs[x->s->count++] = kc;
    return 0;
}

/* Appends the point of k with values (each already within its range). */
static int add_point(struct expander *x, const struct catalog_kernel *k, const int64_t *values,
                     const char *where)
{
    struct kernel_config kc = {.kernel = k, .dtype = x->s->dtype};
    for (unsigned i = 0; i < k->param_count; i++)
        kc.params[i] = values[i];
    if (!x->opt->parse) {
        if (validate(&kc, where, x->err) != 0)
            return -1;
        x->s->configs[x->s->count++] = kc;
        return 0;
    }
    json_t *o = sweep_config_json(&kc);
    if (!o) {
        oom(x->err);
        return -1;
    }
    int rc = add_config(x, o, where);
    json_decref(o);
    return rc;
}

/* ---- {"configs": [...]} ---- */

static int expand_configs(struct expander *x, json_t *list, bool have_dtype)
{
    size_t max = x->opt->max_configs;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        member_error(x->err, "configs", "expected a non-empty array of configurations such as "
                                        "{\"kernel\":\"linear\",\"batch\":8,\"in\":64,\"out\":64}");
        return -1;
    }
    size_t n = json_array_size(list);
    if (n > max) {
        member_error(x->err, "configs", "%zu configurations are more than %s = %zu", n, x->limit,
                     max);
        return -1;
    }
    if (grow(x, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof where, "configs[%zu]", i);
        json_t *c = json_array_get(list, i);
        if (json_is_object(c) && json_object_get(c, "repeats")) {
            char path[64];
            snprintf(path, sizeof path, "%s.repeats", where);
            member_error(x->err, path, "repeats are per batch: give \"repeats\" at the top level");
            return -1;
        }
        json_t *copy = NULL;
        if (have_dtype && json_is_object(c) && !json_object_get(c, "dtype")) {
            copy = json_copy(c);
            if (!copy || json_object_set_new(copy, "dtype",
                                             json_string(dtype_name(x->s->dtype))) != 0) {
                json_decref(copy);
                oom(x->err);
                return -1;
            }
        }
        int rc = add_config(x, copy ? copy : c, where);
        json_decref(copy);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ---- sweeps over one kernel ---- */

static int expand_grid(struct expander *x, const struct catalog_kernel *k, json_t *params)
{
    size_t max = x->opt->max_configs;
    int64_t values[CATALOG_MAX_PARAMS][SWEEP_GRID_AXIS_MAX];
    size_t counts[CATALOG_MAX_PARAMS] = {0};
    const size_t axis_max = SWEEP_GRID_AXIS_MAX;
    size_t total = 1;
    char product[128] = "";
    size_t used = 0;
    for (unsigned i = 0; i < k->param_count; i++) {
        const struct catalog_param *p = &k->params[i];
        json_t *v = json_object_get(params, p->name);
        char path[96];
        snprintf(path, sizeof path, "sweep.params.%s", p->name);
        if (json_is_array(v)) {
            size_t n = json_array_size(v);
            if (n == 0) {
                member_error(x->err, path, "the list of values for '%s' is empty; give at least "
                                           "one integer in [%" PRId64 ", %" PRId64 "]",
                             p->name, p->min, p->max);
                return -1;
            }
            if (n > axis_max) {
                member_error(x->err, path, "%zu values for '%s'; a grid takes at most %zu per "
                                           "parameter",
                             n, p->name, axis_max);
                return -1;
            }
            for (size_t j = 0; j < n; j++) {
                char vpath[112];
                snprintf(vpath, sizeof vpath, "%s[%zu]", path, j);
                if (check_value(k, p, json_array_get(v, j), vpath, &values[i][j], x->err) != 0)
                    return -1;
            }
            counts[i] = n;
        } else {
            if (check_value(k, p, v, path, &values[i][0], x->err) != 0)
                return -1;
            counts[i] = 1;
        }
        int w = snprintf(product + used, sizeof product - used, "%s%zu", i ? " x " : "",
                         counts[i]);
        if (w > 0 && (size_t)w < sizeof product - used)
            used += (size_t)w;
        /* Overflow-safe: stop multiplying once past the limit. */
        if (total <= max)
            total = total > max / counts[i] ? max + 1 : total * counts[i];
    }
    if (total > max) {
        member_error(x->err, "sweep.params", "the grid has %s configurations, more than %s = %zu",
                     product, x->limit, max);
        return -1;
    }
    if (grow(x, total) != 0)
        return -1;
    size_t idx[CATALOG_MAX_PARAMS] = {0};
    int64_t point[CATALOG_MAX_PARAMS] = {0};
    for (size_t n = 0; n < total; n++) {
        for (unsigned i = 0; i < k->param_count; i++)
            point[i] = values[i][idx[i]];
        char where[48];
        snprintf(where, sizeof where, "sweep (grid point %zu)", n);
        if (add_point(x, k, point, where) != 0)
            return -1;
        /* Odometer, last parameter fastest. */
        for (int i = (int)k->param_count - 1; i >= 0; i--) {
            if (++idx[i] < counts[i])
                break;
            idx[i] = 0;
        }
    }
    return 0;
}

uint64_t sweep_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int64_t sweep_draw(uint64_t *state, int64_t low, int64_t high, bool log_scale)
{
    uint64_t x = sweep_splitmix64(state);
    if (high <= low)
        return low;
    if (log_scale && low >= 1) {
        /* Uniform in log space over [low, high + 1), floored: every integer
         * gets the share of the log axis between it and the next one. */
        double u = (double)(x >> 11) * 0x1.0p-53;
        double lo = log((double)low), hi = log((double)high + 1.0);
        double v = floor(exp(lo + u * (hi - lo)));
        if (v < (double)low)
            return low;
        if (v >= (double)high)
            return high;
        return (int64_t)v;
    }
    uint64_t span = (uint64_t)high - (uint64_t)low + 1u;
    if (span == 0) /* the whole int64 range */
        return (int64_t)x;
    return (int64_t)((uint64_t)low + x % span);
}

/* The optional "seed" member: SWEEP_DEFAULT_SEED when absent. */
static int parse_seed(struct expander *x, json_t *sweep, uint64_t *seed)
{
    json_t *sv = json_object_get(sweep, "seed");
    *seed = SWEEP_DEFAULT_SEED;
    if (!sv)
        return 0;
    if (!json_is_integer(sv)) {
        char val[80];
        value_text(sv, val, sizeof val);
        member_error(x->err, "sweep.seed", "%s is not an integer", val);
        return -1;
    }
    *seed = (uint64_t)json_integer_value(sv);
    return 0;
}

/* The random ranges of params ([low, high] or a single value, low = high), in
 * catalogue order: what a random sweep draws from and an adaptive sweep's
 * proposals stay within. */
static int parse_ranges(struct expander *x, const struct catalog_kernel *k, json_t *params,
                        int64_t low[CATALOG_MAX_PARAMS], int64_t high[CATALOG_MAX_PARAMS])
{
    char val[80];
    for (unsigned i = 0; i < k->param_count; i++) {
        const struct catalog_param *p = &k->params[i];
        json_t *v = json_object_get(params, p->name);
        char path[96], bound[112];
        snprintf(path, sizeof path, "sweep.params.%s", p->name);
        if (!json_is_array(v)) {
            if (check_value(k, p, v, path, &low[i], x->err) != 0)
                return -1;
            high[i] = low[i];
            continue;
        }
        if (json_array_size(v) != 2) {
            value_text(v, val, sizeof val);
            member_error(x->err, path, "%s: %s range of '%s'; expected [low, high] within "
                                       "[%" PRId64 ", %" PRId64 "]",
                         val, json_array_size(v) == 0 ? "an empty" : "not a", p->name, p->min,
                         p->max);
            return -1;
        }
        snprintf(bound, sizeof bound, "%s[0]", path);
        if (check_value(k, p, json_array_get(v, 0), bound, &low[i], x->err) != 0)
            return -1;
        snprintf(bound, sizeof bound, "%s[1]", path);
        if (check_value(k, p, json_array_get(v, 1), bound, &high[i], x->err) != 0)
            return -1;
        if (low[i] > high[i]) {
            member_error(x->err, path, "the range [%" PRId64 ", %" PRId64 "] of '%s' is inverted "
                                       "(low > high)",
                         low[i], high[i], p->name);
            return -1;
        }
    }
    return 0;
}

/* count draws from splitmix64 seeded with seed, each parameter in catalogue
 * order: the random sweep's configurations, and an adaptive sweep's initial
 * sample (the same code, so the two can never draw differently). */
static int draw_random(struct expander *x, const struct catalog_kernel *k, size_t count,
                       uint64_t seed, const int64_t *low, const int64_t *high)
{
    if (grow(x, count) != 0)
        return -1;
    uint64_t state = seed;
    int64_t point[CATALOG_MAX_PARAMS] = {0};
    for (size_t n = 0; n < count; n++) {
        for (unsigned i = 0; i < k->param_count; i++)
            point[i] = sweep_draw(&state, low[i], high[i], k->params[i].log_scale);
        char where[48];
        snprintf(where, sizeof where, "sweep (random draw %zu)", n);
        if (add_point(x, k, point, where) != 0)
            return -1;
    }
    return 0;
}

static int expand_random(struct expander *x, const struct catalog_kernel *k, json_t *sweep,
                         json_t *params)
{
    size_t max = x->opt->max_configs;
    json_t *cv = json_object_get(sweep, "count");
    char val[80];
    if (!cv || !json_is_integer(cv) || json_integer_value(cv) < 1 ||
        (uint64_t)json_integer_value(cv) > max) {
        if (cv)
            value_text(cv, val, sizeof val);
        member_error(x->err, "sweep.count", "%s%s: a random sweep needs the number of "
                                            "configurations to draw, an integer in [1, %zu] (%s)",
                     cv ? "count = " : "missing", cv ? val : "", max, x->limit);
        return -1;
    }
    size_t count = (size_t)json_integer_value(cv);
    uint64_t seed;
    int64_t low[CATALOG_MAX_PARAMS], high[CATALOG_MAX_PARAMS];
    if (parse_seed(x, sweep, &seed) != 0 || parse_ranges(x, k, params, low, high) != 0)
        return -1;
    return draw_random(x, k, count, seed, low, high);
}

/* ---- adaptive sweeps ---- */

/* An integer member of an adaptive sweep in [min, max]; what it is for goes
 * into the message. The bounds are printed as given, so a limit below the
 * minimum reads as the contradiction it is. */
static int adaptive_size(struct expander *x, json_t *sweep, const char *name, uint64_t min,
                         uint64_t max, const char *what, const char *max_name, uint64_t *out)
{
    json_t *v = json_object_get(sweep, name);
    char path[48], val[80];
    snprintf(path, sizeof path, "sweep.%s", name);
    if (v && json_is_integer(v) && json_integer_value(v) >= 0 &&
        (uint64_t)json_integer_value(v) >= min && (uint64_t)json_integer_value(v) <= max) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (v)
        value_text(v, val, sizeof val);
    member_error(x->err, path, "%s%s%s: an adaptive sweep needs %s, an integer in [%" PRIu64
                               ", %" PRIu64 "]%s%s%s",
                 v ? name : "missing", v ? " = " : "", v ? val : "", what, min, max,
                 max_name ? " (" : "", max_name ? max_name : "", max_name ? ")" : "");
    return -1;
}

/* A real member of an adaptive sweep in (0, max], def when absent. */
static int adaptive_real(struct expander *x, json_t *sweep, const char *name, double max,
                         double def, const char *what, double *out)
{
    json_t *v = json_object_get(sweep, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (json_is_number(v) && json_number_value(v) > 0.0 && json_number_value(v) <= max) {
        *out = json_number_value(v);
        return 0;
    }
    char path[48], val[80];
    snprintf(path, sizeof path, "sweep.%s", name);
    value_text(v, val, sizeof val);
    member_error(x->err, path, "%s = %s: %s, a number in (0, %g] (default %g)", name, val, what,
                 max, def);
    return -1;
}

static int expand_adaptive(struct expander *x, const struct catalog_kernel *k, json_t *sweep,
                           json_t *params)
{
    struct sweep_adaptive a;
    memset(&a, 0, sizeof a);
    uint64_t initial, per_round, rounds;
    if (adaptive_size(x, sweep, "initial", SWEEP_ADAPTIVE_MIN_INITIAL, x->opt->max_configs,
                      "the size of the random sample it starts from (fewer than "
                      "20 configurations cannot be trained on)",
                      x->limit, &initial) != 0 ||
        adaptive_size(x, sweep, "per_round", 1, x->opt->max_configs,
                      "the number of configurations each round proposes", x->limit,
                      &per_round) != 0 ||
        adaptive_size(x, sweep, "rounds", 1, SWEEP_ADAPTIVE_ROUNDS_MAX,
                      "the number of rounds after the initial sample", NULL, &rounds) != 0)
        return -1;
    if (adaptive_real(x, sweep, "threshold", 10.0, ADAPTIVE_THRESHOLD_DEFAULT,
                      "the relative latency error above which a held-out configuration is "
                      "sampled around",
                      &a.threshold) != 0 ||
        adaptive_real(x, sweep, "radius_log2", 4.0, ADAPTIVE_RADIUS_LOG2_DEFAULT,
                      "the neighbourhood of a proposal, log2 of the factor each parameter "
                      "may be scaled by",
                      &a.radius_log2) != 0)
        return -1;
    if (parse_seed(x, sweep, &a.seed) != 0 || parse_ranges(x, k, params, a.low, a.high) != 0)
        return -1;
    a.kernel = k;
    a.initial = (size_t)initial;
    a.per_round = (size_t)per_round;
    a.rounds = (unsigned)rounds;
    /* The initial sample is exactly the random sweep {"count": initial}. */
    if (draw_random(x, k, a.initial, a.seed, a.low, a.high) != 0)
        return -1;
    x->s->is_adaptive = true;
    x->s->adaptive = a;
    return 0;
}

static int expand_list(struct expander *x, const struct catalog_kernel *k, json_t *points)
{
    size_t max = x->opt->max_configs;
    if (!json_is_array(points) || json_array_size(points) == 0) {
        member_error(x->err, "sweep.points", "a list sweep needs a non-empty array of parameter "
                                             "objects such as {\"%s\": %" PRId64 ", ...}",
                     k->params[0].name, k->params[0].min);
        return -1;
    }
    size_t n = json_array_size(points);
    if (n > max) {
        member_error(x->err, "sweep.points", "%zu points are more than %s = %zu", n, x->limit, max);
        return -1;
    }
    if (grow(x, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *pt = json_array_get(points, i);
        char where[48];
        snprintf(where, sizeof where, "sweep.points[%zu]", i);
        if (!json_is_object(pt)) {
            member_error(x->err, where, "expected an object of %s's parameters", k->name);
            return -1;
        }
        if (check_param_names(k, pt, where, x->err) != 0)
            return -1;
        int64_t point[CATALOG_MAX_PARAMS] = {0};
        for (unsigned j = 0; j < k->param_count; j++) {
            char path[96];
            snprintf(path, sizeof path, "%s.%s", where, k->params[j].name);
            if (check_value(k, &k->params[j], json_object_get(pt, k->params[j].name), path,
                            &point[j], x->err) != 0)
                return -1;
        }
        if (add_point(x, k, point, where) != 0)
            return -1;
    }
    return 0;
}

static int expand_sweep(struct expander *x, json_t *sweep, bool have_dtype)
{
    char val[80];
    if (!json_is_object(sweep)) {
        member_error(x->err, "sweep", "expected an object such as {\"type\": \"grid\", "
                                      "\"kernel\": \"linear\", \"params\": {...}}");
        return -1;
    }
    json_t *tv = json_object_get(sweep, "type");
    const char *type = json_is_string(tv) ? json_string_value(tv) : "";
    const char *accepted = strcmp(type, "grid") == 0       ? grid_members
                           : strcmp(type, "random") == 0   ? random_members
                           : strcmp(type, "list") == 0     ? list_members
                           : strcmp(type, "adaptive") == 0 ? adaptive_members
                                                           : NULL;
    if (!accepted) {
        if (tv)
            value_text(tv, val, sizeof val);
        member_error(x->err, "sweep.type",
                     "%s: expected \"grid\", \"random\", \"list\" or \"adaptive\"",
                     tv ? val : "missing");
        return -1;
    }
    snprintf(x->s->kind, sizeof x->s->kind, "%s", type);
    if (check_members(sweep, accepted, "sweep", x->err) != 0)
        return -1;

    const struct catalog_kernel *k = find_kernel(json_object_get(sweep, "kernel"), "sweep.kernel",
                                                 x->err);
    if (!k)
        return -1;
    json_t *dv = json_object_get(sweep, "dtype");
    if (dv) {
        enum dtype d;
        if (parse_dtype(dv, "sweep.dtype", &d, x->err) != 0)
            return -1;
        if (have_dtype && d != x->s->dtype) {
            member_error(x->err, "sweep.dtype", "\"%s\" contradicts the top-level dtype \"%s\"; "
                                                "give one",
                         dtype_name(d), dtype_name(x->s->dtype));
            return -1;
        }
        x->s->dtype = d;
    }

    if (strcmp(type, "list") == 0)
        return expand_list(x, k, json_object_get(sweep, "points"));

    json_t *params = json_object_get(sweep, "params");
    if (!json_is_object(params)) {
        member_error(x->err, "sweep.params", "%s %s sweep needs an object with %s for every "
                                             "parameter of %s",
                     type[0] == 'a' ? "an" : "a", type,
                     strcmp(type, "grid") == 0 ? "a list of values" : "a [low, high] range",
                     k->name);
        return -1;
    }
    if (check_param_names(k, params, "sweep.params", x->err) != 0)
        return -1;
    if (strcmp(type, "grid") == 0)
        return expand_grid(x, k, params);
    if (strcmp(type, "adaptive") == 0)
        return expand_adaptive(x, k, sweep, params);
    return expand_random(x, k, sweep, params);
}

int sweep_spec_expand(json_t *body, const struct sweep_spec_options *opt, struct sweep_spec *s,
                      struct sweep_spec_error *err)
{
    struct expander x = {
        .opt = opt, .limit = opt->limit_name ? opt->limit_name : "the limit", .s = s, .err = err};
    memset(s, 0, sizeof *s);
    memset(err, 0, sizeof *err);
    s->dtype = DTYPE_FP32;
    char val[80];
    if (!json_is_object(body)) {
        set_error(err, SWEEP_SPEC_INVALID, NULL,
                  "the request body must be a JSON object with \"configs\" or \"sweep\"");
        return -1;
    }
    if (check_members(body, top_members, "", err) != 0)
        goto fail;
    json_t *configs = json_object_get(body, "configs"), *sweep = json_object_get(body, "sweep");
    if ((configs != NULL) == (sweep != NULL)) {
        set_error(err, SWEEP_SPEC_INVALID, configs ? "sweep" : "configs",
                  "give exactly one of \"configs\" (a list of configurations) or \"sweep\" "
                  "(grid, random, list or adaptive)%s",
                  configs ? ", not both" : "");
        goto fail;
    }
    json_t *dv = json_object_get(body, "dtype");
    if (dv && parse_dtype(dv, "dtype", &s->dtype, err) != 0)
        goto fail;
    json_t *rv = json_object_get(body, "repeats");
    if (rv) {
        json_int_t r = json_is_integer(rv) ? json_integer_value(rv) : 0;
        if (r < SWEEP_REPEATS_MIN || r > SWEEP_REPEATS_MAX) {
            value_text(rv, val, sizeof val);
            member_error(err, "repeats", "%s: expected an integer in [%d, %d]", val,
                         SWEEP_REPEATS_MIN, SWEEP_REPEATS_MAX);
            goto fail;
        }
        s->repeats = (unsigned)r;
    }
    json_t *xv = json_object_get(body, "repeat_existing");
    if (xv) {
        if (!json_is_boolean(xv)) {
            value_text(xv, val, sizeof val);
            member_error(err, "repeat_existing", "%s: expected true or false", val);
            goto fail;
        }
        s->repeat_existing = json_is_true(xv);
    }
    if (opt->max_configs == 0) {
        set_error(err, SWEEP_SPEC_INVALID, NULL, "%s is 0: no batch can be queued", x.limit);
        goto fail;
    }
    int rc;
    if (configs) {
        snprintf(s->kind, sizeof s->kind, "configs");
        rc = expand_configs(&x, configs, dv != NULL);
    } else {
        rc = expand_sweep(&x, sweep, dv != NULL);
    }
    if (rc == 0)
        return 0;
fail:
    sweep_spec_free(s);
    return -1;
}

void sweep_spec_free(struct sweep_spec *s)
{
    if (!s)
        return;
    free(s->configs);
    s->configs = NULL;
    s->count = 0;
}

/* ---- duplicates ---- */

/* Orders configurations by kernel, dtype and parameters; equal ones by place. */
static int compare_configs(const void *a, const void *b)
{
    const struct kernel_config *x = *(const struct kernel_config *const *)a;
    const struct kernel_config *y = *(const struct kernel_config *const *)b;
    if (x->kernel != y->kernel)
        return strcmp(x->kernel->name, y->kernel->name);
    if (x->dtype != y->dtype)
        return x->dtype < y->dtype ? -1 : 1;
    for (unsigned i = 0; i < x->kernel->param_count; i++)
        if (x->params[i] != y->params[i])
            return x->params[i] < y->params[i] ? -1 : 1;
    return x < y ? -1 : x > y; /* the same array: earlier first */
}

static bool same_config(const struct kernel_config *x, const struct kernel_config *y)
{
    if (x->kernel != y->kernel || x->dtype != y->dtype)
        return false;
    for (unsigned i = 0; i < x->kernel->param_count; i++)
        if (x->params[i] != y->params[i])
            return false;
    return true;
}

int sweep_spec_unique(struct sweep_spec *s, size_t *dropped)
{
    size_t n = s->count;
    if (dropped)
        *dropped = 0;
    if (n < 2)
        return 0;
    const struct kernel_config **order = malloc(n * sizeof *order);
    bool *dup = calloc(n, sizeof *dup);
    if (!order || !dup) {
        free(order);
        free(dup);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &s->configs[i];
    qsort(order, n, sizeof *order, compare_configs);
    /* Within a run of equal configurations the first in the spec sorts first. */
    for (size_t i = 1; i < n; i++)
        if (same_config(order[i], order[i - 1]))
            dup[order[i] - s->configs] = true;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!dup[i])
            s->configs[kept++] = s->configs[i];
    free(order);
    free(dup);
    if (dropped)
        *dropped = n - kept;
    s->count = kept;
    return 0;
}
