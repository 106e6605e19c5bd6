/* The journal record (see journal.h for the format): written a whole
 * commit at a time, read one line at a time, either way. */
#define _GNU_SOURCE
#include "jsr/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/fsops.h"
#include "jsr/json.h"
#include "jsr/undo.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)

/* The record's keys and operation names: spelled here only. */
#define K_TX "tx"
#define K_STORE "store"
#define K_OPS "ops"
#define K_OP "op"
#define K_PATH "path"
#define K_TMP "tmp"
#define K_BACKUP "backup"
#define K_TO "to"
#define K_PURGE "purge"
static const char *const jop_names[JSR_JOP_COUNT] = {
    [JSR_JOP_REPLACE] = "replace", [JSR_JOP_MOVE] = "move", [JSR_JOP_RENAME] = "rename",
    [JSR_JOP_MKDIR] = "mkdir"};

const char *jsr_jop_name(int kind)
{
    return kind >= 0 && kind < JSR_JOP_COUNT ? jop_names[kind] : "unknown";
}

/* ------------------------------------------------------- writing */

/* Strings are written as bytes (JSR_JSON_BYTES): a path is whatever the
 * file system holds, and only '"', '\' and control bytes are escaped, so
 * a line never holds a raw newline. */
static void put(jsr_json_writer *w, const char *key, const char *s)
{
    jsr_json_w_key(w, key, strlen(key));
    if (s)
        jsr_json_w_string(w, s, strlen(s));
    else
        jsr_json_w_raw(w, "null", 4);
}

void jsr_journal_begin(jsr_buf *b, const char *id, const char *store)
{
    jsr_json_writer w;
    jsr_json_writer_init(&w, b, JSR_JSON_BYTES);
    jsr_json_w_open(&w, JSR_JSON_OBJECT);
    put(&w, K_TX, id);
    put(&w, K_STORE, store);
    jsr_json_w_key(&w, K_OPS, strlen(K_OPS));
    jsr_json_w_open(&w, JSR_JSON_ARRAY); /* the operations follow, a line each */
}

void jsr_journal_add(jsr_buf *b, size_t index, const jsr_jop *op)
{
    jsr_buf_adds(b, index ? ",\n" : "\n");
    jsr_json_writer w;
    jsr_json_writer_init(&w, b, JSR_JSON_BYTES);
    jsr_json_w_open(&w, JSR_JSON_OBJECT);
    put(&w, K_OP, jsr_jop_name(op->kind));
    put(&w, K_PATH, op->path);
    if (op->kind == JSR_JOP_REPLACE) {
        put(&w, K_TMP, op->tmp);
        put(&w, K_BACKUP, op->backup);
    } else if (op->kind != JSR_JOP_MKDIR) {
        put(&w, K_TO, op->to);
        if (op->kind == JSR_JOP_MOVE) {
            jsr_json_w_key(&w, K_PURGE, strlen(K_PURGE));
            if (op->purge)
                jsr_json_w_raw(&w, "true", 4);
            else
                jsr_json_w_raw(&w, "false", 5);
        }
    }
    jsr_json_w_close(&w, JSR_JSON_OBJECT);
}

void jsr_journal_end(jsr_buf *b) { jsr_buf_adds(b, "]}\n"); }

/* ------------------------------------------------------- one line */

/* A line is read with the JSON codec, a value at a time (the first line
 * and an operation's are not whole JSON texts).  Strict and bounded;
 * other keys are skipped so later versions can add some. */
typedef struct {
    const char *line, *p, *end;
    const char *why;
    int placed; /* why names its byte */
    char msg[200];
} jp;

/* Values in one line: an operation has 7; far more is not ours, and a
 * decoded value costs ~100 bytes. */
#define LINE_MAX_VALUES 100000

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int eat(jp *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* The JSON value at j->p, as a tree; j->p moves past it. */
static jsr_json_doc *value(jp *j)
{
    size_t used = 0;
    jsr_json_opts o = {.max_values = LINE_MAX_VALUES, .flags = JSR_JSON_BYTES, .used = &used,
                       .offset = (size_t)(j->p - j->line)};
    jsr_json_doc *d = jsr_json_parse(j->p, (size_t)(j->end - j->p), &o, j->msg, sizeof j->msg);
    if (!d) {
        j->why = j->msg;
        j->placed = 1;
        return NULL;
    }
    j->p += used;
    return d;
}

/* An operation as read: its strings point into doc. */
typedef struct {
    jsr_json_doc *doc;
    const char *op, *path, *tmp, *backup, *to;
    int purge, has_backup;
} rawop;

/* *s = the string at key (NULL if absent, or null where nullable). */
static int string_at(jp *j, const jsr_json *obj, const char *key, int nullable, const char **s,
                     int *present)
{
    const jsr_json *v = jsr_json_get(obj, key);
    *s = NULL;
    if (present)
        *present = v != NULL;
    if (!v || (nullable && v->type == JSR_JSON_NULL))
        return 1;
    if (v->type != JSR_JSON_STRING) {
        j->why = "a string was expected";
        return 0;
    }
    if (strlen(v->str) != v->len) {
        j->why = "a NUL byte in a string"; /* never in a path */
        return 0;
    }
    *s = v->str;
    return 1;
}

static int parse_op(jp *j, rawop *r)
{
    ws(j);
    if (j->p >= j->end || *j->p != '{') {
        j->why = "an operation object was expected";
        return 0;
    }
    if (!(r->doc = value(j)))
        return 0;
    const jsr_json *o = jsr_json_root(r->doc);
    if (!string_at(j, o, K_OP, 0, &r->op, NULL) || !string_at(j, o, K_PATH, 0, &r->path, NULL) ||
        !string_at(j, o, K_TMP, 0, &r->tmp, NULL) || !string_at(j, o, K_TO, 0, &r->to, NULL) ||
        !string_at(j, o, K_BACKUP, 1, &r->backup, &r->has_backup))
        return 0;
    const jsr_json *p = jsr_json_get(o, K_PURGE);
    if (p && p->type != JSR_JSON_TRUE && p->type != JSR_JSON_FALSE) {
        j->why = "purge must be true or false";
        return 0;
    }
    r->purge = p && p->type == JSR_JSON_TRUE;
    return 1;
}

/* A journal path: relative, clean, no "..", no empty or "." component. */
static int rel_ok(const char *r)
{
    if (!r || !*r || *r == '/')
        return 0;
    for (const char *p = r; *p;) {
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        if (*p == '/') {
            p++;
            if (!*p)
                return 0;
        }
    }
    return 1;
}

static int under(const char *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(r, prefix, n) && (r[n] == '/' || r[n] == 0);
}

static char *absolute(const char *store, const char *r)
{
    size_t a = strlen(store), b = strlen(r);
    if (a + 1 + b >= PATH_MAX)
        return NULL;
    char *out = malloc(a + b + 2);
    if (out) {
        memcpy(out, store, a);
        out[a] = '/';
        memcpy(out + a + 1, r, b + 1);
    }
    return out;
}

/* Checks one operation as read from the journal of id: the paths must be
 * where commit puts them, so a damaged or edited journal cannot make undo
 * move anything else. */
static const char *check_op(const char *id, const rawop *r, int *kind)
{
    char want[PATH_MAX];
    if (!r->op || !r->path)
        return "an operation without \"" K_OP "\" or \"" K_PATH "\"";
    if (!rel_ok(r->path) || under(r->path, JSR_STATE_DIR))
        return "a path outside the store's data (absolute, \"..\", or in " JSR_STATE_DIR "/)";
    for (*kind = 0; *kind < JSR_JOP_COUNT && strcmp(r->op, jop_names[*kind]) != 0; (*kind)++)
        ;
    switch (*kind) {
    case JSR_JOP_REPLACE:
        if (!r->tmp || snprintf(want, sizeof want, "%s" JSR_TMP_SUFFIX, r->path) >=
                           (int)sizeof want || strcmp(r->tmp, want) != 0)
            return "a replace whose \"" K_TMP "\" is not <path>" JSR_TMP_SUFFIX;
        if (!r->has_backup)
            return "a replace without \"" K_BACKUP "\"";
        if (r->backup) {
            int n = snprintf(want, sizeof want, JSR_BACKUP_DIR "/%s/", id);
            if (n >= (int)sizeof want || strncmp(r->backup, want, (size_t)n) != 0 ||
                !r->backup[n] || strspn(r->backup + n, "0123456789") != strlen(r->backup + n))
                return "a backup outside " JSR_BACKUP_DIR "/<journal id>/";
        }
        return NULL;
    case JSR_JOP_MOVE: {
        int n = snprintf(want, sizeof want, JSR_REMOVED_DIR "/%s/", id);
        if (!r->to || n >= (int)sizeof want || strncmp(r->to, want, (size_t)n) != 0 ||
            !rel_ok(r->to) || strchr(r->to + n, '/'))
            return "a move whose \"" K_TO "\" is not in " JSR_REMOVED_DIR "/<journal id>/";
        return NULL;
    }
    case JSR_JOP_MKDIR:
        if (r->to || r->tmp || r->backup)
            return "a mkdir with a \"" K_TO "\", \"" K_TMP "\" or \"" K_BACKUP "\"";
        return NULL;
    case JSR_JOP_RENAME:
        if (!r->to || !rel_ok(r->to) || under(r->to, JSR_STATE_DIR))
            return "a rename whose \"" K_TO "\" is outside the store's data";
        return NULL;
    default:
        return "an unknown operation";
    }
}

/* The first line: the journal's keys up to "ops":[ ; *empty when the same
 * line closes it ("ops":[]}). */
static int parse_header(jp *j, int *empty)
{
    if (!eat(j, '{')) {
        j->why = "not a JSON object";
        return 0;
    }
    for (;;) {
        ws(j);
        if (j->p >= j->end || *j->p != '"') {
            j->why = "a string was expected";
            return 0;
        }
        jsr_json_doc *k = value(j);
        if (!k)
            return 0;
        int is_ops = !strcmp(jsr_json_root(k)->str, K_OPS);
        jsr_json_doc_free(k);
        if (!eat(j, ':')) {
            j->why = "':' expected";
            return 0;
        }
        if (is_ops)
            break;
        jsr_json_doc *v = value(j);
        if (!v)
            return 0;
        jsr_json_doc_free(v);
        if (!eat(j, ',')) {
            j->why = "\"" K_OPS "\" missing from the first line";
            return 0;
        }
    }
    if (!eat(j, '[')) {
        j->why = "\"" K_OPS "\" is not an array";
        return 0;
    }
    ws(j);
    *empty = 0;
    if (j->p == j->end)
        return 1;
    if (eat(j, ']') && eat(j, '}')) {
        ws(j);
        *empty = 1;
        if (j->p == j->end)
            return 1;
        j->why = "data after the journal";
        return 0;
    }
    j->why = "an operation object was expected, on a line of its own";
    return 0;
}

/* An operation line: {...} then ',' or, on the last one, "]}". */
static int parse_op_line(jp *j, rawop *r, int *last)
{
    if (!parse_op(j, r))
        return 0;
    if (eat(j, ','))
        *last = 0;
    else if (eat(j, ']') && eat(j, '}'))
        *last = 1;
    else {
        j->why = "',' or \"]}\" expected after the operation";
        return 0;
    }
    ws(j);
    if (j->p != j->end) {
        j->why = *last ? "data after the journal" : "more than one operation on a line";
        return 0;
    }
    return 1;
}

/* "(<why> at <where>, byte B of the line)", or without the byte when the
 * codec's message names it. */
static int unreadable(const char *file, const jp *j, const char *where, char *err,
                      size_t errlen)
{
    if (j->placed)
        return ERR("%s: not a readable journal (%s of the line at %s)", file, j->why, where);
    return ERR("%s: not a readable journal (%s at %s, byte %ld of the line)", file,
               j->why ? j->why : "invalid", where, (long)(j->p - j->line));
}

typedef struct {
    const char *store, *id, *file;
    jsr_jop_fn fn;
    void *ud;
} ctx;

/* Parses and checks the operation on one line, then hands it to fn.
 * expect_last: 0 or 1 when the reader knows where the line must be, -1
 * when the line tells (*last). where: the line's place, for messages. */
static int one_op(const ctx *c, const char *line, size_t len, size_t index, int expect_last,
                  int *last, const char *where, char *err, size_t errlen)
{
    jp j = {.line = line, .p = line, .end = line + len};
    rawop r = {0};
    if (!parse_op_line(&j, &r, last)) {
        jsr_json_doc_free(r.doc);
        return unreadable(c->file, &j, where, err, errlen);
    }
    if (expect_last >= 0 && *last != expect_last) {
        jsr_json_doc_free(r.doc);
        return ERR("%s: not a readable journal (%s at %s)", c->file,
                   expect_last ? "the last operation does not close \"" K_OPS "\" with \"]}\""
                               : "\"]}\" before the last operation",
                   where);
    }
    int kind = 0;
    const char *bad = check_op(c->id, &r, &kind);
    if (bad) {
        jsr_json_doc_free(r.doc);
        return ERR("%s: operation %zu (%s): %s; undo refuses this journal", c->file, index + 1,
                   where, bad);
    }
    char *a[4] = {absolute(c->store, r.path), r.tmp ? absolute(c->store, r.tmp) : NULL,
                  r.backup ? absolute(c->store, r.backup) : NULL,
                  r.to ? absolute(c->store, r.to) : NULL};
    int ok = a[0] && (!r.tmp || a[1]) && (!r.backup || a[2]) && (!r.to || a[3]);
    if (!ok) {
        ERR("%s: operation %zu (%s): a path too long, or out of memory", c->file, index + 1,
            where);
    } else if (c->fn) {
        jsr_jop o = {kind, a[0], a[1], a[2], a[3], r.purge};
        ok = c->fn(&o, index, c->ud, err, errlen);
    }
    for (int i = 0; i < 4; i++)
        free(a[i]);
    jsr_json_doc_free(r.doc);
    return ok;
}

static int open_journal(const char *store, const char *id, char *file, size_t flen, int *fd,
                        struct stat *st, char *err, size_t errlen)
{
    *fd = -1;
    if (snprintf(file, flen, "%s/" JSR_JOURNAL_DIR "/%s" JSR_JOURNAL_EXT, store, id) >= (int)flen)
        return ERR("%s: path too long", store);
    *fd = jsr_open_file(file, st, err, errlen);
    return *fd >= 0;
}

/* ------------------------------------------------------- first to last */

typedef struct {
    int fd;
    const char *file;
    char *buf; /* bytes read, not yet returned: [start, start + len) */
    size_t cap, start, len, lineno;
    int eof;
} lines;

/* The next line, without its '\n': 1, 0 at the end of the file, -1 on an
 * error.  *line stays valid until the next call. */
static int next_line(lines *l, const char **line, size_t *n, char *err, size_t errlen)
{
    for (;;) {
        char *nl = l->len ? memchr(l->buf + l->start, '\n', l->len) : NULL;
        if (nl || (l->eof && l->len)) {
            *line = l->buf + l->start;
            *n = nl ? (size_t)(nl - *line) : l->len;
            size_t used = *n + (nl != NULL);
            l->start += used;
            l->len -= used;
            l->lineno++;
            return 1;
        }
        if (l->eof)
            return 0;
        if (l->start) {
            memmove(l->buf, l->buf + l->start, l->len);
            l->start = 0;
        }
        if (l->len == l->cap) {
            if (l->cap >= JSR_JOURNAL_LINE_MAX) {
                ERR("%s: line %zu is longer than %u bytes: not a journal js-recover wrote",
                    l->file, l->lineno + 1, JSR_JOURNAL_LINE_MAX);
                return -1;
            }
            size_t ncap = l->cap ? l->cap * 2 : 64 * 1024;
            char *b = realloc(l->buf, ncap);
            if (!b) {
                ERR("%s: out of memory reading line %zu", l->file, l->lineno + 1);
                return -1;
            }
            l->buf = b;
            l->cap = ncap;
        }
        ssize_t r = read(l->fd, l->buf + l->len, l->cap - l->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ERR("%s: read failed: %s", l->file, strerror(errno));
            return -1;
        }
        if (r == 0)
            l->eof = 1;
        l->len += (size_t)r;
    }
}

int jsr_journal_forward(const char *store, const char *id, jsr_jop_fn fn, void *ud,
                        jsr_jinfo *info, char *err, size_t errlen)
{
    char file[PATH_MAX], where[64];
    int fd;
    struct stat st;
    if (!open_journal(store, id, file, sizeof file, &fd, &st, err, errlen))
        return 0;
    lines l = {fd, file, NULL, 0, 0, 0, 0, 0};
    ctx c = {store, id, file, fn, ud};
    const char *line;
    size_t n, count = 0;
    int ok = 0, r = next_line(&l, &line, &n, err, errlen), last = 0;
    if (r == 0)
        ERR("%s: empty: not a journal", file);
    if (r > 0) {
        jp j = {.line = line, .p = line, .end = line + n};
        if (!parse_header(&j, &last)) {
            unreadable(file, &j, "line 1", err, errlen);
            r = -1;
        }
    }
    while (r > 0 && !last) {
        r = next_line(&l, &line, &n, err, errlen);
        if (r == 0)
            ERR("%s: ends at line %zu before \"" K_OPS "\" is closed: cut short", file, l.lineno);
        if (r <= 0)
            break;
        snprintf(where, sizeof where, "line %zu", l.lineno);
        if (!one_op(&c, line, n, count, -1, &last, where, err, errlen))
            r = -1;
        else
            count++;
    }
    if (r > 0 && last) {
        r = next_line(&l, &line, &n, err, errlen);
        if (r > 0)
            ERR("%s: data after the journal's end (line %zu)", file, l.lineno);
        ok = r == 0;
    }
    if (ok && info) {
        info->count = count;
        info->size = (long long)st.st_size;
        info->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        info->dev = (unsigned long long)st.st_dev;
        info->ino = (unsigned long long)st.st_ino;
    }
    free(l.buf);
    close(fd);
    return ok;
}

/* ------------------------------------------------------- last to first */

typedef struct {
    int fd;
    const char *file;
    char *buf; /* the end of what is not returned yet: bytes [off, off + len) */
    size_t cap, len;
    off_t off;
} rlines;

/* The line before those returned so far (its '\n' not included): 1, 0
 * when none is left, -1 on an error; *at is its offset in the file. */
static int prev_line(rlines *l, const char **line, size_t *n, off_t *at, char *err,
                     size_t errlen)
{
    for (;;) {
        if (l->len) {
            size_t stop = l->len - (l->buf[l->len - 1] == '\n');
            char *nl = stop ? memrchr(l->buf, '\n', stop) : NULL;
            if (nl || l->off == 0) {
                size_t from = nl ? (size_t)(nl - l->buf) + 1 : 0;
                *line = l->buf + from;
                *n = stop - from;
                *at = l->off + (off_t)from;
                l->len = from;
                return 1;
            }
        } else if (l->off == 0) {
            return 0;
        }
        if (l->len >= JSR_JOURNAL_LINE_MAX) {
            ERR("%s: the line ending at byte %lld is longer than %u bytes: not a journal "
                "js-recover wrote", l->file, (long long)l->off + (long long)l->len,
                JSR_JOURNAL_LINE_MAX);
            return -1;
        }
        size_t chunk = 64 * 1024;
        if ((off_t)chunk > l->off)
            chunk = (size_t)l->off;
        if (l->len + chunk > l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : chunk * 2;
            if (ncap < l->len + chunk)
                ncap = l->len + chunk;
            char *b = realloc(l->buf, ncap);
            if (!b) {
                ERR("%s: out of memory reading it backwards", l->file);
                return -1;
            }
            l->buf = b;
            l->cap = ncap;
        }
        memmove(l->buf + chunk, l->buf, l->len);
        for (size_t got = 0; got < chunk;) {
            ssize_t r = pread(l->fd, l->buf + got, chunk - got, l->off - (off_t)chunk + (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                ERR("%s: read failed: %s", l->file, r < 0 ? strerror(errno) : "the file shrank");
                return -1;
            }
            got += (size_t)r;
        }
        l->off -= (off_t)chunk;
        l->len += chunk;
    }
}

int jsr_journal_backward(const char *store, const char *id, const jsr_jinfo *info,
                         jsr_jop_fn fn, void *ud, char *err, size_t errlen)
{
    char file[PATH_MAX], where[64];
    int fd;
    struct stat st;
    if (!open_journal(store, id, file, sizeof file, &fd, &st, err, errlen))
        return 0;
    long long mt = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if ((long long)st.st_size != info->size || mt != info->mtime_ns ||
        (unsigned long long)st.st_dev != info->dev || (unsigned long long)st.st_ino != info->ino) {
        close(fd);
        return ERR("%s: changed while js-recover was using it; nothing more was undone", file);
    }
    rlines l = {fd, file, NULL, 0, 0, st.st_size};
    ctx c = {store, id, file, fn, ud};
    const char *line;
    size_t n, k = 0;
    off_t at;
    int ok = 0;
    for (;;) {
        int r = prev_line(&l, &line, &n, &at, err, errlen);
        if (r < 0)
            break;
        if (r == 0 || at == 0) {
            /* the first line: checked by the forward read, and unchanged */
            if (r == 0 || k != info->count)
                ERR("%s: holds %zu operations, not the %zu read before; nothing more was "
                    "undone", file, k, info->count);
            else
                ok = 1;
            break;
        }
        if (k == info->count) {
            ERR("%s: holds more operations than the %zu read before; nothing more was undone",
                file, info->count);
            break;
        }
        int last;
        snprintf(where, sizeof where, "byte %lld", (long long)at);
        if (!one_op(&c, line, n, info->count - 1 - k, k == 0, &last, where, err, errlen))
            break;
        k++;
    }
    free(l.buf);
    close(fd);
    return ok;
}
