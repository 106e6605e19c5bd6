-- Bench helper: writes a store of message blocks the way nats-server 2.9
-- lays them out, with a realistic mix: payloads from 16 B to 64 KB
-- (log-uniform), headers on a fifth of the messages, a twentieth of the
-- records deleted markers.  No index files, so a server rebuilds from them.
-- usage: lua5.4 scripts/gen-blocks.lua <store_dir> <total MiB> [streams] [block MiB]
package.cpath = (os.getenv("JSR_BUILD") or "build") .. "/?.so;" .. package.cpath
package.path = "./?.lua;" .. package.path
local gen = require "spec.support.blockgen"

local store, total_mib = arg[1], tonumber(arg[2])
local nstreams, block_mib = tonumber(arg[3] or "8"), tonumber(arg[4] or "8")
assert(store and total_mib, "usage: gen-blocks.lua <store_dir> <total MiB> [streams] [block MiB]")
math.randomseed(42)
local noise = {}
for i = 1, 65536 do noise[i] = string.char(math.random(0, 255)) end
noise = table.concat(noise)
local hdr = "NATS/1.0\r\nNats-Msg-Id: %d\r\nTrace: abcdef\r\n\r\n"

local per_stream = total_mib * 1048576 // nstreams
local records, deleted = 0, 0
for s = 1, nstreams do
  local name = ("BENCH%02d"):format(s)
  local dir = gen.stream(store .. "/jetstream", "$G", name)
  local seq, written, index = 0, 0, 0
  while written < per_stream do
    index = index + 1
    local recs, bytes = {}, 0
    while bytes < block_mib * 1048576 and written + bytes < per_stream do
      seq = seq + 1
      local size = math.floor(16 * (4096 ^ math.random())) -- 16 B .. 64 KB
      local off = math.random(1, 65536 - size + 1)
      local r = { seq = seq, subject = ("bench.%d.%d"):format(s, seq % 100),
        payload = noise:sub(off, off + size - 1) }
      if seq % 5 == 0 then r.headers = hdr:format(seq) end
      if seq % 20 == 7 then r = { seq = seq, deleted = true } deleted = deleted + 1 end
      recs[#recs + 1] = r
      bytes = bytes + 30 + #(r.subject or "x.y") + #(r.payload or "") + (r.headers and #r.headers + 4 or 0)
    end
    written = written + #gen.block(dir, name, index, recs)
    records = records + #recs
  end
end
io.write(("generated %d streams, %d records (%d deleted markers), %d MiB\n"):format(
  nstreams, records, deleted, total_mib))
