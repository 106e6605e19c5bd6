/* The one place the system calls that change a store go through (commit,
 * undo, purge: changes.c, undo.c, fsops.c), as sqlite's os_unix.c: each
 * call that changes the file system is a numbered step, so the specs can
 * stop the process right before any step, or make it fail with an errno,
 * and see that every state left behind is one a documented command
 * finishes.
 *
 * Environment (for the specs; without them the calls only count):
 *   JSR_CRASH_AT=N      _exit(99) right before step N: the file system is
 *                       left exactly as a kill -9 at that instant leaves it
 *   JSR_FAULT_AT=N:ERR  step N fails with errno ERR (EIO, ENOSPC, EROFS,
 *                       EDQUOT, EACCES, EPERM) instead of being made;
 *                       N+:ERR makes every step from N on fail (a disk that
 *                       went bad, a file system remounted read-only)
 *   JSR_CRASH_TRACE=1   each step printed to stderr as
 *                       "jsr-step N: what path", so a spec can count them
 *
 * The steps ("what"): mkdir, create, write, chmod, fsync, syncfs, link,
 * rename, unlink, rmdir.  Opening for reading and closing are not steps.
 * Each wrapper returns what the system call returns, errno set. */
#ifndef JSR_OS_H
#define JSR_OS_H

#include <stddef.h>
#include <sys/types.h>

/* Announces a step (counts it, traces it, crashes before it): returns 0
 * to go on, or the errno the step is to fail with. */
int jsr_step(const char *what, const char *path);

/* open(2); with O_CREAT it is a "create" step */
int jsr_os_open(const char *path, int flags, mode_t mode);
/* path in these is what the step is announced with */
ssize_t jsr_os_write(int fd, const void *data, size_t len, const char *path);
int jsr_os_fchmod(int fd, mode_t mode, const char *path);
int jsr_os_fsync(int fd, const char *path);
int jsr_os_syncfs(int fd, const char *path);
int jsr_os_mkdir(const char *path, mode_t mode);
/* announced with from (the file that moves) */
int jsr_os_rename(const char *from, const char *to);
/* announced with to (the new link) */
int jsr_os_link(const char *from, const char *to);
/* shown: the name announced, when path is relative to a walk's directory
 * (NULL: path) */
int jsr_os_unlink(const char *path, const char *shown);
int jsr_os_rmdir(const char *path, const char *shown);

#endif
