/* Streaming tar headers (include/jsr/tar.h).  Go's archive/tar, which
 * nats-server reads a restore with, takes ustar and GNU long names. */
#include "jsr/tar.h"

#include <stdio.h>
#include <string.h>

static void octal(unsigned char *field, size_t width, uint64_t v)
{
    /* width - 1 digits and a NUL, as ustar readers expect */
    field[width - 1] = 0;
    for (size_t i = width - 1; i > 0; i--) {
        field[i - 1] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
}

static void checksum(unsigned char *h)
{
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < JSR_TAR_BLOCK; i++)
        sum += h[i];
    octal(h + 148, 7, sum);
    h[155] = ' ';
}

static void header(unsigned char *h, const char *name, size_t namelen, uint64_t size,
                   unsigned mode, int64_t mtime, char type)
{
    memset(h, 0, JSR_TAR_BLOCK);
    memcpy(h, name, namelen > 100 ? 100 : namelen);
    octal(h + 100, 8, mode & 07777);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, size);
    octal(h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar  ", 8); /* GNU magic: long-name entries are GNU's */
    checksum(h);
}

size_t jsr_tar_padding(uint64_t size)
{
    return (size_t)((JSR_TAR_BLOCK - size % JSR_TAR_BLOCK) % JSR_TAR_BLOCK);
}

size_t jsr_tar_file_header(unsigned char *out, size_t cap, const char *name, size_t namelen,
                           uint64_t size, unsigned mode, int64_t mtime, char *err, size_t errlen)
{
    if (namelen == 0 || memchr(name, 0, namelen)) {
        snprintf(err, errlen, "tar: a file name must be non-empty and hold no NUL byte");
        return 0;
    }
    if (size > 077777777777ull) {
        snprintf(err, errlen, "tar: %.*s: %llu bytes, over the 11-digit size field", (int)namelen,
                 name, (unsigned long long)size);
        return 0;
    }
    size_t need = JSR_TAR_BLOCK;
    if (namelen > 100)
        need += JSR_TAR_BLOCK + namelen + 1 + jsr_tar_padding(namelen + 1);
    if (cap < need) {
        snprintf(err, errlen, "tar: header buffer of %zu bytes, %zu needed", cap, need);
        return 0;
    }
    size_t o = 0;
    if (namelen > 100) {
        /* GNU: an 'L' entry whose data is the whole name, NUL-terminated */
        header(out, "././@LongLink", 13, namelen + 1, 0644, 0, 'L');
        o = JSR_TAR_BLOCK;
        memcpy(out + o, name, namelen);
        memset(out + o + namelen, 0, 1 + jsr_tar_padding(namelen + 1));
        o += namelen + 1 + jsr_tar_padding(namelen + 1);
    }
    header(out + o, name, namelen, size, mode, mtime, '0');
    return o + JSR_TAR_BLOCK;
}
