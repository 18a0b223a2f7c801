#!/usr/bin/env python3
"""The `ip_rules` policy and a listener's trusted_proxies through the real
binary: allow and deny by CIDR (IPv4, IPv6, IPv4-mapped), and the client
taken from X-Forwarded-For only behind trusted proxies, as IP rules, the
access log and the upstream see it."""
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time

from harness import Gateway, TestRun, Upstream, free_port, tandem_bin, wait_port

def access_log(gw, count, timeout=10):
    """The access log once it holds `count` lines (the logger writes them
    a moment after the answers)."""
    end = time.time() + timeout
    while True:
        lines = gw.access_log()
        if len(lines) >= count or time.time() > end:
            return lines
        time.sleep(0.05)


t = TestRun("policy_ip")


def policies_dir(policies):
    d = tempfile.mkdtemp(prefix="tandem-policies-")
    with open(os.path.join(d, "ip.json"), "w") as f:
        json.dump({"policies": policies}, f)
    return d


def start(up, policies, routes, listener=None, more_listeners=()):
    return Gateway(routes, upstreams={"app": {"targets": [{"address": up.address}]}},
                   listener=listener, more_listeners=more_listeners,
                   extra={"policies": {"dir": policies_dir(policies)}})


def get(port, path, headers=None, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


POLICIES = [
    {"name": "docs-net", "type": "ip_rules", "allow": ["203.0.113.0/24", "2001:db8::/32"],
     "deny": ["203.0.113.66"]},
    {"name": "no-loopback", "type": "ip_rules", "deny": ["127.0.0.0/8", "::1"]},
    {"name": "loopback-only", "type": "ip_rules", "allow": ["::ffff:127.0.0.0/104", "::1"]},
]
ROUTES = [
    {"name": "docs", "match": {"path": "/docs"}, "upstream": "app", "rewrite": "/echo",
     "policies": ["docs-net"]},
    {"name": "closed", "match": {"path": "/closed"}, "upstream": "app", "rewrite": "/echo",
     "policies": ["no-loopback"]},
    {"name": "local", "match": {"path": "/local"}, "upstream": "app", "rewrite": "/echo",
     "policies": ["loopback-only"]},
]


def metric(gw, policy, reason):
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if (line.startswith("tandem_policy_denials_total{") and f'policy="{policy}"' in line
                and f'reason="{reason}"' in line):
            return int(line.rsplit(" ", 1)[1])
    return 0


@t.case
def allow_and_deny_lists_judge_the_peer():
    up = Upstream()
    gw = start(up, POLICIES, ROUTES)
    try:
        st, body = get(gw.port, "/local")
        assert st == 200, (st, body)
        st, body = get(gw.port, "/closed")
        assert st == 403, (st, body)
        assert "not allowed" in json.loads(body)["error"], body
        st, _ = get(gw.port, "/docs")  # 127.0.0.1 is in no allowed block
        assert st == 403, st
        assert metric(gw, "no-loopback", "ip_denied") == 1
        assert metric(gw, "docs-net", "ip_denied") == 1
    finally:
        gw.close()
        up.stop()


def ipv6_loopback():
    """Whether this host has IPv6 loopback (some containers do not)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@t.case
def ipv6_and_dual_stack_clients_are_judged_by_family():
    if not ipv6_loopback():
        print("no IPv6 loopback here: IPv6 blocks are covered by tests/unit/policy only")
        return
    up = Upstream()
    v6 = free_port()
    ds = free_port()
    gw = start(up, POLICIES, ROUTES, more_listeners=[
        {"name": "v6", "address": f"[::1]:{v6}"},
        {"name": "dual", "address": f"[::]:{ds}"}])
    try:
        wait_port(v6, host="::1")
        st, _ = get(v6, "/closed", host="::1")
        assert st == 403, st
        st, _ = get(v6, "/local", host="::1")
        assert st == 200, st
        # an IPv4 client of a dual-stack socket (::ffff:127.0.0.1) is 127.0.0.1
        st, _ = get(ds, "/closed")
        assert st == 403, st
        st, _ = get(ds, "/local")
        assert st == 200, st
    finally:
        gw.close()
        up.stop()


@t.case
def forwarded_for_is_believed_only_from_trusted_proxies():
    up = Upstream()
    untrusted = free_port()
    gw = start(up, POLICIES, ROUTES, listener={"trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"]},
               more_listeners=[{"name": "direct", "address": f"127.0.0.1:{untrusted}"}])
    try:
        # behind the trusted proxy: the right-most hop not trusted
        st, body = get(gw.port, "/docs", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9",
                                          "X-Request-Id": "xff-trusted"})
        assert st == 200, (st, body)
        echo = json.loads(body)
        hdrs = {k.lower(): v for k, v in echo["headers"]}
        assert hdrs["x-real-ip"] == "203.0.113.9", hdrs
        assert hdrs["x-forwarded-for"] == "6.6.6.6, 203.0.113.9, 127.0.0.1", hdrs
        # a client putting an allowed address on the left gains nothing
        st, _ = get(gw.port, "/docs", {"X-Forwarded-For": "203.0.113.9, 6.6.6.6"})
        assert st == 403, st
        # trusted hops are passed over; deny wins over allow
        st, _ = get(gw.port, "/docs",
                    {"X-Forwarded-For": "203.0.113.66, 10.1.1.1", "X-Real-IP": "203.0.113.9"})
        assert st == 403, st
        st, _ = get(gw.port, "/docs", {"X-Forwarded-For": "[2001:db8::5]:443, 10.0.0.7"})
        assert st == 200, st
        # garbage: no further than the proxy itself
        st, _ = get(gw.port, "/docs", {"X-Forwarded-For": "203.0.113.9, unknown"})
        assert st == 403, st
        # the same chain from a peer not trusted (another listener): ignored
        st, _ = get(untrusted, "/docs", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})
        assert st == 403, st
        st, body = get(untrusted, "/local", {"X-Forwarded-For": "203.0.113.9"})
        assert st == 200, st
        hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert hdrs["x-real-ip"] == "127.0.0.1", hdrs
        # the access log's client is the one judged, the peer beside it
        # (found by its id: each request came on a connection of its own,
        # and lines of different connections may be written in any order)
        lines = access_log(gw, 7)
        first = [l for l in lines if l["request_id"] == "xff-trusted"]
        assert len(first) == 1, lines
        first = first[0]
        assert first["client"] == "203.0.113.9" and first["peer"] == "127.0.0.1", first
        direct = [l for l in lines if l["listener"] == "direct"]
        assert all(l["client"] == "127.0.0.1" and "peer" not in l for l in direct), direct
    finally:
        gw.close()
        up.stop()


@t.case
def bad_blocks_are_load_errors():
    d = tempfile.mkdtemp(prefix="tandem-check-")
    os.makedirs(os.path.join(d, "routes"))
    with open(os.path.join(d, "routes", "r.json"), "w") as f:
        json.dump({"routes": [{"name": "r", "match": {"path": "/"}, "respond": {"status": 200},
                               "policies": ["x"]}]}, f)
    pdir = policies_dir([{"name": "x", "type": "ip_rules",
                          "allow": ["10.0.0.0/8", "10.1.2.3/16"]}])
    with open(os.path.join(d, "tandem.json"), "w") as f:
        json.dump({"listeners": [{"address": "127.0.0.1:0", "trusted_proxies": ["10.0.0.1/8"]}],
                   "admin": False, "routes": "routes", "policies": {"dir": pdir}}, f)
    r = subprocess.run([tandem_bin(), "check", "-c", os.path.join(d, "tandem.json")],
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert 'ip.json:1:' in out and 'did you mean "10.1.0.0/16"' in out, out
    assert 'listeners[0].trusted_proxies[0]' in out and 'did you mean "10.0.0.0/8"' in out, out


t.finish()
