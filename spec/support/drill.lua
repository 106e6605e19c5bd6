--- The quorum-loss drill: a real 3-node cluster loaded with a workload,
-- recorded, two nodes killed, the survivor stopped or killed, its store
-- copied and recovered with js-recover, a standalone server started on the
-- result, and everything it serves compared with what the cluster served.
--
--   local drill = require "spec.support.drill"
--   local r = drill.variant{ role = "follower", signal = "KILL", scale = 0.2 }
--   print(drill.scorecard_text(r))      -- r.score == 100 when exact
--
--   local m = drill.load_run{ signal = "KILL" }   -- one under-load measurement
--
-- Every server is stopped (by PID) before a function returns or raises.
local jsr = require "jsr"
local json = jsr.json
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local rejects = require "spec.support.rejects"
local raft = require "jsr.raft"
local blocks = require "jsr.blocks"

local M = {}

M.BIN = os.getenv("JSR_BIN") or "build/js-recover"
local q = cluster.quote
local sleep, now = cluster.sleep, cluster.now

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if not ok then error(("command failed (%s %s): %s"):format(tostring(how), tostring(code), cmd), 2) end
end

local function js_recover(...)
  local argv = { M.BIN }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return cluster.run(argv)
end

local function log(opts, fmt, ...)
  if opts.verbose then io.stderr:write(("[drill %s] " .. fmt .. "\n"):format(opts.name or "", ...)) end
end

local function keys_sorted(t)
  local k = {}
  for x in pairs(t or {}) do k[#k + 1] = x end
  table.sort(k)
  return k
end

local function is_null(v) return v == nil or v == json.null end

-- -------------------------------------------------------------- comparing

-- Leaves of a decoded JSON value as path -> encoded text; paths in
-- `atomic` (e.g. placement) are one leaf, whatever is inside.
local ATOMIC = { placement = true }
local function flatten(v, prefix, out)
  out = out or {}
  if type(v) == "table" and getmetatable(v) ~= getmetatable(json.number("0")) and not ATOMIC[prefix] then
    local ks = json.keys(v)
    if #ks == 0 and #v > 0 then for i = 1, #v do ks[i] = i end end
    if #ks == 0 then out[prefix] = json.encode(v) end
    for _, k in ipairs(ks) do flatten(v[k], prefix == "" and tostring(k) or (prefix .. "." .. tostring(k)), out) end
  else
    out[prefix] = json.encode(v)
  end
  return out
end

-- What the default policy changes on purpose, and what it must change it to.
-- Returns nil (not a policy field), or true/false (the recovered value is
-- the one the policy intends).
-- deletion by time, suspended: the field gone or zero / false
local function suspended(before, after, off)
  if before == nil or before == off then return nil end
  return after == nil or after == off
end
local STREAM_TIME = { max_age = "0", subject_delete_marker_ttl = "0", allow_msg_ttl = "false",
  allow_msg_schedules = "false", ["consumer_limits.inactive_threshold"] = "0" }

local function stream_policy_field(path, before, after)
  if path == "num_replicas" then return after == "1" end
  if STREAM_TIME[path] then return suspended(before, after, STREAM_TIME[path]) end
  if path == "placement" or path:match("^placement%.") then return after == nil end
  if path == "retention" then
    if before == '"interest"' or before == '"workqueue"' then return after == '"limits"' end
    return nil
  end
  return nil
end

local function consumer_policy_field(path, before, after, stream_replicas)
  if path == "inactive_threshold" then return suspended(before, after, "0") end
  if path ~= "num_replicas" then return nil end
  local b = math.tointeger(tonumber(before or "0")) or 0
  if b > stream_replicas then return after == "0" end
  return nil
end

local function is_durable(info)
  local cfg = info and info.config
  return type(cfg) == "table" and type(cfg.durable_name) == "string" and cfg.durable_name ~= ""
end

local STREAM_STATE = { "messages", "bytes", "first_seq", "last_seq", "num_deleted", "num_subjects" }
local CONSUMER_STATE = {
  { "delivered", "consumer_seq" }, { "delivered", "stream_seq" },
  { "ack_floor", "consumer_seq" }, { "ack_floor", "stream_seq" },
  { "num_ack_pending" }, { "num_redelivered" }, { "num_pending" },
}

local function dig(t, path)
  for _, k in ipairs(path) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

--- compare(before, after, lost) -> card
-- before/after: { [account] = jsload dump }; lost: the `lost` section of
-- `js-recover inspect --json` on the survivor's store.
function M.compare(before, after, lost)
  local card = {
    streams = { total = 0, served = 0, lost_reported = 0, missing = {} },
    messages = { total = 0, exact = 0, lost = 0, changed = 0, resurrected = 0, examples = {} },
    state = { total = 0, exact = 0, diffs = {} },
    consumers = { total = 0, served = 0, lost_reported = 0, ephemeral = 0, missing = {} },
    acks = { total = 0, exact = 0, diffs = {} },
    config = { fields = 0, preserved = 0, on_purpose = 0, changed = {}, on_purpose_fields = {} },
    lost = { reported_streams = {}, reported_consumers = {}, wrongly_reported = {} },
  }
  local lost_streams, lost_consumers = {}, {}
  for _, s in ipairs(lost and lost.streams or {}) do
    lost_streams[s.account .. "\0" .. s.name] = s
    card.lost.reported_streams[#card.lost.reported_streams + 1] = s.account .. " > " .. s.name
  end
  for _, c in ipairs(lost and lost.consumers or {}) do
    lost_consumers[c.account .. "\0" .. c.stream .. "\0" .. c.name] = c
    card.lost.reported_consumers[#card.lost.reported_consumers + 1] = c.account .. " > " .. c.stream .. " > " .. c.name
  end
  local function example(kind, text)
    local ex = card.messages.examples
    if #ex < 10 then ex[#ex + 1] = kind .. " " .. text end
  end

  for _, acc in ipairs(keys_sorted(before)) do
    local bstreams = before[acc].streams
    local astreams = after[acc] and after[acc].streams or {}
    for _, sname in ipairs(keys_sorted(bstreams)) do
      local b, a = bstreams[sname], astreams[sname]
      local label = acc .. " > " .. sname
      card.streams.total = card.streams.total + 1
      local reported = lost_streams[acc .. "\0" .. sname]
      if reported then
        card.streams.lost_reported = card.streams.lost_reported + 1
        if a then card.lost.wrongly_reported[#card.lost.wrongly_reported + 1] = label .. " (served after recovery)" end
      elseif not a then
        card.streams.missing[#card.streams.missing + 1] = label
      end
      if a and not reported then
        card.streams.served = card.streams.served + 1
        -- messages, one by one
        local am = {}
        for _, m in ipairs(a.messages) do am[m[1]] = m end
        local seen = {}
        for _, m in ipairs(b.messages) do
          card.messages.total = card.messages.total + 1
          local x = am[m[1]]
          seen[m[1]] = true
          if not x then
            card.messages.lost = card.messages.lost + 1
            example("lost", ("%s #%d %s"):format(label, m[1], m[2]))
          elseif x[2] ~= m[2] or x[3] ~= m[3] or x[4] ~= m[4] then
            card.messages.changed = card.messages.changed + 1
            example("changed", ("%s #%d %s"):format(label, m[1], m[2]))
          else
            card.messages.exact = card.messages.exact + 1
          end
        end
        for _, m in ipairs(a.messages) do
          if not seen[m[1]] then
            card.messages.resurrected = card.messages.resurrected + 1
            example("resurrected", ("%s #%d %s"):format(label, m[1], m[2]))
          end
        end
        -- stream state
        for _, f in ipairs(STREAM_STATE) do
          card.state.total = card.state.total + 1
          local x, y = b.info.state[f], a.info.state[f]
          if json.encode(x) == json.encode(y) then card.state.exact = card.state.exact + 1
          else card.state.diffs[#card.state.diffs + 1] = ("%s %s %s -> %s"):format(label, f, json.encode(x), json.encode(y)) end
        end
        -- configuration, field by field.  Not the stream's "created": a
        -- cluster serves the meta leader's assignment time, a standalone
        -- server the survivor's own meta.inf time, a few ms later.
        local bf = flatten(b.info.config, "")
        local af = flatten(a.info.config, "")
        local paths = {}
        for p in pairs(bf) do paths[p] = true end
        for p in pairs(af) do paths[p] = true end
        for _, p in ipairs(keys_sorted(paths)) do
          card.config.fields = card.config.fields + 1
          local pol = stream_policy_field(p, bf[p], af[p])
          if bf[p] == af[p] then
            card.config.preserved = card.config.preserved + 1
          elseif pol == true then
            card.config.on_purpose = card.config.on_purpose + 1
            card.config.on_purpose_fields[p] = (card.config.on_purpose_fields[p] or 0) + 1
          else
            card.config.changed[#card.config.changed + 1] = ("%s %s: %s -> %s"):format(label, p,
              tostring(bf[p]), tostring(af[p]))
          end
        end
        local stream_replicas = math.tointeger(tonumber(af.num_replicas or "1")) or 1
        -- consumers
        for _, cname in ipairs(keys_sorted(b.consumers)) do
          local bc = b.consumers[cname]
          local ac = a.consumers[cname]
          local clabel = label .. " > " .. cname
          if not is_durable(bc) then
            card.consumers.ephemeral = card.consumers.ephemeral + 1
          else
            card.consumers.total = card.consumers.total + 1
            local creported = lost_consumers[acc .. "\0" .. sname .. "\0" .. cname]
            if creported then
              card.consumers.lost_reported = card.consumers.lost_reported + 1
              if ac then card.lost.wrongly_reported[#card.lost.wrongly_reported + 1] = clabel .. " (served after recovery)" end
            elseif not ac then
              card.consumers.missing[#card.consumers.missing + 1] = clabel
            else
              card.consumers.served = card.consumers.served + 1
              card.acks.total = card.acks.total + 1
              local diffs = {}
              for _, path in ipairs(CONSUMER_STATE) do
                local x, y = dig(bc, path), dig(ac, path)
                if json.encode(x) ~= json.encode(y) then
                  diffs[#diffs + 1] = ("%s %s -> %s"):format(table.concat(path, "."), json.encode(x), json.encode(y))
                end
              end
              if #diffs == 0 then card.acks.exact = card.acks.exact + 1
              else card.acks.diffs[#card.acks.diffs + 1] = clabel .. ": " .. table.concat(diffs, ", ") end
              local cbf, caf = flatten(bc.config, ""), flatten(ac.config, "")
              local cp = {}
              for p in pairs(cbf) do cp[p] = true end
              for p in pairs(caf) do cp[p] = true end
              for _, p in ipairs(keys_sorted(cp)) do
                card.config.fields = card.config.fields + 1
                if cbf[p] == caf[p] then
                  card.config.preserved = card.config.preserved + 1
                elseif consumer_policy_field(p, cbf[p], caf[p], stream_replicas) == true then
                  card.config.on_purpose = card.config.on_purpose + 1
                  local key = "consumer " .. p
                  card.config.on_purpose_fields[key] = (card.config.on_purpose_fields[key] or 0) + 1
                else
                  card.config.changed[#card.config.changed + 1] = ("%s %s: %s -> %s"):format(clabel, p,
                    tostring(cbf[p]), tostring(caf[p]))
                end
              end
            end
          end
        end
      end
    end
  end
  -- anything reported lost that the cluster never served is a wrong report too
  for key, s in pairs(lost_streams) do
    local acc, name = key:match("^(.-)%z(.*)$")
    if not (before[acc] and before[acc].streams[name]) then
      card.lost.wrongly_reported[#card.lost.wrongly_reported + 1] = s.account .. " > " .. s.name .. " (not served by the cluster)"
    end
  end

  local m = card.messages
  local exact = #card.streams.missing == 0 and m.lost == 0 and m.changed == 0 and m.resurrected == 0
    and #card.consumers.missing == 0 and card.acks.exact == card.acks.total
    and card.state.exact == card.state.total and #card.config.changed == 0
    and #card.lost.wrongly_reported == 0
  local function pct(a, b) return b == 0 and 100 or (100 * a / b) end
  -- one figure: the worst of the parts (every part must be perfect for 100)
  card.score = math.min(
    pct(card.streams.served, card.streams.total - card.streams.lost_reported),
    pct(m.exact, m.total + m.resurrected),
    pct(card.state.exact, card.state.total),
    pct(card.consumers.served, card.consumers.total - card.consumers.lost_reported),
    pct(card.acks.exact, card.acks.total),
    pct(card.config.preserved + card.config.on_purpose, card.config.fields),
    #card.lost.wrongly_reported == 0 and 100 or 0)
  card.exact = exact
  return card
end

local function pct_text(a, b)
  if b == 0 then return "100%" end
  return ("%.2f%%"):format(100 * a / b):gsub("%.00%%", "%%")
end

--- The scorecard as text.
function M.scorecard_text(r)
  local c = r.card
  local m = c.messages
  local lines = {}
  local function add(fmt, ...) lines[#lines + 1] = fmt:format(...) end
  add("Variant %s: survivor %s (%s of the meta group), two nodes SIGKILLed, survivor %s",
    r.name, r.survivor, r.role_seen, r.survivor_stop)
  if r.cipher then
    add("  encrypted      cipher %s: %d/%d streams encrypted on the survivor; recovery.conf cipher %s, key from $JSR_KEY",
      r.cipher, r.encrypted_streams[1], r.encrypted_streams[2], tostring(r.conf_cipher))
  end
  add("  streams        %d/%d served%s", c.streams.served, c.streams.total - c.streams.lost_reported,
    c.streams.lost_reported > 0 and (" (+%d on a dead node, reported lost by js-recover: %s)")
      :format(c.streams.lost_reported, table.concat(c.lost.reported_streams, ", ")) or "")
  add("  messages       %d/%d exact (%s): lost or changed %d, resurrected %d", m.exact, m.total,
    pct_text(m.exact, m.total + m.resurrected), m.lost + m.changed, m.resurrected)
  add("  stream state   %d/%d fields equal (messages, bytes, first/last seq, deleted, subjects)",
    c.state.exact, c.state.total)
  add("  consumers      %d/%d served%s%s", c.consumers.served, c.consumers.total - c.consumers.lost_reported,
    c.consumers.lost_reported > 0 and (" (+%d on a dead node, reported lost: %s)")
      :format(c.consumers.lost_reported, table.concat(c.lost.reported_consumers, ", ")) or "",
    c.consumers.ephemeral > 0 and (", %d ephemeral not compared"):format(c.consumers.ephemeral) or "")
  add("  ack floors     %d/%d consumers exact (ack floor, delivered, ack pending, redelivered, pending)",
    c.acks.exact, c.acks.total)
  local purpose = {}
  for _, k in ipairs(keys_sorted(c.config.on_purpose_fields)) do
    purpose[#purpose + 1] = ("%s x%d"):format(k, c.config.on_purpose_fields[k])
  end
  add("  config fields  %d/%d preserved, %d changed on purpose by the policy (%s), %d changed otherwise",
    c.config.preserved, c.config.fields - c.config.on_purpose, c.config.on_purpose,
    table.concat(purpose, ", "), #c.config.changed)
  add("  acked jobs     %d acked work-queue messages still on disk reported by js-recover (%d resurrected)%s",
    c.done_reported or 0, m.resurrected, (c.done_unread or 0) > 0
      and (("; %d work-queue consumer(s) not looked at: o.dat encrypted, not read"):format(c.done_unread)) or "")
  add("  score          %s%s", pct_text(c.score, 100), c.exact and "" or "  NOT EXACT")
  for _, x in ipairs(c.streams.missing) do add("    missing stream %s", x) end
  for _, x in ipairs(c.consumers.missing) do add("    missing consumer %s", x) end
  for _, x in ipairs(m.examples) do add("    %s", x) end
  for _, x in ipairs(c.state.diffs) do add("    state %s", x) end
  for i, x in ipairs(c.acks.diffs) do if i <= 10 then add("    consumer %s", x) end end
  for i, x in ipairs(c.config.changed) do if i <= 10 then add("    config %s", x) end end
  for _, x in ipairs(c.lost.wrongly_reported) do add("    wrongly reported lost: %s", x) end
  return table.concat(lines, "\n")
end

-- -------------------------------------------------------------- recovery

-- Recovers a copy of the survivor's store and dumps what a standalone
-- server serves from it.  Returns {dump = {[acc] = ...}, inspect = ...,
-- prepare_out = ..., copy = dir, log = server log}.
local function recover(opts, store, dir)
  local copy = dir .. "/recovered"
  sh(("cp -a %s %s"):format(q(store), q(copy)))
  local out = {}
  -- an encrypted store: the key in a file (mode 0600), never on a command line
  local keyarg = {}
  if opts.key then
    local kf = dir .. "/js.key"
    local f = assert(io.open(kf, "wb"))
    f:close()
    sh("chmod 600 " .. q(kf))
    cluster.write_file(kf, opts.key .. "\n")
    keyarg = { "--key-file", kf }
  end
  local code, iout, ierr = js_recover("inspect", copy, "--json", table.unpack(keyarg))
  if code ~= 0 then error(("js-recover inspect exited %s: %s%s"):format(tostring(code), ierr, iout), 0) end
  out.inspect = assert(json.decode(iout))
  -- opts.prepare_args: more for prepare (--config F, --domain X)
  for _, x in ipairs(opts.prepare_args or {}) do keyarg[#keyarg + 1] = x end
  local pcode, pout, perr = js_recover("prepare", copy, table.unpack(keyarg))
  if pcode ~= 0 then error(("js-recover prepare exited %s: %s%s"):format(tostring(pcode), perr, pout), 0) end
  out.prepare_out = pout
  log(opts, "prepared %s", copy)
  local report = assert(json.decode(cluster.read_file(copy .. "/recovery-report.json")))
  out.conf = cluster.read_file(copy .. "/recovery.conf")
  local srv = ns.start { config = copy .. "/recovery.conf", log_path = dir .. "/standalone.log", timeout = 60,
                         env = opts.key and { JSR_KEY = opts.key } or nil, bin = opts.bin }
  local ok, err = pcall(function()
    -- give mirrors and sources time to reconnect and do whatever they would
    -- (a source that re-imports shows up as resurrected messages)
    sleep(opts.standalone_wait or 2)
    out.dump = {}
    for _, a in ipairs(report.accounts) do
      local creds = a.user and { user = a.user, password = a.password } or nil
      if creds then
        out.dump[a.original_name or a.name] = cluster.jsload(srv.url, creds, "dump", "--timeout-ms", "10000")
      end
    end
    if opts.after then opts.after(srv, out, report) end
  end)
  srv:stop()
  out.log = srv:log()
  if not ok then error(err, 0) end
  out.copy = copy
  return out
end
M.recover = recover -- spec/supercluster_spec.lua recovers each of its survivors

-- -------------------------------------------------------------- a variant

--- variant(opts) -> result
-- opts.role "leader" | "follower": the survivor's place in the meta group
-- opts.signal "TERM" | "KILL": how the survivor is stopped
-- opts.scale (workload size, default 1), opts.survivor (node index, default 2)
-- opts.lost_r1 (default true): put an R1 stream and consumer on a node that dies
-- opts.key, opts.cipher ("chacha" | "aes"): the cluster's stores encrypted
--   (jetstream { key, cipher }); prepare gets the key in a file, the
--   standalone server in JSR_KEY
-- opts.bin: the nats-server of the cluster and of the standalone server
--   (spec/support/servers.lua; default Debian's 2.9.10)
-- opts.rejects: also the streams of spec/support/rejects.lua, with a
--   publish of every kind the server refuses, and deletes and purges
--   right before the crash (natscli needed)
-- opts.keep (keep the directory), opts.verbose, opts.name
function M.variant(opts)
  opts.name = opts.name or (opts.role .. "-" .. opts.signal)
  if opts.cipher and not opts.key then opts.key = "drill-" .. jsr.random_hex(16) end
  local dir = ns.tmpdir()
  local t0 = now()
  local result = { name = opts.name, dir = dir, timings = {} }
  local function mark(what) result.timings[#result.timings + 1] = ("%s %.1fs"):format(what, now() - t0) end
  local c
  local ok, err = pcall(function()
    c = cluster.start { dir = dir, key = opts.key, cipher = opts.cipher, bin = opts.bin }
    mark("cluster up")
    local si = opts.survivor or 2
    local s = c.nodes[si]
    local dead = {}
    for i = 1, #c.nodes do if i ~= si then dead[#dead + 1] = i end end
    local lost_node = c.nodes[dead[1]]
    result.survivor = s.name
    local urls = c:urls(si)
    local acme = { "--account", "ACME", "--scale", tostring(opts.scale or 1), "--pin-tag", s.tag,
                   "--pin-server", s.name, "--timeout-ms", "10000" }
    if opts.lost_r1 ~= false then
      for _, a in ipairs { "--lost-tag", lost_node.tag, "--lost-server", lost_node.name } do acme[#acme + 1] = a end
    end
    result.setup = { ACME = cluster.jsload(urls, "ACME", "setup", table.unpack(acme)),
                     BETA = cluster.jsload(urls, "BETA", "setup", "--account", "BETA", "--scale",
                       tostring(opts.scale or 1), "--timeout-ms", "10000") }
    mark("workload loaded")
    -- publishes the cluster refuses, of every kind (spec/support/rejects.lua)
    local rj
    if opts.rejects then
      result.rejects_log = {}
      rj = rejects.new(urls, cluster.USERS.ACME, function(l) result.rejects_log[#result.rejects_log + 1] = l end)
      rj:publishes()
      mark("refused publishes")
    end
    local meta = c:arrange_meta(si, opts.role == "leader")
    result.role_seen = meta.leader == s.name and "leader" or "follower"
    for _, acc in ipairs { "ACME", "BETA" } do cluster.jsload(urls, acc, "settle", "--wait-ms", "60000") end
    -- followers apply what they stored a moment after they report current;
    -- consumer state (o.dat) is flushed at most every 100 ms
    sleep(1.5)
    for _, acc in ipairs { "ACME", "BETA" } do cluster.jsload(urls, acc, "settle", "--wait-ms", "60000") end
    mark("settled")
    if rj then
      -- deletes and purges right before the crash: the survivor's store
      -- may lack them (2.9.10 writes deletes lazily), its log has them
      rj:removals()
      rj:acks()
      for _, acc in ipairs { "ACME" } do cluster.jsload(urls, acc, "settle", "--wait-ms", "60000") end
    end
    result.before = {}
    for _, acc in ipairs { "ACME", "BETA" } do
      result.before[acc] = cluster.jsload(urls, acc, "dump", "--timeout-ms", "10000")
    end
    mark("recorded")
    -- refused, it changes nothing recorded; on 2.15.3 its group is left
    -- without a leader, so nothing follows it
    if rj then rj:last() end
    local meta2 = c:meta(si)
    result.role_seen = (meta2 and meta2.leader == s.name) and "leader" or "follower"
    -- the disaster: two nodes at once, then the survivor
    for _, i in ipairs(dead) do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
    for _, i in ipairs(dead) do c:kill(i, "KILL") end
    sleep(opts.alone or 1)
    result.survivor_stop = "SIG" .. c:kill(si, opts.signal, 20)
    mark("killed")
    result.recovered = recover(opts, s.store_dir, dir)
    mark("recovered")
    if opts.key then
      -- the survivor's stores really were encrypted, and the standalone
      -- server was told the cipher
      result.cipher = opts.cipher or "chacha"
      local n, enc = 0, 0
      for _, st in ipairs(result.recovered.inspect.streams or {}) do
        n = n + 1
        if st.encrypted then enc = enc + 1 end
      end
      result.encrypted_streams = { enc, n }
      result.conf_cipher = (result.recovered.conf or ""):match("\n%s*cipher:%s*(%w+)")
    end
    result.card = M.compare(result.before, result.recovered.dump, result.recovered.inspect.lost)
    -- acked work-queue jobs js-recover finds still on disk (none when quiet)
    result.card.done_reported = 0
    for _, d in ipairs(result.recovered.inspect.lost.done or {}) do
      result.card.done_reported = result.card.done_reported + d.messages
    end
    result.card.done_unread = 0
    for _, p in ipairs(result.recovered.inspect.lost.problems or {}) do
      if p:find("o.dat encrypted, not read", 1, true) then result.card.done_unread = result.card.done_unread + 1 end
    end
    result.score = result.card.score
    mark("compared")
  end)
  if c then c:stop_all() end
  if not ok then
    result.error = tostring(err) .. " (servers' logs and stores kept in " .. dir .. ")"
    result.score = 0
  end
  if not opts.keep and ok then ns.rmtree(dir) end
  return result
end

-- -------------------------------------------------------------- under load

local function parse_records(path)
  local pubs, acks = {}, {}
  for line in (cluster.read_file(path) or ""):gmatch("[^\n]+") do
    local stream, seq, id = line:match("^P (%S+) (%d+) (%S+)$")
    if stream then
      pubs[#pubs + 1] = { stream = stream, seq = math.tointeger(tonumber(seq)), id = id }
    else
      local s2, cons, sseq, dseq = line:match("^A (%S+) (%S+) (%d+) (%d+)$")
      if s2 then
        acks[#acks + 1] = { stream = s2, consumer = cons, sseq = math.tointeger(tonumber(sseq)),
                            dseq = math.tointeger(tonumber(dseq)) }
      end
    end
  end
  return pubs, acks
end

local function payload_id(payload)
  return payload:match("^([%w_%.]+#%d+)|")
end

-- What the survivor's disk holds of each stream and consumer: ids in the
-- stream store, ids only in the stream's Raft log, acks in o.dat and in the
-- consumer's Raft log/snapshot.
local function disk_view(store)
  local js = store .. "/jetstream"
  local view = { store = {}, log = {}, odat = {}, cons_log = {}, problems = {} }
  local acc_dir = js .. "/ACME"
  for _, sname in ipairs { "LOAD", "LOADQ" } do
    local ids = {}
    blocks.scan({ name = sname, path = acc_dir .. "/streams/" .. sname, account = "ACME" }, {
      records = function(rec)
        if not rec.deleted then
          local id = payload_id(rec.payload)
          if id then ids[id] = rec.seq end
        end
      end,
    })
    view.store[sname] = ids
    for _, cname in ipairs(jsr.listdir(acc_dir .. "/streams/" .. sname .. "/obs") or {}) do
      local b = cluster.read_file(acc_dir .. "/streams/" .. sname .. "/obs/" .. cname .. "/o.dat")
      view.odat[sname .. "/" .. cname] = b and raft.consumer_state(b) or nil
    end
  end
  -- the Raft groups: which group is which stream or consumer, from the meta state
  local sys
  for _, name in ipairs(jsr.listdir(js) or {}) do
    if jsr.lstat(js .. "/" .. name .. "/_js_/_meta_") then sys = js .. "/" .. name .. "/_js_" end
  end
  if not sys then return view end
  local st = raft.meta_state(sys .. "/_meta_")
  for _, s in pairs(st.streams) do
    if s.account == "ACME" and (s.name == "LOAD" or s.name == "LOADQ") then
      local ids = {}
      local gdir = sys .. "/" .. s.group.name
      raft.log(gdir, function(index, ae)
        for _, e in ipairs(ae.entries) do
          if e.type == raft.NORMAL and (e.data:byte(1) == 4 or e.data:byte(1) == 14) then
            local msg, merr = raft.stream_msg(e.data)
            if msg then
              local id = payload_id(msg.payload)
              if id then ids[id] = index end
            else
              view.problems[#view.problems + 1] = gdir .. " entry " .. index .. ": " .. merr
            end
          end
        end
      end)
      view.log[s.name] = ids
      for cname, c in pairs(s.consumers) do
        local acked, delivered = {}, {}
        local cdir = sys .. "/" .. c.group.name
        raft.log(cdir, function(_, ae)
          for _, e in ipairs(ae.entries) do
            if e.type == raft.NORMAL then
              local u = raft.consumer_update(e.data)
              if u and u.op == raft.op.update_acks then acked[u.sseq] = true end
              if u and u.op == raft.op.update_delivered then delivered[u.sseq] = true end
            end
          end
        end)
        local snap = raft.latest_snapshot(cdir)
        view.cons_log[s.name .. "/" .. cname] = { acked = acked, delivered = delivered,
          snapshot = snap and raft.consumer_state(snap.data) or nil }
      end
    end
  end
  return view
end

local function state_acked(st, sseq)
  if not st then return false end
  if sseq <= st.ack_floor.stream then return true end
  return sseq <= st.delivered.stream and st.pending[sseq] == nil
end

--- load_run(opts) -> measurement
-- Publishers and consumers run against a 3-node cluster while two nodes
-- are SIGKILLed and then the survivor (opts.signal, default KILL); then
-- every acknowledged message and confirmed ack is looked for on the
-- survivor's disk and in what js-recover recovers.
-- opts.duration (s, default 6), opts.kill_at (s, default 2.5),
-- opts.alone (s the survivor runs alone, default 1), opts.survivor_role
function M.load_run(opts)
  opts = opts or {}
  local dir = ns.tmpdir()
  local r = { dir = dir }
  local c
  local ok, err = pcall(function()
    c = cluster.start { dir = dir }
    local si = opts.survivor or 2
    local s = c.nodes[si]
    local urls = c:urls(si)
    cluster.jsload(urls, "ACME", "setup", "--account", "ACME", "--workload", "traffic", "--timeout-ms", "10000")
    cluster.jsload(urls, "ACME", "settle", "--wait-ms", "30000")
    if opts.survivor_role then c:arrange_meta(si, opts.survivor_role == "leader") end
    -- stream leaders: where they are decides what the survivor has
    local records = dir .. "/records.txt"
    local creds = cluster.USERS.ACME
    local argv = { cluster.JSLOAD, "--url", table.concat(urls, ","), "--user", creds.user, "--password",
      creds.password, "--timeout-ms", "1000", "traffic", "--duration-ms", tostring(math.floor((opts.duration or 6) * 1000)),
      "--out", records, "--pub", "LOAD:load.a", "--pub", "LOAD:load.b", "--pub", "LOADQ:loadq.x",
      "--sub", "LOAD:reader", "--sub", "LOADQ:worker" }
    local parts = {}
    for i, a in ipairs(argv) do parts[i] = q(a) end
    local errf = dir .. "/traffic.err"
    local h = assert(io.popen(table.concat(parts, " ") .. " 2>" .. q(errf)))
    sleep(opts.kill_at or 2.5)
    local dead = {}
    for i = 1, #c.nodes do if i ~= si then dead[#dead + 1] = i end end
    for _, i in ipairs(dead) do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
    for _, i in ipairs(dead) do c:kill(i, "KILL") end
    sleep(opts.alone or 1)
    r.survivor_stop = "SIG" .. c:kill(si, opts.signal or "KILL", 20)
    local out = h:read("a")
    h:close()
    r.traffic = json.decode(out) or { error = out .. (cluster.read_file(errf) or "") }
    local pubs, acks = parse_records(records)
    local view = disk_view(s.store_dir)
    r.problems = view.problems
    -- prepare removes done work itself (policy hook done_work): what the
    -- standalone server serves is the "after" of the old purge advice
    local rec = recover({ name = "load" }, s.store_dir, dir)
    rec.dump_after = rec.dump.ACME
    local served = {}
    local dump = rec.dump.ACME
    for sname, sd in pairs(dump and dump.streams or {}) do
      local ids = {}
      for _, m in ipairs(sd.messages) do if m[6] then ids[m[6]] = m[1] end end
      served[sname] = { ids = ids, consumers = sd.consumers }
    end
    -- messages: LOAD (limits) for durability; LOADQ pubs acked by the worker are meant to be gone
    local wq_acked = {}
    for _, a in ipairs(acks) do if a.stream == "LOADQ" then wq_acked[a.sseq] = a end end
    local m = { acked = 0, in_store = 0, log_only = 0, absent = 0, recovered = 0, recovered_elsewhere = 0 }
    -- a resurrected job: its ack is in o.dat (the stream's delete was not
    -- on disk yet), only in the consumer's Raft state, or nowhere
    local wq = { acked_jobs = 0, resurrected = 0, ack_in_odat = 0, ack_raft_only = 0, ack_absent = 0,
                 reported = 0, resurrected_after = 0, lost_by_purge = 0 }
    for _, d in ipairs(rec.inspect.lost.done or {}) do
      if d.stream == "LOADQ" then wq.reported = wq.reported + d.messages end
    end
    local after_ids = {}
    local ad = rec.dump_after and rec.dump_after.streams.LOADQ
    for _, msg in ipairs(ad and ad.messages or {}) do if msg[6] then after_ids[msg[6]] = msg[1] end end
    for _, p in ipairs(pubs) do
      if p.stream == "LOAD" or (p.stream == "LOADQ" and not wq_acked[p.seq]) then
        m.acked = m.acked + 1
        local sseq = view.store[p.stream][p.id]
        if sseq then m.in_store = m.in_store + 1
        elseif view.log[p.stream] and view.log[p.stream][p.id] then m.log_only = m.log_only + 1
        else m.absent = m.absent + 1 end
        local got = served[p.stream] and served[p.stream].ids[p.id]
        if got == p.seq then m.recovered = m.recovered + 1
        elseif got then m.recovered_elsewhere = m.recovered_elsewhere + 1 end
        -- following the advice must not remove a job that was not done
        if p.stream == "LOADQ" and got and not after_ids[p.id] then wq.lost_by_purge = wq.lost_by_purge + 1 end
      else
        wq.acked_jobs = wq.acked_jobs + 1
        if served.LOADQ and served.LOADQ.ids[p.id] then
          wq.resurrected = wq.resurrected + 1
          local cl = view.cons_log["LOADQ/worker"]
          if state_acked(view.odat["LOADQ/worker"], p.seq) then wq.ack_in_odat = wq.ack_in_odat + 1
          elseif cl and (cl.acked[p.seq] or state_acked(cl.snapshot, p.seq)) then wq.ack_raft_only = wq.ack_raft_only + 1
          else wq.ack_absent = wq.ack_absent + 1 end
        end
        if after_ids[p.id] then wq.resurrected_after = wq.resurrected_after + 1 end
      end
    end
    local a = { confirmed = #acks, in_odat = 0, raft_only = 0, absent = 0, recovered = 0 }
    for _, x in ipairs(acks) do
      local key = x.stream .. "/" .. x.consumer
      local cl = view.cons_log[key]
      if state_acked(view.odat[key], x.sseq) then a.in_odat = a.in_odat + 1
      elseif cl and (cl.acked[x.sseq] or state_acked(cl.snapshot, x.sseq)) then a.raft_only = a.raft_only + 1
      else a.absent = a.absent + 1 end
      local sc = served[x.stream] and served[x.stream].consumers[x.consumer]
      if sc and x.sseq <= sc.ack_floor.stream_seq then a.recovered = a.recovered + 1 end
    end
    r.messages, r.acks, r.workqueue = m, a, wq
    r.lost = rec.inspect.lost
  end)
  if c then c:stop_all() end
  if not ok then r.error = tostring(err) .. " (kept in " .. dir .. ")" end
  if ok and not opts.keep then ns.rmtree(dir) end
  return r
end

return M
