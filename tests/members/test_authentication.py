"""The authentication and authorisation matrix of the API, and its problem responses.

Missing, unknown, expired or revoked key → 401; a member that is not active → 403; a
key without the endpoint's scope → 403. Every error is an RFC 9457 problem with a code.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from members.models import ApiKey, Member
from members.services import api_key_issue, api_key_revoke, member_set_status
from tests.factories import MemberFactory, make_party, pdq
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

VALUE = "f" * 64

# scope → a request that needs exactly that scope
SCOPED_REQUESTS: dict[str, Callable[[APIClient], Any]] = {
    "read": lambda c: c.get("/api/v1/changes"),
    "submit": lambda c: c.post("/api/v1/statements", {"statements": ["x"]}, format="json"),
    "feedback": lambda c: c.put(
        f"/api/v1/opinions/pdq/{VALUE}", {"category": "positive"}, format="json"
    ),
    "manage": lambda c: c.get("/api/v1/webhooks"),
}


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_missing_header_is_401() -> None:
    """No Authorization header: 401 not_authenticated with a WWW-Authenticate challenge."""
    response = client_with(None).get("/api/v1/me")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer cdl_000000000000_nope", "Bearer not-even-a-cordiale-key", "Token cdl_1_2"],
)
def test_unknown_key_is_401(header: str) -> None:
    """A key the server never issued: 401 unknown_key."""
    assert_problem(client_with(header).get("/api/v1/me"), 401, "unknown_key")


def test_malformed_header_is_401() -> None:
    """``Bearer`` with two words after it is not a key: 401 invalid_header."""
    assert_problem(client_with("Bearer a b").get("/api/v1/me"), 401, "invalid_header")


def test_expired_key_is_401() -> None:
    """A key past its expiry: 401 expired_key."""
    party = make_party()
    ApiKey.objects.filter(member=party.member).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_problem(party.client.get("/api/v1/me"), 401, "expired_key")


def test_revoked_key_is_401() -> None:
    """A revoked key: 401 revoked_key, at once."""
    party = make_party()
    assert party.client.get("/api/v1/me").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(member=party.member), actor="test")
    assert_problem(party.client.get("/api/v1/me"), 401, "revoked_key")


def test_applicant_is_403() -> None:
    """An applicant's key (issued before approval) does not work yet: 403."""
    member = MemberFactory(status=Member.Status.APPLICANT)
    _, secret = api_key_issue(member=member, actor="test")
    response = client_with(f"Bearer {secret}").get("/api/v1/me")
    assert_problem(response, 403, "member_not_active")


@pytest.mark.parametrize("status", [Member.Status.SUSPENDED, Member.Status.EXPELLED])
def test_suspended_and_expelled_are_403(status: str) -> None:
    """Suspension and expulsion stop every key of the member at once: 403."""
    party = make_party()
    assert party.client.get("/api/v1/me").status_code == 200
    member_set_status(member=party.member, status=status, actor="test")
    for request in [lambda c: c.get("/api/v1/me"), *SCOPED_REQUESTS.values()]:
        assert_problem(request(party.client), 403, "member_not_active")


@pytest.mark.parametrize("scope", sorted(SCOPED_REQUESTS))
def test_each_scope_is_enforced(scope: str) -> None:
    """A key with every scope but one gets 403 missing_scope on that scope's endpoint,
    and a key with that scope gets past authorisation."""
    others = [s for s in ("read", "submit", "feedback", "manage") if s != scope]
    without = make_party(scopes=others)
    assert_problem(SCOPED_REQUESTS[scope](without.client), 403, "missing_scope")
    with_scope = make_party(scopes=[scope])
    assert SCOPED_REQUESTS[scope](with_scope.client).status_code not in (401, 403)


@pytest.mark.parametrize(
    "request_",
    [
        lambda c: c.get("/api/v1/webhooks"),
        lambda c: c.post("/api/v1/webhooks", {"url": "https://203.0.113.9/"}, format="json"),
    ],
    ids=["GET", "POST"],
)
def test_webhooks_need_the_manage_scope(request_: Callable[[APIClient], Any]) -> None:
    """``/api/v1/webhooks`` answers a key with every scope but ``manage`` with a 403
    missing_scope problem, and creates nothing. (Creating one needs ``read`` as well:
    tests/exchange/test_webhook_scopes.py.)"""
    from exchange.models import WebhookEndpoint

    without = make_party(scopes=["read", "submit", "feedback"])
    body = assert_problem(request_(without.client), 403, "missing_scope")
    assert "manage" in body["detail"]
    assert not WebhookEndpoint.objects.exists()
    with_manage = make_party(scopes=["manage", "read"])
    assert request_(with_manage.client).status_code not in (401, 403)


def test_token_keyword_is_accepted() -> None:
    """``Authorization: Token <key>`` works like Bearer (TAXII clients send it)."""
    party = make_party()
    response = client_with(f"Token {party.api_key}").get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["member"]["slug"] == party.slug


def test_keyword_is_case_insensitive() -> None:
    """The ``Bearer`` keyword of the Authorization header is accepted in any case."""
    party = make_party()
    assert client_with(f"bearer {party.api_key}").get("/api/v1/me").status_code == 200


def test_method_not_allowed_is_a_problem() -> None:
    """A wrong method: 405 method_not_allowed problem."""
    party = make_party()
    assert_problem(party.client.delete("/api/v1/me"), 405, "method_not_allowed")


def test_unknown_path_is_a_problem() -> None:
    """A path with no route: 404 not_found problem, from Django's handler too."""
    party = make_party()
    assert_problem(party.client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_problem(party.client.get("/api/v1/members/nobody/jwks"), 404, "not_found")


def test_throttled_is_a_429_problem_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the scope's rate: 429 throttled with Retry-After.

    DRF copies the rates into the throttle class at import, so the rate is patched there
    rather than with override_settings.
    """
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"read": "2/min", "submit": "2/min", "feedback": "2/min", "manage": "2/min"},
    )
    party = make_party()
    assert party.client.get("/api/v1/me").status_code == 200
    assert party.client.get("/api/v1/me").status_code == 200
    response = party.client.get("/api/v1/me")
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1


def test_malformed_json_is_a_400_problem() -> None:
    """A body that is not JSON: 400 problem, on the hot path and through DRF's parser."""
    party = make_party()
    response = party.client.post(
        "/api/v1/statements", data=b"{not json", content_type="application/json"
    )
    assert_problem(response, 400, "malformed_json")
    response = party.client.put(
        f"/api/v1/opinions/pdq/{pdq()}", data=b"{not json", content_type="application/json"
    )
    assert_problem(response, 400, "malformed_request")


def test_validation_error_lists_fields() -> None:
    """A well-formed body with a bad field: 400 with ``errors[{field, code, detail}]``."""
    party = make_party()
    response = party.client.put(f"/api/v1/opinions/pdq/{pdq()}", {"category": "meh"}, format="json")
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "category"
    assert {"field", "code", "detail"} <= body["errors"][0].keys()
