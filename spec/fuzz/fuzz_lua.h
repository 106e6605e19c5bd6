/* What the fuzz targets that run js-recover's Lua parsers share: a Lua
 * state with the jsr module and the modules of lua/jsr/ (this tree's, so a target
 * always runs the code it was built beside), a scratch store, and the rule
 * that turns a Lua error into a finding. */
#ifndef JSR_FUZZ_LUA_H
#define JSR_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* The state, made on first use.  Globals: jsr, raft (= require "jsr.raft"),
 * STORE (a scratch store root), STORE_H (its jsr.open handle), FUZZ_WRITE(path,
 * bytes) (writes a whole file), FUZZ_HH64(key_name, bytes) (a snapshot's
 * or record's checksum), FUZZ_S2(bytes) (an S2 block of literals) and
 * FUZZ_META_OK(state) (asserts a raft.meta_state result is usable).  script is compiled
 * once and called by jsr_fuzz_run. */
lua_State *jsr_fuzz_lua(const char *script);

/* Calls the script with the input as a string.  A parser must answer bad
 * input with nil and a message, never by raising: any error the script
 * raises (an assert of its own, "attempt to index a nil value" in a
 * parser, a C binding's luaL_error) is printed and aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
void jsr_fuzz_run(lua_State *L, const uint8_t *data, size_t size);

/* Writes bytes to path whole, or aborts. */
void jsr_fuzz_write(const char *path, const void *data, size_t n);

#endif
