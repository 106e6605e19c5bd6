/* The `jsr` Lua module, shared by the js-recover binary and jsr.so. */
#ifndef JSR_LUA_JSR_H
#define JSR_LUA_JSR_H

#include <lua.h>

#ifndef JSR_VERSION
#define JSR_VERSION "0.1.0"
#endif

int luaopen_jsr(lua_State *L);

/* Adds the message block functions to the table on top of the stack. */
void jsr_block_register(lua_State *L);

#endif
