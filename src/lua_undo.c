/* store:undo(), :journal(), :journal_finish(), :open_by(), :lock(): the
 * Lua side of undo.h and guard.h, methods of a store jsr.open returned,
 * with the conventions of lua_jsr.c (a wrong argument raises; a problem
 * with the store returns nil, message). */
#define _GNU_SOURCE
#include "jsr/lua_undo.h"

#include <unistd.h>

#include <lauxlib.h>

#include "jsr/fsops.h"
#include "jsr/guard.h"
#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"
#include "jsr/undo.h"

#define MT_LOCK "jsr.lock"

static void undone(const char *id, size_t ops, size_t gone, const char *gone_example, void *ud)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)ops);
    lua_setfield(L, -2, "ops");
    lua_pushinteger(L, (lua_Integer)gone);
    lua_setfield(L, -2, "gone");
    if (gone) {
        lua_pushstring(L, gone_example);
        lua_setfield(L, -2, "gone_example");
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* store:undo([{id=, ignore_purged=}]) -> {{id=, ops=, gone=, gone_example=}, ...}
 * newest first
 *   | nil, message, changed */
static int l_undo(lua_State *L)
{
    const char *store = jsr_lua_store_dir(L, 1);
    char err[JSR_ERRLEN];
    const char *id = NULL;
    int flags = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "id") != LUA_TNIL)
            id = luaL_checkstring(L, -1); /* stays on the stack while used */
        if (lua_getfield(L, 2, "ignore_purged") != LUA_TNIL && lua_toboolean(L, -1))
            flags |= JSR_UNDO_IGNORE_PURGED;
        lua_pop(L, 1);
    }
    lua_newtable(L);
    int changed = 0;
    if (!jsr_undo(store, id, flags, undone, L, &changed, err, sizeof err)) {
        jsr_push_fail(L, "%s", err);
        lua_pushboolean(L, changed);
        return 3;
    }
    return 1;
}

/* store:journal() -> {{id=, state=, ops=, error=}, ...} oldest first */
static int l_journal(lua_State *L)
{
    const char *store = jsr_lua_store_dir(L, 1);
    char err[JSR_ERRLEN];
    jsr_journal_info *list;
    size_t n;
    if (!jsr_journal_list(store, &list, &n, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, list[i].id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, jsr_jstate_name(list[i].state));
        lua_setfield(L, -2, "state");
        lua_pushinteger(L, (lua_Integer)list[i].ops);
        lua_setfield(L, -2, "ops");
        if (list[i].error) {
            lua_pushstring(L, list[i].error);
            lua_setfield(L, -2, "error");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    jsr_journal_list_free(list, n);
    return 1;
}

/* store:journal_finish() -> number of journals whose purge was finished */
static int l_journal_finish(lua_State *L)
{
    const char *store = jsr_lua_store_dir(L, 1);
    char err[JSR_ERRLEN];
    size_t purged;
    if (!jsr_journal_finish(store, &purged, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_pushinteger(L, (lua_Integer)purged);
    return 1;
}

/* store:open_by() -> {{pid=, command=, file=, how=}, ...}, unreadable:
 * the processes using the store's tree */
static int l_open_by(lua_State *L)
{
    const char *path = jsr_lua_store_dir(L, 1);
    char err[JSR_ERRLEN];
    jsr_opener *list;
    size_t n, unreadable;
    if (!jsr_open_by(path, &list, &n, &unreadable, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)list[i].pid);
        lua_setfield(L, -2, "pid");
        lua_pushstring(L, list[i].command);
        lua_setfield(L, -2, "command");
        lua_pushstring(L, list[i].file);
        lua_setfield(L, -2, "file");
        lua_pushstring(L, list[i].how);
        lua_setfield(L, -2, "how");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    jsr_open_by_free(list, n);
    lua_pushinteger(L, (lua_Integer)unreadable);
    return 2;
}

typedef struct {
    int fd;
} lock_ud;

/* store:lock() -> lock | nil, message; lock:unlock(), or let it close
 * (a to-be-closed variable, or garbage collection) */
static int l_lock(lua_State *L)
{
    const char *store = jsr_lua_store_dir(L, 1);
    char err[JSR_ERRLEN];
    lock_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->fd = -1;
    luaL_setmetatable(L, MT_LOCK);
    if ((u->fd = jsr_lock_store(store, err, sizeof err)) < 0)
        return jsr_push_fail(L, "%s", err);
    return 1;
}

static int lock_unlock(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, MT_LOCK);
    if (u->fd >= 0) {
        /* closing the only descriptor releases the flock; nothing to check */
        close(u->fd);
        u->fd = -1;
    }
    return 0;
}

static const luaL_Reg funcs[] = {
    {"undo", l_undo},
    {"journal", l_journal},
    {"journal_finish", l_journal_finish},
    {"open_by", l_open_by},
    {"lock", l_lock},
    {NULL, NULL},
};

static const luaL_Reg lock_methods[] = {{"unlock", lock_unlock}, {NULL, NULL}};
static const jsr_lua_type lock_type = {MT_LOCK, lock_methods, lock_unlock, lock_unlock};

void jsr_undo_register(lua_State *L)
{
    jsr_lua_class(L, &lock_type);
    luaL_setfuncs(L, funcs, 0); /* into the store's methods */
}
