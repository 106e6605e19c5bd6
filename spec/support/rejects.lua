--- Publishes a cluster refuses, of every kind, and deletes and purges,
-- through natscli (servers.natscli(); headers with -H), for the replay's
-- fixtures (scripts/gen-replay-fixture.lua) and the drill's `rejects`
-- variants (spec/support/drill.lua).  docs/FORMAT.md "Replay of a
-- stream's log" says which of them reach the stream's Raft log.
--
--   local rejects = require "spec.support.rejects"
--   local r = rejects.new(urls, creds, say)   -- say(line) logs each answer
--   r:publishes()    streams DEDUP FULL FULLB PERSUBJ EXP BIG ROLL PURGE PALL OLD LMID INTEREST,
--                    bucket CFG
--   r:removals()     deletes and purges on PURGE and PALL (right before a crash)
--   r:acks()         acks, a term and deliveries not acked on ACKWQ (work
--                    queue) and ACKINT (interest, two consumers): right
--                    before a crash (streams made by r:publishes())
--   r:last()         a refused Nats-Expected-Last-Msg-Id on LMID: on 2.15.3
--                    the group has no leader after it, so it comes last
local json = require("jsr").json
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local M = {}
local R = {}
R.__index = R

M.STREAMS = { "BIG", "DEDUP", "EXP", "FULL", "FULLB", "INTEREST", "KV_CFG", "LMID", "OLD", "PALL", "PERSUBJ",
              "PURGE", "ROLL" }
-- made by publishes() since the replay fixtures were recorded
M.ACK_STREAMS = { "ACKINT", "ACKWQ" }

function M.new(urls, creds, say)
  local cli = os.getenv("NATSCLI") or servers.natscli()
  assert(cli, "natscli is not built (make servers)")
  return setmetatable({ cli = cli, url = type(urls) == "table" and table.concat(urls, ",") or urls,
                        creds = creds, say = say or function() end }, R)
end

-- one natscli call -> what it printed (timestamps cut, on one line)
function R:nats(...)
  local argv = { self.cli, "-s", self.url, "--user", self.creds.user, "--password", self.creds.password,
                 "--timeout", "5s" }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  local _, o, e = cluster.run(argv)
  return (((o or "") .. (e or "")):gsub("%d%d:%d%d:%d%d ", ""):gsub("\n+", " "))
end

function R:create(cfg)
  cfg.num_replicas, cfg.storage = cfg.num_replicas or 3, "file"
  local r = self:nats("req", "$JS.API.STREAM.CREATE." .. cfg.name, json.encode(cfg))
  assert(r:find('"did_create":true', 1, true), r)
end

function R:pub(subj, body, ...)
  local a = { "pub", subj, body, "-J" }
  for _, h in ipairs { ... } do a[#a + 1] = "-H"; a[#a + 1] = h end
  self.say(table.concat({ "pub", subj, body, table.concat({ ... }, " "), "->", self:nats(table.unpack(a)) }, " "))
end

function R:run(what, ...) self.say(what .. " -> " .. self:nats(...)) end

function R:publishes()
  self:create { name = "DEDUP", subjects = { "dd.>" }, duplicate_window = 120 * 1000000000 }
  self:create { name = "FULL", subjects = { "full.>" }, max_msgs = 3, discard = "new" }
  self:create { name = "FULLB", subjects = { "fb.>" }, max_bytes = 300, discard = "new" }
  self:create { name = "PERSUBJ", subjects = { "ps.>" }, max_msgs_per_subject = 1, discard = "new",
                discard_new_per_subject = true }
  self:create { name = "EXP", subjects = { "ex.>" } }
  self:create { name = "BIG", subjects = { "big.>" }, max_msg_size = 100 }
  self:create { name = "ROLL", subjects = { "ro.>" }, allow_rollup_hdrs = false }
  self:create { name = "PURGE", subjects = { "pu.>" } }
  self:create { name = "LMID", subjects = { "lm.>" } }
  self:create { name = "PALL", subjects = { "pa.>" } }
  -- interest: a message no consumer is interested in takes its sequence
  -- and is not stored
  self:create { name = "INTEREST", subjects = { "in.>" }, retention = "interest" }
  self:run("consumer on in.a", "req", "$JS.API.CONSUMER.DURABLE.CREATE.INTEREST.ina",
    json.encode { stream_name = "INTEREST", config = { durable_name = "ina", filter_subject = "in.a",
                  ack_policy = "explicit", num_replicas = 3 } })
  self:create { name = "OLD", subjects = { "old.>" }, max_msgs = 4, max_msgs_per_subject = 2 }
  self:run("kv add", "kv", "add", "CFG", "--history", "1", "--replicas", "3")

  self:pub("dd.a", "one", "Nats-Msg-Id:a")
  self:pub("dd.a", "one-dup", "Nats-Msg-Id:a")
  self:pub("dd.a", "two", "Nats-Msg-Id:b")
  for i = 1, 5 do self:pub("full.x", "f" .. i) end
  for _ = 1, 5 do self:pub("fb.x", ("b"):rep(80)) end
  self:pub("ps.a", "1"); self:pub("ps.a", "2"); self:pub("ps.b", "3")
  self:pub("ex.a", "e1", "Nats-Msg-Id:m1"); self:pub("ex.b", "e2", "Nats-Msg-Id:m2")
  self:pub("ex.a", "wrong-last-seq", "Nats-Expected-Last-Sequence:1")
  self:pub("ex.a", "right-last-seq", "Nats-Expected-Last-Sequence:2")
  self:pub("ex.a", "kv-create-exists", "Nats-Expected-Last-Subject-Sequence:0")
  self:pub("ex.c", "kv-create-new", "Nats-Expected-Last-Subject-Sequence:0")
  self:pub("ex.a", "wrong-subj-seq", "Nats-Expected-Last-Subject-Sequence:1")
  self:pub("ex.a", "right-subj-seq", "Nats-Expected-Last-Subject-Sequence:3")
  self:pub("ex.a", "wrong-stream", "Nats-Expected-Stream:OTHER")
  self:pub("ex.d", "last-one")
  self:pub("big.a", ("x"):rep(200)); self:pub("big.a", "small")
  self:pub("lm.a", "m1", "Nats-Msg-Id:x")
  self:pub("ro.a", "r1"); self:pub("ro.a", "r2", "Nats-Rollup:sub"); self:pub("ro.a", "r3")
  for i = 1, 3 do self:pub("old.a", "a" .. i); self:pub("old.b", "b" .. i) end
  self:run("kv put", "kv", "put", "CFG", "k", "v1")
  self:run("kv create (exists)", "kv", "create", "CFG", "k", "v2")
  self:run("kv create", "kv", "create", "CFG", "n", "n1")
  self:run("kv put", "kv", "put", "CFG", "k", "v3")
  self:run("kv update (wrong revision)", "kv", "update", "CFG", "k", "v4", "1")
  self:run("kv del", "kv", "del", "CFG", "n", "-f")
  self:run("kv create (after delete)", "kv", "create", "CFG", "n", "n2")
  self:run("kv purge", "kv", "purge", "CFG", "k", "-f")
  for i = 1, 4 do self:pub("pu.a", "a" .. i); self:pub("pu.b", "b" .. i) end
  for i = 1, 6 do self:pub("pa.x", "x" .. i) end
  self:pub("in.a", "wanted"); self:pub("in.b", "nobody"); self:pub("in.a", "wanted-too")
  -- consumed right before the crash (acks())
  self:create { name = "ACKWQ", subjects = { "aw.>" }, retention = "workqueue" }
  self:create { name = "ACKINT", subjects = { "ai.>" }, retention = "interest" }
  for _, c in ipairs { { "ACKWQ", "worker" }, { "ACKINT", "a" }, { "ACKINT", "b" } } do
    self:run("consumer " .. c[2], "req", "$JS.API.CONSUMER.DURABLE.CREATE." .. c[1] .. "." .. c[2],
      json.encode { stream_name = c[1], config = { durable_name = c[2], ack_policy = "explicit",
                    ack_wait = 3600 * 1000000000, num_replicas = 3 } })
  end
  for i = 1, 10 do self:pub("aw.j", "job" .. i); self:pub("ai.e", "event" .. i) end
end

-- Work done right before the crash: the survivor's o.dat and blocks may
-- lag (2.9.10 writes both lazily), its consumer and stream logs have it.
-- ACKWQ: 4 jobs acked, 1 terminated (done for the stream too), 2
-- delivered and not acked (pending; an hour's ack_wait keeps them so
-- while the comparison runs); ACKINT: a acks 6, b 3 and holds 2 more.
function R:acks()
  self:run("worker acks 4", "consumer", "next", "ACKWQ", "worker", "--count", "4", "--ack")
  self:run("worker terms 1", "consumer", "next", "ACKWQ", "worker", "--count", "1", "--term")
  self:run("worker holds 2", "consumer", "next", "ACKWQ", "worker", "--count", "2", "--no-ack")
  self:run("a acks 6", "consumer", "next", "ACKINT", "a", "--count", "6", "--ack")
  self:run("b acks 3", "consumer", "next", "ACKINT", "b", "--count", "3", "--ack")
  self:run("b holds 2", "consumer", "next", "ACKINT", "b", "--count", "2", "--no-ack")
end

function R:removals()
  self:run("purge pu.a keep 1", "req", "$JS.API.STREAM.PURGE.PURGE", '{"filter":"pu.a","keep":1}')
  self:run("delete 2", "req", "$JS.API.STREAM.MSG.DELETE.PURGE", '{"seq":2}')
  self:run("purge below 4", "req", "$JS.API.STREAM.PURGE.PURGE", '{"seq":4}')
  self:pub("pu.c", "after")
  self:run("delete 9", "req", "$JS.API.STREAM.MSG.DELETE.PURGE", '{"seq":9}')
  self:pub("pu.c", "last")
  self:run("delete 3 (PALL)", "req", "$JS.API.STREAM.MSG.DELETE.PALL", '{"seq":3}')
  self:run("purge keep 2 (PALL)", "req", "$JS.API.STREAM.PURGE.PALL", '{"keep":2}')
  self:pub("pa.x", "x7")
  self:run("purge all (PALL)", "req", "$JS.API.STREAM.PURGE.PALL", '')
  self:pub("pa.y", "y1")
end

function R:last()
  self:pub("lm.a", "wrong-last-msgid", "Nats-Expected-Last-Msg-Id:zz")
end

return M
