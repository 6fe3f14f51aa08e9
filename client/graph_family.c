/*
 * graph_family.c - see graph_family.h: the MLP and FT-Transformer families
 * `jetprof validate` measures whole and compares with the estimator.
 *
 * The graphs are built node by node with jansson; a failed allocation anywhere
 * is remembered in the builder and turns the whole graph into NULL, so the
 * callers check one pointer.
 */
#include "graph_family.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* One size of the grid: the values each family is generated for. */
struct family_grid {
    int64_t mlp_batch;
    const int64_t *mlp_widths;
    size_t mlp_width_count;
    const unsigned *mlp_depths;
    size_t mlp_depth_count;
    int64_t ftt_batch;
    const int64_t *ftt_dims;
    size_t ftt_dim_count;
    const unsigned *ftt_blocks;
    size_t ftt_block_count;
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const int64_t tiny_widths[] = {64, 128};
static const unsigned tiny_depths[] = {2};
static const int64_t tiny_dims[] = {32, 64};
static const unsigned tiny_blocks[] = {1};

static const int64_t small_widths[] = {64, 256};
static const unsigned small_depths[] = {2, 4};
static const int64_t small_dims[] = {32, 64};
static const unsigned small_blocks[] = {1, 2};

static const int64_t medium_widths[] = {64, 128, 256, 512};
static const unsigned medium_depths[] = {2, 4, 6};
static const int64_t medium_dims[] = {32, 64, 128};
static const unsigned medium_blocks[] = {1, 2, 3};

static const struct family_grid grids[] = {
    [GRAPH_FAMILY_NONE] = {0},
    [GRAPH_FAMILY_TINY] = {32, tiny_widths, COUNT(tiny_widths), tiny_depths, COUNT(tiny_depths),
                           32, tiny_dims, COUNT(tiny_dims), tiny_blocks, COUNT(tiny_blocks)},
    [GRAPH_FAMILY_SMALL] = {64, small_widths, COUNT(small_widths), small_depths,
                            COUNT(small_depths), 32, small_dims, COUNT(small_dims), small_blocks,
                            COUNT(small_blocks)},
    [GRAPH_FAMILY_MEDIUM] = {128, medium_widths, COUNT(medium_widths), medium_depths,
                             COUNT(medium_depths), 64, medium_dims, COUNT(medium_dims),
                             medium_blocks, COUNT(medium_blocks)},
};

static const char *const size_names[] = {
    [GRAPH_FAMILY_NONE] = "none",
    [GRAPH_FAMILY_TINY] = "tiny",
    [GRAPH_FAMILY_SMALL] = "small",
    [GRAPH_FAMILY_MEDIUM] = "medium",
};

int graph_family_parse_size(const char *name, enum graph_family_size *out)
{
    for (size_t i = 0; name && i < COUNT(size_names); i++) {
        if (strcmp(name, size_names[i]) == 0) {
            *out = (enum graph_family_size)i;
            return 0;
        }
    }
    return -1;
}

const char *graph_family_size_name(enum graph_family_size size)
{
    return (size_t)size < COUNT(size_names) ? size_names[size] : "?";
}

int graph_family_parse_kinds(const char *text, unsigned *kinds)
{
    if (!text || !*text)
        return -1;
    unsigned k = 0;
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "mlp", 3) == 0)
            k |= GRAPH_FAMILY_KIND_MLP;
        else if (n == 3 && strncmp(p, "ftt", 3) == 0)
            k |= GRAPH_FAMILY_KIND_FTT;
        else if (n == 3 && strncmp(p, "all", 3) == 0)
            k |= GRAPH_FAMILY_KIND_ALL;
        else
            return -1;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    *kinds = k;
    return 0;
}

/* ---- building ---- */

struct builder {
    json_t *nodes;
    bool failed;
};

/* Appends node (may be NULL: a failed json_pack) to the builder's nodes. */
static void add(struct builder *b, json_t *node)
{
    if (!node || json_array_append_new(b->nodes, node) != 0)
        b->failed = true;
}

static void add1(struct builder *b, const char *name, const char *op, const char *in)
{
    add(b, json_pack("{s:s, s:s, s:[s]}", "name", name, "op", op, "inputs", in));
}

static void add2(struct builder *b, const char *name, const char *op, const char *in1,
                 const char *in2)
{
    add(b, json_pack("{s:s, s:s, s:[s,s]}", "name", name, "op", op, "inputs", in1, in2));
}

static void add_linear(struct builder *b, const char *name, const char *in, int64_t out)
{
    add(b, json_pack("{s:s, s:s, s:[s], s:I}", "name", name, "op", "linear", "inputs", in, "out",
                     (json_int_t)out));
}

static void add_dropout(struct builder *b, const char *name, const char *in, double p)
{
    add(b, json_pack("{s:s, s:s, s:[s], s:f}", "name", name, "op", "dropout", "inputs", in, "p",
                     p));
}

/* The graph object around the builder's nodes (consumed), NULL on any failure. */
static json_t *finish(struct builder *b, const char *name, const char *description, int64_t batch,
                      int64_t features, const char *output)
{
    json_t *g = NULL;
    if (!b->failed)
        g = json_pack("{s:s, s:s, s:I, s:s, s:[{s:s, s:[I]}], s:O, s:[s]}", "name", name,
                      "description", description, "batch", (json_int_t)batch, "dtype", "fp32",
                      "inputs", "name", "x", "shape", (json_int_t)features, "nodes", b->nodes,
                      "outputs", output);
    json_decref(b->nodes);
    b->nodes = NULL;
    return g;
}

json_t *graph_family_mlp(int64_t batch, int64_t width, unsigned depth)
{
    struct builder b = {.nodes = json_array()};
    if (!b.nodes)
        return NULL;
    char prev[64] = "x";
    for (unsigned i = 1; i <= depth; i++) {
        char fc[32], bn[32], relu[32], drop[32];
        snprintf(fc, sizeof fc, "fc%u", i);
        snprintf(bn, sizeof bn, "bn%u", i);
        snprintf(relu, sizeof relu, "relu%u", i);
        snprintf(drop, sizeof drop, "drop%u", i);
        add_linear(&b, fc, prev, width);
        /* every second block with batchnorm: linear_relu and linear_bn_relu both appear */
        if (i % 2 == 0) {
            add1(&b, bn, "batchnorm", fc);
            add1(&b, relu, "relu", bn);
        } else {
            add1(&b, relu, "relu", fc);
        }
        add_dropout(&b, drop, relu, 0.1);
        snprintf(prev, sizeof prev, "%s", drop);
    }
    add_linear(&b, "head", prev, GRAPH_FAMILY_CLASSES);
    add1(&b, "prob", "softmax", "head");
    char name[64], description[256];
    snprintf(name, sizeof name, "mlp_w%" PRId64 "_d%u", width, depth);
    snprintf(description, sizeof description,
             "generated MLP: %u blocks of Linear(%" PRId64 ") -> [BatchNorm] -> ReLU -> Dropout "
             "on %d features, %d-class softmax head",
             depth, width, GRAPH_FAMILY_MLP_FEATURES, GRAPH_FAMILY_CLASSES);
    return finish(&b, name, description, batch, GRAPH_FAMILY_MLP_FEATURES, "prob");
}

json_t *graph_family_ftt(int64_t batch, int64_t d_token, unsigned blocks)
{
    struct builder b = {.nodes = json_array()};
    if (!b.nodes)
        return NULL;
    add(&b, json_pack("{s:s, s:s, s:[s], s:I}", "name", "tok", "op", "tokenizer", "inputs", "x",
                      "d", (json_int_t)d_token));
    char prev[64] = "tok";
    for (unsigned i = 1; i <= blocks; i++) {
        enum { PARTS = 14 };
        static const char *const parts[PARTS] = {"ln1",  "q",    "k",     "v",    "attn",
                                                 "o",    "drop1", "add1", "ln2",  "ffn1",
                                                 "gelu", "drop2", "ffn2", "add2"};
        char n[PARTS][32];
        for (size_t p = 0; p < PARTS; p++)
            snprintf(n[p], sizeof n[p], "b%u_%s", i, parts[p]);
        add1(&b, n[0], "layernorm", prev);
        add_linear(&b, n[1], n[0], d_token); /* Q, K, V: three branches of one input */
        add_linear(&b, n[2], n[0], d_token);
        add_linear(&b, n[3], n[0], d_token);
        add(&b, json_pack("{s:s, s:s, s:[s,s,s], s:i}", "name", n[4], "op", "attention",
                          "inputs", n[1], n[2], n[3], "heads", GRAPH_FAMILY_FTT_HEADS));
        add_linear(&b, n[5], n[4], d_token);
        add_dropout(&b, n[6], n[5], 0.1);
        add2(&b, n[7], "add", n[6], prev); /* residual */
        add1(&b, n[8], "layernorm", n[7]);
        add_linear(&b, n[9], n[8], 2 * d_token);
        add1(&b, n[10], "gelu", n[9]);
        add_dropout(&b, n[11], n[10], 0.1);
        add_linear(&b, n[12], n[11], d_token);
        add2(&b, n[13], "add", n[12], n[7]);
        snprintf(prev, sizeof prev, "%s", n[13]);
    }
    add1(&b, "ln_f", "layernorm", prev);
    add1(&b, "flat", "flatten", "ln_f");
    add_linear(&b, "head", "flat", GRAPH_FAMILY_CLASSES);
    add1(&b, "prob", "softmax", "head");
    char name[64], description[256];
    snprintf(name, sizeof name, "ftt_d%" PRId64 "_b%u", d_token, blocks);
    snprintf(description, sizeof description,
             "generated FT-Transformer: tokenizer (d = %" PRId64 ") on %d features, %u pre-norm "
             "blocks (%d heads, FFN %" PRId64 " with GELU), %d-class softmax head",
             d_token, GRAPH_FAMILY_FTT_FEATURES, blocks, GRAPH_FAMILY_FTT_HEADS, 2 * d_token,
             GRAPH_FAMILY_CLASSES);
    return finish(&b, name, description, batch, GRAPH_FAMILY_FTT_FEATURES, "prob");
}

static int append(json_t *out, json_t *g)
{
    return g && json_array_append_new(out, g) == 0 ? 0 : -1;
}

int graph_family_generate(enum graph_family_size size, unsigned kinds, json_t *out)
{
    if ((size_t)size >= COUNT(grids))
        return -1;
    const struct family_grid *f = &grids[size];
    if (kinds & GRAPH_FAMILY_KIND_MLP)
        for (size_t w = 0; w < f->mlp_width_count; w++)
            for (size_t d = 0; d < f->mlp_depth_count; d++)
                if (append(out, graph_family_mlp(f->mlp_batch, f->mlp_widths[w],
                                                 f->mlp_depths[d])) != 0)
                    return -1;
    if (kinds & GRAPH_FAMILY_KIND_FTT)
        for (size_t dm = 0; dm < f->ftt_dim_count; dm++)
            for (size_t bl = 0; bl < f->ftt_block_count; bl++)
                if (append(out, graph_family_ftt(f->ftt_batch, f->ftt_dims[dm],
                                                 f->ftt_blocks[bl])) != 0)
                    return -1;
    return 0;
}
