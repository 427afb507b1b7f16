"""The feed never skips a committed change under concurrent writers (invariant 3).

Eight writer threads submit batches through ``statement_submit`` and, inside each
transaction, sleep a random while *after* their feed rows got their positions, so that
transactions commit out of position order if nothing prevents it. Reader threads page
the feed with small limits all the while. Every committed value must reach every reader.

The control forces the interleaving that breaks a naive feed ordered by id (the
append lock disabled): a writer commits past a position another transaction holds,
and a reader pages in between. Without the lock the reader loses a change for good;
with it, the second writer waits and nothing is lost.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

import exchange.services.statements.store as statements_module
from exchange.selectors import feed_page
from exchange.services.statements import statement_submit
from tests.factories import Party, make_party, pdq
from tests.support.interleavings import out_of_order_commits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
READERS = 2
BATCHES = 6
BATCH_SIZE = 12


def _slow_append(original: Callable[..., int]) -> Callable[..., int]:
    def append(rows: Any, **kwargs: Any) -> int:
        written = original(rows, **kwargs)
        # Still inside the writer's transaction: half commit at once, half much later,
        # so that commits overtake each other often and readers have time to notice.
        time.sleep(random.choice((0.0, random.uniform(0.04, 0.08))))
        return written

    return append


def _race(parties: list[Party], readers: list[Party]) -> tuple[set[str], list[set[str]]]:
    committed: set[str] = set()
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []
    replicas: list[set[str]] = [set() for _ in readers]

    def write(party: Party) -> None:
        try:
            for _ in range(BATCHES):
                values = [pdq() for _ in range(BATCH_SIZE)]
                tokens = [party.statement("pdq", v) for v in values]
                body = statement_submit(member=party.member, tokens=tokens)
                assert body["accepted"] == BATCH_SIZE, body
                with lock:
                    committed.update(values)
                time.sleep(random.uniform(0, 0.005))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def read(index: int, party: Party) -> None:
        cursor: str | None = None
        try:
            while True:
                done = not writing.is_set()
                while True:
                    changes, cursor, has_more = feed_page(
                        member_id=party.member.pk, cursor=cursor, limit=random.randint(1, 7)
                    )
                    replicas[index].update(c["value"] for c in changes if not c["deleted"])
                    if not has_more:
                        break
                if done:
                    return
                time.sleep(random.uniform(0, 0.003))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    reader_threads = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(readers)]
    writer_threads = [threading.Thread(target=write, args=(p,)) for p in parties]
    for thread in reader_threads + writer_threads:
        thread.start()
    for thread in writer_threads:
        thread.join()
    writing.clear()
    for thread in reader_threads:
        thread.join()
    if errors:
        raise errors[0]
    return committed, replicas


@pytest.fixture
def slow_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        statements_module, "feed_append", _slow_append(statements_module.feed_append)
    )


def _parties() -> tuple[list[Party], list[Party]]:
    return [make_party() for _ in range(WRITERS)], [make_party() for _ in range(READERS)]


def test_concurrent_writers_never_skip(slow_commits: None) -> None:
    """With the append lock, every reader ends up holding every committed change."""
    writers, readers = _parties()
    committed, replicas = _race(writers, readers)
    assert len(committed) == WRITERS * BATCHES * BATCH_SIZE
    for replica in replicas:
        assert committed - replica == set()


def _interleave(naive: bool, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A takes a feed position and stays uncommitted; B appends after it and tries to
    commit; a reader pages; A commits; the reader pages again. Returns what it lost."""
    reader = make_party()
    seen: set[str] = set()
    cursor: list[str | None] = [None]

    def page() -> None:
        changes, cursor[0], _ = feed_page(member_id=reader.member.pk, cursor=cursor[0], limit=100)
        seen.update(c["value"] for c in changes)

    values = out_of_order_commits(monkeypatch, naive=naive, before_a_commits=page, after=page)
    return set(values) - seen


def test_commit_out_of_position_order_is_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the append lock, a later writer waits, so the reader misses nothing."""
    assert _interleave(naive=False, monkeypatch=monkeypatch) == set()


def test_naive_id_ordered_feed_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: without the lock, B commits past A's position, the reader's cursor
    moves beyond it, and A's change is lost for good."""
    lost = _interleave(naive=True, monkeypatch=monkeypatch)
    assert len(lost) == 1
