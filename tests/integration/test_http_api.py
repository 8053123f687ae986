"""The admin HTTP API and /metrics against the real `tern serve`: every route,
its JSON shapes and errors, cursor paging, the queue actions as the CLI sees
them, Maildir reads, the bearer token off loopback, and the Prometheus text."""
import http.client
import json
import os
import re
import shutil
import smtplib
import socket
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from ternlib import Tern, wait_port, wait_until

HOST, PORT, HTTP_PORT = "127.0.0.60", 2525, 8025
BASE = f"http://{HOST}:{HTTP_PORT}"
TOKEN = "secret-token-for-tests"
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as (\S+)$")


def send(subject="api test", sender="alice@example.test", rcpts=("bob@example.test",), body=None):
    """One transaction with smtplib; returns the queue ID from the 250."""
    data = body if body is not None else f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode()
    with smtplib.SMTP(HOST, PORT, local_hostname="client.test", timeout=10) as s:
        s.ehlo()
        code, msg = s.mail(sender)
        if code != 250:
            raise AssertionError(f"MAIL: {code} {msg}")
        for r in rcpts:
            code, msg = s.rcpt(r)
            if code != 250:
                raise AssertionError(f"RCPT {r}: {code} {msg}")
        code, msg = s.data(data)
    m = QUEUED.match(msg)
    if code != 250 or not m:
        raise AssertionError(f"DATA: {code} {msg}")
    return m.group(1).decode()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def type(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        return json.loads(self.body)


def request(method, path, body=None, headers=None, timeout=10):
    """One request with urllib; HTTP errors are answers too."""
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers, e.read())


def get(path, **kw):
    return request("GET", path, **kw)


def q(s):
    return urllib.parse.quote(s, safe="@")


def local_non_loopback_ipv4():
    """An IPv4 address of this host outside 127.0.0.0/8, or None. A client
    socket bound to it reaches 127.0.0.60 over lo (the packets never leave the
    host) and is seen by the server as that non-loopback address."""
    try:
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for prev, line in zip(lines, lines[1:]):
        if "/32 host LOCAL" in line:
            ip = prev.strip().split()[-1]
            if not ip.startswith("127."):
                try:
                    with socket.socket() as s:
                        s.bind((ip, 0))
                    return ip
                except OSError:
                    continue
    return None


def metrics(text):
    """Prometheus text -> {'name{labels}': value}; checks every line parses."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)', line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        out[m.group(1)] = float(m.group(2))
    return out


def check_log(t):
    """No sanitizer report in the server's log (the build under test has ASan and UBSan)."""
    log = t.logs()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if marker in log:
            raise AssertionError(f"sanitizer report in tern's log:\n{log[log.index(marker) - 200:][:3000]}")


def start_tern(add_cleanup, **kw):
    """A server with the API on HOST:HTTP_PORT and a token file; add_cleanup
    is addCleanup or addClassCleanup."""
    token_dir = tempfile.mkdtemp(prefix="tern-token-")
    add_cleanup(shutil.rmtree, token_dir, True)
    token_file = os.path.join(token_dir, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    t = Tern(host=HOST, port=PORT, http=f"{HOST}:{HTTP_PORT}", http_token_file=token_file, **kw)
    add_cleanup(shutil.rmtree, t.dir, True)
    add_cleanup(check_log, t)  # after the stop
    add_cleanup(t.stop)
    t.start()
    wait_port(HOST, HTTP_PORT)
    return t


class Base(unittest.TestCase):
    def tern(self, **kw):
        return start_tern(self.addCleanup, **kw)

    def ok(self, r, status=200, type_="application/json"):
        self.assertEqual(r.status, status, r.body[:300])
        self.assertEqual(r.type, type_)
        return r.json() if type_ == "application/json" else r.body

    def err(self, r, status):
        """An error answer: the status, a JSON object with a non-empty "error"."""
        self.assertEqual(r.status, status, r.body[:300])
        self.assertEqual(r.type, "application/json")
        j = r.json()
        self.assertEqual(list(j), ["error"])
        self.assertTrue(j["error"])
        return j["error"]


class Api(Base):
    """A receive-only server (delivery off): what is queued stays put."""

    def setUp(self):
        self.t = self.tern(deliver=False)

    def listed(self):
        return {m["id"]: m for m in self.t.queue_list()}

    def test_health_and_ready(self):
        self.assertEqual(self.ok(get("/healthz")), {"status": "ok"})
        self.assertEqual(self.ok(get("/readyz")), {"status": "ready"})
        r = get("/healthz")
        self.assertEqual(r.headers.get("Cache-Control"), "no-store")
        self.assertEqual(r.headers.get("Server"), "tern")

    def test_queue_listing_and_filters(self):
        self.assertEqual(self.ok(get("/api/v1/queue")), {"messages": [], "next_cursor": None})
        a = send("first", rcpts=["bob@example.test"])
        b = send("second", sender="Dave@Remote.test", rcpts=["bob@example.test", "carol@example.test"])
        c = send("third", rcpts=["carol@example.test"])
        j = self.ok(get("/api/v1/queue"))
        self.assertIsNone(j["next_cursor"])
        self.assertEqual([m["id"] for m in j["messages"]], [a, b, c])  # by ID, that is by arrival
        m = j["messages"][1]
        self.assertEqual(m["sender"], "Dave@Remote.test")
        self.assertEqual(m["client_ip"], "127.0.0.1")
        self.assertEqual(m["helo"], "client.test")
        self.assertIs(m["held"], False)
        self.assertIsInstance(m["received_at"], int)
        self.assertLessEqual(abs(m["received_at"] - time.time()), 60)
        self.assertEqual([(r["address"], r["status"], r["attempts"]) for r in m["recipients"]],
                         [("bob@example.test", "queued", 0), ("carol@example.test", "queued", 0)])
        # The API and `tern queue list --json` are the same objects.
        self.assertEqual(j["messages"], self.t.queue_list())

        def ids(query):
            return [m["id"] for m in self.ok(get("/api/v1/queue?" + query))["messages"]]

        self.assertEqual(ids("sender=dave%40remote"), [b])  # substring, any case
        self.assertEqual(ids("sender=ALICE"), [a, c])
        self.assertEqual(ids("recipient=carol"), [b, c])
        self.assertEqual(ids("recipient=CAROL%40example.test&sender=alice"), [c])
        self.assertEqual(ids("recipient=nobody"), [])
        self.assertEqual(ids("status=queued"), [a, b, c])
        self.assertEqual(ids("status=deferred"), [])
        self.assertEqual(ids("status=held"), [])
        self.t.cli("queue", "hold", b)
        self.assertEqual(ids("status=held"), [b])
        self.assertEqual(ids("status=held&recipient=bob"), [b])
        self.assertEqual(ids("status="), [a, b, c])  # empty means no filter

    def test_cursor_paging(self):
        sent = [send(f"page {i}") for i in range(5)]
        pages, cursor = [], ""
        for _ in range(10):  # bounded: 3 pages expected
            j = self.ok(get("/api/v1/queue?limit=2" + (f"&cursor={q(cursor)}" if cursor else "")))
            pages.append([m["id"] for m in j["messages"]])
            cursor = j["next_cursor"]
            if cursor is None:
                break
            self.assertEqual(cursor, pages[-1][-1])  # the cursor is the last ID of the page
        self.assertEqual(pages, [sent[0:2], sent[2:4], sent[4:5]])
        # Exactly a page full: no next page to announce.
        j = self.ok(get("/api/v1/queue?limit=5"))
        self.assertEqual(([m["id"] for m in j["messages"]], j["next_cursor"]), (sent, None))
        j = self.ok(get("/api/v1/queue?limit=4"))
        self.assertEqual(j["next_cursor"], sent[3])
        self.assertEqual([m["id"] for m in self.ok(get(f"/api/v1/queue?limit=1000&cursor={sent[-1]}"))["messages"]], [])
        # Paging combines with a filter.
        self.t.cli("queue", "hold", sent[1])
        self.t.cli("queue", "hold", sent[3])
        j = self.ok(get("/api/v1/queue?status=held&limit=1"))
        self.assertEqual(([m["id"] for m in j["messages"]], j["next_cursor"]), ([sent[1]], sent[1]))
        j = self.ok(get(f"/api/v1/queue?status=held&limit=1&cursor={sent[1]}"))
        self.assertEqual([m["id"] for m in j["messages"]], [sent[3]])
        j = self.ok(get(f"/api/v1/queue?status=held&limit=1&cursor={sent[3]}"))
        self.assertEqual(j, {"messages": [], "next_cursor": None})

    def test_bad_queue_parameters(self):
        send("x")
        for limit in ("0", "1001", "-1", "abc", "2x", "", "1.5", "%2B3", "99999999999999999999999"):
            with self.subTest(limit=limit):
                r = get(f"/api/v1/queue?limit={limit}")
                if limit == "":
                    self.ok(r)  # no value: the default
                else:
                    self.assertIn("limit", self.err(r, 400))
        self.ok(get("/api/v1/queue?limit=1"))
        self.ok(get("/api/v1/queue?limit=1000"))
        for status in ("bogus", "QUEUED", "delivered%20", "held,queued"):
            with self.subTest(status=status):
                self.assertIn("status", self.err(get(f"/api/v1/queue?status={status}"), 400))
        for status in ("queued", "deferred", "delivered", "failed", "held"):
            self.ok(get(f"/api/v1/queue?status={status}"))

    def test_message_detail_and_raw(self):
        body = b"Subject: detailed\r\nX-Test: one\r\n\r\nline 1\r\n.dot line\r\ncaf\xc3\xa9\r\n"
        qid = send(rcpts=["bob@example.test", "carol@example.test"], body=body)
        m = self.ok(get(f"/api/v1/messages/{qid}"))
        self.assertEqual(m["id"], qid)
        self.assertIs(m["in_queue"], True)
        self.assertEqual(m["sender"], "alice@example.test")
        self.assertEqual(m["client_ip"], "127.0.0.1")
        self.assertEqual(m["attempts"], [])  # delivery is off
        self.assertEqual([r["address"] for r in m["recipients"]], ["bob@example.test", "carol@example.test"])
        cli = json.loads(self.t.cli("queue", "show", qid, "--json").stdout)
        for k in ("id", "received_at", "sender", "client_ip", "helo", "size", "held", "recipients"):
            self.assertEqual(m[k], cli[k], k)
        # Headers: the header section only (our Received: first), ending with its CRLF.
        self.assertTrue(m["headers"].startswith("Received: from "), m["headers"])
        self.assertIn(f" id {qid}", m["headers"])
        self.assertTrue(m["headers"].endswith("Subject: detailed\r\nX-Test: one\r\n"), m["headers"])
        self.assertNotIn("line 1", m["headers"])
        # Raw: the queued octets, as `tern queue show ID --body` prints them.
        raw = self.ok(get(f"/api/v1/messages/{qid}/raw"), type_="message/rfc822")
        self.assertEqual(raw, self.t.message_body(qid))
        self.assertTrue(raw.endswith(body), raw)
        self.assertEqual(len(raw), m["size"])

    def test_hold_release_retry(self):
        a = send("a")
        b = send("b", rcpts=["bob@example.test", "carol@example.test"])
        j = self.ok(request("POST", f"/api/v1/messages/{a}/hold"))
        self.assertEqual(j, {"id": a, "result": "held"})
        self.assertIs(self.listed()[a]["held"], True)
        self.assertIs(self.listed()[b]["held"], False)
        self.assertIn(f"{a}!", self.t.cli("queue", "list").stdout.decode())
        self.assertIs(self.ok(get(f"/api/v1/messages/{a}"))["held"], True)
        self.assertEqual(self.ok(get("/api/v1/stats"))["held"], 1)
        # Holding twice is no error.
        self.ok(request("POST", f"/api/v1/messages/{a}/hold"))
        j = self.ok(request("POST", f"/api/v1/messages/{a}/release"))
        self.assertEqual(j, {"id": a, "result": "released"})
        self.assertIs(self.listed()[a]["held"], False)
        self.assertNotIn(f"{a}!", self.t.cli("queue", "list").stdout.decode())
        self.assertEqual(self.ok(get("/api/v1/stats"))["held"], 0)
        # A JSON body is allowed (and ignored).
        self.ok(request("POST", f"/api/v1/messages/{a}/hold", body=b"{}",
                        headers={"Content-Type": "application/json"}))
        self.assertIs(self.listed()[a]["held"], True)
        # Retry: every pending recipient becomes due now.
        before = time.time()
        j = self.ok(request("POST", f"/api/v1/messages/{b}/retry"))
        self.assertEqual(j, {"id": b, "result": "2 recipients scheduled"})
        for r in self.listed()[b]["recipients"]:
            self.assertLessEqual(r["next_attempt"], before + 2)

    def test_delete(self):
        a = send("to delete")
        b = send("to keep")
        j = self.ok(request("DELETE", f"/api/v1/messages/{a}"))
        self.assertEqual(j, {"id": a, "result": "deleted"})
        self.assertEqual(set(self.listed()), {b})
        self.assertEqual(self.t.cli("queue", "show", a, check=False).returncode, 1)
        self.assertEqual([m["id"] for m in self.ok(get("/api/v1/queue"))["messages"]], [b])
        self.err(get(f"/api/v1/messages/{a}"), 404)
        self.err(get(f"/api/v1/messages/{a}/raw"), 404)
        self.assertIn(a, self.err(request("DELETE", f"/api/v1/messages/{a}"), 404))
        self.assertEqual(self.ok(get("/api/v1/stats"))["messages"], 1)

    def test_stats_receive_only(self):
        self.assertEqual(self.ok(get("/api/v1/stats")),
                         {"messages": 0, "held": 0, "bytes": 0, "oldest_received_at": 0, "recipients": {},
                          "deferred_by_domain": {}})
        a = send("s1", rcpts=["bob@example.test", "carol@example.test"])
        send("s2")
        self.t.cli("queue", "hold", a)
        s = self.ok(get("/api/v1/stats"))
        sizes = sum(m["size"] for m in self.t.queue_list())
        self.assertEqual((s["messages"], s["held"], s["bytes"]), (2, 1, sizes))
        self.assertEqual(s["recipients"], {"queued": 3})
        self.assertEqual(s["deferred_by_domain"], {})
        self.assertLessEqual(abs(s["oldest_received_at"] - time.time()), 60)
        self.assertEqual(s, json.loads(self.t.cli("queue", "stats", "--json").stdout))

    def test_unknown_ids_and_routes(self):
        for method, path in [("GET", "/api/v1/messages/NOSUCHID"), ("GET", "/api/v1/messages/NOSUCHID/raw"),
                             ("POST", "/api/v1/messages/NOSUCHID/retry"), ("POST", "/api/v1/messages/NOSUCHID/hold"),
                             ("POST", "/api/v1/messages/NOSUCHID/release"), ("DELETE", "/api/v1/messages/NOSUCHID"),
                             ("GET", "/api/v1/messages/%2e%2e"), ("GET", "/api/v1/nothing"),
                             ("GET", "/api/v2/queue"), ("GET", "/api/v1"), ("GET", "/nope"),
                             ("GET", "/api/v1/queue/extra")]:
            with self.subTest(method=method, path=path):
                self.err(request(method, path), 404)
        qid = send("x")
        self.assertIn("frobnicate", self.err(request("POST", f"/api/v1/messages/{qid}/frobnicate"), 404))

    def test_body_not_json(self):
        qid = send("x")
        for body in (b"not json", b"{", b"hold=1", b"{'single': 'quotes'}"):
            with self.subTest(body=body):
                self.assertIn("JSON", self.err(request("POST", f"/api/v1/messages/{qid}/hold", body=body), 400))
        self.assertIs(self.listed()[qid]["held"], False)  # nothing done
        self.err(request("DELETE", f"/api/v1/messages/{qid}", body=b"<xml/>"), 400)
        self.assertIn(qid, self.listed())

    def test_wrong_method(self):
        qid = send("x")
        read = "GET, HEAD"
        for method, path, allow in [("POST", "/api/v1/queue", read), ("DELETE", "/api/v1/queue", read),
                                    ("PUT", "/api/v1/stats", read), ("POST", "/metrics", read),
                                    ("PUT", f"/api/v1/messages/{qid}", "GET, HEAD, DELETE"),
                                    ("POST", f"/api/v1/messages/{qid}", "GET, HEAD, DELETE"),
                                    ("GET", f"/api/v1/messages/{qid}/retry", "POST"),
                                    ("DELETE", f"/api/v1/messages/{qid}/raw", read),
                                    ("PATCH", f"/api/v1/messages/{qid}/hold", "POST"),
                                    ("POST", "/api/v1/mailboxes/bob@example.test", read)]:
            with self.subTest(method=method, path=path):
                r = request(method, path)
                self.err(r, 405)
                self.assertEqual(r.headers["Allow"], allow)
        self.assertIn(qid, self.listed())

    def raw_exchange(self, data, timeout=10):
        """Sends bytes, returns (status line, headers+body) the server answered before closing."""
        with socket.create_connection((HOST, HTTP_PORT), timeout=timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
        return out

    def test_body_too_large(self):
        qid = send("x")
        big = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
        self.assertGreater(len(big), 64 * 1024)
        # Announced by Content-Length: refused on the header alone.
        out = self.raw_exchange(f"POST /api/v1/messages/{qid}/hold HTTP/1.1\r\nHost: x\r\n"
                                f"Content-Type: application/json\r\nContent-Length: {len(big)}\r\n\r\n".encode())
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:200])
        self.assertIn(b'{"error":"request too large"}', out)
        # Chunked, with no length up front: refused once past the limit.
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 8192]), big[i:i + 8192])
                           for i in range(0, len(big), 8192)) + b"0\r\n\r\n"
        out = self.raw_exchange(f"POST /api/v1/messages/{qid}/hold HTTP/1.1\r\nHost: x\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n".encode() + chunked)
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:200])
        # With urllib, as a client would send it.
        r = request("POST", f"/api/v1/messages/{qid}/hold", body=big, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413)
        self.assertIs(self.listed()[qid]["held"], False)
        # Just under the limit is fine.
        small = b'{"pad": "' + b"x" * (64 * 1024 - 12) + b'"}'
        self.assertLessEqual(len(small), 64 * 1024)
        self.ok(request("POST", f"/api/v1/messages/{qid}/hold", body=small))
        self.assertIs(self.listed()[qid]["held"], True)
        # The server is still fine.
        self.ok(get("/healthz"))

    def test_keep_alive(self):
        # Several requests on one connection, errors included (as a browser sends them).
        c = http.client.HTTPConnection(HOST, HTTP_PORT, timeout=10)
        self.addCleanup(c.close)
        for method, path, status in [("GET", "/healthz", 200), ("GET", "/nope", 404), ("POST", "/api/v1/queue", 405),
                                     ("POST", "/api/v1/messages/X/hold", 404), ("GET", "/api/v1/stats", 200)]:
            with self.subTest(method=method, path=path):
                c.request(method, path, body=b"" if method == "POST" else None)
                r = c.getresponse()
                self.assertEqual(r.status, status)
                json.loads(r.read())
                self.assertFalse(r.will_close)

    # Server bug (mta/http_server.cpp): HEAD is routed like GET and the answer
    # carries a body (RFC 9110 §9.3.2: a HEAD response has no content), so on a
    # kept-alive connection the next response is read after stray octets
    # ('{"status":"ok"}HTTP/1.1 200 OK…'). Remove the decorator once fixed.
    def test_head_has_no_body(self):
        out = self.raw_exchange(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, sep, rest = out.partition(b"\r\n\r\n")
        self.assertTrue(sep, out)
        self.assertRegex(head, rb"^HTTP/1\.1 (200|405) ")
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), out)

    def test_loopback_needs_no_token(self):
        # From 127.0.0.0/8 the token is not asked for, and a wrong one does not matter.
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}"},
                        {"Authorization": "Basic YWxpY2U6cHc="}):
            with self.subTest(headers=headers):
                self.ok(get("/api/v1/stats", headers=headers))

    def test_token_required_off_loopback(self):
        # The listener is on loopback only; a client socket bound to one of this
        # host's own non-loopback addresses still reaches it over lo and is seen
        # as that address. Without such an address (a container with only lo),
        # tests/unit/http_api_test.cpp covers the same rule on http_api::handle.
        ip = local_non_loopback_ipv4()
        if ip is None:
            self.skipTest("no non-loopback local IPv4 address; see tests/unit/http_api_test.cpp")
        qid = send("guarded")

        def req(method, path, auth=None):
            c = http.client.HTTPConnection(HOST, HTTP_PORT, timeout=10, source_address=(ip, 0))
            try:
                c.request(method, path, headers={"Authorization": auth} if auth is not None else {})
                r = c.getresponse()
                return Response(r.status, r.headers, r.read())
            finally:
                c.close()

        for auth in (None, "", "Bearer", "Bearer ", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
                     TOKEN, f"Basic {TOKEN}", f"Bearer  {TOKEN}"):
            with self.subTest(auth=auth):
                r = req("GET", "/api/v1/stats", auth)
                self.err(r, 401)
                self.assertEqual(r.headers.get("WWW-Authenticate"), "Bearer")
        # Refused before anything is done.
        self.err(req("DELETE", f"/api/v1/messages/{qid}"), 401)
        self.err(req("GET", "/metrics"), 401)
        self.err(req("GET", "/favicon.ico"), 401)
        # The console's own files are not secret: it has to load to ask for the token.
        for path in ("/", "/app.js", "/style.css"):
            self.assertEqual(req("GET", path).status, 200, path)
        self.assertIn(qid, self.listed())
        # The right token opens every route.
        good = f"Bearer {TOKEN}"
        self.assertEqual(self.ok(req("GET", "/healthz", good)), {"status": "ok"})
        self.assertEqual(self.ok(req("GET", "/api/v1/stats", good))["messages"], 1)
        self.assertEqual(self.ok(req("POST", f"/api/v1/messages/{qid}/hold", good)), {"id": qid, "result": "held"})
        self.assertIs(self.listed()[qid]["held"], True)

    def test_console_files(self):
        # The page and its two files, as compiled in from mta/console/ (a
        # difference means the binary predates a change there: rebuild).
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "mta", "console")
        for path, name, type_ in [("/", "index.html", "text/html; charset=utf-8"),
                                  ("/index.html", "index.html", "text/html; charset=utf-8"),
                                  ("/app.js", "app.js", "text/javascript; charset=utf-8"),
                                  ("/style.css", "style.css", "text/css; charset=utf-8")]:
            with self.subTest(path=path):
                r = get(path)
                self.assertEqual((r.status, r.type), (200, type_))
                with open(os.path.join(src, name), "rb") as f:
                    self.assertEqual(r.body, f.read(), f"{path} is not mta/console/{name}: rebuild tern")
        self.assertIn(b'<script type="module" src="/app.js">', get("/").body)
        self.err(get("/favicon.ico"), 404)
        self.err(get("/console_files.cpp"), 404)


class Delivering(Base):
    """One server that delivers: five messages to bob's Maildir, one to
    remote.test routed to a closed loopback port (deferred, retried in 5 m)."""

    @classmethod
    def setUpClass(cls):
        cls.t = start_tern(cls.addClassCleanup, deliver=True, delivery={"transports": {"remote.test": "[127.0.0.1]:9"}})
        cls.before = metrics(get("/metrics").body.decode())
        cls.local = [send(f"local {i}") for i in range(5)]
        cls.remote = send("far away", rcpts=["someone@remote.test"])

        def settled():
            queue = cls.t.queue_list()
            return (len(queue) == 1 and queue[0]["id"] == cls.remote
                    and queue[0]["recipients"][0]["status"] == "deferred"
                    and len(cls.bob_files()) == 5)
        cls.settled = wait_until(settled, 15, 0.1)

    @classmethod
    def bob_files(cls):
        d = os.path.join(cls.t.mail_dir, "example.test", "bob", "new")
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def setUp(self):
        self.assertTrue(self.settled, self.t.queue_list())

    def test_metrics(self):
        r = get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.type, "text/plain; version=0.0.4")
        text = r.body.decode()
        self.assertTrue(text.endswith("\n"))
        after = metrics(text)
        delta = {k: after[k] - self.before.get(k, 0) for k in after}
        self.assertEqual(delta["tern_messages_received_total"], 6)
        self.assertEqual(delta["tern_recipients_delivered_total"], 5)
        self.assertGreaterEqual(delta["tern_recipients_deferred_total"], 1)
        self.assertEqual(after["tern_recipients_bounced_total"], 0)
        self.assertEqual(after["tern_queue_messages"], 1)
        self.assertEqual(after['tern_queue_recipients{status="deferred"}'], 1)
        self.assertEqual(after['tern_queue_recipients{status="queued"}'], 0)
        self.assertEqual(after["tern_queue_bytes"], self.t.queue_list()[0]["size"])
        self.assertGreaterEqual(delta["tern_connections_total"], 6)
        self.assertEqual(after["tern_connections_current"], 0)
        self.assertEqual(after["tern_connections_rejected_total"], 0)
        self.assertGreaterEqual(after["tern_queue_oldest_age_seconds"], 0)
        self.assertGreaterEqual(after["tern_queue_commits_total"], 1)
        # Every metric has HELP and TYPE; counters and gauges have one sample.
        types = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text))
        self.assertEqual(set(types), set(re.findall(r"(?m)^# HELP (\S+) .+$", text)))
        for name in ("tern_messages_received_total", "tern_recipients_delivered_total", "tern_connections_total"):
            self.assertEqual(types[name], "counter")
        for name in ("tern_queue_messages", "tern_connections_current", "tern_queue_recipients"):
            self.assertEqual(types[name], "gauge")
        hists = [n for n, ty in types.items() if ty == "histogram"]
        self.assertEqual(set(hists), {"tern_delivery_seconds", "tern_queue_commit_seconds",
                                      "tern_queue_commit_batch_size"})
        for h in hists:
            with self.subTest(histogram=h):
                buckets = re.findall(rf'(?m)^{h}_bucket\{{le="([^"]+)"\}} (\S+)$', text)
                self.assertGreaterEqual(len(buckets), 2)
                self.assertEqual(buckets[-1][0], "+Inf")
                bounds = [float(b) for b, _ in buckets[:-1]]
                self.assertEqual(bounds, sorted(bounds))
                counts = [float(c) for _, c in buckets]
                self.assertEqual(counts, sorted(counts), "buckets are cumulative")
                self.assertEqual(after[f"{h}_count"], counts[-1])
                self.assertIn(f"{h}_sum", after)
                self.assertGreaterEqual(after[f"{h}_sum"], 0)
        self.assertEqual(delta["tern_delivery_seconds_count"], 5)

    def test_stats_with_deferred(self):
        s = self.ok(get("/api/v1/stats"))
        self.assertEqual((s["messages"], s["held"]), (1, 0))
        self.assertEqual(s["recipients"], {"deferred": 1})
        self.assertEqual(s["deferred_by_domain"], {"remote.test": 1})
        self.assertEqual(s, json.loads(self.t.cli("queue", "stats", "--json").stdout))
        self.assertEqual([m["id"] for m in self.ok(get("/api/v1/queue?status=deferred"))["messages"]], [self.remote])
        self.assertEqual(self.ok(get("/api/v1/queue?status=queued"))["messages"], [])

    def test_deferred_message_attempts(self):
        m = self.ok(get(f"/api/v1/messages/{self.remote}"))
        self.assertIs(m["in_queue"], True)
        r = m["recipients"][0]
        self.assertEqual((r["address"], r["status"]), ("someone@remote.test", "deferred"))
        self.assertGreaterEqual(r["attempts"], 1)
        self.assertRegex(r["last_reply"], r"^451 4\.4\.1 connect to 127\.0\.0\.1\[127\.0\.0\.1\]:9: ")
        self.assertGreater(r["next_attempt"], time.time() + 60)  # retry_initial is 5 minutes
        self.assertGreaterEqual(len(m["attempts"]), 1)
        a = m["attempts"][0]
        self.assertEqual((a["address"], a["status"], a["relay"]),
                         ("someone@remote.test", "deferred", "127.0.0.1[127.0.0.1]:9"))
        self.assertEqual(a["reply"], r["last_reply"])
        self.assertLessEqual(abs(a["at"] - time.time()), 60)

    def test_delivered_message_is_history(self):
        m = self.ok(get(f"/api/v1/messages/{self.local[0]}"))
        self.assertEqual(set(m), {"id", "in_queue", "attempts"})
        self.assertEqual((m["id"], m["in_queue"]), (self.local[0], False))
        self.assertEqual([(a["address"], a["status"], a["relay"]) for a in m["attempts"]],
                         [("bob@example.test", "delivered", "local")])
        self.err(get(f"/api/v1/messages/{self.local[0]}/raw"), 404)
        self.err(request("POST", f"/api/v1/messages/{self.local[0]}/hold"), 404)

    def test_mailbox_listing_and_files(self):
        files = self.bob_files()
        # Make the order unambiguous: whole seconds apart, in the order sent.
        now = int(time.time())
        by_subject = {}
        for f in files:
            with open(f, "rb") as fh:
                subject = re.search(rb"(?m)^Subject: (.*)\r$", fh.read()).group(1).decode()
            by_subject[subject] = f
        self.assertEqual(set(by_subject), {f"local {i}" for i in range(5)})
        for i in range(5):
            t = now - 100 + 10 * i
            os.utime(by_subject[f"local {i}"], (t, t))
        for address in ("bob@example.test", "bob%40example.test", "Bob@Example.TEST", "bob%2Bnews@example.test"):
            with self.subTest(address=address):
                j = self.ok(get(f"/api/v1/mailboxes/{address}"))
                self.assertEqual(j["address"], "bob@example.test")
                msgs = j["messages"]
                self.assertEqual([m["subject"] for m in msgs], [f"local {i}" for i in (4, 3, 2, 1, 0)])  # newest first
                for m in msgs:
                    path = by_subject[m["subject"]]
                    self.assertEqual(m["file"], os.path.basename(path))
                    self.assertEqual(m["folder"], "new")
                    self.assertEqual(m["size"], os.path.getsize(path))
                    self.assertEqual(m["mtime"], int(os.path.getmtime(path)))
        for m in self.ok(get("/api/v1/mailboxes/bob@example.test"))["messages"]:
            r = get(f"/api/v1/mailboxes/bob@example.test/{q(m['file'])}")
            with open(by_subject[m["subject"]], "rb") as f:
                self.assertEqual(self.ok(r, type_="message/rfc822"), f.read())
        # A message a reader has seen lives in cur/ with flags after ':'.
        src = by_subject["local 0"]
        seen = os.path.join(os.path.dirname(os.path.dirname(src)), "cur", os.path.basename(src) + ":2,S")
        os.makedirs(os.path.dirname(seen), exist_ok=True)
        os.rename(src, seen)
        self.addCleanup(os.rename, seen, src)
        msgs = self.ok(get("/api/v1/mailboxes/bob@example.test"))["messages"]
        self.assertEqual([(m["file"], m["folder"]) for m in msgs if m["subject"] == "local 0"],
                         [(os.path.basename(seen), "cur")])
        with open(seen, "rb") as f:
            self.assertEqual(get(f"/api/v1/mailboxes/bob@example.test/{q(os.path.basename(seen))}").body, f.read())

    def test_mailbox_errors(self):
        name = os.path.basename(self.bob_files()[0])
        self.err(get("/api/v1/mailboxes/someone@remote.test"), 404)  # not a local domain
        self.err(get("/api/v1/mailboxes/carol@example.test"), 404)  # no mail yet, no mailbox
        self.err(get("/api/v1/mailboxes/not-an-address"), 404)
        self.err(get("/api/v1/mailboxes/carol@example.test/" + q(name)), 404)
        self.err(get("/api/v1/mailboxes/bob@example.test/NOSUCHFILE"), 404)
        for bad in (".hidden", "..", "%2e%2e", "..%2F..%2Fnew", "x%2Fy"):
            with self.subTest(file=bad):
                self.err(get(f"/api/v1/mailboxes/bob@example.test/{bad}"), 400)
        self.err(get(f"/api/v1/mailboxes/bob@example.test/new/{q(name)}"), 404)



class MailboxEdges(Base):
    """Mailbox listings of unusual files, with a fresh server each."""

    def setUp(self):
        self.t = self.tern(deliver=True)

    def box(self, user):
        return os.path.join(self.t.mail_dir, "example.test", user)

    # Server bug (mta/http_api.cpp subject_of): "Subject: " with only spaces
    # after the colon makes line.substr(npos) throw std::out_of_range; the HTTP
    # session ends without an answer ("session ended by an exception" in the
    # log) and the whole mailbox cannot be listed. Remove the decorator once fixed.
    def test_mailbox_blank_subject(self):
        # A message whose Subject: header is there but blank ("Subject: " with a
        # trailing space, as some clients send) is listed with an empty subject.
        qid = send(rcpts=["carol@example.test"], body=b"Subject: \r\nX: y\r\n\r\nno subject\r\n")
        self.assertTrue(wait_until(lambda: qid not in {m["id"] for m in self.t.queue_list()}, 10, 0.1))
        try:
            r = get("/api/v1/mailboxes/carol@example.test")
        finally:
            self.ok(get("/healthz"))  # whatever happened, the server still answers
        self.assertEqual([m["subject"] for m in self.ok(r)["messages"]], [""])

    def make_box(self, user):
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.box(user), sub), exist_ok=True)

    def put(self, user, name, data, mtime_ns):
        path = os.path.join(self.box(user), "new", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        return path

    def test_mailbox_subjects(self):
        self.make_box("bob")
        t0 = (int(time.time()) - 100) * 10**9
        self.put("bob", "1.M1P1Q1.mx.example.test,S=1", b"From: a@b\r\nSUBJECT:   Loud\r\n\r\nx\r\n", t0)
        self.put("bob", "2.M1P1Q2.mx.example.test,S=1", b"From: a@b\r\n\r\nSubject: in the body\r\n", t0 + 10**10)
        self.put("bob", "3.M1P1Q3.mx.example.test,S=1", b"Subject: caf\xc3\xa9 \"q\"\r\n\r\nx\r\n", t0 + 2 * 10**10)
        msgs = self.ok(get("/api/v1/mailboxes/bob@example.test"))["messages"]
        self.assertEqual([(m["file"][0], m["subject"]) for m in msgs],
                         [("3", 'caf\u00e9 "q"'), ("2", ""), ("1", "Loud")])

    # Server bug (mta/http_api.cpp, the mailbox listing): mtimes are cut to whole
    # seconds and ties broken by file name, descending; Maildir names carry the
    # microseconds without leading zeros, so of two deliveries in one second
    # "…M95000…" (older) sorts before "…M120000…" (newer). Remove the decorator once fixed.
    def test_mailbox_newest_first_within_a_second(self):
        self.make_box("bob")
        second = (int(time.time()) - 100) * 10**9
        self.put("bob", "1700000000.M95000P1Q1.mx.example.test,S=1", b"Subject: older\r\n\r\nx\r\n",
                 second + 95_000_000)
        self.put("bob", "1700000000.M120000P1Q2.mx.example.test,S=1", b"Subject: newer\r\n\r\nx\r\n",
                 second + 120_000_000)
        msgs = self.ok(get("/api/v1/mailboxes/bob@example.test"))["messages"]
        self.assertEqual([m["subject"] for m in msgs], ["newer", "older"])

if __name__ == "__main__":
    unittest.main()
