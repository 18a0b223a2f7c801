#!/usr/bin/python3
"""Runs the libFuzzer targets for a bounded time from seeds built out of the
shared corpora (../shared/vectors) and the shipped configuration.

    run.py --seconds S --request-path EXE --config EXE --routes EXE
           [--tls-server EXE] [--keep DIR] [--vectors DIR]

Seeds:
  request path  every llhttp 9.4.2 request fixture and desync-guardian case
                (bytes as tests/conformance/replay.py builds them) and requests
                for targets that test routing, each paired with an llhttp
                response fixture as the upstream's reply;
  config        config/tandem.json and variants, each also with the shipped
                route files after a NUL byte;
  routes        config/routes/*.json;
  tls server    whole conversations of real clients recorded by the target
                (a TLS 1.2 handshake, a request, close_notify; see
                fuzz_tls_server.c) and the ClientHellos of real clients (Python ssl: TLS 1.2 and
                1.3, with and without SNI, known, wildcard and unknown
                names, ALPN, narrow and refused suite lists, TLS 1.0),
                plaintext HTTP and SSLv2-style hellos, each for every
                listener variant of the target, whole and in pieces; the
                certificates it serves are made here (tests/lib/tlscerts.py)
                and passed in TANDEM_FUZZ_TLS_CERTS.
Each target runs S seconds (-max_total_time). A crash, leak or failed check
fails the run and leaves its input as crash-*/leak-* in the artifact
directory printed. --keep DIR keeps the corpora (and grows them) across runs.
Prints executions per target and ends with "N passed, N failed".
"""
import argparse
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import time
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
import replay  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def request_seeds(d, vectors):
    responses, requests = [], []
    for kind, acc in (("response", responses), ("request", requests)):
        for fn in sorted(glob.glob(os.path.join(vectors, "llhttp", kind, "*.md"))):
            for _name, meta, data, _err, _log in replay.llhttp_cases(fn):
                if "lenient" not in meta.get("type", ""):
                    acc.append(data)
    for fn in sorted(glob.glob(os.path.join(vectors, "desync-guardian", "*.yaml"))):
        for case in yaml.safe_load(open(fn, encoding="utf-8")) or []:
            requests.append(replay.dg_bytes(case))
    responses = responses or [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    # Targets that route differently when a backend decodes %2F or strips
    # ;params (path_settle.c): the routing checks start from them.
    for target in (b"/admin%2Fx", b"/admin;x", b"/admin%3Bx", b"/k/a%2Fb;c", b"/k%2Fadmin",
                   b"/d/..%2Fadmin", b"/d/a%2F..%2F..%2Fadmin", b"/p/a%2Fb",
                   b"/public/..%3B/admin", b"/admin.", b"/admin%2E", b"/x/..%2Fadmin",
                   b"/admin;x%2Fy", b"/k;x%2F..%2Fadmin", b"/a%20;x/admin"):
        requests.append(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    n = 0
    for i, req in enumerate(requests):
        req = req[:12000]  # keeps runs fast; -max_len is 16384
        resp = responses[i % len(responses)]
        write(d, "seed-%04d" % n, struct.pack("<HB", len(req), i % 16) + req + resp)
        n += 1
    return n


def config_seeds(d):
    base = open(os.path.join(ROOT, "config", "tandem.json"), "rb").read()
    routes = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(ROOT, "config",
                                                                          "routes", "*.json")))]
    doc = json.loads(base)
    variants = [base]
    v = dict(doc)
    v["upstreams"] = {"users": {"targets": [{"address": "127.0.0.1:9001", "weight": 2},
                                            {"address": "[::1]:9002"}],
                                "balance": "least_conn", "retries": 2,
                                "health": {"passive": {"failures": 3, "eject_ms": 1000},
                                           "active": {"path": "/healthz"}}}}
    v["listeners"] = [{"name": "public", "address": "127.0.0.1:0", "max_connections": 10,
                       "header_timeout_ms": 100}]
    variants.append(json.dumps(v).encode())
    variants.append(b'{"listeners": [}')
    n = 0
    for i, c in enumerate(variants):
        write(d, "seed-%d" % n, c)
        n += 1
        for r in routes:
            write(d, "seed-%d" % n, c + b"\0" + r)
            n += 1
    return n


def route_seeds(d):
    n = 0
    for f in sorted(glob.glob(os.path.join(ROOT, "config", "routes", "*.json"))):
        shutil.copy(f, os.path.join(d, "seed-%d" % n))
        n += 1
    write(d, "seed-%d" % n, json.dumps({"routes": [
        {"name": "a", "match": {"path": "/users/:id", "methods": ["GET"],
                                "headers": {"x-env": "prod"}},
         "upstream": "users", "rewrite": "/v2/users/:id"},
        {"name": "b", "match": {"path_prefix": "/api", "host": "*.example.com"},
         "upstream": "demo", "strip_prefix": True, "priority": 3},
        {"name": "c", "match": {"path": "/s/*rest"}, "respond": {"status": 204}}]}).encode())
    return n + 1


def tls_certs(d):
    """The certificates fuzz_tls_server serves, in d (its header)."""
    from tlscerts import CertFactory
    os.makedirs(d, exist_ok=True)
    f = CertFactory(d)
    ca = f.ca("Fuzz CA")
    for kind in ("ec", "rsa"):
        leaf = f.leaf(ca, ["api.example.com", "*.example.com"], kind=kind)
        shutil.copy(leaf.cert, os.path.join(d, kind + ".pem"))
        shutil.copy(leaf.key, os.path.join(d, kind + ".key"))
    shutil.copy(ca.cert, os.path.join(d, "ca.pem"))
    client_ca = f.ca("Fuzz Client CA")
    shutil.copy(client_ca.cert, os.path.join(d, "client-ca.pem"))
    cli = f.client(client_ca, "/CN=fuzz-client/O=Tests")
    shutil.copy(cli.cert, os.path.join(d, "client.pem"))
    shutil.copy(cli.key, os.path.join(d, "client.key"))
    # The clock the target runs on (its header): recorded conversations
    # replay only at the time they were recorded.
    with open(os.path.join(d, "time"), "w") as fh:
        fh.write("%d\n" % int(time.time()))


# What went wrong while seeding (a target that failed its own checks on a
# real client's conversation): each is a finding of that target.
seed_findings = []


def recorded_conversations(exe, d, certs):
    """Whole conversations: real clients (Python ssl, TLS 1.2) against the
    target in its recording mode, each a handshake, one request and a
    close_notify, written to d as inputs (fuzz_tls_server.c, record()).
    The target checks these conversations as it checks any input: a
    failure is kept in seed_findings."""
    import socket
    import ssl

    def client(port, name, ciphers=None, cert=False):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.maximum_version = ssl.TLSVersion.TLSv1_2
        c.set_alpn_protocols(["http/1.1"])
        if ciphers:
            c.set_ciphers(ciphers)
        if cert:
            c.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with c.wrap_socket(raw, server_hostname=name) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
                    s.unwrap()
        except (OSError, ssl.SSLError):
            pass

    cases = [(0, "api.example.com", "ECDHE-ECDSA-AES128-GCM-SHA256", False),
             (0, "www.example.com", "ECDHE-RSA-CHACHA20-POLY1305", False),
             (0, None, None, False),
             (1, "api.example.com", "ECDHE-ECDSA-AES256-GCM-SHA384", True),
             (1, "api.example.com", None, False),
             (2, "api.example.com", "ECDHE-RSA-AES128-GCM-SHA256", True),
             (2, "api.example.com", None, False),  # refused: no certificate
             (3, "api.example.com", "ECDHE-RSA-AES128-GCM-SHA256", False)]
    n = 0
    for variant, name, ciphers, cert in cases:
        out = os.path.join(d, "conversation-%d" % n)
        env = dict(os.environ, TANDEM_FUZZ_TLS_RECORD="%d %s" % (variant, out))
        p = subprocess.Popen([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            port = int(p.stdout.readline())
            client(port, name, ciphers, cert)
            p.wait(30)
        except (ValueError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
        if p.returncode == 0 and os.path.exists(out):
            n += 1
        else:
            tail = "\n".join(p.stderr.read().splitlines()[-20:])
            seed_findings.append("recording variant %d, name %s, suites %s, client certificate "
                                 "%s: exit %s\n%s" % (variant, name, ciphers, cert, p.returncode,
                                                      tail))
    return n


def client_hellos():
    """What real clients send first: each client's bytes until it waits for
    the server (a loopback server that reads and never answers)."""
    import socket
    import ssl
    import threading
    import warnings

    def ctx(lo=ssl.TLSVersion.TLSv1_2, hi=ssl.TLSVersion.MAXIMUM_SUPPORTED, ciphers=None,
            alpn=("http/1.1",)):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        if ciphers:
            c.set_ciphers(ciphers)
        c.minimum_version, c.maximum_version = lo, hi
        if alpn:
            c.set_alpn_protocols(list(alpn))
        return c

    v12, v13, v10 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1
    clients = [(ctx(hi=v12), "api.example.com"), (ctx(hi=v12), "www.example.com"),
               (ctx(hi=v12), "unknown.test"), (ctx(hi=v12), None),
               (ctx(), "api.example.com"), (ctx(lo=v13), "api.example.com"),
               (ctx(hi=v12, ciphers="ECDHE-RSA-AES128-GCM-SHA256"), "api.example.com"),
               (ctx(hi=v12, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"), "a.example.com"),
               (ctx(hi=v12, ciphers="AES128-SHA:AES256-GCM-SHA384"), "api.example.com"),
               (ctx(hi=v12, alpn=("h2", "http/1.1")), "api.example.com"),
               (ctx(hi=v12, alpn=None), "API.EXAMPLE.COM")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0: the point here
            clients.append((ctx(lo=v10, hi=v10, ciphers="DEFAULT:@SECLEVEL=0"), "api.example.com"))
    except (ssl.SSLError, ValueError):
        pass
    out = []
    for c, name in clients:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)

            def talk():
                try:
                    with socket.create_connection(srv.getsockname(), timeout=2) as raw:
                        c.wrap_socket(raw, server_hostname=name)
                except (OSError, ssl.SSLError):
                    pass

            t = threading.Thread(target=talk)
            t.start()
            conn, _ = srv.accept()
            conn.settimeout(0.5)
            data = b""
            try:
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    data += b
            except OSError:
                pass
            conn.close()
            t.join()
            if data:
                out.append(data)
    return out


def tls_seeds(d, exe, certs):
    convs = recorded_conversations(exe, d, certs)
    hellos = client_hellos()
    first = hellos[0] if hellos else b""
    extra = [
        b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        # an SSLv2-style hello asking for TLS 1.2
        b"\x80\x2e\x01\x03\x03\x00\x15\x00\x00\x00\x10" + bytes.fromhex(
            "00c02b00c02f00009c00003500002f00000a0000ff") + b"\x11" * 16,
        # a hello followed by an alert, a ChangeCipherSpec and application data
        first + b"\x15\x03\x03\x00\x02\x02\x28" + b"\x14\x03\x03\x00\x01\x01"
        + b"\x17\x03\x03\x00\x05hello",
        # the hello's handshake message split over two records
        (b"\x16\x03\x01" + struct.pack(">H", 40) + first[5:45] + b"\x16\x03\x01"
         + struct.pack(">H", len(first) - 45) + first[45:]) if len(first) > 45 else b"",
    ]
    n = 0
    for data in hellos + [e for e in extra if e]:
        for variant in range(4):
            for piece in ((0, 7) if variant in (0, 1) else (0,)):
                write(d, "seed-%04d" % n, bytes([variant, piece]) + data)
                n += 1
    return n + convs


def run_target(name, exe, corpus, seconds, artifacts, runs=0, seed=0):
    os.makedirs(artifacts, exist_ok=True)
    # A count of runs with a fixed seed explores the same inputs on every
    # machine (what CI uses); a time bound explores as far as the machine gets.
    bound = ["-runs=%d" % runs, "-seed=%d" % seed] if runs else ["-max_total_time=%d" % seconds]
    cmd = [exe, *bound, "-timeout=10", "-rss_limit_mb=2048",
           "-max_len=16384", "-print_final_stats=1",
           "-artifact_prefix=" + os.path.join(artifacts, ""), corpus]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                       timeout=(seconds if not runs else 600) + 300)
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", p.stderr)
    execs = int(m.group(1)) if m else 0
    found = sorted(glob.glob(os.path.join(artifacts, "*")))
    ok = p.returncode == 0 and not found
    print("%-14s %10d executions in %.0fs, exit %d%s" % (name, execs, time.time() - t0,
                                                         p.returncode,
                                                       "" if ok else ", FINDINGS"), flush=True)
    if not ok:
        print("\n".join(p.stderr.splitlines()[-40:]))
        for f in found:
            print("  input: %s" % f)
            print("  reproduce: %s %s" % (exe, f))
    return ok, execs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=0,
                    help="run this many inputs per target instead of --seconds")
    ap.add_argument("--seed", type=int, default=1, help="with --runs: libFuzzer's seed")
    ap.add_argument("--request-path")
    ap.add_argument("--config")
    ap.add_argument("--routes")
    ap.add_argument("--tls-server")
    ap.add_argument("--keep")
    ap.add_argument("--vectors", default=os.path.join(ROOT, "..", "shared", "vectors"))
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="tandem-fuzz-")
    passed = failed = 0
    seeders = {"request_path": lambda d: request_seeds(d, a.vectors),
               "config": config_seeds, "routes": route_seeds,
               "tls_server": lambda d: tls_seeds(d, a.tls_server,
                                                 os.environ["TANDEM_FUZZ_TLS_CERTS"])}
    for name, exe in (("request_path", a.request_path), ("config", a.config),
                      ("routes", a.routes), ("tls_server", a.tls_server)):
        if not exe:
            continue
        if name == "tls_server":
            certs = os.path.join(work, name, "certs")
            if not os.path.isdir(certs):
                tls_certs(certs)
            os.environ["TANDEM_FUZZ_TLS_CERTS"] = certs
            with open(os.path.join(certs, "time")) as fh:
                os.environ["TANDEM_FUZZ_TLS_TIME"] = fh.read().strip()
        corpus = os.path.join(work, name, "corpus")
        if not os.path.isdir(corpus):
            os.makedirs(corpus)
            print("%-14s %d seeds" % (name, seeders[name](corpus)), flush=True)
        ok, _ = run_target(name, exe, corpus, a.seconds, os.path.join(work, name, "findings"),
                                 a.runs, a.seed)
        if name == "tls_server" and seed_findings:
            print("%-14s FINDINGS while recording seeds:\n%s" % (name, "\n".join(seed_findings)))
            ok = False
        passed += ok
        failed += not ok
    if not a.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print("findings kept under " + work)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
