#!/usr/bin/env python3
"""Which TLS versions this build negotiates, and that it says so: `tandem
--version` names the mbedtls it runs on and the versions ("TLS 1.2" with
mbedtls 2.28, Debian 12; "TLS 1.2 and 1.3" with 3.6, Debian 13), and a
listener serving a certificate made by `tandem tls self-signed` negotiates
exactly those: the highest with a default client, TLS 1.2 with a client
that stops there, and TLS 1.3 with a client that asks for nothing less
only when the build has it (refused otherwise). The container suite
(docker/test.sh) checks the image's build the same way."""
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, TestRun, tandem_bin  # noqa: E402

t = TestRun("tls_versions")

HELLO = {"name": "hello", "match": {"path": "/hello"},
         "respond": {"status": 200, "body": "hello over tls\n",
                     "headers": {"content-type": "text/plain"}}}


def build_versions():
    """The versions `tandem --version` says this build negotiates."""
    out = subprocess.run([tandem_bin(), "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out
    m = re.search(r"^mbedtls (\d+)\.(\d+)\.(\d+), TLS (1\.2|1\.2 and 1\.3)$", out.stdout, re.M)
    assert m, out.stdout
    versions = ["TLSv1.2", "TLSv1.3"] if m.group(4) == "1.2 and 1.3" else ["TLSv1.2"]
    return int(m.group(1)), versions


def ask(port, cafile, minimum=None, maximum=None):
    """The version a client with these bounds negotiates and the status
    line of GET /hello over it, or the SSLError's reason when refused."""
    ctx = ssl.create_default_context(cafile=cafile)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return s.version(), data.split(b"\r\n", 1)[0].decode()
    except ssl.SSLError as e:
        return None, e.reason


@t.case
def version_names_the_mbedtls_and_its_tls_versions():
    major, versions = build_versions()
    # mbedtls 2.x has no TLS 1.3; Debian's 3.6 builds it in.
    if major < 3:
        assert versions == ["TLSv1.2"], versions
    else:
        assert "TLSv1.3" in versions, versions


@t.case
def listener_negotiates_the_versions_the_build_names():
    _, versions = build_versions()
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([tandem_bin(), "tls", "self-signed", "--name", "localhost,127.0.0.1",
                            "--out", d], capture_output=True, text=True)
        assert r.returncode == 0, r
        cafile = os.path.join(d, "cert.pem")
        lst = {"tls": {"certificates": [{"cert": cafile, "key": os.path.join(d, "key.pem")}]}}
        gw = Gateway([HELLO], listener=lst)
        try:
            got = ask(gw.port, cafile)
            assert got == (versions[-1], "HTTP/1.1 200 OK"), (got, versions)
            got = ask(gw.port, cafile, maximum=ssl.TLSVersion.TLSv1_2)
            assert got == ("TLSv1.2", "HTTP/1.1 200 OK"), got
            got = ask(gw.port, cafile, minimum=ssl.TLSVersion.TLSv1_3)
            if "TLSv1.3" in versions:
                assert got == ("TLSv1.3", "HTTP/1.1 200 OK"), got
            else:
                assert got[0] is None, got
        finally:
            code = gw.stop()
            gw.close()
        assert code == 0, code


t.finish()
