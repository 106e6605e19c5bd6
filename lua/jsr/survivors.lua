-- Several survivors: when a cluster lost quorum with more than one disk
-- left, each stream and consumer may have a copy on several of them, one
-- older than another (a node that dropped out earlier).  Per stream and
-- consumer: every copy's state after replay (jsr/snapshot.lua's plan of
-- its store), its Raft group's position on that node, and the copy to
-- take, by the rule the server elects the most up-to-date replica with
-- (raft.go: a vote goes to a candidate whose last log term is higher, or
-- equal with a last index at least as high), then the replayed last
-- sequence and message count, then the order the stores were given.
-- Two copies holding different records at one sequence are a conflict no
-- rule settles: reported, never merged; restore and export leave such a
-- stream out unless the policy's choose_copy names the copy.
--
--   local sv = require("jsr.survivors")
--   local survey = sv.survey({ {store = dir, r = snapshot.plan(...)}, ... }, policy)
--   survey.streams[i] = {account, name, copies = {...}, chosen, why, conflicts, consumers}
--
-- Hook: choose_copy(stream, copies) -> index into copies, a store
-- directory, a node name, or nil for the rule ("always n1":
-- `function(s, copies) return "n1" end`).
local jsr = require("jsr")
local raft = require("jsr.raft")
local lost = require("jsr.lost")
local metastate = require("jsr.metastate")
local snapshot = require("jsr.snapshot")
local pretty = require("jsr.print").pretty
local json = jsr.json
local layout = jsr.layout

local M = {}

M.hooks = { choose_copy = function(stream, copies) end }

-- split(policy) -> survivors' hooks, the rest (export/restore/prepare's)
function M.split(policy) return require("jsr.policy").split(M.hooks, policy) end

-- The position of a group's log on this node: the last entry it stored
-- (its index and the term it was written in) or, when the log was
-- compacted past it, the newest snapshot's term and index; and the term
-- the node had reached (tav.idx).
local function group_position(sys, g)
  if type(g) ~= "table" or type(g.name) ~= "string" then return nil end
  local dir = sys .. "/" .. g.name
  if not jsr.lstat(dir) then return nil end
  local pos = { group = g.name, term = 0, index = 0 }
  local snaps = raft.snapshots(dir)
  local snap = snaps[#snaps]
  if snap then pos.term, pos.index, pos.snapshot_index = snap.term, snap.index, snap.index end
  local files = jsr.block_files(dir) or {}
  for i = #files, 1, -1 do
    local last_index, last_term
    raft.log(dir, function(index, ae)
      last_index, last_term = index, ae.term
      return true
    end, { files[i] })
    if last_index then
      if last_index > pos.index then pos.term, pos.index = last_term, last_index end
      break
    end
  end
  local tav = raft.tav(dir)
  pos.current_term = tav and tav.term or nil
  return pos
end

-- positions(m) -> {[account\0stream] = {stream = pos, consumers = {[name] = pos}}}
local function positions(m)
  local meta, moved = metastate.find(m)
  if not meta or moved then return {} end
  local sys = layout.raft_dir_of(meta)
  local ok, st = pcall(metastate.read, m, meta)
  if not ok then return {} end
  local out = {}
  for _, sa in pairs(st.streams or {}) do
    local p = { stream = group_position(sys, sa.group), consumers = {} }
    for cn, ca in pairs(sa.consumers or {}) do p.consumers[cn] = group_position(sys, ca.group) end
    out[sa.account .. "\0" .. sa.name] = p
  end
  return out
end

-- The node a store belongs to, by name when it can be told.
local function node_of(m)
  local rep = lost.analyze(m)
  for _, p in ipairs(rep.peers or {}) do
    if p.this_node then return p.name or p.id, rep end
  end
  return nil, rep
end

-- Each consumer's position as the snapshot holds it (o.dat after
-- salvage), by consumer directory: the file set listed once per stream.
local function consumer_positions(r, e)
  local out = {}
  for _, f in ipairs(snapshot.files(r, e)) do
    local dirname = f.consumer
    if dirname then
      local bytes = f.make and f.make() or require("jsr.files").read(f.path)
      local cs = bytes and raft.consumer_state(bytes)
      if cs then out[dirname] = { ack_floor = cs.ack_floor.stream, delivered = cs.delivered.stream } end
    end
  end
  return out
end

-- each_record(r, e, fn): fn(seq, body) for every record of the copy's
-- blocks as the snapshot holds them (a deleted one included: two copies
-- of one stream hold the same bytes at a sequence either way); body is
-- the subject, headers and payload.  nil, why when it cannot be read.
local EBIT, TBIT = 1 << 63, 1 << 62
local function each_record(r, e, fn)
  if e.encrypted then return nil, "encrypted blocks are not compared" end
  for _, f in ipairs(snapshot.files(r, e)) do
    if f.block and f.ext == layout.BLK_EXT then
      local data
      if f.make then data = f.make() else data = require("jsr.files").read(f.path) end
      if not data then return nil, f.path .. ": cannot be read" end
      local o, n = 1, #data
      while o + 22 <= n do
        local rl, seq = string.unpack("<I4I8", data, o)
        local len = rl & 0x7fffffff
        if len < 30 or o + len - 1 > n then break end
        if seq & TBIT == 0 then fn(seq & ~EBIT, data:sub(o + 20, o + len - 9)) end
        o = o + len
      end
    end
  end
  return true
end

-- conflict(a, b) -> nil | {seqs = n, examples = {...}} | {why}: sequences
-- both copies hold with different records
local function conflict(a, b)
  local upto = math.min(a.state.last_seq, b.state.last_seq)
  if upto == 0 then return nil end
  local digest = {}
  local ok, why = each_record(a.r, a.e, function(seq, body)
    if seq <= upto then digest[seq] = jsr.sha256(body) end
  end)
  if not ok then return { why = why } end
  local n, ex = 0, json.array()
  ok, why = each_record(b.r, b.e, function(seq, body)
    local d = seq <= upto and digest[seq]
    if d and d ~= jsr.sha256(body) then
      n = n + 1
      if #ex < 10 then ex[#ex + 1] = seq end
    end
  end)
  if not ok then return { why = why } end
  if n == 0 then return nil end
  return { seqs = n, examples = ex }
end

-- Sort key of a copy: the Raft rule when every copy has a position,
-- otherwise the replayed state alone.
local function better(a, b, raft_rule)
  if raft_rule then
    if a.pos.term ~= b.pos.term then return a.pos.term > b.pos.term, "a higher last log term" end
    if a.pos.index ~= b.pos.index then return a.pos.index > b.pos.index, "the same last term, a higher last log index" end
  end
  if a.last_seq ~= b.last_seq then return a.last_seq > b.last_seq, "a higher last sequence after replay" end
  if a.count ~= b.count then return a.count > b.count, "more messages after replay" end
  return a.order < b.order, "the same state; the store given first"
end

-- pick(copies, hook_result) -> chosen index, why, by_policy
local function pick(copies, hook, what)
  local raft_rule = true
  for _, c in ipairs(copies) do if not c.pos then raft_rule = false end end
  local h = hook and hook(what, copies)
  if h ~= nil then
    for i, c in ipairs(copies) do
      if h == i or h == c.store or h == c.node or h == c.label
         or (type(h) == "string" and jsr.realpath(h) and jsr.realpath(h) == jsr.realpath(c.store)) then
        return i, "chosen by the policy (choose_copy)", true
      end
    end
    error(("choose_copy for %s returned %s, which is none of its copies"):format(what.label, tostring(h)), 0)
  end
  if #copies == 1 then return 1, "the only copy" end
  local best = 1
  for i = 2, #copies do
    if better(copies[i], copies[best], raft_rule) then best = i end
  end
  -- why it beats the runner-up
  local second
  for i, c in ipairs(copies) do
    if i ~= best and (not second or better(c, copies[second], raft_rule)) then second = i end
  end
  local _, why = better(copies[best], copies[second], raft_rule)
  local b, o = copies[best].pos, copies[second].pos
  if raft_rule and b.term == o.term and b.index == o.index then
    why = ("%s (the same Raft position, term %d, index %d)"):format(why, b.term, b.index)
  elseif raft_rule then
    why = ("%s (term %d, index %d against %s's term %d, index %d)"):format(why, b.term, b.index,
      copies[second].label, o.term, o.index)
    -- 2.9 grants a vote only when both are at least as high (2.10+: the term first)
    if b.index < o.index then why = why .. "; a 2.9 server would elect neither (it wants both at least as high)" end
  else
    why = why .. " (no Raft position for every copy: the replayed state decides)"
  end
  return best, why
end

-- survey(sources, policy) -> {stores = {...}, streams = {...}, lost = {...}}
-- sources: { {store = dir, r = snapshot plan}, ... } in the order given
function M.survey(sources, policy)
  local own = M.split(policy)
  local out = { stores = {}, streams = {} }
  local by_key, order = {}, {}
  local reports = {}
  for i, src in ipairs(sources) do
    local m = src.r.model
    local node, rep = node_of(m)
    reports[i] = rep
    local label = node or (m.store.store_dir:match("([^/]+)/*$") or m.store.store_dir)
    out.stores[i] = { store = m.store.store_dir, node = node, label = label }
    local pos = positions(m)
    for _, e in ipairs(src.r.streams) do
      local key = e.account .. "\0" .. e.name
      local st = snapshot.state(src.r, e)
      local p = pos[key] or { consumers = {} }
      local copy = { order = i, store = m.store.store_dir, node = node, label = label, r = src.r, e = e,
                     state = st, last_seq = st.last_seq, count = st.messages, pos = p.stream, consumers = {} }
      local cps = consumer_positions(src.r, e)
      for _, c in ipairs(e.consumers) do
        local cname = c.config and (c.config.durable_name or c.config.name) or c.path:match("([^/]+)$")
        local cp = cps[c.path:match("([^/]+)$")] or { ack_floor = 0, delivered = 0 }
        copy.consumers[cname] = { order = i, store = copy.store, node = node, label = label, r = src.r, c = c,
          ack_floor = cp.ack_floor, delivered = cp.delivered, last_seq = cp.ack_floor, count = cp.delivered,
          pos = p.consumers[c.name] or p.consumers[cname] }
      end
      if not by_key[key] then
        by_key[key] = { account = e.account, name = e.name, label = e.account .. " > " .. e.name, copies = {} }
        order[#order + 1] = key
      end
      local s = by_key[key]
      s.copies[#s.copies + 1] = copy
    end
  end
  table.sort(order)
  for _, key in ipairs(order) do
    local s = by_key[key]
    s.chosen, s.why, s.by_policy = pick(s.copies, own.choose_copy, s)
    local best = s.copies[s.chosen]
    s.conflicts = {}
    for i, c in ipairs(s.copies) do
      if i ~= s.chosen then
        local x = conflict(best, c)
        if x then x.with, x.against = c.label, best.label; s.conflicts[#s.conflicts + 1] = x end
      end
    end
    -- consumers: every name any copy holds, each by the same rule
    local names, seen = {}, {}
    for _, c in ipairs(s.copies) do
      for cn in pairs(c.consumers) do if not seen[cn] then seen[cn] = true; names[#names + 1] = cn end end
    end
    table.sort(names)
    s.consumers = {}
    for _, cn in ipairs(names) do
      local cs = { name = cn, label = s.label .. " > " .. cn, copies = {} }
      for _, c in ipairs(s.copies) do cs.copies[#cs.copies + 1] = c.consumers[cn] end
      cs.chosen, cs.why = pick(cs.copies, nil, cs)
      cs.with_stream = cs.copies[cs.chosen].order == best.order
      s.consumers[#s.consumers + 1] = cs
    end
    out.streams[#out.streams + 1] = s
  end
  out.lost = M.lost(reports, by_key)
  return out
end

-- The lost-asset report over every survivor: a stream is lost when no
-- survivor holds it, a durable consumer when no survivor holds it.
function M.lost(reports, held)
  local out = { available = false, streams = {}, consumers = {}, why = nil, peers = {} }
  local seen_s, seen_c = {}, {}
  for _, rep in ipairs(reports) do
    if rep.available then out.available = true elseif not out.why then out.why = rep.why end
    for _, p in ipairs(rep.peers or {}) do out.peers[#out.peers + 1] = p end
    for _, s in ipairs(rep.streams or {}) do
      local key = s.account .. "\0" .. s.name
      if not held[key] and not seen_s[key] then seen_s[key] = true; out.streams[#out.streams + 1] = s end
    end
    for _, c in ipairs(rep.consumers or {}) do
      local key = c.account .. "\0" .. c.stream
      local ckey = key .. "\0" .. c.name
      local h = held[key]
      local here = false
      for _, copy in ipairs(h and h.copies or {}) do if copy.consumers[c.name] then here = true end end
      if not here and not seen_c[ckey] then seen_c[ckey] = true; out.consumers[#out.consumers + 1] = c end
    end
  end
  if out.available then out.why = nil end
  return out
end

local function pos_json(p)
  if not p then return nil end
  return { group = p.group, last_term = p.term, last_index = p.index, snapshot_index = p.snapshot_index,
           current_term = p.current_term }
end

-- json(survey) -> plain tables for --json
function M.json(sv)
  local o = { stores = json.array(), streams = json.array(), lost = json.object() }
  for _, s in ipairs(sv.stores) do o.stores[#o.stores + 1] = { store = s.store, node = s.node, label = s.label } end
  for _, s in ipairs(sv.streams) do
    local copies = json.array()
    for i, c in ipairs(s.copies) do
      copies[#copies + 1] = { store = c.store, node = c.node, label = c.label, chosen = i == s.chosen,
        last_seq = c.state.last_seq, first_seq = c.state.first_seq, messages = c.state.messages,
        bytes = c.state.bytes, raft = pos_json(c.pos) }
    end
    local conflicts = json.array()
    for _, x in ipairs(s.conflicts) do
      conflicts[#conflicts + 1] = { copy = x.with, chosen_copy = x.against, sequences = x.seqs,
        examples = x.examples, not_compared = x.why }
    end
    local consumers = json.array()
    for _, cs in ipairs(s.consumers) do
      local cc = json.array()
      for i, c in ipairs(cs.copies) do
        cc[#cc + 1] = { store = c.store, node = c.node, label = c.label, chosen = i == cs.chosen,
          ack_floor = c.ack_floor, delivered = c.delivered, raft = pos_json(c.pos) }
      end
      consumers[#consumers + 1] = { name = cs.name, chosen = cs.copies[cs.chosen].store, why = cs.why,
        copies = cc }
    end
    o.streams[#o.streams + 1] = { account = s.account, name = s.name, chosen = s.copies[s.chosen].store,
      chosen_label = s.copies[s.chosen].label, why = s.why, by_policy = s.by_policy or false,
      copies = copies, conflicts = conflicts, consumers = consumers }
  end
  local l = sv.lost
  o.lost = { available = l.available, why = l.why, streams = json.array(), consumers = json.array() }
  for _, s in ipairs(l.streams) do
    o.lost.streams[#o.lost.streams + 1] = { account = s.account, name = s.name, replicas = s.replicas,
      on = json.array(s.on), consumers = json.array(s.consumers) }
  end
  for _, c in ipairs(l.consumers) do
    o.lost.consumers[#o.lost.consumers + 1] = { account = c.account, stream = c.stream, name = c.name,
      replicas = c.replicas, on = json.array(c.on) }
  end
  return o
end

-- merge(survey) -> the streams to send, each entry taken from its chosen
-- copy's plan (entry.source: the plan snapshot.files reads it from), its
-- consumers each from their own chosen copy; and those left out (copies
-- that conflict, no copy named by the policy).
function M.merge(sv)
  local streams, refused = {}, {}
  for _, s in ipairs(sv.streams) do
    if #s.conflicts > 0 and not s.by_policy then
      local x = s.conflicts[1]
      refused[#refused + 1] = { account = s.account, name = s.name, why = x.why and
        ("copies not compared (%s): choose one with the policy's choose_copy"):format(x.why) or
        ("%s and %s hold different messages at %d sequence(s) (first %s): no rule settles it; "
          .. "choose a copy with the policy's choose_copy"):format(x.against, x.with, x.seqs, tostring(x.examples[1])) }
    else
      local best = s.copies[s.chosen]
      local e = best.e
      e.source = best.r
      local cons = {}
      for _, cs in ipairs(s.consumers) do
        local cc = cs.copies[cs.chosen]
        if cc.r ~= best.r then cc.c.source = cc.r else cc.c.source = nil end
        cons[#cons + 1] = cc.c
      end
      e.consumers = cons
      e.chosen_from = best.store
      streams[#streams + 1] = e
    end
  end
  return streams, refused
end

-- Several stores given: each must be a different store.
local function distinct(stores)
  local seen = {}
  for _, st in ipairs(stores) do
    -- a store_dir and its jetstream/ are one store
    local opened = jsr.open(st)
    local real = opened and (jsr.realpath(opened.store_dir) or opened.store_dir) or jsr.realpath(st) or st
    if seen[real] then return nil, ("%s is given twice (as %s and %s)"):format(real, seen[real], st) end
    seen[real] = st
  end
  return true
end

-- open(cmd, opts, stores, policy) -> r | nil, code: export/restore's
-- checks and plan per store (jsr/export.lua open), then per stream the
-- chosen copy.  r.streams holds each stream's entry from its chosen
-- copy (entry.source its plan); r.stores every store's plan; r.survey.
function M.open(cmd, opts, stores, policy)
  local function say(...) io.stderr:write("js-recover ", cmd, ": ", ...) end
  local ok, derr = distinct(stores)
  if not ok then say(derr, "\n"); return nil, 2 end
  local own, rest = M.split(policy)
  local export = require("jsr.export")
  local sources = {}
  for i, st in ipairs(stores) do
    local r, code = export.open(cmd, opts, st, rest)
    if not r then return nil, code end
    sources[i] = { store = st, r = r }
  end
  local sok, sv = pcall(M.survey, sources, own)
  if not sok then say(sv, "\n"); return nil, 3 end
  local streams, refused = M.merge(sv)
  for _, x in ipairs(refused) do
    say("LEFT OUT ", x.account, " > ", x.name, ": ", x.why, "\n")
  end
  local merged = { model = sources[1].r.model, plan = sources[1].r.plan, streams = streams, problems = {},
                   stores = sources, survey = sv, refused = refused }
  if not opts.json then
    for _, s in ipairs(sv.streams) do
      local c = s.copies[s.chosen]
      if #s.copies > 1 or #sources > 1 then
        io.stderr:write(("%s > %s: from %s (%s of %d copies: %s)\n"):format(s.account, s.name, c.label,
          s.by_policy and "policy" or "best", #s.copies, s.why))
      end
      for _, cs in ipairs(s.consumers) do
        if not cs.with_stream then
          io.stderr:write(("  consumer %s from %s: %s\n"):format(cs.name, cs.copies[cs.chosen].label, cs.why))
        end
      end
    end
    for _, l in ipairs(sv.lost.streams) do
      io.stderr:write(("LOST %s > %s: no survivor holds it\n"):format(l.account, l.name))
    end
  end
  return merged
end

local function position_text(p)
  if not p then return "-" end
  return ("%d/%d"):format(p.term, p.index)
end

-- print(sv, out): the copies table, conflicts and the lost report
function M.print(sv, out)
  local tbl = require("jsr.table")
  local rows = {}
  for k, s in ipairs(sv.streams) do
    if k > 1 then rows[#rows + 1] = "-" end
    for i, c in ipairs(s.copies) do
      rows[#rows + 1] = { i == 1 and s.account or "", i == 1 and s.name or "", c.label, c.state.last_seq,
        c.state.messages, position_text(c.pos), "", "",
        i == s.chosen and ("CHOSEN: " .. s.why) or "" }
    end
    for _, cs in ipairs(s.consumers) do
      for i, c in ipairs(cs.copies) do
        rows[#rows + 1] = { "", i == 1 and ("  └ " .. cs.name) or "", c.label, "", "", position_text(c.pos),
          c.ack_floor, c.delivered,
          i == cs.chosen and (#cs.copies > 1 and ("CHOSEN: " .. cs.why) or "the only copy") or "" }
      end
    end
  end
  local labels = {}
  for _, st in ipairs(sv.stores) do labels[#labels + 1] = ("%s = %s"):format(st.label, st.store) end
  out:write(tbl.render("Copies on " .. #sv.stores .. " survivors (" .. table.concat(labels, ", ") .. ")",
    { "Account", "Stream / consumer", "Copy", "Last seq", "Messages", "Raft term/index", "Ack floor",
      "Delivered", "Choice" }, rows))
  out:write("(the choice: the highest last Raft log term, then the highest last log index, as the server\n"
    .. " elects the most up-to-date replica; then the replayed last sequence; a policy's choose_copy overrides)\n")
  for _, s in ipairs(sv.streams) do
    for _, x in ipairs(s.conflicts) do
      if x.why then
        out:write(("%s > %s: %s and %s not compared: %s\n"):format(s.account, s.name, x.against, x.with, x.why))
      else
        local ex = {}
        for i, q in ipairs(x.examples) do ex[i] = tostring(q) end
        out:write(("CONFLICT %s > %s: %s and %s hold different messages at %d sequence(s) (%s%s): no rule\n"
          .. "  settles it; restore and export leave it out until the policy's choose_copy names a copy\n")
          :format(s.account, s.name, x.against, x.with, x.seqs, table.concat(ex, " "), x.seqs > #ex and " ..." or ""))
      end
    end
  end
  local l = sv.lost
  out:write("\nLost with the dead nodes (over every survivor)\n")
  if not l.available then
    out:write("  not known: ", tostring(l.why), "\n")
    return
  end
  if #l.streams + #l.consumers == 0 then
    out:write("  nothing: every stream and durable consumer the cluster assigned is on a survivor\n")
  end
  for _, x in ipairs(l.streams) do
    out:write(("  LOST stream %s > %s (R%s): on no survivor; it lived on %s\n"):format(x.account, x.name,
      tostring(x.replicas or "?"), table.concat(x.on or {}, ", ")))
  end
  for _, x in ipairs(l.consumers) do
    out:write(("  LOST consumer %s > %s > %s (R%s): on no survivor; it lived on %s\n"):format(x.account,
      x.stream, x.name, tostring(x.replicas or "?"), table.concat(x.on or {}, ", ")))
  end
end

-- inspect(policy, opts, stores) -> exit code: `js-recover inspect S1 S2 ...`
-- (each store only read); 1 when a store has problems or copies conflict
function M.inspect(policy, opts, stores)
  local function say(...) io.stderr:write("js-recover inspect: ", ...) end
  local ok, derr = distinct(stores)
  if not ok then say(derr, "\n"); return 2 end
  local keys = require("jsr.keys")
  local kinfo, kerr = keys.load(opts)
  if not kinfo then say(kerr, "\n"); return 2 end
  local own, rest = M.split(policy)
  local prep = snapshot.split(rest)
  local sources, problems = {}, {}
  for i, st in ipairs(stores) do
    local r, err = snapshot.plan(st, prep, { skip_bad = true })
    if not r then say(err, "\n"); return 3 end
    for _, p in ipairs(r.problems) do problems[#problems + 1] = p.message end
    for _, b in ipairs(r.plan.skipped_bad or {}) do problems[#problems + 1] = (b.path or "") .. ": " .. b.message end
    sources[i] = { store = st, r = r }
  end
  local sok, sv = pcall(M.survey, sources, own)
  if not sok then say(sv, "\n"); return 3 end
  local conflicts = 0
  for _, s in ipairs(sv.streams) do
    for _, x in ipairs(s.conflicts) do if not x.why then conflicts = conflicts + 1 end end
  end
  local status = (#problems > 0 or conflicts > 0) and 1 or 0
  if opts.json then
    local o = M.json(sv)
    o.problems = json.array(problems)
    io.stdout:write(pretty(o), "\n")
    return status
  end
  local out = require("jsr.cli").human(io.stdout)
  M.print(sv, out)
  if #problems > 0 then
    out:write(("\n%d problem(s) (left out above; `js-recover inspect <store>` on each says more):\n"):format(#problems))
    for _, p in ipairs(problems) do out:write("  ", p, "\n") end
  end
  return status
end

-- gather(streams, dir): the chosen copy of every stream, as replayed
-- (snapshot.files: salvaged tails appended, removals applied, consumers'
-- o.dat salvaged, each consumer from its own chosen copy), written as a
-- new store at dir: into dir.partial, renamed when whole, so a gather
-- cut off leaves nothing that looks like a store.  No store given is
-- written to.
local write_whole = require("jsr.files").write

local function copy_file(from, to)
  local src, err = io.open(from, "rb")
  if not src then return nil, err end
  local dst, derr = io.open(to, "wb")
  if not dst then src:close(); return nil, derr end
  while true do
    local piece = src:read(snapshot.PIECE)
    if not piece then break end
    local ok, werr = dst:write(piece)
    if not ok then src:close(); dst:close(); return nil, to .. ": " .. tostring(werr) end
  end
  src:close()
  local cok, cerr = dst:close()
  if not cok then return nil, to .. ": " .. tostring(cerr) end
  return true
end

local function mkdirs(path)
  local at = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    at = at .. "/" .. part
    if not jsr.lstat(at) then
      local ok, err = jsr.mkdir(at)
      if not ok then return nil, err end
    end
  end
  return true
end

function M.gather(streams, dir)
  local tmp = dir .. ".partial"
  if jsr.lstat(tmp) then return nil, tmp .. " exists (an earlier gather cut off?): remove it first" end
  for _, e in ipairs(streams) do
    local sdir = layout.stream_dir(layout.js_dir(tmp), e.account, e.name)
    for _, f in ipairs(snapshot.files(e.source, e)) do
      local to = sdir .. "/" .. f.name
      local ok, err = mkdirs(to:match("^(.*)/[^/]+$"))
      if ok then
        if f.make then ok, err = write_whole(to, f.make()) else ok, err = copy_file(f.path, to) end
      end
      if not ok then return nil, ("%s > %s: writing %s: %s"):format(e.account, e.name, to, tostring(err)) end
    end
  end
  local ok, err = mkdirs(layout.js_dir(tmp))
  if not ok then return nil, err end
  local rok, rerr = os.rename(tmp, dir)
  if not rok then return nil, rerr end
  return true
end

-- Files under dir, as paths relative to it (directories left out).
local function tree_files(dir, rel, out)
  out = out or {}
  for _, n in ipairs(jsr.listdir(dir .. (rel and ("/" .. rel) or "")) or {}) do
    local r = rel and (rel .. "/" .. n) or n
    local kind = jsr.lstat(dir .. "/" .. r)
    if kind == "directory" then tree_files(dir, r, out) else out[#out + 1] = r end
  end
  return out
end

-- into_store(r, target) -> true | nil, msg: the target store (one of
-- those given, its plan `target`) gets, in one journaled set of changes,
-- the chosen copy of every stream that comes (or one of whose consumers
-- comes) from another store: its files as replayed written over the
-- target's (the target's files the copy lacks moved aside, directories it
-- lacks made), and the target's Raft groups of that stream and its
-- consumers moved aside (what they hold is in the copy already, and
-- replayed again over it they would apply the target's older view).
-- Streams all of whose parts are the target's own are left to prepare.
function M.into_store(r, target)
  local store = target.model.store
  local T = store.store_dir
  local lock <close>, lerr = store:lock()
  if not lock then return nil, lerr end
  local unfinished = require("jsr.guard").unfinished(store)
  if unfinished then return nil, unfinished end
  local meta, moved = metastate.find(target.model)
  local sys = meta and not moved and layout.raft_dir_of(meta) or nil
  local st = sys and metastate.read(target.model, meta) or { streams = {} }
  local groups = {}
  for _, sa in pairs(st.streams or {}) do groups[sa.account .. "\0" .. sa.name] = sa end
  local c = assert(store:changes())
  local made, n = {}, 0
  local function dir_for(path)
    local parent = path:match("^(.*)/[^/]+$")
    if made[parent] or jsr.lstat(parent) == "directory" then return true end
    local pok, perr = dir_for(parent)
    if not pok then return nil, perr end
    made[parent] = true
    return c:mkdir(parent)
  end
  for _, e in ipairs(r.streams) do
    local foreign = e.source ~= target
    for _, cc in ipairs(e.consumers) do if cc.source and cc.source ~= target then foreign = true end end
    if foreign then
      if e.encrypted then
        c:close()
        return nil, ("%s > %s: an encrypted stream's copy from another store cannot go into %s yet "
          .. "(use --into DIR)"):format(e.account, e.name, T)
      end
      n = n + 1
      local tdir = layout.stream_dir(layout.js_dir(T), e.account, e.name)
      local want = {}
      local files = snapshot.files(e.source, e)
      for _, f in ipairs(files) do want[f.name] = true end
      if jsr.lstat(tdir) == "directory" then
        for _, rel in ipairs(tree_files(tdir)) do
          if not want[rel] then
            local rok, rerr = c:move(tdir .. "/" .. rel)
            if not rok then c:close(); return nil, rerr end
          end
        end
      end
      for _, f in ipairs(files) do
        local to = tdir .. "/" .. f.name
        local dok, derr = dir_for(to)
        if not dok then c:close(); return nil, derr end
        local data = f.make and f.make() or require("jsr.files").read(f.path)
        if not data then c:close(); return nil, (f.path or f.name) .. ": cannot be read" end
        local wok, werr = c:replace(to, data)
        if not wok then c:close(); return nil, werr end
      end
      -- the target's Raft groups of the stream and its consumers
      local sa = groups[e.account .. "\0" .. e.name]
      local gs = {}
      if sa then
        gs[#gs + 1] = sa.group
        for _, ca in pairs(sa.consumers or {}) do gs[#gs + 1] = ca.group end
      end
      for _, g in ipairs(gs) do
        local gdir = type(g) == "table" and type(g.name) == "string" and (sys .. "/" .. g.name)
        if gdir and jsr.lstat(gdir) then
          local rok, rerr = c:move(gdir)
          if not rok then c:close(); return nil, rerr end
        end
      end
    end
  end
  if n == 0 then c:close(); return true, 0 end
  local id, cerr = c:commit()
  c:close()
  if not id then return nil, cerr end
  return true, n, id
end

-- prepare(policy, opts, stores) -> exit code: `js-recover prepare S1 S2 ...
-- --into DIR`: DIR (new) gets the chosen copy of every stream and
-- consumer, then is prepared as one store (journaled: undo DIR takes the
-- prepare back; the stores given are only read).
function M.prepare(policy, opts, stores)
  local function say(...) io.stderr:write("js-recover prepare: ", ...) end
  local dir = opts.into
  if not dir then
    say("several stores need --into DIR (a new directory that gets each stream's chosen copy) "
      .. "or --into one of them\n")
    return 2
  end
  -- one of the stores given: rewritten in place, journaled
  local target_index
  local into_open = jsr.lstat(dir) and jsr.open(dir)
  for i, st in ipairs(stores) do
    local so = jsr.open(st)
    if into_open and so and jsr.realpath(so.store_dir) == jsr.realpath(into_open.store_dir) then target_index = i end
  end
  if jsr.lstat(dir) and not target_index then
    say(dir, " exists and is none of the stores given: --into takes a new directory or one of them\n")
    return 2
  end
  local parent = dir:match("^(.*)/[^/]+/*$") or "."
  local real_parent = jsr.realpath(parent == "" and "/" or parent)
  if not real_parent then say("the directory ", parent, " of --into ", dir, " does not exist\n"); return 2 end
  for _, st in ipairs(stores) do
    local sr = jsr.realpath(st)
    if not target_index and sr and (real_parent == sr or real_parent:sub(1, #sr + 1) == sr .. "/") then
      say(dir, " is inside the store ", st, ", which is only read: give a directory elsewhere\n")
      return 2
    end
  end
  local ro = { json = opts.json, ["skip-bad"] = opts["skip-bad"], ["force-open"] = opts["force-open"],
               ["key-file"] = opts["key-file"], ["prev-key-file"] = opts["prev-key-file"] }
  local r, code = M.open("prepare", ro, stores, policy)
  if not r then return code end
  if opts["dry-run"] then
    io.stdout:write(("would gather %d stream(s) from %d stores into %s, then prepare it\n"):format(#r.streams,
      #stores, dir))
    return #r.refused > 0 and 1 or 0
  end
  if target_index then
    local ok, count, id = M.into_store(r, r.stores[target_index].r)
    if not ok then say(count, "\n"); return 3 end
    io.stderr:write(("%d stream(s) taken into %s from the other stores%s; preparing it\n"):format(count, dir,
      id and (" (journal " .. id .. ")") or ""))
    for _, x in ipairs(r.refused) do
      io.stderr:write(("%s > %s: left as %s holds it (its copies conflict)\n"):format(x.account, x.name, dir))
    end
  else
    local ok, err = M.gather(r.streams, dir)
    if not ok then say(err, "\n"); return 3 end
    io.stderr:write(("gathered %d stream(s) into %s; preparing it\n"):format(#r.streams, dir))
  end
  local argv = { dir }
  for k, v in pairs(opts) do
    if k ~= "into" then argv[#argv + 1] = v == true and ("--" .. k) or ("--%s=%s"):format(k, tostring(v)) end
  end
  local pcode = require("jsr.prepare").run(select(2, M.split(policy)), table.unpack(argv))
  if pcode == 0 and #r.refused > 0 then return 1 end
  return pcode
end

return M
