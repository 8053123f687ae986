"""SMTP smuggling defence (DESIGN invariant 3): a message ends at <CRLF>.<CRLF>
and nowhere else, so a sender can never hide a second message inside the
first one that another server would split differently."""
import shutil
import time
import unittest

from ternlib import RawClient, Tern

HOST, PORT = "127.0.0.22", 2525

# Each of these is a line end or end-of-data to some MTA somewhere.
SMUGGLE = {"LF.LF": b"\n.\n", "CRLF.LF": b"\r\n.\n", "LF.CRLF": b"\n.\r\n", "CR.CRLF": b"\r.\r\n", "bare CR": b"\r"}

SECOND = (b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
          b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")


class Smuggling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Tern(host=HOST, port=PORT, deliver=False).start()

    @classmethod
    def tearDownClass(cls):
        cls.t.stop()
        shutil.rmtree(cls.t.dir, True)

    def tearDown(self):
        # Every test leaves the queue empty or cleans up what it queued on purpose.
        for m in self.t.queue_list():
            self.t.cli("queue", "delete", m["id"])

    def client(self):
        c = RawClient(HOST, PORT, timeout=5)
        self.addCleanup(c.close)
        self.assertEqual(c.read_reply()[0], 220)
        self.assertEqual(c.cmd(b"EHLO client.test")[0], 250)
        return c

    def in_data(self):
        c = self.client()
        for cmd in (b"MAIL FROM:<alice@example.test>", b"RCPT TO:<bob@example.test>"):
            self.assertEqual(c.cmd(cmd)[0], 250)
        self.assertEqual(c.cmd(b"DATA")[0], 354)
        return c

    def assert_refused(self, c):
        code, lines = c.read_reply()
        self.assertEqual(code, 521, lines)
        self.assertTrue(lines[0].startswith("521 5.5.2 "), lines)
        self.assertTrue(c.closed(), "connection must be closed after 521")
        self.assertEqual(self.t.queue_list(), [])

    def test_refused_before_end_of_data(self):
        # No <CRLF>.<CRLF> is ever sent: the 521 must come from the bad line end itself.
        for name, seq in SMUGGLE.items():
            with self.subTest(name):
                c = self.in_data()
                c.send(b"Subject: s\r\n\r\nfirst" + seq + b"more text")
                self.assert_refused(c)

    def test_second_message_never_queued(self):
        # The whole attack in one write, ending in a real <CRLF>.<CRLF> so that a
        # server that split at the smuggled end would queue "smuggled".
        for name, seq in SMUGGLE.items():
            with self.subTest(name):
                c = self.in_data()
                c.send(b"Subject: s\r\n\r\nfirst" + seq + SECOND + b"\r\n.\r\nQUIT\r\n")
                code, lines = c.read_reply()
                self.assertEqual(code, 521, lines)
                replies = []
                for _ in range(10):  # nothing but EOF may follow the 521
                    code, lines = c.read_reply()
                    if code is None:
                        break
                    replies.append(lines)
                self.assertEqual(replies, [])
                self.assertEqual(self.t.queue_list(), [])

    def test_split_across_writes(self):
        # The decoder keeps its state between reads: a bad line end split over
        # TCP segments is refused just the same.
        for pieces in ([b"first", b"\n"], [b"first\r", b"."], [b"first\r\n", b".", b"\n"], [b"first\r\n.\r", b"x"]):
            with self.subTest(pieces):
                c = self.in_data()
                for piece in pieces:
                    c.send(piece)
                    time.sleep(0.02)
                self.assert_refused(c)

    def test_bare_lf_command_accepted(self):
        c = RawClient(HOST, PORT, timeout=5)
        self.addCleanup(c.close)
        self.assertEqual(c.read_reply()[0], 220)
        # Like `nc` without -C: commands may end in a bare LF (Postfix does the same).
        self.assertEqual(self._send(c, b"EHLO x\n")[0], 250)
        self.assertEqual(self._send(c, b"MAIL FROM:<alice@example.test>\n")[0], 250)
        self.assertEqual(self._send(c, b"RSET\n")[0], 250)

    def _send(self, c, raw):
        c.send(raw)
        return c.read_reply()

    def test_bare_cr_in_command(self):
        c = self.client()
        # Not two commands and not one EHLO: one 500, then our NOOP's 250.
        c.send(b"EHLO x\rNOOP\r\n")
        code, lines = c.read_reply()
        self.assertEqual(code, 500, lines)
        self.assertTrue(lines[0].startswith("500 5.5.2"), lines)
        c.send(b"MAIL FROM:<alice@example.test>\rRCPT TO:<bob@example.test>\r\n")
        self.assertEqual(c.read_reply()[0], 500)
        self.assertEqual(c.cmd(b"NOOP")[0], 250)
        # No MAIL was started by the line above.
        self.assertEqual(c.cmd(b"RCPT TO:<bob@example.test>")[0], 503)

    def test_dot_unstuffing(self):
        c = self.in_data()
        # "x.\r\n" and ". \r\n" and "\r\n..\r\n" look like an end but are not one.
        wire = b"Subject: dots\r\n\r\n..x\r\nx.\r\n. \r\n..\r\n...\r\nlast\r\n.\r\n"
        code, lines = self._send(c, wire)
        self.assertEqual(code, 250, lines)
        qid = lines[-1].rsplit(" ", 1)[1]
        body = self.t.message_body(qid)
        self.assertTrue(body.startswith(b"Received: "))
        self.assertTrue(body.endswith(b"\r\n\r\n.x\r\nx.\r\n \r\n.\r\n..\r\nlast\r\n"), body)

    def test_end_of_data_byte_by_byte(self):
        # The decoder must keep its state between reads; the end arrives in pieces.
        c = self.in_data()
        for piece in (b"Subject: slow\r\n\r\nbody", b"\r", b"\n", b".", b"\r", b"\n"):
            c.send(piece)
            time.sleep(0.02)
        code, lines = c.read_reply()
        self.assertEqual(code, 250, lines)
        qid = lines[-1].rsplit(" ", 1)[1]
        self.assertTrue(self.t.message_body(qid).endswith(b"\r\n\r\nbody\r\n"))
        self.assertEqual(c.cmd(b"NOOP")[0], 250)


if __name__ == "__main__":
    unittest.main()
