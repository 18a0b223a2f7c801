#!/usr/bin/python3
"""Route policies through the real binary: the framework itself (the
policies directory read and reloaded with the routes, the chain before the
route's action, owned upstream fields, errors with their position).

A route whose chain holds an `acl` with no authentication before it is
refused with 401 (direct and proxied); a client's copy of the consumer
fields (policies.consumer_header and the consumers' `headers`) never
reaches an upstream, on routes with or without policies; a policy file with
errors keeps the table serving, reported as FILE:LINE:COLUMN by `tandem
check`, by the reload record and in the log; editing a policy file reloads
(a new table version, the routes re-checked against the new names); a
route set PUT or validated through the admin API keeps the policies, and a
rollback brings back those of the version it publishes."""
import atexit
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, Upstream, tandem_bin  # noqa: E402

t = TestRun("policy_core")

KEY = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
POLICIES = {
    "policies": [{"name": "nobody", "type": "acl", "allow": []}],
    "consumers": [{"name": "alice", "api_keys": [KEY],
                   "headers": {"x-tier": "gold"}}],
}


def request(port, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def admin(gw, method, path, body=None):
    st, _, data = request(gw.admin_port, method, path,
                          {"content-type": "application/json"} if body is not None else None,
                          json.dumps(body) if body is not None else None)
    return st, json.loads(data)


def until(fn, what, timeout=5.0):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"{what} not true after {timeout}s (last: {last!r})")


def start(routes, upstream=None, extra=None, policies=POLICIES):
    """A gateway whose policies directory (policies.dir, a directory of its
    own: the harness makes the configuration's as it starts the gateway)
    holds `policies` from the start."""
    pdir = tempfile.mkdtemp(prefix="tandem-pol-")
    atexit.register(shutil.rmtree, pdir, True)
    with open(os.path.join(pdir, "main.json"), "w") as f:
        json.dump(policies, f)
    cfg = {"policies": {"dir": pdir}}
    cfg["policies"].update((extra or {}).get("policies", {}))
    ups = {"up": {"targets": [{"address": upstream.address}]}} if upstream else None
    gw = Gateway(routes, upstreams=ups, extra=cfg)
    gw.pdir = pdir
    return gw


def echo_headers(body):
    return [(k.lower(), v) for k, v in json.loads(body)["headers"]]


up = Upstream()


@t.case
def acl_refusing_everyone_answers_401_direct_and_proxied():
    gw = start([
        {"name": "closed", "match": {"path": "/closed"}, "policies": ["nobody"],
         "respond": {"status": 200, "body": "secret"}},
        {"name": "closed-up", "match": {"path": "/echo"}, "policies": ["nobody"],
         "upstream": "up"},
        {"name": "open", "match": {"path": "/open"}, "respond": {"status": 200, "body": "open"}},
    ], upstream=up)
    try:
        st, h, body = request(gw.port, "GET", "/closed")
        assert st == 401, (st, body)
        doc = json.loads(body)
        assert doc["error"] == "authentication required", doc
        assert h["x-request-id"] == doc["request_id"]
        st, _, body = request(gw.port, "POST", "/echo", body=b"payload")
        assert st == 401, (st, body)
        assert b"payload" not in body
        st, _, body = request(gw.port, "GET", "/open")
        assert (st, body) == (200, b"open")
        lines = until(lambda: [l for l in gw.access_log() if l["path"] in ("/closed", "/echo")]
                      if len(gw.access_log()) >= 3 else None, "access log lines")
        assert all(l["status"] == 401 and "consumer" not in l and l["upstream"] is None
                   for l in lines), lines
        st, doc = admin(gw, "GET", "/admin/routes")
        by = {r["name"]: r for r in doc["routes"]}
        assert by["closed"]["policies"] == ["nobody"] and "policies" not in by["open"], by
    finally:
        gw.close()


@t.case
def a_clients_consumer_fields_never_reach_the_upstream():
    gw = start([
        {"name": "plain", "match": {"path": "/echo"}, "upstream": "up"},
        # A match condition on an owned name never sees the client's copy.
        {"name": "forged", "match": {"path": "/echo", "headers": {"x-consumer": True}},
         "respond": {"status": 200, "body": "matched on the client's copy"}},
    ], upstream=up)
    try:
        st, _, body = request(gw.port, "GET", "/echo", {
            "X-Consumer": "forged", "x-consumer": "forged-again", "X-TIER": "platinum",
            "x-other": "kept"})
        assert st == 200, (st, body)
        hs = echo_headers(body)
        names = [k for k, _ in hs]
        assert "x-consumer" not in names and "x-tier" not in names, hs
        assert ("x-other", "kept") in hs, hs
        # Named in Connection does not bring one back either.
        st, _, body = request(gw.port, "GET", "/echo", {"Connection": "x-consumer",
                                                         "X-Consumer": "forged"})
        assert "x-consumer" not in [k for k, _ in echo_headers(body)]
    finally:
        gw.close()


@t.case
def the_consumer_header_is_configurable_and_owned():
    gw = start([{"name": "plain", "match": {"path": "/echo"}, "upstream": "up"}],
               upstream=up, extra={"policies": {"consumer_header": "X-Authenticated-User"}})
    try:
        st, _, body = request(gw.port, "GET", "/echo", {
            "x-authenticated-user": "forged", "x-consumer": "not-the-gateways-now"})
        hs = echo_headers(body)
        assert "x-authenticated-user" not in [k for k, _ in hs], hs
        assert ("x-consumer", "not-the-gateways-now") in hs, hs
    finally:
        gw.close()


@t.case
def policy_file_errors_keep_the_table_and_report_their_position():
    gw = start([{"name": "closed", "match": {"path": "/closed"}, "policies": ["nobody"],
                 "respond": {"status": 200, "body": "secret"}}])
    try:
        before = admin(gw, "GET", "/admin/routes")[1]
        bad = ('{"policies": [\n'
               '  {"name": "nobody", "type": "acl", "allow": []},\n'
               '  {"name": "typo", "type": "acll"}]}\n')
        path = os.path.join(gw.pdir, "main.json")
        with open(path + ".tmp", "w") as f:
            f.write(bad)
        os.rename(path + ".tmp", path)
        st = until(lambda: (lambda s: s if s["reloads_failed"] > before["reloads_failed"]
                            else None)(admin(gw, "GET", "/admin/routes")[1]),
                   "a failed reload recorded")
        err = st["last_reload"]["errors"][0]
        assert err["file"].endswith("main.json") and (err["line"], err["column"]) == (3, 28), err
        assert 'did you mean "acl"' in err["message"], err
        assert st["version"] == before["version"]
        assert request(gw.port, "GET", "/closed")[0] == 401
        until(lambda: "main.json:3:28" in gw.log(), "the error logged with its position")
        # tandem check says the same.
        r = subprocess.run([tandem_bin(), "check", "-c", gw.config], capture_output=True,
                           text=True)
        assert r.returncode != 0
        assert f"{path}:3:28: policies[1].type: unknown policy type" in r.stderr, r.stderr
    finally:
        gw.close()


@t.case
def editing_a_policy_file_reloads_and_rechecks_the_routes():
    gw = start([{"name": "closed", "match": {"path": "/closed"}, "policies": ["nobody"],
                 "respond": {"status": 200, "body": "secret"}}])
    try:
        v = admin(gw, "GET", "/admin/routes")[1]["version"]
        doc = json.loads(json.dumps(POLICIES))
        doc["policies"].append({"name": "staff", "type": "acl", "allow": ["alice"]})
        with open(os.path.join(gw.pdir, "main.json"), "w") as f:
            json.dump(doc, f)
        st = until(lambda: (lambda s: s if s["version"] > v else None)(
            admin(gw, "GET", "/admin/routes")[1]), "a new version after the policy edit")
        assert st["last_reload"]["outcome"] == "ok", st["last_reload"]
        # Renaming the policy a route names: the routes are checked against
        # the new names, and the table keeps serving.
        doc["policies"][0]["name"] = "nobody2"
        with open(os.path.join(gw.pdir, "main.json"), "w") as f:
            json.dump(doc, f)
        st = until(lambda: (lambda s: s if s["last_reload"]["outcome"] == "error" else None)(
            admin(gw, "GET", "/admin/routes")[1]), "the reload refused")
        err = st["last_reload"]["errors"][0]
        assert err["file"].endswith("main.json") and err["path"] == "routes[0].policies[0]", err
        assert 'unknown policy "nobody"; did you mean "nobody2"?' in err["message"], err
        assert request(gw.port, "GET", "/closed")[0] == 401
        # A route set PUT through the admin API keeps the policies serving.
        code, body = admin(gw, "PUT", "/admin/routes", {"routes": [
            {"name": "put", "match": {"path": "/put"}, "policies": ["staff"],
             "respond": {"status": 200, "body": "put"}}]})
        assert code == 200, body
        assert request(gw.port, "GET", "/put")[0] == 401
        # Validating a route set checks it against the policies serving.
        code, body = admin(gw, "POST", "/admin/routes/validate", {"routes": [
            {"name": "v", "match": {"path": "/v"}, "policies": ["staf"],
             "respond": {"status": 200}}]})
        assert code == 422, (code, body)
        err = body["errors"][0]
        assert err["path"] == "routes[0].policies[0]", err
        assert 'unknown policy "staf"; did you mean "staff"?' == err["message"], err
        # A rollback publishes a table with the policies it was loaded with:
        # the first version's "nobody" on /closed.
        code, body = admin(gw, "POST", "/admin/routes/rollback", {"version": v})
        assert code == 200, body
        st, _, body = request(gw.port, "GET", "/closed")
        assert st == 401 and b"authentication required" in body, (st, body)
    finally:
        gw.close()


try:
    t.finish()
finally:
    up.stop()
