#!/usr/bin/env python3
"""The policy parts of the admin API and `tandem ctl` through the real
binary: /admin/policies lists every definition with its position, its
configuration and the routes naming it; /admin/consumers lists consumers
with the kinds of credential they have; neither, nor any other admin answer
or ctl output, ever shows a key, its hash, a password record or a
consumer's header value; a rate limit's state for a key follows the
requests sent; refusals are counted in tandem_policy_denials_total (read by
a real Prometheus parser) and in each definition's denials; the listing
follows a reload; every policy endpoint needs the admin token."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, free_port, tandem_bin, wait_port  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

t = TestRun("policy_admin")

# The secrets of the consumers below: none of these strings may appear in
# anything the admin API or `tandem ctl` prints.
ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-fedcba9876543210"
PASSWORD = "correct horse battery staple"
SALT = b"0123456789abcdef"
ITERATIONS = 10000
TIER_VALUE = "gold-tier-header-value-7f3a"


def key_record(key):
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def password_record():
    h = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, ITERATIONS, 32)
    return (f"pbkdf2-sha256${ITERATIONS}${base64.b64encode(SALT).decode()}$"
            f"{base64.b64encode(h).decode()}")


def secrets():
    """Every form a credential of the set takes, each to be absent."""
    out = [ALICE_KEY, BOB_KEY, PASSWORD, TIER_VALUE, password_record(),
           base64.b64encode(SALT).decode(),
           password_record().rsplit("$", 1)[1]]
    for k in (ALICE_KEY, BOB_KEY):
        digest = hashlib.sha256(k.encode()).digest()
        out += [key_record(k), digest.hex(), digest.hex().upper(),
                base64.b64encode(digest).decode(),
                base64.urlsafe_b64encode(digest).decode().rstrip("=")]
    return out


def assert_no_secret(text, where):
    for s in secrets():
        assert s not in text, (where, s)


# One policy or consumer per line, so each definition's line is known.
POLICIES = [
    {"name": "per-client", "type": "rate_limit", "limit": 5, "window_s": 60, "by": "client"},
    {"name": "only-alice", "type": "acl", "allow": ["alice"]},
    {"name": "unused", "type": "acl", "allow": ["bob"]},
]


def consumers():
    return [
        {"name": "alice", "api_keys": [key_record(ALICE_KEY)],
         "basic": {"username": "alice", "password": password_record()},
         "headers": {"x-consumer-tier": TIER_VALUE}},
        {"name": "bob", "api_keys": [key_record(BOB_KEY)]},
    ]


def policy_text(policies, cons):
    lines = ["{", '  "policies": [']
    lines += ["    " + json.dumps(p) + ("," if i + 1 < len(policies) else "")
              for i, p in enumerate(policies)]
    lines += ["  ],", '  "consumers": [']
    lines += ["    " + json.dumps(c) + ("," if i + 1 < len(cons) else "")
              for i, c in enumerate(cons)]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


ROUTES = [
    {"name": "limited", "match": {"path": "/limited"}, "policies": ["per-client"],
     "respond": {"status": 200, "body": "ok\n"}},
    {"name": "alice-only", "match": {"path": "/alice"}, "policies": ["only-alice"],
     "respond": {"status": 200, "body": "ok\n"}},
    {"name": "also-limited", "match": {"path": "/also-limited"}, "policies": ["per-client"],
     "respond": {"status": 200, "body": "ok\n"}},
    {"name": "open", "match": {"path": "/open"}, "respond": {"status": 200, "body": "ok\n"}},
]


class Gw:
    """tandem with a routes directory and a policies directory (policies/
    beside it, main.json); `token` sets an admin token."""

    def __init__(self, policies=POLICIES, cons=None, token=None):
        self.dir = tempfile.mkdtemp(prefix="tandem-poladmin-")
        os.makedirs(os.path.join(self.dir, "routes"))
        os.makedirs(os.path.join(self.dir, "policies"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": ROUTES}, f, indent=1)
        self.write_policies(policies, consumers() if cons is None else cons)
        self.port, self.admin_port = free_port(), free_port()
        self.token = token
        adm = {"address": f"127.0.0.1:{self.admin_port}"}
        env = dict(os.environ)
        env.pop("TANDEM_ADMIN_TOKEN", None)
        if token:
            adm["token_env"] = "TANDEM_TEST_POLICY_TOKEN"
            env["TANDEM_TEST_POLICY_TOKEN"] = token
        cfg = {"runtime": {"schedulers": 2},
               "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
               "admin": adm, "upstreams": {}, "routes": "routes",
               "policies": {"dir": "policies"}, "drain_timeout_ms": 3000}
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.out = open(os.path.join(self.dir, "stdout.log"), "w+")
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config], stdout=self.out,
                                     stderr=self.err, env=env, cwd=self.dir)
        if not (wait_port(self.port) and wait_port(self.admin_port)):
            self.close()
            raise RuntimeError("gateway did not start: " + self.log())

    def write_policies(self, policies, cons):
        path = os.path.join(self.dir, "policies", "main.json")
        with open(path + ".tmp", "w") as f:
            f.write(policy_text(policies, cons))
        os.rename(path + ".tmp", path)

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def admin(self, path, method="GET", token=True):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        h = {"Host": f"127.0.0.1:{self.admin_port}"}
        if token and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        c.request(method, path, headers=h)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def admin_json(self, path):
        st, body = self.admin(path)
        assert_no_secret(body, path)
        return st, json.loads(body)

    def get(self, path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def ctl(self, *args):
        env = dict(os.environ)
        env.pop("TANDEM_ADMIN_TOKEN", None)
        if self.token:
            env["TANDEM_ADMIN_TOKEN"] = self.token
        r = subprocess.run([tandem_bin(), "ctl", "--admin", f"127.0.0.1:{self.admin_port}",
                            *args], capture_output=True, text=True, timeout=20, env=env)
        assert_no_secret(r.stdout + r.stderr, "ctl " + " ".join(args))
        return r

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def by_name(items):
    return {x["name"]: x for x in items}


@t.case
def policies_are_listed_with_position_configuration_and_routes():
    with Gw() as g:
        st, doc = g.admin_json("/admin/policies")
        assert st == 200, (st, doc)
        assert doc["count"] == 3 and doc["offset"] == 0, doc
        assert doc["version"] >= 1, doc
        assert [p["name"] for p in doc["policies"]] == ["per-client", "only-alice", "unused"]
        ps = by_name(doc["policies"])
        for i, name in enumerate(["per-client", "only-alice", "unused"]):
            p = ps[name]
            assert p["file"].endswith("main.json"), p
            assert p["line"] == 3 + i, p  # one definition a line, from line 3
            assert p["column"] >= 1, p
            assert p["type"] == POLICIES[i]["type"], p
            assert isinstance(p["config"], dict), p
        assert ps["per-client"]["routes"] == ["limited", "also-limited"], ps["per-client"]
        assert ps["per-client"]["route_count"] == 2, ps["per-client"]
        assert ps["only-alice"]["routes"] == ["alice-only"], ps["only-alice"]
        assert ps["unused"]["routes"] == [] and ps["unused"]["route_count"] == 0, ps["unused"]
        # The kinds' own description: what the file configured.
        assert ps["per-client"]["config"].get("limit") == 5, ps["per-client"]
        assert ps["only-alice"]["config"].get("allow") == ["alice"], ps["only-alice"]
        st, one = g.admin_json("/admin/policies/only-alice")
        assert st == 200 and one == ps["only-alice"], (st, one)
        st, doc = g.admin_json("/admin/policies/nope")
        assert st == 404 and doc["error"] == "policy_not_found", (st, doc)
        st, page = g.admin_json("/admin/policies?offset=1&limit=1")
        assert st == 200 and [p["name"] for p in page["policies"]] == ["only-alice"], page
        assert page["count"] == 3, page
        for bad in ("?limit=0", "?limit=10001", "?offset=-1", "?limit=x"):
            st, doc = g.admin_json("/admin/policies" + bad)
            assert st == 400 and doc["error"] == "bad_request", (bad, st, doc)


@t.case
def consumers_show_credential_kinds_and_never_a_credential():
    with Gw() as g:
        st, doc = g.admin_json("/admin/consumers")
        assert st == 200, (st, doc)
        assert doc["count"] == 2, doc
        cs = by_name(doc["consumers"])
        assert cs["alice"]["credentials"] == ["api_key", "basic"], cs["alice"]
        assert cs["alice"]["api_keys"] == 1, cs["alice"]
        assert cs["alice"]["headers"] == ["x-consumer-tier"], cs["alice"]
        assert cs["alice"]["line"] == 8, cs["alice"]  # the line after "consumers": [
        assert cs["bob"]["credentials"] == ["api_key"] and cs["bob"]["headers"] == [], cs["bob"]
        # Every other admin answer, the policies included, and /metrics.
        for path in ("/admin/policies", "/admin/policies/only-alice", "/admin/routes",
                     "/admin/system", "/admin/policies/per-client/state?key=127.0.0.1"):
            st, body = g.admin(path)
            assert st == 200, (path, st, body)
            assert_no_secret(body, path)
        # Requests with the credentials, then everything shown again.
        g.get("/alice", {"x-api-key": ALICE_KEY,
                         "authorization": "Basic " + base64.b64encode(
                             f"alice:{PASSWORD}".encode()).decode()})
        for path in ("/metrics", "/admin/processes", "/admin/consumers", "/admin/policies"):
            st, body = g.admin(path)
            assert st == 200, (path, st)
            assert_no_secret(body, path)
        for args in (["consumers"], ["--json", "consumers"], ["policies"], ["--json", "policies"],
                     ["policies", "only-alice"]):
            r = g.ctl(*args)
            assert r.returncode == 0, (args, r.returncode, r.stderr)
        r = g.ctl("consumers")
        lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[1:] if ln.strip()}
        assert "api_key,basic" in lines["alice"] and "x-consumer-tier" in lines["alice"], r.stdout


@t.case
def rate_limit_state_follows_the_requests_of_a_key():
    with Gw() as g:
        st, doc = g.admin_json("/admin/policies/per-client/state?key=127.0.0.1")
        assert st == 200, (st, doc)
        assert doc["present"] is False, doc
        for _ in range(3):
            assert g.get("/limited") == 200
        st, doc = g.admin_json("/admin/policies/per-client/state?key=127.0.0.1")
        assert st == 200, (st, doc)
        assert doc["present"] is True and doc["count"] == 3, doc
        assert doc["remaining"] == 2 and doc["limit"] == 5, doc
        assert doc["key"] == "127.0.0.1" and doc["policy"] == "per-client", doc
        # Reading the state counts nothing.
        st, again = g.admin_json("/admin/policies/per-client/state?key=127.0.0.1")
        assert again["count"] == 3, again
        st, other = g.admin_json("/admin/policies/per-client/state?key=10.9.8.7")
        assert st == 200 and other["present"] is False, other
        r = g.ctl("policies", "per-client", "127.0.0.1")
        assert r.returncode == 0, r.stderr
        assert any(ln.split()[:2] == ["count", "3"] for ln in r.stdout.splitlines()), r.stdout
        for path, status, code in [
                ("/admin/policies/per-client/state", 400, "bad_request"),
                ("/admin/policies/per-client/state?key=" + "a" * 5000, 400, "bad_request"),
                ("/admin/policies/only-alice/state?key=x", 409, "not_a_rate_limit"),
                ("/admin/policies/nope/state?key=x", 404, "policy_not_found")]:
            st, doc = g.admin_json(path)
            assert st == status and doc["error"] == code, (path, st, doc)
        st, _ = g.admin("/admin/policies/per-client/state?key=x", method="POST")
        assert st == 405, st


@t.case
def denials_are_counted_by_policy_and_reason():
    with Gw() as g:
        codes = [g.get("/limited") for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2, codes
        assert g.get("/alice") == 401
        st, body = g.admin("/metrics")
        assert st == 200
        series = {}
        for fam in text_string_to_metric_families(body):
            if fam.name == "tandem_policy_denials":
                assert fam.type == "counter", fam.type
                for s in fam.samples:
                    series[(s.labels["policy"], s.labels["reason"])] = s.value
        assert series.get(("per-client", "rate_limited")) == 2, series
        alice = {r: v for (p, r), v in series.items() if p == "only-alice"}
        assert sum(alice.values()) == 1, series
        assert not any(p == "unused" for p, _ in series), series
        st, doc = g.admin_json("/admin/policies")
        ps = by_name(doc["policies"])
        assert ps["per-client"]["denials"] == {"rate_limited": 2}, ps["per-client"]
        assert sum(ps["only-alice"]["denials"].values()) == 1, ps["only-alice"]
        assert ps["unused"]["denials"] == {}, ps["unused"]
        r = g.ctl("policies")
        assert r.returncode == 0, r.stderr
        row = [ln for ln in r.stdout.splitlines() if ln.startswith("per-client ")]
        assert row and "rate_limited 2" in row[0], r.stdout


@t.case
def the_listing_follows_a_reload():
    with Gw() as g:
        st, before = g.admin_json("/admin/policies")
        g.write_policies(POLICIES + [{"name": "later", "type": "acl", "allow": ["bob"]}],
                         consumers()[:1])
        st, out = g.admin("/admin/routes/reload", method="POST")
        assert st == 200, (st, out)
        st, after = g.admin_json("/admin/policies")
        assert after["version"] > before["version"], (before["version"], after["version"])
        assert [p["name"] for p in after["policies"]][-1] == "later", after
        st, cons = g.admin_json("/admin/consumers")
        assert [c["name"] for c in cons["consumers"]] == ["alice"], cons


@t.case
def every_policy_endpoint_needs_the_admin_token():
    token = "policy-admin-token-42"
    with Gw(token=token) as g:
        for path in ("/admin/policies", "/admin/policies/per-client",
                     "/admin/policies/per-client/state?key=127.0.0.1", "/admin/consumers"):
            st, body = g.admin(path, token=False)
            assert st == 401 and json.loads(body)["error"] == "unauthorized", (path, st, body)
            st, body = g.admin(path)
            assert st == 200, (path, st, body)
        r = g.ctl("consumers")
        assert r.returncode == 0 and "alice" in r.stdout, (r.returncode, r.stderr)


@t.case
def ctl_refuses_malformed_policy_commands_before_sending():
    # Nothing listens on port 1: a well-formed command fails to connect
    # (exit 1), a malformed one is refused before (exit 2).
    for args, code in ((["policies"], 1), (["consumers"], 1), (["policies", "a/b"], 1),
                       (["policies", "a", "k e y&x"], 1), (["policies", "--offset", "3"], 1),
                       (["policies", "a", "b", "c"], 2), (["consumers", "x"], 2),
                       (["policies", "--limit", "1&x=2"], 2)):
        r = subprocess.run([tandem_bin(), "ctl", "--admin", "127.0.0.1:1", *args],
                           capture_output=True, timeout=20)
        assert r.returncode == code, (args, r.returncode, r.stderr)


t.finish()
