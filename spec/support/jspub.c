/*
 * jspub - put a known, reproducible state into a NATS server's JetStream.
 *
 * Test helper for js-recover's specs: it creates the state that jscheck is
 * then expected to report back, so every payload is derived from its index
 * and a spec can recompute it (and its sha256) without talking to NATS.
 *
 * Usage:
 *   jspub --url nats://127.0.0.1:PORT [--user U --password P] [--timeout-ms N]
 *         --stream NAME [--subjects S1,S2,...]
 *         [--storage file|memory] [--retention limits|interest|workqueue]
 *         [--max-age-ms N]
 *         [--count N] [--payload-size BYTES]
 *         [--consumer DURABLE [--ack K] [--inactive-threshold-ms N]]
 *         [--delete SEQ]... [--purge-keep N] [--replicas N]
 *         [--placement-cluster NAME] [--placement-tag TAG]
 *
 * Steps, in this order:
 *  1. create (or, when identical, reuse) stream NAME on SUBJECTS (default:
 *     NAME itself), file storage, limits retention, unlimited age unless told;
 *  2. publish N messages (default 0), message i (1-based) going to subject
 *     SUBJECTS[(i-1) % #SUBJECTS] with payload
 *       - without --payload-size: the text "<subject>#<i>"
 *       - with --payload-size B:   B bytes, byte j (0-based) = (i + j) mod 256
 *     every publish waits for its JetStream ack;
 *  3. with --consumer: create (or reuse) durable pull consumer DURABLE,
 *     explicit ack, deliver all (inactive threshold N ms when given, the
 *     time after which the server deletes it without interest); then fetch K messages (default 0) and ack
 *     each one synchronously, so the ack floor is settled on exit;
 *  4. delete each --delete SEQ from the stream (repeatable);
 *  5. with --purge-keep N, purge all but the last N messages (0: all).
 * --replicas N creates the stream with N replicas (a cluster);
 * --placement-cluster / --placement-tag place it (a supercluster's cluster,
 * a server tag).
 *
 * Prints {"acked":K,"first_seq":F,"last_seq":L,"published":N,"stream":"NAME"}
 * where F and L are the stream sequences the server assigned to the first
 * and last message published by this run (0 when N is 0).
 *
 * Exit status: 0 success, 1 a libnats call failed ("jspub: <what failed>:
 * <status text>" on stderr), 2 bad usage.
 *
 * Build: cc -std=c11 -Wall -Wextra -O2 spec/support/jspub.c spec/support/jsutil.c -o build/jspub \
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

#define MAX_SUBJECTS 64
#define MAX_DELETES  256

/* a JSON string on stdout */
static void print_json_string(const char *s)
{
    Buf b = {0};
    buf_json_string(&b, s);
    if (!b.oom)
        fputs(b.data, stdout);
    free(b.data);
}

static bool parse_count(const char *opt, const char *v, long long min, long long *out)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || n < min)
    {
        fprintf(stderr, "jspub: %s: expected an integer >= %lld, got %s\n", opt, min, v);
        return false;
    }
    *out = n;
    return true;
}

typedef struct
{
    const char *url, *user, *password, *stream, *consumer, *pl_cluster, *pl_tag;
    char       *subjects_buf;               /* owns the strings in subjects[] */
    const char *subjects[MAX_SUBJECTS];
    int        nsubjects;
    jsStorageType     storage;
    jsRetentionPolicy retention;
    long long  max_age_ms, count, payload_size, ack, timeout_ms, inactive_ms, replicas, purge_keep;
    bool       purge;
    uint64_t   deletes[MAX_DELETES];
    int        ndeletes;
} Args;

static int parse_args(Args *a, int argc, char **argv)
{
    a->storage      = js_FileStorage;
    a->retention    = js_LimitsPolicy;
    a->payload_size = -1;
    a->timeout_ms   = 5000;

    for (int i = 1; i < argc; i++)
    {
        const char *o = argv[i];
        if (i + 1 >= argc)
        {
            fprintf(stderr, "jspub: %s: missing value or unknown option\n", o);
            return 2;
        }
        const char *v = argv[++i];
        long long  n;

        if (strcmp(o, "--url") == 0)           a->url = v;
        else if (strcmp(o, "--user") == 0)     a->user = v;
        else if (strcmp(o, "--password") == 0) a->password = v;
        else if (strcmp(o, "--stream") == 0)   a->stream = v;
        else if (strcmp(o, "--consumer") == 0) a->consumer = v;
        else if (strcmp(o, "--subjects") == 0)
        {
            free(a->subjects_buf);
            a->subjects_buf = malloc(strlen(v) + 1);
            if (a->subjects_buf == NULL)
            {
                fputs("jspub: out of memory\n", stderr);
                return 1;
            }
            strcpy(a->subjects_buf, v);
            a->nsubjects = 0;
            for (char *tok = strtok(a->subjects_buf, ","); tok != NULL; tok = strtok(NULL, ","))
            {
                if (a->nsubjects == MAX_SUBJECTS)
                {
                    fprintf(stderr, "jspub: --subjects: more than %d\n", MAX_SUBJECTS);
                    return 2;
                }
                a->subjects[a->nsubjects++] = tok;
            }
        }
        else if (strcmp(o, "--storage") == 0)
        {
            if (strcmp(v, "file") == 0)        a->storage = js_FileStorage;
            else if (strcmp(v, "memory") == 0) a->storage = js_MemoryStorage;
            else { fprintf(stderr, "jspub: --storage: %s\n", v); return 2; }
        }
        else if (strcmp(o, "--retention") == 0)
        {
            if (strcmp(v, "limits") == 0)         a->retention = js_LimitsPolicy;
            else if (strcmp(v, "interest") == 0)  a->retention = js_InterestPolicy;
            else if (strcmp(v, "workqueue") == 0) a->retention = js_WorkQueuePolicy;
            else { fprintf(stderr, "jspub: --retention: %s\n", v); return 2; }
        }
        else if (strcmp(o, "--max-age-ms") == 0)
        {
            if (!parse_count(o, v, 0, &a->max_age_ms)) return 2;
        }
        else if (strcmp(o, "--replicas") == 0)
        {
            if (!parse_count(o, v, 1, &a->replicas)) return 2;
        }
        else if (strcmp(o, "--placement-cluster") == 0)
            a->pl_cluster = v;
        else if (strcmp(o, "--placement-tag") == 0)
            a->pl_tag = v;
        else if (strcmp(o, "--purge-keep") == 0)
        {
            if (!parse_count(o, v, 0, &a->purge_keep)) return 2;
            a->purge = true;
        }
        else if (strcmp(o, "--inactive-threshold-ms") == 0)
        {
            if (!parse_count(o, v, 0, &a->inactive_ms)) return 2;
        }
        else if (strcmp(o, "--count") == 0)
        {
            if (!parse_count(o, v, 0, &a->count)) return 2;
        }
        else if (strcmp(o, "--payload-size") == 0)
        {
            if (!parse_count(o, v, 0, &a->payload_size)) return 2;
        }
        else if (strcmp(o, "--ack") == 0)
        {
            if (!parse_count(o, v, 0, &a->ack)) return 2;
        }
        else if (strcmp(o, "--timeout-ms") == 0)
        {
            if (!parse_count(o, v, 1, &a->timeout_ms)) return 2;
        }
        else if (strcmp(o, "--delete") == 0)
        {
            if (!parse_count(o, v, 1, &n)) return 2;
            if (a->ndeletes == MAX_DELETES)
            {
                fprintf(stderr, "jspub: --delete: more than %d\n", MAX_DELETES);
                return 2;
            }
            a->deletes[a->ndeletes++] = (uint64_t) n;
        }
        else
        {
            fprintf(stderr, "jspub: unknown option %s\n", o);
            return 2;
        }
    }
    if (a->url == NULL || a->stream == NULL || (a->user == NULL) != (a->password == NULL))
    {
        fputs("usage: jspub --url URL [--user U --password P] [--timeout-ms N] --stream NAME\n"
              "             [--subjects S1,S2,...] [--storage file|memory]\n"
              "             [--retention limits|interest|workqueue] [--max-age-ms N]\n"
              "             [--count N] [--payload-size BYTES]\n"
              "             [--consumer DURABLE [--ack K] [--inactive-threshold-ms N]]\n"
              "             [--delete SEQ]... [--purge-keep N] [--replicas N]\n"
              "             [--placement-cluster NAME] [--placement-tag TAG]\n", stderr);
        return 2;
    }
    if (a->inactive_ms > 0 && a->consumer == NULL)
    {
        fputs("jspub: --inactive-threshold-ms needs --consumer\n", stderr);
        return 2;
    }
    if (a->ack > 0 && a->consumer == NULL)
    {
        fputs("jspub: --ack needs --consumer\n", stderr);
        return 2;
    }
    if (a->nsubjects == 0)
    {
        a->subjects[0] = a->stream;
        a->nsubjects   = 1;
    }
    return 0;
}

static natsStatus create_stream(jsCtx *js, jsOptions *jo, const Args *a)
{
    jsStreamConfig sc;
    jsPlacement    pl;
    const char     *tags[1] = { a->pl_tag };
    jsErrCode      jerr = 0;
    natsStatus     s    = jsStreamConfig_Init(&sc);

    if (s != NATS_OK)
        return fail(s, 0, "jsStreamConfig_Init");
    if (a->pl_cluster != NULL || a->pl_tag != NULL)
    {
        if ((s = jsPlacement_Init(&pl)) != NATS_OK)
            return fail(s, 0, "jsPlacement_Init");
        /* libnats writes the cluster whether set or not (strlen of NULL) */
        pl.Cluster = a->pl_cluster != NULL ? a->pl_cluster : "";
        if (a->pl_tag != NULL)
        {
            pl.Tags    = tags;
            pl.TagsLen = 1;
        }
        sc.Placement = &pl;
    }
    sc.Name        = a->stream;
    sc.Subjects    = (const char **) a->subjects;
    sc.SubjectsLen = a->nsubjects;
    sc.Storage     = a->storage;
    sc.Retention   = a->retention;
    sc.MaxAge      = (int64_t) a->max_age_ms * 1000000;
    if (a->replicas > 0)
        sc.Replicas = a->replicas;
    s = js_AddStream(NULL, js, &sc, jo, &jerr);
    if (s != NATS_OK)
        return fail(s, jerr, "js_AddStream(%s)", a->stream);
    return NATS_OK;
}

static natsStatus publish(jsCtx *js, const Args *a, uint64_t *first_seq, uint64_t *last_seq)
{
    size_t       cap  = a->payload_size > 0 ? (size_t) a->payload_size : 0;
    char         *buf = NULL;
    jsPubOptions po;
    natsStatus   s    = jsPubOptions_Init(&po);

    if (s != NATS_OK)
        return fail(s, 0, "jsPubOptions_Init");
    /* If another stream also listens on a subject, the message must still
     * land in ours, or the sequences we report would be meaningless. */
    po.ExpectStream = a->stream;
    if (cap > 0 && (buf = malloc(cap)) == NULL)
        return fail(NATS_NO_MEMORY, 0, "allocating a %zu byte payload", cap);

    for (long long i = 1; i <= a->count && s == NATS_OK; i++)
    {
        const char *subj = a->subjects[(i - 1) % a->nsubjects];
        char       text[512];
        const char *data = text;
        int        len;

        if (a->payload_size >= 0)
        {
            for (size_t j = 0; j < cap; j++)
                buf[j] = (char) (unsigned char) ((i + (long long) j) % 256);
            data = buf;
            len  = (int) cap;
        }
        else
        {
            len = snprintf(text, sizeof text, "%s#%lld", subj, i);
            if (len < 0 || (size_t) len >= sizeof text)
            {
                s = fail(NATS_INVALID_ARG, 0, "payload for subject %s too long", subj);
                break;
            }
        }

        jsPubAck  *pa   = NULL;
        jsErrCode jerr  = 0;
        /* a stream just created in a cluster may have no leader yet:
         * nobody got the message, so it is sent again, up to 10 s */
        for (int tries = 0; (s = js_Publish(&pa, js, subj, data, len, &po, &jerr)) == NATS_NO_RESPONDERS
                            && tries < 200; tries++)
            nats_Sleep(50);
        if (s != NATS_OK)
        {
            fail(s, jerr, "js_Publish(%s, #%lld)", subj, i);
            break;
        }
        if (i == 1)
            *first_seq = pa->Sequence;
        *last_seq = pa->Sequence;
        jsPubAck_Destroy(pa);
    }
    free(buf);
    return s;
}

static natsStatus consume(jsCtx *js, jsOptions *jo, const Args *a, long long *acked)
{
    jsConsumerConfig cc;
    jsSubOptions     so;
    natsSubscription *sub = NULL;
    jsErrCode        jerr = 0;
    natsStatus       s    = jsConsumerConfig_Init(&cc);

    if (s != NATS_OK)
        return fail(s, 0, "jsConsumerConfig_Init");
    cc.Durable       = a->consumer;
    cc.AckPolicy     = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.InactiveThreshold = (int64_t) a->inactive_ms * 1000000;
    for (int tries = 0; (s = js_AddConsumer(NULL, js, a->stream, &cc, jo, &jerr)) == NATS_NO_RESPONDERS
                        && tries < 200; tries++)
        nats_Sleep(50);
    if (s != NATS_OK)
        return fail(s, jerr, "js_AddConsumer(%s, %s)", a->stream, a->consumer);
    if (a->ack == 0)
        return NATS_OK;

    /* Bind to the consumer made above rather than letting the subscribe call
     * create one: libnats deletes consumers it created itself when the
     * subscription goes away, and this one must outlive us. */
    if ((s = jsSubOptions_Init(&so)) != NATS_OK)
        return fail(s, 0, "jsSubOptions_Init");
    so.Stream   = a->stream;
    so.Consumer = a->consumer;
    s = js_PullSubscribe(&sub, js, NULL, a->consumer, jo, &so, &jerr);
    if (s != NATS_OK)
        return fail(s, jerr, "js_PullSubscribe(%s, %s)", a->stream, a->consumer);

    while (s == NATS_OK && *acked < a->ack)
    {
        natsMsgList list = {0};
        long long   want = a->ack - *acked;
        jerr = 0;
        s = natsSubscription_Fetch(&list, sub, want > 256 ? 256 : (int) want, a->timeout_ms, &jerr);
        if (s != NATS_OK)
        {
            fail(s, jerr, "natsSubscription_Fetch(%s, %s) after %lld acks",
                 a->stream, a->consumer, *acked);
            break;
        }
        for (int i = 0; i < list.Count && s == NATS_OK; i++)
        {
            /* Synchronous so the server has applied every ack before we
             * exit and jscheck looks at the ack floor. */
            jerr = 0;
            s = natsMsg_AckSync(list.Msgs[i], jo, &jerr);
            if (s != NATS_OK)
                fail(s, jerr, "natsMsg_AckSync(%s, %s)", a->stream, a->consumer);
            else
                (*acked)++;
        }
        natsMsgList_Destroy(&list);
    }

    natsSubscription_Destroy(sub);
    return s;
}

static natsStatus purge(jsCtx *js, const jsOptions *jo, const Args *a)
{
    jsOptions  po   = *jo;
    jsErrCode  jerr = 0;
    po.Stream.Purge.Keep = (uint64_t) a->purge_keep;
    natsStatus s;
    for (int tries = 0; (s = js_PurgeStream(js, a->stream, &po, &jerr)) == NATS_NO_RESPONDERS && tries < 200;
         tries++)
        nats_Sleep(50);
    if (s != NATS_OK)
        return fail(s, jerr, "js_PurgeStream(%s, keep %lld)", a->stream, a->purge_keep);
    return NATS_OK;
}

static natsStatus delete_msgs(jsCtx *js, jsOptions *jo, const Args *a)
{
    for (int i = 0; i < a->ndeletes; i++)
    {
        jsErrCode  jerr = 0;
        natsStatus s;
        for (int tries = 0; (s = js_DeleteMsg(js, a->stream, a->deletes[i], jo, &jerr)) == NATS_NO_RESPONDERS
                            && tries < 200; tries++)
            nats_Sleep(50);
        if (s != NATS_OK)
            return fail(s, jerr, "js_DeleteMsg(%s, %" PRIu64 ")", a->stream, a->deletes[i]);
    }
    return NATS_OK;
}

int main(int argc, char **argv)
{
    jsutil_prog = "jspub";
    Args a = {0};
    int  rc = parse_args(&a, argc, argv);
    if (rc != 0)
    {
        free(a.subjects_buf);
        return rc;
    }

    natsOptions    *opts = NULL;
    natsConnection *nc   = NULL;
    jsCtx          *js   = NULL;
    jsOptions      jo;
    uint64_t       first_seq = 0, last_seq = 0;
    long long      acked = 0;
    natsStatus     s;

    if ((s = natsOptions_Create(&opts)) != NATS_OK)
        fail(s, 0, "natsOptions_Create");
    else if ((s = natsOptions_SetURL(opts, a.url)) != NATS_OK)
        fail(s, 0, "natsOptions_SetURL(%s)", a.url);
    else if (a.user != NULL && (s = natsOptions_SetUserInfo(opts, a.user, a.password)) != NATS_OK)
        fail(s, 0, "natsOptions_SetUserInfo");
    else if ((s = natsOptions_SetTimeout(opts, (int64_t) a.timeout_ms)) != NATS_OK)
        fail(s, 0, "natsOptions_SetTimeout");
    else if ((s = natsOptions_SetAllowReconnect(opts, false)) != NATS_OK)
        fail(s, 0, "natsOptions_SetAllowReconnect");
    else if ((s = natsOptions_SetName(opts, "jspub")) != NATS_OK)
        fail(s, 0, "natsOptions_SetName");
    else if ((s = natsConnection_Connect(&nc, opts)) != NATS_OK)
        fail(s, 0, "natsConnection_Connect(%s)", a.url);
    else if ((s = jsOptions_Init(&jo)) != NATS_OK)
        fail(s, 0, "jsOptions_Init");
    else
    {
        jo.Wait = (int64_t) a.timeout_ms;
        if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
            fail(s, 0, "natsConnection_JetStream");
        if (s == NATS_OK)
            s = create_stream(js, &jo, &a);
        if (s == NATS_OK)
            s = publish(js, &a, &first_seq, &last_seq);
        if (s == NATS_OK && a.consumer != NULL)
            s = consume(js, &jo, &a, &acked);
        if (s == NATS_OK)
            s = delete_msgs(js, &jo, &a);
        if (s == NATS_OK && a.purge)
            s = purge(js, &jo, &a);
    }

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    natsStatus cs = nats_CloseAndWait(2000);
    if (cs != NATS_OK && s == NATS_OK)
        s = fail(cs, 0, "nats_CloseAndWait");

    if (s == NATS_OK)
    {
        printf("{\"acked\":%lld,\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
               ",\"published\":%lld,\"stream\":", acked, first_seq, last_seq, a.count);
        print_json_string(a.stream);
        fputs("}\n", stdout);
    }
    free(a.subjects_buf);
    return s == NATS_OK ? 0 : 1;
}
