#!/usr/bin/env python3
"""The dashboard (/ui/ on the admin listener) in headless Chromium against
the real binary, through the page as an operator uses it: log in with the
token (refused without it), the process table against /admin/processes,
200 keep-alive connections showing up without a reload, a slow request
killed from the page (its client gets 502, the others their answers), a
restart marked in the supervision tree, a route table edited and rolled
back, a crash shown within a second of the kill. The page runs under its
Content-Security-Policy without a console error, keeps nothing in
localStorage and never puts the token in a URL. A screenshot of every view
is saved under the build directory's artifacts/dashboard/ (and checked to
show the data the gateway holds).

The element ids and classes used here are the dashboard's contract with
its tests (gateway/src/ui/README.md). Driver: browser.py."""
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from browser import Browser  # noqa: E402
from harness import TestRun, Upstream, free_port, tandem_bin, wait_port  # noqa: E402

t = TestRun("dashboard_browser")

SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))
TOKEN_ENV = "TANDEM_TEST_UI_TOKEN"
HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello\n", "headers": {"content-type": "text/plain"}}}
API = {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "app", "strip_prefix": True}


def artifacts_dir():
    """build/artifacts/dashboard (the build root is two levels above the
    binary the tests run), or TANDEM_ARTIFACTS when set."""
    root = os.environ.get("TANDEM_ARTIFACTS") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(tandem_bin()))), "artifacts")
    return os.path.join(root, "dashboard")


class Gw:
    """tandem with an admin token, one public listener, routes `routes`
    (default: /hello) and upstreams `upstreams`."""

    def __init__(self, routes=None, upstreams=None):
        self.token = "ui-" + os.urandom(12).hex()
        self.dir = tempfile.mkdtemp(prefix="tandem-ui-")
        os.makedirs(os.path.join(self.dir, "routes"))
        with open(os.path.join(self.dir, "routes", "main.json"), "w") as f:
            json.dump({"routes": routes if routes is not None else [HELLO]}, f, indent=2)
        self.port, self.admin_port = free_port(), free_port()
        cfg = {"runtime": {"schedulers": 2},
               "listeners": [{"name": "public", "address": f"127.0.0.1:{self.port}"}],
               "admin": {"address": f"127.0.0.1:{self.admin_port}", "token_env": TOKEN_ENV},
               "upstreams": upstreams or {}, "routes": "routes", "drain_timeout_ms": 3000,
               "access_log": False}
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        env = dict(os.environ)
        env[TOKEN_ENV] = self.token
        import subprocess
        self.proc = subprocess.Popen([tandem_bin(), "-c", self.config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        try:
            wait_port(self.port)
            wait_port(self.admin_port)
        except TimeoutError:
            self.close()
            raise
        self.ui = f"http://127.0.0.1:{self.admin_port}/ui/"

    def admin(self, method, path, body=None, token=True, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        h = {"Authorization": "Bearer " + self.token} if token else {}
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def get(self, path):
        s, v = self.admin("GET", path)
        assert s == 200, (path, s, v)
        return v

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def public_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def wait_for(fn, timeout=10.0, step=0.05):
    end = time.time() + timeout * SCALE
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def q(sel):
    return json.dumps(sel)


def login(tab, gw):
    """Logs in through the form and waits for the event stream."""
    tab.open(gw.ui)
    tab.wait("!document.querySelector('#login').closest('[hidden]')", what="the login form")
    tab.fill("#token", gw.token)
    tab.click("#login-submit")
    tab.wait("document.querySelector('#live') && "
             "document.querySelector('#live').dataset.state === 'connected'",
             timeout=10, what="the event stream connected")


def show(tab, view):
    """Opens a view through its navigation link."""
    tab.click(f'a[data-view="{view}"]')
    tab.wait(f"document.querySelector('#view-{view}') !== null", what=f"#view-{view}")


class ApiCount:
    """/admin/processes' total over one kept connection, less this
    request's own process: the connection is there for the page to count
    too (open it before the page loads), the request process only while
    the API answers it, never when the gateway samples its count."""

    def __init__(self, gw):
        self.gw = gw
        self.c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
        self()

    def __call__(self):
        self.c.request("GET", "/admin/processes?limit=1",
                       headers={"Authorization": "Bearer " + self.gw.token})
        return json.loads(self.c.getresponse().read())["total"] - 1

    def admin_conns(self):
        """The admin listener's connection processes (the browser's among
        them, which the gateway closes once idle past its keep-alive
        timeout), over the same kept connection."""
        self.c.request("GET", "/admin/processes?kind=connection&limit=1000",
                       headers={"Authorization": "Bearer " + self.gw.token})
        v = json.loads(self.c.getresponse().read())
        return {p["pid"] for p in v["processes"]
                if not (p["detail"] or "").startswith("public ")}

    def matches(self, tab, selector):
        """True once the page's count equals the API's three reads in a row
        (a match held, not one met by chance)."""
        def same():
            shown = tab.eval(f"parseInt(document.querySelector({q(selector)}).textContent)")
            return shown == self()
        return wait_for(lambda: all(same() for _ in range(3)), timeout=15)

    def close(self):
        self.c.close()


def rows(tab, selector="tr.proc-row"):
    return tab.eval(f"[...document.querySelectorAll({q(selector)})].map(e => e.dataset.pid)")


def session(gw_kwargs=None):
    """A gateway and a browser, closed by the caller."""
    return Gw(**(gw_kwargs or {})), Browser()


# ---- login --------------------------------------------------------------------------


@t.case
def login_with_the_token_and_refused_without_it():
    gw, b = session()
    tab = b.tab
    try:
        tab.open(gw.ui)
        tab.wait("!document.querySelector('#login').closest('[hidden]')", what="login form")
        assert tab.eval("document.querySelector('#app') === null || "
                        "document.querySelector('#app').closest('[hidden]') !== null"), \
            "the dashboard shows before a login"
        # A wrong token: the form stays, with a message, and no data is shown.
        tab.fill("#token", gw.token[:-1] + "x")
        tab.click("#login-submit")
        msg = tab.wait("document.querySelector('#login-error').textContent.trim()",
                       what="#login-error's message")
        assert msg, msg
        assert not tab.eval("!document.querySelector('#login').closest('[hidden]') && "
                            "document.querySelector('#view-overview') !== null")
        assert tab.eval("sessionStorage.length") == 0, "a refused token was kept"
        # Nothing but the static files answered without the token.
        for path in ("/admin/system", "/admin/processes", "/admin/events"):
            s, v = gw.admin("GET", path, token=False)
            assert s == 401, (path, s, v)
        # The right token: the overview with live data.
        tab.fill("#token", gw.token)
        tab.click("#login-submit")
        tab.wait("document.querySelector('#live').dataset.state === 'connected'",
                 timeout=10, what="event stream connected")
        tab.wait("document.querySelector('#view-overview') !== null", what="#view-overview")
        procs = tab.wait("parseInt(document.querySelector('#ov-processes').textContent)",
                         timeout=10, what="#ov-processes")
        assert procs > 10, procs  # the gateway's own tree alone is 20
        version = gw.get("/admin/routes")["version"]
        tab.wait(f"document.querySelector('#ov-routes-version').textContent.includes('{version}')",
                 what="#ov-routes-version")
        # The token is kept for the tab only: in sessionStorage, nowhere else.
        assert tab.eval("Object.values(sessionStorage).includes(%s)" % q(gw.token))
        assert tab.eval("localStorage.length") == 0
        assert gw.token not in tab.eval("document.cookie")
        # A new tab (a new browsing session) starts at the login form.
        tab2 = b.new_tab()
        tab2.open(gw.ui)
        tab2.wait("!document.querySelector('#login').closest('[hidden]')", what="login form")
        assert tab2.eval("sessionStorage.length") == 0
        tab2.close()
        # Logging out forgets it.
        if tab.exists("#logout"):
            tab.click("#logout")
            tab.wait("!document.querySelector('#login').closest('[hidden]')", what="login form")
            assert tab.eval("sessionStorage.length") == 0
    finally:
        b.close()
        gw.close()


# ---- the page's own conduct ---------------------------------------------------------


@t.case
def every_view_runs_under_its_csp_without_errors_and_the_token_stays_out_of_urls():
    up = Upstream()
    gw = Gw(routes=[HELLO, API], upstreams={"app": {"targets": [{"address": up.address}]}})
    b = Browser()
    tab = b.tab
    try:
        c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
        c.request("GET", "/ui/")
        r = c.getresponse()
        r.read()
        csp = r.getheader("Content-Security-Policy") or ""
        c.close()
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp

        login(tab, gw)
        for view in ("overview", "processes", "tree", "routes", "upstreams"):
            show(tab, view)
            tab.pump(1.5)
        # A table row's detail, and the other route versions.
        show(tab, "processes")
        tab.wait("document.querySelectorAll('tr.proc-row').length > 0", what="process rows")
        tab.click("tr.proc-row")
        tab.wait("document.querySelector('#proc-detail') && "
                 "!document.querySelector('#proc-detail').hidden && "
                 "document.querySelector('#proc-kill') !== null", what="#proc-detail")
        tab.pump(1.0)
        problems = tab.problems()
        assert problems == [], problems

        # The policy is in force, not just sent: an inline script the page
        # were tricked into adding does not run, and is reported.
        tab.eval("(() => { const s = document.createElement('script');"
                 " s.textContent = 'window.__inline_ran = true';"
                 " document.body.appendChild(s); })()")
        tab.pump(0.3)
        assert tab.eval("window.__inline_ran === undefined"), "an inline script ran"
        assert any(v["directive"].startswith("script-src") for v in tab.csp_violations()), \
            tab.csp_violations()

        # Every call carries the token as a bearer field; no URL holds it.
        assert tab.requests, "no request recorded"
        for req in tab.requests:
            assert gw.token not in req["url"], req["url"]
        admin_calls = [r for r in tab.requests
                       if f":{gw.admin_port}/admin/" in r["url"]]
        assert any(r["url"].endswith("/admin/events") for r in admin_calls), admin_calls
        for r in admin_calls:
            auth = {k.lower(): v for k, v in r["headers"].items()}.get("authorization")
            assert auth == "Bearer " + gw.token, (r["url"], auth)
        assert tab.eval("localStorage.length") == 0
        # Nothing was fetched from anywhere but the admin listener.
        origin = f"http://127.0.0.1:{gw.admin_port}/"
        foreign = [r["url"] for r in tab.requests
                   if not r["url"].startswith(origin) and not r["url"].startswith("data:")]
        assert foreign == [], foreign
    finally:
        b.close()
        gw.close()
        up.stop()


# ---- processes ----------------------------------------------------------------------


@t.case
def process_table_count_matches_the_admin_api():
    gw, b = session()
    tab = b.tab
    count = ApiCount(gw)
    try:
        login(tab, gw)
        show(tab, "processes")
        assert count.matches(tab, "#proc-total"), (tab.text("#proc-total"), count())
        # With 30 more processes (public keep-alive connections), the page
        # follows without a reload.
        conns = []
        for _ in range(30):
            c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            c.request("GET", "/hello")
            c.getresponse().read()
            conns.append(c)
        assert count.matches(tab, "#proc-total"), (tab.text("#proc-total"), count())
        # The rows are the API's rows: the first page, same order.
        tab.fill("#proc-kind", "supervisor")
        v = gw.get("/admin/processes?kind=supervisor&limit=100&sort=age")
        want = [p["pid"] for p in v["processes"]]
        assert wait_for(lambda: rows(tab) == want, timeout=10), (rows(tab), want)
        for c in conns:
            c.close()
    finally:
        count.close()
        b.close()
        gw.close()


@t.case
def two_hundred_keepalive_connections_appear_as_processes_without_a_reload():
    gw, b = session()
    tab = b.tab
    conns = []
    count = ApiCount(gw)
    try:
        login(tab, gw)
        show(tab, "processes")
        tab.fill("#proc-kind", "connection")
        tab.wait("document.querySelectorAll('tr.proc-row').length > 0", what="connection rows")
        tab.eval("window.__same_document = true")
        assert count.matches(tab, "#proc-total"), (tab.text("#proc-total"), count())
        total0 = int(tab.text("#proc-total"))
        admin0 = count.admin_conns()
        for _ in range(200):
            c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            c.request("GET", "/hello")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"hello\n" and not r.will_close
            conns.append(c)

        def public_conns_api():
            v = gw.get("/admin/processes?kind=connection&limit=1000")
            return sorted(p["pid"] for p in v["processes"]
                          if (p["detail"] or "").startswith("public "))

        want = public_conns_api()
        assert len(want) == 200, len(want)

        def public_rows_on_page():
            return tab.eval("[...document.querySelectorAll('tr.proc-row')]"
                            ".filter(r => r.textContent.includes('public '))"
                            ".map(r => r.dataset.pid)")

        # The page follows without a reload: its first page (100 rows) fills
        # up at its next refresh; the next pages hold the rest.
        assert wait_for(lambda: len(rows(tab)) == 100 and public_rows_on_page(), timeout=15), \
            len(rows(tab))
        seen = set(public_rows_on_page())
        for _ in range(5):
            if tab.eval("document.querySelector('#proc-next').disabled"):
                break
            first = rows(tab)[:1]
            tab.click("#proc-next")
            assert wait_for(lambda: rows(tab)[:1] != first, timeout=5), "#proc-next did nothing"
            seen |= set(public_rows_on_page())
        assert sorted(seen) == want, (len(seen), sorted(set(want) - seen)[:5])
        assert tab.eval("window.__same_document === true"), "the page was reloaded"
        # The count in all follows too.
        assert count.matches(tab, "#proc-total"), (tab.text("#proc-total"), count())
        # Less any of the admin listener's own connections that closed
        # meanwhile (the browser's idle ones).
        gone = admin0 - count.admin_conns()
        assert int(tab.text("#proc-total")) >= total0 + 200 - len(gone), \
            (tab.text("#proc-total"), total0, len(gone))
    finally:
        for c in conns:
            c.close()
        count.close()
        b.close()
        gw.close()


@t.case
def killing_a_slow_request_from_the_page_answers_its_client_502_and_no_one_else():
    # Long enough for the page's clicks; a sanitizer build answers the
    # page's calls slower, the upstream is as fast as ever.
    slow_ms = int(12000 + 3000 * (SCALE - 1))
    up = Upstream()
    gw = Gw(routes=[HELLO, API], upstreams={"app": {"targets": [{"address": up.address}],
                                                    "response_timeout_ms": slow_ms + 20000}})
    b = Browser()
    tab = b.tab
    results = {}
    threads = []
    try:
        login(tab, gw)
        show(tab, "processes")

        def client(i):
            t0 = time.time()
            try:
                results[i] = public_get(gw.port, f"/api/slow?ms={slow_ms}",
                                        timeout=60 * SCALE) + (time.time() - t0,)
            except Exception as e:  # noqa: BLE001
                results[i] = (None, repr(e).encode(), time.time() - t0)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        t0 = time.time()
        for th in threads:
            th.start()
        assert wait_for(lambda: len([p for p in gw.get("/admin/processes?kind=request")
                                     ["processes"] if p.get("route") == "api"]) == 3, timeout=5)
        tab.fill("#proc-kind", "request")
        sel = "tr.proc-row"
        victim = tab.wait(f"""(() => {{
            const r = [...document.querySelectorAll({q(sel)})]
                .filter(r => r.textContent.includes('/slow'));
            return r.length === 3 ? r[0].dataset.pid : null; }})()""",
                          timeout=10, what="three slow request rows")
        tab.click(f'tr.proc-row[data-pid="{victim}"]')
        tab.wait("document.querySelector('#proc-kill') !== null && "
                 f"document.querySelector('#proc-detail').textContent.includes({q(victim)})",
                 what="the victim's detail")
        tab.click("#proc-kill")
        tab.wait("document.querySelector('#confirm').open", what="the confirmation dialog")
        # Not killed before it is confirmed.
        s, _ = gw.admin("GET", "/admin/processes/" + victim[1:-1])
        assert s == 200, s
        tab.click("#confirm-yes")
        killed_at = time.time() - t0
        for th in threads:
            th.join(60 * SCALE)
        errors = [r for r in results.values() if r[0] != 200]
        oks = [r for r in results.values() if r[0] == 200]
        assert len(errors) == 1 and len(oks) == 2, results
        assert errors[0][0] == 502, errors
        # Answered at the kill, well before the upstream would have.
        assert errors[0][2] < slow_ms / 1000.0 - 2, (errors, killed_at)
        for r in oks:
            assert r[1] == b"slow\n", r
        s, _ = gw.admin("GET", "/admin/processes/" + victim[1:-1])
        assert s == 404, s
    finally:
        for th in threads:
            th.join(60)
        b.close()
        gw.close()
        up.stop()


# ---- tree and events ----------------------------------------------------------------


def tree_child(gw, cid):
    return next(c for c in gw.get("/admin/supervisors")["tree"]["children"] if c["id"] == cid)


def tree_nodes(node, out=None):
    """{path of ids: pid} for every node of /admin/supervisors' tree."""
    out = {} if out is None else out
    for c in node.get("children") or []:
        if c["id"] is None:
            continue  # a simple_one_for_one child (a connection): no place of its own
        key = (node.get("id") or node.get("name"), c["id"])
        out[key] = c["pid"]
        tree_nodes(dict(c, id=f"{key[0]}/{c['id']}"), out)
    return out


@t.case
def tree_marks_a_restart_after_a_child_is_killed():
    gw, b = session()
    tab = b.tab
    try:
        login(tab, gw)
        show(tab, "tree")
        # The public listener's last acceptor: its restart restarts nothing else.
        root = gw.get("/admin/supervisors")["tree"]
        lsup = next(c for c in root["children"] if c["id"] == "listeners_sup")
        public = next(c for c in lsup["children"] if c["id"] == "public")
        victim = public["children"][-1]
        assert victim["id"].startswith("acceptor_"), victim
        node = f'li.tree-node[data-pid="{victim["pid"]}"]'
        tab.wait(f"document.querySelector({q(node)})", what="the acceptor's node")
        assert tab.eval("document.querySelectorAll('li.tree-node.restarted').length") == 0
        before = tree_nodes(root)
        tab.eval("window.__same_document = true")
        s, v = gw.admin("POST", f"/admin/processes/{victim['pid'][1:-1]}/kill",
                        body={"reason": "kill"})
        assert s == 200, (s, v)

        def restarted():
            after = tree_nodes(gw.get("/admin/supervisors")["tree"])
            # Children that were there before with another pid (connections
            # come and go under their conns_sup: new keys, not restarts).
            return {k: p for k, p in after.items() if k in before and before[k] != p} or None

        changed = wait_for(restarted)
        assert changed, "nothing was restarted"
        key = ("tandem_sup/listeners_sup/public", victim["id"])
        assert list(changed) == [key], changed
        new_pid = changed[key]
        marked = f'li.tree-node.restarted[data-pid="{new_pid}"]'
        tab.wait(f"document.querySelector({q(marked)})", timeout=5,
                 what="the acceptor's node marked restarted with its new pid")
        assert tab.eval("window.__same_document === true"), "the page was reloaded"
        # Only the restarted child is marked.
        pids = tab.eval("[...document.querySelectorAll('li.tree-node.restarted')]"
                        ".map(n => n.dataset.pid)")
        assert pids == [new_pid], pids
        # Collapsible: folding the root supervisor hides its children.
        tab.click("li.tree-node > button")
        tab.wait(f"document.querySelector({q(marked)}).offsetParent === null",
                 what="the child hidden once the root is folded")
        tab.click("li.tree-node > button")
        tab.wait(f"document.querySelector({q(marked)}).offsetParent !== null",
                 what="the child shown again once the root is unfolded")
    finally:
        b.close()
        gw.close()


@t.case
def event_stream_delivers_a_crash_to_the_page_within_a_second():
    gw, b = session()
    tab = b.tab
    try:
        login(tab, gw)
        # The time each kind of event first appeared in the page's list.
        tab.eval("""(() => {
            window.__first_seen = {};
            const list = document.querySelector('#events');
            new MutationObserver(() => {
                for (const li of list.querySelectorAll('li[data-type]')) {
                    const k = li.dataset.type;
                    if (!(k in window.__first_seen)) window.__first_seen[k] = Date.now();
                }
            }).observe(list, {childList: true, subtree: true});
        })()""")
        assert tab.eval("document.querySelectorAll('#events li[data-type=\"process_crashed\"]')"
                        ".length") == 0
        logger = tree_child(gw, "logger")
        killed = time.time()
        s, v = gw.admin("POST", f"/admin/processes/{logger['pid'][1:-1]}/kill",
                        body={"reason": "kill"})
        assert s == 200, (s, v)
        seen = tab.wait("window.__first_seen.process_crashed", timeout=5,
                        what="process_crashed in #events")
        delay = seen / 1000.0 - killed
        assert delay < 1.0 * SCALE, f"shown {delay:.3f} s after the kill"
        text = tab.eval("document.querySelector('#events li[data-type=\"process_crashed\"]')"
                        ".textContent")
        assert logger["pid"] in text, text
        sup = tab.wait("window.__first_seen.supervisor", timeout=5,
                       what="supervisor event in #events")
        assert sup / 1000.0 - killed < 1.0 * SCALE, sup / 1000.0 - killed
    finally:
        b.close()
        gw.close()


def watch_first_seen(tab):
    """Records in the page the time each kind of event first appears in
    #events (window.__first_seen[type], ms since the epoch)."""
    tab.eval("""(() => {
        window.__first_seen = {};
        const list = document.querySelector('#events');
        new MutationObserver(() => {
            for (const li of list.querySelectorAll('li[data-type]')) {
                const k = li.dataset.type;
                if (!(k in window.__first_seen)) window.__first_seen[k] = Date.now();
            }
        }).observe(list, {childList: true, subtree: true});
    })()""")


def event_streams(gw):
    """The gateway's open /admin/events streams: its admin request
    processes answering that path."""
    procs = gw.get("/admin/processes?kind=request&limit=1000")["processes"]
    return [p for p in procs if p.get("path") == "/admin/events"]


def leaders(tabs):
    return [t for t in tabs if t.eval("document.querySelector('#live').dataset.role") == "leader"]


@t.case
def eight_tabs_in_one_browser_share_one_event_stream_and_a_closed_leader_is_replaced():
    # One browser context: one pool of at most 6 connections to the admin
    # listener, which a stream per tab would use up by the 7th tab.
    gw, b = session()
    tabs = [b.tab] + [b.new_tab() for _ in range(7)]
    try:
        for i, tab in enumerate(tabs):
            try:
                login(tab, gw)
            except TimeoutError as e:
                raise AssertionError(f"tab {i + 1} of {len(tabs)}: {e}") from None
        for tab in tabs:
            tab.wait("document.querySelector('#live').dataset.state === 'connected'",
                     what="every tab connected")
        assert len(leaders(tabs)) == 1, [t.eval("document.querySelector('#live').dataset.role")
                                         for t in tabs]
        assert wait_for(lambda: len(event_streams(gw)) == 1), event_streams(gw)

        def crash_reaches(tabs):
            for tab in tabs:
                watch_first_seen(tab)
            logger = tree_child(gw, "logger")
            killed = time.time()
            s, v = gw.admin("POST", f"/admin/processes/{logger['pid'][1:-1]}/kill",
                            body={"reason": "kill"})
            assert s == 200, (s, v)
            for i, tab in enumerate(tabs):
                seen = tab.wait("window.__first_seen.process_crashed", timeout=5,
                                what=f"process_crashed in #events of tab {i + 1}")
                delay = seen / 1000.0 - killed
                assert delay < 1.0 * SCALE, f"tab {i + 1}: shown {delay:.3f} s after the kill"
                text = tab.text('#events li[data-type="process_crashed"]')
                assert logger["pid"] in text, (i, text)
            assert len(event_streams(gw)) == 1, event_streams(gw)

        crash_reaches(tabs)

        # The leader closes: another tab takes the stream over, the others
        # follow it, and the gateway again holds one stream.
        old = leaders(tabs)[0]
        old.close()
        rest = [t for t in tabs if t is not old]
        assert wait_for(lambda: len(leaders(rest)) == 1, timeout=10), "no new leader"
        for tab in rest:
            tab.wait("document.querySelector('#live').dataset.state === 'connected'",
                     what="connected again after the leader closed")
        # The closed tab's stream ends once the gateway sees its client gone
        # (within a heartbeat).
        assert wait_for(lambda: len(event_streams(gw)) == 1, timeout=20), event_streams(gw)
        crash_reaches(rest)
        for tab in rest:
            assert tab.problems() == [], tab.problems()
    finally:
        b.close()
        gw.close()


@t.case
def a_logged_out_tab_receives_no_events_from_the_others():
    gw, b = session()
    tabs = [b.tab, b.new_tab()]
    try:
        login(tabs[0], gw)
        login(tabs[1], gw)
        tabs[1].click("#logout")
        tabs[1].wait("!document.querySelector('#login').closest('[hidden]')", what="login form")
        watch_first_seen(tabs[0])
        logger = tree_child(gw, "logger")
        s, v = gw.admin("POST", f"/admin/processes/{logger['pid'][1:-1]}/kill",
                        body={"reason": "kill"})
        assert s == 200, (s, v)
        tabs[0].wait("window.__first_seen.process_crashed", timeout=5, what="crash in tab 1")
        time.sleep(0.5)
        assert tabs[1].eval("document.querySelectorAll('#events li').length") == 0
        assert tabs[1].eval("document.querySelector('#live').dataset.state") != "connected"
        assert wait_for(lambda: len(event_streams(gw)) == 1), event_streams(gw)
    finally:
        b.close()
        gw.close()


# ---- routes -------------------------------------------------------------------------


@t.case
def route_edit_then_rollback_from_the_page():
    gw, b = session()
    tab = b.tab
    try:
        login(tab, gw)
        show(tab, "routes")
        v0 = gw.get("/admin/routes")["version"]
        tab.wait(f"document.querySelector('li.route-version[data-version=\"{v0}\"]')",
                 what="the current version listed")
        tab.wait("document.querySelector('#routes-editor').value.includes('/hello')",
                 what="the table in the editor")
        table = json.loads(tab.eval("document.querySelector('#routes-editor').value"))
        # The route as written, its respond body and headers included, and
        # without the position the API adds: PUT back as it stands, it
        # publishes the same route.
        assert table["routes"] == [HELLO], table

        # A table with a mistake: refused, with the mistake's position.
        bad = {"routes": [HELLO, {"name": "added", "match": {"path": "/added"},
                                  "respond": {"status": "two hundred"}}]}
        tab.fill("#routes-editor", json.dumps(bad, indent=2))
        tab.click("#routes-validate")
        err = tab.wait("(() => { const t = document.querySelector('#routes-errors').textContent;"
                       " return /:\\d+:\\d+/.test(t) ? t : null; })()",
                       what="an error at its line and column")
        assert "status" in err, err
        assert gw.get("/admin/routes")["version"] == v0  # validation changes nothing
        assert public_get(gw.port, "/added")[0] == 404

        # The corrected table, validated then applied.
        good = {"routes": [HELLO, {"name": "added", "match": {"path": "/added"},
                                   "respond": {"status": 201, "body": "added\n"}}]}
        tab.fill("#routes-editor", json.dumps(good, indent=2))
        tab.click("#routes-validate")
        tab.wait("document.querySelector('#routes-errors').dataset.outcome === 'ok' || "
                 "/valid/i.test(document.querySelector('#routes-errors').textContent)",
                 what="the table validated")
        assert public_get(gw.port, "/added")[0] == 404
        tab.click("#routes-apply")
        tab.wait("document.querySelector('#confirm').open", what="the confirmation dialog")
        tab.click("#confirm-yes")
        assert wait_for(lambda: public_get(gw.port, "/added") == (201, b"added\n")), \
            public_get(gw.port, "/added")
        v1 = gw.get("/admin/routes")["version"]
        assert v1 > v0
        tab.wait(f"document.querySelector('li.route-version[data-version=\"{v1}\"]') && "
                 "document.querySelector('#routes-table').textContent.includes('added')",
                 what="the new version listed and its table shown")

        # Rolled back to the first version from the page.
        tab.fill("#routes-rollback-to", str(v0))
        tab.click("#routes-rollback")
        tab.wait("document.querySelector('#confirm').open", what="the confirmation dialog")
        tab.click("#confirm-yes")
        assert wait_for(lambda: public_get(gw.port, "/added")[0] == 404)
        assert public_get(gw.port, "/hello") == (200, b"hello\n")
        assert gw.get("/admin/routes")["version"] == v0
        tab.wait("!document.querySelector('#routes-table').textContent.includes('added')",
                 what="the table shown without the added route")
    finally:
        b.close()
        gw.close()


@t.case
def process_detail_panel_stays_inside_the_main_column():
    # The rows do not wrap: at this width the table is wider than the space
    # beside the detail panel, which must not be pushed under the events
    # column (its links and buttons cut off).
    gw, b = session()
    tab = b.tab
    try:
        tab.viewport(1280, 900)
        login(tab, gw)
        show(tab, "processes")
        router = tree_child(gw, "router")["pid"]
        tab.wait(f"document.querySelector('tr.proc-row[data-pid=\"{router}\"]')",
                 what="the router's row")
        tab.click(f'tr.proc-row[data-pid="{router}"]')
        tab.wait("document.querySelector('#proc-detail a.pid') && "
                 "document.querySelector('#proc-kill')", what="the router's detail with links")
        boxes = tab.eval("""(() => {
            const r = (e) => { const b = e.getBoundingClientRect();
                               return {left: b.left, right: b.right, w: b.width}; };
            const panel = document.querySelector('#proc-detail');
            const inner = [...panel.querySelectorAll('a.pid, button, dt, dd, h3')].map(
                (e) => ({what: e.id || e.tagName + ' ' + e.textContent.slice(0, 20), ...r(e)}));
            return {main: r(document.querySelector('main')), aside: r(document.querySelector('aside')),
                    panel: r(panel), inner, vw: document.documentElement.clientWidth};
        })()""")
        panel, main, aside = boxes["panel"], boxes["main"], boxes["aside"]
        assert panel["w"] >= 250, boxes  # still a usable panel
        assert panel["right"] <= main["right"] + 0.5, ("panel past the main column", boxes)
        assert panel["right"] <= aside["left"] + 0.5, ("panel under the events column", boxes)
        for e in boxes["inner"]:
            assert panel["left"] - 0.5 <= e["left"] and e["right"] <= panel["right"] + 0.5, \
                ("outside the detail panel", e, panel)
        tab.screenshot(os.path.join(artifacts_dir(), "processes-detail-1280.png"))
    finally:
        b.close()
        gw.close()


# ---- screenshots --------------------------------------------------------------------


@t.case
def screenshots_of_every_view_show_live_data():
    up_a, up_b = Upstream(name="a"), Upstream(name="b")
    health = {"active": {"path": "/status/200", "interval_ms": 1000}}
    gw = Gw(routes=[HELLO, API, {"name": "orders", "match": {"path_prefix": "/orders",
                                                             "methods": ["GET", "POST"]},
                                 "upstream": "orders", "strip_prefix": True}],
            upstreams={"app": {"targets": [{"address": up_a.address},
                                           {"address": up_b.address}], "health": health},
                       "orders": {"targets": [{"address": up_b.address}]}})
    b = Browser(width=1440, height=900)
    tab = b.tab
    out = artifacts_dir()
    stop = threading.Event()

    def traffic():
        # Steady load so that the charts have something to draw, a few 5xx.
        c = None
        i = 0
        while not stop.is_set():
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
                path = "/api/status/503" if i % 20 == 0 else ("/hello" if i % 2 else "/api/")
                c.request("GET", path)
                c.getresponse().read()
            except (OSError, http.client.HTTPException):
                c = None
            i += 1
            stop.wait(0.01)

    th = threading.Thread(target=traffic, daemon=True)
    conns = []
    try:
        th.start()
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", gw.port))
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(4096)
            conns.append(c)
        # A second route version, for the history and the diff.
        s, v = gw.admin("PUT", "/admin/routes", body={"routes": [
            HELLO, API, {"name": "orders", "match": {"path_prefix": "/orders"},
                         "upstream": "orders", "strip_prefix": True},
            {"name": "health", "match": {"path": "/health"}, "respond": {"status": 204}}]})
        assert s == 200, (s, v)
        login(tab, gw)
        # The overview after enough samples to draw a line.
        tab.wait("document.querySelectorAll('svg.chart').length >= 3", what="charts")
        time.sleep(12)  # samples come once a second in any build
        tab.wait("[...document.querySelectorAll('svg.chart')]"
                 ".every(s => s.querySelector('path, polyline'))",
                 what="a line in every chart")
        sysinfo = gw.get("/admin/system")
        assert wait_for(lambda: abs(int(tab.text("#ov-processes") or 0) -
                                    gw.get("/admin/system")["processes"]["count"]) <= 4), \
            (tab.text("#ov-processes"), sysinfo["processes"])
        shots = {"overview": tab.screenshot(os.path.join(out, "overview.png"))}

        show(tab, "processes")
        tab.wait("document.querySelectorAll('tr.proc-row').length >= 40", what="process rows")
        router = tree_child(gw, "router")["pid"]
        tab.fill("#proc-name", "router")
        tab.wait(f"document.querySelector('tr.proc-row[data-pid=\"{router}\"]')",
                 what="the router's row")
        tab.click(f'tr.proc-row[data-pid="{router}"]')
        tab.wait("document.querySelector('#proc-detail').textContent.includes('sys')",
                 what="the router's detail")
        tab.fill("#proc-name", "")
        tab.wait("document.querySelectorAll('tr.proc-row').length >= 40", what="all rows again")
        shots["processes"] = tab.screenshot(os.path.join(out, "processes.png"))

        # A crash and its restart to show in the tree and the events (the
        # router's would restart every child after it, the router's version
        # history with it).
        lsup = tree_child(gw, "listeners_sup")
        acceptor = next(c for c in lsup["children"] if c["id"] == "public")["children"][-1]
        s, v = gw.admin("POST", f"/admin/processes/{acceptor['pid'][1:-1]}/kill",
                        body={"reason": "kill"})
        assert s == 200, (s, v)
        show(tab, "tree")
        tab.wait("document.querySelector('li.tree-node[data-id=\"router\"]')", what="tree")
        tab.wait("document.querySelector('li.tree-node.restarted')", timeout=5,
                 what="a restarted node")
        shots["tree"] = tab.screenshot(os.path.join(out, "tree.png"))

        show(tab, "routes")
        tab.wait("document.querySelectorAll('li.route-version').length >= 2", what="versions")
        if tab.exists("#routes-diff-show"):
            tab.click("#routes-diff-show")
            tab.wait("!/Loading/.test(document.querySelector('#routes-diff').textContent) && "
                     "document.querySelector('#routes-diff').textContent.length > 0",
                     what="the diff")
        shots["routes"] = tab.screenshot(os.path.join(out, "routes.png"))

        show(tab, "upstreams")
        tab.wait(f"document.querySelector('#upstreams-table').textContent.includes("
                 f"{q(up_a.address)})", what="the upstream targets")
        shots["upstreams"] = tab.screenshot(os.path.join(out, "upstreams.png"))

        for name, path in shots.items():
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
            assert size > 20000, (name, size)  # not a blank page
        print(f"# screenshots in {out}", flush=True)
    finally:
        stop.set()
        th.join(10)
        for c in conns:
            c.close()
        b.close()
        gw.close()
        up_a.stop()
        up_b.stop()


t.finish()
