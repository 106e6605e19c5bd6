#define _POSIX_C_SOURCE 200809L
/* js-recover's command line: parses only the command word; each command is
 * a Lua script (built-in or the user's) that parses its own options. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jsr/host.h"
#include "jsr/lua_jsr.h"

static const char usage[] =
    "js-recover " JSR_VERSION " - recover a JetStream store after Raft quorum loss\n"
    "\n"
    "usage:\n"
    "  js-recover inspect <store> [--json]         what the store holds; changes nothing\n"
    "  js-recover prepare <store> [options]        rewrite it for a standalone nats-server\n"
    "  js-recover undo <store> [options]           put it back as it was before prepare\n"
    "  js-recover verify <store> [STREAM...] [--json]  check every record of every block\n"
    "  js-recover export <store> <dir> [options]   natscli backups of every stream as replayed,\n"
    "                                              with its original config; reads only\n"
    "  js-recover restore <store> --server URL ... restore them into a cluster and check\n"
    "  js-recover compare <store> --server URL ... check what a cluster serves against them\n"
    "  js-recover run <script.lua> [args...]       run a site's own policy or script (a file;\n"
    "                                              else the built-in of that name)\n"
    "  js-recover show [<name>]                    list built-in scripts, or print one\n"
    "  js-recover help [<command>]                 this text, or a command's details\n"
    "  js-recover version\n"
    "\n"
    "<store> is the server's store_dir (the directory holding jetstream/) or the\n"
    "jetstream/ directory itself.  Work on a copy: stop every server, then\n"
    "  cp -a /var/lib/nats /var/lib/nats.recovery\n"
    "  js-recover inspect /var/lib/nats.recovery\n"
    "  js-recover prepare /var/lib/nats.recovery\n"
    "and follow the steps prepare prints.\n"
    "Several survivors' stores: give them all (inspect, restore, export; prepare\n"
    "with --into DIR): each stream is taken from its most complete copy.\n"
    "\n"
    "Exit codes: 0 done; 1 the store has problems (listed); 2 usage error;\n"
    "3 failure (the message names the file and the reason).\n";

/* The help of a built-in command is its script's leading comment block, so
 * the text cannot drift from the code. */
static int help_for(const char *cmd)
{
    char name[256];
    snprintf(name, sizeof name, "%s.lua", cmd);
    const jsr_builtin *s = jsr_builtin_find(name);
    if (!s) {
        fprintf(stderr, "js-recover: no command '%s'\n\n%s", cmd, usage);
        return 2;
    }
    const char *p = s->data, *end = s->data + s->len;
    while (p < end && p[0] == '-' && p + 1 < end && p[1] == '-') {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        const char *t = p + 2;
        if (t < nl && *t == ' ')
            t++;
        fwrite(t, 1, (size_t)(nl - t), stdout);
        fputc('\n', stdout);
        p = nl < end ? nl + 1 : end;
    }
    return 0;
}

static int show(const char *name)
{
    if (!name) {
        puts("built-in scripts (print one with: js-recover show <name>):");
        for (size_t i = 0; i < jsr_builtin_count; i++)
            printf("  %s\n", jsr_builtins[i].name);
        return 0;
    }
    char alt[256];
    const jsr_builtin *s = jsr_builtin_find(name);
    if (!s) {
        snprintf(alt, sizeof alt, "%s.lua", name);
        s = jsr_builtin_find(alt);
    }
    if (!s) {
        fprintf(stderr, "js-recover: no built-in script '%s' (js-recover show lists them)\n",
                name);
        return 2;
    }
    fwrite(s->data, 1, s->len, stdout);
    return 0;
}

/* `run NAME`: a file at that path wins (a site's copy of prepare.lua is
 * what it means to run); otherwise the built-in of that name, as the design
 * says a site runs the default policy. */
static int run_script(const char *name, int argc, char **argv)
{
    if (access(name, F_OK) == 0)
        return jsr_run(name, 0, argc, argv);
    char alt[256];
    const jsr_builtin *s = jsr_builtin_find(name);
    if (!s && snprintf(alt, sizeof alt, "%s.lua", name) < (int)sizeof alt)
        s = jsr_builtin_find(alt);
    if (!s) {
        fprintf(stderr,
                "js-recover: cannot run '%s': no such file, and no built-in script of that "
                "name (js-recover show lists them)\n",
                name);
        return 2;
    }
    return jsr_run(s->name, 1, argc, argv);
}

static int is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        if (argc > 2)
            return help_for(argv[2]);
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        puts("js-recover " JSR_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "show"))
        return show(argc > 2 ? argv[2] : NULL);
    if (!strcmp(cmd, "run")) {
        if (argc < 3 || is_help(argv[2])) {
            fputs("usage: js-recover run <script.lua> [args...]\n"
                  "Runs a Lua script with the jsr module and the built-in library\n"
                  "(require \"jsr.prepare\", ...) available; see SCRIPTING.md.\n"
                  "<script.lua> is a file when one exists at that path; otherwise the\n"
                  "built-in script of that name (inspect.lua, prepare.lua, jsr/...;\n"
                  "\"prepare\" works too): `js-recover run prepare.lua <store>` runs\n"
                  "the default policy.  js-recover show lists the built-ins.\n",
                  argc < 3 ? stderr : stdout);
            return argc < 3 ? 2 : 0;
        }
        return run_script(argv[2], argc - 3, argv + 3);
    }
    char name[256];
    snprintf(name, sizeof name, "%s.lua", cmd);
    if (strchr(cmd, '/') || !jsr_builtin_find(name)) {
        fprintf(stderr, "js-recover: unknown command '%s'\n\n%s", cmd, usage);
        return 2;
    }
    if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")))
        return help_for(cmd);
    return jsr_run(name, 1, argc - 2, argv + 2);
}
