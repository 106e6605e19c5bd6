/* libFuzzer target for the exact JSON codec (src/json.c).
 * Properties: decoding never crashes; whatever decodes, encodes; the
 * encoding decodes again and re-encodes to the same bytes (so a meta file
 * written once is stable under every later read/write). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "jsr/json.h"

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        jsr_json_setup(L);
    }
    char err[256];
    int top = lua_gettop(L);
    if (!jsr_json_decode(L, (const char *)data, size, err, sizeof err)) {
        if (!err[0])
            abort(); /* a failure must say why */
        lua_settop(L, top);
        return 0;
    }
    jsr_buf a, b;
    jsr_buf_init(&a);
    jsr_buf_init(&b);
    if (!jsr_json_encode(L, -1, &a, err, sizeof err))
        abort();
    lua_settop(L, top);
    if (!jsr_json_decode(L, a.data ? a.data : "", a.len, err, sizeof err))
        abort();
    if (!jsr_json_encode(L, -1, &b, err, sizeof err))
        abort();
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    jsr_buf_free(&a);
    jsr_buf_free(&b);
    lua_settop(L, top);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
