-- Checks every command that changes a store makes first: one js-recover at
-- a time (a lock on the store directory), no run of prepare or undo left
-- half done by a crash, and no other process using the store.
local jsr = require("jsr")

local M = {}

-- Each takes a store handle (jsr.open); the lock is the store's own
-- (`local lock <close>, err = store:lock()`).

-- Journals left by a run that did not finish, as a message telling the
-- operator what to do, or nil when there are none.
function M.unfinished(store)
  local store_dir = store.store_dir
  local list, err = store:journal()
  if not list then return err end
  local lines = {}
  for _, j in ipairs(list) do
    if j.state == "uncommitted" or j.state == "incomplete" then
      lines[#lines + 1] = ("  journal %s: a run was cut off before its %d changes were all made")
        :format(j.id, j.ops)
    elseif j.state == "undoing" then
      lines[#lines + 1] = ("  journal %s: an undo was cut off before it finished"):format(j.id)
    elseif j.state == "unreadable" then
      lines[#lines + 1] = "  " .. j.error
    end
  end
  if #lines == 0 then return nil end
  return ("%s holds unfinished work:\n%s\n"
    .. "Run `js-recover undo %s` to put the store back as it was before, then run again.")
    :format(jsr.layout.journal_dir(store_dir), table.concat(lines, "\n"), store_dir)
end

-- Other processes that use the store: a refusal message (nil if none),
-- and a warning about processes that could not be checked.
function M.users(store, override)
  local store_dir = store.store_dir
  local list, unreadable = store:open_by()
  if not list then return unreadable end -- the message: /proc unreadable
  local warning
  if unreadable > 0 then
    warning = ("could not see the open files of %d processes of other users; run as root to "
      .. "check them, and make sure no nats-server uses %s"):format(unreadable, store_dir)
  end
  if #list == 0 then return nil, warning end
  local by_pid, order = {}, {}
  for _, o in ipairs(list) do
    local p = by_pid[o.pid]
    if not p then
      p = { first = o, n = 0 }
      by_pid[o.pid] = p
      order[#order + 1] = o.pid
    end
    p.n = p.n + 1
  end
  local lines = {}
  for _, pid in ipairs(order) do
    local p = by_pid[pid]
    lines[#lines + 1] = ("  pid %d (%s): %s %s%s"):format(pid, p.first.command, p.first.how,
      p.first.file, p.n > 1 and (" and %d more"):format(p.n - 1) or "")
  end
  return ("other processes use %s:\n%s\nStop them first: a running nats-server writes to "
    .. "the store while js-recover rewrites it.  If you are sure they do no harm, run again "
    .. "with %s."):format(store_dir, table.concat(lines, "\n"), override), warning
end

return M
