"""The private PostgreSQL helper that fault, restore and replica tests stand on."""

from __future__ import annotations

import time

import psycopg

from tests.support.postgres import private_postgres
from tests.support.processes import wait_for


def test_a_private_cluster_restarts_dumps_restores_and_streams_to_a_replica() -> None:
    """What the fault tests rely on works: a restart loses no committed row, a dump
    restores into a new database, and a standby made by pg_basebackup follows writes."""
    with private_postgres() as server:
        url = server.createdb("drill")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (1)")
        server.restart()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        restored = server.restore(server.dump("drill"), "drill_restored")
        with psycopg.connect(restored, autocommit=True) as conn:
            assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
        standby = server.replica()
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("INSERT INTO t VALUES (2)")

            def replicated() -> bool:
                with psycopg.connect(standby.url("drill"), autocommit=True) as conn:
                    return conn.execute("SELECT count(*) FROM t").fetchone() == (2,)

            started = time.monotonic()
            wait_for(replicated, 30, "the standby to replay the insert")
            assert time.monotonic() - started < 30
            with psycopg.connect(standby.url("drill"), autocommit=True) as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        finally:
            standby.destroy()
