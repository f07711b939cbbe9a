-- watch.lua: a watcher (SSE stream, long-poll, MCP follow) registers for a job and reads it.
-- From now until `until` ms, every change of the job is published on the notify channel; with
-- mode 'stream' the job's event stream is also created if it does not exist yet, seeded with
-- what the watcher missed (see `seed` in common.lua), so every later event is stored.
-- KEYS[1] the tool's key prefix
-- ARGV[1] ref  ARGV[2] tool name  ARGV[3] registration lifetime ms  ARGV[4] 'notify' | 'stream'
-- Returns the job hash as a flat field/value array (empty when the job does not exist).

local j = job_at(KEYS[1], ARGV[1], ARGV[2])
if not load(j, SEED_FIELDS) then
  return {}
end
local now = now_ms()
local until_ms = now + tonumber(ARGV[3])
if tonumber(j.h.watch or '0') < until_ms - 1000 then
  -- Refreshed at most once a second per job, however many watchers it has.
  redis.call('HSET', j.key, 'watch', until_ms)
end
-- This watcher wants every change, not only the end (see `watched` in common.lua).
if j.h.watch_end then redis.call('HDEL', j.key, 'watch_end') end
if ARGV[4] == 'stream' then
  seed(j)
end
return redis.call('HGETALL', j.key)
