-- How js-recover prints for people: indented JSON, grouped counts and
-- plurals.  Every command's --json output (inspect, verify, prepare,
-- export, restore, the survivors' survey), export's backup.json and
-- recovery-report.json are indented by pretty here.
local json = require("jsr").json

local M = {}

-- Indented JSON for files people read (two spaces, ": "), from the exact
-- encoder: numbers and key order as read.
function M.pretty(v)
  return assert(json.encode(v, { pretty = true }))
end

-- 1234567 -> "1,234,567"
function M.count(n)
  local s = tostring(n)
  while true do
    local t, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
    s = t
    if k == 0 then return s end
  end
end

-- plural(3, "message", "messages") -> "3 messages"
function M.plural(n, one, many) return ("%d %s"):format(n, n == 1 and one or many) end

return M
