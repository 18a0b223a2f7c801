#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests.

A cluster is made in a fresh temporary directory (initdb -N --auth=trust,
fsync off: a test cluster need not survive a power cut), listens on a free
loopback TCP port and on a unix socket in that directory, and gets one
database, "tandem". When run as root the server runs as the unprivileged
user `postgres` (initdb and postgres refuse root): the directory is handed
to that user. At exit the server is stopped and the directory deleted.

Use:
  pgserver.py run -- CMD ARGS...   start, run CMD with the variables below
                                   set, stop; exits with CMD's status
  pgserver.py restart DATADIR      restart a server this script started
                                   (tests use it to cut connections)
  pgserver.py shell                start, print the variables, wait for ^C

Variables given to CMD:
  TANDEM_TEST_PG_CONNINFO  libpq connection string (TCP on 127.0.0.1)
  TANDEM_TEST_PG_DATADIR   the cluster's directory
  TANDEM_TEST_PG_RESTART   a command line that restarts the server (fast
                           shutdown: open connections are terminated)

From Python: `with PgServer() as pg: pg.conninfo ...`.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

PG_BIN = os.environ.get("TANDEM_PG_BIN", "/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"


def _as_user_prefix():
    """The command prefix that drops root to RUN_AS; empty when not root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", RUN_AS, "--"]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_ctl(datadir, *args, check=True):
    cmd = _as_user_prefix() + [os.path.join(PG_BIN, "pg_ctl"), "-D", datadir, *args]
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def restart(datadir):
    """Fast restart: connections are terminated, the port stays the same."""
    r = _pg_ctl(datadir, "-w", "-t", "30", "-m", "fast",
                "-l", os.path.join(datadir, "..", "server.log"), "restart", check=False)
    if r.returncode != 0:
        raise RuntimeError("pg_ctl restart failed:\n" + r.stdout)


class PgServer:
    def __init__(self, durable=False):
        # durable: fsync on, as a production server (benchmarks); tests
        # leave it off.
        self.durable = durable
        self.tmp = None
        self.datadir = None
        self.port = None
        self.conninfo = None
        self.started = False

    def start(self):
        # A start that fails half way (createdb after the server runs)
        # leaves nothing behind: the caller has no server to stop.
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.tmp = tempfile.mkdtemp(prefix="tandem-pg-")
        self.datadir = os.path.join(self.tmp, "data")
        sockdir = os.path.join(self.tmp, "sock")
        os.mkdir(sockdir)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            for p in (self.tmp, sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o700)
        user = RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        r = subprocess.run(
            _as_user_prefix() + [os.path.join(PG_BIN, "initdb"), "-N", "--auth=trust",
                                 "-U", user, "-E", "UTF8", "--locale=C", "-D", self.datadir],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout)
        # A port found free may be taken by the time the server binds it
        # (other tests run at once): try a few.
        last = ""
        for _ in range(5):
            self.port = _free_port()
            with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
                f.write(f"port = {self.port}\n"
                        "listen_addresses = '127.0.0.1'\n"
                        f"unix_socket_directories = '{sockdir}'\n"
                        + ("" if self.durable else "fsync = off\nfull_page_writes = off\n") +
                        "max_connections = 50\nshared_buffers = 16MB\n")
            r = _pg_ctl(self.datadir, "-w", "-t", "30",
                        "-l", os.path.join(self.tmp, "server.log"), "start", check=False)
            if r.returncode == 0:
                self.started = True
                break
            last = r.stdout + self._log_tail()
        if not self.started:
            raise RuntimeError("postgres did not start:\n" + last)
        r = subprocess.run(
            _as_user_prefix() + [os.path.join(PG_BIN, "createdb"), "-h", sockdir,
                                 "-p", str(self.port), "-U", user, "tandem"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("createdb failed:\n" + r.stdout)
        self.conninfo = (f"host=127.0.0.1 hostaddr=127.0.0.1 port={self.port} "
                         f"dbname=tandem user={user} connect_timeout=10")
        return self

    def _log_tail(self):
        try:
            with open(os.path.join(self.tmp, "server.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def env(self):
        e = {
            "TANDEM_TEST_PG_CONNINFO": self.conninfo,
            "TANDEM_TEST_PG_DATADIR": self.datadir,
            "TANDEM_TEST_PG_RESTART": " ".join(
                [sys.executable, os.path.abspath(__file__), "restart", self.datadir]),
        }
        return e

    def stop(self):
        if self.started:
            _pg_ctl(self.datadir, "-w", "-t", "30", "-m", "immediate", "stop", check=False)
            self.started = False
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if len(argv) >= 2 and argv[1] == "restart" and len(argv) == 3:
        restart(argv[2])
        return 0
    if len(argv) >= 2 and argv[1] == "shell":
        with PgServer() as pg:
            for k, v in pg.env().items():
                print(f"export {k}='{v}'")
            sys.stdout.flush()
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    if len(argv) >= 4 and argv[1] == "run" and argv[2] == "--":
        pg = PgServer()
        # SIGTERM (meson's timeout) must still stop the server.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            pg.start()
            env = dict(os.environ)
            env.update(pg.env())
            r = subprocess.run(argv[3:], env=env)
            if r.returncode != 0:
                sys.stderr.write("--- postgres log (tail) ---\n" + pg._log_tail())
            return r.returncode if r.returncode >= 0 else 128 - r.returncode
        finally:
            pg.stop()
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
