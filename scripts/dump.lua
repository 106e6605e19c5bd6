-- Prints a stream's messages straight from its blocks (no server needed),
-- or counts them per subject.
--
--   js-recover run scripts/dump.lua <store> STREAM [FROM [TO]]     messages FROM..TO
--   js-recover run scripts/dump.lua <store> STREAM --counts        messages per subject
--   js-recover run scripts/dump.lua <store> STREAM --index         its msgs/index.db (2.10+)
--
-- STREAM is NAME or ACCOUNT/NAME.  An encrypted store needs the server's key
-- (--key-file F or JSR_KEY).  Deleted messages are left out, as the server
-- counts them: marked in their block, in a trusted msgs/index.db's delete
-- map, or named by a tombstone; records whose checksum is wrong are
-- printed with a warning.  --index prints what msgs/index.db holds and
-- whether the server would trust it.
local jsr = require "jsr"
local model = require "jsr.model"
local blocks = require "jsr.blocks"
local cli = require "jsr.cli"
local keys = require "jsr.keys"

local opts, args = cli.parse({ ... }, keys.with { counts = "flag", index = "flag" })
if not opts or #args < 2 or #args > 4 then
  io.stderr:write("usage: js-recover run dump.lua <store> STREAM [FROM [TO]] [--counts] [--key-file F]\n")
  return 2
end
assert(keys.load(opts))
local from, to = math.tointeger(tonumber(args[3] or "1")), math.tointeger(tonumber(args[4] or "-1"))
if not from or not to then
  io.stderr:write("dump.lua: FROM and TO are sequence numbers\n")
  return 2
end
local m = assert(model.scan(args[1]))
local stream
for _, s in ipairs(m.streams) do
  if s.name == args[2] or s.account .. "/" .. s.name == args[2] then stream = s end
end
if not stream then
  io.stderr:write("dump.lua: no stream ", args[2], "\n")
  return 2
end

local function iso(ns)
  if not ns or ns == 0 then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%S", ns // 1000000000) .. (".%09dZ"):format(ns % 1000000000)
end

if opts.index then
  local r = blocks.index_db(stream, jsr.block_files(stream.path) or {})
  if not r.db then
    io.write(("%s: %s%s\n"):format(r.path, r.status, r.message and r.message ~= r.path and (": " .. r.message) or ""))
    return r.status == "absent" and 0 or 1
  end
  local i = r.info
  io.write(("%s: version %d, %s\n"):format(r.path, i.version,
    r.trusted and "trusted (the server loads the stream from it)" or ("not trusted: " .. r.why)))
  io.write(("  messages %d, bytes %d, first %d (%s), last %d (%s), %d subjects\n"):format(i.msgs, i.bytes,
    i.first_seq, iso(i.first_ts), i.last_seq, iso(i.last_ts), i.subjects))
  io.write(("  newest block %d, its last record hash %s\n"):format(i.last_block, i.lchk))
  for _, b in ipairs(r.db:blocks()) do
    local full = r.db:block(b.index, true)
    io.write(("  block %d: %d messages, %d bytes, first %d, last %d, deleted %d%s%s\n"):format(b.index, b.msgs,
      b.bytes, b.first_seq, b.last_seq, b.num_deleted,
      #full.deleted > 0 and (" {" .. table.concat(full.deleted, ",", 1, math.min(#full.deleted, 50)) ..
        (#full.deleted > 50 and ",..." or "") .. "}") or "",
      (b.ttls > 0 or b.schedules > 0) and (", %d with TTL, %d schedules"):format(b.ttls, b.schedules) or ""))
  end
  for _, sj in ipairs(r.db:subjects()) do
    io.write(("  subject %s: %d messages, blocks %d..%d\n"):format(sj.subject, sj.total, sj.first_block, sj.last_block))
  end
  return 0
end

local function printable(s)
  if s:find("[^\32-\126\t]") then
    return ("<%d bytes, hex %s%s>"):format(#s, s:sub(1, 32):gsub(".", function(c)
      return ("%02x"):format(c:byte()) end), #s > 32 and "..." or "")
  end
  return s
end

local counts, order = {}, {}
local summary = blocks.scan(stream, {
  tombstones = true,
  records = function(rec)
    if rec.deleted or rec.seq < from then return true end
    if to >= 0 and rec.seq > to then return false end
    if opts.counts then
      if not counts[rec.subject] then order[#order + 1] = rec.subject; counts[rec.subject] = 0 end
      counts[rec.subject] = counts[rec.subject] + 1
      return true
    end
    io.write(("seq %d  %s  %s%s\n"):format(rec.seq,
      os.date("!%Y-%m-%dT%H:%M:%S", rec.ts // 1000000000) .. (".%09dZ"):format(rec.ts % 1000000000),
      rec.subject, rec.hash_ok and "" or "  (CHECKSUM WRONG)"))
    if rec.headers then io.write("  headers: ", printable(rec.headers), "\n") end
    io.write("  ", printable(rec.payload), "\n")
    return true
  end,
})
if opts.counts then
  table.sort(order)
  for _, subj in ipairs(order) do io.write(("%8d  %s\n"):format(counts[subj], subj)) end
end
for _, p in ipairs(summary.problems) do
  io.stderr:write(("%s: %s at byte %s: %s\n"):format(p.block or stream.path, p.kind,
    tostring(p.offset), p.message))
end
return summary.corrupt and 1 or 0
