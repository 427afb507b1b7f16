"""Issuing receipts for statements stored before the forum signed receipts.

Statements accepted since receipts exist get theirs at ingest (``exchange/receipts.py``).
Older rows are signed here with their stored receipt time: once by migration
``exchange.0007``, and again by ``python manage.py issue_receipts`` after restoring a
backup taken before it. Rows that have a receipt are left alone, so running it twice
does no harm.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from exchange.receipts import receipt_sign
from members.forum_key import forum_key

BATCH = 2000


def statements_issue_receipts(*, batch: int = BATCH) -> int:
    """Sign a receipt for every statement that has none; returns how many were signed.

    Raw SQL on the columns receipts need, so that migration 0007 can run this whatever
    later migrations add to the model.
    """
    signed = 0
    after = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, jti, member_slug, kid, received_at FROM exchange_statement "
                "WHERE receipt = '' AND id > %s ORDER BY id LIMIT %s",
                [after, batch],
            )
            rows = cursor.fetchall()
            if not rows:
                return signed
            key = forum_key()
            updates = [
                (
                    receipt_sign(jti=jti, member=member, kid=kid, received_at=_aware(at), key=key),
                    pk,
                )
                for pk, jti, member, kid, at in rows
            ]
            cursor.executemany("UPDATE exchange_statement SET receipt = %s WHERE id = %s", updates)
        signed += len(rows)
        after = rows[-1][0]


def _aware(value: datetime | str) -> datetime:
    # SQLite hands timestamps back as text.
    if isinstance(value, str):
        parsed = parse_datetime(value)
        assert parsed is not None
        return parsed
    return value
