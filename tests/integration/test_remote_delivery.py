"""Remote delivery (relaying) with real parts: two `tern serve` processes as two
mail hosts, dnsmasq for MX records, scripted Python SMTP servers and Postfix's
smtp-sink as remote peers (DESIGN "Delivery rules worth knowing", "Testing with
real parts"; RFC 5321 §§4.1.1.4, 4.2.5, 5.1, 6.3; RFC 7505; RFC 3464)."""
import email
import os
import re
import shutil
import smtplib
import subprocess
import unittest

from ternlib import DROP, TERN, Dnsmasq, ScriptedSMTP, SmtpSink, Tern, split_received, wait_until

SEND_HOST, RECV_HOST, PORT = "127.0.0.10", "127.0.0.11", 2525
DNS_PORT = 5391
SCRIPTED, NOMX, SINK, DEAD_MX1, MX2, ABSENT, DEAD_OWN, BACKUP = (f"127.0.0.{i}" for i in range(12, 20))
RECORDS = [
    "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.11",
    "--mx-host=scripted.test,mx.scripted.test,10", f"--host-record=mx.scripted.test,{SCRIPTED}",
    # Two MX hosts: the preferred one has nothing listening.
    "--mx-host=two.test,mx1.two.test,10", "--mx-host=two.test,mx2.two.test,20",
    f"--host-record=mx1.two.test,{DEAD_MX1}", f"--host-record=mx2.two.test,{MX2}",
    # Two MX hosts that both answer: the scripted server first, a backup second.
    "--mx-host=pair.test,mx1.pair.test,10", "--mx-host=pair.test,mx2.pair.test,20",
    f"--host-record=mx1.pair.test,{SCRIPTED}", f"--host-record=mx2.pair.test,{BACKUP}",
    "--mx-host=nullmx.test,.,0",  # RFC 7505 null MX
    f"--host-record=nomx.test,{NOMX}",  # no MX: the A record is the implicit MX
    "--mx-host=absent.test,mx.absent.test,10", f"--host-record=mx.absent.test,{ABSENT}",
    # Loops: an MX that is our own listen address, and one named as our own hostname.
    "--mx-host=loop.test,self.loop.test,10", f"--host-record=self.loop.test,{SEND_HOST}",
    "--mx-host=loopname.test,mx.example.test,10", f"--host-record=mx.example.test,{DEAD_OWN}",
]
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as (\S+)$")
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")

# ternlib turns the submission listeners off by default (no port clash).
NO_SUBMISSION = ""
# A third Tern for SourceAddress, and the address it sends from.
SOURCE_HOST, SOURCE_ADDRESS = "127.0.0.20", "127.0.0.9"
DNS = SEND = RECV = None


def setUpModule():
    global DNS, SEND, RECV
    DNS = Dnsmasq(DNS_PORT, RECORDS)
    RECV = Tern(host=RECV_HOST, port=PORT, hostname="mx.remote.test", domains=["remote.test"],
                users=["bob@remote.test", "carol@remote.test"], relay_networks=[],
                aliases={"postmaster@remote.test": ["bob@remote.test"]}, extra=NO_SUBMISSION)
    SEND = Tern(host=SEND_HOST, port=PORT, users=["alice@example.test"], extra=NO_SUBMISSION,
                delivery={"dns_servers": [f"127.0.0.1:{DNS_PORT}"], "smtp_port": PORT,
                          "transports": {"sink.test": f"[{SINK}]:{PORT}"}})
    try:
        for p in (DNS, RECV, SEND):
            p.start()
    except BaseException:
        for p in (SEND, RECV, DNS):
            p.stop()
        for t in (SEND, RECV):
            shutil.rmtree(t.dir, True)
        raise


def tearDownModule():
    problems = []
    for t in (SEND, RECV):
        if t is None:
            continue
        rc = t.stop()
        if rc != 0 or "AddressSanitizer" in t.logs():
            problems.append(f"{t.host}: exit {rc}\n{t.logs()[-3000:]}")
        shutil.rmtree(t.dir, True)
    if DNS:
        DNS.stop()
    if problems:
        raise AssertionError("\n".join(problems))


def message(subject, body=b"hello\r\n", headers=b""):
    mid = f"<{subject.replace(' ', '-')}.{os.getpid()}@client.test>"
    return (f"Subject: {subject}\r\nMessage-ID: {mid}\r\n".encode() + headers + b"\r\n" + body), mid


def send(body, rcpts, sender="alice@example.test", mail_opts=(), rcpt_opts=(), host=SEND_HOST):
    """One transaction to the sending Tern with smtplib; the queue ID from its 250."""
    with smtplib.SMTP(host, PORT, local_hostname="client.test", timeout=10) as s:
        s.ehlo()
        assert s.mail(sender, list(mail_opts))[0] == 250
        for r in rcpts:
            reply = s.rcpt(r, list(rcpt_opts))
            assert reply[0] == 250, (r, reply)
        code, msg = s.data(body)
        m = QUEUED.match(msg)
        assert code == 250 and m, (code, msg)
        return m.group(1).decode()


class Base(unittest.TestCase):
    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def mails(self, t, domain, user):
        d = os.path.join(t.mail_dir, domain, user, "new")
        return sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []

    def wait_mail(self, t, domain, user, *needles, timeout=10):
        """The one file in user's new/ that contains every needle (a Message-ID, …)."""
        def matching():
            return [f for f in self.mails(t, domain, user) if all(n.encode() in self.read(f) for n in needles)]
        found = wait_until(matching, timeout, 0.1)
        self.assertEqual(len(found or []), 1, f"{user}@{domain}: files with {needles}: {found}")
        return self.read(found[0])

    def outcome(self, qid, rcpt, status, timeout=10, t=None, since=0):
        """(relay, dsn, detail) of the first log line for rcpt with this status (a regex) after `since`;
        relay without the TLS details that follow it when the connection was encrypted."""
        t = t or SEND
        pat = re.compile(rf"{qid}: to=<{re.escape(rcpt)}>, relay=(\S+)(?: \([^)]*\))?, delay=[\d.]+, dsn=(\S+), "
                         rf"status=(?:{status}) \((.*)\)$", re.M)
        m = wait_until(lambda: pat.search(t.logs(), since), timeout, 0.1)
        self.assertTrue(m, f"no status={status} for {rcpt} ({qid}) in:\n{t.logs()[-3000:]}")
        return m.groups()

    def assert_gone(self, qid, timeout=5):
        self.assertTrue(wait_until(lambda: all(m["id"] != qid for m in SEND.queue_list()), timeout, 0.1),
                        f"{qid} still queued")
        self.assertIn(f"{qid}: removed", SEND.logs())

    def assert_deferred(self, qid):
        [m] = [m for m in SEND.queue_list() if m["id"] == qid]
        self.assertEqual([r["status"] for r in m["recipients"]], ["deferred"] * len(m["recipients"]))

    def delete_later(self, qid):
        self.addCleanup(SEND.cli, "queue", "delete", qid, check=False)

    def bounce(self, qid, rcpts):
        """The DSN for qid that names rcpts in alice's Maildir: [(status, diagnostic)] for each."""
        data = self.wait_mail(SEND, "example.test", "alice", f"X-Tern-Queue-ID: {qid}\r\n",
                              *(f"Final-Recipient: rfc822; {r}\r\n" for r in rcpts))
        prefix = b"Return-Path: <>\r\nDelivered-To: alice@example.test\r\n"
        self.assertTrue(data.startswith(prefix), data[:200])
        msg = email.message_from_bytes(data[len(prefix):])
        self.assertEqual((msg.get_content_type(), msg.get_param("report-type")), ("multipart/report", "delivery-status"))
        [part] = [p for p in msg.get_payload() if p.get_content_type() == "message/delivery-status"]
        got = [(b["Final-Recipient"], b["Action"], b["Status"], b["Diagnostic-Code"])
               for b in part.get_payload()[1:]]
        self.assertEqual([(g[0], g[1]) for g in got], [(f"rfc822; {r}", "failed") for r in rcpts])
        return [(g[2], g[3]) for g in got]

    def scripted(self, host=SCRIPTED, **kw):
        s = ScriptedSMTP(host, PORT, **kw).start()
        self.addCleanup(s.stop)
        return s


class SourceAddress(Base):
    def test_outbound_connections_use_source_address(self):
        # [delivery] source_address: what a host with several addresses needs
        # so that its mail leaves from the one its SPF record and PTR name.
        srv = self.scripted()
        t = Tern(host=SOURCE_HOST, port=PORT, users=["alice@example.test"], extra=NO_SUBMISSION,
                 delivery={"dns_servers": [f"127.0.0.1:{DNS_PORT}"], "smtp_port": PORT,
                           "source_address": SOURCE_ADDRESS})
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        t.start()
        qid = send(message("from my address")[0], ["x@scripted.test"], host=SOURCE_HOST)
        self.assertEqual(self.outcome(qid, "x@scripted.test", "sent", t=t)[1], "2.0.0")
        self.assertEqual([s.peer for s in srv.sessions], [SOURCE_ADDRESS])
        # The kernel's choice otherwise (127.0.0.1 on loopback).
        qid = send(message("from the default")[0], ["y@scripted.test"])
        self.assertEqual(self.outcome(qid, "y@scripted.test", "sent")[1], "2.0.0")
        self.assertEqual(srv.sessions[-1].peer, "127.0.0.1")
        # A source address of the wrong family, or no address at all, is a configuration error.
        for bad in ('source_address = "::1"', 'source_address6 = "127.0.0.1"', 'source_address = "host.test"'):
            cfg = os.path.join(t.dir, "bad.toml")
            with open(t.config) as f:
                lines = [l for l in f.read().split("\n") if not l.startswith("source_address")]
            with open(cfg, "w") as out:
                out.write("\n".join(lines).replace("[delivery]\n", f"[delivery]\n{bad}\n", 1))
            r = subprocess.run([TERN, "check-config", "--config", cfg], capture_output=True)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn(b"must be an IPv", r.stderr, bad)


class TwoTerns(Base):
    def test_relayed_byte_exact(self):
        body, mid = message("byte exact", b".leading dot\r\n.\r\n..two\r\ncaf\xc3\xa9 \xff\xfe\x80 raw\r\n"
                                          + b"L" * 2000 + b"\r\n\t tab \r\nend. \r\n")
        qid = send(body, ["bob@remote.test"], mail_opts=["BODY=8BITMIME"])
        relay, dsn, detail = self.outcome(qid, "bob@remote.test", "sent")
        self.assertEqual((relay, dsn), (f"mx.remote.test[{RECV_HOST}]:{PORT}", "2.0.0"))
        remote_id = re.fullmatch(r"250 2\.0\.0 Ok: queued as (\S+)", detail).group(1)
        self.assert_gone(qid)
        data = self.wait_mail(RECV, "remote.test", "bob", mid)
        prefix = b"Return-Path: <alice@example.test>\r\nDelivered-To: bob@remote.test\r\n"
        self.assertTrue(data.startswith(prefix), data[:200])
        theirs, rest = split_received(data[len(prefix):])
        ours, rest = split_received(rest)
        self.assertRegex(theirs, rb"^Received: from mx\.example\.test \(\[127\.0\.0\.\d+\]\)\r\n\t"
                                 rb"(\(using [^)]+\)\r\n\t)?by mx\.remote\.test \(Tern\) with E?SMTP\S* id "
                                 + remote_id.encode())
        self.assertRegex(ours, rb"^Received: from client\.test \(\[127\.0\.0\.\d+\]\)\r\n\tby mx\.example\.test "
                               rb"\(Tern\) with E?SMTP\S* id " + qid.encode())
        self.assertEqual(rest, body)
        self.assertRegex(RECV.logs(), rf"{remote_id}: from=<alice@example\.test>, size=\d+, nrcpt=1")

    def test_two_recipients_one_transaction(self):
        body, mid = message("two rcpts")
        qid = send(body, ["bob@remote.test", "carol@remote.test"])
        ids = {re.fullmatch(r"250 2\.0\.0 Ok: queued as (\S+)", self.outcome(qid, r, "sent")[2]).group(1)
               for r in ("bob@remote.test", "carol@remote.test")}
        self.assertEqual(len(ids), 1, "both recipients must be in one transaction")
        self.assertRegex(RECV.logs(), rf"{ids.pop()}: from=<alice@example\.test>, size=\d+, nrcpt=2")
        for user in ("bob", "carol"):
            self.wait_mail(RECV, "remote.test", user, mid)
        self.assert_gone(qid)

    def test_refused_recipient_then_next_message(self):
        """A transaction whose every RCPT was refused is still open at the server
        (RFC 5321 §4.1.4): a connection kept for the next message needs RSET."""
        before = len(self.mails(RECV, "remote.test", "bob"))
        qid1 = send(message("to nobody")[0], ["nobody@remote.test"])
        self.assertEqual(self.outcome(qid1, "nobody@remote.test", "bounced")[1], "5.1.1")
        body, mid = message("after refusal")
        qid2 = send(body, ["bob@remote.test"])
        detail = self.outcome(qid2, "bob@remote.test", "sent|bounced|deferred")[2]
        wait_until(lambda: len(self.mails(RECV, "remote.test", "bob")) > before, 5, 0.1)
        got = [self.read(f) for f in self.mails(RECV, "remote.test", "bob")[before:]]
        self.assertEqual((detail[:3], [g.endswith(body) for g in got]), ("250", [True]), (detail, got))


class Routing(Base):
    def test_implicit_mx(self):
        srv = self.scripted(NOMX)
        qid = send(message("implicit mx")[0], ["x@nomx.test"])
        self.assertEqual(self.outcome(qid, "x@nomx.test", "sent")[:2], (f"nomx.test[{NOMX}]:{PORT}", "2.0.0"))
        self.assertIn("RCPT TO:<x@nomx.test>", srv.commands())

    def test_null_mx_bounces(self):
        qid = send(message("null mx")[0], ["x@nullmx.test"])
        relay, dsn, detail = self.outcome(qid, "x@nullmx.test", "bounced")
        self.assertEqual((relay, dsn), ("none", "5.1.10"))
        self.assertIn("null MX", detail)
        self.assertEqual(self.bounce(qid, ["x@nullmx.test"]), [("5.1.10", f"smtp; 556 5.1.10 {detail}")])
        self.assert_gone(qid)

    def test_nxdomain_bounces(self):
        qid = send(message("nxdomain")[0], ["x@nosuch.test"])
        relay, dsn, detail = self.outcome(qid, "x@nosuch.test", "bounced")
        self.assertEqual((relay, dsn, detail[:40]), ("none", "5.1.2", "host or domain name not found: nosuch.test"[:40]))
        self.assertEqual(self.bounce(qid, ["x@nosuch.test"]), [("5.1.2", f"smtp; 550 5.1.2 {detail}")])
        self.assert_gone(qid)

    def test_first_mx_down_second_used(self):
        srv = self.scripted(MX2)
        qid = send(message("second mx")[0], ["x@two.test"])
        self.assertEqual(self.outcome(qid, "x@two.test", "sent")[0], f"mx2.two.test[{MX2}]:{PORT}")
        # The preferred MX was tried first.
        self.assertRegex(SEND.logs(), rf"{qid}: connect to mx1\.two\.test\[{DEAD_MX1}\]:{PORT}: .*refused")
        self.assertEqual(len(srv.messages()), 1)
        self.assert_gone(qid)

    def test_absent_server_deferred(self):
        qid = send(message("absent")[0], ["x@absent.test"])
        self.delete_later(qid)
        relay, dsn, detail = self.outcome(qid, "x@absent.test", "deferred")
        self.assertEqual((relay, dsn), (f"mx.absent.test[{ABSENT}]:{PORT}", "4.4.1"))
        self.assertIn("refused", detail)
        self.assert_deferred(qid)
        self.assertNotIn(f"X-Tern-Queue-ID: {qid}".encode(),
                         b"".join(self.read(f) for f in self.mails(SEND, "example.test", "alice")))


class Scripted(Base):
    RELAY = f"mx.scripted.test[{SCRIPTED}]:{PORT}"

    def test_451_rcpt_deferred_then_delivered_after_retry(self):
        srv = self.scripted(replies={"RCPT": "451 4.3.0 Try again later"})
        qid = send(message("soft")[0], ["x@scripted.test"])
        self.delete_later(qid)
        self.assertEqual(self.outcome(qid, "x@scripted.test", "deferred"),
                         (self.RELAY, "4.3.0", "451 4.3.0 Try again later"))
        self.assertEqual(srv.messages(), [], "no message data after every RCPT was refused")
        self.assert_deferred(qid)
        srv.replies["RCPT"] = "250 2.1.5 Ok"
        mark = len(SEND.logs())
        SEND.cli("queue", "retry", qid)
        self.assertEqual(self.outcome(qid, "x@scripted.test", "sent|bounced|deferred", since=mark)[1:],
                         ("2.0.0", "250 2.0.0 Ok: queued as SCRIPTED"))
        self.assertEqual(len(srv.messages()), 1)
        self.assert_gone(qid)

    def test_550_rcpt_bounces_that_recipient(self):
        refusal = "550 5.1.1 <bad@scripted.test>: Recipient address rejected: User unknown"
        srv = self.scripted(replies={"RCPT": lambda line: refusal if "bad@" in line else "250 2.1.5 Ok"})
        qid = send(message("hard rcpt")[0], ["good@scripted.test", "bad@scripted.test"])
        self.assertEqual(self.outcome(qid, "bad@scripted.test", "bounced"), (self.RELAY, "5.1.1", refusal))
        self.assertEqual(self.outcome(qid, "good@scripted.test", "sent")[1], "2.0.0")
        self.assertEqual(self.bounce(qid, ["bad@scripted.test"]), [("5.1.1", f"smtp; {refusal}")])
        self.assertEqual(len(srv.messages()), 1)
        self.assert_gone(qid)

    def test_554_end_of_data_bounces(self):
        self.scripted(replies={"DOT": "554 5.7.1 Message rejected as spam"})
        qid = send(message("hard data")[0], ["x@scripted.test", "y@scripted.test"])
        for r in ("x@scripted.test", "y@scripted.test"):
            self.assertEqual(self.outcome(qid, r, "bounced"),
                             (self.RELAY, "5.7.1", "554 5.7.1 Message rejected as spam"))
        # One DSN naming both recipients, as Postfix sends, not one each.
        self.assertEqual(self.bounce(qid, ["x@scripted.test", "y@scripted.test"]),
                         [("5.7.1", "smtp; 554 5.7.1 Message rejected as spam")] * 2)
        self.assert_gone(qid)
        dsns = [f for f in self.mails(SEND, "example.test", "alice") if f"X-Tern-Queue-ID: {qid}\r\n".encode() in self.read(f)]
        self.assertEqual(len(dsns), 1, dsns)
        self.assertEqual(len(re.findall(rf"{qid}: sender non-delivery notification: ", SEND.logs())), 1)

    def test_550_to_mail_bounces_all(self):
        self.scripted(replies={"MAIL": "550 5.7.1 Sender refused"})
        qid = send(message("hard mail")[0], ["x@scripted.test", "y@scripted.test"])
        for r in ("x@scripted.test", "y@scripted.test"):
            self.assertEqual(self.outcome(qid, r, "bounced")[1:], ("5.7.1", "550 5.7.1 Sender refused"))
        self.assert_gone(qid)

    def test_dropped_mid_data_deferred_then_delivered(self):
        srv = self.scripted(drop_data_after=4096)
        body, _ = message("dropped", (b"0123456789" * 7 + b"\r\n") * 2000)  # 144 kB: several 64 KiB writes
        qid = send(body, ["x@scripted.test"])
        self.delete_later(qid)
        relay, dsn, detail = self.outcome(qid, "x@scripted.test", "deferred")
        self.assertEqual((relay, dsn), (self.RELAY, "4.4.2"))
        self.assertIn("lost connection", detail)
        self.assertEqual(srv.messages(), [])
        self.assert_deferred(qid)
        srv.drop_data_after = None
        SEND.cli("queue", "retry", qid)
        self.assertEqual(self.outcome(qid, "x@scripted.test", "sent")[1], "2.0.0")
        [wire] = srv.messages()
        ours, rest = split_received(wire)
        self.assertIn(b" id " + qid.encode(), ours)
        self.assertEqual(rest, body)
        self.assert_gone(qid)

    def test_wire_format_and_quit(self):
        srv = self.scripted()
        body, _ = message("wire", b".leading\r\n.\r\n..two\r\nmiddle\r\n.\r\n\xc3\xa9t\xc3\xa9\r\n")
        qid = send(body, ["x@scripted.test"], mail_opts=["BODY=8BITMIME"])
        self.outcome(qid, "x@scripted.test", "sent")
        [wire] = srv.messages()
        # RFC 5321 §4.5.2: every line that begins with "." gets one more.
        self.assertIn(b"\r\n..leading\r\n..\r\n...two\r\nmiddle\r\n..\r\n", wire)
        unstuffed = re.sub(rb"(?m)^\.", b"", wire)
        self.assertEqual(split_received(unstuffed)[1], body)
        self.assertEqual(srv.commands()[:4], ["EHLO mx.example.test",
                                              f"MAIL FROM:<alice@example.test> SIZE={len(unstuffed)} BODY=8BITMIME",
                                              "RCPT TO:<x@scripted.test>", "DATA"])
        # The connection may be kept for a while, but RFC 5321 §4.1.1.10: never closed without QUIT.
        [s] = wait_until(lambda: all(x.closed for x in srv.sessions) and srv.sessions, 15, 0.1) or [None]
        self.assertIsNotNone(s, "the connection was not closed within 15 s")
        self.assertIsNone(BARE.search(s.raw), "only CRLF line ends on the wire")
        self.assertTrue(s.raw.endswith(b"\r\nQUIT\r\n"), s.raw[-40:])

    def test_server_closing_idle_connection_with_421(self):
        """RFC 5321 §3.8: a server may say 421 and close at any time. A kept
        connection the server has closed is replaced, the message not deferred."""
        srv = self.scripted(idle_close=0.2)
        qid = send(message("before idle")[0], ["x@scripted.test"])
        self.outcome(qid, "x@scripted.test", "sent")
        self.assertTrue(wait_until(lambda: srv.sessions[0].closed, 5, 0.05), "the server did not close")
        qid = send(message("after idle")[0], ["x@scripted.test"])
        self.delete_later(qid)
        self.assertEqual(self.outcome(qid, "x@scripted.test", "sent|bounced|deferred")[1], "2.0.0")
        self.assertEqual(len(srv.messages()), 2)

    def test_4xx_tries_next_mx_but_lost_end_of_data_does_not(self):
        first = self.scripted(replies={"MAIL": "451 4.3.2 Busy"})
        backup = self.scripted(BACKUP)
        qid = send(message("next mx")[0], ["x@pair.test"])
        self.assertEqual(self.outcome(qid, "x@pair.test", "sent")[0], f"mx2.pair.test[{BACKUP}]:{PORT}")
        self.assertEqual((len(first.messages()), len(backup.messages())), (0, 1))
        # After the end of data the first server may have the message: another MX would duplicate it.
        first.replies.update(MAIL="250 2.1.0 Ok", DOT=DROP)
        qid = send(message("lost dot")[0], ["x@pair.test"])
        self.delete_later(qid)
        self.assertEqual(self.outcome(qid, "x@pair.test", "deferred")[:2],
                         (f"mx1.pair.test[{SCRIPTED}]:{PORT}", "4.4.2"))
        self.assertEqual(len(first.messages()), 1)
        self.assertEqual(len(backup.messages()), 1, "the backup MX must not get a second copy")

    def test_null_sender_relayed_and_never_bounced(self):
        srv = self.scripted(replies={"RCPT": "550 5.1.1 No such user"})
        qid = send(message("null sender")[0], ["x@scripted.test"], sender="")
        self.assertEqual(self.outcome(qid, "x@scripted.test", "bounced")[1], "5.1.1")
        self.assertRegex(srv.commands()[1], r"^MAIL FROM:<> SIZE=\d+$")
        self.assert_gone(qid)
        self.assertIn(f"{qid}: undeliverable message from <> discarded", SEND.logs())
        self.assertNotIn(f"{qid}: sender non-delivery notification", SEND.logs())

    def test_notify_success_passed_on_to_a_dsn_server(self):
        """RFC 3461 §5.2.1: the request goes to the next hop, which reports; the relay does not."""
        ehlo = ScriptedSMTP.DEFAULT["EHLO"].replace("250-8BITMIME", "250-8BITMIME\r\n250-DSN")
        srv = self.scripted(replies={"EHLO": ehlo})
        qid = send(message("notify dsn")[0], ["x@scripted.test"], mail_opts=["RET=HDRS", "ENVID=e1"],
                   rcpt_opts=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x@scripted.test"])
        self.outcome(qid, "x@scripted.test", "sent")
        self.assert_gone(qid)
        self.assertRegex(srv.commands()[1], r"^MAIL FROM:<alice@example\.test> SIZE=\d+ RET=HDRS ENVID=e1$")
        self.assertEqual(srv.commands()[2],
                         "RCPT TO:<x@scripted.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@scripted.test")
        self.assertFalse(f"{qid}: sender delivery status notification" in SEND.logs(),
                         "the DSN-capable next hop reports success, not the relaying MTA")

    def test_notify_success_relayed_to_a_server_without_dsn(self):
        """RFC 3461 §5.2.2, RFC 3464 §2.3.3: the relay reports action "relayed", not "delivered"."""
        srv = self.scripted(NOMX)
        qid = send(message("notify plain")[0], ["x@nomx.test"], rcpt_opts=["NOTIFY=SUCCESS"])
        self.outcome(qid, "x@nomx.test", "sent")
        self.assertEqual(srv.commands()[2], "RCPT TO:<x@nomx.test>")
        data = self.wait_mail(SEND, "example.test", "alice", f"X-Tern-Queue-ID: {qid}\r\n")
        self.assertEqual(re.findall(rb"\r\nAction: (\w+)\r\n", data), [b"relayed"])


class Sink(Base):
    def test_smtp_sink_twenty_messages(self):
        sink = SmtpSink(SINK, PORT).start()
        self.addCleanup(sink.stop)
        with smtplib.SMTP(SEND_HOST, PORT, local_hostname="client.test", timeout=10) as s:
            for i in range(20):
                s.sendmail("alice@example.test", [f"u{i}@sink.test"], message(f"sink {i}")[0])
        logs = wait_until(lambda: len(re.findall(rf"relay={re.escape(SINK)}\[{re.escape(SINK)}\]:{PORT}, delay=[\d.]+, "
                                                 r"dsn=2\.0\.0, status=sent \(250 ", SEND.logs())) >= 20
                          and SEND.logs(), 20, 0.1)
        self.assertTrue(logs, SEND.logs()[-3000:])
        sent = set(re.findall(rf"to=<(u\d+)@sink\.test>, relay={re.escape(SINK)}\[[\d.]+\]:{PORT}, .*status=sent",
                              logs))
        self.assertEqual(sent, {f"u{i}" for i in range(20)})
        self.assertNotRegex(logs, r"to=<u\d+@sink\.test>.*status=(deferred|bounced)")


class Loops(Base):
    def test_mx_is_my_own_address(self):
        qid = send(message("loop address")[0], ["x@loop.test"])
        relay, dsn, detail = self.outcome(qid, "x@loop.test", "bounced")
        self.assertEqual((relay, dsn), ("none", "5.4.6"))
        self.assertIn(f"{SEND_HOST}:{PORT}", detail)
        self.assertEqual(self.bounce(qid, ["x@loop.test"])[0][0], "5.4.6")
        self.assert_gone(qid)

    def test_mx_is_my_own_hostname(self):
        qid = send(message("loop name")[0], ["x@loopname.test"])
        self.assertEqual(self.outcome(qid, "x@loopname.test", "bounced")[:2], ("none", "5.4.6"))

    def test_too_many_received_headers(self):
        # The sending Tern adds its own: 49 + 1 = 50 still goes, 50 + 1 = 51 is a loop.
        hop = b"Received: from a.test by b.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        ok, ok_mid = message("fifty hops", headers=hop * 49)
        looped, _ = message("fifty-one hops", headers=hop * 50)
        qid_ok = send(ok, ["bob@remote.test"])
        qid_loop = send(looped, ["bob@remote.test"])
        relay, dsn, detail = self.outcome(qid_loop, "bob@remote.test", "bounced")
        self.assertEqual((relay, dsn), ("none", "5.4.6"))
        self.assertIn("51 Received", detail)
        self.assertEqual(self.bounce(qid_loop, ["bob@remote.test"])[0][0], "5.4.6")
        self.outcome(qid_ok, "bob@remote.test", "sent")
        self.wait_mail(RECV, "remote.test", "bob", ok_mid)
        self.assert_gone(qid_loop)


class DnsDown(Base):
    def test_dns_stopped_deferred_then_delivered(self):
        DNS.stop()
        self.addCleanup(lambda: DNS.proc or DNS.start())
        body, mid = message("dns down")
        qid = send(body, ["bob@remote.test"])
        self.delete_later(qid)
        relay, dsn, detail = self.outcome(qid, "bob@remote.test", "deferred")
        self.assertEqual((relay, dsn), ("none", "4.4.3"))
        self.assertIn("cannot look up MX of remote.test", detail)
        self.assert_deferred(qid)
        DNS.start()
        SEND.cli("queue", "retry", qid)
        self.assertEqual(self.outcome(qid, "bob@remote.test", "sent")[0], f"mx.remote.test[{RECV_HOST}]:{PORT}")
        self.wait_mail(RECV, "remote.test", "bob", mid)
        self.assert_gone(qid)


if __name__ == "__main__":
    unittest.main()
