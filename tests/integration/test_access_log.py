#!/usr/bin/env python3
"""The access log through the real binary: whatever bytes a client sends in
the request line, each request gives one line that is valid UTF-8 and valid
JSON and carries its status and route; a long path is cut (and flagged),
never the record."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Gateway, TestRun, free_port, raw_request, tandem_bin,  # noqa: E402
                     wait_port)

t = TestRun("access_log")

SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))

# The cap on the logged path (escaped, quotes included) that README.md
# documents.
PATH_MAX = 2048

ANY = {"name": "any", "match": {"path_prefix": "/"},
       "respond": {"status": 200, "body": "ok\n", "headers": {"content-type": "text/plain"}}}


def log_lines(gw, raw_lines=None):
    """Access-log lines written so far: each must be UTF-8 and JSON. The raw
    bytes of each go to `raw_lines` when given."""
    gw.stdout.flush()
    with open(gw.stdout.name, "rb") as f:
        raw = f.read()
    out = []
    for line in raw.split(b"\n"):
        if not line:
            continue
        text = line.decode("utf-8")  # strict: raises on any invalid byte
        out.append(json.loads(text))
        if raw_lines is not None:
            raw_lines.append(line)
    assert raw == b"" or raw.endswith(b"\n"), raw[-200:]
    return out


def escaped_len(s):
    """Bytes of s as the log writes it (quotes included), for the strings
    used here: U+FFFD stands for an invalid byte, written as an escape."""
    n = 2
    for ch in s:
        if ch in '"\\':
            n += 2
        elif ord(ch) < 0x20 or ord(ch) == 0x7f or ch == "\ufffd":
            n += 6
        else:
            n += len(ch.encode())
    return n


def wait_lines(gw, n, timeout=5.0, raw_lines=None):
    end = time.time() + timeout * SCALE
    while True:
        raw = []
        lines = log_lines(gw, raw)
        if len(lines) >= n or time.time() > end:
            if raw_lines is not None:
                raw_lines.extend(raw)
            return lines
        time.sleep(0.05)


def one_response(port, data):
    """Sends the bytes as they are; returns the first response (head and
    Content-Length body), without waiting for a keep-alive connection to
    close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE) as s:
        s.sendall(data)
        got = b""
        while True:
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    return got
            b = s.recv(65536)
            if not b:
                return got
            got += b


def still_serves(gw):
    r = raw_request(gw.port, b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200 "), r[:200]
    assert gw.proc.poll() is None, gw.log()


def probe(target, status, expect_path, listener=None):
    """Sends `GET <target> HTTP/1.1` as raw bytes and checks the gateway's
    answer, that it still serves, and the one access-log line for it."""
    gw = Gateway([ANY], admin=False, listener=listener)
    try:
        r = one_response(gw.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 %d " % status), r[:200]
        still_serves(gw)
        raw = []
        lines = wait_lines(gw, 2, raw_lines=raw)
        assert len(lines) == 2, lines
        # A request is logged after its answer: the two lines may come in
        # either order.
        k = 0 if lines[1]["path"] == "/after" else 1
        line, after, raw = lines[k], lines[1 - k], raw[k:k + 1]
        assert line["status"] == status, line
        assert line["route"] == ("any" if status == 200 else None), line
        for k in ("time", "request_id", "listener", "client", "method", "upstream", "bytes",
                  "duration_ms", "route_version"):
            assert k in line, (k, line)
        if escaped_len(expect_path) > PATH_MAX:
            assert line.get("path_truncated") is True, line
            assert expect_path.startswith(line["path"]), line["path"][:100]
            # Cut between characters, as close to the cap as they allow.
            start = raw[0].index(b'"path":') + len(b'"path":')
            end = raw[0].index(b',"path_truncated":true,"route":')
            assert PATH_MAX - 6 < end - start <= PATH_MAX, end - start
            assert escaped_len(line["path"]) == end - start
        else:
            assert "path_truncated" not in line, line
            assert line["path"] == expect_path, line["path"]
        assert after["path"] == "/after" and "path_truncated" not in after, after
        # Reports on stderr are JSON lines too.
        reports = [json.loads(r) for r in gw.log().splitlines()]
        assert any(r.get("level") == "info" for r in reports), reports
        assert gw.stop() == 0, gw.log()
    finally:
        gw.close()


@t.case
def long_ascii_path_keeps_the_line_json_with_status_and_route():
    probe(b"/" + b"a" * 4100, 200, "/" + "a" * 4100)


@t.case
def long_raw_utf8_path_keeps_the_line_json_with_status_and_route():
    # Raw UTF-8, where a listener encodes it, is percent-encoded in the
    # canonical path: 1.4 KB becomes 4.2 KB.
    path = "/" + "é" * 700
    probe(path.encode(), 200, "/" + "%C3%A9" * 700,
          listener={"path_policy": {"raw_utf8": "encode"}})


@t.case
def invalid_utf8_in_the_target_is_logged_as_replacement_characters():
    # The target is refused (400); the path logged is the raw target.
    probe(b"/a\xff\xfe/b\xc3(\xed\xa0\x80", 400, "/a\ufffd\ufffd/b\ufffd(\ufffd\ufffd\ufffd")


@t.case
def long_invalid_utf8_path_keeps_the_line_json_with_status():
    probe(b"/" + b"\xff" * 4100, 400, "/" + "\ufffd" * 4100)


@t.case
def quotes_and_backslashes_in_the_target_are_escaped():
    # Refused by the target check (400); logged as received.
    probe(b'/q"\\', 400, '/q"\\')


@t.case
def path_at_the_cap_is_logged_whole():
    # The JSON string "/aaa…" (quotes included) exactly PATH_MAX bytes long.
    path = "/" + "a" * (PATH_MAX - 3)
    probe(path.encode(), 200, path)
    path += "a"
    probe(path.encode(), 200, path)


# ---- a log collector that stops reading --------------------------------------------


class StuckGateway:
    """The real binary with stdout (and stderr too with `and_stderr`, as
    `2>&1 | collector` or systemd's journal do) on a pipe the test reads
    only when it chooses. stderr goes to a file otherwise."""

    def __init__(self, routes, and_stderr, schedulers=1):
        self.dir = tempfile.mkdtemp(prefix="tandem-test-")
        self.port = free_port()
        self.admin_port = free_port()
        os.makedirs(os.path.join(self.dir, "routes"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": routes}, f)
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump({"runtime": {"schedulers": schedulers},
                       "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
                       "admin": {"address": f"127.0.0.1:{self.admin_port}"},
                       "routes": "routes", "drain_timeout_ms": 5000}, f)
        rd, wr = os.pipe()
        self.rd = rd
        self.err = None if and_stderr else open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config], stdout=wr,
                                     stderr=wr if and_stderr else self.err)
        # Our own description of the pipe, non-blocking, to fill it; the
        # gateway's stays as it was given (blocking).
        self.fill_fd = os.open(f"/proc/self/fd/{wr}", os.O_WRONLY | os.O_NONBLOCK)
        os.close(wr)
        wait_port(self.port)
        wait_port(self.admin_port)

    def fill(self):
        """Fills the pipe to the brim (with empty lines)."""
        while True:
            try:
                os.write(self.fill_fd, b"\n" * 4096)
            except BlockingIOError:
                break
        while True:
            try:
                os.write(self.fill_fd, b"\n")
            except BlockingIOError:
                return

    def drain(self):
        """Everything in the pipe now, as non-empty lines (bytes)."""
        os.set_blocking(self.rd, False)
        out = b""
        while True:
            try:
                b = os.read(self.rd, 65536)
            except BlockingIOError:
                break
            if not b:
                break
            out += b
        return [line for line in out.split(b"\n") if line]

    def stderr_text(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fill_fd)
        os.close(self.rd)
        if self.err:
            self.err.close()


def admin_call(gw, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5 * SCALE)
    headers = {"Host": f"127.0.0.1:{gw.admin_port}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    v = json.loads(r.read())
    c.close()
    return r.status, v


def served_within(port, path, timeout):
    """A request answered 200 within `timeout` seconds."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        ok = r.status == 200 and r.read() == b"ok\n"
        c.close()
        return ok
    except OSError:
        return False


def stopped_within(gw, timeout):
    """SIGTERM; the exit code if the gateway exits within `timeout` s, else None."""
    gw.proc.send_signal(signal.SIGTERM)
    try:
        return gw.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


@t.case
def crash_report_on_a_stuck_stderr_leaves_requests_served():
    # One scheduler: a report that waited for stderr would stop everything.
    gw = StuckGateway([ANY], and_stderr=True)
    try:
        keep = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5 * SCALE)
        keep.request("GET", "/keep")
        assert keep.getresponse().read() == b"ok\n"
        s, v = admin_call(gw, "GET", "/admin/processes?kind=connection")
        assert s == 200, (s, v)
        mine = [p for p in v["processes"] if (p["detail"] or "").startswith("public ")]
        assert len(mine) == 1, v
        gw.fill()
        # Killed by the admin API: a crash report, written on the scheduler.
        pid = mine[0]["pid"].strip("<>")
        s, v = admin_call(gw, "POST", f"/admin/processes/{pid}/kill", {"reason": "test_kill"})
        assert s == 200, (s, v)
        for i in range(20):
            assert served_within(gw.port, f"/after/{i}", 5 * SCALE), f"request {i} not served"
        keep.close()
        assert stopped_within(gw, 10 * SCALE) == 0
        lines = gw.drain()
        assert all(json.loads(line) for line in lines), lines[:3]
    finally:
        gw.close()


@t.case
def sigterm_with_stdout_and_stderr_stuck_on_one_pipe_exits_promptly():
    # The main thread reports "draining" on stderr before anything else.
    gw = StuckGateway([ANY], and_stderr=True)
    try:
        for i in range(50):
            assert served_within(gw.port, f"/{'a' * 2000}/{i}", 5 * SCALE)
        gw.fill()
        for i in range(50):
            assert served_within(gw.port, f"/{'b' * 2000}/{i}", 5 * SCALE)
        t0 = time.time()
        code = stopped_within(gw, 10 * SCALE)
        assert code == 0, (code, time.time() - t0)
    finally:
        gw.close()


@t.case
def shutdown_with_a_backlog_and_stuck_stdout_exits_cleanly_counting_every_line():
    # stdout stuck, stderr a file: 400 lines of 2 KB queue far more than the
    # logger writes in one batch, so the supervisor's shutdown is queued
    # behind lines stdout never takes.
    gw = StuckGateway([ANY], and_stderr=False, schedulers=2)
    try:
        gw.fill()
        sent = 400
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5 * SCALE)
        for i in range(sent):
            c.request("GET", f"/{'a' * 2000}/{i}")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"ok\n"
        c.close()
        code = stopped_within(gw, 15 * SCALE)
        log = gw.stderr_text()
        assert code == 0, (code, log[-2000:])
        reports = [json.loads(line) for line in log.splitlines()]
        # It stopped on its own: not killed by its supervisor.
        assert not [r for r in reports if r.get("event") == "crash"], log[-2000:]
        assert "shutdown_error" not in log, log[-2000:]
        dropped = 0
        for r in reports:
            m = re.match(r"access log: (\d+) lines dropped", r.get("msg", ""))
            if m:
                dropped += int(m.group(1))
        written = [json.loads(line) for line in gw.drain()]
        assert all("request_id" in w for w in written), written[:3]
        assert len(written) + dropped == sent, (len(written), dropped)
        assert dropped > 0
    finally:
        gw.close()


t.finish()
