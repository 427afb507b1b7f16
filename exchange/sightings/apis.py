"""``POST /api/v1/sightings`` (a batch of reports) and ``GET /api/v1/sightings/<type>/<value>``
(the caller's own reports on a signal), scope ``feedback``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from exchange.apis import NOT_VISIBLE, RAW_BODY, _body, json_response
from forum.errors import DomainError, NotFoundError
from forum.openapi import problems
from members.apis import principal

from . import openapi
from .selectors import sightings_of_member
from .services import MAX_BATCH, sightings_report


def _items(request: Request) -> Any:
    body = _body(request)
    return body.get("sightings") if isinstance(body, dict) else None


class SightingsApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"
    work_scope = "sightings"

    def throttle_cost(self, request: Request) -> int:
        items = _items(request)
        # A batch refused whole (none or too many items) stores nothing.
        return len(items) if isinstance(items, list) and len(items) <= MAX_BATCH else 1

    @extend_schema(
        summary=f"Report how matches ended (1 to {MAX_BATCH:,} reports)",
        request=openapi.SightingsIn,
        responses=openapi.SightingsOut,
        examples=[openapi.SIGHTINGS_EXAMPLE],
    )
    @problems(RAW_BODY)
    @problems({400: ["invalid_request"], 413: ["too_many_sightings"]})
    def post(self, request: Request) -> Any:
        items = _items(request)
        if not isinstance(items, list) or not items:
            raise DomainError(
                'The body must be {"sightings": [{...}, ...]} with at least one item.',
                code="invalid_request",
                errors=[{"field": "sightings", "code": "required", "detail": "a non-empty list"}],
            )
        if len(items) > MAX_BATCH:
            raise DomainError(
                f"At most {MAX_BATCH} sightings per request; got {len(items)}.",
                code="too_many_sightings",
                status=413,
            )
        return json_response(sightings_report(member=principal(request).member, items=items))


class SignalSightingsApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"

    @extend_schema(
        summary="Your own sighting reports on a signal you may see",
        responses=openapi.OwnSightingsOut,
    )
    def get(self, request: Request, signal_type: str, value: str) -> Any:
        rows = sightings_of_member(
            member=principal(request).member, signal_type=signal_type, value=value
        )
        if rows is None:
            raise NotFoundError(NOT_VISIBLE)
        for row in rows:
            for field in ("period_start", "period_end", "updated_at"):
                row[field] = row[field].isoformat().replace("+00:00", "Z")
        return json_response({"signal_type": signal_type, "value": value, "sightings": rows})
