/* The floor of prepare's own writes, for `make bench-scale`: read every
 * meta.inf and meta.sum under <store>/jetstream, replace each stream or
 * consumer meta.inf that is still at num_replicas 3 (and its meta.sum)
 * durably the cheapest way (temp file, rename), move $SYS aside with one
 * rename, then one syncfs.  No journal, no checks, no decoding: what
 * prepare could not do in less time.  Prints "files read, files replaced".
 *
 * usage: prepare-floor <store> */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long nread, nreplaced;

static int slurp(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0) { errno = e; return -1; }
    buf[n] = 0;
    *len = (size_t)n;
    return 0;
}

static int put(const char *path, const char *data, size_t len)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.floor-tmp", path) >= (int)sizeof tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (write(fd, data, len) != (ssize_t)len) { close(fd); return -1; }
    if (close(fd) != 0) return -1;
    return rename(tmp, path);
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st; (void)ftw;
    if (type != FTW_F) return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "meta.inf") != 0 && strcmp(base, "meta.sum") != 0) return 0;
    char buf[65536];
    size_t len;
    if (slurp(path, buf, sizeof buf, &len) != 0) {
        fprintf(stderr, "prepare-floor: %s: %s\n", path, strerror(errno));
        return 1;
    }
    nread++;
    char *r3 = strstr(buf, "\"num_replicas\":3");
    if (strcmp(base, "meta.inf") != 0 || !strstr(path, "/streams/") || !r3) return 0;
    r3[15] = strstr(path, "/obs/") ? '0' : '1';
    char sum[4200];
    if (put(path, buf, len) != 0 ||
        snprintf(sum, sizeof sum, "%.*s/meta.sum", (int)(base - 1 - path), path) >= (int)sizeof sum ||
        put(sum, "0123456789abcdef", 16) != 0) {
        fprintf(stderr, "prepare-floor: replacing %s: %s\n", path, strerror(errno));
        return 1;
    }
    nreplaced++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: prepare-floor <store>\n"); return 2; }
    char js[4096], sys[4200], aside[4200];
    if (snprintf(js, sizeof js, "%s/jetstream", argv[1]) >= (int)sizeof js) return 2;
    if (nftw(js, visit, 64, FTW_PHYS) != 0) {
        fprintf(stderr, "prepare-floor: walking %s failed\n", js);
        return 1;
    }
    snprintf(sys, sizeof sys, "%s/$SYS", js);
    snprintf(aside, sizeof aside, "%s/.floor-removed-SYS", argv[1]);
    if (rename(sys, aside) != 0 && errno != ENOENT) {
        fprintf(stderr, "prepare-floor: moving %s aside: %s\n", sys, strerror(errno));
        return 1;
    }
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0) {
        fprintf(stderr, "prepare-floor: syncfs %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    close(fd);
    printf("%ld files read, %ld replaced\n", nread, nreplaced);
    return 0;
}
