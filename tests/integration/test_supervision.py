#!/usr/bin/env python3
"""The shape of tandem_sup under crashes, against the real binary: killing
any one of its children under keep-alive traffic restarts that child alone
(every other pid in the tree stays), drops no client connection (except
those the killed child itself owns: the connections of listeners_sup), and
leaves the tree whole; a tandem_sup whose children crash more often than its
intensity allows makes the gateway log one line and exit 1."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, Upstream, free_port  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("supervision")

ROUTES = [
    {"name": "hello", "match": {"path": "/hello"},
     "respond": {"status": 200, "body": "hello\n", "headers": {"content-type": "text/plain"}}},
    {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up", "strip_prefix": True},
]


def pid_path(pid):
    return pid.replace("<", "").replace(">", "")


def admin(g, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=timeout)
    h = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def tree(g):
    """/admin/supervisors, retried while the admin listener restarts."""
    end = time.time() + 10
    while True:
        try:
            s, v = admin(g, "GET", "/admin/supervisors")
            if s == 200:
                return v["tree"]
        except (OSError, http.client.HTTPException):
            if time.time() > end or g.proc.poll() is not None:
                raise AssertionError("no answer from the admin API: " + g.log())
        time.sleep(0.05)


def flatten(node, prefix=""):
    """{path of ids: pid} for every static child in the tree below node
    (the dynamic ones, connections, come and go with the clients)."""
    out = {}
    for c in node.get("children", []):
        if c["id"] is None:
            continue
        p = prefix + "/" + c["id"]
        out[p] = c["pid"]
        out.update(flatten(c, p))
    return out


def whole(node):
    """Every permanent child of every supervisor running with a pid (a
    transient one that finished, workflows' recovery, stays finished)."""
    for c in node.get("children", []):
        if c["restart"] == "permanent" and (c["status"] != "running" or not c["pid"]):
            return False
        if not whole(c):
            return False
    return True


class Clients:
    """Keep-alive clients, each on one connection for its whole life,
    asking in turn for a direct answer and a proxied one. A connection the
    gateway closes, or any failed request, is recorded."""

    def __init__(self, port, n=4):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.problems = []
        self.done = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(n)]
        for th in self.threads:
            th.start()

    def run(self, i):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.connect()
        sock = c.sock
        k = 0
        while not self.stop.is_set():
            path = "/hello" if k % 2 == 0 else "/api/status/200"
            k += 1
            try:
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"status {r.status} for {path}")
                if c.sock is not sock:
                    raise RuntimeError("the gateway closed the connection")
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.problems.append((i, path, repr(e)))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    c.connect()
                except OSError:
                    time.sleep(0.05)
                sock = c.sock
                continue
            with self.lock:
                self.done += 1
        c.close()

    def count(self):
        with self.lock:
            return self.done, list(self.problems)

    def close(self):
        self.stop.set()
        for th in self.threads:
            th.join(15)


class Env:
    """A gateway whose tree has every kind of top-level child this
    configuration can give it without an outside service: two listeners
    (one TLS, for the certificate reloader), an upstream with active health
    checks, workflows (an empty directory) and the admin listener."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-sup-")
        f = CertFactory(self.dir)
        leaf = f.leaf(f.ca("Supervision Test CA"), ["localhost"], kind="ec")
        os.makedirs(os.path.join(self.dir, "workflows"))
        self.up = Upstream()
        tls = {"name": "tls", "address": f"127.0.0.1:{free_port()}",
               "tls": {"certificates": [{"cert": leaf.cert, "key": leaf.key}]}}
        health = {"active": {"path": "/status/200", "interval_ms": 500}}
        try:
            self.gw = Gateway(ROUTES, {"up": {"targets": [{"address": self.up.address}],
                                              "health": health}},
                              more_listeners=[tls],
                              extra={"workflows": {"dir": os.path.join(self.dir, "workflows"),
                                                   "journal": {"data_dir":
                                                               os.path.join(self.dir, "data")}}})
        except BaseException:
            self.up.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.gw.close()
        self.up.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def kill(g, pid):
    try:
        admin(g, "POST", f"/admin/processes/{pid_path(pid)}/kill", {"reason": "kill"})
    except (OSError, http.client.HTTPException):
        pass  # killing the admin listener's supervisor ends this very request


def kill_and_wait(g, cid):
    """Kills tandem_sup's child `cid`; returns the trees before and after,
    once the child runs again under a new pid and the tree is whole. Waits
    first until tandem_sup's recent restarts leave room for two more (a
    supervisor child's restart may be retried once, while its old
    children still hold their names), so that a run of kills never
    exceeds its intensity, which has a test of its own."""
    end = time.time() + 15
    while tree(g)["supervisor"]["restarts_in_period"] > 2:
        assert time.time() < end
        time.sleep(0.2)
    before = tree(g)
    old = next(c for c in before["children"] if c["id"] == cid)["pid"]
    kill(g, old)
    end = time.time() + 10
    while True:
        after = tree(g)
        new = next(c for c in after["children"] if c["id"] == cid)["pid"]
        if new and new != old and whole(after):
            return before, after
        assert time.time() < end, (cid, after)
        time.sleep(0.05)


EXPECTED = ["gw_events", "logger", "router", "upstreams_sup", "workflows_sup", "jwks_sup",
            "listeners_sup", "admin", "tls_reloader", "gw_sampler"]


@t.case
def killing_any_top_level_child_restarts_it_alone_and_drops_no_connection():
    with Env() as e:
        g = e.gw
        root = tree(g)
        assert root["supervisor"]["strategy"] == "one_for_one", root["supervisor"]
        assert [c["id"] for c in root["children"]] == EXPECTED, root["children"]
        clients = Clients(g.port)
        try:
            time.sleep(0.5)
            for cid in EXPECTED:
                if cid == "listeners_sup":
                    continue  # owns the client connections: below
                done0, _ = clients.count()
                before, after = kill_and_wait(g, cid)
                b, a = flatten(before), flatten(after)
                moved = sorted(p for p in b if a.get(p) != b[p] and
                               not p.startswith("/" + cid + "/") and p != "/" + cid)
                assert not moved, (cid, moved)
                assert a["/" + cid] != b["/" + cid]
                # The clients carry on over the same connections.
                time.sleep(0.3)
                done1, problems = clients.count()
                assert not problems, (cid, problems)
                assert done1 > done0, (cid, done0, done1)
        finally:
            clients.close()
        done, problems = clients.count()
        assert not problems and done > 0, problems
        assert g.proc.poll() is None, g.log()


@t.case
def killing_listeners_sup_restarts_only_the_listeners_and_serves_again():
    # Its subtree holds the connections: those end with it, and nothing
    # else is restarted.
    with Env() as e:
        g = e.gw
        before, after = kill_and_wait(g, "listeners_sup")
        b, a = flatten(before), flatten(after)
        moved = sorted(p for p in b if a.get(p) != b[p] and not p.startswith("/listeners_sup"))
        assert not moved, moved
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        c.request("GET", "/api/status/200")
        assert c.getresponse().status == 200
        c.close()


@t.case
def exceeding_tandem_sups_intensity_logs_one_line_and_exits_1():
    with Env() as e:
        g = e.gw
        root = tree(g)
        assert root["supervisor"]["intensity"] == 5 and root["supervisor"]["period_s"] == 10
        # Six crashes of the router within a few seconds: five restarts are
        # allowed, the sixth crash is one too many.
        for i in range(6):
            router = next(c for c in tree(g)["children"] if c["id"] == "router")
            kill(g, router["pid"])
            if i < 5:
                end = time.time() + 10
                while next(c for c in tree(g)["children"]
                           if c["id"] == "router")["pid"] in (router["pid"], None):
                    assert time.time() < end
                    time.sleep(0.02)
        try:
            g.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the gateway did not exit: " + g.log())
        log = g.log()
        assert g.proc.returncode == 1, (g.proc.returncode, log)
        lines = [ln for ln in log.splitlines() if "tandem_sup exited" in ln]
        assert len(lines) == 1, lines
        assert "more than 5 restarts of its children within 10 s" in lines[0], lines
        assert "exiting with status 1" in lines[0], lines
        assert "draining" not in log, log


if __name__ == "__main__":
    t.finish()
