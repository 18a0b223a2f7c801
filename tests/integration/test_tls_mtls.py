#!/usr/bin/env python3
"""Client certificates and the scheme, end to end: a route's redirect_https
on a plaintext listener, X-Forwarded-Proto over TLS, and client_auth
(required and optional) with the verified subject and fingerprint forwarded
as the listener's configured headers, which a client can never set itself.
Certificates come from tests/lib/tlscerts.py (made with openssl at test
time); clients are Python's http.client and ssl, and curl."""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, Upstream, free_port, raw_request, wait_port  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("tls_mtls")
NAME = "api.example.com"
SUBJECT_HEADER = "X-Client-Subject"
FP_HEADER = "X-Client-Cert-Sha256"

# One set of certificates for the whole run (openssl is slow enough).
_certdir = tempfile.TemporaryDirectory(prefix="tandem-mtls-")
_f = CertFactory(_certdir.name)
CA = _f.ca("Tandem Test CA")
CA2 = _f.ca("Other Test CA")
SERVER = _f.leaf(CA, [NAME, "*.example.com"], kind="ec")
ALICE = _f.client(CA, "/CN=alice/O=Tests")
ALICE_SUBJECT = "CN=alice, O=Tests"
MALLORY = _f.client(CA2, "/CN=mallory/O=Elsewhere")


def tls_listener(mode=None, headers=True):
    """A listener's `tls` with SERVER, and client_auth `mode` when given."""
    tls = {"certificates": [{"cert": SERVER.cert, "key": SERVER.key, "names": [NAME]}]}
    if mode:
        ca = {"mode": mode, "ca": CA.cert}
        if headers:
            ca.update({"subject_header": SUBJECT_HEADER, "fingerprint_header": FP_HEADER})
        tls["client_auth"] = ca
    return {"tls": tls}


def client_ctx(cert=None):
    ctx = ssl.create_default_context(cafile=CA.cert)
    if cert:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def tls_conn(port, cert=None):
    """An HTTP connection over TLS to the gateway, as NAME, presenting
    `cert` when given. Raises on a refused handshake."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = client_ctx(cert).wrap_socket(raw, server_hostname=NAME)
    except BaseException:
        raw.close()
        raise
    c = http.client.HTTPConnection(NAME, port, timeout=10)
    c.sock = s
    return c


def tls_get(port, path, cert=None, headers=None):
    c = tls_conn(port, cert)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def echoed(data):
    """{lower-case name: [values]} of the headers the upstream received."""
    out = {}
    for k, v in json.loads(data)["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def refused(port, cert=None):
    """The gateway refuses this client: its handshake fails, or (where the
    server's verdict on a certificate comes after the client's handshake is
    done, as in TLS 1.3) the connection ends before any answer."""
    try:
        c = tls_conn(port, cert)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        c.request("GET", "/echo")
        r = c.getresponse()
        r.read()
        return False
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError):
        return True
    finally:
        c.close()


def log_lines(gw, pred, timeout=5.0):
    """The access-log lines for which pred holds, waiting for at least one
    (the logger writes them shortly after the answer)."""
    end = time.time() + timeout
    while True:
        rec = [x for x in gw.access_log() if pred(x)]
        if rec or time.time() > end:
            return rec
        time.sleep(0.05)


def gateway_with_echo(listener, routes=None):
    up = Upstream()
    routes = routes or [{"name": "echo", "match": {"path_prefix": "/"}, "upstream": "up"}]
    gw = Gateway(routes, upstreams={"up": {"targets": [{"address": up.address}]}},
                 listener=listener)
    return gw, up


def get(port, path, headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


# ---- redirect_https ---------------------------------------------------------


@t.case
def redirect_https_on_plaintext_keeps_path_and_query():
    routes = [{"name": "secure", "match": {"path_prefix": "/app"}, "upstream": "up",
               "redirect_https": True},
              {"name": "other", "match": {"path_prefix": "/open"}, "upstream": "up",
               "strip_prefix": True}]
    up = Upstream()
    gw = Gateway(routes, upstreams={"up": {"targets": [{"address": up.address}]}})
    try:
        r, _ = get(gw.port, "/app/a%20b/c?x=1&y=%2F", {"Host": "api.example.com:8080"})
        assert r.status == 308, r.status
        assert r.getheader("location") == "https://api.example.com/app/a%20b/c?x=1&y=%2F", \
            r.getheader("location")
        # A POST's body is read and dropped; the connection stays usable.
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        c.request("POST", "/app/form", body=b"a=1", headers={"Host": "api.example.com"})
        r = c.getresponse()
        r.read()
        assert r.status == 308 and r.getheader("location") == "https://api.example.com/app/form"
        c.request("GET", "/open/echo", headers={"Host": "api.example.com"})
        r = c.getresponse()
        assert r.status == 200, r.status
        assert json.loads(r.read())["path"] == "/echo"
        c.close()
        # The access log names the route that redirected.
        rec = log_lines(gw, lambda x: x.get("status") == 308)
        assert rec and rec[0].get("route") == "secure", rec
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def redirect_https_to_a_port_names_it():
    routes = [{"name": "secure", "match": {"path": "/p"}, "respond": {"body": "hi"},
               "redirect_https": 8443}]
    gw = Gateway(routes)
    try:
        r, _ = get(gw.port, "/p?q", {"Host": "127.0.0.1:80"})
        assert r.status == 308, r.status
        assert r.getheader("location") == "https://127.0.0.1:8443/p?q", r.getheader("location")
        r, _ = get(gw.port, "/p", {"Host": "[::1]:80"})
        assert r.getheader("location") == "https://[::1]:8443/p", r.getheader("location")
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()


@t.case
def redirect_https_without_a_host_is_refused():
    routes = [{"name": "secure", "match": {"path": "/p"}, "respond": {"body": "hi"},
               "redirect_https": True}]
    gw = Gateway(routes)
    try:
        out = raw_request(gw.port, b"GET /p HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), out
        assert b"location" not in out.lower(), out
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()


# ---- over TLS ----------------------------------------------------------------


@t.case
def tls_listener_forwards_proto_https_and_redirect_https_acts_as_usual():
    routes = [{"name": "echo", "match": {"path_prefix": "/"}, "upstream": "up",
               "redirect_https": True}]
    gw, up = gateway_with_echo(tls_listener(), routes)
    try:
        r, data = tls_get(gw.port, "/echo?a=1", headers={"X-Forwarded-Proto": "http"})
        assert r.status == 200, r.status
        h = echoed(data)
        assert h["x-forwarded-proto"] == ["https"], h
        assert h["forwarded"][0].endswith(";proto=https"), h
        assert h["x-forwarded-port"] == [str(gw.port)], h
        # No client certificate configured: nothing about one is added.
        assert "x-client-subject" not in h, h
        rec = log_lines(gw, lambda x: x.get("path") == "/echo")
        assert rec and rec[-1]["tls_version"] in ("1.2", "1.3"), rec
        assert "tls_client_subject" not in rec[-1], rec
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def required_client_auth_refuses_no_certificate_and_another_cas():
    gw, up = gateway_with_echo(tls_listener("required"))
    try:
        assert refused(gw.port), "no certificate was accepted"
        assert refused(gw.port, MALLORY), "a certificate from another CA was accepted"
        r, data = tls_get(gw.port, "/echo", ALICE)
        assert r.status == 200, r.status
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def upstream_sees_the_verified_subject_and_fingerprint_not_the_clients():
    gw, up = gateway_with_echo(tls_listener("required"))
    try:
        forged = {SUBJECT_HEADER: "CN=admin", FP_HEADER.lower(): "00" * 32,
                  "Connection": SUBJECT_HEADER}
        r, data = tls_get(gw.port, "/echo", ALICE, headers=forged)
        assert r.status == 200, r.status
        h = echoed(data)
        subject = h.get("x-client-subject")
        assert subject and len(subject) == 1, h
        # As mbedtls writes a distinguished name (both 2.28 and 3.6).
        assert subject == [ALICE_SUBJECT], subject
        assert "admin" not in subject[0], subject
        assert h.get("x-client-cert-sha256") == [ALICE.fingerprint], h
        rec = log_lines(gw, lambda x: x.get("path") == "/echo")
        assert rec and rec[-1]["tls_client_subject"] == subject[0], rec
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def optional_client_auth_drops_the_clients_copy_without_a_certificate():
    gw, up = gateway_with_echo(tls_listener("optional"))
    try:
        forged = {SUBJECT_HEADER: "CN=admin", FP_HEADER: "00" * 32}
        r, data = tls_get(gw.port, "/echo", None, headers=forged)
        assert r.status == 200, r.status
        h = echoed(data)
        assert "x-client-subject" not in h and "x-client-cert-sha256" not in h, h
        assert h["x-forwarded-proto"] == ["https"], h
        # A certificate given must verify, even where none is fine.
        assert refused(gw.port, MALLORY), "a certificate from another CA was accepted"
        r, data = tls_get(gw.port, "/echo", ALICE, headers=forged)
        h = echoed(data)
        assert h.get("x-client-cert-sha256") == [ALICE.fingerprint], h
        assert h["x-client-subject"] == [ALICE_SUBJECT], h
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def curl_with_a_client_certificate_gets_through():
    gw, up = gateway_with_echo(tls_listener("required"))
    try:
        url = f"https://{NAME}:{gw.port}/echo"
        base = ["curl", "-sS", "--max-time", "10", "--resolve", f"{NAME}:{gw.port}:127.0.0.1",
                "--cacert", CA.cert]
        out = subprocess.run(base + ["-H", SUBJECT_HEADER + ": CN=admin", "--cert", ALICE.cert,
                                     "--key", ALICE.key, url],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        h = echoed(out.stdout)
        assert h["x-client-subject"] == [ALICE_SUBJECT], h
        assert h["x-forwarded-proto"] == ["https"], h
        # Without a certificate curl cannot get an answer.
        out = subprocess.run(base + [url], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, out.stdout
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def openssl_s_client_needs_the_right_certificate():
    gw, up = gateway_with_echo(tls_listener("required"))
    try:
        req = (f"GET /echo HTTP/1.1\r\nHost: {NAME}\r\n{SUBJECT_HEADER}: CN=admin\r\n"
               "Connection: close\r\n\r\n")

        def s_client(cert):
            args = ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}", "-servername",
                    NAME, "-CAfile", CA.cert, "-verify_return_error", "-quiet"]
            if cert:
                args += ["-cert", cert.cert, "-key", cert.key]
            # Bytes, not text: the head's CRLFs stay as they are.
            r = subprocess.run(args, input=req.encode(), capture_output=True, timeout=30)
            return r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

        out, err = s_client(ALICE)
        assert out.startswith("HTTP/1.1 200 "), out + err
        h = echoed(out.split("\r\n\r\n", 1)[1])
        assert h["x-client-subject"] == [ALICE_SUBJECT], h
        assert h["x-client-cert-sha256"] == [ALICE.fingerprint], h
        for cert in (None, MALLORY):
            out, err = s_client(cert)
            assert "HTTP/1.1" not in out, out
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


@t.case
def route_matching_on_the_subject_header_sees_the_verified_subject_not_the_clients():
    # match.headers on the subject field is how a route is kept for one
    # client certificate: it must see what the upstream would, the verified
    # subject or nothing, never the client's own copy.
    routes = [{"name": "admin", "match": {"path": "/who", "headers": {SUBJECT_HEADER: "CN=admin"}},
               "respond": {"body": "admin"}},
              {"name": "alice", "match": {"path": "/who", "headers": {SUBJECT_HEADER: ALICE_SUBJECT}},
               "respond": {"body": "alice"}},
              {"name": "anyone", "match": {"path": "/fp", "headers": {FP_HEADER: True}},
               "respond": {"body": "some certificate"}},
              {"name": "other", "match": {"path_prefix": "/"}, "respond": {"body": "other"}}]
    gw = Gateway(routes, listener=tls_listener("optional"))
    try:
        r, data = tls_get(gw.port, "/who", None, headers={SUBJECT_HEADER: "CN=admin",
                                                          FP_HEADER: "00" * 32})
        assert (r.status, data) == (200, b"other"), (r.status, data)
        r, data = tls_get(gw.port, "/fp", None, headers={FP_HEADER: "00" * 32})
        assert (r.status, data) == (200, b"other"), (r.status, data)
        r, data = tls_get(gw.port, "/who", ALICE, headers={SUBJECT_HEADER: "CN=admin"})
        assert (r.status, data) == (200, b"alice"), (r.status, data)
        r, data = tls_get(gw.port, "/fp", ALICE)
        assert (r.status, data) == (200, b"some certificate"), (r.status, data)
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()


@t.case
def a_plaintext_listener_beside_an_mtls_one_drops_the_subject_fields_too():
    # One upstream behind both listeners reads the subject field as the
    # gateway's word: a client of the plaintext listener must not forge it,
    # nor route on a forged one.
    plain_port = free_port()
    routes = [{"name": "admin", "match": {"path": "/who", "headers": {SUBJECT_HEADER: "CN=admin"}},
               "respond": {"body": "admin"}},
              {"name": "who", "match": {"path": "/who"}, "respond": {"body": "other"}},
              {"name": "echo", "match": {"path_prefix": "/"}, "upstream": "up"}]
    up = Upstream()
    gw = Gateway(routes, upstreams={"up": {"targets": [{"address": up.address}]}},
                 listener=tls_listener("optional"),
                 more_listeners=[{"name": "plain", "address": f"127.0.0.1:{plain_port}"}])
    try:
        wait_port(plain_port)
        forged = {SUBJECT_HEADER: "CN=admin", FP_HEADER: "00" * 32}
        r, data = get(plain_port, "/echo", forged)
        assert r.status == 200, (r.status, data)
        h = echoed(data)
        assert "x-client-subject" not in h and "x-client-cert-sha256" not in h, h
        r, data = get(plain_port, "/who", forged)
        assert (r.status, data) == (200, b"other"), (r.status, data)
        # The mTLS listener still forwards its verified values.
        r, data = tls_get(gw.port, "/echo", ALICE, headers=forged)
        h = echoed(data)
        assert h["x-client-subject"] == [ALICE_SUBJECT], h
        assert h["x-client-cert-sha256"] == [ALICE.fingerprint], h
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()

@t.case
def a_ticket_does_not_outlive_the_client_ca_that_verified_it():
    # The client CA bundle is replaced by another CA's and reloaded: a
    # client holding a ticket from before must be verified again, not
    # resume as the subject the old CA vouched for.
    d = tempfile.mkdtemp(prefix="tandem-mtls-ca-")
    ca_file = os.path.join(d, "clients.pem")
    shutil.copyfile(CA.cert, ca_file)
    listener = tls_listener("required")
    listener["tls"]["client_auth"]["ca"] = ca_file
    gw, up = gateway_with_echo(listener)
    ctx = client_ctx(ALICE)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the ticket is the handshake's

    def connect(session=None):
        raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        try:
            return ctx.wrap_socket(raw, server_hostname=NAME, session=session)
        except BaseException:
            raw.close()
            raise

    def ask(s):
        s.sendall(f"GET /echo HTTP/1.1\r\nHost: {NAME}\r\n\r\n".encode())
        return s.recv(65536)

    try:
        s = connect()
        assert ask(s).startswith(b"HTTP/1.1 200 "), "ALICE was not served"
        sess = s.session
        s.close()
        assert sess is not None and sess.has_ticket, "no session ticket was issued"
        s = connect(sess)
        assert s.session_reused, "the ticket did not resume before the reload"
        assert ask(s).startswith(b"HTTP/1.1 200 ")
        s.close()
        tmp = ca_file + ".tmp"
        shutil.copyfile(CA2.cert, tmp)
        os.replace(tmp, ca_file)
        c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=30)
        c.request("POST", "/admin/tls/reload", body="")
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200, (r.status, body)
        try:
            s = connect(sess)
        except (ssl.SSLError, ConnectionError, OSError):
            pass  # refused at the handshake: ALICE's CA is no longer trusted
        else:
            try:
                reused = s.session_reused
                out = ask(s)
            except (ssl.SSLError, ConnectionError, OSError):
                reused, out = False, b""
            finally:
                s.close()
            assert not reused and not out.startswith(b"HTTP/1.1 200 "), \
                "a ticket from before the reload still authenticates ALICE"
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def plaintext_listener_drops_nothing_it_does_not_own():
    # A plaintext listener configures no client certificate: its clients'
    # fields of these names pass (they mean nothing to the gateway there),
    # and the scheme is http.
    gw, up = gateway_with_echo(None)
    try:
        r, data = get(gw.port, "/echo", {SUBJECT_HEADER: "CN=x"})
        h = echoed(data)
        assert h["x-forwarded-proto"] == ["http"], h
        assert h["x-client-subject"] == ["CN=x"], h
        assert gw.stop() == 0, gw.log()  # a clean exit (and no sanitizer report)
    finally:
        gw.close()
        up.stop()


t.finish()
