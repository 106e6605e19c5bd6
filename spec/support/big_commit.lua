-- A commit of many changes with long names, run in its own process so a
-- spec can crash it or fail one of its steps (JSR_CRASH_AT, JSR_FAULT_AT):
--   lua5.4 spec/support/big_commit.lua <build dir> <store> <dirs> <files per dir> [mkdir]
-- With mkdir it only makes the directories big/<dir name> (240-character
-- names); without, it stages a new file big/<dir name>/<file name> in each
-- and commits them all as one journal.  Prints the journal id, or the
-- commit's message on stderr (exit 1).
local build, store, ndirs, nfiles = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
package.cpath = build .. "/?.so;" .. package.cpath
local jsr = require "jsr"

local function name(prefix, i) return (prefix .. i .. "-" .. ("n"):rep(240)):sub(1, 240) end

if arg[5] == "mkdir" then
  for d = 1, ndirs do
    assert(os.execute("mkdir -p '" .. store .. "/big/" .. name("d", d) .. "'"))
  end
  os.exit(0)
end

local c = assert(assert(jsr.open(store)):changes())
for d = 1, ndirs do
  local dir = store .. "/big/" .. name("d", d)
  for f = 1, nfiles do
    assert(c:replace(dir .. "/" .. name("f", f), "x"))
  end
end
local id, err = c:commit()
c:close()
if not id then
  io.stderr:write(err, "\n")
  os.exit(1)
end
print(id)
