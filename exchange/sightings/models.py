"""Sightings (imported by ``exchange.models``): how a member's matches on a signal ended.

One row per (member, signal, outcome, period): the member says that over
``[period_start, period_end)`` its matches on the signal ended ``count`` times with
``outcome``. Outcomes are disjoint: a match is reported once, under how it ended —
``matched`` (matched, no action taken), ``actioned`` (the content was acted on) or
``false_positive`` (the match was wrong). The key is also the idempotency key: a report
for the same key replaces the row (a retry changes nothing, a correction replaces the
count); a report whose period overlaps another of the same member, signal and outcome
without being the same period is refused, so nothing is counted twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from members.models import Member


class Sighting(models.Model):
    class Outcome(models.TextChoices):
        MATCHED = "matched"
        ACTIONED = "actioned"
        FALSE_POSITIVE = "false_positive"

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="sightings", db_index=False
    )
    signal = models.ForeignKey(
        "exchange.Signal", on_delete=models.PROTECT, related_name="sightings", db_index=False
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    count = models.BigIntegerField()
    # The member chose to be named as a reporter of this signal (see selectors).
    named = models.BooleanField(default=False)
    reported_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Starts with member: also the index of a member's own reports.
            models.UniqueConstraint(
                fields=["member", "signal", "outcome", "period_start", "period_end"],
                name="unique_sighting_period",
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")), name="sighting_period_ordered"
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="sighting_count_not_negative"),
        ]
        indexes = [
            # Snapshots aggregate by signal; the transparency report reads by period.
            models.Index(fields=["signal"], name="sighting_signal"),
            models.Index(fields=["period_start"], name="sighting_period_start"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.signal_id}:{self.outcome}:{self.count}"
