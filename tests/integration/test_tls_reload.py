#!/usr/bin/env python3
"""Certificate reload without a restart: the real binary with a TLS listener
whose certificate and key files are replaced under wrk load (zero failed
requests, new handshakes get the new certificate), bad files that keep the
old certificates serving and are reported with file and reason (log, admin
answer), the reload's three triggers (the file watcher, SIGHUP, POST
/admin/tls/reload), GET /admin/tls, the TLS series of /metrics, `tandem ctl
tls` and `tandem check` on bad TLS files. Certificates are made at test
time (tests/lib/tlscerts.py)."""
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, free_port, tandem_bin, wait_port  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("tls_reload")

TOKEN = "tls-reload-token"
NAMES = ["api.example.com", "*.example.com"]
ROUTES = [{"name": "hello", "match": {"path_prefix": "/"},
           "respond": {"status": 200, "body": "hello over tls\n"}}]

_certdir = tempfile.mkdtemp(prefix="tandem-tls-reload-certs-")
F = CertFactory(_certdir)
CA = F.ca("Reload Test CA")
CA2 = F.ca("Other Reload CA")
OLD = F.leaf(CA, NAMES, kind="ec")
NEW = F.leaf(CA, NAMES, kind="ec")
NEWER = F.leaf(CA, NAMES, kind="rsa")
EXPIRED = F.leaf(CA, NAMES, days=(-30, -1))
NOTYET = F.leaf(CA, NAMES, days=(1, 30))


def copy_atomic(src, dst):
    """Replaces dst by a copy of src the way careful writers do: a
    temporary file renamed over it."""
    tmp = dst + ".tmp-%d" % os.getpid()
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def write_atomic(dst, text):
    tmp = dst + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, dst)


class TlsGateway(Gateway):
    """A gateway whose one listener speaks TLS with `cert`, its files in a
    directory of their own (certs/server.pem and server.key), and whose
    admin API needs TOKEN."""

    def __init__(self, cert=OLD):
        self.certs = tempfile.mkdtemp(prefix="tandem-tls-reload-")
        self.cert = os.path.join(self.certs, "server.pem")
        self.key = os.path.join(self.certs, "server.key")
        shutil.copyfile(cert.cert, self.cert)
        shutil.copyfile(cert.key, self.key)
        tls = {"certificates": [{"cert": self.cert, "key": self.key}]}
        admin_port = free_port()
        super().__init__(ROUTES, listener={"tls": tls}, admin=False,
                         extra={"admin": {"address": "127.0.0.1:%d" % admin_port,
                                          "token_env": "TLS_RELOAD_TOKEN"}},
                         env={"TLS_RELOAD_TOKEN": TOKEN})
        self.admin_port = admin_port
        wait_port(admin_port)

    def close(self):
        super().close()
        shutil.rmtree(self.certs, ignore_errors=True)

    def install(self, c):
        """Puts certificate c in place: key first, then certificate."""
        copy_atomic(c.key, self.key)
        copy_atomic(c.cert, self.cert)

    def admin(self, method, path, token=TOKEN):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request(method, path, body="" if method == "POST" else None, headers=headers)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, json.loads(body) if body else None

    def tls_state(self):
        status, doc = self.admin("GET", "/admin/tls")
        assert status == 200, (status, doc)
        return doc["listeners"][0]


def served_fingerprint(port, name="api.example.com"):
    """The SHA-256 fingerprint of the leaf a new handshake gets, read with
    openssl s_client."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", name], input="", capture_output=True, text=True,
                       timeout=20)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", p.stdout, re.S)
    assert m, "no certificate from s_client: " + p.stdout[-500:] + p.stderr[-500:]
    der = ssl.PEM_cert_to_DER_cert(m.group(0))
    return hashlib.sha256(der).hexdigest()


def https_get(port, ca=CA):
    """One request on a fresh TLS connection: (status, leaf fingerprint)."""
    ctx = ssl.create_default_context(cafile=ca.cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="api.example.com") as s:
            fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
            s.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, fp


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def served_is(gw, c):
    return served_fingerprint(gw.port) == c.fingerprint


def ctl(gw, *args):
    env = dict(os.environ, TLS_RELOAD_TOKEN=TOKEN)
    return subprocess.run([tandem_bin(), "ctl", "-c", gw.config, "--token", TOKEN, *args],
                          capture_output=True, text=True, timeout=30, env=env)


# ---- reload under load --------------------------------------------------------------


@t.case
def reload_under_wrk_load_fails_no_request_and_new_handshakes_get_the_new_certificate():
    gw = TlsGateway()
    try:
        assert served_is(gw, OLD)
        # Two wrk loads: keep-alive connections, and one connection per
        # request (Connection: close) so that handshakes are in progress at
        # every swap; and a stream of fresh handshakes that read the
        # certificate each gets.
        url = "https://127.0.0.1:%d/" % gw.port
        wrks = [subprocess.Popen(["wrk", "-t", "1", "-c", "8", "-d", "6s", *extra, url],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for extra in ([], ["-H", "Connection: close"])]
        stop = threading.Event()
        results = {"ok": 0, "failed": [], "seen": set()}

        def handshaker():
            while not stop.is_set():
                try:
                    status, fp = https_get(gw.port)
                    if status != 200:
                        results["failed"].append("status %d" % status)
                    else:
                        results["ok"] += 1
                        results["seen"].add(fp)
                except Exception as e:  # any failure is what this test counts
                    results["failed"].append(repr(e))

        threads = [threading.Thread(target=handshaker) for _ in range(2)]
        for th in threads:
            th.start()
        time.sleep(1.0)
        # Each trigger in turn: the file watcher, the admin API, SIGHUP.
        gw.install(NEW)
        wait_for(lambda: gw.tls_state()["certificates"][0]["fingerprint"] == NEW.fingerprint,
                 what="the watcher's reload")
        assert gw.tls_state()["last_reload"]["source"] == "inotify", gw.tls_state()
        time.sleep(0.5)
        status, doc = gw.admin("POST", "/admin/tls/reload")
        assert status == 200 and doc["outcome"] == "ok", (status, doc)
        time.sleep(0.5)
        gw.install(NEWER)
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gw.tls_state()["certificates"][0]["fingerprint"] == NEWER.fingerprint,
                 what="the reload after SIGHUP")
        time.sleep(1.0)
        stop.set()
        for th in threads:
            th.join(30)
        counts = []
        for wrk in wrks:
            out, _ = wrk.communicate(timeout=60)
            assert wrk.returncode == 0, out
            m = re.search(r"(\d+) requests in", out)
            assert m and int(m.group(1)) > 50, out
            assert "Socket errors" not in out, out
            assert "Non-2xx" not in out, out
            counts.append(int(m.group(1)))
        assert results["failed"] == [], results["failed"][:5]
        assert results["ok"] > 10, results
        print("wrk: %d requests kept alive, %d on a handshake each; %d more handshakes read "
              "the certificate; 3 reloads, no failure" % (counts[0], counts[1], results["ok"]),
              flush=True)
        # Before the swaps the old certificate, after them the new ones.
        assert OLD.fingerprint in results["seen"] and NEWER.fingerprint in results["seen"], \
            results["seen"]
        assert served_fingerprint(gw.port) == NEWER.fingerprint
        log = gw.log()
        assert "certificates reloaded" in log, log
        assert gw.stop() == 0
    finally:
        gw.close()


@t.case
def connection_opened_before_a_reload_keeps_working_after_it():
    gw = TlsGateway()
    try:
        ctx = ssl.create_default_context(cafile=CA.cert)
        raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="api.example.com")
        assert hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest() == OLD.fingerprint
        gw.install(NEW)
        status, doc = gw.admin("POST", "/admin/tls/reload")
        assert status == 200, doc
        assert served_is(gw, NEW)
        for _ in range(3):  # keep-alive on the session negotiated before
            s.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
            data = b""
            while b"hello over tls\n" not in data:
                b = s.recv(65536)
                assert b, data
                data += b
            assert data.startswith(b"HTTP/1.1 200"), data
        s.close()
    finally:
        gw.close()


def s_client(gw, extra):
    """One request through openssl s_client (TLS 1.2, where the suite names
    the certificate's key); (exit code, whether the session was resumed,
    whether the request was answered 200)."""
    p = subprocess.run(["openssl", "s_client", "-tls1_2", "-connect", "127.0.0.1:%d" % gw.port,
                        "-servername", "api.example.com", "-ign_eof", *extra],
                       input="GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
                       capture_output=True, text=True, timeout=20)
    return p.returncode, "\nReused, " in p.stdout, "HTTP/1.1 200" in p.stdout


@t.case
def client_resuming_across_a_reload_that_changes_the_key_type_gets_a_full_handshake():
    gw = TlsGateway()
    sess = os.path.join(gw.certs, "session")
    try:
        assert s_client(gw, ["-sess_out", sess]) == (0, False, True)
        # The same kind of key: the ticket outlives the reload.
        gw.install(NEW)
        status, _ = gw.admin("POST", "/admin/tls/reload")
        assert status == 200
        assert s_client(gw, ["-sess_in", sess]) == (0, True, True)
        # An RSA certificate now: the ECDSA suite of the ticket cannot be
        # resumed, and the client gets a full handshake, not a failure.
        gw.install(NEWER)
        status, _ = gw.admin("POST", "/admin/tls/reload")
        assert status == 200
        assert s_client(gw, ["-sess_in", sess]) == (0, False, True)
        assert served_is(gw, NEWER)
    finally:
        gw.close()


# ---- bad files keep the old certificates ----------------------------------------------


def refused(gw, file, reason_re, breaker):
    """Breaks the files with breaker(gw): the watcher's reload and then an
    admin reload are refused, naming `file` with a reason matching
    reason_re, while the old certificate keeps serving; then puts OLD
    back."""
    before = gw.tls_state()
    breaker(gw)
    st = wait_for(lambda: (lambda s: s if s["reloads_failed"] > before["reloads_failed"]
                           else None)(gw.tls_state()), what="the watcher's refused reload")
    last = st["last_reload"]
    assert last["outcome"] == "error" and last["source"] == "inotify", last
    assert last["file"] == file and re.search(reason_re, last["reason"]), (last, file)
    status, doc = gw.admin("POST", "/admin/tls/reload")
    assert status == 422, (status, doc)
    assert doc["error"] == "tls_reload_refused" and doc["outcome"] == "error", doc
    r = doc["listeners"][0]
    assert r["listener"] == "public" and r["outcome"] == "error", r
    assert r["file"] == file, (r, file)
    assert re.search(reason_re, r["reason"]), r
    assert served_is(gw, OLD)
    status, _ = https_get(gw.port)
    assert status == 200
    st = gw.tls_state()
    assert st["certificates"][0]["fingerprint"] == OLD.fingerprint, st
    assert st["loaded_at"] == before["loaded_at"], (st, before)
    assert st["reloads_failed"] == before["reloads_failed"] + 2, st
    last = st["last_reload"]
    assert last["outcome"] == "error" and last["source"] == "admin", last
    assert last["file"] == file and last["reason"] == r["reason"], last
    # The log line names the listener, the file and the reason.
    assert re.search(r"listener public: reload refused.*%s: %s" % (re.escape(file),
                                                                    re.escape(r["reason"])),
                     gw.log()), gw.log()
    gw.install(OLD)
    wait_for(lambda: gw.tls_state()["reloads_ok"] > st["reloads_ok"],
             what="the reload of the good files")
    assert gw.tls_state()["last_reload"]["outcome"] == "ok"


@t.case
def bad_certificate_key_pair_expired_and_not_yet_valid_keep_the_old_certificate_serving():
    gw = TlsGateway()
    try:
        refused(gw, gw.cert, r"^certificate does not parse",
                lambda g: write_atomic(g.cert, "this is not a certificate\n"))
        refused(gw, gw.key, r"^private key does not parse",
                lambda g: write_atomic(g.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                              "-----END PRIVATE KEY-----\n"))
        # A pair that does not match: the new certificate with the old key.
        refused(gw, gw.key, r"^private key does not match", lambda g: copy_atomic(NEW.cert, g.cert))
        refused(gw, gw.cert, r"^certificate has expired$", lambda g: g.install(EXPIRED))
        refused(gw, gw.cert, r"^certificate is not valid yet$", lambda g: g.install(NOTYET))
        refused(gw, gw.key, r"^private key does not parse",
                lambda g: os.unlink(g.key))
        assert gw.stop() == 0
    finally:
        gw.close()


@t.case
def watcher_reports_a_bad_file_and_keeps_serving_then_takes_the_fixed_one():
    gw = TlsGateway()
    try:
        write_atomic(gw.cert, "garbage\n")
        st = wait_for(lambda: (lambda s: s if s["reloads_failed"] >= 1 else None)(
            gw.tls_state()), what="the watcher's refused reload")
        last = st["last_reload"]
        assert last["outcome"] == "error" and last["source"] == "inotify", last
        assert last["file"] == gw.cert, last
        assert served_is(gw, OLD)
        gw.install(NEW)
        wait_for(lambda: gw.tls_state()["certificates"][0]["fingerprint"] == NEW.fingerprint,
                 what="the fixed file's reload")
        assert served_is(gw, NEW)
        assert gw.tls_state()["last_reload"]["outcome"] == "ok"
    finally:
        gw.close()


@t.case
def watcher_follows_a_kubernetes_style_data_symlink_swap():
    gw = TlsGateway()
    try:
        certs = os.path.dirname(gw.cert)

        def publish(c, name):
            d = os.path.join(certs, name)
            os.mkdir(d)
            shutil.copyfile(c.cert, os.path.join(d, "server.pem"))
            shutil.copyfile(c.key, os.path.join(d, "server.key"))
            tmp = os.path.join(certs, "..data_tmp")
            os.symlink(name, tmp)
            os.replace(tmp, os.path.join(certs, "..data"))

        # The layout Kubernetes gives a mounted secret: each file a symlink
        # through `..data`, which is swapped to replace them all at once.
        publish(OLD, "..v1")
        for f in ("server.pem", "server.key"):
            tmp = os.path.join(certs, f + ".lnk")
            os.symlink(os.path.join("..data", f), tmp)
            os.replace(tmp, os.path.join(certs, f))
        time.sleep(1.5)
        publish(NEW, "..v2")
        wait_for(lambda: gw.tls_state()["certificates"][0]["fingerprint"] == NEW.fingerprint,
                 what="the reload after the ..data swap")
        assert served_is(gw, NEW)
    finally:
        gw.close()


# ---- what the admin API, the metrics and ctl show ----------------------------------------


@t.case
def admin_tls_lists_every_certificate_with_its_fields_and_needs_the_token():
    gw = TlsGateway()
    try:
        status, doc = gw.admin("GET", "/admin/tls", token=None)
        assert status == 401, (status, doc)
        status, doc = gw.admin("POST", "/admin/tls/reload", token="wrong")
        assert status == 401, (status, doc)
        status, doc = gw.admin("GET", "/admin/tls")
        assert status == 200, doc
        assert len(doc["listeners"]) == 1, doc
        lst = doc["listeners"][0]
        assert lst["name"] == "public" and lst["address"] == "127.0.0.1:%d" % gw.port, lst
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", lst["loaded_at"]), lst
        assert lst["loaded_by"] == "start" and lst["last_reload"] is None, lst
        loaded_at = lst["loaded_at"]
        assert lst["reloads_ok"] == 0 and lst["reloads_failed"] == 0, lst
        assert len(lst["certificates"]) == 1, lst
        c = lst["certificates"][0]
        assert c["fingerprint"] == OLD.fingerprint, c
        assert "api.example.com" in c["subject"], c
        assert "Reload Test CA" in c["issuer"], c
        assert c["names"] == NAMES, c
        assert c["key_type"] == "EC P-256", c
        assert c["cert_file"] == gw.cert and c["key_file"] == gw.key, c
        for k in ("not_before", "not_after"):
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", c[k]), c
        assert 364 * 86400 < c["expires_in_s"] <= 365 * 86400, c
        https_get(gw.port)
        status, doc = gw.admin("GET", "/admin/tls")
        assert doc["handshakes"]["server"]["handshakes_full"] >= 1, doc
        # A reload moves loaded_at and records its source: the watcher's,
        # then the admin API's.
        gw.install(NEWER)
        lst = wait_for(lambda: (lambda s: s if s["reloads_ok"] == 1 else None)(gw.tls_state()),
                       what="the watcher's reload")
        assert lst["loaded_by"] == "inotify" and lst["loaded_at"] > loaded_at, lst
        status, _ = gw.admin("POST", "/admin/tls/reload?listener=public")
        assert status == 200
        lst = gw.tls_state()
        assert lst["loaded_by"] == "admin" and lst["reloads_ok"] == 2, lst
        assert lst["last_reload"]["outcome"] == "ok", lst
        assert lst["certificates"][0]["key_type"] == "RSA 2048", lst
        status, doc = gw.admin("POST", "/admin/tls/reload?listener=nope")
        assert status == 404 and doc["error"] == "no_tls_listener", doc
        # The reloader comes after the listeners in tandem_sup (rest_for_one):
        # its restart takes none of them down. Only the sampler follows it.
        status, doc = gw.admin("GET", "/admin/supervisors")
        ids = [c["id"] for c in doc["tree"]["children"]]
        assert ids[-2:] == ["tls_reloader", "gw_sampler"], doc
        assert ids.index("tls_reloader") > max(ids.index("listeners_sup"), ids.index("admin")), ids
    finally:
        gw.close()


@t.case
def without_a_tls_listener_there_is_nothing_to_reload():
    gw = Gateway(ROUTES)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
        conn.request("GET", "/admin/tls")
        r = conn.getresponse()
        doc = json.loads(r.read())
        assert r.status == 200 and doc["listeners"] == [], doc
        conn.request("POST", "/admin/tls/reload", body="")
        r = conn.getresponse()
        doc = json.loads(r.read())
        assert r.status == 404 and doc["error"] == "no_tls_listener", doc
        conn.close()
        gw.proc.send_signal(signal.SIGHUP)  # reloads the routes, nothing else
        time.sleep(0.3)
        assert gw.proc.poll() is None
        assert gw.stop() == 0
    finally:
        gw.close()


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[-1])
    return None


@t.case
def metrics_show_expiry_and_handshake_counters():
    gw = TlsGateway()
    try:
        https_get(gw.port)
        raw_req = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        raw_req.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plaintext on the TLS port
        raw_req.recv(4096)
        raw_req.close()
        conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN})
        text = conn.getresponse().read().decode()
        series = ('tandem_tls_certificate_expiry_seconds{listener="public",'
                  'name="api.example.com",fingerprint="%s"}' % OLD.fingerprint)
        left = sample(text, series)
        assert left is not None and 364 * 86400 < left <= 365 * 86400, (left, text)
        full = sample(text, 'tandem_tls_handshakes_total{side="server",resumed="false"}')
        assert full is not None and full >= 1, text
        plain = sample(text, 'tandem_tls_handshake_failures_total{side="server",'
                             'reason="plaintext"}')
        assert plain is not None and plain >= 1, text
        assert sample(text, 'tandem_tls_reloads_total{listener="public",outcome="ok"}') == 0
    finally:
        gw.close()


@t.case
def ctl_tls_prints_certificates_and_reload_outcomes():
    gw = TlsGateway()
    try:
        out = ctl(gw, "tls")
        assert out.returncode == 0, out
        assert "listener public (127.0.0.1:%d)" % gw.port in out.stdout, out.stdout
        assert OLD.fingerprint in out.stdout, out.stdout
        assert "api.example.com,*.example.com" in out.stdout, out.stdout
        assert "EC P-256" in out.stdout, out.stdout
        out = ctl(gw, "tls", "reload")
        assert out.returncode == 0, out
        assert out.stdout.strip() == "public: ok", out.stdout
        write_atomic(gw.key, "garbage\n")
        wait_for(lambda: gw.tls_state()["reloads_failed"] == 1, what="the watcher's reload")
        out = ctl(gw, "tls", "reload", "public")
        assert out.returncode == 1, out
        assert re.search(r"^public: error: %s: \S" % re.escape(gw.key), out.stderr, re.M), \
            out.stderr
        out = ctl(gw, "tls")
        assert "last reload: error (admin" in out.stdout and gw.key in out.stdout, out.stdout
        out = ctl(gw, "tls", "frobnicate")
        assert out.returncode == 2, out
    finally:
        gw.close()


# ---- tandem check ----------------------------------------------------------------------------


@t.case
def check_reports_bad_tls_files_at_the_cert_and_key_members():
    root = tempfile.mkdtemp(prefix="tandem-check-tls-")
    try:
        os.makedirs(os.path.join(root, "routes"))
        with open(os.path.join(root, "routes", "a.json"), "w") as f:
            json.dump({"routes": ROUTES}, f)
        good = os.path.join(root, "good.pem")
        shutil.copyfile(OLD.cert, good)
        shutil.copyfile(OLD.key, os.path.join(root, "good.key"))
        with open(os.path.join(root, "garbage.pem"), "w") as f:
            f.write("not a certificate\n")
        shutil.copyfile(EXPIRED.cert, os.path.join(root, "expired.pem"))
        shutil.copyfile(EXPIRED.key, os.path.join(root, "expired.key"))
        shutil.copyfile(NEW.key, os.path.join(root, "other.key"))
        cfg = {
            "listeners": [{"name": "public", "address": "127.0.0.1:0", "max_connections": 100,
                           "tls": {"certificates": [
                               {"cert": "good.pem", "key": "good.key"},
                               {"cert": "garbage.pem", "key": "good.key"},
                               {"cert": "expired.pem", "key": "expired.key"},
                               {"cert": "good.pem", "key": "other.key"},
                           ]}}],
            "routes": "routes",
        }
        path = os.path.join(root, "tandem.json")
        text = json.dumps(cfg, indent=2)
        with open(path, "w") as f:
            f.write(text)
        lines = text.split("\n")

        def pos(nth, key):
            """Line and column of the nth `"key":` member in the text."""
            k = 0
            for i, line in enumerate(lines):
                if '"%s":' % key in line:
                    if k == nth:
                        return i + 1, line.index('"%s":' % key) + 1
                    k += 1
            raise AssertionError(key)

        out = subprocess.run([tandem_bin(), "check", "-c", path], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 1, out
        got = []
        for line in out.stderr.splitlines():
            m = re.match(r"^(.+?):(\d+):(\d+): (.*)$", line)
            if m:
                got.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
        assert len(got) == 3, out.stderr
        f1, l1, c1, m1 = got[0]
        assert (f1, l1, c1) == (path, *pos(1, "cert")), (got[0], pos(1, "cert"))
        assert "garbage.pem: " in m1, m1
        f2, l2, c2, m2 = got[1]
        assert (f2, l2, c2) == (path, *pos(2, "cert")), got[1]
        assert "expired.pem: " in m2 and "expired" in m2.split("expired.pem: ", 1)[1], m2
        f3, l3, c3, m3 = got[2]
        assert (f3, l3, c3) == (path, *pos(3, "key")), got[2]
        assert "other.key: " in m3 and "match" in m3, m3
        assert "3 errors" in out.stderr, out.stderr
        # The good certificate alone passes.
        cfg["listeners"][0]["tls"]["certificates"] = cfg["listeners"][0]["tls"]["certificates"][:1]
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        out = subprocess.run([tandem_bin(), "check", "-c", path], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out
    finally:
        shutil.rmtree(root, ignore_errors=True)


try:
    t.finish()
finally:
    shutil.rmtree(_certdir, ignore_errors=True)
