-- Blocks a real 2.10+ server wrote with `compression: s2`: verify decodes
-- and checks every record (no longer "unchecked"), finds a damaged byte,
-- and a block rewritten with a record marked deleted (uncompressed, as
-- removal writes it) is loaded by the same server.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local nats = servers.natscli()
if not nats then return end -- servers.lua names what was not built

local function nats_run(url, args, may_fail)
  local parts = { fx.quote(nats), "--server", url }
  for _, a in ipairs(args) do parts[#parts + 1] = fx.quote(a) end
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
  local out = h:read("a")
  local ok = h:close()
  assert(ok or may_fail, ("nats %s: %s"):format(table.concat(args, " "), out))
  return out, ok
end

-- the first release that has compression and the newest
local versions = {}
for _, s in ipairs(servers.all()) do
  local major, minor = s.version:match("^(%d+)%.(%d+)")
  if tonumber(major) == 2 and tonumber(minor) >= 10 and (#versions == 0 or s == servers.newest()) then
    versions[#versions + 1] = s
  end
end

for _, v in ipairs(versions) do
  describe("S2-compressed blocks written by nats-server " .. v.version, function()
    local store, state, srv
    local msgs_dir

    setup(function()
      store = fx.tmpdir()
      srv = ns.start { store_dir = store, bin = v.bin }
      -- max_bytes this small makes the server use its smallest blocks
      -- (32,000 bytes: filestore.go dynBlkSize), so a few KB roll them
      nats_run(srv.url, { "stream", "add", "C", "--subjects", "c.>", "--storage", "file",
        "--compression", "s2", "--max-bytes", "120000", "--defaults" })
      for subject = 1, 3 do
        nats_run(srv.url, { "pub", "c." .. subject, "--count", "40",
          "message {{Count}} " .. ("lorem ipsum {{Count}} "):rep(40) })
      end
      state = assert(json.decode((nats_run(srv.url, { "stream", "info", "C", "--json" })))).state
      srv:stop()
      msgs_dir = store .. "/jetstream/$G/streams/C/msgs"
    end)
    teardown(function()
      if srv then srv:stop() end
      fx.cleanup(store)
    end)

    local function compressed_block()
      for _, b in ipairs(assert(jsr.block_files(store .. "/jetstream/$G/streams/C"))) do
        if fx.read(b.path):sub(1, 3) == "cmp" then return b.path end
      end
    end

    it("are decoded and every record checked: the counts are the server's", function()
      assert.is_true(state.messages > 0)
      assert.is_not_nil(compressed_block(), "the server compressed no block")
      local code, out, err = fx.run("verify", store, "--json")
      assert.are.equal(0, code, err)
      local s = assert(json.decode(out)).streams[1]
      assert.are.equal(0, s.unchecked_blocks)
      assert.is_true(s.compressed_blocks >= 1)
      assert.are.equal(state.messages, s.live)
      assert.are.equal(state.first_seq, s.first_seq)
      assert.are.equal(state.last_seq, s.last_seq)
      assert.are.same({}, s.problems)
    end)

    it("with one byte changed inside the compressed data, are reported corrupt, naming the block", function()
      local path = compressed_block()
      local copy = fx.tmpdir()
      finally(function() fx.cleanup(copy) end)
      fx.sh(("cp -a %s/. %s"):format(fx.quote(store), fx.quote(copy)))
      local target = copy .. path:sub(#store + 1)
      local bytes = fx.read(target)
      local at = #bytes // 2
      fx.write(target, bytes:sub(1, at - 1) .. string.char(bytes:byte(at) ~ 0x5a) .. bytes:sub(at + 1))
      local code, out = fx.run("verify", copy, "--json")
      assert.are.equal(1, code, out)
      local s = assert(json.decode(out)).streams[1]
      assert.is_true(s.corrupt)
      assert.matches(target, s.problems[1].block, 1, true)
      assert.matches("compressed block", s.problems[1].message, 1, true)
    end)

    it("rewritten uncompressed with a record marked deleted, are loaded by the server without it", function()
      local path = compressed_block()
      local name = path:match("(%d+)%.blk$")
      -- the block's second record: one before and after it stay
      local seen, victim, offset = 0, nil, nil
      assert(jsr.scan_block(path, "C-" .. name, { records = function(rec)
        seen = seen + 1
        if seen == 2 then victim, offset = rec.seq, rec.offset; return false end
        return true
      end }))
      assert.is_not_nil(offset)
      local data = assert(jsr.block_mark_deleted(path, { offset }, { key = "C-" .. name }))
      assert.are_not.equal("cmp", data:sub(1, 3))
      fx.write(path, data)
      os.remove(msgs_dir .. "/index.db")
      srv = ns.start { store_dir = store, bin = v.bin }
      local after = assert(json.decode((nats_run(srv.url, { "stream", "info", "C", "--json" })))).state
      assert.are.equal(state.messages - 1, after.messages)
      assert.are.equal(state.last_seq, after.last_seq)
      local _, ok = nats_run(srv.url, { "stream", "get", "C", tostring(victim) }, true)
      assert.is_falsy(ok)
      local got = nats_run(srv.url, { "stream", "get", "C", tostring(victim + 1) })
      assert.matches("message %d+ lorem", got)
      srv:stop()
      srv = nil
    end)
  end)
end

-- Encrypted and compressed: the server compresses, then encrypts the whole
-- block; verify with the key decrypts, then decodes.
local newest = servers.newest()
if newest then
  describe("S2-compressed, encrypted blocks written by nats-server " .. newest.version, function()
    it("are decrypted, decoded and checked with the server's key", function()
      local dir = fx.tmpdir()
      finally(function() fx.cleanup(dir) end)
      local conf, key = dir .. "/nats.conf", "a key for this spec only"
      fx.write(conf, ('jetstream { store_dir: "%s/store", key: "%s", cipher: chacha }\n'):format(dir, key))
      fx.write(dir .. "/key", key)
      local srv = ns.start { config = conf, bin = newest.bin }
      local ok, err = pcall(function()
        nats_run(srv.url, { "stream", "add", "C", "--subjects", "c", "--storage", "file",
          "--compression", "s2", "--max-bytes", "120000", "--defaults" })
        nats_run(srv.url, { "pub", "c", "--count", "120", "message {{Count}} " .. ("lorem ipsum "):rep(40) })
      end)
      srv:stop()
      assert(ok, err)
      local code, out, verr = fx.run("verify", dir .. "/store", "--key-file", dir .. "/key", "--json")
      assert.are.equal(0, code, verr)
      local s = assert(json.decode(out)).streams[1]
      assert.are.equal(120, s.live)
      assert.is_true(s.compressed_blocks >= 1)
      assert.is_true(s.encrypted_blocks >= 2)
      assert.are.equal(0, s.unchecked_blocks)
    end)
  end)
end
