"""The broker's health: ``/readyz`` needs it, ``/readyz/web`` only reports it, and
``/metrics`` shows it as ``cordiale_broker_up`` without ever waiting long for Redis.

The broker is a private redis-server that the test kills and starts again (same port).
"""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from forum import health
from tests.support.processes import wait_for
from tests.support.redis import RedisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_broker(redis_server: RedisServer, settings: Any) -> RedisServer:
    settings.REDIS_URL = redis_server.url
    settings.CELERY_BROKER_URL = redis_server.url
    health.broker_check.forget()
    return redis_server


def broker_up(client: Client) -> float | None:
    text = client.get("/metrics").content.decode()
    found = re.search(r"^cordiale_broker_up (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_readiness_and_metrics_follow_the_broker(private_broker: RedisServer) -> None:
    """Broker up: both probes 200, gauge 1. Broker killed: /readyz 503 naming the broker,
    /readyz/web still 200 reporting it down, gauge 0, and a scrape stays quick. Broker
    back on the same port: everything up again."""
    client = Client()
    assert client.get("/readyz").json() == {
        "status": "ok",
        "checks": {"database": "up", "broker": "up"},
    }
    assert client.get("/readyz/web").status_code == 200
    assert broker_up(client) == 1.0

    private_broker.kill()
    wait_for(lambda: client.get("/readyz").status_code == 503, 10, "/readyz to fail")
    full = client.get("/readyz").json()
    assert full["problems"] == ["broker: ConnectionError"]
    assert full["checks"] == {"database": "up", "broker": "down"}
    web = client.get("/readyz/web")
    assert web.status_code == 200
    assert web.json() == {"status": "ok", "checks": {"database": "up", "broker": "down"}}
    started = time.monotonic()
    assert broker_up(client) == 0.0
    assert time.monotonic() - started < 2 * health.BROKER_CHECK_TIMEOUT + 1

    private_broker.start()
    wait_for(lambda: client.get("/readyz").status_code == 200, 10, "/readyz to recover")
    assert broker_up(client) == 1.0


def test_web_readiness_fails_without_the_database() -> None:
    """/readyz/web is 503 when the database does not answer, like /readyz."""
    with mock.patch("forum.health._database_ok", return_value="database: OperationalError"):
        response = Client().get("/readyz/web")
    assert response.status_code == 503
    assert response.json()["problems"] == ["database: OperationalError"]
    assert response.json()["checks"]["database"] == "down"


def test_no_broker_configured_is_no_series(settings: Any) -> None:
    """Without REDIS_URL both probes are 200 (broker ``not_configured``) and the gauge is
    left out rather than reported as down."""
    settings.REDIS_URL = ""
    client = Client()
    assert client.get("/readyz").json()["checks"]["broker"] == "not_configured"
    assert client.get("/readyz/web").status_code == 200
    assert broker_up(client) is None
