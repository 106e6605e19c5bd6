-- `js-recover restore` and `js-recover compare` as a library: every stream
-- the policy keeps, as replayed (jsr/snapshot.lua), sent to a cluster's
-- restore API with its original config, then what the cluster serves
-- checked against what was sent.  The store is only read.
--
-- Restore protocol (docs/FORMAT.md "Snapshot and restore"): a request
-- {"config","state"} to $JS.API.STREAM.RESTORE.<stream>; its answer's
-- deliver_subject takes the snapshot in chunks, each a request the server
-- answers empty once written (its flow control), an empty chunk ends it
-- and is answered with the created stream.
local jsr = require("jsr")
local cli = require("jsr.cli")
local keys = require("jsr.keys")
local raft = require("jsr.raft")
local tbl = require("jsr.table")
local snapshot = require("jsr.snapshot")
local export = require("jsr.export")
local flight = require("jsr.flight")
local pretty = require("jsr.print").pretty
local json = jsr.json

local M = {}

M.CHUNK = 128 * 1024
-- for tests: smaller chunks, and a run that dies (exit 99, no cleanup, the
-- connection cut by the kernel) after sending that many chunks in all
M.CHUNK = math.tointeger(tonumber(os.getenv("JSR_RESTORE_CHUNK") or "")) or M.CHUNK
local exit_after = math.tointeger(tonumber(os.getenv("JSR_RESTORE_EXIT_AFTER") or ""))
-- and, for tests too, "N:command": the shell command run once N chunks
-- are sent (a spec kills the target server by its PID, or this run with
-- SIGKILL: `kill -KILL $PPID`, the shell's parent being js-recover)
local run_after = os.getenv("JSR_RESTORE_RUN_AFTER")
local run_after_n = run_after and math.tointeger(tonumber(run_after:match("^(%d+):")))
local chunks_sent = 0
-- the final answer comes once the server has loaded the whole stream
M.FINAL_TIMEOUT_MS = 300000
-- chunks of one stream sent before the first of them is answered: the
-- server writes them in order as they come, and its answer to each still
-- paces the sender (a round trip per chunk leaves the target idle)
M.INFLIGHT = 4
-- streams restored at once (--parallel N): each holds at most INFLIGHT
-- chunks, a 1 MiB piece and a block that must be rewritten.  4 at once
-- into a standalone 2.15.3 with 1,000 small streams left a chunk or a
-- stream info unanswered for 30 s, or the connection closed, in 5 of 8
-- runs on 2 loaded cores; 2 at once never did
M.PARALLEL = 2

local usage = [[
usage: js-recover restore <store> [<store>...] --server URL [credentials] [--tls-ca F] [--tls-cert F --tls-key F]
                          [--account SRC] [--accounts FILE] [--resolver-dir D] [--config F] [--operator-jwt F]
                          [--replicas N] [--no-placement]
                          [--map-cluster OLD=NEW,...] [--map-tag OLD=NEW,...] [--map-api OLD=NEW,...]
                          [--dry-run] [--json] [--force] [--skip-bad] [--force-open] [--parallel N]
       js-recover compare <store> --server URL [credentials] [...] [--json]
credentials: --user U --password P | --token T | --creds F | --nkey SEEDFILE
]]

M.OPTIONS = { server = "string", user = "string", password = "string", token = "string",
  creds = "string", nkey = "string", ["tls-ca"] = "string", ["tls-cert"] = "string",
  ["tls-key"] = "string", account = "string", accounts = "string", ["dry-run"] = "flag",
  force = "flag", timeout = "number", parallel = "number" }

local CRED_FIELDS = { "user", "password", "token", "creds", "nkey" }

-- targets(opts, accounts) -> {[source account] = connect options} | nil, msg
-- Command-line credentials are for --account SRC (default: the only
-- account with streams); --accounts FILE maps each source account to its
-- own: {"SRC": {"user": "...", "password": "..."} | {"token"} | {"creds":
-- file} | {"nkey": seed file}, optional "server": URL}.
function M.targets(opts, accounts)
  local base = { url = opts.server, tls_ca = opts["tls-ca"], tls_cert = opts["tls-cert"],
                 tls_key = opts["tls-key"], timeout_ms = opts.timeout }
  local out = {}
  local function with(creds)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for _, k in ipairs(CRED_FIELDS) do t[k] = creds[k] end
    if creds.server then t.url = creds.server end
    return t
  end
  local given = false
  for _, k in ipairs(CRED_FIELDS) do if opts[k] then given = true end end
  if opts.accounts then
    local f, err = io.open(opts.accounts, "rb")
    if not f then return nil, ("--accounts %s: %s"):format(opts.accounts, err) end
    local map, jerr = json.decode(f:read("a"))
    f:close()
    if type(map) ~= "table" then return nil, ("--accounts %s: not a JSON object (%s)"):format(opts.accounts, jerr or "") end
    for src, creds in pairs(map) do
      if type(creds) ~= "table" then return nil, ("--accounts %s: %s is not an object"):format(opts.accounts, src) end
      out[src] = with(creds)
    end
  end
  if given or not opts.accounts then
    local src = opts.account
    if not src then
      local names = {}
      for name in pairs(accounts) do names[#names + 1] = name end
      table.sort(names)
      if #names == 1 then src = names[1] end
      if #names > 1 and given then
        return nil, ("the store has streams in %d accounts (%s): say which one the credentials "
          .. "are for with --account SRC, or map each with --accounts FILE"):format(#names, table.concat(names, ", "))
      end
    end
    if src then out[src] = with(opts) end
  end
  return out
end

-- jwt_names(r, opts) -> {[account public key] = the name in its JWT}:
-- an operator-mode store's accounts, their JWTs found as inspect finds
-- them (next to jetstream/, --resolver-dir, --config, --operator-jwt)
function M.jwt_names(r, opts)
  local names = {}
  if not r.model then return names end
  local operator = require("jsr.operator")
  for pub, j in pairs(operator.gather(r.model, operator.from_opts(opts)).accounts) do
    if type(j.name) == "string" then names[pub] = j.name end
  end
  return names
end

-- by_jwt_name(targets, accounts, names) -> true | nil, msg: a source
-- account named (in --accounts FILE or --account) by the name in its JWT
-- rather than by its public key, as the store names it, is given its key.
function M.by_jwt_name(targets, accounts, names)
  local keys_given = {}
  for k in pairs(targets) do keys_given[#keys_given + 1] = k end
  table.sort(keys_given)
  for _, k in ipairs(keys_given) do
    if not accounts[k] then
      local hits = {}
      for pub, n in pairs(names) do if n == k and accounts[pub] then hits[#hits + 1] = pub end end
      table.sort(hits)
      if #hits > 1 then
        return nil, ("%s is the JWT name of %d accounts with streams (%s): name each by its public key")
          :format(k, #hits, table.concat(hits, ", "))
      elseif #hits == 1 then
        if targets[hits[1]] then
          return nil, ("account %s has credentials twice: by its public key and by its JWT name %s")
            :format(hits[1], k)
        end
        targets[hits[1]], targets[k] = targets[k], nil
      end
    end
  end
  return true
end

local function api_error(reply)
  local r = json.decode(reply)
  if type(r) == "table" and type(r.error) == "table" then
    return ("%s (error %s, code %s)"):format(tostring(r.error.description), tostring(r.error.err_code),
      tostring(r.error.code)), r
  end
  return nil, r
end

-- Seconds spent waiting for the target's answers (jsr/flight.lua counts
-- them): what the cluster takes to store and replicate, which no client
-- can speed up; the rest of a run is js-recover's own work (reading,
-- replaying, building snapshots).
local timed = flight.request

-- A request nobody answers reached nobody, so it is sent again, for up to
-- 10 s: a busy cluster is briefly without a JetStream API responder (seen
-- with natscli's restores into a busy 2.15.3 cluster), and the restore's
-- deliver subject, created on the meta leader, reaches the node we talk to
-- a moment after its answer (seen there too: "no responders" on a chunk).
-- A question that changes nothing (stream and consumer info) is also asked
-- again when its answer is late: a target busy with several restores at
-- once (a standalone 2.15.3 with 1,000 small streams, 4 at a time, on 2
-- loaded cores) once left one unanswered for 5 s.
local function asks(subject)
  return subject:find("^%$JS%.API%.STREAM%.INFO%.") or subject:find("^%$JS%.API%.CONSUMER%.INFO%.")
end
local function answered(conn, subject, body, timeout)
  local reply, err = timed(conn, subject, body, timeout)
  local deadline = jsr.monotime() + (asks(subject) and 30 or 10)
  local function again(e)
    e = tostring(e)
    return e:find("No responders", 1, true) or (asks(subject) and e:find("Timeout", 1, true))
  end
  while not reply and again(err) and jsr.monotime() < deadline do
    flight.sleep(0.2)
    reply, err = timed(conn, subject, body, timeout)
  end
  return reply, err
end

-- request(conn, subject, body) -> decoded answer | nil, msg
local function request(conn, subject, body, timeout)
  local reply, err = answered(conn, subject, body, timeout)
  if not reply then return nil, err end
  local aerr, r = api_error(reply)
  if aerr then return nil, aerr, r end
  if type(r) ~= "table" then return nil, subject .. ": the answer is not JSON: " .. reply:sub(1, 200) end
  return r
end

local function stream_info(conn, name)
  local r, err, raw = request(conn, "$JS.API.STREAM.INFO." .. name, "")
  if r then return r end
  if raw and raw.error and raw.error.err_code == 10059 then return false end -- stream not found
  return nil, err
end

local function consumer_info(conn, stream, name)
  return request(conn, "$JS.API.CONSUMER.INFO." .. stream .. "." .. name, "")
end

-- What was sent, as the target must serve it: the stream's state and
-- each consumer's position from its o.dat as the snapshot holds it.
function M.expected(r, e)
  local st = snapshot.state(r, e)
  local want = { account = e.account, name = e.name, messages = st.messages, bytes = st.bytes,
    first_seq = st.first_seq, last_seq = st.last_seq, retention = e.target_config.retention or "limits",
    replicas = e.target_config.num_replicas or 1, consumers = {}, state = st, expired = st.expired }
  local odat = {}
  for _, f in ipairs(snapshot.files(r, e)) do
    if f.consumer then odat[f.consumer] = f end
  end
  for _, c in ipairs(e.consumers) do
    local dirname = c.path:match("([^/]+)$")
    local f = odat[dirname]
    local bytes = f and (f.make and f.make() or require("jsr.files").read(f.path))
    local cs = bytes and raft.consumer_state(bytes)
    want.consumers[#want.consumers + 1] = { name = c.config and (c.config.durable_name or c.config.name) or dirname,
      ack_floor = cs and cs.ack_floor.stream or 0, delivered = cs and cs.delivered.stream or 0 }
  end
  return want
end

-- The served first sequence as the store counts it: a stream that never
-- held a message (last_seq 0) is restored by 2.9.10 with first_seq 1
-- (measured; 2.15.3 says 0, as the store does), the same empty stream.
function M.served_first(want, s)
  if want.last_seq == 0 and want.first_seq == 0 and s.messages == 0 and s.last_seq == 0 and s.first_seq == 1 then
    return 0
  end
  return s.first_seq
end

-- compare_one(conn, want) -> rows of {what, want, got, ok}
function M.compare_one(conn, want)
  local rows = {}
  local function row(what, w, g) rows[#rows + 1] = { what = what, want = w, got = g, ok = w == g } end
  local info, err = stream_info(conn, want.name)
  if not info then
    row("stream", "present", info == false and "absent" or ("unreadable: " .. tostring(err)))
    return rows
  end
  local s, cfg = info.state or {}, info.config or {}
  row("retention", want.retention, cfg.retention)
  row("num_replicas", want.replicas, cfg.num_replicas)
  row("messages", want.messages, s.messages)
  row("bytes", want.bytes, s.bytes)
  row("first_seq", want.first_seq, M.served_first(want, s))
  row("last_seq", want.last_seq, s.last_seq)
  for _, c in ipairs(want.consumers) do
    local ci, cerr = consumer_info(conn, want.name, c.name)
    if not ci then
      row("consumer " .. c.name, "present", "absent: " .. tostring(cerr))
    else
      row("consumer " .. c.name .. " ack_floor", c.ack_floor, ci.ack_floor and ci.ack_floor.stream_seq)
      row("consumer " .. c.name .. " delivered", c.delivered, ci.delivered and ci.delivered.stream_seq)
    end
  end
  return rows
end

local function all_ok(rows)
  for _, x in ipairs(rows) do if not x.ok then return false end end
  return true
end

-- A restored R3 consumer's figures settle once its leader is elected:
-- compare again for a few seconds before calling a difference one.
local function compare_settled(conn, want, seconds)
  local deadline = jsr.monotime() + (seconds or 10)
  local rows
  repeat
    rows = M.compare_one(conn, want)
    if all_ok(rows) then return rows end
    flight.sleep(0.5)
  until jsr.monotime() > deadline
  return rows
end

-- The bytes snapshot.write reads for its progress: the store files'
-- sizes (a rewritten block counted as the store has it).
local function read_size(r, e)
  local n = 0
  for _, f in ipairs(snapshot.files(r, e)) do
    local p = f.path or f.store_path
    local fh = p and io.open(p, "rb")
    if fh then
      n = n + fh:seek("end")
      fh:close()
    end
  end
  return n
end

-- Progress on a terminal (stderr a tty, no --json): streams done of all,
-- store bytes read of all, the rate and the time left, one line rewritten
-- in place at most 4 times a second; nothing at all otherwise.
-- Returns add(bytes, streams [, final]).
local function progress_writer(quiet, total, streams)
  if quiet or not jsr.isatty(2) then return function() end end
  local t0, shown, bytes, done = jsr.monotime(), 0, 0, 0
  return function(nb, ns, final)
    bytes, done = bytes + nb, done + ns
    local now = jsr.monotime()
    if not final and now - shown < 0.25 and done < streams then return end
    shown = now
    local dt = now - t0
    local rate = dt > 0 and bytes / dt or 0
    local left = rate > 0 and math.max(0, total - bytes) / rate or 0
    io.stderr:write(("\r%d/%d streams, %s of %s, %s/s, %s left   "):format(done, streams,
      tbl.bytes(math.min(bytes, total)), tbl.bytes(total), tbl.bytes(math.floor(rate)),
      math.floor(left) > 0 and require("jsr.age").duration(math.floor(left) * 1000000000) or "0s"))
    if final then io.stderr:write("\n") end
  end
end

-- send(conn, r, e, want, progress) -> true | nil, msg
function M.send(conn, r, e, want, progress)
  local req = json.object()
  req.config, req.state = e.target_config, snapshot.state_json(want.state)
  local body = assert(json.encode(req))
  local ans, err, raw = request(conn, "$JS.API.STREAM.RESTORE." .. e.name, body, 30000)
  -- "name already in use" (10130) for a stream the target does not serve
  -- yet: a restore cut off earlier holds the name until the server gives
  -- up on it, then leaves the stream empty (measured on 2.15.3: about 10 s
  -- after the client went, 0 messages, no consumers); wait for that, and
  -- redo that empty stream, for at most 60 s
  -- (this run found the stream absent or so held: anything else shown
  -- meanwhile, as several streams cut off at once settle, is looked at
  -- again until then, and named)
  local deadline = jsr.monotime() + 60
  local seen
  while not ans and raw and raw.error and raw.error.err_code == 10130 and jsr.monotime() < deadline do
    local info = stream_info(conn, e.name)
    if info and M.half_restored(info, want, e.target_config) then
      local _, derr = request(conn, "$JS.API.STREAM.DELETE." .. e.name, "")
      if derr then return nil, ("%s > %s: cannot delete the half-restored stream: %s"):format(e.account, e.name, derr) end
      want.redone = true
    elseif info then
      seen = M.describe_existing(info)
      flight.sleep(1)
    else
      -- not there yet, or no answer (2.9.10 times stream info out while it
      -- gives up on the cut-off restore, measured)
      flight.sleep(1)
    end
    ans, err, raw = request(conn, "$JS.API.STREAM.RESTORE." .. e.name, body, 30000)
  end
  if not ans then
    return nil, ("%s > %s: the server refused the restore: %s%s"):format(e.account, e.name, err,
      require("jsr.placement").hint(e.target_config)
      .. (seen and ("; the target showed meanwhile " .. seen) or ""))
  end
  local deliver = ans.deliver_subject
  if type(deliver) ~= "string" or deliver == "" then
    return nil, ("%s > %s: the restore answer has no deliver_subject: %s"):format(e.account, e.name,
      json.encode(ans))
  end
  local function check(reply, rerr)
    if not reply then error(("%s > %s: sending the snapshot: %s"):format(e.account, e.name, rerr), 0) end
    if #reply > 0 then
      local aerr = api_error(reply)
      error(("%s > %s: the server stopped the restore: %s"):format(e.account, e.name, aerr or reply), 0)
    end
  end
  -- The first chunk goes alone, sent again while nobody answers (the
  -- deliver subject reaches our node a moment after the answer that names
  -- it); once it is answered, up to INFLIGHT go before the oldest's answer
  -- is awaited: they reach the server in order, on one connection.
  local inflight, accepted = {}, false
  local function send_chunk(chunk)
    if accepted then
      inflight[#inflight + 1] = flight.start(conn, deliver, chunk, 30000)
      if #inflight >= M.INFLIGHT then check(flight.finish(table.remove(inflight, 1))) end
    else
      check(answered(conn, deliver, chunk, 30000))
      accepted = true
    end
    chunks_sent = chunks_sent + 1
    if run_after_n and chunks_sent == run_after_n then
      io.stderr:write(("js-recover: JSR_RESTORE_RUN_AFTER: %d chunks sent, running %s\n"):format(chunks_sent,
        run_after:match("^%d+:(.*)$")))
      os.execute(run_after:match("^%d+:(.*)$"))
    end
    if exit_after and chunks_sent >= exit_after then
      io.stderr:write(("js-recover: JSR_RESTORE_EXIT_AFTER: exiting after %d chunks\n"):format(chunks_sent))
      os.exit(99, false)
    end
  end
  local pending, n = {}, 0
  local function flush(final)
    if n < M.CHUNK and not (final and n > 0) then return end
    local all = table.concat(pending)
    local at = 1
    while #all - at + 1 >= M.CHUNK or (final and at <= #all) do
      local chunk = all:sub(at, at + M.CHUNK - 1)
      at = at + #chunk
      send_chunk(chunk)
    end
    local rest = all:sub(at)
    pending, n = { rest }, #rest
  end
  local function drain()
    flush(true)
    while #inflight > 0 do check(flight.finish(table.remove(inflight, 1))) end
  end
  local ok, serr = pcall(snapshot.write, r, e, function(b)
    if #b > 0 then
      pending[#pending + 1] = b
      n = n + #b
      flush(false)
    end
  end, progress)
  if ok then ok, serr = pcall(drain) end
  if not ok then return nil, serr end
  local fin, ferr = request(conn, deliver, "", M.FINAL_TIMEOUT_MS)
  if not fin then return nil, ("%s > %s: the server did not take the snapshot: %s"):format(e.account, e.name, ferr) end
  return true
end

-- What a restore cut off leaves once the server gave up on it: the
-- stream as configured, empty (never a message), where the store has
-- messages; without consumers, or (seen on 2.15.3 with several streams
-- cut off at once) with no more than the store's.  Anything else on the
-- target is someone's stream: refused without --force.
function M.half_restored(info, want, cfg)
  local s, c = info.state or {}, info.config or {}
  return s.messages == 0 and s.last_seq == 0 and (s.consumer_count or 0) <= #want.consumers and want.last_seq > 0
    and (c.retention or "limits") == want.retention and c.num_replicas == want.replicas
    and json.encode(c.subjects or json.array()) == json.encode(cfg.subjects or json.array())
end

-- What the target's max_age deletes as soon as it loads the stream.
function M.expired_note(e, w)
  return ("  note: %s > %s: the target deletes at once %d message(s) older than its max_age %s (counted now, "
    .. "not in the figures above)"):format(e.account, e.name, w.expired,
    require("jsr.age").duration(e.target_config.max_age))
end

local function same_identity(info, want)
  local s, cfg = info.state or {}, info.config or {}
  return s.messages == want.messages and M.served_first(want, s) == want.first_seq and s.last_seq == want.last_seq
    and (cfg.retention or "limits") == want.retention and cfg.num_replicas == want.replicas
end

local function print_rows(out, results)
  local rows = {}
  for _, res in ipairs(results) do
    for _, x in ipairs(res.rows or {}) do
      rows[#rows + 1] = { res.account .. " > " .. res.stream, x.what, tostring(x.want), tostring(x.got),
        x.ok and "ok" or "DIFFERS" }
    end
  end
  out:write(tbl.render("What the target serves against what was sent",
    { "Stream", "Field", "Sent", "Served", "" }, rows), "\n")
end

function M.describe_existing(info)
  local s = info.state or {}
  return ("%s messages, seq %s..%s, %s consumers, retention %s, R%s"):format(tostring(s.messages),
    tostring(s.first_seq), tostring(s.last_seq), tostring(s.consumer_count),
    tostring(info.config and info.config.retention), tostring(info.config and info.config.num_replicas))
end

-- dependency_order(streams) -> indexes, every stream before the streams
-- of its account it sources from or mirrors, which wait for it
-- (e.wait_for: indexes to finish first).  Measured on 2.15.3: a sourcing
-- stream restored while its origin already exists imports the origin's
-- messages again (40 resurrected in COMBINED, spec/supercluster_spec.lua),
-- one restored first finds its origin later and goes on where it was.  A
-- cycle is broken where it closes, so a stream only waits for streams
-- handed out before it.
function M.dependency_order(streams)
  local by_name = {}
  for i, e in ipairs(streams) do by_name[e.account .. "\0" .. e.name] = i end
  local dependents = {}
  for i, e in ipairs(streams) do
    e.wait_for = {}
    local cfg = e.target_config or {}
    local function add(src)
      if type(src) ~= "table" or type(src.name) ~= "string" or src.external ~= nil then return end
      local j = by_name[e.account .. "\0" .. src.name]
      if j and j ~= i then
        dependents[j] = dependents[j] or {}
        table.insert(dependents[j], i)
      end
    end
    add(cfg.mirror)
    for _, src in ipairs(type(cfg.sources) == "table" and cfg.sources or {}) do add(src) end
  end
  local order, state = {}, {}
  local function visit(i)
    if state[i] then return state[i] == "done" end
    state[i] = "open"
    for _, d in ipairs(dependents[i] or {}) do
      if visit(d) then table.insert(streams[i].wait_for, d) end
    end
    state[i] = "done"
    order[#order + 1] = i
    return true
  end
  for i = 1, #streams do visit(i) end
  return order
end

-- run(policy, mode, ...) -> exit code; mode "restore" or "compare"
function M.run(policy, mode, ...)
  local spec = {}
  for k, v in pairs(export.OPTIONS) do spec[k] = v end
  for k, v in pairs(M.OPTIONS) do spec[k] = v end
  require("jsr.operator").with(spec)
  local opts, args = cli.parse({ ... }, keys.with(spec))
  local function say(...) io.stderr:write("js-recover ", mode, ": ", ...) end
  if not opts then say(args, "\n", usage); return 2 end
  if #args < 1 then say("expected <store> (or several survivors' stores), got none\n", usage); return 2 end
  if not opts.server and not opts.accounts then say("--server URL is required\n", usage); return 2 end
  -- several survivors: each stream from its chosen copy (jsr/survivors.lua)
  local r, code
  if #args > 1 then r, code = require("jsr.survivors").open(mode, opts, args, policy)
  else r, code = export.open(mode, opts, args[1], policy) end
  if not r then return code end
  local accounts = {}
  for _, e in ipairs(r.streams) do accounts[e.account] = true end
  local targets, terr = M.targets(opts, accounts)
  if not targets then say(terr, "\n"); return 2 end
  local jwt_names = M.jwt_names(r, opts)
  local nok, nerr = M.by_jwt_name(targets, accounts, jwt_names)
  if not nok then say(nerr, "\n"); return 2 end
  -- every account needs its credentials before anything is sent
  local missing = {}
  for a in pairs(accounts) do if not targets[a] then missing[#missing + 1] = a end end
  table.sort(missing)
  for i, a in ipairs(missing) do if jwt_names[a] then missing[i] = ("%s (%s)"):format(a, jwt_names[a]) end end
  if #missing > 0 then
    say("nothing sent: no credentials for the source account(s) ", table.concat(missing, ", "),
      ": give --user/--password, --token, --creds or --nkey with --account SRC, or map each in --accounts FILE\n")
    return 2
  end
  local out = cli.human(io.stdout)
  local wants, total, total_read = {}, 0, 0
  for i, e in ipairs(r.streams) do
    wants[i] = M.expected(r, e)
    total = total + wants[i].bytes
    total_read = total_read + read_size(r, e)
  end
  if opts["dry-run"] then
    local plan = json.array()
    for i, e in ipairs(r.streams) do
      local w = wants[i]
      local before = snapshot.stream_config_of(e)
      local changes = json.array()
      local _, texts = json.fields(e.target_config)
      local _, old = json.fields(before)
      for _, k in ipairs(json.keys(e.target_config)) do
        if old[k] ~= texts[k] then changes[#changes + 1] = { field = k, old = old[k], new = texts[k] } end
      end
      for _, k in ipairs(json.keys(before)) do
        if texts[k] == nil then changes[#changes + 1] = { field = k, old = old[k] } end
      end
      plan[#plan + 1] = { account = e.account, stream = e.name, from = e.chosen_from, messages = w.messages, bytes = w.bytes,
        first_seq = w.first_seq, last_seq = w.last_seq, consumers = #e.consumers, changes = changes,
        expired_by_max_age = w.expired }
      if not opts.json then
        local cs = {}
        for _, c in ipairs(changes) do
          cs[#cs + 1] = not c.new and (c.field .. " removed") or not c.old and ("%s = %s (new)"):format(c.field, c.new)
            or ("%s %s -> %s"):format(c.field, c.old, c.new)
        end
        out:write(("would restore %s > %s: %d messages (seq %d..%d, %s), %d consumers; config %s\n"):format(
          e.account, e.name, w.messages, w.first_seq, w.last_seq, tbl.bytes(w.bytes), #e.consumers,
          #cs > 0 and ("changed: " .. table.concat(cs, ", ")) or "as the store has it"))
        if w.expired then out:write(M.expired_note(e, w), "\n") end
      end
    end
    if opts.json then io.stdout:write(pretty({ dry_run = true, streams = plan }), "\n") end
    return 0
  end
  -- a few connections per account, one per stream in flight: a task
  -- takes one that is free, or opens one, and gives it back when done
  local conns, free = {}, {}
  local function take_conn(account)
    local list = free[account]
    if list and #list > 0 then return table.remove(list) end
    local c, cerr = jsr.nats.connect(targets[account])
    if not c then error(("account %s: %s"):format(account, cerr), 0) end
    conns[#conns + 1] = c
    return c
  end
  local function give_conn(account, c)
    free[account] = free[account] or {}
    table.insert(free[account], c)
  end
  local results, failed = {}, false
  local t0 = jsr.monotime()
  local progress = progress_writer(opts.json, total_read, #r.streams)
  local parallel = math.tointeger(opts.parallel) or M.PARALLEL
  -- each stream leaves garbage (chunks, its snapshot writer) that the
  -- incremental collector lets pile up to twice the heap: generational
  -- collects it young (1,000 small streams into a standalone 2.15.3:
  -- peak RSS 47 MB against 58 MB)
  collectgarbage("generational")
  local function one(i, e)
    local w = wants[i]
    local conn = take_conn(e.account)
    local res = { account = e.account, stream = e.name, from = e.chosen_from, note = w.expired and M.expired_note(e, w) or nil,
                  expired = w.expired }
    results[i] = res
    if mode == "restore" then
      local info, ierr = stream_info(conn, e.name)
      if info == nil then error(("%s > %s: cannot ask the target about it: %s"):format(e.account, e.name, ierr), 0) end
      if info and same_identity(info, w) and all_ok(M.compare_one(conn, w)) then
        res.action = "skipped"
        res.why = "already restored identically"
      elseif info and not opts.force and not M.half_restored(info, w, e.target_config) then
        res.action = "refused"
        res.why = "the target has this stream already (" .. M.describe_existing(info)
          .. "); --force deletes it and restores the store's"
        failed = true
      else
        if info then
          local _, derr = request(conn, "$JS.API.STREAM.DELETE." .. e.name, "")
          if derr then error(("%s > %s: cannot delete the target's stream: %s"):format(e.account, e.name, derr), 0) end
          if M.half_restored(info, w, e.target_config) then w.redone = true else res.replaced = M.describe_existing(info) end
        end
        local sok, serr = M.send(conn, r, e, w, function(n) progress(n, 0) end)
        if not sok then error(serr, 0) end
        res.action = res.replaced and "replaced" or "restored"
        if w.redone then res.why = "redone: the target held it empty, as a restore cut off leaves it" end
      end
    end
    if res.action ~= "refused" then
      res.rows = compare_settled(conn, w, mode == "restore" and 15 or 5)
      res.ok = all_ok(res.rows)
      if not res.ok then failed = true end
    end
    give_conn(e.account, conn)
    progress(0, 1)
  end
  -- a stream that others source from or mirror starts once they are
  -- restored (M.dependency_order)
  local order, finished = M.dependency_order(r.streams), {}
  local next_i = 0
  local ok, err = pcall(flight.run, function()
    next_i = next_i + 1
    local i = order[next_i]
    local e = i and r.streams[i]
    if not e then return nil end
    return function()
      for _, d in ipairs(e.wait_for or {}) do
        while not finished[d] do flight.sleep(0.1) end
      end
      one(i, e)
      finished[i] = true
    end
  end, mode == "restore" and math.max(1, parallel) or 1)
  for _, c in pairs(conns) do c:close() end
  progress(0, 0, true)
  if not ok then
    say(err, "\n")
    say("a re-run skips what was restored identically and redoes the rest\n")
    return 3
  end
  if opts.json then
    local arr = json.array()
    for i = 1, #r.streams do
      local res = results[i]
      local rows = json.array()
      for _, x in ipairs(res.rows or {}) do rows[#rows + 1] = { field = x.what, sent = x.want, served = x.got, ok = x.ok } end
      arr[#arr + 1] = { account = res.account, stream = res.stream, from = res.from, action = res.action, why = res.why,
        replaced = res.replaced, ok = res.ok or false, checks = rows, expired_by_max_age = res.expired }
    end
    io.stdout:write(pretty({ streams = arr, ok = not failed, seconds = json.number(("%.3f"):format(jsr.monotime() - t0)),
      seconds_waiting_for_target = json.number(("%.3f"):format(flight.waited)), bytes = total }), "\n")
  else
    for i = 1, #r.streams do
      local res = results[i]
      if res.action then
        out:write(("%s %s > %s%s\n"):format(res.action, res.account, res.stream,
          res.why and (": " .. res.why) or res.replaced and (" (it replaced " .. res.replaced .. ")") or ""))
      end
      if res.note then out:write(res.note, "\n") end
    end
    print_rows(out, results)
    out:write(failed and "DIFFERENCES: see the rows marked DIFFERS (or refused above)\n"
      or "every stream and consumer is served as it was sent\n")
    out:write(("%d stream(s), %s in %.1f s, %.1f s of it waiting for the target's answers\n"):format(
      #results, tbl.bytes(total), jsr.monotime() - t0, flight.waited))
  end
  -- a stream whose survivors' copies conflict was left out (said at the start)
  return (failed or #(r.refused or {}) > 0) and 1 or 0
end

return M
