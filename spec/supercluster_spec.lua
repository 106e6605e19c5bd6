-- A supercluster loses quorum: two clusters of three nodes (east: a1..a3,
-- west: b1..b3) joined by gateways, one meta group across all six.  The
-- drill's workload lives in east (R3 streams, consumers, KV, a mirror and
-- sources, R1 streams pinned to a1), ACME streams are placed in west by
-- cluster (R3, a KV bucket) and by tag (R1 on b2), and one east R1 stream by
-- tag on a2.  The whole west cluster and a3 are SIGKILLed (2 of 6 left: no
-- quorum), then a1 and a2.  Each surviving disk is recovered as the drill
-- recovers one (copy, inspect, prepare, a standalone server of the same
-- version) and what it serves is compared with what the supercluster
-- served, by the drill's scorecard; the lost-asset report must name
-- exactly the streams the servers said lived elsewhere (their own
-- stream info, not js-recover's reading), with the west cluster's name.
-- Then a1's own store is restored into a fresh 3-node cluster: its stream
-- placed in east refused, with the fix named (the target has no cluster of
-- that name);
-- then with --map-cluster and --map-tag, and served as the dead cluster
-- served it.  2.9.10 and the newest release (JSR_SUPERCLUSTER_ALL=1: every
-- version built).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local supercluster = require "spec.support.supercluster"
local drill = require "spec.support.drill"
local servers = require "spec.support.servers"

local versions = os.getenv("JSR_SUPERCLUSTER_ALL") == "1" and servers.all() or servers.fast()

local function sorted(t) table.sort(t); return t end

-- what the servers said: streams whose leader and replicas do not include node
local function lived_elsewhere(before, node)
  local out = {}
  for acc, d in pairs(before) do
    for name, s in pairs(d.streams) do
      local cl = s.info.cluster or {}
      local here = cl.leader == node
      for _, r in ipairs(cl.replicas or {}) do if r.name == node then here = true end end
      if not here then out[#out + 1] = acc .. " > " .. name end
    end
  end
  return sorted(out)
end

local function reported(lost)
  local out = {}
  for _, s in ipairs(lost.streams) do out[#out + 1] = s.account .. " > " .. s.name end
  return sorted(out)
end

local function exact(card)
  local m = card.messages
  return m.total > 0 and m.exact == m.total and m.resurrected == 0 and #card.streams.missing == 0
    and card.state.exact == card.state.total and card.acks.exact == card.acks.total
    and #card.consumers.missing == 0 and #card.lost.wrongly_reported == 0
end

local function nats(server, acc, ...)
  local cli = assert(servers.natscli(), "natscli not built")
  local u = cluster.USERS[acc]
  local argv = { cli, "--server", server.url, "--user", u.user, "--password", u.password, ... }
  local code, out, err = cluster.run(argv)
  assert(code == 0, table.concat(argv, " ") .. ": " .. err .. out)
  return out
end

for _, server in ipairs(versions) do
describe("a " .. server.version .. " supercluster that lost one cluster and a node of the other", function()
  local sc, dir, before, east, west
  local rec, cards = {}, {}
  local restore = {}

  setup(function()
    dir = fx.tmpdir()
    local ok, err = pcall(function()
      sc = supercluster.start { dir = dir, bin = server.bin }
      east, west = sc.clusters[1].name, sc.clusters[2].name
      local a1, b1, b2, b3 = sc.nodes[1], sc.nodes[4], sc.nodes[5], sc.nodes[6]
      local urls = sc:urls(1)
      -- the drill's workload, through a1: placed in east (the client's cluster)
      cluster.jsload(urls, "ACME", "setup", "--account", "ACME", "--scale", "0.1", "--pin-tag", "node:a1",
        "--pin-server", "a1", "--timeout-ms", "10000")
      cluster.jsload(urls, "BETA", "setup", "--account", "BETA", "--scale", "0.1", "--timeout-ms", "10000")
      -- west streams are created through west nodes, so the assignments
      -- name every west server (the lost-asset report's node names)
      local acme = cluster.USERS.ACME
      ns.jspub(b1.srv, { stream = "WEST_R3", subjects = { "west.r3.a", "west.r3.b" }, replicas = 3,
        placement_cluster = west, count = 120, consumer = "proc", ack = 40,
        user = acme.user, password = acme.password })
      ns.jspub(a1.srv, { stream = "EAST_R3", subjects = { "east.r3" }, replicas = 3, placement_cluster = east,
        count = 80, consumer = "proc", ack = 20, user = acme.user, password = acme.password })
      -- never written to: 2.9.10 restores it with first_seq 1
      ns.jspub(a1.srv, { stream = "EAST_EMPTY", replicas = 3, placement_cluster = east,
        user = acme.user, password = acme.password })
      ns.jspub(b2.srv, { stream = "WEST_B2", subjects = { "west.b2" }, placement_tag = "node:b2", count = 30,
        user = acme.user, password = acme.password })
      ns.jspub(a1.srv, { stream = "EAST_A2", subjects = { "east.a2" }, placement_tag = "node:a2", count = 25,
        consumer = "c", ack = 5, user = acme.user, password = acme.password })
      nats(b3.srv, "ACME", "kv", "add", "WESTCFG", "--replicas", "3", "--cluster", west, "--history", "3")
      for i = 1, 5 do nats(b3.srv, "ACME", "kv", "put", "WESTCFG", "k" .. i, "v" .. i) end
      for _, acc in ipairs { "ACME", "BETA" } do cluster.jsload(urls, acc, "settle", "--wait-ms", "60000") end
      before = {}
      for _, acc in ipairs { "ACME", "BETA" } do
        before[acc] = cluster.jsload(urls, acc, "dump", "--timeout-ms", "10000")
      end
      -- west and a3 die: 2 of 6 are left, the meta group has no quorum
      for _, i in ipairs { 4, 5, 6, 3 } do sc:kill(i, "KILL") end
      cluster.sleep(1)
      for _, i in ipairs { 1, 2 } do sc:kill(i, "KILL") end
      for _, i in ipairs { 1, 2 } do
        local n = sc.nodes[i]
        local rdir = dir .. "/recover-" .. n.name
        os.execute("mkdir -p " .. fx.quote(rdir))
        rec[n.name] = drill.recover({ bin = server.bin, name = n.name }, n.store_dir, rdir)
        cards[n.name] = drill.compare(before, rec[n.name].dump, rec[n.name].inspect.lost)
      end

      -- a1's own store (restore only reads it) into a fresh cluster
      local store = a1.store_dir
      restore.digest = fx.tree_digest(store)
      local c = cluster.start { dir = dir .. "/new", bin = server.bin }
      local rok, rerr = pcall(function()
        local map = dir .. "/accounts.json"
        fx.write(map, assert(json.encode { ACME = cluster.USERS.ACME, BETA = cluster.USERS.BETA }))
        -- only the stream placed by cluster, so the refusal leaves nothing
        -- else on the target
        local only = dir .. "/only-east.lua"
        fx.write(only, 'return require("jsr.restore").run({ keep_stream = function(s) '
          .. 'return s.name == "EAST_R3" end }, "restore", ...)\n')
        restore.refused = { fx.run("run", only, store, "--server", c.nodes[1].url, "--accounts", map) }
        restore.new_cluster = c.name
        restore.result = { fx.run("restore", store, "--server", c.nodes[1].url, "--accounts", map, "--json",
          "--map-cluster", east .. "=" .. c.name, "--map-tag", "node:a1=node:n1,node:a2=node:n2") }
        restore.digest_after = fx.tree_digest(store)
        if os.getenv("JSR_SUPERCLUSTER_VERBOSE") then
          io.stderr:write("refused: ", table.concat(restore.refused, "\n", 2), "\nrestore: ",
            table.concat(restore.result, "\n", 2), "\n")
        end
        -- restored R3 consumers settle in a few seconds: look until they have
        local deadline, card = cluster.now() + 30, nil
        repeat
          restore.after = {}
          for _, acc in ipairs { "ACME", "BETA" } do
            restore.after[acc] = cluster.jsload(c:urls(1), acc, "dump", "--timeout-ms", "10000")
          end
          card = drill.compare(before, restore.after, rec.a1.inspect.lost)
          local settled = card.acks.exact == card.acks.total and card.state.exact == card.state.total
          if not settled then cluster.sleep(1) end
        until settled or cluster.now() > deadline
        restore.card = card
      end)
      c:stop_all()
      assert(rok, rerr)
    end)
    if sc then sc:stop_all() end
    if not ok then ns.rmtree(dir); dir = nil; error(err, 0) end
  end)

  teardown(function() if dir then ns.rmtree(dir) end end)

  it("had streams in both clusters, as the servers placed them", function()
    assert.are.equal(east, before.ACME.streams.ORDERS.info.cluster.name)
    assert.are.equal(west, before.ACME.streams.WEST_R3.info.cluster.name)
    assert.are.equal(west, before.ACME.streams.KV_WESTCFG.info.cluster.name)
    assert.are.equal("b2", before.ACME.streams.WEST_B2.info.cluster.leader)
    assert.are.equal("a2", before.ACME.streams.EAST_A2.info.cluster.leader)
  end)

  for _, node in ipairs { "a1", "a2" } do
    it(node .. ": the lost-asset report names exactly the streams that lived elsewhere, with their cluster", function()
      local lost = rec[node].inspect.lost
      assert.is_true(lost.available, json.encode(lost))
      local want = lived_elsewhere(before, node)
      assert.is_true(#want >= 3, table.concat(want, ", "))
      assert.are.same(want, reported(lost))
      for _, s in ipairs(lost.streams) do
        if s.name:find("^WEST") or s.name == "KV_WESTCFG" then
          assert.are.equal(west, s.cluster, json.encode(s))
          for _, on in ipairs(s.on) do assert.truthy(on:match("^b%d "), json.encode(s)) end
        end
      end
      -- the meta group's peers: all six nodes, both clusters
      assert.are.equal(6, #lost.peers, json.encode(lost.peers))
      -- told apart by the groups whose data is here (a2 is not named: no
      -- client of the assignments was connected to it)
      assert.are.equal(jsr.raft.node_id(node), lost.this_node, json.encode(lost.peers))
    end)

    it(node .. ": a standalone server on the prepared copy serves exactly the rest", function()
      local card = cards[node]
      local text = drill.scorecard_text { name = node, survivor = node, role_seen = "?", survivor_stop = "KILL",
                                          card = card }
      assert.is_true(card.messages.total > 300, text)
      assert.is_true(exact(card), text)
      assert.are.same({}, card.config.changed, text)
      assert.is_nil(rec[node].conf:find("gateway", 1, true))
      assert.is_nil(rec[node].conf:find("cluster", 1, true))
    end)
  end

  it("restore refuses placement in a cluster the target lacks, naming the fix", function()
    local code, out, err = table.unpack(restore.refused)
    assert.are_not.equal(0, code, out)
    assert.truthy(err:find("placed in", 1, true), err)
    assert.truthy(err:find("--map-cluster", 1, true), err)
  end)

  it("restore with the cluster and tags mapped serves what the dead supercluster served", function()
    local code, out, err = table.unpack(restore.result)
    assert.are.equal(0, code, err .. out)
    assert.are.equal(restore.digest, restore.digest_after)
    local card = restore.card
    local text = drill.scorecard_text { name = "restored", survivor = "a1", role_seen = "?",
                                        survivor_stop = "KILL", card = card }
    assert.is_true(exact(card), text)
    local other = {}
    for _, ch in ipairs(card.config.changed) do
      if not ch:find(" placement: ", 1, true) and not ch:find(": nil -> ", 1, true) then other[#other + 1] = ch end
    end
    assert.are.same({}, other, text)
    local orders = restore.after.ACME.streams.ORDERS.info
    assert.are.equal(restore.new_cluster, orders.cluster.name)
    for _, s in pairs(restore.after.ACME.streams) do
      local p = s.info.config.placement
      if type(p) == "table" and p.cluster then assert.are.equal(restore.new_cluster, p.cluster) end
    end
  end)
end)
end
