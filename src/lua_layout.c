/* jsr.layout: the names of layout.h for Lua, and the paths built from them
 * (SCRIPTING.md "jsr.layout"), so no script spells a store's layout. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "jsr/layout.h"
#include "jsr/lua_jsr.h"

static const struct {
    const char *key, *value;
} names[] = {
    {"JS_DIR", JSR_JS_DIR},
    {"STREAMS_DIR", JSR_STREAMS_DIR},
    {"RAFT_DIR", JSR_RAFT_DIR},
    {"META_GROUP", JSR_META_GROUP},
    {"STREAM_GROUP_PREFIX", JSR_STREAM_GROUP_PREFIX},
    {"CONSUMER_GROUP_PREFIX", JSR_CONSUMER_GROUP_PREFIX},
    {"MSGS_DIR", JSR_MSGS_DIR},
    {"CONSUMERS_DIR", JSR_CONSUMERS_DIR},
    {"META_INF", JSR_META_INF},
    {"META_SUM", JSR_META_SUM},
    {"META_KEY", JSR_META_KEY},
    {"CONSUMER_STATE", JSR_CONSUMER_STATE},
    {"INDEX_DB", JSR_INDEX_DB},
    {"BLK_EXT", JSR_BLK_EXT},
    {"IDX_EXT", JSR_IDX_EXT},
    {"FSS_EXT", JSR_FSS_EXT},
    {"KEY_EXT", JSR_KEY_EXT},
    {"RAFT_SNAPSHOTS", JSR_RAFT_SNAPSHOTS},
    {"RAFT_SNAPSHOT_PREFIX", JSR_RAFT_SNAPSHOT_PREFIX},
    {"RAFT_PEERS", JSR_RAFT_PEERS},
    {"RAFT_TAV", JSR_RAFT_TAV},
    {"STATE_DIR", JSR_STATE_DIR},
    {"JOURNAL_DIR", JSR_JOURNAL_DIR},
    {"BACKUP_DIR", JSR_BACKUP_DIR},
    {"REMOVED_DIR", JSR_REMOVED_DIR},
    {"JOURNAL_EXT", JSR_JOURNAL_EXT},
    {"TMP_SUFFIX", JSR_TMP_SUFFIX},
    {"REPORT", JSR_REPORT},
    {"CONFIG", JSR_CONFIG},
};

/* Paths made of directories the caller names (each %s, in order) and
 * layout names: layout.index_db(stream_dir) and the like.  A first
 * directory "" gives the name relative to it (index_db("") is
 * "msgs/index.db", as a snapshot's tar names it). */
static const struct {
    const char *key, *fmt;
} paths[] = {
    {"stream_dir", "%s/%s/" JSR_STREAMS_DIR "/%s"}, /* js_dir, account, stream */
    {"streams_dir", "%s/" JSR_STREAMS_DIR},          /* account_dir */
    {"consumer_dir", "%s/" JSR_CONSUMERS_DIR "/%s"}, /* stream_dir, consumer */
    {"consumers_dir", "%s/" JSR_CONSUMERS_DIR},      /* stream_dir */
    {"msgs_dir", "%s/" JSR_MSGS_DIR},                /* stream or group dir */
    {"index_db", "%s/" JSR_MSGS_DIR "/" JSR_INDEX_DB},
    {"meta_inf", "%s/" JSR_META_INF},
    {"meta_sum", "%s/" JSR_META_SUM},
    {"meta_key", "%s/" JSR_META_KEY},
    {"consumer_state", "%s/" JSR_CONSUMER_STATE},    /* consumer_dir */
    {"raft_dir", "%s/" JSR_RAFT_DIR},                /* account_dir */
    {"meta_group", "%s/" JSR_RAFT_DIR "/" JSR_META_GROUP},
    {"snapshots_dir", "%s/" JSR_RAFT_SNAPSHOTS},     /* group_dir */
    {"peers", "%s/" JSR_RAFT_PEERS},
    {"tav", "%s/" JSR_RAFT_TAV},
    {"js_dir", "%s/" JSR_JS_DIR},                    /* store_dir */
    {"state_dir", "%s/" JSR_STATE_DIR},
    {"journal_dir", "%s/" JSR_JOURNAL_DIR},
    {"removed_dir", "%s/" JSR_REMOVED_DIR},
    {"report", "%s/" JSR_REPORT},
    {"config", "%s/" JSR_CONFIG},
};

static int path_of(lua_State *L)
{
    const char *fmt = lua_tostring(L, lua_upvalueindex(1));
    int arg = 1;
    for (const char *p = strstr(fmt, "%s"); p; p = strstr(p + 2, "%s"))
        luaL_checkstring(L, arg++); /* before the buffer takes a stack slot */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    arg = 1;
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            size_t n;
            const char *s = lua_tolstring(L, arg++, &n);
            luaL_addlstring(&b, s, n);
            p++;
            if (n == 0 && p == fmt + 1 && p[1] == '/')
                p++; /* relative: no leading '/' */
        } else {
            luaL_addchar(&b, *p);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int ext_arg(lua_State *L, int i, const char **ext)
{
    *ext = luaL_optstring(L, i, JSR_BLK_EXT);
    if (!**ext || strchr(*ext, '/') || strchr(*ext, '.'))
        return luaL_argerror(L, i, "an extension without '.' or '/' (\"blk\", \"idx\", ...)");
    return 1;
}

/* block(dir, index [, ext]) -> dir/msgs/<index>.<ext> (ext "blk" unless given;
 * dir "": msgs/<index>.<ext>) */
static int l_block(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1), *ext;
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 0 && i <= 0xffffffff, 2, "a block index (0 ... 2^32-1)");
    ext_arg(L, 3, &ext);
    lua_pushfstring(L, "%s%s" JSR_MSGS_DIR "/%I.%s", dir, *dir ? "/" : "", i, ext);
    return 1;
}

/* block_file(blk_path, ext) -> the block's file of that extension beside it
 * (.../N.blk -> .../N.idx) */
static int l_block_file(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n), *ext;
    const size_t sl = sizeof "." JSR_BLK_EXT - 1;
    luaL_argcheck(L, n > sl && !strcmp(p + n - sl, "." JSR_BLK_EXT), 1,
                  "a block's path (ending in ." JSR_BLK_EXT ")");
    luaL_checkstring(L, 2);
    ext_arg(L, 2, &ext);
    luaL_Buffer b; /* after the arguments are checked: it takes a stack slot */
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, p, n - sl + 1);
    luaL_addstring(&b, ext);
    luaL_pushresult(&b);
    return 1;
}

/* block_index(name [, ext]) -> N for a file name "N.<ext>" (ext "blk" unless
 * given), else nil */
static int l_block_index(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1), *ext;
    ext_arg(L, 2, &ext);
    size_t d = strspn(name, "0123456789");
    if (d == 0 || d > 10 || name[d] != '.' || strcmp(name + d + 1, ext) != 0) {
        luaL_pushfail(L);
        return 1;
    }
    unsigned long long v = strtoull(name, NULL, 10);
    if (v > 0xffffffffull) {
        luaL_pushfail(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

/* raft_dir_of(group_dir) -> the _js_ directory the group's directory is in */
static int l_raft_dir_of(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    while (n > 1 && p[n - 1] == '/')
        n--;
    const char *slash = NULL;
    for (size_t i = n; i-- > 0;)
        if (p[i] == '/') {
            slash = p + i;
            break;
        }
    luaL_argcheck(L, slash && slash > p, 1, "a Raft group's directory (<dir>/" JSR_RAFT_DIR "/<group>)");
    lua_pushlstring(L, p, (size_t)(slash - p));
    return 1;
}

/* snapshot_of(name) -> term, index of a file named snap.<term>.<index>, else nil */
static int l_snapshot_of(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const size_t pl = sizeof JSR_RAFT_SNAPSHOT_PREFIX - 1;
    lua_Integer v[2];
    const char *p = name + pl;
    if (strncmp(name, JSR_RAFT_SNAPSHOT_PREFIX, pl) != 0)
        goto no;
    for (int i = 0; i < 2; i++) {
        size_t d = strspn(p, "0123456789");
        if (d == 0 || p[d] != (i == 0 ? '.' : '\0'))
            goto no;
        v[i] = 0;
        for (size_t k = 0; k < d; k++) {
            if (v[i] > (LUA_MAXINTEGER - (p[k] - '0')) / 10)
                goto no; /* past what a Lua integer holds */
            v[i] = v[i] * 10 + (p[k] - '0');
        }
        p += d + 1;
    }
    lua_pushinteger(L, v[0]);
    lua_pushinteger(L, v[1]);
    return 2;
no:
    luaL_pushfail(L);
    return 1;
}

/* group_kind(name) -> "meta", "stream", "consumer" or "unknown" */
static int l_group_kind(lua_State *L)
{
    lua_pushstring(L, jsr_raft_group_kind(luaL_checkstring(L, 1)));
    return 1;
}

void jsr_layout_register(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"block", l_block},
        {"block_file", l_block_file},
        {"block_index", l_block_index},
        {"raft_dir_of", l_raft_dir_of},
        {"group_kind", l_group_kind},
        {"snapshot_of", l_snapshot_of},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        lua_pushstring(L, names[i].value);
        lua_setfield(L, -2, names[i].key);
    }
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        lua_pushstring(L, paths[i].fmt);
        lua_pushcclosure(L, path_of, 1);
        lua_setfield(L, -2, paths[i].key);
    }
    lua_setfield(L, -2, "layout");
}
