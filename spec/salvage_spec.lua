-- Salvage from the Raft logs (jsr/salvage.lua, prepare's `salvage` hook),
-- against real servers: a 3-node 2.9.10 cluster takes traffic, every node
-- is SIGKILLed (so no shutdown snapshot compacts the logs), and in a copy
-- of one node's store the stream store is cut back behind its log and a
-- consumer's o.dat is set back to an older state.  After prepare, the
-- standalone server must serve every message and the exact consumer
-- position the cluster had.
local jsr = require "jsr"
local json = jsr.json
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"

local BIN = os.getenv("JSR_BIN") or "build/js-recover"
local q = cluster.quote

local function sh(cmd) assert(os.execute(cmd), cmd) end

local function js_recover(...)
  return cluster.run({ BIN, ... })
end

-- The meta state of the store's Raft groups: {sys, streams by name}
local function groups(store)
  local js = store .. "/jetstream"
  for _, name in ipairs(jsr.listdir(js) or {}) do
    local sys = js .. "/" .. name .. "/_js_"
    if jsr.lstat(sys .. "/_meta_") then
      local st = raft.meta_state(sys .. "/_meta_")
      local by = {}
      for _, s in pairs(st.streams) do by[s.name] = s end
      return sys, by
    end
  end
end

-- the stream's blocks cut back to sequences <= keep, ending in a crash's
-- partial record
local cutstore = require "spec.support.cutstore"
local function cut_store(sdir, name, keep) return cutstore(sdir, name, "ACME", keep, { torn = "load.a" }) end

describe("salvage from the Raft logs (real 2.9.10 cluster)", function()
  local dir, c, copy, served, before, prep_out, report, srv_log, verify_out, verify_code
  local cut = {}
  local err

  setup(function()
    dir = ns.tmpdir()
    local ok, e = pcall(function()
      c = cluster.start { dir = dir }
      local urls = c:urls(2)
      cluster.jsload(urls, "ACME", "setup", "--account", "ACME", "--workload", "traffic", "--timeout-ms", "10000")
      cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
      local creds = cluster.USERS.ACME
      local code, out, terr = cluster.run { cluster.JSLOAD, "--url", table.concat(urls, ","), "--user",
        creds.user, "--password", creds.password, "--timeout-ms", "2000", "traffic", "--duration-ms", "1500",
        "--out", dir .. "/records.txt", "--pub", "LOAD:load.a", "--sub", "LOAD:reader" }
      assert(code == 0, terr .. out)
      cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
      cluster.sleep(0.5) -- o.dat is flushed at most every 100 ms
      before = cluster.jsload(urls, "ACME", "dump", "--timeout-ms", "10000")
      -- every node at once, so none writes a shutdown snapshot
      for i = 1, 3 do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
      for i = 1, 3 do c:kill(i, "KILL") end
      copy = dir .. "/copy"
      sh(("cp -a %s %s"):format(q(c.nodes[2].store_dir), q(copy)))
      local sys, by = groups(copy)
      assert(sys, "no _js_ in the copy")
      local sdir = copy .. "/jetstream/ACME/streams/LOAD"
      -- the first stream sequence the log still holds
      local first_in_log
      raft.log(sys .. "/" .. by.LOAD.group.name, function(_, ae)
        for _, en in ipairs(ae.entries) do
          if en.type == raft.NORMAL and (en.data:byte(1) == 4 or en.data:byte(1) == 14) then
            local m = assert(raft.stream_msg(en.data))
            first_in_log = first_in_log or (m.lseq + 1)
          end
        end
      end)
      local last = blocks.scan({ name = "LOAD", path = sdir, account = "ACME" }).last_seq
      cut.keep = math.max(first_in_log - 1, last - 60)
      cut.last = last
      cut.kept = cut_store(sdir, "LOAD", cut.keep)
      -- o.dat set back to the consumer group's snapshot, or to nothing
      local odat = sdir .. "/obs/reader/o.dat"
      cut.odat = assert(raft.consumer_state(assert(cluster.read_file(odat))))
      local snap = raft.latest_snapshot(sys .. "/" .. by.LOAD.consumers.reader.group.name)
      local old = snap and assert(raft.consumer_state(snap.data))
        or { ack_floor = { consumer = 0, stream = 0 }, delivered = { consumer = 0, stream = 0 },
             pending = {}, redelivered = {} }
      cut.old_floor = old.ack_floor.stream
      cluster.write_file(odat, jsr.odat.encode(old))

      local pcode, pout, perr = js_recover("prepare", copy)
      assert(pcode == 0, perr .. pout)
      prep_out = pout
      report = assert(json.decode(cluster.read_file(copy .. "/recovery-report.json")))
      verify_code, verify_out = js_recover("verify", copy)
      srv_log = dir .. "/standalone.log"
      local srv = ns.start { config = copy .. "/recovery.conf", log_path = srv_log, timeout = 60 }
      local rok, rerr = pcall(function()
        local a = report.accounts[1]
        for _, x in ipairs(report.accounts) do if x.name == "ACME" then a = x end end
        served = cluster.jsload(srv.url, { user = a.user, password = a.password }, "dump", "--timeout-ms", "10000")
      end)
      srv:stop()
      assert(rok, rerr)
    end)
    if not ok then err = tostring(e) .. " (kept in " .. dir .. ")" end
  end)

  teardown(function()
    if c then c:stop_all() end
    if not err then ns.rmtree(dir) end
  end)

  it("cut the store behind its log and set o.dat back (the situation is there)", function()
    assert.is_nil(err, err)
    assert.is_true(cut.last > cut.keep, ("store last %d, kept %d"):format(cut.last, cut.keep))
    assert.is_true(cut.odat.ack_floor.stream > cut.old_floor,
      ("o.dat floor %d, set back to %d"):format(cut.odat.ack_floor.stream, cut.old_floor))
  end)

  it("prepare appends the log tail and applies the consumer updates, and says so", function()
    assert.is_nil(err, err)
    assert.matches(("salvage: stream ACME > LOAD: log ahead of the store by %d message(s); append seq %d-%d to ")
      :format(cut.last - cut.keep, cut.keep + 1, cut.last), prep_out, 1, true)
    assert.matches("(cut at byte %d+: a torn last record)", prep_out)
    assert.matches("salvage: consumer ACME > LOAD > reader: log ahead of o.dat by", prep_out, 1, true)
    local s = report.salvaged.streams[1]
    assert.are.equal("LOAD", s.stream)
    assert.are.equal(cut.last - cut.keep, s.appended)
  end)

  it("the standalone server serves every message at its sequence", function()
    assert.is_nil(err, err)
    local want, got = {}, {}
    for _, m in ipairs(before.streams.LOAD.messages) do want[#want + 1] = m[1] .. " " .. m[4] end
    for _, m in ipairs(served.streams.LOAD.messages) do got[#got + 1] = m[1] .. " " .. m[4] end
    assert.is_true(#want > 60)
    assert.are.same(want, got)
    assert.are.equal(before.streams.LOAD.info.state.last_seq, served.streams.LOAD.info.state.last_seq)
  end)

  it("the consumer has the exact ack floor, delivered and pending set the cluster had", function()
    assert.is_nil(err, err)
    local b, a = before.streams.LOAD.consumers.reader, served.streams.LOAD.consumers.reader
    -- last_active is the time of the last ack: the restart cannot know it
    for _, k in ipairs { "ack_floor", "delivered" } do
      assert.are.equal(b[k].consumer_seq, a[k].consumer_seq, k)
      assert.are.equal(b[k].stream_seq, a[k].stream_seq, k)
    end
    assert.are.equal(b.num_ack_pending, a.num_ack_pending)
    assert.are.equal(b.num_pending, a.num_pending)
  end)

  it("verify passes and the server logs nothing about the blocks", function()
    assert.is_nil(err, err)
    assert.are.equal(0, verify_code, verify_out)
    local log = cluster.read_file(srv_log) or ""
    for line in log:gmatch("[^\n]+") do
      assert.is_nil(line:match("%[WRN%].*[Bb]lock") or line:match("%[ERR%]"), line)
    end
  end)
end)

-- The survivor-wq-load fixture: the worker's log holds one ack (stream
-- seq 496) that o.dat lacks, at index 798, past the highest commit index
-- the log saw (797): uncertain.
describe("salvage policy on a stored survivor", function()
  local fx = require "spec.support.fixture"
  local ODAT = "/jetstream/ACME/streams/LOADQ/obs/worker/o.dat"

  local function floor(store)
    return assert(raft.consumer_state(assert(fx.read(store .. ODAT)))).ack_floor.stream
  end

  it("keeps uncertain entries by default, says so, and undo takes the salvage back", function()
    local store = fx.unpack("survivor-wq-load-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.read(store .. ODAT)
    assert.are.equal(495, floor(store))
    local code, out, err = fx.run("inspect", store)
    assert.are.equal(0, code, err)
    assert.matches("consumer ACME > LOADQ > worker: log ahead of o.dat by 1 update(s); would apply 1 ack(s)",
      out, 1, true)
    code, out, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("ack floor 495 -> 496, delivered 496 -> 496, 0 pending; 1 uncertain (kept)", out, 1, true)
    assert.are.equal(496, floor(store))
    local rep = assert(json.decode(fx.read(store .. "/recovery-report.json")))
    assert.are.equal(1, rep.salvaged.consumers[1].acks)
    assert.are.equal(1, rep.salvaged.consumers[1].uncertain)
    code, out, err = fx.run("verify", store)
    assert.are.equal(0, code, err .. out)
    code, out, err = fx.run("undo", store)
    assert.are.equal(0, code, err .. out)
    assert.is_true(original == fx.read(store .. ODAT), "o.dat is not back byte for byte")
  end)

  it("a site policy drops uncertain entries", function()
    local store = fx.unpack("survivor-wq-load-2.9.10.tar.gz")
    local pol = os.tmpname()
    finally(function() fx.cleanup(store); os.remove(pol) end)
    cluster.write_file(pol, [[
local prepare = require "jsr.prepare"
return prepare.run({
  salvage = function(entry) if entry.uncertain then return "drop" end return "keep" end,
}, ...)
]])
    local code, out, err = fx.run("run", pol, store)
    assert.are.equal(0, code, err .. out)
    assert.matches("log ahead of o.dat by 1 update(s); 1 dropped by policy", out, 1, true)
    assert.are.equal(495, floor(store))
  end)
end)

describe("salvage encoders (C)", function()
  it("block_record writes the record blockgen writes (hash keyed by STREAM-N), with and without headers", function()
    local bg = require "spec.support.blockgen"
    assert.are.equal(bg.record("S-3", 5, 123, "a.b", nil, "hello"), jsr.block_record("S-3", 5, 123, "a.b", nil, "hello"))
    assert.are.equal(bg.record("S-3", 5, 123, "a.b", "NATS/1.0\r\n\r\n", ""),
      jsr.block_record("S-3", 5, 123, "a.b", "NATS/1.0\r\n\r\n", ""))
    assert.has_error(function() jsr.block_record("S-1", 0, 1, "x", nil, "") end)
  end)

  it("odat.encode round-trips through the o.dat reader and refuses what o.dat cannot hold", function()
    local st = { ack_floor = { consumer = 3, stream = 10 }, delivered = { consumer = 6, stream = 15 },
                 pending = { [14] = { dseq = 6, ts = 1700000005 }, [12] = { dseq = 4, ts = 1700000000 } },
                 redelivered = { [12] = 2 } }
    local b = jsr.odat.encode(st)
    assert.are.equal(b, jsr.odat.encode(st)) -- same state, same bytes
    local d = assert(raft.consumer_state(b))
    assert.are.same({ consumer = 3, stream = 10 }, d.ack_floor)
    assert.are.same({ consumer = 6, stream = 15 }, d.delivered)
    assert.are.same({ [14] = { dseq = 6, ts = 1700000005 }, [12] = { dseq = 4, ts = 1700000000 } }, d.pending)
    assert.are.same({ [12] = 2 }, d.redelivered)
    st.pending[9] = { dseq = 2, ts = 1 }
    assert.has_error(function() jsr.odat.encode(st) end)
    st.pending[9] = nil
    st.redelivered[14] = 0
    assert.has_error(function() jsr.odat.encode(st) end)
  end)

  it("odat.encode takes pending times at the ends of int64 (wrapping as the server's Go does)", function()
    -- crafted or damaged times: the UBSan build aborted on the subtraction
    local st = { ack_floor = { consumer = 0, stream = 0 }, delivered = { consumer = 2, stream = 2 },
                 pending = { [1] = { dseq = 1, ts = math.maxinteger }, [2] = { dseq = 2, ts = math.mininteger } },
                 redelivered = {} }
    local d = assert(raft.consumer_state(jsr.odat.encode(st)))
    assert.are.same(st.pending, d.pending)
  end)
end)
