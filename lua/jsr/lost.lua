-- What the cluster had that this node holds no data of: the streams and
-- consumers in the meta group's assignments (its newest snapshot under
-- _js_/_meta_, plus the log entries after it) without a directory in this
-- store, and on which nodes they lived.  An R1 stream placed on a node
-- that died is gone; an operator must learn that from js-recover, not from
-- a client that cannot find the stream later.
--
--   local lost = require("jsr.lost")
--   local r = lost.analyze(model)      -- model from jsr.model.scan
--   lost.print(r, io.stdout)
--   report.lost = lost.json(r)
--
-- The report ends with the done work still stored (jsr/donework.lua),
-- found from the same meta state (jsr/metastate.lua).
--
-- Peers are Raft node ids (the first 8 characters of a hash of the server
-- name); names are found by hashing every server name the assignments
-- mention (each records the server its creating client was connected to)
-- and the names in JSR_SERVER_NAMES (comma-separated), which the operator
-- knows when the assignments do not tell.
local jsr = require("jsr")
local metastate = require("jsr.metastate")
local donework = require("jsr.donework")
local files = require("jsr.files")
local plural = require("jsr.print").plural
local sorted_keys = require("jsr.sorted").keys
local json = jsr.json

local M = {}

-- Accounts renamed by an earlier prepare ($G -> GLOBAL) keep their
-- original name in recovery-report.json.
local function renamed_accounts(store_dir)
  local r = files.report(store_dir)
  local map = {}
  if r and type(r.accounts) == "table" then
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

local function unavailable(why)
  return { available = false, why = why, streams = {}, consumers = {}, unassigned = {}, peers = {},
           problems = {}, ephemeral = 0 }
end

local analyze

-- analyze(m [, opts]) -> r
-- r.available false (and r.why) when no meta state was found; else
-- r.streams: lost streams {account, name, replicas, peers, consumers (names)}
-- r.consumers: lost durable consumers of streams that are here
--   {account, stream, name, replicas, peers}
-- r.ephemeral: how many lost consumers were ephemeral (not restorable anyway)
-- r.unassigned: streams here the cluster no longer assigns {account, name}
-- r.peers: { {id, name, this_node} }, r.this_node (id, when it can be told)
-- r.source: {dir, moved_aside, snapshot, applied, uncommitted_from}
-- r.problems: what could not be read (the report is then partial)
-- r.done: the done work still stored (jsr/donework.lua)
-- opts.names: server names to map node ids to (default: JSR_SERVER_NAMES
-- from the environment)
function M.analyze(m, opts)
  -- a report about what is lost must never stop inspect or prepare
  local ok, r = pcall(analyze, m, opts or {})
  if not ok then r = unavailable("could not read the meta group's state: " .. tostring(r)) end
  local dok, done, notes = pcall(donework.find, m, r._meta)
  r.done = dok and done or {}
  if not dok then r.problems[#r.problems + 1] = "finding acked work-queue messages: " .. tostring(done) end
  for _, n in ipairs(dok and notes or {}) do r.problems[#r.problems + 1] = n end
  return r
end

function analyze(m, opts)
  local dir, moved = metastate.find(m)
  if not dir then return unavailable("no meta group state (_js_/_meta_) in this store") end
  local st = metastate.read(m, dir)
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
  for name in pairs(st.server_names) do names[jsr.raft.node_id(name)] = name end
  local given = opts.names
  if not given then
    given = {}
    for n in (os.getenv("JSR_SERVER_NAMES") or ""):gmatch("[^,%s]+") do given[#given + 1] = n end
  end
  for _, name in ipairs(given) do names[jsr.raft.node_id(name)] = name end
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
  out.done = donework.json(r.done)
  return out
end

-- Prints the "Lost with the dead nodes" section (and done work-queue jobs).
function M.print(r, out)
  out = out or io.stdout
  out:write("\nLost with the dead nodes\n")
  if not r.available then
    out:write(("  not known: %s\n"):format(r.why))
    donework.print(r.done, out)
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
  donework.print(r.done, out)
end

return M
