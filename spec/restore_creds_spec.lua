-- js-recover restore into a cluster in operator mode (decentralized
-- auth: an operator, accounts and users made with the real nats CLI 0.5.0,
-- a full resolver per node; spec/support/opcluster.lua), logging in with
-- a user's .creds file (its JWT and nkey seed): with --creds, and with
-- "creds" in an --accounts file.  The 2.9.10 drill survivor's streams (in
-- $G) land in the account the .creds belong to, and are served there as
-- the dead cluster served them; another account sees none of them.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"
local op = require "spec.support.opcluster"

local newest = servers.newest()
if not (newest and servers.natscli()) then return end -- servers.lua names what was not built

describe("restore into an operator-mode cluster, logged in with .creds", function()
  local store, dir, c, auth, want, url
  local first, served, beta_before

  setup(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    want = restored.want(store)
    dir = fx.tmpdir()
    local ok, err = pcall(function()
      auth = op.make(dir)
      c = op.start { dir = dir .. "/cluster", auth = auth, bin = newest.bin }
      url = c.nodes[1].url
      first = { fx.run("restore", store, "--server", url, "--creds", auth.accounts.ACME.creds, "--json") }
      served = restored.served(c.nodes[2].url, { creds = auth.accounts.ACME.creds }, want)
      beta_before = ns.jscheck({ url = url }, { creds = auth.accounts.BETA.creds }).streams
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

  it("--creds F: restores every stream into the account of the .creds' user, checked (exit 0)", function()
    local code, out, err = first[1], first[2], first[3]
    assert.are.equal(0, code, err .. out)
    local r = assert(json.decode(out))
    assert.is_true(r.ok, out)
    assert.are.equal(4, #r.streams, out)
    for _, s in ipairs(r.streams) do assert.are.equal("restored", s.action, s.stream) end
  end)

  restored.its(it, function() return served end, function() return want end)

  it("leaves the other account without them", function()
    assert.are.same({}, beta_before)
  end)

  it('"creds" in --accounts FILE: the same streams into the other account', function()
    local map = dir .. "/accounts.json"
    fx.write(map, assert(json.encode { ["$G"] = { creds = auth.accounts.BETA.creds, server = c.nodes[3].url } }))
    local code, out, err = fx.run("restore", store, "--accounts", map)
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > ORDERS", out, 1, true)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
    local beta = restored.served(c.nodes[1].url, { creds = auth.accounts.BETA.creds }, want)
    for name, w in pairs(want) do
      assert.is_table(beta[name], name)
      if not w.partly_aged then
        assert.are.same({ w.messages, w.first_seq, w.last_seq },
          { beta[name].messages, beta[name].first_seq, beta[name].last_seq }, name)
      end
    end
  end)

  it("refuses user/password on an operator-mode server, naming the account and the server", function()
    local code, _, err = fx.run("restore", store, "--server", url, "--user", "acme", "--password", "x")
    assert.are.equal(3, code)
    assert.matches("account $G: cannot connect to " .. url, err, 1, true)
    assert.matches("Authorization", err, 1, true)
  end)

  it("names a .creds file that holds no credentials", function()
    local bad = dir .. "/bad.creds"
    fx.write(bad, "not a creds file\n")
    local code, _, err = fx.run("restore", store, "--server", url, "--creds", bad)
    assert.are.equal(3, code)
    assert.matches("account $G: cannot connect to " .. url, err, 1, true)
    assert.matches("no nkey user seed found in '" .. bad .. "'", err, 1, true)
  end)
end)
