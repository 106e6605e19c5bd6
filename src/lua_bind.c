/* The helpers every binding shares (lua_bind.h). */
#include "jsr/lua_bind.h"

#include <stdarg.h>

#include "jsr/fsops.h"

int jsr_push_fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    luaL_pushfail(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

int jsr_push_dir(lua_State *L, const char *path)
{
    char **names, err[JSR_ERRLEN];
    size_t n;
    if (!jsr_list_dir(path, &names, &n, err, sizeof err))
        return jsr_push_fail(L, "%s", err);
    /* the names are C strings until the table is made: Lua raising "not
     * enough memory" in between would leak them, nothing worse */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    jsr_names_free(names, n);
    return 1;
}

void jsr_lua_class(lua_State *L, const jsr_lua_type *t)
{
    if (luaL_newmetatable(L, t->mt)) {
        if (t->methods) {
            lua_newtable(L);
            luaL_setfuncs(L, t->methods, 0);
            lua_setfield(L, -2, "__index");
        }
        if (t->gc) {
            lua_pushcfunction(L, t->gc);
            lua_setfield(L, -2, "__gc");
        }
        if (t->close) {
            lua_pushcfunction(L, t->close);
            lua_setfield(L, -2, "__close");
        }
    }
    lua_pop(L, 1);
}

void jsr_lua_subtable(lua_State *L, const char *name, const luaL_Reg *f)
{
    if (lua_getfield(L, -1, name) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
    }
    luaL_setfuncs(L, f, 0);
    lua_pop(L, 1);
}
