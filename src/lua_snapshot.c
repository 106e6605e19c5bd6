/* jsr.snapshot_writer(): a stream snapshot as nats-server restores it and
 * natscli keeps it (stream.tar.s2): a tar (tar.c) framed as an S2 stream
 * (s2write.c), built piece by piece.  The caller declares each file with
 * its size, writes its bytes in pieces and takes the framed output as it
 * goes, so memory stays at one piece plus one 64 KiB chunk whatever the
 * stream's size.  Nothing is read or written here: js-recover's export and
 * restore decide where the bytes come from (the store, read-only) and go. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"
#include "jsr/s2write.h"
#include "jsr/tar.h"

#define MT_SNAPW "jsr.snapshot_writer"

typedef struct {
    unsigned char raw[JSR_S2W_CHUNK]; /* tar bytes not yet framed */
    size_t raw_len;
    unsigned char *out; /* framed bytes not yet taken */
    size_t out_len, out_cap;
    uint64_t left;      /* bytes the current file still owes */
    char name[512];     /* the current file, for messages */
    uint64_t tar_bytes; /* total tar bytes so far */
    int finished, failed;
} snapw;

static snapw *check(lua_State *L)
{
    snapw *w = luaL_checkudata(L, 1, MT_SNAPW);
    if (w->finished)
        luaL_error(L, "snapshot writer: already finished");
    return w;
}

static void out_reserve(lua_State *L, snapw *w, size_t more)
{
    if (w->out_len + more <= w->out_cap)
        return;
    size_t cap = w->out_cap ? w->out_cap : 65536 + 64;
    while (cap < w->out_len + more)
        cap *= 2;
    unsigned char *p = realloc(w->out, cap);
    if (!p)
        luaL_error(L, "snapshot writer: out of memory for %zu bytes", cap);
    w->out = p;
    w->out_cap = cap;
}

static void flush_chunk(lua_State *L, snapw *w)
{
    if (!w->raw_len)
        return;
    out_reserve(L, w, JSR_S2W_CHUNK_HDR + w->raw_len);
    w->out_len += jsr_s2w_chunk(w->out + w->out_len, w->raw, w->raw_len);
    w->raw_len = 0;
}

static void put(lua_State *L, snapw *w, const unsigned char *p, size_t n)
{
    w->tar_bytes += n;
    while (n) {
        size_t k = JSR_S2W_CHUNK - w->raw_len;
        if (k > n)
            k = n;
        if (p)
            memcpy(w->raw + w->raw_len, p, k);
        else
            memset(w->raw + w->raw_len, 0, k);
        w->raw_len += k;
        if (p)
            p += k;
        n -= k;
        if (w->raw_len == JSR_S2W_CHUNK)
            flush_chunk(L, w);
    }
}

static int l_new(lua_State *L)
{
    snapw *w = lua_newuserdatauv(L, sizeof *w, 0);
    memset(w, 0, sizeof *w);
    luaL_setmetatable(L, MT_SNAPW);
    out_reserve(L, w, JSR_S2W_ID_LEN);
    jsr_s2w_stream_id(w->out);
    w->out_len = JSR_S2W_ID_LEN;
    return 1;
}

static int l_file(lua_State *L)
{
    snapw *w = check(L);
    size_t nlen;
    const char *name = luaL_checklstring(L, 2, &nlen);
    lua_Integer size = luaL_checkinteger(L, 3);
    lua_Integer mtime = luaL_optinteger(L, 4, 0);
    if (w->left)
        return luaL_error(L, "snapshot writer: %s: %I bytes still owed before the next file",
                          w->name, (lua_Integer)w->left);
    if (size < 0)
        return luaL_error(L, "snapshot writer: %s: negative size", name);
    unsigned char hdr[3 * JSR_TAR_BLOCK + 1024];
    char err[256];
    if (nlen > 1000)
        return luaL_error(L, "snapshot writer: a name of %I bytes is too long", (lua_Integer)nlen);
    size_t n = jsr_tar_file_header(hdr, sizeof hdr, name, nlen, (uint64_t)size, 0640, mtime, err,
                                   sizeof err);
    if (!n)
        return luaL_error(L, "snapshot writer: %s", err);
    put(L, w, hdr, n);
    w->left = (uint64_t)size;
    snprintf(w->name, sizeof w->name, "%.*s", (int)(nlen > 500 ? 500 : nlen), name);
    if (!w->left)
        w->name[0] = 0;
    return 0;
}

static int l_write(lua_State *L)
{
    snapw *w = check(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    if (n > w->left)
        return luaL_error(L, "snapshot writer: %s: %I bytes written past its declared size",
                          w->name[0] ? w->name : "(no file)", (lua_Integer)(n - w->left));
    put(L, w, (const unsigned char *)p, n);
    w->left -= n;
    if (!w->left) {
        /* the declared size is the whole file: its padding follows now */
        put(L, w, NULL, jsr_tar_padding(w->tar_bytes));
        w->name[0] = 0;
    }
    return 0;
}

static int l_finish(lua_State *L)
{
    snapw *w = check(L);
    if (w->left)
        return luaL_error(L, "snapshot writer: %s: %I bytes still owed", w->name,
                          (lua_Integer)w->left);
    put(L, w, NULL, 2 * JSR_TAR_BLOCK); /* the end-of-archive marker */
    flush_chunk(L, w);
    w->finished = 1;
    return 0;
}

static int l_take(lua_State *L)
{
    snapw *w = luaL_checkudata(L, 1, MT_SNAPW);
    lua_pushlstring(L, w->out ? (const char *)w->out : "", w->out_len);
    w->out_len = 0;
    /* the last bytes taken: the buffer goes now, not when Lua collects
     * the writer (it does not count this memory; a restore of 1,000
     * streams held that many buffers, 70 MB) */
    if (w->finished) {
        free(w->out);
        w->out = NULL;
        w->out_cap = 0;
    }
    return 1;
}

static int l_tar_bytes(lua_State *L)
{
    snapw *w = luaL_checkudata(L, 1, MT_SNAPW);
    lua_pushinteger(L, (lua_Integer)w->tar_bytes);
    return 1;
}

static int l_gc(lua_State *L)
{
    snapw *w = luaL_checkudata(L, 1, MT_SNAPW);
    free(w->out);
    w->out = NULL;
    w->out_len = w->out_cap = 0;
    return 0;
}

/* mkdir(path) -> true | nil, msg: one directory (0755), an existing
 * directory is fine: export's output tree, never inside the store. */
static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (mkdir(path, 0755) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return jsr_push_fail(L, "%s: cannot create the directory: %s", path, strerror(e));
}

/* realpath(path) -> absolute path | nil, msg (export refuses an output
 * directory inside the store it reads) */
static int l_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r)
        return jsr_push_fail(L, "%s: %s", path, strerror(errno));
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static const luaL_Reg methods[] = {
    {"file", l_file},   {"write", l_write},         {"finish", l_finish},
    {"take", l_take},   {"tar_bytes", l_tar_bytes}, {NULL, NULL},
};

static const jsr_lua_type writer_type = {MT_SNAPW, methods, l_gc, NULL};

void jsr_snapshot_register(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"snapshot_writer", l_new},
        {"mkdir", l_mkdir},
        {"realpath", l_realpath},
        {NULL, NULL},
    };
    jsr_lua_class(L, &writer_type);
    luaL_setfuncs(L, f, 0);
}
