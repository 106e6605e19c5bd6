#include "jsr/metasum.h"

#include <string.h>

#include <highwayhash/c_bindings.h>
#include <openssl/evp.h>

int jsr_hhkey_from_name(const char *name, size_t len, jsr_hhkey *key)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(name, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return 0;
    /* Go reads the 32 digest bytes as four little-endian uint64 words. */
    for (int w = 0; w < 4; w++) {
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--)
            v = (v << 8) | md[w * 8 + b];
        key->k[w] = v;
    }
    return 1;
}

uint64_t jsr_hh64(const jsr_hhkey *key, const void *data, size_t len)
{
    return HighwayHash64(key->k, (const char *)data, (uint64_t)len);
}

void jsr_sum_hex(uint64_t sum, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        unsigned char byte = (unsigned char)(sum >> (8 * i));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[16] = 0;
}

int jsr_metasum(const char *name, const void *data, size_t len, char out[17])
{
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(name, strlen(name), &key))
        return 0;
    jsr_sum_hex(jsr_hh64(&key, data, len), out);
    return 1;
}
