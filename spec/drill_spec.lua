-- The quorum-loss drill, fast variant (the full one is `make drill`): a
-- real 3-node cluster on 127.0.0.1 with a reduced workload, recorded, two
-- nodes SIGKILLed, the survivor (a meta follower) SIGKILLed too, its store
-- recovered with js-recover's default policy and served by a standalone
-- nats-server.  Every stream, message, consumer position and config field
-- must come back, and the R1 stream and consumer that lived on a dead node
-- must be reported lost, with that node.
-- Runs on Debian's 2.9.10 and on the newest pinned release (cluster and
-- standalone server of the same version).
local drill = require "spec.support.drill"
local servers = require "spec.support.servers"

for _, server in ipairs(servers.fast()) do
describe("quorum-loss drill (fast variant) on nats-server " .. server.version, function()
  local r

  setup(function()
    r = drill.variant { role = "follower", signal = "KILL", scale = 0.15, name = "fast-" .. server.version,
                        bin = server.bin }
  end)

  it("runs: cluster, workload, record, kill, recover, compare", function()
    assert.is_nil(r.error, r.error)
    assert.are.equal("follower", r.role_seen)
    assert.are.equal("SIGKILL", r.survivor_stop)
  end)

  it("scores 100%: every message exact, nothing resurrected", function()
    assert.is_nil(r.error)
    local text = drill.scorecard_text(r)
    local m = r.card.messages
    assert.is_true(m.total > 500, text)
    assert.are.equal(m.total, m.exact, text)
    assert.are.equal(0, m.resurrected, text)
    assert.are.same({}, r.card.streams.missing, text)
    assert.are.equal(r.card.state.total, r.card.state.exact, text)
    assert.are.equal(100, r.score, text)
    assert.is_true(r.card.exact, text)
  end)

  it("keeps every consumer's ack floor, deliveries and pending, and every config field", function()
    assert.is_nil(r.error)
    local c = r.card
    assert.are.same({}, c.consumers.missing)
    assert.is_true(c.acks.total >= 8)
    assert.are.equal(c.acks.total, c.acks.exact, table.concat(c.acks.diffs, "\n"))
    assert.are.same({}, c.config.changed)
    -- what the default policy changes, it changes on purpose: R3 -> R1,
    -- interest and workqueue -> limits, placement removed, R3 consumers -> 0
    assert.is_true(c.config.on_purpose_fields.num_replicas >= 8)
    assert.are.equal(2, c.config.on_purpose_fields.retention)
    assert.are.equal(1, c.config.on_purpose_fields.placement)
    assert.is_true(c.config.on_purpose_fields["consumer num_replicas"] >= 3)
  end)

  it("reports the stream and consumer that lived on a dead node, and only those", function()
    assert.is_nil(r.error)
    local c = r.card
    assert.are.same({ "ACME > SCRATCH" }, c.lost.reported_streams)
    assert.are.same({ "ACME > ORDERS > gone" }, c.lost.reported_consumers)
    assert.are.same({}, c.lost.wrongly_reported)
    local lost = r.recovered.inspect.lost
    local n1 = require("jsr").raft.node_id("n1")
    assert.are.same({ n1 }, lost.streams[1].peers)
    assert.are.same({ n1 }, lost.consumers[1].peers)
    -- the survivor is told apart: the only node in every group held here
    assert.are.equal(require("jsr").raft.node_id("n2"), lost.this_node)
    -- prepare says it too, at the end of its output
    local out = r.recovered.prepare_out
    assert.matches("LOST stream ACME > SCRATCH (R1): no data on this node; it lived on " .. n1, out, 1, true)
    assert.matches("LOST consumer ACME > ORDERS > gone (R1): no state on this node; it lived on " .. n1, out, 1, true)
  end)
end)
end

-- Publishes the cluster refused, deletes and purges, and acks (work queue
-- and interest) right before the crash (spec/support/rejects.lua), the
-- survivor the meta leader, SIGKILLed.  On 2.9.10 a work queue's first
-- acked job, deleted in its block's 1.idx only, came back when done work
-- was removed (the index goes with the rewrite) until removal marked it.
for _, server in ipairs(servers.fast()) do
describe("quorum-loss drill with refused publishes and work done before the crash on nats-server "
    .. server.version, function()
  if not servers.natscli() then
    pending("natscli is not built (make servers): skipped")
    return
  end
  local r
  setup(function()
    r = drill.variant { role = "leader", signal = "KILL", scale = 0.15, rejects = true,
                        name = "rejects-" .. server.version, bin = server.bin }
  end)

  it("scores 100%: nothing refused, deleted, purged or acked is served again, nothing lost", function()
    assert.is_nil(r.error, r.error)
    local text = drill.scorecard_text(r)
    assert.are.equal("SIGKILL", r.survivor_stop)
    for _, name in ipairs { "ACKWQ", "ACKINT", "PURGE", "PALL", "DEDUP" } do
      assert.is_table(r.before.ACME.streams[name], "the cluster did not serve " .. name)
    end
    -- what the cluster served after the acks (counted by hand from
    -- rejects.lua: 5 of 10 jobs done; 3 events acked by both consumers)
    assert.are.equal(5, r.before.ACME.streams.ACKWQ.info.state.messages)
    assert.are.equal(7, r.before.ACME.streams.ACKINT.info.state.messages)
    assert.are.equal(0, r.card.messages.resurrected, text)
    assert.are.equal(r.card.messages.total, r.card.messages.exact, text)
    assert.are.equal(r.card.state.total, r.card.state.exact, text)
    assert.are.equal(r.card.acks.total, r.card.acks.exact, table.concat(r.card.acks.diffs, "\n"))
    assert.are.equal(100, r.score, text)
  end)
end)
end
