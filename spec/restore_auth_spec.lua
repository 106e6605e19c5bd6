-- js-recover restore's ways into a target: TLS (a CA, and a client
-- certificate the server requires), user/password and an nkey seed, each
-- into its own target account of one newest-release server; a token on a
-- second server; and the refusals: no CA for a TLS server, a seed file
-- without a seed.  The store is the 2.9.10 drill survivor (its streams are
-- in $G, mapped with --accounts), restored at --replicas 1 (a standalone
-- server refuses R3; the R3 consumer follows its stream to 0).
local jsr = require "jsr"
local json = jsr.json
local fx = require "spec.support.fixture"
local ns = require "spec.support.natsserver"
local servers = require "spec.support.servers"

local newest = servers.newest()
if not newest then return end -- servers.lua names what was not built

-- An nkey user seed (nkeys' encoding: base32 of the seed prefix, 32
-- random bytes and a CRC-16/XMODEM), written to path.
local function crc16(s)
  local crc = 0
  for i = 1, #s do
    crc = crc ~ (s:byte(i) << 8)
    for _ = 1, 8 do
      crc = (crc & 0x8000) ~= 0 and (((crc << 1) ~ 0x1021) & 0xffff) or ((crc << 1) & 0xffff)
    end
  end
  return crc
end
local function base32(s)
  local A, out, acc, bits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", {}, 0, 0
  for i = 1, #s do
    acc, bits = (acc << 8) | s:byte(i), bits + 8
    while bits >= 5 do
      local v = (acc >> (bits - 5)) & 31
      out[#out + 1] = A:sub(v + 1, v + 1)
      bits = bits - 5
    end
  end
  if bits > 0 then
    local v = (acc << (5 - bits)) & 31
    out[#out + 1] = A:sub(v + 1, v + 1)
  end
  return table.concat(out)
end
local function user_seed(path)
  local raw = string.char(149, 0) .. (jsr.random_hex(32):gsub("..", function(h) return string.char(tonumber(h, 16)) end))
  local c = crc16(raw)
  fx.write(path, base32(raw .. string.char(c & 0xff, c >> 8)) .. "\n")
end

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
end

local function certs(dir)
  local d = fx.quote(dir)
  sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=jsr-test-ca"):format(d))
  for _, n in ipairs { "server", "client" } do
    sh(("cd %s && openssl req -newkey rsa:2048 -nodes -keyout %s.key -out %s.csr -subj /CN=%s"):format(d, n, n, n))
    fx.write(dir .. "/" .. n .. ".ext", n == "server" and "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
      or "extendedKeyUsage=clientAuth\n")
    sh(("cd %s && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out %s.pem -days 2 -extfile %s.ext")
      :format(d, n, n, n))
  end
end

describe("restore over TLS with user/password, nkey and token credentials", function()
  local store, dir, srv, tsrv, seed

  setup(function()
    store = fx.unpack("survivor-2.9.10.tar.gz")
    dir = fx.tmpdir()
    certs(dir)
    seed = dir .. "/user.nk"
    user_seed(seed)
    local pub = assert(jsr.nkey.public(seed))
    fx.write(dir .. "/tls.conf", ([[
jetstream { store_dir: "%s/js" }
tls { cert_file: "%s/server.pem", key_file: "%s/server.key", ca_file: "%s/ca.pem", verify: true }
accounts {
  PW: { jetstream: enabled, users: [ { user: "pw", password: "pw-secret" } ] }
  NK: { jetstream: enabled, users: [ { nkey: "%s" } ] }
}
]]):format(dir, dir, dir, dir, pub))
    fx.write(dir .. "/token.conf", ([[
jetstream { store_dir: "%s/js2" }
authorization { token: "t0ken-secret" }
]]):format(dir))
    srv = ns.start { config = dir .. "/tls.conf", bin = newest.bin }
    tsrv = ns.start { config = dir .. "/token.conf", bin = newest.bin }
  end)

  teardown(function()
    if srv then srv:stop() end
    if tsrv then tsrv:stop() end
    fx.cleanup(store)
    ns.rmtree(dir)
  end)

  local function tls()
    return "--tls-ca", dir .. "/ca.pem", "--tls-cert", dir .. "/client.pem", "--tls-key", dir .. "/client.key"
  end

  it("restores with user/password over TLS with a client certificate", function()
    local code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1", "--user", "pw", "--password", "pw-secret", tls())
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > JOBS", out, 1, true)
    assert.matches("every stream and consumer is served as it was sent", out, 1, true)
  end)

  it("restores with an nkey seed over TLS (into its own account)", function()
    local code, out, err = fx.run("restore", store, "--server", srv.url, "--replicas", "1", "--nkey", seed, tls())
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > ORDERS", out, 1, true)
  end)

  it("restores with a token, given in an --accounts file", function()
    local map = dir .. "/accounts.json"
    fx.write(map, json.encode { ["$G"] = { token = "t0ken-secret" } })
    local code, out, err = fx.run("restore", store, "--server", tsrv.url, "--replicas", "1", "--accounts", map)
    assert.are.equal(0, code, err .. out)
    assert.matches("restored $G > EVENTS", out, 1, true)
  end)

  it("names the server and TLS when the server's CA is not given", function()
    local code, _, err = fx.run("restore", store, "--server", srv.url, "--user", "pw", "--password", "pw-secret")
    assert.are.equal(3, code)
    assert.matches("account $G: cannot connect to " .. srv.url, err, 1, true)
  end)

  it("names a seed file that holds no seed", function()
    local bad = dir .. "/bad.nk"
    fx.write(bad, "not a seed\n")
    local code, _, err = fx.run("restore", store, "--server", srv.url, "--nkey", bad, tls())
    assert.are.equal(3, code)
    assert.matches(bad .. ": holds no valid nkey seed", err, 1, true)
  end)
end)
