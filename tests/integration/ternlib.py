"""Helpers for integration tests: start the real `tern` binary on a loopback
address with its own data directory, talk to it, and stop it by PID.

Each test module picks its own 127.0.0.x address so that modules can run in
parallel (ctest -j) without port clashes.
"""
import errno
import grp
import json
import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import struct
import tempfile
import threading
import time
import uuid

TERN = os.environ.get("TERN_BIN", os.path.join(os.path.dirname(__file__), "../../build/mta/tern"))

DEFAULT_USERS = ["alice@example.test", "bob@example.test", "carol@example.test"]


def toml_value(v):
    """A Python value as TOML: dicts become inline tables."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port}")


class Tern:
    """One `tern serve` process with a private data_dir and config file."""

    def __init__(self, host="127.0.0.1", port=2525, users=None, limits=None, extra="", relay_networks=None,
                 submission=(), submissions=(), http="", http_token_file="", http_loopback_needs_token=False,
                 domains=None, aliases=None, deliver=True, delivery=None, catch_all=None, run_as=None,
                 run_group="nogroup", hostname="mx.example.test", allow_any_sender=None):
        self.host = host
        # Every listener, so that start() returns only once all of them take
        # connections (they are bound one after another).
        self.listeners = [(host, port)]
        for ep in [*submission, *submissions, *([http] if http else [])]:
            h, p = ep.rsplit(":", 1)
            self.listeners.append((h.strip("[]"), int(p)))
        # run_as: start the server as this unprivileged user (root ignores file
        # permissions, so tests of unwritable directories need one). The CLI stays root.
        self.run_as, self.run_group = run_as, run_group
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="tern-test-")
        self.data_dir = os.path.join(self.dir, "var")
        self.users_file = os.path.join(self.dir, "users")
        with open(self.users_file, "w") as f:
            f.write("\n".join(users if users is not None else DEFAULT_USERS) + "\n")
        lim = {"max_message_size": 1048576, "max_recipients": 100, "max_connections": 2000,
               "max_connections_per_ip": 1000, "command_timeout": "5m", "data_timeout": "10m"}
        lim.update(limits or {})
        lim_toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in lim.items())
        nets = relay_networks if relay_networks is not None else ["127.0.0.0/8"]
        doms = domains or ["example.test"]
        al = aliases if aliases is not None else {"postmaster@example.test": ["alice@example.test"]}
        al_toml = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in al.items())
        # Tests of receipt alone turn delivery off so that what they queue stays put.
        # Never the machine's resolver: tests only talk to loopback. A DNS
        # server nobody runs answers "connection refused" at once.
        dl = {"enabled": deliver, "dns_servers": ["127.0.0.1:1"]}
        dl.update(delivery or {})
        dl_toml = "\n".join(f"{k} = {toml_value(v)}" for k, v in dl.items())
        # [submission] allow_any_sender: written only when a test sets it.
        sub_toml = "" if allow_any_sender is None else f"allow_any_sender = {json.dumps(bool(allow_any_sender))}"
        ca_toml = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (catch_all or {}).items())
        self.mail_dir = os.path.join(self.dir, "mail")
        self.config = os.path.join(self.dir, "tern.toml")
        with open(self.config, "w") as f:
            f.write(f"""hostname = {json.dumps(hostname)}
data_dir = {json.dumps(self.data_dir)}
threads = 2
{extra}
[smtp]
listen = ["{host}:{port}"]
# Off unless a test asks: the default 127.0.0.1:2587 would clash between
# test modules running in parallel.
[submission]
listen = {json.dumps(list(submission))}
{sub_toml}
[submissions]
listen = {json.dumps(list(submissions))}
# The admin API is off unless a test asks for it ("127.0.0.x:port").
[http]
listen = {json.dumps(http)}
token_file = {json.dumps(http_token_file)}
loopback_needs_token = {json.dumps(bool(http_loopback_needs_token))}
[limits]
{lim_toml}
[local]
domains = {json.dumps(doms)}
mailbox_root = {json.dumps(os.path.join(self.dir, "mail"))}
users_file = {json.dumps(self.users_file)}
[local.aliases]
{al_toml}
[local.catch_all]
{ca_toml}
[delivery]
{dl_toml}
[relay]
networks = {json.dumps(nets)}
""")
        self.proc = None
        self.log_path = os.path.join(self.dir, "tern.log")

    def start(self):
        self.log = open(self.log_path, "ab")
        cmd = [TERN, "serve", "--config", self.config]
        if self.run_as:
            self._hand_over()
            # setpriv execs tern, so self.proc.pid is the server's own PID.
            cmd = ["setpriv", f"--reuid={self.run_as}", f"--regid={self.run_group}", "--clear-groups", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        for host, port in self.listeners:
            wait_port(host, port)
        return self

    def _hand_over(self):
        """Gives the temp tree (config, users file, data dir, mailbox root) to run_as."""
        uid, gid = pwd.getpwnam(self.run_as).pw_uid, grp.getgrnam(self.run_group).gr_gid
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.mail_dir, exist_ok=True)
        for root, dirs, files in os.walk(self.dir):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(name, uid, gid, follow_symlinks=False)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        if self.proc:
            self.log.close()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def cli(self, *args, check=True, input=None):
        """Runs `tern ARGS --config CFG`; input (bytes) is fed to its stdin when given."""
        r = subprocess.run([TERN, *args, "--config", self.config], capture_output=True, input=input)
        if check and r.returncode != 0:
            raise RuntimeError(f"tern {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r

    def queue_list(self):
        return json.loads(self.cli("queue", "list", "--json").stdout)

    def message_body(self, qid):
        return self.cli("queue", "show", qid, "--body").stdout

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class RawClient:
    """A byte-exact SMTP client for what smtplib will not send (bare LF, pipelining)."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        """Returns (code, [lines]) for one possibly multi-line reply, or (None, []) at EOF."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return (None, lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return (int(line[:3]), lines)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.read_reply()

    def closed(self, timeout=5):
        """True if the server closed the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


QUEUED_AS = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")


def unique_body(token, seq=0, pad=0, domain="crash.test"):
    """A message that names itself: Message-ID, X-Token and first line are the token; pad octets of filler."""
    return (f"Message-ID: <{token}@{domain}>\r\nX-Token: {token}\r\nSubject: t{seq}\r\n\r\n"
            f"{token}\r\n" + ("y" * 70 + "\r\n") * (pad // 72) + "z" * (seq * 37 % 900) + "\r\n").encode()


class AckingSender(threading.Thread):
    """Sends unique messages to a server that may be killed at any moment, until `stop` is set,
    reconnecting after every broken connection. Records what the server owes:
    acked: token -> (qid, rcpt, body) for each 250; cut: token -> rcpt where DATA was sent and the
    connection died before the reply (stored or not: both are allowed)."""

    def __init__(self, host, port, rcpts, stop, n=0, pad=lambda seq: 0, sender="alice@example.test"):
        super().__init__(daemon=True)
        self.host, self.port, self.rcpts, self.stop, self.n = host, port, rcpts, stop, n
        self.pad, self.sender = pad, sender
        self.acked, self.cut = {}, {}

    def run(self):
        seq = 0
        while not self.stop.is_set():
            pending = None
            try:
                with smtplib.SMTP(self.host, self.port, local_hostname="crash.test", timeout=5) as s:
                    s.ehlo()
                    while not self.stop.is_set():
                        seq += 1
                        token = uuid.uuid4().hex
                        rcpt = self.rcpts[(seq + self.n) % len(self.rcpts)]
                        body = unique_body(token, seq, self.pad(seq))
                        if s.mail(self.sender)[0] != 250 or s.rcpt(rcpt)[0] != 250:
                            break
                        pending = (token, rcpt)
                        code, msg = s.data(body)
                        pending = None
                        m = QUEUED_AS.match(msg.decode(errors="replace"))
                        if code == 250 and m:
                            self.acked[token] = (m.group(1), rcpt, body)
            except (OSError, smtplib.SMTPException):
                # Killed mid-transaction: nothing acknowledged, nothing owed.
                if pending:
                    self.cut[pending[0]] = pending[1]
                time.sleep(0.02)


def wait_until(pred, timeout, step=0.05):
    """Polls pred() until it returns something truthy or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def dns_query(server, port, name, qtype=15, timeout=0.5):
    """One UDP DNS query (qtype 15 = MX, 1 = A); returns (rcode, answer count) or None without an answer."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    packet = struct.pack(">HHHHHH", 0x7E57, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, port))
            reply = s.recv(4096)
        except OSError:
            return None
    if len(reply) < 12 or reply[:2] != packet[:2]:
        return None
    return reply[3] & 0x0F, struct.unpack(">H", reply[6:8])[0]


def split_received(rest):
    """(the first, folded, Received: header of rest, what follows), or None if rest does not start with one."""
    if not rest.startswith(b"Received: "):
        return None
    end = 0
    while True:
        end = rest.index(b"\r\n", end) + 2
        if rest[end:end + 1] not in (b" ", b"\t"):
            return rest[:end], rest[end:]


class Dnsmasq:
    """dnsmasq in the foreground as a tiny authoritative server for *.test on
    127.0.0.1:port (DESIGN "Reference peers"); records are dnsmasq options such
    as "--mx-host=remote.test,mx.remote.test,10". Stopped by PID."""

    def __init__(self, port, records, host="127.0.0.1"):
        self.host, self.port, self.records = host, port, list(records)
        self.proc = None

    def start(self, timeout=10.0):
        cmd = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", f"--port={self.port}",
               f"--listen-address={self.host}", "--bind-interfaces", "--no-resolv", "--no-hosts",
               "--local=/test/", "--pid-file=", *self.records]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while dns_query(self.host, self.port, "ready.test") is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dnsmasq does not answer on {self.host}:{self.port}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc:
            self.proc.stderr.close()
        self.proc = None


class SmtpSink:
    """Postfix's smtp-sink, the counting sink (DESIGN "Testing with real parts"). Stopped by PID."""

    def __init__(self, host, port, backlog=100):
        self.host, self.port, self.backlog = host, port, backlog
        self.proc = None

    def start(self):
        # -u: smtp-sink refuses to run as root without a user to switch to.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(["/usr/sbin/smtp-sink", *user, "-c", f"{self.host}:{self.port}",
                                      str(self.backlog)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc = None


DROP = object()  # as a reply: close the connection instead of answering


class ScriptedSession:
    """What one client connection sent: raw bytes, command lines, message data as on the wire."""

    def __init__(self):
        self.raw = b""
        self.commands = []
        self.data = []  # one entry per DATA, dot-stuffed, without the final ".\r\n"
        self.closed = False  # set once the connection is over
        self.peer = None  # the client's address


class ThreadedServer:
    """A TCP listener on host:port with an accept thread and one thread per
    connection, each running handle(conn, peer_address); stop() ends them all."""

    backlog = 16

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.lock, self.stopping, self.threads, self.listener = threading.Lock(), threading.Event(), [], None

    def start(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.host, self.port))
        self.listener.listen(self.backlog)
        self.listener.settimeout(0.1)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in list(self.threads):
            t.join(timeout=5)
        if self.listener:
            self.listener.close()
            self.listener = None

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            t = threading.Thread(target=self.handle, args=(conn, peer[0]), daemon=True)
            t.start()
            self.threads.append(t)

    def handle(self, conn, peer):
        raise NotImplementedError


class ScriptedSMTP(ThreadedServer):
    """A scripted SMTP server in threads. `replies` maps "greeting", a verb
    ("EHLO", "MAIL", "RCPT", "DATA", …) or "DOT" (end of data) to a reply
    string, to DROP, or to a function of the command line returning either.
    Like Postfix, a MAIL inside an open transaction gets 503 (RFC 5321 §4.1.4)
    and DATA without an accepted RCPT gets 554. drop_data_after=N closes the
    connection once N octets of message data came in, without a reply;
    idle_close=S sends 421 and closes after S seconds of silence following a
    reply to the end of data. Every session is recorded in self.sessions."""

    DEFAULT = {"greeting": "220 scripted.test ESMTP", "EHLO": "250-scripted.test\r\n250-8BITMIME\r\n250 SIZE 10000000",
               "HELO": "250 scripted.test", "MAIL": "250 2.1.0 Ok", "RCPT": "250 2.1.5 Ok",
               "DATA": "354 End data with <CR><LF>.<CR><LF>", "DOT": "250 2.0.0 Ok: queued as SCRIPTED",
               "RSET": "250 2.0.0 Ok", "NOOP": "250 2.0.0 Ok", "QUIT": "221 2.0.0 Bye"}

    def __init__(self, host, port, replies=None, drop_data_after=None, idle_close=None):
        super().__init__(host, port)
        self.replies = dict(self.DEFAULT, **(replies or {}))
        self.drop_data_after, self.idle_close = drop_data_after, idle_close
        self.sessions = []

    def commands(self):
        """Every command line received, over all sessions."""
        with self.lock:
            return [c for s in self.sessions for c in s.commands]

    def messages(self):
        """Every message received (as on the wire), over all sessions."""
        with self.lock:
            return [d for s in self.sessions for d in s.data]

    def handle(self, conn, peer):
        sess = ScriptedSession()
        sess.peer = peer
        with self.lock:
            self.sessions.append(sess)
        self._serve(conn, sess)

    def _reply(self, key, line):
        r = self.replies.get(key, "502 5.5.2 Error: command not recognized")
        return r(line) if callable(r) else r

    def _serve(self, conn, sess):
        buf, in_data, in_txn, accepted, idle_since = b"", False, False, 0, None
        deadline = time.monotonic() + 30  # a session never outlives this
        conn.settimeout(0.1)

        def say(reply):
            if reply is DROP:
                return False
            conn.sendall(reply.encode() + b"\r\n")
            return True

        try:
            if not say(self._reply("greeting", "")):
                return
            while not self.stopping.is_set() and time.monotonic() < deadline:
                try:
                    chunk = conn.recv(65536)
                except (socket.timeout, TimeoutError):
                    if idle_since and self.idle_close is not None and time.monotonic() - idle_since > self.idle_close:
                        say("421 4.4.2 scripted.test Error: timeout exceeded")
                        return
                    continue
                if not chunk:
                    return
                idle_since = None
                with self.lock:
                    sess.raw += chunk
                buf += chunk
                while True:
                    if in_data:
                        if self.drop_data_after is not None and len(buf) >= self.drop_data_after:
                            return
                        end = (b"\r\n" + buf).find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        with self.lock:
                            sess.data.append(buf[:end])
                        buf, in_data, in_txn = buf[end + 3:], False, False
                        if not say(self._reply("DOT", "")):
                            return
                        idle_since = time.monotonic()
                        continue
                    if b"\r\n" not in buf:
                        break
                    line, buf = buf.split(b"\r\n", 1)
                    text = line.decode(errors="replace")
                    with self.lock:
                        sess.commands.append(text)
                    verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
                    if verb == "MAIL" and in_txn:
                        reply = "503 5.5.1 Error: nested MAIL command"
                    elif verb == "RCPT" and not in_txn:
                        reply = "503 5.5.1 Error: need MAIL command"
                    elif verb == "DATA" and accepted == 0:
                        reply = ("554 5.5.1 Error: no valid recipients" if in_txn
                                 else "503 5.5.1 Error: need RCPT command")
                    else:
                        reply = self._reply(verb, text)
                    ok = reply is not DROP and reply.startswith("2")
                    if verb == "MAIL" and ok:
                        in_txn, accepted = True, 0
                    elif verb == "RCPT" and ok:
                        accepted += 1
                    elif verb in ("RSET", "EHLO", "HELO"):
                        in_txn, accepted = False, 0
                    if not say(reply):
                        return
                    if verb == "DATA" and reply.startswith("354"):
                        in_data = True
                    if verb == "QUIT":
                        return
        except OSError:
            pass
        finally:
            conn.close()
            sess.closed = True


class Tmpfs:
    """A small tmpfs mounted at path (made if missing), for disk-full tests.
    unmount() is safe to call twice and falls back to a lazy unmount, so a
    cleanup never leaves a mount behind; call it after stopping what uses it."""

    def __init__(self, path, size):
        self.path, self.size, self.mounted = path, size, False

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", self.path],
                       check=True, capture_output=True)
        self.mounted = True
        return self

    def unmount(self):
        if not self.mounted:
            return
        if subprocess.run(["umount", self.path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", self.path], capture_output=True)
        self.mounted = False

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, name="filler", leave=0, chunk=1 << 20):
        """Writes path/name until the file system is full, then gives `leave` bytes back; returns its path."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            block, size = b"\0" * chunk, 0
            for _ in range(4 * (self.free() // 4096 + 2)):  # bounded: each turn writes at least a page
                try:
                    n = os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    if len(block) <= 4096:
                        break
                    block = block[:len(block) // 2]
                    continue
                size += n
            if leave:
                os.ftruncate(fd, max(0, size - leave))
            os.fsync(fd)
        finally:
            os.close(fd)
        return path


class SilentUDP:
    """A DNS server that stopped answering: a UDP socket that reads every query
    and never replies (no ICMP either, unlike a closed port). Counts queries."""

    def __init__(self, host, port):
        self.host, self.port, self.queries = host, port, 0
        self.sock, self.thread, self.stopping = None, None, threading.Event()

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        while not self.stopping.is_set():
            try:
                self.sock.recvfrom(4096)
                self.queries += 1
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        if self.sock:
            self.sock.close()
            self.sock = None


class DripSMTP(ThreadedServer):
    """A remote SMTP server that answers one byte per second: each connection
    gets `text` (a greeting that never ends) at `rate` bytes a second for
    `seconds`, then is closed. `open` counts connections being dripped on."""

    backlog = 64

    def __init__(self, host, port, seconds, rate=1.0, text=b"220-drip.test slow " + b"." * 4000):
        super().__init__(host, port)
        self.seconds, self.rate, self.text = seconds, rate, text
        self.connections, self.open, self.sent = 0, 0, 0

    def handle(self, conn, peer):
        with self.lock:
            self.connections += 1
            self.open += 1
        try:
            end = time.monotonic() + self.seconds
            for b in self.text:
                if self.stopping.is_set() or time.monotonic() >= end:
                    break
                conn.sendall(bytes([b]))
                with self.lock:
                    self.sent += 1
                self.stopping.wait(1.0 / self.rate)
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.open -= 1
