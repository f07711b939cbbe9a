"""Drives scanq's /mcp with the official Python SDK 2.x (`mcp` 2.x), as a real agent would.

Usage: client_v2.py SCENARIO --url URL [--token T] [--mode auto|legacy] [--stdio CMD ARG...]
Scenarios:
  basic  list the tools, start a scan of 127.0.0.1 with a progress callback, follow it with
         job_status, fetch job_result; a validation error comes back as isError naming the
         field; an unknown tool is a JSON-RPC error.
  long   start a scan that runs longer than 60 s and collect it, every request under a 60 s
         client time-out.
Prints one JSON line per step; exits non-zero on the first failed check.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def step(name, **kw):
    print(json.dumps({"step": name, **kw}, default=str), flush=True)


def check(cond, what):
    if not cond:
        step("FAILED", what=what)
        sys.exit(1)


def make_client(args, timeout):
    if args.stdio:
        server = StdioServerParameters(command=args.stdio[0], args=args.stdio[1:])
    else:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        http = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(30, read=timeout))
        server = streamable_http_client(args.url, http_client=http)
    return Client(server, mode=args.mode, read_timeout_seconds=timeout)


async def basic(args):
    async with make_client(args, 60) as client:
        step("connected", protocol_version=client.protocol_version)
        tools = (await client.list_tools()).tools
        names = sorted(t.name for t in tools)
        step("tools", names=names)
        for want in ["nmap_scan", "job_status", "job_result", "job_cancel", "job_list"]:
            check(want in names, f"tool {want} listed")
        for t in tools:
            check(t.output_schema is not None, f"{t.name} has an outputSchema")
            check(t.annotations is not None and t.annotations.destructive_hint is False,
                  f"{t.name} has annotations")
        scan = next(t for t in tools if t.name == "nmap_scan")
        check(scan.input_schema["properties"]["template"]["enum"], "template is an enum")
        check(scan.annotations.open_world_hint is True, "nmap_scan is open-world")
        status_tool = next(t for t in tools if t.name == "job_status")
        check(status_tool.annotations.read_only_hint is True, "job_status is read-only")

        progress = []

        async def on_progress(value, total, message):
            progress.append(value)

        started = await client.call_tool(
            "nmap_scan",
            {"target": "127.0.0.1", "template": "quick", "wait_sec": 40},
            progress_callback=on_progress,
        )
        sc = started.structured_content
        step("scan", is_error=started.is_error, state=sc and sc.get("state"), progress=progress)
        check(not started.is_error, "scan accepted")
        check(sc["correlation_id"], "correlation id returned")
        check(started.content and started.content[0].text, "text rendering present")
        check(len(progress) >= 1, "progress notifications arrived")
        check(progress == sorted(set(progress)), "progress is strictly increasing")
        cid = sc["correlation_id"]

        status = await client.call_tool("job_status", {"correlation_id": cid, "wait_sec": 30})
        step("status", state=status.structured_content["state"])
        check(status.structured_content["state"] == "succeeded", "scan succeeded")

        result = await client.call_tool("job_result", {"correlation_id": cid})
        rs = result.structured_content
        step("result", view=rs["view"], pages=rs["pages"], exit_code=rs["summary"]["exit_code"])
        check(not result.is_error and rs["summary"]["exit_code"] == 0, "result has exit code 0")
        check(rs["pages"] >= 1 and (rs["items"] or rs["text"]), "result has content")
        if rs["pages"] > 1:
            page2 = await client.call_tool("job_result", {"correlation_id": cid, "page": 2})
            check(page2.structured_content["page"] == 2, "second page served")

        bad = await client.call_tool("nmap_scan", {"target": "127.0.0.1", "args": "-p 99999"})
        step("invalid", is_error=bad.is_error, content=bad.structured_content)
        check(bad.is_error, "validation failure is an isError result")
        check(bad.structured_content["field"] == "args", "the field is named")
        check(bad.structured_content["hint"], "a hint is given")

        listed = await client.call_tool("job_list", {"limit": 5})
        check(any(j["correlation_id"] == cid for j in listed.structured_content["jobs"]), "job listed")

        try:
            await client.call_tool("no_such_tool", {})
            check(False, "unknown tool raises")
        except MCPError as e:
            step("unknown_tool", code=e.code)
    step("ok")


async def long(args):
    async with make_client(args, 60) as client:
        step("connected", protocol_version=client.protocol_version)
        started = await client.call_tool(
            "slow_scan", {"target": "127.0.0.1", "args": "--sleep-ms 65000", "timeout_sec": 120})
        check(not started.is_error, f"slow scan accepted: {started.content}")
        cid = started.structured_content["correlation_id"]
        step("started", correlation_id=cid)
        polls = 0
        while True:
            polls += 1
            check(polls < 10, "finished within a few polls")
            st = await client.call_tool("job_status", {"correlation_id": cid, "wait_sec": 50})
            step("status", state=st.structured_content["state"])
            if st.structured_content["terminal"]:
                break
        check(st.structured_content["state"] == "succeeded", "slow scan succeeded")
        check(polls >= 2, "the scan outlived one request")
        res = await client.call_tool("job_result", {"correlation_id": cid, "view": "stdout"})
        check("scanned 127.0.0.1" in res.structured_content["text"], "stdout collected")
    step("ok")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["basic", "long"])
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--mode", default="auto")
    p.add_argument("--stdio", nargs=argparse.REMAINDER)
    args = p.parse_args()
    asyncio.run({"basic": basic, "long": long}[args.scenario](args))


if __name__ == "__main__":
    main()
