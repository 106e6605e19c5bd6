-- A table's keys in order: reports list streams, peers and sequences
-- sorted, so two runs over the same store print the same.
local M = {}

-- keys(t) -> {k...}, sorted (keys of one type: strings or numbers)
function M.keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k)
  return k
end

return M
