#!/usr/bin/env python3
"""File descriptor limits, through the real binary started under a low
RLIMIT_NOFILE: the soft limit is raised to the hard one; at the limit a new
client gets 503 instead of waiting, the admin API still answers, acceptors
do not spin, an acceptor restarting at the limit needs no descriptor,
repeated warnings are rate-limited, and service resumes once connections
close."""
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
SCHEDULERS = 2  # the harness's runtime.schedulers: one acceptor per scheduler


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


def exchange(s, method, path):
    """One request on an open socket; returns (status, body). A hang raises
    socket.timeout."""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    if not m:
        raise AssertionError(f"no response: {data!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < n:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return int(m.group(1)), body


def open_fds(pid):
    """{number: what it refers to} of the process's open descriptors."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass  # closed meanwhile
    return out


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def close_all(held):
    for s in held:
        s.close()
    held.clear()


def resumes(gw):
    wait_for(lambda: get_once(gw.port, "/hello") == 200, what="service resumed")
    assert get_once(gw.admin_port, "/healthz") == 200


def get(port, path, timeout=5.0):
    """Sends one keep-alive request on a new connection; returns (status,
    socket). A hang raises socket.timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
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


def listening_socket_fds(pid, port):
    """The process's descriptors of the socket listening on `port`."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if x[3] == "0A" and int(x[1].split(":")[1], 16) == port:  # LISTEN
                inode = x[9]
    assert inode, f"nothing listens on {port}"
    return sorted(n for n, what in open_fds(pid).items() if what == f"socket:[{inode}]")


@t.case
def an_acceptor_killed_at_the_limit_restarts_without_needing_a_descriptor():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        pid = gw.proc.pid
        admin = socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5)
        held.append(admin)
        st, public = get(gw.port, "/hello")
        held.append(public)
        assert st == 200
        # The lowest of the acceptors' own descriptors of the public socket
        # as the limit: every lower number is in use, and none at or above
        # it can be opened, even one an acceptor closes as it dies.
        fds = listening_socket_fds(pid, gw.port)
        assert len(fds) == 1 + SCHEDULERS, fds
        free = [n for n in range(fds[1]) if n not in open_fds(pid)]
        assert not free, free
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (fds[1], 64))
        st, body = exchange(admin, "GET", "/admin/processes")
        assert st == 200
        acceptors = [p["pid"] for p in json.loads(body)["processes"]
                     if p["kind"] == "acceptor" and p["detail"] == "listener public"]
        assert len(acceptors) == SCHEDULERS, acceptors
        # Under the listener's rest_for_one supervisor, both restart.
        st, body = exchange(admin, "POST", f"/admin/processes/{acceptors[0].strip('<>')}/kill")
        assert st == 200, (st, body)
        time.sleep(0.5)
        assert "dup" not in gw.log(), gw.log()
        # The listener's supervisor, and the connections under it, lived on.
        assert exchange(public, "GET", "/hello")[0] == 200
        st, body = exchange(admin, "GET", "/admin/processes")
        again = [p["pid"] for p in json.loads(body)["processes"]
                 if p["kind"] == "acceptor" and p["detail"] == "listener public"]
        assert len(again) == SCHEDULERS and not set(again) & set(acceptors), again
        # At the limit, the new acceptors answer with the spare.
        assert get_once(gw.port, "/hello") == 503
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, 64))
        close_all(held)
        resumes(gw)
        assert gw.stop() == 0
    finally:
        close_all(held)
        gw.close()


@t.case
def refusal_warnings_are_rate_limited_while_clients_come_and_go_at_the_limit():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    warning = "answering new clients 503 to keep"
    try:
        admin = socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5)
        held.append(admin)

        def public_connections():
            doc = json.loads(exchange(admin, "GET", "/admin/system")[1])
            return doc["listeners"][0]["connections"]

        held += fill(gw.port, "/hello", 64)
        t_first = time.time()
        # At the limit: one refused, one leaves, one served, again.
        for _ in range(5):
            assert get_once(gw.port, "/hello") == 503
            held.pop().close()
            wait_for(lambda: public_connections() == len(held) - 1, what="connection closed")
            st, s = get(gw.port, "/hello")
            held.append(s)
            assert st == 200
        lines = [x for x in gw.log().splitlines() if warning in x]
        assert len(lines) == 1, lines
        # Past the interval, the next line counts those left out.
        time.sleep(max(0.0, t_first + 10.5 - time.time()))
        assert get_once(gw.port, "/hello") == 503
        wait_for(lambda: len([x for x in gw.log().splitlines() if warning in x]) == 2,
                 what="second warning")
        lines = [x for x in gw.log().splitlines() if warning in x]
        assert "(5 more since the last such line)" in lines[1], lines
        close_all(held)
        assert gw.stop() == 0
    finally:
        close_all(held)
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
