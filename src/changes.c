#define _GNU_SOURCE
#include "jsr/changes.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsr/buf.h"
#include "jsr/fsops.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)
#define TMP_SUFFIX ".jsr-tmp"

enum op_kind { OP_PUT, OP_MOVE, OP_RENAME, OP_DEAD };

typedef struct {
    enum op_kind kind;
    char *path;   /* target (put) or tree to move (move) */
    char *dest;   /* put: temp file; move: where the tree goes */
    char *backup; /* put: hard link of the replaced file, or NULL */
    int purge;
} op;

struct jsr_changes {
    char *store;
    op *ops;
    size_t n, cap;
    char **set; /* open-addressing set of staged paths */
    size_t setcap;
    char id[64];
    int committed;
    int broken; /* a staging step failed: commit would be partial */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

/* Adds path to the staged set; returns 0 if it is already there. */
static int set_add(jsr_changes *c, char *path)
{
    if ((c->n + 1) * 2 > c->setcap) {
        size_t ncap = c->setcap ? c->setcap * 2 : 64;
        char **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < c->setcap; i++) {
            if (!c->set[i])
                continue;
            size_t j = hash_str(c->set[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = c->set[i];
        }
        free(c->set);
        c->set = ns;
        c->setcap = ncap;
    }
    size_t j = hash_str(path) & (c->setcap - 1);
    while (c->set[j]) {
        if (!strcmp(c->set[j], path))
            return 0;
        j = (j + 1) & (c->setcap - 1);
    }
    c->set[j] = path;
    return 1;
}

jsr_changes *jsr_changes_open(const char *store_dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(store_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ERR("%s: not a directory", store_dir);
        return NULL;
    }
    jsr_changes *c = calloc(1, sizeof *c);
    if (!c || !(c->store = strdup(store_dir))) {
        free(c);
        ERR("out of memory");
        return NULL;
    }
    return c;
}

size_t jsr_changes_count(const jsr_changes *c) { return c->n; }
const char *jsr_changes_id(const jsr_changes *c) { return c->id; }

static op *new_op(jsr_changes *c, const char *path, char *err, size_t errlen)
{
    char clean[PATH_MAX];
    if (!jsr_path_clean(path, clean, sizeof clean, err, errlen))
        return NULL;
    if (!strcmp(clean, c->store)) {
        ERR("%s: refusing to change the store directory itself", clean);
        return NULL;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 32;
        op *p = realloc(c->ops, ncap * sizeof *p);
        if (!p) {
            ERR("out of memory");
            return NULL;
        }
        c->ops = p;
        c->cap = ncap;
    }
    op *o = &c->ops[c->n];
    memset(o, 0, sizeof *o);
    if (!(o->path = strdup(clean))) {
        ERR("out of memory");
        return NULL;
    }
    int r = set_add(c, o->path);
    if (r <= 0) {
        if (r == 0)
            ERR("%s: already changed in this set of changes", clean);
        else
            ERR("out of memory");
        free(o->path);
        return NULL;
    }
    return o;
}

int jsr_changes_put(jsr_changes *c, const char *path, const void *data, size_t len,
                    mode_t mode, char *err, size_t errlen)
{
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    if (!jsr_path_inside(c->store, o->path, 0, err, errlen))
        goto fail;
    struct stat st;
    if (lstat(o->path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            ERR("%s: exists and is not a regular file", o->path);
            goto fail;
        }
        if (mode == 0)
            mode = st.st_mode & 07777;
    } else if (errno != ENOENT) {
        ERR("%s: %s", o->path, strerror(errno));
        goto fail;
    }
    if (mode == 0)
        mode = 0640;
    size_t pl = strlen(o->path);
    o->dest = malloc(pl + sizeof TMP_SUFFIX);
    if (!o->dest) {
        ERR("out of memory");
        goto fail;
    }
    memcpy(o->dest, o->path, pl);
    memcpy(o->dest + pl, TMP_SUFFIX, sizeof TMP_SUFFIX);
    if (!jsr_write_new(o->dest, data, len, mode, 0, err, errlen))
        goto fail;
    o->kind = OP_PUT;
    c->n++;
    return 1;
fail:
    /* keep the op as dead so its path (still in the set) is freed later */
    free(o->dest);
    o->dest = NULL;
    o->kind = OP_DEAD;
    c->n++;
    c->broken = 1;
    return 0;
}

int jsr_changes_remove(jsr_changes *c, const char *path, int purge, char *err, size_t errlen)
{
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    if (!jsr_path_inside(c->store, o->path, 1, err, errlen)) {
        o->kind = OP_DEAD;
        c->n++;
        c->broken = 1;
        return 0;
    }
    o->kind = OP_MOVE;
    o->purge = purge;
    c->n++;
    return 1;
}

int jsr_changes_rename(jsr_changes *c, const char *path, const char *dest, char *err,
                       size_t errlen)
{
    char clean[PATH_MAX];
    if (!jsr_path_clean(dest, clean, sizeof clean, err, errlen))
        return 0;
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    struct stat st;
    int ok = jsr_path_inside(c->store, o->path, 1, err, errlen) &&
             jsr_path_inside(c->store, clean, 0, err, errlen);
    if (ok && lstat(clean, &st) == 0)
        ok = ERR("%s: already exists", clean);
    if (ok && !(o->dest = strdup(clean)))
        ok = ERR("out of memory");
    if (!ok) {
        o->kind = OP_DEAD;
        c->n++;
        c->broken = 1;
        return 0;
    }
    o->kind = OP_RENAME;
    c->n++;
    return 1;
}

static const char *rel(const jsr_changes *c, const char *path)
{
    size_t l = strlen(c->store);
    return path[l] == '/' ? path + l + 1 : path;
}

static void json_str(jsr_buf *b, const char *s)
{
    jsr_buf_addc(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            jsr_buf_addf(b, "\\%c", ch);
        else if (ch < 0x20)
            jsr_buf_addf(b, "\\u%04x", ch);
        else
            jsr_buf_addc(b, (char)ch);
    }
    jsr_buf_addc(b, '"');
}

static int sync_store(jsr_changes *c, char *err, size_t errlen)
{
    int fd = open(c->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ERR("%s: cannot open: %s", c->store, strerror(errno));
    int r = syncfs(fd);
    int e = errno;
    close(fd);
    if (r != 0)
        return ERR("%s: syncfs failed: %s", c->store, strerror(e));
    return 1;
}

static int parent_of(const char *path, char *out, size_t outlen)
{
    const char *s = strrchr(path, '/');
    size_t n = s == path ? 1 : (size_t)(s - path);
    if (n >= outlen)
        return 0;
    memcpy(out, path, n);
    out[n] = 0;
    return 1;
}

/* fsyncs the parent directory of each path (consecutive duplicates once) */
static int sync_parents(jsr_changes *c, int which_dest, char *err, size_t errlen)
{
    char last[PATH_MAX] = "", dir[PATH_MAX];
    for (size_t i = 0; i < c->n; i++) {
        const char *p = which_dest && c->ops[i].kind != OP_PUT ? c->ops[i].dest : c->ops[i].path;
        if (!parent_of(p, dir, sizeof dir))
            return ERR("%s: path too long", p);
        if (!strcmp(dir, last))
            continue;
        if (!jsr_fsync_path(dir, err, errlen))
            return 0;
        strcpy(last, dir);
    }
    return 1;
}

static char *joinf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *joinf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[PATH_MAX];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof small)
        return NULL;
    return strdup(small);
}

int jsr_changes_commit(jsr_changes *c, char *err, size_t errlen)
{
    if (c->committed)
        return ERR("these changes were already committed");
    if (c->broken)
        return ERR("refusing to commit: staging a change failed earlier");
    if (c->n == 0)
        return 1;
    static unsigned counter;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(c->id, sizeof c->id, "%04d%02d%02dT%02d%02d%02dZ-%ld-%u", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)getpid(),
             ++counter);
    char *jdir = joinf("%s/.js-recover/journal", c->store);
    char *bdir = joinf("%s/.js-recover/backup/%s", c->store, c->id);
    char *rdir = joinf("%s/.js-recover/removed/%s", c->store, c->id);
    char *jfile = joinf("%s/%s.json", jdir ? jdir : "", c->id);
    char *jdone = joinf("%s/%s.committed", jdir ? jdir : "", c->id);
    int ok = 0, few = c->n <= JSR_CHANGES_FSYNC_EACH, any_move = 0;
    jsr_buf j;
    jsr_buf_init(&j);
    if (!jdir || !bdir || !rdir || !jfile || !jdone) {
        ERR("%s: path too long for the journal", c->store);
        goto out;
    }
    if (!jsr_mkdirs(jdir, 0700, err, errlen) || !jsr_mkdirs(bdir, 0700, err, errlen))
        goto out;
    for (size_t i = 0; i < c->n; i++) {
        any_move |= c->ops[i].kind == OP_MOVE;
        /* a renamed tree may carry files staged below it: their parents
         * change paths, so make it all durable with one syncfs instead */
        if (c->ops[i].kind != OP_PUT)
            few = 0;
    }
    if (any_move && !jsr_mkdirs(rdir, 0700, err, errlen))
        goto out;

    /* 1. keep the old bytes: a hard link costs no copy */
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (o->kind == OP_RENAME)
            continue;
        if (o->kind == OP_MOVE) {
            const char *base = strrchr(o->path, '/') + 1;
            if (!(o->dest = joinf("%s/%zu-%s", rdir, i, base))) {
                ERR("%s: path too long", o->path);
                goto out;
            }
            continue;
        }
        if (access(o->path, F_OK) != 0)
            continue; /* a new file: undo deletes it */
        if (!(o->backup = joinf("%s/%zu", bdir, i))) {
            ERR("%s: path too long", o->path);
            goto out;
        }
        if (link(o->path, o->backup) != 0) {
            ERR("%s: cannot keep a backup link at %s: %s", o->path, o->backup, strerror(errno));
            goto out;
        }
    }

    /* 2. the journal, before any change */
    jsr_buf_addf(&j, "{\"tx\":\"%s\",\"store\":", c->id);
    json_str(&j, c->store);
    jsr_buf_adds(&j, ",\"ops\":[");
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        jsr_buf_adds(&j, i ? ",\n{" : "\n{");
        jsr_buf_adds(&j, o->kind == OP_PUT    ? "\"op\":\"replace\",\"path\":"
                         : o->kind == OP_MOVE ? "\"op\":\"move\",\"path\":"
                                              : "\"op\":\"rename\",\"path\":");
        json_str(&j, rel(c, o->path));
        if (o->kind == OP_PUT) {
            jsr_buf_adds(&j, ",\"tmp\":");
            json_str(&j, rel(c, o->dest));
            jsr_buf_adds(&j, ",\"backup\":");
            if (o->backup)
                json_str(&j, rel(c, o->backup));
            else
                jsr_buf_adds(&j, "null");
        } else {
            jsr_buf_adds(&j, ",\"to\":");
            json_str(&j, rel(c, o->dest));
            if (o->kind == OP_MOVE)
                jsr_buf_addf(&j, ",\"purge\":%s", o->purge ? "true" : "false");
        }
        jsr_buf_addc(&j, '}');
    }
    jsr_buf_adds(&j, "]}\n");
    if (j.failed) {
        ERR("out of memory");
        goto out;
    }
    if (!jsr_write_new(jfile, j.data, j.len, 0600, few, err, errlen))
        goto out;

    /* 3. durable before the first rename */
    if (few) {
        for (size_t i = 0; i < c->n; i++)
            if (c->ops[i].kind == OP_PUT && !jsr_fsync_path(c->ops[i].dest, err, errlen))
                goto out;
        if (!jsr_fsync_path(bdir, err, errlen) || !jsr_fsync_path(jdir, err, errlen))
            goto out;
    } else if (!sync_store(c, err, errlen)) {
        goto out;
    }

    /* 4. apply */
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        const char *from = o->kind == OP_PUT ? o->dest : o->path;
        const char *to = o->kind == OP_PUT ? o->path : o->dest;
        if (rename(from, to) != 0) {
            ERR("%s: cannot rename to %s: %s (journal %s tells what was done)", from, to,
                strerror(errno), jfile);
            goto out;
        }
    }

    /* 5. durable after */
    if (few) {
        if (!sync_parents(c, 0, err, errlen) || !sync_parents(c, 1, err, errlen))
            goto out;
    } else if (!sync_store(c, err, errlen)) {
        goto out;
    }
    if (!jsr_write_new(jdone, "", 0, 0600, 1, err, errlen) || !jsr_fsync_path(jdir, err, errlen))
        goto out;
    c->committed = 1;
    ok = 1;
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (o->kind == OP_MOVE && o->purge && !jsr_purge_tree(o->dest, err, errlen)) {
            ok = 0;
            break;
        }
    }
out:
    jsr_buf_free(&j);
    free(jdir);
    free(bdir);
    free(rdir);
    free(jfile);
    free(jdone);
    return ok;
}

void jsr_changes_free(jsr_changes *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (!c->committed && o->kind == OP_PUT && o->dest)
            unlink(o->dest);
        free(o->path);
        free(o->dest);
        free(o->backup);
    }
    free(c->ops);
    free(c->set);
    free(c->store);
    free(c);
}
