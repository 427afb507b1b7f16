"""The rule for tests that need a real service: skip loudly on a laptop without it, fail
under CI (``CI=true``), where every service must be there."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(ci_message: str, skip_message: str) -> NoReturn:
    """Fail with ``ci_message`` under CI, else skip loudly with ``skip_message``."""
    if IN_CI:
        pytest.fail(ci_message, pytrace=False)
    pytest.skip(skip_message)


def need(what: str, available: bool) -> None:
    """Go on if ``available``; otherwise fail (CI) or skip loudly, naming ``what``."""
    if available:
        return
    message = f"needs {what}; set DATABASE_URL / REDIS_URL (see README 'Development')"
    unavailable(f"CI=true but this test {message}", f"SKIPPED LOUDLY: this test {message}")


def postgres_available() -> bool:
    from django.db import connection

    return bool(connection.vendor == "postgresql")


def redis_available() -> bool:
    from django.conf import settings

    return bool(settings.REDIS_URL)
