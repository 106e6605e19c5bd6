/* S2 stream decoding (see include/jsr/s2stream.h). */
#include "jsr/s2stream.h"

#include <string.h>

#include "jsr/bytes.h"
#include "jsr/fsops.h"
#include "jsr/s2.h"

uint32_t jsr_crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t masked(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

int jsr_s2_stream_decode(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen,
                         size_t *outlen, char *err, size_t errlen)
{
    size_t i = 0, d = 0;
    int seen_id = 0;
    *outlen = 0;
    while (i < n) {
        if (n - i < 4)
            return jsr_errf(err, errlen, "s2 stream: chunk header cut off at byte %zu", i);
        unsigned type = src[i];
        size_t len = (size_t)src[i + 1] | (size_t)src[i + 2] << 8 | (size_t)src[i + 3] << 16;
        size_t at = i;
        i += 4;
        if (len > n - i)
            return jsr_errf(err, errlen,
                        "s2 stream: chunk at byte %zu claims %zu bytes, %zu are left", at, len,
                        n - i);
        const unsigned char *body = src + i;
        i += len;
        if (type == 0xff) {
            if (len != 6 || (memcmp(body, "S2sTwO", 6) && memcmp(body, "sNaPpY", 6)))
                return jsr_errf(err, errlen, "s2 stream: bad stream identifier at byte %zu", at);
            seen_id = 1;
            continue;
        }
        if (!seen_id)
            return jsr_errf(err, errlen, "s2 stream: no stream identifier before byte %zu", at);
        if (type >= 0x80)
            continue; /* padding, index */
        if (type > 0x01)
            return jsr_errf(err, errlen, "s2 stream: reserved chunk type 0x%02x at byte %zu", type, at);
        if (len < 4)
            return jsr_errf(err, errlen, "s2 stream: chunk at byte %zu too short for its CRC", at);
        uint32_t want = jsr_le32(body);
        const unsigned char *data = body + 4;
        size_t dlen = len - 4, got;
        if (type == 0x01) {
            if (dlen > dstlen - d)
                return jsr_errf(err, errlen, "s2 stream: more than the expected %zu bytes at byte %zu",
                            dstlen, at);
            memcpy(dst + d, data, dlen);
            got = dlen;
        } else {
            size_t hdr;
            char why[200];
            if (!jsr_s2_decoded_len(data, dlen, &got, &hdr, why, sizeof why))
                return jsr_errf(err, errlen, "s2 stream: chunk at byte %zu: %s", at, why);
            if (got > dstlen - d)
                return jsr_errf(err, errlen, "s2 stream: more than the expected %zu bytes at byte %zu",
                            dstlen, at);
            if (!jsr_s2_decode(data, dlen, dst + d, got, why, sizeof why))
                return jsr_errf(err, errlen, "s2 stream: chunk at byte %zu: %s", at, why);
        }
        if (masked(jsr_crc32c(0, dst + d, got)) != want)
            return jsr_errf(err, errlen, "s2 stream: CRC mismatch in the chunk at byte %zu", at);
        d += got;
    }
    *outlen = d;
    return 1;
}
