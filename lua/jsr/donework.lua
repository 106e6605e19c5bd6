-- Done work still stored: work-queue and interest messages the cluster
-- had finished with that the survivor's blocks still hold.  The server
-- deletes an acked job in memory and writes the delete to the index file
-- later, so a kill can leave done jobs on disk, and a standalone server
-- serves them again (measured on 2.9.10, README "Quorum-loss drill").
-- Two uses, each its own rule:
--
--   local donework = require("jsr.donework")
--   local found, notes = donework.find(m, meta)   -- the report (inspect, prepare's end)
--   donework.print(found, out); report.done = donework.json(found)
--   local want, bound = donework.rule(retention, consumers)  -- what prepare removes
local jsr = require("jsr")
local raft = require("jsr.raft")
local blocks = require("jsr.blocks")
local files = require("jsr.files")
local subject = require("jsr.subject")
local plural = require("jsr.print").plural
local json = jsr.json
local layout = jsr.layout

local M = {}

-- ------------------------------------------------------------ the report

-- Original retention of each stream: the meta.inf's, or, once prepare has
-- set it to limits, what recovery-report.json kept.
local function original_retention(m)
  local out = {}
  local rep = files.report(m.store.store_dir)
  if rep and type(rep.streams) == "table" then
    for _, s in ipairs(rep.streams) do
      if type(s.original) == "table" then out[(s.account or "") .. "\0" .. (s.name or "")] = s.original.retention end
    end
  end
  return out
end

-- The consumer's o.dat is the proof jobs were done; acks only in the
-- consumer's Raft log or snapshot under _js_ (o.dat is flushed at most
-- every 100 ms) count too, as `from_raft` (meta: raft.meta_state, to find
-- each consumer's group).
local function raft_acks(meta, account, stream, consumer)
  if not meta then return nil end
  local s = meta.streams[account .. "\0" .. stream]
  local c = s and s.consumers[consumer]
  if not (c and type(c.group) == "table" and type(c.group.name) == "string") then return nil end
  -- a malformed meta entry may have given the consumer another group
  if raft.untrusted(meta, account, stream, consumer) then return nil end
  local dir = layout.raft_dir_of(meta.dir) .. "/" .. c.group.name
  local acked = {}
  -- each ack is a fact of its own, but none past an entry that cannot be
  -- read is taken (the same place salvage stops)
  raft.log(dir, function(_, ae)
    for _, e in ipairs(ae.entries) do
      if e.type == raft.NORMAL then
        local u = raft.consumer_update(e.data)
        if u and u.op == raft.op.update_acks then acked[u.sseq] = true end
      end
    end
  end, nil, function() return false end)
  local snap = raft.latest_snapshot(dir)
  return { acked = acked, snapshot = snap and raft.consumer_state(snap.data) or nil }
end

local function state_acked(st, seq)
  if not st then return false end
  if seq <= st.ack_floor.stream then return true end
  return seq <= st.delivered.stream and st.pending[seq] == nil
end

-- find(m [, meta]) -> { {account, stream, messages, first, last, consumers = {
--   {name, filter, state, below_floor, above_floor = {seq...}, from_raft}}} }, notes
-- Work-queue messages the consumer had acked that are still in the blocks.
function M.find(m, meta)
  local out, notes = {}, {}
  local orig = original_retention(m)
  for _, s in ipairs(m.streams) do
    local retention = orig[s.account .. "\0" .. s.name] or (s.config and s.config.retention)
    if retention == "workqueue" and not s.error then
      local cons = {}
      for _, c in ipairs(s.consumers) do
        -- an encrypted store's o.dat is sealed with the consumer's key:
        -- read with the server's key, not read without it
        local sealed_odat = c.encrypted and not jsr.has_keys()
        local b = c.config and not sealed_odat and require("jsr.sealed").odat(s, c)
        if sealed_odat and c.config then
          notes[#notes + 1] = ("consumer %s > %s > %s: o.dat encrypted, not read (acked work-queue jobs "
            .. "still in the blocks are not looked for)"):format(s.account, s.name, c.name)
        end
        local st = b and raft.consumer_state(b)
        if st then
          cons[#cons + 1] = { name = c.name, filter = c.config.filter_subject, state = st,
                              below_floor = 0, above_floor = {}, from_raft = 0,
                              raft = raft_acks(meta, s.account, s.name, c.name) }
        end
      end
      -- No message past every consumer's delivered sequence (or an ack in
      -- its Raft state) can be done: the scan stops there, so its cost is
      -- the done-but-on-disk messages, not the backlog.
      local bound = 0
      for _, c in ipairs(cons) do
        bound = math.max(bound, c.state.delivered.stream, c.state.ack_floor.stream)
        if c.raft then
          for seq in pairs(c.raft.acked) do bound = math.max(bound, seq) end
          local sn = c.raft.snapshot
          if sn then bound = math.max(bound, sn.delivered.stream, sn.ack_floor.stream) end
        end
      end
      if #cons > 0 and bound > 0 then
        local entry = { account = s.account, stream = s.name, messages = 0, consumers = cons }
        blocks.scan({ name = s.name, path = s.path, account = s.account }, {
          records = function(rec)
            if rec.seq > bound then return false end
            if rec.deleted then return true end
            for _, c in ipairs(cons) do
              if subject.matches(c.filter, rec.subject) then
                local st = c.state
                if rec.seq <= st.ack_floor.stream then
                  c.below_floor = c.below_floor + 1
                elseif state_acked(st, rec.seq) then
                  c.above_floor[#c.above_floor + 1] = rec.seq
                elseif c.raft and (c.raft.acked[rec.seq] or state_acked(c.raft.snapshot, rec.seq)) then
                  c.above_floor[#c.above_floor + 1] = rec.seq
                  c.from_raft = c.from_raft + 1
                else
                  return true
                end
                entry.messages = entry.messages + 1
                entry.first = entry.first or rec.seq
                entry.last = rec.seq
                return true
              end
            end
            return true
          end,
        })
        if entry.messages > 0 then out[#out + 1] = entry end
      end
    end
  end
  return out, notes
end

-- The report as JSON-ready tables (arrays marked, so empty ones stay []).
function M.json(found)
  local out = json.array()
  for _, d in ipairs(found or {}) do
    local cs = json.array()
    for _, c in ipairs(d.consumers) do
      if c.below_floor + #c.above_floor > 0 then
        cs[#cs + 1] = { name = c.name, filter = c.filter, ack_floor = c.state.ack_floor.stream,
                        below_floor = c.below_floor, above_floor = json.array(c.above_floor),
                        from_raft = c.from_raft }
      end
    end
    out[#out + 1] = { account = d.account, stream = d.stream, messages = d.messages,
                      first = d.first, last = d.last, consumers = cs }
  end
  return out
end

-- Prints the "Done, but still on disk" section, with the commands that
-- remove those jobs once the server runs.
function M.print(found, out)
  if not found or #found == 0 then return end
  out:write("\nDone, but still on disk (work-queue jobs the consumer had acked)\n")
  for _, d in ipairs(found) do
    out:write(("  stream %s > %s: %s its consumer had acked (sequences %d-%d) %s still in the blocks\n"
      .. "  and would be served again: the server died before it wrote their deletes. prepare removes\n"
      .. "  them (policy hook done_work); where it says it cannot, once the server runs:\n"):format(
      d.account, d.stream, plural(d.messages, "message", "messages"), d.first, d.last,
      d.messages == 1 and "is" or "are"))
    for _, c in ipairs(d.consumers) do
      if c.below_floor > 0 then
        local filtered = c.filter and c.filter ~= ""
        out:write(("    consumer %s acked every message up to %d (%d of them here). Once the server runs,\n"
          .. "    remove them with a purge below %d%s:\n"
          .. "      nats stream purge %s --seq %d%s\n"
          .. "      (the API: $JS.API.STREAM.PURGE.%s {\"seq\":%d%s})\n"):format(
          c.name, c.state.ack_floor.stream, c.below_floor, c.state.ack_floor.stream + 1,
          filtered and (" on " .. c.filter) or "", d.stream, c.state.ack_floor.stream + 1,
          filtered and (" --subject " .. c.filter) or "", d.stream, c.state.ack_floor.stream + 1,
          filtered and (',"filter":' .. json.encode(c.filter)) or ""))
      end
      if #c.above_floor > 0 then
        local shown = {}
        for i = 1, math.min(#c.above_floor, 20) do shown[i] = tostring(c.above_floor[i]) end
        out:write(("    consumer %s also acked %s above its floor%s: %s%s\n"
          .. "      (nats stream rmm %s <seq> each)\n"):format(
          c.name, plural(#c.above_floor, "message", "messages"),
          c.from_raft > 0 and (" (%d known only from its Raft log under _js_)"):format(c.from_raft) or "",
          table.concat(shown, " "), #c.above_floor > 20 and " ..." or "", d.stream))
      end
    end
  end
end

-- ---------------------------------------------------- what prepare removes

-- Acked by this consumer, as the server decides (2.9.10 consumer.go): at
-- or below the ack floor, or delivered and no longer pending (an ack or a
-- term ack).  Only where nothing else takes a message out of pending: a
-- consumer with max_deliver set drops a message that ran out of
-- deliveries from pending without an ack, so for it nothing is judged.
local function acked(c, seq)
  local st, cfg = c.state, c.config
  if seq <= st.ack_floor.stream then return true end
  local policy = cfg.ack_policy or "explicit"
  if policy == "none" then return seq <= st.delivered.stream end
  if policy ~= "explicit" then return false end
  return seq <= st.delivered.stream and st.pending[seq] == nil
end

-- rule(retention, consumers) -> done(rec), bound | nil, why
-- consumers: { {name, config, state} } as prepare leaves them.  done(rec):
-- a work-queue message any consumer that takes its subject acked, an
-- interest message all of them acked; none past bound is.
function M.rule(retention, cons)
  for _, c in ipairs(cons) do
    if math.type(c.config.max_deliver) == "integer" and c.config.max_deliver > 0 then
      return nil, ("consumer %s has max_deliver %d: a message that ran out of deliveries is not "
        .. "pending and not acked, so done work is not judged"):format(c.name, c.config.max_deliver)
    end
  end
  local bound = 0
  for _, c in ipairs(cons) do
    bound = math.max(bound, c.state.delivered.stream, c.state.ack_floor.stream)
  end
  return function(rec)
    local any = false
    for _, c in ipairs(cons) do
      if subject.wanted_by(c.config, rec.subject) then
        any = true
        local a = acked(c, rec.seq)
        if retention == "workqueue" then return a end
        if not a then return false end
      end
    end
    return any
  end, bound
end

return M
