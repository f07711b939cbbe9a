-- reap.lua: the queue's clock work for one tool, run by every worker every few hundred ms
-- (idempotent, so any number of workers may run it):
--  1. jobs whose scheduled time has come are queued again;
--  2. running jobs whose lease lapsed (their worker died or froze) are taken over: cancelled if a
--     cancel was requested, dead as worker_lost when out of attempts or deliveries, otherwise
--     scheduled for a retry with exponential back-off and jitter. The fence is bumped so the
--     old worker can no longer write a result.
-- KEYS[1] scheduled zset  KEYS[2] leases zset  KEYS[3] counts hash  KEYS[4] dead zset
-- KEYS[5] the tool's key prefix  KEYS[6..8] streams high, normal, low  KEYS[9] counts hash again (fair shares)
-- KEYS[10] backlog key prefix  KEYS[11] running-per-tenant hash
-- KEYS[12..14] raw-lane streams high, normal, low (a due job that needs raw sockets goes there)
-- KEYS[15] running-per-group hash  KEYS[16] group waiting-list prefix: a lapsed job with
-- `tgroup` leaves its group's count and lets the group's next parked job in (politeness)
-- ARGV[1] batch limit  ARGV[2] max deliveries  ARGV[3] retry base ms  ARGV[4] retry max ms
-- ARGV[5] result ttl ms  ARGV[6] dead ttl ms  ARGV[7] max events  ARGV[8] notify channel
-- ARGV[9] tool name  ARGV[10] random number in [0,1) for jitter  ARGV[11] worker-lost error json
-- ARGV[12] cancelled error json
-- Returns {promoted, {ref, new state, parent (a chunk's, else '')}…}

local sched, leases, counts, dead, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local streams = lanes({ KEYS[6], KEYS[7], KEYS[8] }, { KEYS[12], KEYS[13], KEYS[14] })
local limit, max_deliveries = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local result_ttl, dead_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
Q.maxev, Q.channel = tonumber(ARGV[7]), ARGV[8]
local tool, rnd = ARGV[9], tonumber(ARGV[10])
local lost_err, cancel_err = ARGV[11], ARGV[12]
local now = now_ms()

local promoted = 0
local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
if #due > 0 then redis.call('ZREM', sched, unpack(due)) end
for _, ref in ipairs(due) do
  local j = job_at(prefix, ref, tool)
  if load(j, { 'priority', 'needs_raw' }) and j.h.state == S.scheduled then
    ready(streams, lane_of(j.h.priority, j.h.needs_raw), KEYS[9], ref)
    count(S.scheduled, S.queued, j)
    emit_state(j, 'state', S.queued, now)
    save(j, now, { 'state', S.queued, 'ready_ms', now })
    promoted = promoted + 1
  end
end

local taken = {}
local lapsed = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
if #lapsed > 0 then redis.call('ZREM', leases, unpack(lapsed)) end
for _, ref in ipairs(lapsed) do
  local j = job_at(prefix, ref, tool)
  load(j, { 'cancel_requested', 'attempt', 'max_attempts', 'deliveries', 'started_ms',
    'max_running', 'fence', 'tgroup' })
  local h = j.h
  if h.state == S.running then
    if tonumber(h.max_running or '0') > 0 then
      left_running(KEYS[11], tenant_of(ref))
      refill_lanes(KEYS[9], KEYS[10], streams, tenant_of(ref), 1)
    end
    if h.tgroup then
      group_stopped(KEYS[15], KEYS[9], KEYS[16], streams, prefix, h.tgroup)
    end
    -- The fence moves on, so the old worker can no longer write a result.
    local set = { 'fence', tonumber(h.fence or '0') + 1 }
    local attempt, max_attempts = tonumber(h.attempt), tonumber(h.max_attempts or D.max_attempts)
    local to
    if h.cancel_requested == '1' then
      to = S.cancelled
    elseif attempt >= max_attempts or deliveries_of(h) >= max_deliveries then
      to = S.failed
    else
      to = S.scheduled
    end
    set[#set + 1] = 'error'
    if to == S.cancelled then set[#set + 1] = cancel_err else set[#set + 1] = lost_err end
    if to == S.scheduled then
      local delay = math.min(cap, base * 2 ^ (attempt - 1))
      delay = math.floor(delay * (0.5 + rnd))
      redis.call('ZADD', sched, now + delay, ref)
      count(S.running, S.scheduled, j)
      emit_state(j, 'state', S.scheduled, now, { retry_at_ms = now + delay, reason = 'lease expired' })
      set[#set + 1] = 'state'; set[#set + 1] = S.scheduled
      set[#set + 1] = 'retry_at_ms'; set[#set + 1] = now + delay
      save(j, now, set)
    else
      finish({ j = j, from = S.running, to = to, now = now,
        started = tonumber(h.started_ms or now), dead = dead, result_ttl = result_ttl,
        dead_ttl = dead_ttl, set = set })
    end
    taken[#taken + 1] = { ref, to, h.parent or '' }
  end
end
flush_counts(counts)
-- Dead letters past their retention leave the listing even when no job finishes.
redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - dead_ttl)
return { promoted, taken }
