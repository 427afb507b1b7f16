"""Documentation-only serializers: the webhook API's answers, for the OpenAPI schema.

The views render plain dicts (``exchange.webhooks.apis._render``); these say what those
hold, and the schemathesis run checks the answers against them.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# What creating or re-pointing an endpoint can answer about its URL and filters
# (exchange/webhooks/targets.py, endpoints.py).
URL_PROBLEMS = ["invalid_url", "port_not_allowed", "unresolvable_host", "private_address"]
FILTER_PROBLEMS = ["invalid_filter"]
WEBHOOK_STATUSES = ["healthy", "failing", "disabled"]


class WebhookOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    signal_types = serializers.ListField(child=serializers.CharField(), help_text="[]: all")
    labels = serializers.ListField(child=serializers.CharField(), help_text="[]: all")
    active = serializers.BooleanField(help_text="Switched on by the member")
    status = serializers.ChoiceField(choices=WEBHOOK_STATUSES)
    disabled_reason = serializers.CharField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField(help_text="Failed attempts in a row")
    last_success_at = serializers.DateTimeField(allow_null=True)
    cursor = serializers.CharField(allow_blank=True, help_text="Feed position delivered up to")
    cursor_updated_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class WebhookSecretOut(WebhookOut):
    secret = serializers.CharField(help_text="`whsec_...`: shown this once, never again")


class WebhookDetailOut(WebhookOut):
    lagging = serializers.BooleanField(help_text="The feed holds changes not delivered yet")


class DeliveryOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["changes", "ping", "event"])
    webhook_id = serializers.CharField(help_text="The `webhook-id` header sent")
    attempt = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    changes = serializers.IntegerField()
    first_change = serializers.CharField(allow_null=True)
    last_change = serializers.CharField(allow_null=True)
    cursor_before = serializers.CharField(allow_blank=True)
    cursor_after = serializers.CharField(allow_blank=True)


class PingOut(serializers.Serializer[Any]):
    queued = serializers.BooleanField(help_text="A ping is queued or in flight")
