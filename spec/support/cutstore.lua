--- A stream store that lost its newest writes, as after a crash: the
-- stream's blocks rewritten as one block holding only its live records
-- at or below keep, without index files (the server rebuilds them).
--
--   local cut = require "spec.support.cutstore"
--   local kept = cut(stream_dir, "NAME", "ACME", keep, {torn = "load.a"})
--
-- opts.torn: end the block in a crash's partial record (a header that
-- announces a record on that subject, cut after 40 bytes).
-- opts.cipher ("chacha" | "aes"): an encrypted store (the server's key set
-- with jsr.set_keys): the block is written encrypted under a new 1.key,
-- as the server writes a new block.
local jsr = require "jsr"
local blocks = require "jsr.blocks"

return function(sdir, name, account, keep, opts)
  local recs = {}
  blocks.scan({ name = name, path = sdir, account = account }, {
    records = function(rec)
      if not rec.deleted and not rec.tombstone and rec.seq <= keep then recs[#recs + 1] = rec end
    end,
  })
  assert(os.execute("rm -f '" .. sdir:gsub("'", [['\'']]) .. "'/msgs/*"))
  local parts = {}
  for i, r in ipairs(recs) do
    parts[i] = jsr.block_record(name .. "-1", r.seq, r.ts, r.subject, r.headers, r.payload)
  end
  if opts and opts.torn then
    parts[#parts + 1] = jsr.block_record(name .. "-1", keep + 1, 1, opts.torn, nil, ("t"):rep(170)):sub(1, 40)
  end
  local function put(path, data)
    local f = assert(io.open(path, "wb"))
    assert(f:write(data))
    assert(f:close())
  end
  if #parts > 0 then
    local data = table.concat(parts)
    if opts and opts.cipher then
      local key
      data, key = assert(jsr.block_seal_new(data, { account = account, context = name .. ":1",
                                                    cipher = opts.cipher }))
      put(sdir .. "/msgs/1.key", key)
    end
    put(sdir .. "/msgs/1.blk", data)
  end
  return #recs
end
