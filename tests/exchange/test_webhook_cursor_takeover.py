"""A delivery that lost its endpoint's lock never moves the endpoint's cursor back.

The endpoint lock is a session advisory lock: when a delivery's database connection
drops (a network blip, a proxy restart) the lock goes with it, another delivery takes the
endpoint over and advances its cursor. The first one, reconnected, still holds the page
it sent; storing that page's cursor would move the endpoint back and send everything
after it again. The cursor is therefore stored only if it is still the one the page
started from (compare and set), and a delivery that finds it moved stops.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from exchange.models import WebhookEndpoint
from exchange.webhooks.delivery import delivering, waking, webhook_deliver
from exchange.webhooks.endpoints import webhook_create, webhook_cursor_at_head
from tests.factories import ACTOR, make_party, pdq
from tests.support.receivers import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch, labels: None) -> None:
    """Deliveries run only where the test runs them: nothing is published to a broker."""
    monkeypatch.setattr(waking, "publish_task", lambda *args, **kwargs: False)


@override_settings(CORDIALE_WEBHOOK_ALLOW_PRIVATE=True, CORDIALE_WEBHOOK_BATCH=1)
def test_a_delivery_that_lost_its_lock_does_not_move_the_cursor_back(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """Worker 1 sends the first page, then loses its connection (and the lock); worker 2
    takes the endpoint over and delivers everything. Worker 1, reconnected, must neither
    store its older cursor nor send anything more: the cursor stays at the head."""
    writer, reader = make_party("writer"), make_party("reader")
    now = int(time.time())
    writer.submit(*(writer.statement("pdq", pdq(), iat=now - 10) for _ in range(3)))
    endpoint, _ = webhook_create(
        member=reader.member, url=receiver.url(), start="beginning", actor=ACTOR
    )
    head = webhook_cursor_at_head(member_id=reader.member.pk)

    dropped, taken_over = threading.Event(), threading.Event()
    real_send = delivering.send_signed
    stale: dict[str, Any] = {}

    def send(*args: Any) -> Any:
        result = real_send(*args)
        if threading.current_thread().name == "stale" and not dropped.is_set():
            connection.close()  # the session ends, and its advisory locks with it
            dropped.set()
            assert taken_over.wait(30)
        return result

    monkeypatch.setattr(delivering, "send_signed", send)

    def run(name: str) -> None:
        try:
            stale[name] = webhook_deliver(endpoint_id=endpoint.pk)
        finally:
            connection.close()

    first = threading.Thread(target=run, args=["stale"], name="stale")
    first.start()
    assert dropped.wait(30)
    second = threading.Thread(target=run, args=["owner"], name="owner")
    second.start()
    second.join(30)
    assert stale["owner"] == "caught_up"
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).cursor == head
    posts_by_then = len(receiver.requests)
    assert posts_by_then == 4  # the stale page, then the owner's three

    taken_over.set()
    first.join(30)
    assert not first.is_alive()
    assert len(receiver.requests) == posts_by_then  # nothing sent again from an old cursor
    assert stale["stale"] == "lost"
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).cursor == head
