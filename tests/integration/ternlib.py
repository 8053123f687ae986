"""Helpers for integration tests: start the real `tern` binary on a loopback
address with its own data directory, talk to it, and stop it by PID.

Each test module picks its own 127.0.0.x address so that modules can run in
parallel (ctest -j) without port clashes.
"""
import grp
import json
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time

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
                 domains=None, aliases=None, deliver=True, delivery=None, catch_all=None, run_as=None,
                 run_group="nogroup"):
        self.host = host
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
        ca_toml = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (catch_all or {}).items())
        self.mail_dir = os.path.join(self.dir, "mail")
        self.config = os.path.join(self.dir, "tern.toml")
        with open(self.config, "w") as f:
            f.write(f"""hostname = "mx.example.test"
data_dir = {json.dumps(self.data_dir)}
threads = 2
{extra}
[smtp]
listen = ["{host}:{port}"]
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
        wait_port(self.host, self.port)
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

    def cli(self, *args, check=True):
        r = subprocess.run([TERN, *args, "--config", self.config], capture_output=True)
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
