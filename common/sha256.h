/*
 * sha256.h - SHA-256 (FIPS 180-4), small and self-contained.
 *
 * jetprof needs a stable digest in a few places that must not pull in a crypto
 * library: the device fingerprint in db (a hash of the board, software and sensor
 * fields, so measurements from different setups never mix) and, later, training-set
 * hashes. Not constant-time, not for secrets.
 */
#ifndef JETPROF_SHA256_H
#define JETPROF_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_BYTES 32
#define SHA256_HEX_CHARS 64 /* plus the terminating NUL: char out[65] */

struct sha256_ctx {
    uint32_t state[8];
    uint64_t total_bytes; /* message length so far */
    uint8_t block[64];    /* pending input, block_len bytes used */
    size_t block_len;
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_BYTES]);

/* One-shot digest of data as 64 lowercase hex characters, NUL-terminated. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_CHARS + 1]);
/* Lowercase hex of a finished digest. */
void sha256_digest_hex(const uint8_t digest[SHA256_DIGEST_BYTES],
                       char out[SHA256_HEX_CHARS + 1]);

#endif
