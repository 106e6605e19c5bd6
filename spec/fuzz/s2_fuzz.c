/* libFuzzer target for the S2 block decoder (src/s2.c), which reads the
 * meta group's snapshot, compressed consumer assignments and compressed
 * stream messages.  Properties: no input makes it read or write out of
 * bounds; check and decode agree on every input (a caller allocates on
 * check's word); and any bytes, written as S2 literals with every length
 * encoding (1 to 4 extra bytes), decode back to themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsr/s2.h"

static size_t put_uvarint(unsigned char *p, size_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (unsigned char)(v | 0x80);
    p[n++] = (unsigned char)v;
    return n;
}

/* literal of len bytes with k extra length bytes (0: in the tag) */
static size_t put_literal(unsigned char *p, const uint8_t *src, size_t len, unsigned k)
{
    size_t n = 0, l = len - 1;
    if (k == 0) {
        p[n++] = (unsigned char)(l << 2);
    } else {
        p[n++] = (unsigned char)((59 + k) << 2);
        for (unsigned i = 0; i < k; i++)
            p[n++] = (unsigned char)(l >> (8 * i));
    }
    memcpy(p + n, src, len);
    return n + len;
}

static void round_trip(const uint8_t *data, size_t size)
{
    unsigned char *enc = malloc(6 * size + 16); /* at worst 5 bytes of tag per byte */
    if (!enc)
        abort();
    size_t n = put_uvarint(enc, size), at = 0;
    /* each chunk's length and length encoding come from its first byte:
     * 0 to 4 extra bytes (shorter lengths than needed are valid too) */
    while (at < size) {
        unsigned k = data[at] % 5;
        size_t len = k < 2 ? 1 + data[at] % 60 : (size_t)(1 + data[at]) * 7;
        if (len > size - at)
            len = size - at;
        n += put_literal(enc + n, data + at, len, k);
        at += len;
    }
    size_t len;
    char err[256];
    if (!jsr_s2_check(enc, n, &len, err, sizeof err) || len != size)
        abort();
    unsigned char *dec = malloc(size ? size : 1);
    if (!dec || !jsr_s2_decode(enc, n, dec, size, err, sizeof err) || memcmp(dec, data, size) != 0)
        abort();
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = 0, hdr;
    char err[256] = "", err2[256] = "";
    int ok = jsr_s2_check(data, size, &len, err, sizeof err);
    if (!ok && !err[0])
        abort(); /* a failure must say why */
    size_t hlen;
    if (jsr_s2_decoded_len(data, size, &hlen, &hdr, err2, sizeof err2)) {
        if (ok && hlen != len)
            abort();
        /* decode into exactly what the header says, as callers do, also
         * when check refused (if that is small): decode must refuse it the
         * same way */
        if (!ok && hlen > (1u << 20))
            goto rt;
        unsigned char *dst = hlen ? malloc(hlen) : NULL;
        if (hlen && !dst)
            abort();
        int dok = jsr_s2_decode(data, size, dst, hlen, err2, sizeof err2);
        if (dok != ok || (!ok && strcmp(err, err2) != 0))
            abort();
        free(dst);
    } else if (ok) {
        abort();
    }
rt:
    round_trip(data, size);
    return 0;
}
