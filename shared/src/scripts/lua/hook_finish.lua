-- hook_finish.lua: records one attempt of a claimed webhook delivery and frees its in-flight
-- slot; the tenant's turn comes forward (a slot is free) or it leaves the ring (nothing left).
-- An attempt whose lease was taken over (the outbox score is no longer its lease) only logs:
-- the delivery is another attempt's now.
-- KEYS[1]  the delivery hash   KEYS[2]  the tenant's outbox zset
-- KEYS[3]  the tenant's in-flight zset   KEYS[4]  the fleet's in-flight zset
-- KEYS[5]  the ring zset   KEYS[6]  the subscription's delivery log (list)
-- ARGV[1]  the outbox member   ARGV[2]  the tenant
-- ARGV[3]  the log entry (JSON; '' = none: the delivery hash is gone)
-- ARGV[4]  next attempt ms ('' = it ended)   ARGV[5]  the outcome (stored as `done` once ended)
-- ARGV[6]  log length kept   ARGV[7]  ms an ended delivery's hash is kept
-- ARGV[8]  the claim's lease expiry ms ('' = no check)
-- Returns  1 recorded, 0 only logged (the lease was taken over)
local m = ARGV[1]
if ARGV[8] ~= '' and tonumber(redis.call('ZSCORE', KEYS[2], m) or '-1') ~= tonumber(ARGV[8]) then
  if ARGV[3] ~= '' then
    redis.call('LPUSH', KEYS[6], ARGV[3])
    redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[6]) - 1)
  end
  return 0
end
redis.call('ZREM', KEYS[3], m)
redis.call('ZREM', KEYS[4], m)
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('LPUSH', KEYS[6], ARGV[3])
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[6]) - 1)
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), m)
else
  redis.call('ZREM', KEYS[2], m)
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'done', ARGV[5])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
  end
end
if redis.call('ZCARD', KEYS[2]) > 0 then
  redis.call('ZADD', KEYS[5], 'LT', now_ms(), ARGV[2])
else
  redis.call('ZREM', KEYS[5], ARGV[2])
end
return 1
