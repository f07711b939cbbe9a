-- Records a fired slot and moves the schedule to its next slot, unless the schedule changed
-- since the claim (replaced, deleted or already committed by another process); a schedule
-- paused or parked meanwhile stays out of the due set.
-- KEYS[1]  the schedule hash        KEYS[2]  the due zset        KEYS[3]  the runs zset
-- ARGV[1]  due-zset member          ARGV[2]  the claimed slot (ms, as stored in `next_slot`)
-- ARGV[3]  the run's correlation ID, '' when the slot fired no run (skipped, missed)
-- ARGV[4]  the next slot ms, '' when the schedule has ended
-- ARGV[5]  the next due ms (next slot + jitter)
-- ARGV[6]  the fired slot ms
-- ARGV[7]  how many runs the runs zset keeps (the newest)
-- Returns  1 committed, 0 stale claim (nothing written)
if redis.call('HGET', KEYS[1], 'next_slot') ~= ARGV[2] then
  return 0
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[7]) + 1))
  redis.call('HSET', KEYS[1], 'last_run', ARGV[3], 'last_slot', ARGV[6])
end
redis.call('HSET', KEYS[1], 'next_slot', ARGV[4], 'firing', '')
local held = redis.call('HMGET', KEYS[1], 'paused', 'parked')
if ARGV[4] == '' or held[1] == '1' or held[2] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
end
return 1
