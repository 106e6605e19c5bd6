-- I/O errors at any step: every file-system step of prepare, prepare
-- --purge, a prepare that salvages (appends messages from the Raft log)
-- and undo is made to fail in turn (JSR_FAULT_AT=N:ERR, src/os.c) with
-- EIO, ENOSPC or EROFS, one errno per step in turn; every 7th step also
-- with EROFS from that step on (a file system remounted read-only: the
-- rollback fails too).  After each fault the command must exit non-zero
-- with a message naming the step's file and the errno, and say "nothing
-- was changed" only when that is true; the store must be unchanged, or in
-- a state the documented command finishes (prepare again, or undo), after
-- which it is byte for byte the store before, or prepared.
local fx = require "spec.support.fixture"
local scratch = require "spec.support.scratch"

local ERRNOS = { "EIO", "ENOSPC", "EROFS" }
local TEXT = {
  EIO = "Input/output error", ENOSPC = "No space left on device", EROFS = "Read-only file system",
}

-- run with the steps traced: code, stdout, stderr without the trace, and
-- the steps {what, path} in order
local function traced(env, ...)
  env.JSR_CRASH_TRACE = "1"
  local code, out, err = fx.run_with({ env = env }, ...)
  local steps, rest = {}, {}
  for line in err:gmatch("[^\n]*\n?") do
    local n, what, path = line:match("^jsr%-step (%d+): (%a+) (.-)\n?$")
    if n then
      steps[tonumber(n)] = { what, path }
    elseif line ~= "" then
      rest[#rest + 1] = line
    end
  end
  return code, out, table.concat(rest), steps
end

local function count_steps(base, ...)
  local store = scratch.copy(base)
  local args = { ... }
  args[#args + 1] = store
  local code, _, err, steps = traced({}, table.unpack(args))
  scratch.cleanup(store)
  assert.are.equal(0, code, err)
  return #steps
end

local function summary(name, counts, points)
  scratch.summary(name, "faults injected", counts, points)
end

-- The faults of a walk over nsteps steps: {n, spec, errno}
local function faults(nsteps)
  local list = {}
  for n = 1, nsteps do
    local e = ERRNOS[n % #ERRNOS + 1]
    list[#list + 1] = { n, n .. ":" .. e, e }
    if n % 7 == 0 then list[#list + 1] = { n, n .. "+:EROFS", "EROFS" } end
  end
  return list
end

-- the failed command's message names the failed step's file and errno
local function names_the_fault(err, steps, f)
  local step = assert(steps[f[1]], "step " .. f[1] .. " was not reached")
  assert.matches(step[2], err, 1, true)
  assert.matches(TEXT[f[3]], err, 1, true)
end

-- Faults prepare (args) on copies of base at every step; o.prepared_js is
-- the digest of jetstream/ after a clean prepare, o.purged the digest of
-- base without $SYS (what undo --ignore-purged leaves after a purge).
local function walk_prepare(name, base, args, o)
  local base_digest = fx.tree_digest(base)
  local list = faults(count_steps(base, "prepare", table.unpack(args)))
  local counts = {}
  scratch.each(list, base, function(f, store)
    local at = "fault " .. f[2] .. ": "
    local code, _, err, steps = traced({ JSR_FAULT_AT = f[2] }, "prepare", store, table.unpack(args))
    assert.are_not.equal(0, code, at .. err)
    names_the_fault(err, steps, f)
    local outcome = "unchanged"
    if fx.tree_digest(store) == base_digest then
      assert.matches("nothing was changed", err, 1, true)
    else
      assert.is_nil(err:find("nothing was changed", 1, true), at .. "says nothing was changed: " .. err)
      local out
      code, out, err = fx.run("prepare", store, table.unpack(args))
      if code == 0 then
        outcome = "finished by prepare"
        assert.are.equal(o.prepared_js, fx.tree_digest(store .. "/jetstream"), at .. out)
      else
        outcome = "refused until undo"
        assert.are.equal(1, code, at .. err .. out)
        assert.matches("js-recover undo " .. store, err, 1, true)
      end
      code, _, err = fx.run("undo", store)
      if code == 1 and err:find("--ignore-purged", 1, true) then
        outcome = outcome .. ", purged tree lost"
        code, _, err = fx.run("undo", store, "--ignore-purged")
        assert.are.equal(0, code, at .. err)
        assert.are.equal(o.purged, fx.tree_digest(store), at)
      else
        assert.are.equal(0, code, at .. "undo: " .. err)
        assert.are.equal(base_digest, fx.tree_digest(store), at .. "undo")
      end
    end
    counts[outcome] = (counts[outcome] or 0) + 1
    code, _, err = fx.run("prepare", store, table.unpack(args))
    assert.are.equal(0, code, at .. "prepare after: " .. err)
    assert.are.equal(o.prepared_js, fx.tree_digest(store .. "/jetstream"), at)
  end)
  summary(name, counts, #list)
  return counts
end

describe("an I/O error at any step", function()
  local pristine, reference, prepared_js
  setup(function()
    pristine = scratch.unpack("survivor-2.9.10.tar.gz")
    reference = scratch.copy(pristine)
    assert.are.equal(0, (fx.run("prepare", reference)))
    prepared_js = fx.tree_digest(reference .. "/jetstream")
  end)
  teardown(function()
    scratch.cleanup(pristine)
    scratch.cleanup(reference)
  end)

  it("of prepare fails naming the file, and leaves the store unchanged or finished by undo", function()
    local counts = walk_prepare("prepare", pristine, {}, { prepared_js = prepared_js })
    assert.is_true((counts.unchanged or 0) > 0)
    assert.is_true((counts["refused until undo"] or 0) > 0)
  end)

  it("of prepare --purge, in the commit and in the purge, is finished by prepare or undo", function()
    local done, without_sys = scratch.copy(pristine), scratch.copy(pristine)
    finally(function() scratch.cleanup(done); scratch.cleanup(without_sys) end)
    assert.are.equal(0, (fx.run("prepare", done, "--purge")))
    fx.sh("rm -rf " .. fx.quote(without_sys .. "/jetstream/$SYS"))
    local counts = walk_prepare("prepare --purge", pristine, { "--purge" }, {
      prepared_js = fx.tree_digest(done .. "/jetstream"), purged = fx.tree_digest(without_sys),
    })
    assert.is_true((counts["finished by prepare, purged tree lost"] or 0) > 0)
  end)

  it("of a prepare that salvages messages from the Raft log is undone the same way", function()
    -- ORDERS cut back by its newest message, which its Raft log still holds
    local base, done = scratch.copy(pristine), nil
    finally(function() scratch.cleanup(base); if done then scratch.cleanup(done) end end)
    local jsr = require "jsr"
    local blocks = require "jsr.blocks"
    local sdir = base .. "/jetstream/$G/streams/ORDERS"
    local recs = {}
    blocks.scan({ name = "ORDERS", path = sdir, account = "$G" }, {
      records = function(rec) if not rec.deleted then recs[#recs + 1] = rec end end,
    })
    local parts = {}
    for i = 1, #recs - 1 do
      local r = recs[i]
      parts[i] = jsr.block_record("ORDERS-1", r.seq, r.ts, r.subject, r.headers, r.payload)
    end
    fx.sh("rm -f " .. fx.quote(sdir) .. "/msgs/*")
    fx.write(sdir .. "/msgs/1.blk", table.concat(parts))
    done = scratch.copy(base)
    local code, out = fx.run("prepare", done)
    assert.are.equal(0, code)
    assert.matches("append seq " .. #recs .. "-" .. #recs, out, 1, true)
    walk_prepare("prepare salvaging 1 message", base, {}, { prepared_js = fx.tree_digest(done .. "/jetstream") })
  end)

  it("of undo fails naming the file; undo again finishes it", function()
    local original = fx.tree_digest(pristine)
    local prepared = fx.tree_digest(reference)
    local list = faults(count_steps(reference, "undo"))
    local counts = {}
    scratch.each(list, reference, function(f, store)
      local at = "fault " .. f[2] .. ": "
      local code, _, err, steps = traced({ JSR_FAULT_AT = f[2] }, "undo", store)
      assert.are_not.equal(0, code, at .. err)
      names_the_fault(err, steps, f)
      local outcome
      if fx.tree_digest(store) == prepared then
        outcome = "unchanged"
        assert.are.equal(1, code, at .. err)
        assert.matches("nothing was changed", err, 1, true)
        assert.is_nil(err:find("part way", 1, true), at .. err)
      else
        outcome = "stopped part way"
        assert.are.equal(3, code, at .. err)
        assert.matches("stopped part way", err, 1, true)
        -- prepare will not build on a half-undone store (once every
        -- journal is gone, only empty folders are left: it may)
        code, _, err = fx.run("prepare", store)
        if code == 0 then
          outcome = outcome .. ", prepare ran"
        else
          assert.are.equal(1, code, at .. err)
          assert.matches("js-recover undo", err, 1, true)
        end
      end
      counts[outcome] = (counts[outcome] or 0) + 1
      code, _, err = fx.run("undo", store)
      assert.are.equal(0, code, at .. "undo again: " .. err)
      assert.are.equal(original, fx.tree_digest(store), at)
    end)
    summary("undo", counts, #list)
    assert.is_true((counts.unchanged or 0) > 0)
    assert.is_true((counts["stopped part way"] or 0) > 0)
  end)

  it("on the fsync of the journal's folder rolls the journal back too", function()
    local store = scratch.copy(pristine)
    finally(function() scratch.cleanup(store) end)
    local original = fx.tree_digest(store)
    -- the first fsync of journal/, right after the journal got its name
    local counted = scratch.copy(pristine)
    local _, _, _, steps = traced({}, "prepare", counted)
    scratch.cleanup(counted)
    local n
    for i, s in ipairs(steps) do
      if s[1] == "fsync" and s[2]:match("/%.js%-recover/journal$") then n = i; break end
    end
    local code, _, err = fx.run_with({ env = { JSR_FAULT_AT = n .. ":EIO" } }, "prepare", store)
    assert.are_not.equal(0, code)
    assert.matches(".js-recover/journal: fsync failed: Input/output error", err, 1, true)
    assert.matches("nothing was changed", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    assert.are.equal(0, (fx.run("prepare", store)))
  end)
end)
