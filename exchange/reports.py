"""The transparency report: what the forum shared over a period, read from the database.

Selectors only; ``transparency_report`` is what the ``transparency_report`` command and
the admin page render (JSON, CSV, HTML). Everything is counted, nothing is listed: the
report is published, and no hash value or statement content appears in it.

Definitions, for a period of whole UTC days ``[start, end]``:

- *statements*: accepted statements received in the period (assertions and
  retractions), whether or not withdrawn since; *signals*: the distinct signals they
  are about; *new signals*: signals first submitted in the period.
- *by label*: assertions carrying the label (an assertion with two labels counts for
  both).
- *lapses*: current assertions whose ``exp`` fell in the period (and has passed).
- *withdrawals*: statements withdrawn in the period, by reason (member expelled, key
  compromised).
- *opinions*: opinions last set in the period, by category; a signal is *disputed*
  when it holds positive and negative opinions at once.
- *membership*: lifecycle moves in the period, from the audit log, and the number of
  active members at the end of the period reconstructed from it.
- *webhooks*: delivery attempts of change batches in the period and how many the
  receivers accepted, when the webhook models are installed.
- *sightings* and the *known-benign list*: see ``exchange/sightings/reports.py``.
- *disputes* (``dispute_summary``): disputes opened in the period, decided in the
  period (by their final, signed decision), and open at its end (opened before it
  ended, not decided by then); outcomes of the decided ones by grounds and by label;
  the median time from opening to decision; and per member (a party: its statements
  were disputed) and per label, how many decided disputes ended in an overturn. A
  dispute's labels are the labels of the assertions on its signal (one dispute counts
  once for each label).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.utils import timezone

from exchange.models import (
    CurrentStatement,
    Dispute,
    DisputeDecision,
    DisputeParty,
    Opinion,
    Signal,
    Statement,
    WebhookDelivery,
)
from exchange.sightings.reports import benign_list_size, sightings_summary
from members.checkpoints import checkpoint_document
from members.models import AuditCheckpoint, AuditEntry, Member


def report_bounds(*, start: date, end: date) -> tuple[datetime, datetime]:
    """The period as instants: from ``start`` 00:00 UTC to the day after ``end``."""
    if end < start:
        raise ValueError("The period ends before it starts.")
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def _statements(since: datetime, until: datetime) -> QuerySet[Statement]:
    return Statement.objects.filter(received_at__gte=since, received_at__lt=until)


def _grouped(statements: QuerySet[Statement], field: str, key: str) -> list[dict[str, Any]]:
    rows = (
        statements.values(field)
        .annotate(
            statements=Count("id"),
            assertions=Count("id", filter=Q(op=Statement.Op.ASSERT)),
            retractions=Count("id", filter=Q(op=Statement.Op.RETRACT)),
            signals=Count("signal_id", distinct=True),
        )
        .order_by(field)
    )
    return [
        {
            key: row[field],
            "statements": row["statements"],
            "assertions": row["assertions"],
            "retractions": row["retractions"],
            "signals": row["signals"],
        }
        for row in rows
    ]


def statements_by_month(statements: QuerySet[Statement]) -> list[dict[str, Any]]:
    rows = _grouped(
        statements.annotate(month=TruncMonth("received_at", tzinfo=UTC)), "month", "month"
    )
    for row in rows:
        row["month"] = row["month"].strftime("%Y-%m")
    return rows


def statements_by_label(statements: QuerySet[Statement]) -> list[dict[str, Any]]:
    # Labels are a JSON list: counted here rather than with each database's own JSON
    # functions, which is fast enough for a report run a few times a year.
    counts: Counter[str] = Counter()
    signals: dict[str, set[int]] = {}
    assertions = statements.filter(op=Statement.Op.ASSERT).values_list("labels", "signal_id")
    for labels, signal_id in assertions.iterator(chunk_size=5000):
        for label in set(labels or []):
            counts[label] += 1
            signals.setdefault(label, set()).add(signal_id)
    return [
        {"label": label, "assertions": counts[label], "signals": len(signals[label])}
        for label in sorted(counts)
    ]


def lapses_count(*, since: datetime, until: datetime) -> int:
    horizon = min(int(until.timestamp()), int(timezone.now().timestamp()))
    return CurrentStatement.objects.filter(
        audience__isnull=False, exp__gte=int(since.timestamp()), exp__lt=horizon
    ).count()


def withdrawals(*, since: datetime, until: datetime) -> dict[str, int]:
    rows = (
        Statement.objects.filter(withdrawn_at__gte=since, withdrawn_at__lt=until)
        .values("withdrawn_reason")
        .annotate(n=Count("id"))
        .order_by("withdrawn_reason")
    )
    return {row["withdrawn_reason"] or "unspecified": row["n"] for row in rows}


def opinion_summary(*, since: datetime, until: datetime) -> dict[str, Any]:
    in_period = Opinion.objects.filter(updated_at__gte=since, updated_at__lt=until)
    by_category = dict(
        in_period.values_list("category").annotate(n=Count("id")).values_list("category", "n")
    )
    signal_ids = in_period.values("signal_id")
    per_signal = (
        Opinion.objects.filter(signal_id__in=signal_ids)
        .values("signal_id")
        .annotate(
            positive=Count("id", filter=Q(category=Opinion.Category.POSITIVE)),
            negative=Count("id", filter=Q(category=Opinion.Category.NEGATIVE)),
        )
    )
    signals = disputed = 0
    for row in per_signal:
        signals += 1
        disputed += bool(row["positive"] and row["negative"])
    return {
        "positive": by_category.get(Opinion.Category.POSITIVE, 0),
        "negative": by_category.get(Opinion.Category.NEGATIVE, 0),
        "investigation": by_category.get(Opinion.Category.INVESTIGATION, 0),
        "signals": signals,
        "disputed_signals": disputed,
        "disputed_share": round(disputed / signals, 4) if signals else 0.0,
    }


_MOVES = {
    ("applicant", "active"): "joined",
    ("active", "suspended"): "suspended",
    ("suspended", "active"): "reinstated",
    ("applicant", "expelled"): "refused",
    ("active", "expelled"): "expelled",
    ("suspended", "expelled"): "expelled",
}


def membership_changes(*, since: datetime, until: datetime) -> dict[str, Any]:
    """Lifecycle moves in the period and active members at its end, from the audit log."""
    moves: Counter[str] = Counter()
    status_at_end: dict[str, str] = {}
    entries = AuditEntry.objects.filter(
        action="member.status_changed", created_at__lt=until
    ).order_by("id")
    for at, slug, before, after in entries.values_list(
        "created_at", "object_id", "before", "after"
    ).iterator(chunk_size=5000):
        new_status = (after or {}).get("status", "")
        status_at_end[slug] = new_status
        if at >= since:
            moves[_MOVES.get(((before or {}).get("status", ""), new_status), "other")] += 1
    applications = Counter(
        AuditEntry.objects.filter(
            object_type="membership_application", created_at__gte=since, created_at__lt=until
        ).values_list("action", flat=True)
    )
    return {
        **{move: moves.get(move, 0) for move in sorted({*_MOVES.values(), *moves})},
        "applications_received": applications.get("application.created", 0),
        "applications_approved": applications.get("application.approved", 0),
        "applications_rejected": applications.get("application.rejected", 0),
        "active_at_end": sum(1 for s in status_at_end.values() if s == Member.Status.ACTIVE),
    }


def webhook_summary(*, since: datetime, until: datetime) -> dict[str, Any]:
    """Delivery success of change batches."""
    attempts = WebhookDelivery.objects.filter(started_at__gte=since, started_at__lt=until).exclude(
        kind="ping"
    )
    totals = attempts.aggregate(
        attempts=Count("id"),
        succeeded=Count("id", filter=Q(ok=True)),
        endpoints=Count("endpoint_id", distinct=True),
    )
    total = totals["attempts"]
    return {
        "attempts": total,
        "succeeded": totals["succeeded"],
        "failed": total - totals["succeeded"],
        "endpoints": totals["endpoints"],
        "success_rate": round(totals["succeeded"] / total, 4) if total else None,
    }


def transparency_report(*, start: date, end: date) -> dict[str, Any]:
    since, until = report_bounds(start=start, end=end)
    statements = _statements(since, until)
    totals = statements.aggregate(
        statements=Count("id"),
        assertions=Count("id", filter=Q(op=Statement.Op.ASSERT)),
        retractions=Count("id", filter=Q(op=Statement.Op.RETRACT)),
        signals=Count("signal_id", distinct=True),
        members=Count("member_id", distinct=True),
    )
    withdrawn = withdrawals(since=since, until=until)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "generated_at": timezone.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "totals": {
            **totals,
            "new_signals": Signal.objects.filter(
                created_at__gte=since, created_at__lt=until
            ).count(),
            "lapses": lapses_count(since=since, until=until),
            "withdrawn": sum(withdrawn.values()),
        },
        "by_signal_type": _grouped(
            statements.annotate(signal_type=F("signal__signal_type")), "signal_type", "signal_type"
        ),
        "by_label": statements_by_label(statements),
        "by_member": _grouped(statements, "member_slug", "member"),
        "by_month": statements_by_month(statements),
        "withdrawals": withdrawn,
        "opinions": opinion_summary(since=since, until=until),
        "membership": membership_changes(since=since, until=until),
        "webhooks": webhook_summary(since=since, until=until),
        "sightings": sightings_summary(since=since, until=until),
        "benign_list": benign_list_size(),
        "disputes": dispute_summary(since=since, until=until),
        "audit_checkpoint": audit_checkpoint_until(until=until),
    }


def audit_checkpoint_until(*, until: datetime) -> dict[str, Any] | None:
    """The last signed audit checkpoint of the period: anyone holding the report can
    later ask whether the log still holds that head (members/checkpoints.py)."""
    last = AuditCheckpoint.objects.filter(created_at__lt=until).order_by("-head_id").first()
    return None if last is None else checkpoint_document(last)


# --- disputes (issue #18) -------------------------------------------------------------


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _signal_labels(signal_ids: set[int]) -> dict[int, set[str]]:
    labels: dict[int, set[str]] = {}
    rows = Statement.objects.filter(signal_id__in=signal_ids, op=Statement.Op.ASSERT).values_list(
        "signal_id", "labels"
    )
    for signal_id, values in rows.iterator(chunk_size=5000):
        labels.setdefault(signal_id, set()).update(values or [])
    return labels


def dispute_summary(*, since: datetime, until: datetime) -> dict[str, Any]:
    """Disputes opened, decided and open; outcomes; median time to decision; overturned
    shares per member and per label (the module docstring defines each)."""
    opened = Dispute.objects.filter(opened_at__gte=since, opened_at__lt=until).count()
    open_at_end = (
        Dispute.objects.filter(opened_at__lt=until)
        .filter(Q(decided_at__isnull=True) | Q(decided_at__gte=until))
        .count()
    )
    finals = list(
        DisputeDecision.objects.filter(
            decided_at__gte=since, decided_at__lt=until, dispute__decided_at__isnull=False
        )
        .exclude(jws="")
        .values_list(
            "dispute_id",
            "decision",
            "dispute__grounds",
            "dispute__signal_id",
            "dispute__opened_at",
            "decided_at",
        )
    )
    labels = _signal_labels({row[3] for row in finals})
    parties: dict[int, list[str]] = {}
    for dispute_id, slug in DisputeParty.objects.filter(
        dispute_id__in=[row[0] for row in finals]
    ).values_list("dispute_id", "member__slug"):
        parties.setdefault(dispute_id, []).append(slug)
    decisions = [d.value for d in DisputeDecision.Decision]
    by_grounds: dict[str, Counter[str]] = {}
    by_label: dict[str, Counter[str]] = {}
    by_member: dict[str, Counter[str]] = {}
    durations: list[float] = []
    for dispute_id, decision, grounds, signal_id, opened_at, decided_at in finals:
        by_grounds.setdefault(grounds, Counter())[decision] += 1
        for label in labels.get(signal_id, ()):
            by_label.setdefault(label, Counter())[decision] += 1
        for slug in parties.get(dispute_id, []):
            by_member.setdefault(slug, Counter())[decision] += 1
        if decided_at is not None:  # a final decision has one (the query asks for it)
            durations.append((decided_at - opened_at).total_seconds())

    def outcomes(groups: dict[str, Counter[str]], key: str) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(groups):
            counts = groups[name]
            decided = sum(counts.values())
            rows.append(
                {
                    key: name,
                    "decided": decided,
                    **{d: counts.get(d, 0) for d in decisions},
                    "overturned_share": _share(counts.get("overturn", 0), decided),
                }
            )
        return rows

    return {
        "opened": opened,
        "decided": len(finals),
        "open_at_end": open_at_end,
        **{d: sum(1 for row in finals if row[1] == d) for d in decisions},
        "median_hours_to_decision": (
            round(statistics.median(durations) / 3600, 2) if durations else None
        ),
        "by_grounds": outcomes(by_grounds, "grounds"),
        "by_label": outcomes(by_label, "label"),
        "by_member": outcomes(by_member, "member"),
    }
