-- The example site policies in scripts/, run as an operator runs them.
local jsr = require "jsr"
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local function retention(store, account, stream)
  local cfg = assert(jsr.read_meta(("%s/jetstream/%s/streams/%s"):format(store, account, stream)))
  return cfg.retention
end

describe("scripts/drop-scratch-accounts.lua", function()
  it("moves scratch accounts aside and prepares the rest", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    for _, acct in ipairs { "SCRATCH_1", "TEST_x", "KEEPME" } do
      fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(store .. "/jetstream/" .. acct .. "/streams"),
        fx.quote(store .. "/jetstream/$G/streams/KV_CFG"), fx.quote(store .. "/jetstream/" .. acct .. "/streams/")))
    end
    local code, out, err = fx.run("run", "scripts/drop-scratch-accounts.lua", store)
    assert.are.equal(0, code, err)
    assert.matches("move aside " .. store .. "/jetstream/SCRATCH_1 (dropped by policy (account))", out, 1, true)
    assert.is_nil(jsr.lstat(store .. "/jetstream/SCRATCH_1"))
    assert.is_nil(jsr.lstat(store .. "/jetstream/TEST_x"))
    assert.are.equal("directory", jsr.lstat(store .. "/jetstream/KEEPME"))
    local conf = fx.read(store .. "/recovery.conf")
    assert.matches('"KEEPME": {', conf, 1, true)
    assert.is_nil(conf:find("SCRATCH", 1, true))

    local report = jsr.json.decode(fx.read(store .. "/recovery-report.json"))
    local keepme
    for _, a in ipairs(report.accounts) do if a.name == "KEEPME" then keepme = a end end
    local srv = ns.start { config = store .. "/recovery.conf" }
    finally(function() srv:stop(); fx.cleanup(store) end) -- busted keeps one finally per test
    local served = ns.jscheck(srv, { user = keepme.user, password = keepme.password }).streams
    assert.are.equal(5, served.KV_CFG.messages)
  end)
end)

describe("scripts/keep-streams.lua", function()
  it("keeps only the named streams", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local code, out, err = fx.run("run", "scripts/keep-streams.lua", "ORDERS,KV_CFG", store)
    assert.are.equal(0, code, err)
    assert.matches("dropped by policy (stream)", out, 1, true)
    local srv = ns.start { config = store .. "/recovery.conf" }
    finally(function() srv:stop(); fx.cleanup(store) end) -- busted keeps one finally per test
    local served = ns.jscheck(srv).streams
    local names = {}
    for n in pairs(served) do names[#names + 1] = n end
    table.sort(names)
    assert.are.same({ "KV_CFG", "ORDERS" }, names)
    assert.are.equal(300, served.ORDERS.consumers.proc.ack_floor_stream_seq)
  end)

  it("explains its arguments when the list is missing", function()
    local code, _, err = fx.run("run", "scripts/keep-streams.lua")
    assert.are.equal(2, code)
    assert.matches("usage: js%-recover run keep%-streams.lua", err)
  end)
end)

describe("scripts/keep-interest-retention.lua", function()
  it("keeps interest retention and still switches workqueue to limits", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local code, _, err = fx.run("run", "scripts/keep-interest-retention.lua", store)
    assert.are.equal(0, code, err)
    assert.are.equal("interest", retention(store, "$G", "EVENTS"))
    assert.are.equal("limits", retention(store, "$G", "JOBS"))
  end)
end)

describe("a policy with a misspelt hook", function()
  it("is refused before anything changes", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local script = store .. "/typo.lua"
    fx.write(script, 'return require("jsr.prepare").run({ keep_stream_ = function() return false end }, ...)')
    local before = fx.tree_digest(store .. "/jetstream")
    local code, _, err = fx.run("run", script, store)
    assert.are.equal(3, code)
    assert.matches('unknown policy hook "keep_stream_"', err, 1, true)
    assert.are.equal(before, fx.tree_digest(store .. "/jetstream"))
  end)
end)
