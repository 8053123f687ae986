"""Durability under SIGKILL (DESIGN invariants 1 and 2): every message that got
"250 2.0.0 Ok: queued as ID" must survive a crash at any moment, with its
envelope and its exact bytes. Load comes from 8 smtplib threads, whose
acknowledgements are recorded, and from smtp-source beside them."""
import shutil
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from ternlib import AckingSender, Tern

HOST, PORT = "127.0.0.24", 2525
ROUNDS = 3
SENDERS = 8
RUN_BEFORE_KILL = 1.5  # seconds of load before the SIGKILL
MIN_ACKS = 50  # per round; fewer and the round proves too little
SMTP_SOURCE = ["/usr/sbin/smtp-source", "-s", "10", "-m", "100000", "-l", "2048", "-f", "a@example.test",
               "-t", "bob@example.test", f"{HOST}:{PORT}"]
RCPTS = ["alice@example.test", "bob@example.test", "carol@example.test"]


def after_received(stored):
    """What follows our own (folded) Received: header, or None if it is missing."""
    if not stored or not stored.startswith(b"Received: "):
        return None
    end = 0
    while True:
        end = stored.find(b"\r\n", end)
        if end < 0:
            return None
        end += 2
        if stored[end:end + 1] not in (b" ", b"\t"):
            return stored[end:]


class Crash(unittest.TestCase):
    def test_no_acknowledged_message_lost(self):
        t = Tern(host=HOST, port=PORT, deliver=False)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        t.start()
        owed = {}  # every acknowledgement of every round: a later crash must not lose it either
        for rnd in range(1, ROUNDS + 1):
            stop = threading.Event()
            senders = [AckingSender(HOST, PORT, RCPTS, stop, n=i, sender="a@example.test") for i in range(SENDERS)]
            load = subprocess.Popen(SMTP_SOURCE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for s in senders:
                    s.start()
                time.sleep(RUN_BEFORE_KILL)
                t.kill9()  # mid-load: some transactions are half done, some commits in flight
            finally:
                stop.set()
                load.kill()
                load.wait(timeout=10)
                for s in senders:
                    s.join(timeout=15)
            self.assertFalse(any(s.is_alive() for s in senders), "a sender thread did not stop")
            acked = {}  # qid -> (rcpt, body)
            for s in senders:
                acked.update({qid: (rcpt, body) for qid, rcpt, body in s.acked.values()})
            owed.update(acked)

            t.start()  # same data_dir: recovery happens here
            listed = {m["id"]: m for m in t.queue_list()}
            lost = [q for q, (rcpt, _) in owed.items()
                    if q not in listed or [r["address"] for r in listed[q]["recipients"]] != [rcpt]]
            # Bodies of this round's acknowledgements, read through the CLI like an operator would.
            present = [q for q in acked if q in listed]

            def stored(q):
                r = t.cli("queue", "show", q, "--body", check=False)
                return r.stdout if r.returncode == 0 else None

            with ThreadPoolExecutor(max_workers=4) as pool:
                bodies = dict(zip(present, pool.map(stored, present)))
            corrupt = [q for q in present if after_received(bodies[q]) != acked[q][1]]
            print(f"\nround {rnd}: acknowledged {len(acked)} (total {len(owed)}), found {len(owed) - len(lost)}, "
                  f"lost {len(lost)}, wrong body {len(corrupt)}, queue holds {len(listed)}")
            self.assertGreaterEqual(len(acked), MIN_ACKS, "too little load to prove anything")
            self.assertEqual(lost, [], "acknowledged messages lost after SIGKILL")
            self.assertEqual(corrupt, [], "acknowledged messages stored with other bytes")


if __name__ == "__main__":
    unittest.main()
