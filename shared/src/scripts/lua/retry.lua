-- retry.lua: queue a failed (dead) or cancelled job again, with fresh attempt counts.
-- KEYS[1] job hash  KEYS[2] dead zset  KEYS[3] counts hash  KEYS[4] events stream
-- KEYS[5..7] streams high, normal, low  KEYS[8] fair-share hash
-- ARGV[1] ref  ARGV[2] job ttl ms  ARGV[3] max events  ARGV[4] notify channel  ARGV[5] tag
-- Returns {'queued'} | {'not_retryable', state} | {'missing'}

local job, dead, counts, ev = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local streams = { high = KEYS[5], normal = KEYS[6], low = KEYS[7] }
local ref, ttl = ARGV[1], tonumber(ARGV[2])
local h = redis.call('HMGET', job, 'state', 'priority')
if not h[1] then
  return { 'missing' }
end
if h[1] ~= S.failed and h[1] ~= S.cancelled then
  return { 'not_retryable', h[1] }
end
local now = now_ms()
redis.call('ZREM', dead, ref)
redis.call('HDEL', job, 'result', 'error', 'finished_ms', 'duration_ms', 'started_ms',
  'worker', 'progress', 'retry_at_ms', 'queue_wait_ms')
redis.call('HSET', job, 'attempt', 0, 'deliveries', 0, 'cancel_requested', '0', 'ready_ms', now)
ready(streams[h[2]] or streams.normal, KEYS[8], ref)
move(counts, job, h[1], S.queued, now)
emit(ev, job, 'state', state_event(S.queued, now, { reason = 'retry' }), tonumber(ARGV[3]), ARGV[4], ARGV[5])
redis.call('PEXPIRE', job, ttl)
redis.call('PEXPIRE', ev, ttl)
return { 'queued' }
