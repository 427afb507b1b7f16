"""Storing accepted statements: signals, statement rows, current statements and feed
rows, as a few batch statements (see ``exchange.db.json_rows``)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from exchange.client.statement_format import OP_ASSERT
from exchange.db import (
    bulk_cursor,
    fetchall,
    in_list,
    is_postgres,
    json_fields,
    json_rows,
    signal_value_in,
    signal_value_is,
)
from exchange.feed import FeedChange, before_change, feed_append
from exchange.liveness import live
from exchange.receipts import receipt_sign
from members.forum_key import ForumKey, forum_key
from members.models import Member

from .checks import Item

# Signals that exist already, for a ``json_rows`` list of (type, value) pairs; through
# the (signal_type, md5(value)) index (see ``exchange.db.signal_value_in``).
EXISTING_SIGNALS_SQL = (
    "SELECT s.id, s.signal_type, s.value FROM exchange_signal s "
    "JOIN jsonb_array_elements(%s::jsonb) AS x "
    f"ON s.signal_type = x->>0 AND {signal_value_is('x->>1', 's.value')}"
)


def _signal_ids(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    # Sorted, so that concurrent batches of different members that share signals take
    # the unique-index locks of new signals in the same order instead of deadlocking.
    unique = sorted(set(pairs))
    now = timezone.now()
    with bulk_cursor() as cursor:
        if is_postgres():
            payload = json_rows(unique)
            cursor.execute(
                "INSERT INTO exchange_signal (signal_type, value, created_at) "
                f"SELECT {json_fields('text', 'text')}, %s "
                "FROM jsonb_array_elements(%s::jsonb) AS x "
                "ON CONFLICT DO NOTHING RETURNING id, signal_type, value",
                [now, payload],
            )
            rows = cursor.fetchall()
            if len(rows) < len(unique):
                # Signals that existed already (or a concurrent batch just inserted).
                cursor.execute(EXISTING_SIGNALS_SQL, [payload])
                rows = cursor.fetchall()
        else:
            cursor.executemany(
                "INSERT INTO exchange_signal (signal_type, value, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(t, v, now) for t, v in unique],
            )
            rows = []
            for t, v in unique:
                clause, params = signal_value_in([v])
                cursor.execute(
                    "SELECT id, signal_type, value FROM exchange_signal "
                    f"WHERE signal_type = %s AND {clause}",
                    [t, *params],
                )
                rows.extend(cursor.fetchall())
    return {(r[1], r[2]): int(r[0]) for r in rows}


def _store(member: Member, items: list[Item]) -> None:
    """Apply newest-iat-wins against the member's current statements, then store."""
    signal_ids = _signal_ids([(i.claims["signal_type"], i.claims["value"]) for i in items])
    ids = list(set(signal_ids.values()))
    clause, params = in_list("signal_id", ids)
    rows = fetchall(
        f"SELECT signal_id, iat, audience, exp, lapsed FROM exchange_currentstatement "
        f"WHERE member_id = %s AND {clause}",
        [member.pk, *params],
    )
    current: dict[int, int] = {int(r[0]): int(r[1]) for r in rows}
    before = {int(r[0]): (r[2], r[3], bool(r[4])) for r in rows}
    winners: dict[int, Item] = {}
    accepted: list[tuple[int, Item]] = []
    for item in items:
        found = signal_ids.get((item.claims["signal_type"], item.claims["value"]))
        if found is None:
            # Another value with the same md5 holds the index entry: only a value
            # crafted for it can collide, and it must not fail the whole batch.
            item.reject("invalid_value", "This value cannot be stored; it collides with another.")
            continue
        signal_id = found
        held = current.get(signal_id)
        if held is not None and held >= item.claims["iat"]:
            item.finish("stale")
            continue
        item.finish("accepted")
        current[signal_id] = item.claims["iat"]
        winners[signal_id] = item
        accepted.append((signal_id, item))
    if not accepted:
        return
    statement_ids = _insert_statements(member, accepted)
    _upsert_current(member, winners, statement_ids)
    # Rows for the audience that saw the old statement and the one that sees the new
    # one; an assertion that is lapsed on arrival was never visible and gets none.
    now = int(time.time())
    feed: list[FeedChange] = []
    for signal_id, item in winners.items():
        if signal_id in before:
            owed = before_change(*before[signal_id], now)
            if owed is not None:
                feed.append((owed[0], signal_id, owed[1]))
        if item.audience_key is not None and live(item.claims.get("exp"), now):
            feed.append((item.audience_key, signal_id))
    feed_append(feed)


_STATEMENT_COLUMNS = (
    "member_id, signing_key_id, signal_id, member_slug, kid, jti, iat, op, labels, tlp, "
    "audience, group_id, exp, content_type, ref, jws, token_digest, benign, receipt, "
    "received_at, withdrawn_reason"
)
# The types of a ``_statement_row``, for reading it back from JSON.
_STATEMENT_TYPES = (
    *("bigint", "bigint", "bigint", "text", "text", "text", "bigint", "text"),
    *("jsonb", "text", "text", "bigint", "bigint", "text", "text", "text", "text", "boolean"),
    "text",
)


def _statement_row(
    member: Member, signal_id: int, item: Item, received_at: datetime, forum: ForumKey
) -> tuple[Any, ...]:
    """The columns of ``_STATEMENT_COLUMNS`` up to ``receipt``."""
    c = item.claims
    assert item.key is not None
    is_assert = c["op"] == OP_ASSERT
    return (
        member.pk,
        item.key.pk,
        signal_id,
        member.slug,
        item.key.kid,
        c["jti"],
        c["iat"],
        c["op"],
        c.get("labels") if is_assert else [],
        c.get("tlp", "") if is_assert else "",
        c.get("audience", "") if is_assert else "",
        item.group_id,
        c.get("exp") if is_assert else None,
        c.get("content_type") or "",
        c.get("ref") or "",
        item.token,
        item.digest,
        item.benign,
        receipt_sign(
            jti=c["jti"], member=member.slug, kid=item.key.kid, received_at=received_at, key=forum
        ),
    )


def _insert_statements(member: Member, accepted: list[tuple[int, Item]]) -> dict[str, int]:
    """Insert the accepted statements; their ids by jti."""
    now = timezone.now()
    forum = forum_key()
    rows = [_statement_row(member, signal_id, item, now, forum) for signal_id, item in accepted]
    with bulk_cursor() as cursor:
        if is_postgres():
            cursor.execute(
                f"INSERT INTO exchange_statement ({_STATEMENT_COLUMNS}) "
                f"SELECT {json_fields(*_STATEMENT_TYPES)}, %s, '' "
                "FROM jsonb_array_elements(%s::jsonb) AS x RETURNING id, jti",
                [now, json_rows(rows)],
            )
            return {jti: int(pk) for pk, jti in cursor.fetchall()}
        out: dict[str, int] = {}
        for row in rows:
            cursor.execute(
                f"INSERT INTO exchange_statement ({_STATEMENT_COLUMNS}) "
                f"VALUES ({', '.join(['%s'] * 20)}, '')",
                [*row[:8], orjson.dumps(row[8]).decode(), *row[9:], now],
            )
            out[row[5]] = int(cursor.lastrowid)
        return out


def _upsert_current(member: Member, winners: dict[int, Item], ids: dict[str, int]) -> None:
    rows = [
        (
            member.pk,
            signal_id,
            ids[item.claims["jti"]],
            item.claims["iat"],
            item.audience_key,
            item.claims.get("exp") if item.audience_key is not None else None,
        )
        for signal_id, item in winners.items()
    ]
    sql_tail = (
        "ON CONFLICT (member_id, signal_id) DO UPDATE SET statement_id = excluded.statement_id, "
        "iat = excluded.iat, audience = excluded.audience, exp = excluded.exp, lapsed = FALSE"
    )
    with bulk_cursor() as cursor:
        if is_postgres():
            cursor.execute(
                "INSERT INTO exchange_currentstatement "
                "(member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
                f"SELECT {json_fields(*['bigint'] * 6)}, FALSE "
                "FROM jsonb_array_elements(%s::jsonb) AS x " + sql_tail,
                [json_rows(rows)],
            )
        else:
            cursor.executemany(
                "INSERT INTO exchange_currentstatement "
                "(member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
                "VALUES (%s, %s, %s, %s, %s, %s, FALSE) " + sql_tail,
                rows,
            )
