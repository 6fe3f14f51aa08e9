/*
 * graph.c - a network graph (native JSON or nn-Meter IR) turned into the fused
 * catalogue kernels the GPU runs; the contract is graph.h, the format and the
 * rules are docs/graphs.md.
 *
 * Both formats are read into one array of nodes (graph inputs included, in
 * graph order), then a single pipeline runs:
 *
 *   resolve    names through an open-addressing hash (graphs of 10000 nodes
 *              are routine in a search, so no quadratic lookups);
 *   order      Kahn's algorithm; a node left over sits on or behind a cycle,
 *              and walking back through unprocessed inputs finds one on it;
 *   shapes     per-sample shapes in topological order, one rule per op;
 *   vanish     dropout, identity, flatten (and nn-Meter's reshape, BiasAdd)
 *              launch nothing: each is replaced by the value it passes on;
 *   fuse       the first rule of fusion_rules[] whose chain matches, starting
 *              from every unclaimed node in topological order; a chain only
 *              goes on through a result with exactly one reader that is not a
 *              graph output (otherwise the intermediate must exist in memory);
 *   depth      kernels come out of fusion in topological order, so one pass
 *              gives each 1 + the deepest kernel it reads;
 *   merge      kernels of one merge_rules[] type at the same depth whose
 *              parameters match except the summed one, while the sum stays in
 *              the catalogue's range;
 *   emit       groups by depth, then their first node's graph order.
 *
 * Everything is iterative: a graph 10000 nodes deep must not exhaust the
 * stack. Every refusal fills graph_error with the node at fault.
 */
#include "graph.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_INDEX SIZE_MAX
#define NAME_LEN_MAX (GRAPH_NAME_MAX - 1)
#define BATCH_MIN 1
#define BATCH_MAX 65536
/* Per-sample tensors: up to 4 dimensions of at most 2^20 each and 2^31
 * elements, so batch x elements (<= 2^47) never overflows int64_t. */
#define SHAPE_RANK_MAX 4
#define SHAPE_DIM_MAX 1048576
#define SHAPE_ELEMENTS_MAX (INT64_C(1) << 31)
#define OP_ARITY_MAX 3
#define OP_ATTR_MAX 2
#define CHAIN_MAX 3

/* ---- ops ---- */

enum op_kind {
    OP_INPUT,
    OP_CONST, /* nn-Meter: weights and other constants, dropped */
    OP_LINEAR,
    OP_BATCHNORM,
    OP_RELU,
    OP_GELU,
    OP_DROPOUT,
    OP_IDENTITY,
    OP_FLATTEN,
    OP_RESHAPE, /* nn-Meter only: the IR's output_shape says what to */
    OP_LAYERNORM,
    OP_SOFTMAX,
    OP_ADD,
    OP_CONCAT,
    OP_ATTENTION,
    OP_TOKENIZER,
};

enum shape_rule {
    SHAPE_GIVEN,      /* inputs: the graph says */
    SHAPE_NONE,       /* constants carry no activation */
    SHAPE_SAME,       /* elementwise and row-wise ops */
    SHAPE_LAST_TO_OUT,/* linear: [..., in] -> [..., out] */
    SHAPE_SAME_PAIR,  /* add: two equal shapes */
    SHAPE_CONCAT_LAST,/* concat: equal leading dims, last axis summed */
    SHAPE_ATTENTION,  /* q, k, v equal, [..., tokens, heads*head_dim] */
    SHAPE_TOKENIZE,   /* [features] -> [features, d] */
    SHAPE_FLATTEN,    /* -> [elements] */
    SHAPE_RESHAPE,    /* -> the IR's output_shape, same element count */
};

enum attr_type { ATTR_INT, ATTR_NUMBER };

/* An attribute: integers that become kernel parameters take their range from
 * the catalogue parameter named, so the catalogue stays the only list of ranges;
 * the others (eps, p, axis) are checked and otherwise do not change the cost. */
struct attr_spec {
    const char *name;
    enum attr_type type;
    bool required;
    const char *range_kernel, *range_param; /* catalogue range, or NULL */
    double min, max;                        /* otherwise */
    bool min_open, max_open;
    const char *doc;
};

struct op_spec {
    enum op_kind kind;
    const char *name; /* the native op name */
    bool native;      /* accepted in native graphs */
    unsigned arity;
    enum shape_rule shape;
    bool vanishes; /* launches nothing at inference */
    unsigned attr_count;
    struct attr_spec attrs[OP_ATTR_MAX]; /* attrs[0] of type int is the node's value */
};

#define ATTR_EPS {"eps", ATTR_NUMBER, false, NULL, NULL, 0, 1, true, false, "numerical epsilon"}
#define ATTR_AXIS(what)                                                                      \
    {"axis", ATTR_INT, false, NULL, NULL, -1, -1, false, false, what}

static const struct op_spec op_table[] = {
    {OP_INPUT, "input", false, 0, SHAPE_GIVEN, false, 0, {{0}}},
    {OP_CONST, "const", false, 0, SHAPE_NONE, false, 0, {{0}}},
    {OP_LINEAR, "linear", true, 1, SHAPE_LAST_TO_OUT, false, 1,
     {{"out", ATTR_INT, true, "linear", "out", 0, 0, false, false, "output features"}}},
    {OP_BATCHNORM, "batchnorm", true, 1, SHAPE_SAME, false, 1, {ATTR_EPS}},
    {OP_RELU, "relu", true, 1, SHAPE_SAME, false, 0, {{0}}},
    {OP_GELU, "gelu", true, 1, SHAPE_SAME, false, 0, {{0}}},
    {OP_DROPOUT, "dropout", true, 1, SHAPE_SAME, true, 1,
     {{"p", ATTR_NUMBER, false, NULL, NULL, 0, 1, false, true,
       "drop probability (training only)"}}},
    {OP_IDENTITY, "identity", true, 1, SHAPE_SAME, true, 0, {{0}}},
    {OP_FLATTEN, "flatten", true, 1, SHAPE_FLATTEN, true, 0, {{0}}},
    {OP_RESHAPE, "reshape", false, 1, SHAPE_RESHAPE, true, 0, {{0}}},
    {OP_LAYERNORM, "layernorm", true, 1, SHAPE_SAME, false, 1, {ATTR_EPS}},
    {OP_SOFTMAX, "softmax", true, 1, SHAPE_SAME, false, 1, {ATTR_AXIS("the last axis, -1")}},
    {OP_ADD, "add", true, 2, SHAPE_SAME_PAIR, false, 0, {{0}}},
    {OP_CONCAT, "concat", true, 2, SHAPE_CONCAT_LAST, false, 1,
     {ATTR_AXIS("the last axis, -1")}},
    {OP_ATTENTION, "attention", true, 3, SHAPE_ATTENTION, false, 1,
     {{"heads", ATTR_INT, true, "attention", "heads", 0, 0, false, false, "attention heads"}}},
    {OP_TOKENIZER, "tokenizer", true, 1, SHAPE_TOKENIZE, false, 1,
     {{"d", ATTR_INT, true, "tokenizer", "d", 0, 0, false, false, "token width"}}},
};
#define OP_COUNT (sizeof(op_table) / sizeof(op_table[0]))

static const struct op_spec *op_of_kind(enum op_kind kind)
{
    for (size_t i = 0; i < OP_COUNT; i++)
        if (op_table[i].kind == kind)
            return &op_table[i];
    return NULL;
}

static const struct op_spec *op_find_native(const char *name)
{
    for (size_t i = 0; i < OP_COUNT; i++)
        if (op_table[i].native && strcmp(op_table[i].name, name) == 0)
            return &op_table[i];
    return NULL;
}

/* nn-Meter IR type names (its converters keep the framework's op names, its
 * kernel detector uses short ones) and jetprof's own names. The first name of
 * each op is the one error messages list. */
static const struct {
    const char *type;
    enum op_kind kind;
} nnmeter_types[] = {
    {"fc", OP_LINEAR},          {"FC", OP_LINEAR},
    {"Dense", OP_LINEAR},       {"dense", OP_LINEAR},
    {"MatMul", OP_LINEAR},      {"matmul", OP_LINEAR},
    {"Gemm", OP_LINEAR},        {"gemm", OP_LINEAR},
    {"Linear", OP_LINEAR},      {"linear", OP_LINEAR},
    {"bn", OP_BATCHNORM},       {"batchnorm", OP_BATCHNORM},
    {"BatchNorm", OP_BATCHNORM},{"BatchNormalization", OP_BATCHNORM},
    {"BatchNorm1d", OP_BATCHNORM}, {"FusedBatchNorm", OP_BATCHNORM},
    {"FusedBatchNormV3", OP_BATCHNORM},
    {"relu", OP_RELU},          {"Relu", OP_RELU},
    {"ReLU", OP_RELU},
    {"gelu", OP_GELU},          {"Gelu", OP_GELU},
    {"GELU", OP_GELU},
    {"dropout", OP_DROPOUT},    {"Dropout", OP_DROPOUT},
    {"Identity", OP_IDENTITY},  {"identity", OP_IDENTITY},
    /* the bias of the fc before it: part of the linear kernel's epilogue */
    {"BiasAdd", OP_IDENTITY},   {"Biasadd", OP_IDENTITY},
    {"Flatten", OP_FLATTEN},    {"flatten", OP_FLATTEN},
    {"Reshape", OP_RESHAPE},    {"reshape", OP_RESHAPE},
    {"layernorm", OP_LAYERNORM},{"LayerNorm", OP_LAYERNORM},
    {"LayerNormalization", OP_LAYERNORM}, {"layer_norm", OP_LAYERNORM},
    {"softmax", OP_SOFTMAX},    {"Softmax", OP_SOFTMAX},
    {"add", OP_ADD},            {"Add", OP_ADD},
    {"AddV2", OP_ADD},
    {"concat", OP_CONCAT},      {"Concat", OP_CONCAT},
    {"ConcatV2", OP_CONCAT},
    {"attention", OP_ATTENTION},{"Attention", OP_ATTENTION},
    {"tokenizer", OP_TOKENIZER},{"Tokenizer", OP_TOKENIZER},
    {"input", OP_INPUT},        {"Input", OP_INPUT},
    {"Placeholder", OP_INPUT},  {"placeholder", OP_INPUT},
    {"Const", OP_CONST},        {"Constant", OP_CONST},
    {"const", OP_CONST},
};
#define NNMETER_TYPE_COUNT (sizeof(nnmeter_types) / sizeof(nnmeter_types[0]))

/* Where nn-Meter IR nodes keep the integer attribute (attr.attr), in the order
 * looked at; without one, linear and tokenizer take it from output_shape. */
static const struct {
    enum op_kind kind;
    const char *keys[4];
    bool from_output_shape;
} nnmeter_attr_keys[] = {
    {OP_LINEAR, {"out", "units", "out_features", "cout"}, true},
    {OP_ATTENTION, {"heads", "num_heads", "n_heads", NULL}, false},
    {OP_TOKENIZER, {"d", "d_token", NULL, NULL}, true},
};

/* ---- fusion and merge tables ---- */

/* Chains of ops -> the catalogue kernel they run as. Tried in order for every
 * node not yet in a kernel; the first whose whole chain matches wins, so longer
 * chains come first. An op that starts no chain (relu, gelu, batchnorm) has no
 * kernel of its own. */
static const struct fusion_rule {
    unsigned length;
    enum op_kind chain[CHAIN_MAX];
    const char *kernel;
} fusion_rules[] = {
    {3, {OP_LINEAR, OP_BATCHNORM, OP_RELU}, "linear_bn_relu"},
    {2, {OP_LINEAR, OP_BATCHNORM}, "linear_bn"},
    {2, {OP_LINEAR, OP_RELU}, "linear_relu"},
    {2, {OP_LINEAR, OP_GELU}, "linear_gelu"},
    {1, {OP_LINEAR}, "linear"},
    {2, {OP_ADD, OP_RELU}, "add_relu"},
    {1, {OP_ADD}, "add"},
    {1, {OP_LAYERNORM}, "layernorm"},
    {1, {OP_SOFTMAX}, "softmax"},
    {1, {OP_CONCAT}, "concat"},
    {1, {OP_ATTENTION}, "attention"},
    {1, {OP_TOKENIZER}, "tokenizer"},
};
#define FUSION_RULE_COUNT (sizeof(fusion_rules) / sizeof(fusion_rules[0]))

/* Kernels that merge, and the parameter that becomes the sum; all other
 * parameters must be equal (linear*: batch and in; row-wise: rows). */
static const struct {
    const char *kernel;
    const char *sum_param;
} merge_rules[] = {
    {"linear", "out"},      {"linear_relu", "out"}, {"linear_gelu", "out"},
    {"linear_bn", "out"},   {"linear_bn_relu", "out"}, {"layernorm", "cols"},
    {"softmax", "cols"},    {"add", "cols"},        {"add_relu", "cols"},
};
#define MERGE_RULE_COUNT (sizeof(merge_rules) / sizeof(merge_rules[0]))

/* ---- state ---- */

struct shape {
    unsigned rank;
    int64_t dims[SHAPE_RANK_MAX];
};

struct node {
    const char *name; /* points into the graph's JSON */
    const struct op_spec *op;
    size_t order; /* position in the graph */
    unsigned input_count;
    size_t inputs[OP_ARITY_MAX];
    unsigned input_slot[OP_ARITY_MAX]; /* nn-Meter: position in inbounds/input_shape */
    int64_t value;     /* the op's integer attribute: out, heads or d */
    struct shape shape;
    const json_t *ir;  /* nn-Meter: the node's "attr" object */
    size_t raw_start;  /* nn-Meter: inbounds in builder.raw */
    unsigned raw_count;
    bool is_const;
    bool implicit;     /* nn-Meter: a graph input made from a node's input_shape */
    bool listed_output;
    bool is_output;
    size_t source;     /* the node whose value this is once vanishing ops are gone */
    unsigned readers;  /* nodes reading this one directly */
    unsigned consumers;/* kernel ops reading its value (through vanishing ops) */
    size_t consumer[2];/* the first two of them */
    size_t kernel;
};

struct kern {
    struct kernel_config cfg;
    size_t head;
    unsigned node_count;
    size_t nodes[CHAIN_MAX]; /* in graph order */
    size_t first_order;
    unsigned depth;
    int sum_param; /* merge_rules' parameter index, or -1 */
    size_t leader;
    unsigned merged_count;
};

struct builder {
    struct graph_error *err;
    unsigned max_nodes;
    bool nnmeter;
    enum dtype dtype;
    int64_t batch; /* 0 until known */
    size_t batch_from; /* nn-Meter: the input that set it */
    struct node *nodes;
    size_t count, cap;
    size_t *slots; /* name hash: node index + 1, 0 = empty */
    size_t slot_mask;
    size_t *raw; /* nn-Meter inbounds, resolved */
    size_t *topo;
    size_t *reader_start, *reader;
    struct kern *kerns;
    size_t kern_count;
    size_t graph_nodes;
};

/* ---- errors ---- */

/* Cuts a trailing incomplete UTF-8 sequence (left by truncation), so the
 * message stays valid JSON string material. */
static void utf8_trim(char *s)
{
    size_t len = strlen(s), i = len;
    unsigned back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1
                  : (lead & 0xE0) == 0xC0 ? 2
                  : (lead & 0xF0) == 0xE0 ? 3
                  : (lead & 0xF8) == 0xF0 ? 4
                                          : 1;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

static void copy_trimmed(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
    utf8_trim(dst);
}

static int fail(struct builder *b, unsigned status, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct builder *b, unsigned status, const char *node, const char *fmt, ...)
{
    b->err->status = status;
    copy_trimmed(b->err->node, sizeof b->err->node, node);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err->detail, sizeof b->err->detail, fmt, ap);
    va_end(ap);
    utf8_trim(b->err->detail);
    return -1;
}

static int fail_oom(struct builder *b) { return fail(b, 500, "", "out of memory"); }

/* A name or member key shortened for a message (the key may be anything). */
static const char *shown(const char *s, char *buf, size_t cap)
{
    if (strlen(s) < 48)
        return s;
    snprintf(buf, cap, "%.44s...", s);
    utf8_trim(buf);
    return buf;
}

/* ---- shapes ---- */

static int64_t shape_elements(const struct shape *s)
{
    int64_t n = 1;
    for (unsigned i = 0; i < s->rank; i++)
        n *= s->dims[i];
    return n;
}

/* Product of all but the last dimension: what folds into batch or rows. */
static int64_t shape_leading(const struct shape *s)
{
    int64_t n = 1;
    for (unsigned i = 0; i + 1 < s->rank; i++)
        n *= s->dims[i];
    return n;
}

static int64_t shape_last(const struct shape *s) { return s->dims[s->rank - 1]; }

static bool shape_equal(const struct shape *a, const struct shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (unsigned i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

/* "[8, 64]", or "[32, 8, 64]" with the batch in front when batch > 0. */
static const char *shape_text(const struct shape *s, int64_t batch, char *buf, size_t cap)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, cap, "[");
    if (batch > 0 && at < cap)
        at += (size_t)snprintf(buf + at, cap - at, "%" PRId64 "%s", batch, s->rank ? ", " : "");
    for (unsigned i = 0; i < s->rank && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRId64, i ? ", " : "", s->dims[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

/* A shape from a JSON array, the first `skip` entries (the batch) returned in
 * *first when asked. 0, or -1 with why. */
static int shape_from_json(const json_t *arr, size_t skip, struct shape *out, int64_t *first,
                           char *why, size_t whylen)
{
    if (!json_is_array(arr)) {
        snprintf(why, whylen, "is not an array of integers");
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n < skip + 1 || n - skip > SHAPE_RANK_MAX) {
        snprintf(why, whylen, "has %zu dimensions; %s 1 to %d%s", n,
                 skip ? "it needs the batch, then" : "it needs", SHAPE_RANK_MAX,
                 skip ? " per-sample dimensions" : "");
        return -1;
    }
    memset(out, 0, sizeof *out);
    int64_t elements = 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v)) {
            snprintf(why, whylen, "has a dimension that is not an integer");
            return -1;
        }
        json_int_t d = json_integer_value(v);
        if (i < skip) {
            if (first)
                *first = (int64_t)d;
            continue;
        }
        if (d < 1 || d > SHAPE_DIM_MAX) {
            snprintf(why, whylen, "has dimension %" JSON_INTEGER_FORMAT " outside [1, %d]", d,
                     SHAPE_DIM_MAX);
            return -1;
        }
        out->dims[out->rank++] = (int64_t)d;
        elements *= (int64_t)d;
        if (elements > SHAPE_ELEMENTS_MAX) {
            snprintf(why, whylen, "has more than 2^31 elements per sample");
            return -1;
        }
    }
    return 0;
}

/* "nodes[12]" into buf (32 bytes): the place named in messages, made for every
 * node and input of every graph, so without snprintf. */
static void index_label(char *buf, const char *prefix, size_t i)
{
    size_t at = strlen(prefix);
    char digits[24];
    size_t n = 0;
    memcpy(buf, prefix, at);
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    while (n)
        buf[at++] = digits[--n];
    buf[at++] = ']';
    buf[at] = '\0';
}

/* ---- names ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static int map_init(struct builder *b, size_t entries)
{
    size_t cap = 16;
    while (cap < entries * 2 + 1)
        cap *= 2;
    b->slots = calloc(cap, sizeof *b->slots);
    if (!b->slots)
        return -1;
    b->slot_mask = cap - 1;
    return 0;
}

static size_t map_find(const struct builder *b, const char *name)
{
    for (size_t i = (size_t)name_hash(name) & b->slot_mask;; i = (i + 1) & b->slot_mask) {
        size_t slot = b->slots[i];
        if (slot == 0)
            return NO_INDEX;
        if (strcmp(b->nodes[slot - 1].name, name) == 0)
            return slot - 1;
    }
}

/* NO_INDEX when added, else the node that already has the name. */
static size_t map_insert(struct builder *b, size_t index)
{
    const char *name = b->nodes[index].name;
    for (size_t i = (size_t)name_hash(name) & b->slot_mask;; i = (i + 1) & b->slot_mask) {
        size_t slot = b->slots[i];
        if (slot == 0) {
            b->slots[i] = index + 1;
            return NO_INDEX;
        }
        if (strcmp(b->nodes[slot - 1].name, name) == 0)
            return slot - 1;
    }
}

/* A node name: 1 to 63 bytes. NULL after fail(). */
static const char *check_name_text(struct builder *b, const char *name, size_t len,
                                   const char *where)
{
    if (len == 0) {
        fail(b, 422, "", "%s: the name is empty", where);
        return NULL;
    }
    if (len > NAME_LEN_MAX || strlen(name) != len) {
        char buf[64];
        fail(b, 422, name, "node '%s': names are at most %d bytes, without NUL characters",
             shown(name, buf, sizeof buf), NAME_LEN_MAX);
        return NULL;
    }
    return name;
}

static const char *check_name(struct builder *b, const json_t *v, const char *where)
{
    if (!json_is_string(v)) {
        fail(b, 422, "", "%s: 'name' must be a non-empty string", where);
        return NULL;
    }
    return check_name_text(b, json_string_value(v), json_string_length(v), where);
}

static int grow_nodes(struct builder *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 16;
    while (cap < need)
        cap *= 2;
    struct node *n = realloc(b->nodes, cap * sizeof *n);
    if (!n)
        return -1;
    memset(n + b->cap, 0, (cap - b->cap) * sizeof *n);
    b->nodes = n;
    b->cap = cap;
    return 0;
}

static size_t add_node(struct builder *b, const char *name, const struct op_spec *op)
{
    if (grow_nodes(b, b->count + 1) != 0)
        return NO_INDEX;
    struct node *n = &b->nodes[b->count];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->op = op;
    n->order = b->count;
    n->source = b->count;
    n->kernel = NO_INDEX;
    n->consumer[0] = n->consumer[1] = NO_INDEX;
    return b->count++;
}

/* ---- attributes ---- */

static int attr_range(struct builder *b, const struct attr_spec *a, double *min, double *max)
{
    if (!a->range_kernel) {
        *min = a->min;
        *max = a->max;
        return 0;
    }
    const struct catalog_kernel *k = catalog_find(a->range_kernel);
    int p = k ? catalog_param_index(k, a->range_param) : -1;
    if (p < 0)
        return fail(b, 500, "", "internal: catalogue parameter %s.%s is missing",
                    a->range_kernel, a->range_param);
    *min = (double)k->params[p].min;
    *max = (double)k->params[p].max;
    return 0;
}

static void range_text(const struct attr_spec *a, double min, double max, char *buf, size_t cap)
{
    if (a->type == ATTR_INT && min == max)
        snprintf(buf, cap, "%.0f", min);
    else if (a->type == ATTR_INT)
        snprintf(buf, cap, "an integer in [%.0f, %.0f]", min, max);
    else
        snprintf(buf, cap, "a number in %c%g, %g%c", a->min_open ? '(' : '[', min, max,
                 a->max_open ? ')' : ']');
}

/* Checks one attribute value; an integer attrs[0] becomes the node's value.
 * The range's text is only made for a message: this runs for every attribute
 * of every graph, and snprintf of doubles was most of it. */
static int attr_check(struct builder *b, struct node *n, unsigned which, const json_t *v,
                      const char *key)
{
    const struct attr_spec *a = &n->op->attrs[which];
    double min, max;
    char range[64];
    if (attr_range(b, a, &min, &max) != 0)
        return -1;
    if (a->type == ATTR_INT) {
        if (!json_is_integer(v)) {
            range_text(a, min, max, range, sizeof range);
            return fail(b, 422, n->name, "node '%s': attribute '%s' must be %s", n->name, key,
                        range);
        }
        json_int_t x = json_integer_value(v);
        if ((double)x < min || (double)x > max) {
            range_text(a, min, max, range, sizeof range);
            return fail(b, 422, n->name,
                        "node '%s': attribute '%s' = %" JSON_INTEGER_FORMAT
                        " is outside the range; %s (%s) must be %s",
                        n->name, key, x, key, a->doc, range);
        }
        if (which == 0)
            n->value = (int64_t)x;
        return 0;
    }
    if (!json_is_number(v)) {
        range_text(a, min, max, range, sizeof range);
        return fail(b, 422, n->name, "node '%s': attribute '%s' must be %s", n->name, key,
                    range);
    }
    double x = json_number_value(v);
    if (x < min || x > max || (a->min_open && x == min) || (a->max_open && x == max)) {
        range_text(a, min, max, range, sizeof range);
        return fail(b, 422, n->name,
                    "node '%s': attribute '%s' = %g is outside the range; %s (%s) must be %s",
                    n->name, key, x, key, a->doc, range);
    }
    return 0;
}

static int attr_missing(struct builder *b, const struct node *n, unsigned which)
{
    const struct attr_spec *a = &n->op->attrs[which];
    double min, max;
    char range[64];
    if (attr_range(b, a, &min, &max) != 0)
        return -1;
    range_text(a, min, max, range, sizeof range);
    return fail(b, 422, n->name, "node '%s': %s needs attribute '%s' (%s, %s)", n->name,
                n->op->name, a->name, a->doc, range);
}

/* ---- native format ---- */

static bool in_list(const char *key, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

static void native_op_list(char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < OP_COUNT && at < cap; i++)
        if (op_table[i].native)
            at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", op_table[i].name);
}

static int native_inputs(struct builder *b, const json_t *inputs)
{
    static const char *const members[] = {"name", "shape"};
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        const json_t *in = json_array_get(inputs, i);
        char where[32], why[128], buf[64];
        index_label(where, "inputs[", i);
        if (!json_is_object(in))
            return fail(b, 422, "", "%s must be an object {\"name\", \"shape\"}", where);
        const char *name = check_name(b, json_object_get(in, "name"), where);
        if (!name)
            return -1;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)in, key, val) {
            if (!in_list(key, members, 2))
                return fail(b, 422, name,
                            "input '%s': unknown member '%s' (an input has name and shape)",
                            name, shown(key, buf, sizeof buf));
        }
        size_t at = add_node(b, name, op_of_kind(OP_INPUT));
        if (at == NO_INDEX)
            return fail_oom(b);
        if (map_insert(b, at) != NO_INDEX)
            return fail(b, 422, name, "input '%s': the name is used twice", name);
        const json_t *shape = json_object_get(in, "shape");
        if (!shape)
            return fail(b, 422, name,
                        "input '%s': 'shape' is missing (the per-sample shape, e.g. [32])", name);
        if (shape_from_json(shape, 0, &b->nodes[at].shape, NULL, why, sizeof why) != 0)
            return fail(b, 422, name, "input '%s': shape %s", name, why);
    }
    return 0;
}

static int native_node(struct builder *b, const json_t *obj, size_t at)
{
    struct node *n = &b->nodes[at];
    char ops[256], buf[64];
    const json_t *op = json_object_get(obj, "op");
    if (!json_is_string(op)) {
        native_op_list(ops, sizeof ops);
        return fail(b, 422, n->name, "node '%s': 'op' is missing or not a string (ops: %s)",
                    n->name, ops);
    }
    n->op = op_find_native(json_string_value(op));
    if (!n->op) {
        native_op_list(ops, sizeof ops);
        return fail(b, 422, n->name, "node '%s': unknown op '%s'; the ops are %s", n->name,
                    shown(json_string_value(op), buf, sizeof buf), ops);
    }
    const json_t *ins = json_object_get(obj, "inputs");
    if (!json_is_array(ins))
        return fail(b, 422, n->name, "node '%s': 'inputs' must be an array of %u node name%s",
                    n->name, n->op->arity, n->op->arity == 1 ? "" : "s");
    if (json_array_size(ins) != n->op->arity)
        return fail(b, 422, n->name, "node '%s': %s takes %u input%s, 'inputs' has %zu",
                    n->name, n->op->name, n->op->arity, n->op->arity == 1 ? "" : "s",
                    json_array_size(ins));
    for (unsigned i = 0; i < n->op->arity; i++) {
        const json_t *v = json_array_get(ins, i);
        if (!json_is_string(v))
            return fail(b, 422, n->name, "node '%s': inputs[%u] is not a string", n->name, i);
        size_t src = map_find(b, json_string_value(v));
        if (src == NO_INDEX)
            return fail(b, 422, n->name, "node '%s': input '%s' is not a node or graph input",
                        n->name, shown(json_string_value(v), buf, sizeof buf));
        n->inputs[i] = src;
    }
    n->input_count = n->op->arity;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        if (strcmp(key, "name") == 0 || strcmp(key, "op") == 0 || strcmp(key, "inputs") == 0)
            continue;
        unsigned a = 0;
        while (a < n->op->attr_count && strcmp(n->op->attrs[a].name, key) != 0)
            a++;
        if (a == n->op->attr_count) {
            char takes[96] = "no attributes";
            size_t pos = 0;
            for (unsigned i = 0; i < n->op->attr_count && pos < sizeof takes; i++)
                pos += (size_t)snprintf(takes + pos, sizeof takes - pos, "%s%s", i ? ", " : "",
                                        n->op->attrs[i].name);
            return fail(b, 422, n->name, "node '%s': unknown member '%s' (%s takes %s)",
                        n->name, shown(key, buf, sizeof buf), n->op->name, takes);
        }
        if (attr_check(b, n, a, val, key) != 0)
            return -1;
    }
    for (unsigned a = 0; a < n->op->attr_count; a++)
        if (n->op->attrs[a].required && !json_object_get(obj, n->op->attrs[a].name))
            return attr_missing(b, n, a);
    return 0;
}

static int parse_native(struct builder *b, const json_t *g)
{
    static const char *const members[] = {"name",   "description", "batch", "dtype",
                                          "inputs", "nodes",       "outputs"};
    const char *key;
    json_t *val;
    char buf[64];
    json_object_foreach((json_t *)g, key, val) {
        if (!in_list(key, members, sizeof members / sizeof members[0]))
            return fail(b, 422, "",
                        "unknown graph member '%s' (a native graph has name, description, "
                        "batch, dtype, inputs, nodes and outputs)",
                        shown(key, buf, sizeof buf));
    }
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(g, members[i]);
        if (v && !json_is_string(v))
            return fail(b, 422, "", "'%s' must be a string", members[i]);
    }
    const json_t *batch = json_object_get(g, "batch");
    if (!batch)
        return fail(b, 422, "",
                    "'batch' is missing: the samples per inference, an integer in [%d, %d]",
                    BATCH_MIN, BATCH_MAX);
    if (!json_is_integer(batch))
        return fail(b, 422, "", "'batch' must be an integer in [%d, %d]", BATCH_MIN, BATCH_MAX);
    if (json_integer_value(batch) < BATCH_MIN || json_integer_value(batch) > BATCH_MAX)
        return fail(b, 422, "", "'batch' = %" JSON_INTEGER_FORMAT " is outside [%d, %d]",
                    json_integer_value(batch), BATCH_MIN, BATCH_MAX);
    b->batch = (int64_t)json_integer_value(batch);
    const json_t *dtype = json_object_get(g, "dtype");
    if (dtype && (!json_is_string(dtype) || dtype_parse(json_string_value(dtype), &b->dtype) != 0))
        return fail(b, 422, "", "'dtype' must be \"fp32\" or \"fp16\"");

    const json_t *inputs = json_object_get(g, "inputs");
    const json_t *nodes = json_object_get(g, "nodes");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0)
        return fail(b, 422, "",
                    "'inputs' must be a non-empty array of {\"name\", \"shape\"} (the "
                    "per-sample shape, without the batch)");
    if (json_array_size(nodes) == 0)
        return fail(b, 422, "", "'nodes' is empty: a graph needs at least one node");
    size_t ni = json_array_size(inputs), nn = json_array_size(nodes);
    if (ni > b->max_nodes)
        return fail(b, 422, "", "the graph has %zu inputs, more than the limit of %u", ni,
                    b->max_nodes);
    if (nn > b->max_nodes) {
        const json_t *name = json_object_get(json_array_get(nodes, b->max_nodes), "name");
        const char *s = json_is_string(name) ? json_string_value(name) : "";
        return fail(b, 422, strlen(s) <= NAME_LEN_MAX ? s : "",
                    "node '%s' (nodes[%u]) is past the limit: the graph has %zu nodes, at "
                    "most %u are accepted",
                    shown(s, buf, sizeof buf), b->max_nodes, nn, b->max_nodes);
    }
    if (grow_nodes(b, ni + nn) != 0 || map_init(b, ni + nn) != 0)
        return fail_oom(b);
    if (native_inputs(b, inputs) != 0)
        return -1;
    /* All names first: a node may read one listed after it. */
    for (size_t i = 0; i < nn; i++) {
        const json_t *obj = json_array_get(nodes, i);
        char where[32];
        index_label(where, "nodes[", i);
        if (!json_is_object(obj))
            return fail(b, 422, "", "%s must be an object {\"name\", \"op\", \"inputs\", ...}",
                        where);
        const char *name = check_name(b, json_object_get(obj, "name"), where);
        if (!name)
            return -1;
        size_t at = add_node(b, name, NULL);
        if (at == NO_INDEX)
            return fail_oom(b);
        size_t had = map_insert(b, at);
        if (had != NO_INDEX) {
            if (had < ni)
                return fail(b, 422, name, "node '%s': the name is already an input's", name);
            return fail(b, 422, name, "node '%s': the name is used twice (nodes[%zu] and %s)",
                        name, had - ni, where);
        }
    }
    for (size_t i = 0; i < nn; i++)
        if (native_node(b, json_array_get(nodes, i), ni + i) != 0)
            return -1;
    b->graph_nodes = nn;

    const json_t *outputs = json_object_get(g, "outputs");
    if (outputs) {
        if (!json_is_array(outputs) || json_array_size(outputs) == 0)
            return fail(b, 422, "", "'outputs' must be a non-empty array of node names");
        for (size_t i = 0; i < json_array_size(outputs); i++) {
            const json_t *v = json_array_get(outputs, i);
            if (!json_is_string(v))
                return fail(b, 422, "", "outputs[%zu] is not a string", i);
            const char *s = json_string_value(v);
            size_t at = map_find(b, s);
            if (at == NO_INDEX || at < ni)
                return fail(b, 422, strlen(s) <= NAME_LEN_MAX ? s : "",
                            "outputs[%zu]: '%s' is not a node of the graph", i,
                            shown(s, buf, sizeof buf));
            b->nodes[at].listed_output = true;
        }
    }
    return 0;
}

/* ---- nn-Meter IR ---- */

static const struct op_spec *nnmeter_op(const char *type)
{
    for (size_t i = 0; i < NNMETER_TYPE_COUNT; i++)
        if (strcmp(nnmeter_types[i].type, type) == 0)
            return op_of_kind(nnmeter_types[i].kind);
    return NULL;
}

static void nnmeter_type_list(char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NNMETER_TYPE_COUNT && at < cap; i++) {
        bool first = true;
        for (size_t j = 0; j < i; j++)
            if (nnmeter_types[j].kind == nnmeter_types[i].kind)
                first = false;
        if (first)
            at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? ", " : "",
                                   nnmeter_types[i].type);
    }
}

/* A native graph has a "nodes" array; an nn-Meter IR graph is an object of
 * node objects with inbounds/attr/outbounds (a string "dtype" member aside). */
static bool looks_nnmeter(const json_t *g)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)g, key, val) {
        if (strcmp(key, "dtype") == 0 && json_is_string(val))
            continue;
        return json_is_object(val) &&
               (json_object_get(val, "inbounds") || json_object_get(val, "attr") ||
                json_object_get(val, "outbounds"));
    }
    return false;
}

static int strings_array(const json_t *v)
{
    if (!json_is_array(v))
        return -1;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return -1;
    return 0;
}

/* The IR's full output shape ([batch, ...]) split into batch and per-sample. */
static int nnmeter_output_shape(struct builder *b, const struct node *n, struct shape *out,
                                int64_t *batch, bool *present)
{
    const json_t *os = json_object_get(n->ir, "output_shape");
    *present = false;
    if (!os)
        return 0;
    char why[128];
    if (!json_is_array(os) || json_array_size(os) == 0)
        return fail(b, 422, n->name, "node '%s': output_shape must be a list of shapes",
                    n->name);
    if (shape_from_json(json_array_get(os, 0), 1, out, batch, why, sizeof why) != 0)
        return fail(b, 422, n->name, "node '%s': output_shape[0] %s", n->name, why);
    *present = true;
    return 0;
}

static int nnmeter_batch(struct builder *b, size_t at, int64_t batch, const char *what)
{
    const struct node *n = &b->nodes[at];
    if (batch < BATCH_MIN || batch > BATCH_MAX)
        return fail(b, 422, n->name,
                    "node '%s': batch %" PRId64 " (the first dimension of its %s) is outside "
                    "[%d, %d]",
                    n->name, batch, what, BATCH_MIN, BATCH_MAX);
    if (b->batch == 0) {
        b->batch = batch;
        b->batch_from = at;
        return 0;
    }
    if (batch != b->batch)
        return fail(b, 422, n->name,
                    "node '%s': batch %" PRId64 " (the first dimension of its %s) differs from "
                    "%" PRId64 " of '%s'",
                    n->name, batch, what, b->batch, b->nodes[b->batch_from].name);
    return 0;
}

static int nnmeter_attr(struct builder *b, size_t at)
{
    struct node *n = &b->nodes[at];
    for (size_t i = 0; i < sizeof nnmeter_attr_keys / sizeof nnmeter_attr_keys[0]; i++) {
        if (nnmeter_attr_keys[i].kind != n->op->kind)
            continue;
        const json_t *attrs = json_object_get(n->ir, "attr");
        for (unsigned k = 0; k < 4 && nnmeter_attr_keys[i].keys[k]; k++) {
            const json_t *v = json_object_get(attrs, nnmeter_attr_keys[i].keys[k]);
            if (v)
                return attr_check(b, n, 0, v, nnmeter_attr_keys[i].keys[k]);
        }
        if (nnmeter_attr_keys[i].from_output_shape) {
            struct shape s;
            int64_t batch;
            bool present;
            if (nnmeter_output_shape(b, n, &s, &batch, &present) != 0)
                return -1;
            if (present) {
                json_t *v = json_integer(shape_last(&s));
                if (!v)
                    return fail_oom(b);
                int rc = attr_check(b, n, 0, v, n->op->attrs[0].name);
                json_decref(v);
                return rc;
            }
        }
        return attr_missing(b, n, 0);
    }
    return 0;
}

/* Inputs of one compute node: its inbounds that are not constants, or, with
 * none (nn-Meter's ONNX converter makes no input nodes), graph inputs made from
 * its input_shape. */
static int nnmeter_inputs(struct builder *b, size_t at)
{
    struct node *n = &b->nodes[at];
    unsigned live = 0;
    for (unsigned i = 0; i < n->raw_count; i++)
        if (!b->nodes[b->raw[n->raw_start + i]].is_const)
            live++;
    if (n->op->kind == OP_INPUT) {
        if (live)
            return fail(b, 422, n->name, "node '%s': an input takes no inbounds", n->name);
        struct shape s;
        int64_t batch = 0;
        bool present;
        if (nnmeter_output_shape(b, n, &s, &batch, &present) != 0)
            return -1;
        if (!present) {
            const json_t *shape = json_object_get(json_object_get(n->ir, "attr"), "shape");
            char why[128];
            if (!shape)
                return fail(b, 422, n->name,
                            "node '%s': an input needs output_shape [[batch, ...]]", n->name);
            if (shape_from_json(shape, 1, &s, &batch, why, sizeof why) != 0)
                return fail(b, 422, n->name, "node '%s': attr.shape %s", n->name, why);
        }
        n->shape = s;
        return nnmeter_batch(b, at, batch, "output_shape");
    }
    if (live == n->op->arity) {
        unsigned k = 0;
        for (unsigned i = 0; i < n->raw_count; i++) {
            size_t src = b->raw[n->raw_start + i];
            if (!b->nodes[src].is_const) {
                n->input_slot[k] = i;
                n->inputs[k++] = src;
            }
        }
        n->input_count = k;
        return 0;
    }
    const json_t *is = json_object_get(n->ir, "input_shape");
    if (live != 0 || json_array_size(is) < n->op->arity)
        return fail(b, 422, n->name,
                    "node '%s': %s takes %u input%s; its inbounds name %u node%s%s", n->name,
                    n->op->name, n->op->arity, n->op->arity == 1 ? "" : "s", live,
                    live == 1 ? "" : "s",
                    live == 0 ? " and its input_shape does not describe the graph input" : "");
    for (unsigned i = 0; i < n->op->arity; i++) {
        struct shape s;
        int64_t batch = 0;
        char why[128];
        if (shape_from_json(json_array_get(is, i), 1, &s, &batch, why, sizeof why) != 0)
            return fail(b, 422, n->name, "node '%s': input_shape[%u] %s", n->name, i, why);
        if (nnmeter_batch(b, at, batch, "input_shape") != 0)
            return -1;
        size_t in = add_node(b, b->nodes[at].name, op_of_kind(OP_INPUT));
        if (in == NO_INDEX)
            return fail_oom(b);
        b->nodes[in].implicit = true;
        b->nodes[in].shape = s;
        b->nodes[at].inputs[i] = in;
        b->nodes[at].input_slot[i] = i;
    }
    b->nodes[at].input_count = b->nodes[at].op->arity;
    return 0;
}

static int parse_nnmeter(struct builder *b, const json_t *g)
{
    size_t members = json_object_size(g), inbounds = 0, compute = 0;
    char buf[64], types[320];
    if (grow_nodes(b, members) != 0 || map_init(b, members * 2) != 0)
        return fail_oom(b);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)g, key, val) {
        if (strcmp(key, "dtype") == 0 && json_is_string(val)) {
            if (dtype_parse(json_string_value(val), &b->dtype) != 0)
                return fail(b, 422, "", "'dtype' must be \"fp32\" or \"fp16\"");
            continue;
        }
        const char *name = check_name_text(b, key, strlen(key), "a node");
        if (!name)
            return -1;
        if (!json_is_object(val))
            return fail(b, 422, name,
                        "node '%s': an nn-Meter IR node must be an object with 'inbounds', "
                        "'attr' and 'outbounds'",
                        name);
        const json_t *attr = json_object_get(val, "attr");
        if (!json_is_object(attr))
            return fail(b, 422, name, "node '%s': 'attr' is missing or not an object", name);
        const json_t *type = json_object_get(attr, "type");
        if (!json_is_string(type))
            return fail(b, 422, name, "node '%s': attr has no 'type'", name);
        const struct op_spec *op = nnmeter_op(json_string_value(type));
        if (!op) {
            nnmeter_type_list(types, sizeof types);
            return fail(b, 422, name, "node '%s': unknown op type '%s' (accepted: %s)", name,
                        shown(json_string_value(type), buf, sizeof buf), types);
        }
        const json_t *in = json_object_get(val, "inbounds");
        if (strings_array(in) != 0)
            return fail(b, 422, name, "node '%s': 'inbounds' must be an array of node names",
                        name);
        const json_t *out = json_object_get(val, "outbounds");
        if (out && strings_array(out) != 0)
            return fail(b, 422, name, "node '%s': 'outbounds' must be an array of node names",
                        name);
        if (json_object_get(attr, "attr") && !json_is_object(json_object_get(attr, "attr")))
            return fail(b, 422, name, "node '%s': attr.attr must be an object", name);
        if (op->kind != OP_INPUT && op->kind != OP_CONST && ++compute > b->max_nodes)
            return fail(b, 422, name,
                        "node '%s' is past the limit: the graph has more than %u nodes", name,
                        b->max_nodes);
        size_t at = add_node(b, name, op);
        if (at == NO_INDEX)
            return fail_oom(b);
        b->nodes[at].ir = attr;
        b->nodes[at].is_const = op->kind == OP_CONST;
        b->nodes[at].raw_start = inbounds;
        b->nodes[at].raw_count = (unsigned)json_array_size(in);
        if (json_array_size(in) > 64)
            return fail(b, 422, name, "node '%s': %zu inbounds; no op takes more than %d", name,
                        json_array_size(in), OP_ARITY_MAX);
        inbounds += json_array_size(in);
        if (map_insert(b, at) != NO_INDEX)
            return fail(b, 422, name, "node '%s': the name is used twice", name);
    }
    if (compute == 0)
        return fail(b, 422, "", "the graph has no operations");
    b->graph_nodes = compute;
    size_t declared = b->count;

    b->raw = malloc((inbounds ? inbounds : 1) * sizeof *b->raw);
    if (!b->raw)
        return fail_oom(b);
    for (size_t at = 0; at < declared; at++) {
        struct node *n = &b->nodes[at];
        const json_t *obj = json_object_get(g, n->name);
        const json_t *in = json_object_get(obj, "inbounds");
        for (unsigned i = 0; i < n->raw_count; i++) {
            const char *s = json_string_value(json_array_get(in, i));
            size_t src = map_find(b, s);
            if (src == NO_INDEX)
                return fail(b, 422, n->name, "node '%s': inbound '%s' is not a node of the graph",
                            n->name, shown(s, buf, sizeof buf));
            b->raw[n->raw_start + i] = src;
        }
        const json_t *out = json_object_get(obj, "outbounds");
        for (size_t i = 0; i < json_array_size(out); i++) {
            const char *s = json_string_value(json_array_get(out, i));
            if (map_find(b, s) == NO_INDEX)
                return fail(b, 422, n->name,
                            "node '%s': outbound '%s' is not a node of the graph", n->name,
                            shown(s, buf, sizeof buf));
        }
    }
    /* Constants spread through vanishing ops (TF: Const -> Identity -> MatMul):
     * a worklist over the readers, no recursion. */
    size_t *start = calloc(declared + 1, sizeof *start);
    size_t *readers = malloc((inbounds ? inbounds : 1) * sizeof *readers);
    size_t *work = malloc((declared ? declared : 1) * sizeof *work);
    if (!start || !readers || !work) {
        free(start);
        free(readers);
        free(work);
        return fail_oom(b);
    }
    for (size_t at = 0; at < declared; at++)
        for (unsigned i = 0; i < b->nodes[at].raw_count; i++)
            start[b->raw[b->nodes[at].raw_start + i] + 1]++;
    for (size_t i = 0; i < declared; i++)
        start[i + 1] += start[i];
    size_t *fill = work; /* borrowed as the fill cursor, reset below */
    memcpy(fill, start, declared * sizeof *fill);
    for (size_t at = 0; at < declared; at++)
        for (unsigned i = 0; i < b->nodes[at].raw_count; i++)
            readers[fill[b->raw[b->nodes[at].raw_start + i]]++] = at;
    size_t top = 0;
    for (size_t at = 0; at < declared; at++)
        if (b->nodes[at].is_const)
            work[top++] = at;
    while (top > 0) {
        size_t c = work[--top];
        for (size_t r = start[c]; r < start[c + 1]; r++) {
            struct node *n = &b->nodes[readers[r]];
            if (n->is_const || !n->op->vanishes || n->raw_count == 0)
                continue;
            bool all = true;
            for (unsigned i = 0; i < n->raw_count; i++)
                all = all && b->nodes[b->raw[n->raw_start + i]].is_const;
            if (all) {
                n->is_const = true;
                b->graph_nodes--;
                work[top++] = readers[r];
            }
        }
    }
    free(start);
    free(readers);
    free(work);

    for (size_t at = 0; at < declared; at++) {
        if (b->nodes[at].is_const)
            continue;
        if (nnmeter_inputs(b, at) != 0 || nnmeter_attr(b, at) != 0)
            return -1;
    }
    if (b->batch == 0)
        return fail(b, 422, "",
                    "the graph has no input: no Placeholder/input node and no node without "
                    "inbounds");
    return 0;
}

/* ---- order ---- */

static int build_readers(struct builder *b)
{
    size_t edges = 0;
    for (size_t i = 0; i < b->count; i++)
        edges += b->nodes[i].input_count;
    b->reader_start = calloc(b->count + 1, sizeof *b->reader_start);
    b->reader = malloc((edges ? edges : 1) * sizeof *b->reader);
    size_t *fill = malloc((b->count ? b->count : 1) * sizeof *fill);
    if (!b->reader_start || !b->reader || !fill) {
        free(fill);
        return fail_oom(b);
    }
    for (size_t i = 0; i < b->count; i++)
        for (unsigned k = 0; k < b->nodes[i].input_count; k++)
            b->reader_start[b->nodes[i].inputs[k] + 1]++;
    for (size_t i = 0; i < b->count; i++)
        b->reader_start[i + 1] += b->reader_start[i];
    memcpy(fill, b->reader_start, b->count * sizeof *fill);
    for (size_t i = 0; i < b->count; i++)
        for (unsigned k = 0; k < b->nodes[i].input_count; k++)
            b->reader[fill[b->nodes[i].inputs[k]]++] = i;
    for (size_t i = 0; i < b->count; i++)
        b->nodes[i].readers = (unsigned)(b->reader_start[i + 1] - b->reader_start[i]);
    free(fill);
    return 0;
}

/* Names one node on a cycle among the nodes Kahn's algorithm left (each has an
 * unprocessed input, so walking back through them must repeat), as the
 * cycle's node that comes first in the graph, with the cycle in data-flow order. */
static int fail_cycle(struct builder *b, const unsigned *indeg)
{
    size_t *stamp = calloc(b->count, sizeof *stamp);
    size_t *cycle = malloc(b->count * sizeof *cycle);
    if (!stamp || !cycle) {
        free(stamp);
        free(cycle);
        return fail_oom(b);
    }
    size_t cur = 0;
    while (indeg[cur] == 0)
        cur++;
    for (size_t step = 1; stamp[cur] == 0; step++) {
        stamp[cur] = step;
        const struct node *n = &b->nodes[cur];
        size_t next = NO_INDEX;
        for (unsigned k = 0; k < n->input_count && next == NO_INDEX; k++)
            if (indeg[n->inputs[k]] > 0)
                next = n->inputs[k];
        cur = next;
    }
    /* cur is on the cycle; collect it walking back (reverse data flow). */
    size_t len = 0, first = 0;
    size_t at = cur;
    do {
        cycle[len] = at;
        if (b->nodes[at].order < b->nodes[cycle[first]].order)
            first = len;
        len++;
        const struct node *n = &b->nodes[at];
        size_t next = NO_INDEX;
        for (unsigned k = 0; k < n->input_count && next == NO_INDEX; k++)
            if (indeg[n->inputs[k]] > 0)
                next = n->inputs[k];
        at = next;
    } while (at != cur);
    char path[400];
    size_t pos = 0;
    const size_t shown_max = 6;
    for (size_t i = 0; i <= len && i <= shown_max && pos < sizeof path; i++) {
        /* data flow runs against the walk: first, first-1, ... */
        size_t idx = cycle[(first + len - (i % len)) % len];
        if (i == shown_max && i < len)
            pos += (size_t)snprintf(path + pos, sizeof path - pos, " -> ... (%zu nodes) -> %s",
                                    len, b->nodes[cycle[first]].name);
        else
            pos += (size_t)snprintf(path + pos, sizeof path - pos, "%s%s", i ? " -> " : "",
                                    b->nodes[idx].name);
    }
    const char *name = b->nodes[cycle[first]].name;
    free(stamp);
    free(cycle);
    return fail(b, 422, name, "node '%s' is on a cycle: %s", name, path);
}

static int topo_sort(struct builder *b)
{
    unsigned *indeg = malloc((b->count ? b->count : 1) * sizeof *indeg);
    b->topo = malloc((b->count ? b->count : 1) * sizeof *b->topo);
    if (!indeg || !b->topo) {
        free(indeg);
        return fail_oom(b);
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < b->count; i++) {
        indeg[i] = b->nodes[i].input_count;
        if (indeg[i] == 0)
            b->topo[tail++] = i;
    }
    while (head < tail) {
        size_t v = b->topo[head++];
        for (size_t r = b->reader_start[v]; r < b->reader_start[v + 1]; r++)
            if (--indeg[b->reader[r]] == 0)
                b->topo[tail++] = b->reader[r];
    }
    int rc = tail == b->count ? 0 : fail_cycle(b, indeg);
    free(indeg);
    return rc;
}

/* ---- shapes ---- */

static int fail_pair(struct builder *b, const struct node *n, const char *what, size_t x,
                     size_t y)
{
    char sx[96], sy[96];
    return fail(b, 422, n->name, "node '%s': %s; '%s' is %s and '%s' is %s", n->name, what,
                b->nodes[x].name, shape_text(&b->nodes[x].shape, 0, sx, sizeof sx),
                b->nodes[y].name, shape_text(&b->nodes[y].shape, 0, sy, sizeof sy));
}

/* nn-Meter nodes carry their shapes; they must agree with what the inputs give. */
static int nnmeter_check_shapes(struct builder *b, const struct node *n)
{
    char why[128], sa[96], sb[96];
    const json_t *is = json_object_get(n->ir, "input_shape");
    if (is && !json_is_array(is))
        return fail(b, 422, n->name, "node '%s': input_shape must be a list of shapes", n->name);
    for (unsigned i = 0; i < n->input_count; i++) {
        const struct node *src = &b->nodes[n->inputs[i]];
        unsigned slot = n->input_slot[i];
        struct shape s;
        int64_t batch = 0;
        if (slot >= json_array_size(is))
            continue;
        if (shape_from_json(json_array_get(is, slot), 1, &s, &batch, why, sizeof why) != 0)
            return fail(b, 422, n->name, "node '%s': input_shape[%u] %s", n->name, slot, why);
        if (batch != b->batch || !shape_equal(&s, &src->shape))
            return fail(b, 422, n->name,
                        "node '%s': input_shape[%u] %s disagrees with %s, the shape of "
                        "inbound '%s'",
                        n->name, slot, shape_text(&s, batch, sa, sizeof sa),
                        shape_text(&src->shape, b->batch, sb, sizeof sb), src->name);
    }
    struct shape s;
    int64_t batch = 0;
    bool present;
    if (nnmeter_output_shape(b, n, &s, &batch, &present) != 0)
        return -1;
    if (present && (batch != b->batch || !shape_equal(&s, &n->shape)))
        return fail(b, 422, n->name,
                    "node '%s': output_shape %s disagrees with the shape inferred from its "
                    "inputs, %s",
                    n->name, shape_text(&s, batch, sa, sizeof sa),
                    shape_text(&n->shape, b->batch, sb, sizeof sb));
    return 0;
}

static int infer_shape(struct builder *b, size_t at)
{
    struct node *n = &b->nodes[at];
    if (n->is_const || n->op->shape == SHAPE_GIVEN || n->op->shape == SHAPE_NONE)
        return 0;
    const struct shape *in0 = &b->nodes[n->inputs[0]].shape;
    char sa[96], sb[96];
    switch (n->op->shape) {
    case SHAPE_SAME:
        n->shape = *in0;
        break;
    case SHAPE_LAST_TO_OUT:
        n->shape = *in0;
        n->shape.dims[n->shape.rank - 1] = n->value;
        break;
    case SHAPE_SAME_PAIR:
        if (!shape_equal(in0, &b->nodes[n->inputs[1]].shape))
            return fail_pair(b, n, "add needs two inputs of the same shape", n->inputs[0],
                             n->inputs[1]);
        n->shape = *in0;
        break;
    case SHAPE_CONCAT_LAST: {
        const struct shape *in1 = &b->nodes[n->inputs[1]].shape;
        bool ok = in0->rank == in1->rank;
        for (unsigned i = 0; ok && i + 1 < in0->rank; i++)
            ok = in0->dims[i] == in1->dims[i];
        if (!ok)
            return fail_pair(b, n,
                             "concat joins the last axis, so all other dimensions must match",
                             n->inputs[0], n->inputs[1]);
        n->shape = *in0;
        n->shape.dims[n->shape.rank - 1] += shape_last(in1);
        if (shape_last(&n->shape) > SHAPE_DIM_MAX)
            return fail(b, 422, n->name, "node '%s': the joined axis %" PRId64 " exceeds %d",
                        n->name, shape_last(&n->shape), SHAPE_DIM_MAX);
        break;
    }
    case SHAPE_ATTENTION:
        if (in0->rank < 2)
            return fail(b, 422, n->name,
                        "node '%s': attention reads q, k and v of shape [tokens, "
                        "heads*head_dim]; '%s' is %s",
                        n->name, b->nodes[n->inputs[0]].name, shape_text(in0, 0, sa, sizeof sa));
        for (unsigned i = 1; i < 3; i++)
            if (!shape_equal(in0, &b->nodes[n->inputs[i]].shape))
                return fail_pair(b, n, "attention needs q, k and v of the same shape",
                                 n->inputs[0], n->inputs[i]);
        if (shape_last(in0) % n->value != 0)
            return fail(b, 422, n->name,
                        "node '%s': width %" PRId64 " of '%s' is not a multiple of heads = "
                        "%" PRId64,
                        n->name, shape_last(in0), b->nodes[n->inputs[0]].name, n->value);
        n->shape = *in0;
        break;
    case SHAPE_TOKENIZE:
        if (in0->rank != 1)
            return fail(b, 422, n->name,
                        "node '%s': tokenizer reads a vector of numerical features "
                        "[features]; '%s' is %s",
                        n->name, b->nodes[n->inputs[0]].name, shape_text(in0, 0, sa, sizeof sa));
        n->shape.rank = 2;
        n->shape.dims[0] = in0->dims[0];
        n->shape.dims[1] = n->value;
        break;
    case SHAPE_FLATTEN:
        n->shape.rank = 1;
        n->shape.dims[0] = shape_elements(in0);
        if (n->shape.dims[0] > SHAPE_DIM_MAX)
            return fail(b, 422, n->name,
                        "node '%s': flattening %s gives %" PRId64 " features, more than %d",
                        n->name, shape_text(in0, 0, sa, sizeof sa), n->shape.dims[0],
                        SHAPE_DIM_MAX);
        break;
    case SHAPE_RESHAPE: {
        int64_t batch;
        bool present;
        if (nnmeter_output_shape(b, n, &n->shape, &batch, &present) != 0)
            return -1;
        if (!present)
            return fail(b, 422, n->name, "node '%s': a reshape needs its output_shape",
                        n->name);
        if (shape_elements(&n->shape) != shape_elements(in0))
            return fail(b, 422, n->name,
                        "node '%s': reshape from %s to %s changes the number of elements",
                        n->name, shape_text(in0, 0, sa, sizeof sa),
                        shape_text(&n->shape, 0, sb, sizeof sb));
        break;
    }
    case SHAPE_GIVEN:
    case SHAPE_NONE:
        break;
    }
    if (shape_elements(&n->shape) > SHAPE_ELEMENTS_MAX)
        return fail(b, 422, n->name,
                    "node '%s': its output %s has more than 2^31 elements per sample", n->name,
                    shape_text(&n->shape, 0, sa, sizeof sa));
    if (b->nnmeter)
        return nnmeter_check_shapes(b, n);
    return 0;
}

/* ---- fusion ---- */

static bool is_kernel_op(const struct node *n)
{
    return !n->is_const && n->op->kind != OP_INPUT && !n->op->vanishes;
}

/* Vanishing ops give way to their source; outputs and readers are counted on
 * the sources. */
static void resolve_values(struct builder *b)
{
    bool listed = false;
    for (size_t i = 0; i < b->count; i++)
        listed = listed || b->nodes[i].listed_output;
    for (size_t t = 0; t < b->count; t++) {
        struct node *n = &b->nodes[b->topo[t]];
        if (n->op->vanishes && !n->is_const)
            n->source = b->nodes[n->inputs[0]].source;
    }
    for (size_t i = 0; i < b->count; i++) {
        struct node *n = &b->nodes[i];
        bool output = listed ? n->listed_output
                             : (n->readers == 0 && !n->is_const && n->op->kind != OP_INPUT);
        if (output)
            b->nodes[n->source].is_output = true;
        if (!is_kernel_op(n))
            continue;
        for (unsigned k = 0; k < n->input_count; k++) {
            struct node *src = &b->nodes[b->nodes[n->inputs[k]].source];
            if (src->consumers < 2)
                src->consumer[src->consumers] = i;
            src->consumers++;
        }
    }
}

static int set_param(struct builder *b, struct kernel_config *cfg, const char *name,
                     int64_t value)
{
    int p = catalog_param_index(cfg->kernel, name);
    if (p < 0)
        return fail(b, 500, "", "internal: %s has no parameter %s", cfg->kernel->name, name);
    cfg->params[p] = value;
    return 0;
}

/* The configuration of a kernel from its first node and that node's inputs;
 * leading per-sample dimensions fold into batch or rows. */
static int kernel_config_of(struct builder *b, struct kern *k)
{
    const struct node *head = &b->nodes[k->head];
    const struct shape *in0 = &b->nodes[head->inputs[0]].shape;
    struct kernel_config *cfg = &k->cfg;
    int64_t rows = b->batch * shape_leading(in0);
    int rc = 0;
    switch (cfg->kernel->op) {
    case KOP_LINEAR:
    case KOP_LINEAR_RELU:
    case KOP_LINEAR_GELU:
    case KOP_LINEAR_BN:
    case KOP_LINEAR_BN_RELU:
        rc = set_param(b, cfg, "batch", rows) || set_param(b, cfg, "in", shape_last(in0)) ||
             set_param(b, cfg, "out", head->value);
        break;
    case KOP_LAYERNORM:
    case KOP_SOFTMAX:
    case KOP_ADD:
    case KOP_ADD_RELU:
        rc = set_param(b, cfg, "rows", rows) || set_param(b, cfg, "cols", shape_last(in0));
        break;
    case KOP_CONCAT:
        rc = set_param(b, cfg, "rows", rows) || set_param(b, cfg, "cols_a", shape_last(in0)) ||
             set_param(b, cfg, "cols_b", shape_last(&b->nodes[head->inputs[1]].shape));
        break;
    case KOP_ATTENTION: {
        int64_t sequences = b->batch;
        for (unsigned i = 0; i + 2 < in0->rank; i++)
            sequences *= in0->dims[i];
        rc = set_param(b, cfg, "batch", sequences) ||
             set_param(b, cfg, "tokens", in0->dims[in0->rank - 2]) ||
             set_param(b, cfg, "heads", head->value) ||
             set_param(b, cfg, "head_dim", shape_last(in0) / head->value);
        break;
    }
    case KOP_TOKENIZER:
        rc = set_param(b, cfg, "batch", b->batch) ||
             set_param(b, cfg, "features", in0->dims[0]) || set_param(b, cfg, "d", head->value);
        break;
    }
    if (rc)
        return -1;
    char why[256];
    if (catalog_validate(cfg, 0, why, sizeof why) != 0)
        return fail(b, 422, head->name, "node '%s' (kernel %s): %s", head->name,
                    cfg->kernel->name, why);
    return 0;
}

/* The ops that may come right before `kind` in a fusion chain, from the table. */
static void predecessors_text(enum op_kind kind, char *buf, size_t cap)
{
    enum op_kind seen[FUSION_RULE_COUNT];
    size_t count = 0, at = 0;
    buf[0] = '\0';
    for (size_t r = 0; r < FUSION_RULE_COUNT; r++)
        for (unsigned s = 1; s < fusion_rules[r].length; s++) {
            if (fusion_rules[r].chain[s] != kind)
                continue;
            enum op_kind prev = fusion_rules[r].chain[s - 1];
            bool dup = false;
            for (size_t i = 0; i < count; i++)
                dup = dup || seen[i] == prev;
            if (!dup)
                seen[count++] = prev;
        }
    for (size_t i = 0; i < count && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s",
                               i == 0 ? "" : i + 1 == count ? " or " : ", ",
                               op_of_kind(seen[i])->name);
}

static int fail_standalone(struct builder *b, const struct node *n)
{
    char after[96], why[160] = "";
    predecessors_text(n->op->kind, after, sizeof after);
    const struct node *src = &b->nodes[b->nodes[n->inputs[0]].source];
    bool follows = false;
    for (size_t r = 0; r < FUSION_RULE_COUNT; r++)
        for (unsigned s = 1; s < fusion_rules[r].length; s++)
            follows = follows || (fusion_rules[r].chain[s] == n->op->kind &&
                                  fusion_rules[r].chain[s - 1] == src->op->kind);
    size_t self = (size_t)(n - b->nodes);
    if (!follows && src->op->kind == OP_INPUT)
        snprintf(why, sizeof why, "; its input '%s' is a graph input", src->name);
    else if (!follows)
        snprintf(why, sizeof why, "; its input '%s' is a%s %s", src->name,
                 strchr("aeiou", src->op->name[0]) ? "n" : "", src->op->name);
    else if (src->is_output)
        snprintf(why, sizeof why, "; its input '%s' is a graph output", src->name);
    else if (src->consumers > 1)
        snprintf(why, sizeof why, "; its input '%s' is also read by '%s'", src->name,
                 b->nodes[src->consumer[src->consumer[0] == self ? 1 : 0]].name);
    else if (src->kernel != NO_INDEX)
        snprintf(why, sizeof why, "; its input '%s' already ends a %s kernel", src->name,
                 b->kerns[src->kernel].cfg.kernel->name);
    return fail(b, 422, n->name,
                "node '%s': the catalogue has no standalone %s kernel; %s must directly follow "
                "%s, as the only reader of a result that is not a graph output%s",
                n->name, n->op->name, n->op->name, after, why);
}

static int fuse(struct builder *b)
{
    b->kerns = calloc(b->count ? b->count : 1, sizeof *b->kerns);
    if (!b->kerns)
        return fail_oom(b);
    for (size_t t = 0; t < b->count; t++) {
        size_t at = b->topo[t];
        struct node *n = &b->nodes[at];
        if (!is_kernel_op(n) || n->kernel != NO_INDEX)
            continue;
        const struct fusion_rule *rule = NULL;
        size_t chain[CHAIN_MAX];
        for (size_t r = 0; r < FUSION_RULE_COUNT && !rule; r++) {
            if (fusion_rules[r].chain[0] != n->op->kind)
                continue;
            chain[0] = at;
            unsigned len = 1;
            while (len < fusion_rules[r].length) {
                const struct node *cur = &b->nodes[chain[len - 1]];
                if (cur->is_output || cur->consumers != 1)
                    break;
                const struct node *next = &b->nodes[cur->consumer[0]];
                if (next->op->kind != fusion_rules[r].chain[len] || next->kernel != NO_INDEX)
                    break;
                chain[len++] = cur->consumer[0];
            }
            if (len == fusion_rules[r].length)
                rule = &fusion_rules[r];
        }
        if (!rule)
            return fail_standalone(b, n);
        struct kern *k = &b->kerns[b->kern_count];
        k->cfg.kernel = catalog_find(rule->kernel);
        if (!k->cfg.kernel)
            return fail(b, 500, "", "internal: fusion rule names unknown kernel %s",
                        rule->kernel);
        k->cfg.dtype = b->dtype;
        k->head = at;
        k->node_count = rule->length;
        /* graph order inside the kernel (a graph may list a relu before its linear) */
        for (unsigned i = 0; i < rule->length; i++) {
            unsigned j = i;
            while (j > 0 && b->nodes[k->nodes[j - 1]].order > b->nodes[chain[i]].order) {
                k->nodes[j] = k->nodes[j - 1];
                j--;
            }
            k->nodes[j] = chain[i];
            b->nodes[chain[i]].kernel = b->kern_count;
        }
        k->first_order = b->nodes[k->nodes[0]].order;
        k->leader = b->kern_count;
        k->merged_count = 1;
        k->sum_param = -1;
        b->kern_count++;
        if (kernel_config_of(b, k) != 0)
            return -1;
    }
    return 0;
}

/* Kernels come out of fuse() in topological order: every kernel a kernel reads
 * is already numbered. */
static void assign_depths(struct builder *b)
{
    for (size_t i = 0; i < b->kern_count; i++) {
        struct kern *k = &b->kerns[i];
        const struct node *head = &b->nodes[k->head];
        unsigned depth = 0;
        for (unsigned j = 0; j < head->input_count; j++) {
            const struct node *src = &b->nodes[b->nodes[head->inputs[j]].source];
            if (src->kernel != NO_INDEX && b->kerns[src->kernel].depth > depth)
                depth = b->kerns[src->kernel].depth;
        }
        k->depth = depth + 1;
    }
}

/* ---- merge ---- */

static int cmp_merge(const void *pa, const void *pb)
{
    const struct kern *a = *(const struct kern *const *)pa;
    const struct kern *b = *(const struct kern *const *)pb;
    if (a->depth != b->depth)
        return a->depth < b->depth ? -1 : 1;
    int c = strcmp(a->cfg.kernel->name, b->cfg.kernel->name);
    if (c)
        return c;
    if (a->cfg.dtype != b->cfg.dtype)
        return a->cfg.dtype < b->cfg.dtype ? -1 : 1;
    for (unsigned p = 0; p < a->cfg.kernel->param_count; p++) {
        if ((int)p == a->sum_param || a->cfg.params[p] == b->cfg.params[p])
            continue;
        return a->cfg.params[p] < b->cfg.params[p] ? -1 : 1;
    }
    return a->first_order < b->first_order ? -1 : a->first_order > b->first_order;
}

static bool same_merge_key(const struct kern *a, const struct kern *b)
{
    if (a->depth != b->depth || a->cfg.kernel != b->cfg.kernel || a->cfg.dtype != b->cfg.dtype)
        return false;
    for (unsigned p = 0; p < a->cfg.kernel->param_count; p++)
        if ((int)p != a->sum_param && a->cfg.params[p] != b->cfg.params[p])
            return false;
    return true;
}

static int merge(struct builder *b)
{
    struct kern **cand = malloc((b->kern_count ? b->kern_count : 1) * sizeof *cand);
    if (!cand)
        return fail_oom(b);
    size_t n = 0;
    for (size_t i = 0; i < b->kern_count; i++) {
        struct kern *k = &b->kerns[i];
        for (size_t r = 0; r < MERGE_RULE_COUNT; r++)
            if (strcmp(merge_rules[r].kernel, k->cfg.kernel->name) == 0)
                k->sum_param = catalog_param_index(k->cfg.kernel, merge_rules[r].sum_param);
        if (k->sum_param >= 0)
            cand[n++] = k;
    }
    qsort(cand, n, sizeof *cand, cmp_merge);
    struct kern *leader = NULL;
    for (size_t i = 0; i < n; i++) {
        struct kern *k = cand[i];
        int p = k->sum_param;
        if (leader && same_merge_key(leader, k) &&
            leader->cfg.params[p] + k->cfg.params[p] <= leader->cfg.kernel->params[p].max) {
            leader->cfg.params[p] += k->cfg.params[p];
            leader->merged_count++;
            k->leader = (size_t)(leader - b->kerns);
            continue;
        }
        leader = k;
    }
    free(cand);
    for (size_t i = 0; i < b->kern_count; i++) {
        struct kern *k = &b->kerns[i];
        char why[256];
        if (k->leader == i && k->merged_count > 1 &&
            catalog_validate(&k->cfg, 0, why, sizeof why) != 0)
            return fail(b, 422, b->nodes[k->head].name, "node '%s' (merged %s): %s",
                        b->nodes[k->head].name, k->cfg.kernel->name, why);
    }
    return 0;
}

/* ---- output ---- */

/* Everything the output order needs, copied, so qsort's comparator has no
 * outside state: the group's depth and first node, then the member's own. */
struct emit_key {
    unsigned depth;
    size_t group_order;
    size_t order;
    size_t index;
};

static int cmp_emit(const void *pa, const void *pb)
{
    const struct emit_key *a = pa, *b = pb;
    if (a->depth != b->depth)
        return a->depth < b->depth ? -1 : 1;
    if (a->group_order != b->group_order)
        return a->group_order < b->group_order ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

void graph_plan_free(struct graph_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->count; i++) {
        for (size_t j = 0; j < plan->kernels[i].node_count; j++)
            free(plan->kernels[i].nodes[j]);
        free(plan->kernels[i].nodes);
    }
    free(plan->kernels);
    plan->kernels = NULL;
    plan->count = 0;
}

int graph_plan_exec_kernels(const struct graph_plan *plan, struct exec_plan_kernel **out,
                            unsigned *levels)
{
    *out = NULL;
    if (!plan || plan->count == 0)
        return -1;
    struct exec_plan_kernel *k = calloc(plan->count, sizeof *k);
    if (!k)
        return -1;
    unsigned deepest = 0;
    for (size_t i = 0; i < plan->count; i++) {
        k[i].cfg = plan->kernels[i].cfg;
        k[i].level = plan->kernels[i].depth;
        if (k[i].level > deepest)
            deepest = k[i].level;
    }
    if (levels)
        *levels = deepest;
    *out = k;
    return 0;
}

static int emit(struct builder *b, struct graph_plan *out)
{
    size_t n = b->kern_count, groups = 0;
    struct emit_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys)
        return fail_oom(b);
    for (size_t i = 0; i < n; i++) {
        const struct kern *k = &b->kerns[i], *l = &b->kerns[k->leader];
        keys[i] = (struct emit_key){l->depth, l->first_order, k->first_order, i};
        groups += k->leader == i;
    }
    qsort(keys, n, sizeof *keys, cmp_emit);
    out->kernels = calloc(groups ? groups : 1, sizeof *out->kernels);
    if (!out->kernels) {
        free(keys);
        return fail_oom(b);
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        /* one group: keys[i] is its leader (the member first in the graph) */
        const struct kern *l = &b->kerns[keys[i].index];
        size_t end = i, total = 0;
        while (end < n && b->kerns[keys[end].index].leader == keys[i].index)
            total += b->kerns[keys[end++].index].node_count;
        struct graph_kernel *gk = &out->kernels[out->count++];
        gk->cfg = l->cfg;
        gk->depth = l->depth;
        gk->merged_count = l->merged_count;
        gk->nodes = calloc(total, sizeof *gk->nodes);
        if (!gk->nodes) {
            rc = fail_oom(b);
            break;
        }
        for (size_t m = i; m < end && rc == 0; m++) {
            const struct kern *k = &b->kerns[keys[m].index];
            for (unsigned j = 0; j < k->node_count; j++) {
                gk->nodes[gk->node_count] = strdup(b->nodes[k->nodes[j]].name);
                if (!gk->nodes[gk->node_count]) {
                    rc = fail_oom(b);
                    break;
                }
                gk->node_count++;
            }
        }
        i = end;
    }
    free(keys);
    return rc;
}

static void builder_free(struct builder *b)
{
    free(b->nodes);
    free(b->slots);
    free(b->raw);
    free(b->topo);
    free(b->reader_start);
    free(b->reader);
    free(b->kerns);
}

int graph_plan_build(const json_t *graph, const struct graph_options *opt,
                     struct graph_plan *out, struct graph_error *err)
{
    struct graph_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    struct builder b = {.err = err, .dtype = DTYPE_FP32};
    if (!out) {
        fail(&b, 500, "", "internal: no plan to fill");
        return -1;
    }
    memset(out, 0, sizeof *out);
    bool merge_kernels = opt ? opt->merge : true;
    b.max_nodes = opt && opt->max_nodes ? opt->max_nodes : GRAPH_DEFAULT_MAX_NODES;

    int rc;
    if (!json_is_object(graph)) {
        rc = fail(&b, 400, "",
                  "a graph must be a JSON object: a native graph (with a 'nodes' array) or an "
                  "nn-Meter IR graph");
    } else if (json_is_array(json_object_get(graph, "nodes"))) {
        rc = parse_native(&b, graph);
    } else if (looks_nnmeter(graph)) {
        b.nnmeter = true;
        rc = parse_nnmeter(&b, graph);
    } else {
        rc = fail(&b, 400, "",
                  "not a graph: expected a native graph (an object with a 'nodes' array) or an "
                  "nn-Meter IR graph (an object of nodes, each with 'inbounds', 'attr' and "
                  "'outbounds')");
    }
    if (rc == 0)
        rc = build_readers(&b);
    if (rc == 0)
        rc = topo_sort(&b);
    for (size_t t = 0; rc == 0 && t < b.count; t++)
        rc = infer_shape(&b, b.topo[t]);
    if (rc == 0) {
        resolve_values(&b);
        rc = fuse(&b);
    }
    if (rc == 0) {
        assign_depths(&b);
        if (merge_kernels)
            rc = merge(&b);
    }
    if (rc == 0)
        rc = emit(&b, out);
    if (rc == 0) {
        snprintf(out->format, sizeof out->format, "%s", b.nnmeter ? "nn-meter" : "native");
        out->dtype = b.dtype;
        out->batch = b.batch;
        out->graph_nodes = b.graph_nodes;
    } else {
        graph_plan_free(out);
        memset(out, 0, sizeof *out);
    }
    builder_free(&b);
    return rc;
}
