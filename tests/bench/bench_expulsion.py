"""Benchmark: expelling a member with many statements (not collected by pytest).

    python tests/bench/bench_expulsion.py [--statements 100000] [--runs 3] [--code DIR]

Creates a scratch PostgreSQL database (``--pg``, default 127.0.0.1:5432 as postgres;
name ``--db``), migrates it, and per run creates a member whose ``--statements``
forum assertions (on as many signals) are inserted with one SQL statement each for
signals, statements and current statements, then expels it with ``member_set_status``.
Meanwhile a second connection takes the feed lock in a tiny transaction every 20 ms,
as every submission does, and records how long it waited.

Prints, as medians over the runs: the expulsion's wall time, the longest wait for the
feed lock by that concurrent writer, and the number of feed rows written; next to the
ceiling measured in the same run on a copy of the same rows: the bare set-based work
(one ``UPDATE`` of the statements and one of the current statements, rolled back).
``--code`` imports the forum from another checkout (to measure an older version with
the same script). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _setup(code: Path, database_url: str) -> None:
    sys.path.insert(0, str(code))
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "forum.settings"
    import django

    import tests.bench  # noqa: F401  (the throwaway forum key)

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _member(n: int, statements: int) -> Any:
    """A member with ``statements`` live forum assertions, inserted set-based."""
    from django.db import connection

    from members.models import Member, SigningKey

    member = Member.objects.create(slug=f"big-{n}", name=f"Big {n}", status="active")
    key = SigningKey.objects.create(member=member, kid=f"kid-{n}", x=f"x-{n}", status="active")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM exchange_signal")
        first = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO exchange_signal (signal_type, value, created_at) "
            "SELECT 'pdq', md5(%s || g::text) || md5(g::text || %s), now() "
            "FROM generate_series(1, %s) AS g",
            [f"run{n}", f"run{n}", statements],
        )
        cursor.execute(
            "INSERT INTO exchange_statement (member_id, signing_key_id, signal_id, member_slug, "
            "kid, jti, iat, op, labels, tlp, audience, content_type, ref, jws, token_digest, "
            "received_at, receipt, withdrawn_reason) "
            "SELECT %s, %s, s.id, %s, %s, 'j' || s.id, 1764400000, 'assert', '[\"x\"]', "
            "'green', 'forum', '', '', 'jws', md5(s.id::text), now(), '', '' "
            "FROM exchange_signal s WHERE s.id > %s",
            [member.pk, key.pk, member.slug, key.kid, first],
        )
        cursor.execute(
            "INSERT INTO exchange_currentstatement "
            "(member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
            "SELECT member_id, signal_id, id, iat, 0, NULL, false FROM exchange_statement "
            "WHERE member_id = %s",
            [member.pk],
        )
    return member


def _ceiling(member_id: int) -> float:
    """The bare set-based withdrawal of the member's rows, in one transaction, undone."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE exchange_statement SET withdrawn_at = now(), withdrawn_reason = 'bench' "
            "WHERE member_id = %s",
            [member_id],
        )
        cursor.execute(
            "UPDATE exchange_currentstatement SET audience = NULL WHERE member_id = %s",
            [member_id],
        )
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


class FeedLockProbe(threading.Thread):
    """Takes the feed lock in a tiny transaction every 20 ms; keeps the longest wait."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.longest = 0.0

    def run(self) -> None:
        from django.db import connection, transaction

        from exchange.feed import feed_lock

        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                with transaction.atomic():
                    feed_lock()
                self.longest = max(self.longest, time.perf_counter() - started)
                time.sleep(0.02)
        finally:
            connection.close()


def _run(n: int, statements: int) -> tuple[float, float, float, int]:
    from exchange.models import FeedEntry
    from members.services import member_set_status

    member = _member(n, statements)
    ceiling = _ceiling(member.pk)
    rows_before = FeedEntry.objects.count()
    probe = FeedLockProbe()
    probe.start()
    time.sleep(0.1)
    started = time.perf_counter()
    member_set_status(member=member, status="expelled", actor="bench")
    elapsed = time.perf_counter() - started
    probe.stop.set()
    probe.join()
    return elapsed, probe.longest, ceiling, FeedEntry.objects.count() - rows_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db", default="cordiale_bench_expulsion")
    parser.add_argument("--code", type=Path, default=ROOT)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.support.database import database_drop, database_recreate

    database_url = database_recreate(args.pg, args.db)
    try:
        _setup(args.code.resolve(), database_url)
        results = [_run(n, args.statements) for n in range(args.runs)]
        from django.db import connections

        connections.close_all()
    finally:
        database_drop(args.pg, args.db)
    wall, wait, ceiling, rows = (statistics.median(r[i] for r in results) for i in range(4))
    print(f"code: {args.code.resolve().name}; {args.statements:,} statements, {args.runs} runs")
    print(f"expulsion wall time (median): {wall:.2f} s")
    print(f"longest feed-lock wait of a concurrent writer (median): {wait:.2f} s")
    print(f"feed rows written (median): {rows:,.0f}")
    print(f"ceiling, the bare set-based UPDATEs in one transaction (median): {ceiling:.2f} s")
    print(f"expulsion / ceiling: {wall / ceiling:.1f}x")


if __name__ == "__main__":
    main()
