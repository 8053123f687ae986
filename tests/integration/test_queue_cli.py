"""`tern queue …` and `tern check-config` against a running server: the CLI is a
second SQLite connection (WAL reader/writer) beside the server's writer."""
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import textwrap
import time
import unittest

from ternlib import TERN, Tern

HOST, PORT = "127.0.0.23", 2525


class QueueCli(unittest.TestCase):
    def setUp(self):
        self.t = Tern(host=HOST, port=PORT, deliver=False)
        self.addCleanup(shutil.rmtree, self.t.dir, True)
        self.addCleanup(self.t.stop)
        self.t.start()

    def send(self, rcpts, subject="cli test", sender="alice@example.test"):
        with smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=10) as s:
            s.ehlo()
            s.mail(sender)
            for r in rcpts:
                self.assertEqual(s.rcpt(r)[0], 250)
            code, msg = s.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        self.assertEqual(code, 250, msg)
        return re.match(rb"2\.0\.0 Ok: queued as (\S+)$", msg).group(1).decode()

    def q(self, *args):
        r = self.t.cli("queue", *args, check=False)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def ok(self, *args):
        rc, out, err = self.q(*args)
        self.assertEqual(rc, 0, err)
        return out

    def listed(self):
        return {m["id"]: m for m in json.loads(self.ok("list", "--json"))}

    def id_lines(self, text):
        """Text listing: the first column of each message line (with a '!' if held)."""
        return [line.split()[0] for line in text.splitlines()[1:-1] if not line.startswith(" ")]

    def test_list(self):
        self.assertEqual(self.ok("list").strip(), "Mail queue is empty")
        self.assertEqual(json.loads(self.ok("list", "--json")), [])
        a = self.send(["bob@example.test"])
        b = self.send(["bob@example.test", "carol@example.test"], sender="dave@remote.test")
        text = self.ok("list")
        self.assertEqual(self.id_lines(text), [a, b])  # sorted by time
        self.assertRegex(text, rf"(?m)^{b} +\d+ +\d+s  <dave@remote.test>\n +queued +<bob@example.test>\n"
                               rf" +queued +<carol@example.test>$")
        self.assertEqual(text.splitlines()[-1], "-- 2 messages, 3 recipients")
        msgs = self.listed()
        self.assertEqual(set(msgs), {a, b})
        self.assertEqual(msgs[b]["sender"], "dave@remote.test")
        self.assertEqual([(r["address"], r["status"]) for r in msgs[b]["recipients"]],
                         [("bob@example.test", "queued"), ("carol@example.test", "queued")])
        sizes = {f[0]: int(f[1]) for f in (line.split() for line in text.splitlines()[1:-1]) if f[0] in msgs}
        self.assertEqual(sizes, {i: m["size"] for i, m in msgs.items()})

    def test_show(self):
        qid = self.send(["bob@example.test", "carol@example.test"], subject="shown")
        out = self.ok("show", qid)
        self.assertIn(f"ID:          {qid}\n", out)
        self.assertIn("Sender:      <alice@example.test>\n", out)
        self.assertRegex(out, r"Received:    \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ from \[127\.0\.0\.1\] \(HELO client\.test\)")
        self.assertRegex(out, r"Recipients:\n  <bob@example.test> queued attempts=0 .*\n"
                              r"  <carol@example.test> queued attempts=0 ")
        headers = out.split("Headers:\n", 1)[1]
        self.assertTrue(headers.startswith("  Received: from "), headers)
        self.assertIn(f" id {qid}", headers)
        self.assertIn("  Subject: shown\n", headers)
        self.assertNotIn("body of", headers)  # the header section ends at the empty line
        body = self.t.message_body(qid)
        self.assertTrue(body.startswith(b"Received: "))
        self.assertTrue(body.endswith(b"\r\nSubject: shown\r\n\r\nbody of shown\r\n"), body)
        self.assertEqual(json.loads(self.ok("show", qid, "--json"))["id"], qid)

    def test_hold_release(self):
        a = self.send(["bob@example.test"])
        b = self.send(["bob@example.test"])
        self.assertEqual(self.ok("hold", a), f"{a}: held\n")
        self.assertEqual(self.id_lines(self.ok("list")), [a + "!", b])
        msgs = self.listed()
        self.assertIs(msgs[a]["held"], True)
        self.assertIs(msgs[b]["held"], False)
        self.assertIn(f"ID:          {a} (held)\n", self.ok("show", a))
        self.assertEqual(json.loads(self.ok("stats", "--json"))["held"], 1)
        self.assertEqual(self.ok("release", a), f"{a}: released\n")
        self.assertEqual(self.id_lines(self.ok("list")), [a, b])
        self.assertIs(self.listed()[a]["held"], False)
        self.assertEqual(json.loads(self.ok("stats", "--json"))["held"], 0)

    def test_retry(self):
        a = self.send(["bob@example.test", "carol@example.test"])
        self.send(["alice@example.test"])
        self.assertEqual(self.ok("retry", a), f"{a}: 2 recipients scheduled for immediate delivery\n")
        self.assertEqual(self.ok("retry", "--all"), "3 recipients scheduled for immediate delivery\n")
        now = time.time()
        for m in self.listed().values():
            for r in m["recipients"]:
                self.assertLessEqual(r["next_attempt"], now + 1)

    def test_delete(self):
        a = self.send(["bob@example.test"])
        b = self.send(["carol@example.test"])
        self.assertEqual(self.ok("delete", a), f"{a}: deleted\n")
        self.assertEqual(set(self.listed()), {b})
        self.assertEqual(self.q("show", a)[0], 1)
        self.assertNotIn(a, self.ok("list"))
        # The server's writer is not disturbed by the CLI's write.
        c = self.send(["bob@example.test"])
        self.assertEqual(set(self.listed()), {b, c})

    def test_stats(self):
        sent = [self.send(["bob@example.test"]), self.send(["bob@example.test", "carol@example.test"]),
                self.send(["alice@example.test"])]
        msgs = self.listed()
        nbytes = sum(m["size"] for m in msgs.values())
        s = json.loads(self.ok("stats", "--json"))
        self.assertEqual((s["messages"], s["held"], s["bytes"], s["recipients"]), (3, 0, nbytes, {"queued": 4}))
        self.assertEqual(s["oldest_received_at"], min(m["received_at"] for m in msgs.values()))
        text = self.ok("stats")
        self.assertRegex(text, rf"(?m)^messages: +{len(sent)}$")
        self.assertRegex(text, r"(?m)^held: +0$")
        self.assertRegex(text, rf"(?m)^bytes: +{nbytes}$")
        self.assertRegex(text, r"(?m)^queued: +4$")

    def test_unknown_id(self):
        good = self.send(["bob@example.test"])
        for args in (["show", "NOPE"], ["show", "NOPE", "--body"], ["show", "NOPE", "--json"], ["delete", "NOPE"],
                     ["hold", "NOPE"], ["release", "NOPE"], ["retry", "NOPE"]):
            with self.subTest(args):
                rc, out, err = self.q(*args)
                self.assertEqual(rc, 1)
                self.assertIn("no message with ID NOPE", err)
                self.assertEqual(out, "")
        # Several IDs: the good one is still done, the bad one still fails the command.
        rc, out, err = self.q("hold", good, "NOPE")
        self.assertEqual((rc, out), (1, f"{good}: held\n"))
        self.assertIn("no message with ID NOPE", err)
        self.assertEqual(set(self.listed()), {good})


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tern-check-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("bob@example.test\n")

    def check(self, text):
        path = os.path.join(self.dir, "tern.toml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n").replace("USERS", os.path.join(self.dir, "users")))
        r = subprocess.run([TERN, "check-config", "--config", path], capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode() + r.stderr.decode(), path

    GOOD = """
        hostname = "mx.example.test"
        data_dir = "/nonexistent/var"
        [smtp]
        listen = ["127.0.0.1:2525"]
        [limits]
        max_recipients = 50
        command_timeout = "5m"
        [local]
        domains = ["example.test"]
        users_file = "USERS"
        [relay]
        networks = ["127.0.0.0/8"]
        """

    def test_good(self):
        rc, out, path = self.check(self.GOOD)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"{path}: ok", out)

    def test_running_servers_config(self):
        t = Tern(host=HOST, port=PORT, deliver=False)
        self.addCleanup(shutil.rmtree, t.dir, True)
        r = t.cli("check-config", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_errors_name_the_line(self):
        lines = self.GOOD.strip("\n").split("\n")
        cases = {  # line to change (1-based) -> replacement, and what the message must mention
            "unknown key": (7, "        max_recipent = 50", "max_recipent"),
            "wrong type": (6, "        max_recipients = \"fifty\"", "max_recipients"),
            "wrong type top": (2, "        data_dir = 42", "data_dir"),
            "bad listen": (4, "        listen = [\"localhost:25\"]", "localhost:25"),
            "listen no port": (4, "        listen = [\"127.0.0.1\"]", "127.0.0.1"),
            "bad duration": (7, "        command_timeout = \"soon\"", "command_timeout"),
        }
        for name, (n, replacement, mention) in cases.items():
            with self.subTest(name):
                changed = list(lines)
                changed[n - 1] = replacement
                rc, out, path = self.check("\n".join(changed) + "\n")
                self.assertNotEqual(rc, 0, out)
                self.assertIn(f"{path}:{n}: ", out)
                self.assertIn(mention, out)


if __name__ == "__main__":
    unittest.main()
