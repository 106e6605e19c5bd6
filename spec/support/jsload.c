/*
 * jsload - the quorum-loss drill's workload, recorder and traffic generator.
 *
 * A libnats client for spec/support/drill.lua: it loads a cluster with the
 * kind of state operators run (R3 and R1 streams, every retention, days of
 * max_age and duplicate window, consumers with and without explicit
 * replicas, acks part-way, key-value buckets with history, a mirror, a
 * sourced stream, headers, payloads from 5 bytes to 70 KB), records
 * everything a server serves, and generates traffic while nodes die.
 * Every payload is derived from its stream and index, so runs repeat.
 *
 * Usage: jsload --url URL[,URL...] [--user U --password P | --creds F] [--timeout-ms N] COMMAND ...
 *
 *   setup --account ACME|BETA [--workload traffic] [--scale F]
 *         [--pin-tag T --pin-server NAME] [--lost-tag T --lost-server NAME]
 *       Creates the account's workload (see setup_acme/setup_beta).  R1
 *       streams are placed with --pin-tag (the node that will survive), R1
 *       consumers are re-created until --pin-server leads them; with
 *       --lost-tag, one R1 stream and one R1 consumer are put on that node
 *       (one that will die) on purpose.  --workload traffic creates only
 *       LOAD (R3 limits) and LOADQ (R3 work queue) with durable consumers
 *       reader and worker, for traffic.  Prints {"streams":N,"messages":N}.
 *   settle [--wait-ms N]
 *       Waits until every stream and consumer of the account has a leader
 *       and every replica is current with no lag, and mirrors and sources
 *       have caught up.  Prints {"settled":true,"waited_ms":N}; exit 1 with
 *       what is not settled when --wait-ms passes.
 *   dump
 *       Prints what the server serves to this account:
 *       {"streams":{"NAME":{"info":<$JS.API.STREAM.INFO reply>,
 *          "consumers":{"C":<$JS.API.CONSUMER.INFO reply>},
 *          "messages":[[seq,"subject","<sha256 of headers or empty>",
 *                       "<sha256 of payload>",payload_bytes(,"ID")],...]}}}
 *       ID: the payload's text before '|' when it starts with one (the
 *       "STREAM#N" jsload writes), so messages can be matched by id.
 *       Headers are digested as "key: value\n" lines, keys sorted, values in
 *       order.  Sequences the server reports missing are left out.
 *   meta          (system account) every server's $SYS.REQ.SERVER.PING.JSZ
 *                 reply (within a second), as a JSON array of the raw replies
 *   stepdown      (system account) asks the meta leader to step down
 *   api --subject SUBJ [--body JSON]
 *                 one JetStream API request; prints the reply (an error
 *                 reply is a failure)
 *   traffic --duration-ms N --out FILE [--pub STREAM:SUBJECT]... [--sub STREAM:DURABLE]...
 *       One thread per --pub publishes (synchronously, ack awaited) payloads
 *       "<STREAM>/<n>|..." and appends "P STREAM SEQ ID" to FILE for every
 *       acknowledged message; one thread per --sub fetches and acks each
 *       message synchronously, appending "A STREAM DURABLE SSEQ DSEQ" for
 *       every ack the server confirmed.  Lines are flushed one by one.
 *       Prints {"published":N,"acked_pubs":N,"acks":N,"pub_errors":N,
 *       "ack_errors":N}.  Failures after the start are counted, not fatal:
 *       nodes are expected to die while it runs.
 *
 * Exit status: 0 success, 1 a libnats or API call failed (one line
 * "jsload: <what>: <why>" on stderr), 2 bad usage.
 *
 * Build: cc -std=c11 -Wall -Wextra -O2 spec/support/jsload.c spec/support/jsutil.c -o build/jsload \
 *            $(pkg-config --cflags --libs libnats libcrypto) -lpthread -lm
 */
#define _GNU_SOURCE
#include <nats/nats.h>

#include "jsutil.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_DAY 86400000000000LL
#define NS_PER_HOUR 3600000000000LL
#define MAX_URLS 8
#define MAX_TRAFFIC 16

/* ---------------------------------------------------------------- context */

typedef struct
{
    const char *urls[MAX_URLS];
    int        nurls;
    char       *url_buf;
    const char *user, *password;
    const char *creds; /* a user's .creds file (operator mode) */
    int64_t    timeout_ms;

    natsConnection *nc;
    jsCtx          *js;
    jsOptions      jo;
} Ctx;

/* Whether an API reply is an error: {"type":"...","error":{...}}.  Only the
 * member right after "type" counts: a healthy stream info can carry an
 * "error" inside "sources" (a source not reachable yet), which is state. */
static bool api_error(const char *r)
{
    static const char type[] = "{\"type\":\"";
    if (strncmp(r, type, sizeof type - 1) != 0)
        return strncmp(r, "{\"error\":", 9) == 0;
    const char *end = strchr(r + sizeof type - 1, '"');
    return end != NULL && strncmp(end, "\",\"error\":", 10) == 0;
}

/* A JetStream API request with a JSON body.  The reply is returned in
 * *reply (malloc'd, NUL-terminated) when wanted.  A reply carrying an
 * "error" object is a failure, printed whole: it names the API's reason. */
static natsStatus api(Ctx *c, const char *subj, const char *body, char **reply)
{
    natsMsg    *m = NULL;
    natsStatus s;
    /* nobody answered (a stream or consumer just created, its leader not
     * elected yet): nobody got it either, so it is asked again, up to 10 s */
    for (int tries = 0;; tries++)
    {
        s = natsConnection_RequestString(&m, c->nc, subj, body ? body : "", c->timeout_ms);
        if (s != NATS_NO_RESPONDERS || tries >= 200)
            break;
        nats_Sleep(50);
    }
    if (s != NATS_OK)
        return fail(s, 0, "request %s", subj);
    int        n    = natsMsg_GetDataLength(m);
    const char *d   = natsMsg_GetData(m);
    char       *cpy = malloc((size_t) n + 1);
    if (cpy == NULL)
    {
        natsMsg_Destroy(m);
        return fail(NATS_NO_MEMORY, 0, "request %s: copying the reply", subj);
    }
    memcpy(cpy, d, (size_t) n);
    cpy[n] = '\0';
    natsMsg_Destroy(m);
    if (api_error(cpy))
    {
        fprintf(stderr, "jsload: request %s: %s\n", subj, cpy);
        free(cpy);
        return NATS_ERR;
    }
    if (reply)
        *reply = cpy;
    else
        free(cpy);
    return NATS_OK;
}

/* ---------------------------------------------------------------- payloads */

/* Deterministic per (stream, i): a 64-bit mix of both. */
static uint64_t mix(const char *stream, uint64_t i)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = stream; *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211ull;
    h ^= i + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Size log-uniform in [lo, hi]. */
static size_t payload_size(const char *stream, uint64_t i, size_t lo, size_t hi)
{
    uint64_t r = mix(stream, i);
    /* a few exact edges: the 64 KiB boundary and the extremes */
    switch (r % 50)
    {
        case 0: return lo;
        case 1: return hi;
        case 2: return 65536 <= hi ? 65536 : hi;
        default: break;
    }
    double f = (double) ((r >> 11) & 0xfffff) / (double) 0xfffff;
    double v = exp(log((double) lo) + f * (log((double) hi) - log((double) lo)));
    size_t n = (size_t) v;
    if (n < lo)
        n = lo;
    if (n > hi)
        n = hi;
    return n;
}

/* Half the payloads are text that compresses (so the servers' Raft logs
 * hold S2-compressed entries), half pseudo-random bytes that do not. */
static void fill_payload(char *buf, size_t n, const char *stream, uint64_t i)
{
    uint64_t r    = mix(stream, i * 7 + 3);
    int      head = snprintf(buf, n, "%s#%" PRIu64 "|", stream, i);
    size_t   j    = head < 0 ? 0 : (size_t) head;
    if (j > n)
        j = n;
    if (r & 1)
    {
        static const char words[] = "order shipped invoice paid customer warehouse region ";
        for (; j < n; j++)
            buf[j] = words[(j + i) % (sizeof words - 1)];
    }
    else
    {
        uint64_t x = r | 1;
        for (; j < n; j++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[j] = (char) (x & 0xff);
        }
    }
}

typedef struct
{
    const char *stream;
    uint64_t   count;
    size_t     min_size, max_size;
    const char *subjects[4]; /* message i goes to subjects[i % n] + "." + (i % 7) */
    int        every_header; /* every Nth message carries headers (0: none) */
    bool       msg_id;       /* those with headers also carry Nats-Msg-Id */
} PubSpec;

static natsStatus publish(Ctx *c, const PubSpec *p, uint64_t *published)
{
    jsPubOptions po;
    natsStatus   s = jsPubOptions_Init(&po);
    if (s != NATS_OK)
        return fail(s, 0, "jsPubOptions_Init");
    /* no ExpectStream here: 2.9 stores the Nats-Expected-Stream header with
     * the message, and a stream sourcing it then refuses every message
     * ("expected stream does not match") */
    int nsubj = 0;
    while (nsubj < 4 && p->subjects[nsubj])
        nsubj++;
    char *buf = malloc(p->max_size + 1);
    if (buf == NULL)
        return fail(NATS_NO_MEMORY, 0, "allocating a payload");
    for (uint64_t i = 1; i <= p->count && s == NATS_OK; i++)
    {
        char   subj[256];
        size_t n = payload_size(p->stream, i, p->min_size, p->max_size);
        fill_payload(buf, n, p->stream, i);
        snprintf(subj, sizeof subj, "%s.%" PRIu64, p->subjects[i % (uint64_t) nsubj], i % 7);
        natsMsg *m = NULL;
        if ((s = natsMsg_Create(&m, subj, NULL, buf, (int) n)) != NATS_OK)
        {
            fail(s, 0, "natsMsg_Create");
            break;
        }
        if (p->every_header > 0 && i % (uint64_t) p->every_header == 0)
        {
            char v[64];
            snprintf(v, sizeof v, "trace-%" PRIu64, mix(p->stream, i) % 100000);
            s = natsMsgHeader_Set(m, "X-Trace", v);
            if (s == NATS_OK)
                s = natsMsgHeader_Add(m, "X-Tag", "a");
            if (s == NATS_OK)
                s = natsMsgHeader_Add(m, "X-Tag", i % 2 ? "odd" : "even");
            if (s == NATS_OK && p->msg_id)
            {
                snprintf(v, sizeof v, "%s-%" PRIu64, p->stream, i);
                s = natsMsgHeader_Set(m, "Nats-Msg-Id", v);
            }
            if (s != NATS_OK)
            {
                natsMsg_Destroy(m);
                fail(s, 0, "setting headers");
                break;
            }
        }
        jsPubAck  *pa   = NULL;
        jsErrCode jerr  = 0;
        /* a stream just created may have no leader yet (newer servers elect
         * it after answering the create): nobody got the message, so it is
         * sent again, for up to 10 s */
        for (int tries = 0;; tries++)
        {
            jerr = 0;
            s = js_PublishMsg(&pa, c->js, m, &po, &jerr);
            if (s != NATS_NO_RESPONDERS || tries >= 200)
                break;
            nats_Sleep(50);
        }
        natsMsg_Destroy(m);
        if (s != NATS_OK)
        {
            fail(s, jerr, "js_PublishMsg(%s #%" PRIu64 ")", p->stream, i);
            break;
        }
        jsPubAck_Destroy(pa);
        (*published)++;
    }
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- setup */

typedef struct
{
    Ctx        *c;
    double     scale;
    const char *pin_tag, *pin_server, *lost_tag, *lost_server;
    uint64_t   streams, messages;
} Setup;

static uint64_t scaled(const Setup *su, uint64_t n)
{
    uint64_t v = (uint64_t) ((double) n * su->scale);
    return v < 10 ? 10 : v;
}

static natsStatus create_stream(Setup *su, const char *name, const char *cfg)
{
    char subj[256];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.CREATE.%s", name);
    natsStatus s = api(su->c, subj, cfg, NULL);
    if (s == NATS_OK)
        su->streams++;
    return s;
}

static natsStatus delete_consumer(Ctx *c, const char *stream, const char *name)
{
    char subj[512];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.DELETE.%s.%s", stream, name);
    return api(c, subj, "", NULL);
}

static natsStatus consumer_leader(Ctx *c, const char *stream, const char *name, char *out, size_t outlen)
{
    /* A new consumer's group elects its leader within a second or two. */
    for (int tries = 0; tries < 100; tries++)
    {
        jsConsumerInfo *ci   = NULL;
        jsErrCode      jerr  = 0;
        natsStatus     s     = js_GetConsumerInfo(&ci, c->js, stream, name, &c->jo, &jerr);
        if (s != NATS_OK)
            return fail(s, jerr, "js_GetConsumerInfo(%s, %s)", stream, name);
        bool have = ci->Cluster != NULL && ci->Cluster->Leader != NULL && ci->Cluster->Leader[0];
        if (have)
            snprintf(out, outlen, "%s", ci->Cluster->Leader);
        jsConsumerInfo_Destroy(ci);
        if (have)
            return NATS_OK;
        nats_Sleep(50);
    }
    return fail(NATS_TIMEOUT, 0, "consumer %s > %s has no leader", stream, name);
}

/* Creates a durable consumer; with `on` set (an R1 consumer), deletes and
 * re-creates it until that server leads it: 2.9 places an R1 consumer of an
 * R3 stream on a random one of the stream's peers, and the drill needs
 * each R1 asset on a known node. */
static natsStatus create_consumer(Setup *su, const char *stream, const char *name, const char *cfg,
                                  const char *on)
{
    char subj[512], body[4096];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, name);
    int n = snprintf(body, sizeof body, "{\"stream_name\":\"%s\",\"config\":%s}", stream, cfg);
    if (n < 0 || (size_t) n >= sizeof body)
        return fail(NATS_INVALID_ARG, 0, "consumer config for %s too long", name);
    for (int tries = 0; tries < 40; tries++)
    {
        natsStatus s = api(su->c, subj, body, NULL);
        if (s != NATS_OK || on == NULL)
            return s;
        char leader[256];
        if ((s = consumer_leader(su->c, stream, name, leader, sizeof leader)) != NATS_OK)
            return s;
        if (strcmp(leader, on) == 0)
            return NATS_OK;
        if ((s = delete_consumer(su->c, stream, name)) != NATS_OK)
            return s;
    }
    return fail(NATS_ERR, 0, "consumer %s > %s never landed on %s in 40 tries", stream, name, on);
}

/* Fetches `fetch` messages and acks the first `ack` of them (synchronously,
 * so the floor is settled on return); the rest stay delivered, unacked. */
static natsStatus consume(Setup *su, const char *stream, const char *durable, uint64_t fetch, uint64_t ack)
{
    Ctx              *c   = su->c;
    jsSubOptions     so;
    natsSubscription *sub = NULL;
    jsErrCode        jerr = 0;
    natsStatus       s    = jsSubOptions_Init(&so);
    if (s != NATS_OK)
        return fail(s, 0, "jsSubOptions_Init");
    so.Stream   = stream;
    so.Consumer = durable;
    /* bind: libnats would delete a consumer it created itself on exit */
    if ((s = js_PullSubscribe(&sub, c->js, NULL, durable, &c->jo, &so, &jerr)) != NATS_OK)
        return fail(s, jerr, "js_PullSubscribe(%s, %s)", stream, durable);
    uint64_t got = 0, acked = 0;
    while (s == NATS_OK && got < fetch)
    {
        natsMsgList list = {0};
        uint64_t    want = fetch - got;
        jerr = 0;
        s = natsSubscription_Fetch(&list, sub, want > 128 ? 128 : (int) want, c->timeout_ms, &jerr);
        if (s != NATS_OK)
        {
            fail(s, jerr, "fetch %s > %s after %" PRIu64 " messages", stream, durable, got);
            break;
        }
        for (int i = 0; i < list.Count && s == NATS_OK; i++)
        {
            got++;
            if (acked < ack)
            {
                jerr = 0;
                if ((s = natsMsg_AckSync(list.Msgs[i], &c->jo, &jerr)) != NATS_OK)
                    fail(s, jerr, "ack %s > %s", stream, durable);
                else
                    acked++;
            }
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
    return s;
}

static natsStatus pub(Setup *su, PubSpec p)
{
    uint64_t   n = 0;
    natsStatus s = publish(su->c, &p, &n);
    su->messages += n;
    return s;
}

/* Placement JSON for an R1 asset on the pinned (surviving) node. */
static void placement(char *out, size_t n, const char *tag)
{
    if (tag)
        snprintf(out, n, ",\"placement\":{\"tags\":[\"%s\"]}", tag);
    else
        out[0] = '\0';
}

static natsStatus kv_bucket(Setup *su, const char *bucket, uint8_t history, int64_t ttl_ns, uint64_t keys)
{
    kvConfig   kc;
    kvStore    *kv = NULL;
    natsStatus s   = kvConfig_Init(&kc);
    if (s != NATS_OK)
        return fail(s, 0, "kvConfig_Init");
    kc.Bucket   = bucket;
    kc.History  = history;
    kc.Replicas = 3;
    kc.TTL      = ttl_ns / 1000000; /* libnats takes milliseconds */
    if ((s = js_CreateKeyValue(&kv, su->c->js, &kc)) != NATS_OK)
        return fail(s, 0, "js_CreateKeyValue(%s)", bucket);
    su->streams++;
    for (uint64_t k = 0; k < keys && s == NATS_OK; k++)
    {
        char key[64], val[128];
        snprintf(key, sizeof key, "key%03" PRIu64, k);
        /* more revisions than the history keeps, for some keys */
        for (uint64_t rev = 0; rev <= k % (uint64_t) (history + 2) && s == NATS_OK; rev++)
        {
            uint64_t r = 0;
            snprintf(val, sizeof val, "%s=%s rev %" PRIu64, bucket, key, rev);
            /* a bucket just created may have no leader yet: retried */
            for (int tries = 0; (s = kvStore_PutString(&r, kv, key, val)) == NATS_NO_RESPONDERS
                                && tries < 200; tries++)
                nats_Sleep(50);
            if (s != NATS_OK)
                fail(s, 0, "kvStore_PutString(%s, %s)", bucket, key);
            else
                su->messages++;
        }
        if (s == NATS_OK && k % 5 == 4)
        {
            for (int tries = 0; (s = kvStore_Delete(kv, key)) == NATS_NO_RESPONDERS && tries < 200; tries++)
                nats_Sleep(50);
            if (s != NATS_OK)
                fail(s, 0, "kvStore_Delete(%s, %s)", bucket, key);
            else
                su->messages++;
        }
    }
    kvStore_Destroy(kv);
    return s;
}

static natsStatus setup_acme(Setup *su)
{
    char pin[128], lost[128], cfg[2048];
    placement(pin, sizeof pin, su->pin_tag);
    placement(lost, sizeof lost, su->lost_tag);
    natsStatus s;
    uint64_t   n;

    /* ORDERS: R3, limits, a week, two days of duplicate window, big payloads */
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"ORDERS\",\"description\":\"customer orders\",\"subjects\":[\"orders.>\"],"
             "\"retention\":\"limits\",\"storage\":\"file\",\"num_replicas\":3,"
             "\"max_age\":%lld,\"duplicate_window\":%lld,\"max_msgs_per_subject\":-1,"
             "\"discard\":\"old\"}", 7 * NS_PER_DAY, 2 * NS_PER_DAY);
    if ((s = create_stream(su, "ORDERS", cfg)) != NATS_OK)
        return s;
    n = scaled(su, 1500);
    if ((s = pub(su, (PubSpec){"ORDERS", n, 5, 70000, {"orders.eu", "orders.us", "orders.ap"}, 3, true}))
        != NATS_OK)
        return s;
    /* proc: no num_replicas (as the stream); ship: explicit 3, filtered;
     * audit: explicit 1, on the survivor; notify: push, never bound */
    if ((s = create_consumer(su, "ORDERS", "proc",
                             "{\"durable_name\":\"proc\",\"ack_policy\":\"explicit\","
                             "\"deliver_policy\":\"all\",\"ack_wait\":3600000000000,"
                             "\"max_deliver\":10}", NULL)) != NATS_OK
        || (s = consume(su, "ORDERS", "proc", n * 45 / 100, n * 35 / 100)) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "ORDERS", "ship",
                             "{\"durable_name\":\"ship\",\"ack_policy\":\"explicit\","
                             "\"filter_subject\":\"orders.eu.>\",\"num_replicas\":3,"
                             "\"ack_wait\":3600000000000}", NULL)) != NATS_OK
        || (s = consume(su, "ORDERS", "ship", n / 6, n / 8)) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "ORDERS", "audit",
                             "{\"durable_name\":\"audit\",\"ack_policy\":\"explicit\","
                             "\"num_replicas\":1,\"ack_wait\":3600000000000,\"max_ack_pending\":5000}",
                             su->pin_server)) != NATS_OK
        || (s = consume(su, "ORDERS", "audit", n / 5, n / 5)) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "ORDERS", "notify",
                             "{\"durable_name\":\"notify\",\"ack_policy\":\"explicit\","
                             "\"deliver_subject\":\"deliver.notify\",\"deliver_policy\":\"new\"}", NULL))
        != NATS_OK)
        return s;
    if (su->lost_server
        && (s = create_consumer(su, "ORDERS", "gone",
                                "{\"durable_name\":\"gone\",\"ack_policy\":\"explicit\","
                                "\"num_replicas\":1}", su->lost_server)) != NATS_OK)
        return s;

    /* EVENTS: interest retention; messages both consumers acked are gone */
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"EVENTS\",\"subjects\":[\"events.>\"],\"retention\":\"interest\","
             "\"storage\":\"file\",\"num_replicas\":3,\"max_age\":%lld,\"duplicate_window\":%lld}",
             30 * NS_PER_DAY, 1 * NS_PER_DAY);
    if ((s = create_stream(su, "EVENTS", cfg)) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "EVENTS", "billing",
                             "{\"durable_name\":\"billing\",\"ack_policy\":\"explicit\",\"num_replicas\":3,"
                             "\"ack_wait\":3600000000000}", NULL)) != NATS_OK
        || (s = create_consumer(su, "EVENTS", "analytics",
                                "{\"durable_name\":\"analytics\",\"ack_policy\":\"explicit\","
                                "\"ack_wait\":3600000000000}", NULL)) != NATS_OK)
        return s;
    n = scaled(su, 1000);
    if ((s = pub(su, (PubSpec){"EVENTS", n, 20, 2000, {"events.click", "events.view"}, 4, false})) != NATS_OK
        || (s = consume(su, "EVENTS", "billing", n / 2, n * 4 / 10)) != NATS_OK
        || (s = consume(su, "EVENTS", "analytics", n / 5, n / 10)) != NATS_OK)
        return s;

    /* JOBS: work queue; acked jobs are removed */
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"JOBS\",\"subjects\":[\"jobs.>\"],\"retention\":\"workqueue\","
             "\"storage\":\"file\",\"num_replicas\":3,\"max_age\":%lld}", 1 * NS_PER_DAY);
    if ((s = create_stream(su, "JOBS", cfg)) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "JOBS", "worker",
                             "{\"durable_name\":\"worker\",\"ack_policy\":\"explicit\","
                             "\"ack_wait\":3600000000000}", NULL)) != NATS_OK)
        return s;
    n = scaled(su, 1000);
    if ((s = pub(su, (PubSpec){"JOBS", n, 50, 5000, {"jobs.resize", "jobs.mail"}, 5, true})) != NATS_OK
        || (s = consume(su, "JOBS", "worker", n * 7 / 10, n * 6 / 10)) != NATS_OK)
        return s;

    /* LOCAL: R1 on the surviving node, three days */
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"LOCAL\",\"subjects\":[\"local.>\"],\"retention\":\"limits\","
             "\"storage\":\"file\",\"num_replicas\":1,\"max_age\":%lld,\"duplicate_window\":%lld%s}",
             3 * NS_PER_DAY, NS_PER_HOUR, pin);
    if ((s = create_stream(su, "LOCAL", cfg)) != NATS_OK)
        return s;
    n = scaled(su, 400);
    if ((s = pub(su, (PubSpec){"LOCAL", n, 5, 66000, {"local.a", "local.b"}, 2, true})) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "LOCAL", "tail",
                             "{\"durable_name\":\"tail\",\"ack_policy\":\"explicit\","
                             "\"ack_wait\":3600000000000}", NULL)) != NATS_OK
        || (s = consume(su, "LOCAL", "tail", n / 3, n / 4)) != NATS_OK)
        return s;

    /* a mirror of ORDERS and a stream sourcing from ORDERS (one region) and LOCAL */
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"ORDERS_MIRROR\",\"retention\":\"limits\",\"storage\":\"file\","
             "\"num_replicas\":3,\"max_age\":%lld,\"mirror\":{\"name\":\"ORDERS\"}}", 7 * NS_PER_DAY);
    if ((s = create_stream(su, "ORDERS_MIRROR", cfg)) != NATS_OK)
        return s;
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"COMBINED\",\"retention\":\"limits\",\"storage\":\"file\",\"num_replicas\":3,"
             "\"max_age\":%lld,\"sources\":[{\"name\":\"ORDERS\",\"filter_subject\":\"orders.us.>\"},"
             "{\"name\":\"LOCAL\"}]}", 14 * NS_PER_DAY);
    if ((s = create_stream(su, "COMBINED", cfg)) != NATS_OK)
        return s;

    if ((s = kv_bucket(su, "CONFIG", 5, 0, scaled(su, 60))) != NATS_OK)
        return s;

    if (su->lost_tag)
    {
        /* on a node that will die: the lost-asset report must name it */
        snprintf(cfg, sizeof cfg,
                 "{\"name\":\"SCRATCH\",\"subjects\":[\"scratch.>\"],\"storage\":\"file\","
                 "\"num_replicas\":1%s}", lost);
        if ((s = create_stream(su, "SCRATCH", cfg)) != NATS_OK)
            return s;
        if ((s = pub(su, (PubSpec){"SCRATCH", 25, 5, 500, {"scratch.x"}, 0, false})) != NATS_OK)
            return s;
    }
    return NATS_OK;
}

/* For the traffic runs: an R3 limits stream and an R3 work queue, each with
 * a durable consumer that traffic's --sub workers bind to. */
static natsStatus setup_traffic(Setup *su)
{
    natsStatus s;
    if ((s = create_stream(su, "LOAD",
                           "{\"name\":\"LOAD\",\"subjects\":[\"load.>\"],\"retention\":\"limits\","
                           "\"storage\":\"file\",\"num_replicas\":3}")) != NATS_OK
        || (s = create_stream(su, "LOADQ",
                              "{\"name\":\"LOADQ\",\"subjects\":[\"loadq.>\"],\"retention\":\"workqueue\","
                              "\"storage\":\"file\",\"num_replicas\":3}")) != NATS_OK)
        return s;
    if ((s = create_consumer(su, "LOAD", "reader",
                             "{\"durable_name\":\"reader\",\"ack_policy\":\"explicit\","
                             "\"ack_wait\":3600000000000,\"max_ack_pending\":-1}", NULL)) != NATS_OK)
        return s;
    return create_consumer(su, "LOADQ", "worker",
                           "{\"durable_name\":\"worker\",\"ack_policy\":\"explicit\","
                           "\"ack_wait\":3600000000000,\"max_ack_pending\":-1}", NULL);
}

static natsStatus setup_beta(Setup *su)
{
    char       cfg[1024];
    natsStatus s;
    uint64_t   n = scaled(su, 3000);
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"TELEMETRY\",\"subjects\":[\"tele.>\"],\"retention\":\"limits\","
             "\"storage\":\"file\",\"num_replicas\":3,\"max_age\":%lld,\"max_msgs_per_subject\":%llu,"
             "\"duplicate_window\":%lld}", 14 * NS_PER_DAY, (unsigned long long) (n / 20), 6 * NS_PER_HOUR);
    if ((s = create_stream(su, "TELEMETRY", cfg)) != NATS_OK)
        return s;
    if ((s = pub(su, (PubSpec){"TELEMETRY", n, 8, 300, {"tele.dev1", "tele.dev2", "tele.dev3"}, 10, false}))
        != NATS_OK)
        return s;
    if ((s = create_consumer(su, "TELEMETRY", "graf",
                             "{\"durable_name\":\"graf\",\"ack_policy\":\"explicit\",\"num_replicas\":3,"
                             "\"ack_wait\":3600000000000}", NULL)) != NATS_OK
        || (s = consume(su, "TELEMETRY", "graf", n / 2, n / 2)) != NATS_OK)
        return s;
    return kv_bucket(su, "SESSIONS", 3, 2 * NS_PER_DAY, scaled(su, 40));
}

/* ---------------------------------------------------------------- settle */

static natsStatus names(Ctx *c, jsStreamNamesList **list)
{
    jsErrCode  jerr = 0;
    natsStatus s    = js_StreamNames(list, c->js, &c->jo, &jerr);
    if (s == NATS_NOT_FOUND && jerr == 0)
    {
        *list = NULL;
        return NATS_OK; /* no streams */
    }
    if (s != NATS_OK)
        return fail(s, jerr, "js_StreamNames");
    return NATS_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Appends why a cluster view is not settled to why; returns true when it is. */
static bool cluster_settled(const jsClusterInfo *ci, const char *what, Buf *why)
{
    if (ci == NULL)
        return true; /* not clustered */
    if (ci->Leader == NULL || !ci->Leader[0])
    {
        buf_fmt(why, "%s: no leader; ", what);
        return false;
    }
    bool ok = true;
    for (int i = 0; i < ci->ReplicasLen; i++)
    {
        const jsPeerInfo *p = ci->Replicas[i];
        if (!p->Current || p->Offline || p->Lag != 0)
        {
            buf_fmt(why, "%s: replica %s current=%d lag=%" PRIu64 "; ", what, p->Name ? p->Name : "?",
                    (int) p->Current, p->Lag);
            ok = false;
        }
    }
    return ok;
}

static natsStatus settle_once(Ctx *c, bool *settled, Buf *why)
{
    jsStreamNamesList *list = NULL;
    natsStatus        s     = names(c, &list);
    *settled = true;
    if (s != NATS_OK || list == NULL)
        return s;
    for (int i = 0; i < list->Count && s == NATS_OK; i++)
    {
        const char   *name = list->List[i];
        jsStreamInfo *si   = NULL;
        jsErrCode    jerr  = 0;
        if ((s = js_GetStreamInfo(&si, c->js, name, &c->jo, &jerr)) != NATS_OK)
        {
            fail(s, jerr, "js_GetStreamInfo(%s)", name);
            break;
        }
        if (!cluster_settled(si->Cluster, name, why))
            *settled = false;
        if (si->Mirror && si->Mirror->Lag != 0)
        {
            buf_fmt(why, "%s: mirror lag %" PRIu64 "; ", name, si->Mirror->Lag);
            *settled = false;
        }
        for (int k = 0; k < si->SourcesLen; k++)
            if (si->Sources[k]->Lag != 0)
            {
                buf_fmt(why, "%s: source %s lag %" PRIu64 "; ", name, si->Sources[k]->Name,
                        si->Sources[k]->Lag);
                *settled = false;
            }
        jsStreamInfo_Destroy(si);

        jsConsumerNamesList *cn = NULL;
        jerr = 0;
        s = js_ConsumerNames(&cn, c->js, name, &c->jo, &jerr);
        if (s == NATS_NOT_FOUND && jerr == 0)
        {
            s = NATS_OK;
            continue;
        }
        if (s != NATS_OK)
        {
            fail(s, jerr, "js_ConsumerNames(%s)", name);
            break;
        }
        for (int k = 0; k < cn->Count && s == NATS_OK; k++)
        {
            jsConsumerInfo *ci = NULL;
            jerr = 0;
            s = js_GetConsumerInfo(&ci, c->js, name, cn->List[k], &c->jo, &jerr);
            if (s == NATS_NOT_FOUND)
            {
                s = NATS_OK; /* an ephemeral that went away */
                continue;
            }
            if (s != NATS_OK)
            {
                fail(s, jerr, "js_GetConsumerInfo(%s, %s)", name, cn->List[k]);
                break;
            }
            char what[512];
            snprintf(what, sizeof what, "%s > %s", name, cn->List[k]);
            if (!cluster_settled(ci->Cluster, what, why))
                *settled = false;
            jsConsumerInfo_Destroy(ci);
        }
        jsConsumerNamesList_Destroy(cn);
    }
    jsStreamNamesList_Destroy(list);
    return s;
}

static natsStatus settle(Ctx *c, int64_t wait_ms, Buf *out)
{
    int64_t start = nats_Now();
    for (;;)
    {
        Buf        why = {0};
        bool       ok  = false;
        natsStatus s   = settle_once(c, &ok, &why);
        if (s != NATS_OK)
        {
            free(why.data);
            return s;
        }
        if (ok)
        {
            free(why.data);
            buf_fmt(out, "{\"settled\":true,\"waited_ms\":%" PRId64 "}\n", nats_Now() - start);
            return NATS_OK;
        }
        if (nats_Now() - start > wait_ms)
        {
            fprintf(stderr, "jsload: not settled after %" PRId64 " ms: %s\n", wait_ms,
                    why.data ? why.data : "");
            free(why.data);
            return NATS_TIMEOUT;
        }
        free(why.data);
        nats_Sleep(200);
    }
}

/* ---------------------------------------------------------------- dump */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static bool header_digest(natsMsg *m, char out[65])
{
    const char **keys = NULL;
    int        nkeys  = 0;
    natsStatus s      = natsMsgHeader_Keys(m, &keys, &nkeys);
    out[0] = '\0';
    if (s == NATS_NOT_FOUND || nkeys == 0)
    {
        free((void *) keys);
        return true;
    }
    if (s != NATS_OK)
        return false;
    qsort(keys, (size_t) nkeys, sizeof keys[0], cmp_str);
    Buf b = {0};
    for (int i = 0; i < nkeys; i++)
    {
        const char **vals = NULL;
        int        nv     = 0;
        if (natsMsgHeader_Values(m, keys[i], &vals, &nv) != NATS_OK)
        {
            free((void *) keys);
            free(b.data);
            return false;
        }
        for (int k = 0; k < nv; k++)
        {
            buf_str(&b, keys[i]);
            buf_str(&b, ": ");
            buf_str(&b, vals[k]);
            buf_str(&b, "\n");
        }
        free((void *) vals);
    }
    free((void *) keys);
    bool ok = !b.oom && sha256_hex(b.data ? b.data : "", b.len, out);
    free(b.data);
    return ok;
}

static natsStatus dump_messages(Ctx *c, const char *stream, Buf *out)
{
    jsStreamInfo *si   = NULL;
    jsErrCode    jerr  = 0;
    natsStatus   s     = js_GetStreamInfo(&si, c->js, stream, &c->jo, &jerr);
    if (s != NATS_OK)
        return fail(s, jerr, "js_GetStreamInfo(%s)", stream);
    uint64_t lo = si->State.FirstSeq, hi = si->State.LastSeq;
    bool     empty = si->State.Msgs == 0;
    jsStreamInfo_Destroy(si);

    bool first = true;
    buf_str(out, "[");
    for (uint64_t seq = lo; !empty && seq <= hi && s == NATS_OK; seq++)
    {
        natsMsg *m = NULL;
        jerr = 0;
        s = js_GetMsg(&m, c->js, stream, seq, &c->jo, &jerr);
        if (s == NATS_NOT_FOUND && jerr == JSNoMessageFoundErr)
        {
            s = NATS_OK; /* deleted: not part of the content */
            continue;
        }
        if (s != NATS_OK)
        {
            fail(s, jerr, "js_GetMsg(%s, %" PRIu64 ")", stream, seq);
            break;
        }
        char hd[65], dd[65];
        int  n = natsMsg_GetDataLength(m);
        if (!header_digest(m, hd) || !sha256_hex(n > 0 ? natsMsg_GetData(m) : "", n > 0 ? (size_t) n : 0, dd))
        {
            natsMsg_Destroy(m);
            s = fail(NATS_ERR, 0, "digesting %s #%" PRIu64, stream, seq);
            break;
        }
        buf_str(out, first ? "\n[" : ",\n[");
        first = false;
        buf_fmt(out, "%" PRIu64 ",", seq);
        buf_json_string(out, natsMsg_GetSubject(m));
        buf_fmt(out, ",\"%s\",\"%s\",%d", hd, dd, n);
        /* the payload's id ("STREAM#N", what jsload wrote before '|'), so
         * the drill can match messages it knows only by id */
        const char *data = natsMsg_GetData(m);
        for (int k = 0; data != NULL && k < n && k < 64; k++)
        {
            if (data[k] == '|')
            {
                char id[65];
                memcpy(id, data, (size_t) k);
                id[k] = '\0';
                buf_str(out, ",");
                buf_json_string(out, id);
                break;
            }
            if (data[k] < 0x21 || data[k] > 0x7e)
                break;
        }
        buf_str(out, "]");
        natsMsg_Destroy(m);
    }
    buf_str(out, "]");
    return s;
}

static natsStatus dump(Ctx *c, Buf *out)
{
    jsStreamNamesList *list = NULL;
    natsStatus        s     = names(c, &list);
    if (s != NATS_OK)
        return s;
    buf_str(out, "{\"streams\":{");
    if (list)
        qsort(list->List, (size_t) list->Count, sizeof list->List[0], cmp_names);
    for (int i = 0; list && i < list->Count && s == NATS_OK; i++)
    {
        const char *name = list->List[i];
        char       subj[512], *info = NULL;
        snprintf(subj, sizeof subj, "$JS.API.STREAM.INFO.%s", name);
        if ((s = api(c, subj, "", &info)) != NATS_OK)
            break;
        buf_str(out, i ? ",\n" : "\n");
        buf_json_string(out, name);
        buf_str(out, ":{\"info\":");
        buf_str(out, info);
        free(info);
        buf_str(out, ",\"consumers\":{");

        jsConsumerNamesList *cn   = NULL;
        jsErrCode           jerr  = 0;
        natsStatus          cs    = js_ConsumerNames(&cn, c->js, name, &c->jo, &jerr);
        if (cs != NATS_OK && !(cs == NATS_NOT_FOUND && jerr == 0))
        {
            s = fail(cs, jerr, "js_ConsumerNames(%s)", name);
            break;
        }
        if (cs == NATS_OK)
        {
            qsort(cn->List, (size_t) cn->Count, sizeof cn->List[0], cmp_names);
            for (int k = 0; k < cn->Count && s == NATS_OK; k++)
            {
                char *ci = NULL;
                snprintf(subj, sizeof subj, "$JS.API.CONSUMER.INFO.%s.%s", name, cn->List[k]);
                if ((s = api(c, subj, "", &ci)) != NATS_OK)
                    break;
                buf_str(out, k ? ",\n" : "\n");
                buf_json_string(out, cn->List[k]);
                buf_str(out, ":");
                buf_str(out, ci);
                free(ci);
            }
            jsConsumerNamesList_Destroy(cn);
        }
        if (s != NATS_OK)
            break;
        buf_str(out, "},\"messages\":");
        s = dump_messages(c, name, out);
        buf_str(out, "}");
    }
    buf_str(out, "}}\n");
    jsStreamNamesList_Destroy(list);
    return s;
}

/* ---------------------------------------------------------------- traffic */

typedef struct
{
    Ctx             *c;
    const char      *stream, *target; /* subject prefix (pub) or durable (sub) */
    bool            is_pub;
    int64_t         until;
    FILE            *out;
    pthread_mutex_t *lock;
    uint64_t        attempts, ok, errors;
    bool            write_failed;
} Worker;

static void record(Worker *w, const char *line)
{
    pthread_mutex_lock(w->lock);
    /* one line at a time: a count in the report matches lines in the file */
    if (fputs(line, w->out) == EOF || fflush(w->out) != 0)
        w->write_failed = true;
    pthread_mutex_unlock(w->lock);
}

static void *pub_worker(void *arg)
{
    Worker       *w = arg;
    jsPubOptions po;
    char         buf[4096], subj[256], line[512];
    if (jsPubOptions_Init(&po) != NATS_OK)
        return NULL;
    po.ExpectStream = w->stream;
    po.MaxWait      = w->c->timeout_ms;
    for (uint64_t i = 1; nats_Now() < w->until; i++)
    {
        /* ids by subject prefix: two publishers on one stream must differ */
        size_t n = 16 + (size_t) (mix(w->target, i) % 2000);
        fill_payload(buf, n, w->target, i);
        snprintf(subj, sizeof subj, "%s.%" PRIu64, w->target, i % 5);
        jsPubAck  *pa   = NULL;
        jsErrCode jerr  = 0;
        w->attempts++;
        natsStatus s = js_Publish(&pa, w->c->js, subj, buf, (int) n, &po, &jerr);
        if (s == NATS_OK && pa != NULL)
        {
            w->ok++;
            snprintf(line, sizeof line, "P %s %" PRIu64 " %s#%" PRIu64 "\n", w->stream, pa->Sequence,
                     w->target, i);
            record(w, line);
        }
        else
        {
            w->errors++;
            nats_Sleep(20); /* no quorum: do not spin */
        }
        jsPubAck_Destroy(pa);
    }
    return NULL;
}

static void *sub_worker(void *arg)
{
    Worker           *w   = arg;
    jsSubOptions     so;
    natsSubscription *sub = NULL;
    jsErrCode        jerr = 0;
    char             line[512];
    if (jsSubOptions_Init(&so) != NATS_OK)
        return NULL;
    so.Stream   = w->stream;
    so.Consumer = w->target;
    while (nats_Now() < w->until && sub == NULL)
    {
        if (js_PullSubscribe(&sub, w->c->js, NULL, w->target, &w->c->jo, &so, &jerr) != NATS_OK)
        {
            sub = NULL;
            w->errors++;
            nats_Sleep(100);
        }
    }
    while (sub != NULL && nats_Now() < w->until)
    {
        natsMsgList list = {0};
        jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, sub, 16, 500, &jerr);
        if (s != NATS_OK)
        {
            if (s != NATS_TIMEOUT)
            {
                w->errors++;
                nats_Sleep(20);
            }
            continue;
        }
        for (int i = 0; i < list.Count; i++)
        {
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, list.Msgs[i]) != NATS_OK)
            {
                w->errors++;
                continue;
            }
            w->attempts++;
            jerr = 0;
            if (natsMsg_AckSync(list.Msgs[i], &w->c->jo, &jerr) == NATS_OK)
            {
                w->ok++;
                snprintf(line, sizeof line, "A %s %s %" PRIu64 " %" PRIu64 "\n", w->stream, w->target,
                         meta->Sequence.Stream, meta->Sequence.Consumer);
                record(w, line);
            }
            else
                w->errors++;
            jsMsgMetaData_Destroy(meta);
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
    return NULL;
}

/* STREAM:X -> stream and X, split in place */
static bool split_pair(char *arg, const char **a, const char **b)
{
    char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg || colon[1] == '\0')
        return false;
    *colon = '\0';
    *a     = arg;
    *b     = colon + 1;
    return true;
}

static natsStatus traffic(Ctx *c, int64_t duration_ms, const char *path, Worker *ws, int nw, Buf *out)
{
    FILE *f = fopen(path, "a");
    if (f == NULL)
    {
        fprintf(stderr, "jsload: %s: cannot open for appending\n", path);
        return NATS_ERR;
    }
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_t       th[MAX_TRAFFIC];
    int64_t         until = nats_Now() + duration_ms;
    int             started = 0;
    natsStatus      s = NATS_OK;
    for (int i = 0; i < nw; i++)
    {
        ws[i].c     = c;
        ws[i].until = until;
        ws[i].out   = f;
        ws[i].lock  = &lock;
        if (pthread_create(&th[i], NULL, ws[i].is_pub ? pub_worker : sub_worker, &ws[i]) != 0)
        {
            fprintf(stderr, "jsload: pthread_create failed\n");
            s = NATS_ERR;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (fclose(f) != 0)
    {
        fprintf(stderr, "jsload: %s: write failed\n", path);
        s = NATS_ERR;
    }
    uint64_t pubs = 0, pub_ok = 0, pub_err = 0, acks = 0, ack_err = 0;
    for (int i = 0; i < started; i++)
    {
        if (ws[i].write_failed && s == NATS_OK)
        {
            /* a record missing from the file would count as a lost message */
            fprintf(stderr, "jsload: %s: writing a record failed\n", path);
            s = NATS_ERR;
        }
        if (ws[i].is_pub)
        {
            pubs += ws[i].attempts;
            pub_ok += ws[i].ok;
            pub_err += ws[i].errors;
        }
        else
        {
            acks += ws[i].ok;
            ack_err += ws[i].errors;
        }
    }
    buf_fmt(out, "{\"published\":%" PRIu64 ",\"acked_pubs\":%" PRIu64 ",\"acks\":%" PRIu64
            ",\"pub_errors\":%" PRIu64 ",\"ack_errors\":%" PRIu64 "}\n", pubs, pub_ok, acks, pub_err, ack_err);
    return s;
}

/* ---------------------------------------------------------------- meta */

/* Every server's JSZ (one reply each), as a JSON array: only the meta
 * leader lists its followers and whether they are current, so the drill
 * must see the leader's own answer, not just the first one. */
static natsStatus meta(Ctx *c, Buf *out)
{
    natsInbox        *inbox = NULL;
    natsSubscription *sub   = NULL;
    natsStatus       s;
    if ((s = natsInbox_Create(&inbox)) != NATS_OK)
        return fail(s, 0, "natsInbox_Create");
    if ((s = natsConnection_SubscribeSync(&sub, c->nc, inbox)) != NATS_OK)
        fail(s, 0, "subscribing to %s", inbox);
    else if ((s = natsConnection_PublishRequestString(c->nc, "$SYS.REQ.SERVER.PING.JSZ", inbox, "{}"))
             != NATS_OK)
        fail(s, 0, "publishing $SYS.REQ.SERVER.PING.JSZ");
    buf_str(out, "[");
    int     n        = 0;
    int64_t deadline = nats_Now() + (c->timeout_ms < 1000 ? c->timeout_ms : 1000);
    while (s == NATS_OK)
    {
        int64_t left = deadline - nats_Now();
        if (left <= 0)
            break;
        natsMsg    *m  = NULL;
        natsStatus ns2 = natsSubscription_NextMsg(&m, sub, left);
        if (ns2 == NATS_TIMEOUT)
            break;
        if (ns2 != NATS_OK)
        {
            s = fail(ns2, 0, "waiting for JSZ replies");
            break;
        }
        int len = natsMsg_GetDataLength(m);
        if (len > 0)
        {
            buf_str(out, n++ ? ",\n" : "\n");
            buf_add(out, natsMsg_GetData(m), (size_t) len);
        }
        natsMsg_Destroy(m);
    }
    buf_str(out, "]\n");
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return s;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fputs("usage: jsload --url URL[,URL...] [--user U --password P] [--timeout-ms N] COMMAND\n"
          "  setup --account ACME|BETA [--workload traffic] [--scale F] [--pin-tag T --pin-server NAME]\n"
          "        [--lost-tag T --lost-server NAME]\n"
          "  settle [--wait-ms N]\n"
          "  dump\n"
          "  meta | stepdown           (system account)\n"
          "  api --subject SUBJ [--body JSON]\n"
          "  traffic --duration-ms N --out FILE [--pub STREAM:SUBJECT]... [--sub STREAM:DURABLE]...\n",
          stderr);
}

static natsStatus connect_ctx(Ctx *c, bool reconnect)
{
    natsOptions *o = NULL;
    natsStatus  s;
    if ((s = natsOptions_Create(&o)) != NATS_OK)
        return fail(s, 0, "natsOptions_Create");
    if ((s = natsOptions_SetServers(o, c->urls, c->nurls)) != NATS_OK)
        fail(s, 0, "natsOptions_SetServers");
    /* the first URL is the node the drill wants to talk to */
    else if ((s = natsOptions_SetNoRandomize(o, true)) != NATS_OK)
        fail(s, 0, "natsOptions_SetNoRandomize");
    else if (c->user && (s = natsOptions_SetUserInfo(o, c->user, c->password)) != NATS_OK)
        fail(s, 0, "natsOptions_SetUserInfo");
    else if (c->creds && (s = natsOptions_SetUserCredentialsFromFiles(o, c->creds, NULL)) != NATS_OK)
        fail(s, 0, "natsOptions_SetUserCredentialsFromFiles(%s)", c->creds);
    else if ((s = natsOptions_SetTimeout(o, c->timeout_ms)) != NATS_OK)
        fail(s, 0, "natsOptions_SetTimeout");
    else if ((s = natsOptions_SetAllowReconnect(o, reconnect)) != NATS_OK)
        fail(s, 0, "natsOptions_SetAllowReconnect");
    else if ((s = natsOptions_SetName(o, "jsload")) != NATS_OK)
        fail(s, 0, "natsOptions_SetName");
    else if ((s = natsConnection_Connect(&c->nc, o)) != NATS_OK)
        fail(s, 0, "natsConnection_Connect(%s)", c->urls[0]);
    else if ((s = jsOptions_Init(&c->jo)) != NATS_OK)
        fail(s, 0, "jsOptions_Init");
    else
    {
        c->jo.Wait = c->timeout_ms;
        if ((s = natsConnection_JetStream(&c->js, c->nc, &c->jo)) != NATS_OK)
            fail(s, 0, "natsConnection_JetStream");
    }
    natsOptions_Destroy(o);
    return s;
}

static bool parse_int(const char *opt, const char *v, long long min, long long *out)
{
    char      *end = NULL;
    long long n    = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || n < min)
    {
        fprintf(stderr, "jsload: %s: expected an integer >= %lld, got %s\n", opt, min, v);
        return false;
    }
    *out = n;
    return true;
}

int main(int argc, char **argv)
{
    jsutil_prog = "jsload";
    Ctx        c = {.timeout_ms = 5000};
    Setup      su = {.c = &c, .scale = 1.0};
    const char *cmd = NULL, *out_path = NULL, *account = NULL, *workload = NULL;
    const char *api_subject = NULL, *api_body = "";
    long long  wait_ms = 30000, duration_ms = 0, n;
    Worker     ws[MAX_TRAFFIC];
    int        nw = 0;
    memset(ws, 0, sizeof ws);

    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (a[0] != '-')
        {
            if (cmd != NULL)
            {
                fprintf(stderr, "jsload: unexpected argument %s\n", a);
                return 2;
            }
            cmd = a;
            continue;
        }
        if (i + 1 >= argc)
        {
            fprintf(stderr, "jsload: %s: missing value\n", a);
            usage();
            return 2;
        }
        char *v = argv[++i];
        if (strcmp(a, "--url") == 0)
        {
            free(c.url_buf);
            if ((c.url_buf = strdup(v)) == NULL)
                return 1;
            c.nurls = 0;
            for (char *t = strtok(c.url_buf, ","); t && c.nurls < MAX_URLS; t = strtok(NULL, ","))
                c.urls[c.nurls++] = t;
        }
        else if (strcmp(a, "--user") == 0)
            c.user = v;
        else if (strcmp(a, "--password") == 0)
            c.password = v;
        else if (strcmp(a, "--creds") == 0)
            c.creds = v;
        else if (strcmp(a, "--timeout-ms") == 0)
        {
            if (!parse_int(a, v, 1, &n))
                return 2;
            c.timeout_ms = n;
        }
        else if (strcmp(a, "--account") == 0)
            account = v;
        else if (strcmp(a, "--workload") == 0)
            workload = v;
        else if (strcmp(a, "--subject") == 0)
            api_subject = v;
        else if (strcmp(a, "--body") == 0)
            api_body = v;
        else if (strcmp(a, "--scale") == 0)
        {
            char *end = NULL;
            su.scale  = strtod(v, &end);
            if (end == v || *end || su.scale <= 0)
            {
                fprintf(stderr, "jsload: --scale: expected a positive number, got %s\n", v);
                return 2;
            }
        }
        else if (strcmp(a, "--pin-tag") == 0)
            su.pin_tag = v;
        else if (strcmp(a, "--pin-server") == 0)
            su.pin_server = v;
        else if (strcmp(a, "--lost-tag") == 0)
            su.lost_tag = v;
        else if (strcmp(a, "--lost-server") == 0)
            su.lost_server = v;
        else if (strcmp(a, "--wait-ms") == 0)
        {
            if (!parse_int(a, v, 1, &wait_ms))
                return 2;
        }
        else if (strcmp(a, "--duration-ms") == 0)
        {
            if (!parse_int(a, v, 1, &duration_ms))
                return 2;
        }
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--pub") == 0 || strcmp(a, "--sub") == 0)
        {
            if (nw == MAX_TRAFFIC || !split_pair(v, &ws[nw].stream, &ws[nw].target))
            {
                fprintf(stderr, "jsload: %s %s: expected STREAM:X (at most %d)\n", a, v, MAX_TRAFFIC);
                return 2;
            }
            ws[nw++].is_pub = a[2] == 'p';
        }
        else
        {
            fprintf(stderr, "jsload: unknown option %s\n", a);
            usage();
            return 2;
        }
    }
    if (cmd == NULL || c.nurls == 0 || (c.user == NULL) != (c.password == NULL)
        || (strcmp(cmd, "setup") == 0 && account == NULL)
        || (strcmp(cmd, "api") == 0 && api_subject == NULL)
        || (strcmp(cmd, "traffic") == 0 && (out_path == NULL || duration_ms == 0 || nw == 0)))
    {
        usage();
        free(c.url_buf);
        return 2;
    }

    Buf        out = {0};
    bool       is_traffic = strcmp(cmd, "traffic") == 0;
    natsStatus s = connect_ctx(&c, is_traffic);
    if (s == NATS_OK)
    {
        if (strcmp(cmd, "setup") == 0)
        {
            if (workload != NULL && strcmp(workload, "traffic") == 0)
                s = setup_traffic(&su);
            else if (workload != NULL)
            {
                fprintf(stderr, "jsload: setup: unknown --workload %s (traffic)\n", workload);
                s = NATS_INVALID_ARG;
            }
            else if (strcmp(account, "ACME") == 0)
                s = setup_acme(&su);
            else if (strcmp(account, "BETA") == 0)
                s = setup_beta(&su);
            else
            {
                fprintf(stderr, "jsload: setup: no workload for account %s (ACME, BETA)\n", account);
                s = NATS_INVALID_ARG;
            }
            if (s == NATS_OK)
                buf_fmt(&out, "{\"streams\":%" PRIu64 ",\"messages\":%" PRIu64 "}\n", su.streams, su.messages);
        }
        else if (strcmp(cmd, "settle") == 0)
            s = settle(&c, wait_ms, &out);
        else if (strcmp(cmd, "dump") == 0)
            s = dump(&c, &out);
        else if (strcmp(cmd, "meta") == 0)
            s = meta(&c, &out);
        else if (strcmp(cmd, "api") == 0)
        {
            char *r = NULL;
            if ((s = api(&c, api_subject, api_body, &r)) == NATS_OK)
            {
                buf_str(&out, r);
                buf_str(&out, "\n");
                free(r);
            }
        }
        else if (strcmp(cmd, "stepdown") == 0)
        {
            char *r = NULL;
            if ((s = api(&c, "$JS.API.META.LEADER.STEPDOWN", "", &r)) == NATS_OK)
            {
                buf_str(&out, r);
                buf_str(&out, "\n");
                free(r);
            }
        }
        else if (is_traffic)
            s = traffic(&c, duration_ms, out_path, ws, nw, &out);
        else
        {
            fprintf(stderr, "jsload: unknown command %s\n", cmd);
            usage();
            s = NATS_INVALID_ARG;
        }
    }

    jsCtx_Destroy(c.js);
    natsConnection_Destroy(c.nc);
    natsStatus cs = nats_CloseAndWait(2000);
    if (cs != NATS_OK && s == NATS_OK)
        s = fail(cs, 0, "nats_CloseAndWait");
    if (s == NATS_OK && out.oom)
    {
        fputs("jsload: building output: out of memory\n", stderr);
        s = NATS_NO_MEMORY;
    }
    if (s == NATS_OK && out.len > 0
        && (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0))
    {
        fputs("jsload: writing output failed\n", stderr);
        s = NATS_ERR;
    }
    free(out.data);
    free(c.url_buf);
    if (s == NATS_INVALID_ARG)
        return 2;
    return s == NATS_OK ? 0 : 1;
}
