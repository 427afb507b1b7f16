"""``/metrics`` after real traffic: the named series exist with non-zero values.

Counters are process-wide and other tests add to them, so the checks compare a scrape
after the traffic with one before it.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from exchange import metrics as exchange_metrics
from exchange.tasks import sweep_lapsed_statements
from forum import metrics
from tests.factories import make_party, pdq

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Client | None = None, **headers: str) -> Samples:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_series_after_traffic() -> None:
    """Requests by route and status, latency, statement results by code, feed head,
    match latency, index size and task outcomes all move with the traffic."""
    before = scrape()
    acme, globex = make_party("acme"), make_party("globex")
    now = int(time.time())
    token = acme.statement("pdq", pdq(), iat=now - 5)
    body = acme.submit(
        token,
        token,  # the retry of an accepted statement: duplicate
        acme.statement("pdq", pdq(), iat=now + 3600),  # clock_skew
        acme.statement("md5", "not-a-hash"),  # invalid_value
    )
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 2), body
    assert globex.get("/api/v1/changes").status_code == 200
    assert globex.get(f"/api/v1/signals/pdq/{pdq()}").status_code == 404
    exchange_metrics.observe_match(0.012)
    exchange_metrics.set_index_size(1234)
    sweep_lapsed_statements.apply()  # in process, through the same signals as a worker

    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "cordiale_http_requests_total"
    assert delta(requests, route="statements", method="POST", status="200") == 1
    assert delta(requests, route="changes", method="GET", status="200") == 1
    # The route name, never the value in the path.
    assert delta(requests, route="signal", method="GET", status="404") == 1
    assert not any("pdq/" in str(labels) for _, labels in after)
    assert (
        delta("cordiale_http_request_duration_seconds_count", route="statements", method="POST")
        == 1
    )
    assert (
        delta("cordiale_http_request_duration_seconds_sum", route="statements", method="POST") > 0
    )

    assert delta("cordiale_statements_total", status="accepted", code="") == 1
    assert delta("cordiale_statements_total", status="duplicate", code="") == 1
    assert delta("cordiale_statements_total", status="rejected", code="clock_skew") == 1
    assert delta("cordiale_statements_total", status="rejected", code="invalid_value") == 1

    assert value(after, "cordiale_feed_head") >= 1
    assert delta("cordiale_match_duration_seconds_count") == 1
    assert value(after, "cordiale_match_index_size", signal_type="pdq") == 1234
    assert (
        delta(
            "cordiale_celery_tasks_total",
            task="exchange.tasks.sweep_lapsed_statements",
            outcome="success",
        )
        == 1
    )


def test_unknown_path_is_one_series() -> None:
    """Paths that match no route are counted under ``unmatched``, not by path."""
    before = scrape()
    assert Client().get("/no/such/path/12345").status_code == 404
    after = scrape()
    key = {"route": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "cordiale_http_requests_total", **key)
        - value(before, "cordiale_http_requests_total", **key)
        == 1
    )


@pytest.mark.redis
def test_queue_lengths_from_redis() -> None:
    """With a Redis broker, every queue's length is reported (possibly 0)."""
    samples = scrape()
    for queue in metrics.QUEUES:
        assert ("cordiale_celery_queue_length", frozenset({("queue", queue)})) in samples


@override_settings(CORDIALE_METRICS_TOKEN="s3cret-metrics-token")
def test_token_required_when_set() -> None:
    """With a token configured, even loopback needs it; a wrong one gets 401."""
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-metrics-token").status_code == 401
    )
    scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    # From anywhere, over plain HTTP, whatever the Host: the token is the rule.
    ok = client.get(
        "/metrics",
        REMOTE_ADDR="10.1.2.3",
        HTTP_HOST="10.1.2.3:8000",
        HTTP_AUTHORIZATION="Bearer s3cret-metrics-token",
    )
    assert ok.status_code == 200


@override_settings(CORDIALE_METRICS_TOKEN="")
def test_without_token_only_loopback() -> None:
    """Without a token only unproxied loopback requests are served."""
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    # A proxy on the same host relays outside requests from loopback.
    assert (
        client.get(
            "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
        ).status_code
        == 403
    )
