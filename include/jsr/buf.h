/* A growable byte buffer: the one place output is assembled before it is
 * written, so every writer shares the same out-of-memory handling. */
#ifndef JSR_BUF_H
#define JSR_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* set once an allocation failed; later appends are no-ops */
} jsr_buf;

void jsr_buf_init(jsr_buf *b);
void jsr_buf_free(jsr_buf *b);
void jsr_buf_add(jsr_buf *b, const void *p, size_t n);
void jsr_buf_addc(jsr_buf *b, char c);
void jsr_buf_adds(jsr_buf *b, const char *s);
void jsr_buf_addf(jsr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
