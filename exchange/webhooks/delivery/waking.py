"""Waking endpoints up: publishing tasks, fan-out, wake flags and the endpoint lock.

See the package docstring for how these fit together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from exchange.db import is_postgres
from exchange.models import CurrentStatement, Incident, WebhookEndpoint
from members.models import GroupMembership

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x5748  # "WH": endpoint locks are (namespace << 32) | endpoint id
# "WM": member slots are (namespace << 48) | (member id << 8) | slot, apart from the
# endpoint locks (below 2⁴⁷) for any member id under 2⁴⁰.
_SLOT_NAMESPACE = 0x574D
_MAX_SLOTS = 256
# Consumed before every other queue (CELERY_BROKER_TRANSPORT_OPTIONS in the settings).
PRIORITY_QUEUE = "priority"
USER_AGENT = "Cordiale-Webhooks/1"

# --- waking up -------------------------------------------------------------------------

_broker_down_until = 0.0
_BROKER_BACKOFF = 5.0


def publish_task(task: Any, *, args: Iterable[Any] = (), **options: Any) -> bool:
    """Publish a task; log broker errors instead of raising them (the sweep recovers).

    After a failure, publishing is skipped for a few seconds so that a Redis outage does
    not cost every submission a connection attempt.
    """
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return False
    try:
        task.apply_async(args=list(args), **options)
    except Exception as exc:
        _broker_down_until = time.monotonic() + _BROKER_BACKOFF
        logger.warning("could not publish %s (the webhook sweep will recover): %s", task.name, exc)
        return False
    return True


def _eager() -> bool:

    return bool(current_app.conf.task_always_eager)


def webhooks_wake_on_feed(*, audiences: list[int], rows: list[tuple[int, int]]) -> None:
    """The feed listener (registered in ``ExchangeConfig.ready``): feed rows committed,
    publish the fan-out that wakes the endpoints concerned.

    ``rows`` are the ``(audience, signal_id)`` pairs appended; they let the wake-up
    pick out the audiences that must hear about an active incident first.
    """
    from exchange.tasks import fanout_feed_changed

    # Most forums have far fewer endpoints than submissions; skip the broker when idle.
    if not WebhookEndpoint.objects.switched_on().exists():
        return
    urgent = _incident_audiences(rows)
    if urgent:
        publish_task(fanout_feed_changed, args=[urgent, True], queue=PRIORITY_QUEUE)
    publish_task(fanout_feed_changed, args=[audiences])


def _incident_audiences(rows: list[tuple[int, int]]) -> list[int]:
    """Audiences of ``rows`` whose signal has a live statement carrying the label of an
    active incident. One cheap query when no incident is declared, which is the norm."""

    if not rows:
        return []
    slugs = set(
        Incident.objects.filter(ended_at__isnull=True).values_list("label__slug", flat=True)
    )
    if not slugs:
        return []
    signals = {signal for _, signal in rows}
    urgent: set[int] = set()
    for signal_id, labels in (
        CurrentStatement.objects.filter(signal_id__in=signals, audience__isnull=False)
        .values_list("signal_id", "statement__labels")
        .iterator()
    ):
        if isinstance(labels, list) and slugs.intersection(labels):
            urgent.add(signal_id)
    return sorted({audience for audience, signal in rows if signal in urgent})


def _due(now: datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def deliverable_endpoints(now: datetime | None = None) -> Any:
    """Endpoints that may be sent to now: on, not disabled, member active, not backing off."""
    now = now or timezone.now()
    return WebhookEndpoint.objects.deliverable().filter(_due(now))


def webhooks_fanout(*, audiences: list[int] | None, urgent: bool = False) -> int:
    """Enqueue a delivery for each endpoint whose member reads one of ``audiences``.

    ``urgent`` (an active incident's statement changed): publish on the priority queue,
    ignoring the wake flag, whose queued delivery may sit behind a routine backlog. The
    delivery still sends the endpoint's next batches in feed order, only sooner; if the
    routine one runs later, it finds nothing left to send.
    """
    endpoints = deliverable_endpoints()
    if audiences is not None and 0 not in audiences:
        groups = [a for a in audiences if a > 0]
        member_ids = {-a for a in audiences if a < 0}
        member_ids.update(
            GroupMembership.objects.filter(group_id__in=groups).values_list("member_id", flat=True)
        )
        endpoints = endpoints.filter(member_id__in=member_ids)
    endpoint_ids = list(endpoints.values_list("pk", flat=True))
    queued = set() if urgent else _queued_wakes(endpoint_ids)
    count = 0
    for endpoint_id in endpoint_ids:
        if urgent:
            if webhook_wake(endpoint_id=endpoint_id, queue=PRIORITY_QUEUE):
                count += 1
        elif endpoint_id not in queued and _claim_wake(endpoint_id):
            if webhook_wake(endpoint_id=endpoint_id):
                count += 1
            else:
                wake_release(endpoint_id)
    return count


# One queued wake-up per endpoint is enough: a delivery reads the feed after it clears
# the flag, so rows committed before that are read by it and rows committed after set
# the flag again. Under load this folds a burst of commits into one delivery instead of
# one per commit per endpoint. The flag lives in the cache (Redis) with a TTL; if it is
# lost or stale, the sweep (which ignores it) still wakes a lagging endpoint.
_WAKE_FLAG = "webhook-wake:{}"
_WAKE_FLAG_TTL = 60


def _claim_wake(endpoint_id: int) -> bool:
    try:
        return bool(cache.add(_WAKE_FLAG.format(endpoint_id), 1, _WAKE_FLAG_TTL))
    except Exception:
        return True  # no cache, no coalescing


def _queued_wakes(endpoint_ids: list[int]) -> set[int]:
    """Endpoints whose flag is up, read in one round trip: under load most of them, which
    then need no claim of their own (the delivery that clears the flag reads our rows)."""
    try:
        found = cache.get_many([_WAKE_FLAG.format(e) for e in endpoint_ids])
    except Exception:
        return set()
    return {e for e in endpoint_ids if _WAKE_FLAG.format(e) in found}


def wake_release(endpoint_id: int) -> None:
    """Lower the endpoint's wake flag: the next feed change queues a delivery again."""
    try:
        cache.delete(_WAKE_FLAG.format(endpoint_id))
    except Exception:
        logger.debug("could not clear the wake flag of webhook %s", endpoint_id)


def webhook_wake(
    *, endpoint_id: int, countdown: float | None = None, queue: str | None = None
) -> bool:
    from exchange.tasks import deliver_endpoint

    if countdown is not None and _eager():
        # In process there is no clock to wait on: the next feed change retries it.
        return False
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    if queue is not None:
        options["queue"] = queue
    return publish_task(deliver_endpoint, args=[endpoint_id], **options)


# --- the lock --------------------------------------------------------------------------

_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def endpoint_lock(endpoint_id: int) -> Iterator[bool]:
    """Yields whether this process now holds the endpoint; never waits.

    PostgreSQL: a session advisory lock, released here or when the connection dies with
    a killed worker. (Workers therefore need a session, not a transaction-pooled, database
    connection.) SQLite: a lock in this process, enough for the embedded mode.
    """
    if not is_postgres():
        with _local_locks_guard:
            lock = _local_locks.setdefault(endpoint_id, threading.Lock())
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
        return
    key = (_LOCK_NAMESPACE << 32) | endpoint_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextmanager
def member_slot(member_id: int) -> Iterator[bool]:
    """Yields whether this process now holds one of the member's delivery slots; never waits.

    A member has ``CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER`` slots over all workers, so
    its endpoints (however many, however slow) never occupy more delivery processes than
    that, and other members' deliveries always find a free one. PostgreSQL: session
    advisory locks, the first free slot taken in one statement (the filter runs row by
    row, so it locks at most one). SQLite, the embedded mode where tasks run in the
    request's process: no shared pool to protect, every call gets a slot.
    """
    if not is_postgres():
        yield True
        return
    slots = min(max(1, int(settings.CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER)), _MAX_SLOTS)
    first = (_SLOT_NAMESPACE << 48) | (member_id << 8)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k FROM generate_series(%s::bigint, %s::bigint) AS k "
            "WHERE pg_try_advisory_lock(k) LIMIT 1",
            [first, first + slots - 1],
        )
        row = cursor.fetchone()
    key = None if row is None else int(row[0])
    try:
        yield key is not None
    finally:
        if key is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


# A task that found its endpoint or its member busy tries again this much later (jittered
# so that a member's deferred endpoints do not come back in one burst).
BUSY_RETRY = (0.5, 1.5)

# A delivery that found its member's slots full marks its endpoint deferred; whoever
# frees one of the member's slots wakes one deferred endpoint at once (``member_handoff``),
# so the slots never sit idle for the retry's jitter while the member has work. The
# retry above stays as the fallback for a lost flag or a holder that died.
_DEFERRED_FLAG = "webhook-deferred:{}"
_MEMBER_DEFERRED_FLAG = "webhook-member-deferred:{}"
_DEFERRED_TTL = 60


# The fallback retry of a deferred endpoint: later than BUSY_RETRY, since the hand-off
# normally wakes it first and every retry that finds the slots still full is wasted work.
MEMBER_BUSY_RETRY = (2.0, 4.0)


def member_defer(*, member_id: int, endpoint_id: int) -> None:
    """Mark the endpoint as waiting for one of its member's slots.

    Its wake flag goes up again too: the delivery that the hand-off (or the fallback
    retry) starts lowers it first and reads every row committed before that, so feed
    changes meanwhile need not queue more deliveries that would only find the member
    busy again.
    """
    try:
        cache.set_many(
            {_DEFERRED_FLAG.format(endpoint_id): 1, _MEMBER_DEFERRED_FLAG.format(member_id): 1},
            _DEFERRED_TTL,
        )
        cache.add(_WAKE_FLAG.format(endpoint_id), 1, _WAKE_FLAG_TTL)
    except Exception:
        logger.debug("could not mark webhook %s deferred", endpoint_id)


def member_handoff(*, member_id: int) -> int | None:
    """After freeing one of the member's slots: wake one endpoint that waited for it.

    One cache read when nobody waits. Claiming a deferred endpoint is deleting its flag,
    which succeeds for one caller only, so two releases never wake the same endpoint
    twice for one slot. Returns the endpoint woken, if any.
    """
    try:
        if cache.get(_MEMBER_DEFERRED_FLAG.format(member_id)) is None:
            return None
        endpoint_ids = list(
            WebhookEndpoint.objects.filter(member_id=member_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        flags = cache.get_many([_DEFERRED_FLAG.format(e) for e in endpoint_ids])
        waiting = [e for e in endpoint_ids if _DEFERRED_FLAG.format(e) in flags]
        if not waiting:
            cache.delete(_MEMBER_DEFERRED_FLAG.format(member_id))
            return None
        for endpoint_id in waiting:
            if cache.delete(_DEFERRED_FLAG.format(endpoint_id)):
                webhook_wake(endpoint_id=endpoint_id)
                return endpoint_id
    except Exception:
        logger.debug("could not hand member %s's slot on", member_id)
    return None


# One ping queued or in flight per endpoint: more would only queue work behind a receiver
# that may be slow. The flag outlives any ping (queue wait, the lock, one attempt).
_PING_FLAG = "webhook-ping:{}"


def _ping_flag_ttl() -> int:
    return int(3 * float(settings.CORDIALE_WEBHOOK_TIMEOUT)) + 60


def ping_claim(endpoint_id: int) -> bool:
    """Raise the endpoint's ping flag; False when a ping is already pending."""
    try:
        return bool(cache.add(_PING_FLAG.format(endpoint_id), 1, _ping_flag_ttl()))
    except Exception:
        return True  # no cache, no coalescing


def ping_release(endpoint_id: int) -> None:
    try:
        cache.delete(_PING_FLAG.format(endpoint_id))
    except Exception:
        logger.debug("could not clear the ping flag of webhook %s", endpoint_id)
