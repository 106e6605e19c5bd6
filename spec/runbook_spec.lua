-- The runbook prepare prints, followed with the real nats CLI (v0.5.0, built
-- by `make servers`): the survivor of a dead 2.9.10 cluster prepared, a
-- standalone 2.9.10 server on it, every stream backed up with
-- `nats backup stream`, each backup's config set back as prepare says
-- (retention, replicas, max_age from recovery-report.json), and restored
-- with `nats backup restore stream` into a fresh 3-node cluster of the
-- newest release.  What that cluster serves must be what the dead cluster
-- served (spec/fixtures/survivor-2.9.10.expected.json, recorded from it).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local nats, newest = servers.natscli(), servers.newest()
if not (nats and newest) then return end -- servers.lua names what was not built

local restored = require "spec.support.restored"
local function run(args) return restored.nats(nats, args) end

describe("the runbook with the real nats CLI, into a fresh " .. newest.version .. " cluster", function()
  local served, want, report, restore_out

  setup(function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    want = restored.want(store)
    local backups = fx.tmpdir()
    local dir = fx.tmpdir()
    local code, out, err = fx.run("prepare", store)
    assert(code == 0, err)
    restore_out = out
    report = assert(json.decode(fx.read(store .. "/recovery-report.json")))
    local srv = ns.start { config = store .. "/recovery.conf" }
    local c
    local ok, res = pcall(function()
      -- 2. back each stream up from the standalone server
      for _, s in ipairs(report.streams) do
        run { "--server", srv.url, "backup", "stream", s.name, backups .. "/" .. s.name, "--no-progress" }
      end
      srv:stop()
      -- 3. set back what prepare changed, in each backup's backup.json "config"
      for _, s in ipairs(report.streams) do
        local path = backups .. "/" .. s.name .. "/backup.json"
        local b = assert(json.decode(fx.read(path)))
        b.config.retention = s.original.retention
        b.config.num_replicas = s.original.num_replicas
        if s.original.max_age then b.config.max_age = s.original.max_age end
        fx.write(path, assert(json.encode(b)))
      end
      -- restore into the new cluster's account ACME
      c = cluster.start { dir = dir, bin = newest.bin }
      local acme = cluster.USERS.ACME
      for _, s in ipairs(report.streams) do
        run { "--server", c.nodes[1].url, "--user", acme.user, "--password", acme.password,
              "backup", "restore", "stream", backups .. "/" .. s.name, "--no-progress" }
      end
      return restored.served(c.nodes[2].url, { user = acme.user, password = acme.password }, want)
    end)
    srv:stop()
    if c then c:stop_all() end
    fx.cleanup(store)
    fx.cleanup(backups)
    ns.rmtree(dir)
    assert(ok, res)
    served = res
  end)

  it("prepare's instructions name the commands the CLI has and what to set back", function()
    assert.matches("nats ... backup stream <STREAM> /backups/<STREAM>", restore_out, 1, true)
    assert.matches("nats backup restore stream /backups/<STREAM>", restore_out, 1, true)
    assert.matches("$G > ORDERS: retention limits, num_replicas 3, max_age 7d", restore_out, 1, true)
  end)

  restored.its(it, function() return served end, function() return want end)
end)
