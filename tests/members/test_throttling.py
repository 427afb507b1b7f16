"""Throttles charge by work and count atomically.

- Concurrent requests never get more than the rate through, on Redis and on the
  in-memory cache: threads hammer the configured throttle class directly.
- A request is charged what it asks for: a batch of 10,000 statements costs 10,000
  units of the ``statements`` budget, 1,000 match queries 1,000 ``match_hashes`` units,
  a feed page of limit n n ``feed_rows`` units; past the budget, 429 with Retry-After;
  a request that alone exceeds the budget, a 413 ``exceeds_rate_limit`` problem.

DRF copies the rates into ``SimpleRateThrottle.THROTTLE_RATES`` at import, so tests
patch that dict. Daily rates keep the window boundary out of a test's few seconds.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from tests.factories import make_party, random_hex
from tests.members.problems import assert_problem

LIMIT = 50
THREADS = 16
ATTEMPTS = 25  # per thread: 400 attempts for 50 places

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _hammer(member_pk: int) -> int:
    """Requests admitted when THREADS threads each try ATTEMPTS at once."""
    throttle_class = api_settings.DEFAULT_THROTTLE_CLASSES[0]
    request = SimpleNamespace(
        user=SimpleNamespace(pk=member_pk, is_authenticated=True),
        META={"REMOTE_ADDR": "127.0.0.1"},
    )
    view = SimpleNamespace(throttle_scope="read")
    admitted = [0] * THREADS
    start = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        start.wait()
        for _ in range(ATTEMPTS):
            if throttle_class().allow_request(request, view):
                admitted[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(admitted)


@pytest.mark.redis
def test_concurrent_requests_never_exceed_the_rate_on_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 threads x 25 requests against a rate of 50/day on Redis: exactly 50 pass."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "read", f"{LIMIT}/day")
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    assert _hammer(member_pk=10_000_001)  # no member of this run has it == LIMIT


def test_concurrent_requests_never_exceed_the_rate_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same on the in-memory cache of the embedded setup: exactly 50 pass."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "read", f"{LIMIT}/day")
    with override_settings(CACHES=LOCMEM):
        assert _hammer(member_pk=1) == LIMIT


def _submit(party: Any, n: int) -> Any:
    # Malformed items are rejected one by one, but each is a statement submitted.
    body = {"statements": ["not-a-jws"] * n}
    return party.client.post("/api/v1/statements", body, format="json")


@pytest.mark.django_db
def test_a_batch_of_10000_statements_costs_10000_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 10,005 statements a day: a batch of 10,000 passes (each item answered), then
    a batch of 6 is throttled (429, Retry-After) while a batch of 5 still passes."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "statements", "10005/day")
    party = make_party()
    first = _submit(party, 10_000)
    assert first.status_code == 200, first.content
    assert first.json()["rejected"] == 10_000
    throttled = _submit(party, 6)
    assert_problem(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) >= 1
    assert _submit(party, 5).status_code == 200
    assert_problem(_submit(party, 1), 429, "throttled")


@pytest.mark.django_db
def test_a_request_larger_than_the_whole_budget_is_a_413(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that could never fit the budget is told so (413 exceeds_rate_limit), not
    sent to retry for ever."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "statements", "100/day")
    body = assert_problem(_submit(make_party(), 101), 413, "exceeds_rate_limit")
    assert "100" in body["detail"]


@pytest.mark.django_db
def test_match_is_charged_per_query_and_feed_per_row_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 md5 queries cost 1,000 match_hashes units; a feed page of limit 10,000
    costs 10,000 feed_rows units; one request more than the rest is throttled."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "match_hashes", "1500/day")
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "feed_rows", "15000/day")
    party = make_party()
    queries = [{"signal_type": "md5", "value": random_hex(32)} for _ in range(1_000)]
    match = party.client.post("/api/v1/match", {"queries": queries}, format="json")
    assert match.status_code == 200, match.content
    again = party.client.post("/api/v1/match", {"queries": queries[:600]}, format="json")
    assert_problem(again, 429, "throttled")
    last = party.client.post("/api/v1/match", {"queries": queries[:500]}, format="json")
    assert last.status_code == 200

    assert party.client.get("/api/v1/changes", {"limit": 10_000}).status_code == 200
    assert_problem(party.client.get("/api/v1/changes", {"limit": 5_001}), 429, "throttled")
    assert party.client.get("/api/v1/changes", {"limit": 5_000}).status_code == 200


@pytest.mark.django_db
def test_a_batch_refused_whole_costs_one_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch over the 10,000-item cap is refused as too_many_statements, whatever the
    budget, and spends one unit of it (a request), not 10,001."""
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "statements", "100/day")
    party = make_party()
    assert_problem(_submit(party, 10_001), 413, "too_many_statements")
    assert _submit(party, 99).status_code == 200
    assert_problem(_submit(party, 1), 429, "throttled")


@pytest.mark.django_db
def test_a_dead_redis_does_not_take_the_api_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the shared cache pointing at a Redis that does not answer, throttled endpoints
    still answer (counting in the process instead), and the limit still holds there."""
    import socket

    from django.core.cache import caches

    from forum import throttling

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    party = make_party("redisless")
    with override_settings(CACHES=dead):  # Django's test signal reopens the caches
        assert "RedisCache" in type(caches["default"]).__name__
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "read", "3/min")
        throttling._FALLBACK.clear()
        answers = [
            party.client.get("/api/v1/changes", HTTP_AUTHORIZATION=f"Bearer {party.api_key}")
            for _ in range(4)
        ]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
