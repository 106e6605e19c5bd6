-- Command-line options for the built-in scripts and site scripts alike.
local M = {}

-- parse(argv, spec) -> opts, positional | nil, message
-- spec maps a long option name to "flag", "string" or "number";
-- "--name value" and "--name=value" are both accepted; "--" ends options.
function M.parse(argv, spec)
  local opts, rest, i = {}, {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      local kind = spec[name]
      if not kind then return nil, ("unknown option --%s"):format(name) end
      if kind == "flag" then
        if inline then return nil, ("--%s takes no value"):format(name) end
        opts[name] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then return nil, ("--%s needs a value"):format(name) end
        end
        if kind == "number" then
          local n = math.tointeger(tonumber(v))
          if not n then return nil, ("--%s needs a whole number, not %q"):format(name, v) end
          v = n
        end
        opts[name] = v
      end
    elseif a:match("^%-%a") then
      return nil, ("unknown option %s"):format(a)
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

-- fail(cmd, code, ...) -> code: "js-recover <cmd>: ..." on stderr, for
-- a command that stops with that exit code.
function M.fail(cmd, code, ...)
  io.stderr:write("js-recover ", cmd, ": ", ...)
  return code
end

-- scan(cmd, opts, store) -> model, keyinfo | nil, exit code: what a
-- command that reads one store does first: the server's keys (--key-file,
-- JSR_KEY: jsr.keys; exit 2 when they cannot be read), then every entry
-- of the store (jsr.model.scan; exit 3 when it cannot be read), each
-- failure said on stderr.
function M.scan(cmd, opts, store)
  local kinfo, kerr = require("jsr.keys").load(opts)
  if not kinfo then return nil, M.fail(cmd, 2, kerr, "\n") end
  local m, err = require("jsr.model").scan(store)
  if not m then return nil, M.fail(cmd, 3, err, "\n") end
  return m, kinfo
end

-- human(fh) -> a writer for text meant for a person's terminal: names
-- from the store may hold control bytes (nats-server accepts them in
-- stream and account names), and written raw an escape sequence could
-- rewrite the operator's screen; every control byte but tab and newline
-- goes out as \xNN.  --json output does not need it (the encoder escapes).
function M.escape(s)
  return (tostring(s):gsub("[%z\1-\8\11-\31\127]", function(c) return ("\\x%02x"):format(c:byte()) end))
end

function M.human(fh)
  return {
    write = function(_, ...)
      for i = 1, select("#", ...) do fh:write(M.escape((select(i, ...)))) end
      return true
    end,
    flush = function() return fh:flush() end,
  }
end

return M
