-- Bench helper (not a policy): writes a synthetic JetStream store of the
-- surviving node of an R3 cluster, at scale, for `make bench`.
--
-- usage: lua5.4 scripts/gen-bench-store.lua <out_dir> [--streams N] [--accounts N]
--          [--consumers N] [--block-kb K] [--msg-bytes B]
--          [--fixture survivor-2.9.10.tar.gz|dir] [--build DIR]
--
-- Layout and formats as a 2.9.10 server writes them (docs/FORMAT.md, "Store layout"):
--   jetstream/ACC<a>/streams/S<n>/meta.inf, meta.sum       compact JSON, field order
--                                 msgs/1.blk, 1.idx, 1.fss  --block-kb of records
--                                 obs/C<k>/meta.inf, meta.sum, o.dat
--   jetstream/$SYS/_js_/_meta_                              snapshot: every assignment
--                       S-R3F-<id>  one per stream          snapshot + log tail
--                       C-R3F-<id>  one per consumer        snapshot + log tail
--
-- Everything a reader checks is consistent, so a tool that reads the whole
-- store sees a healthy one: every record carries its own HighwayHash (keyed
-- "S<n>-1", or "<group>-1" in Raft logs), 1.idx matches its block, each
-- meta.sum and snapshot checksum is right, the meta group's snapshot (S2,
-- literal-only) assigns every stream and consumer to its group, a stream
-- group's log ends at the store's last message (nothing to salvage) and a
-- consumer group's log at its o.dat (acked half the stream; work-queue
-- consumers: nothing acked, empty log).  Copied from the fixture: peers.idx,
-- tav.idx, the peer state in snapshots, 1.fss, the meta group's log.
--
-- Retention: every 10th stream interest, the next workqueue (consumers with
-- distinct filter subjects), the rest limits.  Consumer C1 has num_replicas
-- 0 (as the stream), the others 3.  Prints one summary line.
local out_dir = arg[1]
local opts = { streams = 10000, accounts = 10, consumers = 2, ["block-kb"] = 64,
               ["msg-bytes"] = 1024, fixture = "../shared/fixtures/survivor-2.9.10.tar.gz",
               build = "build" }
local usage = "usage: lua5.4 scripts/gen-bench-store.lua <out_dir> [--streams N] [--accounts N] "
  .. "[--consumers N] [--block-kb K] [--msg-bytes B] [--fixture tar.gz|dir] [--build DIR]\n"
if not out_dir or out_dir:match("^%-%-") then
  io.stderr:write(usage)
  os.exit(2)
end
local i = 2
while i <= #arg do
  local k = arg[i]:match("^%-%-(.+)$")
  if not k or opts[k] == nil or arg[i + 1] == nil then
    io.stderr:write("gen-bench-store: bad argument ", arg[i], "\n", usage)
    os.exit(2)
  end
  opts[k] = (k == "fixture" or k == "build") and arg[i + 1] or tonumber(arg[i + 1])
  if opts[k] == nil then
    io.stderr:write("gen-bench-store: --", k, " wants a number\n")
    os.exit(2)
  end
  i = i + 2
end
assert(opts.streams >= 1 and opts.accounts >= 1 and opts.consumers >= 0, "counts must be positive")
assert(opts["msg-bytes"] >= 1 and opts["block-kb"] >= 1, "sizes must be positive")
package.cpath = opts.build .. "/?.so;" .. package.cpath
local jsr = require "jsr"

local function now()
  local p = io.popen("date +%s.%N")
  local s = tonumber(p:read("l"))
  p:close()
  return s
end
local wall0, clock0 = now(), os.clock()

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function run(cmd)
  if not os.execute(cmd) then error("command failed: " .. cmd, 0) end
end

-- ------------------------------------------------------------ the fixture
local fixdir, fixtmp = opts.fixture, nil
if opts.fixture:match("%.tar%.gz$") or opts.fixture:match("%.tgz$") then
  local p = io.popen("mktemp -d")
  fixtmp = p:read("l")
  p:close()
  run(("tar xzf %s -C %s"):format(sh_quote(opts.fixture), sh_quote(fixtmp)))
  fixdir = fixtmp
end
local function slurp(path)
  local f = io.open(path, "rb")
  if not f then error("cannot read fixture file " .. path, 0) end
  local s = f:read("a")
  f:close()
  return s
end
local function ls(dir)
  local p = io.popen("ls " .. sh_quote(dir))
  local out = {}
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end
local FSYS = fixdir .. "/jetstream/$SYS/_js_"
local function fixture_group(prefix)
  for _, name in ipairs(ls(FSYS)) do
    if name:sub(1, #prefix) == prefix then return FSYS .. "/" .. name end
  end
  error("fixture has no " .. prefix .. " group", 0)
end
-- a group's meta.inf (to rename), and the peer state its snapshot carries
local function group_template(dir)
  local snap = slurp(dir .. "/snapshots/" .. ls(dir .. "/snapshots")[1])
  local plen = string.unpack("<I4", snap, 17)
  return { meta_inf = slurp(dir .. "/meta.inf"), peer_state = snap:sub(21, 20 + plen) }
end
local S_TPL = group_template(fixture_group("S-R"))
local C_TPL = group_template(fixture_group("C-R"))
local M_TPL = group_template(FSYS .. "/_meta_")
local PEERS_IDX = slurp(FSYS .. "/_meta_/peers.idx")
local TAV_IDX = slurp(FSYS .. "/_meta_/tav.idx")
local META_LOG_BLK = slurp(FSYS .. "/_meta_/msgs/1.blk")
local META_LOG_IDX = slurp(FSYS .. "/_meta_/msgs/1.idx")
local FSS = slurp(fixdir .. "/jetstream/$G/streams/ORDERS/msgs/1.fss")
local LEADER = "fjFyEjc1" -- the fixture's node ids
local PEERS = '["BXScrY9i","44jzkV9D","fjFyEjc1"]'
if fixtmp then run("rm -rf " .. sh_quote(fixtmp)) end

-- ------------------------------------------------------------ encoders
local function uvarint(v)
  local t = {}
  while v >= 0x80 or v < 0 do
    t[#t + 1] = string.char((v & 0x7f) | 0x80)
    v = v >> 7 -- logical shift: fine for uint64
  end
  t[#t + 1] = string.char(v)
  return table.concat(t)
end
local function varint(v) return uvarint((v << 1) ~ (v >> 63 == 1 and -1 or 0)) end
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

-- One record as filestore.go writeMsgRecord writes it; the hash covers seq,
-- ts, subject and payload, keyed by SHA-256 of key ("STREAM-N").
local function record(key, seq, ts, subject, payload)
  local total = 22 + #subject + #payload + 8
  local hdr = string.pack("<I4I8i8I2", total, seq, ts, #subject)
  return hdr .. subject .. payload .. unhex(jsr.metasum(key, hdr:sub(5, 20) .. subject .. payload))
end

-- 1.idx (2.9): magic, version, msgs, bytes, first seq and ts, last seq and
-- ts, dmap length, last record's checksum.
local function index_file(msgs, bytes, first_seq, first_ts, last_seq, last_ts, last_hash)
  return "\22\1" .. uvarint(msgs) .. uvarint(bytes) .. uvarint(first_seq) .. varint(first_ts)
    .. uvarint(last_seq) .. varint(last_ts) .. uvarint(0) .. last_hash
end

-- snapshots/snap.<term>.<index>: term, index, peer state, data, checksum
-- keyed by the group name
local function snapshot(group, term, index, peer_state, data)
  local body = string.pack("<I8I8I4", term, index, #peer_state) .. peer_state .. data
  return body .. unhex(jsr.metasum(group, body))
end

-- An append entry holding one normal entry (raft.go encode, 2.9).
local function append_entry(term, commit, pindex, data)
  return LEADER .. string.pack("<I8I8I8I8I2", term, commit, term, pindex, 1)
    .. string.pack("<I4", 1 + #data) .. "\0" .. data
end

-- S2 (Snappy block format): length, then literals only
local function s2_literal(data)
  local out = { uvarint(#data) }
  for off = 1, #data, 65536 do
    local chunk = data:sub(off, off + 65535)
    local n = #chunk - 1
    if n < 60 then out[#out + 1] = string.char(n << 2)
    elseif n < 256 then out[#out + 1] = string.char(60 << 2, n)
    else out[#out + 1] = string.char(61 << 2) .. string.pack("<I2", n) end
    out[#out + 1] = chunk
  end
  return table.concat(out)
end

-- o.dat (version 2, nothing pending or redelivered)
local function consumer_state(floor)
  return "\22\2" .. uvarint(floor) .. uvarint(floor) .. uvarint(floor) .. uvarint(floor) .. "\0\0"
end

-- deterministic, random-looking ids, distinct (checked)
local ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local used_ids = {}
local id_seq = 0
local function new_id(len)
  while true do
    id_seq = id_seq + 1
    -- splitmix64 finaliser
    local z = id_seq * 0x1E3779B97F4A7C15
    z = (z ~ (z >> 30)) * -4658895280553007687 -- 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * -7723592293110705685 -- 0x94d049bb133111eb
    z = z ~ (z >> 31)
    local t = {}
    for j = 1, len do
      local d = z % 62
      t[j] = ALNUM:sub(d + 1, d + 1)
      z = z // 62
    end
    local id = table.concat(t)
    if not used_ids[id] then
      used_ids[id] = true
      return id
    end
  end
end

local function created(n)
  return ("2026-11-26T03:%02d:%02d.%09dZ"):format(22 + n // 60000 % 30, n // 1000 % 60,
    (n * 7919 * 104729) % 1000000000)
end

-- ------------------------------------------------------------ meta files
local function stream_json(n, name, subject)
  local r = n % 10
  local retention = r == 0 and "interest" or r == 1 and "workqueue" or "limits"
  local max_age = n % 3 == 0 and 604800000000000 or 0
  return ('{"Created":"%s","name":"%s","subjects":["%s.\\u003e"],"retention":"%s",'
    .. '"max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":%d,"max_msgs_per_subject":-1,'
    .. '"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":3,'
    .. '"duplicate_window":120000000000,"allow_direct":false,"mirror_direct":false,'
    .. '"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false}')
    :format(created(n), name, subject, retention, max_age), retention
end

-- Go's ConsumerConfig order: filter_subject sits between max_deliver and
-- replay_policy.  C1 inherits the stream's replicas (0); the others were
-- created with an explicit R3, as clients of a cluster often do.
local function consumer_json(n, k, cname, subject, workqueue)
  local replicas = k == 1 and 0 or 3
  local filter = workqueue and (',"filter_subject":"%s.%d"'):format(subject, k) or ""
  return ('{"Created":"%s","Name":"%s","durable_name":"%s","name":"%s","deliver_policy":"all",'
    .. '"ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1%s,'
    .. '"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":%d}')
    :format(created(n * 7 + k), cname, cname, cname, filter, replicas), replicas
end

local function group_meta(tpl, gname, n)
  local s = tpl.meta_inf:gsub('"Created":"[^"]*"', '"Created":"' .. created(n) .. '"', 1)
  return (s:gsub('"name":"[^"]*"', '"name":"' .. gname .. '"', 1))
end

-- ------------------------------------------------------------ writing
local files, bytes, blk_bytes = 0, 0, 0
local function put(path, data)
  local f, err = io.open(path, "wb")
  if not f then error(err, 0) end
  f:setvbuf("no")
  f:write(data)
  f:close()
  files = files + 1
  bytes = bytes + #data
end

local js = out_dir .. "/jetstream"
local sys = js .. "/$SYS/_js_"

local streams = {}
local per_acc = math.max(opts.streams // opts.accounts, 1)
for n = 0, opts.streams - 1 do
  local a = math.min(n // per_acc, opts.accounts - 1)
  local s = { n = n, account = "ACC" .. a, name = ("S%d"):format(n),
              subject = ("acc%d.s%d"):format(a, n), group = "S-R3F-" .. new_id(8),
              consumers = {} }
  s.path = ("%s/%s/streams/%s"):format(js, s.account, s.name)
  for k = 1, opts.consumers do
    s.consumers[k] = { k = k, name = "C" .. k, group = "C-R3F-" .. new_id(8) }
  end
  streams[#streams + 1] = s
end

-- every directory in one mkdir pass
do
  local mk = io.popen("xargs -0 mkdir -p", "w")
  local function d(p) mk:write(p, "\0") end
  for _, sub in ipairs({ "msgs", "obs", "snapshots" }) do d(sys .. "/_meta_/" .. sub) end
  for _, s in ipairs(streams) do
    d(s.path .. "/msgs")
    d(s.path .. "/obs")
    for _, c in ipairs(s.consumers) do d(s.path .. "/obs/" .. c.name) end
    for _, g in ipairs({ s, table.unpack(s.consumers) }) do
      for _, sub in ipairs({ "msgs", "obs", "snapshots" }) do d(sys .. "/" .. g.group .. "/" .. sub) end
    end
  end
  if not mk:close() then error("mkdir failed", 0) end
end

-- a few payloads of --msg-bytes, not very compressible
local PAYLOADS = {}
for v = 1, 8 do
  local t, x = {}, v * 2654435761
  for j = 1, (opts["msg-bytes"] + 3) // 4 do
    x = (x * 1103515245 + 12345) % 2147483648
    t[j] = string.pack("<I4", x)
  end
  PAYLOADS[v] = table.concat(t):sub(1, opts["msg-bytes"])
end
local BASE_TS = 1795663355727216062 -- the fixture's first ORDERS record, in ns
local TARGET = opts["block-kb"] * 1024

local function write_group_common(gp, tpl, gname, n)
  local inf = group_meta(tpl, gname, n)
  put(gp .. "/meta.inf", inf)
  put(gp .. "/meta.sum", jsr.metasum(gname, inf))
  put(gp .. "/peers.idx", PEERS_IDX)
  put(gp .. "/tav.idx", TAV_IDX)
end

local assignments = {}
local retentions, r3_consumers, total_msgs = {}, 0, 0
local rtt = 2123559
for _, s in ipairs(streams) do
  local inf, retention = stream_json(s.n, s.name, s.subject)
  retentions[retention] = (retentions[retention] or 0) + 1
  put(s.path .. "/meta.inf", inf)
  put(s.path .. "/meta.sum", jsr.metasum(s.name, inf))

  -- the message block: records until --block-kb
  local parts, size, seq, first_ts, ts, last_rec = {}, 0, 0, nil, nil, nil
  local key = s.name .. "-1"
  while size < TARGET do
    seq = seq + 1
    ts = BASE_TS + s.n * 977 + seq * 1000003
    first_ts = first_ts or ts
    last_rec = record(key, seq, ts, s.subject .. "." .. (seq % 10), PAYLOADS[seq % 8 + 1])
    parts[seq] = last_rec
    size = size + #last_rec
  end
  put(s.path .. "/msgs/1.blk", table.concat(parts))
  blk_bytes = blk_bytes + size
  total_msgs = total_msgs + seq
  put(s.path .. "/msgs/1.idx", index_file(seq, size, 1, first_ts, seq, ts, last_rec:sub(-8)))
  put(s.path .. "/msgs/1.fss", FSS)

  -- its Raft group: snapshot at the message before the last, and a log
  -- holding the last one (stored already: nothing to salvage)
  local last = seq
  local gp = sys .. "/" .. s.group
  write_group_common(gp, S_TPL, s.group, s.n)
  local snap_index = last + 1
  put(gp .. ("/snapshots/snap.1.%d"):format(snap_index), snapshot(s.group, 1, snap_index,
    S_TPL.peer_state, ('{"messages":%d,"bytes":%d,"first_seq":1,"last_seq":%d,"clfs":0}')
      :format(last - 1, size - #last_rec, last - 1)))
  local msg = "\4" .. string.pack("<I8i8s2s2s2s4", last - 1, ts, s.subject .. "." .. (last % 10),
    "", "", PAYLOADS[last % 8 + 1])
  local lrec = record(s.group .. "-1", snap_index + 1, ts + 1000,
    "", append_entry(1, snap_index, snap_index, msg))
  put(gp .. "/msgs/1.blk", lrec)
  put(gp .. "/msgs/1.idx", index_file(1, #lrec, snap_index + 1, ts + 1000, snap_index + 1,
    ts + 1000, lrec:sub(-8)))

  local cas = {}
  for _, c in ipairs(s.consumers) do
    local cp = s.path .. "/obs/" .. c.name
    local cinf, replicas = consumer_json(s.n, c.k, c.name, s.subject, retention == "workqueue")
    if replicas == 3 then r3_consumers = r3_consumers + 1 end
    put(cp .. "/meta.inf", cinf)
    put(cp .. "/meta.sum", jsr.metasum(s.name .. "/" .. c.name, cinf))
    local floor = retention == "workqueue" and 0 or last // 2
    local state = consumer_state(floor)
    put(cp .. "/o.dat", state)

    local cg = sys .. "/" .. c.group
    write_group_common(cg, C_TPL, c.group, s.n * 7 + c.k)
    local cindex = floor + 3
    put(cg .. ("/snapshots/snap.1.%d"):format(cindex),
      snapshot(c.group, 1, cindex, C_TPL.peer_state, state))
    if floor > 0 then
      -- the ack the snapshot already holds
      local crec = record(c.group .. "-1", cindex + 1, ts + 2000, "",
        append_entry(1, cindex, cindex, "\8" .. uvarint(floor) .. uvarint(floor)))
      put(cg .. "/msgs/1.blk", crec)
      put(cg .. "/msgs/1.idx", index_file(1, #crec, cindex + 1, ts + 2000, cindex + 1, ts + 2000,
        crec:sub(-8)))
    else
      put(cg .. "/msgs/1.blk", "")
    end
    local client = ('{"acc":"%s","rtt":%d,"server":"n3","cluster":"C1"}'):format(s.account, rtt)
    cas[#cas + 1] = ('{"client":%s,"created":"%s","name":"%s","stream":"%s","consumer":{%s,'
      .. '"group":{"name":"%s","peers":%s,"store":"file","cluster":"C1","preferred":"BXScrY9i"},'
      .. '"subject":"$JS.API.CONSUMER.CREATE.%s.%s","reply":"_R_.SxjT3m.%s"}')
      :format(client, created(s.n * 7 + c.k), c.name, s.name,
        cinf:match('^{"Created":"[^"]*","Name":"[^"]*",(.*)}$') .. "}", c.group, PEERS, s.name,
        c.name, new_id(6))
  end
  assignments[#assignments + 1] = ('{"client":{"acc":"%s","rtt":%d,"server":"n3","cluster":"C1"},'
    .. '"created":"%s","stream":{%s,"group":{"name":"%s","peers":%s,"store":"file","cluster":"C1"},'
    .. '"sync":"$JSC.SYNC.%s","Consumers":%s}')
    :format(s.account, rtt, created(s.n), inf:match('^{"Created":"[^"]*",(.*)$'), s.group, PEERS,
      new_id(8), #cas > 0 and ("[" .. table.concat(cas, ",") .. "]") or "null")
end

-- the meta group: a snapshot assigning every stream and consumer, newer
-- than every entry of the (fixture's) log
do
  local gp = sys .. "/_meta_"
  local inf = group_meta(M_TPL, "_meta_", 0)
  put(gp .. "/meta.inf", inf)
  put(gp .. "/meta.sum", jsr.metasum("_meta_", inf))
  put(gp .. "/peers.idx", PEERS_IDX)
  put(gp .. "/tav.idx", TAV_IDX)
  put(gp .. "/msgs/1.blk", META_LOG_BLK)
  put(gp .. "/msgs/1.idx", META_LOG_IDX)
  local index = 100 + #streams * (opts.consumers + 1)
  put(gp .. ("/snapshots/snap.1.%d"):format(index), snapshot("_meta_", 1, index,
    M_TPL.peer_state, s2_literal("[" .. table.concat(assignments, ",") .. "]")))
end

local nc = #streams * opts.consumers
io.stdout:write(("generated %s: %d accounts, %d streams (%d limits, %d interest, %d workqueue), "
  .. "%d consumers (%d R3), %d Raft groups; %d files, %.1f MiB (message blocks %.1f MiB: "
  .. "%d messages of %d bytes); %.1f s (%.1f s CPU)\n"):format(
  out_dir, opts.accounts, #streams, retentions.limits or 0, retentions.interest or 0,
  retentions.workqueue or 0, nc, r3_consumers, #streams + nc + 1, files, bytes / 1048576,
  blk_bytes / 1048576, total_msgs, opts["msg-bytes"], now() - wall0, os.clock() - clock0))
