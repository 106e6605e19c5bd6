#define _GNU_SOURCE
#include "fuzz_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "jsr/lua_jsr.h"
#include "jsr/metasum.h"

#ifndef FUZZ_LUA_DIR
#error "FUZZ_LUA_DIR: the lua/ directory of this tree (the Makefile sets it)"
#endif

static int script_ref = LUA_NOREF;

void jsr_fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static int l_write(lua_State *L)
{
    size_t n;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &n);
    jsr_fuzz_write(path, data, n);
    return 0;
}

/* FUZZ_HH64(key_name, bytes) -> the 8 bytes of HighwayHash-64 (little
 * endian) a server appends to a snapshot or record, so inputs can carry a
 * correct checksum and reach the parsers behind it */
static int l_hh64(lua_State *L)
{
    size_t kn, n;
    const char *name = luaL_checklstring(L, 1, &kn);
    const char *data = luaL_checklstring(L, 2, &n);
    jsr_hhkey key;
    if (!jsr_hhkey_from_name(name, kn, &key))
        abort();
    uint64_t sum = jsr_hh64(&key, data, n);
    char out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (char)(sum >> (8 * i));
    lua_pushlstring(L, out, 8);
    return 1;
}

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

lua_State *jsr_fuzz_lua(const char *script)
{
    static lua_State *L;
    if (L)
        return L;
    char tmpl[] = "/tmp/jsr-fuzz-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    L = luaL_newstate();
    if (!L)
        abort();
    luaL_openlibs(L);
    luaL_requiref(L, "jsr", luaopen_jsr, 1);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_write);
    lua_setglobal(L, "FUZZ_WRITE");
    lua_pushcfunction(L, l_hh64);
    lua_setglobal(L, "FUZZ_HH64");
    lua_pushstring(L, tmpl);
    lua_setglobal(L, "STORE");
    static const char *init =
        "package.path = " "'" FUZZ_LUA_DIR "/?.lua;" FUZZ_LUA_DIR "/?/init.lua'\n"
        "package.cpath = ''\n"
        "assert(os.execute(\"mkdir -p '\" .. STORE .. \"/jetstream'\"))\n"
        "STORE_H = assert(jsr.open(STORE .. '/jetstream'))\n"
        "raft = require 'jsr.raft'\n"
        /* what lost.lua and prepare read of a meta state (raft.meta_state) */
        "function FUZZ_META_OK(st)\n"
        "  assert(type(st) == 'table' and type(st.problems) == 'table')\n"
        "  for _, p in ipairs(st.problems) do assert(type(p) == 'string') end\n"
        "  for k, s in pairs(st.streams) do\n"
        "    assert(type(k) == 'string' and type(s.account) == 'string' and type(s.name) == 'string',\n"
        "           'a stream assignment without an account or name string')\n"
        "    for n, c in pairs(s.consumers) do\n"
        "      assert(type(n) == 'string' and c.name == n and type(c.stream) == 'string')\n"
        "    end\n"
        "  end\n"
        "  for _, r in ipairs(st.removed) do\n"
        "    assert(type(r.account) == 'string' and type(r.stream) == 'string', 'a removal without a stream name')\n"
        "  end\n"
        "end\n"
        /* bytes as an S2 block of literals (64 KiB each) */
        "function FUZZ_S2(s)\n"
        "  local v, out = #s, {}\n"
        "  repeat local b = v & 0x7f; v = v >> 7; out[#out + 1] = string.char(v > 0 and b | 0x80 or b) until v == 0\n"
        "  for i = 1, #s, 65536 do\n"
        "    local c = s:sub(i, i + 65535)\n"
        "    out[#out + 1] = string.pack('<BI2', 61 << 2, #c - 1) .. c\n"
        "  end\n"
        "  return table.concat(out)\n"
        "end\n";
    if (luaL_dostring(L, init) != LUA_OK) {
        fprintf(stderr, "fuzz set-up: %s\n", lua_tostring(L, -1));
        abort();
    }
    if (luaL_loadstring(L, script) != LUA_OK) {
        fprintf(stderr, "fuzz script: %s\n", lua_tostring(L, -1));
        abort();
    }
    script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return L;
}

void jsr_fuzz_run(lua_State *L, const uint8_t *data, size_t size)
{
    lua_pushcfunction(L, traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, script_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
        fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
}
