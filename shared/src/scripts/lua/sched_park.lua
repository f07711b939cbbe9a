-- sched_park.lua: parks a schedule that exists: `parked`, `parked_reason`, out of the due set.
-- KEYS[1] the schedule hash  KEYS[2] the due zset
-- ARGV[1] due-zset member  ARGV[2] reason
-- Returns 1 parked, 0 no such schedule
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'parked', '1', 'parked_reason', ARGV[2], 'firing', '')
return 1
