#!/usr/bin/env python3
"""GET /admin/events against the real tandem binary: the token and the
head of the answer, the frames of a crash, a supervisor's restart and a
reload (within 1 s), a client that never reads gets `lagged` and is closed
while the gateway's memory for it stays bounded, the 65th stream is
refused, and a stream ends with its client."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, free_port, tandem_bin, wait_port  # noqa: E402

t = TestRun("admin_events")

TOKEN = "s3cret-events-token"
HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n", "headers": {"content-type": "text/plain"}}}


class Gw:
    """tandem with its admin API behind a token."""

    def __init__(self, routes=None, upstreams=None):
        self.dir = tempfile.mkdtemp(prefix="tandem-events-")
        os.makedirs(os.path.join(self.dir, "routes"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": routes or [HELLO]}, f)
        self.port = free_port()
        self.admin_port = free_port()
        cfg = {"runtime": {"schedulers": 2},
               "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
               "admin": {"address": f"127.0.0.1:{self.admin_port}",
                         "token_env": "TANDEM_EVENTS_TOKEN"},
               "upstreams": upstreams or {}, "routes": "routes", "drain_timeout_ms": 3000}
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        env = dict(os.environ, TANDEM_EVENTS_TOKEN=TOKEN)
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        wait_port(self.admin_port)
        end = time.time() + 10
        while self.admin("GET", "/readyz", token=None)[0] != 200:
            if time.time() > end:
                raise RuntimeError("not ready: " + self.log())
            time.sleep(0.02)

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def admin(self, method, path, body=None, token=TOKEN):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        h = {"Authorization": "Bearer " + token} if token else {}
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if (r.getheader("content-type") or "").startswith("application/json"):
            return r.status, json.loads(data)
        return r.status, data

    def requests_open(self):
        """The admin API's request processes, but the one asking."""
        s, doc = self.admin("GET", "/admin/processes?kind=request&limit=1000")
        assert s == 200, doc
        return [p for p in doc["processes"] if p.get("path") == "/admin/events"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        code = self.proc.returncode
        shutil.rmtree(self.dir, ignore_errors=True)
        return code

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Stream:
    """One GET /admin/events over a raw socket, read frame by frame."""

    def __init__(self, port, token=TOKEN, rcvbuf=None, read_head=True):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", port))
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.s.sendall(f"GET /admin/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
                       "Accept: text/event-stream\r\n\r\n".encode())
        self.buf = b""
        self.eof = False
        self.status = None
        self.headers = {}
        if read_head:
            self.read_head()

    def fill(self, timeout):
        self.s.settimeout(timeout)
        try:
            b = self.s.recv(65536)
        except socket.timeout:
            return False
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self.fill(10):
                raise AssertionError(f"no head: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()

    def body_rest(self, timeout=10):
        end = time.time() + timeout
        while not self.eof and time.time() < end:
            self.fill(max(0.01, end - time.time()))
        return self.buf

    def frame(self, timeout=10):
        """The next frame as (id, type, data) or ("comment", text); None at
        the end of the stream or after the timeout."""
        end = time.time() + timeout
        while b"\n\n" not in self.buf:
            left = end - time.time()
            if self.eof or left <= 0 or not self.fill(left):
                if self.eof or time.time() >= end:
                    return None
        raw, self.buf = self.buf.split(b"\n\n", 1)
        text = raw.decode()
        if text.startswith(":"):
            return ("comment", text)
        fields = {}
        for ln in text.split("\n"):
            k, v = ln.split(": ", 1)
            assert k not in fields, text
            fields[k] = v
        assert set(fields) == {"id", "event", "data"}, text
        return (int(fields["id"]), fields["event"], json.loads(fields["data"]))

    def await_event(self, type_, pred=lambda d: True, timeout=5):
        """The first frame of `type_` whose data satisfies pred, with the
        time it took."""
        t0 = time.time()
        end = t0 + timeout
        while time.time() < end:
            f = self.frame(max(0.01, end - time.time()))
            if f is None:
                break
            if f[0] != "comment" and f[1] == type_ and pred(f[2]):
                return f, time.time() - t0
        raise AssertionError(f"no {type_} event within {timeout} s")

    def close(self):
        self.s.close()


def pid_path(pid):
    return pid[1:-1]


def wait_for(fn, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


@t.case
def the_stream_needs_the_token_and_opens_with_hello():
    with Gw() as g:
        no = Stream(g.admin_port, token=None)
        assert no.status == 401, no.status
        no.close()
        bad = Stream(g.admin_port, token="wrong")
        assert bad.status == 401, bad.status
        bad.close()
        s = Stream(g.admin_port)
        assert s.status == 200, s.status
        assert s.headers["content-type"] == "text/event-stream", s.headers
        assert s.headers["cache-control"] == "no-store", s.headers
        assert "content-length" not in s.headers, s.headers
        first = s.frame()
        assert first[0] == 1 and first[1] == "hello", first
        _, v = g.admin("GET", "/admin/system")
        assert first[2] == {"version": v["version"], "routes_version": v["routes"]["version"],
                            "sample_interval_ms": 1000}, first
        (fid, _, d), _ = s.await_event("sample", timeout=3)
        assert fid == 2, fid
        assert d["schedulers"] and {"id", "utilisation", "run_queue"} == set(d["schedulers"][0])
        assert d["processes"] > 0 and d["process_limit"] >= d["processes"]
        assert d["memory"]["rss_bytes"] > 0 and d["routes_version"] == v["routes"]["version"]
        assert d["ready"] is True and d["requests_total"] >= 1
        s.close()
        status, _ = g.admin("POST", "/admin/events", body={})
        assert status == 405, status


@t.case
def a_killed_process_and_its_supervisors_restart_arrive_within_a_second():
    with Gw() as g:
        s = Stream(g.admin_port)
        assert s.frame()[1] == "hello"
        _, doc = g.admin("GET", "/admin/processes?name=gw_sampler")
        victim = doc["processes"][0]
        assert victim["name"] == "gw_sampler", victim
        status, v = g.admin("POST", f"/admin/processes/{pid_path(victim['pid'])}/kill",
                            body={"reason": "test_kill"})
        assert status == 200, v
        (_, _, d), took = s.await_event("process_crashed", lambda d: d["pid"] == victim["pid"])
        assert took < 1.0, took
        assert d == {"pid": victim["pid"], "name": "gw_sampler", "initial_call": "gw_sampler",
                     "reason": "test_kill"}, d
        (_, _, d), took = s.await_event(
            "supervisor", lambda d: d["event"] == "child_restarted" and d["child"] == "gw_sampler")
        assert took < 1.0, took
        _, tree = g.admin("GET", "/admin/supervisors")
        assert d["supervisor"] == tree["tree"]["pid"], (d, tree["tree"]["pid"])
        assert d["pid"] == victim["pid"] and d["reason"] == "test_kill", d
        _, now = g.admin("GET", "/admin/processes?name=gw_sampler")
        assert d["new_pid"] == now["processes"][0]["pid"] != victim["pid"], (d, now)
        # The new sampler samples for the stream still open.
        s.await_event("sample", timeout=3)
        s.close()


@t.case
def a_reload_arrives_as_routes_reloaded():
    with Gw() as g:
        s = Stream(g.admin_port)
        assert s.frame()[1] == "hello"
        status, v = g.admin("POST", "/admin/routes/reload")
        assert status == 200, v
        (_, _, d), took = s.await_event("routes_reloaded")
        assert took < 1.0, took
        _, sysdoc = g.admin("GET", "/admin/system")
        assert d == {"ok": True, "version": sysdoc["routes"]["version"], "routes": 1,
                     "source": "admin"}, d
        s.close()


@t.case
def an_ejected_target_arrives_as_target_ejected():
    dead = f"127.0.0.1:{free_port()}"
    route = {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "dead"}
    ups = {"dead": {"targets": [{"address": dead}], "retries": 0,
                    "health": {"passive": {"failures": 1, "eject_ms": 60000}}}}
    with Gw(routes=[HELLO, route], upstreams=ups) as g:
        s = Stream(g.admin_port)
        assert s.frame()[1] == "hello"
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        c.request("GET", "/api/x")
        assert c.getresponse().status == 502
        c.close()
        (_, _, d), took = s.await_event("target_ejected")
        assert took < 1.0, took
        assert d["upstream"] == "dead" and d["target"] == dead, d
        assert d["ejected_ms"] == 60000 and d["reason"], d
        s.close()


@t.case
def a_quiet_stream_sends_a_keepalive_comment_every_15_seconds():
    with Gw() as g:
        s = Stream(g.admin_port)
        t0 = time.time()
        while True:
            f = s.frame(timeout=20)
            assert f is not None, "the stream ended"
            if f[0] == "comment":
                assert f[1] == ": keepalive", f
                break
        assert 14 <= time.time() - t0 < 17, time.time() - t0
        s.close()


@t.case
def a_client_that_never_reads_gets_lagged_and_is_closed_with_bounded_memory():
    with Gw() as g:
        s = Stream(g.admin_port, rcvbuf=4096)
        pid = wait_for(lambda: [p["pid"] for p in g.requests_open()])[0]
        # Reloads until the stream's queue is full: the socket's buffers
        # fill first, then its mailbox, which stops at the bound.
        c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
        h = {"Authorization": "Bearer " + TOKEN}
        peak = 0
        lagged = False
        for i in range(20000):
            c.request("POST", "/admin/routes/reload", headers=h)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            if i % 100 == 99:
                st, p = g.admin("GET", f"/admin/processes/{pid_path(pid)}")
                assert st == 200, p
                peak = max(peak, p["mailbox_len"])
                # 256 events, the lag notice, and an EXIT at most.
                assert p["mailbox_len"] <= 258, p["mailbox_len"]
                # The lag notice is the 257th message: only then is the
                # stream sure to end (at 250..256 it may still catch up).
                if peak >= 257:
                    lagged = True
                    break
        c.close()
        assert lagged, f"the stream never filled up (mailbox peak {peak})"
        body = s.body_rest(timeout=30)
        assert s.eof, "the stream was not closed"
        frames = [f for f in body.decode().split("\n\n") if f and not f.startswith(":")]
        last = frames[-1].split("\n")
        assert last[1] == "event: lagged", last
        dropped = json.loads(last[2][len("data: "):])["dropped"]
        assert dropped > 0, last
        s.close()
        assert wait_for(lambda: not g.requests_open(), 5), g.requests_open()


@t.case
def the_65th_stream_is_refused_until_one_closes():
    with Gw() as g:
        streams = []
        try:
            for i in range(64):
                s = Stream(g.admin_port)
                assert s.status == 200, (i, s.status)
                streams.append(s)
            extra = Stream(g.admin_port)
            assert extra.status == 503, extra.status
            doc = json.loads(extra.body_rest(5))
            assert doc["error"] == "too_many_streams", doc
            extra.close()
            # Every stream is still served.
            for s in streams:
                assert s.frame()[1] == "hello"
            streams.pop().close()

            def reopened():
                s = Stream(g.admin_port)
                if s.status == 200:
                    streams.append(s)
                    return True
                s.close()
                return False
            assert wait_for(reopened, 5)
        finally:
            for s in streams:
                s.close()


@t.case
def a_stream_ends_when_its_client_goes():
    with Gw() as g:
        assert g.requests_open() == []
        _, before = g.admin("GET", "/admin/system")
        s = Stream(g.admin_port)
        assert s.frame()[1] == "hello"
        assert len(wait_for(g.requests_open)) == 1
        s.close()
        t0 = time.time()
        assert wait_for(lambda: not g.requests_open(), 5), g.requests_open()
        assert time.time() - t0 < 2, time.time() - t0
        # Its connection closes too: the connection process ends after its
        # request process, so the count may trail the request list by a
        # moment (asked at once, it raced the connection's exit).
        seen = []

        def connection_gone():
            _, after = g.admin("GET", "/admin/system")
            seen.append(after["admin"]["connections"])
            return after["admin"]["connections"] <= before["admin"]["connections"]
        assert wait_for(connection_gone, 2), (before["admin"]["connections"], seen[-5:])
        # The sampler goes back to sleep: no stream, no samples.
        assert g.close() == 0


@t.case
def draining_ends_open_streams_and_the_gateway_exits_at_once():
    g = Gw()
    try:
        s = Stream(g.admin_port)
        assert s.frame()[1] == "hello"
        t0 = time.time()
        g.proc.terminate()
        s.body_rest(timeout=5)
        assert s.eof and time.time() - t0 < 2.5, time.time() - t0
        g.proc.wait(10)
        assert time.time() - t0 < 2.5, time.time() - t0
        s.close()
    finally:
        assert g.close() == 0


t.finish()
