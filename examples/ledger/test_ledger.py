"""The ledger example through its real binary: accounts, debits and credits,
overdrafts refused, Idempotency-Key replays byte for byte and applies once,
bounds on heads and bodies, fault injection, and a kill -9 in the middle of
a run of changes after which nothing is lost or applied twice."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TANDEM_SRC", os.getcwd()), "tests", "integration"))
from harness import TestRun, free_port  # noqa: E402

BIN = os.environ.get("LEDGER_BIN", "build/examples/ledger/tandem-ledger")
SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))

run = TestRun("ledger")


class Ledger:
    def __init__(self, db, *extra):
        self.db = db
        self.port = free_port()
        self.proc = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{self.port}", "--db", db, "--schedulers", "2", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.time() + 10 * SCALE
        while time.time() < end:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError("tandem-ledger did not come up: " + self.proc.stderr.read().decode())

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SCALE)

    def request(self, method, path, body=None, key=None, conn=None):
        c = conn or self.conn()
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
        if conn is None:
            c.close()
        return r.status, raw

    def get(self, path):
        st, raw = self.request("GET", path)
        return st, json.loads(raw) if raw else None

    def post(self, path, body, key=None):
        st, raw = self.request("POST", path, body, key)
        return st, json.loads(raw) if raw else None

    def raw(self, data, timeout=10):
        """Sends bytes, returns every byte of the answer up to the close."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout * SCALE) as s:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10 * SCALE)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        assert rc == 0, f"tandem-ledger exited {rc} on SIGTERM: {err}"
        assert "runtime error" not in err and "Sanitizer" not in err, err

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


def keyed_post(path, body, key):
    b = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {key}\r\nContent-Length: {len(b)}\r\nConnection: close\r\n\r\n"
            ).encode() + b


def entries(lg, acct):
    st, doc = lg.get(f"/accounts/{acct}/entries")
    assert st == 200, st
    return doc["entries"]


def check_books(lg):
    """Every account's balance is the sum of its entries, and the last
    entry's running balance."""
    st, doc = lg.get("/accounts")
    assert st == 200
    for a in doc["accounts"]:
        es = entries(lg, a["id"])
        assert sum(e["amount"] for e in es) == a["balance"], (a, es)
        assert es[-1]["balance"] == a["balance"], (a, es[-1])
        st, one = lg.get(f"/accounts/{a['id']}")
        assert st == 200 and one["balance"] == a["balance"], (one, a)
    return doc["accounts"]


tmp = tempfile.mkdtemp(prefix="ledger-test-")


@run.case
def create_debit_credit_and_balances():
    lg = Ledger(os.path.join(tmp, "basic.db"))
    try:
        st, doc = lg.post("/accounts", {"id": "alice", "balance": 100})
        assert st == 201 and doc == {"id": "alice", "balance": 100, "entry": doc["entry"]}, doc
        assert doc["entry"]["amount"] == 100
        assert lg.post("/accounts", {"id": "bob"})[0] == 201
        st, doc = lg.post("/accounts", {"id": "alice", "balance": 5})
        assert st == 409 and doc["error"] == "account_exists", doc
        st, doc = lg.post("/accounts/alice/debit", {"amount": 30, "ref": "t1"})
        assert st == 200 and doc["balance"] == 70 and doc["entry"]["amount"] == -30, doc
        assert doc["entry"]["ref"] == "t1"
        st, doc = lg.post("/accounts/bob/credit", {"amount": 30, "ref": "t1"})
        assert st == 200 and doc["balance"] == 30, doc
        assert lg.get("/accounts/alice") == (200, {"id": "alice", "balance": 70})
        assert lg.get("/accounts/bob") == (200, {"id": "bob", "balance": 30})
        assert lg.get("/accounts/carol")[0] == 404
        assert lg.post("/accounts/carol/debit", {"amount": 1})[0] == 404
        st, doc = lg.get("/total")
        assert st == 200 and doc["total"] == 100 and doc["accounts"] == 2, doc
        assert [e["amount"] for e in entries(lg, "alice")] == [100, -30]
        check_books(lg)
    finally:
        lg.stop()


@run.case
def overdraft_is_refused_with_402_and_changes_nothing():
    lg = Ledger(os.path.join(tmp, "overdraft.db"))
    try:
        lg.post("/accounts", {"id": "alice", "balance": 50})
        st, doc = lg.post("/accounts/alice/debit", {"amount": 51}, key="od-1")
        assert st == 402 and doc["error"] == "insufficient_funds" and doc["balance"] == 50, doc
        assert lg.get("/accounts/alice")[1]["balance"] == 50
        assert len(entries(lg, "alice")) == 1
        # The refusal is an answer like any other: the key replays it even
        # once the money is there.
        lg.post("/accounts/alice/credit", {"amount": 100})
        st, doc = lg.post("/accounts/alice/debit", {"amount": 51}, key="od-1")
        assert st == 402 and doc["balance"] == 50, doc
        assert lg.get("/accounts/alice")[1]["balance"] == 150
        assert lg.post("/accounts/alice/debit", {"amount": 150})[0] == 200
        assert lg.get("/accounts/alice")[1]["balance"] == 0
    finally:
        lg.stop()


@run.case
def idempotency_key_replays_byte_identical_and_applies_once():
    lg = Ledger(os.path.join(tmp, "idem.db"))
    try:
        lg.post("/accounts", {"id": "alice", "balance": 100})
        first = lg.raw(keyed_post("/accounts/alice/debit", {"amount": 10, "ref": "x"}, "k-1"))
        assert first.startswith(b"HTTP/1.1 200 "), first
        for _ in range(3):
            again = lg.raw(keyed_post("/accounts/alice/debit", {"amount": 10, "ref": "x"}, "k-1"))
            assert again == first, (again, first)
        assert lg.get("/accounts/alice")[1]["balance"] == 90
        es = entries(lg, "alice")
        assert [e["idempotency_key"] for e in es if e.get("idempotency_key")] == ["k-1"], es
        # A create is keyed the same way: the replay is the 201, not a 409.
        c1 = lg.raw(keyed_post("/accounts", {"id": "dan", "balance": 7}, "k-create"))
        c2 = lg.raw(keyed_post("/accounts", {"id": "dan", "balance": 7}, "k-create"))
        assert c1.startswith(b"HTTP/1.1 201 ") and c1 == c2, (c1, c2)
    finally:
        lg.stop()


@run.case
def same_key_with_another_body_is_422_and_applies_nothing():
    lg = Ledger(os.path.join(tmp, "k422.db"))
    try:
        lg.post("/accounts", {"id": "alice", "balance": 100})
        lg.post("/accounts", {"id": "bob", "balance": 100})
        assert lg.post("/accounts/alice/debit", {"amount": 10}, key="k-2")[0] == 200
        st, doc = lg.post("/accounts/alice/debit", {"amount": 11}, key="k-2")
        assert st == 422 and doc["error"] == "idempotency_key_reused", doc
        # Another path with the same key is another request too.
        assert lg.post("/accounts/bob/debit", {"amount": 10}, key="k-2")[0] == 422
        assert lg.post("/accounts/alice/credit", {"amount": 10}, key="k-2")[0] == 422
        assert lg.get("/accounts/alice")[1]["balance"] == 90
        assert lg.get("/accounts/bob")[1]["balance"] == 100
        assert len(entries(lg, "alice")) == 2 and len(entries(lg, "bob")) == 1
    finally:
        lg.stop()


@run.case
def bad_requests_and_bounds():
    lg = Ledger(os.path.join(tmp, "bounds.db"))
    try:
        lg.post("/accounts", {"id": "alice", "balance": 100})
        for body in ({"amount": 0}, {"amount": -5}, {"amount": 1.5}, {"amount": "5"},
                     {"amount": 10**13}, {}, [1], {"amount": 1, "ref": 5}):
            assert lg.post("/accounts/alice/debit", body)[0] == 400, body
        assert lg.request("POST", "/accounts/alice/debit", b"{not json")[0] == 400
        assert lg.request("POST", "/accounts/alice/debit", b"[" * 50 + b"]" * 50)[0] == 400
        assert lg.post("/accounts", {"id": "bad id!"})[0] == 400
        assert lg.post("/accounts", {"id": "x", "balance": -1})[0] == 400
        assert lg.post("/accounts/alice/debit", {"amount": 1}, key="")[0] == 400
        assert lg.request("DELETE", "/accounts/alice")[0] == 405
        assert lg.request("GET", "/nowhere")[0] == 404
        big = lg.raw(b"POST /accounts/alice/debit HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 413 "), big
        head = lg.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), head
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(100))
        head = lg.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), head
        long = lg.raw(b"GET /accounts/" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert long.startswith(b"HTTP/1.1 414 "), long
        assert lg.raw(b"BLAH\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        # Keep-alive: several requests on one connection, pipelined too.
        c = lg.conn()
        for _ in range(3):
            assert lg.request("GET", "/accounts/alice", conn=c)[0] == 200
        c.close()
        two = lg.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /accounts/alice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert two.count(b"HTTP/1.1 200 ") == 2 and two.endswith(b'"balance":100}'), two
        assert lg.get("/accounts/alice")[1]["balance"] == 100
    finally:
        lg.stop()


@run.case
def a_trickled_request_is_cut_at_the_request_timeout():
    lg = Ledger(os.path.join(tmp, "slow.db"), "--request-timeout-ms", "600")
    try:
        with socket.create_connection(("127.0.0.1", lg.port), timeout=10 * SCALE) as s:
            start = time.time()
            closed = False
            # A byte every 100 ms: each read comes well within the timeout,
            # the request as a whole does not.
            for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    s.sendall(bytes([ch]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
                if time.time() - start > 5 * SCALE:
                    break
            if not closed:
                s.settimeout(2 * SCALE)
                try:
                    closed = s.recv(100) == b""
                except ConnectionResetError:
                    closed = True
            assert closed, "the connection outlived the request timeout"
            assert time.time() - start < 3 * SCALE, time.time() - start
        assert lg.get("/healthz")[0] == 200
    finally:
        lg.stop()


@run.case
def fail_after_commit_drops_the_answer_and_the_key_replays_it():
    lg = Ledger(os.path.join(tmp, "faults.db"), "--fail-after-commit", "1")
    try:
        assert lg.raw(keyed_post("/accounts", {"id": "alice", "balance": 100}, "c-1")) == b""
        lost = lg.raw(keyed_post("/accounts/alice/debit", {"amount": 25}, "lost-1"))
        assert lost == b"", lost  # applied, then the connection dropped unanswered
        again = lg.raw(keyed_post("/accounts/alice/debit", {"amount": 25}, "lost-1"))
        assert again.startswith(b"HTTP/1.1 200 ") and b'"balance":75' in again, again
        assert lg.get("/accounts/alice")[1]["balance"] == 75
        assert [e["idempotency_key"] for e in entries(lg, "alice")] == ["c-1", "lost-1"]
    finally:
        lg.stop()


@run.case
def kill9_mid_run_loses_nothing_and_applies_nothing_twice():
    db = os.path.join(tmp, "crash.db")
    # Each change waits 100 ms between its commit and its answer, so the
    # kill finds changes committed and not yet answered.
    lg = Ledger(db, "--delay-ms", "100")
    accounts = [f"acc{i}" for i in range(4)]
    for a in accounts:
        assert lg.post("/accounts", {"id": a, "balance": 1000})[0] == 201
    answered = {}  # key -> raw answer, for changes answered before the kill
    sent = []      # (key, raw request), every change sent
    lock = threading.Lock()
    stop = threading.Event()

    def amount(i):
        return 1 + (i // 2) % 7

    def client(n):
        i = 0
        while not stop.is_set():
            # A debit then a credit of the same amount to the same account:
            # balances stay near 1000 however long the run, so no change
            # is refused when everything is resent.
            a = accounts[(n + i // 2) % len(accounts)]
            kind = "credit" if i % 2 else "debit"
            key = f"c{n}-{i}"
            req = keyed_post(f"/accounts/{a}/{kind}", {"amount": amount(i), "ref": key}, key)
            with lock:
                sent.append((key, req))
            try:
                out = lg.raw(req, timeout=5)
            except OSError:
                out = b""
            if out:
                with lock:
                    answered[key] = out
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    lg.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(answered) > 10, len(answered)
    print(f"kill -9 run: {len(sent)} changes sent, {len(answered)} answered before the kill",
          flush=True)

    lg = Ledger(db)
    try:
        def applied_keys():
            seen = {}
            for a in accounts:
                for e in entries(lg, a):
                    k = e.get("idempotency_key")
                    if k:
                        seen[k] = seen.get(k, 0) + 1
            return seen

        lost = set(applied_keys()) - set(answered)
        print(f"  {len(lost)} committed whose answer the kill lost", flush=True)
        assert lost, "the kill found no change committed and unanswered"
        # Every key answered before the kill replays its answer, byte for byte.
        for key, out in answered.items():
            req = dict(sent)[key]
            assert lg.raw(req) == out, key
        # Resending every change (the clients' retry) applies each key once.
        for key, req in sent:
            assert lg.raw(req).startswith(b"HTTP/1.1 200 "), key
        seen = applied_keys()
        assert set(seen) == {k for k, _ in sent}, "a change is missing"
        assert all(v == 1 for v in seen.values()), [k for k, v in seen.items() if v != 1]
        check_books(lg)
        st, doc = lg.get("/total")
        expected = 4000
        for k, _ in sent:
            i = int(k.split("-")[1])
            expected += amount(i) if i % 2 else -amount(i)
        assert doc["total"] == expected, (doc, expected)
    finally:
        lg.stop()


@run.case
def sigterm_with_changes_and_reads_in_flight_exits_cleanly():
    """A shutdown kills connection and account processes parked on the
    blocking pool; the store's work still running for them must touch
    only memory of its own (under ASan a read of a freed request is
    reported), and the books stay whole."""
    db = os.path.join(tmp, "sigterm.db")
    lg = Ledger(db)
    accounts = [f"st{i}" for i in range(16)]
    for a in accounts:
        assert lg.post("/accounts", {"id": a, "balance": 1000000})[0] == 201
    stop = threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            a = accounts[(n + i) % len(accounts)]
            if i % 3 == 2:
                req = f"GET /accounts/{a}/entries HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                req = req.encode()
            else:
                key = f"s{n}-{i}"
                req = keyed_post(f"/accounts/{a}/{'debit' if i % 3 else 'credit'}",
                                 {"amount": 1 + i % 5, "ref": key}, key)
            try:
                lg.raw(req, timeout=5)
            except OSError:
                pass
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    try:
        lg.stop()
    finally:
        stop.set()
        for t in threads:
            t.join()
    lg = Ledger(db)
    try:
        check_books(lg)
    finally:
        lg.stop()


@run.case
def an_idempotency_key_in_a_trailer_is_not_the_requests_key():
    lg = Ledger(os.path.join(tmp, "trailer.db"))
    try:
        assert lg.post("/accounts", {"id": "tr", "balance": 100})[0] == 201
        body = b'{"amount": 10}'
        req = (b"POST /accounts/tr/debit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\nIdempotency-Key: late-1\r\n\r\n"
               % (len(body), body))
        out = lg.raw(req)
        assert out.startswith(b"HTTP/1.1 200 "), out
        assert b"late-1" not in out, out
        assert all(e.get("idempotency_key") is None for e in entries(lg, "tr"))
    finally:
        lg.stop()


@run.case
def connections_past_the_descriptor_limit_are_refused_with_503():
    """Under a descriptor limit below LEDGER_CONNS_MAX the connection
    bound shrinks to fit, so a connection past it is still answered 503
    rather than left unaccepted in the backlog."""
    import resource

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    port = free_port()
    proc = subprocess.Popen(
        [BIN, "--listen", f"127.0.0.1:{port}", "--db", os.path.join(tmp, "fds.db"),
         "--schedulers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=low_nofile)
    lg = Ledger.__new__(Ledger)
    lg.port, lg.proc = port, proc
    end = time.time() + 10 * SCALE
    while time.time() < end:
        try:
            if lg.get("/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.02)
    socks = []
    try:
        for _ in range(220):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE))
        last = socks[-1]
        out = last.recv(200)
        assert out.startswith(b"HTTP/1.1 503 "), out
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5 * SCALE)
    assert lg.get("/healthz")[0] == 200
    lg.stop()


run.finish()
