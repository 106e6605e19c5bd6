-- JetStream domains: a 3-node leaf cluster with `jetstream { domain: L }`
-- connected to a hub (a standalone server with domain H) by a leafnode
-- connection in account ACME; LEAFSRC (R3, a consumer) on the leaf, and
-- AGG on the hub sourcing it across domains (external.api "$JS.L.API").
-- The leaf loses quorum (two nodes SIGKILLed, then the survivor), the hub is
-- SIGKILLed too.  Then:
--   - the store records no domain (no file of either store holds the
--     leaf's or the hub's domain name), only AGG's external.api;
--   - inspect shows the leaf's domain from the survivor's config
--     (--config) and the hub's AGG sourcing from domain L;
--   - prepare --config keeps the domain in recovery.conf (a standalone
--     server answers on $JS.L.API and serves the leaf exactly, by the
--     drill's scorecard), prepare --domain NEW renames it;
--   - restore brings LEAFSRC into a new leaf cluster of domain L2 and AGG
--     into a new hub with --map-api '$JS.L.API=$JS.L2.API': AGG's source
--     points at L2, and messages published on the new leaf reach it.
-- 2.9.10 and the newest release (JSR_DOMAIN_ALL=1: every version built).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local drill = require "spec.support.drill"
local servers = require "spec.support.servers"

local ACME = cluster.USERS.ACME

-- hub(dir, prefix, bin, domain) -> a standalone server with a leafnode listener
local function hub(dir, prefix, bin, domain)
  local port = cluster.pick_ports(1)[1]
  local c = cluster.start { dir = dir, bin = bin, nodes = 1, prefix = prefix, jetstream = ("  domain: %s"):format(domain),
    extra = function() return ('leafnodes { listen: "127.0.0.1:%d" }'):format(port) end }
  c.leaf_port = port
  return c
end

-- leaf(dir, prefix, bin, domain, hub) -> a 3-node cluster whose nodes connect to hub's ACME
local function leaf(dir, prefix, bin, domain, h)
  return cluster.start { dir = dir, bin = bin, prefix = prefix, jetstream = ("  domain: %s"):format(domain),
    extra = function()
      return ('leafnodes { remotes: [ { url: "nats-leaf://%s:%s@127.0.0.1:%d", account: ACME } ] }')
        :format(ACME.user, ACME.password, h.leaf_port)
    end }
end

local function stream_count(url, name)
  local ok, info = pcall(cluster.jsload, url, "ACME", "api", "--subject", "$JS.API.STREAM.INFO." .. name)
  return ok and info.state and info.state.messages or -1
end

local function wait_count(url, name, want, seconds)
  local deadline, n = cluster.now() + seconds, -1
  repeat
    n = stream_count(url, name)
    if n ~= want then cluster.sleep(0.5) end
  until n == want or cluster.now() > deadline
  return n
end

-- count messages "<word> N" to LEAFSRC, each acknowledged
local function natspub(url, word, count)
  local cli = assert(servers.natscli(), "natscli not built")
  local code, out, err = cluster.run { cli, "--server", url, "--user", ACME.user, "--password", ACME.password,
    "pub", "LEAFSRC", word .. " {{Count}}", "--count", tostring(count), "-J" }
  assert(code == 0, err .. out)
end

-- files under dir whose bytes hold s
local function files_holding(dir, s)
  local h = assert(io.popen(("grep -rlF -- %s %s 2>/dev/null"):format(fx.quote(s), fx.quote(dir))))
  local out = {}
  for l in h:lines() do out[#out + 1] = l end
  h:close()
  return out
end

for _, server in ipairs(os.getenv("JSR_DOMAIN_ALL") == "1" and servers.all() or servers.fast()) do
describe("a " .. server.version .. " leaf cluster with its own JetStream domain", function()
  local dir, ldom, hdom = nil, nil, nil
  local st = {}

  setup(function()
    dir = fx.tmpdir()
    local tag = math.random(100000, 999999)
    ldom, hdom = "leafdom" .. tag, "hubdom" .. tag
    local h, l
    local ok, err = pcall(function()
      h = hub(dir .. "/hub", "h", server.bin, hdom)
      l = leaf(dir .. "/leaf", "l", server.bin, ldom, h)
      st.leaf_conf, st.leaf_store, st.hub_store = l.nodes[1].conf, l.nodes[1].store_dir, h.nodes[1].store_dir
      -- published by natscli: jspub's messages carry Nats-Expected-Stream,
      -- which 2.9.10 keeps on a sourced message and then refuses ("expected
      -- stream does not match")
      local lpub = { stream = "LEAFSRC", replicas = 3, user = ACME.user, password = ACME.password }
      ns.jspub(l.nodes[1].srv, lpub)
      natspub(l.nodes[1].url, "before", 100)
      lpub.consumer, lpub.ack = "proc", 30
      ns.jspub(l.nodes[1].srv, lpub)
      local agg = { name = "AGG", storage = "file", num_replicas = 1,
        sources = { { name = "LEAFSRC", external = { api = "$JS." .. ldom .. ".API" } } } }
      cluster.jsload(h.nodes[1].url, "ACME", "api", "--subject", "$JS.API.STREAM.CREATE.AGG",
        "--body", assert(json.encode(agg)))
      st.agg_before = wait_count(h.nodes[1].url, "AGG", 100, 60)
      cluster.jsload(l:urls(1), "ACME", "settle", "--wait-ms", "60000")
      st.before = { ACME = cluster.jsload(l:urls(1), "ACME", "dump", "--timeout-ms", "10000") }
      st.hub_before = cluster.jsload(h.nodes[1].url, "ACME", "dump", "--timeout-ms", "10000")
      l:kill(2, "KILL"); l:kill(3, "KILL")
      cluster.sleep(1)
      l:kill(1, "KILL"); h:kill(1, "KILL")

      st.leaf_files, st.hub_files = files_holding(st.leaf_store, ldom), files_holding(st.hub_store, hdom)
      st.hub_api_files = files_holding(st.hub_store, "$JS." .. ldom .. ".API")
      st.inspect = { fx.run("inspect", st.leaf_store, "--json", "--config", st.leaf_conf) }
      st.inspect_hub = { fx.run("inspect", st.hub_store, "--json") }
      -- prepare keeping the domain (from the config), and renaming it
      for _, how in ipairs { { "kept", "--config", st.leaf_conf, ldom }, { "renamed", "--domain", "newdom" .. tag, "newdom" .. tag } } do
        local rdir = dir .. "/recover-" .. how[1]
        os.execute("mkdir -p " .. fx.quote(rdir))
        local r = drill.recover({ bin = server.bin, name = how[1], prepare_args = { how[2], how[3] },
          after = function(srv, _, report)
            local a = report.accounts[1]
            for _, x in ipairs(report.accounts) do if x.name == "ACME" then a = x end end
            local ok2, info = pcall(cluster.jsload, srv.url, { user = a.user, password = a.password }, "api",
              "--subject", "$JS." .. how[4] .. ".API.STREAM.INFO.LEAFSRC")
            st[how[1] .. "_api"] = ok2 and info.state and info.state.messages or tostring(info)
          end }, st.leaf_store, rdir)
        st[how[1]] = r
        st[how[1] .. "_card"] = drill.compare(st.before, r.dump, r.inspect.lost)
      end

      -- restore: the leaf into a new leaf cluster of another domain, the
      -- hub's AGG into a new hub with its source mapped there
      local ldom2 = "leafdom2x" .. tag
      local h2 = hub(dir .. "/hub2", "nh", server.bin, "hubdom2x" .. tag)
      local l2
      local rok, rerr = pcall(function()
        l2 = leaf(dir .. "/leaf2", "nl", server.bin, ldom2, h2)
        st.restore_leaf = { fx.run("restore", st.leaf_store, "--server", l2.nodes[1].url, "--user", ACME.user,
          "--password", ACME.password, "--json") }
        st.restore_hub = { fx.run("restore", st.hub_store, "--server", h2.nodes[1].url, "--user", ACME.user,
          "--password", ACME.password, "--json", "--map-api", ("$JS.%s.API=$JS.%s.API"):format(ldom, ldom2)) }
        st.agg2 = cluster.jsload(h2.nodes[1].url, "ACME", "api", "--subject", "$JS.API.STREAM.INFO.AGG")
        st.want_api = "$JS." .. ldom2 .. ".API"
        st.agg2_restored = wait_count(h2.nodes[1].url, "AGG", 100, 30)
        -- what both new servers serve, before anything new is published
        local leaf_after = { ACME = cluster.jsload(l2:urls(1), "ACME", "dump", "--timeout-ms", "10000") }
        st.restored_leaf_card = drill.compare(st.before, leaf_after, st.kept.inspect.lost)
        st.restored_hub_card = drill.compare({ ACME = st.hub_before },
          { ACME = cluster.jsload(h2.nodes[1].url, "ACME", "dump", "--timeout-ms", "10000") }, nil)
        natspub(l2.nodes[1].url, "after", 5)
        st.agg2_after = wait_count(h2.nodes[1].url, "AGG", 105, 60)
      end)
      if l2 then l2:stop_all() end
      h2:stop_all()
      assert(rok, rerr)
    end)
    if l then l:stop_all() end
    if h then h:stop_all() end
    if not ok then ns.rmtree(dir); dir = nil; error(err, 0) end
  end)

  teardown(function() if dir then ns.rmtree(dir) end end)

  it("had the hub's AGG sourcing all of LEAFSRC across the domains", function()
    assert.are.equal(100, st.agg_before)
    assert.are.equal(100, st.before.ACME.streams.LEAFSRC.info.state.messages)
  end)

  it("the stores hold no domain name, only AGG's external API prefix", function()
    assert.are.same({}, st.leaf_files)
    assert.are.same({}, st.hub_files)
    assert.is_true(#st.hub_api_files >= 1)
  end)

  it("inspect shows the leaf's domain from its config, and AGG sourcing from it", function()
    local code, out, err = table.unpack(st.inspect)
    assert.are.equal(0, code, err .. out)
    local rep = assert(json.decode(out))
    assert.are.equal(ldom, rep.domain.name)
    assert.are.equal(st.leaf_conf, rep.domain.source)
    local hcode, hout, herr = table.unpack(st.inspect_hub)
    assert.are.equal(0, hcode, herr .. hout)
    local hrep = assert(json.decode(hout))
    assert.is_nil(hrep.domain.name)
    assert.are.equal(1, #hrep.domain.referenced)
    local r = hrep.domain.referenced[1]
    assert.are.same({ "AGG", "source", "LEAFSRC", ldom }, { r.stream, r.kind, r.name, r.domain })
  end)

  it("prepare keeps the domain from the config: the standalone server answers on it, exactly", function()
    assert.truthy(st.kept.conf:find('domain: "' .. ldom .. '"', 1, true), st.kept.conf)
    assert.are.equal(100, st.kept_api)
    local card = st.kept_card
    local text = drill.scorecard_text { name = "kept", survivor = "l1", role_seen = "?", survivor_stop = "KILL", card = card }
    assert.are.equal(100, card.messages.total, text)
    assert.are.equal(card.messages.total, card.messages.exact, text)
    assert.are.equal(card.acks.total, card.acks.exact, text)
    assert.are.equal(card.state.total, card.state.exact, text)
  end)

  it("prepare --domain renames it", function()
    assert.truthy(st.renamed.conf:find("domain: \"newdom", 1, true), st.renamed.conf)
    assert.is_nil(st.renamed.conf:find(ldom, 1, true))
    assert.are.equal(100, st.renamed_api)
  end)

  it("restore maps AGG's source to the new leaf's domain, and the source flows", function()
    local code, out, err = table.unpack(st.restore_leaf)
    assert.are.equal(0, code, err .. out)
    code, out, err = table.unpack(st.restore_hub)
    assert.are.equal(0, code, err .. out)
    assert.are.equal(st.want_api, st.agg2.config.sources[1].external.api)
    assert.are.equal(100, st.agg2_restored)
    assert.are.equal(105, st.agg2_after)
  end)

  it("restore serves the leaf and the hub as they were: every message and consumer position", function()
    for _, card in ipairs { st.restored_leaf_card, st.restored_hub_card } do
      local text = drill.scorecard_text { name = "restored", survivor = "l1", role_seen = "?", survivor_stop = "KILL",
                                          card = card }
      assert.are.equal(100, card.messages.total, text)
      assert.are.equal(card.messages.total, card.messages.exact, text)
      assert.are.equal(0, card.messages.resurrected, text)
      assert.are.equal(card.state.total, card.state.exact, text)
      assert.are.equal(card.acks.total, card.acks.exact, text)
    end
    assert.are.same({}, st.restored_leaf_card.config.changed)
    -- the hub's AGG: only its source moved (the API prefix, where to go on)
    local changed = {}
    for _, ch in ipairs(st.restored_hub_card.config.changed) do changed[#changed + 1] = ch:match("^ACME > AGG (%S+):") end
    table.sort(changed)
    assert.are.same({ "sources.1.external.api", "sources.1.opt_start_seq" }, changed)
  end)
end)
end
