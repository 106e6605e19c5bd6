/* The `jsr` Lua module: thin bindings over the C store model.
 *
 * Conventions (as in Lua's io library): a wrong argument raises an error;
 * a problem with the store (missing file, bad JSON, refused path) returns
 * nil (fail) plus a message that names the file and what was wrong. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <crypt.h>
#include <lauxlib.h>
#include <lua.h>
#include <openssl/rand.h>

#include "jsr/changes.h"
#include "jsr/fsops.h"
#include "jsr/layout.h"
#include "jsr/lua_bind.h"
#include "jsr/lua_json.h"
#include "jsr/lua_jsr.h"
#include "jsr/lua_undo.h"
#include "jsr/metasum.h"
#include "jsr/walk.h"

#define MT_STORE "jsr.store"
#define MT_CHANGES "jsr.changes"
/* a meta.inf is a few KB; anything this big is not one */
#define META_MAX (8u << 20)

/* --------------------------------------------------------------- store */

/* A store opened with jsr.open: every call that reads or changes it as a
 * whole is a method, so no root is kept anywhere else (two stores may be
 * open at once: survivors reads several and writes one).  The paths are
 * freed by close, <close> or the collector. */
typedef struct {
    char *store_dir;
    char *js_dir;
} store_ud;

static store_ud *check_store(lua_State *L, int i)
{
    store_ud *s = luaL_checkudata(L, i, MT_STORE);
    if (!s->store_dir)
        luaL_error(L, "this store is closed");
    return s;
}

const char *jsr_lua_store_dir(lua_State *L, int i) { return check_store(L, i)->store_dir; }

/* open(store) -> store | nil, message */
static int l_open(lua_State *L)
{
    const char *arg = luaL_checkstring(L, 1);
    char store[PATH_MAX], js[PATH_MAX], err[JSR_ERRLEN];
    if (!jsr_find_store(arg, store, js, sizeof store, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    store_ud *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->store_dir = s->js_dir = NULL;
    luaL_setmetatable(L, MT_STORE);
    if (!(s->js_dir = strdup(js)) || !(s->store_dir = strdup(store)))
        return luaL_error(L, "out of memory");
    return 1;
}

static int store_close(lua_State *L)
{
    store_ud *s = luaL_checkudata(L, 1, MT_STORE);
    free(s->store_dir);
    free(s->js_dir);
    s->store_dir = s->js_dir = NULL;
    return 0;
}

/* store.store_dir, store.js_dir, or a method (the upvalue): as with a
 * closed Lua file, the methods of a closed store can still be looked up,
 * and raise when called */
static int store_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "store_dir"))
        lua_pushstring(L, check_store(L, 1)->store_dir);
    else if (k && !strcmp(k, "js_dir"))
        lua_pushstring(L, check_store(L, 1)->js_dir);
    else {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
    }
    return 1;
}

static int store_tostring(lua_State *L)
{
    store_ud *s = luaL_checkudata(L, 1, MT_STORE);
    lua_pushfstring(L, "jsr.store (%s)", s->store_dir ? s->store_dir : "closed");
    return 1;
}

static const char *kind_name(jsr_kind k)
{
    switch (k) {
    case JSR_ACCOUNT: return "account";
    case JSR_STREAM: return "stream";
    case JSR_CONSUMER: return "consumer";
    case JSR_RAFT: return "raft";
    case JSR_SKIPPED: return "skipped";
    default: return "error";
    }
}

static void setstr(lua_State *L, const char *k, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int walk_collect(const jsr_entry *e, void *ud)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 8);
    setstr(L, "kind", kind_name(e->kind));
    setstr(L, "path", e->path);
    setstr(L, "account", e->account);
    setstr(L, "stream", e->stream);
    setstr(L, "name", e->name);
    setstr(L, "message", e->message);
    if (e->kind == JSR_ACCOUNT || e->kind == JSR_RAFT) {
        lua_pushboolean(L, e->system);
        lua_setfield(L, -2, "system");
    }
    if (e->kind == JSR_RAFT) {
        setstr(L, "group", jsr_raft_group_kind(e->name));
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 1;
}

static int walk_next(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(2)) + 1;
    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(2));
    lua_rawgeti(L, lua_upvalueindex(1), i);
    return 1;
}

/* store:walk(): an iterator over entry tables (see SCRIPTING.md), or nil,
 * message when the store cannot be read. The listing is taken once, up
 * front, so changes made while iterating do not disturb it. */
static int l_walk(lua_State *L)
{
    const char *js = check_store(L, 1)->js_dir;
    char err[JSR_ERRLEN];
    if ((lua_newtable(L), !jsr_walk(js, walk_collect, L, err, sizeof err)))
        return jsr_push_fail(L, "%s", err);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, walk_next, 2);
    return 1;
}

/* ---------------------------------------------------------------- meta */

typedef struct {
    char dir[PATH_MAX];
    char inf[PATH_MAX];
    char sum[PATH_MAX];
    char keyfile[PATH_MAX];
    char key[PATH_MAX]; /* the name the checksum key is derived from */
    char account[256];  /* for encryption: the account ... */
    char context[600];  /* ... and STREAM or STREAM.CONSUMER */
    const char *kind;
} meta_paths;

static const char *base_of(const char *p, size_t end, size_t *len)
{
    size_t s = end;
    while (s > 0 && p[s - 1] != '/')
        s--;
    *len = end - s;
    return p + s;
}

/* Works out from a stream, consumer or Raft group directory (or its
 * meta.inf) which files belong to it and what its checksum key is:
 * the directory name, or STREAM/CONSUMER under obs/. */
static int meta_locate(lua_State *L, const char *arg, int keyarg, meta_paths *m, char *err,
                       size_t errlen)
{
    char clean[PATH_MAX];
    if (!jsr_path_clean(arg, clean, sizeof clean, err, errlen))
        return 0;
    size_t n = strlen(clean);
    const size_t inf = sizeof "/" JSR_META_INF - 1;
    if (n > inf && !strcmp(clean + n - inf, "/" JSR_META_INF))
        clean[n - inf] = 0;
    n = strlen(clean);
    if (snprintf(m->dir, sizeof m->dir, "%s", clean) >= (int)sizeof m->dir ||
        snprintf(m->inf, sizeof m->inf, "%s/" JSR_META_INF, clean) >= (int)sizeof m->inf ||
        snprintf(m->sum, sizeof m->sum, "%s/" JSR_META_SUM, clean) >= (int)sizeof m->sum ||
        snprintf(m->keyfile, sizeof m->keyfile, "%s/" JSR_META_KEY, clean) >= (int)sizeof m->keyfile)
        return jsr_errf(err, errlen, "%s: path too long", clean);
    size_t bl, pl, gl;
    const char *b = base_of(clean, n, &bl);
    size_t pend = (size_t)(b - clean) ? (size_t)(b - clean) - 1 : 0;
    const char *par = base_of(clean, pend, &pl);
    size_t gend = (size_t)(par - clean) ? (size_t)(par - clean) - 1 : 0;
    const char *gp = base_of(clean, gend, &gl);
    if (pl == sizeof JSR_CONSUMERS_DIR - 1 && !memcmp(par, JSR_CONSUMERS_DIR, pl)) {
        m->kind = "consumer";
        snprintf(m->key, sizeof m->key, "%.*s/%.*s", (int)gl, gp, (int)bl, b);
        snprintf(m->context, sizeof m->context, "%.*s.%.*s", (int)gl, gp, (int)bl, b);
        /* .../ACCOUNT/streams/STREAM/obs/CONSUMER */
        size_t l1, l2;
        const char *streams = base_of(clean, gp - clean ? (size_t)(gp - clean) - 1 : 0, &l1);
        const char *acct = base_of(clean, streams - clean ? (size_t)(streams - clean) - 1 : 0, &l2);
        snprintf(m->account, sizeof m->account, "%.*s", (int)l2, acct);
    } else {
        snprintf(m->context, sizeof m->context, "%.*s", (int)bl, b);
        /* .../ACCOUNT/streams/STREAM: the grandparent */
        snprintf(m->account, sizeof m->account, "%.*s", (int)gl, gp);
        m->kind = pl == sizeof JSR_RAFT_DIR - 1 && !memcmp(par, JSR_RAFT_DIR, pl) ? "raft" : "stream";
        snprintf(m->key, sizeof m->key, "%.*s", (int)bl, b);
    }
    if (keyarg && lua_istable(L, keyarg) && lua_getfield(L, keyarg, "key") == LUA_TSTRING) {
        snprintf(m->key, sizeof m->key, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    } else if (keyarg && lua_istable(L, keyarg)) {
        lua_pop(L, 1);
    }
    return 1;
}

/* read_meta(path [, {key=}]) -> cfg, info | nil, message, info */
static int l_read_meta(lua_State *L)
{
    const char *arg = luaL_checkstring(L, 1);
    meta_paths m;
    char err[JSR_ERRLEN];
    if (!meta_locate(L, arg, 2, &m, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    char *data = NULL, *sum = NULL;
    size_t len = 0, sumlen = 0;
    if (!jsr_read_file(m.inf, META_MAX, &data, &len, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_createtable(L, 0, 12); /* info */
    int info = lua_gettop(L);
    setstr(L, "path", m.inf);
    setstr(L, "dir", m.dir);
    setstr(L, "kind", m.kind);
    setstr(L, "key", m.key);
    lua_pushinteger(L, (lua_Integer)len);
    lua_setfield(L, info, "bytes");
    int encrypted = jsr_lexists(m.keyfile);
    lua_pushboolean(L, encrypted);
    lua_setfield(L, info, "encrypted");
    char computed[17];
    if (!jsr_metasum(m.key, data, len, computed)) {
        free(data);
        return luaL_error(L, "%s: SHA-256 failed (OpenSSL)", m.inf);
    }
    setstr(L, "sum_computed", computed);
    if (jsr_read_file(m.sum, 4096, &sum, &sumlen, err, sizeof err)) {
        lua_pushlstring(L, sum, sumlen);
        lua_setfield(L, info, "sum_file");
        lua_pushboolean(L, sumlen == 16 && !memcmp(sum, computed, 16));
        lua_setfield(L, info, "sum_ok");
        free(sum);
    } else {
        lua_pushboolean(L, 0);
        lua_setfield(L, info, "sum_ok");
        setstr(L, "sum_error", err);
    }
    if (encrypted) {
        if (!jsr_keys_set(L)) {
            /* without the server's key: report what is known, decode nothing */
            free(data);
            lua_pushboolean(L, 0);
            lua_pushvalue(L, info);
            return 2;
        }
        char *plain;
        size_t plen;
        const char *cipher, *which;
        int ok = jsr_meta_decrypt(L, m.keyfile, m.account, m.context, m.inf, data, len, &plain,
                                  &plen, &cipher, &which, err, sizeof err);
        free(data);
        if (!ok) {
            setstr(L, "error", err);
            luaL_pushfail(L);
            lua_pushstring(L, err);
            lua_pushvalue(L, info);
            return 3;
        }
        setstr(L, "cipher", cipher);
        setstr(L, "key_used", which);
        data = plain;
        len = plen;
    }
    char jerr[256];
    int ok = jsr_lua_json_decode(L, data, len, JSR_JSON_CONFIG_MAX_VALUES, jerr, sizeof jerr);
    free(data);
    if (!ok) {
        if (strncmp(jerr, "more than ", 10) == 0) /* the value limit */
            snprintf(err, sizeof err, "%s: %s: not a stream or consumer config", m.inf, jerr);
        else
            snprintf(err, sizeof err, "%s: invalid JSON: %s", m.inf, jerr);
        setstr(L, "error", err);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushvalue(L, info);
        return 3;
    }
    int is_object = lua_getmetatable(L, -1);
    if (is_object) {
        luaL_getmetatable(L, "jsr.json.object");
        is_object = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!is_object) {
        lua_pop(L, 1); /* the decoded value; info is on top again */
        snprintf(err, sizeof err, "%s: not a JSON object", m.inf);
        setstr(L, "error", err);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushvalue(L, info);
        return 3;
    }
    lua_pushvalue(L, info);
    return 2;
}

/* Stages meta.inf = bytes and its meta.sum into c. */
static int stage_meta_bytes(jsr_changes *c, const meta_paths *m, const char *data, size_t len,
                            char *err, size_t errlen)
{
    char sum[17];
    if (!jsr_metasum(m->key, data, len, sum))
        return jsr_errf(err, errlen, "%s: SHA-256 failed (OpenSSL)", m->inf);
    return jsr_changes_replace(c, m->inf, data, len, 0, err, errlen) &&
           jsr_changes_replace(c, m->sum, sum, 16, 0, err, errlen);
}

static int stage_write_meta(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    const char *arg = luaL_checkstring(L, patharg);
    luaL_checktype(L, patharg + 1, LUA_TTABLE);
    meta_paths m;
    if (!meta_locate(L, arg, patharg + 2, &m, err, errlen))
        return 0;
    jsr_buf b;
    jsr_buf_init(&b);
    char jerr[256];
    if (!jsr_lua_json_encode(L, patharg + 1, &b, jerr, sizeof jerr)) {
        jsr_buf_free(&b);
        return jsr_errf(err, errlen, "%s: cannot encode the config: %s", m.inf, jerr);
    }
    int ok;
    if (jsr_lexists(m.keyfile)) {
        /* re-encrypted under the same asset key; meta.sum covers the ciphertext */
        char *ct = NULL;
        size_t ctlen;
        ok = jsr_meta_encrypt(L, m.keyfile, m.account, m.context, m.inf, b.data, b.len, &ct,
                              &ctlen, err, errlen) &&
             stage_meta_bytes(c, &m, ct, ctlen, err, errlen);
        free(ct);
    } else {
        ok = stage_meta_bytes(c, &m, b.data, b.len, err, errlen);
    }
    jsr_buf_free(&b);
    return ok;
}

static int stage_rehash(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    const char *arg = luaL_checkstring(L, patharg);
    meta_paths m;
    if (!meta_locate(L, arg, patharg + 1, &m, err, errlen))
        return 0;
    char *data;
    size_t len;
    if (!jsr_read_file(m.inf, META_MAX, &data, &len, err, errlen))
        return 0;
    char sum[17];
    int ok = jsr_metasum(m.key, data, len, sum);
    free(data);
    if (!ok)
        return jsr_errf(err, errlen, "%s: SHA-256 failed (OpenSSL)", m.inf);
    return jsr_changes_replace(c, m.sum, sum, 16, 0, err, errlen);
}

static int stage_move(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    const char *arg = luaL_checkstring(L, patharg);
    int purge = 0;
    if (lua_istable(L, patharg + 1)) {
        lua_getfield(L, patharg + 1, "purge");
        purge = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    char clean[PATH_MAX];
    if (!jsr_path_clean(arg, clean, sizeof clean, err, errlen))
        return 0;
    return jsr_changes_move(c, clean, purge, err, errlen);
}

static int stage_mkdir(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    char clean[PATH_MAX];
    if (!jsr_path_clean(luaL_checkstring(L, patharg), clean, sizeof clean, err, errlen))
        return 0;
    return jsr_changes_mkdir(c, clean, err, errlen);
}

static int stage_rename(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    const char *from = luaL_checkstring(L, patharg);
    const char *to = luaL_checkstring(L, patharg + 1);
    return jsr_changes_rename(c, from, to, err, errlen);
}

static int stage_replace(lua_State *L, jsr_changes *c, int patharg, char *err, size_t errlen)
{
    const char *arg = luaL_checkstring(L, patharg);
    size_t len;
    const char *data = luaL_checklstring(L, patharg + 1, &len);
    lua_Integer mode = luaL_optinteger(L, patharg + 2, 0);
    luaL_argcheck(L, mode >= 0 && mode <= 07777, patharg + 2, "mode out of range");
    char clean[PATH_MAX];
    if (!jsr_path_clean(arg, clean, sizeof clean, err, errlen))
        return 0;
    return jsr_changes_replace(c, clean, data, len, (mode_t)mode, err, errlen);
}

typedef int (*stage_fn)(lua_State *, jsr_changes *, int, char *, size_t);

/* ------------------------------------------------------------- changes */

typedef struct {
    jsr_changes *c;
} changes_ud;

static changes_ud *check_changes(lua_State *L)
{
    changes_ud *u = luaL_checkudata(L, 1, MT_CHANGES);
    if (!u->c)
        luaL_error(L, "this set of changes is closed");
    return u;
}

/* store:changes() -> set | nil, message */
static int l_changes(lua_State *L)
{
    const char *root = check_store(L, 1)->store_dir;
    char err[JSR_ERRLEN];
    changes_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->c = NULL;
    luaL_setmetatable(L, MT_CHANGES);
    if (!(u->c = jsr_changes_open(root, err, sizeof err)))
        return jsr_push_fail(L, "%s", err);
    return 1;
}

static int staged(lua_State *L, stage_fn fn)
{
    changes_ud *u = check_changes(L);
    char err[JSR_ERRLEN];
    if (!fn(L, u->c, 2, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int c_write_meta(lua_State *L) { return staged(L, stage_write_meta); }
static int c_rehash(lua_State *L) { return staged(L, stage_rehash); }
static int c_move(lua_State *L) { return staged(L, stage_move); }
static int c_replace(lua_State *L) { return staged(L, stage_replace); }
static int c_rename(lua_State *L) { return staged(L, stage_rename); }
static int c_mkdir(lua_State *L) { return staged(L, stage_mkdir); }

static int c_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)jsr_changes_count(check_changes(L)->c));
    return 1;
}

static int c_commit(lua_State *L)
{
    changes_ud *u = check_changes(L);
    char err[JSR_ERRLEN];
    if (!jsr_changes_commit(u->c, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_pushstring(L, jsr_changes_id(u->c));
    return 1;
}

static int c_close(lua_State *L)
{
    changes_ud *u = luaL_checkudata(L, 1, MT_CHANGES);
    jsr_changes_free(u->c);
    u->c = NULL;
    return 0;
}

/* ------------------------------------------------------------- helpers */

static int l_metasum(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    char out[17];
    if (!jsr_metasum(name, data, len, out))
        return luaL_error(L, "SHA-256 failed (OpenSSL)");
    lua_pushstring(L, out);
    return 1;
}

static int l_tree_bytes(lua_State *L)
{
    const char *p = luaL_checkstring(L, 1);
    unsigned long long bytes, files;
    char err[JSR_ERRLEN];
    if (!jsr_tree_bytes(p, &bytes, &files, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_pushinteger(L, (lua_Integer)bytes);
    lua_pushinteger(L, (lua_Integer)files);
    return 2;
}

static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* monotime() -> seconds (float) on a monotonic clock, for rates and progress */
static int l_monotime(lua_State *L)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return luaL_error(L, "clock_gettime: %s", strerror(errno));
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* now_ns() -> nanoseconds since the epoch, the unit of message timestamps */
static int l_now_ns(lua_State *L)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return luaL_error(L, "clock_gettime: %s", strerror(errno));
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
    return 1;
}

static int l_random_hex(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0 && n <= 64, 1, "between 1 and 64 bytes");
    unsigned char raw[64];
    if (RAND_bytes(raw, (int)n) != 1)
        return luaL_error(L, "no random bytes from OpenSSL");
    char hex[129];
    for (lua_Integer i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    lua_pushlstring(L, hex, (size_t)(2 * n));
    return 1;
}

/* bcrypt(password) -> hash for a nats-server config, so the config file
 * does not hold the password (the server also warns about plaintext). */
static int l_bcrypt(lua_State *L)
{
    const char *pw = luaL_checkstring(L, 1);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof salt))
        return luaL_error(L, "bcrypt salt: %s", strerror(errno));
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return luaL_error(L, "out of memory");
    const char *h = crypt_r(pw, salt, cd);
    if (!h || h[0] == '*') {
        free(cd);
        return luaL_error(L, "bcrypt failed");
    }
    lua_pushstring(L, h);
    free(cd);
    return 1;
}

/* lstat(path) -> "file"|"directory"|"link"|"other"|nil, never following */
static int l_lstat(lua_State *L)
{
    struct stat st;
    if (lstat(luaL_checkstring(L, 1), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISREG(st.st_mode)   ? "file"
                      : S_ISDIR(st.st_mode) ? "directory"
                      : S_ISLNK(st.st_mode) ? "link"
                                            : "other");
    return 1;
}

static const luaL_Reg jsr_funcs[] = {
    {"open", l_open},
    {"read_meta", l_read_meta},
    {"metasum", l_metasum},
    {"tree_bytes", l_tree_bytes},
    {"isatty", l_isatty},
    {"random_hex", l_random_hex},
    {"monotime", l_monotime},
    {"now_ns", l_now_ns},
    {"bcrypt", l_bcrypt},
    {"lstat", l_lstat},
    {NULL, NULL},
};

static const luaL_Reg store_methods[] = {
    {"walk", l_walk},
    {"changes", l_changes},
    {"close", store_close},
    {NULL, NULL},
};

static const luaL_Reg changes_methods[] = {
    {"write_meta", c_write_meta},
    {"rehash", c_rehash},
    {"replace", c_replace},
    {"move", c_move},
    {"rename", c_rename},
    {"mkdir", c_mkdir},
    {"count", c_count},
    {"commit", c_commit},
    {"close", c_close},
    {NULL, NULL},
};

static const luaL_Reg json_funcs[] = {
    {"decode", jsr_json_l_decode},
    {"encode", jsr_json_l_encode},
    {"number", jsr_json_l_number},
    {"object", jsr_json_l_object},
    {"array", jsr_json_l_array},
    {"keys", jsr_json_l_keys},
    {"fields", jsr_json_l_fields},
    {NULL, NULL},
};

/* close as __gc and __close of the metatable on top of the stack */
static void set_closer(lua_State *L, lua_CFunction close)
{
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
}

int luaopen_jsr(lua_State *L)
{
    static const jsr_lua_type changes_type = {MT_CHANGES, changes_methods, c_close, c_close};
    jsr_json_setup(L);
    jsr_lua_class(L, &changes_type);

    luaL_newmetatable(L, MT_STORE);
    luaL_newlib(L, store_methods);
    jsr_undo_register(L); /* undo, journal, journal_finish, open_by, lock */
    lua_pushcclosure(L, store_index, 1);
    lua_setfield(L, -2, "__index");
    set_closer(L, store_close);
    lua_pushcfunction(L, store_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newlib(L, jsr_funcs);
    jsr_lua_subtable(L, "json", json_funcs);
    lua_getfield(L, -1, "json");
    jsr_json_pushnull(L);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, JSR_JSON_CONFIG_MAX_VALUES);
    lua_setfield(L, -2, "CONFIG_MAX_VALUES");
    lua_pop(L, 1);
    lua_pushliteral(L, JSR_VERSION);
    lua_setfield(L, -2, "version");
    jsr_block_register(L);
    jsr_crypto_register(L);
    jsr_raft_register(L);
    jsr_salvage_register(L);
    jsr_snapshot_register(L);
    jsr_operator_register(L);
    jsr_nats_register(L);
    jsr_layout_register(L);
    return 1;
}
