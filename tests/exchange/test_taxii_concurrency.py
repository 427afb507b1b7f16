"""TAXII ``added_after`` polling never skips a committed change under concurrent writers
(invariant 3, as tests/exchange/test_feed_concurrency.py checks it for the pull feed).

Writers commit out of position order (a random sleep after their feed rows got their
positions, inside the transaction); one reader polls the forum's collection with
``added_after`` set to the last page's ``X-TAXII-Date-Added-Last``, another follows
``next``, both with small limits, all the while. Every committed value must reach both.
The control disables the append lock: a reader that polls between an early writer's
append and its commit then loses that writer's change for good, as with the feed.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime

import pytest
from django.db import connection

import exchange.services.statements.store as statements_module
from exchange.client import stix
from exchange.services.statements import statement_submit
from exchange.taxii.selectors import (
    Collection,
    Filters,
    Position,
    collection_find,
    objects_page,
    position_after,
)
from tests.exchange.test_feed_concurrency import _slow_append
from tests.factories import Party, make_party, pdq
from tests.support.interleavings import out_of_order_commits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 6
BATCHES = 5
BATCH_SIZE = 10
INDICATORS = Filters(types=frozenset({"indicator"}))


class Poller:
    """A TAXII client of the forum's collection: by ``added_after`` or by ``next``."""

    def __init__(self, party: Party, *, by_next: bool) -> None:
        self.party = party
        self.by_next = by_next
        self.last: str | None = None
        self.position = Position()
        self.seen: set[str] = set()
        found = collection_find(member=party.member, key="forum")
        assert found is not None
        self.collection: Collection = found

    def poll(self) -> None:
        """Page until ``more`` is false, as a TIP's scheduled poll does."""
        while True:
            if self.by_next:
                position = self.position
            elif self.last is None:
                position = Position()
            else:
                position = position_after(datetime.fromisoformat(self.last.replace("Z", "+00:00")))
            page = objects_page(
                member=self.party.member,
                collection=self.collection,
                position=position,
                limit=random.randint(1, 7),
                filters=INDICATORS,
            )
            for _, obj in page.objects:
                self.seen.add(obj["pattern"])
            if page.objects:
                self.last = page.objects[-1][0]
            self.position = page.position
            if not page.more:
                return


def _race(writers: list[Party], pollers: list[Poller]) -> set[str]:
    committed: set[str] = set()
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []

    def write(party: Party) -> None:
        try:
            for _ in range(BATCHES):
                values = [pdq() for _ in range(BATCH_SIZE)]
                body = statement_submit(
                    member=party.member, tokens=[party.statement("pdq", v) for v in values]
                )
                assert body["accepted"] == BATCH_SIZE, body
                with lock:
                    committed.update(stix.pattern_for("pdq", v) for v in values)
                time.sleep(random.uniform(0, 0.005))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def read(poller: Poller) -> None:
        try:
            while True:
                done = not writing.is_set()
                poller.poll()
                if done:
                    return
                time.sleep(random.uniform(0, 0.003))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    readers = [threading.Thread(target=read, args=(p,)) for p in pollers]
    writer_threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for thread in readers + writer_threads:
        thread.start()
    for thread in writer_threads:
        thread.join()
    writing.clear()
    for thread in readers:
        thread.join()
    if errors:
        raise errors[0]
    return committed


def test_added_after_polling_never_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the append lock, both pollers end up with every committed indicator."""
    monkeypatch.setattr(
        statements_module, "feed_append", _slow_append(statements_module.feed_append)
    )
    writers = [make_party() for _ in range(WRITERS)]
    pollers = [Poller(make_party(), by_next=False), Poller(make_party(), by_next=True)]
    committed = _race(writers, pollers)
    assert len(committed) == WRITERS * BATCHES * BATCH_SIZE
    for poller in pollers:
        assert committed - poller.seen == set()


def _interleave(naive: bool, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A appends and stays uncommitted; B appends after it and tries to commit; the
    poller polls; A commits; the poller polls again with added_after. What it lost."""
    poller = Poller(make_party(), by_next=False)
    values = out_of_order_commits(
        monkeypatch, naive=naive, before_a_commits=poller.poll, after=poller.poll
    )
    return {stix.pattern_for("pdq", v) for v in values} - poller.seen


def test_commit_out_of_position_order_is_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the append lock, the later writer waits, so added_after misses nothing."""
    assert _interleave(naive=False, monkeypatch=monkeypatch) == set()


def test_without_the_lock_added_after_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: without the lock, B's row is dated after A's uncommitted one and polled
    first; A commits later with an earlier date_added, which added_after never returns."""
    lost = _interleave(naive=True, monkeypatch=monkeypatch)
    assert len(lost) == 1
