#!/usr/bin/python3
"""Route reloads against the real binary: editing files in the routes
directory (add, change, remove, a broken file, the write-then-rename editor
pattern), SIGHUP, and the admin API (reload, PUT, validate, rollback).

The gateway runs on ports picked free for this run, with a config and a
routes directory in a temporary folder. Routes answer with `respond`, so the
checks depend on the listener, the router and the admin API, not on
proxying. If the gateway does not come up (no /healthz on the admin port),
the script says which checks could not run and exits 77 (skipped)."""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, tandem_bin  # noqa: E402

t = TestRun("reload")
SETTLE = 3.0  # seconds allowed for a file change to be served


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def respond(name, path, body, status=200):
    return {"name": name, "match": {"path": path},
            "respond": {"status": status, "body": body,
                        "headers": {"content-type": "text/plain"}}}


class Gw:
    def __init__(self, workflows=True):
        self.dir = tempfile.mkdtemp(prefix="tandem-reload-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.routes = os.path.join(self.dir, "routes")
        os.makedirs(self.routes)
        self.workflows = os.path.join(self.dir, "workflows")
        os.makedirs(self.workflows)
        self.port = free_port()
        self.admin_port = free_port()
        self.write("main.json", {"routes": [respond("one", "/one", "one\n")]})
        cfg = {
            "runtime": {"schedulers": 2},
            "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
            "admin": {"address": f"127.0.0.1:{self.admin_port}"},
            "upstreams": {"backend": {"targets": [{"address": f"127.0.0.1:{free_port()}"}]}},
            "routes": "routes",
        }
        if workflows:
            cfg["workflows"] = {"dir": "workflows"}
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.log = open(os.path.join(self.dir, "tandem.log"), "w+")
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        atexit.register(self.kill)

    def write(self, name, content):
        with open(os.path.join(self.routes, name), "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2))

    def remove(self, name):
        os.unlink(os.path.join(self.routes, name))

    def write_wf(self, name, content):
        with open(os.path.join(self.workflows, name), "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2))

    def request(self, method, path, body=None, admin=False, timeout=5):
        port = self.admin_port if admin else self.port
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            data = None
            headers = {}
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                headers["content-type"] = "application/json"
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def admin(self, method, path, body=None):
        status, text = self.request(method, path, body, admin=True)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def serving(self, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                if self.request("GET", "/healthz", admin=True, timeout=1)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def status(self):
        code, body = self.admin("GET", "/admin/routes")
        assert code == 200, (code, body)
        return body

    def version(self):
        return self.status()["version"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def tail(self, n=30):
        self.log.flush()
        self.log.seek(0)
        return "".join(self.log.readlines()[-n:])


def until(fn, timeout=SETTLE, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.01)
    raise AssertionError(f"{what} not true after {timeout}s (last: {last!r})")


def get(path):
    return g.request("GET", path)


g = Gw()


@t.case
def files_add_change_and_remove_a_route():
    assert get("/one") == (200, "one\n")
    g.write("extra.json", {"routes": [respond("two", "/two", "two\n")]})
    until(lambda: get("/two") == (200, "two\n"), what="added route /two served")
    g.write("extra.json", {"routes": [respond("two", "/two", "two changed\n")]})
    until(lambda: get("/two") == (200, "two changed\n"), what="changed route /two served")
    g.remove("extra.json")
    until(lambda: get("/two")[0] == 404, what="removed route /two gone")
    assert get("/one") == (200, "one\n")


@t.case
def a_broken_file_keeps_the_old_routes_and_reports_its_position():
    before = g.status()
    g.write("broken.json", '{"routes": [\n'
                           '  {"name": "b", "match": {"path": "/b"},\n'
                           '   "upstream": "bakend"}]}\n')
    st = until(lambda: (lambda s: s if s["reloads_failed"] > before["reloads_failed"] else None)(
        g.status()), what="a failed reload recorded")
    last = st["last_reload"]
    assert last["outcome"] == "error", last
    err = last["errors"][0]
    assert err["file"].endswith("broken.json"), err
    assert (err["line"], err["column"]) == (3, 16), err
    assert err["path"] == "routes[0].upstream", err
    assert "bakend" in err["message"] and "backend" in err["message"], err
    assert st["version"] == before["version"]
    assert get("/one") == (200, "one\n")
    assert "broken.json:3:16" in g.tail(200)  # logged with its position
    g.remove("broken.json")
    until(lambda: g.status()["last_reload"]["outcome"] == "ok", what="reload after the fix")


def workflow(name, path="/pay"):
    return {"name": name, "input": {"amount": "integer"},
            "steps": [{"name": "pay", "upstream": "backend",
                       "request": {"path": path, "body": {"amount": "${input.amount}"}}}]}


def route_names():
    return {r["name"]: r.get("workflow") for r in g.status()["routes"]}


@t.case
def workflows_are_read_and_reloaded_with_the_routes():
    v = g.version()
    g.write_wf("pay.json", {"workflows": [workflow("pay")]})
    until(lambda: g.version() > v, what="a reload after a workflow file was written")
    v = g.version()
    g.write("wf.json", {"routes": [{"name": "pay", "match": {"path": "/pay"},
                                    "workflow": "pay"}]})
    until(lambda: route_names().get("pay") == "pay", what="the route naming the workflow served")
    # A route set replaced through the admin API keeps the definitions.
    code, body = g.admin("POST", "/admin/routes/validate", {"routes": [
        {"name": "p", "match": {"path": "/p"}, "workflow": "pay"}]})
    assert code == 200 and body["outcome"] == "ok", (code, body)
    code, body = g.admin("POST", "/admin/routes/validate", {"routes": [
        {"name": "p", "match": {"path": "/p"}, "workflow": "pya"}]})
    assert 400 <= code < 500, (code, body)
    assert 'did you mean \"pay\"' in body["errors"][0]["message"], body
    g.remove("wf.json")
    until(lambda: "pay" not in route_names(), what="the workflow route removed")


@t.case
def a_broken_workflow_file_keeps_the_old_routes_and_reports_its_position():
    g.write("wf.json", {"routes": [{"name": "pay", "match": {"path": "/pay"},
                                    "workflow": "pay"}]})
    until(lambda: route_names().get("pay") == "pay", what="the workflow route served")
    before = g.status()
    g.write_wf("pay.json", '{"workflows": [\n'
                           '  {"name": "pay", "steps": [{"name": "pay",\n'
                           '   "upstream": "bakend", "request": {"path": "/x"}}]}]}\n')
    st = until(lambda: (lambda s: s if s["reloads_failed"] > before["reloads_failed"] else None)(
        g.status()), what="a failed reload recorded")
    err = st["last_reload"]["errors"][0]
    assert err["file"].endswith("workflows/pay.json"), err
    assert (err["line"], err["column"]) == (3, 16), err
    assert err["path"] == "workflows[0].steps[0].upstream", err
    assert 'did you mean "backend"?' in err["message"], err
    assert st["version"] == before["version"]
    assert route_names().get("pay") == "pay"
    g.write_wf("pay.json", {"workflows": [workflow("pay")]})
    until(lambda: g.status()["last_reload"]["outcome"] == "ok", what="reload after the fix")
    g.remove("wf.json")
    os.unlink(os.path.join(g.workflows, "pay.json"))
    until(lambda: "pay" not in route_names(), what="the workflow route removed")


@t.case
def workflows_added_to_a_gateway_started_without_them_are_refused_with_the_reason():
    """Without a "workflows" section and without definitions at start the
    gateway runs no workflow service (and opens no journal): a reload that
    brings definitions is refused, naming why, and the routes keep
    serving, rather than publishing routes whose every request fails."""
    h = Gw(workflows=False)
    try:
        assert h.serving(), h.tail()
        before = h.status()
        with open(os.path.join(h.workflows, "pay.json"), "w") as f:
            json.dump({"workflows": [workflow("pay")]}, f)
        st = until(lambda: (lambda s: s if s["reloads_failed"] > before["reloads_failed"]
                            else None)(h.status()), what="a failed reload recorded")
        err = st["last_reload"]["errors"][0]
        assert err["file"].endswith("workflows/pay.json"), err
        assert 'workflow "pay" cannot run' in err["message"], err
        assert "restart" in err["message"], err
        assert st["version"] == before["version"]
        assert h.request("GET", "/one") == (200, "one\n")
        assert not os.path.exists(os.path.join(h.dir, "data")), os.listdir(h.dir)
    finally:
        h.kill()


@t.case
def write_then_rename_is_picked_up():
    g.write(".hidden.json", {"routes": [respond("hidden", "/hidden", "no\n")]})
    g.write("renamed.json.tmp", {"routes": [respond("renamed", "/renamed", "renamed\n")]})
    time.sleep(0.3)
    assert get("/renamed")[0] == 404
    os.rename(os.path.join(g.routes, "renamed.json.tmp"), os.path.join(g.routes, "renamed.json"))
    until(lambda: get("/renamed") == (200, "renamed\n"), what="renamed file served")
    assert get("/hidden")[0] == 404
    g.remove(".hidden.json")


@t.case
def sighup_reloads():
    v = g.version()
    g.proc.send_signal(signal.SIGHUP)
    st = until(lambda: (lambda s: s if s["version"] > v else None)(g.status()),
               what="a new version after SIGHUP")
    assert st["last_reload"]["source"] == "signal", st["last_reload"]


@t.case
def admin_reload():
    v = g.version()
    code, body = g.admin("POST", "/admin/routes/reload")
    assert code == 200, (code, body)
    assert body["outcome"] == "ok" and body["version"] == v + 1, body


@t.case
def admin_validate_applies_nothing():
    v = g.version()
    good = {"routes": [respond("v", "/validated", "v\n")]}
    code, body = g.admin("POST", "/admin/routes/validate", good)
    assert code == 200 and body["outcome"] == "ok", (code, body)
    bad = '{"routes": [{"name": "v", "match": {"path": "/v"},\n "upstream": "nope"}]}'
    code, body = g.admin("POST", "/admin/routes/validate", bad)
    assert 400 <= code < 500 and body["outcome"] == "error", (code, body)
    err = body["errors"][0]
    assert err["file"] == "<admin>" and err["line"] == 2 and err["column"] > 0, err
    assert g.version() == v
    assert get("/validated")[0] == 404


@t.case
def admin_put_replaces_the_whole_set():
    v = g.version()
    code, body = g.admin("PUT", "/admin/routes", {"routes": [respond("put", "/put", "put\n")]})
    assert code == 200 and body["outcome"] == "ok", (code, body)
    assert body["version"] > v
    assert get("/put") == (200, "put\n")
    assert get("/one")[0] == 404
    code, body = g.admin("PUT", "/admin/routes", {"routes": [{"name": "x"}]})
    assert 400 <= code < 500 and body["outcome"] == "error", (code, body)
    assert get("/put") == (200, "put\n")


@t.case
def admin_rollback_to_a_kept_version():
    st = g.status()
    old = next(e["version"] for e in st["versions"] if not e["current"])
    code, body = g.admin("POST", "/admin/routes/rollback", {"version": old})
    assert code == 200 and body["outcome"] == "ok" and body["version"] == old, (code, body)
    assert g.version() == old
    assert get("/one") == (200, "one\n")
    code, body = g.admin("POST", "/admin/routes/rollback", {"version": 100000})
    assert 400 <= code < 500, (code, body)
    assert g.version() == old


@t.case
def a_rewrite_with_the_same_size_and_mtime_is_served():
    # Reloads reuse the parsed routes of files whose bytes did not change:
    # bytes, not size and mtime, decide.
    g.write("same.json", {"routes": [respond("same", "/same", "AAAA\n")]})
    until(lambda: get("/same") == (200, "AAAA\n"), what="/same served")
    path = os.path.join(g.routes, "same.json")
    before = os.stat(path)
    g.write("same.json", {"routes": [respond("same", "/same", "ZZZZ\n")]})
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    until(lambda: get("/same") == (200, "ZZZZ\n"), what="the rewritten /same served")
    g.remove("same.json")
    until(lambda: get("/same")[0] == 404, what="removed route /same gone")


@t.case
def a_kept_version_keeps_its_routes_when_a_file_it_shares_changes():
    # Versions share the parsed routes of the files they have in common; a
    # change to one file leaves what older versions serve and show alone.
    g.write("a.json", {"routes": [respond("a", "/a", "a1\n"), respond("a2", "/a2", "x\n")]})
    g.write("b.json", {"routes": [respond("b", "/b", "b1\n")]})
    until(lambda: get("/a") == (200, "a1\n") and get("/b") == (200, "b1\n"),
          what="/a and /b served")
    v1 = g.version()
    g.write("b.json", {"routes": [respond("b", "/b", "b2\n")]})
    until(lambda: get("/b") == (200, "b2\n"), what="changed /b served")
    v2 = g.version()
    assert v2 > v1
    code, kept = g.admin("GET", f"/admin/routes/versions/{v1}")
    assert code == 200, (code, kept)
    bodies = {r["name"]: r["respond"]["body"] for r in kept["routes"] if "respond" in r}
    assert bodies["a"] == "a1\n" and bodies["b"] == "b1\n", bodies
    code, body = g.admin("POST", "/admin/routes/rollback", {"version": v1})
    assert code == 200 and body["version"] == v1, (code, body)
    assert get("/b") == (200, "b1\n") and get("/a") == (200, "a1\n")
    code, body = g.admin("POST", "/admin/routes/rollback", {"version": v2})
    assert code == 200, (code, body)
    assert get("/b") == (200, "b2\n") and get("/a2") == (200, "x\n")
    g.remove("a.json")
    g.remove("b.json")
    until(lambda: get("/a")[0] == 404 and get("/b")[0] == 404, what="/a and /b gone")


@t.case
def stops_cleanly_on_sigterm():
    assert g.stop() == 0


if not g.serving():
    code = g.proc.poll()
    print(f"SKIP: the gateway did not answer GET /healthz on 127.0.0.1:{g.admin_port} within 10 s"
          f" ({'exited with ' + str(code) if code is not None else 'still running'}).")
    print("Checks that could not run: " + ", ".join(fn.__name__ for fn in t.cases))
    print("gateway output:\n" + g.tail())
    g.kill()
    sys.exit(77)
t.finish()
