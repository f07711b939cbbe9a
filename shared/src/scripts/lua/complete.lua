-- complete.lua: record the outcome of a batch of attempts of one tool, each fenced by its token:
-- write result/error, move the state, release the lease, append the state and done events,
-- schedule a retry or file a dead letter, and set the retention TTLs.
-- KEYS[1] leases zset  KEYS[2] counts hash  KEYS[3] scheduled zset  KEYS[4] dead zset
-- KEYS[5] job key prefix  KEYS[6..8] streams high, normal, low  KEYS[9] run-samples list
-- KEYS[10..13] breaker state hash, history list, probes zset, window zset  KEYS[14] fair-share hash
-- KEYS[15] backlog key prefix  KEYS[16] running-per-tenant hash (a capped tenant's next waiting
-- job is let in when one of its jobs stops running)
-- ARGV[1] result ttl ms  ARGV[2] dead ttl ms  ARGV[3] max events  ARGV[4] notify channel
-- ARGV[5] tool name  ARGV[6] breaker settings JSON  ARGV[7] worker id, then groups of 8:
-- ref, fence, outcome, result json, error json, delay ms, breaker outcome
-- ('success' | 'failure' | 'ignored'), breaker reason
-- Each fenced outcome is also reported to the tool's breaker (lib.lua, prepended) under the
-- generation the job was admitted in, so a result from before a trip cannot move it.
-- outcome: 'succeeded' | 'failed' | 'cancelled' | 'retry' (scheduled after delay if attempts
-- remain, else failed) | 'handback' (worker shutting down: queued again at once, the attempt
-- does not count)
-- Returns {statuses, breaker results, transitions}: one status per job (the new state, or
-- 'stale' when the fence no longer matches), the breaker's label per job as recorded ('' for
-- stale), and the breaker transitions made here as JSON.

local leases, counts, sched, dead, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local result_ttl, dead_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxlen, channel, tool = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local streams = { high = KEYS[6], normal = KEYS[7], low = KEYS[8] }
local bk = { state = KEYS[10], hist = KEYS[11], probes = KEYS[12], window = KEYS[13] }
local cfg = cjson.decode(ARGV[6])
local worker = ARGV[7]
local now = now_ms()
local out, recorded, transitions = {}, {}, {}

for i = 8, #ARGV, 8 do
  local ref, fence, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local result, err, delay = ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  local b_outcome, b_reason = ARGV[i + 6], ARGV[i + 7]
  local job = prefix .. 'job:' .. ref
  local ev = prefix .. 'ev:' .. ref
  local h = redis.call('HMGET', job, 'fence', 'state', 'cancel_requested', 'attempt',
    'max_attempts', 'started_ms', 'priority', 'bgen', 'probe', 'max_running')
  if h[1] ~= fence or h[2] ~= S.running then
    out[#out + 1] = 'stale'
    recorded[#recorded + 1] = ''
  else
    local tr, label = breaker_record(bk, cfg, now, tonumber(h[8] or '0'), b_outcome, worker,
      h[9] or '', b_reason)
    recorded[#recorded + 1] = label
    local tenant = tenant_of(ref)
    left_running(KEYS[16], tenant)
    if tonumber(h[10] or '0') > 0 then
      refill(KEYS[14], KEYS[15], prefix, streams, tenant)
    end
    if tr then transitions[#transitions + 1] = breaker_transition_json(tr) end
    if h[3] == '1' and outcome ~= S.succeeded then
      outcome = S.cancelled
    end
    local attempt, max_attempts = tonumber(h[4]), tonumber(h[5])
    if outcome == 'retry' and attempt >= max_attempts then
      outcome = S.failed
    end
    redis.call('ZREM', leases, ref)
    if result ~= '' then redis.call('HSET', job, 'result', result) end
    if err ~= '' then redis.call('HSET', job, 'error', err) end
    local tag = tool .. '/' .. ref
    if outcome == 'retry' then
      redis.call('HSET', job, 'retry_at_ms', now + delay)
      redis.call('ZADD', sched, now + delay, ref)
      move(counts, job, S.running, S.scheduled, now)
      emit(ev, job, 'state', state_event(S.scheduled, now, { retry_at_ms = now + delay }), maxlen, channel, tag)
      out[#out + 1] = S.scheduled
    elseif outcome == 'handback' then
      redis.call('HINCRBY', job, 'attempt', -1)
      redis.call('HSET', job, 'ready_ms', now)
      ready(streams[h[7]] or streams.normal, KEYS[14], ref)
      move(counts, job, S.running, S.queued, now)
      emit(ev, job, 'state', state_event(S.queued, now, { reason = 'handed back' }), maxlen, channel, tag)
      out[#out + 1] = S.queued
    else
      local started = tonumber(h[6] or now)
      redis.call('LPUSH', KEYS[9], now - started)
      redis.call('LTRIM', KEYS[9], 0, 999)
      finish({ job = job, ev = ev, ref = ref, from = S.running, to = outcome, now = now,
        started = started, counts = counts, dead = dead, result_ttl = result_ttl,
        dead_ttl = dead_ttl, maxlen = maxlen, channel = channel, tag = tag })
      out[#out + 1] = outcome
    end
  end
end
redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - dead_ttl)
return { out, recorded, transitions }
