-- parent.lua: the parent job of a big scan (DESIGN §12), a job whose state, progress and result
-- come from its chunks (queue/parent.rs): it holds no stream entry, no lease and no place in the
-- per-state counts; the chunks do. One script, four operations on the parent's hash:
-- KEYS[1] the parent's job hash  KEYS[2] open parents zset (its partition)  KEYS[3] dead zset
-- ARGV[1] op  ARGV[2] ref  ARGV[3] max events  ARGV[4] notify channel  ARGV[5] tool
--
-- 'open'    ARGV[6] request hash  ARGV[7] job ttl ms  ARGV[8..] field/value pairs
--           → {'created', state, created_ms} | {'exists', state} | {'conflict', state}
-- 'settle'  ARGV[6] tally JSON (summed over partitions)  ARGV[7] the state it means
--           ARGV[8] progress JSON  ARGV[9] result JSON and ARGV[10] error JSON (for a terminal
--           state; '' otherwise)  ARGV[11] result ttl ms  ARGV[12] dead ttl ms
--           ARGV[13] next check (ms from now) while open
--           → {old state, new state} | {'missing'}
--           A terminal parent stays as it is (a retry reopens it first), so two settlers that
--           race write one outcome.
-- 'cancel'  → {'requested'} | {'final', state} | {'missing'}   (the caller then cancels chunks)
-- 'reopen'  ARGV[6] job ttl ms  ARGV[7] next check ms → {'reopened', old state} |
--           {'not_retryable', state} | {'missing'}; a parent that needs a person's approval and
--           was not approved goes back to `awaiting_approval` instead → {'awaiting', old state}
-- 'decide'  a person's decision on a parent awaiting approval (DESIGN §14; queue/approval.rs):
--           ARGV[6] 'approved' | 'rejected'  ARGV[7] next check ms  ARGV[8] result ttl ms
--           ARGV[9] the rejected parent's error json  ARGV[10] job ttl ms (an approved parent
--           lives that long from now)  ARGV[11..] the decision's field/value pairs
--           → {'queued'} (the caller then queues its chunks) | {'rejected'} |
--           {'not_awaiting', state} | {'missing'}
-- A parent opened with `approval` = 'needed' among its fields is `awaiting_approval`: not in the
-- open parents zset, so the reconciler queues none of its chunks until it is approved.

local op, ref, tool = ARGV[1], ARGV[2], ARGV[5]
Q.maxev, Q.channel = tonumber(ARGV[3]), ARGV[4]
local j = { key = KEYS[1], ref = ref, tool = tool,
  prefix = string.sub(KEYS[1], 1, #KEYS[1] - #K.job - #ref) }
local now = now_ms()

if op == 'open' then
  local existing = redis.call('HMGET', j.key, 'req_hash', 'state')
  if existing[2] then
    if existing[1] == ARGV[6] then return { 'exists', existing[2] } end
    return { 'conflict', existing[2] }
  end
  local state = S.queued
  for i = 8, #ARGV - 1, 2 do
    if ARGV[i] == 'approval' and ARGV[i + 1] == 'needed' then state = S.awaiting_approval end
  end
  local fields = { 'state', state, 'req_hash', ARGV[6], 'created_ms', now }
  for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', j.key, unpack(fields))
  redis.call('PEXPIRE', j.key, tonumber(ARGV[7]))
  if state == S.queued then redis.call('ZADD', KEYS[2], now + 60000, ref) end
  return { 'created', state, now }
end

if not load(j, { 'chunks', 'tally', 'started_ms', 'created_ms', 'approval', 'approval_decision' })
  or not j.h.chunks then
  return { 'missing' }
end
local old = j.h.state

if op == 'cancel' then
  if is_terminal(old) then return { 'final', old } end
  redis.call('HSET', j.key, 'cancel_requested', '1')
  return { 'requested' }
end

if op == 'decide' then
  if old ~= S.awaiting_approval then return { 'not_awaiting', old } end
  local set = { 'approval_ms', now }
  for i = 11, #ARGV do set[#set + 1] = ARGV[i] end
  if ARGV[6] == 'rejected' then
    set[#set + 1] = 'error'; set[#set + 1] = ARGV[9]
    finish({ j = j, from = old, to = S.cancelled, now = now, result_ttl = tonumber(ARGV[8]),
      set = set })
    return { 'rejected' }
  end
  emit_state(j, 'state', S.queued, now, { reason = 'approved' })
  set[#set + 1] = 'state'; set[#set + 1] = S.queued
  save(j, now, set)
  redis.call('PEXPIRE', j.key, tonumber(ARGV[10]))
  if j.h.evs == '1' then redis.call('PEXPIRE', ev_key(j), tonumber(ARGV[10])) end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ref)
  return { 'queued' }
end

if op == 'reopen' then
  if old ~= S.failed and old ~= S.cancelled then return { 'not_retryable', old } end
  if j.h.approval == 'needed' and j.h.approval_decision ~= 'approved' then
    redis.call('HDEL', j.key, 'result', 'error', 'finished_ms', 'duration_ms', 'cancel_requested',
      'approval_decision', 'approval_by', 'approval_reason', 'approval_ms')
    redis.call('ZREM', KEYS[3], ref)
    emit_state(j, 'state', S.awaiting_approval, now, { reason = 'retry' })
    save(j, now, { 'state', S.awaiting_approval })
    redis.call('PEXPIRE', j.key, tonumber(ARGV[6]))
    if j.h.evs == '1' then redis.call('PEXPIRE', ev_key(j), tonumber(ARGV[6])) end
    return { 'awaiting', old }
  end
  redis.call('HDEL', j.key, 'result', 'error', 'finished_ms', 'duration_ms', 'cancel_requested')
  redis.call('ZREM', KEYS[3], ref)
  emit_state(j, 'state', S.running, now, { reason = 'retry' })
  save(j, now, { 'state', S.running })
  redis.call('PEXPIRE', j.key, tonumber(ARGV[6]))
  if j.h.evs == '1' then redis.call('PEXPIRE', ev_key(j), tonumber(ARGV[6])) end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ref)
  return { 'reopened', old }
end

-- settle
local tally, new, progress = ARGV[6], ARGV[7], ARGV[8]
if is_terminal(old) then return { old, old } end
if new == old and tally == j.h.tally then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[13]), ref)
  return { old, old }
end
local set = { 'tally', tally, 'progress', progress }
if new ~= S.queued and new ~= S.scheduled and not j.h.started_ms then
  set[#set + 1] = 'started_ms'; set[#set + 1] = now
  j.h.started_ms = tostring(now)
end
if is_terminal(new) then
  if ARGV[9] ~= '' then set[#set + 1] = 'result'; set[#set + 1] = ARGV[9] end
  if ARGV[10] ~= '' then set[#set + 1] = 'error'; set[#set + 1] = ARGV[10] end
  emit(j, 'progress', progress, now)
  finish({ j = j, from = old, to = new, now = now, started = tonumber(j.h.started_ms or now),
    dead = KEYS[3], result_ttl = tonumber(ARGV[11]), dead_ttl = tonumber(ARGV[12]), set = set })
  redis.call('ZREM', KEYS[2], ref)
  return { old, new }
end
emit(j, 'progress', progress, now)
if new ~= old then
  emit_state(j, 'state', new, now)
  set[#set + 1] = 'state'; set[#set + 1] = new
end
save(j, now, set)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[13]), ref)
return { old, new }
