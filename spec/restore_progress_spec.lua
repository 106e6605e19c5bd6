-- What `js-recover restore` shows while it runs: on a terminal one line
-- rewritten in place (streams done of all, bytes read of all, the rate,
-- the time left); into a pipe or a file nothing at all on stderr; with
-- --json only the JSON document on stdout.  A standalone newest server is
-- the target (--replicas 1); the terminal is util-linux `script`'s pty.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local newest = servers.newest()
if not newest then return end -- servers.lua names what was not built
local have_script = os.execute("command -v script >/dev/null 2>&1")

describe("restore's progress", function()
  local store, srv, dir

  before_each(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    dir = fx.tmpdir()
    srv = ns.start { store_dir = dir .. "/js", bin = newest.bin }
  end)

  after_each(function()
    if srv then srv:stop() end
    ns.rmtree(dir)
    fx.cleanup(store)
  end)

  it("says nothing on stderr when it is not a terminal", function()
    local code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1")
    assert.are.equal(0, code, err .. out)
    assert.are.equal("", err)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
  end)

  it("--json: one JSON document on stdout, nothing on stderr", function()
    local code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1", "--json")
    assert.are.equal(0, code, err .. out)
    assert.are.equal("", err)
    local r = assert(json.decode(out))
    assert.is_true(r.ok)
    assert.are.equal(4, #r.streams)
    assert.is_true(tonumber(tostring(r.bytes)) > 100000)
    assert.is_true(tonumber(tostring(r.seconds)) >= tonumber(tostring(r.seconds_waiting_for_target)))
    for _, s in ipairs(r.streams) do
      assert.are.equal("restored", s.action)
      assert.is_true(s.ok)
      assert.is_string(s.account)
      assert.is_string(s.stream)
      for _, c in ipairs(s.checks) do
        assert.is_string(c.field)
        assert.is_boolean(c.ok)
      end
    end
  end)

  it("on a terminal, rewrites one line: streams, bytes, rate and time left", function()
    if not have_script then return pending("util-linux script is not installed") end
    local cmd = table.concat({ fx.quote(fx.BIN), "restore", fx.quote(store), "--server", fx.quote(srv.url),
      "--replicas", "1" }, " ")
    local h = assert(io.popen("script -qec " .. fx.quote(cmd) .. " /dev/null 2>&1"))
    local out = h:read("a")
    local ok = h:close()
    assert.is_true(ok, out)
    -- the store's files are about 140 KiB: all read by the end
    assert.matches("\r4/4 streams, [%d.]+ KiB of [%d.]+ KiB, [%d.]+ %a*B?/s, 0s left", out)
    local done, all = out:match("\r4/4 streams, ([%d.]+ KiB) of ([%d.]+ KiB)")
    assert.is_string(done, out)
    assert.are.equal(all, done, out)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
  end)
end)
