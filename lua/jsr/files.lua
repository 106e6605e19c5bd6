-- Whole files for the library's modules.  read: a file's bytes (o.dat,
-- the report and config prepare wrote, small Raft files), nil when it
-- cannot be opened, which every caller treats as "not there".  write: a
-- new file outside any store (export's backups, a gathered store being
-- built), true or nil, message naming the file.  report: what an
-- earlier prepare left in the store.
local jsr = require("jsr")
local json = jsr.json

local M = {}

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  if not ok then f:close(); return nil, path .. ": " .. tostring(werr) end
  local cok, cerr = f:close()
  if not cok then return nil, path .. ": " .. tostring(cerr) end
  return true
end

-- The report prepare writes into the store: what an earlier run decided
-- (credentials, original configs, renamed accounts, removals), which a
-- later run, the lost report and the done-work scan read back; nil when
-- there is none or it is not JSON.
function M.report(store_dir)
  local r = json.decode(M.read(jsr.layout.report(store_dir)) or "")
  if type(r) ~= "table" then return nil end
  return r
end

return M
