/* libFuzzer target for consumer state (o.dat, and a consumer group's
 * snapshot data): the decoder raft.consumer_state (lua/jsr/raft.lua) and
 * the encoder salvage writes o.dat with (jsr.odat.encode,
 * src/lua_salvage.c).  Properties: the decoder answers bad bytes with nil
 * and a message; every state it accepts encodes (salvage encodes what it
 * read plus the log's updates, unprotected), the encoding decodes to the
 * same state, and encodes again to the same bytes. */
#include <stdint.h>

#include "fuzz_lua.h"

static const char *script =
    "local b = ...\n"
    "local st, err = raft.consumer_state(b)\n"
    "if not st then assert(type(err) == 'string', 'refused without a message') return end\n"
    "local enc = jsr.odat.encode(st)\n"
    "local st2 = assert(raft.consumer_state(enc))\n"
    "local function same(a, c, what)\n"
    "  for k, v in pairs(a) do\n"
    "    local w = c[k]\n"
    "    if type(v) == 'table' then assert(type(w) == 'table', what) same(v, w, what)\n"
    "    elseif k ~= 'pending_count' then assert(v == w, what .. ' ' .. tostring(k)) end\n"
    "  end\n"
    "end\n"
    "same(st, st2, 'decoded state lost in encoding')\n"
    "same(st2, st, 'encoding added to the state')\n"
    "assert(jsr.odat.encode(st2) == enc, 'encoding not stable')\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsr_fuzz_run(jsr_fuzz_lua(script), data, size);
    return 0;
}
