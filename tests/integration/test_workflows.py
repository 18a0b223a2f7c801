"""Workflows through the real binary, with the ledger example as the
backend: a transfer completes; an overdraft is refused and nothing moves;
a credit refused compensates the debit; a step whose answer is late is
resent with the same key and applied once; sync and async modes with the
status path; the client's Idempotency-Key (400, 409, 422, the stored answer
replayed); a gateway killed with SIGKILL in the middle of a transfer
finishes it after its restart."""
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import Gateway, TestRun, free_port, raw_request, wait_port

t = TestRun("workflows")
LEDGER_BIN = os.environ.get("LEDGER_BIN", "build/examples/ledger/tandem-ledger")
SCALE = float(os.environ.get("TANDEM_TEST_TIME_SCALE", "1"))


class Ledger:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="tandem-ledger-")
        self.port = free_port()
        self.argv = [LEDGER_BIN, "--listen", f"127.0.0.1:{self.port}",
                     "--db", os.path.join(self.dir, "ledger.db"), "--schedulers", "1", *extra]
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except BaseException:
            self.close()
            raise

    def call(self, method, path, body=None, key=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Idempotency-Key": key} if key else {}
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, json.loads(data) if data else None

    def account(self, name, balance):
        s, _ = self.call("POST", "/accounts", {"id": name, "balance": balance})
        assert s == 201, s

    def balance(self, name):
        return self.call("GET", f"/accounts/{name}")[1]["balance"]

    def keys(self, name):
        """The Idempotency-Key of each entry of an account, in order."""
        _, doc = self.call("GET", f"/accounts/{name}/entries")
        return [e.get("idempotency_key") for e in doc["entries"]]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def transfer(**over):
    """The transfer definition of examples/ledger, with changes."""
    src = os.path.join(os.environ.get("TANDEM_SRC", os.getcwd()), "examples", "ledger",
                       "workflows", "transfer.json")
    with open(src) as f:
        wf = json.load(f)["workflows"][0]
    steps = over.pop("steps", {})
    if over.get("mode") == "async":
        wf.pop("wait_ms", None)
    wf.update(over)
    for s in wf["steps"]:
        s.update(steps)
    return wf


class Env:
    """A ledger, and a gateway whose route POST /transfers runs `wf`."""

    def __init__(self, wf=None, ledger_args=(), gateway=True):
        self.ledger = Ledger(*ledger_args)
        self.dir = tempfile.mkdtemp(prefix="tandem-wf-")
        self.gw = None
        # A gateway that does not start leaves no ledger running: the
        # caller's `with` never got the Env to close.
        try:
            os.makedirs(os.path.join(self.dir, "workflows"))
            with open(os.path.join(self.dir, "workflows", "transfer.json"), "w") as f:
                json.dump({"workflows": [wf or transfer()]}, f)
            if gateway:
                self.start_gateway()
        except BaseException:
            self.__exit__()
            raise

    def start_gateway(self):
        self.gw = Gateway(
            [{"name": "transfer", "match": {"path": "/transfers", "methods": ["POST"]},
              "workflow": "transfer"}],
            {"ledger": {"targets": [{"address": f"127.0.0.1:{self.ledger.port}"}]}},
            extra={"workflows": {"dir": os.path.join(self.dir, "workflows"),
                                 "journal": {"data_dir": os.path.join(self.dir, "data")}}})

    def post(self, body, key="k1", headers=None, raw=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["Idempotency-Key"] = key
        h.update(headers or {})
        c.request("POST", "/transfers", body=raw if raw is not None else json.dumps(body),
                  headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def poll(self, location, timeout=30):
        """The status document once the instance is terminal."""
        end = time.time() + timeout * SCALE
        while time.time() < end:
            r, data = self.get(location)
            assert r.status == 200, (r.status, data)
            doc = json.loads(data)
            if doc["terminal"]:
                return doc
            time.sleep(0.05)
        raise AssertionError(f"{location} not terminal: {doc}")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        if self.gw:
            self.gw.close()
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def step_keys(keys, wid):
    """The workflow's own entries among an account's Idempotency-Keys."""
    return [k for k in keys if k and k.startswith(wid + ".")]


@t.case
def a_transfer_completes_and_each_step_is_applied_once():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 30})
        assert r.status == 200, (r.status, data)
        doc = json.loads(data)
        wid = doc["id"]
        assert e.ledger.balance("alice") == 70 and e.ledger.balance("bob") == 30
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit"]
        assert step_keys(e.ledger.keys("bob"), wid) == [f"{wid}.credit"]
        assert doc["from"]["balance"] == 70 and doc["to"]["balance"] == 30, doc
        # The instance counts its end and its two steps in /metrics.
        c = http.client.HTTPConnection("127.0.0.1", e.gw.admin_port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        assert 'tandem_workflows_total{workflow="transfer",outcome="completed"} 1' in text, text
        assert 'tandem_workflow_step_duration_seconds_count{workflow="transfer"} 2' in text, text


@t.case
def an_overdraft_is_refused_and_nothing_moves():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 1000})
        assert r.status == 402, (r.status, data)
        wid = json.loads(data)["id"]
        assert e.ledger.balance("alice") == 100 and e.ledger.balance("bob") == 0
        assert step_keys(e.ledger.keys("bob"), wid) == []
        r, data = e.get(f"/workflows/{wid}")
        assert json.loads(data)["state"] == "compensated", data


@t.case
def a_refused_credit_compensates_the_debit_and_restores_the_source():
    with Env() as e:
        e.ledger.account("alice", 100)
        r, data = e.post({"from": "alice", "to": "nobody", "amount": 40})
        assert r.status == 402, (r.status, data)
        wid = json.loads(data)["id"]
        assert e.ledger.balance("alice") == 100
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit", f"{wid}.debit.undo"]


@t.case
def a_request_head_too_big_to_send_fails_the_step_instead_of_retrying_forever():
    # "to" of 20,000 bytes makes the credit's path longer than any head the
    # gateway sends: the same request would be refused unsent on every
    # retry (the step retries without limit), so it is a definite failure.
    with Env() as e:
        e.ledger.account("alice", 100)
        r, data = e.post({"from": "alice", "to": "b" * 20000, "amount": 40})
        assert r.status == 402, (r.status, data)
        wid = json.loads(data)["id"]
        assert e.ledger.balance("alice") == 100
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit", f"{wid}.debit.undo"]


@t.case
def an_input_that_would_make_a_dot_segment_is_never_sent():
    # "/accounts/../debit" would reach another resource of the ledger.
    with Env() as e:
        e.ledger.account("alice", 100)
        r, data = e.post({"from": "..", "to": "alice", "amount": 40})
        assert r.status == 402, (r.status, data)
        wid = json.loads(data)["id"]
        assert e.ledger.balance("alice") == 100
        assert step_keys(e.ledger.keys("alice"), wid) == []
        # Refused before anything was sent: no intent journalled, and the
        # reason names the placeholder.
        st, doc = admin(e.gw, f"/admin/workflows/{wid}")
        assert st == 200, (st, doc)
        assert not [x for x in doc["transitions"] if x["event"] == "intent"], doc["transitions"]
        assert "${input.from}: the value would make a path segment" in doc["last_error"], doc


@t.case
def a_late_answer_is_resent_with_the_same_key_and_applied_once():
    # The ledger answers each change 800 ms after committing it; the step
    # gives up after 300 ms, so the outcome is unknown and the step is
    # resent with its key until an answer arrives in time (the ledger's
    # replay of a stored answer is not delayed).
    wf = transfer(steps={"timeout_ms": 300, "retry": {"attempts": 0, "backoff_ms": 50,
                                                      "backoff_max_ms": 200}},
                  wait_ms=20000)
    with Env(wf, ledger_args=("--delay-ms", "800")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 10})
        assert r.status == 200, (r.status, data)
        wid = json.loads(data)["id"]
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit"]
        assert step_keys(e.ledger.keys("bob"), wid) == [f"{wid}.credit"]
        assert e.ledger.balance("alice") == 90 and e.ledger.balance("bob") == 10
        # More than one send of the debit reached the ledger: the journal
        # shows the retries.
        _, detail = admin(e.gw, f"/admin/workflows/{wid}")
        intents = [x for x in detail["transitions"]
                   if x["event"] == "intent" and x["state"] == "step:debit"]
        assert len(intents) >= 2, detail["transitions"]


@t.case
def async_mode_answers_202_and_the_status_path_gives_the_result():
    with Env(transfer(mode="async")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 5})
        assert r.status == 202, (r.status, data)
        loc = r.getheader("Location")
        wid = json.loads(data)["id"]
        assert loc == f"/workflows/{wid}", (loc, data)
        doc = e.poll(loc)
        assert doc["state"] == "completed" and doc["result"]["status"] == 200, doc
        r, data = e.get("/workflows/" + "0" * 32)
        assert r.status == 404, r.status


@t.case
def sync_mode_past_its_wait_answers_202_then_the_result():
    wf = transfer(wait_ms=200)
    with Env(wf, ledger_args=("--delay-ms", "400")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 5})
        assert r.status == 202, (r.status, data)
        doc = e.poll(r.getheader("Location"))
        assert doc["state"] == "completed", doc


@t.case
def a_missing_key_is_400_and_nothing_starts():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 5}, key=None)
        assert r.status == 400, (r.status, data)
        assert e.ledger.balance("alice") == 100
        _, listing = admin(e.gw, "/admin/workflows")
        assert listing["workflows"] == [], listing


@t.case
def the_same_key_with_another_body_is_422():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, _ = e.post({"from": "alice", "to": "bob", "amount": 5}, key="k")
        assert r.status == 200
        r, data = e.post({"from": "alice", "to": "bob", "amount": 6}, key="k")
        assert r.status == 422, (r.status, data)
        assert e.ledger.balance("alice") == 95


@t.case
def the_same_key_while_running_is_409_with_retry_after():
    with Env(transfer(mode="async"), ledger_args=("--delay-ms", "1500")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, _ = e.post({"from": "alice", "to": "bob", "amount": 5}, key="k")
        assert r.status == 202
        r, data = e.post({"from": "alice", "to": "bob", "amount": 5}, key="k")
        assert r.status == 409, (r.status, data)
        assert r.getheader("Retry-After"), r.getheaders()
        # The running instance shows its definition and state in ctl ps.
        out = subprocess.run([e.gw.proc.args[0], "ctl", "--admin", f"127.0.0.1:{e.gw.admin_port}",
                              "ps", "--kind", "workflow"], capture_output=True, text=True,
                             timeout=30)
        assert "transfer step:debit" in out.stdout, out.stdout + out.stderr


@t.case
def a_repeat_after_the_end_gets_the_stored_answer_and_applies_nothing():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        body = {"from": "alice", "to": "bob", "amount": 7}
        r1, d1 = e.post(body, key="k")
        r2, d2 = e.post(body, key="k")
        assert r1.status == r2.status == 200, (r1.status, r2.status)
        assert d1 == d2, (d1, d2)
        assert r1.getheader("Content-Type") == r2.getheader("Content-Type")
        assert e.ledger.balance("alice") == 93 and e.ledger.balance("bob") == 7
        # A refused transfer's answer is stored and replayed the same way.
        r1, d1 = e.post({"from": "alice", "to": "bob", "amount": 10 ** 6}, key="big")
        r2, d2 = e.post({"from": "alice", "to": "bob", "amount": 10 ** 6}, key="big")
        assert r1.status == r2.status == 402 and d1 == d2, (r1.status, r2.status, d1, d2)


@t.case
def a_gateway_killed_mid_transfer_finishes_it_after_restart():
    # The ledger holds each answer 1 s: the gateway is killed while the
    # debit is in flight; on restart the instance resends it with its key
    # (the ledger applies it once) and the transfer completes.
    with Env(transfer(mode="async"), ledger_args=("--delay-ms", "1000")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 25}, key="k")
        assert r.status == 202, (r.status, data)
        wid = json.loads(data)["id"]
        time.sleep(0.3)
        e.gw.proc.send_signal(signal.SIGKILL)
        e.gw.proc.wait()
        config = e.gw.config
        e.gw.proc = subprocess.Popen([e.gw.proc.args[0], "-c", config], stdout=e.gw.stdout,
                                     stderr=e.gw.stderr)
        wait_port(e.gw.port)
        doc = e.poll(f"/workflows/{wid}", timeout=30)
        assert doc["state"] == "completed", doc
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit"]
        assert step_keys(e.ledger.keys("bob"), wid) == [f"{wid}.credit"]
        assert e.ledger.balance("alice") == 75 and e.ledger.balance("bob") == 25
        # The client's retry with its key gets the stored answer.
        r, data = e.post({"from": "alice", "to": "bob", "amount": 25}, key="k")
        assert r.status == 200, (r.status, data)


def pg_replica(e, pg, replica, lease_ms, upstream="ledger"):
    """A gateway in front of e's ledger (named `upstream`) running e's
    workflows on the PostgreSQL journal of `pg` as replica `replica`."""
    return Gateway(
        [{"name": "transfer", "match": {"path": "/transfers", "methods": ["POST"]},
          "workflow": "transfer"}],
        {upstream: {"targets": [{"address": f"127.0.0.1:{e.ledger.port}"}]}},
        extra={"workflows": {"dir": os.path.join(e.dir, "workflows"), "journal": {
            "backend": "postgres", "replica_id": replica,
            "postgres": {"conninfo_env": "TANDEM_PG", "lease_ms": lease_ms}}}},
        env={"TANDEM_PG": pg.conninfo})


@t.case
def a_replica_that_dies_has_its_instances_taken_over_by_another():
    # Two gateways share a PostgreSQL journal (lease 2 s). A transfer
    # starts on the first, whose debit the ledger holds for 1.5 s; the
    # first is killed and stays down: once its lease lapses the second
    # claims the instance, resends the debit with its key (applied once)
    # and completes the transfer.
    sys.path.insert(0, os.path.join(os.environ.get("TANDEM_SRC", os.getcwd()), "tests", "lib"))
    import pgserver
    pg = pgserver.PgServer().start()
    e = None
    gws = []
    try:
        e = Env(transfer(mode="async"), ledger_args=("--delay-ms", "1500"), gateway=False)
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        for i in range(2):
            gws.append(pg_replica(e, pg, f"r{i}", 2000))
        e.gw = gws[0]
        r, data = e.post({"from": "alice", "to": "bob", "amount": 25}, key="k")
        assert r.status == 202, (r.status, data)
        wid = json.loads(data)["id"]
        time.sleep(0.3)
        gws[0].proc.send_signal(signal.SIGKILL)
        gws[0].proc.wait()
        e.gw = gws[1]
        doc = e.poll(f"/workflows/{wid}", timeout=30)
        assert doc["state"] == "completed", doc
        _, detail = admin(gws[1], f"/admin/workflows/{wid}")
        assert detail["owner"] == "r1", detail["owner"]
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit"]
        assert step_keys(e.ledger.keys("bob"), wid) == [f"{wid}.credit"]
        assert e.ledger.balance("alice") == 75 and e.ledger.balance("bob") == 25
    finally:
        for g in gws:
            g.close()
        if e:
            e.gw = None
            e.__exit__()
        pg.stop()
def restart(gw, sig=signal.SIGTERM):
    """Stops the gateway with `sig` and starts it again on the same config
    (and so the same journal)."""
    gw.proc.send_signal(sig)
    gw.proc.wait(15)
    gw.proc = subprocess.Popen([gw.proc.args[0], "-c", gw.config], stdout=gw.stdout,
                               stderr=gw.stderr)
    wait_port(gw.port)


# Fields each answer has of its own: the rest of a replay is the same.
OWN_FIELDS = {"date", "x-request-id", "connection", "keep-alive"}


def fields(r):
    return sorted((k.lower(), v) for k, v in r.getheaders() if k.lower() not in OWN_FIELDS)


@t.case
def concurrent_first_requests_with_one_key_start_one_instance():
    import threading
    with Env(transfer(mode="async"), ledger_args=("--delay-ms", "1000")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        body = {"from": "alice", "to": "bob", "amount": 3}
        go = threading.Barrier(16)
        out = []

        def client():
            go.wait()
            r, data = e.post(body, key="same")
            out.append((r.status, data))

        threads = [threading.Thread(target=client) for _ in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        statuses = sorted(s for s, _ in out)
        # One started it (202); the others found it running (409) or, on a
        # machine slow enough, already over (its stored answer, 200).
        assert len(out) == 16 and set(statuses) <= {200, 202, 409}, statuses
        ids = {json.loads(d)["id"] for s, d in out if s in (200, 202)}
        assert len(ids) == 1 and statuses.count(202) == 1, out
        _, listing = admin(e.gw, "/admin/workflows")
        assert [w["id"] for w in listing["workflows"]] == list(ids), listing
        wid = ids.pop()
        assert e.poll(f"/workflows/{wid}")["state"] == "completed"
        assert e.ledger.balance("alice") == 97 and e.ledger.balance("bob") == 3
        assert step_keys(e.ledger.keys("alice"), wid) == [f"{wid}.debit"]


@t.case
def a_key_that_expires_while_its_instance_runs_starts_no_second_one():
    # The key lives 1 s; the debit takes 2.5 s. A retry with the key after
    # the key's time, while the first instance is still running, must not
    # start a second transfer: it gets 409 until the first ends.
    wf = transfer(mode="async", idempotency={"key": "required", "ttl_ms": 1000},
                  steps={"timeout_ms": 8000})
    with Env(wf, ledger_args=("--delay-ms", "2500")) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        body = {"from": "alice", "to": "bob", "amount": 5}
        r, data = e.post(body, key="k")
        assert r.status == 202, (r.status, data)
        wid = json.loads(data)["id"]
        time.sleep(1.5)
        r, data = e.post(body, key="k")
        assert r.status == 409, (r.status, data)
        _, listing = admin(e.gw, "/admin/workflows")
        assert [w["id"] for w in listing["workflows"]] == [wid], listing
        assert e.poll(f"/workflows/{wid}")["state"] == "completed"
        assert e.ledger.balance("alice") == 95 and e.ledger.balance("bob") == 5


@t.case
def the_stored_answer_is_replayed_byte_identical_after_a_restart():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        body = {"from": "alice", "to": "bob", "amount": 4}
        r1, d1 = e.post(body, key="k")
        assert r1.status == 200, (r1.status, d1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            restart(e.gw, sig)
            r2, d2 = e.post(body, key="k")
            assert (r2.status, d2) == (r1.status, d1), (r2.status, d2, d1)
            assert fields(r2) == fields(r1), (fields(r1), fields(r2))
        assert e.ledger.balance("alice") == 96 and e.ledger.balance("bob") == 4


@t.case
def head_on_the_status_path_frames_like_get_and_sends_no_body():
    with Env() as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        r, data = e.post({"from": "alice", "to": "bob", "amount": 1})
        wid = json.loads(data)["id"]
        g, gdata = e.get(f"/workflows/{wid}")
        assert g.status == 200 and gdata
        # HEAD, then GET on the same connection: HEAD's answer must carry
        # no body or the GET's answer would be read from it.
        raw = (f"HEAD /workflows/{wid} HTTP/1.1\r\nHost: x\r\n\r\n"
               f"GET /workflows/{wid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = raw_request(e.gw.port, raw.encode())
        head, _, rest = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), out
        assert f"content-length: {len(gdata)}".encode() in head.lower(), head
        assert rest.startswith(b"HTTP/1.1 200"), out
        assert rest.endswith(gdata), out
        for bad in ("0" * 31, "0" * 33, "A" * 32, "../admin", "0" * 31 + "g"):
            r, _ = e.get(f"/workflows/{bad}")
            assert r.status == 404, (bad, r.status)


@t.case
def a_replica_does_not_restart_an_instance_that_stopped_without_ending_at_every_claim():
    # An instance whose journalled definition names an upstream the
    # restarted gateway no longer has stops at once (it cannot run). With
    # PostgreSQL the replica claims its unfinished instances every half
    # lease (0.5 s here): it must not start that one again each time,
    # logging its error and counting it recovered again and again.
    sys.path.insert(0, os.path.join(os.environ.get("TANDEM_SRC", os.getcwd()), "tests", "lib"))
    import pgserver
    pg = pgserver.PgServer().start()
    e = None
    gws = []
    try:
        e = Env(transfer(mode="async"), ledger_args=("--delay-ms", "3000"), gateway=False)
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)

        gws.append(pg_replica(e, pg, "r0", 1000))
        e.gw = gws[0]
        r, data = e.post({"from": "alice", "to": "bob", "amount": 5}, key="k")
        assert r.status == 202, (r.status, data)
        wid = json.loads(data)["id"]
        gws[0].proc.send_signal(signal.SIGKILL)
        gws[0].proc.wait()
        wf = transfer(mode="async")
        for step in wf["steps"]:
            step["upstream"] = "ledger2"
        with open(os.path.join(e.dir, "workflows", "transfer.json"), "w") as f:
            json.dump({"workflows": [wf]}, f)
        gws.append(pg_replica(e, pg, "r0", 1000, upstream="ledger2"))
        e.gw = gws[1]
        time.sleep(4 * SCALE)
        tries = gws[1].log().count(f"workflow {wid}: its definition transfer no longer compiles")
        # Once at the start, at most once more by the first claim after it.
        assert 1 <= tries <= 2, (tries, gws[1].log()[-2000:])
        _, detail = admin(gws[1], f"/admin/workflows/{wid}")
        assert not detail["terminal"], detail
    finally:
        for g in gws:
            g.close()
        if e:
            e.gw = None
            e.__exit__()
        pg.stop()


@t.case
def idempotency_keys_are_scoped_by_the_authenticated_consumer():
    # Two consumers of a key_auth route send the same Idempotency-Key and
    # body: each gets a transfer of its own, never the other's stored
    # answer.
    with Env(gateway=False) as e:
        e.ledger.account("alice", 100)
        e.ledger.account("bob", 0)
        keys = {"alice": "alice-Zk3rT9qLmW2xV8pN", "bob": "bob-Q7hY2mK9tR4wX1zP"}
        pol_dir = os.path.join(e.dir, "policies")
        os.makedirs(pol_dir)
        with open(os.path.join(pol_dir, "auth.json"), "w") as f:
            json.dump({"policies": [{"name": "keys", "type": "key_auth"}],
                       "consumers": [{"name": n, "api_keys": [
                           "sha256:" + hashlib.sha256(k.encode()).hexdigest()]}
                           for n, k in keys.items()]}, f)
        e.gw = Gateway(
            [{"name": "transfer", "match": {"path": "/transfers", "methods": ["POST"]},
              "workflow": "transfer", "policies": ["keys"]}],
            {"ledger": {"targets": [{"address": f"127.0.0.1:{e.ledger.port}"}]}},
            extra={"workflows": {"dir": os.path.join(e.dir, "workflows"),
                                 "journal": {"data_dir": os.path.join(e.dir, "data")}},
                   "policies": {"dir": pol_dir}})
        body = {"from": "alice", "to": "bob", "amount": 7}
        r1, d1 = e.post(body, key="k", headers={"x-api-key": keys["alice"]})
        r2, d2 = e.post(body, key="k", headers={"x-api-key": keys["bob"]})
        assert r1.status == r2.status == 200, (r1.status, d1, r2.status, d2)
        assert e.ledger.balance("alice") == 86 and e.ledger.balance("bob") == 14, \
            (e.ledger.balance("alice"), e.ledger.balance("bob"))
        # The same consumer again gets its stored answer.
        r3, d3 = e.post(body, key="k", headers={"x-api-key": keys["bob"]})
        assert r3.status == 200 and d3 == d2, (r3.status, d2, d3)
        assert e.ledger.balance("alice") == 86


def admin(gw, path):
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    return r.status, doc


t.finish()
