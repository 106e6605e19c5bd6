-- prepare end to end: the real nats-server 2.9.10 must serve exactly what
-- the cluster served (fixtures/survivor-2.9.10.expected.json, recorded from
-- the cluster before the failure, not from js-recover).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local function expected()
  return assert(json.decode(fx.read(fx.FIXTURES .. "/survivor-2.9.10.expected.json")))
end

local function report_of(store)
  return assert(json.decode(fx.read(store .. "/recovery-report.json")))
end

-- Problems the server logs about loading streams or consumers.
local function load_warnings(log)
  local out = {}
  for line in log:gmatch("[^\n]+") do
    if line:match("%[WRN%]") or line:match("%[ERR%]") then out[#out + 1] = line end
  end
  return out
end

describe("prepare on the survivor of a 3-node cluster", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  it("makes a standalone nats-server serve every stream, message and consumer position", function()
    local code, out, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("nats%-server %-c " .. store:gsub("%p", "%%%0") .. "/recovery.conf", out)

    local srv = ns.start { config = store .. "/recovery.conf" }
    finally(function() srv:stop() end)
    local served = ns.jscheck(srv).streams
    local want = expected()
    local names, want_names = {}, {}
    for name in pairs(served) do names[#names + 1] = name end
    for name in pairs(want) do want_names[#want_names + 1] = name end
    table.sort(names)
    table.sort(want_names)
    assert.are.same(want_names, names)
    for name, w in pairs(want) do
      local s = served[name]
      assert.are.equal(w.messages, s.messages, name)
      assert.are.equal(w.first_seq, s.first_seq, name)
      assert.are.equal(w.last_seq, s.last_seq, name)
      -- deletion by age is suspended on the standalone server (the
      -- report keeps the original: "records the original ..." below)
      assert.are.equal(0, s.max_age_ns, name)
      assert.are.equal(1, s.replicas, name)
      assert.are.equal("limits", s.retention, name)
      local cnames = {}
      for cname in pairs(s.consumers) do cnames[#cnames + 1] = cname end
      local wnames = {}
      for cname in pairs(w.consumers) do wnames[#wnames + 1] = cname end
      table.sort(cnames)
      table.sort(wnames)
      assert.are.same(wnames, cnames, name)
      for cname, wc in pairs(w.consumers) do
        local c = s.consumers[cname]
        assert.are.equal(wc.ack_floor_stream_seq, c.ack_floor_stream_seq, name .. " > " .. cname)
        assert.are.equal(wc.num_pending, c.num_pending, name .. " > " .. cname)
      end
    end
    assert.are.same({}, load_warnings(srv:log()))
  end)

  it("records the original retention, replicas and max_age in the report, for the restore", function()
    assert.are.equal(0, (fx.run("prepare", store)))
    local r = report_of(store)
    local by = {}
    for _, s in ipairs(r.streams) do by[s.name] = s.original end
    local want = expected()
    for name, w in pairs(want) do
      assert.are.equal(w.retention, by[name].retention, name)
      assert.are.equal(w.replicas, by[name].num_replicas, name)
      if w.max_age_ns > 0 then assert.are.equal(w.max_age_ns, by[name].max_age, name) end
    end
    local billing
    for _, c in ipairs(by.EVENTS.consumers) do if c.name == "billing" then billing = c end end
    assert.are.equal(3, billing.original.num_replicas)
  end)

  it("changes nothing when run again, and says so", function()
    assert.are.equal(0, (fx.run("prepare", store)))
    local before = fx.tree_digest(store)
    local code, out = fx.run("prepare", store)
    assert.are.equal(0, code)
    assert.matches("already prepared: nothing changed", out)
    assert.are.equal(before, fx.tree_digest(store))
    -- and the report still holds the cluster's retention, not "limits"
    for _, s in ipairs(report_of(store).streams) do
      if s.name == "EVENTS" then assert.are.equal("interest", s.original.retention) end
    end
  end)

  it("--dry-run prints the changes and changes nothing", function()
    local before = fx.tree_digest(store)
    local code, out = fx.run("prepare", store, "--dry-run")
    assert.are.equal(0, code)
    assert.matches('stream $G > EVENTS: would change retention "interest" -> "limits", num_replicas 3 -> 1',
      out, 1, true)
    assert.matches("consumer billing: would change num_replicas 3 -> 0", out, 1, true)
    assert.matches("would move aside " .. store .. "/jetstream/$SYS", out, 1, true)
    assert.are.equal(before, fx.tree_digest(store))
  end)

  it("stops before any change when a meta file is broken, naming it", function()
    fx.write(store .. "/jetstream/$G/streams/JOBS/meta.inf", "{garbage")
    fx.write(store .. "/jetstream/$G/streams/ORDERS/obs/proc/meta.sum", "0123456789abcdef")
    local before = fx.tree_digest(store)
    local code, out, err = fx.run("prepare", store)
    assert.are.equal(1, code, out)
    assert.matches("JOBS/meta.inf: invalid JSON: expected a string key at byte 1", err, 1, true)
    assert.matches("ORDERS/obs/proc/meta.inf: meta.sum is 0123456789abcdef but", err, 1, true)
    assert.matches("nothing changed", err)
    assert.are.equal(before, fx.tree_digest(store))
  end)

  it("--skip-bad leaves broken entries out, reports them, and prepares the rest", function()
    fx.write(store .. "/jetstream/$G/streams/JOBS/meta.inf", "{garbage")
    local code, out = fx.run("prepare", store, "--skip-bad")
    assert.are.equal(0, code)
    assert.matches("SKIPPED (--skip-bad) " .. store .. "/jetstream/$G/streams/JOBS", out, 1, true)
    local srv = ns.start { config = store .. "/recovery.conf" }
    finally(function() srv:stop() end)
    local served = ns.jscheck(srv).streams
    assert.is_nil(served.JOBS)
    assert.are.equal(1000, served.ORDERS.messages)
  end)

  it("keeps the moved-aside Raft state in the journal", function()
    assert.are.equal(0, (fx.run("prepare", store)))
    assert.is_nil(jsr.lstat(store .. "/jetstream/$SYS"))
    local h = io.popen("ls " .. fx.quote(store) .. "/.js-recover/removed/*/*/_js_ | wc -l")
    assert.are.equal("9", h:read("l"))
    h:close()
  end)
end)

describe("prepare on a store in a newer server's layout (system account SYS)", function()
  it("changes only the fields it must, field by field", function()
    local store = fx.modern()
    finally(function() fx.cleanup(store) end)
    local sdir = store .. "/jetstream/ACME/streams/TELEMETRY"
    local cdir = sdir .. "/obs/ingest"
    local s0, c0 = assert(jsr.read_meta(sdir)), assert(jsr.read_meta(cdir))
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    local s1, sinfo = assert(jsr.read_meta(sdir))
    local c1, cinfo = assert(jsr.read_meta(cdir))
    assert.is_true(sinfo.sum_ok)
    assert.is_true(cinfo.sum_ok)

    local function field_diff(a, b)
      local d = {}
      local keys = {}
      for _, k in ipairs(json.keys(a)) do keys[k] = true end
      for _, k in ipairs(json.keys(b)) do keys[k] = true end
      for k in pairs(keys) do
        local x = a[k] ~= nil and json.encode(a[k]) or nil
        local y = b[k] ~= nil and json.encode(b[k]) or nil
        if x ~= y then d[k] = { x, y } end
      end
      return d
    end
    assert.are.same({
      num_replicas = { "3", "1" },
      placement = { '{"cluster":"east","tags":["ssd","az:1"]}', nil },
      retention = { '"interest"', '"limits"' },
      -- deletion by time, suspended
      max_age = { "1209600000000000", nil },
      allow_msg_ttl = { "true", nil },
      subject_delete_marker_ttl = { "900000000000", nil },
    }, field_diff(s0, s1))
    assert.are.same({ num_replicas = { "3", "0" }, inactive_threshold = { "604800000000000", nil } },
      field_diff(c0, c1))
    -- key order and the untouched exact values survive
    local text = fx.read(sdir .. "/meta.inf")
    assert.matches('"max_msgs":9007199254740993,"max_bytes":9223372036854775807,', text, 1, true)
    assert.matches('"first_seq":18446744073709551000,', text, 1, true)
    assert.matches('"note":"caf\\u00e9 \\u2028 line"', text, 1, true)
    assert.is_nil(jsr.lstat(store .. "/jetstream/SYS"))
    local conf = fx.read(store .. "/recovery.conf")
    assert.matches('"ACME": {', conf, 1, true)
    assert.matches("jetstream: enabled", conf, 1, true)
    assert.is_nil(conf:find('"SYS"', 1, true))
  end)
end)

describe("prepare with the global account and named accounts together", function()
  it("moves $G to an account the config can declare, and the server serves both", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    -- a second account holding a copy of ORDERS (checksum keys do not
    -- depend on the account, so the copy is valid as is)
    fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(store .. "/jetstream/ACME/streams"),
      fx.quote(store .. "/jetstream/$G/streams/ORDERS"), fx.quote(store .. "/jetstream/ACME/streams/")))
    local code, out, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("rename " .. store .. "/jetstream/$G -> " .. store .. "/jetstream/GLOBAL", out, 1, true)
    local r = report_of(store)
    local acme, global
    for _, a in ipairs(r.accounts) do
      if a.name == "ACME" then acme = a end
      if a.name == "GLOBAL" then global = a end
    end
    assert.are.equal("$G", global.original_name)

    local srv = ns.start { config = store .. "/recovery.conf" }
    finally(function() srv:stop(); fx.cleanup(store) end) -- busted keeps one finally per test
    -- clients without credentials land in the old global account's streams
    local anon = ns.jscheck(srv).streams
    assert.are.equal(1000, anon.EVENTS.messages)
    assert.are.equal(600, anon.JOBS.messages)
    assert.is_nil(anon.ACME)
    local a = ns.jscheck(srv, { user = acme.user, password = acme.password }).streams
    assert.are.equal(1000, a.ORDERS.messages)
    assert.are.equal(300, a.ORDERS.consumers.proc.ack_floor_stream_seq)
    assert.is_nil(a.EVENTS)
    -- the one expected warning: the anonymous user (no_auth_user) has an
    -- empty password, which the server counts as plaintext
    local warnings = load_warnings(srv:log())
    assert.are.equal(1, #warnings)
    assert.matches("Plaintext passwords detected", warnings[1], 1, true)
  end)
end)
