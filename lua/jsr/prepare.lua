-- The prepare policy as a library: scan the store, decide per account,
-- stream and consumer, show the plan, apply it as one journaled set of
-- changes, write recovery.conf and recovery-report.json, tell the operator
-- what to do next.
--
-- A site policy overrides only the decisions it cares about:
--
--   local prepare = require("jsr.prepare")
--   return prepare.run({
--     keep_account = function(account) return not account.name:match("^SCRATCH") end,
--   }, ...)
--
-- Every hook gets plain tables (see SCRIPTING.md) and returns a decision;
-- hooks left out use prepare.defaults.
local jsr = require("jsr")
local layout = jsr.layout
local model = require("jsr.model")
local cli = require("jsr.cli")
local conf = require("jsr.conf")
local keys = require("jsr.keys")
local guard = require("jsr.guard")
local age = require("jsr.age")
local removal = require("jsr.removal")
local raft = require("jsr.raft")
local sealed = require("jsr.sealed")
local printer = require("jsr.print")
local donework = require("jsr.donework")
local files = require("jsr.files")
local json = jsr.json

local M = {}


local function is_int(v) return math.type(v) == "integer" end

M.defaults = {
  -- The system account is never kept: its JetStream directory holds the
  -- dead cluster's Raft state, which a standalone server must not load.
  keep_account = function(account) return not account.system end,
  keep_stream = function(stream) return true end,
  keep_consumer = function(consumer, stream) return true end,
  -- A standalone 2.9.10 server deletes messages of interest streams when it
  -- recomputes interest at start (measured: 500 of 1000 unacked gone), and
  -- workqueue streams may delete on acks: extract with limits, which deletes
  -- nothing; the report keeps the original to set back after restore.
  retention = function(stream)
    local r = stream.config.retention
    if r == "interest" or r == "workqueue" then return "limits" end
    return r
  end,
  -- a standalone server refuses num_replicas > 1
  stream_replicas = function(stream) return 1 end,
  -- A consumer above its stream's replicas is refused (10126) and lost.
  -- 0 means "as the stream": after restore into a new R3 stream the
  -- consumer follows it to R3 again.
  consumer_replicas = function(consumer, stream)
    local n = consumer.config.num_replicas
    if is_int(n) and n > stream.replicas then return 0 end
    return n
  end,
  -- Deletion by time (jsr/age.lua): "suspend" removes the stream's max_age
  -- (a KV bucket's TTL) and subject_delete_marker_ttl, and its consumers'
  -- inactive_threshold, so the standalone server deletes nothing the outage
  -- kept from being consumed; "keep" leaves them, and the server deletes
  -- what is past them as soon as it starts.  stream.age = {max_age=ns,
  -- past_max_age=count or nil}.  --keep-age-limits makes "keep" the default.
  age_limits = function(stream) return "suspend" end,
  -- Done work (jsr/removal.lua): "remove" takes out of a work-queue stream
  -- every message its consumer acked, and out of an interest stream every
  -- message all its consumers acked, that the blocks still hold (2.9.10
  -- writes those deletes lazily); "keep" leaves them, and the standalone
  -- server (limits retention) serves them again.
  done_work = function(stream) return "remove" end,
  -- last word on the whole config, after the decisions above
  edit_stream = function(stream, cfg) end,
  edit_consumer = function(consumer, stream, cfg) end,
  -- Per Raft log entry past the store (jsr/salvage.lua): "keep" or "drop".
  -- entry = {kind = "message"|"delivered"|"ack", account, stream, consumer,
  -- index, seq, uncertain}.  uncertain: past the highest commit index the
  -- survivor's log saw, so it may never have been committed.  Keeping them
  -- is at-least-once (nothing acknowledged is lost, an unacknowledged
  -- message may come back); a site policy can drop uncertain entries.
  salvage = function(entry) return "keep" end,
}

local function hooks(policy)
  local h = {}
  for k, f in pairs(M.defaults) do
    h[k] = (policy and policy[k]) or f
  end
  for k in pairs(policy or {}) do
    if not M.defaults[k] then error(("unknown policy hook %q (known: %s)"):format(
      k, table.concat(M.hook_names(), ", ")), 0) end
  end
  return h
end

function M.hook_names()
  return require("jsr.sorted").keys(M.defaults)
end

-- Encodes each top-level value, so a diff can be taken after edits.
local function snapshot(cfg)
  local _, texts = json.fields(cfg)
  return texts
end

local function diff(before, cfg)
  local out, seen = {}, {}
  local keys, texts = json.fields(cfg)
  for _, k in ipairs(keys) do
    seen[k] = true
    local now = texts[k]
    if before[k] ~= now then out[#out + 1] = { field = k, old = before[k], new = now } end
  end
  local removed = {}
  for k, v in pairs(before) do
    if not seen[k] then removed[#removed + 1] = { field = k, old = v } end
  end
  table.sort(removed, function(a, b) return a.field < b.field end)
  for _, r in ipairs(removed) do out[#out + 1] = r end
  return out
end

-- ------------------------------------------------------------ the plan
--
-- prepare.plan(m, policy, opts) decides everything and returns the plan;
-- it changes nothing.  opts: skip_bad (leave out unreadable entries,
-- reported, instead of stopping), keep_age_limits, operator, domain, port.
-- It runs the steps of prepare.STEPS in order, each a function of
-- prepare.steps taking the plan and adding to it; a site reads them here
-- and may replace one (prepare.steps.global_account = function(plan) end)
-- before it calls prepare.run.  Per stream three tables meet: the model's
-- (`s`, the store as read: s.config is edited in place into what is
-- written), the hooks' view of it (`view`, SCRIPTING.md "Hooks") and the
-- plan's entry (plan.streams[i]: original, changes, consumers).
M.STEPS = { "unreadable", "accounts", "global_account", "account_names", "operator", "salvage",
            "removals", "files" }
M.steps = {}
local steps = M.steps

function M.plan(m, policy, opts)
  local plan = M.start(m, policy, opts)
  for _, name in ipairs(M.STEPS) do steps[name](plan) end
  return plan
end

-- The plan before any step: the hooks, the clock, what an earlier run
-- recorded (recovery-report.json: credentials, originals, removals).
function M.start(m, policy, opts)
  opts = opts or {}
  local h = hooks(policy)
  if opts.keep_age_limits and not (policy and policy.age_limits) then
    h.age_limits = function() return "keep" end
  end
  local previous = files.report(m.store.store_dir) or {}
  local prev_streams = {}
  for _, s in ipairs(previous.streams or {}) do
    prev_streams[(s.account or "") .. "\0" .. (s.name or "")] = s
  end
  return { store = m.store, writes = {}, removals = {}, renames = {}, streams = {},
           accounts = {}, problems = {}, skipped_bad = {}, notes = {}, expired = {},
           hooks = h, model = m, opts = opts, now = age.now(), previous = previous,
           previous_streams = prev_streams,
           -- the newest message the survivor stored (newest_message below)
           last_write = is_int(previous.survivor_last_message) and previous.survivor_last_message or nil }
end

-- An entry that cannot be read stops prepare before anything changes,
-- unless --skip-bad leaves it out (reported).
local function problem(plan, path, msg) plan.problems[#plan.problems + 1] = { path = path, message = msg } end

local function unreadable(plan, path, msg)
  if plan.opts.skip_bad then
    plan.skipped_bad[#plan.skipped_bad + 1] = { path = path, message = msg }
  else
    problem(plan, path, msg)
  end
end
M.problem, M.unreadable = problem, unreadable

local function remove(plan, path, why) plan.removals[#plan.removals + 1] = { path = path, why = why } end
local function note(plan, text) plan.notes[#plan.notes + 1] = text end

-- The newest message the survivor stored: its server was alive then, so
-- what was past max_age by that time it had expired (jsr/age.lua).  Kept
-- from the first run, whose removals later runs must not redo; read (the
-- newest block of every stream) only when a stream's max_age is
-- suspended.
local function newest_message(plan)
  plan.last_write = plan.last_write or age.newest_message(plan.model)
  return plan.last_write
end

-- What the scan could not read, and what it passed over (notes).
function steps.unreadable(plan)
  for _, e in ipairs(plan.model.errors) do unreadable(plan, e.path, e.message) end
  for _, e in ipairs(plan.model.skipped) do note(plan, e.path .. ": " .. e.message) end
end

function steps.accounts(plan)
  for _, account in ipairs(plan.model.accounts) do steps.account(plan, account) end
end

-- An account kept (with its streams), dropped by policy, or the system
-- account, whose Raft state of the dead cluster is moved aside.
function steps.account(plan, account)
  local keep = plan.hooks.keep_account(account)
  if account.system then
    if #account.streams > 0 then
      note(plan, ("%s: the system account has streams; a server never "
        .. "enables JetStream for its system account, so they stay on disk but will not load")
        :format(account.path))
      if #account.raft > 0 then remove(plan, layout.raft_dir(account.path), "Raft state of the dead cluster") end
    else
      remove(plan, account.path, "system account: Raft state of the dead cluster ("
        .. #account.raft .. " groups)")
    end
  elseif not keep then
    remove(plan, account.path, "dropped by policy (account)")
  else
    plan.accounts[#plan.accounts + 1] = { name = account.name, path = account.path }
    for _, s in ipairs(account.streams) do steps.stream(plan, account, s) end
  end
end

-- A stream kept (its config as a standalone server takes it, then its
-- consumers), dropped by policy, or unreadable.
function steps.stream(plan, account, s)
  if s.error then return unreadable(plan, s.path, s.error) end
  local view = { account = account.name, name = s.name, path = s.path,
                 config = s.config, consumers = s.consumers }
  if not plan.hooks.keep_stream(view) then return remove(plan, s.path, "dropped by policy (stream)") end
  local entry = { account = account.name, name = s.name, path = s.path, consumers = {},
                  changes = {}, config = s.config }
  local before = snapshot(s.config)
  steps.stream_config(plan, entry, view, s)
  entry.changes = diff(before, s.config)
  if #entry.changes > 0 then
    plan.writes[#plan.writes + 1] = { path = s.path, config = s.config, changes = entry.changes }
  end
  for _, c in ipairs(s.consumers) do steps.consumer(plan, entry, view, c) end
  plan.streams[#plan.streams + 1] = entry
end

-- A stream's config, edited in place: what the cluster had (an earlier
-- run's record, else the config as read) into entry.original, then the
-- hooks' replicas, retention and time limits, then edit_stream.
function steps.stream_config(plan, entry, view, s)
  local h, cfg = plan.hooks, s.config
  local earlier = plan.previous_streams[entry.account .. "\0" .. s.name]
  entry.original = earlier and earlier.original or {
    retention = cfg.retention, num_replicas = cfg.num_replicas,
    placement = cfg.placement and json.decode(json.encode(cfg.placement)) or nil,
  }
  -- the salvage replays the log under the cluster's retention
  s.cluster_retention = entry.original.retention
  -- and the time limits it had (filled in below), which the
  -- replay needs too (a TTL raised to subject_delete_marker_ttl)
  s.cluster_limits = entry.original
  -- the time limits as the cluster had them: an earlier run's
  -- record, when it suspended them, else the config as read
  local o = age.record_stream(cfg, entry.original)
  view.age = { max_age = o.max_age }
  if is_int(o.max_age) and o.max_age > 0 then
    local n, why = age.past_max_age(s, plan.now, o.max_age)
    view.age.past_max_age, entry.past_max_age, entry.past_max_age_error = n, n, why
  end
  local replicas = h.stream_replicas(view)
  if not is_int(replicas) or replicas > 1 or replicas < 0 then
    error(("%s: policy chose num_replicas %s; a standalone server accepts only 1"):format(
      s.path, tostring(replicas)), 0)
  end
  cfg.num_replicas = replicas
  cfg.placement = nil
  cfg.retention = h.retention(view)
  view.replicas = replicas == 0 and 1 or replicas
  local age_choice = h.age_limits(view)
  if age_choice ~= "suspend" and age_choice ~= "keep" then
    error(("%s: policy hook age_limits returned %s; expected \"suspend\" or \"keep\"")
      :format(s.path, tostring(age_choice)), 0)
  end
  entry.age_limits = age_choice
  if age_choice == "suspend" then age.suspend_stream(cfg) else age.restore_stream(cfg, o) end
  -- suspended, max_age no longer removes what the cluster had
  -- already expired: prepare removes those records itself (steps.removals,
  -- with the deletes of the stream's log)
  if age_choice == "suspend" and is_int(o.max_age) and o.max_age > 0 then
    entry.expire_cutoff, entry.max_age = newest_message(plan) - o.max_age, o.max_age
  end
  h.edit_stream(view, cfg)
end

-- A consumer of a kept stream: kept (replicas no more than the stream's,
-- time limits as the stream's, then edit_consumer), dropped, or unreadable.
function steps.consumer(plan, entry, view, c)
  local h = plan.hooks
  local cview = { account = entry.account, stream = entry.name, name = c.name,
                  path = c.path, config = c.config }
  if c.error then return unreadable(plan, c.path, c.error) end
  if not h.keep_consumer(cview, view) then return remove(plan, c.path, "dropped by policy (consumer)") end
  local ccfg = c.config
  local centry = { name = c.name, path = c.path, changes = {} }
  local cbefore = snapshot(ccfg)
  local earlier = plan.previous_streams[entry.account .. "\0" .. entry.name]
  local prev_c
  for _, pc in ipairs(earlier and earlier.original.consumers or {}) do
    if pc.name == c.name then prev_c = pc end
  end
  centry.original = prev_c and prev_c.original or { num_replicas = ccfg.num_replicas }
  age.record_consumer(ccfg, centry.original)
  if entry.age_limits == "suspend" then
    age.suspend_consumer(ccfg, c.name)
  else
    age.restore_consumer(ccfg, centry.original)
  end
  local n = h.consumer_replicas(cview, view)
  if is_int(n) and n > view.replicas then
    error(("%s: policy chose num_replicas %d for a consumer of an R%d stream; the "
      .. "server refuses it (10126)"):format(c.path, n, view.replicas), 0)
  end
  if ccfg.num_replicas ~= nil or n ~= nil then ccfg.num_replicas = n end
  h.edit_consumer(cview, view, ccfg)
  centry.changes = diff(cbefore, ccfg)
  centry.config = ccfg
  if #centry.changes > 0 then
    plan.writes[#plan.writes + 1] = { path = c.path, config = ccfg, changes = centry.changes }
  end
  entry.consumers[#entry.consumers + 1] = centry
end

-- The global account cannot be declared in a config, and a server with an
-- accounts block gives it no JetStream (measured): with other accounts
-- present, $G's streams move to an account that can be declared.
function steps.global_account(plan)
  local m = plan.model
  local named = 0
  for _, a in ipairs(plan.accounts) do if a.name ~= "$G" then named = named + 1 end end
  for _, s in ipairs(m.streams) do
    if s.encrypted and s.info and s.info.cipher and not plan.cipher then plan.cipher = s.info.cipher end
  end
  for _, a in ipairs(plan.accounts) do
    if a.name == "$G" and named > 0 and plan.cipher then
      -- the key of every encrypted file is derived from its account's name
      problem(plan, a.path, a.path .. ": encrypted streams of $G cannot move to a declarable account "
        .. "(their keys are derived from the name $G); recover $G and the other accounts "
        .. "in separate runs, with a site policy that keeps one or the other")
    elseif a.name == "$G" and named > 0 then
      local new = "GLOBAL"
      local i = 1
      while jsr.lstat(m.store.js_dir .. "/" .. new) do i = i + 1; new = "GLOBAL" .. i end
      plan.renames[#plan.renames + 1] = { path = a.path, to = m.store.js_dir .. "/" .. new,
        why = "$G cannot be declared in a config with other accounts" }
      a.original_name, a.name, a.anonymous = "$G", new, true
      for _, s in ipairs(plan.streams) do if s.account == "$G" then s.account = new end end
    end
  end
end

-- every declared account must read back under its own name: the server
-- looks for jetstream/<name>, and one it cannot find is silently empty
function steps.account_names(plan)
  for _, a in ipairs(plan.accounts) do
    if a.name ~= "$G" then
      local ok, why = conf.key(a.name)
      if not ok then problem(plan, a.path, a.path .. ": " .. why) end
    end
  end
end

-- Operator mode (accounts named by public key): the accounts' own JWTs
-- serve them, and their users log in with their own .creds, so no users
-- or passwords are made (jsr/operator.lua).  Only for a recovery.conf:
-- opts.operator is prepare's (restore and export, which plan without
-- it, send streams to a cluster that has its own JWTs).
function steps.operator(plan)
  local operator = require("jsr.operator")
  local m = plan.model
  local opinfo = plan.opts.operator and operator.gather(m, plan.opts.operator) or { mode = false }
  if not opinfo.mode then return end
  plan.operator_mode = true
  plan.operator = operator.plan(m, opinfo, plan.accounts, function(path, msg) problem(plan, path, msg) end,
    function(n) note(plan, n) end)
  for _, a in ipairs(plan.accounts) do
    a.jwt_name = opinfo.accounts[a.name] and opinfo.accounts[a.name].name
  end
end

-- Salvage from the Raft logs before _js_ is moved aside: only for the
-- streams and consumers kept, written in the same set of changes.
-- A malformed Raft entry is a problem like an unreadable meta file:
-- without --skip-bad nothing changes; with it the streams and consumers
-- it may be about are prepared from their own files, without salvage
-- from their Raft logs (jsr/salvage.lua), and _js_ is moved aside as
-- always (kept, unless --purge).
function steps.salvage(plan)
  local store_dir = plan.store.store_dir
  local sok, salv = pcall(require("jsr.salvage").analyze, plan.model, plan.hooks.salvage)
  if not sok then
    local why = "cannot read the Raft logs: " .. tostring(salv)
    salv = { available = false, why = why, streams = {}, consumers = {}, findings = {} }
    unreadable(plan, store_dir, plan.opts.skip_bad and why .. " (nothing salvaged)" or why)
  end
  for _, f in ipairs(salv.findings or {}) do
    if plan.opts.skip_bad then
      plan.skipped_bad[#plan.skipped_bad + 1] = { path = f.file, message = f.message, raft = true }
    else
      problem(plan, f.file, f.message)
      plan.raft_problems = true
    end
  end
  plan.salvage = salv
  plan.salvage_writes, plan.salvage_removals = {}, {}
  for _, s in ipairs(plan.streams) do
    local ss = salv.streams[s.path]
    if ss and ss.write then plan.salvage_writes[#plan.salvage_writes + 1] = ss.write end
    for _, pth in ipairs(ss and ss.write and ss.remove or {}) do
      plan.salvage_removals[#plan.salvage_removals + 1] = pth
    end
    for _, c in ipairs(s.consumers) do
      local cs = salv.consumers[c.path]
      if cs and cs.write then plan.salvage_writes[#plan.salvage_writes + 1] = cs.write end
    end
  end
end

function steps.removals(plan) M.plan_removals(plan, plan.salvage) end

-- Where recovery.conf and the report go, the port, and what earlier runs
-- recorded that the report keeps.
function steps.files(plan)
  local previous = plan.previous
  plan.previous_removals = previous.removed or {}
  plan.previous_salvaged = previous.salvaged
  plan.port = plan.opts.port or previous.port or 4222
  plan.config_path = layout.config(plan.store.store_dir)
  plan.report_path = layout.report(plan.store.store_dir)
end

-- The standalone server's credentials and recovery.conf, made when the
-- plan is applied (random passwords, bcrypt: nothing a read-only plan for
-- restore or export needs).  Kept stable across runs, so re-running
-- changes nothing.
function M.standalone_config(plan)
  local prev_accounts = {}
  for _, a in ipairs(plan.previous.accounts or {}) do prev_accounts[a.name] = a end
  -- The user name is the account's name where any client can send it and
  -- an operator can type it; otherwise account-N (libnats does not escape
  -- the user in its CONNECT JSON: a " or \ there is a protocol error).
  local taken = {}
  for _, a in ipairs(plan.accounts) do taken[a.name] = true end
  for _, p in pairs(prev_accounts) do if p.user then taken[p.user] = true end end
  local n = 0
  local function user_for(name)
    if name:match("^[%w%._%-@~$#=:,;+]+$") and name ~= conf.ANONYMOUS then return name end
    repeat n = n + 1 until not taken["account-" .. n]
    taken["account-" .. n] = true
    return "account-" .. n
  end
  for _, a in ipairs(plan.accounts) do
    local p = prev_accounts[a.name]
    if a.name ~= "$G" and not plan.operator_mode then
      a.user = p and p.user or user_for(a.name)
      a.password = p and p.password or jsr.random_hex(12)
      a.password_bcrypt = p and p.password_bcrypt or jsr.bcrypt(a.password)
    end
    if p and p.original_name then a.original_name, a.anonymous = p.original_name, p.anonymous end
  end
  plan.config_text = conf.standalone(plan.store.store_dir, plan.accounts, plan.port,
    plan.cipher and { cipher = plan.cipher, env = keys.ENV } or nil, plan.operator)
  -- a leaf's or cluster's JetStream domain, kept (or renamed) so the
  -- standalone server answers on $JS.<domain>.API as the old one did
  if plan.opts.domain then plan.config_text = require("jsr.domain").with_domain(plan.config_text, plan.opts.domain) end
end

local read_file = files.read

-- Kept under jsr.prepare for site policies that call them from here.
M.pretty = printer.pretty
M.count = printer.count

-- How the plan is shown and recorded (jsr/plantext.lua); here too for
-- scripts that call them from prepare.
local plantext = require("jsr.plantext")
M.report, M.print_plan, M.print_next_steps = plantext.report, plantext.print_plan, plantext.print_next_steps
M.suspended_limits, M.expired_why, M.age_effect = plantext.suspended_limits, plantext.expired_why, plantext.age_effect

-- The consumers' states as prepare leaves them (o.dat, or what salvage
-- writes to it), for the done-work rule; nil when one cannot be read.
local function consumer_states(s, salv)
  local out = {}
  for _, c in ipairs(s.consumers) do
    local cs = salv.consumers[c.path]
    local bytes = cs and cs.write and cs.write.data or sealed.odat(s, c)
    local st = bytes and raft.consumer_state(bytes)
    if not st or not c.config then return nil, c.name end
    out[#out + 1] = { name = c.name, config = c.config, state = st }
  end
  return out
end

-- What the cluster had removed and the survivor's blocks still hold: the
-- messages past max_age before its newest message (when max_age is
-- suspended), the deletes its stream log holds, and done work (acked
-- work-queue and interest messages).  One scan per
-- stream, in plan.expired (block by block, jsr/removal.lua); a block salvage
-- rewrites gets the marks in the bytes it writes.
function M.plan_removals(plan, salv)
  local salvage_write = {}
  for _, w in ipairs(plan.salvage_writes) do salvage_write[w.path] = w end
  for _, s in ipairs(plan.streams) do
    local ss = salv.streams[s.path]
    local dels = ss and ss.deletes
    if dels and next(dels) == nil then dels = nil end
    local max_del = 0
    for seq in pairs(dels or {}) do max_del = math.max(max_del, seq) end
    local done, bound
    local retention = s.original.retention
    if (retention == "workqueue" or retention == "interest") and #s.consumers > 0
       and plan.hooks.done_work(s) == "remove" then
      local cons, bad = consumer_states(s, salv)
      local why
      if not cons then
        why = ("the state of consumer %s cannot be read"):format(bad)
      else
        done, bound = donework.rule(retention, cons)
        if not done then why = bound end
      end
      if why then
        plan.notes[#plan.notes + 1] = ("%s: acked %s messages still on disk are not removed (%s)")
          :format(s.path, retention, why)
      end
    end
    if s.expire_cutoff or dels or done then
      local more = (dels or done) and function(rec)
        if dels and dels[rec.seq] then return "take", "deleted" end
        if done and rec.seq <= bound and done(rec) then return "take", "done" end
        if rec.seq > max_del and (not done or rec.seq > bound) then return "stop" end
        return "skip"
      end
      local want = s.expire_cutoff and age.expired_want(s.expire_cutoff, more) or more
      local res, why = removal.collect(s, want)
      if not res then
        local what = {}
        if s.expire_cutoff then what[#what + 1] = "messages past max_age when the survivor stored its newest message" end
        if dels then what[#what + 1] = "deletes in the stream's Raft log" end
        if done then what[#what + 1] = "acked " .. retention .. " messages" end
        plan.notes[#plan.notes + 1] = ("%s: what the cluster had removed (%s) is not removed from "
          .. "the survivor's blocks (%s): if any, the standalone server serves it again"):format(s.path,
          table.concat(what, ", "), why)
      else
        for _, b in ipairs(res.blocks) do
          b.stream, b.max_age = s, s.max_age
          -- a block salvage writes after the newest keeps the last
          -- sequence: an emptied newest block can go like an older one
          if b.last and ss and ss.block and ss.block ~= b.path then b.last = false end
          local w = salvage_write[b.path]
          if w then
            -- salvage cut a torn tail and appends here: its records follow
            w.data = assert(jsr.records_mark_deleted(w.data, b.mark or b.offsets, { key = b.key }))
            b.merged = true
          end
          plan.expired[#plan.expired + 1] = b
        end
      end
    end
  end
end

-- Applies the plan as one set of changes. Returns the journal id (or nil
-- when there was nothing to change) and the number of changes.
function M.apply(plan, opts)
  opts = opts or {}
  if not plan.config_text then M.standalone_config(plan) end
  local c = assert(plan.store:changes())
  local function check(ok, err) if not ok then c:close(); error(err, 0) end end
  for _, w in ipairs(plan.writes) do check(c:write_meta(w.path, w.config)) end
  -- 0640: as the server creates its block and state files
  for _, w in ipairs(plan.salvage_writes or {}) do
    -- an encrypted store's files go back encrypted (jsr/sealed.lua)
    local data, extra = sealed.disk_bytes(w)
    check(data, extra)
    check(c:replace(w.path, data, 416))
    if type(extra) == "table" then check(c:replace(extra.path, extra.data, 416)) end
  end
  for _, b in ipairs(plan.expired) do removal.apply(c, b, check, opts) end
  -- index files of a rewritten block: the server rebuilds them
  for _, pth in ipairs(plan.salvage_removals or {}) do check(c:move(pth, { purge = opts.purge })) end
  for _, r in ipairs(plan.removals) do check(c:move(r.path, { purge = opts.purge })) end
  for _, r in ipairs(plan.renames) do check(c:rename(r.path, r.to)) end
  if read_file(plan.config_path) ~= plan.config_text then
    check(c:replace(plan.config_path, plan.config_text, 384)) -- 0600: it holds passwords
  end
  local report = M.report(plan)
  if read_file(plan.report_path) ~= report then
    check(c:replace(plan.report_path, report, 384))
  end
  local n = c:count()
  local id
  if n > 0 then
    local cerr
    id, cerr = c:commit()
    check(id, cerr)
  end
  c:close()
  return id, n
end

local usage = [[
usage: js-recover prepare <store> [--dry-run] [--skip-bad] [--port N] [--purge] [--force-open] [--json]
                          [--keep-age-limits] [--allow-newer] [--domain X]
       js-recover prepare <store> <store>... --into DIR   (several survivors: DIR, new, gets each
                          stream's most complete copy, then is prepared)
                          [--resolver-dir D] [--operator-jwt F] [--config F]   (operator mode)
                          [--key-file F] [--prev-key-file F]   (or JSR_KEY, JSR_PREV_KEY)
]]

-- Runs the whole prepare with a policy (a table of hooks, or nil for the
-- defaults) and the command-line arguments.  Returns the exit code.
function M.run(policy, ...)
  local opts, args = cli.parse({ ... }, require("jsr.operator").with(keys.with {
    ["dry-run"] = "flag", ["skip-bad"] = "flag", purge = "flag", json = "flag", port = "number",
    ["force-open"] = "flag", ["keep-age-limits"] = "flag", ["allow-newer"] = "flag", into = "string",
    domain = "string",
  }))
  if not opts then return cli.fail("prepare", 2, args, "\n", usage) end
  local kinfo, kerr = keys.load(opts)
  if not kinfo then return cli.fail("prepare", 2, kerr, "\n") end
  -- several survivors' stores: --into DIR gets each stream's chosen copy (jsr/survivors.lua)
  if #args > 1 or opts.into then return require("jsr.survivors").prepare(policy, opts, args) end
  if #args ~= 1 then return cli.fail("prepare", 2, "expected one <store>, got ", #args, "\n", usage) end
  local function say(...) cli.fail("prepare", nil, ...) end
  local st, oerr = jsr.open(args[1])
  if not st then
    say(oerr, "\n")
    return 3
  end
  -- the guards, before anything is read for the plan: one js-recover at a
  -- time, no half-done earlier run, nobody else using the store
  local lock <close>, lerr = st:lock()
  if not lock then
    say(lerr, "\n")
    return 1
  end
  local unfinished = guard.unfinished(st)
  if unfinished then
    say("nothing changed: ", unfinished, "\n")
    return 1
  end
  local refusal, warning = guard.users(st, "--force-open")
  if warning then say("warning: ", warning, "\n") end
  if refusal then
    if not opts["force-open"] and not opts["dry-run"] then
      say("nothing changed: ", refusal, "\n")
      return 1
    end
    say("warning: ", refusal, "\n")
  end
  if not opts["dry-run"] then
    -- a purge an earlier run was cut off in: the trees are committed as gone
    local finished, ferr = st:journal_finish()
    if not finished then
      -- what is left is in .js-recover/removed/, not in the store the server
      -- reads: stopping here would only make every later run stop too
      say("warning: ", ferr, "\n  (what an earlier --purge left in .js-recover/removed/ is "
        .. "deleted by a later prepare once the cause is fixed, e.g. run as root; `js-recover "
        .. "undo --ignore-purged` deletes it too)\n")
    end
    if finished and finished > 0 then
      say(("finished deleting the trees %d earlier run(s) removed with --purge\n"):format(finished))
    end
  end
  -- the JetStream domain recovery.conf keeps: --domain X, else the one in
  -- the survivor's config (--config F); the store does not record it
  local own_domain, derr = require("jsr.domain").own(opts)
  if not own_domain then say(derr, "\n"); return 2 end
  local m, err = model.scan(st)
  if not m then
    say(err, "\n")
    return 3
  end
  -- A store a newer nats-server wrote may hold what js-recover would
  -- misread or rewrite wrongly (jsr/newer.lua): nothing is changed unless
  -- the operator says so, and then only what js-recover knows is touched.
  local newer = require("jsr.newer").findings(m)
  if #newer > 0 then
    local refuse = not opts["allow-newer"] and not opts["dry-run"]
    say(refuse and "nothing changed: this store was written by a nats-server newer than js-recover knows:\n"
      or "warning: this store was written by a nats-server newer than js-recover knows:\n")
    for _, f in ipairs(newer) do io.stderr:write("  ", f.message, "\n") end
    if refuse then
      io.stderr:write("Use a js-recover that knows it, or run again with --allow-newer (prepare then changes\n"
        .. "only what it knows: replicas, retention, time limits, _js_; start a server at least that new).\n")
      return 1
    end
  end
  -- read before plan edits the configs and apply moves _js_ aside; printed
  -- last (jsr/lost.lua)
  local lost = require("jsr.lost").analyze(m)
  local plan = M.plan(m, policy, { skip_bad = opts["skip-bad"], port = opts.port,
    keep_age_limits = opts["keep-age-limits"], operator = require("jsr.operator").from_opts(opts),
    domain = own_domain.name })
  if #plan.problems > 0 then
    io.stderr:write("js-recover prepare: nothing changed; these entries cannot be read:\n")
    for _, p in ipairs(plan.problems) do io.stderr:write("  ", p.message, "\n") end
    io.stderr:write("Fix them, or run again with --skip-bad to leave them out (reported).\n")
    if plan.operator_mode and not plan.operator then
      io.stderr:write("(--skip-bad does not leave out a missing or untrusted JWT: the server needs the operator's and\n"
        .. "the accounts' JWTs, copied from the survivor; point at them with the options named.)\n")
    end
    if plan.raft_problems then
      io.stderr:write("(With --skip-bad a malformed Raft entry leaves out the salvage from the Raft logs of\n"
        .. "the streams and consumers it may be about; they are prepared from their own files.)\n")
    end
    return 1
  end
  if opts["dry-run"] then
    if opts.json then
      io.stdout:write(M.pretty({ writes = #plan.writes, removals = #plan.removals }), "\n")
    else
      local out = cli.human(io.stdout)
      out:write("dry run: nothing will be changed\n")
      M.print_plan(plan, out, false)
      out:write(("would write %s and %s\n"):format(plan.config_path, plan.report_path))
    end
    return 0
  end
  local id, n = M.apply(plan, { purge = opts.purge })
  if opts.json then
    io.stdout:write(M.report(plan))
    return 0
  end
  local out = cli.human(io.stdout)
  M.print_plan(plan, out, true)
  if not id then
    out:write("\nThe store is already prepared: nothing changed.\n")
  else
    local store_dir = plan.store.store_dir
    out:write(("\n%d changes applied (journal %s/%s%s;\n"
      .. "replaced files and removed trees are kept under %s/).\n")
      :format(n, layout.journal_dir(store_dir), id, layout.JOURNAL_EXT, layout.state_dir(store_dir)))
    out:write(("wrote %s and %s\n"):format(plan.config_path, plan.report_path))
  end
  M.print_next_steps(plan, out)
  require("jsr.lost").print(lost, out)
  return 0
end

return M
