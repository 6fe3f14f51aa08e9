/*
 * test_common_sha256.c - SHA-256 against the FIPS 180-2 / NIST example vectors,
 * plus the block-boundary cases where padding spills into a second block and
 * incremental updates in odd-sized pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void test_empty(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bit_message(void **state)
{
    (void)state;
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[65];
    assert_int_equal(strlen(msg), 56); /* 448 bits: the length no longer fits in block 1 */
    sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bit_message(void **state)
{
    (void)state;
    const char *msg = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                      "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char hex[65];
    sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a_incremental(void **state)
{
    (void)state;
    /* Feed 1,000,000 'a' in 997-byte pieces so updates straddle block boundaries. */
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        sha256_update(&ctx, chunk, n);
        left -= n;
    }
    uint8_t digest[SHA256_DIGEST_BYTES];
    char hex[65];
    sha256_final(&ctx, digest);
    sha256_digest_hex(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_incremental_equals_one_shot(void **state)
{
    (void)state;
    /* Every split point of a 130-byte message gives the one-shot digest. */
    uint8_t msg[130];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    char want[65];
    sha256_hex(msg, sizeof msg, want);
    for (size_t split = 0; split <= sizeof msg; split++) {
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_BYTES];
        char got[65];
        sha256_init(&ctx);
        sha256_update(&ctx, msg, split);
        sha256_update(&ctx, msg + split, sizeof msg - split);
        sha256_final(&ctx, digest);
        sha256_digest_hex(digest, got);
        assert_string_equal(got, want);
    }
    /* And a one-byte change changes it. */
    msg[64] ^= 1;
    char other[65];
    sha256_hex(msg, sizeof msg, other);
    assert_string_not_equal(other, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bit_message),
        cmocka_unit_test(test_896_bit_message),
        cmocka_unit_test(test_million_a_incremental),
        cmocka_unit_test(test_incremental_equals_one_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
