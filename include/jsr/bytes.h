/* Little-endian integers as the server writes them (block records and
 * indexes, Raft entries and snapshots, S2 frame checksums): one reader for
 * every format, from bytes the caller has already bounds-checked. */
#ifndef JSR_BYTES_H
#define JSR_BYTES_H

#include <stdint.h>

static inline uint32_t jsr_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t jsr_le64(const unsigned char *p)
{
    return (uint64_t)jsr_le32(p) | (uint64_t)jsr_le32(p + 4) << 32;
}

#endif
