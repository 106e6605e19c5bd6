/* jsr.json (see lua_json.h): Lua values to and from json.c's parser and
 * writer. */
#include "jsr/lua_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "jsr/lua_bind.h"

#define MT_OBJECT "jsr.json.object"
#define MT_ARRAY "jsr.json.array"
#define MT_NUMBER "jsr.json.number"
/* The codec's C memory (parser scratch, output buffers) is held by a
 * userdata with __gc, so a Lua error raised midway (out of memory) leaks
 * none of it.  One set per state is reused (a userdata made per call
 * made decoding a config 1.7 times as slow); a call made while it is in
 * use (from a finalizer, say) gets its own. */
#define MT_SCRATCH "jsr.json.scratch"
#define MT_BUF "jsr.json.buf"
#define MT_MEM "jsr.json.mem"
/* What the reused output buffer may keep between calls. */
#define KEEP_OUT (1u << 20)

typedef struct {
    jsr_json_scratch scratch;
    jsr_buf out;
    int scratch_busy, out_busy; /* stays set after an error jumped past: then each call
                                 * gets its own */
} mem;

static const char reg_mem = 0; /* its address: the registry key of the mem */
/* Weak-keyed registry table: container -> info table.  An object's info
 * holds its keys in order (array part); both kinds may hold `raw` (key or
 * index -> original spelling) and `rawv` (key or index -> decoded string
 * the spelling stands for) for strings written with non-Go escapes, and
 * an object's `rawk` (key -> original spelling of the key itself). */
#define REG_INFO "jsr.json.info"

/* ---------------------------------------------------------------- setup */

static int number_tostring(lua_State *L)
{
    lua_getfield(L, 1, "text");
    return 1;
}

static int number_eq(lua_State *L)
{
    lua_getfield(L, 1, "text");
    lua_getfield(L, 2, "text");
    lua_pushboolean(L, lua_rawequal(L, -1, -2));
    return 1;
}

static int scratch_gc(lua_State *L)
{
    jsr_json_scratch_free(luaL_checkudata(L, 1, MT_SCRATCH));
    return 0;
}

static int buf_gc(lua_State *L)
{
    jsr_buf_free(luaL_checkudata(L, 1, MT_BUF));
    return 0;
}

static int mem_gc(lua_State *L)
{
    mem *m = luaL_checkudata(L, 1, MT_MEM);
    jsr_json_scratch_free(&m->scratch);
    jsr_buf_free(&m->out);
    return 0;
}

void jsr_json_setup(lua_State *L)
{
    luaL_newmetatable(L, MT_OBJECT);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newmetatable(L, MT_ARRAY);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newmetatable(L, MT_NUMBER);
    lua_pushcfunction(L, number_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, number_eq);
    lua_setfield(L, -2, "__eq");
    lua_pop(L, 1);
    static const jsr_lua_type types[] = {
        {MT_SCRATCH, NULL, scratch_gc, NULL},
        {MT_BUF, NULL, buf_gc, NULL},
        {MT_MEM, NULL, mem_gc, NULL},
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        jsr_lua_class(L, &types[i]);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &reg_mem) != LUA_TUSERDATA) {
        mem *m = lua_newuserdatauv(L, sizeof *m, 0);
        memset(m, 0, sizeof *m);
        jsr_json_scratch_init(&m->scratch);
        jsr_buf_init(&m->out);
        luaL_setmetatable(L, MT_MEM);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &reg_mem);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, REG_INFO) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_INFO);
    } else {
        lua_pop(L, 1);
    }
}

void jsr_json_pushnull(lua_State *L) { lua_pushlightuserdata(L, NULL); }

static mem *state_mem(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &reg_mem);
    mem *m = lua_touserdata(L, -1);
    lua_pop(L, 1); /* the registry keeps it */
    return m;
}

/* An empty output buffer: the state's (give it back with put_buf), or,
 * when that is in use, a new one pushed as a userdata. */
static jsr_buf *take_buf(lua_State *L)
{
    mem *m = state_mem(L);
    if (!m->out_busy) {
        m->out_busy = 1;
        m->out.len = 0;
        return &m->out;
    }
    jsr_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    jsr_buf_init(b);
    luaL_setmetatable(L, MT_BUF);
    return b;
}

static void put_buf(lua_State *L, jsr_buf *b)
{
    mem *m = state_mem(L);
    if (b != &m->out)
        return; /* a userdata: the collector frees it */
    if (m->out.cap > KEEP_OUT || m->out.failed)
        jsr_buf_free(&m->out);
    m->out_busy = 0;
}

/* Pushes the info table of the container at idx, or nil. */
static void push_info(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_INFO);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

static void push_boxed(lua_State *L, const char *text, size_t n)
{
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, text, n);
    lua_setfield(L, -2, "text");
    luaL_setmetatable(L, MT_NUMBER);
}

/* ---------------------------------------------------------------- decode */

/* The parser's sink: containers are built on the Lua stack, each as its
 * table and, above it, its info table. */
typedef struct {
    lua_State *L;
    int tbl[JSR_JSON_MAX_DEPTH + 1]; /* stack index of each open container */
    lua_Integer n[JSR_JSON_MAX_DEPTH + 1]; /* members so far */
    int top;
    char msg[160];
} lsink;

/* Records in info[field][key at keyidx] the original spelling of s (and,
 * withvalue, in info.rawv what it stands for). */
static void remember_raw(lua_State *L, int info, int keyidx, const char *field,
                         const jsr_json *s, int withvalue)
{
    if (lua_getfield(L, info, field) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, info, field);
    }
    lua_pushvalue(L, keyidx);
    lua_pushlstring(L, s->raw, s->rawlen);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (withvalue) {
        if (lua_getfield(L, info, "rawv") != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, info, "rawv");
        }
        lua_pushvalue(L, keyidx);
        lua_pushlstring(L, s->str, s->len);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
}

/* Stores the value on top (a scalar s, or a container: NULL) in the open
 * container; the root stays on the stack. */
static const char *attach(lsink *k, const jsr_json *s)
{
    if (k->top == 0)
        return NULL;
    lua_State *L = k->L;
    int tbl = k->tbl[k->top - 1], info = tbl + 1, val = lua_gettop(L);
    int raw = s && s->type == JSR_JSON_STRING && s->raw;
    if (val - 1 > info) { /* an object's member: its key is below */
        if (raw)
            remember_raw(L, info, val - 1, "raw", s, 1);
        lua_rawset(L, tbl);
        return NULL;
    }
    lua_Integer i = ++k->n[k->top - 1];
    if (raw) {
        lua_pushinteger(L, i);
        remember_raw(L, info, lua_gettop(L), "raw", s, 1);
        lua_pop(L, 1);
    }
    lua_rawseti(L, tbl, i);
    return NULL;
}

static const char *l_open(void *ud, jsr_json_type type)
{
    (void)type;
    lsink *k = ud;
    lua_State *L = k->L;
    if (!lua_checkstack(L, 8))
        return "out of Lua stack";
    lua_newtable(L);
    k->tbl[k->top] = lua_gettop(L);
    k->n[k->top++] = 0;
    lua_newtable(L); /* info */
    return NULL;
}

static const char *l_key(void *ud, const jsr_json *key)
{
    lsink *k = ud;
    lua_State *L = k->L;
    int tbl = k->tbl[k->top - 1], info = tbl + 1;
    lua_pushlstring(L, key->str, key->len);
    int kidx = lua_gettop(L);
    if (key->raw)
        remember_raw(L, info, kidx, "rawk", key, 0);
    lua_pushvalue(L, kidx);
    if (lua_rawget(L, tbl) != LUA_TNIL) {
        snprintf(k->msg, sizeof k->msg, "duplicate key \"%s\"", lua_tostring(L, kidx));
        return k->msg;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, kidx);
    lua_rawseti(L, info, ++k->n[k->top - 1]);
    return NULL;
}

static const char *l_scalar(void *ud, const jsr_json *s)
{
    lsink *k = ud;
    lua_State *L = k->L;
    switch (s->type) {
    case JSR_JSON_NULL: jsr_json_pushnull(L); break;
    case JSR_JSON_FALSE: lua_pushboolean(L, 0); break;
    case JSR_JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSR_JSON_INT: lua_pushinteger(L, (lua_Integer)s->integer); break;
    case JSR_JSON_NUMBER: push_boxed(L, s->str, s->len); break;
    default: lua_pushlstring(L, s->str, s->len); break;
    }
    return attach(k, s);
}

static const char *l_close(void *ud, jsr_json_type type)
{
    lsink *k = ud;
    lua_State *L = k->L;
    int tbl = k->tbl[--k->top];
    luaL_getmetatable(L, type == JSR_JSON_OBJECT ? MT_OBJECT : MT_ARRAY);
    lua_setmetatable(L, tbl);
    /* registry.info[tbl] = info */
    lua_getfield(L, LUA_REGISTRYINDEX, REG_INFO);
    lua_pushvalue(L, tbl);
    lua_pushvalue(L, tbl + 1);
    lua_rawset(L, -3);
    lua_settop(L, tbl); /* the table, now a value of its parent */
    return attach(k, NULL);
}

static const jsr_json_sink lua_sink = {l_open, l_key, l_scalar, l_close};

int jsr_lua_json_decode(lua_State *L, const char *text, size_t len, size_t max_values,
                        char *err, size_t errlen)
{
    int top = lua_gettop(L);
    mem *m = state_mem(L);
    jsr_json_scratch *s = &m->scratch;
    if (m->scratch_busy) {
        s = lua_newuserdatauv(L, sizeof *s, 0);
        jsr_json_scratch_init(s);
        luaL_setmetatable(L, MT_SCRATCH);
    } else {
        m->scratch_busy = 1;
    }
    int base = lua_gettop(L);
    lsink k; /* no heap memory: nothing to free if a Lua error jumps past */
    k.L = L;
    k.top = 0;
    jsr_json_opts o = {.max_values = max_values};
    size_t values = 0;
    int ok = jsr_json_parse_into(text, len, &o, &lua_sink, &k, s, &values, err, errlen);
    if (s == &m->scratch)
        m->scratch_busy = 0;
    if (!ok) {
        lua_settop(L, top);
        /* what a refused input built is garbage now: freed before the next
         * file is read, so refused files do not add up */
        if (max_values && values > 10000)
            lua_gc(L, LUA_GCCOLLECT);
        return 0;
    }
    if (base > top) /* a scratch of its own below the value */
        lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
}

int jsr_json_l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "a limit on values must not be negative");
    char err[256];
    if (!jsr_lua_json_decode(L, s, n, (size_t)max, err, sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* ---------------------------------------------------------------- encode */

typedef struct {
    lua_State *L;
    jsr_json_writer w;
    char *err;
    size_t errlen;
    int depth;
} enc;

static int efail(enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int efail(enc *e, const char *fmt, ...)
{
    if (e->err[0])
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
    return 0;
}

static int enc_value(enc *e, int idx);

/* Writes the string at idx, in its original spelling when the container's
 * info (at info, or 0) recorded one for key (at keyidx) and the value is
 * still the one that spelling stands for. */
static void enc_string_at(enc *e, int idx, int info, int keyidx)
{
    lua_State *L = e->L;
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (info) {
        if (lua_getfield(L, info, "rawv") == LUA_TTABLE) {
            lua_pushvalue(L, keyidx);
            lua_rawget(L, -2);
            int same = lua_rawequal(L, -1, idx);
            lua_pop(L, 2);
            if (same) {
                lua_getfield(L, info, "raw");
                lua_pushvalue(L, keyidx);
                lua_rawget(L, -2);
                size_t rn;
                const char *r = lua_tolstring(L, -1, &rn);
                jsr_json_w_raw(&e->w, r, rn);
                lua_pop(L, 2);
                return;
            }
        } else {
            lua_pop(L, 1);
        }
    }
    jsr_json_w_string(&e->w, s, n);
}

static int enc_member(enc *e, int info, int keyidx, int validx)
{
    if (lua_type(e->L, validx) == LUA_TSTRING) {
        enc_string_at(e, validx, info, keyidx);
        return 1;
    }
    return enc_value(e, validx);
}

/* 1 if the plain table at idx is a non-empty sequence 1..n. */
static int is_sequence(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0)
        return 0;
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1)) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1 || k > n) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == n;
}

static int enc_array(enc *e, int idx)
{
    lua_State *L = e->L;
    push_info(L, idx);
    int info = lua_istable(L, -1) ? lua_gettop(L) : 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    jsr_json_w_open(&e->w, JSR_JSON_ARRAY);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushinteger(L, i);
        lua_rawgeti(L, idx, i);
        if (!enc_member(e, info, lua_gettop(L) - 1, lua_gettop(L)))
            return efail(e, "[%lld]", (long long)i);
        lua_pop(L, 2);
    }
    jsr_json_w_close(&e->w, JSR_JSON_ARRAY);
    lua_pop(L, 1);
    return 1;
}

static void enc_key(enc *e, int info, int keyidx)
{
    lua_State *L = e->L;
    if (info) {
        if (lua_getfield(L, info, "rawk") == LUA_TTABLE) {
            lua_pushvalue(L, keyidx);
            if (lua_rawget(L, -2) == LUA_TSTRING) {
                size_t rn;
                const char *r = lua_tolstring(L, -1, &rn);
                jsr_json_w_key_raw(&e->w, r, rn);
                lua_pop(L, 2);
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    size_t n;
    const char *s = lua_tolstring(L, keyidx, &n);
    jsr_json_w_key(&e->w, s, n);
}

static int cmp_keys(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* The keys of the table at idx not in seen (a table), counted (list NULL)
 * or listed. Returns 0 with err set on a key that is not a string. */
static int added_keys(enc *e, int idx, int seen, const char **list, size_t *cnt)
{
    lua_State *L = e->L;
    *cnt = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return efail(e, "object key of type %s (keys must be strings)",
                         luaL_typename(L, -1));
        lua_pushvalue(L, -1);
        int known = lua_rawget(L, seen) != LUA_TNIL;
        lua_pop(L, 1);
        if (known)
            continue;
        /* the key strings stay alive: they are keys of the table at idx */
        if (list)
            list[*cnt] = lua_tostring(L, -1);
        (*cnt)++;
    }
    return 1;
}

static int enc_object(enc *e, int idx)
{
    lua_State *L = e->L;
    push_info(L, idx);
    int info = lua_istable(L, -1) ? lua_gettop(L) : 0;
    lua_newtable(L); /* keys already written */
    int seen = lua_gettop(L);
    jsr_json_w_open(&e->w, JSR_JSON_OBJECT);
    if (info) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, info);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, info, i);
            int key = lua_gettop(L);
            lua_pushvalue(L, key);
            if (lua_rawget(L, idx) == LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            enc_key(e, info, key);
            if (!enc_member(e, info, key, key + 1))
                return efail(e, "%s", lua_tostring(L, key));
            lua_pushvalue(L, key);
            lua_pushboolean(L, 1);
            lua_rawset(L, seen);
            lua_pop(L, 2);
        }
    }
    /* Keys a script added: after the known ones, sorted as Go sorts map
     * keys, so the output does not depend on Lua's hash order. */
    size_t cnt;
    if (!added_keys(e, idx, seen, NULL, &cnt))
        return 0;
    if (cnt) {
        if (cnt > (size_t)-1 / sizeof(const char *))
            return efail(e, "out of memory");
        const char **extra = lua_newuserdatauv(L, cnt * sizeof *extra, 0);
        added_keys(e, idx, seen, extra, &cnt);
        qsort(extra, cnt, sizeof *extra, cmp_keys);
        for (size_t i = 0; i < cnt; i++) {
            lua_pushstring(L, extra[i]);
            int key = lua_gettop(L);
            jsr_json_w_key(&e->w, extra[i], strlen(extra[i]));
            lua_pushvalue(L, key);
            lua_rawget(L, idx);
            if (!enc_value(e, key + 1))
                return efail(e, "%s", extra[i]);
            lua_pop(L, 2);
        }
        lua_pop(L, 1); /* extra */
    }
    jsr_json_w_close(&e->w, JSR_JSON_OBJECT);
    lua_pop(L, 2); /* seen, info */
    return 1;
}

static int has_mt(lua_State *L, int idx, const char *name)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, name);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static int enc_value(enc *e, int idx)
{
    lua_State *L = e->L;
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 10))
        return efail(e, "out of Lua stack");
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        jsr_json_w_string(&e->w, s, n);
        return 1;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            jsr_json_w_int(&e->w, (long long)lua_tointeger(L, idx));
            return 1;
        } else {
            lua_Number v = lua_tonumber(L, idx);
            /* Meta files hold integers only; a float that is a whole
             * number is written as one, anything else is refused rather
             * than written in a form Go rejects for an int64 field. */
            if (isfinite(v) && v == floor(v) && v >= -9223372036854775808.0 &&
                v < 9223372036854775808.0) {
                jsr_json_w_int(&e->w, (long long)v);
                return 1;
            }
            return efail(e, "number %.17g is not an integer (use jsr.json.number(text) for "
                            "an exact non-integer)", (double)v);
        }
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            jsr_json_w_raw(&e->w, "true", 4);
        else
            jsr_json_w_raw(&e->w, "false", 5);
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            jsr_json_w_raw(&e->w, "null", 4);
            return 1;
        }
        return efail(e, "light userdata cannot be encoded");
    case LUA_TTABLE: {
        if (++e->depth > JSR_JSON_MAX_DEPTH)
            return efail(e, "nesting deeper than %d (a cycle?)", JSR_JSON_MAX_DEPTH);
        int r;
        if (has_mt(L, idx, MT_NUMBER)) {
            lua_getfield(L, idx, "text");
            size_t n;
            const char *t = lua_tolstring(L, -1, &n);
            if (!t)
                return efail(e, "jsr.json.number without text");
            jsr_json_w_raw(&e->w, t, n);
            lua_pop(L, 1);
            r = 1;
        } else {
            int kind = has_mt(L, idx, MT_OBJECT) ? 1 : has_mt(L, idx, MT_ARRAY) ? 2 : 0;
            if (kind == 0)
                kind = is_sequence(L, idx) ? 2 : 1;
            r = kind == 2 ? enc_array(e, idx) : enc_object(e, idx);
        }
        e->depth--;
        return r;
    }
    default:
        return efail(e, "a %s cannot be encoded", luaL_typename(L, idx));
    }
}

static int encode(lua_State *L, int idx, jsr_buf *out, int flags, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    enc e;
    e.L = L;
    jsr_json_writer_init(&e.w, out, flags);
    e.err = err;
    e.errlen = errlen;
    e.depth = 0;
    err[0] = 0;
    int ok = enc_value(&e, idx);
    lua_settop(L, top);
    if (ok && out->failed)
        ok = efail(&e, "out of memory");
    return ok;
}

int jsr_lua_json_encode(lua_State *L, int idx, jsr_buf *out, char *err, size_t errlen)
{
    return encode(L, idx, out, 0, err, errlen);
}

/* encode(v [, {pretty = true}]) */
int jsr_json_l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int pretty = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "pretty");
        pretty = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    jsr_buf *b = take_buf(L);
    char err[256];
    if (!encode(L, 1, b, pretty ? JSR_JSON_PRETTY : 0, err, sizeof err)) {
        put_buf(L, b);
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot encode JSON: %s", err);
        return 2;
    }
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    put_buf(L, b);
    return 1;
}

int jsr_json_l_number(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    /* accept exactly the JSON number grammar, so encoding stays valid */
    char err[128];
    int top = lua_gettop(L);
    if (n == 0 || (s[0] != '-' && !(s[0] >= '0' && s[0] <= '9')) ||
        !jsr_lua_json_decode(L, s, n, 0, err, sizeof err))
        return luaL_argerror(L, 1, "not a JSON number");
    if (lua_isinteger(L, -1)) { /* box it anyway: the caller asked for text */
        lua_settop(L, top);
        push_boxed(L, s, n);
    }
    return 1;
}

static int l_mark(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, mt);
    return 1;
}

int jsr_json_l_object(lua_State *L) { return l_mark(L, MT_OBJECT); }
int jsr_json_l_array(lua_State *L) { return l_mark(L, MT_ARRAY); }

/* keys(obj): the keys in file order (then keys added since, sorted), as a
 * new array; what encode will write. */
int jsr_json_l_keys(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L); /* result, 2 */
    lua_newtable(L); /* seen, 3 */
    lua_Integer n = 0;
    push_info(L, 1); /* 4 */
    if (lua_istable(L, 4)) {
        lua_Integer m = (lua_Integer)lua_rawlen(L, 4);
        for (lua_Integer i = 1; i <= m; i++) {
            lua_rawgeti(L, 4, i);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, 1) != LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_rawseti(L, 2, ++n);
                lua_pushboolean(L, 1);
                lua_rawset(L, 3);
            } else {
                lua_pop(L, 2);
            }
        }
    }
    lua_Integer first_extra = n + 1;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        lua_pushvalue(L, -1);
        if (lua_rawget(L, 3) == LUA_TNIL) {
            lua_pushvalue(L, -2);
            lua_rawseti(L, 2, ++n);
        }
        lua_pop(L, 1);
    }
    /* sort the added keys */
    for (lua_Integer i = first_extra + 1; i <= n; i++) {
        for (lua_Integer j = i; j > first_extra; j--) {
            lua_rawgeti(L, 2, j - 1);
            lua_rawgeti(L, 2, j);
            if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, 2, j - 1);
            lua_rawseti(L, 2, j);
        }
    }
    lua_settop(L, 2);
    luaL_setmetatable(L, MT_ARRAY);
    return 1;
}

/* fields(obj) -> keys, {[key] = encoded value}: keys as keys() gives them,
 * each value encoded as encode() would; one call for what a field-level
 * diff needs (prepare takes one before and after editing every config). */
int jsr_json_l_fields(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushcfunction(L, jsr_json_l_keys);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1); /* keys, 2 */
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    lua_createtable(L, 0, (int)n); /* 3 */
    jsr_buf *b = take_buf(L);      /* 4 if a userdata */
    int top = lua_gettop(L);
    char err[256];
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i); /* key */
        lua_pushvalue(L, -1);
        lua_rawget(L, 1); /* value */
        b->len = 0;
        if (!encode(L, top + 2, b, 0, err, sizeof err)) {
            put_buf(L, b);
            return luaL_error(L, "cannot encode JSON field %s: %s", lua_tostring(L, top + 1),
                              err);
        }
        lua_pushvalue(L, top + 1);
        lua_pushlstring(L, b->data ? b->data : "", b->len);
        lua_rawset(L, 3);
        lua_settop(L, top);
    }
    put_buf(L, b);
    lua_settop(L, 3);
    return 2; /* keys, texts */
}
