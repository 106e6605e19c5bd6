-- What the fuzz targets (spec/fuzz/) found, through the CLI: each input the
-- fuzzers turned up that a real command reaches, on a real 2.9.10 store.
local fx = require "spec.support.fixture"

-- The survivor-wq-load fixture's consumer worker has a log one ack ahead
-- of its o.dat, so prepare salvages: it reads o.dat, applies the ack and
-- writes o.dat back with jsr.odat.encode.
describe("consumer state the server refuses (odat_fuzz)", function()
  local ODAT = "/jetstream/ACME/streams/LOADQ/obs/worker/o.dat"
  -- the fixture's o.dat ends with "0 redelivered"; these replace its tail
  local crafted = {
    { "a redelivered count of 0", function(b) return b:sub(1, -2) .. "\1\1\0" end,
      "redelivered count at byte 21 is 0" },
    { "a pending entry at the ack floor", function(b) return b:sub(1, 16) .. "\0" .. b:sub(18) end,
      "pending entry at byte 16 is at the ack floor" },
    { "an ack floor of 2^63", function(b)
        return b:sub(1, 2) .. ("\255"):rep(8) .. "\128\1" .. b:sub(5) end,
      "value at byte 2 is 2^63 or more" },
  }
  for _, c in ipairs(crafted) do
    it(("is not salvaged, with a note naming o.dat, when it holds %s"):format(c[1]), function()
      local store = fx.unpack("survivor-wq-load-2.9.10.tar.gz")
      finally(function() fx.cleanup(store) end)
      local bytes = c[2](fx.read(store .. ODAT))
      fx.write(store .. ODAT, bytes)
      local want = store .. ODAT .. ": consumer state: " .. c[3] .. "; not salvaged"
      local code, out, err = fx.run("inspect", store)
      assert.are.equal(0, code, err)
      assert.matches(want, out, 1, true)
      code, out, err = fx.run("prepare", store)
      assert.are.equal(0, code, err)
      assert.matches(want, out, 1, true)
      assert.is_true(bytes == fx.read(store .. ODAT), "o.dat was rewritten")
    end)
  end
end)
