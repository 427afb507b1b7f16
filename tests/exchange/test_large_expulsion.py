"""Expelling a member with many statements withdraws them a chunk per transaction.

Before, the whole withdrawal ran in the status change's transaction: every statement id
in memory, and the feed lock (which every submission waits for) held until the last
tombstone was written. Now each chunk withdraws its statements and writes their feed
rows in one transaction of its own: a bounded number of queries, committed (so seen by
other connections, and the feed lock released) before the next chunk starts. The feed
still carries each withdrawn signal's tombstone exactly once.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange.models import CurrentStatement, Statement
from exchange.selectors import feed_page
from exchange.services import membership
from members.models import Member
from members.services import member_set_status
from tests.factories import ACTOR, make_party, pdq

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STATEMENTS = 3_000
CHUNK = 500


def _committed_withdrawals(member_id: int) -> int:
    """Withdrawn statements of the member as another connection sees them now."""
    seen: list[int] = []

    def count() -> None:
        try:
            seen.append(
                Statement.objects.filter(member_id=member_id, withdrawn_at__isnull=False).count()
            )
        finally:
            connection.close()

    thread = threading.Thread(target=count)
    thread.start()
    thread.join(30)
    return seen[0]


def test_expelling_a_large_member_goes_chunk_by_chunk(
    monkeypatch: pytest.MonkeyPatch, labels: None
) -> None:
    """A member with 3,000 statements is expelled in chunks of 500: the queries are
    bounded per chunk (not per statement), each chunk's withdrawals are committed before
    the next one writes, and a follower receives every signal's tombstone exactly once."""
    big, follower = make_party("big"), make_party("follower")
    now = int(time.time())
    values = [pdq() for _ in range(STATEMENTS)]
    body = big.submit(*(big.statement("pdq", v, iat=now - 10) for v in values))
    assert body["accepted"] == STATEMENTS
    cursor = None
    while True:
        changes, cursor, has_more = feed_page(
            member_id=follower.member.pk, cursor=cursor, limit=10_000
        )
        if not has_more:
            break

    monkeypatch.setattr(membership, "WITHDRAW_CHUNK", CHUNK, raising=False)
    real_append = membership.feed_append
    committed_at_append: list[int] = []

    def append(*args: Any, **kwargs: Any) -> int:
        committed_at_append.append(_committed_withdrawals(big.member.pk))
        return real_append(*args, **kwargs)

    monkeypatch.setattr(membership, "feed_append", append)
    with CaptureQueriesContext(connection) as queries:
        member_set_status(member=big.member, status=Member.Status.EXPELLED, actor=ACTOR)

    chunks = math.ceil(STATEMENTS / CHUNK)
    assert len(queries) <= 40 + 12 * chunks, len(queries)
    # Each chunk wrote its feed rows after every chunk before it had committed.
    assert committed_at_append[-chunks:] == [k * CHUNK for k in range(chunks)], committed_at_append
    assert not CurrentStatement.objects.filter(member=big.member, audience__isnull=False).exists()

    seen: list[tuple[str, bool]] = []
    while True:
        changes, cursor, has_more = feed_page(
            member_id=follower.member.pk, cursor=cursor, limit=1_000
        )
        seen.extend((c["value"], c["deleted"]) for c in changes)
        if not has_more:
            break
    assert sorted(seen) == sorted((v, True) for v in values)
