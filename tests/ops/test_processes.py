"""The container entrypoints start the real processes, without a container engine.

One stack per module: a private redis-server, a temporary SQLite database migrated by
``deploy/bin/migrate``, then ``deploy/bin/web`` (gunicorn), ``deploy/bin/worker`` and
``deploy/bin/beat`` in production mode (no debug, a real secret, one public host name).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from forum.middleware import RequestIdMiddleware
from tests.support.processes import BIN, PUBLIC_HOST, Process, free_port, http_get, production_env
from tests.support.redis import RedisServer

pytestmark = pytest.mark.slow

METRICS_TOKEN = "ops-test-metrics-token"
QUEUES = ("fanout", "delivery", "maintenance", "priority")


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    redis_url: str

    def start(self, name: str, *args: str, **env: str) -> Process:
        return Process([str(BIN / name), *args], {**self.env, **env}, self.tmp / f"{name}.log")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ops-stack")
    redis = RedisServer(tmp)
    redis.start()
    redis_url = redis.url
    env = production_env(
        DATABASE_URL=f"sqlite:///{tmp / 'cordiale.sqlite3'}",
        REDIS_URL=redis_url,
        CORDIALE_METRICS_TOKEN=METRICS_TOKEN,
        CELERY_CONCURRENCY="1",
        CELERY_BEAT_SCHEDULE_FILE=str(tmp / "celerybeat-schedule"),
        CORDIALE_DB_WAIT="5",
    )
    try:
        migrate = subprocess.run(
            [str(BIN / "migrate")], env=env, capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield Stack(tmp=tmp, env=env, redis_url=redis_url)
    finally:
        redis.kill()


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[Process]:
    proc = stack.start("worker")
    try:
        proc.wait_for(lambda: re.search(r"celery@\S+ ready", proc.output()), "worker ready", 60)
        yield proc
    finally:
        proc.stop()


def test_migrate_applied_everything(stack: Stack) -> None:
    """``deploy/bin/migrate`` applied every migration: ``--check`` finds none left."""
    check = subprocess.run(
        [str(BIN / "migrate"), "--check"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_web_serves_probes_api_and_metrics(stack: Stack) -> None:
    """gunicorn answers the probes by pod IP over HTTP, guards the API with the host check
    and HTTPS, logs JSON with the request id, and serves token-protected metrics summed
    over its worker processes."""
    port = free_port()
    web = stack.start("web", GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2")
    base = f"http://127.0.0.1:{port}"
    try:
        web.wait_for(lambda: _status(f"{base}/readyz") == 200, "/readyz 200", 60)
        assert _status(f"{base}/readyz/web") == 200
        ready = subprocess.run(
            [str(BIN / "healthcheck"), "ready"],
            env={**stack.env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            capture_output=True,
            timeout=30,
        )
        assert ready.returncode == 0, ready.stderr
        status, headers, _ = http_get(f"{base}/healthz", Host="10.0.3.7:8000")
        assert status == 200
        assert headers.get("X-Request-ID")

        # The API: unknown hosts refused, plain HTTP redirected, HTTPS (via the proxy)
        # served with HSTS and the client's request id echoed.
        assert http_get(f"{base}/api/v1/labels", Host="10.0.3.7:8000")[0] == 400
        status, headers, _ = http_get(f"{base}/api/v1/labels", Host=PUBLIC_HOST)
        assert status == 301
        assert headers["Location"] == f"https://{PUBLIC_HOST}/api/v1/labels"
        status, headers, _ = http_get(
            f"{base}/api/v1/labels",
            Host=PUBLIC_HOST,
            **{"X-Forwarded-Proto": "https", "X-Request-ID": "ops-test-0001"},
        )
        assert status == 401
        assert headers["X-Request-ID"] == "ops-test-0001"
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert headers["X-Content-Type-Options"] == "nosniff"
        web.wait_for(
            lambda: any(
                line.get("logger") == "gunicorn.access"
                and line.get("request_id") == "ops-test-0001"
                for line in web.json_lines()
            ),
            "an access log line with the request id",
        )
        assert any(
            line.get("logger") == "django.request" and line.get("request_id") == "ops-test-0001"
            for line in web.json_lines()
        ), web.output()[-3000:]

        assert http_get(f"{base}/metrics")[0] == 401
        status, _, body = http_get(f"{base}/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
        assert status == 200
        text = body.decode()
        assert re.search(
            r'cordiale_http_requests_total\{[^}]*route="labels"[^}]*status="401"[^}]*\} 1\.0',
            text,
        ), text
        assert "cordiale_feed_head 0.0" in text
        assert "cordiale_broker_up 1.0" in text
        for queue in QUEUES:
            assert f'cordiale_celery_queue_length{{queue="{queue}"}}' in text
    finally:
        web.stop()


def _status(url: str) -> int | None:
    try:
        return http_get(url)[0]
    except OSError:
        return None


def test_worker_consumes_every_queue_and_answers_ping(stack: Stack, worker: Process) -> None:
    """A worker started without a queue list consumes all four queues and answers the
    health check's ping."""
    banner = worker.output()
    for queue in QUEUES:
        assert re.search(rf"\.> {queue}\s", banner), banner
    ping = subprocess.run(
        [str(BIN / "healthcheck"), "worker"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_task_log_carries_the_request_id(stack: Stack, worker: Process) -> None:
    """A task published while a request is handled logs, in the worker, with that
    request's id: the id travels in the message headers."""
    publisher = Celery("publisher", broker=stack.redis_url)

    def view(request: HttpRequest) -> HttpResponse:
        publisher.send_task("exchange.tasks.sweep_lapsed_statements", queue="maintenance")
        return HttpResponse()

    response = RequestIdMiddleware(view)(RequestFactory().post("/api/v1/statements"))
    request_id = response["X-Request-ID"]
    publisher.close()

    line = worker.wait_for(
        lambda: next(
            (
                line
                for line in worker.json_lines()
                if line.get("request_id") == request_id and line.get("logger") == "celery.app.trace"
            ),
            None,
        ),
        "a task log line with the request id",
    )
    assert "exchange.tasks.sweep_lapsed_statements" in line["message"]
    assert "succeeded" in line["message"]
    assert line["task_id"]


def test_beat_starts_and_keeps_its_schedule(stack: Stack) -> None:
    """beat starts, writes its schedule file, and its health check passes."""
    beat = stack.start("beat")
    try:
        beat.wait_for(lambda: "beat: Starting" in beat.output(), "beat start", 60)
        beat.wait_for(lambda: list(stack.tmp.glob("celerybeat-schedule*")), "the schedule file")
        time.sleep(0.5)
        health = subprocess.run(
            [str(BIN / "healthcheck"), "beat"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        beat.stop()
