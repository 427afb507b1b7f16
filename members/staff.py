"""Services for the forum's staff accounts: enrolling a TOTP device for the admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from forum.errors import DomainError

from .audit import audit_record


def totp_device_enrol(*, username: str, name: str = "authenticator", actor: str) -> TOTPDevice:
    """Give a staff user a new confirmed TOTP device; its ``config_url`` goes to their app.

    Enrolment is done by someone who already controls the server (the command line), so
    the device is confirmed at once; earlier devices stay valid until removed.
    """
    user: Any = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_staff:
        raise DomainError(f"No staff user {username!r}.", code="unknown_user")
    with transaction.atomic():
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        audit_record(
            actor=actor,
            action="admin.totp_enrolled",
            object_type="user",
            object_id=username,
            after={"device": device.persistent_id, "name": name},
        )
    return device
