/* Snappy-framed S2 stream writer (include/jsr/s2write.h). */
#include "jsr/s2write.h"

#include <stdint.h>
#include <string.h>

#include "jsr/s2stream.h"

void jsr_s2w_stream_id(unsigned char *out)
{
    memcpy(out, "\xff\x06\x00\x00sNaPpY", JSR_S2W_ID_LEN);
}

size_t jsr_s2w_chunk(unsigned char *out, const unsigned char *data, size_t n)
{
    if (n > JSR_S2W_CHUNK)
        return 0;
    uint32_t crc = jsr_crc32c(0, data, n);
    uint32_t masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    size_t len = n + 4;
    out[0] = 0x01;
    out[1] = (unsigned char)len;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)(len >> 16);
    for (int i = 0; i < 4; i++)
        out[4 + i] = (unsigned char)(masked >> (8 * i));
    memcpy(out + JSR_S2W_CHUNK_HDR, data, n);
    return JSR_S2W_CHUNK_HDR + n;
}
