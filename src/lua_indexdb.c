/* Lua binding for msgs/index.db (jsr/indexdb.h): read, checksum-test and
 * decrypt it, then hand its totals, blocks and delete maps to Lua, and to
 * scan_block (lua_block.c) as a block's index. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>

#include "jsr/crypto.h"
#include "jsr/fsops.h"
#include "jsr/indexdb.h"
#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"

#define MT_IDB "jsr.indexdb"

const jsr_indexdb *jsr_lua_indexdb(lua_State *L, int i)
{
    return luaL_checkudata(L, i, MT_IDB);
}

static int idb_gc(lua_State *L)
{
    jsr_indexdb_free(luaL_checkudata(L, 1, MT_IDB));
    return 0;
}

static void set_u(lua_State *L, const char *k, uint64_t v)
{
    /* a value beyond int64 (a hostile file) shows as a float, never wraps */
    if (v > (uint64_t)LUA_MAXINTEGER)
        lua_pushnumber(L, (lua_Number)v);
    else
        lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void set_i(lua_State *L, const char *k, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int fail(lua_State *L, const char *status, const char *msg)
{
    luaL_pushfail(L);
    lua_pushstring(L, status);
    lua_pushstring(L, msg);
    return 3;
}

/* indexdb_read(path, stream_name [, {keyfile=meta.key, account=}]) -> db
 * | nil, status, message [, version]
 * status: "absent" (no file), "checksum" (its hash is wrong: the server
 * deletes it), "sealed" (encrypted and no key opens it), "malformed",
 * "newer" (a version js-recover does not know, with the version), "io". */
static int l_indexdb_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    const char *keyfile = NULL, *account = NULL;
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "keyfile") == LUA_TSTRING)
            keyfile = lua_tostring(L, -1);
        if (lua_getfield(L, 3, "account") == LUA_TSTRING)
            account = lua_tostring(L, -1);
        if (keyfile && !account)
            return luaL_error(L, "indexdb_read: keyfile needs account");
    }
    char err[JSR_ERRLEN];
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return fail(L, "absent", path);
        jsr_errf(err, sizeof err, "%s: %s", path, strerror(errno));
        return fail(L, "io", err);
    }
    char *data;
    size_t n;
    if (!jsr_read_file(path, JSR_INDEXDB_MAX, &data, &n, err, sizeof err))
        return fail(L, "io", err);
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(name, nl, &key)) {
        free(data);
        return luaL_error(L, "SHA-256 failed (OpenSSL)");
    }
    /* the server's own floor: shorter files are deleted unread */
    if (n < 32) {
        free(data);
        jsr_errf(err, sizeof err, "%s: %zu bytes, shorter than any state file (32): the server "
                                  "deletes it and rebuilds from the blocks", path, n);
        return fail(L, "malformed", err);
    }
    if (!jsr_indexdb_checksum_ok((unsigned char *)data, n, &key)) {
        free(data);
        jsr_errf(err, sizeof err, "%s: its checksum (last 8 bytes) does not match: the server "
                                  "deletes it and rebuilds from the blocks", path);
        return fail(L, "checksum", err);
    }
    unsigned char *plain = (unsigned char *)data;
    size_t plen = n - 8;
    char *opened = NULL;
    if (keyfile) {
        const char *cipher, *which;
        if (!jsr_keys_set(L)) {
            free(data);
            jsr_errf(err, sizeof err, "%s: encrypted; give the server's key to read it", path);
            return fail(L, "sealed", err);
        }
        if (!jsr_meta_decrypt(L, keyfile, account, name, path, data, n - 8, &opened, &plen,
                              &cipher, &which, err, sizeof err)) {
            free(data);
            return fail(L, "sealed", err);
        }
        plain = (unsigned char *)opened;
    }
    jsr_indexdb *db = lua_newuserdatauv(L, sizeof *db, 0);
    memset(db, 0, sizeof *db);
    luaL_setmetatable(L, MT_IDB);
    jsr_indexdb_status r = jsr_indexdb_parse(plain, plen, db, path, err, sizeof err);
    if (opened) {
        sodium_memzero(opened, plen);
        free(opened);
    }
    free(data);
    if (r == JSR_IDB_NEWER) {
        int v = db->version;
        fail(L, "newer", err);
        lua_pushinteger(L, v);
        return 4;
    }
    if (r != JSR_IDB_OK)
        return fail(L, "malformed", err);
    return 1;
}

static void push_block(lua_State *L, const jsr_indexdb_block *b, int with_dmap)
{
    lua_createtable(L, 0, 12);
    set_u(L, "index", b->index);
    set_u(L, "bytes", b->bytes);
    set_u(L, "first_seq", b->first_seq);
    set_u(L, "last_seq", b->last_seq);
    set_i(L, "first_ts", b->first_ts);
    set_i(L, "last_ts", b->last_ts);
    set_u(L, "num_deleted", b->ndel);
    set_u(L, "msgs", b->msgs);
    set_u(L, "ttls", b->ttls);
    set_u(L, "schedules", b->schedules);
    if (with_dmap) {
        lua_createtable(L, (int)(b->dmap_len > 1000000 ? 1000000 : b->dmap_len), 0);
        for (size_t i = 0; i < b->dmap_len; i++) {
            if (b->dmap[i] > (uint64_t)LUA_MAXINTEGER)
                lua_pushnumber(L, (lua_Number)b->dmap[i]);
            else
                lua_pushinteger(L, (lua_Integer)b->dmap[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "deleted");
    }
}

/* db:info() -> {version, msgs, bytes, first_seq, last_seq, first_ts,
 * last_ts, subjects (count), blocks (count), last_block, lchk (hex),
 * consistent} */
static int l_info(lua_State *L)
{
    const jsr_indexdb *db = jsr_lua_indexdb(L, 1);
    lua_createtable(L, 0, 12);
    set_i(L, "version", db->version);
    set_u(L, "msgs", db->msgs);
    set_u(L, "bytes", db->bytes);
    set_u(L, "first_seq", db->first_seq);
    set_u(L, "last_seq", db->last_seq);
    set_i(L, "first_ts", db->first_ts);
    set_i(L, "last_ts", db->last_ts);
    set_u(L, "subjects", db->nsubjects);
    set_u(L, "blocks", db->nblocks);
    set_u(L, "last_block", db->last_block);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", db->lchk[i]);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "lchk");
    lua_pushboolean(L, jsr_indexdb_consistent(db));
    lua_setfield(L, -2, "consistent");
    return 1;
}

/* db:block(index [, with_deleted]) -> block table (deleted = sorted
 * sequences with with_deleted) | nil */
static int l_block(lua_State *L)
{
    const jsr_indexdb *db = jsr_lua_indexdb(L, 1);
    lua_Integer idx = luaL_checkinteger(L, 2);
    const jsr_indexdb_block *b =
        idx >= 0 && idx <= UINT32_MAX ? jsr_indexdb_block_find(db, (uint32_t)idx) : NULL;
    if (!b) {
        luaL_pushfail(L);
        return 1;
    }
    push_block(L, b, lua_toboolean(L, 3));
    return 1;
}

/* db:blocks() -> array of block tables, in file order (no delete maps) */
static int l_blocks(lua_State *L)
{
    const jsr_indexdb *db = jsr_lua_indexdb(L, 1);
    lua_createtable(L, (int)db->nblocks, 0);
    for (size_t i = 0; i < db->nblocks; i++) {
        push_block(L, &db->blocks[i], 0);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* db:subjects() -> array of {subject, total, first_block, last_block} */
static int l_subjects(lua_State *L)
{
    const jsr_indexdb *db = jsr_lua_indexdb(L, 1);
    lua_createtable(L, (int)db->nsubjects, 0);
    for (size_t i = 0; i < db->nsubjects; i++) {
        const jsr_indexdb_subject *s = &db->subjects[i];
        lua_createtable(L, 0, 4);
        lua_pushlstring(L, (const char *)s->subject, s->len);
        lua_setfield(L, -2, "subject");
        set_u(L, "total", s->total);
        set_u(L, "first_block", s->first_block);
        set_u(L, "last_block", s->last_block);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* db:matches(blk_path [, {keyfile=, account=, context=}]) -> bool
 * Whether the block's last 8 bytes (decrypted with its N.key when given)
 * are the record hash the file remembers: the server's test that nothing
 * was written after it (an empty block matches zeros). */
static int l_matches(lua_State *L)
{
    const jsr_indexdb *db = jsr_lua_indexdb(L, 1);
    const char *blk = luaL_checkstring(L, 2);
    const char *keyfile = NULL, *account = NULL, *context = NULL;
    if (lua_istable(L, 3))
        jsr_lua_keyfile_opts(L, 3, "matches", &keyfile, &account, &context);
    unsigned char tail[8] = {0};
    char err[JSR_ERRLEN];
    struct stat st;
    int fd = jsr_open_file(blk, &st, err, sizeof err);
    int ok = fd >= 0;
    if (ok && st.st_size >= 8) {
        ok = pread(fd, tail, 8, st.st_size - 8) == 8;
        if (ok && keyfile) {
            jsr_cipher c;
            unsigned char seed[32], nonce[24];
            jsr_block_cipher bc;
            ok = jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err,
                                    sizeof err) &&
                 jsr_block_cipher_init(&bc, c, seed, nonce);
            sodium_memzero(seed, sizeof seed);
            if (ok) {
                ok = jsr_block_cipher_xor(&bc, tail, 8, (uint64_t)st.st_size - 8);
                jsr_block_cipher_free(&bc);
            }
        }
    }
    if (fd >= 0)
        close(fd);
    lua_pushboolean(L, ok && memcmp(tail, db->lchk, 8) == 0);
    return 1;
}

static const luaL_Reg idb_methods[] = {
    {"info", l_info},
    {"block", l_block},
    {"blocks", l_blocks},
    {"subjects", l_subjects},
    {"matches", l_matches},
    {NULL, NULL},
};

static const jsr_lua_type idb_type = {MT_IDB, idb_methods, idb_gc, NULL};

void jsr_indexdb_register(lua_State *L)
{
    static const luaL_Reg f[] = {{"indexdb_read", l_indexdb_read}, {NULL, NULL}};
    jsr_lua_class(L, &idb_type);
    luaL_setfuncs(L, f, 0);
    lua_pushinteger(L, JSR_INDEXDB_NEWEST);
    lua_setfield(L, -2, "indexdb_newest");
    lua_pushstring(L, JSR_NEWEST_SERVER);
    lua_setfield(L, -2, "newest_server");
}
