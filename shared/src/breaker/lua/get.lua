-- get.lua: snapshot of a breaker (lib.lua .. get.lua); moves open -> half_open when due
-- KEYS[1] state hash, KEYS[2] history list, KEYS[3] probes zset, KEYS[4] window zset
-- ARGV[1] now_ms override ("" = Redis TIME)
-- Returns a flat array of name, value pairs (all strings): state, generation,
-- consecutive_failures, window_calls, window_failures, probe_successes, probes_in_flight,
-- re_trips, retry_after_ms, opened_at_ms, open_until_ms, open_period_ms, now_ms,
-- last_errors (JSON array), history (JSON array, newest first)
local bk = { state = KEYS[1], hist = KEYS[2], probes = KEYS[3], window = KEYS[4] }
return breaker_snapshot(bk, breaker_now(ARGV[1]))
