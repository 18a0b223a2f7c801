"""Processes killed at random through the admin API under a steady mixed load.

A gateway with a proxied route (keep-alive clients), a direct answer, a slow
upstream route and WebSocket tunnels serves client threads while route files
are rewritten every few seconds (the routes watcher reloads them). The load
runs in calm windows (the p99 to compare with) and chaos windows in turn, so
that the machine's other work weighs on both alike; in the chaos windows a
killer kills, each second, 1% of the live processes (a fraction carries over
to the next second), and in the calm ones makes the same admin API calls
without killing; after each chaos window the load goes on until the tree
has its first shape again (counted with the chaos). It chooses first the kind it has killed least among those
alive: requests, connections, acceptors, connection and listener supervisors,
listeners_sup, the router and its watchers, the upstream servers (each one
is its targets' health checker too), upstreams_sup, jwks_sup, the logger,
gw_events and the admin listener's supervisor, acceptor and connection
supervisor. Only tandem_sup itself and the root process are spared (their
death is the gateway's exit).

Each client connection binds its own loopback source address (127.1.x.y,
never reused in a run), which the gateway shows as its connection
process's detail: so the killer knows which client connection each process
it kills serves. Before each kill it reads the process list and the
supervision tree and works out, from the strategy of the killed process's
supervisor (one_for_one: the process; rest_for_one: it and the children
started after it; one_for_all: all of them) and the parent links of the
process list, every process the kill takes down, and so the client
connections it breaks. A supervisor restarted by escalation (its pid
changed after the kill) takes its own subtree down too. A failed request is
explained only if its connection was among those a kill broke, and it
ended after that kill began (for a killed request process: it was in
flight then). Everything else must succeed.

Asserted at the end:
  - no failure is unexplained (calm windows included), and every kind was
    killed at least once (kills of a kind found alive);
  - the supervision tree has the same shape as before (ids, types,
    strategies, children) with every child running;
  - the gateway's open descriptors, counted with no client connected and
    its idle upstream connections set aside, are back to the baseline;
  - RSS is within 10% of its value after the warm-up, whose second half
    kills too (the first restarts raise the allocator's high-water marks
    once; what grows with more kills is a leak);
  - the p99 of the requests no kill touched is within 2x of the calm
    windows' (requests that started and ended in one), per traffic class;
  - the tree had its first shape again within 17 s of each chaos window;
  - the gateway never exited.
It prints the kills per kind, the requests (total, failed, unexplained),
the restarts per supervisor, fds and RSS before and after, and the p99s.

Usage: kills.py [--duration S] [--calm S] [--windows N] [--warmup S] [--rate F] [--seed N]
                [--clients N] [--only KIND,...] [--verbose]
Defaults are the CI run (about 90 s). tests/chaos/README.md has the longer
run. TANDEM_BIN names the binary; TANDEM_CHAOS_KEEP=1 keeps the logs.
"""
import argparse
import base64
import http.client
import json
import os
import random
import shutil
import socket
import struct
import sys
import threading
import time

SRC = os.environ.get("TANDEM_SRC", os.getcwd())
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Gateway, Upstream  # noqa: E402

CLIENT_TIMEOUT = 10.0
SLOW_MS = 150
RELOAD_EVERY_S = 3.0
AFTER_S = 2.0  # after each chaos window, for the last restarts to settle
SETTLE_MAX_S = 15.0  # ... and at most this long more for the tree's shape

# ---- traffic -----------------------------------------------------------------

_addr_lock = threading.Lock()
_addr_next = [0]


def fresh_source():
    """A loopback address no client connection of this run used before."""
    with _addr_lock:
        n = _addr_next[0]
        _addr_next[0] += 1
    n += 1
    return f"127.1.{n >> 8 & 255}.{n & 255}" if n < 65000 else f"127.2.{n >> 8 & 255}.{n & 255}"


class Record:
    __slots__ = ("cls", "ip", "start", "end", "ok", "error", "phase", "replaces", "crossed")

    def __init__(self, cls, ip, start, end, ok, error, replaces, phase, crossed):
        self.cls, self.ip, self.start, self.end = cls, ip, start, end
        self.ok, self.error, self.phase = ok, error, phase
        # Ended in another window than the one it started in.
        self.crossed = crossed
        # The first request on a connection opened because the last one
        # failed: its time includes waiting for what was restarted.
        self.replaces = replaces


class Load:
    """Client threads; each keeps one connection (a fresh source address
    for each new one) and records every request."""

    def __init__(self, port, clients):
        self.port = port
        self.records = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.phase = "warmup"
        self.window = 0  # counts the phases entered (enter())
        self.threads = []
        per = max(1, clients // 5)
        plan = ([("proxied", self.http_worker)] * (2 * per) + [("direct", self.http_worker)] * per
                + [("slow", self.http_worker)] * per + [("websocket", self.ws_worker)] * per)
        for cls, fn in plan:
            self.threads.append(threading.Thread(target=fn, args=(cls,), daemon=True))

    def start(self):
        for th in self.threads:
            th.start()

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(CLIENT_TIMEOUT + 5)
        assert not any(th.is_alive() for th in self.threads), "a client thread is stuck"

    def enter(self, phase):
        self.phase = phase
        self.window += 1

    def note(self, started, *a):
        """started: (phase, window) when the request began; it is recorded
        under that phase, and as crossed if it ended in another window."""
        phase, window = started
        r = Record(*a, phase, window != self.window)
        with self.lock:
            self.records.append(r)

    PATHS = {"proxied": "/api/echo", "direct": "/hello", "slow": f"/api/slow?ms={SLOW_MS}"}

    def http_worker(self, cls):
        conn, ip, n, replaces, failed = None, None, 0, False, False
        while not self.stop.is_set():
            replaces = False
            if conn is None:
                replaces = failed
                ip = fresh_source()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT,
                                                  source_address=(ip, 0))
            n += 1
            started = (self.phase, self.window)
            t0 = time.monotonic()
            try:
                conn.request("GET", f"{self.PATHS[cls]}{'&' if '?' in self.PATHS[cls] else '?'}n={n}")
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and (cls != "direct" or body == b"hello\n")
                err = None if ok else f"status {r.status}"
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                ok, err = False, type(e).__name__
                conn.close()
                conn = None
            self.note(started, cls, ip, t0, time.monotonic(), ok, err, replaces)
            failed = not ok
            if not ok and conn is not None:
                conn.close()
                conn = None
            if not ok:
                time.sleep(0.05)

    def ws_worker(self, cls):
        s, ip, failed = None, None, False
        while not self.stop.is_set():
            started = (self.phase, self.window)
            t0 = time.monotonic()
            replaces = s is None and failed
            try:
                if s is None:
                    ip = fresh_source()
                    s = ws_open(self.port, ip)
                payload = os.urandom(16)
                ws_send(s, payload)
                got = ws_recv(s)
                ok = got == payload
                err = None if ok else "echo differs"
            except (OSError, ValueError) as e:
                ok, err = False, type(e).__name__
            self.note(started, cls, ip, t0, time.monotonic(), ok, err, replaces)
            failed = not ok
            if not ok:
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.05)
            else:
                time.sleep(0.02)
        if s is not None:
            s.close()


def ws_open(port, ip):
    s = socket.socket()
    s.settimeout(CLIENT_TIMEOUT)
    try:
        s.bind((ip, 0))
        s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                  b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)
            if not b:
                raise ConnectionResetError("closed during the handshake")
            head += b
        if not head.startswith(b"HTTP/1.1 101"):
            raise ValueError(head[:40])
        return s
    except BaseException:
        s.close()
        raise


def ws_send(s, payload):
    mask = os.urandom(4)
    s.sendall(bytes([0x82, 0x80 | len(payload)]) + mask +
              bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise ConnectionResetError("closed")
        out += b
    return out


def ws_recv(s):
    h = recv_exact(s, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return recv_exact(s, n)


# ---- the admin API -----------------------------------------------------------

class Admin:
    def __init__(self, port):
        self.port = port
        self.longest_wait = 0.0

    def call(self, method, path, body=None, tries=None, deadline_s=20.0):
        """Retries through the admin listener's own restarts, for at most
        `deadline_s` (or `tries` attempts); the longest wait is kept. An
        admin API that does not answer within it is a failure of the run."""
        last = None
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < deadline_s and (tries is None or i < tries):
            if i:
                self.longest_wait = max(self.longest_wait, time.monotonic() - t0)
            i += 1
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                headers = {}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                c.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers=headers)
                r = c.getresponse()
                data = r.read()
                c.close()
                if r.status in (200, 202, 404, 409):
                    return r.status, json.loads(data) if data else None
                last = (r.status, data[:200])
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"admin API: {method} {path} unanswered for "
                           f"{time.monotonic() - t0:.0f} s: {last!r}")

    def processes(self):
        return self.call("GET", "/admin/processes?limit=100000")[1]["processes"]

    def tree(self):
        return self.call("GET", "/admin/supervisors")[1]["tree"]


def kind_of(p, by_pid):
    """The kind a process is counted under (None: never killed)."""
    ic, name, k = p.get("initial_call") or "", p.get("name"), p["kind"]
    detail = p.get("detail") or ""
    if ic in ("tandem:root", "tandem_sup"):
        return None
    if k == "request":
        parent = by_pid.get(p.get("parent"))
        return "request" if parent and (parent.get("detail") or "").startswith("public ") else None
    if k == "connection":
        return "connection" if detail.startswith("public ") else None
    if k == "acceptor":
        return "acceptor" if detail == "listener public" else "admin_acceptor"
    if ic == "gw_listener:conns_sup":
        parent = by_pid.get(p.get("parent"))
        admin = parent and parent.get("initial_call") == "gw_listener:admin"
        return "admin_conns_sup" if admin else "conns_sup"
    if ic == "gw_listener:admin":
        return "admin"
    if ic.startswith("gw_listener:"):
        return "listener_sup"
    if ic == "gw_upstream:health" or (name or "").startswith("upstream:"):
        return "upstream"
    if ic == "gw_router:watcher":
        return "watcher"
    if ic == "gw_proxy:tunnel":
        return "tunnel"
    return {"gw_listeners_sup": "listeners_sup",
            "gw_upstreams_sup": "upstreams_sup"}.get(ic, name or ic)


# ---- the supervision tree ----------------------------------------------------

def shape(node):
    """Ids, types and strategies, and every child running. The children of
    a simple_one_for_one supervisor (connections, started on demand) are
    left out; every static child counts, temporary ones included."""
    sup = node.get("supervisor") or {}
    if sup.get("strategy") == "simple_one_for_one":
        return (sup.get("strategy"), ())
    kids = []
    for c in node.get("children", []):
        kids.append((c["id"], c["type"], c["status"] == "running" and bool(c["pid"]),
                     shape(c) if c["type"] == "supervisor" else None))
    return (sup.get("strategy"), tuple(kids))


def shape_paths(sh, path="tandem_sup"):
    """A shape as the set of its children's paths, each with its state."""
    out = set()
    strategy, kids = sh
    for cid, ctype, running, sub in kids:
        p = f"{path}/{cid}"
        out.add(f"{p} ({ctype}, {'running' if running else 'not running'})")
        if sub:
            out |= shape_paths(sub, p)
    out.add(f"{path} strategy {strategy}")
    return out


def sup_index(tree):
    """Every supervisor in the tree: pid -> (path, node)."""
    out = {}

    def walk(node, path):
        out[node["pid"]] = (path, node)
        for c in node.get("children", []):
            if c["type"] == "supervisor" and c.get("pid"):
                walk(c, f"{path}/{c['id']}")
    walk(tree, tree.get("name") or "root")
    return out


class Restarts:
    """Restarts per supervisor path, across the supervisors' own restarts
    (a new incarnation counts from zero)."""

    def __init__(self, tree):
        self.seen = {path: (pid, node["supervisor"]["restarts"])
                     for pid, (path, node) in sup_index(tree).items()}
        self.total = {path: 0 for path in self.seen}

    def update(self, tree):
        for pid, (path, node) in sup_index(tree).items():
            n = node["supervisor"]["restarts"]
            old = self.seen.get(path)
            self.total.setdefault(path, 0)
            self.total[path] += n - old[1] if old and old[0] == pid else n
            self.seen[path] = (pid, n)


def taken_down(victim, procs, tree):
    """Every pid a kill of `victim` takes down, by its supervisor's strategy
    and the parent links."""
    children = {}
    for p in procs:
        children.setdefault(p.get("parent"), []).append(p["pid"])

    def subtree(pid, acc):
        if pid in acc:
            return
        acc.add(pid)
        for c in children.get(pid, ()):
            subtree(c, acc)

    acc = set()
    sups = sup_index(tree)
    by_pid = {p["pid"]: p for p in procs}
    parent = by_pid.get(victim, {}).get("parent")
    if parent in sups:
        node = sups[parent][1]
        strategy = node["supervisor"]["strategy"]
        order = [c["pid"] for c in node.get("children", []) if c.get("pid")]
        if strategy == "one_for_all":
            hit = order
        elif strategy == "rest_for_one" and victim in order:
            hit = order[order.index(victim):]
        else:
            hit = [victim]
        for pid in hit:
            subtree(pid, acc)
    else:
        subtree(victim, acc)
    return acc


def connection_ips(pids, by_pid):
    """The client addresses of the connections among `pids` (a request
    counts as its connection's)."""
    ips = set()
    for pid in pids:
        p = by_pid.get(pid)
        # A request, or a tunnel, counts as the connection it serves.
        for _ in range(4):
            if not p or p["kind"] == "connection":
                break
            p = by_pid.get(p.get("parent"))
        if not p:
            continue
        d = p.get("detail") or ""
        if p.get("kind") == "connection" and d.startswith("public "):
            ips.add(d.split(" ", 1)[1])
    return ips


class Kill:
    def __init__(self, kind, pid, t0, t1, ips, only_in_flight, parent_sup):
        self.kind, self.pid, self.t0, self.t1 = kind, pid, t0, t1
        self.ips, self.only_in_flight, self.parent_sup = ips, only_in_flight, parent_sup


class Killer:
    def __init__(self, admin, rate, rng, restarts, verbose, only=None, dry=False):
        self.admin, self.rate, self.rng, self.only = admin, rate, rng, only
        # Dry: everything but the kill itself, the same admin API calls
        # included (the warm-up and the calm windows, so that the baseline
        # includes what the admin API's answers cost). The main thread
        # switches it between windows (pause()).
        self.dry = dry
        self.busy = threading.Lock()  # held through each kill_one
        self.restarts, self.verbose = restarts, verbose
        self.kills = []
        self.escalations = []
        self.slow = []
        self.by_kind = {}
        self.seen_kinds = set()
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            due = 0.0
            next_tick = time.monotonic()
            while not self.stop.is_set():
                procs = self.admin.processes()
                due += self.rate * len(procs)
                while due >= 1.0 and not self.stop.is_set():
                    due -= 1.0
                    with self.busy:
                        self.kill_one()
                next_tick += 1.0
                self.stop.wait(max(0.0, next_tick - time.monotonic()))
        except Exception as e:  # reported by the main thread
            self.error = e

    def pause(self):
        """Dry from now on, and returns once no kill is in flight."""
        self.dry = True
        with self.busy:
            pass

    def kill_one(self):
        dry = self.dry
        procs = self.admin.processes()
        tree = self.admin.tree()
        self.restarts.update(tree)
        by_pid = {p["pid"]: p for p in procs}
        sups = sup_index(tree)
        kinds = {}
        for p in procs:
            k = kind_of(p, by_pid)
            if k is None:
                continue
            # Spare a supervisor near its restart intensity: going past it
            # is tandem_sup's decision to stop the gateway, not a fault.
            sup = sups.get(p.get("parent"))
            if sup:
                s = sup[1]["supervisor"]
                if s["intensity"] and s["restarts_in_period"] >= s["intensity"] - 2:
                    continue
            if self.only and k not in self.only:
                continue
            kinds.setdefault(k, []).append(p)
        if not kinds:
            return
        self.seen_kinds.update(kinds)
        if dry:
            # What a kill would read after it (below), so that a dry
            # window asks the admin API for as much as a killing one; the
            # choice is left alone, so that --seed repeats the kills.
            self.admin.tree()
            self.admin.tree()
            return
        least = min(self.by_kind.get(k, 0) for k in kinds)
        kind = self.rng.choice(sorted(k for k in kinds if self.by_kind.get(k, 0) == least))
        victim = self.rng.choice(kinds[kind])
        pid = victim["pid"]
        down = taken_down(pid, procs, tree)
        ips = connection_ips(down, by_pid)
        parent_sup = sups.get(victim.get("parent"), (None,))[0]
        t0 = time.monotonic()
        try:
            status, _ = self.admin.call("POST", f"/admin/processes/{pid.strip('<>')}/kill",
                                        {"reason": "kill"}, tries=1)
        except RuntimeError:
            status = None  # e.g. the admin listener killed with our request in it
        t1 = time.monotonic()
        if status == 404:
            return  # gone already: not a kill
        if status != 200:
            # `kill` cannot be trapped: anything but 200 is the kill not
            # taking effect within the admin API's wait (or our own
            # request killed with the admin listener: it did).
            self.slow.append((kind, pid, status))
        # A supervisor restarted by escalation took its subtree down too:
        # one that is gone from the tree after the kill (same path, new pid).
        after_paths = {path for path, _n in sup_index(self.admin.tree()).values()}
        after_pids = set(sup_index(self.admin.tree()))
        for spid, (path, _node) in sups.items():
            if spid not in down and path in after_paths and spid not in after_pids:
                ips |= connection_ips(taken_down(spid, procs, tree), by_pid)
                self.escalations.append((kind, path))
        k = Kill(kind, pid, t0, t1, ips, kind in ("request", "tunnel"), parent_sup)
        self.kills.append(k)
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if self.verbose:
            chain, p = [], victim
            while p:
                chain.append(f"{p['pid']} {p['kind']} {p.get('detail') or ''}".strip())
                p = by_pid.get(p.get("parent"))
            print(f"kill {kind} {pid} ({victim.get('name') or victim.get('initial_call')}) "
                  f"status {status}: {len(down)} processes, connections {sorted(ips)} "
                  f"at {t0:.3f}; {' < '.join(chain[:4])}", flush=True)


def explained(rec, kills, successes):
    """A failure on a connection a kill broke, after the kill began. A
    killed request (or tunnel) process leaves its connection open when it
    had not started its answer: it explains the failure it caused, not one
    after a later success on that connection."""
    for k in kills:
        if rec.ip not in k.ips or rec.end < k.t0:
            continue
        if k.only_in_flight and any(k.t1 < a and b < rec.start
                                    for a, b in successes.get(rec.ip, ())):
            continue
        return True
    return False


def touched(rec, kills):
    """A request in flight on a connection while a kill took it down, or
    the first one on the connection that replaced it."""
    return rec.replaces or any(rec.ip in k.ips and rec.start <= k.t1 and rec.end >= k.t0
                               for k in kills)


# ---- the gateway's resources -------------------------------------------------

def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid, ports=None):
    """Open descriptors by what they are (sockets by state, and for
    established ones by peer: `ports` maps a port to a name)."""
    ports = ports or {}
    inodes = {}
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f.replace("/proc/", f"/proc/{pid}/")) as fh:
                next(fh)
                for line in fh:
                    x = line.split()
                    local = int(x[1].rsplit(":", 1)[1], 16)
                    remote = int(x[2].rsplit(":", 1)[1], 16)
                    state = {"0A": "listen", "01": "established"}.get(x[3], "tcp" + x[3])
                    if state == "established":
                        state += " " + ports.get(local, ports.get(remote, "other"))
                    inodes[x[9]] = state
        except OSError:
            pass
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:["):
            st = inodes.get(t[8:-1])
            t = f"tcp {st}" if st else "socket"
        elif t.startswith("pipe:"):
            t = "pipe"
        elif t.startswith("/tmp/"):
            t = "file"
        out[t] = out.get(t, 0) + 1
    return out


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid, timeout=8.0):
    """RSS once the gateway has been quiet for a while: it gives its heap's
    free pages back after half a second without work (the runtime's heap
    trim), so a reading taken sooner after a load still counts the freed
    buffers of its last requests. Read every 0.5 s, from 1 s on, until two
    readings in a row are within 1% of each other."""
    time.sleep(1.0)
    end = time.monotonic() + timeout
    last = rss_bytes(pid)
    while time.monotonic() < end:
        time.sleep(0.5)
        now = rss_bytes(pid)
        if abs(now - last) <= 0.01 * last:
            return now
        last = now
    return last


def quiet_fds(admin, pid, ports, timeout=20.0):
    """Open descriptors once no client connection is left: (the count
    without the idle pooled upstream connections, whose number follows the
    load's peak, and without the admin API's own; all of them; the idle
    ones; by kind)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sysd = admin.call("GET", "/admin/system")[1]
        if sum(li["connections"] for li in sysd["listeners"]) == 0:
            ups = admin.call("GET", "/admin/upstreams")[1]["upstreams"]
            idle = sum(t.get("idle", 0) for u in ups for t in u["targets"])
            active = sum(t.get("active", 0) for u in ups for t in u["targets"])
            time.sleep(0.3)  # our admin connections closed on both sides
            kinds = fd_kinds(pid, ports)
            n = sum(kinds.values())
            last = n - idle - kinds.get("tcp established admin", 0), n, idle, kinds
            if active == 0 and kinds.get("tcp established upstream", 0) == idle:
                return last
        time.sleep(0.2)
    return last  # not settled: the comparison shows what is left


def p99(values):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))]


# ---- the run -----------------------------------------------------------------

def routes(version):
    return [
        {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n"}},
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
         "strip_prefix": True},
        # Rewritten on each reload, so that each one is a new table.
        {"name": f"reload-{version}", "match": {"path": f"/reload/{version}"},
         "respond": {"status": 200, "body": f"{version}\n"}},
    ]


def gateway_config(ups):
    return {"up": {"targets": [{"address": u.address} for u in ups],
                   "health": {"active": {"path": "/echo", "interval_ms": 500,
                                         "timeout_ms": 2000}}}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of chaos")
    ap.add_argument("--calm", type=float, default=15.0, help="seconds of load without chaos")
    ap.add_argument("--windows", type=int, default=5,
                    help="calm and chaos windows in turn (the seconds of each are shared out)")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.01, help="fraction of live processes per s")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--only", help="kill only these kinds (comma-separated)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}", flush=True)

    ups = [Upstream("u1"), Upstream("u2")]
    gw = None
    problems = []
    keep = os.environ.get("TANDEM_CHAOS_KEEP") == "1"
    try:
        gw = Gateway(routes(0), upstreams=gateway_config(ups))
        pid = gw.proc.pid
        admin = Admin(gw.admin_port)
        ports = {gw.port: "client", gw.admin_port: "admin"}
        ports.update({u.port: "upstream" for u in ups})
        shape0 = shape(admin.tree())

        # Warm-up: the same load, then the baseline with no client left.
        rss_seen = []
        sampling = threading.Event()

        def sampler():
            while not sampling.wait(5.0):
                try:
                    rss_seen.append(rss_bytes(pid) / 1e6)
                except OSError:
                    return
        threading.Thread(target=sampler, daemon=True).start()
        warm = Load(gw.port, args.clients)
        warm.start()
        observer = Killer(admin, args.rate, random.Random(seed), Restarts(admin.tree()), False,
                          dry=True)
        observer.thread.start()
        time.sleep(args.warmup)
        observer.stop.set()
        observer.thread.join(60)
        warm.finish()
        fds0, raw0, idle0, kinds0 = quiet_fds(admin, pid, ports)
        rss_plain = rss_bytes(pid)
        # Then a first round of kills under the same load: the first
        # restarts raise the allocator's and the stack pools' high-water
        # marks once (a few MB, flat after), so RSS is compared from there:
        # what grows with more kills is a leak.
        warm2 = Load(gw.port, args.clients)
        warm2.phase = "chaos"
        warm2.start()
        first = Killer(admin, args.rate, random.Random(seed + 1), Restarts(admin.tree()), False)
        first.thread.start()
        time.sleep(args.warmup)
        first.stop.set()
        first.thread.join(60)
        time.sleep(2.0)
        warm2.finish()
        if first.error:
            problems.append(f"the killer stopped in the warm-up: {first.error}")
        quiet_fds(admin, pid, ports)
        rss0 = settled_rss(pid)
        mem0 = admin.call("GET", "/admin/system")[1]["memory"]

        # The run: calm and chaos windows in turn, so that what else the
        # machine does at the time weighs on both p99s alike. The killer
        # observes in both (dry in the calm ones). After each chaos window
        # the load goes on, counted with the chaos, for at least AFTER_S and
        # until the tree has its first shape again (every child running).
        load = Load(gw.port, args.clients)
        load.enter("calm")
        load.start()
        restarts = Restarts(admin.tree())
        killer = Killer(admin, args.rate, rng, restarts, args.verbose,
                        set(args.only.split(",")) if args.only else None, dry=True)
        killer.thread.start()
        reloads = [0]
        stop_reloads = threading.Event()

        def reloader():
            while not stop_reloads.wait(RELOAD_EVERY_S):
                reloads[0] += 1
                gw.write_routes(routes(reloads[0]))
        rl = threading.Thread(target=reloader, daemon=True)
        rl.start()
        rss_calm = None
        unsettled = 0
        for w in range(args.windows):
            if w:
                load.enter("calm")
            time.sleep(args.calm / args.windows)
            rss_calm = rss_calm or rss_bytes(pid)
            load.enter("chaos")
            killer.dry = False
            time.sleep(args.duration / args.windows)
            killer.pause()
            # The last restarts settle under load; a failure now is still
            # explained by the kills.
            load.enter("after")
            time.sleep(AFTER_S)
            settle_by = time.monotonic() + SETTLE_MAX_S
            while shape(admin.tree()) != shape0 and time.monotonic() < settle_by:
                time.sleep(0.2)
            unsettled += time.monotonic() >= settle_by
        killer.stop.set()
        killer.thread.join(60)
        load.finish()
        stop_reloads.set()
        rl.join()
        if killer.error:
            problems.append(f"the killer stopped: {killer.error}")

        alive = gw.proc.poll() is None
        if alive:
            try:
                admin.call("GET", "/admin/system")
            except RuntimeError as e:
                problems.append(str(e))
                alive = False  # nothing more can be asked
        tree1 = admin.tree() if alive else None
        if tree1:
            restarts.update(tree1)
        fds1, raw1, idle1, kinds1 = quiet_fds(admin, pid, ports) if alive else (None,) * 4
        # Settled as rss0 was: the heap trimmed, and schedulers with
        # nothing to run have given pooled stacks back.
        rss1 = settled_rss(pid) if alive else None
        mem1 = admin.call("GET", "/admin/system")[1]["memory"] if alive else None
        _, v = admin.call("GET", "/admin/routes") if alive else (None, None)

        # ---- the figures ----
        recs = load.records + warm2.records
        killer.kills += first.kills
        # A request belongs to the window it started in. A failure of one
        # that started in a calm window is explained only as any other is:
        # by a kill that broke its connection (one in flight as the chaos
        # began, or one that failed on a connection broken in the last
        # chaos window); else it failed without chaos.
        chaos = [r for r in recs if r.phase in ("chaos", "after")]
        calm = [r for r in recs if r.phase == "calm"]
        successes = {}
        for r in chaos + calm:
            if r.ok:
                successes.setdefault(r.ip, []).append((r.start, r.end))
        failed = [r for r in chaos if not r.ok]
        unexplained = [r for r in failed if not explained(r, killer.kills, successes)]
        calm_failed = [r for r in calm if not r.ok]
        calm_unexplained = [r for r in calm_failed
                            if not explained(r, killer.kills, successes)]
        print(f"kills: {len(killer.kills)} ({len(first.kills)} in the warm-up) in "
              f"{args.duration + args.warmup:.0f} s (rate {args.rate:.3f} of live processes "
              f"per second); per kind in the run:")
        for kind in sorted(set(killer.by_kind) | killer.seen_kinds):
            print(f"  {kind:16} {killer.by_kind.get(kind, 0)}")
        for kind, path in killer.escalations:
            print(f"  escalation: killing a {kind} restarted {path}")
        print(f"requests: calm {len(calm)} (failed {len(calm_failed)}, unexplained "
              f"{len(calm_unexplained)}), chaos {len(chaos)}, failed {len(failed)}, "
              f"unexplained {len(unexplained)}")
        by_cls = {}
        for r in chaos:
            c = by_cls.setdefault(r.cls, [0, 0])
            c[0] += 1
            c[1] += not r.ok
        print("  per class (total/failed): " +
              ", ".join(f"{c} {n}/{f}" for c, (n, f) in sorted(by_cls.items())))
        for r in (calm_unexplained + unexplained)[:20]:
            print(f"  unexplained: {r.phase} {r.cls} {r.ip} {r.error} at "
                  f"{r.start:.3f}..{r.end:.3f}")
        print("restarts per supervisor:")
        for path, n in sorted(restarts.total.items()):
            print(f"  {path:40} {n}")
        print(f"route reloads: {reloads[0]}; longest wait for the admin API: "
              f"{admin.longest_wait:.1f} s")
        print(f"fds: before {fds0} (open {raw0}, idle upstream {idle0}), "
              f"after {fds1} (open {raw1}, idle upstream {idle1})")
        if kinds1 != kinds0:
            print(f"  descriptors before {sorted(kinds0.items())}\n"
                  f"              after  {sorted((kinds1 or {}).items())}")
        print(f"rss: after the warm-up {rss_plain / 1e6:.1f} MB, after its kills "
              f"{rss0 / 1e6:.1f} MB, after the first calm window {rss_calm / 1e6:.1f} MB, "
              f"after {(rss1 or 0) / 1e6:.1f} MB")
        sampling.set()
        print("rss every 5 s (MB): " + " ".join(f"{x:.1f}" for x in rss_seen))
        print(f"runtime memory: before {mem0}\n                after  {mem1}")
        for kind, kpid, status in killer.slow:
            print(f"  kill of {kind} {kpid} answered {status}")
        ok_lat = {}
        # Calm: what started and ended in one calm window; chaos: what
        # started in a chaos window or the settling after it, and no kill
        # touched.
        for phase, rs in (("calm", calm), ("chaos", chaos)):
            for r in rs:
                if r.ok and not (r.crossed if phase == "calm" else touched(r, killer.kills)):
                    ok_lat.setdefault((r.cls, phase), []).append((r.end - r.start) * 1000)
        for cls in sorted({c for c, _ in ok_lat}):
            a, b = p99(ok_lat.get((cls, "calm"), [])), p99(ok_lat.get((cls, "chaos"), []))
            print(f"p99 {cls:10} without chaos {a:.1f} ms, with chaos (unaffected) "
                  f"{b:.1f} ms" if a is not None and b is not None else f"p99 {cls}: no data")
            if a is None or b is None:
                problems.append(f"no latency figures for {cls}")
            elif b > 2 * a:
                problems.append(f"p99 of {cls}: {b:.1f} ms with chaos, over twice {a:.1f} ms")

        # ---- the assertions ----
        if gw.proc.poll() is not None:
            problems.append(f"the gateway exited with {gw.proc.returncode}")
        elif not alive:
            pass
        else:
            if shape(tree1) != shape0:
                a, b = shape_paths(shape0), shape_paths(shape(tree1))
                problems.append("the tree differs from before the run:" +
                                "".join(f"\n  before only: {x}" for x in sorted(a - b)) +
                                "".join(f"\n  after only:  {x}" for x in sorted(b - a)))
            if fds1 > fds0:
                problems.append(f"fds: {fds1} after, {fds0} before")
            if abs(rss1 - rss0) > 0.10 * rss0:
                problems.append(f"rss: {rss1} after, {rss0} after the warm-up's kills")
        if unexplained:
            problems.append(f"{len(unexplained)} failed requests not explained by a kill")
        never = sorted(k for k in killer.seen_kinds if not killer.by_kind.get(k))
        if never:
            problems.append(f"kinds never killed: {never}")
        if len(chaos) < 100 or not killer.kills:
            problems.append(f"too little happened: {len(chaos)} requests, "
                            f"{len(killer.kills)} kills")
        if calm_unexplained:
            problems.append(f"{len(calm_unexplained)} requests failed without chaos")
        if unsettled:
            problems.append(f"the tree had not its first shape again {AFTER_S + SETTLE_MAX_S:.0f} s "
                            f"after {unsettled} of the {args.windows} chaos windows")
    finally:
        if gw is not None:
            code = gw.stop()
            if code not in (0, None):
                problems.append(f"the gateway's exit code on SIGTERM: {code}")
            if problems or keep:
                print(f"gateway log: {gw.stderr.name}")
                if not keep:
                    print(gw.log()[-3000:])
            if not keep:
                gw.close()
        for u in ups:
            u.stop()
    for p in problems:
        print(f"FAIL {p}")
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed", flush=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
