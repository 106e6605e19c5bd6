/* A streaming tar writer (ustar, GNU long names): the snapshot a
 * nats-server restores is a tar of a stream's files (docs/FORMAT.md
 * "Snapshot and restore").  Only headers and padding are built here; the
 * caller streams each file's bytes in between, so no file is held whole. */
#ifndef JSR_TAR_H
#define JSR_TAR_H

#include <stddef.h>
#include <stdint.h>

#define JSR_TAR_BLOCK 512

/* The header block(s) of a regular file: one 512-byte block, or three when
 * the name needs a GNU long-name entry (over 100 bytes).  out must hold
 * 3 * 512 + the name's length rounded up to 512; returns the bytes
 * written, or 0 with err set (an empty name, a size past 8 GiB - 1). */
size_t jsr_tar_file_header(unsigned char *out, size_t cap, const char *name, size_t namelen,
                           uint64_t size, unsigned mode, int64_t mtime, char *err, size_t errlen);

/* Zero bytes that follow a file of size bytes, to the next 512 boundary. */
size_t jsr_tar_padding(uint64_t size);

#endif
