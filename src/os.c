/* The steps of os.h: every call that changes a store, crash and fault
 * injection in one place. */
#define _GNU_SOURCE
#include "jsr/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    int err;
} errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EROFS", EROFS},
    {"EDQUOT", EDQUOT}, {"EACCES", EACCES}, {"EPERM", EPERM},
};

static long crash_at = -1, fault_at = -1, count;
static int fault_errno, fault_on, trace;

/* A malformed variable is ignored, as a missing one: these are test
 * hooks, and a run must not fail because of them. */
static void init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *at = getenv("JSR_CRASH_AT"), *tr = getenv("JSR_CRASH_TRACE"),
               *fault = getenv("JSR_FAULT_AT");
    char *end;
    if (at && *at) {
        long n = strtol(at, &end, 10);
        crash_at = *end == 0 && n > 0 ? n : -1;
    }
    if (fault && *fault) {
        long n = strtol(fault, &end, 10);
        int on = *end == '+';
        if (on)
            end++;
        if (n > 0 && *end == ':') {
            for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++)
                if (!strcmp(end + 1, errnos[i].name)) {
                    fault_at = n;
                    fault_on = on;
                    fault_errno = errnos[i].err;
                }
        }
    }
    trace = tr && *tr && strcmp(tr, "0") != 0;
}

int jsr_step(const char *what, const char *path)
{
    init();
    count++;
    if (trace)
        fprintf(stderr, "jsr-step %ld: %s %s\n", count, what, path);
    if (count == crash_at)
        _exit(99); /* no atexit, no flush: what kill -9 would leave */
    if (fault_at > 0 && (count == fault_at || (fault_on && count > fault_at)))
        return fault_errno;
    return 0;
}

/* the step, then the call unless the step is to fail */
#define STEP(what, path)                                                                     \
    do {                                                                                     \
        int e_ = jsr_step(what, path);                                                       \
        if (e_) {                                                                            \
            errno = e_;                                                                      \
            return -1;                                                                       \
        }                                                                                    \
    } while (0)

int jsr_os_open(const char *path, int flags, mode_t mode)
{
    if (flags & O_CREAT)
        STEP("create", path);
    return open(path, flags, mode);
}

ssize_t jsr_os_write(int fd, const void *data, size_t len, const char *path)
{
    STEP("write", path);
    return write(fd, data, len);
}

int jsr_os_fchmod(int fd, mode_t mode, const char *path)
{
    STEP("chmod", path);
    return fchmod(fd, mode);
}

int jsr_os_fsync(int fd, const char *path)
{
    STEP("fsync", path);
    return fsync(fd);
}

int jsr_os_syncfs(int fd, const char *path)
{
    STEP("syncfs", path);
    return syncfs(fd);
}

int jsr_os_mkdir(const char *path, mode_t mode)
{
    STEP("mkdir", path);
    return mkdir(path, mode);
}

int jsr_os_rename(const char *from, const char *to)
{
    STEP("rename", from);
    return rename(from, to);
}

int jsr_os_link(const char *from, const char *to)
{
    STEP("link", to);
    return link(from, to);
}

int jsr_os_unlink(const char *path, const char *shown)
{
    STEP("unlink", shown ? shown : path);
    return unlink(path);
}

int jsr_os_rmdir(const char *path, const char *shown)
{
    STEP("rmdir", shown ? shown : path);
    return rmdir(path);
}
