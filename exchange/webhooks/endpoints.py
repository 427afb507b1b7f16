"""Webhook endpoints: creating, changing, deleting them, rotating their secret,
enabling and disabling them. Each is one transaction with its audit entry.

Where a new endpoint starts. By default at the current end of the member's feed: it
receives changes committed from now on (a member that wants the current state first
pulls the feed, or asks for ``"start": "beginning"``, which delivers every signal it
may currently see, then every change).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange.client.signal_types import SIGNAL_TYPES
from exchange.feed import Cursor, Reader, advance, cursor_issue, feed_head
from exchange.models import Label, WebhookEndpoint
from exchange.webhooks.delivery.waking import webhook_wake
from exchange.webhooks.secrets import secret_encrypt, secret_generate
from exchange.webhooks.targets import webhook_target_check, webhook_url_normalize
from forum.errors import ConflictError, DomainError
from members.audit import audit_record
from members.models import Member

STARTS = ("now", "beginning")


def _check_filters(signal_types: Any, labels: Any) -> tuple[list[str], list[str]]:
    errors: list[dict[str, str]] = []
    if not isinstance(signal_types, list) or not all(isinstance(s, str) for s in signal_types):
        errors.append({"field": "signal_types", "code": "invalid", "detail": "a list of names"})
        signal_types = []
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        errors.append({"field": "labels", "code": "invalid", "detail": "a list of label slugs"})
        labels = []
    for name in signal_types:
        if name not in SIGNAL_TYPES:
            errors.append({"field": "signal_types", "code": "unknown_signal_type", "detail": name})
    known = set(Label.objects.filter(slug__in=labels).values_list("slug", flat=True))
    for slug in labels:
        if slug not in known:
            errors.append({"field": "labels", "code": "unknown_label", "detail": slug})
    if errors:
        raise DomainError(
            "; ".join(f"{e['field']}: {e['code']} {e['detail']}" for e in errors),
            code="invalid_filter",
            errors=errors,
        )
    return sorted(set(signal_types)), sorted(set(labels))


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "signal_types": endpoint.signal_types,
        "labels": endpoint.labels,
        "active": endpoint.active,
        "status": endpoint.status,
    }


def _audit(endpoint: WebhookEndpoint, action: str, actor: str, before: Any, after: Any) -> None:
    audit_record(
        actor=actor,
        action=f"webhook.{action}",
        object_type="webhook",
        object_id=f"{endpoint.member.slug}/{endpoint.pk}",
        before=before,
        after=after,
    )


def webhook_cursor_at_head(*, member_id: int) -> str:
    """A cursor at the current end of the member's feed (positions in commit order)."""

    empty = Cursor({})
    reader = Reader(member_id)
    return cursor_issue(advance(empty, reader.scans(empty), feed_head()))


def webhook_create(
    *,
    member: Member,
    url: str,
    signal_types: list[str] | None = None,
    labels: list[str] | None = None,
    description: str = "",
    start: str = "now",
    actor: str,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret; the secret is returned this once and never again."""
    url = webhook_url_normalize(url=url)
    webhook_target_check(url=url)
    types, label_slugs = _check_filters(signal_types or [], labels or [])
    if start not in STARTS:
        raise DomainError(f"start must be one of {', '.join(STARTS)}.", code="invalid_start")
    limit = settings.CORDIALE_WEBHOOK_MAX_PER_MEMBER
    secret = secret_generate()
    with transaction.atomic():
        Member.objects.select_for_update().filter(pk=member.pk).first()
        if WebhookEndpoint.objects.filter(member=member).count() >= limit:
            raise ConflictError(
                f"A member may have at most {limit} webhook endpoints.", code="too_many_webhooks"
            )
        cursor = webhook_cursor_at_head(member_id=member.pk) if start == "now" else ""
        endpoint = WebhookEndpoint.objects.create(
            member=member,
            url=url,
            description=description,
            signal_types=types,
            labels=label_slugs,
            secret_encrypted=secret_encrypt(secret),
            cursor=cursor,
            cursor_updated_at=timezone.now(),
        )
        _audit(endpoint, "created", actor, None, {**_state(endpoint), "start": start})
    if start == "beginning":
        transaction.on_commit(lambda: webhook_wake(endpoint_id=endpoint.pk), robust=True)
    return endpoint, secret


def webhook_update(*, endpoint: WebhookEndpoint, actor: str, **changes: Any) -> WebhookEndpoint:
    """Change ``url``, ``signal_types``, ``labels``, ``description`` or ``active``."""
    unknown = set(changes) - {"url", "signal_types", "labels", "description", "active"}
    if unknown:
        raise DomainError(f"Cannot change {', '.join(sorted(unknown))}.", code="invalid_request")
    if "url" in changes:
        changes["url"] = webhook_url_normalize(url=changes["url"])
        webhook_target_check(url=changes["url"])
    if "signal_types" in changes or "labels" in changes:
        changes["signal_types"], changes["labels"] = _check_filters(
            changes.get("signal_types", endpoint.signal_types),
            changes.get("labels", endpoint.labels),
        )
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(endpoint)
        for name, value in changes.items():
            setattr(endpoint, name, value)
        endpoint.save(update_fields=list(changes))
        _audit(endpoint, "updated", actor, before, _state(endpoint))
    return endpoint


def webhook_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    with transaction.atomic():
        _audit(endpoint, "deleted", actor, _state(endpoint), None)
        endpoint.delete()


def webhook_rotate_secret(*, endpoint: WebhookEndpoint, actor: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; for a grace period deliveries carry signatures by both (the Standard
    Webhooks header holds several), so the receiver can switch without losing any."""
    secret = secret_generate()
    grace = timedelta(seconds=settings.CORDIALE_WEBHOOK_SECRET_GRACE)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = timezone.now() + grace
        endpoint.secret_encrypted = secret_encrypt(secret)
        endpoint.save(
            update_fields=[
                "secret_encrypted",
                "previous_secret_encrypted",
                "previous_secret_expires_at",
            ]
        )
        _audit(
            endpoint, "secret_rotated", actor, None, {"grace_seconds": int(grace.total_seconds())}
        )
    return endpoint, secret


def webhook_enable(*, endpoint: WebhookEndpoint, actor: str) -> WebhookEndpoint:
    """Switch an endpoint on and clear its failure state; it resumes from its cursor."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(endpoint)
        endpoint.active = True
        endpoint.status = WebhookEndpoint.Status.HEALTHY
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        endpoint.next_attempt_at = None
        endpoint.attempts = 0
        endpoint.save(
            update_fields=[
                "active",
                "status",
                "disabled_reason",
                "failing_since",
                "next_attempt_at",
                "attempts",
            ]
        )
        _audit(endpoint, "enabled", actor, before, _state(endpoint))

    transaction.on_commit(lambda: webhook_wake(endpoint_id=endpoint.pk), robust=True)
    return endpoint


def webhook_disable(*, endpoint_id: int, reason: str, actor: str) -> WebhookEndpoint | None:
    """Mark an endpoint disabled by the server (failing past the horizon)."""
    with transaction.atomic():
        endpoint = (
            WebhookEndpoint.objects.select_for_update()
            .select_related("member")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None or endpoint.status == WebhookEndpoint.Status.DISABLED:
            return None
        before = _state(endpoint)
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = reason
        endpoint.next_attempt_at = None
        endpoint.save(update_fields=["status", "disabled_reason", "next_attempt_at"])
        _audit(endpoint, "disabled", actor, before, {**_state(endpoint), "reason": reason})
    return endpoint
