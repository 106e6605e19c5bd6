#include "jsr/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "jsr/lua_jsr.h"

const jsr_builtin *jsr_builtin_find(const char *name)
{
    for (size_t i = 0; i < jsr_builtin_count; i++)
        if (!strcmp(jsr_builtins[i].name, name))
            return &jsr_builtins[i];
    return NULL;
}

/* package.searchers entry: `require "jsr.prepare"` finds the built-in
 * jsr/prepare.lua, so the binary runs from any directory. */
static int search_builtin(lua_State *L)
{
    const char *mod = luaL_checkstring(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = mod; *p; p++)
        luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    const jsr_builtin *s = jsr_builtin_find(lua_tostring(L, -1));
    if (!s) {
        lua_pushfstring(L, "no built-in module '%s'", lua_tostring(L, -1));
        return 1;
    }
    lua_pushfstring(L, "=[built-in %s]", s->name);
    if (luaL_loadbuffer(L, s->data, s->len, lua_tostring(L, -1)) != LUA_OK)
        return lua_error(L);
    lua_pushfstring(L, "[built-in %s]", s->name);
    return 2;
}

static void install_searcher(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    /* after the preload searcher, before the file searchers: the binary's
     * own library wins over a stray file of the same name */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, search_builtin);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = luaL_tolstring(L, 1, NULL);
    /* errors raised with a plain message are for the operator; a traceback
     * would only bury it.  JSR_DEBUG=1 shows it for developers. */
    const char *dbg = getenv("JSR_DEBUG");
    if (dbg && *dbg && strcmp(dbg, "0"))
        luaL_traceback(L, L, msg, 1);
    else
        lua_pushstring(L, msg);
    return 1;
}

int jsr_run(const char *script, int builtin, int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "js-recover: out of memory\n");
        return 3;
    }
    /* Lua's default pause (200) lets the heap reach twice what is live
     * before a cycle starts: on a store of many streams that garbage was
     * the larger part of the peak RSS.  150 cut prepare --dry-run's peak by
     * a fifth at 1,000 streams (49 -> 40 MiB) for no CPU time that showed
     * above the noise (make bench-scale). */
    lua_gc(L, LUA_GCINC, 150, 200, 0);
    luaL_openlibs(L);
    luaL_requiref(L, "jsr", luaopen_jsr, 0);
    lua_pop(L, 1);
    install_searcher(L);

    lua_pushcfunction(L, traceback);
    int status;
    if (builtin) {
        const jsr_builtin *s = jsr_builtin_find(script);
        if (!s) {
            fprintf(stderr, "js-recover: no built-in script %s\n", script);
            lua_close(L);
            return 2;
        }
        lua_pushfstring(L, "=[built-in %s]", s->name);
        status = luaL_loadbuffer(L, s->data, s->len, lua_tostring(L, -1));
        lua_remove(L, -2);
    } else {
        status = luaL_loadfile(L, script);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "js-recover: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 2;
    }
    lua_createtable(L, argc, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    luaL_checkstack(L, argc, "too many arguments");
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc, 1, 1);
    int code;
    if (status != LUA_OK) {
        fprintf(stderr, "js-recover: %s\n", lua_tostring(L, -1));
        code = 3;
    } else if (lua_isinteger(L, -1)) {
        code = (int)lua_tointeger(L, -1);
    } else if (lua_isboolean(L, -1)) {
        code = lua_toboolean(L, -1) ? 0 : 1;
    } else {
        code = 0;
    }
    fflush(stdout);
    lua_close(L);
    return code;
}
