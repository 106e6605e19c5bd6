-- The guards prepare and undo run before changing anything: no other
-- process may use the store (open files under it, or a nats-server whose
-- command line or config names it) unless --force-open, and every
-- directory they will write must be writable.
local jsr = require "jsr"
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local function is_root()
  local h = io.popen("id -u")
  local uid = h:read("l")
  h:close()
  return uid == "0"
end

-- Starts `sh -c script` in the background with its output discarded, and
-- returns its pid (the shell execs the last command, so it keeps the pid).
local function spawn(script, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = fx.quote(a) end
  local h = assert(io.popen(("sh -c %s sh %s >/dev/null 2>&1 </dev/null & echo $!"):format(
    fx.quote(script), table.concat(args, " "))))
  local pid = math.tointeger(tonumber(h:read("l")))
  h:close()
  assert(pid, "no pid")
  -- wait until it has opened what it opens (exec'ed into sleep)
  for _ = 1, 100 do
    local f = io.open("/proc/" .. pid .. "/comm")
    local comm = f and f:read("l")
    if f then f:close() end
    if comm == "sleep" then break end
    os.execute("sleep 0.02")
  end
  return pid
end

local function kill(pid)
  os.execute("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not ns.alive(pid) then return end
    os.execute("sleep 0.02")
  end
end

describe("the live-store guard", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  it("refuses a store another process has a file of open, naming the pid, command and file", function()
    local file = store .. "/jetstream/$G/streams/ORDERS/meta.inf"
    local pid = spawn('exec 3<"$1"; exec sleep 60', file)
    finally(function() kill(pid) end)
    local list = assert(assert(jsr.open(store)):open_by())
    assert.are.equal(1, #list)
    assert.are.same({ pid = pid, command = "sleep 60", file = file, how = "open file" }, list[1])

    local original = fx.tree_digest(store)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code)
    assert.matches(("pid %d (sleep 60): open file %s"):format(pid, file), err, 1, true)
    assert.matches("nothing changed", err, 1, true)
    assert.matches("--force-open", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    -- a dry run changes nothing either way: it warns
    code, _, err = fx.run("prepare", store, "--dry-run")
    assert.are.equal(0, code)
    assert.matches("warning: other processes use", err, 1, true)
    -- the override, when the operator knows better
    code, _, err = fx.run("prepare", store, "--force-open")
    assert.are.equal(0, code, err)
    assert.matches("pid " .. pid, err, 1, true)
    local prepared = fx.tree_digest(store)
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code)
    assert.matches(("pid %d (sleep 60)"):format(pid), err, 1, true)
    assert.are.equal(prepared, fx.tree_digest(store))
    code, _, err = fx.run("undo", store, "--force-open")
    assert.are.equal(0, code, err)
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("refuses a store a running nats-server uses, even idle, and works once it is stopped", function()
    local original = fx.tree_digest(store)
    local srv, srv2
    -- one finally per test: busted keeps only the last function given
    finally(function()
      if srv then srv:stop() end
      if srv2 then srv2:stop() end
    end)
    srv = ns.start { store_dir = store }
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code)
    assert.matches(("pid %d %%([^)]*nats%%-server"):format(srv.pid), err)
    assert.matches("command line " .. store, err, 1, true)
    srv:stop()
    -- the server itself may have written to the store: compare after it
    original = fx.tree_digest(store)
    code, _, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.are_not.equal(original, fx.tree_digest(store))

    -- a server on the prepared store's own recovery.conf
    srv2 = ns.start { config = store .. "/recovery.conf" }
    local prepared = fx.tree_digest(store)
    code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code)
    assert.matches(("pid %d"):format(srv2.pid), err, 1, true)
    assert.matches("command line " .. store .. "/recovery.conf", err, 1, true)
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code)
    assert.matches(("pid %d"):format(srv2.pid), err, 1, true)
    assert.are.equal(prepared, fx.tree_digest(store))
  end)

  it("finds a server through a config elsewhere that names the store, and its open message blocks", function()
    local confdir = fx.tmpdir()
    local fresh = fx.tmpdir()
    local srv, srv2
    finally(function()
      if srv then srv:stop() end
      if srv2 then srv2:stop() end
      fx.cleanup(confdir)
      fx.cleanup(fresh)
    end)
    fx.write(confdir .. "/nats.conf", ('jetstream { store_dir: "%s" }\n'):format(store))
    srv = ns.start { config = confdir .. "/nats.conf" }
    local list = assert(assert(jsr.open(store)):open_by())
    local how = {}
    for _, o in ipairs(list) do
      if o.pid == srv.pid then how[o.how] = o.file end
    end
    assert.are.equal(confdir .. "/nats.conf", how["config file"])
    srv:stop()

    -- or names it in a file its config includes (relative to the config)
    fx.sh("mkdir -p " .. fx.quote(confdir .. "/conf.d"))
    fx.write(confdir .. "/conf.d/js.conf", ('jetstream { store_dir: "%s" }\n'):format(store))
    fx.write(confdir .. "/main.conf", '# site config\n  include "conf.d/js.conf"\n')
    srv = ns.start { config = confdir .. "/main.conf" }
    list = assert(assert(jsr.open(store)):open_by())
    how = {}
    for _, o in ipairs(list) do
      if o.pid == srv.pid then how[o.how] = o.file end
    end
    assert.are.equal(confdir .. "/main.conf", how["config file"])
    srv:stop()

    -- with messages published, the server keeps its last block open
    srv2 = ns.start { store_dir = fresh }
    ns.jspub(srv2, { stream = "T", count = 10 })
    list = assert(assert(jsr.open(fresh)):open_by())
    local blk
    for _, o in ipairs(list) do
      if o.pid == srv2.pid and o.how == "open file" and o.file:match("/msgs/1%.blk$") then blk = o end
    end
    assert.is_not_nil(blk, "the server's open block file")
    assert.matches("^" .. fresh:gsub("%p", "%%%0") .. "/jetstream/", blk.file)
  end)
end)

-- An idle nats-server keeps no file of its store open: the guard must read
-- its config the way the server does.  Each case was first checked with the
-- real server (its log's "Store Directory" line), so the guard is tested
-- against where the server really writes.
describe("the live-store guard reading a server's config", function()
  local store, dirs, srv
  before_each(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    dirs = {}
  end)
  after_each(function()
    if srv then srv:stop() end
    srv = nil
    for _, d in ipairs(dirs) do fx.cleanup(d) end
    fx.cleanup(store)
  end)
  local function tmp()
    local d = fx.tmpdir()
    dirs[#dirs + 1] = d
    return d
  end
  local function dirname(p) return (p:gsub("/[^/]+$", "")) end
  local function inode(p) -- device:inode, the same through links and mounts
    local h = assert(io.popen("stat -L -c %d:%i " .. fx.quote(p)))
    local r = h:read("l")
    h:close()
    return r
  end
  local function basename(p) return (p:match("([^/]+)$")) end

  -- starts the server, checks from its log where it keeps its streams, and
  -- returns what prepare said (it must refuse, changing nothing)
  local function refused(conf, opts, expect_store)
    opts = opts or {}
    opts.config = conf
    srv = ns.start(opts)
    local log = srv:log()
    local named = log:match('Store Directory: "([^"]+)"')
    assert.is_not_nil(named, log)
    if named:sub(1, 1) ~= "/" then named = (opts.cwd or ".") .. "/" .. named end
    assert.are.equal(inode((expect_store or store) .. "/jetstream"), inode(named), named)
    local original = fx.tree_digest(store)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code, err)
    assert.matches(("pid %d"):format(srv.pid), err, 1, true)
    assert.matches("nothing changed", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    srv:stop()
    srv = nil
    return err
  end

  it("follows a symlink to the store", function()
    local d = tmp()
    fx.sh(("ln -s %s %s"):format(fx.quote(store), fx.quote(d .. "/link")))
    fx.write(d .. "/nats.conf", ('jetstream { store_dir: "%s/link" }\n'):format(d))
    local err = refused(d .. "/nats.conf")
    assert.matches("config file " .. d .. "/nats.conf", err, 1, true)
  end)

  it("resolves ./relative store_dir against the server's working directory, not the config's", function()
    local d = tmp()
    fx.write(d .. "/nats.conf", ('jetstream { store_dir: "./%s" }\n'):format(basename(store)))
    refused(d .. "/nats.conf", { cwd = dirname(store) })
    -- the same config started elsewhere names another directory: not ours
    local elsewhere = tmp()
    srv = ns.start { config = d .. "/nats.conf", cwd = elsewhere }
    local list = assert(assert(jsr.open(store)):open_by())
    for _, o in ipairs(list) do assert.are_not.equal(srv.pid, o.pid, o.how .. " " .. o.file) end
  end)

  it("resolves $VAR from the server's environment and from the config's own variables", function()
    local d = tmp()
    fx.write(d .. "/env.conf", "jetstream { store_dir: $JSR_TEST_STORE }\n")
    refused(d .. "/env.conf", { env = { JSR_TEST_STORE = store } })
    fx.write(d .. "/var.conf", ('DATA = "%s"\njetstream {\n  store_dir = $DATA\n}\n'):format(store))
    refused(d .. "/var.conf")
    -- a top-level store_dir, in a file the config includes
    fx.write(d .. "/inc.conf", ('store_dir: %s\n'):format(store))
    fx.write(d .. "/top.conf", "jetstream: enabled\ninclude ./inc.conf\n")
    refused(d .. "/top.conf")
  end)

  it("sees through a bind mount (same device and inode, another path)", function()
    local d = tmp()
    fx.sh("mkdir " .. fx.quote(d .. "/mnt"))
    if not os.execute(("mount --bind %s %s 2>/dev/null"):format(fx.quote(store), fx.quote(d .. "/mnt"))) then
      pending("mount --bind is not possible here (needs root)")
      return
    end
    finally(function()
      if srv then srv:stop() end
      srv = nil
      os.execute("umount " .. fx.quote(d .. "/mnt"))
    end)
    fx.write(d .. "/nats.conf", ('jetstream { store_dir: "%s/mnt" }\n'):format(d))
    refused(d .. "/nats.conf")
  end)

  it("knows the server's default store, $TMPDIR/nats, when JetStream is on and no store is named", function()
    local t = tmp()
    fx.sh(("mv %s %s"):format(fx.quote(store), fx.quote(t .. "/nats")))
    fx.sh("mkdir -p " .. fx.quote(store)) -- for after_each
    local moved = store
    store = t .. "/nats"
    local d = tmp()
    fx.write(d .. "/nats.conf", "jetstream: enabled\n")
    local ok, e = pcall(refused, d .. "/nats.conf", { env = { TMPDIR = t } })
    store = moved
    assert(ok, e)
    assert.matches("default store directory " .. t .. "/nats", e or "", 1, true)
  end)
end)

describe("the writability guard", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function()
    os.execute("chattr -R -i " .. fx.quote(store) .. " 2>/dev/null")
    fx.cleanup(store)
  end)

  it("refuses, before any change, a store the user cannot write", function()
    if not is_root() then
      pending("needs root to run js-recover as another user (setpriv)")
      return
    end
    -- readable by nobody, writable only by root
    fx.sh("chmod -R o+rX " .. fx.quote(store))
    local original = fx.tree_digest(store)
    local nobody = { prefix = fx.as_nobody() }
    local code, _, err = fx.run_with(nobody, "prepare", store)
    assert.are.equal(3, code, err)
    assert.matches(store .. ": not writable (Permission denied)", err, 1, true)
    assert.matches("nothing was changed", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))

    -- the store directory writable, the stream directories not
    fx.sh("chmod o+w " .. fx.quote(store))
    original = fx.tree_digest(store)
    code, _, err = fx.run_with(nobody, "prepare", store)
    assert.are.equal(3, code, err)
    assert.matches(store .. "/jetstream/$G/streams/EVENTS: not writable (Permission denied), "
      .. "and js-recover must write " .. store .. "/jetstream/$G/streams/EVENTS/meta.inf there", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))

    -- undo as nobody of a store root prepared
    fx.sh("chmod o-w " .. fx.quote(store))
    assert.are.equal(0, (fx.run("prepare", store)))
    fx.sh("chmod -R o+rX " .. fx.quote(store))
    local prepared = fx.tree_digest(store)
    code, _, err = fx.run_with(nobody, "undo", store)
    assert.are.equal(1, code, err)
    assert.matches("not writable (Permission denied)", err, 1, true)
    assert.matches("nothing was changed", err, 1, true)
    assert.are.equal(prepared, fx.tree_digest(store))
  end)

  it("refuses a store with an immutable directory (chattr +i), even for root", function()
    local dir = store .. "/jetstream/$G/streams/ORDERS"
    if not os.execute("chattr +i " .. fx.quote(dir) .. " 2>/dev/null") then
      pending("chattr +i is not possible here (needs root and a file system that supports it)")
      return
    end
    local original = fx.tree_digest(store)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(3, code, err)
    assert.matches(dir .. ": not writable (Operation not permitted)", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    fx.sh("chattr -i " .. fx.quote(dir))
    assert.are.equal(0, (fx.run("prepare", store)))
  end)
end)
