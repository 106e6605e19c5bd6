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

/* {keyfile=, account=, context=} at index t -> the block's cipher */
static int block_cipher_of(lua_State *L, int t, const char *fn, jsr_block_cipher *bc, char *err,
                           size_t errlen)
{
    const char *keyfile, *account, *context;
    jsr_lua_keyfile_need(L, t, fn, &keyfile, &account, &context);
    jsr_cipher c;
    unsigned char seed[32], nonce[24];
    int ok = jsr_unwrap_keyfile(L, keyfile, account, context, &c, seed, nonce, err, errlen);
    ok = ok && jsr_block_cipher_init(bc, c, seed, nonce);
    sodium_memzero(seed, sizeof seed);
    if (!ok && !err[0])
        jsr_errf(err, errlen, "%s: the block cipher does not start", keyfile);
    return ok;
}

/* block_crypt(bytes, {keyfile=N.key, account=, context="STREAM:N" [, offset=n]})
 * -> bytes | nil, message
 * XORs bytes that sit at offset (default 0) of block N with its keystream:
 * decrypts what is on disk, or encrypts plaintext the way the server
 * writes that block (the same key and nonce as its N.key says, as the
 * server's own rewrite of a block does: filestore.go compact). */
static int l_block_crypt(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    lua_Integer off = 0;
    if (lua_getfield(L, 2, "offset") != LUA_TNIL)
        off = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, off >= 0, 2, "offset must not be negative");
    char err[JSR_ERRLEN] = "";
    jsr_block_cipher bc;
    if (!block_cipher_of(L, 2, "block_crypt", &bc, err, sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n);
    memcpy(out, in, n);
    int ok = jsr_block_cipher_xor(&bc, out, n, (uint64_t)off);
    jsr_block_cipher_free(&bc);
    if (!ok) {
        luaL_pushfail(L);
        lua_pushstring(L, "block_crypt: the keystream failed (libsodium/OpenSSL)");
        return 2;
    }
    luaL_pushresultsize(&b, n);
    return 1;
}

/* block_seal_new(bytes, {account=, context="STREAM:N", cipher="chacha"|"aes"})
 * -> ciphertext, N.key bytes | nil, message
 * A new block encrypted as the server creates one (filestore.go
 * genEncryptionKeys): a random seed, sealed under the key-encryption key
 * PRF(server key, account || context) with a fresh nonce (the key file),
 * and the block XORed with the seed's keystream under that nonce. */
static int l_block_seal_new(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "account");
    lua_getfield(L, 2, "context");
    lua_getfield(L, 2, "cipher");
    const char *account = luaL_checkstring(L, -3), *context = luaL_checkstring(L, -2);
    const char *cname = luaL_checkstring(L, -1);
    jsr_cipher c;
    if (strcmp(cname, "chacha") == 0)
        c = JSR_CIPHER_CHACHA;
    else if (strcmp(cname, "aes") == 0)
        c = JSR_CIPHER_AES;
    else
        return luaL_error(L, "block_seal_new: cipher %s is not chacha or aes", cname);
    if (lua_getfield(L, LUA_REGISTRYINDEX, REG_KEY) != LUA_TSTRING) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: a new encrypted block needs the server's key (--key-file or JSR_KEY)",
                        context);
        return 2;
    }
    size_t kl;
    const char *k = lua_tolstring(L, -1, &kl);
    unsigned char kek[32], seed[JSR_SEED_LEN], keyfile[24 + JSR_SEED_LEN + JSR_TAG_LEN];
    size_t klen = 0;
    randombytes_buf(seed, sizeof seed);
    int ok = jsr_prf(k, kl, account, context, kek) &&
             jsr_aead_seal(c, kek, seed, sizeof seed, keyfile, &klen);
    sodium_memzero(kek, sizeof kek);
    jsr_block_cipher bc;
    ok = ok && jsr_block_cipher_init(&bc, c, seed, keyfile);
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: the new block's key could not be made (libsodium/OpenSSL)", context);
        return 2;
    }
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n);
    memcpy(out, in, n);
    ok = jsr_block_cipher_xor(&bc, out, n, 0);
    jsr_block_cipher_free(&bc);
    if (!ok) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: the keystream failed (libsodium/OpenSSL)", context);
        return 2;
    }
    luaL_pushresultsize(&b, n);
    lua_pushlstring(L, (const char *)keyfile, klen);
    return 2;
}

/* sealed_open(path, {keyfile=, account=, context=}) -> plaintext | nil, message
 * A file sealed whole with its asset's key (o.dat under the consumer's
 * meta.key, context "STREAM.CONSUMER"), as meta.inf is. */
static int l_sealed_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *keyfile, *account, *context;
    jsr_lua_keyfile_need(L, 2, "sealed_open", &keyfile, &account, &context);
    char err[JSR_ERRLEN], *data = NULL, *plain;
    size_t n, plen;
    const char *cipher, *which;
    if (!jsr_keys_set(L)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: encrypted; reading it needs the server's key (--key-file or JSR_KEY)",
                        path);
        return 2;
    }
    if (!jsr_read_file(path, (size_t)1 << 30, &data, &n, err, sizeof err) ||
        !jsr_meta_decrypt(L, keyfile, account, context, path, data, n, &plain, &plen, &cipher,
                          &which, err, sizeof err)) {
        free(data);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    free(data);
    lua_pushlstring(L, plain, plen);
    sodium_memzero(plain, plen);
    free(plain);
    return 1;
}

/* sealed_seal(path, plaintext, {keyfile=, account=, context=}) -> bytes | nil, message
 * The bytes of path sealed as the server writes it; nothing is written. */
static int l_sealed_seal(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *plain = luaL_checklstring(L, 2, &n);
    const char *keyfile, *account, *context;
    jsr_lua_keyfile_need(L, 3, "sealed_seal", &keyfile, &account, &context);
    char err[JSR_ERRLEN], *ct;
    size_t ctlen;
    if (!jsr_meta_encrypt(L, keyfile, account, context, path, plain, n, &ct, &ctlen, err,
                          sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, ct, ctlen);
    free(ct);
    return 1;
}

static int l_has_keys(lua_State *L)
{
    lua_pushboolean(L, jsr_keys_set(L));
    return 1;
}

void jsr_crypto_register(lua_State *L)
{
    static const luaL_Reg f[] = {
        {"has_keys", l_has_keys},
        {"set_keys", l_set_keys},
        {"block_crypt", l_block_crypt},
        {"block_seal_new", l_block_seal_new},
        {"sealed_open", l_sealed_open},
        {"sealed_seal", l_sealed_seal},
        {NULL, NULL},
    };
    if (!jsr_crypto_init())
        luaL_error(L, "libsodium failed to start");
    luaL_setfuncs(L, f, 0);
}
