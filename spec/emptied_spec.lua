-- Exact replay, emptied and thinned streams: a real 3-node cluster (2.9.10,
-- and the newest release) whose R3 streams were emptied or thinned just
-- before the crash — a drained work queue, an interest stream acked by its
-- consumer, a purge, a purge keeping 5, every message deleted, a few
-- deleted — then two nodes and the survivor SIGKILLed (and, in a second
-- run, the survivor stopped with SIGTERM).  The standalone server on the
-- prepared survivor must serve what the cluster served: the same message
-- counts and first/last sequences, nothing resurrected.
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local json = require("jsr").json

local ACME = cluster.USERS.ACME

local function seqs(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

-- name, jspub options (R3 on the cluster)
local STREAMS = {
  { "WQ", { retention = "workqueue", count = 50, consumer = "w", ack = 50 } },
  -- (its consumer first: an interest stream keeps nothing nobody wants)
  { "INTEREST", { retention = "interest", count = 40, consumer = "c", ack = 40 },
    pre = { retention = "interest", consumer = "c" } },
  { "PURGED", { count = 30, purge_keep = 0 } },
  { "KEEP5", { count = 30, purge_keep = 5 } },
  { "ALLDEL", { count = 20, delete = seqs(1, 20) } },
  { "SOMEDEL", { count = 20, delete = { 3, 7, 11, 20 } } },
  { "PLAIN", { count = 25 } },
}

local function state(streams)
  local out = {}
  for name, s in pairs(streams) do
    out[name] = { messages = s.messages, first_seq = s.first_seq, last_seq = s.last_seq }
  end
  return out
end

local function drill(server, signal)
  local dir = ns.tmpdir()
  local c = cluster.start { dir = dir, bin = server.bin }
  local ok, res = pcall(function()
    local url = c.nodes[1].url
    for _, st in ipairs(STREAMS) do
      local steps = st.pre and { st.pre, st[2] } or { st[2] }
      for _, step in ipairs(steps) do
        local o = { stream = st[1], subjects = { st[1]:lower() .. ".a", st[1]:lower() .. ".b" }, replicas = 3,
                    user = ACME.user, password = ACME.password, timeout_ms = 10000 }
        for k, v in pairs(step) do o[k] = v end
        ns.jspub({ url = url }, o)
      end
    end
    -- what the cluster served, from its leaders, just before the crash
    local seen = ns.jscheck({ url = url }, { user = ACME.user, password = ACME.password })
    local before = state(seen.streams)
    assert(before.PLAIN, "jscheck on the cluster: " .. json.encode(seen))
    os.execute(("kill -KILL %d %d"):format(c.nodes[1].srv.pid, c.nodes[3].srv.pid))
    c:kill(1, "KILL")
    c:kill(3, "KILL")
    c:kill(2, signal, 20)
    local store = ns.tmpdir()
    fx.sh(("cp -a %s/. %s/"):format(fx.quote(c.nodes[2].store_dir), fx.quote(store)))
    local sok, after, out = pcall(fx.prepare_and_serve, store, server.bin)
    fx.cleanup(store)
    assert(sok, after)
    return { before = before, after = state(after), prepare = out }
  end)
  c:stop_all()
  ns.rmtree(dir)
  assert(ok, res)
  return res
end

-- JSR_EMPTIED_ALL=1: every version built (make test: 2.9.10 and the newest)
for _, server in ipairs(os.getenv("JSR_EMPTIED_ALL") and servers.all() or servers.fast()) do
  for _, signal in ipairs { "KILL", "TERM" } do
    describe(("emptied and thinned streams on nats-server %s, survivor SIG%s"):format(server.version, signal),
      function()
        local r
        setup(function() r = drill(server, signal) end)

        it("the cluster really emptied and thinned them", function()
          assert.are.equal(0, r.before.WQ.messages)
          assert.are.equal(0, r.before.INTEREST.messages)
          assert.are.equal(0, r.before.PURGED.messages)
          assert.are.equal(5, r.before.KEEP5.messages)
          assert.are.equal(0, r.before.ALLDEL.messages)
          assert.are.equal(16, r.before.SOMEDEL.messages)
        end)

        for _, st in ipairs(STREAMS) do
          it(st[1] .. " is served exactly as the cluster served it: messages, first and last sequence", function()
            assert.is_table(r.before[st[1]], "the cluster did not serve " .. st[1])
            assert.are.same(r.before[st[1]], r.after[st[1]], r.prepare)
          end)
        end
      end)
  end
end
