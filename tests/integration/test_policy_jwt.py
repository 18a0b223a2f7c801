#!/usr/bin/env python3
"""The jwt policy through the real binary: bearer tokens signed by the
openssl command (RS256, ES256) or with an HMAC secret from the environment
(HS256), keys from a JWKS file or from a JWKS URL served by a local HTTP
server. What is allowed and refused (with RFC 6750's WWW-Authenticate),
claims forwarded upstream and never forged by a client, key rotation at
the issuer (a new kid picked up, an old one valid until removed), a failed
fetch keeping the last good keys, and the denials in /metrics."""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Gateway, TestRun, Upstream, tandem_bin  # noqa: E402
from tlscerts import CertFactory  # noqa: E402

t = TestRun("policy_jwt")
SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))
SECRET = "an HMAC secret of at least thirty-two bytes, for tests"
KEYS = tempfile.mkdtemp(prefix="tandem-jwt-keys-")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True,
                          check=True).stdout


def keygen(name, kind):
    path = os.path.join(KEYS, name + ".pem")
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                path)
    return path


RSA1 = keygen("rsa1", "rsa")
RSA2 = keygen("rsa2", "rsa")
EC1 = keygen("ec1", "ec")


def jwk(path, kid):
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    if "ec" in os.path.basename(path):
        return {"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(der[-64:-32]),
                "y": b64(der[-32:])}
    pub = openssl("pkey", "-in", path, "-pubout")
    mod = openssl("rsa", "-pubin", "-noout", "-modulus", data=pub).decode().strip()
    n = bytes.fromhex(mod.split("=", 1)[1])
    return {"kty": "RSA", "kid": kid, "n": b64(n), "e": "AQAB"}


def der_to_raw(der, size=32):
    """An ECDSA DER signature as JWS's r || s."""
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 2
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


def token(claims, alg="RS256", key=RSA1, kid="k1", header=None, secret=SECRET.encode()):
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    h.update(header or {})
    signing = (b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    if alg.startswith("HS"):
        sig = hmac.new(secret, signing, hashlib.sha256).digest()
    elif alg == "none":
        sig = b""
    else:
        sig = openssl("dgst", "-sha256", "-sign", key, data=signing)
        if alg.startswith("ES"):
            sig = der_to_raw(sig)
    return signing.decode() + "." + b64(sig)


def good_claims(**kw):
    c = {"iss": "https://idp.test", "aud": "api", "sub": "alice", "exp": int(time.time()) + 600}
    c.update(kw)
    return c


class Issuer:
    """A JWKS served over HTTP by a thread (over TLS with `leaf`, a
    tlscerts.Cert); counts its requests."""

    def __init__(self, leaf=None):
        self.keys = []
        self.fail = False
        self.requests = 0
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                me.requests += 1
                if me.fail:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"keys": me.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.tls = None
        if leaf:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(leaf.cert, leaf.key)
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Env:
    """An issuer, a policies directory, an upstream (echo) and the gateway."""

    def __init__(self, min_interval=1):
        self.issuer = Issuer()
        self.issuer.keys = [jwk(RSA1, "k1")]
        self.up = Upstream(name="u0")
        self.pdir = tempfile.mkdtemp(prefix="tandem-jwt-policies-")
        with open(os.path.join(self.pdir, "keys.jwks"), "w") as f:
            json.dump({"keys": [jwk(EC1, "e1")]}, f)
        policies = {
            "policies": [
                {"name": "idp", "type": "jwt", "algorithms": ["RS256", "ES256"],
                 "jwks_url": f"http://127.0.0.1:{self.issuer.port}/keys",
                 "issuer": "https://idp.test", "audiences": ["api"], "leeway_s": 5,
                 "refresh_min_interval_s": min_interval, "required_claims": ["sub"],
                 "forward_claims": {"sub": "x-jwt-sub", "tier": "x-jwt-tier"}},
                {"name": "hs", "type": "jwt", "algorithms": ["HS256"],
                 "secret_env": "TANDEM_TEST_JWT_SECRET"},
                {"name": "file", "type": "jwt", "algorithms": ["ES256"],
                 "jwks_file": "keys.jwks"},
            ],
            "consumers": [{"name": "alice", "headers": {"x-tier": "gold"}}],
        }
        with open(os.path.join(self.pdir, "jwt.json"), "w") as f:
            json.dump(policies, f)
        routes = [
            {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
             "strip_prefix": True, "policies": ["idp"]},
            {"name": "hs", "match": {"path_prefix": "/hs"}, "upstream": "up",
             "strip_prefix": True, "policies": ["hs"]},
            {"name": "file", "match": {"path_prefix": "/file"}, "upstream": "up",
             "strip_prefix": True, "policies": ["file"]},
        ]
        self.gw = Gateway(routes, {"up": {"targets": [{"address": self.up.address}]}},
                          extra={"policies": {"dir": self.pdir}},
                          env={"TANDEM_TEST_JWT_SECRET": SECRET})

    def get(self, path, tok=None, headers=None):
        h = dict(headers or {})
        if tok is not None:
            h["Authorization"] = "Bearer " + tok
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=10 * SCALE)
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def upstream_headers(self, tok, headers=None):
        r, body = self.get("/api/echo", tok, headers)
        assert r.status == 200, (r.status, body, self.gw.log())
        return {k.lower(): v for k, v in json.loads(body)["headers"]}

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return text

    def __enter__(self):
        return self

    def __exit__(self, *a):
        # A clean exit (under the sanitizers: nothing leaked, nothing
        # reported), whatever the case did.
        rc = self.gw.stop()
        log = self.gw.log()
        self.gw.close()
        self.up.stop()
        self.issuer.stop()
        shutil.rmtree(self.pdir, ignore_errors=True)
        if a[0] is None:
            assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, (rc, log)


def refused(r, body, description=None):
    assert r.status == 401, (r.status, body)
    www = r.getheader("WWW-Authenticate")
    assert www is not None and www.startswith("Bearer"), www
    if description:
        assert 'error="invalid_token"' in www, www
        assert f'error_description="{description}"' in www, www


@t.case
def valid_tokens_pass_and_claims_reach_the_upstream_unforgeable():
    with Env() as e:
        hdrs = e.upstream_headers(token(good_claims(tier="gold")),
                                  {"X-JWT-Sub": "mallory", "x-jwt-tier": "platinum"})
        assert hdrs.get("x-jwt-sub") == "alice", hdrs
        assert hdrs.get("x-jwt-tier") == "gold", hdrs
        # A token without the claim: the client's copy is still dropped.
        hdrs = e.upstream_headers(token(good_claims()), {"x-jwt-tier": "platinum"})
        assert "x-jwt-tier" not in hdrs, hdrs
        # The route without policies... the owned names are dropped on
        # every route: checked through the hs route, which forwards none.
        r, body = e.get("/hs/echo", token({"sub": "bob"}, alg="HS256", kid=None),
                        {"x-jwt-sub": "mallory"})
        assert r.status == 200, (r.status, body)
        hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert "x-jwt-sub" not in hdrs, hdrs


@t.case
def consumer_claim_names_a_consumer_or_else_the_subject():
    with Env() as e:
        # sub "alice" is a consumer: her headers go upstream.
        hdrs = e.upstream_headers(token(good_claims()), {"x-tier": "platinum"})
        assert hdrs.get("x-tier") == "gold", hdrs
        assert hdrs.get("x-consumer") == "alice", hdrs
        # sub "bob" is none: no consumer headers, the client's copy dropped.
        hdrs = e.upstream_headers(token(good_claims(sub="bob")), {"x-tier": "platinum"})
        assert "x-tier" not in hdrs, hdrs
        assert hdrs.get("x-jwt-sub") == "bob", hdrs
        log = [line for line in e.gw.access_log() if line.get("path", "").startswith("/api")]
        assert log and log[0].get("consumer") == "alice", log


@t.case
def missing_or_bad_tokens_get_401_with_www_authenticate():
    with Env() as e:
        r, body = e.get("/api/echo")
        refused(r, body)
        assert "error=" not in r.getheader("WWW-Authenticate")
        now = int(time.time())
        cases = [
            (token(good_claims(exp=now - 60)), "token expired"),
            (token(good_claims(nbf=now + 60)), "token not yet valid"),
            (token(good_claims(iss="https://evil.test")), "issuer not accepted"),
            (token(good_claims(aud=["web", "other"])), "audience not accepted"),
            (token({k: v for k, v in good_claims().items() if k != "sub"}),
             "a required claim is missing"),
            (token(good_claims(), alg="none"), "algorithm not allowed"),
            (token(good_claims())[:-4] + "AAAA", "bad signature"),
            ("not.a.token", "malformed token"),
            ("x" * 9000, "malformed token"),
        ]
        for tok, why in cases:
            r, body = e.get("/api/echo", tok)
            refused(r, body, why)
        # Within the leeway (5 s) an expired token still passes.
        r, body = e.get("/api/echo", token(good_claims(exp=now - 2)))
        assert r.status == 200, (r.status, body)


@t.case
def hmac_token_signed_with_the_issuers_public_key_is_refused():
    with Env() as e:
        pem = openssl("pkey", "-in", RSA1, "-pubout")
        # Whatever the policy allows, the RSA key never checks an HMAC.
        tok = token(good_claims(), alg="HS256", secret=pem)
        r, body = e.get("/api/echo", tok)
        refused(r, body, "algorithm not allowed")
        # On the HS256 policy the secret is the configured one only.
        r, body = e.get("/hs/echo", token({"sub": "a"}, alg="HS256", kid=None, secret=pem))
        refused(r, body, "bad signature")
        r, body = e.get("/hs/echo", token({"sub": "a"}, alg="HS256", kid=None))
        assert r.status == 200, (r.status, body)
        # An RS256 token on the HS256 policy.
        r, body = e.get("/hs/echo", token({"sub": "a"}))
        refused(r, body, "algorithm not allowed")


@t.case
def jwks_file_keys_verify():
    with Env() as e:
        r, body = e.get("/file/echo", token({"sub": "a"}, alg="ES256", key=EC1, kid="e1"))
        assert r.status == 200, (r.status, body)
        r, body = e.get("/file/echo", token({"sub": "a"}, alg="ES256", key=EC1, kid="zz"))
        refused(r, body, "unknown key id")


@t.case
def jwks_rotation_picks_up_a_new_kid_and_keeps_the_old_until_removed():
    with Env() as e:
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        assert e.issuer.requests == 1
        # The issuer adds k2 (an RSA key) beside k1.
        e.issuer.keys = [jwk(RSA1, "k1"), jwk(RSA2, "k2")]
        time.sleep(1.2)
        tok2 = token(good_claims(), key=RSA2, kid="k2")
        r, body = e.get("/api/echo", tok2)
        assert r.status == 200, (r.status, body, e.gw.log())
        assert e.issuer.requests == 2
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        assert e.issuer.requests == 2
        # k1 removed: still valid until the gateway fetches again, which a
        # token naming a kid it does not know makes it do.
        e.issuer.keys = [jwk(RSA2, "k2")]
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        time.sleep(1.2)
        r, body = e.get("/api/echo", token(good_claims(), kid="k3"))
        refused(r, body, "unknown key id")
        assert e.issuer.requests == 3
        r, body = e.get("/api/echo", token(good_claims()))
        refused(r, body, "unknown key id")
        assert e.get("/api/echo", tok2)[0].status == 200


@t.case
def made_up_kids_fetch_once_per_interval():
    with Env(min_interval=30) as e:
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        for i in range(20):
            r, body = e.get("/api/echo", token(good_claims(), kid=f"made-up-{i}"))
            refused(r, body, "unknown key id")
        assert e.issuer.requests == 1, e.issuer.requests
        m = e.metrics()
        assert 'tandem_policy_denials_total{policy="idp",reason="unknown_kid"} 20' in m, m


@t.case
def a_failed_fetch_keeps_the_last_good_keys():
    with Env() as e:
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        e.issuer.fail = True
        time.sleep(1.2)
        r, body = e.get("/api/echo", token(good_claims(), kid="k9"))
        refused(r, body, "unknown key id")
        assert e.issuer.requests == 2
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        assert "keeping the last good key set" in e.gw.log()
        # The issuer back: the next fetch works.
        e.issuer.fail = False
        e.issuer.keys = [jwk(RSA1, "k1"), jwk(RSA2, "k9")]
        time.sleep(1.2)
        assert e.get("/api/echo", token(good_claims(), key=RSA2, kid="k9"))[0].status == 200


@t.case
def a_reload_keeps_the_fetched_keys_and_the_fetch_history():
    with Env(min_interval=30) as e:
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        assert e.issuer.requests == 1
        e.issuer.keys = [jwk(RSA2, "k2")]
        e.gw.proc.send_signal(signal.SIGHUP)
        end = time.time() + 10 * SCALE
        while "version 2 published" not in e.gw.log():
            assert time.time() < end, e.gw.log()
            time.sleep(0.05)
        # The same keys (k1 still accepted), no fetch; a made-up kid is
        # still within the interval of the fetch before the reload.
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        r, body = e.get("/api/echo", token(good_claims(), kid="k7"))
        refused(r, body, "unknown key id")
        assert e.issuer.requests == 1, e.issuer.requests


@t.case
def keys_not_fetched_yet_answer_503():
    with Env() as e:
        e.issuer.fail = True
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 503, (r.status, body)
        e.issuer.fail = False
        time.sleep(1.2)
        assert e.get("/api/echo", token(good_claims()))[0].status == 200


@t.case
def check_reports_bad_jwt_policies_with_their_position():
    root = tempfile.mkdtemp(prefix="tandem-jwt-check-")
    try:
        os.makedirs(os.path.join(root, "routes"))
        os.makedirs(os.path.join(root, "policies"))
        with open(os.path.join(root, "routes", "main.json"), "w") as f:
            json.dump({"routes": []}, f)
        with open(os.path.join(root, "policies", "p.json"), "w") as f:
            f.write('{"policies": [\n'
                    ' {"name": "a", "type": "jwt", "algorithms": ["none"],\n'
                    '  "jwks_file": "missing.json", "isuer": "x"}\n'
                    ']}\n')
        with open(os.path.join(root, "tandem.json"), "w") as f:
            json.dump({"listeners": [{"name": "p", "address": "127.0.0.1:0"}],
                       "admin": False, "routes": "routes"}, f)
        out = subprocess.run([tandem_bin(), "check", "-c", os.path.join(root, "tandem.json")],
                             capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        assert out.returncode != 0, text
        assert '"none" is never accepted' in text, text
        assert 'did you mean "issuer"' in text, text
        assert "missing.json" in text, text
        assert "p.json:2:" in text, text
    finally:
        shutil.rmtree(root, ignore_errors=True)

# ---- https ------------------------------------------------------------------

CERTS = tempfile.mkdtemp(prefix="tandem-jwt-certs-")
CF = CertFactory(CERTS)
CA = CF.ca("JWKS Test CA")
CA2 = CF.ca("Other Test CA")
ISSUER_CERT = CF.leaf(CA, ["127.0.0.1"])  # the URL's host: an iPAddress entry
NAMED_CERT = CF.leaf(CA, ["idp.test"])
OTHER_CA_CERT = CF.leaf(CA2, ["127.0.0.1"])


class HttpsEnv:
    """An issuer over https (its certificate `leaf`), one jwt policy on it
    with the extra keys `pol`, the CA bundles copied into the policies
    directory, an upstream and the gateway."""

    def __init__(self, leaf, pol=None):
        self.issuer = Issuer(leaf)
        self.issuer.keys = [jwk(RSA1, "k1")]
        self.up = Upstream(name="u0")
        self.pdir = tempfile.mkdtemp(prefix="tandem-jwt-https-")
        shutil.copy(CA.cert, os.path.join(self.pdir, "ca.pem"))
        shutil.copy(CA2.cert, os.path.join(self.pdir, "other-ca.pem"))
        p = {"name": "idp", "type": "jwt", "algorithms": ["RS256"],
             "jwks_url": f"https://127.0.0.1:{self.issuer.port}/keys",
             "issuer": "https://idp.test", "audiences": ["api"],
             "refresh_min_interval_s": 1}
        p.update(pol or {})
        with open(os.path.join(self.pdir, "jwt.json"), "w") as f:
            json.dump({"policies": [p]}, f)
        routes = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
                   "strip_prefix": True, "policies": ["idp"]}]
        self.gw = Gateway(routes, {"up": {"targets": [{"address": self.up.address}]}},
                          extra={"policies": {"dir": self.pdir}})

    get = Env.get

    def policy(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=10)
        c.request("GET", "/admin/policies/idp")
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        assert r.status == 200, (r.status, doc)
        return doc["config"]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        rc = self.gw.stop()
        log = self.gw.log()
        self.gw.close()
        self.up.stop()
        self.issuer.stop()
        shutil.rmtree(self.pdir, ignore_errors=True)
        if a[0] is None:
            assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, (rc, log)


@t.case
def https_jwks_url_verified_with_jwks_ca_gives_keys_that_verify_tokens():
    with HttpsEnv(ISSUER_CERT, {"jwks_ca": "ca.pem"}) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 200, (r.status, body, e.gw.log())
        assert e.issuer.requests == 1, e.issuer.requests
        cfg = e.policy()
        assert cfg["keys"] == 1 and cfg["last_fetch_error"] is None, cfg
        assert cfg["jwks_ca"].endswith("/ca.pem"), cfg


@t.case
def https_issuer_not_in_the_system_store_fails_the_fetch_with_the_reason_logged():
    # No jwks_ca: the system store, which does not hold the test CA.
    with HttpsEnv(ISSUER_CERT) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 503, (r.status, body)
        assert e.issuer.requests == 0, e.issuer.requests  # no request after the handshake
        log = e.gw.log()
        assert "fetch failed (certificate verify failed: not trusted" in log, log
        cfg = e.policy()
        assert cfg["keys"] is None, cfg
        assert cfg["last_fetch_error"].startswith("certificate verify failed: not trusted"), cfg


@t.case
def https_certificate_from_another_ca_than_jwks_ca_is_refused():
    with HttpsEnv(OTHER_CA_CERT, {"jwks_ca": "ca.pem"}) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 503, (r.status, body)
        assert "certificate verify failed: not trusted" in e.gw.log(), e.gw.log()
        assert e.issuer.requests == 0, e.issuer.requests
    # The issuer's own CA named: accepted.
    with HttpsEnv(OTHER_CA_CERT, {"jwks_ca": "other-ca.pem"}) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 200, (r.status, body, e.gw.log())


@t.case
def https_certificate_must_name_the_host_or_jwks_server_name():
    # A certificate for idp.test, reached at 127.0.0.1: a name mismatch.
    with HttpsEnv(NAMED_CERT, {"jwks_ca": "ca.pem"}) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 503, (r.status, body)
        assert "certificate verify failed: name mismatch" in e.gw.log(), e.gw.log()
    with HttpsEnv(NAMED_CERT, {"jwks_ca": "ca.pem", "jwks_server_name": "idp.test"}) as e:
        r, body = e.get("/api/echo", token(good_claims()))
        assert r.status == 200, (r.status, body, e.gw.log())


@t.case
def an_https_verification_failure_keeps_the_last_good_keys():
    with HttpsEnv(ISSUER_CERT, {"jwks_ca": "ca.pem"}) as e:
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        # The issuer now presents a certificate of another CA (new
        # handshakes get it): the next fetch fails, the keys stay.
        e.issuer.tls.load_cert_chain(OTHER_CA_CERT.cert, OTHER_CA_CERT.key)
        e.issuer.keys = [jwk(RSA2, "k2")]
        time.sleep(1.2)
        r, body = e.get("/api/echo", token(good_claims(), key=RSA2, kid="k2"))
        refused(r, body, "unknown key id")
        assert e.get("/api/echo", token(good_claims()))[0].status == 200
        assert e.issuer.requests == 1, e.issuer.requests
        cfg = e.policy()
        assert cfg["keys"] == 1, cfg
        assert "not trusted" in cfg["last_fetch_error"], cfg
        assert "keeping the last good key set" in e.gw.log(), e.gw.log()


@t.case
def check_reports_bad_jwks_ca_and_https_only_keys():
    root = tempfile.mkdtemp(prefix="tandem-jwt-check-")
    try:
        os.makedirs(os.path.join(root, "routes"))
        os.makedirs(os.path.join(root, "policies"))
        with open(os.path.join(root, "routes", "main.json"), "w") as f:
            json.dump({"routes": []}, f)
        with open(os.path.join(root, "policies", "not-a-ca.pem"), "w") as f:
            f.write("not a certificate\n")
        with open(os.path.join(root, "policies", "p.json"), "w") as f:
            f.write('{"policies": [\n'
                    ' {"name": "a", "type": "jwt", "algorithms": ["RS256"],\n'
                    '  "jwks_url": "https://idp.test/keys", "jwks_ca": "missing.pem"},\n'
                    ' {"name": "b", "type": "jwt", "algorithms": ["RS256"],\n'
                    '  "jwks_url": "https://idp.test/keys", "jwks_ca": "not-a-ca.pem"},\n'
                    ' {"name": "c", "type": "jwt", "algorithms": ["RS256"],\n'
                    '  "jwks_url": "http://idp.test/keys", "jwks_server_name": "idp.test"},\n'
                    ' {"name": "d", "type": "jwt", "algorithms": ["RS256"],\n'
                    '  "jwks_url": "ftp://idp.test/keys"}\n'
                    ']}\n')
        with open(os.path.join(root, "tandem.json"), "w") as f:
            json.dump({"listeners": [{"name": "p", "address": "127.0.0.1:0"}],
                       "admin": False, "routes": "routes"}, f)
        out = subprocess.run([tandem_bin(), "check", "-c", os.path.join(root, "tandem.json")],
                             capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        assert out.returncode != 0, text
        assert "p.json:3:" in text and "missing.pem" in text, text
        assert "p.json:5:" in text and "no PEM certificate in the CA bundle" in text, text
        assert "p.json:7:" in text and "apply to https URLs only" in text, text
        assert "p.json:9:" in text and "must be https://" in text, text
    finally:
        shutil.rmtree(root, ignore_errors=True)


try:
    t.finish()
finally:
    shutil.rmtree(KEYS, ignore_errors=True)
    shutil.rmtree(CERTS, ignore_errors=True)
