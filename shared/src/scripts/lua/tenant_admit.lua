-- tenant_admit.lua: reserve a place for a new job under its tenant's queued cap, fleet-wide.
-- The tenant's sets hold job keys; an entry is checked against the job's state only when the
-- tenant looks full (at most once a second per tenant, so a client hammering a full tenant
-- costs little), so entries whose job has since started, finished or expired are dropped
-- (or moved to the running set) there and then: the sets heal without every script keeping them.
-- KEYS[1] tenant's queued zset  KEYS[2] tenant's running zset  KEYS[3] tenant's caps hash
-- ARGV[1] the new job's key (member)  ARGV[2] entry lifetime ms (the job's ttl)
-- ARGV[3] max queued  ARGV[4] max running (stored for the workers; 0 = none)
-- Returns {'admitted', queued, added (1 | 0: the job was already counted)} | {'full', queued, 0}

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

local n = redis.call('ZCARD', queued)
local checked = tonumber(redis.call('HGET', caps, 'checked_ms') or '0')
if n >= max_queued and now - checked >= 1000 then
  -- Looks full: check each entry against its job before refusing.
  redis.call('HSET', caps, 'checked_ms', now)
  local entries = redis.call('ZRANGE', queued, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    local key, score = entries[i], entries[i + 1]
    local state = redis.call('HGET', key, 'state')
    if state ~= S.queued and state ~= S.scheduled then
      redis.call('ZREM', queued, key)
      if state == S.running then
        redis.call('ZADD', running, score, key)
      end
    end
  end
  n = redis.call('ZCARD', queued)
end
if n >= max_queued then
  return { 'full', n, 0 }
end

redis.call('ZADD', queued, now + life, member)
redis.call('PEXPIRE', queued, life)
redis.call('PEXPIRE', running, life)
return { 'admitted', n + 1, 1 }
