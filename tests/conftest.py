"""Shared fixtures, and the rule for tests that need real services.

A test marked ``postgres`` or ``redis`` skips loudly when the service is missing on a
laptop, and fails under CI (``CI=true``), where the services must be there.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.labels import default_labels_restore
from tests.support.services import need, postgres_available, redis_available

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres"):
        need("PostgreSQL", postgres_available())
    if request.node.get_closest_marker("redis"):
        need("Redis", redis_available())


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
    default_labels_restore()
