"""Admin for webhook endpoints: health, lag and recent deliveries; re-enabling, deleting.

Endpoints are never edited here (members own their settings through the API); the two
changes staff make, re-enabling and deleting, go through the audited services and need
the endpoint's change and delete permissions.

Kept apart from ``exchange/admin.py``; ``ExchangeConfig.ready()`` imports it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from forum.admin_helpers import admin_actor, staff_action

from .delivery import webhook_lags
from .endpoints import webhook_delete, webhook_enable
from .models import WebhookDelivery, WebhookEndpoint


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ("started_at", "kind", "attempt", "status_code", "latency_ms", "ok", "error")
    readonly_fields = fields
    ordering = ["-started_at"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).order_by("-started_at")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "member",
        "url",
        "active",
        "status",
        "lagging",
        "cursor_updated_at",
        "last_success_at",
        "failing_since",
        "next_attempt_at",
        "attempts",
    ]
    list_filter = ["status", "active"]
    search_fields = ["member__slug", "url"]
    list_select_related = ["member"]
    readonly_fields = [
        "member",
        "status",
        "disabled_reason",
        "cursor",
        "cursor_updated_at",
        "failing_since",
        "next_attempt_at",
        "attempts",
        "last_success_at",
        "created_at",
    ]
    fields = ["url", "description", "signal_types", "labels", "active", *readonly_fields]
    inlines = [DeliveryInline]
    actions = ["enable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members create endpoints through the API, which returns the secret

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # changes go through the audited services (actions, the API)

    def has_enable_permission(self, request: HttpRequest) -> bool:
        # The endpoint's fields are read-only here, yet re-enabling is a change of it.
        return request.user.has_perm("exchange.change_webhookendpoint")

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:

        webhook_delete(endpoint=obj, actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:

        with transaction.atomic():
            for endpoint in queryset.select_related("member"):
                webhook_delete(endpoint=endpoint, actor=admin_actor(request))

    @admin.display(boolean=True, description="lagging")
    def lagging(self, obj: WebhookEndpoint) -> bool:

        return webhook_lags(endpoint=obj)

    @staff_action(
        permissions=["enable"], description="Re-enable (clear failures, resume from the cursor)"
    )
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:

        for endpoint in queryset.select_related("member"):
            webhook_enable(endpoint=endpoint, actor=admin_actor(request))
        messages.success(request, f"Re-enabled {queryset.count()} endpoint(s).")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "endpoint",
        "kind",
        "attempt",
        "status_code",
        "latency_ms",
        "ok",
        "changes",
        "error",
    ]
    list_filter = ["ok", "kind"]
    list_select_related = ["endpoint__member"]
    search_fields = ["endpoint__member__slug", "endpoint__url", "message_id"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the delivery log; old attempts are pruned by the retention sweep
