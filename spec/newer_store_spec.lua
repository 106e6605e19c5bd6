-- A store written by a nats-server newer than js-recover knows: inspect
-- names each sign of it where it is (an index.db version, meta.inf fields,
-- an API level, unknown files, a block's compression), prepare refuses to
-- change it without --allow-newer, and what the known servers really write
-- (2.10.27 and 2.15.3 fixtures; thw.db, sched.db, sources.db from a real
-- 2.15.3) is never taken for it.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local TAIL = " — written by a nats-server newer than js-recover knows (newest known 2.15.3)"
local STREAMS = "/jetstream/$G/streams/"

local function inspect(store)
  local code, out, err = fx.run("inspect", store, "--json")
  local r = assert(json.decode(out), err)
  return code, r.newer, r
end

local function hex_bytes(h)
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- meta.inf rewritten with a changed config, its meta.sum made right again
local function rewrite_meta(dir, sum_key, edit)
  local cfg = assert(json.decode(fx.read(dir .. "/meta.inf")))
  edit(cfg)
  local bytes = json.encode(cfg)
  fx.write(dir .. "/meta.inf", bytes)
  fx.write(dir .. "/meta.sum", jsr.metasum(sum_key, bytes))
end

describe("the stores known servers write", function()
  for _, f in ipairs { "modern-2.10.27.tar.gz", "modern-2.15.3.tar.gz" } do
    it("(" .. f .. ") show no sign of a newer server", function()
      local dir = fx.unpack(f)
      finally(function() fx.cleanup(dir) end)
      local code, newer, r = inspect(dir)
      assert.are.equal(0, code)
      assert.are.same({}, newer)
      assert.are.same({}, r.problems)
    end)
  end

  local newest = servers.newest()
  local nats = servers.natscli()
  if newest and nats and newest.version == "2.15.3" then
    it("nor does what only 2.11+ write (thw.db, sched.db, sources.db), shown here to be written by 2.15.3", function()
      local dir = fx.tmpdir()
      finally(function() fx.cleanup(dir) end)
      local srv = ns.start { store_dir = dir, bin = newest.bin }
      local ok, err = pcall(function()
        local function n(...)
          local parts = { fx.quote(nats), "--server", srv.url }
          for _, a in ipairs { ... } do parts[#parts + 1] = fx.quote(a) end
          assert(os.execute(table.concat(parts, " ") .. " >/dev/null 2>&1"), table.concat({ ... }, " "))
        end
        n("stream", "add", "T", "--subjects", "t.>", "--storage", "file", "--allow-msg-ttl", "--defaults")
        n("pub", "t.x", "m", "-H", "Nats-TTL:1h")
        n("stream", "add", "SCH", "--subjects", "sch.>", "--storage", "file", "--allow-schedules", "--defaults")
        n("pub", "sch.s", "m", "-H", "Nats-Schedule:@every 1h", "-H", "Nats-Schedule-Target:sch.t")
        n("stream", "add", "SRC", "--storage", "file", "--source", "T", "--defaults")
      end)
      srv:stop()
      assert(ok, err)
      assert.is_not_nil(jsr.lstat(dir .. STREAMS .. "T/msgs/thw.db"))
      assert.is_not_nil(jsr.lstat(dir .. STREAMS .. "SCH/msgs/sched.db"))
      assert.is_not_nil(jsr.lstat(dir .. STREAMS .. "SRC/sources.db"))
      local code, newer = inspect(dir)
      assert.are.equal(0, code)
      assert.are.same({}, newer)
    end)
  end
end)

describe("a 2.15.3 store changed the way a newer server might write it", function()
  local dir
  before_each(function() dir = fx.unpack("modern-2.15.3.tar.gz") end)
  after_each(function() fx.cleanup(dir) end)
  local plain = function() return dir .. STREAMS .. "PLAIN" end

  local function only(newer, path, what)
    assert.are.equal(1, #newer, json.encode(newer))
    assert.are.equal(path, newer[1].path)
    assert.are.equal(path .. ": " .. what .. TAIL, newer[1].message)
  end

  it("names an index.db version above 4", function()
    local f = plain() .. "/msgs/index.db"
    local body = fx.read(f):sub(1, -9)
    body = body:sub(1, 1) .. string.char(5) .. body:sub(3)
    fx.write(f, body .. hex_bytes(jsr.metasum("PLAIN", body)))
    local _, newer = inspect(dir)
    only(newer, f, "index.db version 5 (newest known 4)")
  end)

  it("names a stream config field 2.15.3 does not have", function()
    rewrite_meta(plain(), "PLAIN", function(cfg) cfg.allow_time_travel = true end)
    local _, newer = inspect(dir)
    only(newer, plain() .. "/meta.inf", "stream config field allow_time_travel unknown to nats-server 2.15.3")
  end)

  it("names fields 2.15.3 does not have inside the objects of a stream config", function()
    rewrite_meta(plain(), "PLAIN", function(cfg)
      cfg.placement = { cluster = "c1", tags = { "a" }, preferred = "n1", spread = true }
      cfg.sources = { { name = "CMP", subject_transforms = { { src = "a", dest = "b", weight = 1 } } } }
    end)
    local _, newer = inspect(dir)
    only(newer, plain() .. "/meta.inf",
      "stream config fields placement.spread, sources[1].subject_transforms[1].weight unknown to nats-server 2.15.3")
  end)

  it("names a consumer config field 2.15.3 does not have", function()
    rewrite_meta(plain() .. "/obs/WORK", "PLAIN/WORK", function(cfg) cfg.priority_weights = { 1, 2 } end)
    local _, newer = inspect(dir)
    only(newer, plain() .. "/obs/WORK/meta.inf", "consumer config field priority_weights unknown to nats-server 2.15.3")
  end)

  it("names a required API level above 5, and takes 5 for known", function()
    rewrite_meta(plain(), "PLAIN", function(cfg) cfg.metadata["_nats.req.level"] = "6" end)
    rewrite_meta(dir .. STREAMS .. "CMP", "CMP", function(cfg) cfg.metadata["_nats.req.level"] = "5" end)
    local _, newer = inspect(dir)
    only(newer, plain() .. "/meta.inf", 'requires JetStream API level 6 (metadata "_nats.req.level"; newest known 5)')
  end)

  it("names files and directories it does not know, in a stream, msgs/ and a consumer", function()
    fx.write(plain() .. "/wal.db", "x")
    fx.write(plain() .. "/msgs/1.cidx", "x")
    fx.write(plain() .. "/obs/WORK/o.hist", "x")
    local _, newer = inspect(dir)
    local msgs = {}
    for _, f in ipairs(newer) do msgs[#msgs + 1] = f.message end
    table.sort(msgs)
    assert.are.same({
      plain() .. "/msgs/1.cidx: a file js-recover does not know in msgs/" .. TAIL,
      plain() .. "/obs/WORK/o.hist: an entry js-recover does not know in a consumer directory" .. TAIL,
      plain() .. "/wal.db: an entry js-recover does not know in a stream directory" .. TAIL,
    }, msgs)
  end)

  it("names a consumer state (o.dat) of a version above 2", function()
    local f = plain() .. "/obs/WORK/o.dat"
    local b = fx.read(f)
    assert.are.equal("\22\2", b:sub(1, 2))
    fx.write(f, "\22\3" .. b:sub(3))
    local _, newer = inspect(dir)
    only(newer, f, "consumer state version 3 (known: 1, 2)")
  end)

  it("names a block compressed with an algorithm other than s2", function()
    local blk
    for _, b in ipairs(jsr.block_files(dir .. STREAMS .. "CMP")) do
      if fx.read(b.path):sub(1, 3) == "cmp" then blk = b.path break end
    end
    local data = fx.read(blk)
    fx.write(blk, "cmp" .. string.char(2) .. data:sub(5))
    local _, newer = inspect(dir)
    only(newer, blk, "compressed with algorithm 2 (known: 1, s2)")
  end)

  it("makes prepare refuse (nothing changed) unless --allow-newer", function()
    fx.write(plain() .. "/wal.db", "x")
    local before = fx.tree_digest(dir)
    local code, _, err = fx.run("prepare", dir)
    assert.are.equal(1, code)
    assert.matches("nothing changed: this store was written by a nats-server newer than js-recover knows", err, 1, true)
    assert.matches("wal.db: an entry js-recover does not know", err, 1, true)
    assert.are.equal(before, fx.tree_digest(dir))
    code, _, err = fx.run("prepare", dir, "--allow-newer")
    assert.are.equal(0, code, err)
    assert.matches("warning: this store was written by a nats-server newer", err, 1, true)
    assert.is_not_nil(jsr.lstat(plain() .. "/wal.db")) -- what it does not know, it leaves
  end)
end)
