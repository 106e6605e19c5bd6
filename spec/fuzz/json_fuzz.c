/* libFuzzer target for the exact JSON codec (src/json.c, and its Lua
 * binding src/lua_json.c).
 * Properties: decoding never crashes; whatever decodes, encodes; the
 * encoding decodes again and re-encodes to the same bytes (so a meta file
 * written once is stable under every later read/write); the C tree and
 * the Lua values accept the same inputs and encode them to the same
 * bytes (but for a string on its own, whose spelling a Lua string
 * cannot carry). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "jsr/json.h"
#include "jsr/lua_json.h"

static lua_State *L;

/* The tree's encoding of text into out: 1, or 0 if it does not parse. */
static int tree_encode(const char *text, size_t len, jsr_buf *out)
{
    char err[256];
    jsr_json_doc *doc = jsr_json_parse(text, len, NULL, err, sizeof err);
    if (!doc) {
        if (!err[0])
            abort(); /* a failure must say why */
        return 0;
    }
    jsr_json_writer w;
    jsr_json_writer_init(&w, out, 0);
    jsr_json_w_value(&w, jsr_json_root(doc));
    jsr_json_doc_free(doc);
    if (out->failed)
        abort();
    return 1;
}

static int same(const jsr_buf *a, const jsr_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        jsr_json_setup(L);
    }
    char err[256];
    int top = lua_gettop(L);
    jsr_buf a, b, t, t2;
    jsr_buf_init(&a);
    jsr_buf_init(&b);
    jsr_buf_init(&t);
    jsr_buf_init(&t2);
    int tree_ok = tree_encode((const char *)data, size, &t);
    if (!jsr_lua_json_decode(L, (const char *)data, size, 0, err, sizeof err)) {
        if (!err[0] || tree_ok)
            abort();
        lua_settop(L, top);
        return 0;
    }
    if (!tree_ok)
        abort();
    if (!jsr_lua_json_encode(L, -1, &a, err, sizeof err))
        abort();
    if (!same(&a, &t) && !(size && lua_type(L, -1) == LUA_TSTRING))
        abort(); /* the tree writes what the Lua values write */
    lua_settop(L, top);
    if (!jsr_lua_json_decode(L, a.data ? a.data : "", a.len, 0, err, sizeof err))
        abort();
    if (!jsr_lua_json_encode(L, -1, &b, err, sizeof err))
        abort();
    if (!same(&a, &b) || !tree_encode(t.data ? t.data : "", t.len, &t2) || !same(&t, &t2))
        abort();
    jsr_buf_free(&a);
    jsr_buf_free(&b);
    jsr_buf_free(&t);
    jsr_buf_free(&t2);
    lua_settop(L, top);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
