/*
 * test_daemon_sweep.c - POST /v1/jobs bodies expanded into configurations
 * (daemon/sweep.c over cudakern/sweep.c): every form (configs, grid, random,
 * list, adaptive - its rounds' settings carried into struct sweep) with batch
 * dtype and repeats, the random sweep's determinism for a
 * seed and its log-uniform draws staying in range, every bad sweep answered
 * with a 422 naming the member, the parameter and the range, a bad config's
 * error from api_parse_kernel_config located in the body, and the memory
 * check. The expansion's own rules are tested in test_cudakern_sweep.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sweep.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

/* Expands text; asserts success. */
static void expand_ok(const char *text, size_t max_jobs, struct sweep *s)
{
    struct api_error e;
    json_t *body = parse(text);
    int rc = sweep_expand(body, max_jobs, 0, s, &e);
    json_decref(body);
    if (rc != 0)
        fail_msg("sweep_expand refused %s: %u %s", text, e.status, e.detail);
}

/* Expands text; asserts a 422 whose detail holds every needle and whose
 * parameter is param (NULL: not checked). */
static void expand_bad(const char *text, size_t max_jobs, const char *param, ...)
{
    struct api_error e;
    struct sweep s;
    json_t *body = parse(text);
    int rc = sweep_expand(body, max_jobs, 0, &s, &e);
    json_decref(body);
    if (rc == 0) {
        sweep_free(&s);
        fail_msg("sweep_expand accepted %s", text);
    }
    assert_int_equal(e.status, 422);
    assert_null(s.configs);
    assert_int_equal(s.count, 0);
    if (param && strcmp(e.parameter, param) != 0)
        fail_msg("parameter '%s', wanted '%s' (detail: %s)", e.parameter, param, e.detail);
    va_list ap;
    va_start(ap, param);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL) {
        if (!strstr(e.detail, needle))
            fail_msg("detail lacks '%s': %s", needle, e.detail);
    }
    va_end(ap);
}

static void key_of(const struct kernel_config *c, char *buf, size_t len)
{
    assert_true(catalog_config_key(c, buf, len) > 0);
}

/* ---- forms ---- */

static void test_configs(void **state)
{
    (void)state;
    struct sweep s;
    expand_ok("{\"configs\": [{\"kernel\": \"linear\", \"batch\": 8, \"in\": 64, \"out\": 32},"
              " {\"kernel\": \"layernorm\", \"rows\": 4, \"cols\": 16, \"dtype\": \"fp32\"}],"
              " \"dtype\": \"fp16\", \"repeats\": 2, \"repeat_existing\": true}",
              100, &s);
    assert_string_equal(s.kind, "configs");
    assert_int_equal(s.count, 2);
    assert_int_equal(s.repeats, 2);
    assert_true(s.repeat_existing);
    char key[160];
    key_of(&s.configs[0], key, sizeof key);
    assert_string_equal(key, "linear:fp16:batch=8,in=64,out=32"); /* the batch's dtype */
    key_of(&s.configs[1], key, sizeof key);
    assert_string_equal(key, "layernorm:fp32:rows=4,cols=16"); /* its own */
    sweep_free(&s);
}

static void test_grid(void **state)
{
    (void)state;
    struct sweep s;
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear_relu\", \"dtype\": \"fp16\","
              " \"params\": {\"batch\": [8, 16], \"in\": [64, 128], \"out\": [64]}}}",
              100, &s);
    assert_string_equal(s.kind, "grid");
    assert_int_equal(s.count, 4);
    assert_false(s.repeat_existing);
    assert_int_equal(s.repeats, 0);
    static const char *const want[] = {
        "linear_relu:fp16:batch=8,in=64,out=64", "linear_relu:fp16:batch=8,in=128,out=64",
        "linear_relu:fp16:batch=16,in=64,out=64", "linear_relu:fp16:batch=16,in=128,out=64"};
    for (size_t i = 0; i < 4; i++) {
        char key[160];
        key_of(&s.configs[i], key, sizeof key);
        assert_string_equal(key, want[i]);
    }
    sweep_free(&s);

    /* A single integer is a one-value axis; exactly max_jobs is allowed. */
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"layernorm\","
              " \"params\": {\"rows\": [1, 2, 3], \"cols\": 8}}}",
              3, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.dtype, DTYPE_FP32);
    assert_int_equal(s.configs[2].params[0], 3);
    assert_int_equal(s.configs[2].params[1], 8);
    sweep_free(&s);
}

static void test_random(void **state)
{
    (void)state;
    const char *body = "{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 500,"
                       " \"seed\": 1, \"params\": {\"batch\": [1, 512], \"in\": [8, 4096],"
                       " \"out\": 64}}, \"dtype\": \"fp16\"}";
    struct sweep a, b;
    expand_ok(body, 1000, &a);
    expand_ok(body, 1000, &b);
    assert_string_equal(a.kind, "random");
    assert_int_equal(a.count, 500);
    assert_int_equal(b.count, 500);
    size_t distinct_batch = 0;
    for (size_t i = 0; i < a.count; i++) {
        /* Same seed, same configurations. */
        assert_memory_equal(a.configs[i].params, b.configs[i].params, sizeof a.configs[i].params);
        assert_int_equal(a.configs[i].dtype, DTYPE_FP16);
        assert_in_range(a.configs[i].params[0], 1, 512);
        assert_in_range(a.configs[i].params[1], 8, 4096);
        assert_int_equal(a.configs[i].params[2], 64);
        if (i > 0 && a.configs[i].params[0] != a.configs[0].params[0])
            distinct_batch++;
    }
    assert_true(distinct_batch > 100);
    sweep_free(&b);

    /* Another seed, other configurations. */
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 500,"
              " \"seed\": 2, \"params\": {\"batch\": [1, 512], \"in\": [8, 4096],"
              " \"out\": 64}}, \"dtype\": \"fp16\"}",
              1000, &b);
    size_t same = 0;
    for (size_t i = 0; i < a.count; i++)
        same += memcmp(a.configs[i].params, b.configs[i].params, sizeof a.configs[i].params) == 0;
    assert_true(same < 50);
    sweep_free(&a);
    sweep_free(&b);
}

static void test_random_log_uniform(void **state)
{
    (void)state;
    /* The generator and the draws themselves are tested in
     * test_cudakern_sweep.c; here, a random layernorm over the whole rows
     * range through the daemon's sweep. */
    struct sweep s;
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"layernorm\", \"count\": 300,"
              " \"params\": {\"rows\": [1, 1048576], \"cols\": [2, 16]}}}",
              1000, &s);
    int small = 0;
    for (size_t i = 0; i < s.count; i++) {
        assert_in_range(s.configs[i].params[0], 1, 1048576);
        assert_in_range(s.configs[i].params[1], 2, 16);
        small += s.configs[i].params[0] <= 1024;
    }
    assert_true(small > 100); /* half in log space; ~0.1% if drawn uniformly */
    sweep_free(&s);

    /* sweep.h still gives the generator (from cudakern/sweep.h): splitmix64's
     * published first output for seed 0. */
    uint64_t z = 0;
    assert_true(sweep_splitmix64(&z) == 0xE220A8397B1DCDAFull);
}

static void test_list(void **state)
{
    (void)state;
    struct sweep s;
    expand_ok("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"dtype\": \"fp16\","
              " \"points\": [{\"rows\": 8, \"cols\": 64}, {\"rows\": 16, \"cols\": 32}]},"
              " \"repeats\": 5}",
              10, &s);
    assert_string_equal(s.kind, "list");
    assert_int_equal(s.count, 2);
    assert_int_equal(s.repeats, 5);
    char key[160];
    key_of(&s.configs[1], key, sizeof key);
    assert_string_equal(key, "layernorm:fp16:rows=16,cols=32");
    sweep_free(&s);
}

/* ---- bad bodies ---- */

static void test_bad_top_level(void **state)
{
    (void)state;
    expand_bad("[1, 2]", 10, NULL, "JSON object", NULL);
    expand_bad("{}", 10, "configs", "exactly one of", NULL);
    expand_bad("{\"configs\": [], \"sweep\": {}}", 10, "sweep", "not both", NULL);
    expand_bad("{\"configs\": [{}], \"colour\": 1}", 10, "colour", "unknown member",
               "repeat_existing", NULL);
    expand_bad("{\"configs\": [], \"repeats\": 0}", 10, "repeats", "[1, 20]", NULL);
    expand_bad("{\"configs\": [], \"repeat_existing\": 1}", 10, "repeat_existing",
               "true or false", NULL);
    expand_bad("{\"configs\": [], \"dtype\": \"fp64\"}", 10, "dtype", "fp64", "fp16", NULL);
    expand_bad("{\"configs\": []}", 10, "configs", "non-empty", NULL);
    expand_bad("{\"configs\": 3}", 10, "configs", "non-empty", NULL);
    expand_bad("{\"configs\": [{\"kernel\": \"linear\", \"batch\": 1, \"in\": 1, \"out\": 1},"
               " {\"kernel\": \"linear\", \"batch\": 2, \"in\": 1, \"out\": 1}]}",
               1, "configs", "2 configurations", "max_batch_jobs = 1", NULL);
    /* A bad config names its index and, through api_parse_kernel_config, the range. */
    expand_bad("{\"configs\": [{\"kernel\": \"linear\", \"batch\": 1, \"in\": 1, \"out\": 1},"
               " {\"kernel\": \"linear\", \"batch\": 0, \"in\": 1, \"out\": 1}]}",
               10, "configs[1].batch", "configs[1]", "[1, 65536]", NULL);
    expand_bad("{\"configs\": [{\"kernel\": \"conv9\"}]}", 10, "configs[0].kernel", "conv9",
               "linear", NULL);
    expand_bad("{\"configs\": [{\"kernel\": \"linear\", \"batch\": 1, \"in\": 1, \"out\": 1,"
               " \"repeats\": 2}]}",
               10, "configs[0].repeats", "per batch", NULL);
}

static void test_bad_sweeps(void **state)
{
    (void)state;
    expand_bad("{\"sweep\": 1}", 10, "sweep", "expected an object", NULL);
    expand_bad("{\"sweep\": {\"kernel\": \"linear\"}}", 10, "sweep.type", "grid", "random",
               NULL);
    expand_bad("{\"sweep\": {\"type\": \"spiral\"}}", 10, "sweep.type", "spiral", NULL);
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"nope\", \"params\": {}}}", 10,
               "sweep.kernel", "nope", "linear_relu", NULL);
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"params\": {}}}", 10, "sweep.kernel",
               "missing", NULL);
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {}}}",
               10, "sweep.count", "unknown member", "type, kernel, dtype, params", NULL);
    /* unknown parameter */
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [1], \"in\": [1], \"out\": [1], \"depth\": [2]}}}",
               10, "sweep.params.depth", "unknown parameter 'depth'", "batch, in, out", NULL);
    /* missing parameter */
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [1], \"in\": [1]}}}",
               10, "sweep.params.out", "'out'", "missing", NULL);
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\"}}", 10, "sweep.params",
               "list of values", NULL);
    /* empty list of values */
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [], \"in\": [1], \"out\": [1]}}}",
               10, "sweep.params.batch", "empty", "[1, 65536]", NULL);
    /* value outside the catalogue's range, and not an integer */
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [1, 70000], \"in\": [1], \"out\": [1]}}}",
               10, "sweep.params.batch[1]", "70000", "linear's range [1, 65536]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [1], \"in\": [\"8\"], \"out\": [1]}}}",
               10, "sweep.params.in[0]", "not an integer", NULL);
    /* a grid larger than max_batch_jobs (3 x 2 x 2 = 12 > 10), and one whose product overflows */
    expand_bad("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
               " {\"batch\": [1, 2, 3], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.params", "3 x 2 x 2", "max_batch_jobs = 10", NULL);
    char big[4096];
    int used = snprintf(big, sizeof big, "{\"sweep\": {\"type\": \"grid\", \"kernel\": "
                                         "\"attention\", \"params\": {");
    const struct catalog_kernel *att = catalog_find("attention");
    assert_non_null(att);
    for (unsigned p = 0; p < att->param_count; p++) {
        used += snprintf(big + used, sizeof big - (size_t)used, "%s\"%s\": [", p ? ", " : "",
                         att->params[p].name);
        for (int v = 1; v <= 60; v++)
            used += snprintf(big + used, sizeof big - (size_t)used, "%s%d", v > 1 ? "," : "", v);
        used += snprintf(big + used, sizeof big - (size_t)used, "]");
    }
    snprintf(big + used, sizeof big - (size_t)used, "}}}");
    expand_bad(big, 10000000, "sweep.params", "60 x 60", "max_batch_jobs", NULL);

    /* random: count 0, count over the maximum, missing count, empty and inverted
     * ranges, a bound outside the catalogue, a bad seed */
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 0,"
               " \"params\": {\"batch\": [1, 2], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.count", "count = 0", "[1, 10]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 11,"
               " \"params\": {\"batch\": [1, 2], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.count", "count = 11", "max_batch_jobs", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\","
               " \"params\": {\"batch\": [1, 2], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.count", "missing", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {\"batch\": [], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.params.batch", "empty range", "[low, high]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {\"batch\": [1, 2, 3], \"in\": [1, 2], \"out\": [1, 2]}}}",
               10, "sweep.params.batch", "not a range", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {\"batch\": [1, 2], \"in\": [512, 8], \"out\": [1, 2]}}}",
               10, "sweep.params.in", "[512, 8]", "inverted", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {\"batch\": [1, 2], \"in\": [1, 2], \"out\": [0, 2]}}}",
               10, "sweep.params.out[0]", "'out' = 0", "[1, 65536]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"seed\": \"x\", \"params\": {\"batch\": 1, \"in\": 1, \"out\": 1}}}",
               10, "sweep.seed", "not an integer", NULL);
    expand_bad("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
               " \"params\": {\"batch\": [1, 2], \"width\": [1, 2], \"in\": 1, \"out\": 1}}}",
               10, "sweep.params.width", "unknown parameter", NULL);

    /* list: empty, not objects, unknown/missing parameter, out of range, too many */
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\": []}}", 10,
               "sweep.points", "non-empty", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\": [3]}}", 10,
               "sweep.points[0]", "object", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\":"
               " [{\"rows\": 1, \"cols\": 2, \"depth\": 1}]}}",
               10, "sweep.points[0].depth", "unknown parameter", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\":"
               " [{\"rows\": 1, \"cols\": 2}, {\"rows\": 1}]}}",
               10, "sweep.points[1].cols", "missing", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\":"
               " [{\"rows\": 0, \"cols\": 2}]}}",
               10, "sweep.points[0].rows", "'rows' = 0", "[1, 1048576]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"points\":"
               " [{\"rows\": 1, \"cols\": 2}, {\"rows\": 2, \"cols\": 2}]}}",
               1, "sweep.points", "max_batch_jobs = 1", NULL);
    expand_bad("{\"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\", \"params\": {}}}", 10,
               "sweep.params", "unknown member", NULL);
    /* dtype in both places, disagreeing */
    expand_bad("{\"dtype\": \"fp32\", \"sweep\": {\"type\": \"list\", \"kernel\": \"layernorm\","
               " \"dtype\": \"fp16\", \"points\": [{\"rows\": 1, \"cols\": 2}]}}",
               10, "sweep.dtype", "contradicts", NULL);
}

static void test_adaptive(void **state)
{
    (void)state;
    /* The daemon's sweep carries the adaptive rounds' settings from
     * cudakern/sweep.c; its configurations are the initial random sample, each
     * through api_parse_kernel_config. */
    struct sweep a, r;
    expand_ok("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear_relu\", \"seed\": 3,"
              " \"params\": {\"batch\": [1, 64], \"in\": 128, \"out\": [8, 512]},"
              " \"initial\": 24, \"per_round\": 6, \"rounds\": 4, \"threshold\": 0.2,"
              " \"radius_log2\": 0.75}, \"dtype\": \"fp16\", \"repeats\": 2}",
              100, &a);
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear_relu\", \"seed\": 3,"
              " \"params\": {\"batch\": [1, 64], \"in\": 128, \"out\": [8, 512]},"
              " \"count\": 24}, \"dtype\": \"fp16\"}",
              100, &r);
    assert_string_equal(a.kind, "adaptive");
    assert_true(a.is_adaptive);
    assert_false(r.is_adaptive);
    assert_int_equal(a.count, 24);
    assert_int_equal(a.repeats, 2);
    assert_int_equal(a.dtype, DTYPE_FP16);
    for (size_t i = 0; i < a.count; i++)
        assert_memory_equal(&a.configs[i], &r.configs[i], sizeof a.configs[i]);
    assert_ptr_equal(a.adaptive.kernel, catalog_find("linear_relu"));
    assert_int_equal(a.adaptive.initial, 24);
    assert_int_equal(a.adaptive.per_round, 6);
    assert_int_equal(a.adaptive.rounds, 4);
    assert_true(a.adaptive.threshold == 0.2);
    assert_true(a.adaptive.radius_log2 == 0.75);
    assert_true(a.adaptive.seed == 3);
    assert_int_equal(a.adaptive.low[0], 1);
    assert_int_equal(a.adaptive.high[0], 64);
    assert_int_equal(a.adaptive.low[1], 128);
    assert_int_equal(a.adaptive.high[1], 128);
    assert_int_equal(a.adaptive.low[2], 8);
    assert_int_equal(a.adaptive.high[2], 512);
    sweep_free(&a);
    sweep_free(&r);

    /* The other forms are not adaptive. */
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 3,"
              " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8}}}",
              10, &r);
    assert_false(r.is_adaptive);
    sweep_free(&r);

    /* A bad adaptive member is a 422 naming it; the initial sample against
     * max_batch_jobs; an initial sample the memory check refuses names the draw. */
    expand_bad("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
               " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8},"
               " \"initial\": 20, \"per_round\": 5, \"rounds\": 30}}",
               100, "sweep.rounds", "rounds = 30", "[1, 20]", NULL);
    expand_bad("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
               " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8},"
               " \"initial\": 40, \"per_round\": 5, \"rounds\": 3}}",
               30, "sweep.initial", "initial = 40", "max_batch_jobs", NULL);
    expand_bad("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
               " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8},"
               " \"initial\": 20, \"per_round\": 5, \"rounds\": 3, \"threshold\": 0}}",
               30, "sweep.threshold", "threshold = 0", "(0, 10]", NULL);
    /* every round's jobs count against measure.max_batch_jobs: 20 + 3 x 5 = 35 */
    expand_bad("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
               " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8},"
               " \"initial\": 20, \"per_round\": 5, \"rounds\": 3}}",
               34, "sweep.per_round", "20 initial configurations and 3 rounds of 5",
               "measure.max_batch_jobs = 34", NULL);
    expand_ok("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
              " \"params\": {\"batch\": [1, 4], \"in\": 8, \"out\": 8},"
              " \"initial\": 20, \"per_round\": 5, \"rounds\": 3}}",
              35, &r);
    sweep_free(&r);
    struct api_error e;
    struct sweep s;
    json_t *body = parse("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\","
                         " \"params\": {\"batch\": [65536, 65536], \"in\": 65536, \"out\": 65536},"
                         " \"initial\": 20, \"per_round\": 5, \"rounds\": 3}}");
    assert_int_equal(sweep_expand(body, 100, 64ull * 1024 * 1024, &s, &e), -1);
    json_decref(body);
    assert_int_equal(e.status, 422);
    assert_non_null(strstr(e.detail, "random draw 0"));
    assert_null(s.configs);
    assert_false(s.is_adaptive);
}

static void test_memory_limit(void **state)
{
    (void)state;
    /* A configuration larger than the free memory is refused, naming the point. */
    struct api_error e;
    struct sweep s;
    json_t *body = parse("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear\", \"params\":"
                         " {\"batch\": [1, 65536], \"in\": [65536], \"out\": [65536]}}}");
    assert_int_equal(sweep_expand(body, 10, 64ull * 1024 * 1024, &s, &e), -1);
    json_decref(body);
    assert_int_equal(e.status, 422);
    assert_non_null(strstr(e.detail, "grid point 0"));
    assert_null(s.configs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configs),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_log_uniform),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_adaptive),
        cmocka_unit_test(test_bad_top_level),
        cmocka_unit_test(test_bad_sweeps),
        cmocka_unit_test(test_memory_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
