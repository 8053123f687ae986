#!/usr/bin/env python3
"""Per-message time from queued to sent, from a server's own mail log.

    logdelays.py tern|postfix|opensmtpd LOGFILE SENT_RE LAST

Takes the last LAST lines matching SENT_RE (one per relayed recipient) and
prints one JSON line with p50_ms, p90_ms, p99_ms, max_ms, mean_ms and n.

tern:    the millisecond timestamps of the log lines (Tern's own delay= has
         10 ms resolution, like Postfix's): from the message's
         "ID: from=<...> ... (queue active)" line (written once it is
         committed, just before its 250) to its "ID: to=<...> status=sent" line.
postfix: the delay= field (arrival to sent, 10 ms resolution); also the means
         of delays=a/b/c/d (before the queue manager, in it, connection setup,
         transmission) as delays_ms.
opensmtpd: the delay= field, which it writes in whole seconds ("2s",
         "1m5s"), so its percentiles move in steps of 1000 ms.
"""
import datetime
import json
import re
import sys

TERN_LINE = re.compile(r"^(\S+)Z tern\[\d+\]: ([0-9A-Za-z]+): (from=<|to=<)")
PF_DELAY = re.compile(r" delay=([0-9.]+), delays=([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+),")
OS_DELAY = re.compile(r" delay=((?:\d+[dhms])+) ")
OS_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("tern", "postfix", "opensmtpd"):
        sys.exit(__doc__)
    kind, path, sent_re, last = sys.argv[1], sys.argv[2], re.compile(sys.argv[3]), int(sys.argv[4])
    delays, parts = [], []
    queued = {}
    with open(path, errors="replace") as f:
        for line in f:
            if kind == "tern":
                m = TERN_LINE.match(line)
                if not m:
                    continue
                if m.group(3) == "from=<":
                    queued[m.group(2)] = m.group(1)
                elif sent_re.search(line) and m.group(2) in queued:
                    t0 = datetime.datetime.fromisoformat(queued[m.group(2)])
                    t1 = datetime.datetime.fromisoformat(m.group(1))
                    delays.append((t1 - t0).total_seconds())
            elif kind == "opensmtpd":
                m = OS_DELAY.search(line) if sent_re.search(line) else None
                if m:
                    delays.append(float(sum(int(n) * OS_UNIT[u] for n, u in re.findall(r"(\d+)([dhms])", m.group(1)))))
            elif sent_re.search(line):
                m = PF_DELAY.search(line)
                if m:
                    delays.append(float(m.group(1)))
                    parts.append([float(m.group(i)) for i in range(2, 6)])
    delays, parts = delays[-last:], parts[-last:]
    out = {"n": len(delays)}
    if delays:
        v = sorted(delays)
        ms = lambda x: round(x * 1000, 1)
        out.update(p50_ms=ms(pct(v, 0.5)), p90_ms=ms(pct(v, 0.9)), p99_ms=ms(pct(v, 0.99)), max_ms=ms(v[-1]),
                   mean_ms=ms(sum(v) / len(v)))
        if parts:
            out["delays_ms"] = "/".join(str(ms(sum(p[i] for p in parts) / len(parts))) for i in range(4))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
