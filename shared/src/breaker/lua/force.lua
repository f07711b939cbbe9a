-- force.lua: admin action on a breaker (lib.lua .. force.lua)
-- KEYS[1] state hash, KEYS[2] history list, KEYS[3] probes zset, KEYS[4] window zset
-- ARGV[1] BreakerSettings JSON, ARGV[2] now_ms override ("" = Redis TIME),
-- ARGV[3] action ("open" -> forced_open | "close" | "reset" | "disable")
-- Returns the transition JSON, or "" when the breaker was already in that state
local bk = { state = KEYS[1], hist = KEYS[2], probes = KEYS[3], window = KEYS[4] }
local cfg = cjson.decode(ARGV[1])
local now_ms = breaker_now(ARGV[2])
return breaker_transition_json(breaker_force(bk, cfg, now_ms, ARGV[3]))
