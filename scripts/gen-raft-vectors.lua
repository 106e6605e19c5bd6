-- Writes S2 test vectors from a real store: compressed stream-message
-- entries (op 14) out of the streams' Raft logs, each with what the same
-- message is in the stream's own store (subject, header and payload
-- digests).  The expected values come from the stream's message blocks,
-- whose records the block scanner checks with their HighwayHash, so they
-- do not depend on the S2 decoder under test.
--
--   js-recover run scripts/gen-raft-vectors.lua <store_dir> [max per stream] > vectors.json
--
-- <store_dir>: a node's store written by nats-server under traffic with
-- compressible payloads (a drill run with keep = true leaves them).
local jsr = require "jsr"
local json = jsr.json
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"

local store, max = ...
max = math.tointeger(tonumber(max or "12")) or 12
assert(store, "usage: gen-raft-vectors.lua <store_dir> [max]")

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function sha256(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local h = assert(io.popen("sha256sum " .. path))
  local out = h:read("l")
  h:close()
  os.remove(path)
  return out:match("^(%x+)")
end

local js = store .. "/jetstream"
local sys
for _, a in ipairs(jsr.listdir(js) or {}) do
  if jsr.lstat(js .. "/" .. a .. "/_js_/_meta_") then sys = js .. "/" .. a .. "/_js_" end
end
assert(sys, store .. ": no _js_/_meta_")
local meta = raft.meta_state(sys .. "/_meta_")
for _, f in ipairs(meta.findings) do io.stderr:write("finding: ", f.message, "\n") end
local out = json.array()
for _, s in pairs(meta.streams) do
  local entries = {}
  -- an assignment without a group (meta.findings) has no log to read
  local gname = type(s.group) == "table" and type(s.group.name) == "string" and s.group.name
  if not gname then goto next_stream end
  raft.log(sys .. "/" .. gname, function(index, ae)
    for _, e in ipairs(ae.entries) do
      if e.type == raft.NORMAL and e.data:byte(1) == raft.op.compressed_stream_msg then
        entries[#entries + 1] = { index = index, data = e.data }
      end
    end
  end)
  if #entries > 0 then
    -- the stream's own records, by sequence (clfs is 0 in a run without failures)
    local want = {}
    for _, e in ipairs(entries) do
      local lseq = string.unpack("<I8", jsr.s2.decode(e.data:sub(2)) or ("\0"):rep(8))
      want[lseq + 1] = e
    end
    local taken = 0
    blocks.scan({ name = s.name, path = js .. "/" .. s.account .. "/streams/" .. s.name, account = s.account }, {
      records = function(rec)
        local e = want[rec.seq]
        if e and rec.hash_ok and taken < max then
          taken = taken + 1
          out[#out + 1] = { stream = s.name, raft_index = e.index, entry_hex = hex(e.data), seq = rec.seq,
            subject = rec.subject, headers_sha256 = rec.headers and sha256(rec.headers) or json.null,
            payload_len = #rec.payload, payload_sha256 = sha256(rec.payload) }
        end
      end,
    })
  end
  ::next_stream::
end
io.stdout:write(require("jsr.prepare").pretty(out), "\n")
