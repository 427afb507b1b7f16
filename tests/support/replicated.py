"""A forum on a private primary with a streaming standby, for the read-replica tests.

``replicated_forum()`` starts a private cluster and its standby (``pg_basebackup -R``),
migrates a database on the primary and points this process's Django connections at it:
``default`` at the primary and ``replica`` at the standby, as
``CORDIALE_REPLICA_DATABASE_URL`` would. The shared server and the test database are
left alone; the connections are put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from django.core.management import call_command
from django.db import connections

from forum.db_routing import REPLICA
from tests.support.postgres import PostgresServer, need_postgres_binaries
from tests.support.processes import wait_for

DBNAME = "cordiale"


@dataclass
class Replicated:
    primary: PostgresServer
    standby: PostgresServer

    def _on(self, server: PostgresServer, sql: str) -> Any:
        with psycopg.connect(server.url(DBNAME), autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

    def pause(self) -> None:
        """Stop replaying WAL on the standby (it keeps receiving it)."""
        self._on(self.standby, "SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self._on(self.standby, "SELECT pg_wal_replay_resume()")

    def flushed_lsn(self) -> str:
        """A WAL position on the primary past every commit so far. The test cluster
        commits asynchronously, so a commit record may not be written yet; a synchronous
        commit of a transaction of our own that wrote WAL (a transactional logical
        message) flushes everything before it."""
        with psycopg.connect(self.primary.url(DBNAME), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            conn.execute("SELECT pg_logical_emit_message(true, 'cordiale-test', 'flush')")
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            return str(row[0])

    def replayed(self, target: str) -> bool:
        return bool(self._on(self.standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'"))

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Until the standby has replayed every transaction committed on the primary so far."""
        target = self.flushed_lsn()
        wait_for(lambda: self.replayed(target), timeout, "the standby to catch up", step=0.02)


def _close_all() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()


@contextlib.contextmanager
def pointed_at(primary_url: str, replica_url: str) -> Iterator[None]:
    """This process's ``default`` connection on ``primary_url``, ``replica`` on ``replica_url``."""
    from urllib.parse import urlsplit

    default = connections.settings["default"]
    saved = dict(default)
    _close_all()
    p, r = urlsplit(primary_url), urlsplit(replica_url)
    default.update(NAME=p.path[1:], HOST=p.hostname, PORT=str(p.port), USER="postgres", PASSWORD="")
    connections.settings[REPLICA] = {**default, "NAME": r.path[1:], "PORT": str(r.port)}
    try:
        yield
    finally:
        _close_all()
        with contextlib.suppress(AttributeError):
            del connections[REPLICA]
        del connections.settings[REPLICA]
        default.clear()
        default.update(saved)


@contextlib.contextmanager
def replicated_forum(django_db_blocker: Any) -> Iterator[Replicated]:
    """A migrated forum database on a private primary, streamed to a standby."""
    need_postgres_binaries()
    primary = PostgresServer("cordiale-primary").init()
    primary.start()
    standby: PostgresServer | None = None
    try:
        primary.createdb(DBNAME)
        standby = primary.replica("cordiale-standby")
        with django_db_blocker.unblock(), pointed_at(primary.url(DBNAME), standby.url(DBNAME)):
            call_command("migrate", verbosity=0, interactive=False)
            cluster = Replicated(primary, standby)
            cluster.wait_caught_up(60)
            yield cluster
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()
