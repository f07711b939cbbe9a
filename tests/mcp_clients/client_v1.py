"""Drives scanq's /mcp with the official Python SDK 1.27 (2025-11-25, MCP Tasks).

Usage: client_v1.py SCENARIO --url URL [--token T]
Scenarios:
  basic  initialize, list tools, scan 127.0.0.1 with a progress callback, job_status, job_result.
  tasks  create a task (tools/call with `task`), poll tasks/get, fetch tasks/result, see it in
         tasks/list; create another task and cancel it.
  task-create   create a slow task and print its taskId (for the cross-instance test).
  task-follow   --task-id ID: read it with tasks/get and cancel it (through another instance).
Prints one JSON line per step; exits non-zero on the first failed check.
"""

import argparse
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
import mcp.types as types


def step(name, **kw):
    print(json.dumps({"step": name, **kw}, default=str), flush=True)


def check(cond, what):
    if not cond:
        step("FAILED", what=what)
        sys.exit(1)


class Session:
    def __init__(self, args):
        self.args = args

    async def __aenter__(self):
        headers = {"Authorization": f"Bearer {self.args.token}"} if self.args.token else None
        self._http = streamablehttp_client(self.args.url, headers=headers, timeout=60)
        read, write, _ = await self._http.__aenter__()
        self._session = ClientSession(read, write)
        session = await self._session.__aenter__()
        init = await session.initialize()
        step("initialized", protocol_version=init.protocolVersion,
             tasks=init.capabilities.tasks is not None)
        check(init.protocolVersion == "2025-11-25", "2025-11-25 negotiated")
        return session

    async def __aexit__(self, *exc):
        await self._session.__aexit__(*exc)
        await self._http.__aexit__(*exc)


async def basic(args):
    async with Session(args) as s:
        tools = (await s.list_tools()).tools
        names = [t.name for t in tools]
        check("nmap_scan" in names and "job_result" in names, "tools listed")
        scan = next(t for t in tools if t.name == "nmap_scan")
        check(scan.execution is not None and scan.execution.taskSupport == "optional",
              "scan tools support tasks")
        progress = []

        async def on_progress(value, total, message):
            progress.append(value)

        r = await s.call_tool("nmap_scan", {"target": "127.0.0.1", "template": "quick", "wait_sec": 40},
                              progress_callback=on_progress)
        check(not r.isError, "scan accepted")
        cid = r.structuredContent["correlation_id"]
        check(progress and progress == sorted(set(progress)), f"monotonic progress {progress}")
        st = await s.call_tool("job_status", {"correlation_id": cid, "wait_sec": 30})
        check(st.structuredContent["state"] == "succeeded", "scan succeeded")
        res = await s.call_tool("job_result", {"correlation_id": cid})
        check(res.structuredContent["summary"]["exit_code"] == 0, "exit code 0")
        bad = await s.call_tool("nmap_scan", {"target": "127.0.0.1", "ports": "70000"})
        check(bad.isError and bad.structuredContent["field"] == "ports", "ports field named")
    step("ok")


async def wait_status(s, task_id, want, limit=60):
    for _ in range(limit * 4):
        t = await s.experimental.get_task(task_id)
        if t.status in want:
            return t
        await asyncio.sleep(0.25)
    check(False, f"task {task_id} reached {want}")


async def tasks(args):
    async with Session(args) as s:
        created = await s.experimental.call_tool_as_task(
            "slow_scan", {"target": "127.0.0.1", "args": "--sleep-ms 1500"})
        task_id = created.task.taskId
        step("created", task_id=task_id, status=created.task.status, poll=created.task.pollInterval)
        check(created.task.status == "working", "a new task is working")
        check(created.task.pollInterval and created.task.ttl, "pollInterval and ttl set")
        seen = []
        async for t in s.experimental.poll_task(task_id):
            seen.append(t.status)
        step("polled", statuses=seen)
        check(seen[-1] == "completed", "task completed")
        result = await s.experimental.get_task_result(task_id, types.CallToolResult)
        check(not result.isError, "task result is not an error")
        check(result.structuredContent["correlation_id"] == task_id, "taskId is the correlation id")
        check(result.structuredContent["state"] == "succeeded", "job succeeded")
        listed = await s.experimental.list_tasks()
        check(any(t.taskId == task_id for t in listed.tasks), "task listed")

        other = await s.experimental.call_tool_as_task(
            "slow_scan", {"target": "127.0.0.1", "args": "--sleep-ms 60000"})
        other_id = other.task.taskId
        await wait_status(s, other_id, {"working"})
        cancelled = await s.experimental.cancel_task(other_id)
        step("cancelled", status=cancelled.status)
        final = await wait_status(s, other_id, {"cancelled"})
        check(final.status == "cancelled", "task cancelled")
        try:
            await s.experimental.get_task("never-made")
            check(False, "unknown task raises")
        except McpError as e:
            step("unknown_task", code=e.error.code)
    step("ok")


async def task_create(args):
    async with Session(args) as s:
        created = await s.experimental.call_tool_as_task(
            "slow_scan", {"target": "127.0.0.1", "args": "--sleep-ms 60000"})
        step("created", task_id=created.task.taskId)
        await wait_status(s, created.task.taskId, {"working"})
    step("ok")


async def task_follow(args):
    async with Session(args) as s:
        t = await s.experimental.get_task(args.task_id)
        step("got", status=t.status)
        check(t.status == "working", "task visible through this instance")
        await s.experimental.cancel_task(args.task_id)
        final = await wait_status(s, args.task_id, {"cancelled"})
        step("final", status=final.status)
    step("ok")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["basic", "tasks", "task-create", "task-follow"])
    p.add_argument("--url", required=True)
    p.add_argument("--token")
    p.add_argument("--task-id")
    args = p.parse_args()
    fn = {"basic": basic, "tasks": tasks, "task-create": task_create, "task-follow": task_follow}
    asyncio.run(fn[args.scenario](args))


if __name__ == "__main__":
    main()
