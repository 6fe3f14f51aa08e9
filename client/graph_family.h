/*
 * graph_family.h - generated network graphs for `jetprof validate`: families of
 * tabular networks that grow in width and depth, written in the native graph
 * format (docs/graphs.md) so the daemon measures them whole (POST
 * /v1/graphs/measure) and estimates them (POST /v1/estimate) from the same
 * text.
 *
 * Two families, each a grid of sizes:
 *   MLP             "mlp_w<width>_d<depth>": depth hidden blocks of linear ->
 *                   (batchnorm on every second block) -> relu -> dropout, then
 *                   linear -> softmax over GRAPH_FAMILY_CLASSES classes. A chain:
 *                   nothing runs side by side, merging changes nothing.
 *   FT-Transformer  "ftt_d<d_token>_b<blocks>": feature tokenizer, then per block
 *                   layernorm, the Q, K and V linears (three parallel branches of
 *                   one input: merged into one linear when merging is on),
 *                   attention, the output linear, a residual add, layernorm,
 *                   the FFN (linear -> gelu, linear) and a residual add; then
 *                   layernorm -> flatten -> linear -> softmax.
 * The sizes (enum graph_family_size) keep a CPU executor's measurement in
 * minutes for tiny and small; medium is the full grid for a board.
 *
 * Only ops the estimator supports are used, and every graph here is built with
 * graph_plan_build by the caller before it is sent (jetprof validate refuses to
 * send a graph the estimator would refuse). The output is deterministic: the
 * same size and families always give the same graphs in the same order.
 */
#ifndef JETPROF_CLIENT_GRAPH_FAMILY_H
#define JETPROF_CLIENT_GRAPH_FAMILY_H

#include <stdint.h>

#include <jansson.h>

#define GRAPH_FAMILY_CLASSES 10
#define GRAPH_FAMILY_MLP_FEATURES 32 /* numerical input features of an MLP */
#define GRAPH_FAMILY_FTT_FEATURES 8  /* numerical features = tokens of an FT-Transformer */
#define GRAPH_FAMILY_FTT_HEADS 8

enum graph_family_size {
    GRAPH_FAMILY_NONE,   /* no generated graphs */
    GRAPH_FAMILY_TINY,   /* 2 MLPs + 2 FT-Transformers, batch 32: the integration test */
    GRAPH_FAMILY_SMALL,  /* 4 + 4, batch 32-64: minutes on the CPU executor */
    GRAPH_FAMILY_MEDIUM, /* 12 + 9, batch 64-128: the full grid, for a board */
};

/* Which families (a bit set). */
#define GRAPH_FAMILY_KIND_MLP 1u
#define GRAPH_FAMILY_KIND_FTT 2u
#define GRAPH_FAMILY_KIND_ALL (GRAPH_FAMILY_KIND_MLP | GRAPH_FAMILY_KIND_FTT)

/* "none", "tiny", "small", "medium" -> *out: 0, or -1 for anything else. */
int graph_family_parse_size(const char *name, enum graph_family_size *out);
const char *graph_family_size_name(enum graph_family_size size);

/* "mlp", "ftt", "all", or a comma-separated list of mlp and ftt -> *kinds:
 * 0, or -1 for anything else. */
int graph_family_parse_kinds(const char *text, unsigned *kinds);

/*
 * One MLP: batch samples of GRAPH_FAMILY_MLP_FEATURES features, depth hidden
 * blocks of width features. name "mlp_w<width>_d<depth>". NULL when out of
 * memory (arguments are the caller's to keep sensible: width, depth >= 1).
 */
json_t *graph_family_mlp(int64_t batch, int64_t width, unsigned depth);

/*
 * One FT-Transformer: batch samples of GRAPH_FAMILY_FTT_FEATURES features,
 * tokens of width d_token (a multiple of GRAPH_FAMILY_FTT_HEADS), blocks
 * Transformer blocks, FFN width 2 x d_token. name "ftt_d<d_token>_b<blocks>".
 * NULL when out of memory.
 */
json_t *graph_family_ftt(int64_t batch, int64_t d_token, unsigned blocks);

/* Appends every graph of the chosen families at this size to out (a JSON
 * array): the MLPs first, then the FT-Transformers, smallest first.
 * 0, or -1 when out of memory (out may hold some of them). */
int graph_family_generate(enum graph_family_size size, unsigned kinds, json_t *out);

#endif
