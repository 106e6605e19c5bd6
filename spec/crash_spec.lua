-- Crash safety: prepare (and undo) killed right before each of their file
-- system steps, one step at a time (JSR_CRASH_AT=N makes the process
-- _exit(99) right before step N: the file system is left as a kill -9 at
-- that instant leaves it).  After every crash the store must be unchanged,
-- or prepare must refuse it until `js-recover undo` has put it back byte
-- for byte; prepare must then finish the job.
local jsr = require "jsr"
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local json = jsr.json

local function steps_of(...)
  local code, _, err = fx.run_with({ env = { JSR_CRASH_TRACE = "1" } }, ...)
  assert.are.equal(0, code, err)
  local list = {}
  for what in err:gmatch("jsr%-step %d+: (%a+)") do list[#list + 1] = what end
  return list
end

local function read_cmd(cmd)
  local h = assert(io.popen(cmd))
  local out = h:read("a")
  h:close()
  return out
end

-- copies on /dev/shm when there is one (spec/support/scratch.lua)
local scratch = require "spec.support.scratch"
local copy, cleanup = scratch.copy, scratch.cleanup

local function summary(name, counts, total)
  scratch.summary(name, "crash points walked", counts, total)
end

-- what a standalone server serves from a prepared store matches what the
-- cluster served (message counts and consumer floors)
local function serves_everything(store)
  local want = assert(json.decode(fx.read(fx.FIXTURES .. "/survivor-2.9.10.expected.json")))
  local srv = ns.start { config = store .. "/recovery.conf" }
  local ok, e = pcall(function()
    local served = ns.jscheck(srv).streams
    for name, w in pairs(want) do
      assert.are.equal(w.messages, served[name].messages, name)
      for cname, wc in pairs(w.consumers) do
        assert.are.equal(wc.ack_floor_stream_seq, served[name].consumers[cname].ack_floor_stream_seq)
      end
    end
  end)
  srv:stop()
  assert(ok, e)
end

-- The steps (their kinds, in order) that `js-recover args...` takes on a
-- copy of base.
local function count_steps(base, ...)
  local counted = copy(base)
  local args = { ... }
  args[#args + 1] = counted
  local steps = steps_of(table.unpack(args))
  cleanup(counted)
  return steps
end

-- Crashes prepare (with opts.args) at each step in `points` on copies of
-- base, then checks what the issue asks for: the store is unchanged, or
-- prepare finds it finished, or prepare refuses until `js-recover undo`,
-- which puts base back byte for byte (or base without $SYS when --purge
-- had begun); and a prepare afterwards leaves the store as a prepare
-- without a crash does (prepared_js: digest of its jetstream/).
local function walk_prepare(base, args, points, o)
  local base_digest = fx.tree_digest(base)
  local counts = {}
  local function one(n, store)
    local code = fx.run_with({ env = { JSR_CRASH_AT = tostring(n) } }, "prepare", store,
      table.unpack(args))
    assert.are.equal(99, code, "crash point " .. n)
    local outcome = "unchanged"
    if fx.tree_digest(store) ~= base_digest then
      local out, err
      code, out, err = fx.run("prepare", store, table.unpack(args))
      if code == 0 then
        -- cut off after the commit (or before the journal existed, when only
        -- our empty folders are there and the re-run does the whole job)
        outcome = out:find("already prepared", 1, true) and "complete (re-run changed nothing)"
          or "re-run did the job"
        assert.are.equal(o.prepared_js, fx.tree_digest(store .. "/jetstream"), "crash point " .. n)
        if o.purged_digest then -- a purge cut off is finished by the re-run
          assert.are.equal("", read_cmd("ls -A " .. fx.quote(store) .. "/.js-recover/removed/*/"))
        end
      else
        outcome = "refused until undo"
        assert.are.equal(1, code, "crash point " .. n .. ": " .. err .. out)
        assert.matches("js-recover undo " .. store, err, 1, true)
      end
      code, _, err = fx.run("undo", store)
      if code == 1 and err:find("--ignore-purged", 1, true) then
        outcome = outcome .. ", purged tree lost"
        code, _, err = fx.run("undo", store, "--ignore-purged")
        assert.are.equal(0, code, err)
        assert.are.equal(o.purged_digest, fx.tree_digest(store), "crash point " .. n)
      else
        assert.are.equal(0, code, "undo after crash point " .. n .. ": " .. err)
        assert.are.equal(base_digest, fx.tree_digest(store), "undo after crash point " .. n)
      end
    end
    counts[outcome] = (counts[outcome] or 0) + 1
    local err
    code, _, err = fx.run("prepare", store, table.unpack(args))
    assert.are.equal(0, code, "prepare after crash point " .. n .. ": " .. err)
    assert.are.equal(o.prepared_js, fx.tree_digest(store .. "/jetstream"), "crash point " .. n)
    code, _, err = fx.run("inspect", store)
    assert.are.equal(0, code, "inspect after crash point " .. n .. ": " .. err)
    if o.serve_at and o.serve_at[n] then serves_everything(store) end
  end
  scratch.each(points, base, one)
  return counts
end

describe("a crash at any step", function()
  local pristine, original, reference
  setup(function()
    pristine = scratch.unpack("survivor-2.9.10.tar.gz")
    original = fx.tree_digest(pristine)
    reference = copy(pristine)
    assert.are.equal(0, (fx.run("prepare", reference)))
  end)
  teardown(function()
    cleanup(pristine)
    cleanup(reference)
  end)

  it("of prepare leaves the store unchanged or restorable by undo, and prepare then finishes", function()
    local steps = count_steps(pristine, "prepare")
    assert.is_true(#steps > 50, "a prepare of the survivor takes " .. #steps .. " steps")
    local every = {}
    for n = 1, #steps do every[n] = n end
    local counts = walk_prepare(pristine, {}, every, {
      prepared_js = fx.tree_digest(reference .. "/jetstream"),
      -- a real server on a few of them; inspect checks every checksum on all
      serve_at = { [1] = true, [math.floor(#steps / 2)] = true, [#steps] = true },
    })
    summary("prepare (" .. #steps .. " steps)", counts, #steps)
    assert.is_true((counts["refused until undo"] or 0) > 0)
    assert.is_true((counts.unchanged or 0) > 0)
  end)

  it("of prepare --purge, in the commit's end and in the purge, is finished or undone", function()
    local steps = count_steps(pristine, "prepare", "--purge")
    -- every step: those before the commit's end are the walk above with
    -- --purge in the journal; then the purge, one unlink per file of $SYS
    local last_rename, purge_from, points = 0, nil, {}
    for n, what in ipairs(steps) do
      if what == "rename" then last_rename = n end
      points[n] = n
    end
    for n = last_rename + 1, #steps do
      if steps[n] == "unlink" then purge_from = n; break end
    end
    assert.is_not_nil(purge_from)
    local done = copy(pristine)
    local without_sys = copy(pristine)
    finally(function() cleanup(done); cleanup(without_sys) end)
    assert.are.equal(0, (fx.run("prepare", done, "--purge")))
    fx.sh("rm -rf " .. fx.quote(without_sys .. "/jetstream/$SYS"))
    local counts = walk_prepare(pristine, { "--purge" }, points, {
      prepared_js = fx.tree_digest(done .. "/jetstream"),
      purged_digest = fx.tree_digest(without_sys),
    })
    summary(("prepare --purge (%d steps, %d purging $SYS)"):format(#steps, #steps - purge_from + 1),
      counts, #points)
    assert.is_true((counts["complete (re-run changed nothing), purged tree lost"] or 0) > 0)
  end)

  it("of prepare renaming $G, at each step, is undone the same way", function()
    local base = copy(pristine)
    local done = copy(pristine)
    finally(function() cleanup(base); cleanup(done) end)
    for _, d in ipairs({ base, done }) do
      fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(d .. "/jetstream/ACME/streams"),
        fx.quote(d .. "/jetstream/$G/streams/ORDERS"), fx.quote(d .. "/jetstream/ACME/streams/")))
    end
    local steps = count_steps(base, "prepare")
    local points = {}
    for n = 1, #steps do points[n] = n end
    assert.are.equal(0, (fx.run("prepare", done)))
    local counts = walk_prepare(base, {}, points, { prepared_js = fx.tree_digest(done .. "/jetstream") })
    summary(("prepare renaming $G (%d steps)"):format(#steps), counts, #points)
  end)

  it("of a small second run (a file at a time: fsync, not syncfs) is undone the same way", function()
    -- a prepared store, then another port: recovery.conf and the report
    local steps = count_steps(reference, "prepare", "--port", "4333")
    local fsyncs = 0
    for _, what in ipairs(steps) do if what == "fsync" then fsyncs = fsyncs + 1 end end
    assert.is_true(fsyncs >= 6, "per-file fsyncs")
    local counts = {}
    for n = 1, #steps do
      local store = copy(reference)
      local ok, e = pcall(function()
        local code = fx.run_with({ env = { JSR_CRASH_AT = tostring(n) } }, "prepare", store, "--port", "4333")
        assert.are.equal(99, code, "crash point " .. n)
        local out, err
        code, out, err = fx.run("prepare", store, "--port", "4333")
        local outcome = code == 0 and "complete" or "refused until undo"
        if code ~= 0 then
          assert.are.equal(1, code, err .. out)
          assert.matches("js-recover undo", err, 1, true)
        end
        counts[outcome] = (counts[outcome] or 0) + 1
        code, _, err = fx.run("undo", store)
        assert.are.equal(0, code, "undo after crash point " .. n .. ": " .. err)
        assert.are.equal(original, fx.tree_digest(store), "crash point " .. n)
      end)
      cleanup(store)
      if not ok then error(e, 0) end
    end
    summary("second prepare --port (" .. #steps .. " steps)", counts, #steps)
  end)

  it("of undo is repaired by running undo again", function()
    local steps = count_steps(reference, "undo")
    local counts = {}
    for n = 1, #steps do
      local store = copy(reference)
      local code = fx.run_with({ env = { JSR_CRASH_AT = tostring(n) } }, "undo", store)
      assert.are.equal(99, code, "crash point " .. n)
      local err
      -- prepare must not build on a half-undone store
      code, _, err = fx.run("prepare", store)
      local outcome = code == 0 and "prepare ran" or "refused until undo"
      if code ~= 0 then
        assert.are.equal(1, code, err)
        assert.matches("js-recover undo", err, 1, true)
      end
      counts[outcome] = (counts[outcome] or 0) + 1
      code, _, err = fx.run("undo", store)
      assert.are.equal(0, code, "undo again after crash point " .. n .. ": " .. err)
      assert.are.equal(original, fx.tree_digest(store), "crash point " .. n)
      cleanup(store)
    end
    summary("undo (" .. #steps .. " steps)", counts, #steps)
  end)
end)
