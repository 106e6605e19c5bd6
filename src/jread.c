/* Reading a journal one line at a time (see jread.h for the format). */
#define _GNU_SOURCE
#include "jsr/jread.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/fsops.h"
#include "jsr/undo.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)

static const char *const jop_names[JSR_JOP_COUNT] = {
    [JSR_JOP_REPLACE] = "replace", [JSR_JOP_MOVE] = "move", [JSR_JOP_RENAME] = "rename",
    [JSR_JOP_MKDIR] = "mkdir"};

const char *jsr_jop_name(int kind)
{
    return kind >= 0 && kind < JSR_JOP_COUNT ? jop_names[kind] : "unknown";
}

/* ------------------------------------------------------- one line's JSON */

/* Our own journal format: objects whose values are strings, null or
 * booleans.  Strict and bounded; other keys are skipped so later versions
 * can add some. */
typedef struct {
    const char *p, *end;
    const char *why;
} jp;

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

static int lit(jp *j, const char *w)
{
    ws(j);
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, w, n)) {
        j->p += n;
        return 1;
    }
    return 0;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16)
            return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* Parses a string into a malloc'd, NUL-terminated copy (NUL bytes refused:
 * they cannot be in a path). */
static char *jstring(jp *j)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"') {
        j->why = "a string was expected";
        return NULL;
    }
    j->p++;
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) {
        j->why = "out of memory";
        return NULL;
    }
    while (j->p < j->end && *j->p != '"') {
        if (n + 5 >= cap) {
            char *o = realloc(out, cap *= 2);
            if (!o) {
                free(out);
                j->why = "out of memory";
                return NULL;
            }
            out = o;
        }
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (j->p >= j->end)
            goto bad;
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': case '\\': case '/': out[n++] = (char)c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned v;
            if (j->end - j->p < 4 || !hex4(j->p, &v) || v == 0 || (v >= 0xd800 && v < 0xe000))
                goto bad; /* changes.c writes \u only for control bytes */
            j->p += 4;
            if (v < 0x80) {
                out[n++] = (char)v;
            } else if (v < 0x800) {
                out[n++] = (char)(0xc0 | (v >> 6));
                out[n++] = (char)(0x80 | (v & 0x3f));
            } else {
                out[n++] = (char)(0xe0 | (v >> 12));
                out[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
                out[n++] = (char)(0x80 | (v & 0x3f));
            }
            break;
        }
        default: goto bad;
        }
    }
    if (j->p >= j->end)
        goto bad;
    j->p++;
    out[n] = 0;
    return out;
bad:
    free(out);
    j->why = "invalid string";
    return NULL;
}

static int jskip(jp *j, int depth)
{
    if (depth > 32) {
        j->why = "nested too deeply";
        return 0;
    }
    ws(j);
    if (j->p >= j->end) {
        j->why = "unexpected end";
        return 0;
    }
    if (*j->p == '"') {
        char *s = jstring(j);
        free(s);
        return s != NULL;
    }
    if (lit(j, "true") || lit(j, "false") || lit(j, "null"))
        return 1;
    if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
        while (j->p < j->end && strchr("+-.eE0123456789", *j->p))
            j->p++;
        return 1;
    }
    char open = *j->p, close = open == '{' ? '}' : ']';
    if (open != '{' && open != '[') {
        j->why = "unexpected character";
        return 0;
    }
    j->p++;
    if (eat(j, close))
        return 1;
    do {
        if (open == '{') {
            char *k = jstring(j);
            if (!k)
                return 0;
            free(k);
            if (!eat(j, ':')) {
                j->why = "':' expected";
                return 0;
            }
        }
        if (!jskip(j, depth + 1))
            return 0;
    } while (eat(j, ','));
    if (!eat(j, close)) {
        j->why = "',' or a closing bracket expected";
        return 0;
    }
    return 1;
}

typedef struct {
    char *op, *path, *tmp, *backup, *to;
    int purge, has_backup;
} rawop;

static void free_raw(rawop *r)
{
    free(r->op);
    free(r->path);
    free(r->tmp);
    free(r->backup);
    free(r->to);
    memset(r, 0, sizeof *r);
}

static int parse_op(jp *j, rawop *r)
{
    if (!eat(j, '{')) {
        j->why = "an operation object was expected";
        return 0;
    }
    if (eat(j, '}'))
        return 1;
    do {
        char *k = jstring(j);
        if (!k)
            return 0;
        int ok = eat(j, ':');
        char **slot = !strcmp(k, "op")     ? &r->op
                      : !strcmp(k, "path") ? &r->path
                      : !strcmp(k, "tmp")  ? &r->tmp
                      : !strcmp(k, "to")   ? &r->to
                                           : NULL;
        if (!ok) {
            j->why = "':' expected";
        } else if (slot) {
            free(*slot);
            ok = (*slot = jstring(j)) != NULL;
        } else if (!strcmp(k, "backup")) {
            r->has_backup = 1;
            free(r->backup);
            r->backup = NULL;
            ok = lit(j, "null") || (r->backup = jstring(j)) != NULL;
        } else if (!strcmp(k, "purge")) {
            r->purge = lit(j, "true");
            ok = r->purge || lit(j, "false");
            if (!ok)
                j->why = "purge must be true or false";
        } else {
            ok = jskip(j, 1);
        }
        free(k);
        if (!ok)
            return 0;
    } while (eat(j, ','));
    if (!eat(j, '}')) {
        j->why = "',' or '}' expected";
        return 0;
    }
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
        return "an operation without \"op\" or \"path\"";
    if (!rel_ok(r->path) || under(r->path, JSR_STATE_DIR))
        return "a path outside the store's data (absolute, \"..\", or in " JSR_STATE_DIR "/)";
    *kind = -1;
    for (int k = 0; k < JSR_JOP_COUNT; k++)
        if (!strcmp(r->op, jop_names[k]))
            *kind = k;
    if (*kind == JSR_JOP_REPLACE) {
        if (!r->tmp || snprintf(want, sizeof want, "%s" JSR_TMP_SUFFIX, r->path) >=
                           (int)sizeof want || strcmp(r->tmp, want) != 0)
            return "a replace whose \"tmp\" is not <path>" JSR_TMP_SUFFIX;
        if (!r->has_backup)
            return "a replace without \"backup\"";
        if (r->backup) {
            int n = snprintf(want, sizeof want, JSR_BACKUP_DIR "/%s/", id);
            if (n >= (int)sizeof want || strncmp(r->backup, want, (size_t)n) != 0 ||
                !r->backup[n] || strspn(r->backup + n, "0123456789") != strlen(r->backup + n))
                return "a backup outside " JSR_BACKUP_DIR "/<journal id>/";
        }
        return NULL;
    }
    if (*kind == JSR_JOP_MOVE) {
        int n = snprintf(want, sizeof want, JSR_REMOVED_DIR "/%s/", id);
        if (!r->to || n >= (int)sizeof want || strncmp(r->to, want, (size_t)n) != 0 ||
            !rel_ok(r->to) || strchr(r->to + n, '/'))
            return "a move whose \"to\" is not in " JSR_REMOVED_DIR "/<journal id>/";
        return NULL;
    }
    if (*kind == JSR_JOP_MKDIR) {
        if (r->to || r->tmp || r->backup)
            return "a mkdir with a \"to\", \"tmp\" or \"backup\"";
        return NULL;
    }
    if (*kind == JSR_JOP_RENAME) {
        if (!r->to || !rel_ok(r->to) || under(r->to, JSR_STATE_DIR))
            return "a rename whose \"to\" is outside the store's data";
        return NULL;
    }
    return "an unknown operation";
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
        char *k = jstring(j);
        if (!k)
            return 0;
        if (!eat(j, ':')) {
            free(k);
            j->why = "':' expected";
            return 0;
        }
        int is_ops = !strcmp(k, "ops");
        free(k);
        if (is_ops)
            break;
        if (!jskip(j, 1))
            return 0;
        if (!eat(j, ',')) {
            j->why = "\"ops\" missing from the first line";
            return 0;
        }
    }
    if (!eat(j, '[')) {
        j->why = "\"ops\" is not an array";
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
    jp j = {line, line + len, NULL};
    rawop r = {0};
    if (!parse_op_line(&j, &r, last)) {
        free_raw(&r);
        return ERR("%s: not a readable journal (%s at %s, byte %ld of the line)", c->file,
                   j.why ? j.why : "invalid", where, (long)(j.p - line));
    }
    if (expect_last >= 0 && *last != expect_last) {
        free_raw(&r);
        return ERR("%s: not a readable journal (%s at %s)", c->file,
                   expect_last ? "the last operation does not close \"ops\" with \"]}\""
                               : "\"]}\" before the last operation",
                   where);
    }
    int kind = 0;
    const char *bad = check_op(c->id, &r, &kind);
    if (bad) {
        free_raw(&r);
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
    free_raw(&r);
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
        jp j = {line, line + n, NULL};
        if (!parse_header(&j, &last)) {
            ERR("%s: not a readable journal (%s at line 1, byte %ld)", file,
                j.why ? j.why : "invalid", (long)(j.p - line));
            r = -1;
        }
    }
    while (r > 0 && !last) {
        r = next_line(&l, &line, &n, err, errlen);
        if (r == 0)
            ERR("%s: ends at line %zu before \"ops\" is closed: cut short", file, l.lineno);
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
