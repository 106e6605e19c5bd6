-- SIGKILL drill of what 2.12+ logs beyond plain messages: counters (the
-- leader logs each new total) and atomic batches (ops 16 and 17).  A real
-- 3-node cluster; n2 made the leader of both streams (a leader applies an
-- entry before it answers, so n2 holds everything a client was told);
-- counter increments and batches are published as fast as natscli can,
-- and every node is SIGKILLed the moment the last one is answered, so the
-- survivor's log can be ahead of its blocks.  Measured: it never is (a
-- SIGKILL loses nothing the server wrote to its block files), so n2's
-- store is also recovered with its blocks cut back to half (what a power
-- loss leaves: the blocks lost their newest writes, the log has them).
-- prepare on each copy, then a standalone server of the same version must
-- serve every counter's value and every batch's messages exactly as the
-- clients were answered.
-- Default: 2.12.15 and the newest; JSR_FEATURES_ALL=1 every version with
-- counters and batches.
local jsr = require "jsr"
local json = jsr.json
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local rejects = require "spec.support.rejects"
local newops = require "spec.support.newops"

local BIN = os.getenv("JSR_BIN") or "build/js-recover"

local versions = {}
for _, s in ipairs(servers.all()) do
  if newops.at_least(s.version, "2.12.0") then versions[#versions + 1] = s end
end
if os.getenv("JSR_FEATURES_ALL") ~= "1" and #versions > 2 then versions = { versions[1], versions[#versions] } end

local ROUNDS = 6 -- increments and batches a round
local cutstore = require "spec.support.cutstore"
local blocks = require "jsr.blocks"

-- prepare a copy of the survivor's store, serve it: what a client sees
local function recovered(bin, store, dir, tag)
  local got = {}
  local code, out, e = cluster.run { BIN, "prepare", store }
  assert(code == 0, e .. out)
  got.prep = out
  got.report = assert(json.decode(assert(cluster.read_file(store .. "/recovery-report.json"))))
  local logf = dir .. "/standalone-" .. tag .. ".log"
  local srv = ns.start { config = store .. "/recovery.conf", log_path = logf,
                         timeout = 60, bin = bin }
  local ok, err = pcall(function()
    local creds
    for _, a in ipairs(got.report.accounts) do
      if a.name == "ACME" then creds = { user = a.user, password = a.password } end
    end
    local s = rejects.new(srv.url, creds)
    got.visits = s:nats("counter", "get", "cnt.visits")
    got.other = s:nats("counter", "get", "cnt.other")
    got.dump = cluster.jsload(srv.url, creds, "dump", "--timeout-ms", "10000")
  end)
  srv:stop()
  assert(ok, tostring(err) .. "\n" .. (cluster.read_file(logf) or ""):sub(-1500))
  got.ahead = {}
  for _, x in ipairs(got.report.salvaged.streams) do got.ahead[x.stream] = x.log_ahead end
  return got
end

-- makes n2 the leader of a stream (a stepdown picks another at random)
local function lead_on_n2(r, stream)
  for _ = 1, 20 do
    local said = r:nats("req", "$JS.API.STREAM.INFO." .. stream, "")
    local info = json.decode(said:match("{.*}") or "null")
    local leader = info and info.cluster and info.cluster.leader
    if leader == "n2" then return true end
    r:nats("req", "$JS.API.STREAM.LEADER.STEPDOWN." .. stream, "")
    cluster.sleep(1)
  end
  return false
end

for _, sv in ipairs(versions) do
  describe("counters and atomic batches SIGKILLed on " .. sv.version, function()
    local res = {}
    setup(function()
      local dir = ns.tmpdir()
      res.dir = dir
      local c = cluster.start { dir = dir, bin = sv.bin }
      local ok, err = pcall(function()
        local urls = c:urls(2)
        local log = {}
        local r = rejects.new(urls[1], cluster.USERS.ACME, function(l) log[#log + 1] = l end)
        r:create { name = "COUNT", subjects = { "cnt.>" }, allow_msg_counter = true, allow_direct = true }
        r:create { name = "BATCH", subjects = { "bat.>" }, allow_atomic = true }
        assert(lead_on_n2(r, "COUNT") and lead_on_n2(r, "BATCH"), "n2 never became the leader")
        local n = newops.new(r, sv.version, dir)
        -- what the clients were answered
        res.want = { visits = 0, other = 0, batch = 0 }
        for i = 1, ROUNDS do
          local v = r:nats("counter", "increment", "cnt.visits", tostring(i))
          assert(v:match("^%s*(%-?%d+)") == tostring(res.want.visits + i), "increment answered " .. v)
          res.want.visits = res.want.visits + i
          v = r:nats("counter", "decrement", "cnt.other", "3")
          assert(v:match("^%s*(%-?%d+)") == tostring(res.want.other - 3), "decrement answered " .. v)
          res.want.other = res.want.other - 3
          local lines = {}
          for j = 1, 4 do lines[j] = ("r%d-%d"):format(i, j) end
          n:batch("bat.r" .. i, lines)
          assert(log[#log]:find("Messages: 4", 1, true), log[#log])
          res.want.batch = res.want.batch + 4
        end
        res.log = log
      end)
      -- at once, the moment the last batch was answered
      local pids = {}
      for i = 1, 3 do if c.nodes[i].srv then pids[#pids + 1] = tostring(c.nodes[i].srv.pid) end end
      os.execute("kill -KILL " .. table.concat(pids, " "))
      for i = 1, 3 do c:kill(i, "KILL") end
      local store = c.nodes[2].store_dir
      c:stop_all()
      assert(ok, err)
      local q = cluster.quote
      assert(os.execute(("cp -a %s %s/cut"):format(q(store), q(dir))))
      for _, name in ipairs { "COUNT", "BATCH" } do
        local sdir = dir .. "/cut/jetstream/ACME/streams/" .. name
        cutstore(sdir, name, "ACME", blocks.scan({ name = name, path = sdir, account = "ACME" }).last_seq // 2)
      end
      res.runs = { { what = "as SIGKILL left it", got = recovered(sv.bin, store, dir, "whole") },
                   { what = "its blocks cut back to half", got = recovered(sv.bin, dir .. "/cut", dir, "cut") } }
    end)
    teardown(function() if res.dir then ns.rmtree(res.dir) end end)

    for run = 1, 2 do
      local function the() return res.runs[run] end
      local label = run == 1 and "as SIGKILL left it" or "its blocks cut back to half"
      it(label .. ": serves every counter's last total as the clients were answered", function()
        local g = the().got
        assert.are.equal(tostring(res.want.visits), g.visits:match("%-?%d+"), g.prep)
        assert.are.equal(tostring(res.want.other), g.other:match("%-?%d+"), g.prep)
        assert.are.equal(2 * ROUNDS, g.dump.streams.COUNT.info.state.last_seq, g.prep)
      end)

      it(label .. ": serves every batch's every message", function()
        local g = the().got
        local b = g.dump.streams.BATCH
        assert.are.equal(res.want.batch, b.info.state.messages, g.prep)
        assert.are.equal(res.want.batch, b.info.state.last_seq, g.prep)
        for k, m in ipairs(b.messages) do assert.are.equal("bat.r" .. ((k - 1) // 4 + 1), m[2]) end
      end)

      it(label .. ": says what the log held past the store", function()
        local g = the().got
        -- printed for the README's figures
        print(("%s, %s: log ahead of the store: COUNT %s, BATCH %s"):format(sv.version, label,
          tostring(g.ahead.COUNT or 0), tostring(g.ahead.BATCH or 0)))
        if run == 2 then
          assert.are.equal(ROUNDS, g.ahead.COUNT, g.prep)
          assert.are.equal(res.want.batch // 2, g.ahead.BATCH, g.prep)
          assert.matches("atomic batch%(es%) of %d+ message%(s%) in the log, applied at their commits", g.prep)
        end
        assert.is_nil(g.prep:find("unknown to js-recover", 1, true), g.prep)
        assert.is_nil(g.prep:find("of a newer server", 1, true), g.prep)
      end)
    end
  end)
end

-- A consumer reset to a stream sequence (op 18 in the consumer's log,
-- 2.14+): the survivor's o.dat lost (as a crash before its write leaves
-- it), the replay rebuilds the consumer from its log, reset included, and
-- the standalone server must report what the cluster reported.  Before,
-- op 18 was a malformed entry and prepare refused the whole store.
local resets = {}
for _, s in ipairs(versions) do if newops.at_least(s.version, "2.14.0") then resets[#resets + 1] = s end end
if os.getenv("JSR_FEATURES_ALL") ~= "1" and #resets > 1 then resets = { resets[#resets] } end
local function position(r, stream, consumer)
  local said = r:nats("req", "$JS.API.CONSUMER.INFO." .. stream .. "." .. consumer, "")
  local info = assert(json.decode(said:match("{.*}") or "null"), said)
  return { delivered = info.delivered.stream_seq, ack_floor = info.ack_floor.stream_seq,
           pending = info.num_pending, ack_pending = info.num_ack_pending }
end
for _, sv in ipairs(resets) do
  describe("a consumer reset SIGKILLed on " .. sv.version, function()
    it("is replayed from the consumer's log: the position the cluster reported", function()
      local dir = ns.tmpdir()
      local c = cluster.start { dir = dir, bin = sv.bin }
      local want
      local ok, err = pcall(function()
        local urls = c:urls(2)
        local r = rejects.new(urls[1], cluster.USERS.ACME)
        r:create { name = "RST", subjects = { "rst.>" } }
        for i = 1, 10 do r:pub("rst.x", "m" .. i) end
        r:run("consumer w", "req", "$JS.API.CONSUMER.DURABLE.CREATE.RST.w",
          json.encode { stream_name = "RST", config = { durable_name = "w", ack_policy = "explicit",
                        ack_wait = 3600 * 1000000000, num_replicas = 3 } })
        r:nats("consumer", "next", "RST", "w", "--count", "6", "--ack")
        local said = r:nats("req", "$JS.API.CONSUMER.RESET.RST.w", '{"seq":3}')
        assert(said:find('"reset_seq":3', 1, true), said)
        cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
        cluster.sleep(1)
        want = position(r, "RST", "w")
      end)
      local pids = {}
      for i = 1, 3 do if c.nodes[i].srv then pids[#pids + 1] = tostring(c.nodes[i].srv.pid) end end
      os.execute("kill -KILL " .. table.concat(pids, " "))
      for i = 1, 3 do c:kill(i, "KILL") end
      local store = c.nodes[2].store_dir
      c:stop_all()
      finally(function() ns.rmtree(dir) end)
      assert(ok, err)
      assert.are.same({ 2, 2, 8, 0 }, { want.delivered, want.ack_floor, want.pending, want.ack_pending })
      os.remove(store .. "/jetstream/ACME/streams/RST/obs/w/o.dat")
      local code, out, e = cluster.run { BIN, "prepare", store }
      assert(code == 0, e .. out)
      assert.matches("salvage: consumer ACME > RST > w: log ahead of o.dat by %d+ update%(s%); apply %d+ ack%(s%), "
        .. "%d+ delivered, 1 reset%(s%)", out)
      local report = assert(json.decode(assert(cluster.read_file(store .. "/recovery-report.json"))))
      local creds
      for _, a in ipairs(report.accounts) do
        if a.name == "ACME" then creds = { user = a.user, password = a.password } end
      end
      local srv = ns.start { config = store .. "/recovery.conf", log_path = dir .. "/standalone-reset.log",
                             timeout = 60, bin = sv.bin }
      local got
      local sok, serr = pcall(function() got = position(rejects.new(srv.url, creds), "RST", "w") end)
      srv:stop()
      assert(sok, serr)
      assert.are.same(want, got, out)
    end)
  end)
end
