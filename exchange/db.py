"""Small helpers for the raw SQL of the hot paths (ingest and feed reads).

The hot paths bypass the ORM and DRF serializers (see the issue figures: a serializer
costs ~40 µs a row). They run on PostgreSQL in production and on SQLite in the
embedded default, so the few constructs that differ are chosen here. Reads
(``fetchall``) follow the router of ``forum/db_routing.py``; writes use the primary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from django.db import connection, connections

from forum.db_routing import read_alias


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
        if all(type(v) is str for v in values):
            # Likewise one JSON document. Callers pass validated values (signal values,
            # jti): no NUL, no lone surrogate, which neither path could send anyway.
            return (
                f"{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
                [json_rows(values)],
            )
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({','.join(['%s'] * len(values))})", list(values)


def signal_value_in(values: Sequence[str], column: str = "value") -> tuple[str, list[Any]]:
    """``column IN values`` for signal values, as SQL the signals index can serve.

    Signals are unique on (signal_type, md5(value)) rather than on the value itself:
    PostgreSQL's b-tree entries hold at most about 2.7 kB and a vpdq value of an hour of
    video is ~300 kB (migration 0008). A lookup by value therefore names the digest, which
    the index finds, and the value, which keeps the answer exact. Put ``signal_type = ...``
    before this clause. The digest is taken in SQL, so it never depends on the client's
    idea of the database encoding.
    """
    if not values:
        return in_list(column, [])
    if len(values) == 1:
        return signal_value_is("%s", column), [values[0], values[0]]
    if is_postgres():
        return (
            f"md5({column}) = ANY(ARRAY(SELECT md5(v) FROM jsonb_array_elements_text(%s::jsonb)"
            f" AS v)) AND {column} = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
            [json_rows(values), json_rows(values)],
        )
    marks = ",".join(["%s"] * len(values))
    digests = ",".join(["md5(%s)"] * len(values))
    return f"md5({column}) IN ({digests}) AND {column} IN ({marks})", [*values, *values]


def signal_value_is(expression: str, column: str = "value") -> str:
    """``column = expression`` for one signal value per row (a join): see ``signal_value_in``."""
    return f"md5({column}) = md5({expression}) AND {column} = {expression}"


def json_rows(rows: Sequence[Any]) -> str:
    """Rows as one JSON parameter for ``jsonb_array_elements(%s::jsonb) AS x``.

    Passing a batch as one document encoded by orjson costs ~3 ms of Python per 1,000
    statement rows where psycopg's array adaptation cost ~30 ms (it quotes every element
    in Python); PostgreSQL parses the document in C. Read the fields with ``json_fields``.
    """
    return orjson.dumps(rows).decode()


def json_fields(*types: str) -> str:
    """The select list reading ``json_rows`` element ``x``: ``(x->>0)::bigint, ...``.

    ``text`` fields are read as is, ``jsonb`` ones as nested JSON, the rest cast.
    """
    fields = []
    for i, kind in enumerate(types):
        if kind == "text":
            fields.append(f"x->>{i}")
        elif kind == "jsonb":
            fields.append(f"x->{i}")
        else:
            fields.append(f"(x->>{i})::{kind}")
    return ", ".join(fields)


@contextmanager
def bulk_cursor() -> Iterator[Any]:
    """A cursor for the batch statements that pass one ``json_rows`` document.

    On PostgreSQL the document travels as a bound parameter (server-side binding)
    instead of being quoted into the SQL text, as Django's client-side cursors do: for
    1,000 statement rows that saves ~3 ms of Python and ~5 ms of the server's time,
    which no longer lexes a 600 kB literal. Same connection and transaction as the
    ORM, and errors arrive as Django's database exceptions. On SQLite, the usual cursor.
    """
    if not is_postgres():
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def fetchall(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read, on the database of the enclosing ``read_snapshot()`` block (the
    primary outside one: ``forum/db_routing.py``)."""
    with connections[read_alias()].cursor() as cursor:
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
