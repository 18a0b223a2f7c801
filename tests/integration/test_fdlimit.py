#!/usr/bin/env python3
"""File descriptor limits, through the real binary started under a low
RLIMIT_NOFILE: the soft limit is raised to the hard one; client and upstream
connections share a counted budget that leaves the documented reserve free;
at the limit a new client gets 503 instead of waiting, even in bursts and
again after service resumed; the spare descriptor survives; the admin API
still answers; acceptors neither spin nor cascade; repeated warnings are
rate-limited."""
import atexit
import ctypes
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, Upstream, tandem_bin  # noqa: E402

t = TestRun("fdlimit")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n"}}
SLOW = {"name": "slow", "match": {"path": "/slow"}, "upstream": "up"}
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


def documented_budget(limit, listeners=1, acceptors=SCHEDULERS, admin=True, probes=0):
    """(reserve, own, budget) as README.md's "File descriptors" defines
    them."""
    reserve = min(max(limit // 16, 16), 1024)
    own = 32 + 2 * SCHEDULERS + listeners * (1 + acceptors) + (2 if admin else 0) + probes
    return reserve, own, limit - reserve - own


def clients_fitting(budget, slots):
    """Client connections the budget admits: one descriptor each, plus one
    for its upstream connection while fewer than `slots` clients have one."""
    clients = used = 0
    while used + 1 + (1 if clients < slots else 0) <= budget:
        used += 1 + (1 if clients < slots else 0)
        clients += 1
    return clients


def exchange(s, method, path):
    """One request on an open socket; returns (status, body). A hang raises
    socket.timeout."""
    # The admin listener answers only a Host naming it.
    port = s.getpeername()[1]
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode())
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


def get(port, path, timeout=5.0):
    """One keep-alive request on a new connection; returns (status, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return exchange(s, "GET", path)[0], s
    except BaseException:
        s.close()
        raise


def get_once(port, path, timeout=5.0):
    status, s = get(port, path, timeout)
    s.close()
    return status


def open_fds(pid):
    """{number: what it refers to} of the process's open descriptors."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass  # closed meanwhile
    return out


def dev_nulls(pid):
    return sorted(n for n, what in open_fds(pid).items() if what == "/dev/null")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def fill(port, path, limit, watch=None):
    """Opens keep-alive connections until one is answered 503; returns the
    open ones (answered 200) and asserts a 503 came before `limit` tries.
    With `watch` (a pid), also returns the number of descriptors the process
    had open just before the connection answered 503 was made."""
    held = []
    for _ in range(limit):
        before = len(open_fds(watch)) if watch else None
        status, s = get(port, path)
        if status == 503:
            s.close()
            return (held, before) if watch else held
        assert status == 200, status
        held.append(s)
    for s in held:
        s.close()
    raise AssertionError(f"no 503 after {limit} connections")


def to_the_limit(gw):
    """Public connections until the budget is spent, then admin connections
    until accept itself fails (EMFILE); returns them all."""
    held = fill(gw.port, "/hello", 64)
    held += fill(gw.admin_port, "/healthz", 64)
    return held


def burst(targets, timeout=5.0):
    """Connects to every (port, path) at once; returns each outcome: the
    status, or the exception's name (a hang is "timeout")."""
    out = [None] * len(targets)
    go = threading.Event()

    def one(i, port, path):
        go.wait()
        try:
            out[i] = get_once(port, path, timeout)
        except socket.timeout:
            out[i] = "timeout"
        except OSError as e:
            out[i] = type(e).__name__

    threads = [threading.Thread(target=one, args=(i, p, path))
               for i, (p, path) in enumerate(targets)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join()
    return out


def close_all(held):
    for s in held:
        s.close()
    held.clear()


def resumes(gw):
    wait_for(lambda: get_once(gw.port, "/hello") == 200, what="service resumed")
    assert get_once(gw.admin_port, "/healthz") == 200


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
        wait_for(lambda: want in gw.log(), what="limit logged")
    finally:
        gw.close()


@t.case
def public_clients_stop_at_the_documented_budget_leaving_the_reserve_free():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        reserve, own, budget = documented_budget(64)
        # Without upstreams a client costs one descriptor.
        held, open_before = fill(gw.port, "/hello", 64, watch=gw.proc.pid)
        # When the first client was refused, at least the reserve was free.
        assert 64 - open_before >= reserve, (open_before, reserve)
        assert len(held) == clients_fitting(budget, 0), (len(held), budget)
        # Logged once the tree is up, which may be after the first clients.
        want = (f"limit 64; {budget} for client and upstream connections, {reserve} kept for "
                f"the admin API and 503 answers, {own} the gateway's own")
        wait_for(lambda: want in gw.log(), what="budget logged")
        # A new client is answered at once, not left in the backlog.
        assert get_once(gw.port, "/hello") == 503
        # The admin listener uses the reserve.
        assert get_once(gw.admin_port, "/healthz") == 200
        assert (f"{budget} of {budget} file descriptors for client and upstream connections in "
                f"use; answering new clients 503 to keep {reserve} for the admin API") in gw.log()
        close_all(held)
        resumes(gw)
        assert gw.stop() == 0
    finally:
        close_all(held)
        gw.close()


@t.case
def proxied_requests_at_the_budget_still_get_upstream_connections_and_health_checks_pass():
    up = Upstream(name="up")
    gw = Gateway([HELLO, SLOW], {"up": {
        "targets": [{"address": up.address}],
        "health": {"active": {"path": "/status/200", "interval_ms": 100, "timeout_ms": 2000}}}},
        preexec_fn=nofile(128, 128))
    held = []
    try:
        reserve, own, budget = documented_budget(128, probes=1)
        # Each client keeps room for the upstream connection a request may
        # need (one target, max_connections 1024: slots for all).
        held = fill(gw.port, "/hello", 128)
        results = [None] * len(held)

        def proxied(i, s):
            try:
                results[i] = exchange(s, "GET", "/slow?ms=400")[0]
            except OSError as e:
                results[i] = type(e).__name__

        for round_ in range(2):
            threads = [threading.Thread(target=proxied, args=(i, s)) for i, s in enumerate(held)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert results == [200] * len(held), (round_, results)
        assert "failed its health check" not in gw.log(), gw.log()
        assert len(held) == clients_fitting(budget, 1024), (len(held), budget)
        st, body = exchange(held[0], "GET", "/hello")
        assert st == 200
        c = socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5)
        try:
            st, body = exchange(c, "GET", "/admin/upstreams")
        finally:
            c.close()
        assert st == 200
        targets = json.loads(body)["upstreams"][0]["targets"]
        assert [x["healthy"] for x in targets] == [True], targets
        close_all(held)
        resumes(gw)
        assert gw.stop() == 0
    finally:
        close_all(held)
        gw.close()
        up.stop()


@t.case
def bursts_at_the_limit_are_all_answered_and_the_spare_descriptor_survives():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        pid = gw.proc.pid
        nulls = dev_nulls(pid)
        for episode in range(2):  # and again after service resumed
            held = to_the_limit(gw)
            assert "Too many open files" in gw.log(), gw.log()
            for _ in range(8):
                targets = [(gw.port, "/hello")] * 12 + [(gw.admin_port, "/healthz")] * 4
                outcomes = burst(targets)
                assert outcomes == [503] * len(targets), (episode, outcomes)
                wait_for(lambda: dev_nulls(pid) == nulls, 2, "spare descriptor back")
            # Still at the limit: a keep-alive client is refused, not served
            # on a descriptor the reserve or the spare needed.
            assert get_once(gw.port, "/hello") == 503
            # A stream of clients keeps one waiting at the limit: each is
            # answered, and the acceptors do not spin meanwhile.
            c0, t0, answered = cpu_seconds(pid), time.time(), []
            while time.time() - t0 < 1.0:
                answered.append(get_once(gw.port, "/hello"))
                time.sleep(0.005)
            used = cpu_seconds(pid) - c0
            assert set(answered) == {503}, answered
            assert used < 0.5, f"{used:.2f}s of CPU for {len(answered)} clients in 1s"
            close_all(held)
            resumes(gw)
            wait_for(lambda: dev_nulls(pid) == nulls, 2, "spare descriptor after resuming")
        assert gw.stop() == 0
    finally:
        close_all(held)
        gw.close()


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def files_of(pid, fds):
    """Copies of the process's descriptors (pidfd_getfd), or None where the
    system does not allow it."""
    libc = _libc()
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        return None
    try:
        out = {}
        for n in fds:
            c = libc.syscall(438, pidfd, n, 0)  # pidfd_getfd
            if c < 0:
                return None
            out[n] = c
        return out
    finally:
        os.close(pidfd)


def same_file(mine, pid, theirs):
    """Whether my descriptor and the process's refer to one open file
    (kcmp KCMP_FILE)."""
    r = _libc().syscall(312, os.getpid(), pid, 0, mine, theirs)
    assert r >= 0, f"kcmp: errno {ctypes.get_errno()}"
    return r == 0


@t.case
def at_the_limit_the_spare_descriptor_is_not_given_up_while_nobody_waits():
    gw = Gateway([HELLO], preexec_fn=nofile(64, 64))
    held = []
    try:
        pid = gw.proc.pid
        held = to_the_limit(gw)
        time.sleep(0.2)
        nulls = [n for n in dev_nulls(pid) if n > 2]
        copies = files_of(pid, nulls)
        if copies is None:
            print("note: pidfd_getfd not permitted here; spare identity not checked")
            return
        try:
            # Acceptors wait for a client with a 1s timeout: over two of
            # them nobody comes, and the spare must stay the same open file.
            time.sleep(2.5)
            now = [n for n in dev_nulls(pid) if n > 2]
            assert now == nulls, (nulls, now)
            for n, mine in copies.items():
                assert same_file(mine, pid, n), \
                    f"/dev/null descriptor {n} was closed and opened again with nobody waiting"
        finally:
            for c in copies.values():
                os.close(c)
        assert get_once(gw.port, "/hello") == 503
        close_all(held)
        resumes(gw)
        assert gw.stop() == 0
    finally:
        close_all(held)
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
        # Under the listener's rest_for_one supervisor, killing the first
        # acceptor restarts both (which one is first shows in the tree; pid
        # numbers do not tell).
        st, body = exchange(admin, "GET", "/admin/supervisors")
        assert st == 200
        ls = [c for c in json.loads(body)["tree"]["children"] if c["id"] == "listeners_sup"][0]
        pub = [c for c in ls["children"] if c["id"] == "public"][0]
        first = [c["pid"] for c in pub["children"] if c["id"] == "acceptor_1"][0]
        assert first in acceptors, (first, acceptors)
        st, body = exchange(admin, "POST", f"/admin/processes/{first.strip('<>')}/kill")
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
