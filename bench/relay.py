#!/usr/bin/env python3
"""End-to-end relay timing: run a load generator against a server that relays
to smtp-sink, and time until every message reached the sink and the server
has recorded it as sent with an empty queue.

    relay.py SINKOUT SERVERLOG SENT_RE BAD_RE QUEUECMD COUNT TIMEOUT LOGFILE -- COMMAND [ARG...]

SINKOUT   the stdout of `smtp-sink -c`: records "sess=A quit=B mesg=C"
          separated by carriage returns; mesg is the number of messages whose
          final "." the sink has received (and answered with 250).
SERVERLOG the relaying server's mail log; SENT_RE matches one line per
          recipient relayed to the sink with status=sent, BAD_RE one line per
          recipient deferred or bounced there.
QUEUECMD  a shell command printing the number of messages still in the
          server's queue; run only once sink and log have reached the goal.

Reads the baselines (sink count, sent and bad lines so far), starts COMMAND
(its output appended to LOGFILE) and follows both files incrementally (only
new bytes are read, so polling costs next to nothing) until the sink counted
COUNT more messages, the log shows COUNT more sent lines, and QUEUECMD prints
0; or TIMEOUT seconds have passed. Then waits (within the same TIMEOUT) for
COMMAND to exit. Prints one JSON line:

    {"done_s": seconds until all three held (null if never; the start of the
                QUEUECMD that printed 0),
     "sink_s": ... until the sink had counted COUNT more messages,
     "sent_s": ... until the log showed COUNT more sent lines,
     "source_s": ... until COMMAND exited, "source_rc": its exit status,
     "sink_at_source_exit": messages the sink had when COMMAND exited,
     "sink": messages counted by the sink at the end minus the baseline,
     "sent": sent lines minus the baseline, "bad": deferred/bounced lines
     minus the baseline, "queued": QUEUECMD's last answer (null if never run),
     "progress": [[seconds, sink count], ...] once a second, "timed_out": bool}

Exits 0 only if COMMAND exited 0, the goal was reached in time and no
deferred or bounced line appeared. Gives up before TIMEOUT if COMMAND fails,
or if it has exited and neither count has moved for 60 s.
"""
import json
import os
import re
import subprocess
import sys
import time

from timed_run import TimedRun

STALL = 60.0
MESG = re.compile(rb"mesg=(\d+)")


class Follower:
    """Reads a growing file from where it left off."""

    def __init__(self, path):
        self.path, self.offset, self.carry = path, 0, b""

    def new_records(self, sep):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.carry + chunk
        parts = data.split(sep)
        self.carry = parts.pop()  # an incomplete last record waits for its end
        return parts


class Sink:
    def __init__(self, path):
        self.f, self.n = Follower(path), 0

    def poll(self):
        for rec in reversed(self.f.new_records(b"\r")):
            m = MESG.search(rec)
            if m:
                self.n = int(m.group(1))
                break
        return self.n


class Log:
    def __init__(self, path, sent_re, bad_re):
        self.f, self.sent_re, self.bad_re = Follower(path), re.compile(sent_re.encode()), re.compile(bad_re.encode())
        self.sent = self.bad = 0

    def poll(self):
        for line in self.f.new_records(b"\n"):
            if self.sent_re.search(line):
                self.sent += 1
            elif self.bad_re.search(line):
                self.bad += 1
        return self.sent


def queued(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, timeout=30, check=False).stdout
        return int(out.split()[-1])
    except (ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def main():
    if len(sys.argv) < 11 or sys.argv[9] != "--":
        sys.exit(__doc__)
    sinkout, serverlog, sent_re, bad_re, queuecmd = sys.argv[1:6]
    want, timeout, logfile = int(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
    cmd = sys.argv[10:]
    sink, log = Sink(sinkout), Log(serverlog, sent_re, bad_re)
    sink_base, sent_base = sink.poll(), log.poll()
    bad_base = log.bad

    run = TimedRun(cmd, logfile)
    t0 = run.t0
    deadline = t0 + timeout
    sink_at_exit = None

    sink_s = sent_s = done_s = None
    q = None
    progress, next_mark = [], 1.0
    last_total, last_change = -1, t0
    while True:
        now = time.monotonic()
        elapsed = now - t0
        s, l = sink.poll() - sink_base, log.poll() - sent_base
        if run.exited_s is not None and sink_at_exit is None:
            sink_at_exit = s  # within one poll interval of the exit
        if sink_s is None and s >= want:
            sink_s = elapsed
        if sent_s is None and l >= want:
            sent_s = elapsed
        if elapsed >= next_mark:
            progress.append([round(elapsed, 1), s])
            next_mark += 1.0
        if sink_s is not None and sent_s is not None:
            # The time the check started: the command reads the queue
            # shortly after (Tern: a process start and a SQLite open, tens of
            # milliseconds on a loaded machine); that is not the server's time.
            asked = time.monotonic() - t0
            q = queued(queuecmd)
            if q == 0:
                done_s = asked
                break
        if now >= deadline:
            break
        if s + l != last_total:
            last_total, last_change = s + l, now
        if run.exited_s is not None and (run.returncode != 0 or now - last_change > STALL):
            break
        done = min(s, l)
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        wait = (want - done) / rate / 4 if rate > 0 and done < want else 0.1
        if sink_s is not None and sent_s is not None:
            wait = 0.05  # only the queue is left to empty
        time.sleep(min(0.1, max(0.005, wait), max(0.0, deadline - now)))

    rc = run.finish(deadline)
    r = lambda x: None if x is None else round(x, 3)
    # Late lines (a duplicate, a deferral) still count against the run.
    time.sleep(0.2)
    print(json.dumps({
        "done_s": r(done_s), "sink_s": r(sink_s), "sent_s": r(sent_s),
        "source_s": r(run.exited_s), "source_rc": rc,
        "sink_at_source_exit": sink_at_exit,
        "sink": sink.poll() - sink_base, "sent": log.poll() - sent_base, "bad": log.bad - bad_base,
        "queued": q, "progress": progress, "timed_out": done_s is None,
    }))
    sys.exit(0 if rc == 0 and done_s is not None and log.bad == bad_base else 1)


if __name__ == "__main__":
    main()
