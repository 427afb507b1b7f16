"""``/api/v1/webhooks``: endpoint management, secrets, problems, deliveries, ping.

Tasks run in process here (Celery eager); delivery itself is tested with a real worker in
``test_webhook_delivery.py``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from exchange.models import WebhookDelivery, WebhookEndpoint
from exchange.webhooks.delivery import webhook_deliver
from exchange.webhooks.secrets import secret_decrypt
from members.models import AuditEntry
from members.services import member_set_status
from tests.factories import make_party, pdq
from tests.support.receivers import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(settings: Any, tasks_in_process: None) -> None:
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True


def create(party: Any, url: str, **extra: Any) -> Any:
    return party.client.post("/api/v1/webhooks", {"url": url, **extra}, format="json")


def test_create_returns_the_secret_once_and_stores_it_encrypted(receiver: Receiver) -> None:
    """Creating an endpoint answers its secret once; the secret is stored encrypted, is never listed
    or shown again, and the creation is audited."""
    globex = make_party()
    response = create(globex, receiver.url(), signal_types=["pdq"], labels=["recruitment"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["status"] == "healthy" and body["signal_types"] == ["pdq"]
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in endpoint.secret_encrypted
    assert secret_decrypt(endpoint.secret_encrypted) == body["secret"]
    listed = globex.get("/api/v1/webhooks").json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in globex.get(f"/api/v1/webhooks/{body['id']}").json()
    assert AuditEntry.objects.filter(action="webhook.created").count() == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"url": "ftp://x.example/"}, "invalid_url"),
        ({"url": "https://unresolvable.invalid/"}, "unresolvable_host"),
        ({"url": "https://203.0.113.9/", "signal_types": ["nope"]}, "invalid_filter"),
        ({"url": "https://203.0.113.9/", "labels": ["no-such-label"]}, "invalid_filter"),
        ({"url": "https://203.0.113.9/", "start": "yesterday"}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
def test_bad_input_is_a_problem_and_creates_nothing(payload: dict[str, Any], code: str) -> None:
    """Each invalid payload is answered 400 with a problem document naming the error code, and
    creates no endpoint."""
    globex = make_party()
    response = globex.client.post("/api/v1/webhooks", payload, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_are_a_problem_unless_allowed(settings: Any) -> None:
    """A URL on a private address is refused with ``private_address`` unless private addresses are
    allowed."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False
    response = create(make_party(), "https://127.0.0.1/hook")
    assert response.status_code == 400
    assert response.json()["code"] == "private_address"


def test_the_manage_scope_is_required() -> None:
    """A key with only the read scope can neither create nor list endpoints (403)."""
    reader = make_party(scopes=["read"])
    assert create(reader, "https://203.0.113.9/").status_code == 403
    assert reader.get("/api/v1/webhooks").status_code == 403


def test_members_see_only_their_own_endpoints(receiver: Receiver) -> None:
    """Another member's endpoint is not found (404) for reading, changing, deleting or pinging, and
    is not listed."""
    globex, initech = make_party(), make_party()
    endpoint_id = create(globex, receiver.url()).json()["id"]
    for method in ("get", "patch", "delete"):
        response = getattr(initech.client, method)(f"/api/v1/webhooks/{endpoint_id}")
        assert response.status_code == 404
    assert initech.client.post(f"/api/v1/webhooks/{endpoint_id}/ping").status_code == 404
    assert initech.get("/api/v1/webhooks").json() == []


def test_patch_rotate_and_delete(receiver: Receiver) -> None:
    """An endpoint can be changed (an invalid URL is refused), given a new secret and deleted; each
    step is audited."""
    globex = make_party()
    created = create(globex, receiver.url()).json()
    path = f"/api/v1/webhooks/{created['id']}"
    patched = globex.client.patch(path, {"active": False, "labels": ["recruitment"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["active"] is False and patched.json()["labels"] == ["recruitment"]
    bad = globex.client.patch(path, {"url": "https://localhost.invalid./"}, format="json")
    assert bad.status_code == 400

    rotated = globex.client.post(f"{path}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert globex.client.delete(path).status_code == 204
    assert globex.get(path).status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"webhook.updated", "webhook.secret_rotated", "webhook.deleted"} <= actions


def test_the_rotation_audit_entry_records_the_whole_grace_period(
    receiver: Receiver, settings: Any
) -> None:
    """The audit entry of a rotation records the grace period in seconds, a day as 86400
    (not the seconds left over past whole days, which for a day is 0)."""
    settings.CORDIALE_WEBHOOK_SECRET_GRACE = 24 * 3600
    globex = make_party()
    created = create(globex, receiver.url()).json()
    globex.client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret")
    entry = AuditEntry.objects.get(action="webhook.secret_rotated")
    assert entry.after == {"grace_seconds": 86400}


def test_ping_is_signed_and_logged(receiver: Receiver) -> None:
    """A ping is delivered signed with the endpoint's secret and appears in its delivery log as a
    successful ping."""
    globex = make_party()
    created = create(globex, receiver.url()).json()
    response = globex.client.post(f"/api/v1/webhooks/{created['id']}/ping")
    assert response.status_code == 202
    (request,) = receiver.requests
    assert Webhook(created["secret"]).verify(request.body, request.headers)["type"] == "ping"
    (logged,) = globex.get(f"/api/v1/webhooks/{created['id']}/deliveries").json()
    assert logged["kind"] == "ping" and logged["ok"] and logged["status_code"] == 204


def test_after_rotation_both_secrets_verify_for_the_grace_period(receiver: Receiver) -> None:
    """Right after a rotation, a delivery verifies with the old secret and with the new one."""
    globex = make_party()
    created = create(globex, receiver.url()).json()
    rotated = globex.client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret").json()
    globex.client.post(f"/api/v1/webhooks/{created['id']}/ping")
    (request,) = receiver.requests
    for secret in (created["secret"], rotated["secret"]):
        Webhook(secret).verify(request.body, request.headers)


def test_filters_and_start_from_the_beginning(receiver: Receiver) -> None:
    """``start: beginning`` delivers what the member may already see; filters apply, and a
    tombstone passes a label filter on its type alone."""
    acme, globex = make_party(), make_party()
    kept, other_label, other_type = pdq(), pdq(), "d41d8cd98f00b204e9800998ecf8427e"
    now = int(time.time())
    acme.submit(
        acme.statement("pdq", kept, labels=["recruitment"], iat=now - 10),
        acme.statement("pdq", other_label, labels=["incitement"], iat=now - 10),
        acme.statement("md5", other_type, labels=["recruitment"], iat=now - 10),
    )
    created = create(
        globex, receiver.url(), start="beginning", signal_types=["pdq"], labels=["recruitment"]
    ).json()
    webhook_deliver(endpoint_id=created["id"])  # on_commit does not run in this test
    acme.submit(acme.statement("pdq", other_label, op="retract", iat=now))
    webhook_deliver(endpoint_id=created["id"])
    got = [
        (c["value"], c["deleted"])
        for r in receiver.requests
        for c in Webhook(created["secret"]).verify(r.body, r.headers)["changes"]
    ]
    assert got == [(kept, False), (other_label, True)]


def test_failures_back_off_then_disable_and_email_admins(receiver: Receiver, settings: Any) -> None:
    """A failing endpoint backs off, is disabled (admins emailed, reason shown) after a day of
    failures and then paused; enabled again, it catches up."""
    settings.ADMINS = [("Forum admins", "admins@forum.invalid")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    acme, globex = make_party(), make_party()
    created = create(globex, receiver.url()).json()
    receiver.fail_until = float("inf")
    acme.submit(acme.statement("pdq", pdq()))

    assert webhook_deliver(endpoint_id=created["id"]) == "failed"
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.status == "failing" and endpoint.attempts == 1
    assert endpoint.next_attempt_at is not None and endpoint.next_attempt_at > timezone.now()
    assert webhook_deliver(endpoint_id=created["id"]) == "backing_off"

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=25), next_attempt_at=None
    )
    assert webhook_deliver(endpoint_id=created["id"]) == "failed"
    shown = globex.get(f"/api/v1/webhooks/{created['id']}").json()
    assert shown["status"] == "disabled" and "HTTP 500" in shown["disabled_reason"]
    assert len(mail.outbox) == 1 and "disabled" in mail.outbox[0].subject
    assert webhook_deliver(endpoint_id=created["id"]) == "paused"

    receiver.fail_until = 0.0
    enabled = globex.client.post(f"/api/v1/webhooks/{created['id']}/enable").json()
    assert enabled["status"] == "healthy" and enabled["disabled_reason"] is None
    assert webhook_deliver(endpoint_id=created["id"]) == "caught_up"
    assert WebhookDelivery.objects.filter(endpoint_id=created["id"], ok=True).count() == 1


def test_suspended_members_deliveries_pause(receiver: Receiver) -> None:
    """A suspended member's endpoint receives nothing; once reinstated, it catches up."""
    acme, globex = make_party(), make_party()
    created = create(globex, receiver.url()).json()
    member_set_status(member=globex.member, status="suspended", actor="test")
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=created["id"]) == "paused"
    assert receiver.requests == []
    member_set_status(member=globex.member, status="active", actor="test")
    assert webhook_deliver(endpoint_id=created["id"]) == "caught_up"
    assert len(receiver.requests) == 1
