-- An encrypted and S2-compressed stream (newest release, aes): a standalone
-- server with jetstream { key, cipher } writes enough that full blocks are
-- compressed, then encrypted over the compression.  export (with the key
-- in a file) writes them decrypted and decoded, and the real nats CLI
-- restores them into a plaintext server, which serves every message.
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local cluster = require "spec.support.cluster"
local servers = require "spec.support.servers"
local restored = require "spec.support.restored"

local nats, newest = servers.natscli(), servers.newest()
if not (nats and newest) then return end

local N = 2500 -- 4 KB each: more than one 8 MiB block

describe("export of an encrypted, compressed " .. newest.version .. " stream", function()
  local err, compressed_blocks, blocks_n, info, out

  setup(function()
    local dir = ns.tmpdir()
    local c, t
    local ok, e = pcall(function()
      local key = "cmp-" .. jsr.random_hex(16)
      c = cluster.start { dir = dir .. "/src", nodes = 1, key = key, cipher = "aes", bin = newest.bin }
      local u = cluster.USERS.ACME
      local function cli(url, args)
        local a = { "--server", url, "--user", u.user, "--password", u.password }
        for _, x in ipairs(args) do a[#a + 1] = x end
        return restored.nats(nats, a)
      end
      cli(c.nodes[1].url, { "req", "$JS.API.STREAM.CREATE.CMP", assert(json.encode {
        name = "CMP", subjects = { "cmp.>" }, storage = "file", num_replicas = 1, compression = "s2" }) })
      cli(c.nodes[1].url, { "pub", "cmp.a", ("x"):rep(4000), "--count", tostring(N), "-J" })
      c:stop_all()
      -- the situation: full blocks compressed under the encryption
      local msgs = c.nodes[1].store_dir .. "/jetstream/ACME/streams/CMP/msgs"
      jsr.set_keys { key = key }
      compressed_blocks, blocks_n = 0, 0
      for _, n in ipairs(jsr.listdir(msgs) or {}) do
        local i = n:match("^(%d+)%.blk$")
        if i then
          blocks_n = blocks_n + 1
          local f = assert(io.open(msgs .. "/" .. n, "rb"))
          local head = f:read(4) or ""
          f:close()
          local plain = assert(jsr.block_crypt(head, { keyfile = msgs .. "/" .. i .. ".key", account = "ACME",
                                                       context = "CMP:" .. i }))
          if plain:sub(1, 4) == "cmp\1" then compressed_blocks = compressed_blocks + 1 end
        end
      end
      jsr.set_keys(nil)
      local kf = dir .. "/js.key"
      cluster.write_file(kf, key .. "\n")
      local code, o, perr = fx.run("export", c.nodes[1].store_dir, dir .. "/out", "--key-file", kf)
      assert(code == 0, perr .. o)
      out = o
      t = cluster.start { dir = dir .. "/dst", nodes = 1, bin = newest.bin }
      cli(t.nodes[1].url, { "backup", "restore", "stream", dir .. "/out/ACME/CMP", "--no-progress" })
      info = assert(json.decode(cli(t.nodes[1].url, { "stream", "info", "CMP", "--json" })))
    end)
    if c then c:stop_all() end
    if t then t:stop_all() end
    if ok then ns.rmtree(dir) else err = tostring(e) .. " (kept in " .. dir .. ")" end
  end)

  it("the store holds compressed blocks encrypted over the compression", function()
    assert.is_nil(err, err)
    assert.is_true(blocks_n >= 2, tostring(blocks_n))
    assert.is_true(compressed_blocks >= 1, ("%d of %d blocks compressed"):format(compressed_blocks, blocks_n))
  end)

  it("the plaintext target serves every message after a real nats restore", function()
    assert.is_nil(err, err)
    assert.matches("exported ACME > CMP: " .. N .. " messages", out, 1, true)
    assert.are.equal(N, info.state.messages)
    assert.are.equal(1, info.state.first_seq)
    assert.are.equal(N, info.state.last_seq)
  end)
end)
