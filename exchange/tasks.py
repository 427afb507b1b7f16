"""Celery tasks. Each takes ids, imports its service inside, and is idempotent."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="exchange.tasks.sweep_lapsed_statements")
def sweep_lapsed_statements() -> int:
    from exchange.services.lapse import statements_lapse_sweep

    return statements_lapse_sweep()
