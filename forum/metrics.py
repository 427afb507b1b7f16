"""Prometheus metrics, served at ``/metrics`` in the text exposition format.

Two kinds of series:

- *Recorded* as things happen, in the process where they happen: requests, statement
  results, match latency, index size, Celery task outcomes. Under gunicorn (and any
  process started with ``PROMETHEUS_MULTIPROC_DIR`` set, which ``deploy/gunicorn.conf.py``
  does) each process writes its values to files in that directory and a scrape adds
  them up over all processes; otherwise they live in the process's default registry.
- *Computed* at scrape time from the shared stores, so that any web process gives the
  same answer: the feed head, webhook lag and failures (PostgreSQL), Celery queue
  lengths (Redis). A store that does not answer leaves its series out of that scrape
  rather than failing it.

Access (see ``metrics_view``): with ``CORDIALE_METRICS_TOKEN`` set, a request must carry
``Authorization: Bearer <token>``; without it, only unproxied requests from loopback are
served (a sidecar or ``kubectl port-forward``), everything else gets 403.

Hooks for code elsewhere: ``observe_match(seconds)``, ``set_index_size(n)`` and
``record_statement_results(results)``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

QUEUES = ("fanout", "delivery", "maintenance", "priority")

HTTP_REQUESTS = Counter(
    "cordiale_http_requests",
    "HTTP requests answered, by URL route name, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "cordiale_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
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
TASKS = Counter(
    "cordiale_celery_tasks",
    "Celery task runs by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
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


def record_task(task: str, outcome: str) -> None:
    TASKS.labels(task=task, outcome=outcome).inc()


# --- computed at scrape time ---------------------------------------------------------


class FeedCollector:
    """``cordiale_feed_head``: the highest position of the change feed."""

    def collect(self) -> Iterator[Metric]:
        from exchange.feed import feed_head

        head = feed_head()
        yield GaugeMetricFamily(
            "cordiale_feed_head", "Highest committed position (seq) of the change feed.", head
        )


class WebhookCollector:
    """Per-endpoint lag and consecutive failures, once the webhook models exist.

    Lag is the time since the endpoint's cursor last moved, for an endpoint that has
    something left to deliver (0 when it is caught up). Checking that costs one
    one-row feed read per active endpoint and scrape.
    """

    def collect(self) -> Iterator[Metric]:
        from django.apps import apps
        from django.utils import timezone

        # Both exist once the webhook work has landed; until then there is no series.
        try:
            endpoints = apps.get_model("exchange", "WebhookEndpoint")  # type: ignore[misc,unused-ignore]
            from exchange.services import webhook_delivery  # type: ignore[attr-defined,unused-ignore]
        except (LookupError, ImportError):
            return
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
        for endpoint in endpoints.objects.filter(active=True).select_related("member"):
            labels = [endpoint.member.slug, str(endpoint.pk)]
            behind = 0.0
            if webhook_delivery.webhook_lags(endpoint=endpoint):
                since = endpoint.cursor_updated_at or endpoint.created_at
                behind = max(0.0, (now - since).total_seconds())
            lag.add_metric(labels, behind)
            failures.add_metric(labels, endpoint.attempts)
        yield lag
        yield failures


class QueueCollector:
    """``cordiale_celery_queue_length``: messages waiting in each Redis broker queue."""

    def collect(self) -> Iterator[Metric]:
        from django.conf import settings

        url = getattr(settings, "CELERY_BROKER_URL", "") or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        family = GaugeMetricFamily(
            "cordiale_celery_queue_length",
            "Tasks waiting in a Celery queue (all priority levels).",
            labels=["queue"],
        )
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    for key in _priority_keys(queue):
                        pipe.llen(key)
                lengths = iter(pipe.execute())
            for queue in QUEUES:
                family.add_metric([queue], sum(next(lengths) for _ in _priority_keys(queue)))
        finally:
            client.close()
        yield family


def _priority_keys(queue: str) -> list[str]:
    # Kombu's Redis transport keeps one list per priority step; the default steps are
    # 0, 3, 6 and 9, and step 0 is the bare queue name.
    return [queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))]


class _Guarded:
    """Runs a scrape-time collector, logging instead of failing the whole scrape."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self.collector.collect())
        except Exception:
            logger.warning(
                "metrics collector %s failed", type(self.collector).__name__, exc_info=True
            )
            return iter(())
        return iter(metrics)


class _Recorded:
    """The process's default registry, as one collector of the scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


SCRAPE_COLLECTORS = (FeedCollector(), WebhookCollector(), QueueCollector())


def render(accept: str | None = None) -> tuple[bytes, str]:
    """Every series, in the format the scraper's ``Accept`` asks for, and its type."""
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Recorded())
    for collector in SCRAPE_COLLECTORS:
        registry.register(_Guarded(collector))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


# --- access --------------------------------------------------------------------------


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def scrape_allowed(meta: dict[str, Any], token: str) -> int | None:
    """None if the request may read the metrics, else the status code to refuse it with."""
    if token:
        header = meta.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError,
        # which was a 500), and a client chooses what its header holds.
        given_bytes = given.strip().encode("utf-8", "surrogatepass")
        if scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode()):
            return None
        return 401
    # A request relayed by a proxy on the same host arrives from loopback too; the
    # forwarding headers tell those apart from a local scraper.
    if "HTTP_X_FORWARDED_FOR" in meta or "HTTP_FORWARDED" in meta:
        return 403
    return None if _is_loopback(meta.get("REMOTE_ADDR", "")) else 403


_REFUSALS = {
    401: ("not_authenticated", "Not authenticated", "Send Authorization: Bearer <metrics token>."),
    403: ("permission_denied", "Permission denied", "Metrics are served to loopback only."),
}


def metrics_view(request: Any) -> Any:
    """``GET /metrics`` (answered by ``forum.middleware.ProbeMiddleware``)."""
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse

    from forum.api import PROBLEM_CONTENT_TYPE, problem

    refused = scrape_allowed(request.META, settings.CORDIALE_METRICS_TOKEN)
    if refused is not None:
        code, title, detail = _REFUSALS[refused]
        response = JsonResponse(
            problem(status=refused, code=code, title=title, detail=detail),
            status=refused,
            content_type=PROBLEM_CONTENT_TYPE,
        )
        if refused == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)
