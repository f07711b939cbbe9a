#!/usr/bin/env python3
"""scanq next to BullMQ, from one run on one machine (`make bench`).

    python3 scripts/bench-compare.py [--out DIR] [--skip-bullmq] [-- scanq-bench args...]
        runs, one after the other:
          1. `cargo run --release -p scanq-bench -- --json [args]` (its table goes to stderr),
          2. ../shared/peers/bullmq/run.sh (installs bullmq into its cache folder on first use),
          3. scripts/bullmq-memory.js against a throwaway redis-server (memory per queued BullMQ
             job: bench.js has no such measurement),
        prints the side-by-side table and writes everything to DIR/bench-<time>.json and
        DIR/latest.json (DIR defaults to .run/bench, git-ignored).
    python3 scripts/bench-compare.py --from FILE
        prints the table of a combined JSON file written before.

Environment: CARGO (cargo), SCANQ_BENCH (a scanq-bench binary to run instead of `cargo run`),
SCANQ_PEERS_DIR (../shared/peers next to the repository),
SCANQ_PEERS_CACHE / XDG_CACHE_HOME (where run.sh keeps bullmq; the same rule as run.sh),
BENCH_MEM_N (memory jobs for BullMQ; default: what scanq-bench used), and run.sh's own knobs
(BENCH_N, BENCH_REPS, BENCH_LAT_N). Python 3 standard library only. Traffic goes to 127.0.0.1 only.
"""
import argparse
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"bench-compare: {msg}", file=sys.stderr, flush=True)


def peers_dir():
    return os.environ.get("SCANQ_PEERS_DIR") or os.path.join(os.path.dirname(REPO), "shared", "peers")


def bullmq_cache():
    """Where run.sh installs bullmq: ${SCANQ_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scanq-peers}/bullmq."""
    base = os.environ.get("SCANQ_PEERS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "scanq-peers")
    return os.path.join(base, "bullmq")


def json_lines(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def run_scanq(args):
    binary = os.environ.get("SCANQ_BENCH")
    if binary:
        cmd = [binary, "--json", *args]
    else:
        cmd = [os.environ.get("CARGO", "cargo"), "run", "--release", "-q", "-p", "scanq-bench", "--", "--json", *args]
    log("running " + " ".join(cmd))
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    rows = json_lines(p.stdout)
    if p.returncode != 0 or not rows:
        raise RuntimeError(f"scanq-bench failed (exit {p.returncode})")
    return rows[-1]


def run_bullmq():
    script = os.path.join(peers_dir(), "bullmq", "run.sh")
    log(f"running {script} (BullMQ; no output until it is done, about a minute)")
    p = subprocess.run(["bash", script], stdout=subprocess.PIPE, text=True)
    rows = json_lines(p.stdout)
    summary = next((r["summary"] for r in rows if "summary" in r), None)
    if p.returncode != 0 or summary is None:
        raise RuntimeError(f"{script} failed (exit {p.returncode})")
    return {"summary": summary, "rows": [r for r in rows if "summary" not in r]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run_bullmq_memory(n):
    """Starts a redis-server as run.sh does, runs scripts/bullmq-memory.js, stops it."""
    cache = bullmq_cache()
    if not os.path.isdir(os.path.join(cache, "node_modules", "bullmq")):
        raise RuntimeError(f"bullmq is not installed in {cache}: run ../shared/peers/bullmq/run.sh first")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="scanq-bench-bullmq-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp, "--daemonize", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not redis_ping(port):
            if redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server for the BullMQ memory measurement did not start")
            time.sleep(0.05)
        log(f"measuring BullMQ memory per queued job ({n} jobs)")
        env = dict(os.environ, BULLMQ_DIR=cache, REDIS_PORT=str(port), BENCH_MEM_N=str(n))
        p = subprocess.run(["node", os.path.join(REPO, "scripts", "bullmq-memory.js")], env=env,
                           stdout=subprocess.PIPE, text=True)
        rows = json_lines(p.stdout)
        if p.returncode != 0 or not rows:
            raise RuntimeError(f"bullmq-memory.js failed (exit {p.returncode})")
        return rows[-1]
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
            redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def fmt(x, unit):
    if x is None:
        return "n/a"
    if unit == "ms":
        return f"{x:.3f} ms"
    if unit == "B":
        return f"{x:,.0f} B"
    return f"{x:,.0f}/s"


def comparison(doc):
    """The rows of the side-by-side table: (measure, scanq, bullmq, unit, better)."""
    s = doc.get("scanq") or {}
    b = doc.get("bullmq") or {}
    bs = b.get("summary") or {}
    st = s.get("settings") or {}
    drains = [r for r in b.get("rows", []) if r.get("metric") == "drain"]
    one_proc = [r for r in drains if "(1 proc)" in r.get("mode", "")]
    best1 = max(one_proc, key=lambda r: r["value"]) if one_proc else None
    workers = st.get("workers", 1)
    wp = f"{workers} worker process" + ("es" if workers != 1 else "")
    return [
        (f"drain, jobs/s (scanq {wp} × {st.get('worker_concurrency')} slots; BullMQ best: {bs.get('best_drain_mode')})",
         s.get("drain_jobs_per_sec"), bs.get("best_drain_jobs_per_s"), "/s", "higher"),
        (f"drain, jobs/s (BullMQ best single process: {best1['mode'] if best1 else 'n/a'})",
         s.get("drain_jobs_per_sec"), round(best1["value"]) if best1 else None, "/s", "higher"),
        (f"submit, jobs/s (scanq HTTP, {st.get('clients')} clients; BullMQ one awaited add at a time)",
         s.get("submit_jobs_per_sec"), bs.get("enqueue_one_at_a_time_jobs_per_s"), "/s", "higher"),
        ("end-to-end p50 (scanq one request, POST with Prefer: wait; BullMQ add + waitUntilFinished)",
         s.get("e2e_p50_ms"), bs.get("latency_p50_ms"), "ms", "lower"),
        ("end-to-end p99", s.get("e2e_p99_ms"), bs.get("latency_p99_ms"), "ms", "lower"),
        ("end-to-end p50, scanq two requests (POST, then GET ?wait)",
         s.get("e2e_two_requests_p50_ms"), bs.get("latency_p50_ms"), "ms", "lower"),
        ("end-to-end p99, scanq two requests",
         s.get("e2e_two_requests_p99_ms"), bs.get("latency_p99_ms"), "ms", "lower"),
        ("Redis memory per queued job (used_memory delta / N, no worker)",
         s.get("memory_bytes_per_job"), (b.get("memory") or {}).get("bytes_per_job"), "B", "lower"),
    ]


def table(doc):
    out = []
    rows = comparison(doc)
    b = doc.get("bullmq") or {}
    version = next((r.get("version") for r in b.get("rows", []) if r.get("version")), None)
    st = (doc.get("scanq") or {}).get("settings") or {}
    out.append(f"scanq-bench ({st.get('cpus')} CPUs, redis-server {st.get('redis_version')}, load {st.get('loadavg_at_start')}) "
               f"vs BullMQ {version or 'n/a'}, one run, {doc.get('started_at')}")
    w = max(len(r[0]) for r in rows)
    out.append(f"{'measure':<{w}}  {'scanq':>12}  {'BullMQ':>12}  {'scanq/BullMQ':>12}  better when")
    out.append("-" * (w + 60))
    for what, s, b, unit, better in rows:
        ratio = f"{s / b:.2f}" if isinstance(s, (int, float)) and isinstance(b, (int, float)) and b else "n/a"
        out.append(f"{what:<{w}}  {fmt(s, unit):>12}  {fmt(b, unit):>12}  {ratio:>12}  {better}")
    out.append("")
    out.append("ratio = scanq / BullMQ: above 1 is better for throughput, below 1 is better for latency and memory.")
    mem = (doc.get("bullmq") or {}).get("memory")
    smem = (doc.get("scanq") or {}).get("memory")
    for name, m in (("scanq", smem), ("BullMQ", mem)):
        if not m:
            continue
        kinds = ", ".join(
            f"{k['label'] or k['pattern']} {k['bytes_per_job']:.0f}" for k in m["kinds"] if k["bytes_per_job"] >= 0.5)
        out.append(f"{name} bytes per queued job by key kind: {kinds}, rest of the delta {m['unattributed_bytes_per_job']:.0f}")
    rss = (doc.get("scanq") or {}).get("rss_kib") or {}
    if any(v is not None for v in rss.values()):
        parts = [f"{k.replace('_', ' ')} {v / 1024:.1f} MiB" for k, v in rss.items() if v is not None]
        out.append("scanq resident memory: " + ", ".join(parts))
    cpj = (doc.get("scanq") or {}).get("commands_per_job")
    if cpj:
        out.append(f"scanq Redis commands per job (submit + drain): {cpj['calls']:.1f}, {cpj['usec']:.0f} µs of Redis time")
    notes = []
    for r in (doc.get("bullmq") or {}).get("rows", []):
        if r.get("capped"):
            notes.append(f"BullMQ {r.get('metric')} '{r.get('mode')}' hit its time cap")
        if r.get("timeouts_10s"):
            notes.append(f"BullMQ latency had {r['timeouts_10s']} waits over 10 s")
    for e in doc.get("errors", []):
        notes.append(e)
    out.extend(f"note: {n}" for n in notes)
    out.append("The machine is shared and noisy: compare ratios within one run, not absolute figures across runs.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, ".run", "bench"))
    ap.add_argument("--from", dest="src", help="print the table of this combined JSON file and exit")
    ap.add_argument("--skip-bullmq", action="store_true", help="scanq only (BullMQ columns n/a)")
    ap.add_argument("scanq_args", nargs="*", help="passed to scanq-bench (after --)")
    a = ap.parse_args()
    if a.src:
        with open(a.src) as f:
            print(table(json.load(f)))
        return 0

    started = datetime.datetime.now(datetime.timezone.utc)
    doc = {"started_at": started.isoformat(timespec="seconds"), "host": {
        "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0]}, "errors": []}
    doc["scanq"] = run_scanq(a.scanq_args)
    if not a.skip_bullmq:
        try:
            doc["bullmq"] = run_bullmq()
        except Exception as e:  # the table is still printed, with the failure in it
            doc["errors"].append(str(e))
        if "bullmq" in doc:
            n = int(os.environ.get("BENCH_MEM_N") or doc["scanq"].get("settings", {}).get("memory_jobs") or 10000)
            try:
                doc["bullmq"]["memory"] = run_bullmq_memory(n)
            except Exception as e:
                doc["errors"].append(str(e))
    doc["comparison"] = [
        {"measure": m, "scanq": s, "bullmq": b, "unit": u, "better": bt,
         "ratio": (s / b if isinstance(s, (int, float)) and isinstance(b, (int, float)) and b else None)}
        for m, s, b, u, bt in comparison(doc)]
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "bench-" + started.strftime("%Y%m%dT%H%M%SZ") + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    shutil.copyfile(path, os.path.join(a.out, "latest.json"))
    print()
    print(table(doc))
    print(f"\ncombined JSON: {os.path.relpath(path, os.getcwd())}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
