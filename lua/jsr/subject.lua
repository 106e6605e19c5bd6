-- NATS subjects as the server matches them: a filter's `*` matches one
-- token, a trailing `>` the rest (one token at least).  Used by the
-- replay (interest, transforms, purges), prepare's done-work rule and the
-- done-work report.
local M = {}

-- matches(filter, subject): nil, "" and ">" match every subject
function M.matches(filter, subject)
  if filter == nil or filter == "" or filter == ">" then return true end
  local ft, st = {}, {}
  for t in filter:gmatch("[^.]+") do ft[#ft + 1] = t end
  for t in subject:gmatch("[^.]+") do st[#st + 1] = t end
  for i, t in ipairs(ft) do
    if t == ">" then return #st >= i end
    if st[i] == nil or (t ~= "*" and t ~= st[i]) then return false end
  end
  return #ft == #st
end

-- A consumer's filters (filter_subjects, then filter_subject); none: it
-- takes every subject of its stream.
function M.consumer_filters(cfg)
  local f = {}
  if type(cfg.filter_subjects) == "table" then
    for _, x in ipairs(cfg.filter_subjects) do f[#f + 1] = x end
  end
  if type(cfg.filter_subject) == "string" and cfg.filter_subject ~= "" then f[#f + 1] = cfg.filter_subject end
  return f
end

-- wanted_by(cfg, subject): whether a consumer with this config takes it
function M.wanted_by(cfg, subject)
  local f = M.consumer_filters(cfg)
  if #f == 0 then return true end
  for _, x in ipairs(f) do if M.matches(x, subject) then return true end end
  return false
end

return M
