-- Salvage from an encrypted store's Raft logs (jetstream { key, cipher }),
-- against real servers: a 3-node encrypted cluster takes traffic, every
-- node is SIGKILLed, and in a copy of one node's store the stream store
-- is cut back behind its encrypted log (written encrypted again, under a
-- new 1.key) and a consumer's sealed o.dat is set back.  prepare, with the
-- key in a file, must append the log's tail as an encrypted block (a new
-- one with its own N.key, or the torn last block under its own key),
-- seal o.dat again, and a standalone server started with the key must
-- serve every message and the exact consumer position the cluster had;
-- undo gives the copy back byte for byte.  Then done work in an
-- encrypted 2.10+ store: acked work-queue jobs the blocks still hold are
-- removed (the block rewritten encrypted), the server loads it without
-- them, also once msgs/index.db is gone, and undo puts the block back.
--
-- Default: 2.9.10 with chacha (torn last block) and the newest release
-- with aes (a new block); JSR_ENCRYPTED_ALL=1 runs both ciphers on each.
local jsr = require "jsr"
local json = jsr.json
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local cutstore = require "spec.support.cutstore"

local BIN = os.getenv("JSR_BIN") or "build/js-recover"
local q = cluster.quote

local function sh(cmd) assert(os.execute(cmd), cmd) end
local function js_recover(...) return cluster.run({ BIN, ... }) end

-- the store's Raft groups: {sys, streams by name}
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

local function odat_keys(sdir, stream, consumer)
  return { keyfile = sdir .. "/obs/" .. consumer .. "/meta.key", account = "ACME",
           context = stream .. "." .. consumer }
end

local runs = {}
for i, sv in ipairs(servers.fast()) do
  if os.getenv("JSR_ENCRYPTED_ALL") == "1" then
    for _, cipher in ipairs { "chacha", "aes" } do
      runs[#runs + 1] = { server = sv, cipher = cipher, torn = cipher == "chacha" }
    end
  else
    runs[#runs + 1] = { server = sv, cipher = i == 1 and "chacha" or "aes", torn = i == 1 }
  end
end

for _, run in ipairs(runs) do
describe(("salvage from an encrypted %s store's logs (%s, %s)"):format(run.server.version, run.cipher,
    run.torn and "torn last block" or "a new block"), function()
  local dir, c, copy, served, before, prep_out, verify_code, verify_out, digest0, digest_undo, undo_code
  local cut, key, kf = {}, nil, nil
  local err

  setup(function()
    dir = ns.tmpdir()
    key = "enc-" .. jsr.random_hex(16)
    local ok, e = pcall(function()
      c = cluster.start { dir = dir, key = key, cipher = run.cipher, bin = run.server.bin }
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
      for i = 1, 3 do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
      for i = 1, 3 do c:kill(i, "KILL") end
      copy = dir .. "/copy"
      sh(("cp -a %s %s"):format(q(c.nodes[2].store_dir), q(copy)))
      -- this process reads and writes the copy with the cluster's key
      jsr.set_keys { key = key }
      local sys, by = groups(copy)
      assert(sys, "no _js_ in the copy (the meta log not read with the key?)")
      local sdir = copy .. "/jetstream/ACME/streams/LOAD"
      local first_in_log
      raft.log(sys .. "/" .. by.LOAD.group.name, function(_, ae)
        for _, en in ipairs(ae.entries) do
          if en.type == raft.NORMAL and (en.data:byte(1) == 4 or en.data:byte(1) == 14) then
            local m = assert(raft.stream_msg(en.data))
            first_in_log = first_in_log or (m.lseq + 1)
          end
        end
      end)
      assert(first_in_log, "no message in LOAD's encrypted log")
      local last = blocks.scan({ name = "LOAD", path = sdir, account = "ACME" }).last_seq
      cut.keep = math.max(first_in_log - 1, last - 60)
      cut.last = last
      cut.kept = cutstore(sdir, "LOAD", "ACME", cut.keep, { torn = run.torn and "load.a" or nil, cipher = run.cipher })
      -- the sealed o.dat set back to the consumer group's snapshot, or to nothing
      local odat = sdir .. "/obs/reader/o.dat"
      local ok_keys = odat_keys(sdir, "LOAD", "reader")
      cut.odat = assert(raft.consumer_state(assert(jsr.sealed_open(odat, ok_keys))))
      local snap = raft.latest_snapshot(sys .. "/" .. by.LOAD.consumers.reader.group.name)
      local old = snap and assert(raft.consumer_state(snap.data))
        or { ack_floor = { consumer = 0, stream = 0 }, delivered = { consumer = 0, stream = 0 },
             pending = {}, redelivered = {} }
      cut.old_floor = old.ack_floor.stream
      cluster.write_file(odat, assert(jsr.sealed_seal(odat, jsr.odat.encode(old), ok_keys)))
      jsr.set_keys(nil)

      kf = dir .. "/js.key"
      cluster.write_file(kf, key .. "\n")
      sh("chmod 600 " .. q(kf))
      -- undo, proven on a second copy (the standalone server writes to the first)
      local copy2 = dir .. "/copy2"
      sh(("cp -a %s %s"):format(q(copy), q(copy2)))
      digest0 = fx.tree_digest(copy2)
      local c2 = js_recover("prepare", copy2, "--key-file", kf)
      assert(c2 == 0, "prepare of the second copy failed")
      undo_code = js_recover("undo", copy2)
      digest_undo = fx.tree_digest(copy2)
      local pcode, pout, perr = js_recover("prepare", copy, "--key-file", kf)
      assert(pcode == 0, perr .. pout)
      prep_out = pout
      verify_code, verify_out = js_recover("verify", copy, "--key-file", kf)
      -- as prepare left them, before the server runs
      cut.block1 = cluster.read_file(sdir .. "/msgs/1.blk") or ""
      cut.block2 = cluster.read_file(sdir .. "/msgs/2.blk")
      cut.key2 = jsr.lstat(sdir .. "/msgs/2.key")
      local report = assert(json.decode(cluster.read_file(copy .. "/recovery-report.json")))
      local srv = ns.start { config = copy .. "/recovery.conf", log_path = dir .. "/standalone.log", timeout = 60,
                             env = { JSR_KEY = key }, bin = run.server.bin }
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

  it("cut the encrypted store behind its log and set the sealed o.dat back (the situation is there)", function()
    assert.is_nil(err, err)
    assert.is_true(cut.last > cut.keep, ("store last %d, kept %d"):format(cut.last, cut.keep))
    assert.is_true(cut.odat.ack_floor.stream > cut.old_floor,
      ("o.dat floor %d, set back to %d"):format(cut.odat.ack_floor.stream, cut.old_floor))
  end)

  it("prepare replays the encrypted logs: appends the tail, applies the consumer updates, says so", function()
    assert.is_nil(err, err)
    assert.matches(("salvage: stream ACME > LOAD: log ahead of the store by %d message(s); append seq %d-%d to ")
      :format(cut.last - cut.keep, cut.keep + 1, cut.last), prep_out, 1, true)
    assert.matches("salvage: consumer ACME > LOAD > reader: log ahead of o.dat by", prep_out, 1, true)
    assert.is_nil(prep_out:find("not supported yet", 1, true), prep_out)
  end)

  it("writes what it appends encrypted: no message subject in the clear", function()
    assert.is_nil(err, err)
    if run.torn then
      assert.is_nil(cut.block2)
    else
      assert.is_not_nil(cut.block2)
      assert.are.equal("file", cut.key2) -- its own key, as the server makes one
      assert.is_nil(cut.block2:find("load.a", 1, true))
    end
    assert.is_nil(cut.block1:find("load.a", 1, true))
  end)

  it("the standalone server (with the key) serves every message and the exact consumer position", function()
    assert.is_nil(err, err)
    local want, got = {}, {}
    for _, m in ipairs(before.streams.LOAD.messages) do want[#want + 1] = m[1] .. " " .. m[4] end
    for _, m in ipairs(served.streams.LOAD.messages) do got[#got + 1] = m[1] .. " " .. m[4] end
    assert.is_true(#want > 60)
    assert.are.same(want, got)
    local b, a = before.streams.LOAD.consumers.reader, served.streams.LOAD.consumers.reader
    for _, k in ipairs { "ack_floor", "delivered" } do
      assert.are.equal(b[k].consumer_seq, a[k].consumer_seq, k)
      assert.are.equal(b[k].stream_seq, a[k].stream_seq, k)
    end
    assert.are.equal(b.num_ack_pending, a.num_ack_pending)
    assert.are.equal(b.num_pending, a.num_pending)
  end)

  it("verify (with the key) passes, and undo gives the copy back byte for byte", function()
    assert.is_nil(err, err)
    assert.are.equal(0, verify_code, verify_out)
    assert.are.equal(0, undo_code)
    assert.are.equal(digest0, digest_undo)
  end)
end)
end

-- Done work in an encrypted 2.10+ store: the drill's survivor (newest
-- release, aes, SIGKILLed) still holds the work queue's acked jobs in its
-- encrypted blocks; prepare removes them by rewriting the block encrypted.
local newest = servers.newest()
if newest then
describe("removal of done work from an encrypted " .. newest.version .. " store", function()
  local drill = require "spec.support.drill"
  local r, err, removed, counts, digest0, digest_undo, undo_code, block_before, block_after

  local function jobs_count(store, key, log)
    local report = assert(json.decode(cluster.read_file(store .. "/recovery-report.json")))
    local srv = ns.start { config = store .. "/recovery.conf", log_path = log, timeout = 60,
                           env = { JSR_KEY = key }, bin = newest.bin }
    local ok, res = pcall(function()
      for _, a in ipairs(report.accounts) do
        if (a.original_name or a.name) == "ACME" then
          local d = cluster.jsload(srv.url, { user = a.user, password = a.password }, "dump", "--timeout-ms", "10000")
          return d.streams.JOBS
        end
      end
    end)
    srv:stop()
    assert(ok, res)
    return res
  end

  setup(function()
    r = drill.variant { role = "follower", signal = "KILL", scale = 0.15, name = "done-aes", cipher = "aes",
                        keep = true, bin = newest.bin }
    if r.error then err = r.error; return end
    local ok, e = pcall(function()
      local kf = r.dir .. "/js.key"
      local key = cluster.read_file(kf):gsub("\n$", "")
      local store = r.dir .. "/" .. r.survivor
      local jobs = "/jetstream/ACME/streams/JOBS/msgs/1.blk"
      local a, b = r.dir .. "/done-a", r.dir .. "/done-b"
      sh(("cp -a %s %s && cp -a %s %s"):format(q(store), q(a), q(store), q(b)))
      block_before = cluster.read_file(a .. jobs)
      local code, out, perr = js_recover("prepare", a, "--key-file", kf)
      assert(code == 0, perr .. out)
      removed = tonumber(out:match("remove (%d+) message%(s%) from [^\n]*/JOBS/msgs/1%.blk"))
      block_after = cluster.read_file(a .. jobs)
      counts = { jobs_count(a, key, r.dir .. "/done1.log") }
      -- without msgs/index.db the server rebuilds from the blocks alone
      os.remove(a .. "/jetstream/ACME/streams/JOBS/msgs/index.db")
      counts[2] = jobs_count(a, key, r.dir .. "/done2.log")
      digest0 = fx.tree_digest(b)
      assert(js_recover("prepare", b, "--key-file", kf) == 0)
      undo_code = js_recover("undo", b)
      digest_undo = fx.tree_digest(b)
    end)
    if not ok then err = tostring(e) .. " (kept in " .. r.dir .. ")" end
  end)

  teardown(function()
    if r and r.dir and not err then ns.rmtree(r.dir) end
  end)

  it("removes acked jobs the encrypted blocks still hold, rewriting the block encrypted", function()
    assert.is_nil(err, err)
    assert.is_true((removed or 0) > 0, "no removal from JOBS")
    assert.are_not.equal(block_before, block_after)
    assert.are.equal(#block_before, #block_after) -- marked in place, same length
    assert.is_nil(block_after:find("jobs.", 1, true)) -- still encrypted
  end)

  it("the real server loads it without them, also once msgs/index.db is gone", function()
    assert.is_nil(err, err)
    local want = r.before.ACME.streams.JOBS
    for i = 1, 2 do
      local got = counts[i]
      assert.are.equal(want.info.state.messages, got.info.state.messages, "load " .. i)
      assert.are.equal(want.info.state.first_seq, got.info.state.first_seq, "load " .. i)
      assert.are.equal(want.info.state.last_seq, got.info.state.last_seq, "load " .. i)
      assert.are.equal(#want.messages, #got.messages, "load " .. i)
    end
  end)

  it("undo puts the encrypted store back byte for byte", function()
    assert.is_nil(err, err)
    assert.are.equal(0, undo_code)
    assert.are.equal(digest0, digest_undo)
  end)
end)
end
