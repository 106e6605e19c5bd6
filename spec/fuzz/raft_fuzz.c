/* libFuzzer target for the Raft log readers (lua/jsr/raft.lua over
 * src/lua_raft.c, src/s2.c, src/json.c): the input is one append entry.
 * It is decoded directly, every entry's data goes through the payload
 * parsers (stream message, consumer update, consumer state, peer state),
 * and then it is stored as the only record of a meta group's log (with a
 * correct record hash, so the reader gets past the block checks) whose
 * peers.idx and tav.idx hold the same bytes, and the meta group's state is
 * rebuilt from it: meta assignments (JSON), compressed consumer
 * assignments and snapshot entries (S2).  Every parser must answer bad
 * input with nil and a message or a noted problem, never raise. */
#include <stdint.h>

#include "fuzz_lua.h"

static const char *script =
    "local b = ...\n"
    "local dir = STORE .. '/jetstream/$SYS/_js_/_meta_'\n"
    "if not jsr.lstat(dir) then assert(os.execute(\"mkdir -p '\" .. dir .. \"/msgs'\")) end\n"
    "local function str_or_nil(v) return v == nil or type(v) == 'string' end\n"
    "local ae, err = raft.decode_append_entry(b)\n"
    "if not ae then assert(type(err) == 'string', 'refused without a message')\n"
    "else\n"
    "  assert(#ae.leader == 8 and type(ae.rest) == 'string')\n"
    "  for _, e in ipairs(ae.entries) do\n"
    "    assert(math.type(e.type) == 'integer' and type(e.data) == 'string')\n"
    "    local m, merr = raft.stream_msg(e.data)\n"
    "    assert(m or type(merr) == 'string')\n"
    "    if m then assert(type(m.subject) == 'string' and type(m.payload) == 'string'\n"
    "                     and str_or_nil(m.headers) and str_or_nil(m.reply)) end\n"
    "    local u = raft.consumer_update(e.data)\n"
    "    if u then assert(math.type(u.dseq) == 'integer' and math.type(u.sseq) == 'integer') end\n"
    "    local cs, cerr = raft.consumer_state(e.data)\n"
    "    assert(cs or type(cerr) == 'string')\n"
    "    local ps, perr = jsr.raft.peer_state(e.data)\n"
    "    assert(ps or type(perr) == 'string')\n"
    "  end\n"
    "end\n"
    "FUZZ_WRITE(dir .. '/msgs/1.blk', jsr.block_record('_meta_-1', 1, 1, '', nil, b))\n"
    "FUZZ_WRITE(dir .. '/peers.idx', b)\n"
    "FUZZ_WRITE(dir .. '/tav.idx', b)\n"
    "FUZZ_META_OK(raft.meta_state(dir))\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsr_fuzz_run(jsr_fuzz_lua(script), data, size);
    return 0;
}
