/*
 * trees.c - XGBoost JSON models loaded into flat arrays and evaluated in C.
 *
 * trees_load_xgboost_json() reads the text XGBoosterSaveModelToBuffer writes with
 * {"format": "json"} (XGBoost 1.7; later versions' extra keys are ignored;
 * trees_load_xgboost_value() takes the same already parsed by jansson), checks
 * that the model is one jetprof can evaluate exactly (reg:squarederror, gbtree,
 * one target, numerical splits only) and that its trees are well formed, then
 * copies every tree's nodes into one array. Only the keys checked below are
 * read, so the compact members train.c stores (XGBoost's layout without the
 * per-tree statistics, split_type, categories and learner attributes) load
 * exactly like the full text: a missing split_type means all splits are
 * numerical, tree_param and gbtree_model_param are optional, base_weights are
 * never read. Because every child index is checked to lie past its parent and
 * inside its tree, a walk from a root always ends at a leaf within the array: a
 * corrupt or hostile file is refused at load and can never make trees_predict()
 * loop or read out of bounds.
 *
 * Evaluation is XGBoost's CPU predictor, step for step: the sum starts at
 * base_score as a float, each tree's leaf value is added in float in tree order,
 * a node goes left when fvalue < split_condition and a missing (NaN) feature
 * takes the default branch. For reg:squarederror the link is the identity, so
 * that sum is the prediction.
 *
 * Nodes no walk can reach (XGBoost keeps pruned nodes in the arrays, marked
 * deleted, with a split index of 2^31 - 1) are not validated and are stored as
 * leaves of value 0.
 */
#include "predict/trees.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One node. Children are indexes into tree_ensemble.nodes (absolute, not per
 * tree); left == -1 marks a leaf, whose value is the leaf value. For a split,
 * value is the threshold and missing is the child a NaN feature takes. */
struct tree_node {
    float value;
    uint32_t feature;
    int32_t left, right, missing;
};

struct tree_ensemble {
    float base_score;
    unsigned num_feature;
    unsigned tree_count;
    uint32_t *roots; /* tree_count entries: index of each tree's node 0 */
    struct tree_node *nodes;
    size_t node_count;
};

/* The only objective and booster accepted: their link is the identity and their
 * prediction a plain sum of leaves, which is what trees_predict computes. */
static const char ACCEPTED_OBJECTIVE[] = "reg:squarederror";
static const char ACCEPTED_BOOSTER[] = "gbtree";

/* Node arrays a tree must have, all of length num_nodes. */
static const char *const REQUIRED_TREE_ARRAYS[] = {
    "left_children", "right_children", "split_indices", "split_conditions", "default_left",
};
#define REQUIRED_TREE_ARRAY_COUNT (sizeof REQUIRED_TREE_ARRAYS / sizeof REQUIRED_TREE_ARRAYS[0])
enum { ARR_LEFT, ARR_RIGHT, ARR_FEATURE, ARR_CONDITION, ARR_DEFAULT_LEFT };

/* A node index has to fit int32_t; XGBoost uses int32 node ids too. */
#define MAX_NODES_PER_MODEL ((size_t)INT32_MAX)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* XGBoost writes its parameters as JSON strings ("5E-1", "10"). */
static int string_param(json_t *obj, const char *key, const char *where, const char **out,
                        char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        set_err(err, errlen, "XGBoost model: %s has no \"%s\"", where, key);
        return -1;
    }
    if (!json_is_string(v)) {
        set_err(err, errlen, "XGBoost model: %s.%s is not a string", where, key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* An unsigned integer parameter written as a string; absent gives dflt when
 * optional. */
static int uint_param(json_t *obj, const char *key, const char *where, bool optional,
                      unsigned long dflt, unsigned long *out, char *err, size_t errlen)
{
    const char *s;
    char *end;
    if (optional && json_object_get(obj, key) == NULL) {
        *out = dflt;
        return 0;
    }
    if (string_param(obj, key, where, &s, err, errlen) != 0)
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX) {
        set_err(err, errlen, "XGBoost model: %s.%s = \"%s\" is not a count", where, key, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* base_score: "5E-1" in 1.7, "[5E-1]" (a one-element vector) in later versions.
 * Parsed with strtof, as XGBoost parses it, so the float is the same. */
static int parse_base_score(const char *s, float *out, char *err, size_t errlen)
{
    char buf[64];
    size_t n = strlen(s);
    char *end;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        if (n - 2 >= sizeof buf || memchr(s + 1, ',', n - 2) != NULL)
            goto bad;
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
    } else {
        if (n >= sizeof buf)
            goto bad;
        memcpy(buf, s, n + 1);
    }
    if (buf[0] == '\0')
        goto bad;
    errno = 0;
    float v = strtof(buf, &end);
    if (*end != '\0' || !isfinite(v))
        goto bad;
    *out = v;
    return 0;
bad:
    set_err(err, errlen, "XGBoost model: base_score \"%.40s\" is not one finite number", s);
    return -1;
}

/* Checks the learner and returns the parts the trees need. */
static int check_learner(const json_t *root, float *base_score, unsigned *num_feature,
                         json_t **model_out, char *err, size_t errlen)
{
    json_t *learner = json_object_get(root, "learner");
    const char *s;
    unsigned long v;
    if (!json_is_object(learner)) {
        set_err(err, errlen, "XGBoost model: no \"learner\" object at the top level");
        return -1;
    }

    json_t *param = json_object_get(learner, "learner_model_param");
    if (!json_is_object(param)) {
        set_err(err, errlen, "XGBoost model: learner has no \"learner_model_param\" object");
        return -1;
    }
    if (string_param(param, "base_score", "learner_model_param", &s, err, errlen) != 0 ||
        parse_base_score(s, base_score, err, errlen) != 0)
        return -1;
    if (uint_param(param, "num_feature", "learner_model_param", false, 0, &v, err, errlen) != 0)
        return -1;
    if (v == 0 || v > INT32_MAX) {
        set_err(err, errlen, "XGBoost model: num_feature = %lu is out of range", v);
        return -1;
    }
    *num_feature = (unsigned)v;
    if (uint_param(param, "num_target", "learner_model_param", true, 1, &v, err, errlen) != 0)
        return -1;
    if (v != 1) {
        set_err(err, errlen,
                "XGBoost model: num_target = %lu; only single-target models are supported", v);
        return -1;
    }
    if (uint_param(param, "num_class", "learner_model_param", true, 0, &v, err, errlen) != 0)
        return -1;
    if (v > 1) {
        set_err(err, errlen,
                "XGBoost model: num_class = %lu; only single-output regression is supported", v);
        return -1;
    }

    json_t *objective = json_object_get(learner, "objective");
    if (!json_is_object(objective)) {
        set_err(err, errlen, "XGBoost model: learner has no \"objective\" object");
        return -1;
    }
    if (string_param(objective, "name", "objective", &s, err, errlen) != 0)
        return -1;
    if (strcmp(s, ACCEPTED_OBJECTIVE) != 0) {
        set_err(err, errlen, "XGBoost model: objective '%.64s' is not supported (only %s)", s,
                ACCEPTED_OBJECTIVE);
        return -1;
    }

    json_t *booster = json_object_get(learner, "gradient_booster");
    if (!json_is_object(booster)) {
        set_err(err, errlen, "XGBoost model: learner has no \"gradient_booster\" object");
        return -1;
    }
    if (string_param(booster, "name", "gradient_booster", &s, err, errlen) != 0)
        return -1;
    if (strcmp(s, ACCEPTED_BOOSTER) != 0) {
        set_err(err, errlen, "XGBoost model: booster '%.64s' is not supported (only %s)", s,
                ACCEPTED_BOOSTER);
        return -1;
    }
    json_t *model = json_object_get(booster, "model");
    if (!json_is_object(model)) {
        set_err(err, errlen, "XGBoost model: gradient_booster has no \"model\" object");
        return -1;
    }
    json_t *gparam = json_object_get(model, "gbtree_model_param");
    if (gparam != NULL) {
        if (!json_is_object(gparam)) {
            set_err(err, errlen, "XGBoost model: gbtree_model_param is not an object");
            return -1;
        }
        if (uint_param(gparam, "size_leaf_vector", "gbtree_model_param", true, 0, &v, err,
                       errlen) != 0)
            return -1;
        if (v > 1) {
            set_err(err, errlen,
                    "XGBoost model: size_leaf_vector = %lu; multi-target trees are not supported",
                    v);
            return -1;
        }
    }
    *model_out = model;
    return 0;
}

/* Reads element i of a node array as an integer in [lo, hi]. */
static int array_int(json_t *arr, const char *name, unsigned tree, size_t i, long long lo,
                     long long hi, long long *out, char *err, size_t errlen)
{
    json_t *v = json_array_get(arr, i);
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x >= lo && x <= hi) {
            *out = x;
            return 0;
        }
        set_err(err, errlen, "XGBoost model: tree %u node %zu: %s = %lld is out of range", tree,
                i, name, (long long)x);
        return -1;
    }
    set_err(err, errlen, "XGBoost model: tree %u node %zu: %s is not an integer", tree, i, name);
    return -1;
}

/* Reads element i of a node array as a finite number representable as float. */
static int array_float(json_t *arr, const char *name, unsigned tree, size_t i, float *out,
                       char *err, size_t errlen)
{
    json_t *v = json_array_get(arr, i);
    if (!json_is_number(v)) {
        set_err(err, errlen, "XGBoost model: tree %u node %zu: %s is not a number", tree, i,
                name);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > FLT_MAX) {
        set_err(err, errlen, "XGBoost model: tree %u node %zu: %s = %g is not a finite float",
                tree, i, name, d);
        return -1;
    }
    *out = (float)d;
    return 0;
}

/* default_left: 0/1 in XGBoost 1.7's JSON; booleans are accepted as well. */
static int array_bool(json_t *arr, const char *name, unsigned tree, size_t i, bool *out,
                      char *err, size_t errlen)
{
    json_t *v = json_array_get(arr, i);
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = json_integer_value(v) == 1;
        return 0;
    }
    set_err(err, errlen, "XGBoost model: tree %u node %zu: %s is not 0 or 1", tree, i, name);
    return -1;
}

/* True when the optional array key of tree is present and not empty. */
static bool nonempty_array(json_t *tree, const char *key)
{
    json_t *a = json_object_get(tree, key);
    return json_is_array(a) && json_array_size(a) > 0;
}

/* Validates tree number t and returns its node count and arrays. */
static int check_tree_shape(json_t *tree, unsigned t, json_t *arrays[REQUIRED_TREE_ARRAY_COUNT],
                            size_t *node_count, char *err, size_t errlen)
{
    unsigned long v;
    if (!json_is_object(tree)) {
        set_err(err, errlen, "XGBoost model: tree %u is not an object", t);
        return -1;
    }
    size_t n = 0;
    for (size_t a = 0; a < REQUIRED_TREE_ARRAY_COUNT; a++) {
        arrays[a] = json_object_get(tree, REQUIRED_TREE_ARRAYS[a]);
        if (!json_is_array(arrays[a])) {
            set_err(err, errlen, "XGBoost model: tree %u has no \"%s\" array", t,
                    REQUIRED_TREE_ARRAYS[a]);
            return -1;
        }
        size_t len = json_array_size(arrays[a]);
        if (a == 0)
            n = len;
        else if (len != n) {
            set_err(err, errlen, "XGBoost model: tree %u: \"%s\" has %zu entries, \"%s\" has %zu",
                    t, REQUIRED_TREE_ARRAYS[a], len, REQUIRED_TREE_ARRAYS[0], n);
            return -1;
        }
    }
    if (n == 0) {
        set_err(err, errlen, "XGBoost model: tree %u has no nodes", t);
        return -1;
    }

    json_t *tparam = json_object_get(tree, "tree_param");
    if (tparam != NULL) {
        if (!json_is_object(tparam)) {
            set_err(err, errlen, "XGBoost model: tree %u: tree_param is not an object", t);
            return -1;
        }
        if (uint_param(tparam, "num_nodes", "tree_param", true, n, &v, err, errlen) != 0)
            return -1;
        if (v != n) {
            set_err(err, errlen, "XGBoost model: tree %u: num_nodes = %lu but the arrays have %zu",
                    t, v, n);
            return -1;
        }
        if (uint_param(tparam, "size_leaf_vector", "tree_param", true, 0, &v, err, errlen) != 0)
            return -1;
        if (v > 1) {
            set_err(err, errlen,
                    "XGBoost model: tree %u: size_leaf_vector = %lu; multi-target trees are not "
                    "supported",
                    t, v);
            return -1;
        }
    }

    /* split_type 1 is a categorical split; categories_nodes lists them too. */
    json_t *split_type = json_object_get(tree, "split_type");
    if (split_type != NULL) {
        if (!json_is_array(split_type) || json_array_size(split_type) != n) {
            set_err(err, errlen, "XGBoost model: tree %u: \"split_type\" is not an array of %zu",
                    t, n);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *st = json_array_get(split_type, i);
            if (!json_is_integer(st) || json_integer_value(st) != 0) {
                set_err(err, errlen,
                        "XGBoost model: tree %u node %zu: categorical splits are not supported "
                        "(split_type is not 0)",
                        t, i);
                return -1;
            }
        }
    }
    if (nonempty_array(tree, "categories_nodes") || nonempty_array(tree, "categories")) {
        set_err(err, errlen, "XGBoost model: tree %u: categorical splits are not supported", t);
        return -1;
    }
    *node_count = n;
    return 0;
}

/* Copies tree t (n nodes, starting at base in ens->nodes), checking every node
 * a walk from the root can reach. reachable is scratch space of n bytes. */
static int load_tree(struct tree_ensemble *ens, json_t *arrays[REQUIRED_TREE_ARRAY_COUNT],
                     unsigned t, size_t base, size_t n, unsigned char *reachable, char *err,
                     size_t errlen)
{
    memset(reachable, 0, n);
    reachable[0] = 1;
    /* Children lie past their parent, so one forward pass sees every reachable
     * node after the node that reaches it. */
    for (size_t i = 0; i < n; i++) {
        struct tree_node *node = &ens->nodes[base + i];
        long long left, right, feature;
        bool default_left;
        float value;
        if (!reachable[i]) {
            node->value = 0.0f;
            node->feature = 0;
            node->left = node->right = node->missing = -1;
            continue;
        }
        if (array_int(arrays[ARR_LEFT], "left_children", t, i, -1, INT32_MAX, &left, err,
                      errlen) != 0 ||
            array_int(arrays[ARR_RIGHT], "right_children", t, i, -1, INT32_MAX, &right, err,
                      errlen) != 0 ||
            array_float(arrays[ARR_CONDITION], "split_conditions", t, i, &value, err, errlen) != 0)
            return -1;
        node->value = value;
        if (left == -1 || right == -1) {
            if (left != right) {
                set_err(err, errlen,
                        "XGBoost model: tree %u node %zu has one child (left %lld, right %lld)", t,
                        i, left, right);
                return -1;
            }
            node->feature = 0;
            node->left = node->right = node->missing = -1;
            continue;
        }
        if ((size_t)left <= i || (size_t)right <= i || (size_t)left >= n || (size_t)right >= n ||
            left == right) {
            set_err(err, errlen,
                    "XGBoost model: tree %u node %zu: children %lld and %lld are not two distinct "
                    "nodes after it in the tree (it has %zu nodes)",
                    t, i, left, right, n);
            return -1;
        }
        if (array_int(arrays[ARR_FEATURE], "split_indices", t, i, 0, INT32_MAX, &feature, err,
                      errlen) != 0)
            return -1;
        if (feature >= (long long)ens->num_feature) {
            set_err(err, errlen,
                    "XGBoost model: tree %u node %zu splits on feature %lld but the model has %u "
                    "features",
                    t, i, feature, ens->num_feature);
            return -1;
        }
        if (array_bool(arrays[ARR_DEFAULT_LEFT], "default_left", t, i, &default_left, err,
                       errlen) != 0)
            return -1;
        reachable[left] = 1;
        reachable[right] = 1;
        node->feature = (uint32_t)feature;
        node->left = (int32_t)(base + (size_t)left);
        node->right = (int32_t)(base + (size_t)right);
        node->missing = default_left ? node->left : node->right;
    }
    return 0;
}

static int load_trees(struct tree_ensemble *ens, json_t *model, char *err, size_t errlen)
{
    json_t *trees = json_object_get(model, "trees");
    json_t *tree_info = json_object_get(model, "tree_info");
    if (!json_is_array(trees)) {
        set_err(err, errlen, "XGBoost model: gradient_booster.model has no \"trees\" array");
        return -1;
    }
    size_t count = json_array_size(trees);
    if (count > UINT32_MAX) {
        set_err(err, errlen, "XGBoost model: %zu trees is too many", count);
        return -1;
    }
    /* tree_info gives each tree's output group; one output means all zero. */
    if (!json_is_array(tree_info) || json_array_size(tree_info) != count) {
        set_err(err, errlen, "XGBoost model: \"tree_info\" is not an array of %zu entries", count);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *g = json_array_get(tree_info, i);
        if (!json_is_integer(g) || json_integer_value(g) != 0) {
            set_err(err, errlen,
                    "XGBoost model: tree_info[%zu] is not 0; only single-output models are "
                    "supported",
                    i);
            return -1;
        }
    }
    json_t *gparam = json_object_get(model, "gbtree_model_param");
    if (json_is_object(gparam)) {
        unsigned long declared;
        if (uint_param(gparam, "num_trees", "gbtree_model_param", true, count, &declared, err,
                       errlen) != 0)
            return -1;
        if (declared != count) {
            set_err(err, errlen, "XGBoost model: num_trees = %lu but \"trees\" has %zu", declared,
                    count);
            return -1;
        }
    }

    /* First pass: shapes and the total node count, so the nodes are one array. */
    struct tree_shape {
        json_t *arrays[REQUIRED_TREE_ARRAY_COUNT];
        size_t node_count;
    } *shapes = NULL;
    size_t total = 0, largest = 0;
    if (count > 0) {
        shapes = calloc(count, sizeof *shapes);
        if (shapes == NULL) {
            set_err(err, errlen, "out of memory loading %zu trees", count);
            return -1;
        }
    }
    for (size_t t = 0; t < count; t++) {
        size_t n;
        if (check_tree_shape(json_array_get(trees, t), (unsigned)t, shapes[t].arrays, &n, err,
                             errlen) != 0)
            goto fail;
        if (n > MAX_NODES_PER_MODEL - total) {
            set_err(err, errlen, "XGBoost model: more than %zu nodes", MAX_NODES_PER_MODEL);
            goto fail;
        }
        shapes[t].node_count = n;
        total += n;
        if (n > largest)
            largest = n;
    }

    ens->tree_count = (unsigned)count;
    ens->node_count = total;
    unsigned char *reachable = NULL;
    if (count > 0) {
        ens->roots = calloc(count, sizeof *ens->roots);
        ens->nodes = calloc(total, sizeof *ens->nodes);
        reachable = malloc(largest);
        if (ens->roots == NULL || ens->nodes == NULL || reachable == NULL) {
            free(reachable);
            set_err(err, errlen, "out of memory loading %zu trees (%zu nodes)", count, total);
            goto fail;
        }
    }
    size_t base = 0;
    for (size_t t = 0; t < count; t++) {
        if (load_tree(ens, shapes[t].arrays, (unsigned)t, base, shapes[t].node_count, reachable,
                      err, errlen) != 0) {
            free(reachable);
            goto fail;
        }
        ens->roots[t] = (uint32_t)base;
        base += shapes[t].node_count;
    }
    free(reachable);
    free(shapes);
    return 0;
fail:
    free(shapes);
    return -1;
}

int trees_load_xgboost_value(const struct json_t *model, struct tree_ensemble **out, char *err,
                             size_t errlen)
{
    json_t *booster_model = NULL;
    *out = NULL;
    if (!json_is_object(model)) {
        set_err(err, errlen, "XGBoost model: the top level is not an object");
        return -1;
    }
    struct tree_ensemble *ens = calloc(1, sizeof *ens);
    if (ens == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (check_learner(model, &ens->base_score, &ens->num_feature, &booster_model, err, errlen) !=
            0 ||
        load_trees(ens, booster_model, err, errlen) != 0) {
        trees_free(ens);
        return -1;
    }
    *out = ens;
    return 0;
}

int trees_load_xgboost_json(const char *json, size_t len, struct tree_ensemble **out,
                            char *err, size_t errlen)
{
    json_error_t jerr;
    *out = NULL;
    if (json == NULL || len == 0) {
        set_err(err, errlen, "XGBoost model: empty text");
        return -1;
    }
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL) {
        set_err(err, errlen, "XGBoost model: not valid JSON (line %d, column %d: %s)", jerr.line,
                jerr.column, jerr.text);
        return -1;
    }
    int rc = trees_load_xgboost_value(root, out, err, errlen);
    json_decref(root);
    return rc;
}

double trees_predict(const struct tree_ensemble *t, const float *features,
                     unsigned feature_count)
{
    /* float, in tree order, from base_score: XGBoost's own accumulation. */
    float sum = t->base_score;
    const struct tree_node *nodes = t->nodes;
    for (unsigned i = 0; i < t->tree_count; i++) {
        const struct tree_node *n = &nodes[t->roots[i]];
        while (n->left >= 0) {
            int32_t next;
            if (n->feature >= feature_count || isnan(features[n->feature]))
                next = n->missing;
            else
                next = features[n->feature] < n->value ? n->left : n->right;
            n = &nodes[next];
        }
        sum += n->value;
    }
    return (double)sum;
}

unsigned trees_count(const struct tree_ensemble *t)
{
    return t->tree_count;
}

unsigned trees_feature_count(const struct tree_ensemble *t)
{
    return t->num_feature;
}

void trees_free(struct tree_ensemble *t)
{
    if (t == NULL)
        return;
    free(t->roots);
    free(t->nodes);
    free(t);
}
