-- A stream's message blocks as a whole: scan them in order, with the
-- stream's own hash keys and index files, and sum up what they hold.
-- verify.lua and scripts such as dump.lua are built on this.
local jsr = require "jsr"

local M = {}

-- The kinds of problem that are not corruption: a crash's partial last
-- write (the server drops it) and an index that lags its block (the server
-- rebuilds it from the records).
M.benign = { torn_tail = true, index = true }

local scan_one, finish

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
function M.scan(stream, opts)
  opts = opts or {}
  local s = new_summary(stream)
  local files, err = jsr.block_files(stream.path)
  if not files then
    if jsr.lstat(stream.path .. "/msgs") == nil then return s end -- no messages yet
    s.problems[#s.problems + 1] = { kind = "io", message = err, corrupt = true }
    return s
  end
  local prev, stop = 0, nil
  for i = 1, #files do
    prev, stop = scan_one(s, stream, files, i, opts, prev)
    if stop then break end
  end
  return finish(s)
end

-- tail(stream) -> summary of the last blocks only, from the newest back to
-- the first that holds a record: enough for the stream's last sequence, at
-- a cost that does not grow with the stream (salvage needs no more).
-- summary.files: all of the stream's block files; summary.indexed: blocks
-- whose index file was trusted instead.  An unreadable or unchecked block
-- stops it: what came before cannot stand in for it.
function M.tail(stream)
  local s = new_summary(stream)
  local files, err = jsr.block_files(stream.path)
  if not files then
    if jsr.lstat(stream.path .. "/msgs") ~= nil then
      s.problems[#s.problems + 1] = { kind = "io", message = err, corrupt = true }
    end
    return finish(s)
  end
  s.files = files
  s.indexed = 0
  for i = #files, 1, -1 do
    local b = files[i]
    -- an index file that describes its block as it is (the server's own
    -- test) gives the last sequence without reading the block, which may
    -- be 8 MiB
    local last, _, _, last_ts
    if b.idx and not b.key then last, _, _, last_ts = jsr.block_indexed_last(b.path, b.idx) end
    if last then
      s.blocks, s.indexed, s.last_seq, s.last_ts = s.blocks + 1, s.indexed + 1, last, last_ts
      break
    end
    scan_one(s, stream, files, i, {}, 0)
    local bad = false
    for _, p in ipairs(s.problems) do bad = bad or p.corrupt end
    if s.last_seq > 0 or s.unchecked_blocks > 0 or bad then break end
  end
  return finish(s)
end

-- Adds block i to summary s; prev: the last live sequence before it.
-- Returns the last live sequence after it, and "stop" when opts.records
-- stopped the scan.
function scan_one(s, stream, files, i, opts, prev)
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
    local st, serr = jsr.scan_block(b.path, stream.name .. "-" .. b.index,
      { index = b.idx, last = i == #files, prev_seq = prev, records = cb, older_than = opts.older_than,
        keyfile = b.key, account = stream.account, context = stream.name .. ":" .. b.index })
    if not st then
      s.problems[#s.problems + 1] = { kind = "io", block = b.path, message = serr, corrupt = true }
    else
      prev = st.prev_seq
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
