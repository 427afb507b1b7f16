"""Reads that may be served by a streaming replica, and the router that sends them there.

With ``CORDIALE_REPLICA_DATABASE_URL`` set, ``DATABASES["replica"]`` names a physical
standby of the primary (``pg_basebackup -R``, or a managed read replica). Nothing goes
there by default: writes, migrations and every read outside a ``read_snapshot()`` block
use the primary. A caller that can tolerate reading the past opts in per block, and
gets the replica only when all of these hold:

- no transaction is open on the primary (what a write transaction reads must be what
  it writes against);
- the replica answers and its replay lag is at most ``CORDIALE_REPLICA_MAX_LAG``
  seconds (lag: 0 while it streams and has replayed all it received, else the age of
  the last transaction it replayed);
- it has replayed at least up to ``at_least``, a WAL position (LSN, in bytes) that an
  earlier read handed to the caller: reads are monotonic. A physical standby replays
  the primary's WAL in order, so its state at replay position L holds every
  transaction whose commit record lies before L, and nothing committed after a
  transaction it lacks. A reader that saw state S (on the primary or on a further
  replica) and then read a replica that has not reached S would step back in time:
  for the change feed, a member removed from a group would get that group's signals
  back after their tombstones.

Inside the block every query runs in one ``REPEATABLE READ READ ONLY`` transaction on
the chosen database (hot standbys allow that level), so the reads of one block see one
state, and ``ReadSnapshot.position()`` gives the WAL position to hand back for the next
block: ``pg_current_wal_insert_lsn()`` on the primary (every transaction visible to the
block inserted its commit record before it), ``pg_last_wal_replay_lsn()`` on a replica.
The primary's insert position can sit just past a page header that a standby never
reports as replayed until the next WAL record; that sends one more read to the primary
on an idle server, never a read to a replica that is behind.

This module knows no app: ``exchange/selectors.py`` opts the change feed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from forum.metrics import record_read_route

logger = logging.getLogger(__name__)

REPLICA = "replica"
# After a failed attempt to reach the replica, how long reads skip it (seconds): a down
# replica must not add a connect timeout to every read.
RETRY_AFTER = 5.0

_reading: ContextVar[str | None] = ContextVar("cordiale_read_database", default=None)
_replica_down_until = 0.0


class ReplicaRouter:
    """Writes and migrations go to the primary; reads to the database of the enclosing
    ``read_snapshot()`` block, else to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _reading.get()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, seen through two connections

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # a physical replica gets its schema by replaying WAL


def read_alias() -> str:
    """The database that reads of the current block go to (the primary outside one)."""
    return _reading.get() or DEFAULT_DB_ALIAS


def replica_configured() -> bool:
    return REPLICA in connections.settings


@dataclass(frozen=True)
class ReplicaStatus:
    replay_lsn: int
    lag_seconds: float


def replica_status() -> ReplicaStatus:
    """The replica's replay position and lag; DatabaseError if it does not answer, and
    RuntimeError if it is not a standby (promoted, or misconfigured)."""
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
            "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AND EXISTS "
            "(SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0 "
            "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
        )
        in_recovery, replay, lag = cursor.fetchone()
    if not in_recovery or replay is None:
        raise RuntimeError("the replica database is not a standby in recovery")
    return ReplicaStatus(replay_lsn=int(replay), lag_seconds=max(0.0, float(lag)))


def primary_lsn() -> int:
    """The primary's current WAL write position, in bytes (for the lag in bytes)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cursor.fetchone()[0])


def choose_database(*, at_least: int) -> tuple[str, str]:
    """``(alias, reason)``: where a read that has seen WAL position ``at_least`` may go."""
    global _replica_down_until
    if not replica_configured():
        return DEFAULT_DB_ALIAS, "no_replica"
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS, "in_transaction"
    if time.monotonic() < _replica_down_until:
        return DEFAULT_DB_ALIAS, "unavailable"
    try:
        status = replica_status()
    except (DatabaseError, RuntimeError):
        logger.warning("read replica unavailable; reading from the primary", exc_info=True)
        _replica_down_until = time.monotonic() + RETRY_AFTER
        connections[REPLICA].close()
        return DEFAULT_DB_ALIAS, "unavailable"
    if status.lag_seconds > settings.CORDIALE_REPLICA_MAX_LAG:
        return DEFAULT_DB_ALIAS, "lag"
    if status.replay_lsn < at_least:
        return DEFAULT_DB_ALIAS, "behind_reader"
    return REPLICA, "replica"


class ReadSnapshot:
    """The open block of ``read_snapshot()``: where it reads, and up to where."""

    def __init__(self, alias: str, reason: str) -> None:
        self.alias = alias
        self.reason = reason

    def position(self) -> int:
        """A WAL position the state read in this block does not go beyond (0 on SQLite)."""
        connection = connections[self.alias]
        if connection.vendor != "postgresql":
            return 0
        function = (
            "pg_last_wal_replay_lsn()" if self.alias == REPLICA else "pg_current_wal_insert_lsn()"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function} - '0/0'::pg_lsn")
            return int(cursor.fetchone()[0])


@contextmanager
def read_snapshot(*, at_least: int = 0, replica: bool = True) -> Iterator[ReadSnapshot]:
    """Run the block's reads in one read-only snapshot, on the replica when allowed and
    safe (see the module docstring), else on the primary."""
    if replica:
        alias, reason = choose_database(at_least=at_least)
    else:
        alias, reason = DEFAULT_DB_ALIAS, "primary_only"
    if reason != "no_replica":
        record_read_route(alias, reason)
    connection = connections[alias]
    token = _reading.set(alias)
    try:
        if connection.in_atomic_block:
            # Inside a caller's transaction: its snapshot rules.
            yield ReadSnapshot(alias, reason)
            return
        with transaction.atomic(using=alias):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield ReadSnapshot(alias, reason)
    finally:
        _reading.reset(token)


class ReplicaCollector:
    """For ``/metrics`` (registered by ``exchange/metrics.py``): the read replica's lag in
    seconds (as ``choose_database`` judges it) and in bytes of WAL behind the primary,
    and whether it answers; nothing without a replica."""

    def collect(self) -> Iterator[Metric]:
        if not replica_configured():
            return
        up = GaugeMetricFamily(
            "cordiale_replica_up", "1 if the read replica answers as a standby, else 0."
        )
        try:
            status = replica_status()
        except Exception:
            logger.warning("read replica unavailable for metrics", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "cordiale_replica_lag_seconds",
            "Age of the last transaction the replica replayed while it has WAL left to replay "
            "or is not streaming (0: caught up).",
            status.lag_seconds,
        )
        yield GaugeMetricFamily(
            "cordiale_replica_lag_bytes",
            "WAL the primary has written that the replica has not replayed yet.",
            max(0, primary_lsn() - status.replay_lsn),
        )
