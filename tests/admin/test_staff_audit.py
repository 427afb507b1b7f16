"""Changes to staff accounts, groups, second factors and webhooks made in the admin are
audited like every other action: who did it, and the state before and after."""

import secrets
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from members.audit import audit_verify
from members.models import AuditEntry
from tests.factories import make_party, make_staff

pytestmark = pytest.mark.django_db

ACTOR = "admin:root"
PASSWORD = "Tr1cky-admin-passphrase"


def entries(action: str, object_id: str) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(actor=ACTOR, action=action, object_id=object_id).order_by("id")
    )


def user_form(user: Any, **changes: Any) -> dict[str, Any]:
    """The admin's change form for ``user`` as a browser would post it, with changes."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_user_created_and_superuser_granted(root_client: Any) -> None:
    """Adding a user and then granting it superuser status, a group and a permission
    each write an entry with the state before and after; no password hash is logged."""
    response = root_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newstaff",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    [created] = entries("admin.user_created", "newstaff")
    assert created.after["is_superuser"] is False

    user = get_user_model().objects.get(username="newstaff")
    group = Group.objects.create(name="reviewers")
    permission = Permission.objects.get(codename="change_member")
    response = root_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        user_form(
            user,
            is_staff="on",
            is_superuser="on",
            groups=[group.pk],
            user_permissions=[permission.pk],
        ),
    )
    assert response.status_code == 302, response.content
    [changed] = entries("admin.user_changed", "newstaff")
    assert changed.before["is_superuser"] is False and changed.after["is_superuser"] is True
    assert changed.after["groups"] == ["reviewers"]
    assert changed.after["permissions"] == ["members.change_member"]
    assert set(changed.after["changed"]) == {"is_staff", "is_superuser", "groups", "permissions"}
    assert user.password not in str(created.after) + str(changed.after)


def test_password_set_by_an_admin(root_client: Any) -> None:
    """A password set for someone else is audited as such, without the password or hash."""
    user = get_user_model().objects.create_user("colleague", password="old-" + PASSWORD)
    response = root_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    [changed] = entries("admin.user_changed", "colleague")
    assert changed.after["password_changed"] is True
    user.refresh_from_db()
    assert PASSWORD not in str(changed.after) and user.password not in str(changed.after)


def test_user_deleted(root_client: Any) -> None:
    """Deleting a user in the admin leaves an entry with its last state."""
    user = get_user_model().objects.create_user("leaver", is_staff=True)
    response = root_client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content
    [deleted] = entries("admin.user_deleted", "leaver")
    assert deleted.before["is_staff"] is True and deleted.after is None


def test_group_permissions_changed(root_client: Any) -> None:
    """Creating a group and changing its permissions are audited with the permissions."""
    view = Permission.objects.get(codename="view_member")
    change = Permission.objects.get(codename="change_member")
    response = root_client.post(
        "/admin/auth/group/add/", {"name": "desk", "permissions": [view.pk]}
    )
    assert response.status_code == 302, response.content
    assert entries("admin.group_created", "desk")[0].after["permissions"] == ["members.view_member"]
    group = Group.objects.get(name="desk")
    response = root_client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": "desk", "permissions": [view.pk, change.pk]},
    )
    assert response.status_code == 302, response.content
    [changed] = entries("admin.group_changed", "desk")
    assert changed.before["permissions"] == ["members.view_member"]
    assert changed.after["permissions"] == ["members.change_member", "members.view_member"]


def test_second_factor_added_for_someone_else_and_deleted(root_client: Any) -> None:
    """A TOTP device added in the admin for another user, and its bulk deletion, are
    audited with the user it belongs to."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    other, _ = make_staff("other")
    response = root_client.post(
        "/admin/otp_totp/totpdevice/add/",
        {
            "user": other.pk,
            "name": "spare",
            "confirmed": "on",
            "key": secrets.token_hex(20),
            "step": 30,
            "t0": 0,
            "digits": 6,
            "tolerance": 1,
            "drift": 0,
            "throttling_failure_count": 0,
        },
    )
    assert response.status_code == 302, response.content
    device = TOTPDevice.objects.get(user=other, name="spare")
    [added] = entries("admin.totp_device_created", device.persistent_id)
    assert added.after == {"user": "other", "name": "spare", "confirmed": True}
    response = root_client.post(
        "/admin/otp_totp/totpdevice/",
        {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"},
    )
    assert response.status_code == 302, response.content
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert entries("admin.totp_device_deleted", device.persistent_id)[0].before["user"] == "other"
    assert audit_verify().ok


def test_webhook_deleted_in_the_admin(root_client: Any, settings: Any) -> None:
    """Deleting a webhook endpoint in the admin goes through the audited service."""
    from exchange.webhooks.endpoints import webhook_create

    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    party = make_party()
    endpoint, _ = webhook_create(member=party.member, url="http://127.0.0.1:9/hook", actor="setup")
    response = root_client.post(
        f"/admin/exchange/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302, response.content
    assert entries("webhook.deleted", f"{party.slug}/{endpoint.pk}")
