-- window_ends.lua: stop the running jobs whose engagement's window has ended (DESIGN §14,
-- `stop_at_window_end`), by Redis' clock, whichever worker runs them: any worker's duty loop
-- calls it for every queue it reaps. A worker that starts such a job registers
-- `<fence>:<ref>` in the queue's `ends` zset with the window's end as score; a due member whose
-- attempt still runs (same fence) gets `cancel_requested` and `stop_reason`, and its worker is
-- told through the cancel channel (or at its next lease renewal, which answers with the stop
-- reason). Members of attempts that already ended are dropped.
-- KEYS[1] the queue's ends zset  KEYS[2] the tool's key prefix
-- ARGV[1] cancel channel  ARGV[2] batch limit  ARGV[3] stop reason (`window_closed`)
-- ARGV[4] tool name  ARGV[5] one member to stop now whatever its score (the running worker's
-- own timer), or '' for the members due by Redis' clock
-- Returns the refs of the jobs asked to stop here.

local now = now_ms()
local due
if ARGV[5] ~= '' then
  due = { ARGV[5] }
else
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
end
local stopped = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local fence, ref = string.match(m, '^(%d+):(.+)$')
  if ref then
    local j = job_at(KEYS[2], ref, ARGV[4])
    local h = redis.call('HMGET', j.key, 'fence', 'state', 'cancel_requested')
    if h[1] == fence and h[2] == S.running and h[3] ~= '1' then
      redis.call('HSET', j.key, 'cancel_requested', '1', 'stop_reason', ARGV[3])
      redis.call('PUBLISH', ARGV[1], tag_of(j))
      stopped[#stopped + 1] = ref
    end
  end
end
return stopped
