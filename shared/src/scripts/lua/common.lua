-- common.lua: helpers prepended to every job script, after the generated prelude that defines
--   S  the job-state strings (from Rust's JobState),
--   K  the key segments of a job inside its tool's keyspace (from keys.rs: K.job, K.ev),
--   Q  settings a script sets from its ARGV before using the helpers (Q.channel, Q.maxev).
-- Defines only locals; reads no KEYS/ARGV.
--
-- The data model these helpers keep (docs/queue.md): a job is one hash. Its event stream is
-- created lazily — by the first progress/output event or by a watcher (SSE) registering — and
-- the hash says whether it exists (`evs` = '1'). `evseq` counts every event the job ever had,
-- stored or not, so positions stay stable. `watch` holds the time (ms) until which a watcher
-- (SSE, long-poll, MCP follow) is registered: only then are changes published.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as the string Redis stores for it. A Lua number passed to redis.call is formatted
-- with '%.17g' (glibc's multi-precision float printing, ~6 % of Redis' time in a drain);
-- '%d' gives the same text for an integer for a fraction of the cost, and the values that repeat
-- within a script run (its clock, TTLs, small counters) are formatted once. Anything that is not
-- an integer is passed on as it is.
local int_text = {}
local function int(n)
  local s = int_text[n]
  if s then return s end
  if type(n) ~= 'number' or n ~= math.floor(n) or n > 9007199254740992 or n < -9007199254740992 then
    return n
  end
  s = string.format('%d', n)
  int_text[n] = s
  return s
end

-- The fields every script that changes a job reads with its own.
-- (`parent` and `hosts` are a big scan's chunk's: see `count`.)
local JOB_BASE = { 'state', 'evseq', 'evs', 'watch', 'watch_end', 'parent', 'hosts' }

-- A job of this tool by its ref `<tenant>/<cid>`; `prefix` is the tool's key prefix.
-- (Its stream key `j.ev` and notify tag `j.tag` are built only when needed: `ev_key`, `tag_of`.)
-- (`h` and `seq` are set by `load`; naming them here sizes the table once.)
local function job_at(prefix, ref, tool)
  return { key = prefix .. K.job .. ref, prefix = prefix, ref = ref, tool = tool, h = false,
    seq = false }
end
local function ev_key(j)
  return j.prefix .. K.ev .. j.ref
end
local function tag_of(j)
  return j.tool .. '/' .. j.ref
end

-- Reads the base fields and `fields` into j.h (absent fields are nil); false when the job is gone.
-- The full field list is built once per list (callers pass a constant table).
local names_of = {}
local function load(j, fields)
  local names = names_of[fields]
  if not names then
    names = {}
    for _, f in ipairs(JOB_BASE) do names[#names + 1] = f end
    for _, f in ipairs(fields) do names[#names + 1] = f end
    names_of[fields] = names
  end
  local v = redis.call('HMGET', j.key, unpack(names))
  local h = {}
  for i = 1, #names do
    if v[i] then h[names[i]] = v[i] end
  end
  j.h = h
  -- Every job has had its creation event; `evseq` is written from the second on.
  j.seq = tonumber(h.evseq or '1')
  return h.state ~= nil
end

-- `load` of every field in one HGETALL, for the hot paths (claim, complete): a job there holds
-- ~7–25 small fields, and an HMGET of 17–25 names scans its listpack once per name (listpack
-- lookups were ~9 % of Redis' time in a drain), creates an argument per name and a reply per
-- name, most of them nil. One pass over the hash costs less. Callers read only the fields they
-- would have named (the others are simply there too).
local function load_all(j)
  local v = redis.call('HGETALL', j.key)
  local h = {}
  for i = 1, #v, 2 do h[v[i]] = v[i + 1] end
  j.h = h
  j.seq = h.evseq and tonumber(h.evseq) or 1
  return h.state ~= nil
end

local function state_event(to, now, extra)
  local e = { state = to, at_ms = now }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return cjson.encode(e)
end

local function is_terminal(state)
  return state == S.succeeded or state == S.failed or state == S.cancelled
end

-- A registered watcher is told of a change while `watch` (ms) has not passed. A job created by a
-- submit that waits for its end (`Prefer: wait`) also has `watch_end` = '1': only its end is
-- published (a claim's `running` would wake that waiter for nothing); any other watcher
-- registering (`watch.lua`) clears it.
local function watched(j, now, final)
  return j.h.watch and tonumber(j.h.watch) >= now and (final or j.h.watch_end ~= '1')
end

-- Takes the next event position; stores the event if the job's stream exists and tells a
-- registered watcher. The caller writes j.seq back with `save`.
local function emit(j, kind, data, now)
  j.seq = j.seq + 1
  if j.h.evs == '1' then
    redis.call('XADD', ev_key(j), 'MAXLEN', '~', Q.maxev, '0-' .. j.seq, 'type', kind, 'data', data)
  end
  if watched(j, now, false) then
    redis.call('PUBLISH', Q.channel, tag_of(j))
  end
end

-- Takes the next event position for a state change (`kind` = 'state' | 'done') and stores it
-- if the job's stream exists (the JSON is only built then); tells no one (`emit_state` does).
local function store_state(j, kind, st, now, extra)
  j.seq = j.seq + 1
  if j.h.evs == '1' then
    redis.call('XADD', ev_key(j), 'MAXLEN', '~', Q.maxev, '0-' .. j.seq, 'type', kind,
      'data', state_event(st, now, extra))
  end
end

-- `emit` of a state change.
local function emit_state(j, kind, st, now, extra)
  store_state(j, kind, st, now, extra)
  if watched(j, now, is_terminal(st)) then
    redis.call('PUBLISH', Q.channel, tag_of(j))
  end
end

-- A watched job's end (`finish`, after the hash is written) is published twice: first
-- `<tag>\n<JSON array: field, value, … of the job's hash>` — the waiter's answer, so it need
-- not read the job again (`Listener`, docs/queue.md "Completion notifications") — unless the
-- hash holds more than END_DOC_MAX bytes (a big result: every API process receives every
-- message), then the plain `<tag>`, which wakes every listener, those of older releases too
-- (they ignore the first).
local END_DOC_MAX = 65536
local function publish_end(j, now)
  if not watched(j, now, true) then return end
  local tag = tag_of(j)
  local v = redis.call('HGETALL', j.key)
  local size = 0
  for i = 1, #v do size = size + #v[i] end
  if size <= END_DOC_MAX then
    redis.call('PUBLISH', Q.channel, tag .. '\n' .. cjson.encode(v))
  end
  redis.call('PUBLISH', Q.channel, tag)
end

-- One HSET for everything a step changes: the given field/value pairs, the event position and
-- the update time — unless the pairs carry the step's time already (`stamped`: a start's
-- `started_ms`, an end's `finished_ms`). A job's last change is therefore the latest of
-- `updated_ms`, `started_ms` and `finished_ms` (`changed_at`, which `seed` uses): the two hot
-- steps write one field fewer, and each field a job's hash holds costs Redis ~4,000
-- instructions over the job's life (BENCHMARKS.md "Engine v8").
local function save(j, now, pairs_, stamped)
  for i = 2, #pairs_, 2 do
    local v = pairs_[i]
    if type(v) == 'number' then pairs_[i] = int_text[v] or int(v) end
  end
  if stamped then
    redis.call('HSET', j.key, 'evseq', int(j.seq), unpack(pairs_))
  else
    redis.call('HSET', j.key, 'evseq', int(j.seq), 'updated_ms', int(now), unpack(pairs_))
  end
end
local function changed_at(h)
  return math.max(tonumber(h.updated_ms or '0'), tonumber(h.started_ms or '0'),
    tonumber(h.finished_ms or '0'), tonumber(h.created_ms or '0'))
end

-- How often a job was handed to a worker: `deliveries` when the hash holds it, else its
-- `attempt` (the two differ only after a hand-back or a deferral, which write `deliveries`;
-- a start writes it only when the hash holds it already).
local function deliveries_of(h)
  return tonumber(h.deliveries or h.attempt or '0')
end

-- Creates the job's event stream if it does not exist yet, seeded with what a watcher missed,
-- synthesized from the hash: the creation state at position 1 and the current state at the
-- current position (for a finished job: its final `state` and `done`). Needs j.h fields
-- created_ms, updated_ms, started_ms, finished_ms, worker, retry_at_ms (load them with
-- SEED_FIELDS).
local SEED_FIELDS = { 'created_ms', 'updated_ms', 'started_ms', 'finished_ms', 'worker',
  'retry_at_ms', 'attempt', 'approval' }
local function seed(j)
  if j.h.evs == '1' then return end
  local st = j.h.state
  local at = changed_at(j.h)
  local created = tonumber(j.h.created_ms or '0')
  local function add(pos, kind, data)
    redis.call('XADD', ev_key(j), '0-' .. pos, 'type', kind, 'data', data)
  end
  -- A job held for a person's approval (DESIGN §14) was created awaiting it.
  local first = S.queued
  if j.h.approval then first = S.awaiting_approval end
  if j.seq <= 1 then first = st end
  local extra = { synthesized = true }
  if j.seq >= 1 then add(1, 'state', state_event(first, created, extra)) end
  if is_terminal(st) and j.seq >= 3 then
    add(j.seq - 1, 'state', state_event(st, at, extra))
    add(j.seq, 'done', state_event(st, at, extra))
  elseif j.seq >= 2 then
    local e = { synthesized = true }
    if st == S.running then e.worker = j.h.worker end
    if st == S.scheduled then e.retry_at_ms = tonumber(j.h.retry_at_ms) end
    add(j.seq, 'state', state_event(st, at, e))
  end
  local ttl = redis.call('PTTL', j.key)
  if ttl > 0 then redis.call('PEXPIRE', ev_key(j), ttl) end
  redis.call('HSET', j.key, 'evs', '1')
  j.h.evs = '1'
end

-- The tenant of a job ref `<tenant>/<cid>`.
local function tenant_of(ref)
  return string.match(ref, '^([^/]*)/') or ''
end

-- Per-state count changes, applied once per script run (`flush_counts`). A chunk of a big scan
-- (`parent` set, DESIGN §12) is counted in its parent's tally in this partition as well
-- (`K.tally`: its chunks by state, and `hosts_done`, the hosts of its finished chunks), so a
-- parent is read in one HGETALL per partition whatever its number of chunks. `j` is the job
-- that moves (loaded with the base fields).
local deltas, tallies = {}, {}
local function count(from, to, j)
  if from then deltas[from] = (deltas[from] or 0) - 1 end
  deltas[to] = (deltas[to] or 0) + 1
  if not (j and j.h and j.h.parent) then return end
  local key = j.prefix .. K.tally .. tenant_of(j.ref) .. '/' .. j.h.parent
  local t = tallies[key]
  if not t then
    t = { d = {}, job = j.key }
    tallies[key] = t
  end
  if from then t.d[from] = (t.d[from] or 0) - 1 end
  t.d[to] = (t.d[to] or 0) + 1
  local hosts = tonumber(j.h.hosts or '0') or 0
  local was_done = from and is_terminal(from)
  if is_terminal(to) and not was_done then
    t.d.hosts_done = (t.d.hosts_done or 0) + hosts
  elseif was_done and not is_terminal(to) then
    t.d.hosts_done = (t.d.hosts_done or 0) - hosts
  end
end
-- A tally lives at least as long as the chunk that last changed it.
local function keep_tally(key, job_key)
  local ttl = redis.call('PTTL', job_key)
  if ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local function flush_counts(countskey)
  for st, d in pairs(deltas) do
    if d ~= 0 then redis.call('HINCRBY', countskey, st, d) end
  end
  deltas = {}
  for key, t in pairs(tallies) do
    for f, d in pairs(t.d) do
      if d ~= 0 then redis.call('HINCRBY', key, f, d) end
    end
    keep_tally(key, t.job)
  end
  tallies = {}
end

-- Starts job `j` (loaded, `queued`) on `worker`: `running`, its attempt and deliveries counted,
-- a fresh fencing token, the `running` event, one HSET. Its queue wait is not stored: it is
-- `started_ms` − (`ready_ms` or `created_ms`), which the hash keeps (`JobDocument::from_hash`).
-- `gen` and `probe` are the breaker generation and probe it was admitted under (0, ''). Used by
-- claim.lua and by enqueue.lua's direct start. Returns the job as its worker gets it (an entry
-- of claim.lua's reply, or of the worker's inbox) and its queue wait (ms); the caller adds the
-- lease and the wait sample.
local function start_job(j, worker, now, gen, probe)
  local h = j.h
  -- (`tonumber` of a string costs a `strtod`: absent fields are not converted.)
  local attempt = h.attempt and tonumber(h.attempt) + 1 or 1
  local fence = h.fence and tonumber(h.fence) + 1 or 1
  -- (Never below 0: after a failover the new primary's clock may be behind the stamps.)
  local wait = math.max(0, now - tonumber(h.ready_ms or h.created_ms or now))
  local set = { 'state', S.running, 'attempt', attempt, 'fence', fence, 'started_ms', now,
    'worker', worker }
  if h.deliveries then set[#set + 1] = 'deliveries'; set[#set + 1] = deliveries_of(h) + 1 end
  if gen ~= 0 then set[#set + 1] = 'bgen'; set[#set + 1] = gen end
  if probe ~= '' or h.probe then set[#set + 1] = 'probe'; set[#set + 1] = probe end
  if h.cancel_requested == '1' then set[#set + 1] = 'cancel_requested'; set[#set + 1] = '0' end
  count(S.queued, S.running, j)
  if h.evs == '1' or h.watch then
    emit_state(j, 'state', S.running, now, { worker = worker })
  else
    -- (No stream and no watcher: only the position moves. Each helper call costs Redis ~1,000
    -- instructions; the hot steps make none they need not.)
    j.seq = j.seq + 1
  end
  save(j, now, set, true)
  -- (The tuple's last seven fields are left out when the job has none of them: each element
  -- of a claim's reply costs Redis ~1,000 instructions. `claimed_job` in reply.rs.)
  if not (h.template or h.args_raw or h.intrusive or h.timeout_sec or h.needs_raw or h.parent
      or h.engagement) then
    return { j.ref, fence, attempt, wait, h.target or '' }, wait
  end
  return { j.ref, fence, attempt, wait, h.target or '', h.template or '',
    h.args_raw or '', h.intrusive or '0', h.timeout_sec or D.timeout_sec, h.needs_raw or '0',
    h.parent or '', h.engagement or '' }, wait
end

-- A worker's standing offer to take a job directly (docs/queue.md "Direct start"): the
-- partition's `offer` key holds the worker's ID and its counts hash `offer_until` the time (ms)
-- the offer lapses, so an enqueue learns whether there is one from the counts it reads anyway.
-- A job started on it goes to the worker's inbox stream (`K.inbox` + worker ID), as one entry
-- `job` = start_job's tuple as JSON.
local OFFER_UNTIL = 'offer_until'

-- A tool's sample lists (queue waits, run times) keep the newest SAMPLES_KEPT, which is what the
-- stats read (`LRANGE 0 999`, stats/mod.rs); a list is cut back to them only once it holds
-- SAMPLES_SLACK more, so a call that adds samples costs one command, not two, almost always.
local SAMPLES_KEPT, SAMPLES_SLACK = 1000, 100
local function push_samples(key, values)
  if redis.call('LPUSH', key, unpack(values)) > SAMPLES_KEPT + SAMPLES_SLACK then
    redis.call('LTRIM', key, 0, SAMPLES_KEPT - 1)
  end
end

-- Lanes (docs/queue.md): a job that needs raw sockets (`needs_raw` = '1') waits in the raw
-- stream of its priority (`q:<priority>:raw`), which only raw-capable workers read. `streams`
-- maps a lane — `<priority>` or `<priority>:raw` — to its stream key (built by `lanes`).
-- A tenant's fair-share count and backlog are kept per lane, under the tenant's name in the
-- lane: `<tenant>` in the plain lane, `raw:<tenant>` in the raw one (a tenant id holds no ':'),
-- so jobs waiting for a raw-capable worker never hold back the tenant's plain jobs.
local function lanes(plain, raw)
  return { high = plain[1], normal = plain[2], low = plain[3],
    ['high:raw'] = raw[1], ['normal:raw'] = raw[2], ['low:raw'] = raw[3] }
end
local function lane_of(priority, needs_raw)
  if needs_raw == '1' then return (priority or 'normal') .. ':raw' end
  return priority or 'normal'
end
local function is_raw_lane(lane)
  return string.sub(lane, -4) == ':raw'
end
local function stream_of(streams, lane)
  if is_raw_lane(lane) then return streams[lane] or streams['normal:raw'] end
  return streams[lane] or streams.normal
end
local function in_lane(tenant, raw)
  if raw then return 'raw:' .. tenant end
  return tenant
end

-- The fair-share counter of a tenant in a lane (see the fair-share window in enqueue.lua and
-- claim.lua): its entries in that lane's ready streams.
local function share(who)
  return 'share:' .. who
end

-- Puts a job on the ready stream of its lane and counts it in its tenant's share of the lane.
-- (`Q.readied` counts the entries a script run put on ready streams: claim.lua tells the worker
-- whether its streams may hold more.)
local function ready(streams, lane, fairkey, ref)
  redis.call('XADD', stream_of(streams, lane), '*', 'ref', ref)
  Q.readied = (Q.readied or 0) + 1
  redis.call('HINCRBY', fairkey, share(in_lane(tenant_of(ref), is_raw_lane(lane))), 1)
end

-- Ends a job for good: finish time (and run time when it ran), the state change, a dead letter
-- for a failure, the final `state` and `done` events, the retention TTLs and, for a watched job,
-- its end with its document (`publish_end`). `set` holds the caller's own field/value pairs for
-- the same HSET. The run time is `finished_ms` − `started_ms` (`JobDocument::from_hash`), so
-- `duration_ms` is written only when that is not it: '' for an end that did not come from a run
-- of a job whose hash holds an earlier attempt's start (j.h.started_ms must be loaded).
-- f = { j, from, to, now, started (nil if it never ran, else the hash's `started_ms` or now),
--   dead, result_ttl, dead_ttl, set }
local function finish(f)
  local j, set = f.j, f.set or {}
  set[#set + 1] = 'finished_ms'
  set[#set + 1] = f.now
  if f.started and not j.h.started_ms then
    set[#set + 1] = 'duration_ms'
    set[#set + 1] = f.now - f.started
  elseif j.h.started_ms and not f.started then
    set[#set + 1] = 'duration_ms'
    set[#set + 1] = ''
  end
  set[#set + 1] = 'state'
  set[#set + 1] = f.to
  count(f.from, f.to, f.j)
  local ttl = f.result_ttl
  if f.to == S.failed then
    redis.call('ZADD', f.dead, int(f.now), j.ref)
    ttl = f.dead_ttl
  end
  if j.h.evs == '1' then
    store_state(j, 'state', f.to, f.now)
    store_state(j, 'done', f.to, f.now)
  else
    j.seq = j.seq + 2
  end
  save(j, f.now, set, true)
  redis.call('PEXPIRE', j.key, int(ttl))
  if j.h.evs == '1' then redis.call('PEXPIRE', ev_key(j), int(ttl)) end
  if j.h.watch then publish_end(j, f.now) end
end

-- A group's waiting list holds `<lane>|<ref>` items (`normal|blue/scan-1`,
-- `high:raw|blue/syn-2`), so moving one needs no read of the job.
local function backlog_item(lane, ref)
  return (lane or 'normal') .. '|' .. ref
end

-- A tenant's backlog (one list per tenant and lane) holds each job as `[<lane>|]<cid>`: the
-- tenant is the list's, and the lane is left out when it is `normal` (`scan-1`, `high|scan-2`,
-- `normal:raw|syn-3`); a backlogged job's bytes are paid for as long as it waits. An ID that is
-- a lowercase UUID (the API makes them) is kept as its 16 bytes behind a `#`, which no ID or
-- lane holds: 17 bytes instead of 36 (packed by the submitter, `CorrelationId::packed`: Lua
-- would pay ~3 µs a job for it). Items written by older releases (`<lane>|<tenant>/<cid>`)
-- read the same: a correlation ID holds no `/`.
-- (Six `%x` of 32- and 16-bit groups: one `%02x` per byte cost 16 `sprintf`s, ~18,000 Redis
-- instructions a job, against ~10,000; BENCHMARKS.md "Engine v8".)
local function unpack_cid(item)
  local a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p = string.byte(item, 2, 17)
  return string.format('%08x-%04x-%04x-%04x-%04x%08x', ((a * 256 + b) * 256 + c) * 256 + d,
    e * 256 + f, g * 256 + h, i * 256 + j, k * 256 + l, ((m * 256 + n) * 256 + o) * 256 + p)
end
-- `cid` is the ID as the item holds it: packed, or the ref's own.
local function backlog_entry(lane, ref, cid)
  cid = cid or string.match(ref, '^[^/]*/(.*)$') or ref
  if lane == nil or lane == 'normal' then return cid end
  return lane .. '|' .. cid
end
-- A backlog item's lane and the ID as it holds it; the lane ends at the first `|` (before any
-- packed bytes, which may hold one). `backlog_item_ref`: its ref as a job of `tenant`, the
-- tenant of a tenant in a lane (`tenant_in`; a claim finds it once per refill batch).
local function backlog_split(item)
  if string.sub(item, 1, 1) ~= '#' then
    local bar = string.find(item, '|', 1, true)
    if bar then return string.sub(item, 1, bar - 1), string.sub(item, bar + 1) end
  end
  return 'normal', item
end
local function tenant_in(who)
  return string.match(who, '^raw:(.*)$') or who
end
local HASH_BYTE = 35 -- '#'
local function backlog_item_ref(item, tenant)
  if string.byte(item, 1) == HASH_BYTE then return tenant .. '/' .. unpack_cid(item) end
  local _, rest = backlog_split(item)
  if string.byte(rest, 1) == HASH_BYTE then return tenant .. '/' .. unpack_cid(rest) end
  if string.find(rest, '/', 1, true) then return rest end
  return tenant .. '/' .. rest
end

-- Moves up to `n` of the backlogged jobs of `who` (a tenant in a lane, see `in_lane`) onto
-- their ready streams: one LPOP, then per lane **one** stream entry for them all, a batch
-- `b <who>` followed by `i <item>` per job in backlog order (claim.lua reads it), and one share
-- update. A job cancelled meanwhile is dropped by the claim like any other. `streams` maps
-- lane → stream key (`lanes`). (One entry per job cost an XADD and its read per job: Engine v5.)
local REFILL_BATCH = 1000
local function refill(fairkey, backlog_prefix, streams, who, n)
  local items = redis.call('LPOP', backlog_prefix .. who, n)
  if not items then return end
  local by_lane, order = {}, {}
  for _, item in ipairs(items) do
    local lane = backlog_split(item)
    local e = by_lane[lane]
    if not e then
      e = { 'b', who }
      by_lane[lane] = e
      order[#order + 1] = lane
    elseif #e >= 2 + 2 * REFILL_BATCH then
      redis.call('XADD', stream_of(streams, lane), '*', unpack(e))
      e = { 'b', who }
      by_lane[lane] = e
    end
    e[#e + 1] = 'i'
    e[#e + 1] = item
  end
  for _, lane in ipairs(order) do
    redis.call('XADD', stream_of(streams, lane), '*', unpack(by_lane[lane]))
  end
  Q.readied = (Q.readied or 0) + #items
  redis.call('HINCRBY', fairkey, share(who), #items)
end

-- A running job of a capped tenant stopped: its next waiting job, in either lane, is let in
-- (the claim pushes back whatever is still over the cap).
local function refill_lanes(fairkey, backlog_prefix, streams, tenant, n)
  refill(fairkey, backlog_prefix, streams, tenant, n)
  refill(fairkey, backlog_prefix, streams, in_lane(tenant, true), n)
end

-- A job of `tenant` stops running on this tool (its per-tenant running count goes down).
local function left_running(running_by, tenant)
  if redis.call('HINCRBY', running_by, tenant, -1) <= 0 then
    redis.call('HDEL', running_by, tenant)
  end
end

-- ── Politeness per target network (docs/queue.md "Politeness per target network") ──────────
-- A job admitted while its tool had a group cap carries `tgroup` (its target's group). While it
-- runs it counts in its partition's `group_running` hash (claim.lua counts up; complete.lua and
-- reap.lua count down, in the scripts that move the job). A claim that reads a job whose group
-- is at the cap parks it in `gwait:<group>` (`<lane>|<ref>` items, as in the backlogs), marks
-- its hash `waiting` = 'target_group' and reads on, so other groups run. Each job of the group
-- that stops running lets one parked job back onto its ready stream. `group_waiting` in the
-- counts hash is the number of parked items (for the stats).
local WAITING_GROUP = 'target_group'
-- A scheduled job waiting for its engagement's window (`waiting_for: "window"`, DESIGN §14):
-- set at admission (enqueue.lua) or by a worker's `defer` (complete.lua); a claim clears it.
local WAITING_WINDOW = 'window'
local GROUP_WAITING = 'group_waiting'

-- Parks job `j` (fields loaded: priority, needs_raw, tgroup, waiting) for its group. A job that
-- had already waited (released, then beaten to the place) goes back to the front.
local function group_park(fairkey, gwait_prefix, j)
  local item = backlog_item(lane_of(j.h.priority, j.h.needs_raw), j.ref)
  if j.h.waiting == WAITING_GROUP then
    redis.call('LPUSH', gwait_prefix .. j.h.tgroup, item)
  else
    redis.call('RPUSH', gwait_prefix .. j.h.tgroup, item)
    redis.call('HSET', j.key, 'waiting', WAITING_GROUP)
  end
  redis.call('HINCRBY', fairkey, GROUP_WAITING, 1)
end

-- Lets the next parked job of `group` back onto its ready stream (skipping jobs cancelled or
-- gone meanwhile, which are dropped from the list). `prefix` is the tool's key prefix.
local function group_release(fairkey, gwait_prefix, streams, prefix, group)
  local list = gwait_prefix .. group
  for _ = 1, 100 do
    local item = redis.call('LPOP', list)
    if not item then return end
    redis.call('HINCRBY', fairkey, GROUP_WAITING, -1)
    local lane, ref = string.match(item, '^([%a:]+)|(.*)$')
    if ref and redis.call('HGET', prefix .. K.job .. ref, 'state') == S.queued then
      ready(streams, lane, fairkey, ref)
      return
    end
  end
end

-- A job of `group` stopped running: the group's count goes down and its next parked job is let in.
local function group_stopped(running, fairkey, gwait_prefix, streams, prefix, group)
  if redis.call('HINCRBY', running, group, -1) <= 0 then
    redis.call('HDEL', running, group)
  end
  group_release(fairkey, gwait_prefix, streams, prefix, group)
end
