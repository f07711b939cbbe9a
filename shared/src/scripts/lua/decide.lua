-- decide.lua: a person's decision on a job awaiting approval (DESIGN §14). Approved, the job is
-- admitted like a new one (enqueue.lua, retry.lua): under the queue length and the tenant's
-- fair-share window, onto its ready stream (or its tenant's backlog), or into the schedule when
-- the time it waits for (its delay, its engagement's window: `retry_at_ms`) has not come.
-- Rejected, it ends `cancelled` with the given error. The decision's fields are saved with the
-- state change.
-- KEYS[1] the tool's key prefix  KEYS[2] scheduled zset  KEYS[3] counts hash
-- KEYS[4..6] streams high, normal, low  KEYS[7] counts hash again (fair shares)
-- KEYS[8] backlog key prefix (+ tenant = that tenant's backlog list)
-- KEYS[9..11] raw-lane streams high, normal, low
-- ARGV[1] ref  ARGV[2] job ttl ms  ARGV[3] max events  ARGV[4] notify channel  ARGV[5] tool name
-- ARGV[6] max queue length  ARGV[7] fair-share window (0 = none)  ARGV[8] 'approved' | 'rejected'
-- ARGV[9] result ttl ms  ARGV[10] the rejected job's error json
-- ARGV[11..] field, value pairs of the decision (approval_decision, approval_by, …); its time
-- (`approval_ms`) is Redis' clock
-- Returns {'queued', state} | {'rejected'} | {'not_awaiting', state} | {'missing'} | {'full', depth}

Q.maxev, Q.channel = tonumber(ARGV[3]), ARGV[4]
local streams = lanes({ KEYS[4], KEYS[5], KEYS[6] }, { KEYS[9], KEYS[10], KEYS[11] })
local j = job_at(KEYS[1], ARGV[1], ARGV[5])
if not load(j, { 'priority', 'needs_raw', 'retry_at_ms', 'started_ms' }) then
  return { 'missing' }
end
local state = j.h.state
if state ~= S.awaiting_approval then
  return { 'not_awaiting', state }
end
local now = now_ms()
local set = { 'approval_ms', now }
for i = 11, #ARGV do set[#set + 1] = ARGV[i] end

if ARGV[8] == 'rejected' then
  set[#set + 1] = 'error'
  set[#set + 1] = ARGV[10]
  finish({ j = j, from = state, to = S.cancelled, now = now,
    result_ttl = tonumber(ARGV[9]), set = set })
  flush_counts(KEYS[3])
  return { 'rejected' }
end

local lane = lane_of(j.h.priority, j.h.needs_raw)
local who = in_lane(tenant_of(j.ref), is_raw_lane(lane))
local c = redis.call('HMGET', KEYS[3], S.queued, S.scheduled, share(who))
local depth = tonumber(c[1] or '0') + tonumber(c[2] or '0')
if depth >= tonumber(ARGV[6]) then
  return { 'full', depth }
end
local at = tonumber(j.h.retry_at_ms or '0')
local to
if at > now then
  -- Its time has not come (a delay, a window): it waits in the schedule, as a new job would.
  redis.call('ZADD', KEYS[2], at, j.ref)
  to = S.scheduled
else
  redis.call('HDEL', j.key, 'retry_at_ms')
  local window = tonumber(ARGV[7])
  if window > 0 and tonumber(c[3] or '0') >= window then
    redis.call('RPUSH', KEYS[8] .. who, backlog_entry(lane, j.ref))
  else
    ready(streams, lane, KEYS[7], j.ref)
  end
  to = S.queued
  set[#set + 1] = 'ready_ms'
  set[#set + 1] = now
end
set[#set + 1] = 'state'
set[#set + 1] = to
count(state, to, j)
emit_state(j, 'state', to, now, { reason = 'approved' })
save(j, now, set)
flush_counts(KEYS[3])
-- Admitted, it no longer expires, as a new job would not (enqueue.lua): its TTLs are set when it
-- ends.
redis.call('PERSIST', j.key)
if j.h.evs == '1' then redis.call('PERSIST', ev_key(j)) end
return { 'queued', to }
