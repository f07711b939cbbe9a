-- enqueue.lua: create a job atomically (one job hash + a ready-stream entry or a schedule), with
-- correlation-ID idempotency and the queue-length limit. No event stream is created: nobody can
-- be watching a job that does not exist yet (its creation is event 1; `evseq` is absent = 1).
-- KEYS[1] job hash  KEYS[2] the priority's stream  KEYS[3] scheduled zset  KEYS[4] counts hash
-- (jobs per state, and each tenant's entries in the ready streams as `share:<tenant>`)
-- KEYS[5] backlog key prefix (+ tenant = that tenant's backlog list)
-- ARGV[1] ref  ARGV[2] request hash  ARGV[3] max queue length  ARGV[4] job ttl ms (of a held job)
-- ARGV[5] delay ms  ARGV[6] fair-share window: a tenant with this many entries in the ready
-- streams has further jobs wait in its own backlog list, moved to the stream as its entries are
-- claimed, so one tenant's flood cannot starve another (0 = no window)
-- ARGV[7] the job's lane: its priority, with `:raw` appended when it needs raw sockets (KEYS[2]
-- is then that lane's stream; shares and backlogs are per lane, see `lanes` in common.lua)
-- ARGV[8] 'hold': the job waits for a person's approval (DESIGN §14): `awaiting_approval`, on no
-- stream and in no schedule, outside the queue length (its delay is kept as `retry_at_ms` for
-- decide.lua); '' otherwise
-- ARGV[9] the caller's clock (ms; '0' = none): the creation time of a job that goes to its
-- tenant's backlog (the same clock as its listing score), so that path needs no TIME call
-- ARGV[10] '1' when the caller has just claimed the correlation ID in the tenant's listing
-- (`ZADD NX` added it, docs/queue.md "The listing is the index"): no job lives under it, so the
-- idempotency read is skipped; 'list:<score>' when this script is to claim it (KEYS[6] the
-- tenant's listing; only where one node holds every key, not a cluster): added, it goes on as
-- for '1' (and takes the member back if the queue is full); there already, it writes nothing and
-- returns {'listed'} (the caller then takes the two-step path); '' otherwise (a chunk, a listed
-- ID: the job hash is read)
-- ARGV[11] the job's correlation ID packed for its backlog item ('#' + the 16 bytes of a
-- lowercase UUID, `CorrelationId::packed`), or '' (the item holds the ID as it is)
-- ARGV[12] the lease (ms) of a direct start, or '' when the job may not start directly (the
-- caller decides: docs/queue.md "Direct start"); then ARGV[13] max events, ARGV[14] notify
-- channel, ARGV[15] tool name, and KEYS[7] leases zset, KEYS[8] wait-samples list, KEYS[9] the
-- tool's breaker state hash, KEYS[10] its disabled flag, KEYS[11] the partition's offer key
-- (only with KEYS[6]: where one node holds every key)
-- ARGV[16..] field, value pairs of the job (target, args, …; a chunk's `parent` and `hosts`)
-- Returns {'created', state, created_ms} | {'exists', state} | {'conflict', state} | {'full', depth}
-- | {'listed'}

local job, stream, sched, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, hash = ARGV[1], ARGV[2]
local max_len, ttl, delay = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local window = tonumber(ARGV[6])

local list_score = string.match(ARGV[10], '^list:(%d+)$')
local member
if list_score then
  member = string.match(ref, '^[^/]*/(.*)$')
  if redis.call('ZADD', KEYS[6], 'NX', list_score, member) == 0 then
    return { 'listed' }
  end
elseif ARGV[10] ~= '1' then
  local existing = redis.call('HMGET', job, 'req_hash', 'state')
  if existing[2] then
    if existing[1] == hash then
      return { 'exists', existing[2] }
    end
    return { 'conflict', existing[2] }
  end
end

local lane = ARGV[7]
local hold = ARGV[8] == 'hold'
local who = in_lane(tenant_of(ref), is_raw_lane(lane))
local c = redis.call('HMGET', counts, S.queued, S.scheduled, share(who), OFFER_UNTIL)
local queued, scheduled = tonumber(c[1] or '0'), tonumber(c[2] or '0')
if queued + scheduled >= max_len and not hold then
  if member then redis.call('ZREM', KEYS[6], member) end
  return { 'full', queued + scheduled }
end

-- The direct start (docs/queue.md "Direct start"): a job that would go onto its ready stream is
-- started at once on the worker whose offer stands here (offer.lua), when the caller allowed it
-- (ARGV[12]), the offer has not lapsed, the tool is not disabled and its breaker admits without
-- a probe (closed, or disabled). The offer is taken (one job per offer); the job is created
-- `queued` as any other (its answer and its first event say so) and started as claim.lua
-- starts one (`start_job`), and its worker reads it from its inbox.
local now
local direct, offer_worker, offer_gen
local function offer_taker()
  now = now_ms()
  if tonumber(c[4]) < now then
    -- Lapsed: its worker stopped waiting without taking it back (it died, or froze).
    redis.call('DEL', KEYS[11])
    redis.call('HDEL', counts, OFFER_UNTIL)
    return false
  end
  if redis.call('EXISTS', KEYS[10]) == 1 then return false end
  local b = redis.call('HMGET', KEYS[9], 'state', 'generation')
  local breaker = b[1] or 'closed'
  if breaker ~= 'closed' and breaker ~= 'disabled' then return false end
  offer_worker = redis.call('GET', KEYS[11])
  if not offer_worker then return false end
  offer_gen = tonumber(b[2] or '0')
  redis.call('DEL', KEYS[11])
  redis.call('HDEL', counts, OFFER_UNTIL)
  return true
end
local function start_on_offer(fields)
  Q.maxev, Q.channel = tonumber(ARGV[13]), ARGV[14]
  local prefix = string.sub(job, 1, #job - #K.job - #ref)
  local j = job_at(prefix, ref, ARGV[15])
  local h = {}
  for i = 1, #fields - 1, 2 do h[fields[i]] = fields[i + 1] end
  j.h, j.seq = h, 1
  count(nil, S.queued, j)
  local started, wait = start_job(j, offer_worker, now, offer_gen, '')
  flush_counts(counts)
  redis.call('ZADD', KEYS[7], int(now + tonumber(ARGV[12])), ref)
  push_samples(KEYS[8], { int(wait) })
  local inbox = prefix .. K.inbox .. offer_worker
  redis.call('XADD', inbox, '*', 'job', cjson.encode(started))
  redis.call('PEXPIRE', inbox, ARGV[12])
end

-- Redis' clock: one TIME, except for a job that goes straight onto its stream, whose entry ID
-- (`<ms>-<seq>`, stamped by XADD '*' from the same clock) gives it for free, and a job that
-- waits in its tenant's backlog, stamped with the caller's clock when it passed one (a direct
-- start reads it: `offer_taker`).
local state, when = S.queued, {}
if hold then
  now = now_ms()
  state = S.awaiting_approval
  if delay > 0 then when = { 'retry_at_ms', int(now + delay) } end
  redis.call('HINCRBY', counts, S.awaiting_approval, 1)
elseif delay > 0 then
  now = now_ms()
  state, when = S.scheduled, { 'retry_at_ms', int(now + delay) }
  redis.call('ZADD', sched, now + delay, ref)
  redis.call('HSET', counts, S.scheduled, scheduled + 1)
else
  -- Ready since its creation (claim.lua reads `ready_ms`, else `created_ms`).
  local in_stream = tonumber(c[3] or '0')
  if window > 0 and in_stream >= window then
    -- Over the tenant's share of the stream: wait in its backlog instead.
    now = tonumber(ARGV[9]) or 0
    if now <= 0 then now = now_ms() end
    redis.call('RPUSH', KEYS[5] .. who, backlog_entry(lane, ref, ARGV[11] ~= '' and ARGV[11] or nil))
    redis.call('HSET', counts, S.queued, int(queued + 1))
  else
    direct = ARGV[12] ~= '' and c[4] and offer_taker()
    if not direct then
      local id = redis.call('XADD', stream, '*', 'ref', ref)
      now = tonumber(string.match(id, '^(%d+)-'))
      redis.call('HSET', counts, S.queued, int(queued + 1), share(who), int(in_stream + 1))
    end
  end
end
local fields = { 'state', state, 'req_hash', hash, 'created_ms', int(now) }
for _, v in ipairs(when) do fields[#fields + 1] = v end
for i = 16, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', job, unpack(fields))
if direct then start_on_offer(fields) end
-- A queued or scheduled job does not expire (the queue length bounds them; a queue must not drop
-- what it accepted): its TTLs are set when it ends. A job held for a person's decision lives a
-- job's TTL at most.
if hold then redis.call('PEXPIRE', job, ARGV[4]) end
-- A chunk of a big scan (a `parent` field) is counted in its parent's tally (see `count`).
for i = 16, #ARGV - 1, 2 do
  if ARGV[i] == 'parent' then
    local prefix = string.sub(job, 1, #job - #K.job - #ref)
    local tally = prefix .. K.tally .. tenant_of(ref) .. '/' .. ARGV[i + 1]
    redis.call('HINCRBY', tally, state, 1)
    keep_tally(tally, job)
    break
  end
end
return { 'created', state, now }
