#define _GNU_SOURCE
/* libFuzzer target for the message block scanner (src/block.c): any bytes
 * as a block file, scanned as the last block (torn-tail rules) and as a
 * middle block; it must never read out of bounds, and its counts must add
 * up (every record is live or deleted).  A 2.10+ compressed block ("cmp")
 * is decoded first; one that does not decode is refused with a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsr/block.h"

static char path[64];
static jsr_hhkey key;
static jsr_block_buf buf;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/jsr-fuzz-block-%d.blk", (int)getpid());
        if (!jsr_hhkey_from_name("S-1", 3, &key))
            abort();
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    for (int last = 0; last < 2; last++) {
        jsr_block_stats st;
        uint64_t prev = 0;
        char err[512];
        jsr_block_visitor v = {NULL, NULL, NULL};
        err[0] = 0;
        if (!jsr_block_scan(path, &key, NULL, last, &prev, &buf, &v, &st, NULL, err, sizeof err)) {
            /* only a compressed block (2.10+) that does not decode is
             * refused whole, and it must say why */
            if (size >= 3 && memcmp(data, "cmp", 3) == 0 && err[0])
                continue;
            abort();
        }
        if (st.live + st.deleted != st.records || st.size != size)
            abort();
    }
    return 0;
}
