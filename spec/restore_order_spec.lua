-- restore's order when streams source from or mirror each other: a
-- sourcing stream before its origins, which wait until it is restored
-- (2.15.3 imports an origin's messages again into a sourcing stream
-- restored while the origin exists: spec/supercluster_spec.lua).
local restore = require "jsr.restore"

local function stream(account, name, cfg) return { account = account, name = name, target_config = cfg } end

describe("restore's dependency order", function()
  it("restores each stream before the streams of its account it sources from or mirrors", function()
    local s = {
      stream("A", "COMBINED", { sources = { { name = "LOCAL" }, { name = "ORDERS" },
                                            { name = "FAR", external = { api = "$JS.leaf.API" } } } }),
      stream("A", "LOCAL", {}),
      stream("A", "MIR", { mirror = { name = "COMBINED" } }),
      stream("A", "ORDERS", {}),
      stream("B", "LOCAL", { sources = { { name = "ORDERS" } } }), -- B has no ORDERS
      stream("A", "FAR", {}),
    }
    local order = restore.dependency_order(s)
    local pos = {}
    for rank, i in ipairs(order) do pos[s[i].account .. "/" .. s[i].name] = rank end
    assert.are.equal(6, #order)
    assert.is_true(pos["A/COMBINED"] < pos["A/LOCAL"] and pos["A/COMBINED"] < pos["A/ORDERS"])
    assert.is_true(pos["A/MIR"] < pos["A/COMBINED"])
    -- LOCAL and ORDERS wait for COMBINED, COMBINED for MIR; FAR (another
    -- domain's origin, not restored along) and B's streams for nothing
    assert.are.same({ 1 }, s[2].wait_for)
    assert.are.same({ 1 }, s[4].wait_for)
    assert.are.same({ 3 }, s[1].wait_for)
    assert.are.same({}, s[6].wait_for)
    assert.are.same({}, s[5].wait_for)
  end)

  it("breaks a cycle where it closes, so nothing waits for a stream handed out after it", function()
    local s = { stream("A", "C1", { sources = { { name = "C2" } } }), stream("A", "C2", { sources = { { name = "C1" } } }) }
    local order = restore.dependency_order(s)
    assert.are.equal(2, #order)
    local first, second = s[order[1]], s[order[2]]
    assert.are.same({}, first.wait_for)
    assert.are.same({ order[1] }, second.wait_for)
  end)
end)
