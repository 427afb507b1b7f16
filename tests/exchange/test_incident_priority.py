"""Incident mode end to end: an incident's statement overtakes a routine backlog.

A real Celery worker with one process (so that deliveries really queue up) consumes
every queue of a private redis-server; an HTTP receiver on 127.0.0.1 answers routine
deliveries slowly. Submissions go through the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from exchange.services.incidents import incident_declare
from tests.exchange.test_webhook_delivery import subscribe
from tests.factories import make_group, make_party, pdq
from tests.support.processes import Worker, celery_worker_env, wait_for
from tests.support.receivers import Received, Receiver
from tests.support.redis import RedisServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

ROUTINE_ENDPOINTS = 30
SLOW = 0.2  # seconds a routine delivery keeps the worker busy


@pytest.fixture
def worker(broker: RedisServer, tmp_path: Path, transactional_db: None) -> Iterator[Worker]:
    env = celery_worker_env(broker.url, CORDIALE_WEBHOOK_TIMEOUT="10")
    w = Worker(env=env, log=tmp_path / "worker.log", concurrency=1, beat=False)
    w.start()
    yield w
    w.kill()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    def slow_routine(request: Received) -> None:
        if request.path.startswith("/routine") and request.payload["type"] == "changes":
            time.sleep(SLOW)

    r = Receiver(on_request=slow_routine)
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    settings.CORDIALE_WEBHOOK_MAX_PER_MEMBER = ROUTINE_ENDPOINTS


def _changes(receiver: Receiver, path: str) -> list[tuple[float, str]]:
    return [
        (r.at, c["value"])
        for r in receiver.at(path)
        if r.payload["type"] == "changes"
        for c in r.payload["changes"]
    ]


def test_an_incident_statement_overtakes_the_routine_backlog(
    worker: Worker, receiver: Receiver
) -> None:
    """With a backlog of routine deliveries queued, the incident's statement reaches its
    receiver while routine deliveries are still arriving; every endpoint hears of the
    incident, signed like any other event."""
    routine, responder = make_party(), make_party()
    secrets = {}
    for i in range(ROUTINE_ENDPOINTS):
        _, secrets[f"/routine{i}"] = subscribe(routine, receiver.url(f"/routine{i}"))
    _, secrets["/incident"] = subscribe(responder, receiver.url("/incident"))
    make_group("responders", responder)

    # Routine traffic for the whole forum: one slow delivery per endpoint, queued.
    body = routine.submit(*(routine.statement("pdq", pdq()) for _ in range(3)))
    assert body["accepted"] == 3, body
    wait_for(lambda: receiver.at("/routine0") or receiver.requests, 30, "the backlog to start")

    incident = incident_declare(name="Attack", description="A livestream", actor="admin:test")
    urgent = pdq()
    token = responder.statement(
        "pdq", urgent, labels=[incident.label.slug], audience="group:responders"
    )
    assert responder.submit(token)["accepted"] == 1

    wait_for(
        lambda: any(value == urgent for _, value in _changes(receiver, "/incident")),
        30,
        "the incident statement",
    )
    arrived = next(at for at, value in _changes(receiver, "/incident") if value == urgent)
    routine_paths = [f"/routine{i}" for i in range(ROUTINE_ENDPOINTS)]
    wait_for(
        lambda: all(_changes(receiver, path) for path in routine_paths),
        60,
        "the backlog to drain",
    )
    after = [at for path in routine_paths for at, _ in _changes(receiver, path) if at > arrived]
    # A routine delivery takes SLOW seconds; most of the backlog was still queued.
    assert len(after) >= ROUTINE_ENDPOINTS // 2, (len(after), worker.log.read_text()[-2000:])

    for path, secret in secrets.items():
        events = [
            Webhook(secret).verify(r.body, r.headers)
            for r in receiver.at(path)
            if r.payload["type"] == "incident.declared"
        ]
        assert len(events) == 1, path
        assert events[0]["incident"]["label"] == "incident-attack"
        assert events[0]["incident"]["name"] == "Attack"
