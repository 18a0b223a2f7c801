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
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, Upstream  # noqa: E402

t = TestRun("tls_mtls")


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
        rec = [x for x in gw.access_log() if x.get("status") == 308]
        assert rec and rec[0].get("route") == "secure", rec
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
    finally:
        gw.close()


@t.case
def redirect_https_without_a_host_is_refused():
    routes = [{"name": "secure", "match": {"path": "/p"}, "respond": {"body": "hi"},
               "redirect_https": True}]
    gw = Gateway(routes)
    try:
        from harness import raw_request
        out = raw_request(gw.port, b"GET /p HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), out
        assert b"location" not in out.lower(), out
    finally:
        gw.close()


t.finish()
