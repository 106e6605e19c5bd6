-- Raft entries with valid checksums but unexpected shapes (js-recover
-- issue 14, item 3): each is a finding naming the log file, the entry's
-- byte offset and its index; inspect exits 1; prepare changes nothing
-- without --skip-bad and prepares the rest of the store with it.
--
-- The entries are written as real log blocks: a record per Raft index,
-- its payload an append entry, its hash keyed as the server keys a
-- group's block (docs/FORMAT.md "Raft logs"), appended as a new block
-- after what the survivor fixture's groups hold.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local blockgen = require "spec.support.blockgen"

local SYS = "/jetstream/$SYS/_js_"
local JOBS_GROUP, WORKER_GROUP = "S-R3F-M13apgSv", "C-R3F-ya9H41EY"

-- append_entry({ {type, data} ... }, index) -> the bytes of one append entry
local function append_entry(entries, index)
  local parts = { ("L"):rep(8), string.pack("<I8I8I8I8I2", 1, index, 1, index - 1, #entries) }
  for _, e in ipairs(entries) do
    parts[#parts + 1] = string.pack("<I4", 1 + #e.data) .. string.char(e.type) .. e.data
  end
  return table.concat(parts)
end

-- add_block(group_dir, first_index, payloads) writes the group's next
-- msgs/N.blk: payload i (an append entry's bytes) as the record of Raft
-- index first_index + i - 1.  Returns the block's path and each record's
-- byte offset.
local function add_block(gdir, first, payloads)
  local n = 0
  for name in io.popen("ls " .. fx.quote(gdir .. "/msgs")):lines() do
    local k = tonumber(name:match("^(%d+)%.blk$"))
    if k and k > n then n = k end
  end
  n = n + 1
  local key = gdir:match("([^/]+)$") .. "-" .. n
  local parts, offsets, at = {}, {}, 0
  for i, p in ipairs(payloads) do
    parts[i] = blockgen.record(key, first + i - 1, 1795663360000000000 + i, "", nil, p)
    offsets[i] = at
    at = at + #parts[i]
  end
  local path = ("%s/msgs/%d.blk"):format(gdir, n)
  fx.write(path, table.concat(parts))
  return path, offsets
end

local function normal(op, body) return { type = 0, data = string.char(op) .. body } end

-- The survivor fixture with the given meta-log entries appended (index 15
-- on: its log ends at 14); returns store, block path, offsets.
local function with_meta_entries(entries)
  local store = fx.unpack("survivor-2.9.10.tar.gz")
  local payloads = {}
  for i, e in ipairs(entries) do payloads[i] = type(e) == "string" and e or append_entry({ e }, 14 + i) end
  local path, offsets = add_block(store .. SYS .. "/_meta_", 15, payloads)
  return store, path, offsets
end

local function replicas(store, stream)
  local cfg = assert(json.decode(fx.read(("%s/jetstream/$G/streams/%s/meta.inf"):format(store, stream))))
  return cfg.num_replicas
end

-- What every shape must do: inspect exit 1 naming file, offset and index;
-- prepare and --dry-run exit 1 changing nothing; --skip-bad prepares
-- every stream from its own files (num_replicas 1) and undo puts it back.
local function check_refused_then_skipped(store, path, offset, index, what)
  local where = ("%s: entry %d at byte %d: "):format(path, index, offset)
  local code, out, err = fx.run("inspect", store)
  assert.are.equal(1, code, err)
  assert.matches(where .. what, out, 1, true)
  local jcode, jout = fx.run("inspect", store, "--json")
  assert.are.equal(1, jcode)
  local found = false
  for _, p in ipairs(assert(json.decode(jout)).problems) do
    if p.path == path and p.message:find(where, 1, true) then found = true end
  end
  assert.is_true(found, "inspect --json lists the finding")

  local before = fx.tree_digest(store)
  for _, args in ipairs { { "prepare", store, "--dry-run" }, { "prepare", store } } do
    code, out, err = fx.run(table.unpack(args))
    assert.are.equal(1, code, out .. err)
    assert.matches("nothing changed", err, 1, true)
    assert.matches(where .. what, err, 1, true)
    assert.matches("--skip-bad", err, 1, true)
    assert.are.equal(before, fx.tree_digest(store))
  end

  code, out, err = fx.run("prepare", store, "--skip-bad")
  assert.are.equal(0, code, out .. err)
  assert.matches("SKIPPED (--skip-bad) malformed Raft entry " .. where .. what, out, 1, true)
  for _, s in ipairs { "ORDERS", "EVENTS", "JOBS", "KV_CFG" } do assert.are.equal(1, replicas(store, s), s) end
  assert.is_nil(jsr.lstat(store .. SYS), "_js_ moved aside")
  assert.are.equal(0, (fx.run("undo", store)))
  assert.are.equal(before, fx.tree_digest(store))
  return out
end

local ASSIGN = '{"client":{"acc":"$G","server":"n1"},"created":"2026-11-26T03:22:31Z",'
  .. '"stream":%s,"group":{"name":"S-R3F-crafted1","peers":["fjFyEjc1"]}}'

-- shapes = { {entry, what}... } as meta-log entries 15, 16, ...: inspect
-- names each; the first is checked end to end.  Returns inspect's output.
local function check_shapes(shapes)
  local entries = {}
  for i, s in ipairs(shapes) do entries[i] = s[1] end
  local store, path, offsets = with_meta_entries(entries)
  finally(function() fx.cleanup(store) end)
  local _, out = fx.run("inspect", store)
  for i, s in ipairs(shapes) do
    assert.matches(("%s: entry %d at byte %d: %s"):format(path, 14 + i, offsets[i], s[2]), out, 1, true)
  end
  check_refused_then_skipped(store, path, offsets[1], 15, shapes[1][2])
  return out
end

describe("crafted meta-group entries", function()
  -- one log per family, each entry malformed its own way; the first
  -- finding is checked end to end, the others by their text
  it("stream assignments and updates of unexpected shapes: each a finding, none applied", function()
    local shapes = {
      { normal(0, ASSIGN:format('{"subjects":["x.>"],"num_replicas":3}')),
        "stream assignment: stream name is missing, not a string" },
      { normal(0, ASSIGN:format('{"name":5}')), "stream assignment: stream name is a number, not a string" },
      { normal(0, "7"), "stream assignment is a number, not an object" },
      { normal(0, '"x"'), "stream assignment is a string, not an object" },
      { normal(0, "[1,2]"), "stream assignment is an array, not an object" },
      { normal(0, "null"), "stream assignment is null, not an object" },
      { normal(0, ASSIGN:format('"cfg"')), "stream assignment: stream config is a string, not an object" },
      { normal(0, ASSIGN:format('{"name":"ORDERS","num_replicas":"3"}')),
        "stream assignment of $G > ORDERS: stream config num_replicas is a string, not an integer" },
      { normal(0, ASSIGN:format('{"name":"NEW2","num_replicas":3.5}')),
        "stream assignment of $G > NEW2: stream config num_replicas is a number, not an integer" },
      { normal(0, '{"client":{"acc":"$G"},"stream":{"name":"NEW"},"group":{"name":"../../x"}}'),
        'stream assignment of $G > NEW: group name "../../x" is not a directory name' },
      { normal(0, '{"client":{"acc":"$G"},"stream":{"name":"NEW"},"group":{"name":"g","peers":[1]}}'),
        "stream assignment of $G > NEW: group peers hold a number, not a node id" },
      { normal(0, '{"client":7,"stream":{"name":"NEW"}}'), "stream assignment: client is a number, not an object" },
      { normal(11, ASSIGN:format('{"name":"NOPE"}')),
        "update of stream $G > NOPE, which is not assigned: not applied" },
      { normal(0, '{"stream":'), "stream assignment is not JSON: " },
    }
    local out = check_shapes(shapes)
    -- nothing crafted became an assignment: the lost report is as before
    assert.matches("LOST stream $G > R1S (R1)", out, 1, true)
    assert.is_nil(out:find("NOPE >", 1, true))
  end)

  it("removals with a number or array body and consumer assignments without a stream", function()
    local shapes = {
      { normal(2, "42"), "stream removal is a number, not an object" },
      { normal(2, '{"client":{"acc":"$G"},"stream":{}}'), "stream removal: stream name is missing, not a string" },
      { normal(3, "[]"), "consumer removal is an array, not an object" },
      { normal(1, '{"client":{"acc":"$G"},"name":"c9","consumer":{"durable_name":"c9"}}'),
        "consumer assignment: stream is missing, not a string" },
      { normal(1, '{"client":{"acc":"$G"},"stream":"ORDERS","name":"c9","consumer":"x"}'),
        "consumer assignment $G > ORDERS > c9: consumer config is a string, not an object" },
      { normal(1, '{"client":{"acc":"$G"},"stream":"GONE","name":"c9","consumer":{}}'),
        "consumer c9 of stream $G > GONE, which is not assigned: not applied" },
      { normal(9, "\1\2\3"), "compressed consumer assignment: " },
    }
    local out = check_shapes(shapes)
    -- the number did not remove anything: ORDERS is still assigned
    assert.is_nil(out:find("NOT ASSIGNED stream $G > ORDERS", 1, true))
  end)

  it("an unknown op code and huge lengths in the append entry", function()
    local huge_size = ("L"):rep(8) .. string.pack("<I8I8I8I8I2", 1, 16, 1, 15, 1) .. string.pack("<I4", 0xffffffff) .. "\0{}"
    local huge_count = ("L"):rep(8) .. string.pack("<I8I8I8I8I2", 1, 17, 1, 16, 0xffff)
    local store, path, offsets = with_meta_entries({ normal(99, "{}"), huge_size, huge_count })
    finally(function() fx.cleanup(store) end)
    local _, out = fx.run("inspect", store)
    assert.matches(("%s: entry 16 at byte %d: append entry: entry 1 of 1 has size 4294967295, 3 bytes left")
      :format(path, offsets[2]), out, 1, true)
    assert.matches(("%s: entry 17 at byte %d: append entry: entry 1 of 65535 cut off"):format(path, offsets[3]),
      out, 1, true)
    check_refused_then_skipped(store, path, offsets[1], 15, "operation 99, not one of the meta group's")
  end)

  it("a finding about one stream leaves the others' salvage alone; one about none stops all", function()
    local raft = require "jsr.raft"
    local store, path = with_meta_entries({ normal(11, ASSIGN:format('{"name":"ORDERS","num_replicas":[]}')) })
    finally(function() fx.cleanup(store) end)
    local st = raft.meta_state(store .. SYS .. "/_meta_")
    assert.are.equal(1, #st.findings)
    assert.are.equal(path, st.findings[1].file)
    assert.is_truthy(raft.untrusted(st, "$G", "ORDERS"))
    assert.is_truthy(raft.untrusted(st, "$G", "ORDERS", "proc"))
    assert.is_nil(raft.untrusted(st, "$G", "JOBS"))
    assert.is_nil(raft.untrusted(st, "$G", "JOBS", "worker"))
    -- the update was not applied: ORDERS keeps its snapshot assignment
    assert.are.equal(3, st.streams["$G\0ORDERS"].config.num_replicas)

    local store2 = with_meta_entries({ normal(2, "42") })
    finally(function() fx.cleanup(store2) end)
    local st2 = raft.meta_state(store2 .. SYS .. "/_meta_")
    assert.is_truthy(raft.untrusted(st2, "$G", "JOBS"))
    assert.is_truthy(raft.untrusted(st2, "$G", "JOBS", "worker"))
  end)
end)

describe("meta snapshots", function()
  local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
  -- snapshots/snap.<term>.<index> with its checksum keyed by the group name
  local function write_snapshot(gdir, term, index, data)
    fx.sh("mkdir -p " .. fx.quote(gdir .. "/snapshots"))
    local body = string.pack("<I8I8I4", term, index, 8) .. string.pack("<I4I4", 3, 0) .. data
    local path = ("%s/snapshots/snap.%d.%d"):format(gdir, term, index)
    fx.write(path, body .. unhex(jsr.metasum(gdir:match("([^/]+)$"), body)))
    return path
  end

  it("one of no data (2.10+ when nothing is assigned) is an empty state; one that is not S2 a finding", function()
    local raft = require "jsr.raft"
    local dir = fx.tmpdir()
    finally(function() fx.cleanup(dir) end)
    local gdir = dir .. "/_meta_"
    local path = write_snapshot(gdir, 1, 3, "")
    assert.is_true(assert(jsr.raft.snapshot(path)).hash_ok)
    local st = raft.meta_state(gdir)
    assert.are.same({}, st.findings)
    assert.are.same({}, st.streams)
    assert.are.equal(3, st.snapshot.index)

    path = write_snapshot(gdir, 1, 4, "\255\255")
    st = raft.meta_state(gdir)
    assert.are.equal(1, #st.findings)
    assert.matches(path .. ": snapshot does not decompress: ", st.findings[1].message, 1, true)
    assert.is_truthy(raft.untrusted(st, "$G", "ANY"))
  end)
end)

describe("crafted stream- and consumer-group entries", function()
  local function with_group_entries(group, first, entries)
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local payloads = {}
    for i, e in ipairs(entries) do payloads[i] = append_entry({ e }, first + i - 1) end
    local path, offsets = add_block(store .. SYS .. "/" .. group, first, payloads)
    return store, path, offsets
  end
  -- one malformed entry as the group's entry `first`: checked end to end
  local function one_entry(group, first, entry, what)
    local store, path, offsets = with_group_entries(group, first, { entry })
    finally(function() fx.cleanup(store) end)
    return check_refused_then_skipped(store, path, offsets[1], first, what)
  end

  it("a stream message with a truncated body stops JOBS's salvage there; deletes and unknown ops too", function()
    local store, path, offsets = with_group_entries(JOBS_GROUP, 1002, {
      normal(6, '{"stream":"JOBS","seq":'),            -- a delete cut off: skipped, replay goes on
      normal(4, "\0\1\2\3\4"),                           -- a message cut off: replay stops
      normal(99, ""),                                    -- never reached
    })
    finally(function() fx.cleanup(store) end)
    local _, out = fx.run("inspect", store)
    assert.matches(("%s: entry 1002 at byte %d: message delete is not JSON"):format(path, offsets[1]), out, 1, true)
    assert.matches(("%s: entry 1003 at byte %d: stream message cut off; salvage stops before it")
      :format(path, offsets[2]), out, 1, true)
    assert.is_nil(out:find("operation 99", 1, true))
    local prep = check_refused_then_skipped(store, path, offsets[2], 1003, "stream message cut off")
    assert.matches("salvage: stream $G > JOBS:", prep, 1, true)

    -- a clear note, never "of a newer server" for an op a known version writes
    one_entry(JOBS_GROUP, 1002, normal(99, "x"), "operation 99, unknown to js-recover in a stream group's log "
      .. "(it knows 4, 5, 6, 14, 15, 16, 17: every one up to nats-server 2.15.3)")
  end)

  -- Atomic batches (ops 16, 17; 2.12+) as the server applies them
  -- (jetstream_cluster.go applyStreamEntries, jetstream_batching.go
  -- rejectBatchState; docs/FORMAT.md "Ops of a stream's log"): stored only
  -- at the commit; abandoned by any other entry or a gap in its numbering,
  -- when clfs grows by the entries seen; held, not stored, when the log
  -- ends first.  JOBS's snapshot (index 1001) says last 1000, clfs 0, and
  -- the store ends at 1000: the leader numbers the next message lseq 1000.
  it("atomic batches: stored at the commit, abandoned ones counted as refused, a cut-off one not stored", function()
    local function msg(lseq, subject)
      return string.char(4) .. string.pack("<I8i8s2s2s2s4", lseq, 1795663360000000000 + lseq, subject, "", "",
        "payload " .. subject)
    end
    local function batch(op, id, seq, lseq, subject)
      return { type = 0, data = string.char(op) .. string.pack("<s2", id) .. string.char(seq) .. msg(lseq, subject) }
    end
    local store = with_group_entries(JOBS_GROUP, 1002, {
      batch(16, "A", 1, 1000, "jobs.a1"), batch(16, "A", 2, 1001, "jobs.a2"),
      { type = 0, data = msg(1002, "jobs.after") },                -- abandons A: clfs 2, stored at 1001
      batch(16, "B", 1, 1003, "jobs.b1"), batch(17, "B", 2, 1004, "jobs.b2"), -- committed: 1002, 1003
      batch(16, "C", 1, 1005, "jobs.c1"), batch(17, "C", 3, 1006, "jobs.c3"), -- a gap: abandoned, clfs 4
      batch(16, "D", 1, 1007, "jobs.d1"),                          -- the log ends: held
    })
    finally(function() fx.cleanup(store) end)
    local code, out, err = fx.run("inspect", store, "--json")
    assert.are.equal(0, code, err .. out)
    local jobs
    for _, x in ipairs(json.decode(out).log_ahead.streams) do if x.stream == "JOBS" then jobs = x end end
    assert.is_table(jobs, out)
    assert.are.same({ 3, 1001, 1003, 1, 2, 2, 1, 4 }, { jobs.appended, jobs.first, jobs.last, jobs.batches,
      jobs.batch_messages, jobs.batches_abandoned, jobs.batch_cut, jobs.clfs })
    local _, text = fx.run("inspect", store)
    assert.matches("note: entry 1002: atomic batch A abandoned after 2 message(s), before its commit", text, 1, true)
    assert.matches("note: entry 1007: atomic batch C abandoned after 2 message(s)", text, 1, true)
    assert.matches("note: entry 1009: atomic batch D: the log ends after 1 of its message(s), before its commit",
      text, 1, true)
  end)

  it("a consumer update cut off, or an unknown op, stops worker's salvage there", function()
    local out = one_entry(WORKER_GROUP, 5000, normal(8, "\x80"), "ack update cut off")
    assert.matches("consumer $G > JOBS > worker:", out, 1, true)
    one_entry(WORKER_GROUP, 5000, normal(2, "{}"), "operation 2, unknown to js-recover in a consumer group's log")
  end)
end)
