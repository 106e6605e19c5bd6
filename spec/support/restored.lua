-- What a cluster serves after streams were restored into it, compared with
-- what the dead cluster served (spec/fixtures/*.expected.json): shared by
-- the export and restore specs.
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local assert = require "luassert"

local M = {}

-- want(store) -> what the dead cluster served (survivor-2.9.10.expected.json),
-- as a target that applies each stream's original max_age serves it on
-- today's date: the fixture's messages age (ORDERS: max_age 7 days, stamped
-- 2026-11-26), and a server deletes at load what is older than max_age.
-- Measured on 2.15.3 with ORDERS' max_age set to 1 hour: messages 0,
-- first_seq 1001, last_seq 1000, consumer proc's ack floor still 300 and
-- num_pending 0.  While only some of a stream's messages are past it (a
-- minute of one day for ORDERS), its counts cannot be known in advance:
-- the stream is marked partly_aged and its counts are not compared.
function M.want(store)
  local jsr = require "jsr"
  local f = assert(io.open("spec/fixtures/survivor-2.9.10.expected.json", "rb"))
  local want = assert(jsr.json.decode(f:read("a")))
  f:close()
  local now = jsr.now_ns()
  for name, w in pairs(want) do
    if (w.max_age_ns or 0) > 0 then
      local s = require("jsr.blocks").scan({ name = name, account = w.account,
        path = store .. "/jetstream/" .. w.account .. "/streams/" .. name })
      local cutoff = now - w.max_age_ns
      if s.live > 0 and s.last_ts < cutoff then
        w.messages, w.first_seq = 0, w.last_seq + 1
        for _, c in pairs(w.consumers or {}) do c.num_pending = 0 end
      elseif s.live > 0 and s.first_ts < cutoff then
        w.partly_aged = true
      end
    end
  end
  return want
end

local function run_nats(bin, args, stdin)
  local parts = { cluster.quote(bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = cluster.quote(a) end
  if stdin then parts[#parts + 1] = "<" .. cluster.quote(stdin) end
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
  local out = h:read("a")
  local ok, _, code = h:close()
  return ok, out, code
end

-- nats(bin, args[, stdin]) -> output: the real nats CLI (its stdin read
-- from the file stdin when given); a failure fails the spec.  natscli's
-- `backup restore stream` into a fresh or busy cluster now and then gets
-- no answer ("no responders", seen on 2.15.3 under load in CI), then
-- "already in use" for the stream the server half made: as the runbook's
-- operator does (scripts/bench-restore.lua), that stream is removed and
-- the restore run again, at most 4 times.
function M.nats(bin, args, stdin)
  local at
  for i = 1, #args - 2 do
    if args[i] == "backup" and args[i + 1] == "restore" and args[i + 2] == "stream" then at = i end
  end
  for try = 1, 4 do
    local ok, out, code = run_nats(bin, args, stdin)
    if ok then return out end
    local again = at and try < 4 and (out:find("no responders", 1, true) or out:find("already in use", 1, true))
    assert(again, ("nats %s exited %s: %s"):format(table.concat(args, " "), tostring(code), out))
    local rm = { table.unpack(args, 1, at - 1) }
    for _, a in ipairs { "stream", "rm", -1, "-f" } do rm[#rm + 1] = a end
    rm[#rm - 1] = (args[at + 3] or ""):match("([^/]+)/*$")
    run_nats(bin, rm)
    cluster.sleep(2)
  end
end

-- served(url, creds, want) -> jscheck's streams, read until the consumers'
-- num_pending reach the dead cluster's numbers, for at most 60 s: a
-- restored R3 consumer reports num_pending 0 until its leader has counted
-- them (measured on 2.15.3: about 5 s); the specs judge the last look.
function M.served(url, creds, want)
  local now
  -- (30 s was not always enough on a loaded 2-core machine: 500 of 1,000)
  for _ = 1, 60 do
    now = ns.jscheck({ url = url }, creds).streams
    local settled = true
    for name, w in pairs(want) do
      for cname, wc in pairs(w.consumers or {}) do
        local sc = now[name] and now[name].consumers[cname]
        if not sc or sc.num_pending ~= wc.num_pending then settled = false end
      end
    end
    if settled then break end
    cluster.sleep(1)
  end
  return now
end

-- describe-level its (busted's it passed in: it is not a global of modules): every stream with its original retention and
-- replicas, every message, every consumer's position.  get() returns the
-- served streams (set in the caller's setup).
function M.its(it, get, want_of)
  it("serves every stream with its original retention and replicas", function()
    local served, want = get(), want_of()
    for name, w in pairs(want) do
      local s = served[name]
      assert.is_table(s, name)
      assert.are.equal(w.retention, s.retention, name)
      assert.are.equal(w.replicas, s.replicas, name)
      assert.are.equal(w.max_age_ns, s.max_age_ns, name)
    end
  end)
  it("serves every message: counts, first and last sequences", function()
    local served, want = get(), want_of()
    for name, w in pairs(want) do
      local s = served[name]
      if not w.partly_aged then
        assert.are.same({ w.messages, w.first_seq, w.last_seq }, { s.messages, s.first_seq, s.last_seq }, name)
      end
    end
  end)
  it("keeps every consumer's position", function()
    local served, want = get(), want_of()
    for name, w in pairs(want) do
      for cname, wc in pairs(w.consumers or {}) do
        local sc = served[name].consumers[cname]
        assert.is_table(sc, name .. " > " .. cname)
        assert.are.equal(wc.ack_floor_stream_seq, sc.ack_floor_stream_seq, name .. " > " .. cname)
        if not w.partly_aged then
          assert.are.equal(wc.num_pending, sc.num_pending, name .. " > " .. cname .. ": " .. require("jsr").json.encode(sc))
        end
      end
    end
  end)
end

-- card(url, before, lost) -> the drill's scorecard (spec/support/drill.lua
-- compare) of what the cluster at url serves against before: its R3
-- consumers take a few seconds to settle after a restore, so it is read
-- until the card stops improving, for at most 30 s.
function M.card(url, before, lost)
  local drill = require "spec.support.drill"
  local card
  for _ = 1, 30 do
    local after = {}
    for acc in pairs(before) do
      after[acc] = cluster.jsload(url, acc, "dump", "--timeout-ms", "10000")
    end
    card = drill.compare(before, after, lost)
    if card.acks.exact == card.acks.total and card.state.exact == card.state.total then break end
    cluster.sleep(1)
  end
  return card
end

return M
