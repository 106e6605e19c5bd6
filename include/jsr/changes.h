/* A set of changes to a store, applied together and journaled first.
 *
 * Staging only checks each change and keeps the new bytes in memory, so
 * nothing on disk changes until commit and an abandoned set leaves no
 * trace.  Commit (<tx> is the journal id, "<seq>-<UTC time>-<pid>", where
 * seq counts up per store, so ids sort in the order they were made):
 *   0. checks, before anything changes, that every directory it will write
 *      is writable (and every replaced file can be hard-linked, and every
 *      directory of a tree to purge can be emptied);
 *   1. writes the journal <store>/.js-recover/journal/<tx>.json atomically
 *      (<tx>.json.tmp, fsync, rename, directory fsync): every later step is
 *      recorded in it, so `undo` can take back a commit cut off anywhere;
 *   2. hard-links every file about to be replaced into
 *      <store>/.js-recover/backup/<tx>/<i> (no data copied, the old bytes
 *      stay) and writes each new file next to its target as
 *      <target>.jsr-tmp;
 *   3. makes all of that durable: fsync per file for a few changes, one
 *      syncfs() for many or for the first commit, which creates folders
 *      (the number of fsyncs must not grow with the number of streams);
 *   4. renames the temp files over their targets and moves removed trees
 *      into <store>/.js-recover/removed/<tx>/<i>-<name> (one rename per
 *      tree, whatever its size);
 *   5. makes the renames durable the same way, then marks the journal
 *      committed (<tx>.committed);
 *   6. with purge: marks <tx>.purging, then deletes the removed trees.
 * A failure once the journal has its name (even in the fsync of its
 * folder) is rolled back with the journal (jsr_undo), so a failed commit
 * changes nothing; a crash leaves a journal that `undo` takes back.  Nothing outside the store is touched and no symlink is
 * followed.
 *
 * The file-system steps, each made through os.h (jsr_step()) so the
 * specs can stop the process right before any one of them, or make it
 * fail with an errno:
 *   mkdir   .js-recover/, journal/, backup/<tx>/, removed/<tx>/ as missing;
 *           each directory a mkdir op makes (step 2, before the temp files)
 *   unlink  a stale temp file of an earlier crashed run, before it is
 *           written again
 *   create, write, chmod, fsync
 *           the journal temp file, each <target>.jsr-tmp (fsync only for a
 *           few changes), the markers
 *   rename  the journal into place; each temp file over its target; each
 *           removed tree into removed/<tx>/; each renamed tree
 *   link    each backup
 *   fsync   journal/; backup/<tx>/, backup/ and the targets' directories
 *           (a few changes, on a store that has a journal folder already)
 *   syncfs  the store (many changes, or the first commit), before and after
 *           the renames
 *   unlink, rmdir
 *           every file and directory of a purged tree
 * Undo's steps are listed in undo.h. */
#ifndef JSR_CHANGES_H
#define JSR_CHANGES_H

#include <stddef.h>
#include <sys/types.h>

typedef struct jsr_changes jsr_changes;

/* store_dir: clean absolute path of the store (parent of jetstream/). */
jsr_changes *jsr_changes_open(const char *store_dir, char *err, size_t errlen);

/* The four operations; each is journaled under its own name (journal.h:
 * "replace", "move", "rename", "mkdir"), which is also its Lua method on a
 * set (store:changes()). */

/* replace: stages path (inside the store) to hold data (copied).  mode 0
 * keeps the mode of the file it replaces, or 0640 for a new file. */
int jsr_changes_replace(jsr_changes *c, const char *path, const void *data, size_t len,
                        mode_t mode, char *err, size_t errlen);

/* move: stages moving the tree at path out of the way (into the journal's
 * removed/ folder).  With purge set, it is deleted after the commit. */
int jsr_changes_move(jsr_changes *c, const char *path, int purge, char *err, size_t errlen);

/* rename: stages renaming the tree at path to dest (both inside the store;
 * dest must not exist).  Used to give a tree a new name, e.g. an account. */
int jsr_changes_rename(jsr_changes *c, const char *path, const char *dest, char *err,
                       size_t errlen);

/* mkdir: stages creating the directory at path (mode 0750; it must not
 * exist, its parent must exist or be made by an earlier op of this set);
 * replaces and mkdirs below it may follow.  Made before any temp file is
 * written; undo removes it once what was put inside is taken back. */
int jsr_changes_mkdir(jsr_changes *c, const char *path, char *err, size_t errlen);

size_t jsr_changes_count(const jsr_changes *c);

/* Checks that the user may make every staged change (directories
 * writable, replaced files linkable, the journal's place usable) without
 * changing anything.  commit calls it first. */
int jsr_changes_check(jsr_changes *c, char *err, size_t errlen);

/* Applies everything staged.  On failure the changes are rolled back from
 * the journal and err says so; if even that fails, err says to run
 * `js-recover undo`.  A purge failing after the commit leaves the commit in
 * place (err names the tree that is left in removed/). */
int jsr_changes_commit(jsr_changes *c, char *err, size_t errlen);

/* The id of the last commit (for messages), or "" */
const char *jsr_changes_id(const jsr_changes *c);

/* Frees c and what it staged. */
void jsr_changes_free(jsr_changes *c);

/* Threshold below which commit fsyncs files one by one instead of syncfs. */
#define JSR_CHANGES_FSYNC_EACH 16

#endif
