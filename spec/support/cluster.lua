--- Real 3-node nats-server clusters on 127.0.0.1 for the quorum-loss drill.
--
--   local cluster = require "spec.support.cluster"
--   local c = cluster.start{ dir = ns.tmpdir() }
--   finally(function() c:stop_all() end)      -- every server, whatever happened
--   c.nodes[i] = {name, id, tag, store_dir, conf, url, srv}
--   c:kill(i, "KILL")                           -- by PID, waits until it is gone
--   c:meta() -> decoded JSZ of the meta group (leader, peers)
--
-- Servers listen on loopback only: clients on a port the kernel picks
-- (natsserver.lua forces `-a 127.0.0.1 -p -1`), routes on ports written into
-- the configs, which must be known before any node starts.  Those are
-- picked at random from 20000-59999 among ports nothing listens on (read
-- from /proc/net/tcp*), and the whole cluster is started again on other
-- ports if a node still reports "address already in use", so two drills
-- running at once never collide.
--
-- Accounts: SYS (the system account, deliberately not named $SYS), ACME and
-- BETA with JetStream.  Each node carries the server tag "node:<name>", so
-- a stream can be placed on the node that will survive (or die).
local ns = require "spec.support.natsserver"
local json = require("jsr").json

local M = {}

M.USERS = {
  SYS = { user = "sys", password = "sys-secret" },
  ACME = { user = "acme", password = "acme-secret" },
  BETA = { user = "beta", password = "beta-secret" },
}
M.JSLOAD = (os.getenv("JSR_BUILD") or "build") .. "/jsload"

local have_system, system = pcall(require, "system")
local function sleep(s)
  if have_system and system.sleep then system.sleep(s) else os.execute(("sleep %.3f"):format(s)) end
end
M.sleep = sleep
local function now()
  if have_system and system.monotime then return system.monotime() end
  return os.time()
end
M.now = now

local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end
M.quote = q

local read_file = require("jsr.files").read
M.read_file = read_file

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end
M.write_file = write_file

-- Ports something listens on (TCP, IPv4 and IPv6).
local function busy_ports()
  local busy = {}
  for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local text = read_file(f) or ""
    for port, state in text:gmatch("%x+:(%x%x%x%x) %x+:%x+ (%x%x)") do
      if state == "0A" then busy[tonumber(port, 16)] = true end
    end
  end
  return busy
end

local seeded = false
local function pick_ports(n)
  if not seeded then
    -- time alone would give two drills started in the same second the same ports
    local r = io.open("/dev/urandom", "rb")
    local bytes = r and r:read(4) or ""
    if r then r:close() end
    local extra = #bytes == 4 and string.unpack("<I4", bytes) or 0
    math.randomseed(os.time() ~ extra, extra)
    seeded = true
  end
  local busy, out, used = busy_ports(), {}, {}
  while #out < n do
    local p = math.random(20000, 59999)
    if not busy[p] and not used[p] then
      used[p] = true
      out[#out + 1] = p
    end
  end
  return out
end

local function config_text(node, route_ports, cluster_name, enc, auth)
  local routes = {}
  for i, p in ipairs(route_ports) do routes[i] = ('"nats-route://127.0.0.1:%d"'):format(p) end
  local u = M.USERS
  return table.concat({
    ("server_name: %s"):format(node.name),
    ('server_tags: ["%s"]'):format(table.concat({ node.tag, table.unpack(node.tags or {}) }, '", "')),
    "jetstream {",
    ('  store_dir: "%s"'):format(node.store_dir),
    enc and ('  key: "%s"\n  cipher: %s'):format(enc.key, enc.cipher or "chacha") or "",
    "  max_memory_store: 256MB",
    "  max_file_store: 8GB",
    node.jetstream or "",
    "}",
    -- one node is a standalone server (a cluster of one never elects a meta leader)
    #routes > 1 and table.concat({ "cluster {",
    ('  name: "%s"'):format(cluster_name),
    ('  listen: "127.0.0.1:%d"'):format(node.route_port),
    ("  routes: [%s]"):format(table.concat(routes, ", ")),
    "}" }, "\n") or "",
    auth and auth(node) or table.concat({ "accounts {",
    ('  SYS: { users: [ { user: "%s", password: "%s" } ] }'):format(u.SYS.user, u.SYS.password),
    ('  ACME: { jetstream: enabled, users: [ { user: "%s", password: "%s" } ] }'):format(u.ACME.user, u.ACME.password),
    ('  BETA: { jetstream: enabled, users: [ { user: "%s", password: "%s" } ] }'):format(u.BETA.user, u.BETA.password),
    "}",
    "system_account: SYS" }, "\n"),
    node.extra or "",
    "",
  }, "\n")
end

-- Runs argv; returns exit code, stdout, stderr.
function M.run(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = q(a) end
  local errf = os.tmpname()
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>" .. q(errf)))
  local out = h:read("a")
  local _, _, code = h:close()
  local err = read_file(errf) or ""
  os.remove(errf)
  return code, out, err
end

--- jsload(urls, account, command, extra_args...) -> decoded JSON output
-- urls: a string or a list (the first is the node to talk to)
function M.jsload(urls, account, cmd, ...)
  if type(urls) == "table" then urls = table.concat(urls, ",") end
  local creds = M.USERS[account] or account
  -- {user=, password=} or {creds = a .creds file} (operator mode)
  local argv = creds.creds and { M.JSLOAD, "--url", urls, "--creds", creds.creds, cmd }
    or { M.JSLOAD, "--url", urls, "--user", creds.user, "--password", creds.password, cmd }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local code, out, err = M.run(argv)
  if code ~= 0 then
    error(("jsload %s (%s) failed with %s: %s"):format(cmd, account, tostring(code), err), 2)
  end
  if out == "" then return nil end
  local v, jerr = json.decode(out)
  if v == nil then error(("jsload %s printed invalid JSON (%s): %.300s"):format(cmd, jerr, out), 2) end
  return v
end

local Cluster = {}
Cluster.__index = Cluster

function Cluster:urls(first)
  local out = { self.nodes[first].url }
  for i, n in ipairs(self.nodes) do
    if i ~= first and n.srv and not n.srv.stopped then out[#out + 1] = n.url end
  end
  return out
end

--- The meta group: {leader=name, replicas={...}, cluster_size, ...} as
-- the leader itself reports it (only the leader lists its followers), or
-- as any live node reports it when no leader answers.
function Cluster:meta(via)
  for i, n in ipairs(self.nodes) do
    if (via == nil or via == i) and n.srv and not n.srv.stopped then
      local ok, replies = pcall(M.jsload, n.url, self.sys, "meta", "--timeout-ms", "2000")
      if ok and type(replies) == "table" then
        local any
        for _, r in ipairs(replies) do
          local mc = r.data and r.data.meta_cluster
          if mc then
            any = any or mc
            if mc.leader and mc.leader ~= "" and r.server and r.server.name == mc.leader then return mc end
          end
        end
        if any then return any end
      end
    end
  end
  return nil
end

--- Waits until the meta group has a leader and every peer is current.
function Cluster:wait_meta(seconds)
  local deadline = now() + (seconds or 30)
  local last
  while now() < deadline do
    last = self:meta()
    if last and last.leader and last.leader ~= "" then
      local current = 0
      for _, r in ipairs(last.replicas or {}) do if r.current then current = current + 1 end end
      if current >= #self.nodes - 1 then return last end
    end
    sleep(0.2)
  end
  error("meta group not ready after " .. (seconds or 30) .. " s: " .. (last and json.encode(last) or "no answer"))
end

function Cluster:index_of(name)
  for i, n in ipairs(self.nodes) do if n.name == name then return i end end
  return nil
end

--- Makes node i the meta leader (want true) or a follower (want false),
-- by asking the current leader to step down until it is so: 2.9 picks the
-- new leader at random and takes no preference.
function Cluster:arrange_meta(i, want, tries)
  for _ = 1, tries or 20 do
    local meta = self:wait_meta(30)
    local is = meta.leader == self.nodes[i].name
    if is == want then return meta end
    pcall(M.jsload, self.nodes[self:index_of(meta.leader)].url, self.sys, "stepdown", "--timeout-ms", "3000")
    -- the old leader must lose leadership before the new state is read
    local deadline = now() + 10
    repeat
      sleep(0.3)
      local m2 = self:meta()
    until (m2 and m2.leader and m2.leader ~= "" and m2.leader ~= meta.leader) or now() > deadline
  end
  error(("could not make %s %s of the meta group"):format(self.nodes[i].name, want and "leader" or "a follower"))
end

--- Sends sig ("KILL", "TERM") to node i by its PID and waits until it is
-- gone (TERM: up to `grace` seconds, then KILL, reported in the result).
function Cluster:kill(i, sig, grace)
  local n = self.nodes[i]
  local srv = n.srv
  if srv.stopped then return "already stopped" end
  local how = sig
  if ns.alive(srv.pid) then os.execute(("kill -%s %d 2>/dev/null"):format(sig, srv.pid)) end
  local deadline = now() + (grace or 15)
  while ns.alive(srv.pid) do
    if now() > deadline then
      os.execute(("kill -KILL %d 2>/dev/null"):format(srv.pid))
      how = sig .. " (then KILL after " .. (grace or 15) .. " s)"
      deadline = now() + 5
    end
    sleep(0.02)
  end
  srv:stop() -- the process is gone: this only reaps its launcher
  n.stopped_by = how
  return how
end

function Cluster:stop_all()
  for _, n in ipairs(self.nodes) do
    if n.srv and not n.srv.stopped then pcall(n.srv.stop, n.srv) end
  end
end

--- Starts a 3-node cluster under opts.dir (a directory the caller owns).
-- opts.nodes (default 3; 1: a standalone server), opts.attempts (port retries, default 5)
-- opts.key, opts.cipher ("chacha" | "aes"): encrypted stores (jetstream { key, cipher })
-- opts.bin: the nats-server binary (spec/support/servers.lua), default Debian's
-- opts.tags: {[node name] = {tag...}}, server tags besides "node:<name>"
-- opts.prefix: node names (default "n": n1, n2, ...)
-- opts.jetstream: more lines in each node's jetstream block (a domain);
-- opts.extra(node) -> config text added at the end (a leafnodes block)
-- opts.auth(node) -> config text in place of the accounts block (operator
-- mode: spec/support/opcluster.lua); opts.sys: the system user for jsload
-- ({creds = F}), default USERS.SYS
function M.start(opts)
  local dir = assert(opts.dir, "cluster.start needs dir")
  local count = opts.nodes or 3
  local last_err
  for _ = 1, opts.attempts or 5 do
    local ports = pick_ports(count)
    local cname = ("drill%d"):format(math.random(100000, 999999))
    local c = setmetatable({ dir = dir, nodes = {}, name = cname, sys = opts.sys or "SYS" }, Cluster)
    for i = 1, count do
      local name = (opts.prefix or "n") .. i
      local node = { name = name, tag = "node:" .. name, tags = opts.tags and opts.tags[name],
                     id = require("jsr").raft.node_id(name),
                     store_dir = dir .. "/" .. name, route_port = ports[i],
                     conf = dir .. "/" .. name .. ".conf", log = dir .. "/" .. name .. ".log" }
      os.execute("mkdir -p " .. q(node.store_dir))
      c.nodes[i] = node
    end
    local enc = opts.key and { key = opts.key, cipher = opts.cipher } or nil
    for _, node in ipairs(c.nodes) do
      node.jetstream, node.extra = opts.jetstream, opts.extra and opts.extra(node)
      write_file(node.conf, config_text(node, ports, cname, enc, opts.auth))
    end
    local ok, err = c:boot(opts.bin, 20, count > 1 and 40 or nil)
    if ok then return c end
    last_err = err
  end
  error("could not start a cluster on free ports: " .. tostring(last_err), 0)
end

--- Starts every node of c (configs written) and waits for the meta group;
-- true, or nil and the error when a port was taken (every node stopped
-- and its store removed, for another try on other ports); raises otherwise.
function Cluster:boot(bin, start_timeout, meta_timeout)
  local ok, err = pcall(function()
    for _, node in ipairs(self.nodes) do
      os.remove(node.log)
      node.srv = ns.start { config = node.conf, log_path = node.log, timeout = start_timeout, bin = bin }
      node.url = node.srv.url
    end
    if meta_timeout then self:wait_meta(meta_timeout) end
  end)
  if ok then return true end
  self:stop_all()
  if not tostring(err):find("address already in use", 1, true) then error(err, 0) end
  for _, node in ipairs(self.nodes) do os.execute("rm -rf " .. q(node.store_dir)) end
  return nil, err
end

-- for spec/support/supercluster.lua, which writes its own clusters' configs
M.Cluster, M.config_text, M.pick_ports = Cluster, config_text, pick_ports

return M
