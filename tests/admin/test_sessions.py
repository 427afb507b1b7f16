"""Admin sessions end after ``CORDIALE_ADMIN_IDLE_TIMEOUT`` seconds without a request;
every request starts the count again."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.factories import make_staff, verified_admin_client

pytestmark = pytest.mark.django_db


class Clock:
    """Moves Django's idea of now forward, as hours of idleness would."""

    def __init__(self, monkeypatch: Any) -> None:
        self.offset = timedelta()
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def is_open(client: Any) -> bool:
    response = client.get("/admin/")
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
        return False
    assert response.status_code == 200
    return True


def test_idle_session_expires_and_activity_slides(settings: Any, monkeypatch: Any) -> None:
    """The timeout is a matter of hours; a console used more often than that stays open
    past it, and one left alone longer than it asks for the password and code again."""
    idle = settings.CORDIALE_ADMIN_IDLE_TIMEOUT
    assert 3600 <= idle <= 12 * 3600
    clock = Clock(monkeypatch)
    client = verified_admin_client(*make_staff("root"))
    assert is_open(client)
    for _ in range(3):  # three requests spaced just under the timeout: 3 x idle in all
        clock.advance(idle - 60)
        assert is_open(client)
    clock.advance(idle + 60)
    assert not is_open(client)


def test_session_cookie_follows_the_timeout(settings: Any) -> None:
    """The browser is told the same lifetime, renewed on each answer."""
    client = verified_admin_client(*make_staff("root"))
    response = client.get("/admin/")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.CORDIALE_ADMIN_IDLE_TIMEOUT
