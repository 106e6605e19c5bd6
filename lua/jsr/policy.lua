-- A policy is one table of hooks for every command a site runs it with:
-- survivors take choose_copy, export and restore restore_config, and pass
-- the rest on, down to prepare's (jsr/prepare.lua checks those names).
local M = {}

-- split(hooks, policy) -> own, rest: own = the hooks named in `hooks`
-- (the policy's, else the default there), rest = the policy's others
function M.split(hooks, policy)
  local own, rest = {}, {}
  for k, v in pairs(hooks) do own[k] = v end
  for k, v in pairs(policy or {}) do
    if hooks[k] then own[k] = v else rest[k] = v end
  end
  return own, rest
end

return M
