#include "jsr/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MT_OBJECT "jsr.json.object"
#define MT_ARRAY "jsr.json.array"
#define MT_NUMBER "jsr.json.number"
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

/* Pushes the info table of the container at idx (creating one if asked),
 * or nil. */
static void push_info(lua_State *L, int idx, int create)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_INFO);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TNIL && create) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, idx);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
}

/* ------------------------------------------------------- Go's string form */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static const char hexdig[] = "0123456789abcdef";

/* Writes s as Go's encoding/json would (HTML escaping on). Invalid UTF-8
 * becomes \ufffd, as in Go. */
static void enc_string(jsr_buf *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    jsr_buf_addc(out, '"');
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            jsr_buf_add(out, s + start, i - start);
            switch (c) {
            case '"': jsr_buf_adds(out, "\\\""); break;
            case '\\': jsr_buf_adds(out, "\\\\"); break;
            case '\n': jsr_buf_adds(out, "\\n"); break;
            case '\r': jsr_buf_adds(out, "\\r"); break;
            case '\t': jsr_buf_adds(out, "\\t"); break;
            default: {
                char u[7] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15], 0};
                jsr_buf_adds(out, u);
            }
            }
            start = ++i;
            continue;
        }
        size_t l = utf8_len(s + i, n - i);
        if (l == 0) {
            jsr_buf_add(out, s + start, i - start);
            jsr_buf_adds(out, "\\ufffd");
            start = ++i;
            continue;
        }
        if (l == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            jsr_buf_add(out, s + start, i - start);
            jsr_buf_adds(out, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
            i += 3;
            start = i;
            continue;
        }
        i += l;
    }
    jsr_buf_add(out, s + start, n - start);
    jsr_buf_addc(out, '"');
}

/* ---------------------------------------------------------------- decode */

typedef struct {
    lua_State *L;
    const char *begin, *p, *end;
    char *err;
    size_t errlen;
    int depth;
    size_t values, max_values; /* max_values 0: no limit */
    jsr_buf str;   /* decoded bytes of the current string */
    jsr_buf canon; /* Go's spelling of it, to compare with the input */
    /* set by parse_string: where the string's raw text is, and whether it
     * differs from Go's spelling */
    const char *raw;
    size_t rawlen;
    int noncanon;
} dec;

static int fail(dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(dec *d, const char *fmt, ...)
{
    if (d->err[0])
        return 0; /* keep the first, innermost message */
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(d->err, d->errlen, "%s at byte %zu", msg, (size_t)(d->p - d->begin));
    return 0;
}

static void skip_ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static void put_utf8(jsr_buf *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        jsr_buf_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        jsr_buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        jsr_buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        jsr_buf_add(b, u, 4);
    }
}

/* Parses the string at d->p (which is at the opening quote) into d->str. */
static int parse_string(dec *d)
{
    const char *rawstart = d->p;
    d->p++;
    d->str.len = 0;
    for (;;) {
        if (d->p >= d->end)
            return fail(d, "unterminated string");
        unsigned char c = (unsigned char)*d->p;
        if (c == '"') {
            d->p++;
            break;
        }
        if (c < 0x20)
            return fail(d, "control character 0x%02x in string", c);
        if (c == '\\') {
            if (d->end - d->p < 2)
                return fail(d, "unterminated escape");
            char e = d->p[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                jsr_buf_addc(&d->str, map[simple - "\"\\/bfnrt"]);
                d->p += 2;
                continue;
            }
            if (e != 'u')
                return fail(d, "invalid escape \\%c", e);
            uint32_t cp;
            if (d->end - d->p < 6 || !hex4(d->p + 2, &cp))
                return fail(d, "invalid \\u escape");
            d->p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' &&
                    hex4(d->p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    d->p += 6;
                } else {
                    cp = 0xFFFD; /* a lone surrogate: Go decodes it so */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            put_utf8(&d->str, cp);
            continue;
        }
        size_t l = utf8_len((const unsigned char *)d->p, (size_t)(d->end - d->p));
        if (l == 0)
            return fail(d, "invalid UTF-8 in string");
        jsr_buf_add(&d->str, d->p, l);
        d->p += l;
    }
    if (d->str.failed)
        return fail(d, "out of memory");
    d->raw = rawstart;
    d->rawlen = (size_t)(d->p - rawstart);
    d->canon.len = 0;
    enc_string(&d->canon, d->str.data ? d->str.data : "", d->str.len);
    if (d->canon.failed)
        return fail(d, "out of memory");
    d->noncanon = d->canon.len != d->rawlen || memcmp(d->canon.data, rawstart, d->rawlen) != 0;
    return 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(dec *d)
{
    const char *s = d->p;
    const char *q = s;
    int integral = 1;
    if (q < d->end && *q == '-')
        q++;
    if (q >= d->end || !is_digit(*q))
        return fail(d, "invalid number");
    if (*q == '0')
        q++;
    else
        while (q < d->end && is_digit(*q))
            q++;
    if (q < d->end && *q == '.') {
        integral = 0;
        q++;
        if (q >= d->end || !is_digit(*q))
            return fail(d, "invalid number");
        while (q < d->end && is_digit(*q))
            q++;
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        q++;
        if (q < d->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= d->end || !is_digit(*q))
            return fail(d, "invalid number");
        while (q < d->end && is_digit(*q))
            q++;
    }
    size_t n = (size_t)(q - s);
    d->p = q;
    if (integral && n < 32) {
        char tmp[32];
        memcpy(tmp, s, n);
        tmp[n] = 0;
        errno = 0;
        char *endp;
        long long v = strtoll(tmp, &endp, 10);
        if (errno == 0 && *endp == 0) {
            lua_pushinteger(d->L, (lua_Integer)v);
            return 1;
        }
    }
    /* Beyond int64 (uint64 fields such as first_seq) or not an integer:
     * keep the exact text. */
    lua_createtable(d->L, 0, 1);
    lua_pushlstring(d->L, s, n);
    lua_setfield(d->L, -2, "text");
    luaL_setmetatable(d->L, MT_NUMBER);
    return 1;
}

static int parse_value(dec *d);

/* Records, in the info table at -1, the original spelling of the string
 * value just stored under the key at keyidx. */
static void remember_raw(dec *d, int info, int keyidx, const char *field, int withvalue)
{
    lua_State *L = d->L;
    if (lua_getfield(L, info, field) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, info, field);
    }
    lua_pushvalue(L, keyidx);
    lua_pushlstring(L, d->raw, d->rawlen);
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
        lua_pushlstring(L, d->str.data ? d->str.data : "", d->str.len);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
}

static int parse_container(dec *d, int is_object)
{
    lua_State *L = d->L;
    if (++d->depth > JSR_JSON_MAX_DEPTH)
        return fail(d, "nesting deeper than %d", JSR_JSON_MAX_DEPTH);
    if (!lua_checkstack(L, 8))
        return fail(d, "out of Lua stack");
    d->p++;
    lua_newtable(L);
    int tbl = lua_gettop(L);
    lua_newtable(L);
    int info = lua_gettop(L);
    lua_Integer n = 0;
    skip_ws(d);
    char close = is_object ? '}' : ']';
    if (d->p < d->end && *d->p == close) {
        d->p++;
    } else {
        for (;;) {
            skip_ws(d);
            if (is_object) {
                if (d->p >= d->end || *d->p != '"')
                    return fail(d, "expected a string key");
                if (!parse_string(d))
                    return 0;
                lua_pushlstring(L, d->str.data ? d->str.data : "", d->str.len);
                int key = lua_gettop(L);
                if (d->noncanon)
                    remember_raw(d, info, key, "rawk", 0);
                lua_pushvalue(L, key);
                if (lua_rawget(L, tbl) != LUA_TNIL)
                    return fail(d, "duplicate key \"%s\"", lua_tostring(L, key));
                lua_pop(L, 1);
                lua_pushvalue(L, key);
                lua_rawseti(L, info, ++n);
                skip_ws(d);
                if (d->p >= d->end || *d->p != ':')
                    return fail(d, "expected ':'");
                d->p++;
                skip_ws(d);
            } else {
                lua_pushinteger(L, ++n);
            }
            int key = lua_gettop(L);
            d->noncanon = 0;
            if (!parse_value(d))
                return 0;
            if (lua_type(L, -1) == LUA_TSTRING && d->noncanon)
                remember_raw(d, info, key, "raw", 1);
            lua_rawset(L, tbl);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == close) {
                d->p++;
                break;
            }
            return fail(d, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    luaL_getmetatable(L, is_object ? MT_OBJECT : MT_ARRAY);
    lua_setmetatable(L, tbl);
    /* registry.info[tbl] = info */
    lua_getfield(L, LUA_REGISTRYINDEX, REG_INFO);
    lua_pushvalue(L, tbl);
    lua_pushvalue(L, info);
    lua_rawset(L, -3);
    lua_pop(L, 2); /* registry table, info */
    d->depth--;
    return 1;
}

static int literal(dec *d, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return fail(d, "invalid literal");
    d->p += n;
    return 1;
}

static int parse_value(dec *d)
{
    lua_State *L = d->L;
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, "unexpected end of input");
    /* each value costs up to ~200 bytes of Lua memory whatever its size in
     * the input ({} is two tables): counted, so input a few bytes per
     * value cannot cost hundreds of times its size */
    if (d->max_values && ++d->values > d->max_values)
        return fail(d, "more than %zu values", d->max_values);
    switch (*d->p) {
    case '{': return parse_container(d, 1);
    case '[': return parse_container(d, 0);
    case '"':
        if (!parse_string(d))
            return 0;
        lua_pushlstring(L, d->str.data ? d->str.data : "", d->str.len);
        return 1;
    case 't':
        if (!literal(d, "true"))
            return 0;
        lua_pushboolean(L, 1);
        return 1;
    case 'f':
        if (!literal(d, "false"))
            return 0;
        lua_pushboolean(L, 0);
        return 1;
    case 'n':
        if (!literal(d, "null"))
            return 0;
        jsr_json_pushnull(L);
        return 1;
    default:
        if (*d->p == '-' || is_digit(*d->p))
            return parse_number(d);
        return fail(d, "unexpected character '%c'", *d->p);
    }
}

int jsr_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
    return jsr_json_decode_max(L, text, len, 0, err, errlen);
}

int jsr_json_decode_max(lua_State *L, const char *text, size_t len, size_t max_values, char *err,
                        size_t errlen)
{
    int top = lua_gettop(L);
    dec d;
    memset(&d, 0, sizeof d);
    d.L = L;
    d.max_values = max_values;
    d.begin = d.p = text;
    d.end = text + len;
    d.err = err;
    d.errlen = errlen;
    err[0] = 0;
    jsr_buf_init(&d.str);
    jsr_buf_init(&d.canon);
    int ok = parse_value(&d);
    if (ok) {
        skip_ws(&d);
        if (d.p != d.end)
            ok = fail(&d, "unexpected data after the JSON value");
    }
    jsr_buf_free(&d.str);
    jsr_buf_free(&d.canon);
    if (!ok) {
        lua_settop(L, top);
        /* what a refused input built is garbage now: freed before the next
         * file is read, so refused files do not add up */
        if (d.values > 10000)
            lua_gc(L, LUA_GCCOLLECT);
        return 0;
    }
    lua_settop(L, top + 1); /* the value parse_value pushed */
    return 1;
}

/* ---------------------------------------------------------------- encode */

typedef struct {
    lua_State *L;
    jsr_buf *out;
    char *err;
    size_t errlen;
    int depth;
    int pretty; /* two spaces per level, ": " after keys: for files people read */
} enc;

/* pretty output only: a line break and the indent of nesting level */
static void enc_break(enc *e, int level)
{
    if (!e->pretty)
        return;
    jsr_buf_addc(e->out, '\n');
    for (int i = 0; i < level; i++)
        jsr_buf_add(e->out, "  ", 2);
}

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

/* Emits the string at idx, in its original spelling when the container's
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
                jsr_buf_add(e->out, r, rn);
                lua_pop(L, 2);
                return;
            }
        } else {
            lua_pop(L, 1);
        }
    }
    enc_string(e->out, s, n);
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
    push_info(L, idx, 0);
    int info = lua_istable(L, -1) ? lua_gettop(L) : 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    jsr_buf_addc(e->out, '[');
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            jsr_buf_addc(e->out, ',');
        enc_break(e, e->depth);
        lua_pushinteger(L, i);
        lua_rawgeti(L, idx, i);
        if (!enc_member(e, info, lua_gettop(L) - 1, lua_gettop(L)))
            return efail(e, "[%lld]", (long long)i);
        lua_pop(L, 2);
    }
    if (n > 0)
        enc_break(e, e->depth - 1);
    jsr_buf_addc(e->out, ']');
    lua_pop(L, 1);
    return 1;
}

static int enc_key(enc *e, int info, int keyidx)
{
    lua_State *L = e->L;
    if (info) {
        if (lua_getfield(L, info, "rawk") == LUA_TTABLE) {
            lua_pushvalue(L, keyidx);
            if (lua_rawget(L, -2) == LUA_TSTRING) {
                size_t rn;
                const char *r = lua_tolstring(L, -1, &rn);
                jsr_buf_add(e->out, r, rn);
                lua_pop(L, 2);
                return 1;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    size_t n;
    const char *s = lua_tolstring(L, keyidx, &n);
    enc_string(e->out, s, n);
    return 1;
}

static int cmp_keys(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static int enc_object(enc *e, int idx)
{
    lua_State *L = e->L;
    push_info(L, idx, 0);
    int info = lua_istable(L, -1) ? lua_gettop(L) : 0;
    lua_newtable(L); /* keys already written */
    int seen = lua_gettop(L);
    int first = 1;
    jsr_buf_addc(e->out, '{');
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
            if (!first)
                jsr_buf_addc(e->out, ',');
            first = 0;
            enc_break(e, e->depth);
            enc_key(e, info, key);
            jsr_buf_adds(e->out, e->pretty ? ": " : ":");
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
    size_t cnt = 0, cap = 0;
    const char **extra = NULL;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            free(extra);
            return efail(e, "object key of type %s (keys must be strings)",
                         luaL_typename(L, -1));
        }
        lua_pushvalue(L, -1);
        int known = lua_rawget(L, seen) != LUA_TNIL;
        lua_pop(L, 1);
        if (known)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            const char **p = realloc(extra, cap * sizeof *extra);
            if (!p) {
                free(extra);
                return efail(e, "out of memory");
            }
            extra = p;
        }
        /* the key strings stay alive: they are keys of the table at idx */
        extra[cnt++] = lua_tostring(L, -1);
    }
    if (cnt)
        qsort(extra, cnt, sizeof *extra, cmp_keys);
    for (size_t i = 0; i < cnt; i++) {
        if (!first)
            jsr_buf_addc(e->out, ',');
        first = 0;
        enc_break(e, e->depth);
        lua_pushstring(L, extra[i]);
        int key = lua_gettop(L);
        enc_string(e->out, extra[i], strlen(extra[i]));
        jsr_buf_adds(e->out, e->pretty ? ": " : ":");
        lua_pushvalue(L, key);
        lua_rawget(L, idx);
        if (!enc_value(e, key + 1)) {
            efail(e, "%s", extra[i]);
            free(extra);
            return 0;
        }
        lua_pop(L, 2);
    }
    free(extra);
    if (!first)
        enc_break(e, e->depth - 1);
    jsr_buf_addc(e->out, '}');
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
        enc_string(e->out, s, n);
        return 1;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            jsr_buf_addf(e->out, "%lld", (long long)lua_tointeger(L, idx));
            return 1;
        } else {
            lua_Number v = lua_tonumber(L, idx);
            /* Meta files hold integers only; a float that is a whole
             * number is written as one, anything else is refused rather
             * than written in a form Go rejects for an int64 field. */
            if (isfinite(v) && v == floor(v) && v >= -9223372036854775808.0 &&
                v < 9223372036854775808.0) {
                jsr_buf_addf(e->out, "%lld", (long long)v);
                return 1;
            }
            return efail(e, "number %.17g is not an integer (use jsr.json.number(text) for "
                            "an exact non-integer)", (double)v);
        }
    case LUA_TBOOLEAN:
        jsr_buf_adds(e->out, lua_toboolean(L, idx) ? "true" : "false");
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            jsr_buf_adds(e->out, "null");
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
            jsr_buf_add(e->out, t, n);
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

static int encode(lua_State *L, int idx, jsr_buf *out, int pretty, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    enc e = {L, out, err, errlen, 0, pretty};
    err[0] = 0;
    int ok = enc_value(&e, idx);
    lua_settop(L, top);
    if (ok && out->failed)
        ok = efail(&e, "out of memory");
    return ok;
}

/* ------------------------------------------------------------ Lua side */

int jsr_json_l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "a limit on values must not be negative");
    char err[256];
    if (!jsr_json_decode_max(L, s, n, (size_t)max, err, sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

int jsr_json_encode(lua_State *L, int idx, jsr_buf *out, char *err, size_t errlen)
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
    jsr_buf b;
    jsr_buf_init(&b);
    char err[256];
    if (!encode(L, 1, &b, pretty, err, sizeof err)) {
        jsr_buf_free(&b);
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot encode JSON: %s", err);
        return 2;
    }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    jsr_buf_free(&b);
    return 1;
}

int jsr_json_l_number(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    /* accept exactly the JSON number grammar, so encoding stays valid */
    char err[128];
    int top = lua_gettop(L);
    if (n == 0 || (s[0] != '-' && !is_digit(s[0])) || !jsr_json_decode(L, s, n, err, sizeof err))
        return luaL_argerror(L, 1, "not a JSON number");
    if (lua_isinteger(L, -1)) { /* box it anyway: the caller asked for text */
        lua_settop(L, top);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "text");
        luaL_setmetatable(L, MT_NUMBER);
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
    push_info(L, 1, 0); /* 4 */
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
    jsr_buf b;
    jsr_buf_init(&b);
    char err[256];
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i); /* key, 4 */
        lua_pushvalue(L, 4);
        lua_rawget(L, 1); /* value, 5 */
        b.len = 0;
        if (!encode(L, 5, &b, 0, err, sizeof err)) {
            jsr_buf_free(&b);
            return luaL_error(L, "cannot encode JSON field %s: %s", lua_tostring(L, 4), err);
        }
        lua_pushvalue(L, 4);
        lua_pushlstring(L, b.data ? b.data : "", b.len);
        lua_rawset(L, 3);
        lua_settop(L, 3);
    }
    jsr_buf_free(&b);
    return 2; /* keys, texts */
}
