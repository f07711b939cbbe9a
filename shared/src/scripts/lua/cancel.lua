-- cancel.lua: cancel one job. A queued or scheduled job ends at once and never runs (its stream
-- entry is skipped by claim.lua); a running job is flagged and its worker told through the
-- cancel channel (and, should it miss that, at its next lease renewal).
-- KEYS[1] the tool's key prefix  KEYS[2] scheduled zset  KEYS[3] counts hash
-- KEYS[4] group waiting-list prefix (`gwait:`)  KEYS[5..7] streams high, normal, low
-- KEYS[8..10] raw-lane streams: a job parked for its target group leaves its group's list; one
-- already let back in for its group passes the group's turn to the next parked job
-- ARGV[1] ref  ARGV[2] result ttl ms  ARGV[3] max events  ARGV[4] notify channel
-- ARGV[5] cancel channel  ARGV[6] tool name  ARGV[7] cancelled error json
-- Returns {'cancelled'} | {'requested'} | {'final', state} | {'missing'}

Q.maxev, Q.channel = tonumber(ARGV[3]), ARGV[4]
local j = job_at(KEYS[1], ARGV[1], ARGV[6])
if not load(j, { 'tgroup', 'waiting', 'priority', 'needs_raw', 'started_ms' }) then
  return { 'missing' }
end
local state = j.h.state
if is_terminal(state) then
  return { 'final', state }
end
local now = now_ms()
if state == S.running then
  redis.call('HSET', j.key, 'cancel_requested', '1')
  redis.call('PUBLISH', ARGV[5], tag_of(j))
  return { 'requested' }
end
if state == S.scheduled then
  redis.call('ZREM', KEYS[2], j.ref)
end
if j.h.waiting == WAITING_GROUP and j.h.tgroup then
  local item = backlog_item(lane_of(j.h.priority, j.h.needs_raw), j.ref)
  local gone = redis.call('LREM', KEYS[4] .. j.h.tgroup, 0, item)
  if gone > 0 then
    redis.call('HINCRBY', KEYS[3], GROUP_WAITING, -gone)
  else
    local streams = lanes({ KEYS[5], KEYS[6], KEYS[7] }, { KEYS[8], KEYS[9], KEYS[10] })
    group_release(KEYS[3], KEYS[4], streams, KEYS[1], j.h.tgroup)
  end
  redis.call('HDEL', j.key, 'waiting')
end
finish({ j = j, from = state, to = S.cancelled, now = now, result_ttl = tonumber(ARGV[2]),
  set = { 'error', ARGV[7] } })
flush_counts(KEYS[3])
return { 'cancelled' }
