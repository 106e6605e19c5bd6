/* The journal record: written by commit (changes.c), read by undo
 * (undo.c) one operation at a time, in memory that does not grow with the
 * journal: a commit may journal millions of changes, and whatever prepare
 * can write, undo and rollback must read.  Its keys and operation names
 * are spelled in journal.c only.
 *
 * The format, one line each:
 *   {"tx":"<id>","store":"<path>","ops":[
 *   {<op>},                      every operation but the last
 *   {<op>}]}                     the last
 * (a journal without operations is the one line {...,"ops":[]}).  Strings
 * never hold a raw newline (the writer escapes control bytes), so a line
 * is an operation.  Reading is strict: a journal edited into another
 * layout is refused, naming the file and the line. */
#ifndef JSR_JOURNAL_H
#define JSR_JOURNAL_H

#include <stddef.h>

#include "jsr/buf.h"

/* Longest line read: four paths of PATH_MAX bytes, every byte escaped
 * (\u00XX), fit with room to spare. */
#define JSR_JOURNAL_LINE_MAX (1u << 20)

/* The operations of a set of changes (changes.h), one name each: the
 * journal line's "op", the changes.h function, the Lua method.  replace: a
 * file's new bytes; move: a tree moved aside into removed/; rename: a tree
 * given a new name in the store; mkdir: a new directory. */
enum { JSR_JOP_REPLACE, JSR_JOP_MOVE, JSR_JOP_RENAME, JSR_JOP_MKDIR, JSR_JOP_COUNT };

/* "replace", "move", "rename", "mkdir": the "op" of a journal line */
const char *jsr_jop_name(int kind);

/* One operation.  Written: its paths relative to the store; read: made
 * absolute (below the store) and checked to be where commit puts them
 * (undo.h). */
typedef struct {
    int kind;
    const char *path, *tmp, *backup, *to; /* tmp, backup, to may be NULL */
    int purge; /* a move only */
} jsr_jop;

/* Writing, into b (out of memory shows as b->failed): the first line, then
 * each operation (index counting from 0), then the end. */
void jsr_journal_begin(jsr_buf *b, const char *id, const char *store);
void jsr_journal_add(jsr_buf *b, size_t index, const jsr_jop *op);
void jsr_journal_end(jsr_buf *b);

/* Called for each operation; index counts from 0 in file order.  Returns 1
 * to go on, 0 to stop with err set. */
typedef int (*jsr_jop_fn)(const jsr_jop *op, size_t index, void *ud, char *err, size_t errlen);

/* What a forward read found: backward refuses a file that is not the
 * one checked. */
typedef struct {
    size_t count; /* operations */
    long long size, mtime_ns;
    unsigned long long dev, ino;
} jsr_jinfo;

/* Reads <store>/.js-recover/journal/<id>.json and calls fn (may be NULL)
 * for each operation, first to last; the whole file is checked (if fn
 * stops early, the rest is not). */
int jsr_journal_forward(const char *store, const char *id, jsr_jop_fn fn, void *ud,
                        jsr_jinfo *info, char *err, size_t errlen);

/* The same, last operation to first, reading the file from its end; info
 * is what jsr_journal_forward found for the whole file: a journal changed
 * since is refused before fn is called. */
int jsr_journal_backward(const char *store, const char *id, const jsr_jinfo *info,
                         jsr_jop_fn fn, void *ud, char *err, size_t errlen);

#endif
