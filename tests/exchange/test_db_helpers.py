"""The raw-SQL helpers of the hot paths pass text through PostgreSQL unchanged."""

from __future__ import annotations

import json

import pytest

from exchange.db import fetchall, in_list, json_fields, json_rows

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

AWKWARD = [
    "plain",
    'a "quoted" value',
    "back\\slash\\u0041",
    "{braces},commas",
    "NULL",
    "",
    "ünïcödé ✓ 😀",
    "line\nbreak\ttab",
    "x" * 500,
]


def test_json_rows_round_trip_every_kind_of_field() -> None:
    """Rows passed as JSON come back from PostgreSQL with every field as sent, awkward text, lists
    and nulls included."""
    rows = [(i, text, [text, "label"], None if i % 2 else i * 10) for i, text in enumerate(AWKWARD)]
    got = fetchall(
        f"SELECT {json_fields('bigint', 'text', 'jsonb', 'bigint')} "
        "FROM jsonb_array_elements(%s::jsonb) AS x",
        [json_rows(rows)],
    )
    # Django's raw cursors hand jsonb back as text.
    assert [(r[0], r[1], json.loads(r[2]), r[3]) for r in got] == [
        (i, t, list(labels), n) for i, t, labels, n in rows
    ]


def test_in_list_matches_exactly_the_given_strings() -> None:
    """The ``IN`` clause built by ``in_list`` matches exactly the given strings, however awkward,
    and nothing else."""
    clause, params = in_list("v", AWKWARD[:4])
    got = fetchall(
        f"SELECT v FROM unnest(%s::text[]) AS t(v) WHERE {clause} ORDER BY v",
        [[*AWKWARD, "quoted", "back\\slash", 'a "quoted" valu'], *params],
    )
    assert [r[0] for r in got] == sorted(AWKWARD[:4])


def test_bulk_cursor_shares_the_transaction_and_raises_djangos_errors() -> None:
    """Rows written through it are seen by the ORM's cursor in the same transaction, and
    a failing statement raises django.db's exception (callers catch those)."""
    from django.db import IntegrityError, transaction

    from exchange.db import bulk_cursor
    from exchange.models import Signal

    with transaction.atomic():
        with bulk_cursor() as cursor:
            cursor.execute(
                "INSERT INTO exchange_signal (signal_type, value, created_at) "
                f"SELECT {json_fields('text', 'text')}, now() "
                "FROM jsonb_array_elements(%s::jsonb) AS x",
                [json_rows([("md5", "0" * 32)])],
            )
        assert Signal.objects.filter(signal_type="md5", value="0" * 32).exists()
        with pytest.raises(IntegrityError), transaction.atomic(), bulk_cursor() as cursor:
            cursor.execute(
                "INSERT INTO exchange_signal (signal_type, value, created_at) "
                "VALUES (%s, %s, now())",
                ["md5", "0" * 32],
            )
