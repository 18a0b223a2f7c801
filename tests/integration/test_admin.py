#!/usr/bin/env python3
"""The admin API and `tandem ctl` against the real tandem binary: every
endpoint's shape, values that follow from what the test did (connections,
killed request processes, the supervision tree of the configuration), token
refusal, the refusal to start on a public address without a token, and
/metrics read by a real Prometheus text-format parser."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, Upstream, free_port, tandem_bin, wait_port  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

t = TestRun("admin")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n", "headers": {"content-type": "text/plain"}}}


def api_route(upstream="up"):
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": upstream,
            "strip_prefix": True}


class Gw:
    """tandem with a generated config; `listeners` a list of listener
    objects without addresses (ports are picked here), `admin` the admin
    object (address filled in unless given)."""

    def __init__(self, routes=None, upstreams=None, listeners=None, admin=None, env=None,
                 wait=True):
        self.dir = tempfile.mkdtemp(prefix="tandem-admin-")
        os.makedirs(os.path.join(self.dir, "routes"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": routes if routes is not None else [HELLO]}, f)
        self.ports = []
        lst = []
        for i, extra in enumerate(listeners or [{}]):
            p = free_port()
            self.ports.append(p)
            obj = {"name": "public" if i == 0 else f"l{i}", "address": f"127.0.0.1:{p}"}
            obj.update(extra)
            lst.append(obj)
        self.port = self.ports[0]
        self.admin_port = free_port()
        adm = {"address": f"127.0.0.1:{self.admin_port}"}
        adm.update(admin or {})
        self.cfg = {"runtime": {"schedulers": 2}, "listeners": lst, "admin": adm,
                    "upstreams": upstreams or {}, "routes": "routes", "drain_timeout_ms": 3000}
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump(self.cfg, f, indent=2)
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.out = open(os.path.join(self.dir, "stdout.log"), "w+")
        e = dict(os.environ)
        e.pop("TANDEM_ADMIN_TOKEN", None)
        e.update(env or {})
        self.env = e
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config], stdout=self.out,
                                     stderr=self.err, env=e)
        if wait:
            try:
                self.wait_ready()
            except TimeoutError:
                self.close()
                raise RuntimeError("gateway did not start: " + self.log())

    def wait_ready(self, timeout=20.0):
        """Until /readyz answers 200: the sockets listen before the tree
        starts, so a connect proves nothing about what answers. This
        gateway must still be running each time round: if it exited (its
        port was taken), whatever holds the port is not what the test
        talks to."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise TimeoutError(f"tandem exited with {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2)
                c.request("GET", "/readyz")
                status = c.getresponse().status
                c.close()
                if status == 200 and self.proc.poll() is None:
                    wait_port(self.port)
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        raise TimeoutError("not ready")

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def admin(self, method, path, body=None, token=None, timeout=10, headers=None):
        """One request as a well-behaved client sends it (http.client's Host
        is the admin address; a body goes as application/json); `headers`
        adds to or replaces those fields."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        h = {}
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        ctype = r.getheader("content-type") or ""
        if ctype.startswith("application/json"):
            return r.status, json.loads(data)
        return r.status, data.decode()

    def get(self, path, **kw):
        return self.admin("GET", path, **kw)

    def ctl(self, *args, env=None, timeout=20):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([tandem_bin(), "ctl", "-c", self.config, *args], env=e,
                              capture_output=True, text=True, timeout=timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def public_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def is_pid(s):
    return isinstance(s, str) and s.startswith("<0.") and s.endswith(">") and \
        all(p.isdigit() for p in s[3:-1].split("."))


def pid_path(pid):
    return pid[1:-1]  # "<0.S.G>" -> "0.S.G"


def wait_for(fn, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


PROC_FIELDS = {"pid", "name", "kind", "initial_call", "status", "state", "mailbox_len",
               "reductions", "memory", "links", "monitors", "monitored_by", "parent",
               "trap_exit", "age_ms"}


def ctl_available():
    r = subprocess.run([tandem_bin(), "ctl", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and "tandem ctl" in r.stdout


# ---- endpoints ----------------------------------------------------------------------


@t.case
def every_endpoint_answers_with_its_documented_shape():
    up = Upstream()
    try:
        with Gw(routes=[HELLO, api_route()],
                upstreams={"up": {"targets": [{"address": up.address}]}}) as g:
            assert public_get(g.port, "/hello")[0] == 200
            assert public_get(g.port, "/api/echo")[0] == 200
            s, v = g.get("/healthz")
            assert s == 200 and v == {"status": "ok"}, (s, v)
            s, v = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(g.get("/readyz")))
            assert s == 200 and v["status"] == "ready", (s, v)

            s, v = g.get("/admin/system")
            assert s == 200, (s, v)
            for k in ("version", "uptime_ms", "ready", "draining", "schedulers", "processes",
                      "memory", "listeners", "admin", "requests", "routes"):
                assert k in v, k
            assert len(v["schedulers"]) == 2
            assert {"id", "utilisation", "run_queue"} <= set(v["schedulers"][0])
            assert v["processes"]["count"] > 5 and v["processes"]["limit"] > v["processes"]["count"]
            assert v["listeners"][0]["name"] == "public"
            assert v["listeners"][0]["address"] == f"127.0.0.1:{g.port}"
            assert v["listeners"][0]["requests"] >= 2
            assert v["routes"]["version"] >= 1
            assert v["memory"]["rss_bytes"] > 0

            s, v = g.get("/admin/processes")
            assert s == 200
            assert v["total"] == v["matched"] == v["returned"] == len(v["processes"])
            for p in v["processes"]:
                assert PROC_FIELDS <= set(p), p
                assert is_pid(p["pid"])
            names = {p["name"] for p in v["processes"]}
            assert {"tandem_sup", "router"} <= names, names
            kinds = {p["kind"] for p in v["processes"]}
            assert {"supervisor", "server", "acceptor"} <= kinds, kinds

            s, v = g.get("/admin/processes?name=router&kind=server")
            assert s == 200 and v["matched"] == 1, v
            router = v["processes"][0]
            s, d = g.get("/admin/processes/" + pid_path(router["pid"]))
            assert s == 200, d
            assert d["pid"] == router["pid"] and d["name"] == "router"
            assert d["sys"]["behaviour"] == "gen_server", d["sys"]
            assert d["sys"]["status"] == "running"
            assert isinstance(d["linked"], list) and d["linked"]

            s, v = g.get("/admin/supervisors")
            assert s == 200 and v["tree"]["name"] == "tandem_sup", v

            s, v = g.get("/admin/routes")
            assert s == 200, v
            assert "error" not in v
            s, v = g.get("/admin/upstreams")
            assert s == 200
            assert v["upstreams"][0]["name"] == "up"
            assert v["upstreams"][0]["targets"][0]["address"] == up.address
            s, v = g.admin("POST", "/admin/routes/validate", body={"routes": [HELLO]})
            assert s == 200, (s, v)
            s, v = g.admin("POST", "/admin/routes/validate", body="{not json")
            assert s == 422 and v["error"] == "routes_refused" and v["errors"], (s, v)
            s, v = g.admin("POST", "/admin/routes/reload")
            assert s == 200, (s, v)
            s, v = g.admin("POST", "/admin/routes/rollback", body={"version": 987654})
            assert s == 404 and v["error"] == "version_not_found", (s, v)

            s, text = g.get("/metrics")
            assert s == 200 and "tandem_requests_total" in text

            s, v = g.get("/admin/")
            assert s == 404 and "note" in v["detail"], v
            s, v = g.get("/admin/nothing")
            assert s == 404 and v["error"] == "not_found" and "detail" in v
            s, v = g.admin("DELETE", "/admin/system")
            assert s == 405 and v["error"] == "method_not_allowed", v
            assert "GET" in v["detail"]["allow"]
            c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=5)
            c.request("DELETE", "/admin/system")
            r = c.getresponse()
            r.read()
            assert r.status == 405 and r.getheader("allow") == "GET, HEAD", r.getheaders()
            c.close()
            s, v = g.get("/admin/processes/0.999999.999999")
            assert s == 404 and v["error"] == "no_such_process", v
            s, v = g.get("/admin/processes/banana")
            assert s == 400 and v["error"] == "bad_pid", v
    finally:
        up.stop()


@t.case
def routes_replace_validate_and_rollback_through_the_admin_api():
    with Gw() as g:
        s, before = g.get("/admin/routes")
        assert s == 200, before
        v0 = before["version"]
        bye = {"name": "bye", "match": {"path": "/bye"},
               "respond": {"status": 200, "body": "bye\n"}}
        s, v = g.admin("PUT", "/admin/routes", body={"routes": [HELLO, bye]})
        assert s == 200 and v["outcome"] == "ok" and v["version"] > v0, (s, v)
        assert public_get(g.port, "/bye") == (200, b"bye\n")
        s, v = g.admin("PUT", "/admin/routes", body={"routes": [{"name": "x"}]})
        assert s == 422 and v["error"] == "routes_refused" and v["errors"], (s, v)
        assert public_get(g.port, "/bye")[0] == 200  # the refused set changed nothing
        s, v = g.admin("POST", "/admin/routes/rollback", body={"version": v0})
        assert s == 200 and v["version"] == v0, (s, v)
        assert public_get(g.port, "/bye")[0] == 404
        assert public_get(g.port, "/hello")[0] == 200
        s, v = g.admin("POST", "/admin/routes/rollback", body={"version": "one"})
        assert s == 400 and v["error"] == "bad_request", (s, v)


@t.case
def each_kept_route_version_is_served_by_number_with_its_own_routes():
    with Gw() as g:
        s, before = g.get("/admin/routes")
        assert s == 200, before
        v0 = before["version"]
        bye = {"name": "bye", "match": {"path": "/bye"},
               "respond": {"status": 200, "body": "bye\n"}}
        s, v = g.admin("PUT", "/admin/routes", body={"routes": [HELLO, bye]})
        assert s == 200 and v["outcome"] == "ok", (s, v)
        v1 = v["version"]
        s, cur = g.get("/admin/routes")
        s, old = g.get(f"/admin/routes/versions/{v0}")
        assert s == 200, (s, old)
        # The first version's routes, in the shape GET /admin/routes gave
        # them while it served.
        assert old["version"] == v0 and old["current"] is False, old
        assert old["routes"] == before["routes"], (old, before)
        assert old["source"] and old["published_at"] and old["count"] == 1, old
        s, new = g.get(f"/admin/routes/versions/{v1}")
        assert s == 200 and new["current"] is True, (s, new)
        assert new["routes"] == cur["routes"] and new["source"] == "<admin>", (new, cur)
        assert [r["name"] for r in new["routes"]] == ["hello", "bye"], new
        listed = {e["version"]: e for e in cur["versions"]}
        assert listed[v0]["published_at"] == old["published_at"], (listed, old)
        s, v = g.get(f"/admin/routes/versions/{v1 + 1}")
        assert s == 404 and v["error"] == "version_not_found", (s, v)
        s, v = g.get("/admin/routes/versions/one")
        assert s == 400 and v["error"] == "bad_version", (s, v)
        # Out of the history (it keeps the last 10): gone.
        for _ in range(10):
            s, v = g.admin("PUT", "/admin/routes", body={"routes": [HELLO]})
            assert s == 200, (s, v)
        s, v = g.get(f"/admin/routes/versions/{v0}")
        assert s == 404 and v["error"] == "version_not_found", (s, v)


@t.case
def hundred_keepalive_connections_show_as_hundred_connection_processes():
    with Gw() as g:
        conns = []
        try:
            for _ in range(100):
                c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
                c.request("GET", "/hello")
                r = c.getresponse()
                assert r.status == 200 and r.read() == b"hello\n"
                assert not r.will_close
                conns.append(c)

            def public_conns():
                s, v = g.get("/admin/processes?kind=connection")
                assert s == 200
                mine = [p for p in v["processes"] if (p["detail"] or "").startswith("public ")]
                # Each has answered; the last ones may still be on their way
                # to parking, so wait for that rather than read it once.
                parked = all(p["status"] in ("waiting", "hibernating") for p in mine)
                return mine if len(mine) == 100 and parked else None

            mine = wait_for(public_conns)
            assert mine and len(mine) == 100, len(mine or [])
            for p in mine:
                assert p["kind"] == "connection" and p["status"] in ("waiting", "hibernating")
            s, v = g.get("/admin/system")
            assert v["listeners"][0]["connections"] == 100, v["listeners"]
        finally:
            for c in conns:
                c.close()
        s, v = g.get("/admin/system")
        assert wait_for(lambda: g.get("/admin/system")[1]["listeners"][0]["connections"] == 0)


@t.case
def killing_a_request_process_answers_its_client_with_an_error_and_no_one_else():
    up = Upstream()
    try:
        with Gw(routes=[api_route()],
                upstreams={"up": {"targets": [{"address": up.address}],
                                  "response_timeout_ms": 20000}}) as g:
            results = {}

            def client(i):
                t0 = time.time()
                try:
                    results[i] = public_get(g.port, "/api/slow?ms=3000", timeout=15) + \
                        (time.time() - t0,)
                except Exception as e:  # noqa: BLE001
                    results[i] = (None, repr(e).encode(), time.time() - t0)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
            for th in threads:
                th.start()

            def requests():
                s, v = g.get("/admin/processes?kind=request")
                procs = [p for p in v["processes"] if p.get("route") == "api"]
                return procs if len(procs) == 3 else None

            procs = wait_for(requests, timeout=5)
            assert procs, "three request processes never showed"
            victim = procs[0]
            assert victim["method"] == "GET"
            assert victim["path"].startswith("/slow"), victim
            assert victim["upstream_target"] == up.address, victim
            assert victim["elapsed_ms"] >= 0
            s, v = g.admin("POST", f"/admin/processes/{pid_path(victim['pid'])}/kill",
                           body={"reason": "stuck_request"})
            assert s == 200 and v["exited"] is True, (s, v)
            assert v["exit_reason"] == "stuck_request", v
            for th in threads:
                th.join(20)
            statuses = sorted(r[0] or 0 for r in results.values())
            errors = [r for r in results.values() if r[0] != 200]
            oks = [r for r in results.values() if r[0] == 200]
            assert len(errors) == 1 and len(oks) == 2, results
            assert errors[0][0] == 502, statuses  # stopped from outside, not crashed
            assert errors[0][2] < 2.9, errors  # answered at the kill, not after the upstream
            for r in oks:
                assert r[1] == b"slow\n", r
            s, v = g.get("/admin/processes/" + pid_path(victim["pid"]))
            assert s == 404
    finally:
        up.stop()


@t.case
def supervision_tree_matches_the_configuration():
    up_a, up_b = Upstream(name="a"), Upstream(name="b")
    try:
        health = {"active": {"path": "/status/200", "interval_ms": 1000}}
        with Gw(listeners=[{"acceptors": 3}, {"acceptors": 1}],
                upstreams={"alpha": {"targets": [{"address": up_a.address}], "health": health},
                           "beta": {"targets": [{"address": up_b.address}]},
                           "gamma": {"targets": [{"address": up_b.address}],
                                     "health": health}}) as g:
            s, v = g.get("/admin/supervisors")
            assert s == 200, v
            root = v["tree"]
            assert root["name"] == "tandem_sup"
            assert root["supervisor"]["strategy"] == "one_for_one"
            ids = [c["id"] for c in root["children"]]
            assert ids == ["gw_events", "logger", "router", "upstreams_sup", "jwks_sup",
                           "listeners_sup", "admin", "gw_sampler"], ids
            by = {c["id"]: c for c in root["children"]}
            assert by["gw_events"]["type"] == "worker" and by["gw_events"]["name"] == "gw_events"
            for c in root["children"]:
                assert c["status"] == "running" and is_pid(c["pid"]), c
                assert c["restart"] == "permanent"
            assert by["router"]["type"] == "worker"
            ups = by["upstreams_sup"]
            assert ups["type"] == "supervisor"
            assert [c["id"] for c in ups["children"]] == ["alpha", "gamma"], ups["children"]
            ls = by["listeners_sup"]
            assert [c["id"] for c in ls["children"]] == ["public", "l1"], ls["children"]
            pub, l1 = ls["children"]
            assert [c["id"] for c in pub["children"]] == \
                ["conns_sup", "acceptor_1", "acceptor_2", "acceptor_3"], pub["children"]
            assert [c["id"] for c in l1["children"]] == ["conns_sup", "acceptor_1"]
            assert pub["children"][0]["supervisor"]["strategy"] == "simple_one_for_one"
            # The pids in the tree are the processes the process list shows.
            s, p = g.get("/admin/processes/" + pid_path(by["router"]["pid"]))
            assert s == 200 and p["name"] == "router"
            acc = pub["children"][1]
            s, p = g.get("/admin/processes/" + pid_path(acc["pid"]))
            assert s == 200 and p["kind"] == "acceptor", p
    finally:
        up_a.stop()
        up_b.stop()


@t.case
def restart_of_a_supervised_child_gives_a_new_pid_and_keeps_serving():
    with Gw() as g:
        s, v = g.get("/admin/supervisors")
        router = next(c for c in v["tree"]["children"] if c["id"] == "router")
        s, r = g.admin("POST", f"/admin/processes/{pid_path(router['pid'])}/restart")
        assert s == 200, (s, r)
        assert r["id"] == "router" and is_pid(r["new_pid"]) and r["new_pid"] != router["pid"]
        s, v = g.get("/admin/supervisors")
        router2 = next(c for c in v["tree"]["children"] if c["id"] == "router")
        assert router2["pid"] == r["new_pid"]
        assert public_get(g.port, "/hello")[0] == 200
        # A connection process is a simple_one_for_one child: no id to restart.
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        c.request("GET", "/hello")
        c.getresponse().read()
        s, v = g.get("/admin/processes?kind=connection")
        conn = next(p for p in v["processes"] if (p["detail"] or "").startswith("public "))
        s, r = g.admin("POST", f"/admin/processes/{pid_path(conn['pid'])}/restart")
        assert s == 409 and r["error"] == "not_restartable", (s, r)
        c.close()


@t.case
def killing_the_supervision_tree_logs_its_reason_and_the_gateway_exits_1():
    # The root process reads the reason from tandem_sup's DOWN message; an
    # ASan build of the gateway reports any read of it after it is freed.
    with Gw() as g:
        s, v = g.get("/admin/processes?name=tandem_sup")
        assert s == 200 and len(v["processes"]) == 1, (s, v)
        sup = v["processes"][0]["pid"]
        try:
            g.admin("POST", f"/admin/processes/{pid_path(sup)}/kill", body={"reason": "kill"})
        except (OSError, http.client.HTTPException):
            pass  # the admin listener belongs to the tree that was killed
        try:
            g.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the gateway did not exit: " + g.log())
        log = g.log()
        assert "tandem_sup exited: killed" in log, log
        # Nothing is left serving: the service manager is told to restart it.
        assert g.proc.returncode == 1, (g.proc.returncode, log)


# ---- tokens --------------------------------------------------------------------------


@t.case
def public_admin_address_without_a_token_refuses_to_start_naming_the_variable():
    port = free_port()
    os.environ.pop("TANDEM_TEST_ADMIN_TOKEN", None)
    g = Gw(admin={"address": f"0.0.0.0:{port}", "token_env": "TANDEM_TEST_ADMIN_TOKEN"},
           wait=False)
    try:
        rc = g.proc.wait(15)
        assert rc != 0, rc
        assert "TANDEM_TEST_ADMIN_TOKEN" in g.log(), g.log()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        g.close()


@t.case
def token_is_required_on_a_public_admin_address_and_compared_exactly():
    port = free_port()
    token = "t0ken-" + os.urandom(8).hex()
    with Gw(admin={"address": f"0.0.0.0:{port}", "token_env": "TANDEM_TEST_ADMIN_TOKEN"},
            env={"TANDEM_TEST_ADMIN_TOKEN": token}, wait=False) as g:
        g.admin_port = port
        wait_port(port)
        wait_port(g.port)
        s, v = g.get("/admin/system")
        assert s == 401 and v["error"] == "unauthorized" and "detail" in v, (s, v)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/admin/system")
        r = c.getresponse()
        r.read()
        assert r.status == 401 and r.getheader("www-authenticate", "").startswith("Bearer"), \
            r.getheaders()
        c.close()
        s, v = g.get("/admin/system", token=token[:-1] + "x")
        assert s == 401, s
        s, v = g.get("/admin/system", token=token + "x")
        assert s == 401, s
        s, v = g.get("/metrics")
        assert s == 401, s
        s, v = g.get("/admin/system", token=token)
        assert s == 200, (s, v)
        s, v = g.get("/healthz")
        assert s == 200, s  # probes need no token
        assert token not in g.log()


def admin_status_with_fields(port, fields):
    """GET /admin/system with the (name, value) fields in order, repeats
    included; returns the status."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.putrequest("GET", "/admin/system", skip_host=True)
    for name, value in fields:
        c.putheader(name, value)
    c.endheaders()
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


@t.case
def token_repeated_out_to_a_multiple_of_256_bytes_longer_is_refused():
    # Cycling the token's own bytes matches it byte for byte; only a length
    # difference whose low byte is zero is left to tell the two apart.
    token = "t0ken-" + os.urandom(8).hex()
    with Gw(admin={"token_env": "TANDEM_TEST_ADMIN_TOKEN"},
            env={"TANDEM_TEST_ADMIN_TOKEN": token}) as g:
        s, v = g.get("/admin/system", token=token)
        assert s == 200, (s, v)
        for extra in (256, 512, 4096):
            cycled = (token * (2 + extra // len(token)))[:len(token) + extra]
            s, v = g.get("/admin/system", token=cycled)
            assert s == 401 and v["error"] == "unauthorized", (extra, s, v)


@t.case
def two_authorization_fields_get_401_even_when_one_is_valid():
    token = "t0ken-" + os.urandom(8).hex()
    with Gw(admin={"token_env": "TANDEM_TEST_ADMIN_TOKEN"},
            env={"TANDEM_TEST_ADMIN_TOKEN": token}) as g:
        host = ("Host", f"127.0.0.1:{g.admin_port}")
        good = ("Authorization", "Bearer " + token)
        bad = ("Authorization", "Bearer wrong")
        assert admin_status_with_fields(g.admin_port, [host, good]) == 200
        for pair in ([good, bad], [bad, good], [good, good]):
            assert admin_status_with_fields(g.admin_port, [host, *pair]) == 401, pair


# ---- metrics ---------------------------------------------------------------------------


@t.case
def metrics_parse_with_prometheus_client_and_count_what_was_done():
    up = Upstream()
    try:
        with Gw(routes=[HELLO, api_route()],
                upstreams={"up": {"targets": [{"address": up.address}]},
                           "dead": {"targets": [{"address": f"127.0.0.1:{free_port()}"}],
                                    "retries": 0}}) as g:
            for _ in range(7):
                assert public_get(g.port, "/hello")[0] == 200
            for _ in range(3):
                assert public_get(g.port, "/api/status/503")[0] == 503
            assert public_get(g.port, "/nowhere")[0] == 404
            assert g.admin("POST", "/admin/routes/reload")[0] == 200
            s, text = g.get("/metrics")
            assert s == 200
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            req = fams["tandem_requests"]
            assert req.type == "counter"

            def val(fam, name, **labels):
                for smp in fam.samples:
                    if smp.name == name and all(smp.labels.get(k) == v
                                                for k, v in labels.items()):
                        return smp.value
                return None

            assert val(req, "tandem_requests_total", route="hello", **{"class": "2xx"}) == 7
            assert val(req, "tandem_requests_total", route="api", **{"class": "5xx"}) == 3
            assert val(req, "tandem_requests_total", route="_none", **{"class": "4xx"}) == 1
            h = fams["tandem_request_duration_seconds"]
            assert h.type == "histogram"
            assert val(h, "tandem_request_duration_seconds_count", route="hello") == 7
            assert val(h, "tandem_request_duration_seconds_bucket", route="hello",
                       le="+Inf") == 7
            buckets = [s for s in h.samples if s.name.endswith("_bucket")
                       and s.labels["route"] == "hello"]
            vals = [s.value for s in buckets]
            assert vals == sorted(vals), vals
            for name in ("tandem_processes", "tandem_scheduler_run_queue",
                         "tandem_scheduler_utilisation", "tandem_memory_bytes",
                         "tandem_route_reloads", "tandem_requests_in_flight",
                         "tandem_connections", "tandem_upstream_target_healthy"):
                assert name in fams, (name, sorted(fams))
            assert val(fams["tandem_processes"], "tandem_processes") > 5
            assert val(fams["tandem_route_reloads"], "tandem_route_reloads_total",
                       outcome="ok") >= 1
    finally:
        up.stop()


def event_counts(g):
    """tandem_events_total by type, from /metrics."""
    s, text = g.get("/metrics")
    assert s == 200
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    fam = fams["tandem_events"]
    assert fam.type == "counter"
    return {smp.labels["type"]: smp.value for smp in fam.samples
            if smp.name == "tandem_events_total"}


def wait_event_counts(g, pred, timeout=10):
    """The counts once pred(counts) holds, or the last ones after timeout."""
    deadline = time.time() + timeout
    while True:
        ev = event_counts(g)
        if pred(ev) or time.time() > deadline:
            return ev
        time.sleep(0.05)


@t.case
def event_stream_counts_listener_starts_reloads_and_ejections():
    dead = f"127.0.0.1:{free_port()}"
    with Gw(routes=[HELLO, api_route("dead")], listeners=[{}, {}],
            upstreams={"dead": {"targets": [{"address": dead}], "retries": 0,
                                "health": {"passive": {"failures": 1, "eject_ms": 60000}}}}) as g:
        # Two public listeners and the admin listener; the table loaded at start.
        ev = wait_event_counts(g, lambda e: e["listener_started"] >= 3
                               and e["routes_reloaded"] >= 1)
        assert ev["listener_started"] == 3, ev
        assert ev["target_ejected"] == 0 and ev["target_readmitted"] == 0, ev
        reloads = ev["routes_reloaded"]
        assert g.admin("POST", "/admin/routes/reload")[0] == 200
        assert public_get(g.port, "/api/x")[0] == 502
        ev = wait_event_counts(g, lambda e: e["routes_reloaded"] > reloads
                               and e["target_ejected"] >= 1)
        assert ev["routes_reloaded"] == reloads + 1, ev
        assert ev["target_ejected"] == 1, ev
        assert ev["listener_started"] == 3, ev


@t.case
def event_stream_counts_a_health_check_ejection_and_the_readmission():
    port = free_port()
    health = {"active": {"path": "/status/200", "interval_ms": 100, "timeout_ms": 500}}
    up = None
    try:
        with Gw(upstreams={"u": {"targets": [{"address": f"127.0.0.1:{port}"}],
                                 "health": health}}) as g:
            ev = wait_event_counts(g, lambda e: e["target_ejected"] >= 1)
            assert ev["target_ejected"] == 1 and ev["target_readmitted"] == 0, ev
            up = Upstream(port=port)
            ev = wait_event_counts(g, lambda e: e["target_readmitted"] >= 1)
            assert ev["target_readmitted"] == 1, ev
            time.sleep(0.3)  # a few more passing checks announce nothing more
            ev = event_counts(g)
            assert ev["target_ejected"] == 1 and ev["target_readmitted"] == 1, ev
    finally:
        if up:
            up.stop()


# ---- browsers are kept out ----------------------------------------------------------------


def raw_admin(port, text, timeout=10):
    """Sends `text` (a whole request) and returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(text.encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def routes_version(g):
    s, v = g.get("/admin/routes")
    assert s == 200, (s, v)
    return v["version"]


@t.case
def dns_rebinding_host_is_refused_and_changes_nothing():
    evil = {"routes": [{"name": "evil", "match": {"path_prefix": "/"},
                        "respond": {"status": 200, "body": "<script>evil()</script>",
                                    "headers": {"content-type": "text/html"}}}]}
    with Gw() as g:
        v0 = routes_version(g)
        for host in (f"attacker.example:{g.admin_port}", "evil.test", f"evil.test:{g.admin_port}",
                     f"localhost.attacker.example:{g.admin_port}", f"localhost:{g.admin_port + 1}"):
            s, v = g.admin("PUT", "/admin/routes", body=evil, headers={"Host": host})
            assert s == 421 and v["error"] == "misdirected_request", (host, s, v)
            s, v = g.admin("POST", "/admin/routes/reload", headers={"Host": host})
            assert s == 421, (host, s, v)
            s, v = g.get("/admin/system", headers={"Host": host})
            assert s == 421, (host, s, v)
            s, v = g.get("/healthz", headers={"Host": host})
            assert s == 421, (host, s, v)
        # An absolute-form target names the host too.
        body = json.dumps(evil)
        s, _ = raw_admin(g.admin_port,
                         f"PUT http://evil.test:{g.admin_port}/admin/routes HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{g.admin_port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}")
        assert s == 421, s
        assert routes_version(g) == v0
        s, v = g.get("/admin/routes")
        assert [r["name"] for r in v["routes"]] == ["hello"], v
        assert public_get(g.port, "/hello") == (200, b"hello\n")
        assert public_get(g.port, "/")[0] == 404
        # The listener's own names still work.
        for host in (f"127.0.0.1:{g.admin_port}", f"localhost:{g.admin_port}",
                     f"LOCALHOST:{g.admin_port}"):
            s, v = g.get("/admin/system", headers={"Host": host})
            assert s == 200, (host, s, v)


def sup_pid(g):
    s, v = g.get("/admin/supervisors")
    assert s == 200, (s, v)
    assert v["tree"]["name"] == "tandem_sup"
    return v["tree"]["pid"]


@t.case
def cross_site_simple_post_cannot_kill_and_foreign_origins_are_refused():
    with Gw() as g:
        pid = sup_pid(g)
        kill = f"/admin/processes/{pid_path(pid)}/kill"
        evil = "http://evil.example"
        cases = [
            # what a cross-site form or no-cors fetch can send without asking
            ({"Content-Type": "text/plain", "Origin": evil}, '{"reason": "x"}', 403),
            ({"Origin": evil}, None, 403),
            ({"Origin": "null", "Content-Type": "text/plain"}, '{"reason": "x"}', 403),
            ({"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, "{}", 403),
            ({"Content-Type": "application/x-www-form-urlencoded", "Origin": evil}, "a=b", 403),
            # a body that is not said to be JSON, whatever its origin
            ({"Content-Type": "text/plain"}, '{"reason": "x"}', 415),
            ({"Content-Type": None}, '{"reason": "x"}', 415),
            ({"Content-Type": "multipart/form-data; boundary=x"}, '{"reason": "x"}', 415),
        ]
        for headers, body, want in cases:
            s, v = g.admin("POST", kill, body=body, headers=headers)
            assert s == want, (headers, s, v)
            assert v["error"] == ("cross_origin" if want == 403 else "unsupported_media_type")
        s, v = g.get("/admin/system", headers={"Origin": evil})
        assert s == 403 and v["error"] == "cross_origin", (s, v)
        s, v = g.get("/admin/system", headers={"Origin": f"http://127.0.0.1:{g.admin_port}"})
        assert s == 200, (s, v)
        time.sleep(0.3)
        assert g.proc.poll() is None, g.log()
        assert sup_pid(g) == pid
        s, v = g.get("/admin/processes/" + pid_path(pid))
        assert s == 200 and v["pid"] == pid, (s, v)
        assert public_get(g.port, "/hello") == (200, b"hello\n")


@t.case
def allowed_hosts_and_ctl_pass_the_host_check():
    with Gw(admin={"allowed_hosts": ["Admin.Test", "tunnel.test:19901"]}) as g:
        for host in ("admin.test", f"admin.test:{g.admin_port}", "ADMIN.TEST:443",
                     "tunnel.test:19901", f"[::1]:{g.admin_port}"):
            s, v = g.get("/admin/system", headers={"Host": host})
            assert s == 200, (host, s, v)
        for host in ("tunnel.test:19902", "tunnel.test", "test", "evil.admin.test"):
            s, v = g.get("/admin/system", headers={"Host": host})
            assert s == 421, (host, s, v)
        # Behind a TLS proxy under an allowed name, the page's origin is https.
        s, v = g.admin("POST", "/admin/routes/reload",
                       headers={"Host": "admin.test", "Origin": "https://admin.test"})
        assert s == 200, (s, v)
        for host, origin in (("admin.test", "https://evil.test"),
                             (f"127.0.0.1:{g.admin_port}", f"https://127.0.0.1:{g.admin_port}")):
            s, v = g.admin("POST", "/admin/routes/reload", headers={"Host": host, "Origin": origin})
            assert s == 403 and v["error"] == "cross_origin", (host, origin, s, v)
        if ctl_available():
            r = g.ctl("health")
            assert r.returncode == 0, r
            r = g.ctl("reload")
            assert r.returncode == 0, r
            r = g.ctl("rollback", "987654")  # a JSON body
            assert r.returncode == 1 and "version_not_found" in r.stderr, r
            r = g.ctl("--admin", f"localhost:{g.admin_port}", "system")
            assert r.returncode == 0, r


@t.case
def public_admin_takes_any_ip_host_on_any_port_but_no_foreign_name():
    port = free_port()
    token = "t0ken-" + os.urandom(8).hex()
    with Gw(admin={"address": f"0.0.0.0:{port}", "token_env": "TANDEM_TEST_ADMIN_TOKEN"},
            env={"TANDEM_TEST_ADMIN_TOKEN": token}, wait=False) as g:
        g.admin_port = port
        wait_port(port)
        # docker -p 127.0.0.1:19901:9901: the client writes the published port
        for host in ("127.0.0.1:19901", f"127.0.0.1:{port}", "10.0.0.7", f"localhost:{port}"):
            s, v = g.get("/admin/system", token=token, headers={"Host": host})
            assert s == 200, (host, s, v)
        # A name not listed: refused before the token is even looked at,
        # unless the request carries the valid token (a page rebinding a name
        # cannot), as Prometheus scraping through a service name does.
        for host in (f"attacker.example:{port}", "evil.test", "localhost:19901",
                     "tandem.monitoring.svc:9901"):
            s, v = g.get("/admin/system", headers={"Host": host})
            assert s == 421, (host, s, v)
            s, v = g.get("/admin/system", token="wrong", headers={"Host": host})
            assert s == 421, (host, s, v)
            s, v = g.get("/metrics", token=token, headers={"Host": host})
            assert s == 200, (host, s, v)
            s, v = g.get("/admin/system", token=token,
                         headers={"Host": host, "Origin": "http://other.example"})
            assert s == 403 and v["error"] == "cross_origin", (host, s, v)
        if ctl_available():
            r = g.ctl("health")  # the container's HEALTHCHECK
            assert r.returncode == 0, r


def head_answer(port, head, timeout=5):
    """Sends a request head (and nothing of its body); returns everything the
    admin listener sends back until it closes the connection, and whether it
    did close it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode())
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data, True
                data += chunk
        except socket.timeout:
            return data, False


@t.case
def refused_admin_request_is_answered_from_its_head_without_100_continue():
    with Gw() as g:
        own = f"127.0.0.1:{g.admin_port}"
        cases = [
            (f"Host: evil.test:{g.admin_port}\r\nContent-Type: application/json\r\n", 421),
            (f"Host: {own}\r\nOrigin: http://evil.test\r\nContent-Type: application/json\r\n",
             403),
            (f"Host: {own}\r\nContent-Type: text/plain\r\n", 415),
        ]
        for fields, want in cases:
            head = ("POST /admin/routes/validate HTTP/1.1\r\n" + fields +
                    "Content-Length: 4000000\r\nExpect: 100-continue\r\n\r\n")
            data, closed = head_answer(g.admin_port, head)
            assert data.startswith(b"HTTP/1.1 %d " % want), (fields, data[:200])
            assert b"100 Continue" not in data, (fields, data[:200])
            # Answered without waiting for the body, which is never read:
            # the connection closes after the answer.
            assert closed, (fields, data[:200])
            assert b"connection: close" in data.lower(), data[:300]
        # An admitted request with Expect gets its 100 Continue, then its
        # answer once the body is sent.
        body = b'{"routes": []}'
        with socket.create_connection(("127.0.0.1", g.admin_port), timeout=5) as s:
            s.sendall((f"POST /admin/routes/validate HTTP/1.1\r\nHost: {own}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                       "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode())
            first = s.recv(65536)
            assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first[:200]
            s.sendall(body)
            rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]
        assert public_get(g.port, "/hello") == (200, b"hello\n")


@t.case
def token_env_naming_an_unset_or_empty_variable_refuses_to_start():
    for env in ({}, {"TANDEM_TEST_UNSET_ADMIN_TOKEN": ""}):
        os.environ.pop("TANDEM_TEST_UNSET_ADMIN_TOKEN", None)
        g = Gw(admin={"token_env": "TANDEM_TEST_UNSET_ADMIN_TOKEN"}, env=env, wait=False)
        try:
            rc = g.proc.wait(15)
            assert rc != 0, rc
            log = g.log()
            assert "TANDEM_TEST_UNSET_ADMIN_TOKEN (admin.token_env) is " + \
                ("empty" if env else "not set") in log, log
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", g.admin_port)) != 0
            r = subprocess.run([tandem_bin(), "check", "-c", g.config], env=g.env,
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 1, r
            assert "TANDEM_TEST_UNSET_ADMIN_TOKEN (admin.token_env) is" in r.stderr, r
            assert "will not start" in r.stderr, r
        finally:
            g.close()


@t.case
def deep_json_bodies_get_400_and_the_gateway_survives():
    deep = "[" * 3000 + "]" * 3000
    with Gw() as g:
        v0 = routes_version(g)
        pid = sup_pid(g)
        for method, path in (("POST", "/admin/routes/rollback"),
                             ("POST", f"/admin/processes/{pid_path(pid)}/kill"),
                             ("PUT", "/admin/routes"), ("POST", "/admin/routes/validate")):
            s, v = g.admin(method, path, body=deep, timeout=10)
            assert s == 400 and v["error"] == "json_too_deep", (path, s, v)
            assert v["detail"]["limit"] == 64 and v["detail"]["column"] == 65, v
        s, v = g.admin("POST", "/admin/routes/rollback", body="[" * 64 + "]" * 64)
        assert s == 400 and v["error"] == "bad_request", (s, v)
        assert g.proc.poll() is None, g.log()
        assert sup_pid(g) == pid
        assert routes_version(g) == v0
        assert public_get(g.port, "/hello") == (200, b"hello\n")


@t.case
def deep_route_file_is_refused_with_its_position_on_reload():
    with Gw() as g:
        v0 = routes_version(g)
        with open(os.path.join(g.dir, "routes", "main.json"), "w") as f:
            f.write('{"routes":\n  ' + "[" * 3000 + "]" * 3000 + "}")
        s, v = g.admin("POST", "/admin/routes/reload")
        assert s == 422 and v["error"] == "routes_refused", (s, v)
        e = v["errors"][0]
        assert e["message"] == "JSON nested deeper than 64 levels", e
        assert (e["line"], e["column"]) == (2, 3 + 63), e
        assert g.proc.poll() is None, g.log()
        assert routes_version(g) == v0
        assert public_get(g.port, "/hello") == (200, b"hello\n")


# ---- tandem ctl --------------------------------------------------------------------------


@t.case
def ctl_commands_print_tables_and_json():
    if not ctl_available():
        print("SKIP ctl_commands_print_tables_and_json: `tandem ctl` is not dispatched by "
              "gateway/src/cli.c yet", flush=True)
        return
    up = Upstream()
    try:
        with Gw(routes=[HELLO, api_route()],
                upstreams={"up": {"targets": [{"address": up.address}]}}) as g:
            r = g.ctl("health")
            assert r.returncode == 0 and r.stdout.strip() == "ok", r
            r = g.ctl("ps", "--sort", "memory", "--limit", "5")
            assert r.returncode == 0, r
            lines = r.stdout.splitlines()
            assert lines[1].split()[:8] == ["PID", "NAME", "KIND", "STATUS", "MAILBOX",
                                            "REDUCTIONS", "MEMORY", "AGE"], lines
            assert len(lines) == 2 + 5, lines
            r = g.ctl("ps", "--json", "--kind", "supervisor")
            v = json.loads(r.stdout)
            assert all(p["kind"] == "supervisor" for p in v["processes"]) and v["matched"] >= 4
            r = g.ctl("tree")
            assert r.returncode == 0 and "tandem_sup" in r.stdout and "listeners_sup" in r.stdout
            r = g.ctl("system")
            assert r.returncode == 0 and "version" in r.stdout and "public" in r.stdout, r
            r = g.ctl("routes")
            assert r.returncode == 0 and "hello" in r.stdout, r
            r = g.ctl("upstreams")
            assert r.returncode == 0 and up.address in r.stdout, r
            r = g.ctl("reload")
            assert r.returncode == 0, r
            r = g.ctl("--json", "system")
            assert json.loads(r.stdout)["version"]
            r = g.ctl("rollback", "987654")
            assert r.returncode == 1 and "version_not_found" in r.stderr, r
            s, v = g.get("/admin/processes?name=logger")
            logger = v["processes"][0]
            r = g.ctl("kill", "0.999999.999999")
            assert r.returncode == 1 and "no_such_process" in r.stderr, r
            r = g.ctl("kill")
            assert r.returncode == 2
            r = g.ctl("restart", logger["pid"])
            assert r.returncode == 0 and "restarted" in r.stdout, r
            r = g.ctl("--admin", f"127.0.0.1:{free_port()}", "health")
            assert r.returncode == 1, r
    finally:
        up.stop()


@t.case
def ctl_uses_the_token_from_the_configured_variable():
    if not ctl_available():
        print("SKIP ctl_uses_the_token_from_the_configured_variable: `tandem ctl` is not "
              "dispatched by gateway/src/cli.c yet", flush=True)
        return
    port = free_port()
    token = "ctl-" + os.urandom(6).hex()
    with Gw(admin={"address": f"0.0.0.0:{port}", "token_env": "TANDEM_TEST_ADMIN_TOKEN"},
            env={"TANDEM_TEST_ADMIN_TOKEN": token}, wait=False) as g:
        g.admin_port = port
        wait_port(port)
        r = g.ctl("system")
        assert r.returncode == 0, r
        r = g.ctl("system", env={"TANDEM_TEST_ADMIN_TOKEN": "wrong"})
        assert r.returncode == 1 and "401" in r.stderr, r
        r = g.ctl("--token", token, "system", env={"TANDEM_TEST_ADMIN_TOKEN": "wrong"})
        assert r.returncode == 0, r


t.finish()
