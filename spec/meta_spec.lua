-- read_meta, write_meta, rehash on real stores written by nats-server.
local jsr = require "jsr"
local fx = require "spec.support.fixture"

local function meta_dirs(store)
  local dirs = {}
  for e in assert(jsr.open(store)):walk() do
    if e.kind == "stream" or e.kind == "consumer" or e.kind == "raft" then dirs[#dirs + 1] = e end
  end
  return dirs
end

describe("read_meta", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  it("matches the server's meta.sum for ORDERS (test vector from the fixture)", function()
    local cfg, info = jsr.read_meta(store .. "/jetstream/$G/streams/ORDERS")
    -- written by nats-server 2.9.10 into the fixture
    assert.are.equal("4bff644bafd367e3", fx.read(store .. "/jetstream/$G/streams/ORDERS/meta.sum"))
    assert.are.equal("4bff644bafd367e3", info.sum_computed)
    assert.is_true(info.sum_ok)
    assert.are.equal("stream", info.kind)
    assert.are.equal("ORDERS", info.key)
    assert.are.equal(604800000000000, cfg.max_age)
    assert.is_false(info.encrypted)
  end)

  it("verifies every meta.sum in the survivor store: streams, consumers and Raft groups", function()
    local n = 0
    for _, e in ipairs(meta_dirs(store)) do
      local cfg, info = jsr.read_meta(e.path)
      assert.is_table(cfg, e.path)
      assert.is_true(info.sum_ok, e.path)
      n = n + 1
    end
    assert.are.equal(4 + 4 + 9, n) -- streams, consumers, Raft groups in fixtures/README.md
  end)

  it("keys a consumer's checksum by STREAM/CONSUMER", function()
    local _, info = jsr.read_meta(store .. "/jetstream/$G/streams/EVENTS/obs/billing/meta.inf")
    assert.are.equal("consumer", info.kind)
    assert.are.equal("EVENTS/billing", info.key)
    assert.is_true(info.sum_ok)
  end)

  it("reports a wrong meta.sum without raising", function()
    local dir = store .. "/jetstream/$G/streams/JOBS"
    fx.write(dir .. "/meta.sum", "0000000000000000")
    local cfg, info = jsr.read_meta(dir)
    assert.is_table(cfg)
    assert.is_false(info.sum_ok)
    assert.are.equal("0000000000000000", info.sum_file)
  end)

  it("reports a missing meta.sum", function()
    local dir = store .. "/jetstream/$G/streams/JOBS"
    os.remove(dir .. "/meta.sum")
    local _, info = jsr.read_meta(dir)
    assert.is_false(info.sum_ok)
    assert.matches("meta.sum: cannot open", info.sum_error)
  end)

  it("names the file and the problem for broken JSON, a missing file and a symlink", function()
    local dir = store .. "/jetstream/$G/streams/JOBS"
    fx.write(dir .. "/meta.inf", '{"name":"JOBS",')
    local v, err, info = jsr.read_meta(dir)
    assert.is_nil(v)
    assert.are.equal(dir .. "/meta.inf: invalid JSON: expected a string key at byte 15", err)
    assert.is_table(info)

    v, err = jsr.read_meta(store .. "/jetstream/$G/streams/NOPE")
    assert.is_nil(v)
    assert.matches("NOPE/meta.inf: cannot open: No such file", err)

    os.remove(dir .. "/meta.inf")
    fx.sh(("ln -s %s %s"):format(fx.quote(store .. "/jetstream/$G/streams/ORDERS/meta.inf"),
      fx.quote(dir .. "/meta.inf")))
    v, err = jsr.read_meta(dir)
    assert.is_nil(v)
    assert.matches("is a symlink", err)
  end)

  it("reports an encrypted meta file without decoding it", function()
    local enc = fx.unpack("standalone-encrypted-aes-2.9.10.tar.gz")
    local found = 0
    for e in assert(jsr.open(enc)):walk() do
      if e.kind == "stream" or e.kind == "consumer" then
        local cfg, info = jsr.read_meta(e.path)
        assert.is_false(cfg)
        assert.is_true(info.encrypted)
        assert.is_true(info.sum_ok) -- the sum covers the ciphertext
        found = found + 1
      end
    end
    assert.are.equal(2, found)
    fx.cleanup(enc)
  end)
end)

describe("write_meta", function()
  local function roundtrip_all(store)
    local n = 0
    for _, e in ipairs(meta_dirs(store)) do
      local inf0, sum0 = fx.read(e.path .. "/meta.inf"), fx.read(e.path .. "/meta.sum")
      local cfg = assert(jsr.read_meta(e.path))
      assert(fx.change(store, "write_meta", e.path, cfg))
      assert.are.equal(inf0, fx.read(e.path .. "/meta.inf"), e.path)
      assert.are.equal(sum0, fx.read(e.path .. "/meta.sum"), e.path)
      n = n + 1
    end
    return n
  end

  it("writes every survivor meta file back byte for byte", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    assert.are.equal(17, roundtrip_all(store))
    fx.cleanup(store)
  end)

  it("writes every modern-store meta file back byte for byte", function()
    local store = fx.modern()
    assert.are.equal(3, roundtrip_all(store))
    fx.cleanup(store)
  end)

  it("writes a changed config with a checksum the reader accepts, keeping the old bytes", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local dir = store .. "/jetstream/$G/streams/ORDERS"
    local old = fx.read(dir .. "/meta.inf")
    local cfg = assert(jsr.read_meta(dir))
    cfg.num_replicas = 1
    assert(fx.change(store, "write_meta", dir, cfg))
    local text = fx.read(dir .. "/meta.inf")
    assert.matches('"num_replicas":1,', text, 1, true)
    assert.matches('"max_age":604800000000000,', text, 1, true)
    local _, info = jsr.read_meta(dir)
    assert.is_true(info.sum_ok)
    assert.are_not.equal("4bff644bafd367e3", info.sum_file)
    -- the journal kept the original bytes
    local h = io.popen("cat " .. fx.quote(store) .. "/.js-recover/backup/*/0")
    assert.are.equal(old, h:read("a"))
    h:close()
    fx.cleanup(store)
  end)

  it("refuses to write outside the open store, through a symlink, or with '..'", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local other = fx.unpack("survivor-2.9.10.tar.gz")
    local cfg = assert(jsr.read_meta(other .. "/jetstream/$G/streams/ORDERS"))
    local before = fx.tree_digest(other)
    local ok, err = fx.change(store, "write_meta", other .. "/jetstream/$G/streams/ORDERS", cfg)
    assert.is_nil(ok)
    assert.matches("outside the store", err)
    fx.sh(("ln -s %s %s"):format(fx.quote(other .. "/jetstream/$G/streams/ORDERS"),
      fx.quote(store .. "/jetstream/$G/streams/LINK")))
    ok, err = fx.change(store, "write_meta", store .. "/jetstream/$G/streams/LINK", cfg)
    assert.is_nil(ok)
    assert.matches("is a symlink", err)
    ok, err = fx.change(store, "write_meta", store .. "/jetstream/$G/streams/ORDERS/../ORDERS", cfg)
    assert.is_nil(ok)
    assert.matches('"%.%."', err)
    assert.are.equal(before, fx.tree_digest(other))
    fx.cleanup(store)
    fx.cleanup(other)
  end)

  it("refuses a config Go cannot read back into the stream, changing nothing", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local dir = store .. "/jetstream/$G/streams/ORDERS"
    local cfg = assert(jsr.read_meta(dir))
    cfg.max_age = 0.5
    local before = fx.tree_digest(store)
    local ok, err = fx.change(store, "write_meta", dir, cfg)
    assert.is_nil(ok)
    assert.matches("ORDERS/meta.inf: cannot encode the config: .*not an integer", err)
    assert.are.equal(before, fx.tree_digest(store))
    fx.cleanup(store)
  end)
end)

describe("rehash", function()
  it("recomputes meta.sum for an edited meta.inf", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local dir = store .. "/jetstream/$G/streams/KV_CFG"
    local text = fx.read(dir .. "/meta.inf"):gsub('"num_replicas":3', '"num_replicas":1')
    fx.write(dir .. "/meta.inf", text)
    local _, info = jsr.read_meta(dir)
    assert.is_false(info.sum_ok)
    assert(fx.change(store, "rehash", dir))
    _, info = jsr.read_meta(dir)
    assert.is_true(info.sum_ok)
    assert.are.equal(jsr.metasum("KV_CFG", text), fx.read(dir .. "/meta.sum"))
    fx.cleanup(store)
  end)
end)

describe("read_meta on JSON that is not an object", function()
  -- found by make fuzz: a scalar meta.inf made read_meta raise
  for _, text in ipairs { "0", "2", '""', "[1]", "null" } do
    it(("reports %s as not a JSON object"):format(text), function()
      local store = fx.unpack("survivor-2.9.10.tar.gz")
      finally(function() fx.cleanup(store) end)
      local dir = store .. "/jetstream/$G/streams/ORDERS"
      fx.write(dir .. "/meta.inf", text)
      local v, err, info = jsr.read_meta(dir)
      assert.is_nil(v)
      assert.are.equal(dir .. "/meta.inf: not a JSON object", err)
      assert.are.equal(err, info.error)
    end)
  end
end)
