-- ratelimit.lua: one request against a token bucket shared by every API instance. The bucket
-- holds up to `burst` tokens and refills at `rate` per second; a request takes `cost` tokens or,
-- when there are not enough, is refused with the time until there will be.
-- KEYS[1] bucket hash (fields: tokens, ts)
-- ARGV[1] rate per second (> 0)  ARGV[2] burst  ARGV[3] cost  ARGV[4] now ms ('' = Redis TIME)
-- Returns {allowed (1 | 0), tokens left (floor), retry after ms (0 when allowed)}

local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4]) or now_ms()
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(h[1]) or burst
local ts = tonumber(h[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', ts)
-- A bucket left alone refills completely; it may as well go.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, math.floor(tokens), retry }
