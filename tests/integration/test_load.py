"""Many connections at once with the real `tern serve`: 10 000 idle sessions
held open (memory per connection printed, a new client still served at once)
and the connection limits refusing with 421 4.7.0 at the configured count.

The descriptor limit is raised in this process (the client holds one socket
per connection) and inherited by tern, which needs one per session as well;
the test checks tern's own limit through /proc before it starts. Memory
figures under ASan (the build-test binary) are inflated several times, so the
per-connection figure is printed, not asserted; bench/run measures it on a
Release build."""
import errno
import os
import re
import resource
import selectors
import shutil
import socket
import time
import unittest

from ternlib import RawClient, Tern

HOST, PORT = "127.0.0.80", 2525
IDLE = 10_000
# Sources for the idle connections: 2 500 each, far from the ephemeral port
# range (28 000 ports per source address and destination).
SOURCES = ["127.0.0.81", "127.0.0.82", "127.0.0.83", "127.0.0.84"]
NEW_CLIENT = "127.0.0.85"  # the client that must still be served at once
FD_MARGIN = 200  # listeners, the queue database, log, selector, ...
WINDOW = 500  # connections in flight (connect sent, greeting not yet read)
OPEN_DEADLINE = 45.0  # seconds to open all of them; the whole module must stay far below 90 s
GREETING_WITHIN = 2.0
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE to at least want (children inherit
    it); returns the new soft limit, or None if the hard limit forbids it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            return None
    new = hard if hard != resource.RLIM_INFINITY else want
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{key} missing in /proc/{pid}/status")


def settled_rss_kb(pid, readings=5, gap=0.2):
    """The smallest of a few VmRSS readings: the server may still be busy."""
    best = None
    for _ in range(readings):
        v = status_kb(pid, "VmRSS")
        best = v if best is None else min(best, v)
        time.sleep(gap)
    return best


class SrcClient(RawClient):
    """RawClient bound to a chosen source address."""

    def __init__(self, source, timeout=10):
        self.sock = socket.create_connection((HOST, PORT), timeout=timeout, source_address=(source, 0))
        self.buf = b""


def open_idle(count, sources, deadline_s):
    """Opens count connections (round robin over sources), at most WINDOW at a
    time without their greeting, and reads the 220 on each with one selector.
    Returns the sockets (blocking mode again) in opening order; raises
    AssertionError with what went wrong. Bounded by deadline_s."""
    sel = selectors.DefaultSelector()
    socks = [None] * count
    bufs = {}
    pending = 0
    started = done = 0
    deadline = time.monotonic() + deadline_s
    try:
        while done < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {done} of {count} greetings after {deadline_s:.0f} s "
                                     f"({started} connections started)")
            while started < count and pending < WINDOW:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.bind((sources[started % len(sources)], 0))
                rc = s.connect_ex((HOST, PORT))
                if rc not in (0, errno.EINPROGRESS):
                    s.close()
                    raise AssertionError(f"connection {started}: connect: {os.strerror(rc)}")
                socks[started] = s
                bufs[s] = b""
                sel.register(s, selectors.EVENT_READ, started)
                started += 1
                pending += 1
            for key, _ in sel.select(timeout=1.0):
                s, i = key.fileobj, key.data
                try:
                    chunk = s.recv(512)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise AssertionError(f"connection {i}: {e}") from e
                if not chunk:
                    raise AssertionError(f"connection {i}: closed before the greeting ({bufs[s][:60]!r})")
                bufs[s] += chunk
                if not bufs[s].endswith(b"\r\n"):
                    continue
                last = bufs[s].rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
                if last[3:4] == b"-":
                    continue  # a multi-line greeting goes on
                if not bufs[s].startswith(b"220"):
                    raise AssertionError(f"connection {i}: greeting {bufs[s][:80]!r}")
                sel.unregister(s)
                del bufs[s]
                s.setblocking(True)
                pending -= 1
                done += 1
        return socks
    except BaseException:
        for s in socks:
            if s is not None:
                s.close()
        raise
    finally:
        sel.close()


class Load(unittest.TestCase):
    def tern(self, **kw):
        t = Tern(host=HOST, port=PORT, deliver=False, **kw)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        return t.start()

    def settle(self, t, timeout=5):
        """Waits until the server has seen every connection so far (ternlib's
        port probe included) close, so that its counts start at 0."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = t.logs()
            if log.count("connect from [") == 2 * log.count("disconnect from ["):
                return
            time.sleep(0.05)
        self.fail("server did not see all connections close")

    def client(self, source):
        c = SrcClient(source)
        self.addCleanup(c.close)
        return c

    def expect_421(self, c, what):
        code, lines = c.read_reply()
        self.assertEqual(code, 421, f"{what}: {lines}")
        self.assertTrue(lines[0].startswith("421 4.7.0 "), f"{what}: {lines}")
        self.assertTrue(c.closed(), f"{what}: not closed after the 421")

    def test_10000_idle_connections(self):
        want = IDLE + FD_MARGIN
        if raise_nofile(want) is None:
            self.skipTest(f"RLIMIT_NOFILE hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]} "
                          f"is below {want}")
        # tern inherits the raised limit; make sure it has it.
        t = self.tern(limits={"max_connections": 12000, "max_connections_per_ip": 12000})
        pid = t.proc.pid
        srv_soft, _ = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        self.assertGreaterEqual(srv_soft, want, "tern did not get the raised descriptor limit")
        self.settle(t)

        before = settled_rss_kb(pid)
        t0 = time.monotonic()
        conns = open_idle(IDLE, SOURCES, OPEN_DEADLINE)
        try:
            opened = time.monotonic() - t0
            time.sleep(1.0)
            after = settled_rss_kb(pid)
            per_conn = (after - before) * 1024 / IDLE
            print(f"\n{IDLE} idle connections opened in {opened:.1f} s; tern VmRSS {before / 1024:.1f} MiB -> "
                  f"{after / 1024:.1f} MiB, {per_conn:.0f} bytes per connection "
                  f"(VmHWM {status_kb(pid, 'VmHWM') / 1024:.1f} MiB; an ASan build inflates these)", flush=True)

            # A new client is still served at once, and can send a message.
            t1 = time.monotonic()
            c = self.client(NEW_CLIENT)
            c.sock.settimeout(GREETING_WITHIN)
            code, lines = c.read_reply()
            waited = time.monotonic() - t1
            self.assertEqual(code, 220, lines)
            self.assertLess(waited, GREETING_WITHIN)
            print(f"greeting for a new client with {IDLE} idle ones: {waited * 1000:.1f} ms", flush=True)
            c.sock.settimeout(10)
            self.assertEqual(c.cmd(b"EHLO client.test")[0], 250)
            self.assertEqual(c.cmd(b"MAIL FROM:<alice@example.test>")[0], 250)
            self.assertEqual(c.cmd(b"RCPT TO:<bob@example.test>")[0], 250)
            self.assertEqual(c.cmd(b"DATA")[0], 354)
            code, lines = c.cmd(b"Subject: under load\r\n\r\nstill here\r\n.")
            self.assertEqual(code, 250, lines)
            m = QUEUED.match(lines[-1])
            self.assertIsNotNone(m, lines)
            self.assertEqual(c.cmd(b"QUIT")[0], 221)
            self.assertIn(m.group(1), [x["id"] for x in t.queue_list()])

            # The idle ones are still being served: the first, the last and a few between.
            for i in (0, 1, IDLE // 3, IDLE // 2, IDLE - 2, IDLE - 1):
                s = conns[i]
                s.settimeout(10)
                s.sendall(b"NOOP\r\n")
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = s.recv(512)
                    self.assertTrue(chunk, f"idle connection {i} closed")
                    reply += chunk
                self.assertTrue(reply.startswith(b"250"), f"idle connection {i}: {reply!r}")
        finally:
            for s in conns:
                s.close()
        self.assertNotIn("warning: accept", t.logs())
        self.assertNotIn("too many connections", t.logs())

    def test_connection_limits(self):
        t = self.tern(limits={"max_connections": 20, "max_connections_per_ip": 5})
        self.settle(t)
        held = []
        for _ in range(5):
            c = self.client("127.0.0.81")
            self.assertEqual(c.read_reply()[0], 220)
            held.append(c)
        self.expect_421(self.client("127.0.0.81"), "6th connection from 127.0.0.81")
        for src in ("127.0.0.82", "127.0.0.83", "127.0.0.84"):
            for _ in range(5):
                c = self.client(src)
                self.assertEqual(c.read_reply()[0], 220, src)
                held.append(c)
        self.assertEqual(len(held), 20)
        self.expect_421(self.client("127.0.0.85"), "21st connection in total")
        # The 20 held ones were not disturbed by the refusals.
        for c in held:
            self.assertEqual(c.cmd(b"NOOP")[0], 250)
        logs = t.logs()
        self.assertIn("warning: too many connections from [127.0.0.81]", logs)
        self.assertIn("warning: too many connections, refusing [127.0.0.85]", logs)


if __name__ == "__main__":
    unittest.main()
