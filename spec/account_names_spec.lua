-- recovery.conf declares every account under the exact name its directory
-- has: a name the server reads back differently loses that account's
-- streams silently, and one it cannot parse loses the whole file.  Proved
-- with the real servers (Debian's 2.9.10 and the newest pinned release):
-- ORDERS copied into accounts with awkward names, each served back.
local json = require("jsr").json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

-- every character class the config lexer treats specially, in keys and
-- in the user names (values) derived from them
local NAMES = {
  'q"t', "a\\b", "it's", "both\"and'", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "$dollar",
  "~tilde", "e=q", "x:y", "at@x", "#hash", "sp ace", "tab\tname", "}brace",
  "include", "a,b", "semi;colon", "new\nline",
  -- the name of the user clients without credentials become ($G renamed)
  "js-recover-anonymous",
}

local function copy_orders(store, name)
  local dst = store .. "/jetstream/" .. name .. "/streams"
  fx.sh(("mkdir -p %s && cp -a %s %s"):format(fx.quote(dst),
    fx.quote(store .. "/jetstream/$G/streams/ORDERS"), fx.quote(dst .. "/")))
end

for _, server in ipairs(servers.fast()) do
  describe("recovery.conf on nats-server " .. server.version, function()
    it("declares accounts with quotes, backslashes, unicode and config syntax in their names, each served", function()
      local store = fx.unpack("survivor-2.9.10.tar.gz")
      for _, name in ipairs(NAMES) do copy_orders(store, name) end
      local code, _, err = fx.run("prepare", store)
      assert.are.equal(0, code, err)
      local r = assert(json.decode(fx.read(store .. "/recovery-report.json")))
      local srv = ns.start { config = store .. "/recovery.conf", bin = server.bin }
      finally(function() srv:stop(); fx.cleanup(store) end)
      local seen = {}
      for _, a in ipairs(r.accounts) do
        if a.user and a.name ~= "GLOBAL" then
          local streams = ns.jscheck(srv, { user = a.user, password = a.password }).streams
          assert.are.equal(1000, streams.ORDERS and streams.ORDERS.messages, a.name)
          assert.is_nil(streams.EVENTS, a.name)
          seen[a.name] = true
        end
      end
      for _, name in ipairs(NAMES) do assert.is_true(seen[name], name) end
      -- the one error the server logs is about names with white space, which
      -- cannot be a subject token of its per-account monitoring imports;
      -- JetStream serves those accounts all the same (checked above)
      for line in srv:log():gmatch("[^\n]*%[ERR%][^\n]*") do
        assert.matches("Error setting up system service import", line, 1, true)
      end
    end)
  end)
end

describe("an account name no config can carry", function()
  it("is refused before any change, naming the account directory", function()
    local store = fx.unpack("survivor-2.9.10.tar.gz")
    finally(function() fx.cleanup(store) end)
    local name = "both\"and' space"
    copy_orders(store, name)
    local before = fx.tree_digest(store)
    local code, _, err = fx.run("prepare", store)
    assert.are.equal(1, code)
    assert.matches(store .. "/jetstream/" .. name, err, 1, true)
    assert.matches("no nats-server config can declare it", err, 1, true)
    assert.are.equal(before, fx.tree_digest(store))
  end)
end)
