-- scanq circuit breaker: Lua library (prepended to every script that touches a breaker).
--
-- This file only defines `local function`s; it reads no KEYS/ARGV and returns nothing, so a
-- script is built as `lib.lua .. body.lua` and runs as one EVAL. Every name starts with
-- `breaker_` (public) or `bk_` (private) so a body may define its own locals freely.
--
-- bk:  { state = <hash>, hist = <list>, probes = <zset>, window = <zset> }  (one hash tag)
-- cfg: cjson.decode(<BreakerSettings JSON>); missing fields take the documented defaults.
-- now_ms: from breaker_now(argv): "" -> Redis TIME, a number -> that (tests only).
--
-- State hash fields: state, generation, consecutive, probe_successes, trips (re-trips since the
-- last close), opened_at, open_until, open_period_ms, window_ms, seq, last_errors (JSON array).
-- Window zset: consecutive mode holds "w|<worker>" (workers of the current failure streak);
-- rate mode holds "e|<seq>|<s or f>|<worker>" scored by time.
-- Probes zset: member probe_id, score = lease expiry (ms).
--
-- State strings are exactly BreakerState::as_str() in Rust:
-- closed, open, half_open, forced_open, disabled.

local BK_HISTORY_MAX = 100
local BK_LAST_ERRORS_MAX = 10
local BK_WINDOW_MAX_EVENTS = 10000
local BK_HALF_OPEN_RETRY_MS = 1000
local BK_REASON_MAX = 512

local function breaker_now(v)
  if v ~= nil and v ~= '' and v ~= false then
    local n = tonumber(v)
    if n == nil then
      error(redis.error_reply('ERR breaker: now_ms override is not a number: ' .. tostring(v)))
    end
    return math.floor(n)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function bk_num(cfg, key, default)
  local v = cfg and cfg[key]
  if type(v) == 'number' then
    return v
  end
  return default
end

local function bk_fmt(n)
  return string.format('%d', n)
end

-- Loads the state hash into a table of typed fields.
local function bk_load(bk)
  local raw = redis.call('HGETALL', bk.state)
  local h = {}
  for i = 1, #raw, 2 do
    h[raw[i]] = raw[i + 1]
  end
  return {
    state = h.state or 'closed',
    generation = tonumber(h.generation or '0'),
    consecutive = tonumber(h.consecutive or '0'),
    probe_successes = tonumber(h.probe_successes or '0'),
    trips = tonumber(h.trips or '0'),
    opened_at = tonumber(h.opened_at or '0'),
    open_until = tonumber(h.open_until or '0'),
    open_period_ms = tonumber(h.open_period_ms or '0'),
    window_ms = tonumber(h.window_ms or '0'),
    last_errors = h.last_errors or '[]',
  }
end

-- Seeds Lua's PRNG from Redis TIME (microseconds) and returns a number in [0, 1).
local function bk_random()
  local t = redis.call('TIME')
  math.randomseed((tonumber(t[1]) % 100000) * 1000000 + tonumber(t[2]))
  return math.random()
end

-- The open period for the given re-trip count: base * multiplier^trips, jittered, capped.
local function bk_open_period_ms(cfg, trips)
  local base = bk_num(cfg, 'recovery_timeout_sec', 60) * 1000
  local mult = bk_num(cfg, 'backoff_multiplier', 1.5)
  local cap = bk_num(cfg, 'max_open_sec', 300) * 1000
  local jitter = bk_num(cfg, 'jitter', 0.1)
  local period = base * (mult ^ trips)
  if period > cap then
    period = cap
  end
  if jitter > 0 then
    period = period * (1 + jitter * (2 * bk_random() - 1))
    if period > cap then
      period = cap
    end
  end
  if period < 1 then
    period = 1
  end
  return math.floor(period)
end

-- Moves the breaker to `to`, bumps the generation and appends to the history.
-- `fields` holds extra hash fields to set; `clear` lists hash fields to delete.
local function bk_transition(bk, st, to, reason, now_ms, fields, clear)
  local from = st.state
  local gen = st.generation + 1
  local args = { 'state', to, 'generation', bk_fmt(gen) }
  for k, v in pairs(fields or {}) do
    args[#args + 1] = k
    args[#args + 1] = v
  end
  redis.call('HSET', bk.state, unpack(args))
  if clear and #clear > 0 then
    redis.call('HDEL', bk.state, unpack(clear))
  end
  st.state = to
  st.generation = gen
  local t = { from = from, to = to, reason = reason, at_ms = now_ms, generation = gen }
  redis.call('LPUSH', bk.hist, cjson.encode(t))
  redis.call('LTRIM', bk.hist, 0, BK_HISTORY_MAX - 1)
  return t
end

-- Opens the breaker with the period for `trips` re-trips.
local function bk_open(bk, cfg, st, reason, now_ms, trips)
  local period = bk_open_period_ms(cfg, trips)
  redis.call('DEL', bk.probes)
  st.trips = trips
  st.opened_at = now_ms
  st.open_until = now_ms + period
  st.open_period_ms = period
  st.probe_successes = 0
  return bk_transition(bk, st, 'open', reason, now_ms, {
    trips = bk_fmt(trips),
    opened_at = bk_fmt(now_ms),
    open_until = bk_fmt(now_ms + period),
    open_period_ms = bk_fmt(period),
    probe_successes = '0',
  })
end

-- Closes the breaker: counts, window, probes and back-off start afresh.
local function bk_close(bk, st, reason, now_ms, clear_errors)
  redis.call('DEL', bk.probes, bk.window)
  st.consecutive = 0
  st.probe_successes = 0
  st.trips = 0
  local clear = { 'opened_at', 'open_until', 'open_period_ms' }
  if clear_errors then
    clear[#clear + 1] = 'last_errors'
  end
  return bk_transition(bk, st, 'closed', reason, now_ms, {
    consecutive = '0',
    probe_successes = '0',
    trips = '0',
  }, clear)
end

-- open -> half_open once the open period has passed; returns the transition or false.
local function bk_maybe_half_open(bk, st, now_ms)
  if st.state == 'open' and now_ms >= st.open_until then
    redis.call('DEL', bk.probes)
    st.probe_successes = 0
    return bk_transition(bk, st, 'half_open', 'open_period_elapsed', now_ms, { probe_successes = '0' })
  end
  return false
end

-- Counts the window: calls, failures, distinct failing workers (rate mode), from `since_ms` on.
local function bk_window_counts(bk, since_ms)
  local members = redis.call('ZRANGEBYSCORE', bk.window, since_ms, '+inf')
  local calls, failures, workers, nworkers = 0, 0, {}, 0
  for _, m in ipairs(members) do
    local _, _, kind, worker = string.find(m, '^e|%d+|([sf])|(.*)$')
    if kind then
      calls = calls + 1
      if kind == 'f' then
        failures = failures + 1
        if not workers[worker] then
          workers[worker] = true
          nworkers = nworkers + 1
        end
      end
    end
  end
  return calls, failures, nworkers
end

-- Distinct workers of the current consecutive-failure streak.
local function bk_streak_workers(bk)
  local members = redis.call('ZRANGE', bk.window, 0, -1)
  local n = 0
  for _, m in ipairs(members) do
    if string.sub(m, 1, 2) == 'w|' then
      n = n + 1
    end
  end
  return n
end

local function bk_note_error(bk, st, now_ms, worker_id, reason)
  local ok, list = pcall(cjson.decode, st.last_errors)
  if not ok or type(list) ~= 'table' then
    list = {}
  end
  table.insert(list, 1, {
    at_ms = now_ms,
    worker = worker_id,
    reason = string.sub(reason or '', 1, BK_REASON_MAX),
    generation = st.generation,
  })
  while #list > BK_LAST_ERRORS_MAX do
    table.remove(list)
  end
  st.last_errors = cjson.encode(list)
  redis.call('HSET', bk.state, 'last_errors', st.last_errors)
end

-- Returns decision ("allow" | "probe" | "reject"), generation, retry_after_ms, and as a 4th
-- value the lazy open -> half_open transition this call made (or false).
local function breaker_admit(bk, cfg, now_ms, worker_id, probe_id)
  local st = bk_load(bk)
  local tr = false
  if st.state == 'disabled' or st.state == 'closed' then
    return 'allow', st.generation, 0, tr
  end
  if st.state == 'forced_open' then
    return 'reject', st.generation, math.floor(bk_num(cfg, 'recovery_timeout_sec', 60) * 1000), tr
  end
  if st.state == 'open' then
    tr = bk_maybe_half_open(bk, st, now_ms)
    if not tr then
      return 'reject', st.generation, st.open_until - now_ms, tr
    end
  end
  -- half_open: expired leases free their slots, then at most K probes fleet-wide.
  redis.call('ZREMRANGEBYSCORE', bk.probes, '-inf', now_ms)
  local lease_ms = math.floor(bk_num(cfg, 'probe_lease_sec', 30) * 1000)
  local pid = probe_id
  if pid == nil or pid == '' then
    pid = tostring(worker_id) .. '@' .. bk_fmt(now_ms)
  end
  if redis.call('ZSCORE', bk.probes, pid) then
    redis.call('ZADD', bk.probes, now_ms + lease_ms, pid)
    return 'probe', st.generation, 0, tr
  end
  local max_probes = bk_num(cfg, 'half_open_max_probes', 1)
  if redis.call('ZCARD', bk.probes) < max_probes then
    redis.call('ZADD', bk.probes, now_ms + lease_ms, pid)
    return 'probe', st.generation, 0, tr
  end
  local first = redis.call('ZRANGE', bk.probes, 0, 0, 'WITHSCORES')
  local wait = BK_HALF_OPEN_RETRY_MS
  if first[2] then
    local left = tonumber(first[2]) - now_ms
    if left < wait then
      wait = left
    end
  end
  if wait < 1 then
    wait = 1
  end
  return 'reject', st.generation, wait, tr
end

-- Records the outcome of a job admitted at generation `gen`; releases probe `probe_id`.
-- Returns the transition it caused (or false) and the label recorded:
-- "success" | "failure" | "ignored" (stale generation, disabled/forced states, or "ignored").
local function breaker_record(bk, cfg, now_ms, gen, outcome, worker_id, probe_id, reason)
  if probe_id ~= nil and probe_id ~= '' then
    redis.call('ZREM', bk.probes, probe_id)
  end
  local st = bk_load(bk)
  if tonumber(gen) ~= st.generation or (outcome ~= 'success' and outcome ~= 'failure') then
    return false, 'ignored'
  end
  local failed = outcome == 'failure'
  if st.state == 'half_open' then
    if failed then
      st.consecutive = st.consecutive + 1
      redis.call('HSET', bk.state, 'consecutive', bk_fmt(st.consecutive))
      bk_note_error(bk, st, now_ms, worker_id, reason)
      return bk_open(bk, cfg, st, 'probe_failure', now_ms, st.trips + 1), 'failure'
    end
    st.probe_successes = redis.call('HINCRBY', bk.state, 'probe_successes', 1)
    if st.probe_successes >= bk_num(cfg, 'success_threshold', 2) then
      return bk_close(bk, st, 'probe_success_threshold', now_ms, false), 'success'
    end
    return false, 'success'
  end
  if st.state ~= 'closed' then
    return false, 'ignored'
  end

  local rate_mode = cfg and cfg.mode == 'rate'
  local min_workers = bk_num(cfg, 'min_workers', 1)
  local window_ms = math.floor(bk_num(cfg, 'window_sec', 60) * 1000)
  if rate_mode then
    local seq = redis.call('HINCRBY', bk.state, 'seq', 1)
    local member = 'e|' .. bk_fmt(seq) .. '|' .. (failed and 'f' or 's') .. '|' .. tostring(worker_id)
    redis.call('ZADD', bk.window, now_ms, member)
    redis.call('ZREMRANGEBYSCORE', bk.window, '-inf', '(' .. bk_fmt(now_ms - window_ms))
    redis.call('ZREMRANGEBYRANK', bk.window, 0, -(BK_WINDOW_MAX_EVENTS + 1))
    redis.call('PEXPIRE', bk.window, window_ms * 2)
    redis.call('HSET', bk.state, 'window_ms', bk_fmt(window_ms))
  end
  if not failed then
    if st.consecutive ~= 0 then
      redis.call('HSET', bk.state, 'consecutive', '0')
    end
    if not rate_mode then
      redis.call('DEL', bk.window)
    end
    return false, 'success'
  end

  st.consecutive = redis.call('HINCRBY', bk.state, 'consecutive', 1)
  bk_note_error(bk, st, now_ms, worker_id, reason)
  if rate_mode then
    local calls, failures, workers = bk_window_counts(bk, now_ms - window_ms)
    if calls >= bk_num(cfg, 'min_calls', 10) and failures >= calls * bk_num(cfg, 'failure_rate', 0.5)
      and workers >= min_workers then
      return bk_open(bk, cfg, st, 'failure_rate', now_ms, 0), 'failure'
    end
    return false, 'failure'
  end
  redis.call('ZADD', bk.window, now_ms, 'w|' .. tostring(worker_id))
  if st.consecutive >= bk_num(cfg, 'failure_threshold', 5) and bk_streak_workers(bk) >= min_workers then
    return bk_open(bk, cfg, st, 'failure_threshold', now_ms, 0), 'failure'
  end
  return false, 'failure'
end

-- Admin action: "open" (forced_open) | "close" | "reset" | "disable". Returns transition or false.
local function breaker_force(bk, cfg, now_ms, action)
  local st = bk_load(bk)
  if action == 'open' then
    if st.state == 'forced_open' then
      return false
    end
    redis.call('DEL', bk.probes)
    return bk_transition(bk, st, 'forced_open', 'forced_open', now_ms, nil,
      { 'opened_at', 'open_until', 'open_period_ms' })
  elseif action == 'disable' then
    if st.state == 'disabled' then
      return false
    end
    redis.call('DEL', bk.probes)
    return bk_transition(bk, st, 'disabled', 'disabled', now_ms, nil,
      { 'opened_at', 'open_until', 'open_period_ms' })
  elseif action == 'close' then
    if st.state == 'closed' then
      return false
    end
    return bk_close(bk, st, 'forced_close', now_ms, false)
  elseif action == 'reset' then
    return bk_close(bk, st, 'reset', now_ms, true)
  end
  error(redis.error_reply('ERR breaker: unknown force action: ' .. tostring(action)))
end

-- Flat array of name, value pairs (values are strings) for get.lua; lazily moves an open
-- breaker whose period has passed to half_open first.
local function breaker_snapshot(bk, now_ms)
  local st = bk_load(bk)
  bk_maybe_half_open(bk, st, now_ms)
  local calls, failures = 0, 0
  if st.window_ms > 0 then
    calls, failures = bk_window_counts(bk, now_ms - st.window_ms)
  end
  local in_flight = redis.call('ZCOUNT', bk.probes, '(' .. bk_fmt(now_ms), '+inf')
  local retry_after = 0
  if st.state == 'open' then
    retry_after = st.open_until - now_ms
  end
  local hist = redis.call('LRANGE', bk.hist, 0, BK_HISTORY_MAX - 1)
  return {
    'state', st.state,
    'generation', bk_fmt(st.generation),
    'consecutive_failures', bk_fmt(st.consecutive),
    'window_calls', bk_fmt(calls),
    'window_failures', bk_fmt(failures),
    'probe_successes', bk_fmt(st.probe_successes),
    'probes_in_flight', bk_fmt(in_flight),
    're_trips', bk_fmt(st.trips),
    'retry_after_ms', bk_fmt(retry_after),
    'opened_at_ms', bk_fmt(st.opened_at),
    'open_until_ms', bk_fmt(st.open_until),
    'open_period_ms', bk_fmt(st.open_period_ms),
    'now_ms', bk_fmt(now_ms),
    'last_errors', st.last_errors,
    'history', '[' .. table.concat(hist, ',') .. ']',
  }
end

-- Encodes a transition table for a script reply ("" when there is none).
local function breaker_transition_json(t)
  if t then
    return cjson.encode(t)
  end
  return ''
end
