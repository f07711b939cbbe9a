-- tenant_admit.lua: reserve a place for a new job under its tenant's queued cap, fleet-wide.
-- The tenant's sets hold job keys; entries are checked against their jobs' states only when the
-- tenant looks full (at most once a second per tenant, so a client hammering a full tenant
-- costs little). The jobs live in their tools' slots, which a script may not read in a Redis
-- Cluster, so the check takes two calls: this script answers 'check' with the entries, the
-- caller reads their states and calls again with those that moved on, which are dropped (or
-- moved to the running set) before counting. An entry whose job was never made expires.
-- KEYS[1] tenant's queued zset  KEYS[2] tenant's running zset  KEYS[3] tenant's caps hash
-- (all three share the tenant's hash tag)
-- ARGV[1] the new job's key (member)  ARGV[2] entry lifetime ms (the job's ttl)
-- ARGV[3] max queued  ARGV[4] max running (stored for the workers; 0 = none)
-- ARGV[5..] pairs (job key, its state: '' when gone) of entries whose job left the waiting states
-- Returns {'admitted', queued, added (1 | 0: the job was already counted)} | {'full', queued, 0}
--   | {'check', queued, 0, job keys…}

local queued, running, caps = KEYS[1], KEYS[2], KEYS[3]
local member, life = ARGV[1], tonumber(ARGV[2])
local max_queued = tonumber(ARGV[3])
local now = now_ms()

redis.call('HSET', caps, 'max_queued', ARGV[3], 'max_running', ARGV[4])
redis.call('PEXPIRE', caps, life)
redis.call('ZREMRANGEBYSCORE', queued, '-inf', now)
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)

if redis.call('ZSCORE', queued, member) then
  return { 'admitted', redis.call('ZCARD', queued), 0 }
end

for i = 5, #ARGV, 2 do
  local key, state = ARGV[i], ARGV[i + 1]
  local score = redis.call('ZSCORE', queued, key)
  if score then
    redis.call('ZREM', queued, key)
    if state == S.running then
      redis.call('ZADD', running, score, key)
    end
  end
end

local n = redis.call('ZCARD', queued)
local checked = tonumber(redis.call('HGET', caps, 'checked_ms') or '0')
if n >= max_queued and #ARGV < 5 and now - checked >= 1000 then
  -- Looks full: the caller checks each entry against its job before we refuse.
  redis.call('HSET', caps, 'checked_ms', now)
  local out = { 'check', n, 0 }
  for _, key in ipairs(redis.call('ZRANGE', queued, 0, -1)) do out[#out + 1] = key end
  return out
end
if n >= max_queued then
  return { 'full', n, 0 }
end

redis.call('ZADD', queued, now + life, member)
redis.call('PEXPIRE', queued, life)
redis.call('PEXPIRE', running, life)
return { 'admitted', n + 1, 1 }
