#!/usr/bin/python3
"""The `tls` suite: testssl.sh and sslscan (Debian packages testssl.sh and
sslscan) against a real Tandem TLS listener, their machine-readable output
parsed and checked.

    probe.py [--only sslscan|testssl] [--keep DIR] [--tls JSON]

One gateway, one listener with the default TLS settings (nothing about
versions or suites configured: what a user gets) and two certificates for
`localhost` from one test CA (tests/lib/tlscerts.py): ECDSA P-256 and RSA
2048, so both kinds of handshake are probed. --tls merges JSON into the
listener's `tls` object: to scan another configuration (a suite list, say)
and see what the checks say of it. The scanners connect to
127.0.0.1 with SNI `localhost` and are given the test CA, so that findings
about the certificate are findings about the gateway (chain sent, names,
dates), not about a CA nobody trusts.

Checked, from both tools where both test it:
  - protocols: SSLv2, SSLv3, TLS 1.0 and TLS 1.1 not offered; TLS 1.2 offered;
  - suites: no NULL, anonymous, EXPORT, LOW, RC4, 3DES/IDEA offered, and
    every suite the server accepts is an ECDHE key exchange with an AEAD
    cipher (AES-GCM, ChaCha20-Poly1305) or a TLS 1.3 suite;
  - no TLS compression (CRIME), secure renegotiation only (RFC 5746) and
    no client-initiated renegotiation;
  - no finding of severity HIGH or CRITICAL (testssl.sh), no scan problem,
    and every check above actually ran (a WARN "could not test" fails);
  - the gateway still serves afterwards and logged no crash report.

testssl.sh runs its default checks but the client simulation, with
--fast (the cipher enumeration with the local openssl), plus its
socket-based RC4 check, which --fast skips; 1 to 2 minutes. Prints `N passed, N failed`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

NAME = "localhost"
BODY = "tls probe\n"
# What a suite's name must look like (OpenSSL names, as both tools print
# them): ECDHE key exchange, AEAD cipher; or a TLS 1.3 suite (its key
# exchange is always ephemeral).
STRONG_SUITE = re.compile(r"^(ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)"
                          r"|TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256))$")


def timeout_scale():
    return float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))


class ProbeCerts(CertFactory):
    def served_leaf(self, ca, kind):
        """A leaf for NAME as a public CA issues it: with a CRL distribution
        point, so that testssl.sh's revocation finding ("neither CRL nor
        OCSP URI provided", HIGH) is about the gateway, not a bare test
        certificate. The URI is never fetched (no --phone-out)."""
        usage = "digitalSignature" + (",keyEncipherment" if kind == "rsa" else "")
        exts = ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth",
                "keyUsage=critical," + usage,
                "subjectAltName=DNS:" + NAME,
                "crlDistributionPoints=URI:http://127.0.0.1/tandem-probe-ca.crl"]
        return self._sign(ca, "/CN=" + NAME, exts, kind, (0, 365))


class Probe:
    """A gateway with a TLS listener for `localhost` (ECDSA and RSA
    certificates from one test CA) answering 200 on every path."""

    def __init__(self, keep=None, tls_extra=None):
        self.certdir = keep or tempfile.mkdtemp(prefix="tandem-tls-probe-")
        os.makedirs(self.certdir, exist_ok=True)
        f = ProbeCerts(self.certdir)
        self.ca = f.ca("Tandem Probe CA")
        self.ec = f.served_leaf(self.ca, kind="ec")
        self.rsa = f.served_leaf(self.ca, kind="rsa")
        tls = {"certificates": [{"cert": c.cert, "key": c.key, "names": [NAME]}
                                for c in (self.ec, self.rsa)]}
        tls.update(tls_extra or {})
        routes = [{"name": "all", "match": {"path_prefix": "/"},
                   "respond": {"status": 200, "body": BODY,
                               "headers": {"content-type": "text/plain"}}}]
        self.gw = harness.Gateway(routes, listener={"tls": tls})
        self.port = self.gw.port
        self.target = f"{NAME}:{self.port}"

    def get(self):
        """One HTTPS request verified against the test CA: the body."""
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.check_hostname = False  # the URL names 127.0.0.1, the certificate localhost
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}/",
                                     headers={"Host": NAME})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read().decode()

    def close(self):
        self.gw.close()


# ---- testssl.sh ----------------------------------------------------------------

# Findings that must say "not offered" / "not vulnerable" (and have run).
TESTSSL_NOT_OFFERED = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
                       "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA")
TESTSSL_OK = ("RC4", "CRIME_TLS", "secure_renego", "secure_client_renego", "heartbleed", "CCS",
              "ticketbleed", "ROBOT", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK",
              "DROWN", "LOGJAM", "BEAST", "LUCKY13")


# testssl.sh's default run without its client simulation (-c: which
# browsers would connect, informational only, half the time): protocols,
# every cipher (-e), cipher lists, forward secrecy, the server's
# preferences and defaults (certificates, tickets), HTTP headers,
# vulnerabilities.
SECTIONS = ("-p", "-e", "-s", "-f", "-P", "-S", "-h", "-U")


def run_testssl(p, workdir):
    """testssl.sh's findings (the --jsonfile list) and how long it took."""
    out = os.path.join(workdir, "testssl.json")
    t0 = time.monotonic()
    # --fast: the cipher checks with the local openssl;
    # --ip: connect to 127.0.0.1 whatever localhost resolves to, SNI
    # `localhost`; --add-ca: the chain is judged against the test CA.
    base = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--ip", "127.0.0.1",
            "--add-ca", p.ca.cert, "--connect-timeout", "10", "--openssl-timeout", "10"]
    r = subprocess.run(base + ["--fast", *SECTIONS, "--jsonfile", out, p.target],
                       capture_output=True, text=True, timeout=600 * timeout_scale())
    with open(os.path.join(workdir, "testssl.out"), "w") as fh:
        fh.write(r.stdout + r.stderr)
    findings = json.load(open(out))
    # RC4 with --fast asks the local openssl, which has none (a WARN):
    # the socket-based check alone (--rc4).
    out2 = os.path.join(workdir, "testssl-rc4.json")
    r2 = subprocess.run(base + ["--rc4", "--jsonfile", out2, p.target], capture_output=True,
                        text=True, timeout=300 * timeout_scale())
    with open(os.path.join(workdir, "testssl-rc4.out"), "w") as fh:
        fh.write(r2.stdout + r2.stderr)
    rc4 = json.load(open(out2))
    findings = [f for f in findings if f["id"] != "RC4"] + [f for f in rc4 if f["id"] == "RC4"]
    return findings, time.monotonic() - t0, (r.returncode, r2.returncode)


def check_testssl(findings):
    """The list of failures (empty: all good)."""
    bad = []
    by_id = {}
    for f in findings:
        by_id.setdefault(f["id"], []).append(f)
    for f in findings:
        if f["severity"] in ("HIGH", "CRITICAL", "FATAL"):
            bad.append(f"{f['severity']} {f['id']}: {f['finding']}")
        if f["id"] == "scanProblem":
            bad.append(f"scan problem: {f['finding']}")
    for fid in TESTSSL_NOT_OFFERED:
        for f in by_id.get(fid) or [{"severity": "WARN", "finding": "not tested"}]:
            if f["severity"] == "WARN" or not f["finding"].startswith("not offered"):
                bad.append(f"{fid}: {f['severity']} {f['finding']}")
    for fid in TESTSSL_OK:
        for f in by_id.get(fid) or [{"severity": "WARN", "finding": "not tested"}]:
            if f["severity"] != "OK":
                bad.append(f"{fid}: {f['severity']} {f['finding']}")
    if not any(f["finding"].startswith("offered") for f in by_id.get("TLS1_2", [])):
        bad.append("TLS1_2 not offered")
    # Every suite listed is strong: the enumeration (cipher_xNNNN: "xc02b
    # ECDHE-ECDSA-AES128-GCM-SHA256 ECDH 253 AESGCM ..."), the ones with
    # forward secrecy, and the one negotiated by default.
    listed = []
    for f in findings:
        words = f["finding"].replace(",", " ").split()
        if re.match(r"cipher_x[0-9a-f]+$", f["id"]) and len(words) > 1:
            listed.append((f["id"], words[1]))
        elif f["id"] == "PFS_ciphers":
            listed += [(f["id"], w) for w in words]
        elif f["id"] == "cipher_negotiated" and words:
            listed.append((f["id"], words[0]))
    if not any(fid.startswith("cipher_x") for fid, _ in listed):
        bad.append("no cipher_x finding: the suites were not enumerated")
    for fid, name in listed:
        if not STRONG_SUITE.match(name):
            bad.append(f"weak suite offered: {fid}: {name}")
    return bad


# ---- sslscan --------------------------------------------------------------------

def run_sslscan(p, workdir):
    out = os.path.join(workdir, "sslscan.xml")
    r = subprocess.run(["sslscan", "--no-colour", f"--xml={out}", "--sni-name=" + NAME,
                        f"127.0.0.1:{p.port}"], capture_output=True, text=True,
                       timeout=120 * timeout_scale())
    with open(os.path.join(workdir, "sslscan.out"), "w") as fh:
        fh.write(r.stdout + r.stderr)
    return ET.parse(out).getroot(), r.returncode


def check_sslscan(doc):
    bad = []
    test = doc.find("ssltest")
    if test is None:
        return ["no <ssltest> in sslscan's output: " + ET.tostring(doc, "unicode")[:300]]
    protos = {(e.get("type"), e.get("version")): e.get("enabled") for e in test.iter("protocol")}
    for key in (("ssl", "2"), ("ssl", "3"), ("tls", "1.0"), ("tls", "1.1")):
        if protos.get(key) != "0":
            bad.append(f"{key[0]} {key[1]}: enabled={protos.get(key)}")
    if protos.get(("tls", "1.2")) != "1":
        bad.append("TLS 1.2 not enabled")
    reneg = test.find("renegotiation")
    if reneg is None:
        bad.append("no renegotiation result")
    elif reneg.get("supported") == "1" and reneg.get("secure") != "1":
        bad.append("insecure renegotiation")
    for comp in test.iter("compression"):
        if comp.get("supported") != "0":
            bad.append("TLS compression supported")
    for hb in test.iter("heartbleed"):
        if hb.get("vulnerable") != "0":
            bad.append(f"heartbleed on {hb.get('sslversion')}")
    ciphers = list(test.iter("cipher"))
    if not ciphers:
        bad.append("no cipher accepted")
    for c in ciphers:
        name = c.get("cipher")
        if not STRONG_SUITE.match(name) or c.get("strength") not in ("strong",):
            bad.append(f"weak suite {name} ({c.get('sslversion')}, {c.get('strength')})")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("sslscan", "testssl"))
    ap.add_argument("--keep", help="keep certificates and the scanners' output here")
    ap.add_argument("--tls", default="{}", help="JSON merged into the listener's tls object")
    a = ap.parse_args()
    t = harness.TestRun("tls_probe")
    missing = [tool for tool in ("testssl", "sslscan") if not shutil.which(tool)]
    if missing:
        # scripts/deps test installs them: a missing one is a failure, not a skip.
        print("missing: " + ", ".join(missing) + " (scripts/deps test installs them)")
        print("0 passed, 1 failed")
        return 1
    workdir = a.keep or tempfile.mkdtemp(prefix="tandem-tls-scan-")
    os.makedirs(workdir, exist_ok=True)
    p = Probe(os.path.join(workdir, "certs"), json.loads(a.tls))
    try:
        @t.case
        def listener_serves_https_with_the_test_ca():
            status, body = p.get()
            assert status == 200 and body == BODY, (status, body)

        if a.only in (None, "sslscan"):
            @t.case
            def sslscan_finds_only_tls12_up_strong_suites_no_compression_secure_renegotiation():
                doc, rc = run_sslscan(p, workdir)
                bad = check_sslscan(doc)
                accepted = [c.get("cipher") for c in doc.iter("cipher")]
                print(f"#   sslscan exit {rc}: accepted {' '.join(accepted)}")
                assert not bad, "sslscan: " + "; ".join(bad)

        if a.only in (None, "testssl"):
            @t.case
            def testssl_finds_no_weak_protocol_suite_or_high_finding():
                findings, took, rcs = run_testssl(p, workdir)
                sev = {}
                for f in findings:
                    sev[f["severity"]] = sev.get(f["severity"], 0) + 1
                print(f"#   testssl.sh: {len(findings)} findings in {took:.0f} s, exit {rcs}, "
                      f"by severity {json.dumps(sev, sort_keys=True)}")
                for f in findings:
                    if f["severity"] in ("LOW", "MEDIUM", "WARN"):
                        print(f"#   {f['severity']} {f['id']}: {f['finding'][:100]}")
                bad = check_testssl(findings)
                assert not bad, "testssl.sh: " + "; ".join(bad)

        @t.case
        def gateway_survives_the_scans_without_a_crash_report():
            status, body = p.get()
            assert status == 200 and body == BODY, (status, body)
            assert p.gw.proc.poll() is None, "the gateway exited"
            log = p.gw.log()
            for bad in ("crash", "CRASH", "panic", "AddressSanitizer", "runtime error:"):
                assert bad not in log, f"{bad!r} in the gateway's log: " + log[-2000:]

        t.finish()
    finally:
        p.close()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
