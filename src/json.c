/* Exact JSON in C (see json.h): the parser, the writer, the tree. */
#include "jsr/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The journal's form: only what JSON requires is escaped, control bytes as
 * \u00XX (as changes.c always wrote them), so every byte of a path comes
 * back. */
static void put_bytes(jsr_buf *out, const unsigned char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jsr_buf_add(out, s + start, i - start);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jsr_buf_add(out, e, 2);
        } else {
            char u[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};
            jsr_buf_add(out, u, 6);
        }
        start = i + 1;
    }
    jsr_buf_add(out, s + start, n - start);
}

/* Writes s as Go's encoding/json would (HTML escaping on). Invalid UTF-8
 * becomes \ufffd, as in Go. */
static void put_go(jsr_buf *out, const unsigned char *s, size_t n)
{
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
}

void jsr_json_put_string(jsr_buf *out, const char *s, size_t n, int flags)
{
    jsr_buf_addc(out, '"');
    if (flags & JSR_JSON_BYTES)
        put_bytes(out, (const unsigned char *)s, n);
    else
        put_go(out, (const unsigned char *)s, n);
    jsr_buf_addc(out, '"');
}

/* ---------------------------------------------------------------- parse */

typedef struct {
    const char *begin, *p, *end;
    char *err;
    size_t errlen;
    int depth, flags;
    size_t values, max_values; /* max_values 0: no limit */
    size_t offset;
    const jsr_json_sink *sink;
    void *ud;
    jsr_buf *str;   /* decoded bytes of the current string */
    jsr_buf *canon; /* Go's spelling of it, to compare with the input */
    jsr_json tok;   /* the scalar or key handed to the sink */
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
    snprintf(d->err, d->errlen, "%s at byte %zu", msg, d->offset + (size_t)(d->p - d->begin));
    return 0;
}

/* What a sink's answer means for the parse. */
static int sink_said(dec *d, const char *msg)
{
    return msg ? fail(d, "%s", msg) : 1;
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

/* Parses the string at d->p (which is at the opening quote) into d->tok:
 * decoded (NUL-terminated) in d->str, raw set when its spelling is not
 * Go's. */
static int parse_string(dec *d)
{
    const char *rawstart = d->p;
    d->p++;
    d->str->len = 0;
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
                jsr_buf_addc(d->str, map[simple - "\"\\/bfnrt"]);
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
            put_utf8(d->str, cp);
            continue;
        }
        /* a run of bytes that stand for themselves, added at once */
        const char *run = d->p;
        int bytes = d->flags & JSR_JSON_BYTES;
        while (d->p < d->end) {
            c = (unsigned char)*d->p;
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            if (c < 0x80 || bytes) {
                d->p++;
                continue;
            }
            size_t l = utf8_len((const unsigned char *)d->p, (size_t)(d->end - d->p));
            if (l == 0)
                break;
            d->p += l;
        }
        if (d->p == run)
            return fail(d, "invalid UTF-8 in string");
        jsr_buf_add(d->str, run, (size_t)(d->p - run));
    }
    jsr_buf_addc(d->str, 0);
    if (d->str->failed)
        return fail(d, "out of memory");
    d->str->len--; /* the NUL stays after the bytes */
    memset(&d->tok, 0, sizeof d->tok);
    d->tok.type = JSR_JSON_STRING;
    d->tok.str = d->str->data;
    d->tok.len = d->str->len;
    if (d->flags & JSR_JSON_BYTES)
        return 1; /* the journal's strings: nothing to keep of their spelling */
    size_t rawlen = (size_t)(d->p - rawstart);
    d->canon->len = 0;
    jsr_json_put_string(d->canon, d->str->data, d->str->len, 0);
    if (d->canon->failed)
        return fail(d, "out of memory");
    if (d->canon->len != rawlen || memcmp(d->canon->data, rawstart, rawlen) != 0) {
        d->tok.raw = rawstart;
        d->tok.rawlen = rawlen;
    }
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
    memset(&d->tok, 0, sizeof d->tok);
    if (integral && n < 32) {
        char tmp[32];
        memcpy(tmp, s, n);
        tmp[n] = 0;
        errno = 0;
        char *endp;
        long long v = strtoll(tmp, &endp, 10);
        if (errno == 0 && *endp == 0) {
            d->tok.type = JSR_JSON_INT;
            d->tok.integer = v;
            return sink_said(d, d->sink->scalar(d->ud, &d->tok));
        }
    }
    /* Beyond int64 (uint64 fields such as first_seq) or not an integer:
     * keep the exact text. */
    d->tok.type = JSR_JSON_NUMBER;
    d->tok.str = s;
    d->tok.len = n;
    return sink_said(d, d->sink->scalar(d->ud, &d->tok));
}

static int parse_value(dec *d);

static int parse_container(dec *d, jsr_json_type type)
{
    if (++d->depth > JSR_JSON_MAX_DEPTH)
        return fail(d, "nesting deeper than %d", JSR_JSON_MAX_DEPTH);
    if (!sink_said(d, d->sink->open(d->ud, type)))
        return 0;
    int is_object = type == JSR_JSON_OBJECT;
    d->p++;
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
                if (!parse_string(d) || !sink_said(d, d->sink->key(d->ud, &d->tok)))
                    return 0;
                skip_ws(d);
                if (d->p >= d->end || *d->p != ':')
                    return fail(d, "expected ':'");
                d->p++;
                skip_ws(d);
            }
            if (!parse_value(d))
                return 0;
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
    if (!sink_said(d, d->sink->close(d->ud, type)))
        return 0;
    d->depth--;
    return 1;
}

static int literal(dec *d, const char *word, jsr_json_type type)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return fail(d, "invalid literal");
    d->p += n;
    memset(&d->tok, 0, sizeof d->tok);
    d->tok.type = type;
    return sink_said(d, d->sink->scalar(d->ud, &d->tok));
}

static int parse_value(dec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, "unexpected end of input");
    /* each value costs up to ~200 bytes of Lua memory whatever its size in
     * the input ({} is two tables): counted, so input a few bytes per
     * value cannot cost hundreds of times its size */
    if (++d->values > d->max_values && d->max_values)
        return fail(d, "more than %zu values", d->max_values);
    switch (*d->p) {
    case '{': return parse_container(d, JSR_JSON_OBJECT);
    case '[': return parse_container(d, JSR_JSON_ARRAY);
    case '"': return parse_string(d) && sink_said(d, d->sink->scalar(d->ud, &d->tok));
    case 't': return literal(d, "true", JSR_JSON_TRUE);
    case 'f': return literal(d, "false", JSR_JSON_FALSE);
    case 'n': return literal(d, "null", JSR_JSON_NULL);
    default:
        if (*d->p == '-' || is_digit(*d->p))
            return parse_number(d);
        return fail(d, "unexpected character '%c'", *d->p);
    }
}

void jsr_json_scratch_init(jsr_json_scratch *s)
{
    jsr_buf_init(&s->str);
    jsr_buf_init(&s->canon);
}

void jsr_json_scratch_free(jsr_json_scratch *s)
{
    jsr_buf_free(&s->str);
    jsr_buf_free(&s->canon);
}

int jsr_json_parse_into(const char *text, size_t len, const jsr_json_opts *opts,
                        const jsr_json_sink *sink, void *ud, jsr_json_scratch *scratch,
                        size_t *values, char *err, size_t errlen)
{
    static const jsr_json_opts none;
    if (!opts)
        opts = &none;
    dec d;
    memset(&d, 0, sizeof d);
    d.begin = d.p = text;
    d.end = text + len;
    d.err = err;
    d.errlen = errlen;
    d.flags = opts->flags;
    d.max_values = opts->max_values;
    d.offset = opts->offset;
    d.sink = sink;
    d.ud = ud;
    d.str = &scratch->str;
    d.canon = &scratch->canon;
    err[0] = 0;
    int ok = parse_value(&d);
    if (ok) {
        skip_ws(&d);
        if (opts->used)
            *opts->used = (size_t)(d.p - d.begin);
        else if (d.p != d.end)
            ok = fail(&d, "unexpected data after the JSON value");
    }
    if (values)
        *values = d.values;
    return ok;
}

/* ----------------------------------------------------------------- tree */

/* Nodes and strings live in blocks freed with the tree. */
typedef struct block {
    struct block *next;
    size_t used, cap;
    _Alignas(16) char data[];
} block;

struct jsr_json_doc {
    block *blocks;
    size_t next_cap; /* of the next block: small for a small text (a journal line: one
                      * block of ~2 KB), doubling up to BLOCK_SIZE */
    jsr_json *root;
};

#define BLOCK_SIZE (64 * 1024)

static void *doc_alloc(jsr_json_doc *doc, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    block *b = doc->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > doc->next_cap ? n : doc->next_cap;
        if (doc->next_cap < BLOCK_SIZE)
            doc->next_cap *= 2;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static const char *doc_strdup(jsr_json_doc *doc, const char *s, size_t n)
{
    char *p = doc_alloc(doc, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void jsr_json_doc_free(jsr_json_doc *doc)
{
    if (!doc)
        return;
    for (block *b = doc->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(doc);
}

const jsr_json *jsr_json_root(const jsr_json_doc *doc) { return doc->root; }

/* An object with more members than this gets a hash of its keys while it
 * is built, so duplicates are found without comparing every pair (a
 * journal line of a MiB holds 100,000 keys). */
#define LINEAR_KEYS 16

typedef struct {
    jsr_json *node;
    jsr_json **slots; /* open addressing by key hash, NULL until needed */
    size_t nslots;
} open_object;

typedef struct {
    jsr_json_doc *doc;
    open_object *stack; /* the containers being built: grows with the nesting */
    int top, cap;
    open_object few[8];
    jsr_json pending; /* the key of the member that comes next */
    char dupmsg[160];
} tree;

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int same_key(const jsr_json *m, const char *s, size_t n)
{
    return m->keylen == n && memcmp(m->key, s, n) == 0;
}

static void slot_put(open_object *lv, jsr_json *m)
{
    size_t i = (size_t)key_hash(m->key, m->keylen) & (lv->nslots - 1);
    while (lv->slots[i])
        i = (i + 1) & (lv->nslots - 1);
    lv->slots[i] = m;
}

/* Makes room for one more key in lv's hash (kept at most half full). */
static int slots_grow(open_object *lv)
{
    if (lv->node->count < LINEAR_KEYS || (lv->slots && lv->node->count < lv->nslots / 2))
        return 1;
    size_t n = lv->nslots ? lv->nslots * 2 : 4 * LINEAR_KEYS;
    jsr_json **s = calloc(n, sizeof *s);
    if (!s)
        return 0;
    free(lv->slots);
    lv->slots = s;
    lv->nslots = n;
    for (jsr_json *m = lv->node->first; m; m = m->next)
        slot_put(lv, m);
    return 1;
}

static int has_key(const open_object *lv, const char *s, size_t n)
{
    if (!lv->slots) {
        for (const jsr_json *m = lv->node->first; m; m = m->next)
            if (same_key(m, s, n))
                return 1;
        return 0;
    }
    for (size_t i = (size_t)key_hash(s, n) & (lv->nslots - 1); lv->slots[i];
         i = (i + 1) & (lv->nslots - 1))
        if (same_key(lv->slots[i], s, n))
            return 1;
    return 0;
}

/* Adds v to the container being built (or makes it the root). */
static const char *attach(tree *t, jsr_json *v)
{
    if (t->top == 0) {
        t->doc->root = v;
        return NULL;
    }
    open_object *lv = &t->stack[t->top - 1];
    jsr_json *c = lv->node;
    if (c->type == JSR_JSON_OBJECT) {
        v->key = t->pending.key;
        v->keylen = t->pending.keylen;
        v->rawkey = t->pending.rawkey;
        v->rawkeylen = t->pending.rawkeylen;
        if (!slots_grow(lv))
            return "out of memory";
        if (lv->slots)
            slot_put(lv, v);
    }
    if (c->last)
        c->last->next = v;
    else
        c->first = v;
    c->last = v;
    c->count++;
    return NULL;
}

static jsr_json *new_node(tree *t, jsr_json_type type)
{
    jsr_json *v = doc_alloc(t->doc, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->type = type;
    }
    return v;
}

static const char *tree_open(void *ud, jsr_json_type type)
{
    tree *t = ud;
    jsr_json *v = new_node(t, type);
    if (!v)
        return "out of memory";
    const char *msg = attach(t, v);
    if (msg)
        return msg;
    if (t->top == t->cap) {
        int cap = t->cap * 4;
        open_object *st = malloc((size_t)cap * sizeof *st);
        if (!st)
            return "out of memory";
        memcpy(st, t->stack, (size_t)t->top * sizeof *st);
        if (t->stack != t->few)
            free(t->stack);
        t->stack = st;
        t->cap = cap;
    }
    t->stack[t->top++] = (open_object){v, NULL, 0};
    return NULL;
}

static const char *tree_close(void *ud, jsr_json_type type)
{
    (void)type;
    tree *t = ud;
    free(t->stack[--t->top].slots);
    return NULL;
}

static const char *tree_key(void *ud, const jsr_json *k)
{
    tree *t = ud;
    if (has_key(&t->stack[t->top - 1], k->str, k->len)) {
        snprintf(t->dupmsg, sizeof t->dupmsg, "duplicate key \"%s\"", k->str);
        return t->dupmsg;
    }
    t->pending.key = doc_strdup(t->doc, k->str, k->len);
    t->pending.keylen = k->len;
    t->pending.rawkey = k->raw ? doc_strdup(t->doc, k->raw, k->rawlen) : NULL;
    t->pending.rawkeylen = k->rawlen;
    if (!t->pending.key || (k->raw && !t->pending.rawkey))
        return "out of memory";
    return NULL;
}

static const char *tree_scalar(void *ud, const jsr_json *s)
{
    tree *t = ud;
    jsr_json *v = new_node(t, s->type);
    if (!v)
        return "out of memory";
    v->integer = s->integer;
    if (s->str && !(v->str = doc_strdup(t->doc, s->str, s->len)))
        return "out of memory";
    v->len = s->len;
    if (s->raw && !(v->raw = doc_strdup(t->doc, s->raw, s->rawlen)))
        return "out of memory";
    v->rawlen = s->rawlen;
    return attach(t, v);
}

static const jsr_json_sink tree_sink = {tree_open, tree_key, tree_scalar, tree_close};

jsr_json_doc *jsr_json_parse(const char *text, size_t len, const jsr_json_opts *opts,
                             char *err, size_t errlen)
{
    jsr_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    tree tr, *t = &tr;
    memset(t, 0, sizeof *t);
    t->doc = doc;
    t->stack = t->few;
    t->cap = (int)(sizeof t->few / sizeof *t->few);
    doc->next_cap = len < BLOCK_SIZE / 4 ? 4 * len + 512 : BLOCK_SIZE;
    jsr_json_scratch s;
    jsr_json_scratch_init(&s);
    int ok = jsr_json_parse_into(text, len, opts, &tree_sink, t, &s, NULL, err, errlen);
    jsr_json_scratch_free(&s);
    while (t->top > 0) /* the containers a failure left open */
        free(t->stack[--t->top].slots);
    if (t->stack != t->few)
        free(t->stack);
    if (!ok) {
        jsr_json_doc_free(doc);
        return NULL;
    }
    return doc;
}

const jsr_json *jsr_json_get(const jsr_json *obj, const char *key)
{
    if (!obj || obj->type != JSR_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const jsr_json *m = obj->first; m; m = m->next)
        if (same_key(m, key, n))
            return m;
    return NULL;
}

/* -------------------------------------------------------------- writing */

void jsr_json_writer_init(jsr_json_writer *w, jsr_buf *out, int flags)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->flags = flags;
}

/* pretty output only: a line break and the indent of nesting level */
static void w_break(jsr_json_writer *w, int level)
{
    if (!(w->flags & JSR_JSON_PRETTY))
        return;
    jsr_buf_addc(w->out, '\n');
    for (int i = 0; i < level; i++)
        jsr_buf_add(w->out, "  ", 2);
}

/* The comma and line break before a member. */
static void w_member(jsr_json_writer *w)
{
    if (!w->empty)
        jsr_buf_addc(w->out, ',');
    w_break(w, w->depth);
    w->empty = 0;
}

static void w_before_value(jsr_json_writer *w)
{
    if (w->after_key)
        w->after_key = 0;
    else if (w->depth > 0)
        w_member(w); /* an array's */
}

void jsr_json_w_open(jsr_json_writer *w, jsr_json_type type)
{
    w_before_value(w);
    jsr_buf_addc(w->out, type == JSR_JSON_OBJECT ? '{' : '[');
    w->depth++;
    w->empty = 1;
}

void jsr_json_w_close(jsr_json_writer *w, jsr_json_type type)
{
    if (!w->empty)
        w_break(w, w->depth - 1);
    jsr_buf_addc(w->out, type == JSR_JSON_OBJECT ? '}' : ']');
    w->depth--;
    w->empty = 0; /* the container closed is a member of its parent */
}

static void w_key_end(jsr_json_writer *w)
{
    jsr_buf_adds(w->out, (w->flags & JSR_JSON_PRETTY) ? ": " : ":");
    w->after_key = 1;
}

void jsr_json_w_key(jsr_json_writer *w, const char *s, size_t n)
{
    w_member(w);
    jsr_json_put_string(w->out, s, n, w->flags);
    w_key_end(w);
}

void jsr_json_w_key_raw(jsr_json_writer *w, const char *raw, size_t n)
{
    w_member(w);
    jsr_buf_add(w->out, raw, n);
    w_key_end(w);
}

void jsr_json_w_string(jsr_json_writer *w, const char *s, size_t n)
{
    w_before_value(w);
    jsr_json_put_string(w->out, s, n, w->flags);
}

void jsr_json_w_raw(jsr_json_writer *w, const char *text, size_t n)
{
    w_before_value(w);
    jsr_buf_add(w->out, text, n);
}

void jsr_json_w_int(jsr_json_writer *w, long long v)
{
    w_before_value(w);
    jsr_buf_addf(w->out, "%lld", v);
}

void jsr_json_w_value(jsr_json_writer *w, const jsr_json *v)
{
    switch (v->type) {
    case JSR_JSON_NULL: jsr_json_w_raw(w, "null", 4); break;
    case JSR_JSON_FALSE: jsr_json_w_raw(w, "false", 5); break;
    case JSR_JSON_TRUE: jsr_json_w_raw(w, "true", 4); break;
    case JSR_JSON_INT: jsr_json_w_int(w, v->integer); break;
    case JSR_JSON_NUMBER: jsr_json_w_raw(w, v->str, v->len); break;
    case JSR_JSON_STRING:
        if (v->raw)
            jsr_json_w_raw(w, v->raw, v->rawlen);
        else
            jsr_json_w_string(w, v->str, v->len);
        break;
    case JSR_JSON_ARRAY:
    case JSR_JSON_OBJECT:
        jsr_json_w_open(w, v->type);
        for (const jsr_json *m = v->first; m; m = m->next) {
            if (v->type == JSR_JSON_OBJECT) {
                if (m->rawkey)
                    jsr_json_w_key_raw(w, m->rawkey, m->rawkeylen);
                else
                    jsr_json_w_key(w, m->key, m->keylen);
            }
            jsr_json_w_value(w, m);
        }
        jsr_json_w_close(w, v->type);
        break;
    }
}
