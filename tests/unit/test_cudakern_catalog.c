/*
 * test_cudakern_catalog.c - the kernel catalogue: lookup, ranges and their
 * messages, the memory check, features on hand-computed cases, canonical keys,
 * and arithmetic at the largest (and absurd) sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cudakern/catalog.h"
#include "cudakern/kernel_data.h"

static struct kernel_config make_cfg(const char *kernel, enum dtype d, int64_t a, int64_t b,
                                     int64_t c)
{
    struct kernel_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.kernel = catalog_find(kernel);
    assert_non_null(cfg.kernel);
    cfg.dtype = d;
    cfg.params[0] = a;
    cfg.params[1] = b;
    cfg.params[2] = c;
    return cfg;
}

static struct kernel_config make_cfg4(const char *kernel, enum dtype d, int64_t a, int64_t b,
                                      int64_t c, int64_t e)
{
    struct kernel_config cfg = make_cfg(kernel, d, a, b, c);
    cfg.params[3] = e;
    return cfg;
}

static void test_find_and_list(void **state)
{
    (void)state;
    const char *names[] = {"linear",  "linear_relu",    "linear_gelu", "layernorm",
                           "linear_bn", "linear_bn_relu", "softmax",     "add",
                           "add_relu",  "attention",      "tokenizer",   "concat"};
    const enum kernel_op ops[] = {KOP_LINEAR,    KOP_LINEAR_RELU,    KOP_LINEAR_GELU,
                                  KOP_LAYERNORM, KOP_LINEAR_BN,      KOP_LINEAR_BN_RELU,
                                  KOP_SOFTMAX,   KOP_ADD,            KOP_ADD_RELU,
                                  KOP_ATTENTION, KOP_TOKENIZER,      KOP_CONCAT};
    const size_t n = sizeof(names) / sizeof(names[0]);
    assert_int_equal(catalog_count(), n);
    for (size_t i = 0; i < n; i++) {
        const struct catalog_kernel *k = catalog_find(names[i]);
        assert_non_null(k);
        assert_ptr_equal(k, catalog_at(i));
        assert_string_equal(k->name, names[i]);
        assert_int_equal(k->op, ops[i]);
        assert_true(strlen(k->doc) > 20);
        assert_true(k->param_count >= 2 && k->param_count <= CATALOG_MAX_PARAMS);
        for (unsigned p = 0; p < k->param_count; p++) {
            assert_true(strlen(k->params[p].doc) > 5);
            assert_true(k->params[p].log_scale);
            assert_true(k->params[p].min >= 1 && k->params[p].min < k->params[p].max);
        }
    }
    assert_null(catalog_at(n));
    assert_null(catalog_find("conv2d"));
    assert_null(catalog_find("Linear"));
    assert_null(catalog_find(""));
    assert_null(catalog_find(NULL));
}

/* The ranges of issue 4's kernels, parameter by parameter. */
static void test_new_kernel_params(void **state)
{
    (void)state;
    static const struct {
        const char *kernel;
        unsigned count;
        struct {
            const char *name;
            int64_t min, max;
        } p[4];
    } want[] = {
        {"linear_bn", 3, {{"batch", 1, 65536}, {"in", 1, 65536}, {"out", 1, 65536}}},
        {"linear_bn_relu", 3, {{"batch", 1, 65536}, {"in", 1, 65536}, {"out", 1, 65536}}},
        {"softmax", 2, {{"rows", 1, 1048576}, {"cols", 2, 65536}}},
        {"add", 2, {{"rows", 1, 1048576}, {"cols", 1, 65536}}},
        {"add_relu", 2, {{"rows", 1, 1048576}, {"cols", 1, 65536}}},
        {"attention",
         4,
         {{"batch", 1, 4096}, {"tokens", 1, 4096}, {"heads", 1, 64}, {"head_dim", 1, 256}}},
        {"tokenizer", 3, {{"batch", 1, 65536}, {"features", 1, 4096}, {"d", 1, 1024}}},
        {"concat", 3, {{"rows", 1, 1048576}, {"cols_a", 1, 65536}, {"cols_b", 1, 65536}}},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct catalog_kernel *k = catalog_find(want[i].kernel);
        assert_non_null(k);
        assert_int_equal(k->param_count, want[i].count);
        for (unsigned p = 0; p < want[i].count; p++) {
            assert_string_equal(k->params[p].name, want[i].p[p].name);
            assert_int_equal(k->params[p].min, want[i].p[p].min);
            assert_int_equal(k->params[p].max, want[i].p[p].max);
            assert_int_equal(catalog_param_index(k, want[i].p[p].name), (int)p);
        }
    }
}

static void test_params_and_ranges(void **state)
{
    (void)state;
    const struct catalog_kernel *k = catalog_find("linear_gelu");
    assert_int_equal(k->param_count, 3);
    assert_int_equal(catalog_param_index(k, "batch"), 0);
    assert_int_equal(catalog_param_index(k, "in"), 1);
    assert_int_equal(catalog_param_index(k, "out"), 2);
    assert_int_equal(catalog_param_index(k, "rows"), -1);
    assert_int_equal(catalog_param_index(k, NULL), -1);
    assert_int_equal(catalog_param_index(NULL, "batch"), -1);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(k->params[i].min, 1);
        assert_int_equal(k->params[i].max, 65536);
    }
    const struct catalog_kernel *ln = catalog_find("layernorm");
    assert_int_equal(ln->param_count, 2);
    assert_string_equal(ln->params[0].name, "rows");
    assert_int_equal(ln->params[0].min, 1);
    assert_int_equal(ln->params[0].max, 1048576);
    assert_string_equal(ln->params[1].name, "cols");
    assert_int_equal(ln->params[1].min, 2);
    assert_int_equal(ln->params[1].max, 65536);
}

static void test_dtypes(void **state)
{
    (void)state;
    enum dtype d;
    assert_int_equal(dtype_parse("fp32", &d), 0);
    assert_int_equal(d, DTYPE_FP32);
    assert_int_equal(dtype_parse("fp16", &d), 0);
    assert_int_equal(d, DTYPE_FP16);
    assert_int_equal(dtype_parse("bf16", &d), -1);
    assert_int_equal(dtype_parse("FP32", &d), -1);
    assert_int_equal(dtype_parse(NULL, &d), -1);
    assert_string_equal(dtype_name(DTYPE_FP32), "fp32");
    assert_string_equal(dtype_name(DTYPE_FP16), "fp16");
    assert_int_equal(dtype_size(DTYPE_FP32), 4);
    assert_int_equal(dtype_size(DTYPE_FP16), 2);
    assert_int_equal(dtype_size((enum dtype)7), 0);
    assert_string_equal(dtype_name((enum dtype)7), "?");
}

static void test_validate_ranges(void **state)
{
    (void)state;
    char err[256];
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 0, 256, 512);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'batch' = 0 is outside linear_relu's range [1, 65536]");

    cfg = make_cfg("linear", DTYPE_FP16, 64, 65537, 512);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'in' = 65537 is outside linear's range [1, 65536]");

    cfg = make_cfg("linear_gelu", DTYPE_FP32, 64, 256, -3);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'out' = -3 is outside linear_gelu's range [1, 65536]");

    cfg = make_cfg("layernorm", DTYPE_FP32, 128, 1, 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "parameter 'cols' = 1 is outside layernorm's range [2, 65536]");

    cfg = make_cfg("layernorm", DTYPE_FP32, 1048577, 64, 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "parameter 'rows' = 1048577 is outside layernorm's range [1, 1048576]");

    cfg = make_cfg("layernorm", DTYPE_FP16, INT64_MAX, 64, 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "parameter 'rows' = 9223372036854775807 is outside"));

    /* The bounds themselves are valid. */
    cfg = make_cfg("linear", DTYPE_FP32, 1, 65536, 1);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    cfg = make_cfg("layernorm", DTYPE_FP32, 1048576, 2, 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);

    /* Not a configuration at all. */
    assert_int_equal(catalog_validate(NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "no kernel given");
    cfg = make_cfg("linear", (enum dtype)5, 1, 1, 1);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "dtype 5"));

    /* A tiny error buffer is truncated, never overrun. */
    char small[8];
    memset(small, 'x', sizeof(small));
    cfg = make_cfg("linear", DTYPE_FP32, 0, 1, 1);
    assert_int_equal(catalog_validate(&cfg, 0, small, sizeof(small)), -1);
    assert_string_equal(small, "paramet");
}

static void test_validate_memory(void **state)
{
    (void)state;
    char err[512];
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 64, 256, 512);
    /* 4 * (64*256 + 256*512 + 512 + 64*512) = 722944 bytes of buffers + workspace */
    uint64_t need = 722944 + CATALOG_LINEAR_WORKSPACE_BYTES;
    assert_int_equal(need, 34277376);
    assert_int_equal(catalog_validate(&cfg, 1000, err, sizeof(err)), -1);
    assert_string_equal(err, "linear_relu fp32 batch=64,in=256,out=512 needs 34277376 bytes "
                             "(32.7 MiB) but the executor has 1000 bytes (0.0 MiB) free");
    assert_int_equal(catalog_validate(&cfg, need - 1, err, sizeof(err)), -1);
    assert_int_equal(catalog_validate(&cfg, need, err, sizeof(err)), 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);

    cfg = make_cfg("layernorm", DTYPE_FP16, 1048576, 65536, 0);
    assert_int_equal(catalog_validate(&cfg, 8ull << 30, err, sizeof(err)), -1);
    /* 2 * (2 * 2^36 + 2 * 2^16) */
    assert_string_equal(err, "layernorm fp16 rows=1048576,cols=65536 needs 274878169088 bytes "
                             "(262144.2 MiB) but the executor has 8589934592 bytes (8192.0 MiB) "
                             "free");
}

static void test_features_hand_computed(void **state)
{
    (void)state;
    struct kernel_features f;
    struct kernel_config cfg = make_cfg("linear_gelu", DTYPE_FP16, 2, 3, 4);
    catalog_features(&cfg, &f);
    /* 2*2*3*4 MACs-as-flops + 8 bias adds + 8 activations */
    assert_true(f.flops == 64.0);
    /* 2 bytes * (x 6 + W 12 + bias 4 + y 8) */
    assert_true(f.bytes == 60.0);
    assert_true(fabs(f.arithmetic_intensity - 64.0 / 60.0) < 1e-12);
    assert_int_equal(f.memory_bytes, 60 + CATALOG_LINEAR_WORKSPACE_BYTES);

    cfg = make_cfg("linear", DTYPE_FP32, 2, 3, 4);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 56.0);
    assert_true(f.bytes == 120.0);
    assert_int_equal(f.memory_bytes, 120 + CATALOG_LINEAR_WORKSPACE_BYTES);

    cfg = make_cfg("linear_relu", DTYPE_FP32, 64, 256, 512);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 2.0 * 64 * 256 * 512 + 2.0 * 64 * 512);
    assert_true(f.bytes == 722944.0);

    cfg = make_cfg("layernorm", DTYPE_FP32, 3, 5, 0);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 120.0);
    assert_true(f.bytes == 4.0 * (30 + 10));
    assert_true(fabs(f.arithmetic_intensity - 0.75) < 1e-12);
    assert_int_equal(f.memory_bytes, 160);

    assert_int_equal(catalog_output_elements(&cfg), 15);
    cfg = make_cfg("linear_gelu", DTYPE_FP16, 2, 3, 4);
    assert_int_equal(catalog_output_elements(&cfg), 8);
    assert_int_equal(catalog_output_elements(NULL), 0);

    catalog_features(NULL, &f);
    assert_true(f.flops == 0.0 && f.memory_bytes == 0);
}

static void test_config_key(void **state)
{
    (void)state;
    char buf[128];
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 64, 256, 512);
    const char *want = "linear_relu:fp32:batch=64,in=256,out=512";
    int n = catalog_config_key(&cfg, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);

    /* Exactly enough room, one byte short, far too short. */
    char exact[41];
    assert_int_equal(catalog_config_key(&cfg, exact, sizeof(exact)), 40);
    assert_string_equal(exact, want);
    char short_by_one[40];
    assert_int_equal(catalog_config_key(&cfg, short_by_one, sizeof(short_by_one)), -1);
    char tiny[5];
    assert_int_equal(catalog_config_key(&cfg, tiny, sizeof(tiny)), -1);
    assert_int_equal(catalog_config_key(&cfg, buf, 0), -1);

    cfg = make_cfg("layernorm", DTYPE_FP16, 4096, 768, 99 /* ignored: not a parameter */);
    n = catalog_config_key(&cfg, buf, sizeof(buf));
    assert_string_equal(buf, "layernorm:fp16:rows=4096,cols=768");
    assert_int_equal(n, (int)strlen(buf));
    assert_int_equal(catalog_config_key(NULL, buf, sizeof(buf)), -1);
}

static void test_maximum_sizes(void **state)
{
    (void)state;
    char err[256];
    struct kernel_features f;
    struct kernel_config cfg = make_cfg("linear_relu", DTYPE_FP32, 65536, 65536, 65536);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    catalog_features(&cfg, &f);
    const double n = 65536.0;
    assert_true(f.flops == 2.0 * n * n * n + 2.0 * n * n); /* exact in double: < 2^53 */
    assert_true(f.bytes == 4.0 * (3.0 * n * n + n));
    uint64_t buffers = 4ull * (3ull * 65536 * 65536 + 65536);
    assert_int_equal(f.memory_bytes, buffers + CATALOG_LINEAR_WORKSPACE_BYTES);
    assert_int_equal(catalog_output_elements(&cfg), (size_t)65536 * 65536);
    assert_true(f.arithmetic_intensity > 10000.0);

    cfg = make_cfg("layernorm", DTYPE_FP32, 1048576, 65536, 0);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, 4ull * (2ull * 1048576 * 65536 + 2 * 65536));
    assert_true(f.flops == 8.0 * 1048576.0 * 65536.0);
    assert_int_equal(catalog_output_elements(&cfg), (size_t)1048576 * 65536);

    /* Absurd, unvalidated values saturate instead of wrapping to small numbers. */
    cfg = make_cfg("linear", DTYPE_FP32, INT64_MAX, INT64_MAX, INT64_MAX);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, UINT64_MAX);
    assert_int_equal(catalog_output_elements(&cfg), SIZE_MAX);
    assert_true(f.flops > 1e50 && isfinite(f.flops));
    assert_int_equal(catalog_validate(&cfg, 1ull << 40, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "parameter 'batch'"));

    /* Negative values count as empty, never as huge. */
    cfg = make_cfg("layernorm", DTYPE_FP16, -5, -7, 0);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, 0);
    assert_int_equal(catalog_output_elements(&cfg), 0);
}


/* catalog_input_elements is what the executors' memory_needed is built on: it
 * must list exactly the tensors kernel_data_generate makes, in its order. */
static void test_input_elements(void **state)
{
    (void)state;
    const struct kernel_config cases[] = {
        make_cfg("linear", DTYPE_FP32, 3, 5, 7),
        make_cfg("linear_relu", DTYPE_FP16, 64, 256, 512),
        make_cfg("linear_gelu", DTYPE_FP32, 1, 1, 1),
        make_cfg("layernorm", DTYPE_FP16, 9, 33, 0),
        make_cfg("linear_bn", DTYPE_FP32, 3, 5, 7),
        make_cfg("linear_bn_relu", DTYPE_FP16, 2, 9, 4),
        make_cfg("softmax", DTYPE_FP32, 3, 7, 0),
        make_cfg("add", DTYPE_FP16, 5, 6, 0),
        make_cfg("add_relu", DTYPE_FP32, 1, 1, 0),
        make_cfg4("attention", DTYPE_FP32, 2, 3, 4, 5),
        make_cfg("tokenizer", DTYPE_FP16, 3, 4, 5),
        make_cfg("concat", DTYPE_FP32, 3, 4, 5),
    };
    /* Element counts written out for the tensors of each case above. */
    static const struct {
        unsigned n;
        uint64_t e[7];
    } want[] = {
        {3, {15, 35, 7}},          {3, {64 * 256, 512 * 256, 512}}, {3, {1, 1, 1}},
        {3, {9 * 33, 33, 33}},     {7, {15, 35, 7, 7, 7, 7, 7}},    {7, {18, 36, 4, 4, 4, 4, 4}},
        {1, {21}},                 {2, {30, 30}},                   {2, {1, 1}},
        {3, {120, 120, 120}},      {3, {12, 20, 20}},               {2, {12, 15}},
    };
    assert_int_equal(sizeof(want) / sizeof(want[0]), sizeof(cases) / sizeof(cases[0]));
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t elements[CATALOG_MAX_INPUTS];
        unsigned n = catalog_input_elements(&cases[i], elements);
        struct kernel_data kd;
        assert_int_equal(kernel_data_generate(&cases[i], 1, &kd, err, sizeof(err)), 0);
        assert_int_equal(n, kd.input_count);
        assert_int_equal(n, want[i].n);
        for (unsigned t = 0; t < n; t++) {
            assert_int_equal(elements[t], kd.inputs[t].elements);
            assert_int_equal(elements[t], want[i].e[t]);
        }
        kernel_data_free(&kd);
    }
    /* Saturating, never wrapping; nothing for no kernel. */
    struct kernel_config huge = make_cfg("layernorm", DTYPE_FP32, 1048576, 65536, 0);
    uint64_t elements[CATALOG_MAX_INPUTS];
    assert_int_equal(catalog_input_elements(&huge, elements), 3);
    assert_int_equal(elements[0], 1048576ull * 65536ull);
    struct kernel_config none = {0};
    assert_int_equal(catalog_input_elements(&none, elements), 0);
}

/* Each new kernel's ranges, below and above, with the catalogue's message; the
 * bounds themselves are valid. */
static void test_validate_new_kernels(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *kernel;
        int64_t p[4];
        const char *message; /* NULL: valid */
    } cases[] = {
        {"linear_bn", {0, 8, 8, 0}, "parameter 'batch' = 0 is outside linear_bn's range [1, 65536]"},
        {"linear_bn_relu", {4, 8, 65537, 0},
         "parameter 'out' = 65537 is outside linear_bn_relu's range [1, 65536]"},
        {"linear_bn_relu", {65536, 1, 65536, 0}, NULL},
        {"softmax", {4, 1, 0, 0}, "parameter 'cols' = 1 is outside softmax's range [2, 65536]"},
        {"softmax", {1048577, 2, 0, 0},
         "parameter 'rows' = 1048577 is outside softmax's range [1, 1048576]"},
        {"softmax", {1048576, 65536, 0, 0}, NULL},
        {"add", {4, 0, 0, 0}, "parameter 'cols' = 0 is outside add's range [1, 65536]"},
        {"add", {1, 1, 0, 0}, NULL},
        {"add_relu", {-1, 4, 0, 0}, "parameter 'rows' = -1 is outside add_relu's range [1, 1048576]"},
        {"add_relu", {4, 65537, 0, 0},
         "parameter 'cols' = 65537 is outside add_relu's range [1, 65536]"},
        {"attention", {4097, 4, 4, 4},
         "parameter 'batch' = 4097 is outside attention's range [1, 4096]"},
        {"attention", {1, 0, 4, 4}, "parameter 'tokens' = 0 is outside attention's range [1, 4096]"},
        {"attention", {1, 4, 65, 4}, "parameter 'heads' = 65 is outside attention's range [1, 64]"},
        {"attention", {1, 4, 4, 257},
         "parameter 'head_dim' = 257 is outside attention's range [1, 256]"},
        {"attention", {4096, 4096, 64, 256}, NULL},
        {"attention", {1, 1, 1, 1}, NULL},
        {"tokenizer", {65537, 4, 4, 0},
         "parameter 'batch' = 65537 is outside tokenizer's range [1, 65536]"},
        {"tokenizer", {1, 4097, 4, 0},
         "parameter 'features' = 4097 is outside tokenizer's range [1, 4096]"},
        {"tokenizer", {1, 4, 1025, 0}, "parameter 'd' = 1025 is outside tokenizer's range [1, 1024]"},
        {"tokenizer", {65536, 4096, 1024, 0}, NULL},
        {"concat", {0, 4, 4, 0}, "parameter 'rows' = 0 is outside concat's range [1, 1048576]"},
        {"concat", {4, 65537, 4, 0},
         "parameter 'cols_a' = 65537 is outside concat's range [1, 65536]"},
        {"concat", {4, 4, 0, 0}, "parameter 'cols_b' = 0 is outside concat's range [1, 65536]"},
        {"concat", {1048576, 65536, 65536, 0}, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int d = 0; d < DTYPE_COUNT; d++) {
            struct kernel_config cfg = make_cfg4(cases[i].kernel, (enum dtype)d, cases[i].p[0],
                                                 cases[i].p[1], cases[i].p[2], cases[i].p[3]);
            int rc = catalog_validate(&cfg, 0, err, sizeof(err));
            if (!cases[i].message) {
                if (rc != 0)
                    fail_msg("case %zu (%s): %s", i, cases[i].kernel, err);
            } else {
                assert_int_equal(rc, -1);
                assert_string_equal(err, cases[i].message);
            }
        }
    }
}

/* A kernel whose ranges let the element count overflow (a table entry with a
 * wrong range, or a caller's own entry) is refused with a message, never
 * wrapped into a small buffer. */
static void test_validate_overflow(void **state)
{
    (void)state;
    char err[512];
    static const struct catalog_kernel wide = {
        .name = "wide_attention",
        .op = KOP_ATTENTION,
        .doc = "attention with unbounded ranges",
        .param_count = 4,
        .params =
            {
                {"batch", 1, INT64_MAX, true, "b"},
                {"tokens", 1, INT64_MAX, true, "t"},
                {"heads", 1, INT64_MAX, true, "h"},
                {"head_dim", 1, INT64_MAX, true, "d"},
            },
    };
    struct kernel_config cfg = {.kernel = &wide, .dtype = DTYPE_FP32,
                                .params = {1 << 20, 1 << 20, 1 << 20, 1 << 20}};
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    char want[512];
    /* 2^80 elements: the product saturates */
    snprintf(want, sizeof(want),
             "wide_attention fp32 batch=1048576,tokens=1048576,heads=1048576,head_dim=1048576 "
             "is too large: tensor 'q' would have more than 2^64 elements, more than the %zu "
             "this host can address",
             SIZE_MAX / sizeof(float));
    assert_string_equal(err, want);
    struct kernel_features f;
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, UINT64_MAX);

    /* 2^16 * 2^15 * 2^16 * 2^16 = 2^63 elements: fits in 64 bits, not in memory. */
    cfg.params[0] = 1 << 16;
    cfg.params[1] = 1 << 15;
    cfg.params[2] = 1 << 16;
    cfg.params[3] = 1 << 16;
    cfg.dtype = DTYPE_FP16;
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tensor 'q' would have 9223372036854775808 elements"));

    /* Only the output too large: concat's y = rows * (cols_a + cols_b). */
    static const struct catalog_kernel wide_concat = {
        .name = "wide_concat",
        .op = KOP_CONCAT,
        .doc = "concat with unbounded ranges",
        .param_count = 3,
        .params = {{"rows", 1, INT64_MAX, true, "r"},
                   {"cols_a", 1, INT64_MAX, true, "a"},
                   {"cols_b", 1, INT64_MAX, true, "b"}},
    };
    cfg = (struct kernel_config){.kernel = &wide_concat, .dtype = DTYPE_FP32,
                                 .params = {1ll << 31, 1ll << 30, 1ll << 30}};
    /* a and b have 2^61 elements each (addressable), y 2^62 (not) */
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tensor 'y' would have 4611686018427387904 elements"));
}

/* One hand-computed case per new kernel (FLOP conventions in catalog.c). */
static void test_features_new_kernels(void **state)
{
    (void)state;
    struct kernel_features f;

    /* linear_bn runs linear's GEMM on the folded W', b': 2*2*3*4 + 8 bias adds */
    struct kernel_config cfg = make_cfg("linear_bn", DTYPE_FP32, 2, 3, 4);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 56.0);
    assert_true(f.bytes == 4.0 * (6 + 12 + 4 + 8)); /* x, W', b', y */
    assert_int_equal(f.memory_bytes, 120 + CATALOG_LINEAR_WORKSPACE_BYTES);
    assert_int_equal(catalog_output_elements(&cfg), 8);
    cfg = make_cfg("linear_bn_relu", DTYPE_FP16, 2, 3, 4);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 64.0); /* + 8 ReLU */
    assert_true(f.bytes == 60.0);
    assert_true(fabs(f.arithmetic_intensity - 64.0 / 60.0) < 1e-12);

    /* softmax 3 x 5: 5 flops per element (max, sub, exp, sum, scale) = 75;
     * 4 * (15 read + 15 written) = 120 bytes */
    cfg = make_cfg("softmax", DTYPE_FP32, 3, 5, 0);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 75.0);
    assert_true(f.bytes == 120.0);
    assert_true(fabs(f.arithmetic_intensity - 0.625) < 1e-12);
    assert_int_equal(f.memory_bytes, 120);
    assert_int_equal(catalog_output_elements(&cfg), 15);

    /* add fp16 4 x 8: 32 adds; 2 * 3 * 32 = 192 bytes. add_relu: + 32 max. */
    cfg = make_cfg("add", DTYPE_FP16, 4, 8, 0);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 32.0);
    assert_true(f.bytes == 192.0);
    assert_int_equal(f.memory_bytes, 192);
    cfg = make_cfg("add_relu", DTYPE_FP16, 4, 8, 0);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 64.0);
    assert_true(fabs(f.arithmetic_intensity - 1.0 / 3.0) < 1e-12);
    assert_int_equal(catalog_output_elements(&cfg), 32);

    /* attention batch 2, tokens 3, heads 4, head_dim 5: 2*4 = 8 (batch, head)
     * pairs of 3*3 = 9 scores: 72 scores, each 2*5 (q.k) + 1 (scale) + 5
     * (softmax) + 2*5 (P v) = 26 flops: 1872. q, k, v, y: 4 * 120 floats. */
    cfg = make_cfg4("attention", DTYPE_FP32, 2, 3, 4, 5);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 1872.0);
    assert_true(f.bytes == 1920.0);
    assert_true(fabs(f.arithmetic_intensity - 0.975) < 1e-12);
    assert_int_equal(f.memory_bytes, 1920);
    assert_int_equal(catalog_output_elements(&cfg), 120);

    /* tokenizer fp16 batch 2, features 3, d 4: 24 outputs, 1 mul + 1 add each;
     * 2 * (x 6 + W 12 + bias 12 + y 24) = 108 bytes */
    cfg = make_cfg("tokenizer", DTYPE_FP16, 2, 3, 4);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 48.0);
    assert_true(f.bytes == 108.0);
    assert_int_equal(f.memory_bytes, 108);
    assert_int_equal(catalog_output_elements(&cfg), 24);

    /* concat 2 x (3 + 5): no flops; 4 * (6 + 10 read + 16 written) = 128 bytes */
    cfg = make_cfg("concat", DTYPE_FP32, 2, 3, 5);
    catalog_features(&cfg, &f);
    assert_true(f.flops == 0.0);
    assert_true(f.bytes == 128.0);
    assert_true(f.arithmetic_intensity == 0.0);
    assert_int_equal(f.memory_bytes, 128);
    assert_int_equal(catalog_output_elements(&cfg), 16);
}

/* The largest configuration of every new kernel: exact, finite, no wrap. */
static void test_maximum_sizes_new_kernels(void **state)
{
    (void)state;
    char err[256];
    struct kernel_features f;
    struct kernel_config cfg = make_cfg4("attention", DTYPE_FP32, 4096, 4096, 64, 256);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    catalog_features(&cfg, &f);
    uint64_t n = 1ull << 38; /* 2^12 * 2^12 * 2^6 * 2^8 elements per tensor */
    assert_int_equal(catalog_output_elements(&cfg), (size_t)n);
    assert_int_equal(f.memory_bytes, 4ull * 4ull * n);
    /* 2^12 * 2^6 * 2^24 scores, 4 * 256 + 6 flops each: exact in double */
    assert_true(f.flops == 1030.0 * 4398046511104.0);
    assert_true(isfinite(f.arithmetic_intensity) && f.arithmetic_intensity > 0);
    /* ... and far beyond any device: the memory check refuses it */
    assert_int_equal(catalog_validate(&cfg, 64ull << 30, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs 4398046511104 bytes"));

    cfg = make_cfg("tokenizer", DTYPE_FP16, 65536, 4096, 1024);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    catalog_features(&cfg, &f);
    assert_int_equal(catalog_output_elements(&cfg), (size_t)1 << 38);
    assert_int_equal(f.memory_bytes, 2ull * ((1ull << 28) + 2ull * (1ull << 22) + (1ull << 38)));
    assert_true(f.flops == 2.0 * 274877906944.0);

    cfg = make_cfg("concat", DTYPE_FP32, 1048576, 65536, 65536);
    assert_int_equal(catalog_validate(&cfg, 0, err, sizeof(err)), 0);
    catalog_features(&cfg, &f);
    assert_int_equal(catalog_output_elements(&cfg), (size_t)1 << 37);
    assert_int_equal(f.memory_bytes, 4ull * 2ull * (1ull << 37));

    cfg = make_cfg("softmax", DTYPE_FP32, 1048576, 65536, 0);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, 4ull * 2ull * (1ull << 36));
    assert_true(f.flops == 5.0 * 68719476736.0);

    cfg = make_cfg("add_relu", DTYPE_FP16, 1048576, 65536, 0);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, 2ull * 3ull * (1ull << 36));

    cfg = make_cfg("linear_bn_relu", DTYPE_FP32, 65536, 65536, 65536);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes,
                     4ull * (3ull * 65536 * 65536 + 65536) + CATALOG_LINEAR_WORKSPACE_BYTES);

    /* Unvalidated absurd values saturate. */
    cfg = make_cfg4("attention", DTYPE_FP32, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX);
    catalog_features(&cfg, &f);
    assert_int_equal(f.memory_bytes, UINT64_MAX);
    assert_int_equal(catalog_output_elements(&cfg), SIZE_MAX);
    assert_true(isfinite(f.flops));
    cfg = make_cfg("concat", DTYPE_FP32, INT64_MAX, INT64_MAX, INT64_MAX);
    assert_int_equal(catalog_output_elements(&cfg), SIZE_MAX);
}

static void test_config_key_new_kernels(void **state)
{
    (void)state;
    char buf[128];
    struct kernel_config cfg = make_cfg4("attention", DTYPE_FP16, 8, 17, 8, 64);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "attention:fp16:batch=8,tokens=17,heads=8,head_dim=64");
    cfg = make_cfg("concat", DTYPE_FP32, 64, 128, 32);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "concat:fp32:rows=64,cols_a=128,cols_b=32");
    cfg = make_cfg("tokenizer", DTYPE_FP32, 256, 16, 192);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "tokenizer:fp32:batch=256,features=16,d=192");
    cfg = make_cfg("linear_bn_relu", DTYPE_FP16, 64, 256, 512);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "linear_bn_relu:fp16:batch=64,in=256,out=512");
    cfg = make_cfg("add_relu", DTYPE_FP32, 64, 256, 0);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "add_relu:fp32:rows=64,cols=256");
    cfg = make_cfg("softmax", DTYPE_FP32, 1, 2, 0);
    assert_true(catalog_config_key(&cfg, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "softmax:fp32:rows=1,cols=2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_and_list),
        cmocka_unit_test(test_new_kernel_params),
        cmocka_unit_test(test_validate_new_kernels),
        cmocka_unit_test(test_validate_overflow),
        cmocka_unit_test(test_features_new_kernels),
        cmocka_unit_test(test_maximum_sizes_new_kernels),
        cmocka_unit_test(test_config_key_new_kernels),
        cmocka_unit_test(test_params_and_ranges),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_validate_ranges),
        cmocka_unit_test(test_validate_memory),
        cmocka_unit_test(test_features_hand_computed),
        cmocka_unit_test(test_config_key),
        cmocka_unit_test(test_maximum_sizes),
        cmocka_unit_test(test_input_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
