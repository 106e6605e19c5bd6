/* The store directories a nats-server configuration names, read the way
 * the server reads them (learned from nats-server 2.9.10 and 2.15.3 and
 * checked with both, see docs/FORMAT.md "Where a server keeps its store"):
 *
 *   store_dir / storedir at the top level, or store / store_dir / storedir
 *   inside `jetstream { }` (keys in any case);
 *   a value `$NAME` is the variable NAME defined earlier in the config, or
 *   else the server's environment variable NAME;
 *   a relative value is relative to the server's working directory (not to
 *   the config file);
 *   `include <file>` is relative to the including file.
 *
 * Only what finds the store is understood; anything else is skipped, and
 * a config the reader cannot follow yields what it found so far: the guard
 * that uses it also looks at open files and plain mentions of the path.
 * The scanner keeps an explicit stack (no recursion on the config's
 * nesting); includes nest at most JSR_CONF_INCLUDE_DEPTH deep. */
#ifndef JSR_NATSCONF_H
#define JSR_NATSCONF_H

#include <stddef.h>

#define JSR_CONF_INCLUDE_DEPTH 8

typedef struct {
    /* the server's environment: NUL-separated NAME=value (as in
     * /proc/<pid>/environ), envlen bytes; NULL for none */
    const char *env;
    size_t envlen;
    /* called with each store directory value found, variables resolved,
     * not yet made absolute, and the config file that names it */
    void (*store_dir)(const char *value, const char *config_file, void *ud);
    void *ud;
    /* up to two paths (NULL for none): set mentioned when a file read holds
     * one of them anywhere, a hint where the reader cannot follow */
    const char *needle[2];
    int mentioned;
    int jetstream; /* set when the config enables JetStream */
} jsr_conf_scan;

/* Scans the config file (and what it includes).  Returns 0 when file
 * cannot be read; what it includes may be missing without failing. */
int jsr_conf_scan_file(const char *file, jsr_conf_scan *s);

/* The value of NAME in env (as above), or NULL. */
const char *jsr_conf_env(const char *env, size_t envlen, const char *name);

#endif
