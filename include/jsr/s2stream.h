/* The S2 stream format (Snappy framing): what nats-server 2.10+ writes in a
 * message block stored with `compression: s2` (after a "cmp" header, see
 * block.h), and what natscli's stream.tar.s2 holds.
 *
 * A stream is chunks of a 1-byte type and a 3-byte little-endian length:
 *   0xff        stream identifier, "S2sTwO" or "sNaPpY";
 *   0x00        compressed: 4-byte masked CRC-32C of the decoded data,
 *               then an S2 block (s2.h);
 *   0x01        uncompressed: 4-byte masked CRC-32C, then the data;
 *   0x02..0x7f  reserved, must not be skipped: an error;
 *   0x80..0xfe  skippable (padding, S2's index).
 * masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8.  Every chunk's CRC is
 * checked, so a flipped bit in a compressed block is found even where the
 * decoded bytes would still parse. */
#ifndef JSR_S2STREAM_H
#define JSR_S2STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the stream src[0..n) into dst (capacity dstlen); *outlen is the
 * decoded size.  Output beyond dstlen is an error, so the caller bounds
 * memory by the size it expects.  Returns 1, or 0 with err naming the
 * problem and its byte offset in src. */
int jsr_s2_stream_decode(const unsigned char *src, size_t n, unsigned char *dst, size_t dstlen,
                         size_t *outlen, char *err, size_t errlen);

/* CRC-32C (Castagnoli) of p[0..n), continuing from crc (0 to start). */
uint32_t jsr_crc32c(uint32_t crc, const unsigned char *p, size_t n);

#endif
