-- hook_put.lua: creates a webhook subscription within the tenant's cap, or replaces the
-- settings of an existing one (its id, secret and creation time stay).
-- KEYS[1]  the subscription hash   KEYS[2]  the tenant's subscriptions zset
-- ARGV[1]  'create' | 'replace'   ARGV[2]  the id   ARGV[3]  created ms
-- ARGV[4]  the tenant's cap   ARGV[5..]  field, value pairs
-- Returns  {1, count} done | {0, count} the cap is reached | {-1, count} no such subscription
local n = redis.call('ZCARD', KEYS[2])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
if ARGV[1] == 'replace' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {-1, n}
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  return {1, n}
end
if n >= tonumber(ARGV[4]) then
  return {0, n}
end
redis.call('HSET', KEYS[1], 'created_ms', ARGV[3], unpack(fields))
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
return {1, n + 1}
