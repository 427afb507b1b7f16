"""A Celery worker serves its task outcomes on ``CORDIALE_WORKER_METRICS_PORT``.

A real worker process (prefork, two pool processes) on a private redis-server: tasks
that succeed and tasks that fail run in its pool processes, and a scrape of the port the
worker opened counts them by task name and outcome, summed over the pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forum.celery import app
from tests.support.processes import Worker, celery_worker_env, free_port, wait_for
from tests.support.redis import RedisServer, celery_broker

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

SWEEP = "exchange.tasks.sweep_webhooks"
DELIVER = "exchange.tasks.deliver_endpoint"


@pytest.fixture
def worker_port(redis_server: RedisServer, tmp_path: Path, transactional_db: None) -> Iterator[int]:
    """A worker without beat (only the tasks sent here run) serving metrics on a free port."""
    port = free_port()
    env = celery_worker_env(redis_server.url, CORDIALE_WORKER_METRICS_PORT=str(port))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with celery_broker(redis_server.url):
        worker = Worker(env=env, log=tmp_path / "worker.log", beat=False)
        worker.start()
        try:
            yield port
        finally:
            worker.kill()


def _count(text: str, task: str, outcome: str) -> float:
    pattern = (
        r'^cordiale_celery_tasks_total\{(?=[^}]*task="' + re.escape(task) + r'")'
        r'(?=[^}]*outcome="' + outcome + r'")[^}]*\} ([0-9.e+]+)$'
    )
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def test_worker_counts_task_outcomes_on_its_metrics_port(worker_port: int) -> None:
    """Three sweeps that succeed and two deliveries called with a bad argument (they fail)
    show up as 3 successes and 2 failures on the worker's own port."""
    for _ in range(3):
        app.send_task(SWEEP)
    for _ in range(2):
        app.send_task(DELIVER, args=[], kwargs={"no_such_argument": 1})
    url = f"http://127.0.0.1:{worker_port}/metrics"

    def counted() -> str | None:
        text = httpx.get(url, timeout=5).text
        done = _count(text, SWEEP, "success") == 3 and _count(text, DELIVER, "failure") == 2
        return text if done else None

    text = wait_for(counted, 60, "the worker to report 3 successes and 2 failures", step=0.3)
    assert _count(text, DELIVER, "success") == 0
    assert _count(text, SWEEP, "failure") == 0
