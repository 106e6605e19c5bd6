#define _GNU_SOURCE
/* libFuzzer target for the S2 stream format (src/s2stream.c) and the
 * 2.10+ compressed message blocks built on it (src/block_cmp.c, read by
 * the block scan).  Input: a mode byte, then a stream.  Every input is
 * decoded as it is (never out of bounds, never more than the room given);
 * with mode bit 0 each data chunk's CRC is first set right, so the chunks'
 * contents are fuzzed past it.  Then the bytes after the mode byte are
 * framed as a stream of their own (raw and S2-literal chunks, sizes from
 * the bytes) and must decode back to themselves, and that stream, as a
 * compressed block ("cmp", s2, decoded size, stream, last 8 bytes), must
 * scan like the same bytes stored plain. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsr/block.h"
#include "jsr/s2.h"
#include "jsr/s2stream.h"

static uint32_t masked(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_crc(unsigned char *p, const unsigned char *data, size_t n)
{
    uint32_t c = masked(jsr_crc32c(0, data, n));
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(c >> (8 * i));
}

/* sets every data chunk's CRC to match what it decodes to */
static void fix_crcs(unsigned char *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 4) {
        unsigned type = s[i];
        size_t len = (size_t)s[i + 1] | (size_t)s[i + 2] << 8 | (size_t)s[i + 3] << 16;
        i += 4;
        if (len > n - i)
            return;
        unsigned char *body = s + i;
        i += len;
        if (type > 1 || len < 4)
            continue;
        if (type == 1) {
            put_crc(body, body + 4, len - 4);
            continue;
        }
        size_t dl;
        if (!jsr_s2_check(body + 4, len - 4, &dl, NULL, 0) || dl > (1u << 22))
            continue;
        unsigned char *d = malloc(dl ? dl : 1);
        if (!d)
            abort();
        if (jsr_s2_decode(body + 4, len - 4, d, dl, NULL, 0))
            put_crc(body, d, dl);
        free(d);
    }
}

static void decode_as_is(const unsigned char *s, size_t n)
{
    size_t cap = 4 * n + 64, got = 12345;
    unsigned char *dst = malloc(cap);
    char err[256] = "";
    if (!dst)
        abort();
    int ok = jsr_s2_stream_decode(s, n, dst, cap, &got, err, sizeof err);
    if ((ok && got > cap) || (!ok && !err[0]))
        abort();
    free(dst);
}

static size_t put_chunk_hdr(unsigned char *p, unsigned type, size_t len)
{
    p[0] = (unsigned char)type;
    p[1] = (unsigned char)len;
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)(len >> 16);
    return 4;
}

/* data framed as a stream: identifier, then chunks alternating raw and
 * compressed (one S2 literal), each as long as its first byte says */
static unsigned char *frame(const uint8_t *data, size_t size, size_t *n)
{
    unsigned char *s = malloc(10 + size * 16 + 16);
    if (!s)
        abort();
    size_t o = put_chunk_hdr(s, 0xff, 6);
    memcpy(s + o, "S2sTwO", 6);
    o += 6;
    for (size_t at = 0, k = 0; at < size; k++) {
        size_t len = 1 + (size_t)data[at] * 3;
        if (len > size - at)
            len = size - at;
        if (k % 2 == 0) {
            o += put_chunk_hdr(s + o, 1, 4 + len);
            put_crc(s + o, data + at, len);
            memcpy(s + o + 4, data + at, len);
            o += 4 + len;
        } else {
            /* uvarint length (len < 2^14), literal tag 61 (2-byte length) */
            unsigned char blk[8];
            size_t h = 0;
            if (len >= 0x80)
                blk[h++] = (unsigned char)(len | 0x80), blk[h++] = (unsigned char)(len >> 7);
            else
                blk[h++] = (unsigned char)len;
            blk[h++] = 61 << 2;
            blk[h++] = (unsigned char)(len - 1);
            blk[h++] = (unsigned char)((len - 1) >> 8);
            o += put_chunk_hdr(s + o, 0, 4 + h + len);
            put_crc(s + o, data + at, len);
            memcpy(s + o + 4, blk, h);
            memcpy(s + o + 4 + h, data + at, len);
            o += 4 + h + len;
        }
        at += len;
    }
    *n = o;
    return s;
}

static char plain_path[64], cmp_path[64];
static jsr_hhkey key;
static jsr_block_buf buf;

static void put_file(const char *path, const void *a, size_t an, const void *b, size_t bn)
{
    FILE *f = fopen(path, "wb");
    if (!f || (an && fwrite(a, 1, an, f) != an) || (bn && fwrite(b, 1, bn, f) != bn) ||
        fclose(f) != 0)
        abort();
}

static void scan(const char *path, jsr_block_stats *st)
{
    uint64_t prev = 0;
    char err[512];
    jsr_block_visitor v = {NULL, NULL, NULL};
    if (!jsr_block_scan(path, &key, NULL, 1, &prev, &buf, &v, st, NULL, err, sizeof err))
        abort();
}

/* the bytes stored plain and as a compressed block scan alike */
static void as_block(const uint8_t *data, size_t size)
{
    if (size < 8 + 1)
        return;
    size_t want = size;
    unsigned char hdr[16] = {'c', 'm', 'p', 1};
    size_t h = 4;
    for (size_t v = want; ; v >>= 7) {
        hdr[h++] = (unsigned char)(v >= 0x80 ? (v & 0x7f) | 0x80 : v);
        if (v < 0x80)
            break;
    }
    /* the stream holds all but the last 8 bytes (the last record's hash) */
    size_t sn;
    unsigned char *body = frame(data, size - 8, &sn);
    unsigned char *file = malloc(h + sn + 8);
    if (!file)
        abort();
    memcpy(file, hdr, h);
    memcpy(file + h, body, sn);
    memcpy(file + h + sn, data + size - 8, 8);
    put_file(cmp_path, file, h + sn + 8, NULL, 0);
    put_file(plain_path, data, size, NULL, 0);
    free(file);
    free(body);
    jsr_block_stats a, b;
    scan(cmp_path, &b);
    /* a plain block that happens to start "cmp" is read as compressed */
    if (memcmp(data, "cmp", 3) == 0)
        return;
    scan(plain_path, &a);
    if (a.records != b.records || a.live != b.live || a.deleted != b.deleted ||
        a.last_seq != b.last_seq || a.problems != b.problems)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!plain_path[0]) {
        snprintf(plain_path, sizeof plain_path, "/tmp/jsr-fuzz-s2s-%d.blk", (int)getpid());
        snprintf(cmp_path, sizeof cmp_path, "/tmp/jsr-fuzz-s2s-%d.cmp.blk", (int)getpid());
        if (!jsr_hhkey_from_name("S-1", 3, &key))
            abort();
    }
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    unsigned char *s = malloc(size ? size : 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    if (mode & 1)
        fix_crcs(s, size);
    decode_as_is(s, size);
    free(s);

    size_t n;
    unsigned char *f = frame(data, size, &n);
    unsigned char *out = malloc(size ? size : 1);
    size_t got;
    char err[256];
    if (!out || !jsr_s2_stream_decode(f, n, out, size, &got, err, sizeof err) || got != size ||
        memcmp(out, data, size) != 0) {
        fprintf(stderr, "round trip: %s\n", err);
        abort();
    }
    free(out);
    as_block(data, size);
    free(f);
    return 0;
}
