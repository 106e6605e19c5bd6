-- walk, move and batched changes: what the store holds and how it may change.
local jsr = require "jsr"
local fx = require "spec.support.fixture"

local function entries(store)
  local out = {}
  for e in assert(jsr.open(store)):walk() do out[#out + 1] = e end
  return out
end

local function kinds(list, kind)
  local out = {}
  for _, e in ipairs(list) do if e.kind == kind then out[#out + 1] = e end end
  return out
end

describe("walk", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  it("lists accounts, streams with their consumers, and Raft groups in name order", function()
    local list = entries(store)
    local names = {}
    for _, e in ipairs(list) do
      if e.kind ~= "raft" then names[#names + 1] = e.kind .. ":" .. e.name end
    end
    assert.are.same({ "account:$G", "stream:EVENTS", "consumer:audit", "consumer:billing",
      "stream:JOBS", "consumer:worker", "stream:KV_CFG", "stream:ORDERS", "consumer:proc",
      "account:$SYS" }, names)
    local raft = kinds(list, "raft")
    assert.are.equal(9, #raft)
    local groups = {}
    for _, g in ipairs(raft) do groups[g.group] = (groups[g.group] or 0) + 1 end
    assert.are.same({ meta = 1, stream = 4, consumer = 4 }, groups)
  end)

  it("accepts the jetstream/ directory as well as the store_dir", function()
    assert.are.same(entries(store), entries(store .. "/jetstream"))
  end)

  it("finds the system account by its _js_ directory, not by name", function()
    local m = fx.modern()
    local sys = {}
    for _, e in ipairs(kinds(entries(m), "account")) do sys[e.name] = e.system end
    assert.are.same({ ACME = false, SYS = true }, sys)
    fx.cleanup(m)
  end)

  it("skips partial deletes and symlinks with a note, and never follows a link", function()
    fx.sh(("mkdir %s"):format(fx.quote(store .. "/jetstream/$G/streams/.OLD")))
    local outside = fx.unpack("survivor-2.9.10.tar.gz")
    fx.sh(("ln -s %s %s"):format(fx.quote(outside .. "/jetstream/$G/streams/ORDERS"),
      fx.quote(store .. "/jetstream/$G/streams/LINKED")))
    local list = entries(store)
    local skipped = kinds(list, "skipped")
    assert.are.equal(2, #skipped)
    assert.matches("partial delete", skipped[1].message)
    assert.are.equal("LINKED", skipped[2].name)
    assert.matches("symlink", skipped[2].message)
    for _, s in ipairs(kinds(list, "stream")) do assert.are_not.equal("LINKED", s.name) end
    fx.cleanup(outside)
  end)

  it("reports an unreadable directory as an entry and goes on", function()
    -- as root, permissions do not stop reads; drop to nobody for this check
    local copy = fx.tmpdir()
    local js = copy .. "/jetstream"
    fx.sh(("cp -a %s %s && chmod -R o+rX %s && chmod 000 %s"):format(fx.quote(store .. "/jetstream"),
      fx.quote(js), fx.quote(copy), fx.quote(js .. "/$G/streams/JOBS/obs")))
    local root = io.popen("id -u"):read("l") == "0"
    local cmd = ("%s %s inspect %s --json"):format(
      root and "setpriv --reuid=65534 --regid=65534 --clear-groups" or "",
      fx.quote(fx.BIN), fx.quote(copy))
    local h = io.popen(cmd .. " 2>&1")
    local out = h:read("a")
    local _, _, code = h:close()
    assert.are.equal(1, code, out)
    assert.matches('JOBS/obs: Permission denied', out, 1, true)
    assert.matches('"name": "ORDERS"', out, 1, true)
    fx.sh("chmod -R u+rwx " .. fx.quote(copy))
    fx.cleanup(copy)
  end)

  it("refuses a directory that is not a store", function()
    local empty = fx.tmpdir()
    local ok, err = jsr.open(empty)
    assert.is_nil(ok)
    assert.matches("not a JetStream store", err)
    fx.cleanup(empty)
  end)
end)

describe("move (a tree aside)", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  it("moves a tree aside into the journal, where it stays whole", function()
    local sys = store .. "/jetstream/$SYS"
    local before = fx.tree_digest(sys)
    assert(fx.change(store, "move", sys))
    assert.is_nil(jsr.lstat(sys))
    local h = io.popen("ls -d " .. fx.quote(store) .. "/.js-recover/removed/*/0-*")
    local moved = h:read("l")
    h:close()
    assert.matches("/0%-%$SYS$", moved)
    assert.are.equal(before, fx.tree_digest(moved))
    local journal = io.popen("cat " .. fx.quote(store) .. "/.js-recover/journal/*.json"):read("a")
    assert.matches('"op":"move","path":"jetstream/$SYS"', journal, 1, true)
  end)

  it("purges when asked, removing links as links", function()
    local target = fx.tmpdir()
    fx.write(target .. "/keep", "x")
    local dir = store .. "/jetstream/$G/streams/KV_CFG"
    fx.sh(("ln -s %s %s"):format(fx.quote(target), fx.quote(dir .. "/msgs/link")))
    assert(fx.change(store, "move", dir, { purge = true }))
    assert.is_nil(jsr.lstat(dir))
    assert.are.equal("x", fx.read(target .. "/keep"))
    fx.cleanup(target)
  end)

  it("refuses paths outside the store, through symlinks, with '..', and the store itself", function()
    local outside = fx.tmpdir()
    fx.sh(("ln -s %s %s"):format(fx.quote(outside), fx.quote(store .. "/jetstream/out")))
    fx.sh(("ln -s loop1 %s && ln -s loop2 %s"):format(fx.quote(store .. "/jetstream/loop2"),
      fx.quote(store .. "/jetstream/loop1")))
    fx.write(outside .. "/f", "x")
    local before = fx.tree_digest(store)
    local cases = {
      { outside, "outside the store" },
      { store .. "/jetstream/out/f", "is a symlink" },
      { store .. "/jetstream/loop1/x", "is a symlink" },
      { store .. "/jetstream/$G/../$SYS", '".."' },
      { store, "store directory itself" },
      { store .. "/jetstream/$G/streams/NOPE", "No such file" },
    }
    for _, c in ipairs(cases) do
      local ok, err = fx.change(store, "move", c[1])
      assert.is_nil(ok, c[1])
      assert.matches(c[2], err, 1, true)
    end
    assert.are.equal(before, fx.tree_digest(store))
    assert.are.equal("x", fx.read(outside .. "/f"))
    fx.cleanup(outside)
  end)

  it("stays inside the store its set came from, with another store open", function()
    local other = fx.unpack("survivor-2.9.10.tar.gz")
    local a, b = assert(jsr.open(store)), assert(jsr.open(other))
    local before = fx.tree_digest(other)
    local c <close> = assert(a:changes())
    local ok, err = c:move(b.js_dir .. "/$SYS")
    assert.is_nil(ok)
    assert.matches("outside the store", err, 1, true)
    assert.are.equal(before, fx.tree_digest(other))
    b:close()
    assert.has_error(function() b:changes() end, "this store is closed")
    fx.cleanup(other)
  end)
end)

describe("changes", function()
  it("applies many writes as one journaled set, keeping each replaced file", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local st = assert(jsr.open(store))
    local c = assert(st:changes())
    local paths = {}
    for i = 1, 40 do -- more than the fsync-each threshold: the syncfs path
      local p = ("%s/file-%02d"):format(store, i)
      paths[i] = p
      fx.write(p, "old " .. i)
      assert(c:replace(p, "new " .. i))
    end
    for i = 1, 40 do assert.are.equal("old " .. i, fx.read(paths[i])) end
    local ok, err = c:replace(paths[1], "twice")
    assert.is_nil(ok)
    assert.matches("already changed in this set", err)
    c:close() -- abandoned: nothing applied
    for i = 1, 40 do assert.are.equal("old " .. i, fx.read(paths[i])) end

    -- a change that cannot be staged makes the whole set refuse to commit
    c = assert(st:changes())
    assert(c:replace(paths[1], "new 1"))
    ok, err = c:replace("/etc/js-recover-must-not-exist", "x")
    assert.is_nil(ok)
    assert.matches("outside the store", err)
    ok, err = c:commit()
    assert.is_nil(ok)
    assert.matches("staging a change failed", err)
    c:close()
    assert.are.equal("old 1", fx.read(paths[1]))

    c = assert(st:changes())
    for i = 1, 40 do assert(c:replace(paths[i], "new " .. i)) end
    assert.are.equal(40, c:count())
    local id = assert(c:commit())
    c:close()
    for i = 1, 40 do assert.are.equal("new " .. i, fx.read(paths[i])) end
    local backup = store .. "/.js-recover/backup/" .. id
    assert.are.equal("old 1", fx.read(backup .. "/0"))
    assert.are.equal("old 40", fx.read(backup .. "/39"))
    assert.is_not_nil(jsr.lstat(store .. "/.js-recover/journal/" .. id .. ".committed"))
    -- no temp files left behind
    local h = io.popen("find " .. fx.quote(store) .. " -name '*.jsr-tmp' | wc -l")
    assert.are.equal("0", h:read("l"))
    h:close()
    fx.cleanup(store)
  end)

  it("leaves no trace when closed without commit", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local before = fx.tree_digest(store)
    local c = assert(assert(jsr.open(store)):changes())
    assert(c:replace(store .. "/x", "data"))
    c:close()
    assert.are.equal(before, fx.tree_digest(store))
    fx.cleanup(store)
  end)
end)

describe("every write", function()
  local store, outside
  before_each(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    outside = fx.tmpdir()
    fx.write(outside .. "/f", "x")
  end)
  after_each(function()
    fx.cleanup(store)
    fx.cleanup(outside)
  end)

  it("stays inside the store: no write, rename or meta write through a link, a loop or '..'", function()
    local js = store .. "/jetstream"
    fx.sh(("ln -s %s %s"):format(fx.quote(outside), fx.quote(js .. "/out")))
    fx.sh(("ln -s %s %s"):format(fx.quote(outside .. "/f"), fx.quote(js .. "/flink")))
    fx.sh(("ln -s loop1 %s && ln -s loop2 %s"):format(fx.quote(js .. "/loop2"), fx.quote(js .. "/loop1")))
    local orders = js .. "/$G/streams/ORDERS"
    local cfg = assert(jsr.read_meta(orders))
    local before = fx.tree_digest(store)
    local outside_before = fx.tree_digest(outside)
    local cases = {
      { function() return fx.change(store, "replace", js .. "/out/new", "x") end, "is a symlink" },
      { function() return fx.change(store, "replace", js .. "/out/f", "x") end, "is a symlink" },
      { function() return fx.change(store, "replace", js .. "/flink", "x") end, "is a symlink" },
      { function() return fx.change(store, "replace", js .. "/loop1/x", "x") end, "is a symlink" },
      { function() return fx.change(store, "replace", js .. "/loop1", "x") end, "is a symlink" },
      { function() return fx.change(store, "replace", js .. "/$G/../x", "x") end, '".."' },
      { function() return fx.change(store, "replace", outside .. "/g", "x") end, "outside the store" },
      { function() return fx.change(store, "replace", "/etc/js-recover-must-not-exist", "x") end, "outside the store" },
      { function() return fx.change(store, "write_meta", js .. "/out", cfg) end, "is a symlink" },
      { function() return fx.change(store, "write_meta", orders .. "/../JOBS", cfg) end, '".."' },
      { function() return fx.change(store, "rehash", js .. "/loop1") end, "is a symlink" },
      { function() return fx.change(store, "rename", orders, js .. "/out/ORDERS") end, "is a symlink" },
      { function() return fx.change(store, "rename", orders, outside .. "/ORDERS") end, "outside the store" },
      { function() return fx.change(store, "rename", orders, js .. "/loop1/ORDERS") end, "is a symlink" },
      { function() return fx.change(store, "rename", js .. "/out", js .. "/x") end, "is a symlink" },
      { function() return fx.change(store, "rename", orders, js .. "/$G/streams/../ORDERS2") end, '".."' },
      { function() return fx.change(store, "move", js .. "/flink") end, "is a symlink" },
    }
    for i, c in ipairs(cases) do
      local ok, err = c[1]()
      assert.is_nil(ok, "case " .. i)
      assert.matches(c[2], err, 1, true)
    end
    assert.are.equal(before, fx.tree_digest(store))
    assert.are.equal(outside_before, fx.tree_digest(outside))
  end)

  it("refuses a journal folder that is a link out of the store", function()
    for _, link in ipairs({ "/.js-recover", "/.js-recover/journal", "/.js-recover/backup",
                            "/.js-recover/removed" }) do
      fx.sh("rm -rf " .. fx.quote(store .. "/.js-recover"))
      if link ~= "/.js-recover" then fx.sh("mkdir " .. fx.quote(store .. "/.js-recover")) end
      fx.sh(("ln -s %s %s"):format(fx.quote(outside), fx.quote(store .. link)))
      local before = fx.tree_digest(store)
      local ok, err = fx.change(store, "move", store .. "/jetstream/$SYS")
      assert.is_nil(ok, link)
      assert.matches(store .. link .. ": is a symlink", err, 1, true)
      ok, err = fx.change(store, "replace", store .. "/x", "x")
      assert.is_nil(ok, link)
      assert.are.equal(before, fx.tree_digest(store))
      assert.are.same({ "f" }, (function()
        local h = io.popen("ls -A " .. fx.quote(outside))
        local t = {}
        for l in h:lines() do t[#t + 1] = l end
        h:close()
        return t
      end)())
    end
  end)

  it("accepts names that merely contain dots, spaces, unicode and $", function()
    for _, name in ipairs({ "a..b", "...", "with space", "ü$x", ".hidden" }) do
      assert(fx.change(store, "replace", store .. "/" .. name, "x"))
      assert.are.equal("x", fx.read(store .. "/" .. name))
    end
    assert(fx.change(store, "rename", store .. "/a..b", store .. "/a..c"))
    assert.are.equal(0, (fx.run("undo", store)))
    assert.is_nil(jsr.lstat(store .. "/a..c"))
    assert.is_nil(jsr.lstat(store .. "/.js-recover"))
  end)
end)
