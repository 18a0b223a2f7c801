#!/usr/bin/env python3
"""File descriptor limits, through the real binary started under a low
RLIMIT_NOFILE: the soft limit is raised to the hard one; at the limit a new
client gets 503 instead of waiting, the admin API still answers, acceptors
do not spin, and service resumes once connections close."""
import atexit
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, tandem_bin  # noqa: E402

t = TestRun("fdlimit")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n"}}


def nofile(soft, hard):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return set_limit


def open_files_limits(pid):
    """(soft, hard) of "Max open files" in /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")


def get(port, path, timeout=5.0):
    """Sends one keep-alive request on a new connection; returns (status,
    socket). A hang raises socket.timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        # The admin listener answers only a Host naming it.
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            b = s.recv(4096)
            if not b:
                break
            data += b
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
        if not m:
            raise AssertionError(f"no response: {data!r}")
        head, _, body = data.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < n:
            b = s.recv(4096)
            if not b:
                break
            body += b
        return int(m.group(1)), s
    except BaseException:
        s.close()
        raise


def get_once(port, path):
    status, s = get(port, path)
    s.close()
    return status


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(port, path, limit):
    """Opens keep-alive connections until one is answered 503; returns the
    open ones (answered 200) and asserts a 503 came before `limit` tries."""
    held = []
    for _ in range(limit):
        status, s = get(port, path)
        if status == 503:
            s.close()
            return held
        assert status == 200, status
        held.append(s)
    for s in held:
        s.close()
    raise AssertionError(f"no 503 after {limit} connections")


@t.case
def soft_limit_is_raised_to_the_hard_limit():
    hard = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert hard > 256, f"the hard limit here ({hard}) is too low for this test"
    gw = Gateway([HELLO], preexec_fn=nofile(256, hard))
    try:
        assert open_files_limits(gw.proc.pid) == (hard, hard), open_files_limits(gw.proc.pid)
        assert get_once(gw.port, "/hello") == 200
        # Logged once the tree is up, which may be just after the port opens.
        want = f"file descriptors: limit {hard} (raised from 256)"
        deadline = time.time() + 5
        while want not in gw.log() and time.time() < deadline:
            time.sleep(0.05)
        assert want in gw.log(), gw.log()
    finally:
        gw.close()


@t.case
def at_the_descriptor_limit_clients_get_503_and_admin_still_answers():
    # 64 descriptors: a sixteenth (at least 16) is kept from public listeners.
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        held = fill(gw.port, "/hello", 64)
        assert 10 < len(held) < 48, len(held)
        # A new client is answered at once, not left in the backlog.
        assert get_once(gw.port, "/hello") == 503
        # The admin listener uses the reserve.
        assert get_once(gw.admin_port, "/healthz") == 200
        assert "answering new clients 503 to keep 16 for the admin API" in gw.log(), gw.log()
        for s in held:
            s.close()
        held = []
        deadline = time.time() + 5
        while get_once(gw.port, "/hello") != 200:
            assert time.time() < deadline, "service did not resume"
            time.sleep(0.1)
        assert gw.stop() == 0
    finally:
        for s in held:
            s.close()
        gw.close()


@t.case
def when_accept_fails_the_spare_descriptor_answers_503_without_spinning():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        held = fill(gw.port, "/hello", 64)
        # Admin connections take the reserve until accept itself fails
        # (EMFILE): then even the admin listener answers 503, through the
        # spare descriptor.
        held += fill(gw.admin_port, "/healthz", 64)
        assert "Too many open files" in gw.log(), gw.log()
        # A public client is still answered, not left waiting.
        t0 = time.time()
        assert get_once(gw.port, "/hello") == 503
        assert time.time() - t0 < 2
        # Acceptors park while nothing can be accepted.
        c0 = cpu_seconds(gw.proc.pid)
        time.sleep(1.0)
        used = cpu_seconds(gw.proc.pid) - c0
        assert used < 0.25, f"{used:.2f}s of CPU in 1s at the limit"
        for s in held:
            s.close()
        held = []
        deadline = time.time() + 5
        while get_once(gw.port, "/hello") != 200:
            assert time.time() < deadline, "service did not resume"
            time.sleep(0.1)
        st = get_once(gw.admin_port, "/healthz")
        assert st == 200, (st, gw.log())
        assert gw.stop() == 0
    finally:
        for s in held:
            s.close()
        gw.close()


@t.case
def check_warns_when_max_connections_exceed_the_limit():
    root = tempfile.mkdtemp(prefix="tandem-fd-")
    atexit.register(shutil.rmtree, root, True)
    os.makedirs(os.path.join(root, "routes"))
    with open(os.path.join(root, "routes", "a.json"), "w") as f:
        json.dump({"routes": [HELLO]}, f)
    cfg = os.path.join(root, "tandem.json")

    def check(max_connections):
        with open(cfg, "w") as f:
            json.dump({"listeners": [{"name": "public", "address": "127.0.0.1:0",
                                      "max_connections": max_connections}],
                       "routes": "routes"}, f)
        return subprocess.run([tandem_bin(), "check", "-c", cfg], capture_output=True,
                              text=True, timeout=30, preexec_fn=nofile(1024, 1024))

    out = check(10000)
    assert out.returncode == 0, out
    assert re.search(r"tandem\.json: warning: file descriptors: listeners allow 10000 client "
                     r"connections; .* but the limit is 1024 and 64 of them are kept", out.stderr), \
        out.stderr
    assert out.stdout.strip().endswith("(1 warning)"), out.stdout
    out = check(500)
    assert out.returncode == 0, out
    assert out.stderr == "", out.stderr


t.finish()
