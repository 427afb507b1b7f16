"""Webhook endpoints and their delivery log (imported by ``exchange.models``).

An endpoint is a consumer of its member's change feed with its own cursor; Celery only
wakes it up (see ``exchange/webhooks/delivery/``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from members.models import Member


class WebhookEndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    def switched_on(self) -> WebhookEndpointQuerySet:
        """Endpoints on: the member's switch up and not disabled by the server."""
        return self.filter(active=True).exclude(status=WebhookEndpoint.Status.DISABLED)

    def deliverable(self) -> WebhookEndpointQuerySet:
        """Endpoints that may receive: switched on and their member active (the rule
        ``WebhookEndpoint.deliverable`` states for one endpoint)."""
        return self.switched_on().filter(member__status=Member.Status.ACTIVE)


class WebhookEndpoint(models.Model):
    """A member's URL that receives its change feed, signed per Standard Webhooks.

    ``active`` is the member's switch; ``status`` is the server's view of its health.
    An endpoint the server disabled (``status`` ``disabled``) stays disabled until the
    member re-enables it, and then resumes from ``cursor``: nothing is skipped.
    """

    class Status(models.TextChoices):
        HEALTHY = "healthy"
        FAILING = "failing"
        DISABLED = "disabled"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    signal_types = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HEALTHY)
    disabled_reason = models.TextField(blank=True)
    # Fernet tokens of the ``whsec_`` secrets (see ``exchange/webhooks/secrets.py``). The
    # previous secret keeps signing next to the new one for a grace period after rotation.
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    cursor = models.TextField(blank=True)
    cursor_updated_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        app_label = "exchange"
        indexes = [models.Index(fields=["active", "status"], name="webhook_active_status")]

    def __str__(self) -> str:
        return f"{self.member.slug}:{self.url}"

    @property
    def deliverable(self) -> bool:
        """May receive: the rule of ``WebhookEndpointQuerySet.deliverable``, for one
        endpoint (reads its member)."""
        return self.active and self.status != self.Status.DISABLED and self.member.is_active


class WebhookDelivery(models.Model):
    """One attempt to POST one batch (or a ping) to an endpoint."""

    class Kind(models.TextChoices):
        CHANGES = "changes"
        PING = "ping"
        EVENT = "event"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CHANGES)
    message_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    changes = models.PositiveIntegerField(default=0)
    first_change = models.CharField(max_length=200, blank=True)
    last_change = models.CharField(max_length=200, blank=True)
    cursor_before = models.TextField(blank=True)
    cursor_after = models.TextField(blank=True)

    class Meta:
        app_label = "exchange"
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["endpoint", "-started_at"], name="delivery_endpoint_time")]
