-- Where restored streams go and where their sources point, when the new
-- cluster is not the old one: restore's and export's --map-cluster,
-- --map-tag and --map-api.  A supercluster's stream names the cluster it
-- was placed in (placement.cluster) and server tags; a new cluster with
-- another name, or without those tags, refuses it ("no suitable peers").
-- A stream that sources from (or mirrors) another JetStream domain names
-- that domain's API prefix ($JS.<domain>.API) in external.api.
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

local function map_external(ext, api)
  if type(ext) ~= "table" or type(ext.api) ~= "string" then return end
  local new = api[ext.api]
  if new then
    -- the deliver prefix belongs to the domain the stream is in, not to
    -- the one it sources from: it stays
    ext.api = new
  end
end

-- apply(cfg, maps): edits a stream config in place
function M.apply(cfg, maps)
  local p = cfg.placement
  if type(p) == "table" then
    if type(p.cluster) == "string" and maps.cluster[p.cluster] then p.cluster = maps.cluster[p.cluster] end
    if type(p.tags) == "table" then
      for i, t in ipairs(p.tags) do p.tags[i] = maps.tag[t] or t end
    end
  end
  if type(cfg.mirror) == "table" then map_external(cfg.mirror.external, maps.api) end
  if type(cfg.sources) == "table" then
    for _, s in ipairs(cfg.sources) do
      if type(s) == "table" then map_external(s.external, maps.api) end
    end
  end
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
