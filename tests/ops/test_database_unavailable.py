"""A database that does not answer gives a 503 problem with Retry-After, never a 500.

The outage is simulated in process by the error Django raises when PostgreSQL refuses or
drops the connection; ``test_database_outage.py`` restarts a real cluster under gunicorn.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from tests.factories import make_party

pytestmark = pytest.mark.django_db

REFUSED = OperationalError('connection failed: connection to server at "127.0.0.1" refused')


def assert_unavailable(response: object) -> None:
    assert response.status_code == 503, response.content  # type: ignore[attr-defined]
    assert response["Content-Type"] == "application/problem+json"  # type: ignore[index]
    assert int(response["Retry-After"]) >= 1  # type: ignore[index]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "database_unavailable"
    assert body["status"] == 503
    assert body["type"].endswith("/database_unavailable")
    assert "Traceback" not in body["detail"]


@pytest.mark.parametrize("error", [REFUSED, InterfaceError("connection already closed")])
def test_authentication_without_a_database_is_a_503(error: Exception) -> None:
    """The API key lookup (before any view code) failing on the database gives 503."""
    party = make_party("acme")
    client = Client(raise_request_exception=False)
    with mock.patch("members.authentication.api_key_lookup", side_effect=error):
        response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {party.api_key}")
    assert_unavailable(response)


def test_a_drf_view_losing_the_database_is_a_503() -> None:
    """A submission whose transaction fails on the database answers 503, not 500."""
    party = make_party("acme")
    token = party.statement("md5", "d41d8cd98f00b204e9800998ecf8427e")
    client = Client(raise_request_exception=False)
    with mock.patch("exchange.services.statements._apply", side_effect=REFUSED):
        response = client.post(
            "/api/v1/statements",
            {"statements": [token]},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {party.api_key}",
        )
    assert_unavailable(response)


def test_a_plain_django_view_losing_the_database_is_a_503() -> None:
    """Outside DRF (the admin reading its session) the database error gives the same 503."""
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32
    with mock.patch("django.contrib.sessions.backends.db.SessionStore.load", side_effect=REFUSED):
        response = client.get("/admin/login/")
    assert_unavailable(response)


def test_other_server_errors_stay_500() -> None:
    """Only database unavailability becomes a 503; a bug is still a 500 problem."""
    party = make_party("acme")
    client = Client(raise_request_exception=False)
    with mock.patch("members.authentication.api_key_lookup", side_effect=RuntimeError("bug")):
        response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {party.api_key}")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
