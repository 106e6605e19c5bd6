-- The quorum-loss drill's survivors (fast variant: a real 3-node cluster
-- loaded, recorded, two nodes SIGKILLed, the survivor SIGKILLed too) of
-- 2.9.10 and of the newest release, restored with `js-recover restore`
-- straight from the survivor's own store (the drill recovers from a copy,
-- so it is as the crash left it) into a fresh 3-node cluster of the newest
-- release, ACME and BETA each with their own credentials (--accounts).
-- What the new cluster serves is compared with what the dead cluster
-- served, by the drill's own scorecard: every message exact, nothing
-- resurrected, every stream's state and every consumer's position, every
-- config field (new servers add fields of their own to a 2.9.10 stream,
-- which are not differences).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local drill = require "spec.support.drill"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"

local newest = servers.newest()
if not newest then return end -- servers.lua names what was not built

-- and an encrypted survivor (jetstream { key, cipher }: chacha on the
-- first version, aes on the other) into the same plaintext cluster: the
-- snapshot is sent decrypted, with the key given in a file
for si, server in ipairs(servers.fast()) do
for _, cipher in ipairs { false, si == 1 and "chacha" or "aes" } do
describe("a " .. server.version .. (cipher and (" " .. cipher .. "-encrypted") or "") .. " drill survivor restored into a fresh "
    .. newest.version .. " cluster", function()
  local r, card, code, out, err, before_digest, after_digest

  setup(function()
    r = drill.variant { role = "follower", signal = "KILL", scale = 0.15, name = "restore-" .. server.version,
                        bin = server.bin, keep = true, cipher = cipher or nil }
    if r.error then return end
    local keyarg = {}
    -- the drill's recovery left the key in a file (mode 0600)
    if cipher then keyarg = { "--key-file", r.dir .. "/js.key" } end
    local store = r.dir .. "/" .. r.survivor
    local dir = fx.tmpdir()
    local c
    local ok, e = pcall(function()
      before_digest = fx.tree_digest(store)
      c = cluster.start { dir = dir, bin = newest.bin }
      local map = dir .. "/accounts.json"
      fx.write(map, assert(json.encode { ACME = cluster.USERS.ACME, BETA = cluster.USERS.BETA }))
      code, out, err = fx.run("restore", store, "--server", c.nodes[1].url, "--accounts", map, "--json",
        table.unpack(keyarg))
      after_digest = fx.tree_digest(store)
      card = restored.card(c:urls(1), r.before, r.recovered.inspect.lost)
    end)
    if c then c:stop_all() end
    ns.rmtree(dir)
    ns.rmtree(r.dir)
    assert(ok, e)
  end)

  it("restores every stream of every account and finds it served as sent", function()
    assert.is_nil(r.error, r.error)
    assert.are.equal(0, code, err .. out)
    local res = assert(json.decode(out))
    assert.is_true(res.ok, out)
    assert.is_true(#res.streams > 3, out)
  end)

  it("reads the survivor's store only", function()
    assert.is_nil(r.error)
    assert.are.equal(before_digest, after_digest)
  end)

  it("serves what the dead cluster served: every message, state, position and config field", function()
    assert.is_nil(r.error)
    local shown = {}
    for k, v in pairs(r) do shown[k] = v end
    shown.card, shown.score, shown.name = card, card.score, r.name .. " (restored)"
    local text = drill.scorecard_text(shown)
    local m = card.messages
    assert.is_true(m.total > 500, text)
    assert.are.equal(m.total, m.exact, text)
    assert.are.equal(0, m.resurrected, text)
    assert.are.same({}, card.streams.missing, text)
    assert.are.equal(card.state.total, card.state.exact, text)
    assert.are.equal(card.acks.total, card.acks.exact, text)
    local changed = {}
    for _, ch in ipairs(card.config.changed) do
      -- a field the dead cluster's server did not have (compression,
      -- metadata, ...) is the new server's default, not a change
      if not ch:find(": nil -> ", 1, true) then changed[#changed + 1] = ch end
    end
    assert.are.same({}, changed, text)
    assert.are.equal(0, card.config.on_purpose, text)
  end)
end)
end
end
