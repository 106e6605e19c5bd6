/* jsr.json: the exact codec of json.h for Lua values.
 *
 * Decoding gives integers that fit int64 as Lua integers and every other
 * number boxed (jsr.json.number) with its exact text; objects and arrays
 * are tables with the metatables jsr.json.object / jsr.json.array, each
 * remembering (in a weak registry table) its keys in file order and the
 * original spelling of strings whose escapes differ from Go's, so an
 * unchanged value re-encodes byte for byte.  Keys a script adds are
 * written after the known ones, sorted as Go sorts map keys. */
#ifndef JSR_LUA_JSON_H
#define JSR_LUA_JSON_H

#include <stddef.h>

#include <lua.h>

#include "jsr/buf.h"
#include "jsr/json.h"

/* Registers the metatables and the key-order registry in L. Call once per
 * state before the functions below. */
void jsr_json_setup(lua_State *L);

/* Pushes the decoded value and returns 1, or returns 0 with a message (that
 * names the byte offset) in err and the stack as it was; more than
 * max_values values (0: no limit) are refused: "more than N values at
 * byte B". */
int jsr_lua_json_decode(lua_State *L, const char *text, size_t len, size_t max_values,
                        char *err, size_t errlen);

/* Appends the encoding of the value at idx to out.  Returns 1, or 0 with a
 * message in err. */
int jsr_lua_json_encode(lua_State *L, int idx, jsr_buf *out, char *err, size_t errlen);

/* Pushes the null sentinel (a light userdata) used for JSON null. */
void jsr_json_pushnull(lua_State *L);

/* Lua functions for the jsr.json table. */
int jsr_json_l_decode(lua_State *L);
int jsr_json_l_encode(lua_State *L);
int jsr_json_l_number(lua_State *L);
int jsr_json_l_object(lua_State *L);
int jsr_json_l_array(lua_State *L);
int jsr_json_l_keys(lua_State *L);
int jsr_json_l_fields(lua_State *L);

#endif
