"""Small helpers for the raw SQL of the hot paths (ingest and feed reads).

The hot paths bypass the ORM and DRF serializers (see the issue figures: a serializer
costs ~40 µs a row). They run on PostgreSQL in production and on SQLite in the
embedded default, so the few constructs that differ are chosen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def in_list(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column IN (...)`` as SQL and parameters; ``= ANY(array)`` on PostgreSQL."""
    if not values:
        return "FALSE" if is_postgres() else "0", []
    if is_postgres():
        if all(type(v) is int for v in values):
            # One array literal: psycopg would otherwise adapt each element in Python.
            return f"{column} = ANY(%s::bigint[])", ["{" + ",".join(map(str, values)) + "}"]
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({','.join(['%s'] * len(values))})", list(values)


def fetchall(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql: str, params: Sequence[Any] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def rfc3339(column: str) -> str:
    """SQL for a timestamp column as RFC 3339 UTC text.

    Formatting in the database spares the hot path parsing a datetime per row in
    Python (it was a third of a feed page's time); the text sorts chronologically.
    """
    if is_postgres():
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    return f"strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', {column})"
