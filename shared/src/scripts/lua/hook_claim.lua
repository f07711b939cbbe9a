-- hook_claim.lua: claims one due delivery of one tenant for a lease, within the tenant's and the
-- fleet's in-flight bounds. The caller offers tenants in ring order (lowest turn first); a
-- served tenant's turn becomes now, in microseconds (so claims in the same millisecond do not
-- tie), and the others that waited go first: round-robin. A tenant with nothing due gets its
-- earliest due time as its turn, one at its bound the expiry of its earliest lease
-- (`hook_finish.lua` brings it forward when a slot frees), one with nothing left leaves the ring.
-- KEYS[1]  the ring zset (member = tenant, score = turn ms)
-- KEYS[2]  the tenant's outbox zset
-- KEYS[3]  the tenant's in-flight zset (member = delivery, score = lease expiry ms)
-- KEYS[4]  the fleet's in-flight zset
-- ARGV[1]  the tenant   ARGV[2]  lease ms   ARGV[3]  tenant bound   ARGV[4]  fleet bound
-- Returns  {now, 'claimed', member} | {now, 'fleet'} | {now, 'tenant'} | {now, 'idle'}
local now = now_ms()
local until_ms = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then
  return {now, 'fleet'}
end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[1], 'XX', first[2], ARGV[1])
  return {now, 'tenant'}
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)
if #due == 0 then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', KEYS[1], ARGV[1])
  else
    redis.call('ZADD', KEYS[1], 'XX', first[2], ARGV[1])
  end
  return {now, 'idle'}
end
local m = due[1]
redis.call('ZADD', KEYS[2], until_ms, m)
redis.call('ZADD', KEYS[3], until_ms, m)
redis.call('ZADD', KEYS[4], until_ms, m)
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000, ARGV[1])
return {now, 'claimed', m}
