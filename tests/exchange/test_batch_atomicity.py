"""A batch is applied in one transaction (issue #15, item 4).

A client that lost the answer to a batch, or got a 503 because the database failed
half-way through it, sends the same batch again: its valid items are then all
``accepted`` (nothing of the failed try was kept) or all ``duplicate`` (the try had
committed), never a mix; bad items are rejected on their own each time (CONTRACT.md).
"""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError

from exchange.models import FeedEntry, Signal, Statement
from exchange.services.statements import store
from tests.factories import Party, make_party, pdq, random_hex

pytestmark = [pytest.mark.django_db(transaction=True)]

VALID = 6


def mixed_batch(party: Party) -> list[str]:
    """Six valid statements (the last two on one signal: the newer wins), one with a bad
    signature, one with an unknown label."""
    shared = pdq()
    tokens = [party.statement("pdq", pdq()) for _ in range(3)]
    tokens.append(party.statement("md5", random_hex(32)))
    now = int(time.time())
    tokens += [party.statement("pdq", shared, iat=now - 60), party.statement("pdq", shared)]
    forged = party.statement("md5", random_hex(32))
    tokens.append(forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB"))
    tokens.append(party.statement("pdq", pdq(), labels=["no-such-label"]))
    return tokens


def post(party: Party, tokens: list[str]) -> Any:
    return party.client.post("/api/v1/statements", {"statements": tokens}, format="json")


def statuses(body: dict[str, Any]) -> list[str]:
    return [r["status"] for r in body["results"]]


def stored_state() -> tuple[int, int, int]:
    return Statement.objects.count(), Signal.objects.count(), FeedEntry.objects.count()


def test_a_retried_batch_is_all_accepted_then_all_duplicate(labels: None) -> None:
    """The first send accepts every valid item; the same batch again (the answer was
    lost) is all duplicate for them; the bad items are rejected the same way both times."""
    party = make_party("acme")
    tokens = mixed_batch(party)
    first = post(party, tokens).json()
    assert statuses(first) == ["accepted"] * VALID + ["rejected", "rejected"]
    assert [r.get("code") for r in first["results"][VALID:]] == ["bad_signature", "unknown_label"]
    after_first = stored_state()

    again = post(party, tokens).json()
    assert statuses(again) == ["duplicate"] * VALID + ["rejected", "rejected"]
    assert again["results"][VALID:] == first["results"][VALID:]
    assert stored_state() == after_first


@pytest.mark.parametrize("where", ["_insert_statements", "_upsert_current", "feed_append"])
def test_a_batch_failing_midway_keeps_nothing_and_the_retry_is_all_accepted(
    labels: None, where: str
) -> None:
    """The database failing part-way through applying a batch (after the signals or the
    statement rows were written) answers 503 and leaves no trace of the batch: no
    signal, statement or feed row. The retry is then all accepted, never part duplicate."""
    party = make_party("acme")
    tokens = mixed_batch(party)
    before = stored_state()
    real = getattr(store, where)
    calls = {"n": 0}

    def fail_after_writing(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)  # the rows are written, then the connection drops
        calls["n"] += 1
        raise OperationalError("server closed the connection unexpectedly")
        return result  # pragma: no cover

    with mock.patch.object(store, where, fail_after_writing):
        failed = post(party, tokens)
    assert calls["n"] == 1
    assert failed.status_code == 503, failed.content
    assert failed.json()["code"] == "database_unavailable"
    assert stored_state() == before

    retry = post(party, tokens).json()
    assert statuses(retry) == ["accepted"] * VALID + ["rejected", "rejected"]
    assert stored_state()[0] == before[0] + VALID
