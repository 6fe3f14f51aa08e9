/*
 * test_predict_trainset.c - the training pipeline jetprofd and `jetprof train
 * --offline` share (predict/trainset.c): the same rows and options give
 * byte-identical blobs, metrics and training hashes (run twice, and against a
 * hash computed independently from the documented definition); the models
 * come in the documented order (latency, then each rail in the order the rows
 * reported them first), are jetprof-model/1 blobs a model set loads and
 * predicts from, and carry the quality and simulated labels; the hash changes
 * with every input it covers. Error paths: rows that make no configuration are
 * left out with a note (and too few usable rows refused with the count), rows
 * not sorted by uid, duplicate and empty uids refused naming the rows, a rail
 * too few rows report gets no model, a non-positive latency fails the
 * training naming the kernel and target, should_stop abandons the kernel type,
 * and a failure leaves the caller's model list as it was; options outside the
 * daemon's ranges are refused naming the option.
 *
 * Rounds and ensembles are kept small so the binary stays fast under the sanitizers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict/models.h"
#include "predict/trainset.h"

#define ROWS 40

/* ---- helpers ---- */

struct notes {
    unsigned warns, infos;
    char last_warn[512];
};

static void collect(void *ctx, enum trainset_note_level level, const char *message)
{
    struct notes *n = ctx;
    if (level == TRAINSET_NOTE_WARN) {
        n->warns++;
        snprintf(n->last_warn, sizeof n->last_warn, "%s", message);
    } else {
        n->infos++;
    }
}

static struct trainset_params small_params(struct notes *notes)
{
    struct trainset_params p;
    memset(&p, 0, sizeof p);
    train_options_default(&p.options);
    p.options.rounds = 15;
    p.options.ensemble_size = 2;
    p.quality = NULL;
    p.simulated = true;
    p.note = collect;
    p.ctx = notes;
    return p;
}

/* ROWS linear rows, uids "row-000".."row-039" (sorted), latency a smooth law
 * of the size, VDD_IN and VDD_GPU power on every row. */
static struct trainset_row *linear_rows(void)
{
    struct trainset_row *rows = calloc(ROWS, sizeof *rows);
    assert_non_null(rows);
    for (int i = 0; i < ROWS; i++) {
        struct trainset_row *r = &rows[i];
        int batch = 1 + (i * 7) % 64, in = 16 + (i * 37) % 512, out = 8 + (i * 53) % 256;
        snprintf(r->uid, sizeof r->uid, "row-%03d", i);
        snprintf(r->dtype, sizeof r->dtype, "%s", i % 3 ? "fp32" : "fp16");
        snprintf(r->params_json, sizeof r->params_json,
                 "{\"batch\": %d, \"in\": %d, \"out\": %d}", batch, in, out);
        r->latency_us = 2.0 + 0.001 * batch * in * out / 64.0;
        r->rail_count = 2;
        snprintf(r->rails[0].name, sizeof r->rails[0].name, "VDD_IN");
        r->rails[0].power_mw = 4000.0 + 0.01 * batch * out;
        snprintf(r->rails[1].name, sizeof r->rails[1].name, "VDD_GPU");
        r->rails[1].power_mw = 900.0 + 0.02 * in;
    }
    return rows;
}

static const struct catalog_kernel *linear(void)
{
    const struct catalog_kernel *k = catalog_find("linear");
    assert_non_null(k);
    return k;
}

/* ---- same rows, same bytes ---- */

static void test_same_rows_identical(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    struct notes n1 = {0}, n2 = {0};
    struct trainset_params p1 = small_params(&n1), p2 = small_params(&n2);
    struct trainset_models a = {0}, b = {0};
    struct trainset_result r;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p1, &a, &r), TRAINSET_OK);
    assert_int_equal(r.usable, ROWS);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p2, &b, &r), TRAINSET_OK);
    assert_int_equal(a.count, 3);
    assert_int_equal(b.count, 3);
    static const char *const targets[] = {"latency_us", "power_mw:VDD_IN", "power_mw:VDD_GPU"};
    for (size_t i = 0; i < a.count; i++) {
        assert_string_equal(a.items[i].kernel, "linear");
        assert_string_equal(a.items[i].target, targets[i]);
        assert_string_equal(a.items[i].target, b.items[i].target);
        assert_int_equal(a.items[i].blob_len, b.items[i].blob_len);
        assert_memory_equal(a.items[i].blob, b.items[i].blob, a.items[i].blob_len);
        assert_string_equal(a.items[i].training_hash, b.items[i].training_hash);
        assert_string_equal(a.items[i].metrics_json, b.items[i].metrics_json);
        assert_int_equal(strlen(a.items[i].training_hash), TRAINSET_HASH_HEX_CHARS);
    }
    /* every target has its own hash */
    assert_string_not_equal(a.items[0].training_hash, a.items[1].training_hash);
    assert_string_not_equal(a.items[1].training_hash, a.items[2].training_hash);
    assert_int_equal(n1.infos, 3); /* one line per model */
    assert_int_equal(n1.warns, 0);

    /* another seed: other bytes, other hash */
    struct notes n3 = {0};
    struct trainset_params p3 = small_params(&n3);
    p3.options.seed = 7;
    struct trainset_models c = {0};
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p3, &c, &r), TRAINSET_OK);
    assert_string_not_equal(a.items[0].training_hash, c.items[0].training_hash);
    trainset_models_free(&a);
    trainset_models_free(&b);
    trainset_models_free(&c);
    assert_int_equal(a.count, 0);
    assert_null(a.items);
    free(rows);
}

/* The blob is jetprof-model/1 for the kernel and target, loads into a model
 * set and predicts; the metrics carry the labels. */
static void test_blob_metrics_predict(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    struct notes notes = {0};
    struct trainset_params p = small_params(&notes);
    p.quality = "ok";
    p.simulated = false;
    struct trainset_models m = {0};
    struct trainset_result r;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_OK);
    struct model_set *set = model_set_new();
    assert_non_null(set);
    for (size_t i = 0; i < m.count; i++) {
        json_error_t jerr;
        json_t *blob = json_loadb(m.items[i].blob, m.items[i].blob_len, 0, &jerr);
        assert_non_null(blob);
        assert_string_equal(json_string_value(json_object_get(blob, "format")),
                            PREDICT_MODEL_FORMAT);
        assert_string_equal(json_string_value(json_object_get(blob, "kernel")), "linear");
        assert_string_equal(json_string_value(json_object_get(blob, "target")),
                            m.items[i].target);
        assert_true(json_is_true(json_object_get(blob, "log_target")) == (i == 0));
        assert_int_equal(json_integer_value(json_object_get(blob, "feature_count")), 10);
        assert_int_equal(json_array_size(json_object_get(blob, "members")), 2);
        json_decref(blob);

        json_t *metrics = json_loads(m.items[i].metrics_json, 0, &jerr);
        assert_non_null(metrics);
        assert_string_equal(json_string_value(json_object_get(metrics, "quality")), "ok");
        assert_true(json_is_false(json_object_get(metrics, "simulated")));
        assert_int_equal(json_integer_value(json_object_get(metrics, "rounds")), 15);
        assert_int_equal(json_integer_value(json_object_get(metrics, "train_rows")) +
                             json_integer_value(json_object_get(metrics, "test_rows")),
                         ROWS);
        json_decref(metrics);

        char err[512];
        assert_int_equal(model_set_add_blob(set, m.items[i].blob, m.items[i].blob_len, err,
                                            sizeof err),
                         0);
    }
    struct kernel_config cfg = {.kernel = linear(), .dtype = DTYPE_FP32};
    cfg.params[0] = 16;
    cfg.params[1] = 128;
    cfg.params[2] = 64;
    struct kernel_prediction pred;
    char err[512];
    assert_int_equal(model_set_predict(set, &cfg, &pred, err, sizeof err), 0);
    assert_true(pred.latency_us > 0);
    assert_int_equal(pred.rail_count, 2);
    assert_string_equal(pred.rails[0].name, "VDD_IN");
    assert_true(pred.rails[0].power_mw > 3000 && pred.rails[0].power_mw < 6000);
    model_set_free(set);
    trainset_models_free(&m);
    free(rows);
}

/* ---- the training hash ---- */

static void test_hash_definition(void **state)
{
    (void)state;
    struct trainset_row rows[3];
    memset(rows, 0, sizeof rows);
    snprintf(rows[0].uid, sizeof rows[0].uid, "0b-uid");
    snprintf(rows[1].uid, sizeof rows[1].uid, "zz-not-used");
    snprintf(rows[2].uid, sizeof rows[2].uid, "1a-uid");
    struct train_options opt;
    train_options_default(&opt);
    opt.log_target = true;
    size_t used[] = {0, 2};
    char hex[TRAINSET_HASH_HEX_CHARS + 1];
    trainset_training_hash("linear", "latency_us", rows, used, 2, &opt, hex);
    /* sha256("jetprof-training-v1\nkernel=linear\ntarget=latency_us\nseed=42\n
     * holdout=0.20000000000000001\nensemble=5\nrounds=200\nmax_depth=6\n
     * eta=0.10000000000000001\nlog_target=1\nfeature_version=1\nrows=2\n0b-uid\n1a-uid\n"),
     * computed with Python's hashlib: the definition models in databases carry. */
    assert_string_equal(hex, "ac2774e1bc7f2250dec210398883390817c262a40c2f4d2f9d2ef3609a8fec48");

    char other[TRAINSET_HASH_HEX_CHARS + 1];
    trainset_training_hash("linear", "power_mw:VDD_IN", rows, used, 2, &opt, other);
    assert_string_not_equal(hex, other);
    trainset_training_hash("linear_relu", "latency_us", rows, used, 2, &opt, other);
    assert_string_not_equal(hex, other);
    size_t fewer[] = {0};
    trainset_training_hash("linear", "latency_us", rows, fewer, 1, &opt, other);
    assert_string_not_equal(hex, other);
    size_t swapped[] = {2, 0};
    trainset_training_hash("linear", "latency_us", rows, swapped, 2, &opt, other);
    assert_string_not_equal(hex, other);
    struct train_options o2 = opt;
    o2.eta = 0.2;
    trainset_training_hash("linear", "latency_us", rows, used, 2, &o2, other);
    assert_string_not_equal(hex, other);
    o2 = opt;
    o2.log_target = false;
    trainset_training_hash("linear", "latency_us", rows, used, 2, &o2, other);
    assert_string_not_equal(hex, other);
    o2 = opt;
    o2.threads = 4; /* not part of what a model is trained from */
    trainset_training_hash("linear", "latency_us", rows, used, 2, &o2, other);
    assert_string_equal(hex, other);
}

/* ---- error paths ---- */

static void test_rows_left_out(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    /* 4 rows that make no configuration of "linear" */
    snprintf(rows[3].params_json, sizeof rows[3].params_json, "{\"batch\": 8, \"in\": 16}");
    snprintf(rows[5].params_json, sizeof rows[5].params_json,
             "{\"batch\": 8.5, \"in\": 16, \"out\": 4}");
    snprintf(rows[7].params_json, sizeof rows[7].params_json, "not json");
    snprintf(rows[9].dtype, sizeof rows[9].dtype, "int8");
    struct kernel_config cfg;
    assert_int_equal(trainset_row_config(linear(), &rows[3], &cfg), -1);
    assert_int_equal(trainset_row_config(linear(), &rows[9], &cfg), -1);
    assert_int_equal(trainset_row_config(linear(), &rows[0], &cfg), 0);
    assert_int_equal(cfg.params[0], 1);

    struct notes notes = {0};
    struct trainset_params p = small_params(&notes);
    struct trainset_models m = {0};
    struct trainset_result r;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_OK);
    assert_int_equal(r.usable, ROWS - 4);
    assert_int_equal(r.skipped, 4);
    assert_int_equal(notes.warns, 1);
    assert_non_null(strstr(notes.last_warn, "4 measurements left out"));
    struct notes n2 = {0};
    struct trainset_params p2 = small_params(&n2);
    /* the trained models record the usable rows */
    json_t *metrics = json_loads(m.items[0].metrics_json, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(metrics, "train_rows")) +
                         json_integer_value(json_object_get(metrics, "test_rows")),
                     ROWS - 4);
    json_decref(metrics);
    trainset_models_free(&m);

    /* too few usable rows: refused with the count, nothing appended */
    assert_int_equal(trainset_train_kernel(linear(), rows, 21, &p2, &m, &r),
                     TRAINSET_TOO_FEW_ROWS);
    assert_int_equal(r.usable, 17);
    assert_non_null(strstr(r.detail, "17 usable measurements"));
    assert_int_equal(m.count, 0);
    assert_int_equal(trainset_train_kernel(linear(), NULL, 0, &p2, &m, &r),
                     TRAINSET_TOO_FEW_ROWS);
    assert_int_equal(r.usable, 0);
    free(rows);
}

static void test_rows_out_of_order(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    struct notes notes = {0};
    struct trainset_params p = small_params(&notes);
    struct trainset_models m = {0};
    struct trainset_result r;

    struct trainset_row keep = rows[10];
    rows[10] = rows[11];
    rows[11] = keep;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_BAD_INPUT);
    assert_non_null(strstr(r.detail, "not sorted by uid"));
    assert_non_null(strstr(r.detail, "row 11 'row-010'"));
    rows[11] = rows[10];
    rows[10] = keep;

    snprintf(rows[20].uid, sizeof rows[20].uid, "%s", rows[19].uid);
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_BAD_INPUT);
    assert_non_null(strstr(r.detail, "rows 19 and 20 have the same uid 'row-019'"));
    snprintf(rows[20].uid, sizeof rows[20].uid, "row-020");

    rows[0].uid[0] = '\0';
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_BAD_INPUT);
    assert_non_null(strstr(r.detail, "row 0 has no uid"));
    memset(rows[0].uid, 'x', sizeof rows[0].uid); /* not terminated */
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_BAD_INPUT);
    assert_non_null(strstr(r.detail, "not terminated"));
    assert_int_equal(m.count, 0);
    assert_int_equal(notes.infos, 0); /* nothing was trained */

    assert_int_equal(trainset_train_kernel(NULL, rows, ROWS, &p, &m, &r), TRAINSET_BAD_INPUT);
    free(rows);
}

static void test_rail_reported_by_few_rows(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    /* VDD_GPU reported by 10 rows only, and not finite on 2 more of them */
    for (int i = 10; i < ROWS; i++)
        rows[i].rail_count = 1;
    rows[0].rails[1].power_mw = NAN;
    rows[1].rails[1].power_mw = INFINITY;
    struct notes notes = {0};
    struct trainset_params p = small_params(&notes);
    struct trainset_models m = {0};
    struct trainset_result r;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_OK);
    assert_int_equal(m.count, 2);
    assert_string_equal(m.items[1].target, "power_mw:VDD_IN");
    assert_int_equal(notes.warns, 1);
    assert_non_null(strstr(notes.last_warn, "power_mw:VDD_GPU: only 8 of 40 rows report the rail"));
    trainset_models_free(&m);

    /* a rail first reported on a later row comes after the earlier ones */
    struct trainset_row *r2 = linear_rows();
    for (int i = 0; i < ROWS; i++) {
        struct trainset_rail t = r2[i].rails[0];
        r2[i].rails[0] = r2[i].rails[1];
        r2[i].rails[1] = t;
    }
    assert_int_equal(trainset_train_kernel(linear(), r2, ROWS, &p, &m, &r), TRAINSET_OK);
    assert_int_equal(m.count, 3);
    assert_string_equal(m.items[1].target, "power_mw:VDD_GPU");
    assert_string_equal(m.items[2].target, "power_mw:VDD_IN");
    trainset_models_free(&m);
    free(r2);
    free(rows);
}

static bool stop_after(void *ctx)
{
    unsigned *left = ctx;
    if (*left == 0)
        return true;
    (*left)--;
    return false;
}

/* A failure or a stop leaves models already in the list and removes this
 * kernel type's partial ones. */
static void test_failure_keeps_list(void **state)
{
    (void)state;
    struct trainset_row *rows = linear_rows();
    struct notes notes = {0};
    struct trainset_params p = small_params(&notes);
    struct trainset_models m = {0};
    struct trainset_result r;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_OK);
    assert_int_equal(m.count, 3);
    char *first_blob = m.items[0].blob;

    /* a non-positive latency: the log-target training refuses it */
    rows[12].latency_us = 0.0;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &p, &m, &r), TRAINSET_FAILED);
    assert_non_null(strstr(r.detail, "training linear latency_us on 40 rows failed"));
    assert_int_equal(m.count, 3);
    assert_ptr_equal(m.items[0].blob, first_blob);
    rows[12].latency_us = 5.0;

    /* stopped before the second power model: the latency and first power model go */
    unsigned allow = 2;
    struct trainset_params ps = small_params(&notes);
    ps.should_stop = stop_after;
    ps.ctx = &allow;
    ps.note = NULL;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &ps, &m, &r), TRAINSET_STOPPED);
    assert_int_equal(allow, 0);
    assert_int_equal(m.count, 3);
    allow = 0;
    assert_int_equal(trainset_train_kernel(linear(), rows, ROWS, &ps, &m, &r), TRAINSET_STOPPED);
    assert_int_equal(m.count, 3);
    trainset_models_free(&m);
    free(rows);
}

static void test_options_check(void **state)
{
    (void)state;
    struct train_options opt;
    char err[256];
    train_options_default(&opt);
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), 0);
    opt.rounds = 0;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "rounds must be 1..10000, got 0"));
    train_options_default(&opt);
    opt.rounds = 10001;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    train_options_default(&opt);
    opt.max_depth = 17;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_depth must be 1..16"));
    train_options_default(&opt);
    opt.eta = 0.0005;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "eta must be"));
    opt.eta = NAN;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    train_options_default(&opt);
    opt.ensemble_size = 0;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "ensemble must be 1..16"));
    train_options_default(&opt);
    opt.holdout_fraction = 0.6;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "holdout must be"));
    train_options_default(&opt);
    opt.holdout_fraction = 0.5;
    opt.eta = 1.0;
    opt.rounds = 1;
    opt.max_depth = 16;
    opt.ensemble_size = 16;
    assert_int_equal(trainset_options_check(&opt, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_rows_identical),
        cmocka_unit_test(test_blob_metrics_predict),
        cmocka_unit_test(test_hash_definition),
        cmocka_unit_test(test_rows_left_out),
        cmocka_unit_test(test_rows_out_of_order),
        cmocka_unit_test(test_rail_reported_by_few_rows),
        cmocka_unit_test(test_failure_keeps_list),
        cmocka_unit_test(test_options_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
