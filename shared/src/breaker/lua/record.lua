-- record.lua: record the outcome of a job admitted at some generation (lib.lua .. record.lua)
-- KEYS[1] state hash, KEYS[2] history list, KEYS[3] probes zset, KEYS[4] window zset
-- ARGV[1] BreakerSettings JSON, ARGV[2] now_ms override ("" = Redis TIME),
-- ARGV[3] generation returned by admit, ARGV[4] outcome ("success"|"failure"|"ignored"),
-- ARGV[5] worker_id, ARGV[6] probe_id ("" if none; its slot is released), ARGV[7] failure reason
-- Returns { outcome as recorded ("success"|"failure"|"ignored"), transition JSON or "" }
local bk = { state = KEYS[1], hist = KEYS[2], probes = KEYS[3], window = KEYS[4] }
local cfg = cjson.decode(ARGV[1])
local now_ms = breaker_now(ARGV[2])
local tr, label = breaker_record(bk, cfg, now_ms, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
return { label, breaker_transition_json(tr) }
