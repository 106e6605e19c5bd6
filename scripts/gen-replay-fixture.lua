-- Records a real cluster's stream Raft logs with a publish of every kind
-- the server refuses, and deletes and purges, for spec/replay_spec.lua
-- (spec/fixtures/README.md, docs/FORMAT.md "Replay of a stream's log").
--
--   JSR_BUILD=build LUA_PATH="lua/?.lua;./?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 scripts/gen-replay-fixture.lua <nats-server> <out.tar.gz>
--
-- A 3-node cluster on 127.0.0.1 (spec/support/cluster.lua), account ACME,
-- R3 streams, publishes through natscli 0.5.0 (servers.lua's cache) with
-- headers; then what the cluster serves (jsload dump) is written to
-- expected.json (a refused Nats-Expected-Last-Msg-Id publish follows it), every node is SIGKILLed (no shutdown snapshot compacts
-- the logs) and node n2's store goes into the archive as n2/, with
-- expected.json and log.txt (what each publish got back).
local cluster = require "spec.support.cluster"
local ns = require "spec.support.natsserver"
local json = require("jsr").json

local bin, out = arg[1], arg[2]
assert(bin and out, "usage: gen-replay-fixture.lua <nats-server> <out.tar.gz>")
local NATS = os.getenv("NATSCLI") or (os.getenv("HOME") .. "/.cache/js-recover/servers/natscli-0.5.0/nats")
local dir = ns.tmpdir()
local c = cluster.start { dir = dir, bin = bin }
local log = {}
local function say(...) local l = table.concat({ ... }, " "); log[#log + 1] = l; print(l) end
local ok, err = pcall(function()
  local urls = c:urls(1)
  local url = urls[1]
  local function nats(...)
    local argv = { NATS, "-s", url, "--user", "acme", "--password", "acme-secret", "--timeout", "5s" }
    for _, a in ipairs { ... } do argv[#argv + 1] = a end
    local _, o, e = cluster.run(argv)
    return (((o or "") .. (e or "")):gsub("%d%d:%d%d:%d%d ", ""):gsub("\n+", " "))
  end
  local function create(cfg)
    cfg.num_replicas, cfg.storage = 3, "file"
    local r = nats("req", "$JS.API.STREAM.CREATE." .. cfg.name, json.encode(cfg))
    assert(r:find('"did_create":true', 1, true), r)
  end
  local function pub(subj, body, ...)
    local a = { "pub", subj, body, "-J" }
    for _, h in ipairs { ... } do a[#a + 1] = "-H"; a[#a + 1] = h end
    say("pub", subj, body, table.concat({ ... }, " "), "->", nats(table.unpack(a)))
  end
  create { name = "DEDUP", subjects = { "dd.>" }, duplicate_window = 120 * 1000000000 }
  create { name = "FULL", subjects = { "full.>" }, max_msgs = 3, discard = "new" }
  create { name = "FULLB", subjects = { "fb.>" }, max_bytes = 300, discard = "new" }
  create { name = "PERSUBJ", subjects = { "ps.>" }, max_msgs_per_subject = 1, discard = "new",
           discard_new_per_subject = true }
  create { name = "EXP", subjects = { "ex.>" } }
  create { name = "BIG", subjects = { "big.>" }, max_msg_size = 100 }
  create { name = "ROLL", subjects = { "ro.>" }, allow_rollup_hdrs = false }
  create { name = "PURGE", subjects = { "pu.>" } }
  create { name = "LMID", subjects = { "lm.>" } }
  create { name = "OLD", subjects = { "old.>" }, max_msgs = 4, max_msgs_per_subject = 2 }
  say("kv add", nats("kv", "add", "CFG", "--history", "1", "--replicas", "3"))

  pub("dd.a", "one", "Nats-Msg-Id:a")
  pub("dd.a", "one-dup", "Nats-Msg-Id:a")
  pub("dd.a", "two", "Nats-Msg-Id:b")
  for i = 1, 5 do pub("full.x", "f" .. i) end
  for i = 1, 5 do pub("fb.x", ("b"):rep(80)) end
  pub("ps.a", "1"); pub("ps.a", "2"); pub("ps.b", "3")
  pub("ex.a", "e1", "Nats-Msg-Id:m1"); pub("ex.b", "e2", "Nats-Msg-Id:m2")
  pub("ex.a", "wrong-last-seq", "Nats-Expected-Last-Sequence:1")
  pub("ex.a", "right-last-seq", "Nats-Expected-Last-Sequence:2")
  pub("ex.a", "kv-create-exists", "Nats-Expected-Last-Subject-Sequence:0")
  pub("ex.c", "kv-create-new", "Nats-Expected-Last-Subject-Sequence:0")
  pub("ex.a", "wrong-subj-seq", "Nats-Expected-Last-Subject-Sequence:1")
  pub("ex.a", "right-subj-seq", "Nats-Expected-Last-Subject-Sequence:3")
  pub("ex.a", "wrong-stream", "Nats-Expected-Stream:OTHER")
  pub("ex.d", "last-one")
  pub("big.a", ("x"):rep(200)); pub("big.a", "small")
  pub("lm.a", "m1", "Nats-Msg-Id:x")
  pub("ro.a", "r1"); pub("ro.a", "r2", "Nats-Rollup:sub"); pub("ro.a", "r3")
  for i = 1, 3 do pub("old.a", "a" .. i); pub("old.b", "b" .. i) end
  say("kv put", nats("kv", "put", "CFG", "k", "v1"))
  say("kv create (exists)", nats("kv", "create", "CFG", "k", "v2"))
  say("kv create", nats("kv", "create", "CFG", "n", "n1"))
  say("kv put", nats("kv", "put", "CFG", "k", "v3"))
  say("kv update (wrong revision)", nats("kv", "update", "CFG", "k", "v4", "1"))
  say("kv del", nats("kv", "del", "CFG", "n", "-f"))
  say("kv create (after delete)", nats("kv", "create", "CFG", "n", "n2"))
  say("kv purge", nats("kv", "purge", "CFG", "k", "-f"))
  -- deletes and purges right before the crash
  for i = 1, 4 do pub("pu.a", "a" .. i); pub("pu.b", "b" .. i) end
  say("purge pu.a keep 1", nats("req", "$JS.API.STREAM.PURGE.PURGE", '{"filter":"pu.a","keep":1}'))
  say("delete 2", nats("req", "$JS.API.STREAM.MSG.DELETE.PURGE", '{"seq":2}'))
  say("purge below 4", nats("req", "$JS.API.STREAM.PURGE.PURGE", '{"seq":4}'))
  pub("pu.c", "after")
  say("delete 9", nats("req", "$JS.API.STREAM.MSG.DELETE.PURGE", '{"seq":9}'))
  pub("pu.c", "last")
  cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
  cluster.sleep(1)
  local before = cluster.jsload(urls, "ACME", "dump", "--timeout-ms", "10000")
  cluster.write_file(dir .. "/expected.json", json.encode(before))
  -- last: 2.15.3 refuses it at apply time and the stream's group is left
  -- without a leader (measured: 30 s and more), so nothing can follow it;
  -- refused, it changes nothing the dump above holds
  pub("lm.a", "wrong-last-msgid", "Nats-Expected-Last-Msg-Id:zz")
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
