--- What 2.10+ servers put in a stream's Raft log beyond messages, deletes
-- and purges, made through natscli for the replay's fixtures
-- (scripts/gen-replay-fixture.lua ... newer) and the SIGKILL drill of
-- spec/newops_spec.lua; docs/FORMAT.md "Ops of a stream's log" says what
-- each version writes.  Nothing here expires after the publishes end, so
-- a recording serves the same on any later day.
--
--   local newops = require "spec.support.newops"
--   local n = newops.new(rejects.new(urls, creds, say), version, dir)
--   n:publishes()     the streams of newops.streams(version)
local M = {}
local N = {}
N.__index = N

local function at_least(v, want)
  local a, b = {}, {}
  for x in v:gmatch("%d+") do a[#a + 1] = tonumber(x) end
  for x in want:gmatch("%d+") do b[#b + 1] = tonumber(x) end
  for i = 1, 3 do
    if (a[i] or 0) ~= (b[i] or 0) then return (a[i] or 0) > (b[i] or 0) end
  end
  return true
end
M.at_least = at_least

-- the streams made on a version, each with the version it needs
local ALL = {
  { "XFORM", "2.10.0" },  -- a subject transform, applied as a message is stored
  { "TTLM", "2.11.0" },   -- per-message TTLs run out: delete markers, the server's deletes
  { "TTLR", "2.11.0" },   -- a TTL below the marker TTL, raised to it when stored
  { "COUNT", "2.12.0" },  -- counters: the leader logs each total
  { "BATCH", "2.12.0" },  -- atomic batches: ops 16 and 17
  { "BIGB", "2.12.0" },   -- a batch of 1000 over two append entries (the spec cuts the second)
  { "SCHED", "2.14.0" },  -- a delayed message: the scheduler's message purges its schedule
}

function M.streams(version)
  local out = {}
  for _, s in ipairs(ALL) do if at_least(version, s[2]) then out[#out + 1] = s[1] end end
  return out
end

-- r: a spec.support.rejects object (its natscli calls); dir: a scratch
-- directory for the batch's lines
function M.new(r, version, dir)
  local has = {}
  for _, name in ipairs(M.streams(version)) do has[name] = true end
  return setmetatable({ r = r, has = has, dir = dir }, N)
end

-- an atomic batch from lines (natscli sends one a line, the last commits)
function N:batch(subject, lines)
  local f = self.dir .. "/batch-" .. subject .. ".txt"
  local h = assert(io.open(f, "w"))
  h:write(table.concat(lines, "\n"), "\n")
  h:close()
  local r = self.r
  local argv = { r.cli, "-s", r.url, "--user", r.creds.user, "--password", r.creds.password, "--timeout", "5s",
                 "pub", subject, "--atomic", "--send-on=newline" }
  for i, a in ipairs(argv) do argv[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
  local p = assert(io.popen(table.concat(argv, " ") .. " < '" .. f .. "' 2>&1"))
  local said = p:read("a")
  p:close()
  r.say("atomic batch " .. subject .. " x" .. #lines .. " -> " .. (said:match("Wrote batch[^\n]*") or said))
end

function N:publishes()
  local r, has = self.r, self.has
  if has.XFORM then
    -- xf.<a>.<b> stored as xf.done.<b>.<a>
    r:create { name = "XFORM", subjects = { "xf.>" },
               subject_transform = { src = "xf.*.*", dest = "xf.done.{{wildcard(2)}}.$1" } }
    r:pub("xf.a.b", "one"); r:pub("xf.c.d", "two"); r:pub("xf.only", "untouched")
  end
  if has.TTLM then
    -- marker TTL 1 s: what expires leaves a marker that expires in turn,
    -- all of it within seconds (the 2 s TTLs stay 2 s: at least the
    -- marker TTL)
    r:create { name = "TTLM", subjects = { "ttl.>" }, allow_msg_ttl = true, allow_rollup_hdrs = true,
               subject_delete_marker_ttl = 1000000000 }
    r:pub("ttl.a", "a1", "Nats-TTL:2s"); r:pub("ttl.a", "a2", "Nats-TTL:2s")
    r:pub("ttl.b", "b1", "Nats-TTL:2s")
    r:pub("ttl.keep", "forever", "Nats-TTL:never"); r:pub("ttl.plain", "no ttl")
    -- marker TTL 1 h: a TTL below it is raised to it as it is stored
    r:create { name = "TTLR", subjects = { "ttr.>" }, allow_msg_ttl = true, allow_rollup_hdrs = true,
               subject_delete_marker_ttl = 3600 * 1000000000 }
    r:pub("ttr.a", "raised", "Nats-TTL:5s", "X-Other:kept"); r:pub("ttr.b", "raised too", "Nats-TTL:90")
    r:pub("ttr.c", "above the floor", "Nats-TTL:2h")
  end
  if has.COUNT then
    -- natscli takes a counter stream only with direct gets
    r:create { name = "COUNT", subjects = { "cnt.>" }, allow_msg_counter = true, allow_direct = true }
    for _, n in ipairs { "5", "37" } do r:run("counter +" .. n, "counter", "increment", "cnt.visits", n) end
    r:run("counter -2", "counter", "decrement", "cnt.visits", "2")
    r:run("counter other -7", "counter", "decrement", "cnt.other", "7")
  end
  if has.BATCH then
    r:create { name = "BATCH", subjects = { "bat.>" }, allow_atomic = true }
    self:batch("bat.x", { "x1", "x2", "x3" })
    r:pub("bat.y", "between")
    self:batch("bat.z", { "z1", "z2" })
  end
  if has.BIGB then
    -- 1000 lines of 400 bytes: more than one append entry (256 KiB at most)
    r:create { name = "BIGB", subjects = { "big.>" }, allow_atomic = true }
    r:pub("big.first", "before the batch")
    local lines = {}
    for i = 1, 1000 do lines[i] = ("%04d"):format(i) .. ("."):rep(396) end
    self:batch("big.b", lines)
  end
  if has.SCHED then
    -- fires 2 s from now into sched.out; the schedule is then purged
    r:create { name = "SCHED", subjects = { "sched.>" }, allow_msg_schedules = true, allow_rollup_hdrs = true }
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 2)
    r:pub("sched.job", "later", "Nats-Schedule:@at " .. at, "Nats-Schedule-Target:sched.out")
    r:pub("sched.plain", "now")
  end
  -- the TTLs (2 s), their markers (1 s) and the schedule (2 s) run out
  if has.TTLM or has.SCHED then os.execute("sleep 7") end
end

return M
