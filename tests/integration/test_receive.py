"""Receiving mail over SMTP with the real `tern serve`: replies, limits,
pipelining, CHUNKING, relay policy and lifecycle (DESIGN invariants 1, 4, 5)."""
import re
import shutil
import smtplib
import socket
import subprocess
import time
import unittest

from ternlib import DEFAULT_USERS, RawClient, Tern

HOST, PORT = "127.0.0.21", 2525
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def strip_received(test, body, qid):
    """Our Received: header (folded over several lines) is the only thing the
    server may add in front of what the client sent; returns the rest."""
    test.assertTrue(body.startswith(b"Received: "), body[:80])
    end = 0
    while True:
        end = body.index(b"\r\n", end) + 2
        if body[end:end + 1] not in (b" ", b"\t"):
            break
    test.assertIn(b" id " + qid.encode(), body[:end])
    return body[end:]


class SrcClient(RawClient):
    """RawClient bound to a chosen source address, to control per-IP counts."""

    def __init__(self, source, timeout=10):
        self.sock = socket.create_connection((HOST, PORT), timeout=timeout, source_address=(source, 0))
        self.buf = b""


class Base(unittest.TestCase):
    def tern(self, **kw):
        t = Tern(host=HOST, port=PORT, deliver=False, **kw)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        return t.start()

    def raw(self, ehlo=True):
        c = RawClient(HOST, PORT)
        self.addCleanup(c.close)
        self.assertEqual(c.read_reply()[0], 220)
        if ehlo:
            self.assertEqual(c.cmd(b"EHLO client.test")[0], 250)
        return c

    def envelope(self, c):
        self.assertEqual(c.cmd(b"MAIL FROM:<a@example.test>")[0], 250)
        self.assertEqual(c.cmd(b"RCPT TO:<bob@example.test>")[0], 250)

    def smtp(self, ehlo=True):
        s = smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=10)
        self.addCleanup(s.close)
        if ehlo:
            self.assertEqual(s.ehlo()[0], 250)
        return s

    def msgs(self, t):
        return {m["id"]: m for m in t.queue_list()}

    def expect(self, reply, code, enhanced=None):
        """Checks a reply from RawClient (code, [lines]) or smtplib (code, bytes)."""
        self.assertEqual(reply[0], code, reply)
        if enhanced:
            first = reply[1][0][4:] if isinstance(reply[1], list) else reply[1].decode().split("\n")[0]
            self.assertEqual(first.split(" ")[0], enhanced, reply)

    def queued_id(self, reply):
        line = reply[1][-1] if isinstance(reply[1], list) else "250 " + reply[1].decode()
        m = QUEUED.match(line)
        self.assertIsNotNone(m, reply)
        return m.group(1)

    def ids(self, t):
        return [m["id"] for m in t.queue_list()]

    def settle(self, t, timeout=5):
        """Waits until every connection so far (including ternlib's port probe)
        has been closed by the server, so that connection counts start at 0."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = t.logs()
            if log.count("connect from [") == 2 * log.count("disconnect from ["):
                return
            time.sleep(0.05)
        self.fail("server did not see all connections close")


class Transaction(Base):
    def setUp(self):
        self.t = self.tern()

    def test_swaks_transaction(self):
        r = subprocess.run(["swaks", "--server", f"{HOST}:{PORT}", "--from", "alice@example.test",
                            "--to", "bob@example.test", "--timeout", "10"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(rb"<-  250 2\.0\.0 Ok: queued as (\S+)\r?\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        qid = m.group(1).decode()
        msgs = self.msgs(self.t)
        self.assertIn(qid, msgs)
        self.assertEqual(msgs[qid]["sender"], "alice@example.test")
        self.assertEqual([(r["address"], r["status"]) for r in msgs[qid]["recipients"]],
                         [("bob@example.test", "queued")])

    def test_body_stored_byte_for_byte(self):
        bodies = {
            # smtplib dot-stuffs ".leading" and "." on the wire; the server must unstuff.
            "dots": b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend. \r\n",
            "8bit": b"Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\xfe\x80 raw octets\r\n\t tab line\r\n",
            "minimal": b"\r\n",
        }
        s = self.smtp()
        for name, body in bodies.items():
            with self.subTest(name):
                opts = ["BODY=8BITMIME"] if name == "8bit" else []
                self.assertEqual(s.mail("alice@example.test", opts)[0], 250)
                self.assertEqual(s.rcpt("bob@example.test")[0], 250)
                qid = self.queued_id(s.data(body))
                self.assertEqual(strip_received(self, self.t.message_body(qid), qid), body)
                if opts:
                    self.assertEqual(self.msgs(self.t)[qid]["body_type"], "8BITMIME")
        # A message that is nothing at all: "." right after the 354.
        c = self.raw()
        self.envelope(c)
        self.assertEqual(c.cmd(b"DATA")[0], 354)
        qid = self.queued_id(c.cmd(b"."))
        self.assertEqual(strip_received(self, self.t.message_body(qid), qid), b"")

    def test_envelopes(self):
        s = self.smtp()
        rcpts = ["alice@example.test", "bob@example.test", "carol@example.test"]
        s.mail("sender@elsewhere.test")
        for r in rcpts:
            self.assertEqual(s.rcpt(r)[0], 250)
        multi = self.queued_id(s.data(b"Subject: multi\r\n\r\nx\r\n"))
        s.mail("<>")  # the null reverse-path of bounces
        self.assertEqual(s.rcpt("bob@example.test")[0], 250)
        null = self.queued_id(s.data(b"Subject: bounce\r\n\r\nx\r\n"))
        msgs = self.msgs(self.t)
        self.assertEqual(sorted(r["address"] for r in msgs[multi]["recipients"]), rcpts)
        self.assertEqual(msgs[null]["sender"], "")

    def test_command_replies(self):
        s = self.smtp(ehlo=False)
        # Order errors first, before EHLO.
        self.expect(s.docmd("MAIL", "FROM:<a@example.test>"), 503, "5.5.1")
        code, ext = s.ehlo()
        self.assertEqual(code, 250)
        for kw in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking", "dsn"):
            self.assertIn(kw, s.esmtp_features)
        self.assertEqual(s.esmtp_features.get("size"), "1048576")
        self.expect(s.docmd("RCPT", "TO:<bob@example.test>"), 503, "5.5.1")
        self.expect(s.docmd("MAIL", "FROM:<a@example.test>"), 250, "2.1.0")
        self.expect(s.docmd("DATA"), 503, "5.5.1")
        self.expect(s.docmd("RSET"), 250, "2.0.0")
        self.expect(s.docmd("VRFY", "bob@example.test"), 252)
        self.expect(s.docmd("NOOP"), 250, "2.0.0")
        self.assertEqual(s.docmd("HELP")[0], 214)
        self.expect(s.docmd("FROB", "x"), 500, "5.5.2")
        self.assertEqual(s.docmd("MAIL", "FROM:<a@@example.test>")[0], 501)
        self.assertEqual(s.docmd("MAIL", "FROM:a@example.test")[0], 501)
        self.expect(s.docmd("MAIL", "FROM:<a@example.test> FROB=1"), 555, "5.5.4")
        self.expect(s.docmd("MAIL", "FROM:<a@example.test> SIZE=2000000"), 552, "5.3.4")
        self.expect(s.docmd("MAIL", "FROM:<a@example.test> SIZE=1000"), 250, "2.1.0")
        self.assertEqual(s.docmd("RCPT", "TO:<bob@>")[0], 501)
        self.expect(s.docmd("RCPT", "TO:<bob@example.test>"), 250, "2.1.5")
        self.assertEqual(self.ids(self.t), [])  # nothing queued by any of that

    def test_pipelining(self):
        c = self.raw(ehlo=False)
        c.send(b"EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\nDATA\r\n")
        replies = [c.read_reply() for _ in range(5)]
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 550, 354], replies)
        self.expect(replies[3], 550, "5.1.1")
        # End of the first message and a whole second transaction in one write.
        c.send(b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<b@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
               b"DATA\r\nSubject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
        replies = [c.read_reply() for _ in range(6)]
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 354, 250, 221], replies)
        first, second = self.queued_id(replies[0]), self.queued_id(replies[4])
        self.assertTrue(c.closed())
        self.assertEqual(strip_received(self, self.t.message_body(first), first), b"Subject: one\r\n\r\nfirst\r\n")
        self.assertEqual(strip_received(self, self.t.message_body(second), second), b"Subject: two\r\n\r\nsecond\r\n")
        msgs = self.msgs(self.t)
        self.assertEqual([r["address"] for r in msgs[first]["recipients"]], ["bob@example.test"])
        self.assertEqual([r["address"] for r in msgs[second]["recipients"]], ["carol@example.test"])

    def test_bdat(self):
        c = self.raw()
        self.envelope(c)
        c.send(b"BDAT 5\r\nhello")
        self.assertEqual(c.read_reply()[0], 250)
        qid = self.queued_id(c.cmd(b"BDAT 0 LAST"))
        self.assertEqual(strip_received(self, self.t.message_body(qid), qid), b"hello")
        # CHUNKING has no dot transparency: these octets are stored as they are.
        chunk = b"a\r\n.\r\n..b\r\n"
        self.envelope(c)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        qid = self.queued_id(c.read_reply())
        self.assertEqual(strip_received(self, self.t.message_body(qid), qid), chunk)

    def test_refused_bdat_still_reads_its_chunk(self):
        c = self.raw()
        # If the chunk were read as commands, "QUIT" would end the session.
        c.send(b"BDAT 6\r\nQUIT\r\n")
        self.expect(c.read_reply(), 503, "5.5.1")
        self.assertEqual(c.cmd(b"MAIL FROM:<a@example.test>")[0], 250)
        c.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        self.expect(c.read_reply(), 503, "5.5.1")
        self.expect(c.read_reply(), 250, "2.0.0")
        self.assertEqual(self.ids(self.t), [])


class Policy(Base):
    def test_unknown_local_user(self):
        t = self.tern()
        s = self.smtp()
        s.mail("a@example.test")
        self.expect(s.rcpt("nobody@example.test"), 550, "5.1.1")
        self.assertEqual(s.docmd("DATA")[0] // 100, 5)
        self.assertEqual(self.ids(t), [])

    def test_no_open_relay(self):
        t = self.tern(relay_networks=[])
        s = self.smtp()
        s.mail("a@example.test")
        self.expect(s.rcpt("someone@remote.test"), 554, "5.7.1")
        # Other spellings of a remote recipient must not slip through either.
        for rcpt in ("<@example.test:someone@remote.test>", "<someone@REMOTE.TEST>", "<someone@[192.0.2.1]>",
                     "<someone@example.test.remote.test>", "<someone%remote.test@example.test>"):
            code = s.docmd("RCPT", "TO:" + rcpt)[0]
            self.assertGreaterEqual(code, 500, rcpt)
        self.assertEqual(s.docmd("DATA")[0] // 100, 5)
        self.assertEqual(self.ids(t), [])
        self.assertEqual(s.rcpt("bob@example.test")[0], 250)  # local delivery is still fine

    def test_relay_network_may_relay(self):
        t = self.tern()
        s = self.smtp()
        s.mail("a@example.test")
        self.assertEqual(s.rcpt("someone@remote.test")[0], 250)
        qid = self.queued_id(s.data(b"Subject: out\r\n\r\nx\r\n"))
        [m] = t.queue_list()
        self.assertEqual((m["id"], m["recipients"][0]["address"]), (qid, "someone@remote.test"))


class Limits(Base):
    def test_message_too_big(self):
        t = self.tern(limits={"max_message_size": 10000})
        s = self.smtp()
        s.mail("a@example.test")
        s.rcpt("bob@example.test")
        self.expect(s.data(b"x" * 19998 + b"\r\n"), 552, "5.3.4")
        self.assertEqual(self.ids(t), [])
        # Same connection: exactly the limit is fine, one octet more is not.
        for size, ok in ((10000, True), (10001, False)):
            s.mail("a@example.test")
            s.rcpt("bob@example.test")
            body = b"y" * (size - 2) + b"\r\n"
            if ok:
                qid = self.queued_id(s.data(body))
            else:
                self.expect(s.data(body), 552, "5.3.4")
        self.assertEqual(self.ids(t), [qid])
        self.assertEqual(strip_received(self, t.message_body(qid), qid), b"y" * 9998 + b"\r\n")

    def test_too_many_recipients(self):
        t = self.tern(limits={"max_recipients": 3}, users=DEFAULT_USERS + ["dave@example.test"])
        s = self.smtp()
        s.mail("a@example.test")
        for r in DEFAULT_USERS:
            self.assertEqual(s.rcpt(r)[0], 250)
        self.expect(s.rcpt("dave@example.test"), 452, "4.5.3")
        qid = self.queued_id(s.data(b"Subject: three\r\n\r\nx\r\n"))
        [m] = t.queue_list()
        self.assertEqual(m["id"], qid)
        self.assertEqual(sorted(r["address"] for r in m["recipients"]), DEFAULT_USERS)

    def test_long_lines(self):
        t = self.tern()
        c = self.raw()

        def rss():
            with open(f"/proc/{t.proc.pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

        before = rss()
        c.send(b"A" * 100 * 1024)
        code, lines = c.read_reply()
        self.assertEqual(code, 500, lines)
        self.assertIn("5.5.2", lines[0])
        # 8 MiB more on the same line must not be buffered.
        c.send(b"B" * 8 * 1024 * 1024)
        c.send(b"\r\nNOOP\r\n")
        for _ in range(30):  # more 500s are allowed; then NOOP's 250, or 421 and close
            code, lines = c.read_reply()
            if code != 500:
                break
        self.assertIn(code, (250, 421), lines)
        if code == 421:
            self.assertTrue(c.closed())
        self.assertLess(rss() - before, 4096, "kB of RSS growth for one long line")
        other = self.raw()  # everyone else is still served
        self.assertEqual(other.cmd(b"NOOP")[0], 250)
        # RFC 5321 §4.5.3.1.4: 512 octets with CRLF is the longest command line.
        self.expect(other.cmd(b"NOOP " + b"x" * 505), 250)
        self.expect(other.cmd(b"NOOP " + b"x" * 595), 500)
        self.assertEqual(other.cmd(b"NOOP")[0], 250)

    def test_error_and_junk_limits(self):
        # A client that only sends garbage, or only NOOPs, is cut off eventually.
        self.tern()
        for line, good in ((b"FROB", 500), (b"NOOP", 250)):
            with self.subTest(line):
                c = self.raw()
                c.send((line + b"\r\n") * 150)
                codes, last = [], []
                for _ in range(160):
                    code, lines = c.read_reply()
                    if code is None:
                        break
                    codes.append(code)
                    last = lines
                self.assertEqual(codes[-1], 421, codes)
                self.assertIn("4.7.0", last[0])
                self.assertEqual(set(codes[:-1]), {good})
                self.assertLessEqual(len(codes), 101)
                self.assertTrue(c.closed())

    def test_many_idle_connections(self):
        self.tern()
        idle = []
        try:
            for _ in range(300):
                c = RawClient(HOST, PORT)
                idle.append(c)
                self.assertEqual(c.read_reply()[0], 220)
            t0 = time.time()
            s = smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=2)
            self.addCleanup(s.close)
            self.assertLess(time.time() - t0, 2.0)
            s.sendmail("a@example.test", ["bob@example.test"], b"Subject: busy\r\n\r\nx\r\n")
        finally:
            for c in idle:
                c.close()

    def test_connections_per_ip(self):
        t = self.tern(limits={"max_connections_per_ip": 5})
        self.settle(t)
        held = [SrcClient("127.0.0.41") for _ in range(5)]
        for c in held:
            self.addCleanup(c.close)
            self.assertEqual(c.read_reply()[0], 220)
        sixth = SrcClient("127.0.0.41")
        self.addCleanup(sixth.close)
        self.expect(sixth.read_reply(), 421, "4.7.0")
        self.assertTrue(sixth.closed())
        other = SrcClient("127.0.0.42")  # another address is not affected
        self.addCleanup(other.close)
        self.assertEqual(other.read_reply()[0], 220)
        for c in held:
            self.assertEqual(c.cmd(b"NOOP")[0], 250)
        # A closed connection gives its slot back.
        self.assertEqual(held[0].cmd(b"QUIT")[0], 221)
        self.assertTrue(held[0].closed())
        for _ in range(40):  # the server may need a moment to notice the close
            again = SrcClient("127.0.0.41")
            self.addCleanup(again.close)
            if again.read_reply()[0] == 220:
                break
            time.sleep(0.05)
        else:
            self.fail("slot of a closed connection was not given back")

    def test_connections_total(self):
        t = self.tern(limits={"max_connections": 5, "max_connections_per_ip": 100})
        self.settle(t)
        held = [SrcClient(f"127.0.0.{51 + i}") for i in range(5)]
        for c in held:
            self.addCleanup(c.close)
            self.assertEqual(c.read_reply()[0], 220)
        sixth = SrcClient("127.0.0.56")
        self.addCleanup(sixth.close)
        self.expect(sixth.read_reply(), 421, "4.7.0")
        self.assertTrue(sixth.closed())

    def test_timeouts(self):
        # Both waits at once: an idle client between commands, and one that stalls inside DATA.
        t = self.tern(limits={"command_timeout": "2s", "data_timeout": "2s"})
        idle, stalled = self.raw(ehlo=False), self.raw()
        self.envelope(stalled)
        self.assertEqual(stalled.cmd(b"DATA")[0], 354)
        stalled.send(b"Subject: stalled\r\n\r\npartial")
        t0 = time.time()
        for c in (idle, stalled):
            self.expect(c.read_reply(), 421, "4.4.2")
            self.assertTrue(c.closed())
        self.assertTrue(1.5 <= time.time() - t0 <= 5, time.time() - t0)
        self.assertEqual(self.ids(t), [])


class Lifecycle(Base):
    def test_sigterm_graceful(self):
        t = self.tern()
        idle = self.raw()
        busy = self.raw()
        self.envelope(busy)
        self.assertEqual(busy.cmd(b"DATA")[0], 354)
        busy.send(b"Subject: unfinished\r\n\r\nnot acknowledged")
        self.assertEqual(t.stop(), 0)
        for c in (idle, busy):
            self.expect(c.read_reply(), 421, "4.3.2")
            self.assertTrue(c.closed())
        t.start()  # the unfinished message was never acknowledged, so it is not there
        self.assertEqual(self.ids(t), [])


if __name__ == "__main__":
    unittest.main()
