"""Every state-changing admin action needs the permission it exercises: a view-only
staff user can open every page of the console and change nothing, whatever it posts."""

from typing import Any

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from members.models import AuditEntry, Member
from tests.admin.conftest import make_viewer
from tests.admin.test_actions_audited import CASES
from tests.factories import MemberFactory, make_party

pytestmark = pytest.mark.django_db


def test_viewer_can_open_every_changelist(viewer_client: Any) -> None:
    """The console's index and each registered model's list and detail pages open (200)
    for a view-only staff user."""
    assert viewer_client.get("/admin/").status_code == 200
    member = MemberFactory()
    for model in admin.site._registry:
        meta = model._meta
        url = f"/admin/{meta.app_label}/{meta.model_name}/"
        assert viewer_client.get(url).status_code == 200, url
    assert viewer_client.get(f"/admin/members/member/{member.pk}/change/").status_code == 200


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[1]}.{c[2]}")
def test_viewer_cannot_apply_action(
    case: tuple[str, str, str], viewer_client: Any, settings: Any
) -> None:
    """A crafted POST of each action (confirmed where the action asks for it) by a
    view-only user changes nothing and writes no audit entry."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True  # the endpoint is never called
    app, model, name = case
    make_object, extra, _ = CASES[case]
    pk = make_object()
    model_class = next(
        m for m in admin.site._registry if (m._meta.app_label, m._meta.model_name) == (app, model)
    )
    before_row = model_class.objects.filter(pk=pk).values().get()
    entries_before = AuditEntry.objects.count()
    response = viewer_client.post(
        f"/admin/{app}/{model}/", {"action": name, "_selected_action": [pk], **extra}
    )
    assert response.status_code in (200, 302, 403)  # the plain list, "no action", or 403
    assert AuditEntry.objects.count() == entries_before
    assert model_class.objects.filter(pk=pk).values().get() == before_row


def test_action_checks_its_permission_where_it_is_applied() -> None:
    """Called directly, past Django's offer of actions, an action still refuses a user
    without its permission, before it changes anything."""
    member = MemberFactory()
    user, _ = make_viewer("direct")
    request = RequestFactory().post("/admin/members/member/", {"confirm": "yes"})
    request.user = user
    member_admin = admin.site._registry[Member]
    with pytest.raises(PermissionDenied):
        member_admin.expel(request, Member.objects.filter(pk=member.pk))
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE


def test_viewer_cannot_delete_webhooks(viewer_client: Any, settings: Any) -> None:
    """The webhook delete page answers 403 to a viewer and the endpoint stays."""
    from exchange.webhooks.endpoints import webhook_create
    from exchange.webhooks.models import WebhookEndpoint

    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _ = webhook_create(
        member=make_party().member, url="http://127.0.0.1:9/hook", actor="setup"
    )
    response = viewer_client.post(
        f"/admin/exchange/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_totp_secrets_are_not_shown_after_enrolment(viewer_client: Any, root_client: Any) -> None:
    """A device's secret (its otpauth configuration and QR code) is never shown in the
    console once the device exists, not even to a superuser: a viewer who could read a
    colleague's seed would hold their second factor."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user__username="root")
    for client in (viewer_client, root_client):
        for page in ("config", "qrcode"):
            url = f"/admin/otp_totp/totpdevice/{device.pk}/{page}/"
            assert client.get(url).status_code == 403, url
        change = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
        assert change.status_code == 200 and device.key.encode() not in change.content


def test_every_action_declares_a_permission() -> None:
    """No action of the console's own models is offered on view permission alone: each
    declares the permissions it exercises."""
    user, _ = make_viewer("lister")
    user.is_superuser = True
    request = RequestFactory().get("/admin/")
    request.user = user
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("members", "exchange"):
            continue
        for name, (func, _, _) in model_admin.get_actions(request).items():
            assert getattr(func, "allowed_permissions", None), f"{model.__name__}.{name}"
