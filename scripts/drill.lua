-- The quorum-loss drill (README "Quorum-loss drill"):
--
--   make drill                       every variant, full workload, scorecards
--   make drill-load DRILL_RUNS=20    acknowledged messages and acks under load
--
-- or directly, from the repository root after `make all build/jsload`:
--
--   LUA_PATH="lua/?.lua;./?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 scripts/drill.lua variants [SCALE] [NAME...]
--   (DRILL_VERSIONS=2.9.10,2.15.3 limits the versions; default: Debian's
--   2.9.10 and every pinned release `make servers` built)
--   ... lua5.4 scripts/drill.lua load RUNS
--
-- variants: a real 3-node cluster per variant (survivor the meta leader or
-- a follower; stopped with SIGTERM or SIGKILL), loaded, recorded, two nodes
-- SIGKILLed, the survivor stopped, its store copied and recovered with
-- js-recover's default policy, a standalone server compared with what the
-- cluster served.  Then the same on encrypted clusters (jetstream { key,
-- cipher }), chacha and aes, two variants each: js-recover gets the key
-- in a file, the standalone server in JSR_KEY.  Then four with a publish
-- of every kind the server refuses and deletes and purges right before
-- the crash (rejects-{leader,follower}-{TERM,KILL}; natscli needed).
-- Exit 1 unless every variant scores 100%.
local drill = require "spec.support.drill"

local mode = arg[1] or "variants"

local function out(...) io.stdout:write(...); io.stdout:flush() end

if mode == "variants" then
  local scale = tonumber(arg[2] or "1") or 1
  local only = {}
  for i = 3, #arg do only[arg[i]] = true end
  local variants = {
    { role = "leader", signal = "TERM" },
    { role = "leader", signal = "KILL" },
    { role = "follower", signal = "TERM" },
    { role = "follower", signal = "KILL" },
    { role = "leader", signal = "TERM", cipher = "chacha" },
    { role = "follower", signal = "KILL", cipher = "chacha" },
    { role = "leader", signal = "KILL", cipher = "aes" },
    { role = "follower", signal = "TERM", cipher = "aes" },
    -- a publish of every kind the server refuses, deletes and purges right
    -- before the crash (spec/support/rejects.lua)
    { role = "follower", signal = "KILL", rejects = true },
    { role = "leader", signal = "TERM", rejects = true },
    { role = "leader", signal = "KILL", rejects = true },
    { role = "follower", signal = "TERM", rejects = true },
    -- encrypted, SIGKILLed, with deletes, purges and acks right before the
    -- crash: the encrypted stream and consumer logs hold entries ahead of
    -- the store, replayed with the key
    { role = "follower", signal = "KILL", cipher = "chacha", rejects = true },
    { role = "leader", signal = "KILL", cipher = "aes", rejects = true },
  }
  local failed = 0
  local servers = require("spec.support.servers")
  local matrix = servers.all()
  if os.getenv("DRILL_VERSIONS") and os.getenv("DRILL_VERSIONS") ~= "" then
    local want = {}
    for v in os.getenv("DRILL_VERSIONS"):gmatch("[^,%s]+") do want[v] = true end
    local picked = {}
    for _, sv in ipairs(matrix) do if want[sv.version] then picked[#picked + 1] = sv end end
    matrix = picked
  end
  local versions = {}
  for _, sv in ipairs(matrix) do versions[#versions + 1] = sv.version end
  out(("Quorum-loss drill: %d variants on nats-server %s, workload scale %g\n\n"):format(
    #variants, table.concat(versions, ", "), scale))
  if #servers.skipped() > 0 then
    out(("(not built, skipped: %s)\n\n"):format(table.concat(servers.skipped(), ", ")))
  end
  local summary = {}
  for _, sv in ipairs(matrix) do
  for _, base in ipairs(variants) do
    local v = {}
    for k, x in pairs(base) do v[k] = x end
    v.name = sv.version .. " " .. (v.cipher and (v.cipher .. "-") or "") .. (v.rejects and "rejects-" or "")
      .. v.role .. "-" .. v.signal
    v.bin = sv.bin
    if next(only) == nil or only[v.name:gsub("^%S+ ", "")] then
      v.scale = scale
      local t0 = os.time()
      local r = drill.variant(v)
      if r.error then
        out(("Variant %s: FAILED TO RUN: %s\n  (kept in %s)\n\n"):format(v.name, r.error, r.dir))
        failed = failed + 1
      else
        out(drill.scorecard_text(r), "\n")
        out(("  (%d s: %s)\n\n"):format(os.time() - t0, table.concat(r.timings, ", ")))
        if r.score < 100 or not r.card.exact then failed = failed + 1
        elseif r.cipher and (r.encrypted_streams[1] ~= r.encrypted_streams[2] or r.conf_cipher ~= r.cipher) then
          out("  NOT ENCRYPTED as configured\n\n")
          failed = failed + 1
        end
      end
      summary[#summary + 1] = ("%-28s %s"):format(v.name, r.error and "did not run" or
        (("%s%%"):format(r.score == 100 and "100" or ("%.2f"):format(r.score))))
    end
  end
  end
  out("Summary\n  ", table.concat(summary, "\n  "), "\n")
  os.exit(failed == 0 and 0 or 1)
elseif mode == "load" then
  local runs = math.tointeger(tonumber(arg[2] or "20")) or 20
  out(("Under load: %d runs. Each: 3-node cluster, R3 streams LOAD (limits) and LOADQ (work queue),\n"
    .. "3 publishers and 2 consumers (synchronous acks) for 6 s; at ~2-3 s two nodes SIGKILL, 1 s later\n"
    .. "the survivor SIGKILL; its store copied, recovered with js-recover prepare, served standalone.\n\n"):format(runs))
  local cols = "run  pubs-acked  in-store  raft-only  absent  recovered | acks  in-o.dat  raft-only  absent  recovered"
    .. " | wq-resurrected (ack in o.dat/raft only/absent) reported after-purge purge-lost\n"
  out(cols)
  local T = { acked = 0, in_store = 0, log_only = 0, absent = 0, recovered = 0,
              confirmed = 0, in_odat = 0, raft_only = 0, aabsent = 0, arecovered = 0, resurrected = 0,
              runs_raft_msgs = 0, runs_raft_acks = 0, runs_absent = 0, runs_resurrected = 0, errors = 0 }
  math.randomseed(os.time())
  for i = 1, runs do
    local r = drill.load_run { kill_at = 2 + math.random() }
    if r.error then
      T.errors = T.errors + 1
      out(("%3d  error: %s\n"):format(i, r.error))
    else
      local m, a, w = r.messages, r.acks, r.workqueue
      out(("%3d  %10d  %8d  %9d  %6d  %9d | %4d  %8d  %9d  %6d  %9d | %3d (%d/%d/%d) %3d %3d %d\n"):format(i,
        m.acked, m.in_store, m.log_only, m.absent, m.recovered,
        a.confirmed, a.in_odat, a.raft_only, a.absent, a.recovered, w.resurrected,
        w.ack_in_odat, w.ack_raft_only, w.ack_absent, w.reported, w.resurrected_after, w.lost_by_purge))
      T.wq_reported = (T.wq_reported or 0) + w.reported
      T.wq_after = (T.wq_after or 0) + w.resurrected_after
      T.wq_purge_lost = (T.wq_purge_lost or 0) + w.lost_by_purge
      T.wq_odat = (T.wq_odat or 0) + w.ack_in_odat
      T.wq_raft = (T.wq_raft or 0) + w.ack_raft_only
      T.wq_absent = (T.wq_absent or 0) + w.ack_absent
      T.wq_jobs = (T.wq_jobs or 0) + w.acked_jobs
      T.acked, T.in_store, T.log_only = T.acked + m.acked, T.in_store + m.in_store, T.log_only + m.log_only
      T.absent, T.recovered = T.absent + m.absent, T.recovered + m.recovered
      T.confirmed, T.in_odat, T.raft_only = T.confirmed + a.confirmed, T.in_odat + a.in_odat, T.raft_only + a.raft_only
      T.aabsent, T.arecovered = T.aabsent + a.absent, T.arecovered + a.recovered
      T.resurrected = T.resurrected + w.resurrected
      if m.log_only > 0 then T.runs_raft_msgs = T.runs_raft_msgs + 1 end
      if a.raft_only > 0 then T.runs_raft_acks = T.runs_raft_acks + 1 end
      if m.absent + a.absent > 0 then T.runs_absent = T.runs_absent + 1 end
      if w.resurrected > 0 then T.runs_resurrected = T.runs_resurrected + 1 end
      for _, p in ipairs(r.problems or {}) do out("     problem: ", p, "\n") end
    end
  end
  out(("tot  %10d  %8d  %9d  %6d  %9d | %4d  %8d  %9d  %6d  %9d | %3d (%d/%d/%d) %3d %3d %d\n"):format(
    T.acked, T.in_store, T.log_only, T.absent, T.recovered,
    T.confirmed, T.in_odat, T.raft_only, T.aabsent, T.arecovered, T.resurrected,
    T.wq_odat or 0, T.wq_raft or 0, T.wq_absent or 0, T.wq_reported or 0, T.wq_after or 0, T.wq_purge_lost or 0))
  out(("\npubs-acked: acknowledged publishes to LOAD (limits) and to LOADQ (work queue) not acked by\n"
    .. "its worker; in-store: in the stream's blocks on the survivor; raft-only: only in the stream's\n"
    .. "Raft log under _js_; absent: on no file of the survivor; recovered: served by the standalone\n"
    .. "server at the same sequence.  acks: acks the server confirmed (AckSync); in-o.dat: acked in\n"
    .. "the consumer's o.dat; raft-only: only in its Raft log or snapshot; recovered: at or below the\n"
    .. "recovered ack floor.  wq-resurrected: of %d acknowledged and acked jobs, served again;\n"
    .. "reported: acked jobs js-recover lists as still on disk; after-purge: served again after\n"
    .. "the purge js-recover prints; purge-lost: jobs not done that the purge removed (must be 0).\n")
    :format(T.wq_jobs or 0))
  out(("\nruns with acknowledged messages only in the Raft log: %d; with acks only in Raft state: %d;\n"
    .. "with anything physically absent: %d; with acked work-queue jobs served again: %d; runs that failed: %d\n")
    :format(T.runs_raft_msgs, T.runs_raft_acks, T.runs_absent, T.runs_resurrected, T.errors))
  os.exit(T.errors == 0 and 0 or 1)
else
  io.stderr:write("usage: drill.lua variants [SCALE] [NAME...] | load RUNS\n")
  os.exit(2)
end
