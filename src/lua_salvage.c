/* Encoders for what a standalone server loads after a salvage from the
 * Raft logs: message block records (msgs/N.blk) and consumer state (o.dat).
 * Both only build bytes; they are written through the journaled changes
 * set (store:changes()), so a salvage is atomic and undoable like every
 * other change prepare makes.  Formats: docs/FORMAT.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "jsr/block.h"
#include "jsr/lua_jsr.h"
#include "jsr/metasum.h"

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* block_record(key_name, seq, ts, subject, headers|nil, payload) -> bytes
 * One record as the server writes it (filestore.go writeMsgRecord): the
 * hash covers seq, ts, subject, headers and payload and is keyed by
 * key_name ("STREAM-N" for block N). */
static int l_block_record(lua_State *L)
{
    size_t klen, slen, hlen = 0, plen;
    const char *kname = luaL_checklstring(L, 1, &klen);
    lua_Integer seq = luaL_checkinteger(L, 2);
    lua_Integer ts = luaL_checkinteger(L, 3);
    const char *subj = luaL_checklstring(L, 4, &slen);
    const char *hdr = luaL_optlstring(L, 5, NULL, &hlen);
    const char *pay = luaL_checklstring(L, 6, &plen);
    if (seq <= 0)
        return luaL_error(L, "block_record: sequence %I is not positive", seq);
    if (slen > UINT16_MAX)
        return luaL_error(L, "block_record: subject of %I bytes, over 65535", (lua_Integer)slen);
    /* the server reads a longer record as corruption, so never write one */
    size_t total = (size_t)JSR_REC_HDR + slen + (hdr ? 4 + hlen : 0) + plen + 8;
    if (total > JSR_REC_MAX)
        return luaL_error(L, "block_record: record of %I bytes, over the server's limit", (lua_Integer)total);
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(kname, klen, &key))
        return luaL_error(L, "block_record: cannot derive the hash key of %s", kname);
    luaL_Buffer b;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, total);
    uint32_t rl = (uint32_t)total | (hdr ? JSR_HBIT : 0);
    put_u32(p, rl);
    put_u64(p + 4, (uint64_t)seq);
    put_u64(p + 12, (uint64_t)ts);
    put_u16(p + 20, (uint16_t)slen);
    size_t o = JSR_REC_HDR;
    memcpy(p + o, subj, slen);
    o += slen;
    if (hdr) {
        put_u32(p + o, (uint32_t)hlen);
        o += 4;
        memcpy(p + o, hdr, hlen);
        o += hlen;
    }
    memcpy(p + o, pay, plen);
    o += plen;
    /* hashed: seq and ts, then subject, headers (without their length) and
     * payload, contiguous in the server's hasher calls; build that view */
    size_t hashed_len = 16 + slen + hlen + plen;
    unsigned char *h = malloc(hashed_len ? hashed_len : 1);
    if (!h)
        return luaL_error(L, "block_record: out of memory");
    memcpy(h, p + 4, 16);
    memcpy(h + 16, subj, slen);
    if (hdr)
        memcpy(h + 16 + slen, hdr, hlen);
    memcpy(h + 16 + slen + hlen, pay, plen);
    uint64_t sum = jsr_hh64(&key, h, hashed_len);
    free(h);
    put_u64(p + o, sum);
    luaL_pushresultsize(&b, total);
    return 1;
}

static size_t put_uvarint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static size_t put_varint(unsigned char *p, int64_t v)
{
    /* Go's binary.PutVarint: zigzag */
    uint64_t u = (uint64_t)v << 1;
    if (v < 0)
        u = ~u;
    return put_uvarint(p, u);
}

typedef struct {
    uint64_t sseq, a, b; /* pending: dseq, ts seconds; redelivered: count */
    int64_t ts;
} cs_entry;

static int by_sseq(const void *x, const void *y)
{
    uint64_t a = ((const cs_entry *)x)->sseq, b = ((const cs_entry *)y)->sseq;
    return a < b ? -1 : a > b;
}

static uint64_t field_u64(lua_State *L, int t, const char *sub, const char *k)
{
    lua_getfield(L, t, sub);
    if (!lua_istable(L, -1))
        luaL_error(L, "odat.encode: %s is not a table", sub);
    lua_getfield(L, -1, k);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0)
        luaL_error(L, "odat.encode: %s.%s is not a non-negative integer", sub, k);
    lua_pop(L, 2);
    return (uint64_t)v;
}

/* Collects t[name] = { [sseq] = value } into a sorted array (freed by the
 * caller); pending values are {dseq=, ts=} (ts in seconds), redelivered
 * values counts.  Raises on malformed input or an entry below the floor,
 * which o.dat cannot express (its sequences are deltas from the floor). */
static cs_entry *collect(lua_State *L, int t, const char *name, int pending, uint64_t sflr,
                         uint64_t dflr, size_t *n)
{
    *n = 0;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    size_t cap = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        cap++;
        lua_pop(L, 1);
    }
    cs_entry *e = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *e, 0); /* freed by the GC */
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        int ok;
        lua_Integer k = lua_tointegerx(L, -2, &ok);
        if (!ok)
            luaL_error(L, "odat.encode: %s has a %s key, not a sequence", name,
                       luaL_typename(L, -2));
        /* its sequences are written as deltas from the floor */
        if (k <= 0 || (uint64_t)k <= sflr)
            luaL_error(L, "odat.encode: %s sequence %I is not above the ack floor %I", name,
                       k, (lua_Integer)sflr);
        cs_entry *x = &e[(*n)++];
        memset(x, 0, sizeof *x);
        x->sseq = (uint64_t)k;
        if (pending) {
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_getfield(L, -1, "dseq");
            lua_Integer d = lua_tointegerx(L, -1, &ok);
            if (!ok || (uint64_t)d < dflr)
                luaL_error(L, "odat.encode: pending %I has a delivery sequence below the floor",
                           k);
            x->a = (uint64_t)d;
            lua_getfield(L, -2, "ts");
            x->ts = (int64_t)lua_tointegerx(L, -1, &ok);
            if (!ok)
                luaL_error(L, "odat.encode: pending %I has no integer ts", k);
            lua_pop(L, 2);
        } else {
            lua_Integer c = lua_tointegerx(L, -1, &ok);
            /* the server's decoder refuses a count of 0 as corrupt state */
            if (!ok || c <= 0)
                luaL_error(L, "odat.encode: redelivered %I count is not a positive integer",
                           k);
            x->a = (uint64_t)c;
        }
        lua_pop(L, 1);
    }
    qsort(e, *n, sizeof *e, by_sseq);
    /* keep the userdata alive below the result: leave it on the stack */
    lua_remove(L, -2);
    return e;
}

/* odat.encode(state) -> bytes: o.dat as the server writes it
 * (filestore.go encodeConsumerState, version 2).  state as
 * jsr.raft.consumer_state returns it: ack_floor, delivered ({consumer,
 * stream}), pending ({[sseq] = {dseq, ts (seconds)}}), redelivered
 * ({[sseq] = count}).  Entries are written in sequence order (the server
 * writes map order; its reader does not care), and the base time is the
 * newest pending time, so the same state always gives the same bytes. */
static int l_consumer_state_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    uint64_t afc = field_u64(L, 1, "ack_floor", "consumer");
    uint64_t afs = field_u64(L, 1, "ack_floor", "stream");
    uint64_t dc = field_u64(L, 1, "delivered", "consumer");
    uint64_t ds = field_u64(L, 1, "delivered", "stream");
    size_t np, nr;
    /* both arrays stay on the stack (userdata) until the function returns */
    cs_entry *pend = collect(L, 1, "pending", 1, afs, afc, &np);
    cs_entry *red = collect(L, 1, "redelivered", 0, afs, afc, &nr);
    luaL_Buffer b;
    size_t cap = 2 + 5 * 10 + 10 + np * 30 + 10 + nr * 20;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, cap);
    size_t n = 0;
    p[n++] = 22; /* magic */
    p[n++] = 2;  /* version: timestamps in seconds from a base */
    n += put_uvarint(p + n, afc);
    n += put_uvarint(p + n, afs);
    n += put_uvarint(p + n, dc);
    n += put_uvarint(p + n, ds);
    n += put_uvarint(p + n, np);
    if (np > 0) {
        int64_t base = pend[0].ts;
        for (size_t i = 1; i < np; i++)
            if (pend[i].ts > base)
                base = pend[i].ts;
        n += put_varint(p + n, base);
        for (size_t i = 0; i < np; i++) {
            n += put_uvarint(p + n, pend[i].sseq - afs);
            n += put_uvarint(p + n, pend[i].a - afc);
            /* as Go's int64 subtraction: wrapping, not undefined, when a
             * crafted or damaged time is far from the base */
            n += put_varint(p + n, (int64_t)((uint64_t)base - (uint64_t)pend[i].ts));
        }
    }
    n += put_uvarint(p + n, nr);
    for (size_t i = 0; i < nr; i++) {
        n += put_uvarint(p + n, red[i].sseq - afs);
        n += put_uvarint(p + n, red[i].a);
    }
    luaL_pushresultsize(&b, n);
    return 1;
}

void jsr_salvage_register(lua_State *L)
{
    static const luaL_Reg f[] = {{"block_record", l_block_record}, {NULL, NULL}};
    static const luaL_Reg odat[] = {{"encode", l_consumer_state_encode}, {NULL, NULL}};
    luaL_setfuncs(L, f, 0);
    jsr_lua_subtable(L, "odat", odat);
}
