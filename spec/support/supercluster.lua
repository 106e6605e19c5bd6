--- A supercluster on 127.0.0.1: two clusters of three nodes (a1..a3,
-- b1..b3) joined by gateways, one JetStream meta group across all six.
--
--   local sc = require("spec.support.supercluster").start{ dir = ns.tmpdir(), bin = server.bin }
--   finally(function() sc:stop_all() end)
--   sc.clusters = { {name=, nodes={1,2,3}}, {name=, nodes={4,5,6}} }
--   sc.nodes[i] = {name, id, tag, cluster, store_dir, conf, url, srv}
--   sc:kill(i, "KILL"), sc:meta(), sc:wait_meta() as spec/support/cluster.lua
--
-- Ports (routes and gateways) are picked as cluster.lua picks them, and the
-- whole supercluster starts again on other ports when one was taken.  The
-- cluster names carry a random number so that two runs never join.
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"

local M = {}

local q = cluster.quote

local function gateway_text(node, clusters, gw_ports)
  local gws = {}
  for ci, c in ipairs(clusters) do
    local urls = {}
    for j, i in ipairs(c.nodes) do urls[j] = ('"nats://127.0.0.1:%d"'):format(gw_ports[i]) end
    gws[ci] = ("    { name: %q, urls: [%s] }"):format(c.name, table.concat(urls, ", "))
  end
  return table.concat({
    "gateway {",
    ("  name: %q"):format(node.cluster),
    ('  listen: "127.0.0.1:%d"'):format(node.gateway_port),
    "  gateways: [",
    table.concat(gws, ",\n"),
    "  ]",
    "}",
    "",
  }, "\n")
end

--- start(opts): opts.dir (the caller's), opts.bin, opts.per (nodes per
-- cluster, default 3), opts.attempts (default 5), opts.extra(node) -> more
-- config text for a node (a jetstream domain, a leafnode block)
function M.start(opts)
  local dir = assert(opts.dir, "supercluster.start needs dir")
  local per = opts.per or 3
  local last_err
  for _ = 1, opts.attempts or 5 do
    local n = 2 * per
    local ports = cluster.pick_ports(2 * n)
    local tag = math.random(100000, 999999)
    local sc = setmetatable({ dir = dir, nodes = {}, sys = "SYS",
      clusters = { { name = "east" .. tag, nodes = {} }, { name = "west" .. tag, nodes = {} } } }, cluster.Cluster)
    sc.name = sc.clusters[1].name
    local gw_ports = {}
    for ci, c in ipairs(sc.clusters) do
      for j = 1, per do
        local i = (ci - 1) * per + j
        local name = ("%s%d"):format(ci == 1 and "a" or "b", j)
        local node = { name = name, tag = "node:" .. name, id = require("jsr").raft.node_id(name), cluster = c.name,
                       store_dir = dir .. "/" .. name, route_port = ports[i], gateway_port = ports[n + i],
                       conf = dir .. "/" .. name .. ".conf", log = dir .. "/" .. name .. ".log" }
        gw_ports[i] = node.gateway_port
        os.execute("mkdir -p " .. q(node.store_dir))
        sc.nodes[i] = node
        c.nodes[j] = i
      end
    end
    for _, c in ipairs(sc.clusters) do
      local routes = {}
      for j, i in ipairs(c.nodes) do routes[j] = ports[i] end
      for _, i in ipairs(c.nodes) do
        local node = sc.nodes[i]
        cluster.write_file(node.conf, cluster.config_text(node, routes, c.name, nil, nil)
          .. gateway_text(node, sc.clusters, gw_ports) .. (opts.extra and opts.extra(node) or ""))
      end
    end
    local ok, err = sc:boot(opts.bin, 30, 90)
    if ok then return sc end
    last_err = err
  end
  error("could not start a supercluster on free ports: " .. tostring(last_err), 0)
end

return M
