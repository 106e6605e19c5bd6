-- A restore cut off half-way, then run again: js-recover itself SIGKILLed
-- mid-stream (4 KiB chunks; `kill -KILL` of its own PID once 5 are sent,
-- so the cut falls inside a stream whatever the machine's speed), and the
-- target server SIGKILLed mid-stream, then started again on its own store.
-- Each time the next run must finish: streams the target serves as sent
-- are skipped, the one cut off is restored whole, and what is served is
-- what the dead cluster served (the 2.9.10 drill survivor; a standalone
-- newest server, --replicas 1).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"

local newest = servers.newest()
if not newest then return end -- servers.lua names what was not built

local function served_as_before(url, want)
  local got = restored.served(url, nil, want)
  for name, w in pairs(want) do
    assert.is_table(got[name], name)
    if not w.partly_aged then
      assert.are.same({ w.messages, w.first_seq, w.last_seq },
        { got[name].messages, got[name].first_seq, got[name].last_seq }, name)
    end
    for cname, wc in pairs(w.consumers or {}) do
      assert.are.equal(wc.ack_floor_stream_seq, got[name].consumers[cname].ack_floor_stream_seq, name .. " > " .. cname)
    end
  end
end

describe("a restore cut off half-way and run again", function()
  local store, want, dir, srv

  before_each(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    want = restored.want(store)
    dir = fx.tmpdir()
    srv = ns.start { store_dir = dir .. "/js", bin = newest.bin }
  end)

  after_each(function()
    if srv then srv:stop() end
    ns.rmtree(dir)
    fx.cleanup(store)
  end)

  it("finishes after js-recover was SIGKILLed mid-stream", function()
    local code, out, err = fx.run_with({ env = { JSR_RESTORE_CHUNK = "4096",
      JSR_RESTORE_RUN_AFTER = "5:kill -KILL $PPID" } }, "restore", store, "--server", srv.url, "--replicas", "1",
      "--parallel", "1")
    assert.matches("5 chunks sent, running kill -KILL", err, 1, true)
    assert.are_not.equal(0, code, out)
    assert.is_nil(out:find("every stream and consumer", 1, true))
    -- the first stream, EVENTS (about 60 KiB), was cut: not served
    local first = ns.jscheck({ url = srv.url }).streams
    assert.is_nil(first.EVENTS, json.encode(first))
    code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1")
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > EVENTS", out, 1, true)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
    served_as_before(srv.url, want)
  end)

  it("finishes after the target server was SIGKILLed mid-stream and started again", function()
    local code, out, err = fx.run_with({ env = { JSR_RESTORE_CHUNK = "4096",
      JSR_RESTORE_RUN_AFTER = ("5:kill -KILL %d"):format(srv.pid) } }, "restore", store, "--server", srv.url,
      "--replicas", "1", "--parallel", "1")
    assert.are.equal(3, code, err .. out)
    assert.matches("$G > EVENTS", err, 1, true)
    assert.matches("a re-run skips what was restored identically and redoes the rest", err, 1, true)
    srv:stop() -- gone already: this reaps it
    srv = ns.start { store_dir = dir .. "/js", bin = newest.bin }
    code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1")
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > EVENTS", out, 1, true)
    served_as_before(srv.url, want)
  end)
end)
