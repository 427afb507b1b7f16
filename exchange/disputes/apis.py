"""The member API of disputes: ``/api/v1/disputes`` (scope ``feedback``).

Views parse, call one service or selector, render. Visibility is the selectors' (a
dispute follows its signal); a dispute the caller may not see is the same 404 as one
that does not exist, and a signal it may not see the same 404 as a lookup's.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.apis import NOT_VISIBLE
from exchange.client.signal_types import query_value_error
from forum.actors import actor_for_api_key
from forum.errors import DomainError, NotFoundError
from forum.openapi import PARSED_BODY, problems
from members.apis import principal

from .models import Dispute
from .openapi import DisputeIn, DisputeListOut, DisputeOut, DisputeResponseIn, DisputeResponseOut
from .selectors import (
    DEFAULT_PAGE,
    MAX_PAGE,
    dispute_get_visible,
    dispute_list_visible,
    dispute_view,
    rfc3339,
)
from .services import NO_DISPUTE, dispute_open, dispute_respond

OPEN_PROBLEMS = {
    400: [
        "invalid_grounds",
        "invalid_reason",
        "invalid_labels",
        "unknown_label",
        "invalid_value",
        "unknown_signal_type",
    ],
    409: ["dispute_exists"],
}


def _actor(request: Request) -> str:
    p = principal(request)
    return actor_for_api_key(p.member, p.api_key)


def _int_param(request: Request, name: str, low: int, high: int, code: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        number = int(raw)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise DomainError(
            f"{name} must be an integer from {low} to {high}.",
            code=code,
            errors=[{"field": name, "code": "invalid", "detail": f"{low}..{high}"}],
        )
    return number


class DisputesApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"

    @extend_schema(
        operation_id="disputes_list",
        summary="Disputes on signals you may see, newest first",
        parameters=[
            OpenApiParameter("status", str, enum=["open", "decided"]),
            OpenApiParameter("before", int, description="`next` of the previous page"),
            OpenApiParameter("limit", int, description=f"1..{MAX_PAGE}, default {DEFAULT_PAGE}"),
        ],
        responses=DisputeListOut,
    )
    @problems({400: ["invalid_filter", "invalid_limit", "invalid_cursor"]})
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in Dispute.Status.values:
            raise DomainError(
                "status must be open or decided.",
                code="invalid_filter",
                errors=[{"field": "status", "code": "invalid_choice", "detail": status}],
            )
        limit = _int_param(request, "limit", 1, MAX_PAGE, "invalid_limit") or DEFAULT_PAGE
        before = _int_param(request, "before", 1, 2**63 - 1, "invalid_cursor")
        member = principal(request).member
        disputes, following = dispute_list_visible(
            member=member, status=status, before=before, limit=limit
        )
        return Response(
            {
                "disputes": [dispute_view(dispute=d, member=member) for d in disputes],
                "next": following,
            }
        )

    @extend_schema(
        summary="Open a dispute on a signal you may see",
        request=DisputeIn,
        responses={201: DisputeOut},
    )
    @problems(PARSED_BODY)
    @problems(OPEN_PROBLEMS)
    def post(self, request: Request) -> Response:
        data = DisputeIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = data.validated_data
        error = query_value_error(fields["signal_type"], fields["value"])
        if error is not None:
            field = "signal_type" if error["code"] == "unknown_signal_type" else "value"
            raise DomainError(
                error["detail"], code=error["code"], errors=[{"field": field, **error}]
            )
        member = principal(request).member
        try:
            dispute = dispute_open(member=member, actor=_actor(request), **fields)
        except NotFoundError:
            raise NotFoundError(NOT_VISIBLE) from None
        return Response(dispute_view(dispute=dispute, member=member), status=201)


def _visible(request: Request, pk: int) -> Dispute:
    dispute = dispute_get_visible(member=principal(request).member, dispute_id=pk)
    if dispute is None:
        raise NotFoundError(NO_DISPUTE)
    return dispute


class DisputeApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"

    @extend_schema(summary="One dispute, its responses and its decision", responses=DisputeOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            dispute_view(dispute=_visible(request, pk), member=principal(request).member)
        )


class DisputeResponsesApi(APIView):
    required_scope = "feedback"
    throttle_scope = "feedback"

    @extend_schema(
        summary="Answer a dispute on your statement",
        request=DisputeResponseIn,
        responses={201: DisputeResponseOut},
    )
    @problems(PARSED_BODY)
    @problems({400: ["invalid_text"], 403: ["not_a_party"], 409: ["dispute_decided"]})
    def post(self, request: Request, pk: int) -> Response:
        data = DisputeResponseIn(data=request.data)
        data.is_valid(raise_exception=True)
        member = principal(request).member
        response = dispute_respond(
            dispute=_visible(request, pk),
            member=member,
            text=data.validated_data["text"],
            actor=_actor(request),
        )
        return Response(
            {
                "member": member.slug,
                "text": response.text,
                "created_at": rfc3339(response.created_at),
            },
            status=201,
        )
