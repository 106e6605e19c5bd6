/* Writing an S2 stream (s2stream.h) that any S2 or Snappy reader takes:
 * the "sNaPpY" identifier and uncompressed chunks only.  nats-server and
 * natscli read stream.tar.s2 with S2's reader, which accepts Snappy
 * framing, so no compressor is needed (docs/FORMAT.md). */
#ifndef JSR_S2WRITE_H
#define JSR_S2WRITE_H

#include <stddef.h>

/* the most data one uncompressed chunk carries (the Snappy framing limit) */
#define JSR_S2W_CHUNK 65536
#define JSR_S2W_ID_LEN 10
#define JSR_S2W_CHUNK_HDR 8

/* The stream identifier chunk (JSR_S2W_ID_LEN bytes) into out. */
void jsr_s2w_stream_id(unsigned char *out);

/* One uncompressed chunk of data[0..n), n <= JSR_S2W_CHUNK, into out
 * (JSR_S2W_CHUNK_HDR + n bytes); returns the bytes written, 0 if n is
 * too large. */
size_t jsr_s2w_chunk(unsigned char *out, const unsigned char *data, size_t n);

#endif
