"""Certificate reload on SIGHUP: new TLS sessions get the new certificate while
a session already in TLS keeps working (no connection is dropped)."""
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

from ternlib import Tern

HOST, PORT = "127.0.0.29", 2525


def make_cert(cert, key, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={cn}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)


def served_cn(timeout=5):
    """The CN of the certificate a fresh STARTTLS session gets."""
    with socket.create_connection((HOST, PORT), timeout=timeout) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO reload.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(), capture_output=True, check=True)
    return out.stdout.decode().strip().split("CN", 1)[1].lstrip(" =")


class Reload(unittest.TestCase):
    def test_sighup_swaps_the_certificate_without_dropping_sessions(self):
        t = Tern(host=HOST, port=PORT, deliver=False)
        cert, key = os.path.join(t.dir, "srv.crt"), os.path.join(t.dir, "srv.key")
        make_cert(cert, key, "first.example.test")
        with open(t.config) as f:
            cfg = f.read()
        with open(t.config, "w") as f:
            f.write(cfg.replace("[smtp]", f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n[smtp]', 1))
        t.start()
        self.addCleanup(t.stop)
        self.assertEqual(served_cn(), "first.example.test")

        # A session that is already in TLS when the certificate changes.
        s = socket.create_connection((HOST, PORT), timeout=5)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STARTTLS\r\n")
        self.assertTrue(f.readline().startswith(b"220"))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(s)
        tf = tls.makefile("rb")

        make_cert(cert, key, "second.example.test")
        t.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "TLS certificate reloaded" not in t.logs() and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("TLS certificate reloaded", t.logs())
        self.assertEqual(served_cn(), "second.example.test")

        tls.sendall(b"NOOP\r\n")
        self.assertTrue(tf.readline().startswith(b"250 2.0.0"))  # still served
        tls.close()

        # A broken replacement is refused; the server keeps the last good one.
        with open(cert, "w") as bad:
            bad.write("not a certificate\n")
        t.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "not reloaded" not in t.logs() and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("TLS certificate not reloaded", t.logs())
        self.assertEqual(served_cn(), "second.example.test")


if __name__ == "__main__":
    unittest.main()
