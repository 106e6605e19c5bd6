#define _GNU_SOURCE
#include "jsr/changes.h"

#include <dirent.h>
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
#include "jsr/journal.h"
#include "jsr/undo.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)
#define TMP_SUFFIX JSR_TMP_SUFFIX

/* an op whose staging failed: kept so commit refuses the set */
#define OP_DEAD (-1)

typedef struct {
    int kind;     /* JSR_JOP_* (journal.h), or OP_DEAD */
    char *path;   /* target (replace) or tree to move (move) */
    char *dest;   /* replace: temp file; move: where the tree goes */
    char *backup; /* replace: hard link of the replaced file, or NULL */
    char *data;   /* replace: the new bytes, written at commit */
    size_t len;
    mode_t mode;
    int purge;
    int exists; /* replace: the target existed when checked (jsr_changes_check) */
} op;

/* open-addressing set of strings it owns or borrows (see its users) */
typedef struct {
    char **slot;
    size_t n, cap;
} strset;

struct jsr_changes {
    char *store;
    op *ops;
    size_t n, cap;
    strset staged; /* paths of the ops (borrowed from them) */
    strset made;   /* directories a mkdir op creates (borrowed) */
    strset safe;   /* directories checked to be inside the store with no
                    * symlink on the way (owned): a store has thousands of
                    * files in the same few levels, each checked once */
    char id[128];
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

/* Adds str to the set; returns 0 if it is already there, -1 when out of
 * memory. */
static int set_add(strset *set, char *str)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 64;
        char **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i])
                continue;
            size_t j = hash_str(set->slot[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = set->slot[i];
        }
        free(set->slot);
        set->slot = ns;
        set->cap = ncap;
    }
    size_t j = hash_str(str) & (set->cap - 1);
    while (set->slot[j]) {
        if (!strcmp(set->slot[j], str))
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slot[j] = str;
    set->n++;
    return 1;
}

static int set_has(const strset *set, const char *str)
{
    if (!set->cap)
        return 0;
    size_t j = hash_str(str) & (set->cap - 1);
    while (set->slot[j]) {
        if (!strcmp(set->slot[j], str))
            return 1;
        j = (j + 1) & (set->cap - 1);
    }
    return 0;
}

static void remember_safe(const char *dir, void *ud)
{
    char *copy = strdup(dir);
    if (!copy || set_add(ud, copy) != 1)
        free(copy); /* only a lost shortcut */
}

/* jsr_path_inside, remembering the directories it has checked: below the
 * deepest of them only the rest of the path is looked at.  Our lock keeps
 * other js-recover runs out; the live-store guard, servers. */
static int inside(jsr_changes *c, const char *path, enum jsr_path_need need, char *err,
                  size_t errlen)
{
    /* below a directory this set makes, itself checked when it was staged */
    char pdir[PATH_MAX];
    if (need == JSR_PATH_LAST_MAY_MISS && c->made.n && jsr_parent(path, pdir, sizeof pdir) &&
        set_has(&c->made, pdir))
        return 1;
    size_t rl = strlen(c->store), pl = strlen(path);
    char cur[PATH_MAX];
    if (pl >= sizeof cur || strncmp(path, c->store, rl) != 0 || path[rl] != '/')
        return jsr_path_inside(c->store, path, need, err, errlen);
    memcpy(cur, path, pl + 1);
    size_t from = rl; /* path[0..from) is known to be safe */
    for (size_t i = pl; i > rl; i--) {
        if (cur[i] != '/')
            continue;
        cur[i] = 0;
        int known = set_has(&c->safe, cur);
        cur[i] = '/';
        if (known) {
            from = i;
            break;
        }
    }
    return jsr_path_check_from(path, from, need, remember_safe, &c->safe, err, errlen);
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
    int r = set_add(&c->staged, o->path);
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

int jsr_changes_replace(jsr_changes *c, const char *path, const void *data, size_t len,
                    mode_t mode, char *err, size_t errlen)
{
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    if (!inside(c, o->path, JSR_PATH_LAST_MAY_MISS, err, errlen))
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
    /* the temp file is the name plus a suffix: it must fit in a name */
    if (strlen(strrchr(o->path, '/') + 1) + strlen(TMP_SUFFIX) > NAME_MAX) {
        ERR("%s: name too long: with " TMP_SUFFIX " (the temp file written first) it is over "
            "%d bytes", o->path, NAME_MAX);
        goto fail;
    }
    o->dest = malloc(pl + sizeof TMP_SUFFIX);
    if (!o->dest) {
        ERR("out of memory");
        goto fail;
    }
    memcpy(o->dest, o->path, pl);
    memcpy(o->dest + pl, TMP_SUFFIX, sizeof TMP_SUFFIX);
    /* kept in memory: nothing on disk changes before the journal exists */
    if (!(o->data = malloc(len ? len : 1))) {
        ERR("%s: out of memory staging %zu bytes", o->path, len);
        goto fail;
    }
    if (len)
        memcpy(o->data, data, len);
    o->len = len;
    o->mode = mode;
    o->kind = JSR_JOP_REPLACE;
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

int jsr_changes_move(jsr_changes *c, const char *path, int purge, char *err, size_t errlen)
{
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    if (!inside(c, o->path, JSR_PATH_ALL_EXIST, err, errlen)) {
        o->kind = OP_DEAD;
        c->n++;
        c->broken = 1;
        return 0;
    }
    o->kind = JSR_JOP_MOVE;
    o->purge = purge;
    c->n++;
    return 1;
}

/* The new op o becomes kind, or, when staging it failed, a dead op that
 * makes commit refuse (its path, in the set, is freed later). */
static int keep_op(jsr_changes *c, op *o, int ok, int kind)
{
    o->kind = ok ? kind : OP_DEAD;
    c->n++;
    if (!ok)
        c->broken = 1;
    return ok ? 1 : 0;
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
    int ok = inside(c, o->path, JSR_PATH_ALL_EXIST, err, errlen) &&
             inside(c, clean, JSR_PATH_LAST_MAY_MISS, err, errlen);
    if (ok && lstat(clean, &st) == 0)
        ok = ERR("%s: already exists", clean);
    if (ok && !(o->dest = strdup(clean)))
        ok = ERR("out of memory");
    return keep_op(c, o, ok, JSR_JOP_RENAME);
}

int jsr_changes_mkdir(jsr_changes *c, const char *path, char *err, size_t errlen)
{
    op *o = new_op(c, path, err, errlen);
    if (!o)
        return 0;
    struct stat st;
    int ok = inside(c, o->path, JSR_PATH_LAST_MAY_MISS, err, errlen);
    if (ok && lstat(o->path, &st) == 0)
        ok = ERR("%s: already exists", o->path);
    else if (ok && errno != ENOENT)
        ok = ERR("%s: %s", o->path, strerror(errno));
    if (ok && set_add(&c->made, o->path) < 0)
        ok = ERR("out of memory");
    return keep_op(c, o, ok, JSR_JOP_MKDIR);
}

static const char *rel(const jsr_changes *c, const char *path)
{
    size_t l = strlen(c->store);
    return path[l] == '/' ? path + l + 1 : path;
}

/* fsyncs the parent directory of each replaced target (consecutive
 * duplicates once); only used when every op is a replace */
static int sync_parents(jsr_changes *c, char *err, size_t errlen)
{
    char last[PATH_MAX] = "", dir[PATH_MAX];
    for (size_t i = 0; i < c->n; i++) {
        const char *p = c->ops[i].path;
        if (!jsr_parent(p, dir, sizeof dir))
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

/* ------------------------------------------------------------- checks */

static int can_write(const char *dir, const char *why, const char *target, char *err,
                     size_t errlen)
{
    return jsr_dir_writable(dir, 0, err, errlen, "js-recover must %s %s", why, target);
}

/* The deepest existing directory on the way to path (inside the store):
 * where a missing folder of ours would be created. */
static int existing_dir(const char *store, const char *path, char *out, size_t outlen,
                        char *err, size_t errlen)
{
    if (strlen(path) >= outlen)
        return ERR("%s: path too long", path);
    strcpy(out, path);
    size_t sl = strlen(store);
    for (;;) {
        struct stat st;
        if (lstat(out, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return ERR("%s: %s, where js-recover keeps its journal a directory must be "
                           "(nothing was changed)", out,
                           S_ISLNK(st.st_mode) ? "is a symlink" : "is not a directory");
            return 1;
        }
        if (errno != ENOENT)
            return ERR("%s: cannot stat: %s", out, strerror(errno));
        char *s = strrchr(out, '/');
        if (!s || (size_t)(s - out) < sl)
            return ERR("%s: the store directory is missing", store);
        *s = 0;
    }
}

int jsr_changes_check(jsr_changes *c, char *err, size_t errlen)
{
    char dir[PATH_MAX], last[PATH_MAX] = "", tail[PATH_MAX];
    static const char *const ours[] = {JSR_JOURNAL_DIR, JSR_BACKUP_DIR, JSR_REMOVED_DIR};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) {
        if (snprintf(tail, sizeof tail, "%s/%s", c->store, ours[i]) >= (int)sizeof tail)
            return ERR("%s: path too long", c->store);
        if (!existing_dir(c->store, tail, dir, sizeof dir, err, errlen) ||
            !can_write(dir, "keep its journal in", JSR_STATE_DIR "/", err, errlen))
            return 0;
    }
    uid_t me = geteuid();
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        struct stat st;
        if (!jsr_parent(o->path, dir, sizeof dir))
            return ERR("%s: path too long", o->path);
        if (strcmp(dir, last) != 0 && set_has(&c->made, dir)) {
            strcpy(last, dir); /* made by an earlier op of this set */
        } else if (strcmp(dir, last) != 0) {
            if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
                return ERR("%s: the directory for %s is missing or not a directory; nothing "
                           "was changed", dir, o->path);
            if (!can_write(dir, o->kind == JSR_JOP_REPLACE ? "write" : "move", o->path, err, errlen))
                return 0;
            strcpy(last, dir);
        }
        o->exists = 0;
        if (lstat(o->path, &st) != 0) {
            if (errno == ENOENT && (o->kind == JSR_JOP_REPLACE || o->kind == JSR_JOP_MKDIR))
                continue;
            return ERR("%s: cannot stat: %s; nothing was changed", o->path, strerror(errno));
        }
        o->exists = 1;
        if (o->kind == JSR_JOP_MKDIR)
            return ERR("%s: exists now; nothing was changed", o->path);
        if (o->kind == JSR_JOP_REPLACE) {
            if (!S_ISREG(st.st_mode))
                return ERR("%s: no longer a regular file; nothing was changed", o->path);
            /* with protected_hardlinks, only the owner (or root) may link a
             * file it cannot read and write: the backup needs the link */
            if (st.st_uid != me && me != 0 &&
                faccessat(AT_FDCWD, o->path, R_OK | W_OK, AT_EACCESS) != 0)
                return ERR("%s: cannot keep a backup of it (a hard link needs its owner, or "
                           "read and write access: %s); nothing was changed", o->path,
                           strerror(errno));
            continue;
        }
        const char *to = o->kind == JSR_JOP_RENAME ? o->dest : NULL;
        char pdest[PATH_MAX];
        if (to) {
            if (!jsr_parent(to, pdest, sizeof pdest))
                return ERR("%s: path too long", to);
            if (lstat(pdest, &st) != 0 || !S_ISDIR(st.st_mode))
                return ERR("%s: the directory for %s is missing or not a directory; nothing "
                           "was changed", pdest, to);
            if (!can_write(pdest, "rename", o->path, err, errlen))
                return 0;
        }
        /* a directory moved to another parent rewrites its own ".." */
        if (lstat(o->path, &st) == 0 && S_ISDIR(st.st_mode) &&
            (!to || strcmp(pdest, dir) != 0) &&
            !can_write(o->path, "move", "the directory", err, errlen))
            return 0;
        /* --purge deletes the tree after the commit: a directory in it that
         * cannot be emptied would leave the commit half purged, with every
         * later run stopping on it */
        char why[JSR_ERRLEN];
        if (o->kind == JSR_JOP_MOVE && o->purge && !jsr_purge_check(o->path, why, sizeof why))
            return ERR("%s; --purge could not delete %s, so nothing was changed (run as its "
                       "owner or as root, or without --purge)", why, o->path);
    }
    return 1;
}

/* ------------------------------------------------------------- commit */

/* The next sequence number of a journal in jdir: one more than any there,
 * so ids sort in commit order whatever the clock or the pid did. */
static unsigned long next_seq(const char *jdir)
{
    unsigned long max = 0;
    char err[JSR_ERRLEN];
    DIR *d = jsr_open_dir(jdir, err, sizeof err);
    if (!d)
        return 1; /* no journal yet (a real error shows when it is written) */
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        unsigned long v = strtoul(de->d_name, &end, 10);
        if (end != de->d_name && *end == '-' && v > max)
            max = v;
    }
    closedir(d);
    return max + 1;
}

/* Writes the journal for the staged ops, atomically: a journal is either
 * whole or absent, so undo never has to guess at a half-written one.
 * *in_place tells, also on failure, whether it got its name (then only
 * undo may remove it: a failure after that is rolled back with it). */
static int write_journal(jsr_changes *c, const char *jdir, const char *jtmp, const char *jfile,
                         int *in_place, char *err, size_t errlen)
{
    *in_place = 0;
    jsr_buf j;
    jsr_buf_init(&j);
    jsr_journal_begin(&j, c->id, c->store);
    for (size_t i = 0; i < c->n; i++) {
        const op *o = &c->ops[i];
        const char *dest = o->kind == JSR_JOP_MKDIR ? NULL : rel(c, o->dest);
        jsr_jop jo = {o->kind, rel(c, o->path), o->kind == JSR_JOP_REPLACE ? dest : NULL,
                      o->backup ? rel(c, o->backup) : NULL,
                      o->kind == JSR_JOP_REPLACE ? NULL : dest, o->purge};
        jsr_journal_add(&j, i, &jo);
    }
    jsr_journal_end(&j);
    int ok = 0;
    if (j.failed) {
        ERR("out of memory writing the journal");
    } else if (jsr_write_new(jtmp, j.data, j.len, 0600, 1, err, errlen)) {
        if (jsr_os_rename(jtmp, jfile) != 0) {
            ERR("%s: cannot rename to %s: %s", jtmp, jfile, strerror(errno));
        } else {
            *in_place = 1;
            ok = jsr_fsync_path(jdir, err, errlen);
        }
    }
    jsr_buf_free(&j);
    return ok;
}

/* Appends " (...)" to the message in err. */
static void add_note(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_note(char *err, size_t errlen, const char *fmt, ...)
{
    size_t l = strlen(err);
    if (l + 1 >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + l, errlen - l, fmt, ap);
    va_end(ap);
}

int jsr_changes_commit(jsr_changes *c, char *err, size_t errlen)
{
    if (c->committed)
        return ERR("these changes were already committed");
    if (c->broken)
        return ERR("refusing to commit: staging a change failed earlier");
    if (c->n == 0)
        return 1;
    if (!jsr_changes_check(c, err, errlen))
        return 0;
    char *jdir = joinf("%s/" JSR_JOURNAL_DIR, c->store);
    if (!jdir)
        return ERR("%s: path too long for the journal", c->store);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(c->id, sizeof c->id, "%06lu-%04d%02d%02dT%02d%02d%02dZ-%ld", next_seq(jdir),
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)getpid());
    char *bdir = joinf("%s/" JSR_BACKUP_DIR "/%s", c->store, c->id);
    char *rdir = joinf("%s/" JSR_REMOVED_DIR "/%s", c->store, c->id);
    char *jfile = joinf("%s/%s" JSR_JOURNAL_EXT, jdir, c->id);
    char *jtmp = joinf("%s/%s" JSR_JOURNAL_TMP_EXT, jdir, c->id);
    char *jdone = joinf("%s/%s" JSR_COMMITTED_EXT, jdir, c->id);
    int ok = 0, journaled = 0, few = c->n <= JSR_CHANGES_FSYNC_EACH, any_move = 0,
        any_backup = 0, any_purge = 0;
    if (!bdir || !rdir || !jfile || !jtmp || !jdone) {
        ERR("%s: path too long for the journal", c->store);
        goto out;
    }

    /* Folders made now need their parents synced too: on a store without
     * a journal folder yet, one syncfs covers them all. */
    struct stat jst;
    if (lstat(jdir, &jst) != 0)
        few = 0;
    /* what the journal will say: backups for files that exist now, and
     * where each removed tree goes */
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        /* a renamed tree may carry files staged below it: their parents
         * change paths, so make it all durable with one syncfs instead */
        if (o->kind != JSR_JOP_REPLACE)
            few = 0;
        if (o->kind == JSR_JOP_MOVE) {
            any_move = 1;
            any_purge |= o->purge;
            const char *base = strrchr(o->path, '/') + 1;
            if (!(o->dest = joinf("%s/%zu-%s", rdir, i, base))) {
                ERR("%s: path too long", o->path);
                goto out;
            }
        } else if (o->kind == JSR_JOP_REPLACE) {
            if (!o->exists)
                continue; /* a new file: undo deletes it */
            if (!(o->backup = joinf("%s/%zu", bdir, i))) {
                ERR("%s: path too long", o->path);
                goto out;
            }
            any_backup = 1;
        }
    }

    /* 1. the journal, before any change */
    if (!jsr_mkdirs(jdir, 0700, err, errlen) ||
        !write_journal(c, jdir, jtmp, jfile, &journaled, err, errlen))
        goto out;

    /* 2. keep the old bytes (a hard link costs no copy); write the new */
    if ((any_backup && !jsr_mkdirs(bdir, 0700, err, errlen)) ||
        (any_move && !jsr_mkdirs(rdir, 0700, err, errlen)))
        goto out;
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (!o->backup)
            continue;
        if (jsr_os_link(o->path, o->backup) != 0) {
            ERR("%s: cannot keep a backup link at %s: %s", o->path, o->backup, strerror(errno));
            goto out;
        }
    }
    /* the directories first, in the order staged (a parent before its
     * children), then the temp files, some of them inside them */
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (o->kind == JSR_JOP_MKDIR && jsr_os_mkdir(o->path, 0750) != 0) {
            ERR("%s: cannot create the directory: %s", o->path, strerror(errno));
            goto out;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (o->kind == JSR_JOP_REPLACE && !jsr_write_new(o->dest, o->data, o->len, o->mode, few, err, errlen))
            goto out;
    }

    /* 3. durable before the first rename */
    if (few) {
        /* the links, and backup/<tx> itself in backup/ */
        char broot[PATH_MAX];
        if (any_backup && !jsr_parent(bdir, broot, sizeof broot)) {
            ERR("%s: path too long", bdir);
            goto out;
        }
        if (any_backup &&
            (!jsr_fsync_path(bdir, err, errlen) || !jsr_fsync_path(broot, err, errlen)))
            goto out;
    } else if (!jsr_sync_fs(c->store, err, errlen)) {
        goto out;
    }

    /* 4. apply */
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        if (o->kind == JSR_JOP_MKDIR)
            continue; /* made in step 2 */
        const char *from = o->kind == JSR_JOP_REPLACE ? o->dest : o->path;
        const char *to = o->kind == JSR_JOP_REPLACE ? o->path : o->dest;
        if (jsr_os_rename(from, to) != 0) {
            ERR("%s: cannot rename to %s: %s", from, to, strerror(errno));
            goto out;
        }
    }

    /* 5. durable after, then committed */
    if (few ? !sync_parents(c, err, errlen) : !jsr_sync_fs(c->store, err, errlen))
        goto out;
    if (!jsr_write_new(jdone, "", 0, 0600, 1, err, errlen) || !jsr_fsync_path(jdir, err, errlen))
        goto out;
    c->committed = 1;
    ok = 1;

    /* 6. what the user asked to delete, now that nothing needs it */
    if (any_purge && !jsr_journal_purge(c->store, c->id, err, errlen)) {
        add_note(err, errlen, " (the changes are committed; what is left of the tree stays "
                              "in %s)", rdir);
        ok = 0;
    }
out:
    if (!ok && !c->committed) {
        char uerr[JSR_ERRLEN];
        if (journaled) {
            /* the journal knows every step taken: take them back now */
            if (jsr_undo(c->store, c->id, 0, NULL, NULL, NULL, uerr, sizeof uerr))
                add_note(err, errlen, " (rolled back: nothing was changed)");
            else
                add_note(err, errlen, " (rolling back failed too: %s; run js-recover undo %s)",
                         uerr, c->store);
        } else if (jtmp) {
            /* only our folders and a partial journal exist: remove them */
            if ((jsr_os_unlink(jtmp, NULL) != 0 && errno != ENOENT) ||
                !jsr_journal_tidy(c->store, uerr, sizeof uerr))
                add_note(err, errlen, " (cleaning up %s/" JSR_STATE_DIR " failed; run "
                         "js-recover undo %s)", c->store, c->store);
            else
                add_note(err, errlen, " (nothing was changed)");
        }
    }
    free(jdir);
    free(bdir);
    free(rdir);
    free(jfile);
    free(jtmp);
    free(jdone);
    return ok;
}

void jsr_changes_free(jsr_changes *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        op *o = &c->ops[i];
        free(o->path);
        free(o->dest);
        free(o->backup);
        free(o->data);
    }
    free(c->ops);
    free(c->staged.slot);
    free(c->made.slot);
    for (size_t i = 0; i < c->safe.cap; i++)
        free(c->safe.slot[i]);
    free(c->safe.slot);
    free(c->store);
    free(c);
}
