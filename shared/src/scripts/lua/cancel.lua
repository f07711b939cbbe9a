-- cancel.lua: cancel one job. A queued or scheduled job ends at once and never runs (its stream
-- entry is skipped by claim.lua); a running job is flagged and its worker told through the
-- cancel channel (and, should it miss that, at its next lease renewal).
-- KEYS[1] job hash  KEYS[2] scheduled zset  KEYS[3] counts hash  KEYS[4] events stream
-- ARGV[1] ref  ARGV[2] result ttl ms  ARGV[3] max events  ARGV[4] notify channel
-- ARGV[5] cancel channel  ARGV[6] tag (tool/ref)  ARGV[7] cancelled error json
-- Returns {'cancelled'} | {'requested'} | {'final', state} | {'missing'}

local job, sched, counts, ev = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, ttl, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', job, 'state')
if not state then
  return { 'missing' }
end
if is_terminal(state) then
  return { 'final', state }
end
local now = now_ms()
if state == S.running then
  redis.call('HSET', job, 'cancel_requested', '1')
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return { 'requested' }
end
if state == S.scheduled then
  redis.call('ZREM', sched, ref)
end
redis.call('HSET', job, 'error', ARGV[7])
finish({ job = job, ev = ev, ref = ref, from = state, to = S.cancelled, now = now,
  counts = counts, result_ttl = ttl, maxlen = maxlen, channel = ARGV[4], tag = ARGV[6] })
return { 'cancelled' }
