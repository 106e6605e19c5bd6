-- js-recover restore: the survivor of a dead 2.9.10 cluster restored
-- straight from its store (read-only) into a fresh 3-node cluster of the
-- newest release, and of 2.9.10, through the restore API, with no natscli, no prepare and
-- no standalone server.  What that cluster serves must be what the dead
-- cluster served (spec/fixtures/survivor-2.9.10.expected.json); a re-run
-- skips what is restored, a run killed half-way is finished by the next,
-- a stream the target has already is refused unless --force, an account
-- without credentials stops the run before anything is sent.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"

local nats = servers.natscli()
if not (nats and servers.newest()) then return end -- servers.lua names what was not built

for _, server in ipairs(servers.fast()) do
describe("restore into a fresh " .. server.version .. " cluster", function()
  local store, dir, c, want, url, acme, before
  local first, served

  local function restore(...)
    return fx.run("restore", store, "--server", url, "--user", acme.user, "--password", acme.password, ...)
  end
  local function target(args)
    local a = { "--server", url, "--user", acme.user, "--password", acme.password }
    for _, x in ipairs(args) do a[#a + 1] = x end
    return restored.nats(nats, a)
  end

  setup(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    want = restored.want(store)
    before = fx.tree_digest(store)
    dir = fx.tmpdir()
    acme = cluster.USERS.ACME
    local ok, err = pcall(function()
      c = cluster.start { dir = dir, bin = server.bin }
      url = c.nodes[1].url
      first = { restore("--json") }
      served = restored.served(c.nodes[2].url, { user = acme.user, password = acme.password }, want)
    end)
    if not ok then
      if c then c:stop_all() end
      ns.rmtree(dir)
      fx.cleanup(store)
      error(err)
    end
  end)

  teardown(function()
    if c then c:stop_all() end
    ns.rmtree(dir)
    fx.cleanup(store)
  end)

  it("restores every stream and finds it served as sent (exit 0, --json)", function()
    local code, out, err = first[1], first[2], first[3]
    assert.are.equal(0, code, err)
    local r = assert(json.decode(out))
    assert.is_true(r.ok)
    local n = 0
    for _, s in ipairs(r.streams) do
      n = n + 1
      assert.are.equal("restored", s.action, s.stream)
      assert.is_true(s.ok, s.stream)
      assert.is_true(#s.checks >= 6, s.stream)
    end
    assert.are.equal(4, n)
  end)

  restored.its(it, function() return served end, function() return want end)

  it("reads the store only: its tree is byte for byte as before", function()
    assert.are.equal(before, fx.tree_digest(store))
  end)

  it("serves the KV bucket as a KV bucket", function()
    local out = target { "kv", "ls" }
    assert.matches("CFG", out, 1, true)
    out = target { "kv", "status", "CFG" }
    assert.matches("Values Stored: 5", out, 1, true)
  end)

  it("skips on a re-run what the target serves as the store would send it", function()
    local code, out, err = restore()
    assert.are.equal(0, code, err)
    assert.matches("skipped $G > ORDERS: already restored identically", out, 1, true)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
  end)

  it("compare finds no difference, then the one a purge on the target makes (exit 1)", function()
    local code, out, err = fx.run("compare", store, "--server", url, "--user", acme.user,
      "--password", acme.password)
    assert.are.equal(0, code, err .. out)
    -- JOBS: no max_age, so its count does not depend on the fixture's age
    target { "stream", "purge", "JOBS", "-f" }
    code, out = fx.run("compare", store, "--server", url, "--user", acme.user, "--password", acme.password)
    assert.are.equal(1, code)
    assert.matches("JOBS[^\n]*messages[^\n]*600[^\n]*0[^\n]*DIFFERS", out)
  end)

  it("refuses a stream the target has already, and with --force says what it replaced", function()
    -- JOBS was purged above: the target's stream differs from the store's
    local code, out, err = restore()
    assert.are.equal(1, code, err)
    assert.matches("refused $G > JOBS: the target has this stream already (0 messages", out, 1, true)
    assert.matches("--force deletes it", out, 1, true)
    code, out, err = restore("--force")
    assert.are.equal(0, code, err .. out)
    assert.matches("replaced $G > JOBS (it replaced 0 messages", out, 1, true)
    assert.matches("skipped $G > KV_CFG", out, 1, true)
  end)

  it("finishes on a re-run a restore killed half-way", function()
    for _, name in ipairs { "EVENTS", "JOBS" } do target { "stream", "rm", name, "-f" } end
    -- 4 KiB chunks: EVENTS (about 60 KiB of snapshot) dies after its 5th
    local code, _, err = fx.run_with({ env = { JSR_RESTORE_CHUNK = "4096", JSR_RESTORE_EXIT_AFTER = "5" } }, "restore", store,
      "--server", url, "--user", acme.user, "--password", acme.password)
    assert.are.equal(99, code, err)
    assert.matches("exiting after 5 chunks", err, 1, true)
    -- the server creates a stream only from a whole snapshot
    assert.is_false(pcall(target, { "stream", "info", "EVENTS" }))
    local out
    code, out, err = restore()
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > EVENTS", out, 1, true)
    assert.matches("restored $G > JOBS", out, 1, true)
    local again = restored.served(c.nodes[2].url, { user = acme.user, password = acme.password }, want)
    for name, w in pairs(want) do
      if not w.partly_aged then
        assert.are.same({ w.messages, w.first_seq, w.last_seq },
          { again[name].messages, again[name].first_seq, again[name].last_seq }, name)
      end
    end
  end)

  it("stops before sending anything when an account has no credentials", function()
    local map = dir .. "/accounts.json"
    fx.write(map, json.encode { OTHER = { user = acme.user, password = acme.password } })
    local code, out, err = fx.run("restore", store, "--server", url, "--accounts", map)
    assert.are.equal(2, code, out)
    assert.matches("nothing sent: no credentials for the source account(s) $G", err, 1, true)
  end)

  it("names the account and the server's answer when the credentials are wrong", function()
    local code, _, err = fx.run("restore", store, "--server", url, "--user", acme.user, "--password", "wrong")
    assert.are.equal(3, code)
    assert.matches("account $G: cannot connect to " .. url, err, 1, true)
    assert.matches("Authorization", err, 1, true)
  end)

  it("--dry-run connects nowhere and lists what it would restore", function()
    local code, out, err = fx.run("restore", store, "--server", "nats://127.0.0.1:1", "--dry-run",
      "--replicas", "1")
    assert.are.equal(0, code, err)
    assert.matches("would restore $G > JOBS: 600 messages (seq 401..1000", out, 1, true)
    assert.matches("num_replicas 3 -> 1", out, 1, true)
  end)
end)
end

describe("restore's policy hooks", function()
  it("restore_config edits what the target gets (--dry-run shows it), prepare's hooks pick the streams", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local policy = store .. "/../restore-policy.lua"
    fx.write(policy, [[
return require("jsr.restore").run({
  keep_stream = function(s) return s.name ~= "KV_CFG" end,
  restore_config = function(stream, cfg) cfg.description = "restored " .. stream.name end,
}, "restore", ...)
]])
    local code, out, err = fx.run("run", policy, store, "--server", "nats://127.0.0.1:1", "--dry-run")
    os.remove(policy)
    fx.cleanup(store)
    assert.are.equal(0, code, err)
    -- JOBS: no max_age, so what it would send does not depend on the fixture's age
    assert.matches('would restore %$G > JOBS: 600 messages %(seq 401%.%.1000, [%d.]+ KiB%), 1 consumers; '
      .. 'config changed: description = "restored JOBS" %(new%)', out)
    assert.is_nil(out:find("KV_CFG", 1, true))
  end)

  it("counts what the target's max_age deletes at once, and the check expects it (a real server)", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local policy = store .. "/../restore-age.lua"
    -- the fixture's messages are days old: a max_age of 1 h takes them all
    fx.write(policy, [[
return require("jsr.restore").run({
  keep_stream = function(s) return s.name == "ORDERS" end,
  restore_config = function(stream, cfg) cfg.max_age = 3600000000000 end,
}, "restore", ...)
]])
    local srv = ns.start { store_dir = fx.tmpdir(), bin = servers.newest().bin }
    local code, out, err = fx.run("run", policy, store, "--server", srv.url, "--replicas", "1")
    srv:stop()
    os.remove(policy)
    fx.cleanup(store)
    assert.are.equal(0, code, err .. out)
    assert.matches("the target deletes at once 1000 message(s) older than its max_age 1h", out, 1, true)
    assert.matches("ORDERS[^\n]*messages[^\n]*0[^\n]*0[^\n]*ok", out)
  end)
end)
