/* S2 block decoding: the compression nats-server uses for the meta group's
 * snapshot (S2-compressed JSON of the stream assignments), compressed
 * consumer assignments (meta op 9) and compressed stream messages (op 14).
 *
 * An S2 block is a Snappy block (uvarint decoded length, then literals and
 * copies) plus one extension: a "copy with 1-byte offset" whose offset is 0
 * repeats the previous copy's offset, with a longer length encoding.  The
 * decoder is written from the two format descriptions (Snappy's
 * format_description.txt, S2's README "Format Extensions"); it never reads
 * or writes out of bounds whatever the input, and says what is wrong and
 * at which byte. */
#ifndef JSR_S2_H
#define JSR_S2_H

#include <stddef.h>
#include <stdint.h>

/* Largest decoded size accepted.  The format allows 2^32 - 1; the biggest
 * thing js-recover decodes is a meta snapshot (a few MB for thousands of
 * streams), so anything above this is treated as corrupt rather than as a
 * reason to allocate gigabytes. */
#define JSR_S2_MAX_DECODED (256u << 20)

/* Reads the decoded length from the block's uvarint header.  On success
 * sets *len and *hdr (the header's size in bytes) and returns 1; else 0
 * with err set. */
int jsr_s2_decoded_len(const unsigned char *src, size_t n, size_t *len, size_t *hdr,
                       char *err, size_t errlen);

/* Decodes the block src[0..n) into dst, which must hold exactly the length
 * jsr_s2_decoded_len gives (dstlen).  Returns 1, or 0 with err naming the
 * problem and the input offset where it was found. */
int jsr_s2_decode(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen,
                  char *err, size_t errlen);

/* Checks the whole block without writing anything: every element fits the
 * input and the output, and together they produce exactly the length the
 * header states (*len).  A header can claim up to the limit in a few
 * bytes, so callers check before they allocate. */
int jsr_s2_check(const unsigned char *src, size_t n, size_t *len, char *err, size_t errlen);

#endif
