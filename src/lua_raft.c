/* Lua bindings for reading the dead cluster's Raft state under _js_/:
 * S2 blocks, Raft snapshot files, peer state (peers.idx) and node ids.
 * lua/jsr/raft.lua and lua/jsr/lost.lua build on these to tell which
 * streams and consumers the cluster had that this store holds no data of.
 *
 * Formats (nats-server 2.9 raft.go, checked on 2.9.10 stores):
 *   snapshots/snap.<term>.<index>: term u64 | index u64 | u32 peer-state
 *     length | peer state | data | hash (8 bytes: HighwayHash-64 of
 *     everything before it, keyed by SHA-256 of the group name)
 *   peer state (also the whole of peers.idx): cluster size u32 | count u32
 *     | count 8-byte node ids | extension bytes (2.9: domain extension)
 *   node id: the first 8 bytes of SHA-256(server name), each mapped to
 *     "0-9A-Za-z"[byte % 62]. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>

#include "jsr/bytes.h"
#include "jsr/fsops.h"
#include "jsr/layout.h"
#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"
#include "jsr/metasum.h"
#include "jsr/s2.h"

#define ID_LEN 8
/* A meta snapshot holds every stream assignment of the cluster: a few MB
 * for thousands of streams.  Far more than that is not a snapshot. */
#define SNAP_MAX (256u << 20)

static void hex8(const unsigned char *p, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[16] = 0;
}

/* s2.decode(bytes) -> string | nil, message */
static int l_s2_decode(lua_State *L)
{
    size_t n;
    const unsigned char *src = (const unsigned char *)luaL_checklstring(L, 1, &n);
    size_t len;
    char err[256];
    /* check first: allocate only what the block really decodes to */
    if (!jsr_s2_check(src, n, &len, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    luaL_Buffer b;
    unsigned char *dst = (unsigned char *)luaL_buffinitsize(L, &b, len);
    if (!jsr_s2_decode(src, n, dst, len, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    luaL_pushresultsize(&b, len);
    return 1;
}

/* Pushes {cluster_size=, peers={id...}, extension=bytes} for a peer state,
 * or returns 0 (nothing pushed) when it is malformed. */
static int push_peer_state(lua_State *L, const unsigned char *p, size_t n)
{
    if (n < 8)
        return 0;
    uint32_t size = jsr_le32(p), count = jsr_le32(p + 4);
    if (count > (n - 8) / ID_LEN)
        return 0;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)size);
    lua_setfield(L, -2, "cluster_size");
    lua_createtable(L, (int)count, 0);
    for (uint32_t i = 0; i < count; i++) {
        lua_pushlstring(L, (const char *)p + 8 + (size_t)i * ID_LEN, ID_LEN);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "peers");
    size_t used = 8 + (size_t)count * ID_LEN;
    lua_pushlstring(L, (const char *)p + used, n - used);
    lua_setfield(L, -2, "extension");
    return 1;
}

/* raft.peer_state(bytes) -> {cluster_size, peers, extension} | nil, message
 * (the contents of peers.idx, or a peer-state entry's data) */
static int l_raft_peer_state(lua_State *L)
{
    size_t n;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    if (!push_peer_state(L, p, n))
        return jsr_push_fail(L, "%s", "peer state: too short for its peer count");
    return 1;
}

/* The group a snapshot belongs to: the directory above snapshots/. */
static int group_of(const char *path, char *out, size_t outlen)
{
    const char *end = strrchr(path, '/');
    if (!end)
        return 0;
    /* end: "/snap.T.I"; the directory before it should be "snapshots" */
    const char *snaps = end;
    while (snaps > path && snaps[-1] != '/')
        snaps--;
    const size_t sl = sizeof JSR_RAFT_SNAPSHOTS - 1;
    if (snaps == path || (size_t)(end - snaps) != sl || memcmp(snaps, JSR_RAFT_SNAPSHOTS, sl) != 0)
        return 0;
    const char *gend = snaps - 1, *g = gend;
    while (g > path && g[-1] != '/')
        g--;
    if (g == gend || (size_t)(gend - g) >= outlen)
        return 0;
    memcpy(out, g, (size_t)(gend - g));
    out[gend - g] = 0;
    return 1;
}

/* raft.snapshot(path [, group]) -> snap | nil, message
 * snap = {term, index, peer_state = {cluster_size, peers, extension},
 *         data = bytes, hash_ok, hash_file, hash_computed, group, bytes} */
static int l_raft_snapshot(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *group = luaL_optstring(L, 2, NULL);
    char gbuf[256], err[JSR_ERRLEN];
    if (!group) {
        if (!group_of(path, gbuf, sizeof gbuf))
            return luaL_error(L, "%s: not under <group>/" JSR_RAFT_SNAPSHOTS "/; pass the group name", path);
        group = gbuf;
    }
    char *data;
    size_t n;
    if (!jsr_read_file(path, SNAP_MAX, &data, &n, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    const unsigned char *p = (const unsigned char *)data;
    if (n < 28) {
        free(data);
        jsr_errf(err, sizeof err, "%s: %zu bytes, shorter than any snapshot (28)", path, n);
        return jsr_push_fail(L, "%s", err);
    }
    uint32_t pslen = jsr_le32(p + 16);
    if (pslen > n - 28) {
        free(data);
        jsr_errf(err, sizeof err, "%s: peer state of %u bytes runs past the end of the file",
                 path, (unsigned)pslen);
        return jsr_push_fail(L, "%s", err);
    }
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(group, strlen(group), &key)) {
        free(data);
        return luaL_error(L, "SHA-256 failed (OpenSSL)");
    }
    /* the server writes Go's hash.Sum: the 64-bit value little endian */
    uint64_t sum = jsr_hh64(&key, p, n - 8);
    unsigned char sb[8];
    for (int i = 0; i < 8; i++)
        sb[i] = (unsigned char)(sum >> (8 * i));
    char hf[17], hc[17];
    hex8(p + n - 8, hf);
    hex8(sb, hc);

    lua_createtable(L, 0, 10);
    lua_pushinteger(L, (lua_Integer)jsr_le64(p));
    lua_setfield(L, -2, "term");
    lua_pushinteger(L, (lua_Integer)jsr_le64(p + 8));
    lua_setfield(L, -2, "index");
    if (push_peer_state(L, p + 20, pslen))
        lua_setfield(L, -2, "peer_state");
    lua_pushlstring(L, (const char *)p + 20 + pslen, n - 28 - pslen);
    lua_setfield(L, -2, "data");
    lua_pushboolean(L, memcmp(sb, p + n - 8, 8) == 0);
    lua_setfield(L, -2, "hash_ok");
    lua_pushstring(L, hf);
    lua_setfield(L, -2, "hash_file");
    lua_pushstring(L, hc);
    lua_setfield(L, -2, "hash_computed");
    lua_pushstring(L, group);
    lua_setfield(L, -2, "group");
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "bytes");
    free(data);
    return 1;
}

/* SHA-256 of the string argument 1 into md; raises a Lua error on failure */
static void sha256_arg(lua_State *L, unsigned char md[32])
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned int mdlen = 0;
    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        luaL_error(L, "SHA-256 failed (OpenSSL)");
}

/* raft.node_id(server_name) -> the 8-character Raft peer id the server uses */
static int l_node_id(lua_State *L)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char md[32];
    sha256_arg(L, md);
    char id[ID_LEN];
    for (int i = 0; i < ID_LEN; i++)
        id[i] = digits[md[i] % 62];
    lua_pushlstring(L, id, ID_LEN);
    return 1;
}

/* sha256(bytes) -> the 32-byte digest: survivors.lua compares two copies'
 * records by it (a record's own hash is keyed by its block's index, which
 * differs between nodes) */
static int l_sha256(lua_State *L)
{
    unsigned char md[32];
    sha256_arg(L, md);
    lua_pushlstring(L, (const char *)md, 32);
    return 1;
}

/* listdir(path) -> { name, ... } sorted, without "." and ".." | nil, message
 * (finding snapshots/snap.T.I, msgs/N.blk and moved-aside Raft state) */
static int l_listdir(lua_State *L)
{
    return jsr_push_dir(L, luaL_checkstring(L, 1));
}

void jsr_raft_register(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"sha256", l_sha256},
        {"listdir", l_listdir},
        {NULL, NULL},
    };
    static const luaL_Reg s2[] = {{"decode", l_s2_decode}, {NULL, NULL}};
    static const luaL_Reg raft[] = {
        {"snapshot", l_raft_snapshot},
        {"peer_state", l_raft_peer_state},
        {"node_id", l_node_id},
        {NULL, NULL},
    };
    luaL_setfuncs(L, f, 0);
    jsr_lua_subtable(L, "s2", s2);
    jsr_lua_subtable(L, "raft", raft);
}
