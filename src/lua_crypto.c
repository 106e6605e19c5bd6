/* Encrypted meta files for the jsr module: the server's key (and the
 * previous one, while rotating) are set once with jsr.set_keys and used by
 * read_meta and write_meta; they never appear in messages. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>

#include "jsr/crypto.h"
#include "jsr/fsops.h"
#include "jsr/lua_jsr.h"

#define REG_KEY "jsr.key"
#define REG_PREV "jsr.key.previous"
#define KEYFILE_MAX 4096

/* set_keys{key=, previous=} or set_keys(nil) to forget them */
static int l_set_keys(lua_State *L)
{
    const char *names[2] = {"key", "previous"}, *regs[2] = {REG_KEY, REG_PREV};
    for (int i = 0; i < 2; i++) {
        if (lua_istable(L, 1)) {
            lua_getfield(L, 1, names[i]);
            if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
                return luaL_error(L, "set_keys: %s must be a string", names[i]);
        } else {
            luaL_argcheck(L, lua_isnoneornil(L, 1), 1, "a table {key=, previous=} or nil");
            lua_pushnil(L);
        }
        if (lua_isstring(L, -1) && lua_rawlen(L, -1) == 0)
            return luaL_error(L, "set_keys: %s is empty", names[i]);
        lua_setfield(L, LUA_REGISTRYINDEX, regs[i]);
    }
    return 0;
}

int jsr_keys_set(lua_State *L)
{
    int set = lua_getfield(L, LUA_REGISTRYINDEX, REG_KEY) == LUA_TSTRING;
    lua_pop(L, 1);
    return set;
}

/* Opens dir's meta.key with the current key, then the previous one. */
static int unwrap(lua_State *L, const char *keyfile, const char *account, const char *context,
                  jsr_cipher *c, unsigned char seed[32], unsigned char nonce[24],
                  const char **which, char *err, size_t errlen)
{
    char *file;
    size_t flen;
    if (!jsr_read_file(keyfile, KEYFILE_MAX, &file, &flen, err, errlen))
        return 0;
    const char *regs[2] = {REG_KEY, REG_PREV}, *names[2] = {"key", "previous key"};
    int ok = 0;
    for (int i = 0; i < 2 && !ok; i++) {
        if (lua_getfield(L, LUA_REGISTRYINDEX, regs[i]) == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -1, &kl);
            unsigned char kek[32];
            if (!jsr_prf(k, kl, account, context, kek)) {
                lua_pop(L, 1);
                free(file);
                return jsr_errf(err, errlen, "%s: HMAC failed (OpenSSL)", keyfile);
            }
            ok = jsr_unwrap_seed(kek, (unsigned char *)file, flen, c, seed, nonce);
            sodium_memzero(kek, sizeof kek);
            if (ok)
                *which = names[i];
        }
        lua_pop(L, 1);
    }
    free(file);
    if (!ok)
        return jsr_errf(err, errlen,
                        "%s: neither key opens it (authentication failed: a wrong key, a "
                        "truncated or tampered file, or account %s / context %s differ)",
                        keyfile, account, context);
    return 1;
}

int jsr_meta_decrypt(lua_State *L, const char *keyfile, const char *account,
                     const char *context, const char *path, const char *ct, size_t ctlen,
                     char **plain, size_t *plen, const char **cipher, const char **which,
                     char *err, size_t errlen)
{
    jsr_cipher c;
    unsigned char seed[32], nonce[24];
    if (!unwrap(L, keyfile, account, context, &c, seed, nonce, which, err, errlen))
        return 0;
    char *out = malloc(ctlen + 1);
    if (!out) {
        sodium_memzero(seed, sizeof seed);
        return jsr_errf(err, errlen, "%s: out of memory", path);
    }
    int ok = jsr_aead_open(c, seed, (const unsigned char *)ct, ctlen, (unsigned char *)out, plen);
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        free(out);
        return jsr_errf(err, errlen,
                        "%s: its meta.key opens but the file does not authenticate "
                        "(tampered or truncated ciphertext)", path);
    }
    out[*plen] = 0;
    *plain = out;
    *cipher = jsr_cipher_name(c);
    return 1;
}

int jsr_meta_encrypt(lua_State *L, const char *keyfile, const char *account,
                     const char *context, const char *path, const char *plain, size_t len,
                     char **ct, size_t *ctlen, char *err, size_t errlen)
{
    if (!jsr_keys_set(L))
        return jsr_errf(err, errlen, "%s: encrypted; writing it needs the server's key "
                                     "(--key-file or JSR_KEY)", path);
    jsr_cipher c;
    unsigned char seed[32], nonce[24];
    const char *which;
    if (!unwrap(L, keyfile, account, context, &c, seed, nonce, &which, err, errlen))
        return 0;
    unsigned char *out = malloc(len + 64);
    if (!out) {
        sodium_memzero(seed, sizeof seed);
        return jsr_errf(err, errlen, "%s: out of memory", path);
    }
    /* same asset key and cipher as before, a fresh nonce: meta.key stays */
    int ok = jsr_aead_seal(c, seed, (const unsigned char *)plain, len, out, ctlen);
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        free(out);
        return jsr_errf(err, errlen, "%s: encryption failed", path);
    }
    *ct = (char *)out;
    return 1;
}

int jsr_unwrap_keyfile(lua_State *L, const char *keyfile, const char *account,
                       const char *context, jsr_cipher *c, unsigned char seed[32],
                       unsigned char nonce[24], char *err, size_t errlen)
{
    const char *which;
    if (!jsr_keys_set(L))
        return jsr_errf(err, errlen, "%s: encrypted; needs the server's key", keyfile);
    return unwrap(L, keyfile, account, context, c, seed, nonce, &which, err, errlen);
}

static int l_has_keys(lua_State *L)
{
    lua_pushboolean(L, jsr_keys_set(L));
    return 1;
}

void jsr_crypto_register(lua_State *L)
{
    lua_pushcfunction(L, l_has_keys);
    lua_setfield(L, -2, "has_keys");
    if (!jsr_crypto_init())
        luaL_error(L, "libsodium failed to start");
    lua_pushcfunction(L, l_set_keys);
    lua_setfield(L, -2, "set_keys");
}
