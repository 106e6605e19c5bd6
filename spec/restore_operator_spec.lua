-- An operator-mode survivor restored through `restore` (issue 17): a
-- 3-node cluster whose operator, accounts and users the real nats CLI made
-- (natscli 0.5.0), a full resolver per node; ACME with an R3 stream and an
-- R1 stream on n1, BETA with an R3 KV bucket and an R3 stream, consumers
-- part way (spec/support/opcluster.lua).  n2 and n3 SIGKILLed, then n1.
-- Its store (accounts under their public keys) is restored with
-- `restore --accounts FILE` into a NEW operator-mode 3-node cluster of the
-- same version, the same operator, the accounts pushed to it as an
-- operator adds them to a new deployment; FILE names ACME by its public
-- key and BETA by the name in its JWT, each with its user's .creds.  Each
-- account's user is then served every stream with its retention and
-- replicas, every message's digest and every consumer's ack floor,
-- delivered and pending as the dead cluster served them.  Before that, a
-- FILE without BETA is refused, naming it, and nothing reaches the target.
-- Debian's 2.9.10 and the newest release.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"
local op = require "spec.support.opcluster"

if not servers.natscli() then return end -- servers.lua names what was not built

for _, server in ipairs(servers.fast()) do
  describe("restore of an operator-mode survivor into a new operator-mode cluster, nats-server "
    .. server.version, function()
    local dir, auth, store, want, c, digest
    local refused, before, first, again, got = {}, {}, {}, {}, {}

    setup(function()
      dir = ns.tmpdir()
      local ok, err = pcall(function()
        local _
        auth, store, _, want = op.survivor(server, dir .. "/dead", false)
        digest = fx.tree_digest(store)
        c = op.start { dir = dir .. "/new", auth = auth, bin = server.bin, push = true }
        local acme, beta = auth.accounts.ACME, auth.accounts.BETA
        local only_acme = dir .. "/only-acme.json"
        fx.write(only_acme, assert(json.encode { [acme.pub] = { creds = acme.creds } }))
        refused = { fx.run("restore", store, "--server", c.nodes[1].url, "--accounts", only_acme) }
        for _, name in ipairs { "ACME", "BETA" } do
          before[name] = ns.jscheck({ url = c.nodes[1].url }, { creds = auth.accounts[name].creds }).streams
        end
        local map = dir .. "/accounts.json"
        fx.write(map, assert(json.encode { [acme.pub] = { creds = acme.creds }, BETA = { creds = beta.creds } }))
        first = { fx.run("restore", store, "--server", c.nodes[1].url, "--accounts", map, "--json") }
        for _, name in ipairs { "ACME", "BETA" } do
          got[name] = op.served(c.nodes[2].url, auth.accounts[name].creds, want[name])
        end
        again = { fx.run("restore", store, "--server", c.nodes[3].url, "--accounts", map, "--json") }
      end)
      if not ok then
        if c then c:stop_all() end
        error(err, 0)
      end
    end)

    teardown(function()
      if c then c:stop_all() end
      if dir then ns.rmtree(dir) end
    end)

    it("an account of the store without credentials in FILE is refused, named, nothing sent (exit 2)", function()
      local code, out, err = refused[1], refused[2], refused[3]
      assert.are.equal(2, code, out .. err)
      assert.matches("nothing sent: no credentials for the source account(s) " .. auth.accounts.BETA.pub
        .. " (BETA)", err, 1, true)
      assert.not_matches(auth.accounts.ACME.pub, err, 1, true)
      assert.are.same({}, before.ACME)
      assert.are.same({}, before.BETA)
      -- --account by the JWT name too: BETA's credentials taken, ACME named
      code, out, err = fx.run("restore", store, "--server", c.nodes[1].url, "--account", "BETA",
        "--creds", auth.accounts.BETA.creds, "--dry-run")
      assert.are.equal(2, code, out .. err)
      assert.matches("no credentials for the source account(s) " .. auth.accounts.ACME.pub .. " (ACME):", err, 1, true)
      assert.not_matches(auth.accounts.BETA.pub, err, 1, true)
    end)

    it("restores every stream of both accounts, checked, and only theirs (exit 0)", function()
      local code, out, err = first[1], first[2], first[3]
      assert.are.equal(0, code, err .. out)
      local r = assert(json.decode(out))
      assert.is_true(r.ok, out)
      local names = {}
      for _, s in ipairs(r.streams) do
        assert.are.equal("restored", s.action, s.stream)
        local acc = s.account == auth.accounts.ACME.pub and "ACME" or s.account == auth.accounts.BETA.pub and "BETA"
        assert.is_string(acc, s.account .. " is neither ACME's nor BETA's key (the system account has no streams)")
        names[#names + 1] = acc .. " > " .. s.stream
      end
      table.sort(names)
      assert.are.same({ "ACME > LOCAL", "ACME > ORDERS", "BETA > EVENTS", "BETA > KV_CFG" }, names)
      assert.are.equal(digest, fx.tree_digest(store), "the store is only read")
    end)

    it("serves each account's user every stream (retention, replicas), message digest and consumer position as the dead cluster did", function()
      for _, name in ipairs { "ACME", "BETA" } do
        op.same(want[name], got[name], name, true)
      end
      -- what the workload made (so the comparison above compares something)
      assert.are.equal(300, got.ACME.ORDERS.messages)
      assert.are.equal(120, got.ACME.ORDERS.consumers.proc.ack_floor_stream_seq)
      assert.are.equal(1, got.ACME.LOCAL.replicas)
      assert.are.equal(3, got.BETA.KV_CFG.replicas)
      assert.are.equal(35, got.BETA.EVENTS.consumers.audit.ack_floor_stream_seq)
      assert.are.equal(55, got.BETA.EVENTS.consumers.audit.num_pending)
    end)

    it("a re-run skips every stream, already restored identically", function()
      local code, out, err = again[1], again[2], again[3]
      assert.are.equal(0, code, err .. out)
      local r = assert(json.decode(out))
      assert.are.equal(4, #r.streams, out)
      for _, s in ipairs(r.streams) do assert.are.equal("skipped", s.action, s.stream) end
    end)
  end)
end
