"""Reads of sightings besides the snapshot's summary (``summaries``): what the dispute
threshold counts, and a member's own reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exchange.feed import Reader
from exchange.selectors import visible_signal_ids
from members.models import Member

from .models import Sighting


def sightings_false_positive_members(*, signal_id: int, since: datetime | None = None) -> set[int]:
    """Ids of the active members that reported a false positive on the signal (a count
    above zero in some period), with ``since`` only those reported or changed after it
    (the last decision on the signal): each is one member towards the dispute
    threshold, as a negative opinion is, however many false positives it reported."""
    reports = Sighting.objects.filter(
        signal_id=signal_id,
        outcome=Sighting.Outcome.FALSE_POSITIVE,
        count__gt=0,
        member__status=Member.Status.ACTIVE,
    )
    if since is not None:
        reports = reports.filter(updated_at__gt=since)
    return set(reports.values_list("member_id", flat=True).distinct())


MAX_OWN_REPORTS = 1000


def sightings_of_member(
    *, member: Member, signal_type: str, value: str
) -> list[dict[str, Any]] | None:
    """The member's own reports on the signal, latest period first (at most 1,000); None
    if it may not see the signal, the same answer as for a value nobody submitted."""
    storable = "\x00" not in signal_type and "\x00" not in value
    if not storable:
        return None
    found = visible_signal_ids(reader=Reader(member.pk), signal_type=signal_type, values=[value])
    if value not in found:
        return None
    rows = (
        Sighting.objects.filter(member=member, signal_id=found[value])
        .order_by("-period_start", "outcome")
        .values("outcome", "count", "period_start", "period_end", "named", "updated_at")
    )
    return [dict(row) for row in rows[:MAX_OWN_REPORTS]]
