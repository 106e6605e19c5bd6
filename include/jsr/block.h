/* Message blocks (msgs/N.blk) and their 2.9 index files (N.idx).
 *
 * Record: total_len u32 (bit 31: has headers) | seq u64 (bit 63: deleted)
 *         | ts i64 | subj_len u16 | subject | [hdr_len u32 | headers]
 *         | payload | hash u64
 * hash = HighwayHash-64 keyed by SHA-256("STREAM-N") over seq, ts, subject,
 * headers (without hdr_len) and payload.
 *
 * A block is read in chunks through one reused buffer, so memory stays
 * bounded whatever the block size; the bytes of each record are hashed in
 * place (seq and ts are slid next to the subject first, so the hashed bytes
 * are contiguous and one call of the SIMD hash covers them). */
#ifndef JSR_BLOCK_H
#define JSR_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "jsr/crypto.h"
#include "jsr/metasum.h"

#define JSR_REC_HDR 22
#define JSR_REC_MIN 30 /* header + hash: an empty record */
#define JSR_REC_MAX (32u << 20) /* the server treats longer records as corrupt */
#define JSR_HBIT 0x80000000u
#define JSR_EBIT 0x8000000000000000ull
/* 2.10+: a delete tombstone, an empty record whose sequence (with this bit)
 * names a message removed from an earlier block; not a message itself */
#define JSR_TBIT 0x4000000000000000ull

typedef struct {
    uint64_t offset; /* in the block file */
    uint32_t len;    /* total record length */
    uint64_t seq;    /* without the deleted bit */
    int64_t ts;
    int deleted;     /* deleted bit, seq 0, below the index's first, or in its delete map */
    int tombstone;   /* a 2.10+ delete tombstone (deleted too): seq is the message it removed */
    int marked;      /* deleted in its own bytes (deleted bit or seq 0), not by an index only */
    int hash_ok;
    const unsigned char *subject;
    size_t subject_len;
    const unsigned char *headers; /* NULL when none */
    size_t headers_len;
    const unsigned char *payload;
    size_t payload_len;
} jsr_record;

typedef enum {
    JSR_PROB_BAD_HASH,
    JSR_PROB_BAD_LENGTH,   /* a length no record can have: the rest is unreadable */
    JSR_PROB_TRUNCATED,    /* a record runs past the end of a block that is not the last */
    JSR_PROB_TORN_TAIL,    /* a partial last record of the last block: a crash mid-write */
    JSR_PROB_BACKWARDS,    /* a live sequence not above the one before */
    JSR_PROB_GAP,          /* sequences missing that the index does not account for */
    JSR_PROB_INDEX         /* the index disagrees with the records (the server rebuilds) */
} jsr_problem_kind;

const char *jsr_problem_name(jsr_problem_kind k);

/* 2.9's per-block index: counts, first/last, the delete map, last hash. */
typedef struct {
    int present;
    int valid;
    uint64_t msgs, bytes, first_seq, last_seq, ndel;
    int64_t first_ts, last_ts;
    unsigned char lchk[8];
    uint64_t *dmap; /* sorted */
    size_t dmap_len;
} jsr_block_index;

/* Reads path (N.idx); a missing file gives present = 0, a malformed one
 * valid = 0.  Returns 0 only on an I/O error (err set). */
int jsr_block_index_read(const char *path, jsr_block_index *ix, char *err, size_t errlen);
void jsr_block_index_free(jsr_block_index *ix);

typedef struct {
    uint64_t records, live, deleted;
    uint64_t first_seq, last_seq; /* live records; 0 when none */
    int64_t first_ts, last_ts;
    uint64_t live_bytes;  /* total length of live records */
    uint64_t size;        /* bytes in the file */
    uint64_t last_record_seq; /* the last record's sequence, deleted or not */
    unsigned char last_hash[8];
    uint64_t problems;
    uint64_t tombstones; /* 2.10+ delete tombstones (not in records) */
    int compressed; /* the file was S2-compressed: offsets are in the decoded block */
} jsr_block_stats;

typedef struct {
    /* called per record (NULL: verify only); return 0 to stop */
    int (*record)(void *ud, const jsr_record *r);
    /* called per problem */
    void (*problem)(void *ud, jsr_problem_kind kind, uint64_t offset, uint64_t seq,
                    const char *message);
    void *ud;
} jsr_block_visitor;

/* A reusable read buffer; one per caller, kept across blocks. */
typedef struct {
    unsigned char *data;
    size_t cap;
} jsr_block_buf;

void jsr_block_buf_free(jsr_block_buf *b);

/* Scans the block file at path.  key: the block's hash key; ix: its index
 * (may be NULL); last: it is the stream's last block (a partial final
 * record is then a torn tail, not corruption); prev_seq: the last live
 * sequence before this block, updated; dec: the block's cipher when it is
 * encrypted (NULL otherwise), applied to the bytes as they are read.  Returns 0 only when the file cannot
 * be read at all (err set); problems inside it go to the visitor. */
int jsr_block_scan(const char *path, const jsr_hhkey *key, const jsr_block_index *ix, int last,
                   uint64_t *prev_seq, jsr_block_buf *buf, const jsr_block_visitor *v,
                   jsr_block_stats *st, jsr_block_cipher *dec, char *err, size_t errlen);

/* Parses an index file's bytes (already decrypted), as jsr_block_index_read. */
int jsr_block_index_parse(const unsigned char *b, size_t n, jsr_block_index *ix, char *err,
                          size_t errlen);

/* A compressed block (2.10+ `compression: s2`): "cmp", the algorithm (1 =
 * s2), a uvarint of the decoded size (2.11.x: of the compressed bytes after
 * the header, which the server never reads back), an S2 stream (s2stream.h) of all but
 * the block's last 8 bytes, and those 8 bytes (the last record's hash) as
 * they are; encryption, if any, covers the whole file.  Reads fd (size
 * bytes, dec its cipher or NULL) from the start: returns 0 when the block
 * is not compressed, 1 with the decoded block in *out (malloc'd, *outlen
 * bytes), -1 on error with err naming path and what is wrong. */
#define JSR_BLOCK_DECODED_MAX (256u << 20)
int jsr_block_decompress(int fd, uint64_t size, jsr_block_cipher *dec, unsigned char **out,
                         size_t *outlen, const char *path, char *err, size_t errlen);
/* The same on a (plaintext) block's bytes already in memory. */
int jsr_block_decompress_bytes(const unsigned char *bytes, size_t n, unsigned char **out,
                               size_t *outlen, const char *path, char *err, size_t errlen);

/* What the first bytes of a block say: 0 plain records, 1 compressed
 * ("cmp" + algorithm + original size, 2.10+).  -1 on I/O error. */
int jsr_block_is_compressed(const char *path, char *err, size_t errlen);

/* Marks the plaintext record at r (avail bytes from r to the block's end)
 * deleted: bit 63 of its sequence set and, with key, its hash computed
 * again over the changed sequence, as 2.10+ check every record's hash,
 * deleted or not, when they rebuild a block (2.9 skips deleted records).
 * Returns 0 when r does not hold a whole record. */
int jsr_record_mark_deleted(unsigned char *r, size_t avail, const jsr_hhkey *key);

#endif
