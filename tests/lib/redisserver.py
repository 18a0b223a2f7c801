#!/usr/bin/env python3
"""A throwaway Redis server for tests.

redis-server runs in a fresh temporary directory, on a free loopback TCP
port, with persistence off (no RDB snapshot, no AOF: a test server need
not survive a restart), optionally with a password. It can be stopped and
started again on the same port, which the tests use to cut connections and
to bring Redis back. At exit it is stopped and the directory deleted.

Use:
  redisserver.py run -- CMD ARGS...   start, run CMD with the variables
                                      below set, stop; exits with CMD's status
  redisserver.py shell                start, print the variables, wait for ^C

Variables given to CMD:
  TANDEM_TEST_REDIS_PORT      the port (on 127.0.0.1)
  TANDEM_TEST_REDIS_PASSWORD  the password clients must AUTH with
  TANDEM_TEST_REDIS_CTL       a command line: `... stop`, `... start` (the
                              same port again) and `... cli ARGS` (redis-cli)

From Python: `with RedisServer() as r: r.port ... r.stop(); r.start()`.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REDIS_SERVER = os.environ.get("TANDEM_REDIS_SERVER", "redis-server")
REDIS_CLI = os.environ.get("TANDEM_REDIS_CLI", "redis-cli")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid):
    """True while `pid` runs. The daemon's parent is whoever reaps orphans
    (in a container that may be slow to), so a zombie counts as gone: it
    holds no socket."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class RedisServer:
    def __init__(self, password=None, tmp=None, port=None):
        self.password = password
        self.tmp = tmp
        self.port = port
        self.own_tmp = tmp is None
        self.started = False

    def _conf(self):
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.tmp}",
            f"pidfile {self.tmp}/redis.pid",
            f"logfile {self.tmp}/redis.log",
            "daemonize yes",
            'save ""',
            "appendonly no",
            "protected-mode no",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        path = os.path.join(self.tmp, "redis.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _pid(self):
        try:
            with open(os.path.join(self.tmp, "redis.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                auth = (f"AUTH {self.password}\r\n" if self.password else "")
                s.sendall((auth + "PING\r\n").encode())
                data = b""
                deadline = time.monotonic() + 1
                while b"PONG" not in data and time.monotonic() < deadline:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return b"PONG" in data
        except OSError:
            return False

    def start(self):
        """Starts the server; on the same port as before when restarted."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="tandem-redis-")
        # A port found free may be taken by the time the server binds it
        # (other tests run at once): try a few. A restart keeps its port.
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = _free_port()
            r = subprocess.run([REDIS_SERVER, self._conf()], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 10
            while r.returncode == 0 and time.monotonic() < deadline:
                if self._ping():
                    self.started = True
                    return self
                if self._pid() is None and time.monotonic() > deadline - 9:
                    break  # it exited (port taken)
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start:\n" + self.log_tail())

    def stop(self):
        """Stops the server at once (SIGKILL: no goodbye to clients, as a
        crash); the directory stays for a restart."""
        pid = self._pid() if self.tmp else None
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.01)
            try:
                os.unlink(os.path.join(self.tmp, "redis.pid"))
            except OSError:
                pass
        self.started = False

    def cleanup(self):
        self.stop()
        if self.tmp and self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def cli(self, *args):
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.password:
            cmd += ["-a", self.password]
        r = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        return r.stdout.strip()

    def log_tail(self):
        try:
            with open(os.path.join(self.tmp, "redis.log")) as f:
                return f.read()[-4000:]
        except (OSError, TypeError):
            return ""

    def env(self):
        return {
            "TANDEM_TEST_REDIS_PORT": str(self.port),
            "TANDEM_TEST_REDIS_PASSWORD": self.password or "",
            "TANDEM_TEST_REDIS_CTL": " ".join(
                [sys.executable, os.path.abspath(__file__), "ctl", self.tmp, str(self.port),
                 self.password or "-"]),
        }

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def main(argv):
    if len(argv) >= 6 and argv[1] == "ctl":
        tmp, port, pw = argv[2], int(argv[3]), argv[4]
        r = RedisServer(password=None if pw == "-" else pw, tmp=tmp, port=port)
        r.started = r._pid() is not None
        if argv[5] == "stop":
            r.stop()
            return 0
        if argv[5] == "start":
            r.start()
            return 0
        if argv[5] == "cli":
            print(r.cli(*argv[6:]))
            return 0
    if len(argv) >= 2 and argv[1] == "shell":
        with RedisServer(password="test-secret") as r:
            for k, v in r.env().items():
                print(f"export {k}='{v}'")
            sys.stdout.flush()
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    if len(argv) >= 4 and argv[1] == "run" and argv[2] == "--":
        r = RedisServer(password="test-secret")
        # SIGTERM (meson's timeout) must still stop the server.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            r.start()
            env = dict(os.environ)
            env.update(r.env())
            p = subprocess.run(argv[3:], env=env)
            if p.returncode != 0:
                sys.stderr.write("--- redis log (tail) ---\n" + r.log_tail())
            return p.returncode if p.returncode >= 0 else 128 - p.returncode
        finally:
            r.cleanup()
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
