#!/usr/bin/env python3
"""Big scans next to BullMQ flows, from one run on one machine (`make bench-fanout`).

    python3 scripts/bench-fanout.py [--out DIR] [--skip-bullmq] [-- scanq-bench args...]
        runs, one after the other:
          1. `cargo run --release -p scanq-bench -- --fanout --json [args]` (table on stderr),
          2. scripts/bullmq-flow.js against a throwaway redis-server with the same sizes (a
             FlowProducer parent with N children: BullMQ's equivalent of a parent and chunks;
             ../shared/peers/bullmq has no flow scenario), using the bullmq that run.sh installed,
        prints the side-by-side table and writes both to DIR/fanout-<time>.json and
        DIR/fanout-latest.json (DIR defaults to .run/bench, git-ignored).
    python3 scripts/bench-fanout.py --from FILE
        prints the table of a combined JSON file written before.

Environment: as scripts/bench-compare.py (CARGO, SCANQ_BENCH, SCANQ_PEERS_CACHE), and
BENCH_FLOW_C (BullMQ worker concurrency, 100). Traffic goes to 127.0.0.1 only.
"""
import argparse
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_compare", os.path.join(REPO, "scripts", "bench-compare.py"))
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)


def run_flow(fan):
    """Starts a redis-server as run.sh does, runs scripts/bullmq-flow.js with scanq's sizes, stops it."""
    cache = bc.bullmq_cache()
    if not os.path.isdir(os.path.join(cache, "node_modules", "bullmq")):
        raise RuntimeError(f"bullmq is not installed in {cache}: run ../shared/peers/bullmq/run.sh first")
    port = bc.free_port()
    tmp = tempfile.mkdtemp(prefix="scanq-bench-flow-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp, "--daemonize", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not bc.redis_ping(port):
            if redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server for the BullMQ flow measurement did not start")
            time.sleep(0.05)
        bc.log(f"running scripts/bullmq-flow.js ({fan['jobs']} children)")
        env = dict(os.environ, BULLMQ_DIR=cache, REDIS_PORT=str(port), BENCH_FLOW_N=str(fan["jobs"]),
                   BENCH_FLOW_SUBMITS=str(fan["submits"]), BENCH_FLOW_GETS=str(fan["gets"]))
        p = subprocess.run(["node", os.path.join(REPO, "scripts", "bullmq-flow.js")], env=env,
                           stdout=subprocess.PIPE, text=True)
        rows = bc.json_lines(p.stdout)
        if p.returncode != 0 or not rows:
            raise RuntimeError(f"bullmq-flow.js failed (exit {p.returncode})")
        return rows[-1]
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
            redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def rows(doc):
    s = (doc.get("scanq") or {}).get("fanout") or {}
    b = doc.get("bullmq") or {}
    out = [
        ("submit of 256 chunks/children, p50", s.get("submit_256_p50_ms"), b.get("submit_256_p50_ms"), "ms", "lower"),
        ("submit of 256, p99", s.get("submit_256_p99_ms"), b.get("submit_256_p99_ms"), "ms", "lower"),
        ("Redis commands per submit of 256", s.get("submit_256_commands"), b.get("submit_256_commands"), "", "lower"),
    ]
    sr = {r["chunks"]: r for r in s.get("reads", [])}
    br = {r["children"]: r for r in b.get("reads", [])}
    for n in (0, 4, 64, 256):
        what = "plain job" if n == 0 else f"parent of {n}"
        out.append((f"read {what}, p50", (sr.get(n) or {}).get("p50_ms"), (br.get(n) or {}).get("p50_ms"), "ms", "lower"))
        out.append((f"read {what}, Redis commands", (sr.get(n) or {}).get("commands_per_get"),
                    (br.get(n) or {}).get("commands_per_read"), "", "lower"))
    out += [
        ("Redis memory per queued plain job", s.get("plain_bytes_per_job"), b.get("plain_bytes_per_job"), "B", "lower"),
        ("Redis memory per queued chunk/child", s.get("chunk_bytes_per_chunk"), b.get("child_bytes_per_child"), "B", "lower"),
        ("drain of plain jobs, 1 worker process", s.get("plain_drain_jobs_per_sec"), b.get("plain_drain_jobs_per_sec"), "/s", "higher"),
        ("drain of chunks/children, 1 worker process", s.get("chunk_drain_jobs_per_sec"), b.get("child_drain_jobs_per_sec"), "/s", "higher"),
        ("chunk drain / plain drain", s.get("drain_ratio"), b.get("drain_ratio"), "", "higher"),
        ("first claim to parent done", s.get("parent_done_secs"), b.get("parent_done_secs"), "s", "lower"),
        ("the one submit of N chunks/children", s.get("big_submit_ms"), b.get("big_submit_ms"), "ms", "lower"),
    ]
    return out


def fmt(x, unit):
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{x:,.0f} {unit}".strip() if abs(x) >= 100 else f"{x:.3g} {unit}".strip()


def table(doc):
    s = (doc.get("scanq") or {}).get("fanout") or {}
    out = [f"fan-out: N = {s.get('jobs')} chunks/children, {s.get('submits')} submits of 256, {s.get('gets')} reads each; "
           f"load average {doc.get('host', {}).get('loadavg_at_start', 0):.2f} at start",
           f"{'measure':<46} {'scanq':>12} {'BullMQ flow':>12} {'ratio':>7}  better"]
    for m, a, b, u, better in rows(doc):
        ratio = f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "—"
        out.append(f"{m:<46} {fmt(a, u):>12} {fmt(b, u):>12} {ratio:>7}  {better}")
    out.extend(f"note: {e}" for e in doc.get("errors", []))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, ".run", "bench"))
    ap.add_argument("--from", dest="src", help="print the table of this combined JSON file and exit")
    ap.add_argument("--skip-bullmq", action="store_true", help="scanq only (BullMQ columns n/a)")
    ap.add_argument("scanq_args", nargs="*", help="passed to scanq-bench --fanout (after --)")
    a = ap.parse_args()
    if a.src:
        with open(a.src) as f:
            print(table(json.load(f)))
        return 0
    started = datetime.datetime.now(datetime.timezone.utc)
    doc = {"started_at": started.isoformat(timespec="seconds"), "host": {
        "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0]}, "errors": []}
    doc["scanq"] = bc.run_scanq(["--fanout", *a.scanq_args])
    if not a.skip_bullmq:
        try:
            doc["bullmq"] = run_flow(doc["scanq"]["fanout"])
        except Exception as e:  # the table is still printed, with the failure in it
            doc["errors"].append(str(e))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "fanout-" + started.strftime("%Y%m%dT%H%M%SZ") + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    shutil.copyfile(path, os.path.join(a.out, "fanout-latest.json"))
    print()
    print(table(doc))
    print(f"\ncombined JSON: {os.path.relpath(path, os.getcwd())}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
