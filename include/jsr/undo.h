/* Taking journaled changes back, and what the journal says about a store.
 *
 * Every commit (changes.h) leaves in <store>/.js-recover/ (names in layout.h):
 *   journal/<tx>.json        what the commit does, written before it starts
 *   journal/<tx>.committed   the commit finished
 *   journal/<tx>.purging     the commit's removed trees are being deleted
 *   journal/<tx>.undoing     an undo of it has started
 *   backup/<tx>/<i>          hard links of the files it replaced
 *   removed/<tx>/<i>-<name>  the trees it moved aside
 *
 * Undo takes journals back newest first and each journal's operations in
 * reverse, whatever point the commit had reached:
 *   replace  a temp file still there is removed; the backup link is renamed
 *            back over the file (or just dropped when the file was never
 *            replaced: same inode); a file that did not exist before is
 *            removed;
 *   move, rename
 *            renamed back when the destination exists and the origin does
 *            not, else left alone (not done yet, or already undone);
 *   mkdir    the directory removed (rmdir) once what was put in it is taken
 *            back; one holding files written since the commit stops undo,
 *            named, nothing of them removed;
 *   a replace or move whose directory is gone (deleted after the commit:
 *            a server deleting a stream of the prepared store) is not put
 *            back: its backup or moved tree is deleted, and reported.
 * Every step is idempotent, so a crash during undo is repaired by running
 * undo again: it first marks the journal <tx>.undoing (and prepare refuses
 * to run on a store with such a mark), restores, syncs the store, then
 * removes the backup and removed folders and the journal files, the
 * .undoing mark last.  When no journal is left, .js-recover/ and its
 * folders are removed too (only if empty), so a store undone completely is
 * byte for byte the tree it was before, modes included.
 *
 * Undo's file-system steps (made through os.h): create, chmod, fsync
 * of the .undoing mark; fsync of journal/; unlink of temp files and of new
 * files; rename of backups, moved and renamed trees; unlink of backups
 * never used; syncfs; rmdir of backup/<tx>, removed/<tx>; unlink of the
 * journal files; rmdir of the empty journal folders; for --ignore-purged,
 * unlink and rmdir of what is left of a purged tree.
 *
 * A journal's paths are relative to the store, so a store copied with
 * cp -a can be undone at its new place.  They are checked before use: no
 * "..", no symlink on the way, temp files and backups only where commit
 * puts them; a journal that fails the checks stops undo before anything
 * changes.  A journal is never held in memory whole (journal.h): each pass
 * reads it a line at a time, so undo reads whatever commit wrote. */
#ifndef JSR_UNDO_H
#define JSR_UNDO_H

#include <stddef.h>

#include "jsr/layout.h" /* JSR_STATE_DIR, JSR_JOURNAL_DIR and the journal's file names */

typedef enum {
    JSR_J_INCOMPLETE,    /* the journal itself was not finished: nothing else was done */
    JSR_J_UNCOMMITTED,   /* the commit was cut off: undo it */
    JSR_J_COMMITTED,     /* done */
    JSR_J_PURGE_PENDING, /* done, but the trees it should purge are still there */
    JSR_J_PURGED,        /* done; its purged trees are gone for good */
    JSR_J_UNDOING,       /* an undo was cut off: run undo again */
    JSR_J_UNREADABLE     /* the journal cannot be read (see error) */
} jsr_jstate;

typedef struct {
    char id[128];
    jsr_jstate state;
    size_t ops;  /* operations in the journal */
    char *error; /* JSR_J_UNREADABLE: why (malloc'd) */
} jsr_journal_info;

/* "incomplete", "uncommitted", "committed", "purge-pending", "purged",
 * "undoing", "unreadable" */
const char *jsr_jstate_name(jsr_jstate s);

/* The journals of a store, oldest first.  A store without .js-recover/
 * has none (returns 1 with *n 0).  Free the list with
 * jsr_journal_list_free. */
int jsr_journal_list(const char *store_dir, jsr_journal_info **list, size_t *n, char *err,
                     size_t errlen);
void jsr_journal_list_free(jsr_journal_info *list, size_t n);

/* Refuse to undo a journal whose purged trees are gone, unless this flag
 * is given (then everything else is restored and the trees stay lost). */
#define JSR_UNDO_IGNORE_PURGED 1

/* gone: how many of the journal's changes were to files whose directory
 * was deleted after the commit (a stream a server deleted, say): what undo
 * kept of them was deleted too, not put back; gone_example names one. */
typedef void (*jsr_undo_fn)(const char *id, size_t ops, size_t gone, const char *gone_example,
                            void *ud);

/* Undoes the journals of store_dir newest first: all of them, or with
 * from_id the journal from_id and every later one.  done (may be NULL) is
 * called after each journal.  *changed (may be NULL) tells, on failure,
 * whether anything was changed before it (0: the checks refused). */
int jsr_undo(const char *store_dir, const char *from_id, int flags, jsr_undo_fn done, void *ud,
             int *changed, char *err, size_t errlen);

/* Deletes the removed trees of journal id that were staged with purge:
 * marks <id>.purging first, so undo knows they may be partly gone. */
int jsr_journal_purge(const char *store_dir, const char *id, char *err, size_t errlen);

/* Finishes what committed journals left undone (a purge cut off by a
 * crash); *purged counts the journals finished. */
int jsr_journal_finish(const char *store_dir, size_t *purged, char *err, size_t errlen);

/* Removes .js-recover/ and its folders if they are empty. */
int jsr_journal_tidy(const char *store_dir, char *err, size_t errlen);

#endif
