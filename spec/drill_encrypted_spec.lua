-- The quorum-loss drill on an encrypted cluster, fast variant (the full
-- ones, chacha and aes, are in `make drill`): the 3 nodes run with
-- jetstream { key, cipher: chacha }, the same reduced workload as
-- spec/drill_spec.lua is recorded, two nodes and then the survivor are
-- SIGKILLed, js-recover prepare gets the key in a file (--key-file), and a
-- standalone nats-server started with JSR_KEY must serve everything
-- exactly.  The lost-asset report must read the meta group's encrypted
-- Raft log with the key, and say what it cannot read without it.
local jsr = require "jsr"
local json = jsr.json
local ns = require "spec.support.natsserver"
local drill = require "spec.support.drill"
local cluster = require "spec.support.cluster"

describe("quorum-loss drill on an encrypted cluster (fast variant, chacha)", function()
  local r

  setup(function()
    r = drill.variant { role = "follower", signal = "KILL", scale = 0.15, name = "fast-chacha",
                        cipher = "chacha", keep = true }
  end)

  teardown(function()
    if r and r.dir then pcall(ns.rmtree, r.dir) end
  end)

  it("runs on encrypted stores: every stream encrypted, recovery.conf keyed from $JSR_KEY", function()
    assert.is_nil(r.error, r.error)
    assert.are.equal("follower", r.role_seen)
    assert.are.equal("SIGKILL", r.survivor_stop)
    assert.are.equal("chacha", r.cipher)
    assert.is_true(r.encrypted_streams[2] >= 9)
    assert.are.equal(r.encrypted_streams[2], r.encrypted_streams[1])
    local conf = r.recovered.conf
    assert.matches("key: $JSR_KEY\n  cipher: chacha", conf, 1, true)
    assert.is_nil(conf:find("drill-", 1, true)) -- the key is not written down
  end)

  it("scores 100%: every message, state field, ack floor and config field exact", function()
    assert.is_nil(r.error)
    local text = drill.scorecard_text(r)
    local c, m = r.card, r.card.messages
    assert.is_true(m.total > 500, text)
    assert.are.equal(m.total, m.exact, text)
    assert.are.equal(0, m.resurrected, text)
    assert.are.same({}, c.streams.missing, text)
    assert.are.same({}, c.consumers.missing, text)
    assert.are.equal(c.state.total, c.state.exact, text)
    assert.is_true(c.acks.total >= 8, text)
    assert.are.equal(c.acks.total, c.acks.exact, text)
    assert.are.same({}, c.config.changed, text)
    assert.are.equal(100, r.score, text)
    assert.is_true(c.exact, text)
  end)

  it("reads the encrypted meta log with the key: the assets on a dead node are reported lost", function()
    assert.is_nil(r.error)
    assert.are.same({ "ACME > SCRATCH" }, r.card.lost.reported_streams)
    assert.are.same({ "ACME > ORDERS > gone" }, r.card.lost.reported_consumers)
    assert.are.same({}, r.card.lost.wrongly_reported)
    local lost = r.recovered.inspect.lost
    assert.is_true(lost.source.applied > 0) -- log entries after the snapshot were decrypted
    -- the done-jobs report reads an encrypted o.dat with the key too
    for _, p in ipairs(lost.problems) do
      assert.is_nil(p:find("o.dat encrypted, not read", 1, true), p)
    end
    assert.are.equal(0, r.card.done_unread)
    assert.matches("LOST stream ACME > SCRATCH (R1)", r.recovered.prepare_out, 1, true)
  end)

  it("without the key: inspect says the meta log is encrypted, not read, and does not fail on it", function()
    assert.is_nil(r.error)
    local code, out, err = cluster.run { drill.BIN, "inspect", r.dir .. "/n2", "--json" }
    assert.are.equal(1, code, err) -- encrypted meta files: exit 1, as for any encrypted store without its key
    local rep = assert(json.decode(out))
    local text = table.concat(rep.lost.problems, "\n")
    assert.matches("/_meta_/msgs/1.blk: encrypted, not read", text, 1, true)
    assert.matches("snapshot alone", text, 1, true)
    assert.is_nil(text:find("could not read", 1, true))
    assert.is_nil(text:find("impossible record length", 1, true))
  end)
end)
