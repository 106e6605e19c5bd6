/*
 * jscheck - report, as JSON, what a NATS server's JetStream actually serves.
 *
 * Test helper for js-recover's specs: the specs compare this report with what
 * they expect a recovered store to contain, so the report must only depend on
 * server state (keys sorted, streams and consumers sorted by name, no
 * timestamps).
 *
 * Usage:
 *   jscheck --url nats://127.0.0.1:PORT [--user U --password P]  (or --creds FILE)
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
 * Build: cc -std=c11 -Wall -Wextra -O2 spec/support/jscheck.c spec/support/jsutil.c -o build/jscheck \
 *            $(pkg-config --cflags --libs libnats libcrypto)
 */
#include <nats/nats.h>

#include "jsutil.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- output */

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

        char digest[65];
        int  n = natsMsg_GetDataLength(m);
        if (!sha256_hex(n > 0 ? natsMsg_GetData(m) : "", n > 0 ? (size_t) n : 0, digest))
        {
            natsMsg_Destroy(m);
            s = fail(NATS_ERR, 0, "SHA-256 of message %" PRIu64 " (OpenSSL)", seq);
            break;
        }

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
    fputs("usage: jscheck --url nats://HOST:PORT [--user U --password P | --creds FILE]\n"
          "               [--timeout-ms N] [--messages STREAM]\n", stderr);
}

int main(int argc, char **argv)
{
    jsutil_prog = "jscheck";
    const char *url = NULL, *user = NULL, *password = NULL, *msgs_stream = NULL;
    const char *creds = NULL; /* a user's .creds (operator mode) */
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
        else if (strcmp(a, "--creds") == 0)
            creds = v;
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
    else if (creds != NULL && (s = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL)) != NATS_OK)
        fail(s, 0, "natsOptions_SetUserCredentialsFromFiles(%s)", creds);
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
