-- Reading what a dead cluster's Raft groups left under _js_/<GROUP>/: the
-- log (msgs/N.blk records whose payload is an append entry), the newest
-- snapshot, peers.idx and tav.idx, and the entries' payloads: meta
-- assignments, stream messages, consumer updates, consumer state (o.dat).
-- Formats: docs/FORMAT.md "Raft logs" (nats-server 2.9 raft.go,
-- jetstream_cluster.go, filestore.go), checked on stores 2.9.10 wrote.
--
--   local raft = require("jsr.raft")
--   raft.log(dir, function(index, ae) ... end)       -- every stored entry
--   local snap = raft.latest_snapshot(dir)           -- or nil
--   local state = raft.meta_state(meta_dir)          -- assignments
local jsr = require("jsr")
local json = jsr.json
local layout = jsr.layout

local M = {}

-- Entry types of an append entry.
M.NORMAL, M.OLD_SNAPSHOT, M.PEER_STATE, M.ADD_PEER, M.REMOVE_PEER, M.LEADER_TRANSFER, M.SNAPSHOT =
  0, 1, 2, 3, 4, 5, 6

-- First byte of a normal entry's data (jetstream_cluster.go entryOp).
M.op = {
  assign_stream = 0, assign_consumer = 1, remove_stream = 2, remove_consumer = 3,
  stream_msg = 4, purge_stream = 5, delete_msg = 6, update_delivered = 7, update_acks = 8,
  assign_compressed_consumer = 9, update_skip = 10, update_stream = 11,
  compressed_stream_msg = 14, delete_range = 15, batch_msg = 16, batch_commit = 17, reset_seq = 18,
}

local function basename(path) return (path:gsub("/+$", ""):match("([^/]+)$")) end

-- decode_append_entry(bytes) -> ae | nil, message
-- ae = {leader, term, commit, pterm, pindex, entries = {{type, data}...}}
-- 2.9: leader id [8] | term | commit | pterm | pindex (u64 each) | u16 count
-- | per entry u32 size (1 + data) | u8 type | data.  Newer servers append
-- fields after the entries; they are kept in `rest`.
function M.decode_append_entry(b)
  if #b < 42 then return nil, ("append entry of %d bytes, shorter than its 42-byte header"):format(#b) end
  local term, commit, pterm, pindex, count, pos = string.unpack("<I8I8I8I8I2", b, 9)
  local ae = { leader = b:sub(1, 8), term = term, commit = commit, pterm = pterm, pindex = pindex,
               entries = {} }
  for i = 1, count do
    if pos + 4 > #b + 1 then return nil, ("append entry: entry %d of %d cut off"):format(i, count) end
    local size
    size, pos = string.unpack("<I4", b, pos)
    if size < 1 or pos + size - 1 > #b then
      return nil, ("append entry: entry %d of %d has size %d, %d bytes left"):format(i, count, size, #b - pos + 1)
    end
    ae.entries[i] = { type = b:byte(pos), data = b:sub(pos + 1, pos + size - 1) }
    pos = pos + size
  end
  ae.rest = b:sub(pos)
  return ae
end

-- uvarint(b, pos) -> value, next pos | nil
local function uvarint(b, pos)
  local v, shift = 0, 0
  while pos <= #b and shift < 64 do
    local c = b:byte(pos)
    pos = pos + 1
    v = v | ((c & 0x7f) << shift)
    if c < 0x80 then return v, pos end
    shift = shift + 7
  end
  return nil
end
M.uvarint = uvarint

local function varint(b, pos)
  local u, p = uvarint(b, pos)
  if not u then return nil end
  local v = u >> 1
  if u & 1 ~= 0 then v = ~v end
  return v, p
end
M.varint = varint

-- finding(file, offset, index, what) -> {file, offset, index, what, message}
-- A Raft entry that cannot be used as it is: where it is (the log file,
-- the record's byte offset, its Raft index) and what was wrong, in one
-- line an operator can act on.
function M.finding(file, offset, index, what)
  local where
  if index and offset then where = ("entry %d at byte %d"):format(index, offset)
  elseif offset then where = ("byte %d"):format(offset)
  elseif index then where = ("entry %d"):format(index) end
  return { file = file, offset = offset, index = index, what = what,
           message = where and ("%s: %s: %s"):format(file, where, what) or ("%s: %s"):format(file, what) }
end

-- log(dir, fn [, files [, bad]]) -> summary
-- Calls fn(index, ae, rec, file) for every live record of the group's log
-- in index order (fn returns false to stop); records that do not decode
-- are findings (summary.findings, their messages also in
-- summary.problems), not raised, each passed to bad(finding) first, which
-- returns false to stop there.  summary = {records, first, last,
-- max_commit, problems = {...}, findings = {...}, blocks}.  files: the
-- group's jsr.block_files(dir), when the caller has listed them already.
function M.log(dir, fn, files, bad)
  local group = basename(dir)
  local s = { group = group, records = 0, first = 0, last = 0, max_commit = 0, problems = {}, findings = {},
              blocks = 0 }
  local err
  if not files then files, err = jsr.block_files(dir) end
  if not files then
    -- no msgs/ at all: a group that has logged nothing yet
    if jsr.lstat(layout.msgs_dir(dir)) then s.problems[#s.problems + 1] = err end
    return s
  end
  local stop = false
  local function found(f)
    s.findings[#s.findings + 1] = f
    s.problems[#s.problems + 1] = f.message
    if bad and bad(f) == false then stop = true; return false end
    return true
  end
  for i, b in ipairs(files) do
    s.blocks = s.blocks + 1
    -- an encrypted store's Raft log too (jetstream { key }): the server keys
    -- each group's blocks as a stream named after the group, in an
    -- "account" of that name
    -- a block the server has just started holds nothing yet
    if b.size == 0 then goto next_block end
    if b.key and not jsr.has_keys() then
      s.encrypted = true
      s.problems[#s.problems + 1] = ("%s: encrypted, not read (give the server's key with --key-file or JSR_KEY)")
        :format(b.path)
      goto next_block
    end
    local st, serr = jsr.scan_block(b.path, group .. "-" .. b.index, {
      index = b.idx, last = i == #files,
      keyfile = b.key, account = b.key and group or nil, context = b.key and (group .. ":" .. b.index) or nil,
      records = function(rec)
        -- a 2.10+ tombstone marks a sequence erased elsewhere: no entry
        if rec.deleted or rec.tombstone then return true end
        if not rec.hash_ok then return found(M.finding(b.path, rec.offset, rec.seq, "bad checksum")) end
        local ae, aerr = M.decode_append_entry(rec.payload)
        if not ae then return found(M.finding(b.path, rec.offset, rec.seq, aerr)) end
        s.records = s.records + 1
        if s.first == 0 then s.first = rec.seq end
        s.last = rec.seq
        if ae.commit > s.max_commit then s.max_commit = ae.commit end
        if fn and fn(rec.seq, ae, rec, b.path) == false then stop = true; return false end
        return true
      end,
    })
    if not st then
      -- the scanner's message names the file already
      found({ file = b.path, what = serr, message = serr })
    elseif not stop then
      for _, p in ipairs(st.problems) do
        -- a crash's partial last record and a lagging index are normal here
        if p.kind ~= "torn_tail" and p.kind ~= "index" then
          local f = M.finding(b.path, nil, nil, p.message)
          f.offset, f.index = p.offset, p.seq
          if not found(f) then break end
        end
      end
    end
    if stop then break end
    ::next_block::
  end
  return s
end

-- is_empty(files) -> true when a group's log blocks (jsr.block_files)
-- hold no bytes at all: nothing in it can be ahead of anything
function M.is_empty(files)
  for _, b in ipairs(files) do
    if b.size ~= 0 then return false end
  end
  return true
end

-- snapshots(dir) -> { {path, term, index}, ... } oldest first
function M.snapshots(dir)
  local snaps = layout.snapshots_dir(dir)
  local names = jsr.listdir(snaps) or {}
  local out = {}
  for _, n in ipairs(names) do
    local t, i = layout.snapshot_of(n)
    if t then
      out[#out + 1] = { path = snaps .. "/" .. n, term = t, index = i }
    end
  end
  table.sort(out, function(a, b)
    if a.index ~= b.index then return a.index < b.index end
    return a.term < b.term
  end)
  return out
end

-- latest_snapshot(dir) -> snap | nil, message (nil, nil: there is none)
-- The newest whose checksum matches; a bad one is skipped with a note in
-- snap.skipped, as the server would not install it either.
function M.latest_snapshot(dir)
  local list = M.snapshots(dir)
  local skipped = {}
  for i = #list, 1, -1 do
    local snap, err = jsr.raft.snapshot(list[i].path, basename(dir))
    if snap and snap.hash_ok then
      snap.path = list[i].path
      snap.skipped = skipped
      return snap
    end
    skipped[#skipped + 1] = snap and ("%s: checksum %s, the file says %s"):format(
      list[i].path, snap.hash_computed, snap.hash_file) or err
  end
  if #skipped > 0 then return nil, table.concat(skipped, "; ") end
  return nil, nil
end

local read_file = require("jsr.files").read

-- peers(dir) -> {cluster_size, peers = {id...}} from peers.idx, or nil
function M.peers(dir)
  local b = read_file(layout.peers(dir))
  return b and jsr.raft.peer_state(b) or nil
end

-- tav(dir) -> {term, vote} from tav.idx, or nil
function M.tav(dir)
  local b = read_file(layout.tav(dir))
  if not b or #b < 8 then return nil end
  local vote = b:sub(9, 16)
  return { term = (string.unpack("<I8", b)), vote = vote ~= "" and vote or nil }
end

-- ------------------------------------------------------------ payloads

-- stream_msg(data) -> {lseq, ts, subject, reply, headers, payload} | nil, msg
-- data: a normal entry's data starting with op 4 (or 14, S2-compressed).
function M.stream_msg(data)
  local op = data:byte(1)
  local b = data:sub(2)
  if op == M.op.compressed_stream_msg then
    local plain, err = jsr.s2.decode(b)
    if not plain then return nil, "compressed stream message: " .. err end
    b = plain
  elseif op ~= M.op.stream_msg then
    return nil, "not a stream message (op " .. tostring(op) .. ")"
  end
  local ok, m = pcall(function()
    local lseq, ts, subject, reply, hdr, pos = string.unpack("<I8i8s2s2s2", b)
    local payload
    payload, pos = string.unpack("<s4", b, pos)
    -- 2.10+ ends it with a uvarint of flags: 1, from a source or mirror
    local flags = pos <= #b and uvarint(b, pos) or 0
    return { lseq = lseq, ts = ts, subject = subject, reply = reply,
             headers = hdr ~= "" and hdr or nil, payload = payload, compressed = op == 14,
             sourced = (flags or 0) & 1 ~= 0 }
  end)
  if not ok then return nil, "stream message cut off" end
  return m
end

-- batch_msg(data) -> {id, seq, commit, msg} | nil, message: an atomic
-- batch's entry (2.12+, ops 16 and 17): u16 length and the batch id,
-- uvarint its place in the batch (from 1), then a stream message entry
-- (op 4 or 14 and its bytes)
function M.batch_msg(data)
  local op = data:byte(1)
  if op ~= M.op.batch_msg and op ~= M.op.batch_commit then return nil, "not a batch entry" end
  if #data < 3 then return nil, "batch entry cut off" end
  local idlen = string.unpack("<I2", data, 2)
  local id = data:sub(4, 3 + idlen)
  if #id < idlen then return nil, "batch entry cut off in its id" end
  local seq, p = uvarint(data, 4 + idlen)
  if not seq or not p or p > #data then return nil, "batch entry cut off after its id" end
  local msg, err = M.stream_msg(data:sub(p))
  if not msg then return nil, "batch " .. id .. " entry " .. seq .. ": " .. err end
  return { id = id, seq = seq, commit = op == M.op.batch_commit, msg = msg }
end

-- consumer_update(data) -> {op, dseq, sseq, dc, ts} for ops 7 and 8
function M.consumer_update(data)
  local op = data:byte(1)
  if op ~= M.op.update_delivered and op ~= M.op.update_acks then return nil end
  local dseq, p = uvarint(data, 2)
  local sseq
  if p then sseq, p = uvarint(data, p) end
  if not sseq then return nil end
  local u = { op = op, dseq = dseq, sseq = sseq }
  if op == M.op.update_delivered then
    u.dc, p = uvarint(data, p)
    if p then u.ts = varint(data, p) end
  end
  return u
end

-- consumer_state(bytes) -> state | nil, message: o.dat, or a consumer
-- group's snapshot data.  state = {ack_floor = {consumer, stream},
-- delivered = {consumer, stream}, pending = {[sseq] = {dseq, ts}},
-- pending_count, redelivered = {[sseq] = count}}
function M.consumer_state(b)
  if #b < 2 or b:byte(1) ~= 22 or b:byte(2) ~= 2 then
    return nil, "consumer state: not magic 22, version 2"
  end
  local st = { ack_floor = {}, delivered = {}, pending = {}, redelivered = {}, pending_count = 0 }
  local p = 3
  -- Sequences and counts are uint64 on disk.  One at or above 2^63
  -- (negative here), or a floor plus delta past it, is in no real store
  -- and could not be written back (jsr.odat.encode): corrupt.
  local function u()
    local at, v = p
    v, p = uvarint(b, p)
    if not v then error("consumer state cut off", 0) end
    if v < 0 then error(("consumer state: value at byte %d is 2^63 or more"):format(at - 1), 0) end
    return v
  end
  local function s()
    local v
    v, p = varint(b, p)
    if not v then error("consumer state cut off", 0) end
    return v
  end
  -- floor + a delta that must not be 0: the server refuses a pending or
  -- redelivered entry at the floor as corrupt state
  local function above(floor, what)
    local at = p
    local d = u()
    local v = floor + d
    if d == 0 or v < 0 then
      error(("consumer state: %s entry at byte %d %s"):format(what, at - 1,
        d == 0 and "is at the ack floor" or "is past 2^63"), 0)
    end
    return v
  end
  local ok, err = pcall(function()
    st.ack_floor.consumer, st.ack_floor.stream = u(), u()
    st.delivered.consumer, st.delivered.stream = u(), u()
    local np = u()
    st.pending_count = np
    if np > 0 then
      local base = s()
      for _ = 1, np do
        local sseq = above(st.ack_floor.stream, "pending")
        local at = p
        local dseq = u() + st.ack_floor.consumer
        if dseq < 0 then error(("consumer state: delivery sequence at byte %d is past 2^63"):format(at - 1), 0) end
        local ts = base - s()
        st.pending[sseq] = { dseq = dseq, ts = ts }
      end
    end
    local nr = u()
    for _ = 1, nr do
      local sseq = above(st.ack_floor.stream, "redelivered")
      local at = p
      local n = u()
      if n == 0 then error(("consumer state: redelivered count at byte %d is 0"):format(at - 1), 0) end
      st.redelivered[sseq] = n
    end
  end)
  if not ok then return nil, err end
  return st
end

-- ---------------------------------------------------------- meta state

-- The account a client info names: the service account when the request
-- came through an import, as the server's serviceAccount() does.
local function account_of(client)
  if type(client) ~= "table" then return nil end
  local svc = client.svc
  if type(svc) == "string" and svc ~= "" then return svc end
  local acc = client.acc
  if type(acc) == "string" then return acc end
  return nil
end
M.account_of = account_of

-- An entry holds one assignment: a config and a few fields around it, so
-- no more values than a meta.inf may hold (jsr/json.h); a snapshot holds
-- every assignment, and is bounded by its file's size only.
local ENTRY_MAX_VALUES = json.CONFIG_MAX_VALUES + 1000

local function decode_json(text, max_values)
  -- assignments in the log are written with json.Encoder: a trailing
  -- newline, which JSON allows (no copy of a snapshot that may be 20 MB)
  return json.decode(text, max_values)
end

-- ------------------------------------------- shapes of the assignments
-- Each check returns nil, or what is wrong: every field the meta state
-- keeps is one a later reader (lost, salvage, prepare) can use without
-- checking its type again.

local NUMBER_MT = getmetatable(json.number("0.5"))

local function kind_of(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "table" then
    local mt = getmetatable(v)
    if mt == NUMBER_MT then return "a number" end -- one beyond int64, or not an integer
    return (mt and mt.__name == "array") and "an array" or "an object"
  end
  if t == "string" then return "a string" end
  if t == "number" then return "a number" end
  if t == "boolean" then return "a boolean" end
  return t
end
M.kind_of = kind_of

local function is_object(v) return kind_of(v) == "an object" end
local function absent(v) return v == nil or v == json.null end
local function is_name(v) return type(v) == "string" and v ~= "" end

local function client_problem(c)
  if absent(c) then return nil end
  if not is_object(c) then return "client is " .. kind_of(c) .. ", not an object" end
  for _, f in ipairs { "acc", "svc", "server" } do
    if not absent(c[f]) and type(c[f]) ~= "string" then
      return ("client %s is %s, not a string"):format(f, kind_of(c[f]))
    end
  end
end

-- A group's name becomes a directory under _js_: a plain name only.
local function group_problem(g)
  if absent(g) then return nil end
  if not is_object(g) then return "group is " .. kind_of(g) .. ", not an object" end
  if not absent(g.name) then
    if not is_name(g.name) then return "group name is " .. kind_of(g.name) .. ", not a string" end
    if g.name:find("[/%z]") or g.name == "." or g.name == ".." then
      return ("group name %q is not a directory name"):format(g.name)
    end
  end
  if not absent(g.peers) then
    local peers = g.peers
    if kind_of(peers) ~= "an array" then return "group peers is " .. kind_of(peers) .. ", not a list" end
    for _, p in ipairs(peers) do
      if type(p) ~= "string" then return "group peers hold " .. kind_of(p) .. ", not a node id" end
    end
  end
end

local function config_problem(cfg, what)
  if not is_object(cfg) then return ("%s config is %s, not an object"):format(what, kind_of(cfg)) end
  local n = cfg.num_replicas
  if not absent(n) and math.type(n) ~= "integer" then
    return ("%s config num_replicas is %s, not an integer"):format(what, kind_of(n))
  end
  if what == "consumer" and not absent(cfg.durable_name) and type(cfg.durable_name) ~= "string" then
    return "consumer config durable_name is " .. kind_of(cfg.durable_name) .. ", not a string"
  end
end

-- stream_assignment(sa, what) -> acc, name | nil, problem [, acc, name]
-- (acc and name with a problem: it is known which stream it is about)
local function stream_assignment(sa, what)
  if not is_object(sa) then return nil, ("%s is %s, not an object"):format(what, kind_of(sa)) end
  local p = client_problem(sa.client)
  if p then return nil, what .. ": " .. p end
  local acc = account_of(sa.client) or "?"
  if not is_object(sa.stream) then
    return nil, ("%s: stream config is %s, not an object"):format(what, kind_of(sa.stream))
  end
  local name = sa.stream.name
  if not is_name(name) then
    return nil, ("%s: stream name is %s, not a string"):format(what, absent(name) and "missing" or kind_of(name))
  end
  p = config_problem(sa.stream, "stream") or group_problem(sa.group)
  if not p and not absent(sa.Consumers) and kind_of(sa.Consumers) ~= "an array" then
    p = "consumers are " .. kind_of(sa.Consumers) .. ", not a list"
  end
  if p then return nil, ("%s of %s > %s: %s"):format(what, acc, name, p), acc, name end
  return acc, name
end

-- consumer_assignment(ca, what) -> acc | nil, problem [, acc, stream, name]
local function consumer_assignment(ca, what, removal)
  if not is_object(ca) then return nil, ("%s is %s, not an object"):format(what, kind_of(ca)) end
  local p = client_problem(ca.client)
  if p then return nil, what .. ": " .. p end
  local acc = account_of(ca.client) or "?"
  for _, f in ipairs { "stream", "name" } do
    if not is_name(ca[f]) then
      return nil, ("%s: %s is %s, not a string"):format(what, f, absent(ca[f]) and "missing" or kind_of(ca[f]))
    end
  end
  if not removal then
    p = (not absent(ca.consumer) and config_problem(ca.consumer, "consumer")) or group_problem(ca.group)
    if p then return nil, ("%s %s > %s > %s: %s"):format(what, acc, ca.stream, ca.name, p), acc, ca.stream, ca.name end
  end
  return acc
end

-- The ops a meta group's normal entry may hold (jetstream_cluster.go applyMetaEntries).
local META_OPS = { [M.op.assign_stream] = true, [M.op.assign_consumer] = true, [M.op.remove_stream] = true,
                   [M.op.remove_consumer] = true, [M.op.assign_compressed_consumer] = true,
                   [M.op.update_stream] = true }

-- meta_state(dir) -> state
-- The meta group's assignments as this node last knew them: the newest
-- valid snapshot, then every log entry after it applied in order.  An
-- entry of an unexpected shape is not applied: it is a finding
-- (st.findings; its message also in st.problems), about one stream or
-- consumer when the entry says which (finding.account, .stream,
-- .consumer), else about everything assigned before it (finding.all):
-- M.untrusted tells which assignments a finding may have changed.
-- state = {
--   streams = { ["ACCOUNT\0NAME"] = {account, name, config, group, client,
--               consumers = { [name] = {name, config, group, client, index} },
--               index} },              -- index: the log entry that set it (0: snapshot)
--   removed = { {kind, account, stream, consumer, index} },
--   snapshot = {path, term, index} | nil, log = summary of raft.log,
--   applied = number of entries applied, max_commit, uncommitted_from,
--   peers = peer state (peers.idx), problems = {...}, findings = {...} }
function M.meta_state(dir)
  local st = { dir = dir, streams = {}, removed = {}, problems = {}, findings = {}, applied = 0,
               server_names = {} }
  local function note(msg) st.problems[#st.problems + 1] = msg end
  -- where: {file, offset, index} of the entry (offset nil in a snapshot)
  local function bad(where, what, acc, stream, consumer)
    local f = M.finding(where.file, where.offset, where.index, what)
    f.account, f.stream, f.consumer, f.all = acc, stream, consumer, stream == nil or nil
    -- an assignment of a snapshot applies at the snapshot's index
    f.at = where.at or where.index or 0
    st.findings[#st.findings + 1] = f
    note(f.message)
  end
  local function names_from(client)
    if is_object(client) and is_name(client.server) then st.server_names[client.server] = true end
  end
  local function key(acc, name) return acc .. "\0" .. name end

  local function add_stream(sa, index, where, what, keep_consumers)
    local acc, name, a2, n2 = stream_assignment(sa, what)
    if not acc then bad(where, name, a2, n2); return nil end
    local k = key(acc, name)
    local old = st.streams[k]
    if what == "stream update" and not old then
      bad(where, ("update of stream %s > %s, which is not assigned: not applied"):format(acc, name), acc, name)
      return nil
    end
    names_from(sa.client)
    st.streams[k] = { account = acc, name = name, config = sa.stream, group = sa.group,
                      client = sa.client, created = sa.created, index = index,
                      consumers = (keep_consumers and old) and old.consumers or {} }
    return st.streams[k]
  end

  local function add_consumer(ca, index, where, what)
    local acc, p, a2, s2, c2 = consumer_assignment(ca, what)
    if not acc then bad(where, p, a2, s2, c2); return end
    names_from(ca.client)
    local s = st.streams[key(acc, ca.stream)]
    if not s then
      bad(where, ("consumer %s of stream %s > %s, which is not assigned: not applied"):format(ca.name, acc,
        ca.stream), acc, ca.stream, ca.name)
      return
    end
    s.consumers[ca.name] = { name = ca.name, stream = ca.stream, account = acc, config = ca.consumer,
                             group = ca.group, client = ca.client, created = ca.created, index = index }
  end

  -- where.file: the snapshot file, or the log entry that carried the snapshot
  local function load_snapshot(list, index, where)
    st.streams = {}
    if list == json.null then return end -- no streams
    if kind_of(list) ~= "an array" then
      bad(where, "snapshot is " .. kind_of(list) .. ", not a list of stream assignments")
      return
    end
    for i, sa in ipairs(list) do
      local w = { file = where.file, offset = where.offset, index = where.index, at = where.at }
      local label = ("stream assignment %d of the snapshot"):format(i)
      local s = add_stream(sa, index, w, label, false)
      if s and not absent(sa.Consumers) then
        for j, ca in ipairs(sa.Consumers) do
          add_consumer(ca, index, w, ("consumer assignment %d of %s"):format(j, label))
        end
      end
    end
  end

  local snap, serr = M.latest_snapshot(dir)
  if serr then note("snapshot: " .. serr) end
  local from = 0
  if snap then
    local where = { file = snap.path, at = snap.index }
    -- 2.10+ write a snapshot of no data when nothing is assigned
    -- (measured on 2.15.3)
    local plain, derr = "null", nil
    if #snap.data > 0 then plain, derr = jsr.s2.decode(snap.data) end
    if not plain then
      bad(where, "snapshot does not decompress: " .. derr)
    else
      local list, jerr = decode_json(plain)
      if list == nil then bad(where, "decoded snapshot is not JSON: " .. jerr)
      else
        load_snapshot(list, 0, where)
        from = snap.index
        st.snapshot = { path = snap.path, term = snap.term, index = snap.index,
                        peers = snap.peer_state }
      end
    end
  end

  local function body_of(where, body, what)
    local v, jerr = decode_json(body, what ~= "snapshot entry" and ENTRY_MAX_VALUES or nil)
    if v == nil then bad(where, ("%s is not JSON: %s"):format(what, jerr)) end
    return v
  end

  local function apply(index, e, where)
    if e.type == M.SNAPSHOT or e.type == M.OLD_SNAPSHOT then
      -- a snapshot the leader sent in place of entries this node missed
      local plain, derr = jsr.s2.decode(e.data)
      if not plain then bad(where, "snapshot entry does not decompress: " .. derr); return end
      local list = body_of(where, plain, "snapshot entry")
      if list ~= nil then load_snapshot(list, index, where) end
      return
    end
    if e.type ~= M.NORMAL or #e.data == 0 then return end
    local op, body = e.data:byte(1), e.data:sub(2)
    if not META_OPS[op] then
      bad(where, ("operation %d, not one of the meta group's (0-3, 9, 11): not applied"):format(op))
    elseif op == M.op.assign_stream or op == M.op.update_stream then
      local what = op == M.op.assign_stream and "stream assignment" or "stream update"
      local sa = body_of(where, body, what)
      if sa ~= nil then add_stream(sa, index, where, what, true) end
    elseif op == M.op.remove_stream then
      local sa = body_of(where, body, "stream removal")
      if sa == nil then return end
      local acc, name, a2, n2 = stream_assignment(sa, "stream removal")
      if not acc then
        -- a removal of a known stream with a damaged config still says which
        bad(where, name, a2, n2)
        return
      end
      st.streams[key(acc, name)] = nil
      st.removed[#st.removed + 1] = { kind = "stream", account = acc, stream = name, index = index }
    elseif op == M.op.assign_consumer or op == M.op.assign_compressed_consumer then
      if op == M.op.assign_compressed_consumer then
        local plain, derr = jsr.s2.decode(body)
        if not plain then bad(where, "compressed consumer assignment: " .. derr); return end
        body = plain
      end
      local ca = body_of(where, body, "consumer assignment")
      if ca ~= nil then add_consumer(ca, index, where, "consumer assignment") end
    elseif op == M.op.remove_consumer then
      local ca = body_of(where, body, "consumer removal")
      if ca == nil then return end
      local acc, p = consumer_assignment(ca, "consumer removal", true)
      if not acc then bad(where, p); return end
      local s = st.streams[key(acc, ca.stream)]
      if s then s.consumers[ca.name] = nil end
      st.removed[#st.removed + 1] = { kind = "consumer", account = acc, stream = ca.stream, consumer = ca.name,
                                      index = index }
    end
  end

  st.log = M.log(dir, function(index, ae, rec, file)
    if index <= from then return true end
    local where = { file = file, offset = rec.offset, index = index }
    for _, e in ipairs(ae.entries) do apply(index, e, where) end
    st.applied = st.applied + 1
    return true
  end)
  for _, f in ipairs(st.log.findings) do
    -- a record that cannot be read may have been any assignment
    f.all, f.at = true, f.index or math.maxinteger
    st.findings[#st.findings + 1] = f
  end
  for _, p in ipairs(st.log.problems) do note(p) end
  st.max_commit = math.max(st.log.max_commit, from)
  -- Entries above every commit index this node saw may never have been
  -- committed: the leader died before a quorum stored them.
  if st.log.last > st.max_commit then st.uncommitted_from = st.max_commit + 1 end
  st.peers = M.peers(dir)
  st.tav = M.tav(dir)
  return st
end

-- untrusted(st, account, stream [, consumer]) -> finding | nil
-- The first finding of the meta state that may have changed this
-- stream's (or consumer's) assignment: one about it (or, for a consumer,
-- about its stream), or one that does not say what it was about, at or
-- after the entry that assigned it (an entry skipped before its
-- assignment cannot have changed it: the assignment replaced whatever it
-- did).
function M.untrusted(st, account, stream, consumer)
  local s = st.streams[account .. "\0" .. stream]
  local a = s
  if consumer then a = s and s.consumers[consumer] end
  for _, f in ipairs(st.findings) do
    if f.all then
      if not a or a.index <= f.at then return f end
    elseif f.account == account and f.stream == stream and (f.consumer == nil or f.consumer == consumer) then
      return f
    end
  end
  return nil
end

return M
