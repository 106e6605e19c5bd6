-- A 2.9.10 stream group's snapshot holds the sequences its store had
-- deleted (streamSnapshot "deleted"), and a group member applies them
-- again when it loads the snapshot; a standalone server does not.  Here a
-- real 3-node cluster deletes two messages, then takes a snapshot (over
-- 8 MB of log since the last: 10 incompressible publishes of 900 KB), so
-- its log no longer holds the deletes.  All three nodes are SIGKILLed and
-- the survivor's block index files are taken away, as a crash before
-- 2.9.10's lazy index write leaves them: without the snapshot's deleted
-- set the deleted messages are served again.
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"

local ACME = cluster.USERS.ACME

describe("a 2.9.10 stream group's snapshot deletes", function()
  local cli = servers.natscli()
  if not cli then
    pending("natscli is not built (make servers): skipped")
    return
  end
  local r
  setup(function()
    local dir = ns.tmpdir()
    local c = cluster.start { dir = dir }
    local ok, res = pcall(function()
      local url = c.nodes[1].url
      local o = { stream = "SD", subjects = { "sd.a" }, replicas = 3, user = ACME.user,
                  password = ACME.password, timeout_ms = 10000, count = 10 }
      ns.jspub({ url = url }, o)
      o.count, o.delete = nil, { 3, 5 }
      ns.jspub({ url = url }, o)
      fx.sh(("%s -s %s --user %s --password %s pub sd.a '{{ Random 900000 900000 }}' --count 10 -J >/dev/null 2>&1")
        :format(fx.quote(cli), fx.quote(url), fx.quote(ACME.user), fx.quote(ACME.password)))
      local seen = ns.jscheck({ url = url }, { user = ACME.user, password = ACME.password })
      local before = seen.streams.SD
      os.execute(("kill -KILL %d %d %d"):format(c.nodes[1].srv.pid, c.nodes[2].srv.pid, c.nodes[3].srv.pid))
      for i = 1, 3 do c:kill(i, "KILL") end
      local store = dir .. "/copy"
      fx.sh(("cp -a %s %s"):format(fx.quote(c.nodes[2].store_dir), fx.quote(store)))
      local snaps = io.popen("ls " .. fx.quote(store) .. "/jetstream/SYS/_js_/S-R3F-*/snapshots/ 2>/dev/null"):read("a")
      fx.sh(("rm -f %s/jetstream/ACME/streams/SD/msgs/*.idx"):format(fx.quote(store)))
      local after, out = fx.prepare_and_serve(store)
      return { before = before, after = after.SD, snaps = snaps, prepare = out }
    end)
    c:stop_all()
    ns.rmtree(dir)
    assert(ok, res)
    r = res
  end)

  it("the cluster took a snapshot after the deletes", function()
    assert.matches("snap%.", r.snaps)
    assert.are.equal(18, r.before.messages)
  end)

  it("the deleted messages are not served again", function()
    assert.are.same({ r.before.messages, r.before.first_seq, r.before.last_seq },
      { r.after.messages, r.after.first_seq, r.after.last_seq }, r.prepare)
  end)
end)
