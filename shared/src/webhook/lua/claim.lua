-- Claims one due delivery: moves it a lease ahead so no other process attempts it meanwhile
-- (a process that dies mid-attempt only delays it by the lease).
-- KEYS[1]  the outbox zset
-- ARGV[1]  the delivery hash prefix (`P:{hook}:d:`; + member = the hash, same hash tag)
-- ARGV[2]  lease ms
-- Returns  {now_ms} when nothing is due, else {now_ms, member, event, body, attempts, first_ms}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then
    return {now}
  end
  local m = due[1]
  local h = redis.call('HMGET', ARGV[1] .. m, 'event', 'body', 'attempts', 'first_ms')
  if not h[1] then
    redis.call('ZREM', KEYS[1], m)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
    return {now, m, h[1], h[2], h[3] or '0', h[4] or tostring(now)}
  end
end
