"""Recording lapses: assertions whose ``exp`` passed become tombstones in the feed.

Reads never serve a lapsed assertion whether or not this ran; the sweep only writes the
feed rows that tell followers about it.
"""

from __future__ import annotations

import time
from typing import cast

from django.db import transaction

from exchange.feed import feed_append
from exchange.models import CurrentStatement

BATCH = 5_000


def statements_lapse_sweep(*, now: int | None = None) -> int:
    """Record every lapse up to ``now``; returns how many were recorded."""
    now = int(time.time()) if now is None else now
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                CurrentStatement.objects.select_for_update(skip_locked=True)
                .filter(audience__isnull=False, lapsed=False, exp__lte=now)
                .values_list("pk", "audience", "signal_id")[:BATCH]
            )
            if not due:
                return total
            CurrentStatement.objects.filter(pk__in=[d[0] for d in due]).update(lapsed=True)
            feed_append([(cast(int, d[1]), d[2]) for d in due])
            total += len(due)
