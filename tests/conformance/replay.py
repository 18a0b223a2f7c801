#!/usr/bin/python3
"""Replays the shared request corpora against the wire module's driver.

    replay.py DRIVER VECTORS_DIR [-v]

Corpora (see VECTORS_DIR/README.md):
  llhttp/request/*.md, llhttp/response/*.md  llhttp 9.4.2 fixtures: a case
      whose log ends in an error must be refused; any other must not be.
  desync-guardian/*.yaml  classified requests: Severe and Ambiguous must be
      refused with 400 (nothing forwarded), Compliant forwarded with the same
      meaning, Acceptable either way (but well-formed if forwarded).

Every case runs twice, fed whole and fed one byte at a time; both runs must
give the same verdict. Every forwarded message is re-parsed strictly with
h11 and must be exactly the one message the driver says it forwards.
Ends with "N passed, N failed" and exits non-zero on failure.
"""
import json
import os
import re
import subprocess
import sys

import h11
import yaml

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "host"}

# llhttp cases whose metadata asks for something other than the strict
# parser are skipped by rule (vectors/README.md): every "type" with
# "lenient" in it. The cases below are excluded one by one, each with the
# gateway policy it meets instead (gateway/src/http/README.md); in each the
# gateway refuses what the fixture parses, never the other way round.
NOT_HTTP = "not HTTP/1.x: the gateway proxies HTTP/1.0 and 1.1 only"
EXCLUDED = {
    "request/method.md: SOURCE request with ICE": NOT_HTTP,
    "request/method.md: OPTIONS request with RTSP": NOT_HTTP,
    "request/method.md: ANNOUNCE request with RTSP": NOT_HTTP,
    "request/sample.md: No HTTP version": NOT_HTTP + " (HTTP/0.9)",
    "response/sample.md: HTTP version 0.9": NOT_HTTP + " (HTTP/0.9)",
    "response/sample.md: RTSP response": NOT_HTTP,
    "response/sample.md: ICE response": NOT_HTTP,
    "request/method.md: CONNECT request": "CONNECT refused: a reverse proxy, not a tunnel",
    "request/method.md: CONNECT request with CAPS": "CONNECT refused: a reverse proxy",
    "request/method.md: CONNECT with body": "CONNECT refused: a reverse proxy",
    "request/uri.md: Underscore in hostname": "CONNECT refused: a reverse proxy",
    "request/method.md: M-SEARCH request":
        "asterisk-form only with OPTIONS (RFC 9112 3.2.4); SSDP is not proxied",
    "request/method.md: QUERY request":
        "the method table is llhttp 8.1.0's, which predates QUERY (with llhttp 9 "
        "too): answered 501 Not Implemented",
    "request/content-length.md: Funky `Content-Length` with body":
        "a body on GET/HEAD is refused (servers that ignore it desync)",
    "request/transfer-encoding.md: POST with `chunked` as last transfer-encoding":
        "'#' in the request-target is refused (a fragment is never sent)",
    "request/transfer-encoding.md: "
    "POST with `chunked` as last transfer-encoding (multiple headers)":
        "'#' in the request-target is refused (a fragment is never sent)",
    "request/uri.md: Fragment in URI": "'#' in the request-target is refused",
    "request/uri.md: Quotes in URI": "'\"' in the path is refused (not a pchar)",
    "request/uri.md: `host:port` and basic auth":
        "userinfo in an absolute-form target is refused",
    # desync-guardian
    "more-compliant-tests.yaml: TE with custom parameters OK":
        "parameters on a transfer coding are refused: chunked has none "
        "(RFC 9112 7) and peers disagree whether 'chunked;x' is chunked",
    "rfc-compliant.yaml: Transfer-Encoding with a param: chunked;custom_param":
        "parameters on a transfer coding are refused (see above)",
    "rfc-compliant.yaml: Compliant URL":
        "'#', '\\', '\"', '<>', '[]', '{}', '|', '^' and '`' in the path are refused",
    "rfc-compliant.yaml: Empty URI": "an empty request-target is not HTTP/1.1",
    "rfc-compliant.yaml: International in URI":
        "raw non-ASCII in the request-target is refused (RFC 9112 3.2: it is sent "
        "percent-encoded); a listener's path_policy.raw_utf8 \"encode\" re-encodes it",
}


def llhttp_unescape(text):
    """The escapes llhttp's md-test applies to an ```http block; the rest of
    the text is sent as UTF-8."""
    out = b""
    pos = 0
    for m in re.finditer(r"\\(r|n|t|f|x[0-9a-fA-F]{2}|[0-7]{1,3})", text):
        out += text[pos:m.start()].encode("utf-8")
        e = m.group(1)
        if e in "rntf":
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "f": b"\f"}[e]
        elif e[0] == "x":
            out += bytes([int(e[1:], 16)])
        else:
            out += bytes([int(e, 8) & 0xff])
        pos = m.end()
    return out + text[pos:].encode("utf-8")


def llhttp_cases(path, quotes=False):
    """Yields (name, meta, raw bytes, expects_error, log lines) per case of
    one .md file. With `quotes`, \\" in a block is a quote, as in the log's
    spans (the gateway-level replay compares with the log)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    heading, meta, i = "", None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        m = re.match(r"<!-- meta=(.*) -->", line)
        if m:
            meta = json.loads(m.group(1))
        if line.strip() == "```http":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            # A line ending in a backslash continues without a CRLF.
            raw = "\r\n".join(lines[i + 1:j]).replace("\\\r\n", "")
            data = llhttp_unescape(raw)
            if quotes:
                data = data.replace(b'\\"', b'"')
            k = j + 1
            while lines[k].strip() != "```log":
                k += 1
            m2 = k + 1
            log = []
            while lines[m2].strip() != "```":
                log.append(lines[m2])
                m2 += 1
            # Pauses (codes 21, 22) are not errors; a failed llhttp_finish is.
            err = any(re.search(r" error code=(?!2[12] )", entry) or
                      re.search(r"finish=2", entry) for entry in log)
            yield heading, meta or {}, data, err, log
            meta, i = None, m2
        i += 1


def run_driver(driver, data, args):
    out = []
    for split in ([], ["--split", "1"]):
        p = subprocess.run([driver] + args + split, input=data, capture_output=True,
                           timeout=30)
        if p.returncode != 0:
            raise RuntimeError("driver exit %d: %s" % (p.returncode, p.stderr.decode()))
        out.append(json.loads(p.stdout.decode("latin-1")))
    return out


def undated(wire):
    """The forwarded text without its Date value, which two runs of the
    driver a second apart write differently."""
    if wire is None:
        return None
    return re.sub(r"(?im)^(date: )[^\r\n]*", r"\1-", wire)


def verdict_key(v):
    return (v["verdict"], v.get("status"), len(v["messages"]),
            [undated(m.get("forward")) for m in v["messages"]])


def check_forward(msg, response=False):
    """Re-parses what the gateway writes for one message; returns an error or None."""
    wire = msg.get("forward")
    if wire is None:
        return "nothing written for an accepted message"
    data = wire.encode("latin-1")
    # h11 implements only the chunked coding; other codings before it are
    # opaque to framing, so they are left out of the re-parse.
    head, sep, rest = data.partition(b"\r\n\r\n")
    head = re.sub(rb"(?im)^(transfer-encoding: )[^\r\n]*, chunked(?=\r?$)", rb"\1chunked",
                  head)
    data = head + sep + rest
    role = h11.CLIENT if response else h11.SERVER
    conn = h11.Connection(our_role=role)
    if response:
        hdrs = [("Host", "x")]
        if msg["status"] == 101:
            hdrs += [("Connection", "upgrade"), ("Upgrade", "websocket")]
        conn.send(h11.Request(method="GET", target="/", headers=hdrs))
    conn.receive_data(data)
    events, body = [], b""
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                break
            events.append(ev)
            if isinstance(ev, h11.Data):
                body += ev.data
            if isinstance(ev, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError as e:
        return "re-parse failed: %s" % e
    heads = [e for e in events if isinstance(e, (h11.Request, h11.Response,
                                                 h11.InformationalResponse))]
    if len(heads) != 1:
        return "re-parse found %d heads" % len(heads)
    if msg["framing"] != "none" and not any(isinstance(e, h11.EndOfMessage) for e in events):
        if not (response and msg["framing"] == "close"):
            return "re-parsed body did not end"
    if body != msg["body"].encode("latin-1") and heads[0].__class__ is not h11.InformationalResponse:
        if not (response and msg["status"] in (204, 304)):
            return "re-parsed body differs"
    if not response:
        if heads[0].method.decode() != msg["method"]:
            return "method changed"
        if heads[0].target.decode("latin-1") != msg["canonical"]:
            return "target is not the canonical path"
    return None


class Tally:
    def __init__(self, verbose):
        self.counts = {}
        self.failures = []
        self.verbose = verbose

    def add(self, corpus, name, ok, why=""):
        c = self.counts.setdefault(corpus, [0, 0, 0, 0])
        c[0 if ok else 1] += 1
        if not ok:
            self.failures.append("%s: %s: %s" % (corpus, name, why))
        elif self.verbose:
            print("ok   %s: %s %s" % (corpus, name, why))

    def skip(self, corpus, name, why):
        c = self.counts.setdefault(corpus, [0, 0, 0, 0])
        c[3 if why == "lenient flags" else 2] += 1
        if self.verbose:
            print("skip %s: %s (%s)" % (corpus, name, why))


def excluded(tally, corpus, label, why, v):
    """An excluded case is one the gateway refuses by policy: it must still
    be refused, with nothing forwarded."""
    if v["verdict"] == "refused" and not v["messages"]:
        tally.skip(corpus, label, why)
    else:
        tally.add(corpus, label, False, "excluded as refused by policy, but %s" % v["verdict"])


def judge_llhttp(driver, vectors, tally):
    for kind in ("request", "response"):
        d = os.path.join(vectors, "llhttp", kind)
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".md"):
                continue
            for name, meta, data, err, _ in llhttp_cases(os.path.join(d, fn)):
                corpus = "llhttp/" + kind
                label = "%s: %s" % (fn, name)
                typ = meta.get("type", kind)
                if "lenient" in typ:
                    tally.skip(corpus, label, "lenient flags")
                    continue
                key = "%s/%s: %s" % (kind, fn, name)
                args = []
                if kind == "response":
                    args.append("--response")
                    if meta.get("skipBody"):
                        args.append("--head")
                else:
                    # The fixtures test framing and omit Host; the Host rule
                    # (RFC 9112 §3.2) has its own unit tests.
                    args.append("--no-host-check")
                if typ.endswith("-finish"):
                    args.append("--finish")
                whole, split = run_driver(driver, data, args)
                if key in EXCLUDED:
                    excluded(tally, corpus, label, EXCLUDED[key], whole)
                    continue
                if verdict_key(whole) != verdict_key(split):
                    tally.add(corpus, label, False, "whole %s / bytewise %s" %
                              (whole["verdict"], split["verdict"]))
                    continue
                v = whole
                if err:
                    ok = v["verdict"] == "refused"
                    tally.add(corpus, label, ok, "expected refusal, got %s" % v["verdict"])
                    continue
                if v["verdict"] == "refused":
                    why = "refused %s (%s: %s)" % (v["status"], v["stage"], v["reason"])
                    tally.add(corpus, label, False, why)
                    continue
                bad = None
                for m in v["messages"]:
                    bad = bad or check_forward(m, kind == "response")
                tally.add(corpus, label, bad is None, bad or v["verdict"])


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


def dg_bytes(case):
    """The case's head, then the body its sender means (chunked when it says
    Transfer-Encoding, else Content-Length bytes), then a second request: a
    gateway that frames the body differently forwards "/smuggled" inside or
    after it, where the re-parse sees it."""
    def b(x):
        # "\xNN" escapes in the YAML are single bytes; other characters UTF-8.
        return b"".join(bytes([ord(c)]) if ord(c) < 256 else c.encode("utf-8")
                        for c in str(x))
    version = case.get("version", "")
    line = b(case["method"]) + b" " + b(case["uri"])
    if version:
        line += b" " + b(version)
    out = line + b"\r\n"
    headers = case.get("headers") or []
    if not any(str(h["name"]).lower() == "host" for h in headers):
        out += b"Host: example.com\r\n"
    body = b""
    for h in headers:
        out += b(h["name"]) + b": " + b(h["value"]) + b"\r\n"
        name, value = str(h["name"]).lower(), str(h["value"]).strip(" \t")
        if name == "transfer-encoding":
            body = b"5\r\nhello\r\n0\r\n\r\n"
        elif name == "content-length" and value.isdigit() and not body:
            body = b"x" * min(int(value), 4 << 20)
    return out + b"\r\n" + body + SMUGGLED


def judge_desync(driver, vectors, tally):
    d = os.path.join(vectors, "desync-guardian")
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".yaml"):
            continue
        for case in yaml.safe_load(open(os.path.join(d, fn), encoding="utf-8")) or []:
            corpus = "desync-guardian"
            label = "%s: %s" % (fn, case["name"])
            tier = case["expected"]["tier"]
            data = dg_bytes(case)
            whole, split = run_driver(driver, data, [])
            if label in EXCLUDED:
                excluded(tally, corpus, label, EXCLUDED[label], whole)
                continue
            if verdict_key(whole) != verdict_key(split):
                tally.add(corpus, label, False, "whole %s / bytewise %s" %
                          (whole["verdict"], split["verdict"]))
                continue
            v = whole
            if tier in ("Severe", "Ambiguous"):
                ok = v["verdict"] == "refused" and not v["messages"] and v["status"] in (400, 501)
                tally.add(corpus, label, ok, "%s: got %s %s with %d forwarded" %
                          (tier, v["verdict"], v.get("status"), len(v["messages"])))
                continue
            if v["verdict"] == "refused" and tier == "Acceptable":
                tally.add(corpus, label, v["status"] in (400, 501, 505), "refused (allowed)")
                continue
            if v["verdict"] == "refused":
                tally.add(corpus, label, False, "Compliant refused: %s %s" %
                          (v["status"], v["reason"]))
                continue
            if not v["messages"]:
                tally.add(corpus, label, False, "nothing forwarded")
                continue
            bad = None
            first = v["messages"][0]
            if first["method"] != str(case["method"]):
                bad = "method changed"
            fwd_head = first["forward"].split("\r\n\r\n", 1)[0].lower()
            for h in case.get("headers") or []:
                n = str(h["name"]).lower()
                if n in HOP_BY_HOP or n.startswith("proxy-") or n.startswith("x-forwarded"):
                    continue
                want = ("%s: %s" % (n, str(h["value"]).strip(" \t"))).lower()
                if want not in fwd_head:
                    bad = bad or "header %s not forwarded as sent" % n
            for m in v["messages"]:
                bad = bad or check_forward(m)
            tally.add(corpus, label, bad is None, bad or tier)


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    if len(args) != 2:
        print(__doc__)
        return 2
    driver, vectors = args
    if not os.path.isdir(os.path.join(vectors, "llhttp")):
        print("vectors not found under %s: skipped" % vectors)
        print("0 passed, 0 failed")
        return 77
    tally = Tally("-v" in sys.argv)
    judge_llhttp(driver, vectors, tally)
    judge_desync(driver, vectors, tally)
    for f in tally.failures:
        print("FAIL " + f)
    passed = failed = 0
    for corpus, (p, f, x, s) in sorted(tally.counts.items()):
        print("%-22s %4d passed, %3d failed, %3d refused by listed policy, %3d lenient skipped" %
              (corpus, p, f, x, s))
        passed += p
        failed += f
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
