/* Running js-recover's Lua scripts: the built-in ones compiled into the
 * binary, and a site's own files. */
#ifndef JSR_HOST_H
#define JSR_HOST_H

#include <stddef.h>

typedef struct {
    const char *name; /* "prepare.lua", "jsr/prepare.lua", ... */
    const char *data;
    size_t len;
} jsr_builtin;

/* Generated at build time from lua/ (see Makefile). */
extern const jsr_builtin jsr_builtins[];
extern const size_t jsr_builtin_count;

const jsr_builtin *jsr_builtin_find(const char *name);

/* Runs a script (built-in when builtin is set, else a file) with argv as
 * its arguments (`...` and the global `arg`).  Returns the exit code: what
 * the script returned (an integer, or true/nil = 0, false = 1), or 3 after
 * printing an error. */
int jsr_run(const char *script, int builtin, int argc, char **argv);

#endif
