-- Several survivors (issue 16): a real 5-node cluster whose streams are
-- placed by server tags so that one has replicas on both surviving disks
-- (n4, n5), some on one of them, one on neither.  n4 is stopped first
-- while writes go on (its copies fall behind), then n1..n3 are SIGKILLed
-- and n5 last.  `js-recover inspect n4 n5` must take each stream from its
-- most complete copy (n4, the lagging one, is given first on purpose) and
-- report lost only what no survivor holds; `js-recover restore n4 n5` into
-- a fresh cluster must serve, by the drill's scorecard, every message the
-- cluster acknowledged while a survivor held it, and nothing else.
-- Default: 2.9.10 and the newest release (about a minute each).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local drill = require "spec.support.drill"
local servers = require "spec.support.servers"

local newest = servers.newest() or servers.debian

-- n4 and n5 survive; "b" = {n3, n4, n5}, "o5" = {n1, n2, n5},
-- "o4" = {n1, n2, n4}, "x" = {n1, n2, n3}
local TAGS = { n1 = { "o5", "o4", "x" }, n2 = { "o5", "o4", "x" }, n3 = { "b", "x" },
               n4 = { "b", "o4" }, n5 = { "b", "o5" } }
-- the target cluster can place every stream as the dead one did
local TARGET_TAGS = { n1 = { "b", "o4", "o5", "x", "node:n5" }, n2 = { "b", "o4", "o5", "x" },
                      n3 = { "b", "o4", "o5", "x" } }

local function by_name(list, name)
  for _, s in ipairs(list) do if s.name == name then return s end end
end

-- jspub creates (or finds) the stream, publishes, then creates (or finds)
-- the consumer and acks; each call here does one of the two, so a create
-- of either that a loaded cluster times out has done nothing yet and is
-- asked again
local function pub(c, i, o)
  o.url = c.nodes[i].url
  o.user, o.password, o.timeout_ms = cluster.USERS.ACME.user, cluster.USERS.ACME.password, 20000
  local ok, r
  for _ = 1, 5 do
    ok, r = pcall(ns.jspub, {}, o)
    if ok or not (tostring(r):find("js_AddStream(", 1, true) or tostring(r):find("js_AddConsumer(", 1, true)) then
      break
    end
    cluster.sleep(2)
  end
  if not ok then error(r, 0) end
  return r
end

-- Two copies of one survivor's store, one record changed in the second:
-- the copies conflict at that sequence, which no rule settles.
describe("two copies that hold different messages at one sequence", function()
  local a, b, out
  setup(function()
    a, b = fx.unpack("survivor-2.9.10.tar.gz"), fx.unpack("survivor-2.9.10.tar.gz")
    out = ns.tmpdir()
    -- the payload's last byte of ORDERS #500 (record: u32 length, u64 seq, ...)
    local p = b .. "/jetstream/$G/streams/ORDERS/msgs/1.blk"
    local data = assert(fx.read(p))
    local o, done = 1, false
    while o + 22 <= #data and not done do
      local rl, seq = string.unpack("<I4I8", data, o)
      local len = rl & 0x7fffffff
      if seq == 500 then
        local at = o + len - 9
        data = data:sub(1, at - 1) .. string.char(data:byte(at) ~ 0xff) .. data:sub(at + 1)
        done = true
      end
      o = o + len
    end
    assert(done, "no record 500 in " .. p)
    fx.write(p, data)
  end)
  teardown(function() fx.cleanup(a); fx.cleanup(b); fx.cleanup(out) end)

  it("inspect reports the conflict with its sequence, and only there (exit 1)", function()
    local code, text, err = fx.run("inspect", a, b, "--json")
    assert.are.equal(1, code, err)
    local r = assert(json.decode(text))
    for _, s in ipairs(r.streams) do
      if s.name == "ORDERS" then
        assert.are.equal(1, #s.conflicts, text)
        assert.are.equal(1, s.conflicts[1].sequences)
        assert.are.same({ 500 }, s.conflicts[1].examples)
      else
        assert.are.same({}, s.conflicts, s.name)
      end
    end
  end)

  it("export leaves the conflicting stream out, named, and the others in (exit 1)", function()
    local code, text, err = fx.run("export", a, b, out .. "/x")
    assert.are.equal(1, code, err .. text)
    assert.matches("LEFT OUT $G > ORDERS", err, 1, true)
    assert.matches("(first 500)", err, 1, true)
    assert.is_nil(jsr.lstat(out .. "/x/$G/ORDERS"))
    assert.are.equal("file", jsr.lstat(out .. "/x/$G/EVENTS/backup.json"))
  end)

  it("a policy's choose_copy settles it: the copy it names is taken", function()
    local pol = out .. "/take-first.lua"
    fx.write(pol, ("return require('jsr.export').run({ choose_copy = function(s, copies) "
      .. "if s.name == 'ORDERS' then return %q end end }, ...)\n"):format(a))
    local code, text, err = fx.run("run", pol, a, b, out .. "/y")
    assert.are.equal(0, code, err .. text)
    assert.matches("ORDERS: from [^\n]* %(policy", err)
    assert.are.equal("file", jsr.lstat(out .. "/y/$G/ORDERS/backup.json"))
  end)
end)

-- The journaled mkdir prepare --into one of the stores uses: killed before
-- each step of a commit, or each step failing, the store comes back as it
-- was with undo (or the commit's own rollback).
describe("a change set that makes directories", function()
  local dir, script
  setup(function()
    dir = ns.tmpdir()
    os.execute(("mkdir -p %s/s/jetstream/ACC && echo old > %s/s/jetstream/ACC/f"):format(dir, dir))
    script = dir .. "/mk.lua"
    fx.write(script, table.concat({
      "local jsr = require 'jsr'",
      "local store = ...",
      "local c = assert(assert(jsr.open(store)):changes())",
      "assert(c:mkdir(store .. '/jetstream/NEW'))",
      "assert(c:mkdir(store .. '/jetstream/NEW/streams'))",
      "assert(c:replace(store .. '/jetstream/NEW/streams/x', 'new'))",
      "assert(c:replace(store .. '/jetstream/ACC/f', 'replaced'))",
      "print(assert(c:commit()))" }, "\n") .. "\n")
  end)
  teardown(function() fx.cleanup(dir) end)

  it("is undone byte for byte after a crash before any step or a failure at any step", function()
    local s = dir .. "/s"
    local before = fx.tree_digest(s)
    local code, _, trace = fx.run_with({ env = { JSR_CRASH_TRACE = "1" } }, "run", script, s)
    assert.are.equal(0, code, trace)
    assert.are.equal("directory", jsr.lstat(s .. "/jetstream/NEW/streams"))
    assert.are.equal("new", fx.read(s .. "/jetstream/NEW/streams/x"))
    local steps = select(2, trace:gsub("jsr%-step", ""))
    assert.is_true(steps > 10, trace)
    local ucode, uout, uerr = fx.run("undo", s)
    assert.are.equal(0, ucode, uerr .. uout)
    assert.are.equal(before, fx.tree_digest(s))
    for i = 1, steps do
      for _, how in ipairs { { JSR_CRASH_AT = tostring(i) }, { JSR_FAULT_AT = i .. ":EIO" } } do
        local c = dir .. "/c"
        os.execute(("rm -rf %s && cp -a %s %s"):format(cluster.quote(c), cluster.quote(s), cluster.quote(c)))
        local rc = fx.run_with({ env = how }, "run", script, c)
        assert.are_not.equal(0, rc, "step " .. i)
        fx.run("undo", c) -- nothing to undo after a rollback: exit 0 or 1, the tree decides
        assert.are.equal(before, fx.tree_digest(c), ("step %d %s"):format(i, next(how)))
      end
    end
  end)
end)

-- What a standalone server of that version serves from a prepared store,
-- scored against the record
local function served(store, server, before, lost)
  local report = assert(json.decode(cluster.read_file(store .. "/recovery-report.json")))
  local srv = ns.start { config = store .. "/recovery.conf", log_path = store .. ".standalone.log", timeout = 60,
                         bin = server.bin }
  local ok, card = pcall(function()
    local after = { BETA = { streams = {} } }
    for _, a in ipairs(report.accounts) do
      if a.user and (a.original_name or a.name) == "ACME" then
        after.ACME = cluster.jsload(srv.url, { user = a.user, password = a.password }, "dump", "--timeout-ms", "10000")
      end
    end
    return drill.compare(before, after, lost)
  end)
  srv:stop()
  assert(ok, card)
  return card
end

-- every message the survivors held, exact, nothing else; states and both
-- consumers exact; no config field changed but by the policy
local function assert_card(card, name, early, total)
  local text = drill.scorecard_text { name = name, card = card, score = card.score, survivor = "n4+n5",
    survivor_stop = "SIG" .. early .. " early, SIGKILL", timings = {} }
  local m = card.messages
  -- 100 BOTH + 100 ONE5 + 60 ONE4 + 70 L5 (NONE is reported lost)
  assert.are.equal(total or 330, m.total, text)
  assert.are.equal(m.total, m.exact, text)
  assert.are.equal(0, m.resurrected, text)
  assert.are.same({}, card.streams.missing, text)
  assert.are.equal(1, card.streams.lost_reported, text)
  assert.are.equal(card.state.total, card.state.exact, text)
  assert.are.equal(2, card.acks.total, text)
  assert.are.equal(card.acks.total, card.acks.exact, text)
  assert.are.same({}, card.lost.wrongly_reported, text)
  local changed = {}
  for _, ch in ipairs(card.config.changed) do
    -- a field the cluster's server did not have is the new server's default
    if not ch:find(": nil -> ", 1, true) then changed[#changed + 1] = ch end
  end
  assert.are.same({}, changed, text)
end

for vi, server in ipairs(servers.fast()) do
  -- one version stops n4 cleanly, the other kills it
  local early = vi == 1 and "TERM" or "KILL"
describe("five " .. server.version .. " nodes, two disks survive (n4 stopped early with SIG" .. early .. ")", function()
  local dir, c, before, insp, icode, ierr, rcode, rout, rerr, card, digests = nil
  local pcode, pout, perr, pcard, ucode, uout, uerr, merged_after_undo
  local icode2, iout2, ierr2, icard, undo_code, undo_out, undo_err
  local n4, n5

  setup(function()
    dir = ns.tmpdir()
    local ok, e = pcall(function()
      c = cluster.start { dir = dir .. "/dead", nodes = 5, bin = server.bin, tags = TAGS }
      local function stream(name, tag, replicas)
        return { stream = name, replicas = replicas or 3, placement_tag = tag, payload_size = 300 }
      end
      -- phase 1: every node up
      for _, s in ipairs {
        stream("BOTH", "b"), stream("ONE5", "o5"), stream("ONE4", "o4"), stream("NONE", "x"),
        stream("L5", "node:n5", 1) } do
        s.count = 60
        pub(c, 1, s)
        if s.stream == "BOTH" or s.stream == "ONE5" then
          pub(c, 1, { stream = s.stream, replicas = 3, placement_tag = s.placement_tag, consumer = "proc", ack = 20 })
        end
      end
      cluster.jsload(c:urls(1), "ACME", "settle", "--wait-ms", "60000")
      cluster.sleep(1.5) -- followers apply a moment after they report current; o.dat every 100 ms
      cluster.jsload(c:urls(1), "ACME", "settle", "--wait-ms", "60000")
      local first = cluster.jsload(c:urls(1), "ACME", "dump", "--timeout-ms", "10000")
      -- n4 drops out; the others go on
      c:kill(4, early, 20)
      pub(c, 1, { stream = "BOTH", replicas = 3, placement_tag = "b", payload_size = 300, count = 40 })
      pub(c, 1, { stream = "BOTH", replicas = 3, placement_tag = "b", consumer = "proc", ack = 30 })
      pub(c, 1, { stream = "ONE5", replicas = 3, placement_tag = "o5", payload_size = 300, count = 40 })
      pub(c, 1, { stream = "ONE5", replicas = 3, placement_tag = "o5", consumer = "proc", ack = 10 })
      pub(c, 1, { stream = "NONE", replicas = 3, placement_tag = "x", payload_size = 300, count = 40 })
      pub(c, 1, { stream = "L5", replicas = 1, placement_tag = "node:n5", payload_size = 300, count = 10 })
      cluster.sleep(2)
      -- a group n4 led elects a new leader first (2.15.3 times stream info
      -- out meanwhile)
      local dumped, d
      for _ = 1, 10 do
        dumped, d = pcall(cluster.jsload, c:urls(1), "ACME", "dump", "--timeout-ms", "10000")
        if dumped then break end
        cluster.sleep(2)
      end
      assert(dumped, d)
      before = { ACME = d }
      -- ONE4 took no writes after n4 left: its record is the first one's
      before.ACME.streams.ONE4 = first.streams.ONE4
      before.BETA = { streams = {} }
      -- the disaster
      for i = 1, 3 do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
      for i = 1, 3 do c:kill(i, "KILL") end
      cluster.sleep(1)
      c:kill(5, "KILL")
      n4, n5 = c.nodes[4].store_dir, c.nodes[5].store_dir
      digests = { fx.tree_digest(n4), fx.tree_digest(n5) }
      -- the lagging survivor first: the rule, not the order, must decide
      icode, insp, ierr = fx.run("inspect", n4, n5, "--json")
      local t = cluster.start { dir = dir .. "/new", bin = newest.bin, tags = TARGET_TAGS }
      local map = dir .. "/accounts.json"
      fx.write(map, assert(json.encode { ACME = cluster.USERS.ACME }))
      rcode, rout, rerr = fx.run("restore", n4, n5, "--server", t.nodes[1].url, "--accounts", map, "--json")
      digests[3], digests[4] = fx.tree_digest(n4), fx.tree_digest(n5)
      local lost = json.decode(insp)
      lost = lost and lost.lost
      for _ = 1, 30 do
        local after = { ACME = cluster.jsload(t:urls(1), "ACME", "dump", "--timeout-ms", "10000"),
                        BETA = { streams = {} } }
        card = drill.compare(before, after, lost)
        if card.acks.exact == card.acks.total and card.state.exact == card.state.total then break end
        cluster.sleep(1)
      end
      t:stop_all()
      -- prepare n4 n5 --into a new directory, served by a standalone server
      local into = dir .. "/merged"
      pcode, pout, perr = fx.run("prepare", n4, n5, "--into", into)
      digests[5], digests[6] = fx.tree_digest(n4), fx.tree_digest(n5)
      if pcode == 0 then
        pcard = served(into, server, before, lost)
        ucode, uout, uerr = fx.run("undo", into)
        merged_after_undo = jsr.lstat(into .. "/recovery.conf")
      end
      -- prepare n4 n5 --into n4 (a copy of it): n4 itself rewritten, served
      local x = dir .. "/n4-into"
      os.execute(("cp -a %s %s"):format(cluster.quote(n4), cluster.quote(x)))
      icode2, iout2, ierr2 = fx.run("prepare", x, n5, "--into", x)
      if icode2 == 0 then
        icard = served(x, server, before, lost)
      end
      -- and on another copy, not served: undo gives n4 back byte for byte
      local y = dir .. "/n4-undo"
      os.execute(("cp -a %s %s"):format(cluster.quote(n4), cluster.quote(y)))
      local yc, yo, ye = fx.run("prepare", y, n5, "--into", y)
      assert(yc == 0, ye .. yo)
      undo_code, undo_out, undo_err = fx.run("undo", y)
      digests[7], digests[8] = fx.tree_digest(y), fx.tree_digest(n4)
    end)
    if c then c:stop_all() end
    -- JSR_SURVIVORS_KEEP=1 keeps the stores (to look at inspect's table)
    if ok and not os.getenv("JSR_SURVIVORS_KEEP") then ns.rmtree(dir) end
    assert(ok, tostring(e) .. " (kept " .. dir .. ")")
    if os.getenv("JSR_SURVIVORS_KEEP") then io.stderr:write("kept ", dir, "\n") end
  end)

  it("inspect shows each stream's copies and takes the most complete", function()
    assert.are.equal(0, icode, ierr .. insp)
    local r = assert(json.decode(insp))
    local both = assert(by_name(r.streams, "BOTH"), insp)
    assert.are.equal(2, #both.copies, insp)
    -- n4 stopped after 60 messages, n5 had all 100
    local c4, c5 = both.copies[1], both.copies[2]
    assert.are.equal(60, c4.last_seq)
    assert.are.equal(100, c5.last_seq)
    assert.is_true(c5.chosen and not c4.chosen, insp)
    assert.are.equal(jsr.realpath(n5), jsr.realpath(both.chosen))
    assert.is_true(c5.raft.last_index > c4.raft.last_index or c5.raft.last_term > c4.raft.last_term, insp)
    local proc = both.consumers[1]
    assert.are.equal("proc", proc.name)
    assert.are.equal(20, proc.copies[1].ack_floor)
    assert.are.equal(50, proc.copies[2].ack_floor)
    assert.is_true(proc.copies[2].chosen, insp)
    -- the streams on one survivor, from it
    assert.are.equal(jsr.realpath(n4), jsr.realpath(by_name(r.streams, "ONE4").chosen))
    assert.are.equal(jsr.realpath(n5), jsr.realpath(by_name(r.streams, "ONE5").chosen))
    assert.are.equal(1, #by_name(r.streams, "ONE5").copies)
    assert.is_nil(by_name(r.streams, "NONE"))
    assert.are.same({}, r.streams[1].conflicts)
  end)

  it("reports lost only what no survivor holds", function()
    local r = assert(json.decode(insp))
    assert.is_true(r.lost.available)
    local names = {}
    for _, s in ipairs(r.lost.streams) do names[#names + 1] = s.account .. " > " .. s.name end
    assert.are.same({ "ACME > NONE" }, names)
    assert.are.same({}, r.lost.consumers)
  end)

  it("restore takes every stream from its chosen copy: nothing lost that a disk held, nothing resurrected", function()
    assert.are.equal(0, rcode, rerr .. rout)
    local res = assert(json.decode(rout))
    local from = {}
    for _, x in ipairs(res.streams) do from[x.stream] = jsr.realpath(x.from) end
    assert.are.same({ BOTH = jsr.realpath(n5), ONE5 = jsr.realpath(n5), L5 = jsr.realpath(n5),
                      ONE4 = jsr.realpath(n4) }, from)
    assert_card(card, "survivors-" .. server.version, early)
  end)

  it("prepare --into DIR gathers every stream's chosen copy; a standalone server serves them exactly", function()
    assert.are.equal(0, pcode, perr .. pout)
    assert_card(pcard, "survivors-prepare-" .. server.version, early)
    -- and undo takes the prepare of DIR back
    assert.are.equal(0, ucode, uerr .. uout)
    assert.is_nil(merged_after_undo)
  end)

  it("prepare n4 n5 --into n4 rewrites n4 with every chosen copy (journaled); served exactly; undo gives n4 back", function()
    assert.are.equal(0, icode2, ierr2 .. iout2)
    assert_card(icard, "survivors-into-n4-" .. server.version, early)
    assert.are.equal(0, undo_code, undo_err .. undo_out)
    assert.are.equal(digests[8], digests[7])
  end)

  it("reads the survivors' stores only", function()
    assert.are.equal(digests[1], digests[3])
    assert.are.equal(digests[2], digests[4])
    assert.are.equal(digests[1], digests[5])
    assert.are.equal(digests[2], digests[6])
  end)
end)
end
