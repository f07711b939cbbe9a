-- sched_reserve.lua: creates a schedule's place in its tenant's list only while the tenant has
-- fewer than ARGV[2] schedules (a replace always passes).
-- KEYS[1] the tenant's schedule list (zset)
-- ARGV[1] id  ARGV[2] cap  ARGV[3] now ms
-- Returns 1 created, 2 replaced, 0 at the cap
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 2 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
