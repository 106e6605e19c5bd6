-- What a store holds, read once: accounts, streams, consumers, Raft groups,
-- with each meta file decoded and checked.  inspect and prepare both start
-- here, so they can never disagree about what they saw.
local jsr = require("jsr")

local M = {}

-- Messages quote names and bytes from the store: keep them one readable
-- line (invalid UTF-8 and control bytes as \xNN; valid UTF-8 names stay).
local function printable(s)
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = ("\\x%02x"):format(s:byte(bad))
    i = bad + 1
  end
  return (table.concat(out):gsub("[%z\1-\31\127]", function(c) return ("\\x%02x"):format(c:byte()) end))
end
M.printable = printable

-- A stream keeps its consumers in obs/ and its messages in msgs/: a file
-- there instead (the walk does not look) means the server loads neither.
local function layout_error(entry)
  for _, sub in ipairs({ { jsr.layout.CONSUMERS_DIR, "consumers" }, { jsr.layout.MSGS_DIR, "messages" } }) do
    local kind = jsr.lstat(entry.path .. "/" .. sub[1])
    if kind and kind ~= "directory" then
      return ("%s/%s: a %s where a directory should be (the stream's %s)"):format(entry.path, sub[1],
        kind == "file" and "file" or kind, sub[2])
    end
  end
end

local function read(entry)
  -- read_meta: cfg, info | false, info (encrypted) | nil, message, info
  local cfg, a, b = jsr.read_meta(entry.path)
  if cfg == false then
    entry.info, entry.encrypted = a, true
    entry.error = a.path .. ": encrypted; give the server's key with --key-file or JSR_KEY"
  elseif not cfg then
    entry.info, entry.error = b, a
    entry.encrypted = b and b.encrypted
  else
    entry.info, entry.config = a, cfg
    entry.encrypted = a.encrypted
    if not a.sum_ok then
      entry.error = a.sum_error
        or ("%s: meta.sum is %s but the file's checksum is %s (key %q)"):format(
          a.path, a.sum_file, a.sum_computed, a.key)
      entry.bad_sum = true
    end
  end
  if entry.error then entry.error = printable(entry.error) end
  return entry
end

-- scan(store) -> model, or nil, message when store is not a store.
-- store: a handle from jsr.open, or a path to open.
-- model = { store = handle (store_dir, js_dir), accounts = {...}, streams = {...},
--           consumers = {...}, raft = {...}, skipped = {...}, errors = {...},
--           system = account or nil }
function M.scan(store_arg)
  local st, err = store_arg, nil
  if type(store_arg) == "string" then st, err = jsr.open(store_arg) end
  if not st then return nil, err end
  local m = { store = st, accounts = {}, streams = {}, consumers = {}, raft = {},
              skipped = {}, errors = {} }
  local by_account, current = {}, nil
  local entries, werr = st:walk()
  if not entries then return nil, werr end
  for e in entries do
    if e.kind == "account" then
      current = { name = e.name, path = e.path, system = e.system, streams = {}, raft = {} }
      by_account[e.name] = current
      m.accounts[#m.accounts + 1] = current
      if e.system and not m.system then m.system = current end
    elseif e.kind == "stream" then
      local s = read({ account = e.account, name = e.name, path = e.path, consumers = {} })
      s.error = s.error or layout_error(s)
      by_account[e.account].streams[#by_account[e.account].streams + 1] = s
      m.streams[#m.streams + 1] = s
      current.last_stream = s
    elseif e.kind == "consumer" then
      local stream = by_account[e.account].last_stream
      local c = read({ account = e.account, stream = e.stream, name = e.name, path = e.path })
      stream.consumers[#stream.consumers + 1] = c
      m.consumers[#m.consumers + 1] = c
    elseif e.kind == "raft" then
      local g = { account = e.account, name = e.name, path = e.path, group = e.group }
      by_account[e.account].raft[#by_account[e.account].raft + 1] = g
      m.raft[#m.raft + 1] = g
    elseif e.kind == "skipped" and e.message == "not a directory" then
      -- a file where the layout needs a directory (an account, streams/,
      -- a stream, a consumer): what belongs there would silently be lost
      e.message = printable(("%s: a %s where a directory should be"):format(e.path,
        jsr.lstat(e.path) == "file" and "file" or "non-directory"))
      m.errors[#m.errors + 1] = e
    elseif e.kind == "skipped" then
      m.skipped[#m.skipped + 1] = e
    else
      e.message = printable(e.message)
      m.errors[#m.errors + 1] = e
    end
  end
  for _, a in ipairs(m.accounts) do a.last_stream = nil end
  return m
end

-- Every problem that makes a stream or consumer unusable, in walk order.
function M.problems(m)
  local out = {}
  for _, e in ipairs(m.errors) do out[#out + 1] = { path = e.path, message = e.message } end
  for _, s in ipairs(m.streams) do
    if s.error then out[#out + 1] = { path = s.path, message = s.error, stream = s } end
    for _, c in ipairs(s.consumers) do
      if c.error then out[#out + 1] = { path = c.path, message = c.error, consumer = c, stream = s } end
    end
  end
  return out
end

return M
