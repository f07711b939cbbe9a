-- reap.lua: the queue's clock work for one tool, run by every worker every few hundred ms
-- (idempotent, so any number of workers may run it):
--  1. jobs whose scheduled time has come are queued again;
--  2. running jobs whose lease lapsed (their worker died or froze) are taken over: cancelled if a
--     cancel was requested, dead as worker_lost when out of attempts or deliveries, otherwise
--     scheduled for a retry with exponential back-off and jitter. The fence is bumped so the
--     old worker can no longer write a result.
-- KEYS[1] scheduled zset  KEYS[2] leases zset  KEYS[3] counts hash  KEYS[4] dead zset
-- KEYS[5] job key prefix  KEYS[6..8] streams high, normal, low  KEYS[9] fair-share hash
-- KEYS[10] backlog key prefix  KEYS[11] running-per-tenant hash
-- ARGV[1] batch limit  ARGV[2] max deliveries  ARGV[3] retry base ms  ARGV[4] retry max ms
-- ARGV[5] result ttl ms  ARGV[6] dead ttl ms  ARGV[7] max events  ARGV[8] notify channel
-- ARGV[9] tool name  ARGV[10] random number in [0,1) for jitter  ARGV[11] worker-lost error json
-- ARGV[12] cancelled error json
-- Returns {promoted, {ref, new state}…}

local sched, leases, counts, dead, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local streams = { high = KEYS[6], normal = KEYS[7], low = KEYS[8] }
local limit, max_deliveries = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local result_ttl, dead_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local maxlen, channel, tool, rnd = tonumber(ARGV[7]), ARGV[8], ARGV[9], tonumber(ARGV[10])
local lost_err, cancel_err = ARGV[11], ARGV[12]
local now = now_ms()

local promoted = 0
for _, ref in ipairs(redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', sched, ref)
  local job = prefix .. 'job:' .. ref
  local h = redis.call('HMGET', job, 'state', 'priority')
  if h[1] == S.scheduled then
    ready(streams[h[2]] or streams.normal, KEYS[9], ref)
    redis.call('HSET', job, 'ready_ms', now)
    move(counts, job, S.scheduled, S.queued, now)
    emit(prefix .. 'ev:' .. ref, job, 'state', state_event(S.queued, now), maxlen, channel, tool .. '/' .. ref)
    promoted = promoted + 1
  end
end

local taken = {}
for _, ref in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', leases, ref)
  local job = prefix .. 'job:' .. ref
  local ev = prefix .. 'ev:' .. ref
  local h = redis.call('HMGET', job, 'state', 'cancel_requested', 'attempt', 'max_attempts',
    'deliveries', 'started_ms', 'max_running')
  if h[1] == S.running then
    left_running(KEYS[11], tenant_of(ref))
    if tonumber(h[7] or '0') > 0 then
      refill(KEYS[9], KEYS[10], prefix, streams, tenant_of(ref))
    end
    redis.call('HINCRBY', job, 'fence', 1)
    local attempt, max_attempts = tonumber(h[3]), tonumber(h[4])
    local tag = tool .. '/' .. ref
    local to
    if h[2] == '1' then
      to = S.cancelled
    elseif attempt >= max_attempts or tonumber(h[5]) >= max_deliveries then
      to = S.failed
    else
      to = S.scheduled
    end
    if to == S.cancelled then
      redis.call('HSET', job, 'error', cancel_err)
    else
      redis.call('HSET', job, 'error', lost_err)
    end
    if to == S.scheduled then
      local delay = math.min(cap, base * 2 ^ (attempt - 1))
      delay = math.floor(delay * (0.5 + rnd))
      redis.call('HSET', job, 'retry_at_ms', now + delay)
      redis.call('ZADD', sched, now + delay, ref)
      move(counts, job, S.running, S.scheduled, now)
      emit(ev, job, 'state', state_event(S.scheduled, now, { retry_at_ms = now + delay, reason = 'lease expired' }), maxlen, channel, tag)
    else
      finish({ job = job, ev = ev, ref = ref, from = S.running, to = to, now = now,
        started = tonumber(h[6] or now), counts = counts, dead = dead, result_ttl = result_ttl,
        dead_ttl = dead_ttl, maxlen = maxlen, channel = channel, tag = tag })
    end
    taken[#taken + 1] = { ref, to }
  end
end
-- Dead letters past their retention leave the listing even when no job finishes.
redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - dead_ttl)
return { promoted, taken }
