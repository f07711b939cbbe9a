-- event.lua: a running attempt reports progress or output, fenced by its token.
-- KEYS[1] job hash  KEYS[2] events stream
-- ARGV[1] fence  ARGV[2] event type ('progress' | 'output')  ARGV[3] data json
-- ARGV[4] max events  ARGV[5] notify channel  ARGV[6] tag
-- ARGV[7] value for the job's `progress` field ('' = leave it)
-- Returns the event position, or 0 when the attempt is no longer current.

local h = redis.call('HMGET', KEYS[1], 'fence', 'state')
if h[1] ~= ARGV[1] or h[2] ~= S.running then
  return 0
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[7])
end
return emit(KEYS[2], KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6])
