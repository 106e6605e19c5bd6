-- Encrypted stores (jetstream { key, cipher }): both ciphers the server
-- writes, recovered exactly with the key; refused cleanly without it.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local function keyfile(dir, key)
  local p = dir .. "/key"
  fx.write(p, key .. "\n") -- a trailing newline, as echo writes it
  return p
end

-- what fixtures/README.md lists for each encrypted store
local CASES = {
  { tarball = "survivor-encrypted-chacha-2.9.10.tar.gz", key = "recovery-drill-key", cipher = "chacha",
    stream = "VAULT", count = 200, payload = "secret-%d", consumer = "reader", acked = 50 },
  { tarball = "standalone-encrypted-aes-2.9.10.tar.gz", key = "s3cr3t-key", cipher = "aes",
    stream = "SECRET", count = 10, payload = "m-%d", consumer = "c1", acked = nil },
}

for _, c in ipairs(CASES) do
  describe(("an encrypted store (%s)"):format(c.cipher), function()
    local store, kdir
    before_each(function()
      store = fx.unpack(c.tarball)
      kdir = fx.tmpdir()
    end)
    after_each(function()
      fx.cleanup(store)
      fx.cleanup(kdir)
    end)

    it("is prepared with the key and served exactly by a server given the same key", function()
      local code, out, err = fx.run("prepare", store, "--key-file", keyfile(kdir, c.key))
      assert.are.equal(0, code, err)
      assert.matches('JSR_KEY="$(cat', out, 1, true)
      local conf = fx.read(store .. "/recovery.conf")
      assert.matches("key: $JSR_KEY\n  cipher: " .. c.cipher, conf, 1, true)
      assert.is_nil(conf:find(c.key, 1, true)) -- the key is not written down
      -- the meta files stay encrypted, under the same meta.key
      local sdir = store .. "/jetstream/$G/streams/" .. c.stream
      assert.is_nil(fx.read(sdir .. "/meta.inf"):find('"num_replicas"', 1, true))

      local srv = ns.start { config = store .. "/recovery.conf", env = { JSR_KEY = c.key } }
      finally(function() srv:stop() end)
      local s = ns.jscheck(srv).streams[c.stream]
      assert.are.equal(c.count, s.messages)
      assert.are.equal(1, s.replicas)
      local want = {}
      for i = 0, c.count - 1 do want[ns.sha256(c.payload:format(i))] = true end
      local got = 0
      for _, m in ipairs(ns.jscheck(srv, { messages = c.stream }).messages) do
        assert.is_true(want[m.sha256], "unexpected payload at seq " .. m.seq)
        got = got + 1
      end
      assert.are.equal(c.count, got)
      local cons = s.consumers[c.consumer]
      assert.is_not_nil(cons)
      if c.acked then assert.are.equal(c.acked, cons.ack_floor_stream_seq) end
      for line in srv:log():gmatch("[^\n]+") do
        assert.is_nil(line:match("%[ERR%]"), line)
      end
    end)

    it("verify decrypts and checks every block with the key, and reports them without it", function()
      local code, out, err = fx.run("verify", store, "--json", "--key-file", keyfile(kdir, c.key))
      assert.are.equal(0, code, err)
      local s = assert(json.decode(out)).streams[1]
      assert.are.same({ c.count, c.count, 1, c.count, 0 },
        { s.records, s.live, s.first_seq, s.last_seq, #s.problems })
      assert.is_true(s.encrypted_blocks > 0)
      code, out = fx.run("run", "scripts/dump.lua", store, c.stream, "1", "1", "--key-file", keyfile(kdir, c.key))
      assert.are.equal(0, code)
      assert.matches("\n  " .. c.payload:format(0) .. "\n", out, 1, true)
      code, out = fx.run("verify", store, "--json")
      assert.are.equal(0, code)
      s = assert(json.decode(out)).streams[1]
      assert.are.equal("unchecked", s.problems[1].kind)
      assert.matches("give the server's key", s.problems[1].message, 1, true)
    end)

    it("takes the key from JSR_KEY and can read with the previous key", function()
      local wrong, right = kdir .. "/wrong", kdir .. "/right"
      fx.write(wrong, "not-the-key")
      fx.write(right, c.key)
      local code, out = fx.run("inspect", store, "--json", "--key-file", wrong, "--prev-key-file", right)
      assert.are.equal(0, code)
      local r = assert(json.decode(out))
      assert.are.equal(0, #r.problems, out)
      local h = io.popen(("JSR_KEY=%s %s inspect %s --json"):format(fx.quote(c.key), fx.quote(fx.BIN),
        fx.quote(store)))
      r = assert(json.decode(h:read("a")))
      h:close()
      assert.are.equal(0, #r.problems)
      assert.are.equal(c.stream, r.streams[1].name)
      assert.is_true(r.streams[1].encrypted)
    end)

    it("without the key: inspect lists what is encrypted, prepare refuses and changes nothing", function()
      local before = fx.tree_digest(store)
      local code, out = fx.run("inspect", store)
      assert.are.equal(1, code)
      assert.matches(c.stream, out, 1, true)
      assert.matches("encrypted; give the server's key with --key-file or JSR_KEY", out, 1, true)
      local err
      code, _, err = fx.run("prepare", store)
      assert.are.equal(1, code)
      assert.matches("nothing changed", err, 1, true)
      assert.are.equal(before, fx.tree_digest(store))
    end)

    local broken = {
      { "a wrong key", function() end, "not-the-key", "neither key opens it" },
      { "a truncated meta.key", function(d)
          fx.write(d .. "/meta.key", fx.read(d .. "/meta.key"):sub(1, 40)) end, nil, "neither key opens it" },
      { "tampered ciphertext", function(d)
          local t = fx.read(d .. "/meta.inf")
          local i = #t // 2
          fx.write(d .. "/meta.inf", t:sub(1, i) .. string.char(t:byte(i + 1) ~ 1) .. t:sub(i + 2))
        end, nil, "does not authenticate" },
    }
    for _, b in ipairs(broken) do
      it(("with %s: a clear error naming the file, and the tree unchanged"):format(b[1]), function()
        local sdir = store .. "/jetstream/$G/streams/" .. c.stream
        b[2](sdir)
        local before = fx.tree_digest(store)
        local code, _, err = fx.run("prepare", store, "--key-file", keyfile(kdir, b[3] or c.key))
        assert.are.equal(1, code)
        assert.matches(sdir, err, 1, true)
        assert.matches(b[4], err, 1, true)
        assert.are.equal(before, fx.tree_digest(store))
      end)
    end
  end)
end
