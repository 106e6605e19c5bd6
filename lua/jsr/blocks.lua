-- A stream's message blocks as a whole: scan them in order, with the
-- stream's own hash keys and index files, and sum up what they hold.
-- verify.lua and scripts such as dump.lua are built on this.
local jsr = require("jsr")
local layout = jsr.layout

local M = {}

-- The kinds of problem that are not corruption: a crash's partial last
-- write (the server drops it) and an index that lags its block (the server
-- rebuilds it from the records).
M.benign = { torn_tail = true, index = true }

local scan_one, finish

-- index_db(stream, files) -> {path, status, message, version, db, info,
-- trusted, why}
-- The stream's msgs/index.db (2.10+), tested as the server tests it before
-- it trusts it (docs/FORMAT.md "Stream state file"): its checksum, its
-- totals against its blocks, that the block it names as the newest still
-- is and ends with the record hash it remembers, and that every block it
-- counts is there.  Otherwise the server deletes or ignores it and
-- rebuilds from the blocks.  status: "ok", "absent", "checksum",
-- "malformed", "sealed" (encrypted, no key), "newer", "io".
function M.index_db(stream, files)
  local path = layout.index_db(stream.path)
  local keyfile = layout.meta_key(stream.path)
  local ropts = jsr.lstat(keyfile) and { keyfile = keyfile, account = stream.account } or nil
  local db, status, msg, version = jsr.indexdb_read(path, stream.name, ropts)
  local r = { path = path, status = db and "ok" or status, message = msg, version = version }
  if not db then return r end
  r.db, r.info = db, db:info()
  local newest = files[#files]
  local have = {}
  for _, b in ipairs(files) do have[b.index] = true end
  if not r.info.consistent then
    r.why = "its totals differ from the sum of its blocks"
  elseif not newest or newest.index ~= r.info.last_block then
    r.why = ("it was written when block %d was the newest, and the newest is %s"):format(
      r.info.last_block, newest and tostring(newest.index) or "none")
  elseif not db:matches(newest.path, newest.key and { keyfile = newest.key, account = stream.account,
      context = stream.name .. ":" .. newest.index } or nil) then
    r.why = ("block %d does not end with the record it remembers (written to after it)"):format(newest.index)
  else
    for i, b in ipairs(db:blocks()) do
      if not have[b.index] and (b.msgs > 0 or i == r.info.blocks) then
        r.why = ("it counts block %d, which is gone"):format(b.index)
        break
      end
    end
  end
  r.trusted = r.why == nil
  return r
end

-- What index.db's state means for a scan, as a problem (or nil).
local function index_db_problem(r)
  if r.status == "absent" or r.trusted then return nil end
  if r.status == "newer" then
    return { kind = "newer", block = r.path, corrupt = false, message = r.message ..
      ": written by a nats-server newer than js-recover knows; its deletes are not applied" }
  end
  if r.status == "sealed" then
    return { kind = "unchecked", block = r.path, corrupt = false, message = r.message ..
      "; without it deletes it alone records are counted as live" }
  end
  if r.status == "ok" then
    return { kind = "index", block = r.path, corrupt = false, message = "msgs/index.db is not trusted: " ..
      r.why .. "; the server rebuilds the stream from its blocks (and their tombstones)" }
  end
  return { kind = "index", block = r.path, corrupt = false, message = r.message }
end

local function new_summary(stream)
  return {
    account = stream.account, stream = stream.name, path = stream.path,
    blocks = 0, records = 0, live = 0, deleted = 0, bytes = 0, older = 0,
    first_seq = 0, last_seq = 0, first_ts = 0, last_ts = 0,
    problems = {}, encrypted_blocks = 0, compressed_blocks = 0, unchecked_blocks = 0, tombstones = 0,
  }
end

-- scan(stream, opts) -> summary
-- stream: {name=, path=, account=}; opts.records: function(rec, block) per
-- record (return false to stop); opts.progress: function(bytes_done) after
-- each block; opts.older_than: summary.older counts the live messages
-- stamped before it (ns since the epoch).
-- opts.tombstones (with opts.records): records a later tombstone deletes
-- come deleted (costs a first pass over the blocks when index.db is not
-- trusted).  opts.index_db = false: the blocks alone, without msgs/index.db's delete
-- maps or the tombstones of later blocks (what removal needs: it removes
-- index.db, so what only index.db deletes is live again to the server).
function M.scan(stream, opts)
  opts = opts or {}
  local s = new_summary(stream)
  local files, err = jsr.block_files(stream.path)
  if not files then
    if jsr.lstat(layout.msgs_dir(stream.path)) == nil then return s end -- no messages yet
    s.problems[#s.problems + 1] = { kind = "io", message = err, corrupt = true }
    return s
  end
  local ctx = { per = {}, tombs = {} }
  if opts.index_db ~= false then
    local r = M.index_db(stream, files)
    s.index_db = { status = r.status, version = r.info and r.info.version or r.version, trusted = r.trusted or false,
      last_seq = r.info and r.info.last_seq, msgs = r.info and r.info.msgs }
    if r.status == "newer" then s.newer = true end
    local p = index_db_problem(r)
    if p then s.problems[#s.problems + 1] = p end
    if r.trusted then ctx.db = r.db end
    -- opts.tombstones: a caller that sees each record sees the tombstoned
    -- ones deleted already: the tombstones are collected first, a second
    -- read of every block (dump.lua; not for scans meant to stop early)
    if not r.trusted and opts.records and opts.tombstones
        and (r.status ~= "absent" or (stream.config or {}).compression ~= nil) then
      local pre = { per = {}, tombs = {} }
      local s0 = new_summary(stream)
      for i = 1, #files do scan_one(s0, stream, files, i, {}, 0, pre) end
      if #pre.tombs > 0 then ctx.deleted = pre.tombs end
    end
  end
  local prev, stop = 0, nil
  for i = 1, #files do
    prev, stop = scan_one(s, stream, files, i, opts, prev, ctx)
    if stop then break end
  end
  -- Without a trusted index.db the server rebuilds from the blocks, then
  -- deletes every message a tombstone names, wherever it is: count those
  -- as deleted (read again: only the blocks that hold one).
  if not stop and not ctx.db and opts.index_db ~= false and #ctx.tombs > 0 and not opts.records
      and not opts.older_than then
    M.apply_tombstones(s, stream, files, ctx)
  end
  return finish(s)
end

function M.apply_tombstones(s, stream, files, ctx)
  table.sort(ctx.tombs)
  local tombs = {}
  for _, t in ipairs(ctx.tombs) do
    if t ~= tombs[#tombs] then tombs[#tombs + 1] = t end
  end
  for i, st in pairs(ctx.per) do
    local mine = {}
    for _, t in ipairs(tombs) do
      if st.first_seq > 0 and t >= st.first_seq and t <= st.last_seq then mine[#mine + 1] = t end
    end
    -- a block whose live records run without a hole holds every sequence
    -- of its range: each tombstone inside (not at an end, which would move
    -- its first or last time) is one live message less, no read needed
    local inner = #mine > 0 and mine[1] ~= st.first_seq and mine[#mine] ~= st.last_seq
    if inner and st.live == st.last_seq - st.first_seq + 1 then
      s.live, s.deleted = s.live - #mine, s.deleted + #mine
      ctx.per[i] = { live = st.live - #mine, first_seq = st.first_seq, first_ts = st.first_ts,
        last_seq = st.last_seq, last_ts = st.last_ts }
    elseif #mine > 0 then
      local b = files[i]
      local st2 = jsr.scan_block(b.path, stream.name .. "-" .. b.index,
        { last = i == #files, deleted = mine, keyfile = b.key, account = stream.account,
          context = stream.name .. ":" .. b.index })
      if st2 then
        s.live = s.live + st2.live - st.live
        s.deleted = s.deleted + st2.deleted - st.deleted
        ctx.per[i] = st2
      end
    end
  end
  -- first and last live message again, from the blocks' own
  s.first_seq, s.first_ts, s.last_ts = 0, 0, 0
  for i = 1, #files do
    local st = ctx.per[i]
    if st and st.live > 0 then
      if s.first_seq == 0 then s.first_seq, s.first_ts = st.first_seq, st.first_ts end
      s.last_ts = st.last_ts
    end
  end
end

-- tail(stream) -> summary of the last blocks only, from the newest back to
-- the first that holds a record: enough for the stream's last sequence, at
-- a cost that does not grow with the stream (salvage needs no more).
-- summary.files: all of the stream's block files; summary.indexed: blocks
-- whose index file was trusted instead; summary.index_db_last: the last
-- sequence is msgs/index.db's (trusted, or beyond what the blocks hold).  An unreadable or unchecked block
-- stops it: what came before cannot stand in for it.
function M.tail(stream)
  local s = new_summary(stream)
  local files, err = jsr.block_files(stream.path)
  if not files then
    if jsr.lstat(layout.msgs_dir(stream.path)) ~= nil then
      s.problems[#s.problems + 1] = { kind = "io", message = err, corrupt = true }
    end
    return finish(s)
  end
  s.files = files
  s.indexed = 0
  -- 2.10+: a trusted index.db holds the last sequence without a block read
  -- (an emptied stream's too); one the server would not trust still says
  -- where the stream had got to when the blocks lost their end
  local r = M.index_db(stream, files)
  if r.trusted then
    s.last_seq, s.last_ts, s.indexed, s.index_db_last = r.info.last_seq, r.info.last_ts, 1, true
    return finish(s)
  end
  for i = #files, 1, -1 do
    local b = files[i]
    -- an index file that describes its block as it is (the server's own
    -- test) gives the last sequence without reading the block, which may
    -- be 8 MiB
    local last, _, _, last_ts
    if b.idx and (not b.key or jsr.has_keys()) then
      last, _, _, last_ts = jsr.block_indexed_last(b.path, b.idx, b.key and { keyfile = b.key,
        account = stream.account, context = stream.name .. ":" .. b.index } or nil)
    end
    if last then
      s.blocks, s.indexed, s.last_seq, s.last_ts = s.blocks + 1, s.indexed + 1, last, last_ts
      break
    end
    scan_one(s, stream, files, i, {}, 0)
    local bad = false
    for _, p in ipairs(s.problems) do bad = bad or p.corrupt end
    if s.last_seq > 0 or s.unchecked_blocks > 0 or bad then break end
  end
  if r.info and r.info.last_seq > s.last_seq then
    s.last_seq, s.last_ts, s.index_db_last = r.info.last_seq, r.info.last_ts, true
  end
  return finish(s)
end

-- Adds block i to summary s; prev: the last live sequence before it.
-- Returns the last live sequence after it, and "stop" when opts.records
-- stopped the scan.
function scan_one(s, stream, files, i, opts, prev, ctx)
  local b = files[i]
  s.blocks = s.blocks + 1
  s.bytes = s.bytes + (b.size or 0)
  local skip
  if b.key then s.encrypted_blocks = s.encrypted_blocks + 1 end
  if b.key and not jsr.has_keys() then
    skip = "encrypted (" .. b.key .. " present); give the server's key to check it"
  end
  if skip then
    s.unchecked_blocks = s.unchecked_blocks + 1
    s.problems[#s.problems + 1] = { kind = "unchecked", block = b.path, message = skip, corrupt = false }
  else
    local cb
    if opts.records then cb = function(rec) return opts.records(rec, b) end end
    local db = ctx and ctx.db
    local st, serr = jsr.scan_block(b.path, stream.name .. "-" .. b.index,
      { index = not db and b.idx or nil, indexdb = db, block_index = db and b.index or nil,
        deleted = ctx and ctx.deleted,
        last = i == #files, prev_seq = prev, records = cb, older_than = opts.older_than,
        keyfile = b.key, account = stream.account, context = stream.name .. ":" .. b.index })
    if not st then
      s.problems[#s.problems + 1] = { kind = "io", block = b.path, message = serr, corrupt = true }
    else
      prev = st.prev_seq
      if ctx then
        ctx.per[i] = st
        for _, t in ipairs(st.tombstone_seqs) do ctx.tombs[#ctx.tombs + 1] = t end
      end
      if st.compressed then s.compressed_blocks = s.compressed_blocks + 1 end
      s.tombstones = s.tombstones + st.tombstones
      s.records = s.records + st.records
      s.live = s.live + st.live
      s.deleted = s.deleted + st.deleted
      s.older = s.older + (st.older or 0)
      if st.live > 0 then
        if s.first_seq == 0 then s.first_seq, s.first_ts = st.first_seq, st.first_ts end
        s.last_ts = st.last_ts
      end
      -- the stream's last sequence counts deleted records too, as the server's does
      if st.last_record_seq > s.last_seq then s.last_seq = st.last_record_seq end
      for _, p in ipairs(st.problems) do
        p.block = b.path
        -- 2.10+ take missing sequences for deleted (compaction leaves gaps)
        if p.kind == "gap" and db then p.kind = "index" end
        p.corrupt = not M.benign[p.kind]
        s.problems[#s.problems + 1] = p
      end
      if st.stopped then return prev, "stop" end
    end
  end
  if opts.progress then opts.progress(b.size or 0) end
  return prev
end

function finish(s)
  if s.live == 0 and s.last_seq > 0 then s.first_seq = s.last_seq + 1 end
  -- the server's num_deleted: the sequences between first and last that
  -- hold no message
  s.num_deleted = s.live > 0 and s.last_seq - s.first_seq + 1 - s.live or 0
  s.corrupt = false
  for _, p in ipairs(s.problems) do if p.corrupt then s.corrupt = true end end
  return s
end

-- Total size of a stream's block files (for progress before scanning).
function M.size(stream)
  local files = jsr.block_files(stream.path)
  local n = 0
  for _, b in ipairs(files or {}) do n = n + (b.size or 0) end
  return n
end

return M
