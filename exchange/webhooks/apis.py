"""Webhook endpoint management: ``/api/v1/webhooks`` (scope ``manage``).

An endpoint receives the member's feed, so whatever points the feed somewhere new or
shows what it carried also needs scope ``read``: creating an endpoint (its URL and start
position), changing its URL, and listing its deliveries. Otherwise a key issued for
managing endpoints only could read the feed by pointing an endpoint at itself.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from forum.actors import actor_for_api_key
from forum.errors import NotFoundError
from forum.openapi import PARSED_BODY, problems
from members.apis import principal
from members.permissions import scope_require

from .delivery import webhook_lags, webhook_ping_request
from .endpoints import (
    STARTS,
    webhook_create,
    webhook_delete,
    webhook_enable,
    webhook_rotate_secret,
    webhook_update,
)
from .models import WebhookDelivery, WebhookEndpoint
from .openapi import (
    FILTER_PROBLEMS,
    URL_PROBLEMS,
    DeliveryOut,
    PingOut,
    WebhookDetailOut,
    WebhookOut,
    WebhookSecretOut,
)

RECENT_DELIVERIES = 100


def _actor(request: Request) -> str:
    p = principal(request)
    return actor_for_api_key(p.member, p.api_key)


def _endpoint(request: Request, pk: int) -> WebhookEndpoint:
    endpoint = (
        WebhookEndpoint.objects.select_related("member")
        .filter(pk=pk, member=principal(request).member)
        .first()
    )
    if endpoint is None:
        raise NotFoundError(f"You have no webhook endpoint {pk}.")
    return endpoint


def _render(endpoint: WebhookEndpoint, *, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "signal_types": endpoint.signal_types,
        "labels": endpoint.labels,
        "active": endpoint.active,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason or None,
        "failing_since": endpoint.failing_since,
        "next_attempt_at": endpoint.next_attempt_at,
        "attempts": endpoint.attempts,
        "last_success_at": endpoint.last_success_at,
        "cursor": endpoint.cursor,
        "cursor_updated_at": endpoint.cursor_updated_at,
        "created_at": endpoint.created_at,
    }
    if secret is not None:
        data["secret"] = secret
    return data


class WebhookInput(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    signal_types = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, max_length=64
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=64
    )
    active = serializers.BooleanField(required=False)
    start = serializers.ChoiceField(choices=list(STARTS), required=False, default="now")


class WebhookPatch(WebhookInput):
    url = serializers.CharField(max_length=2000, required=False)
    start = None  # type: ignore[assignment]


class ManageApi(APIView):
    required_scope = "manage"
    throttle_scope = "manage"


class WebhookListApi(ManageApi):
    method_scopes = {"POST": ("read",)}

    @extend_schema(summary="Your webhook endpoints", responses=WebhookOut(many=True))
    def get(self, request: Request) -> Response:
        endpoints = WebhookEndpoint.objects.filter(member=principal(request).member).order_by("pk")
        return Response([_render(e) for e in endpoints])

    @extend_schema(
        summary="Create a webhook endpoint (the secret is shown once)",
        request=WebhookInput,
        responses={201: WebhookSecretOut},
    )
    @problems(PARSED_BODY)
    @problems({400: URL_PROBLEMS + FILTER_PROBLEMS, 409: ["too_many_webhooks"]})
    def post(self, request: Request) -> Response:
        data = WebhookInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        active = values.pop("active", True)
        endpoint, secret = webhook_create(
            member=principal(request).member, actor=_actor(request), **values
        )
        if not active:
            endpoint = webhook_update(endpoint=endpoint, actor=_actor(request), active=False)
        return Response(_render(endpoint, secret=secret), status=201)


class WebhookApi(ManageApi):
    @extend_schema(summary="One webhook endpoint, with its lag", responses=WebhookDetailOut)
    def get(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        return Response({**_render(endpoint), "lagging": webhook_lags(endpoint=endpoint)})

    @extend_schema(
        summary="Change a webhook endpoint (a new url needs scope read too)",
        request=WebhookPatch,
        responses=WebhookOut,
    )
    @problems(PARSED_BODY)
    @problems({400: URL_PROBLEMS + FILTER_PROBLEMS, 403: ["missing_scope"]})
    def patch(self, request: Request, pk: int) -> Response:
        data = WebhookPatch(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = _endpoint(request, pk)
        if "url" in data.validated_data:
            scope_require(principal(request), "read")
        if data.validated_data:
            endpoint = webhook_update(
                endpoint=endpoint, actor=_actor(request), **data.validated_data
            )
        return Response(_render(endpoint))

    @extend_schema(summary="Delete a webhook endpoint", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        webhook_delete(endpoint=_endpoint(request, pk), actor=_actor(request))
        return Response(status=204)


class WebhookDeliveriesApi(ManageApi):
    method_scopes = {"GET": ("read",)}

    @extend_schema(
        summary="Recent delivery attempts, newest first", responses=DeliveryOut(many=True)
    )
    def get(self, request: Request, pk: int) -> Response:
        endpoint = _endpoint(request, pk)
        rows = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-started_at", "-pk")[
            :RECENT_DELIVERIES
        ]
        return Response(
            [
                {
                    "id": d.pk,
                    "kind": d.kind,
                    "webhook_id": d.message_id,
                    "attempt": d.attempt,
                    "started_at": d.started_at,
                    "status_code": d.status_code,
                    "latency_ms": d.latency_ms,
                    "ok": d.ok,
                    "error": d.error or None,
                    "changes": d.changes,
                    "first_change": d.first_change or None,
                    "last_change": d.last_change or None,
                    "cursor_before": d.cursor_before,
                    "cursor_after": d.cursor_after,
                }
                for d in rows
            ]
        )


class WebhookPingApi(ManageApi):
    @extend_schema(summary="Send a test event", request=None, responses={202: PingOut})
    def post(self, request: Request, pk: int) -> Response:

        queued = webhook_ping_request(endpoint=_endpoint(request, pk))
        return Response({"queued": queued}, status=202)


class WebhookRotateSecretApi(ManageApi):
    @extend_schema(
        summary="Rotate the signing secret (shown once)", request=None, responses=WebhookSecretOut
    )
    def post(self, request: Request, pk: int) -> Response:
        endpoint, secret = webhook_rotate_secret(
            endpoint=_endpoint(request, pk), actor=_actor(request)
        )
        return Response(_render(endpoint, secret=secret))


class WebhookEnableApi(ManageApi):
    @extend_schema(
        summary="Re-enable an endpoint; it resumes from its cursor",
        request=None,
        responses=WebhookOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        endpoint = webhook_enable(endpoint=_endpoint(request, pk), actor=_actor(request))
        return Response(_render(endpoint))
