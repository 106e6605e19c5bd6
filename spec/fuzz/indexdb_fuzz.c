/* libFuzzer target for 2.10+ msgs/index.db (src/indexdb.c).
 * Input: the state bytes (what is left once the trailing hash is taken
 * off and, encrypted, the seal opened).  Properties: the parser answers
 * every input with OK, MALFORMED (a message naming the file and a byte
 * offset) or NEWER, never reads out of bounds; on OK every subject lies
 * inside the copy it keeps, every delete map is sorted, holds no more
 * sequences than its bits could and none twice, every block is found by
 * its index, and the consistency test runs; the whole input as a file
 * with its hash appended passes the checksum test and one changed bit
 * fails it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsr/indexdb.h"

static jsr_hhkey key;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        if (!jsr_hhkey_from_name("PLAIN", 5, &key))
            abort();
        ready = 1;
    }
    char err[512];
    jsr_indexdb db;
    jsr_indexdb_status r = jsr_indexdb_parse(data, size, &db, "index.db", err, sizeof err);
    if (r == JSR_IDB_MALFORMED) {
        if (!strstr(err, "index.db: "))
            abort();
    } else if (r == JSR_IDB_NEWER) {
        if (db.version <= JSR_INDEXDB_NEWEST || !strstr(err, "is newer than js-recover knows"))
            abort();
        jsr_indexdb_free(&db);
    } else if (r == JSR_IDB_OK) {
        for (size_t i = 0; i < db.nsubjects; i++) {
            const jsr_indexdb_subject *s = &db.subjects[i];
            if (s->subject < db.plain || s->subject + s->len > db.plain + size)
                abort();
        }
        for (size_t i = 0; i < db.nblocks; i++) {
            const jsr_indexdb_block *b = &db.blocks[i];
            /* a node's 2,048 (or 4,096) bits take at least 266 bytes */
            if (b->dmap_len > (size / 266 + 1) * 4096)
                abort();
            for (size_t k = 1; k < b->dmap_len; k++)
                if (b->dmap[k - 1] >= b->dmap[k])
                    abort();
            const jsr_indexdb_block *f = jsr_indexdb_block_find(&db, b->index);
            if (!f || f->index != b->index)
                abort();
        }
        (void)jsr_indexdb_consistent(&db);
        jsr_indexdb_free(&db);
    } else {
        abort();
    }

    /* the checksum over the bytes as stored */
    unsigned char *file = malloc(size + 8);
    if (!file)
        abort();
    if (size)
        memcpy(file, data, size);
    uint64_t h = jsr_hh64(&key, file, size);
    for (int i = 0; i < 8; i++)
        file[size + i] = (unsigned char)(h >> (8 * i));
    if (!jsr_indexdb_checksum_ok(file, size + 8, &key))
        abort();
    file[size ? size / 2 : size] ^= 1;
    if (jsr_indexdb_checksum_ok(file, size + 8, &key))
        abort();
    free(file);

    /* a delete map on its own, anywhere in the input */
    uint64_t *seqs;
    size_t n, used;
    char why[160];
    if (jsr_seqset_decode(data, size, &seqs, &n, &used, why, sizeof why)) {
        if (used > size)
            abort();
        free(seqs);
    }
    return 0;
}
