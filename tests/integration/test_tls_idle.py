#!/usr/bin/env python3
"""Idle TLS connections: a session that has been idle a while gives its
record buffers' pages back (gateway/src/tls/idle.c), and everything still
works after it did: keep-alive requests, large bodies both ways, a record
split by a pause, a tunnel. And a TLS listener over its connection limit
closes rather than answering in plaintext."""
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


# ---- memory ----------------------------------------------------------------------


@t.case
def idle_tls_connections_give_back_their_record_buffers():
    """Each session holds two record buffers of 16 KiB and more (about 37
    KiB an idle connection in all before they were given back; about 8 KiB
    after). Measured as the gateway's RSS growth over N idle connections."""
    if sanitized():
        print("# skipped under AddressSanitizer: its allocator's RSS is not the gateway's")
        return
    n = 300
    with Env(listener={"max_connections": 1000}) as e:
        s = e.connect()
        get_hello(s)  # the first connection's one-time costs (threads, generator)
        s.close()
        time.sleep(0.5)
        rss0 = e.rss()
        socks = []
        for _ in range(n):
            s = e.connect()
            get_hello(s)
            socks.append(s)
        time.sleep(IDLE_S + 1.0)
        per = (e.rss() - rss0) / n
        # every connection still works, and wakes its session
        for s in socks[:20]:
            get_hello(s)
        for s in socks:
            s.close()
        print(f"# {per / 1024:.1f} KiB per idle TLS connection ({n} connections)")
        # two record buffers alone are 33 KiB
        assert per < 18 * 1024, f"{per / 1024:.1f} KiB per idle TLS connection"


# ---- it still works after a trim ------------------------------------------------


@t.case
def keep_alive_requests_after_idle_periods_keep_working():
    with Env() as e:
        c = e.https()
        sock = None
        for i in range(6):
            c.request("GET", "/api/echo?i=%d" % i)
            r = c.getresponse()
            doc = json.loads(r.read())
            assert r.status == 200 and doc["query"] == "i=%d" % i, doc
            assert sock is None or c.sock is sock, "a new connection was made"
            sock = c.sock
            time.sleep(IDLE_S)  # idle long enough for the session to be trimmed
        c.close()


@t.case
def large_requests_and_responses_after_a_trim():
    with Env() as e:
        c = e.https()
        for round in range(3):
            time.sleep(IDLE_S)
            size = 200000 + round
            body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
            c.request("POST", "/api/sink", body=body,
                      headers={"content-type": "application/octet-stream"})
            r = c.getresponse()
            assert r.status == 200 and json.loads(r.read())["bytes"] == size, size
            time.sleep(IDLE_S)
            c.request("GET", "/api/bytes?n=1000000")
            r = c.getresponse()
            data = r.read()
            assert r.status == 200 and len(data) == 1000000, (r.status, len(data))
            time.sleep(IDLE_S)
            echo = ("y" * 40000).encode()
            c.request("POST", "/api/echo", body=echo)
            r = c.getresponse()
            doc = json.loads(r.read())
            assert doc["body_len"] == 40000 and doc["body"] == echo.decode()
        c.close()


@t.case
def a_record_split_by_an_idle_pause_is_read_whole():
    """The first half of a record sits in the session's input buffer while
    the client pauses longer than the trim delay: nothing is given back
    then, and the request is answered when the rest comes."""
    with Env() as e:
        ctx = ssl.create_default_context(cafile=CA.cert)
        raw = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="api.example.com")

        def pump_out():
            data = out.read()
            if data:
                raw.sendall(data)

        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_out()
                inc.write(raw.recv(65536))
        pump_out()

        def read_answer():
            got = b""
            end = time.time() + 10
            while not got.endswith(b"hello over tls\n"):
                assert time.time() < end, got
                try:
                    got += obj.read(65536)
                except ssl.SSLWantReadError:
                    b = raw.recv(65536)
                    assert b, got
                    inc.write(b)
            assert got.startswith(b"HTTP/1.1 200"), got
            return got

        for _ in range(2):
            obj.write(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            rec = out.read()
            assert len(rec) > 20, rec
            raw.sendall(rec[:9])  # the header and a few bytes of the body
            time.sleep(IDLE_S)
            raw.sendall(rec[9:])
            read_answer()
            time.sleep(IDLE_S)  # and a trim between the two
        raw.close()


@t.case
def websocket_over_tls_after_an_idle_period():
    with Env() as e:
        s = e.connect()
        get_hello(s)
        time.sleep(IDLE_S)
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                  b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)
            assert b, head
            head += b
        assert head.startswith(b"HTTP/1.1 101"), head
        for text in (b"one", b"x" * 100, b"z" * 20000):
            time.sleep(IDLE_S)
            mask = os.urandom(4)
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(text))
            if len(text) < 126:
                head = struct.pack("!BB", 0x82, 0x80 | len(text))
                hlen = 2
            else:
                head = struct.pack("!BBH", 0x82, 0x80 | 126, len(text))
                hlen = 4
            s.sendall(head + mask + payload)
            frame = b""
            while len(frame) < hlen + len(text):
                b = s.recv(65536)
                assert b, frame
                frame += b
            assert frame[hlen:] == text, frame[:40]
        s.close()


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
