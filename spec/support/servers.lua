--- The nats-server versions the specs run against: Debian's 2.9.10 always,
-- and the pinned releases of scripts/servers.env that `make servers` built
-- into the cache (~/.cache/js-recover/servers, or $JSR_SERVERS).
--
--   local servers = require "spec.support.servers"
--   servers.debian         {version = "2.9.10", bin = "/usr/sbin/nats-server"}
--   servers.newest()       the newest built release, or nil
--   servers.fast()         Debian's and the newest: what `make test` covers
--   servers.all()          every version built, oldest first
--   servers.skipped()      pinned versions that are not built (no Go)
--   servers.natscli()      path of the pinned nats CLI, or nil
--
-- Each entry's version is read from the binary's own --version, not from
-- its path, so a spec's name says what really ran.
local M = {}

local function read_env()
  local f = assert(io.open("scripts/servers.env", "r"), "scripts/servers.env: run the specs from the repository root")
  local text = f:read("a")
  f:close()
  return {
    versions = assert(text:match('JSR_SERVER_VERSIONS="([^"]*)"'), "scripts/servers.env: no JSR_SERVER_VERSIONS"),
    natscli = assert(text:match('JSR_NATSCLI_VERSION="([^"]*)"'), "scripts/servers.env: no JSR_NATSCLI_VERSION"),
  }
end

local function cache_dir()
  local d = os.getenv("JSR_SERVERS")
  if d and d ~= "" then return d end
  local xdg = os.getenv("XDG_CACHE_HOME")
  if xdg and xdg ~= "" then return xdg .. "/js-recover/servers" end
  return (os.getenv("HOME") or "/root") .. "/.cache/js-recover/servers"
end

local function version_of(bin)
  local h = io.popen("'" .. bin:gsub("'", "'\\''") .. "' --version 2>/dev/null")
  if not h then return nil end
  local out = h:read("a") or ""
  h:close()
  return out:match("v(%d+%.%d+%.%d+)")
end

local function debian_bin()
  local env = os.getenv("NATS_SERVER")
  if env and env ~= "" then return env end
  return "/usr/sbin/nats-server"
end

M.debian = { version = version_of(debian_bin()) or "2.9.10", bin = debian_bin() }

local built
local function scan()
  if built then return built end
  built = { list = {}, skipped = {} }
  local env = read_env()
  local dir = cache_dir()
  for v in env.versions:gmatch("%S+") do
    local bin = dir .. "/" .. v .. "/nats-server"
    local got = version_of(bin)
    if got == v then
      built.list[#built.list + 1] = { version = v, bin = bin }
    else
      built.skipped[#built.skipped + 1] = v
    end
  end
  local cli = dir .. "/natscli-" .. env.natscli .. "/nats"
  local f = io.open(cli, "rb")
  if f then f:close(); built.natscli = cli else built.skipped[#built.skipped + 1] = "natscli " .. env.natscli end
  if #built.skipped > 0 then
    io.stderr:write("specs: not built, skipped (make servers needs Go): ",
      table.concat(built.skipped, ", "), "\n")
  end
  return built
end

function M.all()
  local out = { M.debian }
  for _, s in ipairs(scan().list) do out[#out + 1] = s end
  return out
end

function M.newest()
  local l = scan().list
  return l[#l]
end

function M.fast()
  local out = { M.debian }
  local n = M.newest()
  if n then out[#out + 1] = n end
  return out
end

function M.skipped() return scan().skipped end
function M.natscli() return scan().natscli end

return M
