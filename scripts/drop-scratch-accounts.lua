-- Site policy: prepare as usual, but leave out scratch and test accounts.
-- Their directories are moved aside into <store>/.js-recover/ like any
-- other removal, so nothing is lost if a name matched by mistake.
--
--   js-recover run scripts/drop-scratch-accounts.lua <store> [prepare options]
local prepare = require "jsr.prepare"

local DROP = { "^SCRATCH", "^TEST_", "^tmp%-" }

return prepare.run({
  keep_account = function(account)
    for _, pattern in ipairs(DROP) do
      if account.name:match(pattern) then return false end
    end
    -- everything else as the built-in policy decides (the system account goes)
    return prepare.defaults.keep_account(account)
  end,
}, ...)
