/*
 * test_cudakern_sweep.c - sweep specs expanded over the catalogue
 * (cudakern/sweep.c), the part the daemon's POST /v1/jobs and the client's
 * fleet submit --shard share: grid order, the random sweep's seeded draws
 * (pinned, so a board and a workstation can never drift apart) and their
 * log-uniform and uniform spread, repeated configurations counted once by
 * sweep_spec_unique, the caller's parser seeing every configuration, the
 * default parser, and bad specs refused naming the member; the adaptive
 * sweep's initial sample (the random sweep's draws), its members and
 * defaults, and every one of its checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudakern/sweep.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

static struct sweep_spec_options options(size_t max)
{
    return (struct sweep_spec_options){.max_configs = max, .limit_name = "test.max"};
}

/* Expands text with the default parser; asserts success. */
static void expand_ok(const char *text, size_t max, struct sweep_spec *s)
{
    struct sweep_spec_error err;
    struct sweep_spec_options opt = options(max);
    json_t *body = parse(text);
    int rc = sweep_spec_expand(body, &opt, s, &err);
    json_decref(body);
    if (rc != 0)
        fail_msg("sweep_spec_expand refused %s: %s", text, err.detail);
    assert_int_equal(err.status, SWEEP_SPEC_OK);
}

/* A spec that must be refused as invalid: the member named, a needle in the detail. */
struct bad_case {
    const char *body;
    size_t max;
    const char *member;
    const char *needle;
};

static void check_bad(const struct bad_case *c)
{
    struct sweep_spec_error err;
    struct sweep_spec s;
    struct sweep_spec_options opt = options(c->max);
    json_t *body = parse(c->body);
    int rc = sweep_spec_expand(body, &opt, &s, &err);
    json_decref(body);
    if (rc == 0) {
        sweep_spec_free(&s);
        fail_msg("sweep_spec_expand accepted %s", c->body);
    }
    assert_int_equal(err.status, SWEEP_SPEC_INVALID);
    assert_null(s.configs);
    assert_int_equal(s.count, 0);
    if (strcmp(err.member, c->member) != 0)
        fail_msg("member '%s', wanted '%s' (detail: %s)", err.member, c->member, err.detail);
    if (!strstr(err.detail, c->needle))
        fail_msg("detail lacks '%s': %s", c->needle, err.detail);
}

static void assert_key(const struct kernel_config *c, const char *want)
{
    char key[160];
    assert_true(catalog_config_key(c, key, sizeof key) > 0);
    assert_string_equal(key, want);
}

/* ---- forms and order ---- */

static void test_grid_order(void **state)
{
    (void)state;
    struct sweep_spec s;
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"linear_relu\", \"dtype\": \"fp16\","
              " \"params\": {\"out\": [64, 32], \"in\": [64, 128], \"batch\": [8, 16]}},"
              " \"repeats\": 4}",
              100, &s);
    assert_string_equal(s.kind, "grid");
    assert_int_equal(s.dtype, DTYPE_FP16);
    assert_int_equal(s.repeats, 4);
    assert_false(s.repeat_existing);
    assert_int_equal(s.count, 8);
    /* An odometer over the catalogue's parameter order (batch, in, out), the
     * last fastest, each axis in the order written - not the spec's key order. */
    static const char *const want[] = {
        "linear_relu:fp16:batch=8,in=64,out=64",   "linear_relu:fp16:batch=8,in=64,out=32",
        "linear_relu:fp16:batch=8,in=128,out=64",  "linear_relu:fp16:batch=8,in=128,out=32",
        "linear_relu:fp16:batch=16,in=64,out=64",  "linear_relu:fp16:batch=16,in=64,out=32",
        "linear_relu:fp16:batch=16,in=128,out=64", "linear_relu:fp16:batch=16,in=128,out=32"};
    for (size_t i = 0; i < 8; i++)
        assert_key(&s.configs[i], want[i]);
    sweep_spec_free(&s);
    assert_null(s.configs);

    /* A single integer is a one-value axis; exactly the limit is allowed. */
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"layernorm\","
              " \"params\": {\"rows\": [3, 1, 2], \"cols\": 8}}}",
              3, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.dtype, DTYPE_FP32);
    assert_key(&s.configs[0], "layernorm:fp32:rows=3,cols=8");
    assert_key(&s.configs[2], "layernorm:fp32:rows=2,cols=8");
    sweep_spec_free(&s);
}

static void test_configs_and_list(void **state)
{
    (void)state;
    struct sweep_spec s;
    /* as written, in order; the top-level dtype for those without their own */
    expand_ok("{\"repeat_existing\": false, \"dtype\": \"fp16\", \"configs\": ["
              "{\"kernel\": \"softmax\", \"rows\": 3, \"cols\": 7, \"dtype\": \"fp32\"},"
              "{\"kernel\": \"concat\", \"cols_b\": 5, \"rows\": 2, \"cols_a\": 9}]}",
              2, &s);
    assert_string_equal(s.kind, "configs");
    assert_int_equal(s.dtype, DTYPE_FP16);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.repeats, 0);
    assert_false(s.repeat_existing);
    assert_key(&s.configs[0], "softmax:fp32:rows=3,cols=7");
    assert_key(&s.configs[1], "concat:fp16:rows=2,cols_a=9,cols_b=5");
    sweep_spec_free(&s);

    /* the top-level dtype applies to a sweep too; points as written */
    expand_ok("{\"dtype\": \"fp16\", \"repeat_existing\": true, \"sweep\": {\"type\": \"list\","
              " \"kernel\": \"concat\", \"points\": [{\"cols_b\": 1, \"cols_a\": 2, \"rows\": 3},"
              " {\"rows\": 1, \"cols_a\": 2, \"cols_b\": 3}]}}",
              10, &s);
    assert_string_equal(s.kind, "list");
    assert_true(s.repeat_existing);
    assert_int_equal(s.count, 2);
    assert_key(&s.configs[0], "concat:fp16:rows=3,cols_a=2,cols_b=1");
    assert_key(&s.configs[1], "concat:fp16:rows=1,cols_a=2,cols_b=3");
    sweep_spec_free(&s);
}

/* ---- random sweeps ---- */

static void test_random_reproducible(void **state)
{
    (void)state;
    /* Pinned: what the daemon has always expanded from this body. A change here
     * changes every random sweep a user has already run. */
    const char *body = "{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"count\": 6,"
                       " \"seed\": 7, \"params\": {\"batch\": [1, 512], \"in\": [8, 4096],"
                       " \"out\": [16, 64]}}}";
    static const char *const want[] = {
        "linear:fp32:batch=11,in=8,out=56",      "linear:fp32:batch=38,in=134,out=22",
        "linear:fp32:batch=18,in=61,out=19",     "linear:fp32:batch=13,in=15,out=61",
        "linear:fp32:batch=307,in=1835,out=53",  "linear:fp32:batch=30,in=1933,out=25"};
    struct sweep_spec a;
    expand_ok(body, 1000, &a);
    assert_string_equal(a.kind, "random");
    assert_int_equal(a.count, 6);
    for (size_t i = 0; i < 6; i++)
        assert_key(&a.configs[i], want[i]);
    sweep_spec_free(&a);

    /* The same body, the same configurations; the default seed is 1; another
     * seed, other configurations. Fixed parameters stay fixed. */
    const char *fmt = "{\"sweep\": {\"type\": \"random\", \"kernel\": \"tokenizer\", \"count\": 400"
                      "%s, \"params\": {\"batch\": [1, 256], \"features\": 12, \"d\": [8, 512]}},"
                      " \"dtype\": \"fp16\"}";
    static const char *const seeds[] = {"", ", \"seed\": 1", ", \"seed\": 1", ", \"seed\": 2"};
    struct sweep_spec runs[4];
    for (size_t r = 0; r < 4; r++) {
        char text[512];
        snprintf(text, sizeof text, fmt, seeds[r]);
        expand_ok(text, 400, &runs[r]);
        assert_int_equal(runs[r].count, 400);
    }
    size_t same_seed_2 = 0;
    for (size_t i = 0; i < 400; i++) {
        const struct kernel_config *c = &runs[0].configs[i];
        assert_int_equal(c->dtype, DTYPE_FP16);
        assert_in_range(c->params[0], 1, 256);
        assert_int_equal(c->params[1], 12);
        assert_in_range(c->params[2], 8, 512);
        assert_memory_equal(c, &runs[1].configs[i], sizeof *c);
        assert_memory_equal(c, &runs[2].configs[i], sizeof *c);
        same_seed_2 += memcmp(c, &runs[3].configs[i], sizeof *c) == 0;
    }
    assert_true(same_seed_2 < 40);
    for (size_t r = 0; r < 4; r++)
        sweep_spec_free(&runs[r]);
}

static void test_draw(void **state)
{
    (void)state;
    /* splitmix64's published first output for seed 0. */
    uint64_t z = 0;
    assert_true(sweep_splitmix64(&z) == 0xE220A8397B1DCDAFull);

    /* Log-uniform over [1, 4096]: about half the draws fall below sqrt(4097) ~ 64;
     * a uniform draw would put 1.5% there. Fixed seed: deterministic. */
    uint64_t st = 42;
    int below = 0, n = 4000;
    bool hit_low = false, hit_high = false;
    for (int i = 0; i < n; i++) {
        int64_t v = sweep_draw(&st, 1, 4096, true);
        assert_in_range(v, 1, 4096);
        below += v < 64;
        hit_low |= v == 1;
        hit_high |= v >= 3000;
    }
    assert_in_range(below, n * 4 / 10, n * 6 / 10);
    assert_true(hit_low);
    assert_true(hit_high);

    /* Uniform: about a quarter below a quarter of the range. */
    st = 42;
    below = 0;
    for (int i = 0; i < n; i++) {
        int64_t v = sweep_draw(&st, 1, 4096, false);
        assert_in_range(v, 1, 4096);
        below += v <= 1024;
    }
    assert_in_range(below, n * 2 / 10, n * 3 / 10);

    /* Degenerate and extreme ranges stay in range; a fixed value still
     * advances the generator (so fixing a parameter does not shift the others). */
    st = 7;
    for (int i = 0; i < 1000; i++) {
        uint64_t before = st;
        assert_int_equal(sweep_draw(&st, 5, 5, true), 5);
        assert_true(st != before);
        int64_t v = sweep_draw(&st, 1, 2, true);
        assert_in_range(v, 1, 2);
        v = sweep_draw(&st, 1048575, 1048576, true);
        assert_in_range(v, 1048575, 1048576);
        v = sweep_draw(&st, INT64_MIN, INT64_MAX, false);
        (void)v; /* the whole range: any value */
        v = sweep_draw(&st, -3, 3, true); /* log scale needs low >= 1: uniform */
        assert_in_range(v + 3, 0, 6);
    }
}

/* ---- repeated configurations ---- */

static void test_duplicates_counted_once(void **state)
{
    (void)state;
    /* 16 draws over 4 x 2 configurations must repeat; pinned like the above. */
    struct sweep_spec s;
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"add\", \"count\": 16, \"seed\": 7,"
              " \"params\": {\"rows\": [1, 4], \"cols\": [2, 3]}}}",
              100, &s);
    assert_int_equal(s.count, 16); /* every draw is returned ... */
    assert_key(&s.configs[3], "add:fp32:rows=2,cols=2");
    size_t dropped = 99;
    assert_int_equal(sweep_spec_unique(&s, &dropped), 0);
    /* ... and each configuration kept once, at its first place */
    static const char *const want[] = {"add:fp32:rows=1,cols=2", "add:fp32:rows=4,cols=2",
                                       "add:fp32:rows=2,cols=2", "add:fp32:rows=1,cols=3",
                                       "add:fp32:rows=4,cols=3", "add:fp32:rows=2,cols=3"};
    assert_int_equal(s.count, 6);
    assert_int_equal(dropped, 10);
    for (size_t i = 0; i < 6; i++)
        assert_key(&s.configs[i], want[i]);
    assert_int_equal(sweep_spec_unique(&s, &dropped), 0); /* idempotent */
    assert_int_equal(dropped, 0);
    assert_int_equal(s.count, 6);
    sweep_spec_free(&s);

    /* Explicit configs: the same kernel and parameters in another dtype, or
     * another kernel with the same parameters, are not repeats. */
    expand_ok("{\"configs\": ["
              "{\"kernel\": \"add\", \"rows\": 2, \"cols\": 2},"
              "{\"kernel\": \"add\", \"rows\": 2, \"cols\": 2, \"dtype\": \"fp16\"},"
              "{\"kernel\": \"add_relu\", \"rows\": 2, \"cols\": 2},"
              "{\"kernel\": \"add\", \"cols\": 2, \"rows\": 2, \"dtype\": \"fp32\"},"
              "{\"kernel\": \"add_relu\", \"rows\": 2, \"cols\": 2}]}",
              100, &s);
    assert_int_equal(sweep_spec_unique(&s, NULL), 0);
    assert_int_equal(s.count, 3);
    assert_key(&s.configs[0], "add:fp32:rows=2,cols=2");
    assert_key(&s.configs[1], "add:fp16:rows=2,cols=2");
    assert_key(&s.configs[2], "add_relu:fp32:rows=2,cols=2");
    sweep_spec_free(&s);

    /* Nothing to drop: unchanged. */
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"add\","
              " \"params\": {\"rows\": [1, 2], \"cols\": [1, 2]}}}",
              100, &s);
    assert_int_equal(sweep_spec_unique(&s, &dropped), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(s.count, 4);
    sweep_spec_free(&s);
}

/* ---- the caller's parser ---- */

struct seen {
    size_t calls;
    size_t refuse_at; /* SIZE_MAX: never */
    char where[8][48];
    json_t *configs; /* what it was handed */
};

static int record_parser(void *ctx, json_t *config, const char *where, struct kernel_config *kc)
{
    struct seen *s = ctx;
    size_t i = s->calls++;
    if (i < 8)
        snprintf(s->where[i], sizeof s->where[i], "%s", where);
    json_array_append(s->configs, config);
    if (i == s->refuse_at)
        return -1;
    struct sweep_spec_error err;
    return sweep_parse_config(config, where, kc, &err);
}

static void expand_with_parser(const char *text, struct seen *seen, struct sweep_spec *s,
                               struct sweep_spec_error *err, int want_rc)
{
    struct sweep_spec_options opt = options(100);
    opt.parse = record_parser;
    opt.parse_ctx = seen;
    json_t *body = parse(text);
    assert_int_equal(sweep_spec_expand(body, &opt, s, err), want_rc);
    json_decref(body);
}

static void test_parser_hook(void **state)
{
    (void)state;
    struct sweep_spec s;
    struct sweep_spec_error err;
    struct seen seen = {.refuse_at = SIZE_MAX, .configs = json_array()};

    /* Every point of a sweep goes through it, as an object of the kernel, the
     * sweep's dtype and every parameter, with where it came from. */
    expand_with_parser("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"add\", \"dtype\": \"fp16\","
                       " \"params\": {\"rows\": [1, 2], \"cols\": 3}}}",
                       &seen, &s, &err, 0);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(s.count, 2);
    assert_string_equal(seen.where[0], "sweep (grid point 0)");
    assert_string_equal(seen.where[1], "sweep (grid point 1)");
    json_t *want = parse("{\"kernel\": \"add\", \"dtype\": \"fp16\", \"rows\": 2, \"cols\": 3}");
    assert_true(json_equal(json_array_get(seen.configs, 1), want));
    json_decref(want);
    sweep_spec_free(&s);

    /* Explicit configs: as written, the top-level dtype added where none is given. */
    seen.calls = 0;
    json_array_clear(seen.configs);
    expand_with_parser("{\"dtype\": \"fp16\", \"configs\": ["
                       "{\"kernel\": \"add\", \"rows\": 1, \"cols\": 1},"
                       "{\"kernel\": \"add\", \"rows\": 1, \"cols\": 1, \"dtype\": \"fp32\"}]}",
                       &seen, &s, &err, 0);
    assert_int_equal(seen.calls, 2);
    assert_string_equal(seen.where[1], "configs[1]");
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen.configs, 0),
                                                          "dtype")),
                        "fp16");
    assert_string_equal(json_string_value(json_object_get(json_array_get(seen.configs, 1),
                                                          "dtype")),
                        "fp32");
    sweep_spec_free(&s);

    /* A refusal stops the expansion: its own error, the place as the member. */
    seen.calls = 0;
    seen.refuse_at = 2;
    expand_with_parser("{\"sweep\": {\"type\": \"random\", \"kernel\": \"add\", \"count\": 5,"
                       " \"params\": {\"rows\": [1, 9], \"cols\": [1, 9]}}}",
                       &seen, &s, &err, -1);
    assert_int_equal(err.status, SWEEP_SPEC_REFUSED);
    assert_string_equal(err.member, "sweep (random draw 2)");
    assert_int_equal(seen.calls, 3);
    assert_null(s.configs);
    assert_int_equal(s.count, 0);

    seen.calls = 0;
    seen.refuse_at = 1;
    expand_with_parser("{\"sweep\": {\"type\": \"list\", \"kernel\": \"add\", \"points\":"
                       " [{\"rows\": 1, \"cols\": 1}, {\"rows\": 2, \"cols\": 1}]}}",
                       &seen, &s, &err, -1);
    assert_int_equal(err.status, SWEEP_SPEC_REFUSED);
    assert_string_equal(err.member, "sweep.points[1]");

    /* The sweep's own members are checked before any configuration is parsed. */
    seen.calls = 0;
    seen.refuse_at = SIZE_MAX;
    expand_with_parser("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"add\","
                       " \"params\": {\"rows\": [1, 2], \"cols\": [0]}}}",
                       &seen, &s, &err, -1);
    assert_int_equal(err.status, SWEEP_SPEC_INVALID);
    assert_string_equal(err.member, "sweep.params.cols[0]");
    assert_int_equal(seen.calls, 0);
    json_decref(seen.configs);
}

/* ---- the default parser and the configuration's object ---- */

static void parse_bad(const char *text, const char *member, const char *needle)
{
    struct kernel_config kc;
    struct sweep_spec_error err;
    json_t *c = parse(text);
    int rc = sweep_parse_config(c, "configs[4]", &kc, &err);
    json_decref(c);
    if (rc == 0)
        fail_msg("sweep_parse_config accepted %s", text);
    assert_int_equal(err.status, SWEEP_SPEC_INVALID);
    if (strcmp(err.member, member) != 0)
        fail_msg("member '%s', wanted '%s' (detail: %s)", err.member, member, err.detail);
    if (!strstr(err.detail, needle))
        fail_msg("detail lacks '%s': %s", needle, err.detail);
}

static void test_parse_config(void **state)
{
    (void)state;
    struct kernel_config kc;
    struct sweep_spec_error err;
    json_t *c = parse("{\"kernel\": \"attention\", \"dtype\": \"fp16\", \"batch\": 2,"
                      " \"tokens\": 16, \"heads\": 4, \"head_dim\": 32}");
    assert_int_equal(sweep_parse_config(c, "x", &kc, &err), 0);
    json_decref(c);
    assert_key(&kc, "attention:fp16:batch=2,tokens=16,heads=4,head_dim=32");
    /* sweep_config_json gives the object back, which parses to the same configuration */
    json_t *o = sweep_config_json(&kc);
    assert_non_null(o);
    json_t *want = parse("{\"kernel\": \"attention\", \"dtype\": \"fp16\", \"batch\": 2,"
                         " \"tokens\": 16, \"heads\": 4, \"head_dim\": 32}");
    assert_true(json_equal(o, want));
    json_decref(want);
    struct kernel_config back;
    assert_int_equal(sweep_parse_config(o, "x", &back, &err), 0);
    assert_memory_equal(&back, &kc, sizeof kc);
    json_decref(o);

    parse_bad("3", "configs[4]", "expected an object");
    parse_bad("{\"batch\": 1}", "configs[4].kernel", "missing");
    parse_bad("{\"kernel\": \"conv9\"}", "configs[4].kernel", "unknown kernel \"conv9\"");
    parse_bad("{\"kernel\": \"add\", \"rows\": 1, \"cols\": 1, \"repeats\": 2}",
              "configs[4].repeats", "accepted members: kernel, dtype, rows, cols");
    parse_bad("{\"kernel\": \"add\", \"rows\": 1, \"cols\": 1, \"dtype\": \"fp64\"}",
              "configs[4].dtype", "\"fp64\" is not a dtype");
    parse_bad("{\"kernel\": \"add\", \"rows\": 1}", "configs[4].cols", "'cols' of add is missing");
    parse_bad("{\"kernel\": \"add\", \"rows\": 0, \"cols\": 1}", "configs[4].rows",
              "'rows' = 0 is outside add's range [1, 1048576]");
    parse_bad("{\"kernel\": \"add\", \"rows\": 1.5, \"cols\": 1}", "configs[4].rows",
              "1.5 is not an integer");
}

/* ---- bad specs ---- */

static void test_bad_top_level(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"configs\"", 10, "", "JSON object"},
        {"{\"dtype\": \"fp16\"}", 10, "configs", "exactly one of"},
        {"{\"sweep\": 1, \"configs\": 1}", 10, "sweep", ", not both"},
        {"{\"sweep\": {}, \"seed\": 1}", 10, "seed", "accepted members: configs, sweep, dtype"},
        {"{\"sweep\": {}, \"repeats\": 21}", 10, "repeats", "21: expected an integer in [1, 20]"},
        {"{\"sweep\": {}, \"repeats\": \"3\"}", 10, "repeats", "[1, 20]"},
        {"{\"sweep\": {}, \"repeat_existing\": \"yes\"}", 10, "repeat_existing", "true or false"},
        {"{\"sweep\": {}, \"dtype\": \"bf16\"}", 10, "dtype", "\"bf16\" is not a dtype"},
        {"{\"configs\": [{\"kernel\": \"add\", \"rows\": 1, \"cols\": 1}]}", 0, "",
         "test.max is 0"},
        {"{\"configs\": {}}", 10, "configs", "non-empty array"},
        {"{\"configs\": [{\"kernel\": \"softmax\", \"rows\": 1, \"cols\": 2},"
         " {\"kernel\": \"softmax\", \"rows\": 2, \"cols\": 2},"
         " {\"kernel\": \"softmax\", \"rows\": 3, \"cols\": 2}]}",
         2, "configs", "3 configurations are more than test.max = 2"},
        {"{\"configs\": [{\"kernel\": \"softmax\", \"rows\": 1, \"cols\": 2, \"repeats\": 3}]}",
         10, "configs[0].repeats", "per batch"},
        {"{\"configs\": [{\"kernel\": \"softmax\", \"rows\": 1, \"cols\": 2},"
         " {\"kernel\": \"softmax\", \"rows\": 1, \"cols\": 1}]}",
         10, "configs[1].cols", "outside softmax's range [2, 65536]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);

    /* Without a limit name the messages still make sense. */
    struct sweep_spec s;
    struct sweep_spec_error err;
    struct sweep_spec_options opt = {.max_configs = 1};
    json_t *body = parse("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"add\","
                         " \"params\": {\"rows\": [1, 2], \"cols\": 1}}}");
    assert_int_equal(sweep_spec_expand(body, &opt, &s, &err), -1);
    json_decref(body);
    assert_non_null(strstr(err.detail, "2 x 1 configurations, more than the limit = 1"));
}

static void test_bad_sweeps(void **state)
{
    (void)state;
#define SWEEP(type, rest) "{\"sweep\": {\"type\": \"" type "\", \"kernel\": \"concat\", " rest "}}"
#define GRID(params) SWEEP("grid", "\"params\": " params)
#define RANDOM(rest) SWEEP("random", rest)
#define LIST(points) SWEEP("list", "\"points\": " points)
#define FIXED "{\"rows\": 1, \"cols_a\": 1, \"cols_b\": 1}"
    static const struct bad_case cases[] = {
        {"{\"sweep\": []}", 10, "sweep", "expected an object"},
        {"{\"sweep\": {\"kernel\": \"concat\"}}", 10, "sweep.type", "missing: expected"},
        {"{\"sweep\": {\"type\": 3}}", 10, "sweep.type", "3: expected \"grid\""},
        {"{\"sweep\": {\"type\": \"list\", \"kernel\": \"conv\", \"points\": []}}", 10,
         "sweep.kernel", "unknown kernel \"conv\"; the catalogue has linear"},
        {"{\"sweep\": {\"type\": \"random\", \"count\": 1, \"params\": {}}}", 10, "sweep.kernel",
         "missing"},
        {"{\"sweep\": {\"type\": \"list\", \"kernel\": \"concat\", \"params\": {}}}", 10,
         "sweep.params", "accepted members of sweep: type, kernel, dtype, points"},
        {"{\"sweep\": {\"type\": \"grid\", \"kernel\": \"concat\", \"dtype\": 16, \"params\": {}}}",
         10, "sweep.dtype", "16 is not a dtype"},
        {"{\"dtype\": \"fp16\", \"sweep\": {\"type\": \"grid\", \"kernel\": \"concat\","
         " \"dtype\": \"fp32\", \"params\": {}}}",
         10, "sweep.dtype", "\"fp32\" contradicts the top-level dtype \"fp16\""},
        /* grids */
        {GRID("[]"), 10, "sweep.params", "a grid sweep needs an object with a list of values"},
        {GRID("{\"rows\": 1, \"cols_a\": 1, \"cols_b\": 1, \"cols_c\": 1}"), 10,
         "sweep.params.cols_c", "its parameters are rows, cols_a, cols_b"},
        {GRID("{\"rows\": 1, \"cols_a\": 1}"), 10, "sweep.params.cols_b",
         "every parameter (rows, cols_a, cols_b) needs values"},
        {GRID("{\"rows\": 1, \"cols_a\": [], \"cols_b\": 1}"), 10, "sweep.params.cols_a",
         "the list of values for 'cols_a' is empty"},
        {GRID("{\"rows\": 1, \"cols_a\": [1, 2, 65537], \"cols_b\": 1}"), 10,
         "sweep.params.cols_a[2]", "'cols_a' = 65537 is outside concat's range"},
        {GRID("{\"rows\": 1, \"cols_a\": 1, \"cols_b\": true}"), 10, "sweep.params.cols_b",
         "true is not an integer"},
        {GRID("{\"rows\": [1, 2], \"cols_a\": [1, 2, 3], \"cols_b\": [1, 2]}"), 11, "sweep.params",
         "the grid has 2 x 3 x 2 configurations, more than test.max = 11"},
        /* random sweeps */
        {RANDOM("\"count\": -1, \"params\": " FIXED), 10, "sweep.count",
         "count = -1: a random sweep needs"},
        {RANDOM("\"count\": 11, \"params\": " FIXED), 10, "sweep.count", "[1, 10] (test.max)"},
        {RANDOM("\"params\": " FIXED), 10, "sweep.count", "missing"},
        {RANDOM("\"count\": 2, \"seed\": 1.5, \"params\": " FIXED), 10, "sweep.seed",
         "1.5 is not an integer"},
        {RANDOM("\"count\": 2, \"params\": {\"rows\": [], \"cols_a\": 1, \"cols_b\": 1}"), 10,
         "sweep.params.rows", "an empty range of 'rows'"},
        {RANDOM("\"count\": 2, \"params\": {\"rows\": [4], \"cols_a\": 1, \"cols_b\": 1}"), 10,
         "sweep.params.rows", "not a range of 'rows'"},
        {RANDOM("\"count\": 2, \"params\": {\"rows\": [9, 3], \"cols_a\": 1, \"cols_b\": 1}"), 10,
         "sweep.params.rows", "the range [9, 3] of 'rows' is inverted"},
        {RANDOM("\"count\": 2, \"params\": {\"rows\": [1, 3], \"cols_a\": [0, 1], \"cols_b\": 1}"),
         10, "sweep.params.cols_a[0]", "'cols_a' = 0"},
        /* list sweeps */
        {LIST("{}"), 10, "sweep.points", "such as {\"rows\": 1, ...}"},
        {LIST("[{\"rows\": 1, \"cols_a\": 1, \"cols_b\": 1}, []]"), 10, "sweep.points[1]",
         "expected an object of concat's parameters"},
        {LIST("[{\"rows\": 1, \"cols_a\": 1, \"cols_b\": 1, \"cols\": 1}]"), 10,
         "sweep.points[0].cols", "unknown parameter 'cols'"},
        {LIST("[{\"rows\": 1, \"cols_a\": 1, \"cols_b\": null}]"), 10, "sweep.points[0].cols_b",
         "null is not an integer"},
        {LIST("[{\"rows\": 1, \"cols_a\": 1, \"cols_b\": 1}, {\"rows\": 2, \"cols_a\": 1,"
              " \"cols_b\": 1}, {\"rows\": 3, \"cols_a\": 1, \"cols_b\": 1}]"),
         2, "sweep.points", "3 points are more than test.max = 2"},
        /* what the client wrote is quoted, escaped, in the message */
        {"{\"sweep\": {\"type\": \"grid\", \"kernel\": \"li\\u00f1ear\", \"params\": {}}}", 10,
         "sweep.kernel", "\"li\\xc3\\xb1ear\""},
    };
#undef SWEEP
#undef GRID
#undef RANDOM
#undef LIST
#undef FIXED
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);

    /* an axis longer than a grid takes */
    char axis[1024];
    int used = snprintf(axis, sizeof axis, "{\"sweep\": {\"type\": \"grid\", \"kernel\": "
                                           "\"add\", \"params\": {\"cols\": 1, \"rows\": [");
    for (int v = 1; v <= SWEEP_GRID_AXIS_MAX + 1; v++)
        used += snprintf(axis + used, sizeof axis - (size_t)used, "%s%d", v > 1 ? "," : "", v);
    snprintf(axis + used, sizeof axis - (size_t)used, "]}}}");
    const struct bad_case long_axis = {axis, 100000, "sweep.params.rows", "65 values for 'rows'"};
    check_bad(&long_axis);
}

/* ---- adaptive sweeps ---- */

static void test_adaptive(void **state)
{
    (void)state;
    /* The initial sample is exactly what the random sweep {"count": initial}
     * with the same kernel, params and seed draws. */
    struct sweep_spec a, r;
    expand_ok("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"linear\", \"seed\": 7,"
              " \"dtype\": \"fp16\", \"params\": {\"batch\": [1, 512], \"in\": [8, 4096],"
              " \"out\": 64}, \"initial\": 40, \"per_round\": 15, \"rounds\": 3,"
              " \"threshold\": 0.25, \"radius_log2\": 1}}",
              100, &a);
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"linear\", \"seed\": 7,"
              " \"dtype\": \"fp16\", \"count\": 40, \"params\": {\"batch\": [1, 512],"
              " \"in\": [8, 4096], \"out\": 64}}}",
              100, &r);
    assert_string_equal(a.kind, "adaptive");
    assert_true(a.is_adaptive);
    assert_false(r.is_adaptive);
    assert_int_equal(a.count, 40);
    assert_int_equal(a.dtype, DTYPE_FP16);
    for (size_t i = 0; i < 40; i++)
        assert_memory_equal(&a.configs[i], &r.configs[i], sizeof a.configs[i]);
    const struct sweep_adaptive *ad = &a.adaptive;
    assert_ptr_equal(ad->kernel, catalog_find("linear"));
    assert_int_equal(ad->initial, 40);
    assert_int_equal(ad->per_round, 15);
    assert_int_equal(ad->rounds, 3);
    assert_true(ad->threshold == 0.25);
    assert_true(ad->radius_log2 == 1.0);
    assert_true(ad->seed == 7);
    /* catalogue order batch, in, out; a single value is a range of one */
    assert_int_equal(ad->low[0], 1);
    assert_int_equal(ad->high[0], 512);
    assert_int_equal(ad->low[1], 8);
    assert_int_equal(ad->high[1], 4096);
    assert_int_equal(ad->low[2], 64);
    assert_int_equal(ad->high[2], 64);
    sweep_spec_free(&a);
    sweep_spec_free(&r);

    /* Defaults: threshold 0.1, radius 0.5, seed 1 (the random sweep's default,
     * so the sample is still the random sweep's); the extremes are accepted. */
    expand_ok("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\","
              " \"params\": {\"cols\": [2, 64], \"rows\": [8, 8]}, \"initial\": 20,"
              " \"per_round\": 20, \"rounds\": 20}}",
              20, &a);
    expand_ok("{\"sweep\": {\"type\": \"random\", \"kernel\": \"layernorm\","
              " \"params\": {\"cols\": [2, 64], \"rows\": 8}, \"count\": 20}}",
              20, &r);
    assert_true(a.is_adaptive);
    assert_int_equal(a.count, 20);
    for (size_t i = 0; i < 20; i++)
        assert_memory_equal(&a.configs[i], &r.configs[i], sizeof a.configs[i]);
    assert_true(a.adaptive.threshold == 0.1);
    assert_true(a.adaptive.radius_log2 == 0.5);
    assert_true(a.adaptive.seed == SWEEP_DEFAULT_SEED);
    assert_int_equal(a.adaptive.rounds, SWEEP_ADAPTIVE_ROUNDS_MAX);
    assert_int_equal(a.adaptive.low[0], 8);
    assert_int_equal(a.adaptive.high[0], 8);
    assert_int_equal(a.adaptive.low[1], 2);
    assert_int_equal(a.adaptive.high[1], 64);
    assert_int_equal(a.dtype, DTYPE_FP32);
    sweep_spec_free(&a);
    sweep_spec_free(&r);

    expand_ok("{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"softmax\","
              " \"params\": {\"rows\": [1, 64], \"cols\": [2, 64]}, \"initial\": 25,"
              " \"per_round\": 1, \"rounds\": 1, \"threshold\": 10, \"radius_log2\": 4},"
              " \"dtype\": \"fp16\"}",
              30, &a);
    assert_true(a.adaptive.threshold == 10.0);
    assert_true(a.adaptive.radius_log2 == 4.0);
    assert_int_equal(a.adaptive.per_round, 1);
    assert_int_equal(a.dtype, DTYPE_FP16);
    assert_int_equal(a.configs[0].dtype, DTYPE_FP16);
    sweep_spec_free(&a);

    /* The other forms say they are not adaptive. */
    expand_ok("{\"sweep\": {\"type\": \"grid\", \"kernel\": \"add\","
              " \"params\": {\"rows\": [1, 2], \"cols\": 1}}}",
              10, &a);
    assert_false(a.is_adaptive);
    sweep_spec_free(&a);
}

static void test_bad_adaptive(void **state)
{
    (void)state;
#define ADAPT(rest)                                                                           \
    "{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\", \"params\": "          \
    "{\"rows\": [1, 64], \"cols\": [2, 64]}" rest "}}"
#define SIZES "\"initial\": 20, \"per_round\": 5, \"rounds\": 2"
    static const struct bad_case cases[] = {
        /* initial */
        {ADAPT(", \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial", "missing"},
        {ADAPT(", \"initial\": 19, \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial",
         "initial = 19: an adaptive sweep needs the size of the random sample"},
        {ADAPT(", \"initial\": 101, \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial",
         "[20, 100] (test.max)"},
        {ADAPT(", \"initial\": 30, \"per_round\": 5, \"rounds\": 2"), 25, "sweep.initial",
         "initial = 30"},
        {ADAPT(", \"initial\": -3, \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial",
         "initial = -3"},
        {ADAPT(", \"initial\": 20.5, \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial",
         "initial = 20.5"},
        {ADAPT(", \"initial\": \"40\", \"per_round\": 5, \"rounds\": 2"), 100, "sweep.initial",
         "initial = \"40\""},
        /* per_round */
        {ADAPT(", \"initial\": 20, \"rounds\": 2"), 100, "sweep.per_round", "missing"},
        {ADAPT(", \"initial\": 20, \"per_round\": 0, \"rounds\": 2"), 100, "sweep.per_round",
         "per_round = 0: an adaptive sweep needs the number of configurations each round"},
        {ADAPT(", \"initial\": 20, \"per_round\": 101, \"rounds\": 2"), 100, "sweep.per_round",
         "[1, 100] (test.max)"},
        {ADAPT(", \"initial\": 20, \"per_round\": null, \"rounds\": 2"), 100, "sweep.per_round",
         "per_round = null"},
        /* rounds */
        {ADAPT(", \"initial\": 20, \"per_round\": 5"), 100, "sweep.rounds", "missing"},
        {ADAPT(", \"initial\": 20, \"per_round\": 5, \"rounds\": 0"), 100, "sweep.rounds",
         "rounds = 0: an adaptive sweep needs the number of rounds"},
        {ADAPT(", \"initial\": 20, \"per_round\": 5, \"rounds\": 21"), 100, "sweep.rounds",
         "[1, 20]"},
        {ADAPT(", \"initial\": 20, \"per_round\": 5, \"rounds\": true"), 100, "sweep.rounds",
         "rounds = true"},
        /* threshold */
        {ADAPT(", " SIZES ", \"threshold\": 0"), 100, "sweep.threshold",
         "threshold = 0: the relative latency error"},
        {ADAPT(", " SIZES ", \"threshold\": -0.5"), 100, "sweep.threshold", "(0, 10]"},
        {ADAPT(", " SIZES ", \"threshold\": 10.5"), 100, "sweep.threshold",
         "threshold = 10.5"},
        {ADAPT(", " SIZES ", \"threshold\": \"0.1\""), 100, "sweep.threshold",
         "threshold = \"0.1\""},
        /* radius_log2 */
        {ADAPT(", " SIZES ", \"radius_log2\": 0.0"), 100, "sweep.radius_log2",
         "radius_log2 = 0.0: the neighbourhood"},
        {ADAPT(", " SIZES ", \"radius_log2\": 4.01"), 100, "sweep.radius_log2", "(0, 4]"},
        {ADAPT(", " SIZES ", \"radius_log2\": [1]"), 100, "sweep.radius_log2",
         "radius_log2 = [1]"},
        /* seed, params: as a random sweep */
        {ADAPT(", " SIZES ", \"seed\": 1.5"), 100, "sweep.seed", "1.5 is not an integer"},
        {"{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\", \"params\": "
         "{\"rows\": [64, 1], \"cols\": [2, 64]}, " SIZES "}}",
         100, "sweep.params.rows", "the range [64, 1] of 'rows' is inverted"},
        {"{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\", \"params\": "
         "{\"rows\": [1, 64], \"cols\": [1, 64]}, " SIZES "}}",
         100, "sweep.params.cols[0]", "'cols' = 1 is outside layernorm's range"},
        {"{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\", " SIZES "}}", 100,
         "sweep.params", "an adaptive sweep needs an object with a [low, high] range"},
        {"{\"sweep\": {\"type\": \"adaptive\", \"kernel\": \"layernorm\", \"params\": "
         "{\"rows\": [1, 64]}, " SIZES "}}",
         100, "sweep.params.cols", "parameter 'cols' of layernorm is missing"},
        /* members of the other forms */
        {ADAPT(", " SIZES ", \"count\": 40"), 100, "sweep.count",
         "accepted members of sweep: type, kernel, dtype, params, initial, per_round, rounds, "
         "threshold, radius_log2, seed"},
        {ADAPT(", " SIZES ", \"points\": []"), 100, "sweep.points", "unknown member"},
        {"{\"sweep\": {\"type\": \"adaptiv\", \"kernel\": \"layernorm\"}}", 100, "sweep.type",
         "expected \"grid\", \"random\", \"list\" or \"adaptive\""},
    };
#undef ADAPT
#undef SIZES
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_order),
        cmocka_unit_test(test_configs_and_list),
        cmocka_unit_test(test_random_reproducible),
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_duplicates_counted_once),
        cmocka_unit_test(test_parser_hook),
        cmocka_unit_test(test_parse_config),
        cmocka_unit_test(test_bad_top_level),
        cmocka_unit_test(test_bad_sweeps),
        cmocka_unit_test(test_adaptive),
        cmocka_unit_test(test_bad_adaptive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
