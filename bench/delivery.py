#!/usr/bin/env python3
"""End-to-end delivery timing: run a load generator and time until its
messages are files in a Maildir new/ directory.

    delivery.py NEWDIR COUNT TIMEOUT LOGFILE -- COMMAND [ARG...]

Counts the files already in NEWDIR (the baseline), starts COMMAND (its output
appended to LOGFILE), and polls the number of entries in NEWDIR until it
reaches baseline + COUNT or TIMEOUT seconds have passed. Then waits (within
the same TIMEOUT) for COMMAND to exit. Prints one JSON line:

    {"delivered_s": seconds from start until baseline + COUNT files were there
                    (null if never), "source_s": seconds until COMMAND exited,
     "source_rc": its exit status, "baseline": N, "count": files seen at the end
     minus the baseline, "timed_out": bool}

Exits 0 only if COMMAND exited 0 and the count was reached in time. Gives up
before TIMEOUT if COMMAND fails, or if it has exited and no new file has
appeared for 60 s.

Polling is adaptive so that it costs little CPU while far from the goal and
resolves the finishing time to a few milliseconds near it: the interval is a
quarter of the estimated time still needed, between 5 ms and 100 ms.
"""
import json
import os
import sys
import time

from timed_run import TimedRun


STALL = 60.0


def count(d):
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def main():
    if len(sys.argv) < 7 or sys.argv[5] != "--":
        sys.exit(__doc__)
    newdir, want, timeout, logfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    cmd = sys.argv[6:]
    baseline = count(newdir)
    goal = baseline + want

    run = TimedRun(cmd, logfile)
    t0 = run.t0
    deadline = t0 + timeout
    delivered_s = None
    n = baseline
    last_n, last_change = baseline, t0
    while True:
        now = time.monotonic()
        n = count(newdir)
        if n >= goal:
            delivered_s = time.monotonic() - t0
            break
        if now >= deadline:
            break
        if n != last_n:
            last_n, last_change = n, now
        # Give up early when nothing more can come: the load generator failed,
        # or it is done and no file has arrived for STALL seconds.
        if run.exited_s is not None and (run.returncode != 0 or now - last_change > STALL):
            break
        elapsed = now - t0
        rate = (n - baseline) / elapsed if elapsed > 0 and n > baseline else 0.0
        wait = (goal - n) / rate / 4 if rate > 0 else 0.1
        time.sleep(min(0.1, max(0.005, wait), max(0.0, deadline - now)))

    # The load generator normally exits before the last delivery; give it the
    # rest of the time budget, then stop it (it is our own child).
    rc = run.finish(deadline)
    source_s = run.exited_s
    print(json.dumps({
        "delivered_s": None if delivered_s is None else round(delivered_s, 3),
        "source_s": None if source_s is None else round(source_s, 3),
        "source_rc": rc,
        "baseline": baseline,
        "count": count(newdir) - baseline,
        "timed_out": delivered_s is None,
    }))
    sys.exit(0 if rc == 0 and delivered_s is not None else 1)


if __name__ == "__main__":
    main()
