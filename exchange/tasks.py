"""Celery tasks. Each takes ids, imports its service inside, and is idempotent."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="exchange.tasks.sweep_lapsed_statements")
def sweep_lapsed_statements() -> int:
    from exchange.services.lapse import statements_lapse_sweep

    return statements_lapse_sweep()


@shared_task(name="exchange.tasks.fanout_feed_changed")
def fanout_feed_changed(audiences: list[int] | None = None, urgent: bool = False) -> int:
    """Feed rows for ``audiences`` committed: wake the endpoints that may be concerned."""
    from exchange.webhooks.delivery import webhooks_fanout

    return webhooks_fanout(audiences=audiences, urgent=urgent)


@shared_task(name="exchange.tasks.deliver_endpoint")
def deliver_endpoint(endpoint_id: int) -> str:
    from exchange.webhooks.delivery import webhook_deliver

    return webhook_deliver(endpoint_id=endpoint_id)


@shared_task(name="exchange.tasks.deliver_ping")
def deliver_ping(endpoint_id: int) -> bool:
    from exchange.webhooks.delivery import webhook_ping

    return webhook_ping(endpoint_id=endpoint_id)


@shared_task(name="exchange.tasks.deliver_incident_declared")
def deliver_incident_declared(endpoint_id: int, incident_id: int) -> bool:
    from exchange.webhooks.delivery import webhook_incident_declared

    return webhook_incident_declared(endpoint_id=endpoint_id, incident_id=incident_id)


@shared_task(name="exchange.tasks.sweep_webhooks")
def sweep_webhooks() -> int:
    from exchange.webhooks.delivery import webhooks_sweep

    return webhooks_sweep()


@shared_task(name="exchange.tasks.snapshot_match_index")
def snapshot_match_index() -> str:
    """Write the match index snapshot of this process's host; not scheduled (the web
    processes keep theirs current), for an operator who wants one written now."""
    from exchange.matching.service import match_index_snapshot

    return str(match_index_snapshot())


@shared_task(name="exchange.tasks.take_audit_checkpoint")
def take_audit_checkpoint() -> int | None:
    """Sign the audit chain's head (members/checkpoints.py); a no-op if it has not moved."""
    from members.checkpoints import audit_checkpoint_take

    checkpoint = audit_checkpoint_take()
    return None if checkpoint is None else checkpoint.head_id


@shared_task(name="exchange.tasks.deliver_dispute_event")
def deliver_dispute_event(event_id: int) -> str:
    from exchange.disputes.events import dispute_event_deliver

    return dispute_event_deliver(event_id=event_id)


@shared_task(name="exchange.tasks.sweep_dispute_events")
def sweep_dispute_events() -> int:
    """Publish dispute webhook events that are due and whose task may have been lost."""
    from exchange.disputes.events import dispute_events_sweep

    return dispute_events_sweep()
