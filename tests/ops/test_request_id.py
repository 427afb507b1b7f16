"""Request ids on responses and in log records, and the request size limit."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client, override_settings

from forum.logs import JsonFormatter, RequestIdFilter, request_id_var


def test_valid_client_id_is_echoed() -> None:
    """A client's well-formed X-Request-ID is the id of the request."""
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="3f6c0a1e-trace.42")
    assert response["X-Request-ID"] == "3f6c0a1e-trace.42"


@pytest.mark.parametrize("sent", ["", "has space", "x" * 200, "<script>", "a\\nb"])
def test_invalid_client_id_is_replaced(sent: str) -> None:
    """Anything else gets a fresh id, never the client's text."""
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=sent)
    assert response["X-Request-ID"] != sent
    assert len(response["X-Request-ID"]) == 32


def test_records_carry_the_request_id_as_json() -> None:
    """The filter stamps the current id on a record; the formatter writes one JSON line
    with the message, the id and any ``extra`` fields."""
    record = logging.LogRecord("exchange", logging.INFO, __file__, 1, "took %s", (3,), None)
    record.member = "acme"
    token = request_id_var.set("req-1")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "took 3"
    assert line["request_id"] == "req-1"
    assert line["member"] == "acme"
    assert line["level"] == "info"


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_body_is_refused_before_parsing() -> None:
    """A body announced larger than the limit gets a 413 problem, whatever the route."""
    response = Client().post("/api/v1/statements", data="x" * 1001, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert response["Content-Type"] == "application/problem+json"
