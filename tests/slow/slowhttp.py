#!/usr/bin/python3
"""Slow and greedy clients against the real gateway, with slowhttptest.

    slowhttp.py [--short]          (TANDEM_BIN: the gateway)

Attacks (slowhttptest, Debian package slowhttptest), one after another
against one gateway in front of tests/upstream:
  slowloris   -H: heads trickled one field at a time (header_timeout_ms)
  slow body   -B: POST bodies trickled a few bytes at a time (request_timeout_ms)
  slow read   -X: large responses read a few bytes at a time (write timeout)
  range       -R: Apache-killer Range headers
  over limit  -H with more connections than the listener's max_connections
While each runs, a normal client asks GET /hello every 0.25 s (2 s timeout):
within the limits every answer must be a 200 — the service stays available
— and over the limit every answer a 200 or the listener's clean 503
"too many connections" (never a hang or a malformed answer). After each,
/hello and a proxied request must succeed and the gateway's resident memory
(VmRSS) must be back within MEM_SLACK_MB of where it started, with the peak
under MEM_PEAK_MB. After the slow body and slow read runs, which make the
gateway hold most, at least half of what the attack added (beyond
GIVE_BACK_KEEP_MB, what the first bursts leave touched for good) must be
given back within GIVE_BACK_S: the gateway trims the allocator's arenas
once a burst of connections has ended, and pooled stacks give their pages
back. The slow body run has BODY_CONNS connections in both modes, as memory
per connection only shows in a crowd; a slow body may cost at most
BODY_PEAK_KB_PER_CONN of peak memory per connection (its pre-read buffer
grows with what the client sent, under the gateway-wide
body_buffer_bytes). The gateway must then exit cleanly on SIGTERM.
--short runs each attack briefly, most with fewer connections (about 60 s in all,
suite 'integration'); without it, longer and larger (suite 'slow').
Ends with "N passed, N failed".
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Gateway, TestRun, Upstream  # noqa: E402

SHORT = "--short" in sys.argv
MAX_CONNS = 1000
CONNS = 150 if SHORT else 800          # within the limit
BODY_CONNS = 800                       # slow bodies: the memory checks need a crowd
OVER = MAX_CONNS + (150 if SHORT else 500)
LENGTH = 8 if SHORT else 40            # seconds per attack
MEM_SLACK_MB = 64
MEM_PEAK_MB = 512
GIVE_BACK_S = 10.0
# What the first bursts leave touched for good, whatever their size: the
# runtime's fixed tables (timer map, recent exits: some 3 MB) and the pooled
# stacks each scheduler keeps warm.
GIVE_BACK_KEEP_MB = 4.0
BODY_PEAK_KB_PER_CONN = 96
# A sanitizer build's allocator keeps freed memory in quarantine, with its
# shadow: what it gives back, and when, is its own. The give-back and
# per-connection checks are for the C library's allocator.
SANITIZED = os.environ.get("TANDEM_TEST_SANITIZE", "none") != "none"

t = TestRun("slowhttp")
state = {}


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024.0


def get(port, path, timeout=2.0):
    """(status or None, body or reason) for one request on a new connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n" %
                      path.encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError as e:
        return None, str(e)
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    if not m:
        return None, "malformed answer %r" % data[:80]
    return int(m.group(1)), data.partition(b"\r\n\r\n")[2]


class Probe(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.results = []
        self.stop = threading.Event()
        self.peak = 0.0

    def run(self):
        while not self.stop.is_set():
            self.results.append(get(self.port, "/hello"))
            try:
                self.peak = max(self.peak, rss_mb(state["gw"].proc.pid))
            except OSError:
                pass
            self.stop.wait(0.25)


def given_back(pid, base, peak):
    """RSS once at least half of what the attack added is given back, or
    the last seen after GIVE_BACK_S."""
    allowed = (peak - base) / 2 + GIVE_BACK_KEEP_MB
    end = time.monotonic() + GIVE_BACK_S
    while True:
        now = rss_mb(pid)
        if now - base <= allowed or time.monotonic() > end:
            return now
        time.sleep(0.25)


def attack(name, args, over_limit=False, peak_kb_per_conn=None, give_back=False):
    gw = state["gw"]
    base = rss_mb(gw.proc.pid)
    out = tempfile.mkdtemp(prefix="slowhttp-")
    probe = Probe(gw.port)
    probe.start()
    cmd = ["slowhttptest", "-g", "-o", os.path.join(out, name), "-l", str(LENGTH),
           "-p", "2", "-v", "1"] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=LENGTH + 120)
    probe.stop.set()
    probe.join()
    if SANITIZED:
        peak_kb_per_conn = None
        give_back = False
    if give_back:
        after = given_back(gw.proc.pid, base, probe.peak)
    else:
        time.sleep(1.0)
        after = rss_mb(gw.proc.pid)
    ok200 = sum(1 for s, _ in probe.results if s == 200)
    busy = sum(1 for s, b in probe.results if s == 503 and b"too many connections" in b)
    other = [(s, b) for s, b in probe.results if s != 200 and not (
        s == 503 and b"too many connections" in b)]
    closed = sum(1 for s, b in probe.results if s is None and "reset" in str(b))
    text = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout + p.stderr)
    exit_line = re.findall(r"Exit status:\s*([^\n]*)", text)
    avail = re.findall(r"service available:\s*(\w+)", text)
    csv = os.path.join(out, name + ".csv")
    peak_conns = 0
    if os.path.exists(csv):
        for line in open(csv).read().splitlines()[1:]:
            cols = line.split(",")
            if len(cols) >= 4 and cols[3].strip().isdigit():
                peak_conns = max(peak_conns, int(cols[3]))
    shutil.rmtree(out, ignore_errors=True)
    print("  %-10s slowhttptest: %s, its probe saw the service available %d/%d; peak %d "
          "connected; our probes: %d ok, %d clean 503, %d other; RSS %.1f -> peak %.1f -> %.1f MB" %
          (name, exit_line[-1].strip() if exit_line else "exit %d" % p.returncode,
           avail.count("YES"), len(avail), peak_conns, ok200,
           busy, len(other), base, probe.peak, after), flush=True)
    # The normal client after the attack.
    for path in ("/hello", "/api/echo"):
        st, body = get(gw.port, path, timeout=5.0)
        assert st == 200, "after %s: %s -> %s %r" % (name, path, st, body)
    if over_limit:
        # over the limit: only 200s and the listener's 503, or a connection
        # closed unanswered when even refusing is flooded
        bad = [(s, b) for s, b in other if not (s is None and closed)]
        assert not bad, "%s: unclean answers %r" % (name, bad[:3])
        assert busy + ok200 > 0, "%s: no probe was answered" % name
    else:
        bad = [(st, b) for st, b in probe.results if st != 200]
        assert not bad, "%s: service unavailable to a normal client: %r" % (name, bad[:3])
    assert probe.peak < MEM_PEAK_MB, "%s: RSS peak %.1f MB" % (name, probe.peak)
    if peak_kb_per_conn:
        per = (probe.peak - base) * 1024 / max(peak_conns, 1)
        assert per <= peak_kb_per_conn, "%s: %.0f KiB per connection at the peak (%d)" % (
            name, per, peak_conns)
    assert after - base < MEM_SLACK_MB, "%s: RSS %.1f -> %.1f MB" % (name, base, after)
    assert not give_back or after - base <= (probe.peak - base) / 2 + GIVE_BACK_KEEP_MB, \
        "%s: RSS %.1f -> peak %.1f -> %.1f MB %.0f s after: not given back" % (
            name, base, probe.peak, after, GIVE_BACK_S)


def url(path):
    return "http://127.0.0.1:%d%s" % (state["gw"].port, path)


@t.case
def slowloris_keeps_the_service_available():
    attack("slowloris", ["-H", "-c", str(CONNS), "-r", "200", "-i", "1", "-u", url("/hello")])


@t.case
def slow_body_keeps_the_service_available():
    attack("slowbody", ["-B", "-c", str(BODY_CONNS), "-r", "200", "-i", "1", "-s", "100000",
                        "-u", url("/api/sink")], peak_kb_per_conn=BODY_PEAK_KB_PER_CONN,
           give_back=True)


@t.case
def slow_read_keeps_the_service_available():
    attack("slowread", ["-X", "-c", str(CONNS), "-r", "200", "-k", "3", "-n", "1", "-w", "10",
                        "-y", "20", "-z", "32", "-u", url("/api/bytes?n=2000000")],
           give_back=True)


@t.case
def range_attack_keeps_the_service_available():
    attack("range", ["-R", "-c", str(CONNS), "-r", "200", "-a", "10", "-b", "3000",
                     "-u", url("/api/bytes?n=100000")])


@t.case
def connections_over_the_limit_are_answered_cleanly():
    # connections arrive faster than header_timeout_ms retires them
    attack("overlimit", ["-H", "-c", str(OVER), "-r", str(OVER), "-i", "1", "-u", url("/hello")],
           over_limit=True)


def main():
    if not shutil.which("slowhttptest"):
        print("slowhttptest not found (Debian package slowhttptest): skipped")
        print("0 passed, 0 failed")
        return 77
    up = Upstream(name="slow")
    routes = [{"name": "hello", "match": {"path": "/hello"},
               "respond": {"status": 200, "body": "hello from tandem\n"}},
              {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
               "strip_prefix": True}]
    gw = Gateway(routes, {"up": {"targets": [{"address": up.address}],
                                 "max_connections": 4096}},
                 listener={"max_connections": MAX_CONNS, "header_timeout_ms": 3000,
                           "request_timeout_ms": 5000, "idle_timeout_ms": 5000})
    state["gw"] = gw
    try:
        t.cases_run = True
        passed = failed = 0
        for fn in t.cases:
            try:
                fn()
                passed += 1
                print("ok   slowhttp.%s" % fn.__name__, flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print("FAIL slowhttp.%s: %s" % (fn.__name__, e), flush=True)
        code = gw.stop(timeout=30)
        if code != 0:
            failed += 1
            print("FAIL slowhttp.clean_exit: exit %s\n%s" % (code, gw.log()[-2000:]))
        else:
            passed += 1
            print("ok   slowhttp.clean_exit")
    finally:
        gw.close()
        up.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
