-- Prints what a server serves (the JSON of spec/support/jscheck, on stdin)
-- as a table: a small example of a script using jsr.json and jsr.table.
--   jscheck --url nats://127.0.0.1:4222 | js-recover run scripts/served.lua
local json = require("jsr").json
local tbl = require "jsr.table"

local served = assert(json.decode(io.read("a")), "stdin is not jscheck's JSON")
local names = {}
for name in pairs(served.streams) do names[#names + 1] = name end
table.sort(names)
local rows = {}
for _, name in ipairs(names) do
  local s = served.streams[name]
  rows[#rows + 1] = { name, s.messages, s.first_seq, s.last_seq, s.retention, s.replicas, "" }
  local cnames = {}
  for c in pairs(s.consumers) do cnames[#cnames + 1] = c end
  table.sort(cnames)
  for _, c in ipairs(cnames) do
    local cs = s.consumers[c]
    rows[#rows + 1] = { "  └ " .. c, "", "", "", "", "",
      ("ack floor %d, pending %d"):format(cs.ack_floor_stream_seq, cs.num_pending) }
  end
end
io.write(tbl.render("Served by the standalone server",
  { "Stream / consumer", "Messages", "First", "Last", "Retention", "Replicas", "Consumer state" }, rows))
