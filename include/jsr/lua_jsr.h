/* The `jsr` Lua module, shared by the js-recover binary and jsr.so. */
#ifndef JSR_LUA_JSR_H
#define JSR_LUA_JSR_H

#include <lauxlib.h>
#include <lua.h>

#include "jsr/crypto.h"
#include "jsr/indexdb.h"
#include "jsr/lua_bind.h"

#ifndef JSR_VERSION
#define JSR_VERSION "0.1.0"
#endif

int luaopen_jsr(lua_State *L);

/* The store_dir of the store handle (jsr.open) at stack index i; raises a
 * Lua error for anything else or a closed handle.  Valid while the handle
 * is on the stack and open. */
const char *jsr_lua_store_dir(lua_State *L, int i);

/* Adds the message block functions to the table on top of the stack. */
void jsr_block_register(lua_State *L);
/* Adds the msgs/index.db reader (lua_indexdb.c; called by jsr_block_register). */
void jsr_indexdb_register(lua_State *L);
/* The parsed index.db at stack index i (raises a Lua error otherwise). */
const jsr_indexdb *jsr_lua_indexdb(lua_State *L, int i);
/* Reads {keyfile=, account=, context=} of the table at t (an encrypted
 * block's N.key and its PRF inputs); a keyfile without the other two
 * raises an error naming fn. */
void jsr_lua_keyfile_opts(lua_State *L, int t, const char *fn, const char **keyfile,
                          const char **account, const char **context);
/* The same, all three required (a Lua error naming fn otherwise). */
void jsr_lua_keyfile_need(lua_State *L, int t, const char *fn, const char **keyfile,
                          const char **account, const char **context);

/* Adds jsr.set_keys; the helpers below use the keys it set. */
void jsr_crypto_register(lua_State *L);

/* Adds S2 decoding, Raft snapshot and peer-state readers, node_id (lua_raft.c). */
void jsr_raft_register(lua_State *L);

/* Adds block record and o.dat encoders for salvage (lua_salvage.c). */
void jsr_salvage_register(lua_State *L);

/* Adds jsr.snapshot_writer, a tar framed as an S2 stream (lua_snapshot.c). */
void jsr_snapshot_register(lua_State *L);

/* Adds jsr.nkey.role and jsr.nkey.verify for operator mode (lua_operator.c). */
void jsr_operator_register(lua_State *L);

/* Adds jsr.nats (connect, poll) and jsr.nkey.public, a small libnats client for restore (lua_nats.c). */
void jsr_nats_register(lua_State *L);

/* Adds jsr.layout: layout.h's names and paths (lua_layout.c). */
void jsr_layout_register(lua_State *L);
int jsr_keys_set(lua_State *L);
/* meta.inf ciphertext -> malloc'd plaintext (NUL-terminated), with the
 * cipher's name and which key ("key", "previous key") opened it. */
int jsr_meta_decrypt(lua_State *L, const char *keyfile, const char *account,
                     const char *context, const char *path, const char *ct, size_t ctlen,
                     char **plain, size_t *plen, const char **cipher, const char **which,
                     char *err, size_t errlen);
/* A block's N.key -> its cipher, seed and nonce (needs the keys). */
int jsr_unwrap_keyfile(lua_State *L, const char *keyfile, const char *account,
                       const char *context, jsr_cipher *c, unsigned char seed[32],
                       unsigned char nonce[24], char *err, size_t errlen);
/* plaintext -> malloc'd ciphertext under the asset key meta.key holds */
int jsr_meta_encrypt(lua_State *L, const char *keyfile, const char *account,
                     const char *context, const char *path, const char *plain, size_t len,
                     char **ct, size_t *ctlen, char *err, size_t errlen);

#endif
