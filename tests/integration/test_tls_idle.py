#!/usr/bin/env python3
"""TLS connections the listener does not serve: a TLS listener over its
connection limit closes rather than answering in plaintext."""
import base64
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, Upstream, await_no_connections  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("tls_idle")

CERTDIR = tempfile.mkdtemp(prefix="tandem-tls-idle-certs-")
F = CertFactory(CERTDIR)
CA = F.ca("Tandem Test CA")
EC = F.leaf(CA, ["api.example.com"], kind="ec")

# The exchange trims a connection idle this long (GW__TRIM_AFTER_MS), and
# a little more for the wake-up.
TRIM_AFTER_S = 0.25
IDLE_S = TRIM_AFTER_S + 0.35

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello over tls\n",
                     "headers": {"content-type": "text/plain"}}}
API = {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up", "strip_prefix": True}


class Env:
    def __init__(self, listener=None, extra=None):
        self.up = Upstream(name="u0")
        lst = {"tls": {"certificates": [{"cert": EC.cert, "key": EC.key}]}}
        lst.update(listener or {})
        self.gw = Gateway([HELLO, API], {"up": {"targets": [{"address": self.up.address}]}},
                          listener=lst, extra=extra)
        self.port = self.gw.port

    def connect(self):
        ctx = ssl.create_default_context(cafile=CA.cert)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname="api.example.com")

    def https(self):
        env = self

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = env.connect()

        return Conn("127.0.0.1", self.port, timeout=20)

    def rss(self):
        with open(f"/proc/{self.gw.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        code = self.gw.stop()
        bad = []
        for line in self.gw.log().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("event") == "crash" or r.get("level") in ("error", "fatal"):
                    bad.append(r)
        self.gw.close()
        self.up.stop()
        assert code == 0, f"gateway exit code {code}"
        assert not bad, bad


def get_hello(s):
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while not data.endswith(b"hello over tls\n"):
        b = s.recv(4096)
        assert b, data
        data += b
    assert data.startswith(b"HTTP/1.1 200"), data


def sanitized():
    """Whether the binary under test runs under AddressSanitizer, whose
    allocator keeps freed memory aside and pads every allocation: its RSS
    says nothing about one session's buffers."""
    with open(os.environ.get("TANDEM_BIN", "build/gateway/tandem"), "rb") as f:
        return b"__asan_init" in f.read()


# ---- over the connection limit ----------------------------------------------------


@t.case
def tls_listener_over_its_connection_limit_closes_without_a_plaintext_answer():
    """A client of a TLS listener cannot read a plaintext 503: it is closed
    instead (a plaintext listener still answers 503)."""
    with Env(listener={"max_connections": 1}) as e:
        await_no_connections(e.gw)  # the start-up probe has been let go
        held = e.connect()
        get_hello(held)
        raw = socket.create_connection(("127.0.0.1", e.port), timeout=5)
        # the start of a ClientHello, as a TLS client sends first
        raw.sendall(bytes([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]))
        got = b""
        try:
            while True:
                b = raw.recv(4096)
                if not b:
                    break
                got += b
        except ConnectionResetError:
            pass
        raw.close()
        assert got == b"", got[:200]
        # and a TLS client is refused by a close, not left hanging
        try:
            e.connect().close()
            raise AssertionError("a TLS client over the limit was served")
        except (ssl.SSLError, ConnectionError, OSError) as err:
            assert not isinstance(err, socket.timeout), err
        get_hello(held)
        held.close()


t.finish()
