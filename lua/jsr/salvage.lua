-- Salvage from the dead cluster's Raft logs, before prepare moves _js_
-- aside: stream messages the survivor's log holds past its store (appended
-- as a new message block), and consumer delivered/ack updates newer than
-- its o.dat (applied to o.dat).  Measured on 2.9.10 (FORMAT.md "Raft
-- logs"): o.dat lags the consumer log in about half of all crashes, and an
-- acknowledged message can live only in the stream's log.
--
--   local salvage = require "jsr.salvage"
--   local r = salvage.analyze(m, keep)   -- keep(entry) -> "keep" | "drop"
--   r.streams[path] = {log_ahead, append = {...}, write = {path, data}, ...}
--   r.consumers[path] = {updates, acks, ..., write = {path, data}}
--
-- Nothing is written here: prepare stages the writes in its one journaled
-- set of changes, so undo takes a salvage back with everything else.
local jsr = require "jsr"
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"
local lost = require "jsr.lost"
local removal = require "jsr.removal"
local json = jsr.json

local M = {}

-- The default: keep every log-tail entry, including ones this node cannot
-- know were committed (at-least-once: a message may come back that no
-- client was told was stored; never one lost that a client was told was).
function M.default(entry) return "keep" end

local read_file = require("jsr.files").read

-- A stream group's snapshot (2.9: JSON streamSnapshot) -> clfs, last_seq
local function stream_snapshot(data)
  local t = json.decode(data)
  if type(t) ~= "table" then
    local plain = jsr.s2_decode(data)
    t = plain and json.decode(plain)
  end
  if type(t) ~= "table" then return nil end
  return { clfs = math.tointeger(t.clfs) or 0, last_seq = math.tointeger(t.last_seq) or 0 }
end

local function decide(keep, entry)
  local d = keep(entry)
  return d == nil or d == true or d == "keep"
end

-- Stream: replays the group's log the way the server applies it
-- (jetstream_cluster.go applyStreamEntries): an entry with lseq - clfs
-- below the store's last sequence is already stored; equal is the next
-- message; above is a gap the log cannot fill.
-- The ops a stream group's log holds (jetstream_cluster.go
-- applyStreamEntries), and those of newer servers this replay does not
-- apply: it stops before them (each may renumber what follows).
local STREAM_OPS = { [raft.op.stream_msg] = true, [raft.op.compressed_stream_msg] = true,
                     [raft.op.delete_msg] = true, [raft.op.purge_stream] = true }
local NEWER_STREAM_OPS = { [15] = "delete range", [16] = "batch message", [17] = "batch commit",
                           [18] = "reset sequence" }
-- and a consumer group's (applyConsumerEntries): 10, 12 and 13 do not
-- change what o.dat holds
local CONSUMER_OPS = { [raft.op.update_delivered] = true, [raft.op.update_acks] = true,
                       [raft.op.update_skip] = true, [12] = true, [13] = true }

-- A malformed entry of a stream's or consumer's own log: a finding of the
-- run (r.findings) and a note of the stream or consumer.
local function group_finding(r, out, f, what_next)
  f.account, f.stream, f.consumer = out.account, out.stream, out.consumer
  r.findings[#r.findings + 1] = f
  out.notes[#out.notes + 1] = f.message .. "; " .. what_next
end

local function plan_stream(r, s, sa, sys, keep)
  local gdir = sys .. "/" .. sa.group.name
  local out = { account = s.account, stream = s.name, path = s.path, group = sa.group.name,
                appended = 0, uncertain = 0, dropped = 0, first = nil, last = nil, notes = {},
                log_ahead = 0 }
  r.streams[s.path] = out
  -- the replay ends at the first entry it cannot use: the entries after it
  -- may depend on it (a message's place, a delete's target)
  local function stop_at(f)
    group_finding(r, out, f, "salvage stops before it")
    return false
  end
  if s.encrypted then
    out.notes[#out.notes + 1] = "encrypted stream: its log is not salvaged (not supported yet)"
    return out
  end
  -- a log with nothing in it has nothing to salvage: its snapshot and the
  -- store's tail need not be read
  local log_files = jsr.block_files(gdir)
  if log_files and raft.is_empty(log_files) then return out end
  -- The store's last sequence first, from its newest blocks only.
  local sum = blocks.tail({ name = s.name, path = s.path, account = s.account })
  local files = sum.files or {}
  local last_block = #files > 0 and files[#files].index or 0
  -- appending needs the store's true last sequence: not from blocks it cannot read
  if sum.unchecked_blocks > 0 or sum.corrupt then
    out.notes[#out.notes + 1] = ("the store's last sequence is unknown (%s); its log is not salvaged")
      :format(sum.unchecked_blocks > 0 and "compressed or encrypted blocks" or "corrupt blocks")
    return out
  end
  local store_last = sum.last_seq
  out.store_last = store_last
  -- Then one pass over the log, keeping only what can matter: messages
  -- that may not be in the store, purges and deletes.  A message's place
  -- is lseq - clfs, clfs being the count of entries the server failed to
  -- apply (from the group's snapshot, or a snapshot entry in the log);
  -- clfs >= 0, so lseq below the store's last sequence is stored already,
  -- and a log with nothing else needs no snapshot read at all (the
  -- usual case).  Whether an entry was committed is known only after the
  -- whole log is read (max_commit).
  local events, any_msg, deletes = {}, false, {}
  local log_clfs -- set by a snapshot entry in the log
  local summary = raft.log(gdir, function(index, ae, rec, file)
    for _, e in ipairs(ae.entries) do
      if e.type == raft.SNAPSHOT or e.type == raft.OLD_SNAPSHOT then
        local ss = stream_snapshot(e.data)
        if ss then log_clfs = ss.clfs end
      elseif e.type == raft.NORMAL and #e.data > 0 then
        local op = e.data:byte(1)
        if op == raft.op.stream_msg or op == raft.op.compressed_stream_msg then
          local msg, merr = raft.stream_msg(e.data)
          if not msg then return stop_at(raft.finding(file, rec.offset, index, merr)) end
          if msg.lseq >= store_last then
            events[#events + 1] = { index = index, msg = msg, clfs = log_clfs }
            any_msg = true
          end
        elseif op == raft.op.delete_msg then
          -- {stream, seq, no_erase}: 2.9.10 applies it in memory and writes
          -- the block's index lazily, so after a crash the record is often
          -- still live on disk (jetstream_cluster.go encodeMsgDelete).  One
          -- that cannot be read is skipped: no later entry depends on it.
          local d, derr = json.decode(e.data:sub(2), 1000)
          local seq = raft.kind_of(d) == "an object" and math.type(d.seq) == "integer" and d.seq
          if seq and seq > 0 then
            deletes[#deletes + 1] = { index = index, seq = seq }
          else
            group_finding(r, out, raft.finding(file, rec.offset, index, d == nil
              and "message delete is not JSON: " .. derr
              or "message delete without a sequence (a positive integer)"),
              "not applied: the message it deleted (unknown) may be served again")
          end
        elseif op == raft.op.purge_stream then
          events[#events + 1] = { index = index, purge = true }
        elseif NEWER_STREAM_OPS[op] then
          out.notes[#out.notes + 1] = ("entry %d: operation %d (%s) of a newer server; salvage stops before it")
            :format(index, op, NEWER_STREAM_OPS[op])
          return false
        elseif not STREAM_OPS[op] then
          return stop_at(raft.finding(file, rec.offset, index,
            ("operation %d, not one of a stream group's (4, 5, 6, 14)"):format(op)))
        end
      end
    end
    return true
  end, log_files, stop_at)
  if not any_msg and #deletes == 0 then return out end
  local clfs, max_commit = 0, 0
  local snap = raft.latest_snapshot(gdir)
  if snap then
    local ss = stream_snapshot(snap.data)
    if ss then clfs = ss.clfs end
    max_commit = snap.index
  end
  for _, ev in ipairs(events) do
    if ev.msg then ev.at = ev.msg.lseq - (ev.clfs or clfs) end
  end
  if summary.max_commit > max_commit then max_commit = summary.max_commit end
  out.max_commit = max_commit
  -- Every delete the log holds is applied unless the policy drops it.  One
  -- past the commit index this node saw may never have been committed;
  -- the client asked for it either way, and keeping the message would
  -- serve again what was most likely deleted (measured: the last delete
  -- before a SIGKILL is routinely past the follower's commit index while
  -- the cluster had applied it).
  out.deletes, out.uncertain_deletes, out.deletes_kept = {}, 0, 0
  for _, d in ipairs(deletes) do
    local uncertain = d.index > max_commit
    local entry = { kind = "delete", account = s.account, stream = s.name, index = d.index,
                    seq = d.seq, uncertain = uncertain }
    if decide(keep, entry) then
      out.deletes[d.seq] = true
      if uncertain then out.uncertain_deletes = out.uncertain_deletes + 1 end
    else
      out.deletes_kept = out.deletes_kept + 1
    end
  end
  if not any_msg then return out end

  local last = store_last
  local records, stopped = {}, false
  -- A crash's partial last record (torn tail) cannot stay in a block that
  -- is no longer the last: then the last block is rewritten without it,
  -- with the salvaged records after its own, and its index files are moved
  -- aside so the server rebuilds them.  Otherwise a new block follows it.
  local torn
  for _, p in ipairs(sum.problems) do
    if p.kind == "torn_tail" and #files > 0 and p.block == files[#files].path then torn = p.offset end
  end
  local target = torn and last_block or last_block + 1
  local key = s.name .. "-" .. target
  for _, ev in ipairs(events) do
    local index, msg = ev.index, ev.msg
    if ev.purge then
      if out.appended > 0 then
        out.notes[#out.notes + 1] = ("entry %d: a purge or delete after salvaged messages is not "
          .. "applied; check the stream after recovery"):format(index)
      end
    elseif ev.at > last then
      out.notes[#out.notes + 1] = ("entry %d: message for sequence %d, the store ends at %d: "
        .. "a gap the log cannot fill; salvage stops here"):format(index, ev.at + 1, last)
      break
    elseif ev.at == last then
      local uncertain = index > max_commit
      out.log_ahead = out.log_ahead + 1
      local entry = { kind = "message", account = s.account, stream = s.name, index = index,
                      seq = last + 1, subject = msg.subject, uncertain = uncertain }
      if not stopped and decide(keep, entry) then
        local rec = jsr.block_record(key, last + 1, msg.ts, msg.subject, msg.headers, msg.payload)
        -- deleted later in the log: stored as a deleted record, so the
        -- sequence stays taken and the message does not come back
        if out.deletes[last + 1] then rec = removal.deleted_record(rec, key); out.deletes[last + 1] = nil end
        records[#records + 1] = rec
        out.appended = out.appended + 1
        if uncertain then out.uncertain = out.uncertain + 1 end
        out.first = out.first or (last + 1)
        out.last = last + 1
        last = last + 1
      else
        -- a dropped message ends the salvage: later ones would need its sequence
        out.dropped = out.dropped + 1
        stopped = true
      end
    end
  end
  if #records > 0 then
    out.block = ("%s/msgs/%d.blk"):format(s.path, target)
    local head = ""
    if torn then
      head = read_file(out.block)
      if not head or #head < torn then
        out.notes[#out.notes + 1] = out.block .. ": cannot read it again; its log is not salvaged"
        out.appended, out.first, out.last, out.block = 0, nil, nil, nil
        return out
      end
      head = head:sub(1, torn)
      out.torn = torn
      out.remove = {}
      for _, ext in ipairs { ".idx", ".fss" } do
        local pth = ("%s/msgs/%d%s"):format(s.path, target, ext)
        if jsr.lstat(pth) then out.remove[#out.remove + 1] = pth end
      end
    end
    out.write = { path = out.block, data = head .. table.concat(records) }
  end
  return out
end

-- Consumer: replays delivered/ack updates on o.dat the way the server's
-- consumer store applies them (filestore.go UpdateDelivered, UpdateAcks);
-- updates o.dat already holds change nothing.
-- Each returns whether the update changes the state; with dry set it
-- changes nothing (the policy decides first, without copying the state).
-- An update o.dat already reflects changes nothing: a delivery of a
-- message no longer pending was acked since, an ack of a message not
-- pending was applied (the server's store returns "not found" for it too).
local function apply_delivered(st, u, policy, dry)
  if policy == "none" then
    if st.delivered.consumer == u.dseq and st.delivered.stream == u.sseq
       and st.ack_floor.consumer == u.dseq and st.ack_floor.stream == u.sseq then return false end
    if not dry then
      st.delivered.consumer, st.delivered.stream = u.dseq, u.sseq
      st.ack_floor.consumer, st.ack_floor.stream = u.dseq, u.sseq
    end
    return true
  end
  local ts = (u.ts or 0) // 1000000000
  local redelivered = (u.dc or 1) > 1 and u.dc - 1 or nil
  if u.sseq <= st.delivered.stream then
    -- a redelivery: the server keeps its delivered mark and renumbers the pending entry
    local p = st.pending[u.sseq]
    if not p then return false end
    if p.dseq == u.dseq and (not redelivered or st.redelivered[u.sseq] == redelivered) then return false end
    if not dry then
      st.pending[u.sseq] = { dseq = u.dseq, ts = ts }
      if redelivered then st.redelivered[u.sseq] = redelivered end
    end
    return true
  end
  if not dry then
    st.delivered.consumer, st.delivered.stream = u.dseq, u.sseq
    st.pending[u.sseq] = { dseq = u.dseq, ts = ts }
    if redelivered then st.redelivered[u.sseq] = redelivered end
  end
  return true
end

local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end

-- as filestore.go UpdateAcks (2.9)
local function apply_ack(st, u, policy, dry)
  if policy == "none" then return false end
  if not st.pending[u.sseq] then return false end
  if dry then return true end
  st.pending[u.sseq] = nil
  st.redelivered[u.sseq] = nil
  if next(st.pending) == nil then
    st.ack_floor.consumer, st.ack_floor.stream = st.delivered.consumer, st.delivered.stream
  elseif st.ack_floor.consumer == u.dseq - 1 then
    -- the floor moves to this ack, then up to just below the first message
    -- still pending before the delivered mark
    local not_first = st.ack_floor.consumer ~= 0
    st.ack_floor.consumer, st.ack_floor.stream = u.dseq, u.sseq
    if not_first and st.delivered.consumer > u.dseq then
      local lowest
      for ss in pairs(st.pending) do
        if ss > u.sseq and ss < st.delivered.stream and (not lowest or ss < lowest) then lowest = ss end
      end
      if lowest then
        local p = st.pending[lowest]
        if p.dseq > 0 then st.ack_floor.consumer, st.ack_floor.stream = p.dseq - 1, lowest - 1 end
      end
    end
  end
  -- o.dat cannot hold entries at or below the floor (its sequences are deltas from it)
  for ss in pairs(st.pending) do if ss <= st.ack_floor.stream then st.pending[ss] = nil end end
  for ss in pairs(st.redelivered) do if ss <= st.ack_floor.stream then st.redelivered[ss] = nil end end
  return true
end

local function same_map(a, b, eq)
  for k, v in pairs(a) do if b[k] == nil or not eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function same_state(a, b)
  if not b then return false end
  return a.ack_floor.consumer == b.ack_floor.consumer and a.ack_floor.stream == b.ack_floor.stream
    and a.delivered.consumer == b.delivered.consumer and a.delivered.stream == b.delivered.stream
    and same_map(a.pending, b.pending, function(x, y) return x.dseq == y.dseq and x.ts == y.ts end)
    and same_map(a.redelivered, b.redelivered, function(x, y) return x == y end)
end

local function empty_state()
  return { ack_floor = { consumer = 0, stream = 0 }, delivered = { consumer = 0, stream = 0 },
           pending = {}, redelivered = {}, pending_count = 0 }
end

local function plan_consumer(r, s, c, ca, sys, keep)
  local gdir = sys .. "/" .. ca.group.name
  local out = { account = s.account, stream = s.name, consumer = c.name, path = c.path,
                group = ca.group.name, delivered = 0, acks = 0, uncertain = 0, dropped = 0,
                log_ahead = 0, notes = {} }
  r.consumers[c.path] = out
  if s.encrypted then
    out.notes[#out.notes + 1] = "encrypted consumer: its log is not salvaged (not supported yet)"
    return out
  end
  local function stop_at(f)
    group_finding(r, out, f, "salvage stops before it")
    return false
  end
  local odat_path = c.path .. "/o.dat"
  local log_files = jsr.block_files(gdir)
  if log_files and raft.is_empty(log_files) then return out end
  local raw = read_file(odat_path)
  local st, err
  if raw then
    st, err = raft.consumer_state(raw)
    if not st then
      out.notes[#out.notes + 1] = odat_path .. ": " .. err .. "; not salvaged"
      return out
    end
  end
  local policy = type(c.config) == "table" and c.config.ack_policy or "explicit"
  -- one pass over the log; the updates are applied after it, once
  -- max_commit (whether each was committed) is known
  local updates = {}
  local summary = raft.log(gdir, function(index, ae, rec, file)
    for _, e in ipairs(ae.entries) do
      if e.type == raft.NORMAL and #e.data > 0 then
        local op = e.data:byte(1)
        if not CONSUMER_OPS[op] then
          return stop_at(raft.finding(file, rec.offset, index,
            ("operation %d, not one of a consumer group's (7, 8, 10, 12, 13)"):format(op)))
        end
        local u = raft.consumer_update(e.data)
        if u then
          updates[#updates + 1] = { index = index, u = u }
        elseif op == raft.op.update_delivered or op == raft.op.update_acks then
          return stop_at(raft.finding(file, rec.offset, index,
            ("%s update cut off"):format(op == raft.op.update_acks and "ack" or "delivered")))
        end
      end
    end
    return true
  end, log_files, stop_at)
  -- An update o.dat already reflects changes nothing, and the first one
  -- that changes it is found without applying any: with none, the group's
  -- snapshot (only its commit index would be used) is not read.
  local ahead = not st
  for _, up in ipairs(updates) do
    if ahead then break end
    local apply = up.u.op == raft.op.update_acks and apply_ack or apply_delivered
    ahead = apply(st, up.u, policy, true)
  end
  if not ahead then
    out.before = { ack_floor = st.ack_floor.stream, delivered = st.delivered.stream }
    out.after = { ack_floor = st.ack_floor.stream, delivered = st.delivered.stream, pending = count(st.pending) }
    return out
  end
  local snap = raft.latest_snapshot(gdir)
  local max_commit = snap and snap.index or 0
  if not st then
    st = snap and raft.consumer_state(snap.data) or empty_state()
  end
  if summary.max_commit > max_commit then max_commit = summary.max_commit end
  local before = { af = st.ack_floor.stream, afc = st.ack_floor.consumer, ds = st.delivered.stream }
  out.before = { ack_floor = before.af, delivered = before.ds }
  for _, up in ipairs(updates) do
    local index, u = up.index, up.u
    local kind = u.op == raft.op.update_acks and "ack" or "delivered"
    -- only updates o.dat lacks count
    local apply = kind == "ack" and apply_ack or apply_delivered
    local changed = apply(st, u, policy, true)
    if changed then
      local uncertain = index > max_commit
      out.log_ahead = out.log_ahead + 1
      local entry = { kind = kind, account = s.account, stream = s.name, consumer = c.name,
                      index = index, seq = u.sseq, uncertain = uncertain }
      if decide(keep, entry) then
        apply(st, u, policy, false)
        if kind == "ack" then out.acks = out.acks + 1 else out.delivered = out.delivered + 1 end
        if uncertain then out.uncertain = out.uncertain + 1 end
      else
        out.dropped = out.dropped + 1
      end
    end
  end
  out.after = { ack_floor = st.ack_floor.stream, delivered = st.delivered.stream,
                pending = count(st.pending) }
  -- updates that each change the state can still add up to none (a
  -- delivery and its ack): then nothing is ahead and o.dat stays
  if raw and out.dropped == 0 and same_state(st, raft.consumer_state(raw)) then
    out.log_ahead, out.acks, out.delivered, out.uncertain = 0, 0, 0, 0
    return out
  end
  if out.acks + out.delivered > 0 then
    out.write = { path = odat_path, data = jsr.consumer_state_encode(st) }
  end
  return out
end

-- A stream or consumer whose assignment a malformed meta entry may have
-- changed: its group may not be the one named, so its log is not read.
local function untrusted(r, kind, s, c, f)
  -- the finding itself is listed once, in full; here only where it is
  local short = f.file:match("([^/]+/[^/]+/[^/]+)$") or f.file
  local out = { account = s.account, stream = s.name, consumer = c and c.name, path = (c or s).path,
                appended = 0, uncertain = 0, dropped = 0, delivered = 0, acks = 0, log_ahead = 0,
                notes = { ("not salvaged: a malformed meta-group entry (%s) may have changed its assignment")
                  :format(f.index and ("entry %d of %s"):format(f.index, short) or short) } }
  r[kind][out.path] = out
end

-- analyze(m, keep) -> r = {available, why, streams = {[path] = ...},
-- consumers = {[path] = ...}, findings = {...}}; keep(entry) decides per
-- log entry (default M.default); entry = {kind = "message"|"delivered"|"ack",
-- account, stream, consumer, index, seq, uncertain}.  findings: every
-- malformed entry of the meta group's state (raft.meta_state) and of the
-- logs read here (raft.finding, with account, stream, consumer); a stream
-- or consumer a meta finding may be about is not salvaged, and a group's
-- replay stops before its first malformed entry.
function M.analyze(m, keep)
  keep = keep or M.default
  local r = { streams = {}, consumers = {}, available = false, findings = {} }
  local meta, moved = lost.find_meta(m)
  if not meta or moved then
    r.why = meta and "the Raft state was moved aside by an earlier run" or "no Raft state under _js_"
    return r
  end
  r.available = true
  local sys = meta:gsub("/_meta_$", "")
  local st = lost.meta_state(m, meta)
  for _, f in ipairs(st.findings) do r.findings[#r.findings + 1] = f end
  local by_key = {}
  for _, sa in pairs(st.streams) do by_key[sa.account .. "\0" .. sa.name] = sa end
  for _, s in ipairs(m.streams) do
    local sa = by_key[s.account .. "\0" .. s.name]
    if not s.error and sa then
      -- a stream's and its consumers' groups are separate directories: either may be missing
      local f = raft.untrusted(st, s.account, s.name)
      if f then
        untrusted(r, "streams", s, nil, f)
      elseif type(sa.group) == "table" and type(sa.group.name) == "string"
         and jsr.lstat(sys .. "/" .. sa.group.name) then
        plan_stream(r, s, sa, sys, keep)
      end
      for _, c in ipairs(s.consumers) do
        local ca = sa.consumers[c.name]
        local cf = not c.error and ca and raft.untrusted(st, s.account, s.name, c.name)
        if cf then
          untrusted(r, "consumers", s, c, cf)
        elseif not c.error and ca and type(ca.group) == "table" and type(ca.group.name) == "string"
           and jsr.lstat(sys .. "/" .. ca.group.name) then
          plan_consumer(r, s, c, ca, sys, keep)
        end
      end
    end
  end
  return r
end

-- One line per stream or consumer the log is ahead of, for prepare/inspect.
function M.lines(r, applied)
  local out = {}
  local verb = applied and "" or "would "
  local paths = {}
  for p in pairs(r.streams) do paths[#paths + 1] = p end
  table.sort(paths)
  for _, p in ipairs(paths) do
    local s = r.streams[p]
    local ndel = 0
    for _ in pairs(s.deletes or {}) do ndel = ndel + 1 end
    if s.log_ahead > 0 or #s.notes > 0 or ndel > 0 then
      local l = s.log_ahead == 0 and ("stream %s > %s:"):format(s.account, s.stream)
        or ("stream %s > %s: log ahead of the store by %d message(s)"):format(s.account, s.stream, s.log_ahead)
      if s.appended > 0 then
        l = l .. ("; %sappend seq %d-%d to %s"):format(verb, s.first, s.last, s.block)
        if s.torn then l = l .. (" (cut at byte %d: a torn last record)"):format(s.torn) end
      end
      if s.uncertain > 0 then
        l = l .. ("; %d uncertain (past commit index %d: maybe never committed, kept: at-least-once)")
          :format(s.uncertain, s.max_commit)
      end
      if s.dropped > 0 then l = l .. ("; %d dropped by policy"):format(s.dropped) end
      if ndel > 0 then
        l = l .. ("; %d delete(s) in the log %sapplied to the blocks that still hold them"):format(ndel, verb)
        if s.uncertain_deletes > 0 then
          l = l .. (" (%d past commit index %d: maybe never committed, applied: the client asked)")
            :format(s.uncertain_deletes, s.max_commit)
        end
      end
      if (s.deletes_kept or 0) > 0 then l = l .. ("; %d delete(s) dropped by policy"):format(s.deletes_kept) end
      out[#out + 1] = l
      for _, n in ipairs(s.notes) do out[#out + 1] = "  note: " .. n end
    end
  end
  paths = {}
  for p in pairs(r.consumers) do paths[#paths + 1] = p end
  table.sort(paths)
  for _, p in ipairs(paths) do
    local c = r.consumers[p]
    if c.log_ahead > 0 or #c.notes > 0 then
      local l = c.log_ahead == 0 and ("consumer %s > %s > %s:"):format(c.account, c.stream, c.consumer)
        or ("consumer %s > %s > %s: log ahead of o.dat by %d update(s)"):format(c.account, c.stream,
          c.consumer, c.log_ahead)
      if c.acks + c.delivered > 0 then
        l = l .. ("; %sapply %d ack(s), %d delivered: ack floor %d -> %d, delivered %d -> %d, %d pending")
          :format(verb, c.acks, c.delivered, c.before.ack_floor, c.after.ack_floor, c.before.delivered,
            c.after.delivered, c.after.pending)
      end
      if c.uncertain > 0 then l = l .. ("; %d uncertain (kept)"):format(c.uncertain) end
      if c.dropped > 0 then l = l .. ("; %d dropped by policy"):format(c.dropped) end
      out[#out + 1] = l
      for _, n in ipairs(c.notes) do out[#out + 1] = "  note: " .. n end
    end
  end
  return out
end

function M.sorted_seqs(set)
  local out = json.array()
  for seq in pairs(set or {}) do out[#out + 1] = seq end
  table.sort(out)
  return out
end

-- For recovery-report.json and inspect --json.
function M.json(r)
  local o = json.object()
  o.available = r.available
  o.why = r.why
  o.streams = json.array()
  o.consumers = json.array()
  local function sorted(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks)
    return ks
  end
  local function notes_of(x)
    local notes = json.array()
    for i, n in ipairs(x.notes) do notes[i] = n end
    return notes
  end
  for _, p in ipairs(sorted(r.streams)) do
    local s = r.streams[p]
    o.streams[#o.streams + 1] = { account = s.account, stream = s.stream, group = s.group,
      store_last = s.store_last, log_ahead = s.log_ahead, appended = s.appended, first = s.first,
      last = s.last, uncertain = s.uncertain, dropped = s.dropped, max_commit = s.max_commit,
      block = s.block, deletes = M.sorted_seqs(s.deletes), uncertain_deletes = s.uncertain_deletes,
      notes = notes_of(s) }
  end
  for _, p in ipairs(sorted(r.consumers)) do
    local c = r.consumers[p]
    o.consumers[#o.consumers + 1] = { account = c.account, stream = c.stream, consumer = c.consumer,
      group = c.group, log_ahead = c.log_ahead, acks = c.acks, delivered = c.delivered,
      uncertain = c.uncertain, dropped = c.dropped, before = c.before, after = c.after, notes = notes_of(c) }
  end
  return o
end

return M
