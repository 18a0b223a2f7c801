#!/usr/bin/env python3
"""TLS on a listener end to end: the real tandem binary with certificates
made at test time (tests/lib/tlscerts.py), real clients (curl, openssl
s_client, Python's ssl)."""
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, Upstream  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("tls")

CERTDIR = tempfile.mkdtemp(prefix="tandem-tls-certs-")
F = CertFactory(CERTDIR)
CA = F.ca("Tandem Test CA")
CA2 = F.ca("Other Test CA")
EC = F.leaf(CA, ["api.example.com", "*.example.com"], kind="ec")
RSA = F.leaf(CA, ["api.example.com", "*.example.com"], kind="rsa")
DEFAULT = F.leaf(CA, ["default.example.com"], kind="ec")
OTHER = F.leaf(CA, ["other.test"], kind="ec")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello over tls\n",
                     "headers": {"content-type": "text/plain"}}}


def api_route():
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up"}


def cert(c, names=None):
    d = {"cert": c.cert, "key": c.key}
    if names is not None:
        d["names"] = names
    return d


class Env:
    """A gateway with a TLS listener (and an upstream), for one test."""

    def __init__(self, certs=None, tls=None, listener=None, routes=None):
        self.up = Upstream(name="u0")
        tcfg = {"certificates": certs or [cert(DEFAULT), cert(EC), cert(RSA), cert(OTHER)]}
        tcfg.update(tls or {})
        lst = {"tls": tcfg}
        lst.update(listener or {})
        self.gw = Gateway(routes or [HELLO, api_route()],
                          {"up": {"targets": [{"address": self.up.address}]}}, listener=lst)
        self.port = self.gw.port

    def context(self, **kw):
        ctx = ssl.create_default_context(cafile=CA.cert)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def connect(self, name="api.example.com", ctx=None, session=None):
        ctx = ctx or self.context()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname=name, session=session)

    def https(self, name="api.example.com", ctx=None):
        """An http.client connection over TLS to the listener, naming `name`."""
        env, context = self, ctx or self.context()

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = env.connect(name, context)

        return Conn("127.0.0.1", self.port, timeout=10)

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=10)
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        code = self.gw.stop()
        self.gw.close()
        self.up.stop()
        assert code == 0, f"gateway exit code {code}"


def served_fingerprint(port, name, extra=()):
    """The SHA-256 of the certificate the server presents to `name`
    (openssl s_client), or None when the handshake fails."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", name, *extra],
                       input="", capture_output=True, text=True, timeout=20)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    if not m:
        return None
    x = subprocess.run(["openssl", "x509", "-outform", "DER"], input=m.group(0).encode(),
                       capture_output=True, check=True).stdout
    import hashlib
    return hashlib.sha256(x).hexdigest()


def s_client(port, *args, name="api.example.com"):
    """openssl s_client's exit status and output, nothing sent."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", name, *args],
                       input="", capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


# ---- basics -------------------------------------------------------------------------


@t.case
def curl_with_the_ca_gets_an_answer_over_tls():
    with Env() as e:
        r = subprocess.run(["curl", "-sS", "--cacert", CA.cert, "--resolve",
                            f"api.example.com:{e.port}:127.0.0.1",
                            f"https://api.example.com:{e.port}/hello"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello over tls\n", r.stdout


@t.case
def listener_with_a_bad_certificate_does_not_start():
    bad = os.path.join(CERTDIR, "not-a-cert.pem")
    with open(bad, "w") as f:
        f.write("nothing here\n")
    try:
        Env(certs=[{"cert": bad, "key": EC.key}])
    except RuntimeError as err:
        assert "not-a-cert.pem" in str(err) and "does not parse" in str(err), str(err)
    else:
        raise AssertionError("the gateway started with a certificate that does not parse")


if __name__ == "__main__":
    t.finish()
