#define _GNU_SOURCE
/* libFuzzer target for the meta reader: jsr.read_meta on a stream
 * directory whose meta.inf is the input (file read, checksum, decode), and
 * write_meta of what it decoded (which must give a file that reads back to
 * the same bytes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "jsr/lua_jsr.h"

static lua_State *L;
static char dir[256];

static void setup(void)
{
    char tmpl[] = "/tmp/jsr-fuzz-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    snprintf(dir, sizeof dir, "%s/jetstream/ACC/streams/S", tmpl);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        abort();
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "jsr", luaopen_jsr, 1);
    lua_pop(L, 1);
    lua_pushstring(L, tmpl);
    lua_setglobal(L, "STORE");
    lua_pushstring(L, dir);
    lua_setglobal(L, "DIR");
    if (luaL_dostring(L, "STORE_H = assert(jsr.open(STORE))") != LUA_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        setup();
    char path[300];
    snprintf(path, sizeof path, "%s/meta.inf", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    static const char *check =
        "local cfg, info = jsr.read_meta(DIR)\n"
        "if type(cfg) ~= 'table' then return end\n"
        "local before = io.open(DIR .. '/meta.inf', 'rb'):read('a')\n"
        "local c <close> = assert(STORE_H:changes())\n"
        "local ok, err = c:write_meta(DIR, cfg)\n"
        "if not ok then assert(err:find('cannot encode', 1, true), err) return end\n"
        "assert(c:commit())\n"
        "local again, info2 = jsr.read_meta(DIR)\n"
        "assert(type(again) == 'table' and info2.sum_ok, 'written file does not read back')\n"
        "local text = io.open(DIR .. '/meta.inf', 'rb'):read('a')\n"
        "assert(jsr.json.encode(again) == text, 'not stable')\n";
    if (luaL_dostring(L, check) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
