-- js-recover undo <store> [options]
--
-- Puts the store back as it was before js-recover changed it, byte for
-- byte (contents and modes): each journal under <store>/.js-recover/ is
-- taken back, newest first (replaced files from their backup links,
-- trees moved aside renamed back, files it created removed), then
-- .js-recover/ itself is removed.  It also repairs a prepare (or an undo)
-- cut off by a crash: run it again until it succeeds.
--
-- options:
--   --list           list the journals and their state; change nothing
--   --id ID          undo journal ID and every later one; keep earlier ones
--   --ignore-purged  restore everything else when trees were deleted with
--                    prepare --purge (those cannot come back)
--   --force-open     undo although other processes use the store
--   --json           print what was undone as JSON
--
-- Exit codes: 0 done (or nothing to undo); 1 refused, nothing changed;
-- 2 usage error; 3 failed part way (run it again after fixing the cause).
local jsr = require("jsr")
local cli = require("jsr.cli")
local guard = require("jsr.guard")
local json = jsr.json
local layout = jsr.layout

local usage = [[
usage: js-recover undo <store> [--list] [--id ID] [--ignore-purged] [--force-open] [--json]
]]

local function say(...) io.stderr:write("js-recover undo: ", ...) end
-- --json: an array of one object a journal, of these fields (compact)
local function print_json(list, fields)
  local out = json.array()
  for _, x in ipairs(list) do
    local o = json.object()
    for _, f in ipairs(fields) do o[f] = x[f] end
    out[#out + 1] = o
  end
  io.stdout:write(json.encode(out), "\n")
end

local opts, args = cli.parse({ ... }, {
  list = "flag", id = "string", ["ignore-purged"] = "flag", ["force-open"] = "flag",
  json = "flag",
})
if not opts then
  say(args, "\n", usage)
  return 2
end
if #args ~= 1 then
  say("expected one <store>, got ", #args, "\n", usage)
  return 2
end
local st, err = jsr.open(args[1])
if not st then
  say(err, "\n")
  return 3
end
local store = st.store_dir

-- the lock before the journals are read: a prepare still reading the
-- store has written none yet, and "nothing to undo" would be a lie
local function take_lock()
  if opts.list then return nil end -- reading only
  return st:lock()
end
local lock <close>, lerr = take_lock()
if not lock and not opts.list then
  say(lerr, "; nothing changed\n")
  return 1
end

local journals
journals, err = st:journal()
if not journals then
  say(err, "; nothing changed\n")
  return 1
end
if opts.list then
  if opts.json then
    print_json(journals, { "id", "state", "ops", "error" })
  elseif #journals == 0 then
    io.stdout:write("no journal: js-recover has not changed ", store, "\n")
  else
    for _, j in ipairs(journals) do
      io.stdout:write(("%s  %-13s %d changes%s\n"):format(j.id, j.state, j.ops,
        j.error and ("  (" .. j.error .. ")") or ""))
    end
  end
  return 0
end
if #journals == 0 then
  -- a run cut off while creating its folders leaves them empty: tidy up
  if jsr.lstat(layout.state_dir(store)) then
    local ok, terr = st:undo()
    if not ok then
      say(terr, "\n")
      return 3
    end
  end
  io.stdout:write(opts.json and "[]\n" or ("nothing to undo: js-recover has not changed " .. store .. "\n"))
  return 0
end

local refusal, warning = guard.users(st, "--force-open")
if warning then say("warning: ", warning, "\n") end
if refusal then
  if not opts["force-open"] then
    say("nothing changed: ", refusal, "\n")
    return 1
  end
  say("warning (--force-open): ", refusal, "\n")
end

local done, uerr, changed = st:undo({ id = opts.id, ignore_purged = opts["ignore-purged"] })
if not done then
  say(uerr, "\n")
  if changed then
    say("the undo stopped part way; fix the cause and run it again: it goes on where it stopped\n")
    return 3
  end
  if not uerr:find("nothing was changed", 1, true) then say("nothing was changed\n") end
  return 1
end
if opts.json then
  print_json(done, { "id", "ops", "gone", "gone_example" })
  return 0
end
for _, d in ipairs(done) do
  io.stdout:write(("undone: journal %s (%d changes)\n"):format(d.id, d.ops))
  if d.gone > 0 then
    io.stdout:write(("  %d of them were to files whose directory was deleted after it (e.g. %s:"
      .. " a stream deleted on a server started on the prepared store): not put back, what was"
      .. " kept of them is deleted too\n"):format(d.gone, d.gone_example))
  end
end
if jsr.lstat(layout.state_dir(store)) then
  io.stdout:write(("%s keeps the earlier journals (js-recover undo %s --list)\n")
    :format(layout.state_dir(store), store))
else
  local gone = 0
  for _, d in ipairs(done) do gone = gone + d.gone end
  io.stdout:write(("%s is as it was before js-recover changed it%s\n"):format(store,
    gone > 0 and ", but for what was deleted since" or ""))
end
return 0
