-- The dead cluster's Raft state: the S2 decoder (hand-built blocks for every
-- element and error, real blocks the server wrote), snapshot files, logs,
-- the meta group's assignments, and the "Lost with the dead nodes" report.
local jsr = require "jsr"
local json = jsr.json
local raft = require "jsr.raft"
local lost = require "jsr.lost"
local model = require "jsr.model"
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local RAFT = fx.FIXTURES .. "/raft"

local function uvarint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    out[#out + 1] = string.char(n > 0 and (b | 0x80) or b)
  until n == 0
  return table.concat(out)
end

-- element builders, from the format description (not from a compressor)
local function lit(s)
  local n = #s - 1
  if n < 60 then return string.char(n << 2) .. s end
  for k = 1, 4 do
    if n < (1 << (8 * k)) then return string.char((59 + k) << 2) .. string.pack("<I" .. k, n) .. s end
  end
end
local function copy1(len, off) -- len 4..11, off 1..2047
  return string.char(1 | ((len - 4) << 2) | ((off >> 8) << 5), off & 0xff)
end
local function copy2(len, off) return string.char(2 | ((len - 1) << 2)) .. string.pack("<I2", off) end
local function copy4(len, off) return string.char(3 | ((len - 1) << 2)) .. string.pack("<I4", off) end
local function rep(code, extra) -- S2 repeat: copy1 with offset 0
  return string.char(1 | (code << 2), 0) .. (extra or "")
end
local function block(len, ...) return uvarint(len) .. table.concat({ ... }) end

-- equal without printing kilobytes when they are not
local function same(want, got)
  assert.are.equal(#want, #(got or ""))
  assert.is_true(want == got, "contents differ")
end

describe("s2.decode", function()
  it("decodes literals in every length form", function()
    assert.are.equal("", jsr.s2.decode("\0"))
    assert.are.equal("hello", jsr.s2.decode(block(5, lit("hello"))))
    local a60 = ("a"):rep(100)    -- 1 extra length byte
    local a61 = ("b"):rep(300)    -- 2
    local a62 = ("c"):rep(70000)  -- 3
    same(a60, jsr.s2.decode(block(100, lit(a60))))
    same(a61, jsr.s2.decode(block(300, lit(a61))))
    same(a62, jsr.s2.decode(block(70000, lit(a62))))
    -- a 4-byte length for a short literal is unusual but valid
    assert.are.equal("xyz", jsr.s2.decode(block(3, string.char(63 << 2) .. string.pack("<I4", 2) .. "xyz")))
  end)

  it("decodes copies with 1-, 2- and 4-byte offsets, overlapping ones as runs", function()
    assert.are.equal("abcdabcd", jsr.s2.decode(block(8, lit("abcd"), copy1(4, 4))))
    assert.are.equal("abcdabcdabc", jsr.s2.decode(block(11, lit("abcd"), copy1(7, 4))))
    assert.are.equal(("a"):rep(11), jsr.s2.decode(block(11, lit("a"), copy2(10, 1))))
    assert.are.equal("xyxyxyxy", jsr.s2.decode(block(8, lit("xy"), copy4(6, 2))))
    -- the offset's high bits live in the tag: 1792 = 0x700
    local head = {}
    for i = 1, 2000 do head[i] = string.char(32 + i % 90) end
    head = table.concat(head)
    local want = head .. head:sub(2000 - 1792 + 1, 2000 - 1792 + 11)
    same(want, jsr.s2.decode(block(2011, lit(head), copy1(11, 1792))))
    -- 64-byte copies with a 2-byte offset
    assert.are.equal(("ab"):rep(33), jsr.s2.decode(block(66, lit("ab"), copy2(64, 2))))
  end)

  it("decodes S2 repeats (offset 0: the previous copy's offset) with every length code", function()
    -- codes 0..4: lengths 4..8
    assert.are.equal("abcdefgh" .. "abcd" .. "efgh",
      jsr.s2.decode(block(16, lit("abcdefgh"), copy1(4, 8), rep(0))))
    assert.are.equal("abcdefgh" .. "abcd" .. "efghabcd",
      jsr.s2.decode(block(20, lit("abcdefgh"), copy1(4, 8), rep(4))))
    -- 5: 8 + one byte; 6: 260 + u16; 7: 65540 + u24
    local n = 1 + 1 + 10 + 260 + 65541
    local out = jsr.s2.decode(block(n, lit("x"), copy2(1, 1), rep(5, "\2"), rep(6, "\0\0"), rep(7, "\1\0\0")))
    same(("x"):rep(n), out)
    local m = 2 + 4 + 300 + 65540 + 0x010203
    out = jsr.s2.decode(block(m, lit("pq"), copy1(4, 2), rep(6, string.pack("<I2", 40)), rep(7, "\3\2\1")))
    same(("pq"):rep(m // 2 + 1):sub(1, m), out)
  end)

  it("refuses broken blocks, naming the problem and the byte", function()
    local function err(b) local v, e = jsr.s2.decode(b); assert.is_nil(v); return e end
    assert.matches("repeat at byte 4 before any copy", err(block(6, lit("ab"), rep(0))), 1, true)
    assert.matches("copy at byte 4 reaches 5 bytes back, only 2 decoded so far",
      err(block(4, lit("ab"), copy2(2, 5))), 1, true)
    assert.matches("copy with offset 0 at byte 4", err(block(4, lit("ab"), copy2(2, 0))), 1, true)
    assert.matches("literal of 5 bytes at byte 1 runs past the decoded length 3",
      err(block(3, lit("hello"))), 1, true)
    assert.matches("copy of 8 bytes at byte 5 runs past the decoded length 6",
      err(block(6, lit("abc"), copy1(8, 3))), 1, true)
    assert.matches("input ends after 3 of 10 decoded bytes", err(block(10, lit("abc"))), 1, true)
    assert.matches("literal of 5 bytes at byte 1 runs past the end of input (2 left)",
      err(block(5, lit("hello"):sub(1, 3))), 1, true)
    assert.matches("literal length at byte 2 cut off", err(block(300, string.char(61 << 2), "\1")), 1, true)
    assert.matches("copy at byte 5 cut off", err(block(6, lit("abc"), "\2\1")), 1, true)
    assert.matches("repeat at byte 7 cut off", err(block(20, lit("abc"), copy1(4, 3), rep(6, "\1"))), 1, true)
    assert.matches("input ends inside the length header", err("\x80"), 1, true)
    assert.matches("length header longer than 5 bytes", err("\x80\x80\x80\x80\x80\x01"), 1, true)
    assert.matches("decoded length 268435457 is over", err(uvarint((256 << 20) + 1)), 1, true)
    assert.has_error(function() jsr.s2.decode(nil) end)
  end)

  it("never reads or writes out of bounds on damaged input (truncations, bit flips, random bytes)", function()
    -- run under `make asan` this is the memory-safety check
    local snap = assert(jsr.raft.snapshot(RAFT .. "/snap/_meta_/snapshots/snap.3.33"))
    local good = snap.data
    local plain = assert(jsr.s2.decode(good))
    math.randomseed(7)
    local outcomes = { ok = 0, refused = 0 }
    local function try(b)
      local v, e = jsr.s2.decode(b)
      if v then
        outcomes.ok = outcomes.ok + 1
      else
        assert.is_string(e)
        outcomes.refused = outcomes.refused + 1
      end
    end
    for cut = 0, #good - 1, 7 do try(good:sub(1, cut)) end
    for _ = 1, 2000 do
      local i = math.random(1, #good)
      local flipped = good:sub(1, i - 1) .. string.char(good:byte(i) ~ (1 << math.random(0, 7))) .. good:sub(i + 1)
      try(flipped)
    end
    for _ = 1, 2000 do
      local n = math.random(0, 64)
      local t = {}
      for k = 1, n do t[k] = string.char(math.random(0, 255)) end
      try(table.concat(t))
    end
    assert.is_true(outcomes.refused > 0 and outcomes.ok > 0)
    same(plain, jsr.s2.decode(good))
  end)

  it("decodes the compressed stream messages a real 2.9.10 cluster logged, as the streams stored them", function()
    local vectors = assert(json.decode(fx.read(RAFT .. "/s2-stream-msgs.json")))
    assert.is_true(#vectors >= 10)
    local with_headers, big = 0, 0
    for _, v in ipairs(vectors) do
      local data = v.entry_hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
      assert.are.equal(14, data:byte(1))
      local m = assert(raft.stream_msg(data))
      assert.is_true(m.compressed)
      assert.are.equal(v.seq, m.lseq + 1, v.stream)
      assert.are.equal(v.subject, m.subject)
      assert.are.equal(v.payload_len, #m.payload)
      assert.are.equal(v.payload_sha256, ns.sha256(m.payload), v.stream .. " #" .. v.seq)
      if v.headers_sha256 ~= json.null then
        with_headers = with_headers + 1
        assert.are.equal(v.headers_sha256, ns.sha256(m.headers))
      else
        assert.is_nil(m.headers)
      end
      if #m.payload > 20000 then big = big + 1 end
    end
    assert.is_true(with_headers > 0 and big > 0)
  end)
end)

describe("Raft files", function()
  it("node_id is the server's hash of its name", function()
    -- the peers of the fixture cluster, whose servers were named n1, n2, n3
    assert.are.equal("fjFyEjc1", jsr.raft.node_id("n1"))
    assert.are.equal("44jzkV9D", jsr.raft.node_id("n2"))
    assert.are.equal("BXScrY9i", jsr.raft.node_id("n3"))
  end)

  it("reads a meta snapshot: term, index, peers, checksum, S2 JSON of the assignments", function()
    local path = RAFT .. "/snap/_meta_/snapshots/snap.3.33"
    local s = assert(jsr.raft.snapshot(path))
    assert.are.equal(3, s.term)
    assert.are.equal(33, s.index)
    assert.are.equal("_meta_", s.group)
    assert.is_true(s.hash_ok)
    assert.are.equal(s.hash_file, s.hash_computed)
    assert.are.equal(3, s.peer_state.cluster_size)
    assert.are.same({ "fjFyEjc1", "BXScrY9i", "44jzkV9D" }, s.peer_state.peers)
    local list = assert(json.decode(assert(jsr.s2.decode(s.data))))
    local names = {}
    for _, sa in ipairs(list) do names[#names + 1] = sa.client.acc .. ">" .. sa.stream.name end
    table.sort(names)
    assert.are.same({ "ACME>COMBINED", "ACME>EVENTS", "ACME>JOBS", "ACME>KV_CONFIG", "ACME>LOCAL",
      "ACME>ORDERS", "ACME>ORDERS_MIRROR", "ACME>SCRATCH", "BETA>KV_SESSIONS", "BETA>TELEMETRY" }, names)
  end)

  it("reports a snapshot whose checksum does not match, and short files", function()
    local dir = ns.tmpdir()
    finally(function() ns.rmtree(dir) end)
    local data = fx.read(RAFT .. "/snap/_meta_/snapshots/snap.3.33")
    fx.write(dir .. "/snap", data:sub(1, 100) .. string.char(data:byte(101) ~ 1) .. data:sub(102))
    local s = assert(jsr.raft.snapshot(dir .. "/snap", "_meta_"))
    assert.is_false(s.hash_ok)
    -- the same bytes under another group's key do not match either
    assert.is_false(assert(jsr.raft.snapshot(RAFT .. "/snap/_meta_/snapshots/snap.3.33", "S-R3F-x")).hash_ok)
    fx.write(dir .. "/short", ("\0"):rep(20))
    local v, err = jsr.raft.snapshot(dir .. "/short", "_meta_")
    assert.is_nil(v)
    assert.matches("/short: 20 bytes, shorter than any snapshot", err)
    fx.write(dir .. "/bad", ("\0"):rep(16) .. string.pack("<I4", 1000) .. ("\0"):rep(20))
    v, err = jsr.raft.snapshot(dir .. "/bad", "_meta_")
    assert.is_nil(v)
    assert.matches("peer state of 1000 bytes runs past the end of the file", err)
    assert.has_error(function() jsr.raft.snapshot(dir .. "/bad") end) -- no group to key the hash
    v, err = jsr.raft.snapshot(dir .. "/missing", "_meta_")
    assert.is_nil(v)
    assert.matches("missing", err)
  end)

  it("decodes append entries and refuses cut ones", function()
    local ae = string.rep("L", 8) .. string.pack("<I8I8I8I8I2", 2, 7, 2, 6, 2)
      .. string.pack("<I4", 4) .. "\0\1ab" .. string.pack("<I4", 1) .. "\2"
    local e = assert(raft.decode_append_entry(ae))
    assert.are.equal("LLLLLLLL", e.leader)
    assert.are.same({ 2, 7, 2, 6 }, { e.term, e.commit, e.pterm, e.pindex })
    assert.are.same({ { type = 0, data = "\1ab" }, { type = 2, data = "" } }, e.entries)
    local v, err = raft.decode_append_entry(ae:sub(1, 48))
    assert.is_nil(v)
    assert.matches("entry 1 of 2 has size 4, 2 bytes left", err, 1, true)
    assert.matches("entry 2 of 2 cut off", select(2, raft.decode_append_entry(ae:sub(1, 51))), 1, true)
    assert.matches("shorter than its 42%-byte header", select(2, raft.decode_append_entry("x")))
  end)

  it("replays the meta group's log: every assignment of a cluster that never took a snapshot", function()
    local st = raft.meta_state(RAFT .. "/log/_meta_")
    assert.is_nil(st.snapshot)
    assert.are.same({}, st.problems)
    assert.are.equal(26, st.log.records)
    local orders = st.streams["ACME\0ORDERS"]
    local cons = {}
    for name, c in pairs(orders.consumers) do cons[name] = #c.group.peers end
    assert.are.same({ audit = 1, gone = 1, notify = 3, proc = 3, ship = 3 }, cons)
    assert.are.same({ "fjFyEjc1" }, st.streams["ACME\0SCRATCH"].group.peers)
    assert.are.same({ "44jzkV9D" }, st.streams["ACME\0LOCAL"].group.peers)
    assert.is_truthy(st.streams["BETA\0TELEMETRY"].consumers.graf)
    assert.is_true(st.server_names.n2)
  end)

  it("applies the log entries after the snapshot on top of it", function()
    local st = raft.meta_state(RAFT .. "/snap/_meta_")
    assert.are.equal(33, st.snapshot.index)
    assert.are.equal(1, st.applied) -- index 34: a leader change, no assignment
    local n = 0
    for _ in pairs(st.streams) do n = n + 1 end
    assert.are.equal(10, n)
  end)

  it("reads consumer state (o.dat and consumer snapshots)", function()
    local st = assert(raft.consumer_state("\22\2" .. "\5\10" .. "\7\12" .. "\2" .. "\100"
      .. "\1\1\0" .. "\2\2\2" .. "\1\1\3"))
    assert.are.same({ consumer = 5, stream = 10 }, st.ack_floor)
    assert.are.same({ consumer = 7, stream = 12 }, st.delivered)
    assert.are.equal(2, st.pending_count)
    assert.are.same({ dseq = 6, ts = 50 }, st.pending[11])
    assert.are.same({ dseq = 7, ts = 49 }, st.pending[12])
    assert.are.equal(3, st.redelivered[11])
    assert.is_nil(raft.consumer_state("\22\2\5"))
    assert.is_nil(raft.consumer_state("{}"))
  end)
end)

describe("lost with the dead nodes", function()
  it("names the R1 stream that lived on a dead node, with its node (survivor fixture)", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local r = lost.analyze(assert(model.scan(store)))
    assert.is_true(r.available)
    assert.are.equal(1, #r.streams)
    assert.are.equal("$G", r.streams[1].account)
    assert.are.equal("R1S", r.streams[1].name)
    assert.are.same({ "BXScrY9i" }, r.streams[1].peers)
    assert.are.same({ "n3 (BXScrY9i)" }, r.streams[1].on)
    assert.are.same({}, r.consumers)
    assert.are.same({}, r.unassigned)

    local code, out = fx.run("inspect", store)
    assert.are.equal(0, code)
    assert.matches("Lost with the dead nodes", out, 1, true)
    assert.matches("LOST stream $G > R1S (R1): no data on this node; it lived on n3 (BXScrY9i)", out, 1, true)
    local jcode, jout = fx.run("inspect", store, "--json")
    assert.are.equal(0, jcode)
    local j = assert(json.decode(jout))
    assert.are.equal("R1S", j.lost.streams[1].name)
    assert.are.same({ "BXScrY9i" }, j.lost.streams[1].peers)
    assert.are.equal(14, j.lost.source.snapshot_index)

    -- prepare says it at the end, and again on a re-run (from the moved-aside state)
    local pcode, pout = fx.run("prepare", store)
    assert.are.equal(0, pcode)
    assert.matches("LOST stream $G > R1S (R1)", pout, 1, true)
    assert.is_true(pout:find("Lost with the dead nodes", 1, true) > pout:find("Next steps", 1, true))
    local _, again = fx.run("prepare", store)
    assert.matches("nothing changed", again)
    assert.matches("LOST stream $G > R1S (R1)", again, 1, true)
    assert.matches("moved aside by prepare", again, 1, true)
  end)

  it("names every node when the operator gives the server names (JSR_SERVER_NAMES)", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local r = lost.analyze(assert(model.scan(store)), { names = { "n1", "n2", "n3" } })
    local names = {}
    for _, p in ipairs(r.peers) do names[#names + 1] = p.name end
    table.sort(names)
    assert.are.same({ "n1", "n2", "n3" }, names)
    -- n3 held R1S, which is not here: the survivor is n1 or n2
    local maybe = {}
    for _, p in ipairs(r.peers) do if p.maybe_this_node then maybe[#maybe + 1] = p.name end end
    table.sort(maybe)
    assert.are.same({ "n1", "n2" }, maybe)
  end)

  it("says nothing is lost when every assignment has data here, and unknown without meta state", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    -- give the store an R1S directory: a copy of ORDERS under that name
    fx.sh(("cp -a %s %s"):format(fx.quote(store .. "/jetstream/$G/streams/ORDERS"),
      fx.quote(store .. "/jetstream/$G/streams/R1S")))
    local r = lost.analyze(assert(model.scan(store)))
    assert.are.same({}, r.streams)
    local buf = {}
    lost.print(r, { write = function(_, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end })
    assert.matches("nothing: every stream and durable consumer the cluster assigned has data on this node",
      table.concat(buf), 1, true)

    local m = fx.modern() -- SYS/_js_/_meta_ holds only meta.inf
    finally(function() fx.cleanup(m) end)
    local r2 = lost.analyze(assert(model.scan(m)))
    assert.is_false(r2.available)
    assert.matches("neither a snapshot nor log entries", r2.why)
  end)

  it("finds acked work-queue jobs still on disk; its advice removes exactly those", function()
    -- a survivor killed under load: the server had deleted the jobs in memory only
    local store = fx.unpack("survivor-wq-load-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local r = lost.analyze(assert(model.scan(store)))
    assert.are.equal(1, #r.done)
    local d = r.done[1]
    assert.are.same({ "ACME", "LOADQ", 129, 368, 496 }, { d.account, d.stream, d.messages, d.first, d.last })
    local c = d.consumers[1]
    assert.are.equal("worker", c.name)
    assert.are.equal(495, c.state.ack_floor.stream)
    assert.are.equal(128, c.below_floor)
    assert.are.same({ 496 }, c.above_floor) -- acked only in worker's Raft log
    assert.are.equal(1, c.from_raft)
    local _, out = fx.run("inspect", store)
    assert.matches("nats stream purge LOADQ --seq 496", out, 1, true)
    assert.matches("1 known only from its Raft log under _js_): 496", out, 1, true)

    -- following it on the recovered server leaves every job that was not
    -- done (with the done_work hook keeping them, as without js-recover's
    -- own removal)
    local keep = fx.tmpdir()
    finally(function() fx.cleanup(keep) end)
    fx.sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(keep)))
    fx.write(keep .. "/keep-done.lua", [[
      return require("jsr.prepare").run({ done_work = function() return "keep" end }, ...)]])
    local code, _, err = fx.run("run", keep .. "/keep-done.lua", keep)
    assert.are.equal(0, code, err)
    local cluster = require "spec.support.cluster"
    local function served(dir)
      local report = assert(json.decode(fx.read(dir .. "/recovery-report.json")))
      local creds
      for _, a in ipairs(report.accounts) do if a.name == "ACME" then creds = a end end
      local srv = ns.start { config = dir .. "/recovery.conf" }
      return srv, creds
    end
    local srv, creds = served(keep)
    finally(function() srv:stop() end)
    local before = cluster.jsload(srv.url, creds, "dump").streams.LOADQ
    assert.are.equal(129, before.info.state.messages)
    cluster.jsload(srv.url, creds, "api", "--subject", "$JS.API.STREAM.PURGE.LOADQ", "--body", '{"seq":496}')
    cluster.jsload(srv.url, creds, "api", "--subject", "$JS.API.STREAM.MSG.DELETE.LOADQ", "--body", '{"seq":496}')
    local after = cluster.jsload(srv.url, creds, "dump").streams.LOADQ
    assert.are.equal(0, after.info.state.messages)
    assert.are.equal(496, after.info.state.last_seq)
    srv:stop()

    -- prepare's default removes exactly those itself: the same state, with
    -- nobody purging by hand, and undo puts them back
    local original = fx.tree_digest(store)
    local pout
    code, pout, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("(129 acked (workqueue retention): the cluster had removed them)", pout, 1, true)
    local srv2, creds2 = served(store)
    local done = cluster.jsload(srv2.url, creds2, "dump").streams.LOADQ
    srv2:stop()
    assert.are.same({ 0, after.info.state.first_seq, 496 },
      { done.info.state.messages, done.info.state.first_seq, done.info.state.last_seq })
    assert.are.equal(0, (fx.run("undo", store)))
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("lists a stream the cluster no longer assigned that is still on disk", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    fx.sh(("cp -a %s %s"):format(fx.quote(store .. "/jetstream/$G/streams/ORDERS"),
      fx.quote(store .. "/jetstream/$G/streams/OLD")))
    local r = lost.analyze(assert(model.scan(store)))
    assert.are.same({ { account = "$G", name = "OLD" } }, r.unassigned)
  end)
end)
