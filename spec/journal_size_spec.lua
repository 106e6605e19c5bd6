-- Whatever prepare can write, undo must read: a journal is read a line
-- (one change) at a time, so undo's memory does not grow with it.  Real
-- prepared stores get extra journal lines, changes of files that were
-- never there (undo has nothing to do for them but must read and check
-- each one), with 250-character names as in the issue's store; the undo
-- that reads them must put the real store back byte for byte, and its
-- peak RSS must not grow with the journal.
--
-- JSR_BIG_JOURNAL_MB=300 adds a run with a journal of that size (past the
-- 256 MiB the old reader refused); it is not part of `make test`: the
-- README's numbers come from it.
local fx = require "spec.support.fixture"

local NAME = ("n"):rep(250)

-- Adds about mb MiB of changes to the first line after the header of the
-- store's only journal; returns how many were added.
local function grow_journal(store, mb)
  local h = assert(io.popen("ls " .. fx.quote(store) .. "/.js-recover/journal/*.json"))
  local file = h:read("l")
  h:close()
  local text = fx.read(file)
  local head, rest = text:match("^([^\n]*\n)(.*)$")
  assert(head and head:find('"ops":%[\n$'), "a journal's first line ends with \"ops\":[")
  local f = assert(io.open(file .. ".grow", "wb"))
  f:write(head)
  local n, written, want = 0, 0, mb * 1024 * 1024
  local batch = {}
  while written < want do
    for i = 1, 1000 do
      local p = ("gen/%s/%d/%s/meta.sum"):format(NAME, n + i, NAME)
      batch[i] = ('{"op":"replace","path":"%s","tmp":"%s.jsr-tmp","backup":null},\n'):format(p, p)
    end
    local chunk = table.concat(batch)
    f:write(chunk)
    written = written + #chunk
    n = n + 1000
  end
  f:write(rest)
  assert(f:close())
  assert(os.rename(file .. ".grow", file))
  local g = assert(io.open(file, "rb"))
  local size = g:seek("end")
  g:close()
  return n, size
end

-- undo under /usr/bin/time: exit code, stdout, stderr, peak RSS in KiB,
-- seconds
local function timed_undo(store)
  -- under ASan, freed memory waits in a quarantine (256 MiB): measure
  -- what the program keeps, not what the sanitizer does
  local asan = os.getenv("ASAN_OPTIONS")
  local env = asan and { ASAN_OPTIONS = asan .. ":quarantine_size_mb=0" } or nil
  local code, out, err = fx.run_with({ env = env,
    prefix = { "/usr/bin/time", "-f", "jsr-maxrss %M %e" } }, "undo", store)
  local rss, secs = err:match("jsr%-maxrss (%d+) ([%d.]+)")
  return code, out, err, tonumber(rss), tonumber(secs)
end

local function undo_with(mb)
  local store = fx.unpack("survivor-2.9.10.tar.gz")
  local ok, res = pcall(function()
    local original = fx.tree_digest(store)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    local added, size = grow_journal(store, mb)
    local out, rss, secs
    code, out, err, rss, secs = timed_undo(store)
    assert.are.equal(0, code, err)
    assert.matches("undone: journal", out, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    return { added = added, rss = rss, size = size, secs = secs }
  end)
  fx.cleanup(store)
  if not ok then error(res, 0) end
  return res
end

describe("a large journal", function()
  it("is undone in memory that does not grow with it (10 MiB and 100 MiB of changes)", function()
    if fx.BIN:find("valgrind", 1, true) then
      -- make valgrind: its own allocator's RSS says nothing about ours, and
      -- 100 MiB would take minutes; the reading is still checked for errors
      undo_with(10)
      return
    end
    local small, large = undo_with(10), undo_with(100)
    for _, r in ipairs({ small, large }) do
      io.stderr:write(("# undo of a %d-byte journal (%d extra changes): peak RSS %d KiB, %.1f s\n")
        :format(r.size, r.added, r.rss, r.secs))
    end
    -- a reader that keeps the journal (or its changes) grows by 90 MiB
    -- or more here; a line at a time, by nothing but noise
    assert.is_true(large.rss - small.rss < 8 * 1024,
      ("peak RSS grew by %d KiB"):format(large.rss - small.rss))
  end)

  local big = tonumber(os.getenv("JSR_BIG_JOURNAL_MB") or "")
  if big then
    it("of " .. big .. " MiB is undone", function()
      local r = undo_with(big)
      io.stderr:write(("# undo of a %d-byte journal (%d extra changes): peak RSS %d KiB, %.1f s\n")
        :format(r.size, r.added, r.rss, r.secs))
    end)

    -- a real commit that big (new files with 240-character names, about
    -- 1 KiB of journal each), in its own process: a failed step rolls it
    -- back in that process, a crash leaves it to undo
    it("of " .. big .. " MiB written by a commit is rolled back, and undone after a crash", function()
      local build = os.getenv("JSR_BUILD") or "build"
      local files = 500
      local dirs = math.ceil(big * 1024 * 1024 / 1029 / files)
      -- on tmpfs: a directory on disk keeps the size it grew to when its
      -- files are gone again, and the digest compares sizes
      local scratch = require "spec.support.scratch"
      local store = scratch.unpack("survivor-2.9.10.tar.gz")
      finally(function() scratch.cleanup(store) end)
      fx.sh(("lua5.4 spec/support/big_commit.lua %s %s %d %d mkdir"):format(fx.quote(build),
        fx.quote(store), dirs, files))
      local original = fx.tree_digest(store)
      -- the steps: a few, then create, write, chmod per file, a syncfs,
      -- then a rename per file: fail or crash half way through the renames
      local n = dirs * files
      local at = 3 * n + n // 2
      local function commit(env)
        local parts = {}
        for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. v end
        local errf = os.tmpname()
        local cmd = ("%s /usr/bin/time -f 'jsr-maxrss %%M %%e' lua5.4 spec/support/big_commit.lua %s %s %d %d 2>%s")
          :format(table.concat(parts, " "), fx.quote(build), fx.quote(store), dirs, files, fx.quote(errf))
        local ok, _, code = os.execute(cmd)
        local err = fx.read(errf)
        os.remove(errf)
        return ok and 0 or code, err
      end
      local code, err = commit({ JSR_FAULT_AT = at .. ":EIO" })
      assert.are.equal(1, code, err)
      assert.matches("Input/output error (rolled back: nothing was changed)", err, 1, true)
      assert.are.equal(original, fx.tree_digest(store))
      io.stderr:write(("# commit of %d new files failed at step %d and rolled back: %s"):format(n, at,
        err:match("jsr%-maxrss [^\n]*\n")))
      code, err = commit({ JSR_CRASH_AT = tostring(at) })
      assert.are_not.equal(0, code, err)
      local h = assert(io.popen("ls -l " .. fx.quote(store) .. "/.js-recover/journal/*.json"))
      local size = tonumber(h:read("l"):match("^%S+%s+%S+%s+%S+%s+%S+%s+(%d+)"))
      h:close()
      local out, rss, secs
      code, out, err, rss, secs = timed_undo(store)
      assert.are.equal(0, code, err)
      assert.matches("is as it was before", out, 1, true)
      assert.are.equal(original, fx.tree_digest(store))
      io.stderr:write(("# undo after a crash of that commit (%d-byte journal): peak RSS %d KiB, %.1f s\n")
        :format(size, rss, secs))
    end)
  end

  it("refuses a line longer than the limit, naming the file and the line", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    assert.are.equal(0, (fx.run("prepare", store)))
    local h = assert(io.popen("ls " .. fx.quote(store) .. "/.js-recover/journal/*.json"))
    local file = h:read("l")
    h:close()
    local text = fx.read(file)
    local head, rest = text:match("^([^\n]*\n)(.*)$")
    fx.write(file, head .. '{"op":"replace","path":"' .. ("x"):rep(2 * 1024 * 1024) .. '"},\n' .. rest)
    local digest = fx.tree_digest(store)
    local code, _, err = fx.run("undo", store)
    assert.are.equal(1, code, err)
    assert.matches(file .. ": line 2 is longer than 1048576 bytes", err, 1, true)
    assert.are.equal(digest, fx.tree_digest(store))
    -- cut short: the last line lost
    fx.write(file, text:gsub("[^\n]*\n$", ""))
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code, err)
    assert.matches(file .. ": ends at line 13 before \"ops\" is closed", err, 1, true)
    fx.write(file, text)
    assert.are.equal(0, (fx.run("undo", store)))
  end)
end)
