"""Transfers through the gateway's `transfer` workflow while the gateway is
killed with SIGKILL again and again, and the ledger once.

Clients send transfers among accounts of the ledger example
(examples/ledger), each with its own Idempotency-Key, and repeat a transfer
with the same key on any error, dropped connection, 202 or 409 until they
get its final answer. Meanwhile the gateway is killed at random moments and
started again on the same journal, and the ledger is killed once and
started again on the same database. At the end:

  - every transfer is completed or compensated exactly once: the ledger's
    entries, counted per workflow id, hold one debit and one credit for a
    completed transfer, and for a compensated one either nothing (the debit
    was refused) or one debit and one credit back;
  - the sum of all balances is unchanged;
  - every final answer a client got for a key is byte-identical to the
    others it got for that key;
  - the journal holds no instance that is not terminal;
  - and, so that none of this passes vacuously: every transfer has final
    answers, every requested kill happened and killed instances were
    recovered (or taken over), each account's balance is what the answers
    make it, every keyed ledger entry belongs to a transfer a client got,
    and the journal holds one instance per transfer (tests/chaos/README.md).

Modes:
  sqlite    one gateway, the SQLite journal (the default)
  postgres  two gateway replicas sharing a PostgreSQL journal; one of them
            is killed again and again while the other takes over its
            instances (tests/lib/pgserver.py starts the server)

Usage: transfers.py [--mode sqlite|postgres] [--transfers N] [--accounts N]
                    [--clients N] [--kills N] [--seed N]
Prints what happened (transfers, kills, recovered instances, recovery time)
and ends with `N passed, N failed`. Runs the real binaries: TANDEM_BIN and
LEDGER_BIN name them (defaults under build/)."""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("TANDEM_SRC", os.getcwd())
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import free_port, tandem_bin, wait_port  # noqa: E402

LEDGER_BIN = os.environ.get("LEDGER_BIN", "build/examples/ledger/tandem-ledger")
START_BALANCE = 1000
# With replicas, how long a killed replica stays down every other kill:
# past its lease (3 s) and the other's next claim (within 1.65 s after).
LONG_DOWN_S = 6.0
# The clients give up on what is still unanswered this long after the start
# (meson's timeout for the suite is 900 s).
RUN_LIMIT_S = 600

# The definition under test: examples/ledger's transfer, with the answer of
# a compensated transfer told apart from "still running" (409).
def transfer_definition(upstream):
    with open(os.path.join(SRC, "examples", "ledger", "workflows", "transfer.json")) as f:
        doc = json.load(f)
    wf = doc["workflows"][0]
    for step in wf["steps"]:
        step["upstream"] = upstream
    wf["response"]["compensated"] = {"status": 402}
    return doc


class Proc:
    """A child process started again and again with the same command line."""

    def __init__(self, name, argv, port, env=None, log_dir=None):
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.log = open(os.path.join(log_dir, name + ".log"), "ab")
        self.proc = None
        self.starts = 0

    def start(self, timeout=30):
        t0 = time.monotonic()
        e = dict(os.environ)
        e.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=self.log, env=e)
        self.starts += 1
        # A process that exits (a port taken meanwhile, a bad journal) is
        # reported at once, not after the whole timeout.
        while True:
            try:
                wait_port(self.port, timeout=0.5)
                return time.monotonic() - t0
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                       "before listening")
                if time.monotonic() - t0 > timeout:
                    raise

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def request(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, r.getheader("Retry-After"), r.read()
    finally:
        c.close()


def metric(admin_port, name, timeout=30):
    _, _, text = request(admin_port, "GET", "/metrics", timeout=timeout)
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"/metrics has no {name}")


def recovered(admin_port):
    """Instances the gateway restarted from the journal since its start
    (at its start, and with replicas those it took over)."""
    return metric(admin_port, "tandem_workflows_recovered_total")


def admin(port, path):
    status, _, body = request(port, "GET", path)
    assert status == 200, (path, status, body)
    return json.loads(body)


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = tempfile.mkdtemp(prefix="tandem-chaos-")
        self.stop_killing = threading.Event()
        self.answers = {}  # key -> [(status, body)] final answers
        self.jobs = {}  # key -> the transfer's body
        self.errors = []  # exceptions of the client and killer threads
        self.killed_running = 0  # gateway kills with an instance live in it
        self.killed_running_long = 0  # of those, replicas kept down past the lease
        self.lock = threading.Lock()
        self.kills = []  # (what, when)
        self.restart_s = []
        self.recovered = 0
        self.retries = 0

    # ---- the parts ----------------------------------------------------------

    def start_ledger(self):
        port = free_port()
        self.ledger = Proc("ledger", [LEDGER_BIN, "--listen", f"127.0.0.1:{port}",
                                      "--db", os.path.join(self.dir, "ledger.db"),
                                      "--schedulers", "2",
                                      # Now and then a change is applied and
                                      # its answer lost: the gateway cannot
                                      # know the outcome and resends.
                                      "--fail-after-commit", "0.02"], port, log_dir=self.dir)
        self.ledger.start()

    def gateway_config(self, name, port, admin_port, journal):
        d = os.path.join(self.dir, name)
        os.makedirs(os.path.join(d, "routes"), exist_ok=True)
        os.makedirs(os.path.join(d, "workflows"), exist_ok=True)
        with open(os.path.join(d, "routes", "main.json"), "w") as f:
            json.dump({"routes": [
                {"name": "transfer", "match": {"path": "/transfers", "methods": ["POST"]},
                 "workflow": "transfer"},
            ]}, f)
        with open(os.path.join(d, "workflows", "transfer.json"), "w") as f:
            json.dump(transfer_definition("ledger"), f)
        cfg = {
            "runtime": {"schedulers": 2},
            "listeners": [{"name": "public", "address": f"127.0.0.1:{port}"}],
            "admin": {"address": f"127.0.0.1:{admin_port}"},
            "upstreams": {"ledger": {"targets": [
                {"address": f"127.0.0.1:{self.ledger.port}"}]}},
            "routes": "routes",
            "workflows": dict({"dir": "workflows"}, **journal),
        }
        path = os.path.join(d, "tandem.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def start_gateways(self):
        self.gateways = []
        n = 2 if self.args.mode == "postgres" else 1
        env = {}
        for i in range(n):
            port, admin_port = free_port(), free_port()
            if self.args.mode == "postgres":
                journal = {"journal": {"backend": "postgres",
                                       "postgres": {"conninfo_env": "TANDEM_PG",
                                                    "lease_ms": 3000},
                                       "replica_id": f"replica-{i}"}}
                env = {"TANDEM_PG": self.pg_conninfo}
            else:
                journal = {"journal": {"backend": "sqlite",
                                       "data_dir": os.path.join(self.dir, "data")}}
            cfg = self.gateway_config(f"gw{i}", port, admin_port, journal)
            g = Proc(f"gw{i}", [tandem_bin(), "-c", cfg], port, env=env, log_dir=self.dir)
            g.admin_port = admin_port
            g.start()
            wait_port(admin_port)
            self.gateways.append(g)

    def create_accounts(self):
        self.accounts = [f"acct{i}" for i in range(self.args.accounts)]
        for a in self.accounts:
            s, _, body = request(self.ledger.port, "POST", "/accounts",
                                 {"id": a, "balance": START_BALANCE})
            assert s == 201, (s, body)

    # ---- clients --------------------------------------------------------------

    def client(self, ci, jobs):
        try:
            self.client_loop(ci, jobs)
        except Exception as e:  # a lost job must fail the run, not vanish
            with self.lock:
                self.errors.append(f"client {ci}: {e!r}")

    def client_loop(self, ci, jobs):
        rng = random.Random(self.args.seed * 1000 + ci)
        # Paced so that the transfers span the kills: on average each client
        # starts one every `pace` seconds.
        pace = self.args.clients * self.args.duration / max(1, self.args.transfers)
        while True:
            time.sleep(rng.uniform(0, 2 * pace))
            with self.lock:
                if not jobs:
                    return
                key, body = jobs.pop()
            finals = 0
            # 300 s per transfer, and the run as a whole within RUN_LIMIT_S
            # (under meson's timeout, so the run reports, and stops its
            # servers, itself).
            deadline = min(time.monotonic() + 300, self.run_deadline)
            while time.monotonic() < deadline:
                g = rng.choice(self.gateways)
                try:
                    status, retry_after, data = request(g.port, "POST", "/transfers", body,
                                                        {"Idempotency-Key": key}, timeout=20)
                except (OSError, http.client.HTTPException):
                    status, retry_after, data = None, None, None
                if status in (200, 402):
                    with self.lock:
                        self.answers.setdefault(key, []).append((status, data))
                    finals += 1
                    # One more time with the same key: the replay must be
                    # the same bytes.
                    if finals == 2 or rng.random() < 0.5:
                        break
                    continue
                with self.lock:
                    self.retries += 1
                time.sleep(0.05 + rng.random() * 0.2)
            else:
                with self.lock:
                    self.answers.setdefault(key, []).append((None, b"no final answer in time"))

    # ---- the killer -----------------------------------------------------------

    def killer(self, duration):
        try:
            self.killer_loop(duration)
        except Exception as e:
            with self.lock:
                self.errors.append(f"killer: {e!r}")

    def wait_running(self, g, limit_s=2.0):
        """Waits (a bounded time) for a moment when the gateway runs an
        instance, so that the kill leaves one unfinished for recovery."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            try:
                if metric(g.admin_port, "tandem_workflows_running", timeout=2) > 0:
                    return True
            except (OSError, http.client.HTTPException, AssertionError):
                pass
            time.sleep(0.01)
        return False

    def killer_loop(self, duration):
        # Every kill within the first 85% of the run, so that the clients
        # are still sending when the last one comes. With replicas, every
        # other kill keeps the replica down past its lease: the moments
        # are drawn from a span shortened by those waits, and each later
        # one is pushed back by the waits before it (self.pushed).
        nlong = self.args.kills // 2 if len(self.gateways) > 1 else 0
        span = 0.85 * duration - LONG_DOWN_S * nlong
        if span < 1.0:
            raise RuntimeError(f"--duration {duration} is too short for {self.args.kills} kills")
        moments = sorted(self.rng.uniform(0.5, span) for _ in range(self.args.kills))
        ledger_at = self.rng.uniform(0.3, 0.7) * span
        self.pushed = 0.0
        t0 = time.monotonic()
        pending = [("gateway", m) for m in moments] + [("ledger", ledger_at)]
        pending.sort(key=lambda p: p[1])
        for what, at in pending:
            while time.monotonic() - t0 < at + self.pushed:
                if self.stop_killing.wait(0.05):
                    return
            if what == "ledger":
                self.ledger.kill()
                self.kills.append(("ledger", time.monotonic() - t0))
                time.sleep(self.rng.uniform(0.1, 1.0))
                self.ledger.start()
            else:
                # With replicas, always the first: the second takes over.
                g = self.gateways[0]
                running = self.wait_running(g)
                g.kill()
                self.kills.append(("gateway", time.monotonic() - t0))
                self.killed_running += running
                gw_kills = sum(1 for k in self.kills if k[0] == "gateway")
                if len(self.gateways) > 1 and gw_kills % 2 == 0:
                    # Down past its lease: the other replica takes its
                    # unfinished instances over. The lease (3 s) lapses at
                    # most 3 s after the kill, and the other claims within
                    # 0.55 of a lease (1.65 s) after that; a restart before
                    # then would claim them back itself.
                    self.killed_running_long += running
                    time.sleep(LONG_DOWN_S)
                    self.pushed += LONG_DOWN_S
                else:
                    time.sleep(self.rng.uniform(0.05, 0.5))
                # Recovery runs before the listeners accept: the time to
                # listening includes it.
                self.restart_s.append(g.start())
                wait_port(g.admin_port)
                self.recovered += recovered(g.admin_port)

    # ---- checks ---------------------------------------------------------------

    def check(self, failures):
        def fail(msg):
            failures.append(msg)
            print("FAIL", msg, flush=True)

        for e in self.errors:
            fail(e)
        # The run did what it is meant to: every transfer was sent, the
        # kills happened while transfers ran, and killed gateways left
        # instances that were recovered (or, with replicas, taken over).
        if len(self.answers) != len(self.jobs):
            fail(f"{len(self.answers)} transfers answered of {len(self.jobs)} sent")
        gw_kills = sum(1 for k in self.kills if k[0] == "gateway")
        ledger_kills = sum(1 for k in self.kills if k[0] == "ledger")
        if gw_kills != self.args.kills or ledger_kills != 1:
            fail(f"{gw_kills} gateway kills of {self.args.kills}, {ledger_kills} ledger kills of 1")
        if self.args.kills and not self.killed_running:
            fail("no gateway kill came while an instance ran in it")
        elif self.args.kills and not self.recovered:
            fail(f"{self.killed_running} kills with instances running, none recovered")
        if self.killed_running_long and not getattr(self, "taken_over", 0):
            fail(f"{self.killed_running_long} replicas killed with instances running and kept "
                 "down past their lease, none taken over")
        # Every key has final answers, all the same bytes.
        ids = {}
        for key, got in self.answers.items():
            if any(s is None for s, _ in got):
                fail(f"{key}: no final answer")
                continue
            if len({(s, b) for s, b in got}) != 1:
                fail(f"{key}: answers differ: {got[:3]}")
                continue
            s, b = got[0]
            doc = json.loads(b)
            ids[key] = (s, doc.get("id"))
            # A transfer to an account that does not exist cannot complete.
            if self.jobs[key]["to"].startswith("ghost") and s != 402:
                fail(f"{key} to {self.jobs[key]['to']} answered {s}")
        wids = [w for _, w in ids.values()]
        if None in wids or len(set(wids)) != len(wids):
            fail("a final answer without its own workflow id")
        # The journal holds nothing unfinished (any replica sees it all).
        g = self.gateways[-1]
        deadline = time.monotonic() + 60
        active = None
        while time.monotonic() < deadline:
            active = admin(g.admin_port, "/admin/workflows?state=active&limit=1000")
            if not active["workflows"]:
                break
            time.sleep(0.5)
        if active["workflows"]:
            fail(f"{len(active['workflows'])} instances not terminal: {active['workflows'][:3]}")
        # One instance per transfer, no more: the list is the journal's
        # whole content (nothing is purged within the keys' day).
        journalled, after = set(), ""
        while True:
            page = admin(g.admin_port, f"/admin/workflows?limit=1000{after}")
            journalled.update(w["id"] for w in page["workflows"])
            if not page["next"]:
                break
            after = f"&after={page['next']}"
        if journalled != set(wids):
            fail(f"journal holds {len(journalled)} instances, the clients got "
                 f"{len(set(wids))}; {len(journalled - set(wids))} unknown to the clients")
        # Ledger entries per workflow id.
        total = json.loads(request(self.ledger.port, "GET", "/total")[2])
        if total["total"] != START_BALANCE * len(self.accounts):
            fail(f"sum of balances {total['total']} != {START_BALANCE * len(self.accounts)}")
        # Each account's balance is what the answers say happened: a
        # transfer applied twice under another id (or a second instance
        # for one key) moves money without changing the sum.
        expect = {a: START_BALANCE for a in self.accounts}
        for key, (status, _) in ids.items():
            if status == 200:
                j = self.jobs[key]
                expect[j["from"]] -= j["amount"]
                expect[j["to"]] = expect.get(j["to"], 0) + j["amount"]
        by_key = {}
        known = {f"{w}.{step}" for w in wids for step in ("debit", "credit", "debit.undo")}
        for a in self.accounts:
            doc = json.loads(request(self.ledger.port, "GET", f"/accounts/{a}/entries")[2])
            assert not doc["truncated"], a
            if doc["balance"] != expect[a]:
                fail(f"{a}: balance {doc['balance']}, the answers make it {expect[a]}")
            for e in doc["entries"]:
                k = e.get("idempotency_key")
                if k:
                    by_key.setdefault(k, []).append(e)
                    if k not in known:
                        fail(f"{a}: entry {e['seq']} with key {k} of no transfer a client got")
        completed = compensated = 0
        for key, (status, wid) in ids.items():
            debit = by_key.get(f"{wid}.debit", [])
            credit = by_key.get(f"{wid}.credit", [])
            undo = by_key.get(f"{wid}.debit.undo", [])
            if status == 200:
                completed += 1
                ok = len(debit) == 1 and len(credit) == 1 and not undo
            else:
                compensated += 1
                ok = not credit and len(debit) == len(undo) and len(debit) <= 1
            if not ok:
                fail(f"{key} ({status}, {wid}): debit {len(debit)} credit {len(credit)} "
                     f"undo {len(undo)}")
        self.completed, self.compensated = completed, compensated
        if not completed or (any(j["to"].startswith("ghost") for j in self.jobs.values())
                             and not compensated):
            fail(f"{completed} completed, {compensated} compensated: nothing to check")

    # ---- the run --------------------------------------------------------------

    def run(self):
        failures = []
        try:
            if self.args.mode == "postgres":
                sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
                import pgserver
                self.pg = pgserver.PgServer()
                self.pg.start()
                self.pg_conninfo = self.pg.conninfo
            self.start_ledger()
            self.create_accounts()
            self.start_gateways()
            jobs = []
            for i in range(self.args.transfers):
                src = self.rng.choice(self.accounts)
                # One transfer in twenty goes to an account that does not
                # exist: its credit fails and the debit is compensated.
                dst = (f"ghost{i}" if self.rng.random() < 0.05 else
                       self.rng.choice([a for a in self.accounts if a != src]))
                jobs.append((f"t-{self.args.seed}-{i}",
                             {"from": src, "to": dst, "amount": self.rng.randint(1, 300)}))
            self.jobs = dict(jobs)
            t0 = time.monotonic()
            self.run_deadline = t0 + RUN_LIMIT_S
            # Daemons: a run stopped by SIGTERM does not wait for them.
            threads = [threading.Thread(target=self.client, args=(i, jobs), daemon=True)
                       for i in range(self.args.clients)]
            for th in threads:
                th.start()
            killer = threading.Thread(target=self.killer, args=(self.args.duration,), daemon=True)
            killer.start()
            for th in threads:
                th.join()
            self.stop_killing.set()
            killer.join()
            elapsed = time.monotonic() - t0
            if len(self.gateways) > 1:
                # The replica never killed: what it took over.
                self.taken_over = recovered(self.gateways[1].admin_port)
                self.recovered += self.taken_over
            self.check(failures)
            print(f"mode {self.args.mode}: {len(self.answers)} transfers in {elapsed:.1f} s, "
                  f"{self.completed} completed, {self.compensated} compensated, "
                  f"{self.retries} client retries; kills: "
                  f"{sum(1 for k in self.kills if k[0] == 'gateway')} gateway, "
                  f"{sum(1 for k in self.kills if k[0] == 'ledger')} ledger; "
                  f"instances recovered or taken over: {self.recovered} "
                  f"(taken over: {getattr(self, 'taken_over', 0)}; kills with an instance "
                  f"running: {self.killed_running}); "
                  f"restart to listening: median "
                  f"{sorted(self.restart_s)[len(self.restart_s) // 2] if self.restart_s else 0:.2f} s",
                  flush=True)
            for g in self.gateways:
                # Since its last start: instances recovered, journal commits.
                _, _, text = request(g.admin_port, "GET", "/metrics")
                lines = [x for x in text.decode().splitlines()
                         if x.startswith(("tandem_workflows_recovered_total",
                                          "tandem_workflow_journal_batch_size_sum",
                                          "tandem_workflow_journal_commit_duration_seconds_count"))]
                print(f"{g.name} (since its last start): {'; '.join(lines)}", flush=True)
        finally:
            for g in getattr(self, "gateways", []):
                g.stop()
            if hasattr(self, "ledger"):
                self.ledger.stop()
            if hasattr(self, "pg"):
                self.pg.stop()
            if failures or os.environ.get("TANDEM_CHAOS_KEEP"):
                print(f"logs kept in {self.dir}", flush=True)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        return failures


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--transfers", type=int, default=1000)
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--duration", type=float, default=None,
                   help="seconds over which the transfers and the kills are spread "
                        "(default 30, 60 with postgres: its kills wait out leases)")
    p.add_argument("--seed", type=int, default=int(time.time()))
    args = p.parse_args()
    # meson's timeout sends SIGTERM: the run's finally still stops the
    # gateways, the ledger and the PostgreSQL server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.duration is None:
        args.duration = 60.0 if args.mode == "postgres" else 30.0
    print(f"seed {args.seed}", flush=True)
    failures = Run(args).run()
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
