-- Writes one event for one subscription into the outbox, once: an event id already seen
-- (re-emitted after a worker retry) is not written again, delivered or not.
-- KEYS[1]  the delivery hash (`P:{hook}:d:<tenant>/<sub>/<event id>`)
-- KEYS[2]  the outbox zset (member = delivery, score = next attempt ms)
-- ARGV[1]  the outbox member   ARGV[2]  the event type   ARGV[3]  the JSON body
-- Returns  1 written, 0 already known
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'event', ARGV[2], 'body', ARGV[3], 'attempts', 0, 'first_ms', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
