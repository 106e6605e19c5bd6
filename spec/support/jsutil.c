/* Shared by the test helpers; see jsutil.h. */
#include "jsutil.h"

#include <openssl/evp.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *jsutil_prog = "helper";

void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap)
    {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
        {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap  = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_str(Buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_fmt(Buf *b, const char *fmt, ...)
{
    char    tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof tmp)
    {
        b->oom = true; /* only short fragments are formatted; longer is a bug */
        return;
    }
    buf_add(b, tmp, (size_t) n);
}

void buf_u64(Buf *b, uint64_t v)
{
    buf_fmt(b, "%" PRIu64, v);
}

void buf_i64(Buf *b, int64_t v)
{
    buf_fmt(b, "%" PRId64, v);
}

void buf_json_string(Buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++)
    {
        switch (*p)
        {
            case '"':  buf_add(b, "\\\"", 2); break;
            case '\\': buf_add(b, "\\\\", 2); break;
            case '\b': buf_add(b, "\\b", 2); break;
            case '\f': buf_add(b, "\\f", 2); break;
            case '\n': buf_add(b, "\\n", 2); break;
            case '\r': buf_add(b, "\\r", 2); break;
            case '\t': buf_add(b, "\\t", 2); break;
            default:
                if (*p < 0x20 || *p == 0x7f)
                {
                    char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf]};
                    buf_add(b, esc, sizeof esc);
                }
                else
                    buf_add(b, (const char *) p, 1);
        }
    }
    buf_add(b, "\"", 1);
}

void buf_key(Buf *b, bool *first, const char *key)
{
    if (!*first)
        buf_add(b, ",", 1);
    *first = false;
    buf_json_string(b, key);
    buf_add(b, ":", 1);
}

natsStatus fail(natsStatus s, jsErrCode jerr, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", jsutil_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s", natsStatus_GetText(s));
    if (jerr != 0)
        fprintf(stderr, " (jetstream error %d)", (int) jerr);
    fputc('\n', stderr);
    return s;
}

bool sha256_hex(const void *data, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     md[32];
    unsigned int      mdlen = 0;
    if (EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return false;
    for (int i = 0; i < 32; i++)
    {
        out[2 * i]     = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return true;
}
