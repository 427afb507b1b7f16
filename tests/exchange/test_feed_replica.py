"""Feed pages read from a streaming replica skip nothing, leak nothing and never step
back in time; a replica that lags too far leaves the reads on the primary.

A private primary and its standby (``tests/support/replicated.py``), this process's
connections pointed at them. Why the feed's ordering survives on a standby: writers
take the append lock, so feed positions are handed out in commit order, and the standby
replays commit records in WAL order, the primary's commit order: at any replay point it
holds a prefix of the feed (the controls show what breaks without the lock). What the
standby adds is time: it may be behind what a reader saw last, which the cursor's WAL
watermark guards against, and behind by much, which the lag bound guards against.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.db import connections
from django.test import override_settings
from prometheus_client import REGISTRY

import exchange.feed
import exchange.selectors
import exchange.services.statements.store as statements_module
from exchange.feed import Cursor
from exchange.selectors import feed_page
from exchange.services.statements import statement_submit
from forum.metrics import render
from members.services import sharing_group_set_members
from tests.factories import ACTOR, Party, make_group, make_party, pdq
from tests.support.processes import PUBLIC_HOST, production_env, start_gunicorn, stop_gunicorn
from tests.support.replicated import DBNAME, Replicated, replicated_forum

pytestmark = [pytest.mark.postgres]

WRITERS = 6
BATCHES = 5
BATCH_SIZE = 8


@pytest.fixture(scope="module")
def cluster(django_db_blocker: Any) -> Iterator[Replicated]:
    with replicated_forum(django_db_blocker) as replicated:
        yield replicated


@pytest.fixture
def forum(cluster: Replicated) -> Iterator[Replicated]:
    """The cluster, replaying, caught up, and again so after the test."""
    cluster.resume()
    cluster.wait_caught_up()
    with override_settings(CORDIALE_REPLICA_MAX_LAG=3600.0):
        yield cluster
    cluster.resume()


def routed(database: str, reason: str) -> float:
    labels = {"database": database, "reason": reason}
    return REGISTRY.get_sample_value("cordiale_read_routes_total", labels) or 0.0


def page_all(party: Party, cursor: str | None, *, limit: int = 1000) -> tuple[list[Any], str]:
    """Pages until ``has_more`` is false, replica allowed; all changes and the last cursor."""
    changes: list[Any] = []
    while True:
        page, cursor, has_more = feed_page(
            member_id=party.member.pk, cursor=cursor, limit=limit, replica=True
        )
        changes.extend(page)
        if not has_more:
            assert cursor is not None
            return changes, cursor


def gauge(text: str, name: str) -> float:
    """The value of an unlabelled series in a scrape."""
    return float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith(name + " ")))


def routes(text: str, database: str, reason: str) -> float:
    """``cordiale_read_routes_total`` for one database and reason in a scrape (0 if absent)."""
    series = f'cordiale_read_routes_total{{database="{database}",reason="{reason}"}} '
    return sum(float(ln[len(series) :]) for ln in text.splitlines() if ln.startswith(series))


def live_values(changes: list[Any]) -> dict[str, Any]:
    """Value -> last snapshot, for the snapshots that are not tombstones (last one wins)."""
    held: dict[str, Any] = {}
    for change in changes:
        if change["deleted"]:
            held.pop(change["value"], None)
        else:
            held[change["value"]] = change
    return held


def _slow_append(original: Callable[..., int]) -> Callable[..., int]:
    def append(rows: Any, **kwargs: Any) -> int:
        written = original(rows, **kwargs)
        time.sleep(random.choice((0.0, random.uniform(0.02, 0.05))))  # commit later
        return written

    return append


def test_readers_on_the_replica_skip_nothing_and_see_no_other_group(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers commit out of position order on the primary (to the forum and to a group)
    while readers page the feed on the replica with small limits: every reader ends with
    every change it may see, and the reader outside the group never gets a group value."""
    monkeypatch.setattr(
        statements_module, "feed_append", _slow_append(statements_module.feed_append)
    )
    writers = [make_party() for _ in range(WRITERS)]
    inside, outside = make_party(), make_party()
    group_slug = make_group(f"ring-{random.randrange(10**9)}", writers[0], writers[1], inside).slug
    committed: dict[str, bool] = {}  # value -> addressed to the group
    errors: list[BaseException] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    held: list[dict[str, Any]] = [{}, {}]
    replica_pages = routed("replica", "replica")

    def write(index: int, party: Party) -> None:
        try:
            for _ in range(BATCHES):
                to_group = index < 2 and random.random() < 0.5
                audience = f"group:{group_slug}" if to_group else "forum"
                values = [pdq() for _ in range(BATCH_SIZE)]
                tokens = [party.statement("pdq", v, audience=audience) for v in values]
                body = statement_submit(member=party.member, tokens=tokens)
                assert body["accepted"] == BATCH_SIZE, body
                with lock:
                    committed.update(dict.fromkeys(values, to_group))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def read(index: int, party: Party) -> None:
        cursor: str | None = None
        try:
            while writing.is_set():
                changes, cursor = page_all(party, cursor, limit=random.randint(1, 9))
                held[index].update(live_values(changes))
                time.sleep(random.uniform(0, 0.003))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()
        held[index]["__cursor__"] = cursor

    readers = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate([inside, outside])]
    threads = [threading.Thread(target=write, args=(i, p)) for i, p in enumerate(writers)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    forum.wait_caught_up()
    writing.clear()
    for thread in readers:
        thread.join()
    if errors:
        raise errors[0]
    for index, party in enumerate([inside, outside]):
        cursor = held[index].pop("__cursor__")
        changes, _ = page_all(party, cursor)
        held[index].update(live_values(changes))

    assert len(committed) == WRITERS * BATCHES * BATCH_SIZE
    group_values = {v for v, to_group in committed.items() if to_group}
    assert group_values, "no writer addressed the group"
    assert set(committed) - set(held[0]) == set()
    assert set(committed) - group_values - set(held[1]) == set()
    assert group_values & set(held[1]) == set()
    assert routed("replica", "replica") - replica_pages > 20  # the pages came from the replica


def _interleave_on_replica(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch, *, naive: bool
) -> set[str]:
    """A takes a feed position and stays uncommitted; B appends after it and tries to
    commit; the standby replays what committed; a reader pages on the replica; A commits;
    the reader pages again once the standby replayed it. Returns what the reader lost."""
    if naive:
        monkeypatch.setattr(exchange.feed, "feed_lock", lambda: None)
    writer_a, writer_b, reader = make_party(), make_party(), make_party()
    value_a, value_b = pdq(), pdq()
    a_positioned, a_may_commit, b_done = threading.Event(), threading.Event(), threading.Event()
    append = exchange.feed.feed_append

    def hold(rows: Any, **kwargs: Any) -> int:
        written = append(rows, **kwargs)
        if threading.current_thread() is thread_a:
            a_positioned.set()
            a_may_commit.wait(10)
        return written

    monkeypatch.setattr(statements_module, "feed_append", hold)

    def write(party: Party, value: str, first: threading.Event | None) -> None:
        try:
            if first is not None:
                first.wait(10)
            statement_submit(member=party.member, tokens=[party.statement("pdq", value)])
            if first is not None:
                b_done.set()
        finally:
            connections.close_all()

    forum.wait_caught_up()
    _, cursor = page_all(reader, None)
    thread_a = threading.Thread(target=write, args=(writer_a, value_a, None))
    thread_b = threading.Thread(target=write, args=(writer_b, value_b, a_positioned))
    thread_a.start()
    thread_b.start()
    b_done.wait(1.0)  # with the lock, B waits for A and this times out
    forum.wait_caught_up()
    seen: set[str] = set()
    changes, cursor = page_all(reader, cursor)
    seen.update(c["value"] for c in changes)
    a_may_commit.set()
    thread_a.join()
    thread_b.join()
    forum.wait_caught_up()
    changes, cursor = page_all(reader, cursor)
    seen.update(c["value"] for c in changes)
    return {value_a, value_b} - seen


def test_commit_out_of_position_order_is_not_skipped_on_the_replica(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the append lock the standby replays positions in order: nothing is lost."""
    assert _interleave_on_replica(forum, monkeypatch, naive=False) == set()


def test_without_the_lock_the_replica_reader_skips(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: without the lock B commits past A's position, the standby replays B,
    the replica reader's cursor passes A's position, and A's change is lost for good."""
    assert len(_interleave_on_replica(forum, monkeypatch, naive=True)) == 1


def test_a_lagging_replica_leaves_reads_on_the_primary_and_shows_its_lag(
    forum: Replicated,
) -> None:
    """Replay paused and a change committed: the lag gauge rises; under the bound the
    replica serves the (old) page, past it the primary serves the new change."""
    writer, reader = make_party(), make_party()
    forum.wait_caught_up()
    forum.pause()
    value = pdq()
    statement_submit(member=writer.member, tokens=[writer.statement("pdq", value)])
    time.sleep(1.6)

    text = render()[0].decode()
    assert gauge(text, "cordiale_replica_lag_seconds") >= 1.5, text
    assert gauge(text, "cordiale_replica_lag_bytes") > 0, text
    assert gauge(text, "cordiale_replica_up") == 1

    before = routed("replica", "replica")
    changes, _ = page_all(reader, None)
    assert value not in {c["value"] for c in changes}  # the replica had not replayed it
    assert routed("replica", "replica") == before + 1

    before = routed("primary", "lag")
    with override_settings(CORDIALE_REPLICA_MAX_LAG=1.0):
        changes, _ = page_all(reader, None)
    assert value in {c["value"] for c in changes}
    assert routed("primary", "lag") == before + 1

    forum.resume()
    forum.wait_caught_up()
    assert gauge(render()[0].decode(), "cordiale_replica_lag_seconds") == 0


def test_a_replica_behind_the_cursor_is_not_read(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member removed from a group reads its tombstones on the primary; a replica that
    has not replayed the removal must not serve its next page, or the group's signals
    would come back as live after their tombstones. Control: the same cursor without its
    watermark gets them back."""
    acme, member = make_party(), make_party()
    group = make_group(f"cell-{random.randrange(10**9)}", acme, member)
    value = pdq()
    statement_submit(
        member=acme.member, tokens=[acme.statement("pdq", value, audience=f"group:{group.slug}")]
    )
    forum.wait_caught_up()
    changes, cursor = page_all(member, None)
    assert value in live_values(changes)

    forum.pause()
    sharing_group_set_members(group=group, members=[acme.member], actor=ACTOR)
    changes, _, _ = feed_page(member_id=member.member.pk, cursor=cursor, limit=1000)
    assert value not in live_values(changes)
    assert any(c["value"] == value and c["deleted"] for c in changes)
    _, cursor, _ = feed_page(member_id=member.member.pk, cursor=cursor, limit=1000)

    before = routed("primary", "behind_reader")
    changes, _ = page_all(member, cursor)
    assert value not in live_values(changes)
    assert routed("primary", "behind_reader") == before + 1

    stripped = Cursor.decode(cursor)
    stripped.watermark = 0
    changes, _ = page_all(member, stripped.encode())
    assert value in live_values(changes)  # the stale replica resurrects it


def test_a_page_on_the_replica_reads_one_state(
    forum: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica replays a removal from a group and a new statement to that group in
    the middle of a page: the page still shows the signal as it was when it began,
    without the statement addressed to a group its reader had left."""
    acme, other, member = make_party(), make_party(), make_party()
    group = make_group(f"cell-{random.randrange(10**9)}", acme, member)
    _, cursor = page_all(member, None)
    value = pdq()
    statement_submit(member=other.member, tokens=[other.statement("pdq", value)])
    forum.wait_caught_up()

    forum.pause()
    sharing_group_set_members(group=group, members=[acme.member], actor=ACTOR)
    statement_submit(
        member=acme.member, tokens=[acme.statement("pdq", value, audience=f"group:{group.slug}")]
    )
    rows = exchange.selectors.feed_rows

    def rows_then_replay(*args: Any, **kwargs: Any) -> Any:
        found = rows(*args, **kwargs)
        forum.resume()
        forum.wait_caught_up()
        return found

    monkeypatch.setattr(exchange.selectors, "feed_rows", rows_then_replay)
    changes, _, _ = feed_page(member_id=member.member.pk, cursor=cursor, limit=1000, replica=True)
    snapshot = live_values(changes)[value]
    assert [s["member"] for s in snapshot["statements"]] == [other.slug]


def test_gunicorn_with_a_replica_url_serves_the_feed_from_it_until_it_lags(
    forum: Replicated,
) -> None:
    """End to end: ``CORDIALE_REPLICA_DATABASE_URL`` set, pages of ``/api/v1/changes`` come
    from the replica (keys are still checked on the primary); with replay paused past
    ``CORDIALE_REPLICA_MAX_LAG`` the next page comes from the primary, and ``/metrics``
    shows the lag and where each page was read."""
    writer, reader = make_party(), make_party()
    first, second = pdq(), pdq()
    statement_submit(member=writer.member, tokens=[writer.statement("pdq", first)])
    forum.wait_caught_up()
    env = production_env(
        DATABASE_URL=forum.primary.url(DBNAME),
        CORDIALE_REPLICA_DATABASE_URL=forum.standby.url(DBNAME),
        CORDIALE_REPLICA_MAX_LAG="1",
    )
    proc, base = start_gunicorn(env, workers=1)
    headers = {
        "Host": PUBLIC_HOST,
        "X-Forwarded-Proto": "https",
        "Authorization": f"Bearer {reader.api_key}",
    }

    def changes(cursor: str | None) -> dict[str, Any]:
        params = {"cursor": cursor} if cursor else {}
        response = httpx.get(f"{base}/api/v1/changes", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def scrape() -> str:
        return httpx.get(f"{base}/metrics").text

    try:
        # The key's first use of the day is a write on the primary; until the replica
        # replays it, it counts as old as the replica's last replayed transaction.
        changes(None)
        forum.wait_caught_up()
        before = scrape()
        page = changes(None)
        assert first in {c["value"] for c in page["changes"]}
        text = scrape()
        assert routes(text, "replica", "replica") == routes(before, "replica", "replica") + 1
        assert gauge(text, "cordiale_replica_up") == 1

        forum.pause()
        statement_submit(member=writer.member, tokens=[writer.statement("pdq", second)])
        time.sleep(1.5)
        before = scrape()
        assert gauge(before, "cordiale_replica_lag_seconds") > 1
        page = changes(page["cursor"])
        assert [c["value"] for c in page["changes"]] == [second]
        assert routes(scrape(), "primary", "lag") == routes(before, "primary", "lag") + 1
    finally:
        stop_gunicorn(proc)
