/* S2 block decoder (see include/jsr/s2.h for the format and why).
 *
 * Element tags, low two bits:
 *   00 literal: length-1 in the upper six bits, or 60..63 = 1..4 more bytes
 *      (little endian) hold length-1;
 *   01 copy, 1-byte offset: length 4..11 in bits 2..4, offset bits 8..10 in
 *      bits 5..7 and the next byte; offset 0 = S2 repeat (see below);
 *   10 copy, 2-byte offset: length 1..64 in the upper six bits, u16 offset;
 *   11 copy, 4-byte offset: likewise with a u32 offset.
 * S2 repeat: the previous copy's offset again; the 3-bit length field means
 * 0..4 -> 4..8, 5 -> 8 + one byte, 6 -> 260 + u16, 7 -> 65540 + u24.
 *
 * Every length and offset is checked against what is left of the input and
 * of the output before it is used, with subtractions that cannot wrap. */
#include "jsr/s2.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return 0;
}

int jsr_s2_decoded_len(const unsigned char *src, size_t n, size_t *len, size_t *hdr,
                       char *err, size_t errlen)
{
    uint64_t v = 0;
    /* 2^32 - 1 needs five bytes; more than that is not a length */
    for (size_t i = 0; i < n && i < 5; i++) {
        v |= (uint64_t)(src[i] & 0x7f) << (7 * i);
        if (!(src[i] & 0x80)) {
            if (v > JSR_S2_MAX_DECODED)
                return errf(err, errlen, "s2: decoded length %llu is over the %u-byte limit",
                            (unsigned long long)v, JSR_S2_MAX_DECODED);
            *len = (size_t)v;
            *hdr = i + 1;
            return 1;
        }
    }
    if (n < 5)
        return errf(err, errlen, "s2: input ends inside the length header (%zu bytes)", n);
    return errf(err, errlen, "s2: length header longer than 5 bytes");
}

/* little-endian value of k (1..4) bytes */
static size_t le(const unsigned char *p, unsigned k)
{
    size_t v = 0;
    for (unsigned i = 0; i < k; i++)
        v |= (size_t)p[i] << (8 * i);
    return v;
}

/* The decoding loop.  With dst NULL it only checks the block (every bound,
 * as for real) without writing: jsr_s2_check runs it before a caller
 * allocates what the header claims. */
static int run(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen, char *err,
               size_t errlen)
{
    size_t want, s;
    if (!jsr_s2_decoded_len(src, n, &want, &s, err, errlen))
        return 0;
    if (want != dstlen)
        return errf(err, errlen, "s2: header says %zu decoded bytes, buffer holds %zu", want,
                    dstlen);
    size_t d = 0, last = 0; /* output position, previous copy's offset */
    while (s < n) {
        size_t at = s; /* the element's offset, for messages */
        unsigned char tag = src[s++];
        size_t len, off;
        switch (tag & 3) {
        case 0: {
            len = (size_t)(tag >> 2);
            if (len >= 60) {
                unsigned k = (unsigned)(len - 59);
                if (n - s < k)
                    return errf(err, errlen, "s2: literal length at byte %zu cut off by the end "
                                "of input", at);
                len = le(src + s, k);
                s += k;
            }
            len += 1;
            if (len > n - s)
                return errf(err, errlen, "s2: literal of %zu bytes at byte %zu runs past the end "
                            "of input (%zu left)", len, at, n - s);
            if (len > dstlen - d)
                return errf(err, errlen, "s2: literal of %zu bytes at byte %zu runs past the "
                            "decoded length %zu", len, at, dstlen);
            if (dst)
                memcpy(dst + d, src + s, len);
            s += len;
            d += len;
            continue;
        }
        case 1:
            if (n - s < 1)
                return errf(err, errlen, "s2: copy at byte %zu cut off by the end of input", at);
            len = (size_t)((tag >> 2) & 7);
            off = (size_t)(tag & 0xe0) << 3 | src[s++];
            if (off == 0) {
                /* S2 repeat: same offset as the previous copy */
                static const unsigned extra[8] = {0, 0, 0, 0, 0, 1, 2, 3};
                static const size_t base[8] = {4, 5, 6, 7, 8, 8, 260, 65540};
                unsigned k = extra[len];
                if (n - s < k)
                    return errf(err, errlen, "s2: repeat at byte %zu cut off by the end of input",
                                at);
                len = base[len] + (k ? le(src + s, k) : 0);
                s += k;
                if (last == 0)
                    return errf(err, errlen, "s2: repeat at byte %zu before any copy", at);
                off = last;
            } else {
                len += 4;
            }
            break;
        case 2:
            if (n - s < 2)
                return errf(err, errlen, "s2: copy at byte %zu cut off by the end of input", at);
            len = (size_t)(tag >> 2) + 1;
            off = le(src + s, 2);
            s += 2;
            break;
        default:
            if (n - s < 4)
                return errf(err, errlen, "s2: copy at byte %zu cut off by the end of input", at);
            len = (size_t)(tag >> 2) + 1;
            off = le(src + s, 4);
            s += 4;
            break;
        }
        if (off == 0)
            return errf(err, errlen, "s2: copy with offset 0 at byte %zu", at);
        if (off > d)
            return errf(err, errlen, "s2: copy at byte %zu reaches %zu bytes back, only %zu "
                        "decoded so far", at, off, d);
        if (len > dstlen - d)
            return errf(err, errlen, "s2: copy of %zu bytes at byte %zu runs past the decoded "
                        "length %zu", len, at, dstlen);
        last = off;
        if (!dst) {
            /* checking only */
        } else if (off >= len) {
            memcpy(dst + d, dst + d - off, len);
        } else {
            /* overlapping: a run; byte by byte repeats the pattern as meant */
            for (size_t i = 0; i < len; i++)
                dst[d + i] = dst[d + i - off];
        }
        d += len;
    }
    if (d != dstlen)
        return errf(err, errlen, "s2: input ends after %zu of %zu decoded bytes", d, dstlen);
    return 1;
}

int jsr_s2_decode(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen,
                  char *err, size_t errlen)
{
    static unsigned char none[1]; /* an empty result needs no buffer */
    if (!dst && dstlen)
        return errf(err, errlen, "s2: no output buffer");
    return run(src, n, dst ? dst : none, dstlen, err, errlen);
}

int jsr_s2_check(const unsigned char *src, size_t n, size_t *len, char *err, size_t errlen)
{
    size_t hdr;
    if (!jsr_s2_decoded_len(src, n, len, &hdr, err, errlen))
        return 0;
    return run(src, n, NULL, *len, err, errlen);
}
