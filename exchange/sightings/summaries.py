"""The ``sightings`` member of a snapshot: what a reader sees of others' reports.

Who counts for whom. A reader's snapshot of a signal carries, under ``sightings``, the
sum of the reports it may count, by outcome; ``reporters``, how many members those
reports come from; ``named``, the slugs of those reporters that chose to be named on
this signal; and ``mine``, its own totals. A report counts for a reader when

- it is the reader's own; or
- its author is in an audience through which the reader sees the signal now (a live
  current statement addressed to the forum or to a group they are both in), the rule
  opinions follow (``exchange.selectors._opinion_summaries``): nothing of a group the
  reader is not in, nor of members who no longer see the signal; and
- its author chose to be named on the signal (any of its reports on it is ``named``),
  or at least ``CORDIALE_SIGHTINGS_MIN_REPORTERS`` (default 2) such anonymous authors
  other than the reader count for this reader. Below that, the anonymous reports are
  left out entirely, counts, reporters and time alike: one other member alone (a
  two-member group) would otherwise be its own count, and the reader, subtracting its
  ``mine``, would read a named member's figures.

Counts are sums over the reporters' periods; the report's periods are never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from exchange.db import fetchall, in_list, rfc3339
from exchange.feed import Reader
from exchange.liveness import unexpired_sql
from exchange.models import FORUM_AUDIENCE

from .models import Sighting

OUTCOMES: tuple[str, ...] = tuple(Sighting.Outcome.values)


def min_reporters() -> int:
    return max(1, int(getattr(settings, "CORDIALE_SIGHTINGS_MIN_REPORTERS", 2)))


def empty_summary() -> dict[str, Any]:
    return {**dict.fromkeys(OUTCOMES, 0), "reporters": 0, "named": [], "mine": None}


def _reporter_rows(
    reader: Reader, signal_ids: Sequence[int], now: int
) -> list[tuple[int, int, str, str, int, bool, str]]:
    """(signal, member, slug, outcome, sum, named, last change) for every reporter whose
    reports may count for the reader (its own, or an author of its audiences)."""
    ids_clause, ids_params = in_list("o.signal_id", signal_ids)
    aud_clause, aud_params = in_list("cs.audience", [FORUM_AUDIENCE, *reader.groups])
    rows = fetchall(
        "SELECT o.signal_id, o.member_id, m.slug, o.outcome, SUM(o.count), "
        f"MAX(CASE WHEN o.named THEN 1 ELSE 0 END), MAX({rfc3339('o.updated_at')}) "
        "FROM exchange_sighting o JOIN members_member m ON m.id = o.member_id "
        f"WHERE {ids_clause} AND (o.member_id = %s OR EXISTS ("
        "SELECT 1 FROM exchange_currentstatement cs "
        "JOIN exchange_audienceperiod p ON p.audience = cs.audience "
        "AND p.member_id = o.member_id AND p.end_seq IS NULL "
        f"WHERE cs.signal_id = o.signal_id AND {aud_clause} AND {unexpired_sql('cs')})) "
        "GROUP BY o.signal_id, o.member_id, m.slug, o.outcome",
        [*ids_params, reader.member_id, *aud_params, now],
    )
    return [
        (int(s), int(m), slug, outcome, int(total), bool(named), last)
        for s, m, slug, outcome, total, named, last in rows
    ]


def sighting_summaries(
    *, reader: Reader, signal_ids: Sequence[int], now: int
) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """Per signal the reader sees: its ``sightings`` summary (signals without any report
    it may count are absent) and the time of the latest change among those reports."""
    if not signal_ids:
        return {}, {}
    # signal -> member -> (slug, {outcome: sum}, named, last change)
    reporters: dict[int, dict[int, tuple[str, dict[str, int], list[bool], list[str]]]] = {}
    for signal_id, member_id, slug, outcome, total, named, last in _reporter_rows(
        reader, signal_ids, now
    ):
        entry = reporters.setdefault(signal_id, {}).setdefault(member_id, (slug, {}, [], []))
        entry[1][outcome] = total
        entry[2].append(named)
        entry[3].append(last)
    k = min_reporters()
    summaries: dict[int, dict[str, Any]] = {}
    latest: dict[int, str] = {}
    for signal_id, by_member in reporters.items():
        anonymous = {
            m
            for m, (_, _, flags, _) in by_member.items()
            if m != reader.member_id and not any(flags)
        }
        counted = [
            m
            for m in by_member
            if m == reader.member_id or m not in anonymous or len(anonymous) >= k
        ]
        if not counted:
            continue
        summary = empty_summary()
        for member_id in counted:
            slug, sums, flags, times = by_member[member_id]
            for outcome, total in sums.items():
                summary[outcome] += total
            if any(flags):
                summary["named"].append(slug)
            if member_id == reader.member_id:
                summary["mine"] = {o: sums.get(o, 0) for o in OUTCOMES}
            last = max(times)
            if signal_id not in latest or last > latest[signal_id]:
                latest[signal_id] = last
        summary["reporters"] = len(counted)
        summary["named"].sort()
        summaries[signal_id] = summary
    return summaries, latest
