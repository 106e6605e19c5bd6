-- Fixture stores copied into temp dirs, the js-recover binary run as a
-- user runs it, and a digest of a whole tree to prove "nothing changed".
local ns = require "spec.support.natsserver"

local M = {}

-- copies of ../shared/fixtures (real stores written by nats-server 2.9.10),
-- kept in the repo so a clean clone tests on its own
M.FIXTURES = "spec/fixtures"
M.BIN = os.getenv("JSR_BIN") or "build/js-recover"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.quote = q

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  assert(ok, ("command failed (%s %s): %s"):format(tostring(how), tostring(code), cmd))
end
M.sh = sh

-- A temp dir holding the named tarball's jetstream/ (a store_dir).
function M.unpack(tarball)
  local dir = ns.tmpdir()
  sh(("tar xzf %s -C %s"):format(q(M.FIXTURES .. "/" .. tarball), q(dir)))
  return dir
end

-- A writable copy of the hand-made modern store.
function M.modern()
  local dir = ns.tmpdir()
  sh(("cp -r %s/modern-store/jetstream %s/ && chmod -R u+w %s"):format(q(M.FIXTURES), q(dir), q(dir)))
  return dir
end

M.cleanup = ns.rmtree
M.tmpdir = ns.tmpdir

-- change(store, method, ...) -> true | nil, message: one change staged on
-- a set of the store (a path or a jsr.open handle) and committed, for the
-- specs of a single change (a staging error comes back as it is, and
-- nothing is written).
function M.change(store, method, ...)
  local jsr = require "jsr"
  local st, err = store, nil
  if type(store) == "string" then st, err = jsr.open(store) end
  if not st then return nil, err end
  local c <close>, cerr = st:changes()
  if not c then return nil, cerr end
  local ok, serr = c[method](c, ...)
  if not ok then return nil, serr end
  local id, merr = c:commit()
  if not id then return nil, merr end
  return true
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  assert(f:close())
end

-- run(args...) -> exit code, stdout, stderr of the js-recover binary
function M.run(...)
  local parts = { q(M.BIN) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = q(a) end
  local errf = os.tmpname()
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>" .. q(errf)))
  local out = h:read("a")
  local _, _, code = h:close()
  local err = M.read(errf)
  os.remove(errf)
  return code, out, err
end

-- run_with({env = {NAME = value}, prefix = {argv...}}, args...) -> exit
-- code, stdout, stderr: the binary with extra environment variables, or
-- under a wrapper such as setpriv.
function M.run_with(how, ...)
  local parts = {}
  for k, v in pairs(how.env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  for _, a in ipairs(how.prefix or {}) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = q(M.BIN)
  for _, a in ipairs({ ... }) do parts[#parts + 1] = q(a) end
  local errf = os.tmpname()
  local h = assert(io.popen(table.concat(parts, " ") .. " 2>" .. q(errf)))
  local out = h:read("a")
  local _, _, code = h:close()
  local err = M.read(errf)
  os.remove(errf)
  return code, out, err
end

-- The prefix that runs a command as nobody when the specs run as root
-- (root ignores permissions), or nothing.
function M.as_nobody()
  local h = io.popen("id -u")
  local uid = h:read("l")
  h:close()
  if uid == "0" then return { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups" } end
  return {}
end

-- prepare_and_serve(store[, bin]) -> what a standalone server (bin: a
-- nats-server, default Debian's) serves on the prepared store to account
-- ACME (jscheck's streams), and prepare's output.  prepare must exit 0.
function M.prepare_and_serve(store, bin)
  local json = require("jsr").json
  local code, out, err = M.run("prepare", store)
  assert(code == 0, "prepare: " .. tostring(err) .. out)
  local r = assert(json.decode(M.read(store .. "/recovery-report.json")))
  local acme
  for _, a in ipairs(r.accounts) do if a.name == "ACME" then acme = a end end
  assert(acme, store .. "/recovery-report.json: no account ACME")
  local srv = ns.start { config = store .. "/recovery.conf", bin = bin, timeout = 30 }
  local ok, seen = pcall(ns.jscheck, srv, { user = acme.user, password = acme.password })
  srv:stop()
  assert(ok, seen)
  return seen.streams, out
end

-- Digest of every path, type, mode, size and content under dir (links
-- as their target): equal digests mean an unchanged tree.
function M.tree_digest(dir)
  local h = assert(io.popen(("cd %s && find . -printf '%%p %%y %%m %%s %%l\\n' | LC_ALL=C sort"
    .. " && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum"):format(q(dir))))
  local s = h:read("a")
  h:close()
  return s
end

return M
