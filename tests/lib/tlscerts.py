#!/usr/bin/env python3
"""Test certificates, made at test time with `openssl`.

Nothing here is committed: every key is generated into a directory the test
owns (a tempfile.TemporaryDirectory). Two independent CAs, leaves signed by
them (RSA-2048 or ECDSA P-256) for given names, leaves already expired or
not yet valid, and client certificates.

Use:
    from tlscerts import CertFactory
    with tempfile.TemporaryDirectory() as d:
        f = CertFactory(d)
        ca = f.ca("Test CA")                       # .cert, .key paths
        leaf = f.leaf(ca, ["api.example.com", "*.example.com"], kind="ec")
        # leaf.cert (chain: leaf then CA), leaf.key, leaf.fingerprint (sha256 hex)
        old = f.leaf(ca, ["old.example.com"], days=(-30, -1))    # expired
        cli = f.client(ca, "CN=alice,O=Tests")

Command line:
    tlscerts.py make DIR NAME...  a CA and an ECDSA and an RSA leaf for NAMEs
                                  in DIR (for poking at by hand)
    tlscerts.py run -- CMD ARGS   makes the standard set below in a fresh
                                  directory, runs CMD with TANDEM_TEST_CERTS
                                  naming it, deletes it; CMD's exit status

The standard set (C unit tests find the files by these names):
    ca.pem ca.key            "Tandem Test CA"
    ca2.pem ca2.key          "Other Test CA"
    ec.pem ec.key            EC P-256 for api.example.com, *.example.com
    rsa.pem rsa.key          RSA 2048, the same names
    default.pem default.key  EC, default.example.com
    expired.pem .key         EC, expired.example.com, expired yesterday
    notyet.pem .key          EC, notyet.example.com, valid from tomorrow
    other.pem other.key      EC, other.example.com, from the other CA
    client.pem client.key    client certificate CN=alice,O=Tests
    garbage.pem              not PEM at all
Each .pem of a leaf holds the leaf, then its CA.
"""

import datetime
import hashlib
import ipaddress
import os
import ssl
import subprocess
import sys


class Cert:
    """Paths of a certificate (`cert`: PEM, the leaf then its issuers),
    its key, and the leaf's SHA-256 fingerprint (lower-case hex of the
    DER)."""

    def __init__(self, cert, key, leaf_pem, subject):
        self.cert = cert
        self.key = key
        self.subject = subject
        der = ssl.PEM_cert_to_DER_cert(leaf_pem)
        self.fingerprint = hashlib.sha256(der).hexdigest()
        self.leaf_pem = leaf_pem


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def _stamp(days):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.strftime("%Y%m%d%H%M%SZ")


def _san(name):
    """The subjectAltName entry for name: IP:… for an IPv4 or IPv6
    literal, DNS:… otherwise; a name given as "DNS:…" or "IP:…" is taken
    as it is (a DNS entry spelling an address, for a test)."""
    if name.startswith(("DNS:", "IP:")):
        return name
    try:
        ipaddress.ip_address(name)
        return "IP:" + name
    except ValueError:
        return "DNS:" + name


class CertFactory:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0

    def _path(self, stem, ext):
        self.n += 1
        return os.path.join(self.dir, "%s-%d.%s" % (stem, self.n, ext))

    def _key(self, kind):
        path = self._path("key", "key")
        if kind == "ec":
            _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", path])
        elif kind == "rsa":
            _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                  "rsa_keygen_bits:2048", "-out", path])
        else:
            raise ValueError("kind is 'ec' or 'rsa'")
        return path

    def ca(self, name="Tandem Test CA", kind="ec"):
        """A self-signed CA valid for ten years."""
        key = self._key(kind)
        cert = self._path("ca", "pem")
        _run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=" + name,
              "-days", "3650", "-sha256", "-out", cert,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        with open(cert) as fh:
            pem = fh.read()
        return Cert(cert, key, pem, "CN=" + name)

    def _sign(self, ca, subj, exts, kind, days):
        key = self._key(kind)
        csr = self._path("req", "csr")
        _run(["openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr])
        ext = self._path("ext", "cnf")
        with open(ext, "w") as fh:
            fh.write("[v3]\n" + "\n".join(exts) + "\n")
        leaf = self._path("leaf", "pem")
        start, end = days
        # A start date other than now needs `openssl ca` (OpenSSL 3.0's x509
        # has no -not_before).
        args = ["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
                "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-sha256",
                "-extfile", ext, "-extensions", "v3", "-out", leaf]
        if start == 0:
            args += ["-days", str(end)]
        else:
            args = self._ca_dates(args, start, end)
        _run(args)
        with open(leaf) as fh:
            leaf_pem = fh.read()
        with open(ca.cert) as fh:
            ca_pem = fh.read()
        chain = self._path("chain", "pem")
        with open(chain, "w") as fh:
            fh.write(leaf_pem + ca_pem)
        return Cert(chain, key, leaf_pem, subj.strip("/").replace("/", ","))

    def _ca_dates(self, args, start, end):
        # `openssl ca` wants a database: a throwaway one.
        db = self._path("db", "d")
        os.mkdir(db)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as fh:
            fh.write("%016X\n" % int.from_bytes(os.urandom(8), "big"))
        i = args.index
        conf = os.path.join(db, "ca.cnf")
        with open(conf, "w") as fh:
            fh.write("[ca]\ndefault_ca=x\n[x]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\n"
                     "default_md=sha256\npolicy=p\nunique_subject=no\n"
                     "copy_extensions=none\n[p]\ncommonName=supplied\norganizationName=optional\n"
                     "organizationalUnitName=optional\n" % (db, db, db))
        return ["openssl", "ca", "-batch", "-config", conf, "-notext",
                "-in", args[i("-in") + 1], "-cert", args[i("-CA") + 1],
                "-keyfile", args[i("-CAkey") + 1], "-startdate", _stamp(start),
                "-enddate", _stamp(end), "-extfile", args[i("-extfile") + 1],
                "-extensions", "v3", "-out", args[i("-out") + 1]]

    def leaf(self, ca, names, kind="ec", days=(0, 365), cn=None):
        """A server certificate for `names` (subjectAltName entries: IP for
        an address literal, as a CA issues them, DNS otherwise; the first
        is the CN too). days=(start, end) relative to now: (0, N) valid now
        for N days; (-30, -1) expired; (1, 30) not yet valid."""
        cn = cn or (names[0] if names else "no-name")
        exts = ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth"]
        if names:
            exts.append("subjectAltName=" + ",".join(_san(n) for n in names))
        return self._sign(ca, "/CN=" + cn, exts, kind, days)

    def client(self, ca, subject="/CN=client", kind="ec", days=(0, 365)):
        """A client certificate (extendedKeyUsage clientAuth) with subject
        written the openssl way ("/CN=alice/O=Tests")."""
        exts = ["basicConstraints=CA:FALSE", "extendedKeyUsage=clientAuth"]
        return self._sign(ca, subject, exts, kind, days)


def standard_set(directory):
    """Writes the standard set (see the module's text) into directory."""
    f = CertFactory(directory)

    def put(stem, c):
        os.replace(c.cert, os.path.join(directory, stem + ".pem"))
        os.replace(c.key, os.path.join(directory, stem + ".key"))

    ca = f.ca("Tandem Test CA")
    ca2 = f.ca("Other Test CA")
    names = ["api.example.com", "*.example.com"]
    put("ec", f.leaf(ca, names, kind="ec"))
    put("rsa", f.leaf(ca, names, kind="rsa"))
    put("default", f.leaf(ca, ["default.example.com"]))
    put("expired", f.leaf(ca, ["expired.example.com"], days=(-30, -1)))
    put("notyet", f.leaf(ca, ["notyet.example.com"], days=(1, 30)))
    put("other", f.leaf(ca2, ["other.example.com"]))
    put("client", f.client(ca, "/CN=alice/O=Tests"))
    put("ca", ca)
    put("ca2", ca2)
    with open(os.path.join(directory, "garbage.pem"), "w") as fh:
        fh.write("this is not a certificate\n")


def main(argv):
    if len(argv) >= 3 and argv[1] == "run":
        import shutil
        import tempfile
        cmd = argv[3:] if argv[2] == "--" else argv[2:]
        d = tempfile.mkdtemp(prefix="tandem-certs-")
        try:
            standard_set(d)
            env = dict(os.environ, TANDEM_TEST_CERTS=d)
            return subprocess.call(cmd, env=env)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    if len(argv) < 4 or argv[1] != "make":
        print(__doc__, file=sys.stderr)
        return 2
    os.makedirs(argv[2], exist_ok=True)
    f = CertFactory(argv[2])
    ca = f.ca()
    ec = f.leaf(ca, argv[3:], kind="ec")
    rsa = f.leaf(ca, argv[3:], kind="rsa")
    print("ca    %s" % ca.cert)
    print("ec    %s %s %s" % (ec.cert, ec.key, ec.fingerprint))
    print("rsa   %s %s %s" % (rsa.cert, rsa.key, rsa.fingerprint))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
