#!/usr/bin/env python3
"""`tandem tls self-signed`: a key and a self-signed certificate that a
real TLS client accepts when given the certificate, for the names asked,
with the key readable by its owner only; existing files are kept unless
--force. The certificate is read back with openssl and used by a Python
ssl server, so what is checked is what clients see."""
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TestRun, tandem_bin  # noqa: E402

t = TestRun("tls_self_signed")


def self_signed(*args):
    return subprocess.run([tandem_bin(), "tls", "self-signed", *args], capture_output=True,
                          text=True, timeout=120)


def x509_text(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def public_key(args):
    out = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def handshake(cert, key, server_name, connect_to="127.0.0.1"):
    """Serves cert/key from a Python ssl server on loopback and connects a
    client that trusts only `cert` and checks `server_name`. Returns the
    negotiated version; raises ssl.SSLError when the client refuses."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    lsock = socket.create_server((connect_to, 0), family=socket.AF_INET6 if ":" in connect_to
                                 else socket.AF_INET)
    port = lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        try:
            with sctx.wrap_socket(conn, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        cctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection((connect_to, port), timeout=10) as raw:
            with cctx.wrap_socket(raw, server_hostname=server_name) as s:
                version = s.version()
                s.sendall(b"x")
                return version
    finally:
        th.join(5)
        lsock.close()


@t.case
def default_is_an_ecdsa_p256_certificate_for_the_names_with_a_0600_key():
    with tempfile.TemporaryDirectory() as d:
        out_dir = os.path.join(d, "tls")
        r = self_signed("--name", "localhost", "--name", "127.0.0.1,::1", "--name",
                        "*.demo.example", "--out", out_dir)
        assert r.returncode == 0, r
        cert, key = os.path.join(out_dir, "cert.pem"), os.path.join(out_dir, "key.pem")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, oct(os.stat(key).st_mode)
        assert stat.S_IMODE(os.stat(cert).st_mode) == 0o644, oct(os.stat(cert).st_mode)
        assert sorted(os.listdir(out_dir)) == ["cert.pem", "key.pem"], os.listdir(out_dir)
        text = x509_text(cert)
        assert "Subject: CN = localhost, O = Tandem self-signed" in text, text
        assert "Issuer: CN = localhost, O = Tandem self-signed" in text, text
        assert "ecdsa-with-SHA256" in text and "prime256v1" in text, text
        assert ("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, "
                "DNS:*.demo.example") in text, text
        assert "CA:FALSE" in text and "TLS Web Server Authentication" in text, text
        # The key is the certificate's.
        assert public_key(["pkey", "-in", key, "-pubout"]) == \
            public_key(["x509", "-in", cert, "-noout", "-pubkey"])


@t.case
def a_client_given_the_certificate_verifies_each_name_and_refuses_others():
    with tempfile.TemporaryDirectory() as d:
        r = self_signed("--name", "localhost,127.0.0.1,*.demo.example", "--out", d)
        assert r.returncode == 0, r
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        for name in ("localhost", "127.0.0.1", "api.demo.example"):
            assert handshake(cert, key, name) in ("TLSv1.2", "TLSv1.3"), name
        try:
            handshake(cert, key, "other.example")
        except ssl.SSLCertVerificationError as e:
            assert "other.example" in str(e), e
        else:
            raise AssertionError("a name not in the certificate was accepted")


@t.case
def rsa_key_of_the_bits_asked():
    with tempfile.TemporaryDirectory() as d:
        r = self_signed("--name", "localhost", "--key", "rsa", "--rsa-bits", "3072",
                        "--days", "30", "--out", d)
        assert r.returncode == 0, r
        text = x509_text(os.path.join(d, "cert.pem"))
        assert "Public-Key: (3072 bit)" in text and "sha256WithRSAEncryption" in text, text
        assert "Digital Signature, Key Encipherment" in text, text
        out = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout",
                              "-checkend", str(29 * 86400)], capture_output=True, text=True)
        assert out.returncode == 0, "not valid for 29 more days"
        out = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout",
                              "-checkend", str(31 * 86400)], capture_output=True, text=True)
        assert out.returncode == 1, "valid for more than the 30 days asked"
        assert handshake(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"), "localhost")


@t.case
def existing_files_are_kept_unless_force():
    with tempfile.TemporaryDirectory() as d:
        assert self_signed("--name", "localhost", "--out", d).returncode == 0
        with open(os.path.join(d, "cert.pem")) as f:
            first = f.read()
        r = self_signed("--name", "localhost", "--out", d)
        assert r.returncode == 1 and "exists" in r.stderr and "--force" in r.stderr, r
        with open(os.path.join(d, "cert.pem")) as f:
            assert f.read() == first
        r = self_signed("--name", "localhost", "--out", d, "--force")
        assert r.returncode == 0, r
        with open(os.path.join(d, "cert.pem")) as f:
            assert f.read() != first
        assert sorted(os.listdir(d)) == ["cert.pem", "key.pem"], os.listdir(d)


@t.case
def files_written_meanwhile_by_another_run_are_kept_unless_force():
    """Two first runs at once on one directory (containers sharing a
    volume): the one still making its key when the other has written its
    pair must not put its own files over them, or the directory could end
    with one run's key and the other's certificate."""
    # An RSA key takes a random time to make: an attempt where the slow run
    # ended before the fast one wrote its files tests nothing, and is made
    # again (at most 5 times).
    for attempt in range(5):
        d = tempfile.mkdtemp(prefix="tandem-selfsigned-")
        slow = subprocess.Popen([tandem_bin(), "tls", "self-signed", "--name", "localhost",
                                 "--key", "rsa", "--rsa-bits", "4096", "--out", d],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Past its check for existing files (its first step), making
        # an RSA key for far longer than the run below takes.
        time.sleep(0.3)
        fast = self_signed("--name", "localhost", "--out", d)
        if fast.returncode == 0 and slow.poll() is None:
            break
        # The RSA run won: it wrote its pair before the fast run began, or
        # its key took the name first. The fast run must then have refused
        # and the slow one succeeded; still nothing of "meanwhile" tested.
        _, err = slow.communicate(timeout=300)
        if fast.returncode != 0:
            assert fast.returncode == 1 and "exists" in fast.stderr, fast
            assert slow.returncode == 0, (slow.returncode, err)
        shutil.rmtree(d)
    else:
        raise AssertionError("the RSA run ended first every time: nothing was tested")
    try:
        assert fast.returncode == 0, fast
        with open(os.path.join(d, "cert.pem")) as f:
            cert = f.read()
        with open(os.path.join(d, "key.pem")) as f:
            key = f.read()
        _, err = slow.communicate(timeout=300)
        assert slow.returncode == 1 and "exists" in err, (slow.returncode, err)
        with open(os.path.join(d, "cert.pem")) as f:
            assert f.read() == cert
        with open(os.path.join(d, "key.pem")) as f:
            assert f.read() == key
        assert sorted(os.listdir(d)) == ["cert.pem", "key.pem"], os.listdir(d)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
        shutil.rmtree(d, ignore_errors=True)


@t.case
def bad_names_and_options_are_refused_and_write_nothing():
    with tempfile.TemporaryDirectory() as d:
        for args, code, words in (
                (["--name", "bad name"], 1, "neither a DNS name"),
                (["--name", "a..b"], 1, "neither a DNS name"),
                (["--name", "x" * 64 + ".example"], 1, "neither a DNS name"),
                (["--name", "localhost", "--key", "dsa"], 2, "ecdsa or rsa"),
                (["--name", "localhost", "--key", "rsa", "--rsa-bits", "1024"], 1, "2048"),
                (["--name", "localhost", "--days", "0"], 2, "1..3650"),
                (["--name", "localhost", "--days", "3651"], 2, "1..3650"),
                ([], 2, "--name"),
                (["--name", ",".join("n%d.example" % i for i in range(65))], 1, "at most 64")):
            r = self_signed(*args, "--out", d)
            assert r.returncode == code and words in r.stderr, (args, r)
        assert os.listdir(d) == [], os.listdir(d)
        r = self_signed("--name", "localhost", "--out", os.path.join(d, "no", "such"))
        assert r.returncode == 1 and "No such file" in r.stderr, r


t.finish()
