#define _GNU_SOURCE
#include "jsr/walk.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsr/fsops.h"
#include "jsr/layout.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)

/* out = a "/" b; 0 (and nothing usable in out) if it does not fit */
static int join(char out[PATH_MAX], const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb + 1 > PATH_MAX)
        return 0;
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return 1;
}

int jsr_find_store(const char *arg, char *store_dir, char *js_dir, size_t len, char *err,
                   size_t errlen)
{
    char clean[PATH_MAX];
    if (!jsr_path_clean(arg, clean, sizeof clean, err, errlen))
        return 0;
    struct stat st;
    if (lstat(clean, &st) != 0)
        return ERR("%s: %s", clean, strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        /* the user named a link to the store: resolve this one, on purpose */
        char real[PATH_MAX];
        if (!realpath(clean, real))
            return ERR("%s: cannot resolve: %s", clean, strerror(errno));
        snprintf(clean, sizeof clean, "%s", real);
    }
    if (!jsr_is_dir(clean))
        return ERR("%s: not a directory", clean);
    char cand[PATH_MAX];
    if (!join(cand, clean, JSR_JS_DIR))
        return ERR("%s: path too long", clean);
    if (jsr_is_dir(cand)) {
        if (snprintf(store_dir, len, "%s", clean) >= (int)len ||
            snprintf(js_dir, len, "%s", cand) >= (int)len)
            return ERR("%s: path too long", clean);
        return 1;
    }
    const char *base = strrchr(clean, '/') + 1;
    if (!strcmp(base, JSR_JS_DIR) && base - clean > 1) {
        if (snprintf(js_dir, len, "%s", clean) >= (int)len)
            return ERR("%s: path too long", clean);
        snprintf(store_dir, len, "%.*s", (int)(base - clean - 1), clean);
        return 1;
    }
    return ERR("%s: not a JetStream store (no jetstream/ directory in it); give the server's "
               "store_dir or its jetstream/ directory", clean);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int no_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

typedef struct {
    jsr_walk_fn fn;
    void *ud;
    int stopped;
} walker;

static int emit(walker *w, jsr_entry *e)
{
    if (!w->fn(e, w->ud))
        w->stopped = 1;
    return !w->stopped;
}

static int report_error(walker *w, const char *path, const char *account, const char *what)
{
    char msg[PATH_MAX + 128];
    snprintf(msg, sizeof msg, "%s: %s", path, what);
    jsr_entry e = {JSR_ERROR, path, account, NULL, NULL, msg, 0};
    return emit(w, &e);
}

/* Lists dir into *names (sorted).  Returns the count, or -1 after reporting
 * the error as an entry. */
static int list(walker *w, const char *dir, const char *account, struct dirent ***names)
{
    int n = scandir(dir, names, no_dots, by_name);
    if (n < 0)
        report_error(w, dir, account, strerror(errno));
    return n;
}

static void free_list(struct dirent **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Classifies child path: 1 if it is a directory to use; 0 if it was
 * reported as skipped (or is a plain file, ignored when quiet). */
static int usable_dir(walker *w, const char *path, const char *account, const char *name,
                      int quiet_files, unsigned char dtype)
{
    struct stat st;
    /* the listing's type when the file system gives one (ext4, xfs,
     * btrfs, tmpfs do): a store has tens of thousands of these folders */
    if (dtype == DT_DIR || dtype == DT_LNK || dtype == DT_REG) {
        st.st_mode = dtype == DT_DIR ? S_IFDIR : dtype == DT_LNK ? S_IFLNK : S_IFREG;
    } else if (lstat(path, &st) != 0) {
        report_error(w, path, account, strerror(errno));
        return 0;
    }
    const char *why = NULL;
    if (S_ISLNK(st.st_mode))
        why = "a symlink: not followed";
    else if (!S_ISDIR(st.st_mode))
        why = quiet_files ? NULL : "not a directory";
    else if (name[0] == '.')
        why = "a partial delete (name starts with '.'): the server removes it at start";
    if (why) {
        jsr_entry e = {JSR_SKIPPED, path, account, NULL, name, why, 0};
        emit(w, &e);
        return 0;
    }
    return S_ISDIR(st.st_mode);
}

static void walk_consumers(walker *w, const char *stream_path, const char *account,
                           const char *stream);

/* Emits an entry of kind for each usable directory in parent (sorted);
 * below each stream, its consumers.  Raft groups sit among plain files
 * (peers.idx and such), which are not worth a note. */
static void each_dir(walker *w, const char *parent, const char *account, jsr_kind kind,
                     const char *stream)
{
    struct dirent **names;
    int n = list(w, parent, account, &names);
    for (int i = 0; i < n && !w->stopped; i++) {
        const char *name = names[i]->d_name;
        char p[PATH_MAX];
        if (!join(p, parent, name)) {
            report_error(w, parent, account, "an entry's name is too long");
            continue;
        }
        if (!usable_dir(w, p, account, name, kind == JSR_RAFT, names[i]->d_type))
            continue;
        jsr_entry e = {kind, p, account, kind == JSR_STREAM ? name : stream, name, NULL,
                       kind == JSR_RAFT};
        if (!emit(w, &e))
            break;
        if (kind == JSR_STREAM)
            walk_consumers(w, p, account, name);
    }
    if (n >= 0)
        free_list(names, n);
}

static void walk_consumers(walker *w, const char *stream_path, const char *account,
                           const char *stream)
{
    char obs[PATH_MAX];
    if (join(obs, stream_path, JSR_CONSUMERS_DIR) && jsr_is_dir(obs))
        each_dir(w, obs, account, JSR_CONSUMER, stream);
}

static void walk_account(walker *w, const char *acc_path, const char *account)
{
    char sub[PATH_MAX];
    if (!join(sub, acc_path, JSR_RAFT_DIR))
        return;
    int system = jsr_is_dir(sub);
    jsr_entry a = {JSR_ACCOUNT, acc_path, account, NULL, account, NULL, system};
    if (!emit(w, &a))
        return;
    if (!join(sub, acc_path, JSR_STREAMS_DIR))
        return;
    struct stat st;
    if (lstat(sub, &st) == 0 && usable_dir(w, sub, account, JSR_STREAMS_DIR, 0, DT_UNKNOWN))
        each_dir(w, sub, account, JSR_STREAM, NULL);
    if (!system || w->stopped || !join(sub, acc_path, JSR_RAFT_DIR))
        return;
    each_dir(w, sub, account, JSR_RAFT, NULL);
}

int jsr_walk(const char *js_dir, jsr_walk_fn fn, void *ud, char *err, size_t errlen)
{
    walker w = {fn, ud, 0};
    struct dirent **names;
    int n = scandir(js_dir, &names, no_dots, by_name);
    if (n < 0)
        return ERR("%s: cannot read: %s", js_dir, strerror(errno));
    for (int i = 0; i < n && !w.stopped; i++) {
        char p[PATH_MAX];
        if (!join(p, js_dir, names[i]->d_name)) {
            report_error(&w, js_dir, NULL, "an entry's path is too long");
            continue;
        }
        if (usable_dir(&w, p, names[i]->d_name, names[i]->d_name, 0, names[i]->d_type))
            walk_account(&w, p, names[i]->d_name);
    }
    free_list(names, n);
    if (w.stopped)
        return ERR("walk stopped");
    return 1;
}
