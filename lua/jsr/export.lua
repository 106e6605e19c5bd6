-- `js-recover export` as a library: natscli backup directories of every
-- stream the policy keeps, built from the store as replayed
-- (jsr/snapshot.lua), read-only.  A site policy passes prepare's hooks
-- (keep_stream, keep_consumer, salvage, done_work, age_limits) and
-- restore_config(stream, cfg):
--
--   return require("jsr.export").run({ restore_config = function(s, cfg)
--     cfg.num_replicas = 5 end }, ...)
local jsr = require("jsr")
local cli = require("jsr.cli")
local keys = require("jsr.keys")
local guard = require("jsr.guard")
local snapshot = require("jsr.snapshot")
local placement = require("jsr.placement")
local pretty = require("jsr.print").pretty
local json = jsr.json

local M = {}

local usage = [[
usage: js-recover export <store> [<store>...] <dir> [--json] [--replicas N] [--no-placement] [--skip-bad]
                         [--map-cluster OLD=NEW,...] [--map-tag OLD=NEW,...] [--map-api OLD=NEW,...]
                         [--force-open] [--force] [--key-file F] [--prev-key-file F]
]]

M.OPTIONS = { json = "flag", replicas = "number", ["no-placement"] = "flag", ["skip-bad"] = "flag",
              ["force-open"] = "flag" }
for k, v in pairs(placement.OPTIONS) do M.OPTIONS[k] = v end

-- open(cmd, opts, store, policy) -> r | nil, code: the checks export and
-- restore share (keys, other users of the store, unreadable entries),
-- then the snapshot plan with the target configs.
function M.open(cmd, opts, store, policy)
  local function say(...) io.stderr:write("js-recover ", cmd, ": ", ...) end
  local kinfo, kerr = keys.load(opts)
  if not kinfo then say(kerr, "\n"); return nil, 2 end
  if opts.replicas and (opts.replicas < 1 or opts.replicas > 5) then
    say("--replicas must be 1 to 5, not ", opts.replicas, "\n")
    return nil, 2
  end
  local st, oerr = jsr.open(store)
  if not st then say(oerr, "\n"); return nil, 3 end
  -- a server still running on the store changes it under the snapshot
  local refusal, warning = guard.users(st, "--force-open")
  if warning then say("warning: ", warning, "\n") end
  if refusal then
    if not opts["force-open"] then say("nothing read: ", refusal, "\n"); return nil, 1 end
    say("warning: ", refusal, "\n")
  end
  local maps, merr = placement.maps(opts)
  if not maps then say(merr, "\n"); return nil, 2 end
  local prep, own = snapshot.split(policy)
  -- the mappings first, so that a policy's restore_config sees them done
  local hook = own.restore_config
  own.restore_config = function(stream, cfg)
    placement.apply(cfg, maps, stream)
    return hook(stream, cfg)
  end
  local r, err = snapshot.plan(store, prep, { skip_bad = opts["skip-bad"] })
  if not r then say(err, "\n"); return nil, 3 end
  if #r.problems > 0 then
    say("nothing done; these entries cannot be read:\n")
    for _, p in ipairs(r.problems) do io.stderr:write("  ", p.message, "\n") end
    io.stderr:write("Fix them, or run again with --skip-bad to leave them out (reported).\n")
    return nil, 1
  end
  for _, b in ipairs(r.plan.skipped_bad) do
    say("SKIPPED (--skip-bad) ", b.path or "", ": ", b.message, "\n")
  end
  snapshot.configure(r, own, { replicas = opts.replicas, no_placement = opts["no-placement"] })
  return r
end

local function safe_name(s)
  return s ~= "" and s ~= "." and s ~= ".." and not s:find("/", 1, true) and not s:find("%z")
end

local write_whole = require("jsr.files").write

-- The output must not be inside the store: export never writes there.
local function inside(dir, store_dir)
  local d = jsr.realpath(dir)
  local s = jsr.realpath(store_dir)
  return d and s and (d == s or d:sub(1, #s + 1) == s .. "/")
end

function M.run(policy, ...)
  local spec = { force = "flag" }
  for k, v in pairs(M.OPTIONS) do spec[k] = v end
  local opts, args = cli.parse({ ... }, keys.with(spec))
  if not opts then
    io.stderr:write("js-recover export: ", args, "\n", usage)
    return 2
  end
  if #args < 2 then
    io.stderr:write("js-recover export: expected <store> <dir>, got ", #args, " arguments\n", usage)
    return 2
  end
  -- several survivors' stores before <dir>: each stream from its chosen copy
  local dir = table.remove(args)
  local r, code
  if #args > 1 then r, code = require("jsr.survivors").open("export", opts, args, policy)
  else r, code = M.open("export", opts, args[1], policy) end
  if not r then return code end
  local ok, merr = jsr.mkdir(dir)
  if not ok then io.stderr:write("js-recover export: ", merr, "\n"); return 3 end
  for _, src in ipairs(r.stores or { { r = r } }) do
    local sd = src.r.model.store.store_dir
    if inside(dir, sd) then
      io.stderr:write("js-recover export: ", dir, " is inside the store ", sd,
        "; export never writes there: give a directory elsewhere\n")
      return 2
    end
  end
  local out = cli.human(io.stdout)
  local written = json.array()
  local t0 = jsr.monotime()
  for _, e in ipairs(r.streams) do
    if not safe_name(e.account) or not safe_name(e.name) then
      io.stderr:write("js-recover export: ", e.path, ": the name cannot be a directory name; left out\n")
      return 3
    end
    local adir = dir .. "/" .. e.account
    local sdir = adir .. "/" .. e.name
    assert(jsr.mkdir(adir))
    if jsr.lstat(sdir .. "/backup.json") and not opts.force then
      io.stderr:write("js-recover export: ", sdir, " holds a backup already; --force replaces it\n")
      return 1
    end
    assert(jsr.mkdir(sdir))
    local state = snapshot.state(r, e)
    local tmp = sdir .. "/stream.tar.s2.partial"
    local f = assert(io.open(tmp, "wb"))
    local bytes = 0
    local tar = snapshot.write(r, e, function(b)
      if #b > 0 then
        local wok, werr = f:write(b)
        if not wok then error(tmp .. ": " .. tostring(werr), 0) end
        bytes = bytes + #b
      end
    end)
    local cok, cerr = f:close()
    if not cok then error(tmp .. ": " .. tostring(cerr), 0) end
    assert(os.rename(tmp, sdir .. "/stream.tar.s2"))
    local b = json.object()
    b.config = e.target_config
    b.state = snapshot.state_json(state)
    assert(write_whole(sdir .. "/backup.json", pretty(b) .. "\n"))
    written[#written + 1] = { account = e.account, stream = e.name, from = e.chosen_from, dir = sdir, messages = state.messages,
      bytes = state.bytes, first_seq = state.first_seq, last_seq = state.last_seq,
      consumers = #e.consumers, snapshot_bytes = bytes, tar_bytes = tar }
    if not opts.json then
      out:write(("exported %s > %s: %d messages (seq %d..%d), %d consumers -> %s\n"):format(e.account,
        e.name, state.messages, state.first_seq, state.last_seq, #e.consumers, sdir))
      if state.expired then
        out:write(("  note: the target's max_age %s deletes at once %d message(s) older than that now (not counted above)\n")
          :format(require("jsr.age").duration(e.target_config.max_age), state.expired))
      end
    end
  end
  if opts.json then
    io.stdout:write(pretty({ streams = written, seconds = json.number(("%.3f"):format(jsr.monotime() - t0)) }), "\n")
  else
    out:write(("\n%d stream(s) exported to %s.  Restore each into the new cluster with\n"
      .. "  nats --server URL --user U --password P backup restore stream %s/<ACCOUNT>/<STREAM>\n"
      .. "(older CLI: nats stream restore); the configs are the dead cluster's.\n"):format(#written, dir, dir))
  end
  -- streams left out because the survivors' copies conflict (said at the start)
  return #(r.refused or {}) > 0 and 1 or 0
end

return M
