"""Cursors after a restore from an older backup (DESIGN.md invariant 9, ``exchange.feed``
"Restores"), one rule at a time on the test database.

A restore is imitated here by what it does to the feed: the rows written after the
"dump" disappear and the position sequence goes back, so new rows take their
positions again. ``tests/ops/test_restore_drill.py`` runs the real pg_dump/pg_restore.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.db import connection

from exchange.client import base64url
from exchange.models import FeedEntry, WebhookEndpoint
from exchange.webhooks.delivery import webhook_deliver
from tests.factories import Party, make_party, pdq
from tests.members.problems import assert_problem
from tests.support.receivers import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def follow(party: Party, cursor: str | None) -> tuple[list[str], str]:
    """Read the feed from ``cursor`` to its end: the values received and the last cursor."""
    values: list[str] = []
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = party.get("/api/v1/changes", **params)
        assert response.status_code == 200, response.content
        body = response.json()
        values += [change["value"] for change in body["changes"]]
        cursor = body["cursor"]
        if not body["has_more"]:
            return values, str(cursor)


def submit(party: Party, count: int) -> list[str]:
    values = [pdq() for _ in range(count)]
    result = party.submit(*(party.statement("pdq", v) for v in values))
    assert result["accepted"] == count, result
    return values


def lose_history_after(position: int) -> None:
    """What a restore from a dump taken at ``position`` does to the feed."""
    FeedEntry.objects.filter(seq__gt=position).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('exchange_feedentry', 'seq'), %s)", [position]
        )


def head() -> int:
    return FeedEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def decoded(cursor: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(base64url.decode(cursor))
    return data


def old_format(cursor: str) -> str:
    """The cursor as servers wrote it before anchors: positions only."""
    data = decoded(cursor)
    data.pop("f")
    return base64url.encode(orjson.dumps(data))


def test_a_cursor_from_after_the_dump_gets_resync_required_and_never_skips() -> None:
    """A cursor issued after the dump is refused with 410 ``resync_required``, before and
    after new rows take its positions; one issued before the dump reads every new row."""
    a, b = make_party(), make_party()
    before = submit(a, 2)
    received, pre = follow(b, None)
    assert set(before) <= set(received)
    assert decoded(pre)["f"][0] == head()
    dumped_at = head()
    submit(a, 2)
    _, post = follow(b, pre)

    lose_history_after(dumped_at)
    assert_problem(b.get("/api/v1/changes", cursor=post), 410, "resync_required")
    after = submit(a, 4)  # positions the lost rows had, and more
    assert head() > decoded(post)["f"][0]
    body = assert_problem(b.get("/api/v1/changes", cursor=post), 410, "resync_required")
    assert "without a cursor" in body["detail"]

    received, _ = follow(b, pre)
    assert set(after) <= set(received)
    received, _ = follow(b, None)  # what the client does on resync_required
    assert set(before + after) <= set(received)


def test_old_format_cursors_keep_working_and_past_the_head_ask_for_a_resync() -> None:
    """A cursor without an anchor (issued before anchors existed) is read as before; one
    pointing past the feed's head is refused with ``resync_required``."""
    a, b = make_party(), make_party()
    submit(a, 2)
    _, pre = follow(b, None)
    dumped_at = head()
    later = submit(a, 2)
    received, _ = follow(b, old_format(pre))
    assert set(later) <= set(received)
    _, post = follow(b, pre)

    lose_history_after(dumped_at)
    assert_problem(b.get("/api/v1/changes", cursor=old_format(post)), 410, "resync_required")
    again = submit(a, 1)
    received, _ = follow(b, old_format(pre))
    assert received == again


def test_a_cursor_keeps_its_anchor_while_the_feed_grows() -> None:
    """The fingerprint is of a row that never changes: the same cursor read again after
    many writes still works, and a page with nothing new hands back the same cursor."""
    a, b = make_party(), make_party()
    submit(a, 3)
    _, cursor = follow(b, None)
    assert follow(b, cursor) == ([], cursor)
    later = submit(a, 5)
    received, _ = follow(b, cursor)
    assert set(later) <= set(received)


@pytest.mark.parametrize(
    "anchor",
    [[999, "AAAAAAAA"], ["7", "AAAAAAAA"], [7, ""], [7, 7], [7], [0, "AAAAAAAA"], "x"],
)
def test_an_anchor_that_is_not_ours_is_invalid_cursor(anchor: Any) -> None:
    """An anchor that is not on the cursor's highest number, or of the wrong shape, is a
    400 ``invalid_cursor``, like any cursor this server did not issue."""
    b = make_party()
    cursor = base64url.encode(orjson.dumps({"v": 1, "p": {"m": [0, 7]}, "f": anchor}))
    assert_problem(b.get("/api/v1/changes", cursor=cursor), 400, "invalid_cursor")


@pytest.mark.django_db(transaction=True)
def test_a_webhook_cursor_from_a_lost_history_starts_over_from_the_beginning(
    settings: Any, receiver: Receiver, tasks_in_process: None
) -> None:
    """An endpoint whose stored cursor the feed does not hold any more is sent its whole
    feed again (nothing skipped) instead of failing forever."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    a, b = make_party(), make_party()
    first = submit(a, 2)
    response = b.client.post("/api/v1/webhooks", {"url": receiver.url()}, format="json")
    assert response.status_code == 201, response.content
    endpoint = WebhookEndpoint.objects.get(pk=response.json()["id"])
    dumped_at = head()
    submit(a, 3)
    # Delivered here, not through the on-commit wake-up: this test is about the cursor.
    webhook_deliver(endpoint_id=endpoint.pk)
    endpoint.refresh_from_db()
    lost = endpoint.cursor
    assert decoded(lost)["f"][0] > dumped_at

    lose_history_after(dumped_at)
    newer = submit(a, 4)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(cursor=lost)
    receiver.requests.clear()
    assert webhook_deliver(endpoint_id=endpoint.pk) == "caught_up"
    values = [c["value"] for r in receiver.at("/hook") for c in r.payload["changes"]]
    assert set(first + newer) <= set(values)
    endpoint.refresh_from_db()
    assert endpoint.cursor != lost
