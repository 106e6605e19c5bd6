-- The exact replay of a stream's Raft log (jsr/salvage.lua, jsr/replay.lua)
-- against logs real clusters wrote (spec/fixtures/raft/replay-*.tar.gz,
-- scripts/gen-replay-fixture.lua): a publish of every kind the server
-- refuses (duplicate Nats-Msg-Id, discard new at max_msgs, max_bytes and
-- max_msgs_per_subject, wrong Nats-Expected-Last-Sequence / -Subject-
-- Sequence 0 (a KV create) / -Msg-Id, a rollup the stream does not allow,
-- a KV bucket's create of an existing key), limits of discard old, an
-- interest stream's message no consumer wants, KV
-- deletes and purges (rollups), and purges (filtered with keep, up to a
-- sequence, keep without a filter, everything) and deletes right before
-- the crash.  The survivor's store is cut back (all of it, half of it,
-- nothing), prepared, and served by the same server version; every stream
-- must be exactly what the cluster served: state (messages, bytes, first,
-- last, deleted) and every message.
local jsr = require "jsr"
local json = jsr.json
local blocks = require "jsr.blocks"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local cutstore = require "spec.support.cutstore"

local BIN = os.getenv("JSR_BIN") or "build/js-recover"
local q = cluster.quote
local function sh(cmd) assert(os.execute(cmd), cmd) end

local STREAMS = require("spec.support.rejects").STREAMS

-- What a stream is, as jsload dump shows it: its state and its messages.
-- sampled: the fixture kept a long stream's first and last two only
local function view(dump, name, sampled)
  local s = dump.streams[name]
  if not s then return nil end
  local st, l = s.info.state, s.messages
  if sampled and #l > 4 then l = { l[1], l[2], l[#l - 1], l[#l] } end
  return { messages = st.messages, bytes = st.bytes, first_seq = st.first_seq, last_seq = st.last_seq,
           num_deleted = st.num_deleted or 0, list = l }
end

-- untar the fixture, cut each stream (how(name, last) -> keep or nil),
-- prepare, serve with bin; -> {served, report, prep}
local function recover(fixture, bin, how, policy, streams, mangle)
  local dir = ns.tmpdir()
  sh(("tar -xzf %s -C %s"):format(q(fixture), q(dir)))
  if mangle then mangle(dir .. "/n2") end
  local expected = assert(json.decode(assert(cluster.read_file(dir .. "/expected.json"))))
  local store = dir .. "/n2"
  for _, name in ipairs(streams or STREAMS) do
    local sdir = store .. "/jetstream/ACME/streams/" .. name
    local last = blocks.scan({ name = name, path = sdir, account = "ACME" }).last_seq
    local keep = how(name, last)
    if keep then cutstore(sdir, name, "ACME", keep) end
  end
  local argv = { BIN, "prepare", store }
  if policy then
    cluster.write_file(dir .. "/policy.lua", policy)
    argv = { BIN, "run", dir .. "/policy.lua", store }
  end
  local code, out, err = cluster.run(argv)
  assert(code == 0, err .. out)
  local report = assert(json.decode(assert(cluster.read_file(store .. "/recovery-report.json"))))
  local srv = ns.start { config = store .. "/recovery.conf", log_path = dir .. "/standalone.log", timeout = 60, bin = bin }
  local served
  local ok, serr = pcall(function()
    local a
    for _, x in ipairs(report.accounts) do if x.name == "ACME" then a = x end end
    served = cluster.jsload(srv.url, { user = a.user, password = a.password }, "dump", "--timeout-ms", "10000")
  end)
  srv:stop()
  assert(ok, serr)
  ns.rmtree(dir)
  return { served = served, report = report, prep = out, expected = expected }
end

local function salvaged(report, name)
  for _, s in ipairs(report.salvaged.streams) do if s.stream == name then return s end end
end

local function bin_of(version)
  for _, s in ipairs(servers.all()) do if s.version == version then return s.bin end end
end

-- what each fixture's log holds that the server refused at apply time
-- (the rest it refused before proposing: docs/FORMAT.md)
local REFUSED = {
  ["2.9.10"] = {
    DEDUP = { duplicate = 1 }, FULL = { max_msgs = 2 }, FULLB = { max_bytes = 3 },
    PERSUBJ = { max_msgs_per_subject = 1 }, ROLL = { rollup = 1 }, LMID = { expected_last_msg_id = 1 },
    EXP = { expected_last_sequence = 1, expected_last_subject_sequence = 1 },
    KV_CFG = { expected_last_subject_sequence = 2 },
  },
  ["2.15.3"] = { LMID = { expected_last_msg_id = 1 } },
}

for _, version in ipairs { "2.9.10", "2.15.3" } do
  local fixture = "spec/fixtures/raft/replay-" .. version .. ".tar.gz"
  local bin = bin_of(version)
  describe("replay of stream logs " .. version .. " wrote", function()
    if not bin then
      pending("nats-server " .. version .. " not built (make servers)")
      return
    end
    local cases = {
      { what = "the store lost every message", how = function() return 0 end },
      { what = "the store lost its newest half", how = function(_, last) return last // 2 end },
      { what = "the store is whole", how = function() return nil end },
    }
    for _, case in ipairs(cases) do
      it(case.what .. ": every stream exactly as the cluster served it", function()
        local r = recover(fixture, bin, case.how)
        for _, name in ipairs(STREAMS) do
          local want, got = view(r.expected, name), view(r.served, name)
          assert.is_table(want, name)
          assert.are.same(want, got, ("%s: want %s\ngot %s\n%s"):format(name, json.encode(want), json.encode(got), r.prep))
        end
      end)
    end

    it("the store lost every message: each refused publish reported with its rule, none stored", function()
      local r = recover(fixture, bin, function() return 0 end)
      for _, name in ipairs(STREAMS) do
        local s = salvaged(r.report, name)
        assert.is_table(s, name)
        assert.are.same(REFUSED[version][name] or {}, s.rejected, name)
        local n = 0
        for _ in pairs(REFUSED[version][name] or {}) do n = n + 1 end
        assert.are.equal(#s.rejections > 0, n > 0, name)
        for _, j in ipairs(s.rejections) do
          assert.matches(("salvage:   refused: entry %d "):format(j.index), r.prep, 1, true)
        end
      end
      -- the purges and deletes before the crash, applied in their place
      local p = salvaged(r.report, "PURGE")
      assert.are.equal(2, p.purges)
      assert.are.equal(3, p.purged)
      assert.are.equal(2, p.deleted)
      assert.matches("salvage: stream ACME > PURGE: log ahead of the store by 10 message(s)", r.prep, 1, true)
      -- a purge keeping the newest 2 (by sequence, over an interior
      -- delete), then one of everything
      local pa = salvaged(r.report, "PALL")
      assert.are.equal(2, pa.purges)
      assert.are.equal(6, pa.purged)
      assert.are.equal(1, pa.deleted)
      assert.are.equal(8, pa.appended)
      -- an interest stream takes the sequence of what no consumer wants
      assert.are.equal(1, salvaged(r.report, "INTEREST").skipped)
    end)

    it("a policy that drops a stream's messages: none appended, its deletes and purges still applied", function()
      local r = recover(fixture, bin, function() return 0 end, [[
local prepare = require "jsr.prepare"
return prepare.run({
  salvage = function(e) if e.kind == "message" and e.stream == "PALL" then return "drop" end return "keep" end,
}, ...)
]])
      local pa = salvaged(r.report, "PALL")
      assert.are.equal(0, pa.appended)
      assert.are.equal(1, pa.dropped)
      assert.are.equal(1, pa.deleted)
      assert.are.equal(2, pa.purges)
      assert.matches("salvage: stream ACME > PALL: log ahead of the store by 1 message(s); 1 dropped by policy", r.prep, 1, true)
      assert.are.same(view(r.expected, "PURGE"), view(r.served, "PURGE"))
    end)

    it("the store is whole: salvage appends nothing, and finds each refused publish by the record at its place", function()
      local r = recover(fixture, bin, function() return nil end)
      for _, name in ipairs(STREAMS) do
        local s = salvaged(r.report, name)
        local n = 0
        for _, k in pairs(REFUSED[version][name] or {}) do n = n + k end
        if s then
          assert.are.equal(0, s.appended, name)
          assert.is_nil(s.block, name)
          assert.are.equal(n, #s.rejections, name)
        else
          assert.are.equal(0, n, name)
        end
      end
    end)

    it("the store lost its newest half: the same refusals, found by record or by rule", function()
      local r = recover(fixture, bin, function(_, last) return last // 2 end)
      for _, name in ipairs(STREAMS) do
        local s = salvaged(r.report, name)
        local n = 0
        for _, k in pairs(REFUSED[version][name] or {}) do n = n + k end
        assert.are.equal(n, s and #s.rejections or 0, name)
      end
    end)
  end)
end

-- What 2.10+ logs beyond messages, deletes and purges (spec/support/
-- newops.lua, scripts/gen-replay-fixture.lua ... newer): a subject
-- transform (the log holds the subject as published), per-message TTLs
-- run out with subject delete markers that expired in turn (the server's
-- own deletes and markers in the log), counters, atomic batches (ops 16
-- and 17) and, 2.14+, a delayed message whose firing purged its schedule.
local newops = require "spec.support.newops"
for _, version in ipairs { "2.12.15", "2.15.3" } do
  local fixture = "spec/fixtures/raft/replay-newer-" .. version .. ".tar.gz"
  local bin = bin_of(version)
  local streams = newops.streams(version)
  describe("replay of the newer ops " .. version .. " wrote", function()
    if not bin then
      pending("nats-server " .. version .. " not built (make servers)")
      return
    end
    for _, case in ipairs {
      { what = "the store lost every message", how = function() return 0 end },
      { what = "the store lost its newest half", how = function(_, last) return last // 2 end },
      { what = "the store is whole", how = function() return nil end },
    } do
      it(case.what .. ": every stream exactly as the cluster served it", function()
        local r = recover(fixture, bin, case.how, nil, streams)
        for _, name in ipairs(streams) do
          local sampled = r.expected.streams[name] and r.expected.streams[name].sampled
          local want, got = view(r.expected, name), view(r.served, name, sampled)
          assert.is_table(want, name)
          assert.are.same(want, got, ("%s: want %s\ngot %s\n%s"):format(name, json.encode(want), json.encode(got), r.prep))
        end
        assert.not_matches("unknown to js-recover", r.prep, 1, true)
      end)
    end

    it("the store lost every message: batches, markers and the server's deletes reported as what they are", function()
      local r = recover(fixture, bin, function() return 0 end, nil, streams)
      local b = salvaged(r.report, "BATCH")
      -- two batches (3 and 2 messages) and a message between them
      assert.are.same({ 2, 5, 6 }, { b.batches, b.batch_messages, b.appended })
      assert.matches("stream ACME > BATCH: log ahead of the store by 6 message(s); append seq 1-6 to ", r.prep, 1, true)
      assert.matches("; 2 atomic batch(es) of 5 message(s) in the log, applied at their commits", r.prep, 1, true)
      local t = salvaged(r.report, "TTLM")
      -- a marker for each subject whose last message ran out (ttl.a, ttl.b),
      -- removing it; the server's deletes: ttl.a's first message and then
      -- both markers
      assert.are.same({ 2, 2, 3, 3 }, { t.markers, t.marker_removed, t.deleted, t.server_deleted })
      assert.matches("3 delete(s) in the log applied to the blocks that still hold them (0 by clients, 3 by the "
        .. "server: expired, max_age or Nats-TTL)", r.prep, 1, true)
      assert.matches("; 2 subject delete marker(s) (max_age took a subject's last message) stored, removing 2 "
        .. "expired message(s)", r.prep, 1, true)
      -- the log holds the subjects as published; stored transformed
      assert.are.equal(3, salvaged(r.report, "XFORM").appended)
      -- counters: the leader logs each new total; stored as logged
      assert.are.equal(4, salvaged(r.report, "COUNT").appended)
      if salvaged(r.report, "SCHED") then
        -- the delayed message fired and purged its schedule message
        assert.are.equal(1, salvaged(r.report, "SCHED").schedule_removed)
        assert.matches("; 1 schedule message(s) purged as their delayed messages fired", r.prep, 1, true)
      end
    end)
  end)
end

-- A follower's log can end inside a batch: the leader sends a batch of
-- 1000 over several append entries (488 + 488 + 24, or 673 + 327, as it
-- goes), and a node that dies before the last has the batch's first
-- messages and no commit.  The BIGB stream's log is cut so
-- (its last record removed, where a follower's log would end) and its
-- store emptied: the server stores a batch only at its commit, so the
-- survivor holds the message before it and none of the batch.
local raft = require "jsr.raft"
for _, version in ipairs { "2.12.15", "2.15.3" } do
  local fixture = "spec/fixtures/raft/replay-newer-" .. version .. ".tar.gz"
  local bin = bin_of(version)
  describe("replay of a log that ends inside an atomic batch (" .. version .. ")", function()
    if not bin then
      pending("nats-server " .. version .. " not built (make servers)")
      return
    end
    it("stores none of the batch, and says why", function()
      local cut
      local function mangle(store)
        local sys = store .. "/jetstream/SYS/_js_"
        for g in io.popen("ls " .. q(sys)):lines() do
          local meta = cluster.read_file(sys .. "/" .. g .. "/meta.inf") or ""
          if meta:find('"BIGB"', 1, true) then
            local last, seen = nil, 0
            raft.log(sys .. "/" .. g, function(index, ae, rec, file)
              local here = 0
              for _, e in ipairs(ae.entries) do
                local op = e.type == raft.NORMAL and e.data:byte(1)
                if op == raft.op.batch_msg then here = here + 1 end
                if op == raft.op.batch_commit then
                  last = { file = file, offset = rec.offset, index = index, before = seen }
                end
              end
              seen = seen + here
              return true
            end)
            assert.is_table(last, "the batch's commit in " .. g)
            sh(("truncate -s %d %s"):format(last.offset, q(last.file)))
            cut = last
          end
        end
      end
      local r = recover(fixture, bin, function(name) return name == "BIGB" and 0 or nil end, nil,
        { "BIGB" }, mangle)
      assert.is_table(cut)
      local want, got = view(r.expected, "BIGB"), view(r.served, "BIGB")
      assert.are.equal(1001, want.messages) -- what the cluster had
      assert.are.same({ 1, 1, 1, 0 }, { got.messages, got.first_seq, got.last_seq, got.num_deleted })
      assert.are.same(want.list[1], got.list[1])
      local b = salvaged(r.report, "BIGB")
      assert.is_true(cut.before > 0 and cut.before < 1000, tostring(cut.before))
      assert.are.same({ 1, cut.before }, { b.appended, b.batch_cut })
      assert.matches("salvage:   note: entry %d+: atomic batch %w+: the log ends after " .. cut.before
        .. " of its message%(s%), before its commit: not stored, as the server stores a batch at its commit only", r.prep)
    end)
  end)
end
