#!/usr/bin/env python3
"""Per-message latency of one SMTP server over one connection.

For each message: MAIL, RCPT, DATA, the message bytes, and then the clock
starts just before the final "." line is sent and stops when the reply to it
arrives. That interval is what the server spends making the message durable
(both Tern and Postfix fsync before they answer 250).

usage: latency.py HOST PORT COUNT [SIZE]
prints one JSON object: count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms.
"""
import json
import smtplib
import socket
import sys
import time


def body_of(size: int, n: int) -> bytes:
    head = (
        "From: <alice@example.test>\r\n"
        "To: <bob@example.test>\r\n"
        f"Subject: latency {n}\r\n"
        f"Message-ID: <lat{n}.{time.time_ns()}@bench.example.test>\r\n"
        "\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = bytearray(head)
    while len(body) + len(line) <= size:
        body += line
    return bytes(body)  # ends with CRLF, no line starts with "."


def percentile(sorted_values, p):
    # nearest-rank percentile
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024

    s = smtplib.SMTP(host, port, local_hostname="bench.example.test", timeout=30)
    # The final ".\r\n" is a tiny write after a large one: without NODELAY,
    # Nagle plus delayed ACK would add tens of milliseconds to every sample.
    s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    code, _ = s.ehlo()
    if code != 250:
        raise SystemExit(f"EHLO refused: {code}")

    samples = []
    for n in range(count):
        code, msg = s.mail("alice@example.test")
        if code != 250:
            raise SystemExit(f"MAIL refused: {code} {msg!r}")
        code, msg = s.rcpt("bob@example.test")
        if code not in (250, 251):
            raise SystemExit(f"RCPT refused: {code} {msg!r}")
        s.putcmd("data")
        code, msg = s.getreply()
        if code != 354:
            raise SystemExit(f"DATA refused: {code} {msg!r}")
        s.send(body_of(size, n))
        t0 = time.perf_counter()
        s.send(b".\r\n")
        code, msg = s.getreply()
        t1 = time.perf_counter()
        if code != 250:
            raise SystemExit(f"message {n} not accepted: {code} {msg!r}")
        samples.append((t1 - t0) * 1000.0)
    s.quit()

    v = sorted(samples)
    print(json.dumps({
        "count": len(v),
        "p50_ms": round(percentile(v, 50), 3),
        "p90_ms": round(percentile(v, 90), 3),
        "p99_ms": round(percentile(v, 99), 3),
        "max_ms": round(v[-1], 3),
        "mean_ms": round(sum(v) / len(v), 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
