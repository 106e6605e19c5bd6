-- Site policy: keep interest retention (do not switch to limits) for
-- streams whose consumers are all known to be up to date, so the
-- standalone server may delete what every consumer has acknowledged.
-- Workqueue streams still switch to limits.
--
--   js-recover run scripts/keep-interest-retention.lua <store> [prepare options]
local prepare = require "jsr.prepare"

return prepare.run({
  retention = function(stream)
    if stream.config.retention == "interest" then return "interest" end
    return prepare.defaults.retention(stream)
  end,
}, ...)
