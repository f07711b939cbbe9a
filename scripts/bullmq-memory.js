'use strict';
// Redis memory per queued BullMQ job, measured the way scanq-bench's memory phase measures
// scanq's, for `make bench` (scripts/bench-compare.py runs it after ../shared/peers/bullmq/run.sh,
// whose bench.js has no memory measurement):
//   warm up (BENCH_MEM_WARMUP jobs: BullMQ loads its scripts, the connection settles), read
//   used_memory, add BENCH_MEM_N jobs one awaited `add` at a time with no worker running, read
//   used_memory again; bytes per job = the difference / N. Then every key is found by SCAN,
//   grouped into kinds (`bull:bench:<id>` = the job hashes) and sized with MEMORY USAGE.
// The job is bench.js's: queue `bench`, name `noop`, the same payload. Uses the bullmq that run.sh
// installed into its cache folder (BULLMQ_DIR); prints one JSON line.
//   BULLMQ_DIR=~/.cache/scanq-peers/bullmq REDIS_PORT=6390 node scripts/bullmq-memory.js
// The Redis at REDIS_PORT (127.0.0.1) must be a throwaway one: it is flushed.
const path = require('node:path');
const { createRequire } = require('node:module');

const DIR = process.env.BULLMQ_DIR;
const PORT = parseInt(process.env.REDIS_PORT || '0', 10);
if (!DIR || !PORT) { console.error('BULLMQ_DIR and REDIS_PORT must be set'); process.exit(2); }
const req = createRequire(path.join(DIR, 'package.json'));
const { Queue } = req('bullmq');
const IORedis = req('ioredis');
const VERSION = req('bullmq/package.json').version;

const N = parseInt(process.env.BENCH_MEM_N || '10000', 10);
const WARMUP = parseInt(process.env.BENCH_MEM_WARMUP || '256', 10);
const SAMPLES_PER_KIND = 200;
const QNAME = 'bench';
// Keep in step with PAYLOAD in ../shared/peers/bullmq/bench.js.
const PAYLOAD = { tool: 'noop', target: '127.0.0.1', args: '-sV', seq: 0, pad: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' };
const connection = { host: '127.0.0.1', port: PORT, maxRetriesPerRequest: null };

async function usedMemory(r) {
  const info = await r.info('memory');
  const field = (k) => parseInt((info.match(new RegExp(`^${k}:(\\d+)`, 'm')) || [])[1], 10);
  return { used: field('used_memory'), dataset: field('used_memory_dataset') };
}

async function add(q, from, count) {
  for (let i = from; i < from + count; i++) await q.add('noop', Object.assign({}, PAYLOAD, { seq: i }));
}

const LABELS = {
  'bull:bench:<id>': 'job hash',
  'bull:bench:wait': 'wait list',
  'bull:bench:events': 'event stream (capped, ~10,000 entries)',
  'bull:bench:meta': 'queue meta',
  'bull:bench:id': 'id counter',
};

async function breakdown(r, jobs) {
  const byKind = new Map();
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', 'bull:*', 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const kind = k.split(':').map((s) => (/^\d+$/.test(s) ? '<id>' : s)).join(':');
      if (!byKind.has(kind)) byKind.set(kind, []);
      byKind.get(kind).push(k);
    }
  } while (cursor !== '0');
  const kinds = [];
  for (const [pattern, keys] of byKind) {
    const step = Math.max(1, Math.ceil(keys.length / SAMPLES_PER_KIND));
    const sample = keys.filter((_, i) => i % step === 0);
    const p = r.pipeline();
    for (const k of sample) p.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    const sizes = (await p.exec()).map(([, v]) => v).filter((v) => v !== null);
    const mean = sizes.length ? sizes.reduce((a, b) => a + b, 0) / sizes.length : 0;
    kinds.push({
      pattern, label: LABELS[pattern] || '', type: await r.type(sample[0]), keys: keys.length,
      sampled: sizes.length, mean_bytes: Math.round(mean * 10) / 10,
      bytes_per_job: Math.round((mean * keys.length / jobs) * 10) / 10,
    });
  }
  return kinds.sort((a, b) => b.bytes_per_job - a.bytes_per_job);
}

async function main() {
  const r = new IORedis(connection);
  await r.flushall();
  const q = new Queue(QNAME, { connection });
  await q.waitUntilReady();
  await add(q, 0, WARMUP);
  const before = await usedMemory(r);
  const t0 = process.hrtime.bigint();
  await add(q, WARMUP, N);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = await usedMemory(r);
  const waiting = await r.llen(`bull:${QNAME}:wait`);
  if (waiting !== WARMUP + N) throw new Error(`expected ${WARMUP + N} waiting jobs, found ${waiting}`);
  const kinds = await breakdown(r, WARMUP + N);
  const bytesPerJob = (after.used - before.used) / N;
  const attributed = kinds.reduce((a, k) => a + k.bytes_per_job, 0);
  process.stdout.write(JSON.stringify({
    peer: 'bullmq', version: VERSION, metric: 'memory', mode: 'add (one at a time), no worker',
    n: N, warmup: WARMUP, jobs_in_redis: WARMUP + N, add_jobs_per_s: Math.round(N / secs),
    used_memory_before: before.used, used_memory_after: after.used,
    dataset_before: before.dataset, dataset_after: after.dataset,
    bytes_per_job: Math.round(bytesPerJob * 10) / 10,
    unattributed_bytes_per_job: Math.round((bytesPerJob - attributed) * 10) / 10,
    kinds,
  }) + '\n');
  await q.close();
  await r.quit();
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
