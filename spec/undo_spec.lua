-- undo: every fixture prepared and undone is the tree it was, byte for byte
-- and mode for mode (fx.tree_digest); journals are taken back newest
-- first; a journal that points anywhere but where commit writes is refused.
local jsr = require "jsr"
local fx = require "spec.support.fixture"

local function ls(pattern)
  local h = io.popen("ls -d " .. pattern .. " 2>/dev/null")
  local out = {}
  for l in h:lines() do out[#out + 1] = l end
  h:close()
  return out
end

local function journal_ids(store)
  local ids = {}
  for _, j in ipairs(assert(assert(jsr.open(store)):journal())) do ids[#ids + 1] = j.id end
  return ids
end

-- the survivor with a second account, so prepare renames $G as well
local function with_named_account(store)
  fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(store .. "/jetstream/ACME/streams"),
    fx.quote(store .. "/jetstream/$G/streams/ORDERS"), fx.quote(store .. "/jetstream/ACME/streams/")))
  return store
end

local function skip_bad_of(tarball)
  return function() return fx.unpack(tarball) end, { "--skip-bad" }
end

-- the key the encrypted survivor was written with (spec/fixtures/README.md)
local KEY_FILE = os.tmpname()
fx.write(KEY_FILE, "recovery-drill-key\n")

describe("undo", function()
  local cases = {
    { "the survivor", function() return fx.unpack("survivor-2.9.10.tar.gz") end, {} },
    { "the survivor with a named account ($G renamed)",
      function() return with_named_account(fx.unpack("survivor-2.9.10.tar.gz")) end, {} },
    { "the encrypted survivor (--skip-bad)", skip_bad_of("survivor-encrypted-chacha-2.9.10.tar.gz") },
    { "the encrypted survivor (with its key: meta files re-encrypted)",
      function() return fx.unpack("survivor-encrypted-chacha-2.9.10.tar.gz") end, { "--key-file", KEY_FILE } },
    { "the encrypted standalone store (--skip-bad)", skip_bad_of("standalone-encrypted-aes-2.9.10.tar.gz") },
    { "the modern store", fx.modern, {} },
  }
  for _, case in ipairs(cases) do
    it("puts " .. case[1] .. " back byte for byte after prepare, and prepare works again", function()
      local store = case[2]()
      finally(function() fx.cleanup(store) end)
      local original = fx.tree_digest(store)
      local code, _, err = fx.run("prepare", store, table.unpack(case[3]))
      assert.are.equal(0, code, err)
      local prepared = fx.tree_digest(store)
      assert.are_not.equal(original, prepared)
      local out
      code, out, err = fx.run("undo", store)
      assert.are.equal(0, code, err)
      assert.matches("undone: journal", out, 1, true)
      assert.matches("is as it was before", out, 1, true)
      assert.are.equal(original, fx.tree_digest(store))
      assert.is_nil(jsr.lstat(store .. "/.js-recover"))
      -- nothing left to undo, and prepare does the same job again
      code, out = fx.run("undo", store)
      assert.are.equal(0, code)
      assert.matches("nothing to undo", out, 1, true)
      code, _, err = fx.run("prepare", store, table.unpack(case[3]))
      assert.are.equal(0, code, err)
      assert.are.equal(0, (fx.run("undo", store)))
      assert.are.equal(original, fx.tree_digest(store))
    end)
  end

  it("takes several runs back newest first, or only those from --id on", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    assert.are.equal(0, (fx.run("prepare", store)))
    local first = fx.tree_digest(store)
    -- a second run with another port replaces recovery.conf and the report
    -- that the first run created
    assert.are.equal(0, (fx.run("prepare", store, "--port", "4333")))
    local ids = journal_ids(store)
    assert.are.equal(2, #ids)
    assert.matches("^000001%-", ids[1])
    assert.matches("^000002%-", ids[2])
    local code, out = fx.run("undo", store, "--list")
    assert.are.equal(0, code)
    assert.matches(ids[1] .. "  committed", out, 1, true)
    assert.matches(ids[2] .. "  committed", out, 1, true)

    code, out = fx.run("undo", store, "--id", ids[2])
    assert.are.equal(0, code, out)
    assert.matches("keeps the earlier journals", out, 1, true)
    assert.are.equal(first, fx.tree_digest(store))
    assert.matches('listen: "127.0.0.1:4222"', fx.read(store .. "/recovery.conf"), 1, true)

    assert.are.equal(0, (fx.run("prepare", store, "--port", "4333")))
    code, out = fx.run("undo", store)
    assert.are.equal(0, code, out)
    local undone = {}
    for id in out:gmatch("undone: journal (%S+)") do undone[#undone + 1] = id end
    assert.are.equal(2, #undone)
    assert.is_true(undone[1] > undone[2], "newest first")
    assert.are.equal(original, fx.tree_digest(store))

    code, _, err = fx.run("undo", store, "--id", "000009-nope")
    assert.are.equal(0, code) -- nothing to undo: no journal at all
    assert.are.equal(0, (fx.run("prepare", store)))
    code, _, err = fx.run("undo", store, "--id", "000009-nope")
    assert.are.equal(1, code)
    assert.matches("no journal 000009-nope", err, 1, true)
  end)

  it("undoes a copy of a prepared store at its new place", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local copy = fx.tmpdir()
    finally(function() fx.cleanup(store); fx.cleanup(copy) end)
    local original = fx.tree_digest(store)
    assert.are.equal(0, (fx.run("prepare", store)))
    fx.sh(("cp -a %s/. %s/"):format(fx.quote(store), fx.quote(copy)))
    local code, _, err = fx.run("undo", copy)
    assert.are.equal(0, code, err)
    assert.are.equal(original, fx.tree_digest(copy))
    -- the original stays prepared: undo touched only the copy
    assert.is_not_nil(jsr.lstat(store .. "/.js-recover"))
  end)

  it("refuses to bring back trees deleted with --purge, unless told, and then restores the rest", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local expect = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store); fx.cleanup(expect) end)
    local code, _, err = fx.run("prepare", store, "--purge")
    assert.are.equal(0, code, err)
    assert.are.same({}, ls(fx.quote(store) .. "/.js-recover/removed/*/*"))
    assert.are.equal("purged", assert(jsr.open(store)):journal()[1].state)
    local before = fx.tree_digest(store)
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code)
    assert.matches("jetstream/$SYS: cannot be restored", err, 1, true)
    assert.matches("--ignore-purged", err, 1, true)
    assert.matches("nothing was changed", err, 1, true)
    assert.are.equal(before, fx.tree_digest(store))
    code, _, err = fx.run("undo", store, "--ignore-purged")
    assert.are.equal(0, code, err)
    fx.sh("rm -rf " .. fx.quote(expect .. "/jetstream/$SYS"))
    assert.are.equal(fx.tree_digest(expect), fx.tree_digest(store))
  end)

  it("refuses a journal that points outside its places, through a link or with '..', changing nothing", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    local outside = fx.tmpdir()
    finally(function() fx.cleanup(store); fx.cleanup(outside) end)
    assert.are.equal(0, (fx.run("prepare", store)))
    local id = journal_ids(store)[1]
    local jfile = store .. "/.js-recover/journal/" .. id .. ".json"
    local good = fx.read(jfile)
    fx.write(outside .. "/victim", "keep me")
    local edits = {
      { '"path":"recovery.conf"', '"path":"../../' .. outside:sub(2) .. '/victim"', "outside the store's data" },
      { '"path":"recovery.conf"', '"path":"' .. outside .. '/victim"', "outside the store's data" },
      { '"path":"recovery.conf"', '"path":".js-recover/journal/x"', "outside the store's data" },
      { '"tmp":"recovery.conf.jsr-tmp"', '"tmp":"jetstream/x.jsr-tmp"', '"tmp" is not' },
      { '"backup":".js-recover/backup/' .. id .. '/0"', '"backup":"jetstream/$G/streams/ORDERS/meta.inf"',
        "a backup outside" },
      { '"to":".js-recover/removed/' .. id .. '/10-$SYS"', '"to":"jetstream/$G"', "is not in .js-recover/removed" },
      { '"op":"move"', '"op":"explode"', "unknown operation" },
      { '"ops":[', '"ops":[[', "operation object" },
    }
    local digest = fx.tree_digest(store)
    for _, e in ipairs(edits) do
      local s, n = good:gsub(e[1]:gsub("%p", "%%%0"), (e[2]:gsub("%%", "%%%%")), 1)
      assert.are.equal(1, n, e[1])
      fx.write(jfile, s)
      local code, _, err = fx.run("undo", store)
      assert.are.equal(1, code, e[2])
      assert.matches(jfile, err, 1, true)
      assert.matches(e[3], err, 1, true)
    end
    fx.write(jfile, good)
    assert.are.equal(digest, fx.tree_digest(store))

    -- a backup folder replaced by a link to files elsewhere is not followed
    local bdir = store .. "/.js-recover/backup/" .. id
    fx.sh(("mv %s %s/b && ln -s %s/b %s"):format(fx.quote(bdir), fx.quote(outside),
      fx.quote(outside), fx.quote(bdir)))
    local code, _, err = fx.run("undo", store)
    assert.are.equal(1, code)
    assert.matches(bdir .. ": is a symlink", err, 1, true)
    assert.are.equal("keep me", fx.read(outside .. "/victim"))
    assert.is_not_nil(jsr.lstat(outside .. "/b/0"))
    fx.sh(("rm %s && mv %s/b %s"):format(fx.quote(bdir), fx.quote(outside), fx.quote(bdir)))
    assert.are.equal(digest, fx.tree_digest(store))
    assert.are.equal(0, (fx.run("undo", store)))
  end)

  it("is refused while another js-recover holds the store's lock", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    local lock = assert(assert(jsr.open(store)):lock())
    local again, lerr = assert(jsr.open(store .. "/jetstream")):lock()
    assert.is_nil(again)
    assert.matches("another js-recover is working on this store", lerr, 1, true)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code)
    assert.matches("another js-recover is working on this store", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    lock:unlock()
    assert.are.equal(0, (fx.run("prepare", store)))
    lock = assert(assert(jsr.open(store)):lock())
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code)
    assert.matches("another js-recover", err, 1, true)
    lock:unlock()
    assert.are.equal(0, (fx.run("undo", store)))
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("is refused by prepare until an interrupted run is undone", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    -- cut off between the renames: half the files are new
    local code = fx.run_with({ env = { JSR_CRASH_AT = "65" } }, "prepare", store)
    assert.are.equal(99, code)
    assert.are.equal("uncommitted", assert(jsr.open(store)):journal()[1].state)
    local out, err
    code, out, err = fx.run("prepare", store)
    assert.are.equal(1, code, out)
    assert.matches("a run was cut off", err, 1, true)
    assert.matches("js-recover undo " .. store, err, 1, true)
    code, out, err = fx.run("prepare", store, "--dry-run")
    assert.are.equal(1, code)
    code, out, err = fx.run("undo", store)
    assert.are.equal(0, code, err)
    assert.are.equal(original, fx.tree_digest(store))
    assert.are.equal(0, (fx.run("prepare", store)))
  end)

  it("removes the empty folders of a run cut off while creating them", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    -- step 2 is the mkdir of .js-recover/journal: .js-recover/ exists, empty
    assert.are.equal(99, (fx.run_with({ env = { JSR_CRASH_AT = "2" } }, "prepare", store)))
    assert.are.equal("directory", jsr.lstat(store .. "/.js-recover"))
    local code, out = fx.run("undo", store)
    assert.are.equal(0, code)
    assert.matches("nothing to undo", out, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("rolls a failed commit back by itself, leaving nothing behind", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    local c = assert(assert(jsr.open(store)):changes())
    assert(c:replace(store .. "/a-new-file", "x"))
    assert(c:replace(store .. "/jetstream/$G/streams/ORDERS/meta.sum", "0000000000000000"))
    -- a directory where the second temp file must go: writing it fails
    -- after the journal and the first temp file exist
    fx.sh("mkdir " .. fx.quote(store .. "/jetstream/$G/streams/ORDERS/meta.sum.jsr-tmp"))
    local digest = fx.tree_digest(store)
    local id, err = c:commit()
    c:close()
    assert.is_nil(id)
    assert.matches("meta.sum.jsr-tmp", err, 1, true)
    assert.matches("rolled back: nothing was changed", err, 1, true)
    assert.are.equal(digest, fx.tree_digest(store))
    fx.sh("rmdir " .. fx.quote(store .. "/jetstream/$G/streams/ORDERS/meta.sum.jsr-tmp"))
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("refuses to stage a name too long for its temp file, and undoes a journal naming one", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    local long = ("n"):rep(250)
    local c = assert(assert(jsr.open(store)):changes())
    local ok, err = c:replace(store .. "/" .. long, "x")
    c:close()
    assert.is_nil(ok)
    assert.matches("name too long: with .jsr-tmp", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    -- a journal of an earlier version that staged one (its commit failed
    -- creating the temp file, and so did its rollback): undo finishes it
    assert.are.equal(0, (fx.run("prepare", store)))
    local jfile = store .. "/.js-recover/journal/" .. journal_ids(store)[1] .. ".json"
    local text = fx.read(jfile)
    fx.write(jfile, (text:gsub("\n", ('\n{"op":"replace","path":"%s","tmp":"%s.jsr-tmp","backup":null},\n')
      :format(long, long), 1)))
    local code, _, uerr = fx.run("undo", store)
    assert.are.equal(0, code, uerr)
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("is refused by the lock even before any journal exists (a prepare still reading)", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local original = fx.tree_digest(store)
    local lock = assert(assert(jsr.open(store)):lock())
    local code, out, err = fx.run("undo", store)
    lock:unlock()
    assert.are.equal(1, code, out)
    assert.matches("another js-recover is working on this store", err, 1, true)
    assert.is_nil(out:find("nothing to undo", 1, true))
    assert.are.equal(original, fx.tree_digest(store))
    -- --list only reads: it answers while the lock is held
    lock = assert(assert(jsr.open(store)):lock())
    code, out = fx.run("undo", store, "--list")
    lock:unlock()
    assert.are.equal(0, code)
    assert.matches("no journal", out, 1, true)
  end)

  it("finishes after a server started on the prepared store deleted a stream", function()
    local ns = require "spec.support.natsserver"
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local events = fx.read(store .. "/jetstream/$G/streams/EVENTS/meta.inf")
    assert.are.equal(0, (fx.run("prepare", store)))
    local srv = ns.start { config = store .. "/recovery.conf" }
    local ok, e = pcall(function()
      -- $JS.API.STREAM.DELETE over the client protocol (no client library
      -- needed for one request)
      fx.sh(("bash -c %s"):format(fx.quote(("exec 3<>/dev/tcp/127.0.0.1/%d && printf "
        .. "'CONNECT {\"verbose\":false}\\r\\nSUB _INBOX.h1 1\\r\\n"
        .. "PUB $JS.API.STREAM.DELETE.ORDERS _INBOX.h1 0\\r\\n\\r\\n' >&3 && "
        .. "timeout 10 grep -m1 -a -q '\"success\":true' <&3"):format(srv.port))))
    end)
    srv:stop()
    assert(ok, e)
    assert.is_nil(jsr.lstat(store .. "/jetstream/$G/streams/ORDERS"))
    local code, out, err = fx.run("undo", store)
    assert.are.equal(0, code, err)
    assert.matches("were to files whose directory was deleted after it", out, 1, true)
    assert.matches("streams/ORDERS/", out, 1, true)
    assert.is_nil(jsr.lstat(store .. "/.js-recover"))
    assert.are.equal(events, fx.read(store .. "/jetstream/$G/streams/EVENTS/meta.inf"))
    code, out = fx.run("undo", store)
    assert.are.equal(0, code)
    assert.matches("nothing to undo", out, 1, true)
    assert.are.equal(0, (fx.run("prepare", store)))
  end)

  it("as another user, --purge refuses a tree it cannot delete, and undo --ignore-purged what is left of one",
    function()
      local nobody = fx.as_nobody()
      if #nobody == 0 then return pending("needs root, to make a directory the user cannot write") end
      local store = fx.unpack("survivor-2.9.10.tar.gz")
      local expect = fx.unpack("survivor-2.9.10.tar.gz")
      finally(function() fx.cleanup(store); fx.cleanup(expect) end)
      local function by_nobody(...) return fx.run_with({ prefix = nobody }, ...) end
      local sys_dir = "/jetstream/$SYS/_js_"
      -- readable by the user (prepare reads $SYS), not writable
      fx.sh(("chmod 755 %s && chown -R 65534:65534 %s && chown 0:0 %s && chmod 755 %s"):format(
        fx.quote(store), fx.quote(store), fx.quote(store .. sys_dir), fx.quote(store .. sys_dir)))
      local digest = fx.tree_digest(store)
      local code, _, err = by_nobody("prepare", store, "--purge")
      assert.are_not.equal(0, code)
      assert.matches(store .. sys_dir .. ": its entries cannot be deleted (Permission denied, owner uid 0)",
        err, 1, true)
      assert.matches("nothing was changed", err, 1, true)
      assert.are.equal(digest, fx.tree_digest(store))
      -- a purge cut off (as root), then a tree in it the user cannot empty
      fx.sh(("chown 65534:65534 %s && chmod 750 %s"):format(fx.quote(store .. sys_dir),
        fx.quote(store .. sys_dir)))
      local steps = select(3, fx.run_with({ env = { JSR_CRASH_TRACE = "1" } }, "prepare", expect, "--purge"))
      local purge_at
      for n, what in steps:gmatch("jsr%-step (%d+): (%a+) [^\n]*removed") do
        if what == "unlink" then purge_at = tonumber(n); break end
      end
      fx.cleanup(expect)
      expect = fx.unpack("survivor-2.9.10.tar.gz")
      assert.are.equal(99, (fx.run_with({ env = { JSR_CRASH_AT = tostring(purge_at + 5) } },
        "prepare", store, "--purge")))
      assert.are.equal("purged", assert(jsr.open(store)):journal()[1].state)
      local left = assert(io.popen("ls -d " .. fx.quote(store) .. "/.js-recover/removed/*/*/_js_/*/")):read("l")
      fx.sh(("chown -R 65534:65534 %s && chown 0:0 %s && chmod 755 %s"):format(fx.quote(store),
        fx.quote(left), fx.quote(left)))
      -- prepare is not held up by it: the prepared store is not affected
      local out
      code, out, err = by_nobody("prepare", store)
      assert.are.equal(0, code, err)
      assert.matches("already prepared", out, 1, true)
      assert.matches("warning: " .. left:gsub("/$", ""), err, 1, true)
      digest = fx.tree_digest(store)
      code, _, err = by_nobody("undo", store, "--ignore-purged")
      assert.are.equal(1, code, err)
      assert.matches("run undo as its owner or as root", err, 1, true)
      assert.matches("nothing was changed", err, 1, true)
      assert.are.equal(digest, fx.tree_digest(store))
      -- as root it finishes: the store as it was, without $SYS
      code, _, err = fx.run("undo", store, "--ignore-purged")
      assert.are.equal(0, code, err)
      fx.sh("rm -rf " .. fx.quote(expect .. "/jetstream/$SYS") .. " && chmod 755 " .. fx.quote(expect)
        .. " && chown -R 65534:65534 " .. fx.quote(expect))
      assert.are.equal(fx.tree_digest(expect), fx.tree_digest(store))
    end)

  teardown(function() os.remove(KEY_FILE) end)
end)
