'use strict';
// BullMQ's equivalent of scanq-bench --fanout: a flow (FlowProducer) is a parent job with N
// children, as a scanq big scan is a parent with N chunks. ../shared/peers/bullmq has no flow
// scenario (and is read-only for us), so this script measures one the way scanq-bench --fanout
// does, with the bullmq that run.sh installed (BULLMQ_DIR) against a throwaway Redis:
//   1. submit: P flows of 256 children (queue `bench`, bench.js's payload), each one awaited
//      FlowProducer.add, timed; Redis commands per flow from INFO commandstats;
//   2. read: flows of 4, 64 and 256 children and one plain job; the parent read R times with
//      getJob + getState + getDependenciesCount (state and how many children are left, what
//      scanq's GET of a parent answers); latency and Redis commands per read;
//   3. memory: used_memory without client buffers (mem_clients_normal), before and after N
//      plain jobs (addBulk in chunks of 1000), no worker; the same for one flow of N children;
//   4. drain: one worker process (concurrency BENCH_FLOW_C, 100) drains the N plain jobs; then
//      the N children of the flow (the same process also runs the parent once its children are
//      done); rate from the first completion to the N-th, as bench.js measures its drains.
// Prints one JSON line. The Redis at REDIS_PORT (127.0.0.1) is flushed.
//   BULLMQ_DIR=~/.cache/scanq-peers/bullmq REDIS_PORT=6390 node scripts/bullmq-flow.js
const path = require('node:path');
const { spawn } = require('node:child_process');
const { createRequire } = require('node:module');

const DIR = process.env.BULLMQ_DIR;
const PORT = parseInt(process.env.REDIS_PORT || '0', 10);
if (!DIR || !PORT) { console.error('BULLMQ_DIR and REDIS_PORT must be set'); process.exit(2); }
const req = createRequire(path.join(DIR, 'package.json'));
const { Queue, Worker, FlowProducer } = req('bullmq');
const IORedis = req('ioredis');
const VERSION = req('bullmq/package.json').version;

const N = parseInt(process.env.BENCH_FLOW_N || '50000', 10);
const SUBMITS = parseInt(process.env.BENCH_FLOW_SUBMITS || '100', 10);
const GETS = parseInt(process.env.BENCH_FLOW_GETS || '1000', 10);
const CONC = parseInt(process.env.BENCH_FLOW_C || '100', 10);
const CAP_S = 120;
const QNAME = 'bench';
const PARENT = 'bench-parent';
// Keep in step with PAYLOAD in ../shared/peers/bullmq/bench.js.
const PAYLOAD = { tool: 'noop', target: '127.0.0.1', args: '-sV', seq: 0, pad: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' };
const connection = { host: '127.0.0.1', port: PORT, maxRetriesPerRequest: null };

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1];

function flow(n) {
  const children = [];
  for (let i = 0; i < n; i++) children.push({ name: 'noop', queueName: QNAME, data: Object.assign({}, PAYLOAD, { seq: i }) });
  return { name: 'parent', queueName: PARENT, data: { target: '127.0.0.0/16' }, children };
}

async function commands(r) {
  const info = await r.info('commandstats');
  let calls = 0;
  const by = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info') continue;
    by[m[1]] = parseInt(m[2], 10);
    calls += by[m[1]];
  }
  return { calls, by };
}

function delta(a, b, per) {
  const by = {};
  for (const [k, v] of Object.entries(b.by)) {
    const d = v - (a.by[k] || 0);
    if (d > 0) by[k] = d / per;
  }
  return { per: (b.calls - a.calls) / per, by };
}

async function dataMemory(r) {
  const info = await r.info('memory');
  const field = (k) => parseInt((info.match(new RegExp(`^${k}:(\\d+)`, 'm')) || [])[1] || '0', 10);
  return field('used_memory') - field('mem_clients_normal');
}

function spawnWorker() {
  return spawn(process.execPath, [__filename, 'worker'], { stdio: ['ignore', 'ignore', 'inherit'], env: process.env });
}

async function stop(p) {
  if (p.exitCode === null) p.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  while (p.exitCode === null && p.signalCode === null && Date.now() < deadline) await sleep(20);
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

// Completions of `queue` between the first and the N-th; then, when `parentId` is given, until
// that parent is completed too.
async function drain(r, parentQueue, parentId) {
  const key = `bull:${QNAME}:completed`;
  const w = spawnWorker();
  const tStart = now();
  let t0 = null, c = 0;
  try {
    while (true) {
      c = await r.zcard(key);
      const t = now();
      if (t0 === null && c > 0) t0 = t;
      if (c >= N) break;
      if (t - tStart > CAP_S) throw new Error(`drain capped at ${c} of ${N}`);
      await sleep(2);
    }
    const t1 = now();
    let parentDone = null;
    if (parentId) {
      while ((await parentQueue.getJobState(parentId)) !== 'completed') {
        if (now() - tStart > CAP_S) throw new Error('the parent did not complete');
        await sleep(2);
      }
      parentDone = now() - t0;
    }
    return { rate: N / (t1 - t0), parentDone };
  } finally {
    await stop(w);
  }
}

async function main() {
  const r = new IORedis(connection);
  const q = new Queue(QNAME, { connection });
  const pq = new Queue(PARENT, { connection });
  const fp = new FlowProducer({ connection });
  await q.waitUntilReady();
  await pq.waitUntilReady();
  await r.flushall();
  for (let i = 0; i < 4; i++) await fp.add(flow(256)); // warm-up: scripts loaded

  // 1. submit of a flow of 256 children
  const lat = [];
  let a = await commands(r);
  for (let i = 0; i < SUBMITS; i++) {
    const t = now();
    await fp.add(flow(256));
    lat.push((now() - t) * 1000);
  }
  const submitCmds = delta(a, await commands(r), SUBMITS);
  lat.sort((x, y) => x - y);
  await r.flushall();

  // 2. reads
  const reads = [];
  const plain = await q.add('noop', PAYLOAD);
  const targets = [[0, q, plain.id]];
  for (const n of [4, 64, 256]) {
    const f = await fp.add(flow(n));
    targets.push([n, pq, f.job.id]);
  }
  for (const [n, queue, id] of targets) {
    const s = [];
    a = await commands(r);
    for (let i = 0; i < GETS; i++) {
      const t = now();
      const job = await queue.getJob(id);
      await job.getState();
      if (n > 0) {
        const left = await job.getDependenciesCount();
        if (left.unprocessed !== n) throw new Error(`flow of ${n}: ${JSON.stringify(left)}`);
      }
      s.push((now() - t) * 1000);
    }
    const d = delta(a, await commands(r), GETS);
    s.sort((x, y) => x - y);
    reads.push({ children: n, p50_ms: pct(s, 50), p99_ms: pct(s, 99), commands_per_read: d.per, by_command: d.by });
  }
  await r.flushall();

  // 3. + 4. plain jobs: memory, drain
  let m0 = await dataMemory(r);
  for (let i = 0; i < N; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) jobs.push({ name: 'noop', data: Object.assign({}, PAYLOAD, { seq: j }) });
    await q.addBulk(jobs);
  }
  const plainBytes = (await dataMemory(r) - m0) / N;
  const plainDrain = await drain(r);
  await r.flushall();

  // one flow of N children: memory, drain
  m0 = await dataMemory(r);
  const t = now();
  const big = await fp.add(flow(N));
  const bigSubmitMs = (now() - t) * 1000;
  const childBytes = (await dataMemory(r) - m0) / N;
  const flowDrain = await drain(r, pq, big.job.id);
  await r.flushall();

  process.stdout.write(JSON.stringify({
    peer: 'bullmq', version: VERSION, metric: 'flow', n: N, submits: SUBMITS, gets: GETS, worker_concurrency: CONC,
    submit_256_p50_ms: pct(lat, 50), submit_256_p99_ms: pct(lat, 99), submit_256_max_ms: lat[lat.length - 1],
    submit_256_commands: submitCmds.per, reads,
    plain_bytes_per_job: plainBytes, child_bytes_per_child: childBytes,
    plain_drain_jobs_per_sec: plainDrain.rate, child_drain_jobs_per_sec: flowDrain.rate,
    drain_ratio: flowDrain.rate / plainDrain.rate, parent_done_secs: flowDrain.parentDone, big_submit_ms: bigSubmitMs,
  }) + '\n');
  await fp.close();
  await q.close();
  await pq.close();
  await r.quit();
}

async function worker() {
  const workers = [
    new Worker(QNAME, async () => null, { connection, concurrency: CONC }),
    new Worker(PARENT, async () => null, { connection, concurrency: 1 }),
  ];
  const shutdown = async () => { await Promise.all(workers.map((w) => w.close())); process.exit(0); };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  for (const w of workers) w.on('error', (err) => console.error('worker error', err && err.message));
}

if (process.argv[2] === 'worker') worker();
else main().catch((e) => { console.error(e); process.exit(1); });
