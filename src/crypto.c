#include "jsr/crypto.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

const char *jsr_cipher_name(jsr_cipher c) { return c == JSR_CIPHER_AES ? "aes" : "chacha"; }

size_t jsr_cipher_nonce_len(jsr_cipher c) { return c == JSR_CIPHER_AES ? 16 : 24; }

int jsr_crypto_init(void) { return sodium_init() >= 0; }

int jsr_prf(const void *key, size_t keylen, const char *account, const char *context,
            unsigned char out[32])
{
    size_t al = strlen(account), cl = strlen(context);
    unsigned char msg[1024];
    if (al + cl > sizeof msg)
        return 0;
    memcpy(msg, account, al);
    memcpy(msg + al, context, cl);
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, al + cl, out, &n) != NULL && n == 32;
}

/* AES-256-GCM with the server's 16-byte nonce (Go's NewGCMWithNonceSize). */
static int gcm(int enc, const unsigned char key[32], const unsigned char *nonce,
               const unsigned char *in, size_t len, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int ok = 0, n = 0, m = 0;
    if (!x || len > (size_t)(1 << 30))
        goto out;
    if (EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, 16, NULL) != 1 ||
        EVP_CipherInit_ex(x, NULL, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(x, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, JSR_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(x, out + n, &m) != 1)
        goto out; /* authentication failed */
    if (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, JSR_TAG_LEN, tag) != 1)
        goto out;
    ok = 1;
out:
    EVP_CIPHER_CTX_free(x);
    return ok;
}

int jsr_aead_open(jsr_cipher c, const unsigned char key[32], const unsigned char *in,
                  size_t inlen, unsigned char *out, size_t *outlen)
{
    size_t nl = jsr_cipher_nonce_len(c);
    if (inlen < nl + JSR_TAG_LEN)
        return 0;
    size_t ctlen = inlen - nl - JSR_TAG_LEN;
    if (c == JSR_CIPHER_AES) {
        unsigned char tag[JSR_TAG_LEN];
        memcpy(tag, in + inlen - JSR_TAG_LEN, JSR_TAG_LEN);
        if (!gcm(0, key, in, in + nl, ctlen, out, tag))
            return 0;
        *outlen = ctlen;
        return 1;
    }
    unsigned long long n = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL, in + nl, inlen - nl, NULL, 0,
                                                   in, key) != 0)
        return 0;
    *outlen = (size_t)n;
    return 1;
}

int jsr_aead_seal(jsr_cipher c, const unsigned char key[32], const unsigned char *in,
                  size_t len, unsigned char *out, size_t *outlen)
{
    size_t nl = jsr_cipher_nonce_len(c);
    randombytes_buf(out, nl);
    if (c == JSR_CIPHER_AES) {
        if (!gcm(1, key, out, in, len, out + nl, out + nl + len))
            return 0;
        *outlen = nl + len + JSR_TAG_LEN;
        return 1;
    }
    unsigned long long n = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + nl, &n, in, len, NULL, 0, NULL, out,
                                                   key) != 0)
        return 0;
    *outlen = nl + (size_t)n;
    return 1;
}

int jsr_unwrap_seed(const unsigned char kek[32], const unsigned char *file, size_t len,
                    jsr_cipher *c, unsigned char seed[32], unsigned char nonce[24])
{
    static const jsr_cipher order[] = {JSR_CIPHER_CHACHA, JSR_CIPHER_AES};
    unsigned char out[256];
    for (size_t i = 0; i < 2; i++) {
        size_t n = 0, nl = jsr_cipher_nonce_len(order[i]);
        if (len != nl + JSR_SEED_LEN + JSR_TAG_LEN)
            continue;
        if (jsr_aead_open(order[i], kek, file, len, out, &n) && n == JSR_SEED_LEN) {
            *c = order[i];
            memcpy(seed, out, JSR_SEED_LEN);
            memset(nonce, 0, 24);
            memcpy(nonce, file, nl);
            sodium_memzero(out, sizeof out);
            return 1;
        }
    }
    return 0;
}

int jsr_block_cipher_init(jsr_block_cipher *bc, jsr_cipher c, const unsigned char seed[32],
                          const unsigned char *nonce)
{
    memset(bc, 0, sizeof *bc);
    bc->cipher = c;
    memcpy(bc->seed, seed, 32);
    memcpy(bc->nonce, nonce, jsr_cipher_nonce_len(c));
    if (c == JSR_CIPHER_CHACHA)
        return crypto_core_hchacha20(bc->subkey, bc->nonce, bc->seed, NULL) == 0;
    return 1;
}

static int aes_at(jsr_block_cipher *bc, uint64_t off)
{
    /* CTR over the whole 16-byte nonce as a big-endian counter, as Go's
     * cipher.NewCTR does; restart from the block that holds off */
    unsigned char iv[16];
    memcpy(iv, bc->nonce, 16);
    uint64_t add = off / 16;
    for (int i = 15; i >= 0 && add; i--) {
        uint64_t s = (uint64_t)iv[i] + (add & 0xff);
        iv[i] = (unsigned char)s;
        add = (add >> 8) + (s >> 8);
    }
    EVP_CIPHER_CTX *x = bc->ctr;
    if (!x && !(x = bc->ctr = EVP_CIPHER_CTX_new()))
        return 0;
    if (EVP_EncryptInit_ex(x, EVP_aes_256_ctr(), NULL, bc->seed, iv) != 1)
        return 0;
    unsigned char skip[16];
    int n;
    size_t part = off % 16;
    if (part && EVP_EncryptUpdate(x, skip, &n, skip, (int)part) != 1)
        return 0;
    bc->ctr_off = off;
    return 1;
}

int jsr_block_cipher_xor(jsr_block_cipher *bc, unsigned char *data, size_t len, uint64_t off)
{
    if (bc->cipher == JSR_CIPHER_AES) {
        if ((!bc->ctr || bc->ctr_off != off) && !aes_at(bc, off))
            return 0;
        int n;
        while (len) {
            int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
            if (EVP_EncryptUpdate(bc->ctr, data, &n, data, chunk) != 1)
                return 0;
            data += chunk;
            len -= (size_t)chunk;
            bc->ctr_off += (uint64_t)chunk;
        }
        return 1;
    }
    /* XChaCha20 = ChaCha20 under the HChaCha20 subkey with the nonce's last
     * 8 bytes; a 64-byte block counter, so an unaligned start first
     * finishes its block */
    const unsigned char *n8 = bc->nonce + 16;
    size_t part = off % 64;
    if (part) {
        unsigned char ks[64] = {0};
        if (crypto_stream_chacha20_xor_ic(ks, ks, 64, n8, off / 64, bc->subkey) != 0)
            return 0;
        size_t take = 64 - part < len ? 64 - part : len;
        for (size_t i = 0; i < take; i++)
            data[i] ^= ks[part + i];
        data += take;
        len -= take;
        off += take;
    }
    return len == 0 || crypto_stream_chacha20_xor_ic(data, data, len, n8, off / 64, bc->subkey) == 0;
}

void jsr_block_cipher_free(jsr_block_cipher *bc)
{
    EVP_CIPHER_CTX_free(bc->ctr);
    sodium_memzero(bc, sizeof *bc);
}
