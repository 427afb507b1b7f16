"""Delivering: sending an endpoint everything it lags behind, in feed order, with
retries and backoff; one-off events (ping, incident declared); the sweep.

See the package docstring for how these fit together."""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import QuerySet
from django.utils import timezone

from exchange.feed import ResyncRequired
from exchange.models import Incident, WebhookDelivery, WebhookEndpoint
from exchange.selectors import feed_page
from exchange.webhooks.endpoints import webhook_disable
from forum.actors import SYSTEM_ACTOR

from .pages import endpoint_page, shared_feed_page
from .sending import SendResult, attempt_record, batch_message_id, send_signed
from .waking import (
    BUSY_RETRY,
    MEMBER_BUSY_RETRY,
    PRIORITY_QUEUE,
    deliverable_endpoints,
    endpoint_lock,
    member_defer,
    member_handoff,
    member_slot,
    ping_claim,
    ping_release,
    publish_task,
    wake_release,
    webhook_wake,
)

logger = logging.getLogger(__name__)


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: uniform in [base·2ⁿ⁻¹ / 2, base·2ⁿ⁻¹], capped."""
    base = float(settings.CORDIALE_WEBHOOK_RETRY_BASE)
    cap = float(settings.CORDIALE_WEBHOOK_RETRY_MAX)
    ceiling = min(cap, base * 2 ** min(attempts - 1, 30))
    return random.uniform(ceiling / 2, ceiling)


def _still_ours(endpoint: WebhookEndpoint) -> QuerySet[WebhookEndpoint]:
    """The endpoint's row if its cursor is still the one this delivery read it at.

    The endpoint lock is a session lock: if this delivery's connection dropped (and Django
    reconnected), another delivery may have taken the endpoint over and moved its cursor
    on. Every write of a delivery therefore compares the cursor too, and updates nothing
    once it moved: an older cursor written back would send everything after it again.
    """
    return WebhookEndpoint.objects.filter(pk=endpoint.pk, cursor=endpoint.cursor)


def _advance(endpoint: WebhookEndpoint, cursor: str, **fields: Any) -> bool:
    """Store ``cursor`` if the endpoint is still where this delivery found it."""
    if not _still_ours(endpoint).update(cursor=cursor, cursor_updated_at=timezone.now(), **fields):
        logger.warning("webhook %s: another delivery took over; this one stops", endpoint.pk)
        return False
    endpoint.cursor = cursor
    return True


def _succeeded(endpoint: WebhookEndpoint, cursor: str, now: datetime) -> bool:
    advanced = _advance(
        endpoint,
        cursor,
        status=WebhookEndpoint.Status.HEALTHY,
        attempts=0,
        failing_since=None,
        next_attempt_at=None,
        last_success_at=now,
    )
    if advanced:
        endpoint.attempts = 0
    return advanced


def _failed(endpoint: WebhookEndpoint, result: SendResult, now: datetime) -> None:
    failing_since = endpoint.failing_since or now
    horizon = timedelta(seconds=settings.CORDIALE_WEBHOOK_DISABLE_AFTER)
    if now - failing_since >= horizon:
        reason = (
            f"Deliveries failed for {horizon} since {failing_since:%Y-%m-%d %H:%M} UTC "
            f"({endpoint.attempts + 1} attempts); last error: {result.error}. Fix the receiver "
            "and re-enable the endpoint: it resumes where it stopped."
        )
        disabled = webhook_disable(endpoint_id=endpoint.pk, reason=reason, actor=SYSTEM_ACTOR)
        if disabled is not None:
            mail_admins(
                f"Webhook disabled: {disabled.member.slug} {disabled.url}",
                f"Endpoint {disabled.pk} of member {disabled.member.slug} was disabled.\n\n"
                f"{reason}\n",
                fail_silently=True,
            )
            logger.warning("webhook %s disabled: %s", endpoint.pk, reason)
        return
    delay = backoff_seconds(endpoint.attempts + 1)
    if _still_ours(endpoint).update(
        status=WebhookEndpoint.Status.FAILING,
        attempts=endpoint.attempts + 1,
        failing_since=failing_since,
        next_attempt_at=now + timedelta(seconds=delay),
    ):
        webhook_wake(endpoint_id=endpoint.pk, countdown=delay)


def _deliver_locked(endpoint_id: int, deadline: float) -> str:
    endpoint = WebhookEndpoint.objects.select_related("member").filter(pk=endpoint_id).first()
    if endpoint is None:
        return "gone"
    if not endpoint.deliverable:
        return "paused"
    now = timezone.now()
    if endpoint.next_attempt_at is not None and endpoint.next_attempt_at > now:
        return "backing_off"
    with member_slot(endpoint.member_id) as got:
        if not got:
            member_defer(member_id=endpoint.member_id, endpoint_id=endpoint.pk)
            return "member_busy"
        outcome = _send_pages(endpoint, deadline)
    member_handoff(member_id=endpoint.member_id)
    return outcome


def _send_pages(endpoint: WebhookEndpoint, deadline: float) -> str:
    size = int(settings.CORDIALE_WEBHOOK_BATCH)
    while True:
        try:
            page = shared_feed_page(
                member_id=endpoint.member_id, cursor=endpoint.cursor, limit=size
            )
        except ResyncRequired:
            _resync(endpoint)
            continue
        cursor = page.cursor
        selected = endpoint_page(page, endpoint)
        if selected.count:
            message_id = batch_message_id(endpoint.pk, endpoint.cursor, cursor)
            started_at = timezone.now()
            result = send_signed(endpoint, message_id, selected.body)
            attempt_record(
                endpoint,
                kind=WebhookDelivery.Kind.CHANGES,
                message_id=message_id,
                result=result,
                batch=selected,
                cursor_before=endpoint.cursor,
                started_at=started_at,
            )
            if not result.ok:
                _failed(endpoint, result, timezone.now())
                return "failed"
            if not _succeeded(endpoint, cursor, timezone.now()):
                return "lost"
        elif cursor != endpoint.cursor and not _advance(endpoint, cursor):
            return "lost"
        if not page.has_more:
            return "caught_up"
        if time.monotonic() > deadline:
            return "budget"


def _resync(endpoint: WebhookEndpoint) -> None:
    """Start the endpoint over from the beginning of its member's feed: its cursor belongs
    to a history the database does not hold (``exchange.feed``, "Restores"). The stored
    cursor comes from the same backup as the feed, so this is not expected; if it happens,
    the endpoint receives its whole feed again rather than skip anything."""
    logger.warning(
        "webhook %s: cursor not in this feed's history; resending from the start", endpoint.pk
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk, cursor=endpoint.cursor).update(
        cursor="", cursor_updated_at=timezone.now()
    )
    endpoint.cursor = ""


def webhook_lags(*, endpoint: WebhookEndpoint) -> bool:
    """Does the feed hold anything past the endpoint's cursor? (One row's worth of work.)"""
    try:
        changes, cursor, has_more = feed_page(
            member_id=endpoint.member_id, cursor=endpoint.cursor or None, limit=1
        )
    except ResyncRequired:
        return True  # the delivery starts it over
    return bool(changes) or has_more or cursor != endpoint.cursor


def webhook_deliver(*, endpoint_id: int) -> str:
    """Send everything the endpoint lags behind, in order; safe to run any number of times.

    Returns what happened: ``caught_up``, ``busy`` (another delivery holds the endpoint),
    ``member_busy`` (the member's deliveries hold all its slots: tried again shortly),
    ``failed`` (a retry is scheduled), ``backing_off``, ``paused``, ``gone``, ``budget``
    (ran out of its time slice and re-enqueued itself) or ``lost`` (its connection, and
    with it the endpoint's lock, dropped and another delivery moved the cursor on: this
    one stopped without writing).
    """
    deadline = time.monotonic() + float(settings.CORDIALE_WEBHOOK_TASK_BUDGET)
    wake_release(endpoint_id)
    while True:
        with endpoint_lock(endpoint_id) as got:
            if not got:
                return "busy"
            outcome = _deliver_locked(endpoint_id, deadline)
        if outcome == "budget":
            webhook_wake(endpoint_id=endpoint_id)
            return outcome
        if outcome == "member_busy":
            webhook_wake(endpoint_id=endpoint_id, countdown=random.uniform(*MEMBER_BUSY_RETRY))
            return outcome
        if outcome != "caught_up":
            return outcome
        # A wake-up that arrived while the lock was held found it busy and left; rows it
        # announced committed before it, so one look after unlocking catches them.
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is None or not webhook_lags(endpoint=endpoint):
            return outcome


def _send_event(
    endpoint: WebhookEndpoint, *, kind: str, event: dict[str, Any], message_id: str = ""
) -> bool:
    """POST one signed event (not feed changes) now and log the attempt."""
    message_id = message_id or f"msg_{secrets.token_hex(16)}"
    body = orjson.dumps(event)
    started_at = timezone.now()
    result = send_signed(endpoint, message_id, body)
    endpoint.attempts = 0
    attempt_record(
        endpoint,
        kind=kind,
        message_id=message_id,
        result=result,
        started_at=started_at,
    )
    return result.ok


def _event_locked(endpoint_id: int, send: Callable[[WebhookEndpoint], bool]) -> bool | None:
    """Run ``send`` holding the endpoint's lock and one of its member's slots, like a
    delivery: an event never runs beside another request to the same endpoint, nor
    past the member's share of the workers. None when either is busy: try again later."""
    with endpoint_lock(endpoint_id) as got:
        if not got:
            return None
        endpoint = WebhookEndpoint.objects.select_related("member").filter(pk=endpoint_id).first()
        if endpoint is None or not endpoint.member.is_active:
            return False
        with member_slot(endpoint.member_id) as slot:
            return send(endpoint) if slot else None


def webhook_ping_request(*, endpoint: WebhookEndpoint) -> bool:
    """Queue a ping unless one is already queued or in flight (it answers the same
    question); True when a ping is pending either way."""
    from exchange.tasks import deliver_ping

    if not ping_claim(endpoint.pk):
        return True
    if publish_task(deliver_ping, args=[endpoint.pk]):
        return True
    ping_release(endpoint.pk)
    return False


def webhook_ping(*, endpoint_id: int) -> bool:
    """Send ``{"type": "ping"}`` now, whatever the endpoint's health; logs the attempt."""
    from exchange.tasks import deliver_ping

    def send(endpoint: WebhookEndpoint) -> bool:
        event = {"type": "ping", "cursor": endpoint.cursor}
        return _send_event(endpoint, kind=WebhookDelivery.Kind.PING, event=event)

    sent = _event_locked(endpoint_id, send)
    later = random.uniform(*BUSY_RETRY)
    if sent is None and publish_task(deliver_ping, args=[endpoint_id], countdown=later):
        return False  # the flag stays up: this ping is still pending
    ping_release(endpoint_id)  # done (or given up): the next request queues a new one
    return bool(sent)


def webhook_incident_declared(*, endpoint_id: int, incident_id: int) -> bool:
    """Send ``{"type": "incident.declared", "incident": {...}}`` to one endpoint.

    Sent once, like a ping: the incident's label is also in the directory, so a missed
    announcement costs a receiver the early warning, not the statements themselves.
    """
    from exchange.tasks import deliver_incident_declared

    incident = Incident.objects.select_related("label").filter(pk=incident_id).first()
    if incident is None:
        return False

    def send(endpoint: WebhookEndpoint) -> bool:
        if not endpoint.deliverable:
            return False
        event = {
            "type": "incident.declared",
            "incident": {
                "name": incident.name,
                "slug": incident.slug,
                "label": incident.label.slug,
                "description": incident.description,
                "declared_at": incident.declared_at.isoformat(),
            },
        }
        # A task run twice sends the same webhook-id, which receivers use to drop repeats.
        digest = hashlib.sha256(f"incident\n{incident.pk}\n{endpoint.pk}".encode()).hexdigest()
        return _send_event(
            endpoint, kind=WebhookDelivery.Kind.EVENT, event=event, message_id=f"msg_{digest[:32]}"
        )

    sent = _event_locked(endpoint_id, send)
    if sent is None:
        publish_task(
            deliver_incident_declared,
            args=[endpoint_id, incident_id],
            queue=PRIORITY_QUEUE,
            countdown=random.uniform(*BUSY_RETRY),
        )
    return bool(sent)


def webhooks_announce_incident(*, incident_id: int) -> int:
    """After a declaration commits: queue the event for every active member's endpoints."""
    from exchange.tasks import deliver_incident_declared

    endpoints = WebhookEndpoint.objects.deliverable().values_list("pk", flat=True)
    count = 0
    for endpoint_id in endpoints:
        if publish_task(
            deliver_incident_declared, args=[endpoint_id, incident_id], queue=PRIORITY_QUEUE
        ):
            count += 1
    return count


def webhooks_sweep() -> int:
    """Wake every deliverable endpoint that lags behind its feed; prune old attempts."""
    woken = 0
    for endpoint in deliverable_endpoints().only("pk", "member_id", "cursor").iterator():
        if webhook_lags(endpoint=endpoint) and webhook_wake(endpoint_id=endpoint.pk):
            woken += 1
    keep = timedelta(seconds=settings.CORDIALE_WEBHOOK_DELIVERY_RETENTION)
    WebhookDelivery.objects.filter(started_at__lt=timezone.now() - keep).delete()
    return woken
