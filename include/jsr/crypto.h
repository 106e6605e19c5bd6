/* The server's encryption at rest (jetstream { key, cipher }), from
 * libsodium (XChaCha20-Poly1305, XChaCha20) and OpenSSL (AES-256-GCM with a
 * 16-byte nonce, AES-256-CTR, HMAC-SHA256); no cipher code here.
 *
 * key-encryption key = HMAC-SHA256(server key, account || context), where
 * context is the stream name, "STREAM.CONSUMER", or "STREAM:N" for block N;
 * meta.key / N.key = nonce || seal(kek, seed); the asset key is the seed;
 * meta.inf = nonce || seal(seed, JSON); blocks are XORed with XChaCha20 or
 * AES-CTR keyed by the seed with the key file's nonce. */
#ifndef JSR_CRYPTO_H
#define JSR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JSR_CIPHER_CHACHA = 1, JSR_CIPHER_AES = 2 } jsr_cipher;

#define JSR_SEED_LEN 32
#define JSR_TAG_LEN 16

const char *jsr_cipher_name(jsr_cipher c); /* "chacha", "aes" */
size_t jsr_cipher_nonce_len(jsr_cipher c); /* 24, 16 */

/* 0 if the crypto libraries cannot start. */
int jsr_crypto_init(void);

int jsr_prf(const void *key, size_t keylen, const char *account, const char *context,
            unsigned char out[32]);

/* in = nonce || ciphertext || tag.  Writes the plaintext (inlen - nonce -
 * tag bytes) to out; returns 1, or 0 when authentication fails. */
int jsr_aead_open(jsr_cipher c, const unsigned char key[32], const unsigned char *in,
                  size_t inlen, unsigned char *out, size_t *outlen);

/* out (room for nonce + len + tag) = fresh random nonce || seal(key, in). */
int jsr_aead_seal(jsr_cipher c, const unsigned char key[32], const unsigned char *in,
                  size_t len, unsigned char *out, size_t *outlen);

/* Opens a key file (meta.key, N.key) with the key-encryption key, trying
 * both ciphers as the server does.  Returns 1 with seed, cipher and the
 * file's nonce (for blocks), or 0 when neither authenticates. */
int jsr_unwrap_seed(const unsigned char kek[32], const unsigned char *file, size_t len,
                    jsr_cipher *c, unsigned char seed[32], unsigned char nonce[24]);

/* Block decryption as a stream: XORs data that sits at byte offset off of
 * the block with the keystream. */
typedef struct {
    jsr_cipher cipher;
    unsigned char seed[32];
    unsigned char nonce[24];
    unsigned char subkey[32]; /* chacha: HChaCha20(seed, nonce[0..16]) */
    void *ctr;                /* aes: an OpenSSL cipher context */
    uint64_t ctr_off;         /* aes: the offset the context is at */
} jsr_block_cipher;

int jsr_block_cipher_init(jsr_block_cipher *bc, jsr_cipher c, const unsigned char seed[32],
                          const unsigned char *nonce);
int jsr_block_cipher_xor(jsr_block_cipher *bc, unsigned char *data, size_t len, uint64_t off);
void jsr_block_cipher_free(jsr_block_cipher *bc);

#endif
