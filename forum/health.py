"""Liveness and readiness probes, and the broker's health for ``/metrics``.

- ``/healthz``: 200 while the process runs.
- ``/readyz``: 200 only when the database and, if configured, the broker (Redis) answer;
  else 503 (CONTRACT.md).
- ``/readyz/web``: 200 when the database answers, whatever the broker does. Web pods
  use it as their readiness probe: submissions, the feed, lookups and matches need only
  PostgreSQL (a lost webhook wake-up is recovered by the sweep), so a Redis outage must
  not take every web pod out of service at once.

Both readiness answers carry ``checks``: ``{"database": "up"|"down", "broker":
"up"|"down"|"not_configured"}``. The broker check pings Redis with a short timeout and
keeps its result for ``BROKER_CHECK_TTL`` seconds in the process, so that probes and
scrapes arriving together cost one ping, and a Redis that does not answer delays a
probe or a scrape by ``BROKER_CHECK_TIMEOUT`` at most.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

BROKER_CHECK_TIMEOUT = 0.5
BROKER_CHECK_TTL = 2.0

UP, DOWN, NOT_CONFIGURED = "up", "down", "not_configured"


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process runs: restart only what is truly stuck."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready", whatever its kind
        return f"database: {exc.__class__.__name__}"
    return None


class _BrokerCheck:
    """The broker's last ping result, kept ``BROKER_CHECK_TTL`` seconds per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._url = ""
        self._problem: str | None = None

    def problem(self) -> str | None:
        """None when the broker answers (or none is configured), else what failed."""
        url = settings.REDIS_URL
        if not url:
            return None
        with self._lock:
            fresh = time.monotonic() - self._checked_at < BROKER_CHECK_TTL
            if not (fresh and url == self._url):
                self._problem = _ping(url)
                self._url, self._checked_at = url, time.monotonic()
            return self._problem

    def forget(self) -> None:
        with self._lock:
            self._checked_at = float("-inf")


def _ping(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BROKER_CHECK_TIMEOUT,
            socket_timeout=BROKER_CHECK_TIMEOUT,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means "down", whatever its kind
        return f"broker: {exc.__class__.__name__}"
    return None


broker_check = _BrokerCheck()


def broker_state() -> str:
    """``up``, ``down`` or ``not_configured`` (no ``REDIS_URL``), from the cached check."""
    if not settings.REDIS_URL:
        return NOT_CONFIGURED
    return DOWN if broker_check.problem() else UP


def _answer(problems: list[str], checks: dict[str, str]) -> JsonResponse:
    if problems:
        body = {"status": "unavailable", "problems": problems, "checks": checks}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks})


def _checks() -> tuple[str | None, str | None, dict[str, str]]:
    database = _database_ok()
    broker = broker_check.problem()
    checks = {"database": DOWN if database else UP, "broker": broker_state()}
    return database, broker, checks


def readyz(request: HttpRequest) -> JsonResponse:
    """200 only when the database and, if configured, the broker answer; else 503."""
    database, broker, checks = _checks()
    return _answer([p for p in (database, broker) if p], checks)


def readyz_web(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; the broker's state is reported, not required."""
    database, _, checks = _checks()
    return _answer([database] if database else [], checks)
