/* File operations that keep the store safe: reads that refuse symlinks and
 * oversized files, path checks that keep every write inside the store root,
 * and tree removal that never leaves the tree it was given.
 * Every function returns 1 on success, 0 on failure with a message that
 * names the path in err. */
#ifndef JSR_FSOPS_H
#define JSR_FSOPS_H

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define JSR_ERRLEN (4096 + 512) /* a full path and what went wrong */

/* jsr_step(), crash and fault injection: os.h */
#include "jsr/os.h"

/* Formats a message into err and returns 0, so failures read
 * `return jsr_errf(err, errlen, "%s: ...", path);`. */
int jsr_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opening, in one place.  A store is opened to read here (not a step,
 * os.h: nothing changes) and to write through jsr_write_new, whose create
 * step jsr_os_open announces; no other file opens a store file itself, so
 * no write can miss its step and no read can follow a link. */

/* Opens the regular file path to read (never through a symlink,
 * close-on-exec), its stat in st if st is not NULL: the descriptor, or -1
 * with a message naming path in err. */
int jsr_open_file(const char *path, struct stat *st, char *err, size_t errlen);

/* Opens the directory path to list it: NULL with "PATH: cannot read: why"
 * in err. */
DIR *jsr_open_dir(const char *path, char *err, size_t errlen);

/* The names in the directory path but "." and "..", sorted (strcmp), as a
 * malloc'd array of malloc'd strings (jsr_names_free).  Read whole before
 * it returns: no caller keeps the directory open. */
int jsr_list_dir(const char *path, char ***names, size_t *n, char *err, size_t errlen);
void jsr_names_free(char **names, size_t n);

/* Reads a whole regular file (not through a symlink), at most max bytes. */
int jsr_read_file(const char *path, size_t max, char **data, size_t *len, char *err,
                  size_t errlen);

/* Makes path absolute (relative to the cwd) and lexically clean: no ".",
 * no "..", no repeated or trailing slashes.  "..' is refused, not resolved:
 * a name that climbs has no business in a store path.  out has PATH_MAX. */
int jsr_path_clean(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* How much of a path must exist for the link checks below. */
enum jsr_path_need {
    JSR_PATH_LAST_MAY_MISS = 0, /* all but the last component (a file about to be created) */
    JSR_PATH_ALL_EXIST = 1,
    /* a component that is not there ends the check, as does one whose name
     * is too long to exist: what is missing cannot be a link.  undo reads
     * journals whose paths may be half made or deleted since. */
    JSR_PATH_UP_TO_MISSING = 2,
};

/* Checks that the clean absolute path is root or lies below it, and that no
 * existing component below root is a symlink (need: how much must exist). */
int jsr_path_inside(const char *root, const char *path, enum jsr_path_need need, char *err,
                    size_t errlen);

/* The component checks of jsr_path_inside for the part of path after
 * index from (path[from] is '/'; what comes before is known to be safe).
 * dir_ok, if set, is told each directory found on the way. */
int jsr_path_check_from(const char *path, size_t from, enum jsr_path_need need,
                        void (*dir_ok)(const char *dir, void *ud), void *ud, char *err,
                        size_t errlen);

/* The directory path is in: "/a" for "/a/b", "/" for "/a".  0 when path
 * has no '/' or the directory does not fit in out. */
int jsr_parent(const char *path, char *out, size_t outlen);

/* Whether something is at path (lstat: a link counts, never followed). */
int jsr_lexists(const char *path);
/* Whether path is a directory itself (a link to one is not). */
int jsr_is_dir(const char *path);

/* Checks that the effective user may create and remove entries in dir
 * (write and search; AT_EACCESS: the ids the renames will run as), before
 * anything is changed.  missing_ok: a dir that is not there passes
 * (nothing will be put in it).  The message reads "DIR: not writable
 * (why), and <must> there; nothing was changed", must formatted from fmt. */
int jsr_dir_writable(const char *dir, int missing_ok, char *err, size_t errlen,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes data to a new file tmp (replacing a stale one), mode as given;
 * fsyncs it when sync is set. */
int jsr_write_new(const char *tmp, const void *data, size_t len, mode_t mode, int sync,
                  char *err, size_t errlen);

int jsr_fsync_path(const char *path, char *err, size_t errlen);

/* syncfs of the file system that holds dir (the store): one call makes
 * every change of a commit or an undo durable, where fsyncing each of
 * thousands of files would not. */
int jsr_sync_fs(const char *dir, char *err, size_t errlen);

/* mkdir -p below an existing directory, each new level with mode. */
int jsr_mkdirs(const char *path, mode_t mode, char *err, size_t errlen);

/* Deletes the tree at path (a file, or a directory and all below it),
 * never following a symlink: links are removed as links. */
int jsr_purge_tree(const char *path, char *err, size_t errlen);

/* Checks, changing nothing, that jsr_purge_tree could delete the tree at
 * path as the effective user: every directory in it readable, writable
 * and searchable (a read-only file system fails too).  A missing path is
 * fine: nothing to delete. */
int jsr_purge_check(const char *path, char *err, size_t errlen);

/* Total size and number of the regular files under path (not following
 * links).  Not recursive: a tree of any depth costs heap, not stack. */
int jsr_tree_bytes(const char *path, unsigned long long *bytes, unsigned long long *files,
                   char *err, size_t errlen);

#endif
