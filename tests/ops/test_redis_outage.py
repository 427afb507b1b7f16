"""Redis (broker and cache) killed under gunicorn (issue #15, item 2).

gunicorn in production mode on a private PostgreSQL, with a private redis-server as
Celery broker, cache and throttle store. While Redis is dead, submissions (whose on-commit
webhook fan-out cannot be published), the feed, lookups and matches answer as usual and
promptly; web readiness (``/readyz/web``) stays 200 while ``/readyz`` reports the broker.
That webhooks catch up once Redis is back is ``tests/exchange/test_webhook_delivery.py``
(``test_submissions_succeed_while_redis_is_down_and_are_delivered_after``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import pdq
from tests.support.private_stack import PrivateStack, private_stack
from tests.support.processes import wait_for
from tests.support.redis import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def stack(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    index = Path(tmp_path_factory.mktemp("match-index"))
    with private_stack(REDIS_URL=redis.url, CORDIALE_MATCH_INDEX_DIR=str(index)) as stack:
        yield stack


def test_the_api_answers_normally_while_redis_is_dead(
    stack: PrivateStack, redis: RedisServer
) -> None:
    """With Redis killed: submit, /changes, lookup and /match answer 200 within a second
    or two each, and what was submitted meanwhile is in the feed, the lookup and the
    match; /readyz/web stays 200 while /readyz is 503 naming the broker."""
    member = stack.member("acme")
    with stack.client(member, timeout=20) as http:
        warm = http.post(
            "/api/v1/statements", json={"statements": [member.statement("pdq", pdq())]}
        )
        assert warm.status_code == 200, warm.text

        redis.kill()
        value = pdq()
        timings: dict[str, float] = {}

        def timed(name: str, method: str, url: str, **kwargs: object) -> httpx.Response:
            started = time.monotonic()
            response = http.request(method, url, **kwargs)  # type: ignore[arg-type]
            timings[name] = time.monotonic() - started
            assert response.status_code == 200, (name, response.status_code, response.text)
            return response

        submitted = timed(
            "submit",
            "POST",
            "/api/v1/statements",
            json={"statements": [member.statement("pdq", value)]},
        ).json()
        assert submitted["accepted"] == 1, submitted
        changes = timed("changes", "GET", "/api/v1/changes", params={"limit": 100}).json()
        assert value in {c["value"] for c in changes["changes"]}
        looked_up = timed("lookup", "GET", f"/api/v1/signals/pdq/{value}").json()
        assert looked_up["value"] == value
        matched = timed(
            "match",
            "POST",
            "/api/v1/match",
            json={"queries": [{"signal_type": "pdq", "value": value}]},
        ).json()
        assert any(m["signal"]["value"] == value for m in matched["results"][0]["matches"])
        assert max(timings.values()) < 5, timings

        web = http.get("/readyz/web")
        assert web.status_code == 200
        assert web.json()["checks"] == {"database": "up", "broker": "down"}
        wait_for(lambda: http.get("/readyz").status_code == 503, 10, "/readyz to fail")
        assert http.get("/readyz").json()["problems"] == ["broker: ConnectionError"]

        redis.start()  # the same port: everything recovers without a restart
        wait_for(lambda: http.get("/readyz").status_code == 200, 10, "/readyz to recover")
    print(f"\nwith Redis dead: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in timings.items())}")
