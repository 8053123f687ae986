#!/usr/bin/env python3
"""Memory cost of idle SMTP connections.

Opens COUNT connections to HOST:PORT, reads the 220 greeting on each (so the
server has really taken every one), holds them, and reports the growth of the
server's resident set (VmRSS of PID) per connection. Then closes them all.

usage: idle.py HOST PORT COUNT PID
prints one JSON object.
"""
import json
import resource
import socket
import sys
import time


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit(f"{key} not found for pid {pid}")


def settled_rss(pid: int) -> int:
    # Take the smallest of a few readings a little apart: the server may still
    # be finishing earlier work.
    best = None
    for _ in range(5):
        v = status_kb(pid, "VmRSS")
        best = v if best is None else min(best, v)
        time.sleep(0.2)
    return best


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, count, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for {count} connections")

    before = settled_rss(pid)
    conns = []
    t0 = time.monotonic()
    try:
        for i in range(count):
            c = socket.create_connection((host, port), timeout=10)
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = c.recv(512)
                if not chunk:
                    raise SystemExit(f"connection {i}: closed before the greeting")
                greeting += chunk
            if not greeting.startswith(b"220"):
                raise SystemExit(f"connection {i}: greeting {greeting[:60]!r}")
            conns.append(c)
        opened_s = time.monotonic() - t0
        time.sleep(1.0)
        after = settled_rss(pid)
        hwm = status_kb(pid, "VmHWM")
        # Make sure the server still holds them: a QUIT on the first and the
        # last must be answered.
        for c in (conns[0], conns[-1]):
            c.sendall(b"QUIT\r\n")
            if not c.recv(512).startswith(b"221"):
                raise SystemExit("server no longer answers on an idle connection")
    finally:
        for c in conns:
            c.close()

    print(json.dumps({
        "connections": len(conns),
        "open_seconds": round(opened_s, 3),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_delta_kb": after - before,
        "bytes_per_connection": round((after - before) * 1024 / max(1, len(conns))),
        "vmhwm_kb": hwm,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
