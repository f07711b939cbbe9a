-- enqueue.lua: create a job atomically (job hash + stream entry or schedule + first event),
-- with correlation-ID idempotency and the queue-length limit.
-- KEYS[1] job hash      KEYS[2] the priority's stream   KEYS[3] events stream
-- KEYS[4] scheduled zset  KEYS[5] counts hash  KEYS[6] fair-share hash (tenant → entries in
-- the streams)  KEYS[7] backlog key prefix (+ tenant = that tenant's backlog list)
-- ARGV[1] ref  ARGV[2] request hash  ARGV[3] max queue length  ARGV[4] job ttl ms
-- ARGV[5] delay ms  ARGV[6] max events  ARGV[7] notify channel  ARGV[8] notify tag
-- ARGV[9] fair-share window: a tenant with this many entries in the ready streams has further
-- jobs wait in its own backlog list, moved to the stream as its entries are claimed, so one
-- tenant's flood cannot starve another (0 = no window)
-- ARGV[10..] field, value pairs of the job (tool, tenant, cid, target, args, …)
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
for i = 10, #ARGV do
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
  local window = tonumber(ARGV[9])
  local share = tonumber(redis.call('HGET', KEYS[6], tenant_of(ref)) or '0')
  if window > 0 and share >= window then
    redis.call('RPUSH', KEYS[7] .. tenant_of(ref), ref)
  else
    ready(stream, KEYS[6], ref)
  end
  redis.call('HSET', job, 'ready_ms', now)
end
move(counts, job, nil, state, now)
emit(ev, job, 'state', state_event(state, now), tonumber(ARGV[6]), ARGV[7], ARGV[8])
redis.call('PEXPIRE', ev, ttl)
return { 'created', state, now }
