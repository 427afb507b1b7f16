"""A private PostgreSQL instance (initdb on a free port) for fault, restore and replica
tests and the chaos campaign: the only place that starts one. Tests never stop or
reconfigure the shared server; they break this one instead."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, wait_for
from tests.support.services import unavailable


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def postgres_binaries_available() -> bool:
    return _bindir() is not None


def need_postgres_binaries() -> None:
    """Go on if initdb/pg_ctl are installed; fail under CI, else skip loudly."""
    if postgres_binaries_available():
        return
    message = "needs the PostgreSQL server binaries (initdb, pg_ctl; Debian: postgresql)"
    unavailable(f"CI=true but this test {message}", f"SKIPPED LOUDLY: this test {message}")


class PostgresServer:
    """One PostgreSQL cluster of our own, with trust auth on 127.0.0.1:<free port>.

    As root, the cluster belongs to the ``postgres`` user (initdb refuses root) and
    lives in a fresh directory under the system temp dir, so that user can reach it.
    """

    def __init__(self, name: str = "cordiale-pg", port: int | None = None) -> None:
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.bindir = bindir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must reach its cluster
            shutil.chown(self.root, "postgres", "postgres")

    # -- plumbing ---------------------------------------------------------------

    def _run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    # -- lifecycle --------------------------------------------------------------

    def init(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self._configure(self.data)
        return self

    def _configure(self, data: Path) -> None:
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# cordiale test instance\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nwal_level = replica\nmax_wal_senders = 5\n"
                "shared_buffers = 64MB\n"
            )
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")

    def start(self, timeout: float = 60) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        wait_for(self.answers, timeout, f"PostgreSQL on port {self.port} to answer")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` rolls back open transactions and closes sessions)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def answers(self) -> bool:
        result = self._run(
            "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False, timeout=10
        )
        return result.returncode == 0

    def createdb(self, name: str) -> str:
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, dbname: str, sql: str) -> str:
        result = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname,
            "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        return result.stdout.strip()

    def dump(self, dbname: str) -> Path:
        """``pg_dump`` in the custom format; returns the dump file (inside this cluster's dir)."""
        path = self.root / f"{dbname}.dump"
        self._run(
            "pg_dump",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-Fc",
            "-f",
            str(path),
            dbname,
        )
        return path

    def restore(self, dump: Path, dbname: str) -> str:
        """A new database ``dbname`` restored from ``dump`` (``pg_restore``); returns its URL."""
        self.createdb(dbname)
        self._run(
            "pg_restore",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            dbname,
            "--no-owner",
            str(dump),
        )
        return self.url(dbname)

    def replica(self, name: str = "cordiale-replica") -> PostgresServer:
        """A streaming standby of this server (``pg_basebackup -R``), started."""
        standby = PostgresServer(name)
        self._run_into(standby)
        standby.start()
        return standby

    def _run_into(self, standby: PostgresServer) -> None:
        standby._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        conf = standby.data / "postgresql.conf"
        # The copy carries the primary's settings; the standby listens on its own port/socket.
        text = conf.read_text().replace(f"port = {self.port}", f"port = {standby.port}")
        old_socket = f"unix_socket_directories = '{self.root}'"
        conf.write_text(text.replace(old_socket, f"unix_socket_directories = '{standby.root}'"))
        with open(conf, "a") as extra:
            extra.write("hot_standby = on\n")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(name: str = "cordiale-pg") -> Iterator[PostgresServer]:
    """A started private cluster, destroyed afterwards (skip/fail if binaries are missing)."""
    need_postgres_binaries()
    server = PostgresServer(name).init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
