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

-- An encrypted survivor (a 2.9.10 drill, chacha, SIGKILLed): exported with
-- the key in a file, its backups are plaintext (blocks decrypted, 2.9
-- indexes opened, meta files and sums in plaintext), and the real nats CLI
-- restores them into a plaintext cluster exactly as the dead cluster
-- served them.
describe("export of an encrypted 2.9.10 drill survivor, restored with the real nats CLI", function()
  local drill = require "spec.support.drill"
  local r, card, before, after, files, err

  setup(function()
    r = drill.variant { role = "follower", signal = "KILL", scale = 0.15, name = "export-chacha",
                        cipher = "chacha", keep = true, bin = servers.fast()[1].bin }
    if r.error then err = r.error; return end
    local dir = fx.tmpdir()
    local c
    local ok, res = pcall(function()
      local store = r.dir .. "/" .. r.survivor
      before = fx.tree_digest(store)
      local code, _, e = fx.run("export", store, dir .. "/out", "--key-file", r.dir .. "/js.key")
      assert(code == 0, e)
      after = fx.tree_digest(store)
      c = cluster.start { dir = dir .. "/c", bin = newest.bin }
      files = 0
      for _, acc in ipairs { "ACME", "BETA" } do
        local u = cluster.USERS[acc]
        for _, name in ipairs(jsr.listdir(dir .. "/out/" .. acc) or {}) do
          files = files + 1
          -- a cluster just up can be briefly without a JetStream responder
          -- ("no responders"): asked again, as js-recover restore does
          for try = 1, 5 do
            local rok, rerr = pcall(run, { "--server", c.nodes[1].url, "--user", u.user, "--password",
              u.password, "backup", "restore", "stream", dir .. "/out/" .. acc .. "/" .. name, "--no-progress" })
            if rok then break end
            assert(try < 5 and tostring(rerr):find("no responders", 1, true), rerr)
            cluster.sleep(2)
          end
        end
      end
      card = restored.card(c:urls(1), r.before, r.recovered.inspect.lost)
    end)
    if c then c:stop_all() end
    ns.rmtree(dir)
    if ok then ns.rmtree(r.dir) else err = tostring(res) .. " (kept in " .. r.dir .. ")" end
  end)

  it("reads the encrypted store only", function()
    assert.is_nil(err, err)
    assert.are.equal(before, after)
    assert.is_true(files >= 9)
  end)

  it("the restored cluster serves what the dead cluster served", function()
    assert.is_nil(err, err)
    local shown = {}
    for k, v in pairs(r) do shown[k] = v end
    shown.card, shown.score = card, card.score
    local text = drill.scorecard_text(shown)
    local m = card.messages
    assert.is_true(m.total > 500, text)
    assert.are.equal(m.total, m.exact, text)
    assert.are.equal(0, m.resurrected, text)
    assert.are.same({}, card.streams.missing, text)
    assert.are.equal(card.state.total, card.state.exact, text)
    assert.are.equal(card.acks.total, card.acks.exact, text)
  end)
end)
