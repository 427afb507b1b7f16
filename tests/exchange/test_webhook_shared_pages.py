"""Endpoints of one member share the feed pages they deliver (``shared_feed_page``).

A member's endpoints at the same cursor get one page, built once; a page is never shared
between members; and sharing never hides rows committed after the page was built.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from exchange import selectors
from exchange.selectors import feed_page
from exchange.services import webhook_delivery
from exchange.services.webhook_delivery import shared_feed_page
from tests.factories import make_group, make_party, pdq

pytestmark = pytest.mark.django_db


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Member ids of the pages actually built (not read from the cache)."""
    built: list[int] = []

    def counting(*, member_id: int, cursor: str | None, limit: int) -> Any:
        built.append(member_id)
        return selectors.feed_page(member_id=member_id, cursor=cursor, limit=limit)

    monkeypatch.setattr(webhook_delivery, "feed_page", counting)
    return built


def test_one_build_per_member_and_cursor_and_the_same_page_as_the_pull_feed(
    builds: list[int],
) -> None:
    acme, globex = make_party(), make_party()
    now = int(time.time())
    acme.submit(*(acme.statement("pdq", pdq(), iat=now - 10) for _ in range(5)))

    pages = [shared_feed_page(member_id=globex.member.pk, cursor="", limit=3) for _ in range(4)]
    assert builds == [globex.member.pk]
    pulled = feed_page(member_id=globex.member.pk, cursor=None, limit=3)
    for page in pages:  # byte for byte as sent, JWS included
        assert orjson.dumps(page) == orjson.dumps(pulled)

    following = shared_feed_page(member_id=globex.member.pk, cursor=pages[0][1], limit=3)
    assert len(builds) == 2 and following[2] is False and len(following[0]) == 2


def test_pages_are_never_shared_between_members(builds: list[int]) -> None:
    """A group-only statement reaches the group member's page, never another member's,
    although both read from the same (empty) cursor."""
    acme, globex, initech = make_party(), make_party(), make_party()
    group = make_group("trusted", acme, globex)
    hidden = pdq()
    acme.submit(acme.statement("pdq", hidden, audience=f"group:{group.slug}"))

    inside = shared_feed_page(member_id=globex.member.pk, cursor="", limit=10)
    outside = shared_feed_page(member_id=initech.member.pk, cursor="", limit=10)
    assert [c["value"] for c in inside[0]] == [hidden]
    assert outside[0] == []
    assert builds == [globex.member.pk, initech.member.pk]


def test_only_full_pages_are_shared(builds: list[int]) -> None:
    """A full page has the rows a fresh build would have, so it is shared; a partial page
    (the end of the feed) is built afresh each time, so rows committed since are never
    left for a second, smaller batch."""
    acme, globex = make_party(), make_party()
    now = int(time.time())
    first, second, third = pdq(), pdq(), pdq()
    member = globex.member.pk

    assert shared_feed_page(member_id=member, cursor="", limit=1)[0] == []
    acme.submit(acme.statement("pdq", first, iat=now - 10))
    acme.submit(acme.statement("pdq", second, iat=now - 10))
    full = shared_feed_page(member_id=member, cursor="", limit=1)
    assert [c["value"] for c in full[0]] == [first] and full[2] is True
    assert len(builds) == 2

    partial = shared_feed_page(member_id=member, cursor=full[1], limit=10)
    assert [c["value"] for c in partial[0]] == [second] and partial[2] is False
    acme.submit(acme.statement("pdq", third, iat=now - 10))
    later = shared_feed_page(member_id=member, cursor=full[1], limit=10)
    assert [c["value"] for c in later[0]] == [second, third]
    assert len(builds) == 4

    again = shared_feed_page(member_id=member, cursor="", limit=1)
    assert orjson.dumps(again) == orjson.dumps(full) and len(builds) == 4
