"""Prometheus metrics, served at ``/metrics`` in the text exposition format.

Two kinds of series:

- *Recorded* as things happen, in the process where they happen: requests, Celery task
  outcomes (a worker with ``CORDIALE_WORKER_METRICS_PORT`` serves its own on that port,
  summed over its pool processes), and the apps' own series (``exchange/metrics.py``:
  statement results, match latency, index size). Under gunicorn (and any
  process started with ``PROMETHEUS_MULTIPROC_DIR`` set, which ``deploy/gunicorn.conf.py``
  does) each process writes its values to files in that directory and a scrape adds
  them up over all processes; otherwise they live in the process's default registry.
- *Computed* at scrape time from the shared stores, so that any web process gives the
  same answer: the broker's health (``cordiale_broker_up``, from the probe's cached
  ping, ``forum/health.py``) and Celery queue lengths (Redis) here, and what apps register with
  ``scrape_collector_register`` from their ``AppConfig.ready()`` (the feed head, webhook
  lag and failures: ``exchange/metrics.py``). A store that does not answer leaves its
  series out of that scrape rather than failing it.

Access (see ``metrics_view``): with ``CORDIALE_METRICS_TOKEN`` set, a request must carry
``Authorization: Bearer <token>``; without it, only unproxied requests from loopback are
served (a sidecar or ``kubectl port-forward``), everything else gets 403.

This module knows no app: the apps define their series and collectors and register them.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from . import health

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
TASKS = Counter(
    "cordiale_celery_tasks",
    "Celery task runs by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
)


READ_ROUTES = Counter(
    "cordiale_read_routes",
    "Reads that may use the replica (feed pages), by the database that served them and why "
    "(replica; primary: lag, behind_reader, unavailable, in_transaction, primary_only).",
    ["database", "reason"],
)


def record_task(task: str, outcome: str) -> None:
    TASKS.labels(task=task, outcome=outcome).inc()


def record_read_route(alias: str, reason: str) -> None:
    database = "replica" if alias == "replica" else "primary"
    READ_ROUTES.labels(database=database, reason=reason).inc()


# --- Celery workers ------------------------------------------------------------------


def worker_metrics_prepare() -> None:
    """Make the pool processes a worker is about to fork record to shared files.

    Called in the worker's main process before its pool starts. Values of labelled
    series (task outcomes) are created on first use, so they pick up the file-backed
    value class even though this module was imported before.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    import atexit
    import shutil
    import tempfile

    from prometheus_client import values

    directory = tempfile.mkdtemp(prefix="cordiale-worker-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def worker_metrics_serve(*, port: int, addr: str) -> None:
    """Serve the recorded series of every pool process of this worker over HTTP on
    ``addr:port`` (any path), from a thread of the main process."""
    from prometheus_client import multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)


def worker_process_gone(pid: int) -> None:
    """Forget a pool process's live gauges (its counters stay in the sums)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# --- computed at scrape time ---------------------------------------------------------


class BrokerCollector:
    """``cordiale_broker_up``: 1 while the broker (Redis) answers a ping, else 0; absent
    when no broker is configured. From the readiness probe's cached check: a scrape
    waits for Redis at most ``health.BROKER_CHECK_TIMEOUT`` seconds."""

    def collect(self) -> Iterator[Metric]:
        state = health.broker_state()
        if state == health.NOT_CONFIGURED:
            return
        yield GaugeMetricFamily(
            "cordiale_broker_up",
            "1 while the Celery broker (Redis) answers a ping from this process, else 0.",
            value=1 if state == health.UP else 0,
        )


class QueueCollector:
    """``cordiale_celery_queue_length``: messages waiting in each Redis broker queue."""

    def collect(self) -> Iterator[Metric]:
        from django.conf import settings

        url = getattr(settings, "CELERY_BROKER_URL", "") or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return
        if health.broker_state() == health.DOWN:
            return  # known down: leave the series out rather than wait for Redis again
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


_scrape_collectors: list[Any] = [BrokerCollector(), QueueCollector()]


def scrape_collector_register(collector: Any) -> None:
    """Compute ``collector.collect()`` at every scrape (guarded: a failure leaves its
    series out). Called from an ``AppConfig.ready()``; registering again changes nothing."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


def render(accept: str | None = None) -> tuple[bytes, str]:
    """Every series, in the format the scraper's ``Accept`` asks for, and its type."""
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Recorded())
    for collector in _scrape_collectors:
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
