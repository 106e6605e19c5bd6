#define _GNU_SOURCE
#include "jsr/fsops.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/os.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)

int jsr_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 0;
}

int jsr_open_file(const char *path, struct stat *st, char *err, size_t errlen)
{
    struct stat own;
    if (!st)
        st = &own;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            return ERR("%s: is a symlink (not followed)", path) - 1;
        return ERR("%s: cannot open: %s", path, strerror(errno)) - 1;
    }
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return ERR("%s: cannot stat: %s", path, strerror(e)) - 1;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return ERR("%s: not a regular file", path) - 1;
    }
    return fd;
}

DIR *jsr_open_dir(const char *path, char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (!d)
        ERR("%s: cannot read: %s", path, strerror(errno));
    return d;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void jsr_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int jsr_list_dir(const char *path, char ***names, size_t *n, char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    DIR *d = jsr_open_dir(path, err, errlen);
    if (!d)
        return 0;
    size_t cap = 16, k = 0;
    char **list = malloc(cap * sizeof *list);
    int ok = list ? 1 : ERR("%s: out of memory listing the directory", path);
    struct dirent *de;
    while (ok && (errno = 0, de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (k == cap) {
            char **p = realloc(list, (cap *= 2) * sizeof *list);
            if (!p) {
                ok = ERR("%s: out of memory listing the directory", path);
                break;
            }
            list = p;
        }
        if (!(list[k] = strdup(de->d_name)))
            ok = ERR("%s: out of memory listing the directory", path);
        else
            k++;
    }
    if (ok && errno)
        ok = ERR("%s: cannot read: %s", path, strerror(errno));
    closedir(d);
    if (!ok) {
        jsr_names_free(list, k);
        return 0;
    }
    qsort(list, k, sizeof *list, by_name);
    *names = list;
    *n = k;
    return 1;
}

int jsr_read_file(const char *path, size_t max, char **data, size_t *len, char *err,
                  size_t errlen)
{
    struct stat st;
    int fd = jsr_open_file(path, &st, err, errlen);
    if (fd < 0)
        return 0;
    if ((unsigned long long)st.st_size > max) {
        close(fd);
        return ERR("%s: too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return ERR("%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            /* the file grew while we read it: allow up to max */
            if (cap > max) {
                free(buf);
                close(fd);
                return ERR("%s: too large (limit %zu bytes)", path, max);
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                close(fd);
                return ERR("%s: out of memory", path);
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return ERR("%s: read failed: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 1;
}

int jsr_path_clean(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    char tmp[PATH_MAX * 2];
    if (!path[0])
        return ERR("empty path");
    if (path[0] == '/') {
        if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
            return ERR("%s: path too long", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return ERR("cannot get the current directory: %s", strerror(errno));
        if (snprintf(tmp, sizeof tmp, "%s/%s", cwd, path) >= (int)sizeof tmp)
            return ERR("%s: path too long", path);
    }
    size_t o = 0;
    const char *p = tmp;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 1 && s[0] == '.')
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return ERR("%s: \"..\" in a path is refused", path);
        if (o + 1 + n + 1 > outlen)
            return ERR("%s: path too long", path);
        out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    return 1;
}

int jsr_path_check_from(const char *path, size_t from, enum jsr_path_need need,
                        void (*dir_ok)(const char *dir, void *ud), void *ud, char *err,
                        size_t errlen)
{
    char cur[PATH_MAX];
    size_t pl = strlen(path);
    if (pl >= sizeof cur)
        return ERR("%s: path too long", path);
    memcpy(cur, path, pl + 1);
    /* the components after from, from the top down */
    for (size_t i = from + 1; i <= pl; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        cur[i] = 0;
        struct stat st;
        if (lstat(cur, &st) != 0) {
            int e = errno;
            if (e == ENOENT && need == JSR_PATH_LAST_MAY_MISS && path[i] == 0)
                return 1;
            /* a name too long to exist is not there either (a commit that
             * failed creating it left it in the journal) */
            if ((e == ENOENT || e == ENAMETOOLONG) && need == JSR_PATH_UP_TO_MISSING)
                return 1;
            return ERR("%s: %s", cur, strerror(e));
        }
        if (S_ISLNK(st.st_mode))
            return ERR("%s: is a symlink; js-recover never follows links in a store", cur);
        if (path[i] == '/' && !S_ISDIR(st.st_mode))
            return ERR("%s: is not a directory", cur);
        if (dir_ok && path[i] == '/')
            dir_ok(cur, ud);
        cur[i] = path[i];
    }
    return 1;
}

int jsr_path_inside(const char *root, const char *path, enum jsr_path_need need, char *err,
                    size_t errlen)
{
    size_t rl = strlen(root);
    if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != 0))
        return ERR("%s: outside the store %s (refused)", path, root);
    return jsr_path_check_from(path, rl, need, NULL, NULL, err, errlen);
}

int jsr_parent(const char *path, char *out, size_t outlen)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return 0;
    size_t n = s == path ? 1 : (size_t)(s - path);
    if (n >= outlen)
        return 0;
    memcpy(out, path, n);
    out[n] = 0;
    return 1;
}

int jsr_lexists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int jsr_is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int jsr_dir_writable(const char *dir, int missing_ok, char *err, size_t errlen,
                     const char *fmt, ...)
{
    if (missing_ok && !jsr_lexists(dir))
        return 1;
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0)
        return 1;
    int e = errno;
    char must[JSR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(must, sizeof must, fmt, ap);
    va_end(ap);
    return ERR("%s: not writable (%s), and %s there; nothing was changed", dir, strerror(e),
               must);
}

int jsr_write_new(const char *tmp, const void *data, size_t len, mode_t mode, int sync,
                  char *err, size_t errlen)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = jsr_os_open(tmp, flags, mode);
    if (fd < 0 && errno == EEXIST) {
        /* a temp file left by an interrupted run of ours is stale by design */
        if (jsr_os_unlink(tmp, NULL) != 0)
            return ERR("%s: cannot remove stale temp file: %s", tmp, strerror(errno));
        fd = jsr_os_open(tmp, flags, mode);
    }
    if (fd < 0)
        return ERR("%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data, *failed = NULL;
    size_t left = len;
    while (left && !failed) {
        ssize_t w = jsr_os_write(fd, p, left, tmp);
        if (w < 0 && errno != EINTR) {
            failed = "write";
        } else if (w > 0) {
            p += w;
            left -= (size_t)w;
        }
    }
    /* open() applied the umask; the server's files keep their own mode */
    if (!failed && jsr_os_fchmod(fd, mode, tmp) != 0)
        failed = "chmod";
    if (!failed && sync && jsr_os_fsync(fd, tmp) != 0)
        failed = "fsync";
    int e = errno;
    if (close(fd) != 0 && !failed) {
        e = errno;
        failed = "close";
    }
    if (!failed)
        return 1;
    /* a half-written temp file is of no use; if even this fails, it is
     * stale, and the next run (or undo) removes it */
    if (jsr_os_unlink(tmp, NULL) != 0 && errno != ENOENT)
        return ERR("%s: %s failed: %s (and it could not be removed: %s)", tmp, failed,
                   strerror(e), strerror(errno));
    return ERR("%s: %s failed: %s", tmp, failed, strerror(e));
}

int jsr_fsync_path(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ERR("%s: cannot open for fsync: %s", path, strerror(errno));
    if (jsr_os_fsync(fd, path) != 0) {
        int e = errno;
        close(fd);
        return ERR("%s: fsync failed: %s", path, strerror(e));
    }
    close(fd);
    return 1;
}

int jsr_sync_fs(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ERR("%s: cannot open: %s", dir, strerror(errno));
    int r = jsr_os_syncfs(fd, dir);
    int e = errno;
    close(fd);
    if (r != 0)
        return ERR("%s: syncfs failed: %s", dir, strerror(e));
    return 1;
}

int jsr_mkdirs(const char *path, mode_t mode, char *err, size_t errlen)
{
    char cur[PATH_MAX];
    if (strlen(path) >= sizeof cur)
        return ERR("%s: path too long", path);
    strcpy(cur, path);
    for (char *p = cur + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            struct stat st;
            /* look first: only a level that is missing costs a step */
            if (lstat(cur, &st) != 0) {
                if (errno != ENOENT)
                    return ERR("%s: cannot stat: %s", cur, strerror(errno));
                if (jsr_os_mkdir(cur, mode) != 0 && errno != EEXIST)
                    return ERR("%s: cannot create directory: %s", cur, strerror(errno));
                if (lstat(cur, &st) != 0)
                    return ERR("%s: cannot stat: %s", cur, strerror(errno));
            }
            if (!S_ISDIR(st.st_mode))
                return ERR("%s: exists and is not a directory", cur);
            *p = c;
            if (!c)
                break;
        }
    }
    return 1;
}

/* Walks the tree at path without recursion (fts keeps its stack on the
 * heap, and its relative names work past PATH_MAX): a tree thousands of
 * levels deep (damaged or hostile) costs memory, not the C stack.  Links
 * are not followed.  visit gets files, links and others, and directories
 * after their contents (FTS_DP); an entry that cannot be read is an error
 * naming it.  missing_ok: a path that is not there is nothing to walk. */
static int walk_tree(const char *path, int missing_ok, int (*visit)(FTSENT *, void *, char *, size_t),
                     void *ud, char *err, size_t errlen)
{
    char *roots[] = {(char *)path, NULL};
    FTS *fts = fts_open(roots, FTS_PHYSICAL, NULL);
    if (!fts)
        return ERR("%s: cannot walk: %s", path, strerror(errno));
    int ok = 1;
    FTSENT *e;
    while (ok && (errno = 0, e = fts_read(fts))) {
        switch (e->fts_info) {
        case FTS_D:
            break;
        case FTS_NS:
            if (!(missing_ok && e->fts_level == 0 && e->fts_errno == ENOENT))
                ok = ERR("%s: cannot stat: %s", e->fts_path, strerror(e->fts_errno));
            break;
        case FTS_DNR:
            ok = ERR("%s: cannot read directory: %s", e->fts_path, strerror(e->fts_errno));
            break;
        case FTS_ERR:
            ok = ERR("%s: cannot walk: %s", e->fts_path, strerror(e->fts_errno));
            break;
        default:
            ok = visit(e, ud, err, errlen);
            break;
        }
    }
    if (ok && errno)
        ok = ERR("%s: cannot walk: %s", path, strerror(errno));
    fts_close(fts);
    return ok;
}

/* a directory after its contents, everything else as it is (links as links) */
static int purge_one(FTSENT *e, void *ud, char *err, size_t errlen)
{
    (void)ud;
    if (e->fts_info == FTS_DP) {
        if (jsr_os_rmdir(e->fts_accpath, e->fts_path) != 0)
            return ERR("%s: cannot remove directory: %s", e->fts_path, strerror(errno));
        return 1;
    }
    if (jsr_os_unlink(e->fts_accpath, e->fts_path) != 0)
        return ERR("%s: cannot remove: %s", e->fts_path, strerror(errno));
    return 1;
}

int jsr_purge_tree(const char *path, char *err, size_t errlen)
{
    return walk_tree(path, 1, purge_one, NULL, err, errlen);
}

/* a directory (after its contents, as purge_one meets it): its entries
 * can be removed only if it may be written and searched */
static int deletable_one(FTSENT *e, void *ud, char *err, size_t errlen)
{
    (void)ud;
    if (e->fts_info == FTS_DP &&
        faccessat(AT_FDCWD, e->fts_accpath, W_OK | X_OK, AT_EACCESS) != 0)
        return ERR("%s: its entries cannot be deleted (%s, owner uid %lu)", e->fts_path,
                   strerror(errno), (unsigned long)e->fts_statp->st_uid);
    return 1;
}

int jsr_purge_check(const char *path, char *err, size_t errlen)
{
    return walk_tree(path, 1, deletable_one, NULL, err, errlen);
}

static int count_one(FTSENT *e, void *ud, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    unsigned long long *t = ud;
    if (e->fts_info == FTS_F) {
        t[0] += (unsigned long long)e->fts_statp->st_size;
        t[1]++;
    }
    return 1;
}

int jsr_tree_bytes(const char *path, unsigned long long *bytes, unsigned long long *files,
                   char *err, size_t errlen)
{
    unsigned long long t[2] = {0, 0};
    int ok = walk_tree(path, 0, count_one, t, err, errlen);
    *bytes = t[0];
    *files = t[1];
    return ok;
}

