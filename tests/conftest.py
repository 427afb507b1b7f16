"""Shared fixtures, and the rule for tests that need real services.

A test marked ``postgres`` or ``redis`` skips loudly when the service is missing on a
laptop, and fails under CI (``CI=true``), where the services must be there.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(what: str, available: bool) -> None:
    if available:
        return
    message = f"needs {what}; set DATABASE_URL / REDIS_URL (see README 'Development')"
    if IN_CI:
        pytest.fail(f"CI=true but this test {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: this test {message}")


def redis_available() -> bool:
    return bool(settings.REDIS_URL)


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres"):
        from django.db import connection

        _need("PostgreSQL", connection.vendor == "postgresql")
    if request.node.get_closest_marker("redis"):
        _need("Redis", redis_available())


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Throttle counters live in the cache; each test starts with none.

    Only the in-memory cache is cleared: on Redis the test run has its own key prefix
    (``forum.test_settings``), and flushing a shared Redis is not a test's business.
    """
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()


@pytest.fixture(autouse=True)
def _default_labels(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush every table, data migrations' rows included: put the
    default labels back for them."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    from exchange.default_labels import LABELS
    from exchange.models import Label

    for slug, name, kind, description in LABELS:
        Label.objects.get_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "description": description}
        )
