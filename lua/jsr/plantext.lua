-- What prepare says about its plan: the plan and the next steps for the
-- operator, and recovery-report.json's text (jsr/prepare.lua decides and
-- applies; prepare.print_plan, print_next_steps and report are these).
local jsr = require("jsr")
local age = require("jsr.age")
local keys = require("jsr.keys")
local printer = require("jsr.print")
local json = jsr.json

local M = {}

local function is_int(v) return math.type(v) == "integer" end

-- recovery-report.json's text: what the plan decided that later runs,
-- restore instructions and undo need (credentials, originals, removals).
function M.report(plan)
  local r = json.object()
  r.tool = "js-recover " .. jsr.version
  r.store_dir = plan.store.store_dir
  r.config = plan.config_path
  r.port = plan.port
  r.accounts = json.array()
  for _, a in ipairs(plan.accounts) do
    r.accounts[#r.accounts + 1] = { name = a.name, original_name = a.original_name, jwt_name = a.jwt_name,
      user = a.user, password = a.password, password_bcrypt = a.password_bcrypt,
      anonymous = a.anonymous or nil }
  end
  r.streams = json.array()
  for _, s in ipairs(plan.streams) do
    local cs = json.array()
    for _, c in ipairs(s.consumers) do
      cs[#cs + 1] = { name = c.name, original = c.original }
    end
    local o = s.original
    -- the time limits: as the cluster had them, and whether the standalone
    -- server runs with them (the count past max_age grows with the clock,
    -- so it is printed, not kept: re-running must not change this file)
    local orig = { retention = o.retention, num_replicas = o.num_replicas, placement = o.placement,
                   consumers = cs }
    for _, f in ipairs(age.STREAM_FIELDS) do orig[f] = o[f] end
    r.streams[#r.streams + 1] = { account = s.account, name = s.name,
      age_limits = (s.age_limits == "keep" and "kept" or "suspended"), original = orig }
  end
  -- what an earlier run salvaged stays on record (its _js_ is gone now)
  if plan.salvage and plan.salvage.available then
    r.salvaged = require("jsr.salvage").json(plan.salvage)
  elseif plan.previous_salvaged then
    r.salvaged = plan.previous_salvaged
  end
  r.survivor_last_message = plan.last_write
  r.removed = json.array()
  -- what earlier runs removed stays on record
  for _, x in ipairs(plan.previous_removals) do r.removed[#r.removed + 1] = x end
  for _, x in ipairs(plan.removals) do r.removed[#r.removed + 1] = { path = x.path, why = x.why } end
  for _, b in ipairs(plan.expired) do
    r.removed[#r.removed + 1] = { path = b.path, messages = #b.offsets, why = M.expired_why(b) }
  end
  return printer.pretty(r) .. "\n"
end

local function fmt_change(ch)
  if ch.new == nil then return ("%s %s removed"):format(ch.field, ch.old) end
  if ch.old == nil then return ("%s = %s (new)"):format(ch.field, ch.new) end
  return ("%s %s -> %s"):format(ch.field, ch.old, ch.new)
end

-- The plan for the operator, what is (or, not applied, would be) changed.
function M.print_plan(plan, out, applied)
  out = out or io.stdout
  local verb = applied and "" or "would "
  for _, s in ipairs(plan.streams) do
    local what = {}
    for _, ch in ipairs(s.changes) do what[#what + 1] = fmt_change(ch) end
    out:write(("stream %s > %s: %s\n"):format(s.account, s.name,
      #what > 0 and (verb .. "change " .. table.concat(what, ", ")) or "unchanged"))
    for _, c in ipairs(s.consumers) do
      local cw = {}
      for _, ch in ipairs(c.changes) do cw[#cw + 1] = fmt_change(ch) end
      out:write(("  consumer %s: %s\n"):format(c.name,
        #cw > 0 and (verb .. "change " .. table.concat(cw, ", ")) or "unchanged"))
    end
  end
  for _, r in ipairs(plan.renames) do
    out:write(("%srename %s -> %s (%s)\n"):format(verb, r.path, r.to, r.why))
  end
  for _, b in ipairs(plan.expired) do
    out:write(("%sremove %d message(s) from %s (%s)\n"):format(verb, #b.offsets, b.path, M.expired_why(b)))
  end
  for _, r in ipairs(plan.removals) do
    out:write(("%smove aside %s (%s)\n"):format(verb, r.path, r.why))
  end
  for _, b in ipairs(plan.skipped_bad) do
    if b.raft then
      -- the message names the log file and the entry
      out:write(("SKIPPED (--skip-bad) malformed Raft entry %s\n"):format(b.message))
    else
      out:write(("SKIPPED (--skip-bad) %s: %s\n"):format(b.path, b.message))
    end
  end
  for _, n in ipairs(plan.notes) do out:write("note: " .. n .. "\n") end
  if plan.salvage and plan.salvage.available then
    for _, l in ipairs(require("jsr.salvage").lines(plan.salvage, applied)) do
      out:write("salvage: ", l, "\n")
    end
  end
end

-- What to do once the store is prepared: the standalone server, the
-- backups, what to set back before restoring.
function M.print_next_steps(plan, out)
  out = out or io.stdout
  local restore = {}
  local aged = {}
  for _, s in ipairs(plan.streams) do
    local o = s.original
    local cur = s.config.retention
    local times = M.suspended_limits(s)
    if o.retention ~= cur or (is_int(o.num_replicas) and o.num_replicas > 1) or #times > 0 then
      local set = { ("retention %s, num_replicas %s"):format(o.retention, tostring(o.num_replicas)) }
      if o.placement then set[#set + 1] = "placement " .. json.encode(o.placement) end
      for _, t in ipairs(times) do set[#set + 1] = t end
      restore[#restore + 1] = ("  %s > %s: %s"):format(s.account, s.name, table.concat(set, ", "))
    end
    local effect = M.age_effect(s)
    if effect then aged[#aged + 1] = effect end
  end
  out:write("\nNext steps:\n")
  out:write(("  1. start a standalone server on the prepared store (127.0.0.1:%d only):\n"):format(plan.port))
  if plan.cipher then
    -- recovery.conf reads the key from the environment, not from the file
    out:write(("       %s=\"$(cat /path/to/key-file)\" nats-server -c %s\n"):format(keys.ENV, plan.config_path))
  else
    out:write(("       nats-server -c %s\n"):format(plan.config_path))
  end
  out:write("  2. check that it serves every stream, then back each one up:\n")
  for _, a in ipairs(plan.accounts) do
    local creds = a.user and ("--user %s --password %s "):format(a.user, a.password)
      -- operator mode: a user of the account, with their own credentials
      or plan.operator_mode and ("--creds <a user of %s>.creds "):format(a.jwt_name or a.name) or ""
    out:write(("       nats --server nats://127.0.0.1:%d %sstream report    # account %s\n")
      :format(plan.port, creds, a.name))
  end
  -- natscli 0.5 names them `backup stream` and `backup restore stream`
  -- (the older `stream backup` / `stream restore` still work, deprecated)
  out:write("       nats ... backup stream <STREAM> /backups/<STREAM>      (older CLI: nats stream backup)\n")
  out:write("  3. restore into the new cluster: nats backup restore stream /backups/<STREAM>\n"
    .. "       (older CLI: nats stream restore)\n")
  if #restore > 0 then
    out:write("     Before restoring, set these back in each backup's backup.json \"config\"\n"
      .. "     (recorded in " .. plan.report_path .. "):\n")
    out:write(table.concat(restore, "\n") .. "\n")
    out:write("     (a running stream cannot change retention to or from workqueue, and on\n"
      .. "      2.9 not at all: edit the backup, not the restored stream)\n")
  end
  if #aged > 0 then
    out:write("     Deletion by time is suspended on the standalone server; setting it back deletes:\n")
    for _, l in ipairs(aged) do out:write("       ", l, "\n") end
  end
end

-- The time limits prepare suspended for a stream and its consumers, as the
-- fields to set back: "max_age 7d", "consumer c1 inactive_threshold 15s".
function M.suspended_limits(s)
  local out = {}
  if s.age_limits ~= "suspend" then return out end
  for _, l in ipairs(age.stream_limits(s.original)) do out[#out + 1] = age.describe(l.field, l.value) end
  for _, c in ipairs(s.consumers) do
    for _, l in ipairs(age.consumer_limits(c.original)) do
      out[#out + 1] = ("consumer %s %s"):format(c.name, age.describe(l.field, l.value))
    end
    if c.original and c.original.ephemeral then
      out[#out + 1] = ("consumer %s ephemeral (kept as a durable of that name)"):format(c.name)
    end
  end
  return out
end

function M.expired_why(b)
  local why = {}
  if b.reasons.expired then
    why[#why + 1] = ("%d past max_age %s before the survivor's newest message"):format(b.reasons.expired,
      age.duration(b.max_age))
  end
  if b.reasons.deleted then
    why[#why + 1] = ("%d deleted in the stream's Raft log"):format(b.reasons.deleted)
  end
  if b.reasons.done then
    why[#why + 1] = ("%d acked (%s retention)"):format(b.reasons.done, b.stream.original.retention)
  end
  return table.concat(why, ", ") .. ": the cluster had removed them"
end

-- What restoring a stream's max_age does at once, in the operator's words.
function M.age_effect(s)
  local v = s.original.max_age
  if s.age_limits ~= "suspend" or not is_int(v) or v <= 0 then return nil end
  local d = age.duration(v)
  if s.past_max_age_error then
    return ("restoring %s with max_age %s deletes its messages older than %s at once (not counted: %s)")
      :format(s.name, d, d, s.past_max_age_error)
  end
  return ("restoring %s with max_age %s deletes its %s message%s older than %s at once (counted now)")
    :format(s.name, d, printer.count(s.past_max_age or 0), s.past_max_age == 1 and "" or "s", d)
end

return M
