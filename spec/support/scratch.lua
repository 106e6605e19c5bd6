-- Scratch copies of stores for the specs that run prepare and undo
-- hundreds of times (crash_spec, faults_spec).  Each run syncs the file
-- system it works on, and on a busy disk that is most of the time spent;
-- a crash or an injected error is the same on tmpfs, so the copies go to
-- /dev/shm when there is one (the other specs run on the disk).
local fx = require "spec.support.fixture"

local M = {}
local made = {}

function M.tmpdir()
  local h = io.popen("mktemp -d -p /dev/shm js-recover-scratch.XXXXXX 2>/dev/null")
  local dir = h:read("l")
  h:close()
  if not dir or dir == "" then return fx.tmpdir() end
  made[dir] = true
  return dir
end

function M.cleanup(dir)
  if made[dir] then
    fx.sh("rm -rf -- " .. fx.quote(dir))
    made[dir] = nil
  else
    fx.cleanup(dir)
  end
end

-- a copy of the tree at from (cp -a: modes and owners kept)
function M.copy(from)
  local dir = M.tmpdir()
  fx.sh(("cp -a %s/. %s/"):format(fx.quote(from), fx.quote(dir)))
  return dir
end

-- A scratch copy of a fixture tarball's store.
function M.unpack(tarball)
  local unpacked = fx.unpack(tarball)
  local dir = M.copy(unpacked)
  fx.cleanup(unpacked)
  return dir
end

-- For each item, fn(item, store) on a fresh copy of base, removed after
-- (also when fn fails: the failure is raised then).
function M.each(list, base, fn)
  for _, item in ipairs(list) do
    local store = M.copy(base)
    local ok, e = pcall(fn, item, store)
    M.cleanup(store)
    if not ok then error(e, 0) end
  end
end

-- Prints a walk's outcomes to stderr: "# name: total <what>: outcome n, ..."
function M.summary(name, what, counts, total)
  local parts = {}
  for k, v in pairs(counts) do parts[#parts + 1] = k .. " " .. v end
  table.sort(parts)
  io.stderr:write(("# %s: %d %s: %s\n"):format(name, total, what, table.concat(parts, ", ")))
end

return M
