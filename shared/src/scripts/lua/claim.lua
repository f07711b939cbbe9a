-- claim.lua: take up to N ready jobs for one worker, atomically: read them from the priority
-- streams with XREADGROUP, mark them running under a lease with a fresh fencing token, and
-- acknowledge + delete the stream entries. Because delivery and start happen in one script, no
-- entry is ever left pending for a dead consumer.
-- Priority order rotates with the round number so that high goes first most of the time but
-- normal and low get the first pick in some rounds: no priority starves.
-- KEYS[1..3] streams high, normal, low   KEYS[4] leases zset   KEYS[5] counts hash
-- KEYS[6] job key prefix (job key = prefix .. 'job:' .. ref; events = prefix .. 'ev:' .. ref)
-- KEYS[7] wait-samples list
-- ARGV[1] group  ARGV[2] consumer (worker id)  ARGV[3] how many  ARGV[4] lease ms
-- ARGV[5] round number  ARGV[6] max events  ARGV[7] notify channel  ARGV[8] tool name
-- Returns {jobs, last_ids}: jobs = array of {ref, fence, field, value, …} (the whole job hash);
-- last_ids = the last id generated on each stream (for a blocking wait when nothing was claimed).

local group, consumer = ARGV[1], ARGV[2]
local want, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local round = tonumber(ARGV[5]) % 10
local maxlen, channel, tool = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local prefix = KEYS[6]

local order
if round < 6 then order = { 1, 2, 3 }
elseif round < 9 then order = { 2, 1, 3 }
else order = { 3, 1, 2 } end

local now = now_ms()
local jobs = {}
for _, i in ipairs(order) do
  if #jobs >= want then break end
  local stream = KEYS[i]
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', group, consumer,
    'COUNT', want - #jobs, 'STREAMS', stream, '>')
  if not ok then
    -- The group does not exist yet: create it at the beginning of the stream.
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want - #jobs,
      'STREAMS', stream, '>')
  end
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      local id, f = entry[1], entry[2]
      redis.call('XACK', stream, group, id)
      redis.call('XDEL', stream, id)
      local ref = f[2]
      local job = prefix .. 'job:' .. ref
      local st = redis.call('HMGET', job, 'state', 'ready_ms', 'created_ms')
      if st[1] == S.queued then
        redis.call('HINCRBY', job, 'attempt', 1)
        redis.call('HINCRBY', job, 'deliveries', 1)
        local fence = redis.call('HINCRBY', job, 'fence', 1)
        local wait = now - tonumber(st[2] or st[3] or now)
        redis.call('HSET', job, 'started_ms', now, 'worker', consumer, 'queue_wait_ms', wait,
          'cancel_requested', '0')
        redis.call('HDEL', job, 'finished_ms', 'duration_ms', 'retry_at_ms')
        redis.call('ZADD', KEYS[4], now + lease, ref)
        move(KEYS[5], job, S.queued, S.running, now)
        redis.call('LPUSH', KEYS[7], wait)
        redis.call('LTRIM', KEYS[7], 0, 999)
        emit(prefix .. 'ev:' .. ref, job, 'state', state_event(S.running, now, { worker = consumer }),
          maxlen, channel, tool .. '/' .. ref)
        local h = redis.call('HGETALL', job)
        local item = { ref, fence }
        for _, v in ipairs(h) do item[#item + 1] = v end
        jobs[#jobs + 1] = item
      end
      -- Anything else (cancelled while queued, expired) is simply dropped from the stream.
    end
  end
end

local last = {}
if #jobs < want then
  for i = 1, 3 do
    local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[i])
    local id = '0-0'
    if ok then
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then id = info[j + 1] end
      end
    end
    last[i] = id
  end
end
return { jobs, last }
