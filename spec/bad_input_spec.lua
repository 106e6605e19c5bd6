-- Broken stores, built from the survivor: each must be refused with a
-- message that names the file and the problem, a non-zero exit, and the
-- tree exactly as it was.  Names with spaces, unicode and `$` must work.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"

local STREAMS = "/jetstream/$G/streams"
local ORDERS = STREAMS .. "/ORDERS"

local function is_root()
  local h = io.popen("id -u")
  local uid = h:read("l")
  h:close()
  return uid == "0"
end

local function replace_dir_with_file(path)
  fx.sh(("rm -rf %s && echo x > %s"):format(fx.quote(path), fx.quote(path)))
end

-- { what, build(store), the file named, the problem, exit code[, inspect
-- has nothing to say] }
local cases = {
  { "an empty meta.inf", function(s) fx.write(s .. ORDERS .. "/meta.inf", "") end,
    ORDERS .. "/meta.inf", "invalid JSON: unexpected end of input at byte 0", 1 },
  { "a truncated meta.inf", function(s)
      local p = s .. ORDERS .. "/meta.inf"
      fx.write(p, fx.read(p):sub(1, 100))
    end, ORDERS .. "/meta.inf", "invalid JSON", 1 },
  { "a garbage meta.inf", function(s) fx.write(s .. ORDERS .. "/meta.inf", "\1\255\0garbage") end,
    ORDERS .. "/meta.inf", "invalid JSON: unexpected character '\\x01' at byte 0", 1 },
  { "invalid UTF-8 in meta.inf", function(s)
      local p = s .. ORDERS .. "/meta.inf"
      fx.write(p, (fx.read(p):gsub('"ORDERS"', '"ORD\255\254ERS"', 1)))
    end, ORDERS .. "/meta.inf", "invalid UTF-8 in string", 1 },
  { "deeply nested JSON", function(s)
      fx.write(s .. ORDERS .. "/meta.inf", ("["):rep(100000) .. ("]"):rep(100000))
    end, ORDERS .. "/meta.inf", "nesting deeper than 200", 1 },
  { "a huge meta.inf (over the 8 MiB limit)", function(s)
      fx.write(s .. ORDERS .. "/meta.inf", '{"name":"' .. ("x"):rep(9 * 1024 * 1024) .. '"}')
    end, ORDERS .. "/meta.inf", "too large (9437195 bytes, limit 8388608)", 1 },
  { "a missing meta.sum", function(s) os.remove(s .. ORDERS .. "/meta.sum") end,
    ORDERS .. "/meta.sum", "cannot open: No such file or directory", 1 },
  { "a wrong meta.sum", function(s) fx.write(s .. ORDERS .. "/meta.sum", "0123456789abcdef") end,
    ORDERS .. "/meta.inf", "meta.sum is 0123456789abcdef but the file's checksum is", 1 },
  { "a consumer's broken meta.inf", function(s)
      fx.write(s .. ORDERS .. "/obs/proc/meta.inf", "{")
    end, ORDERS .. "/obs/proc/meta.inf", "invalid JSON", 1 },
  { "a meta.inf that is a directory", function(s)
      fx.sh("rm " .. fx.quote(s .. ORDERS .. "/meta.inf") .. " && mkdir " .. fx.quote(s .. ORDERS .. "/meta.inf"))
    end, ORDERS .. "/meta.inf", "not a regular file", 1 },
  { "a meta.inf that is a symlink out of the store", function(s)
      fx.sh(("rm %s && ln -s /etc/hostname %s"):format(fx.quote(s .. ORDERS .. "/meta.inf"),
        fx.quote(s .. ORDERS .. "/meta.inf")))
    end, ORDERS .. "/meta.inf", "is a symlink (not followed)", 1 },
  { "a file where the account directory should be", function(s) replace_dir_with_file(s .. "/jetstream/$G") end,
    "/jetstream/$G", "a file where a directory should be", 1 },
  { "a file where streams/ should be", function(s) replace_dir_with_file(s .. STREAMS) end,
    STREAMS, "a file where a directory should be", 1 },
  { "a file where a stream directory should be", function(s) replace_dir_with_file(s .. ORDERS) end,
    ORDERS, "a file where a directory should be", 1 },
  { "a file where obs/ should be", function(s) replace_dir_with_file(s .. ORDERS .. "/obs") end,
    ORDERS .. "/obs", "a file where a directory should be (the stream's consumers)", 1 },
  { "a file where a consumer directory should be", function(s) replace_dir_with_file(s .. ORDERS .. "/obs/proc") end,
    ORDERS .. "/obs/proc", "a file where a directory should be", 1 },
  { "a symlink where msgs/ should be", function(s)
      fx.sh(("rm -rf %s && ln -s /tmp %s"):format(fx.quote(s .. ORDERS .. "/msgs"), fx.quote(s .. ORDERS .. "/msgs")))
    end, ORDERS .. "/msgs", "a link where a directory should be (the stream's messages)", 1 },
  { "a file where jetstream/ should be", function(s) replace_dir_with_file(s .. "/jetstream") end,
    "", "not a JetStream store (no jetstream/ directory in it)", 3 },
  { "recovery.conf as a symlink out of the store", function(s)
      fx.sh("ln -s /etc/hostname " .. fx.quote(s .. "/recovery.conf"))
    end, "/recovery.conf", "is a symlink; js-recover never follows links in a store", 3 },
  { ".js-recover as a symlink out of the store", function(s)
      fx.sh("ln -s /tmp " .. fx.quote(s .. "/.js-recover"))
    end, "/.js-recover", "is a symlink; js-recover never follows links", 1, "inspect ok" },
}

describe("a broken store", function()
  local store
  before_each(function() store = fx.unpack("survivor-2.9.10.tar.gz") end)
  after_each(function() fx.cleanup(store) end)

  for _, c in ipairs(cases) do
    it(("is refused, naming the file, for %s"):format(c[1]), function()
      c[2](store)
      local before = fx.tree_digest(store)
      local code, out, err = fx.run("prepare", store)
      assert.are.equal(c[5], code, out .. err)
      assert.matches(store .. c[3] .. ": ", err, 1, true)
      assert.matches(c[4], err, 1, true)
      assert.are.equal(before, fx.tree_digest(store))
      if c[5] == 1 and not c[6] then
        -- refused before any change; inspect reports the same problem
        assert.matches("nothing changed", err, 1, true)
        code, out, err = fx.run("inspect", store)
        assert.are_not.equal(0, code)
        assert.matches(store .. c[3], out .. err, 1, true)
      end
      assert.are.equal(before, fx.tree_digest(store))
    end)
  end

  it("with terminal escape sequences in names shows them escaped, never raw", function()
    -- nats-server accepts control bytes in names; raw, "\27[2J" clears the screen
    local acc = store .. "/jetstream/EV\27[2J"
    fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(acc .. "/streams"),
      fx.quote(store .. "/jetstream/$G/streams/ORDERS"), fx.quote(acc .. "/streams/")))
    for _, args in ipairs { { "inspect", store }, { "prepare", store, "--dry-run" }, { "prepare", store } } do
      local code, out, err = fx.run(table.unpack(args))
      assert.are.equal(0, code, err)
      assert.is_nil(out:find("\27", 1, true), args[1])
      assert.matches("EV\\x1b[2J", out, 1, true)
    end
  end)

  it("with 3,000 nested directories under a stream's msgs/ is inspected without a crash", function()
    local json = require("jsr").json
    local function orders_bytes()
      local code, out, err = fx.run("inspect", store, "--json")
      assert.are.equal(0, code, err)
      for _, s in ipairs(assert(json.decode(out)).streams) do
        if s.name == "ORDERS" then return s.bytes end
      end
    end
    local plain = orders_bytes()
    -- the size of a stream's tree is summed without recursion (perl, which
    -- Debian always has: a relative chdir per level works past PATH_MAX,
    -- which 3,000 levels exceed)
    fx.sh(("cd %s && perl -e 'for (1..3000) { mkdir \"d\" or die; chdir \"d\" or die } "
      .. "open(my $f, \">\", \"f\") or die; print $f \"x\\n\"'")
      :format(fx.quote(store .. "/jetstream/$G/streams/ORDERS/msgs")))
    -- the file at the bottom is counted: every level was walked
    assert.are.equal(plain + 2, orders_bytes())
  end)

  it("with 3,000 nested directories under the Raft state is purged by prepare --purge, and undo knows it", function()
    fx.sh(("cd %s && perl -e 'for (1..3000) { mkdir \"d\" or die; chdir \"d\" or die } "
      .. "open(my $f, \">\", \"f\") or die; print $f \"x\\n\"'")
      :format(fx.quote(store .. "/jetstream/$SYS/_js_/_meta_")))
    local code, out, err = fx.run("prepare", store, "--purge")
    assert.are.equal(0, code, err .. out)
    assert.is_nil(require("jsr").lstat(store .. "/jetstream/$SYS"))
    -- the journal is finished: another prepare and undo run normally
    code, out, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("nothing changed", out, 1, true)
    code, _, err = fx.run("undo", store, "--ignore-purged")
    assert.are.equal(0, code, err)
  end)

  it("is refused, naming the file, when the user cannot read a meta.inf or a directory", function()
    if not is_root() then
      pending("needs root to run js-recover as another user (setpriv)")
      return
    end
    fx.sh("chmod -R o+rX " .. fx.quote(store))
    fx.sh("chmod 000 " .. fx.quote(store .. ORDERS .. "/meta.inf"))
    fx.sh("chmod 000 " .. fx.quote(store .. STREAMS .. "/JOBS/obs"))
    local before = fx.tree_digest(store)
    local code, _, err = fx.run_with({ prefix = fx.as_nobody() }, "prepare", store)
    assert.are.equal(1, code, err)
    assert.matches(store .. ORDERS .. "/meta.inf: cannot open: Permission denied", err, 1, true)
    assert.matches(store .. STREAMS .. "/JOBS/obs: Permission denied", err, 1, true)
    assert.are.equal(before, fx.tree_digest(store))
  end)

  it("says which directory it cannot read, without an internal location, when jetstream/ is closed", function()
    if not is_root() then
      pending("needs root to run js-recover as another user (setpriv)")
      return
    end
    fx.sh("chmod -R o+rX " .. fx.quote(store))
    fx.sh("chmod 700 " .. fx.quote(store .. "/jetstream"))
    local before = fx.tree_digest(store)
    for _, cmd in ipairs({ "inspect", "prepare", "verify" }) do
      local code, _, err = fx.run_with({ prefix = fx.as_nobody() }, cmd, store)
      assert.are.equal(3, code, cmd .. ": " .. err)
      assert.matches("js-recover " .. cmd .. ": " .. store .. "/jetstream: cannot read: Permission denied",
        err, 1, true)
      assert.is_nil(err:find("[built-in", 1, true), err)
    end
    assert.are.equal(before, fx.tree_digest(store))
  end)
end)

describe("names with spaces, unicode and $", function()
  it("work: in the store's path and in an account's name, up to a server serving every stream", function()
    local parent = fx.tmpdir()
    local srv
    -- one finally per test: busted keeps only the last function given
    finally(function()
      if srv then srv:stop() end
      fx.cleanup(parent)
    end)
    local store = parent .. "/my store ü $HOME `x`"
    fx.sh("mkdir " .. fx.quote(store) .. " && tar xzf " .. fx.quote(fx.FIXTURES .. "/survivor-2.9.10.tar.gz")
      .. " -C " .. fx.quote(store))
    -- an account name with unicode and `$` (a space in an account name is
    -- not a valid subject token for the server itself)
    local account = "Äcme_$1"
    fx.sh(("mv %s %s"):format(fx.quote(store .. "/jetstream/$G"), fx.quote(store .. "/jetstream/" .. account)))
    local original = fx.tree_digest(store)
    local code, _, err = fx.run("inspect", store)
    assert.are.equal(0, code, err)
    local out
    code, out, err = fx.run("prepare", store)
    assert.are.equal(0, code, err)
    assert.matches("stream " .. account .. " > ORDERS", out, 1, true)
    assert.are.equal(0, (fx.run("inspect", store)))
    code, _, err = fx.run("undo", store)
    assert.are.equal(0, code, err)
    assert.are.equal(original, fx.tree_digest(store))
    -- (a server writes to the store: undo only takes back js-recover's own
    -- changes, so it is checked before the server runs)
    assert.are.equal(0, (fx.run("prepare", store)))
    local report = assert(json.decode(fx.read(store .. "/recovery-report.json")))
    local creds = report.accounts[1]
    assert.are.equal(account, creds.name)

    srv = ns.start { config = store .. "/recovery.conf" }
    local served = ns.jscheck(srv, { user = creds.user, password = creds.password }).streams
    local want = assert(json.decode(fx.read(fx.FIXTURES .. "/survivor-2.9.10.expected.json")))
    for name, w in pairs(want) do
      assert.are.equal(w.messages, served[name].messages, name)
    end
  end)
end)

-- A small tmpfs of our own, for a full disk and a read-only file system;
-- nil when mounting is not permitted here.
local function mount_tmpfs(kib)
  local dir = fx.tmpdir()
  if not os.execute(("mount -t tmpfs -o size=%dk tmpfs %s 2>/dev/null"):format(kib, fx.quote(dir))) then
    fx.cleanup(dir)
    return nil
  end
  return dir
end

local function umount(dir)
  os.execute("umount " .. fx.quote(dir))
  fx.cleanup(dir)
end

describe("a store on a file system that", function()
  it("is full is refused or rolled back, naming the file, and left exactly as it was", function()
    local mnt = mount_tmpfs(4096)
    if not mnt then
      pending("mount -t tmpfs is not permitted here: cannot make a full file system")
      return
    end
    finally(function() umount(mnt) end)
    local store = mnt .. "/store"
    fx.sh(("mkdir %s && tar xzf %s -C %s"):format(fx.quote(store),
      fx.quote(fx.FIXTURES .. "/survivor-2.9.10.tar.gz"), fx.quote(store)))
    local original = fx.tree_digest(store)
    local fill = fx.quote(mnt .. "/fill")
    -- 0 pages free: the journal cannot be written; a few: a temp file cannot
    for _, free in ipairs({ 0, 1, 3, 6 }) do
      fx.sh(("rm -f %s; dd if=/dev/zero of=%s bs=4096 2>/dev/null; truncate -s -%d %s"):format(
        fill, fill, free * 4096, fill))
      local code, _, err = fx.run("prepare", store)
      assert.are.equal(3, code, err)
      assert.matches(store .. "/", err, 1, true)
      assert.matches("No space left on device", err, 1, true)
      assert.matches(free == 0 and "(nothing was changed)" or "(rolled back: nothing was changed)", err, 1, true)
      assert.are.equal(original, fx.tree_digest(store), free .. " pages free")
    end
    fx.sh("rm -f " .. fill)
    assert.are.equal(0, (fx.run("prepare", store)))
    assert.are.equal(0, (fx.run("undo", store)))
    assert.are.equal(original, fx.tree_digest(store))
  end)

  it("is read-only is refused before any change, naming the directory", function()
    local mnt = mount_tmpfs(4096)
    if not mnt then
      pending("mount -t tmpfs is not permitted here: cannot make a read-only file system")
      return
    end
    finally(function() umount(mnt) end)
    local store = mnt .. "/store"
    fx.sh(("mkdir %s && tar xzf %s -C %s"):format(fx.quote(store),
      fx.quote(fx.FIXTURES .. "/survivor-2.9.10.tar.gz"), fx.quote(store)))
    local original = fx.tree_digest(store)
    fx.sh("mount -o remount,ro " .. fx.quote(mnt))
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(3, code, err)
    assert.matches(store .. ": not writable (Read-only file system)", err, 1, true)
    assert.are.equal(original, fx.tree_digest(store))
    -- prepared while writable, then read-only: undo refuses too
    fx.sh("mount -o remount,rw " .. fx.quote(mnt))
    assert.are.equal(0, (fx.run("prepare", store)))
    fx.sh("mount -o remount,ro " .. fx.quote(mnt))
    local prepared = fx.tree_digest(store)
    code, _, err = fx.run("undo", store)
    assert.are.equal(1, code, err)
    assert.matches("not writable (Read-only file system)", err, 1, true)
    assert.are.equal(prepared, fx.tree_digest(store))
    fx.sh("mount -o remount,rw " .. fx.quote(mnt))
    assert.are.equal(0, (fx.run("undo", store)))
    assert.are.equal(original, fx.tree_digest(store))
  end)
end)
