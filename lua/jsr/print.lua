-- How js-recover prints for people: indented JSON and grouped counts.
-- inspect, verify and prepare take them from here (inspect and verify used
-- to require all of jsr.prepare for this).
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
