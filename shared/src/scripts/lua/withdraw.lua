-- withdraw.lua: take back a job that was just created but not acknowledged by enough replicas
-- (SCANQ_REDIS_MIN_REPLICAS_ACK), so that a 503 leaves nothing behind. Only a job still waiting
-- with the same request is removed; one a worker already took is left to run (the API then
-- answers 202: it is in flight). Its stream, backlog or schedule entry, if any, is skipped
-- wherever it is read next (claim.lua and reap.lua drop entries whose job is gone).
-- KEYS[1] job hash  KEYS[2] scheduled zset  KEYS[3] counts hash
-- ARGV[1] ref  ARGV[2] request hash
-- Returns 'withdrawn' | 'kept'

local h = redis.call('HMGET', KEYS[1], 'state', 'req_hash')
if h[2] ~= ARGV[2] or (h[1] ~= S.queued and h[1] ~= S.scheduled and h[1] ~= S.awaiting_approval) then
  return 'kept'
end
if h[1] == S.scheduled then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('HINCRBY', KEYS[3], h[1], -1)
redis.call('DEL', KEYS[1])
return 'withdrawn'
