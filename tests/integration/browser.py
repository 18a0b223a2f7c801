"""Headless Chromium driven over the DevTools protocol on a pipe, for the
browser tests and benchmarks: no network, no package beyond Debian's
`chromium` (scripts/deps test installs it).

Chromium runs with --remote-debugging-pipe: DevTools messages are JSON
texts ending in NUL, written to its fd 3 and read from its fd 4. A Browser
holds one Chromium; each Tab is a page target attached in flattened mode
(its own session id on the same pipe). Events Chromium sends while a call
waits for its answer are kept per session, so a test can ask afterwards
which requests a page made, what it logged and which scripts threw.

    b = Browser()
    tab = b.tab                     # the first tab; b.new_tab() opens more
    tab.open("http://127.0.0.1:9901/ui/")
    tab.wait("document.querySelector('#login') !== null")
    tab.fill("#token", "secret"); tab.click("#login-submit")
    tab.screenshot("overview.png")
    tab.problems()                  # console errors, exceptions, CSP reports
    b.close()

`Browser.open` and `Browser.eval` act on the first tab, so a test that
needs one page can use the browser object alone."""
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A sanitizer build of the gateway answers several times slower: waits for
# something that should happen are stretched by this factor (tests/meson.build).
SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))

# Run in every document before its own scripts (the DevTools protocol's
# scripts are not subject to the page's Content-Security-Policy): records
# each CSP violation the page causes, which the page itself cannot hide.
CSP_RECORDER = """
window.__csp_violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp_violations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                                source: e.sourceFile, line: e.lineNumber});
});
"""


class Tab:
    """One page target. Every event Chromium sends for it is kept in
    `events` (method, params), bounded to the last `keep` events; requests
    the page made are in `requests` (every URL, never trimmed: a test
    checks that none carries a secret)."""

    def __init__(self, browser, target_id, session_id, keep=20000):
        self.browser = browser
        self.target_id = target_id
        self.session = session_id
        self.events = []
        self.keep = keep
        self.requests = []
        self.console = []
        self.exceptions = []
        self.log_entries = []

    # ---- protocol ----------------------------------------------------------------

    def call(self, method, params=None, timeout=30):
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def _event(self, method, params):
        if method == "Network.requestWillBeSent":
            r = params.get("request", {})
            self.requests.append({"url": r.get("url", ""), "method": r.get("method"),
                                  "headers": r.get("headers", {})})
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in params.get("args", []))
            self.console.append({"type": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.exceptions.append(d.get("exception", {}).get("description") or d.get("text"))
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.log_entries.append({"level": e.get("level"), "source": e.get("source"),
                                     "text": e.get("text"), "url": e.get("url")})
        self.events.append((method, params))
        if len(self.events) > self.keep:
            del self.events[:len(self.events) - self.keep]

    def enable(self):
        """Turns on the domains whose events the tab keeps."""
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(domain + ".enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})

    def pump(self, seconds=0.0):
        """Reads what Chromium sent for up to `seconds` (events only)."""
        self.browser.pump(seconds)

    # ---- page --------------------------------------------------------------------

    def open(self, url, timeout=30):
        """Navigates and waits until the document at `url` has loaded (its
        fragment aside: a page may rewrite it as it starts)."""
        self.call("Page.navigate", {"url": url})
        deadline = time.time() + timeout
        want = url.split("#", 1)[0]
        while True:
            try:
                if self.eval("document.readyState") == "complete" and \
                        self.eval("location.href").split("#", 1)[0] == want:
                    return
            except RuntimeError:
                pass  # the document changed under the evaluation
            if time.time() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)

    def eval(self, expr, timeout=30):
        """The value of a JavaScript expression in the page (awaited when it
        is a promise); raises RuntimeError when it throws."""
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True,
                                           "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"{expr}: {d.get('exception', {}).get('description') or d}")
        return r["result"].get("value")

    def wait(self, expr, timeout=10.0, step=0.05, what=None):
        """Until `expr` is truthy in the page; returns its value. Raises
        TimeoutError naming `what` (or the expression) and its last value.
        `timeout` is stretched by TANDEM_TEST_TIME_SCALE."""
        timeout *= SCALE
        deadline = time.time() + timeout
        v = None
        # An element comes back by value as {} (falsy here): count it as true.
        probe = f"((v) => v instanceof Node ? true : v)({expr})"
        while True:
            try:
                v = self.eval(probe)
            except RuntimeError as e:
                v = e
            if v and not isinstance(v, RuntimeError):
                return v
            if time.time() > deadline:
                raise TimeoutError(f"{what or expr}: still {v!r} after {timeout} s")
            time.sleep(step)

    def exists(self, selector):
        return self.eval(f"document.querySelector({json.dumps(selector)}) !== null")

    def text(self, selector):
        """textContent of the first match, or None when nothing matches."""
        return self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                         f" return e ? e.textContent : null; }})()")

    def click(self, selector):
        """A real mouse click (pressed and released) at the middle of the
        element, scrolled into view first: what a user does, so a handler
        that only listens to `click` on another element would miss it."""
        box = self.eval(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: 'center', inline: 'center'}});
            const r = e.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2,
                     w: r.width, h: r.height}};
        }})()""")
        if not box:
            raise RuntimeError(f"click: nothing matches {selector}")
        if box["w"] == 0 or box["h"] == 0:
            raise RuntimeError(f"click: {selector} is not visible")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                                   "button": "left", "clickCount": 1})

    def fill(self, selector, value):
        """Sets an input's, textarea's or select's value as typing or
        choosing would: focus, value, then `input` and `change` events."""
        ok = self.eval(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return false;
            e.focus();
            const proto = Object.getPrototypeOf(e);
            const set = Object.getOwnPropertyDescriptor(proto, 'value').set;
            set.call(e, {json.dumps(value)});
            e.dispatchEvent(new Event('input', {{bubbles: true}}));
            e.dispatchEvent(new Event('change', {{bubbles: true}}));
            return true;
        }})()""")
        if not ok:
            raise RuntimeError(f"fill: nothing matches {selector}")

    def press(self, key="Enter"):
        """One key press (down and up) on the focused element."""
        codes = {"Enter": 13, "Escape": 27, "Tab": 9}
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": key, "code": key,
                      "windowsVirtualKeyCode": codes.get(key, 0)}
            if kind == "keyDown" and key == "Enter":
                params["text"] = "\r"
            self.call("Input.dispatchKeyEvent", params)

    def viewport(self, width, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshot(self, path, full_page=True):
        """Writes a PNG of the page (the whole document when `full_page`)."""
        params = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": min(size["height"], 4000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def csp_violations(self):
        return self.eval("window.__csp_violations || []")

    def problems(self):
        """Everything that went wrong in the page so far: console errors
        and warnings, uncaught exceptions, browser log entries at warning
        level or above (a CSP refusal, a failed load) and CSP violation
        reports. Empty when the page ran cleanly."""
        self.pump(0)
        out = [f"console.{c['type']}: {c['text']}" for c in self.console
               if c["type"] in ("error", "warning", "assert")]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [f"log {e['level']} ({e['source']}): {e['text']} {e['url'] or ''}"
                for e in self.log_entries if e["level"] in ("warning", "error")]
        try:
            out += [f"csp: {v}" for v in self.csp_violations()]
        except RuntimeError as e:
            out.append(f"csp recorder unreadable: {e}")
        return out

    def close(self):
        try:
            self.browser.call("Target.closeTarget", {"targetId": self.target_id}, timeout=10)
        except Exception:  # noqa: BLE001 - closing a tab that already went
            pass
        self.browser.tabs.pop(self.session, None)


class Browser:
    """One headless Chromium with one tab open (`tab`)."""

    def __init__(self, width=1280, height=900):
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError(f"{CHROMIUM} is missing: scripts/deps test installs chromium")
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="tandem-chromium-")

        def fds():
            # pipe ends may be 3 or 4 already: lift them first
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = open(os.path.join(self.profile, "stderr.log"), "w")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-background-timer-throttling",
             "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
             "--remote-debugging-pipe", f"--window-size={width},{height}",
             f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.tabs = {}
        self.width, self.height = width, height
        self.tab = self.new_tab()

    def new_tab(self, url="about:blank", isolated=False):
        """Opens a page target, attaches to it and enables its events.
        `isolated`: in a browser context of its own (as another browser
        profile would be: its own cookies, storage and connection pool;
        Chromium opens at most 6 HTTP/1.1 connections to a host per pool,
        which pages holding a stream each use up)."""
        params = {"url": url}
        if isolated:
            params["browserContextId"] = self.call("Target.createBrowserContext")[
                "browserContextId"]
        target = self.call("Target.createTarget", params)["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, target, session)
        self.tabs[session] = tab
        tab.enable()
        tab.viewport(self.width, self.height)
        return tab

    def _read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.from_r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            data = os.read(self.from_r, 1 << 16)
            if not data:
                raise EOFError("chromium closed its pipe")
            self.buf += data
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def _dispatch(self, m):
        tab = self.tabs.get(m.get("sessionId"))
        if tab is not None and "method" in m:
            tab._event(m["method"], m.get("params", {}))

    def pump(self, seconds=0.0):
        """Reads and files events for `seconds` (0: only what is there)."""
        deadline = time.time() + seconds
        while True:
            try:
                m = self._read(max(deadline, time.time() + 0.001))
            except TimeoutError:
                return
            self._dispatch(m)

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        want = self.next_id
        msg = {"id": want, "method": method, "params": params or {}}
        if session is True:
            session = self.tab.session
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self._dispatch(m)

    # the first tab, for tests that need only one page
    def open(self, url, timeout=30):
        return self.tab.open(url, timeout)

    def eval(self, expr, timeout=30):
        return self.tab.eval(expr, timeout)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it may have gone already
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
