/* Finding what a JetStream store holds: accounts, streams, consumers and
 * the Raft groups of the system account (the account that has `_js_`,
 * whatever its name).  Never follows a symlink; an unreadable or odd entry
 * is reported as an entry of its own, and the walk goes on. */
#ifndef JSR_WALK_H
#define JSR_WALK_H

#include <stddef.h>

typedef enum {
    JSR_ACCOUNT,
    JSR_STREAM,
    JSR_CONSUMER,
    JSR_RAFT,
    JSR_SKIPPED, /* seen and deliberately not used: partial deletes, links */
    JSR_ERROR    /* could not be read */
} jsr_kind;

typedef struct {
    jsr_kind kind;
    const char *path;
    const char *account; /* every kind but errors above the account level */
    const char *stream;  /* consumers */
    const char *name;    /* the entry's own name */
    const char *message; /* skipped and error entries: why */
    int system;          /* accounts and raft groups: the system account */
} jsr_entry;

/* Returns nonzero to go on, 0 to stop the walk. */
typedef int (*jsr_walk_fn)(const jsr_entry *e, void *ud);

/* Resolves a user's <store> argument (the store_dir, or its jetstream/
 * directory) into both paths, clean and absolute. */
int jsr_find_store(const char *arg, char *store_dir, char *js_dir, size_t len, char *err,
                   size_t errlen);

/* Walks js_dir in name order: each account, then its streams (each followed
 * by its consumers), then its Raft groups.  Returns 0 only if js_dir itself
 * cannot be read (err set) or fn stopped the walk. */
int jsr_walk(const char *js_dir, jsr_walk_fn fn, void *ud, char *err, size_t errlen);

#endif
