-- Operator mode (JWT accounts), proved with real servers: a 3-node cluster
-- whose operator, accounts and users the real nats CLI made (natscli 0.5.0),
-- each node with a full resolver in <store_dir>/jwt; ACME with an R3 stream
-- and an R1 stream on the survivor, BETA with a KV bucket and an R3 stream,
-- durable consumers with acked messages.  Two nodes SIGKILLed, then the
-- survivor: inspect names every account by public key and JWT name,
-- prepare writes a recovery.conf with the operator and the JWTs found on
-- the disk, and a standalone server of the same version serves every
-- stream, message (payload digests) and consumer position to a user of
-- each account, logged in with that user's own .creds.  Without the JWTs
-- on the disk, prepare names what is missing and changes nothing.
-- Debian's 2.9.10 and the newest release.
local json = require("jsr").json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"
local op = require "spec.support.opcluster"

-- the workload, what each account is served and the survivor:
-- spec/support/opcluster.lua (shared with restore_operator_spec)
local survivor = op.survivor

-- a standalone server on the prepared store serves each account's user
-- every stream, message and consumer position as the cluster did
local function serves_exactly(server, store, auth, want, env)
  local srv = ns.start { config = store .. "/recovery.conf", bin = server.bin, timeout = 30, env = env,
                         log_path = store .. "/../standalone.log" }
  finally(function() srv:stop() end)
  for _, name in ipairs { "ACME", "BETA" } do
    local ok, got = pcall(op.served, srv.url, auth.accounts[name].creds)
    if not ok then error(tostring(got) .. "\nstandalone server log:\n" .. srv:log():sub(-3000), 0) end
    op.same(want[name], got, name)
  end
end

describe("operator mode: nkeys and JWT signatures (no server)", function()
  local jsr = require "jsr"
  local opm = require "jsr.operator"
  -- an operator JWT natscli 0.5.0 made (self-signed; public data)
  local OP_JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiI3UVVCUlJTWFRWNU4zSU03TVpZR1FKQ0IzMzdPNUQyTUFDRUZWQTdRSFVMSE1SWVA0V01RIiwiaWF0IjoxNzk2MTg5MTEwLCJpc3MiOiJPQko2U0dPUE5YSVRSM1RaNU4zMlZNRFlURTRIS0cyVENLVUw2QUE1QUdENVVPRlJFQ1lXVTdGWCIsIm5hbWUiOiJPUCIsInN1YiI6Ik9CSjZTR09QTlhJVFIzVFo1TjMyVk1EWVRFNEhLRzJUQ0tVTDZBQTVBR0Q1VU9GUkVDWVdVN0ZYIiwibmF0cyI6eyJzeXN0ZW1fYWNjb3VudCI6IkFBT0s1Tk9CV1AzSDNLRlIyN1JMTUxPRDVSNFlVUzdQRldXVElQNFk2UFhDR0FUMllKWUNFVVUyIiwidHlwZSI6Im9wZXJhdG9yIiwidmVyc2lvbiI6Mn19.ZT_DwK6DcsF33n3j4H6Q-Nv5HO_xwraVTjIYfkJcrFD33AydvLEksBFIvxJkDZ4GNTl69bSwOgqimlgQg0xjDw"
  local OP_KEY = "OBJ6SGOPNXITR3TZ5N32VMDYTE4HKG2TCKUL6AA5AGD5UOFRECYWU7FX"
  it("reads a public nkey's role and refuses a changed, short or non-base32 one", function()
    assert.are.equal("O", jsr.nkey.role(OP_KEY))
    local changed = OP_KEY:sub(1, 10) .. (OP_KEY:sub(11, 11) == "A" and "B" or "A") .. OP_KEY:sub(12)
    assert.are.same({ nil, "its checksum is wrong" }, { jsr.nkey.role(changed) })
    assert.are.same({ nil, "not 56 characters long" }, { jsr.nkey.role(OP_KEY:sub(1, 55)) })
    assert.are.same({ nil, "holds a character outside base32" }, { jsr.nkey.role(OP_KEY:sub(1, 55) .. "1") })
    assert.is_false(opm.is_account_key(OP_KEY))
  end)
  it("verifies the JWT's ed25519 signature and refuses any change to it", function()
    local j = assert(opm.decode(OP_JWT))
    assert.are.equal("operator", j.claims.nats.type)
    assert.are.equal(OP_KEY, j.claims.iss)
    assert.is_true(jsr.nkey.verify(OP_KEY, j.signing_input, j.signature))
    local ok, why = jsr.nkey.verify(OP_KEY, j.signing_input .. "x", j.signature)
    assert.is_false(ok)
    assert.matches("does not verify", why, 1, true)
    ok, why = jsr.nkey.verify(OP_KEY, j.signing_input, j.signature:sub(2))
    assert.are.same({ false, "the signature is 63 bytes, not 64" }, { ok, why })
    assert.is_nil(opm.decode("not.a.jwt!"))
  end)
end)

for _, server in ipairs(servers.fast()) do
  describe("operator mode on nats-server " .. server.version, function()
    local dir, auth, store, want, conf
    setup(function()
      dir = ns.tmpdir()
      auth, store, conf, want = survivor(server, dir, false)
    end)
    teardown(function() if dir then ns.rmtree(dir) end end)

    it("made what it meant to: the accounts' streams on the survivor, named by public key", function()
      assert.are.same({ "LOCAL", "ORDERS" }, (function()
        local t = {}
        for n in pairs(want.ACME) do t[#t + 1] = n end
        table.sort(t)
        return t
      end)())
      assert.are.equal(300, want.ACME.ORDERS.messages)
      assert.are.equal(120, want.ACME.ORDERS.consumers.proc.ack_floor_stream_seq)
      assert.are.equal(35, want.BETA.EVENTS.consumers.audit.ack_floor_stream_seq)
      assert.is_table(want.BETA.KV_CFG)
      assert.are.equal("directory", require("jsr").lstat(store .. "/jetstream/" .. auth.accounts.ACME.pub .. "/streams/LOCAL"))
    end)

    it("without the JWTs on the disk, prepare names what is missing and changes nothing", function()
      local copy = dir .. "/nojwt"
      fx.sh(("cp -a %s %s && rm -rf %s/jwt"):format(fx.quote(store), fx.quote(copy), fx.quote(copy)))
      local before = fx.tree_digest(copy)
      local code, out, err = fx.run("prepare", copy)
      assert.are.equal(1, code, out .. err)
      assert.matches("the operator's JWT is not on the disk given", err, 1, true)
      for _, a in ipairs { auth.accounts.ACME, auth.accounts.BETA, auth.system } do
        assert.matches("no JWT of account " .. a.pub, err, 1, true)
      end
      assert.matches("--resolver-dir D", err, 1, true)
      assert.are.equal(before, fx.tree_digest(copy))
      assert.is_nil(require("jsr").lstat(copy .. "/recovery.conf"))
      -- export (and restore) need no JWT: they send streams to a cluster
      -- that has its own; the backups are under the accounts' public keys
      code, out, err = fx.run("export", copy, dir .. "/backups")
      assert.are.equal(0, code, out .. err)
      assert.are.equal("file", require("jsr").lstat(("%s/backups/%s/ORDERS/backup.json"):format(dir,
        auth.accounts.ACME.pub)))
      assert.are.equal("file", require("jsr").lstat(("%s/backups/%s/EVENTS/backup.json"):format(dir,
        auth.accounts.BETA.pub)))
      assert.are.equal(before, fx.tree_digest(copy))
      -- the resolver directory given: the accounts are found, the operator still missing
      code, out, err = fx.run("prepare", copy, "--resolver-dir", store .. "/jwt", "--dry-run")
      assert.are.equal(1, code, out .. err)
      assert.matches("the operator's JWT is not on the disk given", err, 1, true)
      assert.not_matches("no JWT of account", err, 1, true)
      assert.are.equal(before, fx.tree_digest(copy))
      -- a JWT whose signature does not verify is not trusted
      local bad = dir .. "/badjwt"
      fx.sh(("cp -a %s %s"):format(fx.quote(store .. "/jwt"), fx.quote(bad)))
      local f = bad .. "/" .. auth.accounts.BETA.pub .. ".jwt"
      local t = assert(fx.read(f))
      -- one character of the signature changed (never to itself)
      local sig_at = assert(t:find("%.[%w_-]+%s*$")) + 1
      local c1 = t:sub(sig_at, sig_at)
      fx.write(f, t:sub(1, sig_at - 1) .. (c1 == "A" and "B" or "A") .. t:sub(sig_at + 1))
      code, out, err = fx.run("prepare", copy, "--resolver-dir", bad, "--operator-jwt", auth.operator_path)
      assert.are.equal(1, code, out .. err)
      assert.matches("the JWT of account " .. auth.accounts.BETA.pub .. " (BETA) cannot be trusted", err, 1, true)
      assert.are.equal(before, fx.tree_digest(copy))
      -- the server config alone, without its resolver dir: the operator
      -- file it names and its resolver_preload are enough
      local preload_only = dir .. "/preload-only.conf"
      -- (with the operator's JWT inline instead of the file)
      local ptext = assert(fx.read(conf)):gsub("\nresolver: {[^\n]*", "")
      ptext = ptext:gsub('operator: "[^"\n]*"', function() return "operator: " .. auth.operator_jwt end)
      fx.write(preload_only, ptext)
      assert.not_matches(auth.operator_path, ptext, 1, true)
      assert.not_matches("resolver: {", fx.read(preload_only), 1, true)
      assert.matches("resolver_preload", fx.read(preload_only), 1, true)
      -- an account directory without streams whose JWT is nowhere: a note
      op.nats(auth, { "auth", "account", "add", "GAMMA", "--operator", "OP", "--defaults" })
      local gamma = assert(require("jsr.operator").decode(assert(fx.read(auth.home
        .. "/data/nats/nsc/stores/OP/accounts/GAMMA/GAMMA.jwt")))).claims.sub
      fx.sh(("mkdir -p %s/jetstream/%s/streams"):format(fx.quote(copy), gamma))
      code, out, err = fx.run("prepare", copy, "--config", preload_only)
      assert.are.equal(0, code, out .. err)
      assert.matches(("jetstream/%s: no JWT of this account, which has no streams: left out of recovery.conf")
        :format(gamma), out, 1, true)
      local text = assert(fx.read(copy .. "/recovery.conf"))
      for _, a in ipairs { auth.accounts.ACME, auth.accounts.BETA, auth.system } do
        assert.matches(('# %s, from %s\n  "%s": "%s"'):format(a.name, preload_only, a.pub, a.jwt), text, 1, true)
      end
    end)

    it("inspect names every account by public key and JWT name, signatures checked", function()
      local code, out, err = fx.run("inspect", store, "--json", "--config", conf)
      assert.are.equal(0, code, err)
      local r = assert(json.decode(out))
      local by = {}
      for _, a in ipairs(r.accounts) do by[a.name] = a end
      assert.are.equal("ACME", by[auth.accounts.ACME.pub].jwt_name)
      assert.are.equal("BETA", by[auth.accounts.BETA.pub].jwt_name)
      assert.are.equal("SYSTEM", by[auth.system.pub].jwt_name)
      assert.is_true(by[auth.system.pub].system_account)
      for _, a in pairs(by) do assert.are.equal("ok", a.signature, a.name) end
      assert.are.equal("OP", r.operator.operator.name)
      assert.are.equal("ok", r.operator.operator.signature)
      for _, s in ipairs(r.streams) do
        assert.are.equal(s.account == auth.accounts.ACME.pub and "ACME" or "BETA", s.account_name, s.name)
      end
      -- a config whose JWTs are only in its (one-line) resolver block's dir,
      -- read for a copy of the store that has no resolver dir of its own
      local copy, dir_only = dir .. "/inspect-copy", dir .. "/dir-only.conf"
      fx.sh(("cp -a %s %s && rm -rf %s/jwt"):format(fx.quote(store), fx.quote(copy), fx.quote(copy)))
      fx.write(dir_only, (assert(fx.read(conf)):gsub("\nresolver_preload: {.-\n}", "")))
      assert.not_matches("eyJ", fx.read(dir_only), 1, true)
      code, out, err = fx.run("inspect", copy, "--json", "--config", dir_only)
      assert.are.equal(0, code, err)
      r = assert(json.decode(out))
      assert.are.same({ dir_only, store .. "/jwt" }, r.operator.looked_in)
      for _, a in ipairs(r.accounts) do
        assert.are.equal(store .. "/jwt/" .. a.name .. ".jwt", a.jwt)
        assert.are.equal("ok", a.signature, a.name)
      end
      -- without the operator's JWT the names still come from the resolver
      -- directory next to jetstream/; the signatures are said not checked
      code, out, err = fx.run("inspect", store)
      assert.are.equal(0, code, err)
      assert.matches(auth.accounts.BETA.pub .. " BETA: JWT " .. store .. "/jwt/", out, 1, true)
      assert.matches("signature not checked", out, 1, true)
    end)

    it("prepare + a standalone server serve every stream, message and consumer position to each account's own user", function()
      local code, out, err = fx.run("prepare", store, "--config", conf)
      assert.are.equal(0, code, out .. err)
      assert.matches("--creds <a user of ACME>.creds", out, 1, true)
      local text = assert(fx.read(store .. "/recovery.conf"))
      assert.matches('operator: "' .. auth.operator_jwt .. '"', text, 1, true)
      assert.matches('system_account: "' .. auth.system.pub .. '"', text, 1, true)
      for _, a in pairs(auth.accounts) do
        assert.matches(('"%s": "%s"'):format(a.pub, a.jwt), text, 1, true)
      end
      -- no user, password or seed is made: nothing secret in the store
      assert.not_matches("password", text, 1, true)
      -- a user seed is a whole 58-character base32 word starting SU; the frontiers keep
      -- it from matching inside an account's public key (A...), which once had "SU" in it
      assert.not_matches("%f[A-Z2-7]SU" .. ("[A-Z2-7]"):rep(56) .. "%f[^A-Z2-7]",
        fx.read(store .. "/recovery-report.json"))
      -- run again: already prepared, nothing changes
      local digest = fx.tree_digest(store)
      code, out, err = fx.run("prepare", store, "--config", conf)
      assert.are.equal(0, code, out .. err)
      assert.matches("already prepared: nothing changed", out, 1, true)
      assert.are.equal(digest, fx.tree_digest(store))
      serves_exactly(server, store, auth, want)
    end)
  end)

  describe("operator mode on nats-server " .. server.version .. ", accounts pushed to the running cluster", function()
    local dir, auth, store, want, conf
    setup(function()
      dir = ns.tmpdir()
      auth, store, conf, want = survivor(server, dir, true)
    end)
    teardown(function() if dir then ns.rmtree(dir) end end)

    it("their JWTs are only in the resolver dir; prepare --config finds them there and the standalone server serves everything", function()
      local text = assert(fx.read(conf))
      for _, a in pairs(auth.accounts) do
        assert.not_matches(a.jwt, text, 1, true)
        assert.are.equal(a.jwt, (assert(fx.read(store .. "/jwt/" .. a.pub .. ".jwt")):gsub("%s+$", "")))
      end
      local code, out, err = fx.run("inspect", store, "--config", conf)
      assert.are.equal(0, code, err)
      assert.matches(auth.accounts.ACME.pub .. " ACME: JWT " .. store .. "/jwt/" .. auth.accounts.ACME.pub
        .. ".jwt, signature ok", out, 1, true)
      code, out, err = fx.run("prepare", store, "--config", conf)
      assert.are.equal(0, code, out .. err)
      local rc = assert(fx.read(store .. "/recovery.conf"))
      for _, a in pairs(auth.accounts) do
        assert.matches(('# %s, from %s/jwt/%s.jwt\n  "%s": "%s"'):format(a.name, store, a.pub, a.pub, a.jwt), rc, 1, true)
      end
      serves_exactly(server, store, auth, want)
    end)
  end)

  describe("operator mode on nats-server " .. server.version .. ", an encrypted store", function()
    local enc = { key = "operator-spec-key-" .. server.version, cipher = "aes" }
    local dir, auth, store, want, conf
    setup(function()
      dir = ns.tmpdir()
      auth, store, conf, want = survivor(server, dir, false, enc)
    end)
    teardown(function() if dir then ns.rmtree(dir) end end)

    it("prepare with the key and the JWTs; the standalone server, given the key, serves everything", function()
      local keyfile = dir .. "/js.key"
      fx.write(keyfile, enc.key .. "\n")
      -- really encrypted: without the key inspect cannot read the meta files
      local code, out, err = fx.run("inspect", store, "--json", "--config", conf)
      assert.are.equal(1, code, err)
      local r = assert(json.decode(out))
      assert.is_true(#r.streams > 0)
      for _, st in ipairs(r.streams) do assert.is_true(st.encrypted, st.name) end
      code, out, err = fx.run("prepare", store, "--config", conf, "--key-file", keyfile)
      assert.are.equal(0, code, out .. err)
      local text = assert(fx.read(store .. "/recovery.conf"))
      assert.matches("key: $JSR_KEY", text, 1, true)
      assert.matches('operator: "' .. auth.operator_jwt .. '"', text, 1, true)
      assert.not_matches(enc.key, text, 1, true)
      serves_exactly(server, store, auth, want, { JSR_KEY = enc.key })
    end)
  end)
end
