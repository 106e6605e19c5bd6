-- Where restored streams go and where their sources point, when the new
-- cluster is not the old one: restore's and export's --map-cluster,
-- --map-tag and --map-api.  A supercluster's stream names the cluster it
-- was placed in (placement.cluster) and server tags; a new cluster with
-- another name, or without those tags, refuses it ("no suitable peers").
-- A stream that sources from (or mirrors) another JetStream domain names
-- that domain's API prefix ($JS.<domain>.API) in external.api.
local blocks = require("jsr.blocks")

local M = {}

M.OPTIONS = { ["map-cluster"] = "string", ["map-tag"] = "string", ["map-api"] = "string" }

-- parse("OLD=NEW,OLD2=NEW2", flag) -> { [OLD] = NEW } | nil, msg
function M.parse(text, flag)
  local map = {}
  if not text then return map end
  for item in text:gmatch("[^,]+") do
    local old, new = item:match("^%s*(.-)%s*=%s*(.-)%s*$")
    if not old or old == "" or new == "" then
      return nil, ("--%s: expected OLD=NEW[,OLD=NEW...], not %q"):format(flag, item)
    end
    if map[old] and map[old] ~= new then
      return nil, ("--%s: %s is mapped twice (%s and %s)"):format(flag, old, map[old], new)
    end
    map[old] = new
  end
  return map
end

-- maps(opts) -> {cluster=, tag=, api=} | nil, msg
function M.maps(opts)
  local out = {}
  for key, flag in pairs { cluster = "map-cluster", tag = "map-tag", api = "map-api" } do
    local m, err = M.parse(opts[flag], flag)
    if not m then return nil, err end
    out[key] = m
  end
  return out
end

-- sourced_positions(stream) -> {[source name] = the highest sequence of
-- it the stream's messages record}, in one scan.  Each sourced message
-- carries "Nats-Stream-Source: <name>[:<hash of the API prefix>][ ...]
-- <seq>[ ...]" (its second field the sequence, 2.9.10 and 2.10+).
function M.sourced_positions(stream)
  local best = {}
  blocks.scan(stream, { records = function(rec)
    local v = not rec.deleted and rec.headers and rec.headers:match("\r\nNats%-Stream%-Source:%s*([^\r\n]+)")
    if v then
      local name, seq = v:match("^([^:%s]+)%S*%s+(%d+)")
      seq = math.tointeger(tonumber(seq))
      if name and seq and (not best[name] or seq > best[name]) then best[name] = seq end
    end
  end })
  return best
end

-- the deliver prefix belongs to the domain the stream is in, not to the
-- one it sources from: it stays
local function map_external(src, api)
  local ext = type(src) == "table" and src.external
  if type(ext) ~= "table" or type(ext.api) ~= "string" or not api[ext.api] then return end
  ext.api = api[ext.api]
end

-- Every source goes on after what it had imported, not from the start:
-- opt_start_seq one past the last sequence its messages record.  The
-- server looks for that position in the stream's messages when its leader
-- starts the source, and takes opt_start_seq when it finds none (2.14.5
-- stream.go setupSourceConsumer); a restored stream's new leader can look
-- before it holds the snapshot's messages, and a mapped API prefix changes
-- the name it looks for (measured on 2.15.3: COMBINED imported LOCAL's 60
-- messages again in restore_drill_spec under load at 9cc0e06; 100 again
-- with a prefix mapped).  A source with its own durable consumer takes no
-- start.
local function keep_positions(cfg, stream)
  if not stream or type(cfg.sources) ~= "table" or #cfg.sources == 0 then return end
  local pos
  for _, src in ipairs(cfg.sources) do
    if type(src) == "table" and type(src.name) == "string" and src.consumer == nil then
      pos = pos or M.sourced_positions(stream)
      local last = pos[src.name]
      if last and (src.opt_start_seq or 0) <= last then
        src.opt_start_seq = last + 1
        src.opt_start_time = nil
      end
    end
  end
end

-- apply(cfg, maps[, stream]): edits a stream config in place; stream
-- {name, account, path}: its store, read for where its mapped sources had got to
function M.apply(cfg, maps, stream)
  local p = cfg.placement
  if type(p) == "table" then
    if type(p.cluster) == "string" and maps.cluster[p.cluster] then p.cluster = maps.cluster[p.cluster] end
    if type(p.tags) == "table" then
      for i, t in ipairs(p.tags) do p.tags[i] = maps.tag[t] or t end
    end
  end
  -- a mirror goes on from its own last sequence, which the prefix does not change
  if type(cfg.mirror) == "table" then map_external(cfg.mirror, maps.api) end
  if type(cfg.sources) == "table" then
    for _, s in ipairs(cfg.sources) do map_external(s, maps.api) end
  end
  keep_positions(cfg, stream)
end

-- hint(cfg) -> text for a refused restore whose config places the stream
function M.hint(cfg)
  local p = type(cfg) == "table" and cfg.placement
  if type(p) ~= "table" then return "" end
  local parts = {}
  if type(p.cluster) == "string" and p.cluster ~= "" then parts[#parts + 1] = "cluster " .. p.cluster end
  if type(p.tags) == "table" and #p.tags > 0 then parts[#parts + 1] = "tags " .. table.concat(p.tags, ", ") end
  if #parts == 0 then return "" end
  return (" (the stream is placed in %s: if the target has no such cluster or servers, say where it goes "
    .. "with --map-cluster OLD=NEW and --map-tag OLD=NEW, drop placement with --no-placement, or edit it "
    .. "in a policy's restore_config)"):format(table.concat(parts, ", "))
end

return M
