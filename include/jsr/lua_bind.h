/* What every binding of the jsr module shares, in the manner of lauxlib's
 * luaL_fileresult and luaL_newlib: one failure shape, one way to make a
 * userdata type, one way to add functions to a sub-table. */
#ifndef JSR_LUA_BIND_H
#define JSR_LUA_BIND_H

#include <lauxlib.h>
#include <lua.h>

/* The failure convention of every jsr function: a wrong argument (a
 * missing or mistyped one, an unknown option) raises, through luaL_check*
 * or luaL_argerror; a problem of the store or the system (a file missing,
 * unreadable, corrupt, a path too long, out of memory) is returned as
 * nil, message, the message naming the file and what was wrong, for the
 * caller to test or to wrap in assert().  fmt takes lua_pushfstring's
 * formats.  Pushes the two, returns 2. */
int jsr_push_fail(lua_State *L, const char *fmt, ...);

/* Pushes the sorted names in the directory path (fsops.h jsr_list_dir) as
 * an array, or nil, message (jsr.listdir).  Returns the count pushed. */
int jsr_push_dir(lua_State *L, const char *path);

/* A userdata type: the metatable named mt has methods (NULL: none) as
 * __index, and gc and close (each may be NULL) as __gc and __close. */
typedef struct {
    const char *mt;
    const luaL_Reg *methods;
    lua_CFunction gc, close;
} jsr_lua_type;

/* Makes the metatable of type t (once).  Leaves the stack as it was. */
void jsr_lua_class(lua_State *L, const jsr_lua_type *t);

/* Adds f to the sub-table name (made if missing) of the table on top of
 * the stack: a codec's functions live under its format (jsr.s2.decode). */
void jsr_lua_subtable(lua_State *L, const char *name, const luaL_Reg *f);

#endif
