"""The exchange's Prometheus series: statement results, match latency and index size,
recorded as they happen; the feed head, webhook lag and failures and the read replica's
lag (``forum/db_routing.py``), computed at scrape.

``forum/metrics.py`` serves them at ``/metrics``; the scrape-time collectors join it by
``register()``, called from ``ExchangeConfig.ready()``. Hooks for code elsewhere:
``observe_match(seconds)``, ``set_index_size(n)``, ``record_snapshot_refused(reason)``
and ``record_statement_results(results)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exchange.feed import feed_head
from exchange.webhooks.delivery import webhook_lags
from exchange.webhooks.models import WebhookEndpoint
from forum.db_routing import ReplicaCollector
from forum.metrics import scrape_collector_register

STATEMENTS = Counter(
    "cordiale_statements",
    "Submitted statements by result (accepted, duplicate, stale, rejected) and rejection code.",
    ["status", "code"],
)
MATCH_LATENCY = Histogram(
    "cordiale_match_duration_seconds",
    "Time to answer one match request (all its queries).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INDEX_SIZE = Gauge(
    "cordiale_match_index_size",
    "Hashes held by the in-memory match index of a process, by signal type.",
    ["signal_type"],
    multiprocess_mode="livemax",
)
SNAPSHOTS_REFUSED = Counter(
    "cordiale_match_index_snapshots_refused",
    "Match index snapshot files refused (and rebuilt from PostgreSQL), by reason.",
    ["reason"],
)


def record_statement_results(results: Iterable[dict[str, Any]]) -> None:
    """Count one submission's per-item results (``statement_submit``'s ``results``)."""
    counts: dict[tuple[str, str], int] = {}
    for result in results:
        key = (result["status"], result.get("code", ""))
        counts[key] = counts.get(key, 0) + 1
    for (status, code), n in counts.items():
        STATEMENTS.labels(status=status, code=code).inc(n)


def observe_match(seconds: float) -> None:
    """Record how long a match request took."""
    MATCH_LATENCY.observe(seconds)


def set_index_size(size: int, *, signal_type: str = "pdq") -> None:
    """Record how many hashes this process's match index holds."""
    INDEX_SIZE.labels(signal_type=signal_type).set(size)


def record_snapshot_refused(reason: str) -> None:
    """Count a match index snapshot refused (corrupt, truncated, version, checksum, ...)."""
    SNAPSHOTS_REFUSED.labels(reason=reason).inc()


# --- computed at scrape time ---------------------------------------------------------


class FeedCollector:
    """``cordiale_feed_head``: the highest position of the change feed."""

    def collect(self) -> Iterator[Metric]:

        head = feed_head()
        yield GaugeMetricFamily(
            "cordiale_feed_head", "Highest committed position (seq) of the change feed.", head
        )


class WebhookCollector:
    """Per-endpoint lag and consecutive failures.

    Lag is the time since the endpoint's cursor last moved, for an endpoint that has
    something left to deliver (0 when it is caught up). Checking that costs one
    one-row feed read per active endpoint and scrape.
    """

    def collect(self) -> Iterator[Metric]:

        lag = GaugeMetricFamily(
            "cordiale_webhook_lag_seconds",
            "Seconds since an endpoint that lags behind its feed last advanced its cursor "
            "(0: caught up).",
            labels=["member", "endpoint"],
        )
        failures = GaugeMetricFamily(
            "cordiale_webhook_consecutive_failures",
            "Failed delivery attempts to an endpoint since its last success.",
            labels=["member", "endpoint"],
        )
        now = timezone.now()
        for endpoint in WebhookEndpoint.objects.filter(active=True).select_related("member"):
            labels = [endpoint.member.slug, str(endpoint.pk)]
            behind = 0.0
            if webhook_lags(endpoint=endpoint):
                since = endpoint.cursor_updated_at or endpoint.created_at
                behind = max(0.0, (now - since).total_seconds())
            lag.add_metric(labels, behind)
            failures.add_metric(labels, endpoint.attempts)
        yield lag
        yield failures


FEED_COLLECTOR = FeedCollector()
WEBHOOK_COLLECTOR = WebhookCollector()
REPLICA_COLLECTOR = ReplicaCollector()


def register() -> None:
    """Add the scrape-time collectors to ``/metrics`` (from ``ExchangeConfig.ready``)."""

    scrape_collector_register(FEED_COLLECTOR)
    scrape_collector_register(WEBHOOK_COLLECTOR)
    scrape_collector_register(REPLICA_COLLECTOR)
