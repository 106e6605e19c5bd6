-- A real survivor of a cluster whose streams are `compression: s2`
-- (2.10.27, the first release with it, and the newest): a 3-node cluster
-- of that release with an R3 compressed stream (small blocks, so many are
-- compressed), a message deleted, a consumer part-way through it; what it
-- served recorded (counts, every message's digest, the consumer's
-- position); two nodes SIGKILLed, then the survivor.  The survivor's own
-- store is restored with `js-recover restore` (its compressed blocks sent
-- decoded) into a fresh 3-node cluster of the newest release, which must
-- serve exactly what the dead cluster served; the store is only read.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local nats, newest = servers.natscli(), servers.newest()
if not (nats and newest) then return end -- servers.lua names what was not built

local versions = {}
for _, s in ipairs(servers.all()) do
  if s.version == "2.10.27" or s == newest then versions[#versions + 1] = s end
end

local acme = cluster.USERS.ACME
local function nats_run(url, args)
  local parts = { fx.quote(nats), "--server", url, "--user", acme.user, "--password", acme.password }
  for _, a in ipairs(args) do parts[#parts + 1] = fx.quote(a) end
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
  local out = h:read("a")
  local ok = h:close()
  assert(ok, ("nats %s: %s"):format(table.concat(args, " "), out))
  return out
end

local function served(url)
  local creds = { user = acme.user, password = acme.password }
  local s = ns.jscheck({ url = url }, creds).streams
  return s, ns.jscheck({ url = url }, { user = acme.user, password = acme.password, messages = "C" }).messages
end

for _, v in ipairs(versions) do
describe("a compressed " .. v.version .. " survivor restored into a fresh " .. newest.version .. " cluster", function()
  local dir, store, compressed, before, before_msgs, code, out, err, digest0, digest1
  local after, after_msgs

  setup(function()
    dir = fx.tmpdir()
    local old, new
    local ok, e = pcall(function()
      old = cluster.start { dir = dir .. "/old", bin = v.bin }
      local url = old.nodes[1].url
      -- max_bytes this small gives the server its smallest blocks (32,000
      -- bytes), so the messages fill several and each full one is
      -- compressed (180 messages of about 640 bytes stay under the limit)
      nats_run(url, { "stream", "add", "C", "--subjects", "c.>", "--storage", "file", "--replicas", "3",
        "--compression", "s2", "--max-bytes", "120000", "--defaults" })
      for subject = 1, 3 do
        nats_run(url, { "pub", "c." .. subject, "--count", "60",
          "message {{Count}} " .. ("lorem ipsum {{Count}} "):rep(40) })
      end
      nats_run(url, { "stream", "rmm", "C", "170", "-f" })
      nats_run(url, { "consumer", "add", "C", "proc", "--pull", "--ack", "explicit", "--deliver", "all",
        "--replicas", "3", "--defaults" })
      nats_run(url, { "consumer", "next", "C", "proc", "--count", "25", "--ack" })
      before, before_msgs = served(url)
      cluster.sleep(1) -- consumer state is flushed to o.dat every 100 ms or so
      old:kill(2, "KILL")
      old:kill(3, "KILL")
      old:kill(1, "KILL")
      store = old.nodes[1].store_dir
      compressed = 0
      for _, b in ipairs(jsr.block_files(store .. "/jetstream/ACME/streams/C") or {}) do
        if fx.read(b.path):sub(1, 3) == "cmp" then compressed = compressed + 1 end
      end
      digest0 = fx.tree_digest(store)
      new = cluster.start { dir = dir .. "/new", bin = newest.bin }
      code, out, err = fx.run("restore", store, "--server", new.nodes[1].url, "--user", acme.user,
        "--password", acme.password, "--json")
      digest1 = fx.tree_digest(store)
      -- a restored R3 consumer reports its pending count once its leader is up
      for _ = 1, 30 do
        after, after_msgs = served(new.nodes[2].url)
        local c = after.C and after.C.consumers.proc
        if c and c.num_pending == before.C.consumers.proc.num_pending then break end
        cluster.sleep(1)
      end
    end)
    if old then old:stop_all() end
    if new then new:stop_all() end
    if not ok then ns.rmtree(dir); error(e) end
  end)

  teardown(function() ns.rmtree(dir) end)

  it("has compressed blocks to restore", function()
    assert.is_true(compressed >= 2, "compressed blocks: " .. compressed)
    assert.are.same({ 179, 1, 180 }, { before.C.messages, before.C.first_seq, before.C.last_seq })
  end)

  it("restores and finds it served as sent (exit 0)", function()
    assert.are.equal(0, code, err .. out)
    local r = assert(json.decode(out))
    assert.is_true(r.ok, out)
    assert.are.equal("restored", r.streams[1].action)
  end)

  it("serves exactly what the dead cluster served: state, every message, the consumer", function()
    local b, a = before.C, after.C
    assert.are.same({ b.messages, b.bytes, b.first_seq, b.last_seq, b.retention, b.replicas },
      { a.messages, a.bytes, a.first_seq, a.last_seq, a.retention, a.replicas })
    assert.are.same(before_msgs, after_msgs)
    local bc, ac = b.consumers.proc, a.consumers.proc
    assert.are.same({ bc.ack_floor_stream_seq, bc.delivered_stream_seq, bc.num_pending, bc.num_ack_pending },
      { ac.ack_floor_stream_seq, ac.delivered_stream_seq, ac.num_pending, ac.num_ack_pending })
  end)

  it("reads the survivor's store only", function()
    assert.are.equal(digest0, digest1)
  end)
end)
end
