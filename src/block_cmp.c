/* Compressed message blocks (see jsr_block_decompress in block.h). */
#define _GNU_SOURCE
#include "jsr/block.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsr/fsops.h"
#include "jsr/s2stream.h"

#define ERR(...) (jsr_errf(err, errlen, __VA_ARGS__), -1)
#define CHECKSUM 8 /* the last record's hash, kept out of the compression */

static int read_at(int fd, unsigned char *to, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, to + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

/* The decoded size an S2 stream's chunks claim (each compressed chunk's
 * block starts with its decoded length); 0 when the framing is unreadable
 * (the decoder then says where). */
static int stream_claims(const unsigned char *p, size_t n, uint64_t *total)
{
    uint64_t sum = 0;
    size_t at = 0;
    while (at < n) {
        if (n - at < 4)
            return 0;
        unsigned type = p[at];
        size_t len = (size_t)p[at + 1] | (size_t)p[at + 2] << 8 | (size_t)p[at + 3] << 16;
        at += 4;
        if (len > n - at)
            return 0;
        if (type == 0x01) {
            if (len < 4)
                return 0;
            sum += len - 4;
        } else if (type == 0x00) {
            uint64_t v = 0;
            size_t k = 4;
            for (int shift = 0;; shift += 7) {
                if (k >= len || shift > 63)
                    return 0;
                v |= (uint64_t)(p[at + k] & 0x7f) << shift;
                if (!(p[at + k++] & 0x80))
                    break;
            }
            sum += v;
        }
        if (sum > JSR_BLOCK_DECODED_MAX)
            return 0;
        at += len;
    }
    *total = sum;
    return 1;
}

/* The header checks both entry points share: 0 not compressed, 1 s2, -1
 * an algorithm js-recover does not know (err set). */
static int header(const unsigned char *head, uint64_t size, const char *path, char *err,
                  size_t errlen)
{
    if (size < 5 || memcmp(head, "cmp", 3) != 0)
        return 0; /* "cmp", algorithm, at least one byte of size */
    if (head[3] == 0)
        return 0; /* "no compression": the records follow as they are */
    if (head[3] != 1)
        return ERR("%s: compressed with algorithm %u, which js-recover does not know "
                   "(1 is s2): a newer server's store?", path, head[3]);
    if (size > JSR_BLOCK_DECODED_MAX)
        return ERR("%s: a compressed block of %llu bytes, over the %u-byte limit", path,
                   (unsigned long long)size, JSR_BLOCK_DECODED_MAX);
    return 1;
}

/* Decodes the whole (decrypted) compressed file, its header checked. */
static int decode(const unsigned char *file, uint64_t size, unsigned char **out, size_t *outlen,
                  const char *path, char *err, size_t errlen)
{
    /* the decoded size, a uvarint after the 4 header bytes */
    uint64_t want = 0;
    size_t i = 4;
    for (int shift = 0;; shift += 7) {
        if (i >= size || shift > 63) {
            return ERR("%s: compressed block header is cut off or malformed", path);
        }
        want |= (uint64_t)(file[i] & 0x7f) << shift;
        if (!(file[i++] & 0x80))
            break;
    }
    /* 2.11.x write the compressed length there, not the decoded one (its
     * own reader ignores the field): take the chunks' word for it then */
    uint64_t claims;
    if (size - i >= CHECKSUM && want == size - i &&
        stream_claims(file + i, (size_t)size - i - CHECKSUM, &claims))
        want = claims + CHECKSUM;
    if (want < CHECKSUM || want > JSR_BLOCK_DECODED_MAX || size - i < CHECKSUM) {
        return ERR("%s: compressed block says it holds %llu bytes: impossible", path,
                   (unsigned long long)want);
    }
    unsigned char *plain = malloc((size_t)want);
    if (!plain) {
        return ERR("%s: out of memory for a %llu-byte block", path, (unsigned long long)want);
    }
    size_t got;
    char why[256];
    if (!jsr_s2_stream_decode(file + i, (size_t)size - i - CHECKSUM, plain, (size_t)want - CHECKSUM,
                              &got, why, sizeof why)) {
        free(plain);
        return ERR("%s: compressed block: %s (offset in the stream after the %zu-byte header)",
                   path, why, i);
    }
    if (got != want - CHECKSUM) {
        free(plain);
        return ERR("%s: compressed block decodes to %zu bytes, its header says %llu", path,
                   got + CHECKSUM, (unsigned long long)want);
    }
    memcpy(plain + got, file + size - CHECKSUM, CHECKSUM);
    *out = plain;
    *outlen = (size_t)want;
    return 1;
}

int jsr_block_decompress(int fd, uint64_t size, jsr_block_cipher *dec, unsigned char **out,
                         size_t *outlen, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    unsigned char head[4];
    if (size < 5)
        return 0;
    int r = read_at(fd, head, sizeof head, 0);
    if (r < 0)
        return ERR("%s: read failed at byte 0: %s", path, strerror(errno));
    if (dec && !jsr_block_cipher_xor(dec, head, sizeof head, 0))
        return ERR("%s: decryption failed", path);
    int h = r == 0 ? 0 : header(head, size, path, err, errlen);
    if (h <= 0)
        return h;
    unsigned char *file = malloc((size_t)size);
    if (!file)
        return ERR("%s: out of memory for a %llu-byte block", path, (unsigned long long)size);
    if ((r = read_at(fd, file, (size_t)size, 0)) <= 0) {
        int e = errno;
        free(file);
        return r < 0 ? ERR("%s: read failed: %s", path, strerror(e))
                     : ERR("%s: the file shrank while it was read", path);
    }
    if (dec && !jsr_block_cipher_xor(dec, file, (size_t)size, 0)) {
        free(file);
        return ERR("%s: decryption failed", path);
    }
    int ok = decode(file, size, out, outlen, path, err, errlen);
    free(file);
    return ok;
}

int jsr_block_decompress_bytes(const unsigned char *bytes, size_t n, unsigned char **out,
                               size_t *outlen, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    int h = header(bytes, n, path, err, errlen);
    return h <= 0 ? h : decode(bytes, n, out, outlen, path, err, errlen);
}
