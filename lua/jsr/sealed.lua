-- The files of an encrypted store (jetstream { key, cipher }) as their
-- plaintext, and plaintext written back as the server writes it
-- (docs/FORMAT.md "Encryption"): o.dat sealed whole under its consumer's
-- meta.key (context STREAM.CONSUMER), meta.inf under its stream's, a block
-- XORed with the keystream of its N.key (context STREAM:N).  Changes are
-- kept in plaintext until prepare writes them (disk_bytes): salvage,
-- removal and the snapshot of a restore work on the same bytes as for a
-- plaintext store.
local jsr = require("jsr")
local layout = jsr.layout
local read_file = require("jsr.files").read

local M = {}

local function base(path) return path:match("([^/]+)$") end

-- block_keys(stream, b) -> the key options of block b (jsr.block_files) of
-- stream {name, account}, or nil for a plaintext block
function M.block_keys(stream, b)
  if not b.key then return nil end
  return { keyfile = b.key, account = stream.account, context = stream.name .. ":" .. b.index }
end

-- consumer_keys(s, c) -> the key options of consumer c's o.dat, or nil
function M.consumer_keys(s, c)
  local kf = layout.meta_key(c.path)
  if not jsr.lstat(kf) then return nil end
  return { keyfile = kf, account = s.account, context = s.name .. "." .. base(c.path) }
end

-- odat(s, c) -> bytes | nil, message: consumer c's o.dat in plaintext
-- (nil, nil: there is none)
function M.odat(s, c)
  local path = layout.consumer_state(c.path)
  local k = M.consumer_keys(s, c)
  if not k then return read_file(path), nil end
  if not jsr.lstat(path) then return nil, nil end
  return jsr.sealed_open(path, k)
end

-- meta_plain(dir, account, context) -> the bytes of dir/meta.inf in
-- plaintext (the JSON the server wrote) | nil, message
function M.meta_plain(dir, account, context)
  local kf = layout.meta_key(dir)
  if not jsr.lstat(kf) then return read_file(layout.meta_inf(dir)) end
  return jsr.sealed_open(layout.meta_inf(dir), { keyfile = kf, account = account, context = context })
end

-- disk_bytes(w) -> bytes [, extra = {path, data}] | nil, message
-- What prepare writes for a staged write {path, data, seal}: data as it is
-- (plaintext store), or sealed: seal.kind "file" (o.dat: AEAD under its
-- asset key), "block" (an existing block's keystream, its N.key kept) or
-- "new_block" (a fresh N.key, returned as extra, written next to it).
function M.disk_bytes(w)
  local s = w.seal
  if not s then return w.data end
  if s.kind == "file" then return jsr.sealed_seal(w.path, w.data, s) end
  if s.kind == "block" then return jsr.block_crypt(w.data, s) end
  local ct, key = jsr.block_seal_new(w.data, s)
  if not ct then return nil, ("%s: %s"):format(w.path, key) end
  return ct, { path = layout.block_file(w.path, layout.KEY_EXT), data = key }
end

return M
