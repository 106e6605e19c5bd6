-- js-recover inspect <store> [<store>...] [--json]
--
-- Several survivors' stores (`inspect /mnt/n4 /mnt/n5`): per stream and
-- consumer each copy after replay (last sequence, messages, its Raft
-- group's last log term and index, a consumer's ack floor and delivered),
-- the copy restore, export and prepare --into take and why, copies that
-- hold different messages at one sequence (exit 1), and what no survivor
-- holds (jsr/survivors.lua).
--
-- Lists what the store holds and changes nothing: per account and stream,
-- replicas, retention, storage, placement, consumers (each with its
-- replicas), whether the meta files are encrypted, whether meta.sum matches,
-- and bytes on disk; what a standalone server would delete by time (per
-- stream the messages past max_age now, counted from the blocks; the
-- consumers it deletes for inactivity); the Raft groups of the system
-- account; entries that were skipped (partial deletes, symlinks) or could
-- not be read; what a nats-server newer than js-recover knows wrote (an
-- index.db version, meta.inf fields, an API level, files, a block's
-- compression: jsr/newer.lua), each named where it is.
--
-- options:
--   --json    print the same as JSON, for scripts
--   --resolver-dir D, --operator-jwt F, --config F
--             operator mode: where the account JWTs are (a full resolver's
--             dir, the operator's JWT, the survivor's server config with
--             resolver_preload); a resolver dir next to jetstream/ is found
--             without them.  Accounts are named by public key and JWT name.
--   --key-file F, --prev-key-file F
--             the server's encryption key (or JSR_KEY, JSR_PREV_KEY) for an
--             encrypted store; without it, encrypted entries are listed as such
--
-- Exit code 1 when an entry cannot be read or a checksum is wrong, or a
-- Raft entry is malformed (listed with its log file, byte offset and
-- index).
local jsr = require("jsr")
local model = require("jsr.model")
local cli = require("jsr.cli")
local tbl = require("jsr.table")
local pretty = require("jsr.print").pretty
local json = jsr.json

local keys = require("jsr.keys")
local age = require("jsr.age")
local count = require("jsr.print").count
local operator = require("jsr.operator")
local opts, args = cli.parse({ ... }, operator.with(keys.with { json = "flag" }))
-- several stores (survivors of one cluster): each copy and the one to take
if opts and #args > 1 then return require("jsr.survivors").inspect(nil, opts, args) end
if not opts or #args ~= 1 then
  return cli.fail("inspect", 2, opts and "expected one <store>" or args, "\n",
    "usage: js-recover inspect <store> [--json] [--key-file F] [--resolver-dir D] [--operator-jwt F] [--config F]\n")
end
local m, code = cli.scan("inspect", opts, args[1])
if not m then return code end

local function field(cfg, k)
  if not cfg then return nil end
  local v = cfg[k]
  if v == json.null then return nil end
  return v
end

local function describe(e, with_bytes)
  local cfg = e.config
  local d = {
    account = e.account, name = e.name, path = e.path,
    encrypted = e.encrypted or false,
    checksum_ok = e.info and e.info.sum_ok or false,
    error = e.error,
  }
  if with_bytes then d.bytes = jsr.tree_bytes(e.path) end
  if cfg then
    d.max_age = field(cfg, "max_age")
    d.replicas = field(cfg, "num_replicas")
    d.retention = field(cfg, "retention")
    d.storage = field(cfg, "storage")
    d.placement = field(cfg, "placement")
  end
  return d
end

local now = age.now()
local report = { store_dir = m.store.store_dir, accounts = {}, streams = {}, raft_groups = {},
                 skipped = {}, problems = {} }
-- operator mode: accounts are public keys; their JWTs give their names
local opinfo = operator.gather(m, operator.from_opts(opts))
report.operator = operator.json(opinfo)
-- the server's JetStream domain (not in the store: from --config) and the
-- domains the streams source from (jsr/domain.lua)
local domain = require("jsr.domain")
local own_domain = domain.own { config = opts.config }
local domain_refs = domain.referenced(m)
report.domain = { name = own_domain.name, source = own_domain.source, referenced = json.array(domain_refs) }
local account_name = {}
for _, a in ipairs(m.accounts) do
  local ra = { name = a.name, system = a.system, streams = #a.streams, raft_groups = #a.raft }
  if opinfo.mode then
    local d = operator.describe(opinfo, a.name)
    ra.public_key, ra.jwt_name, ra.jwt, ra.signature, ra.signature_why, ra.jetstream, ra.expired =
      operator.is_account_key(a.name) and a.name or nil, d.name, d.jwt or false, d.signature, d.why, d.jetstream, d.expired
    ra.system_account = a.name == opinfo.system_account or nil
    account_name[a.name] = d.name
  end
  report.accounts[#report.accounts + 1] = ra
end
for _, s in ipairs(m.streams) do
  local d = describe(s, true)
  d.account_name = account_name[s.account]
  -- what a server started now deletes at once, by age
  if not s.error and math.type(d.max_age) == "integer" and d.max_age > 0 then
    d.past_max_age, d.past_max_age_error = age.past_max_age(s, now)
  end
  -- 2.10+: msgs/index.db, and whether the server would trust it
  if not s.error and jsr.lstat(jsr.layout.index_db(s.path)) then
    local r = require("jsr.blocks").index_db(s, jsr.block_files(s.path) or {})
    d.index_db = { status = r.status, version = r.info and r.info.version or r.version,
      trusted = r.trusted or false, why = r.why or (r.status ~= "ok" and r.message) or nil }
  end
  d.time_limits = {}
  for _, l in ipairs(age.stream_limits(s.config)) do
    d.time_limits[#d.time_limits + 1] = { field = l.field, value = l.value }
  end
  d.consumers = {}
  for _, c in ipairs(s.consumers) do
    local cd = describe(c, false)
    cd.retention, cd.storage, cd.placement, cd.max_age = nil, nil, nil, nil
    cd.inactive_threshold = field(c.config, "inactive_threshold")
    -- deleted by the server for inactivity once it runs
    cd.expires = age.consumer_expires(c.config, s.config)
    d.consumers[#d.consumers + 1] = cd
  end
  report.streams[#report.streams + 1] = d
end
for _, g in ipairs(m.raft) do
  report.raft_groups[#report.raft_groups + 1] = { account = g.account, name = g.name, kind = g.group }
end
for _, e in ipairs(m.skipped) do report.skipped[#report.skipped + 1] = { path = e.path, why = e.message } end
for _, p in ipairs(model.problems(m)) do
  report.problems[#report.problems + 1] = { path = p.path, message = p.message }
end
-- what the cluster had that this node holds no data of (informational:
-- it does not change the exit code)
local lost = require("jsr.lost")
local lost_report = lost.analyze(m)
report.lost = lost.json(lost_report)
-- how far each Raft log is ahead of the store (what prepare salvages); a
-- malformed Raft entry, or logs that cannot be read at all, are problems
local salvage = require("jsr.salvage")
local sok, salv = pcall(salvage.analyze, m)
if sok then
  report.log_ahead = salvage.json(salv)
  for _, f in ipairs(salv.findings) do
    report.problems[#report.problems + 1] = { path = f.file, message = f.message }
  end
else
  report.log_ahead = { available = false, why = "cannot read the Raft logs: " .. tostring(salv) }
  report.problems[#report.problems + 1] = { path = m.store.store_dir, message = report.log_ahead.why }
  salv = nil
end
-- what a server newer than js-recover knows wrote (informational, like
-- lost: prepare refuses such a store unless told otherwise)
report.newer = require("jsr.newer").findings(m)
local status = #report.problems > 0 and 1 or 0

if opts.json then
  -- plain tables: mark empty lists as arrays so they stay [] in JSON
  for _, k in ipairs { "accounts", "streams", "raft_groups", "skipped", "problems", "newer" } do
    json.array(report[k])
  end
  for _, s in ipairs(report.streams) do json.array(s.consumers); json.array(s.time_limits) end
  io.stdout:write(pretty(report), "\n")
  return status
end

-- names from the store may hold control bytes: escaped for the terminal
local stdout = cli.human(io.stdout)
local function yn(b) return b and "yes" or "no" end
local function placement(p)
  if not p then return "" end
  local parts = {}
  if p.cluster then parts[#parts + 1] = p.cluster end
  if type(p.tags) == "table" and #p.tags > 0 then parts[#parts + 1] = "tags " .. table.concat(p.tags, ",") end
  return table.concat(parts, " ")
end
for _, l in ipairs(operator.lines(opinfo, m)) do stdout:write(l, "\n") end
for _, l in ipairs(domain.lines(own_domain, domain_refs)) do stdout:write(l, "\n") end
if opinfo.mode then stdout:write("\n") end
local rows = {}
for i, s in ipairs(report.streams) do
  if i > 1 and #report.streams[i - 1].consumers > 0 then rows[#rows + 1] = "-" end
  local by_time = {}
  for _, l in ipairs(s.time_limits) do
    if l.field == "max_age" then
      by_time[#by_time + 1] = ("max_age %s: %s past"):format(age.duration(s.max_age),
        s.past_max_age and count(s.past_max_age) or "? (" .. tostring(s.past_max_age_error) .. ")")
    else
      by_time[#by_time + 1] = age.describe(l.field, l.value)
    end
  end
  by_time = table.concat(by_time, "; ")
  rows[#rows + 1] = { s.account_name and (s.account_name .. " " .. s.account:sub(1, 8) .. "…") or s.account, s.name, s.replicas or "?", s.retention or "?", s.storage or "?",
    placement(s.placement), #s.consumers, yn(s.encrypted), s.checksum_ok and "yes" or "NO",
    tbl.bytes(s.bytes), by_time }
  for _, c in ipairs(s.consumers) do
    local x = c.expires
    rows[#rows + 1] = { "", "  └ " .. c.name, c.replicas == 0 and "0 (as stream)" or c.replicas or "?",
      "", "", "", "", yn(c.encrypted), c.checksum_ok and "yes" or "NO", "",
      x and ("%s idle %s"):format(x.ephemeral and "ephemeral," or "deleted after", age.duration(x.after)) or "" }
  end
end
stdout:write(tbl.render(("Streams in %s"):format(m.store.store_dir),
  { "Account", "Stream / consumer", "Replicas", "Retention", "Storage", "Placement", "Consumers",
    "Encrypted", "Checksum ok", "On disk", "Deleted by time" }, rows))
local sys = m.system
if sys then
  local kinds = {}
  for _, g in ipairs(report.raft_groups) do kinds[g.kind] = (kinds[g.kind] or 0) + 1 end
  stdout:write(("\nSystem account %s: Raft state of %d groups (meta %d, stream %d, consumer %d) in %s\n")
    :format(sys.name, #sys.raft, kinds.meta or 0, kinds.stream or 0, kinds.consumer or 0, jsr.layout.raft_dir(sys.path)))
end
for _, s in ipairs(report.streams) do
  local x = s.index_db
  if x and not x.trusted then
    stdout:write(("%s > %s: msgs/index.db (%s%s) is not what the server loads the stream from: %s; it rebuilds from the blocks\n")
      :format(s.account, s.name, x.status, x.version and (", version " .. x.version) or "", x.why or x.status))
  end
end
for _, e in ipairs(report.skipped) do stdout:write(("skipped %s: %s\n"):format(e.path, e.why)) end
lost.print(lost_report, stdout)
if salv and salv.available then
  local lines = salvage.lines(salv, false)
  if #lines == 0 then
    stdout:write("\nRaft logs: no stream or consumer log is ahead of the store\n")
  else
    stdout:write("\nRaft logs ahead of the store (prepare salvages them before moving _js_ aside):\n")
    for _, l in ipairs(lines) do stdout:write("  ", l, "\n") end
  end
elseif not sok then
  stdout:write("\n", report.log_ahead.why, "\n")
end
if #report.newer > 0 then
  stdout:write(("\nWritten by a newer nats-server (%d finding(s); prepare refuses such a store without --allow-newer):\n")
    :format(#report.newer))
  for _, f in ipairs(report.newer) do stdout:write("  ", f.message, "\n") end
end
if status ~= 0 then
  stdout:write(("\n%d problem(s):\n"):format(#report.problems))
  for _, p in ipairs(report.problems) do stdout:write("  ", p.message, "\n") end
end
return status
