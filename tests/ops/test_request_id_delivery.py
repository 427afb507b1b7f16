"""The request id of a submission reaches the log lines of the webhook deliveries it causes.

A real Celery worker process (JSON logs, as in production), a private redis-server and
an HTTP receiver on 127.0.0.1: a member submits through the API with its own
``X-Request-ID``; the submission publishes the fan-out on commit, the fan-out publishes
``deliver_endpoint``, and the worker's log lines of both tasks carry that id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_party, pdq
from tests.support.processes import Worker, celery_worker_env, wait_for
from tests.support.receivers import Receiver
from tests.support.redis import RedisServer, celery_broker

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

SUBMISSION_ID = "submission-7f3a.42"
CREATION_ID = "create-webhook-0001"


@pytest.fixture
def worker(redis_server: RedisServer, tmp_path: Path, transactional_db: None) -> Iterator[Worker]:
    """A worker logging JSON lines (no DJANGO_DEBUG) and no beat: every delivery in this
    test is caused by the submission, none by the periodic sweep."""
    env = celery_worker_env(redis_server.url, DJANGO_LOG_LEVEL="INFO")
    env.pop("DJANGO_DEBUG", None)
    with celery_broker(redis_server.url):
        w = Worker(env=env, log=tmp_path / "worker.log", beat=False)
        w.start()
        try:
            yield w
        finally:
            w.kill()


def task_ids(lines: list[dict[str, Any]], task: str) -> set[str]:
    """Ids of the tasks named ``task`` the worker received (from its own log lines)."""
    prefix = f"Task {task}["
    return {
        line["message"][len(prefix) :].split("]", 1)[0]
        for line in lines
        if line.get("message", "").startswith(prefix)
    }


def test_a_delivery_task_logs_with_the_request_id_of_the_submission(
    settings: Any, worker: Worker, receiver: Receiver
) -> None:
    """The worker's log line of the outcome of the delivery that a submission caused carries
    the submission's X-Request-ID."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    acme, globex = make_party("acme"), make_party("globex")
    created = globex.client.post(
        "/api/v1/webhooks",
        {"url": receiver.url("/g")},
        format="json",
        HTTP_X_REQUEST_ID=CREATION_ID,
    )
    assert created.status_code == 201, created.content

    value = pdq()
    response = acme.client.post(
        "/api/v1/statements",
        {"statements": [acme.statement("pdq", value, iat=int(time.time()) - 10)]},
        format="json",
        HTTP_X_REQUEST_ID=SUBMISSION_ID,
    )
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] == SUBMISSION_ID
    wait_for(lambda: any(value.encode() in r.body for r in receiver.at("/g")), 30, "the delivery")

    def delivery_lines() -> list[dict[str, Any]]:
        lines = worker.json_lines()
        ids = task_ids(lines, "exchange.tasks.deliver_endpoint")
        return [
            line
            for line in lines
            if line.get("task_id") in ids and line.get("request_id") == SUBMISSION_ID
        ]

    # The task's own outcome line, and the line of the HTTP request it made.
    found = wait_for(
        lambda: (lines := delivery_lines()) and any("succeeded" in x["message"] for x in lines),
        10,
        "the deliver_endpoint task's outcome logged with the request id",
    )
    assert found
    assert any(x["logger"] == "httpx" and "/g" in x["message"] for x in delivery_lines())

    # The fan-out task between them carries it too; the line of the delivery is JSON with
    # the id as a field, not text that merely contains it.
    lines = worker.json_lines()
    fanout = task_ids(lines, "exchange.tasks.fanout_feed_changed")
    assert any(
        line.get("task_id") in fanout and line.get("request_id") == SUBMISSION_ID for line in lines
    )
