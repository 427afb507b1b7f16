"""Database URLs for processes a test starts, and scratch databases for benchmarks."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def database_url() -> str:
    """The URL of the database Django uses in this process (the test database)."""
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def database_url_named(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name`` (same server, same user)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_recreate(admin_url: str, name: str) -> str:
    """Drop database ``name`` (closing its connections) if it exists, create it empty;
    ``admin_url`` is any database of the same server. Returns the new database's URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url_named(admin_url, name)


def database_drop(admin_url: str, name: str) -> None:
    """Drop database ``name``, closing its connections, if it exists."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
