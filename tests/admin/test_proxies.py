"""The client's address behind the forum's reverse proxies: X-Forwarded-For is believed
only from a peer in ``CORDIALE_TRUSTED_PROXIES``, for the sign-in lockout and the audit
log alike."""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from members.models import AuditEntry
from tests.factories import make_staff

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PROXY = "10.1.2.3"  # the peer the web process sees when the proxy relays a request


def fresh_staff() -> tuple[str, Any]:
    # A name of its own per test: on Redis, lockout counters outlive a test's transaction.
    username = f"proxied-{uuid.uuid4().hex[:10]}"
    _, device = make_staff(username, password="correct horse battery")
    return username, device


def fail_sign_in(client: Client, username: str, **meta: str) -> Any:
    return client.post(
        LOGIN, {"username": username, "password": "wrong", "otp_token": "000000"}, **meta
    )


def failure_ips(username: str) -> list[str]:
    entries = AuditEntry.objects.filter(action="admin.login_failed", object_id=username)
    return [e.after["ip"] for e in entries.order_by("id")]


def test_forged_header_is_ignored_without_trusted_proxies() -> None:
    """With no trusted proxy, a client's own X-Forwarded-For changes nothing: the audit
    log records the peer, and varying the header does not escape the lockout."""
    username, _ = fresh_staff()
    client = Client()
    for n in range(django_settings.AXES_FAILURE_LIMIT):
        fail_sign_in(client, username, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert set(failure_ips(username)) == {"127.0.0.1"}
    assert fail_sign_in(client, username, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429


def test_trusted_proxy_reports_the_real_client(settings: Any) -> None:
    """Behind a trusted proxy the client is the address the proxy appended: the audit
    log records it, whatever the client forged to its left, and the lockout counts it."""
    settings.CORDIALE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    username, _ = fresh_staff()
    client = Client()
    via_proxy = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "192.0.2.66, 203.0.113.9"}
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        fail_sign_in(client, username, **via_proxy)
    assert set(failure_ips(username)) == {"203.0.113.9"}
    assert fail_sign_in(client, username, **via_proxy).status_code == 429
    # Another client behind the same proxy is not locked out by the first one's failures.
    other = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.10"}
    assert fail_sign_in(client, username, **other).status_code == 200
    assert failure_ips(username)[-1] == "203.0.113.10"


def test_header_from_an_untrusted_peer_is_ignored(settings: Any) -> None:
    """A request that reaches the web process directly, not from a trusted proxy, is
    taken at its peer address even when the setting is on."""
    settings.CORDIALE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    username, _ = fresh_staff()
    fail_sign_in(Client(), username, REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR=PROXY)
    assert failure_ips(username) == ["198.51.100.20"]


def test_a_bad_setting_stops_the_server_at_start() -> None:
    """A value that is no address or network is refused when settings load, naming it."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CORDIALE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}
    env["DJANGO_SETTINGS_MODULE"] = "forum.test_settings"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "proxy.internal" in result.stderr
