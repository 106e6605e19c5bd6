-- Removing messages from a stream's blocks in the form the server loads
-- (docs/FORMAT.md "Deleted records and empty blocks"): what the dead
-- cluster had removed but the survivor's disk still holds — messages past
-- max_age before the survivor stopped (jsr/age.lua), and deletes its
-- stream log holds that its lazily written index files lack
-- (jsr/salvage.lua).  Nothing is written here: prepare stages the changes
-- in its one journaled set, so undo takes them back with everything else.
local jsr = require "jsr"
local blocks = require "jsr.blocks"

local M = {}

-- collect(stream, want) -> {count=, blocks={...}} | nil, why
-- want(rec) -> "take" | "skip" | "stop" [, reason], for every live record
-- in order; block.reasons counts the records taken per reason.
-- Each block with something taken: {path, offsets, encrypted,
-- index_files, whole (every live record of it taken), last (the stream's
-- newest block), last_seq, last_ts (its last record's, deleted or not)}.
function M.collect(stream, want)
  -- 2.10+ check every record's hash when they rebuild a block, the deleted
  -- bit included (measured on 2.15.3: a marked record cut the block there),
  -- and keep msgs/index.db; they always write these two keys, 2.9 neither
  local cfg = stream.config or {}
  if jsr.lstat(stream.path .. "/msgs/index.db") or cfg.compression ~= nil or cfg.consumer_limits ~= nil then
    return nil, "a 2.10+ store: removing records from it is not supported yet"
  end
  local files = jsr.block_files(stream.path) or {}
  local newest = files[#files] and files[#files].path
  local out, by_path, live, stopped_in = { count = 0, blocks = {} }, {}, {}, nil
  local ends = {}
  local s = blocks.scan(stream, { records = function(rec, b)
    ends[b.path] = { rec.seq, rec.ts }
    if rec.deleted then return true end
    local w, why = want(rec)
    if w == "stop" then stopped_in = b.path; return false end
    live[b.path] = (live[b.path] or 0) + 1
    if w ~= "take" then return true end
    local e = by_path[b.path]
    if not e then
      e = { path = b.path, offsets = {}, encrypted = b.key ~= nil, index_files = {},
            last = b.path == newest, reasons = {} }
      -- the server rebuilds a block's index from its records when the
      -- index is gone; a stale one would hide the deletion
      for _, ext in ipairs { ".idx", ".fss" } do
        local f = b.path:gsub("%.blk$", ext)
        if jsr.lstat(f) then e.index_files[#e.index_files + 1] = f end
      end
      by_path[b.path] = e
      out.blocks[#out.blocks + 1] = e
    end
    e.offsets[#e.offsets + 1] = rec.offset
    why = why or "removed"
    e.reasons[why] = (e.reasons[why] or 0) + 1
    out.count = out.count + 1
    return true
  end })
  for _, p in ipairs(s.problems) do
    if p.kind == "unchecked" or p.kind == "io" then return nil, p.message end
  end
  for _, e in ipairs(out.blocks) do
    -- a block the scan stopped in was not read to its end
    e.whole = e.path ~= stopped_in and #e.offsets == live[e.path]
    e.last_seq, e.last_ts = ends[e.path][1], ends[e.path][2]
  end
  return out
end

local function uvarint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    out[#out + 1] = string.char(n ~= 0 and (b | 0x80) or b)
  until n == 0
  return table.concat(out)
end

-- A 2.9 index file (N.idx) for an empty block that ended at last_seq: no
-- messages, first = last + 1 (the shape 2.9.10 itself leaves when a stream
-- is emptied, and trusts for an empty block: recoverMsgBlock).
function M.empty_index(last_seq, last_ts)
  local zigzag = last_ts >= 0 and last_ts << 1 or ~(last_ts << 1)
  return "\22\1" .. uvarint(0) .. uvarint(0) .. uvarint(last_seq + 1) .. uvarint(0)
    .. uvarint(last_seq) .. uvarint(zigzag) .. uvarint(0) .. string.rep("\0", 8)
end

-- A record (jsr.block_record) marked deleted: bit 63 of its sequence (the
-- top byte of the u64 after the 4-byte length).
function M.deleted_record(rec)
  return rec:sub(1, 11) .. string.char(rec:byte(12) | 0x80) .. rec:sub(13)
end

-- Block bytes held in memory (a block salvage rewrites) with the records
-- at offsets marked deleted, as jsr.block_mark_deleted does on a file.
function M.mark_in(data, offsets)
  table.sort(offsets)
  local parts, pos = {}, 1
  for _, off in ipairs(offsets) do
    local at = off + 12
    parts[#parts + 1] = data:sub(pos, at - 1)
    parts[#parts + 1] = string.char(data:byte(at) | 0x80)
    pos = at + 1
  end
  parts[#parts + 1] = data:sub(pos)
  return table.concat(parts)
end

-- apply(changes, block, check, opts): stages one block's removal.  A whole
-- older block goes (the stream starts at the next); the newest block,
-- emptied, stays as an empty file with an index of no messages, which keeps
-- the stream's last sequence; otherwise the records are marked deleted and
-- the index files removed, so the server rebuilds them from the records.
function M.apply(c, b, check, opts)
  local purge = { purge = opts.purge }
  if b.whole and not b.last then
    check(c:rmtree(b.path, purge))
    for _, f in ipairs(b.index_files) do check(c:rmtree(f, purge)) end
  elseif b.whole and not b.encrypted then
    check(c:write_file(b.path, "", 416))
    local idx = b.path:gsub("%.blk$", ".idx")
    check(c:write_file(idx, M.empty_index(b.last_seq, b.last_ts), 416))
    for _, f in ipairs(b.index_files) do if f ~= idx then check(c:rmtree(f, purge)) end end
  else
    local data, err = jsr.block_mark_deleted(b.path, b.offsets, b.encrypted)
    check(data, err)
    check(c:write_file(b.path, data, 416))
    for _, f in ipairs(b.index_files) do check(c:rmtree(f, purge)) end
  end
end

return M
