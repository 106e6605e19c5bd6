/* Operator mode's C helpers (lua/jsr/operator.lua): NATS nkey public keys
 * and ed25519 signatures, so inspect and prepare can check that an account
 * JWT found on a disk was signed by the operator it names (jsr.nkey.role,
 * jsr.nkey.verify).  A public key is base32 (RFC 4648, no padding) of
 * a prefix byte (the key's role: 'O' operator, 'A' account, 'U' user), the
 * 32-byte ed25519 key and a CRC-16 (XMODEM) of both, low byte first. */
#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>
#include <string.h>

#include "jsr/lua_bind.h"
#include "jsr/lua_jsr.h"

#define NKEY_RAW 35 /* prefix + key + crc */

static int b32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

static unsigned crc16(const unsigned char *p, size_t n)
{
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

/* Decodes a public nkey into its role letter and 32-byte key; returns a
 * reason on failure, NULL when it is well formed. */
static const char *decode(const char *s, size_t len, char *role, unsigned char key[32])
{
    unsigned char raw[NKEY_RAW];
    if (len != 56)
        return "not 56 characters long";
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b32_value(s[i]);
        if (v < 0)
            return "holds a character outside base32";
        acc = (acc << 5) | (unsigned long)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (n == NKEY_RAW)
                return "too long";
            raw[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (n != NKEY_RAW)
        return "too short";
    unsigned want = raw[33] | (unsigned)raw[34] << 8;
    if (crc16(raw, 33) != want)
        return "its checksum is wrong";
    *role = (char)('A' + (raw[0] >> 3)); /* the prefix is the role's base32 value << 3 */
    if (raw[0] >> 3 >= 26)
        return "its role byte is not a letter";
    memcpy(key, raw + 1, 32);
    return NULL;
}

/* jsr.nkey_verify(pubkey, message, signature) -> true | false, why
 * signature: the 64 raw bytes; why names what is wrong. */
static int l_nkey_verify(lua_State *L)
{
    size_t klen, mlen, slen;
    const char *pk = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    const char *sig = luaL_checklstring(L, 3, &slen);
    unsigned char key[32];
    char role;
    const char *why = decode(pk, klen, &role, key);
    if (why) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "the public key %s %s", pk, why);
        return 2;
    }
    if (slen != crypto_sign_BYTES) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "the signature is %d bytes, not %d", (int)slen, (int)crypto_sign_BYTES);
        return 2;
    }
    if (crypto_sign_verify_detached((const unsigned char *)sig, (const unsigned char *)msg, mlen, key) != 0) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "the signature does not verify with %s", pk);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* jsr.nkey_role(pubkey) -> "O" | "A" | "U" | ... or nil, why */
static int l_nkey_role(lua_State *L)
{
    size_t klen;
    const char *pk = luaL_checklstring(L, 1, &klen);
    unsigned char key[32];
    char role;
    const char *why = decode(pk, klen, &role, key);
    if (why)
        return jsr_push_fail(L, "%s", why);
    lua_pushlstring(L, &role, 1);
    return 1;
}

void jsr_operator_register(lua_State *L)
{
    static const luaL_Reg nkey[] = {{"verify", l_nkey_verify}, {"role", l_nkey_role}, {NULL, NULL}};
    jsr_lua_subtable(L, "nkey", nkey);
}
