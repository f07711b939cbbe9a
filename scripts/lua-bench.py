#!/usr/bin/env python3
"""Redis time of the hot scripts, on a scratch redis-server this script starts (127.0.0.1, a free
port) and stops: BENCHMARKS.md "Engine v6". Needs redis-server and the Python `redis` package
(`pip install --target .tools/py redis`, then `PYTHONPATH=.tools/py`).

  scripts/lua-bench.py batch [JOBS_PER_CALL] [CALLS]   claim.lua / complete.lua µs per job
  scripts/lua-bench.py single [CALLS]                  one-job calls: back to back vs one at a time
  scripts/lua-bench.py fixed                           a call's cost of defining the helpers
  scripts/lua-bench.py floor [JOBS_PER_CALL] [CALLS]   `batch` with bodies that run the same
                                                       per-job commands and no logic around them
  scripts/lua-bench.py functions [CALLS]               one-job calls one at a time: EVALSHA of
                                                       the scripts against FCALL of the same
                                                       bodies in one library (Redis Functions:
                                                       the helpers defined once, at load)
  LUA_DIR=/some/copy/of/lua scripts/lua-bench.py ...   the scripts of another tree (A/B)

Each script is the generated prelude, all of common.lua and the breaker's lib.lua, then its body
(the product sends only the helpers a body uses: `scripts/assemble.rs`), timed by the server
(`INFO commandstats`, `EVALSHA` µs).
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.environ.get("LUA_DIR", os.path.join(ROOT, "shared/src/scripts/lua"))
BREAKER = os.path.join(os.path.dirname(os.path.dirname(LUA)), "breaker/lua/lib.lua")
STATES = ["queued", "running", "scheduled", "succeeded", "failed", "cancelled", "awaiting_approval"]
PRELUDE = (
    "local S = {" + "".join(f"{s} = '{s}', " for s in STATES) + "}\n"
    "local K = { job = 'job:', ev = 'ev:', tally = 'tally:', inbox = 'inbox:' }\n"
    "local Q = { maxev = 1000, channel = '' }\n"
    "local D = { max_attempts = '3', timeout_sec = '600' }\n"
)
P = "P:{t}:"
STREAMS = [P + "q:high", P + "q:normal", P + "q:low"]
RAW = [P + "q:high:raw", P + "q:normal:raw", P + "q:low:raw"]
CLAIM_KEYS = STREAMS + [P + "leases", P + "counts", P, P + "wait", P + "sched", P + "bk",
                        P + "bkh", P + "bkp", P + "bkw", P + "disabled", P + "counts",
                        P + "backlog:", P + "running_by"] + RAW + [P + "grun", P + "gwait:"]
COMPLETE_KEYS = [P + "leases", P + "counts", P + "sched", P + "dead", P] + STREAMS + [
    P + "run", P + "bk", P + "bkh", P + "bkp", P + "bkw", P + "counts", P + "backlog:",
    P + "running_by", P + "series"] + RAW + [P + "grun", P + "gwait:"]
RESULT = '{"exit_code":0,"stdout":"","stderr":"","truncated_stdout":false,"timed_out":false}'


# The floor: a claim that reads one lane, HGETALLs and HSETs each job and ZADDs the leases; a
# completion that HMGETs, HSETs and PEXPIREs each job and removes the leases.
FLOOR_CLAIM = """
local prefix, want, now = KEYS[6], tonumber(ARGV[3]), now_ms()
local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'NOACK',
  'STREAMS', KEYS[2], '>')
if not ok then
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[1], '0', 'MKSTREAM')
  r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'NOACK', 'STREAMS',
    KEYS[2], '>')
end
local entries, jobs, leases = r[1][2], {}, {}
for i = 1, #entries do
  local ref = entries[i][2][2]
  local key = prefix .. K.job .. ref
  redis.call('HGETALL', key)
  redis.call('HSET', key, 'state', 'running', 'attempt', '1', 'deliveries', '1', 'fence', '1',
    'started_ms', now, 'worker', ARGV[2], 'queue_wait_ms', '5', 'evseq', '2', 'updated_ms', now)
  leases[#leases + 1] = now + 30000
  leases[#leases + 1] = ref
  jobs[#jobs + 1] = { ref, '1', '1', 5, '127.0.0.1', '', '', '0', '600', '0', '', '' }
end
redis.call('XTRIM', KEYS[2], 'MINID', '0-1')
redis.call('ZADD', KEYS[4], unpack(leases))
return { jobs, 0, {}, 0, 1 }
"""
FLOOR_COMPLETE = """
local out, refs = {}, {}
for i = 8, #ARGV, 8 do
  local key = KEYS[5] .. K.job .. ARGV[i]
  redis.call('HMGET', key, 'state', 'fence', 'cancel_requested', 'evs', 'watch', 'watch_end',
    'evseq')
  redis.call('HSET', key, 'evseq', '4', 'updated_ms', '1796478789269', 'finished_ms',
    '1796478789269', 'duration_ms', '1', 'state', 'succeeded', 'result', ARGV[i + 3])
  redis.call('PEXPIRE', key, '86400000')
  out[#out + 1] = 'succeeded'
  refs[#refs + 1] = ARGV[i]
end
redis.call('ZREM', KEYS[1], unpack(refs))
return { out, {}, {} }
"""


def source(body):
    helpers = open(os.path.join(LUA, "common.lua")).read() + "\n" + open(BREAKER).read()
    return PRELUDE + helpers + "\n" + body


def claim_args(n):
    return ["g", "w", n, 30000, 0, 1000, "P:notify", "t", "{}", "{}", 0, "", "0", 0]


def complete_args(jobs):
    args = [86400000, 86400000, 1000, "P:notify", "t", "{}", "w"]
    for j in jobs:
        args += [j[0], j[1], "succeeded", RESULT, "", 0, "success", ""]
    return args


def evalsha_us(r):
    return int(r.info("commandstats")["cmdstat_evalsha"]["usec"])


def prefill(r, n):
    p = r.pipeline(transaction=False)
    for _ in range(n):
        ref = "a/" + str(uuid.uuid4())
        p.hset(P + "job:" + ref, mapping={"state": "queued", "created_ms": "1796478789269",
                                          "target": "127.0.0.1"})
        p.xadd(P + "q:normal", {"ref": ref})
    p.hset(P + "counts", mapping={"queued": n})
    p.execute()


def bodies(floor):
    if floor:
        return FLOOR_CLAIM, FLOOR_COMPLETE
    return tuple(open(os.path.join(LUA, f)).read() for f in ["claim.lua", "complete.lua"])


def batch(r, n, calls, floor=False):
    claim_body, complete_body = bodies(floor)
    claim = r.register_script(source(claim_body))
    complete = r.register_script(source(complete_body))
    tc = tco = 0
    for _ in range(calls):
        r.flushall()
        prefill(r, n)
        r.config_resetstat()
        jobs = claim(keys=CLAIM_KEYS, args=claim_args(n))[0]
        tc += evalsha_us(r)
        assert len(jobs) == n, len(jobs)
        r.config_resetstat()
        states = complete(keys=COMPLETE_KEYS, args=complete_args(jobs))[0]
        tco += evalsha_us(r)
        assert all(s == b"succeeded" for s in states), states[:3]
    per = n * calls
    print(f"claim {tc / per:.2f} µs/job  complete {tco / per:.2f} µs/job  "
          f"total {(tc + tco) / per:.2f}  ({n} jobs a call)")


def single(r, calls):
    claim = r.register_script(source(open(os.path.join(LUA, "claim.lua")).read()))
    complete = r.register_script(source(open(os.path.join(LUA, "complete.lua")).read()))
    r.flushall()
    prefill(r, 2 * calls + 10)
    for mode in ["back to back (one pipeline)", "one at a time"]:
        r.config_resetstat()
        if mode.startswith("back"):
            p = r.pipeline(transaction=False)
            for _ in range(calls):
                claim(keys=CLAIM_KEYS, args=claim_args(1), client=p)
            outs = p.execute()
        else:
            outs = [claim(keys=CLAIM_KEYS, args=claim_args(1)) for _ in range(calls)]
        tc = evalsha_us(r) / calls
        r.config_resetstat()
        if mode.startswith("back"):
            p = r.pipeline(transaction=False)
            for o in outs:
                complete(keys=COMPLETE_KEYS, args=complete_args(o[0]), client=p)
            p.execute()
        else:
            for o in outs:
                complete(keys=COMPLETE_KEYS, args=complete_args(o[0]))
        print(f"{mode:28s} claim {tc:6.1f} µs/call  complete {evalsha_us(r) / calls:6.1f} µs/call")


def functions(r, calls):
    """One-job claim + completion, one at a time, as EVALSHA and as FCALL. (A measurement only:
    the library keeps the helpers' module-level state between calls, which the product would
    have to reset per call.)"""
    claim_body, complete_body = bodies(False)
    lib = ("#!lua name=scanqbench\n" + source("") + "\n"
           "local function claim_body(KEYS, ARGV)\n" + claim_body + "\nend\n"
           "local function complete_body(KEYS, ARGV)\n" + complete_body + "\nend\n"
           "redis.register_function('sq_claim', claim_body)\n"
           "redis.register_function('sq_complete', complete_body)\n")
    r.function_load(lib, replace=True)
    claim = r.register_script(source(claim_body))
    complete = r.register_script(source(complete_body))
    r.flushall()
    prefill(r, 2 * calls + 20)

    def stat(cmd):
        return int(r.info("commandstats").get(f"cmdstat_{cmd}", {}).get("usec", 0))

    for way in ["EVALSHA", "FCALL"]:
        tc, to = [], []
        for _ in range(calls):
            time.sleep(0.001)
            cmd = way.lower()
            r.config_resetstat()
            if way == "EVALSHA":
                out = claim(keys=CLAIM_KEYS, args=claim_args(1))
            else:
                out = r.fcall("sq_claim", len(CLAIM_KEYS), *CLAIM_KEYS, *claim_args(1))
            tc.append(stat(cmd))
            time.sleep(0.001)
            r.config_resetstat()
            args = complete_args(out[0])
            if way == "EVALSHA":
                complete(keys=COMPLETE_KEYS, args=args)
            else:
                r.fcall("sq_complete", len(COMPLETE_KEYS), *COMPLETE_KEYS, *args)
            to.append(stat(cmd))
        print(f"{way:8s} one-job claim median {statistics.median(tc):5.1f} µs, "
              f"completion median {statistics.median(to):5.1f} µs (1 ms apart)")


def fixed(r):
    variants = {"empty script": "return 1", "prelude + every helper": source("return 1")}
    scripts = {k: r.register_script(v) for k, v in variants.items()}
    for gap, label in [(0, "back to back"), (0.002, "2 ms apart")]:
        for name, s in scripts.items():
            s()
            times = []
            for _ in range(300 if gap else 3000):
                if gap:
                    time.sleep(gap)
                r.config_resetstat()
                s()
                times.append(evalsha_us(r))
            print(f"{label:13s} {name:24s} median {statistics.median(times):5.1f} µs a call")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "batch"
    rest = [int(a) for a in sys.argv[2:]]
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        server = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL)
        try:
            r = redis.Redis(host="127.0.0.1", port=port)
            deadline = time.time() + 10
            while True:
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            if what == "batch":
                batch(r, *(rest or [85, 100]))
            elif what == "single":
                single(r, *(rest or [300]))
            elif what == "floor":
                batch(r, *(rest or [85, 100]), floor=True)
            elif what == "functions":
                functions(r, *(rest or [300]))
            elif what == "fixed":
                fixed(r)
            else:
                sys.exit(__doc__)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
