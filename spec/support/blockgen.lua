-- Writes stream stores the way nats-server 2.9 lays them out (meta.inf,
-- meta.sum, msgs/N.blk records with their keyed hashes, no index files, so
-- a server rebuilds its state from the records).  Specs use it to make
-- blocks a server has never seen, and prove with a real server that it
-- loads them; the bench uses it to make gigabytes quickly.
local jsr = require "jsr"

local M = {}

local function unhex(h)
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- One record.  deleted sets the deleted bit; headers may be nil.
function M.record(key_name, seq, ts, subject, headers, payload, deleted)
  local rawseq = deleted and (seq | math.mininteger) or seq
  local hashed = string.pack("<i8i8", rawseq, ts) .. subject .. (headers or "") .. payload
  local hash = unhex(jsr.metasum(key_name, hashed))
  local body = headers and (subject .. string.pack("<I4", #headers) .. headers .. payload)
    or (subject .. payload)
  local rl = 22 + #body + 8
  return string.pack("<I4i8i8I2", rl | (headers and 0x80000000 or 0), rawseq, ts, #subject)
    .. body .. hash
end

local META = '{"Created":"2026-11-26T03:22:31.820303459Z","name":%s,"subjects":[%s],'
  .. '"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,'
  .. '"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file",'
  .. '"num_replicas":1,"duplicate_window":120000000000,"allow_direct":false,'
  .. '"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,'
  .. '"allow_rollup_hdrs":false}'

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

-- stream(js_dir, account, name, subject_filter) -> stream dir; writes the
-- meta files (R1, limits) and an empty msgs/.
function M.stream(js_dir, account, name, filter)
  local dir = ("%s/%s/streams/%s"):format(js_dir, account, name)
  assert(os.execute(("mkdir -p '%s/msgs'"):format(dir)))
  local meta = META:format(jsr.json.encode(name), jsr.json.encode(filter or (name:lower() .. ".>")))
  write(dir .. "/meta.inf", meta)
  write(dir .. "/meta.sum", jsr.metasum(name, meta))
  return dir
end

-- block(dir, name, index, records) writes msgs/<index>.blk from a list of
-- {seq=, ts=, subject=, headers=, payload=, deleted=}; returns its bytes.
function M.block(dir, name, index, records)
  local parts = {}
  local key = name .. "-" .. index
  for i, r in ipairs(records) do
    parts[i] = M.record(key, r.seq, r.ts or (1795663356000000000 + r.seq), r.subject or "x.y",
      r.headers, r.payload or "", r.deleted)
  end
  local data = table.concat(parts)
  write(("%s/msgs/%d.blk"):format(dir, index), data)
  return data
end

return M
