-- A store written by a nats-server newer than any js-recover knows: what
-- gives it away, each named where it is, so that nothing is read or
-- rewritten by guesswork (docs/FORMAT.md "Stores newer than js-recover").
--
--   findings(m) -> { {path=, what=, message=}, ... }   (m: model.scan)
--
-- Checked against what 2.15.3 writes and reads: the version of
-- msgs/index.db, the fields of stream and consumer meta.inf (2.11+ refuse
-- a field they do not know), the API level a stream or consumer requires
-- (metadata "_nats.req.level"), the files and directories of a stream and
-- consumer directory, the compression algorithm of a block and the
-- version of a consumer's o.dat.
local jsr = require("jsr")
local layout = jsr.layout

local M = {}

M.NEWEST_SERVER = jsr.newest_server -- "2.15.3"
M.INDEXDB_VERSION = jsr.indexdb_newest -- 4
M.API_LEVEL = 5 -- 2.11: 1, 2.12: 3, 2.14: 4, 2.15: 5 (jetstream_versioning.go JSApiLevel)

local function set(list)
  local s = {}
  for _, k in ipairs(list) do s[k:lower()] = true end
  return s
end

-- meta.inf keys 2.15.3 decodes: FileStreamInfo (Created + StreamConfig) and
-- FileConsumerInfo (Created, Name + ConsumerConfig).  Go matches JSON keys
-- to fields without regard to case, so the comparison ignores it too.
M.STREAM_FIELDS = set {
  "created", "name", "description", "subjects", "retention", "max_consumers", "max_msgs", "max_bytes",
  "max_age", "max_msgs_per_subject", "max_msg_size", "discard", "storage", "num_replicas", "no_ack",
  "duplicate_window", "placement", "mirror", "sources", "compression", "first_seq", "subject_transform",
  "republish", "allow_direct", "mirror_direct", "discard_new_per_subject", "sealed", "deny_delete",
  "deny_purge", "allow_rollup_hdrs", "consumer_limits", "allow_msg_ttl", "subject_delete_marker_ttl",
  "allow_msg_counter", "allow_atomic", "allow_msg_schedules", "persist_mode", "allow_batched", "metadata",
}
M.CONSUMER_FIELDS = set {
  "created", "name", "durable_name", "description", "deliver_policy", "opt_start_seq", "opt_start_time",
  "ack_policy", "ack_wait", "max_deliver", "backoff", "filter_subject", "filter_subjects",
  "replay_policy", "rate_limit_bps", "sample_freq", "max_waiting", "max_ack_pending", "flow_control",
  "headers_only", "max_batch", "max_expires", "max_bytes", "deliver_subject", "deliver_group",
  "idle_heartbeat", "inactive_threshold", "num_replicas", "mem_storage", "direct", "sourcing",
  "metadata", "pause_until", "priority_groups", "priority_policy", "priority_timeout",
}

-- The objects inside them that 2.15.3 decodes field by field (metadata is
-- a free map): Placement, StreamSource (mirror, sources) with its
-- ExternalStream, SubjectTransformConfig list and StreamConsumerSource,
-- SubjectTransformConfig, RePublish, StreamConsumerLimits.
local TRANSFORM = { fields = set { "src", "dest" } }
local SOURCE = { fields = set { "name", "opt_start_seq", "opt_start_time", "filter_subject",
  "subject_transforms", "external", "consumer" },
  nested = { external = { fields = set { "api", "deliver" } }, subject_transforms = { list = TRANSFORM },
    consumer = { fields = set { "name", "deliver_subject" } } } }
M.STREAM_NESTED = {
  placement = { fields = set { "cluster", "tags", "preferred" } },
  mirror = SOURCE,
  sources = { list = SOURCE },
  subject_transform = TRANSFORM,
  republish = { fields = set { "src", "dest", "headers_only" } },
  consumer_limits = { fields = set { "inactive_threshold", "max_ack_pending" } },
}

-- What a stream directory holds (2.15.3 filestore.go): those of jsr.layout,
-- and the names only this check needs: batches/ (2.12+, atomic batches in
-- flight), sources.db (2.15), the purge's __msgs__ and __new_msgs__ while
-- one runs.
M.STREAM_ENTRIES = set { layout.META_INF, layout.META_SUM, layout.META_KEY, layout.MSGS_DIR,
  layout.CONSUMERS_DIR, "batches", "sources.db", "__msgs__", "__new_msgs__" }
-- msgs/: blocks and their 2.9 files, and the 2.10+ state files: index.db,
-- thw.db (2.11+, message TTLs), sched.db (2.12+, schedules)
M.MSGS_FILES = set { layout.INDEX_DB, "thw.db", "sched.db" }
M.CONSUMER_ENTRIES = set { layout.META_INF, layout.META_SUM, layout.META_KEY, layout.CONSUMER_STATE }

-- N.blk, N.idx, N.fss, N.key, N.new (a block being rewritten), *.tmp
local function block_file(name)
  for _, ext in ipairs { layout.BLK_EXT, layout.IDX_EXT, layout.FSS_EXT, layout.KEY_EXT, "new" } do
    if name:match("^%d+%." .. ext .. "$") then return true end
  end
  return name:match("%.tmp$")
end

local function finding(out, path, what)
  out[#out + 1] = { path = path, what = what,
    message = ("%s: %s — written by a nats-server newer than js-recover knows (newest known %s)")
      :format(path, what, M.NEWEST_SERVER) }
end

local function list(dir) return jsr.listdir(dir) end

-- the keys of obj (and of the objects its schema describes) that are not
-- known, as dotted names
local function unknown_keys(obj, known, nested, prefix, unknown)
  for k, v in pairs(obj) do
    if type(k) == "string" then
      local lk = k:lower()
      if not known[lk] then
        unknown[#unknown + 1] = prefix .. k
      elseif nested and nested[lk] and type(v) == "table" then
        local sub = nested[lk]
        if sub.list then
          for i, e in ipairs(v) do
            if type(e) == "table" then
              unknown_keys(e, sub.list.fields, sub.list.nested, ("%s%s[%d]."):format(prefix, k, i), unknown)
            end
          end
        else
          unknown_keys(v, sub.fields, sub.nested, prefix .. k .. ".", unknown)
        end
      end
    end
  end
end

local function check_config(out, path, cfg, known, kind, nested)
  if type(cfg) ~= "table" then return end
  local unknown = {}
  unknown_keys(cfg, known, nested, "", unknown)
  table.sort(unknown)
  if #unknown > 0 then
    finding(out, path, ("%s config field%s %s unknown to nats-server %s"):format(kind,
      #unknown > 1 and "s" or "", table.concat(unknown, ", "), M.NEWEST_SERVER))
  end
  local md = cfg.metadata
  local level
  if type(md) == "table" then level = md["_nats.req.level"] end
  if level ~= nil then
    local n = math.tointeger(tonumber(level))
    if not n or n > M.API_LEVEL then
      finding(out, path, ("requires JetStream API level %s (metadata \"_nats.req.level\"; newest known %d)")
        :format(tostring(level), M.API_LEVEL))
    end
  end
end

local function check_dir(out, dir, known)
  if jsr.lstat(dir) ~= "directory" then return end
  local names = list(dir)
  for _, name in ipairs(names or {}) do
    if not known[name:lower()] and not name:match("^%.") then
      finding(out, dir .. "/" .. name, "an entry js-recover does not know in a " ..
        (known == M.STREAM_ENTRIES and "stream" or "consumer") .. " directory")
    end
  end
end

local function check_msgs(out, s)
  local dir = layout.msgs_dir(s.path)
  -- a real directory only: a symlink there is the model's problem, and
  -- what it points to is not the store
  if jsr.lstat(dir) ~= "directory" then return end
  for _, name in ipairs(list(dir) or {}) do
    if not M.MSGS_FILES[name] and not block_file(name) and not name:match("^%.") then
      finding(out, dir .. "/" .. name, "a file js-recover does not know in msgs/")
    end
  end
  -- index.db: the version byte; an encrypted one says it only once opened
  local keyfile = layout.meta_key(s.path)
  local ropts = jsr.lstat(keyfile) and { keyfile = keyfile, account = s.account } or nil
  local _, status, _, version = jsr.indexdb_read(layout.index_db(s.path), s.name, ropts)
  if status == "newer" then
    finding(out, layout.index_db(s.path), ("index.db version %d (newest known %d)"):format(version, M.INDEXDB_VERSION))
  end
  -- a block's compression algorithm (plain blocks only: an encrypted one
  -- is ciphertext from byte 0)
  for _, b in ipairs(jsr.block_files(s.path) or {}) do
    if not b.key and jsr.lstat(b.path) == "file" then
      local f = io.open(b.path, "rb")
      local head = f and f:read(4)
      if f then f:close() end
      if head and #head == 4 and head:sub(1, 3) == "cmp" and head:byte(4) ~= 1 then
        finding(out, b.path, ("compressed with algorithm %d (known: 1, s2)"):format(head:byte(4)))
      end
    end
  end
end

function M.findings(m)
  local out = {}
  for _, s in ipairs(m.streams) do
    check_config(out, layout.meta_inf(s.path), s.config, M.STREAM_FIELDS, "stream", M.STREAM_NESTED)
    check_dir(out, s.path, M.STREAM_ENTRIES)
    check_msgs(out, s)
    for _, c in ipairs(s.consumers or {}) do
      check_config(out, layout.meta_inf(c.path), c.config, M.CONSUMER_FIELDS, "consumer")
      check_dir(out, c.path, M.CONSUMER_ENTRIES)
      -- o.dat: byte 22 and a version, 1 or 2 (checkConsumerHeader); an
      -- encrypted one (meta.key) is sealed from byte 0
      local odat = layout.consumer_state(c.path)
      if not jsr.lstat(layout.meta_key(c.path)) and jsr.lstat(odat) == "file" then
        local f = io.open(odat, "rb")
        local head = f and f:read(2)
        if f then f:close() end
        if head and #head == 2 and head:byte(1) == 22 and head:byte(2) > 2 then
          finding(out, odat, ("consumer state version %d (known: 1, 2)"):format(head:byte(2)))
        end
      end
    end
  end
  return out
end

return M
