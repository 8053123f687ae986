#!/usr/bin/env python3
"""Soak: steady SMTP load against Tern for a long time, its memory sampled.

usage: soak.py HOST PORT SECONDS RATE PID MAILDIR SINKOUT [SAMPLE_SECONDS]

Sends RATE messages per second for SECONDS over WORKERS concurrent clients
(message i is due at start + i / RATE; a client that falls behind sends at
once, so the mean rate holds). What is sent is a fixed, repeating mix:
- half to bob@example.test (delivered by Tern into MAILDIR/new), half to
  bob@remote.test (relayed to smtp-sink, whose `-c` output is SINKOUT);
- 1, 1, 2, 3 or 5 messages per connection, then QUIT;
- sizes 1, 4, 10 and 32 KiB;
- every 20th message first names an unknown recipient (must get 550), every
  50th is abandoned once with RSET before it is sent.
Every SAMPLE_SECONDS (default 10) it reads VmRSS, VmHWM, the number of open
descriptors and threads of PID, and empties MAILDIR/new (counting what it
removes) so that the disk does not fill. After the load it waits (at most
120 s) until the sink and the Maildir have every accepted message, and takes
a last sample.

Prints one JSON object: the samples, the counts, and the verdict:
"flat" is true when RSS at the end (median of the last 3 samples) is at most
max(2 MiB, 5 %) above the baseline (median of the first 3 samples after the
warm-up, which is min(180 s, a quarter of the run)) and the descriptor count
grew by at most 16. "slope_kib_per_min" is the least-squares slope of RSS
after the warm-up (informational: in a short soak the tail of the warm-up
dominates it).
"""
import json
import os
import random
import re
import smtplib
import statistics
import sys
import threading
import time

WORKERS = 8
SIZES = [1024, 4096, 10240, 32768]
PER_CONN = [1, 1, 2, 3, 5]
MESG = re.compile(rb"mesg=(\d+)")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


class SinkCount:
    """The last mesg= count in smtp-sink's -c output, read incrementally."""

    def __init__(self, path):
        self.path, self.offset, self.n = path, 0, 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.n
        # Keep an incomplete last record for the next poll.
        cut = chunk.rfind(b"\r")
        if cut >= 0:
            self.offset += cut + 1
            for rec in reversed(chunk[:cut].split(b"\r")):
                m = MESG.search(rec)
                if m:
                    self.n = int(m.group(1))
                    break
        return self.n


def body(i, size):
    head = f"From: alice@example.test\r\nSubject: soak {i}\r\nMessage-ID: <soak-{i}@example.test>\r\n\r\n"
    rnd = random.Random(i)
    lines = []
    n = len(head)
    while n < size:
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz .") for _ in range(70))
        lines.append(line)
        n += 72
    return (head + "\r\n".join(lines) + "\r\n").encode()


class Load:
    def __init__(self, host, port, seconds, rate):
        self.host, self.port, self.rate = host, port, rate
        self.total = int(seconds * rate)
        self.lock = threading.Lock()
        self.next = 0
        self.t0 = None
        self.counts = {"local": 0, "relay": 0, "unknown_rejected": 0, "rset": 0, "connections": 0, "errors": 0}
        self.max_lag = 0.0
        self.error_samples = []
        self.stop = threading.Event()

    def take(self):
        with self.lock:
            if self.next >= self.total or self.stop.is_set():
                return None
            i = self.next
            self.next += 1
            return i

    def bump(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def error(self, what):
        with self.lock:
            self.counts["errors"] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(what)

    def send_one(self, s, i):
        due = self.t0 + i / self.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            with self.lock:
                self.max_lag = max(self.max_lag, now - due)
        relay = i % 2 == 1
        rcpt = "bob@remote.test" if relay else "bob@example.test"
        if i % 50 == 13:
            code, _ = s.mail("alice@example.test")
            if code != 250:
                return self.error(f"{i}: MAIL before RSET: {code}")
            code, _ = s.rset()
            if code != 250:
                return self.error(f"{i}: RSET: {code}")
            self.bump("rset")
        code, msg = s.mail("alice@example.test")
        if code != 250:
            return self.error(f"{i}: MAIL: {code} {msg!r}")
        if i % 20 == 7:
            code, msg = s.rcpt("nobody@example.test")
            if code != 550:
                return self.error(f"{i}: RCPT to an unknown user: {code} {msg!r}")
            self.bump("unknown_rejected")
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return self.error(f"{i}: RCPT: {code} {msg!r}")
        code, msg = s.data(body(i, SIZES[i % len(SIZES)]))
        if code != 250:
            return self.error(f"{i}: DATA: {code} {msg!r}")
        self.bump("relay" if relay else "local")

    def worker(self, w):
        k = w
        while not self.stop.is_set():
            n = PER_CONN[k % len(PER_CONN)]
            k += 1
            i = self.take()
            if i is None:
                return
            try:
                with smtplib.SMTP(self.host, self.port, local_hostname="soak.test", timeout=30) as s:
                    self.bump("connections")
                    code, _ = s.ehlo()
                    if code != 250:
                        self.error(f"{i}: EHLO: {code}")
                        continue
                    for j in range(n):
                        if j:
                            i = self.take()
                            if i is None:
                                break
                        self.send_one(s, i)
                    s.quit()
            except (OSError, smtplib.SMTPException) as e:
                self.error(f"{i}: {type(e).__name__}: {e}")
                time.sleep(0.1)

    def run_threads(self):
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(WORKERS)]
        for t in threads:
            t.start()
        return threads


def empty_maildir(new_dir):
    removed = 0
    try:
        names = os.listdir(new_dir)
    except FileNotFoundError:
        return 0
    for n in names:
        try:
            os.unlink(os.path.join(new_dir, n))
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def slope_per_min(points):
    """Least-squares slope of (seconds, kib) points, in KiB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 60


def main():
    if len(sys.argv) not in (8, 9):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, seconds, rate, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    new_dir, sink_out = os.path.join(sys.argv[6], "new"), sys.argv[7]
    every = float(sys.argv[8]) if len(sys.argv) == 9 else 10.0

    sink = SinkCount(sink_out)
    sink0 = sink.poll()
    empty_maildir(new_dir)  # what was there before (the warm-up) does not count
    delivered = 0
    load = Load(host, port, seconds, rate)
    samples = []

    def sample(phase):
        st = status(pid)
        nonlocal delivered
        delivered += empty_maildir(new_dir)
        with load.lock:
            c = dict(load.counts)
        row = {"t": round(time.monotonic() - load.t0, 1), "phase": phase, "rss_kb": st["VmRSS"],
               "hwm_kb": st["VmHWM"], "fds": st["fds"], "threads": st["Threads"],
               "accepted": c["local"] + c["relay"], "errors": c["errors"],
               "at_sink": sink.poll() - sink0, "in_maildir": delivered}
        samples.append(row)
        print(f"[soak] t={row['t']:7.1f}s rss={row['rss_kb'] / 1024:7.1f} MiB fds={row['fds']:5d} "
              f"threads={row['threads']:3d} accepted={row['accepted']} errors={row['errors']}",
              file=sys.stderr, flush=True)

    threads = load.run_threads()
    sample("load")
    end = load.t0 + seconds
    next_at = load.t0 + every
    while True:
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(max(0.0, min(next_at, end) - now))
        if time.monotonic() >= next_at:
            sample("load")
            next_at += every
    load.stop.set()
    for t in threads:
        t.join(timeout=60)
    stuck = sum(t.is_alive() for t in threads)
    # Wait until everything accepted has arrived (bounded).
    with load.lock:
        want_local, want_relay = load.counts["local"], load.counts["relay"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        delivered += empty_maildir(new_dir)
        if delivered >= want_local and sink.poll() - sink0 >= want_relay:
            break
        time.sleep(0.5)
    time.sleep(2)
    sample("after")

    warm = min(180.0, seconds / 4)
    steady = [s for s in samples if s["phase"] == "load" and s["t"] >= warm] or samples[-3:]
    base = statistics.median(s["rss_kb"] for s in steady[:3])
    last = [s for s in samples if s["phase"] == "load"][-3:] or samples[-1:]
    end_rss = statistics.median(s["rss_kb"] for s in last)
    base_fds = statistics.median(s["fds"] for s in steady[:3])
    end_fds = samples[-1]["fds"]
    growth = end_rss - base
    allowed = max(2048, base * 0.05)
    flat = growth <= allowed and end_fds - base_fds <= 16
    with load.lock:
        counts = dict(load.counts)
    print(json.dumps({
        "seconds": seconds, "rate": rate, "workers": WORKERS, "planned": load.total,
        "counts": counts, "error_samples": load.error_samples, "max_lag_s": round(load.max_lag, 3),
        "stuck_workers": stuck,
        "delivered_to_maildir": delivered, "at_sink": sink.poll() - sink0,
        "warmup_s": warm, "baseline_rss_kb": base, "end_rss_kb": end_rss, "growth_kb": growth,
        "allowed_growth_kb": round(allowed), "baseline_fds": base_fds, "end_fds": end_fds,
        "slope_kib_per_min": round(slope_per_min([(s["t"], s["rss_kb"]) for s in steady])),
        "peak_hwm_kb": max(s["hwm_kb"] for s in samples), "flat": flat, "samples": samples,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
