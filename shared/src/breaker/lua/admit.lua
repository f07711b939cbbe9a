-- admit.lua: may a job of this tool start now? (built as lib.lua .. admit.lua)
-- KEYS[1] state hash, KEYS[2] history list, KEYS[3] probes zset, KEYS[4] window zset
-- ARGV[1] BreakerSettings JSON, ARGV[2] now_ms override ("" = Redis TIME),
-- ARGV[3] worker_id, ARGV[4] probe_id (unique per job attempt; holds the probe slot)
-- Returns { decision ("allow"|"probe"|"reject"), generation, retry_after_ms,
--           transition JSON of a lazy open -> half_open move, or "" }
local bk = { state = KEYS[1], hist = KEYS[2], probes = KEYS[3], window = KEYS[4] }
local cfg = cjson.decode(ARGV[1])
local now_ms = breaker_now(ARGV[2])
local decision, generation, retry_after_ms, tr = breaker_admit(bk, cfg, now_ms, ARGV[3], ARGV[4])
return { decision, generation, retry_after_ms, breaker_transition_json(tr) }
