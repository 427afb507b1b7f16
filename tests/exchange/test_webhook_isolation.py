"""One member cannot stall webhooks for everyone (DESIGN.md invariant 8).

Real parts, as in ``test_webhook_delivery.py``: a Celery worker process with two pool
processes, a private redis-server, receivers on 127.0.0.1. Member "slow" runs receivers
that trickle their answer one byte at a time, forever; deliveries to other members must
not wait on them, and every attempt to them must end within the attempt timeout.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from exchange.models import WebhookDelivery
from tests.exchange.test_webhook_delivery import (  # noqa: F401 (fixtures)
    _allow_private,
    delivered,
    start_worker,
    submit_batches,
    subscribe,
    worker_env,
    workers,
)
from tests.factories import make_party
from tests.support.processes import Worker, wait_for
from tests.support.receivers import Receiver, TricklingReceiver

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

TIMEOUT = 4.0  # CORDIALE_WEBHOOK_TIMEOUT for these workers
SCHEDULING_SLACK = 2.0  # a loaded machine may start or finish a task late


def test_a_trickling_receiver_does_not_delay_other_members_deliveries(
    labels: None,
    workers: list[Worker],  # noqa: F811
    worker_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """Member "slow" has three endpoints whose receiver reads the request and then sends
    one byte of its answer every half second, forever; member "quick" has one ordinary
    endpoint. With two worker processes, each change reaches "quick" within the attempt
    timeout of its submission, and every attempt to "slow" is logged as a failed,
    timed-out attempt that lasted no longer than the timeout."""
    acme, slow, quick = make_party("acme"), make_party("slow"), make_party("quick")
    env = {
        **worker_env,
        "CORDIALE_WEBHOOK_TIMEOUT": str(TIMEOUT),
        "CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER": "1",
    }
    start_worker(workers, env, tmp_path)
    trickle = TricklingReceiver(interval=0.5)
    try:
        slow_ids = [subscribe(slow, trickle.url(f"/slow-{i}"))[0] for i in range(3)]
        _, secret = subscribe(quick, receiver.url("/quick"))
        expected = 0
        for _ in range(3):
            submitted = time.time()
            expected += len(submit_batches(acme, batches=1, size=2))
            wait_for(
                lambda n=expected: len(delivered(receiver, "/quick", secret)) >= n,
                TIMEOUT,
                "quick's delivery within the timeout",
            )
            latest = max(r.at for r in receiver.at("/quick"))
            assert latest - submitted < TIMEOUT
            time.sleep(1.0)
        assert trickle.arrivals, "the slow receiver was never tried"

        def slow_attempts() -> list[WebhookDelivery]:
            return list(WebhookDelivery.objects.filter(endpoint_id__in=slow_ids))

        attempts = wait_for(slow_attempts, TIMEOUT + SCHEDULING_SLACK, "a logged attempt")
        for attempt in attempts:
            assert not attempt.ok and attempt.error.startswith("timeout"), attempt.error
            assert attempt.latency_ms is not None
            assert attempt.latency_ms <= (TIMEOUT + SCHEDULING_SLACK) * 1000
    finally:
        trickle.close()


def test_pings_are_coalesced_and_never_overlap_a_delivery(
    labels: None,
    workers: list[Worker],  # noqa: F811
    worker_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """While a delivery to an endpoint is in flight, three pings are requested: they
    are answered 202, one ping is sent (the others are folded into it), and it waits
    for the delivery instead of running beside it: the endpoint never has two requests
    in flight."""
    acme, globex = make_party("acme"), make_party("globex")
    start_worker(workers, worker_env, tmp_path)
    endpoint_id, _ = subscribe(globex, receiver.url("/g"))
    receiver.delay = 1.5
    submit_batches(acme, batches=1, size=2)
    wait_for(lambda: receiver.at("/g"), 20, "the delivery to be in flight")
    for _ in range(3):
        response = globex.client.post(f"/api/v1/webhooks/{endpoint_id}/ping")
        assert response.status_code == 202 and response.json()["queued"] is True

    def pings() -> list[float]:
        return [r.at for r in receiver.at("/g") if r.payload["type"] == "ping"]

    wait_for(pings, 20, "the ping")
    time.sleep(2 * receiver.delay + 1.0)  # time for any other ping to arrive
    assert len(pings()) == 1
    arrivals = sorted(r.at for r in receiver.at("/g"))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= receiver.delay - 0.1 for gap in gaps), gaps


@pytest.mark.parametrize(
    "name",
    [
        "exchange.tasks.deliver_endpoint",
        "exchange.tasks.deliver_ping",
        "exchange.tasks.deliver_incident_declared",
    ],
)
def test_delivery_tasks_have_soft_and_hard_time_limits(name: str) -> None:
    """Backstops to the per-attempt deadline: every task that sends to a receiver has a
    soft limit (longer than one attempt, and than the task budget for deliveries) and a
    later hard limit, so no code path can hold a worker process indefinitely."""
    from django.conf import settings

    from forum.celery import app

    app.loader.import_default_modules()
    task = app.tasks[name]
    floor = float(settings.CORDIALE_WEBHOOK_TIMEOUT)
    if name.endswith("deliver_endpoint"):
        floor += float(settings.CORDIALE_WEBHOOK_TASK_BUDGET)
    assert task.soft_time_limit is not None and task.soft_time_limit > floor
    assert task.time_limit is not None and task.time_limit > task.soft_time_limit
