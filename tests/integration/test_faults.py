"""Faults from outside the process (DESIGN invariants 1, 2 and 5): SIGKILL at
random moments under load with delivery on, a full disk under the queue and
under the mailboxes, remote servers and resolvers that vanish or crawl, and
an outside SQLite reader or writer on the queue database. What must hold:
every 250 is stored and ends up delivered at least once, nothing is
acknowledged that is not stored, failures defer instead of losing mail, and
the server keeps taking new mail while something else is slow.

Hosts 127.0.0.70-79. Needs root (mount -t tmpfs), dnsmasq and Python only."""
import os
import random
import re
import shutil
import smtplib
import sqlite3
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor

from ternlib import (AckingSender, DripSMTP, Dnsmasq, ScriptedSMTP, SilentUDP, Tern, Tmpfs, split_received,
                     wait_until)

PORT = 2525
KILL_HOST, KILL_REMOTE = "127.0.0.70", "127.0.0.71"
DISK_HOST, MBOX_HOST = "127.0.0.72", "127.0.0.73"
REMOTE_HOST, DROP_HOST, DRIP_HOST, DNS_HOST = "127.0.0.74", "127.0.0.75", "127.0.0.76", "127.0.0.77"
DNS_PORT = 5377
SQL_HOST = "127.0.0.78"
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")
TOKEN = re.compile(rb"^X-Token: ([0-9a-f]{32})\r$", re.M)
PREFIX = re.compile(rb"^Return-Path: <[^>\r\n]*>\r\nDelivered-To: ([^\r\n]+)\r\n")


def body_for(token, n=0, pad=0):
    return (f"Message-ID: <{token}@faults.test>\r\nX-Token: {token}\r\nSubject: fault {n}\r\n\r\n"
            f"{token}\r\n" + ("y" * 70 + "\r\n") * (pad // 72) + "z" * (n * 37 % 500) + "\r\n").encode()


def qid_of(msg):
    m = QUEUED.match(msg.decode(errors="replace") if isinstance(msg, bytes) else msg)
    return m.group(1) if m else None


def send_one(host, rcpt, body, sender="alice@example.test", timeout=10):
    """One transaction; (code, text, queue id or None). A refusal at DATA is returned, not raised."""
    with smtplib.SMTP(host, PORT, local_hostname="faults.test", timeout=timeout) as s:
        s.ehlo()
        code, msg = s.mail(sender)
        if code != 250:
            return code, msg.decode(errors="replace"), None
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg.decode(errors="replace"), None
        try:
            code, msg = s.data(body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace"), None
        return code, msg.decode(errors="replace"), qid_of(msg) if code == 250 else None


def timed_send(host, rcpt, body):
    t0 = time.monotonic()
    code, text, qid = send_one(host, rcpt, body)
    return time.monotonic() - t0, code, text, qid


def maildir_copies(mail_dir, users=("alice", "bob", "carol"), domain="example.test"):
    """token -> [(Delivered-To, bytes after our Received: header)] over every new/ file; None -> unattributable."""
    found = {}
    for user in users:
        d = os.path.join(mail_dir, domain, user, "new")
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            m, tok = PREFIX.match(data), TOKEN.search(data)
            if not m or not tok:
                found.setdefault(None, []).append((user, data[:200]))
                continue
            parts = split_received(data[m.end():])
            found.setdefault(tok.group(1).decode(), []).append((m.group(1).decode(), parts[1] if parts else None))
    return found


def tmp_files(mail_dir, users=("alice", "bob", "carol"), domain="example.test"):
    return sum(len(os.listdir(d)) for d in (os.path.join(mail_dir, domain, u, "tmp") for u in users)
               if os.path.isdir(d))


class Base(unittest.TestCase):
    def tern(self, host, tmpfs_data=None, tmpfs_mail=None, **kw):
        """A started Tern; optional tmpfs sizes for data_dir / mailbox root, unmounted in cleanup
        after the server has stopped (cleanups run last-in, first-out)."""
        t = Tern(host=host, port=PORT, **kw)
        self.addCleanup(shutil.rmtree, t.dir, True)
        mounts = []
        for path, size in ((t.data_dir, tmpfs_data), (t.mail_dir, tmpfs_mail)):
            if size:
                m = Tmpfs(path, size)
                self.addCleanup(m.unmount)
                m.mount()
                mounts.append(m)
        self.addCleanup(t.stop)
        t.start()
        return (t, *mounts)

    def assert_clean_exit(self, t):
        rc = t.stop()
        logs = t.logs()
        self.assertEqual(rc, 0, f"tern exited {rc}:\n{logs[-3000:]}")
        self.assertNotIn("AddressSanitizer", logs)
        self.assertNotIn("runtime error:", logs)

    def queued(self, t):
        return {m["id"]: m for m in t.queue_list()}

    def wait_status(self, t, qid, status, timeout):
        """qid's queue entry once its first recipient has `status`."""
        def state():
            m = self.queued(t).get(qid)
            return m if m and m["recipients"][0]["status"] == status else None
        m = wait_until(state, timeout, 0.1)
        self.assertTrue(m, f"{qid}: not {status} after {timeout}s: {self.queued(t).get(qid)}\n{t.logs()[-2000:]}")
        return m

    def drain(self, t, timeout):
        left = wait_until(lambda: not t.queue_list(), timeout, 0.2)
        self.assertTrue(left, f"queue not drained after {timeout}s: {len(t.queue_list())} left")


# ---------------------------------------------------------------------------
# 1. SIGKILL at random moments under load, delivery on (local and remote)
# ---------------------------------------------------------------------------

KILL_ROUNDS = 30
KILL_SENDERS = 5
KILL_LOAD = (0.2, 0.6)  # seconds of load before each SIGKILL
KILL_RCPTS = ["bob@example.test", "carol@example.test", "bob@example.test", "dave@remote.test"]
KILL_MIN_ACKS = 300  # over all rounds; fewer and the test proves too little


class KillUnderLoad(Base):
    def test_random_sigkill_under_load_loses_nothing(self):
        remote = ScriptedSMTP(KILL_REMOTE, PORT).start()
        self.addCleanup(remote.stop)
        t, = self.tern(KILL_HOST, deliver=True, delivery={
            "transports": {"remote.test": f"[{KILL_REMOTE}]:{PORT}"}, "retry_initial": "1s", "retry_max": "2s"})
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        owed, cut, per_round, started = {}, {}, [], time.monotonic()
        for rnd in range(KILL_ROUNDS):
            if rnd:
                t.start()  # same data_dir: leases released, delivery resumes
            stop = threading.Event()
            senders = [AckingSender(KILL_HOST, PORT, KILL_RCPTS, stop, n=i + rnd, pad=lambda seq: seq * 911 % 6000)
                       for i in range(KILL_SENDERS)]
            try:
                for s in senders:
                    s.start()
                time.sleep(rng.uniform(*KILL_LOAD))
                t.kill9()
            finally:
                stop.set()
                for s in senders:
                    s.join(timeout=10)
            self.assertFalse(any(s.is_alive() for s in senders), "a sender thread did not stop")
            n = 0
            for s in senders:
                owed.update(s.acked)
                cut.update(s.cut)
                n += len(s.acked)
            per_round.append(n)
        load_time = time.monotonic() - started
        t.start()
        self.drain(t, 30)
        local = maildir_copies(t.mail_dir, users=("bob", "carol"))
        unreadable = local.pop(None, [])
        remote_copies = {}
        for data in remote.messages():
            tok = TOKEN.search(data)
            parts = split_received(data)
            remote_copies.setdefault(tok.group(1).decode() if tok else None, []).append(
                ("dave@remote.test", parts[1] if parts else None))
        unreadable += remote_copies.pop(None, [])
        lost, wrong, dups, delivered = [], [], {"local": 0, "remote": 0}, 0
        for token, (qid, rcpt, body) in owed.items():
            where = "remote" if rcpt.endswith("@remote.test") else "local"
            copies = (remote_copies if where == "remote" else local).get(token, [])
            if not copies:
                lost.append((qid, rcpt))
            elif (rcpt, body) not in copies:
                wrong.append((qid, rcpt))
            else:
                delivered += 1
            dups[where] += max(0, len(copies) - 1)
        # Cut off after DATA yet delivered: the kill fell between the commit and the 250
        # (the client will send it again: a duplicate, allowed).
        committed_unacked = sum(1 for tok in cut if tok in local or tok in remote_copies)
        logs = t.logs()
        released = len(re.findall(r"released \d+ delivery leases", logs))
        n_remote = sum(1 for v in owed.values() if v[1].endswith("@remote.test"))
        print(f"\nkill -9: seed {seed}, {KILL_ROUNDS} rounds in {load_time:.1f}s, acknowledged per round {per_round}\n"
              f"acknowledged {len(owed)} ({n_remote} remote), delivered {delivered}, lost {len(lost)}, "
              f"wrong copy {len(wrong)}, duplicated {sum(dups.values())} ({dups['local']} local, "
              f"{dups['remote']} remote), unattributable {len(unreadable)}\n"
              f"transactions cut after DATA {len(cut)} (of them committed, no 250: {committed_unacked}), "
              f"restarts that released leases {released}, files left in tmp/ {tmp_files(t.mail_dir)}")
        self.assertGreaterEqual(len(owed), KILL_MIN_ACKS, "too little load to prove anything")
        self.assertGreater(n_remote, 0)
        self.assertEqual(lost, [], "acknowledged messages never delivered after SIGKILL")
        self.assertEqual(wrong, [], "acknowledged messages delivered with other bytes")
        self.assertEqual(unreadable, [], "delivered files that are not a whole message")
        self.assert_clean_exit(t)


# ---------------------------------------------------------------------------
# 2. Disk full under the queue (data_dir on a small tmpfs)
# ---------------------------------------------------------------------------

class DiskFullQueue(Base):
    def send_many(self, host, n, workers=3, pad=16000):
        """n messages over `workers` connections; every reply as (token, code, text, qid, body)."""
        def worker(k):
            out = []
            with smtplib.SMTP(host, PORT, local_hostname="faults.test", timeout=15) as s:
                s.ehlo()
                for i in range(k, n, workers):
                    token = uuid.uuid4().hex
                    body = body_for(token, i, pad=pad)
                    self.assertEqual(s.mail("alice@example.test")[0], 250)
                    self.assertEqual(s.rcpt("bob@example.test")[0], 250)
                    try:
                        code, msg = s.data(body)
                        text = msg.decode(errors="replace")
                    except smtplib.SMTPDataError as e:
                        code, text = e.smtp_code, e.smtp_error.decode(errors="replace")
                        s.rset()  # the session goes on after a temporary refusal
                    out.append((token, code, text, qid_of(text) if code == 250 else None, body))
                self.assertEqual(s.noop()[0], 250)
            return out
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [r for rs in pool.map(worker, range(workers)) for r in rs]

    def check_stored(self, t, acked):
        """Every acknowledged message listed, with its exact bytes; returns the listing."""
        listed = self.queued(t)
        missing = [q for q in acked if q not in listed]
        self.assertEqual(missing, [], "got 250 but not in the queue")
        for q, body in acked.items():
            parts = split_received(t.message_body(q))
            self.assertEqual(parts and parts[1], body, f"{q}: stored bytes differ")
        return listed

    def test_disk_full_during_receipt(self):
        t, disk = self.tern(DISK_HOST, tmpfs_data="8m", deliver=False)
        acked = {}
        for token, code, text, qid, body in self.send_many(DISK_HOST, 5):
            self.assertEqual(code, 250, text)
            acked[qid] = body
        filler = disk.fill(leave=96 * 1024)
        free_before = disk.free()
        replies = self.send_many(DISK_HOST, 30)
        codes = {}
        for token, code, text, qid, body in replies:
            codes[code] = codes.get(code, 0) + 1
            if code == 250:
                acked[qid] = body
            else:
                self.assertIn(code, (451, 452), text)
                if code == 452:
                    self.assertTrue(text.startswith("4.3.1"), text)
        print(f"\ndisk full (queue): {free_before} bytes free after filling; replies {codes}")
        self.assertGreater(codes.get(452, 0) + codes.get(451, 0), 0, "the disk never filled up: test proves nothing")
        self.assertIn("warning: queue file write error", t.logs())
        # A crash while the disk is still full, and a restart on it: still everything acknowledged.
        t.kill9()
        listed = self.check_stored(t, acked)
        t.start()
        listed = self.check_stored(t, acked)
        after = self.send_many(DISK_HOST, 6)
        for token, code, text, qid, body in after:
            if code == 250:
                acked[qid] = body
            else:
                self.assertIn(code, (451, 452), text)
        self.check_stored(t, acked)
        print(f"after restart on the full disk: replies {[r[1] for r in after]}")
        # Room again: receipt resumes at once.
        os.unlink(filler)
        resumed = self.send_many(DISK_HOST, 6, workers=2)
        self.assertEqual([r[1] for r in resumed], [250] * 6, [r[2] for r in resumed])
        for token, code, text, qid, body in resumed:
            acked[qid] = body
        listed = self.check_stored(t, acked)
        extra = sorted(set(listed) - set(acked))
        print(f"acknowledged {len(acked)}, in queue {len(listed)}, stored without a 250 {len(extra)}")
        self.assert_clean_exit(t)


# ---------------------------------------------------------------------------
# 3. Disk full under the mailboxes (mailbox_root on a tiny tmpfs)
# ---------------------------------------------------------------------------

class DiskFullMailbox(Base):
    def test_full_mailbox_root_defers_then_delivers(self):
        # Default retry interval (5 min): only `tern queue retry` brings the messages back.
        t, mbox = self.tern(MBOX_HOST, tmpfs_mail="1m", deliver=True)
        code, text, first = send_one(MBOX_HOST, "bob@example.test", body_for(uuid.uuid4().hex))
        self.assertEqual(code, 250, text)
        self.drain(t, 10)
        filler = mbox.fill()
        owed = {}
        for i in range(9):
            token = uuid.uuid4().hex
            rcpt = ("alice@example.test", "bob@example.test", "carol@example.test")[i % 3]
            body = body_for(token, i, pad=20000)
            code, text, qid = send_one(MBOX_HOST, rcpt, body)
            self.assertEqual(code, 250, text)
            owed[token] = (qid, rcpt, body)
        for qid, rcpt, _ in owed.values():
            m = self.wait_status(t, qid, "deferred", 10)
            self.assertRegex(m["recipients"][0]["last_reply"], r"^452 4\.3\.0 ", m)
            self.assertRegex(t.logs(), rf"{qid}: to=<{re.escape(rcpt)}>, relay=local, delay=[\d.]+, dsn=4\.3\.0, "
                                       r"status=deferred \(")
        before = maildir_copies(t.mail_dir)
        self.assertFalse(set(owed) & set(before), "delivered although the disk was full")
        tmp_left = tmp_files(t.mail_dir)
        self.assertEqual(tmp_left, 0, "half-written files left in tmp/ on the full disk")
        os.unlink(filler)
        out = t.cli("queue", "retry", "--all").stdout.decode()
        self.assertIn(f"{len(owed)} recipients scheduled", out)
        self.drain(t, 15)
        found = maildir_copies(t.mail_dir)
        counts = {tok: len(found.get(tok, [])) for tok in owed}
        wrong = [qid for tok, (qid, rcpt, body) in owed.items() if (rcpt, body) not in found.get(tok, [])]
        print(f"\ndisk full (mailboxes): deferred {len(owed)} with 452 4.3.0, then delivered "
              f"{sum(1 for c in counts.values() if c)}, lost {sum(1 for c in counts.values() if not c)}, "
              f"duplicated {sum(max(0, c - 1) for c in counts.values())}")
        self.assertEqual(wrong, [], "deferred messages lost or changed")
        self.assertEqual(set(counts.values()), {1}, "a message delivered more than once without any crash")
        self.assert_clean_exit(t)


# ---------------------------------------------------------------------------
# 4. Remote faults: a peer that drops mid-DATA, a resolver that stops
#    answering, a peer that answers one byte per second
# ---------------------------------------------------------------------------

class RemoteFaults(Base):
    def probe(self, t, label, stuck):
        """A new local message while delivery is stuck elsewhere (stuck() still true once the
        250 came, or the probe proves nothing): 250 within 2 s, then delivered."""
        token = uuid.uuid4().hex
        elapsed, code, text, qid = timed_send(t.host, "bob@example.test", body_for(token))
        still_stuck = stuck()
        delivered = wait_until(lambda: token in maildir_copies(t.mail_dir, users=("bob",)), 5, 0.05)
        print(f"{label}: a new message got {code} in {elapsed:.3f}s, delivered locally: {bool(delivered)}")
        self.assertEqual(code, 250, text)
        self.assertTrue(still_stuck, "the stuck delivery was over before the probe's 250: it proved nothing")
        self.assertLess(elapsed, 2.0, "receipt stalls while a remote delivery hangs")
        self.assertTrue(delivered, "local delivery stalls behind one hanging remote delivery")
        return elapsed

    def test_remote_drops_mid_data(self):
        peer = ScriptedSMTP(DROP_HOST, PORT, drop_data_after=4000).start()
        self.addCleanup(peer.stop)
        t, = self.tern(REMOTE_HOST, deliver=True, delivery={"transports": {"drop.test": f"[{DROP_HOST}]:{PORT}"}})
        token = uuid.uuid4().hex
        body = body_for(token, pad=300000)
        code, text, qid = send_one(REMOTE_HOST, "x@drop.test", body)
        self.assertEqual(code, 250, text)
        m = self.wait_status(t, qid, "deferred", 15)
        reply = m["recipients"][0]["last_reply"]
        print(f"\ndrop mid-DATA: deferred with \"{reply}\", sessions {len(peer.sessions)}")
        self.assertRegex(reply, r"^4\d\d 4\.\d\.\d+ .*(lost connection|reset|broken)", reply)
        self.assertEqual(peer.messages(), [], "the peer never got the end of data")
        self.assertTrue(any(c.startswith("DATA") for c in peer.commands()))
        self.assertEqual(split_received(t.message_body(qid))[1], body)
        # The peer recovers: a retry delivers it, whole and once.
        peer.drop_data_after = None
        t.cli("queue", "retry", qid)
        self.drain(t, 15)
        got = [split_received(d)[1] for d in peer.messages()]
        self.assertEqual(got, [body])
        self.assert_clean_exit(t)

    def test_resolver_stops_answering(self):
        mx = ScriptedSMTP(DROP_HOST, PORT).start()
        self.addCleanup(mx.stop)
        dns = Dnsmasq(DNS_PORT, ["--mx-host=dns.test,mx.dns.test,10", f"--host-record=mx.dns.test,{DROP_HOST}"],
                      host=DNS_HOST).start()
        self.addCleanup(dns.stop)
        t, = self.tern(REMOTE_HOST, deliver=True,
                       delivery={"dns_servers": [f"{DNS_HOST}:{DNS_PORT}"], "smtp_port": PORT})
        # The DNS path works while the resolver answers.
        code, text, qid = send_one(REMOTE_HOST, "u@dns.test", body_for(uuid.uuid4().hex))
        self.assertEqual(code, 250, text)
        self.drain(t, 10)
        self.assertEqual(len(mx.messages()), 1)
        # dnsmasq gone, nothing on the port: refused at once, deferred.
        dns.stop()
        code, text, gone = send_one(REMOTE_HOST, "u@dns.test", body_for(uuid.uuid4().hex))
        self.assertEqual(code, 250, text)
        m = self.wait_status(t, gone, "deferred", 15)
        self.assertRegex(m["recipients"][0]["last_reply"], r"^451 4\.4\.3 ")
        # A server that takes queries and never answers: c-ares waits out its timeouts.
        silent = SilentUDP(DNS_HOST, DNS_PORT).start()
        self.addCleanup(silent.stop)
        token = uuid.uuid4().hex
        body = body_for(token)
        t0 = time.monotonic()
        code, text, qid = send_one(REMOTE_HOST, "u@dns.test", body)
        self.assertEqual(code, 250, text)
        self.assertTrue(wait_until(lambda: silent.queries > 0, 5), "no DNS query reached the silent server")
        self.probe(t, "silent resolver", lambda: self.queued(t)[qid]["recipients"][0]["status"] == "queued")
        m = self.wait_status(t, qid, "deferred", 20)
        reply = m["recipients"][0]["last_reply"]
        print(f"silent resolver: deferred after {time.monotonic() - t0:.1f}s with \"{reply}\", "
              f"{silent.queries} queries; refused port: \"{self.queued(t)[gone]['recipients'][0]['last_reply']}\"")
        self.assertRegex(reply, r"^451 4\.4\.3 ")
        # The resolver is back: both deferred messages go out on retry.
        silent.stop()
        dns = Dnsmasq(DNS_PORT, dns.records, host=DNS_HOST).start()
        self.addCleanup(dns.stop)
        t.cli("queue", "retry", "--all")
        self.drain(t, 15)
        self.assertEqual(len(mx.messages()), 3)
        self.assertIn(body, [split_received(d)[1] for d in mx.messages()])
        self.assert_clean_exit(t)

    def test_remote_one_byte_per_second(self):
        drip = DripSMTP(DRIP_HOST, PORT, seconds=6).start()
        self.addCleanup(drip.stop)
        t, = self.tern(REMOTE_HOST, deliver=True, delivery={"transports": {"slow.test": f"[{DRIP_HOST}]:{PORT}"}})
        token = uuid.uuid4().hex
        body = body_for(token)
        code, text, qid = send_one(REMOTE_HOST, "x@slow.test", body)
        self.assertEqual(code, 250, text)
        self.assertTrue(wait_until(lambda: drip.sent >= 2, 5), "tern never connected to the slow remote")
        worst = max(self.probe(t, "slow remote", lambda: drip.open == 1) for _ in range(3))
        self.assertEqual(self.queued(t)[qid]["recipients"][0]["status"], "queued")  # not lost meanwhile
        m = self.wait_status(t, qid, "deferred", 15)
        reply = m["recipients"][0]["last_reply"]
        print(f"slow remote: {drip.sent} bytes dripped, then closed; deferred with \"{reply}\"; "
              f"slowest probe {worst:.3f}s")
        self.assertRegex(reply, r"^4\d\d 4\.\d\.\d+ .*greeting")
        self.assertEqual(split_received(t.message_body(qid))[1], body)
        self.assert_clean_exit(t)

    def test_slow_remote_does_not_starve_local_delivery(self):
        # Ten messages for one remote that answers a byte a second (a tarpit). Every
        # byte re-arms the client's 300 s read timeout and a reply may be 200 lines
        # of 4096 bytes, so such sessions last as long as the remote likes. Local
        # users must still get their mail meanwhile (a Postfix operator's
        # expectation: the local transport has its own processes).
        drip = DripSMTP(DRIP_HOST, PORT, seconds=12).start()
        self.addCleanup(drip.stop)
        t, = self.tern(REMOTE_HOST, deliver=True, delivery={"transports": {"slow.test": f"[{DRIP_HOST}]:{PORT}"}})
        for i in range(10):
            code, text, _ = send_one(REMOTE_HOST, f"x{i}@slow.test", body_for(uuid.uuid4().hex))
            self.assertEqual(code, 250, text)
        self.assertTrue(wait_until(lambda: drip.open >= 8, 5), f"only {drip.open} slow sessions")
        token = uuid.uuid4().hex
        elapsed, code, text, qid = timed_send(REMOTE_HOST, "bob@example.test", body_for(token))
        self.assertEqual(code, 250, text)
        t0 = time.monotonic()
        delivered = wait_until(lambda: token in maildir_copies(t.mail_dir, users=("bob",)), 3, 0.05)
        waited = time.monotonic() - t0
        open_sessions = drip.open
        print(f"\ntarpit: {open_sessions} slow sessions open, {drip.connections} in all; a local message got "
              f"{code} in {elapsed:.3f}s, delivered: {bool(delivered)} after {waited:.1f}s")
        self.assertLess(elapsed, 2.0, "receipt stalls while remote deliveries hang")
        self.assertTrue(delivered, f"local delivery stalled for {waited:.1f}s behind {open_sessions} sessions "
                                   f"with one slow remote (status {self.queued(t).get(qid)})")
        self.assert_clean_exit(t)


# ---------------------------------------------------------------------------
# 5. SQLite busy: outside readers and writers on queue.db
# ---------------------------------------------------------------------------

class SqliteBusy(Base):
    def send_batch(self, n, workers=10):
        """n messages from `workers` threads: (token, seconds, code, text, qid, monotonic time of the reply)."""
        def one(i):
            token = uuid.uuid4().hex
            r = timed_send(SQL_HOST, ("bob@example.test", "carol@example.test")[i % 2], body_for(token, i))
            return (token,) + r + (time.monotonic(),)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(n)))

    def check_logs(self, t):
        bad = [l for l in t.logs().splitlines() if re.search(r"warning|error|locked|busy", l, re.I)]
        self.assertEqual(bad, [], "problems in the server log")

    def test_long_reader_does_not_block_receipt(self):
        t, = self.tern(SQL_HOST, deliver=True)
        self.assertEqual([r[2] for r in self.send_batch(3)], [250] * 3)
        self.drain(t, 10)
        db = os.path.join(t.data_dir, "queue.db")
        reader = sqlite3.connect(db, isolation_level=None, timeout=1)
        self.addCleanup(reader.close)
        reader.execute("BEGIN")
        # The delivery history only grows: a snapshot that does not move proves the transaction open.
        seen = reader.execute("SELECT count(*) FROM attempts").fetchone()[0]
        reader.execute("SELECT id, length(data) FROM messages").fetchall()
        opened = time.monotonic()
        results = self.send_batch(50)
        sent_in = time.monotonic() - opened
        wait_until(lambda: not t.queue_list(), 10, 0.1)  # deliveries are written under the reader too
        still = reader.execute("SELECT count(*) FROM attempts").fetchone()[0]
        time.sleep(max(0.0, 3.0 - (time.monotonic() - opened)))  # the read transaction stays open 3 s at least
        held = time.monotonic() - opened
        reader.execute("COMMIT")
        with sqlite3.connect(db, timeout=5) as fresh:
            now = fresh.execute("SELECT count(*) FROM attempts").fetchone()[0]
        codes = [r[2] for r in results]
        slowest = max(r[1] for r in results)
        print(f"\nlong reader ({held:.1f}s): 50 messages sent in {sent_in:.2f}s, codes {set(codes)}, "
              f"slowest 250 {slowest:.3f}s; delivery attempts seen by the reader {seen} -> {still}, "
              f"by a new connection {now}")
        self.assertEqual(codes, [250] * 50, [r[3] for r in results if r[2] != 250])
        self.assertEqual(still, seen, "the reader's transaction was not open while the messages came in")
        self.assertEqual(now, seen + 50, "not every message was delivered while the reader held its snapshot")
        self.assertLess(sent_in, held, "messages sent after the reader let go")
        self.drain(t, 15)
        found = maildir_copies(t.mail_dir)
        self.assertEqual([r[0] for r in results if len(found.get(r[0], [])) != 1], [])
        self.check_logs(t)
        self.assert_clean_exit(t)

    def test_outside_write_lock_delays_but_loses_nothing(self):
        # `tern queue retry/hold/delete` from a shell take the write lock for a moment;
        # a slow one must delay receipt (busy timeout), not refuse or drop it - and
        # no 250 may come before the lock is released (nothing can be committed).
        t, = self.tern(SQL_HOST, deliver=False)
        locker = sqlite3.connect(os.path.join(t.data_dir, "queue.db"), isolation_level=None, timeout=1)
        self.addCleanup(locker.close)
        locker.execute("BEGIN IMMEDIATE")
        locked_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            batch = pool.submit(self.send_batch, 20)
            # While the lock is held the server still talks: a greeting and EHLO come at once.
            time.sleep(0.3)
            t0 = time.monotonic()
            with smtplib.SMTP(SQL_HOST, PORT, local_hostname="faults.test", timeout=5) as s:
                self.assertEqual(s.ehlo()[0], 250)
            ehlo = time.monotonic() - t0
            time.sleep(max(0.0, 2.0 - (time.monotonic() - locked_at)))
            released_at = time.monotonic()
            locker.execute("COMMIT")
            results = batch.result(timeout=30)
        codes = [r[2] for r in results]
        early = [r[4] for r in results if r[2] == 250 and r[5] < released_at]
        waited = sum(1 for r in results if r[5] >= released_at)
        print(f"outside write lock (2s): EHLO in {ehlo:.3f}s, codes {set(codes)}, 250 before the release "
              f"{len(early)}, replies after it {waited}, slowest {max(r[1] for r in results):.2f}s")
        self.assertLess(ehlo, 1.0)
        self.assertEqual(early, [], "250 while the queue could not be written")
        self.assertGreater(waited, 0, "nothing waited for the lock: it was not held")
        self.assertEqual(codes, [250] * 20, [r[3] for r in results if r[2] != 250])
        listed = self.queued(t)
        self.assertEqual([r[4] for r in results if r[4] not in listed], [])
        self.check_logs(t)
        self.assert_clean_exit(t)

if __name__ == "__main__":
    unittest.main()
