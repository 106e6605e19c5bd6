--- Start and stop real nats-server processes from busted specs.
--
--   local ns  = require "spec.support.natsserver"
--   local srv = ns.start{ config = "/path/recovery.conf" }
--   local srv = ns.start{ store_dir = "/tmp/x" }           -- plain JetStream server
--   srv.url, srv.port, srv.pid, srv.log_path, srv:log(), srv:stop()
--   local report = ns.jscheck(srv)                          -- decoded build/jscheck JSON
--
-- Every spec that starts a server MUST stop it in a `finally` or `teardown`:
--
--   it("...", function()
--     local srv = ns.start{ store_dir = dir }
--     finally(function() srv:stop() end)
--     ...
--   end)
--
-- As a safety net a server object that is garbage collected, or still alive
-- when busted exits normally, is stopped by its finalizer; and a watchdog
-- shell started next to each server sends it SIGTERM (SIGKILL 5 s later) if
-- the Lua process that started it dies without stopping it.  Do not rely on
-- either: until a finalizer runs, the server keeps its store directory busy.
--
-- Servers only ever listen on 127.0.0.1 and on a port the kernel picks
-- (`-a 127.0.0.1 -p -1` are appended last, and nats-server lets command-line
-- flags override the config file, including its `listen`).  A config that
-- opens further listeners (monitor, cluster, leafnode, websocket, ...) on a
-- non-loopback address makes start() fail.
--
-- Helper output is decoded with js-recover's own exact codec (jsr.json), so
-- sequence numbers and byte counts are Lua integers at every size.

local json = require("jsr").json

local M = {}

M.JSCHECK = (os.getenv("JSR_BUILD") or "build") .. "/jscheck"
M.JSPUB = (os.getenv("JSR_BUILD") or "build") .. "/jspub"

-- lua-system ships with busted; the fallbacks only cost precision/forks.
local have_system, system = pcall(require, "system")

local function now()
  if have_system and system.monotime then return system.monotime() end
  return os.time()
end

local function sleep(seconds)
  if have_system and system.sleep then
    system.sleep(seconds)
  else
    os.execute(string.format("sleep %.3f", seconds))
  end
end

local function quote(s)
  return "'" .. (tostring(s):gsub("'", [['\'']])) .. "'"
end

local read_file = require("jsr.files").read

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

local have_proc = io.open("/proc/self/stat", "r")
if have_proc then have_proc:close() end

-- A zombie still answers `kill -0`, and where PID 1 does not reap (some
-- containers) an exited server would look alive forever, so ask /proc for
-- the process state instead.
local function alive(pid)
  if have_proc then
    local stat = read_file("/proc/" .. pid .. "/stat")
    if not stat then return false end
    local state = stat:match(".*%) (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function signal(pid, sig)
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
end

local function wait_gone(pid, seconds)
  local deadline = now() + seconds
  while alive(pid) do
    if now() >= deadline then return false end
    sleep(0.02)
  end
  return true
end

local function find_server()
  local env = os.getenv("NATS_SERVER")
  if env and env ~= "" then return env end
  local h = io.popen("command -v nats-server 2>/dev/null")
  local path = h and h:read("l")
  if h then h:close() end
  if path and path ~= "" then return path end
  -- Debian installs it in /usr/sbin, which is not on a non-root PATH.
  return "/usr/sbin/nats-server"
end

local function is_loopback(host)
  host = host:gsub("^%[", ""):gsub("%]$", "")
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the first listener address in the log that is not on loopback.
local function public_listener(log)
  for line in log:gmatch("[^\n]+") do
    if line:find("Listening for", 1, true) or line:find(" monitor on ", 1, true)
        or line:find("profiling on", 1, true) then
      local addr = line:match(" on (%S+)%s*$")
      if addr then
        addr = addr:gsub("^%a+://", "")
        local host = addr:match("^(.*):%d+$") or addr
        if not is_loopback(host) then return line end
      end
    end
  end
  return nil
end

local Server = {}
Server.__index = Server

--- Current log contents; after stop() the log as it was at shutdown.
function Server:log()
  if self._final_log then return self._final_log end
  return read_file(self.log_path) or ""
end

--- Stop the server: SIGTERM, wait up to `grace` seconds (default 5), then
-- SIGKILL.  Safe to call more than once.
function Server:stop(grace)
  if self.stopped then return end
  self.stopped = true
  if alive(self.pid) then
    signal(self.pid, "TERM")
    if not wait_gone(self.pid, grace or 5) then
      signal(self.pid, "KILL")
      if not wait_gone(self.pid, 5) then
        error(string.format("nats-server pid %d survived SIGKILL", self.pid))
      end
      self.killed = true
    end
  end
  -- The launcher shell reaps the server and its watchdog; closing the pipe
  -- waits for it, so nothing is left behind as a zombie.
  if self._launcher then
    self._launcher:close()
    self._launcher = nil
  end
  self._final_log = read_file(self.log_path) or ""
  if self._own_log then os.remove(self.log_path) end
end

-- Runs before the popen handle's own finalizer (finalizers run in reverse
-- order of creation), which would otherwise block on the launcher shell.
function Server:__gc()
  if not self.stopped then pcall(self.stop, self) end
end

local live = setmetatable({}, { __mode = "k" })

--- Start a nats-server and wait until it is ready.
-- opts.config      config file (-c)
-- opts.store_dir   enable JetStream with this store directory (-js -sd);
--                  nats-server 2.9 rejects this when the config file sets
--                  its own jetstream store_dir ("Duplicate 'store_dir'")
-- opts.user, opts.password   require these credentials (--user/--pass);
--                  also used by ns.jscheck/ns.jspub by default
-- opts.args        extra nats-server arguments (placed before the forced
--                  loopback/random-port flags, so they cannot override them)
-- opts.log_path    where to log (default: a temp file removed by stop())
-- opts.timeout     seconds to wait for "Server is ready" (default 10)
-- opts.bin         nats-server binary (default $NATS_SERVER, PATH, /usr/sbin)
-- opts.cwd         the server's working directory (relative paths in its
--                  config are relative to it)
function M.start(opts)
  opts = opts or {}
  local args = {}
  local function add(...) for _, a in ipairs{ ... } do args[#args + 1] = tostring(a) end end

  if opts.config then add("-c", opts.config) end
  for _, a in ipairs(opts.args or {}) do add(a) end
  if opts.store_dir then add("-js", "-sd", opts.store_dir) end
  if opts.user then
    local password = assert(opts.password, "ns.start: user without password")
    add("--user", opts.user, "--pass", password)
  end

  local own_log = opts.log_path == nil
  local log_path = opts.log_path or os.tmpname()
  -- -l overrides a log_file from the config; the shell redirection catches
  -- what is printed before logging is set up (config errors).  Both append,
  -- so they do not overwrite each other.
  add("-a", "127.0.0.1", "-p", "-1", "-l", log_path)

  -- opts.env: extra environment variables for the server (an encrypted
  -- store's key, which recovery.conf references as $JSR_KEY)
  local cmdline = {}
  for k, v in pairs(opts.env or {}) do
    assert(k:match("^[%a_][%w_]*$"), "ns.start: bad environment variable name " .. k)
    cmdline[#cmdline + 1] = k .. "=" .. quote(v)
  end
  cmdline[#cmdline + 1] = quote(opts.bin or find_server())
  for _, a in ipairs(args) do cmdline[#cmdline + 1] = quote(a) end

  -- The launcher stays alive (`wait`) so that the server remains its child
  -- and gets reaped even where PID 1 does not reap orphans.  $PPID is the
  -- Lua process; the watchdog ends the server if that goes away.
  local script = table.concat({
    "lua_pid=$PPID",
    opts.cwd and ("cd " .. quote(opts.cwd) .. " || exit 1") or ":",
    table.concat(cmdline, " ") .. " >>" .. quote(log_path) .. " 2>&1 </dev/null &",
    "srv=$!",
    'echo "$srv"',
    "(",
    "  n=0",
    '  while kill -0 "$srv" 2>/dev/null; do',
    '    if ! kill -0 "$lua_pid" 2>/dev/null; then',
    "      n=$((n+1))",
    '      if [ "$n" -eq 1 ]; then kill -TERM "$srv" 2>/dev/null; fi',
    '      if [ "$n" -gt 50 ]; then kill -KILL "$srv" 2>/dev/null; fi',
    "    fi",
    "    sleep 0.1",
    "  done",
    ") </dev/null >/dev/null 2>&1 &",
    'wait "$srv"',
    "wait",
  }, "\n")

  local launcher = assert(io.popen(script, "r"))
  local pid = math.tointeger(tonumber(launcher:read("l") or ""))
  if not pid then
    launcher:close()
    error("nats-server launcher did not report a PID; log:\n" .. (read_file(log_path) or ""))
  end

  local srv = setmetatable({
    pid = pid,
    log_path = log_path,
    store_dir = opts.store_dir,
    config = opts.config,
    user = opts.user,
    password = opts.password,
    stopped = false,
    _launcher = launcher,
    _own_log = own_log,
  }, Server)
  live[srv] = true

  local function give_up(why)
    srv:stop()
    error(string.format("nats-server %s; log:\n%s", why, srv:log()), 3)
  end

  local deadline = now() + (opts.timeout or 10)
  local log
  while true do
    log = read_file(log_path) or ""
    -- A clustered server logs its route listener only after "Server is
    -- ready"; wait for it too so the loopback check below sees it.
    if log:find("Server is ready", 1, true)
        and (not log:find("]   Cluster:", 1, true)
             or log:find("Listening for route connections", 1, true)) then
      break
    end
    if not alive(pid) then give_up("exited during startup") end
    if now() >= deadline then give_up("not ready after " .. (opts.timeout or 10) .. " s") end
    sleep(0.02)
  end

  local port = log:match("Listening for client connections on 127%.0%.0%.1:(%d+)")
  if not port then give_up("ready, but no loopback client port in the log") end
  local public = public_listener(log)
  if public then give_up("listens on a non-loopback address: " .. public) end

  srv.port = math.tointeger(tonumber(port))
  srv.url = "nats://127.0.0.1:" .. srv.port
  return srv
end

--- Stop every server started through this module that is still running.
function M.stop_all()
  for srv in pairs(live) do srv:stop() end
end

-- Runs argv (a list), returns stdout decoded as JSON; raises with stderr
-- and the exit status when the command fails.
local function run_json(argv)
  local bin = argv[1]
  local probe = io.open(bin, "rb")
  if not probe then
    error(bin .. " not found (run busted from the repository root after building it: "
      .. "cc -std=c11 -Wall -Wextra -O2 spec/support/<name>.c -o " .. bin
      .. " $(pkg-config --cflags --libs libnats))", 3)
  end
  probe:close()

  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = quote(a) end
  local errfile = os.tmpname()
  local h = assert(io.popen(table.concat(quoted, " ") .. " 2>" .. quote(errfile), "r"))
  local out = h:read("a")
  local ok, how, code = h:close()
  local err = read_file(errfile) or ""
  os.remove(errfile)
  if not ok then
    error(string.format("%s failed (%s %s): %s", bin, tostring(how), tostring(code), err), 3)
  end
  local value, jerr = json.decode(out)
  if value == nil then
    error(string.format("%s printed invalid JSON (%s): %s", bin, jerr, out), 3)
  end
  return value
end

local function connection_args(srv, opts)
  local argv = { "--url", opts.url or srv.url }
  local user = opts.user or srv.user
  if user then
    argv[#argv + 1] = "--user"
    argv[#argv + 1] = user
    argv[#argv + 1] = "--password"
    argv[#argv + 1] = opts.password or srv.password
  end
  if opts.creds then
    argv[#argv + 1] = "--creds"
    argv[#argv + 1] = opts.creds
  end
  if opts.timeout_ms then
    argv[#argv + 1] = "--timeout-ms"
    argv[#argv + 1] = tostring(opts.timeout_ms)
  end
  return argv
end

--- Run build/jscheck against srv and return its decoded report.
-- opts.user/password (default srv's) or opts.creds (a .creds file), opts.timeout_ms, opts.bin,
-- opts.messages = STREAM for the per-message report.
function M.jscheck(srv, opts)
  opts = opts or {}
  local argv = { opts.bin or M.JSCHECK }
  for _, a in ipairs(connection_args(srv, opts)) do argv[#argv + 1] = a end
  if opts.messages then
    argv[#argv + 1] = "--messages"
    argv[#argv + 1] = opts.messages
  end
  return run_json(argv)
end

--- Run build/jspub against srv (see spec/support/jspub.c for semantics).
-- opts: stream (required), subjects (list), count, payload_size, consumer,
-- ack, storage, retention, max_age_ms, inactive_threshold_ms, delete (list of seqs),
-- purge_keep (purge all but N; 0: all), replicas, user,
-- password, timeout_ms, bin.
function M.jspub(srv, opts)
  local argv = { opts.bin or M.JSPUB }
  for _, a in ipairs(connection_args(srv, opts)) do argv[#argv + 1] = a end
  local function opt(flag, v)
    if v ~= nil then
      argv[#argv + 1] = flag
      argv[#argv + 1] = tostring(v)
    end
  end
  opt("--stream", assert(opts.stream, "jspub needs a stream"))
  if opts.subjects then opt("--subjects", table.concat(opts.subjects, ",")) end
  opt("--count", opts.count)
  opt("--payload-size", opts.payload_size)
  opt("--consumer", opts.consumer)
  opt("--ack", opts.ack)
  opt("--storage", opts.storage)
  opt("--retention", opts.retention)
  opt("--max-age-ms", opts.max_age_ms)
  opt("--inactive-threshold-ms", opts.inactive_threshold_ms)
  for _, seq in ipairs(opts.delete or {}) do opt("--delete", seq) end
  opt("--purge-keep", opts.purge_keep)
  opt("--replicas", opts.replicas)
  opt("--placement-cluster", opts.placement_cluster)
  opt("--placement-tag", opts.placement_tag)
  return run_json(argv)
end

--- The payload jspub publishes as message i (1-based) of a run.
function M.payload(i, subject, size)
  if size == nil then return subject .. "#" .. i end
  local bytes = {}
  for j = 0, size - 1 do bytes[#bytes + 1] = string.char((i + j) % 256) end
  return table.concat(bytes)
end

--- Hex SHA-256 of a string, computed by coreutils (independent of jscheck).
function M.sha256(data)
  local path = os.tmpname()
  write_file(path, data)
  local h = assert(io.popen("sha256sum " .. quote(path)))
  local line = h:read("l") or ""
  h:close()
  os.remove(path)
  return (assert(line:match("^(%x+)"), "sha256sum failed"))
end

local tmpdirs = {}

--- A fresh temporary directory; remove it with ns.rmtree.
function M.tmpdir()
  local h = assert(io.popen("mktemp -d -t js-recover-spec.XXXXXX"))
  local dir = h:read("l")
  h:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  tmpdirs[dir] = true
  return dir
end

--- Remove a directory made by ns.tmpdir (refuses anything else).
function M.rmtree(dir)
  if not tmpdirs[dir] then
    error("refusing to remove " .. tostring(dir) .. ": not made by ns.tmpdir", 2)
  end
  os.execute("rm -rf -- " .. quote(dir))
  tmpdirs[dir] = nil
end

M.alive = alive
M._public_listener = public_listener

return M
