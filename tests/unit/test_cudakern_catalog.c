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

static void test_find_and_list(void **state)
{
    (void)state;
    assert_int_equal(catalog_count(), 4);
    const char *names[] = {"linear", "linear_relu", "linear_gelu", "layernorm"};
    const enum kernel_op ops[] = {KOP_LINEAR, KOP_LINEAR_RELU, KOP_LINEAR_GELU, KOP_LAYERNORM};
    for (size_t i = 0; i < 4; i++) {
        const struct catalog_kernel *k = catalog_find(names[i]);
        assert_non_null(k);
        assert_ptr_equal(k, catalog_at(i));
        assert_string_equal(k->name, names[i]);
        assert_int_equal(k->op, ops[i]);
        assert_true(strlen(k->doc) > 20);
        for (unsigned p = 0; p < k->param_count; p++) {
            assert_true(strlen(k->params[p].doc) > 5);
            assert_true(k->params[p].log_scale);
        }
    }
    assert_null(catalog_at(4));
    assert_null(catalog_find("conv2d"));
    assert_null(catalog_find("Linear"));
    assert_null(catalog_find(""));
    assert_null(catalog_find(NULL));
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
    };
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t elements[CATALOG_MAX_INPUTS];
        unsigned n = catalog_input_elements(&cases[i], elements);
        struct kernel_data kd;
        assert_int_equal(kernel_data_generate(&cases[i], 1, &kd, err, sizeof(err)), 0);
        assert_int_equal(n, kd.input_count);
        for (unsigned t = 0; t < n; t++)
            assert_int_equal(elements[t], kd.inputs[t].elements);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_and_list),
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
