-- A scan_block callback that raises must not leak what the scan holds
-- (the block's descriptor, the delete map, the cipher): the error is
-- raised again after the scan has let go of them.
local jsr = require "jsr"
local fx = require "spec.support.fixture"
local gen = require "spec.support.blockgen"

-- the descriptors of this Lua process: the shell's parent
local function open_fds()
  local h = assert(io.popen("ls /proc/$PPID/fd | wc -l"))
  local n = tonumber(h:read("a"))
  h:close()
  return n
end

describe("scan_block with a callback that raises", function()
  it("raises the callback's error and leaks no descriptor", function()
    local dir = fx.tmpdir()
    finally(function() fx.cleanup(dir) end)
    local path = dir .. "/1.blk"
    fx.write(path, gen.record("S-1", 1, 1000, "a", nil, "x") .. gen.record("S-1", 2, 2000, "a", nil, "y"))
    local before = open_fds()
    for _ = 1, 200 do
      local ok, err = pcall(jsr.scan_block, path, "S-1", { records = function() error("boom") end })
      assert.is_false(ok)
      assert.matches("boom", tostring(err), 1, true)
    end
    assert.is_true(open_fds() < before + 10)
  end)
end)
