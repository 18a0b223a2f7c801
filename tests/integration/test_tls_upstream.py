#!/usr/bin/env python3
"""TLS to upstreams end to end: the real tandem binary (a plaintext listener)
forwarding to real Python `ssl` HTTP servers, with certificates made at test
time (tests/lib/tlscerts.py): verification (success, wrong CA, wrong name),
mTLS to the backend, pooled TLS connections reused, health checks, an
Upgrade tunnel and a workflow step over TLS."""
import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, tandem_bin  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("tls_upstream")

CERTDIR = tempfile.mkdtemp(prefix="tandem-tls-up-certs-")
F = CertFactory(CERTDIR)
CA = F.ca("Tandem Test CA")
CA2 = F.ca("Other Test CA")
BACKEND = F.leaf(CA, ["backend.test"])
BY_ADDRESS = F.leaf(CA, ["127.0.0.1"])  # the target's host: an iPAddress entry
# The target's address spelled as a DNS name (and as the CN): no CA issues
# this for an address, and it does not stand for one.
ADDRESS_AS_DNS = F.leaf(CA, ["DNS:127.0.0.1"], cn="127.0.0.1")
CLIENT = F.client(CA, "/CN=tandem-gateway/O=Tests")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class TlsBackend:
    """An HTTP/1.1 keep-alive server over TLS on 127.0.0.1. Counts the
    handshakes that succeeded and failed, and the health checks; with
    `client_ca` it requires a client certificate chaining to it."""

    def __init__(self, leaf, client_ca=None, close_after=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(leaf.cert, leaf.key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        self.handshakes = 0
        self.failures = 0
        self.health = 0
        self.sni = []  # the server name of each ClientHello, None when it had none
        self.lock = threading.Lock()
        backend = self

        def sni(sock, name, context):
            with backend.lock:
                backend.sni.append(name)
        ctx.sni_callback = sni

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.do_GET()

            def do_GET(self):
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return self.tunnel()
                if self.path == "/health":
                    with backend.lock:
                        backend.health += 1
                peer = self.connection.getpeercert() or {}
                cn = "".join(v for rdn in peer.get("subject", ()) for k, v in rdn
                             if k == "commonName")
                body = json.dumps({"path": self.path, "client": cn}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                # Closed after the answer without saying so, as a server
                # whose idle timeout ran out would: a pooled connection
                # turns out stale.
                self.close_connection = close_after

            def tunnel(self):
                key = self.headers["Sec-WebSocket-Key"].encode()
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                while True:  # echoes raw bytes until the gateway closes
                    data = self.connection.recv(4096)
                    if not data:
                        break
                    self.connection.sendall(data)
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(10)
                try:
                    tls = ctx.wrap_socket(sock, server_side=True)
                except OSError:  # ssl.SSLError too: a refused handshake
                    with backend.lock:
                        backend.failures += 1
                    sock.close()
                    raise
                with backend.lock:
                    backend.handshakes += 1
                return tls, addr

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def api_route():
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up"}


class Env:
    """A TLS backend and a gateway whose upstream `up` reaches it over TLS
    configured by `tls`."""

    def __init__(self, tls, leaf=BACKEND, client_ca=None, upstream=None, close_after=False):
        self.backend = TlsBackend(leaf, client_ca, close_after)
        up = {"targets": [{"address": self.backend.address}], "retries": 0, "tls": tls}
        up.update(upstream or {})
        try:
            self.gw = Gateway([api_route()], {"up": up})
        except Exception:
            self.backend.stop()
            raise
        self.port = self.gw.port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.gw.close()
        self.backend.stop()

    def get(self, path="/api/x", conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        return r, body

    def target(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=10)
        c.request("GET", "/admin/upstreams")
        doc = json.loads(c.getresponse().read())
        c.close()
        return doc["upstreams"][0]["targets"][0]


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@t.case
def a_tls_upstream_verified_against_its_ca_answers():
    with Env({"ca": CA.cert, "server_name": "backend.test"}) as e:
        r, body = e.get("/api/hello")
        assert r.status == 200, (r.status, body)
        assert json.loads(body)["path"] == "/api/hello", body
        assert e.backend.handshakes == 1 and e.backend.failures == 0
        assert e.backend.sni == ["backend.test"], e.backend.sni


@t.case
def the_targets_host_is_the_name_checked_when_no_server_name_is_given():
    with Env({"ca": CA.cert}, leaf=BY_ADDRESS) as e:
        r, body = e.get()
        assert r.status == 200, (r.status, body)
        # An address is never sent as SNI (RFC 6066 section 3).
        assert e.backend.sni == [None], e.backend.sni


@t.case
def an_address_is_matched_by_an_ip_entry_only_not_by_a_dns_name_spelling_it():
    with Env({"ca": CA.cert}, leaf=ADDRESS_AS_DNS) as e:
        r, body = e.get()
        assert r.status == 502, (r.status, body)
        assert "name mismatch" in e.target()["last_error"], e.target()


@t.case
def a_certificate_from_another_ca_answers_502_with_the_reason_in_log_and_admin():
    with Env({"ca": CA2.cert, "server_name": "backend.test"}) as e:
        r, body = e.get()
        assert r.status == 502, (r.status, body)
        assert b"TLS handshake failed" in body, body
        err = e.target()["last_error"]
        assert err.startswith("certificate verify failed: not trusted"), err
        assert wait_for(lambda: "certificate verify failed: not trusted" in e.gw.log()), \
            e.gw.log()
        assert e.backend.handshakes == 0


@t.case
def a_certificate_for_another_name_answers_502():
    # No server_name: the target's host (127.0.0.1) is checked, and the
    # backend's certificate names only backend.test.
    with Env({"ca": CA.cert}) as e:
        r, body = e.get()
        assert r.status == 502, (r.status, body)
        err = e.target()["last_error"]
        assert err == "certificate verify failed: name mismatch", err
    with Env({"ca": CA.cert, "server_name": "elsewhere.test"}) as e:
        r, body = e.get()
        assert r.status == 502, (r.status, body)
        assert e.target()["last_error"] == "certificate verify failed: name mismatch"


@t.case
def verify_false_accepts_a_certificate_from_any_ca():
    with Env({"verify": False, "server_name": "elsewhere.test"}) as e:
        r, body = e.get()
        assert r.status == 200, (r.status, body)


@t.case
def a_backend_requiring_a_client_certificate_gets_the_configured_one():
    with Env({"ca": CA.cert, "server_name": "backend.test", "cert": CLIENT.cert,
              "key": CLIENT.key}, client_ca=CA.cert) as e:
        r, body = e.get()
        assert r.status == 200, (r.status, body)
        assert json.loads(body)["client"] == "tandem-gateway", body
    # Without one, the backend refuses the handshake: 502.
    with Env({"ca": CA.cert, "server_name": "backend.test"}, client_ca=CA.cert) as e:
        r, body = e.get()
        assert r.status == 502, (r.status, body)
        assert e.target()["last_error"].startswith("TLS handshake failed"), e.target()


@t.case
def pooled_tls_connections_are_reused_without_a_new_handshake():
    with Env({"ca": CA.cert, "server_name": "backend.test"}) as e:
        for i in range(10):
            r, _ = e.get(f"/api/{i}")
            assert r.status == 200
            # The connection is back in the pool before the next request
            # (the gateway checks it in just after the client has the
            # answer).
            assert wait_for(lambda: e.target()["active"] == 0)
        assert e.backend.handshakes == 1, e.backend.handshakes
        assert e.target()["idle"] == 1, e.target()


@t.case
def a_pooled_tls_connection_the_backend_closed_is_replaced_by_a_fresh_one():
    with Env({"ca": CA.cert, "server_name": "backend.test"}, close_after=True) as e:
        for i in range(3):
            r, body = e.get(f"/api/{i}")
            assert r.status == 200, (i, r.status, body)
            assert wait_for(lambda: e.target()["active"] == 0)
        assert e.backend.handshakes == 3, e.backend.handshakes
        # Each request after the first took the pooled connection, found it
        # closed, and checked out a fresh one: 1 + 2 + 2 checkouts.
        assert e.target()["requests"] == 5, e.target()
        assert e.target()["failures"] == 0, e.target()


@t.case
def health_checks_use_tls():
    health = {"health": {"active": {"path": "/health", "interval_ms": 100, "timeout_ms": 2000}}}
    with Env({"ca": CA.cert, "server_name": "backend.test"}, upstream=health) as e:
        assert wait_for(lambda: e.backend.health >= 3), e.backend.health
        assert e.target()["healthy"], e.target()
    # A backend whose certificate does not verify fails its checks, and says
    # why.
    with Env({"ca": CA2.cert, "server_name": "backend.test"}, upstream=health) as e:
        assert wait_for(lambda: not e.target()["healthy"]), e.target()
        err = e.target()["last_error"]
        assert err.startswith("health check failed: certificate verify failed: not trusted"), err
        assert e.backend.health == 0


class SilentTlsBackend:
    """Completes the TLS handshake, reads what comes and never answers;
    notes each connection's end as the peer closing it."""

    def __init__(self, leaf):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(leaf.cert, leaf.key)
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.requests = 0
        self.closed = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            with self.ctx.wrap_socket(c, server_side=True) as s:
                if s.recv(4096):
                    with self.lock:
                        self.requests += 1
                while s.recv(4096):
                    pass
        except OSError:
            pass
        with self.lock:
            self.closed += 1

    def stop(self):
        self.lsock.close()


@t.case
def a_health_check_killed_while_awaiting_its_answer_closes_its_connection():
    backend = SilentTlsBackend(BACKEND)
    up = {"targets": [{"address": backend.address}],
          "tls": {"ca": CA.cert, "server_name": "backend.test"},
          "health": {"active": {"path": "/health", "interval_ms": 100, "timeout_ms": 60000}}}
    gw = Gateway([api_route()], {"up": up})
    try:
        assert wait_for(lambda: backend.requests >= 1), "no health check arrived"
        c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
        c.request("GET", "/admin/processes?name=upstream:up")
        procs = json.loads(c.getresponse().read())["processes"]
        assert len(procs) == 1, procs
        pid = procs[0]["pid"].strip("<>")
        c.request("POST", f"/admin/processes/{pid}/kill", body=json.dumps({"reason": "test"}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200, (r.status, r.read())
        r.read()
        c.close()
        # The killed check's connection is closed, not left open with its
        # session: the backend sees its end.
        assert wait_for(lambda: backend.closed >= 1, 5.0), (backend.requests, backend.closed)
    finally:
        gw.close()
        backend.stop()


@t.case
def an_upgrade_tunnel_runs_over_a_tls_upstream():
    with Env({"ca": CA.cert, "server_name": "backend.test"}) as e:
        s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
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
        for text in (b"one", b"two" * 3000):
            s.sendall(text)
            got = b""
            while len(got) < len(text):
                b = s.recv(65536)
                assert b, got
                got += b
            assert got == text, (len(got), len(text))
        s.close()


STAMP = {"name": "stamp", "input": {"x": "string"},
         "idempotency": {"key": "required", "header": "Idempotency-Key", "ttl_ms": 60000},
         "wait_ms": 5000,
         "steps": [{"name": "s", "upstream": "up",
                    "request": {"method": "POST", "path": "/step", "body": {"x": "${input.x}"}},
                    "timeout_ms": 3000, "success": ["2xx"]}],
         "response": {"completed": {"status": 200,
                                    "body": {"client": "${steps.s.body.client}"}},
                      "failed": {"status": 500}}}


@t.case
def a_workflow_step_calls_a_tls_upstream():
    backend = TlsBackend(BACKEND, client_ca=CA.cert)
    d = tempfile.mkdtemp(prefix="tandem-tls-up-wf-")
    os.makedirs(os.path.join(d, "workflows"))
    with open(os.path.join(d, "workflows", "stamp.json"), "w") as f:
        json.dump({"workflows": [STAMP]}, f)
    tls = {"ca": CA.cert, "server_name": "backend.test", "cert": CLIENT.cert, "key": CLIENT.key}
    try:
        gw = Gateway([{"name": "w", "match": {"path": "/w", "methods": ["POST"]},
                       "workflow": "stamp"}],
                     {"up": {"targets": [{"address": backend.address}], "tls": tls}},
                     extra={"workflows": {"dir": os.path.join(d, "workflows"),
                                          "journal": {"data_dir": os.path.join(d, "data")}}})
    except Exception:
        backend.stop()
        raise
    try:
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        c.request("POST", "/w", body=json.dumps({"x": "y"}),
                  headers={"Content-Type": "application/json", "Idempotency-Key": "k1"})
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200, (r.status, body)
        assert json.loads(body)["client"] == "tandem-gateway", body
        assert backend.handshakes == 1, backend.handshakes
    finally:
        gw.close()
        backend.stop()


@t.case
def a_ca_bundle_that_does_not_parse_stops_the_gateway_at_start():
    bad = os.path.join(CERTDIR, "not-a-bundle.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    backend = TlsBackend(BACKEND)
    try:
        try:
            gw = Gateway([api_route()], {"up": {"targets": [{"address": backend.address}],
                                                "tls": {"ca": bad}}})
        except RuntimeError as err:
            assert "CA bundle does not parse" in str(err) and bad in str(err), err
        else:
            gw.close()
            raise AssertionError("the gateway started with a CA bundle that does not parse")
    finally:
        backend.stop()


@t.case
def check_refuses_a_client_certificate_without_its_key():
    d = tempfile.mkdtemp(prefix="tandem-tls-up-check-")
    cfg = os.path.join(d, "tandem.json")
    with open(cfg, "w") as f:
        json.dump({"listeners": [{"address": "127.0.0.1:0"}], "admin": False,
                   "upstreams": {"up": {"targets": [{"address": "127.0.0.1:1"}],
                                        "tls": {"cert": CLIENT.cert}}}}, f)
    import subprocess
    out = subprocess.run([tandem_bin(), "check", "-c", cfg], capture_output=True, text=True)
    assert out.returncode != 0, out
    assert "needs both \"cert\" and \"key\"" in out.stderr + out.stdout, out


@t.case
def check_reports_an_upstreams_bad_tls_files_at_their_keys():
    # The files an upstream's tls names are loaded by `tandem check` as the
    # start loads them, each error at the member naming the file.
    d = tempfile.mkdtemp(prefix="tandem-tls-up-check-")
    os.mkdir(os.path.join(d, "routes"))
    bad = os.path.join(d, "garbage.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    other = F.client(CA, "/CN=other/O=Tests")
    cases = [({"ca": bad}, "ca", "CA bundle does not parse", bad),
             ({"cert": bad, "key": CLIENT.key}, "cert", "does not parse", bad),
             ({"cert": CLIENT.cert, "key": other.key}, "key", "", other.key)]
    import subprocess
    for tls, key, reason, path in cases:
        cfg = os.path.join(d, "tandem.json")
        text = json.dumps({"listeners": [{"address": "127.0.0.1:0"}], "admin": False,
                           "upstreams": {"first": {"targets": [{"address": "127.0.0.1:1"}]},
                                         "up": {"targets": [{"address": "127.0.0.1:1"}],
                                                "tls": tls}}}, indent=1)
        with open(cfg, "w") as f:
            f.write(text)
        out = subprocess.run([tandem_bin(), "check", "-c", cfg], capture_output=True, text=True)
        both = out.stderr + out.stdout
        assert out.returncode != 0, (tls, both)
        # The position of the member's key in the text.
        off = text.index('"%s"' % key, text.index('"tls"'))
        line = text.count("\n", 0, off) + 1
        col = off - (text.rfind("\n", 0, off) + 1) + 1
        assert f"{cfg}:{line}:{col}" in both, (tls, line, col, both)
        assert path in both and reason in both, (tls, both)


class UntilCloseBackend:
    """A TLS server answering every request with a body that only the end
    of the connection ends (no Content-Length, no chunking), then closing
    with close_notify (`notify`) or cutting the TCP connection without it,
    as an attacker on the path could."""

    def __init__(self, leaf, notify):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(leaf.cert, leaf.key)
        self.notify = notify
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.address = "127.0.0.1:%d" % self.ls.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                raw, _ = self.ls.accept()
            except OSError:
                return
            try:
                c = self.ctx.wrap_socket(raw, server_side=True)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1000)
                if self.notify:
                    c = c.unwrap()  # close_notify first
                # (closing an SSL socket in Python sends no close_notify)
                c.close()
            except (OSError, ssl.SSLError):
                raw.close()

    def stop(self):
        self.ls.close()


@t.case
def a_body_ended_by_a_close_without_close_notify_is_not_passed_off_as_whole():
    # An upstream body that only the close ends is complete over TLS when
    # close_notify says so; a bare TCP close may be an attacker cutting it
    # short, and the client must not get it as a complete response.
    for notify in (True, False):
        backend = UntilCloseBackend(BACKEND, notify)
        gw = Gateway([api_route()], {"up": {"targets": [{"address": backend.address}],
                                            "retries": 0,
                                            "tls": {"ca": CA.cert,
                                                    "server_name": "backend.test"}}})
        try:
            c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            c.request("GET", "/api/x")
            r = c.getresponse()
            if notify:
                body = r.read()
                assert r.status == 200 and body == b"x" * 1000, (r.status, body[:64])
            else:
                # The head may already be out (then the client sees the
                # response cut short), else the gateway answers 502.
                try:
                    body = r.read()
                except (http.client.HTTPException, ConnectionError):
                    body = None  # cut short: the last chunk never came
                assert r.status == 502 or body is None, (r.status, body and body[:64])
            c.close()
        finally:
            gw.close()
            backend.stop()


t.finish()
