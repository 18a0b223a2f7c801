"""Shared helpers for integration tests: run cases, count, print the summary
line `N passed, N failed`, exit non-zero on failure. Standard library only."""
import os
import sys
import traceback


def tandem_bin():
    return os.environ.get("TANDEM_BIN", "build/gateway/tandem")


def source_root():
    return os.environ.get("TANDEM_SRC", os.getcwd())


class TestRun:
    def __init__(self, name):
        self.name = name
        self.cases = []

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def finish(self):
        passed = failed = 0
        only = os.environ.get("TEST_ONLY")
        for fn in self.cases:
            if only and only not in fn.__name__:
                continue
            try:
                fn()
                passed += 1
                print(f"ok   {self.name}.{fn.__name__}", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {self.name}.{fn.__name__}", flush=True)
                traceback.print_exc()
        print(f"{passed} passed, {failed} failed", flush=True)
        sys.exit(1 if failed else 0)


# ---- running the real gateway and a real upstream ---------------------------

import http.client as _http_client
import json as _json
import shutil as _shutil
import signal as _signal
import socket as _socket
import subprocess as _subprocess
import tempfile as _tempfile
import time as _time

PYTHON = "/usr/bin/python3"


_ports_given = set()


def free_port():
    """A port nothing listens on right now (bound then released), and not
    one this process was given before: two ports asked for one after the
    other (an upstream's, then the admin listener's) are never the same,
    though neither is bound yet."""
    while True:
        with _socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    end = _time.time() + timeout
    while _time.time() < end:
        try:
            with _socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            _time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class Upstream:
    """tests/upstream/upstream.py as a child process."""

    def __init__(self, name="up", extra=(), port=0):
        script = os.path.join(source_root(), "tests", "upstream", "upstream.py")
        self.proc = _subprocess.Popen([PYTHON, script, "--port", str(port), "--name", name,
                                       *extra],
                                      stdout=_subprocess.PIPE, stderr=_subprocess.DEVNULL,
                                      text=True)
        self.port = int(self.proc.stdout.readline().strip())
        self.name = name
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except _subprocess.TimeoutExpired:
                self.proc.kill()


def validate_config(kind, doc, label="config"):
    """Validates a tandem.json (`kind` "config") or route file ("routes")
    document against the shipped JSON Schema (config/schema/); raises
    jsonschema.ValidationError naming `label`."""
    import jsonschema
    name = "tandem.schema.json" if kind == "config" else "routes.schema.json"
    with open(os.path.join(source_root(), "config", "schema", name)) as f:
        schema = _json.load(f)
    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if err is not None:
        raise jsonschema.ValidationError(f"{label}: {err.json_path}: {err.message}")


class Gateway:
    """The real tandem binary on ephemeral ports with a generated config.

    `routes` is a list of route objects (one file routes/main.json);
    `upstreams` a dict of upstream configs; `listener` extra listener keys;
    `more_listeners` listener objects after the first (self.port's);
    `preexec_fn` runs in the child before exec (resource limits)."""

    def __init__(self, routes, upstreams=None, listener=None, admin=True, extra=None, env=None,
                 preexec_fn=None, more_listeners=()):
        self.dir = _tempfile.mkdtemp(prefix="tandem-test-")
        self.port = free_port()
        self.admin_port = free_port() if admin else None
        os.makedirs(os.path.join(self.dir, "routes"))
        self.write_routes(routes)
        # Every configuration a test starts the gateway on is one users
        # could write: it must pass the shipped schemas too.
        validate_config("routes", {"routes": routes}, "routes/main.json")
        lst = {"name": "public", "address": f"127.0.0.1:{self.port}"}
        lst.update(listener or {})
        cfg = {
            "runtime": {"schedulers": 2},
            "listeners": [lst, *more_listeners],
            "admin": {"address": f"127.0.0.1:{self.admin_port}"} if admin else False,
            "upstreams": upstreams or {},
            "routes": "routes",
            "drain_timeout_ms": 5000,
        }
        cfg.update(extra or {})
        validate_config("config", cfg, "tandem.json")
        self.config = os.path.join(self.dir, "tandem.json")
        with open(self.config, "w") as f:
            _json.dump(cfg, f, indent=2)
        self.stdout = open(os.path.join(self.dir, "stdout.log"), "w+")
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w+")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = _subprocess.Popen([tandem_bin(), "-c", self.config], stdout=self.stdout,
                                      stderr=self.stderr, env=e, preexec_fn=preexec_fn)
        try:
            wait_port(self.port)
            # That was one connection to the public port: a script that
            # depends on the connection count waits until it has been
            # accepted and has ended (await_no_connections).
            self.public_probes = 1
            if self.admin_port:
                # The admin listener opens after the public ones.
                wait_port(self.admin_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError("gateway did not start: " + self.log())

    def write_routes(self, routes, name="main.json"):
        path = os.path.join(self.dir, "routes", name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            _json.dump({"routes": routes}, f, indent=2)
        os.rename(tmp, path)

    def log(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            return f.read()

    def access_log(self):
        """Access-log lines written so far, parsed."""
        self.stdout.flush()
        with open(self.stdout.name) as f:
            return [_json.loads(line) for line in f if line.startswith("{")]

    def stop(self, sig=_signal.SIGTERM, timeout=15):
        """Stops the gateway; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except _subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def close(self):
        self.stop()
        self.stdout.close()
        self.stderr.close()
        _shutil.rmtree(self.dir, ignore_errors=True)


def raw_request(port, data, timeout=5.0, read_all=True):
    """Sends raw bytes; returns everything read until the server closes (or
    the timeout passes)."""
    with _socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                if not read_all:
                    break
        except _socket.timeout:
            pass
        return b"".join(chunks)


def await_no_connections(gw, timeout=10.0):
    """Waits until the gateway's first public listener has accepted the
    start-up probe of its port (a connection closed by the client may still
    wait in the accept queue) and counts no connection. True when so."""
    end = _time.time() + timeout
    quiet = 0
    while _time.time() < end:
        c = _http_client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
        c.request("GET", "/admin/system")
        doc = _json.loads(c.getresponse().read())
        c.close()
        lis = doc["listeners"][0]
        # The acceptor counts a connection as accepted a moment before it
        # counts it open: zero must hold for a while (10 reads, 200 ms).
        quiet = quiet + 1 if (lis["accepted"] >= gw.public_probes and
                              lis["connections"] == 0) else 0
        if quiet >= 10:
            return True
        _time.sleep(0.02)
    return False
