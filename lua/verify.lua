-- js-recover verify <store> [STREAM...] [--json]
--
-- Reads every message block of the store (or of the named streams: NAME or
-- ACCOUNT/NAME) and checks every record: its length, its checksum, that
-- sequences only go up, and that the block's index file (N.idx) agrees.
-- Changes nothing.  Per stream: blocks and records checked, live and
-- deleted messages, first and last sequence and time, bytes; every problem
-- with its block file, byte offset and sequence.
--
-- A partial last record of the last block is a crash's torn tail (the
-- server drops it) and is reported as such, not as corruption; so is an
-- index file that lags its block.  2.10+: msgs/index.db is read and used
-- as the server uses it (its delete maps, when the server would trust
-- it; otherwise the blocks and their tombstones), so the live count is
-- the server's; one it would not trust, or of a newer version than
-- js-recover knows, is a note.  Compressed blocks are decoded and
-- checked; encrypted ones need the key.
--
-- options:
--   --json    print the results as JSON (no progress display)
--   --key-file F, --prev-key-file F
--             the server's encryption key (or JSR_KEY, JSR_PREV_KEY) for an
--             encrypted store; without it, encrypted entries are listed as such
--
-- Exit code 1 when anything is corrupt.
local jsr = require("jsr")
local blocks = require("jsr.blocks")
local cli = require("jsr.cli")
local tbl = require("jsr.table")
local pretty = require("jsr.print").pretty
local json = jsr.json

local keys = require("jsr.keys")
local opts, args = cli.parse({ ... }, keys.with { json = "flag" })
if not opts or #args < 1 then
  return cli.fail("verify", 2, opts and "expected <store>" or args, "\n",
    "usage: js-recover verify <store> [STREAM...] [--json] [--key-file F]\n")
end
local m, code = cli.scan("verify", opts, args[1])
if not m then return code end

local wanted, found = {}, {}
for i = 2, #args do wanted[args[i]] = true end
local streams = {}
for _, s in ipairs(m.streams) do
  local full = s.account .. "/" .. s.name
  if #args == 1 or wanted[s.name] or wanted[full] then
    streams[#streams + 1] = s
    found[s.name], found[full] = true, true
  end
end
for name in pairs(wanted) do
  if not found[name] then
    io.stderr:write("js-recover verify: no stream ", name, " in ", m.store.store_dir, "\n")
    return 2
  end
end

-- Progress on a terminal only: bytes and streams done, rate.
local show = not opts.json and jsr.isatty(2)
local total = 0
for _, s in ipairs(streams) do s.block_bytes = blocks.size(s); total = total + s.block_bytes end
local t0 = jsr.monotime()
local done, last_draw = 0, 0
local function draw(nstreams, final)
  if not show then return end
  local now = jsr.monotime()
  if not final and now - last_draw < 0.2 then return end
  last_draw = now
  local rate = done / math.max(now - t0, 1e-6)
  io.stderr:write(("\r%s of %s, %d/%d streams, %s/s   "):format(tbl.bytes(done), tbl.bytes(total),
    nstreams, #streams, tbl.bytes(math.floor(rate))))
  if final then io.stderr:write("\r", string.rep(" ", 70), "\r") end
end

local results, corrupt = {}, false
for i, s in ipairs(streams) do
  local r = blocks.scan(s, { progress = function(n) done = done + n; draw(i - 1) end })
  r.meta_encrypted = s.encrypted or false
  results[#results + 1] = r
  if r.corrupt then corrupt = true end
end
draw(#streams, true)
local seconds = jsr.monotime() - t0

local function iso(ns)
  if not ns or ns == 0 then return "" end
  local sec = ns // 1000000000
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. (".%09dZ"):format(ns % 1000000000)
end

if opts.json then
  local out = json.object()
  out.store_dir = m.store.store_dir
  out.streams = json.array()
  for _, r in ipairs(results) do
    for _, p in ipairs(r.problems) do json.object(p) end
    r.problems = json.array(r.problems)
    r.first_time, r.last_time = iso(r.first_ts), iso(r.last_ts)
    out.streams[#out.streams + 1] = r
  end
  out.bytes = done
  out.seconds = json.number(("%.3f"):format(seconds))
  out.corrupt = corrupt
  io.stdout:write(pretty(out), "\n")
  return corrupt and 1 or 0
end

local rows = {}
for _, r in ipairs(results) do
  local status = "ok"
  if r.corrupt then status = "CORRUPT"
  elseif r.unchecked_blocks > 0 then status = r.encrypted_blocks > 0 and "encrypted" or "compressed"
  elseif r.newer then status = "newer server (see notes)"
  elseif #r.problems > 0 then status = "ok (see notes)" end
  rows[#rows + 1] = { r.account, r.stream, r.blocks, r.records, r.live, r.deleted,
    r.first_seq, r.last_seq, iso(r.first_ts):sub(1, 19), iso(r.last_ts):sub(1, 19),
    tbl.bytes(r.bytes), status }
end
io.stdout:write(tbl.render(("Message blocks in %s"):format(m.store.store_dir),
  { "Account", "Stream", "Blocks", "Records", "Live", "Deleted", "First seq", "Last seq",
    "First time (UTC)", "Last time (UTC)", "Bytes", "Status" }, rows))
local nprob = 0
for _, r in ipairs(results) do
  for _, p in ipairs(r.problems) do
    nprob = nprob + 1
    io.stdout:write(("%s %s > %s: %s%s%s: %s: %s\n"):format(p.corrupt and "CORRUPT" or "note",
      r.account, r.stream, p.block or r.path, p.offset and (" at byte " .. p.offset) or "",
      p.seq and (" seq " .. p.seq) or "", p.kind, p.message))
  end
end
io.stdout:write(("\n%d streams, %s in %.2f s (%s/s); %s\n"):format(#results, tbl.bytes(done), seconds,
  tbl.bytes(math.floor(done / math.max(seconds, 1e-6))),
  corrupt and "CORRUPTION FOUND" or (nprob > 0 and "no corruption (see notes)" or "no problems")))
return corrupt and 1 or 0
