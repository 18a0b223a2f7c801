#!/usr/bin/env python3
"""Per-request caps against the real binary: a request process that goes
over its route's (or listener's) memory cap ends with memory_limit and its
client gets 503, one that runs past its time cap ends with time_limit and
504; the access log names the cap, /metrics counts it, and requests in
flight beside them complete, the upstream's health untouched."""
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, Upstream  # noqa: E402

t = TestRun("caps")

# A proxied request holds its buffers (about 21 KiB: the relay's 16 KiB
# read buffer and the request's and response's heads and paths); a body of
# up to 64 KiB is read whole before it is sent, into a buffer that doubles
# from 4 KiB (README "Request processing"), so 60,000 bytes (a 64 KiB
# buffer) go over 76 KiB before anything is sent upstream. A GET or a
# 30,000-byte body (32 KiB) stays under it, also once its 30,000-byte
# answer grows the read buffer to 64 KiB (the body's buffer is given back
# when the answer starts).
CAP = 76 * 1024
ROUTES = [
    {"name": "capped", "match": {"path_prefix": "/capped"}, "upstream": "up",
     "strip_prefix": True, "limits": {"max_memory_bytes": CAP, "max_time_ms": 400}},
    {"name": "free", "match": {"path_prefix": "/free"}, "upstream": "up", "strip_prefix": True},
]


def request(port, method, path, body=None, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.time()
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data, time.time() - t0


def metrics(g):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines()
            if ln.startswith("tandem_requests_killed_total{")}


def admin_json(g, path):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
    c.request("GET", path)
    doc = json.loads(c.getresponse().read())
    c.close()
    return doc


def concurrently(fns):
    out = [None] * len(fns)

    def run(i):
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001
            out[i] = e
    ths = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    return out


@t.case
def a_request_over_its_memory_cap_gets_503_and_the_others_complete():
    up = Upstream()
    g = Gateway(ROUTES, {"up": {"targets": [{"address": up.address}]}})
    try:
        p = g.port
        big = b"x" * 60000
        fns = [lambda: request(p, "POST", "/capped/echo", big)]
        fns += [lambda: request(p, "GET", "/capped/slow?ms=200") for _ in range(3)]
        fns += [lambda: request(p, "POST", "/capped/echo", b"y" * 30000) for _ in range(2)]
        fns += [lambda: request(p, "POST", "/free/echo", big) for _ in range(2)]
        res = concurrently(fns)
        for r in res:
            assert not isinstance(r, Exception), res
        status, body, _ = res[0]
        assert status == 503, res[0]
        doc = json.loads(body)
        assert doc["error"] == "the request went over its memory limit", doc
        assert doc["request_id"], doc
        for i, r in enumerate(res[1:]):
            assert r[0] == 200, (i + 1, r[0], r[1][:200])
        killed = [ln for ln in g.access_log() if "killed" in ln]
        assert len(killed) == 1, killed
        line = killed[0]
        assert line["killed"] == "memory_limit" and line["status"] == 503, line
        assert line["route"] == "capped" and line["path"] == "/capped/echo", line
        assert line["request_id"] == doc["request_id"], (line, doc)
        m = metrics(g)
        assert m['tandem_requests_killed_total{reason="memory_limit"}'] == 1, m
        assert m['tandem_requests_killed_total{reason="time_limit"}'] == 0, m
        # The request's own failure is not the upstream's.
        tg = admin_json(g, "/admin/upstreams")["upstreams"][0]["targets"][0]
        assert tg["healthy"] and tg["failures"] == 0, tg
        # Recorded once, by the access log and the counter: no crash report,
        # which a client sending such requests would repeat at will.
        assert "crash" not in g.log() and "memory_limit" not in g.log(), g.log()
    finally:
        g.close()
        up.stop()


@t.case
def a_request_over_its_time_cap_gets_504_and_the_others_complete():
    up = Upstream()
    g = Gateway(ROUTES, {"up": {"targets": [{"address": up.address}]}},
                listener={"limits": {"max_time_ms": 60000}})
    try:
        p = g.port
        fns = [lambda: request(p, "GET", "/capped/slow?ms=5000")]
        fns += [lambda: request(p, "GET", "/capped/slow?ms=100") for _ in range(3)]
        fns += [lambda: request(p, "GET", "/free/slow?ms=1000") for _ in range(2)]
        res = concurrently(fns)
        for r in res:
            assert not isinstance(r, Exception), res
        status, body, took = res[0]
        assert status == 504, res[0]
        assert json.loads(body)["error"] == "the request went over its time limit", body
        assert 0.35 < took < 3.0, took  # at its 400 ms cap, not the upstream's 5 s
        for r in res[1:]:
            assert r[0] == 200, (r[0], r[1][:200])
        killed = [ln for ln in g.access_log() if "killed" in ln]
        assert [(k["killed"], k["status"], k["route"]) for k in killed] == \
            [("time_limit", 504, "capped")], killed
        m = metrics(g)
        assert m['tandem_requests_killed_total{reason="time_limit"}'] == 1, m
        tg = admin_json(g, "/admin/upstreams")["upstreams"][0]["targets"][0]
        assert tg["healthy"] and tg["failures"] == 0, tg
    finally:
        g.close()
        up.stop()


class RateLimited:
    """A gateway whose routes /rl (time cap 300 ms) and /un (no cap) run a
    rate_limit policy, whose RateLimit-Policy and RateLimit fields live in the request process
    (its stack, its heap)."""

    def __init__(self):
        self.up = Upstream()
        self.pdir = tempfile.mkdtemp(prefix="tandem-policies-")
        with open(os.path.join(self.pdir, "main.json"), "w") as f:
            json.dump({"policies": [{"name": "rl", "type": "rate_limit", "limit": 1000,
                                     "window_s": 60, "by": "route"}]}, f)
        routes = [{"name": "limited", "match": {"path_prefix": "/rl"}, "upstream": "up",
                   "strip_prefix": True, "policies": ["rl"], "limits": {"max_time_ms": 300}},
                  {"name": "uncapped", "match": {"path_prefix": "/un"}, "upstream": "up",
                   "strip_prefix": True, "policies": ["rl"]}]
        self.g = Gateway(routes, {"up": {"targets": [{"address": self.up.address}]}},
                         extra={"policies": {"dir": self.pdir}})

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.g.port, timeout=20)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def served_with_fields(self):
        status, fields, _ = self.get("/rl/status/200")
        assert status == 200 and "ratelimit-policy" in fields and "ratelimit" in fields, \
            (status, fields)

    def stop(self):
        code = self.g.stop()
        self.g.stderr.flush()
        with open(self.g.stderr.name) as f:
            assert code == 0, (code, f.read()[-4000:])

    def close(self):
        self.g.close()
        self.up.stop()
        shutil.rmtree(self.pdir, ignore_errors=True)


@t.case
def a_time_capped_rate_limited_request_answers_504_without_the_policys_fields():
    """Once the time cap ends the request process, the connection's 504 must
    not read the policy's fields (freed with it), and the gateway keeps
    serving."""
    e = RateLimited()
    try:
        e.served_with_fields()
        for _ in range(5):
            status, fields, body = e.get("/rl/slow?ms=2000")
            assert status == 504, (status, fields, body)
            assert json.loads(body)["error"] == "the request went over its time limit", body
            assert "ratelimit-policy" not in fields and "ratelimit" not in fields, fields
        e.served_with_fields()
        e.stop()
    finally:
        e.close()


@t.case
def a_killed_rate_limited_request_answers_502_without_the_policys_fields():
    """The same for a request process killed from outside (the admin API)."""
    e = RateLimited()
    try:
        e.served_with_fields()
        for _ in range(3):
            box = {}
            th = threading.Thread(target=lambda: box.update(r=e.get("/un/slow?ms=10000")))
            th.start()
            pid = None
            for _ in range(400):
                doc = admin_json(e.g, "/admin/processes?kind=request")
                reqs = [p for p in doc["processes"] if p.get("route") == "uncapped"]
                if reqs:
                    pid = reqs[0]["pid"].strip("<>")
                    break
                time.sleep(0.005)
            assert pid, doc
            c = http.client.HTTPConnection("127.0.0.1", e.g.admin_port, timeout=10)
            c.request("POST", f"/admin/processes/{pid}/kill")
            c.getresponse().read()
            c.close()
            th.join(30)
            status, fields, body = box["r"]
            assert status == 502, (status, fields, body)
            assert "ratelimit-policy" not in fields and "ratelimit" not in fields, fields
        e.served_with_fields()
        e.stop()
    finally:
        e.close()


@t.case
def the_listeners_caps_apply_where_a_route_sets_none():
    up = Upstream()
    routes = [{"name": "free", "match": {"path_prefix": "/free"}, "upstream": "up",
               "strip_prefix": True},
              {"name": "uncapped", "match": {"path_prefix": "/uncapped"}, "upstream": "up",
               "strip_prefix": True, "limits": {"max_time_ms": 0}}]
    g = Gateway(routes, {"up": {"targets": [{"address": up.address}]}},
                listener={"limits": {"max_time_ms": 300}})
    try:
        s, body, took = request(g.port, "GET", "/free/slow?ms=3000")
        assert s == 504 and took < 2.5, (s, body, took)
        # A route's 0 lifts the listener's cap.
        s, body, took = request(g.port, "GET", "/uncapped/slow?ms=600")
        assert s == 200, (s, body)
    finally:
        g.close()
        up.stop()


@t.case
def limits_are_validated_with_their_position():
    up = Upstream()
    g = Gateway(ROUTES, {"up": {"targets": [{"address": up.address}]}})
    try:
        bad = [{"name": "b", "match": {"path": "/b"}, "upstream": "up",
                "limits": {"max_time_ms": -1, "max_heap": 3}}]
        g.write_routes(bad)
        c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=20)
        c.request("POST", "/admin/routes/reload")
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        assert r.status == 422 and doc["error"] == "routes_refused", (r.status, doc)
        errs = {e["path"]: e for e in doc["errors"]}
        e = errs["routes[0].limits.max_time_ms"]
        assert e["line"] == 10 and e["column"] == 24, e
        assert e["message"] == "must be between 0 and 86400000, got -1", e
        e = errs["routes[0].limits.max_heap"]
        assert e["line"] == 11 and "unknown key" in e["message"], e
        # What was published keeps serving.
        assert request(g.port, "GET", "/free/status/200")[0] == 200
    finally:
        g.close()
        up.stop()


if __name__ == "__main__":
    t.finish()
