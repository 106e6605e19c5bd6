-- Nothing recovered is deleted by age or inactivity: a real server writes a
-- stream with a short max_age, a KV-shaped bucket with a short TTL and a
-- durable consumer with a short inactive_threshold, is stopped before any of
-- them expire, and the store is left to age past them (so the spec makes its
-- own old data and passes on any date).  Then, with the same server version:
--   inspect counts every message past max_age and names the consumer;
--   prepare (default) -> the standalone server serves every message and
--     keeps the consumer past its threshold;
--   prepare --keep-age-limits -> the server expires them, as it would have.
local json = require("jsr").json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local MAX_AGE_MS = 4000
local INACTIVE_MS = 1500

local function sleep(s) os.execute(("sleep %.3f"):format(s)) end
local function monotime() return require("jsr").monotime() end

-- cp -a, or (plain) cp -r, which gives every file the copy's time: what
-- was past max_age before the survivor stopped is judged by the messages'
-- own timestamps, not by file times
local function copy(src, plain)
  local dst = fx.tmpdir()
  fx.sh(("cp %s %s/. %s/"):format(plain and "-r" or "-a", fx.quote(src), fx.quote(dst)))
  return dst
end

local function served(store, server, wait)
  local srv = ns.start { config = store .. "/recovery.conf", bin = server.bin }
  local ok, res = pcall(function()
    if wait then sleep(wait) end
    return ns.jscheck(srv).streams
  end)
  srv:stop()
  assert(ok, res)
  return res
end

for _, server in ipairs(servers.fast()) do
  describe("deletion by time on nats-server " .. server.version, function()
    local aged -- a store whose data is past its limits, never written again

    setup(function()
      aged = fx.tmpdir()
      local srv = ns.start { store_dir = aged, bin = server.bin }
      local ok, err = pcall(function()
        ns.jspub(srv, { stream = "AGED", subjects = { "aged.a", "aged.b" }, count = 100,
          max_age_ms = MAX_AGE_MS, consumer = "worker", ack = 10, inactive_threshold_ms = INACTIVE_MS })
        -- a KV bucket's TTL is its stream's max_age
        ns.jspub(srv, { stream = "KV_cfg", subjects = { "$KV.cfg.k1", "$KV.cfg.k2" }, count = 20,
          max_age_ms = MAX_AGE_MS })
      end)
      local published = monotime()
      srv:stop()
      assert(ok, err)
      assert(monotime() - published < MAX_AGE_MS / 1000 - 1,
        "the server took too long to stop: its own expiry may have run")
      -- past max_age (and so past the consumer's threshold too)
      sleep(MAX_AGE_MS / 1000 - (monotime() - published) + 0.5)
    end)
    teardown(function() fx.cleanup(aged) end)

    it("inspect counts the messages past max_age and names the consumer deleted for inactivity", function()
      local code, out, err = fx.run("inspect", aged, "--json")
      assert.are.equal(0, code, err)
      local r = assert(json.decode(out))
      local by = {}
      for _, s in ipairs(r.streams) do by[s.name] = s end
      assert.are.equal(100, by.AGED.past_max_age)
      assert.are.equal(20, by.KV_cfg.past_max_age)
      assert.are.equal(MAX_AGE_MS * 1000000, by.AGED.max_age)
      local worker = by.AGED.consumers[1]
      assert.are.equal("worker", worker.name)
      assert.are.equal(INACTIVE_MS * 1000000, worker.expires.after)
      code, out = fx.run("inspect", aged)
      assert.are.equal(0, code)
      assert.matches("max_age 4s: 100 past", out, 1, true)
      assert.matches("max_age 4s: 20 past", out, 1, true)
      assert.matches("deleted after idle 1.5s", out, 1, true)
    end)

    it("prepare suspends them by default: every message and the consumer survive the standalone start", function()
      local store = copy(aged, "plain")
      finally(function() fx.cleanup(store) end)
      -- an ephemeral consumer persisted on disk (file storage keeps them):
      -- the worker's copy without a durable name
      local obs = store .. "/jetstream/$G/streams/AGED/obs"
      fx.sh(("cp -a %s %s"):format(fx.quote(obs .. "/worker"), fx.quote(obs .. "/eph")))
      local jsr = require "jsr"
      local ecfg = assert(jsr.read_meta(obs .. "/eph"))
      ecfg.durable_name, ecfg.name = nil, nil
      assert(fx.change(store, "write_meta", obs .. "/eph", ecfg))
      local code, out, err = fx.run("prepare", store)
      assert.are.equal(0, code, err)
      assert.matches("restoring AGED with max_age 4s deletes its 100 messages older than 4s at once", out, 1, true)
      assert.matches("restoring KV_cfg with max_age 4s deletes its 20 messages", out, 1, true)
      assert.matches("consumer worker inactive_threshold 1.5s", out, 1, true)
      assert.matches("consumer eph ephemeral (kept as a durable of that name)", out, 1, true)
      local r = assert(json.decode(fx.read(store .. "/recovery-report.json")))
      for _, s in ipairs(r.streams) do
        assert.are.equal("suspended", s.age_limits)
        assert.are.equal(MAX_AGE_MS * 1000000, s.original.max_age)
        if s.name == "AGED" then
          assert.are.equal(INACTIVE_MS * 1000000, s.original.consumers[1].original.inactive_threshold)
        end
      end
      -- past the consumer's threshold, and past the server's expiry timer
      local streams = served(store, server, INACTIVE_MS / 1000 * 2)
      assert.are.equal(100, streams.AGED.messages)
      assert.are.equal(20, streams.KV_cfg.messages)
      assert.are.equal(10, streams.AGED.consumers.worker.ack_floor_stream_seq)
      assert.are.equal(10, streams.AGED.consumers.eph.ack_floor_stream_seq)
      -- a second run finds nothing left to change
      code, out = fx.run("prepare", store)
      assert.are.equal(0, code)
      assert.matches("already prepared: nothing changed", out, 1, true)
    end)

    it("removes what was already past max_age when the survivor last wrote, and undo brings it back", function()
      local store = copy(aged)
      finally(function() fx.cleanup(store) end)
      -- the survivor lived on past max_age: it stored a message in another
      -- stream after every message of these had expired (its server had
      -- removed them in memory; 2.9.10 leaves the records on disk when it
      -- dies before writing that down)
      local srv = ns.start { store_dir = fx.tmpdir(), bin = server.bin }
      local ok, perr = pcall(ns.jspub, srv, { stream = "LATER", count = 1 })
      srv:stop()
      assert(ok, perr)
      fx.sh(("cp -a %s %s"):format(fx.quote(srv.store_dir .. "/jetstream/$G/streams/LATER"),
        fx.quote(store .. "/jetstream/$G/streams/")))
      fx.cleanup(srv.store_dir)
      local before = fx.tree_digest(store)
      local code, out, err = fx.run("prepare", store)
      assert.are.equal(0, code, err)
      assert.matches("remove 100 message(s) from " .. store .. "/jetstream/$G/streams/AGED/msgs/1.blk", out, 1, true)
      assert.matches("remove 20 message(s) from", out, 1, true)
      -- what is removed stays removed, and nothing more goes on a re-run
      local again
      code, again = fx.run("prepare", store)
      assert.are.equal(0, code)
      assert.matches("already prepared: nothing changed", again, 1, true)
      local streams = served(store, server)
      assert.are.equal(0, streams.AGED.messages)
      assert.are.same({ 101, 100 }, { streams.AGED.first_seq, streams.AGED.last_seq }, require("jsr").json.encode(streams.AGED))
      assert.are.equal(100, streams.AGED.last_seq)
      assert.are.equal(0, streams.KV_cfg.messages)
      -- the consumer is kept, at its position
      assert.are.equal(10, streams.AGED.consumers.worker.ack_floor_stream_seq)
      code, _, err = fx.run("undo", store)
      assert.are.equal(0, code, err)
      assert.are.equal(before, fx.tree_digest(store))
    end)

    it("prepare --keep-age-limits leaves them, and the server deletes what is past them", function()
      local store = copy(aged)
      finally(function() fx.cleanup(store) end)
      local code, _, err = fx.run("prepare", store, "--keep-age-limits")
      assert.are.equal(0, code, err)
      local r = assert(json.decode(fx.read(store .. "/recovery-report.json")))
      for _, s in ipairs(r.streams) do assert.are.equal("kept", s.age_limits) end
      local streams = served(store, server, INACTIVE_MS / 1000 * 2)
      assert.are.equal(0, streams.AGED.messages)
      assert.are.equal(0, streams.KV_cfg.messages)
      assert.is_nil(streams.AGED.consumers.worker)
    end)
  end)
end
