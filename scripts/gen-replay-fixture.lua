-- Records a real cluster's stream Raft logs with a publish of every kind
-- the server refuses, and deletes and purges, for spec/replay_spec.lua
-- (spec/fixtures/README.md, docs/FORMAT.md "Replay of a stream's log").
--
--   JSR_BUILD=build LUA_PATH="lua/?.lua;./?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 scripts/gen-replay-fixture.lua <nats-server> <out.tar.gz> [newer]
--
-- A 3-node cluster on 127.0.0.1 (spec/support/cluster.lua), account ACME,
-- R3 streams, the publishes, deletes and purges of spec/support/rejects.lua
-- (natscli with headers); then what the cluster serves (jsload dump) is
-- written to expected.json (a refused Nats-Expected-Last-Msg-Id publish
-- follows it), every node is SIGKILLed (no shutdown snapshot compacts the
-- logs) and node n2's store goes into the archive as n2/, with
-- expected.json and log.txt (what each publish got back).  With `newer`:
-- the streams of spec/support/newops.lua instead (what 2.10+ logs beyond
-- messages, deletes and purges: transforms, TTLs and delete markers,
-- counters, atomic batches, schedules, as the version has them).
local cluster = require "spec.support.cluster"
local ns = require "spec.support.natsserver"
local json = require("jsr").json
local rejects = require "spec.support.rejects"

local bin, out, newer = arg[1], arg[2], arg[3] == "newer"
assert(bin and out, "usage: gen-replay-fixture.lua <nats-server> <out.tar.gz> [newer]")
local version = newer and assert(io.popen(cluster.quote(bin) .. " --version")):read("a"):match("v([%d.]+)")
local dir = ns.tmpdir()
local c = cluster.start { dir = dir, bin = bin }
local log = {}
local function say(l) log[#log + 1] = l; print(l) end
local ok, err = pcall(function()
  local urls = c:urls(1)
  local r = rejects.new(urls[1], cluster.USERS.ACME, say)
  if newer then
    require("spec.support.newops").new(r, version, dir):publishes()
  else
    r:publishes()
    -- deletes and purges right before the crash
    r:removals()
  end
  cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
  cluster.sleep(1)
  local before = cluster.jsload(urls, "ACME", "dump", "--timeout-ms", "10000")
  -- a stream of many messages keeps its state and its first and last two
  -- (the digests of a thousand would be most of the fixture)
  for _, st in pairs(before.streams) do
    local l = st.messages
    if #l > 50 then st.messages, st.sampled = { l[1], l[2], l[#l - 1], l[#l] }, true end
  end
  cluster.write_file(dir .. "/expected.json", json.encode(before))
  -- refused, it changes nothing the dump above holds
  if not newer then r:last() end
  cluster.sleep(1)
end)
-- every node at once, so none writes a shutdown snapshot
for i = 1, 3 do if c.nodes[i].srv then os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end end
for i = 1, 3 do c:kill(i, "KILL") end
if not ok then c:stop_all(); error(err .. " (kept in " .. dir .. ")", 0) end
cluster.write_file(dir .. "/log.txt", table.concat(log, "\n") .. "\n")
local q = cluster.quote
assert(os.execute(("cd %s && tar -czf %s --owner=0 --group=0 n2 expected.json log.txt"):format(q(dir),
  q(out:sub(1, 1) == "/" and out or (os.getenv("PWD") .. "/" .. out)))))
c:stop_all()
ns.rmtree(dir)
print("wrote " .. out)
