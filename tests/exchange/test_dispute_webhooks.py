"""Webhook events of disputes (issue #18, item 1): ``dispute.opened`` and
``dispute.decided`` reach the parties, signed per Standard Webhooks, delivered by a
real Celery worker at least once and retried; never a member outside the signal's
audience. An overturn reaches every endpoint that saw the signal as a tombstone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from exchange.client.verify import index_jwks, verify_decision
from exchange.disputes.events import dispute_event_deliver
from exchange.disputes.services import dispute_decide
from exchange.models import Dispute, DisputeEvent
from members.services import sharing_group_set_members
from tests.exchange.test_disputes import open_dispute
from tests.factories import Party, make_group, make_party, pdq
from tests.support.processes import Worker, celery_worker_env, wait_for
from tests.support.receivers import Receiver
from tests.support.redis import RedisServer

WAIT = 30.0


@pytest.fixture(autouse=True)
def _allow_private(settings: Any) -> None:
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def worker(broker: RedisServer, tmp_path: Path, transactional_db: None) -> Iterator[Worker]:
    env = celery_worker_env(
        broker.url,
        CORDIALE_WEBHOOK_SWEEP_INTERVAL="1",
        CORDIALE_WEBHOOK_RETRY_BASE="0.2",
        CORDIALE_WEBHOOK_RETRY_MAX="1",
    )
    started = Worker(env=env, log=tmp_path / "worker.log")
    started.start()
    yield started
    started.kill()


def subscribe(party: Party, receiver: Receiver) -> str:
    response = party.client.post(
        "/api/v1/webhooks", {"url": receiver.url(f"/{party.slug}")}, format="json"
    )
    assert response.status_code == 201, response.content
    return str(response.json()["secret"])


def received(receiver: Receiver, party: Party, secret: str) -> list[tuple[str, dict[str, Any]]]:
    """(webhook-id, payload) of everything the party's endpoint got, signatures checked."""
    return [
        (r.headers["webhook-id"], Webhook(secret).verify(r.body, r.headers))
        for r in receiver.at(f"/{party.slug}")
        if r.status < 300
    ]


def events(receiver: Receiver, party: Party, secret: str) -> list[dict[str, Any]]:
    return [p for _, p in received(receiver, party, secret) if p["type"].startswith("dispute.")]


def changes(receiver: Receiver, party: Party, secret: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for _, payload in received(receiver, party, secret):
        if payload["type"] == "changes":
            latest.update((c["value"], c) for c in payload["changes"])
    return latest


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_parties_get_signed_dispute_events_and_nobody_else_does(
    settings: Any, worker: Worker, receiver: Receiver
) -> None:
    """The disputed member (whose receiver fails at first: retried, same webhook-id)
    and the opener get ``dispute.opened`` then ``dispute.decided`` with the signed
    overturn; a member that sees the signal but is no party gets no event, only the
    feed's snapshots, ending in a tombstone; a member outside the group gets nothing
    about the value at all."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    acme, globex, initech, outsider = (make_party(s) for s in ("acme", "globex", "initech", "out"))
    make_group("trio", acme, globex, initech)
    secrets = {p.slug: subscribe(p, receiver) for p in (acme, globex, initech, outsider)}
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:trio", iat=int(time.time()) - 5))
    wait_for(lambda: value in changes(receiver, initech, secrets["initech"]), WAIT, "the feed")

    receiver.fail_until = time.monotonic() + 2  # every endpoint fails for a while
    dispute_id = open_dispute(globex, value).json()["id"]
    for party in (acme, globex):
        wait_for(
            lambda p=party: (
                [e["type"] for e in events(receiver, p, secrets[p.slug])] == ["dispute.opened"]
            ),
            WAIT,
            f"{party.slug}'s dispute.opened",
        )
    opened = events(receiver, acme, secrets["acme"])[0]["dispute"]
    assert opened["id"] == dispute_id and opened["party"] is True and opened["value"] == value
    assert events(receiver, globex, secrets["globex"])[0]["dispute"]["mine"] is True
    attempts = [r for r in receiver.at("/acme") if b"dispute.opened" in r.body]
    assert len(attempts) >= 2 and attempts[0].status >= 500
    assert len({r.headers["webhook-id"] for r in attempts}) == 1

    dispute_decide(
        dispute=Dispute.objects.get(pk=dispute_id),
        decision="overturn",
        rationale="A news photograph.",
        staff_user=None,
    )
    keys = index_jwks(acme.get("/api/v1/jwks").json())
    for party in (acme, globex):
        wait_for(
            lambda p=party: len(events(receiver, p, secrets[p.slug])) == 2,
            WAIT,
            f"{party.slug}'s dispute.decided",
        )
        decided = events(receiver, party, secrets[party.slug])[1]
        assert decided["type"] == "dispute.decided"
        assert verify_decision(decided["dispute"]["decision"]["jws"], keys)["decision"] == (
            "overturn"
        )
    wait_for(
        lambda: changes(receiver, initech, secrets["initech"])[value]["deleted"] is True,
        WAIT,
        "the overturn's tombstone at a non-party's endpoint",
    )
    assert events(receiver, initech, secrets["initech"]) == []
    assert value not in str([r.body for r in receiver.at("/out")])
    wait_for(
        lambda: not DisputeEvent.objects.filter(delivered_at__isnull=True).exists(),
        WAIT,
        "every event recorded as delivered",
    )
    assert DisputeEvent.objects.filter(dropped=False).count() == 4


@pytest.mark.django_db
def test_an_event_owed_to_a_member_that_lost_sight_of_the_signal_is_dropped(
    receiver: Receiver,
) -> None:
    """A party that leaves the signal's group before its event is sent gets nothing:
    the event is built at sending time, for what the member may see then."""
    acme, globex, hooli = (make_party(s) for s in ("acme", "globex", "hooli"))
    group = make_group("trio", acme, globex, hooli)
    subscribe(acme, receiver)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:trio", iat=int(time.time()) - 5))
    open_dispute(globex, value)
    [event] = DisputeEvent.objects.filter(endpoint__member=acme.member)
    sharing_group_set_members(group=group, members=[globex.member, hooli.member], actor="test")

    assert dispute_event_deliver(event_id=event.pk) == "dropped"
    assert receiver.at("/acme") == []
    assert DisputeEvent.objects.get(pk=event.pk).dropped is True
    assert dispute_event_deliver(event_id=event.pk) == "done"


@pytest.mark.django_db
def test_the_sweep_sends_an_event_whose_task_was_lost(
    receiver: Receiver, tasks_in_process: None
) -> None:
    """An event still pending after its task should have run (a broker outage lost the
    publication) is published again by the sweep and delivered, signed; a delivered one
    is not sent again."""
    from datetime import timedelta

    from django.utils import timezone

    from exchange.disputes.events import dispute_events_sweep

    acme, globex = make_party("acme"), make_party("globex")
    secret = subscribe(acme, receiver)
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=int(time.time()) - 5))
    open_dispute(globex, value)  # in this test's transaction: its on-commit never runs
    assert receiver.at("/acme") == []
    DisputeEvent.objects.update(created_at=timezone.now() - timedelta(minutes=5))

    assert dispute_events_sweep() == 1
    [event] = events(receiver, acme, secret)
    assert event["type"] == "dispute.opened" and event["dispute"]["value"] == value
    assert dispute_events_sweep() == 0
    assert len(receiver.at("/acme")) == 1
