-- Site policy: recover only the named streams (in every account); the
-- others are moved aside into <store>/.js-recover/.
--
--   js-recover run scripts/keep-streams.lua ORDERS,EVENTS <store> [prepare options]
local prepare = require "jsr.prepare"

local list, store_and_options = (...), table.pack(select(2, ...))
if not list or list:match("^%-") then
  io.stderr:write("usage: js-recover run keep-streams.lua STREAM[,STREAM...] <store> [prepare options]\n")
  return 2
end
local keep = {}
for name in list:gmatch("[^,]+") do keep[name] = true end

return prepare.run({
  keep_stream = function(stream) return keep[stream.name] == true end,
}, table.unpack(store_and_options, 1, store_and_options.n))
