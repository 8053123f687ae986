"""The web console in a real browser: tests/browser/console.test.mjs drives
Debian's Chromium (playwright-core) against a Tern holding a held, a deferred
and a to-be-deleted message and one delivered to bob's Maildir. tools/install-deps
installs chromium and tools/test runs `npm install` in tests/browser, so in CI
this runs; it is skipped only where node or chromium is not installed at all."""
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest
import urllib.request

from ternlib import Tern, wait_port, wait_until

HOST, PORT, HTTP_PORT = "127.0.0.61", 2525, 8025
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
SCRIPT = os.path.join(BROWSER_DIR, "console.test.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
SUBJECT = "Hello <b>Bob</b> & co"  # as console.test.mjs expects it
TOKEN = "console-test-token-8d1f0c"  # handed to console.test.mjs, which types it into the prompt


def send(sender, rcpt, subject, body):
    with smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=10) as s:
        refused = s.sendmail(sender, [rcpt], f"Subject: {subject}\r\n\r\n{body}\r\n".encode())
    if refused:
        raise AssertionError(f"refused: {refused}")


@unittest.skipIf(NODE is None, "node is not installed (tools/install-deps does not install it; Debian package nodejs)")
@unittest.skipIf(not os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is not installed (tools/install-deps installs chromium)")
class ConsoleInBrowser(unittest.TestCase):
    def setUp(self):
        if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
            self.fail("playwright-core is missing: run `npm install --no-audit --no-fund` in tests/browser "
                      "(tools/test does this before ctest)")
        # The API wants its token even on loopback, so that the browser test
        # covers the console asking for it (as it would from another host).
        token_dir = tempfile.mkdtemp(prefix="tern-console-token-")
        self.addCleanup(shutil.rmtree, token_dir, True)
        token_file = os.path.join(token_dir, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        t = self.t = Tern(host=HOST, port=PORT, http=f"{HOST}:{HTTP_PORT}", deliver=True,
                          http_token_file=token_file, http_loopback_needs_token=True,
                          delivery={"transports": {"remote.test": "[127.0.0.1]:9"}})
        self.addCleanup(shutil.rmtree, t.dir, True)
        self.addCleanup(t.stop)
        t.start()
        wait_port(HOST, HTTP_PORT)

    def console_is_stale(self):
        """True when the binary's /app.js is not the source tree's mta/console/app.js."""
        with urllib.request.urlopen(f"http://{HOST}:{HTTP_PORT}/app.js", timeout=10) as r:
            served = r.read()
        with open(os.path.join(ROOT, "mta", "console", "app.js"), "rb") as f:
            return served != f.read()

    def queue(self):
        return {m["sender"]: m for m in self.t.queue_list()}

    def test_console(self):
        t = self.t
        send("alice@example.test", "bob@example.test", SUBJECT, "body for bob")
        for who, rcpt in (("held", "held@remote.test"), ("deferred", "someone@remote.test"),
                          ("doomed", "doomed@remote.test")):
            send(f"{who}@client.test", rcpt, f"{who} one", f"body of {who} one")
        bob_new = os.path.join(t.mail_dir, "example.test", "bob", "new")

        def settled():
            q = self.queue()
            return (len(q) == 3 and all(m["recipients"][0]["status"] == "deferred" for m in q.values())
                    and os.path.isdir(bob_new) and len(os.listdir(bob_new)) == 1)
        self.assertTrue(wait_until(settled, 15, 0.1), (self.t.queue_list(), t.logs()[-2000:]))
        t.cli("queue", "hold", self.queue()["held@client.test"]["id"])

        shot = os.path.join(BROWSER_DIR, "artifacts", "console.png")
        if os.path.exists(shot):
            os.remove(shot)
        # Its own process group, so that a hung run is ended with its browser.
        p = subprocess.Popen([NODE, SCRIPT, f"http://{HOST}:{HTTP_PORT}"], cwd=BROWSER_DIR, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, "TERN_CONSOLE_TOKEN": TOKEN})
        try:
            stdout, _ = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            stdout, _ = p.communicate(timeout=10)
            self.fail(f"console.test.mjs did not finish in 150 s:\n{stdout.decode(errors='replace')}")
        out = stdout.decode(errors="replace")
        if p.returncode != 0 and self.console_is_stale():
            out += ("\nNOTE: the binary serves a console that differs from mta/console/ (built before a change "
                    "there): rebuild tern, or run with TERN_CONSOLE_DIR=mta/console to test the source files.")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("PASS: console.test.mjs", out)
        # What the page did, the server did.
        q = self.queue()
        self.assertEqual(set(q), {"held@client.test", "deferred@client.test"})
        self.assertIs(q["held@client.test"]["held"], True)
        self.assertGreaterEqual(q["deferred@client.test"]["recipients"][0]["attempts"], 2)
        self.assertTrue(os.path.isfile(shot), "no screenshot saved")


if __name__ == "__main__":
    unittest.main()
