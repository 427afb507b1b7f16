"""Celery tasks. Each takes ids, imports its service inside, and is idempotent."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="exchange.tasks.sweep_lapsed_statements")
def sweep_lapsed_statements() -> int:
    from exchange.services.lapse import statements_lapse_sweep

    return statements_lapse_sweep()


@shared_task(name="exchange.tasks.snapshot_match_index")
def snapshot_match_index() -> str:
    from exchange.matching.service import match_index_snapshot

    return str(match_index_snapshot())
