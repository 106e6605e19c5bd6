-- Every server feature on every version, end to end, with the real nats
-- CLI (v0.5.0): one 3-node cluster per version and store kind carries
-- all the features that version has at once (R3 streams), the cluster's view is
-- recorded, two nodes and then the survivor are SIGKILLed, and the
-- survivor's store goes through inspect (an R1 stream on a dead node
-- reported lost), prepare, verify and undo (tree digest back to the
-- original), then prepare again and a standalone server of the same
-- version on recovery.conf, which must serve exactly what the cluster
-- served: messages, state, consumer positions, KV values and
-- history, objects by digest, mirror and source state, TTL'd messages not
-- resurrected.
--
-- Features and the versions that have them (a version without one names
-- the skip): s2 compression and metadata 2.10+; per-message TTL and
-- subject delete markers 2.11+; counters and atomic batches 2.12+; KV,
-- object store, mirror, sources and encryption on all.  Each version runs
-- twice: plaintext (the Raft logs salvaged) and encrypted, the cipher
-- alternating by version (chacha, aes, ...), so the default run (Debian's
-- 2.9.10 and the newest release) covers both; JSR_FEATURES_ALL=1 runs
-- every version built, JSR_FEATURES_ONLY=<version> that one alone.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local drill = require "spec.support.drill"
local restored = require "spec.support.restored"

local nats = servers.natscli()
if not nats then return end -- servers.lua names what was not built

local all = os.getenv("JSR_FEATURES_ALL")
local versions = (all and all ~= "" and all ~= "0") and servers.all() or servers.fast()
-- JSR_FEATURES_ONLY=2.15.3: that version alone (one of those built)
local only = os.getenv("JSR_FEATURES_ONLY")
if only and only ~= "" then
  local keep = {}
  for _, s in ipairs(servers.all()) do if s.version == only then keep[1] = s end end
  versions = keep
end

local function ge(v, want)
  local a = { v:match("^(%d+)%.(%d+)%.(%d+)") }
  local b = { want:match("^(%d+)%.(%d+)%.(%d+)") }
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    if x ~= y then return x > y end
  end
  return true
end

local FEATURES = {
  { name = "s2 compression", since = "2.10.0" },
  { name = "metadata", since = "2.10.0" },
  { name = "per-message TTL", since = "2.11.0" },
  { name = "subject delete markers", since = "2.11.0" },
  { name = "counters", since = "2.12.0" },
  { name = "atomic batches", since = "2.12.0" },
}

local function has(v, feature)
  for _, f in ipairs(FEATURES) do if f.name == feature then return ge(v, f.since) end end
  error("unknown feature " .. feature)
end

local function sha256_file(path)
  local h = assert(io.popen("sha256sum " .. cluster.quote(path)))
  local out = h:read("a")
  h:close()
  return out:match("^(%x+)")
end

-- Everything the features need, created through the CLI on a live cluster.
local function create(v, cli, dir, log)
  local function add(name, ...)
    local args = { "stream", "add", name, "--storage", "file", "--replicas", "3", "--defaults" }
    for _, a in ipairs { ... } do args[#args + 1] = a end
    log[#log + 1] = cli(args)
  end
  local plain = {}
  if has(v, "s2 compression") then plain[#plain + 1] = "--compression=s2" end
  if has(v, "metadata") then
    plain[#plain + 1] = "--metadata"; plain[#plain + 1] = "team=billing"
    plain[#plain + 1] = "--metadata"; plain[#plain + 1] = "tier=gold"
  end
  add("ORDERS", "--subjects", "orders.>", table.unpack(plain))
  cli { "pub", "orders.new", "--jetstream", "--count", "40", "order {{Count}} " .. ("x"):rep(200) }
  cli { "pub", "orders.paid", "--jetstream", "--count", "10", "-H", "K:{{Count}}", "paid {{Count}}" }
  cli { "consumer", "add", "ORDERS", "worker", "--pull", "--ack", "explicit", "--deliver", "all",
        "--defaults" }
  cli { "consumer", "next", "ORDERS", "worker", "--count", "7", "--ack" }
  add("EVENTS", "--subjects", "events.>")
  cli { "pub", "events.a", "--jetstream", "--count", "15", "event {{Count}}" }
  add("MIRROR", "--mirror", "ORDERS")
  add("AGG", "--source", "ORDERS", "--source", "EVENTS")

  log[#log + 1] = cli { "kv", "add", "CONF", "--replicas", "3", "--history", "5" }
  for i = 1, 3 do cli { "kv", "put", "CONF", "db.url", "postgres://db" .. i } end
  cli { "kv", "put", "CONF", "feature.x", "on" }
  cli { "kv", "put", "CONF", "gone", "soon" }
  cli { "kv", "del", "CONF", "gone", "--force" }

  -- a second bucket with what the version's KV adds: compression (2.10+),
  -- limit markers (2.11+)
  local sess = { "kv", "add", "SESS", "--replicas", "3" }
  if has(v, "s2 compression") then sess[#sess + 1] = "--compress" end
  if has(v, "per-message TTL") then sess[#sess + 1] = "--marker-ttl=10m" end
  log[#log + 1] = cli(sess)
  cli { "kv", "put", "SESS", "user.1", "alice" }
  cli { "kv", "put", "SESS", "user.2", "bob" }
  -- an R1 stream on a node that dies: the lost-asset report must name it
  log[#log + 1] = cli { "stream", "add", "LOST1", "--subjects", "lost.>", "--storage", "file", "--replicas", "1",
                        "--tag", "node:n1", "--defaults" }
  cli { "pub", "lost.x", "--jetstream", "--count", "4", "lost {{Count}}" }

  log[#log + 1] = cli { "object", "add", "FILES", "--replicas", "3" }
  local blob = dir .. "/blob.bin"
  assert(os.execute("head -c 300000 /dev/urandom > " .. cluster.quote(blob)))
  cli { "object", "put", "FILES", blob, "--name", "blob.bin", "--force" }

  if has(v, "per-message TTL") then
    add("TTLS", "--subjects", "ttl.>", "--allow-msg-ttl")
    cli { "pub", "ttl.short", "--jetstream", "--count", "3", "-H", "Nats-TTL:1s", "short {{Count}}" }
    cli { "pub", "ttl.long", "--jetstream", "--count", "3", "-H", "Nats-TTL:1h", "long {{Count}}" }
    cli { "pub", "ttl.none", "--jetstream", "--count", "2", "plain {{Count}}" }
  end
  if has(v, "subject delete markers") then
    add("MARKS", "--subjects", "mark.>", "--max-age", "2s", "--subject-del-markers-ttl", "10m",
        "--allow-msg-ttl", "--allow-rollup")
    cli { "pub", "mark.a", "--jetstream", "--count", "3", "m {{Count}}" }
    cli { "pub", "mark.b", "--jetstream", "m b" }
  end
  if has(v, "counters") then
    add("COUNTS", "--subjects", "cnt.>", "--allow-counter")
    cli { "counter", "increment", "cnt.visits", "5" }
    cli { "counter", "increment", "cnt.visits", "37" }
    cli { "counter", "decrement", "cnt.other", "2" }
  end
  if has(v, "atomic batches") then
    add("BATCH", "--subjects", "bat.>", "--allow-batch")
    -- the CLI sends an atomic batch from stdin, a message a line
    local lines = dir .. "/batch.txt"
    fx.write(lines, "batch 1\nbatch 2\nbatch 3\nbatch 4\nbatch 5\nbatch 6\n")
    cli({ "pub", "bat.x", "--atomic", "--send-on=newline" }, lines)
  end
  -- the 1 s TTLs and the 2 s max_age run out before the cluster is recorded
  -- (and the delete markers max_age left behind with them)
  if has(v, "per-message TTL") then cluster.sleep(6) end
end

-- What a server serves at the user's level: KV values and history, the
-- object's digest, counters.
local function user_view(v, cli, dir, tag)
  local view = {}
  view.kv_url = cli { "kv", "get", "CONF", "db.url", "--raw" }
  view.kv_feature = cli { "kv", "get", "CONF", "feature.x", "--raw" }
  view.kv_sess = cli { "kv", "get", "SESS", "user.2", "--raw" }
  -- the key's history: each of its revisions (stream sequences 1..3)
  view.kv_history = {}
  for rev = 1, 3 do view.kv_history[rev] = cli { "kv", "get", "CONF", "db.url", "--revision", tostring(rev), "--raw" } end
  local out = dir .. "/blob." .. tag
  cli { "object", "get", "FILES", "blob.bin", "-O", out, "--force" }
  view.blob = sha256_file(out)
  if has(v, "counters") then view.counter = cli { "counter", "get", "cnt.visits" } end
  return view
end

-- the CLI against url as user creds: cli(args[, stdin file]) -> output
local function cli_at(url, creds)
  return function(args, stdin)
    local full = { "--server", url, "--user", creds.user, "--password", creds.password }
    for _, a in ipairs(args) do full[#full + 1] = a end
    return restored.nats(nats, full, stdin)
  end
end

-- each version plaintext (cipher false) and encrypted
local runs = {}
for vi, sv in ipairs(versions) do
  runs[#runs + 1] = { sv = sv, cipher = false }
  runs[#runs + 1] = { sv = sv, cipher = (vi % 2 == 1) and "chacha" or "aes" }
end

for _, run in ipairs(runs) do
  local sv, cipher = run.sv, run.cipher
  local skipped = {}
  for _, f in ipairs(FEATURES) do
    if not ge(sv.version, f.since) then skipped[#skipped + 1] = f.name .. " (since " .. f.since .. ")" end
  end
  local title = ("every feature on %s (%s)%s"):format(sv.version,
    cipher and ("encrypted, " .. cipher) or "plaintext",
    #skipped > 0 and ("; skipped, the version lacks: " .. table.concat(skipped, ", ")) or "")

  describe(title, function()
    local r = {}

    setup(function()
      local t0 = cluster.now()
      local dir = ns.tmpdir()
      r.dir = dir
      local key = cipher and ("features-" .. jsr.random_hex(16)) or nil
      local keyarg = {}
      if key then
        local kf = dir .. "/js.key"
        fx.write(kf, key .. "\n")
        assert(os.execute("chmod 600 " .. cluster.quote(kf)))
        keyarg = { "--key-file", kf }
      end
      local c, srv
      local ok, err = pcall(function()
        -- a node that never joins the meta group (seen once on 2.10.27 on a
        -- loaded machine: n2 saw the leader, the leader never listed n2 in
        -- 40 s) is a start-up flake, not the subject: one more cluster
        local cok, cerr = pcall(cluster.start, { dir = dir .. "/c1", bin = sv.bin, key = key, cipher = cipher or nil })
        if cok then c = cerr
        else
          r.start_retry = tostring(cerr)
          c = cluster.start { dir = dir .. "/c2", bin = sv.bin, key = key, cipher = cipher or nil }
        end
        local urls = c:urls(2)
        local cli = cli_at(table.concat(urls, ","), cluster.USERS.ACME)
        r.log = {}
        create(sv.version, cli, dir, r.log)
        cluster.jsload(urls, "ACME", "settle", "--wait-ms", "60000")
        cluster.sleep(1.5) -- followers apply a moment after they report current; o.dat every 100 ms
        cluster.jsload(urls, "ACME", "settle", "--wait-ms", "60000")
        r.before = { ACME = cluster.jsload(urls, "ACME", "dump", "--timeout-ms", "10000") }
        r.user_before = user_view(sv.version, cli, dir, "before")
        -- the disaster
        for _, i in ipairs { 1, 3 } do os.execute(("kill -KILL %d"):format(c.nodes[i].srv.pid)) end
        c:kill(1, "KILL"); c:kill(3, "KILL")
        cluster.sleep(1)
        c:kill(2, "KILL")
        local store = c.nodes[2].store_dir
        r.original = fx.tree_digest(store)
        local work = dir .. "/recovered"
        assert(os.execute(("cp -a %s %s"):format(cluster.quote(store), cluster.quote(work))))

        local code, out, e = fx.run("inspect", work, "--json", table.unpack(keyarg))
        r.inspect = { code = code, err = e, rep = json.decode(out) }
        r.prepare1 = { fx.run("prepare", work, table.unpack(keyarg)) }
        r.verify = { fx.run("verify", work, "--json", table.unpack(keyarg)) }
        r.undo = { fx.run("undo", work) }
        r.after_undo = fx.tree_digest(work)
        r.prepare2 = { fx.run("prepare", work, table.unpack(keyarg)) }
        assert(r.prepare2[1] == 0, "prepare: " .. tostring(r.prepare2[3]) .. tostring(r.prepare2[2]))
        local report = assert(json.decode(fx.read(work .. "/recovery-report.json")))
        srv = ns.start { config = work .. "/recovery.conf", log_path = dir .. "/standalone.log", timeout = 60,
                         env = key and { JSR_KEY = key } or nil, bin = sv.bin }
        cluster.sleep(2) -- mirrors and sources reconnect and do whatever they would
        local creds
        for _, a in ipairs(report.accounts) do
          if (a.original_name or a.name) == "ACME" then creds = { user = a.user, password = a.password } end
        end
        assert(creds, "recovery-report.json names no account ACME")
        r.after = { ACME = cluster.jsload(srv.url, creds, "dump", "--timeout-ms", "10000") }
        local scli = cli_at(srv.url, creds)
        r.user_after = user_view(sv.version, scli, dir, "after")
        r.card = drill.compare(r.before, r.after, r.inspect.rep and r.inspect.rep.lost)
        local cd = r.card
        io.stderr:write(("features %s (%s): streams %d/%d (%d reported lost), messages exact %d/%d, resurrected %d, "
          .. "consumers exact %d/%d, config fields %d/%d (%d on purpose), %.0f s%s\n"):format(
          sv.version, cipher or "plaintext", cd.streams.served, cd.streams.total, cd.streams.lost_reported, cd.messages.exact, cd.messages.total,
          cd.messages.resurrected, cd.acks.exact, cd.acks.total, cd.config.preserved + cd.config.on_purpose,
          cd.config.fields, cd.config.on_purpose, cluster.now() - t0,
          r.start_retry and " (cluster started twice)" or ""))
      end)
      if srv then srv:stop() end
      if c then c:stop_all() end
      if not ok then r.error = tostring(err) .. " (kept in " .. dir .. ")" else ns.rmtree(dir) end
    end)

    it("creates every feature the version has on the cluster", function()
      assert.is_nil(r.error, r.error)
      local s = r.before.ACME.streams
      for _, name in ipairs { "ORDERS", "EVENTS", "MIRROR", "AGG", "KV_CONF", "KV_SESS", "OBJ_FILES", "LOST1" } do
        assert.is_table(s[name], name)
      end
      assert.are.equal(50, s.ORDERS.info.state.messages)
      assert.are.equal(50, s.MIRROR.info.state.messages)
      assert.are.equal(65, s.AGG.info.state.messages)
      if has(sv.version, "s2 compression") then assert.are.equal("s2", s.ORDERS.info.config.compression) end
      if has(sv.version, "metadata") then assert.are.equal("gold", s.ORDERS.info.config.metadata.tier) end
      if has(sv.version, "per-message TTL") then
        assert.is_true(s.TTLS.info.config.allow_msg_ttl)
        assert.are.equal(5, s.TTLS.info.state.messages) -- the 1 s ones expired
      end
      if has(sv.version, "subject delete markers") then
        assert.is_true((s.MARKS.info.config.subject_delete_marker_ttl or 0) > 0)
        -- 4 messages, then one marker a subject when max_age took its last
        -- message; the markers too were gone within 6 s (measured on 2.15.3
        -- with subject_delete_marker_ttl 10m)
        assert.are.equal(6, s.MARKS.info.state.last_seq, json.encode(s.MARKS.info.state))
      end
      if has(sv.version, "counters") then assert.is_true(s.COUNTS.info.config.allow_msg_counter) end
      if has(sv.version, "atomic batches") then
        assert.is_true(s.BATCH.info.config.allow_atomic)
        assert.are.equal(6, s.BATCH.info.state.messages)
      end
    end)

    it("inspect reads the store (with the key when encrypted), and names no problem", function()
      assert.is_nil(r.error, r.error)
      assert.are.equal(0, r.inspect.code, r.inspect.err)
      local n, enc = 0, 0
      for _, st in ipairs(r.inspect.rep.streams) do
        n = n + 1
        if st.encrypted then enc = enc + 1 end
      end
      assert.are.equal(cipher and n or 0, enc)
      assert.is_true(n >= 7)
    end)

    it("prepare and verify pass; undo puts back every byte", function()
      assert.is_nil(r.error, r.error)
      assert.are.equal(0, r.prepare1[1], r.prepare1[3] .. r.prepare1[2])
      assert.are.equal(0, r.verify[1], r.verify[3] .. r.verify[2])
      assert.are.equal(0, r.undo[1], r.undo[3] .. r.undo[2])
      assert.are.equal(r.original, r.after_undo)
    end)

    it("salvage reads every stream's log, or says clearly why not", function()
      assert.is_nil(r.error, r.error)
      local out = r.prepare1[2]
      assert.is_nil(out:find("could not", 1, true), out)
      -- a stream whose log holds nothing past its store is not named
      -- every op these versions log is replayed (the atomic batches of
      -- 2.12.15 ... 2.15.3 stopped the salvage of their log before), and
      -- an encrypted store's logs with the key as a plaintext one's: no
      -- note names an operation or a log not salvaged
      for note in out:gmatch("salvage:   note: ([^\n]*)") do
        assert.is_nil(note:find("operation %d+"), note)
        assert.is_nil(note:find("not salvaged", 1, true), note)
      end
    end)

    it("the standalone server serves every message, state field and consumer position exactly", function()
      assert.is_nil(r.error, r.error)
      local text = json.encode(r.card)
      local c, m = r.card, r.card.messages
      assert.are.equal(m.total, m.exact, text)
      assert.are.equal(0, m.resurrected, text) -- the expired TTLs are not back
      assert.are.same({}, c.streams.missing, text)
      assert.are.same({}, c.consumers.missing, text)
      assert.are.equal(c.state.total, c.state.exact, text)
      assert.are.equal(c.acks.total, c.acks.exact, text)
      assert.are.same({}, c.config.changed, text)
      assert.is_true(c.exact, text)
      -- the R1 stream on n1 alone is reported lost, nothing else
      assert.are.same({ "ACME > LOST1" }, c.lost.reported_streams, text)
      assert.are.same({}, c.lost.wrongly_reported, text)
      if has(sv.version, "per-message TTL") then
        local ttls = r.after.ACME.streams.TTLS
        assert.are.equal(5, ttls.info.state.messages)
        for _, msg in ipairs(ttls.messages) do assert.are_not.equal("ttl.short", msg[2]) end
      end
    end)

    it("serves the KV values and history, the object by digest and the counters as the cluster did", function()
      assert.is_nil(r.error, r.error)
      assert.are.same(r.user_before, r.user_after)
      assert.are.equal("postgres://db3", r.user_after.kv_url:gsub("%s+$", ""))
    end)
  end)
end
