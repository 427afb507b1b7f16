"""Every admin action of Cordiale's own models acts through a service: each leaves an
audit entry under the admin's name. A new action without a case here fails the test."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.test import RequestFactory

from members.models import ApiKey, AuditEntry, Member, SigningKey
from tests.factories import MemberFactory, key_of, make_party, make_staff, verified_admin_client

pytestmark = pytest.mark.django_db

ACTOR = "admin:root"


def _member(status: str) -> Callable[[], int]:
    return lambda: MemberFactory(status=status).pk


def _suspended() -> int:
    from members.services import member_set_status

    member = MemberFactory()
    member_set_status(member=member, status="suspended", actor="setup")
    return member.pk


def _api_key() -> int:
    return ApiKey.objects.get(member=make_party().member).pk


def _signing_key() -> int:
    return key_of(make_party()).pk


def _pending_signing_key() -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.client import jws
    from members.services import signing_key_request

    x = jws.public_key_x(Ed25519PrivateKey.generate().public_key())
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}
    return signing_key_request(member=make_party().member, jwk=jwk, actor="setup").pk


def _disabled_webhook() -> int:
    from exchange.webhooks.endpoints import webhook_create, webhook_disable

    endpoint, _ = webhook_create(
        member=make_party().member, url="http://127.0.0.1:9/cordiale", actor="setup"
    )
    webhook_disable(endpoint_id=endpoint.pk, reason="test", actor="setup")
    return endpoint.pk


def _incident() -> int:
    from exchange.services.incidents import incident_declare

    return incident_declare(name="Test incident", description="", actor="setup").pk


# (app, model, action) -> (make the object, extra POST data, expected audit action)
CASES: dict[tuple[str, str, str], tuple[Callable[[], int], dict[str, str], str]] = {
    ("members", "member", "approve"): (_member("applicant"), {}, "member.status_changed"),
    ("members", "member", "suspend"): (
        _member("active"),
        {"confirm": "yes"},
        "member.status_changed",
    ),
    ("members", "member", "reinstate"): (_suspended, {}, "member.status_changed"),
    ("members", "member", "expel"): (
        _member("active"),
        {"confirm": "yes"},
        "member.status_changed",
    ),
    ("members", "apikey", "revoke"): (_api_key, {}, "api_key.revoked"),
    ("members", "signingkey", "retire"): (_signing_key, {}, "signing_key.retired"),
    ("members", "signingkey", "approve"): (
        _pending_signing_key,
        {"confirm": "yes"},
        "signing_key.approved",
    ),
    ("members", "signingkey", "revoke"): (_signing_key, {"confirm": "yes"}, "signing_key.revoked"),
    ("exchange", "webhookendpoint", "enable"): (_disabled_webhook, {}, "webhook.enabled"),
    ("exchange", "incident", "end_incidents"): (_incident, {"confirm": "yes"}, "incident.ended"),
}


def registered_actions() -> set[tuple[str, str, str]]:
    user, _ = make_staff("lister")
    request = RequestFactory().get("/admin/")
    request.user = user
    found = set()
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        if meta.app_label not in ("members", "exchange"):
            continue
        for name in model_admin.get_actions(request):
            if name != "delete_selected":
                found.add((meta.app_label, meta.model_name, name))
    return found


def test_every_action_has_a_case() -> None:
    """Every admin action registered on the console has a case below, so none goes untested."""
    assert registered_actions() == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[1]}.{c[2]}")
def test_action_is_audited(case: tuple[str, str, str], settings: Any) -> None:
    """Each admin action, run by a verified superuser, writes its audit entry under the admin's
    name."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True  # the endpoint is never called
    app, model, name = case
    make_object, extra, expected = CASES[case]
    pk = make_object()
    client = verified_admin_client(*make_staff("root"))
    before = AuditEntry.objects.count()
    response = client.post(
        f"/admin/{app}/{model}/", {"action": name, "_selected_action": [pk], **extra}
    )
    assert response.status_code == 302, response.content
    entries = AuditEntry.objects.filter(actor=ACTOR, action=expected)
    assert AuditEntry.objects.count() > before and entries.exists()
    assert response.wsgi_request.user.is_verified()


def test_no_bulk_deletes_of_audited_models() -> None:
    """Deleting members, keys, groups, labels or audit entries is not offered at all."""
    user, _ = make_staff("lister")
    request = RequestFactory().get("/admin/")
    request.user = user
    for model in (Member, ApiKey, SigningKey, AuditEntry):
        assert "delete_selected" not in admin.site._registry[model].get_actions(request)
