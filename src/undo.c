/* Undo from the journal (see undo.h for the states and the steps). */
#define _GNU_SOURCE
#include "jsr/undo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/fsops.h"
#include "jsr/journal.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)

typedef jsr_jop uop;

/* A journal's files, and what a forward read of it found: its operations
 * are never all in memory (journal.h), each pass reads them again. */
typedef struct {
    char id[128];
    unsigned long seq;
    int json, jtmp, committed, purging, undoing;
    int purge_left; /* a purged tree still in removed/ */
    jsr_jinfo info;
    size_t n;            /* operations */
    size_t gone;         /* operations whose directory was deleted since */
    char gone_example[PATH_MAX];
} journal;

const char *jsr_jstate_name(jsr_jstate s)
{
    switch (s) {
    case JSR_J_INCOMPLETE: return "incomplete";
    case JSR_J_UNCOMMITTED: return "uncommitted";
    case JSR_J_COMMITTED: return "committed";
    case JSR_J_PURGE_PENDING: return "purge-pending";
    case JSR_J_PURGED: return "purged";
    case JSR_J_UNDOING: return "undoing";
    default: return "unreadable";
    }
}

static int note_purge_left(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    (void)index;
    (void)err;
    (void)errlen;
    journal *j = ud;
    if (o->kind == JSR_JOP_MOVE && o->purge && !j->purge_left && jsr_lexists(o->to))
        j->purge_left = 1;
    return 1;
}

typedef struct {
    journal *j;
    jsr_jop_fn fn; /* what the caller wants done with each op, or NULL */
    void *ud;
} load_ctx;

static int load_one(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    load_ctx *c = ud;
    note_purge_left(o, index, c->j, err, errlen);
    return !c->fn || c->fn(o, index, c->ud, err, errlen);
}

/* Reads journal j once, checking all of it, calling fn (may be NULL) for
 * each operation: its count and whether purged trees are left are known
 * after. */
static int load_journal(const char *store, journal *j, jsr_jop_fn fn, void *ud, char *err,
                        size_t errlen)
{
    load_ctx c = {j, fn, ud};
    j->purge_left = 0;
    if (!jsr_journal_forward(store, j->id, load_one, &c, &j->info, err, errlen))
        return 0;
    j->n = j->info.count;
    return 1;
}

/* ------------------------------------------------------- listing */

static int by_seq(const void *a, const void *b)
{
    const journal *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* No symlink may lie on the way from the store to p; components that do
 * not exist (yet, or any more) end the check. */
static int no_links(const char *store, const char *p, char *err, size_t errlen)
{
    return jsr_path_inside(store, p, JSR_PATH_UP_TO_MISSING, err, errlen);
}

static const char *const suffixes[] = {JSR_JOURNAL_EXT, JSR_JOURNAL_TMP_EXT, JSR_COMMITTED_EXT,
                                         JSR_PURGING_EXT, JSR_UNDOING_EXT};

/* Reads journal/ into jl (sorted oldest first).  Files that are not ours
 * are left alone (and keep journal/ from being removed). */
static int scan(const char *store, journal **jl, size_t *n, char *err, size_t errlen)
{
    *jl = NULL;
    *n = 0;
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/" JSR_JOURNAL_DIR, store) >= (int)sizeof dir)
        return ERR("%s: path too long", store);
    /* .js-recover/ itself a link would send us elsewhere */
    if (!no_links(store, dir, err, errlen))
        return 0;
    struct stat st;
    if (lstat(dir, &st) != 0) {
        if (errno == ENOENT)
            return 1;
        return ERR("%s: cannot stat: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return ERR("%s: %s; js-recover keeps its journal there and never follows links", dir,
                   S_ISLNK(st.st_mode) ? "is a symlink" : "is not a directory");
    DIR *d = jsr_open_dir(dir, err, errlen);
    if (!d)
        return 0;
    size_t cap = 0;
    struct dirent *de;
    int ok = 1;
    while (ok && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        size_t nl = strlen(name), si;
        for (si = 0; si < sizeof suffixes / sizeof *suffixes; si++) {
            size_t sl = strlen(suffixes[si]);
            if (nl > sl && !strcmp(name + nl - sl, suffixes[si]))
                break;
        }
        if (si == sizeof suffixes / sizeof *suffixes || name[0] == '.')
            continue;
        size_t il = nl - strlen(suffixes[si]);
        if (il >= sizeof((journal *)0)->id)
            continue;
        size_t k;
        for (k = 0; k < *n; k++)
            if (strlen((*jl)[k].id) == il && !strncmp((*jl)[k].id, name, il))
                break;
        if (k == *n) {
            if (*n == cap) {
                journal *p = realloc(*jl, (cap = cap ? cap * 2 : 16) * sizeof *p);
                if (!p) {
                    ok = ERR("out of memory");
                    break;
                }
                *jl = p;
            }
            journal *j = &(*jl)[(*n)++];
            memset(j, 0, sizeof *j);
            memcpy(j->id, name, il);
            j->id[il] = 0;
            char *end;
            j->seq = strtoul(j->id, &end, 10);
            if (end == j->id || *end != '-')
                j->seq = 0;
        }
        journal *j = &(*jl)[k];
        switch (si) {
        case 0: j->json = 1; break;
        case 1: j->jtmp = 1; break;
        case 2: j->committed = 1; break;
        case 3: j->purging = 1; break;
        default: j->undoing = 1; break;
        }
    }
    if (ok && errno)
        ok = ERR("%s: cannot read: %s", dir, strerror(errno));
    closedir(d);
    if (ok && *n)
        qsort(*jl, *n, sizeof **jl, by_seq);
    return ok;
}

static void free_all(journal *jl, size_t n)
{
    (void)n;
    free(jl);
}

static jsr_jstate state_of(const journal *j)
{
    if (j->undoing)
        return JSR_J_UNDOING;
    if (!j->json)
        return JSR_J_INCOMPLETE;
    if (!j->committed)
        return JSR_J_UNCOMMITTED;
    if (j->purging)
        return JSR_J_PURGED;
    return j->purge_left ? JSR_J_PURGE_PENDING : JSR_J_COMMITTED;
}

int jsr_journal_list(const char *store_dir, jsr_journal_info **list, size_t *n, char *err,
                     size_t errlen)
{
    journal *jl;
    size_t jn;
    *list = NULL;
    *n = 0;
    if (!scan(store_dir, &jl, &jn, err, errlen))
        return 0;
    if (!jn)
        return 1;
    jsr_journal_info *out = calloc(jn, sizeof *out);
    if (!out) {
        free_all(jl, jn);
        return ERR("out of memory");
    }
    for (size_t i = 0; i < jn; i++) {
        journal *j = &jl[i];
        snprintf(out[i].id, sizeof out[i].id, "%s", j->id);
        char lerr[JSR_ERRLEN];
        if (j->json && !load_journal(store_dir, j, NULL, NULL, lerr, sizeof lerr)) {
            out[i].state = JSR_J_UNREADABLE;
            out[i].error = strdup(lerr);
        } else {
            out[i].state = state_of(j);
            out[i].ops = j->n;
        }
    }
    free_all(jl, jn);
    *list = out;
    *n = jn;
    return 1;
}

void jsr_journal_list_free(jsr_journal_info *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i].error);
    free(list);
}

/* ------------------------------------------------------- undo */

static int writable(const char *dir, const char *target, char *err, size_t errlen)
{
    /* missing: nothing will be renamed there */
    return jsr_dir_writable(dir, 1, err, errlen, "undo must restore %s", target);
}

typedef struct {
    const char *store;
    const journal *j;
    int flags;
} pre_ctx;

/* Everything undo will do to an operation must be allowed, before it
 * starts (called for each operation of the journal). */
static int precheck_op(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    (void)index;
    const pre_ctx *c = ud;
    const char *store = c->store;
    char dir[PATH_MAX], other[PATH_MAX];
    const char *paths[] = {o->path, o->tmp, o->backup, o->to};
    for (size_t k = 0; k < 4; k++)
        if (paths[k] && !no_links(store, paths[k], err, errlen))
            return 0;
    /* a directory the commit did not get to make: nothing to take back */
    if (o->kind == JSR_JOP_MKDIR && !jsr_lexists(o->path))
        return 1;
    if (!jsr_parent(o->path, dir, sizeof dir) || !writable(dir, o->path, err, errlen))
        return 0;
    if (o->backup && jsr_lexists(o->backup) &&
        (!jsr_parent(o->backup, other, sizeof other) || !writable(other, o->path, err, errlen)))
        return 0;
    if (o->to) {
        if (!jsr_parent(o->to, other, sizeof other) || !writable(other, o->path, err, errlen))
            return 0;
        struct stat st;
        if (lstat(o->to, &st) == 0 && S_ISDIR(st.st_mode) && strcmp(dir, other) != 0 &&
            !writable(o->to, o->path, err, errlen))
            return 0;
    }
    /* what is left of a purged tree is deleted at the end: it must be
     * possible, or the undo would stop there on every run */
    char why[JSR_ERRLEN];
    if (o->kind == JSR_JOP_MOVE && o->purge && c->j->purging && (c->flags & JSR_UNDO_IGNORE_PURGED) &&
        !jsr_purge_check(o->to, why, sizeof why))
        return ERR("%s; undo must delete what is left of the purged %s, so nothing was changed "
                   "(run undo as its owner or as root)", why, o->path);
    if (o->kind == JSR_JOP_MOVE && o->purge && c->j->purging && !jsr_lexists(o->path) &&
        !(c->flags & JSR_UNDO_IGNORE_PURGED))
        return ERR("%s: cannot be restored: it was deleted (--purge) after journal %s "
                   "committed; run undo with --ignore-purged to restore everything else; "
                   "nothing was changed", o->path, c->j->id);
    return 1;
}

static int do_unlink(const char *p, char *err, size_t errlen)
{
    if (jsr_os_unlink(p, NULL) != 0 && errno != ENOENT)
        return ERR("%s: cannot remove: %s", p, strerror(errno));
    return 1;
}

static int do_rename(const char *from, const char *to, char *err, size_t errlen)
{
    if (jsr_os_rename(from, to) != 0)
        return ERR("%s: cannot rename back to %s: %s", from, to, strerror(errno));
    return 1;
}

static int do_rmdir(const char *p, int must_be_empty, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return 1;
    if (!S_ISDIR(st.st_mode))
        return must_be_empty ? ERR("%s: not a directory; left alone", p) : 1;
    if (jsr_os_rmdir(p, NULL) == 0)
        return 1;
    if (!must_be_empty && (errno == ENOTEMPTY || errno == EEXIST))
        return 1;
    return ERR("%s: cannot remove: %s", p, strerror(errno));
}

/* An index file a server writes anew from a stream's blocks (2.9's msgs/N.idx
 * and msgs/N.fss, 2.10+'s msgs/index.db): prepare removes it where it
 * changes a block, and a server started on the prepared store writes it
 * again.  That copy holds nothing the blocks do not, so undo puts the
 * original back over it instead of refusing. */
static int server_rebuilt(const char *path)
{
    const char *base = strrchr(path, '/');
    const size_t ml = sizeof "/" JSR_MSGS_DIR - 1;
    if (!base || (size_t)(base - path) < ml || strncmp(base - ml, "/" JSR_MSGS_DIR, ml) != 0)
        return 0;
    base++;
    if (!strcmp(base, JSR_INDEX_DB))
        return 1;
    size_t d = strspn(base, "0123456789");
    return d > 0 && (!strcmp(base + d, "." JSR_IDX_EXT) || !strcmp(base + d, "." JSR_FSS_EXT));
}

/* The directory path was in is gone: deleted after the commit with all it
 * held (a server on the prepared store deleting a stream, say).  Putting
 * back a file or tree of it would mean making up a directory of a thing
 * that was deleted (and a rename into it fails on every run), so what
 * undo kept of it stays deleted too. */
static int dir_gone(journal *j, const char *path)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!jsr_parent(path, dir, sizeof dir) || lstat(dir, &st) == 0 || errno != ENOENT)
        return 0;
    if (!j->gone++)
        snprintf(j->gone_example, sizeof j->gone_example, "%s", path);
    return 1;
}

static int undo_op(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    (void)index;
    journal *j = ud;
    struct stat sp, sb;
    int have_path = lstat(o->path, &sp) == 0;
    if (o->kind == JSR_JOP_MKDIR) {
        /* what the commit put inside was taken back first (reverse order) */
        if (!have_path)
            return 1;
        if (!S_ISDIR(sp.st_mode))
            return ERR("%s: journal %s made this directory, but it is now not a directory; "
                       "nothing more was undone", o->path, j->id);
        if (jsr_os_rmdir(o->path, NULL) != 0 && errno != ENOENT)
            return ERR("%s: journal %s made this directory and cannot remove it: %s (files "
                       "written since, by a server run on the prepared store? move them away "
                       "and run undo again); nothing more was undone", o->path, j->id,
                       strerror(errno));
        return 1;
    }
    if (o->kind == JSR_JOP_REPLACE) {
        /* a temp file still there: the rename over the target never came
         * (anything but a regular file there is not ours) */
        struct stat st;
        if (lstat(o->tmp, &st) == 0 && S_ISREG(st.st_mode) && !do_unlink(o->tmp, err, errlen))
            return 0;
        if (o->backup) {
            if (lstat(o->backup, &sb) != 0)
                return 1; /* never linked (nothing replaced), or already back */
            if (have_path && sp.st_dev == sb.st_dev && sp.st_ino == sb.st_ino)
                return do_unlink(o->backup, err, errlen); /* never replaced */
            if (!have_path && dir_gone(j, o->path))
                return do_unlink(o->backup, err, errlen);
            return do_rename(o->backup, o->path, err, errlen);
        }
        if (!have_path)
            return 1;
        if (!S_ISREG(sp.st_mode))
            return ERR("%s: journal %s created this file, but it is now not a regular file; "
                       "left alone", o->path, j->id);
        return do_unlink(o->path, err, errlen);
    }
    int have_to = jsr_lexists(o->to);
    if (o->kind == JSR_JOP_MOVE && o->purge && j->purging)
        return 1; /* gone, or partly: never restore half a tree (precheck allowed it) */
    if (have_to && !have_path && o->kind == JSR_JOP_MOVE && dir_gone(j, o->path))
        return jsr_purge_tree(o->to, err, errlen);
    if (have_to && !have_path)
        return do_rename(o->to, o->path, err, errlen);
    if (have_to && have_path && S_ISREG(sp.st_mode) && server_rebuilt(o->path))
        return do_rename(o->to, o->path, err, errlen); /* over the server's rebuilt copy */
    if (have_to && have_path)
        return ERR("%s and %s both exist: cannot tell which one journal %s left; "
                   "nothing more was undone", o->path, o->to, j->id);
    if (!have_to && !have_path)
        return ERR("%s: missing, and not at %s either; nothing more was undone", o->path, o->to);
    return 1; /* not moved yet, or already back */
}

static int journal_file(char *out, size_t outlen, const char *store, const char *id,
                        const char *suffix)
{
    return snprintf(out, outlen, "%s/" JSR_JOURNAL_DIR "/%s%s", store, id, suffix) <
           (int)outlen;
}

static int purge_rest(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    (void)index;
    (void)ud;
    return !(o->kind == JSR_JOP_MOVE && o->purge) || jsr_purge_tree(o->to, err, errlen);
}

/* *changed: set once the store is no longer as this undo found it, or
 * was already half undone (then "run it again" is the advice either way) */
static int undo_journal(const char *store, journal *j, int *changed, char *err, size_t errlen)
{
    char f[PATH_MAX], jdir[PATH_MAX];
    if (!journal_file(jdir, sizeof jdir, store, "", "") ||
        !journal_file(f, sizeof f, store, j->id, JSR_UNDOING_EXT))
        return ERR("%s: path too long", store);
    jdir[strlen(jdir) - 1] = 0; /* the trailing '/' of the empty id */
    /* the mark first: a store with a half-done undo is not to be prepared */
    if (j->undoing)
        *changed = 1;
    if (j->json && !j->undoing) {
        if (!jsr_write_new(f, "", 0, 0600, 1, err, errlen)) {
            if (jsr_lexists(f)) /* not even the mark, or a mark left behind */
                *changed = 1;
            return 0;
        }
        *changed = 1;
        j->undoing = 1;
        if (!jsr_fsync_path(jdir, err, errlen))
            return 0;
    }
    if (j->json && !jsr_journal_backward(store, j->id, &j->info, undo_op, j, err, errlen))
        return 0;
    if (j->n && !jsr_sync_fs(store, err, errlen))
        return 0;
    /* what is left of purged trees (allowed by --ignore-purged) */
    if (j->json && j->purging &&
        !jsr_journal_forward(store, j->id, purge_rest, NULL, NULL, err, errlen))
        return 0;
    char d[PATH_MAX];
    if (snprintf(d, sizeof d, "%s/" JSR_BACKUP_DIR "/%s", store, j->id) >= (int)sizeof d ||
        !do_rmdir(d, 1, err, errlen) ||
        snprintf(d, sizeof d, "%s/" JSR_REMOVED_DIR "/%s", store, j->id) >= (int)sizeof d ||
        !do_rmdir(d, 1, err, errlen))
        return 0;
    /* the .undoing mark goes last: until then a re-run knows to go on */
    static const char *const order[] = {JSR_COMMITTED_EXT, JSR_PURGING_EXT, JSR_JOURNAL_EXT,
                                        JSR_JOURNAL_TMP_EXT, JSR_UNDOING_EXT};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        if (!journal_file(f, sizeof f, store, j->id, order[i]))
            return ERR("%s: path too long", store);
        if (jsr_lexists(f)) {
            if (!do_unlink(f, err, errlen))
                return 0;
            *changed = 1;
        }
    }
    return jsr_fsync_path(jdir, err, errlen);
}

int jsr_journal_tidy(const char *store_dir, char *err, size_t errlen)
{
    static const char *const dirs[] = {JSR_JOURNAL_DIR, JSR_BACKUP_DIR, JSR_REMOVED_DIR,
                                       JSR_STATE_DIR};
    char p[PATH_MAX];
    int removed_root = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (snprintf(p, sizeof p, "%s/%s", store_dir, dirs[i]) >= (int)sizeof p)
            return ERR("%s: path too long", store_dir);
        if (!do_rmdir(p, 0, err, errlen))
            return 0;
        if (i == 3)
            removed_root = !jsr_lexists(p);
    }
    return !removed_root || jsr_fsync_path(store_dir, err, errlen);
}

int jsr_undo(const char *store_dir, const char *from_id, int flags, jsr_undo_fn done, void *ud,
             int *changed, char *err, size_t errlen)
{
    journal *jl;
    size_t n, first = 0;
    int dummy;
    if (!changed)
        changed = &dummy;
    *changed = 0;
    if (!scan(store_dir, &jl, &n, err, errlen))
        return 0;
    if (from_id) {
        for (first = 0; first < n && strcmp(jl[first].id, from_id) != 0; first++)
            ;
        if (first == n) {
            free_all(jl, n);
            return ERR("%s: no journal %s in %s/" JSR_JOURNAL_DIR, store_dir, from_id,
                       store_dir);
        }
    }
    /* read and check everything before the first change */
    for (size_t i = first; i < n; i++) {
        pre_ctx pc = {store_dir, &jl[i], flags};
        if (jl[i].json && !load_journal(store_dir, &jl[i], precheck_op, &pc, err, errlen)) {
            free_all(jl, n);
            return 0;
        }
    }
    char jdir[PATH_MAX];
    if (snprintf(jdir, sizeof jdir, "%s/" JSR_JOURNAL_DIR, store_dir) >= (int)sizeof jdir) {
        free_all(jl, n);
        return ERR("%s: path too long", store_dir);
    }
    if (n > first && !writable(jdir, "the journal", err, errlen)) {
        free_all(jl, n);
        return 0;
    }
    int ok = 1;
    for (size_t i = n; ok && i-- > first;) {
        ok = undo_journal(store_dir, &jl[i], changed, err, errlen);
        if (ok && done)
            done(jl[i].id, jl[i].n, jl[i].gone, jl[i].gone_example, ud);
    }
    /* with every journal gone, the store is as it was: so is its root */
    if (ok && first == 0)
        ok = jsr_journal_tidy(store_dir, err, errlen);
    free_all(jl, n);
    return ok;
}

/* ------------------------------------------------------- purge */

static int purge_op(const uop *o, size_t index, void *ud, char *err, size_t errlen)
{
    (void)index;
    const char *store = ud;
    return !(o->kind == JSR_JOP_MOVE && o->purge) ||
           (no_links(store, o->to, err, errlen) && jsr_purge_tree(o->to, err, errlen));
}

/* j has been read (load_journal) */
static int purge_journal(const char *store, journal *j, char *err, size_t errlen)
{
    char f[PATH_MAX], jdir[PATH_MAX];
    if (!journal_file(f, sizeof f, store, j->id, JSR_PURGING_EXT) ||
        !journal_file(jdir, sizeof jdir, store, "", ""))
        return ERR("%s: path too long", store);
    jdir[strlen(jdir) - 1] = 0;
    /* marked first: from here on undo knows these trees may be partly gone */
    if (!j->purging) {
        if (!jsr_write_new(f, "", 0, 0600, 1, err, errlen) || !jsr_fsync_path(jdir, err, errlen))
            return 0;
        j->purging = 1;
    }
    return jsr_journal_forward(store, j->id, purge_op, (void *)store, NULL, err, errlen);
}

int jsr_journal_purge(const char *store_dir, const char *id, char *err, size_t errlen)
{
    journal j;
    memset(&j, 0, sizeof j);
    if (snprintf(j.id, sizeof j.id, "%s", id) >= (int)sizeof j.id)
        return ERR("%s: journal id too long", id);
    char f[PATH_MAX];
    j.json = 1;
    if (!journal_file(f, sizeof f, store_dir, id, JSR_PURGING_EXT))
        return ERR("%s: path too long", store_dir);
    j.purging = jsr_lexists(f);
    return load_journal(store_dir, &j, NULL, NULL, err, errlen) &&
           purge_journal(store_dir, &j, err, errlen);
}

int jsr_journal_finish(const char *store_dir, size_t *purged, char *err, size_t errlen)
{
    journal *jl;
    size_t n;
    *purged = 0;
    if (!scan(store_dir, &jl, &n, err, errlen))
        return 0;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        journal *j = &jl[i];
        if (!j->json || !j->committed || j->undoing)
            continue;
        if (!load_journal(store_dir, j, NULL, NULL, err, errlen)) {
            ok = 0;
            break;
        }
        if (!j->purge_left)
            continue;
        ok = purge_journal(store_dir, j, err, errlen);
        if (ok)
            (*purged)++;
    }
    free_all(jl, n);
    return ok;
}
