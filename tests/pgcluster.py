"""A throwaway PostgreSQL cluster on loopback in a temporary folder, for the database-source tests
and `bench/db_load.py`. Debian's PostgreSQL (`/usr/lib/postgresql/<version>/bin`; `make test`
installs the `postgresql` package where it is missing).

initdb and pg_ctl refuse to run as root: as root the cluster runs as the `postgres` account the
Debian package creates (or a throwaway system account when there is none), through `runuser`.
The cluster listens on 127.0.0.1 only, on a free port, with its socket in its own folder; password
authentication (scram-sha-256) for every connection, so a wrong password is refused as in real life.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

SUPERUSER = "hx_admin"


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL bin folder, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "handoff-pgtest"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "handoff-pgtest"], check=True)
    return "handoff-pgtest"


class Cluster:
    """initdb + pg_ctl start in a temporary folder; `stop()` stops it and removes the folder."""

    def __init__(self, password: str = "admin-secret") -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql (make test does it)")
        self.bindir = bindir
        self.password = password
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.host = "127.0.0.1"
        if self.user:
            shutil.chown(self.root, self.user)
        pwfile = self.root / "pw"
        pwfile.write_text(password + "\n")
        if self.user:
            shutil.chown(pwfile, self.user)
        self._pg(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        opts = f"-c listen_addresses={self.host} -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "-o", opts, "start")

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def url(self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres") -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", autocommit: bool = True):
        """A psycopg connection as the superuser."""
        import psycopg

        return psycopg.connect(self.url(dbname=dbname), autocommit=autocommit)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
