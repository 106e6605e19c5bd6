-- JetStream domains (`jetstream { domain: X }`, a leaf node's or a
-- cluster's own JetStream).  The store does not record its server's
-- domain (docs/FORMAT.md "JetStream domains": not in meta.inf, the meta
-- group's snapshot or log, nor anywhere else in the store, checked on
-- 2.9.10 and 2.15.3), so it comes from the survivor's config (--config F)
-- or the operator (prepare --domain X).  What the store does record is the
-- domains its streams source from or mirror: external.api "$JS.<X>.API".
local conf = require("jsr.conf")
local read_file = require("jsr.files").read

local M = {}

M.OPTIONS = { domain = "string" }

-- a name the server takes as a domain: one subject token
function M.valid(name)
  return type(name) == "string" and name:match("^[%w_%-]+$") ~= nil
end

-- from_config(path) -> domain | nil, why: the `domain` key in the config's
-- jetstream block (the last one wins, as the server reads it)
function M.from_config(path)
  local text, err = read_file(path)
  if not text then return nil, ("%s: cannot read the server config: %s"):format(path, tostring(err)) end
  local body = ("\n" .. text):gsub("\n%s*#[^\n]*", "\n"):gsub("\n%s*//[^\n]*", "\n")
  local found
  for block in body:gmatch("[%s{]jetstream%s*[:=]?%s*(%b{})") do
    for v in block:gmatch("[%s{,;]domain%s*[:=]%s*([^\n,;}]+)") do
      found = v:gsub("%s+$", ""):gsub("^[\"']", ""):gsub("[\"']$", "")
    end
  end
  return found
end

-- own(opts) -> {name=, source=} | nil, err: --domain X, else the config's
function M.own(opts)
  if opts.domain then
    if not M.valid(opts.domain) then
      return nil, ("--domain %q: a domain is one subject token (letters, digits, - and _)"):format(opts.domain)
    end
    return { name = opts.domain, source = "--domain" }
  end
  if opts.config then
    local d = M.from_config(opts.config)
    if d then return { name = d, source = opts.config } end
  end
  return {}
end

-- referenced(m) -> { {account, stream, kind = "source"|"mirror", name, api, domain} }
function M.referenced(m)
  local out = {}
  local function add(s, kind, src)
    local ext = type(src) == "table" and src.external
    if type(ext) ~= "table" or type(ext.api) ~= "string" then return end
    out[#out + 1] = { account = s.account, stream = s.name, kind = kind, name = src.name, api = ext.api,
                      domain = ext.api:match("^%$JS%.(.+)%.API$") }
  end
  for _, s in ipairs(m.streams) do
    local cfg = s.config
    if type(cfg) == "table" then
      add(s, "mirror", cfg.mirror)
      for _, src in ipairs(type(cfg.sources) == "table" and cfg.sources or {}) do add(s, "source", src) end
    end
  end
  return out
end

-- lines(own, refs) -> text lines for inspect
function M.lines(own, refs)
  local out = {}
  if own.name then
    out[#out + 1] = ("JetStream domain: %s (from %s)"):format(own.name, own.source)
  elseif #refs > 0 then
    out[#out + 1] = "JetStream domain: not recorded in the store (--config F, the survivor's server config, "
      .. "shows it; prepare --domain X sets it)"
  end
  for _, r in ipairs(refs) do
    out[#out + 1] = ("  %s > %s %ss %s from %s (%s)%s"):format(r.account, r.stream, r.kind, tostring(r.name),
      r.domain and ("domain " .. r.domain) or "another API", r.api,
      " — restore --map-api OLD=NEW points it elsewhere")
  end
  return out
end

-- with_domain(text, name) -> recovery.conf's text with the domain in its
-- jetstream block
function M.with_domain(text, name)
  local out, n = text:gsub("\njetstream {\n", ("\njetstream {\n  domain: %s\n"):format(conf.quote(name)), 1)
  assert(n == 1, "recovery.conf has no jetstream block")
  return out
end

return M
