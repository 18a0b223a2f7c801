#!/usr/bin/env python3
"""The dashboard's files on the admin listener, over real HTTP: every file
under gateway/src/ui/www is served under /ui/ with exactly its bytes and
media type, without the token, with the headers every /ui answer carries
(the Content-Security-Policy, no framing, no sniffing, no referrer,
Cache-Control: no-cache and an ETag; 304 on If-None-Match); refusals
(another Host, another site's Origin, an unknown file, another method)
carry them too, and the data the page shows still needs the token."""
import http.client
import os
import shutil
import subprocess
import sys
import tempfile

from harness import Gateway, TestRun, free_port, source_root, wait_port

t = TestRun("ui")

TOKEN_ENV = "TANDEM_TEST_UI_TOKEN"
TOKEN = "ui-test-" + os.urandom(8).hex()
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
WWW = os.path.join(source_root(), "gateway", "src", "ui", "www")


def gateway():
    """tandem whose admin listener needs TOKEN (the harness's has none)."""
    port = free_port()
    gw = Gateway([{"name": "hello", "match": {"path": "/hello"}, "respond": {"status": 200}}],
                 admin=False,
                 extra={"admin": {"address": f"127.0.0.1:{port}", "token_env": TOKEN_ENV}},
                 env={TOKEN_ENV: TOKEN})
    gw.admin_port = port
    wait_port(port)
    return gw


def request(gw, method, path, headers=None, host=None):
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
    h = {"Host": host or f"127.0.0.1:{gw.admin_port}"}
    h.update(headers or {})
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def assert_ui_headers(r, what):
    assert r.getheader("Content-Security-Policy") == CSP, (what, r.getheader("Content-Security-Policy"))
    assert r.getheader("X-Frame-Options") == "DENY", what
    assert r.getheader("X-Content-Type-Options") == "nosniff", what
    assert r.getheader("Referrer-Policy") == "no-referrer", what
    assert r.getheader("Cache-Control") == "no-cache", (what, r.getheader("Cache-Control"))
    assert len(r.msg.get_all("Cache-Control")) == 1, what


def www_files():
    out = []
    for d, _, names in os.walk(WWW):
        for n in names:
            out.append(os.path.relpath(os.path.join(d, n), WWW).replace(os.sep, "/"))
    return sorted(out)


@t.case
def every_embedded_file_is_served_with_its_source_bytes_and_type_without_the_token():
    gw = gateway()
    try:
        files = www_files()
        assert "index.html" in files and "app.js" in files, files
        tags = set()
        for name in files:
            with open(os.path.join(WWW, name), "rb") as f:
                want = f.read()
            r, body = request(gw, "GET", "/ui/" + name)
            assert r.status == 200, (name, r.status, body[:200])
            assert body == want, f"{name}: the embedded bytes differ from the source"
            assert r.getheader("Content-Type") == TYPES[os.path.splitext(name)[1]], \
                (name, r.getheader("Content-Type"))
            assert_ui_headers(r, name)
            etag = r.getheader("ETag")
            assert etag and etag.startswith('"') and etag.endswith('"'), (name, etag)
            tags.add(etag)
            # HEAD: the same head, no body.
            h, hbody = request(gw, "HEAD", "/ui/" + name)
            assert h.status == 200 and hbody == b"", (name, h.status)
            assert h.getheader("Content-Length") == str(len(want)), name
            assert h.getheader("ETag") == etag, name
        assert len(tags) == len(files), "two files share a tag"
        r, body = request(gw, "GET", "/ui/")
        with open(os.path.join(WWW, "index.html"), "rb") as f:
            assert body == f.read()
        # A page whose scripts are all its own: no inline script or style.
        text = body.decode()
        assert "<script>" not in text and "style=" not in text and "<style" not in text, text
    finally:
        gw.close()


@t.case
def a_known_tag_gets_304_with_the_headers_and_no_body():
    gw = gateway()
    try:
        r, _ = request(gw, "GET", "/ui/app.js")
        etag = r.getheader("ETag")
        for inm in (etag, "W/" + etag, '"nope", ' + etag, "*"):
            r, body = request(gw, "GET", "/ui/app.js", {"If-None-Match": inm})
            assert r.status == 304 and body == b"", (inm, r.status)
            assert r.getheader("ETag") == etag, inm
            assert_ui_headers(r, "304")
        r, body = request(gw, "GET", "/ui/app.js", {"If-None-Match": '"nope"'})
        assert r.status == 200 and body, r.status
    finally:
        gw.close()


@t.case
def redirect_refusals_and_errors_carry_the_ui_headers_and_data_needs_the_token():
    gw = gateway()
    try:
        r, _ = request(gw, "GET", "/ui")
        assert r.status == 308 and r.getheader("Location") == "/ui/", r.status
        assert_ui_headers(r, "redirect")
        for path in ("/ui/missing.js", "/ui/views/", "/ui/.hidden", "/ui/app.js/"):
            r, body = request(gw, "GET", path)
            assert r.status == 404, (path, r.status)
            assert_ui_headers(r, path)
        # Dot segments leave /ui before the dashboard sees the path: what
        # they reach is the API's, behind the token.
        for path in ("/ui/../admin/system", "/ui/%2e%2e/admin/system"):
            r, body = request(gw, "GET", path)
            assert r.status == 401, (path, r.status)
        r, _ = request(gw, "POST", "/ui/", {"Content-Length": "0"})
        assert r.status == 405 and r.getheader("Allow") == "GET, HEAD", r.status
        assert_ui_headers(r, "405")
        # A rebinding page (another name) or another site gets nothing.
        r, body = request(gw, "GET", "/ui/", host=f"attacker.example:{gw.admin_port}")
        assert r.status == 421, r.status
        assert b"<html" not in body
        assert_ui_headers(r, "421")
        r, body = request(gw, "GET", "/ui/app.js", {"Origin": "http://evil.example"})
        assert r.status == 403, r.status
        assert_ui_headers(r, "403")
        # The files hold no data; the API they call needs the token.
        r, _ = request(gw, "GET", "/admin/system")
        assert r.status == 401, r.status
        r, _ = request(gw, "GET", "/admin/system", {"Authorization": "Bearer " + TOKEN})
        assert r.status == 200, r.status
        assert r.getheader("Cache-Control") == "no-store"
        assert r.getheader("Content-Security-Policy") is None
    finally:
        gw.close()


@t.case
def the_generator_refuses_a_file_left_out_of_the_build_and_names_outside_the_alphabet():
    embed = os.path.join(source_root(), "gateway", "src", "ui", "embed.py")
    root = tempfile.mkdtemp(prefix="tandem-ui-www-")
    try:
        os.makedirs(os.path.join(root, "views"))
        for name in ("index.html", "views/a.js", "views/forgotten.js", ".hidden.js"):
            with open(os.path.join(root, name), "w") as f:
                f.write("x\n")
        out = os.path.join(root, "out.c")

        def run(*names):
            return subprocess.run([sys.executable, embed, "--root", root, "--output", out,
                                   *[os.path.join(root, n) for n in names]],
                                  capture_output=True, text=True)

        r = run("index.html", "views/a.js")
        assert r.returncode != 0 and "views/forgotten.js" in r.stderr, r.stderr
        r = run("index.html", "views/a.js", "views/forgotten.js", ".hidden.js")
        assert r.returncode != 0 and ".hidden.js" in r.stderr, r.stderr
        os.remove(os.path.join(root, ".hidden.js"))
        r = run("index.html", "views/a.js", "views/forgotten.js")
        assert r.returncode == 0, r.stderr
        with open(out) as f:
            text = f.read()
        # In byte order of names, for the look-up by halves.
        assert text.index('"index.html"') < text.index('"views/a.js"') < \
            text.index('"views/forgotten.js"'), text
        assert "gw__ui_nfiles = 3;" in text, text
    finally:
        shutil.rmtree(root, ignore_errors=True)


t.finish()
