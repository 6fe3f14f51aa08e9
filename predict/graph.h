/*
 * graph.h - a network graph turned into the fused kernels the GPU runs.
 *
 * Input: the native graph JSON (docs/graphs.md) or nn-Meter IR JSON, already
 * parsed by jansson. Steps (DESIGN.md, Estimation):
 *   parse and check: unique node names, known ops, inputs that exist, no cycle,
 *     at most max_nodes nodes;
 *   shape inference from the inputs' per-sample shapes and the batch;
 *   fuse with table-driven rules (linear -> batchnorm -> relu = linear_bn_relu,
 *     linear -> relu, linear -> gelu, add -> relu, dropout and identity vanish)
 *     when the intermediate result has no other consumer and is not an output;
 *   level: the breadth-first depth of every kernel from the inputs (a kernel's
 *     depth is one more than the deepest kernel it reads from; inputs are depth 0);
 *   merge (when asked): kernels at the same depth, of the same type and dtype and
 *     with the same input shape become one virtual kernel whose output width is
 *     the sum (linear*: out; row-wise kernels: cols), e.g. the Q, K and V
 *     projections become one linear.
 * Output: the kernels in execution order (depth, then first node order), each a
 * catalogue configuration with the graph nodes it covers.
 * Pure computation, no I/O.
 */
#ifndef JETPROF_PREDICT_GRAPH_H
#define JETPROF_PREDICT_GRAPH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../cudakern/catalog.h"
#include "../cudakern/exec.h"

#define GRAPH_NAME_MAX 64
#define GRAPH_DEFAULT_MAX_NODES 10000

/* Why a graph was refused: status 422 (bad graph) or 400 (not a graph at all),
 * the node at fault ("" when none) and one sentence naming it,
 * e.g. "node 'fc2': input 'fc9' is not a node or graph input". */
struct graph_error {
    unsigned status;
    char node[GRAPH_NAME_MAX];
    char detail[512];
};

struct graph_kernel {
    struct kernel_config cfg;
    unsigned depth;        /* 1 = reads only graph inputs */
    unsigned merged_count; /* kernels merged into this one (1 = not merged) */
    size_t node_count;
    char **nodes;          /* the graph nodes it covers, in graph order */
};

struct graph_plan {
    char format[16];       /* "native" or "nn-meter" */
    enum dtype dtype;
    int64_t batch;
    size_t graph_nodes;    /* nodes in the graph, inputs excluded */
    size_t count;
    struct graph_kernel *kernels;
};

struct graph_options {
    bool merge;            /* default true */
    unsigned max_nodes;    /* default GRAPH_DEFAULT_MAX_NODES */
};

/* 0 and *out filled, or -1 with *err. Checks every configuration against the
 * catalogue's ranges (a 422 naming the node when out of range). */
int graph_plan_build(const json_t *graph, const struct graph_options *opt,
                     struct graph_plan *out, struct graph_error *err);
void graph_plan_free(struct graph_plan *plan);

/* The plan's kernels as an executor plan (cudakern/exec.h), what a whole-graph
 * measurement runs: each kernel's configuration with its depth as its level, in
 * plan order. *out is malloc'd with plan->count entries; *levels (may be NULL)
 * receives the deepest level. 0, or -1 for an empty plan or out of memory. */
int graph_plan_exec_kernels(const struct graph_plan *plan, struct exec_plan_kernel **out,
                            unsigned *levels);

#endif
