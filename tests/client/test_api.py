"""The HTTP client against a fake server: retries, Retry-After, problems, path encoding."""

from __future__ import annotations

import httpx
import pytest

from exchange.client.api import CordialeClient, CordialeError, parse_retry_after
from tests.client.fakes import forum_transport

PROBLEM = {
    "type": "about:blank",
    "title": "Bad request",
    "status": 400,
    "detail": "the body has no statements",
    "code": "invalid_body",
    "errors": [{"field": "statements", "code": "required", "detail": "required"}],
}


def client_for(handler, sleeps: list[float] | None = None, **kwargs) -> CordialeClient:  # type: ignore[no-untyped-def]
    record = sleeps if sleeps is not None else []
    return CordialeClient(
        "https://forum.example/",
        "secret-key",
        transport=forum_transport(handler),
        sleep=record.append,
        **kwargs,
    )


def test_sends_bearer_key_and_returns_json() -> None:
    """Requests go under /api/v1/ with the API key as a bearer token."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"member": {"slug": "acme"}})

    assert client_for(handler).me() == {"member": {"slug": "acme"}}
    assert seen[0].url == "https://forum.example/api/v1/me"
    assert seen[0].headers["Authorization"] == "Bearer secret-key"


def test_retries_503_and_connection_errors_with_backoff() -> None:
    """503 and a refused connection are retried; the third attempt succeeds."""
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            return httpx.Response(503, json={"code": "unavailable", "detail": "down"})
        if len(attempts) == 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"keys": []})

    sleeps: list[float] = []
    assert client_for(handler, sleeps).jwks() == {"keys": []}
    assert len(attempts) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 1.0 for s in sleeps)


def test_honours_retry_after_on_429() -> None:
    """A 429's Retry-After is the delay before the next attempt."""
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"code": "throttled"})
        return httpx.Response(200, json=[])

    sleeps: list[float] = []
    assert client_for(handler, sleeps).labels() == []
    assert sleeps == [7.0]


def test_gives_up_after_max_retries_with_the_problem() -> None:
    """When retries are exhausted the last problem is raised."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            429, headers={"Retry-After": "1"}, json={"code": "throttled", "detail": "slow down"}
        )

    with pytest.raises(CordialeError) as info:
        client_for(handler, max_retries=2).members()
    assert len(calls) == 3
    assert (info.value.status, info.value.code, info.value.detail) == (
        429,
        "throttled",
        "slow down",
    )


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_answers_are_retried_honouring_retry_after(status: int) -> None:
    """502, 503 (e.g. database_unavailable) and 504 are retried; a Retry-After sets the
    delay; a submission through them ends with the server's answer."""
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) < 3:
            return httpx.Response(
                status, headers={"Retry-After": "4"}, json={"code": "database_unavailable"}
            )
        return httpx.Response(200, json={"results": [], "accepted": 0})

    sleeps: list[float] = []
    assert client_for(handler, sleeps).submit(["t"])["accepted"] == 0
    assert len(attempts) == 3
    assert sleeps == [4.0, 4.0]


def test_a_500_is_a_bug_and_not_retried() -> None:
    """A 500 (a server bug, not an outage) is raised at once, even for a safe request."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"code": "internal_error", "detail": "oops"})

    with pytest.raises(CordialeError) as info:
        client_for(handler).me()
    assert len(calls) == 1
    assert info.value.status == 500


def test_backoff_grows_exponentially_and_attempts_are_bounded() -> None:
    """Without Retry-After, attempt n waits at most min(cap, base * 2**n); after
    max_retries retries the last error is raised."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"code": "database_unavailable", "detail": "down"})

    sleeps: list[float] = []
    client = client_for(handler, sleeps, max_retries=6, backoff_base=1.0, backoff_cap=8.0)
    with pytest.raises(CordialeError) as info:
        client.changes()
    assert info.value.code == "database_unavailable"
    assert len(calls) == 7
    assert len(sleeps) == 6
    assert all(0 <= s <= min(8.0, 2**n) for n, s in enumerate(sleeps))


def test_problem_details_become_cordiale_error_without_retry() -> None:
    """A 4xx problem is raised at once with status, code, detail and field errors."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            400, json=PROBLEM, headers={"Content-Type": "application/problem+json"}
        )

    with pytest.raises(CordialeError) as info:
        client_for(handler).submit([])
    error = info.value
    assert len(calls) == 1
    assert error.status == 400 and error.code == "invalid_body"
    assert error.detail == "the body has no statements"
    assert error.errors == PROBLEM["errors"]


def test_non_json_error_still_has_a_code() -> None:
    """An error answer that is not JSON still raises a CordialeError with its status and
    ``server_error``."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(CordialeError) as info:
        client_for(handler, max_retries=0).me()
    assert info.value.status == 502 and info.value.code == "server_error"


def test_webhook_creation_is_not_retried_after_a_5xx() -> None:
    """Creating a webhook twice would make two endpoints: a 500 is not retried."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"code": "server_error", "detail": "oops"})

    with pytest.raises(CordialeError):
        client_for(handler).create_webhook("https://hooks.example/in")
    assert len(calls) == 1


def test_path_values_are_percent_encoded_as_one_segment() -> None:
    """A URL value keeps its slashes, '?' and '#' inside one encoded path segment."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"code": "not_found", "detail": "not found"})

    client = client_for(handler)
    assert client.lookup("url", "https://example.com/a b?x=1&y=2#frag") is None
    assert seen[0].url.raw_path == (
        b"/api/v1/signals/url/https%3A%2F%2Fexample.com%2Fa%20b%3Fx%3D1%26y%3D2%23frag"
    )
    with pytest.raises(CordialeError):
        client.set_opinion("url", "https://e.com/p", category="negative")
    assert seen[1].method == "PUT"
    assert seen[1].url.raw_path == b"/api/v1/opinions/url/https%3A%2F%2Fe.com%2Fp"


def test_iter_changes_follows_cursors_until_has_more_is_false() -> None:
    """``iter_changes`` follows each page's cursor with the given limit and stops at the page
    without more."""
    pages = {
        None: {"changes": [1], "cursor": "a", "has_more": True},
        "a": {"changes": [2], "cursor": "b", "has_more": True},
        "b": {"changes": [], "cursor": "c", "has_more": False},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params.get("limit") == "2"
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    got = list(client_for(handler).iter_changes(limit=2))
    assert [page["cursor"] for page in got] == ["a", "b", "c"]


def test_match_and_webhook_methods_use_the_contract_paths() -> None:
    """The match, webhook and JWKS methods call the method and path of the API contract, with the
    match options in the body."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        return httpx.Response(200, json={"results": []})

    client = client_for(handler)
    client.match([{"signal_type": "pdq", "value": "0" * 64}], max_distance=10)
    client.list_webhooks()
    client.get_webhook(5)
    client.update_webhook(5, url="https://h.example/")
    client.webhook_deliveries(5)
    client.ping_webhook(5)
    client.member_jwks("acme")
    client.rotate_webhook_secret(5)
    client.enable_webhook(5)
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", "/api/v1/match"),
        ("GET", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/5"),
        ("PATCH", "/api/v1/webhooks/5"),
        ("GET", "/api/v1/webhooks/5/deliveries"),
        ("POST", "/api/v1/webhooks/5/ping"),
        ("GET", "/api/v1/members/acme/jwks"),
        ("POST", "/api/v1/webhooks/5/rotate-secret"),
        ("POST", "/api/v1/webhooks/5/enable"),
    ]
    assert b'"max_distance":10' in seen[0][2].replace(b" ", b"")


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    """Retry-After is read as seconds or as an HTTP date; anything else is ignored."""
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
