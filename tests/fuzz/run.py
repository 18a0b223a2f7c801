#!/usr/bin/python3
"""Runs the libFuzzer targets for a bounded time from seeds built out of the
shared corpora (../shared/vectors) and the shipped configuration.

    run.py --seconds S --request-path EXE --config EXE --routes EXE
           [--keep DIR] [--vectors DIR]

Seeds:
  request path  every llhttp 9.4.2 request fixture and desync-guardian case
                (bytes as tests/conformance/replay.py builds them) and requests
                for targets that test routing, each paired with an llhttp
                response fixture as the upstream's reply;
  config        config/tandem.json and variants, each also with the shipped
                route files after a NUL byte;
  routes        config/routes/*.json.
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
    ap.add_argument("--keep")
    ap.add_argument("--vectors", default=os.path.join(ROOT, "..", "shared", "vectors"))
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="tandem-fuzz-")
    passed = failed = 0
    seeders = {"request_path": lambda d: request_seeds(d, a.vectors),
               "config": config_seeds, "routes": route_seeds}
    for name, exe in (("request_path", a.request_path), ("config", a.config),
                      ("routes", a.routes)):
        if not exe:
            continue
        corpus = os.path.join(work, name, "corpus")
        if not os.path.isdir(corpus):
            os.makedirs(corpus)
            print("%-14s %d seeds" % (name, seeders[name](corpus)), flush=True)
        ok, _ = run_target(name, exe, corpus, a.seconds, os.path.join(work, name, "findings"),
                                 a.runs, a.seed)
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
