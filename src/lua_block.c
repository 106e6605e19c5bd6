/* Lua bindings for message blocks: listing a stream's blocks and scanning
 * one (verify, or a callback per record for scripts such as dump.lua). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>

#include "jsr/block.h"
#include "jsr/fsops.h"
#include "jsr/layout.h"
#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"

#define MT_BUF "jsr.block.buf"
/* registry key of the one shared buffer (not MT_BUF: that names its metatable) */
#define REG_SHARED_BUF "jsr.block.shared"

typedef struct {
    uint32_t index;
    unsigned char has_idx, has_key;
    off_t size;
    int have_size;
} blk_name;

static int by_index(const void *a, const void *b)
{
    uint32_t x = ((const blk_name *)a)->index, y = ((const blk_name *)b)->index;
    return x < y ? -1 : x > y;
}

/* "<n>.<ext>" in the server's own spelling ("01.blk" is not block 1):
 * 1 and the number, or 0 */
static int block_name(const char *name, const char *ext, uint32_t *index)
{
    char *end, canon[32];
    unsigned long idx = strtoul(name, &end, 10);
    if (end == name || *end != '.' || strcmp(end + 1, ext) != 0 || idx > UINT32_MAX)
        return 0;
    snprintf(canon, sizeof canon, "%lu.%s", idx, ext);
    if (strcmp(canon, name) != 0)
        return 0;
    *index = (uint32_t)idx;
    return 1;
}

static blk_name *find_block(blk_name *names, size_t n, uint32_t index)
{
    blk_name key = {.index = index};
    return bsearch(&key, names, n, sizeof *names, by_index);
}

/* block_files(stream_dir) -> { {index=, path=, size=, idx=, key=}, ... } in
 * block order, or nil, message.  One pass over the directory: which
 * index and key files exist comes from its listing, the sizes from
 * lookups relative to it (a store has thousands of these folders). */
static int l_block_files(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    char msgs[PATH_MAX];
    /* room for "/msgs" and "/<u32>.blk" below */
    if (strlen(dir) > PATH_MAX - 40)
        return jsr_push_fail(L, "%s: path too long", dir);
    snprintf(msgs, sizeof msgs, "%s/" JSR_MSGS_DIR, dir);
    char err[JSR_ERRLEN];
    DIR *d = jsr_open_dir(msgs, err, sizeof err);
    if (!d)
        return jsr_push_fail(L, "%s", err);
    size_t n = 0, cap = 16, nx = 0, xcap = 16;
    blk_name *names = malloc(cap * sizeof *names);
    /* index and key files, matched to blocks once all are known */
    struct {
        uint32_t index;
        int key;
    } *extra = malloc(xcap * sizeof *extra);
    struct dirent *de;
    int oom = !names || !extra;
    while (!oom && (de = readdir(d))) {
        uint32_t idx;
        if (block_name(de->d_name, JSR_BLK_EXT, &idx)) {
            if (n == cap) {
                blk_name *p = realloc(names, (cap *= 2) * sizeof *names);
                if (!p) {
                    oom = 1;
                    break;
                }
                names = p;
            }
            memset(&names[n], 0, sizeof names[n]);
            names[n].index = idx;
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                names[n].size = st.st_size;
                names[n].have_size = 1;
            }
            n++;
        } else {
            int key = block_name(de->d_name, JSR_KEY_EXT, &idx);
            if (!key && !block_name(de->d_name, JSR_IDX_EXT, &idx))
                continue;
            if (nx == xcap) {
                void *p = realloc(extra, (xcap *= 2) * sizeof *extra);
                if (!p) {
                    oom = 1;
                    break;
                }
                extra = p;
            }
            extra[nx].index = idx;
            extra[nx++].key = key;
        }
    }
    closedir(d);
    if (oom) {
        free(names);
        free(extra);
        return jsr_push_fail(L, "%s: out of memory", msgs);
    }
    qsort(names, n, sizeof *names, by_index);
    for (size_t i = 0; i < nx; i++) {
        blk_name *b = find_block(names, n, extra[i].index);
        if (b && extra[i].key)
            b->has_key = 1;
        else if (b)
            b->has_idx = 1;
    }
    free(extra);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX + 64];
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, names[i].index);
        lua_setfield(L, -2, "index");
        snprintf(p, sizeof p, "%s/%u." JSR_BLK_EXT, msgs, names[i].index);
        lua_pushstring(L, p);
        lua_setfield(L, -2, "path");
        if (names[i].have_size) {
            lua_pushinteger(L, (lua_Integer)names[i].size);
            lua_setfield(L, -2, "size");
        }
        if (names[i].has_idx) {
            snprintf(p, sizeof p, "%s/%u." JSR_IDX_EXT, msgs, names[i].index);
            lua_pushstring(L, p);
            lua_setfield(L, -2, "idx");
        }
        if (names[i].has_key) {
            snprintf(p, sizeof p, "%s/%u." JSR_KEY_EXT, msgs, names[i].index);
            lua_pushstring(L, p);
            lua_setfield(L, -2, "key");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(names);
    return 1;
}

typedef struct {
    lua_State *L;
    int problems; /* stack index of the problems array */
    int fn;       /* stack index of the record callback, or 0 */
    int stopped;
    int64_t older_than; /* when > 0: count the leading live records stamped before it (ns) */
    uint64_t older;
    int tombs;          /* stack index of the tombstones' sequences */
    int errslot;        /* stack index that keeps what the callback raised */
    int raised;
} scan_ctx;

static void on_problem(void *ud, jsr_problem_kind kind, uint64_t offset, uint64_t seq,
                       const char *message)
{
    scan_ctx *c = ud;
    lua_State *L = c->L;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, jsr_problem_name(kind));
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)offset);
    lua_setfield(L, -2, "offset");
    if (seq) {
        lua_pushinteger(L, (lua_Integer)seq);
        lua_setfield(L, -2, "seq");
    }
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_rawseti(L, c->problems, (lua_Integer)lua_rawlen(L, c->problems) + 1);
}

static int on_record(void *ud, const jsr_record *r)
{
    scan_ctx *c = ud;
    if (r->tombstone) {
        lua_State *L = c->L;
        lua_pushinteger(L, (lua_Integer)(r->seq & (uint64_t)LUA_MAXINTEGER));
        lua_rawseti(L, c->tombs, (lua_Integer)lua_rawlen(L, c->tombs) + 1);
    }
    if (c->older_than > 0 && !r->deleted) {
        if (r->ts >= c->older_than) {
            /* the server expires from the first message on and stops at the
             * first younger one: what follows it is not expired either */
            c->stopped = 1;
            return 0;
        }
        c->older++;
    }
    if (!c->fn)
        return 1;
    lua_State *L = c->L;
    lua_pushvalue(L, c->fn);
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)r->seq);
    lua_setfield(L, -2, "seq");
    lua_pushinteger(L, (lua_Integer)r->ts);
    lua_setfield(L, -2, "ts");
    lua_pushinteger(L, (lua_Integer)r->offset);
    lua_setfield(L, -2, "offset");
    lua_pushboolean(L, r->deleted);
    lua_setfield(L, -2, "deleted");
    lua_pushboolean(L, r->marked);
    lua_setfield(L, -2, "marked");
    lua_pushboolean(L, r->hash_ok);
    lua_setfield(L, -2, "hash_ok");
    if (r->tombstone) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "tombstone");
    }
    lua_pushlstring(L, (const char *)r->subject, r->subject_len);
    lua_setfield(L, -2, "subject");
    if (r->headers) {
        lua_pushlstring(L, (const char *)r->headers, r->headers_len);
        lua_setfield(L, -2, "headers");
    }
    lua_pushlstring(L, (const char *)r->payload, r->payload_len);
    lua_setfield(L, -2, "payload");
    /* a raise here would jump over jsr_block_scan's close and frees: the
     * error is kept and raised again once the scan has let go of them */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_replace(L, c->errslot);
        c->raised = c->stopped = 1;
        return 0;
    }
    int go_on = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!go_on)
        c->stopped = 1;
    return go_on;
}

/* An encrypted block's index is sealed with the block's asset key and the
 * N.key nonce, with no nonce in front (unlike meta.inf). */
static int read_sealed_index(const char *path, const jsr_block_cipher *bc, jsr_block_index *ix,
                             char *err, size_t errlen)
{
    char *data;
    size_t n, nl = jsr_cipher_nonce_len(bc->cipher), plen;
    memset(ix, 0, sizeof *ix);
    if (!jsr_lexists(path))
        return 1;
    if (!jsr_read_file(path, 64u << 20, &data, &n, err, errlen))
        return 0;
    unsigned char *in = malloc(nl + n), *out = malloc(n + 1);
    int ok = 0;
    if (in && out) {
        memcpy(in, bc->nonce, nl);
        memcpy(in + nl, data, n);
        if (jsr_aead_open(bc->cipher, bc->seed, in, nl + n, out, &plen))
            ok = jsr_block_index_parse(out, plen, ix, err, errlen);
        else
            ok = 1, ix->present = 1; /* unreadable: treated as absent but noted */
    } else {
        jsr_errf(err, errlen, "%s: out of memory", path);
    }
    free(in);
    free(out);
    free(data);
    return ok;
}

/* block_index_open(idx_path, {keyfile=N.key, account=, context=}) -> bytes | nil, message
 * An encrypted block's 2.9 index file in plaintext: the form a plaintext
 * store keeps it in (a snapshot for a target with another key, or none). */
static int l_block_index_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *keyfile, *account, *context;
    jsr_lua_keyfile_need(L, 2, "block_index_open", &keyfile, &account, &context);
    char err[JSR_ERRLEN], *data = NULL;
    size_t n, plen = 0;
    jsr_cipher c;
    unsigned char seed[32], nonce[24];
    if (!jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err, sizeof err) ||
        !jsr_read_file(path, 64u << 20, &data, &n, err, sizeof err)) {
        sodium_memzero(seed, sizeof seed);
        return jsr_push_fail(L, "%s", err);
    }
    size_t nl = jsr_cipher_nonce_len(c);
    unsigned char *in = malloc(nl + n), *out = malloc(n + 1);
    int ok = in && out;
    if (ok) {
        memcpy(in, nonce, nl);
        memcpy(in + nl, data, n);
        ok = jsr_aead_open(c, seed, in, nl + n, out, &plen);
    }
    sodium_memzero(seed, sizeof seed);
    free(data);
    free(in);
    if (!ok) {
        free(out);
        return jsr_push_fail(L, "%s: does not open with its block's key (tampered or truncated)", path);
    }
    lua_pushlstring(L, (const char *)out, plen);
    free(out);
    return 1;
}

/* A block's entry in index.db as the index scan_block checks it against:
 * its delete map is borrowed (not freed with ix).  A block the file does
 * not list holds nothing the server loads: every record below "first". */
static void from_indexdb(const jsr_indexdb *db, lua_Integer index, jsr_block_index *ix)
{
    memset(ix, 0, sizeof *ix);
    ix->present = ix->valid = 1;
    const jsr_indexdb_block *b =
        index >= 0 && index <= UINT32_MAX ? jsr_indexdb_block_find(db, (uint32_t)index) : NULL;
    if (!b) {
        ix->first_seq = UINT64_MAX;
        return;
    }
    ix->msgs = b->msgs;
    ix->bytes = b->bytes;
    ix->first_seq = b->first_seq;
    ix->last_seq = b->last_seq;
    ix->first_ts = b->first_ts;
    ix->last_ts = b->last_ts;
    ix->ndel = b->ndel;
    ix->dmap = b->dmap;
    ix->dmap_len = b->dmap_len;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The array at t as a delete map alone (valid = 0: no counts to check). */
static int extra_deleted(lua_State *L, int t, jsr_block_index *ix)
{
    memset(ix, 0, sizeof *ix);
    size_t n = lua_rawlen(L, t);
    if (!n)
        return 1;
    ix->dmap = malloc(n * sizeof *ix->dmap);
    if (!ix->dmap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, t, (lua_Integer)i + 1);
        int isnum;
        lua_Integer q = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || q < 0) {
            jsr_block_index_free(ix);
            return 0;
        }
        ix->dmap[i] = (uint64_t)q;
    }
    ix->dmap_len = n;
    qsort(ix->dmap, n, sizeof *ix->dmap, cmp_seq);
    return 1;
}

void jsr_lua_keyfile_opts(lua_State *L, int t, const char *fn, const char **keyfile,
                          const char **account, const char **context)
{
    /* an encrypted block: its N.key, opened with the keys jsr.set_keys set,
     * under PRF(account, context = "STREAM:N"); the strings stay on the stack */
    if (lua_getfield(L, t, "keyfile") == LUA_TSTRING)
        *keyfile = lua_tostring(L, -1);
    if (lua_getfield(L, t, "account") == LUA_TSTRING)
        *account = lua_tostring(L, -1);
    if (lua_getfield(L, t, "context") == LUA_TSTRING)
        *context = lua_tostring(L, -1);
    if (*keyfile && (!*account || !*context))
        luaL_error(L, "%s: keyfile needs account and context", fn);
}

void jsr_lua_keyfile_need(lua_State *L, int t, const char *fn, const char **keyfile,
                          const char **account, const char **context)
{
    *keyfile = *account = *context = NULL;
    luaL_checktype(L, t, LUA_TTABLE);
    jsr_lua_keyfile_opts(L, t, fn, keyfile, account, context);
    if (!*keyfile)
        luaL_error(L, "%s: keyfile, account and context are needed", fn);
}

static jsr_block_buf *shared_buf(lua_State *L)
{
    /* one buffer per Lua state, reused by every scan: no page faults per block */
    if (lua_getfield(L, LUA_REGISTRYINDEX, REG_SHARED_BUF) == LUA_TUSERDATA) {
        jsr_block_buf *b = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return b;
    }
    lua_pop(L, 1);
    jsr_block_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, MT_BUF);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_SHARED_BUF);
    return b;
}

static int buf_gc(lua_State *L)
{
    jsr_block_buf_free(luaL_checkudata(L, 1, MT_BUF));
    return 0;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

/* scan_block(path, key_name [, {index=path, last=bool, prev_seq=n,
 * records=function(rec), older_than=ns}]) -> stats (with .problems) | nil,
 * message.  older_than: stats.older counts the live records stamped before
 * it up to the first that is not, where the scan stops (stopped = true), as
 * the server's expiry does; no Lua call per record unless records is set. */
static int l_scan_block(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t klen;
    const char *kname = luaL_checklstring(L, 2, &klen);
    const char *idx_path = NULL, *keyfile = NULL, *account = NULL, *context = NULL;
    int last = 0, fn = 0;
    uint64_t prev = 0;
    lua_Integer older_than = 0;
    const jsr_indexdb *idb = NULL;
    int extra = 0;
    lua_Integer idb_block = -1;
    if (lua_istable(L, 3)) {
        /* 2.10+: the stream's msgs/index.db (indexdb_read) and this block's
         * number in it, in place of a 2.9 index file */
        if (lua_getfield(L, 3, "indexdb") != LUA_TNIL) {
            idb = jsr_lua_indexdb(L, -1);
            lua_getfield(L, 3, "block_index");
            idb_block = luaL_checkinteger(L, -1);
        }
        /* sequences to take as deleted besides the records' own marks:
         * the tombstones of later blocks (a rebuild's view, no index) */
        if (lua_getfield(L, 3, "deleted") == LUA_TTABLE)
            extra = lua_gettop(L);
        jsr_lua_keyfile_opts(L, 3, "scan_block", &keyfile, &account, &context);
        if (lua_getfield(L, 3, "index") == LUA_TSTRING)
            idx_path = lua_tostring(L, -1);
        lua_getfield(L, 3, "last");
        last = lua_toboolean(L, -1);
        lua_getfield(L, 3, "prev_seq");
        prev = (uint64_t)luaL_optinteger(L, -1, 0);
        lua_getfield(L, 3, "older_than");
        older_than = luaL_optinteger(L, -1, 0);
        if (lua_getfield(L, 3, "records") == LUA_TFUNCTION)
            fn = lua_gettop(L);
    } else if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
    }
    char err[JSR_ERRLEN];
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(kname, klen, &key))
        return luaL_error(L, "SHA-256 failed (OpenSSL)");
    jsr_block_cipher bc, *dec = NULL;
    jsr_block_index ix;
    if (keyfile) {
        jsr_cipher c;
        unsigned char seed[32], nonce[24];
        if (!jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err, sizeof err) ||
            !jsr_block_cipher_init(&bc, c, seed, nonce))
            return jsr_push_fail(L, "%s", err);
        dec = &bc;
        if (idx_path && !read_sealed_index(idx_path, &bc, &ix, err, sizeof err)) {
            jsr_block_cipher_free(&bc);
            return jsr_push_fail(L, "%s", err);
        }
    } else if (idx_path && !jsr_block_index_read(idx_path, &ix, err, sizeof err)) {
        return jsr_push_fail(L, "%s", err);
    }
    if (idb) {
        if (idx_path)
            jsr_block_index_free(&ix);
        idx_path = NULL;
        from_indexdb(idb, idb_block, &ix);
    } else if (extra && !idx_path) {
        if (!extra_deleted(L, extra, &ix)) {
            if (dec)
                jsr_block_cipher_free(dec);
            return luaL_error(L, "scan_block: deleted must be an array of sequences");
        }
        idx_path = ""; /* freed like an index file's */
    }
    jsr_block_buf *buf = shared_buf(L);
    lua_newtable(L);
    int problems = lua_gettop(L);
    if (idb && !ix.dmap && ix.first_seq == UINT64_MAX) {
        /* a block the trusted state does not list: the server does not load it */
        lua_createtable(L, 0, 3);
        lua_pushstring(L, "index");
        lua_setfield(L, -2, "kind");
        lua_pushfstring(L, "block %I is not in " JSR_MSGS_DIR "/" JSR_INDEX_DB ": while that file is trusted the "
                           "server does not load it", idb_block);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, problems, 1);
    }
    lua_newtable(L);
    int tombs = lua_gettop(L);
    lua_pushnil(L);
    scan_ctx ctx = {L, problems, fn, 0, (int64_t)older_than, 0, tombs, lua_gettop(L), 0};
    jsr_block_visitor v = {on_record, on_problem, &ctx};
    jsr_block_stats st;
    int ok = jsr_block_scan(path, &key, idx_path || idb ? &ix : NULL, last, &prev, buf, &v, &st,
                            dec, err, sizeof err);
    if (idx_path)
        jsr_block_index_free(&ix);
    if (dec)
        jsr_block_cipher_free(dec);
    if (ctx.raised) {
        lua_pushvalue(L, ctx.errslot);
        return lua_error(L);
    }
    if (!ok)
        return jsr_push_fail(L, "%s", err);
    lua_createtable(L, 0, 14);
    set_int(L, "records", st.records);
    set_int(L, "live", st.live);
    set_int(L, "deleted", st.deleted);
    set_int(L, "tombstones", st.tombstones);
    set_int(L, "first_seq", st.first_seq);
    set_int(L, "last_seq", st.last_seq);
    set_int(L, "first_ts", (uint64_t)st.first_ts);
    set_int(L, "last_ts", (uint64_t)st.last_ts);
    set_int(L, "live_bytes", st.live_bytes);
    set_int(L, "size", st.size);
    set_int(L, "last_record_seq", st.last_record_seq);
    lua_pushboolean(L, st.compressed);
    lua_setfield(L, -2, "compressed");
    set_int(L, "prev_seq", prev);
    if (older_than > 0)
        set_int(L, "older", ctx.older);
    lua_pushboolean(L, ctx.stopped);
    lua_setfield(L, -2, "stopped");
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", st.last_hash[i]);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "last_hash");
    lua_pushvalue(L, problems);
    lua_setfield(L, -2, "problems");
    /* the sequences this block's tombstones delete (2.10+) */
    lua_pushvalue(L, tombs);
    lua_setfield(L, -2, "tombstone_seqs");
    return 1;
}

/* Marks the records at the offsets in the table at index t of a block's
 * bytes deleted (see block_mark_deleted); returns NULL or what was wrong. */
static const char *mark_records(lua_State *L, int t, unsigned char *data, size_t n, int encrypted,
                                const jsr_hhkey *key, lua_Integer *bad)
{
    lua_Integer count = (lua_Integer)lua_rawlen(L, t);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, t, i);
        int isnum;
        lua_Integer off = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        *bad = off;
        if (!isnum || off < 0 || (uint64_t)off + JSR_REC_HDR > n)
            return "no record at offset";
        if (encrypted)
            data[off + 11] ^= 0x80;
        else if (data[off + 11] & 0x80)
            return "a deleted record already at offset";
        else if (!jsr_record_mark_deleted(data + off, n - (size_t)off, key))
            return "no whole record at offset";
    }
    return NULL;
}

/* options {encrypted=bool, key=name} at index i -> encrypted, key set */
static int mark_options(lua_State *L, int i, jsr_hhkey *key, int *has_key)
{
    int encrypted = 0;
    *has_key = 0;
    if (lua_istable(L, i)) {
        lua_getfield(L, i, "encrypted");
        encrypted = lua_toboolean(L, -1);
        lua_pop(L, 1);
        size_t klen;
        if (lua_getfield(L, i, "key") == LUA_TSTRING) {
            const char *kname = lua_tolstring(L, -1, &klen);
            if (!jsr_hhkey_from_name(kname, klen, key))
                return luaL_error(L, "SHA-256 failed (OpenSSL)");
            *has_key = 1;
        }
        lua_pop(L, 1);
    }
    luaL_argcheck(L, !(encrypted && *has_key), i,
                  "an encrypted block cannot be rehashed without its keyfile");
    return encrypted;
}

/* block_mark_deleted(path, offsets [, {encrypted=bool, key=name}]) ->
 * content | nil, message
 * The block's bytes with the records at offsets (from scan_block) marked
 * deleted: bit 63 of their sequence set, which servers skip when they
 * rebuild a block from its records; with key (STREAM-N, plaintext) each
 * record's hash is computed again over the changed sequence, which 2.10+
 * check (2.9 does not).  In an encrypted block (a stream cipher from
 * offset 0) the same bit of the ciphertext is flipped: the caller passes
 * only live records, and no key (2.9 only).  Nothing is written. */
static int l_block_mark_deleted(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    jsr_hhkey key;
    int has_key, encrypted = mark_options(L, 3, &key, &has_key);
    char *data;
    size_t n;
    char err[JSR_ERRLEN];
    if (!jsr_read_file(path, (size_t)1 << 30, &data, &n, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    /* keyfile=N.key (with account, context): an encrypted block decrypted
     * first, then handled as plaintext (decoded, marked, rehashed); the
     * caller encrypts the result again (block_crypt) or sends it plain */
    const char *keyfile = NULL, *account = NULL, *context = NULL;
    if (lua_istable(L, 3))
        jsr_lua_keyfile_opts(L, 3, "block_mark_deleted", &keyfile, &account, &context);
    if (keyfile) {
        jsr_cipher c;
        unsigned char seed[32], nonce[24];
        jsr_block_cipher bc;
        int ok = jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err, sizeof err);
        if (ok && !(ok = jsr_block_cipher_init(&bc, c, seed, nonce)))
            jsr_errf(err, sizeof err, "%s: the block cipher does not start", keyfile);
        sodium_memzero(seed, sizeof seed);
        if (ok) {
            if (!(ok = jsr_block_cipher_xor(&bc, (unsigned char *)data, n, 0)))
                jsr_errf(err, sizeof err, "%s: decrypting it failed (libsodium/OpenSSL)", path);
            jsr_block_cipher_free(&bc);
        }
        if (!ok) {
            free(data);
            return jsr_push_fail(L, "%s", err);
        }
    }
    /* a compressed block's offsets (from scan_block) are in its decoded
     * bytes: those are marked, and the block is written back uncompressed,
     * which servers load as it is (no "cmp" header) */
    if (!encrypted) {
        unsigned char *plain;
        size_t plen;
        int cmp = jsr_block_decompress_bytes((const unsigned char *)data, n, &plain, &plen, path,
                                             err, sizeof err);
        if (cmp < 0) {
            free(data);
            return jsr_push_fail(L, "%s", err);
        }
        if (cmp) {
            free(data);
            data = (char *)plain;
            n = plen;
        }
    }
    lua_Integer bad;
    const char *why = mark_records(L, 2, (unsigned char *)data, n, encrypted, has_key ? &key : NULL, &bad);
    if (why) {
        free(data);
        return jsr_push_fail(L, "%s: %s %I", path, why, bad);
    }
    lua_pushlstring(L, data, n);
    free(data);
    return 1;
}

/* records_mark_deleted(bytes, offsets [, {key=name}]) -> bytes | nil, message
 * The same on block bytes in memory (records salvage is about to write). */
static int l_records_mark_deleted(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    luaL_checktype(L, 2, LUA_TTABLE);
    jsr_hhkey key;
    int has_key, encrypted = mark_options(L, 3, &key, &has_key);
    luaL_Buffer b;
    unsigned char *data = (unsigned char *)luaL_buffinitsize(L, &b, n);
    memcpy(data, in, n);
    lua_Integer bad;
    const char *why = mark_records(L, 2, data, n, encrypted, has_key ? &key : NULL, &bad);
    if (why)
        return jsr_push_fail(L, "%s %I", why, bad);
    luaL_pushresultsize(&b, n);
    return 1;
}

static int l_block_compressed(lua_State *L)
{
    char err[JSR_ERRLEN];
    int r = jsr_block_is_compressed(luaL_checkstring(L, 1), err, sizeof err);
    if (r < 0)
        return jsr_push_fail(L, "%s", err);
    lua_pushboolean(L, r);
    return 1;
}
/* block_indexed_last(blk_path, idx_path [, keys]) -> last_seq, first_seq, msgs, last_ts | nil, msg
 * The block's last sequence from its 2.9 index file alone, when the index
 * describes the block as it is: its last-record hash equals the block's
 * final 8 bytes (every record ends with its hash), the rule the server
 * uses to trust an index; or, for an empty block, an index of no messages
 * (then first = last + 1).  nil, why: read the block instead. */
static int l_block_indexed_last(lua_State *L)
{
    const char *blk = luaL_checkstring(L, 1);
    const char *idx = luaL_checkstring(L, 2);
    jsr_block_index ix;
    char err[JSR_ERRLEN] = "";
    /* {keyfile=, account=, context=}: an encrypted block, whose index is
     * sealed with the block's key and whose last 8 bytes are compared
     * decrypted, as the server does (filestore.go recoverMsgBlock) */
    const char *keyfile = NULL, *account = NULL, *context = NULL;
    if (lua_istable(L, 3))
        jsr_lua_keyfile_opts(L, 3, "block_indexed_last", &keyfile, &account, &context);
    jsr_block_cipher bc, *dec = NULL;
    if (keyfile) {
        jsr_cipher c;
        unsigned char seed[32], nonce[24];
        int ok = jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err, sizeof err) &&
                 jsr_block_cipher_init(&bc, c, seed, nonce);
        sodium_memzero(seed, sizeof seed);
        if (!ok)
            return jsr_push_fail(L, "%s", *err ? err : "the block's cipher did not start");
        dec = &bc;
    }
    int read = dec ? read_sealed_index(idx, dec, &ix, err, sizeof err)
                   : jsr_block_index_read(idx, &ix, err, sizeof err);
    if (!read || !ix.valid) {
        jsr_block_index_free(&ix);
        if (dec)
            jsr_block_cipher_free(dec);
        return read ? jsr_push_fail(L, "%s: not a valid index file", idx)
                    : jsr_push_fail(L, "%s", err);
    }
    unsigned char tail[8];
    int match = 0;
    struct stat st;
    int fd = jsr_open_file(blk, &st, err, sizeof err);
    if (fd >= 0) {
        /* 2.9.10 recoverMsgBlock trusts an index that says "no messages"
         * for an empty block: how it keeps the last sequence of a stream
         * emptied by acks, deletes, a purge or max_age */
        match = ((st.st_size == 0 && ix.msgs == 0) ||
                 (ix.msgs > 0 && st.st_size >= 8 && pread(fd, tail, 8, st.st_size - 8) == 8 &&
                  (!dec || jsr_block_cipher_xor(dec, tail, 8, (uint64_t)st.st_size - 8)) &&
                  memcmp(tail, ix.lchk, 8) == 0));
        close(fd);
    }
    if (dec)
        jsr_block_cipher_free(dec);
    uint64_t last = ix.last_seq, first = ix.first_seq, msgs = ix.msgs;
    int64_t last_ts = ix.last_ts;
    jsr_block_index_free(&ix);
    if (fd < 0)
        return jsr_push_fail(L, "%s", err);
    if (!match)
        return jsr_push_fail(L, "%s: does not describe its block as it is", idx);
    if (last == 0 || last > (uint64_t)LUA_MAXINTEGER)
        return jsr_push_fail(L, "%s: no last sequence to take", idx);
    lua_pushinteger(L, (lua_Integer)last);
    lua_pushinteger(L, (lua_Integer)first);
    lua_pushinteger(L, (lua_Integer)msgs);
    lua_pushinteger(L, (lua_Integer)last_ts);
    return 4;
}


static const jsr_lua_type buf_type = {MT_BUF, NULL, buf_gc, NULL};

static const luaL_Reg block_funcs[] = {
    {"block_files", l_block_files},
    {"scan_block", l_scan_block},
    {"block_compressed", l_block_compressed},
    {"block_mark_deleted", l_block_mark_deleted},
    {"records_mark_deleted", l_records_mark_deleted},
    {"block_indexed_last", l_block_indexed_last},
    {"block_index_open", l_block_index_open},
    {NULL, NULL},
};

void jsr_block_register(lua_State *L)
{
    jsr_lua_class(L, &buf_type);
    luaL_setfuncs(L, block_funcs, 0);
    jsr_indexdb_register(L);
}
