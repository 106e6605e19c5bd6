-- Prints a stream's messages straight from its blocks (no server needed),
-- or counts them per subject.
--
--   js-recover run scripts/dump.lua <store> STREAM [FROM [TO]]     messages FROM..TO
--   js-recover run scripts/dump.lua <store> STREAM --counts        messages per subject
--
-- STREAM is NAME or ACCOUNT/NAME.  An encrypted store needs the server's key
-- (--key-file F or JSR_KEY).  Deleted messages are left out; records
-- whose checksum is wrong are printed with a warning.
local jsr = require "jsr"
local model = require "jsr.model"
local blocks = require "jsr.blocks"
local cli = require "jsr.cli"
local keys = require "jsr.keys"

local opts, args = cli.parse({ ... }, keys.with { counts = "flag" })
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

local function printable(s)
  if s:find("[^\32-\126\t]") then
    return ("<%d bytes, hex %s%s>"):format(#s, s:sub(1, 32):gsub(".", function(c)
      return ("%02x"):format(c:byte()) end), #s > 32 and "..." or "")
  end
  return s
end

local counts, order = {}, {}
local summary = blocks.scan(stream, {
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
