-- A stream's snapshot as the survivor's store holds it once replayed, built
-- without writing to the store: the files prepare would leave (its plan's
-- salvaged tails, removed expired/deleted/done messages, consumers' o.dat
-- after salvage) as a virtual file set over the store's own files, and the
-- stream's ORIGINAL config (retention, replicas, age limits as the dead
-- cluster had them, not prepare's standalone ones).  export.lua writes it
-- as natscli backups, restore.lua sends it to a cluster's restore API
-- (docs/FORMAT.md "Snapshot and restore").
local jsr = require("jsr")
local model = require("jsr.model")
local prepare = require("jsr.prepare")
local removal = require("jsr.removal")
local sealed = require("jsr.sealed")
local json = jsr.json
local layout = jsr.layout

local M = {}

-- bytes read from a store file per write into the snapshot: memory stays
-- at about this much whatever the stream's size
M.PIECE = 1 << 20

local function copy(v) return assert(json.decode(assert(json.encode(v)))) end

local function base(path) return path:match("([^/]+)$") end

-- plan(store, policy, opts) -> r | nil, msg
-- r = {model, plan, streams = {entry...}, problems = {...}}; each entry as
-- prepare.plan's streams, with .original_config and per consumer
-- .original_config: what meta.inf held before the plan edited it.
-- The store is only read: prepare.plan decides, nothing is applied.
function M.plan(store, policy, opts)
  opts = opts or {}
  local st, err = jsr.open(store)
  if not st then return nil, err end
  -- a prepared store holds prepare's configs (limits retention, R1): the
  -- original is then only in recovery-report.json, and undo gives it back
  if jsr.lstat(layout.report(st.store_dir)) or jsr.lstat(layout.journal_dir(st.store_dir)) then
    return nil, st.store_dir .. ": this store was prepared (recovery-report.json or .js-recover/journal "
      .. "is there): its configs are prepare's, not the cluster's; run `js-recover undo` on it first "
      .. "(or restore from an unprepared copy)"
  end
  local m, merr = model.scan(st)
  if not m then return nil, merr end
  local originals = {}
  for _, s in ipairs(m.streams) do
    if s.config then originals[s.path] = copy(s.config) end
    for _, c in ipairs(s.consumers or {}) do
      if c.config then originals[c.path] = copy(c.config) end
    end
  end
  local plan = prepare.plan(m, policy, opts)
  local r = { model = m, plan = plan, streams = {}, problems = {} }
  for _, p in ipairs(plan.problems) do r.problems[#r.problems + 1] = p end
  for _, s in ipairs(m.streams) do
    if s.encrypted and not jsr.has_keys() then
      r.problems[#r.problems + 1] = { path = s.path, message = s.path .. ": an encrypted stream: "
        .. "its snapshot is sent decrypted, which needs the server's key (--key-file or JSR_KEY)" }
    end
  end
  for _, e in ipairs(plan.streams) do
    e.original_config = originals[e.path]
    for _, c in ipairs(e.consumers) do c.original_config = originals[c.path] end
    r.streams[#r.streams + 1] = e
  end
  return r
end

-- Hooks of export and restore (the others are prepare's, jsr/prepare.lua):
-- restore_config(stream, cfg) edits the config the target gets (the
-- original, with --replicas and --no-placement applied).
M.hooks = { restore_config = function(stream, cfg) end }

-- split(policy) -> prepare's hooks, export/restore's hooks
function M.split(policy)
  local own, p = require("jsr.policy").split(M.hooks, policy)
  return p, own
end

-- configure(r, own, opts): each entry's .target_config, the stream config
-- a restore request carries: the original without meta.inf's "Created"
-- (not a StreamConfig field), num_replicas from opts.replicas, placement
-- dropped with opts.no_placement, then own.restore_config.  A consumer
-- with more replicas than the stream gets 0 (as the stream) in its
-- meta.inf (.meta_override), which the server otherwise refuses (10126).
-- The store's config of a stream as a StreamConfig: without "Created".
function M.stream_config_of(e)
  local cfg = copy(e.original_config)
  cfg.Created = nil
  return cfg
end

function M.configure(r, own, opts)
  for _, e in ipairs(r.streams) do
    local cfg = M.stream_config_of(e)
    if opts.replicas then cfg.num_replicas = opts.replicas end
    if opts.no_placement then cfg.placement = nil end
    own.restore_config({ account = e.account, name = e.name, path = e.path }, cfg)
    e.target_config = cfg
    local n = math.type(cfg.num_replicas) == "integer" and cfg.num_replicas or 1
    for _, c in ipairs(e.consumers) do
      local cc = c.original_config
      c.meta_override = nil
      if cc and math.type(cc.num_replicas) == "integer" and cc.num_replicas > n then
        local edited = copy(cc)
        edited.num_replicas = 0
        c.meta_override = assert(json.encode(edited))
        c.meta_sum = jsr.metasum(e.name .. "/" .. base(c.path), c.meta_override)
      end
    end
  end
end

local function file_size(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local n = f:seek("end")
  f:close()
  return n
end

-- Is the block at path compressed?  An encrypted one (keys) says so once
-- its first bytes are decrypted.
local function compressed(path, keys)
  if not keys then return jsr.block_compressed(path) end
  local f = assert(io.open(path, "rb"))
  local head = f:read(4) or ""
  f:close()
  local plain = assert(jsr.block_crypt(head, keys))
  return #plain == 4 and plain:sub(1, 3) == "cmp" and plain:byte(4) ~= 0
end

local function block_index(name)
  return tonumber(name:match("^(%d+)%.%a+$")) or math.huge
end

-- files(r, entry) -> { {name=, path=|make=, [block=, ext=], [consumer=]}, ... }
-- name: the path inside the snapshot; path: a store file streamed as it
-- is; make(): its bytes, computed only when written (a block with records
-- marked deleted, a decoded compressed block, salvage's bytes).
function M.files(r, entry)
  -- several survivors (jsr/survivors.lua): the stream comes from its
  -- chosen copy's plan, a consumer maybe from another survivor's
  r = entry.source or r
  local plan = r.plan
  local dir = entry.path
  local over, drop = {}, {}
  for _, w in ipairs(plan.salvage_writes or {}) do
    local data = w.data
    over[w.path] = function() return data end
  end
  for _, c in ipairs(entry.consumers) do
    for _, w in ipairs(c.source and c.source ~= r and c.source.plan.salvage_writes or {}) do
      local data = w.data
      if w.path == layout.consumer_state(c.path) then over[w.path] = function() return data end end
    end
  end
  for _, p in ipairs(plan.salvage_removals or {}) do drop[p] = true end
  local decoded = false
  local empty_last = {}
  for _, b in ipairs(plan.expired) do
    if b.stream == entry then
      if b.index_db then drop[b.index_db] = true end
      if b.merged then
        -- marked in the bytes salvage writes
      elseif b.whole and not b.last then
        drop[b.path] = true
        for _, f in ipairs(b.index_files) do drop[f] = true end
      elseif b.whole and not b.encrypted and not b.v210 then
        over[b.path] = function() return "" end
        empty_last[b.path] = b.last_seq
        local idx = layout.block_file(b.path, layout.IDX_EXT)
        local text = removal.empty_index(b.last_seq, b.last_ts)
        over[idx] = function() return text end
        for _, f in ipairs(b.index_files) do if f ~= idx then drop[f] = true end end
      else
        over[b.path] = function() return assert(removal.marked(b)) end
        for _, f in ipairs(b.index_files) do drop[f] = true end
      end
    end
  end
  local out = {}
  -- extra: what the name says, for the readers of the list (block = N and
  -- ext for a file under msgs/, consumer = the directory's name for o.dat)
  local function add(name, path, keys, extra)
    if drop[path] then return end
    local f
    if over[path] then
      f = { name = name, make = over[path], store_path = path, last_seq = empty_last[path] }
      over[path] = nil
    elseif jsr.lstat(path) == "file" then
      f = { name = name, path = path, keys = keys }
    end
    if f then
      for k, v in pairs(extra or {}) do f[k] = v end
      out[#out + 1] = f
    end
  end
  -- An encrypted stream goes in plaintext (the target has its own key, or
  -- none): meta files and o.dat opened, their sums computed again over the
  -- plaintext, blocks decrypted as they stream (keys), a 2.9 block's
  -- index opened, the key files, 1.fss and index.db left out (the target
  -- rebuilds them from the blocks).
  local enc = jsr.lstat(layout.meta_key(dir)) ~= nil
  local function meta_of(name, mdir, sumkey, context)
    local text
    local function plain()
      text = text or assert(sealed.meta_plain(mdir, entry.account, context))
      return text
    end
    out[#out + 1] = { name = layout.meta_inf(name), make = plain }
    out[#out + 1] = { name = layout.meta_sum(name), make = function() return jsr.metasum(sumkey, plain()) end }
  end
  if enc then
    meta_of("", dir, entry.name, entry.name)
    drop[layout.index_db(dir)] = true
  else
    add(layout.META_INF, layout.meta_inf(dir))
    add(layout.META_SUM, layout.meta_sum(dir))
  end
  local msgs = layout.msgs_dir(dir)
  local names = jsr.listdir(msgs) or {}
  -- blocks salvage creates are not on disk yet
  for p in pairs(over) do
    local n = p:match("^" .. msgs:gsub("%p", "%%%0") .. "/([^/]+)$")
    if n then names[#names + 1] = n end
  end
  table.sort(names, function(a, b)
    local ia, ib = block_index(a), block_index(b)
    if ia ~= ib then return ia < ib end
    return a < b
  end)
  local seen = {}
  for _, n in ipairs(names) do
    local p = msgs .. "/" .. n
    local ext = n:match("%.(%w+)$")
    if not seen[n] and ext ~= layout.KEY_EXT and not (enc and (ext == layout.IDX_EXT or ext == layout.FSS_EXT)) then
      seen[n] = true
      local bi = layout.block_index(n)
      local keyfile = bi and enc and layout.block(dir, bi, layout.KEY_EXT)
      local keys = keyfile and jsr.lstat(keyfile) and
        { keyfile = keyfile, account = entry.account, context = entry.name .. ":" .. bi }
      -- a compressed block goes decoded: the restoring server's own
      -- config decides its compression, and index.db then goes too
      if bi and not over[p] and not drop[p] and jsr.lstat(p) == "file" and compressed(p, keys) then
        local b = { path = p, offsets = {}, key = entry.name .. "-" .. bi, keys = keys or nil }
        over[p] = function() return assert(removal.marked(b)) end
        decoded = true
      end
      add(layout.MSGS_DIR .. "/" .. n, p, keys or nil, { block = layout.block_index(n, ext), ext = ext })
      -- a 2.9 block's sealed index goes opened, as a plaintext store
      -- keeps it: its delete map and, for an emptied block, the stream's
      -- last sequence
      local idx = bi and keys and layout.block(dir, bi, layout.IDX_EXT)
      if idx and not drop[p] and not drop[idx] and jsr.lstat(idx) == "file" then
        out[#out + 1] = { name = layout.block("", bi, layout.IDX_EXT), sealed = idx, make = function()
          return assert(jsr.block_index_open(idx, keys)) end, block = bi, ext = layout.IDX_EXT }
      end
    end
  end
  if decoded then
    for i = #out, 1, -1 do if out[i].name == layout.index_db("") then table.remove(out, i) end end
  end
  for _, c in ipairs(entry.consumers) do
    local cn = base(c.path)
    local rel = layout.consumer_dir("", cn)
    if c.meta_override then
      local text, sum = c.meta_override, c.meta_sum
      out[#out + 1] = { name = layout.meta_inf(rel), make = function() return text end }
      out[#out + 1] = { name = layout.meta_sum(rel), make = function() return sum end }
    elseif enc then
      meta_of(rel, c.path, entry.name .. "/" .. cn, entry.name .. "." .. cn)
    else
      add(layout.meta_inf(rel), layout.meta_inf(c.path))
      add(layout.meta_sum(rel), layout.meta_sum(c.path))
    end
    local odat = layout.consumer_state(c.path)
    if enc and not over[odat] and jsr.lstat(odat) == "file" then
      over[odat] = function() return assert(sealed.odat(entry, c)) end
    end
    add(layout.consumer_state(rel), odat, nil, { consumer = cn })
  end
  return out
end

-- write(r, entry, sink [, progress]) -> tar_bytes
-- Streams the snapshot (tar in S2 framing) into sink(bytes), piece by
-- piece; progress(bytes_of_store_read) after each piece.
function M.write(r, entry, sink, progress)
  local w = jsr.snapshot_writer()
  sink(w:take())
  for _, f in ipairs(M.files(r, entry)) do
    if f.make then
      local data = f.make()
      w:file(f.name, #data)
      for i = 1, #data, M.PIECE do
        w:write(data:sub(i, i + M.PIECE - 1))
        sink(w:take())
      end
      if progress then progress(#data) end
    else
      local fh = assert(io.open(f.path, "rb"))
      local size = assert(file_size(f.path))
      w:file(f.name, size)
      local left = size
      local keys = f.keys and { keyfile = f.keys.keyfile, account = f.keys.account, context = f.keys.context }
      while left > 0 do
        local piece = fh:read(math.min(M.PIECE, left))
        if not piece then
          fh:close()
          error(("%s: ended after %d of %d bytes while it was read"):format(f.path, size - left, size), 0)
        end
        -- an encrypted block decrypted piece by piece, at its offset
        if keys then
          keys.offset = size - left
          piece = assert(jsr.block_crypt(piece, keys))
        end
        w:write(piece)
        left = left - #piece
        sink(w:take())
        if progress then progress(#piece) end
      end
      fh:close()
    end
  end
  w:finish()
  sink(w:take())
  return w:tar_bytes()
end

-- Records of a block held in memory (docs/FORMAT.md "Message block
-- records", "Delete tombstones"): bit 63 of the sequence marks a deleted
-- record, bit 62 a 2.10+ tombstone (not a message; it deletes the
-- sequence it names, wherever that is).  Returns what scan_block's stats
-- hold that state() uses; skip: sequences to count as deleted.
local EBIT, TBIT = 1 << 63, 1 << 62
local function scan_bytes(data, skip, each)
  local st = { live = 0, live_bytes = 0, first_seq = 0, first_ts = 0, last_seq = 0, last_ts = 0,
               last_record_seq = 0, tombstone_seqs = {} }
  local o, n = 1, #data
  while o + 22 <= n do
    local rl, seq, ts = string.unpack("<I4I8i8", data, o)
    local len = rl & 0x7fffffff
    if len < 30 or o + len - 1 > n then break end
    if seq & TBIT ~= 0 then
      st.tombstone_seqs[#st.tombstone_seqs + 1] = seq & ~(EBIT | TBIT)
    else
      local plain = seq & ~EBIT
      if plain > st.last_record_seq then st.last_record_seq = plain end
      if seq & EBIT == 0 and not (skip and skip[plain]) then
        st.live, st.live_bytes = st.live + 1, st.live_bytes + len
        if each then
          local slen = string.unpack("<I2", data, o + 20)
          each(seq, ts, data:sub(o + 22, o + 21 + slen), len)
        end
        if st.first_seq == 0 then st.first_seq, st.first_ts = seq, ts end
        st.last_seq, st.last_ts = seq, ts
      end
    end
    o = o + len
  end
  return st
end

local function rfc3339(ns)
  if not ns or ns == 0 then return "0001-01-01T00:00:00Z" end
  local sec, frac = ns // 1000000000, ns % 1000000000
  local t = os.date("!%Y-%m-%dT%H:%M:%S", sec)
  if frac == 0 then return t .. "Z" end
  return t .. ("." .. ("%09d"):format(frac)):gsub("0+$", "") .. "Z"
end
M.rfc3339 = rfc3339

-- state(r, entry) -> {messages, bytes, first_seq, first_ns, last_seq,
-- last_ns, consumer_count} as the snapshot's blocks hold them (the
-- server's StreamState in backup.json and the restore request): live
-- records, less those a 2.9 index deletes, those a 2.10+ msgs/index.db
-- deletes when the snapshot carries it unchanged and the server would
-- trust it (jsr/blocks.lua), and those a 2.10+ tombstone names in any
-- block.
function M.state(r, entry)
  local files = M.files(r, entry)
  local blocks, idx_of, db, changed = {}, {}, nil, false
  for _, f in ipairs(files) do
    if f.ext == layout.BLK_EXT and f.block then
      blocks[#blocks + 1] = f
      if f.make then changed = true end
    end
    if f.ext == layout.IDX_EXT and f.block then idx_of[f.block] = f end
    if f.name == layout.index_db("") and f.path then db = true end
  end
  if db and not changed then
    local t = require("jsr.blocks").index_db({ name = entry.name, path = entry.path, account = entry.account },
      jsr.block_files(entry.path) or {})
    db = t.trusted and t.db or nil
  else
    db = nil
  end
  local function scan(k, skip, list, each)
    local f = blocks[k]
    local idx = idx_of[f.block]
    if f.make then
      local set
      for _, t in ipairs(list or {}) do set = set or {}; set[t] = true end
      local st = scan_bytes(f.make(), set, each)
      if f.last_seq and f.last_seq > st.last_record_seq then st.last_record_seq = f.last_seq end
      return st
    end
    -- an encrypted block's index is read sealed, with the block's keys
    local ipath = idx and (idx.path or (f.keys and idx.sealed))
    if file_size(f.path) == 0 then
      -- an emptied block: its index keeps the last sequence
      local last = ipath and jsr.block_indexed_last(f.path, ipath, f.keys)
      return { live = 0, live_bytes = 0, first_seq = 0, last_seq = 0, last_record_seq = last or 0,
               tombstone_seqs = {} }
    end
    local k3 = f.keys or {}
    return assert(jsr.scan_block(f.path, entry.name .. "-" .. f.block,
      { keyfile = k3.keyfile, account = k3.account, context = k3.context,
        index = not db and ipath or nil, indexdb = db, block_index = db and f.block or nil,
        last = k == #blocks, deleted = skip and list or nil,
        records = each and function(rec)
          if not rec.deleted then
            each(rec.seq, rec.ts, rec.subject, 22 + #rec.subject + (rec.headers and #rec.headers + 4 or 0) + #rec.payload + 8)
          end
          return true
        end or nil }))
  end
  local per, tombs = {}, {}
  for k = 1, #blocks do
    per[k] = scan(k)
    for _, t in ipairs(per[k].tombstone_seqs or {}) do tombs[#tombs + 1] = t end
  end
  if #tombs > 0 then
    table.sort(tombs)
    for k = 1, #blocks do
      local st, mine = per[k], {}
      for _, t in ipairs(tombs) do
        if st.live > 0 and t >= st.first_seq and t <= st.last_seq then mine[#mine + 1] = t end
      end
      if #mine > 0 then per[k] = scan(k, true, mine) end
    end
  end
  local s = { messages = 0, bytes = 0, first_seq = 0, first_ns = 0, last_seq = 0, last_ns = 0 }
  for k = 1, #blocks do
    local st = per[k]
    if st.live > 0 then
      if s.first_seq == 0 then s.first_seq, s.first_ns = st.first_seq, st.first_ts end
      s.last_ns = st.last_ts
    end
    s.messages, s.bytes = s.messages + st.live, s.bytes + (st.live_bytes or 0)
    if (st.last_record_seq or 0) > s.last_seq then s.last_seq = st.last_record_seq end
  end
  -- The server enforces max_msgs_per_subject when it loads a stream
  -- (measured on 2.15.3: a KV bucket of history 1 whose survivor still held
  -- 4 older revisions was served without them): read the records again
  -- and keep the newest of each subject.  One entry per live record: a
  -- stream with a per-subject limit is a KV bucket or alike, not a bulk log.
  local cfg = entry.target_config or entry.original_config or {}
  local limit = math.tointeger(cfg.max_msgs_per_subject)
  limit = limit and limit > 0 and limit or nil
  -- and max_age: what is older than that when the target loads it goes at
  -- once (filestore.go expireMsgsOnRecover: the leading messages stamped
  -- before now - max_age, up to the first younger one), counted here
  -- against the clock now and reported (s.expired), so the check expects it
  local max_age = math.tointeger(cfg.max_age)
  local cutoff = max_age and max_age > 0 and (jsr.now_ns() - max_age) or nil
  if cutoff and s.messages > 0 and s.first_ns < cutoff and not limit then
    local n, bytes, first, last
    local walking = true
    for k = 1, #blocks do
      scan(k, #tombs > 0, tombs, function(seq, ts, _, len)
        walking = walking and ts < cutoff
        if walking then
          n, bytes = (n or 0) + 1, (bytes or 0) + len
        else
          if not first or seq < first[1] then first = { seq, ts } end
          if not last or seq > last[1] then last = { seq, ts } end
        end
      end)
    end
    if n then
      s.expired = n
      s.messages, s.bytes = s.messages - n, s.bytes - bytes
      if first then s.first_seq, s.first_ns, s.last_ns = first[1], first[2], last[2] end
    end
  end
  if limit and s.messages > 0 then
    local recs = {}
    local walking = cutoff ~= nil
    for k = 1, #blocks do
      scan(k, #tombs > 0, tombs, function(seq, ts, subject, len)
        walking = walking and ts < cutoff
        if walking then
          s.expired = (s.expired or 0) + 1
        else
          recs[#recs + 1] = { seq, ts, subject, len }
        end
      end)
    end
    table.sort(recs, function(x, y) return x[1] < y[1] end)
    local count, kept = {}, {}
    for i = #recs, 1, -1 do
      local subj = recs[i][3]
      count[subj] = (count[subj] or 0) + 1
      if count[subj] <= limit then kept[#kept + 1] = recs[i] end
    end
    s.messages, s.bytes = #kept, 0
    for _, x in ipairs(kept) do s.bytes = s.bytes + x[4] end
    if #kept > 0 then
      s.first_seq, s.first_ns = kept[#kept][1], kept[#kept][2]
      s.last_ns = kept[1][2]
    end
  end
  -- as the server reports an empty stream: after its last sequence, or
  -- 0 when it never had a message
  if s.messages == 0 then s.first_seq = s.last_seq > 0 and s.last_seq + 1 or 0 end
  s.consumer_count = #entry.consumers
  return s
end

-- The state as Go's encoding/json writes a StreamState (natscli's
-- backup.json and the restore request carry it).
function M.state_json(s)
  local o = json.object()
  o.messages, o.bytes, o.first_seq = s.messages, s.bytes, s.first_seq
  o.first_ts, o.last_seq, o.last_ts = rfc3339(s.first_ns), s.last_seq, rfc3339(s.last_ns)
  o.consumer_count = s.consumer_count
  return o
end

return M
