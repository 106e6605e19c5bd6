-- Placement mapped on restore, against real clusters whose nodes carry
-- server tags (node:n1, node:n2, node:n3: spec/support/cluster.lua): two
-- R1 streams placed by the tag node:n1 in a newest-release cluster, every
-- node SIGKILLed, n1's store restored into a fresh cluster.  The new
-- cluster has a node:n1 too, so only the mapping moves them: with
-- `--map-tag node:n1=node:n3` each lands on n3, and a policy's
-- restore_config (which sees the mapping done) sends one to n2 instead.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local nats, newest = servers.natscli(), servers.newest()
if not (nats and newest) then return end -- servers.lua names what was not built

local acme = cluster.USERS.ACME
local function nats_run(url, args)
  local parts = { fx.quote(nats), "--server", url, "--user", acme.user, "--password", acme.password }
  for _, a in ipairs(args) do parts[#parts + 1] = fx.quote(a) end
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
  local out = h:read("a")
  local ok = h:close()
  assert(ok, ("nats %s: %s"):format(table.concat(args, " "), out))
  return out
end

local function info(url, name)
  return assert(json.decode(nats_run(url, { "stream", "info", name, "--json" })))
end

describe("restore with placement mapped to the new cluster's tags", function()
  local dir, store, before, code, out, err, after, policy_seen

  setup(function()
    dir = fx.tmpdir()
    local old, new
    local ok, e = pcall(function()
      old = cluster.start { dir = dir .. "/old", bin = newest.bin }
      local url = old.nodes[1].url
      for _, name in ipairs { "P1", "P2" } do
        nats_run(url, { "stream", "add", name, "--subjects", name:lower() .. ".>", "--storage", "file",
          "--replicas", "1", "--tag", "node:n1", "--defaults" })
        nats_run(url, { "pub", name:lower() .. ".x", "--count", "20", "m {{Count}}" })
      end
      before = { P1 = info(url, "P1"), P2 = info(url, "P2") }
      for i = 3, 1, -1 do old:kill(i, "KILL") end
      store = old.nodes[1].store_dir
      new = cluster.start { dir = dir .. "/new", bin = newest.bin }
      local policy = dir .. "/policy.lua"
      fx.write(policy, [[
return require("jsr.restore").run({
  restore_config = function(stream, cfg)
    io.stderr:write("restore_config ", stream.name, " ", table.concat(cfg.placement.tags, ","), "\n")
    if stream.name == "P2" then cfg.placement.tags = { "node:n2" } end
  end,
}, "restore", ...)
]])
      code, out, err = fx.run("run", policy, store, "--server", new.nodes[1].url, "--user", acme.user,
        "--password", acme.password, "--map-tag", "node:n1=node:n3")
      policy_seen = err
      after = { P1 = info(new.nodes[2].url, "P1"), P2 = info(new.nodes[2].url, "P2") }
    end)
    if old then old:stop_all() end
    if new then new:stop_all() end
    if not ok then ns.rmtree(dir); error(e) end
  end)

  teardown(function() ns.rmtree(dir) end)

  it("had both streams on n1, by the tag node:n1", function()
    for _, name in ipairs { "P1", "P2" } do
      assert.are.equal("n1", before[name].cluster.leader, name)
      assert.are.same({ "node:n1" }, before[name].config.placement.tags, name)
    end
  end)

  it("restores both and finds them served as sent (exit 0)", function()
    assert.are.equal(0, code, err .. out)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
  end)

  it("--map-tag node:n1=node:n3 places a stream on n3", function()
    assert.are.equal("n3", after.P1.cluster.leader)
    assert.are.same({ "node:n3" }, after.P1.config.placement.tags)
    assert.are.same({ 20, 1, 20 }, { after.P1.state.messages, after.P1.state.first_seq, after.P1.state.last_seq })
  end)

  it("restore_config sees the mapping done and can place a stream elsewhere (n2)", function()
    assert.matches("restore_config P1 node:n3", policy_seen, 1, true)
    assert.matches("restore_config P2 node:n3", policy_seen, 1, true)
    assert.are.equal("n2", after.P2.cluster.leader)
    assert.are.same({ "node:n2" }, after.P2.config.placement.tags)
    assert.are.same({ 20, 1, 20 }, { after.P2.state.messages, after.P2.state.first_seq, after.P2.state.last_seq })
  end)
end)
