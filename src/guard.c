/* Who else uses a store: open files under it, found through /proc. */
#define _GNU_SOURCE
#include "jsr/guard.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsr/fsops.h"
#include "jsr/layout.h"
#include "jsr/natsconf.h"

#define ERR(...) jsr_errf(err, errlen, __VA_ARGS__)
#define CMD_SHOWN 200          /* characters of a command line in messages */

typedef struct {
    jsr_opener *v;
    size_t n, cap;
    int oom;
} openers;

static int under(const char *path, const char *root, size_t rl)
{
    if (strncmp(path, root, rl) != 0)
        return 0;
    /* a file deleted while open reads "<path> (deleted)" */
    return path[rl] == '/' || path[rl] == 0 || !strcmp(path + rl, " (deleted)");
}

static void add(openers *o, long pid, const char *cmd, const char *file, const char *how)
{
    if (o->oom)
        return;
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 16;
        jsr_opener *p = realloc(o->v, ncap * sizeof *p);
        if (!p) {
            o->oom = 1;
            return;
        }
        o->v = p;
        o->cap = ncap;
    }
    jsr_opener *e = &o->v[o->n];
    e->pid = pid;
    e->how = how;
    e->command = strdup(cmd);
    e->file = strdup(file);
    if (!e->command || !e->file) {
        free(e->command);
        free(e->file);
        o->oom = 1;
        return;
    }
    o->n++;
}

/* The command line of pid, NULs as spaces, shortened; argv keeps the raw
 * NUL-separated arguments (argc of them) for the nats-server checks. */
static void cmdline_of(long pid, char *shown, size_t shownlen, char *raw, size_t rawlen,
                       size_t *rawn)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/cmdline", pid);
    *rawn = 0;
    shown[0] = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, raw, rawlen - 1);
        if (r > 0)
            *rawn = (size_t)r;
        close(fd);
    }
    raw[*rawn] = 0;
    size_t k = 0;
    for (size_t i = 0; i < *rawn && k + 1 < shownlen; i++)
        shown[k++] = raw[i] ? raw[i] : ' ';
    while (k > 0 && shown[k - 1] == ' ')
        k--;
    shown[k] = 0;
    if (!shown[0]) {
        /* kernel threads and zombies have no command line: use the name */
        snprintf(p, sizeof p, "/proc/%ld/comm", pid);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t r = read(fd, shown, shownlen - 1);
            shown[r > 0 ? (size_t)r : 0] = 0;
            shown[strcspn(shown, "\n")] = 0;
            close(fd);
        }
    }
}

static int is_nats_server(long pid)
{
    char p[64], comm[32] = "";
    snprintf(p, sizeof p, "/proc/%ld/comm", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, comm, sizeof comm - 1);
    close(fd);
    comm[r > 0 ? (size_t)r : 0] = 0;
    return !strncmp(comm, "nats-server", 11);
}

/* An argument of pid as an absolute path (relative ones against its cwd). */
static int arg_path(long pid, const char *arg, char *out, size_t outlen)
{
    if (arg[0] == '/')
        return snprintf(out, outlen, "%s", arg) < (int)outlen;
    char p[64], cwd[PATH_MAX];
    snprintf(p, sizeof p, "/proc/%ld/cwd", pid);
    ssize_t n = readlink(p, cwd, sizeof cwd - 1);
    if (n <= 0)
        return 0;
    cwd[n] = 0;
    return snprintf(out, outlen, "%s/%s", cwd, arg) < (int)outlen;
}

/* The store a nats-server uses, as it would resolve one of its store
 * directory values: does it lead to root?  Paths are compared resolved
 * (symlinks, ./relative), and by device and inode, which also sees through
 * bind mounts.  The server keeps its streams in <store_dir>/jetstream. */
typedef struct {
    long pid;
    const char *root;
    struct stat rootst;
    int rootst_ok;
    int named, any;
} store_match;

static void check_store_dir(const char *value, const char *config, void *ud)
{
    store_match *m = ud;
    (void)config;
    m->any = 1;
    char path[PATH_MAX], real[PATH_MAX], js[PATH_MAX + 16];
    if (!arg_path(m->pid, value, path, sizeof path))
        return;
    const char *use = realpath(path, real) ? real : path;
    snprintf(js, sizeof js, "%s/" JSR_JS_DIR, use);
    if (under(use, m->root, strlen(m->root)) || under(m->root, js, strlen(js)))
        m->named = 1;
    struct stat st;
    if (m->rootst_ok && stat(use, &st) == 0 && st.st_dev == m->rootst.st_dev &&
        st.st_ino == m->rootst.st_ino)
        m->named = 1;
    if (m->rootst_ok && stat(js, &st) == 0 && st.st_dev == m->rootst.st_dev &&
        st.st_ino == m->rootst.st_ino)
        m->named = 1;
}

#define ENVIRON_MAX (1u << 20)

/* /proc/<pid>/environ (NUL-separated), or NULL when it cannot be read. */
static char *environ_of(long pid, size_t *len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/environ", pid);
    /* /proc files have no size: read what is there, up to the limit */
    char *buf = malloc(ENVIRON_MAX);
    if (!buf)
        return NULL;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    if (fd >= 0) {
        ssize_t r;
        while (n + 1 < ENVIRON_MAX && (r = read(fd, buf + n, ENVIRON_MAX - 1 - n)) > 0)
            n += (size_t)r;
        close(fd);
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int is_flag(const char *a, const char *name)
{
    /* -name, --name, optionally =value */
    if (a[0] != '-')
        return 0;
    a += a[1] == '-' ? 2 : 1;
    size_t l = strlen(name);
    return !strncmp(a, name, l) && (a[l] == 0 || a[l] == '=');
}

static void check_nats_server(openers *o, long pid, const char *shown, const char *raw,
                              size_t rawn, const char *root, const char *given)
{
    size_t rl = strlen(root), gl = given ? strlen(given) : 0;
    store_match m = {.pid = pid, .root = root};
    m.rootst_ok = stat(root, &m.rootst) == 0;
    size_t envlen = 0;
    char *env = environ_of(pid, &envlen);
    int next = 0, jetstream = 0; /* next: 1 config file, 2 store dir follows */
    for (size_t i = 0; i < rawn; i += strlen(raw + i) + 1) {
        const char *a = raw + i;
        const char *val = a;
        int kind = next;
        next = 0;
        if (a[0] == '-') {
            int cfg = is_flag(a, "c") || is_flag(a, "config");
            int sd = is_flag(a, "sd") || is_flag(a, "store_dir");
            if (is_flag(a, "js") || is_flag(a, "jetstream"))
                jetstream = 1;
            const char *eq = strchr(a, '=');
            if (!eq) {
                next = cfg ? 1 : sd ? 2 : 0;
                continue;
            }
            val = eq + 1;
            kind = cfg ? 1 : sd ? 2 : 0;
        }
        char path[PATH_MAX], real[PATH_MAX];
        if (!arg_path(pid, val, path, sizeof path))
            continue;
        const char *use = realpath(path, real) ? real : path;
        int before = m.named;
        if (kind == 2)
            check_store_dir(val, NULL, &m);
        if (under(use, root, rl) || (given && under(path, given, gl)) || m.named > before) {
            add(o, pid, shown, use, "command line");
            continue;
        }
        if (kind != 1)
            continue;
        jsr_conf_scan c = {.env = env, .envlen = envlen, .store_dir = check_store_dir,
                           .ud = &m, .needle = {root, given}};
        jsr_conf_scan_file(use, &c);
        jetstream |= c.jetstream;
        if (c.mentioned || m.named > before)
            add(o, pid, shown, use, "config file");
    }
    /* JetStream on and no store named: the server's default,
     * $TMPDIR/nats (or /tmp/nats) */
    if (jetstream && !m.any) {
        const char *tmp = jsr_conf_env(env, envlen, "TMPDIR");
        char def[PATH_MAX];
        snprintf(def, sizeof def, "%s/nats", tmp && *tmp ? tmp : "/tmp");
        check_store_dir(def, NULL, &m);
        if (m.named)
            add(o, pid, shown, def, "default store directory");
    }
    free(env);
}

int jsr_open_by(const char *root_arg, jsr_opener **list, size_t *n, size_t *unreadable,
                char *err, size_t errlen)
{
    char root[PATH_MAX];
    *list = NULL;
    *n = 0;
    *unreadable = 0;
    /* /proc shows resolved paths: compare with the store's */
    if (!realpath(root_arg, root))
        return ERR("%s: cannot resolve: %s", root_arg, strerror(errno));
    const char *given = strcmp(root, root_arg) ? root_arg : NULL;
    size_t rl = strlen(root);
    DIR *proc = opendir("/proc");
    if (!proc)
        return ERR("/proc: cannot read: %s (cannot tell which processes use the store)",
                   strerror(errno));
    openers o = {0};
    long self = (long)getpid();
    struct dirent *de;
    static char raw[1 << 16];
    char shown[CMD_SHOWN + 1];
    while ((errno = 0, de = readdir(proc))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid == self)
            continue;
        char p[64];
        snprintf(p, sizeof p, "/proc/%ld/fd", pid);
        DIR *fds = opendir(p);
        int listed = 0;
        size_t rawn = 0;
        if (!fds) {
            if (errno == EACCES || errno == EPERM)
                (*unreadable)++;
        } else {
            struct dirent *fe;
            while ((fe = readdir(fds))) {
                if (fe->d_name[0] == '.')
                    continue;
                char target[PATH_MAX + 16];
                ssize_t tn = readlinkat(dirfd(fds), fe->d_name, target, sizeof target - 1);
                if (tn <= 0)
                    continue;
                target[tn] = 0;
                if (!under(target, root, rl))
                    continue;
                if (!listed) {
                    cmdline_of(pid, shown, sizeof shown, raw, sizeof raw, &rawn);
                    listed = 1;
                }
                add(&o, pid, shown, target, "open file");
            }
            closedir(fds);
        }
        if (is_nats_server(pid)) {
            cmdline_of(pid, shown, sizeof shown, raw, sizeof raw, &rawn);
            check_nats_server(&o, pid, shown, raw, rawn, root, given);
        }
    }
    int e = errno;
    closedir(proc);
    if (e) {
        jsr_open_by_free(o.v, o.n);
        return ERR("/proc: cannot read: %s", strerror(e));
    }
    if (o.oom) {
        jsr_open_by_free(o.v, o.n);
        return ERR("out of memory listing the processes that use %s", root);
    }
    *list = o.v;
    *n = o.n;
    return 1;
}

void jsr_open_by_free(jsr_opener *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        free(list[i].command);
        free(list[i].file);
    }
    free(list);
}

int jsr_lock_store(const char *store_dir, char *err, size_t errlen)
{
    int fd = open(store_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        ERR("%s: cannot open: %s", store_dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            ERR("%s: another js-recover is working on this store (it holds the lock on the "
                "directory); wait for it to end", store_dir);
        else
            ERR("%s: cannot lock: %s", store_dir, strerror(e));
        return -1;
    }
    return fd;
}
