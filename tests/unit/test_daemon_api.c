/*
 * test_daemon_api.c - jetprofd's HTTP layer (daemon/http.c, daemon/api_*.c).
 *
 * Two halves. The pure parts without a network: the kernel-config parser behind
 * POST /v1/measure (every class of bad body), the memory check against the
 * executor's own figures, the answer to JSON the parser refused (400, or 422
 * for a number out of range), route matching (404 vs 405 and the Allow text),
 * the bearer check, problem+json documents, the GET /v1/measurements query
 * parser and the listen-address parser. Then a real
 * server in-process on 127.0.0.1:0 with a real database, sim sensor, sampler,
 * CPU executor and runner, spoken to over a plain socket: status codes,
 * headers (Allow, WWW-Authenticate, Location, Retry-After, Content-Type),
 * limits, a measurement answered through suspend/resume, the 503 a waiting
 * request gets when the runner stops first, and /v1/device's free memory read
 * at the request.
 *
 * A "free-memory spy" wraps the CPU executor and reports a chosen free figure,
 * so the memory checks can be driven without filling the machine's memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "cudakern/catalog.h"
#include "cudakern/exec.h"
#include "daemon/api.h"
#include "daemon/http.h"
#include "daemon/runner.h"
#include "db/db.h"
#include "sensors/sampler.h"
#include "sensors/sensor.h"

/* ---------------------------------------------------------------- helpers */

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("test JSON does not parse: %s (%s)", text, jerr.text);
    return j;
}

/* Parses text and expects a 422 naming `parameter` whose detail contains `needle`. */
static void expect_bad(const char *text, uint64_t mem_free, const char *parameter,
                       const char *needle)
{
    json_t *body = load(text);
    struct kernel_config cfg;
    unsigned repeats = 99;
    struct api_error e;
    int rc = api_parse_kernel_config(body, mem_free, &cfg, &repeats, &e);
    json_decref(body);
    if (rc != -1 || e.status != 422)
        fail_msg("%s: expected 422, got rc %d status %u (%s)", text, rc, e.status, e.detail);
    assert_string_equal(e.parameter, parameter);
    if (!strstr(e.detail, needle))
        fail_msg("%s: detail \"%s\" lacks \"%s\"", text, e.detail, needle);
}

/* ------------------------------------------------- kernel config parsing */

static void test_parse_valid_minimal(void **state)
{
    (void)state;
    json_t *body = load("{\"kernel\":\"linear_relu\",\"batch\":64,\"in\":256,\"out\":512}");
    struct kernel_config cfg;
    unsigned repeats = 99;
    struct api_error e;
    assert_int_equal(api_parse_kernel_config(body, 0, &cfg, &repeats, &e), 0);
    json_decref(body);
    assert_ptr_equal(cfg.kernel, catalog_find("linear_relu"));
    assert_int_equal(cfg.dtype, DTYPE_FP32);
    assert_int_equal(repeats, 0);
    assert_int_equal(cfg.params[0], 64);
    assert_int_equal(cfg.params[1], 256);
    assert_int_equal(cfg.params[2], 512);
    assert_int_equal(e.status, 0);

    char pj[128], key[160];
    int n = api_params_json(&cfg, pj, sizeof(pj));
    assert_string_equal(pj, "{\"batch\":64,\"in\":256,\"out\":512}");
    assert_int_equal(n, (int)strlen(pj));
    assert_true(catalog_config_key(&cfg, key, sizeof(key)) > 0);
    assert_string_equal(key, "linear_relu:fp32:batch=64,in=256,out=512");
    /* Too small a buffer is an error, not a truncated document. */
    assert_int_equal(api_params_json(&cfg, pj, 12), -1);
}

static void test_parse_valid_options(void **state)
{
    (void)state;
    /* Member order in the body does not matter; params come out in catalogue order. */
    json_t *body = load("{\"cols\":768,\"repeats\":5,\"rows\":4096,\"dtype\":\"fp16\","
                        "\"kernel\":\"layernorm\"}");
    struct kernel_config cfg;
    unsigned repeats = 0;
    struct api_error e;
    assert_int_equal(api_parse_kernel_config(body, 1ull << 40, &cfg, &repeats, &e), 0);
    json_decref(body);
    assert_ptr_equal(cfg.kernel, catalog_find("layernorm"));
    assert_int_equal(cfg.dtype, DTYPE_FP16);
    assert_int_equal(repeats, 5);
    char pj[128];
    assert_true(api_params_json(&cfg, pj, sizeof(pj)) > 0);
    assert_string_equal(pj, "{\"rows\":4096,\"cols\":768}");

    /* The range edges are accepted. */
    body = load("{\"kernel\":\"linear\",\"batch\":1,\"in\":65536,\"out\":1,\"repeats\":20}");
    assert_int_equal(api_parse_kernel_config(body, 0, &cfg, &repeats, &e), 0);
    json_decref(body);
    assert_int_equal(repeats, 20);
}

static void test_parse_not_an_object(void **state)
{
    (void)state;
    expect_bad("[1,2,3]", 0, "", "JSON object");
    struct kernel_config cfg;
    unsigned repeats;
    struct api_error e;
    assert_int_equal(api_parse_kernel_config(NULL, 0, &cfg, &repeats, &e), -1);
    assert_int_equal(e.status, 422);
}

static void test_parse_kernel_member(void **state)
{
    (void)state;
    expect_bad("{\"batch\":64,\"in\":256,\"out\":512}", 0, "kernel",
               "member 'kernel' is required: one of linear, linear_relu, linear_gelu, "
               "layernorm");
    expect_bad("{\"kernel\":\"conv2d\",\"batch\":64}", 0, "kernel",
               "unknown kernel \"conv2d\"; the catalogue has linear, linear_relu");
    expect_bad("{\"kernel\":7}", 0, "kernel", "member 'kernel' = 7: expected a string");
}

static void test_parse_missing_parameter(void **state)
{
    (void)state;
    expect_bad("{\"kernel\":\"linear_relu\",\"batch\":64,\"in\":256}", 0, "out",
               "member 'out' is required for kernel linear_relu: an integer in [1, 65536]");
}

static void test_parse_non_integer(void **state)
{
    (void)state;
    expect_bad("{\"kernel\":\"linear_relu\",\"batch\":64.5,\"in\":256,\"out\":512}", 0, "batch",
               "member 'batch' = 64.5: expected an integer in [1, 65536]");
    expect_bad("{\"kernel\":\"linear_relu\",\"batch\":\"64\",\"in\":256,\"out\":512}", 0, "batch",
               "member 'batch' = \"64\": expected an integer");
    expect_bad("{\"kernel\":\"linear_relu\",\"batch\":64,\"in\":null,\"out\":512}", 0, "in",
               "member 'in' = null");
    expect_bad("{\"kernel\":\"linear_relu\",\"batch\":64,\"in\":256,\"out\":true}", 0, "out",
               "member 'out' = true");
}

static void test_parse_out_of_range(void **state)
{
    (void)state;
    json_t *body = load("{\"kernel\":\"linear_relu\",\"batch\":0,\"in\":256,\"out\":512}");
    struct kernel_config cfg;
    unsigned repeats;
    struct api_error e;
    assert_int_equal(api_parse_kernel_config(body, 0, &cfg, &repeats, &e), -1);
    json_decref(body);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "batch");
    assert_string_equal(e.detail,
                        "parameter 'batch' = 0 is outside linear_relu's range [1, 65536]");

    expect_bad("{\"kernel\":\"layernorm\",\"rows\":8,\"cols\":1}", 0, "cols",
               "parameter 'cols' = 1 is outside layernorm's range [2, 65536]");
    expect_bad("{\"kernel\":\"linear\",\"batch\":1,\"in\":-5,\"out\":1}", 0, "in",
               "parameter 'in' = -5 is outside linear's range");
    expect_bad("{\"kernel\":\"linear\",\"batch\":1,\"in\":1,\"out\":9223372036854775807}", 0, "out",
               "parameter 'out' = 9223372036854775807 is outside");
}

static void test_parse_unknown_member(void **state)
{
    (void)state;
    expect_bad("{\"kernel\":\"linear_relu\",\"batchsize\":64,\"in\":256,\"out\":512}", 0,
               "batchsize",
               "unknown member 'batchsize' for kernel linear_relu; accepted members: kernel, "
               "dtype, repeats, batch, in, out");
    /* A parameter of another kernel is unknown to this one. */
    expect_bad("{\"kernel\":\"layernorm\",\"rows\":8,\"cols\":8,\"batch\":2}", 0, "batch",
               "accepted members: kernel, dtype, repeats, rows, cols");
}

static void test_parse_bad_dtype(void **state)
{
    (void)state;
    expect_bad("{\"kernel\":\"linear\",\"batch\":1,\"in\":1,\"out\":1,\"dtype\":\"fp64\"}", 0,
               "dtype", "member 'dtype' = \"fp64\": expected one of fp32, fp16");
    expect_bad("{\"kernel\":\"linear\",\"batch\":1,\"in\":1,\"out\":1,\"dtype\":16}", 0, "dtype",
               "member 'dtype' = 16: expected one of fp32, fp16");
}

static void test_parse_bad_repeats(void **state)
{
    (void)state;
    const char *bad[] = {"0", "21", "-1", "2.5", "\"3\"", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[160];
        snprintf(text, sizeof(text),
                 "{\"kernel\":\"linear\",\"batch\":1,\"in\":1,\"out\":1,\"repeats\":%s}", bad[i]);
        expect_bad(text, 0, "repeats", "expected an integer in [1, 20]");
    }
}

static void test_parse_memory_refusal(void **state)
{
    (void)state;
    json_t *body = load("{\"kernel\":\"linear\",\"batch\":4096,\"in\":4096,\"out\":4096}");
    struct kernel_config cfg;
    unsigned repeats;
    struct api_error e;
    uint64_t free_bytes = 64ull * 1024 * 1024;
    assert_int_equal(api_parse_kernel_config(body, free_bytes, &cfg, &repeats, &e), -1);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "");
    struct kernel_config probe = {
        .kernel = catalog_find("linear"), .dtype = DTYPE_FP32, .params = {4096, 4096, 4096}};
    struct kernel_features f;
    catalog_features(&probe, &f);
    char need[32], have[32];
    snprintf(need, sizeof(need), "%" PRIu64, f.memory_bytes);
    snprintf(have, sizeof(have), "%" PRIu64, free_bytes);
    if (!strstr(e.detail, need) || !strstr(e.detail, have))
        fail_msg("memory detail \"%s\" lacks %s or %s", e.detail, need, have);
    /* The same config passes with enough memory, or with no limit. */
    assert_int_equal(api_parse_kernel_config(body, f.memory_bytes, &cfg, &repeats, &e), 0);
    assert_int_equal(api_parse_kernel_config(body, 0, &cfg, &repeats, &e), 0);
    json_decref(body);
}


/* -------------------------------------------------------- free-memory spy */

/* The CPU executor with a chosen answer to memory_free (0 = the real one; -1
 * = cannot tell). Read by HTTP threads: atomically. */
struct mem_spy {
    struct executor ex;
    struct executor *inner;
    int64_t free_bytes;
};

static struct mem_spy *mem_spy_of(struct executor *ex) { return ex->impl; }
static void mem_spy_info(struct executor *ex, struct exec_info *out)
{
    exec_info(mem_spy_of(ex)->inner, out);
}
static int mem_spy_prepare(struct executor *ex, const struct kernel_config *cfg, uint64_t seed,
                           char *err, size_t errlen)
{
    return exec_prepare(mem_spy_of(ex)->inner, cfg, seed, err, errlen);
}
static int mem_spy_run(struct executor *ex, unsigned launches, double *elapsed_us, char *err,
                       size_t errlen)
{
    return exec_run(mem_spy_of(ex)->inner, launches, elapsed_us, err, errlen);
}
static int mem_spy_read_output(struct executor *ex, float *dst, size_t count, char *err,
                               size_t errlen)
{
    return exec_read_output(mem_spy_of(ex)->inner, dst, count, err, errlen);
}
static void mem_spy_release(struct executor *ex) { exec_release(mem_spy_of(ex)->inner); }
static void mem_spy_close(struct executor *ex) { exec_release(mem_spy_of(ex)->inner); }
static uint64_t mem_spy_needed(struct executor *ex, const struct kernel_config *cfg)
{
    return exec_memory_needed(mem_spy_of(ex)->inner, cfg);
}
static int mem_spy_free(struct executor *ex, uint64_t *free_bytes)
{
    int64_t v = __atomic_load_n(&mem_spy_of(ex)->free_bytes, __ATOMIC_SEQ_CST);
    if (v < 0)
        return -1;
    if (v == 0)
        return exec_memory_free(mem_spy_of(ex)->inner, free_bytes);
    *free_bytes = (uint64_t)v;
    return 0;
}
static const struct executor_ops mem_spy_ops = {
    .info = mem_spy_info,
    .prepare = mem_spy_prepare,
    .run = mem_spy_run,
    .read_output = mem_spy_read_output,
    .release = mem_spy_release,
    .close = mem_spy_close,
    .memory_needed = mem_spy_needed,
    .memory_free = mem_spy_free,
};

static void mem_spy_init(struct mem_spy *s, struct executor *inner)
{
    memset(s, 0, sizeof(*s));
    s->ex.ops = &mem_spy_ops;
    s->ex.impl = s;
    s->inner = inner;
}

static void mem_spy_set(struct mem_spy *s, int64_t free_bytes)
{
    __atomic_store_n(&s->free_bytes, free_bytes, __ATOMIC_SEQ_CST);
}

/* linear fp16 4096 x 4096 -> 8192: its fp16 buffers and a cuBLASLt workspace
 * (the catalogue's figure) are about 200 MB, the CPU executor allocates about
 * 700 MB for it (fp32 master, fp16 copy and fp32 scratch per input element). */
#define BIG_FP16 "{\"kernel\":\"linear\",\"dtype\":\"fp16\",\"batch\":4096,\"in\":4096,\"out\":8192}"

static void test_memory_check(void **state)
{
    (void)state;
    char err[256];
    struct executor *cpu;
    assert_int_equal(exec_cpu_open(&cpu, err, sizeof(err)), 0);
    struct mem_spy spy;
    mem_spy_init(&spy, cpu);
    uint64_t free_bytes = 400ull * 1024 * 1024;
    mem_spy_set(&spy, (int64_t)free_bytes);

    json_t *body = load(BIG_FP16);
    struct kernel_config cfg;
    unsigned repeats;
    struct api_error e;
    /* The catalogue's figure fits in 400 MiB: the old check let it through. */
    assert_int_equal(api_parse_kernel_config(body, free_bytes, &cfg, &repeats, &e), 0);
    json_decref(body);
    uint64_t needed = exec_memory_needed(cpu, &cfg);
    assert_true(needed > free_bytes);

    assert_int_equal(api_check_memory(&spy.ex, "cpu", &cfg, &e), -1);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "");
    char want[200];
    snprintf(want, sizeof(want),
             "linear:fp16:batch=4096,in=4096,out=8192 needs %" PRIu64 " bytes (%.1f MiB) on "
             "the cpu executor, which has 419430400 bytes (400.0 MiB) free now",
             needed, (double)needed / 1048576.0);
    assert_string_equal(e.detail, want);

    /* Enough memory, or no figure to compare with: it passes (the runner checks
     * again before it prepares). */
    mem_spy_set(&spy, (int64_t)needed);
    assert_int_equal(api_check_memory(&spy.ex, "cpu", &cfg, &e), 0);
    mem_spy_set(&spy, -1);
    assert_int_equal(api_check_memory(&spy.ex, "cpu", &cfg, &e), 0);
    assert_int_equal(api_check_memory(NULL, "cpu", &cfg, &e), 0);
    /* The real CPU executor: a small config fits. */
    body = load("{\"kernel\":\"layernorm\",\"rows\":4,\"cols\":8}");
    assert_int_equal(api_parse_kernel_config(body, 0, &cfg, &repeats, &e), 0);
    json_decref(body);
    assert_int_equal(api_check_memory(cpu, "cpu", &cfg, &e), 0);
    exec_close(cpu);
}

/* ---------------------------------------------------- JSON parser errors */

/* Loads text as http.c does and returns the api_error for its failure. */
static struct api_error json_failure(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j)
        fail_msg("expected a parse failure: %s", text);
    struct api_error e;
    memset(&e, 0x5a, sizeof(e));
    api_json_error(text, strlen(text), &jerr, &e);
    return e;
}

static void test_json_errors(void **state)
{
    (void)state;
    /* The review's body: valid JSON, a number beyond int64 -> 422, naming where. */
    struct api_error e =
        json_failure("{\"kernel\":\"linear\",\"batch\":99999999999999999999999,\"in\":8,\"out\":8}");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.detail,
                        "member 'batch' at line 1, column 28: the number 99999999999999999999999 "
                        "is out of range (integers must lie in [-9223372036854775808, "
                        "9223372036854775807])");
    assert_string_equal(e.parameter, "batch");
    assert_int_equal(e.line, 1);
    assert_int_equal(e.column, 28);

    /* Negative, on a later line, with spaces around the colon. */
    e = json_failure("{\n \"kernel\":\"linear\",\n \"out\" :  -99999999999999999999 ,\"in\":8}");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "out");
    assert_int_equal(e.line, 3);
    assert_int_equal(e.column, 11);
    assert_non_null(strstr(e.detail, "member 'out' at line 3, column 11: the number "
                                     "-99999999999999999999 is out of range"));

    /* A real beyond double. */
    e = json_failure("{\"kernel\":\"linear\",\"in\":1e999}");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "in");
    assert_non_null(strstr(e.detail, "the number 1e999 is out of range (numbers must be finite"));

    /* An array element and a top-level number: no member to name. */
    e = json_failure("[1, 99999999999999999999]");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "");
    assert_int_equal(e.column, 5);
    assert_true(strncmp(e.detail, "at line 1, column 5: the number 99999999999999999999 ", 53) ==
                0);
    e = json_failure("99999999999999999999");
    assert_int_equal(e.status, 422);
    assert_int_equal(e.column, 1);

    /* A key with an escape is not guessed at; a very long number is shortened. */
    e = json_failure("{\"a\\\"b\":99999999999999999999}");
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "");
    char longnum[200];
    memset(longnum, '9', sizeof(longnum));
    memcpy(longnum, "{\"in\":", 6);
    memcpy(longnum + sizeof(longnum) - 2, "}", 2);
    e = json_failure(longnum);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.parameter, "in");
    assert_non_null(strstr(e.detail, "the number 9999"));
    assert_non_null(strstr(e.detail, "... is out of range"));

    /* Everything else stays a 400 with the parser's message. */
    e = json_failure("{\"kernel\":\n  \"linear\",,}");
    assert_int_equal(e.status, 400);
    assert_int_equal(e.line, 2);
    assert_true(e.column > 0);
    assert_true(strncmp(e.detail, "invalid JSON at line 2, column ", 31) == 0);
    assert_string_equal(e.parameter, "");
}

/* ---------------------------------------------------------------- routes */

/* Leaves non-zero bytes where api_route_match's locals will live, so reading an
 * uninitialised buffer shows (it did: a route without "{id}" copied one). */
static __attribute__((noinline)) void dirty_stack(void)
{
    volatile char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = 'x';
}

static __attribute__((noinline)) enum api_match match_after_dirty_stack(const char *path,
                                                                          char *id, size_t idlen)
{
    const struct api_route *r;
    char allow[64];
    dirty_stack();
    return api_route_match("GET", path, &r, id, idlen, allow, sizeof(allow));
}

/* A route without "{id}" leaves id empty, whatever was on the stack. */
static void test_route_match_id_empty(void **state)
{
    (void)state;
    char id[128];
    memset(id, 'y', sizeof(id));
    assert_int_equal(match_after_dirty_stack("/v1/health", id, sizeof(id)), API_MATCH_OK);
    assert_string_equal(id, "");
    assert_int_equal(match_after_dirty_stack("/v1/measurements/42", id, sizeof(id)),
                     API_MATCH_OK);
    assert_string_equal(id, "42");
}

static void test_route_match(void **state)
{
    (void)state;
    const struct api_route *r;
    char id[16], allow[64];

    assert_int_equal(api_route_match("GET", "/v1/health", &r, id, sizeof(id), allow, sizeof(allow)),
                     API_MATCH_OK);
    assert_ptr_equal(r->handler, api_health_get);
    assert_false(r->mutating);

    assert_int_equal(
        api_route_match("HEAD", "/v1/kernels", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_ptr_equal(r->handler, api_kernels_get);

    assert_int_equal(
        api_route_match("POST", "/v1/measure", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_true(r->mutating);
    assert_int_equal(r->body, API_BODY_JSON);

    assert_int_equal(
        api_route_match("GET", "/v1/measurements/12", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_ptr_equal(r->handler, api_measurements_get);
    assert_string_equal(id, "12");
    assert_int_equal(
        api_route_match("GET", "/v1/measurements", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_ptr_equal(r->handler, api_measurements_list);

    /* A too-long id segment still matches (truncated); the handler rejects it. */
    assert_int_equal(api_route_match("GET", "/v1/measurements/123456789012345678901234", &r, id,
                                     sizeof(id), allow, sizeof(allow)),
                     API_MATCH_OK);
    assert_int_equal(strlen(id), sizeof(id) - 1);

    assert_int_equal(
        api_route_match("DELETE", "/v1/measure", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_BAD_METHOD);
    assert_null(r);
    assert_string_equal(allow, "POST");
    assert_int_equal(
        api_route_match("GET", "/v1/measure", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_BAD_METHOD);
    assert_string_equal(allow, "POST");
    assert_int_equal(
        api_route_match("POST", "/v1/health", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(
        api_route_match("PUT", "/v1/measurements/3", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD");

    const char *missing[] = {
        "/v1/nope",   "/",          "", "/v1/health/", "/v1/measurements/", "/v1/measurements/1/2",
        "/v2/health", "/v1/healthz"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        if (api_route_match("GET", missing[i], &r, id, sizeof(id), allow, sizeof(allow)) !=
            API_MATCH_NOT_FOUND)
            fail_msg("'%s' should not match a route", missing[i]);
    }
}

static void test_bearer(void **state)
{
    (void)state;
    assert_true(api_bearer_ok("Bearer s3cret-token", "s3cret-token"));
    assert_true(api_bearer_ok("bearer s3cret-token", "s3cret-token"));
    assert_false(api_bearer_ok("Bearer s3cret-tokeN", "s3cret-token"));
    assert_false(api_bearer_ok("Bearer s3cret-toke", "s3cret-token"));
    assert_false(api_bearer_ok("Bearer s3cret-token2", "s3cret-token"));
    assert_false(api_bearer_ok("Bearer ", "s3cret-token"));
    assert_false(api_bearer_ok("Basic czNjcmV0", "s3cret-token"));
    assert_false(api_bearer_ok("s3cret-token", "s3cret-token"));
    assert_false(api_bearer_ok(NULL, "s3cret-token"));
    assert_false(api_bearer_ok("Bearer ", "")); /* no token configured is not a match */
}

/* --------------------------------------------------------------- problems */

static void test_problem_json(void **state)
{
    (void)state;
    struct api_error e;
    api_error_set(&e, 422, "parameter '%s' = %d is outside", "batch", 0);
    api_error_param(&e, "batch");
    json_t *p = api_problem_json(&e, "/v1/measure");
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(p, "title")), api_reason_phrase(422));
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 422);
    assert_string_equal(json_string_value(json_object_get(p, "detail")),
                        "parameter 'batch' = 0 is outside");
    assert_string_equal(json_string_value(json_object_get(p, "instance")), "/v1/measure");
    assert_string_equal(json_string_value(json_object_get(p, "parameter")), "batch");
    assert_null(json_object_get(p, "line"));
    json_decref(p);

    api_error_set(&e, 400, "invalid JSON at line %d, column %d: %s", 2, 7, "unexpected token");
    e.line = 2;
    e.column = 7;
    p = api_problem_json(&e, "/v1/measure");
    assert_int_equal(json_integer_value(json_object_get(p, "line")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "column")), 7);
    assert_null(json_object_get(p, "parameter"));
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Bad Request");
    json_decref(p);

    /* Responses: content type, extra member, and an error replacing a body. */
    struct api_response res = {0};
    api_respond_json(&res, 200, json_object());
    api_error_set(&e, 503, "stopping");
    api_respond_error_with_id(&res, &e, "/v1/measure", "job_id", 41);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.content_type, "application/problem+json");
    assert_int_equal(json_integer_value(json_object_get(res.json, "job_id")), 41);
    assert_string_equal(json_string_value(json_object_get(res.json, "title")),
                        "Service Unavailable");
    json_decref(res.json);

    /* A detail cut inside a multi-byte character stays valid UTF-8. */
    char long_text[API_DETAIL_MAX + 8];
    memset(long_text, 'a', sizeof(long_text));
    long_text[sizeof(long_text) - 1] = '\0';
    memcpy(long_text + API_DETAIL_MAX - 3, "\xc3\xa9\xc3\xa9", 4);
    api_error_set(&e, 422, "%s", long_text);
    p = api_problem_json(&e, "/x");
    assert_non_null(p);
    const char *d = json_string_value(json_object_get(p, "detail"));
    assert_true(strlen(d) >= API_DETAIL_MAX - 4);
    assert_int_equal(d[0], 'a');
    json_decref(p);
}

/* ------------------------------------------------------------------ query */

static int query(const char *pairs[][2], size_t n, struct api_measurement_query *out,
                 struct api_error *e)
{
    struct api_query_param q[16] = {{0}};
    for (size_t i = 0; i < n; i++) {
        q[i].key = pairs[i][0];
        q[i].value = pairs[i][1];
    }
    return api_parse_measurement_query(q, n, out, e);
}

static void expect_query_error(const char *key, const char *value, const char *detail)
{
    const char *pairs[][2] = {{key, value}};
    struct api_measurement_query mq;
    struct api_error e;
    if (query(pairs, 1, &mq, &e) != -1 || e.status != 400)
        fail_msg("%s=%s: expected a 400", key, value);
    assert_string_equal(e.detail, detail);
}

static void test_query_parsing(void **state)
{
    (void)state;
    struct api_measurement_query mq;
    struct api_error e;
    assert_int_equal(query(NULL, 0, &mq, &e), 0);
    assert_int_equal(mq.filter.limit, 100);
    assert_int_equal(mq.filter.after_id, 0);
    assert_null(mq.filter.kernel);
    assert_false(mq.csv);

    const char *all[][2] = {{"kernel", "linear_gelu"}, {"dtype", "fp16"},  {"quality", "suspect"},
                            {"after", "40"},           {"limit", "10000"}, {"format", "csv"}};
    assert_int_equal(query(all, 6, &mq, &e), 0);
    assert_string_equal(mq.filter.kernel, "linear_gelu");
    assert_string_equal(mq.filter.dtype, "fp16");
    assert_string_equal(mq.filter.quality, "suspect");
    assert_int_equal(mq.filter.after_id, 40);
    assert_int_equal(mq.filter.limit, 10000);
    assert_true(mq.csv);

    expect_query_error("limit", "abc",
                       "query parameter 'limit' = 'abc': expected an integer in [1, 10000]");
    {
        const char *p[][2] = {{"limit", "0"}};
        assert_int_equal(query(p, 1, &mq, &e), -1);
        assert_string_equal(e.parameter, "limit");
    }
    expect_query_error("limit", "10001",
                       "query parameter 'limit' = '10001': expected an integer in [1, 10000]");
    expect_query_error("limit", "",
                       "query parameter 'limit' = '': expected an integer in [1, 10000]");
    expect_query_error("after", "-1",
                       "query parameter 'after' = '-1': expected an integer >= 0 (a measurement "
                       "id)");
    expect_query_error("after", "1e3",
                       "query parameter 'after' = '1e3': expected an integer >= 0 (a measurement "
                       "id)");
    expect_query_error("format", "xml",
                       "query parameter 'format' = 'xml': expected one of json, jsonl, csv");
    expect_query_error("quality", "good",
                       "query parameter 'quality' = 'good': expected one of ok, suspect");
    expect_query_error("dtype", "fp64",
                       "query parameter 'dtype' = 'fp64': expected one of fp32, fp16");
    expect_query_error("kernel", "conv",
                       "query parameter 'kernel' = 'conv': expected one of linear, linear_relu, "
                       "linear_gelu, layernorm, linear_bn, linear_bn_relu, softmax, add, "
                       "add_relu, attention, tokenizer, concat or graph");
    expect_query_error("sort", "id",
                       "unknown query parameter 'sort'; accepted: kernel, dtype, quality, "
                       "after, limit, format, batch, since");
    {
        /* format=jsonl, batch and since (normalised to the database's UTC form) */
        const char *p[][2] = {{"format", "jsonl"},
                              {"batch", "7"},
                              {"since", "2026-11-22T23:59:01.1234+01:30"}};
        assert_int_equal(query(p, 3, &mq, &e), 0);
        assert_true(mq.jsonl);
        assert_false(mq.csv);
        assert_false(mq.limit_given);
        assert_int_equal(mq.filter.batch_id, 7);
        assert_string_equal(mq.filter.since, "2026-11-22T22:29:01.124Z");
    }
    expect_query_error("batch", "0",
                       "query parameter 'batch' = '0': expected an integer >= 1 (a batch id)");
    expect_query_error("since", "2026-13-01",
                       "query parameter 'since' = '2026-13-01': expected an ISO-8601 time: "
                       "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or +HH:MM");
    {
        char t[32];
        assert_int_equal(api_parse_iso8601("2026-03-01", t, sizeof(t)), 0);
        assert_string_equal(t, "2026-03-01T00:00:00.000Z");
        assert_int_equal(api_parse_iso8601("2026-03-01T00:30Z", t, sizeof(t)), 0);
        assert_string_equal(t, "2026-03-01T00:30:00.000Z");
        assert_int_equal(api_parse_iso8601("2026-03-01T00:30:00-01:00", t, sizeof(t)), 0);
        assert_string_equal(t, "2026-03-01T01:30:00.000Z");
        assert_int_equal(api_parse_iso8601("2026-12-31T23:59:59.9999Z", t, sizeof(t)), 0);
        assert_string_equal(t, "2027-01-01T00:00:00.000Z");
        const char *bad[] = {"", "2026", "2026-02-29", "2026-01-01T24:00Z", "2026-01-01T10:00:00.Z",
                             "2026-01-01T10:00:00+0100", "2026-01-01Z", "2026-01-01T10:00:00Zx",
                             "yesterday", "2026-1-01"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            if (api_parse_iso8601(bad[i], t, sizeof(t)) == 0)
                fail_msg("'%s' parsed as %s", bad[i], t);
    }
    /* Bytes a client sent are quoted safely. */
    expect_query_error("limit", "1\n\xff",
                       "query parameter 'limit' = '1\\x0a\\xff': expected an integer in [1, "
                       "10000]");

    char quoted[16];
    text_quote("ab\\c\x01\xc3\xa9", quoted, sizeof(quoted));
    assert_string_equal(quoted, "ab\\x5cc\\x01...");
    text_quote("short", quoted, sizeof(quoted));
    assert_string_equal(quoted, "short");
    text_quote("0123456789abcdef", quoted, sizeof(quoted));
    assert_string_equal(quoted, "0123456789ab...");

    const char *twice[][2] = {{"limit", "5"}, {"limit", "6"}};
    assert_int_equal(query(twice, 2, &mq, &e), -1);
    assert_string_equal(e.detail, "query parameter 'limit' is given more than once");
    assert_string_equal(e.parameter, "limit");
}

static void test_int64_and_listen(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(api_parse_int64("12", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(api_parse_int64("-3", &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(api_parse_int64("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
    const char *bad[] = {"", "-", "+1", " 1", "1 ", "1a", "0x10", "9223372036854775808"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (api_parse_int64(bad[i], &v) != -1)
            fail_msg("'%s' parsed as an integer", bad[i]);
    assert_int_equal(api_parse_int64(NULL, &v), -1);

    char host[64], port[8], err[256];
    assert_int_equal(http_parse_listen("127.0.0.1:9740", host, sizeof(host), port, sizeof(port),
                                       err, sizeof(err)),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "9740");
    assert_int_equal(
        http_parse_listen("[::1]:0", host, sizeof(host), port, sizeof(port), err, sizeof(err)), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "0");
    assert_int_equal(http_parse_listen("localhost:9740", host, sizeof(host), port, sizeof(port),
                                       err, sizeof(err)),
                     0);
    assert_string_equal(host, "localhost");

    const char *bad_listen[] = {"9740", "::1:80", "[::1]80", "[::1",    "host:99999",
                                ":80",  "host:",  "host:-1", "host:80x"};
    for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
        err[0] = '\0';
        if (http_parse_listen(bad_listen[i], host, sizeof(host), port, sizeof(port), err,
                              sizeof(err)) != -1)
            fail_msg("listen '%s' was accepted", bad_listen[i]);
        if (!strstr(err, bad_listen[i]))
            fail_msg("error for '%s' does not quote it: %s", bad_listen[i], err);
    }
}

/* ------------------------------------------------------- in-process server */

#define TOKEN "test-token-123"

struct server_fixture {
    char dir[64];
    char db_path[128];
    struct config cfg;
    struct app app;
    struct sensor *sensor;
    struct sampler *sampler;
    struct executor *exec;
    struct mem_spy spy; /* app.exec: the runner's executor, with a settable free figure */
    struct measure_ctx mctx;
    struct runner *runner;
    bool runner_stopped;
    struct http_server *http;
    uint16_t port;
};

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* start_runner: false leaves the runner created but idle, so jobs stay queued. */
static int server_setup(void **state, bool start_runner)
{
    char err[256];
    struct server_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/jetprof-api-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db_path, sizeof(f->db_path), "%s/jetprof.db", f->dir);

    snprintf(f->cfg.listen, sizeof(f->cfg.listen), "127.0.0.1:0");
    f->cfg.threads = 3;
    f->cfg.max_body_bytes = 1024;
    f->cfg.max_attempts = 3;
    f->app.cfg = &f->cfg;
    snprintf(f->app.token, sizeof(f->app.token), "%s", TOKEN);
    f->app.started_mono_ns = clock_mono_ns();
    clock_utc_iso8601(f->app.started_at, sizeof(f->app.started_at));

    if (db_pool_open(f->db_path, 3, &f->app.pool, err, sizeof(err)) != 0)
        fail_msg("db_pool_open: %s", err);

    struct sensor_options so = {
        .sysfs_root = "/sys",
        .dev_root = "/dev",
        .proc_root = "/proc",
        .request = {.averaging = 1, .bus_conv_us = 140, .shunt_conv_us = 140, .period_us = 1000},
        .sim_idle_mw = 4500,
        .sim_dynamic_mw = 6000,
        .sim_noise_mw = 20,
        .sim_tau_us = 5000,
        .sim_seed = 1,
    };
    if (sensor_open("sim", &so, &f->sensor, err, sizeof(err)) != 0)
        fail_msg("sensor_open: %s", err);
    if (sampler_start(f->sensor, 20000, &f->sampler, err, sizeof(err)) != 0)
        fail_msg("sampler_start: %s", err);
    if (exec_cpu_open(&f->exec, err, sizeof(err)) != 0)
        fail_msg("exec_cpu_open: %s", err);
    exec_info(f->exec, &f->app.exec_info);
    mem_spy_init(&f->spy, f->exec);
    f->app.exec = &f->spy.ex;
    f->app.sensor = f->sensor;
    f->app.sampler = f->sampler;
    snprintf(f->app.executor_why, sizeof(f->app.executor_why), "asked for cpu (test)");
    snprintf(f->app.sensor_why, sizeof(f->app.sensor_why), "asked for sim (test)");

    struct db_device *dev = &f->app.device;
    snprintf(dev->board_model, sizeof(dev->board_model), "not a Jetson (test)");
    snprintf(dev->gpu_name, sizeof(dev->gpu_name), "%s", f->app.exec_info.device);
    snprintf(dev->executor, sizeof(dev->executor), "cpu");
    snprintf(dev->sensor_backend, sizeof(dev->sensor_backend), "sim");
    snprintf(dev->sampling_json, sizeof(dev->sampling_json), "{}");
    snprintf(dev->hostname, sizeof(dev->hostname), "test-host");
    dev->simulated = true;
    struct db *db = db_pool_acquire(f->app.pool);
    if (db_device_upsert(db, dev, &f->app.device_id, err, sizeof(err)) != 0)
        fail_msg("db_device_upsert: %s", err);
    db_pool_release(f->app.pool, db);

    /* Short windows: the test checks the HTTP path, not measurement quality. */
    f->mctx = (struct measure_ctx){
        .exec = f->exec,
        .sensor = f->sensor,
        .sampler = f->sampler,
        .settings = {.warmup_launches = 2,
                     .warmup_ms = 5,
                     .min_window_ms = 30,
                     .min_samples = 10,
                     .idle_ms = 30,
                     .idle_refresh_s = 300,
                     .settle_ms = 1,
                     .repeats = 1,
                     .max_cv = 1.0,
                     .min_sample_ratio = 0.1,
                     .max_launches = 100000},
        .device_id = f->app.device_id,
        .sysfs_root = "/sys",
    };
    if (runner_create(f->db_path, &f->mctx, 120, &f->runner, err, sizeof(err)) != 0)
        fail_msg("runner_create: %s", err);
    if (start_runner && runner_start(f->runner, err, sizeof(err)) != 0)
        fail_msg("runner_start: %s", err);
    f->app.runner = f->runner;

    if (http_start(&f->app, &f->http, &f->port, err, sizeof(err)) != 0)
        fail_msg("http_start: %s", err);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int setup_running(void **state) { return server_setup(state, true); }
static int setup_idle(void **state) { return server_setup(state, false); }

static int server_teardown(void **state)
{
    struct server_fixture *f = *state;
    if (!f->runner_stopped)
        runner_stop(f->runner); /* main's order: runner first, then HTTP */
    http_stop(f->http);
    runner_destroy(f->runner);
    sampler_stop(f->sampler);
    sensor_close(f->sensor);
    exec_close(f->exec);
    db_pool_close(f->app.pool);
    remove_tree(f->dir);
    free(f);
    return 0;
}

struct reply {
    int status;
    char headers[4096];
    char *body;
    size_t body_len;
};

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* The value of header name in r, or NULL (copied into a static-free buffer). */
static bool reply_header(const struct reply *r, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = len - (size_t)(v - line);
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return true;
        }
        line = end ? end + 2 : NULL;
    }
    return false;
}

/* Sends raw (a complete request with Connection: close) and reads the whole reply. */
static void http_raw(uint16_t port, const char *raw, size_t rawlen, struct reply *out)
{
    memset(out, 0, sizeof(*out));
    out->status = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t sent = 0;
    while (sent < rawlen) {
        ssize_t n = send(fd, raw + sent, rawlen - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer and close before taking everything */
        sent += (size_t)n;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0 || !hdr_end) {
        free(buf);
        return;
    }
    out->status = atoi(buf + 9);
    size_t hl = (size_t)(hdr_end - buf);
    snprintf(out->headers, sizeof(out->headers), "%.*s", (int)hl, buf);
    out->body_len = len - hl - 4;
    out->body = malloc(out->body_len + 1);
    assert_non_null(out->body);
    memcpy(out->body, hdr_end + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
}

static void http_do(uint16_t port, const char *method, const char *target, const char *extra,
                    const char *body, struct reply *out)
{
    size_t bl = body ? strlen(body) : 0;
    size_t cap = 1024 + bl;
    char *raw = malloc(cap);
    assert_non_null(raw);
    int n = snprintf(raw, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, target, extra ? extra : "", bl, body ? body : "");
    assert_true(n > 0 && (size_t)n < cap);
    http_raw(port, raw, (size_t)n, out);
    free(raw);
}

static json_t *reply_json(const struct reply *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!j)
        fail_msg("reply body is not JSON (%s): %s", jerr.text, r->body);
    return j;
}

static void expect_problem(const struct reply *r, int status, const char *detail_part)
{
    char ct[128];
    if (r->status != status)
        fail_msg("expected %d, got %d: %s", status, r->status, r->body ? r->body : "");
    assert_true(reply_header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/problem+json");
    json_t *j = reply_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "about:blank");
    const char *detail = json_string_value(json_object_get(j, "detail"));
    assert_non_null(detail);
    if (!strstr(detail, detail_part))
        fail_msg("detail \"%s\" lacks \"%s\"", detail, detail_part);
    json_decref(j);
}

#define AUTH "Authorization: Bearer " TOKEN "\r\n"

static void test_server_errors(void **state)
{
    struct server_fixture *f = *state;
    struct reply r;
    char h[256];

    http_do(f->port, "GET", "/v1/nothing", NULL, NULL, &r);
    expect_problem(&r, 404, "no resource at /v1/nothing");
    reply_free(&r);

    /* A decoded path with a newline and a non-UTF-8 byte is quoted, not echoed. */
    http_do(f->port, "GET", "/v1/a%0Ab%FF", NULL, NULL, &r);
    expect_problem(&r, 404, "no resource at /v1/a\\x0ab\\xff");
    json_t *inst = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(inst, "instance")), "/v1/a\\x0ab\\xff");
    json_decref(inst);
    reply_free(&r);

    http_do(f->port, "DELETE", "/v1/measure", NULL, NULL, &r);
    expect_problem(&r, 405, "method DELETE is not allowed on /v1/measure; allowed: POST");
    assert_true(reply_header(&r, "Allow", h, sizeof(h)));
    assert_string_equal(h, "POST");
    reply_free(&r);

    http_do(f->port, "POST", "/v1/measure", NULL, "{}", &r);
    expect_problem(&r, 401, "Authorization: Bearer");
    assert_true(reply_header(&r, "WWW-Authenticate", h, sizeof(h)));
    assert_string_equal(h, "Bearer realm=\"jetprof\"");
    reply_free(&r);

    http_do(f->port, "POST", "/v1/measure", "Authorization: Bearer wrong\r\n", "{}", &r);
    expect_problem(&r, 401, "not valid");
    reply_free(&r);

    http_do(f->port, "POST", "/v1/measure", AUTH, "", &r);
    expect_problem(&r, 400, "the body is empty");
    reply_free(&r);

    http_do(f->port, "POST", "/v1/measure", AUTH, "{\"kernel\":\n  \"linear\",,}", &r);
    expect_problem(&r, 400, "invalid JSON at line 2");
    json_t *j = reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "line")), 2);
    assert_true(json_integer_value(json_object_get(j, "column")) > 0);
    json_decref(j);
    reply_free(&r);

    /* Bytes that are not UTF-8: a 400 whose problem document is itself valid JSON. */
    http_do(f->port, "POST", "/v1/measure", AUTH, "{\"kernel\":\"\xff\xfe\"}", &r);
    expect_problem(&r, 400, "invalid JSON at line 1");
    reply_free(&r);

    http_do(f->port, "POST", "/v1/measure", AUTH, "{\"kernel\":\"linear\",\"kernel\":\"x\"}", &r);
    expect_problem(&r, 400, "duplicate object key");
    reply_free(&r);

    /* curl -d sends form-urlencoded; the body is still taken as JSON. */
    http_do(f->port, "POST", "/v1/measure",
            AUTH "Content-Type: application/x-www-form-urlencoded\r\n",
            "{\"kernel\":\"linear_relu\",\"batch\":0,\"in\":256,\"out\":512}", &r);
    expect_problem(&r, 422, "parameter 'batch' = 0 is outside linear_relu's range [1, 65536]");
    j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "parameter")), "batch");
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/v1/measure");
    json_decref(j);
    reply_free(&r);

    /* Valid JSON with a number beyond int64: 422 naming where, not "invalid JSON". */
    http_do(f->port, "POST", "/v1/measure", AUTH,
            "{\"kernel\":\"linear\",\"batch\":99999999999999999999999,\"in\":8,\"out\":8}", &r);
    expect_problem(&r, 422, "member 'batch' at line 1, column 28: the number "
                            "99999999999999999999999 is out of range");
    j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "parameter")), "batch");
    assert_int_equal(json_integer_value(json_object_get(j, "line")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "column")), 28);
    json_decref(j);
    reply_free(&r);

    /* More memory than the executor has free now, by its own figures: 422 with
     * both, and no job (the runner is not started here: a job would wait). */
    mem_spy_set(&f->spy, 400ll * 1024 * 1024);
    http_do(f->port, "POST", "/v1/measure", AUTH, BIG_FP16, &r);
    mem_spy_set(&f->spy, 0);
    expect_problem(&r, 422, " bytes (400.0 MiB) free now");
    j = reply_json(&r);
    const char *detail = json_string_value(json_object_get(j, "detail"));
    assert_non_null(strstr(detail, "linear:fp16:batch=4096,in=4096,out=8192 needs "));
    assert_non_null(strstr(detail, "on the cpu executor, which has 419430400 bytes"));
    json_decref(j);
    reply_free(&r);
    int64_t counts[5] = {0};
    char err[256];
    struct db *db = db_pool_acquire(f->app.pool);
    assert_int_equal(db_job_counts(db, counts, err, sizeof(err)), 0);
    db_pool_release(f->app.pool, db);
    assert_int_equal(counts[DB_JOB_QUEUED], 0);

    /* Over max_body_bytes (1024 here), sent without waiting: drained, then 413. */
    char big[3000];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    http_do(f->port, "POST", "/v1/measure", AUTH, big, &r);
    expect_problem(&r, 413, "1024 bytes server.max_body_bytes");
    reply_free(&r);

    /* Announced too large with Expect: 100-continue: answered before any body. */
    const char *expect_req = "POST /v1/measure HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
                             "Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n";
    http_raw(f->port, expect_req, strlen(expect_req), &r);
    expect_problem(&r, 413, "5000000");
    reply_free(&r);

    /* Chunked upload over the limit: no Content-Length, caught while reading. */
    char chunked[4096];
    int n = snprintf(chunked, sizeof(chunked),
                     "POST /v1/measure HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
                     "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
                     (unsigned)strlen(big), big);
    http_raw(f->port, chunked, (size_t)n, &r);
    expect_problem(&r, 413, "larger than");
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements?limit=abc", NULL, NULL, &r);
    expect_problem(&r, 400, "query parameter 'limit' = 'abc': expected an integer in [1, 10000]");
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements/abc", NULL, NULL, &r);
    expect_problem(&r, 400, "measurement id 'abc' is not an integer");
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements/999", NULL, NULL, &r);
    expect_problem(&r, 404, "no measurement with id 999");
    reply_free(&r);
}

static void test_server_documents(void **state)
{
    struct server_fixture *f = *state;
    struct reply r;
    char h[256];

    http_do(f->port, "GET", "/v1/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(reply_header(&r, "Content-Type", h, sizeof(h)));
    assert_string_equal(h, "application/json");
    json_t *j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "version")), JETPROF_VERSION);
    assert_true(json_is_true(json_object_get(j, "simulated")));
    assert_true(json_is_integer(json_object_get(json_object_get(j, "jobs"), "queued")));
    assert_true(json_is_boolean(json_object_get(json_object_get(j, "runner"), "storage_ok")));
    assert_true(json_is_integer(json_object_get(json_object_get(j, "sampler"), "samples_total")));
    const char *st = json_string_value(json_object_get(j, "status"));
    assert_true(strcmp(st, "ok") == 0 || strcmp(st, "degraded") == 0);
    json_decref(j);
    reply_free(&r);

    http_do(f->port, "HEAD", "/v1/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/device", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "device_id")), f->app.device_id);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "fingerprint"))), 64);
    assert_true(json_is_true(json_object_get(j, "simulated")));
    json_t *x = json_object_get(j, "executor");
    assert_string_equal(json_string_value(json_object_get(x, "name")), "cpu");
    assert_string_equal(json_string_value(json_object_get(x, "why")), "asked for cpu (test)");
    assert_true(json_integer_value(json_object_get(x, "mem_free_bytes")) > 0);
    assert_true(json_integer_value(json_object_get(x, "mem_free_bytes")) <=
                json_integer_value(json_object_get(x, "mem_total_bytes")));
    json_decref(j);
    reply_free(&r);

    /* The free memory is the executor's figure at the request, not at start. */
    const int64_t figures[] = {123456789, 987654321};
    for (size_t i = 0; i < 2; i++) {
        mem_spy_set(&f->spy, figures[i]);
        http_do(f->port, "GET", "/v1/device", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        j = reply_json(&r);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(j, "executor"), "mem_free_bytes")),
            figures[i]);
        json_decref(j);
        reply_free(&r);
    }
    mem_spy_set(&f->spy, 0);
    http_do(f->port, "GET", "/v1/device", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    x = json_object_get(j, "executor");
    assert_true(json_integer_value(json_object_get(x, "mem_free_bytes")) > 0);
    json_t *s = json_object_get(j, "sensor");
    assert_string_equal(json_string_value(json_object_get(s, "backend")), "sim");
    assert_true(json_is_true(json_object_get(s, "simulated")));
    assert_int_equal(json_array_size(json_object_get(s, "rails")), f->sensor->rail_count);
    assert_true(json_is_integer(
        json_object_get(json_object_get(json_object_get(s, "sampling"), "got"), "period_us")));
    json_decref(j);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/kernels", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    json_t *ks = json_object_get(j, "kernels");
    assert_int_equal(json_array_size(ks), catalog_count());
    json_t *k0 = json_array_get(ks, 0);
    assert_string_equal(json_string_value(json_object_get(k0, "name")), catalog_at(0)->name);
    assert_int_equal(json_array_size(json_object_get(k0, "dtypes")), DTYPE_COUNT);
    json_t *p0 = json_array_get(json_object_get(k0, "params"), 0);
    assert_int_equal(json_integer_value(json_object_get(p0, "max")), catalog_at(0)->params[0].max);
    json_decref(j);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = reply_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "measurements")), 0);
    assert_true(json_is_null(json_object_get(j, "next_after")));
    json_decref(j);
    reply_free(&r);
}

struct bg_request {
    uint16_t port;
    const char *body;
    struct reply reply;
};

static void *bg_post(void *arg)
{
    struct bg_request *b = arg;
    http_do(b->port, "POST", "/v1/measure", AUTH, b->body, &b->reply);
    return NULL;
}

/* A real measurement through the runner: the connection is suspended while
 * the job runs and answered 201 with the Measurement when it is done. */
static void test_server_measure(void **state)
{
    struct server_fixture *f = *state;
    struct bg_request b = {.port = f->port,
                           .body = "{\"kernel\":\"linear_relu\",\"batch\":8,\"in\":64,"
                                   "\"out\":32,\"repeats\":1}"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_post, &b), 0);
    /* Meanwhile other requests are served. */
    struct reply r;
    http_do(f->port, "GET", "/v1/kernels", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    assert_int_equal(pthread_join(t, NULL), 0);

    if (b.reply.status != 201)
        fail_msg("expected 201, got %d: %s", b.reply.status, b.reply.body ? b.reply.body : "");
    json_t *m = reply_json(&b.reply);
    char loc[128], want[128];
    int64_t id = (int64_t)json_integer_value(json_object_get(m, "id"));
    assert_true(id > 0);
    snprintf(want, sizeof(want), "/v1/measurements/%" PRId64, id);
    assert_true(reply_header(&b.reply, "Location", loc, sizeof(loc)));
    assert_string_equal(loc, want);
    assert_string_equal(json_string_value(json_object_get(m, "kernel")), "linear_relu");
    assert_string_equal(json_string_value(json_object_get(m, "config_key")),
                        "linear_relu:fp32:batch=8,in=64,out=32");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "params"), "out")), 32);
    assert_true(json_is_true(json_object_get(m, "simulated")));
    assert_true(json_real_value(json_object_get(m, "latency_us")) > 0.0);
    json_decref(m);
    reply_free(&b.reply);

    /* The stored measurement reads back, alone and in the list, JSON and CSV. */
    http_do(f->port, "GET", want, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    m = reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(m, "id")), id);
    json_decref(m);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements?kernel=linear_relu&limit=1", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    m = reply_json(&r);
    assert_int_equal(json_array_size(json_object_get(m, "measurements")), 1);
    assert_int_equal(json_integer_value(json_object_get(m, "next_after")), id);
    json_decref(m);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements?kernel=layernorm", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    m = reply_json(&r);
    assert_int_equal(json_array_size(json_object_get(m, "measurements")), 0);
    json_decref(m);
    reply_free(&r);

    http_do(f->port, "GET", "/v1/measurements?format=csv", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    char ct[64];
    assert_true(reply_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "text/csv");
    /* streamed: chunked, the header line first in the first chunk */
    assert_true(reply_header(&r, "Transfer-Encoding", ct, sizeof(ct)));
    assert_string_equal(ct, "chunked");
    const char *first_chunk = strstr(r.body, "\r\n");
    assert_non_null(first_chunk);
    assert_int_equal(strncmp(first_chunk + 2, "id,uid,fingerprint,", 19), 0);
    assert_non_null(strstr(r.body, "linear_relu"));
    reply_free(&r);
}

/* The runner stops before it runs the job: the waiting request gets 503 with
 * the job id, and the job stays queued. */
static void test_server_stopping(void **state)
{
    struct server_fixture *f = *state;
    struct bg_request b = {.port = f->port,
                           .body = "{\"kernel\":\"linear\",\"batch\":2,\"in\":2,\"out\":2}"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_post, &b), 0);

    /* Wait until the job is in the queue (the request then waits, suspended). */
    int64_t counts[5] = {0};
    char err[256];
    for (int i = 0; i < 1000 && counts[DB_JOB_QUEUED] == 0; i++) {
        struct db *db = db_pool_acquire(f->app.pool);
        assert_int_equal(db_job_counts(db, counts, err, sizeof(err)), 0);
        db_pool_release(f->app.pool, db);
        if (counts[DB_JOB_QUEUED] == 0)
            usleep(10000);
    }
    assert_int_equal(counts[DB_JOB_QUEUED], 1);
    runner_stop(f->runner);
    f->runner_stopped = true;
    assert_int_equal(pthread_join(t, NULL), 0);

    expect_problem(&b.reply, 503, "stays queued");
    char h[32];
    assert_true(reply_header(&b.reply, "Retry-After", h, sizeof(h)));
    assert_string_equal(h, "30");
    json_t *j = reply_json(&b.reply);
    assert_true(json_integer_value(json_object_get(j, "job_id")) > 0);
    json_decref(j);
    reply_free(&b.reply);

    /* After the runner stopped, a new measurement is answered at once, queued. */
    struct reply r;
    http_do(f->port, "POST", "/v1/measure", AUTH, b.body, &r);
    expect_problem(&r, 503, "stays queued");
    reply_free(&r);

    struct db *db = db_pool_acquire(f->app.pool);
    assert_int_equal(db_job_counts(db, counts, err, sizeof(err)), 0);
    db_pool_release(f->app.pool, db);
    assert_int_equal(counts[DB_JOB_QUEUED], 2);
}

/* http_stop without runner_stop first (main never does this, but a waiting
 * request must never keep the server from stopping): it is answered 503. */
static void test_server_stop_answers_waiters(void **state)
{
    struct server_fixture *f = *state;
    struct bg_request b = {.port = f->port,
                           .body = "{\"kernel\":\"layernorm\",\"rows\":4,\"cols\":4}"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_post, &b), 0);
    int64_t counts[5] = {0};
    char err[256];
    for (int i = 0; i < 1000 && counts[DB_JOB_QUEUED] == 0; i++) {
        struct db *db = db_pool_acquire(f->app.pool);
        assert_int_equal(db_job_counts(db, counts, err, sizeof(err)), 0);
        db_pool_release(f->app.pool, db);
        if (counts[DB_JOB_QUEUED] == 0)
            usleep(10000);
    }
    assert_int_equal(counts[DB_JOB_QUEUED], 1);
    http_stop(f->http);
    f->http = NULL;
    assert_int_equal(pthread_join(t, NULL), 0);
    expect_problem(&b.reply, 503, "stays queued");
    reply_free(&b.reply);
}

/* ---------------------------------------------- power, sampling, metrics */

static void test_power_routes(void **state)
{
    (void)state;
    const struct api_route *r;
    char id[16], allow[64];
    assert_int_equal(api_route_match("GET", "/v1/power", &r, id, sizeof(id), allow, sizeof(allow)),
                     API_MATCH_OK);
    assert_ptr_equal(r->handler, api_power_get);
    assert_false(r->mutating);
    assert_int_equal(
        api_route_match("GET", "/v1/power/stream", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_ptr_equal(r->handler, api_power_stream);
    assert_int_equal(
        api_route_match("PUT", "/v1/sensor/sampling", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_OK);
    assert_ptr_equal(r->handler, api_sensor_sampling_put);
    assert_true(r->mutating);
    assert_int_equal(r->body, API_BODY_JSON);
    assert_int_equal(
        api_route_match("POST", "/v1/sensor/sampling", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_BAD_METHOD);
    assert_string_equal(allow, "PUT");
    assert_int_equal(api_route_match("HEAD", "/metrics", &r, id, sizeof(id), allow, sizeof(allow)),
                     API_MATCH_OK);
    assert_ptr_equal(r->handler, api_metrics_get);
    assert_int_equal(
        api_route_match("GET", "/v1/power/stream/x", &r, id, sizeof(id), allow, sizeof(allow)),
        API_MATCH_NOT_FOUND);
}

/* PUT /v1/sensor/sampling bodies: the INA3221's tables, the period range, members. */
static void test_sampling_request(void **state)
{
    (void)state;
    struct sensor_sampling req;
    struct api_error e;
    json_t *b = load("{\"conversion_time_us\": 140, \"averaging\": 1}");
    assert_int_equal(api_parse_sampling_request(b, &req, &e), 0);
    assert_int_equal(req.bus_conv_us, 140);
    assert_int_equal(req.shunt_conv_us, 140);
    assert_int_equal(req.averaging, 1);
    assert_int_equal(req.period_us, 0); /* left as found */
    json_decref(b);

    static const unsigned conv[] = {140, 204, 332, 588, 1100, 2116, 4156, 8244};
    static const unsigned avg[] = {1, 4, 16, 64, 128, 256, 512, 1024};
    for (size_t i = 0; i < 8; i++) {
        char text[96];
        snprintf(text, sizeof(text), "{\"conversion_time_us\": %u, \"averaging\": %u}", conv[i],
                 avg[i]);
        b = load(text);
        assert_int_equal(api_parse_sampling_request(b, &req, &e), 0);
        assert_int_equal(req.bus_conv_us, conv[i]);
        assert_int_equal(req.averaging, avg[i]);
        json_decref(b);
    }
    b = load("{\"period_us\": 100}");
    assert_int_equal(api_parse_sampling_request(b, &req, &e), 0);
    assert_int_equal(req.period_us, 100);
    assert_int_equal(req.averaging, 0);
    assert_int_equal(req.bus_conv_us, 0);
    json_decref(b);

    static const struct {
        const char *body, *param, *says;
    } bad[] = {
        {"{\"conversion_time_us\": 150}", "conversion_time_us",
         "allowed: 140, 204, 332, 588, 1100, 2116, 4156, 8244"},
        {"{\"conversion_time_us\": -140}", "conversion_time_us", "-140"},
        {"{\"averaging\": 2}", "averaging", "allowed: 1, 4, 16, 64, 128, 256, 512, 1024"},
        {"{\"averaging\": 0}", "averaging", "averaging = 0"},
        {"{\"averaging\": 1.0}", "averaging", "integer"},
        {"{\"averaging\": \"4\"}", "averaging", "integer"},
        {"{\"averaging\": null}", "averaging", "integer"},
        {"{\"period_us\": 99}", "period_us", "[100, 1000000]"},
        {"{\"period_us\": 1000001}", "period_us", "[100, 1000000]"},
        {"{\"averaging\": 4, \"channels\": 3}", "channels",
         "accepted: conversion_time_us, averaging, period_us"},
        {"{}", "", "changes nothing"},
        {"[1]", "", "JSON object"},
        {"140", "", "JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t jerr;
        b = json_loads(bad[i].body, JSON_DECODE_ANY, &jerr);
        assert_non_null(b);
        memset(&req, 0xff, sizeof(req));
        if (api_parse_sampling_request(b, &req, &e) != -1)
            fail_msg("'%s' was accepted", bad[i].body);
        json_decref(b);
        assert_int_equal(e.status, 422);
        assert_string_equal(e.parameter, bad[i].param);
        if (!strstr(e.detail, bad[i].says))
            fail_msg("'%s': detail '%s' lacks '%s'", bad[i].body, e.detail, bad[i].says);
    }
}

static void test_stream_query(void **state)
{
    (void)state;
    struct api_stream_query q;
    struct api_error e;
    assert_int_equal(api_parse_stream_query(NULL, 0, 100, &q, &e), 0);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.interval_ms, 100);
    struct api_query_param ok_params[] = {{"count", "5"}, {"interval_ms", "0"}};
    assert_int_equal(api_parse_stream_query(ok_params, 2, 100, &q, &e), 0);
    assert_int_equal(q.count, 5);
    assert_int_equal(q.interval_ms, 0);
    struct api_query_param max_params[] = {{"count", "1000000"}, {"interval_ms", "60000"}};
    assert_int_equal(api_parse_stream_query(max_params, 2, 100, &q, &e), 0);
    assert_int_equal(q.count, 1000000);
    assert_int_equal(q.interval_ms, 60000);

    static const struct {
        const char *key, *value, *param;
    } bad[] = {
        {"count", "0", "count"},       {"count", "-1", "count"},
        {"count", "1000001", "count"}, {"count", "", "count"},
        {"count", "5x", "count"},      {"count", "+5", "count"},
        {"interval_ms", "60001", "interval_ms"}, {"interval_ms", "abc", "interval_ms"},
        {"limit", "5", "limit"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_query_param p = {bad[i].key, bad[i].value};
        if (api_parse_stream_query(&p, 1, 100, &q, &e) != -1)
            fail_msg("?%s=%s was accepted", bad[i].key, bad[i].value);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.parameter, bad[i].param);
    }
    struct api_query_param twice[] = {{"count", "1"}, {"count", "2"}};
    assert_int_equal(api_parse_stream_query(twice, 2, 100, &q, &e), -1);
    assert_non_null(strstr(e.detail, "more than once"));
}

static void test_prom_escape_and_sample_json(void **state)
{
    (void)state;
    char out[64];
    api_prom_escape("VDD_IN", out, sizeof(out));
    assert_string_equal(out, "VDD_IN");
    api_prom_escape("a\"b\\c\nd", out, sizeof(out));
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    api_prom_escape("\"\"\"", out, 5); /* never cuts an escape in half */
    assert_string_equal(out, "\\\"\\\"");
    api_prom_escape(NULL, out, sizeof(out));
    assert_string_equal(out, "");

    struct sensor s = {.rail_count = 2, .board_input_rail = 0};
    snprintf(s.rails[0].name, sizeof(s.rails[0].name), "VDD_IN");
    s.rails[0].is_board_input = true;
    snprintf(s.rails[1].name, sizeof(s.rails[1].name), "VDD_SOC");
    struct sensor_sample smp = {.t_ns = 5000000000LL};
    smp.voltage_mv[0] = 5000.0;
    smp.current_ma[0] = 1000.0;
    smp.power_mw[0] = 5000.0;
    smp.power_mw[1] = 1250.5;
    json_t *j = api_power_sample_json(&s, &smp, 5002500000LL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "t_ns")), 5000000000LL);
    assert_true(json_real_value(json_object_get(j, "age_ms")) == 2.5);
    json_t *rails = json_object_get(j, "rails");
    assert_int_equal(json_array_size(rails), 2);
    json_t *r0 = json_array_get(rails, 0), *r1 = json_array_get(rails, 1);
    assert_string_equal(json_string_value(json_object_get(r0, "name")), "VDD_IN");
    assert_true(json_is_true(json_object_get(r0, "board_input")));
    assert_true(json_real_value(json_object_get(r0, "voltage_mv")) == 5000.0);
    assert_true(json_real_value(json_object_get(r0, "current_ma")) == 1000.0);
    assert_true(json_is_false(json_object_get(r1, "board_input")));
    assert_true(json_real_value(json_object_get(r1, "power_mw")) == 1250.5);
    json_decref(j);
    /* a sample stamped after "now" (clock read before the sample) is not negative age */
    j = api_power_sample_json(&s, &smp, 4000000000LL);
    assert_true(json_real_value(json_object_get(j, "age_ms")) == 0.0);
    json_decref(j);
}

int main(void)
{
    jp_log_set_level(getenv("JETPROF_TEST_LOG") ? JP_LOG_DEBUG : JP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid_minimal),
        cmocka_unit_test(test_parse_valid_options),
        cmocka_unit_test(test_parse_not_an_object),
        cmocka_unit_test(test_parse_kernel_member),
        cmocka_unit_test(test_parse_missing_parameter),
        cmocka_unit_test(test_parse_non_integer),
        cmocka_unit_test(test_parse_out_of_range),
        cmocka_unit_test(test_parse_unknown_member),
        cmocka_unit_test(test_parse_bad_dtype),
        cmocka_unit_test(test_parse_bad_repeats),
        cmocka_unit_test(test_parse_memory_refusal),
        cmocka_unit_test(test_memory_check),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_route_match),
        cmocka_unit_test(test_route_match_id_empty),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_problem_json),
        cmocka_unit_test(test_query_parsing),
        cmocka_unit_test(test_int64_and_listen),
        cmocka_unit_test(test_power_routes),
        cmocka_unit_test(test_sampling_request),
        cmocka_unit_test(test_stream_query),
        cmocka_unit_test(test_prom_escape_and_sample_json),
        cmocka_unit_test_setup_teardown(test_server_errors, setup_idle, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_documents, setup_idle, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_measure, setup_running, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_stopping, setup_idle, server_teardown),
        cmocka_unit_test_setup_teardown(test_server_stop_answers_waiters, setup_idle,
                                        server_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
