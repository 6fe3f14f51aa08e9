/*
 * test_predict_estimate_text.c - estimate_graph_text (predict/estimate.c), the
 * daemon's writer of estimates as text, against the tree estimate_graph builds
 * printed by jansson with the daemon's flags (JSON_COMPACT |
 * JSON_REAL_PRECISION(12)): byte for byte, for every fixture graph with merge on
 * and off, with predictions spread over the whole double range (so every branch
 * of the exact 12-digit printing meets snprintf's answer: fixed and exponent
 * forms, rounding ties, carries to the next power of ten, negative numbers,
 * zeros, subnormals, NaN and infinities as null), rails that repeat a name, node
 * names that need escapes, board-input "sum" and no GPU rail; answers appended
 * after each other (a batch); errors (bad graph, missing models) leaving the
 * buffer as it was; and the text buffer's own appends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict/estimate.h"

#define GRAPH_DIR "tests/fixtures/graphs"
#define DAEMON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

/* ---- a predictor with awkward numbers ---- */

struct wild_ctx {
    uint64_t rng;
    unsigned rails;           /* how many rails each prediction has */
    bool repeat_rail_name;    /* the third rail reuses the first one's name */
    const char *missing;      /* a kernel type "without a model" */
};

static uint64_t next(struct wild_ctx *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

/* A double from one of several families, each hitting a branch of the printer. */
static double wild(struct wild_ctx *c)
{
    uint64_t u = next(c);
    switch (u % 12) {
    case 0: { /* any finite bit pattern */
        double x;
        uint64_t bits = next(c);
        memcpy(&x, &bits, sizeof x);
        return isfinite(x) ? x : 1.0;
    }
    case 1: /* a 13-digit decimal ending in 5: near or at a rounding tie */
        return (double)((int64_t)(next(c) % 9000000000000ull + 1000000000000ull) / 10 * 10 + 5) *
               pow(10.0, (double)((int)(next(c) % 30) - 20));
    case 2: /* just below a power of ten: rounds up to the next one */
        return 9.9999999999996 * pow(10.0, (double)((int)(next(c) % 40) - 20));
    case 3: return -(double)(next(c) >> 11) / 9007199254740992.0 * 1e4; /* negative */
    case 4: return (double)(float)((double)(next(c) >> 11) / 9007199254740992.0 * 20000.0);
    case 5: return (double)(int64_t)(next(c) % 2000000) ; /* integral: "1234.0" */
    case 6: return u % 2 ? 0.0 : -0.0;
    case 7: return 5e-324 * (double)(next(c) % 1000 + 1); /* subnormal */
    case 8: return u % 3 == 0 ? NAN : u % 3 == 1 ? INFINITY : -INFINITY;
    case 9: return 1e-5 * (double)(next(c) % 100000); /* around the fixed/exponent edge */
    case 10: return 1e11 * (double)(next(c) % 100 + 1) / 7.0; /* 12 digits before the point */
    default: return (double)(next(c) >> 11) / 9007199254740992.0 * pow(10.0, (double)((int)(next(c) % 60) - 30));
    }
}

static int wild_predict(void *ctx, const struct kernel_config *cfg, struct kernel_prediction *out,
                        char *err, size_t errlen)
{
    struct wild_ctx *c = ctx;
    if (c->missing && strcmp(c->missing, cfg->kernel->name) == 0) {
        snprintf(err, errlen, "no model for kernel type '%s'", cfg->kernel->name);
        return -1;
    }
    static const char *const names[] = {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC", "A\"B\\C",
                                        "r\xc3\xa9seau", "tab\there"};
    memset(out, 0, sizeof *out);
    out->latency_us = wild(c);
    out->latency_us_spread = wild(c);
    out->rail_count = c->rails;
    for (unsigned r = 0; r < c->rails; r++) {
        const char *name = c->repeat_rail_name && r == 2 ? names[0] : names[r % 6];
        snprintf(out->rails[r].name, sizeof out->rails[r].name, "%s", name);
        out->rails[r].power_mw = wild(c);
        out->rails[r].power_mw_spread = wild(c);
        out->rails[r].energy_uj = wild(c);
    }
    return 0;
}

static void options(struct estimate_options *opt, bool merge, const char *input_rail,
                    const char *gpu_rail)
{
    memset(opt, 0, sizeof *opt);
    opt->graph.merge = merge;
    opt->graph.max_nodes = GRAPH_DEFAULT_MAX_NODES;
    snprintf(opt->info.board_input_rail, sizeof opt->info.board_input_rail, "%s", input_rail);
    snprintf(opt->info.gpu_rail, sizeof opt->info.gpu_rail, "%s", gpu_rail);
    opt->info.simulated = merge; /* both labels get printed somewhere */
}

/* The text writer and the tree agree on graph, from the same predictor state.
 * Appends to *text; returns the bytes it appended (malloc'd, for batches). */
static void assert_same_answer(const json_t *graph, const struct estimate_options *opt,
                               struct wild_ctx *ctx, struct estimate_text *text)
{
    struct wild_ctx for_tree = *ctx, for_text = *ctx;
    struct graph_error tree_err, text_err;
    json_t *tree = estimate_graph(graph, opt, wild_predict, &for_tree, &tree_err);
    size_t before = text->len;
    int rc = estimate_graph_text(graph, opt, wild_predict, &for_text, text, &text_err);
    *ctx = for_text;
    if (!tree) {
        assert_int_equal(rc, -1);
        assert_int_equal(text_err.status, tree_err.status);
        assert_string_equal(text_err.detail, tree_err.detail);
        assert_string_equal(text_err.node, tree_err.node);
        assert_int_equal(text->len, before);
        return;
    }
    assert_int_equal(rc, 0);
    char *want = json_dumps(tree, DAEMON_FLAGS);
    assert_non_null(want);
    size_t got_len = text->len - before;
    if (got_len != strlen(want) || memcmp(text->data + before, want, got_len) != 0) {
        size_t at = 0;
        while (at < got_len && want[at] && text->data[before + at] == want[at])
            at++;
        fail_msg("text and tree differ at byte %zu:\n  tree: ...%.120s\n  text: ...%.120s", at,
                 want + (at > 40 ? at - 40 : 0), text->data + before + (at > 40 ? at - 40 : 0));
    }
    assert_int_equal(text->data[text->len], '\0');
    free(want);
    json_decref(tree);
}

static json_t *load_file(const char *path)
{
    json_error_t jerr;
    json_t *g = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!g)
        fail_msg("%s: %s", path, jerr.text);
    return g;
}

/* ---- tests ---- */

static void test_fixture_graphs_byte_for_byte(void **state)
{
    (void)state;
    DIR *d = opendir(GRAPH_DIR);
    assert_non_null(d);
    struct wild_ctx ctx = {.rng = 0x9E3779B97F4A7C15ull, .rails = 3};
    unsigned graphs = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GRAPH_DIR, e->d_name);
        json_t *g = load_file(path);
        /* many predictor draws per graph: the printer sees thousands of doubles */
        for (unsigned round = 0; round < 40; round++) {
            struct estimate_options opt;
            options(&opt, round % 2 == 0, round % 3 ? "VDD_IN" : "",
                    round % 5 ? "VDD_CPU_GPU_CV" : "");
            ctx.rails = 1 + round % 6;
            ctx.repeat_rail_name = round % 7 == 3;
            struct estimate_text text = {0};
            assert_same_answer(g, &opt, &ctx, &text);
            estimate_text_free(&text);
            assert_null(text.data);
            assert_int_equal(text.len, 0);
        }
        json_decref(g);
        graphs++;
    }
    closedir(d);
    assert_true(graphs >= 5);
}

/* Node names that need escaping, and a graph without kernels (totals of zero). */
static void test_escaped_names_and_empty_graph(void **state)
{
    (void)state;
    const char *graph_text =
        "{\"name\": \"esc\", \"batch\": 8, \"inputs\": [{\"name\": \"in\\\"put\", \"shape\": [16]}],"
        " \"nodes\": [{\"name\": \"f\\\\c\\u00e9\\u0001\\t1\", \"op\": \"linear\","
        " \"inputs\": [\"in\\\"put\"], \"out\": 32},"
        " {\"name\": \"\\u20ac/\", \"op\": \"relu\", \"inputs\": [\"f\\\\c\\u00e9\\u0001\\t1\"]}]}";
    json_error_t jerr;
    json_t *g = json_loads(graph_text, 0, &jerr);
    if (!g)
        fail_msg("%s", jerr.text);
    struct wild_ctx ctx = {.rng = 12345, .rails = 2};
    struct estimate_options opt;
    options(&opt, true, "VDD_IN", "VDD_CPU_GPU_CV");
    struct estimate_text text = {0};
    assert_same_answer(g, &opt, &ctx, &text);
    assert_non_null(strstr(text.data, "\\u0001\\t1"));
    estimate_text_free(&text);
    json_decref(g);

    /* only vanishing ops: no kernels at all */
    g = json_loads("{\"batch\": 4, \"inputs\": [{\"name\": \"x\", \"shape\": [8]}],"
                   " \"nodes\": [{\"name\": \"d\", \"op\": \"dropout\", \"inputs\": [\"x\"]}]}",
                   0, &jerr);
    if (!g)
        fail_msg("%s", jerr.text);
    for (int sum = 0; sum < 2; sum++) {
        options(&opt, true, sum ? "" : "VDD_IN", sum ? "" : "VDD_CPU_GPU_CV");
        assert_same_answer(g, &opt, &ctx, &text);
        text.len = 0;
    }
    estimate_text_free(&text);
    json_decref(g);
}

/* Answers appended one after another, and errors in between that leave the
 * buffer exactly as it was. */
static void test_appending_and_errors(void **state)
{
    (void)state;
    json_t *g = load_file(GRAPH_DIR "/mlp.json");
    json_t *ft = load_file(GRAPH_DIR "/ft_transformer.json");
    json_error_t jerr;
    json_t *bad = json_loads("{\"batch\": 4, \"inputs\": [{\"name\": \"x\", \"shape\": [8]}],"
                             " \"nodes\": [{\"name\": \"fc\", \"op\": \"linear\","
                             " \"inputs\": [\"nope\"], \"out\": 4}]}",
                             0, &jerr);
    assert_non_null(bad);
    struct wild_ctx ctx = {.rng = 777, .rails = 3};
    struct estimate_options opt;
    options(&opt, true, "VDD_IN", "VDD_CPU_GPU_CV");
    struct estimate_text text = {0};
    assert_int_equal(estimate_text_append(&text, "[", 1), 0);
    assert_same_answer(g, &opt, &ctx, &text);
    size_t after_first = text.len;
    char *first = strndup(text.data, text.len);
    assert_non_null(first);

    /* a bad graph: the graph module's 422 naming the node; nothing appended */
    struct graph_error err;
    assert_int_equal(estimate_graph_text(bad, &opt, wild_predict, &ctx, &text, &err), -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.node, "fc");
    assert_int_equal(text.len, after_first);
    assert_string_equal(text.data, first);

    /* a kernel type without a model: 409 naming it; nothing appended */
    ctx.missing = "layernorm";
    assert_same_answer(ft, &opt, &ctx, &text);
    assert_int_equal(estimate_graph_text(ft, &opt, wild_predict, &ctx, &text, &err), -1);
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.detail, "'layernorm'"));
    assert_int_equal(text.len, after_first);
    ctx.missing = NULL;

    assert_int_equal(estimate_text_append(&text, ",", 1), 0);
    assert_same_answer(ft, &opt, &ctx, &text);
    assert_int_equal(estimate_text_append(&text, "]", 1), 0);
    /* the whole is one valid JSON array of two estimates */
    json_t *all = json_loadb(text.data, text.len, 0, &jerr);
    if (!all)
        fail_msg("appended answers do not parse: %s", jerr.text);
    assert_int_equal(json_array_size(all), 2);
    assert_true(memcmp(text.data, first, after_first) == 0);
    json_decref(all);
    free(first);
    estimate_text_free(&text);
    json_decref(bad);
    json_decref(ft);
    json_decref(g);
}

static void test_text_buffer(void **state)
{
    (void)state;
    struct estimate_text t = {0};
    /* growth across several reallocations keeps every byte */
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 50; i++)
        assert_int_equal(estimate_text_append(&t, chunk, sizeof chunk), 0);
    assert_int_equal(t.len, 50 * sizeof chunk);
    assert_true(t.cap > t.len);
    assert_int_equal(t.data[t.len], '\0');
    for (size_t i = 0; i < t.len; i++)
        if (t.data[i] != chunk[i % sizeof chunk])
            fail_msg("byte %zu changed", i);
    assert_int_equal(estimate_text_append(&t, "", 0), 0);
    assert_int_equal(t.len, 50 * sizeof chunk);
    /* a buffer marked failed refuses appends */
    t.failed = true;
    assert_int_equal(estimate_text_append(&t, "x", 1), -1);
    assert_int_equal(t.len, 50 * sizeof chunk);
    estimate_text_free(&t);
    assert_false(t.failed);
    estimate_text_free(&t); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_graphs_byte_for_byte),
        cmocka_unit_test(test_escaped_names_and_empty_graph),
        cmocka_unit_test(test_appending_and_errors),
        cmocka_unit_test(test_text_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
