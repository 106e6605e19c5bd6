-- Salvage from the dead cluster's Raft logs, before prepare moves _js_
-- aside: stream messages the survivor's log holds past its store (appended
-- as a new message block), and consumer delivered/ack updates newer than
-- its o.dat (applied to o.dat).  Measured on 2.9.10 (FORMAT.md "Raft
-- logs"): o.dat lags the consumer log in about half of all crashes, and an
-- acknowledged message can live only in the stream's log.
--
--   local salvage = require("jsr.salvage")
--   local r = salvage.analyze(m, keep)   -- keep(entry) -> "keep" | "drop"
--   r.streams[path] = {log_ahead, append = {...}, write = {path, data}, ...}
--   r.consumers[path] = {updates, acks, ..., write = {path, data}}
--
-- Nothing is written here: prepare stages the writes in its one journaled
-- set of changes, so undo takes a salvage back with everything else.
local jsr = require("jsr")
local raft = require("jsr.raft")
local blocks = require("jsr.blocks")
local metastate = require("jsr.metastate")
local removal = require("jsr.removal")
local replay = require("jsr.replay")
local sealed = require("jsr.sealed")
local sorted = require("jsr.sorted").keys
local json = jsr.json
local layout = jsr.layout

local M = {}

-- The default: keep every log-tail entry, including ones this node cannot
-- know were committed (at-least-once: a message may come back that no
-- client was told was stored; never one lost that a client was told was).
function M.default(entry) return "keep" end

local read_file = require("jsr.files").read

-- A stream group's snapshot -> {clfs, last_seq}: 2.9 JSON streamSnapshot
-- (maybe S2-compressed), 2.10+ binary (replay.binary_snapshot)
local function stream_snapshot(data)
  local b = replay.binary_snapshot(data)
  if b then return b end
  local t = json.decode(data)
  if type(t) ~= "table" then
    local plain = jsr.s2.decode(data)
    t = plain and json.decode(plain)
  end
  if type(t) ~= "table" then return nil end
  -- deleted: the interior sequences the store had deleted when the
  -- snapshot was taken; the server removes them again when a group member
  -- applies its snapshot at start (processSnapshotDeletes), so a delete a
  -- stale index forgot is not served (docs/FORMAT.md "Replay of a
  -- stream's log")
  local deleted = {}
  if type(t.deleted) == "table" then
    for _, seq in ipairs(t.deleted) do
      seq = math.tointeger(seq)
      if seq and seq > 0 then deleted[#deleted + 1] = seq end
    end
  end
  return { clfs = math.tointeger(t.clfs) or 0, last_seq = math.tointeger(t.last_seq) or 0, deleted = deleted }
end

-- The stream group's latest snapshot and what it says, read once.
local function group_snapshot(gdir)
  local snap = raft.latest_snapshot(gdir)
  return snap, snap and stream_snapshot(snap.data)
end

local function decide(keep, entry)
  local d = keep(entry)
  return d == nil or d == true or d == "keep"
end

-- Stream: replays the group's log after its snapshot the way the server
-- applies it (jetstream_cluster.go applyStreamEntries, docs/FORMAT.md
-- "Replay of a stream's log"): a message entry goes to sequence
-- lseq + 1 - clfs when lseq - clfs is the stream's last sequence (below:
-- applied before; above: a gap the log cannot fill), unless the server's
-- apply-time rules refuse it (jsr/replay.lua), which counts it in clfs.
-- Where the store holds that sequence, its record (same timestamp) says
-- whether this entry is what the server stored there.  Deletes and purges
-- apply in their place in the log, idempotently over the store.
-- The ops a stream group's log holds (jetstream_cluster.go
-- applyStreamEntries, docs/FORMAT.md "Ops of a stream's log"): 4, 5, 6
-- and 14 on every version, 16 and 17 (atomic batches) 2.12+, 15 (delete
-- range) 2.14+.  Any other stops the replay: js-recover does not know it,
-- and it may renumber what follows.
local NEWEST_KNOWN = "2.15.3"
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

-- Is the message entry the server's flow-control reply (not a message)?
local function flow_control(msg)
  return #msg.payload == 0 and msg.headers and #msg.headers > 0 and (msg.reply or "") ~= ""
    and msg.headers:find("^NATS/1.0 100") ~= nil
end

-- the message of a message entry or of an atomic batch's entry
local function msg_of(ev) return ev.msg or (ev.batch and ev.batch.msg) end

local function plan_stream(r, s, sa, sys, keep)
  local gdir = sys .. "/" .. sa.group.name
  local out = { account = s.account, stream = s.name, path = s.path, group = sa.group.name,
                appended = 0, uncertain = 0, dropped = 0, first = nil, last = nil, notes = {},
                log_ahead = 0, rejected = {}, rejections = {}, purges = 0, purged = 0,
                limit_removed = 0, deleted = 0, matched = 0 }
  r.streams[s.path] = out
  -- the replay ends at the first entry it cannot use: the entries after it
  -- may depend on it (a message's place, a delete's target)
  local function stop_at(f)
    group_finding(r, out, f, "salvage stops before it")
    return false
  end
  -- an encrypted store's group log is keyed like the meta group's (raft.log)
  if s.encrypted and not jsr.has_keys() then
    out.notes[#out.notes + 1] = "encrypted stream: its log is not salvaged without the server's key "
      .. "(--key-file or JSR_KEY)"
    return out
  end
  -- a log with nothing in it has nothing to salvage: its snapshot and the
  -- store's tail need not be read
  local log_files = jsr.block_files(gdir)
  local snap, base = group_snapshot(gdir)
  local snap_deleted = base and base.deleted or {}
  if log_files and raft.is_empty(log_files) and #snap_deleted == 0 then return out end
  -- The store's last sequence first, from its newest blocks only.
  local sum = blocks.tail({ name = s.name, path = s.path, account = s.account })
  local files = sum.files or {}
  local last_block = #files > 0 and files[#files].index or 0
  -- appending needs the store's true last sequence: not from blocks it cannot read
  if sum.unchecked_blocks > 0 or sum.corrupt then
    out.notes[#out.notes + 1] = ("the store's last sequence is unknown (%s); its log is not salvaged")
      :format(sum.unchecked_blocks > 0 and "encrypted blocks, no key given" or "corrupt blocks")
    return out
  end
  local store_last = sum.last_seq
  out.store_last = store_last
  -- One pass over the log, keeping what can matter; the snapshot is read
  -- only when there is any (the usual log holds nothing after it).
  local events, first_index, has_batch = {}, nil, false
  local summary = raft.log(gdir, function(index, ae, rec, file)
    for _, e in ipairs(ae.entries) do
      first_index = first_index or index
      if e.type == raft.SNAPSHOT or e.type == raft.OLD_SNAPSHOT then
        local ss = stream_snapshot(e.data)
        if ss then events[#events + 1] = { index = index, snap = ss } end
      elseif e.type == raft.NORMAL and #e.data > 0 then
        local op = e.data:byte(1)
        if op == raft.op.stream_msg or op == raft.op.compressed_stream_msg then
          local msg, merr = raft.stream_msg(e.data)
          if not msg then return stop_at(raft.finding(file, rec.offset, index, merr)) end
          if not flow_control(msg) then
            -- one below the store's last sequence can never be appended:
            -- its payload's length is all the rules need
            if msg.lseq < store_last then msg.plen, msg.payload = #msg.payload, nil end
            events[#events + 1] = { index = index, msg = msg }
          else
            events[#events + 1] = { index = index, abandon = true } -- ends a batch as any entry does
          end
        elseif op == raft.op.batch_msg or op == raft.op.batch_commit then
          local b, berr = raft.batch_msg(e.data)
          if not b then return stop_at(raft.finding(file, rec.offset, index, berr)) end
          if b.msg.lseq < store_last then b.msg.plen, b.msg.payload = #b.msg.payload, nil end
          events[#events + 1] = { index = index, batch = b }
          has_batch = true
        elseif op == raft.op.delete_range then
          -- {First, Num}: sequences the stream skips (2.14+, a mirror's or
          -- source's gap); which ones depends on the stream's last then
          local d, derr = json.decode(e.data:sub(2), 1000)
          local first = raft.kind_of(d) == "an object" and math.tointeger(d.First)
          local num = first and math.tointeger(d.Num)
          if not num or first < 0 or num < 0 then
            return stop_at(raft.finding(file, rec.offset, index, d == nil and "delete range is not JSON: " .. derr
              or "delete range without First and Num (integers)"))
          end
          events[#events + 1] = { index = index, range = { first = first, num = num } }
        elseif op == raft.op.delete_msg then
          -- {stream, seq, no_erase, client}: 2.9.10 applies it in memory and
          -- writes the block's index lazily, so after a crash the record is
          -- often still live on disk (jetstream_cluster.go encodeMsgDelete).
          -- Without a client the server made it (2.11+: max_age or Nats-TTL
          -- expiry, or acks of an interest or work-queue stream).  One
          -- that cannot be read is skipped: no later entry depends on it.
          local d, derr = json.decode(e.data:sub(2), 1000)
          local seq = raft.kind_of(d) == "an object" and math.type(d.seq) == "integer" and d.seq
          if seq and seq > 0 then
            events[#events + 1] = { index = index, delete = seq, by_server = d.client == nil }
          else
            group_finding(r, out, raft.finding(file, rec.offset, index, d == nil
              and "message delete is not JSON: " .. derr
              or "message delete without a sequence (a positive integer)"),
              "not applied: the message it deleted (unknown) may be served again")
          end
        elseif op == raft.op.purge_stream then
          -- {stream, last_seq, request: {filter, seq, keep}}: which messages
          -- go depends on what was stored before it, so a purge that
          -- cannot be read stops the replay
          local p, perr = json.decode(e.data:sub(2), 1000)
          if raft.kind_of(p) ~= "an object" then
            return stop_at(raft.finding(file, rec.offset, index, p == nil
              and "stream purge is not JSON: " .. perr or "stream purge is not a JSON object"))
          end
          events[#events + 1] = { index = index, purge = raft.kind_of(p.request) == "an object" and p.request or {},
                                  last_seq = math.tointeger(p.last_seq) }
        else
          return stop_at(raft.finding(file, rec.offset, index,
            ("operation %d, unknown to js-recover in a stream group's log (it knows 4, 5, 6, 14, 15, 16, 17: "
              .. "every one up to nats-server %s)"):format(op, NEWEST_KNOWN)))
        end
      elseif e.type ~= raft.NORMAL and e.type <= raft.LEADER_TRANSFER then
        -- a peer change or leader transfer ends an atomic batch in progress
        events[#events + 1] = { index = index, abandon = true }
      end
    end
    return true
  end, log_files, stop_at)
  -- what ends a batch matters only to a log that has one
  if not has_batch then
    local only = {}
    for _, ev in ipairs(events) do if not ev.abandon then only[#only + 1] = ev end end
    events = only
  end
  -- the snapshot's deleted set goes first, as the server applies it
  for i = #snap_deleted, 1, -1 do
    table.insert(events, 1, { index = snap.index, delete = snap_deleted[i], from_snapshot = true })
  end
  if #events == 0 then return out end
  local snap_base
  local snap_index = snap and snap.index or 0
  -- A store behind its own snapshot (the snapshot is of the server's
  -- memory; the blocks lost writes) needs the log's entries the snapshot
  -- covers: the log is then replayed from its start, placed by the store.
  local behind = base and store_last < base.last_seq
  if behind then
    out.notes[#out.notes + 1] = ("the store ends at %d, its group's snapshot at %d: replayed from the log's start")
      :format(store_last, base.last_seq)
    snap_base, base = base, nil
  elseif snap_index > 0 then
    -- what the snapshot holds is not replayed again, except the log's
    -- deletes still there: 2.9.10 writes them to its index files lazily,
    -- and applied again they change nothing
    local after = {}
    for _, ev in ipairs(events) do
      if ev.index > snap_index or ev.delete then after[#after + 1] = ev end
    end
    events = after
    if #events == 0 then return out end
  end
  local max_commit = snap_index
  if summary.max_commit > max_commit then max_commit = summary.max_commit end
  out.max_commit = max_commit
  -- Message entries the snapshot's state already places below its last
  -- sequence were applied before whatever was refused after it (clfs only
  -- grows): they need nothing read.
  if base then
    local keep_ev = {}
    for _, ev in ipairs(events) do
      local m = ev.msg
      if not m or (m.lseq - base.clfs >= base.last_seq and not (m.lseq == 0 and base.last_seq ~= 0)) then
        keep_ev[#keep_ev + 1] = ev
      end
    end
    events = keep_ev
  end
  if #events == 0 then return out end
  -- The store as a model the server's rules run on: every block when a
  -- rule needs the whole stream (a purge, a limit, a KV create, a rollup),
  -- else its newest blocks back to where the log starts and the oldest
  -- entry's duplicate window; none for deletes alone.
  local cfg = replay.config(s.config, s.consumers, s.cluster_retention,
    s.cluster_limits and s.cluster_limits.subject_delete_marker_ttl)
  out.retention = s.cluster_retention or (type(s.config) == "table" and s.config.retention) or "limits"
  local any_msg, full, since = false, behind or (not base and (first_index or 1) > 2), nil
  if cfg.max_msgs > 0 or cfg.max_bytes > 0 or cfg.max_per > 0 then full = true end
  for _, ev in ipairs(events) do
    if ev.purge then full = true end
    local m = msg_of(ev)
    if m then
      any_msg = true
      local h = m.headers or ""
      if h:find("Nats-Expected-Last-Subject-Sequence", 1, true) or h:find("Nats-Rollup", 1, true)
         or h:find("Nats-Schedule-Next", 1, true) then full = true end
      if m.ts > 0 and (not since or m.ts < since) then since = m.ts end
    end
  end
  -- The partial read is put off until a rule or a record other than the
  -- store's last (whose timestamp its tail gave) is needed: a log whose
  -- only entry after the snapshot is the store's last message reads no
  -- block.  Deletes and message ids seen before it are applied to it then.
  local st, serr
  local pending_deletes, pending_ids = {}, {}
  local desc = { name = s.name, path = s.path, account = s.account }
  local function model()
    if st then return st end
    st, serr = replay.state(desc, cfg, { from = (base and base.last_seq or 0) + 1, since = (since or 0) - cfg.window })
    if not st then return nil end
    for _, seq in ipairs(pending_deletes) do replay.remove(st, seq) end
    for _, d in ipairs(pending_ids) do st.ids[d.id] = d.at end
    return st
  end
  if not any_msg and not full then
    st = replay.empty(cfg) -- deletes alone: nothing to match, the store is not read
  elseif full then
    st, serr = replay.state(desc, cfg)
  end
  if full and not st then
    out.notes[#out.notes + 1] = ("the store cannot be read (%s); its log is not salvaged"):format(serr)
    return out
  end
  local L, clfs
  if base then
    L, clfs = base.last_seq, base.clfs
  elseif (first_index or 1) <= 2 then
    L, clfs = 0, 0 -- the log from its start (1: the peer state)
  else
    -- no snapshot and the log's start compacted away: the first message
    -- the store holds (same timestamp) gives its place
    local by_ts = {}
    for seq, rec in pairs(st.records) do by_ts[rec.ts] = seq end
    for _, ev in ipairs(events) do
      local m = msg_of(ev)
      local seq = m and by_ts[m.ts]
      if seq then L, clfs = seq - 1, m.lseq + 1 - seq; break end
    end
    if not L and snap_base then
      -- none in the store: the first message goes where the snapshot's
      -- count of refusals puts it (no refusal between it and the snapshot)
      for _, ev in ipairs(events) do
        local m = msg_of(ev)
        if m then L, clfs = m.lseq - snap_base.clfs, snap_base.clfs; break end
      end
      if L then
        out.notes[#out.notes + 1] = ("none of the log's messages is in the store: placed with the snapshot's "
          .. "clfs %d (a publish refused before the snapshot would shift them)"):format(clfs)
      end
    end
    if not L then
      out.notes[#out.notes + 1] = "no snapshot and none of the log's messages in the store: "
        .. "their sequences are unknown; its log is not salvaged"
      return out
    end
  end
  out.base_last, out.base_clfs = L, clfs
  -- the msg id of the last message stored (Nats-Expected-Last-Msg-Id):
  -- the store's record at L until the replay stores or matches one
  local last_msgid, last_msgid_known = nil, false
  local function note_id(seq, msg)
    local id = replay.header(msg.headers, "Nats-Msg-Id")
    if id == "" then id = nil end
    if id then
      local at = { seq = seq, ts = msg.ts }
      if st then st.ids[id] = at else pending_ids[#pending_ids + 1] = { id = id, at = at } end
    end
    last_msgid, last_msgid_known = id, true
  end
  -- the model for a rule, with the last msg id as the replay knows it
  local function ruled()
    if not model() then return nil end
    if not last_msgid_known then
      local rec = st.live[L]
      last_msgid, last_msgid_known = rec and rec.msgid, true
    end
    st.last_msgid = last_msgid
    return st
  end
  local function unreadable()
    out.notes[#out.notes + 1] = ("the store cannot be read (%s); its log is not salvaged"):format(serr)
    out.appended, out.first, out.last, out.log_ahead = 0, nil, nil, 0
    out.deletes = {}
    return out
  end

  local records, appended_at, gone_at = {}, {}, {}
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
  out.deletes, out.uncertain_deletes, out.deletes_kept = {}, 0, 0
  -- a message the replay removes: a record of the store (prepare marks
  -- it deleted) or one it appends (written as a deleted record, so its
  -- sequence stays taken and it does not come back)
  local function removed(seq)
    local i = appended_at[seq]
    if i then records[i] = removal.deleted_record(records[i], key); gone_at[i] = true
    elseif seq <= store_last then out.deletes[seq] = true end
  end
  local function reject(ev, seq, kind, why, counted)
    out.rejected[kind] = (out.rejected[kind] or 0) + 1
    out.rejections[#out.rejections + 1] = { index = ev.index, seq = seq, rule = kind, why = why,
                                            subject = ev.msg.subject }
    if counted then clfs = clfs + 1 end
  end
  -- the message the server took a sequence for without storing it (an
  -- interest stream no consumer of which wants it): past the store, a
  -- deleted record keeps the sequence taken
  local function skipped(seq, msg)
    L = seq
    out.skipped = (out.skipped or 0) + 1
    note_id(seq, msg)
    if seq > store_last then
      records[#records + 1] = removal.deleted_record(
        jsr.block_record(key, seq, msg.ts, msg.subject, msg.headers, msg.payload), key)
      appended_at[seq], gone_at[#records] = #records, true
    end
  end
  -- The rules for a message the store does not hold at its sequence
  -- (full: past the store, where every rule can be checked): false when
  -- the server skipped or refused it (counted), true when it stored it.
  local function stored(ev, seq, full)
    local kind, why, counted = replay.refuse(st, ev.msg, L, full)
    if kind == "no_interest" then
      skipped(seq, ev.msg)
    elseif kind then
      reject(ev, seq, kind, why, counted)
    end
    return kind == nil
  end
  local stopped = false
  -- A message entry, alone or of a committed batch: placed, checked
  -- against the store's record or the rules, appended past the store.
  -- Returns out when the store cannot be read (the salvage is off).
  local function apply_message(ev)
    local index, msg = ev.index, ev.msg
    local at = msg.lseq - clfs
    if at < L or (msg.lseq == 0 and L ~= 0) then
      -- applied before (the server skips it too)
    elseif at > L then
      out.notes[#out.notes + 1] = ("entry %d: message for sequence %d, the stream ends at %d: "
        .. "a gap the log cannot fill; salvage of its messages stops here"):format(index, at + 1, L)
      stopped = true
    elseif msg.subject == "" and msg.ts == 0 and (msg.plen or #msg.payload) == 0 and #(msg.headers or "") == 0 then
      -- a skipped sequence (the server's SkipMsg)
      L = L + 1
    else
      if cfg.transform then
        -- 2.10+ logs the subject as published; the stream's subject
        -- transform maps it as the message is stored
        local subj, terr = replay.transform(cfg.transform, msg.subject)
        if not subj then
          out.notes[#out.notes + 1] = ("entry %d: %s; salvage of its messages stops here"):format(index, terr)
          stopped = true
          return
        end
        if subj ~= msg.subject then
          msg = setmetatable({ subject = subj }, { __index = msg })
          ev = { index = index, msg = msg } -- a refusal names the subject stored
        end
      end
      local seq = L + 1
      local rec
      if seq <= store_last then
        if not st and seq == store_last and msg.ts == sum.last_ts then
          rec = { ts = msg.ts } -- the store's last record, as its tail read it
        else
          if not ruled() then return unreadable() end
          rec = st.records[seq]
        end
      end
      -- a deleted record may have been erased (2.9.10 overwrites it,
      -- timestamp included): one that does not match is as good as gone
      if rec and rec.deleted and rec.ts ~= msg.ts then rec = nil end
      if rec then
        -- the store holds this sequence: the record says what the server did
        if rec.ts == msg.ts then
          L = seq
          out.matched = out.matched + 1
          note_id(seq, msg)
        else
          -- the server refused it (each refusal counts): by which rule,
          -- when the log alone tells
          if not ruled() then return unreadable() end
          local kind, why = replay.refuse(st, msg, L, false)
          if kind == "no_interest" then
            skipped(seq, msg)
          else
            reject(ev, seq, kind or "not_stored", ("%sthe store holds another message at %d")
              :format(why and (why .. "; ") or "", seq), true)
          end
        end
      elseif seq <= store_last then
        -- gone from the store since (deleted, purged, aged): only the
        -- rules the log decides can be checked
        if not ruled() then return unreadable() end
        if stored(ev, seq, false) then
          L = seq
          note_id(seq, msg)
        end
      else
        if not ruled() then return unreadable() end
        if stored(ev, seq, true) then
          local uncertain = index > max_commit
          out.log_ahead = out.log_ahead + 1
          local entry = { kind = "message", account = s.account, stream = s.name, index = index,
                          seq = seq, subject = msg.subject, uncertain = uncertain }
          if not decide(keep, entry) then
            -- a dropped message ends the salvage of messages: later ones
            -- would need its sequence (deletes and purges still apply)
            out.dropped = out.dropped + 1
            stopped = true
          else
            local hdrs = replay.ttl_floor(cfg, msg.headers)
            if hdrs ~= msg.headers then msg = setmetatable({ headers = hdrs }, { __index = msg }) end
            records[#records + 1] = jsr.block_record(key, seq, msg.ts, msg.subject, msg.headers, msg.payload)
            appended_at[seq] = #records
            out.appended = out.appended + 1
            if uncertain then out.uncertain = out.uncertain + 1 end
            out.first = out.first or seq
            out.last = seq
            L = seq
            -- a subject delete marker (2.11+: max_age took its subject's
            -- last message) removes that message by its rollup
            -- (and a delayed message fired by its schedule, 2.14+, purges
            -- the schedule's message)
            local marker = replay.header(msg.headers, "Nats-Marker-Reason")
            local fired = replay.header(msg.headers, "Nats-Schedule-Next") == "purge"
            if marker then out.markers = (out.markers or 0) + 1 end
            for _, gone in ipairs(replay.store(st, seq, msg)) do
              if marker then out.marker_removed = (out.marker_removed or 0) + 1
              elseif fired then out.schedule_removed = (out.schedule_removed or 0) + 1
              else out.limit_removed = out.limit_removed + 1 end
              removed(gone)
            end
            note_id(seq, msg)
          end
        end
      end
    end
  end
  -- An atomic batch (2.12+) is stored at its commit, all of it; one
  -- abandoned before its commit (another batch, a gap in its numbering,
  -- any other entry) is counted as refused, each of its messages
  -- (jetstream_batching.go rejectBatchState: clfs grows by its count).
  local batch
  local function abandon()
    if not batch then return end
    clfs = clfs + batch.count
    out.batches_abandoned = (out.batches_abandoned or 0) + 1
    out.notes[#out.notes + 1] = ("entry %d: atomic batch %s abandoned after %d message(s), before its commit: "
      .. "none stored, as the server stores none"):format(batch.index, batch.id, batch.count)
    batch = nil
  end
  for _, ev in ipairs(events) do
    local index = ev.index
    if not ev.batch then abandon() end
    if ev.snap then
      L, clfs = ev.snap.last_seq, ev.snap.clfs
    elseif ev.delete then
      local uncertain = index > max_commit
      local entry = { kind = "delete", account = s.account, stream = s.name, index = index,
                      seq = ev.delete, uncertain = uncertain }
      -- Every delete the log holds is applied unless the policy drops it.
      -- One past the commit index this node saw may never have been
      -- committed; the client asked for it either way (measured: the last
      -- delete before a SIGKILL is routinely past the follower's commit
      -- index while the cluster had applied it).
      if ev.from_snapshot then
        -- not a client's delete of this log: what the store already has
        -- deleted changes nothing (the removal takes live records only)
        if st then replay.remove(st, ev.delete) else pending_deletes[#pending_deletes + 1] = ev.delete end
        out.snapshot_deleted = (out.snapshot_deleted or 0) + 1
        removed(ev.delete)
      elseif decide(keep, entry) then
        if st then replay.remove(st, ev.delete) else pending_deletes[#pending_deletes + 1] = ev.delete end
        out.deleted = out.deleted + 1
        if ev.by_server then out.server_deleted = (out.server_deleted or 0) + 1 end
        if uncertain then out.uncertain_deletes = out.uncertain_deletes + 1 end
        removed(ev.delete)
      else
        out.deletes_kept = out.deletes_kept + 1
      end
    elseif ev.purge then
      local entry = { kind = "purge", account = s.account, stream = s.name, index = index,
                      uncertain = index > max_commit, request = ev.purge }
      if decide(keep, entry) then
        local gone = replay.purge(st, ev.purge, L)
        out.purges, out.purged = out.purges + 1, out.purged + #gone
        for _, seq in ipairs(gone) do removed(seq) end
      else
        out.notes[#out.notes + 1] = ("entry %d: a purge dropped by policy"):format(index)
      end
    elseif ev.abandon then
      -- nothing but the end of a batch
    elseif ev.range then
      -- skipped sequences (2.14+): those past the stream's last are taken
      local first, last = ev.range.first, ev.range.first + ev.range.num - 1
      if not stopped and ev.range.num > 0 and last > L then
        if first > L + 1 then
          out.notes[#out.notes + 1] = ("entry %d: delete range %d-%d, the stream ends at %d: "
            .. "a gap the log cannot fill; salvage of its messages stops here"):format(index, first, last, L)
          stopped = true
        else
          out.range_skipped = (out.range_skipped or 0) + (last - L)
          L = last
        end
      end
    elseif ev.batch then
      local b = ev.batch
      if batch and (batch.id ~= b.id or b.seq == 1) then abandon() end
      batch = batch or { id = b.id, count = 0, items = {}, index = index }
      batch.count = batch.count + 1
      if b.seq ~= batch.count then
        abandon()
      else
        batch.items[#batch.items + 1] = { index = index, msg = b.msg }
        if b.commit then
          local items = batch.items
          batch = nil
          out.batches, out.batch_msgs = (out.batches or 0) + 1, (out.batch_msgs or 0) + #items
          for _, it in ipairs(items) do
            if stopped then break end
            local bad = apply_message(it)
            if bad then return bad end
          end
        end
      end
    elseif not stopped then
      local bad = apply_message(ev)
      if bad then return bad end
    end
  end
  if batch then
    -- the server holds it until its commit, which this log does not have
    out.batch_cut = batch.count
    out.notes[#out.notes + 1] = ("entry %d: atomic batch %s: the log ends after %d of its message(s), "
      .. "before its commit: not stored, as the server stores a batch at its commit only")
      :format(batch.index, batch.id, batch.count)
  end
  out.clfs = clfs
  -- A new block after the store's own does not start with deleted
  -- records: 2.9.10 takes its first record's sequence as the stream's
  -- first when the blocks before it hold none (measured: first 4 served
  -- where the cluster had 5).  Sequences between blocks are simply
  -- absent, as after any compaction; one record stays to keep the last.
  if not torn and last_block > 0 then
    local from = #records
    for i = 1, #records do if not gone_at[i] then from = i break end end
    if from > 1 then records = { table.unpack(records, from) } end
  end
  if #records > 0 then
    out.block = layout.block(s.path, target)
    local head = ""
    -- an encrypted store's block is written encrypted (sealed.disk_bytes):
    -- the torn block's own keystream, or a new block with its own N.key
    local bkeys = files[#files] and torn and sealed.block_keys(s, files[#files])
    if bkeys then bkeys.kind = "block" end
    if not torn and s.encrypted then
      bkeys = { kind = "new_block", account = s.account, context = s.name .. ":" .. target,
                cipher = s.info and s.info.cipher or "chacha" }
    end
    if torn then
      head = read_file(out.block)
      if head and bkeys then head = jsr.block_crypt(head, bkeys) end
      if not head or #head < torn then
        out.notes[#out.notes + 1] = out.block .. ": cannot read it again; its log is not salvaged"
        out.appended, out.first, out.last, out.block = 0, nil, nil, nil
        return out
      end
      head = head:sub(1, torn)
      out.torn = torn
      out.remove = {}
      for _, ext in ipairs { layout.IDX_EXT, layout.FSS_EXT } do
        local pth = layout.block(s.path, target, ext)
        if jsr.lstat(pth) then out.remove[#out.remove + 1] = pth end
      end
    end
    out.write = { path = out.block, data = head .. table.concat(records), seal = bkeys }
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

-- A consumer reset to a stream sequence (op 18, 2.14+; consumer.go
-- resetLocalStartingSeq, filestore.go consumerFileStore.Reset): nothing
-- pending or redelivered, delivered and the ack floor at the sequence
-- before it, consumer sequences 0.
local function apply_reset(st, u, _, dry)
  local at = u.sseq > 0 and u.sseq - 1 or 0
  if st.delivered.consumer == 0 and st.ack_floor.consumer == 0 and st.delivered.stream == at
     and st.ack_floor.stream == at and next(st.pending) == nil and next(st.redelivered) == nil then
    return false
  end
  if not dry then
    st.delivered.consumer, st.delivered.stream = 0, at
    st.ack_floor.consumer, st.ack_floor.stream = 0, at
    st.pending, st.redelivered = {}, {}
  end
  return true
end

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

-- the update's apply function and kind
local function apply_of(u)
  if u.op == raft.op.update_acks then return apply_ack, "ack" end
  if u.op == raft.op.reset_seq then return apply_reset, "reset" end
  return apply_delivered, "delivered"
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
  if s.encrypted and not jsr.has_keys() then
    out.notes[#out.notes + 1] = "encrypted consumer: its log is not salvaged without the server's key "
      .. "(--key-file or JSR_KEY)"
    return out
  end
  local function stop_at(f)
    group_finding(r, out, f, "salvage stops before it")
    return false
  end
  local odat_path = layout.consumer_state(c.path)
  local log_files = jsr.block_files(gdir)
  if log_files and raft.is_empty(log_files) then return out end
  local raw, rerr = sealed.odat(s, c)
  if not raw and rerr then
    out.notes[#out.notes + 1] = rerr .. "; not salvaged"
    return out
  end
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
        if op == raft.op.reset_seq then
          -- 2.14+: u64 the stream sequence to restart at, the reply subject
          if #e.data < 9 then
            return stop_at(raft.finding(file, rec.offset, index, "consumer reset cut off"))
          end
          updates[#updates + 1] = { index = index, u = { op = op, sseq = string.unpack("<I8", e.data, 2) } }
        elseif not CONSUMER_OPS[op] then
          return stop_at(raft.finding(file, rec.offset, index,
            ("operation %d, unknown to js-recover in a consumer group's log (it knows 7, 8, 10, 12, 13 "
              .. "and 18: every one up to nats-server %s)"):format(op, NEWEST_KNOWN)))
        end
        local u = op ~= raft.op.reset_seq and raft.consumer_update(e.data)
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
    ahead = apply_of(up.u)(st, up.u, policy, true)
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
    -- only updates o.dat lacks count
    local apply, kind = apply_of(u)
    local changed = apply(st, u, policy, true)
    if changed then
      local uncertain = index > max_commit
      out.log_ahead = out.log_ahead + 1
      local entry = { kind = kind, account = s.account, stream = s.name, consumer = c.name,
                      index = index, seq = u.sseq, uncertain = uncertain }
      if decide(keep, entry) then
        apply(st, u, policy, false)
        if kind == "ack" then out.acks = out.acks + 1
        elseif kind == "reset" then out.resets = (out.resets or 0) + 1
        else out.delivered = out.delivered + 1 end
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
    out.log_ahead, out.acks, out.delivered, out.uncertain, out.resets = 0, 0, 0, 0, nil
    return out
  end
  if out.acks + out.delivered + (out.resets or 0) > 0 then
    local k = sealed.consumer_keys(s, c)
    if k then k.kind = "file" end
    out.write = { path = odat_path, data = jsr.odat.encode(st), seal = k }
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
  local meta, moved = metastate.find(m)
  if not meta or moved then
    r.why = meta and "the Raft state was moved aside by an earlier run" or "no Raft state under _js_"
    return r
  end
  r.available = true
  local sys = layout.raft_dir_of(meta)
  local st = metastate.read(m, meta)
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
    local ndel = s.deleted or 0
    local nrej = #(s.rejections or {})
    if s.log_ahead > 0 or #s.notes > 0 or ndel > 0 or nrej > 0 or (s.purged or 0) > 0 or (s.batches or 0) > 0
       or (s.markers or 0) > 0 or (s.range_skipped or 0) > 0 then
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
        l = l .. ("; %d delete(s) in the log %s to the blocks that still hold them")
          :format(ndel, applied and "applied" or "would be applied")
        -- a delete without a client is the server's own (2.11+): what
        -- makes one in a limits stream is expiry only
        local nsrv = s.server_deleted or 0
        if nsrv > 0 then
          l = l .. (" (%d by clients, %d by the server: %s)"):format(ndel - nsrv, nsrv, s.retention == "limits"
            and "expired, max_age or Nats-TTL" or ("expired or acked (" .. tostring(s.retention) .. " retention)"))
        end
        if s.uncertain_deletes > 0 then
          l = l .. (" (%d past commit index %d: maybe never committed, applied: asked for before the crash)")
            :format(s.uncertain_deletes, s.max_commit)
        end
      end
      if (s.deletes_kept or 0) > 0 then l = l .. ("; %d delete(s) dropped by policy"):format(s.deletes_kept) end
      if nrej > 0 then
        local kinds = {}
        for k, n in pairs(s.rejected) do kinds[#kinds + 1] = ("%d %s"):format(n, k) end
        table.sort(kinds)
        l = l .. ("; %d publish(es) in the log refused as the server refused them (%s), none stored")
          :format(nrej, table.concat(kinds, ", "))
      end
      if (s.purges or 0) > 0 then
        l = l .. ("; %d purge(s) in the log %sremove %d message(s) the store still holds or salvage appends")
          :format(s.purges, applied and "" or "would ", s.purged)
      end
      if (s.skipped or 0) > 0 then
        l = l .. ("; %d message(s) no consumer of the interest stream wanted: sequence taken, not stored")
          :format(s.skipped)
      end
      if (s.batches or 0) > 0 then
        l = l .. ("; %d atomic batch(es) of %d message(s) in the log, applied at their commits")
          :format(s.batches, s.batch_msgs)
      end
      if (s.markers or 0) > 0 then
        l = l .. ("; %d subject delete marker(s) (max_age took a subject's last message) stored, removing %d "
          .. "expired message(s)"):format(s.markers, s.marker_removed or 0)
      end
      if (s.schedule_removed or 0) > 0 then
        l = l .. ("; %d schedule message(s) purged as their delayed messages fired"):format(s.schedule_removed)
      end
      if (s.range_skipped or 0) > 0 then
        l = l .. ("; %d sequence(s) skipped by the log's delete ranges"):format(s.range_skipped)
      end
      if (s.limit_removed or 0) > 0 then
        l = l .. ("; %d message(s) removed by the stream's limits as salvaged messages were stored")
          :format(s.limit_removed)
      end
      -- nothing ahead: the first clause follows the name
      out[#out + 1] = (l:gsub("^(stream [^\n]-):; ", "%1: ", 1))
      for i = 1, math.min(nrej, 5) do
        local j = s.rejections[i]
        out[#out + 1] = ("  refused: entry %d (%s, would be seq %d): %s"):format(j.index, j.subject, j.seq, j.why)
      end
      if nrej > 5 then out[#out + 1] = ("  refused: %d more (recovery-report.json)"):format(nrej - 5) end
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
      if c.acks + c.delivered + (c.resets or 0) > 0 then
        l = l .. ("; %sapply %d ack(s), %d delivered%s: ack floor %d -> %d, delivered %d -> %d, %d pending")
          :format(verb, c.acks, c.delivered, (c.resets or 0) > 0 and (", " .. c.resets .. " reset(s)") or "",
            c.before.ack_floor, c.after.ack_floor, c.before.delivered, c.after.delivered, c.after.pending)
      end
      if c.uncertain > 0 then l = l .. ("; %d uncertain (kept)"):format(c.uncertain) end
      if c.dropped > 0 then l = l .. ("; %d dropped by policy"):format(c.dropped) end
      out[#out + 1] = l
      for _, n in ipairs(c.notes) do out[#out + 1] = "  note: " .. n end
    end
  end
  return out
end

function M.sorted_seqs(set) return json.array(sorted(set or {})) end

-- For recovery-report.json and inspect --json.
function M.json(r)
  local o = json.object()
  o.available = r.available
  o.why = r.why
  o.streams = json.array()
  o.consumers = json.array()
  local function notes_of(x)
    local notes = json.array()
    for i, n in ipairs(x.notes) do notes[i] = n end
    return notes
  end
  local function rejected_of(x)
    local t = json.object()
    for k, n in pairs(x.rejected or {}) do t[k] = n end
    return t
  end
  local function rejections_of(x)
    local t = json.array()
    for i, j in ipairs(x.rejections or {}) do
      t[i] = { index = j.index, seq = j.seq, subject = j.subject, rule = j.rule, why = j.why }
    end
    return t
  end
  for _, p in ipairs(sorted(r.streams)) do
    local s = r.streams[p]
    o.streams[#o.streams + 1] = { account = s.account, stream = s.stream, group = s.group,
      store_last = s.store_last, log_ahead = s.log_ahead, appended = s.appended, first = s.first,
      last = s.last, uncertain = s.uncertain, dropped = s.dropped, max_commit = s.max_commit,
      block = s.block, deletes = M.sorted_seqs(s.deletes), uncertain_deletes = s.uncertain_deletes,
      notes = notes_of(s), rejected = rejected_of(s), rejections = rejections_of(s),
      deleted = s.deleted, purges = s.purges, purged = s.purged, limit_removed = s.limit_removed,
      matched = s.matched, skipped = s.skipped, clfs = s.clfs, base_last = s.base_last, base_clfs = s.base_clfs,
      server_deleted = s.server_deleted, retention = s.retention, markers = s.markers,
      marker_removed = s.marker_removed, batches = s.batches, batch_messages = s.batch_msgs,
      batches_abandoned = s.batches_abandoned, batch_cut = s.batch_cut, range_skipped = s.range_skipped,
      schedule_removed = s.schedule_removed }
  end
  for _, p in ipairs(sorted(r.consumers)) do
    local c = r.consumers[p]
    o.consumers[#o.consumers + 1] = { account = c.account, stream = c.stream, consumer = c.consumer,
      group = c.group, log_ahead = c.log_ahead, acks = c.acks, delivered = c.delivered,
      uncertain = c.uncertain, dropped = c.dropped, before = c.before, after = c.after, notes = notes_of(c),
      resets = c.resets }
  end
  return o
end

return M
