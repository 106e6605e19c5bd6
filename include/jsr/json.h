/* Exact JSON for meta.inf files.
 *
 * The server reads meta.inf with Go's encoding/json into int64/uint64
 * fields, so numbers must survive untouched (lua-cjson turns 604800000000000
 * into 6.048e+14 and the stream is refused).  The codec therefore:
 *   - decodes integers that fit int64 as Lua integers, and every other
 *     number as a boxed value (jsr.json.number) holding its exact text;
 *   - remembers each object's key order, so re-encoding keeps it;
 *   - remembers the original spelling of a string whose escapes differ from
 *     Go's, so an unchanged file re-encodes byte for byte;
 *   - encodes everything else as Go does (compact, <>& and U+2028/9
 *     escaped, \u00XX for other control bytes).
 * Strict on input: invalid UTF-8, duplicate keys, trailing data, nesting
 * deeper than JSR_JSON_MAX_DEPTH, more values than a caller's limit are
 * errors, each with a byte offset. */
#ifndef JSR_JSON_H
#define JSR_JSON_H

#include <stddef.h>

#include <lua.h>

#include "jsr/buf.h"

#define JSR_JSON_MAX_DEPTH 200
/* Values in one stream or consumer config (meta.inf, or an assignment in
 * a Raft entry): a config with 10,000 subjects has about 10,050; far more
 * is not a config, and decoding it would cost ~200 bytes a value. */
#define JSR_JSON_CONFIG_MAX_VALUES 100000

/* Registers the metatables and the key-order registry in L. Call once per
 * state before the functions below. */
void jsr_json_setup(lua_State *L);

/* Pushes the decoded value and returns 1, or returns 0 with a message (that
 * names the byte offset) in err and the stack as it was. */
int jsr_json_decode(lua_State *L, const char *text, size_t len, char *err,
                    size_t errlen);

/* The same, refusing input with more than max_values values (0: no
 * limit): "more than N values at byte B". */
int jsr_json_decode_max(lua_State *L, const char *text, size_t len, size_t max_values,
                        char *err, size_t errlen);

/* Appends the encoding of the value at idx to out.  Returns 1, or 0 with a
 * message in err naming the offending key path. */
int jsr_json_encode(lua_State *L, int idx, jsr_buf *out, char *err,
                    size_t errlen);

/* Pushes the null sentinel (a light userdata) used for JSON null. */
void jsr_json_pushnull(lua_State *L);

/* Lua functions for the jsr.json table. */
int jsr_json_l_decode(lua_State *L);
int jsr_json_l_encode(lua_State *L);
int jsr_json_l_number(lua_State *L);
int jsr_json_l_object(lua_State *L);
int jsr_json_l_array(lua_State *L);
int jsr_json_l_keys(lua_State *L);
int jsr_json_l_fields(lua_State *L);

#endif
