-- A whole file's bytes, for the library's modules (o.dat, the report and
-- config prepare wrote, small Raft files): nil when it cannot be opened,
-- which every caller treats as "not there".
local M = {}

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

return M
