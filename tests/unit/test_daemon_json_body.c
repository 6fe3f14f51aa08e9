/*
 * test_daemon_json_body.c - request bodies parsed by daemon/json_body.c, always
 * against json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) itself: the fixture
 * graphs and hand-written documents go through the fast path (it must take them)
 * and give the same tree - same types (integer or real), values, member order;
 * what it must hand over (\u escapes, duplicates, leading zeros, overflowing
 * numbers, bad UTF-8, syntax errors, deep nesting) gives jansson's value or
 * jansson's error with its line, column and position; and a few thousand random
 * documents and random corruptions of them agree with jansson either way.
 *
 * "Same tree" is compared as printed text with 17 significant digits (every
 * double round-trips) and members in their order, so integer 1 and real 1.0, or
 * a reordered object, differ.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/json_body.h"

#define GRAPH_DIR "tests/fixtures/graphs"

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

/* json_body_parse and json_loadb agree on text: equal trees, or equal errors.
 * Returns whether the fast path took the text. */
static bool agree(const char *text, size_t len)
{
    json_error_t want_err, got_err;
    memset(&want_err, 0, sizeof want_err);
    memset(&got_err, 0, sizeof got_err);
    json_t *want = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &want_err);
    json_t *got = json_body_parse(text, len, &got_err);
    json_t *fast = json_body_parse_fast(text, len);
    if (!want) {
        if (got || fast)
            fail_msg("jansson refuses '%.*s' (%s) but json_body took it", (int)len, text,
                     want_err.text);
        assert_string_equal(got_err.text, want_err.text);
        assert_string_equal(got_err.source, want_err.source);
        assert_int_equal(got_err.line, want_err.line);
        assert_int_equal(got_err.column, want_err.column);
        assert_int_equal(got_err.position, want_err.position);
        return false;
    }
    assert_non_null(got);
    char *a = dump(want), *b = dump(got), *c = fast ? dump(fast) : NULL;
    assert_non_null(a);
    assert_non_null(b);
    if (strcmp(a, b) != 0 || (c && strcmp(a, c) != 0))
        fail_msg("'%.*s': jansson %s, json_body %s, fast path %s", (int)len, text, a, b,
                 c ? c : "(handed over)");
    bool took = fast != NULL;
    free(a);
    free(b);
    free(c);
    json_decref(want);
    json_decref(got);
    json_decref(fast);
    return took;
}

static bool agree_str(const char *text) { return agree(text, strlen(text)); }

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_fixture_graphs(void **state)
{
    (void)state;
    DIR *d = opendir(GRAPH_DIR);
    assert_non_null(d);
    unsigned files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GRAPH_DIR, e->d_name);
        size_t len;
        char *text = slurp(path, &len);
        if (!agree(text, len))
            fail_msg("%s: the fast path handed a fixture graph over", path);
        free(text);
        files++;
    }
    closedir(d);
    assert_true(files >= 5);
}

/* Documents the fast path takes, with what makes them tricky. */
static void test_plain_documents_taken(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", "[]", " { } ", "\t[\r\n]\n", "0", "-0", "17", "-42", "true", "false", "null",
        "\"\"", "\"plain\"", "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":null}}",
        /* member order is insertion order, not sorted */
        "{\"z\":1,\"a\":2,\"m\":3}",
        /* integers and reals by form */
        "[1,1.0,1e0,1E2,-1e-2,0.5,1.5e+3,123456789012345678]",
        "[9223372036854775807,-9223372036854775808]",
        "[0.1,0.2,0.30000000000000004,1e-300,4.9e-324,1.7976931348623157e308]",
        /* the simple escapes */
        "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"", "{\"k\\\"ey\":\"v\\n\"}",
        /* UTF-8 in strings and keys */
        "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"", "{\"\xc3\xa9\":\"\xe2\x82\xac\"}",
        "{\"\":0}", "[[[[[]]]]]", "[{\"a\":[{\"b\":{}}]}]",
        /* a key longer than the reader's on-stack copy */
        "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}",
        /* a key with escapes, then a value with escapes reusing the scratch */
        "{\"a\\tb\":\"c\\td\",\"e\\nf\":[\"g\\\\h\"]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        if (!agree_str(docs[i]))
            fail_msg("the fast path handed over '%s'", docs[i]);
}

/* Documents the fast path hands over: the answer is still jansson's. */
static void test_handed_over(void **state)
{
    (void)state;
    static const char *const valid[] = {
        "\"\\u00e9\"",          /* \u escapes are jansson's */
        "\"\\ud83d\\ude00\"",   /* a surrogate pair */
        "1e400",                /* overflows: jansson's error */
        "[1.00000000000000000000000000000000000000000000000000000000000000000001]",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_false(agree_str(valid[i]));
    static const char *const invalid[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[1 2]", "01", "-",
        "1.", ".5", "1e", "1e+", "+1", "--1", "tru", "truex", "nul", "[true1]", "\"abc",
        "\"a\x01b\"", "\"\\x\"", "\"\\u0000\"", "\"\\ud800\"", "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":1,\"b\":1}}", "9223372036854775808", "-9223372036854775809",
        "1e999", "-1e999", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"", "\"\xe0\x80\xaf\"", "\"\xf0\x80\x80\xaf\"", "\"\xf4\x90\x80\x80\"",
        "\"\x80\"", "\"\xc3\x28\"", "\"\\n\x01\"", "\"\\n\xc3\"", "\xef\xbb\xbf{}", "{} x", "[1]]", "\"a\"\"b\"",
        "{\"a\":1}\n{\"b\":2}",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_false(agree_str(invalid[i]));
    /* bytes after a NUL, and a NUL inside a string */
    assert_false(agree("{}\0x", 4));
    assert_false(agree("\"a\0b\"", 5));
    /* nesting deeper than the fast path goes, valid and not */
    size_t depth = JSON_BODY_FAST_DEPTH + 10;
    char *deep = malloc(2 * depth + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    assert_false(agree(deep, 2 * depth));
    assert_false(agree(deep, 2 * depth - 1));
    assert_true(agree(deep + 10, 2 * depth - 20)); /* exactly the fast path's depth */
    free(deep);
    /* no text at all */
    json_error_t err;
    assert_null(json_body_parse(NULL, 0, &err));
    assert_null(json_body_parse_fast(NULL, 0));
}

/* ---- random documents ---- */

struct rng {
    uint64_t s;
};

static uint64_t next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

struct text {
    char *buf;
    size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void puts_(struct text *t, const char *s) { put(t, s, strlen(s)); }

static void space(struct rng *r, struct text *t)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    puts_(t, ws[next(r) % 7]);
}

static void random_string(struct rng *r, struct text *t)
{
    static const char *const parts[] = {"a", "node", "fc1", "_", "\\\"", "\\\\", "\\/", "\\n",
                                        "\\t", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                        " ", "\\u0041", "x"};
    puts_(t, "\"");
    unsigned n = (unsigned)(next(r) % 6);
    for (unsigned i = 0; i < n; i++)
        puts_(t, parts[next(r) % (sizeof parts / sizeof parts[0])]);
    puts_(t, "\"");
}

static void random_number(struct rng *r, struct text *t)
{
    char buf[64];
    switch (next(r) % 6) {
    case 0: snprintf(buf, sizeof buf, "%d", (int)(next(r) % 2000) - 1000); break;
    case 1: snprintf(buf, sizeof buf, "%lld", (long long)next(r)); break;
    case 2: snprintf(buf, sizeof buf, "%.17g", (double)(int64_t)next(r) / 1e9); break;
    case 3: snprintf(buf, sizeof buf, "%de%d", (int)(next(r) % 100), (int)(next(r) % 40) - 20);
        break;
    case 4: snprintf(buf, sizeof buf, "-0.%u", (unsigned)(next(r) % 100000)); break;
    default: snprintf(buf, sizeof buf, "%u.%uE+%u", (unsigned)(next(r) % 10),
                      (unsigned)(next(r) % 1000), (unsigned)(next(r) % 30));
    }
    puts_(t, buf);
}

static void random_value(struct rng *r, struct text *t, unsigned depth)
{
    unsigned kind = (unsigned)(next(r) % (depth > 4 ? 4 : 7));
    switch (kind) {
    case 0: random_number(r, t); break;
    case 1: random_string(r, t); break;
    case 2: puts_(t, (const char *[]){"true", "false", "null"}[next(r) % 3]); break;
    case 3: random_number(r, t); break;
    case 4:
    case 5: {
        puts_(t, "{");
        unsigned n = (unsigned)(next(r) % 5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                puts_(t, ",");
            space(r, t);
            random_string(r, t); /* keys repeat now and then: duplicates */
            space(r, t);
            puts_(t, ":");
            space(r, t);
            random_value(r, t, depth + 1);
            space(r, t);
        }
        puts_(t, "}");
        break;
    }
    default: {
        puts_(t, "[");
        unsigned n = (unsigned)(next(r) % 5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                puts_(t, ",");
            space(r, t);
            random_value(r, t, depth + 1);
            space(r, t);
        }
        puts_(t, "]");
    }
    }
}

static void test_random_documents_and_corruptions(void **state)
{
    (void)state;
    struct rng r = {0x2545F4914F6CDD1Dull};
    struct text t = {0};
    unsigned taken = 0, documents = 3000;
    static const char garbage[] = "{}[],:\"\\ 0-1.eE+tfnu\x01\x80\xc3\xff";
    for (unsigned i = 0; i < documents; i++) {
        t.len = 0;
        space(&r, &t);
        random_value(&r, &t, 0);
        space(&r, &t);
        taken += agree(t.buf, t.len);
        /* a corrupted copy: a byte changed, one removed, or the text cut short */
        char *copy = malloc(t.len + 1);
        assert_non_null(copy);
        memcpy(copy, t.buf, t.len + 1);
        size_t len = t.len, at = len ? (size_t)(next(&r) % len) : 0;
        switch (next(&r) % 3) {
        case 0:
            if (len)
                copy[at] = garbage[next(&r) % (sizeof garbage - 1)];
            break;
        case 1:
            if (len) {
                memmove(copy + at, copy + at + 1, len - at);
                len--;
            }
            break;
        default: len = at;
        }
        (void)agree(copy, len);
        free(copy);
    }
    free(t.buf);
    /* most random documents are plain JSON: the fast path must take them */
    assert_true(taken > documents / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_graphs),
        cmocka_unit_test(test_plain_documents_taken),
        cmocka_unit_test(test_handed_over),
        cmocka_unit_test(test_random_documents_and_corruptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
