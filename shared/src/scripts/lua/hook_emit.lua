-- hook_emit.lua: writes one event for one webhook subscription into its tenant's outbox, once:
-- an event id already seen (re-emitted after a worker retry) is not written again, delivered
-- or not. The tenant joins the ring of tenants with deliveries (keeping an earlier turn).
-- KEYS[1]  the delivery hash (`P:{hook}:d:<tenant>/<sub>/<event id>`)
-- KEYS[2]  the tenant's outbox zset (member = delivery, score = next attempt ms)
-- KEYS[3]  the ring zset (member = tenant, score = its turn)
-- ARGV[1]  the outbox member   ARGV[2]  the event type   ARGV[3]  the JSON body
-- ARGV[4]  the tenant
-- Returns  1 written, 0 already known
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'event', ARGV[2], 'body', ARGV[3], 'attempts', 0, 'first_ms', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[3], 'LT', now, ARGV[4])
return 1
