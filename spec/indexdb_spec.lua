-- msgs/index.db (2.10+): stores written by each real server since 2.10
-- (scripts/gen-modern-fixtures.sh: a plain stream and a compressed one with
-- deletes in their oldest and newest blocks, a purged stream, a KV bucket)
-- are counted by verify as the server counts them; without a trusted
-- index.db, as the server's rebuild counts them (tombstones included); a
-- damaged, truncated or newer index.db is named, never taken for
-- corruption or guessed at.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local nats = servers.natscli()
if not nats then return end -- servers.lua names what was not built

-- what each release writes (docs/FORMAT.md "Stream state file")
local VERSION = { ["2.10"] = 1, ["2.11"] = 2, ["2.12"] = 3, ["2.14"] = 4, ["2.15"] = 4 }

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, cmd)
end

local function gen(v, dir)
  local tgz = dir .. "/store.tar.gz"
  sh(("scripts/gen-modern-fixtures.sh %s %s >/dev/null"):format(fx.quote(v.version), fx.quote(tgz)))
  sh(("mkdir -p %s/store && tar -C %s/store -xzf %s"):format(fx.quote(dir), fx.quote(dir), fx.quote(tgz)))
  return dir .. "/store", assert(json.decode(fx.read(dir .. "/store/state.json")))
end

local function verify(store, ...)
  local code, out, err = fx.run("verify", store, "--json", ...)
  local r = assert(json.decode(out), err)
  local by = {}
  for _, s in ipairs(r.streams) do by[s.stream] = s end
  return code, by, err
end

local function hex_bytes(h)
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- the file as the server would write body: body, then its hash
local function sealed(name, body)
  return body .. hex_bytes(jsr.metasum(name, body))
end

local function stream_state(url, name)
  local h = assert(io.popen(("%s --server %s stream info %s --json 2>&1"):format(fx.quote(nats), url, name)))
  local out = h:read("a")
  h:close()
  return assert(json.decode(out), out).state
end

local function idb(store, stream)
  return store .. "/jetstream/$G/streams/" .. stream .. "/msgs/index.db"
end

for _, v in ipairs(servers.all()) do
  local minor = v.version:match("^(%d+%.%d+)")
  if VERSION[minor] then
    describe("msgs/index.db written by nats-server " .. v.version, function()
      local dir, store, state
      setup(function()
        dir = fx.tmpdir()
        store, state = gen(v, dir)
      end)
      teardown(function() fx.cleanup(dir) end)

      it("is read (version " .. VERSION[minor] .. ") and trusted; verify's counts are the server's", function()
        local code, by, err = verify(store)
        assert.are.equal(0, code, err)
        for _, name in ipairs { "PLAIN", "CMP", "PURGED", "KV_CFG" } do
          local s, want = by[name], state[name]
          assert.are.equal(VERSION[minor], s.index_db.version, name)
          assert.is_true(s.index_db.trusted, name)
          assert.are.equal(want.messages, s.live, name)
          assert.are.equal(want.first_seq, s.first_seq, name)
          assert.are.equal(want.last_seq, s.last_seq, name)
          assert.are.equal(want.num_deleted or 0, s.num_deleted, name)
          assert.are.same({}, s.problems, name)
        end
        -- deletes only index.db holds (records left in their blocks)
        assert.are.equal(450, by.PLAIN.records)
        assert.is_true(by.CMP.compressed_blocks >= 1)
      end)

      it("gone, the server's rebuild is counted: every tombstone deletes its message", function()
        local copy = fx.tmpdir()
        finally(function() fx.cleanup(copy) end)
        sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
        for _, name in ipairs { "PLAIN", "CMP", "PURGED" } do assert(os.remove(idb(copy, name))) end
        local code, by, err = verify(copy)
        assert.are.equal(0, code, err)
        local srv = ns.start { store_dir = copy, bin = v.bin }
        finally(function() srv:stop() end)
        for _, name in ipairs { "PLAIN", "CMP", "PURGED" } do
          local want = stream_state(srv.url, name)
          assert.are.equal("absent", by[name].index_db.status)
          assert.are.equal(want.messages, by[name].live, name)
          assert.are.equal(want.first_seq, by[name].first_seq, name)
          assert.are.equal(want.last_seq, by[name].last_seq, name)
          assert.are.equal(want.num_deleted or 0, by[name].num_deleted, name)
        end
      end)

      it("left behind by a SIGKILL (stale), is not trusted; verify counts what the restarted server serves", function()
        local copy = fx.tmpdir()
        finally(function() fx.cleanup(copy) end)
        sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
        local srv = ns.start { store_dir = copy, bin = v.bin }
        local ok, err = pcall(function()
          local function n(...)
            local parts = { fx.quote(nats), "--server", srv.url }
            for _, a in ipairs { ... } do parts[#parts + 1] = fx.quote(a) end
            assert(os.execute(table.concat(parts, " ") .. " >/dev/null 2>&1"), table.concat({ ... }, " "))
          end
          for _, name in ipairs { "PLAIN", "CMP" } do
            n("pub", name:lower() .. ".1", "--count", "40", "late {{Count}}")
            for _, q in ipairs { 10, 470 } do
              n("req", "$JS.API.STREAM.MSG.DELETE." .. name, ('{"seq":%d,"no_erase":true}'):format(q))
            end
          end
        end)
        -- the server's writes reach the files within milliseconds; its
        -- index.db only when it stops, which a SIGKILL prevents
        os.execute("sleep 0.5")
        os.execute("kill -KILL " .. srv.pid)
        srv:stop()
        assert(ok, err)
        local code, by, verr = verify(copy)
        assert.are.equal(0, code, verr)
        srv = ns.start { store_dir = copy, bin = v.bin }
        finally(function() srv:stop() end)
        for _, name in ipairs { "PLAIN", "CMP" } do
          local want = stream_state(srv.url, name)
          assert.is_false(by[name].index_db.trusted, name)
          -- 40 more, 2 fewer than at the SIGTERM that wrote index.db
          assert.are.equal(state[name].messages + 38, want.messages, name .. " (the server)")
          assert.are.equal(want.messages, by[name].live, name)
          assert.are.equal(want.first_seq, by[name].first_seq, name)
          assert.are.equal(want.last_seq, by[name].last_seq, name)
          assert.are.equal(want.num_deleted or 0, by[name].num_deleted, name)
        end
      end)

      it("with a changed byte, is a note (the server rebuilds), not corruption", function()
        local copy = fx.tmpdir()
        finally(function() fx.cleanup(copy) end)
        sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
        local f = idb(copy, "PLAIN")
        local b = fx.read(f)
        fx.write(f, b:sub(1, 9) .. string.char(b:byte(10) ~ 1) .. b:sub(11))
        local code, by, err = verify(copy)
        assert.are.equal(0, code, err)
        local s = by.PLAIN
        assert.are.equal("checksum", s.index_db.status)
        assert.are.equal(1, #s.problems)
        assert.are.equal("index", s.problems[1].kind)
        assert.is_false(s.problems[1].corrupt)
        assert.matches("index.db: its checksum", s.problems[1].message, 1, true)
        assert.are.equal(state.PLAIN.messages, s.live) -- from the blocks and their tombstones
      end)
    end)
  end
end

local newest = servers.newest()
if newest and VERSION[newest.version:match("^(%d+%.%d+)")] then
  describe("msgs/index.db, crafted from one nats-server " .. newest.version .. " wrote", function()
    local dir, store, body
    setup(function()
      dir = fx.tmpdir()
      store = gen(newest, dir)
      local b = fx.read(idb(store, "PLAIN"))
      body = b:sub(1, -9)
    end)
    teardown(function() fx.cleanup(dir) end)

    local function with(bytes, fn)
      local copy = fx.tmpdir()
      sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
      fx.write(idb(copy, "PLAIN"), bytes)
      local ok, err = pcall(fn, copy)
      fx.cleanup(copy)
      assert(ok, err)
    end

    it("of a version newer than any known is named, and its deletes are not guessed at", function()
      with(sealed("PLAIN", body:sub(1, 1) .. string.char(5) .. body:sub(3)), function(copy)
        local code, by, err = verify(copy)
        assert.are.equal(0, code, err)
        local s = by.PLAIN
        assert.are.equal("newer", s.index_db.status)
        assert.are.equal(5, s.index_db.version)
        assert.are.equal("newer", s.problems[1].kind)
        assert.matches("index.db version 5 is newer than js-recover knows (newest known: 4, nats-server 2.15.3)",
          s.problems[1].message, 1, true)
        assert.is_false(s.corrupt)
      end)
    end)

    it("cut short (its checksum right) is malformed at a named byte, not corrupt", function()
      with(sealed("PLAIN", body:sub(1, 40)), function(copy)
        local code, by, err = verify(copy)
        assert.are.equal(0, code, err)
        local s = by.PLAIN
        assert.are.equal("malformed", s.index_db.status)
        assert.matches("msgs/index.db: [%w ']+ at byte %d+: the state file is malformed", s.problems[1].message)
        assert.is_false(s.corrupt)
      end)
    end)

    it("of a stream whose newest block was emptied, still gives blocks.tail the last sequence", function()
      local copy = fx.tmpdir()
      finally(function() fx.cleanup(copy) end)
      sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
      local p = copy .. "/jetstream/$G/streams/PURGED"
      for _, b in ipairs(assert(jsr.block_files(p))) do fx.write(b.path, "") end
      local script = copy .. "/tail.lua"
      fx.write(script, 'local t = require("jsr.blocks").tail{ name = "PURGED", account = "$G", path = ... }\n' ..
        'io.write(t.last_seq, " ", tostring(t.index_db_last), "\\n")\n')
      local code, out, err = fx.run("run", script, p)
      assert.are.equal(0, code, err)
      assert.are.equal("20 true\n", out)
      -- the server agrees (2.10.27 does only when it noticed lost data)
      local srv = ns.start { store_dir = copy, bin = newest.bin }
      finally(function() srv:stop() end)
      assert.are.equal(20, stream_state(srv.url, "PURGED").last_seq)
    end)
  end)

  describe("msgs/index.db of an encrypted store written by nats-server " .. newest.version, function()
    it("is opened with the server's key (the stream's meta.key) and its deletes counted; without it, unchecked", function()
      local dir = fx.tmpdir()
      finally(function() fx.cleanup(dir) end)
      local conf, key = dir .. "/nats.conf", "a key for this spec only"
      fx.write(conf, ('jetstream { store_dir: "%s/store", key: "%s", cipher: aes }\n'):format(dir, key))
      fx.write(dir .. "/key", key)
      local srv = ns.start { config = conf, bin = newest.bin }
      local want
      local ok, err = pcall(function()
        local function n(...)
          local parts = { fx.quote(nats), "--server", srv.url }
          for _, a in ipairs { ... } do parts[#parts + 1] = fx.quote(a) end
          assert(os.execute(table.concat(parts, " ") .. " >/dev/null 2>&1"))
        end
        n("stream", "add", "E", "--subjects", "e", "--storage", "file", "--defaults")
        n("pub", "e", "--count", "30", "message {{Count}}")
        for _, q in ipairs { 3, 30 } do
          n("req", "$JS.API.STREAM.MSG.DELETE.E", ('{"seq":%d,"no_erase":true}'):format(q))
        end
        want = stream_state(srv.url, "E")
      end)
      srv:stop()
      assert(ok, err)
      local code, by, verr = verify(dir .. "/store", "--key-file", dir .. "/key")
      assert.are.equal(0, code, verr)
      assert.is_true(by.E.index_db.trusted)
      assert.are.equal(want.messages, by.E.live)
      assert.are.equal(28, want.messages)
      code, by, verr = verify(dir .. "/store")
      assert.are.equal(0, code, verr)
      assert.are.equal("sealed", by.E.index_db.status)
    end)
  end)
end

-- Not index.db's doing but found with it: 2.10.27 erases a record of a
-- compressed block by writing it at its uncompressed offset into the
-- compressed file (filestore.go eraseMsg), which breaks the block for the
-- server as much as for verify.
for _, v in ipairs(servers.all()) do
  if v.version == "2.10.27" then
    describe("a secure erase in a compressed block on nats-server " .. v.version, function()
      it("breaks the block: verify reports it corrupt, and the server no longer finds its messages", function()
        local dir = fx.tmpdir()
        finally(function() fx.cleanup(dir) end)
        local srv = ns.start { store_dir = dir, bin = v.bin }
        local function n(...)
          local parts = { fx.quote(nats), "--server", srv.url }
          for _, a in ipairs { ... } do parts[#parts + 1] = fx.quote(a) end
          local h = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
          local out = h:read("a")
          return out, h:close()
        end
        local ok, err = pcall(function()
          assert(select(2, n("stream", "add", "C", "--subjects", "c", "--storage", "file", "--compression", "s2",
            "--max-bytes", "120000", "--defaults")))
          assert(select(2, n("pub", "c", "--count", "450", "message {{Count}} " .. ("lorem ipsum "):rep(12))))
          assert(select(2, n("stream", "rmm", "C", "5", "-f")))
        end)
        srv:stop()
        assert(ok, err)
        local blk = dir .. "/jetstream/$G/streams/C/msgs/1.blk"
        assert.are.equal("cmp", fx.read(blk):sub(1, 3))
        local code, by = verify(dir)
        assert.are.equal(1, code)
        assert.is_true(by.C.corrupt)
        local named = false
        for _, p in ipairs(by.C.problems) do named = named or (p.corrupt and p.block == blk) end
        assert.is_true(named)
        srv = ns.start { store_dir = dir, bin = v.bin }
        local out, got = n("stream", "get", "C", "7")
        srv:stop()
        assert.is_falsy(got)
        assert.matches("no message found", out, 1, true)
      end)
    end)
  end
end
