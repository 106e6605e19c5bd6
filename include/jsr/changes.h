/* A set of changes to a store, applied together and journaled first.
 *
 * Staging writes each new file next to its target as <target>.jsr-tmp
 * (unsynced, so staging thousands of files costs no fsync).  Commit then:
 *   1. hard-links every file about to be replaced into
 *      <store>/.js-recover/backup/<tx>/ (no data copied, the old bytes stay);
 *   2. writes the journal <store>/.js-recover/journal/<tx>.json;
 *   3. makes all of that durable: fsync per file for a few changes, one
 *      syncfs() for many (the number of fsyncs must not grow with the
 *      number of streams);
 *   4. renames the temp files over their targets and moves removed trees
 *      into <store>/.js-recover/removed/<tx>/ (one rename per tree, whatever
 *      its size);
 *   5. makes the renames durable the same way, then marks the journal
 *      committed.
 * Nothing outside the store is touched and no symlink is followed. */
#ifndef JSR_CHANGES_H
#define JSR_CHANGES_H

#include <stddef.h>
#include <sys/types.h>

typedef struct jsr_changes jsr_changes;

/* store_dir: clean absolute path of the store (parent of jetstream/). */
jsr_changes *jsr_changes_open(const char *store_dir, char *err, size_t errlen);

/* Stages path (inside the store) to hold data.  mode 0 keeps the mode of
 * the file it replaces, or 0640 for a new file. */
int jsr_changes_put(jsr_changes *c, const char *path, const void *data, size_t len,
                    mode_t mode, char *err, size_t errlen);

/* Stages moving the tree at path out of the way (into the journal's
 * removed/ folder).  With purge set, it is deleted after the commit. */
int jsr_changes_remove(jsr_changes *c, const char *path, int purge, char *err, size_t errlen);

/* Stages renaming the tree at path to dest (both inside the store; dest
 * must not exist).  Used to give a tree a new name, e.g. an account. */
int jsr_changes_rename(jsr_changes *c, const char *path, const char *dest, char *err,
                       size_t errlen);

size_t jsr_changes_count(const jsr_changes *c);

/* Applies everything staged.  On failure before the first rename nothing
 * has changed; after it, the journal says what was done. */
int jsr_changes_commit(jsr_changes *c, char *err, size_t errlen);

/* The id of the last commit (for messages), or "" */
const char *jsr_changes_id(const jsr_changes *c);

/* Frees c; temp files of uncommitted changes are removed. */
void jsr_changes_free(jsr_changes *c);

/* Threshold below which commit fsyncs files one by one instead of syncfs. */
#define JSR_CHANGES_FSYNC_EACH 16

#endif
