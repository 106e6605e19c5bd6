-- Bench helper (not a policy): writes a synthetic JetStream store of the
-- surviving node of an R3 cluster, at scale, for `make bench`.
--
-- usage: lua5.4 scripts/gen-bench-store.lua <out_dir> [--streams N] [--accounts N]
--          [--consumers N] [--block-kb K] [--fixture survivor-2.9.10.tar.gz|dir]
--          [--build DIR]
--
-- Layout (as a 2.9.10 server writes it, see ../shared/FORMAT.md):
--   <out>/jetstream/ACC<a>/streams/S<n>/{meta.inf,meta.sum,msgs/1.blk,1.idx,1.fss,
--                                       obs/C<k>/{meta.inf,meta.sum,o.dat}}
--   <out>/jetstream/$SYS/_js_/{_meta_, S-R3F-<id> per stream, C-R3F-<id> per consumer}
--
-- meta.inf is compact JSON in the server's field order and meta.sum its
-- correct checksum (jsr.metasum from build/jsr.so).  msgs/1.blk holds real
-- records (header, subject, payload, HighwayHash) filling --block-kb; it is
-- built once and written to every stream, so its record hashes are only
-- right for the first stream (prepare never reads blocks; cp moves bytes).
-- 1.idx is encoded to match the block.  The small Raft files (peers.idx,
-- tav.idx, the log block and its idx, snapshots) and 1.fss / o.dat are
-- copied from the fixture.  Prints one summary line: counts, bytes, time.
local out_dir = arg[1]
local opts = { streams = 10000, accounts = 10, consumers = 2, ["block-kb"] = 64,
               fixture = nil, build = "build" }
local i = 2
while i <= #arg do
  local k = arg[i]:match("^%-%-(.+)$")
  if not k or opts[k] == nil and k ~= "fixture" or arg[i + 1] == nil then
    io.stderr:write("gen-bench-store: bad argument ", arg[i], "\n")
    os.exit(2)
  end
  opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
  i = i + 2
end
if not out_dir then
  io.stderr:write("usage: lua5.4 scripts/gen-bench-store.lua <out_dir> [--streams N] "
    .. "[--accounts N] [--consumers N] [--block-kb K] [--fixture tar.gz|dir] [--build DIR]\n")
  os.exit(2)
end
package.cpath = opts.build .. "/?.so;" .. package.cpath
local jsr = require "jsr"

local clock0 = os.clock()
local function now()
  local p = io.popen("date +%s.%N")
  local s = tonumber(p:read("l"))
  p:close()
  return s
end
local wall0 = now()

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local ok = os.execute(cmd)
  if not ok then error("command failed: " .. cmd, 0) end
end

-- the fixture: a real 2.9.10 survivor store
local fixture = opts.fixture or "../shared/fixtures/survivor-2.9.10.tar.gz"
local fixdir, fixtmp = fixture, nil
if fixture:match("%.tar%.gz$") or fixture:match("%.tgz$") then
  local p = io.popen("mktemp -d")
  fixtmp = p:read("l")
  p:close()
  run(("tar xzf %s -C %s"):format(sh_quote(fixture), sh_quote(fixtmp)))
  fixdir = fixtmp
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then error("cannot read fixture file " .. path, 0) end
  local s = f:read("a")
  f:close()
  return s
end

local FJ = fixdir .. "/jetstream/"
local function find_group(prefix)
  local p = io.popen("ls " .. sh_quote(FJ .. "$SYS/_js_"))
  local best
  for name in p:lines() do
    if name:sub(1, #prefix) == prefix then best = best or name end
  end
  p:close()
  if not best then error("fixture has no " .. prefix .. " group", 0) end
  return FJ .. "$SYS/_js_/" .. best
end

local function raft_template(dir)
  local t = { files = {} }
  t.meta_inf = slurp(dir .. "/meta.inf")
  for _, f in ipairs({ "peers.idx", "tav.idx", "msgs/1.blk", "msgs/1.idx" }) do
    t.files[#t.files + 1] = { f, slurp(dir .. "/" .. f) }
  end
  local p = io.popen("ls " .. sh_quote(dir .. "/snapshots"))
  for name in p:lines() do t.files[#t.files + 1] = { "snapshots/" .. name, slurp(dir .. "/snapshots/" .. name) } end
  p:close()
  return t
end

local S_GROUP = raft_template(find_group("S-R"))
local C_GROUP = raft_template(find_group("C-R"))
local META_GROUP = raft_template(FJ .. "$SYS/_js_/_meta_")
local FSS = slurp(FJ .. "$G/streams/ORDERS/msgs/1.fss")
local ODAT = slurp(FJ .. "$G/streams/ORDERS/obs/proc/o.dat")
if fixtmp then run("rm -rf " .. sh_quote(fixtmp)) end

-- ------------------------------------------------------------ encoders
local function u32(v) return string.pack("<I4", v) end
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

-- One message block of about kb KiB for stream `name`, with its 1.idx.
local BASE_TS = 1795663355727216062 -- the fixture's first ORDERS record, in ns
local function make_block(name, subject, kb)
  local target = kb * 1024
  local parts, size, seq, last_hash, first_ts, last_ts = {}, 0, 0, nil, nil, nil
  local payload_base = ("%s-payload-"):format(name)
  while size < target do
    seq = seq + 1
    local ts = BASE_TS + seq * 1000003
    first_ts = first_ts or ts
    last_ts = ts
    local subj = subject .. "." .. (seq % 10)
    -- ~200 bytes of not-very-compressible payload
    local pl = {}
    local x = seq * 2654435761 % 4294967296
    for j = 1, 25 do
      x = (x * 1103515245 + 12345) % 2147483648
      pl[j] = string.pack("<I4", x) .. string.char(65 + j)
    end
    pl[#pl + 1] = payload_base .. seq
    local payload = table.concat(pl):sub(1, 200)
    local total = 22 + #subj + #payload + 8
    local hdr = u32(total) .. string.pack("<I8i8I2", seq, ts, #subj)
    local hashed = hdr:sub(5, 20) .. subj .. payload -- seq and ts, not subj_len
    local h = unhex(jsr.metasum(name .. "-1", hashed))
    parts[#parts + 1] = hdr .. subj .. payload .. h
    size = size + total
    last_hash = h
  end
  local blk = table.concat(parts)
  local idx = "\22\1" .. uvarint(seq) .. uvarint(#blk) .. uvarint(1) .. varint(first_ts)
    .. uvarint(seq) .. varint(last_ts) .. uvarint(0) .. last_hash
  return blk, idx, seq
end

-- deterministic, random-looking 8-char ids, distinct (checked)
local ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local used_ids = {}
local function group_id(n)
  local v = n
  while true do
    -- splitmix64 finaliser
    v = v + 0x1E3779B97F4A7C15
    local z = v
    z = (z ~ (z >> 30)) * -4658895280553007687 -- 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * -7723592293110705685 -- 0x94d049bb133111eb
    z = z ~ (z >> 31)
    local t = {}
    for j = 1, 8 do
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

local function consumer_json(n, k, cname, subject, workqueue)
  -- the first consumer inherits the stream's replicas (0), the others were
  -- created with an explicit R3, as clients of a cluster often do
  local replicas = k == 1 and 0 or 3
  local filter = workqueue and (',"filter_subject":"%s.%d"'):format(subject, k) or ""
  return ('{"Created":"%s","Name":"%s","durable_name":"%s","name":"%s","deliver_policy":"all",'
    .. '"ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1%s,'
    .. '"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":%d}')
    :format(created(n * 7 + k), cname, cname, cname, filter, replicas), replicas
end

local function raft_meta(tpl, gname, n)
  local s = tpl.meta_inf:gsub('"Created":"[^"]*"', '"Created":"' .. created(n) .. '"', 1)
  s = s:gsub('"name":"[^"]*"', '"name":"' .. gname .. '"', 1)
  return s
end

-- ------------------------------------------------------------ writing
local files, bytes = 0, 0
local function put(path, data)
  local f, err = io.open(path, "wb")
  if not f then error(err, 0) end
  f:write(data)
  f:close()
  files = files + 1
  bytes = bytes + #data
end

local js = out_dir .. "/jetstream"
local sys = js .. "/$SYS/_js_"

-- plan names first, create every directory in one mkdir pass
local streams = {}
local per_acc = opts.streams // opts.accounts
local gseq = 0
for n = 0, opts.streams - 1 do
  local a = math.min(n // math.max(per_acc, 1), opts.accounts - 1)
  local s = { n = n, account = "ACC" .. a, name = ("S%d"):format(n),
              subject = ("acc%d.s%d"):format(a, n) }
  s.path = ("%s/%s/streams/%s"):format(js, s.account, s.name)
  gseq = gseq + 1
  s.group = "S-R3F-" .. group_id(gseq)
  s.consumers = {}
  for k = 1, opts.consumers do
    gseq = gseq + 1
    s.consumers[k] = { k = k, name = "C" .. k, group = "C-R3F-" .. group_id(gseq) }
  end
  streams[#streams + 1] = s
end

do
  local mk = io.popen("xargs -0 mkdir -p", "w")
  local function d(p) mk:write(p, "\0") end
  d(sys .. "/_meta_/msgs"); d(sys .. "/_meta_/obs"); d(sys .. "/_meta_/snapshots")
  for _, s in ipairs(streams) do
    d(s.path .. "/msgs")
    for _, c in ipairs(s.consumers) do d(s.path .. "/obs/" .. c.name) end
    if #s.consumers == 0 then d(s.path .. "/obs") end
    for _, g in ipairs({ s, table.unpack(s.consumers) }) do
      local gp = sys .. "/" .. g.group
      d(gp .. "/msgs"); d(gp .. "/obs"); d(gp .. "/snapshots")
    end
  end
  local ok = mk:close()
  if not ok then error("mkdir failed", 0) end
end

-- one block for every stream (record hashes are right for streams[1] only)
local BLK, IDX, NMSG = make_block(streams[1] and streams[1].name or "S0",
                                  streams[1] and streams[1].subject or "s", opts["block-kb"])

local function write_group(tpl, gname, n)
  local gp = sys .. "/" .. gname
  local inf = raft_meta(tpl, gname, n)
  put(gp .. "/meta.inf", inf)
  put(gp .. "/meta.sum", jsr.metasum(gname, inf))
  for _, f in ipairs(tpl.files) do put(gp .. "/" .. f[1], f[2]) end
end

write_group(META_GROUP, "_meta_", 0)
local retentions, r3_consumers = {}, 0
for _, s in ipairs(streams) do
  local inf, retention = stream_json(s.n, s.name, s.subject)
  retentions[retention] = (retentions[retention] or 0) + 1
  put(s.path .. "/meta.inf", inf)
  put(s.path .. "/meta.sum", jsr.metasum(s.name, inf))
  put(s.path .. "/msgs/1.blk", BLK)
  put(s.path .. "/msgs/1.idx", IDX)
  put(s.path .. "/msgs/1.fss", FSS)
  for _, c in ipairs(s.consumers) do
    local cp = s.path .. "/obs/" .. c.name
    local cinf, replicas = consumer_json(s.n, c.k, c.name, s.subject, retention == "workqueue")
    if replicas == 3 then r3_consumers = r3_consumers + 1 end
    put(cp .. "/meta.inf", cinf)
    put(cp .. "/meta.sum", jsr.metasum(s.name .. "/" .. c.name, cinf))
    put(cp .. "/o.dat", ODAT)
    write_group(C_GROUP, c.group, s.n * 7 + c.k)
  end
  write_group(S_GROUP, s.group, s.n)
end

local nc = #streams * opts.consumers
io.stdout:write(("generated %s: %d accounts, %d streams (%d limits, %d interest, %d workqueue), "
  .. "%d consumers (%d R3), %d Raft groups; %d files, %.1f MiB (%d KiB, %d msgs per stream "
  .. "block); %.1f s (%.1f s CPU)\n"):format(
  out_dir, opts.accounts, #streams, retentions.limits or 0, retentions.interest or 0,
  retentions.workqueue or 0, nc, r3_consumers, #streams + nc + 1, files, bytes / 1048576,
  #BLK // 1024, NMSG, now() - wall0, os.clock() - clock0))
