#!/usr/bin/python3
"""Replays the shared corpora against the real gateway binary.

    gateway_replay.py [VECTORS_DIR] [-v]      (TANDEM_BIN: the gateway)

A capture upstream records the raw bytes of every upstream connection. Each
vector's bytes go raw to the gateway's public listener, whose routes are:
`/admin` and below answered 403 by a `respond` route, everything else
proxied to the capture upstream unchanged.

Requests (llhttp 9.4.2 request fixtures, desync-guardian cases with a body
and a second request "GET /smuggled" added, see replay.dg_bytes):
  refused   the client gets 400 (501 for an unknown transfer coding; 505,
            413, 414, 431 where the fixture's error is about a version or a
            limit), the gateway closes the connection by itself, and nothing
            reaches the upstream beyond the messages the fixture completes
            before its error;
  accepted  the upstream receives exactly the requests the fixture
            completes, each well formed (re-parsed by h11 and by a strict
            splitter here, which must agree), with the same method, the same
            path once both are normalised (RFC 3986 §6.2.2), the same query
            and the same body.
Responses (llhttp 9.4.2 response fixtures) are served by the capture
upstream to a GET (HEAD where the fixture says skipBody):
  refused   the client gets 502 (or, when the error lies in a body whose
            head was already relayed, a cut-short response and a close) and
            the gateway drops the upstream connection;
  accepted  the client gets the fixture's status and body.

Case exclusions (and their reasons) are replay.py's EXCLUDED; an excluded
case must still be refused with nothing upstream. Ends with
"N passed, N failed".
"""
import os
import re
import socket
import sys
import threading
import time

import h11
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import replay  # noqa: E402
from harness import Gateway  # noqa: E402

OK_BODY = b"ok"


# ---- the capture upstream ----------------------------------------------------

class Record:
    """One upstream connection as seen by the capture upstream."""

    def __init__(self, cid):
        self.cid = cid
        self.data = bytearray()
        self.requests = []  # (method, target, headers, body) as h11 parsed them
        self.error = None
        self.base_data = self.base_req = 0  # where the current vector starts
        self.peer_closed = threading.Event()


class Capture:
    """Accepts upstream connections from the gateway. In "ok" mode every
    request is parsed with h11 and answered 200 "ok"; in "script" mode the
    connection gets the scripted bytes once a request head has arrived, then
    is closed when `close_after` is set."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.records = []
        self.mode = ("ok",)
        self.next_id = 0
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def reset(self, mode=("ok",)):
        with self.lock:
            self.records = []
            self.mode = mode

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def accept_loop(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.next_id += 1
                rec = Record(self.next_id)
            threading.Thread(target=self.serve, args=(s, rec), daemon=True).start()

    def attach(self, rec):
        """A pooled connection's bytes count for the vector being run now."""
        with self.lock:
            if rec not in self.records:
                rec.base_data, rec.base_req = len(rec.data), len(rec.requests)
                self.records.append(rec)
            return self.mode

    def serve(self, s, rec):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        cur = None
        scripted = None
        try:
            while True:
                data = s.recv(65536)
                mode = self.attach(rec)
                if not data:
                    rec.peer_closed.set()
                    return
                rec.data += data
                if mode[0] == "script":
                    # once per vector: a pooled connection serves several
                    if scripted is not mode and b"\r\n\r\n" in rec.data[rec.base_data:]:
                        scripted = mode
                        s.sendall(mode[1])
                        if mode[2]:
                            s.shutdown(socket.SHUT_WR)
                    continue
                if rec.error:
                    continue
                # h11 implements only the chunked coding; codings before it
                # are opaque to framing (the strict splitter sees them).
                conn.receive_data(TE_LIST.sub(rb"\1chunked", data))
                while True:
                    try:
                        ev = conn.next_event()
                    except h11.RemoteProtocolError as e:
                        rec.error = "h11: %s" % e
                        s.close()
                        rec.peer_closed.set()
                        return
                    if ev is h11.NEED_DATA or ev is h11.PAUSED:
                        break
                    if isinstance(ev, h11.Request):
                        cur = [ev.method.decode("latin-1"), ev.target.decode("latin-1"),
                               [(k.decode("latin-1"), v.decode("latin-1"))
                                for k, v in ev.headers], b""]
                    elif isinstance(ev, h11.Data):
                        cur[3] += ev.data
                    elif isinstance(ev, h11.EndOfMessage):
                        rec.requests.append(tuple(cur))
                        cur_method, cur = cur[0], None
                        s.sendall(conn.send(h11.Response(
                            status_code=200, headers=[("Content-Length", str(len(OK_BODY)))])))
                        if cur_method != "HEAD":
                            s.sendall(conn.send(h11.Data(data=OK_BODY)))
                        s.sendall(conn.send(h11.EndOfMessage()))
                        conn.start_next_cycle()
                    elif isinstance(ev, h11.ConnectionClosed):
                        break
        except OSError:
            rec.peer_closed.set()
        finally:
            try:
                s.close()
            except OSError:
                pass


# ---- a strict splitter for what reached the upstream --------------------------

TE_LIST = re.compile(rb"(?im)^(transfer-encoding: )[^\r\n]*, chunked(?=\r$)")
TCHAR = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def strict_split(data):
    """Splits raw upstream bytes into requests without any leniency: CRLF
    line ends only, no bare CR/LF/NUL, token names, one Content-Length or
    chunked. Returns ([(method, target, body)], error)."""
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return out, "incomplete head at %d" % pos
        lines = data[pos:end].split(b"\r\n")
        for ln in lines:
            if b"\r" in ln or b"\n" in ln or b"\0" in ln:
                return out, "bare CR/LF or NUL in head"
        m = re.match(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/1\.1$", lines[0])
        if not m:
            return out, "bad request line %r" % lines[0][:80]
        cl, te = [], []
        for ln in lines[1:]:
            name, colon, value = ln.partition(b":")
            if not colon or not TCHAR.match(name):
                return out, "bad field line %r" % ln[:80]
            if value[:1] not in (b" ", b"") or value != value.rstrip(b" \t") or \
                    value.lstrip(b" \t") != value[1:] and value[:1] == b" ":
                return out, "untidy field value %r" % ln[:80]
            if name.lower() == b"content-length":
                cl.append(value.strip())
            if name.lower() == b"transfer-encoding":
                te.append(value.strip())
        pos = end + 4
        body = b""
        if cl and te or len(cl) > 1 or len(te) > 1:
            return out, "ambiguous framing"
        if cl:
            if not cl[0].isdigit():
                return out, "bad Content-Length"
            n = int(cl[0])
            if pos + n > len(data):
                return out, "body cut short"
            body, pos = data[pos:pos + n], pos + n
        elif te:
            if not te[0].lower().endswith(b"chunked"):
                return out, "Transfer-Encoding not ending in chunked"
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0 or not re.match(rb"^[0-9a-fA-F]{1,16}$", data[pos:eol]):
                    return out, "bad chunk line"
                n = int(data[pos:eol], 16)
                pos = eol + 2
                if n == 0:
                    if data[pos:pos + 2] != b"\r\n":
                        return out, "trailers or bad last chunk"
                    pos += 2
                    break
                if data[pos + n:pos + n + 2] != b"\r\n":
                    return out, "chunk data not followed by CRLF"
                body += data[pos:pos + n]
                pos += n + 2
        out.append((m.group(1).decode(), m.group(2).decode("latin-1"), body))
    return out, None


# ---- comparing meaning ---------------------------------------------------------

UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def norm_path(target):
    """The path and query of a request-target, normalised the RFC 3986 way:
    escapes of unreserved characters decoded, other escapes upper-cased, raw
    non-ASCII percent-encoded, dot segments removed, empty segments merged."""
    t = target.encode("latin-1") if isinstance(target, str) else target
    if not t.startswith(b"/"):
        m = re.match(rb"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*(.*)$", t)
        t = m.group(1) if m else t
        if not t.startswith(b"/"):
            t = b"/" + t
    path, _, query = t.partition(b"?")

    def pct(s):
        o = bytearray()
        i = 0
        while i < len(s):
            c = s[i]
            if c == 0x25 and i + 2 < len(s) + 0 and re.match(rb"[0-9A-Fa-f]{2}", s[i + 1:i + 3]):
                v = int(s[i + 1:i + 3], 16)
                o += bytes([v]) if v in UNRESERVED else b"%%%02X" % v
                i += 3
                continue
            o += b"%%%02X" % c if c >= 0x80 else bytes([c])
            i += 1
        return bytes(o)

    segs = []
    for seg in pct(path).split(b"/"):
        if seg in (b"", b"."):
            continue
        if seg == b"..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    return b"/" + b"/".join(segs), pct(query)


# ---- the client side -------------------------------------------------------------

def read_responses(data, methods):
    """Parses the gateway's responses; returns [(status, headers, body,
    complete)]. `methods` tells which answered a HEAD."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            out.append((0, {}, b"", False))
            break
        lines = data[pos:end].split(b"\r\n")
        m = re.match(rb"^HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            out.append((0, {}, b"", False))
            break
        st = int(m.group(1))
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        pos = end + 4
        head_req = i < len(methods) and methods[i] == "HEAD"
        body, complete = b"", True
        if st == 101:
            out.append((st, hdrs, b"", True))
            break
        if st < 200:
            continue
        if head_req or st in (204, 304):
            pass
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            body = data[pos:pos + n]
            complete = len(body) == n
            pos += n
        elif "chunked" in hdrs.get("transfer-encoding", ""):
            complete = False
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    break
                n = int(data[pos:eol].split(b";")[0] or b"0", 16)
                pos = eol + 2
                if n == 0:
                    complete = data[pos:pos + 2] == b"\r\n"
                    pos += 2
                    break
                body += data[pos:pos + n]
                pos += n + 2
        else:
            body, pos = data[pos:], len(data)
        out.append((st, hdrs, body, complete))
        i += 1
    return out


def exchange(port, data, half_close, wait=3.0):
    """Sends raw bytes; returns (bytes read, closed by the gateway itself)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        closed = False
        end = time.time() + wait
        while time.time() < end:
            try:
                s.settimeout(max(0.01, end - time.time()))
                b = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not b:
                closed = True
                break
            chunks.append(b)
        if not closed and not half_close:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
            except OSError:
                pass
        return b"".join(chunks), closed
    finally:
        s.close()


# ---- llhttp fixtures with their logs ---------------------------------------------

def unescape_span(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            e = s[i + 1]
            if e == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "f": b"\f", '"': b'"',
                    "\\": b"\\"}.get(e, e.encode())
            i += 2
            continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def llhttp_messages(log):
    """The messages the fixture's parser completed: [{method, url, status,
    body}] and whether the error (if any) came only at finish."""
    msgs, cur = [], None
    for line in log:
        m = re.match(r'^off=\S+ len=\d+ span\[(\w+)\]=(?:"(.*)"|(lf|cr|crlf))$', line)
        if "message begin" in line:
            cur = {"method": b"", "url": b"", "body": b"", "status": None}
        elif m and cur is not None and m.group(1) in ("method", "url", "body"):
            cur[m.group(1)] += (unescape_span(m.group(2)) if m.group(2) is not None else
                                {"lf": b"\n", "cr": b"\r", "crlf": b"\r\n"}[m.group(3)])
        elif "headers complete" in line and cur is not None:
            sm = re.search(r"status=(\d+)", line)
            if sm:
                cur["status"] = int(sm.group(1))
            fm = re.search(r"flags=([0-9a-f]+)", line)
            lm = re.search(r"content_length=(\d+)", line)
            # llhttp's F_CHUNKED is 0x8, F_CONTENT_LENGTH 0x20
            flags = int(fm.group(1), 16) if fm else 0
            cur["framed"] = bool(flags & 0x8) or (bool(flags & 0x20) and lm and
                                                   int(lm.group(1)) > 0)
        elif "message complete" in line and cur is not None:
            msgs.append(cur)
            cur = None
    only_finish = not any(re.search(r" error code=(?!2[12] )", e) for e in log)
    return msgs, cur, only_finish


def llhttp_cases(path):
    """replay.llhttp_cases with quotes unescaped as in the log, narrowed by
    TEST_ONLY ("file.md: heading" substring) when set."""
    only = os.environ.get("TEST_ONLY")
    for case in replay.llhttp_cases(path, quotes=True):
        if not only or only in "%s: %s" % (os.path.basename(path), case[0]):
            yield case


REQ_LINE = re.compile(rb"(^|\r\n)([A-Z][A-Z0-9_-]* \S+ HTTP/1\.1\r\n)")


def add_host(data):
    """The llhttp fixtures test framing and mostly omit Host, which the
    gateway requires of HTTP/1.1 (RFC 9112 §3.2). One is added after each
    HTTP/1.1 request line of a fixture that has none anywhere; nothing else
    changes."""
    if re.search(rb"(?i)\r\nhost:", data):
        return data
    return REQ_LINE.sub(lambda m: m.group(1) + m.group(2) + b"Host: example.com\r\n", data)


# ---- judging -------------------------------------------------------------------

class Tally(replay.Tally):
    pass


def upstream_view(cap):
    """(requests as h11 saw them, error) over every upstream connection of
    the vector; the strict splitter must agree with h11."""
    reqs = []
    for rec in cap.snapshot():
        if rec.error:
            return None, rec.error
        strict, err = strict_split(bytes(rec.data[rec.base_data:]))
        if err:
            return None, "strict re-parse: " + err
        got = rec.requests[rec.base_req:]
        if len(strict) != len(got):
            return None, "h11 found %d requests, strict %d" % (len(got), len(strict))
        for (m1, t1, b1), r in zip(strict, got):
            if (m1, t1, b1) != (r[0], r[1], r[3]):
                return None, "h11 and strict re-parse disagree"
        reqs += got
    return reqs, None


def wait_quiet(cap, settle=0.05):
    """Lets bytes in flight to the capture upstream land."""
    time.sleep(settle)


# Cases the parser-level replay (replay.py) runs without the Host rule and
# that meet, through the real gateway, a policy of their own; each must still
# be refused with nothing upstream.
GATEWAY_EXCLUDED = {
    "request/sample.md: curl GET":
        "Host '0.0.0.0=5000': the gateway routes on Host and accepts only letters, digits "
        "and -._~ in a name (no sub-delims), so no backend can read another name out of it",
    "request/sample.md: Firefox GET": "Host '0.0.0.0=5000' (see curl GET)",
    "request/connection.md: Multiple tokens with folding and LWS":
        "Upgrade: WebSocket without Sec-WebSocket-Key and Version 13: the gateway checks "
        "the handshake (RFC 6455 4.1) and refuses it before anything is forwarded",
    "request/connection.md: Upgrade GET request":
        "a draft-76 WebSocket handshake (Sec-WebSocket-Key1/Key2, no Sec-WebSocket-Key): "
        "refused as above",
    "request/content-length.md: Content-Length reset when no body is received":
        "the fixture's skipBody makes llhttp skip a declared body, as for a response to "
        "HEAD; on the wire the 123 bytes are the body, which never arrives",
}

# Excluded cases whose declared body never comes: the gateway waits for it
# (request_timeout_ms), so the client ends its side.
WAITS_FOR_BODY = {"request/content-length.md: Content-Length reset when no body is received"}

ALLOWED_REFUSALS = (400, 501, 505, 413, 414, 431)


def judge_refused(tally, corpus, label, gw, cap, data, before=(), half_close=False,
                  statuses=ALLOWED_REFUSALS):
    cap.reset()
    out, closed = exchange(gw.port, data, half_close)
    wait_quiet(cap)
    resp = read_responses(out, [])
    reqs, err = upstream_view(cap)
    if err:
        return tally.add(corpus, label, False, err)
    if len(reqs) != len(before):
        return tally.add(corpus, label, False, "%d request(s) reached the upstream, %d allowed" %
                         (len(reqs), len(before)))
    if not half_close and not closed:
        return tally.add(corpus, label, False, "connection left open after a refusal")
    if [r[0] for r in resp[:len(before)]] != [200] * len(before):
        return tally.add(corpus, label, False, "messages before the error answered %s" %
                         [r[0] for r in resp])
    answers = [r for r in resp[len(before):]]
    if not half_close and not before:
        if not answers or answers[0][0] not in statuses:
            return tally.add(corpus, label, False, "refusal answered %s" %
                             ([r[0] for r in resp] or "nothing"))
    elif answers and answers[0][0] not in statuses:
        return tally.add(corpus, label, False, "refusal answered %s" % [r[0] for r in resp])
    tally.add(corpus, label, True, "refused %s" % [r[0] for r in resp])


def judge_accepted(tally, corpus, label, gw, cap, data, expect):
    """expect: [(method, target, body)] the upstream must receive."""
    cap.reset()
    out, _ = exchange(gw.port, data, True)
    wait_quiet(cap)
    resp = read_responses(out, [e[0] for e in expect])
    reqs, err = upstream_view(cap)
    if err:
        return tally.add(corpus, label, False, err)
    if len(reqs) != len(expect):
        return tally.add(corpus, label, False, "%d request(s) upstream, expected %d; client got %s"
                         % (len(reqs), len(expect), [r[0] for r in resp]))
    for (method, target, body), got in zip(expect, reqs):
        if got[0] != method:
            return tally.add(corpus, label, False, "method %s became %s" % (method, got[0]))
        if norm_path(got[1]) != norm_path(target):
            return tally.add(corpus, label, False, "target %r became %r" % (target, got[1]))
        if got[3] != body:
            return tally.add(corpus, label, False, "body %r became %r" % (body[:40], got[3][:40]))
        if norm_path(got[1])[0].lower().startswith(b"/admin"):
            return tally.add(corpus, label, False, "the upstream saw %r" % got[1])
    statuses = [r[0] for r in resp[:len(expect)]]
    if statuses != [200] * len(expect):
        return tally.add(corpus, label, False, "client got %s" % statuses)
    tally.add(corpus, label, True, "forwarded %d" % len(expect))


def run_llhttp_requests(gw, cap, vectors, tally):
    d = os.path.join(vectors, "llhttp", "request")
    corpus = "llhttp/request"
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".md"):
            continue
        for name, meta, data, err, log in llhttp_cases(os.path.join(d, fn)):
            label = "%s: %s" % (fn, name)
            typ = meta.get("type", "request")
            if "lenient" in typ:
                tally.skip(corpus, label, "lenient flags")
                continue
            data = add_host(data)
            msgs, partial, only_finish = llhttp_messages(log)
            key = "request/%s: %s" % (fn, name)
            why = replay.EXCLUDED.get(key) or GATEWAY_EXCLUDED.get(key)
            if why:
                judge_refused(tally, corpus, label, gw, cap, data,
                              half_close=key in WAITS_FOR_BODY)
                if tally.failures and tally.failures[-1].startswith(corpus + ": " + label):
                    continue
                tally.counts[corpus][0] -= 1
                tally.skip(corpus, label, why)
                continue
            before = [(m["method"].decode(), m["url"].decode("latin-1"), m["body"])
                      for m in msgs]
            if err:
                judge_refused(tally, corpus, label, gw, cap, data, before,
                              half_close=only_finish)
            else:
                judge_accepted(tally, corpus, label, gw, cap, data, before)


def run_desync(gw, cap, vectors, tally):
    d = os.path.join(vectors, "desync-guardian")
    corpus = "desync-guardian"
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".yaml"):
            continue
        for case in yaml.safe_load(open(os.path.join(d, fn), encoding="utf-8")) or []:
            label = "%s: %s" % (fn, case["name"])
            tier = case["expected"]["tier"]
            data = replay.dg_bytes(case)
            if label in replay.EXCLUDED or tier in ("Severe", "Ambiguous"):
                statuses = (400, 501) if tier != "Compliant" else ALLOWED_REFUSALS
                judge_refused(tally, corpus, label, gw, cap, data, statuses=statuses)
                if label in replay.EXCLUDED and not (
                        tally.failures and tally.failures[-1].startswith(corpus + ": " + label)):
                    tally.counts[corpus][0] -= 1
                    tally.skip(corpus, label, replay.EXCLUDED[label])
                continue
            # The body the sender means (as dg_bytes builds it), then /smuggled.
            head, _, rest = data.partition(b"\r\n\r\n")
            body = rest[:len(rest) - len(replay.SMUGGLED)]
            if body.startswith(b"5\r\nhello"):
                body = b"hello"
            uri = case["uri"]
            uri = "".join(c if ord(c) < 256 else c.encode("utf-8").decode("latin-1")
                          for c in str(uri))
            expect = [(str(case["method"]), uri, body),
                      ("GET", "/smuggled", b"")]
            if tier == "Acceptable":
                # Either refused or forwarded with the same meaning.
                cap.reset()
                out, _ = exchange(gw.port, data, True)
                resp = read_responses(out, [])
                if resp and resp[0][0] in ALLOWED_REFUSALS:
                    wait_quiet(cap)
                    reqs, err = upstream_view(cap)
                    tally.add(corpus, label, not err and not reqs,
                              err or "refused, yet %d request(s) upstream" % len(reqs or []))
                    continue
            judge_accepted(tally, corpus, label, gw, cap, data, expect)


def run_llhttp_responses(gw, cap, vectors, tally):
    d = os.path.join(vectors, "llhttp", "response")
    corpus = "llhttp/response"
    n = 0
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".md"):
            continue
        for name, meta, data, err, log in llhttp_cases(os.path.join(d, fn)):
            label = "%s: %s" % (fn, name)
            typ = meta.get("type", "response")
            if "lenient" in typ:
                tally.skip(corpus, label, "lenient flags")
                continue
            msgs, partial, only_finish = llhttp_messages(log)
            key = "response/%s: %s" % (fn, name)
            # The message the client must get: the first final response (an
            # interim 1xx other than 101 is not relayed).
            seq = [(m, True) for m in msgs] + ([(partial, False)] if partial else [])
            judged = next(((m, c) for m, c in seq
                           if m["status"] is None or not 100 <= m["status"] < 200
                           or m["status"] == 101), (None, False))
            msg, complete_in_log = judged
            excluded = key in replay.EXCLUDED
            # Refused: the fixture errs before or inside the judged message.
            refuse = excluded or (err and not complete_in_log)
            # The upstream closes after its bytes when the judged message
            # needs the end of input (read until close, cut short, or an
            # error found only at finish); otherwise it stays open, so that
            # a dropped connection is the gateway's doing.
            close_after = not complete_in_log and (not err or only_finish)
            cap.reset(("script", data, close_after))
            method = "HEAD" if meta.get("skipBody") else "GET"
            n += 1
            # A 101 answers only a request that asked to upgrade. Not to
            # websocket: the gateway checks that handshake's key and accept
            # (RFC 6455), which these fixtures' 101s do not carry.
            upgrade = "Connection: upgrade\r\nUpgrade: example/1\r\n" if (
                msg and msg["status"] == 101) else "Connection: close\r\n"
            req = ("%s /r/%d HTTP/1.1\r\nHost: example.com\r\n%s\r\n"
                   % (method, n, upgrade)).encode()
            out, _ = exchange(gw.port, req, False, wait=5.0)
            resp = read_responses(out, [method])
            if tally.verbose:
                print("%s\n  sent upstream: %r\n  client got: %r" % (label, data, out))
            recs = cap.snapshot()
            if not recs:
                tally.add(corpus, label, False, "nothing reached the upstream")
                continue
            # After an error, or bytes after the response, the connection
            # must be dropped, never pooled.
            must_drop = refuse or err or (msg is not None and seq[-1][0] is not msg)
            if must_drop and not all(r.peer_closed.wait(3.0) for r in recs):
                tally.add(corpus, label, False, "upstream connection kept after a bad response")
                continue
            if refuse:
                ok = not resp or resp[0][0] == 502 or not resp[0][3]
                if ok and excluded:
                    tally.skip(corpus, label, replay.EXCLUDED[key])
                    continue
                tally.add(corpus, label, bool(ok), "client got %s" %
                          ([(r[0], r[3]) for r in resp] or "nothing"))
                continue
            if not resp:
                tally.add(corpus, label, False, "client got nothing")
                continue
            st, _, body, complete = resp[0]
            if st == 502 and msg and not complete_in_log and msg.get("framed"):
                # A framed body the upstream cut short, before any byte of
                # it came: nothing was relayed yet, so 502 is the answer.
                tally.add(corpus, label, True, "cut short upstream: 502")
                continue
            want = msg["status"] if msg else None
            bad = None
            if st != want:
                bad = "status %s, fixture %s" % (st, want)
            elif method != "HEAD" and complete_in_log and body != msg["body"]:
                bad = "body %r, fixture %r" % (body[:40], msg["body"][:40])
            elif method != "HEAD" and not msg["body"].startswith(body) and \
                    not body.startswith(msg["body"]):
                bad = "body %r, fixture %r" % (body[:40], msg["body"][:40])
            elif complete_in_log and not complete:
                bad = "response cut short"
            tally.add(corpus, label, bad is None, bad or "relayed %d" % st)


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    vectors = args[0] if args else os.path.join(os.environ.get("TANDEM_SRC", "."), "..",
                                                "shared", "vectors")
    if not os.path.isdir(os.path.join(vectors, "llhttp")):
        print("vectors not found under %s: skipped" % vectors)
        print("0 passed, 0 failed")
        return 77
    cap = Capture()
    routes = [
        {"name": "deny-admin", "match": {"path_prefix": "/admin"}, "priority": 10,
         "respond": {"status": 403, "body": "denied\n"}},
        {"name": "all", "match": {"path": "/*rest"}, "upstream": "cap"},
    ]
    gw = Gateway(routes, {"cap": {"targets": [{"address": "127.0.0.1:%d" % cap.port}],
                                  "retries": 0,
                                  # every malformed response counts as a failure:
                                  # no ejection, so each fixture meets the target
                                  "health": {"passive": {"failures": 0}}}},
                 listener={"header_timeout_ms": 2000})
    tally = Tally("-v" in sys.argv)
    try:
        run_llhttp_requests(gw, cap, vectors, tally)
        run_desync(gw, cap, vectors, tally)
        run_llhttp_responses(gw, cap, vectors, tally)
    finally:
        code = gw.stop()
        log = gw.log()
        gw.close()
    if code != 0:
        tally.add("gateway", "clean exit", False, "exit code %s; log tail: %s" %
                  (code, log[-2000:]))
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
