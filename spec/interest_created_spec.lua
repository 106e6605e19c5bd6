-- An interest stream stores nothing no consumer wants, and a consumer
-- created later wants nothing published before it: the replay judges each
-- message by the consumers that existed when it was stored (their
-- "Created" against its timestamp).  A real 3-node cluster (2.9.10 and the
-- newest release): 3 messages with no consumer (sequences taken, nothing
-- stored), then a consumer, then 3 more; every node SIGKILLed and the
-- survivor's blocks cut back to nothing, so the replay rebuilds the stream
-- from its log alone.  The standalone server must serve 3 messages, 4..6.
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local cutstore = require "spec.support.cutstore"

local ACME = cluster.USERS.ACME

for _, server in ipairs(servers.fast()) do
  describe("an interest stream's consumer created after its first messages, nats-server " .. server.version, function()
    local r
    setup(function()
      local dir = ns.tmpdir()
      local c = cluster.start { dir = dir, bin = server.bin }
      local ok, res = pcall(function()
        local url = c.nodes[1].url
        local function pub(o)
          local t = { stream = "LATE", subjects = { "late.a" }, replicas = 3, retention = "interest",
                      user = ACME.user, password = ACME.password, timeout_ms = 10000 }
          for k, v in pairs(o) do t[k] = v end
          return ns.jspub({ url = url }, t)
        end
        pub { count = 3 }
        -- further apart than the clocks' allowance (replay.CREATED_SKEW_NS)
        cluster.sleep(2.5)
        pub { consumer = "c" }
        pub { count = 3 }
        local seen = ns.jscheck({ url = url }, { user = ACME.user, password = ACME.password })
        os.execute(("kill -KILL %d %d %d"):format(c.nodes[1].srv.pid, c.nodes[2].srv.pid, c.nodes[3].srv.pid))
        for i = 1, 3 do c:kill(i, "KILL") end
        local store = dir .. "/copy"
        fx.sh(("cp -a %s %s"):format(fx.quote(c.nodes[2].store_dir), fx.quote(store)))
        cutstore(store .. "/jetstream/ACME/streams/LATE", "LATE", "ACME", 0)
        local after, out = fx.prepare_and_serve(store, server.bin)
        return { before = seen.streams.LATE, after = after.LATE, prepare = out }
      end)
      c:stop_all()
      ns.rmtree(dir)
      assert(ok, res)
      r = res
    end)

    it("the cluster stored only what came after the consumer", function()
      assert.are.same({ 3, 4, 6 }, { r.before.messages, r.before.first_seq, r.before.last_seq })
    end)

    it("the replay stores the same and no earlier message", function()
      assert.are.same({ r.before.messages, r.before.first_seq, r.before.last_seq },
        { r.after.messages, r.after.first_seq, r.after.last_seq }, r.prepare)
    end)
  end)
end
