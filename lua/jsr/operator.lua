-- Operator mode (JWT accounts): a server run with `operator:`, a
-- `system_account:` public key and a resolver keeps each account's store
-- under jetstream/<account public key>/.  This finds the JWTs that name
-- those accounts and that a standalone server needs to serve them: the
-- survivor's full-resolver directory (files <public key>.jwt), the
-- resolver_preload and operator of its config, or files the operator
-- points at.  JWTs are public (signed claims, no secret): they are read
-- and copied, never made up.
local jsr = require("jsr")
local json = jsr.json
local layout = jsr.layout
local read_file = require("jsr.files").read

local M = {}

-- base64url without padding, as JWTs encode their parts
local B64 = {}
do
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, #abc do B64[abc:byte(i)] = i - 1 end
  B64[("+"):byte()], B64[("/"):byte()] = 62, 63
end
function M.b64url(s)
  s = s:gsub("=+$", "")
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64[s:byte(i)]
    if not v then return nil end
    acc, bits = (acc << 6) | v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((acc >> bits) & 0xff)
    end
  end
  return table.concat(out)
end

-- An account public key: 'A' and 55 more base32 characters, checksum ok.
function M.is_account_key(s)
  return type(s) == "string" and #s == 56 and s:match("^A[A-Z2-7]+$") ~= nil and jsr.nkey.role(s) == "A"
end

-- decode(token) -> {token, header, claims, signing_input, signature} | nil, why
function M.decode(token)
  token = tostring(token):gsub("^%s+", ""):gsub("%s+$", "")
  local h, p, sig = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  if not h then return nil, "not a JWT (three base64url parts)" end
  local header = json.decode(M.b64url(h) or "")
  local claims = json.decode(M.b64url(p) or "")
  if type(header) ~= "table" or type(claims) ~= "table" or type(claims.nats) ~= "table" then
    return nil, "not a NATS JWT (its header or claims are not JSON with a nats part)"
  end
  return { token = token, header = header, claims = claims, signing_input = h .. "." .. p,
           signature = M.b64url(sig) }
end

local function kind(j) return j.claims.nats.type end

-- every JWT-shaped token in a text (a config's operator and preloads)
local function tokens_in(text)
  local out = {}
  for t in text:gmatch("eyJ[%w_%-]+%.eyJ[%w_%-]+%.[%w_%-]+") do out[#out + 1] = t end
  return out
end

-- The JWT files of a full resolver's directory: <pubkey>.jwt at the top,
-- or one level down (a sharded directory store).
local function resolver_files(dir)
  local out = {}
  local function look(d, depth)
    local names = jsr.listdir(d) or {}
    for _, n in ipairs(names) do
      local p = d .. "/" .. n
      local k = jsr.lstat(p)
      if k == "file" and n:match("%.jwt$") then out[#out + 1] = p
      elseif k == "directory" and depth == 0 and #n == 2 then look(p, 1) end
    end
  end
  look(dir, 0)
  return out
end

-- The survivor's server config: inline JWTs (operator, resolver_preload),
-- an `operator:` that names a file, `system_account:` and a resolver `dir`.
-- Only these are read; anything else in the config is left alone.
function M.from_config(path)
  local text, err = read_file(path)
  if not text then return nil, ("%s: cannot read the server config: %s"):format(path, tostring(err)) end
  local c = { tokens = tokens_in(text), files = {} }
  -- keys anywhere (a resolver block is often one line), outside comments
  local body = ("\n" .. text):gsub("\n%s*#[^\n]*", "\n"):gsub("\n%s*//[^\n]*", "\n")
  local function values(key)
    local out = {}
    for v in body:gmatch("[%s{,;]" .. key .. "%s*[:=]%s*([^\n,;}]+)") do
      out[#out + 1] = v:gsub("%s+$", "")
    end
    return out
  end
  local function unquote(v) return (v:gsub("^[\"']", ""):gsub("[\"']$", "")) end
  for _, key in ipairs { "operator", "operators", "trusted_operators" } do
    -- a file, or a list of files ([a, b]); inline JWTs are tokens above
    local items = {}
    for _, v in ipairs(values(key)) do
      if not v:match("^%[") then items[#items + 1] = v end
    end
    for list in body:gmatch("[%s{,;]" .. key .. "%s*[:=]%s*(%b[])") do
      for item in list:sub(2, -2):gmatch("[^%s,]+") do items[#items + 1] = item end
    end
    for _, item in ipairs(items) do
      item = unquote(item)
      if item ~= "" and not item:match("^eyJ") then c.files[#c.files + 1] = item end
    end
  end
  c.system_account = values("system_account")[1] and unquote(values("system_account")[1])
  c.resolver_dir = values("dir")[1] and unquote(values("dir")[1])
  -- a relative operator file: the server reads it from its working
  -- directory; the config's own directory is the likelier guess here
  local base = path:match("^(.*)/[^/]*$") or "."
  for i, f in ipairs(c.files) do
    if not f:match("^/") and jsr.lstat(base .. "/" .. f) then c.files[i] = base .. "/" .. f end
  end
  return c
end

-- gather(m, opts) -> info
-- opts: resolver_dir, operator_jwt, config (paths the operator gives).
-- info = { mode = bool, operator = jwt or nil, system_account = pubkey,
--          accounts = { [pubkey] = {jwt=, name=, source=, verified=, why=} },
--          looked = {where looked}, problems = {...} }
function M.gather(m, opts)
  opts = opts or {}
  local info = { mode = false, accounts = {}, looked = {}, problems = {}, notes = {} }
  for _, a in ipairs(m.accounts) do
    if M.is_account_key(a.name) then info.mode = true end
  end
  if not info.mode and not (opts.resolver_dir or opts.operator_jwt or opts.config) then return info end
  local candidates = {}
  local function add(token, source)
    local j, why = M.decode(token)
    if not j then
      info.problems[#info.problems + 1] = ("%s: %s"):format(source, why)
      return
    end
    j.source = source
    candidates[#candidates + 1] = j
  end
  local function add_dir(dir, given)
    if jsr.lstat(dir) ~= "directory" then
      if given then info.problems[#info.problems + 1] = dir .. ": not a directory (--resolver-dir)" end
      return
    end
    local files = resolver_files(dir)
    if given or #files > 0 then info.looked[#info.looked + 1] = dir end
    for _, f in ipairs(files) do
      local t = read_file(f)
      if t then add(t, f) end
    end
  end
  if opts.config then
    local c, err = M.from_config(opts.config)
    if not c then
      info.problems[#info.problems + 1] = err
    else
      info.looked[#info.looked + 1] = opts.config
      for _, t in ipairs(c.tokens) do add(t, opts.config) end
      for _, f in ipairs(c.files) do
        local t = read_file(f)
        if t then add(t, f) else info.notes[#info.notes + 1] = ("%s names the operator JWT %s, which cannot be read"):format(opts.config, f) end
      end
      info.config_system_account = c.system_account
      if c.resolver_dir then add_dir(c.resolver_dir:match("^/") and c.resolver_dir
        or (opts.config:match("^(.*)/[^/]*$") or ".") .. "/" .. c.resolver_dir, false) end
    end
  end
  if opts.operator_jwt then
    local t, err = read_file(opts.operator_jwt)
    if t then add(t, opts.operator_jwt)
    else info.problems[#info.problems + 1] = ("%s: cannot read the operator JWT: %s"):format(opts.operator_jwt, tostring(err)) end
  end
  if opts.resolver_dir then add_dir(opts.resolver_dir, true) end
  -- a resolver directory next to jetstream/ (as in store_dir/jwt, the
  -- layout of `nats server generate` and the Helm chart's /data/resolver)
  local sd = m.store.store_dir
  local names = jsr.listdir(sd) or {}
  for _, n in ipairs(names) do
    local p = sd .. "/" .. n
    if n ~= layout.JS_DIR and n ~= layout.STATE_DIR and jsr.lstat(p) == "directory" and p ~= opts.resolver_dir then
      add_dir(p, false)
    end
  end

  -- the operator: the newest operator JWT found (iat)
  for _, j in ipairs(candidates) do
    if kind(j) == "operator" and (not info.operator or (j.claims.iat or 0) > (info.operator.claims.iat or 0)) then
      info.operator = j
    end
  end
  local op = info.operator
  local trusted = {}
  if op then
    trusted[op.claims.sub] = true
    for _, k in ipairs(type(op.claims.nats.signing_keys) == "table" and op.claims.nats.signing_keys or {}) do
      -- plain keys, or {key = ...} objects
      trusted[type(k) == "table" and k.key or k] = true
    end
    local ok, why = jsr.nkey.verify(op.claims.iss or "", op.signing_input, op.signature or "")
    op.verified, op.why = ok and op.claims.iss == op.claims.sub, ok and (op.claims.iss ~= op.claims.sub and
      "the operator JWT is not self-signed") or why
  end
  local function check(j)
    j.name = j.claims.name
    if not op then
      j.verified, j.why = nil, "no operator JWT to check it with (give --operator-jwt F or --config F)"
    elseif not trusted[j.claims.iss] then
      j.verified, j.why = false, ("issued by %s, which is neither the operator %s nor one of its signing keys")
        :format(tostring(j.claims.iss), op.claims.sub)
    else
      local ok, why = jsr.nkey.verify(j.claims.iss, j.signing_input, j.signature or "")
      j.verified, j.why = ok, not ok and why or nil
    end
    local exp = j.claims.exp
    if math.type(exp) == "integer" and exp > 0 and exp < os.time() then j.expired = true end
  end
  -- each account: the newest JWT (iat) whose subject is the account, as a
  -- resolver keeps the newest it was given; of two equally new, one whose
  -- signature verifies
  local function better(j, cur)
    local a, b = j.claims.iat or 0, cur.claims.iat or 0
    if a ~= b then return a > b end
    return j.verified == true and cur.verified ~= true
  end
  for _, j in ipairs(candidates) do
    local sub = j.claims.sub
    if kind(j) == "account" and M.is_account_key(sub) then
      local path_key = j.source:match("([^/]+)%.jwt$")
      if path_key and M.is_account_key(path_key) and path_key ~= sub then
        info.problems[#info.problems + 1] = ("%s: holds the JWT of %s, not of %s"):format(j.source, sub, path_key)
      else
        check(j)
        local cur = info.accounts[sub]
        if not cur or better(j, cur) then info.accounts[sub] = j end
      end
    end
  end
  info.system_account = op and op.claims.nats.system_account or info.config_system_account
  if not info.system_account and m.system and M.is_account_key(m.system.name) then
    info.system_account = m.system.name
  end
  return info
end

-- A JetStream limit that is on: a non-zero disk or memory limit.
local function storage_on(t)
  return type(t) == "table" and ((math.type(t.disk_storage) == "integer" and t.disk_storage ~= 0)
    or (math.type(t.mem_storage) == "integer" and t.mem_storage ~= 0))
end

-- Whether an account JWT lets the account use JetStream, as the server
-- reads its limits: a non-zero disk or memory limit, top-level (2.9) or in
-- a tier (2.10+ tiered_limits, e.g. R1, R3).
function M.jetstream_enabled(j)
  local l = j.claims.nats.limits
  if type(l) ~= "table" then return false end
  if storage_on(l) then return true end
  if type(l.tiered_limits) == "table" then
    for _, t in pairs(l.tiered_limits) do if storage_on(t) then return true end end
  end
  return false
end

-- Whether the JWT's limits cover an R1 stream (prepare makes every stream
-- R1): global limits, or a tier named R1 (a 2.10+ server looks a stream's
-- limits up by its replica count).
function M.covers_r1(j)
  local l = j.claims.nats.limits
  if type(l) ~= "table" then return false end
  if storage_on(l) then return true end
  return type(l.tiered_limits) == "table" and type(l.tiered_limits.R1) == "table"
end

-- One account's description for inspect's table and JSON.
function M.describe(info, pubkey)
  local j = info.accounts[pubkey]
  if not j then return { public_key = pubkey, jwt = false } end
  return { public_key = pubkey, name = j.name, jwt = j.source, signature = j.verified == true and "ok"
    or j.verified == false and "BAD" or "not checked", why = j.why, expired = j.expired or nil,
    jetstream = M.jetstream_enabled(j) }
end

-- plan(m, info, accounts, problem, note) -> the operator part of
-- recovery.conf ({jwt, system_account, accounts = {{pub, name, jwt}}}) or
-- nil when something is missing (each named through problem(path, msg)).
-- Every account prepare keeps must have its JWT, as must the system
-- account (the server resolves it when it starts), and the operator's JWT
-- must be there to trust them: nothing is made up.
function M.plan(m, info, accounts, problem, note)
  local sd = m.store.store_dir
  local where = #info.looked > 0 and ("looked in " .. table.concat(info.looked, ", "))
    or ("no resolver directory next to " .. m.store.js_dir)
  local hint = "give --resolver-dir D (the survivor's full resolver `dir`), --config F (its nats-server "
    .. "config, for resolver_preload and operator) or --operator-jwt F"
  for _, p in ipairs(info.problems) do problem(sd, "operator mode: " .. p) end
  local ok = #info.problems == 0
  local op = info.operator
  if not op then
    problem(sd, ("operator mode (accounts named by public key): the operator's JWT is not on the disk given (%s); %s")
      :format(where, hint))
    ok = false
  elseif not op.verified then
    problem(op.source, ("%s: the operator JWT's signature is bad: %s"):format(op.source, tostring(op.why)))
    ok = false
  end
  local out = { jwt = op and op.token, system_account = info.system_account, accounts = {} }
  local want = {}
  local nstreams = {}
  for _, a in ipairs(m.accounts) do nstreams[a.name] = #a.streams end
  for _, a in ipairs(accounts) do
    -- an account without streams loses nothing without its JWT
    if (nstreams[a.name] or 0) == 0 and not info.accounts[a.name] then
      note(("%s/%s: no JWT of this account, which has no streams: left out of %s")
        :format(layout.js_dir(sd), a.name, layout.CONFIG))
    else
      want[#want + 1] = a.name
    end
  end
  if info.system_account then want[#want + 1] = info.system_account
  else
    problem(sd, "operator mode: no system account public key (neither the operator JWT nor --config names one)")
    ok = false
  end
  local seen = {}
  for _, pub in ipairs(want) do
    if not seen[pub] then
      seen[pub] = true
      local j = info.accounts[pub]
      if not M.is_account_key(pub) then
        problem(layout.js_dir(sd) .. "/" .. pub, ("operator mode: the account directory %s is not an account public key: "
          .. "a server in operator mode cannot serve it"):format(pub))
        ok = false
      elseif not j then
        problem(layout.js_dir(sd) .. "/" .. pub, ("operator mode: no JWT of account %s%s on the disk given (%s); %s")
          :format(pub, pub == info.system_account and " (the system account)" or "", where, hint))
        ok = false
      elseif op and j.verified ~= true then
        problem(j.source, ("%s: the JWT of account %s (%s) cannot be trusted: %s"):format(j.source, pub,
          tostring(j.name), tostring(j.why)))
        ok = false
      else
        if j.expired then note(("%s: the JWT of account %s (%s) has expired: the server will not let its users in")
          :format(j.source, pub, tostring(j.name))) end
        if pub ~= info.system_account and not M.jetstream_enabled(j) then
          note(("%s: the JWT of account %s (%s) does not enable JetStream: the server will not load its streams")
            :format(j.source, pub, tostring(j.name)))
        elseif pub ~= info.system_account and not M.covers_r1(j) then
          note(("%s: the JWT of account %s (%s) has JetStream limits only for tiers other than R1: a server "
            .. "refuses the R1 streams prepare makes; re-issue the JWT with R1 (or global) limits")
            :format(j.source, pub, tostring(j.name)))
        end
        out.accounts[#out.accounts + 1] = { pub = pub, name = j.name, jwt = j.token, source = j.source }
      end
    end
  end
  return ok and out or nil
end

-- The command-line options that point at JWTs (inspect and prepare).
M.options = { ["resolver-dir"] = "string", ["operator-jwt"] = "string", config = "string" }
function M.with(spec)
  for k, v in pairs(M.options) do spec[k] = v end
  return spec
end
function M.from_opts(opts)
  return { resolver_dir = opts["resolver-dir"], operator_jwt = opts["operator-jwt"], config = opts.config }
end

-- Lines for a person: the operator, then each account with its name, where
-- its JWT is and whether its signature was checked.
function M.lines(info, m)
  local out = {}
  if not info.mode then return out end
  local op = info.operator
  out[#out + 1] = op and ("Operator mode: operator %s (%s), JWT %s, signature %s"):format(tostring(op.claims.name),
      op.claims.sub, op.source, op.verified and "ok" or ("BAD: " .. tostring(op.why)))
    or "Operator mode: no operator JWT found (account signatures not checked; give --operator-jwt F or --config F)"
  for _, a in ipairs(m.accounts) do
    local d = M.describe(info, a.name)
    local role = a.name == info.system_account and " (system account)" or ""
    if d.jwt then
      out[#out + 1] = ("  %s %s%s: JWT %s, signature %s%s%s"):format(a.name, tostring(d.name), role, d.jwt,
        d.signature, d.why and (" (" .. d.why .. ")") or "", d.expired and ", EXPIRED" or "")
    else
      out[#out + 1] = ("  %s%s: no JWT found (looked in %s)"):format(a.name, role,
        #info.looked > 0 and table.concat(info.looked, ", ") or "the store_dir's subdirectories")
    end
  end
  for _, p in ipairs(info.problems) do out[#out + 1] = "  " .. p end
  for _, n in ipairs(info.notes) do out[#out + 1] = "  " .. n end
  return out
end

function M.json(info)
  if not info.mode then return nil end
  local o = json.object()
  o.operator = info.operator and { name = info.operator.claims.name, public_key = info.operator.claims.sub,
    jwt = info.operator.source, signature = info.operator.verified and "ok" or "BAD" } or json.null
  o.system_account = info.system_account or json.null
  o.looked_in = json.array(info.looked)
  o.problems = json.array(info.problems)
  return o
end

return M
