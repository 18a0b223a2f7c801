#!/usr/bin/python3
"""Runs the varnishtest scripts in this directory against the real gateway.

    run.py [FILE.vtc ...]          (TANDEM_BIN: the gateway)

varnishtest runs each script's scripted client and scripted upstream (no
varnishd). For every .vtc a fresh gateway starts on ephemeral ports with:
  - a route answering 403 for /admin and everything under it (`respond`),
    unless the script has a line `# routes: no-deny`;
  - /hello answered by the gateway itself;
  - everything else proxied to upstream "up" at 127.0.0.1:${up_port}, where
    the script's `server s1 -listen "127.0.0.1:${up_port}"` listens.
A line `# routes: no-proxy` leaves out the route proxying everything else
(so that a request can match no route). A line `# routes: edits` gives the proxied route the field edits in EDITS,
`# routes: edits-protected` those in EDITS_PROTECTED; `# routes: strip-prefix`
adds a route forwarding /api/... to the upstream without its /api prefix. A
line `# listener: {JSON}` adds keys to the public listener (e.g. its
path_policy); each line `# route: {JSON}` adds a route, proxied to "up"
unless it says otherwise; a line `# upstream: {JSON}` adds keys to upstream
"up" (e.g. its max_connections).
Macros given to the script: ${gw_port} (public listener), ${admin_port} (the
admin listener), ${up_port}. A script passes when varnishtest does and the
gateway then exits cleanly on SIGTERM. Ends with "N passed, N failed".
"""
import glob
import http.client
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Gateway, await_no_connections, free_port  # noqa: E402

DENY = {"name": "deny-admin", "match": {"path_prefix": "/admin"}, "priority": 10,
        "respond": {"status": 403, "body": "denied\n"}}
HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello from tandem\n"}}
ALL = {"name": "all", "match": {"path": "/*rest"}, "upstream": "up"}
STRIP = {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up", "strip_prefix": True,
         "priority": 5}


# With a line `# routes: edits`, the proxied route edits fields both ways.
EDITS = {"request_headers": {"set": {"x-route": "all", "x-replaced": "by-route"},
                             "add": {"x-added": "1"}, "remove": ["cookie", "x-drop"]},
         "response_headers": {"set": {"cache-control": "no-store"},
                              "add": {"x-resp-added": "1"}, "remove": ["server"]}}

# With `# routes: edits-protected`, edits aimed at the gateway's own fields.
EDITS_PROTECTED = {
    "request_headers": {"set": {"x-forwarded-for": "1.2.3.4", "x-request-id": "forged",
                                "host": "forged", "forwarded": "for=1.2.3.4",
                                "x-real-ip": "1.2.3.4", "x-forwarded-port": "1",
                                "x-forwarded-prefix": "/forged"},
                        "remove": ["x-forwarded-proto", "x-forwarded-host", "host",
                                   "forwarded", "x-real-ip", "x-forwarded-port"]},
    "response_headers": {"set": {"x-request-id": "forged"}, "remove": ["x-request-id"]}}


def run_one(path, varnishtest):
    text = open(path, encoding="utf-8").read()
    routes = [HELLO, ALL] if "# routes: no-deny" in text else [DENY, HELLO, ALL]
    if "# routes: no-proxy" in text:
        routes.remove(ALL)
    if "# routes: edits-protected" in text:
        routes = [dict(r, **EDITS_PROTECTED) if r is ALL else r for r in routes]
    elif "# routes: edits" in text:
        routes = [dict(r, **EDITS) if r is ALL else r for r in routes]
    listener = {"header_timeout_ms": 3000, "idle_timeout_ms": 3000}
    upstream = {"retries": 0, "health": {"passive": {"failures": 0}}}
    for line in text.splitlines():
        if line.startswith("# upstream:"):
            upstream.update(json.loads(line[len("# upstream:"):]))
        elif line.startswith("# listener:"):
            listener.update(json.loads(line[len("# listener:"):]))
        elif line.startswith("# route:"):
            extra = json.loads(line[len("# route:"):])
            if "respond" not in extra:
                extra.setdefault("upstream", "up")
            routes.append(extra)
    if "# routes: strip-prefix" in text:
        routes.append(STRIP)
    up_port = free_port()
    try:
        gw = Gateway(routes, {"up": dict(upstream,
                                         targets=[{"address": "127.0.0.1:%d" % up_port}])},
                     listener=listener)
    except RuntimeError as e:
        return False, str(e)
    try:
        if not await_no_connections(gw):
            return False, "the start-up probes still count as connections"
        p = subprocess.run([varnishtest, "-v", "-t", "60",
                            "-D", "gw_port=%d" % gw.port, "-D", "up_port=%d" % up_port,
                            "-D", "admin_port=%d" % gw.admin_port, path],
                           capture_output=True, text=True, timeout=120)
        out = (p.stdout + p.stderr).splitlines()
        # the failed assertion ("----" lines), then the end of the log
        why = "\n".join([ln for ln in out if ln.startswith("----")] + out[-25:])
        ok = p.returncode == 0
    finally:
        code = gw.stop()
        log = gw.log()
        gw.close()
    if ok and code != 0:
        ok, why = False, "gateway exit %s: %s" % (code, log[-1000:])
    return ok, why


def main():
    varnishtest = shutil.which("varnishtest")
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.vtc")))
    if not varnishtest:
        print("varnishtest not found (Debian package varnish): skipped")
        print("0 passed, 0 failed")
        return 77
    passed = failed = 0
    for f in files:
        ok, why = run_one(f, varnishtest)
        name = os.path.basename(f)
        if ok:
            passed += 1
            print("ok   " + name, flush=True)
        else:
            failed += 1
            print("FAIL %s\n%s" % (name, why), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
