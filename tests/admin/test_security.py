"""Admin sign-in: password and TOTP code unless DEBUG, lockout, every attempt audited."""

import base64
import json
import uuid
from io import StringIO
from typing import Any

import pyotp
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from members.models import AuditEntry
from tests.factories import make_staff

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def totp_now(device: Any) -> str:
    return pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()


def fresh_staff() -> tuple[Any, Any, str]:
    # A name of its own per test: on Redis, lockout counters outlive a test's transaction.
    username = f"staff-{uuid.uuid4().hex[:10]}"
    user, device = make_staff(username, password="correct horse battery")
    return user, device, username


def sign_in(client: Client, username: str, password: str, token: str = "") -> Any:
    return client.post(
        LOGIN, {"username": username, "password": password, "otp_token": token}, follow=False
    )


def entries(action: str, username: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action, object_id=username).order_by("id"))


def test_password_and_code_sign_in_and_are_audited() -> None:
    """Password plus the current TOTP code opens the admin; the sign-in is audited with
    the device that verified it."""
    _, device, username = fresh_staff()
    client = Client()
    response = sign_in(client, username, "correct horse battery", totp_now(device))
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    [entry] = entries("admin.login", username)
    assert entry.actor == f"admin:{username}"
    assert entry.after["otp_device"] == device.persistent_id


def test_password_alone_is_not_enough() -> None:
    """Without the code, or with a wrong one, the admin stays closed; a wrong code is
    a failed sign-in in the audit log."""
    _, device, username = fresh_staff()
    client = Client()
    page = sign_in(client, username, "correct horse battery")
    assert page.status_code == 200 and b"otp_token" in page.content
    wrong = f"{(int(totp_now(device)) + 1) % 1_000_000:06d}"
    assert sign_in(client, username, "correct horse battery", wrong).status_code == 200
    assert client.get("/admin/").status_code == 302
    assert [e.after["reason"] for e in entries("admin.login_failed", username)] == ["otp"]
    assert not entries("admin.login", username)


def test_session_without_verified_device_is_not_staff() -> None:
    """A session signed in by password only (no verified device) gets the login page."""
    user, _, _ = fresh_staff()
    client = Client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_wrong_passwords_lock_the_account_out() -> None:
    """After AXES_FAILURE_LIMIT failures even the right password and code are refused
    (429) until the cool-off; failures and the lockout are audited, never passwords."""
    _, device, username = fresh_staff()
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, username, "wrong password", "000000")
    locked = sign_in(client, username, "correct horse battery", totp_now(device))
    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302
    failures = entries("admin.login_failed", username)
    assert len(failures) >= settings.AXES_FAILURE_LIMIT
    assert entries("admin.locked_out", username)
    assert "wrong password" not in json.dumps([e.after for e in failures])
    assert not entries("admin.login", username)


def test_debug_mode_needs_no_code(settings: Any) -> None:
    """On a laptop with DJANGO_DEBUG the password alone opens the admin."""
    settings.DEBUG = True
    _, _, username = fresh_staff()
    client = Client()
    response = client.post(LOGIN, {"username": username, "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_enrol_totp_prints_a_working_otpauth_url() -> None:
    """``enrol_totp`` gives a staff user a device whose otpauth URL yields valid codes."""
    from django.contrib.auth import get_user_model

    username = f"new-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_user(username, password="pw-pw-pw-pw", is_staff=True)
    out = StringIO()
    call_command("enrol_totp", username, stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["otpauth_url"].startswith("otpauth://totp/")
    code = pyotp.parse_uri(result["otpauth_url"]).now()
    client = Client()
    assert sign_in(client, username, "pw-pw-pw-pw", code).status_code == 302
    assert entries("admin.totp_enrolled", username)[0].actor == "cli"
