/*
 * test_predict_graph.c - graph_plan_build: every fixture under
 * tests/fixtures/graphs/ against its kernel list written out by hand (kernel,
 * parameters, covered nodes, depth, merged count; merge on and off), the
 * fusion conditions (single reader, not an output), merging limits, a graph
 * 10000 nodes deep, and every class of bad graph with its status, the node
 * named in err.node and in the detail.
 *
 * Inline graphs are written with single quotes and turned into JSON by sq(),
 * so they stay readable. Fixtures load by path from the repo root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cudakern/catalog.h"
#include "predict/graph.h"

#define FIXTURES "tests/fixtures/graphs/"

/* One expected kernel: params in catalogue order, nodes comma-separated. */
struct want {
    const char *kernel;
    int64_t params[4];
    const char *nodes;
    unsigned depth;
    unsigned merged;
};

static json_t *load_fixture(const char *name)
{
    char path[256];
    json_error_t jerr;
    snprintf(path, sizeof path, FIXTURES "%s", name);
    json_t *g = json_load_file(path, 0, &jerr);
    if (!g)
        print_error("%s:%d: %s\n", path, jerr.line, jerr.text);
    assert_non_null(g);
    return g;
}

/* JSON from text with ' for " (no test name contains a quote). */
static json_t *sq(const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *c = copy; *c; c++)
        if (*c == '\'')
            *c = '"';
    json_error_t jerr;
    json_t *g = json_loads(copy, JSON_DECODE_ANY, &jerr);
    if (!g)
        print_error("bad test JSON at %d: %s\n%s\n", jerr.position, jerr.text, copy);
    free(copy);
    assert_non_null(g);
    return g;
}

static void build_ok(const json_t *g, bool merge, struct graph_plan *plan)
{
    struct graph_options opt = {.merge = merge, .max_nodes = 0};
    struct graph_error err;
    int rc = graph_plan_build(g, &opt, plan, &err);
    if (rc != 0)
        print_error("graph_plan_build: %u node '%s': %s\n", err.status, err.node, err.detail);
    assert_int_equal(rc, 0);
}

static void check_kernels(const struct graph_plan *plan, const struct want *want, size_t count)
{
    if (plan->count != count) {
        for (size_t i = 0; i < plan->count; i++)
            print_message("got %zu: %s depth %u\n", i, plan->kernels[i].cfg.kernel->name,
                          plan->kernels[i].depth);
    }
    assert_int_equal(plan->count, count);
    for (size_t i = 0; i < count; i++) {
        const struct graph_kernel *k = &plan->kernels[i];
        char nodes[512] = "";
        size_t at = 0;
        for (size_t j = 0; j < k->node_count; j++)
            at += (size_t)snprintf(nodes + at, sizeof nodes - at, "%s%s", j ? "," : "",
                                   k->nodes[j]);
        if (strcmp(k->cfg.kernel->name, want[i].kernel) != 0 || strcmp(nodes, want[i].nodes) != 0 ||
            k->depth != want[i].depth || k->merged_count != want[i].merged)
            print_error("kernel %zu: got %s [%s] depth %u merged %u, want %s [%s] depth %u "
                        "merged %u\n",
                        i, k->cfg.kernel->name, nodes, k->depth, k->merged_count,
                        want[i].kernel, want[i].nodes, want[i].depth, want[i].merged);
        assert_string_equal(k->cfg.kernel->name, want[i].kernel);
        assert_string_equal(nodes, want[i].nodes);
        assert_int_equal(k->depth, want[i].depth);
        assert_int_equal(k->merged_count, want[i].merged);
        assert_int_equal(k->cfg.dtype, plan->dtype);
        for (unsigned p = 0; p < k->cfg.kernel->param_count; p++) {
            if (k->cfg.params[p] != want[i].params[p])
                print_error("kernel %zu (%s) parameter %s: got %lld want %lld\n", i,
                            want[i].kernel, k->cfg.kernel->params[p].name,
                            (long long)k->cfg.params[p], (long long)want[i].params[p]);
            assert_int_equal(k->cfg.params[p], want[i].params[p]);
        }
        char why[256];
        assert_int_equal(catalog_validate(&k->cfg, 0, why, sizeof why), 0);
    }
}

static void check_fixture(const char *file, bool merge, const char *format, enum dtype dtype,
                          int64_t batch, size_t graph_nodes, const struct want *want,
                          size_t count)
{
    json_t *g = load_fixture(file);
    struct graph_plan plan;
    build_ok(g, merge, &plan);
    assert_string_equal(plan.format, format);
    assert_int_equal(plan.dtype, dtype);
    assert_int_equal(plan.batch, batch);
    assert_int_equal(plan.graph_nodes, graph_nodes);
    check_kernels(&plan, want, count);
    graph_plan_free(&plan);
    assert_int_equal(plan.count, 0);
    json_decref(g);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures ---- */

static void test_mlp(void **state)
{
    (void)state;
    /* dropout vanishes; each linear -> batchnorm -> relu is one kernel */
    static const struct want want[] = {
        {"linear_bn_relu", {64, 32, 256}, "fc1,bn1,relu1", 1, 1},
        {"linear_bn_relu", {64, 256, 256}, "fc2,bn2,relu2", 2, 1},
        {"linear_bn_relu", {64, 256, 128}, "fc3,bn3,relu3", 3, 1},
        {"linear", {64, 128, 1}, "head", 4, 1},
    };
    check_fixture("mlp.json", true, "native", DTYPE_FP32, 64, 13, want, COUNT(want));
    check_fixture("mlp.json", false, "native", DTYPE_FP32, 64, 13, want, COUNT(want));
}

static void test_resnet_fc(void **state)
{
    (void)state;
    /* stem_relu is read twice (b1_fc1 and the skip add) but ends its own chain,
     * so stem -> stem_relu still fuses; the add takes the block's relu */
    static const struct want want[] = {
        {"linear_relu", {128, 64, 128}, "stem,stem_relu", 1, 1},
        {"linear_bn_relu", {128, 128, 128}, "b1_fc1,b1_bn1,b1_relu1", 2, 1},
        {"linear_bn", {128, 128, 128}, "b1_fc2,b1_bn2", 3, 1},
        {"add_relu", {128, 128}, "b1_add,b1_relu", 4, 1},
        {"linear_bn_relu", {128, 128, 128}, "b2_fc1,b2_bn1,b2_relu1", 5, 1},
        {"linear_bn", {128, 128, 128}, "b2_fc2,b2_bn2", 6, 1},
        {"add_relu", {128, 128}, "b2_add,b2_relu", 7, 1},
        {"linear", {128, 128, 2}, "head", 8, 1},
    };
    check_fixture("resnet_fc.json", true, "native", DTYPE_FP16, 128, 19, want, COUNT(want));
    check_fixture("resnet_fc.json", false, "native", DTYPE_FP16, 128, 19, want, COUNT(want));
}

/* batch 32, 8 feature tokens: row-wise kernels and linears see 256 rows */
static void test_ft_transformer_unmerged(void **state)
{
    (void)state;
    static const struct want want[] = {
        {"tokenizer", {32, 8, 64}, "tok", 1, 1},
        {"linear", {256, 64, 64}, "b1_q", 2, 1},
        {"linear", {256, 64, 64}, "b1_k", 2, 1},
        {"linear", {256, 64, 64}, "b1_v", 2, 1},
        {"attention", {32, 8, 8, 8}, "b1_attn", 3, 1},
        {"linear", {256, 64, 64}, "b1_o", 4, 1},
        {"add", {256, 64}, "b1_add1", 5, 1},
        {"layernorm", {256, 64}, "b1_ln2", 6, 1},
        {"linear_gelu", {256, 64, 128}, "b1_ffn1,b1_gelu", 7, 1},
        {"linear", {256, 128, 64}, "b1_ffn2", 8, 1},
        {"add", {256, 64}, "b1_add2", 9, 1},
        {"layernorm", {256, 64}, "b2_ln1", 10, 1},
        {"linear", {256, 64, 64}, "b2_q", 11, 1},
        {"linear", {256, 64, 64}, "b2_k", 11, 1},
        {"linear", {256, 64, 64}, "b2_v", 11, 1},
        {"attention", {32, 8, 8, 8}, "b2_attn", 12, 1},
        {"linear", {256, 64, 64}, "b2_o", 13, 1},
        {"add", {256, 64}, "b2_add1", 14, 1},
        {"layernorm", {256, 64}, "b2_ln2", 15, 1},
        {"linear_gelu", {256, 64, 128}, "b2_ffn1,b2_gelu", 16, 1},
        {"linear", {256, 128, 64}, "b2_ffn2", 17, 1},
        {"add", {256, 64}, "b2_add2", 18, 1},
        {"layernorm", {256, 64}, "ln_f", 19, 1},
        {"linear", {32, 512, 1}, "head", 20, 1},
    };
    check_fixture("ft_transformer.json", false, "native", DTYPE_FP32, 32, 29, want,
                  COUNT(want));
}

static void test_ft_transformer_merged(void **state)
{
    (void)state;
    /* Q, K and V: same depth, batch and in -> one linear of out 3 x 64 */
    static const struct want want[] = {
        {"tokenizer", {32, 8, 64}, "tok", 1, 1},
        {"linear", {256, 64, 192}, "b1_q,b1_k,b1_v", 2, 3},
        {"attention", {32, 8, 8, 8}, "b1_attn", 3, 1},
        {"linear", {256, 64, 64}, "b1_o", 4, 1},
        {"add", {256, 64}, "b1_add1", 5, 1},
        {"layernorm", {256, 64}, "b1_ln2", 6, 1},
        {"linear_gelu", {256, 64, 128}, "b1_ffn1,b1_gelu", 7, 1},
        {"linear", {256, 128, 64}, "b1_ffn2", 8, 1},
        {"add", {256, 64}, "b1_add2", 9, 1},
        {"layernorm", {256, 64}, "b2_ln1", 10, 1},
        {"linear", {256, 64, 192}, "b2_q,b2_k,b2_v", 11, 3},
        {"attention", {32, 8, 8, 8}, "b2_attn", 12, 1},
        {"linear", {256, 64, 64}, "b2_o", 13, 1},
        {"add", {256, 64}, "b2_add1", 14, 1},
        {"layernorm", {256, 64}, "b2_ln2", 15, 1},
        {"linear_gelu", {256, 64, 128}, "b2_ffn1,b2_gelu", 16, 1},
        {"linear", {256, 128, 64}, "b2_ffn2", 17, 1},
        {"add", {256, 64}, "b2_add2", 18, 1},
        {"layernorm", {256, 64}, "ln_f", 19, 1},
        {"linear", {32, 512, 1}, "head", 20, 1},
    };
    check_fixture("ft_transformer.json", true, "native", DTYPE_FP32, 32, 29, want,
                  COUNT(want));
}

static void test_parallel_branches(void **state)
{
    (void)state;
    static const struct want unmerged[] = {
        {"linear_relu", {256, 48, 128}, "a_fc,a_relu", 1, 1},
        {"linear_relu", {256, 48, 64}, "b_fc,b_relu", 1, 1},
        {"linear_relu", {256, 48, 128}, "c_fc,c_relu", 1, 1},
        {"linear_relu", {256, 16, 64}, "emb_fc,emb_relu", 1, 1},
        {"layernorm", {256, 128}, "a_ln", 2, 1},
        {"layernorm", {256, 128}, "c_ln", 2, 1},
        {"concat", {256, 128, 64}, "cat_ab", 3, 1},
        {"concat", {256, 192, 128}, "cat_abc", 4, 1},
        {"concat", {256, 320, 64}, "cat_all", 5, 1},
        {"linear", {256, 384, 10}, "cls", 6, 1},
        {"softmax", {256, 10}, "prob", 7, 1},
    };
    /* the three x_num branches merge (in 48); the x_cat branch (in 16) does not;
     * the two layernorms merge on cols; concat never merges */
    static const struct want merged[] = {
        {"linear_relu", {256, 48, 320}, "a_fc,a_relu,b_fc,b_relu,c_fc,c_relu", 1, 3},
        {"linear_relu", {256, 16, 64}, "emb_fc,emb_relu", 1, 1},
        {"layernorm", {256, 256}, "a_ln,c_ln", 2, 2},
        {"concat", {256, 128, 64}, "cat_ab", 3, 1},
        {"concat", {256, 192, 128}, "cat_abc", 4, 1},
        {"concat", {256, 320, 64}, "cat_all", 5, 1},
        {"linear", {256, 384, 10}, "cls", 6, 1},
        {"softmax", {256, 10}, "prob", 7, 1},
    };
    check_fixture("parallel_branches.json", false, "native", DTYPE_FP32, 256, 16, unmerged,
                  COUNT(unmerged));
    check_fixture("parallel_branches.json", true, "native", DTYPE_FP32, 256, 16, merged,
                  COUNT(merged));
}

/* The unmerged plan as the executor plan a whole-graph measurement runs. */
static void test_exec_kernels(void **state)
{
    (void)state;
    json_t *g = load_fixture("parallel_branches.json");
    struct graph_plan plan;
    build_ok(g, false, &plan);
    struct exec_plan_kernel *k = NULL;
    unsigned levels = 0, deepest = 0;
    assert_int_equal(graph_plan_exec_kernels(&plan, &k, &levels), 0);
    assert_non_null(k);
    for (size_t i = 0; i < plan.count; i++) {
        assert_memory_equal(&k[i].cfg, &plan.kernels[i].cfg, sizeof k[i].cfg);
        assert_int_equal(k[i].level, plan.kernels[i].depth);
        if (plan.kernels[i].depth > deepest)
            deepest = plan.kernels[i].depth;
    }
    assert_int_equal(levels, deepest);
    struct exec_plan ep = {.count = plan.count, .kernels = k};
    char err[256];
    assert_int_equal(exec_plan_check(&ep, err, sizeof err), 0);
    free(k);
    assert_int_equal(graph_plan_exec_kernels(&plan, &k, NULL), 0); /* levels optional */
    free(k);
    graph_plan_free(&plan);
    assert_int_equal(graph_plan_exec_kernels(&plan, &k, &levels), -1); /* empty */
    assert_null(k);
    json_decref(g);
}

static void test_nnmeter_mlp(void **state)
{
    (void)state;
    /* Keras MLP as nn-Meter's TensorFlow converter writes it: Const weights
     * dropped, BiasAdd part of the linear, dropout already an Identity */
    static const struct want want[] = {
        {"linear_bn_relu", {64, 32, 128},
         "dense/MatMul,batch_normalization/FusedBatchNormV3,re_lu/Relu", 1, 1},
        {"linear_bn_relu", {64, 128, 64},
         "dense_1/MatMul,batch_normalization_1/FusedBatchNormV3,re_lu_1/Relu", 2, 1},
        {"linear", {64, 64, 1}, "dense_2/MatMul", 3, 1},
    };
    check_fixture("nnmeter_mlp.json", true, "nn-meter", DTYPE_FP32, 64, 12, want, COUNT(want));
    check_fixture("nnmeter_mlp.json", false, "nn-meter", DTYPE_FP32, 64, 12, want, COUNT(want));
}

static void test_mlp20(void **state)
{
    (void)state;
    static const struct want want[] = {
        {"linear_bn_relu", {512, 64, 512}, "fc1,bn1,relu1", 1, 1},
        {"linear_bn_relu", {512, 512, 512}, "fc2,bn2,relu2", 2, 1},
        {"linear_bn_relu", {512, 512, 512}, "fc3,bn3,relu3", 3, 1},
        {"linear_bn_relu", {512, 512, 384}, "fc4,bn4,relu4", 4, 1},
        {"linear_bn_relu", {512, 384, 384}, "fc5,bn5,relu5", 5, 1},
        {"linear_bn_relu", {512, 384, 384}, "fc6,bn6,relu6", 6, 1},
        {"linear_bn_relu", {512, 384, 256}, "fc7,bn7,relu7", 7, 1},
        {"linear_bn_relu", {512, 256, 256}, "fc8,bn8,relu8", 8, 1},
        {"linear_bn_relu", {512, 256, 256}, "fc9,bn9,relu9", 9, 1},
        {"linear_bn_relu", {512, 256, 256}, "fc10,bn10,relu10", 10, 1},
        {"linear_bn_relu", {512, 256, 192}, "fc11,bn11,relu11", 11, 1},
        {"linear_bn_relu", {512, 192, 192}, "fc12,bn12,relu12", 12, 1},
        {"linear_bn_relu", {512, 192, 192}, "fc13,bn13,relu13", 13, 1},
        {"linear_bn_relu", {512, 192, 128}, "fc14,bn14,relu14", 14, 1},
        {"linear_bn_relu", {512, 128, 128}, "fc15,bn15,relu15", 15, 1},
        {"linear_bn_relu", {512, 128, 128}, "fc16,bn16,relu16", 16, 1},
        {"linear_bn_relu", {512, 128, 96}, "fc17,bn17,relu17", 17, 1},
        {"linear_bn_relu", {512, 96, 96}, "fc18,bn18,relu18", 18, 1},
        {"linear_bn_relu", {512, 96, 64}, "fc19,bn19,relu19", 19, 1},
        {"linear", {512, 64, 1}, "head", 20, 1},
    };
    check_fixture("mlp20.json", true, "native", DTYPE_FP32, 512, 77, want, COUNT(want));
    check_fixture("mlp20.json", false, "native", DTYPE_FP32, 512, 77, want, COUNT(want));
}

/* ---- rules on small graphs ---- */

static void check_inline(const char *text, bool merge, const struct want *want, size_t count)
{
    json_t *g = sq(text);
    struct graph_plan plan;
    build_ok(g, merge, &plan);
    check_kernels(&plan, want, count);
    graph_plan_free(&plan);
    json_decref(g);
}

/* nn-Meter's ONNX converter makes no input nodes: the first node's input_shape
 * is the graph input. Lowercase nn-Meter kernel names, a dtype member. */
static void test_nnmeter_onnx_style(void **state)
{
    (void)state;
    static const char text[] =
        "{'dtype': 'fp16',"
        " 'fc1': {'inbounds': [], 'attr': {'name': 'fc1', 'type': 'Gemm', 'attr': {'transB': 1},"
        "         'input_shape': [[16, 10], [20, 10], [20]], 'output_shape': [[16, 20]]},"
        "         'outbounds': ['bn1']},"
        " 'bn1': {'inbounds': ['fc1'], 'attr': {'type': 'bn', 'attr': {},"
        "         'input_shape': [[16, 20]], 'output_shape': [[16, 20]]}, 'outbounds': ['r1']},"
        " 'r1': {'inbounds': ['bn1'], 'attr': {'type': 'relu', 'attr': {}}, 'outbounds': ['fc2', 'sum']},"
        " 'fc2': {'inbounds': ['r1'], 'attr': {'type': 'fc', 'attr': {'units': 20}}, 'outbounds': ['sum']},"
        " 'sum': {'inbounds': ['fc2', 'r1'], 'attr': {'type': 'add', 'attr': {},"
        "         'output_shape': [[16, 20]]}, 'outbounds': ['act']},"
        " 'act': {'inbounds': ['sum'], 'attr': {'type': 'Relu', 'attr': {}}, 'outbounds': ['sm']},"
        " 'sm': {'inbounds': ['act'], 'attr': {'type': 'Softmax', 'attr': {'axis': -1}}, 'outbounds': []}}";
    static const struct want want[] = {
        {"linear_bn_relu", {16, 10, 20}, "fc1,bn1,r1", 1, 1},
        {"linear", {16, 20, 20}, "fc2", 2, 1},
        {"add_relu", {16, 20}, "sum,act", 3, 1},
        {"softmax", {16, 20}, "sm", 4, 1},
    };
    json_t *g = sq(text);
    struct graph_plan plan;
    build_ok(g, true, &plan);
    assert_string_equal(plan.format, "nn-meter");
    assert_int_equal(plan.dtype, DTYPE_FP16);
    assert_int_equal(plan.batch, 16);
    assert_int_equal(plan.graph_nodes, 7);
    check_kernels(&plan, want, COUNT(want));
    graph_plan_free(&plan);
    json_decref(g);
}

/* TensorFlow-style IR: a weight reaches MatMul through Identity (a constant
 * too, so not an input and not counted), a Reshape folds [4, 8] into [32] and
 * launches nothing, a final Identity is the output. */
static void test_nnmeter_constants_reshape(void **state)
{
    (void)state;
    static const char text[] =
        "{'x': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[2, 4, 8]]},"
        "       'outbounds': ['flat']},"
        " 'flat': {'inbounds': ['x'], 'attr': {'type': 'Reshape', 'output_shape': [[2, 32]]},"
        "       'outbounds': ['mm']},"
        " 'w': {'inbounds': [], 'attr': {'type': 'Const', 'output_shape': [[32, 16]]},"
        "       'outbounds': ['w_read']},"
        " 'w_read': {'inbounds': ['w'], 'attr': {'type': 'Identity'}, 'outbounds': ['mm']},"
        " 'mm': {'inbounds': ['w_read', 'flat'], 'attr': {'type': 'MatMul',"
        "       'input_shape': [[32, 16], [2, 32]], 'output_shape': [[2, 16]]},"
        "       'outbounds': ['act']},"
        " 'act': {'inbounds': ['mm'], 'attr': {'type': 'Gelu'}, 'outbounds': ['out']},"
        " 'out': {'inbounds': ['act'], 'attr': {'type': 'Identity'}, 'outbounds': []}}";
    static const struct want want[] = {
        {"linear_gelu", {2, 32, 16}, "mm,act", 1, 1},
    };
    json_t *g = sq(text);
    struct graph_plan plan;
    build_ok(g, true, &plan);
    assert_int_equal(plan.batch, 2);
    assert_int_equal(plan.graph_nodes, 4); /* flat, mm, act, out */
    check_kernels(&plan, want, COUNT(want));
    graph_plan_free(&plan);
    json_decref(g);
}

/* A result read twice, or listed as an output, is not fused through. */
static void test_fusion_conditions(void **state)
{
    (void)state;
    /* fc1 is read by r1 and fc3: linear alone, then r1 is standalone -> refused
     * (see the errors test); here fc1 feeds two linears, which is fine */
    static const struct want two_readers[] = {
        {"linear", {8, 4, 16}, "fc1", 1, 1},
        {"linear_relu", {8, 16, 16}, "fc2,r2", 2, 1},
        {"linear_gelu", {8, 16, 16}, "fc3,g3", 2, 1},
        {"add", {8, 16}, "sum", 3, 1},
    };
    check_inline("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4]}], 'nodes': ["
                 "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 16},"
                 "{'name': 'fc2', 'op': 'linear', 'inputs': ['fc1'], 'out': 16},"
                 "{'name': 'r2', 'op': 'relu', 'inputs': ['fc2']},"
                 "{'name': 'fc3', 'op': 'linear', 'inputs': ['fc1'], 'out': 16},"
                 "{'name': 'g3', 'op': 'gelu', 'inputs': ['fc3']},"
                 "{'name': 'sum', 'op': 'add', 'inputs': ['r2', 'g3']}]}",
                 false, two_readers, COUNT(two_readers));
    /* linear_relu and linear_gelu are different types: no merge either way */
    check_inline("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4]}], 'nodes': ["
                 "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 16},"
                 "{'name': 'fc2', 'op': 'linear', 'inputs': ['fc1'], 'out': 16},"
                 "{'name': 'r2', 'op': 'relu', 'inputs': ['fc2']},"
                 "{'name': 'fc3', 'op': 'linear', 'inputs': ['fc1'], 'out': 16},"
                 "{'name': 'g3', 'op': 'gelu', 'inputs': ['fc3']},"
                 "{'name': 'sum', 'op': 'add', 'inputs': ['r2', 'g3']}]}",
                 true, two_readers, COUNT(two_readers));
    /* bn1 is a listed output: linear -> batchnorm fuses, relu cannot follow */
    static const struct want bn_output[] = {
        {"linear_bn", {8, 4, 16}, "fc1,bn1", 1, 1},
        {"linear", {8, 16, 2}, "fc2", 2, 1},
    };
    check_inline("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4]}], 'nodes': ["
                 "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 16},"
                 "{'name': 'bn1', 'op': 'batchnorm', 'inputs': ['fc1']},"
                 "{'name': 'fc2', 'op': 'linear', 'inputs': ['bn1'], 'out': 2}],"
                 " 'outputs': ['fc2', 'bn1']}",
                 true, bn_output, COUNT(bn_output));
    /* nodes listed in any order; identity and dropout chains vanish; the
     * kernel's nodes come out in graph order */
    static const struct want unordered[] = {
        {"linear_relu", {3, 5, 7}, "r,fc", 1, 1},
    };
    check_inline("{'batch': 3, 'inputs': [{'name': 'x', 'shape': [5]}], 'nodes': ["
                 "{'name': 'r', 'op': 'relu', 'inputs': ['i2']},"
                 "{'name': 'i2', 'op': 'identity', 'inputs': ['d1']},"
                 "{'name': 'd1', 'op': 'dropout', 'inputs': ['fc']},"
                 "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 7}]}",
                 true, unordered, COUNT(unordered));
}

/* Leading per-sample dimensions fold into batch/rows; merging stops at the
 * catalogue's range. */
static void test_folding_and_merge_limit(void **state)
{
    (void)state;
    static const struct want folded[] = {
        {"linear", {4 * 6 * 10, 12, 24}, "fc", 1, 1},
        {"softmax", {4 * 6 * 10, 24}, "sm", 2, 1},
        {"attention", {4 * 6, 10, 3, 8}, "att", 3, 1},
        {"concat", {4 * 6 * 10, 24, 12}, "cat", 4, 1},
    };
    check_inline("{'batch': 4, 'dtype': 'fp32', 'inputs': [{'name': 'x', 'shape': [6, 10, 12]}],"
                 " 'nodes': ["
                 "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 24},"
                 "{'name': 'sm', 'op': 'softmax', 'inputs': ['fc']},"
                 "{'name': 'att', 'op': 'attention', 'inputs': ['sm', 'sm', 'sm'], 'heads': 3},"
                 "{'name': 'cat', 'op': 'concat', 'inputs': ['att', 'x']}]}",
                 true, folded, COUNT(folded));
    /* three linears of out 50000, 20000, 5000 at depth 1: the first two would
     * exceed out <= 65536, so 50000 stays alone and 20000 + 5000 merge */
    static const struct want limited[] = {
        {"linear", {2, 8, 50000}, "a", 1, 1},
        {"linear", {2, 8, 25000}, "b,c", 1, 2},
    };
    check_inline("{'batch': 2, 'inputs': [{'name': 'x', 'shape': [8]}], 'nodes': ["
                 "{'name': 'a', 'op': 'linear', 'inputs': ['x'], 'out': 50000},"
                 "{'name': 'b', 'op': 'linear', 'inputs': ['x'], 'out': 20000},"
                 "{'name': 'c', 'op': 'linear', 'inputs': ['x'], 'out': 5000}]}",
                 true, limited, COUNT(limited));
    /* the same types at different depths never merge; different dtype cannot
     * happen within one graph */
    static const struct want depths[] = {
        {"add", {2, 8}, "s1", 1, 1},
        {"add", {2, 8}, "s2", 2, 1},
    };
    check_inline("{'batch': 2, 'inputs': [{'name': 'x', 'shape': [8]}], 'nodes': ["
                 "{'name': 's1', 'op': 'add', 'inputs': ['x', 'x']},"
                 "{'name': 's2', 'op': 'add', 'inputs': ['s1', 'x']}]}",
                 true, depths, COUNT(depths));
}

/* 10000 nodes in one chain: no recursion, and the order comes out right. */
static void test_deep_graph(void **state)
{
    (void)state;
    json_t *g = json_pack("{s:i, s:[{s:s, s:[i]}]}", "batch", 1, "inputs", "name", "x",
                          "shape", 8);
    json_t *nodes = json_array();
    assert_non_null(g);
    assert_non_null(nodes);
    char name[32], prev[32] = "x";
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "fc%d", i);
        assert_int_equal(json_array_append_new(nodes, json_pack("{s:s, s:s, s:[s], s:i}", "name",
                                                                name, "op", "linear", "inputs",
                                                                prev, "out", 8)),
                         0);
        snprintf(prev, sizeof prev, "r%d", i);
        assert_int_equal(json_array_append_new(nodes, json_pack("{s:s, s:s, s:[s]}", "name", prev,
                                                                "op", "relu", "inputs", name)),
                         0);
    }
    assert_int_equal(json_object_set_new(g, "nodes", nodes), 0);
    struct graph_plan plan;
    build_ok(g, true, &plan);
    assert_int_equal(plan.count, 5000);
    assert_int_equal(plan.graph_nodes, 10000);
    for (size_t i = 0; i < plan.count; i++) {
        assert_string_equal(plan.kernels[i].cfg.kernel->name, "linear_relu");
        assert_int_equal(plan.kernels[i].depth, i + 1);
    }
    assert_string_equal(plan.kernels[4999].nodes[1], "r4999");
    graph_plan_free(&plan);

    /* close it into a 10000-node cycle: fc0 reads r4999 */
    json_t *fc0 = json_array_get(nodes, 0);
    assert_int_equal(json_object_set_new(fc0, "inputs", json_pack("[s]", "r4999")), 0);
    struct graph_error err;
    struct graph_options opt = {.merge = true, .max_nodes = 0};
    assert_int_equal(graph_plan_build(g, &opt, &plan, &err), -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.node, "fc0");
    assert_non_null(strstr(err.detail, "node 'fc0' is on a cycle: fc0 -> r0 -> fc1"));
    assert_non_null(strstr(err.detail, "(10000 nodes) -> fc0"));
    json_decref(g);
}

/* ---- bad graphs ---- */

static void expect_error_opt(const char *text, const struct graph_options *opt, unsigned status,
                             const char *node, const char *fragment)
{
    json_t *g = sq(text);
    struct graph_plan plan;
    struct graph_error err;
    memset(&plan, 0x5a, sizeof plan);
    int rc = graph_plan_build(g, opt, &plan, &err);
    if (rc == 0 || err.status != status || strcmp(err.node, node) != 0 ||
        !strstr(err.detail, fragment))
        print_error("got rc %d status %u node '%s' detail: %s\nwant status %u node '%s' "
                    "detail containing: %s\n",
                    rc, err.status, err.node, err.detail, status, node, fragment);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.node, node);
    assert_non_null(strstr(err.detail, fragment));
    if (node[0]) {
        char quoted[80];
        snprintf(quoted, sizeof quoted, "'%s'", node);
        assert_non_null(strstr(err.detail, quoted));
    }
    assert_int_equal(plan.count, 0);
    assert_null(plan.kernels);
    graph_plan_free(&plan); /* safe on a refused plan */
    json_decref(g);
}

static void expect_error(const char *text, unsigned status, const char *node,
                         const char *fragment)
{
    struct graph_options opt = {.merge = true, .max_nodes = 0};
    expect_error_opt(text, &opt, status, node, fragment);
}

#define HEAD "{'batch': 8, 'inputs': [{'name': 'x', 'shape': [32]}], 'nodes': ["

static void test_error_not_a_graph(void **state)
{
    (void)state;
    expect_error("[1, 2]", 400, "", "must be a JSON object");
    expect_error("'graph'", 400, "", "must be a JSON object");
    expect_error("{}", 400, "", "not a graph");
    expect_error("{'foo': 1, 'bar': {'x': 1}}", 400, "", "not a graph");
    expect_error("{'dtype': 'fp32'}", 400, "", "not a graph");
}

static void test_error_cycle(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'pre', 'op': 'linear', 'inputs': ['x'], 'out': 4},"
                      "{'name': 'a', 'op': 'linear', 'inputs': ['c'], 'out': 32},"
                      "{'name': 'b', 'op': 'relu', 'inputs': ['a']},"
                      "{'name': 'c', 'op': 'add', 'inputs': ['b', 'x']},"
                      "{'name': 'after', 'op': 'softmax', 'inputs': ['c']}]}",
                 422, "a", "node 'a' is on a cycle: a -> b -> c -> a");
    expect_error(HEAD "{'name': 'self', 'op': 'relu', 'inputs': ['self']}]}", 422, "self",
                 "self -> self");
}

static void test_error_dangling_input(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 4},"
                      "{'name': 'fc2', 'op': 'linear', 'inputs': ['fc9'], 'out': 4}]}",
                 422, "fc2", "node 'fc2': input 'fc9' is not a node or graph input");
    expect_error(HEAD "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 4}],"
                      " 'outputs': ['fc7']}",
                 422, "fc7", "outputs[0]: 'fc7' is not a node");
}

static void test_error_shapes(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 256},"
                      "{'name': 'fc2', 'op': 'linear', 'inputs': ['x'], 'out': 128},"
                      "{'name': 'sum', 'op': 'add', 'inputs': ['fc1', 'fc2']}]}",
                 422, "sum", "'fc1' is [256] and 'fc2' is [128]");
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4, 32]},"
                 " {'name': 'y', 'shape': [2, 32]}], 'nodes': ["
                 "{'name': 'cat', 'op': 'concat', 'inputs': ['x', 'y']}]}",
                 422, "cat", "'x' is [4, 32] and 'y' is [2, 32]");
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4, 30]}], 'nodes': ["
                 "{'name': 'att', 'op': 'attention', 'inputs': ['x', 'x', 'x'], 'heads': 8}]}",
                 422, "att", "width 30 of 'x' is not a multiple of heads = 8");
    expect_error(HEAD "{'name': 'att', 'op': 'attention', 'inputs': ['x', 'x', 'x'], 'heads': 8}]}",
                 422, "att", "'x' is [32]");
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [4, 30]}], 'nodes': ["
                 "{'name': 'tok', 'op': 'tokenizer', 'inputs': ['x'], 'd': 8}]}",
                 422, "tok", "'x' is [4, 30]");
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [0]}], 'nodes': ["
                 "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8}]}",
                 422, "x", "input 'x': shape has dimension 0");
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [1, 2, 3, 4, 5]}], 'nodes': ["
                 "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8}]}",
                 422, "x", "has 5 dimensions");
    /* the kernel's range after folding: 8 x 16384 tokens = 131072 rows */
    expect_error("{'batch': 8, 'inputs': [{'name': 'x', 'shape': [16384, 32]}], 'nodes': ["
                 "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8}]}",
                 422, "fc", "parameter 'batch' = 131072 is outside linear's range");
}

static void test_error_unknown_op(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'conv', 'op': 'conv2d', 'inputs': ['x']}]}", 422, "conv",
                 "unknown op 'conv2d'; the ops are linear, batchnorm");
    expect_error(HEAD "{'name': 'n1', 'inputs': ['x']}]}", 422, "n1", "'op' is missing");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'outs': 8}]}", 422, "fc",
                 "unknown member 'outs' (linear takes out)");
    expect_error(HEAD "{'name': 'r', 'op': 'relu', 'inputs': ['x', 'x']}]}", 422, "r",
                 "relu takes 1 input, 'inputs' has 2");
}

static void test_error_duplicate_names(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 4},"
                      "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 4}]}",
                 422, "fc1", "node 'fc1': the name is used twice (nodes[0] and nodes[1])");
    expect_error(HEAD "{'name': 'x', 'op': 'linear', 'inputs': ['x'], 'out': 4}]}", 422, "x",
                 "the name is already an input's");
    expect_error(HEAD "{'name': '', 'op': 'linear', 'inputs': ['x'], 'out': 4}]}", 422, "",
                 "nodes[0]: the name is empty");
    /* too long for err.node: the first 63 bytes there, the detail shortens it */
    json_t *g = sq(HEAD "{'name': 'a_name_that_goes_on_and_on_for_far_longer_than_sixty_three_"
                        "bytes', 'op': 'linear', 'inputs': ['x'], 'out': 4}]}");
    struct graph_plan plan;
    struct graph_error err;
    assert_int_equal(graph_plan_build(g, NULL, &plan, &err), -1);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.node, "a_name_that_goes_on_and_on_for_far_longer_than_sixty_three_byte");
    assert_non_null(strstr(err.detail, "node 'a_name_that_goes_on_and_on_for_far_longer_th...': "
                                       "names are at most 63 bytes"));
    json_decref(g);
}

static void test_error_too_many_nodes(void **state)
{
    (void)state;
    struct graph_options opt = {.merge = true, .max_nodes = 2};
    expect_error_opt(HEAD "{'name': 'fc1', 'op': 'linear', 'inputs': ['x'], 'out': 4},"
                          "{'name': 'r1', 'op': 'relu', 'inputs': ['fc1']},"
                          "{'name': 'fc2', 'op': 'linear', 'inputs': ['r1'], 'out': 4}]}",
                     &opt, 422, "fc2", "the graph has 3 nodes, at most 2 are accepted");
    expect_error_opt("{'a': {'inbounds': [], 'attr': {'type': 'fc', 'input_shape': [[4, 8]],"
                     "  'output_shape': [[4, 8]]}, 'outbounds': ['b']},"
                     " 'b': {'inbounds': ['a'], 'attr': {'type': 'relu'}, 'outbounds': ['c']},"
                     " 'c': {'inbounds': ['b'], 'attr': {'type': 'fc', 'output_shape': [[4, 2]]},"
                     "  'outbounds': []}}",
                     &opt, 422, "c", "more than 2 nodes");
    json_t *g = load_fixture("mlp.json");
    struct graph_plan plan;
    struct graph_error err;
    opt.max_nodes = 12;
    assert_int_equal(graph_plan_build(g, &opt, &plan, &err), -1);
    assert_string_equal(err.node, "head");
    opt.max_nodes = 13;
    assert_int_equal(graph_plan_build(g, &opt, &plan, &err), 0);
    graph_plan_free(&plan);
    json_decref(g);
}

static void test_error_attributes(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x']}]}", 422, "fc",
                 "linear needs attribute 'out' (output features, an integer in [1, 65536])");
    expect_error(HEAD "{'name': 'att', 'op': 'attention', 'inputs': ['x', 'x', 'x']}]}", 422,
                 "att", "needs attribute 'heads'");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 70000}]}", 422,
                 "fc", "attribute 'out' = 70000 is outside the range");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': '64'}]}", 422,
                 "fc", "attribute 'out' must be an integer in [1, 65536]");
    expect_error(HEAD "{'name': 'tok', 'op': 'tokenizer', 'inputs': ['x'], 'd': 2048}]}", 422,
                 "tok", "attribute 'd' = 2048 is outside the range; d (token width) must be an "
                        "integer in [1, 1024]");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8},"
                      "{'name': 'd', 'op': 'dropout', 'inputs': ['fc'], 'p': 1.0}]}",
                 422, "d", "attribute 'p' = 1 is outside the range; p (drop probability "
                           "(training only)) must be a number in [0, 1)");
    expect_error(HEAD "{'name': 'sm', 'op': 'softmax', 'inputs': ['x'], 'axis': 0}]}", 422, "sm",
                 "attribute 'axis' = 0 is outside the range; axis (the last axis, -1) must be -1");
}

static void test_error_standalone(void **state)
{
    (void)state;
    expect_error(HEAD "{'name': 'r', 'op': 'relu', 'inputs': ['x']}]}", 422, "r",
                 "node 'r': the catalogue has no standalone relu kernel; relu must directly "
                 "follow batchnorm, linear or add");
    expect_error(HEAD "{'name': 'r', 'op': 'relu', 'inputs': ['x']}]}", 422, "r",
                 "its input 'x' is a graph input");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8},"
                      "{'name': 'r', 'op': 'relu', 'inputs': ['fc']},"
                      "{'name': 'fc2', 'op': 'linear', 'inputs': ['fc'], 'out': 8}]}",
                 422, "r", "its input 'fc' is also read by 'fc2'");
    expect_error(HEAD "{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 8},"
                      "{'name': 'r', 'op': 'relu', 'inputs': ['fc']}], 'outputs': ['fc', 'r']}",
                 422, "r", "its input 'fc' is a graph output");
    expect_error(HEAD "{'name': 's', 'op': 'add', 'inputs': ['x', 'x']},"
                      "{'name': 'g', 'op': 'gelu', 'inputs': ['s']}]}",
                 422, "g", "gelu must directly follow linear");
    expect_error(HEAD "{'name': 'ln', 'op': 'layernorm', 'inputs': ['x']},"
                      "{'name': 'bn', 'op': 'batchnorm', 'inputs': ['ln']}]}",
                 422, "bn", "its input 'ln' is a layernorm");
}

static void test_error_batch_dtype(void **state)
{
    (void)state;
    static const char nodes[] = "'inputs': [{'name': 'x', 'shape': [4]}], 'nodes': "
                                "[{'name': 'fc', 'op': 'linear', 'inputs': ['x'], 'out': 4}]}";
    char text[512];
    snprintf(text, sizeof text, "{'batch': 0, %s", nodes);
    expect_error(text, 422, "", "'batch' = 0 is outside [1, 65536]");
    snprintf(text, sizeof text, "{'batch': 65537, %s", nodes);
    expect_error(text, 422, "", "'batch' = 65537 is outside [1, 65536]");
    snprintf(text, sizeof text, "{'batch': '64', %s", nodes);
    expect_error(text, 422, "", "'batch' must be an integer");
    snprintf(text, sizeof text, "{%s", nodes);
    expect_error(text, 422, "", "'batch' is missing");
    snprintf(text, sizeof text, "{'batch': 4, 'dtype': 'int8', %s", nodes);
    expect_error(text, 422, "", "'dtype' must be \"fp32\" or \"fp16\"");
    snprintf(text, sizeof text, "{'batch': 4, 'nme': 'typo', %s", nodes);
    expect_error(text, 422, "", "unknown graph member 'nme'");
    expect_error("{'batch': 4, 'inputs': [], 'nodes': []}", 422, "", "'inputs' must be");
    expect_error("{'batch': 4, 'inputs': [{'name': 'x', 'shape': [4]}], 'nodes': []}", 422, "",
                 "'nodes' is empty");
    /* nn-Meter: the batch is the inputs' first dimension */
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[0, 4]]},"
                 "  'outbounds': ['fc']},"
                 " 'fc': {'inbounds': ['in'], 'attr': {'type': 'fc', 'attr': {'units': 4}},"
                 "  'outbounds': []}}",
                 422, "in", "batch 0 (the first dimension of its output_shape) is outside");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'input', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['sum']},"
                 " 'in2': {'inbounds': [], 'attr': {'type': 'input', 'output_shape': [[16, 4]]},"
                 "  'outbounds': ['sum']},"
                 " 'sum': {'inbounds': ['in', 'in2'], 'attr': {'type': 'add'}, 'outbounds': []}}",
                 422, "in2", "batch 16 (the first dimension of its output_shape) differs from 8 of 'in'");
    expect_error("{'dtype': 'bf16', 'in': {'inbounds': [], 'attr': {'type': 'input',"
                 "  'output_shape': [[8, 4]]}, 'outbounds': []}}",
                 422, "", "'dtype' must be");
}

static void test_error_nnmeter(void **state)
{
    (void)state;
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['fc']},"
                 " 'fc': {'inbounds': ['inp'], 'attr': {'type': 'fc', 'attr': {'units': 4}},"
                 "  'outbounds': []}}",
                 422, "fc", "node 'fc': inbound 'inp' is not a node of the graph");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['fc', 'ghost']},"
                 " 'fc': {'inbounds': ['in'], 'attr': {'type': 'fc', 'attr': {'units': 4}},"
                 "  'outbounds': []}}",
                 422, "in", "outbound 'ghost' is not a node");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['c']},"
                 " 'c': {'inbounds': ['in'], 'attr': {'type': 'Conv2D', 'attr': {}}, 'outbounds': []}}",
                 422, "c", "unknown op type 'Conv2D' (accepted: fc, bn, relu");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['fc']},"
                 " 'fc': {'inbounds': ['in'], 'attr': {'type': 'fc', 'attr': {},"
                 "  'input_shape': [[8, 4]], 'output_shape': [[8, 16]]}, 'outbounds': ['r']},"
                 " 'r': {'inbounds': ['fc'], 'attr': {'type': 'relu', 'input_shape': [[8, 32]]},"
                 "  'outbounds': []}}",
                 422, "r", "input_shape[0] [8, 32] disagrees with [8, 16], the shape of inbound 'fc'");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['fc']},"
                 " 'fc': {'inbounds': ['in'], 'attr': {'type': 'fc', 'attr': {'units': 16},"
                 "  'output_shape': [[8, 12]]}, 'outbounds': []}}",
                 422, "fc", "output_shape [8, 12] disagrees with the shape inferred from its inputs, [8, 16]");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['fc']},"
                 " 'fc': {'inbounds': ['in'], 'attr': {'type': 'fc'}, 'outbounds': []}}",
                 422, "fc", "linear needs attribute 'out'");
    expect_error("{'in': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[8, 4]]},"
                 "  'outbounds': ['s']},"
                 " 's': {'inbounds': ['in'], 'attr': {'type': 'add'}, 'outbounds': []}}",
                 422, "s", "add takes 2 inputs; its inbounds name 1 node");
    expect_error("{'a': {'inbounds': ['b'], 'attr': {'type': 'relu'}, 'outbounds': ['b']},"
                 " 'b': {'inbounds': ['a'], 'attr': {'type': 'relu'}, 'outbounds': ['a']},"
                 " 'in': {'inbounds': [], 'attr': {'type': 'input', 'output_shape': [[2, 2]]},"
                 "  'outbounds': []}}",
                 422, "a", "node 'a' is on a cycle: a -> b -> a");
    expect_error("{'fc': {'inbounds': [], 'attr': {'type': 'fc'}, 'outbounds': []}}", 422, "fc",
                 "its input_shape does not describe the graph input");
    expect_error("{'x': {'inbounds': [], 'attr': {'type': 'Placeholder', 'output_shape': [[2, 4, 8]]},"
                 "       'outbounds': ['flat']},"
                 " 'flat': {'inbounds': ['x'], 'attr': {'type': 'Reshape', 'output_shape': [[2, 30]]},"
                 "       'outbounds': []}}",
                 422, "flat", "reshape from [4, 8] to [30] changes the number of elements");
    expect_error("{'fc': {'inbounds': [], 'outbounds': []}}", 422, "fc",
                 "'attr' is missing or not an object");
    expect_error("{'fc': {'inbounds': 'in', 'attr': {'type': 'fc'}}}", 422, "fc",
                 "'inbounds' must be an array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_resnet_fc),
        cmocka_unit_test(test_ft_transformer_unmerged),
        cmocka_unit_test(test_ft_transformer_merged),
        cmocka_unit_test(test_parallel_branches),
        cmocka_unit_test(test_exec_kernels),
        cmocka_unit_test(test_nnmeter_mlp),
        cmocka_unit_test(test_mlp20),
        cmocka_unit_test(test_nnmeter_onnx_style),
        cmocka_unit_test(test_nnmeter_constants_reshape),
        cmocka_unit_test(test_fusion_conditions),
        cmocka_unit_test(test_folding_and_merge_limit),
        cmocka_unit_test(test_deep_graph),
        cmocka_unit_test(test_error_not_a_graph),
        cmocka_unit_test(test_error_cycle),
        cmocka_unit_test(test_error_dangling_input),
        cmocka_unit_test(test_error_shapes),
        cmocka_unit_test(test_error_unknown_op),
        cmocka_unit_test(test_error_duplicate_names),
        cmocka_unit_test(test_error_too_many_nodes),
        cmocka_unit_test(test_error_attributes),
        cmocka_unit_test(test_error_standalone),
        cmocka_unit_test(test_error_batch_dtype),
        cmocka_unit_test(test_error_nnmeter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
