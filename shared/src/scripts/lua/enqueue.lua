-- enqueue.lua: create a job atomically (job hash + stream entry or schedule + first event),
-- with correlation-ID idempotency and the queue-length limit.
-- KEYS[1] job hash      KEYS[2] the priority's stream   KEYS[3] events stream
-- KEYS[4] scheduled zset  KEYS[5] counts hash
-- ARGV[1] ref  ARGV[2] request hash  ARGV[3] max queue length  ARGV[4] job ttl ms
-- ARGV[5] delay ms  ARGV[6] max events  ARGV[7] notify channel  ARGV[8] notify tag
-- ARGV[9..] field, value pairs of the job (tool, tenant, cid, target, args, …)
-- Returns {'created', state, created_ms} | {'exists', state} | {'conflict', state} | {'full', depth}

local job, stream, ev, sched, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ref, hash = ARGV[1], ARGV[2]
local max_len, ttl, delay = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local existing = redis.call('HMGET', job, 'req_hash', 'state')
if existing[2] then
  if existing[1] == hash then
    return { 'exists', existing[2] }
  end
  return { 'conflict', existing[2] }
end

local depth = tonumber(redis.call('HGET', counts, S.queued) or '0')
  + tonumber(redis.call('HGET', counts, S.scheduled) or '0')
if depth >= max_len then
  return { 'full', depth }
end

local now = now_ms()
local fields = {}
for i = 9, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', job, 'req_hash', hash, 'created_ms', now, 'attempt', 0, 'deliveries', 0,
  'fence', 0, 'evseq', 0, unpack(fields))
redis.call('PEXPIRE', job, ttl)

local state
if delay > 0 then
  state = S.scheduled
  redis.call('ZADD', sched, now + delay, ref)
  redis.call('HSET', job, 'retry_at_ms', now + delay)
else
  state = S.queued
  redis.call('XADD', stream, '*', 'ref', ref)
  redis.call('HSET', job, 'ready_ms', now)
end
move(counts, job, nil, state, now)
emit(ev, job, 'state', state_event(state, now), tonumber(ARGV[6]), ARGV[7], ARGV[8])
redis.call('PEXPIRE', ev, ttl)
return { 'created', state, now }
