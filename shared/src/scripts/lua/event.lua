-- event.lua: a running attempt reports progress or output, fenced by its token. The first such
-- event creates the job's event stream (seeded with the states it had, see `seed`).
-- KEYS[1] the tool's key prefix
-- ARGV[1] ref  ARGV[2] fence  ARGV[3] event type ('progress' | 'output')  ARGV[4] data json
-- ARGV[5] max events  ARGV[6] notify channel  ARGV[7] tool name
-- ARGV[8] value for the job's `progress` field ('' = leave it)
-- Returns the event position, or 0 when the attempt is no longer current.

Q.maxev, Q.channel = tonumber(ARGV[5]), ARGV[6]
local j = job_at(KEYS[1], ARGV[1], ARGV[7])
local fields = { 'fence' }
for _, f in ipairs(SEED_FIELDS) do fields[#fields + 1] = f end
load(j, fields)
if j.h.fence ~= ARGV[2] or j.h.state ~= S.running then
  return 0
end
seed(j)
local now = now_ms()
emit(j, ARGV[3], ARGV[4], now)
if ARGV[8] ~= '' then
  save(j, now, { 'progress', ARGV[8] })
else
  save(j, now, {})
end
return j.seq
