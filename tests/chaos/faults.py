"""Faults beyond kills, against the real binary, each with its expected
outcome (tests/chaos/README.md):

  - an upstream that resets, hangs, or answers garbage, before its head or
    in the middle of its body: the client of that request alone gets 502,
    504 or a body cut short (never one that looks complete), requests on
    other connections meanwhile all succeed, the broken upstream
    connection is not reused, and the gateway holds no descriptor more
    once the clients are gone;
  - the access log's output blocked (stdout a pipe nobody reads): requests
    keep being served at their usual pace, lines beyond the logger's
    backlog are dropped and counted in the metrics and the log.

Running out of descriptors at accept (the acceptor backs off, answers 503
and recovers, using no CPU to speak of while starved) is
tests/integration/test_fdlimit.py's.
"""
import http.client
import os
import re
import socket
import struct
import sys
import threading
import time

SRC = os.environ.get("TANDEM_SRC", os.getcwd())
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Gateway, TestRun, free_port  # noqa: E402

t = TestRun("faults")
# The gateway's wait for each read of a response body (GW__WRITE_TIMEOUT_MS).
BODY_READ_TIMEOUT_S = 30


class BadUpstream:
    """An HTTP upstream that misbehaves as the request path says:

      /ok                 200 "ok\\n" (keep-alive)
      /reset-head         reads the request, then resets the connection
      /reset-body         head (Content-Length 100000), 1000 bytes, reset
      /garbage-head       a line that is not HTTP
      /garbage-body       chunked: one good chunk, then a bad chunk size
      /hang-head          reads the request and never answers
      /hang-body          head (Content-Length 100000), 1000 bytes, silence

    Counts the connections it accepted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held = []
        self.stopping = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    @staticmethod
    def reset(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def handle(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    b = c.recv(65536)
                    if not b:
                        c.close()
                        return
                    buf += b
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                if path.startswith("/ok") or path.startswith("/health"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    continue
                if path == "/reset-head":
                    self.reset(c)
                elif path == "/reset-body":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
                    time.sleep(0.1)
                    self.reset(c)
                elif path == "/garbage-head":
                    c.sendall(b"SPLAT \x00\x01 nonsense\r\n\r\n")
                    time.sleep(0.2)
                    c.close()
                elif path == "/garbage-body":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n")
                    # Apart, so that the head and the good chunk have
                    # left for the client before the garbage comes.
                    time.sleep(0.2)
                    c.sendall(b"zz-not-a-size\r\n" + b"junk" * 100)
                    time.sleep(0.5)
                    c.close()
                elif path == "/hang-head":
                    self.held.append(c)
                elif path == "/hang-body":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
                    self.held.append(c)
                return
        except OSError:
            c.close()

    def close(self):
        self.stopping = True
        self.sock.close()
        for c in self.held:
            c.close()


ROUTES = [
    {"name": "hello", "match": {"path": "/hello"}, "respond": {"status": 200, "body": "hello\n"}},
    {"name": "bad", "match": {"path_prefix": "/bad"}, "upstream": "bad", "strip_prefix": True},
]


def start(bad):
    return Gateway(ROUTES, upstreams={"bad": {
        "targets": [{"address": f"127.0.0.1:{bad.port}"}],
        "response_timeout_ms": 1000, "retries": 0,
        # A fault is not the target's health: keep it in service.
        "health": {"passive": {"failures": 0}}}})


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def upstream_fds(pid, port):
    """The gateway's sockets connected to `port`."""
    inodes = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            x = line.split()
            if int(x[2].rsplit(":", 1)[1], 16) == port and x[3] == "01":
                inodes.add(x[9])
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes:
                n += 1
        except OSError:
            pass
    return n


class Background:
    """Keep-alive clients on a direct route and on the faulty upstream's
    good path, counting failures, while a fault happens elsewhere."""

    def __init__(self, port, paths=("/hello", "/bad/ok")):
        self.port, self.stop = port, threading.Event()
        self.ok = self.failed = 0
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(p,), daemon=True) for p in paths]
        for th in self.threads:
            th.start()

    def run(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                if r.status == 200 and body in (b"hello\n", b"ok\n"):
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append((path, r.status, body[:80]))
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.errors.append((path, repr(e)))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.005)
        c.close()

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(15)
        assert self.failed == 0, self.errors[:5]
        assert self.ok > 20, self.ok


def fetch(port, path, timeout=BODY_READ_TIMEOUT_S + 15):
    """(status, body, how it ended): 'complete', 'cut' or an exception name."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        try:
            body = r.read()
            return r.status, body, "complete"
        except http.client.IncompleteRead as e:
            return r.status, e.partial, "cut"
        except OSError as e:
            return r.status, b"", type(e).__name__
    except (OSError, http.client.HTTPException) as e:
        return None, b"", type(e).__name__
    finally:
        c.close()


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def quiet(gw):
    """No client connection open (the admin API's own aside)."""
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
    c.request("GET", "/admin/system")
    import json
    doc = json.loads(c.getresponse().read())
    c.close()
    return doc["listeners"][0]["connections"] == 0


FAULTS = [
    # path, expected status, how the body ends
    ("/bad/reset-head", 502, "complete"),
    ("/bad/garbage-head", 502, "complete"),
    ("/bad/hang-head", 504, "complete"),
    ("/bad/reset-body", 200, "cut"),
    ("/bad/garbage-body", 200, "cut"),
]


@t.case
def an_upstream_that_resets_hangs_or_answers_garbage_fails_that_request_only():
    bad = BadUpstream()
    gw = start(bad)
    try:
        pid = gw.proc.pid
        assert fetch(gw.port, "/bad/ok")[:2] == (200, b"ok\n")
        wait_for(lambda: quiet(gw), 5, "no connection")
        base = fds(pid)
        pooled = upstream_fds(pid, bad.port)
        bg = Background(gw.port)
        outcomes = {}
        # The hang in the middle of a body takes the gateway's body read
        # timeout: it runs alongside the others.
        hang = {}
        th = threading.Thread(target=lambda: hang.update(
            r=fetch(gw.port, "/bad/hang-body"), t=time.monotonic()))
        t0 = time.monotonic()
        th.start()
        for path, status, end in FAULTS:
            for i in range(3):
                st, body, how = fetch(gw.port, path)
                outcomes.setdefault(path, []).append((st, how))
                assert (st, how) == (status, end), (path, i, st, how, body[:100])
                if how == "cut":
                    assert len(body) < 100000, (path, len(body))
        th.join(BODY_READ_TIMEOUT_S + 20)
        st, body, how = hang["r"]
        assert (st, how) == (200, "cut") and len(body) == 1000, (st, how, len(body))
        took = hang["t"] - t0
        assert BODY_READ_TIMEOUT_S - 1 <= took <= BODY_READ_TIMEOUT_S + 10, took
        bg.finish()
        # Every broken upstream connection was closed, not pooled: only
        # the good answers' connections may be idle in the pool.
        wait_for(lambda: quiet(gw), 10, "no connection")
        wait_for(lambda: upstream_fds(pid, bad.port) <= max(pooled, 2), 10,
                 "broken upstream connections closed")
        wait_for(lambda: fds(pid) - upstream_fds(pid, bad.port) <= base - pooled, 10,
                 f"descriptors back to {base}")
        # And the upstream is still used for good answers.
        assert fetch(gw.port, "/bad/ok")[:2] == (200, b"ok\n")
        assert gw.proc.poll() is None
        log = gw.log()
        assert gw.stop() == 0, log[-2000:]
    finally:
        gw.close()
        bad.close()


# ---- the access log blocked --------------------------------------------------

@t.case
def a_blocked_access_log_keeps_requests_served_and_counts_what_it_drops():
    import subprocess
    rd, wr = os.pipe()
    fill = os.open(f"/proc/self/fd/{wr}", os.O_WRONLY | os.O_NONBLOCK)
    for chunk in (4096, 1):
        while True:
            try:
                os.write(fill, b"\n" * chunk)
            except BlockingIOError:
                break
    gw = Gateway.__new__(Gateway)
    # The harness's Gateway writes stdout to a file: here it is the pipe.
    orig = subprocess.Popen

    def popen(argv, stdout=None, **kw):
        return orig(argv, stdout=wr, **kw)
    subprocess.Popen = popen
    try:
        Gateway.__init__(gw, [{"name": "hello", "match": {"path_prefix": "/hello"},
                               "respond": {"status": 200, "body": "hello\n"}}])
    finally:
        subprocess.Popen = orig
    os.close(wr)
    try:
        port = gw.port
        # Long paths: the logger's byte cap (16 MiB) fills before its line
        # cap, with fewer requests.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent, slow = 0, []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and sent < 20000:
            a = time.monotonic()
            c.request("GET", "/hello/" + "p" * 3000)
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"hello\n"
            slow.append(time.monotonic() - a)
            sent += 1
        c.close()
        slow.sort()
        assert slow[int(len(slow) * 0.99)] < 0.25, slow[-10:]

        def metric():
            m = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
            m.request("GET", "/metrics")
            text = m.getresponse().read().decode()
            m.close()
            found = re.search(r"^tandem_access_log_lines_dropped_total (\d+)$", text, re.M)
            assert found, "no tandem_access_log_lines_dropped_total in /metrics"
            return int(found.group(1))
        wait_for(lambda: metric() > 0, 5,
                 f"dropped lines counted ({sent} sent; log: {gw.log()[-600:]})")
        dropped = metric()
        assert dropped <= sent, (dropped, sent)
        # The log says so too, at most once a second.
        wait_for(lambda: "access log:" in gw.log() and "dropped" in gw.log(), 5,
                 "a warning")
        warned = sum(int(m.group(1)) for m in
                     re.finditer(r"access log: (\d+) lines dropped", gw.log()))
        assert 0 < warned <= dropped, (warned, dropped)
        assert gw.stop() == 0
        # What reached the pipe is whole lines: the filler, then JSON.
        os.set_blocking(rd, False)
        out = b""
        while True:
            try:
                b = os.read(rd, 1 << 20)
            except BlockingIOError:
                break
            if not b:
                break
            out += b
        lines = [ln for ln in out.split(b"\n") if ln]
        assert all(ln.startswith(b"{") and ln.endswith(b"}") for ln in lines), lines[:2]
        # Everything sent was written, dropped, or (the gateway stopping)
        # dropped at shutdown: the metric never counts more than was sent.
        assert len(lines) + dropped <= sent, (len(lines), dropped, sent)
    finally:
        os.close(fill)
        os.close(rd)
        gw.close()


t.finish()
