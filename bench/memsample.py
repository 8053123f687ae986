#!/usr/bin/env python3
"""Peak memory of a server and its child processes, sampled.

Every INTERVAL seconds, takes PID and the processes whose parent is PID
(`ps -o pid=,rss= --ppid PID -p PID`), sums their RSS, and also sums their
PSS from /proc/N/smaps_rollup (PSS shares a page between the processes that
map it, so it does not count shared libraries and shared text N times).
Stops when STOPFILE appears, when PID is gone, or after MAX_SECONDS.

usage: memsample.py PID STOPFILE [INTERVAL [MAX_SECONDS]]
prints one JSON object: max_rss_kb, max_pss_kb, max_procs, samples.
"""
import json
import os
import subprocess
import sys
import time


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    pid = int(sys.argv[1])
    stop = sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.25
    max_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 900.0

    best = {"max_rss_kb": 0, "max_pss_kb": 0, "max_procs": 0, "samples": 0}
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not os.path.exists(stop) and os.path.exists(f"/proc/{pid}"):
        out = subprocess.run(["ps", "-o", "pid=,rss=", "--ppid", str(pid), "-p", str(pid)],
                             capture_output=True, text=True).stdout
        rss = procs = pss = 0
        for line in out.split("\n"):
            f = line.split()
            if len(f) == 2:
                procs += 1
                rss += int(f[1])
                pss += pss_kb(int(f[0]))
        best["max_rss_kb"] = max(best["max_rss_kb"], rss)
        best["max_pss_kb"] = max(best["max_pss_kb"], pss)
        best["max_procs"] = max(best["max_procs"], procs)
        best["samples"] += 1
        time.sleep(interval)
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
