"""Services for the forum's staff accounts: second factors and the audit of account changes.

Staff accounts, their groups and their TOTP devices are edited with Django's own admin
forms (``members.admin.staff_accounts``); this module owns what of them the audit log keeps. Who
may do what in the console is decided by these accounts, so every change to them is an
audit entry ``admin.<kind>_<change>`` (``admin.user_changed``, ``admin.group_deleted``,
``admin.totp_device_created``...) with the security-relevant state before and after::

    {"is_active": true, "is_staff": true, "is_superuser": false,
     "groups": ["reviewers"], "permissions": ["members.change_member"]}

Passwords never reach the log: a new password shows as ``"password_changed": true``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from forum.errors import DomainError

from .audit import audit_record
from .models import AuditEntry

# Compared between before and after, but never written: only whether it changed.
_PASSWORD = "_password"  # noqa: S105  (a key name, not a password)


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


def _permission_names(permissions: QuerySet[Permission]) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in permissions.values_list("content_type__app_label", "codename")
    )


def staff_account_state(*, obj: Any) -> tuple[str, str, dict[str, Any]]:
    """``(kind, object id, state)`` of a user, group or TOTP device, read from the
    database: what decides who may do what in the console."""
    if isinstance(obj, Group):
        return (
            "group",
            obj.name,
            {"name": obj.name, "permissions": _permission_names(obj.permissions.all())},
        )
    if isinstance(obj, TOTPDevice):
        return (
            "totp_device",
            obj.persistent_id,
            {"user": obj.user.get_username(), "name": obj.name, "confirmed": obj.confirmed},
        )
    if isinstance(obj, get_user_model()):
        return (
            "user",
            obj.get_username(),
            {
                "is_active": obj.is_active,
                "is_staff": obj.is_staff,
                "is_superuser": obj.is_superuser,
                "groups": sorted(obj.groups.values_list("name", flat=True)),
                "permissions": _permission_names(obj.user_permissions.all()),
                _PASSWORD: obj.password,
            },
        )
    raise TypeError(f"Not a staff account object: {type(obj).__name__}")


def staff_account_record(
    *,
    actor: str,
    kind: str,
    object_id: str,
    change: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEntry | None:
    """Audit a created, changed or deleted staff account, group or device; a change that
    leaves the recorded state as it was (a renamed first name) writes nothing."""
    before, after = dict(before or {}) or None, dict(after or {}) or None
    old_password = before.pop(_PASSWORD, None) if before else None
    new_password = after.pop(_PASSWORD, None) if after else None
    if change == "changed":
        if before is None or after is None:
            raise ValueError("A change needs the state before and after.")
        if old_password != new_password:
            after["password_changed"] = True
        if before == after:
            return None
        after["changed"] = sorted(k for k in after if k != "changed" and before.get(k) != after[k])
    return audit_record(
        actor=actor,
        action=f"admin.{kind}_{change}",
        object_type=kind,
        object_id=object_id,
        before=before,
        after=after,
    )
