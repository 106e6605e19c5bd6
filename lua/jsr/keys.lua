-- The server's encryption key (jetstream { key }) for encrypted stores,
-- taken from a file or the environment, never from the command line (where
-- any user could read it in the process list).
--   --key-file F       or JSR_KEY       the key the server was started with
--   --prev-key-file F  or JSR_PREV_KEY  the previous key, while it was rotating
-- One trailing newline in a key file is ignored (echo adds one).
local jsr = require("jsr")

local M = {}

M.options = { ["key-file"] = "string", ["prev-key-file"] = "string" }

-- The environment variable recovery.conf refers to for the key.
M.ENV = "JSR_KEY"

local function from_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, ("cannot read the key file: %s"):format(err) end
  local k = f:read("a")
  f:close()
  k = k:gsub("\r?\n$", "")
  if k == "" then return nil, path .. ": the key file is empty" end
  return k
end

-- load(opts) -> {key = bool, source = text} | nil, message; sets the keys
-- read_meta and write_meta use.
function M.load(opts)
  local key, prev, source, err
  if opts["key-file"] then
    key, err = from_file(opts["key-file"])
    if not key then return nil, err end
    source = opts["key-file"]
  elseif os.getenv("JSR_KEY") and os.getenv("JSR_KEY") ~= "" then
    key, source = os.getenv("JSR_KEY"), "$JSR_KEY"
  end
  if opts["prev-key-file"] then
    prev, err = from_file(opts["prev-key-file"])
    if not prev then return nil, err end
  elseif os.getenv("JSR_PREV_KEY") and os.getenv("JSR_PREV_KEY") ~= "" then
    prev = os.getenv("JSR_PREV_KEY")
  end
  if prev and not key then return nil, "a previous key without the current one" end
  jsr.set_keys(key and { key = key, previous = prev } or nil)
  return { key = key ~= nil, source = source }
end

-- Adds the key options to a cli.parse spec.
function M.with(spec)
  for k, v in pairs(M.options) do spec[k] = v end
  return spec
end

return M
