"""Probes and the API's self-description."""

from unittest import mock

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz() -> None:
    """Liveness answers 200 without authentication."""
    assert Client().get("/healthz").status_code == 200


def test_readyz_ok() -> None:
    """Readiness is 200 while the database (and Redis, if configured) answers."""
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["database"] == "up"


def test_readyz_503_when_the_database_check_fails() -> None:
    """Readiness is 503, naming the failing dependency, when the database check fails."""
    with mock.patch("forum.health._database_ok", return_value="database: OperationalError"):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["database: OperationalError"]


def test_schema_is_openapi_3() -> None:
    """/api/v1/schema/ serves an OpenAPI 3 document describing the API, unauthenticated."""
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me" in schema["paths"] and "/api/v1/statements" in schema["paths"]


def test_docs_page() -> None:
    """The API documentation page is served (Swagger UI)."""
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
