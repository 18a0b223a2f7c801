"""`tandem ctl top` in a real terminal: tmux runs it against the real
tandem binary (a pane of 120x40, keys sent with send-keys, the screen read
with capture-pane). The screen shows the schedulers and the processes,
refreshes in place on each sample, re-sorts and filters on keys, and
restores the terminal on q and on SIGTERM; a dropped stream is reported and
dialled again. A scripted event stream (a small Python server speaking the
frame format) drives what the real gateway cannot be made to send on
demand: a `lagged` frame and a frame over the size limit."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, free_port, tandem_bin, wait_port  # noqa: E402

t = TestRun("ctl_top")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n"}}
COLS, ROWS = 120, 40


def admin_get(port, path, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def has_event_stream(port):
    """The binary serves GET /admin/events (frames as in the dashboard's
    plan); without it the screen cannot fill from the real gateway."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(f"GET /admin/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = s.recv(4096).decode(errors="replace")
        return head.startswith("HTTP/1.1 200")
    finally:
        s.close()


class Tmux:
    """A tmux server of its own (its socket in a temporary directory, so
    that nothing else's sessions are touched) with one 120x40 pane running
    a plain shell."""

    def __init__(self, cols=COLS, rows=ROWS):
        self.dir = tempfile.mkdtemp(prefix="tandem-top-")
        self.sock = os.path.join(self.dir, "tmux.sock")
        env = dict(os.environ)
        env.pop("TMUX", None)
        env.pop("TANDEM_ADMIN_TOKEN", None)
        self.env = env
        self.tmux("new-session", "-d", "-x", str(cols), "-y", str(rows), "-s", "t",
                  "bash --norc --noprofile")
        self.tmux("set-option", "-g", "status", "off")
        self.wait(lambda s: s.strip(), 5)
        self.run("PS1='$ '; clear")
        self.wait(lambda s: s.strip() == "$", 5)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def run(self, line):
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t")

    def history_size(self):
        return int(self.tmux("display-message", "-p", "-t", "t", "#{history_size}").strip())

    def alternate_on(self):
        return self.tmux("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "1"

    def wait(self, pred, timeout=10.0):
        end = time.time() + timeout
        s = self.screen()
        while time.time() < end:
            if pred(s):
                return s
            time.sleep(0.1)
            s = self.screen()
        raise AssertionError("the screen never matched; it shows:\n" + s)

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True,
                       timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def start_top(tm, args, tag="top"):
    """Runs top in the pane between two `stty -g` (the terminal's modes
    before and after) and prints the exit code when it ends."""
    before = os.path.join(tm.dir, f"{tag}.before")
    after = os.path.join(tm.dir, f"{tag}.after")
    cmd = " ".join(args)
    # The markers are echoed as two words joined, so that the command line
    # itself (on the screen once top ends) never matches them.
    tm.run(f"stty -g > {before}; {cmd}; echo \"exit=\"$?; "
           f"stty -g > {after}; echo {tag}-\"done\"")
    return before, after


def top_cmd(*extra):
    return [tandem_bin(), "ctl", *extra, "top"]


def table_rows(screen):
    """(pid, name, kind, reductions, mailbox, memory) of each process row."""
    rows = []
    for line in screen.splitlines():
        m = re.match(r"^(<0\.\d+\.\d+>)\s+(.*?)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\S+)\s*$", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), int(m.group(4)), int(m.group(5)),
                         m.group(6)))
    return rows


def bytes_of(human):
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return int(human[:-1]) * mult[human[-1]] if human[-1] in mult else int(human)


def sample_no(screen):
    m = re.search(r"sample #(\d+)", screen)
    return int(m.group(1)) if m else None


def pid_of(port, name):
    s, body = admin_get(port, f"/admin/processes?name={name}&limit=5")
    assert s == 200, (s, body)
    for p in json.loads(body)["processes"]:
        if p["name"] == name:
            return p["pid"]
    raise AssertionError(f"no process named {name}")


def top_pid(tm):
    """The pid of the top running in the pane (its shell's child)."""
    shell = tm.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip()
    out = subprocess.run(["pgrep", "-P", shell, "-f", "ctl"], capture_output=True, text=True)
    pids = out.stdout.split()
    assert len(pids) == 1, out
    return int(pids[0])


class Real:
    """The real gateway with its admin API, and the `-c` ctl needs."""

    def __init__(self):
        self.g = Gateway([HELLO])
        if not has_event_stream(self.g.admin_port):
            self.g.close()
            raise AssertionError("this tandem has no GET /admin/events: ctl top reads it")
        self.port = self.g.admin_port

    def cmd(self, *extra):
        return top_cmd("-c", self.g.config, *extra)

    def close(self):
        self.g.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---- against the real gateway ---------------------------------------------------------------


@t.case
def screen_shows_the_schedulers_and_a_process_known_to_exist():
    with Real() as g, Tmux() as tm:
        start_top(tm, g.cmd())
        s = tm.wait(lambda s: "sched  0" in s and "sched  1" in s and table_rows(s), 15)
        assert re.search(r"sched  0 \[[| ]{16}\]\s+\d+\.\d% rq \d+", s), s
        assert "memory    rss" in s and "requests " in s and "/s" in s, s
        sup = pid_of(g.port, "tandem_sup")
        # tandem_sup is the root: every filter-less list sorted by
        # reductions of a 40-row screen holds it in an idle gateway.
        s = tm.wait(lambda s: any(r[0] == sup and r[1] == "tandem_sup" for r in table_rows(s)),
                    10)
        # Every line fits: none wrapped onto the next row, so the rows are
        # in the order drawn (header first, table head before the rows).
        lines = s.splitlines()
        assert lines[0].startswith("tandem ") and lines[1].startswith("sched  0"), s
        head = next(i for i, x in enumerate(lines) if x.startswith("PID "))
        assert all(re.match(r"<0\.", x) for x in lines[head + 1:] if x.strip()), s
        tm.keys("q")
        tm.wait(lambda s: "top-done" in s, 10)


@t.case
def pressing_m_sorts_by_mailbox_and_M_by_memory():
    with Real() as g, Tmux() as tm:
        start_top(tm, g.cmd())
        tm.wait(lambda s: "sort reductions" in s and len(table_rows(s)) > 5, 15)
        tm.keys("M")
        s = tm.wait(lambda s: "sort memory" in s and len(table_rows(s)) > 5, 5)
        mem = [bytes_of(r[5]) for r in table_rows(s)]
        assert mem == sorted(mem, reverse=True), s
        tm.keys("m")
        s = tm.wait(lambda s: "sort mailbox" in s and len(table_rows(s)) > 5, 5)
        boxes = [r[4] for r in table_rows(s)]
        assert boxes == sorted(boxes, reverse=True), s
        # The order is the admin API's for that sort: the rows' pids are
        # those /admin/processes?sort=memory lists first (memory moves
        # little in an idle gateway; compared as sets of the top rows).
        tm.keys("M")
        s = tm.wait(lambda s: "sort memory" in s and len(table_rows(s)) > 5, 5)
        shown = [r[0] for r in table_rows(s)]
        st, body = admin_get(g.port, f"/admin/processes?sort=memory&limit={len(shown)}")
        listed = [p["pid"] for p in json.loads(body)["processes"]]
        assert len(set(shown) & set(listed)) >= len(shown) - 2, (shown, listed)
        tm.keys("Tab")
        tm.wait(lambda s: "sort reductions" in s, 5)
        tm.keys("q")
        tm.wait(lambda s: "top-done" in s, 10)


@t.case
def k_filters_by_kind_and_slash_by_name():
    with Real() as g, Tmux() as tm:
        start_top(tm, g.cmd())
        tm.wait(lambda s: "kind all" in s and table_rows(s), 15)
        kinds_seen = {r[2] for r in table_rows(tm.screen())}
        assert len(kinds_seen) > 1, kinds_seen
        # all -> request -> connection -> server -> supervisor
        for k in ("request", "connection", "server", "supervisor"):
            tm.keys("k")
            s = tm.wait(lambda s, k=k: f"kind {k} " in s, 5)
        s = tm.wait(lambda s: "kind supervisor" in s and table_rows(s), 5)
        rows = table_rows(s)
        assert rows and all(r[2] == "supervisor" for r in rows), s
        assert any(r[1] == "tandem_sup" for r in rows), s
        st, body = admin_get(g.port, "/admin/processes?kind=supervisor&limit=1")
        assert f"{json.loads(body)['matched']} matched" in s, s
        tm.keys("/")
        tm.wait(lambda s: "name filter" in s, 5)
        tm.keys("-l", "router")
        tm.keys("Enter")
        s = tm.wait(lambda s: "name router" in s and "kind supervisor" in s, 5)
        # router is a server: with the supervisor filter nothing matches
        assert table_rows(s) == [], s
        tm.keys("K")  # back to server
        s = tm.wait(lambda s: "kind server" in s and table_rows(s), 5)
        assert [r[1] for r in table_rows(s)] == ["router"], s
        tm.keys("q")
        tm.wait(lambda s: "top-done" in s, 10)


@t.case
def q_exits_and_restores_the_terminal():
    with Real() as g, Tmux() as tm:
        tm.run("echo before-$((6*7))")
        tm.wait(lambda s: "before-42" in s, 5)
        before, after = start_top(tm, g.cmd())
        tm.wait(lambda s: table_rows(s), 15)
        assert tm.alternate_on()
        assert "before-42" not in tm.screen()  # a screen of its own
        tm.keys("q")
        s = tm.wait(lambda s: "top-done" in s, 10)
        assert "exit=0" in s, s
        assert not tm.alternate_on()
        # the shell's screen is back as it was, with nothing of top's on it
        assert "before-42" in s and "sched" not in s and "PID" not in s, s
        with open(before) as f, open(after) as f2:
            assert f.read() == f2.read(), "the terminal's modes were not restored"


@t.case
def sigterm_and_sigint_restore_the_terminal_too():
    with Real() as g, Tmux() as tm:
        for sig, tag in ((signal.SIGTERM, "term"), (signal.SIGINT, "int")):
            before, after = start_top(tm, g.cmd(), tag=tag)
            tm.wait(lambda s: table_rows(s), 15)
            os.kill(top_pid(tm), sig)
            s = tm.wait(lambda s, tag=tag: f"{tag}-done" in s, 10)
            assert not tm.alternate_on()
            with open(before) as f, open(after) as f2:
                assert f.read() == f2.read(), f"modes not restored after {sig}"
            tm.run("clear")
        # ^C typed is a key in raw mode: it quits as q does
        before, after = start_top(tm, g.cmd(), tag="ctrlc")
        tm.wait(lambda s: table_rows(s), 15)
        tm.keys("C-c")
        s = tm.wait(lambda s: "ctrlc-done" in s, 10)
        with open(before) as f, open(after) as f2:
            assert f.read() == f2.read()


@t.case
def it_refreshes_in_place_on_each_sample():
    with Real() as g, Tmux() as tm:
        start_top(tm, g.cmd())
        s1 = tm.wait(lambda s: sample_no(s) is not None and table_rows(s), 15)
        n1 = sample_no(s1)
        s2 = tm.wait(lambda s: (sample_no(s) or 0) >= n1 + 2, 10)
        up1 = re.search(r" up (\S+) ", s1).group(1)
        up2 = re.search(r" up (\S+) ", s2).group(1)
        assert up1 != up2, (s1, s2)
        # In place: the header stays on the first row, nothing scrolled
        # into the pane's history.
        assert s2.splitlines()[0].startswith("tandem "), s2
        assert tm.history_size() == 0
        # A process that appears shows up without a key: 20 keep-alive
        # connections make 20 connection processes.
        tm.keys("k", "k")
        tm.wait(lambda s: "kind connection" in s, 5)
        socks = []
        try:
            for _ in range(20):
                c = socket.create_connection(("127.0.0.1", g.g.port), timeout=5)
                c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                c.recv(4096)
                socks.append(c)
            tm.wait(lambda s: len([r for r in table_rows(s) if r[2] == "connection"]) >= 20,
                    10)
        finally:
            for c in socks:
                c.close()
        tm.keys("q")
        tm.wait(lambda s: "top-done" in s, 10)


@t.case
def a_dropped_stream_is_reported_and_dialled_again():
    g = Gateway([HELLO])
    try:
        if not has_event_stream(g.admin_port):
            raise AssertionError("this tandem has no GET /admin/events")
        with Tmux() as tm:
            start_top(tm, top_cmd("-c", g.config))
            tm.wait(lambda s: "stream connected" in s and sample_no(s), 15)
            g.stop()
            s = tm.wait(lambda s: "stream lost" in s and "reconnecting" in s, 10)
            assert tm.alternate_on()  # still running, still on its screen
            # the same configuration (the same admin port) again
            g.proc = subprocess.Popen([tandem_bin(), "-c", g.config], stdout=g.stdout,
                                      stderr=g.stderr)
            wait_port(g.admin_port)
            n = sample_no(tm.screen()) or 0
            tm.wait(lambda s: re.search(r"stream connected \(\d+ drops, the last: ", s) and
                    (sample_no(s) or 0) > n, 20)
            tm.keys("q")
            s = tm.wait(lambda s: "top-done" in s, 10)
            assert "exit=0" in s, s
    finally:
        g.close()


@t.case
def without_a_terminal_it_refuses_and_once_prints_one_frame():
    with Real() as g:
        r = subprocess.run(g.cmd(), capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and "needs a terminal" in r.stderr and "--once" in r.stderr, r
        assert r.stdout == "", r
        r = subprocess.run(g.cmd("--once", "--limit", "50"), capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r
        assert "\x1b" not in r.stdout, r.stdout
        assert re.search(r"sched  0 \[", r.stdout) and "PID" in r.stdout, r.stdout
        assert any(row[1] == "tandem_sup" for row in table_rows(r.stdout)), r.stdout
        r = subprocess.run(g.cmd("--once", "--kind", "supervisor"), capture_output=True,
                           text=True, timeout=20)
        rows = table_rows(r.stdout)
        assert r.returncode == 0 and rows and all(x[2] == "supervisor" for x in rows), r
        r = subprocess.run(g.cmd("--once", "--sort", "age"), capture_output=True, text=True,
                           timeout=20)
        assert r.returncode == 2 and "--sort" in r.stderr, r


@t.case
def a_wrong_token_ends_it_with_the_gateways_refusal():
    port = free_port()
    token = "top-" + os.urandom(6).hex()
    g = Gateway([HELLO], admin=False, extra={"admin": {"address": f"127.0.0.1:{port}",
                                                       "token_env": "TOP_TEST_TOKEN"}},
                env={"TOP_TEST_TOKEN": token})
    try:
        wait_port(port)
        r = subprocess.run(top_cmd("-c", g.config, "--once"), capture_output=True, text=True,
                           timeout=20, env={**os.environ, "TOP_TEST_TOKEN": "wrong"})
        assert r.returncode == 1 and "401" in r.stderr, r
        with Tmux() as tm:
            tm.run("export TOP_TEST_TOKEN=wrong")
            before, after = start_top(tm, top_cmd("-c", g.config))
            s = tm.wait(lambda s: "top-done" in s, 15)
            assert "401" in s and "exit=1" in s, s
            with open(before) as f, open(after) as f2:
                assert f.read() == f2.read()
    finally:
        g.close()


# ---- against a scripted stream ----------------------------------------------------------------


class Scripted:
    """An admin API of a few lines: /admin/events answers each connection
    with the frames `script(n)` returns for the n-th connection (then holds
    it open, or closes it when the script ends with None);
    /admin/processes answers one process."""

    def __init__(self, script):
        self.script = script
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.open = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            b = c.recv(4096)
            if not b:
                c.close()
                return
            head += b
        target = head.split(b" ")[1].decode()
        if target.startswith("/admin/events"):
            n = self.connections
            self.connections += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Cache-Control: no-store\r\nConnection: close\r\n\r\n")
            frames = self.script(n)
            for f in frames:
                if f is None:
                    c.close()
                    return
                try:
                    c.sendall(f)
                except OSError:
                    return
            self.open.append(c)
            return
        body = json.dumps({"total": 1, "matched": 1, "offset": 0, "returned": 1, "processes": [
            {"pid": "<0.1.1>", "name": "scripted\x1b[2J", "kind": "server", "reductions": 7,
             "mailbox_len": 0, "memory": 100}]}).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                  str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        c.close()

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.open:
            c.close()


def frame(i, typ, data):
    return f"id: {i}\nevent: {typ}\ndata: {json.dumps(data)}\n\n".encode()


def sample(i, requests=0):
    return frame(i, "sample", {
        "t_ms": i * 1000, "uptime_ms": i * 1000, "ready": True,
        "schedulers": [{"id": 0, "utilisation": 0.5, "run_queue": 3}],
        "processes": 1, "process_limit": 100, "memory": {"rss_bytes": 1 << 20,
                                                         "processes_bytes": 4096},
        "requests_total": requests, "requests_per_s": 12.5, "errors_total": 0,
        "errors_per_s": 0.0, "in_flight": 0, "routes_version": 4})


HELLO_FRAME = frame(0, "hello", {"version": "scripted", "routes_version": 4,
                                 "sample_interval_ms": 1000})


@t.case
def a_lagged_frame_reconnects_and_says_why():
    # The first stream stays open after `lagged`: only a client that acts
    # on the frame dials again.
    def script(n):
        if n == 0:
            return [HELLO_FRAME, sample(1), b": keepalive\n\n",
                    frame(2, "lagged", {"dropped": 300})]
        return [HELLO_FRAME, sample(1), sample(2)]
    st = Scripted(script)
    try:
        with Tmux() as tm:
            start_top(tm, top_cmd("--admin", f"127.0.0.1:{st.port}"))
            s = tm.wait(lambda s: st.connections >= 2 and "sample #3" in s, 15)
            assert "rq 3" in s and "12.5/s" in s and "routes v4" in s, s
            assert "stream connected (1 drops, the last: this client fell behind: 300 events " \
                   "dropped)" in s, s
            # A name with an escape sequence is shown, not obeyed.
            assert "scripted?[2J" in s, s
            tm.keys("q")
            tm.wait(lambda s: "top-done" in s, 10)
        assert st.connections == 2
    finally:
        st.close()


@t.case
def a_frame_over_the_limit_drops_the_stream_and_memory_stays_bounded():
    # 64 MiB in one line: a client that kept it would grow by as much.
    big = b"data: " + b"x" * (64 << 20)

    def script(n):
        if n == 0:
            return [HELLO_FRAME, sample(1), b"event: sample\n", big]
        return [HELLO_FRAME, sample(1)]
    st = Scripted(script)
    try:
        with Tmux() as tm:
            start_top(tm, top_cmd("--admin", f"127.0.0.1:{st.port}"))
            s = tm.wait(lambda s: st.connections >= 2 and "stream connected" in s, 15)
            assert "the last: a frame larger than 1 MiB" in s, s
            pid = top_pid(tm)
            with open(f"/proc/{pid}/status") as f:
                rss = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
            assert rss < 32 * 1024, rss  # never more than the 1 MiB of a frame
            tm.keys("q")
            tm.wait(lambda s: "top-done" in s, 10)
    finally:
        st.close()


t.finish()
