"""Prints a scanq job document (JSON on stdin) for people: state, then hosts and ports."""
import json
import sys

doc = json.load(sys.stdin)
print("    state: {}  duration: {} ms  worker: {}".format(doc.get("state"), doc.get("duration_ms"), doc.get("worker")))
result = doc.get("result") or {}
parsed = result.get("parsed")
if parsed:
    for host in parsed.get("hosts", []):
        addrs = ", ".join(a.get("addr", "") for a in host.get("addresses", []))
        status = (host.get("status") or {}).get("state")
        print("    host {}: {}".format(addrs, status))
        for port in host.get("ports", []):
            service = (port.get("service") or {}).get("name") or ""
            print("      {:>5}/{:<4} {:<9} {}".format(port["port"], port["protocol"], port["state"], service))
        if not host.get("ports"):
            print("      no open ports among those scanned")
else:
    out = result.get("stdout", "")
    print("    " + "\n    ".join(out.splitlines()[-15:]))
if doc.get("error"):
    print("    error: {}".format(doc["error"]))
