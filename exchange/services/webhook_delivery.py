"""Delivering the change feed to webhook endpoints.

Each endpoint is a consumer of its member's change feed, with its own cursor in
PostgreSQL. Celery only wakes endpoints up; it is never the only copy of anything:

- when feed rows commit, ``webhooks_schedule_wake`` publishes one fan-out task (after
  the commit, and a broker error is logged, never raised: a submission does not fail
  because Redis is down);
- the fan-out task enqueues ``deliver_endpoint`` for every deliverable endpoint whose
  member may be concerned by the audiences that changed;
- ``webhook_deliver`` takes the endpoint's lock (a session advisory lock on
  PostgreSQL: never two deliveries in flight for one endpoint, and the lock dies with a
  killed worker's connection), reads the next page with the same ``feed_page`` as the
  pull API (built and encoded once for the member's endpoints at the same cursor, see
  ``shared_feed_page``), applies the endpoint's filters (an endpoint without filters
  sends the shared body as it is), POSTs the batch signed per Standard Webhooks and, on
  a 2xx answer only, stores the page's cursor; it loops while the feed has more, so
  batches leave in feed order, one at a time;
- a failure records the attempt, marks the endpoint ``failing`` and schedules a retry
  with exponential backoff and full jitter; past ``CORDIALE_WEBHOOK_DISABLE_AFTER``
  seconds of failing the endpoint is disabled and the forum admins are emailed;
- every ``CORDIALE_WEBHOOK_SWEEP_INTERVAL`` seconds the beat sweep wakes every
  endpoint whose cursor lags behind the feed, so a lost message, a Redis outage or a
  killed worker delays deliveries but loses none.

Delivery is at least once: a worker killed after the receiver answered but before the
cursor was stored sends the batch again, with the same ``webhook-id`` (derived from the
endpoint and the batch's cursors), which receivers use to drop repeats.

Filters. A snapshot passes when its type is in ``signal_types`` (if set) and one of
its statements carries one of ``labels`` (if set). A tombstone has no statements left
to read labels from; it passes on its type alone, because a deletion the receiver never
needed is harmless and a missed one is not. Changes that match no filter advance the
cursor without a request.

Suspended or expelled members' endpoints are paused: nothing is sent and the cursor
stays, so deliveries resume where they stopped if the member is reinstated.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from exchange.db import is_postgres
from exchange.models import WebhookDelivery, WebhookEndpoint
from exchange.selectors import Snapshot, feed_page
from exchange.services.webhooks import webhook_disable, webhook_target_check
from exchange.webhook_secrets import secret_decrypt
from forum.errors import DomainError
from members.models import GroupMembership, Member

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x5748  # "WH": endpoint locks are (namespace << 32) | endpoint id
SYSTEM_ACTOR = "system"
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
    from celery import current_app

    return bool(current_app.conf.task_always_eager)


def webhooks_schedule_wake(
    *, audiences: Iterable[int], rows: Iterable[tuple[int, int]] = ()
) -> None:
    """Called where feed rows are appended: wake the endpoints once the rows commit.

    ``rows`` are the ``(audience, signal_id)`` pairs appended; they let the wake-up
    pick out the audiences that must hear about an active incident first.
    """
    changed = sorted(set(audiences))
    pairs = list(rows)
    transaction.on_commit(lambda: _feed_committed(changed, pairs), robust=True)


def _feed_committed(audiences: list[int], rows: list[tuple[int, int]]) -> None:
    from exchange.tasks import fanout_feed_changed

    # Most forums have far fewer endpoints than submissions; skip the broker when idle.
    if (
        not WebhookEndpoint.objects.filter(active=True)
        .exclude(status=WebhookEndpoint.Status.DISABLED)
        .exists()
    ):
        return
    urgent = _incident_audiences(rows)
    if urgent:
        publish_task(fanout_feed_changed, args=[urgent, True], queue=PRIORITY_QUEUE)
    publish_task(fanout_feed_changed, args=[audiences])


def _incident_audiences(rows: list[tuple[int, int]]) -> list[int]:
    """Audiences of ``rows`` whose signal has a live statement carrying the label of an
    active incident. One cheap query when no incident is declared, which is the norm."""
    from exchange.models import CurrentStatement, Incident

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
    return (
        WebhookEndpoint.objects.filter(active=True, member__status=Member.Status.ACTIVE)
        .exclude(status=WebhookEndpoint.Status.DISABLED)
        .filter(_due(now))
    )


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
                _release_wake(endpoint_id)
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


def _release_wake(endpoint_id: int) -> None:
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


# --- shared pages ----------------------------------------------------------------------

# Endpoints of one member at one cursor get the same page: a member with ten endpoints
# would otherwise have the same snapshots read, assembled and encoded ten times per
# batch, which is where a fan-out spent its time. The first delivery to need a page
# builds it and encodes it once as the POST body; the body goes to the cache (Redis in
# production) for a few seconds, and an endpoint without filters sends those bytes as
# they are (only the signature is its own).
#
# Why a page from the cache is safe to deliver. The page for (member, cursor, limit)
# built at time t is exactly what a pull reader of that member reading at t got:
# - nothing is skipped: the next cursor stops at the last row the page read, and every
#   row committed after t has a higher position (feed rows are numbered in commit
#   order), so it is read from that cursor by a later page;
# - a snapshot may be older than the signal's state now, but any change after t
#   appended a feed row after t, which puts the signal in a later page with its newer
#   state: the last snapshot wins, as for a pull reader that was a few seconds late;
# - visibility was decided for this member at t (the key holds the member id; pages are
#   never shared between members), so the page holds nothing the member could not see
#   at t; what it lost since then arrives as a tombstone in a later page.
# Full pages (``has_more``) are stored for everyone. The first ``limit`` rows after a
# cursor never change once they exist (rows are numbered in commit order), so a full
# page from the cache has exactly the rows a fresh one would have. A partial page ends
# at the feed's end at t: served later it would send a short batch and then another one
# for the rows since (measured: 40% more POSTs when following the feed closely), and an
# empty one would hide new rows from a delivery that looks again at once. So a partial
# page goes only to the deliveries that were already waiting for that very build (under
# a key holding the builder's token): they asked for the page while it was being built,
# and it is at most as old as their wait. Endpoints following the feed closely, the
# common case, all ask for the same partial page at once after each commit; without
# the hand-off each of them would wait out ``_PAGE_WAIT`` for a page that never comes.
_PAGE_KEY = "webhook-page:v2:{member}:{limit}:{cursor}"
_PAGE_TTL = 5
_PAGE_WAIT = 2.0  # how long a delivery waits for a page another one is building
_PAGE_POLL = 0.005


@dataclass(frozen=True)
class SharedPage:
    """One feed page, encoded once as the body of a ``changes`` delivery.

    ``first`` and ``last`` name the first and last change (``type:value``) for the
    deliveries log.
    """

    body: bytes
    cursor: str
    has_more: bool
    count: int
    first: str
    last: str

    @classmethod
    def build(cls, changes: list[Snapshot], cursor: str, has_more: bool) -> SharedPage:
        body = orjson.dumps({"type": "changes", "changes": changes, "cursor": cursor})
        first, last = (_label(changes[0]), _label(changes[-1])) if changes else ("", "")
        return cls(body, cursor, has_more, len(changes), first, last)

    @cached_property
    def changes(self) -> list[Snapshot]:
        changes: list[Snapshot] = orjson.loads(self.body)["changes"]
        return changes

    def dumps(self) -> bytes:
        head = orjson.dumps([self.cursor, self.has_more, self.count, self.first, self.last])
        return head + b"\n" + self.body  # orjson never writes a raw newline

    @classmethod
    def loads(cls, data: bytes) -> SharedPage:
        head, body = data.split(b"\n", 1)
        cursor, has_more, count, first, last = orjson.loads(head)
        return cls(body, cursor, has_more, count, first, last)


def _label(change: Snapshot) -> str:
    return f"{change['signal_type']}:{change['value']}"[:200]


def _page_key(member_id: int, cursor: str, limit: int) -> str:
    # Cursors grow with the groups a member is in; a digest keeps the key short.
    digest = hashlib.sha256(cursor.encode()).hexdigest()[:32]
    return _PAGE_KEY.format(member=member_id, limit=limit, cursor=digest)


def _wait_for_page(key: str) -> SharedPage | None:
    """The page another delivery is building, or None if it gave up or took too long."""
    try:
        token = cache.get(f"{key}:building")
    except Exception:
        return None
    deadline = time.monotonic() + _PAGE_WAIT
    while token is not None and time.monotonic() < deadline:
        time.sleep(_PAGE_POLL)
        handed = f"{key}:{token}"
        try:
            found = cache.get_many([key, handed, f"{key}:building"])
        except Exception:
            return None
        data = found.get(key) or found.get(handed)
        if data is not None:
            return SharedPage.loads(data)
        if found.get(f"{key}:building") != token:
            return None  # the builder finished without a page for us, or died
    return None


def shared_feed_page(*, member_id: int, cursor: str, limit: int) -> SharedPage:
    """``feed_page`` for a delivery, shared by the member's endpoints at the same cursor.

    See the comment above for why a page built a few seconds ago is safe to send. When
    another delivery is building the same page, wait for it (briefly) instead of
    building it again; without a cache this is plain ``feed_page``.
    """
    key = _page_key(member_id, cursor, limit)
    token = secrets.token_hex(8)
    try:
        data = cache.get(key)
        if data is not None:
            return SharedPage.loads(data)
        building = not cache.add(f"{key}:building", token, _PAGE_TTL)
    except Exception:
        building = False
    if building:
        page = _wait_for_page(key)
        if page is not None:
            return page
    changes, next_cursor, has_more = feed_page(
        member_id=member_id, cursor=cursor or None, limit=limit
    )
    page = SharedPage.build(changes, next_cursor, has_more)
    try:
        if has_more:
            cache.set(key, page.dumps(), _PAGE_TTL)
        elif not building:
            cache.set(f"{key}:{token}", page.dumps(), math.ceil(_PAGE_WAIT))
        if not building:
            cache.delete(f"{key}:building")
    except Exception:
        logger.debug("could not share a feed page of member %s", member_id)
    return page


# --- filters and payloads --------------------------------------------------------------


def _statement_labels(jws: str) -> list[str]:
    payload = jws.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    labels = claims.get("labels") or []
    return [str(label) for label in labels] if isinstance(labels, list) else []


def change_passes(*, change: Snapshot, signal_types: list[str], labels: list[str]) -> bool:
    """The endpoint filters (see module docstring: tombstones pass on their type)."""
    if signal_types and change["signal_type"] not in signal_types:
        return False
    if not labels or change["deleted"]:
        return True
    wanted = set(labels)
    return any(wanted.intersection(_statement_labels(s["jws"])) for s in change["statements"])


def _filtered(page: SharedPage, endpoint: WebhookEndpoint) -> SharedPage:
    """The page as this endpoint receives it: the shared body itself when it has no filters."""
    if not endpoint.signal_types and not endpoint.labels:
        return page
    kept = [
        c
        for c in page.changes
        if change_passes(change=c, signal_types=endpoint.signal_types, labels=endpoint.labels)
    ]
    return SharedPage.build(kept, page.cursor, page.has_more)


def _message_id(endpoint_id: int, before: str, after: str) -> str:
    digest = hashlib.sha256(f"{endpoint_id}\n{before}\n{after}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@lru_cache(maxsize=1024)
def _signer(secret_encrypted: str) -> Webhook:
    """Keyed by the stored token, which a rotation replaces: decrypt once per process."""
    return Webhook(secret_decrypt(secret_encrypted))


def _signature(endpoint: WebhookEndpoint, message_id: str, at: datetime, body: str) -> str:
    signatures = [_signer(endpoint.secret_encrypted).sign(message_id, at, body)]
    previous = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and previous and previous > timezone.now():
        signatures.append(_signer(endpoint.previous_secret_encrypted).sign(message_id, at, body))
    return " ".join(signatures)


# --- sending ---------------------------------------------------------------------------


@dataclass
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_client: httpx.Client | None = None
_client_pid = 0


def http_client() -> httpx.Client:
    """One pooled client per worker process (keep-alive to receivers)."""
    import os

    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        timeout = float(settings.CORDIALE_WEBHOOK_TIMEOUT)
        _client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )
        _client_pid = os.getpid()
    return _client


def _send(endpoint: WebhookEndpoint, message_id: str, body: bytes) -> SendResult:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = webhook_target_check(url=endpoint.url)
    except DomainError as exc:
        return SendResult(None, elapsed(), f"{exc.code}: {exc.detail}")
    at = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": _signature(endpoint, message_id, at, body.decode()),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with http_client().stream(
            "POST", target.connect_url, content=body, headers=headers, extensions=extensions
        ) as response:
            status = response.status_code
    except httpx.TimeoutException:
        return SendResult(None, elapsed(), f"timeout after {settings.CORDIALE_WEBHOOK_TIMEOUT} s")
    except httpx.HTTPError as exc:
        return SendResult(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    return SendResult(status, elapsed(), error)


def _record(
    endpoint: WebhookEndpoint,
    *,
    kind: str,
    message_id: str,
    result: SendResult,
    batch: SharedPage | None = None,
    cursor_before: str = "",
    started_at: datetime,
) -> None:
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        kind=kind,
        message_id=message_id,
        attempt=endpoint.attempts + 1,
        started_at=started_at,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        ok=result.ok,
        error=result.error,
        changes=batch.count if batch else 0,
        first_change=batch.first if batch else "",
        last_change=batch.last if batch else "",
        cursor_before=cursor_before,
        cursor_after=batch.cursor if batch else "",
    )


# --- delivering ------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: uniform in [base·2ⁿ⁻¹ / 2, base·2ⁿ⁻¹], capped."""
    base = float(settings.CORDIALE_WEBHOOK_RETRY_BASE)
    cap = float(settings.CORDIALE_WEBHOOK_RETRY_MAX)
    ceiling = min(cap, base * 2 ** min(attempts - 1, 30))
    return random.uniform(ceiling / 2, ceiling)


def _succeeded(endpoint: WebhookEndpoint, cursor: str, now: datetime) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        cursor=cursor,
        cursor_updated_at=now,
        status=WebhookEndpoint.Status.HEALTHY,
        attempts=0,
        failing_since=None,
        next_attempt_at=None,
        last_success_at=now,
    )
    endpoint.cursor = cursor
    endpoint.attempts = 0


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
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status=WebhookEndpoint.Status.FAILING,
        attempts=endpoint.attempts + 1,
        failing_since=failing_since,
        next_attempt_at=now + timedelta(seconds=delay),
    )
    webhook_wake(endpoint_id=endpoint.pk, countdown=delay)


def _deliver_locked(endpoint_id: int, deadline: float) -> str:
    endpoint = WebhookEndpoint.objects.select_related("member").filter(pk=endpoint_id).first()
    if endpoint is None:
        return "gone"
    if not endpoint.deliverable or not endpoint.member.is_active:
        return "paused"
    now = timezone.now()
    if endpoint.next_attempt_at is not None and endpoint.next_attempt_at > now:
        return "backing_off"
    size = int(settings.CORDIALE_WEBHOOK_BATCH)
    while True:
        page = shared_feed_page(member_id=endpoint.member_id, cursor=endpoint.cursor, limit=size)
        cursor = page.cursor
        selected = _filtered(page, endpoint)
        if selected.count:
            message_id = _message_id(endpoint.pk, endpoint.cursor, cursor)
            started_at = timezone.now()
            result = _send(endpoint, message_id, selected.body)
            _record(
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
            _succeeded(endpoint, cursor, timezone.now())
        elif cursor != endpoint.cursor:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                cursor=cursor, cursor_updated_at=timezone.now()
            )
            endpoint.cursor = cursor
        if not page.has_more:
            return "caught_up"
        if time.monotonic() > deadline:
            return "budget"


def webhook_lags(*, endpoint: WebhookEndpoint) -> bool:
    """Does the feed hold anything past the endpoint's cursor? (One row's worth of work.)"""
    changes, cursor, has_more = feed_page(
        member_id=endpoint.member_id, cursor=endpoint.cursor or None, limit=1
    )
    return bool(changes) or has_more or cursor != endpoint.cursor


def webhook_deliver(*, endpoint_id: int) -> str:
    """Send everything the endpoint lags behind, in order; safe to run any number of times.

    Returns what happened: ``caught_up``, ``busy`` (another delivery holds the endpoint),
    ``failed`` (a retry is scheduled), ``backing_off``, ``paused``, ``gone`` or ``budget``
    (ran out of its time slice and re-enqueued itself).
    """
    deadline = time.monotonic() + float(settings.CORDIALE_WEBHOOK_TASK_BUDGET)
    _release_wake(endpoint_id)
    while True:
        with endpoint_lock(endpoint_id) as got:
            if not got:
                return "busy"
            outcome = _deliver_locked(endpoint_id, deadline)
        if outcome == "budget":
            webhook_wake(endpoint_id=endpoint_id)
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
    result = _send(endpoint, message_id, body)
    endpoint.attempts = 0
    _record(
        endpoint,
        kind=kind,
        message_id=message_id,
        result=result,
        started_at=started_at,
    )
    return result.ok


def webhook_ping(*, endpoint_id: int) -> bool:
    """Send ``{"type": "ping"}`` now, whatever the endpoint's health; logs the attempt."""
    endpoint = WebhookEndpoint.objects.select_related("member").filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.member.is_active:
        return False
    event = {"type": "ping", "cursor": endpoint.cursor}
    return _send_event(endpoint, kind=WebhookDelivery.Kind.PING, event=event)


def webhook_incident_declared(*, endpoint_id: int, incident_id: int) -> bool:
    """Send ``{"type": "incident.declared", "incident": {...}}`` to one endpoint.

    Sent once, like a ping: the incident's label is also in the directory, so a missed
    announcement costs a receiver the early warning, not the statements themselves.
    """
    from exchange.models import Incident

    endpoint = WebhookEndpoint.objects.select_related("member").filter(pk=endpoint_id).first()
    incident = Incident.objects.select_related("label").filter(pk=incident_id).first()
    if endpoint is None or incident is None or not endpoint.deliverable:
        return False
    if not endpoint.member.is_active:
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


def webhooks_announce_incident(*, incident_id: int) -> int:
    """After a declaration commits: queue the event for every active member's endpoints."""
    from exchange.tasks import deliver_incident_declared

    endpoints = (
        WebhookEndpoint.objects.filter(active=True, member__status=Member.Status.ACTIVE)
        .exclude(status=WebhookEndpoint.Status.DISABLED)
        .values_list("pk", flat=True)
    )
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
