-- claim.lua: take up to N ready jobs for one worker, atomically: read them from the priority
-- streams with XREADGROUP, mark them running under a lease with a fresh fencing token, and
-- acknowledge + delete the stream entries. Because delivery and start happen in one script, no
-- entry is ever left pending for a dead consumer.
-- Priority order rotates with the round number so that high goes first most of the time but
-- normal and low get the first pick in some rounds: no priority starves.
-- KEYS[1..3] streams high, normal, low   KEYS[4] leases zset   KEYS[5] counts hash
-- KEYS[6] job key prefix (job key = prefix .. 'job:' .. ref; events = prefix .. 'ev:' .. ref)
-- KEYS[7] wait-samples list  KEYS[8] scheduled zset
-- KEYS[9..12] breaker state hash, history list, probes zset, window zset
-- KEYS[13] the tool's disabled flag (nothing is claimed while it exists)
-- KEYS[14] fair-share hash  KEYS[15] backlog key prefix (see enqueue.lua): each entry read
-- leaves its tenant's share, and the tenant's next backlogged job takes its place
-- KEYS[16] running-per-tenant hash: a job whose tenant already runs its `max_running` jobs of
-- this tool goes back to the front of the tenant's backlog (let in again when one finishes)
-- ARGV[1] group  ARGV[2] consumer (worker id)  ARGV[3] how many  ARGV[4] lease ms
-- ARGV[5] round number  ARGV[6] max events  ARGV[7] notify channel  ARGV[8] tool name
-- ARGV[9] breaker settings JSON  ARGV[10] error JSON for jobs held back by an open breaker
-- The tool's circuit breaker (breaker/lua/lib.lua, prepended) is consulted in the same step:
-- closed → jobs start; half-open → each job must win a probe slot; open → the jobs read are
-- moved to `scheduled` until the breaker may admit again (this never counts as an attempt).
-- Returns {jobs, last_ids, retry_after_ms, transitions}: jobs = array of {ref, fence, field,
-- value, …} (the whole job hash); last_ids = the last id generated on each stream (for a
-- blocking wait when nothing was claimed); retry_after_ms > 0 when the breaker refused;
-- transitions = breaker transitions made here, as JSON.

local group, consumer = ARGV[1], ARGV[2]
local want, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local round = tonumber(ARGV[5]) % 10
local maxlen, channel, tool = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local prefix = KEYS[6]
local streams_by = { high = KEYS[1], normal = KEYS[2], low = KEYS[3] }
local sched = KEYS[8]
local bk = { state = KEYS[9], hist = KEYS[10], probes = KEYS[11], window = KEYS[12] }
local cfg = cjson.decode(ARGV[9])
local held_error = ARGV[10]
local bstate = redis.call('HGET', bk.state, 'state') or 'closed'
local per_job = not (bstate == 'closed' or bstate == 'disabled')
local bgen = tonumber(redis.call('HGET', bk.state, 'generation') or '0')
local retry_after = 0
local transitions = {}

local order
if round < 6 then order = { 1, 2, 3 }
elseif round < 9 then order = { 2, 1, 3 }
else order = { 3, 1, 2 } end

local now = now_ms()
local jobs = {}

local function read(stream, count)
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', group, consumer,
    'COUNT', count, 'STREAMS', stream, '>')
  if not ok then
    -- The group does not exist yet: create it at the beginning of the stream.
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
      'STREAMS', stream, '>')
  end
  if not reply then return {} end
  local out = {}
  for _, entry in ipairs(reply[1][2]) do
    redis.call('XACK', stream, group, entry[1])
    redis.call('XDEL', stream, entry[1])
    local ref = entry[2][2]
    local tenant = tenant_of(ref)
    if redis.call('HINCRBY', KEYS[14], tenant, -1) <= 0 then
      redis.call('HDEL', KEYS[14], tenant)
    end
    out[#out + 1] = ref
  end
  return out
end

-- Holds a queued job back while the breaker refuses: scheduled for when it may admit again.
local function hold(ref, job, delay)
  redis.call('HSET', job, 'retry_at_ms', now + delay, 'error', held_error)
  redis.call('ZADD', sched, now + delay, ref)
  move(KEYS[5], job, S.queued, S.scheduled, now)
  emit(prefix .. 'ev:' .. ref, job, 'state',
    state_event(S.scheduled, now, { retry_at_ms = now + delay, reason = 'circuit_breaker_open' }),
    maxlen, channel, tool .. '/' .. ref)
end

local disabled = redis.call('EXISTS', KEYS[13]) == 1
for _, i in ipairs(order) do
  if disabled or #jobs >= want or retry_after > 0 then break end
  for _, ref in ipairs(read(KEYS[i], want - #jobs)) do
      local job = prefix .. 'job:' .. ref
      local st = redis.call('HMGET', job, 'state', 'ready_ms', 'created_ms', 'deliveries', 'max_running')
      local tenant = tenant_of(ref)
      local cap = tonumber(st[5] or '0') or 0
      local decision, gen, probe = 'allow', bgen, ''
      if st[1] == S.queued and cap > 0
          and tonumber(redis.call('HGET', KEYS[16], tenant) or '0') >= cap then
        decision = 'capped'
        redis.call('LPUSH', KEYS[15] .. tenant, ref)
      else
        -- The entry left the tenant's share: its next backlogged job takes the place.
        refill(KEYS[14], KEYS[15], prefix, streams_by, tenant)
      end
      if decision == 'capped' then
        -- Waits at the front of its tenant's backlog.
      elseif st[1] == S.queued and retry_after > 0 then
        decision = 'reject'
      elseif st[1] == S.queued and per_job then
        probe = ref .. '#' .. (tonumber(st[4] or '0') + 1)
        local wait_ms, tr
        decision, gen, wait_ms, tr = breaker_admit(bk, cfg, now, consumer, probe)
        if tr then transitions[#transitions + 1] = breaker_transition_json(tr) end
        -- Held jobs come back within 5 s at most, so a breaker closed by an operator (or a
        -- probe) lets them run soon; while it stays open they are simply held again.
        if decision == 'reject' then retry_after = math.min(math.max(tonumber(wait_ms), 1), 5000) end
      end
      if st[1] == S.queued and decision == 'reject' then
        hold(ref, job, retry_after)
      elseif st[1] == S.queued and decision ~= 'capped' then
        redis.call('HINCRBY', KEYS[16], tenant, 1)
        redis.call('HSET', job, 'bgen', gen, 'probe', probe)
        redis.call('HINCRBY', job, 'attempt', 1)
        redis.call('HINCRBY', job, 'deliveries', 1)
        local fence = redis.call('HINCRBY', job, 'fence', 1)
        local wait = now - tonumber(st[2] or st[3] or now)
        redis.call('HSET', job, 'started_ms', now, 'worker', consumer, 'queue_wait_ms', wait,
          'cancel_requested', '0')
        redis.call('HDEL', job, 'finished_ms', 'duration_ms', 'retry_at_ms')
        redis.call('ZADD', KEYS[4], now + lease, ref)
        move(KEYS[5], job, S.queued, S.running, now)
        redis.call('LPUSH', KEYS[7], wait)
        redis.call('LTRIM', KEYS[7], 0, 999)
        emit(prefix .. 'ev:' .. ref, job, 'state', state_event(S.running, now, { worker = consumer }),
          maxlen, channel, tool .. '/' .. ref)
        local h = redis.call('HGETALL', job)
        local item = { ref, fence }
        for _, v in ipairs(h) do item[#item + 1] = v end
        jobs[#jobs + 1] = item
      end
      -- Anything else (cancelled while queued, expired) is simply dropped from the stream.
  end
end

-- While the breaker refuses, hold back a bounded batch of what is queued, so those jobs show
-- as scheduled with their retry time instead of looking stuck.
if retry_after > 0 then
  for i = 1, 3 do
    for _, ref in ipairs(read(KEYS[i], 200)) do
      local job = prefix .. 'job:' .. ref
      if redis.call('HGET', job, 'state') == S.queued then hold(ref, job, retry_after) end
    end
  end
end

local last = {}
if #jobs < want then
  for i = 1, 3 do
    local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[i])
    local id = '0-0'
    if ok then
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then id = info[j + 1] end
      end
    end
    last[i] = id
  end
end
return { jobs, last, retry_after, transitions }
