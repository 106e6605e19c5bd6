/* Guards that keep js-recover off a store someone else is using: which
 * processes have it open, and a lock between runs of js-recover itself. */
#ifndef JSR_GUARD_H
#define JSR_GUARD_H

#include <stddef.h>

typedef struct {
    long pid;
    char *command; /* its command line, shortened */
    char *file;    /* what under the store it has, or names */
    const char *how; /* "open file", "command line", "config file" */
} jsr_opener;

/* Lists the processes (but this one) that have a file under root open
 * (/proc/<pid>/fd), and nats-server processes whose command line or -c
 * config file names a path under root: an idle nats-server keeps no file
 * of its store open (measured on 2.9.10), but it will write there as soon
 * as a client publishes.  *unreadable counts the processes whose open
 * files could not be read (other users' processes, when not root). */
int jsr_open_by(const char *root, jsr_opener **list, size_t *n, size_t *unreadable, char *err,
                size_t errlen);
void jsr_open_by_free(jsr_opener *list, size_t n);

/* Takes an exclusive lock (flock) on the store directory itself, so two
 * runs of js-recover never change one store at once and no lock file has
 * to be left in it.  Returns the descriptor that holds the lock (close it
 * to release), or -1 with err set. */
int jsr_lock_store(const char *store_dir, char *err, size_t errlen);

#endif
