/* The `jsr` Lua module, shared by the js-recover binary and jsr.so. */
#ifndef JSR_LUA_JSR_H
#define JSR_LUA_JSR_H

#include <lua.h>

#ifndef JSR_VERSION
#define JSR_VERSION "0.1.0"
#endif

int luaopen_jsr(lua_State *L);

#endif
