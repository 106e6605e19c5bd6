-- Proves the test helpers themselves against a real nats-server: that
-- natsserver.lua starts and stops servers safely and that build/jscheck
-- reports exactly the state build/jspub created.  Other specs trust both.
--
-- Needs build/jscheck and build/jspub (see the top of spec/support/*.c).
-- Every test is independent of the others, so --shuffle is fine.

local ns = require "spec.support.natsserver"

local read_file = require("jsr.files").read

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local SIZES = { 0, 1, 55, 56, 63, 64, 65, 119, 120, 128 }

describe("jscheck against a real nats-server", function()
  local dir, srv, orders_pub

  -- All state is created once, up front; the tests below only read it.
  setup(function()
    dir = ns.tmpdir()
    srv = ns.start{ store_dir = dir .. "/store" }
    orders_pub = ns.jspub(srv, {
      stream = "ORDERS", subjects = { "orders.new", "orders.paid" },
      count = 10, consumer = "proc", ack = 4,
    })
    ns.jspub(srv, {
      stream = "MEM", subjects = { "mem.>" }, storage = "memory",
      retention = "interest", max_age_ms = 90000,
    })
    ns.jspub(srv, { stream = "BIN", count = 5, payload_size = 1000, delete = { 2, 4 } })
    for _, size in ipairs(SIZES) do
      ns.jspub(srv, { stream = "SZ" .. size, count = 1, payload_size = size })
    end
  end)

  teardown(function()
    if srv then srv:stop() end
    if dir then ns.rmtree(dir) end
  end)

  it("runs the server on a kernel-chosen loopback port", function()
    assert.are.equal("integer", math.type(srv.port))
    assert.is_true(srv.port > 0)
    assert.are.equal("nats://127.0.0.1:" .. srv.port, srv.url)
    assert.is_true(ns.alive(srv.pid))
    assert.truthy(srv:log():find("Server is ready", 1, true))
    assert.truthy(srv:log():find('Store Directory: "' .. dir .. "/store", 1, true))
  end)

  it("reports a stream with its consumer as published and acked", function()
    assert.are.same({ acked = 4, first_seq = 1, last_seq = 10, published = 10, stream = "ORDERS" },
      orders_pub)

    local s = ns.jscheck(srv).streams.ORDERS
    assert.are.equal(10, s.messages)
    assert.are.equal(1, s.first_seq)
    assert.are.equal(10, s.last_seq)
    assert.is_true(s.bytes > 0)
    assert.are.same({ "orders.new", "orders.paid" }, s.subjects)
    assert.are.equal("limits", s.retention)
    assert.are.equal("file", s.storage)
    assert.are.equal(1, s.replicas)
    assert.are.equal(0, s.max_age_ns)
    assert.are.same({
      proc = {
        ack_floor_consumer_seq = 4, ack_floor_stream_seq = 4,
        delivered_consumer_seq = 4, delivered_stream_seq = 4,
        num_ack_pending = 0, num_pending = 6,
        num_replicas = 0, -- 0: inherits the stream's replica count
      },
    }, s.consumers)
  end)

  it("reports storage, retention and max age as configured", function()
    local s = ns.jscheck(srv).streams.MEM
    assert.are.equal("memory", s.storage)
    assert.are.equal("interest", s.retention)
    assert.are.equal(90000 * 1000000, s.max_age_ns)
    assert.are.same({ "mem.>" }, s.subjects)
    assert.are.equal(0, s.messages)
    assert.are.same({}, s.consumers)
  end)

  it("hashes every payload and leaves deleted messages out", function()
    local s = ns.jscheck(srv).streams.BIN
    assert.are.equal(3, s.messages)
    assert.are.equal(1, s.first_seq)
    assert.are.equal(5, s.last_seq)

    local expected = {}
    for _, i in ipairs{ 1, 3, 5 } do
      expected[#expected + 1] = { seq = i, subject = "BIN", sha256 = ns.sha256(ns.payload(i, "BIN", 1000)) }
    end
    assert.are.same({ stream = "BIN", messages = expected }, ns.jscheck(srv, { messages = "BIN" }))
  end)

  it("hashes text payloads like sha256sum does", function()
    local report = ns.jscheck(srv, { messages = "ORDERS" })
    assert.are.equal(10, #report.messages)
    for i, m in ipairs(report.messages) do
      local subject = (i % 2 == 1) and "orders.new" or "orders.paid"
      assert.are.same({ seq = i, subject = subject, sha256 = ns.sha256(ns.payload(i, subject)) }, m)
    end
  end)

  it("gets SHA-256 padding right at block boundaries", function()
    for _, size in ipairs(SIZES) do
      local name = "SZ" .. size
      local m = ns.jscheck(srv, { messages = name }).messages
      assert.are.equal(1, #m)
      assert.are.equal(ns.sha256(ns.payload(1, name, size)), m[1].sha256, "payload size " .. size)
    end
  end)

  it("prints streams sorted by name and keys sorted", function()
    local h = assert(io.popen(ns.JSCHECK .. " --url " .. srv.url))
    local raw = h:read("a")
    assert.is_true(h:close())
    local names = {}
    for name in raw:gmatch('"([%w_]+)":{"bytes"') do names[#names + 1] = name end
    assert.are.equal(3 + #SIZES, #names)
    local sorted = { table.unpack(names) }
    table.sort(sorted)
    assert.are.same(sorted, names)
    assert.truthy(raw:find('{"streams":{"BIN":{"bytes":', 1, true))
    assert.truthy(raw:find('"consumers":{"proc":{"ack_floor_consumer_seq":4,"ack_floor_stream_seq":4,'
      .. '"delivered_consumer_seq":4,"delivered_stream_seq":4,"num_ack_pending":0,"num_pending":6,'
      .. '"num_replicas":0}},"first_seq":1,"last_seq":10,"max_age_ns":0,"messages":10,"replicas":1,'
      .. '"retention":"limits","storage":"file","subjects":["orders.new","orders.paid"]}', 1, true))
    assert.are.equal("}}\n", raw:sub(-3))
  end)

  it("fails with the libnats reason and exit status 1", function()
    local ok, err = pcall(ns.jscheck, srv, { messages = "NO_SUCH_STREAM" })
    assert.is_false(ok)
    assert.truthy(err:find("(exit 1)", 1, true))
    assert.truthy(err:find("jscheck: js_GetStreamInfo(NO_SUCH_STREAM): Not Found", 1, true))
  end)
end)

describe("a file store across a server restart", function()
  it("is reported identically by jscheck", function()
    local dir = ns.tmpdir()
    local srv = ns.start{ store_dir = dir }
    finally(function()
      srv:stop()
      ns.rmtree(dir)
    end)

    ns.jspub(srv, { stream = "KEEP", subjects = { "keep.*" }, count = 7, consumer = "c1", ack = 3, delete = { 5 } })
    ns.jspub(srv, { stream = "GONE", storage = "memory", count = 2 })
    local before = ns.jscheck(srv)
    local before_msgs = ns.jscheck(srv, { messages = "KEEP" })
    srv:stop()

    srv = ns.start{ store_dir = dir }
    -- Memory streams do not survive a restart; everything on file must.
    before.streams.GONE = nil
    assert.are.same(before, ns.jscheck(srv))
    assert.are.same(before_msgs, ns.jscheck(srv, { messages = "KEEP" }))
    assert.are.equal(6, before.streams.KEEP.messages)
  end)
end)

describe("natsserver.lua", function()
  it("reports an empty account and stops idempotently", function()
    local dir = ns.tmpdir()
    local srv = ns.start{ store_dir = dir }
    finally(function()
      srv:stop()
      ns.rmtree(dir)
    end)

    assert.are.same({ streams = {} }, ns.jscheck(srv))
    local pid, url, log_path = srv.pid, srv.url, srv.log_path
    srv:stop()
    assert.is_false(ns.alive(pid))
    assert.is_nil(read_file(log_path)) -- temp log removed ...
    assert.truthy(srv:log():find("Server Exiting", 1, true)) -- ... but kept in memory
    srv:stop()

    local ok, err = pcall(ns.jscheck, srv, { url = url })
    assert.is_false(ok)
    assert.truthy(err:find("jscheck: natsConnection_Connect", 1, true))
  end)

  it("overrides the config's listen address, port and log file", function()
    local dir = ns.tmpdir()
    local conf = dir .. "/server.conf"
    write_file(conf, string.format([[
listen: 127.0.0.1:4222
log_file: "%s/ignored.log"
jetstream { store_dir: "%s/store" }
]], dir, dir))
    local srv = ns.start{ config = conf }
    finally(function()
      srv:stop()
      ns.rmtree(dir)
    end)

    assert.are_not.equal(4222, srv.port)
    assert.truthy(srv:log():find("Listening for client connections on 127.0.0.1:" .. srv.port, 1, true))
    assert.truthy(srv:log():find("Using configuration file: " .. conf, 1, true))
    assert.is_nil(read_file(dir .. "/ignored.log"))
    ns.jspub(srv, { stream = "CONF", count = 2 })
    assert.are.equal(2, ns.jscheck(srv).streams.CONF.messages)
  end)

  it("passes credentials to the server and the helpers", function()
    local dir = ns.tmpdir()
    local srv = ns.start{ store_dir = dir, user = "recover", password = "s3cret" }
    finally(function()
      srv:stop()
      ns.rmtree(dir)
    end)

    ns.jspub(srv, { stream = "AUTH", count = 1 })
    assert.are.equal(1, ns.jscheck(srv).streams.AUTH.messages)
    local ok, err = pcall(ns.jscheck, srv, { user = "recover", password = "wrong" })
    assert.is_false(ok)
    assert.truthy(err:find("jscheck: natsConnection_Connect", 1, true))
  end)

  it("keeps a written log when asked for a log path", function()
    local dir = ns.tmpdir()
    finally(function() ns.rmtree(dir) end)
    local srv = ns.start{ store_dir = dir .. "/store", log_path = dir .. "/server.log" }
    srv:stop()
    assert.truthy(read_file(dir .. "/server.log"):find("Server Exiting", 1, true))
  end)

  it("fails with the log when the server cannot start", function()
    local dir = ns.tmpdir()
    local conf = dir .. "/broken.conf"
    write_file(conf, "this is { not a config\n")
    finally(function() ns.rmtree(dir) end)

    local ok, err = pcall(ns.start, { config = conf })
    assert.is_false(ok)
    assert.truthy(err:find("exited during startup", 1, true))
    assert.truthy(err:find("Parse error", 1, true)) -- the server's own words, from its log
  end)

  -- Checked on a canned log: actually opening a wildcard listener is what
  -- the check exists to prevent.
  it("spots listeners that are not on loopback", function()
    local function log(line) return "[1] 2024/01/01 00:00:00.000000 [INF] " .. line .. "\n" end
    local ok = log("Listening for client connections on 127.0.0.1:4222")
      .. log("Starting http monitor on 127.0.0.1:8222")
      .. log("Listening for websocket clients on ws://127.0.0.1:8080")
      .. log("Listening for leafnode connections on [::1]:7422")
    assert.is_nil(ns._public_listener(ok))
    for _, bad in ipairs{
      "Starting http monitor on 0.0.0.0:8222",
      "Listening for route connections on 0.0.0.0:6222",
      "Listening for MQTT clients on mqtt://192.168.1.2:1883",
      "Listening for leafnode connections on [::]:7422",
    } do
      assert.truthy(ns._public_listener(ok .. log(bad)), bad)
    end
  end)
end)
