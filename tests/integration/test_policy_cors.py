#!/usr/bin/env python3
"""The `cors` policy through the real binary: preflights answered at the
gateway (also on a route that does not list OPTIONS), refused origins,
the fields of actual requests and of other policies' refusals, and the
load errors `tandem check` reports."""
import http.client
import json
import os
import subprocess
import tempfile
import time

from harness import Gateway, TestRun, Upstream, tandem_bin

def access_log(gw, count, timeout=10):
    """The access log once it holds `count` lines (the logger writes them
    a moment after the answers)."""
    end = time.time() + timeout
    while True:
        lines = gw.access_log()
        if len(lines) >= count or time.time() > end:
            return lines
        time.sleep(0.05)


t = TestRun("policy_cors")

PAGE = "https://app.example.com"
POLICIES = [
    {"name": "web", "type": "cors",
     "origins": [PAGE, "https://*.example.org"],
     "methods": ["GET", "PUT", "DELETE"],
     "headers": ["content-type", "x-trace"],
     "expose_headers": ["x-upstream", "x-request-id"],
     "credentials": True, "max_age_s": 300},
    {"name": "nobody", "type": "acl", "allow": ["no-such-consumer"]},
]


def policies_dir(policies):
    d = tempfile.mkdtemp(prefix="tandem-policies-")
    with open(os.path.join(d, "web.json"), "w") as f:
        json.dump({"policies": policies}, f)
    return d


def start(routes, up, policies=POLICIES):
    return Gateway(routes, upstreams={"app": {"targets": [{"address": up.address}]}},
                   extra={"policies": {"dir": policies_dir(policies)}})


def request(gw, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.headers, data


def preflight(origin, method, req_headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        h["Access-Control-Request-Headers"] = req_headers
    return h


ROUTES = [
    # no OPTIONS: a preflight must still reach the chain
    {"name": "items", "match": {"path": "/items/*rest", "methods": ["GET", "PUT", "PATCH"]},
     "upstream": "app", "strip_prefix": False, "policies": ["web"]},
    # the same path served by two routes, one per method: the preflight
    # reaches the route of the method it asks about
    {"name": "notes-get", "match": {"path": "/notes", "methods": ["GET"]},
     "upstream": "app", "policies": []},
    {"name": "notes-delete", "match": {"path": "/notes", "methods": ["DELETE"]},
     "upstream": "app", "policies": ["web"]},
    # no cors policy: OPTIONS stays a 405
    {"name": "plain", "match": {"path": "/plain", "methods": ["GET", "PUT"]},
     "upstream": "app"},
    # policies, none of them cors: a preflight is no request for them
    {"name": "guarded", "match": {"path": "/guarded", "methods": ["GET"]},
     "upstream": "app", "policies": ["nobody"]},
    # cors, then a policy that refuses everyone with 401
    {"name": "locked", "match": {"path": "/locked", "methods": ["GET"]},
     "upstream": "app", "policies": ["web", "nobody"]},
]


@t.case
def preflight_on_a_route_without_options_is_answered_at_the_gateway():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        st, h, _, body = request(gw, "OPTIONS", "/items/1",
                                 preflight(PAGE, "PUT", "X-Trace, Content-Type"))
        assert st == 204, (st, body)
        assert h["access-control-allow-origin"] == PAGE, h
        assert h["access-control-allow-credentials"] == "true", h
        assert h["access-control-allow-methods"] == "GET, PUT, DELETE", h
        assert h["access-control-allow-headers"] == "content-type, x-trace", h
        assert h["access-control-max-age"] == "300", h
        assert "Origin" in h["vary"], h
        assert body == b""
        # never sent upstream: the access log names no upstream target
        line = access_log(gw, 1)[-1]
        assert line["route"] == "items" and line["status"] == 204, line
        assert line["upstream"] is None, line
    finally:
        gw.close()
        up.stop()


@t.case
def preflight_reaches_the_route_of_the_requested_method():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        st, h, _, _ = request(gw, "OPTIONS", "/notes", preflight(PAGE, "DELETE"))
        assert st == 204, st
        assert h["access-control-allow-origin"] == PAGE, h
        # GET's route has no cors policy: its preflight is not answered
        st, h, _, _ = request(gw, "OPTIONS", "/notes", preflight(PAGE, "GET"))
        assert st == 405, st
        assert "access-control-allow-origin" not in h, h
        # a method no route of the path serves
        st, h, _, _ = request(gw, "OPTIONS", "/notes", preflight(PAGE, "PATCH"))
        assert st == 405, st
        assert "DELETE" in h["allow"] and "GET" in h["allow"], h
    finally:
        gw.close()
        up.stop()


@t.case
def options_on_a_route_without_cors_stays_405():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        st, h, _, _ = request(gw, "OPTIONS", "/plain", preflight(PAGE, "PUT"))
        assert st == 405, st
        assert "access-control-allow-origin" not in h, h
        st, h, _, _ = request(gw, "OPTIONS", "/items/1")  # no preflight: as before
        assert st == 405, st
    finally:
        gw.close()
        up.stop()


@t.case
def preflight_on_a_route_whose_policies_have_no_cors_stays_405():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        # the route's acl would answer 401 to any request it judged
        st, h, _, _ = request(gw, "GET", "/guarded", {"Origin": PAGE})
        assert st == 401, st
        st, h, _, _ = request(gw, "OPTIONS", "/guarded", preflight(PAGE, "GET"))
        assert st == 405, st
        assert h["allow"] == "GET, HEAD", h
        assert "www-authenticate" not in h, h
        # the chain did not run: one refusal counted, not two
        c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        line = [l for l in text.splitlines()
                if l.startswith("tandem_policy_denials_total{") and 'policy="nobody"' in l]
        assert len(line) == 1 and line[0].endswith(" 1"), line
    finally:
        gw.close()
        up.stop()


@t.case
def preflight_from_a_refused_origin_gets_403_without_cors_fields():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        for hdrs in (preflight("https://evil.example.com", "PUT"),
                     preflight("https://example.org", "GET"),
                     preflight("null", "GET"),
                     preflight(PAGE, "PATCH"),
                     preflight(PAGE, "PUT", "x-secret")):
            st, h, _, body = request(gw, "OPTIONS", "/items/1", hdrs)
            assert st == 403, (hdrs, st)
            assert not [k for k in h if k.startswith("access-control-")], (hdrs, h)
            assert "Origin" in h["vary"], h
            assert json.loads(body)["error"], body
        # counted as the policy's refusals
        c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        line = [l for l in text.splitlines()
                if l.startswith("tandem_policy_denials_total{") and 'policy="web"' in l
                and 'reason="cors_refused"' in l]
        assert line and line[0].endswith(" 5"), line
    finally:
        gw.close()
        up.stop()


@t.case
def actual_request_from_an_allowed_origin_gets_the_cors_fields():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        st, h, raw, body = request(gw, "PUT", "/items/echo",
                                   {"Origin": "https://deep.sub.example.org",
                                    "X-Trace": "t1", "Content-Type": "text/plain"}, b"hi")
        assert h.get("x-upstream") == "up", h  # the upstream's answer, relayed
        assert h["access-control-allow-origin"] == "https://deep.sub.example.org", h
        assert h["access-control-allow-credentials"] == "true", h
        assert h["access-control-expose-headers"] == "x-upstream, x-request-id", h
        assert raw.get_all("access-control-allow-origin") == ["https://deep.sub.example.org"]
        assert "Origin" in ", ".join(raw.get_all("vary")), raw.get_all("vary")
        # a refused origin: the request goes on, with no CORS field
        st, h, _, _ = request(gw, "GET", "/items/echo", {"Origin": "https://evil.example.com"})
        assert st in (200, 404), st
        assert not [k for k in h if k.startswith("access-control-")], h
        assert "Origin" in h["vary"], h
    finally:
        gw.close()
        up.stop()


@t.case
def a_later_policys_refusal_carries_the_cors_fields():
    up = Upstream()
    gw = start(ROUTES, up)
    try:
        st, h, _, _ = request(gw, "GET", "/locked", {"Origin": PAGE})
        assert st == 401, st
        assert h["access-control-allow-origin"] == PAGE, h
        assert h["access-control-allow-credentials"] == "true", h
        # and the preflight is answered before that policy runs
        st, h, _, _ = request(gw, "OPTIONS", "/locked", preflight(PAGE, "GET"))
        assert st == 204, st
    finally:
        gw.close()
        up.stop()


@t.case
def star_with_credentials_is_refused_by_check():
    d = tempfile.mkdtemp(prefix="tandem-check-")
    os.makedirs(os.path.join(d, "routes"))
    os.makedirs(os.path.join(d, "policies"))
    with open(os.path.join(d, "routes", "r.json"), "w") as f:
        json.dump({"routes": [{"name": "r", "match": {"path": "/"}, "respond": {"status": 200},
                               "policies": ["open"]}]}, f)
    with open(os.path.join(d, "policies", "p.json"), "w") as f:
        f.write('{"policies": [\n  {"name": "open", "type": "cors", "origins": ["*"],\n'
                '   "credentials": true}\n]}\n')
    with open(os.path.join(d, "tandem.json"), "w") as f:
        json.dump({"listeners": [{"address": "127.0.0.1:0"}], "admin": False,
                   "routes": "routes"}, f)
    r = subprocess.run([tandem_bin(), "check", "-c", os.path.join(d, "tandem.json")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "p.json:3:" in out and "cannot go with the origin \"*\"" in out, out


t.finish()
