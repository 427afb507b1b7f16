"""Endpoints of one member share the feed pages they deliver (``shared_feed_page``).

A member's endpoints at the same cursor get one page, built and encoded once; a page is
never shared between members; sharing never hides rows committed after the page was
built; and a delivery waiting for a page another one builds gets it as soon as it is
built (a partial page only if it waited for that very build).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
from django.core.cache import cache

from exchange import selectors
from exchange.selectors import feed_page
from exchange.webhooks.delivery import SharedPage, pages, shared_feed_page
from tests.factories import make_group, make_party, pdq

pytestmark = pytest.mark.django_db


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Member ids of the pages actually built (not read from the cache)."""
    built: list[int] = []

    def counting(*, member_id: int, cursor: str | None, limit: int) -> Any:
        built.append(member_id)
        return selectors.feed_page(member_id=member_id, cursor=cursor, limit=limit)

    monkeypatch.setattr(pages, "feed_page", counting)
    return built


def test_one_build_per_member_and_cursor_and_the_same_page_as_the_pull_feed(
    builds: list[int],
) -> None:
    """Endpoints of one member at one cursor share one page build, byte for byte the page the pull
    feed answers; the next cursor gets its own build."""
    acme, globex = make_party(), make_party()
    now = int(time.time())
    acme.submit(*(acme.statement("pdq", pdq(), iat=now - 10) for _ in range(5)))

    pages = [shared_feed_page(member_id=globex.member.pk, cursor="", limit=3) for _ in range(4)]
    assert builds == [globex.member.pk]
    pulled = feed_page(member_id=globex.member.pk, cursor=None, limit=3)
    body = {"type": "changes", "changes": pulled[0], "cursor": pulled[1]}
    for page in pages:  # byte for byte as sent, JWS included
        assert page.body == orjson.dumps(body)
        assert orjson.dumps([page.changes, page.cursor, page.has_more]) == orjson.dumps(pulled)

    following = shared_feed_page(member_id=globex.member.pk, cursor=pages[0].cursor, limit=3)
    assert len(builds) == 2 and following.has_more is False and following.count == 2


def test_pages_are_never_shared_between_members(builds: list[int]) -> None:
    """A group-only statement reaches the group member's page, never another member's,
    although both read from the same (empty) cursor."""
    acme, globex, initech = make_party(), make_party(), make_party()
    group = make_group("trusted", acme, globex)
    hidden = pdq()
    acme.submit(acme.statement("pdq", hidden, audience=f"group:{group.slug}"))

    inside = shared_feed_page(member_id=globex.member.pk, cursor="", limit=10)
    outside = shared_feed_page(member_id=initech.member.pk, cursor="", limit=10)
    assert [c["value"] for c in inside.changes] == [hidden]
    assert outside.changes == [] and outside.count == 0
    assert builds == [globex.member.pk, initech.member.pk]


def test_only_full_pages_are_shared(builds: list[int]) -> None:
    """A full page has the rows a fresh build would have, so it is shared; a partial page
    (the end of the feed) is built afresh each time, so rows committed since are never
    left for a second, smaller batch."""
    acme, globex = make_party(), make_party()
    now = int(time.time())
    first, second, third = pdq(), pdq(), pdq()
    member = globex.member.pk

    assert shared_feed_page(member_id=member, cursor="", limit=1).changes == []
    acme.submit(acme.statement("pdq", first, iat=now - 10))
    acme.submit(acme.statement("pdq", second, iat=now - 10))
    full = shared_feed_page(member_id=member, cursor="", limit=1)
    assert [c["value"] for c in full.changes] == [first] and full.has_more is True
    assert len(builds) == 2

    partial = shared_feed_page(member_id=member, cursor=full.cursor, limit=10)
    assert [c["value"] for c in partial.changes] == [second] and partial.has_more is False
    acme.submit(acme.statement("pdq", third, iat=now - 10))
    later = shared_feed_page(member_id=member, cursor=full.cursor, limit=10)
    assert [c["value"] for c in later.changes] == [second, third]
    assert len(builds) == 4

    again = shared_feed_page(member_id=member, cursor="", limit=1)
    assert again == full and len(builds) == 4


def _meanwhile(delay: float, action: Any) -> threading.Thread:
    """Another delivery's build, seen from the cache: ``action`` runs after ``delay``."""
    thread = threading.Timer(delay, action)
    thread.start()
    return thread


def test_a_delivery_waiting_for_a_partial_page_gets_it_from_its_builder(
    builds: list[int],
) -> None:
    """Endpoints following the feed ask for the same partial page at once: the ones that
    find it being built take the builder's page as soon as it is there, without a build
    of their own and without waiting out the hand-off delay."""
    acme, globex = make_party(), make_party()
    acme.submit(acme.statement("pdq", pdq(), iat=int(time.time()) - 10))
    member = globex.member.pk
    key = pages._page_key(member, "", 10)
    built = SharedPage.build(*feed_page(member_id=member, cursor=None, limit=10))
    assert built.has_more is False and built.count == 1
    cache.add(f"{key}:building", "other", 5)

    def hand_off() -> None:
        cache.set(f"{key}:other", built.dumps(), 2)
        cache.delete(f"{key}:building")

    started = time.monotonic()
    timer = _meanwhile(0.2, hand_off)
    page = shared_feed_page(member_id=member, cursor="", limit=10)
    timer.join()
    assert page == built and builds == []
    assert time.monotonic() - started < pages._PAGE_WAIT / 2


def test_a_delivery_whose_builder_gives_up_builds_the_page_at_once(builds: list[int]) -> None:
    """When the build it waited for ends without a page for it, a delivery builds the
    page itself straight away."""
    acme, globex = make_party(), make_party()
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 10))
    member = globex.member.pk
    key = pages._page_key(member, "", 10)
    cache.add(f"{key}:building", "other", 5)

    started = time.monotonic()
    timer = _meanwhile(0.2, lambda: cache.delete(f"{key}:building"))
    page = shared_feed_page(member_id=member, cursor="", limit=10)
    timer.join()
    assert [c["value"] for c in page.changes] == [value] and builds == [member]
    assert time.monotonic() - started < pages._PAGE_WAIT / 2


def test_a_partial_page_is_handed_only_to_the_deliveries_that_waited_for_it(
    builds: list[int],
) -> None:
    """The page a builder hands off is keyed by its build: a delivery that comes later,
    or waits for another build, never receives it."""
    acme, globex = make_party(), make_party()
    now = int(time.time())
    first, second = pdq(), pdq()
    member = globex.member.pk
    key = pages._page_key(member, "", 10)
    acme.submit(acme.statement("pdq", first, iat=now - 10))
    assert shared_feed_page(member_id=member, cursor="", limit=10).count == 1
    acme.submit(acme.statement("pdq", second, iat=now - 10))

    later = shared_feed_page(member_id=member, cursor="", limit=10)
    assert [c["value"] for c in later.changes] == [first, second] and len(builds) == 2

    cache.add(f"{key}:building", "another", 5)
    timer = _meanwhile(0.2, lambda: cache.delete(f"{key}:building"))
    waited = shared_feed_page(member_id=member, cursor="", limit=10)
    timer.join()
    assert waited.count == 2 and len(builds) == 3
