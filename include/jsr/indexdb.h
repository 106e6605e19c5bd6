/* msgs/index.db: the whole-stream state 2.10+ servers write (docs/FORMAT.md
 * "Stream state file (msgs/index.db)").
 *
 * File: body | HighwayHash-64 of body (keyed by SHA-256 of the stream's
 * name, like meta.sum).  body is the state in the clear, or (encrypted
 * store) nonce || AEAD seal under the stream's meta.key asset key.
 * State: magic 11, version, uvarints msgs, bytes, first seq, varint first
 * time, uvarint last seq, varint last time; subjects; blocks (each with
 * its delete map, server/avl SequenceSet encoding); last block index and
 * the hash of its last record.
 *
 * Reading is two steps so the checksum is tested on the bytes as stored
 * (ciphertext when encrypted), and the caller decrypts in between. */
#ifndef JSR_INDEXDB_H
#define JSR_INDEXDB_H

#include <stddef.h>
#include <stdint.h>

#include "jsr/metasum.h"

/* the newest version js-recover reads, and the newest server it knows */
#define JSR_INDEXDB_NEWEST 4
#define JSR_NEWEST_SERVER "2.15.3"
#define JSR_INDEXDB_MAX (256u << 20)

typedef struct {
    const unsigned char *subject; /* into jsr_indexdb.plain */
    size_t len;
    uint64_t total;
    uint32_t first_block, last_block;
} jsr_indexdb_subject;

typedef struct {
    uint32_t index;
    uint64_t bytes, first_seq, last_seq, ndel;
    int64_t first_ts, last_ts; /* absolute (ns) */
    uint64_t ttls, schedules;  /* version 2+, 3+; 0 before */
    uint64_t msgs;             /* last - first + 1 - deleted, as the server counts */
    uint64_t *dmap;            /* deleted sequences, sorted */
    size_t dmap_len;
} jsr_indexdb_block;

typedef struct {
    int version;
    uint64_t msgs, bytes, first_seq, last_seq;
    int64_t first_ts, last_ts;
    jsr_indexdb_subject *subjects;
    size_t nsubjects;
    jsr_indexdb_block *blocks;
    size_t nblocks;
    uint32_t last_block;     /* the block that was newest when it was written */
    unsigned char lchk[8];   /* that block's last record hash then */
    unsigned char *plain;    /* owned copy of the state's bytes */
} jsr_indexdb;

typedef enum {
    JSR_IDB_OK = 1,
    JSR_IDB_MALFORMED, /* err names the file and the byte offset */
    JSR_IDB_NEWER,     /* db->version above JSR_INDEXDB_NEWEST: nothing else read */
} jsr_indexdb_status;

/* 1 when the file's last 8 bytes are the hash of the rest (n >= 8). */
int jsr_indexdb_checksum_ok(const unsigned char *file, size_t n, const jsr_hhkey *key);

/* Parses the state's bytes (the body in the clear, without the trailing
 * hash).  On JSR_IDB_MALFORMED err says where; db is then freed. */
jsr_indexdb_status jsr_indexdb_parse(const unsigned char *b, size_t n, jsr_indexdb *db,
                                     const char *path, char *err, size_t errlen);
void jsr_indexdb_free(jsr_indexdb *db);

/* 1 when the stream's totals equal the sum of its blocks, the server's
 * test before it trusts the file (it deletes it otherwise). */
int jsr_indexdb_consistent(const jsr_indexdb *db);

/* The block with that index, or NULL (blocks are in file order). */
const jsr_indexdb_block *jsr_indexdb_block_find(const jsr_indexdb *db, uint32_t index);

/* Decodes one delete map (avl SequenceSet, versions 1 and 2) at b (n bytes
 * left): the sorted sequences in *out (malloc'd, *outlen), *used bytes.
 * 0 with why set when it is malformed. */
int jsr_seqset_decode(const unsigned char *b, size_t n, uint64_t **out, size_t *outlen,
                      size_t *used, char *why, size_t whylen);

#endif
