"""Long signal values do not break the database (issue #13, item 12).

A vpdq value of an hour of video at one frame per second (3,600 frames of unclustered
hashes, about 300 kB) is accepted, with the rest of its batch, and reads back on the
feed and through a lookup; 3,601 frames is ``invalid_value`` for that item only. The
signals table is searched by value through its index on (type, md5(value)): PostgreSQL's
b-tree entries are limited to about 2.7 kB, so the value itself cannot be the key.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import quote

import pytest
from django.db import connection

from exchange.client.signal_types import VpdqSignal
from exchange.models import Signal
from tests.factories import Party, make_party, pdq

pytestmark = pytest.mark.django_db

NOW = int(time.time())
INDEX = "unique_signal_digest"


def vpdq_value(frames: int) -> str:
    """A canonical vpdq value of ``frames`` frames at one per second, random hashes."""
    value = json.dumps(
        [f"{secrets.token_hex(32)},{50 + i % 51},{float(i):.3}" for i in range(frames)]
    )
    if frames <= 3600:
        assert VpdqSignal.validate(value) == value
    return value


def _follow(party: Party) -> dict[str, dict[str, object]]:
    latest: dict[str, dict[str, object]] = {}
    cursor = None
    while True:
        page = party.get("/api/v1/changes", **({"cursor": cursor} if cursor else {})).json()
        latest.update({c["value"]: c for c in page["changes"]})
        cursor = page["cursor"]
        if not page["has_more"]:
            return latest


def test_an_hour_of_vpdq_frames_is_accepted_and_readable() -> None:
    """A 3,600-frame vpdq with random hashes and a few-dozen-frame one are accepted with
    the rest of the batch; both read back byte for byte on the feed and by lookup."""
    acme, globex = make_party("acme"), make_party("globex")
    hour, short, other = vpdq_value(3600), vpdq_value(40), pdq()
    assert len(hour) > 250_000 and len(short) > 2_700
    body = acme.submit(
        acme.statement("pdq", other, iat=NOW - 5),
        acme.statement("vpdq", hour, iat=NOW - 5, content_type="video"),
        acme.statement("vpdq", short, iat=NOW - 5),
    )
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3, body["results"]

    latest = _follow(globex)
    assert {other, hour, short} <= latest.keys()
    response = globex.client.get(f"/api/v1/signals/vpdq/{quote(hour)}")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["value"] == hour
    # Resubmitting finds the stored signal by value: no second row.
    again = acme.submit(acme.statement("vpdq", hour, iat=NOW - 1))
    assert again["accepted"] == 1
    assert Signal.objects.filter(signal_type="vpdq").count() == 2


def test_more_than_an_hour_is_invalid_value_for_that_item_only() -> None:
    """3,601 frames: that item is rejected ``invalid_value``; the others are accepted."""
    acme = make_party("acme")
    body = acme.submit(
        acme.statement("pdq", pdq(), iat=NOW - 5),
        acme.statement("vpdq", vpdq_value(3601), iat=NOW - 5),
        acme.statement("vpdq", vpdq_value(3), iat=NOW - 5),
    )
    statuses = [(r["status"], r.get("code")) for r in body["results"]]
    assert statuses == [("accepted", None), ("rejected", "invalid_value"), ("accepted", None)]
    assert "3600" in body["results"][1]["detail"] or "3,600" in body["results"][1]["detail"]


def test_long_statements_of_other_types_stay_limited() -> None:
    """Only vpdq statements may exceed the ordinary 16,384-character JWS limit: a url
    statement padded past it is ``malformed``."""
    acme = make_party("acme")
    token = acme.statement("url", "https://example.com/" + "a" * 20_000, iat=NOW - 5)
    body = acme.submit(token)
    assert (body["results"][0]["status"], body["results"][0]["code"]) == ("rejected", "malformed")


def _plan(sql: str, params: list[object]) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_lookups_by_value_use_the_digest_index() -> None:
    """The ingest lookup of existing signals, the single-value lookup and the exact
    match lookup search the (type, md5(value)) index, never scan the table."""
    from exchange.db import is_postgres, json_rows, signal_value_in
    from exchange.selectors import signal_find_query
    from exchange.services.statements.store import EXISTING_SIGNALS_SQL

    acme = make_party("acme")
    value = vpdq_value(40)
    acme.submit(acme.statement("vpdq", value, iat=NOW - 5))
    pairs = [("vpdq", value), ("pdq", pdq())]

    plans = []
    if is_postgres():
        plans.append(_plan(EXISTING_SIGNALS_SQL, [json_rows(pairs)]))
    sql, params = signal_find_query(signal_type="vpdq", value=value)
    plans.append(_plan(sql, params))
    # As exchange/matching/selectors.py looks up exact-type queries.
    clause, params = signal_value_in([pdq()[:32], pdq()[:32]])
    sql = f"SELECT id, value FROM exchange_signal WHERE signal_type = %s AND {clause}"
    plans.append(_plan(sql, ["md5", *params]))
    for plan in plans:
        assert INDEX in plan, plan
        assert "Seq Scan on exchange_signal" not in plan, plan
        assert "SCAN exchange_signal" not in plan, plan
