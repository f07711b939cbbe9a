-- common.lua: helpers prepended to every job script (after the generated prelude that defines
-- the table S of job-state strings from Rust's JobState, so no state is retyped here).
-- Defines only locals; reads no KEYS/ARGV.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends an event to the job's event stream with the id 0-<n> (n = its position) and tells
-- listeners through the notify channel.
local function emit(evkey, jobkey, kind, data, maxlen, channel, tag)
  local seq = redis.call('HINCRBY', jobkey, 'evseq', 1)
  redis.call('XADD', evkey, 'MAXLEN', '~', maxlen, '0-' .. seq, 'type', kind, 'data', data)
  if channel ~= '' then
    redis.call('PUBLISH', channel, tag)
  end
  return seq
end

-- Moves a job between states, keeping the per-tool counts hash exact.
local function move(countskey, jobkey, from, to, now)
  if from and from ~= '' then
    redis.call('HINCRBY', countskey, from, -1)
  end
  redis.call('HINCRBY', countskey, to, 1)
  redis.call('HSET', jobkey, 'state', to, 'updated_ms', now)
end

local function state_event(to, now, extra)
  local e = { state = to, at_ms = now }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return cjson.encode(e)
end

-- The tenant of a job ref `<tenant>/<cid>`.
local function tenant_of(ref)
  return string.match(ref, '^([^/]*)/') or ''
end

-- Puts a job on a ready stream and counts it in its tenant's share of the stream (see the
-- fair-share window in enqueue.lua and claim.lua).
local function ready(stream, fairkey, ref)
  redis.call('XADD', stream, '*', 'ref', ref)
  redis.call('HINCRBY', fairkey, tenant_of(ref), 1)
end

-- Ends a job for good: finish time (and run time when it ran), the state move, a dead letter
-- for a failure, the final `state` and `done` events, and the retention TTLs.
-- f = { job, ev, ref, from, to, now, started (nil if it never ran), counts, dead, result_ttl,
--       dead_ttl, maxlen, channel, tag }
local function finish(f)
  if f.started then
    redis.call('HSET', f.job, 'finished_ms', f.now, 'duration_ms', f.now - f.started)
  else
    redis.call('HSET', f.job, 'finished_ms', f.now)
  end
  move(f.counts, f.job, f.from, f.to, f.now)
  local ttl = f.result_ttl
  if f.to == S.failed then
    redis.call('ZADD', f.dead, f.now, f.ref)
    ttl = f.dead_ttl
  end
  emit(f.ev, f.job, 'state', state_event(f.to, f.now), f.maxlen, '', '')
  emit(f.ev, f.job, 'done', state_event(f.to, f.now), f.maxlen, f.channel, f.tag)
  redis.call('PEXPIRE', f.job, ttl)
  redis.call('PEXPIRE', f.ev, ttl)
end

-- Moves the tenant's next backlogged job (skipping jobs cancelled meanwhile) onto its ready
-- stream. `streams` maps priority → stream key.
local function refill(fairkey, backlog_prefix, job_prefix, streams, tenant)
  local backlog = backlog_prefix .. tenant
  while true do
    local ref = redis.call('LPOP', backlog)
    if not ref then return end
    local h = redis.call('HMGET', job_prefix .. 'job:' .. ref, 'state', 'priority')
    if h[1] == S.queued then
      ready(streams[h[2]] or streams.normal, fairkey, ref)
      return
    end
  end
end

-- A job of `tenant` stops running on this tool (its per-tenant running count goes down).
local function left_running(running_by, tenant)
  if redis.call('HINCRBY', running_by, tenant, -1) <= 0 then
    redis.call('HDEL', running_by, tenant)
  end
end

local function is_terminal(state)
  return state == S.succeeded or state == S.failed or state == S.cancelled
end
