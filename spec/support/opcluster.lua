--- Operator mode (JWT accounts) for the specs: an operator, its system
-- account and two JetStream accounts made with the real nats CLI (natscli
-- 0.5.0 `nats auth ...`), and a 3-node cluster that resolves them.
--
--   local op = require "spec.support.opcluster"
--   local auth = op.make(dir)     -- auth.operator_jwt, auth.system, auth.accounts.ACME = {pub, jwt, creds}
--   local c = op.start{ dir = dir, auth = auth, bin = ... }   -- cluster.lua's cluster
--
-- The CLI keeps its operator store (JWTs and secret seeds) under
-- XDG_DATA_HOME (nats/nsc/): it runs with XDG_DATA_HOME, XDG_CONFIG_HOME
-- and HOME inside dir, so nothing lands in the user's ~/.local or ~/.config.
-- Each node runs a full resolver with its own directory, <store_dir>/jwt
-- (next to jetstream/, as `nats server generate` and the Helm chart lay it
-- out), filled from resolver_preload when the node starts.
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local M = {}
local q = cluster.quote

-- runs the nats CLI with the private environment; returns its output
local function nats(auth, args)
  local env = ("HOME=%s XDG_DATA_HOME=%s XDG_CONFIG_HOME=%s"):format(q(auth.home), q(auth.home .. "/data"),
    q(auth.home .. "/config"))
  local parts = { env, q(auth.cli) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local h = assert(io.popen(table.concat(parts, " ") .. " </dev/null 2>&1"))
  local out = h:read("a")
  local ok, _, code = h:close()
  if not ok then error(("nats %s exited %s: %s"):format(table.concat(args, " "), tostring(code), out), 2) end
  return out
end
M.nats = nats

local function jwt_file(auth, rel)
  local path = auth.home .. "/data/nats/nsc/stores/" .. rel
  local text = assert(cluster.read_file(path), path .. ": the nats CLI wrote no JWT there")
  return (text:gsub("%s+$", "")), path
end

local function sub_of(token)
  local j = assert(require("jsr.operator").decode(token))
  return j.claims.sub
end

--- make(dir) -> auth: operator OP (system account SYSTEM), accounts ACME and
-- BETA with JetStream (no limits), users sys, alice (ACME), bob (BETA) with
-- .creds files in dir/creds/.
function M.make(dir, opts)
  opts = opts or {}
  local auth = { home = dir .. "/natscli", cli = assert(servers.natscli(), "natscli not built (make servers)"),
                 accounts = {}, creds_dir = dir .. "/creds" }
  os.execute("mkdir -p " .. q(auth.home) .. " " .. q(auth.creds_dir))
  nats(auth, { "auth", "operator", "add", "OP", "--no-signing-key" })
  auth.operator_jwt, auth.operator_path = jwt_file(auth, "OP/OP.jwt")
  auth.operator_pub = sub_of(auth.operator_jwt)
  local sys_jwt = jwt_file(auth, "OP/accounts/SYSTEM/SYSTEM.jwt")
  auth.system = { name = "SYSTEM", pub = sub_of(sys_jwt), jwt = sys_jwt }
  for _, name in ipairs(opts.accounts or { "ACME", "BETA" }) do
    nats(auth, { "auth", "account", "add", name, "--operator", "OP", "--jetstream", "--js-disk=-1",
      "--js-memory=-1", "--defaults" })
    local token = jwt_file(auth, ("OP/accounts/%s/%s.jwt"):format(name, name))
    auth.accounts[name] = { name = name, pub = sub_of(token), jwt = token }
  end
  local users = { { "sys", "SYSTEM", auth.system } }
  for _, name in ipairs(opts.accounts or { "ACME", "BETA" }) do
    users[#users + 1] = { name:lower() .. "-user", name, auth.accounts[name] }
  end
  for _, u in ipairs(users) do
    local creds = ("%s/%s.creds"):format(auth.creds_dir, u[1])
    nats(auth, { "auth", "user", "add", u[1], u[2], "--operator", "OP", "--defaults", "--credential", creds })
    u[3].creds = creds
  end
  return auth
end

--- The operator-mode part of a node's config (cluster.start's opts.auth);
-- pushed: only the system account preloaded (the others are pushed).
function M.config(auth, resolver_dir, pushed)
  local preload = { ("    %s: %s"):format(auth.system.pub, auth.system.jwt) }
  local names = {}
  for name in pairs(auth.accounts) do names[#names + 1] = name end
  table.sort(names)
  if pushed then names = {} end
  for _, name in ipairs(names) do
    local a = auth.accounts[name]
    preload[#preload + 1] = ("    %s: %s"):format(a.pub, a.jwt)
  end
  return table.concat({
    ('operator: "%s"'):format(auth.operator_path),
    ("system_account: %s"):format(auth.system.pub),
    ('resolver: { type: full, dir: "%s", allow_delete: false, interval: "2m" }'):format(resolver_dir),
    "resolver_preload: {",
    table.concat(preload, "\n"),
    "}",
  }, "\n")
end

--- start{dir=, auth=, bin=, push=, key=, cipher=}: the 3-node cluster of cluster.lua in
-- operator mode (jsload talks to the meta group as the system user).
-- push: the accounts are not preloaded but pushed once the cluster runs
-- (`nats auth account push` as the system user), as an operator adds
-- accounts to a running deployment: their JWTs are then only in each
-- node's resolver directory, not in any config.
function M.start(opts)
  local auth = assert(opts.auth, "opcluster.start needs auth (opcluster.make)")
  local c = cluster.start {
    dir = opts.dir, bin = opts.bin, nodes = opts.nodes, key = opts.key, cipher = opts.cipher,
    auth = function(node) return M.config(auth, node.store_dir .. "/jwt", opts.push) end,
    sys = { creds = auth.system.creds },
  }
  if opts.push then
    local names = {}
    for name in pairs(auth.accounts) do names[#names + 1] = name end
    table.sort(names)
    local ok, err = pcall(function()
      for _, name in ipairs(names) do
        nats(auth, { "--server", c.nodes[1].url, "--creds", auth.system.creds, "auth", "account", "push", name,
          "--operator", "OP" })
      end
    end)
    if not ok then c:stop_all(); error(err, 2) end
  end
  -- an account's JetStream is enabled when a node first looks the account
  -- up: 2.15.3 once answered "jetstream not enabled for account" (10039)
  -- to a fresh account's first request; wait until each one answers
  for name, a in pairs(auth.accounts) do
    local deadline, ok, err = cluster.now() + 30
    repeat
      ok, err = pcall(cluster.jsload, c:urls(1), { creds = a.creds }, "settle", "--wait-ms", "2000")
      if not ok then cluster.sleep(0.5) end
    until ok or cluster.now() > deadline
    if not ok then c:stop_all(); error(("account %s: JetStream not ready: %s"):format(name, tostring(err)), 2) end
  end
  return c
end

-- The workload of the operator-mode specs, made with the real nats CLI as
-- each account's own user: ACME an R3 stream ORDERS (300 messages, a
-- consumer with 120 acked) and an R1 stream LOCAL placed on n1 (40); BETA
-- an R3 KV bucket CFG with history 3 (12 puts over 8 keys) and an R3
-- stream EVENTS (90, a consumer with 35 acked).
local function as(auth, url, creds, ...)
  local args = { "--server", url, "--creds", creds }
  for _, a in ipairs { ... } do args[#args + 1] = a end
  return nats(auth, args)
end

function M.load(auth, url)
  local acme, beta = auth.accounts.ACME.creds, auth.accounts.BETA.creds
  as(auth, url, acme, "stream", "add", "ORDERS", "--subjects", "orders.>", "--replicas", "3",
    "--storage", "file", "--defaults")
  as(auth, url, acme, "stream", "add", "LOCAL", "--subjects", "local.>", "--replicas", "1",
    "--tag", "node:n1", "--storage", "file", "--defaults")
  as(auth, url, acme, "pub", "orders.new", "order {{Count}}", "--count", "300")
  as(auth, url, acme, "pub", "local.x", "local {{Count}}", "--count", "40")
  as(auth, url, acme, "consumer", "add", "ORDERS", "proc", "--pull", "--ack", "explicit",
    "--deliver", "all", "--defaults")
  as(auth, url, acme, "consumer", "next", "ORDERS", "proc", "--count", "120", "--ack")
  as(auth, url, beta, "kv", "add", "CFG", "--replicas", "3", "--history", "3")
  for i = 1, 12 do as(auth, url, beta, "kv", "put", "CFG", "k" .. (i % 8), "v" .. i) end
  as(auth, url, beta, "stream", "add", "EVENTS", "--subjects", "ev.>", "--replicas", "3",
    "--storage", "file", "--defaults")
  as(auth, url, beta, "pub", "ev.a", "event {{Count}}", "--count", "90")
  as(auth, url, beta, "consumer", "add", "EVENTS", "audit", "--pull", "--ack", "explicit",
    "--deliver", "all", "--defaults")
  as(auth, url, beta, "consumer", "next", "EVENTS", "audit", "--count", "35", "--ack")
end

--- served(url, creds[, want]) -> what one account is served: jscheck's
-- streams with consumers, each with msgs, every message's subject and
-- payload digest.  With want (an earlier served), read until the
-- consumers' pending counts are want's (spec/support/restored.lua: a
-- restored R3 consumer needs a few seconds for its leader).
function M.served(url, creds, want)
  local ns = require "spec.support.natsserver"
  local out = want and require("spec.support.restored").served(url, { creds = creds }, want)
    or ns.jscheck({ url = url }, { creds = creds }).streams
  for name, s in pairs(out) do
    s.msgs = ns.jscheck({ url = url }, { creds = creds, messages = name }).messages
  end
  return out
end

--- same(want, got, label[, replicas]): every stream of want served in got
-- with its messages, sequences, bytes, each message's digest and each
-- consumer's ack floor, delivered and pending; with replicas, retention
-- and replicas too (a standalone server serves everything R1).
function M.same(want, got, label, replicas)
  local assert = require "luassert"
  for sname, w in pairs(want) do
    local g = got[sname]
    local what = label .. " > " .. sname
    assert.is_table(g, what)
    assert.are.same({ w.messages, w.first_seq, w.last_seq, w.bytes },
      { g.messages, g.first_seq, g.last_seq, g.bytes }, what)
    if replicas then assert.are.same({ w.retention, w.replicas }, { g.retention, g.replicas }, what) end
    assert.are.same(w.msgs, g.msgs, what .. ": every message")
    for cname, wc in pairs(w.consumers) do
      local gc = g.consumers[cname]
      assert.is_table(gc, what .. " > " .. cname)
      assert.are.same({ wc.ack_floor_stream_seq, wc.delivered_stream_seq, wc.num_pending },
        { gc.ack_floor_stream_seq, gc.delivered_stream_seq, gc.num_pending }, what .. " > " .. cname)
    end
  end
end

--- survivor(server, dir[, push, enc]) -> auth, n1's store_dir, n1's config,
-- what each account was served: an operator-mode cluster under dir (made
-- by the caller, so its teardown removes it whatever failed) loaded
-- (M.load), what it served recorded, n2 and n3 SIGKILLed, then n1.
function M.survivor(server, dir, push, enc)
  local auth = M.make(dir)
  local c = M.start { dir = dir, auth = auth, bin = server.bin, push = push,
                      key = enc and enc.key, cipher = enc and enc.cipher }
  local want = {}
  local ok, err = pcall(function()
    M.load(auth, c.nodes[1].url)
    for _, name in ipairs { "ACME", "BETA" } do
      cluster.jsload(c:urls(1), { creds = auth.accounts[name].creds }, "settle", "--wait-ms", "30000")
    end
    for _, name in ipairs { "ACME", "BETA" } do
      want[name] = M.served(c.nodes[1].url, auth.accounts[name].creds)
    end
    c:kill(2, "KILL")
    c:kill(3, "KILL")
    c:kill(1, "KILL")
  end)
  c:stop_all()
  assert(ok, err)
  return auth, c.nodes[1].store_dir, c.nodes[1].conf, want
end

return M
