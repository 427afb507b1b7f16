"""Exchange endpoints: signal types, labels, statements, the change feed, lookup, match,
opinions.

The submit, feed and match endpoints are hot paths: they read and write JSON with orjson and
call services directly instead of going through DRF serializers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.metrics import observe_match
from forum.errors import DomainError, NotFoundError
from forum.openapi import PARSED_BODY, problems
from members.apis import principal

from . import openapi, selectors
from .client import json_input
from .client.signal_types import SIGNAL_TYPES, query_value_error
from .feed import DEFAULT_LIMIT, MAX_LIMIT
from .matching.selectors import (
    MatchOptions,
    MatchQuery,
    match_request_cost,
    match_request_parse,
    signals_match,
)
from .models import Label
from .services.opinions import opinion_delete, opinion_set
from .services.statements import MAX_BATCH, statement_submit

# The hot paths read their body themselves (orjson, any content type): a bad one gets
# these rather than forum.openapi.PARSED_BODY.
RAW_BODY = {400: ["malformed_json"], 413: ["body_too_large"]}


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def _json_body(request: Request) -> Any:
    try:
        raw = request._request.body
    except RequestDataTooBig:
        raise DomainError(
            "The request body is too large.", code="body_too_large", status=413
        ) from None
    try:
        return json_input.loads(raw)
    except json_input.InvalidJSON as exc:
        raise DomainError(f"The body is not valid JSON: {exc}", code="malformed_json") from None


T = TypeVar("T")


def _once(request: Request, name: str, make: Callable[[], T]) -> T:
    """``make()`` computed once per request: the work throttle (forum/throttling.py)
    counts the items of a body before the view uses it."""
    memo = vars(request).setdefault("_cordiale_memo", {})
    if name not in memo:
        memo[name] = make()
    return cast(T, memo[name])


def _body(request: Request) -> Any:
    return _once(request, "body", lambda: _json_body(request))


class SignalTypesApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(
        summary="Registered signal types with descriptions and examples",
        responses=openapi.SignalTypeOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "name": t.name,
                    "description": t.description,
                    "content_types": list(t.content_types),
                    "examples": list(t.examples),
                }
                for t in SIGNAL_TYPES.values()
            ]
        )


class LabelsApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(summary="The label taxonomy", responses=openapi.LabelOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(list(Label.objects.values("slug", "name", "kind", "description", "active")))


class StatementsApi(APIView):
    required_scope = "submit"
    throttle_scope = "submit"
    work_scope = "statements"

    def throttle_cost(self, request: Request) -> int:
        body = _body(request)
        tokens = body.get("statements") if isinstance(body, dict) else None
        # A batch the view refuses whole (none or too many items) processes nothing.
        return len(tokens) if isinstance(tokens, list) and len(tokens) <= MAX_BATCH else 1

    @extend_schema(
        summary="Submit signed statements (1 to 10,000 compact JWS)",
        request=openapi.SubmitIn,
        responses=openapi.SubmitOut,
        examples=[openapi.SUBMIT_EXAMPLE, openapi.SUBMIT_RESULT_EXAMPLE],
    )
    @problems(RAW_BODY)
    @problems({400: ["invalid_request"], 413: ["too_many_statements"]})
    def post(self, request: Request) -> HttpResponse:
        body = _body(request)
        tokens = body.get("statements") if isinstance(body, dict) else None
        if not isinstance(tokens, list) or not tokens:
            raise DomainError(
                'The body must be {"statements": ["<compact JWS>", ...]} with at least one item.',
                code="invalid_request",
                errors=[{"field": "statements", "code": "required", "detail": "a non-empty list"}],
            )
        if len(tokens) > MAX_BATCH:
            raise DomainError(
                f"At most {MAX_BATCH} statements per request; got {len(tokens)}.",
                code="too_many_statements",
                status=413,
            )
        return json_response(statement_submit(member=principal(request).member, tokens=tokens))


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise DomainError(
            f"limit must be an integer from 1 to {MAX_LIMIT}.",
            code="invalid_limit",
            errors=[{"field": "limit", "code": "invalid", "detail": f"1..{MAX_LIMIT}"}],
        )
    return limit


class ChangesApi(APIView):
    required_scope = "read"
    throttle_scope = "read"
    work_scope = "feed_rows"

    def throttle_cost(self, request: Request) -> int:
        return _limit(request)

    @extend_schema(
        summary="Follow the change feed",
        parameters=[
            OpenApiParameter("cursor", str, description="Opaque cursor from the last page"),
            OpenApiParameter("limit", int, description="1..10,000, default 1,000"),
        ],
        responses=openapi.ChangesOut,
    )
    @problems({400: ["invalid_limit", "invalid_cursor"], 410: ["resync_required"]})
    def get(self, request: Request) -> HttpResponse:
        changes, cursor, has_more = selectors.feed_page(
            member_id=principal(request).member.pk,
            cursor=request.query_params.get("cursor"),
            limit=_limit(request),
            replica=True,
        )
        return json_response({"changes": changes, "cursor": cursor, "has_more": has_more})


NOT_VISIBLE = "No signal with this type and value is visible to you."


class SignalApi(APIView):
    required_scope = "read"
    throttle_scope = "read"

    @extend_schema(summary="Look up one signal", responses=openapi.SnapshotOut)
    @problems({400: ["invalid_value", "unknown_signal_type"]})
    def get(self, request: Request, signal_type: str, value: str) -> HttpResponse:
        # A value that cannot exist is a 400 like /match's: it depends on the input alone,
        # so it tells nothing about what is stored or who may see it.
        error = query_value_error(signal_type, value)
        if error is not None and error["code"] == "unknown_signal_type":
            field = [{"field": "signal_type", **error}]
            raise DomainError(error["detail"], code="unknown_signal_type", errors=field)
        if error is not None:
            field = [{"field": "value", **error}]
            raise DomainError(error["detail"], code="invalid_value", errors=field)
        snapshot = selectors.signal_snapshot_for(
            member_id=principal(request).member.pk, signal_type=signal_type, value=value
        )
        if snapshot is None:
            # The same answer whether nobody submitted it or the caller may not see it.
            raise NotFoundError(NOT_VISIBLE)
        return json_response(snapshot)


class MatchApi(APIView):
    required_scope = "read"
    throttle_scope = "read"
    work_scope = "match_hashes"

    def throttle_cost(self, request: Request) -> int:
        return match_request_cost(_match_request(request)[0])

    @extend_schema(
        summary="Match 1 to 1,000 values: exact types by equality, pdq and vpdq by distance",
        description="See exchange/matching/selectors.py: per-query errors, limit, "
        "video-to-video matching of vpdq queries.",
        request=openapi.MatchIn,
        responses=openapi.MatchResultsOut,
        examples=[openapi.MATCH_EXAMPLE],
    )
    @problems(RAW_BODY)
    @problems(
        {
            400: [
                "invalid_request",
                "invalid_max_distance",
                "invalid_limit",
                "invalid_match_percent",
            ],
            413: ["too_many_queries", "too_many_hashes", "match_too_costly"],
        }
    )
    def post(self, request: Request) -> HttpResponse:

        started = time.perf_counter()
        queries, options = _match_request(request)
        results = signals_match(
            member_id=principal(request).member.pk, queries=queries, options=options
        )
        observe_match(time.perf_counter() - started)
        return json_response({"results": results})


def _match_request(request: Request) -> tuple[list[MatchQuery], MatchOptions]:
    return _once(request, "match", lambda: match_request_parse(_body(request)))


class OpinionInput(serializers.Serializer[Any]):
    category = serializers.ChoiceField(choices=["positive", "negative", "investigation"])
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=32
    )
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


class OpinionApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"

    @extend_schema(
        summary="Set your opinion on a signal",
        request=OpinionInput,
        responses=openapi.OpinionSetOut,
    )
    @problems(PARSED_BODY)
    def put(self, request: Request, signal_type: str, value: str) -> Response:
        data = OpinionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            opinion = opinion_set(
                member=principal(request).member,
                signal_type=signal_type,
                value=value,
                **data.validated_data,
            )
        except NotFoundError:
            raise NotFoundError(NOT_VISIBLE) from None
        return Response(
            {
                "signal_type": signal_type,
                "value": value,
                "category": opinion.category,
                "tags": opinion.tags,
                "reason": opinion.reason,
            }
        )

    @extend_schema(
        summary="Withdraw your opinion on a signal, even one you no longer see",
        responses={204: None},
    )
    def delete(self, request: Request, signal_type: str, value: str) -> Response:
        opinion_delete(member=principal(request).member, signal_type=signal_type, value=value)
        return Response(status=204)
