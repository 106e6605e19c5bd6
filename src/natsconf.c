/* Where a nats-server config puts the store (see natsconf.h). */
#define _GNU_SOURCE
#include "jsr/natsconf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsr/fsops.h"

#define CONFIG_MAX (1u << 20) /* a nats-server config is a few KB */
#define NEST_MAX 64           /* blocks and arrays deeper than this: give up */
#define VARS_MAX 256          /* variables remembered (the last ones win) */
#define TOKEN_MAX PATH_MAX

typedef struct {
    char *name, *value;
} var;

typedef struct {
    const char *p, *end;
    /* what each open block or array is */
    enum { N_BLOCK, N_JETSTREAM, N_ARRAY } nest[NEST_MAX];
    int depth;
    var vars[VARS_MAX];
    int nvars;
} scanner;

static int at_comment(const scanner *s)
{
    return *s->p == '#' || (*s->p == '/' && s->p + 1 < s->end && s->p[1] == '/');
}

/* Skips blanks, line ends, separators between values and comments. */
static void skip_space(scanner *s)
{
    while (s->p < s->end) {
        if (isspace((unsigned char)*s->p) || *s->p == ',' || *s->p == ';') {
            s->p++;
        } else if (at_comment(s)) {
            while (s->p < s->end && *s->p != '\n')
                s->p++;
        } else {
            break;
        }
    }
}

/* A quoted string ("..." with backslash escapes kept as the character they
 * escape, or '...' as is), or a bare word up to a blank or one of stops. */
static int token(scanner *s, char *out, size_t outlen, const char *stops)
{
    size_t n = 0;
    if (s->p < s->end && (*s->p == '"' || *s->p == '\'')) {
        char q = *s->p++;
        while (s->p < s->end && *s->p != q) {
            if (q == '"' && *s->p == '\\' && s->p + 1 < s->end)
                s->p++;
            if (n + 1 < outlen)
                out[n++] = *s->p;
            s->p++;
        }
        if (s->p < s->end)
            s->p++;
        out[n] = 0;
        return 2;
    }
    while (s->p < s->end && !isspace((unsigned char)*s->p) && !strchr(stops, *s->p)) {
        if (n + 1 < outlen)
            out[n++] = *s->p;
        s->p++;
    }
    out[n] = 0;
    return n > 0;
}

static void remember(scanner *s, const char *name, const char *value)
{
    char *n = strdup(name), *v = strdup(value); /* value may be a var about to go */
    if (!n || !v) {
        free(n);
        free(v);
        return;
    }
    if (s->nvars == VARS_MAX) {
        free(s->vars[0].name);
        free(s->vars[0].value);
        memmove(s->vars, s->vars + 1, (VARS_MAX - 1) * sizeof s->vars[0]);
        s->nvars--;
    }
    s->vars[s->nvars].name = n;
    s->vars[s->nvars].value = v;
    s->nvars++;
}

const char *jsr_conf_env(const char *env, size_t envlen, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; env && i < envlen; i += strlen(env + i) + 1) {
        if (!strncmp(env + i, name, nl) && env[i + nl] == '=')
            return env + i + nl + 1;
    }
    return NULL;
}

/* $NAME: a variable defined before, else the server's environment. */
static const char *resolve(const scanner *s, const jsr_conf_scan *c, const char *value)
{
    if (value[0] != '$')
        return value;
    for (int i = s->nvars - 1; i >= 0; i--)
        if (!strcmp(s->vars[i].name, value + 1))
            return s->vars[i].value;
    return jsr_conf_env(c->env, c->envlen, value + 1);
}

static int is_store_key(const scanner *s, const char *key)
{
    int top = s->depth == 0;
    int in_js = s->depth == 1 && s->nest[0] == N_JETSTREAM;
    return ((top || in_js) && (!strcasecmp(key, "store_dir") || !strcasecmp(key, "storedir"))) ||
           (in_js && !strcasecmp(key, "store"));
}

/* The file an include names, against the including file's directory. */
static int include_path(const char *from, const char *name, char *out, size_t outlen)
{
    if (name[0] == '/')
        return snprintf(out, outlen, "%s", name) < (int)outlen;
    const char *slash = strrchr(from, '/');
    int dl = slash ? (int)(slash - from) : 1;
    return snprintf(out, outlen, "%.*s/%s", dl, slash ? from : ".", name) < (int)outlen;
}

static void look_for_needles(jsr_conf_scan *c, const char *text)
{
    for (int i = 0; i < 2; i++)
        if (c->needle[i] && strstr(text, c->needle[i]))
            c->mentioned = 1;
}

static int scan_text(const char *file, const char *text, size_t len, jsr_conf_scan *c,
                     scanner *s, int include_depth)
{
    s->p = text;
    s->end = text + len;
    char key[TOKEN_MAX], val[TOKEN_MAX];
    for (;;) {
        skip_space(s);
        if (s->p >= s->end)
            return 1;
        char ch = *s->p;
        if (ch == '}' || ch == ']') {
            s->p++;
            if (s->depth > 0)
                s->depth--;
            continue;
        }
        int in_array = s->depth > 0 && s->nest[s->depth - 1] == N_ARRAY;
        if (ch == '{' || ch == '[') {
            /* a block in an array, or an array in an array: nothing of ours */
            if (s->depth == NEST_MAX)
                return 1;
            s->nest[s->depth++] = ch == '[' ? N_ARRAY : N_BLOCK;
            s->p++;
            continue;
        }
        if (in_array) { /* a value in an array */
            if (!token(s, val, sizeof val, ",;]}"))
                s->p++;
            continue;
        }
        if (!token(s, key, sizeof key, "=:{}[],;#")) {
            s->p++; /* a stray character: skip it */
            continue;
        }
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
            s->p++;
        if (!strcasecmp(key, "include")) {
            char named[PATH_MAX], inc[PATH_MAX];
            /* read through a symlink, as the server does */
            if (token(s, val, sizeof val, ";,}") && include_depth < JSR_CONF_INCLUDE_DEPTH &&
                include_path(file, val, named, sizeof named) && realpath(named, inc)) {
                /* the included file continues this one's scope */
                const char *p = s->p, *end = s->end;
                char *itext;
                size_t ilen;
                char err[JSR_ERRLEN];
                if (jsr_read_file(inc, CONFIG_MAX, &itext, &ilen, err, sizeof err)) {
                    look_for_needles(c, itext);
                    scan_text(inc, itext, ilen, c, s, include_depth + 1);
                    free(itext);
                }
                s->p = p;
                s->end = end;
            }
            continue;
        }
        if (s->p < s->end && (*s->p == '=' || *s->p == ':'))
            s->p++;
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
            s->p++;
        if (s->p < s->end && (*s->p == '{' || *s->p == '[')) {
            if (s->depth == NEST_MAX)
                return 1;
            int js = *s->p == '{' && s->depth == 0 && !strcasecmp(key, "jetstream");
            c->jetstream |= js;
            s->nest[s->depth++] = *s->p == '[' ? N_ARRAY : js ? N_JETSTREAM : N_BLOCK;
            s->p++;
            continue;
        }
        int quoted = token(s, val, sizeof val, ",;]}") == 2;
        const char *v = quoted ? val : resolve(s, c, val);
        if (!v)
            continue;
        if (s->depth == 0 && !strcasecmp(key, "jetstream") &&
            (!strcasecmp(v, "enabled") || !strcasecmp(v, "enable") || !strcasecmp(v, "true")))
            c->jetstream = 1;
        if (is_store_key(s, key) && *v && c->store_dir)
            c->store_dir(v, file, c->ud);
        remember(s, key, v);
    }
}

int jsr_conf_scan_file(const char *file, jsr_conf_scan *c)
{
    char *text;
    size_t len;
    char err[JSR_ERRLEN];
    if (!jsr_read_file(file, CONFIG_MAX, &text, &len, err, sizeof err))
        return 0;
    scanner *s = calloc(1, sizeof *s);
    if (!s) {
        free(text);
        return 0;
    }
    look_for_needles(c, text);
    scan_text(file, text, len, c, s, 0);
    for (int i = 0; i < s->nvars; i++) {
        free(s->vars[i].name);
        free(s->vars[i].value);
    }
    free(s);
    free(text);
    return 1;
}
