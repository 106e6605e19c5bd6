/* The server's keyed checksums: HighwayHash-64 keyed by SHA-256 of a name
 * (a stream directory name, "STREAM/CONSUMER", a Raft group name, or
 * "STREAM-N" for block N).  Used for meta.sum and block records. */
#ifndef JSR_METASUM_H
#define JSR_METASUM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t k[4];
} jsr_hhkey;

/* Derives the HighwayHash key from name.  Returns 1, or 0 if the digest
 * could not be computed (OpenSSL failure). */
int jsr_hhkey_from_name(const char *name, size_t len, jsr_hhkey *key);

uint64_t jsr_hh64(const jsr_hhkey *key, const void *data, size_t len);

/* Formats a checksum as meta.sum holds it: the 8 little-endian bytes in
 * lowercase hex, 16 chars, NUL-terminated. */
void jsr_sum_hex(uint64_t sum, char out[17]);

/* meta.sum for data under name's key; returns 0 on digest failure. */
int jsr_metasum(const char *name, const void *data, size_t len, char out[17]);

#endif
