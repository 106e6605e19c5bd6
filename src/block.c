#define _GNU_SOURCE
#include "jsr/block.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/bytes.h"
#include "jsr/fsops.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)
/* Chunk size: big enough that read() calls cost nothing, small enough that
 * the bytes are still in cache when they are hashed (the buffer is two
 * chunks).  Measured on 2 GiB of blocks: 256 KiB chunks verify at about
 * 3.4 GB/s, 1 MiB at 2.5, 4 MiB at 1.1 (the buffer leaves the cache). */
#define CHUNK (1u << 18)

const char *jsr_problem_name(jsr_problem_kind k)
{
    switch (k) {
    case JSR_PROB_BAD_HASH: return "bad_hash";
    case JSR_PROB_BAD_LENGTH: return "bad_length";
    case JSR_PROB_TRUNCATED: return "truncated";
    case JSR_PROB_TORN_TAIL: return "torn_tail";
    case JSR_PROB_BACKWARDS: return "backwards";
    case JSR_PROB_GAP: return "gap";
    case JSR_PROB_INDEX: return "index";
    default: return "io";
    }
}

/* ------------------------------------------------------------ the index */

static int uvarint(const unsigned char *b, size_t n, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *i < n && shift < 70; shift += 7) {
        unsigned char c = b[(*i)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static int varint(const unsigned char *b, size_t n, size_t *i, int64_t *out)
{
    uint64_t u;
    if (!uvarint(b, n, i, &u))
        return 0;
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int jsr_block_index_read(const char *path, jsr_block_index *ix, char *err, size_t errlen)
{
    memset(ix, 0, sizeof *ix);
    char *data;
    size_t n;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 1;
        return ERR("%s: %s", path, strerror(errno));
    }
    if (!jsr_read_file(path, 64u << 20, &data, &n, err, errlen))
        return 0;
    int ok = jsr_block_index_parse((const unsigned char *)data, n, ix, err, errlen);
    free(data);
    return ok;
}

int jsr_block_index_parse(const unsigned char *b, size_t n, jsr_block_index *ix, char *err,
                          size_t errlen)
{
    memset(ix, 0, sizeof *ix);
    ix->present = 1;
    size_t i = 2;
    uint64_t fseq, lseq;
    /* magic 22, version 1, then counts as the server writes them */
    if (n >= 2 && b[0] == 22 && b[1] == 1 && uvarint(b, n, &i, &ix->msgs) &&
        uvarint(b, n, &i, &ix->bytes) && uvarint(b, n, &i, &fseq) &&
        varint(b, n, &i, &ix->first_ts) && uvarint(b, n, &i, &lseq) &&
        varint(b, n, &i, &ix->last_ts) && uvarint(b, n, &i, &ix->ndel) && i + 8 <= n) {
        ix->first_seq = fseq & ~JSR_EBIT;
        ix->last_seq = lseq & ~JSR_EBIT;
        memcpy(ix->lchk, b + i, 8);
        i += 8;
        ix->valid = 1;
        if (i < n) {
            ix->dmap = malloc((n - i) * sizeof *ix->dmap);
            if (!ix->dmap)
                return ERR("index file: out of memory");
            uint64_t d;
            while (i < n && uvarint(b, n, &i, &d))
                ix->dmap[ix->dmap_len++] = ix->first_seq + d;
            qsort(ix->dmap, ix->dmap_len, sizeof *ix->dmap, cmp_u64);
        }
    }
    return 1;
}

void jsr_block_index_free(jsr_block_index *ix)
{
    free(ix->dmap);
    memset(ix, 0, sizeof *ix);
}

static int in_dmap(const jsr_block_index *ix, uint64_t seq)
{
    if (!ix || !ix->dmap_len)
        return 0;
    return bsearch(&seq, ix->dmap, ix->dmap_len, sizeof seq, cmp_u64) != NULL;
}

/* Index of the first delete-map entry above v (the map is sorted). */
static size_t dmap_above(const jsr_block_index *ix, uint64_t v)
{
    size_t lo = 0, hi = ix->dmap_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->dmap[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Number of sequences in (a, b) that the delete map accounts for: by
 * binary search, as a 2.10+ block compacted after many deletes has a gap
 * at nearly every record and a delete map as long as the block. */
static uint64_t dmap_between(const jsr_block_index *ix, uint64_t a, uint64_t b)
{
    if (!ix || !ix->dmap_len || b <= a + 1)
        return 0;
    size_t from = dmap_above(ix, a), to = dmap_above(ix, b - 1);
    return to > from ? to - from : 0;
}

/* ------------------------------------------------------------- scanning */

void jsr_block_buf_free(jsr_block_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

static int grow(jsr_block_buf *b, size_t need)
{
    if (b->cap >= need)
        return 1;
    size_t cap = b->cap ? b->cap : CHUNK * 2;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

static void problem(const jsr_block_visitor *v, jsr_block_stats *st, jsr_problem_kind k,
                    uint64_t off, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void problem(const jsr_block_visitor *v, jsr_block_stats *st, jsr_problem_kind k,
                    uint64_t off, uint64_t seq, const char *fmt, ...)
{
    st->problems++;
    if (!v || !v->problem)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->problem(v->ud, k, off, seq, msg);
}

/* Hashes the record at r (len rl) in place and fills rec's pointers. */
static int check_record(unsigned char *r, uint32_t rl, int has_hdr, const jsr_hhkey *key,
                        jsr_record *rec, char *why, size_t whylen)
{
    uint16_t slen = (uint16_t)(r[20] | r[21] << 8);
    size_t dlen = rl - JSR_REC_HDR; /* subject .. hash */
    size_t hlen = 0;
    if (slen > dlen - 8) {
        snprintf(why, whylen, "subject length %u exceeds the record (%u bytes)", slen, rl);
        return -1;
    }
    if (has_hdr) {
        if (dlen - 8 - slen < 4) {
            snprintf(why, whylen, "header length field missing");
            return -1;
        }
        hlen = jsr_le32(r + JSR_REC_HDR + slen);
        if (hlen > dlen - 8 - slen - 4) {
            snprintf(why, whylen, "header length %zu exceeds the record (%u bytes)", hlen, rl);
            return -1;
        }
    }
    const unsigned char *stored = r + rl - 8;
    uint64_t want = jsr_le64(stored);
    unsigned char *start;
    if (!has_hdr) {
        /* seq,ts (16 bytes at 4) slide over the 2-byte subject length */
        memmove(r + 6, r + 4, 16);
        start = r + 6;
        rec->subject = r + JSR_REC_HDR;
        rec->headers = NULL;
        rec->headers_len = 0;
        rec->payload = r + JSR_REC_HDR + slen;
        rec->payload_len = dlen - 8 - slen;
    } else {
        /* subject moves over hdr_len, then seq,ts follow it */
        memmove(r + JSR_REC_HDR + 4, r + JSR_REC_HDR, slen);
        memmove(r + 10, r + 4, 16);
        start = r + 10;
        rec->subject = r + JSR_REC_HDR + 4;
        rec->headers = r + JSR_REC_HDR + slen + 4;
        rec->headers_len = hlen;
        rec->payload = rec->headers + hlen;
        rec->payload_len = dlen - 8 - slen - 4 - hlen;
    }
    rec->subject_len = slen;
    uint64_t got = jsr_hh64(key, start, (size_t)(stored - start));
    return got == want;
}

int jsr_record_mark_deleted(unsigned char *r, size_t avail, const jsr_hhkey *key)
{
    if (avail < JSR_REC_MIN)
        return 0;
    uint32_t raw = jsr_le32(r), rl = raw & ~JSR_HBIT;
    int has_hdr = (raw & JSR_HBIT) != 0;
    if (rl < JSR_REC_MIN || rl > avail || rl > JSR_REC_MAX)
        return 0;
    r[11] |= 0x80; /* the top byte of the sequence (little-endian u64 at 4) */
    if (!key)
        return 1;
    uint16_t slen = (uint16_t)(r[20] | r[21] << 8);
    size_t dlen = rl - JSR_REC_HDR, hlen = 0, hstart = JSR_REC_HDR + slen;
    if (slen > dlen - 8)
        return 0;
    if (has_hdr) {
        if (dlen - 8 - slen < 4)
            return 0;
        hlen = jsr_le32(r + hstart);
        hstart += 4;
        if (hlen > dlen - 8 - slen - 4)
            return 0;
    }
    /* the hashed bytes: seq and ts, subject, then headers (without their
     * length) and payload: everything from hstart to the hash */
    size_t tail = rl - 8 - hstart, n = 16 + slen + tail;
    unsigned char *h = malloc(n);
    if (!h)
        return 0;
    memcpy(h, r + 4, 16);
    memcpy(h + 16, r + JSR_REC_HDR, slen);
    memcpy(h + 16 + slen, r + hstart, tail);
    uint64_t sum = jsr_hh64(key, h, n);
    free(h);
    for (int i = 0; i < 8; i++)
        r[rl - 8 + i] = (unsigned char)(sum >> (8 * i));
    return 1;
}

int jsr_block_scan(const char *path, const jsr_hhkey *key, const jsr_block_index *ix, int last,
                   uint64_t *prev_seq, jsr_block_buf *buf, const jsr_block_visitor *v,
                   jsr_block_stats *st, jsr_block_cipher *dec, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    int fd = jsr_open_file(path, &sb, err, errlen);
    if (fd < 0)
        return 0;
    st->size = (uint64_t)sb.st_size;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!grow(buf, CHUNK * 2)) {
        close(fd);
        return ERR("%s: out of memory", path);
    }
    /* a compressed block (2.10+) is decoded whole, then scanned from memory */
    unsigned char *mem = NULL;
    size_t memlen = 0, mempos = 0;
    int cmp = jsr_block_decompress(fd, st->size, dec, &mem, &memlen, path, err, errlen);
    if (cmp < 0) {
        close(fd);
        return 0;
    }
    st->compressed = cmp;
    if (cmp)
        dec = NULL; /* decrypted with the rest */
    size_t have = 0, pos = 0;
    uint64_t base = 0; /* file offset of buf->data[0] */
    int eof = 0;
    uint64_t expect_next = 0; /* next live seq the index expects */
    uint64_t tomb_seq = 0;    /* the lowest tombstone's sequence */

    for (;;) {
        /* make sure a header, then the whole record, is in the buffer */
        size_t want = JSR_REC_HDR;
        uint32_t rl = 0;
        int has_hdr = 0;
        for (int phase = 0; phase < 2; phase++) {
            while (have - pos < want && !eof) {
                if (pos > 0) {
                    memmove(buf->data, buf->data + pos, have - pos);
                    base += pos;
                    have -= pos;
                    pos = 0;
                }
                if (want > buf->cap && !grow(buf, want)) {
                    close(fd);
                    free(mem);
                    return ERR("%s: out of memory for a %zu-byte record", path, want);
                }
                size_t room = buf->cap - have;
                ssize_t r;
                if (mem) {
                    r = (ssize_t)(memlen - mempos < room ? memlen - mempos : room);
                    memcpy(buf->data + have, mem + mempos, (size_t)r);
                    mempos += (size_t)r;
                } else {
                    r = read(fd, buf->data + have, room);
                }
                if (r < 0) {
                    if (errno == EINTR)
                        continue;
                    int e = errno;
                    close(fd);
                    free(mem);
                    return ERR("%s: read failed at byte %llu: %s", path,
                               (unsigned long long)(base + have), strerror(e));
                }
                if (r == 0)
                    eof = 1;
                if (dec && r > 0 &&
                    !jsr_block_cipher_xor(dec, buf->data + have, (size_t)r, base + have)) {
                    close(fd);
                    free(mem);
                    return ERR("%s: decryption failed", path);
                }
                have += (size_t)r;
            }
            if (phase == 0) {
                if (have == pos)
                    goto done; /* clean end */
                if (have - pos < JSR_REC_HDR)
                    break;
                unsigned char *h = buf->data + pos;
                rl = jsr_le32(h);
                has_hdr = (rl & JSR_HBIT) != 0;
                rl &= ~JSR_HBIT;
                if (rl < JSR_REC_MIN || rl > JSR_REC_MAX) {
                    problem(v, st, JSR_PROB_BAD_LENGTH, base + pos, jsr_le64(h + 4) & ~JSR_EBIT,
                            "impossible record length %u; the remaining %llu bytes of the "
                            "block cannot be read",
                            rl, (unsigned long long)(st->size - (base + pos)));
                    goto done;
                }
                want = rl;
            }
        }
        if (have - pos < want) {
            uint64_t off = base + pos;
            size_t part = have - pos;
            if (last)
                problem(v, st, JSR_PROB_TORN_TAIL, off,
                        part >= 12 ? jsr_le64(buf->data + pos + 4) & ~JSR_EBIT : 0,
                        "partial last record (%zu of %zu bytes): a write cut short by a "
                        "crash; the server drops it",
                        part, want);
            else
                problem(v, st, JSR_PROB_TRUNCATED, off,
                        part >= 12 ? jsr_le64(buf->data + pos + 4) & ~JSR_EBIT : 0,
                        "record of %zu bytes cut off after %zu bytes, in a block that is "
                        "not the last", want, part);
            goto done;
        }

        unsigned char *r = buf->data + pos;
        uint64_t rawseq = jsr_le64(r + 4);
        jsr_record rec;
        rec.offset = base + pos;
        rec.len = rl;
        rec.tombstone = (rawseq & JSR_TBIT) != 0;
        rec.seq = rawseq & ~(JSR_EBIT | JSR_TBIT);
        rec.ts = (int64_t)jsr_le64(r + 12);
        rec.marked = rawseq == 0 || (rawseq & (JSR_EBIT | JSR_TBIT)) != 0;
        rec.deleted = rec.marked ||
                      (ix && ix->valid && rec.seq < ix->first_seq) || in_dmap(ix, rec.seq);
        char why[160];
        int h = check_record(r, rl, has_hdr, key, &rec, why, sizeof why);
        if (h < 0) {
            problem(v, st, JSR_PROB_BAD_LENGTH, rec.offset, rec.seq, "%s", why);
            goto done;
        }
        rec.hash_ok = h;
        memcpy(st->last_hash, r + rl - 8, 8);
        if (rec.tombstone) {
            /* the server skips these when it rebuilds a block, except that
             * a block without messages ends at its lowest tombstone (how
             * 2.10+ keep the end of a stream emptied by a purge) */
            if (!st->tombstones || rec.seq < tomb_seq)
                tomb_seq = rec.seq;
            st->tombstones++;
            if (!h)
                problem(v, st, JSR_PROB_BAD_HASH, rec.offset, rec.seq,
                        "checksum mismatch in a delete tombstone of %u bytes", rl);
            if (v && v->record && !v->record(v->ud, &rec))
                goto done;
            pos += rl;
            continue;
        }
        st->records++;
        st->last_record_seq = rec.seq;
        if (!h)
            problem(v, st, JSR_PROB_BAD_HASH, rec.offset, rec.seq,
                    "checksum mismatch in a %s record of %u bytes",
                    rec.deleted ? "deleted" : "live", rl);
        if (rec.deleted) {
            st->deleted++;
            /* an erased record (its sequence marked, the index not yet told)
             * accounts for its sequence as well as the index's delete map */
            if (expect_next && rec.seq >= expect_next)
                expect_next = rec.seq + 1;
        } else {
            if (*prev_seq && rec.seq <= *prev_seq)
                problem(v, st, JSR_PROB_BACKWARDS, rec.offset, rec.seq,
                        "sequence %llu follows %llu", (unsigned long long)rec.seq,
                        (unsigned long long)*prev_seq);
            else if (ix && ix->valid && expect_next && rec.seq > expect_next &&
                     rec.seq - expect_next > dmap_between(ix, expect_next - 1, rec.seq))
                problem(v, st, JSR_PROB_GAP, rec.offset, rec.seq,
                        "sequences %llu..%llu are missing and not deleted in the index",
                        (unsigned long long)expect_next, (unsigned long long)rec.seq - 1);
            *prev_seq = rec.seq;
            expect_next = rec.seq + 1;
            st->live++;
            st->live_bytes += rl;
            if (!st->first_seq) {
                st->first_seq = rec.seq;
                st->first_ts = rec.ts;
            }
            st->last_seq = rec.seq;
            st->last_ts = rec.ts;
        }
        if (v && v->record && !v->record(v->ud, &rec))
            goto done;
        pos += rl;
    }
done:
    if (!st->records && st->tombstones && !st->last_record_seq)
        st->last_record_seq = tomb_seq;
    if (ix && ix->valid) {
        /* the server trusts a consistent index; say where it and the records differ */
        if (ix->msgs != st->live)
            problem(v, st, JSR_PROB_INDEX, 0, 0,
                    "index says %llu messages, the records hold %llu (the server rebuilds "
                    "from the records when it notices)",
                    (unsigned long long)ix->msgs, (unsigned long long)st->live);
        else if (st->records && ix->last_seq != st->last_record_seq)
            problem(v, st, JSR_PROB_INDEX, 0, 0, "index says last sequence %llu, records end at %llu",
                    (unsigned long long)ix->last_seq, (unsigned long long)st->last_record_seq);
    }
    close(fd);
    free(mem);
    return 1;
}

int jsr_block_is_compressed(const char *path, char *err, size_t errlen)
{
    int fd = jsr_open_file(path, NULL, err, errlen);
    if (fd < 0)
        return -1;
    unsigned char b[5];
    ssize_t n = read(fd, b, sizeof b);
    int e = errno;
    close(fd);
    if (n < 0)
        return ERR("%s: read failed: %s", path, strerror(e)) - 1;
    /* "cmp", algorithm 1 (s2), then a uvarint size */
    return n == 5 && b[0] == 'c' && b[1] == 'm' && b[2] == 'p' && b[3] == 1;
}
