-- claim.lua: take up to N ready jobs for one worker, atomically: read them from the priority
-- streams with XREADGROUP (NOACK), mark them running under a lease with a fresh fencing token,
-- and trim the entries read off the stream. Because delivery and start happen in one script, no
-- entry is ever left pending for a dead consumer.
-- Priority order rotates with the round number so that high goes first most of the time but
-- normal and low get the first pick in some rounds: no priority starves.
-- Per job this costs one HGETALL and one HSET; the lease ZADD, the state counts, the wait samples,
-- the stream trim and the fair-share counts are written once per call.
-- KEYS[1..3] streams high, normal, low   KEYS[4] leases zset   KEYS[5] counts hash
-- KEYS[6] the tool's key prefix (job key = prefix .. K.job .. ref)
-- KEYS[7] wait-samples list  KEYS[8] scheduled zset
-- KEYS[9..12] breaker state hash, history list, probes zset, window zset
-- KEYS[13] the tool's disabled flag (nothing is claimed while it exists)
-- KEYS[14] counts hash again (fair shares, `share:<tenant>`)  KEYS[15] backlog key prefix (see enqueue.lua): each entry read
-- leaves its tenant's share, and the tenant's next backlogged job takes its place
-- KEYS[16] running-per-tenant hash: a job whose tenant already runs its `max_running` jobs of
-- this tool goes back to the front of the tenant's backlog (let in again when one finishes)
-- ARGV[1] group  ARGV[2] consumer (worker id)  ARGV[3] how many  ARGV[4] lease ms
-- ARGV[5] round number  ARGV[6] max events  ARGV[7] notify channel  ARGV[8] tool name
-- ARGV[9] breaker settings JSON  ARGV[10] error JSON for jobs held back by an open breaker
-- ARGV[11] fair-share window (as in enqueue.lua)
-- ARGV[12] breaker gate: '' = the breaker in KEYS[9..12] decides (the tool's home partition);
-- for the other partitions of a partitioned tool (docs/scaling.md) the worker asked the home
-- breaker first and passes its answer: 'closed:<generation>' (jobs start, stamped with that
-- generation) or 'probe:<probe id>:<generation>' (the first job read is that probe)
-- The tool's circuit breaker (breaker/lua/lib.lua, prepended) is consulted in the same step:
-- closed → jobs start; half-open → each job must win a probe slot; open → the jobs read are
-- moved to `scheduled` until the breaker may admit again (this never counts as an attempt).
-- KEYS[17..19] raw-lane streams high, normal, low (also declared for a plain worker: a backlog
-- refill may move a raw job)  ARGV[13] '1' when this worker runs raw-socket scans confined: it
-- then reads each priority's raw lane too, the two lanes taking turns to go first by round, so
-- neither starves; a plain worker reads its plain lanes only (the same calls as without lanes),
-- and a job that needs raw sockets found in them is put on its raw lane, never started
-- KEYS[20] running-per-group hash  KEYS[21] group waiting-list prefix (`gwait:`)
-- ARGV[14] the tool's cap of running jobs per target group (0 = none): a job with `tgroup` whose
-- group already runs that many in this partition is parked in its group's waiting list (marked
-- `waiting` = 'target_group', still `queued`) and the claim reads on, up to PARK_BUDGET parked
-- per call, so other groups are not held back; it goes back to its ready stream when a job of
-- the group stops running (common.lua, `group_stopped`). Every started job with `tgroup`
-- counts in its group, whatever the cap.
-- KEYS[22] the partition's offer key  ARGV[15] '1' when this worker has offered itself here for
-- a direct start (offer.lua, docs/queue.md "Direct start") since its last claim: a standing offer
-- is taken back; one an enqueue took gave the worker a job, which is read from the worker's
-- inbox and returned after the jobs claimed here (it runs already), counted among the `want`
-- Returns {jobs, retry_after_ms, transitions, parked, drained}: jobs = array of
-- {ref, fence, attempt, queue_wait_ms, target, template, args_raw, intrusive, timeout_sec,
-- needs_raw, parent, engagement} (the worker judges the engagement's window again), or its
-- first five when the job has none of the rest (`start_job`): only what the worker needs;
-- retry_after_ms > 0 when the breaker refused; transitions = breaker transitions made here,
-- as JSON; parked = jobs parked for their group here; drained = 1 when the streams this worker
-- reads are known to be empty after the call (see the end); then, with no gate, the breaker
-- after the call: state, generation, and 1 when a success would change nothing (closed, no
-- failure streak); then how many of `jobs` (the last) were started on the worker's offer
-- (ARGV[15]).
-- (An idle worker then blocks reading the ready streams
-- from `0-0`: a stream holds only unclaimed entries.)

local group, consumer = ARGV[1], ARGV[2]
local want, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local round = tonumber(ARGV[5]) % 10
Q.maxev, Q.channel = tonumber(ARGV[6]), ARGV[7]
local tool = ARGV[8]
local window = tonumber(ARGV[11] or '0')
local prefix, sched, running_by = KEYS[6], KEYS[8], KEYS[16]
local streams_by = lanes({ KEYS[1], KEYS[2], KEYS[3] }, { KEYS[17], KEYS[18], KEYS[19] })
local raw_capable = ARGV[13] == '1'
local bk = { state = KEYS[9], hist = KEYS[10], probes = KEYS[11], window = KEYS[12] }
local cfg = cjson.decode(ARGV[9])
local held_error = ARGV[10]
local gate = ARGV[12] or ''
local group_running, gwait = KEYS[20], KEYS[21]
local group_cap = tonumber(ARGV[14] or '0') or 0
-- Parked jobs per call at most: the claim reads on past a busy group, within bounds.
local PARK_BUDGET = 100
local parked = 0
local handed = {}
if ARGV[15] == '1' then
  if redis.call('GET', KEYS[22]) == consumer then
    redis.call('DEL', KEYS[22])
    redis.call('HDEL', KEYS[5], OFFER_UNTIL)
  else
    local inbox = prefix .. K.inbox .. consumer
    for _, e in ipairs(redis.call('XRANGE', inbox, '-', '+')) do
      handed[#handed + 1] = cjson.decode(e[2][2])
    end
    redis.call('DEL', inbox)
  end
  want = want - #handed
end
local b = redis.call('HMGET', bk.state, 'state', 'generation', 'consecutive')
local bstate = b[1] or 'closed'
local per_job = not (bstate == 'closed' or bstate == 'disabled')
local bgen = tonumber(b[2] or '0')
local gate_probe = ''
if gate ~= '' then
  local kind, rest = string.match(gate, '^(%a+):(.*)$')
  per_job = false
  if kind == 'probe' then
    gate_probe, bgen = string.match(rest, '^(.*):(%d+)$')
    bgen = tonumber(bgen)
  else
    bgen = tonumber(rest)
  end
end
local retry_after = 0
local transitions = {}

local order
if round < 6 then order = { 1, 2, 3 }
elseif round < 9 then order = { 2, 1, 3 }
else order = { 3, 1, 2 } end
-- The streams this worker reads, in order: {key, raw lane?}.
local mine = {}
local raw_first = tonumber(ARGV[5]) % 2 == 1
for _, i in ipairs(order) do
  if raw_capable and raw_first then mine[#mine + 1] = { KEYS[16 + i], true } end
  mine[#mine + 1] = { KEYS[i], false }
  if raw_capable and not raw_first then mine[#mine + 1] = { KEYS[16 + i], true } end
end

local now = now_ms()
local jobs, leases, waits = {}, {}, {}
-- Per tenant in a lane (`in_lane`): entries read from the lane's streams, and how many of them
-- free a place there for the tenant's backlog (all but those pushed back by a running cap).
local left, freed = {}, {}

-- The entries are read without entering the group's pending list (`NOACK`: this script starts
-- or moves each of them before it ends, so nothing is ever pending) and removed with one
-- `XTRIM MINID`: every claim removes what it reads in the same step, so a stream holds only
-- unread entries and those read are always its head. (Per entry, `XACK` + `XDEL` cost ~2.6 µs of
-- Redis time more than the trim: BENCHMARKS.md "Engine v5".)
local function xread(stream, n)
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', group, consumer,
    'COUNT', n, 'NOACK', 'STREAMS', stream, '>')
  if not ok then
    -- The group does not exist yet: create it at the beginning of the stream.
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n,
      'NOACK', 'STREAMS', stream, '>')
  end
  if not reply then return {} end
  local entries = reply[1][2]
  if #entries > 0 then
    local ms, seq = string.match(entries[#entries][1], '^(%d+)-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
  end
  return entries
end

-- Up to `count` job refs from `stream`. An entry is one job (`ref <tenant>/<cid>`) or a refill
-- batch (`b <tenant in its lane>` then `i <backlog item>` per job, common.lua `refill`). Refs
-- read beyond `count` (the rest of a batch, or entries read after it) go back to the stream's
-- tail, still counted in their tenant's share. Singles are read in bulk, a batch one at a time.
-- Also returns, per ref, its tenant in the lane (`in_lane`).
local read_full = false
local function read(stream, count, raw)
  local out, whos = {}, {}
  local ask = count
  while #out < count do
    local entries = xread(stream, ask)
    local batch = false
    for i = 1, #entries do
      local f = entries[i][2]
      if f[1] == 'b' then
        batch = true
        local who, spill, took = f[2], nil, 0
        local tenant = tenant_in(who)
        for k = 4, #f, 2 do
          if #out < count then
            local ref = backlog_item_ref(f[k], tenant)
            out[#out + 1] = ref
            whos[#out] = who
            took = took + 1
          else
            spill = spill or { 'b', who }
            spill[#spill + 1] = 'i'
            spill[#spill + 1] = f[k]
          end
        end
        left[who] = (left[who] or 0) + took
        if spill then redis.call('XADD', stream, '*', unpack(spill)) end
      elseif #out < count then
        local ref = f[2]
        local who = in_lane(tenant_of(ref), raw)
        left[who] = (left[who] or 0) + 1
        out[#out + 1] = ref
        whos[#out] = who
      else
        redis.call('XADD', stream, '*', 'ref', f[2])
      end
    end
    if #entries < ask then break end
    ask = batch and 1 or (count - #out)
  end
  -- A read that got all it asked for may have left more behind.
  if #out >= count then read_full = true end
  return out, whos
end

-- Holds a queued job back while the breaker refuses: scheduled for when it may admit again.
local function hold(j, delay)
  redis.call('ZADD', sched, now + delay, j.ref)
  if j.h.waiting == WAITING_WINDOW then redis.call('HDEL', j.key, 'waiting') end
  count(S.queued, S.scheduled, j)
  emit_state(j, 'state', S.scheduled, now, { retry_at_ms = now + delay, reason = 'circuit_breaker_open' })
  save(j, now, { 'state', S.scheduled, 'retry_at_ms', now + delay, 'error', held_error })
end

-- The job's fields read here, besides the base ones (`load_all` reads them all at once):
-- ready_ms, created_ms, deliveries, max_running, attempt, fence, probe, cancel_requested,
-- finished_ms, retry_at_ms, target, template, args_raw, intrusive, timeout_sec, priority,
-- needs_raw, tgroup, waiting, engagement, stop_reason.

local disabled = redis.call('EXISTS', KEYS[13]) == 1
-- Starts, parks, holds or drops one job read from `lane`'s stream (`who`: its tenant in the
-- lane); true when it was parked.
local function consider(ref, who, lane)
  local j = job_at(prefix, ref, tool)
  load_all(j)
  local h = j.h
  local cap = h.max_running and tonumber(h.max_running) or 0
  local tenant = cap > 0 and tenant_of(ref)
  -- (A gated probe goes to the one job this call may start: the worker asks for one.)
  local decision, gen, probe = 'allow', bgen, gate_probe
  freed[who] = (freed[who] or 0) + 1
  if h.state == S.queued and h.needs_raw == '1' and not raw_capable then
    -- Never started here: on to its raw lane (only raw-capable workers read it).
    decision = 'elsewhere'
    ready(streams_by, lane_of(h.priority, '1'), KEYS[14], ref)
  elseif h.state == S.queued and cap > 0
      and tonumber(redis.call('HGET', running_by, tenant) or '0') >= cap then
    decision = 'capped'
    freed[who] = freed[who] - 1
    local own = in_lane(tenant, h.needs_raw == '1')
    redis.call('LPUSH', KEYS[15] .. own, backlog_entry(lane_of(h.priority, h.needs_raw), ref))
    if h.waiting == WAITING_GROUP and h.tgroup then
      -- It had been let in for its group: the group's turn passes to the next one parked.
      group_release(KEYS[14], gwait, streams_by, prefix, h.tgroup)
    end
  elseif h.state == S.queued and h.tgroup and group_cap > 0
      and tonumber(redis.call('HGET', group_running, h.tgroup) or '0') >= group_cap then
    -- Its target group runs its cap: it waits for the group (its place in the tenant's
    -- share is freed, so the tenant's other jobs come forward).
    decision = 'parked'
    group_park(KEYS[14], gwait, j)
  end
  if decision == 'capped' or decision == 'elsewhere' or decision == 'parked' then
    -- Waits at the front of its tenant's backlog, in its raw lane, or for its group.
  elseif h.state == S.queued and retry_after > 0 then
    decision = 'reject'
  elseif h.state == S.queued and per_job then
    probe = ref .. '#' .. (deliveries_of(h) + 1)
    local wait_ms, tr
    decision, gen, wait_ms, tr = breaker_admit(bk, cfg, now, consumer, probe)
    if tr then transitions[#transitions + 1] = breaker_transition_json(tr) end
    -- Held jobs come back within 5 s at most, so a breaker closed by an operator (or a
    -- probe) lets them run soon; while it stays open they are simply held again.
    if decision == 'reject' then retry_after = math.min(math.max(tonumber(wait_ms), 1), 5000) end
  end
  if h.state == S.queued and decision == 'reject' then
    hold(j, retry_after)
  elseif h.state == S.queued and decision ~= 'capped' and decision ~= 'elsewhere'
      and decision ~= 'parked' then
    if cap > 0 then redis.call('HINCRBY', running_by, tenant, 1) end
    if h.tgroup then redis.call('HINCRBY', group_running, h.tgroup, 1) end
    if h.waiting then redis.call('HDEL', j.key, 'waiting') end
    if h.stop_reason then redis.call('HDEL', j.key, 'stop_reason') end
    if h.finished_ms or h.retry_at_ms then
      redis.call('HDEL', j.key, 'finished_ms', 'duration_ms', 'retry_at_ms')
    end
    local started, wait = start_job(j, consumer, now, gen, probe)
    leases[#leases + 1] = int(now + lease)
    leases[#leases + 1] = ref
    waits[#waits + 1] = int(wait)
    jobs[#jobs + 1] = started
  end
  -- Anything else (cancelled while queued, expired) is simply dropped from the stream.
  return decision == 'parked'
end

for _, lane in ipairs(mine) do
  -- A read whose jobs were parked for their groups is followed by another, so a busy group at
  -- the head of a stream does not hold back the groups behind it.
  while not (disabled or #jobs >= want or retry_after > 0) do
    local refs, whos = read(lane[1], want - #jobs, lane[2])
    local parked_here = 0
    for i, ref in ipairs(refs) do
      if consider(ref, whos[i], lane) then parked_here = parked_here + 1 end
    end
    parked = parked + parked_here
    if parked_here == 0 or parked >= PARK_BUDGET then break end
  end
end

-- While the breaker refuses, hold back a bounded batch of what is queued, so those jobs show
-- as scheduled with their retry time instead of looking stuck.
if retry_after > 0 then
  for _, lane in ipairs(mine) do
    local refs, whos = read(lane[1], 200, lane[2])
    for i, ref in ipairs(refs) do
      local j = job_at(prefix, ref, tool)
      local who = whos[i]
      freed[who] = (freed[who] or 0) + 1
      if load(j, { 'waiting' }) and j.h.state == S.queued then hold(j, retry_after) end
    end
  end
end

-- Once per call: the tenants' shares of the lanes (and their backlogs), leases, counts, samples.
for who, n in pairs(left) do
  local left_share = redis.call('HINCRBY', KEYS[14], share(who), -n)
  if left_share <= 0 then redis.call('HDEL', KEYS[14], share(who)) end
  -- A tenant at its window may have a backlog waiting for the places just freed.
  if (freed[who] or 0) > 0 and (window == 0 or left_share + n >= window) then
    refill(KEYS[14], KEYS[15], streams_by, who, freed[who])
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[4], unpack(leases)) end
flush_counts(KEYS[5])
if #waits > 0 then push_samples(KEYS[7], waits) end

-- Drained: every stream this worker reads was read until it ran short (no read got all it asked
-- for) and nothing was put back
-- on one (a refill, a job moved to its raw lane, a group's next job let in), so claiming again
-- now would find nothing: the worker waits on its streams instead (an entry added meanwhile ends
-- that wait at once: it reads from `0-0`).
local drained = (not disabled and retry_after == 0 and not read_full and #jobs < want
  and parked < PARK_BUDGET and (Q.readied or 0) == 0) and 1 or 0
for _, started in ipairs(handed) do jobs[#jobs + 1] = started end
if gate ~= '' then
  return { jobs, retry_after, transitions, parked, drained }
end
-- The breaker after the call: as read at the start unless a job went through it here (only
-- then can it have changed: a closed or disabled breaker admits without a write).
local after
if per_job then
  after = bk_load(bk)
else
  after = { state = bstate, generation = bgen, consecutive = tonumber(b[3] or '0') }
end
local clean = (after.state == 'closed' and after.consecutive == 0) and 1 or 0
return { jobs, retry_after, transitions, parked, drained, after.state, after.generation, clean,
  #handed }
