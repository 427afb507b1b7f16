"""Delivering the change feed to webhook endpoints.

Each endpoint is a consumer of its member's change feed, with its own cursor in
PostgreSQL. Celery only wakes endpoints up; it is never the only copy of anything:

- when feed rows commit, ``webhooks_wake_on_feed`` (a feed listener, registered by
  ``ExchangeConfig.ready``) publishes one fan-out task (a broker error is logged,
  never raised: a submission does not fail because Redis is down);
- the fan-out task enqueues ``deliver_endpoint`` for every deliverable endpoint whose
  member may be concerned by the audiences that changed;
- ``webhook_deliver`` takes the endpoint's lock (a session advisory lock on
  PostgreSQL: never two deliveries in flight for one endpoint, and the lock dies with a
  killed worker's connection) and one of its member's delivery slots (``member_slot``:
  one member's slow receivers never hold more than
  ``CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER`` worker processes), reads the next page
  with the same ``feed_page`` as the pull API (built and encoded once for the member's
  endpoints at the same cursor, see ``shared_feed_page``), applies the endpoint's
  filters (an endpoint without filters sends the shared body as it is), POSTs the batch
  signed per Standard Webhooks within one wall-clock deadline per attempt (see
  ``transport.py``) and, on a 2xx answer only, stores the page's cursor, if the
  endpoint's cursor is still the one the page started from (a delivery whose connection
  dropped lost the lock with it, and another may have moved the cursor on: it stops
  rather than move it back); it loops while the feed has more, so batches leave in feed
  order, one at a time;
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

from .delivering import (
    backoff_seconds,
    webhook_deliver,
    webhook_incident_declared,
    webhook_lags,
    webhook_ping,
    webhook_ping_request,
    webhooks_announce_incident,
    webhooks_sweep,
)
from .pages import SharedPage, change_passes, shared_feed_page
from .sending import SendResult, http_client
from .waking import (
    PRIORITY_QUEUE,
    deliverable_endpoints,
    endpoint_lock,
    member_slot,
    publish_task,
    webhook_wake,
    webhooks_fanout,
    webhooks_wake_on_feed,
)

__all__ = [
    "PRIORITY_QUEUE",
    "SendResult",
    "SharedPage",
    "backoff_seconds",
    "change_passes",
    "deliverable_endpoints",
    "endpoint_lock",
    "http_client",
    "member_slot",
    "publish_task",
    "shared_feed_page",
    "webhook_deliver",
    "webhook_incident_declared",
    "webhook_lags",
    "webhook_ping",
    "webhook_ping_request",
    "webhook_wake",
    "webhooks_announce_incident",
    "webhooks_fanout",
    "webhooks_sweep",
    "webhooks_wake_on_feed",
]
