#define _GNU_SOURCE
/* libFuzzer target for 2.9's block index files (msgs/N.idx, src/block.c)
 * and the block scan that uses one (delete map, first sequence, gaps).
 * Input: u16 length L (little endian) | L bytes of index file | the block.
 * Properties: parsing never fails on bytes it can read and never reads out
 * of bounds; a valid index's delete map is sorted and no longer than the
 * bytes it came from; the scan with the index adds up (every record is
 * live or deleted) whether the block is the last or not. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsr/block.h"

static char ipath[64], bpath[64];
static jsr_hhkey key;
static jsr_block_buf buf;

static void put(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ipath[0]) {
        snprintf(ipath, sizeof ipath, "/tmp/jsr-fuzz-index-%d.idx", (int)getpid());
        snprintf(bpath, sizeof bpath, "/tmp/jsr-fuzz-index-%d.blk", (int)getpid());
        if (!jsr_hhkey_from_name("S-1", 3, &key))
            abort();
    }
    if (size < 2)
        return 0;
    size_t il = (size_t)data[0] | (size_t)data[1] << 8;
    if (il > size - 2)
        il = size - 2;
    const uint8_t *idx = data + 2, *blk = data + 2 + il;
    size_t bl = size - 2 - il;
    put(ipath, idx, il);
    put(bpath, blk, bl);

    jsr_block_index ix;
    char err[512];
    if (!jsr_block_index_read(ipath, &ix, err, sizeof err) || !ix.present)
        abort();
    if (ix.valid) {
        if (ix.dmap_len > il)
            abort();
        for (size_t i = 1; i < ix.dmap_len; i++)
            if (ix.dmap[i - 1] > ix.dmap[i])
                abort();
    } else if (ix.dmap_len || ix.dmap) {
        abort();
    }
    for (int last = 0; last < 2; last++) {
        jsr_block_stats st;
        uint64_t prev = 0;
        jsr_block_visitor v = {NULL, NULL, NULL};
        err[0] = 0;
        if (!jsr_block_scan(bpath, &key, &ix, last, &prev, &buf, &v, &st, NULL, err, sizeof err)) {
            /* only a compressed block (2.10+) that does not decode is
             * refused whole, and it must say why */
            if (bl >= 3 && memcmp(blk, "cmp", 3) == 0 && err[0])
                continue;
            abort();
        }
        if (st.live + st.deleted != st.records || st.size != bl)
            abort();
    }
    jsr_block_index_free(&ix);
    return 0;
}
