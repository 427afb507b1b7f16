"""Admin sign-ins in the audit log.

Django announces every sign-in and every failed attempt (``user_logged_in``,
``user_login_failed``); django-axes announces lockouts. Each becomes an audit entry, so
the chain also shows who got into the console, who tried and failed, and from where.
Failed attempts are recorded under the username that was tried, never with the password.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from forum.actors import ANONYMOUS_ACTOR, actor_for_user
from forum.client_address import client_address

from .audit import audit_record


def _client(request: HttpRequest | None) -> dict[str, str]:
    if request is None:
        return {}
    return {
        "ip": client_address(request) or "",
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200],
    }


@receiver(user_logged_in, dispatch_uid="cordiale-audit-login")
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    device = getattr(user, "otp_device", None)
    audit_record(
        actor=actor_for_user(user),
        action="admin.login",
        object_type="user",
        object_id=user.get_username(),
        after={**_client(request), "otp_device": getattr(device, "persistent_id", None)},
    )


@receiver(user_logged_out, dispatch_uid="cordiale-audit-logout")
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(
        actor=actor_for_user(user),
        action="admin.logout",
        object_type="user",
        object_id=user.get_username(),
        after=_client(request),
    )


@receiver(user_login_failed, dispatch_uid="cordiale-audit-login-failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        actor=ANONYMOUS_ACTOR,
        action="admin.login_failed",
        object_type="user",
        object_id=username,
        after={**_client(request), "reason": kwargs.get("reason", "credentials")},
    )


def audit_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str, **kwargs: Any
) -> None:
    audit_record(
        actor=ANONYMOUS_ACTOR,
        action="admin.locked_out",
        object_type="user",
        object_id=(username or "")[:150],
        after=_client(request) or {"ip": ip_address},
    )


def connect_axes() -> None:
    """django-axes is optional for the audit itself: connect only if it is installed."""
    if apps.is_installed("axes"):
        from axes.signals import user_locked_out  # noqa: PLC0415  (only when installed)

        user_locked_out.connect(audit_locked_out, dispatch_uid="cordiale-audit-locked-out")
