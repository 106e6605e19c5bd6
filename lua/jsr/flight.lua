-- Several NATS requests outstanding at once, from plain sequential code:
-- each task is a coroutine that calls flight.start / flight.finish (or
-- flight.request) as if they blocked; the scheduler sends at once, and
-- resumes whichever task's answer comes first (jsr.nats.poll covers every
-- connection).  `restore` runs a few streams so, each with a few chunks
-- in flight, because a cluster's answer to one request (a stream created,
-- a chunk written, a stream loaded) takes a round trip through its meta
-- leader, and waiting for each in turn leaves the cluster idle.
-- Outside a task (compare, tests) the same calls simply block.
local jsr = require("jsr")

local M = {}

local tasks = {}    -- coroutine -> true while it runs under M.run
local waiting = {}  -- request id -> ticket a task waits for (or will)
local sleepers = {} -- ticket -> true: tasks in M.sleep

-- Seconds spent with nothing to do but wait for the target's answers:
-- what the cluster takes to store and replicate; the rest of a run is
-- js-recover's own work.
M.waited = 0

local function no_responders(status)
  return status == "503"
end

-- start(conn, subject, body, timeout_ms) -> ticket: the request is sent now
function M.start(conn, subject, body, timeout_ms)
  local t = { timeout = (timeout_ms or 5000) / 1000, subject = subject, url = conn }
  if not tasks[coroutine.running()] then
    local w0 = jsr.monotime()
    t.reply, t.err = conn:request(subject, body, timeout_ms)
    M.waited = M.waited + (jsr.monotime() - w0)
    t.done = true
    return t
  end
  local id, err = conn:send(subject, body)
  if not id then
    t.done, t.err = true, err
    return t
  end
  t.id, t.deadline = id, jsr.monotime() + t.timeout
  waiting[id] = t
  return t
end

-- finish(ticket) -> reply | nil, msg (the messages of conn:request: "No
-- responders ...", "Timeout")
function M.finish(t)
  if not t.done then
    t.co = coroutine.running()
    coroutine.yield()
  end
  return t.reply, t.err
end

function M.request(conn, subject, body, timeout_ms)
  return M.finish(M.start(conn, subject, body, timeout_ms))
end

-- sleep(seconds): inside a task, the others go on meanwhile
function M.sleep(s)
  if not tasks[coroutine.running()] then
    os.execute(("sleep %.3f"):format(s))
    return
  end
  local t = { deadline = jsr.monotime() + s, co = coroutine.running() }
  sleepers[t] = true
  coroutine.yield()
end

local function settle(t, reply, err)
  t.done, t.reply, t.err = true, reply, err
  waiting[t.id] = nil
  local co = t.co
  t.co = nil
  return co
end

-- run(next_task, parallel): next_task() -> a function to run as a task, or
-- nil when there are no more; at most `parallel` run at once.  A task's
-- error stops the run: the others are abandoned (their requests left
-- unanswered) and the error is raised again.
function M.run(next_task, parallel)
  local alive, more = 0, true
  local failure
  local function step(co)
    local ok, err = coroutine.resume(co)
    if not ok then failure = failure or err end
    if coroutine.status(co) == "dead" then
      tasks[co] = nil
      alive = alive - 1
    end
  end
  while not failure do
    while more and alive < parallel and not failure do
      local f = next_task()
      if not f then more = false; break end
      local co = coroutine.create(f)
      tasks[co], alive = true, alive + 1
      step(co)
    end
    if alive == 0 or failure then break end
    -- the nearest deadline bounds the wait
    local now = jsr.monotime()
    local wake = now + 1
    for _, t in pairs(waiting) do if t.deadline < wake then wake = t.deadline end end
    for t in pairs(sleepers) do if t.deadline < wake then wake = t.deadline end end
    local ms = math.max(0, math.floor((wake - now) * 1000 + 0.5))
    local w0 = jsr.monotime()
    local id, data, status = jsr.nats.poll(ms)
    M.waited = M.waited + (jsr.monotime() - w0)
    if id == nil then error(data, 0) end
    -- every answer that came in is taken before any deadline is judged:
    -- answers wait in the queue while tasks work, and an answer there in
    -- time is not a timeout
    local ready = {}
    while id do
      local t = waiting[id]
      if t then
        local co
        if no_responders(status) then
          co = settle(t, nil, ("request to %s: No responders available for request"):format(t.subject))
        else
          co = settle(t, data)
        end
        if co then ready[#ready + 1] = co end
      end
      id, data, status = jsr.nats.poll(0)
      if id == nil then error(data, 0) end
    end
    now = jsr.monotime()
    for rid, t in pairs(waiting) do
      if t.deadline <= now then
        local co = settle(t, nil, ("request to %s: Timeout"):format(t.subject))
        waiting[rid] = nil
        if co then ready[#ready + 1] = co end
      end
    end
    for t in pairs(sleepers) do
      if t.deadline <= now then
        sleepers[t] = nil
        ready[#ready + 1] = t.co
      end
    end
    for _, co in ipairs(ready) do
      if failure then break end
      step(co)
    end
  end
  -- abandoned: forget what they waited for
  for co in pairs(tasks) do tasks[co] = nil end
  for rid in pairs(waiting) do waiting[rid] = nil end
  for t in pairs(sleepers) do sleepers[t] = nil end
  if failure then error(failure, 0) end
end

return M
