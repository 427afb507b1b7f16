"""Middleware that runs before Django's own: request ids, probes, metrics, body size.

Order in ``settings.MIDDLEWARE`` (outermost first): ``RequestIdMiddleware``,
``ProbeMiddleware``, ``MetricsMiddleware``, ``BodySizeLimitMiddleware``, then
``SecurityMiddleware`` and the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import health, metrics
from .api import PROBLEM_CONTENT_TYPE, problem
from .logs import new_request_id, request_id_var, valid_request_id

GetResponse = Callable[[HttpRequest], HttpResponse]


class RequestIdMiddleware:
    """Gives every request an id: the client's valid ``X-Request-ID``, or a new one.

    The id is set on the response, in the log records of everything the request does
    (``forum.logs``) and in the headers of the Celery tasks it publishes.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = valid_request_id(request.headers.get("X-Request-ID")) or new_request_id()
        # Not reset on the way out: Django logs 4xx and 5xx responses after the
        # middleware has returned. ``request_finished`` clears it instead.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


@receiver(request_finished)
def _clear_request_id(**kwargs: object) -> None:
    request_id_var.set(None)


PROBES = {
    "/healthz": health.healthz,
    "/readyz": health.readyz,
    "/readyz/web": health.readyz_web,
    "/metrics": metrics.metrics_view,
}


class ProbeMiddleware:
    """Answers ``/healthz``, ``/readyz`` (and ``/readyz/web``) and ``/metrics`` before any
    host or HTTPS check.

    Kubernetes and Docker probe a pod by its IP over plain HTTP, and Prometheus scrapes
    it the same way: neither would pass ``ALLOWED_HOSTS`` or survive the redirect to
    HTTPS. These answers reveal nothing about any host name, and ``/metrics`` has its
    own access rule.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        return probe(request)


class MetricsMiddleware:
    """Counts requests by route name and status, and times them.

    The route is the URL pattern's name (``statements``, ``admin:index``), or its pattern
    when it has no name, never the raw path: paths carry signal values, and one series
    per value would be both a leak into the metrics and unbounded.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = "unmatched" if match is None else match.view_name or match.route or "unnamed"
        # Methods come from the client; anything unusual is folded into one series.
        method = request.method if request.method in _METHODS else "other"
        metrics.HTTP_REQUESTS.labels(route=route, method=method, status=response.status_code).inc()
        metrics.HTTP_LATENCY.labels(route=route, method=method).observe(elapsed)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class BodySizeLimitMiddleware:
    """Refuses a body announced larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with 413.

    Django enforces that limit only when ``request.body`` is read; DRF's parsers read
    the stream instead, so without this a client could make a process buffer any size.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return JsonResponse(
                problem(
                    status=413,
                    code="request_too_large",
                    title="Request body too large",
                    detail=f"The body is {length} bytes; at most {limit} are accepted. "
                    "Split the batch.",
                ),
                status=413,
                content_type=PROBLEM_CONTENT_TYPE,
            )
        return self.get_response(request)
