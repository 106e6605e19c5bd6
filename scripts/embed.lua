-- Build helper (not a policy): turns the built-in Lua scripts into a C
-- file, so the binary carries them and runs from any directory.
-- usage: lua5.4 scripts/embed.lua <out.c> <root> <file>...   (names relative to root)
local out_path, root = arg[1], arg[2]
local out = assert(io.open(out_path, "w"))
out:write('#include "jsr/host.h"\n\n')
local names = {}
for i = 3, #arg do
  local name = arg[i]
  local f = assert(io.open(root .. "/" .. name, "rb"))
  local data = f:read("a")
  f:close()
  names[#names + 1] = { name = name, len = #data }
  out:write(("static const char s%d[] = {"):format(#names))
  for j = 1, #data do
    if j % 20 == 1 then out:write("\n") end
    out:write(data:byte(j), ",")
  end
  out:write("0};\n")
end
out:write("\nconst jsr_builtin jsr_builtins[] = {\n")
for i, n in ipairs(names) do
  out:write(('    {"%s", s%d, %d},\n'):format(n.name, i, n.len))
end
out:write("};\nconst size_t jsr_builtin_count = ", #names, ";\n")
assert(out:close())
