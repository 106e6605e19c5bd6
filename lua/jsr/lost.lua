-- What the cluster had that this node holds no data of: the streams and
-- consumers in the meta group's assignments (its newest snapshot under
-- _js_/_meta_, plus the log entries after it) without a directory in this
-- store, and on which nodes they lived.  An R1 stream placed on a node
-- that died is gone; an operator must learn that from js-recover, not from
-- a client that cannot find the stream later.
--
--   local lost = require "jsr.lost"
--   local r = lost.analyze(model)      -- model from jsr.model.scan
--   lost.print(r, io.stdout)
--   report.lost = lost.json(r)
--
-- Peers are Raft node ids (the first 8 characters of a hash of the server
-- name); names are found by hashing every server name the assignments
-- mention (each records the server its creating client was connected to)
-- and the names in JSR_SERVER_NAMES (comma-separated), which the operator
-- knows when the assignments do not tell.
local jsr = require "jsr"
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"
local json = jsr.json
local layout = jsr.layout

local M = {}

local function file_exists(path) return jsr.lstat(path) ~= nil end

-- Where the meta group's state is: the system account's _js_/_meta_, or,
-- once prepare has moved it aside, the newest copy under
-- .js-recover/removed/<id>/<account>/_js_/_meta_.
function M.find_meta(m)
  for _, g in ipairs(m.raft) do
    if g.group == "meta" then return g.path, false end
  end
  local removed = layout.removed_dir(m.store.store_dir)
  local ids = jsr.listdir(removed) or {}
  for i = #ids, 1, -1 do
    for _, sub in ipairs(jsr.listdir(removed .. "/" .. ids[i]) or {}) do
      local p = layout.meta_group(removed .. "/" .. ids[i] .. "/" .. sub)
      if file_exists(p) then return p, true end
      -- the system account's _js_ itself may be what was moved
      p = removed .. "/" .. ids[i] .. "/" .. sub .. "/" .. layout.META_GROUP
      if sub == layout.RAFT_DIR and file_exists(p) then return p, true end
    end
  end
  return nil
end

-- Accounts renamed by an earlier prepare ($G -> GLOBAL) keep their
-- original name in recovery-report.json.
local function renamed_accounts(store_dir)
  local f = io.open(layout.report(store_dir), "rb")
  if not f then return {} end
  local r = json.decode(f:read("a"))
  f:close()
  local map = {}
  if type(r) == "table" and type(r.accounts) == "table" then
    for _, a in ipairs(r.accounts) do
      if type(a.original_name) == "string" then map[a.original_name] = a.name end
    end
  end
  return map
end

local function is_durable(cfg)
  if type(cfg) ~= "table" then return false end
  local d = cfg.durable_name
  return type(d) == "string" and d ~= ""
end

local function sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k)
  return k
end

-- analyze(m) -> r
-- r.available false (and r.why) when no meta state was found; else
-- r.streams: lost streams {account, name, replicas, peers, consumers (names)}
-- r.consumers: lost durable consumers of streams that are here
--   {account, stream, name, replicas, peers}
-- r.ephemeral: how many lost consumers were ephemeral (not restorable anyway)
-- r.unassigned: streams here the cluster no longer assigns {account, name}
-- r.peers: { {id, name, this_node} }, r.this_node (id, when it can be told)
-- r.source: {dir, moved_aside, snapshot, applied, uncommitted_from}
-- r.problems: what could not be read (the report is then partial)
local function unavailable(why)
  return { available = false, why = why, streams = {}, consumers = {}, unassigned = {}, peers = {},
           problems = {}, ephemeral = 0 }
end

local analyze

-- analyze(m [, opts]): opts.names, server names to map node ids to
-- (default: JSR_SERVER_NAMES from the environment)
-- meta_state(m, dir): raft.meta_state(dir), read once per model (inspect
-- and prepare ask for it from the lost report and from salvage)
function M.meta_state(m, dir)
  m._meta_states = m._meta_states or {}
  local st = m._meta_states[dir]
  if not st then
    st = raft.meta_state(dir)
    m._meta_states[dir] = st
  end
  return st
end

function M.analyze(m, opts)
  -- a report about what is lost must never stop inspect or prepare
  local ok, r = pcall(analyze, m, opts or {})
  if not ok then r = unavailable("could not read the meta group's state: " .. tostring(r)) end
  local dok, done, notes = pcall(M.done, m, r._meta)
  r.done = dok and done or {}
  if not dok then r.problems[#r.problems + 1] = "finding acked work-queue messages: " .. tostring(done) end
  for _, n in ipairs(dok and notes or {}) do r.problems[#r.problems + 1] = n end
  return r
end

function analyze(m, opts)
  local dir, moved = M.find_meta(m)
  if not dir then return unavailable("no meta group state (_js_/_meta_) in this store") end
  local st = M.meta_state(m, dir)
  if st.log.encrypted then
    st.problems[#st.problems + 1] = "the meta group's log is encrypted, not read: this report is from its "
      .. "snapshot alone and may miss or wrongly list streams; give the server's key"
  end
  local r = { available = true, _meta = st, streams = {}, consumers = {}, unassigned = {}, peers = {}, ephemeral = 0,
              problems = st.problems,
              source = { dir = dir, moved_aside = moved or nil, applied = st.applied,
                         snapshot = st.snapshot and st.snapshot.path or nil,
                         snapshot_index = st.snapshot and st.snapshot.index or nil,
                         last_index = st.log.last > 0 and st.log.last or nil,
                         uncommitted_from = st.uncommitted_from } }
  if not st.snapshot and st.log.records == 0 then
    r.available = false
    r.why = dir .. ": neither a snapshot nor log entries"
    return r
  end

  -- node id -> server name, from every name the assignments mention
  local names = {}
  for name in pairs(st.server_names) do names[jsr.node_id(name)] = name end
  local given = opts.names
  if not given then
    given = {}
    for n in (os.getenv("JSR_SERVER_NAMES") or ""):gmatch("[^,%s]+") do given[#given + 1] = n end
  end
  for _, name in ipairs(given) do names[jsr.node_id(name)] = name end
  local function label(id)
    return names[id] and ("%s (%s)"):format(names[id], id) or id
  end

  -- what this store holds, by account and stream
  local rename = renamed_accounts(m.store.store_dir)
  local here = {}
  for _, s in ipairs(m.streams) do
    local cons = {}
    for _, c in ipairs(s.consumers) do cons[c.name] = true end
    here[s.account .. "\0" .. s.name] = { stream = s, consumers = cons, assigned = false }
  end
  local function find(acc, name)
    return here[acc .. "\0" .. name] or (rename[acc] and here[rename[acc] .. "\0" .. name])
  end

  local all_peers = {}
  local function add_peers(list)
    if type(list) ~= "table" then return end
    for _, p in ipairs(list) do all_peers[p] = true end
  end
  if st.peers then add_peers(st.peers.peers) end
  if st.snapshot and st.snapshot.peers then add_peers(st.snapshot.peers.peers) end

  -- Which peer is this node: it is in every group whose data is here.
  local candidates
  local function held(peers)
    local set = {}
    for _, p in ipairs(peers) do set[p] = true end
    if not candidates then candidates = set
    else for p in pairs(candidates) do if not set[p] then candidates[p] = nil end end end
  end
  local function peers_of(a)
    return (type(a.group) == "table" and type(a.group.peers) == "table") and a.group.peers or {}
  end
  local function replicas_of(cfg, stream_cfg)
    local n = type(cfg) == "table" and cfg.num_replicas or nil
    if (n == nil or n == 0) and stream_cfg then n = stream_cfg.num_replicas end
    return math.type(n) == "integer" and n or nil
  end
  -- a supercluster's groups name the cluster they were placed in
  local function cluster_of(a)
    local c = type(a.group) == "table" and a.group.cluster or nil
    return type(c) == "string" and c ~= "" and c or nil
  end
  local function labels(list)
    local out = {}
    for i, p in ipairs(list) do out[i] = label(p) end
    return out
  end

  for _, k in ipairs(sorted_keys(st.streams)) do
    local s = st.streams[k]
    local peers = peers_of(s)
    add_peers(peers)
    local h = find(s.account, s.name)
    if not h then
      local cons = {}
      for _, cn in ipairs(sorted_keys(s.consumers)) do
        if is_durable(s.consumers[cn].config) then cons[#cons + 1] = cn
        else r.ephemeral = r.ephemeral + 1 end
      end
      r.streams[#r.streams + 1] = { account = s.account, name = s.name, replicas = replicas_of(s.config),
        peers = peers, on = labels(peers), consumers = cons, group = type(s.group) == "table" and s.group.name or nil,
        cluster = cluster_of(s),
        uncommitted = st.uncommitted_from and s.index >= st.uncommitted_from or nil }
    else
      h.assigned = true
      if #peers > 0 then held(peers) end
      for _, cn in ipairs(sorted_keys(s.consumers)) do
        local c = s.consumers[cn]
        local cpeers = peers_of(c)
        add_peers(cpeers)
        if h.consumers[cn] then
          if #cpeers > 0 then held(cpeers) end
        elseif is_durable(c.config) then
          r.consumers[#r.consumers + 1] = { account = s.account, stream = s.name, name = cn,
            replicas = replicas_of(c.config, s.config), peers = cpeers, on = labels(cpeers),
            group = type(c.group) == "table" and c.group.name or nil, cluster = cluster_of(c),
            uncommitted = st.uncommitted_from and c.index >= st.uncommitted_from or nil }
        else
          r.ephemeral = r.ephemeral + 1
        end
      end
    end
  end
  for _, k in ipairs(sorted_keys(here)) do
    local h = here[k]
    if not h.assigned then
      r.unassigned[#r.unassigned + 1] = { account = h.stream.account, name = h.stream.name }
    end
  end

  -- and it is not where a lost stream or consumer lived (when that still
  -- leaves someone: a consumer created while this node was away is lost
  -- here although this node was one of its peers)
  if candidates then
    local narrowed = {}
    for p in pairs(candidates) do narrowed[p] = true end
    for _, x in ipairs(r.streams) do for _, p in ipairs(x.peers) do narrowed[p] = nil end end
    for _, x in ipairs(r.consumers) do for _, p in ipairs(x.peers) do narrowed[p] = nil end end
    if next(narrowed) then candidates = narrowed end
  end
  local cand = candidates and sorted_keys(candidates) or {}
  if #cand == 1 then r.this_node = cand[1] end
  for _, id in ipairs(sorted_keys(all_peers)) do
    r.peers[#r.peers + 1] = { id = id, name = names[id], this_node = (r.this_node == id) or nil,
                              maybe_this_node = (#cand > 1 and candidates[id]) or nil }
  end
  return r
end

-- ---------------------------------------------------- done, still stored

-- NATS subject matching: `*` one token, `>` the rest.
local function subject_matches(filter, subject)
  if filter == nil or filter == "" or filter == ">" then return true end
  local ft, st = {}, {}
  for t in filter:gmatch("[^.]+") do ft[#ft + 1] = t end
  for t in subject:gmatch("[^.]+") do st[#st + 1] = t end
  for i, t in ipairs(ft) do
    if t == ">" then return #st >= i end
    if st[i] == nil or (t ~= "*" and t ~= st[i]) then return false end
  end
  return #ft == #st
end
M.subject_matches = subject_matches

local read_file = require("jsr.files").read

-- Original retention of each stream: the meta.inf's, or, once prepare has
-- set it to limits, what recovery-report.json kept.
local function original_retention(m)
  local out = {}
  local f = io.open(layout.report(m.store.store_dir), "rb")
  local rep = f and json.decode(f:read("a"))
  if f then f:close() end
  if type(rep) == "table" and type(rep.streams) == "table" then
    for _, s in ipairs(rep.streams) do
      if type(s.original) == "table" then out[(s.account or "") .. "\0" .. (s.name or "")] = s.original.retention end
    end
  end
  return out
end

-- done(m [, meta]) -> { {account, stream, messages, first, last, consumers = {
--   {name, filter, state, below_floor, above_floor = {seq...}, from_raft}}} }
-- Work-queue messages the consumer had acked that are still in the blocks:
-- the server deletes an acked job in memory and writes the delete to the
-- index file later, so a kill can leave done jobs on disk, and a standalone
-- server serves them again (measured on 2.9.10, README "Quorum-loss drill").
-- The consumer's o.dat is the proof they were done; acks only in the
-- consumer's Raft log or snapshot under _js_ (o.dat is flushed at most
-- every 100 ms) count too, as `from_raft` (meta: raft.meta_state, to find
-- each consumer's group).
local function raft_acks(meta, account, stream, consumer)
  if not meta then return nil end
  local s = meta.streams[account .. "\0" .. stream]
  local c = s and s.consumers[consumer]
  if not (c and type(c.group) == "table" and type(c.group.name) == "string") then return nil end
  -- a malformed meta entry may have given the consumer another group
  if raft.untrusted(meta, account, stream, consumer) then return nil end
  local dir = layout.raft_dir_of(meta.dir) .. "/" .. c.group.name
  local acked = {}
  -- each ack is a fact of its own, but none past an entry that cannot be
  -- read is taken (the same place salvage stops)
  raft.log(dir, function(_, ae)
    for _, e in ipairs(ae.entries) do
      if e.type == raft.NORMAL then
        local u = raft.consumer_update(e.data)
        if u and u.op == raft.op.update_acks then acked[u.sseq] = true end
      end
    end
  end, nil, function() return false end)
  local snap = raft.latest_snapshot(dir)
  return { acked = acked, snapshot = snap and raft.consumer_state(snap.data) or nil }
end

local function state_acked(st, seq)
  if not st then return false end
  if seq <= st.ack_floor.stream then return true end
  return seq <= st.delivered.stream and st.pending[seq] == nil
end

function M.done(m, meta)
  local out, notes = {}, {}
  local orig = original_retention(m)
  for _, s in ipairs(m.streams) do
    local retention = orig[s.account .. "\0" .. s.name] or (s.config and s.config.retention)
    if retention == "workqueue" and not s.error then
      local cons = {}
      for _, c in ipairs(s.consumers) do
        -- an encrypted store's o.dat is sealed with the consumer's key:
        -- read with the server's key, not read without it
        local sealed_odat = c.encrypted and not jsr.has_keys()
        local b = c.config and not sealed_odat and require("jsr.sealed").odat(s, c)
        if sealed_odat and c.config then
          notes[#notes + 1] = ("consumer %s > %s > %s: o.dat encrypted, not read (acked work-queue jobs "
            .. "still in the blocks are not looked for)"):format(s.account, s.name, c.name)
        end
        local st = b and raft.consumer_state(b)
        if st then
          cons[#cons + 1] = { name = c.name, filter = c.config.filter_subject, state = st,
                              below_floor = 0, above_floor = {}, from_raft = 0,
                              raft = raft_acks(meta, s.account, s.name, c.name) }
        end
      end
      -- No message past every consumer's delivered sequence (or an ack in
      -- its Raft state) can be done: the scan stops there, so its cost is
      -- the done-but-on-disk messages, not the backlog.
      local bound = 0
      for _, c in ipairs(cons) do
        bound = math.max(bound, c.state.delivered.stream, c.state.ack_floor.stream)
        if c.raft then
          for seq in pairs(c.raft.acked) do bound = math.max(bound, seq) end
          local sn = c.raft.snapshot
          if sn then bound = math.max(bound, sn.delivered.stream, sn.ack_floor.stream) end
        end
      end
      if #cons > 0 and bound > 0 then
        local entry = { account = s.account, stream = s.name, messages = 0, consumers = cons }
        blocks.scan({ name = s.name, path = s.path, account = s.account }, {
          records = function(rec)
            if rec.seq > bound then return false end
            if rec.deleted then return true end
            for _, c in ipairs(cons) do
              if subject_matches(c.filter, rec.subject) then
                local st = c.state
                if rec.seq <= st.ack_floor.stream then
                  c.below_floor = c.below_floor + 1
                elseif state_acked(st, rec.seq) then
                  c.above_floor[#c.above_floor + 1] = rec.seq
                elseif c.raft and (c.raft.acked[rec.seq] or state_acked(c.raft.snapshot, rec.seq)) then
                  c.above_floor[#c.above_floor + 1] = rec.seq
                  c.from_raft = c.from_raft + 1
                else
                  return true
                end
                entry.messages = entry.messages + 1
                entry.first = entry.first or rec.seq
                entry.last = rec.seq
                return true
              end
            end
            return true
          end,
        })
        if entry.messages > 0 then out[#out + 1] = entry end
      end
    end
  end
  return out, notes
end

-- The report as plain JSON-ready tables (arrays marked, so empty ones stay []).
function M.json(r)
  local out = json.object()
  out.available = r.available
  out.why = r.why
  out.source = r.source
  out.this_node = r.this_node
  out.peers = json.array()
  for _, p in ipairs(r.peers) do
    out.peers[#out.peers + 1] = { id = p.id, name = p.name, this_node = p.this_node,
                                  maybe_this_node = p.maybe_this_node }
  end
  out.streams = json.array()
  for _, s in ipairs(r.streams) do
    out.streams[#out.streams + 1] = { account = s.account, name = s.name, replicas = s.replicas,
      group = s.group, cluster = s.cluster, peers = json.array(s.peers), on = json.array(s.on),
      consumers = json.array(s.consumers),
      uncommitted = s.uncommitted }
  end
  out.consumers = json.array()
  for _, c in ipairs(r.consumers) do
    out.consumers[#out.consumers + 1] = { account = c.account, stream = c.stream, name = c.name,
      replicas = c.replicas, group = c.group, cluster = c.cluster, peers = json.array(c.peers), on = json.array(c.on),
      uncommitted = c.uncommitted }
  end
  out.ephemeral_consumers = r.ephemeral
  out.unassigned = json.array()
  for _, u in ipairs(r.unassigned) do out.unassigned[#out.unassigned + 1] = { account = u.account, name = u.name } end
  out.problems = json.array(r.problems)
  out.done = json.array()
  for _, d in ipairs(r.done or {}) do
    local cs = json.array()
    for _, c in ipairs(d.consumers) do
      if c.below_floor + #c.above_floor > 0 then
        cs[#cs + 1] = { name = c.name, filter = c.filter, ack_floor = c.state.ack_floor.stream,
                        below_floor = c.below_floor, above_floor = json.array(c.above_floor),
                        from_raft = c.from_raft }
      end
    end
    out.done[#out.done + 1] = { account = d.account, stream = d.stream, messages = d.messages,
                                first = d.first, last = d.last, consumers = cs }
  end
  return out
end

local function plural(n, one, many) return ("%d %s"):format(n, n == 1 and one or many) end

local function print_done(r, out)
  if not r.done or #r.done == 0 then return end
  out:write("\nDone, but still on disk (work-queue jobs the consumer had acked)\n")
  for _, d in ipairs(r.done) do
    out:write(("  stream %s > %s: %s its consumer had acked (sequences %d-%d) %s still in the blocks\n"
      .. "  and would be served again: the server died before it wrote their deletes. prepare removes\n"
      .. "  them (policy hook done_work); where it says it cannot, once the server runs:\n"):format(
      d.account, d.stream, plural(d.messages, "message", "messages"), d.first, d.last,
      d.messages == 1 and "is" or "are"))
    for _, c in ipairs(d.consumers) do
      if c.below_floor > 0 then
        local filtered = c.filter and c.filter ~= ""
        out:write(("    consumer %s acked every message up to %d (%d of them here). Once the server runs,\n"
          .. "    remove them with a purge below %d%s:\n"
          .. "      nats stream purge %s --seq %d%s\n"
          .. "      (the API: $JS.API.STREAM.PURGE.%s {\"seq\":%d%s})\n"):format(
          c.name, c.state.ack_floor.stream, c.below_floor, c.state.ack_floor.stream + 1,
          filtered and (" on " .. c.filter) or "", d.stream, c.state.ack_floor.stream + 1,
          filtered and (" --subject " .. c.filter) or "", d.stream, c.state.ack_floor.stream + 1,
          filtered and (',"filter":' .. json.encode(c.filter)) or ""))
      end
      if #c.above_floor > 0 then
        local shown = {}
        for i = 1, math.min(#c.above_floor, 20) do shown[i] = tostring(c.above_floor[i]) end
        out:write(("    consumer %s also acked %s above its floor%s: %s%s\n"
          .. "      (nats stream rmm %s <seq> each)\n"):format(
          c.name, plural(#c.above_floor, "message", "messages"),
          c.from_raft > 0 and (" (%d known only from its Raft log under _js_)"):format(c.from_raft) or "",
          table.concat(shown, " "), #c.above_floor > 20 and " ..." or "", d.stream))
      end
    end
  end
end

-- Prints the "Lost with the dead nodes" section (and done work-queue jobs).
function M.print(r, out)
  out = out or io.stdout
  out:write("\nLost with the dead nodes\n")
  if not r.available then
    out:write(("  not known: %s\n"):format(r.why))
    print_done(r, out)
    return
  end
  local src = r.source
  local from = {}
  if src.snapshot then from[#from + 1] = ("snapshot %s"):format(src.snapshot:match("[^/]+$")) end
  from[#from + 1] = plural(src.applied, "log entry", "log entries") .. (src.snapshot and " after it" or "")
  out:write(("  (the cluster's assignments as this node last knew them: %s in %s%s)\n")
    :format(table.concat(from, ", "), src.dir, src.moved_aside and ", moved aside by prepare" or ""))
  local peers = {}
  for _, p in ipairs(r.peers) do
    local s = p.name and ("%s (%s)"):format(p.name, p.id) or p.id
    if p.this_node then s = s .. " = this node" end
    peers[#peers + 1] = s
  end
  out:write(("  nodes: %s\n"):format(#peers > 0 and table.concat(peers, ", ") or "none recorded"))
  local unnamed = false
  for _, p in ipairs(r.peers) do if not p.name then unnamed = true end end
  if unnamed then
    out:write("  (a node id is a hash of the server's name: JSR_SERVER_NAMES=n1,n2,... shows names)\n")
  end
  if not r.this_node then
    local maybe = {}
    for _, p in ipairs(r.peers) do if p.maybe_this_node then maybe[#maybe + 1] = p.name or p.id end end
    if #maybe > 1 then
      out:write(("  this node is one of %s (the groups whose data is here do not tell them apart)\n"):format(table.concat(maybe, ", ")))
    end
  end
  if #r.streams == 0 and #r.consumers == 0 then
    out:write("  nothing: every stream and durable consumer the cluster assigned has data on this node\n")
  end
  for _, s in ipairs(r.streams) do
    local cons = #s.consumers > 0 and (", with its consumers " .. table.concat(s.consumers, ", ")) or ""
    out:write(("  LOST stream %s > %s (R%s%s): no data on this node; it lived on %s%s\n"):format(
      s.account, s.name, tostring(s.replicas or "?"), cons, table.concat(s.on, ", "),
      s.cluster and (" in cluster " .. s.cluster) or ""))
    if s.uncommitted then
      out:write("       (assigned by a log entry this node never saw committed: it may never have existed)\n")
    end
  end
  for _, c in ipairs(r.consumers) do
    out:write(("  LOST consumer %s > %s > %s (R%s): no state on this node; it lived on %s%s\n"):format(
      c.account, c.stream, c.name, tostring(c.replicas or "?"), table.concat(c.on, ", "),
      c.cluster and (" in cluster " .. c.cluster) or ""))
    if c.uncommitted then
      out:write("       (assigned by a log entry this node never saw committed: it may never have existed)\n")
    end
  end
  if #r.streams + #r.consumers > 0 then
    out:write("  No tool can recover these from this node: restore them from a backup, or from a\n"
      .. "  node they lived on if its disk survived.\n")
  end
  if r.ephemeral > 0 then
    out:write(("  (%s not here: not restorable anyway; mirrors and sources create new ones)\n")
      :format(plural(r.ephemeral, "ephemeral consumer", "ephemeral consumers")))
  end
  for _, u in ipairs(r.unassigned) do
    out:write(("  NOT ASSIGNED stream %s > %s is on this node but the cluster no longer had it"
      .. " (deleted after this node last heard?)\n"):format(u.account, u.name))
  end
  for _, p in ipairs(r.problems) do out:write("  problem: ", p, "\n") end
  print_done(r, out)
end

return M
