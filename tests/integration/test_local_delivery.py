"""Local delivery with the real `tern serve`: Maildir files byte for byte, aliases,
catch-all, deferral when the mailbox root is unusable, hold/release, expiry and
DSNs (DESIGN invariant 2, "Delivery rules worth knowing"; RFC 3461, RFC 3464)."""
import email
import json
import os
import re
import shutil
import smtplib
import subprocess
import time
import unittest

from ternlib import DEFAULT_USERS, Tern, split_received, wait_until

HOST, PORT = "127.0.0.25", 2525
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as (\S+)$")
# Maildir name as written by mailbox/maildir.cpp: <time>.M<usec>P<pid>Q<n>.<host>,S=<size>
MAILDIR_NAME = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.mx\.example\.test,S=(\d+)$")


def split_prefix(data):
    """(Return-Path, Delivered-To, rest) of a delivered file, or None if the prefix is wrong."""
    m = re.match(rb"Return-Path: <([^>\r\n]*)>\r\nDelivered-To: ([^\r\n]*)\r\n", data)
    return (m.group(1).decode(), m.group(2).decode(), data[m.end():]) if m else None


def send(body, sender="alice@example.test", rcpts=("bob@example.test",), mail_opts=(), rcpt_opts=None):
    """One transaction with smtplib; returns the queue ID from the 250."""
    with smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=10) as s:
        s.ehlo()
        reply = s.mail(sender, list(mail_opts))
        if reply[0] != 250:
            raise AssertionError(f"MAIL: {reply}")
        for r in rcpts:
            reply = s.rcpt(r, (rcpt_opts or {}).get(r, []))
            if reply[0] != 250:
                raise AssertionError(f"RCPT {r}: {reply}")
        code, msg = s.data(body)
        m = QUEUED.match(msg)
        if code != 250 or not m:
            raise AssertionError(f"DATA: {code} {msg}")
        return m.group(1).decode()


class Base(unittest.TestCase):
    def tern(self, **kw):
        t = Tern(host=HOST, port=PORT, deliver=True, **kw)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        return t.start()

    def mails(self, t, user, sub="new", domain="example.test"):
        d = os.path.join(t.mail_dir, domain, user, sub)
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def all_mail_files(self, t):
        return sorted(os.path.join(r, n) for r, _, names in os.walk(t.mail_dir) for n in names)

    def wait_mails(self, t, user, n, timeout=2.0):
        files = wait_until(lambda: len(self.mails(t, user)) >= n and self.mails(t, user), timeout)
        self.assertGreaterEqual(len(files or []), n, f"{user}: fewer than {n} files in new/ after {timeout}s")
        return files

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def queued(self, t):
        return {m["id"]: m for m in t.queue_list()}

    def wait_gone(self, t, qid, timeout=2.0):
        # The file is renamed into new/ before the outcome is committed, so the
        # queue may still hold the message for a moment after the file shows up.
        self.assertTrue(wait_until(lambda: qid not in self.queued(t), timeout, 0.1), f"{qid} still queued")

    def wait_rcpt(self, t, qid, status, timeout=3.0):
        """The queue's recipient rows of qid once the first has `status`."""
        def state():
            m = self.queued(t).get(qid)
            return m and m["recipients"][0]["status"] == status and m["recipients"]
        rows = wait_until(state, timeout, 0.1)
        self.assertTrue(rows, f"{qid}: no recipient became {status}: {self.queued(t).get(qid)}")
        return rows

    def dsn(self, path):
        """A DSN file: checks the null envelope sender and returns the parsed message."""
        parts = split_prefix(self.read(path))
        self.assertIsNotNone(parts, path)
        rp, _, rest = parts
        self.assertEqual(rp, "", "a DSN must have the null envelope sender (RFC 3464 §2)")
        msg = email.message_from_bytes(rest)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        return msg

    def status_part(self, msg):
        """(per-message fields, [per-recipient fields]) of the message/delivery-status part."""
        parts = [p for p in msg.get_payload() if p.get_content_type() == "message/delivery-status"]
        self.assertEqual(len(parts), 1)
        blocks = parts[0].get_payload()
        return blocks[0], blocks[1:]


class Deliver(Base):
    def test_swaks_one_file_in_new(self):
        t = self.tern()
        r = subprocess.run(["swaks", "--server", f"{HOST}:{PORT}", "--from", "alice@example.test",
                            "--to", "bob@example.test", "--timeout", "10"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        qid = re.search(rb"<-  250 2\.0\.0 Ok: queued as (\S+)\r?\n", r.stdout).group(1).decode()
        files = self.wait_mails(t, "bob", 1)
        self.wait_gone(t, qid)
        self.assertEqual(len(self.mails(t, "bob")), 1, files)
        self.assertEqual(self.mails(t, "bob", "tmp"), [])
        m = MAILDIR_NAME.match(os.path.basename(files[0]))
        self.assertIsNotNone(m, files[0])
        self.assertEqual(int(m.group(3)), t.proc.pid)
        self.assertEqual(int(m.group(5)), os.path.getsize(files[0]))
        self.assertLessEqual(abs(int(m.group(1)) - time.time()), 60)
        self.assertRegex(t.logs(), rf"{qid}: to=<bob@example\.test>, relay=local, delay=[\d.]+, dsn=2\.0\.0, "
                                   r"status=sent \(delivered to maildir\)")
        self.assertIn(f"{qid}: removed", t.logs())
        self.assertNotIn(qid, t.cli("queue", "list").stdout.decode())
        show = t.cli("queue", "show", qid).stdout.decode()
        self.assertIn(f"{qid} (no longer in the queue", show)
        self.assertRegex(show, r"<bob@example\.test> delivered relay=local \(250 2\.0\.0 delivered to maildir\)")
        j = json.loads(t.cli("queue", "show", qid, "--json").stdout)
        self.assertEqual((j["id"], j["in_queue"]), (qid, False))
        self.assertEqual([(a["address"], a["status"], a["relay"]) for a in j["attempts"]],
                         [("bob@example.test", "delivered", "local")])

    def test_file_bytes_exact(self):
        t = self.tern()
        # 8-bit octets, lines that smtplib dot-stuffs, a lone "." line, trailing spaces.
        body = (b"Subject: bytes\r\nMessage-ID: <exact@client.test>\r\n\r\n.leading dot\r\n.\r\n..two\r\n"
                b"caf\xc3\xa9 \xff\xfe\x80 raw\r\n\t tab \r\nend. \r\n")
        qid = send(body, mail_opts=["BODY=8BITMIME"])
        files = self.wait_mails(t, "bob", 1)
        self.wait_gone(t, qid)
        self.assertEqual(len(self.mails(t, "bob")), 1)
        data = self.read(files[0])
        rp, to, rest = split_prefix(data)
        received, after = split_received(rest)
        self.assertIn(b"by mx.example.test (Tern) with ", received)
        self.assertIn(b" id " + qid.encode(), received)
        self.assertIn(b"for <bob@example.test>", received)
        self.assertEqual(data, b"Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n"
                         + received + body)
        self.assertEqual(os.path.basename(files[0]).rsplit(",S=", 1)[1], str(len(data)))


class Addressing(Base):
    def test_users_aliases_and_subaddress(self):
        t = self.tern(users=DEFAULT_USERS + ["dave@example.test"],
                      aliases={"team@example.test": ["alice@example.test", "carol@example.test"],
                               "postmaster@example.test": ["alice@example.test"]})
        body = b"Subject: fan-out\r\n\r\nto everyone\r\n"
        # "Postmaster" without a domain must be accepted in any case (RFC 5321 §4.5.1).
        qid = send(body, rcpts=["bob@example.test", "carol@example.test", "dave@example.test",
                                "team@example.test", "bob+news@example.test", "Postmaster"])
        self.wait_gone(t, qid, timeout=3)
        # Each RCPT is expanded on its own (directory::expand per recipient), so
        # carol, named directly and through team, gets two copies; bob, named
        # directly and by sub-address, gets two; alice gets team's and postmaster's.
        want = {"alice": 2, "bob": 2, "carol": 2, "dave": 1}
        self.assertEqual({u: len(self.mails(t, u)) for u in want}, want)
        self.assertEqual(len(self.all_mail_files(t)), sum(want.values()))
        for user in want:
            for f in self.mails(t, user):
                rp, to, rest = split_prefix(self.read(f))
                # Delivered-To names the final mailbox (canonical, without +news).
                self.assertEqual((rp, to), ("alice@example.test", f"{user}@example.test"))
                self.assertEqual(split_received(rest)[1], body)
        self.assertIn(f"{qid}: to=<bob+news@example.test>, relay=local", t.logs())
        self.assertIn(f"{qid}: to=<team@example.test>, relay=local", t.logs())

    def test_alias_loop_bounces(self):
        t = self.tern(aliases={"loop-a@example.test": ["loop-b@example.test"],
                               "loop-b@example.test": ["loop-a@example.test"]})
        qid = send(b"Subject: round and round\r\n\r\nloop\r\n", rcpts=["loop-a@example.test"])
        files = self.wait_mails(t, "alice", 1)
        self.wait_gone(t, qid)
        self.assertRegex(t.logs(), rf"{qid}: to=<loop-a@example\.test>, relay=local, delay=[\d.]+, dsn=5\.4\.6, "
                                   r"status=bounced \(<loop-a@example\.test>: alias loop at ")
        self.assertRegex(t.logs(), rf"{qid}: sender non-delivery notification: \S+")
        msg = self.dsn(files[0])
        _, rcpts = self.status_part(msg)
        self.assertEqual(len(rcpts), 1)
        self.assertEqual(rcpts[0]["Final-Recipient"], "rfc822; loop-a@example.test")
        self.assertEqual((rcpts[0]["Action"], rcpts[0]["Status"]), ("failed", "5.4.6"))
        self.assertEqual(self.all_mail_files(t), files)

    def test_catch_all(self):
        t = self.tern(catch_all={"example.test": "alice@example.test"})
        qid = send(b"Subject: stray\r\n\r\nanyone there\r\n", rcpts=["unknown@example.test", "bob@example.test"])
        files = self.wait_mails(t, "alice", 1)
        self.wait_gone(t, qid)
        self.assertEqual(len(self.mails(t, "alice")), 1)
        self.assertEqual(len(self.mails(t, "bob")), 1)  # a real user still gets his own mail
        self.assertEqual(split_prefix(self.read(files[0]))[:2], ("alice@example.test", "alice@example.test"))
        self.assertFalse(os.path.exists(os.path.join(t.mail_dir, "example.test", "unknown")))


class BrokenRoot(Base):
    def defer_then_fix(self, t, break_root, fix_root, status, reply_re):
        break_root()
        qid = send(b"Subject: patience\r\n\r\nwait for it\r\n")
        rows = self.wait_rcpt(t, qid, "deferred")
        self.assertRegex(rows[0]["last_reply"], reply_re)
        self.assertRegex(t.logs(), rf"{qid}: to=<bob@example\.test>, relay=local, delay=[\d.]+, dsn={status}, "
                                   r"status=deferred \(")
        listing = t.cli("queue", "list").stdout.decode()
        self.assertRegex(listing, rf"deferred\s+<bob@example\.test> \({re.escape(rows[0]['last_reply'])}\)")
        self.assertEqual(self.all_mail_files(t), [])
        fix_root()
        self.assertIn("1 recipients scheduled", t.cli("queue", "retry", qid).stdout.decode())
        self.wait_mails(t, "bob", 1)
        self.wait_gone(t, qid)
        self.assertEqual(t.queue_list(), [])
        self.assertEqual(len(self.mails(t, "bob")), 1)
        return qid

    def test_read_only_root_defers(self):
        # As root the 0555 would be ignored: the server runs as nobody. The root is
        # made read-only before bob's mailbox exists (an existing, writable
        # bob/ below a read-only root would still take mail).
        t = self.tern(run_as="nobody")
        self.defer_then_fix(t, lambda: os.chmod(t.mail_dir, 0o555), lambda: os.chmod(t.mail_dir, 0o755),
                            r"4\.2\.0", r"^451 4\.2\.0 cannot create .*Permission denied")
        self.assertEqual(os.stat(self.mails(t, "bob")[0]).st_uid, os.stat(t.mail_dir).st_uid)

    def test_missing_root_defers(self):
        t = self.tern()
        root = re.escape(t.mail_dir)
        self.defer_then_fix(t, lambda: shutil.rmtree(t.mail_dir), lambda: os.makedirs(t.mail_dir),
                            r"4\.3\.0", rf"^451 4\.3\.0 mailbox root {root} is missing$")

    def test_hold_and_release(self):
        t = self.tern()
        shutil.rmtree(t.mail_dir)
        qid = send(b"Subject: held\r\n\r\nnot yet\r\n")
        self.wait_rcpt(t, qid, "deferred")
        self.assertIn(f"{qid}: held", t.cli("queue", "hold", qid).stdout.decode())
        os.makedirs(t.mail_dir)
        t.cli("queue", "retry", qid)
        # The scheduler looks once a second; two looks must not touch a held message.
        time.sleep(2.2)
        self.assertEqual(self.all_mail_files(t), [])
        m = self.queued(t)[qid]
        self.assertTrue(m["held"])
        self.assertEqual(m["recipients"][0]["attempts"], 1)
        self.assertIn(f"{qid}!", t.cli("queue", "list").stdout.decode())
        self.assertIn(f"{qid}: released", t.cli("queue", "release", qid).stdout.decode())
        # Already due (the retry above made it so): the scheduler may deliver it
        # before this retry runs, and then there is no message left to retry.
        t.cli("queue", "retry", qid, check=False)
        self.wait_mails(t, "bob", 1)
        self.wait_gone(t, qid)


class Expiry(Base):
    """One server, four messages that cannot be delivered (remote.test is
    routed to a closed loopback port), all expiring together after
    max_queue_lifetime = 3 s."""

    @classmethod
    def setUpClass(cls):
        cls.t = t = Tern(host=HOST, port=PORT, deliver=True,
                         delivery={"retry_initial": "1s", "retry_max": "1s", "max_queue_lifetime": "3s",
                                   "transports": {"remote.test": "[127.0.0.1]:9"}})
        cls.addClassCleanup(shutil.rmtree, t.dir, True)
        cls.addClassCleanup(t.stop)
        t.start()
        far = ("someone@remote.test",)
        start = time.monotonic()
        cls.ids = {
            "hdrs": send(b"Subject: expire-hdrs\r\n\r\nbody-hdrs\r\n", rcpts=far),
            "null": send(b"Subject: expire-null\r\n\r\nbody-null\r\n", sender="", rcpts=far),
            "never": send(b"Subject: expire-never\r\n\r\nbody-never\r\n", rcpts=far,
                               rcpt_opts={far[0]: ["NOTIFY=NEVER"]}),
            "full": send(b"Subject: expire-full\r\n\r\nbody-full\r\n", rcpts=far, mail_opts=["RET=FULL"]),
        }
        # Empty once every original failed and every DSN (inserted in the same
        # transaction as the failure) has been delivered.
        cls.emptied = wait_until(lambda: t.queue_list() == [], 15, 0.2)
        cls.elapsed = time.monotonic() - start

    def dsn_for(self, key):
        for f in self.mails(self.t, "alice"):
            msg = self.dsn(f)
            if self.status_part(msg)[0]["X-Tern-Queue-ID"] == self.ids[key]:
                return msg
        self.fail(f"no DSN for {key} ({self.ids[key]}) in alice's mailbox")

    def test_expired_within_ten_seconds(self):
        self.assertTrue(self.emptied, self.t.queue_list())
        self.assertLess(self.elapsed, 10)
        log = self.t.logs()
        for key, qid in self.ids.items():
            relay = r"127\.0\.0\.1\[127\.0\.0\.1\]:9"
            refused = rf"451 4\.4\.1 connect to {relay}: Connection refused"
            self.assertRegex(log, rf"{qid}: to=<someone@remote\.test>, relay={relay}, delay=[\d.]+, dsn=4\.4\.7, "
                                  rf"status=bounced \({refused}, delivery time expired\)")
            self.assertRegex(log, rf"{qid}: to=<someone@remote\.test>, relay={relay}, delay=[\d.]+, dsn=4\.4\.1, "
                                  rf"status=deferred \({refused}\)")

    def test_bounce_is_a_delivery_status_report(self):
        msg = self.dsn_for("hdrs")
        self.assertEqual(msg["To"], "<alice@example.test>")
        per_msg, rcpts = self.status_part(msg)
        self.assertEqual(per_msg["Reporting-MTA"], "dns; mx.example.test")
        self.assertIsNotNone(per_msg["Arrival-Date"])
        self.assertEqual(len(rcpts), 1)
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; someone@remote.test")
        self.assertEqual((r["Action"], r["Status"]), ("failed", "4.4.7"))
        self.assertRegex(r["Diagnostic-Code"],
                         r"^smtp; 451 4\.4\.1 connect to 127\.0\.0\.1\[127\.0\.0\.1\]:9: Connection refused")
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        headers = parts[2].get_payload()
        self.assertIn("Subject: expire-hdrs", headers)
        self.assertNotIn("body-hdrs", headers)

    def test_ret_full_returns_whole_message(self):
        parts = self.dsn_for("full").get_payload()
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        inner = parts[2].get_payload()[0]
        self.assertEqual(inner["Subject"], "expire-full")
        self.assertEqual(inner.get_payload(), "body-full\r\n")

    def test_no_bounce_to_null_sender_or_notify_never(self):
        log = self.t.logs()
        for key in ("null", "never"):
            self.assertNotIn(f"{self.ids[key]}: sender non-delivery notification", log)
        for key in ("hdrs", "full"):
            self.assertIn(f"{self.ids[key]}: sender non-delivery notification", log)
        # Exactly the two DSNs, and nothing anywhere else.
        self.assertEqual(len(self.mails(self.t, "alice")), 2)
        self.assertEqual(len(self.all_mail_files(self.t)), 2)


class SuccessNotice(Base):
    def test_notify_success(self):
        t = self.tern()
        qid = send(b"Subject: tell me\r\n\r\nhello\r\n", rcpts=["bob@example.test", "carol@example.test"],
                        rcpt_opts={"bob@example.test": ["NOTIFY=SUCCESS"]})
        files = self.wait_mails(t, "alice", 1)
        self.wait_gone(t, qid)
        self.assertRegex(t.logs(), rf"{qid}: sender delivery status notification: \S+")
        self.assertEqual(len(self.mails(t, "alice")), 1)  # none for carol: default NOTIFY is FAILURE only
        msg = self.dsn(files[0])
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        per_msg, rcpts = self.status_part(msg)
        self.assertEqual(per_msg["X-Tern-Queue-ID"], qid)
        self.assertEqual([(r["Final-Recipient"], r["Action"], r["Status"]) for r in rcpts],
                         [("rfc822; bob@example.test", "delivered", "2.0.0")])
        self.assertEqual((len(self.mails(t, "bob")), len(self.mails(t, "carol"))), (1, 1))


if __name__ == "__main__":
    unittest.main()
