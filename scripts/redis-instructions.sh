#!/usr/bin/env bash
# Redis instructions per drained job (BENCHMARKS.md "Engine v8"): a count that does not move with
# the machine's load, for comparing two builds of the hot scripts on a shared, noisy machine.
#
#   scripts/redis-instructions.sh [BIN_DIR] [JOBS]
#
# Starts redis-server (127.0.0.1, a free port) under valgrind's callgrind, counting only inside
# EVALSHA (`--toggle-collect=evalShaCommand`: the scripts and the commands they run), runs
# `BIN_DIR/scanq-bench --only drain --jobs JOBS --redis-url …` against it, zeroes the count
# once the pre-fill is done (when the bench's worker process starts) and prints the
# instructions per drained job. BIN_DIR defaults to target/release, JOBS to 5000 (~20 s: Redis
# runs ~50× slower under valgrind). Two runs of one build agree within ~1 %. Needs valgrind
# (`apt-get install valgrind`, installed here when missing and run as root). The callgrind
# output stays in the printed directory (`callgrind_annotate --inclusive=yes <dir>/cg.out.1`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release}
JOBS=${2:-5000}
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq valgrind >/dev/null
  else
    echo "redis-instructions: needs valgrind (apt-get install valgrind)" >&2
    exit 1
  fi
fi
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
DIR=$(mktemp -d /tmp/redis-instructions.XXXX)
valgrind --tool=callgrind --toggle-collect=evalShaCommand --callgrind-out-file="$DIR/cg.out" \
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
for _ in $(seq 150); do
  redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.2
done
"$BIN/scanq-bench" --only drain --jobs "$JOBS" --redis-url "redis://127.0.0.1:$PORT/" --json \
  >"$DIR/bench.json" 2>"$DIR/bench.log" &
BENCH=$!
# The drain starts with the bench's worker: count from there.
until pgrep -x scanq-worker >/dev/null; do
  kill -0 $BENCH 2>/dev/null || { cat "$DIR/bench.log" >&2; exit 1; }
  sleep 0.02
done
callgrind_control -z $VG >/dev/null 2>&1
wait $BENCH
callgrind_control -d $VG >/dev/null 2>&1
for _ in $(seq 100); do
  [ -s "$DIR/cg.out.1" ] && grep -q '^totals:' "$DIR/cg.out.1" && break
  sleep 0.1
done
kill $VG
wait $VG 2>/dev/null || true
trap - EXIT
TOTAL=$(awk '/^(summary|totals):/ {print $2; exit}' "$DIR/cg.out.1")
python3 - "$TOTAL" "$JOBS" "$DIR" <<'PY'
import json, sys
total, jobs, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
drain = json.load(open(d + "/bench.json"))["drain"]
calls = drain["usage"]["redis_commands"]["evalsha"]["calls"]
print(f"{total / jobs:,.0f} Redis instructions per drained job inside EVALSHA "
      f"({jobs} jobs, {calls} script calls; callgrind output in {d})")
PY
