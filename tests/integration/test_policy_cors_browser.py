#!/usr/bin/env python3
"""The `cors` policy as a browser sees it: headless Chromium (Debian's
`chromium`, driven over the DevTools protocol on a pipe: no network, no
package beyond the browser) loads a page from one origin (a local HTTP
server on its own port) that calls the gateway on another. From the
allowed origin a preflighted PUT with a custom field succeeds and the page
reads an exposed response field; from a refused origin the browser fails
the request, and the refused preflight never reaches the upstream. The driver is
browser.py."""
import http.server
import json
import os
import shutil
import socketserver
import tempfile
import threading
import time

from browser import Browser
from harness import Gateway, TestRun, Upstream

def access_log(gw, count, timeout=10):
    """The access log once it holds `count` lines (the logger writes them
    a moment after the answers)."""
    end = time.time() + timeout
    while True:
        lines = gw.access_log()
        if len(lines) >= count or time.time() > end:
            return lines
        time.sleep(0.05)


t = TestRun("policy_cors_browser")


class Page(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """The site a page comes from: one empty HTML page, on its own port."""
    daemon_threads = True

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>page</title><p>cross-origin caller</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Page.Handler)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


# A preflighted PUT (a custom field and a JSON body), with the page's
# credentials: the result as the page sees it.
PUT = """(async () => {
  try {
    const r = await fetch(%s, {method: "PUT", credentials: "include",
      headers: {"X-Trace": "from-page", "Content-Type": "application/json"},
      body: JSON.stringify({n: 1})});
    const j = await r.json();
    const h = Object.fromEntries(j.headers.map(([k, v]) => [k.toLowerCase(), v]));
    return {ok: true, status: r.status, method: j.method, trace: h["x-trace"],
            upstream: r.headers.get("x-upstream")};
  } catch (e) { return {ok: false, error: String(e)}; }
})()"""

# A simple GET (no preflight): the browser still needs the allow field to
# hand the answer to the page.
GET = """(async () => {
  try { const r = await fetch(%s); return {ok: true, status: r.status}; }
  catch (e) { return {ok: false, error: String(e)}; }
})()"""


@t.case
def browser_calls_from_the_allowed_origin_succeed_and_others_fail():
    allowed, refused = Page(), Page()
    up = Upstream()
    pdir = tempfile.mkdtemp(prefix="tandem-policies-")
    with open(os.path.join(pdir, "web.json"), "w") as f:
        json.dump({"policies": [{"name": "web", "type": "cors", "origins": [allowed.origin],
                                 "headers": ["x-trace", "content-type"],
                                 "expose_headers": ["x-upstream"], "credentials": True,
                                 "max_age_s": 0}]}, f)
    # GET and PUT only: the browser's OPTIONS preflight must still be answered
    routes = [{"name": "api", "match": {"path": "/api/echo", "methods": ["GET", "PUT"]},
               "upstream": "app", "rewrite": "/echo", "policies": ["web"]}]
    gw = Gateway(routes, upstreams={"app": {"targets": [{"address": up.address}]}},
                 extra={"policies": {"dir": pdir}})
    browser = Browser()
    url = json.dumps(f"http://127.0.0.1:{gw.port}/api/echo")
    try:
        browser.open(allowed.origin + "/")
        r = browser.eval(PUT % url)
        assert r["ok"], r
        assert r["status"] == 200 and r["method"] == "PUT" and r["trace"] == "from-page", r
        assert r["upstream"] == "up", r  # an exposed field, readable by the page
        assert browser.eval(GET % url) == {"ok": True, "status": 200}

        browser.open(refused.origin + "/")
        r = browser.eval(PUT % url)
        assert not r["ok"] and "Failed to fetch" in r["error"], r
        r = browser.eval(GET % url)
        assert not r["ok"] and "Failed to fetch" in r["error"], r

        lines = access_log(gw, 5)
        seen = [(l["method"], l["status"], l["upstream"] is not None) for l in lines]
        # allowed: preflight answered here (204, no upstream), then the PUT
        # and the GET proxied; refused: the preflight refused (403) and no
        # PUT sent at all, the simple GET proxied (the browser hides it)
        assert seen == [("OPTIONS", 204, False), ("PUT", 200, True), ("GET", 200, True),
                        ("OPTIONS", 403, False), ("GET", 200, True)], seen
    finally:
        browser.close()
        gw.close()
        up.stop()
        allowed.close()
        refused.close()
        shutil.rmtree(pdir, ignore_errors=True)


t.finish()
