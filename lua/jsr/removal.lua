-- Removing messages from a stream's blocks in the form the server loads
-- (docs/FORMAT.md "Deleted records and empty blocks"): what the dead
-- cluster had removed but the survivor's disk still holds — messages past
-- max_age before the survivor stopped (jsr/age.lua), and deletes its
-- stream log holds that its lazily written index files lack
-- (jsr/salvage.lua).  Nothing is written here: prepare stages the changes
-- in its one journaled set, so undo takes them back with everything else.
local jsr = require("jsr")
local layout = jsr.layout
local blocks = require("jsr.blocks")
local sealed = require("jsr.sealed")

local M = {}

-- collect(stream, want) -> {count=, blocks={...}} | nil, why
-- want(rec) -> "take" | "skip" | "stop" [, reason], for every live record
-- in order; block.reasons counts the records taken per reason.
-- Each block with something taken: {path, key (its hash key name),
-- offsets, mark (offsets and the records only its 2.9 index deletes: all
-- to mark deleted), encrypted, index_files, whole (every live record of it taken),
-- last (the stream's newest block), last_seq, last_ts (its last record's,
-- deleted or not), v210}; the first also index_db, the stream's 2.10+
-- state file, to remove (the server then rebuilds from the blocks).
function M.collect(stream, want)
  -- 2.10+ check every record's hash when they rebuild a block, the deleted
  -- bit included (measured on 2.15.3: a marked record not rehashed cut the
  -- block there), and trust msgs/index.db over the blocks; they always
  -- write these two keys in meta.inf, 2.9 neither
  local cfg = stream.config or {}
  local index_db = layout.index_db(stream.path)
  local v210 = jsr.lstat(index_db) ~= nil or cfg.compression ~= nil or cfg.consumer_limits ~= nil
  local files = jsr.block_files(stream.path) or {}
  local newest = files[#files] and files[#files].path
  local out, by_path, live, stopped_in = { count = 0, blocks = {} }, {}, {}, nil
  local ends, idx_deleted = {}, {}
  -- the blocks alone: index.db goes, so what only it deletes is live again
  local s = blocks.scan(stream, { index_db = false, records = function(rec, b)
    if stopped_in and stopped_in ~= b.path then return false end
    ends[b.path] = { rec.seq, rec.ts }
    if rec.deleted then
      -- a 2.9 block's index (N.idx) deletes records its block still holds
      -- live (its first sequence, its delete map): the index goes with
      -- the rewrite, so they are marked in the block too (measured:
      -- 2.9.10 served a work queue's first job again, acked and deleted
      -- in 1.idx only); one marked in its own bytes already needs nothing
      if b.idx and not v210 and not rec.marked then
        local d = idx_deleted[b.path] or {}
        idx_deleted[b.path] = d
        d[#d + 1] = rec.offset
      end
      return true
    end
    live[b.path] = (live[b.path] or 0) + 1
    -- the block it stopped in is read to its end, for its deleted records
    if stopped_in then return true end
    local w, why = want(rec)
    if w == "stop" then stopped_in = b.path; return true end
    if w ~= "take" then return true end
    local e = by_path[b.path]
    if not e then
      e = { path = b.path, key = stream.name .. "-" .. b.index, offsets = {}, encrypted = b.key ~= nil,
            keys = sealed.block_keys(stream, b), index_files = {}, last = b.path == newest, reasons = {},
            v210 = v210 }
      -- the server rebuilds a block's index from its records when the
      -- index is gone; a stale one would hide the deletion
      for _, ext in ipairs { layout.IDX_EXT, layout.FSS_EXT } do
        local f = layout.block_file(b.path, ext)
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
    -- what is marked: the records taken and those only its index deletes
    e.mark = e.offsets
    if idx_deleted[e.path] then
      e.mark = table.move(e.offsets, 1, #e.offsets, 1, {})
      table.move(idx_deleted[e.path], 1, #idx_deleted[e.path], #e.mark + 1, e.mark)
      table.sort(e.mark)
    end
  end
  if out.blocks[1] and v210 and jsr.lstat(index_db) then out.blocks[1].index_db = index_db end
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

-- A record (jsr.block_record, hashed under key) marked deleted: bit 63 of
-- its sequence, its hash computed again.
function M.deleted_record(rec, key)
  return assert(jsr.records_mark_deleted(rec, { 0 }, { key = key }))
end

-- marked(block) -> the block's bytes in plaintext (decrypted, decoded)
-- with its taken records marked deleted and rehashed (2.10+ check every
-- record's hash, the deleted bit included) | nil, message
function M.marked(b)
  local o = { key = b.key }
  if b.keys then
    o.keyfile, o.account, o.context = b.keys.keyfile, b.keys.account, b.keys.context
  end
  return jsr.block_mark_deleted(b.path, b.mark or b.offsets, o)
end

-- apply(changes, block, check, opts): stages one block's removal.  A whole
-- older block goes (the stream starts at the next); a 2.9 newest block,
-- emptied, stays as an empty file with an index of no messages, which keeps
-- the stream's last sequence; otherwise the records are marked deleted
-- (rehashed; an encrypted block decrypted and encrypted again) and the index files removed (2.10+: the
-- stream's index.db), so the server rebuilds them from the records, whose
-- deleted marks keep the last sequence.
function M.apply(c, b, check, opts)
  local purge = { purge = opts.purge }
  if b.index_db then check(c:move(b.index_db, purge)) end
  if b.merged then return end -- marked in the bytes salvage writes
  if b.whole and not b.last then
    check(c:move(b.path, purge))
    for _, f in ipairs(b.index_files) do check(c:move(f, purge)) end
  elseif b.whole and not b.encrypted and not b.v210 then
    check(c:replace(b.path, "", 416))
    local idx = layout.block_file(b.path, layout.IDX_EXT)
    check(c:replace(idx, M.empty_index(b.last_seq, b.last_ts), 416))
    for _, f in ipairs(b.index_files) do if f ~= idx then check(c:move(f, purge)) end end
  else
    local data, err = M.marked(b)
    check(data, err)
    -- an encrypted block goes back under its own keystream (its N.key
    -- stays), as the server itself rewrites a block
    if b.keys then data, err = jsr.block_crypt(data, b.keys); check(data, err) end
    check(c:replace(b.path, data, 416))
    for _, f in ipairs(b.index_files) do check(c:move(f, purge)) end
  end
end

return M
