"""Reporting sightings: ``sightings_report(member=..., items=[...])``.

An item says how the member's matches on one signal ended over a period::

    {"signal_type": "pdq", "value": "...", "outcome": "actioned", "count": 12,
     "period_start": "2026-11-01", "period_end": "2026-12-01", "named": false}

Each item is judged on its own and gets one status, in input order:

``accepted``   stored: a new report, or a new count (or ``named``) for the same period;
``unchanged``  the same report was stored already: a safe retry;
``rejected``   with a ``code``; nothing of it is stored.

Codes: ``malformed`` (not an object, a field missing, unknown or of the wrong type),
``unknown_signal_type`` and ``invalid_value`` (as a lookup answers them: they depend on
the input alone), ``invalid_outcome``, ``invalid_count``, ``invalid_period`` (not RFC 3339
or a date, end not after start, longer than 366 days, ending in the future),
``period_overlap`` (another period of the same signal and outcome overlaps it), and
``not_found`` for a signal the member may not see, the same for one nobody submitted.

Idempotency. (member, signal, outcome, period_start, period_end) is the key: sending a
report again is ``unchanged``, sending it with another count replaces the count. Two
reports of one signal and outcome never overlap in time, so no match is counted twice.

Cost. At most ``MAX_BATCH`` items; one visibility query per signal type in the batch,
one read of the member's overlapping reports, one bulk upsert, one feed append. The feed
gets a row per audience of each signal whose stored figures changed, once per batch: a
retried batch writes none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange.client.signal_types import query_value_error
from exchange.disputes.services import dispute_open_if_threshold
from exchange.feed import Reader, feed_append
from exchange.selectors import live_audiences, visible_signal_ids
from members.models import Member

from .models import Sighting

MAX_BATCH = 1000
MAX_COUNT = 1_000_000_000
MAX_PERIOD = timedelta(days=366)
FIELDS = frozenset(
    {"signal_type", "value", "outcome", "count", "period_start", "period_end", "named"}
)
REQUIRED = ("signal_type", "value", "outcome", "count", "period_start", "period_end")


class Rejected(Exception):
    """One item refused: its ``code`` and ``detail`` go in its result."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Report:
    index: int
    signal_type: str
    value: str
    outcome: str
    count: int
    period_start: datetime
    period_end: datetime
    named: bool


def _instant(raw: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with its offset, or a date (its 00:00 UTC)."""
    if not isinstance(raw, str) or not 10 <= len(raw) <= 40:
        raise Rejected("invalid_period", f"{field} must be an RFC 3339 timestamp or a date.")
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected("invalid_period", f"{field} is not an RFC 3339 timestamp.") from None
    if when.tzinfo is None:
        raise Rejected("invalid_period", f"{field} must give its UTC offset (Z or +hh:mm).")
    return when.astimezone(UTC)


def _period(item: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = _instant(item["period_start"], "period_start")
    end = _instant(item["period_end"], "period_end")
    if end <= start:
        raise Rejected("invalid_period", "period_end must be after period_start.")
    if end - start > MAX_PERIOD:
        raise Rejected("invalid_period", "A period is at most 366 days; split longer ones.")
    if end > now + timedelta(seconds=settings.CORDIALE_CLOCK_SKEW):
        raise Rejected("invalid_period", "period_end is in the future.")
    return start, end


def sighting_parse(index: int, item: Any, now: datetime) -> Report:
    """The item as a report, or ``Rejected``; the checks depend on the input alone."""
    if not isinstance(item, dict):
        raise Rejected("malformed", "An item is a JSON object.")
    unknown = sorted(set(item) - FIELDS)
    if unknown:
        raise Rejected("malformed", f"Unknown field {unknown[0][:40]!r}.")
    missing = [f for f in REQUIRED if f not in item]
    if missing:
        raise Rejected("malformed", f"Missing field {missing[0]!r}.")
    signal_type, value, named = item["signal_type"], item["value"], item.get("named", False)
    if not isinstance(signal_type, str) or not isinstance(value, str):
        raise Rejected("malformed", "signal_type and value are strings.")
    if not isinstance(named, bool):
        raise Rejected("malformed", "named is true or false.")
    error = query_value_error(signal_type, value)
    if error is not None:
        raise Rejected(error["code"], error["detail"])
    if item["outcome"] not in Sighting.Outcome.values:
        raise Rejected(
            "invalid_outcome", f"outcome is one of {', '.join(Sighting.Outcome.values)}."
        )
    count = item["count"]
    if type(count) is not int or not 0 <= count <= MAX_COUNT:
        raise Rejected("invalid_count", f"count is an integer from 0 to {MAX_COUNT:,}.")
    start, end = _period(item, now)
    return Report(index, signal_type, value, item["outcome"], count, start, end, named)


def sightings_report(*, member: Member, items: list[Any]) -> dict[str, Any]:
    """Judge and store a batch of sightings; returns the response body."""
    now = timezone.now()
    results: dict[int, dict[str, Any]] = {}
    reports: list[Report] = []
    for index, item in enumerate(items):
        try:
            reports.append(sighting_parse(index, item, now))
        except Rejected as exc:
            results[index] = _rejected(index, exc)
    if reports:
        with transaction.atomic():
            # One member's batches apply one after another, as its statements do: the
            # overlap check reads committed state. Visibility is judged in the same
            # transaction, as an opinion's is.
            Member.objects.select_for_update().filter(pk=member.pk).first()
            signal_ids = _visible(member, reports, results)
            reports = [r for r in reports if r.index not in results]
            changed = _apply(member, reports, signal_ids, now, results) if reports else []
            _false_positives_reported(
                sorted(
                    {
                        signal_ids[_key(r)]
                        for r in changed
                        if r.outcome == Sighting.Outcome.FALSE_POSITIVE
                    }
                )
            )
            feed_append(live_audiences(sorted({signal_ids[_key(r)] for r in changed})))
    ordered = [results[i] for i in range(len(items))]
    totals = {status: 0 for status in ("accepted", "unchanged", "rejected")}
    for result in ordered:
        totals[result["status"]] += 1
    return {"results": ordered, **totals}


def _false_positives_reported(signal_ids: list[int]) -> None:
    """False-positive reports feed the dispute threshold: for each signal whose
    false-positive reports just changed, open a dispute if the members against it
    (negative opinions and false-positive reports) reached the threshold. Runs in the
    reporting transaction after the member row's lock and before the feed's, the lock
    order the dispute service needs (row locks, audit chain, feed)."""
    for signal_id in signal_ids:
        dispute_open_if_threshold(signal_id=signal_id)


def _key(report: Report) -> tuple[str, str]:
    return (report.signal_type, report.value)


def _rejected(index: int, exc: Rejected) -> dict[str, Any]:
    return {"index": index, "status": "rejected", "code": exc.code, "detail": exc.detail}


def _visible(
    member: Member, reports: list[Report], results: dict[int, dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """Signal ids of the reports' signals the member may see; the others are rejected
    ``not_found``, the answer for a value nobody submitted (the same query for both)."""
    reader = Reader(member.pk)
    now = int(time.time())
    by_type: dict[str, list[str]] = {}
    for report in reports:
        by_type.setdefault(report.signal_type, []).append(report.value)
    ids: dict[tuple[str, str], int] = {}
    for signal_type, values in by_type.items():
        found = visible_signal_ids(
            reader=reader, signal_type=signal_type, values=list(dict.fromkeys(values)), now=now
        )
        ids.update({(signal_type, v): i for v, i in found.items()})
    for report in reports:
        if _key(report) not in ids:
            results[report.index] = _rejected(
                report.index,
                Rejected("not_found", "No signal with this type and value is visible to you."),
            )
    return ids


Period = list[Any]  # [start, end, count, named]


def _apply(
    member: Member,
    reports: list[Report],
    signal_ids: dict[tuple[str, str], int],
    now: datetime,
    results: dict[int, dict[str, Any]],
) -> list[Report]:
    """Judge the reports against the member's stored ones and upsert the changes; the
    reports that changed something."""
    held = _held(member, reports, signal_ids)
    writes: dict[tuple[int, str, datetime, datetime], Report] = {}
    changed: list[Report] = []
    for report in reports:
        signal_id = signal_ids[_key(report)]
        periods = held.setdefault((signal_id, report.outcome), [])
        same = next(
            (p for p in periods if p[0] == report.period_start and p[1] == report.period_end), None
        )
        if same is None and any(
            p[0] < report.period_end and report.period_start < p[1] for p in periods
        ):
            exc = Rejected("period_overlap", "Another report of yours overlaps this period.")
            results[report.index] = _rejected(report.index, exc)
            continue
        status = "accepted"
        if same is None:
            periods.append([report.period_start, report.period_end, report.count, report.named])
        elif same[2] == report.count and same[3] == report.named:
            status = "unchanged"
        else:
            same[2], same[3] = report.count, report.named
        if status == "accepted":
            changed.append(report)
            key = (signal_id, report.outcome, report.period_start, report.period_end)
            writes[key] = report
        results[report.index] = {
            "index": report.index,
            "status": status,
            "signal_type": report.signal_type,
            "value": report.value,
            "outcome": report.outcome,
        }
    if writes:
        Sighting.objects.bulk_create(
            [
                Sighting(
                    member=member,
                    signal_id=signal_id,
                    outcome=outcome,
                    period_start=start,
                    period_end=end,
                    count=r.count,
                    named=r.named,
                    reported_at=now,
                    updated_at=now,
                )
                for (signal_id, outcome, start, end), r in writes.items()
            ],
            update_conflicts=True,
            unique_fields=["member", "signal", "outcome", "period_start", "period_end"],
            update_fields=["count", "named", "updated_at"],
        )
    return changed


def _held(
    member: Member, reports: list[Report], signal_ids: dict[tuple[str, str], int]
) -> dict[tuple[int, str], list[Period]]:
    """The member's stored periods on the batch's signals that fall in the batch's span."""
    start = min(r.period_start for r in reports)
    end = max(r.period_end for r in reports)
    held: dict[tuple[int, str], list[Period]] = {}
    for signal_id, outcome, p_start, p_end, count, named in Sighting.objects.filter(
        member=member,
        signal_id__in=sorted({signal_ids[_key(r)] for r in reports}),
        period_start__lt=end,
        period_end__gt=start,
    ).values_list("signal_id", "outcome", "period_start", "period_end", "count", "named"):
        held.setdefault((signal_id, outcome), []).append([p_start, p_end, count, named])
    return held
