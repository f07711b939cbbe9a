-- sched_claim.lua: claims one schedule for firing if it is due: moves its due time a lease
-- ahead, so no other process takes it while this one fires; if this process dies, the schedule
-- is due again after the lease with the same slot (its `next_slot` is unchanged until
-- sched_commit.lua). The caller names the earliest member of the due zset (its hash is KEYS[2],
-- so every key is declared); the script checks, on Redis's clock, that it is due.
-- KEYS[1]  the due zset (member `<tenant>/<id>`, score = due ms)
-- KEYS[2]  the member's schedule hash
-- ARGV[1]  the member   ARGV[2]  lease ms
-- Returns  {now_ms, 'idle'} when the member is not due (nothing is: it was the earliest),
--          {now_ms, 'gone'} when it was deleted, ended or paused meanwhile (dropped from the
--          due set; look again), else
--          {now_ms, member, def, next_slot, anchor_ms, last_run, firing, retry}
--          `firing` is the slot being fired: set here to `next_slot` on the first claim of a
--          slot (the firing process may move it to a later, catch-up slot before it enqueues);
--          `retry` = '1' when an earlier claimant died before committing: fire `firing` as is.
local now = now_ms()
local m = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], m)
if not score or tonumber(score) > now then
  return { now, 'idle' }
end
local h = redis.call('HMGET', KEYS[2], 'def', 'next_slot', 'anchor_ms', 'last_run', 'paused',
  'firing', 'parked')
if not h[1] or not h[2] or h[2] == '' or h[5] == '1' or h[7] == '1' then
  redis.call('ZREM', KEYS[1], m)
  return { now, 'gone' }
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
local firing, retry = h[6], '1'
if not firing or firing == '' then
  firing, retry = h[2], '0'
  redis.call('HSET', KEYS[2], 'firing', firing)
end
return { now, m, h[1], h[2], h[3] or '0', h[4] or '', firing, retry }
