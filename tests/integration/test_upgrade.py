#!/usr/bin/env python3
"""Binary upgrade (README "Binary upgrade"), through the real binary under a
keep-alive load: POST /admin/upgrade, `tandem ctl upgrade` and SIGUSR2 start
the new binary on the running gateway's sockets; the old one drains and
exits 0 once the new one is ready, without a failed request or a reset
connection; a new binary that exits, is not ready in time, or finds its
configuration invalid leaves the old one serving, and the reason is
reported; with workflows (SQLite and PostgreSQL journals), every transfer in
flight across upgrades completes or compensates exactly once, the new
gateway taking over the old one's instances only once it has exited."""
import ctypes
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (TestRun, Upstream, free_port, source_root, tandem_bin,  # noqa: E402
                     validate_config, wait_port)

t = TestRun("upgrade")

DRAIN_S = 5.0
UPGRADE_TIMEOUT_MS = 4000
ROUTES = [
    {"name": "hello", "match": {"path": "/hello"}, "respond": {"status": 200, "body": "hello\n"}},
    {"name": "echo", "match": {"path": "/echo"}, "upstream": "up"},
]

# The gateways an upgrade starts are children of the one before; once that
# one exits they become this process's, to be reaped and their exit codes
# read.
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def wait_exit(pid, timeout):
    """The exit status of child `pid` once it ends (None after timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            p, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if p == pid:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.01)
    return None


class Load:
    """Keep-alive clients, each sending GETs back to back on one connection
    and opening another only when the server said Connection: close. Every
    exception (reset, connection closed without an answer) and every status
    other than 200 is a failure."""

    def __init__(self, port, conns=8):
        self.port = port
        self.ok = 0
        self.failures = []
        self.resets = 0
        self.connects = 0
        self.closes = 0
        self.lock = threading.Lock()
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(conns)]
        for th in self.threads:
            th.start()

    def run(self, i):
        conn = None
        path = "/hello" if i % 2 else "/echo"
        while not self.stop_flag:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    conn.connect()
                    with self.lock:
                        self.connects += 1
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                closing = (r.getheader("connection") or "").lower() == "close"
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {r.status}")
                    if closing:
                        self.closes += 1
                if closing:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 — every kind counts
                with self.lock:
                    self.failures.append(repr(e))
                    if isinstance(e, ConnectionResetError):
                        self.resets += 1
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn:
            conn.close()

    def stop(self):
        self.stop_flag = True
        for th in self.threads:
            th.join(15)


TOKEN_ENV = "TANDEM_UPGRADE_TEST_TOKEN"
TOKEN = "upgrade-test-token-3f9a"


class Site:
    """A gateway started from `binary` (a copy of the build's) with a
    generated configuration; `pid` follows it across upgrades."""

    def __init__(self, binary, extra=None, env=None, routes=None, token=True):
        self.dir = tempfile.mkdtemp(prefix="tandem-upgrade-")
        self.up = Upstream("up")
        self.port = free_port()
        self.admin_port = free_port()
        os.makedirs(os.path.join(self.dir, "routes"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": routes or ROUTES}, f)
        self.cfg = {
            "runtime": {"schedulers": 2},
            "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
            "admin": {"address": f"127.0.0.1:{self.admin_port}",
                      **({"token_env": TOKEN_ENV} if token else {})},
            "upstreams": {"up": {"targets": [{"address": self.up.address}]}},
            "routes": "routes",
            "access_log": False,
            "drain_timeout_ms": int(DRAIN_S * 1000),
            "upgrade_timeout_ms": UPGRADE_TIMEOUT_MS,
        }
        self.cfg.update(extra or {})
        validate_config("config", self.cfg, "tandem.json")
        self.config = os.path.join(self.dir, "tandem.json")
        self.write_config(self.cfg)
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen([binary, "-c", self.config], stdout=subprocess.DEVNULL,
                                     stderr=self.stderr,
                                     env={**os.environ, TOKEN_ENV: TOKEN, **(env or {})})
        self.pid = self.proc.pid
        wait_port(self.port)
        wait_port(self.admin_port)

    def write_config(self, cfg):
        with open(self.config, "w") as f:
            json.dump(cfg, f)

    def log(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            return f.read()

    def upgrade(self, binary=None, token=True):
        """POST /admin/upgrade; (status, answer)."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=60)
        body = json.dumps({"binary": binary}) if binary else ""
        headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        if body:
            headers["Content-Type"] = "application/json"
        c.request("POST", "/admin/upgrade", body=body, headers=headers)
        r = c.getresponse()
        answer = json.loads(r.read())
        c.close()
        return r.status, answer

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def close(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if wait_exit(self.pid, 15) is None:
                os.kill(self.pid, signal.SIGKILL)
                wait_exit(self.pid, 5)
        self.up.stop()
        log = self.log()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        # Every gateway of the run wrote here (the old and new share it).
        assert "Sanitizer" not in log and "runtime error" not in log, log[-4000:]


def two_builds(d):
    """Two distinct executables of the gateway (copies of the build's)."""
    a, b = os.path.join(d, "tandem-a"), os.path.join(d, "tandem-b")
    shutil.copy2(tandem_bin(), a)
    shutil.copy2(tandem_bin(), b)
    return a, b


def exe_of(pid):
    return os.path.realpath(f"/proc/{pid}/exe")


@t.case
def ten_upgrades_under_keep_alive_load_fail_no_request():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    site = Site(a)
    load = None
    try:
        load = Load(site.port)
        time.sleep(0.5)
        times = []
        for i in range(10):
            binary = b if i % 2 == 0 else a
            old = site.pid
            before = load.ok
            t0 = time.monotonic()
            status, answer = site.upgrade(binary)
            assert status == 200, (status, answer, site.log()[-3000:])
            assert answer["old_pid"] == old, answer
            new = answer["new_pid"]
            site.pid = new
            assert exe_of(new) == binary, (exe_of(new), binary)
            code = wait_exit(old, DRAIN_S + 5)
            elapsed = time.monotonic() - t0
            times.append(elapsed)
            assert code == 0, f"upgrade {i + 1}: the old gateway exited {code}"
            assert elapsed < DRAIN_S, f"upgrade {i + 1} took {elapsed:.2f} s"
            # The new one serves the load.
            end = time.monotonic() + 5
            while load.ok < before + 50 and time.monotonic() < end:
                time.sleep(0.02)
            assert load.ok >= before + 50, "no traffic after the upgrade"
        time.sleep(0.3)
        load.stop()
        print(f"# 10 upgrades: requests {load.ok}, failed {len(load.failures)}, "
              f"resets {load.resets}, connections {load.connects}, closed by "
              f"Connection: close {load.closes}, upgrade to old exit "
              f"max {max(times):.3f} s, median {sorted(times)[5]:.3f} s", flush=True)
        assert not load.failures, load.failures[:10]
        assert load.resets == 0
        # Every upgrade moved every client: each connection was told to close.
        assert load.closes >= 10, load.closes
    finally:
        if load:
            load.stop()
        site.close()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def failed_upgrades_leave_the_old_gateway_serving():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    exits = os.path.join(d, "exits-at-once")
    with open(exits, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    hangs = os.path.join(d, "never-ready")
    with open(hangs, "w") as f:
        f.write("#!/bin/sh\nexec sleep 300\n")
    os.chmod(exits, 0o755)
    os.chmod(hangs, 0o755)
    site = Site(a)
    load = None
    try:
        load = Load(site.port)
        time.sleep(0.3)
        pid = site.pid

        status, answer = site.upgrade(exits)
        assert status == 500 and answer["error"] == "upgrade_failed", (status, answer)
        assert "exited with status 3" in answer["detail"], answer

        t0 = time.monotonic()
        status, answer = site.upgrade(hangs)
        waited = time.monotonic() - t0
        assert status == 500 and "not ready within" in answer["detail"], (status, answer)
        assert UPGRADE_TIMEOUT_MS / 1000 - 0.1 <= waited < UPGRADE_TIMEOUT_MS / 1000 + 5, waited

        status, answer = site.upgrade(os.path.join(d, "missing"))
        assert status == 500 and "No such file" in answer["detail"], (status, answer)

        # A broken configuration: the new binary says why, through ctl too.
        bad = dict(site.cfg)
        bad["listeners"] = [{"name": "public", "address": f"127.0.0.1:{site.port}",
                             "max_conections": 10}]
        site.write_config(bad)
        status, answer = site.upgrade(b)
        assert status == 500, (status, answer)
        assert "max_conections" in answer["detail"] and "did you mean" in answer["detail"], answer
        r = subprocess.run([tandem_bin(), "ctl", "--admin", f"127.0.0.1:{site.admin_port}", "--token", TOKEN,
                            "upgrade", "--binary", b], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "upgrade_failed" in r.stderr and "max_conections" in r.stderr, r.stderr
        assert "upgrade failed, this gateway keeps serving" in site.log()

        # Through all of it the same gateway served every request.
        assert site.pid == pid and os.waitpid(pid, os.WNOHANG) == (0, 0)
        assert site.get("/hello") == 200
        # Fixed, the next upgrade goes through (ctl, the default timeout).
        site.write_config(site.cfg)
        r = subprocess.run([tandem_bin(), "ctl", "--admin", f"127.0.0.1:{site.admin_port}", "--token", TOKEN,
                            "upgrade", "--binary", b], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.startswith("upgraded: pid "), r.stdout
        site.pid = int(r.stdout.split()[2].rstrip(";"))
        assert wait_exit(pid, DRAIN_S + 5) == 0
        load.stop()
        assert not load.failures, load.failures[:10]
        assert load.ok > 100
    finally:
        if load:
            load.stop()
        site.close()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def sigusr2_starts_the_binary_the_gateway_was_started_from_looked_up_again():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    link = os.path.join(d, "tandem")
    os.symlink(a, link)
    site = Site(link)
    try:
        old = site.pid
        assert exe_of(old) == a
        # A new release installed: the link now names the other build.
        os.unlink(link)
        os.symlink(b, link)
        os.kill(old, signal.SIGUSR2)
        assert wait_exit(old, DRAIN_S + UPGRADE_TIMEOUT_MS / 1000 + 5) == 0, site.log()[-2000:]
        # The gateway serving now is the other build, on the same ports.
        assert site.get("/hello") == 200
        c = http.client.HTTPConnection("127.0.0.1", site.admin_port, timeout=10)
        c.request("GET", "/admin/system", headers={"Authorization": f"Bearer {TOKEN}"})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 200
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        new = [p for p in pids if p != old and os.path.exists(f"/proc/{p}/exe")
               and exe_of(p) == b]
        assert len(new) == 1, new
        site.pid = new[0]
    finally:
        site.close()
        shutil.rmtree(d, ignore_errors=True)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


@t.case
def listeners_are_handed_over_by_name_and_follow_the_new_configuration():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    p2, p3, p4 = free_port(), free_port(), free_port()
    site = None
    try:
        site = Site(a, extra={})
        odd = {"name": "odd, =%@name", "address": f"127.0.0.1:{p2}"}
        fake_admin = {"name": "@admin", "address": f"127.0.0.1:{p3}"}
        cfg = dict(site.cfg)
        cfg["listeners"] = cfg["listeners"] + [odd, fake_admin]
        site.write_config(cfg)
        status, answer = site.upgrade(b)
        assert status == 200, answer
        old, site.pid = site.pid, answer["new_pid"]
        assert wait_exit(old, DRAIN_S + 5) == 0
        for port in (site.port, p2, p3):
            assert get_on(port, "/hello") == 200
        # Same names: every socket handed over (three public, the admin).
        status, answer = site.upgrade(a)
        assert status == 200, answer
        old, site.pid = site.pid, answer["new_pid"]
        assert wait_exit(old, DRAIN_S + 5) == 0
        assert "accepting on 4 listening sockets of pid" in site.log(), site.log()[-2000:]
        for port in (site.port, p2, p3):
            assert get_on(port, "/hello") == 200
        # A listener removed is closed; one added opens its own socket; one
        # renamed at the same address keeps its socket.
        renamed = dict(cfg["listeners"][0], name="main")
        cfg["listeners"] = [renamed, odd, {"name": "new", "address": f"127.0.0.1:{p4}"}]
        site.write_config(cfg)
        status, answer = site.upgrade(b)
        assert status == 200, (answer, site.log()[-2000:])
        old, site.pid = site.pid, answer["new_pid"]
        assert wait_exit(old, DRAIN_S + 5) == 0
        for port in (site.port, p2, p4):
            assert get_on(port, "/hello") == 200
        assert refused(p3)
    finally:
        if site:
            site.close()
        shutil.rmtree(d, ignore_errors=True)


def get_on(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


@t.case
def systemd_is_told_readiness_and_the_new_main_pid():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    site = Site(a, env={"NOTIFY_SOCKET": path})
    try:
        first = sock.recv(4096).decode().split("\n")
        assert first == ["READY=1", f"MAINPID={site.pid}"], first
        old = site.pid
        status, answer = site.upgrade(b)
        assert status == 200, answer
        site.pid = answer["new_pid"]
        # The new gateway says so before the old one may exit: systemd
        # (Type=notify, NotifyAccess=all) follows it as the main process.
        second = sock.recv(4096).decode().split("\n")
        assert second == ["READY=1", f"MAINPID={site.pid}"], second
        assert wait_exit(old, DRAIN_S + 5) == 0
        # Stopped, it says so too.
        os.kill(site.pid, signal.SIGTERM)
        assert sock.recv(4096).decode().split("\n") == ["STOPPING=1", f"MAINPID={site.pid}"]
        assert wait_exit(site.pid, 15) == 0
        site.pid = None
    finally:
        site.close()
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


LEDGER_BIN = os.environ.get("LEDGER_BIN", "build/examples/ledger/tandem-ledger")
START_BALANCE = 1000


def http_call(port, method, path, body=None, headers=None, timeout=30):
    """(status, body bytes) of one request on a connection of its own."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h["Authorization"] = f"Bearer {TOKEN}"
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def metric(admin_port, name):
    _, text = http_call(admin_port, "GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"/metrics has no {name}")


class Transfers:
    """Clients sending transfers of examples/ledger's workflow, each with a
    key of its own, and repeating it with the same key on 202 or 409 (still
    running) until its final answer (200 completed, 402 compensated). Any
    other answer, and any exception, is a client error."""

    def __init__(self, port, accounts, clients=6):
        self.port, self.accounts = port, accounts
        self.lock = threading.Lock()
        self.jobs, self.answers, self.errors = {}, {}, []
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]
        for th in self.threads:
            th.start()

    def run(self, ci):
        n = 0
        while not self.stop_flag:
            n += 1
            key = f"c{ci}-{n}"
            a, b = (self.accounts[(ci + n) % len(self.accounts)],
                    self.accounts[(ci + 2 * n + 1) % len(self.accounts)])
            # Now and then an account that does not exist: the credit is
            # refused and the debit compensated.
            body = {"from": a, "to": b if (n + ci) % 5 else "ghost",
                    "amount": 1 + (n * 7 + ci) % 40}
            with self.lock:
                self.jobs[key] = body
            end = time.monotonic() + 120
            while time.monotonic() < end:
                try:
                    status, data = http_call(self.port, "POST", "/transfers", body,
                                             {"Idempotency-Key": key})
                except Exception as e:  # noqa: BLE001 - every one is a failure
                    status, data = None, repr(e)
                if status in (200, 402):
                    with self.lock:
                        self.answers[key] = (status, json.loads(data)["id"])
                    break
                if status not in (202, 409):
                    with self.lock:
                        self.errors.append((key, status, data))
                time.sleep(0.05)

    def stop(self):
        self.stop_flag = True
        for th in self.threads:
            th.join(150)


def gateway_pid_of(peer_port):
    """The pid of the gateway whose socket is the client end (127.0.0.1,
    peer_port) of a connection to this process, or None."""
    want = f"0100007F:{peer_port:04X}"
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want:
                inode = cols[9]
                break
    if not inode:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")) not in ("tandem-a", "tandem-b"):
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            # A descriptor closed since the listing is skipped, not the
            # process: a busy gateway closes some all the time, and a
            # sender wrongly not found would look like another gateway.
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
            except OSError:
                continue
    return None


def alive(pid):
    """Whether `pid` runs (a zombie has exited; None, a sender no running
    gateway held the socket of, has too)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class StepLog(http.server.ThreadingHTTPServer):
    """A proxy in front of the ledger that notes which gateway sends each
    step request (by its Idempotency-Key) and flags a key sent by one
    gateway while another that sent it before still runs: two gateways
    running the same instance at once."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a gateway that exits mid-request closes its end: not the proxy's error

    def __init__(self, ledger_port):
        self.ledger_port = ledger_port
        self.lock = threading.Lock()
        self.senders = {}  # key -> [pid, ...]
        self.overlaps = []  # (key, earlier pid, pid)
        super().__init__(("127.0.0.1", 0), StepLogHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class StepLogHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # None when the gateway that connected has exited since.
        self.gw_pid = gateway_pid_of(self.client_address[1])

    def log_message(self, *a):
        pass

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        key = self.headers.get("Idempotency-Key")
        srv = self.server
        if key:
            with srv.lock:
                before = srv.senders.setdefault(key, [])
                for p in before:
                    if p != self.gw_pid and alive(p):
                        srv.overlaps.append((key, p, self.gw_pid))
                before.append(self.gw_pid)
        h = {k: v for k, v in self.headers.items()
             if k.lower() in ("content-type", "idempotency-key")}
        c = http.client.HTTPConnection("127.0.0.1", srv.ledger_port, timeout=30)
        c.request(self.command, self.path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        self.send_response(r.status)
        self.send_header("Content-Type", r.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = forward


def workflow_upgrades(journal=None, env=None):
    # A ledger that holds each answer 300 ms, and transfers that wait 400 ms
    # for their instance (then 202): at each upgrade the old gateway runs
    # instances it leaves unfinished when it exits, which the new gateway
    # (an owner of its own in the journal) takes over only then. Two
    # upgrades, a to b then b to a, the second taking over from a gateway
    # that itself came from an upgrade.
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    ledger_port = free_port()
    ledger = subprocess.Popen([LEDGER_BIN, "--listen", f"127.0.0.1:{ledger_port}",
                               "--db", os.path.join(d, "ledger.db"), "--schedulers", "1",
                               "--delay-ms", "300"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    site = load = steps = None
    try:
        wait_port(ledger_port)
        accounts = [f"acct{i}" for i in range(5)]
        for acct in accounts:
            s, _ = http_call(ledger_port, "POST", "/accounts",
                             {"id": acct, "balance": START_BALANCE})
            assert s == 201, s
        os.makedirs(os.path.join(d, "workflows"))
        with open(os.path.join(source_root(), "examples", "ledger", "workflows", "transfer.json")) as f:
            wf = json.load(f)["workflows"][0]
        wf["wait_ms"] = 400
        wf["response"]["compensated"] = {"status": 402}
        with open(os.path.join(d, "workflows", "transfer.json"), "w") as f:
            json.dump({"workflows": [wf]}, f)
        steps = StepLog(ledger_port)
        site = Site(a, routes=ROUTES + [
            {"name": "transfer", "match": {"path": "/transfers", "methods": ["POST"]},
             "workflow": "transfer"}], extra={
            "upstreams": {"up": {"targets": [{"address": "127.0.0.1:9"}]},
                          "ledger": {"targets": [{"address": f"127.0.0.1:{steps.port}"}]}},
            "workflows": {"dir": os.path.join(d, "workflows"),
                          "journal": journal or {"data_dir": os.path.join(d, "data")}}},
            env=env)
        load = Transfers(site.port, accounts)
        recovered = 0
        for i, binary in enumerate((b, a)):
            time.sleep(1.5)
            old = site.pid
            running = metric(site.admin_port, "tandem_workflows_running")
            assert running > 0, f"upgrade {i + 1}: no instance running in the old gateway"
            status, answer = site.upgrade(binary)
            assert status == 200, (status, answer)
            site.pid = answer["new_pid"]
            code = wait_exit(old, DRAIN_S + 15)
            assert code == 0, f"upgrade {i + 1}: the old gateway exited {code}"
            # The new gateway takes over once the old one has exited.
            end = time.monotonic() + 10
            while time.monotonic() < end:
                n = metric(site.admin_port, "tandem_workflows_recovered_total")
                if n:
                    break
                time.sleep(0.1)
            recovered += n
        time.sleep(1.5)
        load.stop()
        assert not load.errors, load.errors[:5]
        # No step was sent by the new gateway while the old one that sent
        # it before still ran.
        assert not steps.overlaps, steps.overlaps[:5]
        # The check saw every gateway send (a sender not found is one that
        # had exited by the time its connection was accepted).
        gateways = {p for ps in steps.senders.values() for p in ps} - {None}
        assert len(gateways) == 3, gateways
        assert recovered > 0, "no instance was left to the new gateway"
        assert len(load.answers) == len(load.jobs) > 20, (len(load.answers), len(load.jobs))
        # Nothing unfinished in the journal, and one instance per transfer.
        wids = {w for _, w in load.answers.values()}
        assert len(wids) == len(load.answers)
        _, data = http_call(site.admin_port, "GET", "/admin/workflows?state=active&limit=1000")
        assert json.loads(data)["workflows"] == [], data[:500]
        journalled, after = set(), ""
        while True:
            _, data = http_call(site.admin_port, "GET", f"/admin/workflows?limit=1000{after}")
            page = json.loads(data)
            journalled.update(w["id"] for w in page["workflows"])
            if not page["next"]:
                break
            after = f"&after={page['next']}"
        assert journalled == wids, (len(journalled), len(wids))
        # Each transfer moved money exactly once (or, compensated, not at
        # all): the ledger's entries per workflow id, and the balances.
        expect = {acct: START_BALANCE for acct in accounts}
        by_key = {}
        for key, (status, _) in load.answers.items():
            if status == 200:
                j = load.jobs[key]
                expect[j["from"]] -= j["amount"]
                expect[j["to"]] += j["amount"]
        for acct in accounts:
            _, data = http_call(ledger_port, "GET", f"/accounts/{acct}/entries")
            doc = json.loads(data)
            assert not doc["truncated"], acct
            assert doc["balance"] == expect[acct], (acct, doc["balance"], expect[acct])
            for e in doc["entries"]:
                if e.get("idempotency_key"):
                    by_key.setdefault(e["idempotency_key"], []).append(e)
        done = {200: 0, 402: 0}
        for key, (status, wid) in load.answers.items():
            debit, credit, undo = (len(by_key.pop(f"{wid}.{s}", []))
                                   for s in ("debit", "credit", "debit.undo"))
            done[status] += 1
            if status == 200:
                assert (debit, credit, undo) == (1, 1, 0), (key, wid, debit, credit, undo)
            else:
                assert credit == 0 and debit == undo <= 1, (key, wid, debit, credit, undo)
        assert not by_key, f"ledger entries of no transfer: {list(by_key)[:5]}"
        assert done[200] and done[402], done
        print(f"# workflows across 2 upgrades ({(journal or {}).get('backend', 'sqlite')}): "
              f"{len(load.answers)} transfers, "
              f"{done[200]} completed, {done[402]} compensated, {recovered} taken over",
              flush=True)
    finally:
        if load:
            load.stop()
        if site:
            site.close()
        if steps:
            steps.shutdown()
            steps.server_close()
        ledger.terminate()
        ledger.wait(10)
        shutil.rmtree(d, ignore_errors=True)


@t.case
def upgrades_under_workflow_requests_finish_every_instance_exactly_once():
    workflow_upgrades()


@t.case
def upgrades_on_a_postgresql_journal_finish_every_instance_exactly_once():
    # The old owner's leases (60 s) are live when it exits: the new gateway
    # takes its instances by owner, not once the leases lapse.
    sys.path.insert(0, os.path.join(source_root(), "tests", "lib"))
    import pgserver
    pg = pgserver.PgServer().start()
    try:
        workflow_upgrades({"backend": "postgres", "replica_id": "gw",
                           "postgres": {"conninfo_env": "TANDEM_PG", "lease_ms": 60000}},
                          {"TANDEM_PG": pg.conninfo})
    finally:
        pg.stop()


@t.case
def upgrade_refuses_a_relative_binary_and_other_methods():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    site = Site(a)
    try:
        status, answer = site.upgrade("relative/path")
        assert status == 400 and answer["error"] == "bad_binary", (status, answer)
        c = http.client.HTTPConnection("127.0.0.1", site.admin_port, timeout=10)
        c.request("GET", "/admin/upgrade", headers={"Authorization": f"Bearer {TOKEN}"})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 405
        assert site.get("/hello") == 200
    finally:
        site.close()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def sigterm_while_the_new_gateway_starts_stops_both():
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    slow = os.path.join(d, "slow-start")
    with open(slow, "w") as f:
        f.write(f"#!/bin/sh\nsleep 3\nexec {b} \"$@\"\n")
    os.chmod(slow, 0o755)
    site = Site(a)
    answers = []
    try:
        def ask():
            try:
                answers.append(site.upgrade(slow))
            except (http.client.HTTPException, OSError) as e:
                answers.append(e)  # the stopping gateway may cut its admin connection

        th = threading.Thread(target=ask, daemon=True)
        th.start()
        time.sleep(0.5)
        old = site.pid
        t0 = time.monotonic()
        os.kill(old, signal.SIGTERM)
        # Stopped at once: no wait for the new gateway's readiness...
        code = wait_exit(old, DRAIN_S + 5)
        waited = time.monotonic() - t0
        site.pid = None
        assert code == 0, site.log()[-2000:]
        assert waited < 2.0, waited
        th.join(10)
        # No success was reported: 500 upgrade_failed, or the connection
        # closed by the stopping gateway.
        assert answers and (isinstance(answers[0], Exception) or answers[0][0] == 500), answers
        # ... and no new gateway took the sockets over: nothing serves.
        time.sleep(3.5)
        assert refused(site.port), "a gateway still serves after SIGTERM"
        assert "upgrade abandoned" in site.log(), site.log()[-2000:]
    finally:
        site.close()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def a_descriptor_listed_twice_is_adopted_once_and_kept_open():
    """TANDEM_LISTEN_FDS set by hand (an operator's, not a peer's) naming
    one descriptor twice, or naming the readiness pipe as a socket: the
    listener keeps the socket at the number it was given, and the second
    mention is refused with a message rather than closing it."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.setblocking(False)  # as a gateway hands it over
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    rfd, wfd = os.pipe()
    os.set_inheritable(fd, True)
    os.set_inheritable(wfd, True)
    d = tempfile.mkdtemp(prefix="tandem-listen-fds-")
    admin_port = free_port()
    os.makedirs(os.path.join(d, "routes"))
    with open(os.path.join(d, "routes", "main.json"), "w") as f:
        json.dump({"routes": ROUTES[:1]}, f)
    cfg = {"listeners": [{"name": "public", "address": f"127.0.0.1:{port}"}],
           "admin": {"address": f"127.0.0.1:{admin_port}"}, "routes": "routes",
           "access_log": False, "drain_timeout_ms": 1000}
    with open(os.path.join(d, "tandem.json"), "w") as f:
        json.dump(cfg, f)
    env = {**os.environ, "TANDEM_LISTEN_FDS": f"public={fd},other={fd},x={wfd}",
           "TANDEM_UPGRADE_READY_FD": str(wfd)}
    err = open(os.path.join(d, "stderr.log"), "w+")
    proc = subprocess.Popen([tandem_bin(), "-c", os.path.join(d, "tandem.json")],
                            stdout=subprocess.DEVNULL, stderr=err, env=env,
                            pass_fds=(fd, wfd))
    os.close(wfd)
    try:
        # The readiness line still comes, on the pipe it was given.
        with os.fdopen(rfd, "rb") as r:
            line = r.readline()
        assert line.startswith(b"ready "), line
        wait_port(admin_port)
        lsock.close()  # the gateway's copy alone is left
        assert get_on(port, "/hello") == 200
        ino = os.stat(f"/proc/{proc.pid}/fd/{fd}")
        assert stat_is_socket(ino), ino
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err.flush()
        with open(err.name) as f:
            log = f.read()
        assert "listed twice" in log, log[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        shutil.rmtree(d, ignore_errors=True)


def stat_is_socket(st):
    import stat
    return stat.S_ISSOCK(st.st_mode)


@t.case
def an_adopted_blocking_socket_does_not_stall_the_gateway():
    """A listening socket handed over in blocking mode (by a process other
    than a gateway): adopted, it must not block a scheduler in accept."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    os.set_inheritable(fd, True)
    d = tempfile.mkdtemp(prefix="tandem-listen-fds-")
    admin_port = free_port()
    os.makedirs(os.path.join(d, "routes"))
    with open(os.path.join(d, "routes", "main.json"), "w") as f:
        json.dump({"routes": ROUTES[:1]}, f)
    cfg = {"runtime": {"schedulers": 2},
           "listeners": [{"name": "public", "address": f"127.0.0.1:{port}"}],
           "admin": {"address": f"127.0.0.1:{admin_port}"}, "routes": "routes",
           "access_log": False, "drain_timeout_ms": 1000}
    with open(os.path.join(d, "tandem.json"), "w") as f:
        json.dump(cfg, f)
    env = {**os.environ, "TANDEM_LISTEN_FDS": f"public={fd}"}
    err = open(os.path.join(d, "stderr.log"), "w+")
    proc = subprocess.Popen([tandem_bin(), "-c", os.path.join(d, "tandem.json")],
                            stdout=subprocess.DEVNULL, stderr=err, env=env, pass_fds=(fd,))
    try:
        wait_port(admin_port)
        lsock.close()
        # The admin API and the listener both answer: no scheduler is held.
        for _ in range(3):
            assert get_on(port, "/hello") == 200
            assert get_on(admin_port, "/healthz") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err.flush()
        with open(err.name) as f:
            log = f.read()
        assert "without yielding" not in log, log[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def naming_a_binary_needs_the_admin_token():
    """Without a token anyone on the host may call the admin API: a binary
    named in the body is refused (it would run anyone's program as the
    gateway's user), and nothing is started."""
    d = tempfile.mkdtemp(prefix="tandem-builds-")
    a, b = two_builds(d)
    site = Site(a, token=False)
    try:
        pid = site.pid
        status, answer = site.upgrade(b, token=False)
        assert status == 403 and answer["error"] == "binary_needs_token", (status, answer)
        assert "admin.token_env" in answer["detail"], answer
        time.sleep(0.5)
        assert site.pid == pid and os.waitpid(pid, os.WNOHANG) == (0, 0)
        assert site.get("/hello") == 200
    finally:
        site.close()
        shutil.rmtree(d, ignore_errors=True)


t.finish()
