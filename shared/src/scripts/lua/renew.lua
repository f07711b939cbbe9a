-- renew.lua: extend the leases of all of one worker's running jobs of one tool in one round
-- trip, and tell the worker which jobs it must stop (cancel requested, or lost to a takeover).
-- KEYS[1] leases zset   KEYS[2] the tool's key prefix
-- ARGV[1] lease ms, then pairs: ARGV[2k] ref, ARGV[2k+1] fence
-- Returns an array with one status per pair: 'ok' | 'cancel' | 'lost' | the job's
-- `stop_reason` when the fleet stopped it (`window_closed`, window_ends.lua)

local now = now_ms()
local lease = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local ref, fence = ARGV[i], ARGV[i + 1]
  local h = redis.call('HMGET', KEYS[2] .. K.job .. ref, 'fence', 'state', 'cancel_requested',
    'stop_reason')
  if h[1] ~= fence or h[2] ~= S.running then
    out[#out + 1] = 'lost'
  else
    redis.call('ZADD', KEYS[1], 'XX', now + lease, ref)
    if h[3] == '1' then
      out[#out + 1] = h[4] or 'cancel'
    else
      out[#out + 1] = 'ok'
    end
  end
end
return out
