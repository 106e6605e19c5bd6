-- js-recover export: the survivor of a dead 2.9.10 cluster written as
-- natscli backups straight from its store (read-only: its tree digest is
-- unchanged), restored with the real nats CLI (v0.5.0, `make servers`)
-- into a fresh 3-node cluster of the newest release, with nothing edited
-- by hand.  What that cluster serves must be what the dead cluster served
-- (spec/fixtures/survivor-2.9.10.expected.json).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"

local nats, newest = servers.natscli(), servers.newest()
if not (nats and newest) then return end -- servers.lua names what was not built

local function run(args) return restored.nats(nats, args) end

describe("export, restored with the real nats CLI into a fresh " .. newest.version .. " cluster", function()
  local served, want, out, before, after, backup

  setup(function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    want = restored.want(store)
    local backups = fx.tmpdir()
    local dir = fx.tmpdir()
    local c
    local ok, res = pcall(function()
      before = fx.tree_digest(store)
      local code, o, err = fx.run("export", store, backups .. "/out")
      assert(code == 0, err)
      out = o
      after = fx.tree_digest(store)
      backup = assert(json.decode(fx.read(backups .. "/out/$G/JOBS/backup.json")))
      c = cluster.start { dir = dir, bin = newest.bin }
      local acme = cluster.USERS.ACME
      for name in pairs(want) do
        run { "--server", c.nodes[1].url, "--user", acme.user, "--password", acme.password,
              "backup", "restore", "stream", backups .. "/out/$G/" .. name, "--no-progress" }
      end
      return restored.served(c.nodes[2].url, { user = acme.user, password = acme.password }, want)
    end)
    if c then c:stop_all() end
    fx.cleanup(store)
    fx.cleanup(backups)
    ns.rmtree(dir)
    assert(ok, res)
    served = res
  end)

  it("reads the store only: its tree is byte for byte as before", function()
    assert.are.equal(before, after)
  end)

  it("writes the original config and the state as replayed in backup.json", function()
    assert.are.equal("workqueue", backup.config.retention)
    assert.are.equal(3, backup.config.num_replicas)
    assert.is_nil(backup.config.Created)
    assert.are.same({ 600, 401, 1000 }, { backup.state.messages, backup.state.first_seq, backup.state.last_seq })
    assert.matches("exported $G > JOBS: 600 messages (seq 401..1000), 1 consumers", out, 1, true)
  end)

  restored.its(it, function() return served end, function() return want end)
end)
