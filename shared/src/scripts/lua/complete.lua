-- complete.lua: record the outcome of a batch of attempts of one tool, each fenced by its token:
-- write result/error, move the state, release the lease, append the state and done events (when
-- the job's stream exists), schedule a retry or file a dead letter, and set the retention TTLs.
-- Per job this costs one HGETALL, one HSET and one PEXPIRE; the lease ZREM, the state counts, the
-- run-time samples and (for a closed breaker hearing successes) the breaker are touched once
-- per call.
-- KEYS[1] leases zset  KEYS[2] counts hash  KEYS[3] scheduled zset  KEYS[4] dead zset
-- KEYS[5] the tool's key prefix  KEYS[6..8] streams high, normal, low  KEYS[9] run-samples list
-- KEYS[10..13] breaker state hash, history list, probes zset, window zset  KEYS[14] counts hash again (fair shares, `share:<tenant>`)
-- KEYS[15] backlog key prefix  KEYS[16] running-per-tenant hash (a capped tenant's next waiting
-- job is let in when one of its jobs stops running)  KEYS[17] the rolling series hash: the jobs
-- that finished here are added to `done:<minute>` (the dashboard's throughput, stats.rs)
-- KEYS[18..20] raw-lane streams high, normal, low (a handed-back job that needs raw sockets)
-- KEYS[21] running-per-group hash  KEYS[22] group waiting-list prefix: a job with `tgroup`
-- that stops running here leaves its group's count, and the group's next parked job goes back
-- to its ready stream (politeness, common.lua `group_stopped`)
-- ARGV[1] result ttl ms  ARGV[2] dead ttl ms  ARGV[3] max events  ARGV[4] notify channel
-- ARGV[5] tool name  ARGV[6] breaker settings JSON  ARGV[7] worker id, then groups of 8:
-- ref, fence, outcome, result json, error json, delay ms, breaker verdict
-- ('success' | 'failure' | 'ignored'), breaker reason
-- Each fenced outcome is also reported to the tool's breaker (lib.lua, prepended) under the
-- generation the job was admitted in, so a result from before a trip cannot move it. With no
-- breaker settings (ARGV[6] = '': a partition other than the tool's home, docs/scaling.md) the
-- breaker lives in another slot: nothing is recorded here, and the reply says, per job, the
-- generation and probe the worker must report to the home breaker.
-- outcome: 'succeeded' | 'failed' | 'cancelled' | 'retry' (scheduled after delay if attempts
-- remain, else failed) | 'handback' (worker shutting down: queued again at once, the attempt
-- does not count) | 'defer' (claimed outside its engagement's window: scheduled after delay,
-- `waiting` = 'window', the attempt does not count)
-- Returns {statuses, breaker results, transitions}: one status per job (the new state, or
-- 'stale' when the fence no longer matches), the breaker's label per job as recorded ('' for
-- stale), and the breaker transitions made here as JSON; without breaker settings a fourth
-- element: per job {generation, probe id} ({} when stale).

local leases, counts, sched, dead, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local result_ttl, dead_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
Q.maxev, Q.channel = tonumber(ARGV[3]), ARGV[4]
local tool = ARGV[5]
local streams = lanes({ KEYS[6], KEYS[7], KEYS[8] }, { KEYS[18], KEYS[19], KEYS[20] })
local bk = { state = KEYS[10], hist = KEYS[11], probes = KEYS[12], window = KEYS[13] }
local follow = ARGV[6] == ''
local cfg = (not follow) and cjson.decode(ARGV[6]) or {}
local owed = {}
local rate_mode = cfg and cfg.mode == 'rate'
local worker = ARGV[7]
local now = now_ms()
local out, recorded, transitions, released, runs = {}, {}, {}, {}, {}
-- The breaker as last read (the three fields the check below needs); a success in the closed
-- state with no failure streak changes nothing, so it is answered from here without touching
-- Redis.
local bst = nil
local function bk_brief()
  local v = redis.call('HMGET', bk.state, 'state', 'generation', 'consecutive')
  return { state = v[1] or 'closed', generation = tonumber(v[2] or '0'),
    consecutive = tonumber(v[3] or '0') }
end

-- The job's fields read here, besides the base ones (`load_all` reads them all at once): fence,
-- cancel_requested, attempt, max_attempts, started_ms, priority, bgen, probe, max_running,
-- needs_raw, tgroup.

for i = 8, #ARGV, 8 do
  local ref, fence, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- (Numbers are converted only where they are used: each `tonumber` of a string is a `strtod`.)
  local result, err, delay = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local b_outcome, b_reason = ARGV[i + 6], ARGV[i + 7]
  local j = job_at(prefix, ref, tool)
  load_all(j)
  local h = j.h
  if h.fence ~= fence or h.state ~= S.running then
    out[#out + 1] = 'stale'
    recorded[#recorded + 1] = ''
    owed[#owed + 1] = {}
  else
    local gen = h.bgen and tonumber(h.bgen) or 0
    if follow then
      recorded[#recorded + 1] = b_outcome
      owed[#owed + 1] = { gen, h.probe or '' }
    elseif not bst then bst = bk_brief() end
    if follow then
      -- Reported to the home breaker by the worker.
    elseif b_outcome == 'success' and not rate_mode and bst.state == 'closed'
        and bst.consecutive == 0 and gen == bst.generation and (h.probe or '') == '' then
      recorded[#recorded + 1] = 'success'
    else
      local tr, label = breaker_record(bk, cfg, now, gen, b_outcome, worker, h.probe or '', b_reason)
      recorded[#recorded + 1] = label
      if tr then transitions[#transitions + 1] = breaker_transition_json(tr) end
      bst = nil
    end
    if h.max_running and tonumber(h.max_running) > 0 then
      local tenant = tenant_of(ref)
      left_running(KEYS[16], tenant)
      refill_lanes(KEYS[14], KEYS[15], streams, tenant, 1)
    end
    if h.tgroup then
      group_stopped(KEYS[21], KEYS[14], KEYS[22], streams, prefix, h.tgroup)
    end
    if h.cancel_requested == '1' and outcome ~= S.succeeded then
      outcome = S.cancelled
    end
    if outcome == 'retry'
        and tonumber(h.attempt) >= tonumber(h.max_attempts or D.max_attempts) then
      outcome = S.failed
    end
    released[#released + 1] = ref
    local set = {}
    if result ~= '' then set[#set + 1] = 'result'; set[#set + 1] = result end
    if err ~= '' then set[#set + 1] = 'error'; set[#set + 1] = err end
    if outcome == 'retry' or outcome == 'defer' then delay = tonumber(delay) end
    if outcome == 'retry' then
      redis.call('ZADD', sched, now + delay, ref)
      count(S.running, S.scheduled, j)
      emit_state(j, 'state', S.scheduled, now, { retry_at_ms = now + delay })
      set[#set + 1] = 'state'; set[#set + 1] = S.scheduled
      set[#set + 1] = 'retry_at_ms'; set[#set + 1] = now + delay
      save(j, now, set)
      out[#out + 1] = S.scheduled
    elseif outcome == 'defer' then
      redis.call('ZADD', sched, now + delay, ref)
      count(S.running, S.scheduled, j)
      emit_state(j, 'state', S.scheduled, now, { retry_at_ms = now + delay, reason = 'window' })
      set[#set + 1] = 'state'; set[#set + 1] = S.scheduled
      set[#set + 1] = 'retry_at_ms'; set[#set + 1] = now + delay
      set[#set + 1] = 'attempt'; set[#set + 1] = tonumber(h.attempt) - 1
      set[#set + 1] = 'deliveries'; set[#set + 1] = math.max(0, deliveries_of(h) - 1)
      set[#set + 1] = 'waiting'; set[#set + 1] = WAITING_WINDOW
      save(j, now, set)
      out[#out + 1] = S.scheduled
    elseif outcome == 'handback' then
      ready(streams, lane_of(h.priority, h.needs_raw), KEYS[14], ref)
      count(S.running, S.queued, j)
      emit_state(j, 'state', S.queued, now, { reason = 'handed back' })
      set[#set + 1] = 'state'; set[#set + 1] = S.queued
      set[#set + 1] = 'attempt'; set[#set + 1] = tonumber(h.attempt) - 1
      -- (The hand-back does not count as an attempt, but was a delivery.)
      set[#set + 1] = 'deliveries'; set[#set + 1] = deliveries_of(h)
      set[#set + 1] = 'ready_ms'; set[#set + 1] = now
      save(j, now, set)
      out[#out + 1] = S.queued
    else
      local started = tonumber(h.started_ms or now)
      runs[#runs + 1] = int(now - started)
      finish({ j = j, from = S.running, to = outcome, now = now, started = started,
        dead = dead, result_ttl = result_ttl, dead_ttl = dead_ttl, set = set })
      out[#out + 1] = outcome
    end
  end
end
if #released > 0 then redis.call('ZREM', leases, unpack(released)) end
flush_counts(counts)
if #runs > 0 then
  push_samples(KEYS[9], runs)
  redis.call('HINCRBY', KEYS[17], 'done:' .. math.floor(now / 60000), #runs)
end
redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - dead_ttl)
if follow then return { out, recorded, transitions, owed } end
return { out, recorded, transitions }
