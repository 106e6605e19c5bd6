-- The meta group's state: where it is in a store and what it says (its
-- newest snapshot under _js_/_meta_, plus the log entries after it, as
-- raft.meta_state reads them), read once per model.  The lost report,
-- salvage and the survivors' survey each ask for it.
--
--   local metastate = require("jsr.metastate")
--   local dir, moved_aside = metastate.find(m)   -- nil when there is none
--   local st = metastate.read(m, dir)            -- raft.meta_state(dir)
local jsr = require("jsr")
local raft = require("jsr.raft")
local layout = jsr.layout

local M = {}

local function exists(path) return jsr.lstat(path) ~= nil end

-- Where the meta group's state is: the system account's _js_/_meta_, or,
-- once prepare has moved it aside, the newest copy under
-- .js-recover/removed/<id>/<account>/_js_/_meta_.
function M.find(m)
  for _, g in ipairs(m.raft) do
    if g.group == "meta" then return g.path, false end
  end
  local removed = layout.removed_dir(m.store.store_dir)
  local ids = jsr.listdir(removed) or {}
  for i = #ids, 1, -1 do
    for _, sub in ipairs(jsr.listdir(removed .. "/" .. ids[i]) or {}) do
      local p = layout.meta_group(removed .. "/" .. ids[i] .. "/" .. sub)
      if exists(p) then return p, true end
      -- the system account's _js_ itself may be what was moved
      p = removed .. "/" .. ids[i] .. "/" .. sub .. "/" .. layout.META_GROUP
      if sub == layout.RAFT_DIR and exists(p) then return p, true end
    end
  end
  return nil
end

-- read(m, dir): raft.meta_state(dir), read once per model (inspect and
-- prepare ask for it from the lost report and from salvage)
function M.read(m, dir)
  m._meta_states = m._meta_states or {}
  local st = m._meta_states[dir]
  if not st then
    st = raft.meta_state(dir)
    m._meta_states[dir] = st
  end
  return st
end

return M
