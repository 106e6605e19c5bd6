-- Memory bounded by the input (js-recover issue 14, item 6): a meta.inf
-- of values a few bytes each ({} is two Lua tables) cost ~65 times its
-- size, and every one was held at once (four 8 MiB files: 2 GB).  A
-- config holds at most json.CONFIG_MAX_VALUES values; a file past that is
-- refused like any unreadable meta file.  README "Resource limits".
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"

local LIMIT = json.CONFIG_MAX_VALUES

-- peak RSS in KiB and the exit code of js-recover args...
local function peak(...)
  -- under ASan (make asan) freed memory is held in quarantine: not here
  local asan = os.getenv("ASAN_OPTIONS")
  local env = asan and { ASAN_OPTIONS = asan .. ":quarantine_size_mb=0" } or nil
  local code, out, err = fx.run_with({ env = env, prefix = { "/usr/bin/time", "-f", "jsr-maxrss %M" } }, ...)
  local kb = tonumber(err:match("jsr%-maxrss (%d+)"))
  assert(kb, err)
  return kb, code, out, err
end

local function write_stream(js, name, meta)
  local dir = js .. "/$G/streams/" .. name
  fx.sh("mkdir -p " .. fx.quote(dir .. "/msgs"))
  fx.write(dir .. "/meta.inf", meta)
  fx.write(dir .. "/meta.sum", jsr.metasum(name, meta))
  return dir
end

describe("resource limits", function()
  it("json.decode takes a limit on values: exactly that many decode, one more is refused", function()
    local items = {}
    for i = 1, 99 do items[i] = "{}" end
    local text = "[" .. table.concat(items, ",") .. "]" -- 100 values: the array and 99 objects
    assert.is_truthy(json.decode(text, 100))
    local v, err = json.decode(text, 99)
    assert.is_nil(v)
    assert.matches("more than 99 values at byte %d+", err)
    assert.is_truthy(json.decode(text)) -- no limit unless asked
    assert.has_error(function() json.decode(text, -1) end)
  end)

  it("refuses meta.inf files of more values than any config, in memory bounded by their size", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local js = store .. "/jetstream"
    -- a real config with 10,000 subjects: about 10,010 values, read as ever
    local subjects = {}
    for i = 1, 10000 do subjects[i] = json.encode(("big.region%d.>"):format(i)) end
    write_stream(js, "BIG", ('{"name":"BIG","subjects":[%s],"retention":"limits","storage":"file",'
      .. '"num_replicas":3,"max_msgs":-1,"max_bytes":-1,"max_age":0}'):format(table.concat(subjects, ",")))
    local code, out, err = fx.run("inspect", store)
    assert.are.equal(0, code, out .. err)

    -- four files just under the 8 MiB meta.inf limit, `{},{},...`
    local n = ((8 << 20) - 32) // 3
    local body = '{"x":[' .. ("{},"):rep(n - 1) .. "{}]}"
    assert.is_true(#body < (8 << 20))
    for i = 1, 4 do write_stream(js, "HOSTILE" .. i, body) end
    local kb
    kb, code, out, err = peak("inspect", store)
    assert.are.equal(1, code)
    for i = 1, 4 do
      assert.matches(("%s/$G/streams/HOSTILE%d/meta.inf: more than %d values at byte %%d+: not a stream or consumer config")
        :format(js, i, LIMIT):gsub("%$", "%%$"):gsub("%-", "%%-"), out)
    end
    -- before: 2,069,212 KiB (README "Resource limits"); the input is 32 MiB
    assert.is_true(kb < 96 * 1024, ("peak RSS %d KiB for 32 MiB of input"):format(kb))

    local before = fx.tree_digest(store)
    kb, code, out, err = peak("prepare", store, "--dry-run")
    assert.are.equal(1, code, out .. err)
    assert.matches("HOSTILE4/meta.inf: more than " .. LIMIT .. " values", err, 1, true)
    assert.is_true(kb < 96 * 1024, ("peak RSS %d KiB"):format(kb))
    assert.are.equal(before, fx.tree_digest(store))

    -- handled like any unreadable meta file: --skip-bad leaves them out
    kb, code, out, err = peak("prepare", store, "--skip-bad")
    assert.are.equal(0, code, out .. err)
    assert.matches("SKIPPED (--skip-bad) " .. js .. "/$G/streams/HOSTILE1", out, 1, true)
    assert.is_true(kb < 96 * 1024, ("peak RSS %d KiB"):format(kb))
    for _, s in ipairs { "ORDERS", "BIG" } do
      local cfg = assert(json.decode(fx.read(js .. "/$G/streams/" .. s .. "/meta.inf")))
      assert.are.equal(1, cfg.num_replicas, s)
    end
    assert.are.equal(0, (fx.run("undo", store)))
    assert.are.equal(before, fx.tree_digest(store))
  end)
end)
