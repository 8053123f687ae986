"""At least once, never lost (DESIGN invariant 2), across SIGKILL during local
delivery: every message that got "250 2.0.0 Ok: queued as ID" must end up, whole,
in its recipient's Maildir new/ once the restarted server has drained the queue.
A duplicate (the file renamed into new/ before the outcome was committed) is
allowed and only reported."""
import os
import re
import shutil
import threading
import time
import unittest

from ternlib import AckingSender, Tern, split_received

HOST, PORT = "127.0.0.26", 2525
ROUNDS = 3
SENDERS = 6
RUN_BEFORE_KILL = 1.5  # seconds of load (and delivery) before the SIGKILL
MIN_ACKS = 50  # per round; fewer and the round proves too little
DRAIN_TIMEOUT = 30  # seconds for the restarted server to empty the queue
RCPTS = ["bob@example.test", "carol@example.test"]
PREFIX = re.compile(rb"^Return-Path: <alice@example\.test>\r\nDelivered-To: ([^\r\n]+)\r\n")
TOKEN = re.compile(rb"^X-Token: ([0-9a-f]{32})\r$", re.M)


def after_received(rest):
    """What follows our own (folded) Received: header, or None if it is missing."""
    split = split_received(rest) if b"\r\n" in rest else None
    return split[1] if split else None


def scan_maildirs(mail_dir):
    """token -> [(Delivered-To, bytes after our Received header)] over every new/ file."""
    found = {}
    for user in ("bob", "carol"):
        d = os.path.join(mail_dir, "example.test", user, "new")
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            m = PREFIX.match(data)
            tok = TOKEN.search(data)
            if not tok:
                found.setdefault(None, []).append((user, data[:200]))  # a file we cannot attribute: corrupt
                continue
            rest = after_received(data[m.end():]) if m else None
            found.setdefault(tok.group(1).decode(), []).append((m.group(1).decode() if m else None, rest))
    return found


class DeliveryCrash(unittest.TestCase):
    def test_no_acknowledged_message_lost(self):
        t = Tern(host=HOST, port=PORT, deliver=True)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        t.start()
        owed = {}  # every acknowledgement of every round: a later crash must not lose it either
        for rnd in range(1, ROUNDS + 1):
            stop = threading.Event()
            senders = [AckingSender(HOST, PORT, RCPTS, stop, n=i) for i in range(SENDERS)]
            try:
                for s in senders:
                    s.start()
                time.sleep(RUN_BEFORE_KILL)
                t.kill9()  # deliveries in flight: files half written, renamed but not recorded, ...
            finally:
                stop.set()
                for s in senders:
                    s.join(timeout=15)
            self.assertFalse(any(s.is_alive() for s in senders), "a sender thread did not stop")
            acked = {}  # qid -> (rcpt, token, body)
            for s in senders:
                acked.update({qid: (rcpt, token, body) for token, (qid, rcpt, body) in s.acked.items()})
            owed.update(acked)
            # Read with the server down, as an operator would: what the crash left undelivered.
            in_queue_at_kill = len(t.queue_list())

            t.start()  # same data_dir: leases are released and delivery resumes here
            deadline = time.monotonic() + DRAIN_TIMEOUT
            left = t.queue_list()
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = t.queue_list()
            found = scan_maildirs(t.mail_dir)
            unreadable = found.pop(None, [])
            lost, wrong, dups = [], [], 0
            for qid, (rcpt, token, body) in owed.items():
                copies = found.get(token, [])
                good = [c for c in copies if c == (rcpt, body)]
                if not good:
                    (wrong if copies else lost).append(qid)
                dups += max(0, len(copies) - 1)
            # Files a kill left half written in tmp/: harmless (readers ignore tmp/), reported.
            tmp_left = sum(len(os.listdir(d)) for d in (os.path.join(t.mail_dir, "example.test", u, "tmp")
                                                        for u in ("bob", "carol")) if os.path.isdir(d))
            print(f"\nround {rnd}: acknowledged {len(acked)} (total {len(owed)}), "
                  f"still queued at the kill {in_queue_at_kill}, delivered {len(owed) - len(lost) - len(wrong)}, "
                  f"lost {len(lost)}, wrong copy {len(wrong)}, duplicated so far {dups}, "
                  f"unattributable files {len(unreadable)}, files left in tmp/ so far {tmp_left}, "
                  f"queue after drain {len(left)}")
            self.assertGreaterEqual(len(acked), MIN_ACKS, "too little load to prove anything")
            self.assertEqual(left, [], "the restarted server did not drain the queue")
            self.assertEqual(lost, [], "acknowledged messages never delivered after SIGKILL")
            self.assertEqual(wrong, [], "acknowledged messages delivered with other bytes or to another mailbox")
            self.assertEqual(unreadable, [], "files in new/ that are not a whole delivered message")


if __name__ == "__main__":
    unittest.main()
