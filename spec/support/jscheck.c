/*
 * jscheck - report, as JSON, what a NATS server's JetStream actually serves.
 *
 * Test helper for js-recover's specs: the specs compare this report with what
 * they expect a recovered store to contain, so the report must only depend on
 * server state (keys sorted, streams and consumers sorted by name, no
 * timestamps).
 *
 * Usage:
 *   jscheck --url nats://127.0.0.1:PORT [--user U --password P]
 *           [--timeout-ms N] [--messages STREAM]
 *
 * Without --messages, prints
 *   {"streams":{"<NAME>":{"bytes":N,"consumers":{"<CNAME>":{
 *       "ack_floor_consumer_seq":N,"ack_floor_stream_seq":N,
 *       "delivered_consumer_seq":N,"delivered_stream_seq":N,
 *       "num_ack_pending":N,"num_pending":N,"num_replicas":N}},
 *     "first_seq":N,"last_seq":N,"max_age_ns":N,"messages":N,"replicas":N,
 *     "retention":"limits|interest|workqueue","storage":"file|memory",
 *     "subjects":[...]}}}
 * "subjects" keeps the order of the stream configuration; "num_replicas" is
 * the consumer's configured value, so 0 means "same as the stream".
 *
 * With --messages STREAM, prints
 *   {"messages":[{"seq":N,"sha256":"<hex of payload>","subject":"..."}...],
 *    "stream":"STREAM"}
 * fetching every sequence from first_seq to last_seq with js_GetMsg; sequences
 * the server reports as missing (deleted or purged) are left out.
 *
 * Exit status: 0 success (JSON on stdout), 1 a libnats call failed (one line
 * "jscheck: <what failed>: <status text>" on stderr, nothing on stdout),
 * 2 bad usage.
 *
 * Build: cc -std=c11 -Wall -Wextra -O2 spec/support/jscheck.c -o build/jscheck \
 *            $(pkg-config --cflags --libs libnats)
 */
#include <nats/nats.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- output */

/* The whole report is built in memory and written only on success, so a
 * failure half-way never leaves truncated JSON for the spec to misparse. */
typedef struct
{
    char   *data;
    size_t len;
    size_t cap;
    bool   oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
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

static void buf_str(Buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_u64(Buf *b, uint64_t v)
{
    char tmp[32];
    int  n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    buf_add(b, tmp, (size_t) n);
}

static void buf_i64(Buf *b, int64_t v)
{
    char tmp[32];
    int  n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    buf_add(b, tmp, (size_t) n);
}

/* Subjects are arbitrary bytes as far as the server is concerned; bytes
 * >= 0x80 are passed through, so valid UTF-8 stays valid. */
static void buf_json_string(Buf *b, const char *s)
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

/* Key of a JSON member; `first` tracks whether a comma is needed. */
static void buf_key(Buf *b, bool *first, const char *key)
{
    if (!*first)
        buf_add(b, ",", 1);
    *first = false;
    buf_json_string(b, key);
    buf_add(b, ":", 1);
}

/* ---------------------------------------------------------------- sha256 */

/* Written from FIPS 180-4 so the helper needs nothing beyond libnats; the
 * spec checks it against coreutils' sha256sum. */
typedef struct
{
    uint32_t h[8];
    uint8_t  block[64];
    size_t   used;
    uint64_t total;
} Sha256;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_init(Sha256 *c)
{
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(c->h, iv, sizeof iv);
    c->used  = 0;
    c->total = 0;
}

static void sha256_compress(Sha256 *c, const uint8_t *blk)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t) blk[4 * i] << 24 | (uint32_t) blk[4 * i + 1] << 16
             | (uint32_t) blk[4 * i + 2] << 8 | (uint32_t) blk[4 * i + 3];
    for (int i = 16; i < 64; i++)
    {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }

    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++)
    {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25))
                    + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22))
                    + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_update(Sha256 *c, const uint8_t *p, size_t n)
{
    c->total += n;
    while (n > 0)
    {
        size_t take = 64 - c->used;
        if (take > n)
            take = n;
        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used == 64)
        {
            sha256_compress(c, c->block);
            c->used = 0;
        }
    }
}

static void sha256_hex(Sha256 *c, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t bits = c->total * 8;
    uint8_t  pad  = 0x80;
    uint8_t  len[8];

    sha256_update(c, &pad, 1);
    pad = 0;
    while (c->used != 56)
        sha256_update(c, &pad, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t) (bits >> (56 - 8 * i));
    sha256_update(c, len, 8);

    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            out[i * 8 + j] = hex[(c->h[i] >> (28 - 4 * j)) & 0xf];
    out[64] = '\0';
}

/* ---------------------------------------------------------------- errors */

static natsStatus fail(natsStatus s, jsErrCode jerr, const char *fmt, ...)
{
    va_list ap;
    fputs("jscheck: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s", natsStatus_GetText(s));
    /* The status alone says e.g. "Not Found"; the JetStream code tells a
     * missing stream from a missing consumer. */
    if (jerr != 0)
        fprintf(stderr, " (jetstream error %d)", (int) jerr);
    fputc('\n', stderr);
    return s;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static const char *retention_name(jsRetentionPolicy r)
{
    switch (r)
    {
        case js_LimitsPolicy:    return "limits";
        case js_InterestPolicy:  return "interest";
        case js_WorkQueuePolicy: return "workqueue";
    }
    return "unknown";
}

static const char *storage_name(jsStorageType t)
{
    switch (t)
    {
        case js_FileStorage:   return "file";
        case js_MemoryStorage: return "memory";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- report */

static natsStatus report_consumer(Buf *out, jsCtx *js, jsOptions *jo,
                                  const char *stream, const char *name)
{
    jsConsumerInfo *ci   = NULL;
    jsErrCode      jerr  = 0;
    natsStatus     s     = js_GetConsumerInfo(&ci, js, stream, name, jo, &jerr);
    bool           first = true;

    if (s != NATS_OK)
        return fail(s, jerr, "js_GetConsumerInfo(%s, %s)", stream, name);

    buf_str(out, "{");
    buf_key(out, &first, "ack_floor_consumer_seq");
    buf_u64(out, ci->AckFloor.Consumer);
    buf_key(out, &first, "ack_floor_stream_seq");
    buf_u64(out, ci->AckFloor.Stream);
    buf_key(out, &first, "delivered_consumer_seq");
    buf_u64(out, ci->Delivered.Consumer);
    buf_key(out, &first, "delivered_stream_seq");
    buf_u64(out, ci->Delivered.Stream);
    buf_key(out, &first, "num_ack_pending");
    buf_i64(out, ci->NumAckPending);
    buf_key(out, &first, "num_pending");
    buf_u64(out, ci->NumPending);
    buf_key(out, &first, "num_replicas");
    buf_i64(out, ci->Config != NULL ? ci->Config->Replicas : 0);
    buf_str(out, "}");

    jsConsumerInfo_Destroy(ci);
    return NATS_OK;
}

static natsStatus report_consumers(Buf *out, jsCtx *js, jsOptions *jo, const char *stream)
{
    jsConsumerNamesList *names = NULL;
    jsErrCode           jerr   = 0;
    natsStatus          s      = js_ConsumerNames(&names, js, stream, jo, &jerr);
    bool                first  = true;

    /* libnats signals "stream has no consumers" as NATS_NOT_FOUND with no
     * JetStream error code; a missing stream comes with one. */
    if (s == NATS_NOT_FOUND && jerr == 0)
    {
        buf_str(out, "{}");
        return NATS_OK;
    }
    if (s != NATS_OK)
        return fail(s, jerr, "js_ConsumerNames(%s)", stream);

    qsort(names->List, (size_t) names->Count, sizeof names->List[0], cmp_names);
    buf_str(out, "{");
    for (int i = 0; i < names->Count && s == NATS_OK; i++)
    {
        buf_key(out, &first, names->List[i]);
        s = report_consumer(out, js, jo, stream, names->List[i]);
    }
    buf_str(out, "}");

    jsConsumerNamesList_Destroy(names);
    return s;
}

static natsStatus report_stream(Buf *out, jsCtx *js, jsOptions *jo, const char *name)
{
    jsStreamInfo   *si    = NULL;
    jsErrCode      jerr   = 0;
    natsStatus     s      = js_GetStreamInfo(&si, js, name, jo, &jerr);
    bool           first  = true;

    if (s != NATS_OK)
        return fail(s, jerr, "js_GetStreamInfo(%s)", name);
    if (si->Config == NULL)
    {
        jsStreamInfo_Destroy(si);
        return fail(NATS_ERR, 0, "js_GetStreamInfo(%s) returned no config", name);
    }

    const jsStreamConfig *cfg = si->Config;
    buf_str(out, "{");
    buf_key(out, &first, "bytes");
    buf_u64(out, si->State.Bytes);
    buf_key(out, &first, "consumers");
    s = report_consumers(out, js, jo, name);
    if (s == NATS_OK)
    {
        buf_key(out, &first, "first_seq");
        buf_u64(out, si->State.FirstSeq);
        buf_key(out, &first, "last_seq");
        buf_u64(out, si->State.LastSeq);
        buf_key(out, &first, "max_age_ns");
        buf_i64(out, cfg->MaxAge);
        buf_key(out, &first, "messages");
        buf_u64(out, si->State.Msgs);
        buf_key(out, &first, "replicas");
        buf_i64(out, cfg->Replicas);
        buf_key(out, &first, "retention");
        buf_json_string(out, retention_name(cfg->Retention));
        buf_key(out, &first, "storage");
        buf_json_string(out, storage_name(cfg->Storage));
        buf_key(out, &first, "subjects");
        buf_str(out, "[");
        for (int i = 0; i < cfg->SubjectsLen; i++)
        {
            if (i > 0)
                buf_str(out, ",");
            buf_json_string(out, cfg->Subjects[i]);
        }
        buf_str(out, "]}");
    }

    jsStreamInfo_Destroy(si);
    return s;
}

static natsStatus report_streams(Buf *out, jsCtx *js, jsOptions *jo)
{
    jsStreamNamesList *names = NULL;
    jsErrCode         jerr   = 0;
    natsStatus        s      = js_StreamNames(&names, js, jo, &jerr);
    bool              first  = true;

    /* An account without streams comes back as NATS_NOT_FOUND, not as an
     * empty list. */
    if (s == NATS_NOT_FOUND && jerr == 0)
    {
        buf_str(out, "{\"streams\":{}}\n");
        return NATS_OK;
    }
    if (s != NATS_OK)
        return fail(s, jerr, "js_StreamNames");

    qsort(names->List, (size_t) names->Count, sizeof names->List[0], cmp_names);
    buf_str(out, "{\"streams\":{");
    for (int i = 0; i < names->Count && s == NATS_OK; i++)
    {
        buf_key(out, &first, names->List[i]);
        s = report_stream(out, js, jo, names->List[i]);
    }
    buf_str(out, "}}\n");

    jsStreamNamesList_Destroy(names);
    return s;
}

static natsStatus report_messages(Buf *out, jsCtx *js, jsOptions *jo, const char *stream)
{
    jsStreamInfo *si    = NULL;
    jsErrCode    jerr   = 0;
    natsStatus   s      = js_GetStreamInfo(&si, js, stream, jo, &jerr);
    bool         first  = true;

    if (s != NATS_OK)
        return fail(s, jerr, "js_GetStreamInfo(%s)", stream);

    uint64_t lo = si->State.FirstSeq;
    uint64_t hi = si->State.LastSeq;
    /* An empty stream reports first_seq = last_seq + 1 (or 0/0). */
    bool empty = si->State.Msgs == 0;
    jsStreamInfo_Destroy(si);

    buf_str(out, "{\"messages\":[");
    for (uint64_t seq = lo; !empty && seq <= hi && s == NATS_OK; seq++)
    {
        natsMsg *m = NULL;
        jerr = 0;
        s = js_GetMsg(&m, js, stream, seq, jo, &jerr);
        if (s == NATS_NOT_FOUND && jerr == JSNoMessageFoundErr)
        {
            /* Deleted or purged out from under us: not part of the content. */
            s = NATS_OK;
            continue;
        }
        if (s != NATS_OK)
        {
            fail(s, jerr, "js_GetMsg(%s, %" PRIu64 ")", stream, seq);
            break;
        }

        Sha256 h;
        char   digest[65];
        int    n = natsMsg_GetDataLength(m);
        sha256_init(&h);
        if (n > 0)
            sha256_update(&h, (const uint8_t *) natsMsg_GetData(m), (size_t) n);
        sha256_hex(&h, digest);

        bool f2 = true;
        if (!first)
            buf_str(out, ",");
        first = false;
        buf_str(out, "{");
        buf_key(out, &f2, "seq");
        buf_u64(out, seq);
        buf_key(out, &f2, "sha256");
        buf_json_string(out, digest);
        buf_key(out, &f2, "subject");
        buf_json_string(out, natsMsg_GetSubject(m));
        buf_str(out, "}");
        natsMsg_Destroy(m);

        if (seq == UINT64_MAX)
            break;
    }
    buf_str(out, "],\"stream\":");
    buf_json_string(out, stream);
    buf_str(out, "}\n");
    return s;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fputs("usage: jscheck --url nats://HOST:PORT [--user U --password P]\n"
          "               [--timeout-ms N] [--messages STREAM]\n", stderr);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *user = NULL, *password = NULL, *msgs_stream = NULL;
    long long  timeout_ms = 5000;

    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        {
            usage();
            return 0;
        }
        if (i + 1 >= argc)
        {
            fprintf(stderr, "jscheck: %s: missing value or unknown option\n", a);
            usage();
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--user") == 0)
            user = v;
        else if (strcmp(a, "--password") == 0)
            password = v;
        else if (strcmp(a, "--messages") == 0)
            msgs_stream = v;
        else if (strcmp(a, "--timeout-ms") == 0)
        {
            char *end = NULL;
            timeout_ms = strtoll(v, &end, 10);
            if (end == v || *end != '\0' || timeout_ms <= 0)
            {
                fprintf(stderr, "jscheck: --timeout-ms: not a positive integer: %s\n", v);
                return 2;
            }
        }
        else
        {
            fprintf(stderr, "jscheck: unknown option %s\n", a);
            usage();
            return 2;
        }
    }
    if (url == NULL || (user == NULL) != (password == NULL))
    {
        usage();
        return 2;
    }

    natsOptions    *opts = NULL;
    natsConnection *nc   = NULL;
    jsCtx          *js   = NULL;
    jsOptions      jo;
    Buf            out   = {0};
    natsStatus     s;

    if ((s = natsOptions_Create(&opts)) != NATS_OK)
        fail(s, 0, "natsOptions_Create");
    else if ((s = natsOptions_SetURL(opts, url)) != NATS_OK)
        fail(s, 0, "natsOptions_SetURL(%s)", url);
    else if (user != NULL && (s = natsOptions_SetUserInfo(opts, user, password)) != NATS_OK)
        fail(s, 0, "natsOptions_SetUserInfo");
    else if ((s = natsOptions_SetTimeout(opts, (int64_t) timeout_ms)) != NATS_OK)
        fail(s, 0, "natsOptions_SetTimeout");
    /* A checker that silently reconnects could report a different server's
     * view; fail instead. */
    else if ((s = natsOptions_SetAllowReconnect(opts, false)) != NATS_OK)
        fail(s, 0, "natsOptions_SetAllowReconnect");
    else if ((s = natsOptions_SetName(opts, "jscheck")) != NATS_OK)
        fail(s, 0, "natsOptions_SetName");
    else if ((s = natsConnection_Connect(&nc, opts)) != NATS_OK)
        fail(s, 0, "natsConnection_Connect(%s)", url);
    else if ((s = jsOptions_Init(&jo)) != NATS_OK)
        fail(s, 0, "jsOptions_Init");
    else
    {
        jo.Wait = (int64_t) timeout_ms;
        if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
            fail(s, 0, "natsConnection_JetStream");
        else if (msgs_stream != NULL)
            s = report_messages(&out, js, &jo, msgs_stream);
        else
            s = report_streams(&out, js, &jo);
    }

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    /* Waiting for the library's threads to finish keeps valgrind/ASan from
     * reporting their stacks as leaks; done before printing so that exit
     * status 1 always means "nothing on stdout". */
    natsStatus cs = nats_CloseAndWait(2000);
    if (cs != NATS_OK && s == NATS_OK)
        s = fail(cs, 0, "nats_CloseAndWait");

    if (s == NATS_OK && out.oom)
    {
        fputs("jscheck: building output: out of memory\n", stderr);
        s = NATS_NO_MEMORY;
    }
    if (s == NATS_OK && (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0))
    {
        fputs("jscheck: writing output failed\n", stderr);
        s = NATS_ERR;
    }
    free(out.data);
    return s == NATS_OK ? 0 : 1;
}
