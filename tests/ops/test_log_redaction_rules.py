"""What ``forum.logs`` redacts, and that Django's own request logging goes through it."""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import quote

import pytest
from django.test import Client

from forum.logs import JsonFormatter, RedactFilter, redact_path, redact_text
from tests.factories import make_party


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/api/v1/signals/pdq/" + "ab" * 32, "/api/v1/signals/pdq/<redacted>"),
        ("/api/v1/opinions/md5/" + "cd" * 16, "/api/v1/opinions/md5/<redacted>"),
        # A URL value keeps its slashes, spaces and question mark once decoded.
        ("/api/v1/signals/url/https://x.example/a b?c=d", "/api/v1/signals/url/<redacted>"),
        # A value where the type belongs is not mistaken for a type.
        ("/api/v1/signals/" + "ef" * 16, "/api/v1/signals/<redacted>"),
        ("/api/v1/signals/https://x.example/a", "/api/v1/signals/<redacted>"),
        (
            "/api/v1/changes?cursor=c2VjcmV0&limit=5",
            "/api/v1/changes?cursor=<redacted>&limit=<redacted>",
        ),
        ("/api/v1/changes?c2VjcmV0", "/api/v1/changes?<redacted>"),
        ("/admin/exchange/signal/?q=https://x.example/a", "/admin/exchange/signal/?q=<redacted>"),
        ("/api/v1/labels", "/api/v1/labels"),
        ("/api/v1/webhooks/12/deliveries", "/api/v1/webhooks/12/deliveries"),
    ],
)
def test_paths_keep_their_route_not_their_values(path: str, logged: str) -> None:
    """The route and the signal type stay readable; values and query values do not,
    and redacting again changes nothing."""
    assert redact_path(path) == logged
    assert redact_path(logged) == logged


def test_request_lines_in_free_text_are_redacted() -> None:
    """A request line quoted in a message loses the value and the query values only."""
    value = secrets.token_hex(32)
    line = f'"GET /api/v1/signals/pdq/{value}?x=1 HTTP/1.1" 404 171 then /api/v1/changes?cursor=abc'
    assert redact_text(line) == (
        '"GET /api/v1/signals/pdq/<redacted> HTTP/1.1" 404 171 then '
        "/api/v1/changes?cursor=<redacted>"
    )


def test_filter_redacts_message_arguments_extras_and_exception() -> None:
    """Arguments (even an exception), string extras and the traceback text are
    redacted; numbers keep their type so ``%d`` still formats."""
    value = secrets.token_hex(32)
    path = f"/api/v1/signals/pdq/{value}"
    try:
        raise ValueError(f"no signal at {path}")
    except ValueError as exc:
        error = exc
        record = logging.LogRecord(
            "exchange", logging.ERROR, __file__, 1, "%s failed %d times: %s", (path, 3, exc), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.where = path
    assert RedactFilter().filter(record)
    line = JsonFormatter().format(record)
    assert value not in line
    entry = json.loads(line)
    assert entry["message"] == (
        "/api/v1/signals/pdq/<redacted> failed 3 times: no signal at /api/v1/signals/pdq/<redacted>"
    )
    assert entry["where"] == "/api/v1/signals/pdq/<redacted>"
    assert "ValueError: no signal at /api/v1/signals/pdq/<redacted>" in entry["exception"]
    assert str(error).endswith(value)  # the exception itself is untouched


@pytest.mark.django_db
def test_django_request_warnings_carry_no_value(caplog: pytest.LogCaptureFixture) -> None:
    """Django's 4xx warnings (``Not Found: <path>``, with the request attached) reach
    every handler redacted, and the JSON line leaves the request object out."""
    party = make_party()
    value = secrets.token_hex(32)
    url_value = f"https://leak.example/{secrets.token_hex(8)}"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert party.client.get(f"/api/v1/signals/pdq/{value}").status_code == 404
        encoded = quote(url_value, safe="")
        assert party.client.get(f"/api/v1/signals/url/{encoded}").status_code == 404
        assert Client().get(f"/api/v1/opinions/pdq/{value}").status_code == 401
    messages = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert "Not Found: /api/v1/signals/pdq/<redacted>" in messages
    assert "Unauthorized: /api/v1/opinions/pdq/<redacted>" in messages
    for record in caplog.records:
        line = JsonFormatter().format(record)
        for secret in (value, url_value, quote(url_value, safe="")):
            assert secret not in line, line
