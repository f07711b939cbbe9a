#!/usr/bin/env bash
# `make run`: a private redis-server, the API and two workers, then a real nmap demo scan of
# 127.0.0.1 streamed to the terminal. Ctrl-C stops every process started here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
RUN=.run
mkdir -p "$RUN/redis"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "Stopping scanq (${#pids[@]} processes)..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "Stopped."
}
trap cleanup INT TERM EXIT

REDIS_PORT=$(free_port)
API_PORT=${SCANQ_DEMO_PORT:-8080}
unset SCANQ_DEMO_PORT # not a configuration key: the processes below would refuse it
if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$API_PORT))" 2>/dev/null; then
  API_PORT=$(free_port)
fi
API="http://127.0.0.1:$API_PORT"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/$RUN/redis" \
  --appendonly yes --appendfsync everysec --save "" --daemonize no \
  --logfile "$PWD/$RUN/redis.log" &
pids+=($!)

export SCANQ_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export SCANQ_API_ADDR="127.0.0.1:$API_PORT"
export SCANQ_ALLOWED_TARGETS="127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,.lab.internal"
export SCANQ_KEY_PREFIX="scanq"
export RUST_LOG="${RUST_LOG:-info}"

# A worker refuses to run a tool as its own uid (docs/sandbox.md, "Deployment"). As root, each
# nmap run is confined by nftables under a uid of its own; where nftables cannot be used, the
# run is switched to the user `nobody` instead. Not root: nmap runs as you, which the demo
# allows out loud (SCANQ_ALLOW_UNCONFINED=true; never do that where secrets matter).
if [ "$(id -u)" = 0 ]; then
  export SCANQ_TOOL_USER="${SCANQ_TOOL_USER:-nobody}"
  TOOLS="confined by nftables to their target, under a uid of their own (or as $SCANQ_TOOL_USER without nftables)"
else
  export SCANQ_ALLOW_UNCONFINED="${SCANQ_ALLOW_UNCONFINED:-true}"
  TOOLS="run as $(id -un), unconfined (not root: SCANQ_ALLOW_UNCONFINED=true for the demo)"
fi

for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

"$BIN/scanq-api" 2> >(sed 's/^/[api] /' >&2) &
pids+=($!)
for i in 1 2; do
  SCANQ_WORKER_METRICS_ADDR="127.0.0.1:$(free_port)" SCANQ_WORKER_ID="demo-worker-$i" \
    "$BIN/scanq-worker" 2> >(sed "s/^/[worker-$i] /" >&2) &
  pids+=($!)
done

for _ in $(seq 1 100); do
  curl -sf "$API/readyz" >/dev/null && break
  sleep 0.1
done

cat <<INFO

  scanq is running
    dashboard : $API/
    API       : $API/v1/tools
    MCP       : $API/mcp
    metrics   : $API/metrics
    token     : none needed (open mode: the API listens on loopback only)
    redis     : $SCANQ_REDIS_URL (data in $RUN/redis)
    tools     : $TOOLS

  Demo: nmap quick scan of 127.0.0.1
INFO

ID="demo-$(date +%s)"
curl -sf -X POST "$API/v1/jobs" -H 'content-type: application/json' \
  -d "{\"tool\":\"nmap\",\"target\":\"127.0.0.1\",\"template\":\"quick\",\"correlation_id\":\"$ID\"}" >/dev/null
echo "  submitted job $ID; streaming its events:"
curl -sN "$API/v1/jobs/$ID/events" | while IFS= read -r line; do
  case "$line" in
    event:*) ev=${line#event: } ;;
    data:*) [ "${ev:-}" != done ] && echo "    [$ev] ${line#data: }" ;;
  esac
done || true

echo
echo "  Result:"
curl -sf "$API/v1/jobs/$ID" | python3 scripts/show-result.py
echo
echo "  The stack keeps serving at $API — press Ctrl-C to stop."
wait
