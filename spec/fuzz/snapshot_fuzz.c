/* libFuzzer target for Raft snapshot files (jsr.raft.snapshot in
 * src/lua_raft.c) and what is read out of them: the meta group's snapshot
 * (S2-compressed JSON of every stream and consumer assignment, through
 * raft.meta_state) and a consumer group's (o.dat bytes, as lost.lua and
 * salvage.lua read it).  Input: one mode byte, then the snapshot file
 * without its 8-byte checksum.  Mode bit 0: append the correct checksum
 * (else the last 8 bytes are the file's own), so most inputs get past it;
 * bit 1: the data after the peer state is plain text, stored as an S2
 * block of literals, so the JSON reader is fuzzed behind a valid S2 layer
 * too.  Nothing may raise; a refused snapshot is a noted problem. */
#include <stdint.h>

#include "fuzz_lua.h"

static const char *script =
    "local b = ...\n"
    "local mode = b:byte(1) or 0\n"
    "b = b:sub(2)\n"
    "local dir = STORE .. '/jetstream/$SYS/_js_/_meta_'\n"
    "if not jsr.lstat(dir) then assert(os.execute(\"mkdir -p '\" .. dir .. \"/snapshots'\")) end\n"
    "if mode & 2 ~= 0 and #b >= 20 then\n"
    "  local pslen = string.unpack('<I4', b, 17)\n"
    "  if 20 + pslen <= #b then b = b:sub(1, 20 + pslen) .. FUZZ_S2(b:sub(21 + pslen)) end\n"
    "end\n"
    "if mode & 1 ~= 0 then b = b .. FUZZ_HH64('_meta_', b) end\n"
    "local path = dir .. '/snapshots/snap.1.1'\n"
    "FUZZ_WRITE(path, b)\n"
    "local snap, err = jsr.raft.snapshot(path)\n"
    "if not snap then assert(type(err) == 'string', 'refused without a message')\n"
    "else\n"
    "  assert(math.type(snap.term) == 'integer' and math.type(snap.index) == 'integer')\n"
    "  assert(type(snap.data) == 'string' and snap.bytes == #b and snap.group == '_meta_')\n"
    "  if mode & 1 ~= 0 then assert(snap.hash_ok, 'a correct checksum did not match') end\n"
    "  if snap.peer_state then assert(math.type(snap.peer_state.cluster_size) == 'integer') end\n"
    "  local cs, cerr = raft.consumer_state(snap.data)\n"
    "  assert(cs or type(cerr) == 'string')\n"
    "end\n"
    "FUZZ_META_OK(raft.meta_state(dir))\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsr_fuzz_run(jsr_fuzz_lua(script), data, size);
    return 0;
}
