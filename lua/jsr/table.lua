-- Text tables in the style of the nats CLI, for terminals and logs.
local M = {}
local escape = require("jsr.cli").escape

local function width(s)
  return utf8.len(s) or #s
end

-- render(title, headers, rows) -> string; rows are arrays of values
-- (tostring'ed); a row that is the string "-" draws a separator.
function M.render(title, headers, rows)
  title = escape(title)
  local w = {}
  for i, h in ipairs(headers) do w[i] = width(h) end
  local cells = {}
  for r, row in ipairs(rows) do
    if row ~= "-" then
      cells[r] = {}
      for i = 1, #headers do
        local v = row[i]
        -- escaped before it is measured: the width is what the terminal shows
        local s = v == nil and "" or escape(v)
        cells[r][i] = s
        if width(s) > w[i] then w[i] = width(s) end
      end
    end
  end
  local function line(l, m, r)
    local parts = {}
    for i = 1, #headers do parts[i] = string.rep("─", w[i] + 2) end
    return l .. table.concat(parts, m) .. r
  end
  local function row_text(vals)
    local parts = {}
    for i = 1, #headers do
      parts[i] = " " .. vals[i] .. string.rep(" ", w[i] - width(vals[i])) .. " "
    end
    return "│" .. table.concat(parts, "│") .. "│"
  end
  local out = {}
  local total = 0
  for i = 1, #headers do total = total + w[i] + 3 end
  total = total - 1
  out[#out + 1] = "╭" .. string.rep("─", total) .. "╮"
  local pad = total - width(title)
  local left = pad // 2
  out[#out + 1] = "│" .. string.rep(" ", left) .. title .. string.rep(" ", pad - left) .. "│"
  out[#out + 1] = line("├", "┬", "┤")
  out[#out + 1] = row_text(headers)
  out[#out + 1] = line("├", "┼", "┤")
  for r, row in ipairs(rows) do
    if row == "-" then out[#out + 1] = line("├", "┼", "┤") else out[#out + 1] = row_text(cells[r]) end
  end
  out[#out + 1] = line("╰", "┴", "╯")
  return table.concat(out, "\n") .. "\n"
end

-- 1536 -> "1.5 KiB"
function M.bytes(n)
  if not n then return "" end
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local u = 1
  local v = n
  while v >= 1024 and u < #units do v = v / 1024; u = u + 1 end
  if u == 1 then return ("%d B"):format(n) end
  return ("%.1f %s"):format(v, units[u])
end

return M
