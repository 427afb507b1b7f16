"""The transparency report's sightings and known-benign figures (``exchange.reports``).

Definitions, for a period ``[since, until)``:

- a report belongs to the period in which its ``period_start`` falls, so that each is
  counted in one period only (members report by day or by month, which fall whole in a
  report's period of whole days);
- *matched*, *actioned*, *false positive*: sums of the reported counts by outcome (each
  match is reported under one outcome); *false-positive share*: false positives over
  all three;
- *signals that led to action*: distinct signals with an ``actioned`` count above zero;
- *by signal type*: those sums per signal type; *by label*: ``actioned`` per label the
  signal carried in any assertion received before the period's end (a signal with two
  labels counts for both), and the signals that led to action per label;
- *known-benign list*: the live assertions that carry a label of kind ``benign`` and
  their distinct signals, when the report is generated.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Q, Sum

from exchange.db import is_postgres
from exchange.liveness import live_q
from exchange.models import CurrentStatement, Label, Statement

from .models import Sighting

BENIGN_KIND = "benign"


def _sums(rows: Any) -> dict[str, int]:
    return {o: int(rows.get(o) or 0) for o in Sighting.Outcome.values}


def _outcome_sums() -> dict[str, Any]:
    return {o: Sum("count", filter=Q(outcome=o)) for o in Sighting.Outcome.values}


def sightings_summary(*, since: datetime, until: datetime) -> dict[str, Any]:
    in_period = Sighting.objects.filter(period_start__gte=since, period_start__lt=until)
    totals = in_period.aggregate(
        reports=Count("id"),
        members=Count("member_id", distinct=True),
        signals=Count("signal_id", distinct=True),
        **_outcome_sums(),
    )
    sums = _sums(totals)
    actioned = in_period.filter(outcome=Sighting.Outcome.ACTIONED, count__gt=0)
    all_outcomes = sum(sums.values())
    return {
        "reports": totals["reports"],
        "members": totals["members"],
        "signals": totals["signals"],
        **sums,
        "signals_actioned": actioned.values("signal_id").distinct().count(),
        "false_positive_share": (
            round(sums["false_positive"] / all_outcomes, 4) if all_outcomes else None
        ),
        "by_signal_type": _by_signal_type(in_period),
        "by_label": _actions_by_label(actioned, until),
    }


def _by_signal_type(in_period: Any) -> list[dict[str, Any]]:
    rows = (
        in_period.annotate(signal_type=F("signal__signal_type"))
        .values("signal_type")
        .annotate(
            **_outcome_sums(),
            signals_actioned=Count(
                "signal_id",
                distinct=True,
                filter=Q(outcome=Sighting.Outcome.ACTIONED, count__gt=0),
            ),
        )
        .order_by("signal_type")
    )
    return [
        {"signal_type": r["signal_type"], **_sums(r), "signals_actioned": r["signals_actioned"]}
        for r in rows
    ]


def _actions_by_label(actioned: Any, until: datetime) -> list[dict[str, Any]]:
    per_signal: Counter[int] = Counter()
    for signal_id, count in actioned.values_list("signal_id", "count").iterator(chunk_size=5000):
        per_signal[signal_id] += count
    labels_of: dict[int, set[str]] = {}
    # Labels are a JSON list: gathered here, as exchange.reports does for statements.
    ids = list(per_signal)
    for start in range(0, len(ids), 5000):
        for signal_id, labels in Statement.objects.filter(
            signal_id__in=ids[start : start + 5000],
            op=Statement.Op.ASSERT,
            received_at__lt=until,
        ).values_list("signal_id", "labels"):
            labels_of.setdefault(signal_id, set()).update(labels or [])
    actions: Counter[str] = Counter()
    signals: Counter[str] = Counter()
    for signal_id, count in per_signal.items():
        for label in labels_of.get(signal_id, ()):
            actions[label] += count
            signals[label] += 1
    return [
        {"label": label, "actioned": actions[label], "signals_actioned": signals[label]}
        for label in sorted(actions)
    ]


def benign_list_size() -> dict[str, int]:
    """Live assertions carrying a label of kind ``benign``, and their distinct signals."""
    benign = sorted(Label.objects.filter(kind=BENIGN_KIND).values_list("slug", flat=True))
    live = CurrentStatement.objects.filter(live_q(int(time.time())))
    if not benign:
        return {"labels": 0, "assertions": 0, "signals": 0}
    if is_postgres():
        # jsonb containment, one index-free pass in the database.
        carrying = Q()
        for slug in benign:
            carrying |= Q(statement__labels__contains=[slug])
        totals = live.filter(carrying).aggregate(
            assertions=Count("id"), signals=Count("signal_id", distinct=True)
        )
        return {"labels": len(benign), **totals}
    # SQLite (the embedded default) has no JSON containment: counted here.
    assertions, signals = 0, set()
    wanted = set(benign)
    rows = live.values_list("signal_id", "statement__labels").iterator(chunk_size=5000)
    for signal_id, labels in rows:
        if wanted.intersection(labels or []):
            assertions += 1
            signals.add(signal_id)
    return {"labels": len(benign), "assertions": assertions, "signals": len(signals)}
