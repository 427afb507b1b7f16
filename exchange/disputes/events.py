"""Webhook events of disputes: ``dispute.opened`` and ``dispute.decided``.

Each event is owed to the webhook endpoints of the dispute's parties and of its opener,
and kept as an outbox row (``DisputeEvent``) written in the transaction that opened or
decided the dispute, so that it is delivered at least once whatever fails in between:
a task publishes on commit, a failed attempt is retried with the deliveries' backoff,
and ``dispute_events_sweep`` (celery beat) publishes whatever is due and was lost.

The body is built when it is sent, as the API would answer the endpoint's member at
that moment::

    {"type": "dispute.opened", "dispute": <GET /api/v1/disputes/<id> as that member>}

and only while the member may see the dispute (``exchange/disputes/selectors.py``): a
member that has lost sight of the signal since gets nothing (the row is ``dropped``),
so an event never tells a member more than the API would. Signed per Standard Webhooks
with the endpoint's secret, like feed deliveries; ``webhook-id`` is derived from the
row, the same for every attempt, so receivers drop repeats. Events go out beside the
feed's batches, not in feed order: the snapshot's ``opinions.disputed`` and
``decisions`` reach the same member through the feed.
"""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange.models import Dispute, DisputeEvent, WebhookDelivery, WebhookEndpoint
from exchange.webhooks.delivery import (
    backoff_seconds,
    endpoint_lock,
    member_slot,
    publish_task,
)
from exchange.webhooks.delivery.sending import attempt_record, send_signed

from .selectors import dispute_get_visible, dispute_view

logger = logging.getLogger(__name__)

BUSY_RETRY = (0.5, 1.5)
# A row not sent this long after it was written lost its task (a broker outage): the
# sweep publishes it again.
LOST_AFTER = timedelta(seconds=30)


def dispute_events_schedule(*, dispute: Dispute, type: str) -> int:
    """Owe ``type`` to the endpoints of the dispute's parties and opener; publish on
    commit. Inside the transaction that changed the dispute."""
    members = set(dispute.parties.values_list("member_id", flat=True))
    if dispute.opener_id is not None:
        members.add(dispute.opener_id)
    endpoints = list(
        WebhookEndpoint.objects.switched_on()
        .filter(member_id__in=members)
        .values_list("pk", flat=True)
    )
    DisputeEvent.objects.bulk_create(
        [DisputeEvent(dispute=dispute, endpoint_id=e, type=type) for e in endpoints],
        ignore_conflicts=True,
    )
    ids = list(
        DisputeEvent.objects.filter(
            dispute=dispute, type=type, delivered_at__isnull=True, dropped=False
        ).values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: [_publish(i) for i in ids], robust=True)
    return len(ids)


def _publish(event_id: int, countdown: float | None = None) -> bool:
    from exchange.tasks import deliver_dispute_event

    options = {} if countdown is None else {"countdown": countdown}
    return publish_task(deliver_dispute_event, args=[event_id], **options)


def _message_id(event: DisputeEvent) -> str:
    digest = hashlib.sha256(f"dispute-event\n{event.pk}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def dispute_event_deliver(*, event_id: int) -> str:
    """Send one event if it is due; safe to run any number of times. Returns
    ``delivered``, ``failed`` (a retry is scheduled), ``dropped`` (the member may not see
    the dispute now), ``busy`` (tried again shortly), ``paused`` (the endpoint may not
    receive now; the sweep tries again), ``done`` (nothing left to do) or ``backing_off``."""
    event = DisputeEvent.objects.filter(pk=event_id).first()
    if event is None or event.delivered_at is not None or event.dropped:
        return "done"
    now = timezone.now()
    if event.next_attempt_at is not None and event.next_attempt_at > now:
        return "backing_off"
    with endpoint_lock(event.endpoint_id) as got:
        if not got:
            _publish(event_id, countdown=random.uniform(*BUSY_RETRY))
            return "busy"
        endpoint = (
            WebhookEndpoint.objects.select_related("member").filter(pk=event.endpoint_id).first()
        )
        if endpoint is None or not endpoint.deliverable:
            # Paused (member suspended, endpoint off or disabled): the sweep looks again
            # after the longest backoff, not at every round.
            later = now + timedelta(seconds=float(settings.CORDIALE_WEBHOOK_RETRY_MAX))
            DisputeEvent.objects.filter(pk=event_id).update(next_attempt_at=later)
            return "paused"
        with member_slot(endpoint.member_id) as slot:
            if not slot:
                _publish(event_id, countdown=random.uniform(*BUSY_RETRY))
                return "busy"
            return _send(event, endpoint)


def _send(event: DisputeEvent, endpoint: WebhookEndpoint) -> str:
    dispute = dispute_get_visible(member=endpoint.member, dispute_id=event.dispute_id)
    if dispute is None:
        DisputeEvent.objects.filter(pk=event.pk).update(dropped=True)
        return "dropped"
    body = orjson.dumps(
        {"type": event.type, "dispute": dispute_view(dispute=dispute, member=endpoint.member)}
    )
    started_at = timezone.now()
    message_id = _message_id(event)
    result = send_signed(endpoint, message_id, body)
    endpoint.attempts = event.attempts  # the attempt number the log shows
    attempt_record(
        endpoint,
        kind=WebhookDelivery.Kind.EVENT,
        message_id=message_id,
        result=result,
        started_at=started_at,
    )
    if result.ok:
        DisputeEvent.objects.filter(pk=event.pk).update(delivered_at=timezone.now())
        return "delivered"
    delay = backoff_seconds(event.attempts + 1)
    DisputeEvent.objects.filter(pk=event.pk).update(
        attempts=event.attempts + 1, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    _publish(event.pk, countdown=delay)
    return "failed"


def dispute_events_sweep() -> int:
    """Publish every pending event that is due and whose task may have been lost."""
    now = timezone.now()
    due = DisputeEvent.objects.filter(delivered_at__isnull=True, dropped=False).filter(
        Q(next_attempt_at__lte=now)
        | Q(next_attempt_at__isnull=True, created_at__lte=now - LOST_AFTER)
    )
    published = 0
    for event_id in due.values_list("pk", flat=True)[:10_000]:
        if _publish(event_id):
            published += 1
    return published
