/* jsr.nats.connect(): the small part of libnats (Debian's libnats-dev)
 * that `js-recover restore` needs to talk to a cluster's JetStream API:
 * connect with user/password, token, an nkey seed or a .creds file, over
 * TLS with a CA, client certificate and key; requests one at a time
 * (conn:request) or several outstanding (conn:send, then jsr.nats.poll for
 * whichever answer comes first, on any connection): a restore keeps a few
 * streams and a few chunks of each in flight, each chunk still a request
 * the server answers once it has written it (its flow control, docs/FORMAT.md
 * "Snapshot and restore"). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <nats/nats.h>
#include <sodium.h>

#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"

#define MT_NATS "jsr.nats"

typedef struct {
    natsConnection *nc;
    natsSubscription *replies; /* <inbox>.* for conn:send, made on first use */
    char inbox[128];
    char url[256];
} conn;

/* Answers to conn:send, from libnats' delivery threads, for nats.poll:
 * one queue for every connection, so one wait covers them all. */
typedef struct answer {
    struct answer *next;
    lua_Integer id;
    char status[8];
    int len;
    char data[];
} answer;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    answer *head, *tail;
    int dropped; /* answers lost for want of memory: said by nats.poll */
    lua_Integer next_id;
} box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static int fail(lua_State *L, const char *what, natsStatus s)
{
    natsStatus ls;
    const char *last = nats_GetLastError(&ls);
    if (last && *last && strcmp(last, natsStatus_GetText(s)))
        return jsr_push_fail(L, "%s: %s (%s)", what, natsStatus_GetText(s), last);
    return jsr_push_fail(L, "%s: %s", what, natsStatus_GetText(s));
}

static const char *opt_string(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *v = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the table keeps the string alive */
    return v;
}

/* nkeys (github.com/nats-io/nkeys): base32 without padding of a prefix,
 * the key and a CRC-16/XMODEM, little-endian. */
static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static size_t b32_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = memchr(B32, s[i], 32);
        if (!c || !s[i])
            return 0;
        acc = (acc << 5) | (uint32_t)(c - B32);
        bits += 5;
        if (bits >= 8) {
            if (o >= cap)
                return 0;
            out[o++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return o;
}

static void b32_encode(const unsigned char *p, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = B32[(acc << (5 - bits)) & 31];
    out[o] = 0;
}

/* The public key of the nkey seed in file path (libnats signs with the
 * seed but wants the public key given too). */
static int nkey_public(const char *path, char pub[64], char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open the nkey seed file", path);
        return 0;
    }
    char line[256] = {0};
    char *seed = NULL;
    while (fgets(line, sizeof line, f)) {
        char *s = strstr(line, "SU");
        if (!s)
            s = strstr(line, "SA");
        if (s) {
            s[strcspn(s, " \t\r\n")] = 0;
            seed = s;
            break;
        }
    }
    fclose(f);
    unsigned char raw[64];
    size_t n = seed ? b32_decode(seed, strlen(seed), raw, sizeof raw) : 0;
    if (n != 36 || crc16(raw, 34) != (uint16_t)(raw[34] | raw[35] << 8)) {
        snprintf(err, errlen, "%s: holds no valid nkey seed (a line starting SU...)", path);
        sodium_memzero(line, sizeof line);
        sodium_memzero(raw, sizeof raw);
        return 0;
    }
    unsigned char type = (unsigned char)(((raw[0] & 7) << 5) | (raw[1] >> 3));
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    int rc = crypto_sign_seed_keypair(pk, sk, raw + 2);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(line, sizeof line);
    sodium_memzero(raw, sizeof raw);
    if (rc != 0) {
        snprintf(err, errlen, "%s: libsodium could not derive the key pair", path);
        return 0;
    }
    unsigned char p[35];
    p[0] = type;
    memcpy(p + 1, pk, 32);
    uint16_t c = crc16(p, 33);
    p[33] = (unsigned char)c;
    p[34] = (unsigned char)(c >> 8);
    b32_encode(p, sizeof p, pub);
    return 1;
}

/* nats.connect{url=, user=, password=, token=, creds=, nkey=, tls_ca=,
 *              tls_cert=, tls_key=, timeout_ms=} -> conn | nil, msg */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *url = opt_string(L, 1, "url");
    if (!url)
        return luaL_error(L, "nats.connect: url is required");
    const char *user = opt_string(L, 1, "user"), *password = opt_string(L, 1, "password");
    const char *token = opt_string(L, 1, "token"), *creds = opt_string(L, 1, "creds");
    const char *nkey = opt_string(L, 1, "nkey"), *ca = opt_string(L, 1, "tls_ca");
    const char *cert = opt_string(L, 1, "tls_cert"), *key = opt_string(L, 1, "tls_key");
    lua_getfield(L, 1, "timeout_ms");
    lua_Integer timeout = luaL_optinteger(L, -1, 5000);
    lua_pop(L, 1);
    if ((cert != NULL) != (key != NULL))
        return luaL_error(L, "nats.connect: a TLS client certificate needs its key, and a key its certificate");
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s != NATS_OK)
        return fail(L, "nats: cannot create options", s);
    char what[512];
    snprintf(what, sizeof what, "%s", url);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, "js-recover " JSR_VERSION);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, timeout);
    /* a restore is resumable as a whole; one that reconnects mid-stream
     * would send chunks to a restore the server already dropped */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK && user)
        s = natsOptions_SetUserInfo(o, user, password ? password : "");
    if (s == NATS_OK && token)
        s = natsOptions_SetToken(o, token);
    if (s == NATS_OK && creds) {
        snprintf(what, sizeof what, "%s: credentials file %s", url, creds);
        s = natsOptions_SetUserCredentialsFromFiles(o, creds, NULL);
    }
    if (s == NATS_OK && nkey) {
        char pub[64], err[512];
        if (!nkey_public(nkey, pub, err, sizeof err)) {
            natsOptions_Destroy(o);
            return jsr_push_fail(L, "%s", err);
        }
        snprintf(what, sizeof what, "%s: nkey seed %s", url, nkey);
        s = natsOptions_SetNKeyFromSeed(o, pub, nkey);
    }
    if (s == NATS_OK && (ca || cert))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && ca) {
        snprintf(what, sizeof what, "%s: TLS CA %s", url, ca);
        s = natsOptions_LoadCATrustedCertificates(o, ca);
    }
    if (s == NATS_OK && cert) {
        snprintf(what, sizeof what, "%s: TLS certificate %s and key %s", url, cert, key);
        s = natsOptions_LoadCertificatesChain(o, cert, key);
    }
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return fail(L, what, s);
    }
    conn *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, MT_NATS);
    snprintf(c->url, sizeof c->url, "%s", url);
    s = natsConnection_Connect(&c->nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        c->nc = NULL;
        char w[600];
        snprintf(w, sizeof w, "cannot connect to %s", url);
        return fail(L, w, s);
    }
    return 1;
}

static conn *check(lua_State *L)
{
    conn *c = luaL_checkudata(L, 1, MT_NATS);
    if (!c->nc)
        luaL_error(L, "nats: the connection is closed");
    return c;
}

/* conn:request(subject, data [, timeout_ms]) -> reply data, status header
 * | nil, msg.  The status header ("503" no responders, "408" ...) is nil
 * on a plain reply. */
static int l_request(lua_State *L)
{
    conn *c = check(L);
    const char *subj = luaL_checkstring(L, 2);
    size_t n;
    const char *data = luaL_checklstring(L, 3, &n);
    lua_Integer timeout = luaL_optinteger(L, 4, 5000);
    if (n > INT32_MAX)
        return luaL_error(L, "nats: a request of %I bytes is too large", (lua_Integer)n);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, c->nc, subj, data, (int)n, timeout);
    if (s != NATS_OK) {
        char w[600];
        snprintf(w, sizeof w, "%s: request to %s", c->url, subj);
        return fail(L, w, s);
    }
    lua_pushlstring(L, natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply));
    const char *status = NULL;
    if (natsMsgHeader_Get(reply, "Status", &status) == NATS_OK && status)
        lua_pushstring(L, status);
    else
        lua_pushnil(L);
    natsMsg_Destroy(reply);
    return 2;
}

/* libnats' delivery thread: the answer's id is the reply subject's last token */
static void on_answer(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = subj ? strrchr(subj, '.') : NULL;
    int len = natsMsg_GetDataLength(msg);
    answer *a = dot ? malloc(sizeof *a + (size_t)len) : NULL;
    pthread_mutex_lock(&box.mu);
    if (a) {
        a->next = NULL;
        a->id = strtoll(dot + 1, NULL, 10);
        a->len = len;
        memcpy(a->data, natsMsg_GetData(msg), (size_t)len);
        const char *status = NULL;
        a->status[0] = 0;
        if (natsMsgHeader_Get(msg, "Status", &status) == NATS_OK && status)
            snprintf(a->status, sizeof a->status, "%s", status);
        if (box.tail)
            box.tail->next = a;
        else
            box.head = a;
        box.tail = a;
    } else if (dot) {
        box.dropped++;
    }
    pthread_cond_broadcast(&box.cv);
    pthread_mutex_unlock(&box.mu);
    natsMsg_Destroy(msg);
}

/* conn:send(subject, data) -> id | nil, msg: the request goes now, its
 * answer comes from nats.poll with this id */
static int l_send(lua_State *L)
{
    conn *c = check(L);
    const char *subj = luaL_checkstring(L, 2);
    size_t n;
    const char *data = luaL_checklstring(L, 3, &n);
    if (n > INT32_MAX)
        return luaL_error(L, "nats: a request of %I bytes is too large", (lua_Integer)n);
    natsStatus s = NATS_OK;
    if (!c->replies) {
        natsInbox *inbox = NULL;
        s = natsInbox_Create(&inbox);
        if (s == NATS_OK) {
            snprintf(c->inbox, sizeof c->inbox, "%s", (const char *)inbox);
            natsInbox_Destroy(inbox);
            char all[160];
            snprintf(all, sizeof all, "%s.*", c->inbox);
            s = natsConnection_Subscribe(&c->replies, c->nc, all, on_answer, NULL);
            /* a restore's answers are few and small, but never dropped */
            if (s == NATS_OK)
                s = natsSubscription_SetPendingLimits(c->replies, -1, -1);
        }
        if (s != NATS_OK) {
            char w[600];
            snprintf(w, sizeof w, "%s: cannot subscribe to its answers", c->url);
            if (c->replies) {
                natsSubscription_Destroy(c->replies);
                c->replies = NULL;
            }
            return fail(L, w, s);
        }
    }
    pthread_mutex_lock(&box.mu);
    lua_Integer id = ++box.next_id;
    pthread_mutex_unlock(&box.mu);
    char reply[200];
    snprintf(reply, sizeof reply, "%s.%lld", c->inbox, (long long)id);
    s = natsConnection_PublishRequest(c->nc, subj, reply, data, (int)n);
    if (s != NATS_OK) {
        char w[600];
        snprintf(w, sizeof w, "%s: request to %s", c->url, subj);
        return fail(L, w, s);
    }
    lua_pushinteger(L, id);
    return 1;
}

/* nats.poll(timeout_ms) -> id, data, status | false (nothing came in time)
 * | nil, msg.  status: the answer's Status header ("503": nobody
 * subscribes to the subject), nil on a plain answer. */
static int l_poll(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&box.mu);
    while (!box.head && !box.dropped) {
        int rc = pthread_cond_timedwait(&box.cv, &box.mu, &until);
        if (rc == ETIMEDOUT)
            break;
    }
    answer *a = box.head;
    int dropped = box.dropped;
    box.dropped = 0;
    if (a) {
        box.head = a->next;
        if (!box.head)
            box.tail = NULL;
    }
    pthread_mutex_unlock(&box.mu);
    if (!a && dropped)
        return jsr_push_fail(L, "nats: %d answer(s) lost: out of memory", dropped);
    if (!a) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushinteger(L, a->id);
    lua_pushlstring(L, a->data, (size_t)a->len);
    if (a->status[0])
        lua_pushstring(L, a->status);
    else
        lua_pushnil(L);
    free(a);
    return 3;
}

static int l_close(lua_State *L)
{
    conn *c = luaL_checkudata(L, 1, MT_NATS);
    if (c->replies) {
        natsSubscription_Unsubscribe(c->replies);
        natsSubscription_Destroy(c->replies);
        c->replies = NULL;
    }
    if (c->nc) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
        c->nc = NULL;
    }
    return 0;
}

/* nkey.public(seedfile) -> public key | nil, msg (the user's "U..." key
 * a server config names for that seed) */
static int l_nkey_public(lua_State *L)
{
    char pub[64], err[512];
    if (!nkey_public(luaL_checkstring(L, 1), pub, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_pushstring(L, pub);
    return 1;
}

static const luaL_Reg methods[] = {
    {"request", l_request},
    {"send", l_send},
    {"close", l_close},
    {NULL, NULL},
};

static const jsr_lua_type conn_type = {MT_NATS, methods, l_close, l_close};

void jsr_nats_register(lua_State *L)
{
    jsr_lua_class(L, &conn_type);
    static const luaL_Reg nats[] = {{"connect", l_connect}, {"poll", l_poll}, {NULL, NULL}};
    static const luaL_Reg nkey[] = {{"public", l_nkey_public}, {NULL, NULL}};
    jsr_lua_subtable(L, "nats", nats);
    jsr_lua_subtable(L, "nkey", nkey);
}
