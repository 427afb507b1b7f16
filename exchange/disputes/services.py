"""Disputes: opening one, answering it, the opinion threshold, and the forum's decision.

Each function here is the one way to make its change: in a transaction, with its audit
entry, its feed rows (opening and deciding change the signal's snapshot: ``opinions.
disputed``, ``decisions``, or a tombstone after an overturn) and its webhook events
scheduled on commit. Lock order as ``exchange/services/membership.py`` says: row
locks, then the audit chain, then the feed, last.

Rules the API leaves to us (documented in docs/api.md, "Disputes"):

- one open dispute per signal: a second member's challenge of the same signal gets
  ``409 dispute_exists`` with the open dispute's id, and may add its voice with a
  negative opinion;
- the disputed statements are the live statements the opener saw (all live ones for a
  dispute opened by the threshold); their members are the dispute's *parties*: they are
  notified, and only they may respond;
- the threshold opens a dispute when ``CORDIALE_DISPUTE_NEGATIVE_THRESHOLD`` distinct
  members hold a negative opinion on a visible, undisputed signal or reported a false
  positive on it (sightings), counting only opinions and reports since the signal's
  last decision (an upheld signal is not re-opened by
  the opinions that were already weighed);
- an overturn needs ``CORDIALE_DISPUTE_OVERTURN_APPROVALS`` distinct staff approvals:
  the first is a proposal (a decision without signature), a second *different* staff
  user confirms it; uphold and relabel are final at once and drop a pending proposal.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from exchange.db import fetchall, in_list
from exchange.feed import Reader, feed_append
from exchange.liveness import unexpired_sql
from exchange.models import (
    Dispute,
    DisputeDecision,
    DisputeParty,
    DisputeResponse,
    Label,
    Opinion,
    Signal,
)
from exchange.selectors import live_audiences, signal_find, visible_statements
from exchange.sightings.selectors import sightings_false_positive_members
from forum.actors import COMMAND_ACTOR, SYSTEM_ACTOR, actor_for_user
from forum.errors import ConflictError, DomainError, NotFoundError
from members.audit import audit_record
from members.models import Member

from .decisions import decision_claims, decision_sign
from .events import dispute_events_schedule
from .models import DECISIONS, GROUNDS

MAX_REASON = 4000
MAX_RESPONSE = 4000
MAX_RATIONALE = 4000
MAX_LABELS = 32
DECIDE_PERMISSION = "exchange.decide_dispute"
NOT_VISIBLE = "No signal with this type and value is visible to you."
NO_DISPUTE = "No dispute with this id is visible to you."


class StaffUser(Protocol):
    is_active: bool

    def get_username(self) -> str: ...

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


# --- opening -------------------------------------------------------------------------


def _labels_check(labels: Any, *, field: str) -> list[str]:
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise DomainError(
            f"{field} must be a list of label slugs.",
            code="invalid_labels",
            errors=[{"field": field, "code": "invalid", "detail": "a list of label slugs"}],
        )
    if len(labels) > MAX_LABELS:
        raise DomainError(f"At most {MAX_LABELS} labels.", code="invalid_labels")
    known = set(Label.objects.filter(slug__in=labels, active=True).values_list("slug", flat=True))
    unknown = [s for s in labels if s not in known]
    if unknown:
        raise DomainError(
            f"Unknown or inactive label(s): {', '.join(unknown)}.",
            code="unknown_label",
            errors=[{"field": field, "code": "unknown_label", "detail": s} for s in unknown],
        )
    return sorted(set(labels))


def _open(
    *,
    signal_id: int,
    opener: Member | None,
    parties: set[int],
    grounds: str,
    reason: str,
    proposed_labels: list[str],
    actor: str,
) -> Dispute:
    """Create the dispute (the caller checked visibility), its parties, audit entry, feed
    rows and events."""
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(
                signal_id=signal_id,
                opener=opener,
                grounds=grounds,
                reason=reason,
                proposed_labels=proposed_labels,
            )
    except IntegrityError:
        existing = Dispute.objects.filter(signal_id=signal_id, status=Dispute.Status.OPEN).first()
        raise ConflictError(
            f"This signal already has an open dispute (id {existing.pk if existing else '?'}); "
            "add your voice with a negative opinion, or wait for its decision.",
            code="dispute_exists",
        ) from None
    DisputeParty.objects.bulk_create(
        [DisputeParty(dispute=dispute, member_id=m) for m in sorted(parties)]
    )
    audit_record(
        actor=actor,
        action="dispute.opened",
        object_type="dispute",
        object_id=str(dispute.pk),
        after={
            "signal": signal_id,
            "opener": opener.slug if opener else None,
            "grounds": grounds,
            "proposed_labels": proposed_labels,
            "parties": sorted(parties),
        },
    )
    dispute_events_schedule(dispute=dispute, type="dispute.opened")
    feed_append(live_audiences([signal_id]))
    return dispute


def dispute_open(
    *,
    member: Member,
    signal_type: str,
    value: str,
    grounds: str,
    reason: str,
    proposed_labels: list[str] | None = None,
    actor: str,
) -> Dispute:
    """Open a dispute on a signal ``member`` may see now; NotFoundError (the lookup's
    404) for one it may not see or that nobody submitted."""
    if grounds not in GROUNDS:
        raise DomainError(
            f"grounds must be one of {', '.join(GROUNDS)}.",
            code="invalid_grounds",
            errors=[{"field": "grounds", "code": "invalid_choice", "detail": grounds}],
        )
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise DomainError(
            f"reason is required, at most {MAX_REASON} characters.",
            code="invalid_reason",
            errors=[{"field": "reason", "code": "invalid", "detail": f"1..{MAX_REASON}"}],
        )
    labels = _labels_check(proposed_labels or [], field="proposed_labels")
    with transaction.atomic():
        signal = signal_find(signal_type=signal_type, value=value)
        rows = (
            visible_statements(reader=Reader(member.pk), signal_ids=[signal.pk]).get(signal.pk)
            if signal is not None
            else None
        )
        if signal is None or not rows:
            raise NotFoundError(NOT_VISIBLE)
        slugs = {r[1] for r in rows}
        parties = set(Member.objects.filter(slug__in=slugs).values_list("pk", flat=True))
        return _open(
            signal_id=signal.pk,
            opener=member,
            parties=parties,
            grounds=grounds,
            reason=reason,
            proposed_labels=labels,
            actor=actor,
        )


def dispute_open_if_threshold(*, signal_id: int) -> Dispute | None:
    """Open a dispute on the signal if negative opinions reached the threshold (module
    docstring); None when they did not, or it is already disputed or withdrawn.

    Call inside the transaction that changed the evidence (an opinion, a false-positive
    report), before its own ``feed_append``: this takes the audit chain's lock first.
    """
    threshold = int(settings.CORDIALE_DISPUTE_NEGATIVE_THRESHOLD)
    if threshold <= 0:
        return None
    signal = Signal.objects.filter(pk=signal_id, overturned_at__isnull=True).first()
    if signal is None or Dispute.objects.filter(signal_id=signal_id, status="open").exists():
        return None
    negatives = Opinion.objects.filter(
        signal_id=signal_id,
        category=Opinion.Category.NEGATIVE,
        member__status=Member.Status.ACTIVE,
    )
    last = (
        Dispute.objects.filter(signal_id=signal_id, decided_at__isnull=False)
        .order_by("-decided_at")
        .values_list("decided_at", flat=True)
        .first()
    )
    if last is not None:
        negatives = negatives.filter(updated_at__gt=last)
    against = set(negatives.values_list("member_id", flat=True).distinct())
    # A member that reported a false positive on the signal counts as one that holds a
    # negative opinion (once, whatever it sent); both since the last decision.
    against |= sightings_false_positive_members(signal_id=signal_id, since=last)
    if len(against) < threshold:
        return None
    parties = _live_authors(signal_id)
    if not parties:
        return None
    try:
        with transaction.atomic():
            return _open(
                signal_id=signal_id,
                opener=None,
                parties=parties,
                grounds=Dispute.Grounds.OTHER,
                reason=f"{threshold} or more members hold a negative opinion on this signal "
                "or reported a false positive on it.",
                proposed_labels=[],
                actor=SYSTEM_ACTOR,
            )
    except ConflictError:
        return None  # opened by someone else meanwhile


def _live_authors(signal_id: int) -> set[int]:
    ids_clause, ids_params = in_list("cs.signal_id", [signal_id])
    rows = fetchall(
        "SELECT DISTINCT cs.member_id FROM exchange_currentstatement cs "
        f"WHERE {ids_clause} AND cs.audience IS NOT NULL AND {unexpired_sql('cs')}",
        [*ids_params, int(time.time())],
    )
    return {int(r[0]) for r in rows}


# --- responding ----------------------------------------------------------------------


def dispute_respond(*, dispute: Dispute, member: Member, text: str, actor: str) -> DisputeResponse:
    """A party's answer (the caller checked that ``member`` sees the dispute). Others get
    ``403 not_a_party``: they may see the dispute, so its parties are no secret to them
    beyond what the snapshot already names."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_RESPONSE:
        raise DomainError(
            f"text is required, at most {MAX_RESPONSE} characters.",
            code="invalid_text",
            errors=[{"field": "text", "code": "invalid", "detail": f"1..{MAX_RESPONSE}"}],
        )
    if not DisputeParty.objects.filter(dispute=dispute, member=member).exists():
        raise DomainError(
            "Only a member whose statement is disputed may respond.",
            code="not_a_party",
            status=403,
        )
    if dispute.status != Dispute.Status.OPEN:
        raise ConflictError("This dispute is decided.", code="dispute_decided")
    with transaction.atomic():
        response = DisputeResponse.objects.create(dispute=dispute, member=member, text=text)
        audit_record(
            actor=actor,
            action="dispute.responded",
            object_type="dispute",
            object_id=str(dispute.pk),
            after={"member": member.slug, "response": response.pk},
        )
    return response


# --- deciding ------------------------------------------------------------------------


def _staff_actor(staff_user: StaffUser | None) -> str:
    """The decider's audit actor; None is the command line's operator (shell access to
    the server is every permission already)."""
    if staff_user is None:
        return COMMAND_ACTOR
    if not staff_user.is_active or not staff_user.has_perm(DECIDE_PERMISSION):
        raise DomainError(
            f"{staff_user.get_username()} may not decide disputes "
            f"(permission {DECIDE_PERMISSION}).",
            code="decision_not_permitted",
            status=403,
        )
    return actor_for_user(staff_user)


def _decision_check(decision: str, rationale: str, labels: list[str] | None) -> list[str]:
    if decision not in DECISIONS:
        raise DomainError(
            f"decision must be one of {', '.join(DECISIONS)}.", code="invalid_decision"
        )
    if not isinstance(rationale, str) or not rationale.strip() or len(rationale) > MAX_RATIONALE:
        raise DomainError(
            f"A rationale is required, at most {MAX_RATIONALE} characters.",
            code="invalid_rationale",
        )
    checked = _labels_check(labels or [], field="labels")
    if decision == DisputeDecision.Decision.RELABEL and not checked:
        raise DomainError("A relabel names at least one label.", code="invalid_labels")
    if decision != DisputeDecision.Decision.RELABEL and checked:
        raise DomainError("Only a relabel carries labels.", code="invalid_labels")
    return checked


def dispute_decide(
    *,
    dispute: Dispute,
    decision: str,
    rationale: str,
    labels: list[str] | None = None,
    staff_user: StaffUser | None,
) -> DisputeDecision:
    """Decide ``dispute``: returns the final, signed decision (``jws`` set), or for an
    overturn that needs more approvals, the pending proposal (``jws`` empty).

    ``staff_user`` must hold ``exchange.decide_dispute`` (None: the command line).
    """
    actor = _staff_actor(staff_user)
    checked = _decision_check(decision, rationale, labels)
    required = max(1, int(settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS))
    with transaction.atomic():
        locked = Dispute.objects.select_for_update().select_related("signal").get(pk=dispute.pk)
        if locked.status != Dispute.Status.OPEN:
            raise ConflictError("This dispute is decided already.", code="dispute_decided")
        pending = (
            DisputeDecision.objects.filter(dispute=locked, jws="", superseded=False)
            .order_by("id")
            .first()
        )
        if decision == DisputeDecision.Decision.OVERTURN:
            if pending is None:
                pending = DisputeDecision.objects.create(
                    dispute=locked, decision=decision, labels=[], rationale=rationale, approvals=[]
                )
            elif actor in pending.approvals:
                raise ConflictError(
                    "You approved this overturn already; another staff user must confirm it.",
                    code="already_approved",
                )
            pending.approvals = [*pending.approvals, actor]
            pending.save(update_fields=["approvals"])
            if len(pending.approvals) < required:
                audit_record(
                    actor=actor,
                    action="dispute.overturn_proposed",
                    object_type="dispute",
                    object_id=str(locked.pk),
                    after={
                        "decision": pending.pk,
                        "rationale": rationale,
                        "approvals": len(pending.approvals),
                        "required": required,
                    },
                )
                return pending
            final = pending
        else:
            final = DisputeDecision.objects.create(
                dispute=locked,
                decision=decision,
                labels=checked,
                rationale=rationale,
                approvals=[actor],
            )
        return _finalise(locked, final, actor, rationale)


def _finalise(
    dispute: Dispute, final: DisputeDecision, actor: str, rationale: str
) -> DisputeDecision:
    now = timezone.now()
    claims = decision_claims(
        dispute_id=dispute.pk,
        signal_type=dispute.signal.signal_type,
        value=dispute.signal.value,
        grounds=dispute.grounds,
        decision=final.decision,
        labels=list(final.labels),
        rationale=final.rationale,
        iat=int(now.timestamp()),
    )
    final.jti = claims["jti"]
    final.jws = decision_sign(claims)
    final.decided_at = now
    final.save(update_fields=["jti", "jws", "decided_at"])
    DisputeDecision.objects.filter(dispute=dispute, jws="").exclude(pk=final.pk).update(
        superseded=True
    )
    dispute.status = Dispute.Status.DECIDED
    dispute.decided_at = now
    dispute.save(update_fields=["status", "decided_at"])
    if final.decision == DisputeDecision.Decision.OVERTURN:
        Signal.objects.filter(pk=dispute.signal_id).update(overturned_at=now)
    audit_record(
        actor=actor,
        action="dispute.decided",
        object_type="dispute",
        object_id=str(dispute.pk),
        before={"status": Dispute.Status.OPEN},
        after={
            "status": Dispute.Status.DECIDED,
            "decision": final.decision,
            "labels": final.labels,
            "rationale": rationale,
            "approvals": final.approvals,
            "jti": final.jti,
        },
    )
    dispute_events_schedule(dispute=dispute, type="dispute.decided")
    # Every audience that saw the signal learns of the decision: its snapshot gains the
    # decision, or (overturned) it reads as a tombstone for everyone who saw it.
    feed_append(live_audiences([dispute.signal_id]))
    return final
