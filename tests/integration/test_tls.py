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
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
            "strip_prefix": True}


def cert(c, names=None):
    d = {"cert": c.cert, "key": c.key}
    if names is not None:
        d["names"] = names
    return d


class Env:
    """A gateway with a TLS listener (and an upstream), for one test."""

    def __init__(self, certs=None, tls=None, listener=None, routes=None, kills=False):
        self.kills = kills  # processes are killed on purpose: their crash reports expected
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

    def reports(self):
        """The gateway's JSON report lines on stderr."""
        out = []
        for line in self.gw.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def __exit__(self, *a):
        code = self.gw.stop()
        # a failed handshake is counted and logged at debug level: never a
        # crash report or an error line
        bad = [r for r in self.reports()
               if (r.get("event") == "crash" or r.get("level") in ("error", "fatal")) and
               not (self.kills and "killed_by_admin" in (r.get("reason", "") + r.get("msg", "")))]
        self.gw.close()
        self.up.stop()
        assert code == 0, f"gateway exit code {code}"
        assert not bad, bad


def served_fingerprint(port, name):
    """The SHA-256 of the certificate the server presents to `name` (None:
    no server name sent) as openssl s_client sees it, or None when the
    handshake fails."""
    sni = ["-servername", name] if name else ["-noservername"]
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *sni],
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


# ---- certificates by server name ---------------------------------------------------


@t.case
def sni_chooses_the_exact_name_then_the_wildcard_then_the_default():
    with Env() as e:
        both = {EC.fingerprint, RSA.fingerprint}
        assert served_fingerprint(e.port, "other.test") == OTHER.fingerprint
        assert served_fingerprint(e.port, "api.example.com") in both
        assert served_fingerprint(e.port, "www.example.com") in both
        # a wildcard takes one label: a.b.example.com is unknown
        assert served_fingerprint(e.port, "a.b.example.com") == DEFAULT.fingerprint
        assert served_fingerprint(e.port, "unknown.test") == DEFAULT.fingerprint
        assert served_fingerprint(e.port, None) == DEFAULT.fingerprint
        # what Python's ssl verifies: the name it asked for
        with e.connect("default.example.com") as s:
            assert s.getpeercert()["subject"] == ((("commonName", "default.example.com"),),)


@t.case
def configured_names_restrict_a_certificate_to_them():
    # EC covers *.example.com but is configured for api.example.com alone
    with Env(certs=[cert(DEFAULT), cert(EC, ["api.example.com"])]) as e:
        assert served_fingerprint(e.port, "api.example.com") == EC.fingerprint
        assert served_fingerprint(e.port, "www.example.com") == DEFAULT.fingerprint


@t.case
def unknown_name_refuse_fails_the_handshake_for_unknown_and_missing_names():
    with Env(tls={"unknown_name": "refuse"}) as e:
        assert served_fingerprint(e.port, "other.test") == OTHER.fingerprint
        assert served_fingerprint(e.port, "unknown.test") is None
        assert served_fingerprint(e.port, None) is None
        try:
            e.connect("unknown.test").close()
            raise AssertionError("handshake for an unknown name succeeded")
        except ssl.SSLError as err:
            assert "UNRECOGNIZED_NAME" in str(err).upper() or "ALERT" in str(err).upper(), err
        # the listener still serves known names
        with e.connect("api.example.com") as s:
            assert s.version() == "TLSv1.2" or s.version() == "TLSv1.3"


@t.case
def ecdsa_and_rsa_on_one_listener_are_chosen_by_what_the_client_supports():
    with Env(certs=[cert(EC), cert(RSA)]) as e:
        for suite, want in (("ECDHE-ECDSA-AES128-GCM-SHA256", EC),
                            ("ECDHE-RSA-AES128-GCM-SHA256", RSA)):
            ctx = e.context(maximum_version=ssl.TLSVersion.TLSv1_2)
            ctx.set_ciphers(suite)
            with e.connect("api.example.com", ctx) as s:
                der = s.getpeercert(binary_form=True)
                import hashlib
                assert hashlib.sha256(der).hexdigest() == want.fingerprint, suite
                assert s.cipher()[0] == suite


# ---- versions and suites ------------------------------------------------------------


@t.case
def tls_1_0_and_1_1_are_refused_and_1_2_is_served():
    with Env() as e:
        # OpenSSL's own default security level would refuse 1.0/1.1 on the
        # client side: level 0 makes the server the one that refuses.
        for flag in ("-tls1", "-tls1_1"):
            rc, out = s_client(e.port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
            assert rc != 0, f"{flag} was accepted: {out}"
            assert "alert protocol version" in out, out
        rc, out = s_client(e.port, "-tls1_2")
        assert rc == 0 and "Protocol  : TLSv1.2" in out, out


@t.case
def the_key_exchange_takes_the_fastest_group_the_client_offers():
    # The server's preference decides: X25519, then P-256, P-384, P-521,
    # whatever order the client lists them in (a client listing P-521 first
    # must not make every full handshake pay for it).
    with Env() as e:
        for groups, want in (("P-521:P-384:P-256:X25519", "X25519"),
                             ("P-521:P-384:P-256", "prime256v1"),
                             ("P-521:P-384", "secp384r1")):
            rc, out = s_client(e.port, "-tls1_2", "-groups", groups)
            assert rc == 0, out
            temp = [ln for ln in out.splitlines() if "Server Temp Key" in ln]
            assert temp and want in temp[0], (groups, temp, out)


@t.case
def weak_suites_are_refused_by_default():
    with Env() as e:
        for suite in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA",
                      "ECDHE-ECDSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256",
                      "DES-CBC3-SHA", "RC4-SHA", "NULL-SHA256", "ADH-AES128-SHA"):
            rc, out = s_client(e.port, "-tls1_2", "-cipher", suite + ":@SECLEVEL=0")
            assert rc != 0, f"{suite} was accepted: {out}"
        for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"):
            rc, out = s_client(e.port, "-tls1_2", "-cipher", suite)
            assert rc == 0 and suite in out, out


@t.case
def configured_ciphersuites_are_the_only_ones_served():
    with Env(tls={"ciphersuites": ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]}) as e:
        rc, out = s_client(e.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        assert rc != 0, out
        rc, out = s_client(e.port, "-tls1_2")
        assert rc == 0 and "ECDHE-RSA-AES256-GCM-SHA384" in out, out


@t.case
def alpn_offers_http_1_1():
    with Env() as e:
        ctx = e.context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with e.connect("api.example.com", ctx) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
        rc, out = s_client(e.port, "-alpn", "h2,http/1.1")
        assert "ALPN protocol: http/1.1" in out, out


@t.case
def renegotiation_is_refused():
    with Env() as e:
        # s_client renegotiates on an "R" line; the server answers with a
        # no_renegotiation alert instead of a second handshake.
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{e.port}",
                              "-servername", "api.example.com", "-tls1_2"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        p.stdin.write("R\n")
        p.stdin.flush()
        time.sleep(1)
        p.stdin.close()
        p.wait(timeout=20)
        out = p.stdout.read()
        assert "RENEGOTIATING" in out, out
        assert "no renegotiation" in out, out


# ---- sessions -------------------------------------------------------------------------


@t.case
def a_ticket_resumes_the_session_without_a_full_handshake():
    with Env() as e:
        ctx = e.context()
        c1 = e.connect("api.example.com", ctx)
        c1.sendall(b"GET /hello HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        assert c1.recv(4096).startswith(b"HTTP/1.1 200")
        sess = c1.session
        assert not c1.session_reused
        c1.close()
        assert sess is not None and sess.has_ticket, "no session ticket was issued"
        c2 = e.connect("api.example.com", ctx, session=sess)
        assert c2.session_reused, "the ticket did not resume the session"
        c2.sendall(b"GET /hello HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        assert c2.recv(4096).startswith(b"HTTP/1.1 200")
        c2.close()


@t.case
def session_tickets_false_resumes_nothing():
    with Env(tls={"session_tickets": False}) as e:
        ctx = e.context(maximum_version=ssl.TLSVersion.TLSv1_2)
        c1 = e.connect("api.example.com", ctx)
        sess = c1.session
        c1.close()
        assert not (sess and sess.has_ticket)
        c2 = e.connect("api.example.com", ctx, session=sess)
        assert not c2.session_reused
        c2.close()


# ---- requests over TLS ---------------------------------------------------------------


@t.case
def keep_alive_carries_several_requests_over_one_session():
    with Env() as e:
        c = e.https()
        socks = set()
        for i in range(5):
            if i >= 3:
                time.sleep(0.5)  # the connection hibernates between these
            c.request("GET", "/api/echo?i=%d" % i)
            r = c.getresponse()
            doc = json.loads(r.read())
            assert r.status == 200 and doc["query"] == "i=%d" % i, doc
            socks.add(id(c.sock))
        assert len(socks) == 1
        c.close()


@t.case
def post_bodies_reach_the_upstream_whole():
    with Env() as e:
        c = e.https()
        for size in (0, 1, 16383, 16384, 16385, 200000):
            body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
            c.request("POST", "/api/sink", body=body,
                      headers={"content-type": "application/octet-stream"})
            r = c.getresponse()
            assert r.status == 200 and json.loads(r.read())["bytes"] == size, size
        # and a body echoed back, larger than a record
        body = ("x" * 40000).encode()
        c.request("POST", "/api/echo", body=body)
        r = c.getresponse()
        doc = json.loads(r.read())
        assert doc["body_len"] == 40000 and doc["body"] == body.decode()
        c.close()


@t.case
def large_response_arrives_whole_over_tls():
    with Env() as e:
        c = e.https()
        c.request("GET", "/api/bytes?n=1000000")
        r = c.getresponse()
        data = r.read()
        assert r.status == 200 and len(data) == 1000000, (r.status, len(data))
        c.close()


@t.case
def pipelined_requests_in_one_record_are_all_answered():
    with Env() as e:
        s = e.connect()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
        data = b""
        s.settimeout(5)
        while data.count(b"hello over tls") < 3:
            b = s.recv(65536)
            assert b, data
            data += b
        s.close()


@t.case
def websocket_over_tls_is_tunnelled_both_ways():
    import base64
    import struct
    with Env() as e:
        s = e.connect()
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
        for text in (b"one", b"two", b"x" * 100):
            mask = os.urandom(4)
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(text))
            s.sendall(struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + payload)
            frame = b""
            while len(frame) < 2 + len(text):
                b = s.recv(1000)
                assert b, frame
                frame += b
            assert frame[2:] == text, frame
        s.close()


@t.case
def websocket_over_tls_carries_both_directions_at_once():
    """The client's frames are read by the connection's process while the
    upstream's echoes are written by the tunnel's pump, on one session."""
    import base64
    import select
    import struct
    with Env() as e:
        s = e.connect()
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                  b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        n, size = 300, 1000
        payloads = [bytes([65 + i % 26]) * size for i in range(n)]

        out = b""
        for p in payloads:
            mask = os.urandom(4)
            out += (struct.pack("!BBH", 0x82, 0x80 | 126, size) + mask +
                    bytes(c ^ mask[i % 4] for i, c in enumerate(p)))
        want = b"".join(struct.pack("!BBH", 0x82, 126, size) + p for p in payloads)
        # One thread sends and receives, interleaved as the socket allows:
        # an OpenSSL session must not be used by two threads at once, so
        # the client cannot send from one and receive in another.
        got = b""
        s.setblocking(False)
        end = time.time() + 20
        while len(got) < len(want):
            assert time.time() < end, (len(out), len(got))
            r, w, _ = select.select([s], [s] if out else [], [], 1)
            if w:
                try:
                    out = out[s.send(out[:16384]):]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            if r or s.pending():
                try:
                    b = s.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                assert b, len(got)
                got += b
        assert not out and got == want
        s.close()


# ---- what is not a TLS client -----------------------------------------------------------


@t.case
def plaintext_request_on_a_tls_port_gets_400_over_plaintext():
    with Env() as e:
        from harness import raw_request
        out = raw_request(e.port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert out.startswith(b"HTTP/1.1 400"), out
        assert b"TLS" in out and b"Connection: close" in out, out
        # TLS clients are served as before
        with e.connect() as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")


@t.case
def a_stalled_handshake_is_dropped_at_the_header_timeout():
    with Env(listener={"header_timeout_ms": 600}) as e:
        # a record header promising a ClientHello that never comes, and a
        # client that sends nothing at all
        half = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        half.sendall(bytes([0x16, 0x03, 0x01, 0x01, 0x00, 0x01]))
        silent = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        start = time.time()
        for s in (half, silent):
            try:
                assert s.recv(100) in (b"",), "the server answered a stalled handshake"
            except ConnectionResetError:
                pass
        took = time.time() - start
        assert took < 5, f"dropped only after {took:.1f}s"
        half.close()
        silent.close()
        # a slow but steady client within the timeout is served
        with e.connect() as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")


@t.case
def garbage_on_a_tls_port_is_closed_without_an_answer():
    with Env() as e:
        from harness import raw_request
        try:
            out = raw_request(e.port, b"\x00\x01\x02\x03 not tls", timeout=5)
        except ConnectionResetError:
            out = b""  # closed with the bytes unread: a reset, no answer either
        assert out == b"", out


@t.case
def a_connection_killed_mid_handshake_closes_its_socket():
    # Killed while it waits for the first byte, then while it handshakes:
    # either way its client sees the connection close and the listener
    # counts none open (nothing kept: socket, session, configuration).
    from harness import await_no_connections
    with Env(kills=True) as e:
        assert await_no_connections(e.gw)
        for first in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
            raw = socket.create_connection(("127.0.0.1", e.port), timeout=10)
            raw.sendall(first)
            pids = []
            end = time.time() + 5
            while not pids and time.time() < end:
                c = http.client.HTTPConnection("127.0.0.1", e.gw.admin_port, timeout=10)
                c.request("GET", "/admin/processes?kind=connection")
                doc = json.loads(c.getresponse().read())
                c.close()
                pids = [p["pid"] for p in doc["processes"]
                        if (p.get("detail") or "").startswith("public")]
                time.sleep(0.02)
            assert len(pids) == 1, doc
            c = http.client.HTTPConnection("127.0.0.1", e.gw.admin_port, timeout=10)
            c.request("POST", "/admin/processes/%s/kill" % pids[0].strip("<>"))
            assert c.getresponse().status in (200, 202)
            c.close()
            raw.settimeout(5)
            try:
                got = raw.recv(100)
            except socket.timeout:
                got = None
            except ConnectionResetError:
                got = b""
            raw.close()
            assert got == b"", (first, got)
            assert await_no_connections(e.gw), first


if __name__ == "__main__":
    t.finish()
