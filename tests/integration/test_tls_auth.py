"""TLS and authentication with the real `tern serve`: STARTTLS (RFC 3207), AUTH
PLAIN/LOGIN inside TLS only (RFC 4954), submission rules (RFC 6409), implicit
TLS (RFC 8314), brute-force throttling, `tern user`, and DESIGN invariant 6
(after STARTTLS nothing from before survives)."""
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from ternlib import RawClient, Tern, wait_until

HOST, SMTP, SUB, SUBS = "127.0.0.27", 2525, 2587, 2465
PW = "Corr3ct-Horse-Battery"  # alice's password
BAD = "Wr0ng-Guess-Staple"
QUEUED = re.compile(r"queued as (\S+)")


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the certificate is self-signed
    return ctx


def ehlo(c):
    """The EHLO keywords (without the 250 prefixes)."""
    code, lines = c.cmd(b"EHLO client.test")
    assert code == 250, lines
    return [x[4:] for x in lines[1:]]


def plain(user, pw):
    return base64.b64encode(f"\0{user}\0{pw}".encode())


class Client(RawClient):
    """RawClient from a chosen source address that can switch to TLS."""

    def __init__(self, port, source="127.0.0.1", timeout=10, implicit=False):
        self.sock = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0))
        self.buf = b""
        if implicit:
            self.tls()

    def tls(self):
        assert self.buf == b"", self.buf  # nothing may be read ahead of the handshake
        self.sock = tls_ctx().wrap_socket(self.sock)
        return self.sock.version()

    def silent(self, timeout):
        """True if nothing at all arrives within timeout."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.sock.settimeout(10)
        self.buf += chunk
        return False


class Base(unittest.TestCase):
    def tern(self, users=("bob@example.test",), start=True, **kw):
        kw.setdefault("aliases", {"sales@example.test": ["alice@example.test"]})
        kw.setdefault("relay_networks", [])
        t = Tern(host=HOST, port=SMTP, submission=[f"{HOST}:{SUB}"], submissions=[f"{HOST}:{SUBS}"],
                 users=list(users), deliver=False, **kw)
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        t.cli("user", "add", "alice@example.test", input=PW.encode() + b"\n")
        return t.start() if start else t

    def expect(self, reply, code, enhanced=None):
        self.assertEqual(reply[0], code, reply)
        if enhanced:
            self.assertTrue(reply[1][-1][4:].startswith(enhanced + " "), reply)

    def connect(self, port=SUB, source="127.0.0.1", starttls=True, implicit=False):
        c = Client(port, source, implicit=implicit)
        self.addCleanup(c.close)
        self.expect(c.read_reply(), 220)
        self.expect(c.cmd(b"EHLO client.test"), 250)
        if starttls:
            self.expect(c.cmd(b"STARTTLS"), 220, "2.0.0")
            self.assertIn(c.tls(), ("TLSv1.2", "TLSv1.3"))
            self.expect(c.cmd(b"EHLO client.test"), 250)
        return c

    def login(self, **kw):
        c = self.connect(**kw)
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 235, "2.7.0")
        return c

    def send_raw(self, c, sender, rcpt, body):
        self.expect(c.cmd(f"MAIL FROM:<{sender}>".encode()), 250)
        self.expect(c.cmd(f"RCPT TO:<{rcpt}>".encode()), 250)
        self.expect(c.cmd(b"DATA"), 354)
        reply = c.cmd(body + b".")  # cmd() adds the CRLF
        self.expect(reply, 250, "2.0.0")
        return QUEUED.search(reply[1][-1]).group(1)

    def swaks(self, *args, pw=PW):
        r = subprocess.run(["swaks", "-s", HOST, "--timeout", "10", "-f", "alice@example.test", "-t", "bob@example.test",
                            "--auth-user", "alice@example.test", "--auth-password", pw, *args],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def queued(self, t, qid):
        return {m["id"]: m for m in t.queue_list()}.get(qid)

    def headers(self, t, qid):
        body = t.message_body(qid)
        return body[:body.index(b"\r\n\r\n") + 2]


class Submission(Base):
    def test_swaks_plain_and_login_on_587(self):
        t = self.tern()
        for mech in ("PLAIN", "LOGIN"):
            rc, out = self.swaks("-p", str(SUB), "--tls", "--auth", mech)
            self.assertEqual(rc, 0, out)
            self.assertIn("235 2.7.0", out)
            m = QUEUED.search(out)
            self.assertIsNotNone(m, out)
            msg = self.queued(t, m.group(1))
            self.assertEqual(msg["sender"], "alice@example.test")
            self.assertEqual([r["address"] for r in msg["recipients"]], ["bob@example.test"])

    def test_wrong_password_and_unknown_user_get_535(self):
        t = self.tern()
        rc, out = self.swaks("-p", str(SUB), "--tls", "--auth", "PLAIN", "--local-interface", "127.0.0.30", pw=BAD)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("535 5.7.8", out)
        c = self.connect(source="127.0.0.31")  # LOGIN, for a user that does not exist
        self.expect(c.cmd(b"AUTH LOGIN"), 334)
        self.expect(c.cmd(base64.b64encode(b"nobody@example.test")), 334)
        self.expect(c.cmd(base64.b64encode(PW.encode())), 535, "5.7.8")
        self.expect(c.cmd(b"MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        self.assertEqual(t.queue_list(), [])

    def test_auth_only_inside_tls_and_mail_only_after_auth(self):
        t = self.tern()
        c = self.connect(starttls=False)
        words = ehlo(c)
        self.assertIn("STARTTLS", words)
        self.assertFalse([x for x in words if x.startswith("AUTH")], words)
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 538, "5.7.11")
        self.expect(c.cmd(b"AUTH LOGIN"), 538, "5.7.11")
        self.expect(c.cmd(b"MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        self.expect(c.cmd(b"STARTTLS"), 220)
        c.tls()
        words = ehlo(c)
        self.assertIn("AUTH PLAIN LOGIN", words)
        self.assertNotIn("STARTTLS", words)
        self.expect(c.cmd(b"MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 235, "2.7.0")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 503, "5.5.1")
        qid = self.send_raw(c, "alice@example.test", "bob@example.test", b"Subject: x\r\n\r\nhi\r\n")
        self.assertIsNotNone(self.queued(t, qid))

    def test_implicit_tls_on_465(self):
        t = self.tern()
        rc, out = self.swaks("-p", str(SUBS), "--tlsc", "--auth", "PLAIN")
        self.assertEqual(rc, 0, out)
        self.assertIsNotNone(self.queued(t, QUEUED.search(out).group(1)))
        c = self.connect(port=SUBS, starttls=False, implicit=True)  # TLS from the first byte
        words = ehlo(c)
        self.assertIn("AUTH PLAIN LOGIN", words)
        self.assertNotIn("STARTTLS", words)
        self.expect(c.cmd(b"STARTTLS"), 503, "5.5.1")
        self.expect(c.cmd(b"MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        # A plaintext client on 465 gets no SMTP greeting.
        p = Client(SUBS)
        self.addCleanup(p.close)
        p.send(b"EHLO client.test\r\n")
        self.assertTrue(p.closed(5))
        self.assertNotIn(b"220", p.buf)

    def test_smtplib_ssl_465(self):
        t = self.tern()
        with smtplib.SMTP_SSL(HOST, SUBS, local_hostname="client.test", timeout=10, context=tls_ctx()) as s:
            self.assertEqual(s.login("alice@example.test", PW)[0], 235)
            self.assertEqual(s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: ssl\r\n\r\nbody\r\n"), {})
        (msg,) = t.queue_list()
        hdr = self.headers(t, msg["id"])
        self.assertIn(b"(using TLSv1.", hdr)
        self.assertIn(b" with ESMTPSA id " + msg["id"].encode(), hdr)

    def test_smtplib_starttls_587_adds_date_and_message_id(self):
        t = self.tern()
        with smtplib.SMTP(HOST, SUB, local_hostname="client.test", timeout=10) as s:
            s.ehlo()
            self.assertFalse(s.has_extn("auth"))
            s.starttls(context=tls_ctx())
            s.ehlo()
            self.assertTrue(s.has_extn("auth"))
            self.assertEqual(s.login("alice@example.test", PW)[0], 235)
            s.sendmail("alice@example.test", ["bob@example.test"], b"From: alice@example.test\r\nSubject: s\r\n\r\nbody\r\n")
        (msg,) = t.queue_list()
        hdr = self.headers(t, msg["id"])
        self.assertRegex(hdr, rb"\(using TLSv1\.[23] with cipher \S+\)")
        self.assertIn(b" with ESMTPSA id ", hdr)
        self.assertRegex(hdr, rb"\r\nDate: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n")
        self.assertRegex(hdr, rb"\r\nMessage-ID: <[^>\s]+@[^>\s]+>\r\n")
        self.assertEqual(hdr.count(b"\nDate:"), 1)
        self.assertTrue(t.message_body(msg["id"]).endswith(b"\r\n\r\nbody\r\n"))
        # Present ones are left alone, not doubled.
        with smtplib.SMTP(HOST, SUB, local_hostname="client.test", timeout=10) as s:
            s.starttls(context=tls_ctx())
            s.login("alice@example.test", PW)
            s.sendmail("alice@example.test", ["bob@example.test"],
                       b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@client.test>\r\n\r\nx\r\n")
        (other,) = [m for m in t.queue_list() if m["id"] != msg["id"]]
        hdr = self.headers(t, other["id"])
        self.assertEqual((hdr.lower().count(b"\ndate:"), hdr.lower().count(b"\nmessage-id:")), (1, 1), hdr)


class StartTLS(Base):
    def test_pipelined_command_after_starttls_is_discarded(self):
        t = self.tern()
        c = Client(SMTP)
        self.addCleanup(c.close)
        self.expect(c.read_reply(), 220)
        words = ehlo(c)
        self.assertIn("STARTTLS", words)
        self.assertFalse([x for x in words if "AUTH" in x], words)  # MX role: no AUTH, not even in TLS
        c.send(b"STARTTLS\r\nRSET\r\n")  # one write: the RSET is injected plaintext
        self.expect(c.read_reply(), 220, "2.0.0")
        c.tls()
        self.assertTrue(c.silent(0.5), c.buf)  # no answer to the RSET
        self.expect(c.cmd(b"MAIL FROM:<a@remote.test>"), 503, "5.5.1")  # EHLO forgotten too
        words = ehlo(c)
        self.assertFalse([x for x in words if "STARTTLS" in x or "AUTH" in x], words)
        self.expect(c.cmd(b"STARTTLS"), 503, "5.5.1")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 503, "5.5.1")  # MX role
        qid = self.send_raw(c, "a@remote.test", "bob@example.test", b"Subject: mx\r\n\r\nhi\r\n")
        hdr = self.headers(t, qid)
        self.assertIn(b"(using TLSv1.", hdr)
        self.assertIn(b" with ESMTPS id " + qid.encode(), hdr)
        # The MX role adds nothing but Received: (no Date:/Message-ID: of its own).
        self.assertNotIn(b"\nDate:", hdr)
        self.assertNotIn(b"\nMessage-ID:", hdr)

    def test_transaction_before_starttls_does_not_survive(self):
        self.tern()
        c = self.connect(port=SMTP, starttls=False)
        self.expect(c.cmd(b"MAIL FROM:<a@remote.test>"), 250)
        self.expect(c.cmd(b"RCPT TO:<bob@example.test>"), 250)
        self.expect(c.cmd(b"STARTTLS"), 220)
        c.tls()
        self.expect(c.cmd(b"EHLO x"), 250)
        self.expect(c.cmd(b"DATA"), 503, "5.5.1")
        self.expect(c.cmd(b"RCPT TO:<bob@example.test>"), 503, "5.5.1")

    def test_pipelined_auth_after_starttls_is_discarded(self):
        # On submission, credentials pipelined in the clear must not log the session in.
        self.tern()
        c = self.connect(starttls=False)
        c.send(b"STARTTLS\r\nAUTH PLAIN " + plain("alice@example.test", PW) + b"\r\n")
        self.expect(c.read_reply(), 220)
        c.tls()
        self.assertTrue(c.silent(0.5), c.buf)
        self.expect(c.cmd(b"EHLO x"), 250)
        self.expect(c.cmd(b"MAIL FROM:<alice@example.test>"), 530, "5.7.0")

    def s_client(self, *args):
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"{HOST}:{SMTP}", *args],
                           input="", capture_output=True, text=True, timeout=20)
        return r.stdout + r.stderr

    def test_protocol_versions(self):
        t = self.tern()
        self.assertRegex(self.s_client("-brief"), r"Protocol version: TLSv1\.[23]\b")
        self.assertRegex(self.s_client("-brief", "-tls1_2"), r"Protocol version: TLSv1\.2\b")
        for old in ("-tls1", "-tls1_1"):
            # SECLEVEL=0 so that the client offers the old version; the refusal must come from the server.
            out = self.s_client(old, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertNotRegex(out, r"Cipher is (?!\(NONE\))", out)
            self.assertIn("alert protocol version", out)
        # The self-signed certificate is generated once into data_dir and reused after a restart.
        crt, key = (os.path.join(t.data_dir, f"tls-selfsigned.{x}") for x in ("crt", "key"))
        self.assertEqual(os.stat(key).st_mode & 0o077, 0)
        before = slurp(crt)
        with socket.create_connection((HOST, SUBS), timeout=10) as s, tls_ctx().wrap_socket(s) as ts:
            served = ts.getpeercert(binary_form=True)
        self.assertEqual(ssl.PEM_cert_to_DER_cert(before.decode()), served)
        t.stop()
        t.start()
        self.assertEqual(slurp(crt), before)


class Senders(Base):
    def test_sender_must_belong_to_user(self):
        t = self.tern()
        c = self.login()
        for spoof in ("bob@example.test", "ceo@remote.test", "bob+alice@example.test"):
            self.expect(c.cmd(f"MAIL FROM:<{spoof}>".encode()), 553, "5.7.1")
        for own in ("alice@example.test", "Alice+news@example.test", "sales@example.test"):
            qid = self.send_raw(c, own, "bob@example.test", b"Subject: own\r\n\r\nhi\r\n")
            self.assertEqual(self.queued(t, qid)["sender"].lower(), own.lower())
        self.assertIn("sasl_username=alice@example.test", t.logs())

    def test_relay_needs_authentication(self):
        t = self.tern()  # relay_networks = []
        c = self.login()
        qid = self.send_raw(c, "alice@example.test", "x@remote.test", b"Subject: out\r\n\r\nhi\r\n")
        self.assertEqual([r["address"] for r in self.queued(t, qid)["recipients"]], ["x@remote.test"])
        for starttls in (False, True):
            mx = self.connect(port=SMTP, starttls=starttls)
            self.expect(mx.cmd(b"MAIL FROM:<alice@example.test>"), 250)
            self.expect(mx.cmd(b"RCPT TO:<x@remote.test>"), 554, "5.7.1")
        self.assertEqual(len(t.queue_list()), 1)

    def test_allow_any_sender(self):
        t = self.tern(allow_any_sender=True)
        c = self.login()
        qid = self.send_raw(c, "ceo@remote.test", "bob@example.test", b"Subject: any\r\n\r\nhi\r\n")
        self.assertEqual(self.queued(t, qid)["sender"], "ceo@remote.test")
        anon = self.connect()  # authentication is still required
        self.expect(anon.cmd(b"MAIL FROM:<ceo@remote.test>"), 530, "5.7.0")


class BruteForce(Base):
    def fail_once(self, c):
        """Sends a wrong password; returns (reply, seconds until the reply)."""
        start = time.monotonic()
        reply = c.cmd(b"AUTH PLAIN " + plain("alice@example.test", BAD))
        return reply, time.monotonic() - start

    def test_throttle_is_per_address(self):
        self.tern(limits={"max_auth_failures": 2, "auth_failure_delay": "1s"})
        a = self.connect(source="127.0.0.29")
        reply, took = self.fail_once(a)
        self.expect(reply, 535, "5.7.8")
        self.assertGreaterEqual(took, 0.95)
        a.send(b"AUTH PLAIN " + plain("alice@example.test", BAD) + b"\r\n")
        start = time.monotonic()
        # While the attacker waits, another address logs in at once.
        b = self.connect(source="127.0.0.28")
        t0 = time.monotonic()
        self.expect(b.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 235)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.expect(a.read_reply(), 535, "5.7.8")
        self.assertGreaterEqual(time.monotonic() - start, 1.95)
        # A new connection from the same address does not start afresh: past the limit, 421.
        a2 = self.connect(source="127.0.0.29")
        reply, _ = self.fail_once(a2)
        if reply[0] == 535:
            reply = a2.read_reply()
        self.expect(reply, 421, "4.7.0")
        self.assertTrue(a2.closed(5))

    def test_no_quick_guesses_past_the_limit(self):
        # Past the limit a guess must not be answered at once: each new connection
        # would otherwise get one free, undelayed password check.
        self.tern(limits={"max_auth_failures": 1, "auth_failure_delay": "1s"})
        a = self.connect(source="127.0.0.29")
        self.expect(self.fail_once(a)[0], 535)
        reply, _ = self.fail_once(a)
        self.assertIn(421, (reply[0], a.read_reply()[0]))
        a2 = self.connect(source="127.0.0.29")
        a2.send(b"AUTH PLAIN " + plain("alice@example.test", BAD) + b"\r\n")
        if not a2.silent(0.9):
            reply = a2.read_reply()
            self.assertNotEqual(reply[0], 535, f"password checked and answered at once past the limit: {reply}")


class UserCli(Base):
    def test_add_passwd_del_list(self):
        t = self.tern(start=False)  # alice added with PW
        users = lambda: t.cli("user", "list").stdout.decode().split("\n")
        self.assertEqual(sorted(filter(None, users())), ["alice@example.test", "bob@example.test (no password)"])
        read = lambda: slurp(t.users_file).decode()
        first = read()
        self.assertRegex(first, r"(?m)^alice@example\.test:\{SHA512-CRYPT\}\$6\$\S+$")
        self.assertNotIn(PW, first)
        dup = t.cli("user", "add", "Alice@Example.test", input=b"other\n", check=False)
        self.assertNotEqual(dup.returncode, 0)
        self.assertIn(b"already exists", dup.stderr)
        self.assertEqual(read(), first)
        self.assertNotEqual(t.cli("user", "add", "x@remote.test", input=b"pw\n", check=False).returncode, 0)
        self.assertNotEqual(t.cli("user", "add", "dave@example.test", input=b"\n", check=False).returncode, 0)
        self.assertNotEqual(t.cli("user", "passwd", "nobody@example.test", input=b"pw\n", check=False).returncode, 0)
        t.cli("user", "add", "carol@example.test", input=b"carol-pw\n")
        t.cli("user", "passwd", "alice@example.test", input=b"New-Pass-2\n")
        self.assertNotEqual(read(), first)
        t.cli("user", "del", "carol@example.test")
        self.assertNotEqual(t.cli("user", "del", "carol@example.test", check=False).returncode, 0)
        self.assertEqual(sorted(filter(None, users())), ["alice@example.test", "bob@example.test (no password)"])
        t.start()
        c = self.connect()
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", "New-Pass-2")), 235)
        for source, user, pw in (("127.0.0.32", "alice@example.test", PW), ("127.0.0.33", "carol@example.test", "carol-pw")):
            c = self.connect(source=source)
            self.expect(c.cmd(b"AUTH PLAIN " + plain(user, pw)), 535, "5.7.8")


    def test_running_server_takes_user_changes_without_restart(self):
        # `tern user` rewrites the users file; the server re-reads it by itself
        # a few seconds later, or at once on SIGHUP.
        t = self.tern()
        c = self.connect(source="127.0.0.40")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("carol@example.test", "carol-pw")), 535)
        mx = self.connect(port=SMTP, source="127.0.0.40", starttls=False)
        self.expect(mx.cmd(b"MAIL FROM:<x@remote.test>"), 250)
        self.expect(mx.cmd(b"RCPT TO:<carol@example.test>"), 550, "5.1.1")
        t.cli("user", "add", "carol@example.test", input=b"carol-pw\n")
        self.assertTrue(wait_until(lambda: "users reloaded" in t.logs(), timeout=10), "users file not re-read")
        self.expect(mx.cmd(b"RCPT TO:<carol@example.test>"), 250)  # the same session sees the new user
        c = self.connect(source="127.0.0.41")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("carol@example.test", "carol-pw")), 235, "2.7.0")
        # A broken file is refused whole: everyone loaded before stays.
        with open(t.users_file, "ab") as f:
            f.write(b"not an address\n")
        t.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "keeping the 3 users loaded before" in t.logs(), timeout=10), t.logs()[-500:])
        c = self.connect(source="127.0.0.42")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("carol@example.test", "carol-pw")), 235, "2.7.0")
        # Fixed and deleted from: SIGHUP applies it at once.
        with open(t.users_file, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l and l != b"not an address" and not l.startswith(b"carol@")]
        with open(t.users_file, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        t.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: t.logs().count("users reloaded") >= 2, timeout=10), t.logs()[-500:])
        c = self.connect(source="127.0.0.43")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("carol@example.test", "carol-pw")), 535)
        self.expect(mx.cmd(b"RCPT TO:<carol@example.test>"), 550, "5.1.1")
        self.expect(mx.cmd(b"RCPT TO:<bob@example.test>"), 250)


    def test_running_server_takes_alias_changes_on_sighup(self):
        # Aliases live in the configuration: SIGHUP (or a settled change to
        # the file) re-reads them; the rest of the file waits for a restart.
        t = self.tern()
        mx = self.connect(port=SMTP, source="127.0.0.44", starttls=False)
        self.expect(mx.cmd(b"MAIL FROM:<x@remote.test>"), 250)
        self.expect(mx.cmd(b"RCPT TO:<support@example.test>"), 550, "5.1.1")
        with open(t.config) as f:
            text = f.read()
        sales = '"sales@example.test" = ["alice@example.test"]'
        self.assertIn(sales, text)
        with open(t.config, "w") as f:
            f.write(text.replace(sales, sales + '\n"support@example.test" = ["bob@example.test"]'))
        t.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "aliases reloaded" in t.logs(), timeout=10), t.logs()[-500:])
        self.expect(mx.cmd(b"RCPT TO:<support@example.test>"), 250)
        # A configuration that does not parse is refused whole: the aliases stay.
        with open(t.config, "a") as f:
            f.write("\n[local\n")
        t.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "keeping the aliases loaded before" in t.logs(), timeout=10), t.logs()[-500:])
        self.expect(mx.cmd(b"RCPT TO:<support@example.test>"), 250)
        self.expect(mx.cmd(b"RCPT TO:<sales@example.test>"), 250)


class Logging(Base):
    def test_password_never_logged(self):
        t = self.tern()
        rc, out = self.swaks("-p", str(SUB), "--tls", "--auth", "LOGIN")
        self.assertEqual(rc, 0, out)
        self.login()
        c = self.connect(starttls=False)  # in the clear: refused, but the blob was sent
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", PW)), 538)
        c = self.connect(source="127.0.0.34")
        self.expect(c.cmd(b"AUTH PLAIN " + plain("alice@example.test", BAD)), 535)
        c = self.connect(source="127.0.0.35")
        self.expect(c.cmd(b"AUTH LOGIN"), 334)
        self.expect(c.cmd(base64.b64encode(b"alice@example.test")), 334)
        self.expect(c.cmd(base64.b64encode(BAD.encode() + b"2")), 535)
        self.expect(c.cmd(b"QUIT"), 221)
        logs = t.logs()
        self.assertIn("authentication failed for alice@example.test", logs)
        for secret in (PW, BAD, BAD + "2"):
            self.assertNotIn(secret, logs)
            self.assertNotIn(base64.b64encode(secret.encode()).decode(), logs)
            self.assertNotIn(plain("alice@example.test", secret).decode(), logs)

    def test_auth_user_name_cannot_forge_log_lines(self):
        # The failed user name is logged; a line end inside it must not start a
        # line of its own (a forged "[IP]: authentication failed" feeds fail2ban).
        t = self.tern()
        fake = "2026-01-01T00:00:00.000Z tern[1]: warning: [203.0.113.9]: authentication failed for bob@example.test"
        c = self.connect(source="127.0.0.36")
        self.expect(c.cmd(b"AUTH LOGIN"), 334)
        self.expect(c.cmd(base64.b64encode(b"x\n" + fake.encode())), 334)
        self.expect(c.cmd(base64.b64encode(BAD.encode())), 535, "5.7.8")
        self.expect(c.cmd(b"QUIT"), 221)
        lines = t.logs().splitlines()
        self.assertIn("authentication failed", "".join(lines))
        pid = t.proc.pid
        for line in lines:
            self.assertRegex(line, rf"^\d{{4}}-\d\d-\d\dT[\d:.]+Z tern\[{pid}\]: ", "forged or broken log line")


if __name__ == "__main__":
    unittest.main()
