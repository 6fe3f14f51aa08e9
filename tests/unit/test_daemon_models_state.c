/*
 * test_daemon_models_state.c - the daemon's current predictors and the
 * prediction cache (daemon/models_state.c): no models is an error naming the
 * kernel type; misses then hits, counted, with identical bytes either way and
 * the same numbers as the model set itself; errors are not cached; replacing
 * the models empties the cache and bumps the generation; a full cache evicts
 * by CLOCK (a recently hit entry survives, the cold one goes); no cache at all
 * (0 entries); and readers on several threads predicting while the models are
 * replaced under them: every answer is exactly one whole set's, never a mix,
 * and nothing is used after being freed (ASan).
 *
 * The models are real: small XGBoost boosters trained here through the C API
 * and wrapped into jetprof-model/1 blobs, read by model_set_add_blob.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "common/log.h"
#include "daemon/models_state.h"
#include "predict/features.h"
#include "predict/models.h"

/* ---- models made for the tests ---- */

#define TRAIN_ROWS 24

/* A linear configuration from a small grid, always within the catalogue's ranges. */
static struct kernel_config linear_config(int64_t batch, int64_t in, int64_t out)
{
    struct kernel_config c;
    memset(&c, 0, sizeof c);
    c.kernel = catalog_find("linear");
    c.dtype = DTYPE_FP32;
    c.params[catalog_param_index(c.kernel, "batch")] = batch;
    c.params[catalog_param_index(c.kernel, "in")] = in;
    c.params[catalog_param_index(c.kernel, "out")] = out;
    return c;
}

/*
 * A jetprof-model/1 blob for kernel "linear" and target, one member: an XGBoost
 * booster (4 rounds, depth 3) fitted to scale * (batch + in + out) (its log with
 * log_target) over a grid of configurations. Returns malloc'd text.
 */
static char *make_blob(const char *target, double scale, bool log_target)
{
    const struct catalog_kernel *k = catalog_find("linear");
    assert_non_null(k);
    unsigned nf = predict_feature_count(k);
    float *x = calloc(TRAIN_ROWS * (size_t)nf, sizeof *x);
    float y[TRAIN_ROWS];
    assert_non_null(x);
    for (int i = 0; i < TRAIN_ROWS; i++) {
        struct kernel_config c = linear_config(1 + i % 6 * 8, 16 + i % 4 * 16, 8 + i * 4);
        float f[PREDICT_MAX_FEATURES];
        assert_int_equal(predict_features(&c, f), nf);
        memcpy(&x[(size_t)i * nf], f, nf * sizeof *f);
        double v = scale * (double)(c.params[0] + c.params[1] + c.params[2]);
        y[i] = (float)(log_target ? log(v) : v);
    }
    DMatrixHandle dm;
    BoosterHandle b;
    assert_int_equal(XGDMatrixCreateFromMat(x, TRAIN_ROWS, nf, NAN, &dm), 0);
    assert_int_equal(XGDMatrixSetFloatInfo(dm, "label", y, TRAIN_ROWS), 0);
    assert_int_equal(XGBoosterCreate(&dm, 1, &b), 0);
    static const char *const params[][2] = {
        {"objective", "reg:squarederror"}, {"booster", "gbtree"}, {"max_depth", "3"},
        {"eta", "0.5"}, {"nthread", "1"}, {"seed", "1"}, {"verbosity", "0"},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        assert_int_equal(XGBoosterSetParam(b, params[i][0], params[i][1]), 0);
    for (int it = 0; it < 4; it++)
        assert_int_equal(XGBoosterUpdateOneIter(b, it, dm), 0);
    bst_ulong len = 0;
    const char *buf = NULL;
    assert_int_equal(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &len, &buf), 0);
    json_error_t jerr;
    json_t *member = json_loadb(buf, (size_t)len, 0, &jerr);
    assert_non_null(member);
    XGBoosterFree(b);
    XGDMatrixFree(dm);
    free(x);

    json_t *blob = json_pack("{s:s,s:s,s:s,s:b,s:i,s:i,s:[o]}", "format", PREDICT_MODEL_FORMAT,
                             "kernel", "linear", "target", target, "log_target", log_target,
                             "feature_version", PREDICT_FEATURE_VERSION, "feature_count", (int)nf,
                             "members", member);
    assert_non_null(blob);
    char *text = json_dumps(blob, JSON_COMPACT);
    json_decref(blob);
    assert_non_null(text);
    return text;
}

/* Two different model sets' blobs (latency + one rail each), made once. */
static char *blob_a_latency, *blob_a_power, *blob_b_latency, *blob_b_power;

static int make_blobs(void **state)
{
    (void)state;
    blob_a_latency = make_blob(PREDICT_TARGET_LATENCY, 0.5, true);
    blob_a_power = make_blob(PREDICT_TARGET_POWER_PREFIX "VDD_IN", 10.0, false);
    blob_b_latency = make_blob(PREDICT_TARGET_LATENCY, 2.0, true);
    blob_b_power = make_blob(PREDICT_TARGET_POWER_PREFIX "VDD_IN", 3.0, false);
    return 0;
}

static int free_blobs(void **state)
{
    (void)state;
    free(blob_a_latency);
    free(blob_a_power);
    free(blob_b_latency);
    free(blob_b_power);
    return 0;
}

/* A fresh set from blobs 'a' or 'b'. */
static struct model_set *make_set(char which)
{
    char err[512] = "";
    struct model_set *set = model_set_new();
    assert_non_null(set);
    const char *lat = which == 'a' ? blob_a_latency : blob_b_latency;
    const char *pow = which == 'a' ? blob_a_power : blob_b_power;
    if (model_set_add_blob(set, lat, strlen(lat), err, sizeof err) != 0 ||
        model_set_add_blob(set, pow, strlen(pow), err, sizeof err) != 0)
        fail_msg("model_set_add_blob: %s", err);
    struct model_set_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.board_input_rail, sizeof info.board_input_rail, "VDD_IN");
    info.simulated = which == 'a';
    snprintf(info.fingerprint, sizeof info.fingerprint, "fp-%c", which);
    model_set_set_info(set, &info);
    return set;
}

static struct models_state *make_state(size_t entries)
{
    struct models_state *ms = NULL;
    char err[256] = "";
    if (models_state_create(entries, &ms, err, sizeof err) != 0)
        fail_msg("models_state_create: %s", err);
    return ms;
}

/* ---- tests ---- */

static void test_no_models(void **state)
{
    (void)state;
    struct models_state *ms = make_state(16);
    struct kernel_config c = linear_config(8, 16, 32);
    struct kernel_prediction p;
    char err[256] = "";
    assert_int_equal(models_state_predict(ms, &c, &p, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'linear'");
    struct model_set_info info;
    assert_false(models_state_info(ms, &info));
    assert_false(models_state_has_kernel(ms, "linear"));

    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(st.cache_misses, 0);
    assert_int_equal(st.cache_entries, 0);
    assert_int_equal(st.cache_capacity, 16);
    assert_int_equal(st.generation, 0);
    assert_int_equal(st.models, 0);
    models_state_destroy(ms);
}

static void test_hits_and_misses(void **state)
{
    (void)state;
    struct models_state *ms = make_state(64);
    models_state_replace(ms, make_set('a'));
    struct model_set *ref = make_set('a'); /* the same models, outside the state */

    struct kernel_config c1 = linear_config(8, 16, 32), c2 = linear_config(40, 64, 100);
    struct kernel_prediction miss, hit, direct;
    char err[256] = "";
    assert_int_equal(models_state_predict(ms, &c1, &miss, err, sizeof err), 0);
    assert_int_equal(models_state_predict(ms, &c1, &hit, err, sizeof err), 0);
    assert_memory_equal(&miss, &hit, sizeof miss);
    assert_int_equal(model_set_predict(ref, &c1, &direct, err, sizeof err), 0);
    assert_true(miss.latency_us == direct.latency_us);
    assert_true(miss.latency_us_spread == direct.latency_us_spread);
    assert_int_equal(miss.rail_count, 1);
    assert_string_equal(miss.rails[0].name, "VDD_IN");
    assert_true(miss.rails[0].power_mw == direct.rails[0].power_mw);
    assert_true(miss.rails[0].energy_uj == direct.rails[0].energy_uj);
    assert_true(miss.latency_us > 0);

    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_misses, 1);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_entries, 1);
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.models, 2);

    /* another config is a miss, then a hit; fp16 is another key */
    assert_int_equal(models_state_predict(ms, &c2, &miss, err, sizeof err), 0);
    assert_int_equal(models_state_predict(ms, &c2, &hit, err, sizeof err), 0);
    assert_memory_equal(&miss, &hit, sizeof miss);
    struct kernel_config c1h = c1;
    c1h.dtype = DTYPE_FP16;
    assert_int_equal(models_state_predict(ms, &c1h, &miss, err, sizeof err), 0);
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_misses, 3);
    assert_int_equal(st.cache_hits, 2);
    assert_int_equal(st.cache_entries, 3);

    /* a kernel type without a model: the set's error, not cached */
    struct kernel_config sm;
    memset(&sm, 0, sizeof sm);
    sm.kernel = catalog_find("softmax");
    sm.params[0] = 4;
    sm.params[1] = 8;
    assert_int_equal(models_state_predict(ms, &sm, &miss, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'softmax'");
    assert_int_equal(models_state_predict(ms, &sm, &miss, err, sizeof err), -1);
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 3);
    assert_int_equal(st.cache_hits, 2);

    assert_true(models_state_has_kernel(ms, "linear"));
    assert_false(models_state_has_kernel(ms, "softmax"));
    assert_false(models_state_has_kernel(ms, NULL));
    struct model_set_info info;
    assert_true(models_state_info(ms, &info));
    assert_string_equal(info.board_input_rail, "VDD_IN");
    assert_string_equal(info.fingerprint, "fp-a");
    assert_true(info.simulated);

    model_set_free(ref);
    models_state_destroy(ms);
}

static void test_replace_empties_cache(void **state)
{
    (void)state;
    struct models_state *ms = make_state(64);
    models_state_replace(ms, make_set('a'));
    struct kernel_config c = linear_config(8, 16, 32);
    struct kernel_prediction pa, pb, again;
    char err[256] = "";
    assert_int_equal(models_state_predict(ms, &c, &pa, err, sizeof err), 0);
    assert_int_equal(models_state_predict(ms, &c, &again, err, sizeof err), 0);

    models_state_replace(ms, make_set('b'));
    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 0);
    assert_int_equal(st.generation, 2);
    assert_int_equal(st.cache_hits, 1); /* counters are cumulative */
    assert_int_equal(st.cache_misses, 1);

    /* the new models answer, not the cached old answer */
    assert_int_equal(models_state_predict(ms, &c, &pb, err, sizeof err), 0);
    assert_true(pa.latency_us != pb.latency_us);
    struct model_set *ref = make_set('b');
    struct kernel_prediction direct;
    assert_int_equal(model_set_predict(ref, &c, &direct, err, sizeof err), 0);
    assert_true(pb.latency_us == direct.latency_us);
    model_set_free(ref);
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_entries, 1);
    struct model_set_info info;
    assert_true(models_state_info(ms, &info));
    assert_false(info.simulated);
    assert_string_equal(info.fingerprint, "fp-b");

    /* replacing with no models: back to the error, cache empty */
    models_state_replace(ms, NULL);
    assert_int_equal(models_state_predict(ms, &c, &pb, err, sizeof err), -1);
    assert_string_equal(err, "no model for kernel type 'linear'");
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 0);
    assert_int_equal(st.generation, 3);
    assert_int_equal(st.models, 0);
    assert_false(models_state_info(ms, &info));
    models_state_destroy(ms);
}

static void test_eviction_clock(void **state)
{
    (void)state;
    struct models_state *ms = make_state(4);
    models_state_replace(ms, make_set('a'));
    struct kernel_config c[6];
    for (int i = 0; i < 6; i++)
        c[i] = linear_config(1 + i, 16, 32);
    struct kernel_prediction p;
    char err[256] = "";
    for (int i = 0; i < 4; i++)
        assert_int_equal(models_state_predict(ms, &c[i], &p, err, sizeof err), 0);
    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 4);
    assert_int_equal(st.cache_misses, 4);

    /* c0 is hit (referenced); inserting c4 passes it over and evicts c1 */
    assert_int_equal(models_state_predict(ms, &c[0], &p, err, sizeof err), 0);
    assert_int_equal(models_state_predict(ms, &c[4], &p, err, sizeof err), 0);
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 4);
    assert_int_equal(st.cache_capacity, 4);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_misses, 5);

    assert_int_equal(models_state_predict(ms, &c[0], &p, err, sizeof err), 0); /* still there */
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_hits, 2);
    assert_int_equal(models_state_predict(ms, &c[1], &p, err, sizeof err), 0); /* evicted */
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_hits, 2);
    assert_int_equal(st.cache_misses, 6);

    /* many more configs than room: the size never passes the capacity */
    for (int i = 0; i < 50; i++) {
        struct kernel_config x = linear_config(100 + i, 8, 8);
        assert_int_equal(models_state_predict(ms, &x, &p, err, sizeof err), 0);
    }
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 4);
    models_state_destroy(ms);
}

/* A large cache is sharded: entries spread, the count adds up, hits stay hits. */
static void test_sharded_cache(void **state)
{
    (void)state;
    struct models_state *ms = make_state(MODELS_CACHE_DEFAULT_ENTRIES);
    models_state_replace(ms, make_set('a'));
    struct kernel_prediction p, q;
    char err[256] = "";
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 500; i++) {
            struct kernel_config x = linear_config(1 + i, 8 + i % 7, 8);
            assert_int_equal(models_state_predict(ms, &x, round ? &q : &p, err, sizeof err), 0);
        }
    }
    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 500);
    assert_int_equal(st.cache_misses, 500);
    assert_int_equal(st.cache_hits, 500);
    assert_int_equal(st.cache_capacity, MODELS_CACHE_DEFAULT_ENTRIES);
    models_state_destroy(ms);
}

static void test_no_cache(void **state)
{
    (void)state;
    struct models_state *ms = make_state(0);
    models_state_replace(ms, make_set('a'));
    struct kernel_config c = linear_config(8, 16, 32);
    struct kernel_prediction p1, p2;
    char err[256] = "";
    assert_int_equal(models_state_predict(ms, &c, &p1, err, sizeof err), 0);
    assert_int_equal(models_state_predict(ms, &c, &p2, err, sizeof err), 0);
    assert_memory_equal(&p1, &p2, sizeof p1);
    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.cache_entries, 0);
    assert_int_equal(st.cache_capacity, 0);
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(st.models, 2);
    models_state_destroy(ms);
}

/* ---- readers while the models are replaced ---- */

#define READERS 4
#define READER_CONFIGS 24
#define READER_ROUNDS 150
#define REPLACEMENTS 40

struct reader_args {
    struct models_state *ms;
    const struct kernel_prediction *expect_a, *expect_b; /* per config */
    atomic_bool *stop;
    unsigned answers, errors, wrong;
};

static struct kernel_config reader_config(int i) { return linear_config(1 + i * 3, 16 + i, 64); }

static void *reader(void *arg)
{
    struct reader_args *ra = arg;
    for (int round = 0; round < READER_ROUNDS || !atomic_load(ra->stop); round++) {
        for (int i = 0; i < READER_CONFIGS; i++) {
            struct kernel_config c = reader_config(i);
            struct kernel_prediction p;
            char err[256] = "";
            if (models_state_predict(ra->ms, &c, &p, err, sizeof err) != 0) {
                if (strcmp(err, "no model for kernel type 'linear'") != 0)
                    ra->wrong++;
                ra->errors++;
                continue;
            }
            ra->answers++;
            if (memcmp(&p, &ra->expect_a[i], sizeof p) != 0 &&
                memcmp(&p, &ra->expect_b[i], sizeof p) != 0)
                ra->wrong++;
        }
        if (round > 100000) /* a stop that never came: fail instead of hanging */
            break;
    }
    return NULL;
}

static void test_concurrent_replace(void **state)
{
    (void)state;
    struct models_state *ms = make_state(16); /* small: eviction races too */
    struct kernel_prediction expect_a[READER_CONFIGS], expect_b[READER_CONFIGS];
    struct model_set *a = make_set('a'), *b = make_set('b');
    char err[256];
    for (int i = 0; i < READER_CONFIGS; i++) {
        struct kernel_config c = reader_config(i);
        assert_int_equal(model_set_predict(a, &c, &expect_a[i], err, sizeof err), 0);
        assert_int_equal(model_set_predict(b, &c, &expect_b[i], err, sizeof err), 0);
        assert_memory_not_equal(&expect_a[i], &expect_b[i], sizeof expect_a[i]);
    }
    model_set_free(a);
    model_set_free(b);

    models_state_replace(ms, make_set('a'));
    atomic_bool stop;
    atomic_init(&stop, false);
    pthread_t th[READERS];
    struct reader_args ra[READERS];
    for (int t = 0; t < READERS; t++) {
        ra[t] = (struct reader_args){.ms = ms, .expect_a = expect_a, .expect_b = expect_b,
                                     .stop = &stop};
        assert_int_equal(pthread_create(&th[t], NULL, reader, &ra[t]), 0);
    }
    for (int r = 0; r < REPLACEMENTS; r++)
        models_state_replace(ms, r % 10 == 9 ? NULL : make_set(r % 2 ? 'a' : 'b'));
    models_state_replace(ms, make_set('a'));
    atomic_store(&stop, true);
    unsigned answers = 0;
    for (int t = 0; t < READERS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(ra[t].wrong, 0);
        answers += ra[t].answers;
    }
    assert_true(answers > 0);

    struct models_state_stats st;
    models_state_get_stats(ms, &st);
    assert_int_equal(st.generation, REPLACEMENTS + 2);
    assert_true(st.cache_entries <= 16);
    assert_true(st.cache_hits + st.cache_misses >= answers);
    /* after the last replace, a's answers again */
    for (int i = 0; i < READER_CONFIGS; i++) {
        struct kernel_config c = reader_config(i);
        struct kernel_prediction p;
        assert_int_equal(models_state_predict(ms, &c, &p, err, sizeof err), 0);
        assert_memory_equal(&p, &expect_a[i], sizeof p);
    }
    models_state_destroy(ms);
}

int main(void)
{
    jp_log_set_level(JP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_models),
        cmocka_unit_test(test_hits_and_misses),
        cmocka_unit_test(test_replace_empties_cache),
        cmocka_unit_test(test_eviction_clock),
        cmocka_unit_test(test_sharded_cache),
        cmocka_unit_test(test_no_cache),
        cmocka_unit_test(test_concurrent_replace),
    };
    return cmocka_run_group_tests(tests, make_blobs, free_blobs);
}
