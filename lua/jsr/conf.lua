-- The standalone server configuration prepare writes (recovery.conf).
local M = {}

-- the user clients without credentials become when $G had to be renamed
M.ANONYMOUS = "js-recover-anonymous"

-- nats-server config string values: double-quoted; the server's lexer
-- reads \\ \" \n \r \t and \xXX in them (conf/lex.go, lexStringEscape), so
-- every other control byte goes as \xXX and the value reads back exactly.
local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function q(s)
  return '"' .. tostring(s):gsub('[%c\\"]', function(c)
    return ESC[c] or ("\\x%02x"):format(c:byte())
  end) .. '"'
end
M.quote = q

-- Characters Go's unicode.IsSpace calls space beyond ASCII: a bare key
-- ends at any of them.
local UNICODE_SPACES = { "\u{85}", "\u{a0}", "\u{1680}", "\u{2028}", "\u{2029}", "\u{202f}",
  "\u{205f}", "\u{3000}" }
for c = 0x2000, 0x200a do UNICODE_SPACES[#UNICODE_SPACES + 1] = utf8.char(c) end

-- A map key (an account name) as the server's lexer reads it back: it
-- takes the bytes between the quotes of a quoted key as they are, with no
-- escapes (conf/lex.go, lexMapDubQuotedKey), so a name with a " goes in
-- single quotes, and one with both quotes unquoted, which ends at a space,
-- '=' or ':' and cannot start with a quote, '#', '}' or ']' (a name never
-- holds '/', so never starts a // comment).
-- Returns nil, why for a name no form can carry.
function M.key(name)
  name = tostring(name)
  if name == "" then return nil, "an empty account name cannot be declared in a config" end
  if not name:find('"', 1, true) then return '"' .. name .. '"' end
  if not name:find("'", 1, true) then return "'" .. name .. "'" end
  local bare = not name:find("[%s=:]") and not name:find("^[\"'#}%]]")
  for _, sp in ipairs(UNICODE_SPACES) do
    if name:find(sp, 1, true) then bare = false end
  end
  if bare then return name end
  return nil, ("the account name %s holds both quote characters and a space, '=' or ':' "
    .. "(or starts with one of \" ' # } ]): no nats-server config can declare it"):format(q(name))
end

-- standalone(store_dir, accounts, port) -> text
-- accounts: { {name=, user=, password_bcrypt=, anonymous=}, ... } as planned; the
-- global account $G is never declared (the server refuses it): when it is
-- the only account, no accounts block is written and $G keeps JetStream.
-- encryption: {cipher=, env=} for an encrypted store: the key is not
-- written here but referenced as an environment variable ($JSR_KEY), which
-- nats-server resolves when it reads the config.
-- operator: {jwt=, system_account=, accounts = {{pub=, name=, jwt=}}} in
-- operator mode (jsr/operator.lua): the operator and the accounts' own
-- JWTs, copied into the file (a memory resolver preloaded with them), in
-- place of an accounts block; users log in with their own .creds.
function M.standalone(store_dir, accounts, port, encryption, operator)
  local out = {
    "# Written by js-recover for extraction of a recovered store.",
    "# Loopback only: this server exists to back the streams up, not to serve clients.",
    "# recovery-report.json next to this file lists what was changed and why.",
    ("listen: %s"):format(q("127.0.0.1:" .. port)),
    ("server_name: %s"):format(q("js-recover")),
    "jetstream {",
    ("  store_dir: %s"):format(q(store_dir)),
    -- the data already on disk must fit the limit, whatever the disk's free space
    "  max_file_store: 1125899906842624",
  }
  if encryption then
    out[#out + 1] = ("  key: $%s"):format(encryption.env)
    out[#out + 1] = ("  cipher: %s"):format(encryption.cipher)
  end
  out[#out + 1] = "}"
  if operator then
    -- copied, not referenced: the config must not depend on paths of the
    -- survivor's machine, and a memory resolver writes nothing to disk
    out[#out + 1] = ("operator: %s"):format(q(operator.jwt))
    out[#out + 1] = ("system_account: %s"):format(q(operator.system_account))
    out[#out + 1] = "resolver: MEMORY"
    out[#out + 1] = "resolver_preload: {"
    for _, a in ipairs(operator.accounts) do
      out[#out + 1] = ("  # %s, from %s"):format(tostring(a.name):gsub("%c", "?"), tostring(a.source):gsub("%c", "?"))
      out[#out + 1] = ("  %s: %s"):format(q(a.pub), q(a.jwt))
    end
    out[#out + 1] = "}"
    return table.concat(out, "\n") .. "\n"
  end
  local declared = {}
  for _, a in ipairs(accounts) do
    if a.name ~= "$G" then declared[#declared + 1] = a end
  end
  if #declared > 0 then
    out[#out + 1] = "accounts {"
    local anon
    for _, a in ipairs(declared) do
      out[#out + 1] = ("  %s: {"):format(assert(M.key(a.name)))
      out[#out + 1] = "    jetstream: enabled"
      -- the bcrypt hash: the password itself is only in recovery-report.json
      local users = { ("{ user: %s, password: %s }"):format(q(a.user), q(a.password_bcrypt)) }
      if a.anonymous then
        -- the old $G took clients without credentials; no_auth_user maps
        -- them to this user (measured: it must exist, with no password)
        users[#users + 1] = ("{ user: %s, password: \"\" }"):format(q(M.ANONYMOUS))
      end
      out[#out + 1] = ("    users: [ %s ]"):format(table.concat(users, ", "))
      out[#out + 1] = "  }"
      if a.anonymous then anon = a end
    end
    out[#out + 1] = "}"
    if anon then
      -- clients that used no credentials (the old $G) still land here
      out[#out + 1] = ("no_auth_user: %s"):format(q(M.ANONYMOUS))
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return M
