/* Exact JSON, in C: one parser, one writer, a value tree.
 *
 * The server reads meta.inf with Go's encoding/json into int64/uint64
 * fields, so numbers must survive untouched (lua-cjson turns 604800000000000
 * into 6.048e+14 and the stream is refused).  The codec therefore:
 *   - gives integers that fit int64 as integers, and every other number as
 *     its exact text;
 *   - reports an object's keys in file order, so re-encoding keeps it;
 *   - reports the original spelling of a string whose escapes differ from
 *     Go's, so an unchanged file re-encodes byte for byte;
 *   - writes everything else as Go does (compact, <>& and U+2028/9
 *     escaped, \u00XX for other control bytes).
 * Strict on input: invalid UTF-8, trailing data, nesting deeper than
 * JSR_JSON_MAX_DEPTH, more values than a caller's limit are errors, each
 * with a byte offset; the tree (and lua_json.c) refuse duplicate keys.
 *
 * The parser reports what it reads to a sink (jsr_json_sink): the tree
 * below is one, the Lua binding (lua_json.h) another, so Lua values are
 * built straight from the text with no tree in between (a meta snapshot
 * is decoded at once, up to 256 MiB).  The writer (jsr_json_writer) puts
 * the commas, and the line breaks of the pretty form; the tree and the
 * Lua binding both encode through it. */
#ifndef JSR_JSON_H
#define JSR_JSON_H

#include <stddef.h>

#include "jsr/buf.h"

#define JSR_JSON_MAX_DEPTH 200
/* Values in one stream or consumer config (meta.inf, or an assignment in
 * a Raft entry): a config with 10,000 subjects has about 10,050; far more
 * is not a config, and decoding it would cost ~200 bytes a value. */
#define JSR_JSON_CONFIG_MAX_VALUES 100000

/* Strings are bytes, not UTF-8 text: the journal's paths, which are
 * whatever bytes the file system holds.  Parsing does not check UTF-8;
 * writing escapes only '"', '\' and control bytes (\u00XX), so any path
 * comes back as it was. */
#define JSR_JSON_BYTES 1
/* Writing: two spaces per level, ": " after keys (files people read). */
#define JSR_JSON_PRETTY 2

typedef enum {
    JSR_JSON_NULL,
    JSR_JSON_FALSE,
    JSR_JSON_TRUE,
    JSR_JSON_INT,    /* fits int64: integer */
    JSR_JSON_NUMBER, /* any other number: str is its exact text */
    JSR_JSON_STRING,
    JSR_JSON_ARRAY,
    JSR_JSON_OBJECT
} jsr_json_type;

/* A value: a node of a tree (jsr_json_parse), or what the parser hands a
 * sink (only the scalar fields set). */
typedef struct jsr_json jsr_json;
struct jsr_json {
    jsr_json_type type;
    long long integer;        /* INT */
    const char *str;          /* STRING: decoded, NUL-terminated; NUMBER: its text */
    size_t len;
    const char *raw;          /* STRING: its spelling in the input (quotes included) when */
    size_t rawlen;            /* that is not Go's; else NULL */
    const char *key;          /* a member of an object: its key, decoded, NUL-terminated, */
    size_t keylen;            /* and the key's spelling when not Go's (else NULL) */
    const char *rawkey;
    size_t rawkeylen;
    jsr_json *first, *last;   /* ARRAY, OBJECT: members in file order */
    size_t count;
    jsr_json *next;
};

/* What the parser found, in file order.  Each returns NULL to go on or a
 * message (static or in the sink's own memory), which stops the parse as
 * "<message> at byte N".  open and close come with an ARRAY or OBJECT;
 * key before each member of an object (its str, len and raw set). */
typedef struct {
    const char *(*open)(void *ud, jsr_json_type type);
    const char *(*key)(void *ud, const jsr_json *key);
    const char *(*scalar)(void *ud, const jsr_json *v);
    const char *(*close)(void *ud, jsr_json_type type);
} jsr_json_sink;

typedef struct {
    size_t max_values; /* more values are refused ("more than N values"); 0: no limit */
    int flags;         /* JSR_JSON_BYTES */
    size_t *used;      /* NULL: the text must be one value; else the value may be followed
                        * by more, and *used is where it ended (spaces after it skipped) */
    size_t offset;     /* where text starts in what the caller reads: messages name
                        * byte offset + k */
} jsr_json_opts;

/* The parser's scratch memory: reused across calls (init once, free when
 * done); the Lua binding keeps one in a userdata, so an error raised by a
 * sink leaks nothing. */
typedef struct {
    jsr_buf str, canon;
} jsr_json_scratch;

void jsr_json_scratch_init(jsr_json_scratch *s);
void jsr_json_scratch_free(jsr_json_scratch *s);

/* Parses text[0, len) into sink.  Returns 1, or 0 with a message that
 * names the byte offset in err; *values (may be NULL) counts the values
 * read, also on failure. */
int jsr_json_parse_into(const char *text, size_t len, const jsr_json_opts *opts,
                        const jsr_json_sink *sink, void *ud, jsr_json_scratch *scratch,
                        size_t *values, char *err, size_t errlen);

/* A tree: the root, and the memory of all its nodes and strings. */
typedef struct jsr_json_doc jsr_json_doc;

/* Parses text into a tree (opts may be NULL): NULL with err set on
 * failure, duplicate keys refused ("duplicate key \"k\" at byte N"). */
jsr_json_doc *jsr_json_parse(const char *text, size_t len, const jsr_json_opts *opts,
                             char *err, size_t errlen);
const jsr_json *jsr_json_root(const jsr_json_doc *doc);
void jsr_json_doc_free(jsr_json_doc *doc);

/* The member key of an object (NULL if none, or obj not an object). */
const jsr_json *jsr_json_get(const jsr_json *obj, const char *key);

/* ------------------------------------------------------------ writing */

typedef struct {
    jsr_buf *out;
    int flags; /* JSR_JSON_BYTES, JSR_JSON_PRETTY */
    int depth;
    int empty;     /* the innermost open container has no member yet */
    int after_key; /* a key was written; its value comes next */
} jsr_json_writer;

/* Out of memory shows as out->failed. */
void jsr_json_writer_init(jsr_json_writer *w, jsr_buf *out, int flags);
/* type: JSR_JSON_ARRAY or JSR_JSON_OBJECT */
void jsr_json_w_open(jsr_json_writer *w, jsr_json_type type);
void jsr_json_w_close(jsr_json_writer *w, jsr_json_type type);
void jsr_json_w_key(jsr_json_writer *w, const char *s, size_t n);
/* A key in the spelling it had (quotes included), written as it is. */
void jsr_json_w_key_raw(jsr_json_writer *w, const char *raw, size_t n);
void jsr_json_w_string(jsr_json_writer *w, const char *s, size_t n);
/* A value written as it is: a string's original spelling, a number's
 * exact text, true, false or null. */
void jsr_json_w_raw(jsr_json_writer *w, const char *text, size_t n);
void jsr_json_w_int(jsr_json_writer *w, long long v);

/* Writes the tree v (its members in order, strings in their original
 * spelling). */
void jsr_json_w_value(jsr_json_writer *w, const jsr_json *v);

/* Appends s as a JSON string: Go's escapes, or with JSR_JSON_BYTES in
 * flags the journal's (see above). */
void jsr_json_put_string(jsr_buf *out, const char *s, size_t n, int flags);

#endif
