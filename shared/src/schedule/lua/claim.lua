-- Claims one due schedule for firing: moves its due time a lease ahead, so no other process
-- takes it while this one fires; if this process dies, the schedule is due again after the
-- lease with the same slot (its `next_slot` is unchanged until `commit.lua`).
-- KEYS[1]  the due zset (member `<tenant>/<id>`, score = due ms)
-- ARGV[1]  the schedule hash prefix (`P:{sched}:def:`; + member = the hash, same hash tag)
-- ARGV[2]  lease ms
-- Returns  {now_ms} when nothing is due, else
--          {now_ms, member, def, next_slot, anchor_ms, last_run, firing, retry}
--          `firing` is the slot being fired: set here to `next_slot` on the first claim of a
--          slot (the firing process may move it to a later, catch-up slot before it enqueues);
--          `retry` = '1' when an earlier claimant died before committing: fire `firing` as is.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then
    return {now}
  end
  local m = due[1]
  local key = ARGV[1] .. m
  local h = redis.call('HMGET', key, 'def', 'next_slot', 'anchor_ms', 'last_run', 'paused', 'firing', 'parked')
  if not h[1] or not h[2] or h[2] == '' or h[5] == '1' or h[7] == '1' then
    -- Deleted, ended, paused or parked meanwhile: not due any more.
    redis.call('ZREM', KEYS[1], m)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
    local firing, retry = h[6], '1'
    if not firing or firing == '' then
      firing, retry = h[2], '0'
      redis.call('HSET', key, 'firing', firing)
    end
    return {now, m, h[1], h[2], h[3] or '0', h[4] or '', firing, retry}
  end
end
