#!/usr/bin/env python3
"""What an idle keep-alive connection costs the gateway: its RSS growth over
N connections, each of which made one request and now waits for the next.
Between requests a connection keeps only what says who it is (its process
hibernated without a stack, its exchange without input buffer, parser or
the current request's part), so that holding many idle clients costs about
what nginx's connection slots do."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun  # noqa: E402

t = TestRun("idle_memory")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n"}}
REQ = b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"


def sanitized():
    """Whether the binary under test runs under AddressSanitizer, whose
    allocator pads every block and keeps freed ones aside: its RSS says
    nothing about the gateway's own bytes."""
    with open(os.environ.get("TANDEM_BIN", "build/gateway/tandem"), "rb") as f:
        return b"__asan_init" in f.read()


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def hello(s):
    s.sendall(REQ)
    data = b""
    while not data.endswith(b"hello\n"):
        b = s.recv(4096)
        assert b, data
        data += b
    assert data.startswith(b"HTTP/1.1 200"), data


# A measure that cannot be taken is a skip (exit 77, meson's convention),
# not a pass.
if sanitized():
    print("SKIP idle_memory: the binary runs under AddressSanitizer, whose allocator's "
          "RSS is not the gateway's")
    sys.exit(77)


@t.case
def an_idle_keep_alive_connection_costs_under_1300_bytes():
    """About 1,760 bytes here (3,000 connections, 2 schedulers) before its
    parser, its exchange's request part, its detail line's spare room and
    its empty monitor array were given back while idle, and its control
    block, timer and cleanup records made smaller; about 1,080 after.
    nginx's figure is about 960 (its growth plus its per-slot
    preallocation)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateway inherits it
    n = min(3000, hard - 300)
    assert n >= 1000, f"too few descriptors for a measure: {hard}"
    gw = Gateway([HELLO], listener={"max_connections": 100000, "idle_timeout_ms": 600000},
                 extra={"access_log": False})
    socks = []
    try:
        # The first connections' one-time costs (threads, pools, caches).
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            hello(s)
            socks.append(s)
        time.sleep(0.5)
        rss0 = rss(gw.proc.pid)
        # One after another: what is measured is what idle connections
        # hold, not what a burst of concurrent requests left in the heap
        # (their input buffers, all live at once when the gateway lags).
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            socks.append(s)
            hello(s)
        # Every connection hibernated: the RSS stops falling.
        deadline = time.monotonic() + 10
        last = rss(gw.proc.pid)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = rss(gw.proc.pid)
            if now >= last:
                break
            last = now
        per = (min(last, rss(gw.proc.pid)) - rss0) / n
        # and each one still works
        for s in socks[-20:]:
            hello(s)
        print(f"# {per:.0f} bytes per idle keep-alive connection ({n} connections)")
        assert per < 1300, f"{per:.0f} bytes per idle keep-alive connection"
    finally:
        for s in socks:
            s.close()
        code = gw.stop()
        gw.close()
        assert code == 0, f"gateway exit code {code}"


t.finish()
