/*
 * json_body.c - request bodies into jansson values (contract: json_body.h).
 *
 * A recursive-descent reader over the bytes in place. It accepts a subset of
 * what json_loadb accepts and, for that subset, builds the identical tree:
 *   - objects with json_object and json_object_set_new_nocheck in member order,
 *     a key already present handed over (jansson's JSON_REJECT_DUPLICATES error);
 *   - arrays with json_array and json_array_append_new;
 *   - strings whose escapes are \" \\ \/ \b \f \n \r \t, UTF-8 checked as
 *     jansson checks it (no overlong forms, no surrogates, at most U+10FFFF),
 *     with json_stringn_nocheck;
 *   - numbers by jansson's rule: an integer when there is no '.', 'e' or 'E'
 *     (strtoll, as json_strtoint), else a real (strtod, as jsonp_strtod when the
 *     locale's decimal point is '.');
 *   - true, false and null; whitespace is space, tab, CR and LF.
 * Whenever the reader meets something else it stops, frees what it built and
 * returns NULL, and json_body_parse asks json_loadb: a wrong document gets
 * jansson's error text and position, a \u escape or a 70-digit number gets
 * jansson's value. The reader never has to be right about an error - only about
 * what it accepts - which keeps it short enough to check against jansson in
 * tests/unit/test_daemon_json_body.c.
 */
#include "json_body.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Numbers longer than this are left to jansson (no valid document needs them
 * here, and the copy that NUL-terminates them for strtod stays on the stack). */
#define NUMBER_TEXT_MAX 64

struct reader {
    const unsigned char *p, *end;
    char *scratch; /* decoded strings with escapes, and keys (NUL-terminated) */
    size_t scratch_cap;
    int decimal_point_is_dot; /* -1 not looked up yet */
};

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static void skip_space(struct reader *r)
{
    while (r->p < r->end && is_space(*r->p))
        r->p++;
}

/* Length of the UTF-8 sequence at s that jansson's stream accepts, or 0. */
static size_t utf8_length(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

static bool scratch_room(struct reader *r, size_t need)
{
    if (need <= r->scratch_cap)
        return true;
    size_t cap = r->scratch_cap ? r->scratch_cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *s = realloc(r->scratch, cap);
    if (!s)
        return false;
    r->scratch = s;
    r->scratch_cap = cap;
    return true;
}

/* The string whose opening quote r->p is at. Its text in *out (*len bytes, no
 * NUL: control characters are refused): in the input when it has no escapes,
 * else decoded in scratch (valid until the next string). false to hand over. */
static bool read_string(struct reader *r, const char **out, size_t *len)
{
    const unsigned char *start = ++r->p, *q = start;
    /* the plain run: no escape, no control character */
    while (q < r->end && *q != '"' && *q != '\\' && *q >= 0x20) {
        if (*q < 0x80) {
            q++;
            continue;
        }
        size_t n = utf8_length(q, r->end);
        if (n == 0)
            return false;
        q += n;
    }
    if (q >= r->end || *q < 0x20)
        return false;
    size_t plain = (size_t)(q - start);
    if (*q == '"') {
        *out = (const char *)start;
        *len = plain;
        r->p = q + 1;
        return true;
    }
    /* escapes: decode into scratch (never longer than the input) */
    size_t room = (size_t)(r->end - start) + 1;
    if (!scratch_room(r, room))
        return false;
    memcpy(r->scratch, start, plain);
    size_t o = plain;
    while (q < r->end && *q != '"') {
        unsigned char c = *q;
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t n = utf8_length(q, r->end);
            if (n == 0)
                return false;
            memcpy(r->scratch + o, q, n);
            o += n;
            q += n;
            continue;
        }
        if (c != '\\') {
            r->scratch[o++] = (char)c;
            q++;
            continue;
        }
        if (q + 1 >= r->end)
            return false;
        switch (q[1]) {
        case '"': r->scratch[o++] = '"'; break;
        case '\\': r->scratch[o++] = '\\'; break;
        case '/': r->scratch[o++] = '/'; break;
        case 'b': r->scratch[o++] = '\b'; break;
        case 'f': r->scratch[o++] = '\f'; break;
        case 'n': r->scratch[o++] = '\n'; break;
        case 'r': r->scratch[o++] = '\r'; break;
        case 't': r->scratch[o++] = '\t'; break;
        default: return false; /* \u and anything else: jansson */
        }
        q += 2;
    }
    if (q >= r->end)
        return false;
    *out = r->scratch;
    *len = o;
    r->p = q + 1;
    return true;
}

static bool decimal_point_is_dot(struct reader *r)
{
    if (r->decimal_point_is_dot < 0) {
        const struct lconv *lc = localeconv();
        r->decimal_point_is_dot =
            lc && lc->decimal_point && strcmp(lc->decimal_point, ".") == 0 ? 1 : 0;
    }
    return r->decimal_point_is_dot == 1;
}

/* A number by JSON's grammar (jansson's lex_scan_number), or NULL. */
static json_t *read_number(struct reader *r)
{
    const unsigned char *start = r->p, *q = r->p, *end = r->end;
    bool real = false;
    if (*q == '-')
        q++;
    if (q >= end)
        return NULL;
    if (*q == '0') {
        q++;
        if (q < end && is_digit(*q))
            return NULL; /* a leading zero: jansson's error */
    } else if (is_digit(*q)) {
        while (q < end && is_digit(*q))
            q++;
    } else {
        return NULL;
    }
    if (q < end && *q == '.') {
        real = true;
        q++;
        if (q >= end || !is_digit(*q))
            return NULL;
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_digit(*q))
            return NULL;
        while (q < end && is_digit(*q))
            q++;
    }
    size_t n = (size_t)(q - start);
    char text[NUMBER_TEXT_MAX];
    if (n >= sizeof text)
        return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    char *stop = NULL;
    errno = 0;
    json_t *v;
    if (!real) {
#if JSON_INTEGER_IS_LONG_LONG
        json_int_t x = strtoll(text, &stop, 10);
#else
        json_int_t x = strtol(text, &stop, 10);
#endif
        if (errno == ERANGE || stop != text + n)
            return NULL;
        v = json_integer(x);
    } else {
        if (!decimal_point_is_dot(r))
            return NULL;
        double x = strtod(text, &stop);
        if (stop != text + n || ((x == HUGE_VAL || x == -HUGE_VAL) && errno == ERANGE))
            return NULL;
        v = json_real(x);
    }
    if (v)
        r->p = q;
    return v;
}

/* The literal word at r->p, when it is one. */
static bool read_word(struct reader *r, const char *word, size_t len)
{
    if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
        return false;
    r->p += len;
    return true;
}

static json_t *read_value(struct reader *r, unsigned depth);

static json_t *read_object(struct reader *r, unsigned depth)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    r->p++; /* '{' */
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    for (;;) {
        /* The key is copied out (NUL-terminated, as json_object_get wants it):
         * the value's own strings may reuse scratch. */
        const char *text;
        size_t key_len;
        if (r->p >= r->end || *r->p != '"' || !read_string(r, &text, &key_len))
            goto hand_over;
        char small[128];
        char *key = key_len < sizeof small ? small : malloc(key_len + 1);
        if (!key)
            goto hand_over;
        memcpy(key, text, key_len);
        key[key_len] = '\0';
        json_t *value = NULL;
        int rc = -1;
        skip_space(r);
        /* a duplicate is jansson's error to report */
        if (!json_object_get(obj, key) && r->p < r->end && *r->p == ':') {
            r->p++;
            value = read_value(r, depth);
            rc = value ? json_object_set_new_nocheck(obj, key, value) : -1; /* takes value */
        }
        if (key != small)
            free(key);
        if (rc != 0)
            goto hand_over;
        skip_space(r);
        if (r->p >= r->end)
            goto hand_over;
        if (*r->p == '}') {
            r->p++;
            return obj;
        }
        if (*r->p != ',')
            goto hand_over;
        r->p++;
        skip_space(r);
    }
hand_over:
    json_decref(obj);
    return NULL;
}

static json_t *read_array(struct reader *r, unsigned depth)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    r->p++; /* '[' */
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    for (;;) {
        json_t *value = read_value(r, depth);
        if (!value || json_array_append_new(arr, value) != 0)
            goto hand_over;
        skip_space(r);
        if (r->p >= r->end)
            goto hand_over;
        if (*r->p == ']') {
            r->p++;
            return arr;
        }
        if (*r->p != ',')
            goto hand_over;
        r->p++;
        skip_space(r);
    }
hand_over:
    json_decref(arr);
    return NULL;
}

/* The value at r->p (whitespace before it skipped), or NULL to hand over. */
static json_t *read_value(struct reader *r, unsigned depth)
{
    skip_space(r);
    if (r->p >= r->end)
        return NULL;
    switch (*r->p) {
    case '{': return depth < JSON_BODY_FAST_DEPTH ? read_object(r, depth + 1) : NULL;
    case '[': return depth < JSON_BODY_FAST_DEPTH ? read_array(r, depth + 1) : NULL;
    case '"': {
        const char *s;
        size_t len;
        return read_string(r, &s, &len) ? json_stringn_nocheck(s, len) : NULL;
    }
    case 't': return read_word(r, "true", 4) ? json_true() : NULL;
    case 'f': return read_word(r, "false", 5) ? json_false() : NULL;
    case 'n': return read_word(r, "null", 4) ? json_null() : NULL;
    default: return read_number(r);
    }
}

json_t *json_body_parse_fast(const char *text, size_t len)
{
    if (!text)
        return NULL;
    struct reader r = {.p = (const unsigned char *)text,
                       .end = (const unsigned char *)text + len,
                       .decimal_point_is_dot = -1};
    json_t *v = read_value(&r, 0);
    skip_space(&r);
    free(r.scratch);
    if (v && r.p == r.end)
        return v;
    json_decref(v);
    return NULL;
}

json_t *json_body_parse(const char *text, size_t len, json_error_t *err)
{
    json_t *v = json_body_parse_fast(text, len);
    return v ? v : json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, err);
}
