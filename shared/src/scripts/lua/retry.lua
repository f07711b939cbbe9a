-- retry.lua: queue a failed (dead) or cancelled job again, with fresh attempt counts, under the
-- same queue-length limit and fair-share window as a new job (enqueue.lua): a retry is an
-- admission like any other.
-- KEYS[1] the tool's key prefix  KEYS[2] dead zset  KEYS[3] counts hash
-- KEYS[4..6] streams high, normal, low  KEYS[7] counts hash again (fair shares)
-- KEYS[8] backlog key prefix (+ tenant = that tenant's backlog list)
-- ARGV[1] ref  ARGV[2] job ttl ms  ARGV[3] max events  ARGV[4] notify channel  ARGV[5] tool name
-- KEYS[9..11] raw-lane streams high, normal, low (a job that needs raw sockets goes back there)
-- ARGV[6] max queue length  ARGV[7] fair-share window (0 = none)
-- A job that needs a person's approval (`approval` = 'needed') and was not approved (rejected,
-- or cancelled while it awaited a decision) goes back to `awaiting_approval` instead, outside
-- the queue (never around the person, DESIGN §14); an approved one is queued again.
-- Returns {'queued'} | {'awaiting'} | {'not_retryable', state} | {'missing'} | {'full', depth}

Q.maxev, Q.channel = tonumber(ARGV[3]), ARGV[4]
local streams = lanes({ KEYS[4], KEYS[5], KEYS[6] }, { KEYS[9], KEYS[10], KEYS[11] })
local ttl = tonumber(ARGV[2])
local j = job_at(KEYS[1], ARGV[1], ARGV[5])
if not load(j, { 'priority', 'needs_raw', 'approval', 'approval_decision' }) then
  return { 'missing' }
end
local state = j.h.state
if state ~= S.failed and state ~= S.cancelled then
  return { 'not_retryable', state }
end
if j.h.approval == 'needed' and j.h.approval_decision ~= 'approved' then
  local now = now_ms()
  redis.call('ZREM', KEYS[2], j.ref)
  redis.call('HDEL', j.key, 'result', 'error', 'finished_ms', 'duration_ms', 'started_ms',
    'worker', 'progress', 'retry_at_ms', 'queue_wait_ms', 'approval_decision', 'approval_by',
    'approval_reason', 'approval_ms')
  count(state, S.awaiting_approval, j)
  emit_state(j, 'state', S.awaiting_approval, now, { reason = 'retry' })
  save(j, now, { 'state', S.awaiting_approval, 'attempt', 0, 'deliveries', 0,
    'cancel_requested', '0' })
  flush_counts(KEYS[3])
  redis.call('PEXPIRE', j.key, ttl)
  if j.h.evs == '1' then redis.call('PEXPIRE', ev_key(j), ttl) end
  return { 'awaiting' }
end
local lane = lane_of(j.h.priority, j.h.needs_raw)
local who = in_lane(tenant_of(j.ref), is_raw_lane(lane))
local c = redis.call('HMGET', KEYS[3], S.queued, S.scheduled, share(who))
local depth = tonumber(c[1] or '0') + tonumber(c[2] or '0')
if depth >= tonumber(ARGV[6]) then
  return { 'full', depth }
end
local now = now_ms()
redis.call('ZREM', KEYS[2], j.ref)
redis.call('HDEL', j.key, 'result', 'error', 'finished_ms', 'duration_ms', 'started_ms',
  'worker', 'progress', 'retry_at_ms', 'queue_wait_ms', 'stop_reason')
local window = tonumber(ARGV[7])
if window > 0 and tonumber(c[3] or '0') >= window then
  -- Over the tenant's share of the stream: wait in its backlog, as a new job would.
  redis.call('RPUSH', KEYS[8] .. who, backlog_entry(lane, j.ref))
else
  ready(streams, lane, KEYS[7], j.ref)
end
count(state, S.queued, j)
emit_state(j, 'state', S.queued, now, { reason = 'retry' })
save(j, now, { 'state', S.queued, 'attempt', 0, 'deliveries', 0, 'cancel_requested', '0',
  'ready_ms', now })
flush_counts(KEYS[3])
-- Queued again, it no longer expires, as a new job would not (enqueue.lua).
redis.call('PERSIST', j.key)
if j.h.evs == '1' then redis.call('PERSIST', ev_key(j)) end
return { 'queued' }
