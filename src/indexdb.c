/* Reader for msgs/index.db (see jsr/indexdb.h).  Every length is checked
 * against the bytes left before it is used, and every error names the
 * file and the byte offset where the state stops making sense: a hostile
 * or torn file costs an error message, never a wild read. */
#include "jsr/indexdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsr/fsops.h"
#include "jsr/layout.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)
#define STATE_MAGIC 11
#define SEQSET_MAGIC 22
/* a node covers 32 words of 64 bits (version 1 of the set: 64 words) */
#define SEQSET_WORDS 32
#define SEQSET_V1_WORDS 64
/* deleted sequences kept in memory per file: 512 MiB of them at most */
#define SEQSET_MAX (64u << 20)

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int jsr_indexdb_checksum_ok(const unsigned char *file, size_t n, const jsr_hhkey *key)
{
    if (n < 8)
        return 0;
    return jsr_hh64(key, file, n - 8) == le(file + n - 8, 8);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int jsr_seqset_decode(const unsigned char *b, size_t n, uint64_t **out, size_t *outlen,
                      size_t *used, char *why, size_t whylen)
{
    *out = NULL;
    *outlen = 0;
    if (n < 10 || b[0] != SEQSET_MAGIC) {
        snprintf(why, whylen, "no delete map here (want magic %d and 10 bytes, have %zu bytes%s)",
                 SEQSET_MAGIC, n, n ? "" : "");
        return 0;
    }
    size_t words;
    if (b[1] == 1)
        words = SEQSET_V1_WORDS;
    else if (b[1] == 2)
        words = SEQSET_WORDS;
    else {
        snprintf(why, whylen, "delete map version %u (known: 1, 2)", b[1]);
        return 0;
    }
    uint64_t nodes = le(b + 2, 4);
    size_t per = 8 + words * 8 + 2;
    if (nodes > (n - 10) / per) {
        snprintf(why, whylen, "delete map of %llu nodes needs %llu bytes, %zu left",
                 (unsigned long long)nodes, (unsigned long long)(10 + nodes * per), n);
        return 0;
    }
    /* count first: the allocation is exactly what the bits say */
    size_t count = 0;
    const unsigned char *p = b + 10;
    for (uint64_t i = 0; i < nodes; i++, p += per)
        for (size_t w = 0; w < words; w++)
            count += (size_t)__builtin_popcountll(le(p + 8 + w * 8, 8));
    if (count > SEQSET_MAX) {
        snprintf(why, whylen, "delete map of %zu sequences (js-recover keeps at most %u)", count,
                 SEQSET_MAX);
        return 0;
    }
    uint64_t *v = count ? malloc(count * sizeof *v) : NULL;
    if (count && !v) {
        snprintf(why, whylen, "out of memory for %zu deleted sequences", count);
        return 0;
    }
    size_t k = 0;
    p = b + 10;
    for (uint64_t i = 0; i < nodes; i++, p += per) {
        uint64_t base = le(p, 8);
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = le(p + 8 + w * 8, 8);
            while (bits) {
                uint64_t seq = base + w * 64 + (uint64_t)__builtin_ctzll(bits);
                if (seq < base) {
                    free(v);
                    snprintf(why, whylen, "delete map node at base %llu overflows 64 bits",
                             (unsigned long long)base);
                    return 0;
                }
                v[k++] = seq;
                bits &= bits - 1;
            }
        }
    }
    /* nodes come in tree order (root first), not sorted; a crafted file
     * may repeat a node: each sequence once */
    if (k > 1) {
        qsort(v, k, sizeof *v, cmp_u64);
        size_t u = 1;
        for (size_t j = 1; j < k; j++)
            if (v[j] != v[u - 1])
                v[u++] = v[j];
        k = u;
    }
    *out = v;
    *outlen = k;
    *used = 10 + (size_t)nodes * per;
    return 1;
}

typedef struct {
    const unsigned char *b;
    size_t n, i;
    int bad;
    const char *what; /* the field being read when it went wrong */
    size_t at;
} rd;

static uint64_t u(rd *r, const char *what)
{
    if (r->bad)
        return 0;
    uint64_t v = 0;
    size_t start = r->i;
    for (unsigned shift = 0; r->i < r->n && shift < 64; shift += 7) {
        unsigned char c = r->b[r->i++];
        if (shift == 63 && c > 1)
            break;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = 1;
    r->what = what;
    r->at = start;
    return 0;
}

static int64_t s(rd *r, const char *what)
{
    uint64_t v = u(r, what);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* times are stored relative to the stream's first; the sum wraps as the
 * server's int64 arithmetic does (a crafted file must not overflow ours) */
static int64_t plus(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

void jsr_indexdb_free(jsr_indexdb *db)
{
    for (size_t i = 0; i < db->nblocks; i++)
        free(db->blocks[i].dmap);
    free(db->blocks);
    free(db->subjects);
    free(db->plain);
    memset(db, 0, sizeof *db);
}

static jsr_indexdb_status malformed(jsr_indexdb *db, rd *r, const char *path, char *err,
                                    size_t errlen)
{
    ERR("%s: %s at byte %zu: the state file is malformed (the server deletes it and "
        "rebuilds from the blocks)", path, r->what ? r->what : "?", r->at);
    jsr_indexdb_free(db);
    return JSR_IDB_MALFORMED;
}

jsr_indexdb_status jsr_indexdb_parse(const unsigned char *b, size_t n, jsr_indexdb *db,
                                     const char *path, char *err, size_t errlen)
{
    memset(db, 0, sizeof *db);
    rd r = {b, n, 0, 0, NULL, 0};
    if (n < 2 || b[0] != STATE_MAGIC) {
        r.what = n < 2 ? "file shorter than its 2-byte header" : "magic (want 11)";
        r.bad = 1;
        return malformed(db, &r, path, err, errlen);
    }
    db->version = b[1];
    if (db->version > JSR_INDEXDB_NEWEST) {
        ERR("%s: " JSR_INDEX_DB " version %d is newer than js-recover knows (newest known: %d, "
            "nats-server %s)", path, db->version, JSR_INDEXDB_NEWEST, JSR_NEWEST_SERVER);
        return JSR_IDB_NEWER;
    }
    if (db->version < 1) {
        r.what = "version 0";
        r.bad = 1;
        return malformed(db, &r, path, err, errlen);
    }
    db->plain = malloc(n ? n : 1);
    if (!db->plain) {
        ERR("%s: out of memory", path);
        r.bad = 1;
        return JSR_IDB_MALFORMED;
    }
    memcpy(db->plain, b, n);
    r.b = db->plain;
    r.i = 2;
    db->msgs = u(&r, "message count");
    db->bytes = u(&r, "byte count");
    db->first_seq = u(&r, "first sequence");
    int64_t base = s(&r, "first time");
    db->first_ts = base;
    db->last_seq = u(&r, "last sequence");
    db->last_ts = s(&r, "last time");
    uint64_t nsub = u(&r, "subject count");
    if (r.bad)
        return malformed(db, &r, path, err, errlen);
    /* each subject takes 3 bytes at least: no count beyond what the bytes hold */
    if (nsub > (n - r.i) / 3) {
        r.what = "subject count (more than the file can hold)", r.at = r.i, r.bad = 1;
        return malformed(db, &r, path, err, errlen);
    }
    if (nsub) {
        db->subjects = calloc((size_t)nsub, sizeof *db->subjects);
        if (!db->subjects) {
            r.what = "subjects (out of memory)", r.at = r.i, r.bad = 1;
            return malformed(db, &r, path, err, errlen);
        }
    }
    for (uint64_t i = 0; i < nsub; i++) {
        size_t at = r.i;
        uint64_t len = u(&r, "subject length");
        if (r.bad)
            return malformed(db, &r, path, err, errlen);
        if (len == 0)
            continue; /* the server skips an empty one, reading nothing more */
        if (len > n - r.i) {
            r.what = "subject length (past the end)", r.at = at, r.bad = 1;
            return malformed(db, &r, path, err, errlen);
        }
        jsr_indexdb_subject *sj = &db->subjects[db->nsubjects++];
        sj->subject = db->plain + r.i;
        sj->len = (size_t)len;
        r.i += (size_t)len;
        sj->total = u(&r, "subject message count");
        sj->first_block = (uint32_t)u(&r, "subject first block");
        /* version 4 always writes the last block; before, only when the
         * subject has more than one message */
        if (sj->total > 1 || db->version >= 4)
            sj->last_block = (uint32_t)u(&r, "subject last block");
        else
            sj->last_block = sj->first_block;
        if (r.bad)
            return malformed(db, &r, path, err, errlen);
    }
    uint64_t nblk = u(&r, "block count");
    if (r.bad)
        return malformed(db, &r, path, err, errlen);
    if (nblk > (n - r.i) / 7) {
        r.what = "block count (more than the file can hold)", r.at = r.i, r.bad = 1;
        return malformed(db, &r, path, err, errlen);
    }
    if (nblk) {
        db->blocks = calloc((size_t)nblk, sizeof *db->blocks);
        if (!db->blocks) {
            r.what = "blocks (out of memory)", r.at = r.i, r.bad = 1;
            return malformed(db, &r, path, err, errlen);
        }
    }
    size_t kept = 0;
    for (uint64_t i = 0; i < nblk; i++) {
        jsr_indexdb_block *bk = &db->blocks[db->nblocks++];
        size_t at = r.i;
        uint64_t idx = u(&r, "block index");
        if (!r.bad && idx > UINT32_MAX)
            r.what = "block index (above 2^32)", r.at = at, r.bad = 1;
        bk->index = (uint32_t)idx;
        bk->bytes = u(&r, "block bytes");
        bk->first_seq = u(&r, "block first sequence");
        bk->first_ts = plus(s(&r, "block first time"), base);
        bk->last_seq = u(&r, "block last sequence");
        bk->last_ts = plus(s(&r, "block last time"), base);
        bk->ndel = u(&r, "block delete count");
        if (db->version >= 2)
            bk->ttls = u(&r, "block TTL count");
        if (db->version >= 3)
            bk->schedules = u(&r, "block schedule count");
        if (r.bad)
            return malformed(db, &r, path, err, errlen);
        if (bk->ndel) {
            size_t used;
            char why[160];
            if (!jsr_seqset_decode(db->plain + r.i, n - r.i, &bk->dmap, &bk->dmap_len, &used, why,
                                   sizeof why)) {
                ERR("%s: block %u's delete map at byte %zu: %s (the server deletes the file "
                    "and rebuilds from the blocks)", path, bk->index, r.i, why);
                jsr_indexdb_free(db);
                return JSR_IDB_MALFORMED;
            }
            kept += bk->dmap_len;
            if (kept > SEQSET_MAX) {
                ERR("%s: more than %u deleted sequences in all", path, SEQSET_MAX);
                jsr_indexdb_free(db);
                return JSR_IDB_MALFORMED;
            }
            r.i += used;
        }
        /* the server's count: the span (wrapping as its does) less the deleted */
        uint64_t span = bk->last_seq - bk->first_seq + 1;
        bk->msgs = span > bk->ndel ? span - bk->ndel : 0;
    }
    uint64_t lb = u(&r, "last block index");
    if (r.bad)
        return malformed(db, &r, path, err, errlen);
    if (n - r.i < 8) {
        r.what = "last block's record hash (missing)", r.at = r.i, r.bad = 1;
        return malformed(db, &r, path, err, errlen);
    }
    db->last_block = (uint32_t)lb;
    memcpy(db->lchk, db->plain + r.i, 8);
    return JSR_IDB_OK;
}

const jsr_indexdb_block *jsr_indexdb_block_find(const jsr_indexdb *db, uint32_t index)
{
    /* blocks are written in order; a binary search with a linear fallback
     * keeps an out-of-order (crafted) file correct */
    size_t lo = 0, hi = db->nblocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (db->blocks[mid].index == index)
            return &db->blocks[mid];
        if (db->blocks[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = 0; i < db->nblocks; i++)
        if (db->blocks[i].index == index)
            return &db->blocks[i];
    return NULL;
}

int jsr_indexdb_consistent(const jsr_indexdb *db)
{
    /* the server loads the blocks with messages and the last one, sums
     * them and compares with the stream's totals; a difference makes it
     * delete the file and rebuild */
    uint64_t msgs = 0, bytes = 0, first = 0, last = 0;
    for (size_t i = 0; i < db->nblocks; i++) {
        const jsr_indexdb_block *b = &db->blocks[i];
        if (b->msgs == 0 && i + 1 != db->nblocks)
            continue;
        if (first == 0 || (b->first_seq < first && b->first_ts != 0))
            first = b->first_seq;
        if (b->last_seq > last)
            last = b->last_seq;
        msgs += b->msgs;
        bytes += b->bytes;
    }
    if ((db->first_seq > 1 && first > 1) || first > 1)
        return db->msgs == msgs && db->first_seq == first && db->last_seq == last &&
               db->bytes == bytes;
    return db->msgs == msgs && db->last_seq == last && db->bytes == bytes;
}
