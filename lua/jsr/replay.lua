-- The server's apply-time rules for a stream group's log entries, over a
-- model of the stream as its store holds it (docs/FORMAT.md "Replay of a
-- stream's log"): which publishes it refuses (counted in its failed-entries
-- counter, clfs, never stored), what a stored message removes (limits with
-- discard old, rollups) and what a purge removes.  salvage.lua walks the
-- log and decides with these; nothing here reads the log or writes.
--
--   local replay = require("jsr.replay")
--   local st = replay.state(stream, cfg [, part])        -- a scan of the store
--   local kind, why = replay.refuse(st, msg, L, full)    -- nil | rule, text
--   local removed = replay.store(st, seq, msg)           -- seqs it removed
--   removed = replay.purge(st, request, L)
local jsr = require("jsr")
local blocks = require("jsr.blocks")
local subject_matches = require("jsr.subject").matches -- `*` one token, `>` the rest

local M = {}

-- A header's value: the server looks up "Key:" exactly (case matters) and
-- trims the value.
function M.header(hdrs, key)
  if not hdrs or hdrs == "" then return nil end
  for line in hdrs:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k == key then return v end
  end
  return nil
end

-- filestore.go fileStoreMsgSize: what a message adds to the stream's bytes
function M.size(subject, hdrs, payload)
  local n = 22 + #subject + #payload + 8
  if hdrs and #hdrs > 0 then n = n + 4 + #hdrs end
  return n
end

local function num(v, dflt)
  v = math.tointeger(v)
  if v == nil then return dflt end
  return v
end

-- An RFC 3339 time as Go writes it ("2026-08-01T10:05:00.123456789Z",
-- or with an offset) -> Unix nanoseconds, or nil.
function M.rfc3339_ns(t)
  if type(t) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac, zone = t:match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days since 1970-01-01 of a proleptic Gregorian date
  local yy = mo <= 2 and y - 1 or y
  local era = yy // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo > 2 and mo - 3 or mo + 9) + 2) // 5 + d - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  local ns = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60 + tonumber(sec)
  local off = 0
  if zone ~= "Z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil end
    off = (tonumber(oh) * 60 + tonumber(om)) * 60 * (sign == "-" and -1 or 1)
  end
  ns = (ns - off) * 1000000000
  if #frac > 1 then ns = ns + math.tointeger(tonumber((frac:sub(2) .. "000000000"):sub(1, 9))) end
  return ns
end

-- A consumer created after a message was stored had no say in it: its
-- creation time (meta.inf "Created", the meta leader's clock) against the
-- message's (the stream leader's).  Clocks of a cluster's nodes differ by
-- milliseconds; within this much the consumer still counts, so a message
-- is rather kept than lost.
M.CREATED_SKEW_NS = 1000000000

-- The parts of a stream's config the rules read (meta.inf as the survivor
-- last wrote it), and for an interest stream its consumers' filters and
-- creation times (consumers: the model's, as they were when the survivor
-- stopped: one deleted since had interest then, but the server removed
-- what only it wanted when it went; retention, sdm_ttl: the cluster's,
-- when prepare has changed the config already).
function M.config(c, consumers, retention, sdm_ttl)
  c = type(c) == "table" and c or {}
  local filters
  if (retention or c.retention) == "interest" then
    filters = {}
    for _, o in ipairs(consumers or {}) do
      local oc = type(o.config) == "table" and o.config or {}
      local f = { created = M.rfc3339_ns(oc.Created) }
      if type(oc.filter_subject) == "string" and oc.filter_subject ~= "" then f[#f + 1] = oc.filter_subject end
      if type(oc.filter_subjects) == "table" then
        for _, x in ipairs(oc.filter_subjects) do if type(x) == "string" and x ~= "" then f[#f + 1] = x end end
      end
      filters[#filters + 1] = f
    end
  end
  return {
    interest = filters,
    window = num(c.duplicate_window, 120 * 1000000000),
    discard_new = c.discard == "new",
    max_msgs = num(c.max_msgs, -1), max_bytes = num(c.max_bytes, -1),
    max_per = num(c.max_msgs_per_subject, -1), new_per = c.discard_new_per_subject == true,
    max_size = num(c.max_msg_size, -1),
    rollup_ok = c.allow_rollup_hdrs == true and c.deny_purge ~= true,
    sdm_ttl = num(sdm_ttl or c.subject_delete_marker_ttl, 0),
    transform = type(c.subject_transform) == "table" and type(c.subject_transform.dest) == "string"
      and c.subject_transform.dest ~= "" and c.subject_transform or nil,
  }
end

-- Go's time.ParseDuration for what a Nats-TTL holds ("90s", "1h30m",
-- "1.5h"): seconds, or nil
local UNITS = { ns = 1e-9, us = 1e-6, ["\194\181s"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600 }
local function duration(v)
  if v == "" or v == "0" then return v == "0" and 0 or nil end
  local total, pos = 0, 1
  while pos <= #v do
    local n, u, nxt = v:match("^(%d*%.?%d+)(%a+)()", pos)
    if not n then n, u, nxt = v:match("^(%d*%.?%d+)(\194\181s)()", pos) end
    if not n or not UNITS[u] then return nil end
    total, pos = total + tonumber(n) * UNITS[u], nxt
  end
  return total
end

-- ttl_floor(cfg, hdrs) -> hdrs: 2.11+ raises a message's Nats-TTL below
-- the stream's subject_delete_marker_ttl to it as it stores the message
-- (unless max_msgs_per_subject is 1): the header is taken out and added
-- again last, in seconds (stream.go processJetStreamMsg; docs/FORMAT.md
-- "Ops of a stream's log")
function M.ttl_floor(cfg, hdrs)
  if cfg.sdm_ttl <= 0 or cfg.max_per == 1 or not hdrs then return hdrs end
  local v = M.header(hdrs, "Nats-TTL")
  if not v then return hdrs end
  local ttl
  if v:lower() ~= "never" then
    local d = duration(v)
    ttl = d and (d >= 1 and math.floor(d) or 0) or math.tointeger(tonumber(v:match("^%d+$") or ""))
  end
  local floor = cfg.sdm_ttl // 1000000000
  if not ttl or ttl <= 0 or ttl >= floor then return hdrs end
  local h = hdrs
  repeat
    local a, b = h:find("\nNats%-TTL:[^\r\n]*\r\n")
    if a then h = h:sub(1, a) .. h:sub(b + 1) end
  until not a
  if #h <= 12 then h = "NATS/1.0\r\n\r\n" end
  return h:sub(1, -3) .. ("Nats-TTL: %d\r\n\r\n"):format(floor)
end

local function tokens(subject)
  local t = {}
  for tok in (subject .. "."):gmatch("([^.]*)%.") do t[#t + 1] = tok end
  return t
end

-- transform(t, subject) -> subject | nil, why: a stream's subject
-- transform {src, dest} (2.10+) as the server applies it when it stores a
-- message (subject_transform.go Match): a subject src does not match
-- stays as it is; dest's literal tokens, `$N` or {{wildcard(N)}} (the
-- subject's token at src's N-th `*`) and a trailing `>` are replayed;
-- another mapping function is not (nil: the caller stops there).
function M.transform(t, subject)
  local src = type(t.src) == "string" and t.src ~= "" and t.src or ">"
  if src == ">" and t.dest == ">" then return subject end
  if not subject_matches(src, subject) then return subject end
  local stoks, toks, wild = tokens(src), tokens(subject), {}
  for i, tok in ipairs(stoks) do if tok == "*" then wild[#wild + 1] = i end end
  local out = {}
  for _, tok in ipairs(tokens(t.dest)) do
    local n = tok:match("^%$(%d+)$") or tok:match("^{{%s*[Ww]ildcard%s*%(%s*(%d+)%s*%)%s*}}$")
    if tok == ">" then
      for i = #stoks, #toks do out[#out + 1] = toks[i] end
    elseif n then
      local at = wild[tonumber(n)]
      if not at then return nil, ("subject transform %s: no wildcard %s in %s"):format(t.dest, n, src) end
      out[#out + 1] = toks[at]
    elseif tok:find("{{", 1, true) then
      return nil, ("subject transform %s -> %s: its mapping function %s is not replayed by js-recover")
        :format(src, t.dest, tok)
    else
      out[#out + 1] = tok
    end
  end
  return table.concat(out, ".")
end

local function add_live(st, seq, e)
  st.live[seq] = e
  st.msgs, st.bytes = st.msgs + 1, st.bytes + e.size
  local l = st.subj[e.subject]
  if not l then l = {}; st.subj[e.subject] = l end
  l[#l + 1] = seq
  if seq > st.max_live then st.max_live = seq end
  if e.msgid then st.ids[e.msgid] = { seq = seq, ts = e.ts } end
end

-- Takes seq out of the model; true when it was live.
local function remove(st, seq)
  local e = st.live[seq]
  if not e then return false end
  st.live[seq] = nil
  st.msgs, st.bytes = st.msgs - 1, st.bytes - e.size
  local l = st.subj[e.subject]
  for i = 1, #l do if l[i] == seq then table.remove(l, i) break end end
  if #l == 0 then st.subj[e.subject] = nil end
  return true
end
M.remove = remove

local function add_record(st, rec)
  if rec.tombstone then return end
  local e = { ts = rec.ts, subject = rec.subject or "", deleted = rec.deleted }
  st.records[rec.seq] = e
  if not rec.deleted then
    e.msgid = M.header(rec.headers, "Nats-Msg-Id")
    e.size = M.size(e.subject, rec.headers, rec.payload or "")
    add_live(st, rec.seq, e)
  end
end

-- state(stream, cfg [, part]) -> st | nil, why: the store's records
-- (st.records[seq] = {ts, subject, deleted}, live or deleted, to match
-- log entries against), st.live[seq], per-subject live sequences, the
-- message ids (deduplication), message and byte counts.  Without part,
-- every block (st.full); with part = {from = seq, since = ns}, only the
-- newest blocks, back to the first that starts at or below from and
-- before since: enough to match entries past from and to find the ids
-- of a duplicate window, at a cost that does not grow with the stream.
-- empty(cfg): a model of nothing read (deletes alone need no more)
function M.empty(cfg)
  return { cfg = cfg, records = {}, live = {}, subj = {}, ids = {}, msgs = 0, bytes = 0, max_live = 0 }
end

function M.state(stream, cfg, part)
  local st = M.empty(cfg)
  st.full = part == nil
  if not part then
    local sum = blocks.scan(stream, { records = function(rec) add_record(st, rec); return true end })
    if sum.corrupt or sum.unchecked_blocks > 0 then
      return nil, sum.unchecked_blocks > 0 and "encrypted blocks, no key given" or "corrupt blocks"
    end
    return st
  end
  local files = jsr.block_files(stream.path)
  if not files then return st end -- no blocks: nothing stored
  local got = {}
  for i = #files, 1, -1 do
    local b = files[i]
    if b.key and not jsr.has_keys() then return nil, "encrypted blocks" end
    local recs, first, first_ts = {}, nil, nil
    local stats, err = jsr.scan_block(b.path, stream.name .. "-" .. b.index,
      { index = b.idx, last = i == #files, prev_seq = 0, keyfile = b.key, account = stream.account,
        context = stream.name .. ":" .. b.index,
        records = function(rec)
          if not rec.tombstone then
            recs[#recs + 1] = rec
            first, first_ts = first or rec.seq, first_ts or rec.ts
          end
          return true
        end })
    if not stats then return nil, err end
    got[#got + 1] = recs
    if first and first <= part.from and first_ts < part.since then break end
  end
  for i = #got, 1, -1 do for _, rec in ipairs(got[i]) do add_record(st, rec) end end
  return st
end

local function lowest_live(st)
  local low
  for seq in pairs(st.live) do if not low or seq < low then low = seq end end
  return low
end

-- refuse(st, msg, L, full) -> nil | kind, reason, counted: whether the server
-- refuses the publish at apply time (stream.go processJetStreamMsg,
-- filestore.go storeRawMsg; the leader checks the same ones, and more,
-- before proposing on 2.10+, measured).  L: the stream's last sequence
-- then; full: the model holds the stream as it was then (past the store);
-- otherwise only the rules the log itself decides are checked.  counted:
-- the server counts the refusal in clfs (an invalid rollup value it does
-- not, which leaves every later entry off by one, as on the server).
-- "no_interest" is no refusal: the message takes its sequence, unstored.
function M.refuse(st, msg, L, full)
  local cfg, h = st.cfg, msg.headers
  -- plen: a payload salvage did not keep (an entry that cannot be appended)
  local plen = msg.plen or #(msg.payload or "")
  if h and #h > 0 then
    local id = M.header(h, "Nats-Msg-Id")
    if id and id ~= "" and cfg.window > 0 then
      local d = st.ids[id]
      if d and d.seq <= L and msg.ts - d.ts < cfg.window then
        return "duplicate", "duplicate Nats-Msg-Id " .. id .. " (seq " .. d.seq .. ")", true
      end
    end
    local ess = M.header(h, "Nats-Expected-Last-Subject-Sequence")
    -- only 0 (a KV create) is checked at apply time: the leader checked
    -- the others before proposing and the followers do not again (2.9.10)
    if full and ess and math.tointeger(tonumber(ess)) == 0 and st.subj[msg.subject] then
      return "expected_last_subject_sequence", "Nats-Expected-Last-Subject-Sequence 0 (a create) but "
        .. msg.subject .. " exists", true
    end
    local els = M.header(h, "Nats-Expected-Last-Sequence")
    if els and math.tointeger(tonumber(els)) ~= L then
      return "expected_last_sequence", ("Nats-Expected-Last-Sequence %s, last was %d"):format(els, L), true
    end
    local elm = M.header(h, "Nats-Expected-Last-Msg-Id")
    if elm and elm ~= "" and elm ~= (st.last_msgid or "") then
      return "expected_last_msg_id", ("Nats-Expected-Last-Msg-Id %s, last was %q"):format(elm, st.last_msgid or ""), true
    end
    local roll = M.header(h, "Nats-Rollup")
    if roll then
      if not cfg.rollup_ok then return "rollup", "Nats-Rollup not permitted", true end
      if roll ~= "sub" and roll ~= "all" then return "rollup", "invalid Nats-Rollup " .. roll, false end
    end
  end
  if cfg.max_size >= 0 and #(h or "") + plen > cfg.max_size then
    return "max_msg_size", ("larger than max_msg_size %d"):format(cfg.max_size), true
  end
  -- an interest stream stores nothing no consumer wants: the sequence is
  -- taken, the message not stored (nor refused)
  if cfg.interest then
    local wanted = false
    for _, f in ipairs(cfg.interest) do
      if not (f.created and msg.ts > 0 and f.created > msg.ts + M.CREATED_SKEW_NS) then
        if #f == 0 then wanted = true break end
        for _, x in ipairs(f) do if subject_matches(x, msg.subject) then wanted = true break end end
        if wanted then break end
      end
    end
    if not wanted then return "no_interest", "no consumer then had a filter that takes " .. msg.subject, false end
  end
  if full and cfg.discard_new then
    local asl, fseq = false, nil
    local l = st.subj[msg.subject]
    if cfg.max_per > 0 and #msg.subject > 0 and l and #l >= cfg.max_per then
      if cfg.new_per then
        return "max_msgs_per_subject", ("discard new: max_msgs_per_subject %d"):format(cfg.max_per), true
      end
      asl, fseq = true, l[1]
    end
    if cfg.max_msgs > 0 and st.msgs >= cfg.max_msgs and not asl then
      return "max_msgs", ("discard new: max_msgs %d"):format(cfg.max_msgs), true
    end
    local n = #(h or "") + plen
    if cfg.max_bytes > 0 and st.bytes + n >= cfg.max_bytes then
      if not asl or st.live[fseq].size <= n then
        return "max_bytes", ("discard new: max_bytes %d"):format(cfg.max_bytes), true
      end
    end
  end
  return nil
end

-- store(st, seq, msg) -> removed: adds a message the server stored at seq;
-- returns the live sequences storing it removed (limits, rollups).
function M.store(st, seq, msg)
  local cfg = st.cfg
  local id = M.header(msg.headers, "Nats-Msg-Id")
  if id == "" then id = nil end
  add_live(st, seq, { ts = msg.ts, subject = msg.subject, msgid = id,
                      size = M.size(msg.subject, msg.headers, msg.payload or "") })
  st.last_msgid = id
  local removed = {}
  local function drop(s) if remove(st, s) then removed[#removed + 1] = s end end
  -- a rollup (and a schedule's purge, 2.14+) the stream allows: on 2.12+
  -- the leader checked it before proposing, and the server applies it only
  -- when the stream allows rollups (stream.go processJetStreamMsgWithRollup)
  local roll = cfg.rollup_ok and M.header(msg.headers, "Nats-Rollup")
  if roll == "sub" then
    for _, s in ipairs({ table.unpack(st.subj[msg.subject]) }) do if s ~= seq then drop(s) end end
  elseif roll == "all" then
    local all = {}
    for s in pairs(st.live) do if s ~= seq then all[#all + 1] = s end end
    for _, s in ipairs(all) do drop(s) end
  end
  local scheduler = cfg.rollup_ok and M.header(msg.headers, "Nats-Schedule-Next") == "purge"
    and M.header(msg.headers, "Nats-Scheduler")
  if scheduler and scheduler ~= "" and st.subj[scheduler] then
    for _, s in ipairs({ table.unpack(st.subj[scheduler]) }) do drop(s) end
  end
  local l = st.subj[msg.subject]
  while cfg.max_per > 0 and l and #l > cfg.max_per do drop(l[1]); l = st.subj[msg.subject] end
  while cfg.max_msgs > 0 and st.msgs > cfg.max_msgs do drop(lowest_live(st)) end
  while cfg.max_bytes > 0 and st.bytes > cfg.max_bytes and st.msgs > 0 do drop(lowest_live(st)) end
  table.sort(removed)
  return removed
end


-- purge(st, req, L) -> removed: a purge request {filter, seq, keep} as the
-- server applies it (stream.go purge, filestore.go PurgeEx/Compact/Purge):
-- the live messages at or below L matching filter, below seq when given,
-- all but the newest keep of them (without a filter: all below L - keep + 1).
function M.purge(st, req, L)
  req = type(req) == "table" and req or {}
  local filter = type(req.filter) == "string" and req.filter or ""
  local below = math.tointeger(req.seq) or 0
  local keep = math.tointeger(req.keep) or 0
  local match = {}
  for seq, e in pairs(st.live) do
    if seq <= L and subject_matches(filter, e.subject) and (below == 0 or seq < below) then
      match[#match + 1] = seq
    end
  end
  table.sort(match)
  local removed = {}
  if keep > 0 then
    if filter ~= "" and filter ~= ">" then
      -- the newest keep of the matching messages stay (PurgeEx)
      for _ = 1, math.min(keep, #match) do match[#match] = nil end
    else
      -- by sequence: Compact(last - keep + 1), interior deletes or not
      local m2 = {}
      for _, seq in ipairs(match) do if seq <= L - keep then m2[#m2 + 1] = seq end end
      match = m2
    end
  end
  for _, seq in ipairs(match) do if remove(st, seq) then removed[#removed + 1] = seq end end
  return removed
end

-- 2.10+ binary stream snapshot (filestore.go EncodedStreamState): magic
-- 42, version 1, uvarints msgs, bytes, first_seq, last_seq, failed, ...
function M.binary_snapshot(data)
  if #data < 2 or data:byte(1) ~= 42 or data:byte(2) ~= 1 then return nil end
  local pos, vals = 3, {}
  for i = 1, 5 do
    local v, shift = 0, 0
    repeat
      local b = data:byte(pos)
      if not b or shift > 56 then return nil end
      v = v | ((b & 0x7f) << shift)
      shift, pos = shift + 7, pos + 1
    until b < 0x80
    vals[i] = v
  end
  return { last_seq = vals[4], clfs = vals[5] }
end

return M
