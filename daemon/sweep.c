/*
 * sweep.c - POST /v1/jobs bodies expanded into kernel configurations (see
 * sweep.h for the body forms).
 *
 * Every configuration, whatever form it came in, goes through
 * api_parse_kernel_config - the same strict check POST /v1/measure makes - so
 * a sweep can never queue what an ad-hoc measurement would refuse. The sweep
 * members are checked first and on their own (unknown parameters, empty or
 * inverted ranges, values outside the catalogue's range, sizes over
 * measure.max_batch_jobs) so that the 422 names the sweep member at fault
 * rather than one expanded point. Sizes are checked before anything is
 * allocated, so a huge grid costs nothing.
 */
#include "sweep.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_REPEATS_MIN 1
#define SWEEP_REPEATS_MAX 20
#define SWEEP_DEFAULT_SEED 1

/* Members accepted at each level, per form: an unknown one is a 422 listing these. */
static const char top_members[] = "configs, sweep, dtype, repeats, repeat_existing";
static const char grid_members[] = "type, kernel, dtype, params";
static const char random_members[] = "type, kernel, dtype, params, count, seed";
static const char list_members[] = "type, kernel, dtype, points";

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
    api_quote(s, buf, buflen);
    free(s);
}

static void oom(struct api_error *e)
{
    api_error_set(e, 500, "out of memory expanding the sweep");
}

/* A 422 about member path (e.g. "sweep.params.batch"): detail and parameter. */
static void member_error(struct api_error *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void member_error(struct api_error *e, const char *path, const char *fmt, ...)
{
    char detail[API_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    api_error_set(e, 422, "member '%s': %s", path, detail);
    api_error_param(e, path);
}

/* Prefixes an error from api_parse_kernel_config with where the config came from. */
static void locate_error(struct api_error *e, const char *where)
{
    char detail[API_DETAIL_MAX], param[sizeof e->parameter];
    snprintf(detail, sizeof detail, "%s", e->detail);
    snprintf(param, sizeof param, "%s", e->parameter);
    unsigned status = e->status;
    api_error_set(e, status, "%s: %s", where, detail);
    if (param[0]) {
        char path[160];
        snprintf(path, sizeof path, "%s.%s", where, param);
        api_error_param(e, path);
    } else {
        api_error_param(e, where);
    }
}

static int parse_dtype(json_t *v, const char *path, enum dtype *out, struct api_error *e)
{
    if (!json_is_string(v) || dtype_parse(json_string_value(v), out) != 0) {
        char val[80];
        value_text(v, val, sizeof val);
        member_error(e, path, "%s is not a dtype; expected \"fp32\" or \"fp16\"", val);
        return -1;
    }
    return 0;
}

/* Checks obj's members against the accepted list. */
static int check_members(json_t *obj, const char *accepted, const char *where, struct api_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (listed(accepted, key))
            continue;
        char q[80], path[160];
        api_quote(key, q, sizeof q);
        snprintf(path, sizeof path, "%s%s%s", where, where[0] ? "." : "", q);
        member_error(e, path, "unknown member; accepted members%s%s: %s", where[0] ? " of " : "",
                     where, accepted);
        return -1;
    }
    return 0;
}

static int grow(struct sweep *s, size_t capacity, struct api_error *e)
{
    s->configs = calloc(capacity ? capacity : 1, sizeof *s->configs);
    if (!s->configs) {
        oom(e);
        return -1;
    }
    return 0;
}

/* Parses config (a full kernel-config object) and appends it to s. */
static int add_config(struct sweep *s, json_t *config, uint64_t mem_free_bytes, const char *where,
                      struct api_error *e)
{
    unsigned repeats;
    struct kernel_config kc;
    if (api_parse_kernel_config(config, mem_free_bytes, &kc, &repeats, e) != 0) {
        locate_error(e, where);
        return -1;
    }
    s->configs[s->count++] = kc;
    return 0;
}

/* ---- {"configs": [...]} ---- */

static int expand_configs(json_t *list, size_t max_jobs, uint64_t mem_free_bytes, bool have_dtype,
                          struct sweep *s, struct api_error *e)
{
    if (!json_is_array(list) || json_array_size(list) == 0) {
        member_error(e, "configs", "expected a non-empty array of configurations such as "
                                   "{\"kernel\":\"linear\",\"batch\":8,\"in\":64,\"out\":64}");
        return -1;
    }
    size_t n = json_array_size(list);
    if (n > max_jobs) {
        member_error(e, "configs", "%zu configurations are more than measure.max_batch_jobs = %zu",
                     n, max_jobs);
        return -1;
    }
    if (grow(s, n, e) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof where, "configs[%zu]", i);
        json_t *c = json_array_get(list, i);
        if (json_is_object(c) && json_object_get(c, "repeats")) {
            char path[64];
            snprintf(path, sizeof path, "%s.repeats", where);
            member_error(e, path, "repeats are per batch: give \"repeats\" at the top level");
            return -1;
        }
        json_t *copy = NULL;
        if (have_dtype && json_is_object(c) && !json_object_get(c, "dtype")) {
            copy = json_copy(c);
            if (!copy || json_object_set_new(copy, "dtype",
                                             json_string(dtype_name(s->dtype))) != 0) {
                json_decref(copy);
                oom(e);
                return -1;
            }
        }
        int rc = add_config(s, copy ? copy : c, mem_free_bytes, where, e);
        json_decref(copy);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ---- sweeps over one kernel ---- */

/* A value of parameter p at member path: an integer within the catalogue's range. */
static int check_value(const struct catalog_kernel *k, const struct catalog_param *p, json_t *v,
                       const char *path, int64_t *out, struct api_error *e)
{
    char val[80];
    if (!json_is_integer(v)) {
        value_text(v, val, sizeof val);
        member_error(e, path, "%s is not an integer; parameter '%s' of %s takes integers in "
                              "[%" PRId64 ", %" PRId64 "]",
                     val, p->name, k->name, p->min, p->max);
        return -1;
    }
    int64_t x = (int64_t)json_integer_value(v);
    if (x < p->min || x > p->max) {
        member_error(e, path, "parameter '%s' = %" PRId64 " is outside %s's range [%" PRId64
                              ", %" PRId64 "]",
                     p->name, x, k->name, p->min, p->max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Every key of params is a parameter of k, and every parameter of k is there. */
static int check_param_names(const struct catalog_kernel *k, json_t *params, const char *where,
                             struct api_error *e)
{
    char names[160] = "";
    size_t used = 0;
    for (unsigned i = 0; i < k->param_count; i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         k->params[i].name);
        if (n > 0 && (size_t)n < sizeof names - used)
            used += (size_t)n;
    }
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        if (catalog_param_index(k, key) >= 0)
            continue;
        char q[80], path[160];
        api_quote(key, q, sizeof q);
        snprintf(path, sizeof path, "%s.%s", where, q);
        member_error(e, path, "unknown parameter '%s' for kernel %s; its parameters are %s", q,
                     k->name, names);
        return -1;
    }
    for (unsigned i = 0; i < k->param_count; i++) {
        if (json_object_get(params, k->params[i].name))
            continue;
        char path[160];
        snprintf(path, sizeof path, "%s.%s", where, k->params[i].name);
        member_error(e, path, "parameter '%s' of %s is missing: every parameter (%s) needs "
                              "values",
                     k->params[i].name, k->name, names);
        return -1;
    }
    return 0;
}

/* A point as the object api_parse_kernel_config reads. */
static json_t *point_json(const struct catalog_kernel *k, enum dtype d, const int64_t *values)
{
    json_t *o = json_pack("{s:s,s:s}", "kernel", k->name, "dtype", dtype_name(d));
    if (!o)
        return NULL;
    for (unsigned i = 0; i < k->param_count; i++) {
        if (json_object_set_new(o, k->params[i].name, json_integer(values[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static int add_point(struct sweep *s, const struct catalog_kernel *k, const int64_t *values,
                     uint64_t mem_free_bytes, const char *where, struct api_error *e)
{
    json_t *o = point_json(k, s->dtype, values);
    if (!o) {
        oom(e);
        return -1;
    }
    int rc = add_config(s, o, mem_free_bytes, where, e);
    json_decref(o);
    return rc;
}

static int expand_grid(const struct catalog_kernel *k, json_t *params, size_t max_jobs,
                       uint64_t mem_free_bytes, struct sweep *s, struct api_error *e)
{
    int64_t values[CATALOG_MAX_PARAMS][64];
    size_t counts[CATALOG_MAX_PARAMS] = {0};
    /* Values live in a fixed table per parameter; a grid axis longer than that
     * would be a sweep nobody means (64^3 points already). */
    const size_t axis_max = sizeof values[0] / sizeof values[0][0];
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
                member_error(e, path, "the list of values for '%s' is empty; give at least one "
                                      "integer in [%" PRId64 ", %" PRId64 "]",
                             p->name, p->min, p->max);
                return -1;
            }
            if (n > axis_max) {
                member_error(e, path, "%zu values for '%s'; a grid takes at most %zu per "
                                      "parameter",
                             n, p->name, axis_max);
                return -1;
            }
            for (size_t j = 0; j < n; j++) {
                char vpath[112];
                snprintf(vpath, sizeof vpath, "%s[%zu]", path, j);
                if (check_value(k, p, json_array_get(v, j), vpath, &values[i][j], e) != 0)
                    return -1;
            }
            counts[i] = n;
        } else {
            if (check_value(k, p, v, path, &values[i][0], e) != 0)
                return -1;
            counts[i] = 1;
        }
        int w = snprintf(product + used, sizeof product - used, "%s%zu", i ? " x " : "",
                         counts[i]);
        if (w > 0 && (size_t)w < sizeof product - used)
            used += (size_t)w;
        /* Overflow-safe: stop multiplying once past the limit. */
        if (total <= max_jobs)
            total = total > max_jobs / counts[i] ? max_jobs + 1 : total * counts[i];
    }
    if (total > max_jobs) {
        member_error(e, "sweep.params", "the grid has %s configurations, more than "
                                        "measure.max_batch_jobs = %zu",
                     product, max_jobs);
        return -1;
    }
    if (grow(s, total, e) != 0)
        return -1;
    size_t idx[CATALOG_MAX_PARAMS] = {0};
    int64_t point[CATALOG_MAX_PARAMS] = {0};
    for (size_t n = 0; n < total; n++) {
        for (unsigned i = 0; i < k->param_count; i++)
            point[i] = values[i][idx[i]];
        char where[48];
        snprintf(where, sizeof where, "sweep (grid point %zu)", n);
        if (add_point(s, k, point, mem_free_bytes, where, e) != 0)
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

static int expand_random(const struct catalog_kernel *k, json_t *sweep, json_t *params,
                         size_t max_jobs, uint64_t mem_free_bytes, struct sweep *s,
                         struct api_error *e)
{
    json_t *cv = json_object_get(sweep, "count");
    char val[80];
    if (!cv || !json_is_integer(cv) || json_integer_value(cv) < 1 ||
        (uint64_t)json_integer_value(cv) > max_jobs) {
        if (cv)
            value_text(cv, val, sizeof val);
        member_error(e, "sweep.count", "%s%s: a random sweep needs the number of configurations "
                                       "to draw, an integer in [1, %zu] (measure.max_batch_jobs)",
                     cv ? "count = " : "missing", cv ? val : "", max_jobs);
        return -1;
    }
    size_t count = (size_t)json_integer_value(cv);
    json_t *sv = json_object_get(sweep, "seed");
    uint64_t seed = SWEEP_DEFAULT_SEED;
    if (sv) {
        if (!json_is_integer(sv)) {
            value_text(sv, val, sizeof val);
            member_error(e, "sweep.seed", "%s is not an integer", val);
            return -1;
        }
        seed = (uint64_t)json_integer_value(sv);
    }

    int64_t low[CATALOG_MAX_PARAMS], high[CATALOG_MAX_PARAMS];
    for (unsigned i = 0; i < k->param_count; i++) {
        const struct catalog_param *p = &k->params[i];
        json_t *v = json_object_get(params, p->name);
        char path[96], bound[112];
        snprintf(path, sizeof path, "sweep.params.%s", p->name);
        if (!json_is_array(v)) {
            if (check_value(k, p, v, path, &low[i], e) != 0)
                return -1;
            high[i] = low[i];
            continue;
        }
        if (json_array_size(v) != 2) {
            value_text(v, val, sizeof val);
            member_error(e, path, "%s: %s range of '%s'; expected [low, high] within "
                                  "[%" PRId64 ", %" PRId64 "]",
                         val, json_array_size(v) == 0 ? "an empty" : "not a", p->name, p->min,
                         p->max);
            return -1;
        }
        snprintf(bound, sizeof bound, "%s[0]", path);
        if (check_value(k, p, json_array_get(v, 0), bound, &low[i], e) != 0)
            return -1;
        snprintf(bound, sizeof bound, "%s[1]", path);
        if (check_value(k, p, json_array_get(v, 1), bound, &high[i], e) != 0)
            return -1;
        if (low[i] > high[i]) {
            member_error(e, path, "the range [%" PRId64 ", %" PRId64 "] of '%s' is inverted "
                                  "(low > high)",
                         low[i], high[i], p->name);
            return -1;
        }
    }
    if (grow(s, count, e) != 0)
        return -1;
    uint64_t state = seed;
    int64_t point[CATALOG_MAX_PARAMS] = {0};
    for (size_t n = 0; n < count; n++) {
        for (unsigned i = 0; i < k->param_count; i++)
            point[i] = sweep_draw(&state, low[i], high[i], k->params[i].log_scale);
        char where[48];
        snprintf(where, sizeof where, "sweep (random draw %zu)", n);
        if (add_point(s, k, point, mem_free_bytes, where, e) != 0)
            return -1;
    }
    return 0;
}

static int expand_list(const struct catalog_kernel *k, json_t *points, size_t max_jobs,
                       uint64_t mem_free_bytes, struct sweep *s, struct api_error *e)
{
    if (!json_is_array(points) || json_array_size(points) == 0) {
        member_error(e, "sweep.points", "a list sweep needs a non-empty array of parameter "
                                        "objects such as {\"%s\": %" PRId64 ", ...}",
                     k->params[0].name, k->params[0].min);
        return -1;
    }
    size_t n = json_array_size(points);
    if (n > max_jobs) {
        member_error(e, "sweep.points", "%zu points are more than measure.max_batch_jobs = %zu",
                     n, max_jobs);
        return -1;
    }
    if (grow(s, n, e) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *pt = json_array_get(points, i);
        char where[48];
        snprintf(where, sizeof where, "sweep.points[%zu]", i);
        if (!json_is_object(pt)) {
            member_error(e, where, "expected an object of %s's parameters", k->name);
            return -1;
        }
        if (check_param_names(k, pt, where, e) != 0)
            return -1;
        int64_t point[CATALOG_MAX_PARAMS] = {0};
        for (unsigned j = 0; j < k->param_count; j++) {
            char path[96];
            snprintf(path, sizeof path, "%s.%s", where, k->params[j].name);
            if (check_value(k, &k->params[j], json_object_get(pt, k->params[j].name), path,
                            &point[j], e) != 0)
                return -1;
        }
        if (add_point(s, k, point, mem_free_bytes, where, e) != 0)
            return -1;
    }
    return 0;
}

static int expand_sweep(json_t *sweep, size_t max_jobs, uint64_t mem_free_bytes, bool have_dtype,
                        struct sweep *s, struct api_error *e)
{
    char val[80], kernels[256];
    if (!json_is_object(sweep)) {
        member_error(e, "sweep", "expected an object such as {\"type\": \"grid\", \"kernel\": "
                                 "\"linear\", \"params\": {...}}");
        return -1;
    }
    json_t *tv = json_object_get(sweep, "type");
    const char *type = json_is_string(tv) ? json_string_value(tv) : "";
    const char *accepted = strcmp(type, "grid") == 0     ? grid_members
                           : strcmp(type, "random") == 0 ? random_members
                           : strcmp(type, "list") == 0   ? list_members
                                                         : NULL;
    if (!accepted) {
        if (tv)
            value_text(tv, val, sizeof val);
        member_error(e, "sweep.type", "%s: expected \"grid\", \"random\" or \"list\"",
                     tv ? val : "missing");
        return -1;
    }
    snprintf(s->kind, sizeof s->kind, "%s", type);
    if (check_members(sweep, accepted, "sweep", e) != 0)
        return -1;

    json_t *kv = json_object_get(sweep, "kernel");
    const struct catalog_kernel *k = json_is_string(kv) ? catalog_find(json_string_value(kv)) : NULL;
    if (!k) {
        api_kernel_names(kernels, sizeof kernels);
        if (kv)
            value_text(kv, val, sizeof val);
        member_error(e, "sweep.kernel", "%s%s; the catalogue has %s",
                     kv ? "unknown kernel " : "missing", kv ? val : "", kernels);
        return -1;
    }
    json_t *dv = json_object_get(sweep, "dtype");
    if (dv) {
        enum dtype d;
        if (parse_dtype(dv, "sweep.dtype", &d, e) != 0)
            return -1;
        if (have_dtype && d != s->dtype) {
            member_error(e, "sweep.dtype", "\"%s\" contradicts the top-level dtype \"%s\"; give "
                                           "one",
                         dtype_name(d), dtype_name(s->dtype));
            return -1;
        }
        s->dtype = d;
    }

    if (strcmp(type, "list") == 0)
        return expand_list(k, json_object_get(sweep, "points"), max_jobs, mem_free_bytes, s, e);

    json_t *params = json_object_get(sweep, "params");
    if (!json_is_object(params)) {
        member_error(e, "sweep.params", "a %s sweep needs an object with %s for every "
                                        "parameter of %s",
                     type, strcmp(type, "grid") == 0 ? "a list of values" : "a [low, high] range",
                     k->name);
        return -1;
    }
    if (check_param_names(k, params, "sweep.params", e) != 0)
        return -1;
    if (strcmp(type, "grid") == 0)
        return expand_grid(k, params, max_jobs, mem_free_bytes, s, e);
    return expand_random(k, sweep, params, max_jobs, mem_free_bytes, s, e);
}

int sweep_expand(json_t *body, size_t max_jobs, uint64_t mem_free_bytes, struct sweep *s,
                 struct api_error *e)
{
    memset(s, 0, sizeof *s);
    memset(e, 0, sizeof *e);
    s->dtype = DTYPE_FP32;
    char val[80];
    if (!json_is_object(body)) {
        api_error_set(e, 422, "the request body must be a JSON object with \"configs\" or "
                              "\"sweep\"");
        return -1;
    }
    if (check_members(body, top_members, "", e) != 0)
        goto fail;
    json_t *configs = json_object_get(body, "configs"), *sweep = json_object_get(body, "sweep");
    if ((configs != NULL) == (sweep != NULL)) {
        api_error_set(e, 422, "give exactly one of \"configs\" (a list of configurations) or "
                              "\"sweep\" (grid, random or list)%s",
                      configs ? ", not both" : "");
        api_error_param(e, configs ? "sweep" : "configs");
        goto fail;
    }
    json_t *dv = json_object_get(body, "dtype");
    if (dv && parse_dtype(dv, "dtype", &s->dtype, e) != 0)
        goto fail;
    json_t *rv = json_object_get(body, "repeats");
    if (rv) {
        json_int_t r = json_is_integer(rv) ? json_integer_value(rv) : 0;
        if (r < SWEEP_REPEATS_MIN || r > SWEEP_REPEATS_MAX) {
            value_text(rv, val, sizeof val);
            member_error(e, "repeats", "%s: expected an integer in [%d, %d]", val,
                         SWEEP_REPEATS_MIN, SWEEP_REPEATS_MAX);
            goto fail;
        }
        s->repeats = (unsigned)r;
    }
    json_t *xv = json_object_get(body, "repeat_existing");
    if (xv) {
        if (!json_is_boolean(xv)) {
            value_text(xv, val, sizeof val);
            member_error(e, "repeat_existing", "%s: expected true or false", val);
            goto fail;
        }
        s->repeat_existing = json_is_true(xv);
    }
    if (max_jobs == 0) {
        api_error_set(e, 422, "measure.max_batch_jobs is 0: no batch can be queued");
        goto fail;
    }
    int rc;
    if (configs) {
        snprintf(s->kind, sizeof s->kind, "configs");
        rc = expand_configs(configs, max_jobs, mem_free_bytes, dv != NULL, s, e);
    } else {
        rc = expand_sweep(sweep, max_jobs, mem_free_bytes, dv != NULL, s, e);
    }
    if (rc == 0)
        return 0;
fail:
    sweep_free(s);
    return -1;
}

void sweep_free(struct sweep *s)
{
    if (!s)
        return;
    free(s->configs);
    s->configs = NULL;
    s->count = 0;
}
