/* What the test helpers (jscheck, jspub, jsload) share: JSON built in
 * memory (written only when complete, so a failure never leaves half an
 * answer for a spec to misparse), error lines, SHA-256 of payloads. */
#ifndef JSR_SPEC_JSUTIL_H
#define JSR_SPEC_JSUTIL_H

#include <nats/nats.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct
{
    char  *data;
    size_t len, cap;
    bool   oom; /* set once an append failed: the output must not be used */
} Buf;

void buf_add(Buf *b, const char *s, size_t n);
void buf_str(Buf *b, const char *s);
/* short fragments only: longer than 512 bytes marks the buffer failed */
void buf_fmt(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_u64(Buf *b, uint64_t v);
void buf_i64(Buf *b, int64_t v);
/* a JSON string; bytes >= 0x80 pass through, so valid UTF-8 stays valid */
void buf_json_string(Buf *b, const char *s);
/* a member's key; *first tracks whether a comma is needed */
void buf_key(Buf *b, bool *first, const char *key);

/* The program name on error lines ("<prog>: <what>: <status>"). */
extern const char *jsutil_prog;

/* Prints "<prog>: <what>: <status text> (jetstream error N)" on stderr and
 * returns s: the status alone says e.g. "Not Found"; the JetStream code
 * tells a missing stream from a missing consumer. */
natsStatus fail(natsStatus s, jsErrCode jerr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* SHA-256 of data as 64 hex digits (OpenSSL); false if OpenSSL fails. */
bool sha256_hex(const void *data, size_t n, char out[65]);

#endif
