/* The undo, journal and guard methods of a store handle (jsr.open). */
#ifndef JSR_LUA_UNDO_H
#define JSR_LUA_UNDO_H

#include <lua.h>

/* Adds undo, journal, journal_finish, open_by and lock to the table on top
 * of the stack (the methods of a store handle, built by luaopen_jsr). */
void jsr_undo_register(lua_State *L);

#endif
