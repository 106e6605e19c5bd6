-- What a standalone server deletes by time, and how prepare suspends it.
--
-- After a quorum loss nobody consumed for hours or days; a standalone
-- server started on the recovered store would at once delete every message
-- older than its stream's max_age (a KV bucket's TTL is its stream's
-- max_age) and, a little later, every durable consumer idle past its
-- inactive_threshold (measured on 2.9.10: 100 of 100 messages gone at start
-- after max_age 30 s; a consumer with 15 s deleted 20 s after start).
-- prepare suspends these by default and records the originals, to be set
-- back when the streams are restored (docs/FORMAT.md, "Deletion by time").
local jsr = require("jsr")
local blocks = require("jsr.blocks")

local M = {}

local function int(v) return math.type(v) == "integer" and v or nil end

-- What makes a server delete by time, per stream and consumer config
-- (server source, confirmed with 2.9.10 .. 2.15.3; docs/FORMAT.md):
--   max_age                     every version: messages older than it, at
--                               start and then continuously (KV: the TTL)
--   subject_delete_marker_ttl   2.11+: markers left when max_age removes a
--                               subject's last message; it also forces
--                               allow_msg_ttl on at load
--   allow_msg_ttl               2.11+: per-message Nats-TTL expiry; off, the
--                               server never expires them (no other switch)
--   allow_msg_schedules         2.12+: schedules that publish and purge
--   consumer_limits.inactive_threshold
--                               2.10+: given at load to every consumer
--                               without its own, durables included
--   consumer inactive_threshold every version, durables included
--   an ephemeral consumer       deleted 5 s after start whatever it says;
--                               given its directory's name as durable_name
--                               it is kept (it was persisted on disk)
-- No version refuses these changes when it loads a store (recovery does not
-- run the update checks that forbid turning allow_msg_ttl off).  A negative
-- max_age is never written: before 2.12 it puts the cutoff in the future.
M.STREAM_FIELDS = { "max_age", "subject_delete_marker_ttl", "allow_msg_ttl", "allow_msg_schedules",
  "consumer_limits.inactive_threshold" }
M.CONSUMER_FIELDS = { "inactive_threshold" }

local FLAGS = { allow_msg_ttl = true, allow_msg_schedules = true }

-- Go-style duration text of nanoseconds, in the units operators type:
-- 7d, 36h, 1h30m, 30s, 1.5s, 250ms.
function M.duration(ns)
  ns = int(ns) or 0
  if ns <= 0 then return "0" end
  if ns < 1000000000 then
    if ns % 1000000 == 0 then return ("%dms"):format(ns // 1000000) end
    return ("%dns"):format(ns)
  end
  local s, frac = ns // 1000000000, ns % 1000000000
  local parts = {}
  local d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
  s = s % 60
  if d > 0 then parts[#parts + 1] = d .. "d" end
  if h > 0 then parts[#parts + 1] = h .. "h" end
  if m > 0 then parts[#parts + 1] = m .. "m" end
  if frac > 0 then
    parts[#parts + 1] = ("%d.%s"):format(s, (("%09d"):format(frac):gsub("0+$", ""))) .. "s"
  elseif s > 0 or #parts == 0 then
    parts[#parts + 1] = s .. "s"
  end
  return table.concat(parts)
end

local function get(cfg, f)
  if type(cfg) ~= "table" then return nil end
  local a, b = f:match("^([^.]+)%.(.+)$")
  if a then
    local sub = cfg[a]
    return type(sub) == "table" and sub[b] or nil
  end
  return cfg[f]
end

local function set(cfg, f, v)
  local a, b = f:match("^([^.]+)%.(.+)$")
  if a then
    if type(cfg[a]) ~= "table" then
      if v == nil then return end
      cfg[a] = {}
    end
    cfg[a][b] = v
  else
    cfg[f] = v
  end
end

local function is_durable(ccfg)
  return type(ccfg.durable_name) == "string" and ccfg.durable_name ~= ""
end

-- active(field, value): does this value make the server delete by time?
local function active(f, v)
  if FLAGS[f] then return v == true end
  return int(v) ~= nil and v > 0
end

local function limits_of(cfg, fields)
  local out = {}
  for _, f in ipairs(fields) do
    local v = get(cfg, f)
    if active(f, v) then out[#out + 1] = { field = f, value = v } end
  end
  return out
end

-- The time limits set in a stream's or consumer's config: { {field, value}, ... }
function M.stream_limits(cfg) return limits_of(cfg, M.STREAM_FIELDS) end
function M.consumer_limits(ccfg) return limits_of(ccfg, M.CONSUMER_FIELDS) end

-- A limit as the operator reads it: "max_age 7d", "allow_msg_ttl true".
function M.describe(f, v)
  if FLAGS[f] then return ("%s %s"):format(f, tostring(v)) end
  return ("%s %s"):format(f, M.duration(v))
end

-- The originals to record before suspending: every field, set or not.
function M.record_stream(cfg, into)
  for _, f in ipairs(M.STREAM_FIELDS) do
    if into[f] == nil then into[f] = get(cfg, f) end
  end
  return into
end
function M.record_consumer(ccfg, into)
  for _, f in ipairs(M.CONSUMER_FIELDS) do
    if into[f] == nil then into[f] = get(ccfg, f) end
  end
  if into.ephemeral == nil and not is_durable(ccfg) then into.ephemeral = true end
  return into
end

-- A consumer the server deletes for inactivity once it runs: a durable
-- with inactive_threshold, or any ephemeral (no durable_name; the server
-- gives ephemerals 5 s whatever they say).
function M.consumer_expires(ccfg, stream_cfg)
  if type(ccfg) ~= "table" then return nil end
  if not is_durable(ccfg) then return { ephemeral = true, after = 5000000000 } end
  local t = int(ccfg.inactive_threshold)
  if not t or t == 0 then t = int(get(stream_cfg, "consumer_limits.inactive_threshold")) end
  if t and t > 0 then return { after = t } end
  return nil
end

-- Removes the stream's time limits from cfg (in place).
function M.suspend_stream(cfg)
  for _, l in ipairs(M.stream_limits(cfg)) do set(cfg, l.field, nil) end
end

-- Puts a stream's recorded limits back (the "keep" choice after a run
-- that suspended them).
function M.restore_stream(cfg, original)
  for _, f in ipairs(M.STREAM_FIELDS) do
    if get(cfg, f) == nil and original[f] ~= nil then set(cfg, f, original[f]) end
  end
end

-- Removes a consumer's inactivity limit; an ephemeral becomes a durable of
-- its own name (the directory's, which the server loads it by).
function M.suspend_consumer(ccfg, name)
  for _, l in ipairs(M.consumer_limits(ccfg)) do set(ccfg, l.field, nil) end
  if not is_durable(ccfg) then ccfg.durable_name = name end
end

function M.restore_consumer(ccfg, original)
  for _, f in ipairs(M.CONSUMER_FIELDS) do
    if get(ccfg, f) == nil and original[f] ~= nil then set(ccfg, f, original[f]) end
  end
  if original.ephemeral then ccfg.durable_name = nil end
end

-- newest_message(model) -> ns: the newest message timestamp in any stream
-- of the store (the server's clock when it stored it; its index's last
-- time for an emptied block).  The survivor's server was alive then, so a
-- message past max_age by that time it had expired.  Timestamps are read
-- from the data, so a copy of the store without its mtimes (cp -r) changes
-- nothing; an idle survivor's clock ran on after it, so this errs towards
-- removing less.
function M.newest_message(m)
  local newest = 0
  for _, s in ipairs(m.streams) do
    if not s.error then
      local t = blocks.tail(s)
      if (t.last_ts or 0) > newest then newest = t.last_ts end
    end
  end
  return newest
end

-- Nanoseconds since the epoch, now.
function M.now() return jsr.now_ns() end

-- past_max_age(stream, now [, max_age]) -> count, or nil, why
-- The messages a server with max_age (default: the stream's) deletes at
-- once when it starts at time now (ns): the leading live messages stamped before
-- now - max_age, as the server's expiry walks them (from the first message
-- to the first younger one).  Reads only those messages' blocks.
function M.past_max_age(stream, now, max_age)
  max_age = int(max_age) or (stream.config and int(stream.config.max_age))
  if not max_age or max_age <= 0 then return 0 end
  local s = blocks.scan(stream, { older_than = (now or M.now()) - max_age })
  -- a block it cannot read (encrypted without the key, compressed, an I/O
  -- error) leaves the count unknown; a bad record is verify's business
  for _, p in ipairs(s.problems) do
    if p.kind == "unchecked" or p.kind == "io" then return nil, p.message end
  end
  return s.older
end

-- The "want" of jsr/removal.lua for messages past max_age before cutoff
-- (the survivor's newest message time - max_age): the leading live
-- messages stamped before it, as the server's expiry walks them; then
-- more(rec) decides for the rest (nil: stop there).
function M.expired_want(cutoff, more)
  local prefix = true
  return function(rec)
    if prefix then
      if rec.ts < cutoff then return "take", "expired" end
      prefix = false
    end
    if not more then return "stop" end
    return more(rec)
  end
end

return M
