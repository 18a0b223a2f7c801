#!/usr/bin/env python3
"""GET /admin/routes and GET /admin/routes/versions/{N} give each route as a
definition of the routes language (routes/README.md), every key with the
value it was compiled from, plus where it was defined (file, line, column).
The dashboard's routes editor strips those three and PUTs the rest back:
that must publish the same routes, answering and forwarding as before."""
import atexit
import http.client
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, Upstream, source_root  # noqa: E402

t = TestRun("admin_routes_json")

# What the routes view strips before a PUT (gateway/src/ui/www/views/routes.js,
# asFile): where the route was defined, which the loader refuses.
POSITION = ("file", "line", "column")

# Every key of the routes language, each at a value other than its default.
ROUTES = [
    {"name": "fwd", "description": "every forwarding key",
     "match": {"host": "api.test", "path": "/f/:id", "methods": ["GET", "PROPFIND"],
               "headers": {"x-env": "prod", "x-debug": True, "x-legacy": False}},
     "upstream": "up", "rewrite": "/echo", "preserve_host": False,
     "request_headers": {"set": {"x-route": "fwd"}, "add": {"x-added": "1"},
                         "remove": ["cookie"]},
     "response_headers": {"set": {"cache-control": "no-store"}, "add": {"x-resp": "r"},
                          "remove": ["x-upstream"]},
     "timeouts": {"connect_ms": 1000, "response_ms": 5000, "tunnel_idle_ms": 60000},
     "retries": 2, "max_body_bytes": 4096,
     "limits": {"max_memory_bytes": 64 << 20, "max_time_ms": 30000},
     "priority": 5, "path_policy": {"escaped_slashes": "refuse", "params": "keep"}},
    {"name": "strip", "match": {"path_prefix": "/s"}, "upstream": "up", "strip_prefix": True},
    {"name": "hello", "match": {"path": "/hello", "methods": ["GET"]},
     "respond": {"status": 201, "body": "h\u00e9llo \u2713 {\"a\": 1}\n",
                 "headers": {"content-type": "text/plain; charset=utf-8", "x-a": "b"}}},
    {"name": "empty", "match": {"path": "/empty"},
     "respond": {"status": 204, "headers": {"x-empty": "yes"}}},
    {"name": "closed", "match": {"path": "/closed"}, "policies": ["nobody"],
     "respond": {"status": 200, "body": "secret\n"}},
    {"name": "wf", "match": {"path": "/transfers", "methods": ["POST"]}, "workflow": "transfer"},
    {"name": "tls", "match": {"path": "/tls"}, "redirect_https": True,
     "respond": {"status": 200, "body": "tls\n"}},
    {"name": "tls-port", "match": {"path": "/tls-port"}, "redirect_https": 8443,
     "respond": {"status": 200}},
]


def request(port, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def admin(gw, method, path, body=None):
    st, _, data = request(gw.admin_port, method, path,
                          {"content-type": "application/json"} if body is not None else None,
                          json.dumps(body) if body is not None else None)
    return st, json.loads(data)


def stripped(routes):
    return [{k: v for k, v in r.items() if k not in POSITION} for r in routes]


def head(headers, drop=("date", "x-request-id")):
    return sorted((k.lower(), v) for k, v in headers if k.lower() not in drop)


def behaviour(gw):
    """What the gateway does with a request on each route."""
    seen = {}
    st, hs, body = request(gw.port, "GET", "/f/1",
                           {"Host": "api.test", "x-env": "prod", "x-debug": "1",
                            "cookie": "c=1", "x-route": "client"})
    assert st == 200, (st, body)
    echo = json.loads(body)
    got = {}
    for k, v in echo["headers"]:
        got.setdefault(k.lower(), []).append(v)
    # The request edits were applied and the upstream saw the rewritten path
    # and its own address as Host (preserve_host false).
    assert echo["path"] == "/echo", echo
    assert got.get("x-route") == ["fwd"] and got.get("x-added") == ["1"], got
    assert "cookie" not in got, got
    assert got["host"] != ["api.test"], got
    rh = dict((k.lower(), v) for k, v in hs)
    assert rh.get("cache-control") == "no-store" and rh.get("x-resp") == "r", hs
    assert "x-upstream" not in rh, hs
    seen["fwd"] = (st, echo["path"], got["x-route"], got["x-added"], rh["cache-control"],
                   rh["x-resp"])
    # A match condition still holds: x-legacy must be absent.
    st, _, _ = request(gw.port, "GET", "/f/1",
                       {"Host": "api.test", "x-env": "prod", "x-debug": "1", "x-legacy": "1"})
    seen["fwd-legacy"] = st
    st, _, body = request(gw.port, "GET", "/s/echo")
    seen["strip"] = (st, json.loads(body)["path"])
    for path in ("/hello", "/empty", "/closed", "/tls", "/tls-port"):
        st, hs, body = request(gw.port, "GET", path, {"Host": "www.test"})
        if st == 401:  # the policy's refusal names the request's id
            body = json.loads(body)["error"]
        seen[path] = (st, head(hs), body)
    assert seen["/hello"][0] == 201, seen["/hello"]
    assert seen["/hello"][2] == ROUTES[2]["respond"]["body"].encode(), seen["/hello"]
    assert ("x-a", "b") in seen["/hello"][1], seen["/hello"]
    assert ("x-empty", "yes") in seen["/empty"][1], seen["/empty"]
    assert seen["/closed"][0] == 401, seen["/closed"]
    assert seen["/tls"][0] == 308 and ("location", "https://www.test/tls") in seen["/tls"][1], \
        seen["/tls"]
    assert ("location", "https://www.test:8443/tls-port") in seen["/tls-port"][1], \
        seen["/tls-port"]
    return seen


def start():
    d = tempfile.mkdtemp(prefix="tandem-rj-")
    atexit.register(shutil.rmtree, d, True)
    os.makedirs(os.path.join(d, "policies"))
    with open(os.path.join(d, "policies", "main.json"), "w") as f:
        json.dump({"policies": [{"name": "nobody", "type": "acl", "allow": []}]}, f)
    src = os.path.join(source_root(), "examples", "ledger", "workflows", "transfer.json")
    os.makedirs(os.path.join(d, "workflows"))
    shutil.copy(src, os.path.join(d, "workflows", "transfer.json"))
    up = Upstream()
    target = {"targets": [{"address": up.address}]}
    gw = Gateway(ROUTES, upstreams={"up": target, "ledger": target},
                 extra={"policies": {"dir": os.path.join(d, "policies")},
                        "workflows": {"dir": os.path.join(d, "workflows"),
                                      "journal": {"data_dir": os.path.join(d, "data")}}})
    return up, gw


@t.case
def routes_given_back_by_the_admin_api_publish_the_same_routes():
    up, gw = start()
    try:
        before = behaviour(gw)
        st, first = admin(gw, "GET", "/admin/routes")
        assert st == 200, first
        for r in first["routes"]:
            assert r["file"].endswith("main.json") and r["line"] > 0 and r["column"] > 0, r
        # Each route as it was written, key for key.
        assert stripped(first["routes"]) == ROUTES, json.dumps(first["routes"], indent=1)
        st, kept = admin(gw, "GET", f"/admin/routes/versions/{first['version']}")
        assert st == 200 and kept["routes"] == first["routes"], kept
        # What the dashboard's editor does: strip the position, PUT the rest.
        st, out = admin(gw, "PUT", "/admin/routes", {"routes": stripped(first["routes"])})
        assert st == 200 and out["outcome"] == "ok", out
        assert out["version"] > first["version"], out
        st, second = admin(gw, "GET", "/admin/routes")
        assert st == 200 and second["version"] == out["version"], second
        assert stripped(second["routes"]) == stripped(first["routes"]), second["routes"]
        st, kept = admin(gw, "GET", f"/admin/routes/versions/{second['version']}")
        assert st == 200 and stripped(kept["routes"]) == ROUTES, kept
        after = behaviour(gw)
        assert after == before, {k: (before[k], after[k]) for k in before
                                 if before[k] != after[k]}
    finally:
        gw.stop()
        up.stop()


t.finish()
