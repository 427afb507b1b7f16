"""Recording lapses: assertions whose ``exp`` passed become tombstones in the feed.

Reads never serve a lapsed assertion whether or not this ran; the sweep only writes the
feed rows that tell followers about it.
"""

from __future__ import annotations

import time
from typing import cast

from django.db import transaction

from exchange.feed import feed_append
from exchange.liveness import expired_q
from exchange.models import CurrentStatement

BATCH = 5_000


def statements_lapse_sweep(*, now: int | None = None, audience: int | None = None) -> int:
    """Record every lapse up to ``now`` (of one audience, if given); returns how many.

    Each row carries the lapse time, so that only readers who were in the audience
    before the assertion lapsed may learn of it as a tombstone.
    """
    now = int(time.time()) if now is None else now
    total = 0
    while True:
        with transaction.atomic():
            due_qs = CurrentStatement.objects.select_for_update(skip_locked=True).filter(
                expired_q(now), lapsed=False
            )
            if audience is not None:
                due_qs = due_qs.filter(audience=audience)
            due = list(due_qs.values_list("pk", "audience", "signal_id", "exp")[:BATCH])
            if not due:
                return total
            CurrentStatement.objects.filter(pk__in=[d[0] for d in due]).update(lapsed=True)
            feed_append([(cast(int, d[1]), d[2], d[3]) for d in due])
            total += len(due)
