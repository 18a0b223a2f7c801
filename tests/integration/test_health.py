#!/usr/bin/env python3
"""The active health check through the real binary: the request it sends,
byte for byte, against an upstream that records what it receives."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, raw_request  # noqa: E402

t = TestRun("health")

SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))

ANY = {"name": "any", "match": {"path_prefix": "/"},
       "respond": {"status": 200, "body": "ok\n", "headers": {"content-type": "text/plain"}}}


class RecordingUpstream:
    """Answers every connection 200 and keeps what each one sent."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.requests = []
        self.done = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        b = c.recv(65536)
                        if not b:
                            break
                        data += b
                    # Anything written after the head arrives with it or
                    # just after: give it a moment.
                    c.settimeout(0.2)
                    try:
                        while True:
                            b = c.recv(65536)
                            if not b:
                                break
                            data += b
                    except socket.timeout:
                        pass
                    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass
                self.requests.append(data)

    def close(self):
        self.done = True
        self.sock.close()


@t.case
def health_check_with_the_longest_path_sends_exactly_its_request():
    up = RecordingUpstream()
    path = "/" + "h" * 1023  # GW_HEALTH_PATH_MAX bytes
    gw = Gateway([ANY], {"up": {"targets": [{"address": up.address}],
                                "health": {"active": {"path": path, "interval_ms": 100}}}})
    try:
        end = time.time() + 5 * SCALE
        while not up.requests and time.time() < end:
            time.sleep(0.05)
        assert up.requests, "no health check arrived"
        want = ("GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: tandem-health\r\n"
                "connection: close\r\n\r\n" % (path, up.address)).encode()
        assert up.requests[0] == want, (len(up.requests[0]), up.requests[0][-120:])
        r = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200 "), r[:200]
        assert gw.stop() == 0, gw.log()
    finally:
        gw.close()
        up.close()



t.finish()
